#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "crypto/pki.h"

/* Where keys are made and algorithms fetched (pki_init; crypto/fips sets
 * it at start): written before use, read-only afterwards. The defaults are
 * OpenSSL's default context, for tests. */
static OSSL_LIB_CTX *g_libctx;
static char *g_propq;
static bool g_restricted;
static EVP_MD *g_sha256; /* fetched at first use from g_libctx */

/* Certificates start an hour in the past so that a peer whose clock is a
 * little behind does not reject a certificate made a moment ago. */
#define PKI_SKEW_SECONDS 3600
#define PKI_MAX_DAYS     36500
/* Keys and certificates are a few KiB; a bound stops a misconfigured path
 * (a log file, a device) from being read forever. CRLs grow with use. */
#define PKI_MAX_PEM_FILE (1024 * 1024)
#define PKI_MAX_CRL_FILE (64 * 1024 * 1024)
#define PKI_CN_MAX       64 /* ub-common-name, RFC 5280 */
#define PKI_CA_CN_PREFIX "Parley development CA"

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static const char *ossl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;
    return r != NULL ? r : "no detail from OpenSSL";
}

void pki_cleanup(void)
{
    EVP_MD_free(g_sha256);
    g_sha256 = NULL;
    free(g_propq);
    g_propq = NULL;
    g_libctx = NULL;
    g_restricted = false;
}

int pki_init(OSSL_LIB_CTX *libctx, const char *propq, bool restricted)
{
    pki_cleanup();
    if (propq && !(g_propq = strdup(propq)))
        return -ENOMEM;
    g_libctx = libctx;
    g_restricted = restricted;
    return 0;
}

int pki_key_type_parse(const char *name, enum pki_key_type *out)
{
    static const struct {
        const char *name;
        enum pki_key_type type;
    } names[] = {
        {"ecdsa", PKI_KEY_ECDSA_P256},      {"ec", PKI_KEY_ECDSA_P256},
        {"p256", PKI_KEY_ECDSA_P256},       {"p-256", PKI_KEY_ECDSA_P256},
        {"ecdsa-p256", PKI_KEY_ECDSA_P256}, {"rsa", PKI_KEY_RSA_2048},
        {"rsa2048", PKI_KEY_RSA_2048},      {"rsa-2048", PKI_KEY_RSA_2048},
    };
    if (name == NULL)
        return -EINVAL;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(name, names[i].name) == 0) {
            *out = names[i].type;
            return 0;
        }
    }
    return -EINVAL;
}

const char *pki_key_type_name(enum pki_key_type type)
{
    switch (type) {
    case PKI_KEY_ECDSA_P256:
        return "ECDSA P-256";
    case PKI_KEY_RSA_2048:
        return "RSA 2048";
    }
    return "unknown";
}

/* ---- names ---- */

/* LDH host names only: the names go into certificates that strangers'
 * software parses, so nothing clever (no underscores, no IDN in U-labels,
 * no trailing dot). A numeric last label is refused so that an IPv4 literal
 * passed as a name is caught. */
static bool dns_name_valid(const char *name, bool allow_wildcard)
{
    size_t len = strlen(name);
    if (allow_wildcard && strncmp(name, "*.", 2) == 0) {
        name += 2;
        len -= 2;
        /* "*.test" would cover a whole top-level domain. */
        if (strchr(name, '.') == NULL)
            return false;
    }
    if (len == 0 || len > 253)
        return false;
    const char *label = name;
    bool all_digits = true;
    for (const char *p = name;; p++) {
        if (*p == '.' || *p == '\0') {
            size_t n = (size_t)(p - label);
            if (n == 0 || n > 63 || label[0] == '-' || p[-1] == '-')
                return false;
            if (*p == '\0')
                return !all_digits;
            label = p + 1;
            all_digits = true;
            continue;
        }
        if (!isalnum((unsigned char)*p) && *p != '-')
            return false;
        if (!isdigit((unsigned char)*p))
            all_digits = false;
    }
}

static bool ip_literal_valid(const char *ip)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, ip, buf) == 1 || inet_pton(AF_INET6, ip, buf) == 1;
}

static void ascii_lower(char *s)
{
    for (; *s != '\0'; s++)
        *s = (char)tolower((unsigned char)*s);
}

static int path_join(char *out, size_t outlen, const char *dir, const char *name)
{
    size_t dlen = strlen(dir);
    while (dlen > 1 && dir[dlen - 1] == '/')
        dlen--;
    int n = snprintf(out, outlen, "%.*s/%s", (int)dlen, dir, name);
    return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

/* ---- files ---- */

static int dir_of(const char *path, char *out, size_t outlen)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return snprintf(out, outlen, ".") >= (int)outlen ? -ENAMETOOLONG : 0;
    if (slash == path)
        return snprintf(out, outlen, "/") >= (int)outlen ? -ENAMETOOLONG : 0;
    int n = snprintf(out, outlen, "%.*s", (int)(slash - path), path);
    return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

/* A rename that has only happened once the directory is on disk. */
static int dir_sync(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = 0;
    /* Some file systems cannot sync a directory; that is not our failure. */
    if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS)
        rc = -errno;
    close(fd);
    return rc;
}

