#include "http/transport.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/strbuf.h"
#include "http/reader.h"
#include "http/response.h"

/* Slows a peer whose requests the core has not handled yet. */
#define HTTP_TP_BACKOFF_MS 5

/* What the transport keeps per connection. The counters are shared with
 * the core, which releases a request when it frees its event
 * (reference-counted: the connection may be gone by then); the rest is the
 * worker's. */
struct http_flow {
    atomic_int refs;
    atomic_int inflight; /* posted to the core, not yet freed */
    atomic_bool held;    /* an upgrade request is with the core */
    struct http_transport *tp;

    /* worker only */
    struct conn *c;
    struct http_reader *reader;
    struct event *deadline; /* the request being read must be complete by then */
    struct event *wake;     /* a response of our own waits for the core's */
    int own_status;         /* 100: Continue to send; else an error to answer, then close */
    char own_reason[64];
    bool quiet_seen; /* nothing in flight at the last wake: one more turn, then write */
    bool done;       /* a request without keep-alive went to the core: read no more */
};

static void http_flow_put(struct http_flow *f)
{
    if (f && atomic_fetch_sub(&f->refs, 1) == 1)
        free(f);
}

void http_tp_event_free(struct http_tp_event *ev)
{
    if (!ev)
        return;
    if (ev->flow) {
        if (ev->hold)
            atomic_store(&ev->flow->held, false);
        atomic_fetch_sub(&ev->flow->inflight, 1);
        atomic_fetch_sub(&ev->flow->tp->inflight, 1);
        http_flow_put(ev->flow);
    }
    conn_info_free(ev->info);
    http_request_free(ev->req);
    free(ev);
}

void http_transport_init(struct http_transport *tp, struct mbox *core)
{
    memset(tp, 0, sizeof(*tp));
    tp->core = core;
    atomic_init(&tp->max_header_size, HTTP_TP_HEADER_DEFAULT);
    atomic_init(&tp->request_timeout_s, HTTP_TP_REQUEST_TIMEOUT_S);
    atomic_init(&tp->keepalive_timeout_s, HTTP_TP_KEEPALIVE_S);
    atomic_init(&tp->inflight, 0);
}

static struct http_tp_event *http_tp_event_new(int type, uint64_t conn)
{
    struct http_tp_event *ev = calloc(1, sizeof(*ev));
    if (ev) {
        ev->m.type = type;
        ev->conn = conn;
    }
    return ev;
}

/* Frees what only the worker uses; the flow itself lives on while the
 * core holds events of it. */
static void http_flow_detach(struct conn *c, struct http_flow *f)
{
    if (!f)
        return;
    if (f->deadline)
        event_free(f->deadline);
    if (f->wake)
        event_free(f->wake);
    http_reader_free(f->reader);
    f->deadline = f->wake = NULL;
    f->reader = NULL;
    f->c = NULL;
    conn_set_data(c, NULL);
    http_flow_put(f);
}

void http_transport_detach(struct conn *c)
{
    http_flow_detach(c, conn_get_data(c));
}

static void http_tp_on_deadline(evutil_socket_t fd, short what, void *arg);
static void http_tp_on_wake(evutil_socket_t fd, short what, void *arg);

static struct http_flow *http_flow_new(struct conn *c, struct http_transport *tp)
{
    struct http_flow *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    atomic_init(&f->refs, 1);
    atomic_init(&f->inflight, 0);
    atomic_init(&f->held, false);
    f->tp = tp;
    f->c = c;
    struct http_reader_limits lim = {
        .max_header_size = atomic_load(&tp->max_header_size),
        .body_limit = tp->body_limit,
        .body_limit_arg = tp->body_limit_arg,
    };
    f->reader = http_reader_new(&lim);
    f->deadline = evtimer_new(conn_event_base(c), http_tp_on_deadline, f);
    f->wake = evtimer_new(conn_event_base(c), http_tp_on_wake, f);
    conn_set_data(c, f);
    if (!f->reader || !f->deadline || !f->wake) {
        http_flow_detach(c, f);
        return NULL;
    }
    return f;
}

static void http_tp_on_open(struct conn *c, void *arg)
{
    struct http_transport *tp = arg;
    struct http_tp_event *ev = http_tp_event_new(HTTP_TP_OPEN, conn_id(c));
    if (!ev || !http_flow_new(c, tp) || !(ev->info = conn_info_dup(conn_info(c)))) {
        free(ev);
        conn_close(c, "out of memory");
        return;
    }
    conn_set_idle_timeout(c, atomic_load(&tp->keepalive_timeout_s));
    mbox_post(tp->core, &ev->m);
}

static void http_tp_on_close(struct conn *c, const char *reason, void *arg)
{
    struct http_transport *tp = arg;
    http_flow_detach(c, conn_get_data(c));
    struct http_tp_event *ev = http_tp_event_new(HTTP_TP_CLOSE, conn_id(c));
    if (!ev)
        return; /* the core's conn table then keeps a stale entry; out of memory anyway */
    snprintf(ev->reason, sizeof(ev->reason), "%s", reason);
    mbox_post(tp->core, &ev->m);
}

/* Writes the response of our own that waits, if the core's have all gone
 * out (see "Ordering" in transport.h); else looks again soon. */
