/*
 * The SIP core's wiring on the core thread: connection events and parsed
 * messages from the transport go to the proxy; the proxy reaches
 * connections, the store and the call log through the functions here.
 */
#include <errno.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <string.h>

#include "anchor/anchor.h"
#include "core/log.h"
#include "crypto/fips.h"
#include "proxy/federation.h"
#include "registrar/throttle.h"
#include "tls/cert.h"
#include "tls/context.h"
#include "tls/expiry.h"
#include "server/metrics.h"
#include "server/runtime.h"
#include "crypto/fips.h"
#include "store/store.h"
#include "store/writer.h"
#include "relay/relay_cred.h"

static const struct conn_info *sipcore_conn_info(void *arg, uint64_t conn)
{
    struct core_conn *cc = runtime_conn_find(arg, conn);
    return cc ? cc->info : NULL;
}

static void sipcore_send(void *arg, uint64_t conn, struct strbuf *data)
{
    metrics_sip_sent(arg, data);
    runtime_send(arg, conn, data);
}

static bool sipcore_user_exists(void *arg, const char *user)
{
    struct runtime *rt = arg;
    struct store_user u;
    return store_user_get(rt->store, user, &u) == 0;
}

static int sipcore_lookup(void *arg, const char *user, enum digest_alg alg,
                          char ha1[DIGEST_HEX_BUF])
{
    struct runtime *rt = arg;
    struct store_user u;
    /* a name the store could never hold is simply no user (not a store
     * failure worth a warning: anyone can send one) */
    if (!store_user_name_valid(user))
        return -ENOENT;
    int rc = store_user_get(rt->store, user, &u);
    if (rc)
        return rc;
    const char *h = alg == DIGEST_ALG_SHA256 ? u.ha1_sha256 : u.ha1_md5;
    if (!*h)
        return -ENOENT; /* no digest stored for this algorithm */
    snprintf(ha1, DIGEST_HEX_BUF, "%s", h);
    return 0;
}

/* A connection that carries registrations stays open while they last, even
 * when the device says nothing for longer than sip.idle_timeout. */
static void sipcore_keep_alive(void *arg, uint64_t conn, unsigned seconds)
{
    struct runtime *rt = arg;
    if (!rt->workers)
        return;
    if (seconds == 0)
        seconds = (unsigned)rt->cfg->registrar.max_expires + 60;
    worker_pool_set_idle(rt->workers, conn, seconds);
}

static void sipcore_binding_added(void *arg, const struct binding *b)
{
    struct runtime *rt = arg;
    if (rt->presence)
        presence_binding_added(rt->presence, b);
}

static enum presence_rule sipcore_presence_rule(void *arg, const char *user, const char *watcher)
{
    struct runtime *rt = arg;
    enum store_presence_rule r;
    if (store_presence_rule_get(rt->store, user, watcher, &r) != 0)
        return PRESENCE_RULE_NONE;
    return r == STORE_PRESENCE_ALLOW   ? PRESENCE_RULE_ALLOW
           : r == STORE_PRESENCE_BLOCK ? PRESENCE_RULE_BLOCK
                                       : PRESENCE_RULE_NONE;
}

static void sipcore_binding_removed(void *arg, const struct binding *b, const char *reason)
{
    struct runtime *rt = arg;
    (void)reason;
    if (rt->presence)
        presence_binding_removed(rt->presence, b);
    if (rt->workers && runtime_conn_find(rt, b->conn) &&
        !registrar_conn_in_use(rt->registrar, b->conn))
        worker_pool_set_idle(rt->workers, b->conn, (unsigned)rt->cfg->sip.idle_timeout);
}

/* An outgoing connection (TLS with tls set, else plain TCP), from the
 * node's own (first TLS) address; its id, or 0. */
static uint64_t sipcore_open(struct runtime *rt, const struct netaddr *addr, SSL_CTX *tls,
                             const char *sni, const char *verify_host)
{
    if (!rt->workers)
        return 0;
    uint64_t id = worker_pool_new_id(rt->workers);
    struct core_conn *cc = runtime_conn_add_outgoing(rt, id, addr);
    if (!cc)
        return 0;
    cc->tls = tls != NULL;
    struct conn_params params = {
        .tls = tls,
        .sni = sni,
        .verify_host = verify_host,
        .proto = &sip_transport_protocol,
        .proto_arg = &rt->transport,
        .listener = -1,
        .handshake_timeout_s = (unsigned)rt->cfg->tls.handshake_timeout,
        .idle_timeout_s = (unsigned)rt->cfg->sip.idle_timeout,
        .read_limit = runtime_read_limit(rt->cfg),
    };
    const struct netaddr *local = NULL;
    for (size_t i = 0; i < rt->nlisteners; i++) {
        if (rt->listeners[i].tls) {
            local = &rt->listeners[i].addr;
            break;
        }
    }
    worker_pool_connect(rt->workers, id, addr, local, &params);
    return id;
}

