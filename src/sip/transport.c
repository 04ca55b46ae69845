#include "sip/transport.h"

#include <errno.h>
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/strbuf.h"
#include "sip/build.h"
#include "sip/frame.h"

/* What the transport keeps per connection; shared with the core, which
 * counts a message done when it frees its event (reference-counted: the
 * connection may be gone by then). */
struct sip_flow {
    atomic_int refs;
    atomic_int inflight; /* posted to the core, not yet handled */
    struct sip_transport *tp;
    time_t partial_since; /* worker only: when an unfinished message began */
};

static void sip_flow_put(struct sip_flow *f)
{
    if (f && atomic_fetch_sub(&f->refs, 1) == 1)
        free(f);
}

void sip_tp_event_free(struct sip_tp_event *ev)
{
    if (!ev)
        return;
    if (ev->flow) {
        atomic_fetch_sub(&ev->flow->inflight, 1);
        atomic_fetch_sub(&ev->flow->tp->inflight, 1);
        sip_flow_put(ev->flow);
    }
    conn_info_free(ev->info);
    sip_msg_free(ev->msg);
    free(ev);
}

static struct sip_flow *sip_tp_flow(struct conn *c, struct sip_transport *tp)
{
    struct sip_flow *f = conn_get_data(c);
    if (!f) {
        f = calloc(1, sizeof(*f));
        if (!f)
            return NULL;
        atomic_init(&f->refs, 1);
        atomic_init(&f->inflight, 0);
        f->tp = tp;
        conn_set_data(c, f);
    }
    return f;
}

static struct sip_tp_event *sip_tp_event_new(int type, uint64_t conn)
{
    struct sip_tp_event *ev = calloc(1, sizeof(*ev));
    if (ev) {
        ev->m.type = type;
        ev->conn = conn;
    }
    return ev;
}

static void sip_tp_on_open(struct conn *c, void *arg)
{
    struct sip_transport *tp = arg;
    struct sip_tp_event *ev = sip_tp_event_new(SIP_TP_OPEN, conn_id(c));
    if (!ev || !(ev->info = conn_info_dup(conn_info(c)))) {
        free(ev);
        conn_close(c, "out of memory");
        return;
    }
    mbox_post(tp->core, &ev->m);
}

static void sip_tp_on_close(struct conn *c, const char *reason, void *arg)
{
    struct sip_transport *tp = arg;
    sip_flow_put(conn_get_data(c));
    conn_set_data(c, NULL);
    struct sip_tp_event *ev = sip_tp_event_new(SIP_TP_CLOSE, conn_id(c));
    if (!ev)
        return; /* the core's conn table then keeps a stale entry; out of memory anyway */
    snprintf(ev->reason, sizeof(ev->reason), "%s", reason);
    mbox_post(tp->core, &ev->m);
}

/* Answers input that cannot be handed to the core, when a response can be
 * formed from it. */
static bool sip_tp_reject(struct conn *c, const char *data, size_t len, int status,
                          const char *reason)
{
    bool answered = false;
    char peer[NETADDR_STRLEN];
    struct strbuf out = STRBUF_INIT;

    log_info("sip.bad_message", "conn", LOG_INT(conn_id(c)), "peer",
             netaddr_format(&conn_info(c)->peer, peer), "status", LOG_INT(status), "reason",
             reason);
    if (status && sip_build_error_from_raw(data, len, status, reason, &out) == 0 && !out.err)
        answered = conn_write(c, out.p, out.len) == 0;
    strbuf_free(&out);
    return answered;
}

/* Slows a peer whose messages the core has not handled yet. */
#define SIP_TP_BACKOFF_MS 5

static void sip_tp_on_read(struct conn *c, struct evbuffer *in, void *arg)
{
    struct sip_transport *tp = arg;
    size_t max = atomic_load(&tp->max_message_size);
    struct sip_flow *flow = sip_tp_flow(c, tp);
    if (!flow) {
        conn_close(c, "out of memory");
        return;
    }

    for (;;) {
        size_t avail = evbuffer_get_length(in);
        if (avail == 0) {
            flow->partial_since = 0;
            return;
        }
        if (atomic_load(&flow->inflight) >= SIP_TP_MAX_INFLIGHT_CONN ||
            atomic_load(&tp->inflight) >= SIP_TP_MAX_INFLIGHT) {
            conn_defer_read(c, SIP_TP_BACKOFF_MS);
            return;
        }
        /* Frame over at most max + a little, so an oversized head is
         * recognised without buffering more of it. */
        size_t look = avail < max + 1 ? avail : max + 1;
        const char *data = (const char *)evbuffer_pullup(in, (ev_ssize_t)look);
        if (!data) {
            conn_close(c, "out of memory");
            return;
        }
        struct sip_frame fr;
        switch (sip_frame_scan(data, look, max, &fr)) {
        case SIP_FRAME_NEED_MORE: {
            /* a message must be whole within the deadline, however slowly
             * its bytes trickle in (each byte restarts the idle timer) */
            time_t now = time(NULL);
            if (!flow->partial_since)
                flow->partial_since = now;
            else if (now - flow->partial_since > (time_t)atomic_load(&tp->message_deadline_s)) {
                sip_tp_reject(c, data, look, 0, "message not completed in time");
                conn_close(c, "message not completed in time");
            }
            return;
        }
        case SIP_FRAME_KEEPALIVE:
            if (fr.ping)
                conn_write(c, "\r\n", 2);
            evbuffer_drain(in, fr.len);
            continue;
        case SIP_FRAME_TOO_LARGE:
            sip_tp_reject(c, data, look, 513, fr.reason ? fr.reason : "Message Too Large");
            conn_close(c, "message too large");
            return;
        case SIP_FRAME_BAD:
            sip_tp_reject(c, data, look, 400, fr.reason ? fr.reason : "Bad framing");
            conn_close(c, "unusable framing");
            return;
        case SIP_FRAME_MESSAGE:
            flow->partial_since = 0;
            break;
        }

        struct sip_msg *msg = NULL;
        struct sip_parse_error perr = {0, ""};
        int rc = sip_msg_parse(data, fr.len, &msg, &perr);
        if (rc == 0) {
            struct sip_tp_event *ev = sip_tp_event_new(SIP_TP_MESSAGE, conn_id(c));
            if (!ev) {
                sip_msg_free(msg);
                conn_close(c, "out of memory");
                return;
            }
            ev->msg = msg;
            ev->flow = flow;
            atomic_fetch_add(&flow->refs, 1);
            atomic_fetch_add(&flow->inflight, 1);
            atomic_fetch_add(&tp->inflight, 1);
            mbox_post(tp->core, &ev->m);
        } else if (rc == -ENOMEM) {
            conn_close(c, "out of memory");
            return;
        } else {
            /* a malformed message is answered and the stream stays usable,
             * its framing being sound; one that cannot even be answered
             * (no Call-ID, no Via...) ends the connection */
            bool answered = sip_tp_reject(c, data, fr.len, perr.status, perr.reason);
            if (!answered || perr.status == 513) {
                conn_close(c, "malformed message");
                return;
            }
        }
        evbuffer_drain(in, fr.len);
    }
}

const struct conn_protocol sip_transport_protocol = {
    .name = "sip",
    .on_open = sip_tp_on_open,
    .on_read = sip_tp_on_read,
    .on_close = sip_tp_on_close,
};
