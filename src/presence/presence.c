#include "presence/presence.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hmap.h"
#include "core/log.h"
#include "core/log_limit.h"
#include "core/random.h"
#include "sip/dialog.h"
#include "presence/pidf.h"
#include "sip/build.h"

#define PRESENCE_DEFAULT_EXPIRES 3600
#define PRESENCE_ETAG_LEN        16
#define PRESENCE_AOR_MAX         200

struct presentity;

/* One device's published state (RFC 3903). */
struct publication {
    struct publication *next;
    struct presentity *pe;
    struct presence *ps;
    char etag[PRESENCE_ETAG_LEN + 1];
    uint64_t conn;
    char *body;
    size_t len;
    struct pidf_state state;
    struct timer timer;
};

enum sub_state {
    SUB_PENDING,
    SUB_ACTIVE,
};

/* A watcher's subscription: a dialog in which Parley is the notifier. */
struct subscription {
    struct sip_txn_user user; /* first: context of its NOTIFY transactions */
    struct hmap_node node;    /* by Call-ID */
    struct subscription *next_of_presentity;
    struct presentity *pe;
    struct watcher *wc;
    struct presence *ps;
    char watcher[PRESENCE_AOR_MAX];
    struct sip_dialog dlg; /* Parley's side, the notifier's (sip/dialog) */
    uint64_t conn;
    enum sub_state state;
    int64_t expires_at_ms;
    struct timer expiry;
    struct timer throttle;
    uint64_t last_notify_ms;
    bool dirty; /* state changed since the last NOTIFY */
    struct sip_client_txn *inflight;
    uint64_t last_body_hash;
};

/* How many subscriptions one watcher holds: one user cannot take the
 * whole table. */
struct watcher {
    struct hmap_node node;
    size_t nsubs;
    char aor[];
};

struct presentity {
    struct hmap_node node;
    char *user;
    struct publication *pubs;
    size_t npubs;
    struct subscription *subs;
    size_t nsubs;
};

struct presence {
    struct log_limit *reject_log; /* refusals, at most a line a second per source and reason */
    struct timer_heap *timers;
    struct sip_txn_layer *txn;
    struct registrar *registrar;
    struct presence_env env;
    struct presence_config cfg;
    char *domain;
    struct hmap presentities; /* by user */
    struct hmap dialogs;      /* subscriptions by Call-ID */
    struct hmap watchers;     /* struct watcher by AOR */
    size_t nsubs, npubs;
};

static void presence_self_address(struct presence *ps, const struct conn_info *ci, char *out,
                                  size_t cap)
{
    if (ps->env.self_address)
        ps->env.self_address(ps->env.arg, ci->id, out, cap);
    else
        netaddr_format(&ci->local, out); /* cap >= NETADDR_STRLEN */
}

static uint64_t presence_now(struct presence *ps)
{
    return clock_now_ms(timer_heap_clock(ps->timers));
}

/* --- presentities ------------------------------------------------------- */

static struct presentity *presentity_find(struct presence *ps, const char *user)
{
    uint64_t h = hash_bytes(user, strlen(user));
    for (struct hmap_node *n = hmap_first(&ps->presentities, h); n; n = hmap_next(n, h)) {
        struct presentity *pe = container_of(n, struct presentity, node);
        if (strcmp(pe->user, user) == 0)
            return pe;
    }
    return NULL;
}

static struct presentity *presentity_get(struct presence *ps, const char *user)
{
    struct presentity *pe = presentity_find(ps, user);
    if (pe)
        return pe;
    pe = calloc(1, sizeof(*pe));
    if (!pe || !(pe->user = strdup(user))) {
        free(pe);
        return NULL;
    }
    hmap_insert(&ps->presentities, &pe->node, hash_bytes(user, strlen(user)));
    return pe;
}

static void presentity_drop_if_unused(struct presence *ps, struct presentity *pe)
{
    if (pe->pubs || pe->subs)
        return;
    hmap_remove(&ps->presentities, &pe->node);
    free(pe->user);
    free(pe);
}

static struct watcher *watcher_get(struct presence *ps, const char *aor)
{
    uint64_t h = hash_bytes(aor, strlen(aor));
    for (struct hmap_node *n = hmap_first(&ps->watchers, h); n; n = hmap_next(n, h)) {
        struct watcher *w = container_of(n, struct watcher, node);
        if (strcmp(w->aor, aor) == 0)
            return w;
    }
    size_t len = strlen(aor);
    struct watcher *w = calloc(1, sizeof(*w) + len + 1);
    if (!w)
        return NULL;
    memcpy(w->aor, aor, len + 1);
    hmap_insert(&ps->watchers, &w->node, h);
    return w;
}

static void watcher_drop_if_unused(struct presence *ps, struct watcher *w)
{
    if (w->nsubs)
        return;
    hmap_remove(&ps->watchers, &w->node);
    free(w);
}

