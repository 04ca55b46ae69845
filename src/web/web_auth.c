/*
 * web_auth — who is asking: HTTP Basic with a Parley user's password
 * (what CardDAV clients send), HTTP Digest (RFC 7616, checked by the
 * same code as SIP's), or a web ticket (Bearer); and the endpoint
 * that turns the first into the second.
 *
 * Passwords are checked against the same HA1 digests SIP uses, and every
 * check goes through the SIP core's throttle first, so guessing over HTTPS
 * and over SIP count together and `parleyctl user unblock` lifts both.
 * Tickets are verified once (an ES256 signature costs about 0.1 ms) and
 * then found in a cache keyed by their hash until they expire; anything
 * written to the store empties that cache, so a removed user's ticket is
 * refused at its next use.
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <string.h>
#include <strings.h>

#include "core/clock.h"
#include "core/hmap.h"
#include "core/log.h"
#include "crypto/digest.h"
#include "crypto/encoding.h"
#include "http/response.h"
#include "registrar/auth.h"
#include "registrar/throttle.h"
#include "web/web_priv.h"

#define WEB_BASIC_MAX 512 /* decoded "user:password" */

static const char *auth_header(const struct web_req *r, const char *scheme, size_t *len)
{
    const char *v = http_request_header(r->http, "Authorization");
    size_t n = strlen(scheme);
    if (!v || strncasecmp(v, scheme, n) != 0 || v[n] != ' ')
        return NULL;
    v += n;
    while (*v == ' ')
        v++;
    *len = strlen(v);
    return v;
}

/* 401 with a challenge for each scheme allowed; error describes a refused
 * token (RFC 6750 §3). */
static void challenge_reply(struct web_req *r, unsigned schemes, const char *token_error,
                            bool stale)
{
    web_reply_begin(r, 401);
    /* Digest first: a client takes the first scheme it supports */
    if ((schemes & WEB_AUTH_DIGEST) && r->w->env.auth &&
        auth_challenge(r->w->env.auth, false, stale, r->out) != 0)
        log_error("http.challenge_failed", "path", r->http->path);
    if (schemes & WEB_AUTH_BASIC)
        http_response_headerf(r->out, "WWW-Authenticate", "Basic realm=\"%s\", charset=\"UTF-8\"",
                              r->w->realm);
    if (schemes & WEB_AUTH_BEARER) {
        if (token_error)
            http_response_headerf(r->out, "WWW-Authenticate",
                                  "Bearer realm=\"%s\", error=\"invalid_token\", "
                                  "error_description=\"%s\"",
                                  r->w->domain, token_error);
        else
            http_response_headerf(r->out, "WWW-Authenticate", "Bearer realm=\"%s\"", r->w->domain);
    }
    char body[160];
    int n =
        snprintf(body, sizeof(body), "%s\n", token_error ? token_error : "authentication required");
    web_reply_end(r, "text/plain; charset=utf-8", body, n > 0 ? (size_t)n : 0);
}

static void auth_log_failure(struct web_req *r, const char *user, const char *reason)
{
    uint8_t src[16];
    netaddr_source_key(&r->peer->addr, src);
    uint64_t suppressed = 0;
    if (!log_limit_allow(r->w->auth_log, clock_now_ms(r->w->env.clock),
                         hash_bytes(src, sizeof(src)) ^ (hash_bytes(reason, strlen(reason)) * 31),
                         &suppressed))
        return;
    char p[NETADDR_STRLEN];
    log_warn("http.auth_failed", "peer", netaddr_format(&r->peer->addr, p), "user", user, "path",
             r->http->path, "reason", reason, "suppressed", LOG_INT(suppressed));
}

/* Before a password is checked: is this user blocked from this source
 * (registrar/throttle, shared with SIP)? Then 429 is answered, unchecked. */
static bool throttled(struct web_req *r, const char *user)
{
    enum throttle_scope scope;
    uint64_t wait_ms = throttle_check(r->w->env.throttle, user, &r->peer->addr, &scope);
    if (!wait_ms)
        return false;
    web_reply_begin(r, 429);
    http_response_headerf(r->out, "Retry-After", "%llu",
                          (unsigned long long)((wait_ms + 999) / 1000));
    static const char text[] = "too many failed logins: try again later\n";
    web_reply_end(r, "text/plain; charset=utf-8", text, sizeof(text) - 1);
    return true;
}

/* The user's password against the stored HA1 of the strongest allowed
 * algorithm the user has. An unknown user costs the same hash. */
