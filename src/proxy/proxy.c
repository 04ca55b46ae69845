/*
 * proxy — the entry of src/proxy: what arrives, whether it is
 * authenticated, and whether it is for the server itself (OPTIONS,
 * REGISTER), for the presence server, the relay credential service, or a
 * user — then handed to routing (proxy/route). The other files of the
 * folder never call back into this one; docs/ARCHITECTURE.md draws them.
 */
#include "proxy/proxy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/log_limit.h"
#include "presence/presence.h"
#include "proxy/b2bua.h"
#include "proxy/call.h"
#include "proxy/dialog.h"
#include "proxy/federation_priv.h"
#include "proxy/hangup.h"
#include "proxy/hop.h"
#include "proxy/media.h"
#include "proxy/number.h"
#include "proxy/reject.h"
#include "proxy/request.h"
#include "proxy/response.h"
#include "proxy/route.h"
#include "proxy/service.h"
#include "proxy/state.h"
#include "proxy/trunk.h"
#include "registrar/throttle.h"
#include "sip/build.h"

/* Methods this server handles (as a proxy or itself). */
#define PROXY_ALLOW                                                                                \
    "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, MESSAGE, SUBSCRIBE, NOTIFY, PUBLISH, REFER, "    \
    "INFO, UPDATE, PRACK"
#define PROXY_ACCEPT    "application/sdp"
#define PROXY_SUPPORTED "path"

static void proxy_txn_send(void *arg, uint64_t conn, struct strbuf *data)
{
    struct proxy *p = arg;
    p->env.send(p->env.arg, conn, data);
}

/* Client transactions belong to whoever started them (see sip_txn_user). */
static void proxy_txn_client_response(void *arg, struct sip_client_txn *t,
                                      const struct sip_msg *resp, int status, bool retransmission)
{
    (void)arg;
    struct sip_txn_user *u = sip_client_txn_context(t);
    if (u && u->response)
        u->response(u, t, resp, status, retransmission);
}

static void proxy_txn_client_terminated(void *arg, struct sip_client_txn *t)
{
    (void)arg;
    struct sip_txn_user *u = sip_client_txn_context(t);
    if (u && u->terminated)
        u->terminated(u, t);
}

/* A request at work past its dispatch (+1), or done (-1): counted against
 * its connection and source (env) and its sender (the request's load). */
static void proxy_txn_server_held(void *arg, struct sip_server_txn *t, int delta)
{
    struct proxy *p = arg;
    if (p->env.txn_held)
        p->env.txn_held(p->env.arg, sip_server_txn_conn(t), delta);
    struct proxy_request *pr = sip_server_txn_context(t);
    if (delta < 0 && pr && pr->kind == PROXY_TXN_REQUEST)
        proxy_request_done(pr);
}

/* A request's server transaction ended: answered, or its sender's
 * connection went before an answer — then nothing may keep ringing. */
static void proxy_txn_server_terminated(void *arg, struct sip_server_txn *t)
{
    struct proxy *p = arg;
    struct proxy_request *pr = sip_server_txn_context(t);
    if (!pr)
        return;
    if (pr->kind == PROXY_TXN_B2B) {
        proxy_b2bua_server_terminated(p, t);
        return;
    }
    if (!sip_server_txn_answered(t)) {
        pr->cancelling = true;
        proxy_response_cancel_pending(pr, "SIP;cause=487;text=\"Caller went away\"");
        if (pr->call && !pr->call->answered) {
            proxy_dialog_end_early(pr->p, pr->call);
            proxy_call_finish(pr->p, pr->call, "caller connection closed");
        }
    }
    proxy_federation_forget_waiter(pr);
    pr->st = NULL;
    sip_server_txn_set_context(t, NULL); /* nothing may reach pr through t now */
    proxy_request_maybe_free(pr);
}

static void proxy_trunk_lookup_failed(struct proxy *p, struct proxy_trunk *t)
{
    proxy_b2bua_trunk_ready(p, t, false);
}