static int rename_noreplace(const char *from, const char *to)
{
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -errno;
    /* File systems without RENAME_NOREPLACE: link() refuses to replace too. */
    if (link(from, to) != 0)
        return -errno;
    unlink(from);
    return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (w == 0)
            return -EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/*
 * Writes the contents of a memory BIO to path through a temporary file in
 * the same directory that is created O_EXCL with the final mode from the
 * start (so a key is never readable by others, not even for a moment),
 * fsync'd, renamed into place and followed by a directory fsync. With
 * replace false an existing path is an error (-EEXIST), checked atomically
 * by the rename itself. *placed (may be NULL) says whether path now holds
 * the new file, which a failed directory sync leaves in place.
 */
static int file_write_bio(const char *path, BIO *data, mode_t mode, bool replace, bool *placed,
                          char *err, size_t errlen)
{
    char dir[PATH_MAX], tmp[PATH_MAX];
    int fd = -1, rc;
    bool have_tmp = false;
    char *p = NULL;
    long len = BIO_get_mem_data(data, &p);

    if (placed != NULL)
        *placed = false;
    if (len < 0 || (len > 0 && p == NULL)) {
        rc = -EINVAL;
        seterr(err, errlen, "cannot write %s: no data", path);
        goto out;
    }
    rc = dir_of(path, dir, sizeof(dir));
    if (rc < 0) {
        seterr(err, errlen, "cannot write %s: path too long", path);
        goto out;
    }
    const char *base = strrchr(path, '/');
    base = base != NULL ? base + 1 : path;
    for (int tries = 0; tries < 8; tries++) {
        unsigned char rnd[6];
        if (RAND_bytes_ex(g_libctx, rnd, sizeof(rnd), 0) != 1) {
            rc = -EIO;
            seterr(err, errlen, "cannot write %s: no random bytes: %s", path, ossl_reason());
            goto out;
        }
        int n = snprintf(tmp, sizeof(tmp), "%s/.%s.tmp-%02x%02x%02x%02x%02x%02x", dir, base, rnd[0],
                         rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
        if (n < 0 || (size_t)n >= sizeof(tmp)) {
            rc = -ENAMETOOLONG;
            seterr(err, errlen, "cannot write %s: path too long", path);
            goto out;
        }
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd >= 0 || errno != EEXIST)
            break;
    }
    if (fd < 0) {
        rc = -errno;
        seterr(err, errlen, "cannot create %s: %s", path, strerror(errno));
        goto out;
    }
    have_tmp = true;
    /* The umask may have narrowed the mode; make it exactly what we mean. */
    if (fchmod(fd, mode) != 0) {
        rc = -errno;
        seterr(err, errlen, "cannot set mode of %s: %s", path, strerror(errno));
        goto out;
    }
    rc = write_all(fd, p, (size_t)len);
    if (rc < 0) {
        seterr(err, errlen, "cannot write %s: %s", path, strerror(-rc));
        goto out;
    }
    if (fsync(fd) != 0) {
        rc = -errno;
        seterr(err, errlen, "cannot sync %s: %s", path, strerror(errno));
        goto out;
    }
    int cfd = fd;
    fd = -1;
    if (close(cfd) != 0) {
        rc = -errno;
        seterr(err, errlen, "cannot write %s: %s", path, strerror(errno));
        goto out;
    }
    if (replace)
        rc = rename(tmp, path) == 0 ? 0 : -errno;
    else
        rc = rename_noreplace(tmp, path);
    if (rc < 0) {
        if (rc == -EEXIST)
            seterr(err, errlen, "%s already exists; refusing to overwrite it", path);
        else
            seterr(err, errlen, "cannot rename into %s: %s", path, strerror(-rc));
        goto out;
    }
    have_tmp = false;
    if (placed != NULL)
        *placed = true;
    rc = dir_sync(dir);
    if (rc < 0) {
        seterr(err, errlen, "cannot sync directory %s after writing %s: %s", dir, path,
               strerror(-rc));
        goto out;
    }
out:
    if (fd >= 0)
        close(fd);
    if (have_tmp)
        unlink(tmp);
    return rc;
}

/* Files made so far by one call, removed again if the call fails. */
struct made_files {
    char paths[6][PATH_MAX];
    int n;
};

static void made_add(struct made_files *m, const char *path)
{
    if (m->n < (int)(sizeof(m->paths) / sizeof(m->paths[0])))
        snprintf(m->paths[m->n++], PATH_MAX, "%s", path);
}

static void made_undo(struct made_files *m)
{
    for (int i = m->n - 1; i >= 0; i--)
        unlink(m->paths[i]);
    m->n = 0;
}

static int write_new_file(struct made_files *m, const char *path, BIO *data, mode_t mode, char *err,
                          size_t errlen)
{
    bool placed = false;
    int rc = file_write_bio(path, data, mode, false, &placed, err, errlen);
    if (placed)
        made_add(m, path);
    return rc;
}

static int refuse_existing(const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(path, &st) == 0) {
        seterr(err, errlen, "%s already exists; refusing to overwrite it", path);
        return -EEXIST;
    }
    if (errno == ENOENT)
        return 0;
    int rc = -errno;
    seterr(err, errlen, "cannot check %s: %s", path, strerror(errno));
    return rc;
}

