#include <ctype.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <cmocka.h>

#include <openssl/bn.h>

#include "crypto/pki.h"
#include "tls/cert.h"

#include "crypto_test_util.h"

#define DAY 86400

struct pki_paths {
    char *root; /* the temp dir */
    char *dir;  /* root/pki, made by pki_create */
    char *ca_key, *ca_cert, *crl, *srv_key, *srv_cert;
};

static void paths_init(struct pki_paths *p)
{
    p->root = tu_tmpdir();
    assert_non_null(p->root);
    p->dir = tu_path(p->root, "pki");
    p->ca_key = tu_path(p->dir, PKI_CA_KEY_FILE);
    p->ca_cert = tu_path(p->dir, PKI_CA_CERT_FILE);
    p->crl = tu_path(p->dir, PKI_CRL_FILE);
    p->srv_key = tu_path(p->dir, PKI_SERVER_KEY_FILE);
    p->srv_cert = tu_path(p->dir, PKI_SERVER_CERT_FILE);
}

static void paths_free(struct pki_paths *p)
{
    tu_rmtree(p->root);
    free(p->root);
    free(p->dir);
    free(p->ca_key);
    free(p->ca_cert);
    free(p->crl);
    free(p->srv_key);
    free(p->srv_cert);
}

static void make_pki(struct pki_paths *p, const char *ip, enum pki_key_type type)
{
    char err[512] = "";
    paths_init(p);
    int rc = pki_create(p->dir, "Example.Test", ip, type, err, sizeof(err));
    if (rc != 0)
        fail_msg("pki_create: %d %s", rc, err);
}

/* The SANs of a certificate as "DNS:a|IP:b" for easy comparison, built
 * with OpenSSL directly. */
static void sans_of(X509 *x, char *out, size_t cap)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    out[0] = '\0';
    for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
        GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, i);
        char one[128];
        if (gn->type == GEN_DNS) {
            snprintf(one, sizeof(one), "DNS:%.*s", ASN1_STRING_length(gn->d.dNSName),
                     (const char *)ASN1_STRING_get0_data(gn->d.dNSName));
        } else if (gn->type == GEN_IPADD) {
            const unsigned char *d = ASN1_STRING_get0_data(gn->d.iPAddress);
            int n = ASN1_STRING_length(gn->d.iPAddress);
            if (n == 4)
                snprintf(one, sizeof(one), "IP:%u.%u.%u.%u", d[0], d[1], d[2], d[3]);
            else
                snprintf(one, sizeof(one), "IP:v6/%d", n);
        } else {
            snprintf(one, sizeof(one), "type%d", gn->type);
        }
        if (i > 0)
            strncat(out, "|", cap - strlen(out) - 1);
        strncat(out, one, cap - strlen(out) - 1);
    }
    GENERAL_NAMES_free(gens);
}

static void cn_of(X509 *x, char *out, size_t cap)
{
    out[0] = '\0';
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, out, (int)cap);
}

static int64_t time_of(const ASN1_TIME *t)
{
    struct tm tm;
    assert_true(ASN1_TIME_to_tm(t, &tm));
    return (int64_t)timegm(&tm);
}

static bool ext_critical(X509 *x, int nid)
{
    int i = X509_get_ext_by_NID(x, nid, -1);
    assert_true(i >= 0);
    return X509_EXTENSION_get_critical(X509_get_ext(x, i)) == 1;
}