struct proxy *proxy_new(struct timer_heap *timers, const struct proxy_env *env,
                        const struct proxy_config *cfg, struct registrar *registrar,
                        struct auth *auth)
{
    struct proxy *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->timers = timers;
    p->env = *env;
    p->trunk_failed = proxy_trunk_lookup_failed;
    p->registrar = registrar;
    p->auth = auth;
    struct sip_txn_hooks h = {
        .send = proxy_txn_send,
        .client_response = proxy_txn_client_response,
        .server_terminated = proxy_txn_server_terminated,
        .client_terminated = proxy_txn_client_terminated,
        .server_held = proxy_txn_server_held,
    };
    p->txn = sip_txn_layer_new(timers, &h, p);
    p->overload_log = log_limit_new("sip.overload", 64, 4);
    p->reject_log = log_limit_new("sip.rejected", 4096, 50);
    p->federation_log = log_limit_new("federation.refused", 1024, 20);
    if (!p->txn || !p->overload_log || !p->reject_log || !p->federation_log ||
        hmap_init(&p->dialogs, 256) != 0 || hmap_init(&p->user_loads, 64) != 0 ||
        hmap_init(&p->b2bs, 64) != 0) {
        proxy_free(p);
        return NULL;
    }
    proxy_set_config(p, cfg);
    if (!p->domain) {
        proxy_free(p);
        return NULL;
    }
    return p;
}

void proxy_set_config(struct proxy *p, const struct proxy_config *cfg)
{
    char *d = strdup(cfg->domain);
    if (!d)
        return;
    free(p->domain);
    p->domain = d;
    char *self = cfg->self_name && *cfg->self_name ? strdup(cfg->self_name) : NULL;
    free(p->self_name);
    p->self_name = self;
    p->cfg = *cfg;
    p->cfg.domain = p->domain;
    p->cfg.self_name = p->self_name;
    if (!p->cfg.max_transactions_per_user)
        p->cfg.max_transactions_per_user = SIZE_MAX;
    proxy_media_configure(p, cfg->media_level ? cfg->media_level : "required", cfg->media_suites,
                          cfg->media_nsuites);
    p->cfg.media_level = NULL;
    p->cfg.media_suites = NULL;
}

void proxy_free(struct proxy *p)
{
    if (!p)
        return;
    proxy_federation_free(p);
    if (p->b2bs.buckets) {
        proxy_b2bua_free_all(p);
        hmap_destroy(&p->b2bs);
    }
    proxy_trunk_free_all(p);
    if (p->txn)
        sip_txn_layer_free(p->txn);
    if (p->dialogs.buckets) {
        proxy_dialog_free_all(p);
        hmap_destroy(&p->dialogs);
    }
    /* every request gave its load back as the layer freed it: empty */
    hmap_destroy(&p->user_loads);
    proxy_media_free(p);
    log_limit_free(p->overload_log);
    free(p->self_name);
    log_limit_free(p->reject_log);
    log_limit_free(p->federation_log);
    free(p->domain);
    free(p);
}

void proxy_set_presence(struct proxy *p, struct presence *presence)
{
    p->presence = presence;
}

void proxy_set_dialplan(struct proxy *p, const struct dialplan *dp)
{
    p->dialplan = dp;
}

int proxy_set_trunks(struct proxy *p, const struct proxy_trunk_def *defs, size_t n, char *err,
                     size_t errlen)
{
    int rc = proxy_trunk_set_all(p, defs, n, err, errlen);
    if (rc == 0)
        proxy_b2bua_trunks_changed(p);
    return rc;
}

bool proxy_trunk_source_allowed(struct proxy *p, const struct netaddr *peer)
{
    return proxy_trunk_tcp_source_allowed(p, peer);
}

json_t *proxy_trunks_status(struct proxy *p)
{
    return proxy_trunk_status(p);
}

struct sip_txn_layer *proxy_txn_layer(struct proxy *p)
{
    return p->txn;
}

