#include <ctype.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/clock.h"
#include "core/strbuf.h"
#include "crypto/digest.h"
#include "crypto/encoding.h"
#include "registrar/auth.h"
#include "server/config_keys.h"
#include "sip/msg.h"

#define REALM    "example.test"
#define RURI     "sip:example.test"
#define LIFETIME 30000

/* --- a user store --- */

struct user {
    const char *name, *password;
};

static const struct user users[] = {
    {"alice", "wonderland"},
    {"bob", "builder"},
    {"we\"ird", "quote"},
    /* 64 characters: the longest name accepted */
    {"u234567890123456789012345678901234567890123456789012345678901234", "long"},
};

struct store {
    const char *realm; /* realm the HA1s are computed for */
    int calls;
    char last_user[128];
    int fail_rc;    /* returned instead of looking up, when not 0 */
    bool upper_ha1; /* returns a malformed (uppercase) HA1 */
};

static int store_lookup(void *arg, const char *user, enum digest_alg alg, char ha1[DIGEST_HEX_BUF])
{
    struct store *st = arg;

    st->calls++;
    snprintf(st->last_user, sizeof(st->last_user), "%s", user);
    if (st->fail_rc)
        return st->fail_rc;
    for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++) {
        if (strcmp(users[i].name, user) != 0)
            continue;
        if (digest_ha1(alg, user, st->realm, users[i].password, ha1) != 0)
            return -EIO;
        if (st->upper_ha1) {
            for (char *p = ha1; *p; p++)
                *p = (char)toupper((unsigned char)*p);
        }
        return 0;
    }
    return -ENOENT;
}

/* --- fixture --- */

struct fx {
    struct clock_fake clock;
    struct auth *auth;
    struct store store;
};

static struct auth_config config(size_t n, enum digest_alg a0, enum digest_alg a1)
{
    struct auth_config c = {
        .realm = REALM,
        .algorithms = {a0, a1},
        .nalgorithms = n,
        .nonce_lifetime_ms = LIFETIME,
        .max_nonces = 0,
    };
    return c;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    clock_fake_init(&f->clock, 1000000, 1700000000);
    struct auth_config c = config(2, DIGEST_ALG_SHA256, DIGEST_ALG_MD5);
    f->auth = auth_new(&f->clock.base, &c);
    f->store.realm = REALM;
    *state = f;
    return f->auth ? 0 : -1;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    auth_free(f->auth);
    free(f);
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    return digest_init(NULL, NULL);
}

static int group_teardown(void **state)
{
    (void)state;
    digest_cleanup();
    return 0;
}

/* --- challenges --- */

/* The nonce of the challenge line for alg ("" when there is none). */
static void line_nonce(const char *text, enum digest_alg alg, char out[128])
{
    char want[40];
    snprintf(want, sizeof(want), "algorithm=%s,", digest_alg_name(alg));
    out[0] = '\0';
    for (const char *line = text; *line;) {
        const char *end = strstr(line, "\r\n");
        assert_non_null(end);
        const char *a = strstr(line, want);
        if (a && a < end) {
            const char *n = strstr(line, "nonce=\"");
            assert_non_null(n);
            n += 7;
            const char *q = strchr(n, '"');
            assert_non_null(q);
            assert_true(q - n < 128);
            memcpy(out, n, (size_t)(q - n));
            out[q - n] = '\0';
            return;
        }
        line = end + 2;
    }
}

static void get_nonce(struct auth *a, enum digest_alg alg, char out[128])
{
    struct strbuf b = STRBUF_INIT;
    assert_int_equal(auth_challenge(a, false, false, &b), 0);
    line_nonce(strbuf_cstr(&b), alg, out);
    assert_true(out[0] != '\0');
    strbuf_free(&b);
}

/* --- a client --- */

struct client {
    const char *hdr;       /* header name */
    const char *user;      /* as sent (escapes included) */
    const char *user_hash; /* as hashed (NULL: user) */
    const char *password;
    const char *realm;
    const char *nonce;
    const char *uri;      /* as sent */
    const char *uri_hash; /* as hashed (NULL: uri) */
    const char *method;   /* as hashed */
    enum digest_alg alg;
    const char *alg_param; /* NULL: the name of alg; "": left out */
    unsigned nc;
    const char *cnonce;
    const char *qop;      /* NULL: auth; "": left out (and nc, cnonce too) */
    const char *response; /* NULL: computed */
    bool upper;           /* sends the computed response in uppercase hex */
};

static struct client client(const char *nonce, enum digest_alg alg)
{
    struct client c = {
        .hdr = "Authorization",
        .user = "alice",
        .password = "wonderland",
        .realm = REALM,
        .nonce = nonce,
        .uri = RURI,
        .method = "REGISTER",
        .alg = alg,
        .nc = 1,
        .cnonce = "0a4f113b",
    };
    return c;
}

/* Appends one header line (with CRLF) to b. */
static void client_header(const struct client *c, struct strbuf *b)
{
    char ha1[DIGEST_HEX_BUF], resp[DIGEST_HEX_BUF], nc[16];
    const char *qop = c->qop ? c->qop : "auth";

    snprintf(nc, sizeof(nc), "%08x", c->nc);
    assert_int_equal(
        digest_ha1(c->alg, c->user_hash ? c->user_hash : c->user, c->realm, c->password, ha1), 0);
    assert_int_equal(digest_response(c->alg, ha1, strview_cstr(c->nonce),
                                     strview_cstr(*qop ? nc : ""), strview_cstr(c->cnonce),
                                     strview_cstr(qop), strview_cstr(c->method),
                                     strview_cstr(c->uri_hash ? c->uri_hash : c->uri), resp),
                     0);
    if (c->upper) {
        for (char *p = resp; *p; p++)
            *p = (char)toupper((unsigned char)*p);
    }
    strbuf_printf(b,
                  "%s: Digest username=\"%s\", realm=\"%s\", nonce=\"%s\", uri=\"%s\", "
                  "response=\"%s\"",
                  c->hdr, c->user, c->realm, c->nonce, c->uri, c->response ? c->response : resp);
    const char *alg = c->alg_param ? c->alg_param : digest_alg_name(c->alg);
    if (*alg)
        strbuf_printf(b, ", algorithm=%s", alg);
    if (*qop)
        strbuf_printf(b, ", qop=%s, nc=%s, cnonce=\"%s\"", qop, nc, c->cnonce);
    strbuf_puts(b, "\r\n");
}

static struct sip_msg *request(const char *method, const char *ruri, const char *hdrs)
{
    struct strbuf b = STRBUF_INIT;
    struct sip_msg *msg = NULL;
    struct sip_parse_error err;

    strbuf_printf(&b,
                  "%s %s SIP/2.0\r\n"
                  "Via: SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bK776asdhds\r\n"
                  "Max-Forwards: 70\r\n"
                  "To: <sip:alice@example.test>\r\n"
                  "From: <sip:alice@example.test>;tag=1928301774\r\n"
                  "Call-ID: a84b4c76e66710@192.0.2.1\r\n"
                  "CSeq: 1 %s\r\n"
                  "%s"
                  "Content-Length: 0\r\n\r\n",
                  method, ruri, method, hdrs);
    assert_int_equal(b.err, 0);
    if (sip_msg_parse(b.p, b.len, &msg, &err) != 0)
        fail_msg("parse: %s\n%s", err.reason, b.p);
    strbuf_free(&b);
    return msg;
}