/* The document watchers get: the most available device's own document
 * (extensions and all), a plain one when the user is registered but
 * published nothing, and "closed" when no device is registered. */
static void presentity_compose(struct presence *ps, struct presentity *pe, struct strbuf *out)
{
    char aor[PRESENCE_AOR_MAX];
    snprintf(aor, sizeof(aor), "%s@%s", pe->user, ps->domain);
    const struct binding *b[1];
    bool registered = registrar_lookup(ps->registrar, pe->user, b, 1) > 0;
    if (registered) {
        struct publication *best = NULL;
        for (struct publication *p = pe->pubs; p; p = p->next)
            if (!best || pidf_rank(&p->state) > pidf_rank(&best->state))
                best = p;
        if (best) {
            strbuf_append(out, best->body, best->len);
            return;
        }
    }
    struct pidf_state st = {.open = registered, .activity = ""};
    pidf_write(aor, &st, out);
}

/* --- NOTIFY ------------------------------------------------------------- */

static void subscription_free(struct subscription *s);

static void notify_response(struct sip_txn_user *u, struct sip_client_txn *t,
                            const struct sip_msg *resp, int status, bool retransmission);
static void notify_terminated(struct sip_txn_user *u, struct sip_client_txn *t);

/* Sends a NOTIFY with the subscription's current state; `terminated`
 * names the reason when the subscription ends with it. */
static bool presence_watcher_foreign(struct presence *ps, const struct subscription *s)
{
    const char *at = strrchr(s->watcher, '@');
    return at && strcasecmp(at + 1, ps->domain) != 0;
}

#define PRESENCE_PARTNER_RETRY_MS 1000

static void subscription_on_throttle(struct timer *t, void *arg);

static void subscription_notify(struct subscription *s, const char *terminated)
{
    struct presence *ps = s->ps;
    const struct conn_info *ci = ps->env.conn_info(ps->env.arg, s->conn);
    if (!ci && presence_watcher_foreign(ps, s) && ps->env.partner_conn) {
        /* a partner's watcher: its server is reached again (the link went
         * idle or the partner restarted) */
        s->conn = ps->env.partner_conn(ps->env.arg, strrchr(s->watcher, '@') + 1);
        ci = s->conn ? ps->env.conn_info(ps->env.arg, s->conn) : NULL;
        if (!ci) {
            if (!terminated) {
                s->dirty = true;
                timer_start(ps->timers, &s->throttle, PRESENCE_PARTNER_RETRY_MS,
                            subscription_on_throttle, s);
            }
            return;
        }
    }
    if (!ci)
        return; /* the watcher's connection is gone; nothing can reach it */

    struct strbuf body = STRBUF_INIT;
    if (!terminated && s->state == SUB_ACTIVE)
        presentity_compose(ps, s->pe, &body);

    uint64_t now = presence_now(ps);
    char state[96];
    if (terminated) {
        snprintf(state, sizeof(state), "terminated;reason=%s", terminated);
    } else {
        int64_t left = (s->expires_at_ms - (int64_t)now) / 1000;
        snprintf(state, sizeof(state), "%s;expires=%lld",
                 s->state == SUB_ACTIVE ? "active" : "pending", (long long)(left > 0 ? left : 0));
    }

    char branch[48], local[300], via[400];
    sip_txn_new_branch(branch, sizeof(branch));
    presence_self_address(ps, ci, local, sizeof(local));
    snprintf(via, sizeof(via), "SIP/2.0/%s %s;branch=%s", ci->tls ? "TLS" : "TCP", local, branch);
    struct strbuf extra = STRBUF_INIT, m = STRBUF_INIT;
    strbuf_printf(&extra,
                  "Contact: <sip:%s@%s;transport=%s>\r\n"
                  "Event: presence\r\n"
                  "Subscription-State: %s\r\n",
                  s->pe->user, local, ci->tls ? "tls" : "tcp", state);
    if (!extra.err)
        sip_dialog_request(&s->dlg, "NOTIFY", 0, via, strbuf_cstr(&extra), "application/pidf+xml",
                           strview_make(body.p, body.len), &m);
    strbuf_free(&extra);

    uint64_t h = body.len ? hash_bytes(body.p, body.len) : 0;
    strbuf_free(&body);
    if (m.err) {
        strbuf_free(&m);
        return;
    }
    struct sip_msg *msg = NULL;
    struct sip_parse_error perr;
    int rc = sip_msg_parse(m.p, m.len, &msg, &perr);
    strbuf_free(&m);
    if (rc != 0) {
        log_warn("presence.notify_failed", "watcher", s->watcher, "reason", perr.reason);
        return;
    }
    s->last_notify_ms = now;
    s->last_body_hash = h;
    s->dirty = false;
    struct sip_client_txn *t =
        sip_txn_client_send(ps->txn, s->conn, msg, terminated ? NULL : &s->user);
    if (!terminated)
        s->inflight = t;
    log_debug("presence.notify", "presentity", s->pe->user, "watcher", s->watcher, "state", state);
}