void proxy_foreach_call(const struct proxy *p, bool (*fn)(const struct proxy_call_info *, void *),
                        void *arg)
{
    for (const struct proxy_call *c = p->live_calls; c; c = c->next_live) {
        struct proxy_call_info info = {
            .call_id = c->call_id,
            .caller = c->caller,
            .callee = c->callee,
            .started = c->started,
            .answered = c->answered,
            .state = !c->answered ? "ringing"
                     : c->on_hold ? "on hold"
                                  : "answered",
            .media = c->media,
        };
        if (!fn(&info, arg))
            return;
    }
}

void proxy_stats(const struct proxy *p, struct proxy_stats *out)
{
    struct sip_txn_stats ts;
    sip_txn_layer_stats(p->txn, &ts);
    memset(out, 0, sizeof(*out));
    out->server_transactions = ts.server;
    out->client_transactions = ts.client;
    out->held_transactions = ts.held;
    out->stateless_answers = ts.stateless_answers;
    out->acks_absorbed = ts.acks_absorbed;
    out->acks_dropped = p->acks_dropped;
    out->overload_refused = p->overload_refused;
    out->throttled = p->throttled;
    out->dialogs = p->ndialogs;
}

/* --- answers ------------------------------------------------------------ */

static void proxy_reply(struct sip_server_txn *st, int status, const char *reason,
                        const char *headers)
{
    sip_server_txn_reply(st, status, reason, headers);
}

static void proxy_challenge(struct proxy *p, struct sip_server_txn *st, bool proxy, bool stale)
{
    struct strbuf h = STRBUF_INIT;
    auth_challenge(p->auth, proxy, stale, &h);
    proxy_reply(st, proxy ? 407 : 401, NULL, strbuf_cstr(&h));
    strbuf_free(&h);
}

/* Authenticates st's request; returns true with user set, or answers.
 * Password guessing is throttled per claimed user and source: a blocked
 * attempt is refused before its credentials are looked at, so the right
 * password is refused too while the block lasts. The refusal is a 503 with
 * Retry-After, which clients wait out (a 403 makes most give up for good),
 * and it says nothing about the password. A connection that already
 * carries the user's registration proved itself: someone guessing from
 * behind the same address cannot lock that device out. */
static bool proxy_authenticate(struct proxy *p, struct sip_server_txn *st, bool proxy, char *user,
                               size_t cap)
{
    const struct sip_msg *req = sip_server_txn_request(st);
    const struct conn_info *ci = p->env.conn_info(p->env.arg, sip_server_txn_conn(st));
    char claimed[AUTH_USER_MAX + 1] = "";
    bool throttled = p->env.throttle && ci &&
                     auth_claimed_user(p->auth, req, proxy, claimed, sizeof(claimed)) == 0;
    if (throttled && !registrar_find_flow(p->registrar, claimed, ci->id)) {
        uint64_t wait_ms = throttle_check(p->env.throttle, claimed, &ci->peer, NULL);
        if (wait_ms) {
            char retry[48];
            snprintf(retry, sizeof(retry), "Retry-After: %llu\r\n",
                     (unsigned long long)((wait_ms + 999) / 1000));
            p->throttled++;
            proxy_reply(st, 503, "Service Unavailable (too many failed attempts; try again later)",
                        retry);
            return false;
        }
    }
    const char *why = NULL;
    enum auth_result r =
        auth_check(p->auth, req, proxy, p->env.lookup, p->env.arg, user, cap, &why);
    if (throttled && r == AUTH_OK)
        throttle_succeeded(p->env.throttle, user, &ci->peer);
    else if (throttled && r == AUTH_FORBIDDEN && auth_why_is_wrong_password(why))
        throttle_failed(p->env.throttle, claimed, &ci->peer);
    switch (r) {
    case AUTH_OK:
        if (p->env.conn_authenticated)
            p->env.conn_authenticated(p->env.arg, sip_server_txn_conn(st));
        return true;
    case AUTH_CHALLENGE:
        proxy_challenge(p, st, proxy, false);
        return false;
    case AUTH_STALE:
        proxy_challenge(p, st, proxy, true);
        return false;
    case AUTH_FORBIDDEN:
        proxy_reject(p, st, 403, "Forbidden", why ? why : "authentication failed");
        return false;
    case AUTH_BAD_REQUEST: {
        /* the reason names the fault (a fixed text from auth, never the
         * user's input) so a client's author can see what to fix */
        char reason[96];
        snprintf(reason, sizeof(reason), "Bad Request (%s)", why ? why : "malformed credentials");
        proxy_reject(p, st, 400, reason, why ? why : "bad credentials");
        return false;
    }
    }
    return false;
}