/* A partner's server or a TLS trunk's gateway. */
static uint64_t sipcore_connect(void *arg, const struct netaddr *addr, const char *sni,
                                const char *verify_host)
{
    struct runtime *rt = arg;
    return sipcore_open(rt, addr, rt->tls, sni, verify_host);
}

/* A TCP trunk's gateway: plain SIP. */
static uint64_t sipcore_connect_tcp(void *arg, const struct netaddr *addr)
{
    return sipcore_open(arg, addr, NULL, NULL, NULL);
}

static bool sipcore_conn_on_mtls_listener(void *arg, uint64_t conn)
{
    struct runtime *rt = arg;
    const struct core_conn *cc = runtime_conn_find(rt, conn);
    return cc && cc->listener >= 0 && (size_t)cc->listener < rt->nlisteners &&
           rt->listeners[cc->listener].kind == LISTENER_MTLS;
}

static bool sipcore_conn_on_trunk_listener(void *arg, uint64_t conn)
{
    struct runtime *rt = arg;
    const struct core_conn *cc = runtime_conn_find(rt, conn);
    return cc && cc->listener >= 0 && (size_t)cc->listener < rt->nlisteners &&
           rt->listeners[cc->listener].kind == LISTENER_TRUNK_TCP;
}

static uint64_t sipcore_partner_conn(void *arg, const char *domain)
{
    struct runtime *rt = arg;
    return rt->proxy ? proxy_federation_conn(rt->proxy, domain) : 0;
}

int sipcore_relay_issue(struct runtime *rt, const char *user, int64_t lifetime_s,
                        struct relay_cred *out)
{
    const struct config *cfg = rt->cfg;
    if (!cfg->relay.enabled || cfg->relay.listen.n == 0)
        return -ENOENT;
    char path[4096], err[256];
    struct relay_secrets secrets;
    if (relay_secrets_path(cfg->state_dir, path, sizeof(path)) != 0 ||
        relay_secrets_load(path, &secrets, NULL, err, sizeof(err)) != 0) {
        log_error("relay.credentials_failed", "reason", err);
        return -EIO;
    }
    int rc = relay_cred_issue(&secrets, user, (int64_t)time(NULL), lifetime_s,
                              cfg->relay.max_lifetime, out);
    OPENSSL_cleanse(&secrets, sizeof(secrets));
    return rc;
}

static int sipcore_relay_credentials(void *arg, const char *user, int64_t lifetime_s,
                                     struct proxy_relay_grant *out)
{
    struct runtime *rt = arg;
    const struct config *cfg = rt->cfg;
    struct relay_cred cred;
    int rc = sipcore_relay_issue(rt, user, lifetime_s, &cred);
    if (rc)
        return rc;
    snprintf(out->username, sizeof(out->username), "%s", cred.username);
    snprintf(out->password, sizeof(out->password), "%s", cred.password);
    out->lifetime_s = cred.lifetime;
    OPENSSL_cleanse(&cred, sizeof(cred));
    char ip[NETADDR_STRLEN];
    if (cfg->relay.relay_address[0])
        snprintf(out->host, sizeof(out->host), "%s", cfg->relay.relay_address);
    else
        snprintf(out->host, sizeof(out->host), "%s",
                 netaddr_format_ip(&cfg->relay.listen.v[0], ip));
    out->udp_port = netaddr_port(&cfg->relay.listen.v[0]);
    out->tcp_port = out->udp_port; /* TURN over TCP shares relay.listen */
    return 0;
}

static void sipcore_conn_authenticated(void *arg, uint64_t conn)
{
    runtime_conn_trust(arg, conn);
}

static void sipcore_disconnect(void *arg, uint64_t conn, const char *reason)
{
    struct runtime *rt = arg;
    if (rt->workers)
        worker_pool_close(rt->workers, conn, reason);
}

/* "HOST:PORT" for URIs Parley writes about itself on conn (see proxy_env):
 * the port is that of the listener the connection came in on, or, for one
 * Parley opened, of the listener peers of that kind reach it on. */