static void subscription_on_throttle(struct timer *t, void *arg)
{
    (void)t;
    struct subscription *s = arg;
    if (s->dirty && !s->inflight)
        subscription_notify(s, NULL);
}

/* The presentity's state may have changed: each watcher gets one NOTIFY,
 * no sooner than presence.min_notify_interval after its last. */
static void subscription_changed(struct subscription *s)
{
    struct presence *ps = s->ps;
    if (s->state != SUB_ACTIVE)
        return;
    s->dirty = true;
    if (s->inflight)
        return; /* sent when the NOTIFY in flight completes */
    uint64_t now = presence_now(ps);
    uint64_t due = s->last_notify_ms + ps->cfg.min_notify_interval_ms;
    if (now >= due)
        subscription_notify(s, NULL);
    else if (!timer_is_active(&s->throttle))
        timer_start(ps->timers, &s->throttle, due - now, subscription_on_throttle, s);
}

static void presentity_changed(struct presence *ps, struct presentity *pe)
{
    /* skip watchers whose last NOTIFY already said exactly this */
    struct strbuf doc = STRBUF_INIT;
    presentity_compose(ps, pe, &doc);
    uint64_t h = doc.len ? hash_bytes(doc.p, doc.len) : 0;
    strbuf_free(&doc);
    for (struct subscription *s = pe->subs; s; s = s->next_of_presentity)
        if (s->last_body_hash != h)
            subscription_changed(s);
}

static void notify_response(struct sip_txn_user *u, struct sip_client_txn *t,
                            const struct sip_msg *resp, int status, bool retransmission)
{
    (void)t;
    (void)resp;
    (void)retransmission;
    struct subscription *s = (struct subscription *)u;
    if (status < 200)
        return;
    s->inflight = NULL;
    /* the transaction lives a little longer than its answer; it must not
     * reach this subscription once it may be gone */
    sip_client_txn_set_context(t, NULL);
    if (status == 481 || status == 408 || status >= 500 || status == 503) {
        /* the watcher forgot the subscription, or cannot be reached */
        log_info("presence.subscription_ended", "presentity", s->pe->user, "watcher", s->watcher,
                 "reason", status == 481 ? "watcher answered 481" : "NOTIFY failed");
        struct presence *ps = s->ps;
        struct presentity *pe = s->pe;
        sip_client_txn_set_context(t, NULL);
        subscription_free(s);
        presentity_drop_if_unused(ps, pe);
        return;
    }
    if (s->dirty) {
        uint64_t now = presence_now(s->ps);
        uint64_t due = s->last_notify_ms + s->ps->cfg.min_notify_interval_ms;
        if (now >= due)
            subscription_notify(s, NULL);
        else
            timer_start(s->ps->timers, &s->throttle, due - now, subscription_on_throttle, s);
    }
}

static void notify_terminated(struct sip_txn_user *u, struct sip_client_txn *t)
{
    struct subscription *s = (struct subscription *)u;
    if (s->inflight == t)
        s->inflight = NULL;
}

/* --- subscriptions ------------------------------------------------------ */

static void subscription_free(struct subscription *s)
{
    struct presence *ps = s->ps;
    struct presentity *pe = s->pe;
    timer_stop(ps->timers, &s->expiry);
    timer_stop(ps->timers, &s->throttle);
    if (s->inflight)
        sip_client_txn_set_context(s->inflight, NULL);
    hmap_remove(&ps->dialogs, &s->node);
    for (struct subscription **pp = &pe->subs; *pp; pp = &(*pp)->next_of_presentity) {
        if (*pp == s) {
            *pp = s->next_of_presentity;
            break;
        }
    }
    pe->nsubs--;
    ps->nsubs--;
    s->wc->nsubs--;
    watcher_drop_if_unused(ps, s->wc);
    sip_dialog_clear(&s->dlg);
    free(s);
}

/* Ends a subscription with a final NOTIFY. The caller drops the
 * presentity if it became unused. */
static void subscription_end(struct subscription *s, const char *reason)
{
    log_info("presence.subscription_ended", "presentity", s->pe->user, "watcher", s->watcher,
             "reason", reason);
    subscription_notify(s, reason);
    subscription_free(s);
}

static void subscription_expired(struct timer *t, void *arg)
{
    (void)t;
    struct subscription *s = arg;
    struct presence *ps = s->ps;
    struct presentity *pe = s->pe;
    subscription_end(s, "timeout");
    presentity_drop_if_unused(ps, pe);
}