/* The user part of a URI in our domain, or false. */
static bool proxy_local_user(struct proxy *p, const struct sip_uri *uri, char *user, size_t cap)
{
    if (uri->scheme == SIP_URI_TEL || !uri->user.n || !proxy_hop_uri_is_us(p, uri))
        return false;
    return strview_copy(uri->user, user, cap) == 0;
}

/* --- requests to the server itself -------------------------------------- */

static void proxy_options_to_server(struct sip_server_txn *st)
{
    proxy_reply(st, 200, NULL,
                "Allow: " PROXY_ALLOW "\r\n"
                "Accept: " PROXY_ACCEPT "\r\n"
                "Supported: " PROXY_SUPPORTED "\r\n");
}

static void proxy_register(struct proxy *p, struct sip_server_txn *st)
{
    const struct sip_msg *req = sip_server_txn_request(st);
    char user[PROXY_USER_MAX];
    struct sip_addr to;

    if (!proxy_authenticate(p, st, false, user, sizeof(user)))
        return;
    char to_user[PROXY_USER_MAX];
    if (sip_msg_to(req, &to) != 0 || !proxy_local_user(p, &to.uri, to_user, sizeof(to_user)) ||
        strcmp(to_user, user) != 0) {
        proxy_reject(p, st, 403, "Forbidden (To does not name the authenticated user)",
                     "REGISTER for another address of record");
        return;
    }
    const struct conn_info *ci = p->env.conn_info(p->env.arg, sip_server_txn_conn(st));
    if (!ci)
        return; /* the connection is gone; nobody to answer */
    struct registrar_flow flow = {
        .conn = ci->id,
        .source = ci->peer,
        .transport = ci->tls ? "TLS" : "TCP",
        .tls_version = ci->tls_version,
    };
    int status;
    const char *reason;
    struct strbuf h = STRBUF_INIT;
    registrar_register(p->registrar, user, req, &flow, &status, &reason, &h);
    if (status != 200)
        proxy_reject_log(p, req, ci->id, status, reason ? reason : "refused");
    else if (p->env.keep_alive && registrar_conn_in_use(p->registrar, ci->id))
        p->env.keep_alive(p->env.arg, ci->id, 0);
    proxy_reply(st, status, reason, h.len ? strbuf_cstr(&h) : NULL);
    strbuf_free(&h);
}

static void proxy_request_to_server(struct proxy *p, struct sip_server_txn *st)
{
    const struct sip_msg *req = sip_server_txn_request(st);
    switch (req->method) {
    case SIP_METHOD_OPTIONS:
        proxy_options_to_server(st);
        return;
    case SIP_METHOD_REGISTER:
        proxy_register(p, st);
        return;
    case SIP_METHOD_UNKNOWN:
        proxy_reply(st, 501, NULL, "Allow: " PROXY_ALLOW "\r\n");
        return;
    default:
        proxy_reply(st, 405, NULL, "Allow: " PROXY_ALLOW "\r\n");
        return;
    }
}

/* --- requests for users --------------------------------------------------- */

/* The identity checks of an authenticated request from one of our users:
 * From must be that user; P-Asserted-Identity is ours to set. */