static bool basic_password_ok(struct web *w, const char *user, const char *password)
{
    struct store_user u;
    int rc = store_user_get(w->env.store, user, &u);
    enum digest_alg alg = DIGEST_ALG_SHA256;
    const char *want = NULL;
    if (rc == 0 && w->cfg.allow_sha256 && u.ha1_sha256[0])
        want = u.ha1_sha256;
    else if (rc == 0 && w->cfg.allow_md5 && u.ha1_md5[0]) {
        alg = DIGEST_ALG_MD5;
        want = u.ha1_md5;
    }
    char ha1[DIGEST_HEX_BUF];
    if (digest_ha1(alg, user, w->realm, password, ha1) != 0)
        want = NULL;
    bool ok = want && digest_hex_equal(want, strview_cstr(ha1));
    OPENSSL_cleanse(ha1, sizeof(ha1));
    OPENSSL_cleanse(&u, sizeof(u));
    if (rc != 0 && rc != -ENOENT)
        log_error("http.store_failed", "user", user, "reason", store_errmsg(w->env.store));
    return ok;
}

/* 0: r->user is set; 1: no Basic credentials; -EACCES: answered. */
static int auth_basic(struct web_req *r, unsigned schemes)
{
    size_t len;
    const char *v = auth_header(r, "Basic", &len);
    if (!v)
        return 1;
    unsigned char dec[WEB_BASIC_MAX + 1];
    size_t n = 0;
    if (len > BASE64_STD_LEN(WEB_BASIC_MAX) ||
        base64_decode(BASE64_STD, strview_make(v, len), dec, sizeof(dec) - 1, &n) != 0) {
        web_reply_text(r, 400, "malformed Basic credentials");
        return -EACCES;
    }
    dec[n] = '\0';
    char *colon = memchr(dec, ':', n);
    if (!colon || memchr(dec, '\0', n)) {
        OPENSSL_cleanse(dec, sizeof(dec));
        web_reply_text(r, 400, "malformed Basic credentials");
        return -EACCES;
    }
    *colon = '\0';
    const char *user = (const char *)dec, *password = colon + 1;
    struct web *w = r->w;
    int result = -EACCES;
    if (!store_user_name_valid(user)) {
        w->logins_failed++;
        auth_log_failure(r, "", "bad user name");
        challenge_reply(r, schemes, NULL, false);
        goto out;
    }
    if (throttled(r, user))
        goto out;
    if (!basic_password_ok(w, user, password)) {
        throttle_failed(w->env.throttle, user, &r->peer->addr);
        w->logins_failed++;
        auth_log_failure(r, user, "wrong user name or password");
        challenge_reply(r, schemes, NULL, false);
        goto out;
    }
    throttle_succeeded(w->env.throttle, user, &r->peer->addr);
    snprintf(r->user, sizeof(r->user), "%s", user);
    result = 0;
out:
    OPENSSL_cleanse(dec, sizeof(dec));
    return result;
}

/* The user's HA1 for Digest, from the store (registrar/auth asks). */
static int digest_lookup(void *arg, const char *user, enum digest_alg alg, char ha1[DIGEST_HEX_BUF])
{
    struct web *w = arg;
    struct store_user u;
    int rc = store_user_get(w->env.store, user, &u);
    if (rc == 0) {
        const char *h = alg == DIGEST_ALG_SHA256 ? u.ha1_sha256 : u.ha1_md5;
        rc = h[0] ? 0 : -ENOENT;
        snprintf(ha1, DIGEST_HEX_BUF, "%s", h);
    }
    OPENSSL_cleanse(&u, sizeof(u));
    return rc == -EINVAL ? -ENOENT : rc;
}

/* 0: r->user is set; 1: no Digest credentials; -EACCES: answered.
 * registrar/auth checks them exactly as it checks SIP's (nonces, nc
 * replay, realm, algorithms), with the request-target as digest-uri. */
