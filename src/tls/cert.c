#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "core/strbuf.h"
#include "crypto/pki.h"
#include "tls/cert.h"

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

static int asn1_time_unix(const ASN1_TIME *t, int64_t *out)
{
    struct tm tm;
    if (t == NULL || !ASN1_TIME_to_tm(t, &tm))
        return -EINVAL;
    *out = (int64_t)timegm(&tm);
    return 0;
}

static void time_text(const ASN1_TIME *t, char *out, size_t outlen)
{
    struct tm tm;
    if (t == NULL || !ASN1_TIME_to_tm(t, &tm) ||
        strftime(out, outlen, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(out, outlen, "(unreadable time)");
}

int cert_check_keypair(const char *cert_path, const char *key_path, char *err, size_t errlen)
{
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    char when[64];
    time_t now = time(NULL);
    int rc;

    ERR_set_mark();
    rc = pki_key_load(key_path, &key, err, errlen);
    if (rc < 0)
        goto out;
    rc = pki_cert_load(cert_path, &cert, err, errlen);
    if (rc < 0)
        goto out;
    if (EVP_PKEY_eq(X509_get0_pubkey(cert), key) != 1) {
        rc = -EKEYREJECTED;
        seterr(err, errlen, "certificate %s does not match private key %s", cert_path, key_path);
        goto out;
    }
    /* X509_cmp_time: -1 earlier than now, 1 later, 0 unreadable. */
    int after = X509_cmp_time(X509_get0_notAfter(cert), &now);
    int before = X509_cmp_time(X509_get0_notBefore(cert), &now);
    if (after == 0 || before == 0) {
        rc = -EINVAL;
        seterr(err, errlen, "certificate %s has an unreadable validity period", cert_path);
        goto out;
    }
    if (after < 0) {
        rc = -EKEYEXPIRED;
        time_text(X509_get0_notAfter(cert), when, sizeof(when));
        seterr(err, errlen, "certificate %s expired on %s", cert_path, when);
        goto out;
    }
    if (before > 0) {
        rc = -EKEYEXPIRED;
        time_text(X509_get0_notBefore(cert), when, sizeof(when));
        seterr(err, errlen, "certificate %s is not valid until %s (check the clock)", cert_path,
               when);
        goto out;
    }
out:
    EVP_PKEY_free(key);
    X509_free(cert);
    ERR_pop_to_mark();
    return rc;
}

/* ---- summaries ---- */

/* Copies what fits; a cut never splits a UTF-8 sequence and is marked. */
static void copy_cut(char *dst, size_t cap, const char *src, size_t n)
{
    if (n < cap) {
        memcpy(dst, src, n);
        dst[n] = '\0';
        return;
    }
    size_t keep = cap - 4;
    while (keep > 0 && ((unsigned char)src[keep] & 0xc0) == 0x80)
        keep--;
    memcpy(dst, src, keep);
    memcpy(dst + keep, "...", 4);
}

static int name_text(const X509_NAME *name, char *out, size_t cap)
{
    /* RFC 2253 order and escaping, but UTF-8 shown as itself; control
     * characters stay escaped. */
    const unsigned long flags = XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB;
    BIO *b = BIO_new(BIO_s_mem());
    char *p = NULL;
    int rc = 0;
    if (b == NULL)
        return -ENOMEM;
    if (X509_NAME_print_ex(b, name, 0, flags) < 0) {
        rc = -EINVAL;
        goto out;
    }
    long n = BIO_get_mem_data(b, &p);
    copy_cut(out, cap, n > 0 ? p : "", n > 0 ? (size_t)n : 0);
out:
    BIO_free(b);
    return rc;
}

/* Bytes of a name from a certificate, made safe to print and log. */
static void put_escaped(struct strbuf *sb, const ASN1_STRING *s)
{
    const unsigned char *p = ASN1_STRING_get0_data(s);
    int n = ASN1_STRING_length(s);
    for (int i = 0; i < n; i++) {
        if (p[i] < 0x20 || p[i] >= 0x7f || p[i] == '\\')
            strbuf_printf(sb, "\\x%02x", p[i]);
        else
            strbuf_putc(sb, (char)p[i]);
    }
}

static void put_ip(struct strbuf *sb, const ASN1_OCTET_STRING *ip)
{
    char text[INET6_ADDRSTRLEN];
    const unsigned char *p = ASN1_STRING_get0_data(ip);
    int n = ASN1_STRING_length(ip);
    if ((n == 4 && inet_ntop(AF_INET, p, text, sizeof(text)) != NULL) ||
        (n == 16 && inet_ntop(AF_INET6, p, text, sizeof(text)) != NULL))
        strbuf_printf(sb, "IP:%s", text);
    else
        strbuf_puts(sb, "IP:<invalid>");
}

static int sans_text(X509 *cert, char *out, size_t cap)
{
    struct strbuf sb = STRBUF_INIT;
    int crit = 0, rc = 0;
    GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, NULL);
    if (gens == NULL) {
        out[0] = '\0';
        /* -1: absent; anything else: present but undecodable. */
        return crit == -1 ? 0 : -EINVAL;
    }
    for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, i);
        if (i > 0)
            strbuf_puts(&sb, ", ");
        switch (gn->type) {
        case GEN_DNS:
            strbuf_puts(&sb, "DNS:");
            put_escaped(&sb, gn->d.dNSName);
            break;
        case GEN_URI:
            strbuf_puts(&sb, "URI:");
            put_escaped(&sb, gn->d.uniformResourceIdentifier);
            break;
        case GEN_EMAIL:
            strbuf_puts(&sb, "email:");
            put_escaped(&sb, gn->d.rfc822Name);
            break;
        case GEN_IPADD:
            put_ip(&sb, gn->d.iPAddress);
            break;
        case GEN_DIRNAME:
            strbuf_puts(&sb, "DirName");
            break;
        case GEN_RID:
            strbuf_puts(&sb, "RID");
            break;
        default:
            strbuf_puts(&sb, "othername");
            break;
        }
    }
    if (sb.err != 0) {
        rc = sb.err;
        goto out;
    }
    copy_cut(out, cap, strbuf_cstr(&sb), sb.len);