static bool proxy_assert_identity(struct proxy *p, struct sip_server_txn *st, struct sip_msg *req,
                                  const char *user)
{
    struct sip_addr from;
    char from_user[PROXY_USER_MAX];
    if (sip_msg_from(req, &from) != 0 ||
        !proxy_local_user(p, &from.uri, from_user, sizeof(from_user)) ||
        strcmp(from_user, user) != 0) {
        proxy_reject(p, st, 403, "Forbidden (From does not match the authenticated identity)",
                     "From is not the authenticated user");
        return false;
    }
    /* identities are Parley's to assert, in any header: phones show
     * Remote-Party-ID as the caller */
    proxy_hop_strip_identity_headers(req);
    struct strview pai = sip_msg_printf(req, "<sip:%s@%s>", user, p->domain);
    sip_msg_hdr_append(req, SIP_HDR_P_ASSERTED_IDENTITY, "P-Asserted-Identity", pai);
    return true;
}

/* Presence SUBSCRIBE and every PUBLISH end here rather than at a device:
 * Parley is the presence agent of its users. Returns true when handled. */
static bool proxy_presence(struct proxy *p, struct sip_server_txn *st, const struct sip_msg *req,
                           const char *from_aor, const char *from_user, const char *callee)
{
    if (req->method == SIP_METHOD_PUBLISH) {
        if (!p->presence || !presence_handles_event(req))
            proxy_reply(st, 489, NULL, "Allow-Events: presence\r\n");
        else if (!from_user)
            proxy_reject(p, st, 403, "Forbidden (only your own presence may be published)",
                         "PUBLISH from another domain");
        else
            presence_publish(p->presence, st, from_user);
        return true;
    }
    if (req->method == SIP_METHOD_SUBSCRIBE && p->presence && presence_handles_event(req)) {
        presence_subscribe(p->presence, st, from_aor, callee);
        return true;
    }
    return false;
}

/* A request from a gateway of one of the trunks: calls for the numbers
 * users own; anything else is refused (a gateway is no user). */
static void proxy_request_from_trunk(struct proxy *p, struct sip_server_txn *st,
                                     struct sip_msg *req, struct proxy_trunk *t, bool in_dialog)
{
    if (in_dialog) {
        proxy_reject(p, st, 481, NULL, "in-dialog request from a gateway for no call of ours");
        return;
    }
    char callee[PROXY_USER_MAX];
    int number = proxy_number_route(p, st, req, NULL, callee, sizeof(callee));
    if (number < 0)
        return;
    if (number == 0) {
        proxy_reject(p, st, 404, "Not Found (gateways call the numbers users own)",
                     "gateway request for no number");
        return;
    }
    proxy_b2bua_from_trunk(p, st, req, t, callee);
}