static void sipcore_self_address(void *arg, uint64_t conn, char *out, size_t cap)
{
    struct runtime *rt = arg;
    struct core_conn *cc = runtime_conn_find(rt, conn);
    const struct listener *l = NULL;
    if (cc && cc->listener >= 0 && (size_t)cc->listener < rt->nlisteners)
        l = &rt->listeners[cc->listener];
    /* a connection Parley opened to a TCP trunk's gateway: the trunk
     * listener is where that gateway reaches Parley */
    for (size_t i = 0; !l && cc && !cc->tls && i < rt->nlisteners; i++)
        if (rt->listeners[i].kind == LISTENER_TRUNK_TCP)
            l = &rt->listeners[i];
    for (size_t i = 0; !l && i < rt->nlisteners; i++)
        if (rt->listeners[i].kind == LISTENER_MTLS)
            l = &rt->listeners[i];
    if (!l && rt->nlisteners)
        l = &rt->listeners[0];
    unsigned port = l ? netaddr_port(&l->addr) : 5061;
    if (!rt->self_name[0]) {
        /* no name to give: the address this connection reached us at (a
         * wildcard listener's own address would mean nothing) */
        char a[NETADDR_STRLEN];
        if (cc && cc->info)
            netaddr_format(&cc->info->local, a);
        else if (l)
            netaddr_format(&l->addr, a);
        else
            snprintf(a, sizeof(a), "127.0.0.1:%u", port);
        snprintf(out, cap, "%s", a);
        return;
    }
    bool v6 = strchr(rt->self_name, ':') != NULL;
    snprintf(out, cap, "%s%s%s:%u", v6 ? "[" : "", rt->self_name, v6 ? "]" : "", port);
}

/* sip.advertised_name, else the first DNS name of the certificate, else
 * none: each connection's own local address (logged: clients that check
 * names will fail on URIs naming an address). A name the certificate does
 * not carry is warned about. */
static void sipcore_pick_self_name(struct runtime *rt)
{
    const struct config *cfg = rt->cfg;
    char name[256] = "";
    const char *from = "sip.advertised_name";
    if (cfg->sip.advertised_name[0]) {
        snprintf(name, sizeof(name), "%s", cfg->sip.advertised_name);
        if (!cert_file_matches_host(cfg->tls.certificate, name))
            log_warn("sip.advertised_name", "name", name, "reason",
                     "the server certificate does not carry this name: clients that check names "
                     "will refuse URIs naming it");
    } else if (cert_first_dns_name(cfg->tls.certificate, name, sizeof(name)) == 0) {
        from = "certificate";
    } else {
        from = "connection address";
        log_warn("sip.advertised_name", "name", "", "from", from, "reason",
                 "the certificate carries no DNS name: URIs name each connection's local "
                 "address, which clients that check names cannot verify; set "
                 "sip.advertised_name");
    }
    if (strcmp(name, rt->self_name) != 0 && name[0])
        log_info("sip.advertised_name", "name", name, "from", from);
    snprintf(rt->self_name, sizeof(rt->self_name), "%s", name);
}

static const char *sipcore_txn_admit(void *arg, uint64_t conn)
{
    return runtime_txn_admit(arg, conn);
}

static void sipcore_txn_held(void *arg, uint64_t conn, int delta)
{
    runtime_txn_held(arg, conn, delta);
}

static void sipcore_throttle_config(const struct config *cfg, struct throttle_config *tc)
{
    tc->max_failures = (unsigned)cfg->auth.max_failures;
    tc->max_user_failures = (unsigned)cfg->auth.max_user_failures;
    tc->max_source_failures = (unsigned)cfg->auth.max_source_failures;
    tc->window_ms = (uint64_t)cfg->auth.failure_window * 1000;
    tc->backoff_ms = (uint64_t)cfg->auth.block_time * 1000;
    tc->backoff_max_ms = (uint64_t)cfg->auth.max_block_time * 1000;
    tc->trust_ms = (uint64_t)cfg->auth.trust_time * 1000;
    tc->max_entries = (size_t)cfg->auth.max_tracked;
}

static void sipcore_call_ended(void *arg, const struct proxy_call_record *rec)
{
    struct runtime *rt = arg;
    struct store_call c = {
        .call_id = rec->call_id,
        .caller = rec->caller,
        .callee = rec->callee,
        .started = rec->started,
        .answered = rec->answered,
        .ended = rec->ended,
        .reason = rec->reason,
        .media = rec->media,
        .legs = rec->legs,
    };
    if (rt->store_writer)
        store_writer_call(rt->store_writer, &c);
}