struct outcome {
    enum auth_result res;
    const char *why;
    char user[AUTH_USER_MAX + 1];
};

static struct outcome check_hdrs(struct fx *f, const char *hdrs, bool proxy)
{
    struct outcome o;
    struct sip_msg *msg = request("REGISTER", RURI, hdrs);
    memset(o.user, 'x', sizeof(o.user));
    o.why = "unset";
    o.res =
        auth_check(f->auth, msg, proxy, store_lookup, &f->store, o.user, sizeof(o.user), &o.why);
    sip_msg_free(msg);
    /* the name is given on success only, the reason on failure only */
    if (o.res == AUTH_OK) {
        assert_null(o.why);
    } else {
        assert_non_null(o.why);
        assert_string_equal(o.user, "");
    }
    return o;
}

static struct outcome check_client(struct fx *f, const struct client *c, bool proxy)
{
    struct strbuf b = STRBUF_INIT;
    client_header(c, &b);
    assert_int_equal(b.err, 0);
    struct outcome o = check_hdrs(f, strbuf_cstr(&b), proxy);
    strbuf_free(&b);
    return o;
}

#define assert_outcome(o, r, w)                                                                    \
    do {                                                                                           \
        struct outcome o_ = (o);                                                                   \
        if (o_.res != (r))                                                                         \
            fail_msg("result %d (%s), expected %d", o_.res, o_.why ? o_.why : "-", (int)(r));      \
        if ((w) != NULL)                                                                           \
            assert_string_equal(o_.why, (w));                                                      \
    } while (0)

/* --- tests --- */

/* The client side of this file against values computed independently
 * with Python's hashlib:
 *   H = md5 / sha256; HA1 = H("alice:example.test:wonderland");
 *   HA2 = H("REGISTER:sip:example.test");
 *   H(HA1:dcd98b7102dd2f0e8b11d0f600bfb0c093:00000001:0a4f113b:auth:HA2) */
static void test_fixed_vector(void **state)
{
    (void)state;
    char ha1[DIGEST_HEX_BUF], resp[DIGEST_HEX_BUF];
    const struct strview nonce = strview_cstr("dcd98b7102dd2f0e8b11d0f600bfb0c093");

    assert_int_equal(digest_ha1(DIGEST_ALG_MD5, "alice", REALM, "wonderland", ha1), 0);
    assert_string_equal(ha1, "c3436a6e569a0110423c5cab51b74106");
    assert_int_equal(digest_response(DIGEST_ALG_MD5, ha1, nonce, strview_cstr("00000001"),
                                     strview_cstr("0a4f113b"), strview_cstr("auth"),
                                     strview_cstr("REGISTER"), strview_cstr(RURI), resp),
                     0);
    assert_string_equal(resp, "7dd73b07a2dc338556da6d86bb6d7518");
    assert_int_equal(digest_ha1(DIGEST_ALG_SHA256, "alice", REALM, "wonderland", ha1), 0);
    assert_string_equal(ha1, "77cae796a8cc52f5c46ded35aad6f46bea0804eea0c135b3fe8e30dc61956fb2");
    assert_int_equal(digest_response(DIGEST_ALG_SHA256, ha1, nonce, strview_cstr("00000001"),
                                     strview_cstr("0a4f113b"), strview_cstr("auth"),
                                     strview_cstr("REGISTER"), strview_cstr(RURI), resp),
                     0);
    assert_string_equal(resp, "f32ab5dddc1a9acb0dc0795ea4c3c6dbc68e901fffb2495c541b440545cc3612");
}

/* Checks one challenge line and returns its nonce's decoded bytes. */
static void check_line(const char *line, size_t len, const char *hdr, enum digest_alg alg,
                       bool stale, uint64_t now, unsigned char raw[33])
{
    char want[256], nonce[128];

    assert_true(len < sizeof(want));
    const char *n = strstr(line, "nonce=\"");
    assert_non_null(n);
    n += 7;
    const char *q = strchr(n, '"');
    assert_non_null(q);
    assert_int_equal(q - n, 44); /* base64url of 33 bytes, no padding */
    memcpy(nonce, n, 44);
    nonce[44] = '\0';
    snprintf(want, sizeof(want),
             "%s: Digest realm=\"" REALM "\", nonce=\"%s\", algorithm=%s, qop=\"auth\"%s\r\n", hdr,
             nonce, alg == DIGEST_ALG_SHA256 ? "SHA-256" : "MD5", stale ? ", stale=true" : "");
    assert_int_equal(len, strlen(want));
    assert_memory_equal(line, want, len);

    size_t rawlen = 0;
    assert_int_equal(base64_decode(BASE64_URL, strview_cstr(nonce), raw, 33, &rawlen), 0);
    assert_int_equal(rawlen, 33);
    uint64_t t = 0;
    for (int i = 0; i < 8; i++)
        t = t << 8 | raw[i];
    assert_true(t == now);
    assert_int_equal(raw[16], (int)alg);
}

static void test_challenge_format(void **state)
{
    struct fx *f = *state;
    unsigned char raw[8][33];
    size_t nraw = 0;
    const struct {
        bool proxy, stale;
        const char *hdr;
    } cases[] = {
        {false, false, "WWW-Authenticate"},
        {false, true, "WWW-Authenticate"},
        {true, false, "Proxy-Authenticate"},
        {true, true, "Proxy-Authenticate"},
    };

    for (size_t c = 0; c < 4; c++) {
        struct strbuf b = STRBUF_INIT;
        assert_int_equal(auth_challenge(f->auth, cases[c].proxy, cases[c].stale, &b), 0);
        const char *text = strbuf_cstr(&b);
        /* two lines, SHA-256 first as configured */
        const char *l1 = strstr(text, "\r\n");
        assert_non_null(l1);
        l1 += 2;
        const char *l2 = strstr(l1, "\r\n");
        assert_non_null(l2);
        l2 += 2;
        assert_int_equal(*l2, '\0');
        check_line(text, (size_t)(l1 - text), cases[c].hdr, DIGEST_ALG_SHA256, cases[c].stale,
                   f->clock.now_ms, raw[nraw++]);
        check_line(l1, (size_t)(l2 - l1), cases[c].hdr, DIGEST_ALG_MD5, cases[c].stale,
                   f->clock.now_ms, raw[nraw++]);
        strbuf_free(&b);
    }
    /* every nonce differs from every other, in its random part too */
    for (size_t i = 0; i < nraw; i++) {
        for (size_t j = i + 1; j < nraw; j++)
            assert_memory_not_equal(raw[i] + 8, raw[j] + 8, 8);
    }

    /* appended to what is there already */
    struct strbuf b = STRBUF_INIT;
    strbuf_puts(&b, "SIP/2.0 401 Unauthorized\r\n");
    assert_int_equal(auth_challenge(f->auth, false, false, &b), 0);
    const char *head = "SIP/2.0 401 Unauthorized\r\nWWW-Authenticate: Digest ";
    assert_true(strncmp(strbuf_cstr(&b), head, strlen(head)) == 0);
    strbuf_free(&b);

    /* a single algorithm: a single line */
    struct auth_config c = config(1, DIGEST_ALG_MD5, DIGEST_ALG_MD5);
    assert_int_equal(auth_set_config(f->auth, &c), 0);
    assert_int_equal(auth_challenge(f->auth, true, false, &b), 0);
    const char *end = strstr(strbuf_cstr(&b), "\r\n");
    assert_non_null(end);
    assert_int_equal(end[2], '\0');
    check_line(strbuf_cstr(&b), b.len, "Proxy-Authenticate", DIGEST_ALG_MD5, false, f->clock.now_ms,
               raw[0]);
    strbuf_free(&b);
    /* challenges create no state */
    assert_int_equal(auth_nonce_count(f->auth), 0);
}

