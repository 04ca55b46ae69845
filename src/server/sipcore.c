/*
 * The SIP core: receives parsed messages and connection events from the
 * transport (in the I/O workers) and decides what happens. It runs on the
 * core thread and owns all SIP state without locks.
 */
#include <string.h>

#include "core/log.h"
#include "core/random.h"
#include "server/runtime.h"
#include "sip/build.h"
#include "sip/msg.h"

/* Methods Parley answers itself when a request is addressed to the server. */
#define SIPCORE_ALLOW "OPTIONS"
#define SIPCORE_ACCEPT "application/sdp"
#define SIPCORE_SUPPORTED ""

/* Is the Request-URI the server itself (no user part; our domain, host
 * name or one of our addresses)? */
static bool sipcore_addressed_to_server(struct runtime *rt, const struct sip_msg *msg)
{
    const struct sip_uri *u = &msg->ruri;
    if (u->scheme == SIP_URI_TEL || u->user.n)
        return false;
    const char *domain = rt->cfg->server.domain;
    if (strview_eq_nocase(u->host, domain))
        return true;
    if (u->host.n == strlen(domain) + 4 && strncasecmp(u->host.p, "sip.", 4) == 0 &&
        strncasecmp(u->host.p + 4, domain, strlen(domain)) == 0)
        return true;
    char host[NETADDR_STRLEN];
    if (strview_copy(u->host, host, sizeof(host)) != 0)
        return false;
    struct netaddr a;
    if (netaddr_parse_ip(host, 0, &a) != 0)
        return false;
    for (size_t i = 0; i < rt->nlisteners; i++)
        if (netaddr_same_ip(&rt->listeners[i].addr, &a))
            return true;
    return false;
}

static void sipcore_respond(struct runtime *rt, uint64_t conn, const struct sip_msg *req,
                            int status, const char *reason, const char *extra)
{
    char tag[17];
    struct strbuf out = STRBUF_INIT;
    random_token(tag, 16);
    if (sip_build_response(req, status, reason, tag, extra, NULL, STRVIEW_EMPTY, &out) != 0) {
        strbuf_free(&out);
        return;
    }
    runtime_send(rt, conn, &out);
}

static void sipcore_request_to_server(struct runtime *rt, uint64_t conn, const struct sip_msg *msg)
{
    switch (msg->method) {
    case SIP_METHOD_OPTIONS:
        sipcore_respond(rt, conn, msg, 200, NULL,
                        "Allow: " SIPCORE_ALLOW "\r\n"
                        "Accept: " SIPCORE_ACCEPT "\r\n"
                        "Supported: " SIPCORE_SUPPORTED "\r\n");
        return;
    case SIP_METHOD_ACK:
        return;
    case SIP_METHOD_UNKNOWN:
        sipcore_respond(rt, conn, msg, 501, NULL, "Allow: " SIPCORE_ALLOW "\r\n");
        return;
    default:
        sipcore_respond(rt, conn, msg, 405, NULL, "Allow: " SIPCORE_ALLOW "\r\n");
        return;
    }
}

static void sipcore_on_request(struct runtime *rt, uint64_t conn, struct sip_msg *msg)
{
    if (sipcore_addressed_to_server(rt, msg)) {
        sipcore_request_to_server(rt, conn, msg);
        return;
    }
    if (msg->method == SIP_METHOD_ACK)
        return;
    /* Routing to users arrives with the registrar and proxy. */
    sipcore_respond(rt, conn, msg, 501, "Not Implemented (no routing to users yet)", NULL);
}

void sipcore_on_event(struct mbox_msg *m, void *arg)
{
    struct runtime *rt = arg;
    struct sip_tp_event *ev = (struct sip_tp_event *)m;

    switch ((enum sip_tp_event_type)m->type) {
    case SIP_TP_OPEN:
        runtime_conn_opened(rt, ev->conn, ev->info);
        ev->info = NULL;
        break;
    case SIP_TP_CLOSE:
        runtime_conn_closed(rt, ev->conn, ev->reason);
        break;
    case SIP_TP_MESSAGE:
        if (ev->msg->is_request)
            sipcore_on_request(rt, ev->conn, ev->msg);
        /* responses: no client transactions yet */
        break;
    }
    sip_tp_event_free(ev);
}