/* The authorization decision for a watcher. */
static int presence_authorize(struct presence *ps, const char *presentity, const char *watcher)
{
    enum presence_rule rule =
        ps->env.rule ? ps->env.rule(ps->env.arg, presentity, watcher) : PRESENCE_RULE_NONE;
    if (rule == PRESENCE_RULE_BLOCK)
        return -1;
    if (rule == PRESENCE_RULE_ALLOW)
        return SUB_ACTIVE;
    char self[PRESENCE_AOR_MAX];
    snprintf(self, sizeof(self), "%s@%s", presentity, ps->domain);
    if (strcmp(self, watcher) == 0)
        return SUB_ACTIVE;
    const char *at = strrchr(watcher, '@');
    bool same_domain = at && strcasecmp(at + 1, ps->domain) == 0;
    /* users of other domains are never covered by the domain policy */
    if (ps->cfg.policy == PRESENCE_POLICY_DOMAIN && same_domain)
        return SUB_ACTIVE;
    return SUB_PENDING;
}

static long long presence_expires(struct presence *ps, const struct sip_msg *req)
{
    long long e = req->expires >= 0 ? req->expires : PRESENCE_DEFAULT_EXPIRES;
    if (e > (long long)ps->cfg.max_expires)
        e = ps->cfg.max_expires;
    return e;
}

static bool presence_accepts_pidf(const struct sip_msg *req)
{
    struct sip_value_iter it;
    struct strview v;
    bool any = false;
    sip_value_iter_init(&it, req, SIP_HDR_ACCEPT);
    while (sip_value_iter_next(&it, &v)) {
        any = true;
        const char *semi = memchr(v.p, ';', v.n);
        struct strview type = strview_trim(strview_make(v.p, semi ? (size_t)(semi - v.p) : v.n));
        if (strview_eq_nocase(type, "application/pidf+xml") || strview_eq(type, "*/*") ||
            strview_eq_nocase(type, "application/*"))
            return true;
    }
    return !any;
}

bool presence_handles_event(const struct sip_msg *req)
{
    struct sip_hdr *ev = sip_msg_hdr_first(req, SIP_HDR_EVENT);
    if (!ev)
        return false;
    const char *semi = memchr(ev->value.p, ';', ev->value.n);
    struct strview pkg =
        strview_trim(strview_make(ev->value.p, semi ? (size_t)(semi - ev->value.p) : ev->value.n));
    return strview_eq_nocase(pkg, "presence");
}

static void presence_reply(struct presence *ps, struct sip_server_txn *st, int status,
                           const char *reason, const char *headers, const char *why)
{
    uint64_t suppressed = 0;
    const struct conn_info *ci =
        status >= 300 ? ps->env.conn_info(ps->env.arg, sip_server_txn_conn(st)) : NULL;
    uint8_t src[16] = {0};
    if (ci)
        netaddr_source_key(&ci->peer, src);
    const char *w = why ? why : reason ? reason : "";
    if (status >= 300 &&
        log_limit_allow(ps->reject_log, presence_now(ps),
                        hash_bytes(src, sizeof(src)) ^ (hash_bytes(w, strlen(w)) * 31),
                        &suppressed)) {
        const struct sip_msg *req = sip_server_txn_request(st);
        char method[16];
        strview_copy(req->method_name, method, sizeof(method));
        log_info("sip.rejected", "conn", LOG_INT(sip_server_txn_conn(st)), "method", method,
                 "status", LOG_INT(status), "reason", why ? why : reason, "suppressed",
                 LOG_INT(suppressed));
    }
    sip_server_txn_reply(st, status, reason, headers);
}

/* The headers a 2xx to SUBSCRIBE carries besides Expires: our Contact,
 * which becomes the watcher's remote target, and the Record-Route the
 * request brought (RFC 3261 §12.1.1). */
static void presence_dialog_headers(struct presence *ps, struct sip_server_txn *st,
                                    const char *presentity, long long expires, struct strbuf *h)
{
    const struct sip_msg *req = sip_server_txn_request(st);
    const struct conn_info *ci = ps->env.conn_info(ps->env.arg, sip_server_txn_conn(st));
    strbuf_printf(h, "Expires: %lld\r\n", expires);
    if (ci) {
        char local[300];
        presence_self_address(ps, ci, local, sizeof(local));
        strbuf_printf(h, "Contact: <sip:%s@%s;transport=%s>\r\n", presentity, local,
                      ci->tls ? "tls" : "tcp");
    }
    for (struct sip_hdr *rr = sip_msg_hdr_first(req, SIP_HDR_RECORD_ROUTE); rr;
         rr = sip_msg_hdr_next(rr, SIP_HDR_RECORD_ROUTE))
        strbuf_printf(h, "Record-Route: %.*s\r\n", (int)rr->value.n, rr->value.p);
}

