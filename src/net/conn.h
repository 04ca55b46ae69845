/*
 * net/conn — a stream connection, TLS hidden inside.
 *
 * Every stream protocol (SIP, TURN over TCP/TLS, HTTPS) is a conn_protocol:
 * it reads decrypted bytes from an evbuffer and writes plain bytes, and
 * never knows whether a TLS layer is there; the TLS module (tls/stream.h)
 * makes and reads the SSL object. What the handshake established reaches
 * the protocol as plain facts in conn_info and an opaque tls_peer.
 *
 * Connections live on a conn_host: the connections of one event base (one
 * thread), found by id, closed with a flush and a deadline, reaped after
 * the dispatch that ended them (a protocol's on_close runs there, exactly
 * once). Every function here must be called from the host's thread; other
 * threads reach a connection through its owner (net/worker.h).
 */
#ifndef PARLEY_NET_CONN_H
#define PARLEY_NET_CONN_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/netaddr.h"
#include "tls/context.h"
#include "tls/peer.h"

struct conn;
struct conn_host;
struct evbuffer;
struct event_base;

/* What is known about a connection once it is established. */
struct conn_info {
    uint64_t id;
    bool tls;
    bool outgoing;
    int listener; /* index of the accepting listener; -1 when outgoing */
    struct netaddr peer;
    struct netaddr local;
    char tls_version[16]; /* "TLSv1.3"; empty without TLS */
    char tls_cipher[64];
    bool tls_resumed;
    bool peer_cert_verified;    /* a certificate was presented and chains to a trusted CA */
    bool peer_crl_missing;      /* ... but its issuer has no CRL loaded */
    struct tls_peer *peer_cert; /* the presented certificate (a reference) or NULL */
};

/* Copies an info (taking a new reference on the peer); free with
 * conn_info_free. */
struct conn_info *conn_info_dup(const struct conn_info *info);
void conn_info_free(struct conn_info *info);

/* A protocol that runs over connections (SIP framing, TURN over TCP...). */
struct conn_protocol {
    const char *name;
    /* The connection is established (TLS handshake done). */
    void (*on_open)(struct conn *c, void *arg);
    /* Bytes arrived; consume what forms whole units, leave the rest. */
    void (*on_read)(struct conn *c, struct evbuffer *in, void *arg);
    /* The connection is gone (called exactly once per connection, also
     * when it never opened). reason is for the log. */
    void (*on_close)(struct conn *c, const char *reason, void *arg);
};

/* How to make a connection. */
struct conn_params {
    SSL_CTX *tls;                       /* NULL for plain TCP; not taken */
    enum tls_client_certs client_certs; /* accepted TLS: what clients are asked */
    const char *sni;                    /* outgoing TLS: server name to send (or NULL) */
    const char *verify_host;            /* outgoing TLS: name the peer's certificate must
                                         * carry, checked in the handshake (or NULL) */
    const struct conn_protocol *proto;
    void *proto_arg;
    int listener; /* -1 for outgoing */
    unsigned handshake_timeout_s;
    unsigned idle_timeout_s; /* 0: none */
    size_t read_limit;       /* bytes buffered before reading pauses; 0: libevent's */
    /* Bytes queued for a peer that does not read, at which reading what
     * it sends stops until they have drained (requests come only as fast
     * as answers go); 0: CONN_OUTPUT_PAUSE_DEFAULT; CONN_OUTPUT_NEVER_PAUSE
     * for a protocol whose two directions are independent (relayed media:
     * a client's own packets must go on whatever it receives). */
    size_t output_pause;
    /* Bytes queued beyond which the connection is cut rather than let our
     * memory grow; 0: CONN_OUTPUT_LIMIT_DEFAULT. A protocol that prefers
     * to drop (media) checks conn_output_pending below this itself. */
    size_t output_limit;
};

#define CONN_OUTPUT_PAUSE_DEFAULT (128u * 1024)
#define CONN_OUTPUT_LIMIT_DEFAULT (1024u * 1024)
#define CONN_OUTPUT_NEVER_PAUSE   SIZE_MAX

/* --- hosts ------------------------------------------------------------- */