/* Opens a file for a PEM reader, refusing what cannot be one. */
static int file_open_read(const char *path, const char *what, off_t max, bool private_key,
                          BIO **out, char *err, size_t errlen)
{
    struct stat st;
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        rc = -errno;
        if (errno == ENOENT)
            seterr(err, errlen, "%s %s does not exist", what, path);
        else if (errno == EACCES)
            seterr(err, errlen, "%s %s is not readable by this user (uid %u)", what, path,
                   (unsigned)geteuid());
        else
            seterr(err, errlen, "cannot open %s %s: %s", what, path, strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        seterr(err, errlen, "cannot stat %s %s: %s", what, path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = -EINVAL;
        seterr(err, errlen, "%s %s is not a regular file", what, path);
        goto out;
    }
    if (private_key && (st.st_mode & 077) != 0) {
        const char *fault = (st.st_mode & S_IROTH)   ? "readable by others"
                            : (st.st_mode & S_IWOTH) ? "writable by others"
                            : (st.st_mode & S_IRGRP) ? "readable by its group"
                            : (st.st_mode & S_IWGRP) ? "writable by its group"
                                                     : "accessible by group or others";
        rc = -EPERM;
        seterr(err, errlen, "%s %s is %s (mode %04o); chmod 600 it", what, path, fault,
               (unsigned)(st.st_mode & 07777));
        goto out;
    }
    if (st.st_size > max) {
        rc = -EINVAL;
        seterr(err, errlen, "%s %s is too large (%lld bytes) to be one", what, path,
               (long long)st.st_size);
        goto out;
    }
    *out = BIO_new_fd(fd, BIO_CLOSE);
    if (*out == NULL) {
        rc = -ENOMEM;
        seterr(err, errlen, "cannot read %s %s: out of memory", what, path);
        goto out;
    }
    fd = -1;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

struct pass_probe {
    bool asked;
};

/* Refuses every passphrase request: a daemon must never block on a prompt,
 * and the flag lets us say why the key did not load. */
static int pass_refuse(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    ((struct pass_probe *)u)->asked = true;
    return -1;
}

static int key_load(const char *path, const char *what, EVP_PKEY **out, char *err, size_t errlen)
{
    BIO *b = NULL;
    struct pass_probe probe = {false};
    int rc = file_open_read(path, what, PKI_MAX_PEM_FILE, true, &b, err, errlen);
    if (rc < 0)
        goto out;
    *out = PEM_read_bio_PrivateKey_ex(b, NULL, pass_refuse, &probe, g_libctx, g_propq);
    if (*out == NULL) {
        rc = -EINVAL;
        if (probe.asked)
            seterr(err, errlen, "%s %s is encrypted with a passphrase; Parley needs it unencrypted",
                   what, path);
        else
            seterr(err, errlen, "%s %s is not a PEM private key (%s)", what, path, ossl_reason());
        goto out;
    }
out:
    BIO_free(b);
    return rc;
}

static int cert_load(const char *path, const char *what, X509 **out, char *err, size_t errlen)
{
    BIO *b = NULL;
    int rc = file_open_read(path, what, PKI_MAX_PEM_FILE, false, &b, err, errlen);
    if (rc < 0)
        goto out;
    /* made on the context first: its signature checks fetch from there */
    X509 *x = X509_new_ex(g_libctx, g_propq);
    *out = x != NULL ? PEM_read_bio_X509(b, &x, NULL, NULL) : NULL;
    if (*out == NULL) {
        X509_free(x);
        rc = -EINVAL;
        seterr(err, errlen, "%s %s is not a PEM certificate (%s)", what, path, ossl_reason());
        goto out;
    }
out:
    BIO_free(b);
    return rc;
}

int pki_key_load(const char *key_path, EVP_PKEY **out, char *err, size_t errlen)
{
    if (key_path == NULL || out == NULL) {
        seterr(err, errlen, "no private key path given");
        return -EINVAL;
    }
    *out = NULL;
    ERR_set_mark();
    int rc = key_load(key_path, "private key", out, err, errlen);
    ERR_pop_to_mark();
    return rc;
}

int pki_cert_load(const char *cert_path, X509 **out, char *err, size_t errlen)
{
    if (cert_path == NULL || out == NULL) {
        seterr(err, errlen, "no certificate path given");
        return -EINVAL;
    }
    *out = NULL;
    ERR_set_mark();
    int rc = cert_load(cert_path, "certificate", out, err, errlen);
    ERR_pop_to_mark();
    return rc;
}

/* ---- building certificates ---- */

static EVP_PKEY *key_generate(enum pki_key_type type)
{
    switch (type) {
    case PKI_KEY_ECDSA_P256:
        return EVP_PKEY_Q_keygen(g_libctx, g_propq, "EC", "P-256");
    case PKI_KEY_RSA_2048:
        return EVP_PKEY_Q_keygen(g_libctx, g_propq, "RSA", (size_t)2048);
    }
    return NULL;
}

static bool key_type_valid(enum pki_key_type type)
{
    return type == PKI_KEY_ECDSA_P256 || type == PKI_KEY_RSA_2048;
}

/* Keys such as Ed25519 fix their own digest; X509_sign wants NULL then. */
static const EVP_MD *sign_md(EVP_PKEY *key)
{
    int nid = NID_undef;
    if (EVP_PKEY_get_default_digest_nid(key, &nid) == 2 && nid == NID_undef)
        return NULL;
    if (g_sha256 == NULL)
        g_sha256 = EVP_MD_fetch(g_libctx, "SHA2-256", g_propq);
    return g_sha256;
}

/* Under a restricted mode (security.fips), the keys Parley signs with must
 * be approved ones: EC on P-256 or P-384, RSA of 2048 bits or more. */
static int key_approved(EVP_PKEY *key, const char *what, const char *path, char *err, size_t errlen)
{
    char group[32] = "";
    size_t glen = 0;

    if (!g_restricted)
        return 0;
    if (EVP_PKEY_is_a(key, "EC") &&
        EVP_PKEY_get_group_name(key, group, sizeof(group), &glen) == 1 &&
        (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0 ||
         strcmp(group, "secp384r1") == 0 || strcmp(group, "P-384") == 0))
        return 0;
    if ((EVP_PKEY_is_a(key, "RSA") || EVP_PKEY_is_a(key, "RSA-PSS")) &&
        EVP_PKEY_get_bits(key) >= 2048)
        return 0;
    ERR_clear_error();
    seterr(err, errlen,
           "%s %s is not an approved key under security.fips (EC P-256/P-384 or RSA of 2048 "
           "bits or more are)",
           what, path);
    return -EINVAL;
}

static int serial_random(ASN1_INTEGER **out)
{
    unsigned char b[16];
    BIGNUM *bn = NULL;
    int rc = 0;
    if (RAND_bytes_ex(g_libctx, b, sizeof(b), 0) != 1) {
        rc = -EIO;
        goto out;
    }
    /* Positive, and a non-zero top byte keeps the DER encoding 16 bytes. */
    b[0] = (unsigned char)((b[0] & 0x7f) | 0x40);
    bn = BN_bin2bn(b, sizeof(b), NULL);
    *out = bn != NULL ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
    if (*out == NULL)
        rc = -ENOMEM;
out:
    BN_free(bn);
    return rc;
}

static int name_with_cn(const char *cn, X509_NAME **out)
{
    *out = X509_NAME_new();
    if (*out == NULL)
        return -ENOMEM;
    if (cn != NULL && cn[0] != '\0' &&
        !X509_NAME_add_entry_by_NID(*out, NID_commonName, MBSTRING_UTF8, (const unsigned char *)cn,
                                    -1, -1, 0))
        return -EINVAL;
    return 0;
}

static int x509_base(X509 *x, EVP_PKEY *key, const X509_NAME *subject, const X509_NAME *issuer,
                     time_t now, int days)
{
    ASN1_INTEGER *serial = NULL;
    int rc = serial_random(&serial);
    if (rc < 0)
        goto out;
    if (!X509_set_version(x, X509_VERSION_3) || !X509_set_serialNumber(x, serial) ||
        X509_time_adj_ex(X509_getm_notBefore(x), 0, -PKI_SKEW_SECONDS, &now) == NULL ||
        X509_time_adj_ex(X509_getm_notAfter(x), days, 0, &now) == NULL ||
        !X509_set_subject_name(x, subject) || !X509_set_issuer_name(x, issuer) ||
        !X509_set_pubkey(x, key))
        rc = -ENOMEM;
out:
    ASN1_INTEGER_free(serial);
    return rc;
}

static int x509_ext_add(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    if (e == NULL)
        return -EINVAL;
    int ok = X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    return ok ? 0 : -ENOMEM;
}

static int san_push(GENERAL_NAMES *gens, int type, ASN1_STRING *value)
{
    GENERAL_NAME *gn = GENERAL_NAME_new();
    if (gn == NULL) {
        ASN1_STRING_free(value);
        return -ENOMEM;
    }
    GENERAL_NAME_set0_value(gn, type, value);
    if (sk_GENERAL_NAME_push(gens, gn) <= 0) {
        GENERAL_NAME_free(gn);
        return -ENOMEM;
    }
    return 0;
}

/* Names are built as structures, not as "DNS:a,IP:b" configuration text,
 * so that nothing in a name can be read as syntax. */
static int san_build(const char *const *dns, const char *const *ips, GENERAL_NAMES **out)
{
    int rc = 0;
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    if (gens == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; dns != NULL && dns[i] != NULL; i++) {
        ASN1_IA5STRING *s = ASN1_IA5STRING_new();
        if (s == NULL || !ASN1_STRING_set(s, dns[i], (int)strlen(dns[i]))) {
            ASN1_IA5STRING_free(s);
            rc = -ENOMEM;
            goto out;
        }
        rc = san_push(gens, GEN_DNS, s);
        if (rc < 0)
            goto out;
    }
    for (size_t i = 0; ips != NULL && ips[i] != NULL; i++) {
        ASN1_OCTET_STRING *o = a2i_IPADDRESS(ips[i]);
        if (o == NULL) {
            rc = -EINVAL;
            goto out;
        }
        rc = san_push(gens, GEN_IPADD, o);
        if (rc < 0)
            goto out;
    }
out:
    if (rc < 0) {
        GENERAL_NAMES_free(gens);
        gens = NULL;
    }
    *out = gens;
    return rc;
}

/* The authority key identifier by key id when the CA has one (ours always
 * do), else by issuer and serial, so CAs from elsewhere work too. */
static const char *aki_spec(X509 *ca)
{
    return X509_get_ext_by_NID(ca, NID_subject_key_identifier, -1) >= 0 ? "keyid:always"
                                                                        : "issuer:always";
}

static int ca_build(EVP_PKEY *key, const char *cn, time_t now, X509 **out)
{
    X509_NAME *name = NULL;
    X509V3_CTX ctx;
    X509 *x = X509_new_ex(g_libctx, g_propq);
    int rc = x == NULL ? -ENOMEM : name_with_cn(cn, &name);
    if (rc < 0)
        goto out;
    rc = x509_base(x, key, name, name, now, PKI_CA_DAYS);
    if (rc < 0)
        goto out;
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    /* Self-signed: the authority key id comes from our own key. */
    if (!X509V3_set_issuer_pkey(&ctx, key)) {
        rc = -ENOMEM;
        goto out;
    }
    if ((rc = x509_ext_add(x, &ctx, NID_basic_constraints, "critical,CA:TRUE")) < 0 ||
        (rc = x509_ext_add(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign")) < 0 ||
        (rc = x509_ext_add(x, &ctx, NID_subject_key_identifier, "hash")) < 0 ||
        (rc = x509_ext_add(x, &ctx, NID_authority_key_identifier, "keyid:always")) < 0)
        goto out;
    if (X509_sign(x, key, sign_md(key)) <= 0) {
        rc = -EINVAL;
        goto out;
    }
out:
    X509_NAME_free(name);
    if (rc < 0) {
        X509_free(x);
        x = NULL;
    }
    *out = x;
    return rc;
}

struct leaf_spec {
    const char *cn; /* NULL: no CN, and the subjectAltName becomes critical */
    const char *const *dns;
    const char *const *ips;
    int days;
};

static int leaf_build(X509 *ca, EVP_PKEY *ca_key, EVP_PKEY *key, const struct leaf_spec *spec,
                      time_t now, X509 **out)
{
    X509_NAME *name = NULL;
    GENERAL_NAMES *gens = NULL;
    X509V3_CTX ctx;
    X509 *x = X509_new_ex(g_libctx, g_propq);
    int rc = x == NULL ? -ENOMEM : name_with_cn(spec->cn, &name);
    if (rc < 0)
        goto out;
    rc = x509_base(x, key, name, X509_get_subject_name(ca), now, spec->days);
    if (rc < 0)
        goto out;
    X509V3_set_ctx(&ctx, ca, x, NULL, NULL, 0);
    /* keyEncipherment only means something for RSA key transport. */
    const char *ku = EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA
                         ? "critical,digitalSignature,keyEncipherment"
                         : "critical,digitalSignature";
    if ((rc = x509_ext_add(x, &ctx, NID_basic_constraints, "critical,CA:FALSE")) < 0 ||
        (rc = x509_ext_add(x, &ctx, NID_key_usage, ku)) < 0 ||
        (rc = x509_ext_add(x, &ctx, NID_ext_key_usage, "serverAuth,clientAuth")) < 0 ||
        (rc = x509_ext_add(x, &ctx, NID_subject_key_identifier, "hash")) < 0 ||
        (rc = x509_ext_add(x, &ctx, NID_authority_key_identifier, aki_spec(ca))) < 0)
        goto out;
    rc = san_build(spec->dns, spec->ips, &gens);
    if (rc < 0)
        goto out;
    /* RFC 5280 4.2.1.6: with an empty subject the names must be critical. */
    int critical = spec->cn == NULL || spec->cn[0] == '\0';
    if (!X509_add1_ext_i2d(x, NID_subject_alt_name, gens, critical, X509V3_ADD_DEFAULT)) {
        rc = -ENOMEM;
        goto out;
    }
    if (X509_sign(x, ca_key, sign_md(ca_key)) <= 0) {
        rc = -EINVAL;
        goto out;
    }
out:
    X509_NAME_free(name);
    GENERAL_NAMES_free(gens);
    if (rc < 0) {
        X509_free(x);
        x = NULL;
    }
    *out = x;
    return rc;
}

static int asn1_time_set(int (*set)(X509_CRL *, const ASN1_TIME *), X509_CRL *crl, time_t now,
                         int days)
{
    ASN1_TIME *t = ASN1_TIME_adj(NULL, now, days, 0);
    int ok = t != NULL && set(crl, t);
    ASN1_TIME_free(t);
    return ok ? 0 : -ENOMEM;
}

/* A fresh CRL: the entries of old (may be NULL), plus add_serial (may be
 * NULL), numbered number. Rebuilding rather than editing the old CRL keeps
 * nothing of it but its entries. */
static int crl_build(X509 *ca, EVP_PKEY *ca_key, const STACK_OF(X509_REVOKED) * old,
                     ASN1_INTEGER *add_serial, int64_t number, time_t now, X509_CRL **out)
{
    X509V3_CTX ctx;
    ASN1_INTEGER *num = NULL;
    X509_REVOKED *rev = NULL;
    X509_EXTENSION *aki = NULL;
    int rc = 0;
    X509_CRL *crl = X509_CRL_new_ex(g_libctx, g_propq);
    if (crl == NULL || !X509_CRL_set_version(crl, X509_CRL_VERSION_2) ||
        !X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca))) {
        rc = -ENOMEM;
        goto out;
    }
    if ((rc = asn1_time_set(X509_CRL_set1_lastUpdate, crl, now, 0)) < 0 ||
        (rc = asn1_time_set(X509_CRL_set1_nextUpdate, crl, now, PKI_CRL_DAYS)) < 0)
        goto out;
    for (int i = 0; i < sk_X509_REVOKED_num(old); i++) {
        X509_REVOKED *copy = X509_REVOKED_dup(sk_X509_REVOKED_value(old, i));
        if (copy == NULL || !X509_CRL_add0_revoked(crl, copy)) {
            X509_REVOKED_free(copy);
            rc = -ENOMEM;
            goto out;
        }
    }
    if (add_serial != NULL) {
        ASN1_TIME *t = ASN1_TIME_adj(NULL, now, 0, 0);
        rev = X509_REVOKED_new();
        int ok = t != NULL && rev != NULL && X509_REVOKED_set_serialNumber(rev, add_serial) &&
                 X509_REVOKED_set_revocationDate(rev, t);
        ASN1_TIME_free(t);
        if (!ok || !X509_CRL_add0_revoked(crl, rev)) {
            rc = -ENOMEM;
            goto out;
        }
        rev = NULL;
    }
    num = ASN1_INTEGER_new();
    if (num == NULL || !ASN1_INTEGER_set_int64(num, number) ||
        !X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, X509V3_ADD_DEFAULT)) {
        rc = -ENOMEM;
        goto out;
    }
    X509V3_set_ctx(&ctx, ca, NULL, NULL, crl, 0);
    aki = X509V3_EXT_conf_nid(NULL, &ctx, NID_authority_key_identifier, aki_spec(ca));
    if (aki == NULL || !X509_CRL_add_ext(crl, aki, -1)) {
        rc = -ENOMEM;
        goto out;
    }
    if (!X509_CRL_sort(crl) || X509_CRL_sign(crl, ca_key, sign_md(ca_key)) <= 0) {
        rc = -EINVAL;
        goto out;
    }
out:
    ASN1_INTEGER_free(num);
    X509_REVOKED_free(rev);
    X509_EXTENSION_free(aki);
    if (rc < 0) {
        X509_CRL_free(crl);
        crl = NULL;
    }
    *out = crl;
    return rc;
}

/* ---- PEM in memory ---- */

/* Private keys go through a BIO whose buffer is cleansed when freed. */
static BIO *pem_key(EVP_PKEY *key)
{
    BIO *b = BIO_new(BIO_s_secmem());
    if (b != NULL && !PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL)) {
        BIO_free(b);
        b = NULL;
    }
    return b;
}

