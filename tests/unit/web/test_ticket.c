/*
 * web/ticket: issue and verify, every malformed or forged form refused
 * with its reason, key rotation and grace, the keys file, and the cache.
 * Time is a parameter everywhere: NOW below, no clock read.
 */
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "core/strview.h"
#include "crypto/encoding.h"
#include "web/ticket.h"

#define NOW    1700000000LL
#define LIFE   3600
#define DOMAIN "example.test"
#define GRACE  LIFE
#define UID    "0123456789abcdef0123456789abcdef"

struct fx {
    char dir[64];
    char path[128];
    struct ticket_keys *k;
};

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    char err[256];
    bool created = false;
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/parley-ticket-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->path, sizeof(fx->path), "%s/%s", fx->dir, TICKET_KEYS_FILE);
    assert_int_equal(ticket_keys_load(NULL, fx->dir, NOW, &fx->k, &created, err, sizeof(err)), 0);
    assert_true(created);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    ticket_keys_free(fx->k);
    nftw(fx->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

static enum ticket_result verify_at(struct fx *fx, const char *tok, int64_t now)
{
    char user[65];
    int64_t exp = 0;
    return ticket_verify(fx->k, tok, strlen(tok), DOMAIN, now, GRACE, user, NULL, NULL, &exp);
}

static char *b64u_str(const char *s)
{
    char *out = malloc(BASE64_URL_LEN(strlen(s)) + 1);
    assert_int_equal(
        base64_encode(BASE64_URL, s, strlen(s), out, BASE64_URL_LEN(strlen(s)) + 1, NULL), 0);
    return out;
}

/* The current key, read from the file with OpenSSL (not the code under
 * test): the last PEM block of a key whose RETIRED is 0. */
static EVP_PKEY *file_key(struct fx *fx)
{
    FILE *f = fopen(fx->path, "r");
    char line[256], pem[4096] = "";
    bool current = false, in = false;
    long long a, r;
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "key %lld %lld", &a, &r) == 2) {
            current = r == 0;
            continue;
        }
        if (current && strstr(line, "BEGIN"))
            in = true;
        if (in)
            strcat(pem, line);
        if (in && strstr(line, "END"))
            in = current = false;
    }
    fclose(f);
    BIO *b = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    assert_non_null(k);
    return k;
}

/* header.payload signed with pkey (ES256, r||s), built here by hand. */
static char *forge(EVP_PKEY *pkey, const char *hdr_json, const char *claims_json)
{
    char *h = b64u_str(hdr_json), *p = b64u_str(claims_json);
    size_t n = strlen(h) + strlen(p) + 2 + 90;
    char *tok = malloc(n);
    snprintf(tok, n, "%s.%s", h, p);
    unsigned char der[80], rs[64];
    size_t derlen = sizeof(der);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey), 1);
    assert_int_equal(EVP_DigestSign(md, der, &derlen, (unsigned char *)tok, strlen(tok)), 1);
    EVP_MD_CTX_free(md);
    const unsigned char *q = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &q, (long)derlen);
    const BIGNUM *r, *s;
    ECDSA_SIG_get0(es, &r, &s);
    BN_bn2binpad(r, rs, 32);
    BN_bn2binpad(s, rs + 32, 32);
    ECDSA_SIG_free(es);
    size_t used = strlen(tok);
    tok[used++] = '.';
    assert_int_equal(base64_encode(BASE64_URL, rs, 64, tok + used, n - used, NULL), 0);
    free(h);
    free(p);
    return tok;
}

static char *hdr_for(struct fx *fx, const char *alg)
{
    static char h[128];
    snprintf(h, sizeof(h), "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", alg,
             ticket_keys_current_id(fx->k));
    return h;
}

static const char *claims(const char *sub, const char *dom, long long iat, long long exp)
{
    static char c[512];
    snprintf(c, sizeof(c),
             "{\"iss\":\"parley\",\"sub\":\"%s\",\"uid\":\"" UID "\",\"dom\":\"%s\",\"iat\":%lld,"
             "\"exp\":%lld,"
             "\"jti\":\"abc\"}",
             sub, dom, iat, exp);
    return c;
}

