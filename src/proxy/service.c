/*
 * The media relay authentication service: a SERVICE request with an
 * application/msrtc-media-relay-auth+xml body (the shape of Lync's MRAS,
 * [MS-AVEDGEA]) from an authenticated user, over TLS, gets time-limited
 * relay credentials and where the relay is. Never over plain TCP, never to
 * anyone unauthenticated: the proxy's front door has checked both before
 * this runs, and this checks the hop again.
 */
#include "proxy/service.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "proxy/reject.h"
#include "proxy/state.h"
#include "sip/build.h"
#include "xml/xml.h"

#define MRAS_NS          "http://schemas.microsoft.com/2006/09/sip/mrasp"
#define MRAS_TYPE        "application/msrtc-media-relay-auth+xml"
#define MRAS_MAX_MINUTES (7 * 24 * 60)

bool proxy_service_is_mras(const struct sip_msg *req)
{
    return req->method == SIP_METHOD_SERVICE && strview_eq_nocase(req->content_type, MRAS_TYPE);
}

/* Copies an XML text value, refusing anything that would need escaping
 * when echoed back. */
static bool mras_text(const struct xml_node *n, char *out, size_t cap)
{
    struct strview v = xml_text_trimmed(n);
    if (v.n == 0 || v.n >= cap)
        return false;
    for (size_t i = 0; i < v.n; i++)
        if (v.p[i] == '<' || v.p[i] == '&' || v.p[i] == '"' || (unsigned char)v.p[i] < ' ')
            return false;
    memcpy(out, v.p, v.n);
    out[v.n] = '\0';
    return true;
}

static bool mras_attr(const struct xml_node *n, const char *name, char *out, size_t cap)
{
    const struct xml_attr *a = xml_attr(n, name);
    out[0] = '\0';
    if (!a)
        return true;
    if (a->value.n >= cap)
        return false;
    for (size_t i = 0; i < a->value.n; i++)
        if (a->value.p[i] == '<' || a->value.p[i] == '&' || a->value.p[i] == '"')
            return false;
    memcpy(out, a->value.p, a->value.n);
    out[a->value.n] = '\0';
    return true;
}

void proxy_service_mras(struct proxy *p, struct sip_server_txn *st, const struct sip_msg *req,
                        const char *user)
{
    const struct conn_info *ci = p->env.conn_info(p->env.arg, sip_server_txn_conn(st));
    char aor[PROXY_ADDR_MAX];
    snprintf(aor, sizeof(aor), "sip:%s@%s", user, p->domain);

    if (!ci || !ci->tls) {
        /* the credentials would cross an unprotected hop */
        proxy_reject_log(p, req, sip_server_txn_conn(st), 403, "relay credentials only over TLS");
        sip_server_txn_reply(st, 403, "Forbidden (relay credentials are issued only over TLS)",
                             NULL);
        return;
    }
    struct xml_doc *doc = NULL;
    char err[96];
    if (xml_parse(req->body.p, req->body.n, &doc, err, sizeof(err)) != 0) {
        char reason[160];
        snprintf(reason, sizeof(reason), "Bad Request (malformed MRAS request: %s)", err);
        sip_server_txn_reply(st, 400, reason, NULL);
        return;
    }
    struct xml_node *root = xml_root(doc);
    struct xml_node *cr = strview_eq(root->ns, MRAS_NS) && strview_eq(root->local, "request")
                              ? xml_child(root, MRAS_NS, "credentialsRequest")
                              : NULL;
    struct xml_node *identity = cr ? xml_child(cr, MRAS_NS, "identity") : NULL;
    struct xml_node *location = cr ? xml_child(cr, MRAS_NS, "location") : NULL;
    struct xml_node *duration = cr ? xml_child(cr, MRAS_NS, "duration") : NULL;
    char id[200], loc[32] = "internet", dur[16] = "", request_id[64], cred_id[64];
    if (!cr || !identity || !mras_text(identity, id, sizeof(id)) ||
        (location && !mras_text(location, loc, sizeof(loc))) ||
        (duration && !mras_text(duration, dur, sizeof(dur))) ||
        !mras_attr(root, "requestID", request_id, sizeof(request_id)) ||
        !mras_attr(cr, "credentialsRequestID", cred_id, sizeof(cred_id))) {
        xml_free(doc);
        sip_server_txn_reply(st, 400, "Bad Request (not an MRAS credentialsRequest)", NULL);
        return;
    }
    xml_free(doc);
    if (strcasecmp(id, aor) != 0) {
        proxy_reject_log(p, req, sip_server_txn_conn(st), 403, "MRAS identity is not the user");
        sip_server_txn_reply(st, 403, "Forbidden (the identity is not the authenticated user)",
                             NULL);
        return;
    }
    long minutes = dur[0] ? strtol(dur, NULL, 10) : 0;
    if (minutes < 0 || minutes > MRAS_MAX_MINUTES)
        minutes = 0; /* 0: the longest Parley issues */

    struct proxy_relay_grant g;
    memset(&g, 0, sizeof(g));
    int rc = p->env.relay_credentials ? p->env.relay_credentials(p->env.arg, user, minutes * 60, &g)
                                      : -ENOENT;
    if (rc) {
        sip_server_txn_reply(st, 503,
                             rc == -ENOENT ? "Service Unavailable (no media relay here)"
                                           : "Service Unavailable",
                             NULL);
        return;
    }
    struct strbuf body = STRBUF_INIT;
    strbuf_printf(&body,
                  "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n"
                  "<response xmlns=\"" MRAS_NS "\" requestID=\"%s\" version=\"1.0\" "
                  "serverVersion=\"2\" to=\"%s\" from=\"sip:MRAS@%s\" reasonPhrase=\"OK\">\r\n"
                  "<credentialsResponse credentialsRequestID=\"%s\">\r\n"
                  "<credentials><username>%s</username><password>%s</password>"
                  "<duration>%lld</duration></credentials>\r\n"
                  "<mediaRelayList><mediaRelay><location>%s</location>"
                  "<hostName>%s</hostName><udpPort>%u</udpPort><tcpPort>%u</tcpPort>"
                  "</mediaRelay></mediaRelayList>\r\n"
                  "</credentialsResponse>\r\n"
                  "</response>\r\n",
                  request_id, aor, p->domain, cred_id, g.username, g.password,
                  (long long)(g.lifetime_s / 60), loc, g.host, g.udp_port, g.tcp_port);
    struct strbuf out = STRBUF_INIT;
    const struct sip_msg *r = sip_server_txn_request(st);
    if (!body.err && sip_build_response(r, 200, NULL, sip_server_txn_local_tag(st), NULL, MRAS_TYPE,
                                        strview_make(body.p, body.len), &out) == 0)
        sip_server_txn_send(st, 200, &out);
    strbuf_free(&out);
    strbuf_free(&body);
    log_info("relay.credentials_issued", "user", user, "lifetime_s", LOG_INT(g.lifetime_s), "via",
             "SERVICE");
}
