#include "registrar/auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/hmap.h"
#include "core/log.h"
#include "core/random.h"
#include "crypto/encoding.h"
#include "crypto/mac.h"

/*
 * Nonce layout, before base64url:
 *   issue time (ms, big-endian, 8) | random (8) | algorithm (1) | tag (16)
 * tag = HMAC-SHA256(key, the first 17 bytes) truncated to 128 bits. The
 * algorithm is under the tag so a nonce offered for SHA-256 cannot be
 * answered with MD5. The first 17 bytes identify the nonce in the nc
 * table (the tag is a function of them).
 */
#define NONCE_ID_LEN   17
#define NONCE_TAG_LEN  16
#define NONCE_RAW_LEN  (NONCE_ID_LEN + NONCE_TAG_LEN)
#define NONCE_TEXT_LEN BASE64_URL_LEN(NONCE_RAW_LEN)
#define KEY_LEN        32

struct nonce_entry {
    struct hmap_node node;
    struct nonce_entry *older, *newer; /* insertion order, for eviction */
    unsigned char id[NONCE_ID_LEN];
    uint64_t issued_ms;
    uint32_t nc; /* highest nonce count accepted */
};

struct auth {
    struct clock *clock;
    char *realm;
    enum digest_alg algs[AUTH_MAX_ALGORITHMS];
    size_t nalgs;
    bool restricted;
    uint64_t lifetime_ms;
    size_t max_nonces;
    unsigned char key[KEY_LEN];
    /* Checked against for unknown users, so they cost what a known user
     * costs; random so nobody can compute a response that matches it
     * (the result is ignored anyway). */
    char dummy_ha1[DIGEST_HEX_BUF];
    struct hmap nonces;
    struct nonce_entry *oldest, *newest;
    /* One past the latest issue time of an entry evicted for room (0:
     * none yet). A nonce issued before it and absent from the table may
     * have been used and forgotten; accepting it at nc 1 would accept a
     * replay. */
    uint64_t evicted_before;
};

static const char WHY_NO_CREDENTIALS[] = "no credentials";
static const char WHY_MALFORMED[] = "malformed credentials";
static const char WHY_ALGORITHM[] = "algorithm not allowed";
static const char WHY_ALGORITHM_FIPS[] = "algorithm not allowed: MD5 is not FIPS approved";
static const char WHY_QOP_REQUIRED[] = "qop=auth required";
static const char WHY_QOP_UNSUPPORTED[] = "qop not supported";
static const char WHY_USERNAME[] = "bad username";
static const char WHY_URI[] = "digest-uri mismatch";
static const char WHY_NONCE_UNKNOWN[] = "unknown nonce";
static const char WHY_NONCE_EXPIRED[] = "nonce expired";
static const char WHY_NONCE_ALG[] = "nonce algorithm mismatch";
static const char WHY_NC_BAD[] = "bad nonce count";
static const char WHY_NC_REPLAY[] = "nonce count replayed";
static const char WHY_NC_FORGOTTEN[] = "nonce forgotten";
static const char WHY_FAILED[] = "authentication failed";
static const char WHY_UNAVAILABLE[] = "algorithm not available";
static const char WHY_INTERNAL[] = "internal error";

/* --- configuration --- */

static bool realm_valid(const char *realm)
{
    size_t n = strnlen(realm, AUTH_REALM_MAX + 1);

    if (n == 0 || n > AUTH_REALM_MAX)
        return false;
    /* Written into a quoted-string as is: nothing that would need
     * escaping or could end the header. */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)realm[i];
        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
            return false;
    }
    return true;
}

static int config_check(const struct auth_config *cfg)
{
    if (!cfg || !cfg->realm || !realm_valid(cfg->realm))
        return -EINVAL;
    if (cfg->nalgorithms == 0 || cfg->nalgorithms > AUTH_MAX_ALGORITHMS)
        return -EINVAL;
    for (size_t i = 0; i < cfg->nalgorithms; i++) {
        enum digest_alg alg = cfg->algorithms[i];
        if ((unsigned)alg >= DIGEST_ALG_COUNT)
            return -EINVAL;
        for (size_t j = 0; j < i; j++) {
            if (cfg->algorithms[j] == alg)
                return -EINVAL;
        }
        if (cfg->restricted && alg != DIGEST_ALG_SHA256)
            return -EPERM;
        if (!digest_alg_available(alg))
            return -ENOTSUP;
    }
    return 0;
}