static void test_issue_verify(void **state)
{
    struct fx *fx = *state;
    char tok[TICKET_MAX_LEN], tok2[TICKET_MAX_LEN], user[65];
    int64_t exp = 0;

    assert_int_equal(strlen(ticket_keys_current_id(fx->k)), 16);
    assert_int_equal(ticket_issue(fx->k, "alice", UID, DOMAIN, NOW, LIFE, tok, sizeof(tok)), 0);
    assert_int_equal(
        ticket_verify(fx->k, tok, strlen(tok), DOMAIN, NOW, GRACE, user, NULL, NULL, &exp),
        TICKET_OK);
    assert_string_equal(user, "alice");
    assert_int_equal(exp, NOW + LIFE);

    /* the header and claims as documented */
    const char *d1 = strchr(tok, '.');
    unsigned char raw[1024];
    size_t n = 0;
    assert_int_equal(
        base64_decode(BASE64_URL, strview_make(tok, (size_t)(d1 - tok)), raw, sizeof(raw), &n), 0);
    json_t *h = json_loadb((char *)raw, n, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(h, "alg")), "ES256");
    assert_string_equal(json_string_value(json_object_get(h, "typ")), "JWT");
    assert_string_equal(json_string_value(json_object_get(h, "kid")),
                        ticket_keys_current_id(fx->k));
    json_decref(h);
    const char *d2 = strchr(d1 + 1, '.');
    assert_int_equal(base64_decode(BASE64_URL, strview_make(d1 + 1, (size_t)(d2 - d1 - 1)), raw,
                                   sizeof(raw), &n),
                     0);
    json_t *c = json_loadb((char *)raw, n, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(c, "iss")), "parley");
    assert_string_equal(json_string_value(json_object_get(c, "sub")), "alice");
    assert_string_equal(json_string_value(json_object_get(c, "dom")), DOMAIN);
    assert_int_equal(json_integer_value(json_object_get(c, "iat")), NOW);
    assert_int_equal(json_integer_value(json_object_get(c, "exp")), NOW + LIFE);
    assert_true(strlen(json_string_value(json_object_get(c, "jti"))) >= 16);
    json_decref(c);

    /* two tickets differ (jti, and ECDSA's k) */
    assert_int_equal(ticket_issue(fx->k, "alice", UID, DOMAIN, NOW, LIFE, tok2, sizeof(tok2)), 0);
    assert_string_not_equal(tok, tok2);

    /* what issue refuses */
    assert_int_equal(ticket_issue(fx->k, "Alice!", UID, DOMAIN, NOW, LIFE, tok2, sizeof(tok2)),
                     -EINVAL);
    assert_int_equal(ticket_issue(fx->k, "alice", UID, "", NOW, LIFE, tok2, sizeof(tok2)), -EINVAL);
    assert_int_equal(ticket_issue(fx->k, "alice", UID, DOMAIN, NOW, 0, tok2, sizeof(tok2)),
                     -EINVAL);
    assert_int_equal(ticket_issue(fx->k, "alice", UID, DOMAIN, NOW, LIFE, tok2, 40), -ENOSPC);
    assert_string_equal(tok2, "");
    assert_string_equal(ticket_result_name(TICKET_EXPIRED), "expired");
    assert_string_equal(ticket_result_name(TICKET_MALFORMED), "malformed");
}