out:
    strbuf_free(&sb);
    GENERAL_NAMES_free(gens);
    return rc;
}

static void key_type_text(X509 *cert, char *out, size_t cap)
{
    EVP_PKEY *key = X509_get0_pubkey(cert);
    char group[64];
    if (key == NULL) {
        snprintf(out, cap, "unknown");
        return;
    }
    switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_EC:
        if (!EVP_PKEY_get_group_name(key, group, sizeof(group), NULL))
            snprintf(group, sizeof(group), "unknown curve");
        /* NIST names for the curves TLS uses; others as OpenSSL names them. */
        const char *curve = strcmp(group, "prime256v1") == 0  ? "P-256"
                            : strcmp(group, "secp384r1") == 0 ? "P-384"
                            : strcmp(group, "secp521r1") == 0 ? "P-521"
                                                              : group;
        snprintf(out, cap, "ECDSA %.24s", curve);
        break;
    case EVP_PKEY_RSA:
        snprintf(out, cap, "RSA %d", EVP_PKEY_get_bits(key));
        break;
    case EVP_PKEY_RSA_PSS:
        snprintf(out, cap, "RSA-PSS %d", EVP_PKEY_get_bits(key));
        break;
    case EVP_PKEY_ED25519:
        snprintf(out, cap, "Ed25519");
        break;
    case EVP_PKEY_ED448:
        snprintf(out, cap, "Ed448");
        break;
    default: {
        const char *name = EVP_PKEY_get0_type_name(key);
        snprintf(out, cap, "%s", name != NULL ? name : "unknown");
        break;
    }
    }
}

static int serial_text(X509 *cert, char *out, size_t cap)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
    char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;
    int rc = hex != NULL ? 0 : -ENOMEM;
    if (hex != NULL)
        copy_cut(out, cap, hex, strlen(hex));
    OPENSSL_free(hex);
    BN_free(bn);
    return rc;
}

int cert_summarize(X509 *cert, struct cert_summary *out)
{
    int rc;
    memset(out, 0, sizeof(*out));
    if (cert == NULL)
        return -EINVAL;
    ERR_set_mark();
    if ((rc = name_text(X509_get_subject_name(cert), out->subject, sizeof(out->subject))) < 0 ||
        (rc = name_text(X509_get_issuer_name(cert), out->issuer, sizeof(out->issuer))) < 0 ||
        (rc = serial_text(cert, out->serial, sizeof(out->serial))) < 0 ||
        (rc = asn1_time_unix(X509_get0_notBefore(cert), &out->not_before)) < 0 ||
        (rc = asn1_time_unix(X509_get0_notAfter(cert), &out->not_after)) < 0 ||
        (rc = sans_text(cert, out->sans, sizeof(out->sans))) < 0)
        goto out;
    key_type_text(cert, out->key_type, sizeof(out->key_type));
out:
    ERR_pop_to_mark();
    return rc;
}

int cert_summarize_file(const char *path, struct cert_summary *out, char *err, size_t errlen)
{
    X509 *cert = NULL;
    memset(out, 0, sizeof(*out));
    int rc = pki_cert_load(path, &cert, err, errlen);
    if (rc < 0)
        return rc;
    rc = cert_summarize(cert, out);
    if (rc < 0)
        seterr(err, errlen, "certificate %s has fields that do not parse", path);
    X509_free(cert);
    return rc;
}

/* ---- identity ---- */

static bool cert_host_check(X509 *cert, const char *host, unsigned flags);