static BIO *pem_cert(X509 *x)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (b != NULL && !PEM_write_bio_X509(b, x)) {
        BIO_free(b);
        b = NULL;
    }
    return b;
}

static BIO *pem_crl(X509_CRL *crl)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (b != NULL && !PEM_write_bio_X509_CRL(b, crl)) {
        BIO_free(b);
        b = NULL;
    }
    return b;
}

static void time_text(const ASN1_TIME *t, char *out, size_t outlen)
{
    struct tm tm;
    if (t == NULL || !ASN1_TIME_to_tm(t, &tm) ||
        strftime(out, outlen, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(out, outlen, "(unreadable time)");
}

/* Loads a CA certificate and key and checks they belong together and that
 * the certificate is a CA within its validity. */
static int ca_load(const char *cert_path, const char *key_path, X509 **ca, EVP_PKEY **ca_key,
                   char *err, size_t errlen)
{
    char when[64];
    time_t now = time(NULL);
    int rc = cert_load(cert_path, "CA certificate", ca, err, errlen);
    if (rc < 0)
        return rc;
    rc = key_load(key_path, "CA key", ca_key, err, errlen);
    if (rc < 0)
        return rc;
    rc = key_approved(*ca_key, "CA key", key_path, err, errlen);
    if (rc < 0)
        return rc;
    if (EVP_PKEY_eq(X509_get0_pubkey(*ca), *ca_key) != 1) {
        seterr(err, errlen, "CA key %s does not match CA certificate %s", key_path, cert_path);
        return -EKEYREJECTED;
    }
    if (X509_check_ca(*ca) < 1) {
        seterr(err, errlen, "CA certificate %s is not a CA certificate (basicConstraints)",
               cert_path);
        return -EINVAL;
    }
    if (X509_cmp_time(X509_get0_notAfter(*ca), &now) <= 0) {
        time_text(X509_get0_notAfter(*ca), when, sizeof(when));
        seterr(err, errlen, "CA certificate %s expired on %s", cert_path, when);
        return -EKEYEXPIRED;
    }
    if (X509_cmp_time(X509_get0_notBefore(*ca), &now) >= 0) {
        time_text(X509_get0_notBefore(*ca), when, sizeof(when));
        seterr(err, errlen, "CA certificate %s is not valid until %s", cert_path, when);
        return -EKEYEXPIRED;
    }
    return 0;
}

/* ---- pki_create ---- */

int pki_create(const char *pki_dir, const char *domain, const char *ip_or_null,
               enum pki_key_type type, char *err, size_t errlen)
{
    enum { CA_KEY, CA_CERT, CRL, SRV_KEY, SRV_CERT, NFILES };
    static const char *const names[NFILES] = {PKI_CA_KEY_FILE, PKI_CA_CERT_FILE, PKI_CRL_FILE,
                                              PKI_SERVER_KEY_FILE, PKI_SERVER_CERT_FILE};
    char paths[NFILES][PATH_MAX];
    char dom[256], sipdom[260], ca_cn[PKI_CN_MAX + 1];
    struct made_files made = {.n = 0};
    bool made_dir = false;
    EVP_PKEY *ca_key = NULL, *srv_key = NULL;
    X509 *ca = NULL, *srv = NULL;
    X509_CRL *crl = NULL;
    BIO *pem[NFILES] = {NULL};
    struct stat st;
    int rc = 0;

    ERR_set_mark();
    if (pki_dir == NULL || pki_dir[0] == '\0') {
        rc = -EINVAL;
        seterr(err, errlen, "no PKI directory given");
        goto out;
    }
    if (domain == NULL || strlen(domain) >= sizeof(dom) - 4 || !dns_name_valid(domain, false)) {
        rc = -EINVAL;
        seterr(err, errlen, "'%s' is not a valid SIP domain name (letters, digits, '-', '.')",
               domain != NULL ? domain : "");
        goto out;
    }
    snprintf(dom, sizeof(dom), "%s", domain);
    ascii_lower(dom);
    snprintf(sipdom, sizeof(sipdom), "sip.%s", dom);
    if (!dns_name_valid(sipdom, false)) {
        rc = -EINVAL;
        seterr(err, errlen, "'%s' is too long for a SIP domain name", domain);
        goto out;
    }
    if (ip_or_null != NULL && ip_or_null[0] == '\0')
        ip_or_null = NULL; /* a command line's empty --ip means none */
    if (ip_or_null != NULL && !ip_literal_valid(ip_or_null)) {
        rc = -EINVAL;
        seterr(err, errlen, "'%s' is not an IPv4 or IPv6 address", ip_or_null);
        goto out;
    }
    if (!key_type_valid(type)) {
        rc = -EINVAL;
        seterr(err, errlen, "unknown key type %d", (int)type);
        goto out;
    }
    if (stat(pki_dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
        rc = -ENOTDIR;
        seterr(err, errlen, "%s exists and is not a directory", pki_dir);
        goto out;
    }
    for (int i = 0; i < NFILES; i++) {
        rc = path_join(paths[i], sizeof(paths[i]), pki_dir, names[i]);
        if (rc < 0) {
            seterr(err, errlen, "PKI directory %s: path too long", pki_dir);
            goto out;
        }
        rc = refuse_existing(paths[i], err, errlen);
        if (rc < 0)
            goto out;
    }

    /* Everything is made in memory first, so that a failure in OpenSSL
     * leaves no file behind at all. */
    time_t now = time(NULL);
    if (snprintf(ca_cn, sizeof(ca_cn), PKI_CA_CN_PREFIX " for %s", dom) >= (int)sizeof(ca_cn))
        snprintf(ca_cn, sizeof(ca_cn), PKI_CA_CN_PREFIX);
    const char *dns[] = {sipdom, dom, NULL};
    const char *ips[] = {ip_or_null, NULL};
    struct leaf_spec spec = {
        .cn = strlen(sipdom) <= PKI_CN_MAX ? sipdom : NULL,
        .dns = dns,
        .ips = ips,
        .days = PKI_SERVER_DAYS,
    };
    ca_key = key_generate(type);
    srv_key = key_generate(type);
    if (ca_key == NULL || srv_key == NULL) {
        rc = -ENOMEM;
        seterr(err, errlen, "cannot generate %s keys for %s: %s", pki_key_type_name(type), pki_dir,
               ossl_reason());
        goto out;
    }
    if ((rc = ca_build(ca_key, ca_cn, now, &ca)) < 0 ||
        (rc = crl_build(ca, ca_key, NULL, NULL, 1, now, &crl)) < 0 ||
        (rc = leaf_build(ca, ca_key, srv_key, &spec, now, &srv)) < 0) {
        seterr(err, errlen, "cannot build the certificates for %s: %s", pki_dir, ossl_reason());
        goto out;
    }
    pem[CA_KEY] = pem_key(ca_key);
    pem[CA_CERT] = pem_cert(ca);
    pem[CRL] = pem_crl(crl);
    pem[SRV_KEY] = pem_key(srv_key);
    pem[SRV_CERT] = pem_cert(srv);
    for (int i = 0; i < NFILES; i++) {
        if (pem[i] == NULL) {
            rc = -ENOMEM;
            seterr(err, errlen, "cannot encode %s: %s", paths[i], ossl_reason());
            goto out;
        }
    }

    if (mkdir(pki_dir, 0700) == 0) {
        made_dir = true;
        /* mkdir's mode went through the umask; 0700 is what we promise. */
        if (chmod(pki_dir, 0700) != 0) {
            rc = -errno;
            seterr(err, errlen, "cannot set mode of %s: %s", pki_dir, strerror(errno));
            goto out;
        }
    } else if (errno != EEXIST) {
        rc = -errno;
        seterr(err, errlen, "cannot create PKI directory %s: %s", pki_dir, strerror(errno));
        goto out;
    } else if (stat(pki_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        rc = -ENOTDIR;
        seterr(err, errlen, "%s exists and is not a directory", pki_dir);
        goto out;
    }
    for (int i = 0; i < NFILES; i++) {
        bool secret = i == CA_KEY || i == SRV_KEY;
        rc = write_new_file(&made, paths[i], pem[i], secret ? 0600 : 0644, err, errlen);
        if (rc < 0)
            goto out;
    }
    if (made_dir) {
        /* The new directory's own entry must reach the disk too. */
        char trimmed[PATH_MAX], parent[PATH_MAX];
        size_t n = strlen(pki_dir);
        while (n > 1 && pki_dir[n - 1] == '/')
            n--;
        if (n < sizeof(trimmed)) {
            memcpy(trimmed, pki_dir, n);
            trimmed[n] = '\0';
            if (dir_of(trimmed, parent, sizeof(parent)) == 0)
                dir_sync(parent);
        }
    }
out:
    if (rc < 0) {
        made_undo(&made);
        if (made_dir)
            rmdir(pki_dir);
    }
    for (int i = 0; i < NFILES; i++)
        BIO_free(pem[i]);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(srv_key);
    X509_free(ca);
    X509_free(srv);
    X509_CRL_free(crl);
    ERR_pop_to_mark();
    return rc;
}

/* ---- pki_issue ---- */

static size_t list_len(const char *const *list)
{
    size_t n = 0;
    while (list != NULL && list[n] != NULL)
        n++;
    return n;
}

int pki_issue(const char *ca_cert_path, const char *ca_key_path, const char *out_cert_path,
              const char *out_key_path, const char *const *dns_names, const char *const *ip_names,
              const char *common_name, int days, enum pki_key_type type, char *err, size_t errlen)
{
    struct made_files made = {.n = 0};
    X509 *ca = NULL, *leaf = NULL;
    EVP_PKEY *ca_key = NULL, *key = NULL;
    BIO *key_pem = NULL, *cert_pem = NULL;
    char **lower = NULL;
    size_t ndns = list_len(dns_names);
    int rc = 0;

    ERR_set_mark();
    if (ca_cert_path == NULL || ca_key_path == NULL || out_cert_path == NULL ||
        out_key_path == NULL) {
        rc = -EINVAL;
        seterr(err, errlen, "pki_issue: a CA or output path is missing");
        goto out;
    }
    if (days < 1 || days > PKI_MAX_DAYS) {
        rc = -EINVAL;
        seterr(err, errlen, "%s: validity of %d days is outside 1..%d", out_cert_path, days,
               PKI_MAX_DAYS);
        goto out;
    }
    if (ndns + list_len(ip_names) == 0) {
        rc = -EINVAL;
        seterr(err, errlen, "%s: a certificate needs at least one DNS name or IP address",
               out_cert_path);
        goto out;
    }
    lower = calloc(ndns + 1, sizeof(*lower));
    if (lower == NULL) {
        rc = -ENOMEM;
        seterr(err, errlen, "%s: out of memory", out_cert_path);
        goto out;
    }
    for (size_t i = 0; i < ndns; i++) {
        if (!dns_name_valid(dns_names[i], true)) {
            rc = -EINVAL;
            seterr(err, errlen, "%s: '%s' is not a valid DNS name", out_cert_path, dns_names[i]);
            goto out;
        }
        lower[i] = strdup(dns_names[i]);
        if (lower[i] == NULL) {
            rc = -ENOMEM;
            seterr(err, errlen, "%s: out of memory", out_cert_path);
            goto out;
        }
        ascii_lower(lower[i]);
    }
    for (size_t i = 0; ip_names != NULL && ip_names[i] != NULL; i++) {
        if (!ip_literal_valid(ip_names[i])) {
            rc = -EINVAL;
            seterr(err, errlen, "%s: '%s' is not an IPv4 or IPv6 address", out_cert_path,
                   ip_names[i]);
            goto out;
        }
    }
    const char *cn = common_name;
    if (cn == NULL)
        cn = ndns > 0 ? lower[0] : ip_names[0];
    if (strlen(cn) > PKI_CN_MAX) {
        if (common_name != NULL) {
            rc = -EINVAL;
            seterr(err, errlen, "%s: common name '%s' is longer than %d characters", out_cert_path,
                   common_name, PKI_CN_MAX);
            goto out;
        }
        cn = NULL; /* the names are all in subjectAltName anyway */
    }
    if (!key_type_valid(type)) {
        rc = -EINVAL;
        seterr(err, errlen, "unknown key type %d", (int)type);
        goto out;
    }
    if ((rc = refuse_existing(out_key_path, err, errlen)) < 0 ||
        (rc = refuse_existing(out_cert_path, err, errlen)) < 0)
        goto out;
    rc = ca_load(ca_cert_path, ca_key_path, &ca, &ca_key, err, errlen);
    if (rc < 0)
        goto out;

    struct leaf_spec spec = {
        .cn = cn,
        .dns = (const char *const *)lower,
        .ips = ip_names,
        .days = days,
    };
    key = key_generate(type);
    if (key == NULL) {
        rc = -ENOMEM;
        seterr(err, errlen, "cannot generate a %s key for %s: %s", pki_key_type_name(type),
               out_key_path, ossl_reason());
        goto out;
    }
    rc = leaf_build(ca, ca_key, key, &spec, time(NULL), &leaf);
    if (rc < 0) {
        seterr(err, errlen, "cannot build certificate %s: %s", out_cert_path, ossl_reason());
        goto out;
    }
    key_pem = pem_key(key);
    cert_pem = pem_cert(leaf);
    if (key_pem == NULL || cert_pem == NULL) {
        rc = -ENOMEM;
        seterr(err, errlen, "cannot encode %s: %s", out_cert_path, ossl_reason());
        goto out;
    }
    if ((rc = write_new_file(&made, out_key_path, key_pem, 0600, err, errlen)) < 0 ||
        (rc = write_new_file(&made, out_cert_path, cert_pem, 0644, err, errlen)) < 0)
        goto out;
out:
    if (rc < 0)
        made_undo(&made);
    for (size_t i = 0; lower != NULL && i < ndns; i++)
        free(lower[i]);
    free(lower);
    BIO_free(key_pem);
    BIO_free(cert_pem);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(key);
    X509_free(ca);
    X509_free(leaf);
    ERR_pop_to_mark();
    return rc;
}

/* ---- pki_revoke ---- */

/* A serial as `openssl x509 -serial` ("0A1B") or -text ("0a:1b") prints it,
 * optionally with 0x. NULL when text is not one (so it may be a path). */
static ASN1_INTEGER *serial_parse(const char *text)
{
    char hex[2 * 20 + 1];
    size_t n = 0;
    BIGNUM *bn = NULL;
    ASN1_INTEGER *ai = NULL;
    if (strncasecmp(text, "0x", 2) == 0)
        text += 2;
    for (const char *p = text; *p != '\0'; p++) {
        if (*p == ':')
            continue;
        /* RFC 5280 4.1.2.2: at most 20 octets. */
        if (!isxdigit((unsigned char)*p) || n + 1 >= sizeof(hex))
            return NULL;
        hex[n++] = *p;
    }
    hex[n] = '\0';
    if (n == 0 || !BN_hex2bn(&bn, hex))
        goto out;
    if (!BN_is_zero(bn))
        ai = BN_to_ASN1_INTEGER(bn, NULL);
out:
    BN_free(bn);
    return ai;
}

static bool looks_like_serial(const char *text)
{
    if (strncasecmp(text, "0x", 2) == 0)
        text += 2;
    if (*text == '\0')
        return false;
    for (; *text != '\0'; text++)
        if (!isxdigit((unsigned char)*text) && *text != ':')
            return false;
    return true;
}

static int crl_load(const char *path, X509 *ca, const char *ca_path, X509_CRL **out, char *err,
                    size_t errlen)
{
    BIO *b = NULL;
    int rc = file_open_read(path, "CRL", PKI_MAX_CRL_FILE, false, &b, err, errlen);
    if (rc < 0)
        goto out;
    X509_CRL *crl = X509_CRL_new_ex(g_libctx, g_propq);
    *out = crl != NULL ? PEM_read_bio_X509_CRL(b, &crl, NULL, NULL) : NULL;
    if (*out == NULL) {
        X509_CRL_free(crl);
        rc = -EINVAL;
        seterr(err, errlen, "CRL %s is not a PEM CRL (%s)", path, ossl_reason());
        goto out;
    }
    if (X509_NAME_cmp(X509_CRL_get_issuer(*out), X509_get_subject_name(ca)) != 0 ||
        X509_CRL_verify(*out, X509_get0_pubkey(ca)) != 1) {
        rc = -EINVAL;
        seterr(err, errlen, "CRL %s was not signed by CA %s", path, ca_path);
        goto out;
    }
out:
    BIO_free(b);
    return rc;
}

int pki_revoke(const char *ca_cert_path, const char *ca_key_path, const char *crl_path,
               const char *cert_path_or_serial_hex, char *err, size_t errlen)
{
    X509 *ca = NULL, *cert = NULL;
    EVP_PKEY *ca_key = NULL;
    X509_CRL *crl = NULL, *next = NULL;
    ASN1_INTEGER *serial = NULL, *number = NULL;
    X509_REVOKED *found = NULL;
    BIO *pem = NULL;
    const char *what = cert_path_or_serial_hex;
    int rc = 0;

    ERR_set_mark();
    if (ca_cert_path == NULL || ca_key_path == NULL || crl_path == NULL || what == NULL ||
        what[0] == '\0') {
        rc = -EINVAL;
        seterr(err, errlen, "pki_revoke: a CA path, the CRL path or the certificate is missing");
        goto out;
    }
    rc = ca_load(ca_cert_path, ca_key_path, &ca, &ca_key, err, errlen);
    if (rc < 0)
        goto out;
    rc = crl_load(crl_path, ca, ca_cert_path, &crl, err, errlen);
    if (rc < 0)
        goto out;
    if (looks_like_serial(what)) {
        serial = serial_parse(what);
        if (serial == NULL) {
            rc = -EINVAL;
            seterr(err, errlen, "'%s' is not a certificate serial number (1 to 20 bytes, hex)",
                   what);
            goto out;
        }
    } else {
        rc = cert_load(what, "certificate", &cert, err, errlen);
        if (rc < 0)
            goto out;
        if (X509_check_issued(ca, cert) != X509_V_OK ||
            X509_verify(cert, X509_get0_pubkey(ca)) != 1) {
            rc = -EINVAL;
            seterr(err, errlen, "certificate %s was not issued by CA %s", what, ca_cert_path);
            goto out;
        }
        serial = ASN1_INTEGER_dup(X509_get0_serialNumber(cert));
        if (serial == NULL) {
            rc = -ENOMEM;
            seterr(err, errlen, "%s: out of memory", crl_path);
            goto out;
        }
    }
    if (X509_CRL_get0_by_serial(crl, &found, serial) == 1)
        goto out; /* already revoked: nothing to change */

    int64_t n = 0;
    int crit = 0;
    number = X509_CRL_get_ext_d2i(crl, NID_crl_number, &crit, NULL);
    if (number != NULL && (!ASN1_INTEGER_get_int64(&n, number) || n < 0 || n == INT64_MAX)) {
        rc = -ERANGE;
        seterr(err, errlen, "CRL %s has a crlNumber this tool cannot increment", crl_path);
        goto out;
    }
    rc = crl_build(ca, ca_key, X509_CRL_get_REVOKED(crl), serial, n + 1, time(NULL), &next);
    if (rc < 0) {
        seterr(err, errlen, "cannot build the new CRL for %s: %s", crl_path, ossl_reason());
        goto out;
    }
    pem = pem_crl(next);
    if (pem == NULL) {
        rc = -ENOMEM;
        seterr(err, errlen, "cannot encode CRL %s: %s", crl_path, ossl_reason());
        goto out;
    }
    rc = file_write_bio(crl_path, pem, 0644, true, NULL, err, errlen);
out:
    X509_free(ca);
    X509_free(cert);
    EVP_PKEY_free(ca_key);
    X509_CRL_free(crl);
    X509_CRL_free(next);
    ASN1_INTEGER_free(serial);
    ASN1_INTEGER_free(number);
    BIO_free(pem);
    ERR_pop_to_mark();
    return rc;
}

/* ---- pki_csr_write ---- */

int pki_csr_write(const char *key_path, const char *subject_cn, const char *const *dns_names,
                  const char *out_csr_path, char *err, size_t errlen)
{
    EVP_PKEY *key = NULL;
    X509_REQ *req = NULL;
    X509_NAME *name = NULL;
    GENERAL_NAMES *gens = NULL;
    STACK_OF(X509_EXTENSION) *exts = NULL;
    X509_EXTENSION *san = NULL;
    BIO *pem = NULL;
    struct made_files made = {.n = 0};
    size_t ndns = list_len(dns_names);
    int rc = 0;

    ERR_set_mark();
    if (key_path == NULL || out_csr_path == NULL) {
        rc = -EINVAL;
        seterr(err, errlen, "pki_csr_write: the key or output path is missing");
        goto out;
    }
    for (size_t i = 0; i < ndns; i++) {
        if (!dns_name_valid(dns_names[i], true)) {
            rc = -EINVAL;
            seterr(err, errlen, "%s: '%s' is not a valid DNS name", out_csr_path, dns_names[i]);
            goto out;
        }
    }
    const char *cn = subject_cn != NULL ? subject_cn : ndns > 0 ? dns_names[0] : NULL;
    if (cn == NULL || cn[0] == '\0' || strlen(cn) > PKI_CN_MAX) {
        rc = -EINVAL;
        seterr(err, errlen, "%s: a common name of 1 to %d characters is needed", out_csr_path,
               PKI_CN_MAX);
        goto out;
    }
    rc = refuse_existing(out_csr_path, err, errlen);
    if (rc < 0)
        goto out;
    rc = key_load(key_path, "private key", &key, err, errlen);
    if (rc == 0)
        rc = key_approved(key, "private key", key_path, err, errlen);
    if (rc < 0)
        goto out;

    req = X509_REQ_new_ex(g_libctx, g_propq);
    if (req == NULL || (rc = name_with_cn(cn, &name)) < 0 ||
        !X509_REQ_set_version(req, X509_REQ_VERSION_1) || !X509_REQ_set_subject_name(req, name) ||
        !X509_REQ_set_pubkey(req, key)) {
        rc = rc < 0 ? rc : -ENOMEM;
        seterr(err, errlen, "cannot build request %s: %s", out_csr_path, ossl_reason());
        goto out;
    }
    if (ndns > 0) {
        if ((rc = san_build(dns_names, NULL, &gens)) < 0 ||
            (san = X509V3_EXT_i2d(NID_subject_alt_name, 0, gens)) == NULL ||
            (exts = sk_X509_EXTENSION_new_null()) == NULL ||
            sk_X509_EXTENSION_push(exts, san) <= 0) {
            rc = -ENOMEM;
            seterr(err, errlen, "cannot build request %s: %s", out_csr_path, ossl_reason());
            goto out;
        }
        san = NULL; /* owned by exts now */
        if (!X509_REQ_add_extensions(req, exts)) {
            rc = -ENOMEM;
            seterr(err, errlen, "cannot build request %s: %s", out_csr_path, ossl_reason());
            goto out;
        }
    }
    if (X509_REQ_sign(req, key, sign_md(key)) <= 0) {
        rc = -EINVAL;
        seterr(err, errlen, "cannot sign request %s: %s", out_csr_path, ossl_reason());
        goto out;
    }
    pem = BIO_new(BIO_s_mem());
    if (pem == NULL || !PEM_write_bio_X509_REQ(pem, req)) {
        rc = -ENOMEM;
        seterr(err, errlen, "cannot encode request %s: %s", out_csr_path, ossl_reason());
        goto out;
    }
    rc = write_new_file(&made, out_csr_path, pem, 0644, err, errlen);
out:
    if (rc < 0)
        made_undo(&made);
    EVP_PKEY_free(key);
    X509_REQ_free(req);
    X509_NAME_free(name);
    GENERAL_NAMES_free(gens);
    X509_EXTENSION_free(san);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    BIO_free(pem);
    ERR_pop_to_mark();
    return rc;
}