void sipcore_configs(const struct config *cfg, struct auth_config *ac, struct registrar_config *rc,
                     struct proxy_config *pc, struct presence_config *prc)
{
    memset(ac, 0, sizeof(*ac));
    ac->realm = cfg->server.domain;
    for (size_t i = 0; i < cfg->auth.algorithms.n && i < AUTH_MAX_ALGORITHMS; i++) {
        enum digest_alg alg;
        if (digest_alg_parse(strview_cstr(cfg->auth.algorithms.v[i]), &alg) == 0)
            ac->algorithms[ac->nalgorithms++] = alg;
    }
    ac->nonce_lifetime_ms = (uint64_t)cfg->auth.nonce_lifetime * 1000;
    ac->max_nonces = 0;

    rc->domain = cfg->server.domain;
    rc->min_expires = (uint32_t)cfg->registrar.min_expires;
    rc->max_expires = (uint32_t)cfg->registrar.max_expires;
    rc->default_expires = (uint32_t)cfg->registrar.default_expires;
    rc->max_per_user = (size_t)cfg->registrar.max_devices_per_user;
    rc->max_total = (size_t)cfg->limits.connections_total * 4;

    pc->domain = cfg->server.domain;
    pc->max_im_body = (size_t)cfg->im.max_body_size;
    pc->media_level = cfg->media.encryption_level;
    pc->media_suites = (const char *const *)cfg->media.srtp_suites.v;
    pc->media_nsuites = cfg->media.srtp_suites.n;
    pc->max_transactions_per_user = (size_t)cfg->limits.transactions_per_user;
    pc->max_trunk_calls_per_user = (size_t)cfg->limits.trunk_calls_per_user;
    pc->anchor_media = strcmp(cfg->media.anchor, "always") == 0;

    prc->domain = cfg->server.domain;
    prc->policy = strcmp(cfg->presence.policy, "contacts") == 0 ? PRESENCE_POLICY_CONTACTS
                                                                : PRESENCE_POLICY_DOMAIN;
    prc->min_notify_interval_ms = (uint64_t)cfg->presence.min_notify_interval * 1000;
    prc->min_expires = (uint32_t)cfg->presence.min_expires;
    prc->max_expires = (uint32_t)cfg->presence.max_expires;
    prc->max_subscriptions = (size_t)cfg->presence.max_subscriptions;
    prc->max_per_user = (size_t)cfg->presence.max_per_user;
    prc->max_per_watcher = (size_t)cfg->presence.max_per_watcher;
}

/* The media engine says a stream went silent: its call ends. */
static void sipcore_media_timed_out(void *arg, uint64_t stream, const char *call_id)
{
    (void)call_id;
    struct runtime *rt = arg;
    if (rt->proxy)
        proxy_media_timed_out(rt->proxy, stream);
}