static void proxy_request_for_user(struct proxy *p, struct sip_server_txn *st, struct sip_msg *req)
{
    bool in_dialog = false;
    struct sip_addr to, from;
    if (sip_msg_to(req, &to) == 0 && to.tag.n)
        in_dialog = true;

    /* A gateway of a trunk: recognised by its certificate or, over TCP,
     * its address on the trunk listener; trusted for the caller's number,
     * never for a user's identity. */
    struct proxy_trunk *trunk = proxy_trunk_of_conn(p, sip_server_txn_conn(st));
    if (trunk) {
        proxy_request_from_trunk(p, st, req, trunk, in_dialog);
        return;
    }

    /* From another domain: a partner's server, proven by its certificate
     * (no digest: the identity is the domain's). Inside a dialog too: a
     * dialog's identifiers are no credential. */
    char from_domain[256] = "";
    bool foreign = false;
    if (sip_msg_from(req, &from) == 0 && from.uri.scheme != SIP_URI_TEL) {
        strview_copy(from.uri.host, from_domain, sizeof(from_domain));
        foreign = from_domain[0] && !proxy_hop_uri_is_us(p, &from.uri);
    }
    if (foreign && !proxy_federation_check_inbound(p, st, req, from_domain))
        return;

    if (in_dialog) {
        if (req->method == SIP_METHOD_SUBSCRIBE && p->presence &&
            presence_subscribe_in_dialog(p->presence, st))
            return;
        bool routed = false;
        if (req->method == SIP_METHOD_SUBSCRIBE && presence_handles_event(req)) {
            /* a subscription to a partner's user goes through a dialog we
             * routed, not to our presence server */
            bool fc;
            routed = proxy_dialog_find(p, req->call_id, from.tag, to.tag, &fc) != NULL;
            if (!routed) {
                proxy_reject(p, st, 481, NULL, "no such presence subscription");
                return;
            }
        }
        proxy_route_in_dialog(p, st, req);
        return;
    }

    if (foreign) {
        /* the partner's P-Asserted-Identity was checked against its domain;
         * other identity headers are not taken from anyone */
        static const char *const names[] = {"Remote-Party-ID", "Identity-Info"};
        sip_msg_hdr_remove_all(req, SIP_HDR_IDENTITY);
        for (size_t i = 0; i < 2; i++) {
            struct sip_hdr *h;
            while ((h = sip_msg_hdr_find_name(req, names[i])) != NULL)
                sip_msg_hdr_remove(req, h);
        }
        char callee[PROXY_USER_MAX], from_aor[PROXY_ADDR_MAX], fu[PROXY_USER_MAX] = "";
        strview_copy(from.uri.user, fu, sizeof(fu));
        snprintf(from_aor, sizeof(from_aor), "%s@%s", fu, from_domain);
        int number = proxy_number_route(p, st, req, NULL, callee, sizeof(callee));
        if (number < 0)
            return;
        if (number == 0 && !proxy_local_user(p, &req->ruri, callee, sizeof(callee))) {
            proxy_reject(p, st, 403,
                         "Forbidden (Parley relays partner requests only to its own users)",
                         "partner request for another domain");
            return;
        }
        if (!p->env.user_exists(p->env.arg, callee)) {
            proxy_reject(p, st, 404, "Not Found", "no such user");
            return;
        }
        if (proxy_presence(p, st, req, from_aor, NULL, callee))
            return;
        proxy_route_new_request(p, st, req, from_aor, callee);
        return;
    }

    char user[PROXY_USER_MAX];
    if (!proxy_authenticate(p, st, true, user, sizeof(user)))
        return;
    if (!proxy_assert_identity(p, st, req, user))
        return;
    char caller[PROXY_ADDR_MAX];
    snprintf(caller, sizeof(caller), "%s@%s", user, p->domain);

    /* the relay credential service answers for any user part of our domain */
    if (req->method == SIP_METHOD_SERVICE) {
        if (!proxy_hop_uri_is_us(p, &req->ruri)) {
            proxy_reject(p, st, 403, "Forbidden (not a domain Parley serves)", "SERVICE elsewhere");
        } else if (!proxy_service_is_mras(req)) {
            proxy_reply(st, 415, NULL, "Accept: application/msrtc-media-relay-auth+xml\r\n");
        } else {
            proxy_service_mras(p, st, req, user);
        }
        return;
    }

    char callee[PROXY_USER_MAX];
    int number = proxy_number_route(p, st, req, user, callee, sizeof(callee));
    if (number < 0)
        return;
    if (number == 0 && !proxy_local_user(p, &req->ruri, callee, sizeof(callee))) {
        char host[256] = "";
        if (req->ruri.scheme != SIP_URI_TEL)
            strview_copy(req->ruri.host, host, sizeof(host));
        struct partner *pt = host[0] ? proxy_federation_find(p, host) : NULL;
        if (pt && req->ruri.user.n) {
            if (req->method == SIP_METHOD_PUBLISH) {
                proxy_reject(p, st, 403, "Forbidden (only your own presence may be published)",
                             "PUBLISH to another domain");
                return;
            }
            if (req->method == SIP_METHOD_MESSAGE && req->body.n > p->cfg.max_im_body) {
                proxy_reject(p, st, 413, "Request Entity Too Large", "instant message too large");
                return;
            }
            proxy_route_to_partner(p, st, req, caller, pt);
            return;
        }
        if (req->ruri.scheme != SIP_URI_TEL && !proxy_hop_uri_is_us(p, &req->ruri)) {
            proxy_reject(p, st, 403, "Forbidden (not a domain Parley serves or federates with)",
                         "request for a foreign domain");
            return;
        }
        proxy_reject(p, st, 404, "Not Found", "no user part in the Request-URI");
        return;
    }
    if (req->method == SIP_METHOD_MESSAGE && req->body.n > p->cfg.max_im_body) {
        proxy_reject(p, st, 413, "Request Entity Too Large", "instant message too large");
        return;
    }
    if (!p->env.user_exists(p->env.arg, callee)) {
        proxy_reject(p, st, 404, "Not Found", "no such user");
        return;
    }
    if (proxy_presence(p, st, req, caller, user, callee))
        return;
    proxy_route_new_request(p, st, req, caller, callee);
}