static void test_ok_md5(void **state)
{
    struct fx *f = *state;
    char nonce[128];

    get_nonce(f->auth, DIGEST_ALG_MD5, nonce);
    struct client c = client(nonce, DIGEST_ALG_MD5);
    struct outcome o = check_client(f, &c, false);
    assert_outcome(o, AUTH_OK, NULL);
    assert_string_equal(o.user, "alice");
    assert_int_equal(f->store.calls, 1);
    assert_int_equal(auth_nonce_count(f->auth), 1);

    /* algorithm names are matched in any case, the response's hex too */
    get_nonce(f->auth, DIGEST_ALG_MD5, nonce);
    c = client(nonce, DIGEST_ALG_MD5);
    c.alg_param = "md5";
    c.upper = true;
    assert_outcome(check_client(f, &c, false), AUTH_OK, NULL);
    assert_int_equal(auth_nonce_count(f->auth), 2);
}

static void test_ok_sha256(void **state)
{
    struct fx *f = *state;
    char nonce[128];

    get_nonce(f->auth, DIGEST_ALG_SHA256, nonce);
    struct client c = client(nonce, DIGEST_ALG_SHA256);
    c.user = "bob";
    c.password = "builder";
    struct outcome o = check_client(f, &c, false);
    assert_outcome(o, AUTH_OK, NULL);
    assert_string_equal(o.user, "bob");
    assert_string_equal(f->store.last_user, "bob");
}

/* Quoted values are unescaped before use: user name and digest-uri. */
static void test_escapes(void **state)
{
    struct fx *f = *state;
    char nonce[128];

    get_nonce(f->auth, DIGEST_ALG_SHA256, nonce);
    struct client c = client(nonce, DIGEST_ALG_SHA256);
    c.user = "we\\\"ird";
    c.user_hash = "we\"ird";
    c.password = "quote";
    c.uri = "sip:example.te\\st";
    c.uri_hash = RURI;
    struct outcome o = check_client(f, &c, false);
    assert_outcome(o, AUTH_OK, NULL);
    assert_string_equal(o.user, "we\"ird");
}

static void test_wrong_password_unknown_user(void **state)
{
    struct fx *f = *state;
    char nonce[128];

    get_nonce(f->auth, DIGEST_ALG_SHA256, nonce);
    struct client c = client(nonce, DIGEST_ALG_SHA256);
    c.password = "wonderlanD";
    struct outcome wrong = check_client(f, &c, false);
    assert_outcome(wrong, AUTH_FORBIDDEN, "authentication failed");
    assert_int_equal(f->store.calls, 1);

    c = client(nonce, DIGEST_ALG_SHA256);
    c.user = "mallory";
    struct outcome unknown = check_client(f, &c, false);
    assert_outcome(unknown, AUTH_FORBIDDEN, NULL);
    assert_string_equal(unknown.why, wrong.why);
    /* the store was asked, as for a known user */
    assert_int_equal(f->store.calls, 2);
    assert_string_equal(f->store.last_user, "mallory");

    /* a store failure looks the same */
    f->store.fail_rc = -EIO;
    c = client(nonce, DIGEST_ALG_SHA256);
    assert_outcome(check_client(f, &c, false), AUTH_FORBIDDEN, "authentication failed");
    f->store.fail_rc = 0;

    /* and so does a stored HA1 that is not lowercase hex */
    f->store.upper_ha1 = true;
    assert_outcome(check_client(f, &c, false), AUTH_FORBIDDEN, "authentication failed");
    f->store.upper_ha1 = false;

    /* the method is part of the hash */
    c = client(nonce, DIGEST_ALG_SHA256);
    c.method = "INVITE";
    assert_outcome(check_client(f, &c, false), AUTH_FORBIDDEN, "authentication failed");

    /* none of the failures used up nc 1 */
    assert_int_equal(auth_nonce_count(f->auth), 0);
    c = client(nonce, DIGEST_ALG_SHA256);
    assert_outcome(check_client(f, &c, false), AUTH_OK, NULL);
}

/* A nonce from another instance (another key), as after a restart:
 * refused like an expired one, so the client retries with a fresh nonce
 * without asking its user. */
static void test_foreign_nonce(void **state)
{
    struct fx *f = *state;
    char nonce[128];
    struct auth_config cfg = config(2, DIGEST_ALG_SHA256, DIGEST_ALG_MD5);
    struct auth *other = auth_new(&f->clock.base, &cfg);
    assert_non_null(other);

    get_nonce(other, DIGEST_ALG_MD5, nonce);
    struct client c = client(nonce, DIGEST_ALG_MD5);
    assert_outcome(check_client(f, &c, false), AUTH_STALE, "unknown nonce");
    assert_int_equal(f->store.calls, 0);
    auth_free(other);
}

static void test_tampered_nonce(void **state)
{
    struct fx *f = *state;
    char nonce[128], bad[128];

    get_nonce(f->auth, DIGEST_ALG_MD5, nonce);
    /* One character changed in the time (chars 0-10), random (10-21),
     * algorithm (21-22) and tag (22-43) parts; the last one only in its
     * lowest bit (33 bytes fill 44 characters exactly: every bit counts). */
    const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const size_t positions[] = {0, 5, 12, 21, 22, 30, 42, 43};
    for (size_t i = 0; i < sizeof(positions) / sizeof(positions[0]); i++) {
        strcpy(bad, nonce);
        size_t p = positions[i];
        int v = (int)(strchr(alpha, bad[p]) - alpha);
        bad[p] = alpha[v ^ 1];
        struct client c = client(bad, DIGEST_ALG_MD5);
        assert_outcome(check_client(f, &c, false), AUTH_STALE, "unknown nonce");
    }
    /* garbage, truncated, extended, non-canonical, padded */
    const char *garbage[] = {"abc", "x", "0000000000000000000000000000000000000000000=", "AAAA"};
    for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
        struct client c = client(garbage[i], DIGEST_ALG_MD5);
        assert_outcome(check_client(f, &c, false), AUTH_STALE, "unknown nonce");
    }
    strcpy(bad, nonce);
    bad[43] = '\0';
    struct client c = client(bad, DIGEST_ALG_MD5);
    assert_outcome(check_client(f, &c, false), AUTH_STALE, "unknown nonce");
    strcpy(bad, nonce);
    strcat(bad, "AAAA");
    c = client(bad, DIGEST_ALG_MD5);
    assert_outcome(check_client(f, &c, false), AUTH_STALE, "unknown nonce");
    /* the nonce of an SHA-256 line with its algorithm byte rewritten to
     * MD5 (and everything else kept) */
    char n256[128];
    unsigned char raw[33];
    size_t rawlen;
    get_nonce(f->auth, DIGEST_ALG_SHA256, n256);
    assert_int_equal(base64_decode(BASE64_URL, strview_cstr(n256), raw, sizeof(raw), &rawlen), 0);
    raw[16] = DIGEST_ALG_MD5;
    assert_int_equal(base64_encode(BASE64_URL, raw, rawlen, bad, sizeof(bad), NULL), 0);
    c = client(bad, DIGEST_ALG_MD5);
    assert_outcome(check_client(f, &c, false), AUTH_STALE, "unknown nonce");

    assert_int_equal(f->store.calls, 0);
    /* the genuine one still works */
    c = client(nonce, DIGEST_ALG_MD5);
    assert_outcome(check_client(f, &c, false), AUTH_OK, NULL);
}