void presence_subscribe(struct presence *ps, struct sip_server_txn *st, const char *watcher,
                        const char *presentity)
{
    const struct sip_msg *req = sip_server_txn_request(st);
    struct sip_addr from, to, contact;
    struct sip_value_iter it;
    struct strview cv;

    if (!presence_accepts_pidf(req)) {
        presence_reply(ps, st, 406, NULL, "Accept: application/pidf+xml\r\n", "Accept lacks PIDF");
        return;
    }
    sip_value_iter_init(&it, req, SIP_HDR_CONTACT);
    if (!sip_value_iter_next(&it, &cv) || sip_addr_parse(cv, &contact) != 0 ||
        sip_msg_from(req, &from) != 0 || sip_msg_to(req, &to) != 0 || !from.tag.n) {
        presence_reply(ps, st, 400, "Bad Request (SUBSCRIBE needs a Contact and a From tag)", NULL,
                       NULL);
        return;
    }
    long long expires = presence_expires(ps, req);
    if (expires != 0 && expires < (long long)ps->cfg.min_expires) {
        char h[48];
        snprintf(h, sizeof(h), "Min-Expires: %u\r\n", ps->cfg.min_expires);
        presence_reply(ps, st, 423, NULL, h, "subscription too brief");
        return;
    }
    struct presentity *pe = presentity_get(ps, presentity);
    struct watcher *wc = pe ? watcher_get(ps, watcher) : NULL;
    if (!wc) {
        if (pe)
            presentity_drop_if_unused(ps, pe);
        presence_reply(ps, st, 500, NULL, NULL, "out of memory");
        return;
    }
    if (ps->nsubs >= ps->cfg.max_subscriptions || pe->nsubs >= ps->cfg.max_per_user ||
        wc->nsubs >= ps->cfg.max_per_watcher) {
        const char *bound = wc->nsubs >= ps->cfg.max_per_watcher ? "presence.max_per_watcher"
                            : pe->nsubs >= ps->cfg.max_per_user  ? "presence.max_per_user"
                                                                 : "presence.max_subscriptions";
        presentity_drop_if_unused(ps, pe);
        watcher_drop_if_unused(ps, wc);
        log_info("presence.subscription_refused", "watcher", watcher, "presentity", presentity,
                 "reason", bound);
        presence_reply(ps, st, 503, "Service Unavailable (too many subscriptions)",
                       "Retry-After: 60\r\n", "subscription limit reached");
        return;
    }

    struct subscription *s = calloc(1, sizeof(*s));
    if (!s) {
        presentity_drop_if_unused(ps, pe);
        watcher_drop_if_unused(ps, wc);
        presence_reply(ps, st, 500, NULL, NULL, "out of memory");
        return;
    }
    s->user.response = notify_response;
    s->user.terminated = notify_terminated;
    s->ps = ps;
    s->pe = pe;
    snprintf(s->watcher, sizeof(s->watcher), "%s", watcher);
    s->conn = sip_server_txn_conn(st);
    int drc = sip_dialog_uas(&s->dlg, req, sip_server_txn_local_tag(st));
    if (drc != 0) {
        free(s);
        presentity_drop_if_unused(ps, pe);
        watcher_drop_if_unused(ps, wc);
        if (drc == -ENOMEM)
            presence_reply(ps, st, 500, NULL, NULL, "out of memory");
        else /* a wildcard Contact, a route set beyond what a dialog keeps */
            presence_reply(ps, st, 400,
                           "Bad Request (SUBSCRIBE needs a Contact URI and a route set of at "
                           "most 64 entries)",
                           NULL, "no usable Contact or route set");
        return;
    }
    hmap_insert(&ps->dialogs, &s->node, hash_bytes(s->dlg.call_id, strlen(s->dlg.call_id)));
    s->wc = wc;
    wc->nsubs++;
    s->next_of_presentity = pe->subs;
    pe->subs = s;
    pe->nsubs++;
    ps->nsubs++;

    int auth = presence_authorize(ps, presentity, watcher);
    s->state = auth == SUB_ACTIVE ? SUB_ACTIVE : SUB_PENDING;
    s->expires_at_ms = (int64_t)(presence_now(ps) + (uint64_t)expires * 1000);
    struct strbuf h = STRBUF_INIT;
    presence_dialog_headers(ps, st, presentity, expires, &h);
    presence_reply(ps, st, 200, NULL, strbuf_cstr(&h), NULL);
    strbuf_free(&h);
    log_info("presence.subscribed", "presentity", presentity, "watcher", watcher, "state",
             auth < 0 ? "rejected" : (s->state == SUB_ACTIVE ? "active" : "pending"));

    if (auth < 0) {
        subscription_end(s, "rejected");
        presentity_drop_if_unused(ps, pe);
        return;
    }
    if (expires == 0) {
        /* a fetch: one NOTIFY with the state, and the end */
        subscription_notify(s, NULL);
        subscription_end(s, "timeout");
        presentity_drop_if_unused(ps, pe);
        return;
    }
    timer_start(ps->timers, &s->expiry, (uint64_t)expires * 1000, subscription_expired, s);
    subscription_notify(s, NULL);
}

static struct subscription *presence_find_dialog(struct presence *ps, const struct sip_msg *req)
{
    uint64_t h = hash_bytes(req->call_id.p, req->call_id.n);
    for (struct hmap_node *n = hmap_first(&ps->dialogs, h); n; n = hmap_next(n, h)) {
        struct subscription *s = container_of(n, struct subscription, node);
        if (sip_dialog_matches(&s->dlg, req))
            return s;
    }
    return NULL;
}

