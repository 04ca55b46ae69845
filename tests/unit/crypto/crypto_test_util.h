/*
 * Helpers for the crypto/tls unit tests. They use OpenSSL directly, not the
 * code under test, so that what the tests check is checked independently.
 */
#ifndef PARLEY_TESTS_CRYPTO_TEST_UTIL_H
#define PARLEY_TESTS_CRYPTO_TEST_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

static inline char *tu_tmpdir(void)
{
    char tmpl[] = "/tmp/parley-crypto-XXXXXX";
    char *d = mkdtemp(tmpl);
    return d != NULL ? strdup(d) : NULL;
}

static inline int tu_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        return rmdir(path);
    return unlink(path);
}

static inline void tu_rmtree(const char *dir)
{
    if (dir != NULL)
        nftw(dir, tu_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static inline char *tu_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p != NULL)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static inline bool tu_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static inline unsigned tu_mode(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return 0xffffffffu;
    return (unsigned)(st.st_mode & 07777);
}

/* Number of entries in a directory, "." and ".." excluded; -1 if absent. */
static inline int tu_count_entries(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "ls -A '%s' 2>/dev/null | wc -l", dir);
    if (!tu_exists(dir))
        return -1;
    FILE *f = popen(cmd, "r");
    int n = -1;
    if (f != NULL) {
        if (fscanf(f, "%d", &n) != 1)
            n = -1;
        pclose(f);
    }
    return n;
}

static inline char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0;
    if (f == NULL)
        return NULL;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = (n + 4096 + 1) * 2;
            char *nb = realloc(buf, cap);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, 4096, f);
        n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    if (len != NULL)
        *len = n;
    return buf;
}

static inline int tu_write_file(const char *path, const char *data, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0)
        return -errno;
    size_t n = strlen(data);
    ssize_t w = write(fd, data, n);
    close(fd);
    if (chmod(path, mode) != 0)
        return -errno;
    return w == (ssize_t)n ? 0 : -EIO;
}

static inline X509 *tu_load_cert(const char *path)
{
    BIO *b = BIO_new_file(path, "r");
    X509 *x = b != NULL ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    return x;
}

static inline EVP_PKEY *tu_load_key(const char *path)
{
    BIO *b = BIO_new_file(path, "r");
    EVP_PKEY *k = b != NULL ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    return k;
}

static inline X509_CRL *tu_load_crl(const char *path)
{
    BIO *b = BIO_new_file(path, "r");
    X509_CRL *c = b != NULL ? PEM_read_bio_X509_CRL(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    return c;
}

static inline int tu_write_cert(const char *path, X509 *x)
{
    BIO *b = BIO_new_file(path, "w");
    int ok = b != NULL && PEM_write_bio_X509(b, x);
    BIO_free(b);
    return ok ? 0 : -EIO;
}

static inline int tu_write_key(const char *path, EVP_PKEY *k, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        return -errno;
    close(fd);
    BIO *b = BIO_new_file(path, "w");
    int ok = b != NULL && PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
    BIO_free(b);
    if (chmod(path, mode) != 0)
        return -errno;
    return ok ? 0 : -EIO;
}

/*
 * X509_verify_cert of leaf against ca as the only trust anchor, for an SSL
 * purpose (X509_PURPOSE_SSL_SERVER / _CLIENT), with CRL checking when crl
 * is given. Returns the X509_V_ code (X509_V_OK on success).
 */
static inline int tu_verify(X509 *ca, X509 *leaf, X509_CRL *crl, int purpose)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int code = -1;
    if (store == NULL || ctx == NULL || !X509_STORE_add_cert(store, ca))
        goto out;
    if (crl != NULL) {
        if (!X509_STORE_add_crl(store, crl))
            goto out;
        X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
    }
    if (!X509_STORE_CTX_init(ctx, store, leaf, NULL) || !X509_STORE_CTX_set_purpose(ctx, purpose))
        goto out;
    code = X509_verify_cert(ctx) == 1 ? X509_V_OK : X509_STORE_CTX_get_error(ctx);
out:
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    ERR_clear_error();
    return code;
}

/* "DNS:x", "IP:1.2.3.4", "URI:sip:x"; the DNS/URI bytes go in as given,
 * control characters included, to test how odd certificates are read. */
static inline GENERAL_NAMES *tu_sans(const char *const *sans)
{
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    for (size_t i = 0; sans != NULL && sans[i] != NULL; i++) {
        GENERAL_NAME *gn = GENERAL_NAME_new();
        const char *s = sans[i];
        if (strncmp(s, "DNS:", 4) == 0 || strncmp(s, "URI:", 4) == 0) {
            ASN1_IA5STRING *v = ASN1_IA5STRING_new();
            ASN1_STRING_set(v, s + 4, (int)strlen(s + 4));
            GENERAL_NAME_set0_value(gn, s[0] == 'D' ? GEN_DNS : GEN_URI, v);
        } else if (strncmp(s, "IP:", 3) == 0) {
            GENERAL_NAME_set0_value(gn, GEN_IPADD, a2i_IPADDRESS(s + 3));
        } else {
            abort();
        }
        sk_GENERAL_NAME_push(gens, gn);
    }
    return gens;
}

/*
 * A certificate built by hand: key's public half, subject CN=cn (or empty),
 * the given SANs (NULL: no extension), validity [nb, na], signed by
 * signer_key as issuer (NULL: self-signed).
 */
static inline X509 *tu_make_cert(EVP_PKEY *key, EVP_PKEY *signer_key, X509 *issuer, const char *cn,
                                 const char *const *sans, time_t nb, time_t na)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    if (cn != NULL)
        X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8, (const unsigned char *)cn,
                                   -1, -1, 0);
    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), (long)(rand() & 0x7fffffff) + 1);
    ASN1_TIME_set(X509_getm_notBefore(x), nb);
    ASN1_TIME_set(X509_getm_notAfter(x), na);
    X509_set_subject_name(x, name);
    X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : name);
    X509_set_pubkey(x, key);
    if (sans != NULL) {
        GENERAL_NAMES *gens = tu_sans(sans);
        X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT);
        GENERAL_NAMES_free(gens);
    }
    X509_sign(x, signer_key != NULL ? signer_key : key, EVP_sha256());
    X509_NAME_free(name);
    return x;
}

static inline EVP_PKEY *tu_ec_key(void)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

#endif
