/*
 * websvc — the HTTPS web services wired into parleyd: the HTTP transport's
 * events from the workers (through a mailbox of their own on the core
 * thread) to src/web, answers back to the workers, reload and stop.
 *
 * HTTPS connections come through the same accept path as SIP (listener.c:
 * connection limits, per-source counts, a worker), are parsed there by
 * http/transport, and are answered here on the core thread, where the store
 * and the password-guessing throttle live.
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "http/response.h"
#include "http/transport.h"
#include "crypto/fips.h"
#include "server/metrics.h"
#include "server/runtime.h"
#include "web/web.h"

static void websvc_config(const struct config *cfg, struct web_config *wc)
{
    memset(wc, 0, sizeof(*wc));
    wc->domain = cfg->server.domain;
    wc->realm = cfg->server.domain;
    for (size_t i = 0; i < cfg->auth.algorithms.n; i++) {
        if (strcmp(cfg->auth.algorithms.v[i], "MD5") == 0)
            wc->allow_md5 = true;
        if (strcmp(cfg->auth.algorithms.v[i], "SHA-256") == 0)
            wc->allow_sha256 = true;
    }
    wc->ticket_lifetime_s = cfg->https.ticket_lifetime;
    wc->max_body_size = (size_t)cfg->https.max_body_size;
    wc->content_max_file = (size_t)cfg->https.content_max_file;
    wc->content_quota_meeting = (uint64_t)cfg->https.content_quota_meeting;
    wc->content_quota_total = (uint64_t)cfg->https.content_quota_total;
    wc->metrics_networks = cfg->https.metrics_networks.v;
    wc->nmetrics_networks = cfg->https.metrics_networks.n;
}

static void websvc_apply_transport(struct runtime *rt)
{
    const struct config *cfg = rt->cfg;
    atomic_store(&rt->http_transport.max_header_size, (size_t)cfg->https.max_header_size);
    atomic_store(&rt->http_transport.request_timeout_s, (unsigned)cfg->https.request_timeout);
    atomic_store(&rt->http_transport.keepalive_timeout_s, (unsigned)cfg->https.keepalive_timeout);
}

/* The relay's URIs: turn: over UDP and TCP on relay.listen, turns: on
 * relay.tls_listen, by the name Parley gives itself when it has one. */
static int websvc_relay_credentials(void *arg, const char *user, struct web_relay_grant *out)
{
    struct runtime *rt = arg;
    const struct config *cfg = rt->cfg;
    struct relay_cred cred;
    int rc = sipcore_relay_issue(rt, user, 0, &cred);
    if (rc)
        return rc;
    snprintf(out->username, sizeof(out->username), "%s", cred.username);
    snprintf(out->password, sizeof(out->password), "%s", cred.password);
    out->ttl_s = cred.lifetime;
    OPENSSL_cleanse(&cred, sizeof(cred));

    char ip[NETADDR_STRLEN], host[300];
    const struct netaddr *udp = &cfg->relay.listen.v[0];
    if (cfg->relay.relay_address[0])
        snprintf(host, sizeof(host), "%s", cfg->relay.relay_address);
    else
        snprintf(host, sizeof(host), "%s", netaddr_format_ip(udp, ip));
    bool v6 = strchr(host, ':') != NULL;
    const char *lb = v6 ? "[" : "", *rb = v6 ? "]" : "";
    out->nuris = 0;
    snprintf(out->uris[out->nuris++], sizeof(out->uris[0]), "turn:%s%s%s:%u?transport=udp", lb,
             host, rb, netaddr_port(udp));
    snprintf(out->uris[out->nuris++], sizeof(out->uris[0]), "turn:%s%s%s:%u?transport=tcp", lb,
             host, rb, netaddr_port(udp));
    if (cfg->relay.tls_listen.n) {
        const struct netaddr *tls = &cfg->relay.tls_listen.v[0];
        const char *name = rt->self_name[0] ? rt->self_name : netaddr_format_ip(tls, ip);
        bool n6 = strchr(name, ':') != NULL;
        snprintf(out->uris[out->nuris++], sizeof(out->uris[0]), "turns:%s%s%s:%u?transport=tcp",
                 n6 ? "[" : "", name, n6 ? "]" : "", netaddr_port(tls));
    }
    return 0;
}

static int websvc_metrics(void *arg, struct strbuf *out)
{
    return metrics_text(arg, out);
}

static void websvc_on_event(struct mbox_msg *m, void *arg)
{
    struct runtime *rt = arg;
    struct http_tp_event *ev = (struct http_tp_event *)m;

    switch ((enum http_tp_event_type)m->type) {
    case HTTP_TP_OPEN:
        runtime_conn_opened(rt, ev->conn, ev->info);
        ev->info = NULL;
        break;
    case HTTP_TP_CLOSE:
        runtime_conn_closed(rt, ev->conn, ev->reason);
        break;
    case HTTP_TP_REQUEST: {
        struct core_conn *cc = runtime_conn_find(rt, ev->conn);
        if (!cc || !rt->web)
            break;
        struct web_peer peer = {.conn = ev->conn, .addr = cc->peer};
        struct strbuf out = STRBUF_INIT;
        bool close = false;
        web_handle(rt->web, &peer, ev->req, &out, &close);
        runtime_send(rt, ev->conn, &out);
        if (close && rt->workers)
            worker_pool_close(rt->workers, ev->conn, "response said Connection: close");
        break;
    }
    }
    http_tp_event_free(ev);
}

int websvc_start(struct runtime *rt, char *err, size_t errlen)
{
    rt->http_mbox = mbox_new(rt->base, websvc_on_event, rt);
    if (!rt->http_mbox) {
        snprintf(err, errlen, "out of memory during start-up");
        return -ENOMEM;
    }
    http_transport_init(&rt->http_transport, rt->http_mbox);
    websvc_apply_transport(rt);
    if (rt->cfg->https.listen.n == 0)
        return 0;
    struct web_env env = {
        .store = rt->store,
        .throttle = rt->throttle,
        .auth = rt->auth,
        .clock = timer_heap_clock(rt->timers),
        .state_dir = rt->cfg->state_dir,
        .libctx = fips_libctx(rt->fips),
        .relay_credentials = websvc_relay_credentials,
        .metrics = websvc_metrics,
        .arg = rt,
    };
    struct web_config wc;
    websvc_config(rt->cfg, &wc);
    int rc = web_new(&env, &wc, &rt->web, err, errlen);
    if (rc)
        return rc;
    rt->http_transport.body_limit = web_body_limit;
    rt->http_transport.body_limit_arg = rt->web;
    return 0;
}

void websvc_reconfigure(struct runtime *rt)
{
    websvc_apply_transport(rt);
    if (!rt->web)
        return;
    struct web_config wc;
    websvc_config(rt->cfg, &wc);
    char err[512];
    if (web_reload(rt->web, &wc, err, sizeof(err)) != 0)
        log_error("https.reload_failed", "reason", err, "action",
                  "keeping the web services' running configuration");
}

void websvc_stop(struct runtime *rt)
{
    /* events still queued are handled (and freed) while the services exist */
    mbox_free(rt->http_mbox);
    rt->http_mbox = NULL;
    web_free(rt->web);
    rt->web = NULL;
}