int auth_config_narrow(struct config *cfg, bool restricted, char *err, size_t errlen)
{
    static const char key[] = "auth.algorithms";

    if (!cfg)
        return -EINVAL;
    if (!restricted)
        return 0;
    if (!config_is_explicit(cfg, key))
        return config_override(cfg, key, AUTH_FIPS_ALGORITHMS, err, errlen);
    for (size_t i = 0; i < cfg->auth.algorithms.n; i++) {
        if (strcmp(cfg->auth.algorithms.v[i], "SHA-256") == 0)
            continue;
        struct strbuf v = STRBUF_INIT;
        for (size_t j = 0; j < cfg->auth.algorithms.n; j++)
            strbuf_printf(&v, "%s%s", j ? ", " : "", cfg->auth.algorithms.v[j]);
        snprintf(err, errlen,
                 "%s = %s: %s is not a FIPS approved digest (security.fips restricts SIP and "
                 "HTTP digest to SHA-256); set %s = " AUTH_FIPS_ALGORITHMS,
                 key, strbuf_cstr(&v), cfg->auth.algorithms.v[i], key);
        strbuf_free(&v);
        return -EPERM;
    }
    return 0;
}

/* --- nc table --- */

static bool entry_expired(const struct auth *a, const struct nonce_entry *e, uint64_t now)
{
    return now < e->issued_ms || now - e->issued_ms > a->lifetime_ms;
}

static void entry_drop(struct auth *a, struct nonce_entry *e)
{
    hmap_remove(&a->nonces, &e->node);
    if (e->older)
        e->older->newer = e->newer;
    else
        a->oldest = e->newer;
    if (e->newer)
        e->newer->older = e->older;
    else
        a->newest = e->older;
    free(e);
}

static struct nonce_entry *entry_find(struct auth *a, const unsigned char id[NONCE_ID_LEN],
                                      uint64_t now)
{
    uint64_t h = hash_bytes(id, NONCE_ID_LEN);

    for (struct hmap_node *n = hmap_first(&a->nonces, h); n; n = hmap_next(n, h)) {
        struct nonce_entry *e = container_of(n, struct nonce_entry, node);
        if (memcmp(e->id, id, NONCE_ID_LEN) != 0)
            continue;
        if (entry_expired(a, e, now)) {
            entry_drop(a, e);
            return NULL;
        }
        return e;
    }
    return NULL;
}

/* Drops expired entries from the old end, then the oldest ones until
 * there is room for `room` more. Entries are in first-use order, not
 * issue order, so an expired one may stay behind a younger one for a
 * while; it is useless (its nonce is refused as expired before the table
 * is asked) and goes when it reaches the old end. */
static void table_trim(struct auth *a, uint64_t now, size_t room)
{
    while (a->oldest && entry_expired(a, a->oldest, now))
        entry_drop(a, a->oldest);
    while (a->oldest && a->nonces.count + room > a->max_nonces) {
        if (a->oldest->issued_ms >= a->evicted_before)
            a->evicted_before = a->oldest->issued_ms + 1;
        entry_drop(a, a->oldest);
    }
}

static int table_record(struct auth *a, const unsigned char id[NONCE_ID_LEN], uint64_t issued_ms,
                        uint32_t nc, uint64_t now)
{
    struct nonce_entry *e = entry_find(a, id, now);

    if (e) {
        e->nc = nc;
        return 0;
    }
    e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    memcpy(e->id, id, NONCE_ID_LEN);
    e->issued_ms = issued_ms;
    e->nc = nc;
    table_trim(a, now, 1);
    e->older = a->newest;
    if (a->newest)
        a->newest->newer = e;
    else
        a->oldest = e;
    a->newest = e;
    hmap_insert(&a->nonces, &e->node, hash_bytes(id, NONCE_ID_LEN));
    return 0;
}

/* --- nonces --- */

static void put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)v;
        v >>= 8;
    }
}

static uint64_t get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static int nonce_tag(const struct auth *a, const unsigned char id[NONCE_ID_LEN],
                     unsigned char tag[MAC_MAX_SIZE])
{
    size_t n = 0;
    int rc = mac_hmac(MAC_HMAC_SHA256, a->key, KEY_LEN, id, NONCE_ID_LEN, tag, &n);
    if (rc < 0)
        return rc;
    return n >= NONCE_TAG_LEN ? 0 : -EIO;
}