static void test_expired_nonce(void **state)
{
    struct fx *f = *state;
    char n1[128], n2[128];

    get_nonce(f->auth, DIGEST_ALG_MD5, n1);
    get_nonce(f->auth, DIGEST_ALG_MD5, n2);
    struct client c = client(n1, DIGEST_ALG_MD5);
    assert_outcome(check_client(f, &c, false), AUTH_OK, NULL);

    /* exactly the lifetime: still valid */
    clock_fake_advance(&f->clock, LIFETIME);
    c.nc = 2;
    assert_outcome(check_client(f, &c, false), AUTH_OK, NULL);
    clock_fake_advance(&f->clock, 1);
    c.nc = 3;
    assert_outcome(check_client(f, &c, false), AUTH_STALE, "nonce expired");
    /* an expired nonce never used */
    c = client(n2, DIGEST_ALG_MD5);
    assert_outcome(check_client(f, &c, false), AUTH_STALE, "nonce expired");
    /* even with a wrong password: stale first, the retry checks it */
    c.password = "nope";
    assert_outcome(check_client(f, &c, false), AUTH_STALE, "nonce expired");
    assert_int_equal(f->store.calls, 2);

    /* expired entries go when a new one is recorded */
    assert_int_equal(auth_nonce_count(f->auth), 1);
    get_nonce(f->auth, DIGEST_ALG_MD5, n1);
    c = client(n1, DIGEST_ALG_MD5);
    assert_outcome(check_client(f, &c, false), AUTH_OK, NULL);
    assert_int_equal(auth_nonce_count(f->auth), 1);
}

static void test_nc(void **state)
{
    struct fx *f = *state;
    char nonce[128];

    get_nonce(f->auth, DIGEST_ALG_SHA256, nonce);
    struct client c = client(nonce, DIGEST_ALG_SHA256);
    assert_outcome(check_client(f, &c, false), AUTH_OK, NULL);
    /* the same request again */
    assert_outcome(check_client(f, &c, false), AUTH_FORBIDDEN, "nonce count replayed");
    c.nc = 2;
    assert_outcome(check_client(f, &c, false), AUTH_OK, NULL);
    assert_outcome(check_client(f, &c, false), AUTH_FORBIDDEN, "nonce count replayed");
    /* gaps are allowed (requests may be lost), going back is not */
    c.nc = 0x10;
    assert_outcome(check_client(f, &c, false), AUTH_OK, NULL);
    c.nc = 0x0f;
    assert_outcome(check_client(f, &c, false), AUTH_FORBIDDEN, "nonce count replayed");
    /* nc is hex: 00000011 comes after 00000010 */
    c.nc = 0x11;
    assert_outcome(check_client(f, &c, false), AUTH_OK, NULL);
    c.nc = 0xfffffffe;
    assert_outcome(check_client(f, &c, false), AUTH_OK, NULL);
    c.nc = 0xffffffff;
    assert_outcome(check_client(f, &c, false), AUTH_OK, NULL);
    assert_outcome(check_client(f, &c, false), AUTH_FORBIDDEN, "nonce count replayed");
    assert_int_equal(auth_nonce_count(f->auth), 1);

    /* a wrong password at a higher nc does not raise the bar */
    get_nonce(f->auth, DIGEST_ALG_SHA256, nonce);
    c = client(nonce, DIGEST_ALG_SHA256);
    c.nc = 5;
    c.password = "guess";
    /* nc 5 for a nonce without an entry: stale before anything else */
    assert_outcome(check_client(f, &c, false), AUTH_STALE, "nonce forgotten");
    c.nc = 1;
    assert_outcome(check_client(f, &c, false), AUTH_FORBIDDEN, "authentication failed");
    c.password = "wonderland";
    assert_outcome(check_client(f, &c, false), AUTH_OK, NULL);
    c.nc = 3;
    c.password = "guess";
    assert_outcome(check_client(f, &c, false), AUTH_FORBIDDEN, "authentication failed");
    c.nc = 2;
    c.password = "wonderland";
    assert_outcome(check_client(f, &c, false), AUTH_OK, NULL);

    /* nc 00000000 is not a count */
    get_nonce(f->auth, DIGEST_ALG_SHA256, nonce);
    c = client(nonce, DIGEST_ALG_SHA256);
    c.nc = 0;
    assert_outcome(check_client(f, &c, false), AUTH_BAD_REQUEST, "bad nonce count");
}

/* Nonces are bound to the algorithm they were offered with. */
static void test_nonce_algorithm_binding(void **state)
{
    struct fx *f = *state;
    char n256[128], nmd5[128];

    get_nonce(f->auth, DIGEST_ALG_SHA256, n256);
    get_nonce(f->auth, DIGEST_ALG_MD5, nmd5);
    struct client c = client(n256, DIGEST_ALG_MD5);
    assert_outcome(check_client(f, &c, false), AUTH_FORBIDDEN, "nonce algorithm mismatch");
    /* no algorithm parameter means MD5: refused the same way */
    c.alg_param = "";
    assert_outcome(check_client(f, &c, false), AUTH_FORBIDDEN, "nonce algorithm mismatch");
    c = client(nmd5, DIGEST_ALG_SHA256);
    assert_outcome(check_client(f, &c, false), AUTH_FORBIDDEN, "nonce algorithm mismatch");
    assert_int_equal(f->store.calls, 0);
    /* each with its own algorithm */
    c = client(n256, DIGEST_ALG_SHA256);
    assert_outcome(check_client(f, &c, false), AUTH_OK, NULL);
    c = client(nmd5, DIGEST_ALG_MD5);
    c.alg_param = "";
    assert_outcome(check_client(f, &c, false), AUTH_OK, NULL);
}