bool presence_subscribe_in_dialog(struct presence *ps, struct sip_server_txn *st)
{
    const struct sip_msg *req = sip_server_txn_request(st);
    struct subscription *s = presence_find_dialog(ps, req);
    if (!s)
        return false;
    uint64_t conn = sip_server_txn_conn(st);
    if (conn != s->conn && !presence_watcher_foreign(ps, s)) {
        /* a dialog's identifiers are no credential: from another connection,
         * only one the watcher has registered over may refresh it */
        char user[72];
        const char *at = strrchr(s->watcher, '@');
        size_t n = at ? (size_t)(at - s->watcher) : 0;
        snprintf(user, sizeof(user), "%.*s", (int)n, s->watcher);
        if (!registrar_find_flow(ps->registrar, user, conn)) {
            presence_reply(ps, st, 403, "Forbidden (refresh from a connection of another user)",
                           NULL, "subscription refresh from another connection");
            return true;
        }
    }
    long long expires = presence_expires(ps, req);
    if (expires != 0 && expires < (long long)ps->cfg.min_expires) {
        char h[48];
        snprintf(h, sizeof(h), "Min-Expires: %u\r\n", ps->cfg.min_expires);
        presence_reply(ps, st, 423, NULL, h, "subscription too brief");
        return true;
    }
    /* CSeq order and the watcher's new Contact (a target refresh) */
    int urc = sip_dialog_update(&s->dlg, req);
    if (urc == -EPROTO) {
        presence_reply(ps, st, 500, "Server Internal Error (CSeq out of order)", NULL,
                       "refresh with an old CSeq");
        return true;
    }
    struct strbuf h = STRBUF_INIT;
    presence_dialog_headers(ps, st, s->pe->user, expires, &h);
    presence_reply(ps, st, 200, NULL, strbuf_cstr(&h), NULL);
    strbuf_free(&h);
    s->conn = sip_server_txn_conn(st); /* the watcher may have reconnected */
    if (expires == 0) {
        struct presentity *pe = s->pe;
        subscription_end(s, "timeout");
        presentity_drop_if_unused(ps, pe);
        return true;
    }
    s->expires_at_ms = (int64_t)(presence_now(ps) + (uint64_t)expires * 1000);
    timer_start(ps->timers, &s->expiry, (uint64_t)expires * 1000, subscription_expired, s);
    /* a refresh gets the current state (RFC 6665 §4.2.1.2) */
    if (!s->inflight)
        subscription_notify(s, NULL);
    else
        s->dirty = true;
    return true;
}

/* Re-checks the watchers of pe; pe may be gone afterwards. */
static void presence_recheck(struct presence *ps, struct presentity *pe)
{
    struct subscription *s = pe->subs;
    while (s) {
        struct subscription *next = s->next_of_presentity;
        int auth = presence_authorize(ps, pe->user, s->watcher);
        if (auth < 0 || (auth == SUB_PENDING && s->state == SUB_ACTIVE)) {
            subscription_end(s, "rejected");
        } else if (auth == SUB_ACTIVE && s->state == SUB_PENDING) {
            /* newly allowed: the watcher hears at once, whatever the throttle */
            s->state = SUB_ACTIVE;
            if (s->inflight)
                s->dirty = true;
            else
                subscription_notify(s, NULL);
        }
        s = next;
    }
    presentity_drop_if_unused(ps, pe);
}

void presence_rules_changed(struct presence *ps, const char *user)
{
    if (user) {
        struct presentity *pe = presentity_find(ps, user);
        if (pe)
            presence_recheck(ps, pe);
        return;
    }
    size_t bucket;
    struct hmap_node *n =
        ps->presentities.count ? hmap_iter_first(&ps->presentities, &bucket) : NULL;
    while (n) {
        struct hmap_node *next = hmap_iter_next(&ps->presentities, n, &bucket);
        presence_recheck(ps, container_of(n, struct presentity, node));
        n = next;
    }
}

/* --- publications ---------------------------------------------------------- */