static int nonce_make(struct auth *a, enum digest_alg alg, uint64_t now,
                      char out[NONCE_TEXT_LEN + 1])
{
    unsigned char raw[NONCE_RAW_LEN], tag[MAC_MAX_SIZE];
    int rc;

    put_be64(raw, now);
    /* Unpredictable, not just unique: a nonce a client could guess
     * before it is issued would let a responder be asked for answers in
     * advance. */
    if (random_secret(raw + 8, 8) < 0)
        return -EIO; /* fail closed: no challenge rather than a guessable one */
    raw[16] = (unsigned char)alg;
    rc = nonce_tag(a, raw, tag);
    if (rc < 0)
        return rc;
    memcpy(raw + NONCE_ID_LEN, tag, NONCE_TAG_LEN);
    return base64_encode(BASE64_URL, raw, sizeof(raw), out, NONCE_TEXT_LEN + 1, NULL);
}

/* 0 when the nonce is one of ours (whatever its age), -EINVAL when not. */
static int nonce_open(const struct auth *a, const char *text, unsigned char id[NONCE_ID_LEN],
                      uint64_t *issued_ms, enum digest_alg *alg)
{
    unsigned char raw[NONCE_RAW_LEN], tag[MAC_MAX_SIZE];
    size_t n = 0;

    if (strlen(text) != NONCE_TEXT_LEN)
        return -EINVAL;
    if (base64_decode(BASE64_URL, strview_cstr(text), raw, sizeof(raw), &n) < 0 ||
        n != NONCE_RAW_LEN)
        return -EINVAL;
    if (nonce_tag(a, raw, tag) < 0)
        return -EINVAL;
    if (CRYPTO_memcmp(tag, raw + NONCE_ID_LEN, NONCE_TAG_LEN) != 0)
        return -EINVAL;
    /* Authentic from here on: only we write these bytes. */
    if (raw[16] >= DIGEST_ALG_COUNT)
        return -EINVAL;
    memcpy(id, raw, NONCE_ID_LEN);
    *issued_ms = get_be64(raw);
    *alg = (enum digest_alg)raw[16];
    return 0;
}

/* --- lifecycle --- */

struct auth *auth_new(struct clock *clock, const struct auth_config *cfg)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char dummy[DIGEST_HEX_MAX / 2];
    struct auth *a;

    if (!clock || config_check(cfg) < 0)
        return NULL;
    a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->clock = clock;
    if (hmap_init(&a->nonces, 64) < 0) {
        free(a);
        return NULL;
    }
    if (random_secret(a->key, sizeof(a->key)) < 0 || random_secret(dummy, sizeof(dummy)) < 0 ||
        auth_set_config(a, cfg) < 0) {
        auth_free(a);
        return NULL;
    }
    for (size_t i = 0; i < sizeof(dummy); i++) {
        a->dummy_ha1[2 * i] = hex[dummy[i] >> 4];
        a->dummy_ha1[2 * i + 1] = hex[dummy[i] & 15];
    }
    a->dummy_ha1[DIGEST_HEX_MAX] = '\0';
    OPENSSL_cleanse(dummy, sizeof(dummy));
    return a;
}

int auth_set_config(struct auth *a, const struct auth_config *cfg)
{
    int rc;

    if (!a)
        return -EINVAL;
    rc = config_check(cfg);
    if (rc < 0)
        return rc;
    char *realm = strdup(cfg->realm);
    if (!realm)
        return -ENOMEM;
    free(a->realm);
    a->realm = realm;
    memcpy(a->algs, cfg->algorithms, cfg->nalgorithms * sizeof(a->algs[0]));
    a->nalgs = cfg->nalgorithms;
    a->restricted = cfg->restricted;
    a->lifetime_ms =
        cfg->nonce_lifetime_ms ? cfg->nonce_lifetime_ms : AUTH_DEFAULT_NONCE_LIFETIME_MS;
    a->max_nonces = cfg->max_nonces ? cfg->max_nonces : AUTH_DEFAULT_MAX_NONCES;
    table_trim(a, clock_now_ms(a->clock), 0);
    return 0;
}

void auth_free(struct auth *a)
{
    if (!a)
        return;
    while (a->oldest)
        entry_drop(a, a->oldest);
    hmap_destroy(&a->nonces);
    free(a->realm);
    OPENSSL_cleanse(a, sizeof(*a));
    free(a);
}

size_t auth_nonce_count(const struct auth *a)
{
    return a ? a->nonces.count : 0;
}

/* --- challenge --- */