int sipcore_start(struct runtime *rt, char *err, size_t errlen)
{
    struct auth_config ac;
    struct registrar_config rc;
    struct proxy_config pc;
    struct presence_config prc;
    sipcore_configs(rt->cfg, &ac, &rc, &pc, &prc);
    ac.restricted = fips_restricted(rt->fips);
    sipcore_pick_self_name(rt);
    pc.self_name = rt->self_name;

    rt->listen_addrs = calloc(rt->nlisteners ? rt->nlisteners : 1, sizeof(*rt->listen_addrs));
    if (!rt->listen_addrs)
        goto nomem;
    for (size_t i = 0; i < rt->nlisteners; i++)
        rt->listen_addrs[i] = rt->listeners[i].addr;

    int drc = dns_resolver_new(rt->base, rt->cfg->dns.nameservers, &rt->dns, err, errlen);
    if (drc)
        return drc;
    /* the media engine, on threads of its own; the proxy anchors calls in
     * it when media.anchor says so (reloadable), so it always runs */
    struct anchor_events aev = {.arg = rt,
                                .timed_out = sipcore_media_timed_out,
                                .libctx = fips_libctx(rt->fips),
                                .propq = fips_propq(rt->fips)};
    drc = anchor_start(rt->cfg, rt->base, &aev, &rt->anchor, err, errlen);
    if (drc && strcmp(rt->cfg->media.anchor, "always") == 0)
        return drc;
    if (drc) {
        /* nobody needs it now: the server runs, and says why it is missing */
        log_warn("media.not_started", "reason", err, "action",
                 "calls are not anchored; media.anchor = always needs a restart once fixed");
        err[0] = '\0';
    }
    rt->auth = auth_new(clock_system(), &ac);
    rt->registrar = registrar_new(rt->timers, &rc);
    struct throttle_config tc;
    sipcore_throttle_config(rt->cfg, &tc);
    rt->throttle = throttle_new(rt->timers, &tc);
    if (!rt->auth || !rt->registrar || !rt->throttle)
        goto nomem;
    registrar_on_removed(rt->registrar, sipcore_binding_removed, rt);
    registrar_on_added(rt->registrar, sipcore_binding_added, rt);
    struct proxy_env env = {
        .arg = rt,
        .conn_info = sipcore_conn_info,
        .send = sipcore_send,
        .user_exists = sipcore_user_exists,
        .lookup = sipcore_lookup,
        .keep_alive = sipcore_keep_alive,
        .call_ended = sipcore_call_ended,
        .number_owner = mediation_number_owner,
        .user_outbound = mediation_user_outbound,
        .user_number = mediation_user_number,
        .connect_tcp = sipcore_connect_tcp,
        .conn_on_trunk_listener = sipcore_conn_on_trunk_listener,
        .conn_on_mtls_listener = sipcore_conn_on_mtls_listener,
        .connect = sipcore_connect,
        .relay_credentials = sipcore_relay_credentials,
        .disconnect = sipcore_disconnect,
        .conn_authenticated = sipcore_conn_authenticated,
        .dns = rt->dns,
        .listeners = rt->listen_addrs,
        .nlisteners = rt->nlisteners,
        .txn_admit = sipcore_txn_admit,
        .txn_held = sipcore_txn_held,
        .throttle = rt->throttle,
        .self_address = sipcore_self_address,
        .anchor = rt->anchor,
    };
    rt->proxy = proxy_new(rt->timers, &env, &pc, rt->registrar, rt->auth);
    if (!rt->proxy)
        goto nomem;
    struct presence_env penv = {
        .arg = rt,
        .conn_info = sipcore_conn_info,
        .partner_conn = sipcore_partner_conn,
        .rule = sipcore_presence_rule,
        .self_address = sipcore_self_address,
    };
    rt->presence = presence_new(rt->timers, proxy_txn_layer(rt->proxy), rt->registrar, &penv, &prc);
    if (!rt->presence)
        goto nomem;
    proxy_set_presence(rt->proxy, rt->presence);
    sipcore_load_partners(rt);
    mediation_load_dialplan(rt);
    sipcore_check_certificates(rt);
    return 0;
nomem:
    snprintf(err, errlen, "out of memory starting the SIP core");
    return -ENOMEM;
}

struct sipcore_partner_list {
    struct federation_partner_conf *v;
    struct store_partner *rows;
    size_t n, cap;
};

static int sipcore_partner_row(const struct store_partner *p, void *arg)
{
    struct sipcore_partner_list *l = arg;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        struct store_partner *rows = realloc(l->rows, cap * sizeof(*rows));
        if (!rows)
            return -ENOMEM;
        l->rows = rows;
        l->cap = cap;
    }
    l->rows[l->n++] = *p;
    return 0;
}

int sipcore_load_partners(struct runtime *rt)
{
    struct sipcore_partner_list l = {0};
    int rc = store_partner_list(rt->store, sipcore_partner_row, &l);
    if (rc == 0) {
        l.v = calloc(l.n ? l.n : 1, sizeof(*l.v));
        if (!l.v)
            rc = -ENOMEM;
    }
    if (rc == 0) {
        for (size_t i = 0; i < l.n; i++) {
            l.v[i].domain = l.rows[i].domain;
            l.v[i].server = l.rows[i].server;
            l.v[i].port = l.rows[i].port;
            l.v[i].address = l.rows[i].address;
        }
        rc = proxy_federation_set(rt->proxy, l.v, l.n);
        log_info("federation.partners", "count", LOG_INT(l.n));
        if (l.n && !rt->cfg->sip.mtls_listen.n &&
            strcmp(rt->cfg->sip.client_certificates, "none") == 0)
            log_warn("federation.no_listener", "partners", LOG_INT(l.n), "reason",
                     "no sip.mtls_listen and sip.client_certificates = none: partners cannot "
                     "prove themselves to this node; add sip.mtls_listen (and point partners at "
                     "it) or set sip.client_certificates = request");
    } else {
        log_error("federation.partners_failed", "reason", store_errmsg(rt->store));
    }
    free(l.v);
    free(l.rows);
    return rc;
}