/* NULL when out of memory. */
struct conn_host *conn_host_new(struct event_base *base);
/* Kills what is left (no flush), runs their on_close, frees the host. */
void conn_host_free(struct conn_host *h);
size_t conn_host_count(const struct conn_host *h);
struct conn *conn_host_find(struct conn_host *h, uint64_t id);
/* Closes every connection (flushing, TLS close_notify) ... */
void conn_host_close_all(struct conn_host *h, const char *reason);
/* ... or cuts them off at once. */
void conn_host_kill_all(struct conn_host *h, const char *reason);
/* Calls fn for every connection (fn may close it). */
void conn_host_foreach(struct conn_host *h, void (*fn)(struct conn *c, void *arg), void *arg);
/* Called after each pass of the reaper (the worker stops once empty). */
void conn_host_on_reaped(struct conn_host *h, void (*fn)(void *arg), void *arg);

/* Why an accepted TLS connection's handshake failed, in a few kinds (the
 * log line says more): for the metrics, counted per host without a lock. */
enum conn_tls_failure {
    CONN_TLS_FAIL_TIMEOUT,     /* not finished within the handshake timeout */
    CONN_TLS_FAIL_CERTIFICATE, /* a client certificate failed verification or was missing */
    CONN_TLS_FAIL_ALERT,       /* an alert sent or received (no shared version, suite...) */
    CONN_TLS_FAIL_PROTOCOL,    /* not TLS, or TLS OpenSSL refused otherwise */
    CONN_TLS_FAIL_CLOSED,      /* the peer closed or reset the connection mid-handshake */
    CONN_TLS_FAIL_COUNT_
};
/* "timeout", "certificate", "alert", "protocol", "closed". */
const char *conn_tls_failure_name(enum conn_tls_failure f);
/* Adds the host's counts since it was made to out (any thread may ask). */
void conn_host_tls_failures(const struct conn_host *h, uint64_t out[CONN_TLS_FAIL_COUNT_]);

/* Takes fd, an accepted socket, as connection id. Returns the connection
 * (its handshake under way) or NULL (fd closed; out of memory). */
struct conn *conn_accept(struct conn_host *h, uint64_t id, int fd, const struct netaddr *peer,
                         const struct conn_params *p);
/* Opens a connection to addr (bound to local when not NULL). on_open or
 * on_close say how it went. NULL when it could not even start (logged). */
struct conn *conn_connect(struct conn_host *h, uint64_t id, const struct netaddr *addr,
                          const struct netaddr *local, const struct conn_params *p);

/* --- a connection -------------------------------------------------------- */

uint64_t conn_id(const struct conn *c);
const struct conn_info *conn_info(const struct conn *c);
/* Queues bytes for the peer. Returns 0, or -EPIPE when the connection is
 * closing, or -ENOBUFS when the peer does not read and the output limit is
 * reached (the connection is then closed). */
int conn_write(struct conn *c, const void *data, size_t len);
/* Bytes queued and not yet sent (a protocol may drop what it can, such as
 * relayed packets, rather than queue more). */
size_t conn_output_pending(const struct conn *c);
/* Closes after what was written has been sent (TLS close_notify included).
 * Safe to call from the connection's own callbacks: the object is freed
 * later, never inside its own callback. */
void conn_close(struct conn *c, const char *reason);
/* Seconds without incoming bytes before the connection is closed; 0 means
 * no idle limit. */
void conn_set_idle_timeout(struct conn *c, unsigned seconds);
/* Bytes buffered before reading pauses (0: leave as it is). */
void conn_set_read_limit(struct conn *c, size_t limit);
size_t conn_read_limit(const struct conn *c);
/* Stops reading for ms milliseconds, then reads again (and hands over
 * what is buffered): a protocol whose consumer is behind slows its peer. */
void conn_defer_read(struct conn *c, unsigned ms);
/* The event base the connection lives on (its host's): a protocol arms
 * timers of its own there (http/transport's request deadline). */
struct event_base *conn_event_base(const struct conn *c);
/* Protocol state attached to the connection. */
void conn_set_data(struct conn *c, void *data);
void *conn_get_data(const struct conn *c);
/* The protocol the connection was made with. */
const struct conn_protocol *conn_get_protocol(const struct conn *c);

#endif
