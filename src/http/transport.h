/*
 * http/transport — HTTP/1.1 over stream connections (HTTPS, TLS under the
 * conn), read inside the I/O workers.
 *
 * A conn_protocol like sip/transport: each request is read and checked in
 * the worker (http/reader.h) and handed to the core's mailbox as
 * HTTP_TP_REQUEST; malformed input is answered right here with a short
 * error response and Connection: close, and the connection is closed once
 * that is sent — the core never sees it. The core answers each request by
 * building its response (http/response.h) and sending it with
 * worker_pool_send, in the order the requests came, and then frees the
 * event (not before: see "ordering" below). After a request whose
 * keep_alive is false, the core closes the connection once its response
 * is sent (worker_pool_close flushes first); the transport reads nothing
 * more from it.
 *
 * Bounds. At most HTTP_TP_MAX_INFLIGHT_CONN requests of a connection are
 * with the core at once (pipelined ones beyond wait in the socket, reading
 * paused) and HTTP_TP_MAX_INFLIGHT in all. A request must be complete
 * request_timeout_s after its first byte (408 and close; note that this
 * bounds uploads too: a large PUT must arrive within it). Between requests
 * a connection may stay idle keepalive_timeout_s (then closed quietly).
 * The server's conn_params should set read_limit (say 64 KiB) so that a
 * paused connection buffers no more than that.
 *
 * Ordering. The worker writes bytes of its own (100 Continue, an error, a
 * 408) only once every request of the connection that went to the core has
 * been freed, and one turn of its event loop later: the core posts each
 * response (worker_pool_send) before it frees the event, so by then the
 * response is in the worker's mailbox, which that turn delivers first.
 *
 * Upgrade seam (WebSocket, a later issue). A request with `upgrade` set is
 * posted like any other, and its event holds the connection: nothing more
 * is read from it while the event lives (ev->hold). The core either
 * answers as HTTP (a response, then http_tp_event_free: reading goes on),
 * or switches protocols. To switch, the core sends the 101 response,
 * clears ev->hold before freeing the event — the HTTP side then never reads
 * again — and asks the worker to run, on the worker thread, a function
 * that calls http_transport_detach(c) and installs the new protocol on
 * the conn. What is still needed for that: a worker_pool message that runs
 * a function on a connection, and a conn_set_protocol in net/conn; bytes
 * the client sent after its request are still in the conn's input buffer
 * for the new protocol.
 */
#ifndef PARLEY_HTTP_TRANSPORT_H
#define PARLEY_HTTP_TRANSPORT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/mbox.h"
#include "http/request.h"
#include "net/conn.h"

/* What the transport posts to the core (struct http_tp_event). */
enum http_tp_event_type {
    HTTP_TP_OPEN = 1, /* info set */
    HTTP_TP_REQUEST,  /* req and flow set */
    HTTP_TP_CLOSE,    /* reason set */
};

struct http_flow;

struct http_tp_event {
    struct mbox_msg m; /* m.type is an enum http_tp_event_type */
    uint64_t conn;
    struct conn_info *info;
    struct http_request *req; /* the core may take it (set NULL) and free it itself */
    struct http_flow *flow;   /* REQUEST: its connection's in-flight count */
    bool hold;                /* REQUEST with upgrade: reading waits for this event */
    char reason[96];
};

/* Frees req and info, and releases the in-flight count (and the hold).
 * Core thread, after the response was posted. NULL is fine. */
void http_tp_event_free(struct http_tp_event *ev);

#define HTTP_TP_MAX_INFLIGHT_CONN 4
#define HTTP_TP_MAX_INFLIGHT      1024

#define HTTP_TP_HEADER_DEFAULT    16384
#define HTTP_TP_REQUEST_TIMEOUT_S 30
#define HTTP_TP_KEEPALIVE_S       60

/* Shared by every worker; the atomics may change on reload. Set up with
 * http_transport_init. */
struct http_transport {
    struct mbox *core;               /* where events go */
    atomic_size_t max_header_size;   /* default 16384 */
    atomic_uint request_timeout_s;   /* a request must be complete this long after its first
                                      * byte (default 30) */
    atomic_uint keepalive_timeout_s; /* idle between requests (default 60) */
    /* The most body bytes a request may carry, from its head; set before
     * the first connection; called in the workers (so it must only read
     * what does not change, or atomics). NULL: 65536. */
    size_t (*body_limit)(const struct http_request *head, void *arg);
    void *body_limit_arg;
    atomic_int inflight; /* requests posted to the core, not yet freed */
};

/* Defaults, and core as where events go. */
void http_transport_init(struct http_transport *tp, struct mbox *core);

/* proto_arg: struct http_transport * */
extern const struct conn_protocol http_transport_protocol;

/* Worker thread: forgets the HTTP state of a connection whose protocol is
 * being replaced (see the upgrade seam above). Bytes not yet read stay in
 * the conn's input buffer. */
void http_transport_detach(struct conn *c);

#endif
