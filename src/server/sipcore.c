/*
 * The SIP core's wiring on the core thread: connection events and parsed
 * messages from the transport go to the proxy; the proxy reaches
 * connections, the store and the call log through the functions here.
 */
#include <errno.h>
#include <string.h>

#include "core/log.h"
#include "server/runtime.h"
#include "store/store.h"

static const struct conn_info *sipcore_conn_info(void *arg, uint64_t conn)
{
    struct core_conn *cc = runtime_conn_find(arg, conn);
    return cc ? cc->info : NULL;
}

static void sipcore_send(void *arg, uint64_t conn, struct strbuf *data)
{
    runtime_send(arg, conn, data);
}

static bool sipcore_user_exists(void *arg, const char *user)
{
    struct runtime *rt = arg;
    struct store_user u;
    return store_user_get(rt->store, user, &u) == 0;
}

static int sipcore_lookup(void *arg, const char *user, enum digest_alg alg, char ha1[DIGEST_HEX_BUF])
{
    struct runtime *rt = arg;
    struct store_user u;
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
    if (rt->workers && runtime_conn_find(rt, b->conn) && !registrar_conn_in_use(rt->registrar, b->conn))
        worker_pool_set_idle(rt->workers, b->conn, (unsigned)rt->cfg->sip.idle_timeout);
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
        .media = NULL,
    };
    if (store_call_insert(rt->store, &c, NULL) != 0)
        log_error("call.store_failed", "call_id", rec->call_id, "reason", store_errmsg(rt->store));
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

    prc->domain = cfg->server.domain;
    prc->policy = strcmp(cfg->presence.policy, "contacts") == 0 ? PRESENCE_POLICY_CONTACTS
                                                                : PRESENCE_POLICY_DOMAIN;
    prc->min_notify_interval_ms = (uint64_t)cfg->presence.min_notify_interval * 1000;
    prc->min_expires = (uint32_t)cfg->presence.min_expires;
    prc->max_expires = (uint32_t)cfg->presence.max_expires;
    prc->max_subscriptions = (size_t)cfg->presence.max_subscriptions;
    prc->max_per_user = (size_t)cfg->presence.max_per_user;
}

int sipcore_start(struct runtime *rt, char *err, size_t errlen)
{
    struct auth_config ac;
    struct registrar_config rc;
    struct proxy_config pc;
    struct presence_config prc;
    sipcore_configs(rt->cfg, &ac, &rc, &pc, &prc);

    rt->listen_addrs = calloc(rt->nlisteners ? rt->nlisteners : 1, sizeof(*rt->listen_addrs));
    if (!rt->listen_addrs)
        goto nomem;
    for (size_t i = 0; i < rt->nlisteners; i++)
        rt->listen_addrs[i] = rt->listeners[i].addr;

    rt->auth = auth_new(clock_system(), &ac);
    rt->registrar = registrar_new(rt->timers, &rc);
    if (!rt->auth || !rt->registrar)
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
        .listeners = rt->listen_addrs,
        .nlisteners = rt->nlisteners,
    };
    rt->proxy = proxy_new(rt->timers, &env, &pc, rt->registrar, rt->auth);
    if (!rt->proxy)
        goto nomem;
    struct presence_env penv = {
        .arg = rt,
        .conn_info = sipcore_conn_info,
        .rule = sipcore_presence_rule,
    };
    rt->presence = presence_new(rt->timers, proxy_txn_layer(rt->proxy), rt->registrar, &penv, &prc);
    if (!rt->presence)
        goto nomem;
    proxy_set_presence(rt->proxy, rt->presence);
    return 0;
nomem:
    snprintf(err, errlen, "out of memory starting the SIP core");
    return -ENOMEM;
}

void sipcore_reconfigure(struct runtime *rt)
{
    struct auth_config ac;
    struct registrar_config rc;
    struct proxy_config pc;
    struct presence_config prc;
    sipcore_configs(rt->cfg, &ac, &rc, &pc, &prc);
    auth_set_config(rt->auth, &ac);
    registrar_set_config(rt->registrar, &rc);
    proxy_set_config(rt->proxy, &pc);
    presence_set_config(rt->presence, &prc);
}

void sipcore_stop(struct runtime *rt)
{
    /* presence's NOTIFY transactions live in the proxy's layer: presence
     * goes first, detaching itself from them */
    presence_free(rt->presence);
    rt->presence = NULL;
    if (rt->proxy)
        proxy_set_presence(rt->proxy, NULL);
    proxy_free(rt->proxy);
    rt->proxy = NULL;
    registrar_free(rt->registrar);
    rt->registrar = NULL;
    auth_free(rt->auth);
    rt->auth = NULL;
    free(rt->listen_addrs);
    rt->listen_addrs = NULL;
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
        /* bindings first: their end is what takes a device's presence away */
        if (rt->proxy)
            proxy_conn_closed(rt->proxy, ev->conn);
        if (rt->presence)
            presence_conn_closed(rt->presence, ev->conn);
        runtime_conn_closed(rt, ev->conn, ev->reason);
        break;
    case SIP_TP_MESSAGE:
        if (rt->proxy && runtime_conn_find(rt, ev->conn)) {
            proxy_on_message(rt->proxy, ev->conn, ev->msg);
            ev->msg = NULL;
        }
        break;
    }
    sip_tp_event_free(ev);
}