static void publication_free(struct publication *p)
{
    struct presence *ps = p->ps;
    struct presentity *pe = p->pe;
    timer_stop(ps->timers, &p->timer);
    for (struct publication **pp = &pe->pubs; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    pe->npubs--;
    ps->npubs--;
    free(p->body);
    free(p);
}

/* Removes a publication and tells the watchers. */
static void publication_remove(struct publication *p, const char *reason)
{
    struct presence *ps = p->ps;
    struct presentity *pe = p->pe;
    log_info("presence.unpublished", "user", pe->user, "etag", p->etag, "reason", reason);
    publication_free(p);
    presentity_changed(ps, pe);
    presentity_drop_if_unused(ps, pe);
}

static void publication_expired(struct timer *t, void *arg)
{
    (void)t;
    publication_remove(arg, "expired");
}

void presence_publish(struct presence *ps, struct sip_server_txn *st, const char *user)
{
    const struct sip_msg *req = sip_server_txn_request(st);
    char aor[PRESENCE_AOR_MAX];
    snprintf(aor, sizeof(aor), "%s@%s", user, ps->domain);

    /* one may publish only one's own presence */
    char target[72];
    if (req->ruri.user.n == 0 || strview_copy(req->ruri.user, target, sizeof(target)) != 0 ||
        strcmp(target, user) != 0) {
        presence_reply(ps, st, 403, "Forbidden (only your own presence may be published)", NULL,
                       NULL);
        return;
    }
    if (req->body.n && !strview_eq_nocase(req->content_type, "application/pidf+xml")) {
        presence_reply(ps, st, 415, NULL, "Accept: application/pidf+xml\r\n",
                       "PUBLISH body is not PIDF");
        return;
    }
    long long expires = presence_expires(ps, req);
    if (expires != 0 && expires < (long long)ps->cfg.min_expires) {
        char h[48];
        snprintf(h, sizeof(h), "Min-Expires: %u\r\n", ps->cfg.min_expires);
        presence_reply(ps, st, 423, NULL, h, "publication too brief");
        return;
    }

    struct pidf_state state;
    if (req->body.n) {
        char err[120];
        int rc = pidf_check(req->body.p, req->body.n, aor, &state, err, sizeof(err));
        if (rc) {
            char reason[160];
            snprintf(reason, sizeof(reason), "Bad Request (%s)", err);
            presence_reply(ps, st, rc == -ENOMEM ? 500 : 400, reason, NULL, err);
            return;
        }
    }

    struct presentity *pe = presentity_get(ps, user);
    if (!pe) {
        presence_reply(ps, st, 500, NULL, NULL, "out of memory");
        return;
    }
    struct publication *pub = NULL;
    struct sip_hdr *ifm = sip_msg_hdr_first(req, SIP_HDR_SIP_IF_MATCH);
    if (ifm) {
        struct strview tag = strview_trim(ifm->value);
        for (struct publication *p = pe->pubs; p; p = p->next)
            if (strview_eq(tag, p->etag))
                pub = p;
        if (!pub) {
            presentity_drop_if_unused(ps, pe);
            presence_reply(ps, st, 412, NULL, NULL, "unknown entity tag");
            return;
        }
    } else if (!req->body.n) {
        presentity_drop_if_unused(ps, pe);
        presence_reply(ps, st, 400, "Bad Request (an initial PUBLISH needs a body)", NULL, NULL);
        return;
    }

    if (expires == 0) {
        if (pub)
            publication_remove(pub, "removed by the device");
        presence_reply(ps, st, 200, NULL, "Expires: 0\r\n", NULL);
        return;
    }
    if (!pub) {
        /* One publication per device (its connection): a second initial
         * PUBLISH from it replaces the first, whose ETag stops working.
         * Clients send one before the first's 200 came (baresip does so at
         * start-up); kept apart, the stale one would show the device as
         * it was until it expired. */
        uint64_t conn = sip_server_txn_conn(st);
        for (struct publication *p = pe->pubs; p && !pub; p = p->next)
            if (p->conn == conn)
                pub = p;
        if (pub)
            log_info("presence.replaced", "user", user, "etag", pub->etag, "reason",
                     "a new initial PUBLISH from the same device");
    }
    if (!pub) {
        if (pe->npubs >= ps->cfg.max_per_user || ps->npubs >= ps->cfg.max_subscriptions) {
            presentity_drop_if_unused(ps, pe);
            presence_reply(ps, st, 403, "Forbidden (too many publications)", NULL,
                           "publication limit reached");
            return;
        }
        pub = calloc(1, sizeof(*pub));
        if (!pub) {
            presentity_drop_if_unused(ps, pe);
            presence_reply(ps, st, 500, NULL, NULL, "out of memory");
            return;
        }
        pub->ps = ps;
        pub->pe = pe;
        pub->next = pe->pubs;
        pe->pubs = pub;
        pe->npubs++;
        ps->npubs++;
    }
    bool changed = false;
    if (req->body.n) {
        char *body = strview_dup(req->body);
        if (!body) {
            presence_reply(ps, st, 500, NULL, NULL, "out of memory");
            return;
        }
        changed = !pub->body || pub->len != req->body.n || memcmp(pub->body, body, pub->len);
        free(pub->body);
        pub->body = body;
        pub->len = req->body.n;
        pub->state = state;
    }
    /* a new entity tag for every successful PUBLISH (RFC 3903 §6) */
    random_token(pub->etag, PRESENCE_ETAG_LEN);
    pub->conn = sip_server_txn_conn(st);
    timer_start(ps->timers, &pub->timer, (uint64_t)expires * 1000, publication_expired, pub);
    char h[96];
    snprintf(h, sizeof(h), "SIP-ETag: %s\r\nExpires: %lld\r\n", pub->etag, expires);
    presence_reply(ps, st, 200, NULL, h, NULL);
    if (changed) {
        log_info("presence.published", "user", user, "basic", pub->state.open ? "open" : "closed",
                 "activity", pub->state.activity);
        presentity_changed(ps, pe);
    }
}

/* --- devices ----------------------------------------------------------------- */

void presence_binding_added(struct presence *ps, const struct binding *b)
{
    struct presentity *pe = presentity_find(ps, b->user);
    if (pe)
        presentity_changed(ps, pe);
}

static void presence_drop_conn_pubs(struct presence *ps, struct presentity *pe, uint64_t conn,
                                    const char *reason)
{
    struct publication *p = pe->pubs;
    while (p) {
        struct publication *next = p->next;
        if (p->conn == conn) {
            log_info("presence.unpublished", "user", pe->user, "etag", p->etag, "reason", reason);
            publication_free(p);
        }
        p = next;
    }
}

void presence_binding_removed(struct presence *ps, const struct binding *b)
{
    struct presentity *pe = presentity_find(ps, b->user);
    if (!pe)
        return;
    presence_drop_conn_pubs(ps, pe, b->conn, "device binding ended");
    presentity_changed(ps, pe);
    presentity_drop_if_unused(ps, pe);
}

void presence_conn_closed(struct presence *ps, uint64_t conn)
{
    size_t bucket;
    struct hmap_node *n =
        ps->presentities.count ? hmap_iter_first(&ps->presentities, &bucket) : NULL;
    while (n) {
        struct hmap_node *next = hmap_iter_next(&ps->presentities, n, &bucket);
        struct presentity *pe = container_of(n, struct presentity, node);
        size_t before = pe->npubs;
        presence_drop_conn_pubs(ps, pe, conn, "connection closed");
        /* watchers on that connection can no longer be notified, except a
         * partner's, whose server is reached again when there is news */
        struct subscription *s = pe->subs;
        while (s) {
            struct subscription *snext = s->next_of_presentity;
            if (s->conn == conn && presence_watcher_foreign(ps, s) && ps->env.partner_conn) {
                s->conn = 0;
            } else if (s->conn == conn) {
                log_info("presence.subscription_ended", "presentity", pe->user, "watcher",
                         s->watcher, "reason", "connection closed");
                subscription_free(s);
            }
            s = snext;
        }
        if (before != pe->npubs)
            presentity_changed(ps, pe);
        presentity_drop_if_unused(ps, pe);
        n = next;
    }
}

/* --- life -------------------------------------------------------------------- */

struct presence *presence_new(struct timer_heap *timers, struct sip_txn_layer *txn,
                              struct registrar *registrar, const struct presence_env *env,
                              const struct presence_config *cfg)
{
    struct presence *ps = calloc(1, sizeof(*ps));
    if (!ps)
        return NULL;
    ps->timers = timers;
    ps->txn = txn;
    ps->registrar = registrar;
    ps->env = *env;
    ps->reject_log = log_limit_new("sip.rejected (presence)", 1024, 20);
    if (!ps->reject_log || hmap_init(&ps->presentities, 256) || hmap_init(&ps->dialogs, 256) ||
        hmap_init(&ps->watchers, 256)) {
        presence_free(ps);
        return NULL;
    }
    presence_set_config(ps, cfg);
    if (!ps->domain) {
        presence_free(ps);
        return NULL;
    }
    return ps;
}

void presence_set_config(struct presence *ps, const struct presence_config *cfg)
{
    char *d = strdup(cfg->domain);
    if (!d)
        return;
    free(ps->domain);
    ps->domain = d;
    ps->cfg = *cfg;
    ps->cfg.domain = ps->domain;
    presence_rules_changed(ps, NULL);
}

void presence_free(struct presence *ps)
{
    if (!ps)
        return;
    if (ps->presentities.buckets) {
        size_t bucket;
        struct hmap_node *n =
            ps->presentities.count ? hmap_iter_first(&ps->presentities, &bucket) : NULL;
        while (n) {
            struct hmap_node *next = hmap_iter_next(&ps->presentities, n, &bucket);
            struct presentity *pe = container_of(n, struct presentity, node);
            while (pe->pubs)
                publication_free(pe->pubs);
            while (pe->subs)
                subscription_free(pe->subs);
            presentity_drop_if_unused(ps, pe);
            n = next;
        }
    }
    hmap_destroy(&ps->presentities);
    hmap_destroy(&ps->dialogs);
    hmap_destroy(&ps->watchers);
    log_limit_free(ps->reject_log);
    free(ps->domain);
    free(ps);
}

size_t presence_subscription_count(const struct presence *ps)
{
    return ps->nsubs;
}

size_t presence_publication_count(const struct presence *ps)
{
    return ps->npubs;
}
