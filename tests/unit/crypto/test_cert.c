#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/bn.h>

#include "crypto/pki.h"
#include "tls/cert.h"

#include "crypto_test_util.h"

#define DAY 86400

/* One PKI for the whole group; tests that change files make copies. */
struct fixture {
    char *root;
    char *dir;
    char *ca_cert, *ca_key, *srv_cert, *srv_key;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char err[512] = "";
    f->root = tu_tmpdir();
    f->dir = tu_path(f->root, "pki");
    f->ca_cert = tu_path(f->dir, PKI_CA_CERT_FILE);
    f->ca_key = tu_path(f->dir, PKI_CA_KEY_FILE);
    f->srv_cert = tu_path(f->dir, PKI_SERVER_CERT_FILE);
    f->srv_key = tu_path(f->dir, PKI_SERVER_KEY_FILE);
    if (pki_create(f->dir, "example.test", "192.0.2.10", PKI_KEY_ECDSA_P256, err, sizeof(err)) !=
        0) {
        fprintf(stderr, "pki_create: %s\n", err);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    tu_rmtree(f->root);
    free(f->root);
    free(f->dir);
    free(f->ca_cert);
    free(f->ca_key);
    free(f->srv_cert);
    free(f->srv_key);
    free(f);
    return 0;
}

/* A copy of a file under a new name in the fixture's root, with a mode. */
static char *copy_as(struct fixture *f, const char *from, const char *name, mode_t mode)
{
    char *to = tu_path(f->root, name);
    char *data = tu_read_file(from, NULL);
    assert_non_null(data);
    unlink(to);
    assert_int_equal(tu_write_file(to, data, mode), 0);
    free(data);
    return to;
}

/* ---- cert_check_keypair ---- */

static void test_keypair_ok(void **state)
{
    struct fixture *f = *state;
    char err[512] = "untouched";
    assert_int_equal(cert_check_keypair(f->srv_cert, f->srv_key, err, sizeof(err)), 0);
    /* A key readable by its owner only, in any combination, is fine. */
    char *k = copy_as(f, f->srv_key, "owner-only.key", 0400);
    assert_int_equal(cert_check_keypair(f->srv_cert, k, err, sizeof(err)), 0);
    unlink(k);
    free(k);
}

static void test_keypair_missing(void **state)
{
    struct fixture *f = *state;
    char err[512] = "";
    char *nokey = tu_path(f->root, "absent.key");
    char *nocert = tu_path(f->root, "absent.pem");
    assert_int_equal(cert_check_keypair(f->srv_cert, nokey, err, sizeof(err)), -ENOENT);
    char want[1024];
    snprintf(want, sizeof(want), "private key %s does not exist", nokey);
    assert_string_equal(err, want);
    assert_int_equal(cert_check_keypair(nocert, f->srv_key, err, sizeof(err)), -ENOENT);
    snprintf(want, sizeof(want), "certificate %s does not exist", nocert);
    assert_string_equal(err, want);
    /* No error buffer is fine too. */
    assert_int_equal(cert_check_keypair(nocert, f->srv_key, NULL, 0), -ENOENT);
    /* A directory is not a key. */
    assert_int_equal(cert_check_keypair(f->srv_cert, f->dir, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "not a regular file"));
    free(nokey);
    free(nocert);
}

static void test_keypair_unreadable(void **state)
{
    struct fixture *f = *state;
    if (geteuid() == 0)
        skip(); /* root reads anything */
    char err[512] = "";
    char *k = copy_as(f, f->srv_key, "noread.key", 0000);
    assert_int_equal(cert_check_keypair(f->srv_cert, k, err, sizeof(err)), -EACCES);
    assert_non_null(strstr(err, k));
    assert_non_null(strstr(err, "not readable"));
    unlink(k);
    free(k);
}

static void test_keypair_key_mode(void **state)
{
    struct fixture *f = *state;
    char err[512] = "", want[1024];
    static const struct {
        mode_t mode;
        const char *fault;
    } cases[] = {
        {0644, "readable by others (mode 0644)"},
        {0604, "readable by others (mode 0604)"},
        {0640, "readable by its group (mode 0640)"},
        {0602, "writable by others (mode 0602)"},
        {0620, "writable by its group (mode 0620)"},
        {0610, "accessible by group or others (mode 0610)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *k = copy_as(f, f->srv_key, "loose.key", cases[i].mode);
        assert_int_equal(cert_check_keypair(f->srv_cert, k, err, sizeof(err)), -EPERM);
        snprintf(want, sizeof(want), "private key %s is %s; chmod 600 it", k, cases[i].fault);
        assert_string_equal(err, want);
        unlink(k);
        free(k);
    }
}

static void test_keypair_mismatch(void **state)
{
    struct fixture *f = *state;
    char err[512] = "";
    /* Two different keys: the CA's certificate with the server's key. */
    assert_int_equal(cert_check_keypair(f->ca_cert, f->srv_key, err, sizeof(err)), -EKEYREJECTED);
    assert_non_null(strstr(err, f->ca_cert));
    assert_non_null(strstr(err, f->srv_key));
    assert_non_null(strstr(err, "does not match"));
    /* And a fresh key of the same type against the server certificate. */
    EVP_PKEY *k = tu_ec_key();
    char *kp = tu_path(f->root, "fresh.key");
    unlink(kp);
    assert_int_equal(tu_write_key(kp, k, 0600), 0);
    assert_int_equal(cert_check_keypair(f->srv_cert, kp, err, sizeof(err)), -EKEYREJECTED);
    unlink(kp);
    free(kp);
    EVP_PKEY_free(k);
}

static void test_keypair_expired_and_early(void **state)
{
    struct fixture *f = *state;
    char err[512] = "";
    time_t now = time(NULL);
    EVP_PKEY *k = tu_ec_key();
    char *kp = tu_path(f->root, "time.key");
    char *cp = tu_path(f->root, "time.pem");
    unlink(kp);
    assert_int_equal(tu_write_key(kp, k, 0600), 0);
    const char *sans[] = {"DNS:old.example.test", NULL};

    X509 *x = tu_make_cert(k, NULL, NULL, "old.example.test", sans, now - 30 * DAY, now - DAY);
    assert_int_equal(tu_write_cert(cp, x), 0);
    assert_int_equal(cert_check_keypair(cp, kp, err, sizeof(err)), -EKEYEXPIRED);
    assert_non_null(strstr(err, cp));
    assert_non_null(strstr(err, "expired on"));
    assert_non_null(strstr(err, "UTC"));
    X509_free(x);

    x = tu_make_cert(k, NULL, NULL, "new.example.test", sans, now + DAY, now + 30 * DAY);
    assert_int_equal(tu_write_cert(cp, x), 0);
    assert_int_equal(cert_check_keypair(cp, kp, err, sizeof(err)), -EKEYEXPIRED);
    assert_non_null(strstr(err, "not valid until"));
    X509_free(x);

    /* The same key with a current certificate passes: time was the fault. */
    x = tu_make_cert(k, NULL, NULL, "now.example.test", sans, now - DAY, now + DAY);
    assert_int_equal(tu_write_cert(cp, x), 0);
    assert_int_equal(cert_check_keypair(cp, kp, err, sizeof(err)), 0);
    X509_free(x);

    unlink(kp);
    unlink(cp);
    free(kp);
    free(cp);
    EVP_PKEY_free(k);
}

static void test_keypair_garbage(void **state)
{
    struct fixture *f = *state;
    char err[512] = "";
    char *bad = tu_path(f->root, "garbage.pem");
    char *badkey = tu_path(f->root, "garbage.key");
    assert_int_equal(tu_write_file(bad,
                                   "-----BEGIN CERTIFICATE-----\nnot base64!\n"
                                   "-----END CERTIFICATE-----\n",
                                   0644),
                     0);
    assert_int_equal(cert_check_keypair(bad, f->srv_key, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, bad));
    assert_non_null(strstr(err, "not a PEM certificate"));

    assert_int_equal(tu_write_file(badkey, "hello\n", 0600), 0);
    assert_int_equal(cert_check_keypair(f->srv_cert, badkey, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, badkey));
    assert_non_null(strstr(err, "not a PEM private key"));

    /* An empty certificate file. */
    assert_int_equal(tu_write_file(bad, "", 0644), 0);
    assert_int_equal(cert_check_keypair(bad, f->srv_key, err, sizeof(err)), -EINVAL);

    /* A key and certificate swapped. */
    assert_int_equal(cert_check_keypair(f->srv_key, f->srv_key, err, sizeof(err)), -EINVAL);

    /* An encrypted key is refused, without ever prompting. */
    EVP_PKEY *k = tu_load_key(f->srv_key);
    unlink(badkey);
    BIO *b = BIO_new_file(badkey, "w");
    assert_true(PEM_write_bio_PrivateKey(b, k, EVP_aes_256_cbc(), (unsigned char *)"secret", 6,
                                         NULL, NULL));
    BIO_free(b);
    chmod(badkey, 0600);
    assert_int_equal(cert_check_keypair(f->srv_cert, badkey, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "passphrase"));
    assert_null(strstr(err, "secret"));
    EVP_PKEY_free(k);

    unlink(bad);
    unlink(badkey);
    free(bad);
    free(badkey);
}

/* ---- cert_summarize ---- */

static void test_summary_of_server(void **state)
{
    struct fixture *f = *state;
    struct cert_summary s;
    char err[512] = "";
    assert_int_equal(cert_summarize_file(f->srv_cert, &s, err, sizeof(err)), 0);
    assert_string_equal(s.subject, "CN=sip.example.test");
    assert_string_equal(s.issuer, "CN=Parley development CA for example.test");
    assert_string_equal(s.sans, "DNS:sip.example.test, DNS:example.test, IP:192.0.2.10");
    assert_string_equal(s.key_type, "ECDSA P-256");
    assert_int_equal(s.not_after - s.not_before, 397 * (int64_t)DAY + 3600);
    assert_true(s.not_before <= (int64_t)time(NULL));

    X509 *x = tu_load_cert(f->srv_cert);
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *hex = BN_bn2hex(bn);
    assert_string_equal(s.serial, hex);
    assert_int_equal(strlen(s.serial), 32);
    OPENSSL_free(hex);
    BN_free(bn);
    X509_free(x);

    assert_int_equal(cert_summarize_file(f->ca_cert, &s, err, sizeof(err)), 0);
    assert_string_equal(s.subject, s.issuer);
    assert_string_equal(s.sans, "");

    char *missing = tu_path(f->root, "none.pem");
    assert_int_equal(cert_summarize_file(missing, &s, err, sizeof(err)), -ENOENT);
    assert_int_equal(cert_summarize_file(f->srv_key, &s, err, sizeof(err)), -EINVAL);
    free(missing);
}

static void test_summary_rsa_and_odd_names(void **state)
{
    struct fixture *f = *state;
    struct cert_summary s;
    char err[512] = "";
    char *c = tu_path(f->root, "rsa.pem");
    char *k = tu_path(f->root, "rsa.key");
    const char *dns[] = {"rsa.example.test", NULL};
    const char *ips[] = {"2001:db8::1", NULL};
    assert_int_equal(pki_issue(f->ca_cert, f->ca_key, c, k, dns, ips, NULL, 10, PKI_KEY_RSA_2048,
                               err, sizeof(err)),
                     0);
    assert_int_equal(cert_summarize_file(c, &s, err, sizeof(err)), 0);
    assert_string_equal(s.key_type, "RSA 2048");
    assert_string_equal(s.sans, "DNS:rsa.example.test, IP:2001:db8::1");
    unlink(c);
    unlink(k);
    free(c);
    free(k);

    /* Control bytes in names are escaped; a URI is shown as such. */
    EVP_PKEY *key = tu_ec_key();
    time_t now = time(NULL);
    const char *odd[] = {"DNS:a\x01"
                         "b.example",
                         "URI:sip:example.test", NULL};
    X509 *x = tu_make_cert(key, NULL, NULL, "odd,name", odd, now - DAY, now + DAY);
    assert_int_equal(cert_summarize(x, &s), 0);
    assert_string_equal(s.sans, "DNS:a\\x01b.example, URI:sip:example.test");
    assert_string_equal(s.subject, "CN=odd\\,name");
    X509_free(x);

    /* Too many names: cut, and marked as cut. */
    const char *many[41];
    char names[40][32];
    for (int i = 0; i < 40; i++) {
        snprintf(names[i], sizeof(names[i]), "DNS:host%02d.example.test", i);
        many[i] = names[i];
    }
    many[40] = NULL;
    x = tu_make_cert(key, NULL, NULL, NULL, many, now - DAY, now + DAY);
    assert_int_equal(cert_summarize(x, &s), 0);
    assert_true(strlen(s.sans) < sizeof(s.sans));
    assert_int_equal(strncmp(s.sans, "DNS:host00.example.test, DNS:host01", 35), 0);
    assert_string_equal(s.sans + strlen(s.sans) - 3, "...");
    assert_string_equal(s.subject, "");
    X509_free(x);
    EVP_PKEY_free(key);

    assert_int_equal(cert_summarize(NULL, &s), -EINVAL);
}

/* ---- cert_matches_host ---- */

static X509 *cert_with(const char *cn, const char *const *sans)
{
    EVP_PKEY *key = tu_ec_key();
    time_t now = time(NULL);
    X509 *x = tu_make_cert(key, NULL, NULL, cn, sans, now - DAY, now + DAY);
    EVP_PKEY_free(key);
    return x;
}

static void test_matches_host_san(void **state)
{
    (void)state;
    const char *sans[] = {"DNS:sip.example.test", "DNS:*.wild.example.test", "IP:192.0.2.10",
                          "IP:2001:db8::1", NULL};
    X509 *x = cert_with("cn.example.test", sans);
    assert_true(cert_matches_host(x, "sip.example.test"));
    assert_true(cert_matches_host(x, "SIP.Example.TEST"));
    assert_true(cert_matches_host(x, "sip.example.test."));
    assert_false(cert_matches_host(x, "other.example.test"));
    assert_false(cert_matches_host(x, "example.test"));
    assert_false(cert_matches_host(x, "sip.example.test.evil"));
    assert_false(cert_matches_host(x, "xsip.example.test"));
    /* Wildcard: exactly one whole left-most label. */
    assert_true(cert_matches_host(x, "a.wild.example.test"));
    /* exactly: a wildcard covers the name but does not name it */
    assert_false(cert_matches_host_exactly(x, "a.wild.example.test"));
    assert_true(cert_matches_host_exactly(x, "sip.example.test"));
    assert_true(cert_matches_host_exactly(x, "192.0.2.10"));
    assert_true(cert_matches_host(x, "A-1.WILD.example.test"));
    assert_false(cert_matches_host(x, "wild.example.test"));
    assert_false(cert_matches_host(x, "a.b.wild.example.test"));
    assert_false(cert_matches_host(x, ".wild.example.test"));
    assert_false(cert_matches_host(x, "*.wild.example.test"));
    /* The CN is ignored when there are dNSNames. */
    assert_false(cert_matches_host(x, "cn.example.test"));
    /* IP literals match iPAddress names only. */
    assert_true(cert_matches_host(x, "192.0.2.10"));
    assert_false(cert_matches_host(x, "192.0.2.11"));
    assert_true(cert_matches_host(x, "2001:db8::1"));
    assert_true(cert_matches_host(x, "2001:DB8:0:0::1"));
    assert_true(cert_matches_host(x, "[2001:db8::1]"));
    assert_false(cert_matches_host(x, "[192.0.2.10]"));
    assert_false(cert_matches_host(x, "2001:db8::2"));
    assert_false(cert_matches_host(x, ""));
    assert_false(cert_matches_host(x, "."));
    assert_false(cert_matches_host(x, NULL));
    assert_false(cert_matches_host(NULL, "sip.example.test"));
    X509_free(x);
}

static void test_matches_host_cn(void **state)
{
    (void)state;
    /* No subjectAltName at all: the CN is the name. */
    X509 *x = cert_with("cn.example.test", NULL);
    assert_true(cert_matches_host(x, "cn.example.test"));
    assert_true(cert_matches_host(x, "CN.EXAMPLE.TEST"));
    assert_false(cert_matches_host(x, "x.cn.example.test"));
    assert_false(cert_matches_host(x, "example.test"));
    X509_free(x);

    /* SANs but no dNSName: the CN still counts for host names. */
    const char *ip_only[] = {"IP:192.0.2.10", NULL};
    x = cert_with("cn.example.test", ip_only);
    assert_true(cert_matches_host(x, "cn.example.test"));
    assert_true(cert_matches_host(x, "192.0.2.10"));
    X509_free(x);

    /* An IP in the CN never matches an IP literal. */
    x = cert_with("192.0.2.10", NULL);
    assert_false(cert_matches_host(x, "192.0.2.10"));
    X509_free(x);

    /* Partial-label and too-broad wildcards match nothing. */
    const char *partial[] = {"DNS:a*.example.test", "DNS:*.test", NULL};
    x = cert_with(NULL, partial);
    assert_false(cert_matches_host(x, "ab.example.test"));
    assert_false(cert_matches_host(x, "a.example.test"));
    assert_false(cert_matches_host(x, "example.test"));
    X509_free(x);
}

/* ---- cert_proves_sip_domain ---- */

static void test_proves_sip_domain(void **state)
{
    struct fixture *f = *state;
    X509 *srv = tu_load_cert(f->srv_cert);
    assert_true(cert_proves_sip_domain(srv, "example.test"));
    assert_true(cert_proves_sip_domain(srv, "sip.example.test"));
    assert_true(cert_proves_sip_domain(srv, "Example.Test"));
    assert_true(cert_proves_sip_domain(srv, "example.test."));
    assert_false(cert_proves_sip_domain(srv, "other.test"));
    assert_false(cert_proves_sip_domain(srv, "test"));
    assert_false(cert_proves_sip_domain(srv, ""));
    assert_false(cert_proves_sip_domain(srv, NULL));
    X509_free(srv);

    const char *uri[] = {"URI:sip:example.org",
                         "URI:SIP:Upper.Example",
                         "URI:sip:user@example.net",
                         "URI:sips:example.com",
                         "URI:sip:example.info;transport=tls",
                         "DNS:*.wild.example",
                         NULL};
    X509 *x = cert_with("cn.example", uri);
    assert_true(cert_proves_sip_domain(x, "example.org"));
    assert_true(cert_proves_sip_domain(x, "upper.example"));
    assert_false(cert_proves_sip_domain(x, "example.net"));    /* user part */
    assert_false(cert_proves_sip_domain(x, "example.com"));    /* sips: is not 5922's form */
    assert_false(cert_proves_sip_domain(x, "example.info"));   /* parameters */
    assert_false(cert_proves_sip_domain(x, "a.wild.example")); /* no wildcards */
    assert_false(cert_proves_sip_domain(x, "*.wild.example"));
    assert_false(cert_proves_sip_domain(x, "cn.example")); /* CN not used */
    X509_free(x);

    /* No SAN: nothing is proven, CN or not. */
    x = cert_with("example.org", NULL);
    assert_false(cert_proves_sip_domain(x, "example.org"));
    X509_free(x);

    /* A name with a NUL inside must not prove its prefix. */
    const char nul_name[] = "DNS:example.org\0.evil";
    EVP_PKEY *key = tu_ec_key();
    X509 *y = X509_new();
    X509_set_version(y, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(y), 7);
    X509_set_pubkey(y, key);
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_IA5STRING *v = ASN1_IA5STRING_new();
    ASN1_STRING_set(v, nul_name + 4, (int)sizeof(nul_name) - 5);
    GENERAL_NAME_set0_value(gn, GEN_DNS, v);
    sk_GENERAL_NAME_push(gens, gn);
    X509_add1_ext_i2d(y, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT);
    GENERAL_NAMES_free(gens);
    assert_false(cert_proves_sip_domain(y, "example.org"));
    assert_false(cert_matches_host(y, "example.org"));
    X509_free(y);
    EVP_PKEY_free(key);
}

/* ---- cert_days_left ---- */

static void test_days_left(void **state)
{
    (void)state;
    EVP_PKEY *key = tu_ec_key();
    time_t now = 1900000000; /* a fixed instant: 2030-03-17 */
    X509 *x = tu_make_cert(key, NULL, NULL, "d.example", NULL, now - DAY, now + 10 * DAY);
    assert_int_equal(cert_days_left(x, now), 10);
    assert_int_equal(cert_days_left(x, now + 1), 9);
    assert_int_equal(cert_days_left(x, now + 10 * DAY - 1), 0);
    assert_int_equal(cert_days_left(x, now + 10 * DAY), 0);
    assert_int_equal(cert_days_left(x, now + 10 * DAY + 1), -1);
    assert_int_equal(cert_days_left(x, now + 12 * DAY), -2);
    assert_int_equal(cert_days_left(x, now - 100 * DAY), 110);
    assert_true(cert_days_left(NULL, now) == INT64_MIN);
    X509_free(x);
    EVP_PKEY_free(key);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keypair_ok),
        cmocka_unit_test(test_keypair_missing),
        cmocka_unit_test(test_keypair_unreadable),
        cmocka_unit_test(test_keypair_key_mode),
        cmocka_unit_test(test_keypair_mismatch),
        cmocka_unit_test(test_keypair_expired_and_early),
        cmocka_unit_test(test_keypair_garbage),
        cmocka_unit_test(test_summary_of_server),
        cmocka_unit_test(test_summary_rsa_and_odd_names),
        cmocka_unit_test(test_matches_host_san),
        cmocka_unit_test(test_matches_host_cn),
        cmocka_unit_test(test_proves_sip_domain),
        cmocka_unit_test(test_days_left),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