int auth_challenge(struct auth *a, bool proxy, bool stale, struct strbuf *out)
{
    char nonces[AUTH_MAX_ALGORITHMS][NONCE_TEXT_LEN + 1];
    uint64_t now;
    int rc;

    if (!a || !out)
        return -EINVAL;
    now = clock_now_ms(a->clock);
    /* All nonces first, so a failure appends nothing. */
    for (size_t i = 0; i < a->nalgs; i++) {
        rc = nonce_make(a, a->algs[i], now, nonces[i]);
        if (rc < 0) {
            log_error("auth.nonce_failed", "error", LOG_INT(rc));
            return -EIO;
        }
    }
    for (size_t i = 0; i < a->nalgs; i++) {
        strbuf_printf(out,
                      "%s: Digest realm=\"%s\", nonce=\"%s\", algorithm=%s, qop=\"auth\"%s\r\n",
                      proxy ? "Proxy-Authenticate" : "WWW-Authenticate", a->realm, nonces[i],
                      digest_alg_name(a->algs[i]), stale ? ", stale=true" : "");
    }
    return out->err;
}

/* --- check --- */

static bool is_digest_scheme(struct strview v)
{
    v = strview_trim(v);
    if (v.n < 6 || strncasecmp(v.p, "Digest", 6) != 0)
        return false;
    return v.n == 6 || v.p[6] == ' ' || v.p[6] == '\t';
}

static bool realm_is_ours(const struct auth *a, struct strview realm)
{
    char buf[AUTH_REALM_MAX + 1];

    /* Too long or badly escaped: not a realm we could have sent. */
    if (digest_unescape(realm, buf, sizeof(buf)) < 0)
        return false;
    return strcmp(buf, a->realm) == 0;
}

static bool alg_allowed(const struct auth *a, struct strview name, enum digest_alg *out)
{
    enum digest_alg alg = DIGEST_ALG_MD5; /* absent: MD5 (RFC 7616 §3.4) */

    if (name.n != 0 && digest_alg_parse(name, &alg) < 0)
        return false;
    for (size_t i = 0; i < a->nalgs; i++) {
        if (a->algs[i] == alg) {
            *out = alg;
            return true;
        }
    }
    return false;
}