bool cert_matches_host(X509 *cert, const char *host)
{
    return cert_host_check(cert, host, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
}

bool cert_matches_host_exactly(X509 *cert, const char *host)
{
    return cert_host_check(cert, host, X509_CHECK_FLAG_NO_WILDCARDS);
}

static bool cert_host_check(X509 *cert, const char *host, unsigned flags)
{
    char name[256];
    unsigned char ip[16];
    bool match = false;
    if (cert == NULL || host == NULL)
        return false;
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        if (n - 2 >= sizeof(name))
            return false;
        memcpy(name, host + 1, n - 2);
        name[n - 2] = '\0';
        if (inet_pton(AF_INET6, name, ip) != 1)
            return false;
        host = name;
        n -= 2;
    }
    ERR_set_mark();
    if (inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1) {
        /* Checks iPAddress names only, never the CN. */
        match = X509_check_ip_asc(cert, host, 0) == 1;
        goto out;
    }
    /* A leading dot asks OpenSSL for "any subdomain"; a '*' is a pattern,
     * not a host. Neither is a name someone connects to. */
    if (n == 0 || host[0] == '.' || strchr(host, '*') != NULL)
        goto out;
    if (host[n - 1] == '.')
        n--;
    if (n == 0 || n >= sizeof(name))
        goto out;
    memmove(name, host, n);
    name[n] = '\0';
    /* OpenSSL's default already looks at the CN only when there is no
     * dNSName; partial-label wildcards ("a*.example.test") are refused. */
    match = X509_check_host(cert, name, n, flags, NULL) == 1;
out:
    ERR_pop_to_mark();
    return match;
}

/* ASCII only: the C library's strncasecmp follows the locale. */
static bool ascii_caseeq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y - 'A' + 'a');
        if (x != y)
            return false;
    }
    return true;
}

/* An IA5String SAN equal to prefix+domain, ignoring ASCII case. */
static bool ia5_equals(const ASN1_STRING *s, const char *prefix, const char *domain, size_t dlen)
{
    const char *p = (const char *)ASN1_STRING_get0_data(s);
    size_t n = (size_t)ASN1_STRING_length(s);
    size_t plen = strlen(prefix);
    /* A NUL inside the name cannot pass: domain has none. */
    if (n != plen + dlen)
        return false;
    return ascii_caseeq(p, prefix, plen) && ascii_caseeq(p + plen, domain, dlen);
}

bool cert_proves_sip_domain(X509 *cert, const char *domain)
{
    bool proven = false;
    if (cert == NULL || domain == NULL)
        return false;
    size_t dlen = strlen(domain);
    if (dlen > 0 && domain[dlen - 1] == '.')
        dlen--;
    if (dlen == 0 || domain[0] == '.' || memchr(domain, '*', dlen) != NULL)
        return false;
    ERR_set_mark();
    GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; !proven && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, i);
        if (gn->type == GEN_DNS)
            proven = ia5_equals(gn->d.dNSName, "", domain, dlen);
        else if (gn->type == GEN_URI)
            proven = ia5_equals(gn->d.uniformResourceIdentifier, "sip:", domain, dlen);
    }
    GENERAL_NAMES_free(gens);
    ERR_pop_to_mark();
    return proven;
}

int cert_first_dns_name(const char *path, char *out, size_t cap)
{
    BIO *bio = BIO_new_file(path, "r");
    X509 *cert = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!cert) {
        ERR_clear_error();
        return -EIO;
    }
    int rc = -ENOENT;
    GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; rc && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, i);
        if (gn->type != GEN_DNS)
            continue;
        const unsigned char *d = ASN1_STRING_get0_data(gn->d.dNSName);
        int n = ASN1_STRING_length(gn->d.dNSName);
        bool plain = n > 0 && (size_t)n < cap;
        for (int j = 0; plain && j < n; j++)
            plain = (d[j] >= 'a' && d[j] <= 'z') || (d[j] >= 'A' && d[j] <= 'Z') ||
                    (d[j] >= '0' && d[j] <= '9') || d[j] == '-' || d[j] == '.';
        if (plain) {
            memcpy(out, d, (size_t)n);
            out[n] = '\0';
            rc = 0;
        }
    }
    GENERAL_NAMES_free(gens);
    X509_free(cert);
    ERR_clear_error();
    return rc;
}

bool cert_file_matches_host(const char *path, const char *host)
{
    BIO *bio = BIO_new_file(path, "r");
    X509 *cert = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    bool ok = cert && cert_matches_host(cert, host);
    X509_free(cert);
    ERR_clear_error();
    return ok;
}

int64_t cert_days_left(X509 *cert, int64_t now)
{
    int64_t not_after;
    if (cert == NULL || asn1_time_unix(X509_get0_notAfter(cert), &not_after) < 0)
        return INT64_MIN;
    int64_t secs = not_after - now;
    int64_t days = secs / 86400;
    /* Round toward minus infinity: an hour past expiry is day -1, not 0. */
    if (secs % 86400 != 0 && secs < 0)
        days--;
    return days;
}