/* --- dispatch ----------------------------------------------------------- */

static void proxy_on_new_request(struct proxy *p, struct sip_server_txn *st, struct sip_msg *req);

static void proxy_on_request(struct proxy *p, uint64_t conn, struct sip_msg *req)
{
    /* Hop-by-hop checks that need no transaction come first. */
    struct sip_server_txn *st = NULL, *cancelled = NULL;
    enum sip_txn_verdict v = sip_txn_server_receive(p->txn, conn, req, &st, &cancelled);
    switch (v) {
    case SIP_TXN_ABSORBED:
        return;
    case SIP_TXN_FAILED:
        /* out of memory: drop it; the client's own timers take over */
        log_warn("sip.dropped", "conn", LOG_INT(conn), "reason", "no transaction could be made");
        sip_msg_free(req);
        return;
    case SIP_TXN_INVALID: {
        struct strbuf out = STRBUF_INIT;
        if (req->method != SIP_METHOD_ACK &&
            sip_build_response(req, 400, "Bad Request (Via without an RFC 3261 branch)", "x", NULL,
                               NULL, STRVIEW_EMPTY, &out) == 0)
            p->env.send(p->env.arg, conn, &out);
        strbuf_free(&out);
        sip_msg_free(req);
        return;
    }
    case SIP_TXN_ACK:
        if (!proxy_b2bua_ack(p, conn, req))
            proxy_route_ack(p, conn, req);
        return;
    case SIP_TXN_CANCEL:
        if (cancelled && proxy_b2bua_owns(cancelled))
            proxy_b2bua_cancel(p, st, cancelled);
        else
            proxy_route_cancel(p, st, cancelled);
        sip_txn_server_dispatched(st);
        return;
    case SIP_TXN_NEW:
        break;
    }
    /* st owns req from here. Whatever is answered now is forgotten now:
     * only work still under way keeps a transaction. */
    proxy_on_new_request(p, st, req);
    sip_txn_server_dispatched(st);
}

/* A gateway's connection carries calls only: no registrations, presence,
 * messages or relay credentials; and the trunk listener serves trunks
 * only (a connection whose trunk a reload removed is no one's). True when
 * req was refused. */
static bool proxy_trunk_conn_refused(struct proxy *p, struct sip_server_txn *st,
                                     const struct sip_msg *req)
{
    uint64_t conn = sip_server_txn_conn(st);
    bool on_trunk_listener =
        p->env.conn_on_trunk_listener && p->env.conn_on_trunk_listener(p->env.arg, conn);
    struct proxy_trunk *t = proxy_trunk_of_conn(p, conn);
    const struct conn_info *ci = p->env.conn_info(p->env.arg, conn);
    /* a plain connection Parley opened (to a TCP trunk's gateway) that is
     * no trunk's is no one's: nobody may use it as a user's */
    bool plain_outgoing = ci && ci->outgoing && !ci->tls;
    if (!t && !on_trunk_listener && !plain_outgoing)
        return false;
    if (!t) {
        proxy_reject(p, st, 403, "Forbidden (this connection serves trunks' gateways only)",
                     "request on a trunk's connection from no trunk");
        return true;
    }
    switch (req->method) {
    case SIP_METHOD_INVITE:
    case SIP_METHOD_ACK:
    case SIP_METHOD_BYE:
    case SIP_METHOD_CANCEL:
    case SIP_METHOD_OPTIONS:
    case SIP_METHOD_UPDATE:
    case SIP_METHOD_PRACK:
    case SIP_METHOD_INFO:
        return false;
    default:
        proxy_reject(p, st, 403, "Forbidden (a trunk carries calls only)",
                     "request other than a call from a trunk");
        return true;
    }
}