static bool username_plausible(const char *name, size_t user_cap)
{
    size_t n = strlen(name);

    if (n == 0 || n > AUTH_USER_MAX || n >= user_cap)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

static bool ha1_valid(const char *ha1, enum digest_alg alg)
{
    size_t hl = digest_alg_hex_len(alg);

    if (strnlen(ha1, DIGEST_HEX_BUF) != hl)
        return false;
    for (size_t i = 0; i < hl; i++) {
        char c = ha1[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return true;
}

/* The parser guarantees 8 hex digits when qop is present. */
static uint32_t parse_nc(struct strview nc)
{
    uint32_t v = 0;
    for (size_t i = 0; i < nc.n; i++) {
        char c = nc.p[i];
        unsigned d = c <= '9' ? (unsigned)(c - '0') : (unsigned)((c | 0x20) - 'a' + 10);
        v = v << 4 | d;
    }
    return v;
}

/* The credentials meant for us: the first Digest header for our realm
 * with an algorithm we allow. */
static enum auth_result select_credentials(const struct auth *a, const struct auth_request *req,
                                           struct digest_credentials *cr, enum digest_alg *alg,
                                           const char **why)
{
    bool malformed = false, ours_refused = false, md5_refused = false;

    for (size_t i = 0; i < req->ncreds; i++) {
        struct digest_credentials c;
        if (digest_credentials_parse(req->creds[i], &c) < 0) {
            /* Other schemes may be meant for someone else; a broken
             * Digest header could have been ours. */
            if (is_digest_scheme(req->creds[i]))
                malformed = true;
            continue;
        }
        if (!realm_is_ours(a, c.realm))
            continue;
        if (!alg_allowed(a, c.algorithm, alg)) {
            enum digest_alg refused = DIGEST_ALG_MD5; /* absent: MD5 */
            ours_refused = true;
            if (c.algorithm.n == 0 ||
                (digest_alg_parse(c.algorithm, &refused) == 0 && refused == DIGEST_ALG_MD5))
                md5_refused = true;
            continue;
        }
        *cr = c;
        return AUTH_OK;
    }
    if (ours_refused) {
        /* Under FIPS say why MD5 is refused: an MD5-only client's user
         * sees it in the 403, the operator in sip.rejected. */
        *why = a->restricted && md5_refused ? WHY_ALGORITHM_FIPS : WHY_ALGORITHM;
        return AUTH_FORBIDDEN;
    }
    if (malformed) {
        *why = WHY_MALFORMED;
        return AUTH_BAD_REQUEST;
    }
    *why = WHY_NO_CREDENTIALS;
    return AUTH_CHALLENGE;
}

/* What of a SIP request digest authentication looks at. */
static void auth_request_from_sip(const struct sip_msg *msg, bool proxy, struct auth_request *out)
{
    enum sip_hdr_id id = proxy ? SIP_HDR_PROXY_AUTHORIZATION : SIP_HDR_AUTHORIZATION;
    memset(out, 0, sizeof(*out));
    out->method = msg->method_name;
    out->uri = msg->request_uri;
    for (struct sip_hdr *h = sip_msg_hdr_first(msg, id); h && out->ncreds < AUTH_MAX_CREDENTIALS;
         h = sip_msg_hdr_next(h, id))
        out->creds[out->ncreds++] = h->value;
}

int auth_claimed_user(const struct auth *a, const struct sip_msg *req, bool proxy, char *user,
                      size_t user_cap)
{
    if (!req)
        return -ENOENT;
    struct auth_request ar;
    auth_request_from_sip(req, proxy, &ar);
    return auth_claimed_user_request(a, &ar, user, user_cap);
}

int auth_claimed_user_request(const struct auth *a, const struct auth_request *req, char *user,
                              size_t user_cap)
{
    struct digest_credentials cr;
    enum digest_alg alg;
    const char *why = NULL;

    if (!a || !req || !user || user_cap == 0)
        return -ENOENT;
    user[0] = '\0';
    if (select_credentials(a, req, &cr, &alg, &why) != AUTH_OK ||
        digest_unescape(cr.username, user, user_cap) < 0 || !username_plausible(user, user_cap)) {
        user[0] = '\0';
        return -ENOENT;
    }
    return 0;
}

bool auth_why_is_wrong_password(const char *why)
{
    return why == WHY_FAILED;
}

struct check_bufs {
    char user[AUTH_USER_MAX + 1];
    char uri[DIGEST_CRED_VALUE_MAX + 1];
    char cnonce[DIGEST_CRED_VALUE_MAX + 1];
    char nonce[NONCE_TEXT_LEN + 1];
    char ha1[DIGEST_HEX_BUF];
    char expected[DIGEST_HEX_BUF];
};

/* Everything but recording nc; on AUTH_OK, id / issued_ms / nc_out say
 * what to record and b->user who it is. */
static enum auth_result check(struct auth *a, const struct auth_request *req, auth_lookup_fn lookup,
                              void *lookup_arg, size_t user_cap, struct check_bufs *b,
                              unsigned char id[NONCE_ID_LEN], uint64_t *issued_ms, uint32_t *nc_out,
                              const char **why)
{
    struct digest_credentials cr;
    enum digest_alg alg, nonce_alg;
    enum auth_result res;
    uint64_t now = clock_now_ms(a->clock);
    int rc;

    res = select_credentials(a, req, &cr, &alg, why);
    if (res != AUTH_OK)
        return res;

    if (cr.qop.n == 0) {
        *why = WHY_QOP_REQUIRED;
        return AUTH_FORBIDDEN;
    }
    if (!strview_eq_nocase(cr.qop, "auth")) {
        *why = WHY_QOP_UNSUPPORTED;
        return AUTH_FORBIDDEN;
    }
    if (digest_unescape(cr.username, b->user, sizeof(b->user)) < 0 ||
        !username_plausible(b->user, user_cap)) {
        *why = WHY_USERNAME;
        return AUTH_BAD_REQUEST;
    }
    if (digest_unescape(cr.uri, b->uri, sizeof(b->uri)) < 0 || !strview_eq(req->uri, b->uri)) {
        *why = WHY_URI;
        return AUTH_BAD_REQUEST;
    }
    if (digest_unescape(cr.cnonce, b->cnonce, sizeof(b->cnonce)) < 0) {
        *why = WHY_MALFORMED;
        return AUTH_BAD_REQUEST;
    }

    if (digest_unescape(cr.nonce, b->nonce, sizeof(b->nonce)) < 0 ||
        nonce_open(a, b->nonce, id, issued_ms, &nonce_alg) < 0) {
        *why = WHY_NONCE_UNKNOWN;
        return AUTH_STALE;
    }
    if (now < *issued_ms || now - *issued_ms > a->lifetime_ms) {
        *why = WHY_NONCE_EXPIRED;
        return AUTH_STALE;
    }
    if (nonce_alg != alg) {
        *why = WHY_NONCE_ALG;
        return AUTH_FORBIDDEN;
    }

    uint32_t nc = parse_nc(cr.nc);
    if (nc == 0) {
        *why = WHY_NC_BAD;
        return AUTH_BAD_REQUEST;
    }
    struct nonce_entry *e = entry_find(a, id, now);
    if (e && nc <= e->nc) {
        *why = WHY_NC_REPLAY;
        return AUTH_FORBIDDEN;
    }
    if (!e && (nc > 1 || *issued_ms < a->evicted_before)) {
        *why = WHY_NC_FORGOTTEN;
        return AUTH_STALE;
    }
    *nc_out = nc;

    rc = lookup(lookup_arg, b->user, alg, b->ha1);
    bool known = rc == 0;
    if (rc < 0 && rc != -ENOENT)
        log_warn("auth.lookup_failed", "user", b->user, "error", LOG_INT(rc));
    if (known && !ha1_valid(b->ha1, alg)) {
        log_warn("auth.bad_ha1", "user", b->user, "algorithm", digest_alg_name(alg));
        known = false;
    }
    /* Same work whether the user exists or not. */
    if (!known) {
        memcpy(b->ha1, a->dummy_ha1, digest_alg_hex_len(alg));
        b->ha1[digest_alg_hex_len(alg)] = '\0';
    }
    rc = digest_response(alg, b->ha1, strview_cstr(b->nonce), cr.nc, strview_cstr(b->cnonce),
                         cr.qop, req->method, strview_cstr(b->uri), b->expected);
    if (rc == -ENOTSUP) {
        *why = WHY_UNAVAILABLE;
        return AUTH_FORBIDDEN;
    }
    if (rc < 0) {
        log_error("auth.response_failed", "algorithm", digest_alg_name(alg), "error", LOG_INT(rc));
        *why = WHY_INTERNAL;
        return AUTH_FORBIDDEN;
    }
    /* The comparison runs for unknown users too, and its result is
     * combined without a branch: no early exit that would tell a known
     * user from an unknown one by timing. An unknown user never passes,
     * whatever the dummy HA1 is. */
    bool match = digest_hex_equal(b->expected, cr.response);
    if (!(match & known)) {
        *why = WHY_FAILED;
        return AUTH_FORBIDDEN;
    }
    return AUTH_OK;
}

enum auth_result auth_check(struct auth *a, const struct sip_msg *req, bool proxy,
                            auth_lookup_fn lookup, void *lookup_arg, char *user, size_t user_cap,
                            const char **why)
{
    if (!req || !req->is_request) {
        if (user && user_cap)
            user[0] = '\0';
        if (why)
            *why = WHY_INTERNAL;
        return AUTH_FORBIDDEN;
    }
    struct auth_request ar;
    auth_request_from_sip(req, proxy, &ar);
    return auth_check_request(a, &ar, lookup, lookup_arg, user, user_cap, why);
}

enum auth_result auth_check_request(struct auth *a, const struct auth_request *req,
                                    auth_lookup_fn lookup, void *lookup_arg, char *user,
                                    size_t user_cap, const char **why)
{
    struct check_bufs b;
    unsigned char id[NONCE_ID_LEN];
    uint64_t issued_ms = 0;
    uint32_t nc = 0;
    const char *reason = NULL;
    enum auth_result res;

    if (user && user_cap)
        user[0] = '\0';
    memset(&b, 0, sizeof(b));
    if (!a || !req || !lookup || !user || user_cap == 0) {
        res = AUTH_FORBIDDEN;
        reason = WHY_INTERNAL;
        goto out;
    }
    res = check(a, req, lookup, lookup_arg, user_cap, &b, id, &issued_ms, &nc, &reason);
    if (res != AUTH_OK)
        goto out;
    if (table_record(a, id, issued_ms, nc, clock_now_ms(a->clock)) < 0) {
        log_error("auth.no_memory");
        res = AUTH_FORBIDDEN;
        reason = WHY_INTERNAL;
        goto out;
    }
    memcpy(user, b.user, strlen(b.user) + 1); /* fits: checked against user_cap */
out:
    OPENSSL_cleanse(&b, sizeof(b));
    if (why)
        *why = res == AUTH_OK ? NULL : reason;
    return res;
}