static int auth_digest(struct web_req *r, unsigned schemes)
{
    struct web *w = r->w;
    size_t len;
    const char *v = auth_header(r, "Digest", &len);
    if (!v || !w->env.auth)
        return 1;
    struct auth_request ar = {
        .method = strview_cstr(r->http->method_name),
        .uri = strview_cstr(r->http->target),
        .creds = {strview_cstr(http_request_header(r->http, "Authorization"))},
        .ncreds = 1,
    };
    char user[STORE_USER_NAME_MAX + 1] = "";
    if (auth_claimed_user_request(w->env.auth, &ar, user, sizeof(user)) == 0 && throttled(r, user))
        return -EACCES;
    const char *why = NULL;
    enum auth_result res =
        auth_check_request(w->env.auth, &ar, digest_lookup, w, r->user, sizeof(r->user), &why);
    switch (res) {
    case AUTH_OK:
        throttle_succeeded(w->env.throttle, r->user, &r->peer->addr);
        return 0;
    case AUTH_STALE:
        r->user[0] = '\0';
        challenge_reply(r, schemes, NULL, true);
        return -EACCES;
    case AUTH_BAD_REQUEST:
        r->user[0] = '\0';
        web_reply_text(r, 400, why ? why : "malformed Digest credentials");
        return -EACCES;
    default:
        r->user[0] = '\0';
        if (auth_why_is_wrong_password(why) && store_user_name_valid(user)) {
            throttle_failed(w->env.throttle, user, &r->peer->addr);
            w->logins_failed++;
        }
        auth_log_failure(r, user, why ? why : "refused");
        challenge_reply(r, schemes, NULL, false);
        return -EACCES;
    }
}

/* 0: r->user is set; 1: no Bearer token; -EACCES: answered. */
static int auth_bearer(struct web_req *r, unsigned schemes)
{
    size_t len;
    const char *token = auth_header(r, "Bearer", &len);
    if (!token)
        return 1;
    struct web *w = r->w;
    int64_t now = clock_wall_s(w->env.clock);
    if (ticket_cache_lookup(w->tickets, token, len, now, r->user))
        return 0;
    int64_t iat = 0, exp = 0;
    char uid[STORE_UID_LEN + 1] = "";
    enum ticket_result res = ticket_verify(w->keys, token, len, w->domain, now,
                                           w->cfg.ticket_lifetime_s, r->user, uid, &iat, &exp);
    const char *why = res == TICKET_OK ? NULL : ticket_result_name(res);
    struct store_user u;
    int rc = why ? 0 : store_user_get(w->env.store, r->user, &u);
    if (rc != 0 && rc != -ENOENT) {
        log_error("http.store_failed", "user", r->user, "reason", store_errmsg(w->env.store));
        r->user[0] = '\0';
        web_reply_text(r, 500, "the store could not be read");
        return -EACCES;
    }
    /* removed since the ticket was issued, or removed and made again: a
     * ticket names one account, not a name */
    if (!why && (rc == -ENOENT || strcmp(u.uid, uid) != 0))
        why = "no such user";
    /* a password change (or any change to the account) ends the tickets
     * issued before it: the way to cut off a stolen one */
    if (!why && u.updated > iat)
        why = "account changed since the ticket was issued";
    if (why) {
        r->user[0] = '\0';
        w->tokens_refused++;
        auth_log_failure(r, "", why);
        challenge_reply(r, schemes, why, false);
        return -EACCES;
    }
    ticket_cache_insert(w->tickets, token, len, r->user, exp);
    return 0;
}

int web_auth_request(struct web_req *r, unsigned schemes)
{
    int rc = 1;
    if (schemes & WEB_AUTH_BEARER)
        rc = auth_bearer(r, schemes);
    if (rc == 1 && (schemes & WEB_AUTH_BASIC))
        rc = auth_basic(r, schemes);
    if (rc == 1 && (schemes & WEB_AUTH_DIGEST))
        rc = auth_digest(r, schemes);
    if (rc == 1) {
        challenge_reply(r, schemes, NULL, false);
        return -EACCES;
    }
    return rc;
}

/* The name failed metrics tokens and tickets count under in the throttle:
 * not a valid user name, so no user shares its records. */
#define WEB_METRICS_THROTTLE_NAME "(metrics)"

/* The metrics token (parleyctl https metrics-token) against the digest in
 * the store: true when it is the one. Compared in constant time. */
static int metrics_token_ok(struct web_req *r, const char *token, size_t len, bool *ok)
{
    struct web *w = r->w;
    char want[DIGEST_HEX_BUF] = "", got[DIGEST_HEX_BUF] = "";
    *ok = false;
    int rc = store_setting_get(w->env.store, WEB_METRICS_TOKEN_SETTING, want, sizeof(want));
    if (rc == -ENOENT)
        return 0; /* none issued, or revoked */
    if (rc != 0)
        return rc;
    rc = digest_hash_hex(DIGEST_ALG_SHA256, strview_make(token, len), got);
    if (rc == 0)
        *ok = strlen(want) == 64 && digest_hex_equal(want, strview_cstr(got));
    OPENSSL_cleanse(got, sizeof(got));
    return rc;
}