static void test_create_default_ecdsa(void **state)
{
    (void)state;
    struct pki_paths p;
    char buf[512];
    int64_t now = (int64_t)time(NULL);
    make_pki(&p, "192.0.2.10", PKI_KEY_ECDSA_P256);

    assert_int_equal(tu_mode(p.dir), 0700);
    assert_int_equal(tu_mode(p.ca_key), 0600);
    assert_int_equal(tu_mode(p.srv_key), 0600);
    assert_int_equal(tu_mode(p.ca_cert), 0644);
    assert_int_equal(tu_mode(p.crl), 0644);
    assert_int_equal(tu_mode(p.srv_cert), 0644);
    /* Nothing else: no temporary files left behind. */
    assert_int_equal(tu_count_entries(p.dir), 5);

    X509 *ca = tu_load_cert(p.ca_cert);
    X509 *srv = tu_load_cert(p.srv_cert);
    EVP_PKEY *ca_key = tu_load_key(p.ca_key);
    EVP_PKEY *srv_key = tu_load_key(p.srv_key);
    X509_CRL *crl = tu_load_crl(p.crl);
    assert_non_null(ca);
    assert_non_null(srv);
    assert_non_null(ca_key);
    assert_non_null(srv_key);
    assert_non_null(crl);

    /* Keys: P-256, and each certificate carries its own key. */
    char group[64];
    assert_int_equal(EVP_PKEY_get_base_id(srv_key), EVP_PKEY_EC);
    assert_true(EVP_PKEY_get_group_name(srv_key, group, sizeof(group), NULL));
    assert_string_equal(group, "prime256v1");
    assert_int_equal(EVP_PKEY_get_base_id(ca_key), EVP_PKEY_EC);
    assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(ca), ca_key), 1);
    assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(srv), srv_key), 1);
    assert_int_not_equal(EVP_PKEY_eq(ca_key, srv_key), 1);

    /* The CA. */
    cn_of(ca, buf, sizeof(buf));
    assert_string_equal(buf, "Parley development CA for example.test");
    assert_int_equal(X509_check_ca(ca), 1);
    assert_true(ext_critical(ca, NID_basic_constraints));
    assert_true(ext_critical(ca, NID_key_usage));
    assert_int_equal(X509_get_key_usage(ca), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
    assert_non_null(X509_get0_subject_key_id(ca));
    assert_int_equal(X509_check_issued(ca, ca), X509_V_OK);
    int64_t ca_days = (time_of(X509_get0_notAfter(ca)) - now) / DAY;
    assert_true(ca_days >= PKI_CA_DAYS - 1 && ca_days <= PKI_CA_DAYS);

    /* The server certificate. */
    cn_of(srv, buf, sizeof(buf));
    assert_string_equal(buf, "sip.example.test");
    sans_of(srv, buf, sizeof(buf));
    assert_string_equal(buf, "DNS:sip.example.test|DNS:example.test|IP:192.0.2.10");
    assert_int_equal(X509_check_ca(srv), 0);
    assert_true(X509_get_extension_flags(srv) & EXFLAG_BCONS);
    assert_int_equal(X509_get_key_usage(srv), KU_DIGITAL_SIGNATURE);
    assert_int_equal(X509_get_extended_key_usage(srv), XKU_SSL_SERVER | XKU_SSL_CLIENT);
    const ASN1_OCTET_STRING *aki = X509_get0_authority_key_id(srv);
    assert_non_null(aki);
    assert_int_equal(ASN1_OCTET_STRING_cmp(aki, X509_get0_subject_key_id(ca)), 0);
    /* Serial: 16 bytes, positive. */
    const ASN1_INTEGER *serial = X509_get0_serialNumber(srv);
    BIGNUM *bn = ASN1_INTEGER_to_BN(serial, NULL);
    assert_false(BN_is_negative(bn));
    assert_int_equal(BN_num_bytes(bn), 16);
    BN_free(bn);
    /* An hour of slack for clock skew, 397 days of validity. */
    int64_t nb = time_of(X509_get0_notBefore(srv));
    int64_t na = time_of(X509_get0_notAfter(srv));
    assert_true(nb <= now - 3600 + 5 && nb >= now - 3600 - 60);
    assert_true(na >= now + 397 * (int64_t)DAY - 5 && na <= now + 397 * (int64_t)DAY + 60);

    /* Chains to the CA for both ends of mutual TLS. */
    assert_int_equal(tu_verify(ca, srv, NULL, X509_PURPOSE_SSL_SERVER), X509_V_OK);
    assert_int_equal(tu_verify(ca, srv, NULL, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
    assert_int_equal(tu_verify(ca, srv, crl, X509_PURPOSE_SSL_SERVER), X509_V_OK);

    /* The CRL: signed by the CA, empty, number 1, next update in a year. */
    assert_int_equal(X509_CRL_verify(crl, X509_get0_pubkey(ca)), 1);
    assert_int_equal(X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(ca)), 0);
    /* Empty: the optional revokedCertificates list is absent or empty. */
    assert_true(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)) <= 0);
    ASN1_INTEGER *num = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
    assert_non_null(num);
    assert_int_equal(ASN1_INTEGER_get(num), 1);
    ASN1_INTEGER_free(num);
    int64_t next = time_of(X509_CRL_get0_nextUpdate(crl));
    assert_true(next >= now + 365 * (int64_t)DAY - 5 && next <= now + 365 * (int64_t)DAY + 60);

    /* And the start-up check accepts both pairs. */
    char err[512] = "";
    assert_int_equal(cert_check_keypair(p.srv_cert, p.srv_key, err, sizeof(err)), 0);
    assert_int_equal(cert_check_keypair(p.ca_cert, p.ca_key, err, sizeof(err)), 0);

    X509_free(ca);
    X509_free(srv);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(srv_key);
    X509_CRL_free(crl);
    paths_free(&p);
}