static void test_malformed(void **state)
{
    struct fx *fx = *state;
    char tok[TICKET_MAX_LEN], bad[TICKET_MAX_LEN + 16];

    assert_int_equal(ticket_issue(fx->k, "bob", UID, DOMAIN, NOW, LIFE, tok, sizeof(tok)), 0);
    char *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');

    /* missing parts */
    assert_int_equal(verify_at(fx, "", NOW), TICKET_MALFORMED);
    snprintf(bad, sizeof(bad), "%.*s", (int)(d2 - tok), tok);
    assert_int_equal(verify_at(fx, bad, NOW), TICKET_MALFORMED);
    snprintf(bad, sizeof(bad), "%s.", tok);
    assert_int_equal(verify_at(fx, bad, NOW), TICKET_MALFORMED);
    snprintf(bad, sizeof(bad), "%.*s.", (int)(d2 - tok), tok); /* empty signature */
    assert_int_equal(verify_at(fx, bad, NOW), TICKET_MALFORMED);
    snprintf(bad, sizeof(bad), ".%s", d1 + 1); /* empty header */
    assert_int_equal(verify_at(fx, bad, NOW), TICKET_MALFORMED);
    snprintf(bad, sizeof(bad), "%s.%s", tok, d2 + 1); /* four parts */
    assert_int_equal(verify_at(fx, bad, NOW), TICKET_MALFORMED);

    /* bad base64url: padding, the standard alphabet, a space */
    snprintf(bad, sizeof(bad), "%s=", tok);
    assert_int_equal(verify_at(fx, bad, NOW), TICKET_MALFORMED);
    snprintf(bad, sizeof(bad), "%s", tok);
    bad[3] = '+';
    assert_int_equal(verify_at(fx, bad, NOW), TICKET_MALFORMED);
    snprintf(bad, sizeof(bad), "%s", tok);
    bad[(d1 - tok) + 4] = ' ';
    assert_int_equal(verify_at(fx, bad, NOW), TICKET_MALFORMED);

    /* too long */
    memset(bad, 'A', TICKET_MAX_LEN + 1);
    bad[10] = '.';
    bad[20] = '.';
    bad[TICKET_MAX_LEN + 1] = '\0';
    assert_int_equal(verify_at(fx, bad, NOW), TICKET_MALFORMED);

    /* a NUL inside */
    char user[65];
    assert_int_equal(
        ticket_verify(fx->k, tok, strlen(tok) + 1, DOMAIN, NOW, GRACE, user, NULL, NULL, NULL),
        TICKET_MALFORMED);
    assert_string_equal(user, "");
}

static void test_alg_none_and_hs256(void **state)
{
    struct fx *fx = *state;
    char tok[TICKET_MAX_LEN], bad[TICKET_MAX_LEN];

    assert_int_equal(ticket_issue(fx->k, "carol", UID, DOMAIN, NOW, LIFE, tok, sizeof(tok)), 0);
    const char *d1 = strchr(tok, '.');

    /* alg none, with no signature and with the real one */
    char *h = b64u_str(hdr_for(fx, "none"));
    snprintf(bad, sizeof(bad), "%s%.*s.", h, (int)(strchr(d1 + 1, '.') - d1), d1);
    assert_int_equal(verify_at(fx, bad, NOW), TICKET_MALFORMED);
    snprintf(bad, sizeof(bad), "%s%s", h, d1);
    assert_int_equal(verify_at(fx, bad, NOW), TICKET_MALFORMED);
    free(h);
    /* "es256", "ES384" */
    h = b64u_str(hdr_for(fx, "es256"));
    snprintf(bad, sizeof(bad), "%s%s", h, d1);
    assert_int_equal(verify_at(fx, bad, NOW), TICKET_MALFORMED);
    free(h);

    /* HS256 keyed with the public key (the classic key confusion) */
    EVP_PKEY *pkey = file_key(fx);
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(b, pkey);
    char *pub = NULL;
    long publen = BIO_get_mem_data(b, &pub);
    h = b64u_str(hdr_for(fx, "HS256"));
    char *p = b64u_str(claims("carol", DOMAIN, NOW, NOW + LIFE));
    snprintf(bad, sizeof(bad), "%s.%s", h, p);
    unsigned char mac[32];
    size_t maclen = 0;
    assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA2-256", NULL, pub, (size_t)publen,
                              (unsigned char *)bad, strlen(bad), mac, sizeof(mac), &maclen));
    size_t used = strlen(bad);
    bad[used++] = '.';
    assert_int_equal(base64_encode(BASE64_URL, mac, maclen, bad + used, sizeof(bad) - used, NULL),
                     0);
    assert_int_equal(verify_at(fx, bad, NOW), TICKET_MALFORMED);
    free(h);
    free(p);
    BIO_free(b);

    /* validly signed, but the header has a member too many or twice */
    char *t = forge(pkey, "{\"alg\":\"ES256\",\"kid\":\"x\",\"jku\":\"https://evil\"}",
                    claims("carol", DOMAIN, NOW, NOW + LIFE));
    assert_int_equal(verify_at(fx, t, NOW), TICKET_MALFORMED);
    free(t);
    char dup[160];
    snprintf(dup, sizeof(dup), "{\"alg\":\"ES256\",\"alg\":\"none\",\"kid\":\"%s\"}",
             ticket_keys_current_id(fx->k));
    t = forge(pkey, dup, claims("carol", DOMAIN, NOW, NOW + LIFE));
    assert_int_equal(verify_at(fx, t, NOW), TICKET_MALFORMED);
    free(t);
    /* forged with the real key: accepted (the helper is right) ... */
    t = forge(pkey, hdr_for(fx, "ES256"), claims("carol", DOMAIN, NOW, NOW + LIFE));
    assert_int_equal(verify_at(fx, t, NOW), TICKET_OK);
    free(t);
    /* ... but signed claims must still be Parley's */
    t = forge(pkey, hdr_for(fx, "ES256"), claims("Carol Smith", DOMAIN, NOW, NOW + LIFE));
    assert_int_equal(verify_at(fx, t, NOW), TICKET_MALFORMED);
    free(t);
    t = forge(pkey, hdr_for(fx, "ES256"),
              "{\"iss\":\"other\",\"sub\":\"carol\",\"uid\":\"" UID "\",\"dom\":\"" DOMAIN
              "\",\"iat\":1700000000,\"exp\":1700003600,\"jti\":\"a\"}");
    assert_int_equal(verify_at(fx, t, NOW), TICKET_MALFORMED);
    free(t);
    t = forge(pkey, hdr_for(fx, "ES256"),
              "{\"iss\":\"parley\",\"sub\":\"carol\",\"uid\":\"" UID "\",\"dom\":\"" DOMAIN
              "\",\"iat\":1700000000,\"exp\":\"1700003600\",\"jti\":\"a\"}");
    assert_int_equal(verify_at(fx, t, NOW), TICKET_MALFORMED);
    free(t);
    t = forge(pkey, hdr_for(fx, "ES256"), "[1,2,3]");
    assert_int_equal(verify_at(fx, t, NOW), TICKET_MALFORMED);
    free(t);
    EVP_PKEY_free(pkey);
}

