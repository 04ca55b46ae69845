/*
 * tls/context under FIPS narrowing: defaults narrow by themselves, values
 * set explicitly are kept when approved and refused (naming the key and
 * the item) when not, the server's own key is checked, and handshakes
 * with clients that offer only forbidden groups or suites fail.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/ssl.h>

#include "core/config.h"
#include "core/strbuf.h"
#include "crypto/fips.h"
#include "crypto/pki.h"
#include "server/config_keys.h"
#include "tls/context.h"

#include "../crypto/crypto_test_util.h"

struct fixture {
    char *root;
    struct fips_ctx *approved, *off;
};

static struct fixture *fx;

/* A state directory with the development PKI (key of type) and a
 * parley.conf made of extra lines under [tls]. */
static char *make_root(enum pki_key_type type)
{
    char err[512] = "";
    char *root = tu_tmpdir();
    char *pki = tu_path(root, "pki");
    if (pki_create(pki, "example.test", NULL, type, err, sizeof(err)) != 0)
        fail_msg("pki_create: %s", err);
    free(pki);
    return root;
}

static int setup(void **state)
{
    (void)state;
    char err[512] = "";
    fx = calloc(1, sizeof(*fx));
    if (config_install_keys(server_config_key_sets) != 0 || tls_init() != 0)
        return -1;
    fx->root = make_root(PKI_KEY_ECDSA_P256);
    if (fips_open(FIPS_MODE_APPROVED, &fx->approved, err, sizeof(err)) != 0 ||
        fips_open(FIPS_MODE_OFF, &fx->off, err, sizeof(err)) != 0) {
        fprintf(stderr, "fips_open: %s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tu_rmtree(fx->root);
    free(fx->root);
    fips_close(fx->approved);
    fips_close(fx->off);
    free(fx);
    return 0;
}

static struct config *load(const char *root, const char *tls_lines)
{
    char path[512], text[2048], err[512] = "";
    struct config *cfg = NULL;
    snprintf(path, sizeof(path), "%s/parley.conf", root);
    snprintf(text, sizeof(text), "[server]\ndomain = example.test\n[tls]\n%s", tls_lines);
    if (config_load_string(path, text, &cfg, err, sizeof(err)) != 0)
        fail_msg("config: %s", err);
    return cfg;
}

/* Builds a context; returns its rc, err filled, *out set on success. */
static int build(const char *tls_lines, const struct fips_ctx *fc, SSL_CTX **out, char *err,
                 size_t cap)
{
    struct config *cfg = load(fx->root, tls_lines);
    *out = NULL;
    err[0] = '\0';
    int rc = tls_context_new(cfg, fc, out, err, cap);
    config_free(cfg);
    return rc;
}

static void facts_of(SSL_CTX *ctx, const char *tls_lines, struct tls_context_facts *f)
{
    struct config *cfg = load(fx->root, tls_lines);
    tls_context_facts(ctx, cfg, f);
    config_free(cfg);
}

/* ---- handshakes in memory ---- */

/* A client with only these groups / suites (NULL: OpenSSL's defaults)
 * against ctx. Returns whether the handshake completed; *group gets the
 * negotiated group's name and *suite the suite's. */
static bool handshake(SSL_CTX *server_ctx, int version, const char *groups, const char *suites13,
                      const char *ciphers12, char *group, char *suite)
{
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(cctx);
    if (version) {
        SSL_CTX_set_min_proto_version(cctx, version);
        SSL_CTX_set_max_proto_version(cctx, version);
    }
    if (groups)
        assert_int_equal(SSL_CTX_set1_groups_list(cctx, groups), 1);
    if (suites13)
        assert_int_equal(SSL_CTX_set_ciphersuites(cctx, suites13), 1);
    if (ciphers12)
        assert_int_equal(SSL_CTX_set_cipher_list(cctx, ciphers12), 1);
    SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
    SSL *c = SSL_new(cctx), *s = SSL_new(server_ctx);
    tls_session_client_certs(s, TLS_CLIENT_CERTS_NONE);
    BIO *cb = NULL, *sb = NULL;
    assert_int_equal(BIO_new_bio_pair(&cb, 0, &sb, 0), 1);
    SSL_set_bio(c, cb, cb);
    SSL_set_bio(s, sb, sb);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    bool done_c = false, done_s = false, failed = false;
    for (int i = 0; i < 20 && !(done_c && done_s) && !failed; i++) {
        if (!done_c) {
            int r = SSL_do_handshake(c);
            done_c = r == 1;
            failed = r <= 0 && SSL_get_error(c, r) != SSL_ERROR_WANT_READ;
        }
        if (!done_s && !failed) {
            int r = SSL_do_handshake(s);
            done_s = r == 1;
            failed = r <= 0 && SSL_get_error(s, r) != SSL_ERROR_WANT_READ;
        }
    }
    bool ok = done_c && done_s && !failed;
    if (ok) {
        int nid = SSL_get_negotiated_group(c);
        snprintf(group, 64, "%s", nid ? OBJ_nid2sn(nid) : "");
        snprintf(suite, 64, "%s", SSL_CIPHER_get_name(SSL_get_current_cipher(c)));
    }
    ERR_clear_error();
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(cctx);
    return ok;
}

/* ---- tests ---- */

/* Without restriction (NULL or mode off) the configured defaults stand. */
static void test_unrestricted_unchanged(void **state)
{
    (void)state;
    const struct fips_ctx *modes[] = {NULL, fx->off};
    for (size_t i = 0; i < 2; i++) {
        SSL_CTX *ctx;
        char err[512];
        assert_int_equal(build("", modes[i], &ctx, err, sizeof(err)), 0);
        struct tls_context_facts f;
        facts_of(ctx, "", &f);
        assert_string_equal(f.groups, "X25519:P-256:P-384");
        assert_non_null(strstr(f.suites, "TLS_CHACHA20_POLY1305_SHA256"));
        assert_non_null(strstr(f.suites, "ECDHE-ECDSA-CHACHA20-POLY1305"));
        assert_string_equal(f.sigalgs, "");
        assert_false(f.fips_restricted);
        char group[64], suite[64];
        assert_true(handshake(ctx, TLS1_3_VERSION, "X25519", NULL, NULL, group, suite));
        assert_string_equal(group, "X25519");
        tls_context_facts_free(&f);
        SSL_CTX_free(ctx);
    }
    /* what approved-only refuses is accepted here */
    SSL_CTX *ctx;
    char err[512];
    assert_int_equal(build("groups = X25519\nciphersuites = TLS_CHACHA20_POLY1305_SHA256\n", NULL,
                           &ctx, err, sizeof(err)),
                     0);
    SSL_CTX_free(ctx);
}

/* Defaults narrow by themselves to the approved subset. */
static void test_defaults_narrow(void **state)
{
    (void)state;
    SSL_CTX *ctx;
    char err[512];
    assert_int_equal(build("", fx->approved, &ctx, err, sizeof(err)), 0);
    struct tls_context_facts f;
    facts_of(ctx, "", &f);
    assert_string_equal(f.groups, "P-256:P-384");
    assert_true(f.fips_restricted);
    assert_string_equal(f.suites, "TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, "
                                  "ECDHE-ECDSA-AES128-GCM-SHA256, ECDHE-ECDSA-AES256-GCM-SHA384");
    assert_non_null(strstr(f.sigalgs, "ecdsa_secp256r1_sha256"));
    assert_null(strstr(f.sigalgs, "ed25519"));
    assert_true(SSL_CTX_get_security_level(ctx) >= 2);
    tls_context_facts_free(&f);

    char group[64], suite[64];
    /* a default client gets P-256 (X25519 is not offered back) */
    assert_true(handshake(ctx, 0, NULL, NULL, NULL, group, suite));
    assert_string_equal(group, "prime256v1");
    assert_true(strstr(suite, "GCM") != NULL);
    /* negative: X25519 only, ChaCha20 only (1.3 and 1.2), TLS 1.1 */
    assert_false(handshake(ctx, 0, "X25519", NULL, NULL, group, suite));
    assert_false(handshake(ctx, 0, "X448:ffdhe2048", NULL, NULL, group, suite));
    assert_false(
        handshake(ctx, TLS1_3_VERSION, NULL, "TLS_CHACHA20_POLY1305_SHA256", NULL, group, suite));
    assert_false(
        handshake(ctx, TLS1_2_VERSION, NULL, NULL, "ECDHE-ECDSA-CHACHA20-POLY1305", group, suite));
    assert_false(
        handshake(ctx, TLS1_2_VERSION, NULL, NULL, "ECDHE-ECDSA-AES128-SHA256", group, suite));
    assert_true(
        handshake(ctx, TLS1_2_VERSION, NULL, NULL, "ECDHE-ECDSA-AES256-GCM-SHA384", group, suite));
    assert_string_equal(suite, "ECDHE-ECDSA-AES256-GCM-SHA384");
    SSL_CTX_free(ctx);
}

/* An explicit forbidden value is refused, naming the key, the item and
 * the mode. */
static void test_explicit_forbidden_refused(void **state)
{
    (void)state;
    static const struct {
        const char *lines, *want;
    } cases[] = {
        {"groups = X25519:P-256\n",
         "tls.groups: X25519 is not FIPS-approved (security.fips = approved-only)"},
        {"groups = P-256:ffdhe2048\n", "tls.groups: ffdhe2048 is not FIPS-approved"},
        {"groups = P-521\n", "tls.groups: P-521 is not FIPS-approved"},
        {"ciphersuites = TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256\n",
         "tls.ciphersuites: TLS_CHACHA20_POLY1305_SHA256 is not FIPS-approved"},
        {"ciphers = ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305\n",
         "tls.ciphers: ECDHE-ECDSA-CHACHA20-POLY1305 is not FIPS-approved"},
        /* an alias is judged by what it brings in */
        {"ciphers = HIGH:!aNULL\n", "tls.ciphers: "},
        {"ciphers = ECDHE-ECDSA-AES128-SHA256\n",
         "tls.ciphers: ECDHE-ECDSA-AES128-SHA256 is not FIPS-approved"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        SSL_CTX *ctx;
        char err[512];
        int rc = build(cases[i].lines, fx->approved, &ctx, err, sizeof(err));
        if (rc != -EINVAL || !strstr(err, cases[i].want))
            fail_msg("case %zu: rc %d, err \"%s\", wanted \"%s\"", i, rc, err, cases[i].want);
        assert_null(ctx);
    }
}

/* Explicit approved values are kept as given (not widened to the subset). */
static void test_explicit_allowed_kept(void **state)
{
    (void)state;
    const char *lines = "groups = P-384\nciphersuites = TLS_AES_256_GCM_SHA384\n"
                        "ciphers = ECDHE-ECDSA-AES256-GCM-SHA384:@SECLEVEL=0\n";
    SSL_CTX *ctx;
    char err[512];
    assert_int_equal(build(lines, fx->approved, &ctx, err, sizeof(err)), 0);
    struct tls_context_facts f;
    facts_of(ctx, lines, &f);
    assert_string_equal(f.groups, "P-384");
    assert_string_equal(f.suites, "TLS_AES_256_GCM_SHA384, ECDHE-ECDSA-AES256-GCM-SHA384");
    /* the cipher string's @SECLEVEL=0 does not lower the peers' bar */
    assert_true(SSL_CTX_get_security_level(ctx) >= 2);
    char group[64], suite[64];
    assert_false(handshake(ctx, 0, "P-256", NULL, NULL, group, suite));
    assert_true(handshake(ctx, 0, "P-256:P-384", NULL, NULL, group, suite));
    assert_string_equal(group, "secp384r1");
    tls_context_facts_free(&f);
    SSL_CTX_free(ctx);
}

/* Replaces the server's key and certificate with a self-signed RSA one of
 * bits. */
static void write_rsa_cert(const char *root, int bits)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
    assert_non_null(key);
    X509 *x = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"sip.example.test",
                               -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509_set_pubkey(x, key);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    char path[512];
    snprintf(path, sizeof(path), "%s/pki/server.key", root);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    chmod(path, 0600);
    snprintf(path, sizeof(path), "%s/pki/server.pem", root);
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, x), 1);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(key);
}