static void proxy_on_new_request(struct proxy *p, struct sip_server_txn *st, struct sip_msg *req)
{
    if (proxy_trunk_conn_refused(p, st, req))
        return;
    bool to_server = req->ruri.user.n == 0 && proxy_hop_uri_is_us(p, &req->ruri) &&
                     sip_msg_hdr_first(req, SIP_HDR_ROUTE) == NULL;
    if (req->max_forwards == 0 && !(to_server && req->method == SIP_METHOD_OPTIONS)) {
        proxy_reject(p, st, 483, NULL, "Max-Forwards reached 0");
        return;
    }
    if (!proxy_hop_pop_own_routes(p, req)) {
        /* a Route beyond us is fine inside a dialog we routed (the other
         * server's Record-Route); outside one it is a relay request */
        struct sip_addr to;
        if (sip_msg_to(req, &to) != 0 || !to.tag.n) {
            proxy_reject(p, st, 403, "Forbidden (Route to another server)", "foreign Route header");
            return;
        }
    }
    /* in-dialog requests go by their dialog, whatever their target says */
    struct sip_addr to;
    bool in_dialog = sip_msg_to(req, &to) == 0 && to.tag.n;
    if (in_dialog && proxy_b2bua_in_dialog(p, st, req))
        return;
    if (req->ruri.user.n == 0 && proxy_hop_uri_is_us(p, &req->ruri) && !in_dialog &&
        req->method != SIP_METHOD_SERVICE) {
        proxy_request_to_server(p, st);
        return;
    }
    proxy_request_for_user(p, st, req);
}

void proxy_on_message(struct proxy *p, uint64_t conn, struct sip_msg *msg)
{
    if (msg->is_request) {
        proxy_on_request(p, conn, msg);
        return;
    }
    /* responses belong to our client transactions; strays are dropped
     * (RFC 3261 §16.7: a stateful proxy forwards nothing it did not send) */
    if (!sip_txn_client_receive(p->txn, conn, msg))
        log_debug("sip.stray_response", "conn", LOG_INT(conn), "status", LOG_INT(msg->status));
    sip_msg_free(msg);
}

void proxy_media_timed_out(struct proxy *p, uint64_t stream)
{
    if (proxy_b2bua_media_timed_out(p, stream))
        return;
    struct proxy_dialog *d = proxy_dialog_of_stream(p, stream);
    if (!d || d->state != DIALOG_CONFIRMED)
        return; /* ringing, or already over */
    proxy_hangup_dialog(p, d, true, true, 408, "media timeout");
    proxy_dialog_end(d, "media timeout");
}

void proxy_conn_opened(struct proxy *p, uint64_t conn, const struct conn_info *info)
{
    bool up;
    struct proxy_trunk *t = proxy_trunk_conn_opened(p, conn, info, &up);
    if (t) {
        proxy_b2bua_trunk_ready(p, t, up);
        return;
    }
    proxy_federation_conn_opened(p, conn, info);
}

void proxy_conn_closed(struct proxy *p, uint64_t conn, const char *reason)
{
    struct proxy_trunk *t = proxy_trunk_conn_closed(p, conn, reason);
    if (t)
        proxy_b2bua_trunk_ready(p, t, false);
    proxy_federation_conn_closed(p, conn, reason);
    sip_txn_conn_closed(p->txn, conn);
    proxy_dialog_conn_closed(p, conn);
    registrar_conn_closed(p->registrar, conn);
}