static void test_tampered(void **state)
{
    struct fx *fx = *state;
    char tok[TICKET_MAX_LEN], bad[TICKET_MAX_LEN];

    assert_int_equal(ticket_issue(fx->k, "dave", UID, DOMAIN, NOW, LIFE, tok, sizeof(tok)), 0);
    const char *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');

    /* sub changed, everything else kept */
    char *p = b64u_str(claims("root", DOMAIN, NOW, NOW + LIFE));
    snprintf(bad, sizeof(bad), "%.*s.%s%s", (int)(d1 - tok), tok, p, d2);
    assert_int_equal(verify_at(fx, bad, NOW), TICKET_BAD_SIGNATURE);
    free(p);
    /* exp extended */
    p = b64u_str(claims("dave", DOMAIN, NOW, NOW + 100 * LIFE));
    snprintf(bad, sizeof(bad), "%.*s.%s%s", (int)(d1 - tok), tok, p, d2);
    assert_int_equal(verify_at(fx, bad, NOW), TICKET_BAD_SIGNATURE);
    free(p);
    /* one signature character changed (to another valid one) */
    snprintf(bad, sizeof(bad), "%s", tok);
    size_t at = (size_t)(d2 - tok) + 10;
    bad[at] = bad[at] == 'A' ? 'B' : 'A';
    assert_int_equal(verify_at(fx, bad, NOW), TICKET_BAD_SIGNATURE);
    /* a signature cut short (63 bytes) */
    snprintf(bad, sizeof(bad), "%.*s", (int)strlen(tok) - 2, tok);
    enum ticket_result r = verify_at(fx, bad, NOW);
    assert_true(r == TICKET_BAD_SIGNATURE || r == TICKET_MALFORMED);
    assert_int_equal(verify_at(fx, tok, NOW), TICKET_OK);
}

static void test_times_and_domain(void **state)
{
    struct fx *fx = *state;
    char tok[TICKET_MAX_LEN], user[65];

    assert_int_equal(ticket_issue(fx->k, "erin", UID, DOMAIN, NOW, LIFE, tok, sizeof(tok)), 0);
    assert_int_equal(verify_at(fx, tok, NOW + LIFE - 1), TICKET_OK);
    assert_int_equal(verify_at(fx, tok, NOW + LIFE), TICKET_EXPIRED);
    assert_int_equal(verify_at(fx, tok, NOW + 10 * LIFE), TICKET_EXPIRED);
    /* iat may be 60 s ahead of the verifier's clock, not more */
    assert_int_equal(verify_at(fx, tok, NOW - 60), TICKET_OK);
    assert_int_equal(verify_at(fx, tok, NOW - 61), TICKET_NOT_YET_VALID);
    assert_int_equal(
        ticket_verify(fx->k, tok, strlen(tok), "other.test", NOW, GRACE, user, NULL, NULL, NULL),
        TICKET_WRONG_DOMAIN);
    assert_string_equal(user, "");
    assert_int_equal(
        ticket_verify(fx->k, tok, strlen(tok), "EXAMPLE.test", NOW, GRACE, user, NULL, NULL, NULL),
        TICKET_WRONG_DOMAIN);
}