static void test_algorithm_not_allowed(void **state)
{
    struct fx *f = *state;
    char nonce[128];
    struct auth_config cfg = config(1, DIGEST_ALG_SHA256, DIGEST_ALG_SHA256);
    assert_int_equal(auth_set_config(f->auth, &cfg), 0);

    get_nonce(f->auth, DIGEST_ALG_SHA256, nonce);
    struct client c = client(nonce, DIGEST_ALG_MD5);
    assert_outcome(check_client(f, &c, false), AUTH_FORBIDDEN, "algorithm not allowed");
    /* absent means MD5 */
    c.alg_param = "";
    assert_outcome(check_client(f, &c, false), AUTH_FORBIDDEN, "algorithm not allowed");
    const char *names[] = {"MD5-sess", "SHA-256-sess", "SHA-512-256", "SHA256", "\"SHA-256\"x"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        c = client(nonce, DIGEST_ALG_SHA256);
        c.alg_param = names[i];
        struct strbuf b = STRBUF_INIT;
        client_header(&c, &b);
        struct outcome o = check_hdrs(f, strbuf_cstr(&b), false);
        strbuf_free(&b);
        if (i < 4)
            assert_outcome(o, AUTH_FORBIDDEN, "algorithm not allowed");
        else
            assert_outcome(o, AUTH_BAD_REQUEST, "malformed credentials");
    }
    assert_int_equal(f->store.calls, 0);
    c = client(nonce, DIGEST_ALG_SHA256);
    assert_outcome(check_client(f, &c, false), AUTH_OK, NULL);
}

static void test_uri_mismatch(void **state)
{
    struct fx *f = *state;
    char nonce[128];

    get_nonce(f->auth, DIGEST_ALG_MD5, nonce);
    const char *uris[] = {"sip:other.test", "sip:EXAMPLE.test", "sip:example.test;transport=tls",
                          "sips:example.test", "sip:example.tes"};
    for (size_t i = 0; i < sizeof(uris) / sizeof(uris[0]); i++) {
        struct client c = client(nonce, DIGEST_ALG_MD5);
        c.uri = uris[i];
        assert_outcome(check_client(f, &c, false), AUTH_BAD_REQUEST, "digest-uri mismatch");
    }
    /* the response computed over the Request-URI but another uri sent */
    struct client c = client(nonce, DIGEST_ALG_MD5);
    c.uri = "sip:other.test";
    c.uri_hash = RURI;
    assert_outcome(check_client(f, &c, false), AUTH_BAD_REQUEST, "digest-uri mismatch");
    assert_int_equal(f->store.calls, 0);
    assert_int_equal(auth_nonce_count(f->auth), 0);
}

static void test_missing_and_garbled(void **state)
{
    struct fx *f = *state;
    char nonce[128];

    assert_outcome(check_hdrs(f, "", false), AUTH_CHALLENGE, "no credentials");
    /* other schemes are someone else's business */
    assert_outcome(check_hdrs(f, "Authorization: Basic YWxpY2U6d29uZGVybGFuZA==\r\n", false),
                   AUTH_CHALLENGE, "no credentials");
    assert_outcome(check_hdrs(f, "Authorization: Bearer abc\r\n", false), AUTH_CHALLENGE,
                   "no credentials");
    /* broken Digest */
    const char *broken[] = {
        "Authorization: Digest\r\n",
        "Authorization: Digest username=\r\n",
        "Authorization: Digest username=\"alice\", realm=\"" REALM "\"\r\n",
        "Authorization: Digest username=\"alice\", realm=\"" REALM "\", nonce=\"n\", uri=\"" RURI
        "\", response=\"00\", qop=auth, nc=1, cnonce=\"c\"\r\n",
        "Authorization: digest username=\"alice\",,realm=\"" REALM "\"\r\n",
    };
    for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++)
        assert_outcome(check_hdrs(f, broken[i], false), AUTH_BAD_REQUEST, "malformed credentials");

    /* a broken Digest header next to good credentials does not matter */
    get_nonce(f->auth, DIGEST_ALG_MD5, nonce);
    struct client c = client(nonce, DIGEST_ALG_MD5);
    struct strbuf b = STRBUF_INIT;
    strbuf_puts(&b, broken[1]);
    client_header(&c, &b);
    assert_outcome(check_hdrs(f, strbuf_cstr(&b), false), AUTH_OK, NULL);
    strbuf_free(&b);

    /* no qop (RFC 2069): refused, there is no nc to protect it */
    c = client(nonce, DIGEST_ALG_MD5);
    c.qop = "";
    assert_outcome(check_client(f, &c, false), AUTH_FORBIDDEN, "qop=auth required");
    c.qop = "auth-int";
    b = (struct strbuf)STRBUF_INIT;
    strbuf_printf(&b,
                  "Authorization: Digest username=\"alice\", realm=\"" REALM
                  "\", nonce=\"%s\", uri=\"" RURI "\", response=\"%032d\", algorithm=MD5, "
                  "qop=auth-int, nc=00000002, cnonce=\"x\"\r\n",
                  nonce, 0);
    assert_outcome(check_hdrs(f, strbuf_cstr(&b), false), AUTH_FORBIDDEN, "qop not supported");
    strbuf_free(&b);
    /* qop is a token, but some clients quote it; and its case is free */
    c = client(nonce, DIGEST_ALG_MD5);
    c.qop = "\"auth\"";
    c.nc = 2;
    b = (struct strbuf)STRBUF_INIT;
    {
        char ha1[DIGEST_HEX_BUF], resp[DIGEST_HEX_BUF];
        assert_int_equal(digest_ha1(DIGEST_ALG_MD5, "alice", REALM, "wonderland", ha1), 0);
        assert_int_equal(digest_response(DIGEST_ALG_MD5, ha1, strview_cstr(nonce),
                                         strview_cstr("00000002"), strview_cstr("c"),
                                         strview_cstr("AUTH"), strview_cstr("REGISTER"),
                                         strview_cstr(RURI), resp),
                         0);
        strbuf_printf(&b,
                      "Authorization: Digest username=\"alice\", realm=\"" REALM
                      "\", nonce=\"%s\", uri=\"" RURI "\", response=\"%s\", "
                      "qop=\"AUTH\", nc=00000002, cnonce=\"c\"\r\n",
                      nonce, resp);
    }
    assert_outcome(check_hdrs(f, strbuf_cstr(&b), false), AUTH_OK, NULL);
    strbuf_free(&b);

    /* user names */
    const char *bad_users[] = {
        "u2345678901234567890123456789012345678901234567890123456789012345", /* 65 */
        "tab\tuser",
    };
    for (size_t i = 0; i < sizeof(bad_users) / sizeof(bad_users[0]); i++) {
        c = client(nonce, DIGEST_ALG_MD5);
        c.user = bad_users[i];
        c.nc = 10 + (unsigned)i;
        assert_outcome(check_client(f, &c, false), AUTH_BAD_REQUEST, "bad username");
    }
    assert_int_equal(f->store.calls, 2); /* the two successes above */
    c = client(nonce, DIGEST_ALG_MD5);
    c.user = users[3].name;
    c.password = users[3].password;
    c.nc = 20;
    struct outcome o = check_client(f, &c, false);
    assert_outcome(o, AUTH_OK, NULL);
    assert_string_equal(o.user, users[3].name);
}