static void test_create_rsa_without_ip(void **state)
{
    (void)state;
    struct pki_paths p;
    char buf[512];
    make_pki(&p, NULL, PKI_KEY_RSA_2048);
    X509 *ca = tu_load_cert(p.ca_cert);
    X509 *srv = tu_load_cert(p.srv_cert);
    EVP_PKEY *srv_key = tu_load_key(p.srv_key);
    assert_non_null(srv_key);
    assert_int_equal(EVP_PKEY_get_base_id(srv_key), EVP_PKEY_RSA);
    assert_int_equal(EVP_PKEY_get_bits(srv_key), 2048);
    assert_int_equal(EVP_PKEY_get_base_id(X509_get0_pubkey(ca)), EVP_PKEY_RSA);
    assert_int_equal(X509_get_key_usage(srv), KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT);
    sans_of(srv, buf, sizeof(buf));
    assert_string_equal(buf, "DNS:sip.example.test|DNS:example.test");
    assert_int_equal(tu_verify(ca, srv, NULL, X509_PURPOSE_SSL_SERVER), X509_V_OK);
    assert_int_equal(tu_verify(ca, srv, NULL, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
    X509_free(ca);
    X509_free(srv);
    EVP_PKEY_free(srv_key);
    paths_free(&p);
}

static void test_create_ipv6(void **state)
{
    (void)state;
    struct pki_paths p;
    make_pki(&p, "2001:db8::7", PKI_KEY_ECDSA_P256);
    X509 *srv = tu_load_cert(p.srv_cert);
    assert_int_equal(X509_check_ip_asc(srv, "2001:db8::7", 0), 1);
    assert_int_equal(X509_check_ip_asc(srv, "2001:db8::8", 0), 0);
    X509_free(srv);
    paths_free(&p);
}

static void test_create_rejects_bad_input(void **state)
{
    (void)state;
    char err[512];
    char *root = tu_tmpdir();
    char *dir = tu_path(root, "pki");
    const char *bad_domains[] = {
        "",        "a..b",          "-a.test",       "a-.test",        "a_b.test",
        "1.2.3.4", "exa mple.test", "example.test.", "*.example.test", NULL};
    for (int i = 0; bad_domains[i] != NULL; i++) {
        err[0] = '\0';
        assert_int_equal(
            pki_create(dir, bad_domains[i], NULL, PKI_KEY_ECDSA_P256, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "not a valid SIP domain"));
        assert_false(tu_exists(dir));
    }
    assert_int_equal(
        pki_create(dir, "example.test", "192.0.2.300", PKI_KEY_ECDSA_P256, err, sizeof(err)),
        -EINVAL);
    assert_non_null(strstr(err, "192.0.2.300"));
    assert_int_equal(pki_create(dir, "example.test", NULL, (enum pki_key_type)7, err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(pki_create(NULL, "example.test", NULL, PKI_KEY_ECDSA_P256, err, sizeof(err)),
                     -EINVAL);
    assert_false(tu_exists(dir));
    /* A parent that does not exist is not created. */
    char *deep = tu_path(root, "no/such/dir");
    assert_int_equal(pki_create(deep, "example.test", NULL, PKI_KEY_ECDSA_P256, err, sizeof(err)),
                     -ENOENT);
    assert_non_null(strstr(err, deep));
    /* NULL err is allowed. */
    assert_int_equal(pki_create(dir, "bad..domain", NULL, PKI_KEY_ECDSA_P256, NULL, 0), -EINVAL);
    free(deep);
    free(dir);
    tu_rmtree(root);
    free(root);
}

static void test_create_long_domain(void **state)
{
    (void)state;
    struct pki_paths p;
    char err[512] = "", buf[512];
    /* 26 + 50 characters: too long for the CA's CN, fine for names. */
    const char *domain = "a-rather-long-subdomain-name.of-an-example.example";
    paths_init(&p);
    assert_int_equal(pki_create(p.dir, domain, NULL, PKI_KEY_ECDSA_P256, err, sizeof(err)), 0);
    X509 *ca = tu_load_cert(p.ca_cert);
    X509 *srv = tu_load_cert(p.srv_cert);
    cn_of(ca, buf, sizeof(buf));
    assert_string_equal(buf, "Parley development CA");
    cn_of(srv, buf, sizeof(buf));
    assert_string_equal(buf, "sip.a-rather-long-subdomain-name.of-an-example.example");
    assert_int_equal(tu_verify(ca, srv, NULL, X509_PURPOSE_SSL_SERVER), X509_V_OK);
    X509_free(ca);
    X509_free(srv);
    paths_free(&p);
}

struct snapshot {
    char *data[5];
    size_t len[5];
    struct stat st[5];
};

static void snap_take(struct pki_paths *p, struct snapshot *s)
{
    const char *files[5] = {p->ca_key, p->ca_cert, p->crl, p->srv_key, p->srv_cert};
    for (int i = 0; i < 5; i++) {
        s->data[i] = tu_read_file(files[i], &s->len[i]);
        assert_non_null(s->data[i]);
        assert_int_equal(stat(files[i], &s->st[i]), 0);
    }
}

static void snap_same(struct pki_paths *p, struct snapshot *a)
{
    struct snapshot b;
    snap_take(p, &b);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(a->len[i], b.len[i]);
        assert_memory_equal(a->data[i], b.data[i], a->len[i]);
        assert_int_equal(a->st[i].st_ino, b.st[i].st_ino);
        assert_int_equal(a->st[i].st_mtim.tv_sec, b.st[i].st_mtim.tv_sec);
        assert_int_equal(a->st[i].st_mtim.tv_nsec, b.st[i].st_mtim.tv_nsec);
        assert_int_equal(a->st[i].st_mode, b.st[i].st_mode);
        free(b.data[i]);
    }
}

static void snap_free(struct snapshot *s)
{
    for (int i = 0; i < 5; i++)
        free(s->data[i]);
}

static void test_create_refuses_existing(void **state)
{
    (void)state;
    struct pki_paths p;
    struct snapshot before;
    char err[512] = "";
    make_pki(&p, NULL, PKI_KEY_ECDSA_P256);
    snap_take(&p, &before);

    assert_int_equal(
        pki_create(p.dir, "other.test", "192.0.2.1", PKI_KEY_RSA_2048, err, sizeof(err)), -EEXIST);
    assert_non_null(strstr(err, p.ca_key));
    assert_non_null(strstr(err, "already exists"));
    snap_same(&p, &before);
    assert_int_equal(tu_count_entries(p.dir), 5);

    /* Any one of the five is enough to refuse, and nothing is added. */
    const char *names[] = {PKI_CA_KEY_FILE, PKI_CA_CERT_FILE, PKI_CRL_FILE, PKI_SERVER_KEY_FILE,
                           PKI_SERVER_CERT_FILE};
    for (int i = 0; i < 5; i++) {
        char *d = tu_path(p.root, "one");
        char *f = tu_path(d, names[i]);
        assert_int_equal(mkdir(d, 0700), 0);
        assert_int_equal(tu_write_file(f, "keep me\n", 0600), 0);
        err[0] = '\0';
        assert_int_equal(pki_create(d, "example.test", NULL, PKI_KEY_ECDSA_P256, err, sizeof(err)),
                         -EEXIST);
        assert_non_null(strstr(err, f));
        assert_int_equal(tu_count_entries(d), 1);
        char *keep = tu_read_file(f, NULL);
        assert_string_equal(keep, "keep me\n");
        free(keep);
        tu_rmtree(d);
        free(d);
        free(f);
    }
    /* A dangling symlink counts as existing: it is never followed. */
    char *d = tu_path(p.root, "link");
    char *f = tu_path(d, PKI_SERVER_KEY_FILE);
    char *target = tu_path(p.root, "elsewhere");
    assert_int_equal(mkdir(d, 0700), 0);
    assert_int_equal(symlink(target, f), 0);
    assert_int_equal(pki_create(d, "example.test", NULL, PKI_KEY_ECDSA_P256, err, sizeof(err)),
                     -EEXIST);
    assert_false(tu_exists(target));
    free(d);
    free(f);
    free(target);

    /* A file where the directory should be. */
    char *file = tu_path(p.root, "plainfile");
    assert_int_equal(tu_write_file(file, "x", 0644), 0);
    assert_int_equal(pki_create(file, "example.test", NULL, PKI_KEY_ECDSA_P256, err, sizeof(err)),
                     -ENOTDIR);
    assert_non_null(strstr(err, "not a directory"));
    free(file);

    snap_free(&before);
    paths_free(&p);
}

/*
 * A failure half-way through writing: the file-size limit lets the first
 * files through and stops server.pem, the last and largest, as a full disk
 * would. Everything already written must be removed again, and the
 * directory too when the call made it.
 */
static void test_create_failure_midway_leaves_nothing(void **state)
{
    (void)state;
    struct pki_paths ref, p;
    char err[512] = "";
    struct stat st;
    make_pki(&ref, "2001:db8:1234:5678:9abc:def0:1234:5678", PKI_KEY_ECDSA_P256);
    off_t biggest_before = 0;
    const char *first[] = {ref.ca_key, ref.ca_cert, ref.crl, ref.srv_key};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(stat(first[i], &st), 0);
        if (st.st_size > biggest_before)
            biggest_before = st.st_size;
    }
    assert_int_equal(stat(ref.srv_cert, &st), 0);
    /* ECDSA signatures vary by a few bytes; leave room either side. */
    rlim_t limit = (rlim_t)biggest_before + 24;
    assert_true((rlim_t)st.st_size > limit + 24);

    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = limit;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);

    for (int pass = 0; pass < 2; pass++) {
        paths_init(&p);
        if (pass == 1)
            assert_int_equal(mkdir(p.dir, 0755), 0); /* a directory that already exists */
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
        int rc = pki_create(p.dir, "Example.Test", "2001:db8:1234:5678:9abc:def0:1234:5678",
                            PKI_KEY_ECDSA_P256, err, sizeof(err));
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
        assert_int_equal(rc, -EFBIG);
        assert_non_null(strstr(err, p.srv_cert));
        if (pass == 0)
            assert_false(tu_exists(p.dir));
        else
            assert_int_equal(tu_count_entries(p.dir), 0);
        paths_free(&p);
    }
    signal(SIGXFSZ, old_handler);

    /* Without the limit the same call succeeds (the limit was the cause). */
    paths_init(&p);
    assert_int_equal(pki_create(p.dir, "Example.Test", "2001:db8:1234:5678:9abc:def0:1234:5678",
                                PKI_KEY_ECDSA_P256, err, sizeof(err)),
                     0);
    paths_free(&p);
    paths_free(&ref);
}

static void test_create_unwritable_dir(void **state)
{
    (void)state;
    if (geteuid() == 0)
        skip(); /* root writes anywhere */
    struct pki_paths p;
    char err[512] = "";
    paths_init(&p);
    assert_int_equal(mkdir(p.dir, 0500), 0);
    assert_int_equal(pki_create(p.dir, "example.test", NULL, PKI_KEY_ECDSA_P256, err, sizeof(err)),
                     -EACCES);
    assert_non_null(strstr(err, p.dir));
    assert_int_equal(tu_count_entries(p.dir), 0);
    chmod(p.dir, 0700);
    paths_free(&p);
}

static void test_issue(void **state)
{
    (void)state;
    struct pki_paths p;
    char err[512] = "", buf[512];
    make_pki(&p, NULL, PKI_KEY_ECDSA_P256);
    char *cert = tu_path(p.root, "peer.pem");
    char *key = tu_path(p.root, "peer.key");
    const char *dns[] = {"Peer.Example.Org", "*.peer.example.org", NULL};
    const char *ips[] = {"198.51.100.4", NULL};
    int64_t now = (int64_t)time(NULL);

    assert_int_equal(pki_issue(p.ca_cert, p.ca_key, cert, key, dns, ips, NULL, 30, PKI_KEY_RSA_2048,
                               err, sizeof(err)),
                     0);
    assert_int_equal(tu_mode(key), 0600);
    X509 *ca = tu_load_cert(p.ca_cert);
    X509 *leaf = tu_load_cert(cert);
    EVP_PKEY *k = tu_load_key(key);
    assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(leaf), k), 1);
    assert_int_equal(EVP_PKEY_get_bits(k), 2048);
    cn_of(leaf, buf, sizeof(buf));
    assert_string_equal(buf, "peer.example.org");
    sans_of(leaf, buf, sizeof(buf));
    assert_string_equal(buf, "DNS:peer.example.org|DNS:*.peer.example.org|IP:198.51.100.4");
    int64_t na = time_of(X509_get0_notAfter(leaf));
    assert_true(na >= now + 30 * DAY - 5 && na <= now + 30 * DAY + 60);
    assert_int_equal(tu_verify(ca, leaf, NULL, X509_PURPOSE_SSL_SERVER), X509_V_OK);
    assert_int_equal(tu_verify(ca, leaf, NULL, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
    assert_int_equal(X509_get_extended_key_usage(leaf), XKU_SSL_SERVER | XKU_SSL_CLIENT);
    X509_free(leaf);
    EVP_PKEY_free(k);

    /* IP-only leaf with an explicit CN. */
    char *cert2 = tu_path(p.root, "ip.pem");
    char *key2 = tu_path(p.root, "ip.key");
    assert_int_equal(pki_issue(p.ca_cert, p.ca_key, cert2, key2, NULL, ips, "gateway 4", 1,
                               PKI_KEY_ECDSA_P256, err, sizeof(err)),
                     0);
    leaf = tu_load_cert(cert2);
    cn_of(leaf, buf, sizeof(buf));
    assert_string_equal(buf, "gateway 4");
    assert_int_equal(tu_verify(ca, leaf, NULL, X509_PURPOSE_SSL_SERVER), X509_V_OK);
    X509_free(leaf);

    /* Refusals: nothing written for any of them. */
    assert_int_equal(pki_issue(p.ca_cert, p.ca_key, cert, key, dns, NULL, NULL, 30,
                               PKI_KEY_ECDSA_P256, err, sizeof(err)),
                     -EEXIST);
    char *c3 = tu_path(p.root, "x.pem");
    char *k3 = tu_path(p.root, "x.key");
    const char *bad[] = {"ok.example", "bad_name.example", NULL};
    const char *partial[] = {"a*.example.org", NULL};
    const char *badip[] = {"300.1.1.1", NULL};
    assert_int_equal(pki_issue(p.ca_cert, p.ca_key, c3, k3, bad, NULL, NULL, 30, PKI_KEY_ECDSA_P256,
                               err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "bad_name.example"));
    assert_int_equal(pki_issue(p.ca_cert, p.ca_key, c3, k3, partial, NULL, NULL, 30,
                               PKI_KEY_ECDSA_P256, err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(pki_issue(p.ca_cert, p.ca_key, c3, k3, NULL, badip, NULL, 30,
                               PKI_KEY_ECDSA_P256, err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(pki_issue(p.ca_cert, p.ca_key, c3, k3, NULL, NULL, NULL, 30,
                               PKI_KEY_ECDSA_P256, err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(pki_issue(p.ca_cert, p.ca_key, c3, k3, dns, NULL, NULL, 0, PKI_KEY_ECDSA_P256,
                               err, sizeof(err)),
                     -EINVAL);
    /* A CA key that is not the CA's. */
    assert_int_equal(pki_issue(p.ca_cert, p.srv_key, c3, k3, dns, NULL, NULL, 30,
                               PKI_KEY_ECDSA_P256, err, sizeof(err)),
                     -EKEYREJECTED);
    assert_non_null(strstr(err, p.srv_key));
    /* A leaf is not a CA. */
    assert_int_equal(pki_issue(p.srv_cert, p.srv_key, c3, k3, dns, NULL, NULL, 30,
                               PKI_KEY_ECDSA_P256, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "not a CA"));
    /* A CA key others can read is refused. */
    assert_int_equal(chmod(p.ca_key, 0644), 0);
    assert_int_equal(pki_issue(p.ca_cert, p.ca_key, c3, k3, dns, NULL, NULL, 30, PKI_KEY_ECDSA_P256,
                               err, sizeof(err)),
                     -EPERM);
    assert_non_null(strstr(err, "readable by others"));
    assert_int_equal(chmod(p.ca_key, 0600), 0);
    assert_false(tu_exists(c3));
    assert_false(tu_exists(k3));

    /* An existing cert output is refused before the key is written. */
    assert_int_equal(tu_write_file(c3, "occupied", 0644), 0);
    assert_int_equal(pki_issue(p.ca_cert, p.ca_key, c3, k3, dns, NULL, NULL, 30, PKI_KEY_ECDSA_P256,
                               err, sizeof(err)),
                     -EEXIST);
    assert_false(tu_exists(k3));

    X509_free(ca);
    free(cert);
    free(key);
    free(cert2);
    free(key2);
    free(c3);
    free(k3);
    paths_free(&p);
}

static int64_t crl_number(const char *path)
{
    X509_CRL *crl = tu_load_crl(path);
    assert_non_null(crl);
    ASN1_INTEGER *num = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
    assert_non_null(num);
    int64_t n = 0;
    assert_true(ASN1_INTEGER_get_int64(&n, num));
    ASN1_INTEGER_free(num);
    X509_CRL_free(crl);
    return n;
}

static void test_revoke(void **state)
{
    (void)state;
    struct pki_paths p;
    char err[512] = "";
    make_pki(&p, NULL, PKI_KEY_ECDSA_P256);
    char *other = tu_path(p.root, "other.pem");
    char *other_key = tu_path(p.root, "other.key");
    const char *dns[] = {"other.example.test", NULL};
    assert_int_equal(pki_issue(p.ca_cert, p.ca_key, other, other_key, dns, NULL, NULL, 30,
                               PKI_KEY_ECDSA_P256, err, sizeof(err)),
                     0);
    X509 *ca = tu_load_cert(p.ca_cert);
    X509 *srv = tu_load_cert(p.srv_cert);
    X509 *oth = tu_load_cert(other);
    X509_CRL *crl = tu_load_crl(p.crl);
    assert_int_equal(tu_verify(ca, srv, crl, X509_PURPOSE_SSL_SERVER), X509_V_OK);
    assert_int_equal(tu_verify(ca, oth, crl, X509_PURPOSE_SSL_SERVER), X509_V_OK);
    X509_CRL_free(crl);

    /* Revoke the server certificate by file. */
    assert_int_equal(pki_revoke(p.ca_cert, p.ca_key, p.crl, p.srv_cert, err, sizeof(err)), 0);
    assert_int_equal(tu_mode(p.crl), 0644);
    assert_int_equal(tu_count_entries(p.dir), 5);
    crl = tu_load_crl(p.crl);
    assert_int_equal(X509_CRL_verify(crl, X509_get0_pubkey(ca)), 1);
    assert_int_equal(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)), 1);
    X509_REVOKED *rev = NULL;
    assert_int_equal(X509_CRL_get0_by_serial(crl, &rev, X509_get0_serialNumber(srv)), 1);
    assert_int_equal(crl_number(p.crl), 2);
    assert_int_equal(tu_verify(ca, srv, crl, X509_PURPOSE_SSL_SERVER), X509_V_ERR_CERT_REVOKED);
    assert_int_equal(tu_verify(ca, srv, crl, X509_PURPOSE_SSL_CLIENT), X509_V_ERR_CERT_REVOKED);
    assert_int_equal(tu_verify(ca, oth, crl, X509_PURPOSE_SSL_SERVER), X509_V_OK);
    X509_CRL_free(crl);

    /* Again: idempotent, the file is not even rewritten. */
    size_t len1, len2;
    struct stat st1, st2;
    char *before = tu_read_file(p.crl, &len1);
    assert_int_equal(stat(p.crl, &st1), 0);
    assert_int_equal(pki_revoke(p.ca_cert, p.ca_key, p.crl, p.srv_cert, err, sizeof(err)), 0);
    char *after = tu_read_file(p.crl, &len2);
    assert_int_equal(stat(p.crl, &st2), 0);
    assert_int_equal(len1, len2);
    assert_memory_equal(before, after, len1);
    assert_int_equal(st1.st_ino, st2.st_ino);
    free(before);
    free(after);

    /* Revoke the other by serial, in `openssl x509 -text` form. */
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(oth), NULL);
    char *hex = BN_bn2hex(bn);
    char colon[128] = "";
    for (size_t i = 0, o = 0; hex[i] != '\0' && o + 4 < sizeof(colon); i++) {
        if (i > 0 && i % 2 == 0)
            colon[o++] = ':';
        colon[o++] = (char)tolower((unsigned char)hex[i]);
        colon[o] = '\0';
    }
    assert_non_null(strchr(colon, ':'));
    assert_int_equal(pki_revoke(p.ca_cert, p.ca_key, p.crl, colon, err, sizeof(err)), 0);
    assert_int_equal(crl_number(p.crl), 3);
    crl = tu_load_crl(p.crl);
    assert_int_equal(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)), 2);
    assert_int_equal(tu_verify(ca, oth, crl, X509_PURPOSE_SSL_SERVER), X509_V_ERR_CERT_REVOKED);
    assert_int_equal(tu_verify(ca, srv, crl, X509_PURPOSE_SSL_SERVER), X509_V_ERR_CERT_REVOKED);
    X509_CRL_free(crl);
    /* The same serial in -serial form (0x, upper case) is already there. */
    char prefixed[128];
    snprintf(prefixed, sizeof(prefixed), "0x%s", hex);
    assert_int_equal(pki_revoke(p.ca_cert, p.ca_key, p.crl, prefixed, err, sizeof(err)), 0);
    assert_int_equal(crl_number(p.crl), 3);
    OPENSSL_free(hex);
    BN_free(bn);

    /* Refusals leave the CRL alone. */
    before = tu_read_file(p.crl, &len1);
    assert_int_equal(pki_revoke(p.ca_cert, p.ca_key, p.crl, "00", err, sizeof(err)), -EINVAL);
    assert_int_equal(pki_revoke(p.ca_cert, p.ca_key, p.crl,
                                "0102030405060708090a0b0c0d0e0f101112131415", err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(pki_revoke(p.ca_cert, p.ca_key, p.crl, "no-such-file.pem", err, sizeof(err)),
                     -ENOENT);
    assert_non_null(strstr(err, "no-such-file.pem"));
    /* A certificate from another CA. */
    struct pki_paths q;
    make_pki(&q, NULL, PKI_KEY_ECDSA_P256);
    assert_int_equal(pki_revoke(p.ca_cert, p.ca_key, p.crl, q.srv_cert, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "not issued by"));
    /* Same issuer name and key id, signed by someone else: a forgery. */
    X509 *forged = X509_dup(srv);
    EVP_PKEY *forger = tu_ec_key();
    assert_true(X509_sign(forged, forger, EVP_sha256()) > 0);
    char *forged_path = tu_path(p.root, "forged.pem");
    assert_int_equal(tu_write_cert(forged_path, forged), 0);
    assert_int_equal(pki_revoke(p.ca_cert, p.ca_key, p.crl, forged_path, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "not issued by"));
    free(forged_path);
    X509_free(forged);
    EVP_PKEY_free(forger);
    /* Another CA's CRL, or another CA's key. */
    assert_int_equal(pki_revoke(p.ca_cert, p.ca_key, q.crl, "1234", err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "not signed by"));
    assert_int_equal(pki_revoke(p.ca_cert, q.ca_key, p.crl, "1234", err, sizeof(err)),
                     -EKEYREJECTED);
    after = tu_read_file(p.crl, &len2);
    assert_int_equal(len1, len2);
    assert_memory_equal(before, after, len1);
    free(before);
    free(after);
    paths_free(&q);

    X509_free(ca);
    X509_free(srv);
    X509_free(oth);
    free(other);
    free(other_key);
    paths_free(&p);
}

static void test_csr(void **state)
{
    (void)state;
    struct pki_paths p;
    char err[512] = "", buf[256];
    make_pki(&p, NULL, PKI_KEY_ECDSA_P256);
    char *csr_path = tu_path(p.root, "server.csr");
    const char *dns[] = {"sip.example.test", "example.test", NULL};
    assert_int_equal(pki_csr_write(p.srv_key, NULL, dns, csr_path, err, sizeof(err)), 0);
    BIO *b = BIO_new_file(csr_path, "r");
    X509_REQ *req = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
    BIO_free(b);
    assert_non_null(req);
    EVP_PKEY *key = tu_load_key(p.srv_key);
    assert_int_equal(X509_REQ_verify(req, key), 1);
    assert_int_equal(EVP_PKEY_eq(X509_REQ_get0_pubkey(req), key), 1);
    buf[0] = '\0';
    X509_NAME_get_text_by_NID(X509_REQ_get_subject_name(req), NID_commonName, buf, sizeof(buf));
    assert_string_equal(buf, "sip.example.test");
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
    assert_int_equal(sk_X509_EXTENSION_num(exts), 1);
    GENERAL_NAMES *gens = X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL);
    assert_int_equal(sk_GENERAL_NAME_num(gens), 2);
    GENERAL_NAMES_free(gens);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_REQ_free(req);
    EVP_PKEY_free(key);

    assert_int_equal(pki_csr_write(p.srv_key, "x", dns, csr_path, err, sizeof(err)), -EEXIST);
    char *other = tu_path(p.root, "other.csr");
    assert_int_equal(pki_csr_write(p.srv_key, NULL, NULL, other, err, sizeof(err)), -EINVAL);
    char *missing = tu_path(p.root, "missing.key");
    assert_int_equal(pki_csr_write(missing, "x", NULL, other, err, sizeof(err)), -ENOENT);
    assert_false(tu_exists(other));
    free(missing);
    free(other);
    free(csr_path);
    paths_free(&p);
}

static void test_key_type_names(void **state)
{
    (void)state;
    enum pki_key_type t = PKI_KEY_RSA_2048;
    assert_int_equal(pki_key_type_parse("ECDSA", &t), 0);
    assert_int_equal(t, PKI_KEY_ECDSA_P256);
    assert_int_equal(pki_key_type_parse("rsa", &t), 0);
    assert_int_equal(t, PKI_KEY_RSA_2048);
    assert_int_equal(pki_key_type_parse("dsa", &t), -EINVAL);
    assert_int_equal(pki_key_type_parse(NULL, &t), -EINVAL);
    assert_string_equal(pki_key_type_name(PKI_KEY_ECDSA_P256), "ECDSA P-256");
    assert_string_equal(pki_key_type_name(PKI_KEY_RSA_2048), "RSA 2048");
}

/* Runs a command, returning its exit status and its output (both streams). */
static int run(const char *cmd, char *out, size_t cap)
{
    char full[2048];
    snprintf(full, sizeof(full), "%s 2>&1", cmd);
    FILE *f = popen(full, "r");
    assert_non_null(f);
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Another implementation's reading of the same files: the openssl tool. */
static void test_openssl_cli_interop(void **state)
{
    (void)state;
    if (access("/usr/bin/openssl", X_OK) != 0)
        skip();
    struct pki_paths p;
    char cmd[1024], out[4096], err[512];
    make_pki(&p, "192.0.2.10", PKI_KEY_ECDSA_P256);

    snprintf(cmd, sizeof(cmd), "/usr/bin/openssl verify -CAfile %s -purpose sslserver %s",
             p.ca_cert, p.srv_cert);
    assert_int_equal(run(cmd, out, sizeof(out)), 0);
    assert_non_null(strstr(out, ": OK"));
    snprintf(cmd, sizeof(cmd), "/usr/bin/openssl verify -CAfile %s -purpose sslclient %s",
             p.ca_cert, p.srv_cert);
    assert_int_equal(run(cmd, out, sizeof(out)), 0);
    snprintf(cmd, sizeof(cmd),
             "/usr/bin/openssl verify -x509_strict -crl_check -CAfile %s -CRLfile %s "
             "-purpose sslserver %s",
             p.ca_cert, p.crl, p.srv_cert);
    assert_int_equal(run(cmd, out, sizeof(out)), 0);
    assert_non_null(strstr(out, ": OK"));
    snprintf(cmd, sizeof(cmd), "/usr/bin/openssl crl -in %s -noout -verify -CAfile %s", p.crl,
             p.ca_cert);
    assert_int_equal(run(cmd, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "verify OK"));

    assert_int_equal(pki_revoke(p.ca_cert, p.ca_key, p.crl, p.srv_cert, err, sizeof(err)), 0);
    snprintf(cmd, sizeof(cmd), "/usr/bin/openssl verify -crl_check -CAfile %s -CRLfile %s %s",
             p.ca_cert, p.crl, p.srv_cert);
    assert_int_not_equal(run(cmd, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "certificate revoked"));
    snprintf(cmd, sizeof(cmd), "/usr/bin/openssl crl -in %s -noout -text", p.crl);
    assert_int_equal(run(cmd, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "CRL Number"));
    assert_non_null(strstr(out, "Revoked Certificates:"));
    paths_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_default_ecdsa),
        cmocka_unit_test(test_create_rsa_without_ip),
        cmocka_unit_test(test_create_ipv6),
        cmocka_unit_test(test_create_rejects_bad_input),
        cmocka_unit_test(test_create_long_domain),
        cmocka_unit_test(test_create_refuses_existing),
        cmocka_unit_test(test_create_failure_midway_leaves_nothing),
        cmocka_unit_test(test_create_unwritable_dir),
        cmocka_unit_test(test_issue),
        cmocka_unit_test(test_revoke),
        cmocka_unit_test(test_csr),
        cmocka_unit_test(test_key_type_names),
        cmocka_unit_test(test_openssl_cli_interop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