/* The server's own key: RSA below 2048 bits is refused with a clear
 * message; RSA 2048 is served with the ECDHE-RSA suites. */
static void test_own_key_size(void **state)
{
    (void)state;
    char *root = make_root(PKI_KEY_RSA_2048);
    char path[512], err[512] = "";
    snprintf(path, sizeof(path), "%s/parley.conf", root);
    struct config *cfg = NULL;
    assert_int_equal(
        config_load_string(path, "[server]\ndomain = example.test\n", &cfg, err, sizeof(err)), 0);

    SSL_CTX *ctx = NULL;
    assert_int_equal(tls_context_new(cfg, fx->approved, &ctx, err, sizeof(err)), 0);
    struct tls_context_facts f;
    tls_context_facts(ctx, cfg, &f);
    assert_string_equal(f.suites, "TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, "
                                  "ECDHE-RSA-AES128-GCM-SHA256, ECDHE-RSA-AES256-GCM-SHA384");
    tls_context_facts_free(&f);
    char group[64], suite[64];
    assert_true(handshake(ctx, TLS1_2_VERSION, NULL, NULL, NULL, group, suite));
    assert_string_equal(suite, "ECDHE-RSA-AES128-GCM-SHA256");
    SSL_CTX_free(ctx);

    write_rsa_cert(root, 1024);
    ctx = NULL;
    assert_int_equal(tls_context_new(cfg, fx->approved, &ctx, err, sizeof(err)), -EKEYREJECTED);
    assert_null(ctx);
    assert_non_null(strstr(err, "server.key: an RSA key of 1024 bits is not FIPS-approved "
                                "(security.fips = approved-only)"));
    config_free(cfg);
    tu_rmtree(root);
    free(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unrestricted_unchanged),
        cmocka_unit_test(test_defaults_narrow),
        cmocka_unit_test(test_explicit_forbidden_refused),
        cmocka_unit_test(test_explicit_allowed_kept),
        cmocka_unit_test(test_own_key_size),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