/* --- certificates that expire soon --------------------------------------- */

#define CERT_CHECK_INTERVAL_S (24 * 3600)

static bool sipcore_warn_partner(const struct federation_partner_info *info, void *arg)
{
    (void)arg;
    if (info->have_cert)
        tls_expiry_check_partner(info->domain, &info->cert, (int64_t)time(NULL));
    return true;
}

static void sipcore_on_cert_check(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sipcore_check_certificates(arg);
}

/* Ours, the CAs we trust and partners' are warned about at start-up and
 * daily once fewer than 30 days are left (tls/expiry). */
void sipcore_check_certificates(struct runtime *rt)
{
    tls_expiry_check_files(rt->cfg, (int64_t)time(NULL));
    if (rt->proxy)
        proxy_federation_foreach(rt->proxy, sipcore_warn_partner, NULL);
    if (!rt->cert_check_ev)
        rt->cert_check_ev = evtimer_new(rt->base, sipcore_on_cert_check, rt);
    if (rt->cert_check_ev) {
        struct timeval tv = {CERT_CHECK_INTERVAL_S, 0};
        event_add(rt->cert_check_ev, &tv);
    }
}

void sipcore_reconfigure(struct runtime *rt)
{
    struct auth_config ac;
    struct registrar_config rc;
    struct proxy_config pc;
    struct presence_config prc;
    sipcore_configs(rt->cfg, &ac, &rc, &pc, &prc);
    ac.restricted = fips_restricted(rt->fips);
    sipcore_pick_self_name(rt);
    pc.self_name = rt->self_name;
    auth_set_config(rt->auth, &ac);
    struct throttle_config tc;
    sipcore_throttle_config(rt->cfg, &tc);
    throttle_set_config(rt->throttle, &tc);
    registrar_set_config(rt->registrar, &rc);
    proxy_set_config(rt->proxy, &pc);
    presence_set_config(rt->presence, &prc);
}

void sipcore_stop(struct runtime *rt)
{
    if (rt->cert_check_ev) {
        event_free(rt->cert_check_ev);
        rt->cert_check_ev = NULL;
    }
    /* pending lookups are answered "cancelled" while the proxy still exists */
    dns_resolver_free(rt->dns);
    rt->dns = NULL;
    /* presence's NOTIFY transactions live in the proxy's layer: presence
     * goes first, detaching itself from them */
    presence_free(rt->presence);
    rt->presence = NULL;
    if (rt->proxy)
        proxy_set_presence(rt->proxy, NULL);
    mediation_stop(rt);
    proxy_free(rt->proxy);
    rt->proxy = NULL;
    registrar_free(rt->registrar);
    rt->registrar = NULL;
    auth_free(rt->auth);
    rt->auth = NULL;
    throttle_free(rt->throttle);
    rt->throttle = NULL;
    free(rt->listen_addrs);
    rt->listen_addrs = NULL;
}

void sipcore_on_event(struct mbox_msg *m, void *arg)
{
    struct runtime *rt = arg;
    struct sip_tp_event *ev = (struct sip_tp_event *)m;

    switch ((enum sip_tp_event_type)m->type) {
    case SIP_TP_OPEN: {
        struct conn_info *info = ev->info;
        runtime_conn_opened(rt, ev->conn, info);
        ev->info = NULL;
        if (rt->proxy && runtime_conn_find(rt, ev->conn))
            proxy_conn_opened(rt->proxy, ev->conn, info);
        break;
    }
    case SIP_TP_CLOSE:
        /* bindings first: their end is what takes a device's presence away */
        if (rt->proxy)
            proxy_conn_closed(rt->proxy, ev->conn, ev->reason);
        if (rt->presence)
            presence_conn_closed(rt->presence, ev->conn);
        runtime_conn_closed(rt, ev->conn, ev->reason);
        break;
    case SIP_TP_MESSAGE: {
        if (rt->proxy && runtime_conn_find(rt, ev->conn)) {
            metrics_sip_received(rt, ev->msg);
            proxy_on_message(rt->proxy, ev->conn, ev->msg);
            ev->msg = NULL;
        }
        break;
    }
    }
    sip_tp_event_free(ev);
}