static void http_tp_own_try(struct http_flow *f)
{
    if (atomic_load(&f->inflight) > 0) {
        f->quiet_seen = false;
        struct timeval tv = {0, HTTP_TP_BACKOFF_MS * 1000};
        event_add(f->wake, &tv);
        return;
    }
    if (!f->quiet_seen) {
        /* one more turn of the loop: its mailbox delivers what the core
         * sent before it freed the last event */
        f->quiet_seen = true;
        struct timeval tv = {0, 0};
        event_add(f->wake, &tv);
        return;
    }
    f->quiet_seen = false;
    struct conn *c = f->c;
    int status = f->own_status;
    f->own_status = 0;
    if (status == 100) {
        conn_write(c, HTTP_READER_CONTINUE_LINE, sizeof(HTTP_READER_CONTINUE_LINE) - 1);
        conn_defer_read(c, 0); /* and read on (the body) */
        return;
    }
    struct strbuf out = STRBUF_INIT;
    http_response_error(&out, status, f->own_reason, true);
    if (!out.err)
        conn_write(c, out.p, out.len);
    strbuf_free(&out);
    conn_close(c, f->own_reason);
}

static void http_tp_on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct http_flow *f = arg;
    if (f->c && f->own_status)
        http_tp_own_try(f);
}

/* Input that is answered here, and the connection closed. */
static void http_tp_refuse(struct http_flow *f, int status, const char *reason)
{
    char peer[NETADDR_STRLEN];
    log_info("http.bad_request", "conn", LOG_INT(conn_id(f->c)), "peer",
             netaddr_format(&conn_info(f->c)->peer, peer), "status", LOG_INT(status), "reason",
             reason);
    event_del(f->deadline);
    f->own_status = status;
    snprintf(f->own_reason, sizeof(f->own_reason), "%s", reason);
    http_tp_own_try(f);
}

static void http_tp_on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct http_flow *f = arg;
    if (!f->c || !http_reader_started(f->reader))
        return;
    if (!f->own_status) {
        http_tp_refuse(f, 408, "request not completed in time");
    } else if (f->own_status == 100) {
        /* still waiting to say Continue: the body will not make it either */
        f->own_status = 408;
        snprintf(f->own_reason, sizeof(f->own_reason), "request not completed in time");
    }
}

static bool http_tp_post(struct conn *c, struct http_flow *f, struct http_request *req)
{
    struct http_tp_event *ev = http_tp_event_new(HTTP_TP_REQUEST, conn_id(c));
    if (!ev || !req) {
        free(ev);
        http_request_free(req);
        conn_close(c, "out of memory");
        return false;
    }
    ev->req = req;
    ev->flow = f;
    if (!req->keep_alive)
        f->done = true;
    if (req->upgrade) {
        ev->hold = true;
        atomic_store(&f->held, true);
    }
    atomic_fetch_add(&f->refs, 1);
    atomic_fetch_add(&f->inflight, 1);
    atomic_fetch_add(&f->tp->inflight, 1);
    mbox_post(f->tp->core, &ev->m);
    return true;
}

static void http_tp_on_read(struct conn *c, struct evbuffer *in, void *arg)
{
    struct http_transport *tp = arg;
    struct http_flow *f = conn_get_data(c);
    if (!f) {
        conn_close(c, "no HTTP state");
        return;
    }
    for (;;) {
        if (f->done) {
            /* the core closes once it has answered: nothing more is read */
            evbuffer_drain(in, evbuffer_get_length(in));
            return;
        }
        size_t avail = evbuffer_get_length(in);
        if (avail == 0)
            return;
        if (f->own_status || atomic_load(&f->held) ||
            atomic_load(&f->inflight) >= HTTP_TP_MAX_INFLIGHT_CONN ||
            atomic_load(&tp->inflight) >= HTTP_TP_MAX_INFLIGHT) {
            conn_defer_read(c, HTTP_TP_BACKOFF_MS);
            return;
        }
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
            return;
        bool was_started = http_reader_started(f->reader);
        http_reader_set_max_header_size(f->reader, atomic_load(&tp->max_header_size));
        size_t used = 0;
        enum http_reader_result res = http_reader_feed(f->reader, v.iov_base, v.iov_len, &used);
        evbuffer_drain(in, used);
        if (!was_started && http_reader_started(f->reader)) {
            struct timeval tv = {(time_t)atomic_load(&tp->request_timeout_s), 0};
            event_add(f->deadline, &tv);
        }
        switch (res) {
        case HTTP_READER_MORE:
            break;
        case HTTP_READER_CONTINUE:
            f->own_status = 100;
            http_tp_own_try(f);
            break;
        case HTTP_READER_REQUEST:
            event_del(f->deadline);
            if (!http_tp_post(c, f, http_reader_take(f->reader)))
                return;
            break;
        case HTTP_READER_ERROR:
            http_tp_refuse(f, http_reader_status(f->reader), http_reader_reason(f->reader));
            return;
        }
    }
}

const struct conn_protocol http_transport_protocol = {
    .name = "http",
    .on_open = http_tp_on_open,
    .on_read = http_tp_on_read,
    .on_close = http_tp_on_close,
};