static void test_unknown_key_and_rotation(void **state)
{
    struct fx *fx = *state;
    char tok[TICKET_MAX_LEN], fresh[TICKET_MAX_LEN], err[256], old_id[17];
    struct ticket_keys *other = NULL, *k2 = NULL;
    char odir[] = "/tmp/parley-ticket-other-XXXXXX";

    /* signed by a key this server never had */
    assert_non_null(mkdtemp(odir));
    assert_int_equal(ticket_keys_load(NULL, odir, NOW, &other, NULL, err, sizeof(err)), 0);
    assert_int_equal(ticket_issue(other, "frank", UID, DOMAIN, NOW, LIFE, tok, sizeof(tok)), 0);
    assert_int_equal(verify_at(fx, tok, NOW), TICKET_UNKNOWN_KEY);
    ticket_keys_free(other);
    nftw(odir, rm_one, 8, FTW_DEPTH | FTW_PHYS);

    /* a ticket from the first key; then a rotation 100 s later */
    assert_int_equal(ticket_issue(fx->k, "frank", UID, DOMAIN, NOW, 3 * LIFE, tok, sizeof(tok)), 0);
    snprintf(old_id, sizeof(old_id), "%s", ticket_keys_current_id(fx->k));
    assert_false(ticket_keys_changed(fx->k, fx->dir));
    assert_int_equal(ticket_keys_rotate(NULL, fx->dir, NOW + 100, GRACE, err, sizeof(err)), 0);
    assert_true(ticket_keys_changed(fx->k, fx->dir));
    assert_int_equal(ticket_keys_load(NULL, fx->dir, NOW + 100, &k2, NULL, err, sizeof(err)), 0);
    assert_false(ticket_keys_changed(k2, fx->dir));
    assert_int_equal(ticket_keys_count(k2), 2);
    assert_string_not_equal(ticket_keys_current_id(k2), old_id);
    ticket_keys_free(fx->k);
    fx->k = k2;

    /* the retired key verifies within its grace, not after */
    assert_int_equal(verify_at(fx, tok, NOW + 100), TICKET_OK);
    assert_int_equal(verify_at(fx, tok, NOW + 100 + GRACE), TICKET_OK);
    assert_int_equal(verify_at(fx, tok, NOW + 100 + GRACE + 1), TICKET_UNKNOWN_KEY);
    /* the new key issues */
    assert_int_equal(
        ticket_issue(fx->k, "frank", UID, DOMAIN, NOW + 100, LIFE, fresh, sizeof(fresh)), 0);
    assert_int_equal(verify_at(fx, fresh, NOW + 200), TICKET_OK);

    /* a rotation past the grace drops the first key from the file */
    assert_int_equal(
        ticket_keys_rotate(NULL, fx->dir, NOW + 100 + GRACE + 1, GRACE, err, sizeof(err)), 0);
    assert_int_equal(
        ticket_keys_load(NULL, fx->dir, NOW + 100 + GRACE + 1, &k2, NULL, err, sizeof(err)), 0);
    assert_int_equal(ticket_keys_count(k2), 2);
    ticket_keys_free(fx->k);
    fx->k = k2;
    assert_int_equal(verify_at(fx, tok, NOW + 200), TICKET_UNKNOWN_KEY); /* gone */
    assert_int_equal(verify_at(fx, fresh, NOW + 200), TICKET_OK);        /* retired, in grace */
}