static void test_realms(void **state)
{
    struct fx *f = *state;
    char nonce[128];

    get_nonce(f->auth, DIGEST_ALG_MD5, nonce);
    struct client other = client(nonce, DIGEST_ALG_MD5);
    other.realm = "partner.test";
    assert_outcome(check_client(f, &other, false), AUTH_CHALLENGE, "no credentials");
    /* realms compare exactly */
    struct client upper = client(nonce, DIGEST_ALG_MD5);
    upper.realm = "Example.test";
    assert_outcome(check_client(f, &upper, false), AUTH_CHALLENGE, "no credentials");
    struct client longer = client(nonce, DIGEST_ALG_MD5);
    longer.realm = REALM " ";
    assert_outcome(check_client(f, &longer, false), AUTH_CHALLENGE, "no credentials");
    assert_int_equal(f->store.calls, 0);

    /* ours after someone else's */
    struct strbuf b = STRBUF_INIT;
    client_header(&other, &b);
    struct client ours = client(nonce, DIGEST_ALG_MD5);
    client_header(&ours, &b);
    assert_outcome(check_hdrs(f, strbuf_cstr(&b), false), AUTH_OK, NULL);
    strbuf_free(&b);

    /* ours with an algorithm we refuse, then ours with one we take */
    char n256[128];
    get_nonce(f->auth, DIGEST_ALG_SHA256, n256);
    struct client refused = client(n256, DIGEST_ALG_SHA256);
    refused.alg_param = "SHA-512-256";
    struct client good = client(n256, DIGEST_ALG_SHA256);
    b = (struct strbuf)STRBUF_INIT;
    client_header(&refused, &b);
    client_header(&good, &b);
    assert_outcome(check_hdrs(f, strbuf_cstr(&b), false), AUTH_OK, NULL);
    strbuf_free(&b);
}

static void test_proxy_selection(void **state)
{
    struct fx *f = *state;
    char nonce[128];

    get_nonce(f->auth, DIGEST_ALG_MD5, nonce);
    struct client c = client(nonce, DIGEST_ALG_MD5);
    /* Authorization is not looked at for a 407 challenge, and the reverse */
    assert_outcome(check_client(f, &c, true), AUTH_CHALLENGE, "no credentials");
    c.hdr = "Proxy-Authorization";
    assert_outcome(check_client(f, &c, false), AUTH_CHALLENGE, "no credentials");
    assert_outcome(check_client(f, &c, true), AUTH_OK, NULL);

    /* with both present, each flag picks its own */
    struct strbuf b = STRBUF_INIT;
    struct client www = client(nonce, DIGEST_ALG_MD5);
    www.password = "wrong";
    www.nc = 2;
    client_header(&www, &b);
    c.nc = 3;
    client_header(&c, &b);
    assert_outcome(check_hdrs(f, strbuf_cstr(&b), false), AUTH_FORBIDDEN, "authentication failed");
    assert_outcome(check_hdrs(f, strbuf_cstr(&b), true), AUTH_OK, NULL);
    strbuf_free(&b);
}

static void test_eviction(void **state)
{
    struct fx *f = *state;
    char n[5][128];
    struct auth_config cfg = config(1, DIGEST_ALG_MD5, DIGEST_ALG_MD5);
    cfg.max_nonces = 3;
    assert_int_equal(auth_set_config(f->auth, &cfg), 0);

    for (int i = 0; i < 5; i++) {
        get_nonce(f->auth, DIGEST_ALG_MD5, n[i]);
        clock_fake_advance(&f->clock, 10);
    }
    /* n[0] is issued but never used before the others are used */
    for (int i = 1; i < 5; i++) {
        struct client c = client(n[i], DIGEST_ALG_MD5);
        assert_outcome(check_client(f, &c, false), AUTH_OK, NULL);
        assert_int_equal(auth_nonce_count(f->auth), i < 3 ? (size_t)i : 3);
    }
    /* n[1] went first: at nc 2 it is stale, and so is a replay at nc 1 */
    struct client c = client(n[1], DIGEST_ALG_MD5);
    c.nc = 2;
    assert_outcome(check_client(f, &c, false), AUTH_STALE, "nonce forgotten");
    c.nc = 1;
    assert_outcome(check_client(f, &c, false), AUTH_STALE, "nonce forgotten");
    /* n[0], older than it, cannot be told from a forgotten one */
    c = client(n[0], DIGEST_ALG_MD5);
    assert_outcome(check_client(f, &c, false), AUTH_STALE, "nonce forgotten");
    /* the ones still held go on counting */
    for (int i = 2; i < 5; i++) {
        c = client(n[i], DIGEST_ALG_MD5);
        c.nc = 2;
        assert_outcome(check_client(f, &c, false), AUTH_OK, NULL);
        c.nc = 1;
        assert_outcome(check_client(f, &c, false), AUTH_FORBIDDEN, "nonce count replayed");
    }
    /* a fresh nonce is fine, and pushes n[2] out */
    char fresh[128];
    get_nonce(f->auth, DIGEST_ALG_MD5, fresh);
    c = client(fresh, DIGEST_ALG_MD5);
    assert_outcome(check_client(f, &c, false), AUTH_OK, NULL);
    assert_int_equal(auth_nonce_count(f->auth), 3);
    c = client(n[2], DIGEST_ALG_MD5);
    c.nc = 3;
    assert_outcome(check_client(f, &c, false), AUTH_STALE, "nonce forgotten");

    /* shrinking the bound evicts at once */
    cfg.max_nonces = 1;
    assert_int_equal(auth_set_config(f->auth, &cfg), 0);
    assert_int_equal(auth_nonce_count(f->auth), 1);
    c = client(fresh, DIGEST_ALG_MD5);
    c.nc = 2;
    assert_outcome(check_client(f, &c, false), AUTH_OK, NULL);
}