int web_auth_metrics(struct web_req *r)
{
    struct web *w = r->w;
    for (size_t i = 0; i < w->cfg.nmetrics_networks; i++)
        if (cidr_contains(&w->metrics_networks[i], &r->peer->addr))
            return 0;
    size_t len;
    const char *token = auth_header(r, "Bearer", &len);
    if (!token) {
        challenge_reply(r, WEB_AUTH_BEARER, NULL, false);
        return -EACCES;
    }
    size_t plen = strlen(WEB_METRICS_TOKEN_PREFIX);
    if (len > plen && strncmp(token, WEB_METRICS_TOKEN_PREFIX, plen) == 0) {
        /* a source guessing tokens is refused before anything is checked */
        if (throttled(r, WEB_METRICS_THROTTLE_NAME))
            return -EACCES;
        bool ok = false;
        int rc = metrics_token_ok(r, token, len, &ok);
        if (rc != 0) {
            log_error("http.store_failed", "path", r->http->path, "reason",
                      store_errmsg(w->env.store));
            web_reply_text(r, 500, "the store could not be read");
            return -EACCES;
        }
        if (!ok) {
            throttle_failed(w->env.throttle, WEB_METRICS_THROTTLE_NAME, &r->peer->addr);
            w->tokens_refused++;
            auth_log_failure(r, "", "wrong metrics token");
            challenge_reply(r, WEB_AUTH_BEARER, "wrong metrics token", false);
            return -EACCES;
        }
        /* the scraper's source is trusted: a broad guess at tokens from
         * elsewhere does not lock it out */
        throttle_succeeded(w->env.throttle, WEB_METRICS_THROTTLE_NAME, &r->peer->addr);
        snprintf(r->user, sizeof(r->user), "%s", WEB_METRICS_THROTTLE_NAME);
        return 0;
    }
    /* a web ticket: only an administrator's reads the metrics. Not held
     * back by the throttle: a ticket is signed, not guessed, and wrong
     * tokens from sources anywhere must not lock administrators out (the
     * "(metrics)" name blocked for every source, a broad guess); a wrong
     * one still counts */
    if (auth_bearer(r, WEB_AUTH_BEARER) != 0) {
        throttle_failed(w->env.throttle, WEB_METRICS_THROTTLE_NAME, &r->peer->addr);
        return -EACCES;
    }
    struct store_user u;
    int rc = store_user_get(w->env.store, r->user, &u);
    bool admin = rc == 0 && u.admin;
    OPENSSL_cleanse(&u, sizeof(u));
    if (rc != 0 && rc != -ENOENT) {
        log_error("http.store_failed", "user", r->user, "reason", store_errmsg(w->env.store));
        web_reply_text(r, 500, "the store could not be read");
        return -EACCES;
    }
    if (!admin) {
        auth_log_failure(r, r->user, "not an administrator");
        web_reply_text(r, 403, "administrators only");
        return -EACCES;
    }
    return 0;
}

void web_auth_ticket(struct web_req *r)
{
    struct web *w = r->w;
    if (web_auth_request(r, WEB_AUTH_BASIC | WEB_AUTH_DIGEST) != 0)
        return;
    int64_t now = clock_wall_s(w->env.clock);
    char ticket[2048];
    struct store_user u;
    int rc = store_user_get(w->env.store, r->user, &u);
    if (rc == 0)
        rc = ticket_issue(w->keys, r->user, u.uid, w->domain, now, w->cfg.ticket_lifetime_s, ticket,
                          sizeof(ticket));
    OPENSSL_cleanse(&u, sizeof(u));
    if (rc != 0) {
        log_error("https.ticket_failed", "user", r->user, "reason", strerror(-rc));
        web_reply_text(r, 500, "the ticket could not be made");
        return;
    }
    w->tickets_issued++;
    json_t *doc = json_pack("{s:s, s:s, s:I, s:I, s:s, s:s}", "ticket", ticket, "token_type",
                            "Bearer", "expires_in", (json_int_t)w->cfg.ticket_lifetime_s, "expires",
                            (json_int_t)(now + w->cfg.ticket_lifetime_s), "user", r->user, "domain",
                            w->domain);
    OPENSSL_cleanse(ticket, sizeof(ticket));
    web_reply_json(r, 200, doc);
}

void web_auth_forget(struct web *w)
{
    ticket_cache_clear(w->tickets);
}