static void test_keys_file(void **state)
{
    struct fx *fx = *state;
    char err[256];
    struct ticket_keys *k = NULL;
    bool created = true;
    struct stat st;

    assert_int_equal(stat(fx->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* loaded again: the same key, not a new one */
    assert_int_equal(ticket_keys_load(NULL, fx->dir, NOW + 5, &k, &created, err, sizeof(err)), 0);
    assert_false(created);
    assert_string_equal(ticket_keys_current_id(k), ticket_keys_current_id(fx->k));
    ticket_keys_free(k);
    k = NULL;

    /* readable by others: refused, and the file counts as changed */
    assert_int_equal(chmod(fx->path, 0644), 0);
    assert_true(ticket_keys_changed(fx->k, fx->dir));
    assert_int_equal(ticket_keys_load(NULL, fx->dir, NOW, &k, NULL, err, sizeof(err)), -EPERM);
    assert_non_null(strstr(err, "chmod 600"));
    assert_int_equal(chmod(fx->path, 0600), 0);

    /* damaged: a key line, a PEM, no current key */
    FILE *f = fopen(fx->path, "a");
    fputs("key 12 nope\n", f);
    fclose(f);
    assert_int_equal(ticket_keys_load(NULL, fx->dir, NOW, &k, NULL, err, sizeof(err)), -EINVAL);
    f = fopen(fx->path, "w");
    fputs("key 1 0\n-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", f);
    fclose(f);
    assert_int_equal(ticket_keys_load(NULL, fx->dir, NOW, &k, NULL, err, sizeof(err)), -EINVAL);
    f = fopen(fx->path, "w");
    fputs("# nothing\n", f);
    fclose(f);
    assert_int_equal(ticket_keys_load(NULL, fx->dir, NOW, &k, NULL, err, sizeof(err)), -EINVAL);
    assert_null(k);
    /* no temporary file left over */
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "ls %s | grep -q tmp", fx->dir);
    assert_int_not_equal(system(cmd), 0);
}

static void test_cache(void **state)
{
    struct fx *fx = *state;
    char t[4][TICKET_MAX_LEN], user[65];
    struct ticket_cache *c = ticket_cache_new(3);

    for (int i = 0; i < 4; i++)
        assert_int_equal(
            ticket_issue(fx->k, "gina", UID, DOMAIN, NOW, LIFE + i, t[i], sizeof(t[i])), 0);
    assert_false(ticket_cache_lookup(c, t[0], strlen(t[0]), NOW, user));
    assert_string_equal(user, "");
    ticket_cache_insert(c, t[0], strlen(t[0]), "gina", NOW + LIFE);
    assert_true(ticket_cache_lookup(c, t[0], strlen(t[0]), NOW, user));
    assert_string_equal(user, "gina");
    /* another token, or the same one cut short, misses */
    assert_false(ticket_cache_lookup(c, t[1], strlen(t[1]), NOW, user));
    assert_false(ticket_cache_lookup(c, t[0], strlen(t[0]) - 1, NOW, user));
    /* dropped at its exp */
    assert_true(ticket_cache_lookup(c, t[0], strlen(t[0]), NOW + LIFE - 1, user));
    assert_false(ticket_cache_lookup(c, t[0], strlen(t[0]), NOW + LIFE, user));
    assert_int_equal(ticket_cache_count(c), 0);

    /* bounded: the oldest goes */
    for (int i = 0; i < 4; i++)
        ticket_cache_insert(c, t[i], strlen(t[i]), "gina", NOW + LIFE);
    assert_int_equal(ticket_cache_count(c), 3);
    assert_false(ticket_cache_lookup(c, t[0], strlen(t[0]), NOW, user));
    for (int i = 1; i < 4; i++)
        assert_true(ticket_cache_lookup(c, t[i], strlen(t[i]), NOW, user));
    /* inserting again does not duplicate */
    ticket_cache_insert(c, t[3], strlen(t[3]), "gina", NOW + LIFE);
    assert_int_equal(ticket_cache_count(c), 3);
    /* an invalid user is not remembered */
    ticket_cache_insert(c, t[0], strlen(t[0]), "Not A User", NOW + LIFE);
    assert_false(ticket_cache_lookup(c, t[0], strlen(t[0]), NOW, user));
    ticket_cache_clear(c);
    assert_int_equal(ticket_cache_count(c), 0);
    assert_false(ticket_cache_lookup(c, t[1], strlen(t[1]), NOW, user));
    ticket_cache_free(c);
    assert_null(ticket_cache_new(0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_issue_verify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alg_none_and_hs256, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_times_and_domain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_key_and_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