static void test_set_config(void **state)
{
    struct fx *f = *state;
    char md5[128], sha[128];

    get_nonce(f->auth, DIGEST_ALG_MD5, md5);
    get_nonce(f->auth, DIGEST_ALG_SHA256, sha);

    /* MD5 first now; nonces issued before stay valid */
    struct auth_config cfg = config(2, DIGEST_ALG_MD5, DIGEST_ALG_SHA256);
    assert_int_equal(auth_set_config(f->auth, &cfg), 0);
    struct strbuf b = STRBUF_INIT;
    assert_int_equal(auth_challenge(f->auth, false, false, &b), 0);
    const char *m = strstr(strbuf_cstr(&b), "algorithm=MD5");
    const char *s = strstr(strbuf_cstr(&b), "algorithm=SHA-256");
    assert_non_null(m);
    assert_non_null(s);
    assert_true(m < s);
    strbuf_free(&b);
    struct client c = client(md5, DIGEST_ALG_MD5);
    assert_outcome(check_client(f, &c, false), AUTH_OK, NULL);

    /* MD5 dropped: its nonces go with it */
    cfg = config(1, DIGEST_ALG_SHA256, DIGEST_ALG_SHA256);
    assert_int_equal(auth_set_config(f->auth, &cfg), 0);
    c.nc = 2;
    assert_outcome(check_client(f, &c, false), AUTH_FORBIDDEN, "algorithm not allowed");
    c = client(sha, DIGEST_ALG_SHA256);
    assert_outcome(check_client(f, &c, false), AUTH_OK, NULL);
    assert_int_equal(auth_challenge(f->auth, false, false, &b), 0);
    assert_null(strstr(strbuf_cstr(&b), "MD5"));
    strbuf_free(&b);

    /* refused configurations leave the previous one in place */
    struct auth_config bad[7];
    for (int i = 0; i < 7; i++)
        bad[i] = config(2, DIGEST_ALG_MD5, DIGEST_ALG_SHA256);
    bad[0].nalgorithms = 0;
    bad[1].nalgorithms = 3;
    bad[2].algorithms[1] = DIGEST_ALG_MD5; /* repeated */
    bad[3].algorithms[0] = (enum digest_alg)7;
    bad[4].realm = "exa\"mple";
    bad[5].realm = "";
    bad[6].realm = NULL;
    for (int i = 0; i < 7; i++)
        assert_int_equal(auth_set_config(f->auth, &bad[i]), -EINVAL);
    assert_int_equal(auth_set_config(f->auth, NULL), -EINVAL);
    assert_int_equal(auth_challenge(f->auth, false, false, &b), 0);
    assert_null(strstr(strbuf_cstr(&b), "MD5"));
    assert_non_null(strstr(strbuf_cstr(&b), "realm=\"" REALM "\""));
    strbuf_free(&b);

    /* a new realm: credentials for the old one are someone else's */
    cfg = config(1, DIGEST_ALG_SHA256, DIGEST_ALG_SHA256);
    cfg.realm = "new.test";
    assert_int_equal(auth_set_config(f->auth, &cfg), 0);
    c = client(sha, DIGEST_ALG_SHA256);
    c.nc = 2;
    assert_outcome(check_client(f, &c, false), AUTH_CHALLENGE, "no credentials");
    f->store.realm = "new.test";
    c.realm = "new.test";
    assert_outcome(check_client(f, &c, false), AUTH_OK, NULL);

    /* a shorter lifetime applies to nonces already issued */
    clock_fake_advance(&f->clock, 1001);
    cfg.nonce_lifetime_ms = 1000;
    assert_int_equal(auth_set_config(f->auth, &cfg), 0);
    c.nc = 3;
    assert_outcome(check_client(f, &c, false), AUTH_STALE, "nonce expired");
}

/* MD5 unavailable (as under FIPS): refused in configuration. */
static void test_unavailable_algorithm(void **state)
{
    struct fx *f = *state;
    assert_int_equal(digest_init(NULL, "provider=nonexistent"), -ENOTSUP);
    struct auth_config cfg = config(1, DIGEST_ALG_MD5, DIGEST_ALG_MD5);
    assert_int_equal(auth_set_config(f->auth, &cfg), -ENOTSUP);
    assert_null(auth_new(&f->clock.base, &cfg));
    assert_int_equal(digest_init(NULL, NULL), 0);
    assert_int_equal(auth_set_config(f->auth, &cfg), 0);

    /* digest re-initialised without MD5 after the configuration was set */
    char nonce[128];
    get_nonce(f->auth, DIGEST_ALG_MD5, nonce);
    struct client c = client(nonce, DIGEST_ALG_MD5);
    struct strbuf b = STRBUF_INIT;
    client_header(&c, &b);
    assert_int_equal(digest_init(NULL, "provider=nonexistent"), -ENOTSUP);
    struct outcome o = check_hdrs(f, strbuf_cstr(&b), false);
    assert_int_equal(digest_init(NULL, NULL), 0);
    assert_outcome(o, AUTH_FORBIDDEN, "algorithm not available");
    strbuf_free(&b);
    assert_int_equal(auth_nonce_count(f->auth), 0);
}

static void test_bad_arguments(void **state)
{
    struct fx *f = *state;
    char user[8] = "x";
    const char *why = NULL;
    char nonce[128];

    get_nonce(f->auth, DIGEST_ALG_MD5, nonce);
    struct client c = client(nonce, DIGEST_ALG_MD5);
    struct strbuf b = STRBUF_INIT;
    client_header(&c, &b);
    struct sip_msg *msg = request("REGISTER", RURI, strbuf_cstr(&b));
    strbuf_free(&b);

    assert_int_equal(
        auth_check(NULL, msg, false, store_lookup, &f->store, user, sizeof(user), &why),
        AUTH_FORBIDDEN);
    assert_string_equal(why, "internal error");
    assert_string_equal(user, "");
    assert_int_equal(
        auth_check(f->auth, NULL, false, store_lookup, &f->store, user, sizeof(user), &why),
        AUTH_FORBIDDEN);
    assert_int_equal(auth_check(f->auth, msg, false, NULL, &f->store, user, sizeof(user), &why),
                     AUTH_FORBIDDEN);
    assert_int_equal(auth_check(f->auth, msg, false, store_lookup, &f->store, NULL, 8, &why),
                     AUTH_FORBIDDEN);
    assert_int_equal(auth_check(f->auth, msg, false, store_lookup, &f->store, user, 0, &why),
                     AUTH_FORBIDDEN);
    /* a name that does not fit the caller's buffer */
    assert_int_equal(auth_check(f->auth, msg, false, store_lookup, &f->store, user, 5, &why),
                     AUTH_BAD_REQUEST);
    assert_string_equal(why, "bad username");
    /* why may be NULL; a buffer just large enough works */
    assert_int_equal(auth_check(f->auth, msg, false, store_lookup, &f->store, user, 6, NULL),
                     AUTH_OK);
    assert_string_equal(user, "alice");
    sip_msg_free(msg);

    /* a response is not a request */
    struct sip_parse_error err;
    const char *resp = "SIP/2.0 200 OK\r\n"
                       "Via: SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bK776asdhds\r\n"
                       "To: <sip:alice@example.test>;tag=a\r\n"
                       "From: <sip:alice@example.test>;tag=1928301774\r\n"
                       "Call-ID: a84b4c76e66710@192.0.2.1\r\n"
                       "CSeq: 1 REGISTER\r\n"
                       "Content-Length: 0\r\n\r\n";
    assert_int_equal(sip_msg_parse(resp, strlen(resp), &msg, &err), 0);
    assert_int_equal(
        auth_check(f->auth, msg, false, store_lookup, &f->store, user, sizeof(user), &why),
        AUTH_FORBIDDEN);
    assert_string_equal(why, "internal error");
    sip_msg_free(msg);

    struct auth_config cfg = config(1, DIGEST_ALG_MD5, DIGEST_ALG_MD5);
    assert_null(auth_new(NULL, &cfg));
    assert_null(auth_new(&f->clock.base, NULL));
    cfg.realm = "a\tb";
    assert_null(auth_new(&f->clock.base, &cfg));
    assert_int_equal(auth_challenge(NULL, false, false, &b), -EINVAL);
    assert_int_equal(auth_nonce_count(NULL), 0);
    auth_free(NULL);
}

/* A lot of nonces through a small table: the bound holds and the FIFO and
 * hash table stay consistent (ASan checks the frees). */
static void test_table_churn(void **state)
{
    struct fx *f = *state;
    struct auth_config cfg = config(1, DIGEST_ALG_MD5, DIGEST_ALG_MD5);
    cfg.max_nonces = 7;
    assert_int_equal(auth_set_config(f->auth, &cfg), 0);
    char held[7][128];

    for (int i = 0; i < 200; i++) {
        char nonce[128];
        get_nonce(f->auth, DIGEST_ALG_MD5, nonce);
        struct client c = client(nonce, DIGEST_ALG_MD5);
        assert_outcome(check_client(f, &c, false), AUTH_OK, NULL);
        assert_true(auth_nonce_count(f->auth) <= 7);
        strcpy(held[i % 7], nonce);
        clock_fake_advance(&f->clock, 1);
    }
    assert_int_equal(auth_nonce_count(f->auth), 7);
    /* the last seven are the ones held */
    for (int i = 0; i < 7; i++) {
        struct client c = client(held[i], DIGEST_ALG_MD5);
        c.nc = 2;
        assert_outcome(check_client(f, &c, false), AUTH_OK, NULL);
    }
    /* all of them expire together */
    clock_fake_advance(&f->clock, LIFETIME + 1);
    char nonce[128];
    get_nonce(f->auth, DIGEST_ALG_MD5, nonce);
    struct client c = client(nonce, DIGEST_ALG_MD5);
    assert_outcome(check_client(f, &c, false), AUTH_OK, NULL);
    assert_int_equal(auth_nonce_count(f->auth), 1);
}

/* security.fips restricted: MD5 refused in the configuration whatever the
 * provider offers, and an MD5 answer is refused with the FIPS reason. */
static void test_fips_restricted(void **state)
{
    struct fx *f = *state;
    char nonce[128];
    struct auth_config cfg = config(1, DIGEST_ALG_MD5, DIGEST_ALG_MD5);
    cfg.restricted = true;
    assert_int_equal(auth_set_config(f->auth, &cfg), -EPERM);
    assert_null(auth_new(&f->clock.base, &cfg));
    cfg = config(2, DIGEST_ALG_SHA256, DIGEST_ALG_MD5);
    cfg.restricted = true;
    assert_int_equal(auth_set_config(f->auth, &cfg), -EPERM);
    cfg = config(1, DIGEST_ALG_SHA256, DIGEST_ALG_SHA256);
    cfg.restricted = true;
    assert_int_equal(auth_set_config(f->auth, &cfg), 0);

    get_nonce(f->auth, DIGEST_ALG_SHA256, nonce);
    struct client c = client(nonce, DIGEST_ALG_MD5);
    assert_outcome(check_client(f, &c, false), AUTH_FORBIDDEN,
                   "algorithm not allowed: MD5 is not FIPS approved");
    c.alg_param = ""; /* absent means MD5 */
    assert_outcome(check_client(f, &c, false), AUTH_FORBIDDEN,
                   "algorithm not allowed: MD5 is not FIPS approved");
    assert_false(auth_why_is_wrong_password("algorithm not allowed: MD5 is not FIPS approved"));
    /* another unknown algorithm is not about FIPS */
    c = client(nonce, DIGEST_ALG_SHA256);
    c.alg_param = "SHA-512-256";
    struct strbuf b = STRBUF_INIT;
    client_header(&c, &b);
    assert_outcome(check_hdrs(f, strbuf_cstr(&b), false), AUTH_FORBIDDEN, "algorithm not allowed");
    strbuf_free(&b);
    assert_int_equal(f->store.calls, 0);
    c = client(nonce, DIGEST_ALG_SHA256);
    assert_outcome(check_client(f, &c, false), AUTH_OK, NULL);
    /* unrestricted again: the same MD5 answer gets the plain reason */
    cfg.restricted = false;
    assert_int_equal(auth_set_config(f->auth, &cfg), 0);
    c = client(nonce, DIGEST_ALG_MD5);
    assert_outcome(check_client(f, &c, false), AUTH_FORBIDDEN, "algorithm not allowed");
}

static struct config *load(const char *text)
{
    struct config *cfg = NULL;
    char err[512] = "";
    assert_int_equal(config_load_string("/tmp/parley.conf", text, &cfg, err, sizeof(err)), 0);
    return cfg;
}

/* auth.algorithms under FIPS: the default narrows, an explicit MD5 is
 * refused with the key, its value and the reason. */
static void test_config_narrow(void **state)
{
    (void)state;
    char err[512] = "";
    struct config *cfg = load("[server]\ndomain = example.test\n");
    assert_int_equal(auth_config_narrow(cfg, false, err, sizeof(err)), 0);
    assert_int_equal(cfg->auth.algorithms.n, 1);
    assert_string_equal(cfg->auth.algorithms.v[0], "MD5");
    assert_int_equal(auth_config_narrow(cfg, true, err, sizeof(err)), 0);
    assert_int_equal(cfg->auth.algorithms.n, 1);
    assert_string_equal(cfg->auth.algorithms.v[0], AUTH_FIPS_ALGORITHMS);
    assert_false(config_is_explicit(cfg, "auth.algorithms"));
    config_free(cfg);

    const char *refused[] = {"MD5", "SHA-256, MD5", "MD5, SHA-256"};
    for (size_t i = 0; i < 3; i++) {
        char text[128];
        snprintf(text, sizeof(text), "[server]\ndomain = example.test\n[auth]\nalgorithms = %s\n",
                 refused[i]);
        cfg = load(text);
        assert_true(config_is_explicit(cfg, "auth.algorithms"));
        assert_int_equal(auth_config_narrow(cfg, false, err, sizeof(err)), 0);
        assert_int_equal(auth_config_narrow(cfg, true, err, sizeof(err)), -EPERM);
        char want[64];
        snprintf(want, sizeof(want), "auth.algorithms = %s: MD5 is not a FIPS approved",
                 refused[i]);
        assert_non_null(strstr(err, want));
        assert_non_null(strstr(err, "set auth.algorithms = SHA-256"));
        config_free(cfg);
    }
    cfg = load("[server]\ndomain = example.test\n[auth]\nalgorithms = SHA-256\n");
    assert_int_equal(auth_config_narrow(cfg, true, err, sizeof(err)), 0);
    assert_string_equal(cfg->auth.algorithms.v[0], "SHA-256");
    config_free(cfg);
    assert_int_equal(auth_config_narrow(NULL, true, err, sizeof(err)), -EINVAL);
}

int main(void)
{
    if (config_install_keys(server_config_key_sets) != 0)
        return 1;
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_fixed_vector),
        T(test_challenge_format),
        T(test_ok_md5),
        T(test_ok_sha256),
        T(test_escapes),
        T(test_wrong_password_unknown_user),
        T(test_foreign_nonce),
        T(test_tampered_nonce),
        T(test_expired_nonce),
        T(test_nc),
        T(test_nonce_algorithm_binding),
        T(test_algorithm_not_allowed),
        T(test_uri_mismatch),
        T(test_missing_and_garbled),
        T(test_realms),
        T(test_proxy_selection),
        T(test_eviction),
        T(test_set_config),
        T(test_unavailable_algorithm),
        T(test_bad_arguments),
        T(test_table_churn),
        T(test_fips_restricted),
        T(test_config_narrow),
    };
#undef T
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
