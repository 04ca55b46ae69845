#include "tls/context.h"

#include <dirent.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "crypto/fips.h"
#include "crypto/pki.h"
#include "tls/cert.h"

/* ex_data: on an SSL_CTX, whether a missing CRL is fatal; on an SSL,
 * whether a missing CRL was tolerated during verification. */
static int tls_ctx_require_crl_idx = -1;
static int tls_ssl_crl_missing_idx = -1;
static int tls_ssl_alert_idx = -1;
static int tls_ssl_subject_idx = -1; /* subject of a certificate that failed verification */
static int tls_ctx_info_idx = -1;    /* struct tls_ctx_info, owned by the SSL_CTX */

/* What a context was built with, kept on it: the library context for the
 * rechecks after a reload, and the effective lists for status (OpenSSL
 * has no getter for a context's groups or signature algorithms). */
struct tls_ctx_info {
    OSSL_LIB_CTX *libctx; /* fc's, which lives as long as the process */
    char *propq;
    bool restricted;
    char *groups;
    char *sigalgs; /* NULL: OpenSSL's defaults */
};

static void tls_ctx_info_free(struct tls_ctx_info *info)
{
    if (!info)
        return;
    free(info->propq);
    free(info->groups);
    free(info->sigalgs);
    free(info);
}

static struct tls_ctx_info *tls_ctx_info_of(SSL_CTX *ctx)
{
    return tls_ctx_info_idx >= 0 ? SSL_CTX_get_ex_data(ctx, tls_ctx_info_idx) : NULL;
}

static void tls_free_info(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                          void *argp)
{
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    tls_ctx_info_free(ptr);
}

static void tls_free_subject(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                             void *argp)
{
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    OPENSSL_free(ptr);
}

int tls_init(void)
{
    if (tls_ctx_require_crl_idx < 0)
        tls_ctx_require_crl_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    if (tls_ssl_crl_missing_idx < 0)
        tls_ssl_crl_missing_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    if (tls_ssl_alert_idx < 0)
        tls_ssl_alert_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    if (tls_ssl_subject_idx < 0)
        tls_ssl_subject_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, tls_free_subject);
    if (tls_ctx_info_idx < 0)
        tls_ctx_info_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, tls_free_info);
    return tls_ctx_require_crl_idx < 0 || tls_ssl_crl_missing_idx < 0 || tls_ssl_alert_idx < 0 ||
                   tls_ssl_subject_idx < 0 || tls_ctx_info_idx < 0
               ? -ENOMEM
               : 0;
}

bool tls_session_crl_missing(SSL *ssl)
{
    return tls_ssl_crl_missing_idx >= 0 && SSL_get_ex_data(ssl, tls_ssl_crl_missing_idx) != NULL;
}

/*
 * libevent 2.1 does not always keep OpenSSL's error for a failed handshake,
 * so the alert that ended it is recorded here: the first alert sent or
 * received, as (direction << 16 | alert value) + 1.
 */
static void tls_info_cb(const SSL *ssl, int where, int ret)
{
    if (!(where & SSL_CB_ALERT) || SSL_get_ex_data(ssl, tls_ssl_alert_idx))
        return;
    uintptr_t sent = (where & SSL_CB_WRITE) ? 1 : 0;
    SSL_set_ex_data((SSL *)ssl, tls_ssl_alert_idx,
                    (void *)(((sent << 16) | (uintptr_t)(ret & 0xffff)) + 1));
}

const char *tls_session_failed_subject(SSL *ssl)
{
    const char *s = tls_ssl_subject_idx >= 0 ? SSL_get_ex_data(ssl, tls_ssl_subject_idx) : NULL;
    return s ? s : "";
}

/* errors: OpenSSL error codes of the failure that the caller already
 * took off the queue (libevent keeps its own list), or none. */
bool tls_session_failure(SSL *ssl, const unsigned long *errors, size_t nerrors, char *buf,
                         size_t cap)
{
    uintptr_t v = (uintptr_t)SSL_get_ex_data(ssl, tls_ssl_alert_idx);
    long vr = SSL_get_verify_result(ssl);
    if (vr != X509_V_OK) {
        snprintf(buf, cap, "certificate verify failed: %s", X509_verify_cert_error_string(vr));
        return true;
    }
    /* A peer that sent no certificate where one is required: TLS 1.2 says
     * "handshake failure", 1.3 "certificate required" (alert 116, which
     * OpenSSL 3.0 cannot name). Say what happened, and only then. */
    bool no_cert = v && ((v - 1) >> 16) && ((v - 1) & 0xff) == 116;
    for (size_t i = 0; !no_cert && i < nerrors; i++)
        no_cert = ERR_GET_LIB(errors[i]) == ERR_LIB_SSL &&
                  ERR_GET_REASON(errors[i]) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE;
    unsigned long queued = ERR_peek_error();
    no_cert = no_cert || (queued && ERR_GET_LIB(queued) == ERR_LIB_SSL &&
                          ERR_GET_REASON(queued) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE);
    if (SSL_is_server(ssl) && !SSL_get0_peer_certificate(ssl) && no_cert) {
        snprintf(buf, cap, "no client certificate (this listener requires one)");
        ERR_clear_error();
        return true;
    }
    unsigned long e = ERR_peek_last_error();
    if (!v && e) {
        const char *r = ERR_reason_error_string(e);
        snprintf(buf, cap, "%s", r ? r : "TLS error");
        ERR_clear_error();
        return true;
    }
    if (!v)
        return false;
    v--;
    int alert = (int)(v & 0xffff);
    snprintf(buf, cap, "%s alert: %s", (v >> 16) ? "sent" : "received",
             SSL_alert_desc_string_long(alert));
    return true;
}

const char *tls_version_name(int version)
{
    switch (version) {
    case TLS1_2_VERSION:
        return "TLSv1.2";
    case TLS1_3_VERSION:
        return "TLSv1.3";
    default:
        return "?";
    }
}

/*
 * Certificate checks run with X509_V_FLAG_CRL_CHECK(_ALL): a revoked
 * certificate, or any certificate while its issuer's CRL is past its next
 * update, is refused by OpenSSL. An issuer with no CRL at all is OpenSSL's
 * X509_V_ERR_UNABLE_TO_GET_CRL, which we forgive unless tls.require_crl.
 */
/* Remembers whose certificate failed (the peer's own, not the CA where
 * the chain broke), for the log line that follows. */
static void tls_note_subject(SSL *ssl, X509_STORE_CTX *store)
{
    if (!ssl || SSL_get_ex_data(ssl, tls_ssl_subject_idx))
        return;
    X509 *cert = X509_STORE_CTX_get0_cert(store);
    struct cert_summary s;
    if (!cert || cert_summarize(cert, &s) != 0)
        return;
    char *subject = OPENSSL_strdup(s.subject);
    if (subject && !SSL_set_ex_data(ssl, tls_ssl_subject_idx, subject))
        OPENSSL_free(subject);
}

static int tls_verify_cb(int ok, X509_STORE_CTX *store)
{
    if (ok)
        return 1;
    int err = X509_STORE_CTX_get_error(store);
    SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
    if (err != X509_V_ERR_UNABLE_TO_GET_CRL) {
        tls_note_subject(ssl, store);
        return 0;
    }
    if (!ssl)
        return 0;
    SSL_CTX *ctx = SSL_get_SSL_CTX(ssl);
    if (SSL_CTX_get_ex_data(ctx, tls_ctx_require_crl_idx) != NULL) {
        tls_note_subject(ssl, store);
        return 0;
    }
    SSL_set_ex_data(ssl, tls_ssl_crl_missing_idx, (void *)1);
    X509_STORE_CTX_set_error(store, X509_V_OK);
    return 1;
}

int tls_client_certs_parse(const char *text, enum tls_client_certs *out)
{
    if (strcmp(text, "none") == 0)
        *out = TLS_CLIENT_CERTS_NONE;
    else if (strcmp(text, "request") == 0)
        *out = TLS_CLIENT_CERTS_REQUEST;
    else if (strcmp(text, "require") == 0)
        *out = TLS_CLIENT_CERTS_REQUIRE;
    else
        return -EINVAL;
    return 0;
}

const char *tls_client_certs_name(enum tls_client_certs policy)
{
    switch (policy) {
    case TLS_CLIENT_CERTS_NONE:
        return "none";
    case TLS_CLIENT_CERTS_REQUEST:
        return "request";
    case TLS_CLIENT_CERTS_REQUIRE:
        return "require";
    }
    return "?";
}

void tls_session_client_certs(SSL *ssl, enum tls_client_certs policy)
{
    static const unsigned char sid_none[] = "parley-sip", sid_request[] = "parley-sip-request",
                               sid_require[] = "parley-sip-mtls";
    switch (policy) {
    case TLS_CLIENT_CERTS_NONE:
        SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
        SSL_set_session_id_context(ssl, sid_none, sizeof(sid_none) - 1);
        break;
    case TLS_CLIENT_CERTS_REQUEST:
        SSL_set_verify(ssl, SSL_VERIFY_PEER, tls_verify_cb);
        SSL_set_session_id_context(ssl, sid_request, sizeof(sid_request) - 1);
        break;
    case TLS_CLIENT_CERTS_REQUIRE:
        SSL_set_verify(ssl, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, tls_verify_cb);
        SSL_set_session_id_context(ssl, sid_require, sizeof(sid_require) - 1);
        break;
    }
}

static void tls_err(char *err, size_t errlen, const char *what, const char *file)
{
    unsigned long e = ERR_peek_last_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;
    if (file)
        snprintf(err, errlen, "%s: %s%s%s", file, what, reason ? ": " : "", reason ? reason : "");
    else
        snprintf(err, errlen, "%s%s%s", what, reason ? ": " : "", reason ? reason : "");
    ERR_clear_error();
}

static int tls_load_crls(X509_STORE *store, const struct config_str_list *files, char *err,
                         size_t errlen)
{
    for (size_t i = 0; i < files->n; i++) {
        BIO *bio = BIO_new_file(files->v[i], "r");
        if (!bio) {
            tls_err(err, errlen, "cannot read the CRL file", files->v[i]);
            return -ENOENT;
        }
        size_t count = 0;
        X509_CRL *crl;
        while ((crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL)) != NULL) {
            int ok = X509_STORE_add_crl(store, crl);
            X509_CRL_free(crl);
            if (!ok) {
                BIO_free(bio);
                tls_err(err, errlen, "cannot add CRL", files->v[i]);
                return -EINVAL;
            }
            count++;
        }
        BIO_free(bio);
        ERR_clear_error(); /* the end-of-file "no start line" */
        if (count == 0) {
            snprintf(err, errlen, "%s: no CRL found in the file", files->v[i]);
            return -EINVAL;
        }
    }
    return 0;
}

/*
 * FIPS narrowing. What SP 800-52r2 and the FIPS provider allow and this
 * project chose among it: AES-GCM suites (no ChaCha20-Poly1305, no CBC),
 * the NIST curves P-256 and P-384 (no X25519/X448, no ffdhe), ECDSA on
 * those curves and RSA (PSS or PKCS#1) with SHA-256/384.
 */
static const char *const tls_fips_ciphers[] = {
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    NULL,
};
static const char *const tls_fips_ciphersuites[] = {
    "TLS_AES_256_GCM_SHA384",
    "TLS_AES_128_GCM_SHA256",
    NULL,
};
/* OpenSSL's names and aliases for the two curves */
static const char *const tls_fips_groups[] = {
    "P-256", "P-384", "secp256r1", "prime256v1", "secp384r1", NULL,
};
static const char tls_fips_sigalgs[] =
    "ecdsa_secp256r1_sha256:ecdsa_secp384r1_sha384:rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:"
    "rsa_pss_pss_sha256:rsa_pss_pss_sha384:rsa_pkcs1_sha256:rsa_pkcs1_sha384";
#define TLS_FIPS_MIN_RSA_BITS 2048
/* RSA >= 2048 and DH >= 2048 bits, ECC >= 224 bits, no SHA-1 signatures in
 * peers' chains: what a peer's certificate must meet under FIPS. */
#define TLS_FIPS_SECURITY_LEVEL 2

static bool tls_fips_listed(const char *const *list, const char *name)
{
    for (size_t i = 0; list[i]; i++)
        if (strcasecmp(list[i], name) == 0)
            return true;
    return false;
}

/* Whether a key still holds the default of its row (config_key_find): the
 * administrator did not choose it, so it may narrow silently. */
static bool tls_is_default(const char *dotted, const char *value)
{
    const struct config_key *k = config_key_find(dotted);
    return k && k->default_value && strcmp(k->default_value, value) == 0;
}

/* The items of a ':' (or ',') separated list that are in allowed, in the
 * list's order; malloc'd ("" when none is). */
static char *tls_fips_subset(const char *list, const char *const *allowed)
{
    struct strbuf b = STRBUF_INIT;
    const char *p = list;
    while (*p) {
        size_t n = strcspn(p, ":,");
        char item[64];
        if (n > 0 && n < sizeof(item)) {
            memcpy(item, p, n);
            item[n] = '\0';
            if (tls_fips_listed(allowed, item)) {
                strbuf_puts(&b, b.len ? ":" : "");
                strbuf_puts(&b, item);
            }
        }
        p += n;
        p += *p != '\0';
    }
    char *out = strbuf_take(&b, NULL);
    return out ? out : strdup("");
}

static void tls_fips_refuse(char *err, size_t errlen, const char *key, const char *item,
                            const struct fips_ctx *fc, const char *approved)
{
    snprintf(err, errlen, "%s: %s is not FIPS-approved (security.fips = %s); approved: %s", key,
             item, fips_mode_name(fips_mode(fc)), approved);
}

/* Explicit tls.groups: every group must be approved. */
static int tls_fips_check_groups(const char *groups, const struct fips_ctx *fc, char *err,
                                 size_t errlen)
{
    const char *p = groups;
    while (*p) {
        size_t n = strcspn(p, ":,");
        char item[64];
        snprintf(item, sizeof(item), "%.*s", (int)n, p);
        if (n > 0 && !tls_fips_listed(tls_fips_groups, item)) {
            tls_fips_refuse(err, errlen, "tls.groups", item, fc, "P-256, P-384");
            return -EINVAL;
        }
        p += n;
        p += *p != '\0';
    }
    return 0;
}

/* After the suites are set: every suite the context would offer must be
 * approved. Checking what OpenSSL made of the strings, rather than their
 * words, also catches aliases ("HIGH", "ECDHE+AESGCM:CHACHA20"). */
static int tls_fips_check_suites(SSL_CTX *ctx, const struct fips_ctx *fc, char *err, size_t errlen)
{
    STACK_OF(SSL_CIPHER) *ciphers = SSL_CTX_get_ciphers(ctx);
    for (int i = 0; i < sk_SSL_CIPHER_num(ciphers); i++) {
        const SSL_CIPHER *c = sk_SSL_CIPHER_value(ciphers, i);
        const char *name = SSL_CIPHER_get_name(c);
        bool tls13 = strcmp(SSL_CIPHER_get_version(c), "TLSv1.3") == 0;
        if (tls13 && !tls_fips_listed(tls_fips_ciphersuites, name)) {
            tls_fips_refuse(err, errlen, "tls.ciphersuites", name, fc,
                            "TLS_AES_256_GCM_SHA384, TLS_AES_128_GCM_SHA256");
            return -EINVAL;
        }
        if (!tls13 && !tls_fips_listed(tls_fips_ciphers, name)) {
            tls_fips_refuse(err, errlen, "tls.ciphers", name, fc,
                            "ECDHE-ECDSA/ECDHE-RSA with AES-GCM");
            return -EINVAL;
        }
    }
    return 0;
}

/* The server's own key, under FIPS: RSA of 2048 bits or more, or ECDSA on
 * P-256 or P-384 (the curves of the signature algorithms offered). */
static int tls_fips_judge_key(EVP_PKEY *key, const struct config *cfg, const struct fips_ctx *fc,
                              char *err, size_t errlen)
{
    const char *mode = fips_mode_name(fips_mode(fc));
    if (key && EVP_PKEY_is_a(key, "RSA")) {
        int bits = EVP_PKEY_get_bits(key);
        if (bits >= TLS_FIPS_MIN_RSA_BITS)
            return 0;
        snprintf(err, errlen,
                 "%s: an RSA key of %d bits is not FIPS-approved (security.fips = %s); make one "
                 "of %d bits or more, or ECDSA P-256 (parleyctl cert request)",
                 cfg->tls.private_key, bits, mode, TLS_FIPS_MIN_RSA_BITS);
        return -EKEYREJECTED;
    }
    char group[64] = "";
    size_t len = 0;
    if (key && EVP_PKEY_is_a(key, "EC") &&
        EVP_PKEY_get_utf8_string_param(key, "group", group, sizeof(group), &len) &&
        tls_fips_listed(tls_fips_groups, group))
        return 0;
    ERR_clear_error();
    snprintf(err, errlen,
             "%s: a %s key is not FIPS-approved for TLS (security.fips = %s); use ECDSA P-256 or "
             "P-384, or RSA of %d bits or more",
             cfg->tls.private_key,
             !key                           ? "missing"
             : *group                       ? group
             : EVP_PKEY_get0_type_name(key) ? EVP_PKEY_get0_type_name(key)
                                            : "such",
             mode, TLS_FIPS_MIN_RSA_BITS);
    return -EKEYREJECTED;
}

static int tls_fips_check_own_key(const struct config *cfg, const struct fips_ctx *fc, char *err,
                                  size_t errlen)
{
    EVP_PKEY *key = NULL;
    int rc = pki_key_load(cfg->tls.private_key, &key, err, errlen);
    if (rc)
        return rc;
    rc = tls_fips_judge_key(key, cfg, fc, err, errlen);
    EVP_PKEY_free(key);
    return rc;
}

static int tls_parse_min_version(const char *text)
{
    return strcmp(text, "1.3") == 0 ? TLS1_3_VERSION : TLS1_2_VERSION;
}

int tls_context_new(const struct config *cfg, const struct fips_ctx *fc, SSL_CTX **out, char *err,
                    size_t errlen)
{
    SSL_CTX *ctx = NULL;
    STACK_OF(X509_NAME) *ca_names = NULL;
    struct tls_ctx_info *info = NULL;
    char *ciphers = NULL, *ciphersuites = NULL;
    int rc = -EINVAL;
    bool restricted = fips_restricted(fc);

    /* Our own checks first: their messages name the file and the fault. */
    rc = cert_check_keypair(cfg->tls.certificate, cfg->tls.private_key, err, errlen);
    if (rc == 0 && restricted)
        rc = tls_fips_check_own_key(cfg, fc, err, errlen);
    if (rc)
        return rc;
    rc = -EINVAL;

    info = calloc(1, sizeof(*info));
    if (!info)
        return -ENOMEM;
    info->restricted = restricted;
    info->libctx = fips_libctx(fc);
    if (fips_propq(fc) && !(info->propq = strdup(fips_propq(fc)))) {
        rc = -ENOMEM;
        goto fail;
    }
    /* Under FIPS, keys left at their defaults take their approved subset;
     * one the administrator set must name approved items only. */
    const char *groups = cfg->tls.groups;
    if (restricted && tls_is_default("tls.groups", groups))
        info->groups = tls_fips_subset(groups, tls_fips_groups);
    else if (restricted && (rc = tls_fips_check_groups(groups, fc, err, errlen)) != 0)
        goto fail;
    else
        info->groups = strdup(groups);
    rc = -EINVAL;
    ciphers = restricted && tls_is_default("tls.ciphers", cfg->tls.ciphers)
                  ? tls_fips_subset(cfg->tls.ciphers, tls_fips_ciphers)
                  : strdup(cfg->tls.ciphers);
    ciphersuites = restricted && tls_is_default("tls.ciphersuites", cfg->tls.ciphersuites)
                       ? tls_fips_subset(cfg->tls.ciphersuites, tls_fips_ciphersuites)
                       : strdup(cfg->tls.ciphersuites);
    if (restricted && !(info->sigalgs = strdup(tls_fips_sigalgs))) {
        rc = -ENOMEM;
        goto fail;
    }
    if (!info->groups || !ciphers || !ciphersuites) {
        rc = -ENOMEM;
        goto fail;
    }

    ctx = SSL_CTX_new_ex(info->libctx, info->propq, TLS_method());
    if (!ctx) {
        tls_err(err, errlen, "cannot create a TLS context", NULL);
        rc = -ENOMEM;
        goto fail;
    }
    if (!SSL_CTX_set_ex_data(ctx, tls_ctx_info_idx, info)) {
        rc = -ENOMEM;
        goto fail;
    }
    info = NULL; /* the context's now */
    /* TLS 1.0 and 1.1 are never spoken, whatever the configuration. */
    if (!SSL_CTX_set_min_proto_version(ctx, tls_parse_min_version(cfg->tls.min_version)) ||
        !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION)) {
        tls_err(err, errlen, "cannot set TLS versions", NULL);
        goto fail;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF);
    /* Idle connections give their read/write buffers back (tens of KB each). */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);

    if (!SSL_CTX_set_cipher_list(ctx, ciphers)) {
        tls_err(err, errlen, "tls.ciphers: no usable TLS 1.2 cipher suite", NULL);
        goto fail;
    }
    if (!SSL_CTX_set_ciphersuites(ctx, ciphersuites)) {
        tls_err(err, errlen, "tls.ciphersuites: not a valid TLS 1.3 suite list", NULL);
        goto fail;
    }
    if (!SSL_CTX_set1_groups_list(ctx, tls_ctx_info_of(ctx)->groups)) {
        tls_err(err, errlen, "tls.groups: not a valid group list", NULL);
        goto fail;
    }
    if (restricted) {
        rc = tls_fips_check_suites(ctx, fc, err, errlen);
        if (rc)
            goto fail;
        rc = -EINVAL;
        /* what we accept from peers and offer them (also in
         * CertificateRequest), and what we sign with as a client */
        if (!SSL_CTX_set1_sigalgs_list(ctx, tls_fips_sigalgs) ||
            !SSL_CTX_set1_client_sigalgs_list(ctx, tls_fips_sigalgs)) {
            tls_err(err, errlen, "cannot set the FIPS signature algorithms", NULL);
            goto fail;
        }
    }

    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls.certificate) != 1) {
        tls_err(err, errlen, "cannot use the certificate", cfg->tls.certificate);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls.private_key, SSL_FILETYPE_PEM) != 1) {
        tls_err(err, errlen, "cannot use the private key", cfg->tls.private_key);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        tls_err(err, errlen, "the private key does not match the certificate",
                cfg->tls.private_key);
        rc = -EKEYREJECTED;
        goto fail;
    }
    if (restricted) {
        /* Peers' keys: set after the cipher list, which may carry an
         * @SECLEVEL of its own, and never lowering a stricter level. */
        if (SSL_CTX_get_security_level(ctx) < TLS_FIPS_SECURITY_LEVEL)
            SSL_CTX_set_security_level(ctx, TLS_FIPS_SECURITY_LEVEL);
    }

    ca_names = sk_X509_NAME_new_null();
    if (!ca_names) {
        rc = -ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < cfg->tls.ca_files.n; i++) {
        const char *f = cfg->tls.ca_files.v[i];
        if (SSL_CTX_load_verify_file(ctx, f) != 1) {
            tls_err(err, errlen, "cannot load trusted CA certificates", f);
            rc = -ENOENT;
            goto fail;
        }
        if (!SSL_add_file_cert_subjects_to_stack(ca_names, f))
            ERR_clear_error();
    }
    /* CA certificates added with `parleyctl trust add` */
    char trusted[4096];
    snprintf(trusted, sizeof(trusted), "%s/" TLS_TRUSTED_DIR, cfg->state_dir);
    DIR *dir = opendir(trusted);
    if (dir) {
        struct dirent *de;
        while ((de = readdir(dir)) != NULL) {
            size_t n = strlen(de->d_name);
            if (n < 5 || strcmp(de->d_name + n - 4, ".pem") != 0)
                continue;
            char f[4096 + 256];
            snprintf(f, sizeof(f), "%s/%s", trusted, de->d_name);
            if (SSL_CTX_load_verify_file(ctx, f) != 1) {
                closedir(dir);
                tls_err(err, errlen, "cannot load a trusted CA certificate", f);
                rc = -EINVAL;
                goto fail;
            }
            if (!SSL_add_file_cert_subjects_to_stack(ca_names, f))
                ERR_clear_error();
        }
        closedir(dir);
    }
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    if (cfg->tls.crl_files.n) {
        rc = tls_load_crls(store, &cfg->tls.crl_files, err, errlen);
        if (rc)
            goto fail;
    }
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
    SSL_CTX_set_ex_data(ctx, tls_ctx_require_crl_idx, cfg->tls.require_crl ? (void *)1 : NULL);
    /* Our own chain, built once here from the trust store: left to itself
     * OpenSSL builds and verifies it again for every handshake (a third of
     * a full handshake's CPU, bench/run's comparison with s_server). Errors
     * (a CRL missing for our own issuer, say) leave the chain as it
     * builds: it is what auto-chaining would have sent. */
    if (SSL_CTX_build_cert_chain(ctx, SSL_BUILD_CHAIN_FLAG_IGNORE_ERROR) != 1)
        ERR_clear_error();

    /* Connecting, the peer (a partner) must prove itself. Accepting, each
     * listener sets what it asks of clients on the session
     * (tls_session_client_certs); the default here is the strictest. */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, tls_verify_cb);
    SSL_CTX_set_info_callback(ctx, tls_info_cb);
    SSL_CTX_set_verify_depth(ctx, 8);
    SSL_CTX_set_client_CA_list(ctx, ca_names);
    ca_names = NULL;

    /* Resumption: a server-side session cache for TLS 1.2 session ids and
     * tickets for both versions; the id context is required once client
     * certificates are requested. */
    static const unsigned char sid_ctx[] = "parley-sip";
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, 20000);
    SSL_CTX_set_timeout(ctx, 3600);
    SSL_CTX_set_num_tickets(ctx, 1);

    *out = ctx;
    ctx = NULL;
    rc = 0;
fail:
    sk_X509_NAME_pop_free(ca_names, X509_NAME_free);
    SSL_CTX_free(ctx);
    tls_ctx_info_free(info);
    free(ciphers);
    free(ciphersuites);
    return rc;
}

static int tls_recheck_require_crl;

static int tls_recheck_cb(int ok, X509_STORE_CTX *store)
{
    if (ok)
        return 1;
    return X509_STORE_CTX_get_error(store) == X509_V_ERR_UNABLE_TO_GET_CRL &&
           !tls_recheck_require_crl;
}

int tls_context_recheck(SSL_CTX *ctx, X509 *cert, STACK_OF(X509) * chain, char *why, size_t cap)
{
    struct tls_ctx_info *info = tls_ctx_info_of(ctx);
    /* every SSL_CTX Parley makes carries its info (tls_context_new) */
    X509_STORE_CTX *sctx = info ? X509_STORE_CTX_new_ex(info->libctx, info->propq) : NULL;
    if (!sctx)
        return 0; /* cannot tell: keep the connection */
    int rc = 0;
    if (X509_STORE_CTX_init(sctx, SSL_CTX_get_cert_store(ctx), cert, chain) == 1) {
        /* runs on the core thread only, so the flag needs no lock */
        tls_recheck_require_crl = SSL_CTX_get_ex_data(ctx, tls_ctx_require_crl_idx) != NULL;
        X509_STORE_CTX_set_verify_cb(sctx, tls_recheck_cb);
        if (X509_verify_cert(sctx) != 1) {
            snprintf(why, cap, "%s", X509_verify_cert_error_string(X509_STORE_CTX_get_error(sctx)));
            rc = -EKEYREJECTED;
        }
    }
    X509_STORE_CTX_free(sctx);
    ERR_clear_error();
    return rc;
}

void tls_context_facts(SSL_CTX *ctx, const struct config *cfg, struct tls_context_facts *out)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->versions, sizeof(out->versions), "%s",
             SSL_CTX_get_min_proto_version(ctx) == TLS1_3_VERSION ? "TLSv1.3" : "TLSv1.2, TLSv1.3");
    struct tls_ctx_info *info = tls_ctx_info_of(ctx);
    snprintf(out->groups, sizeof(out->groups), "%s", info ? info->groups : cfg->tls.groups);
    if (info && info->sigalgs)
        snprintf(out->sigalgs, sizeof(out->sigalgs), "%s", info->sigalgs);
    out->fips_restricted = info && info->restricted;
    out->client_cert_requested = (SSL_CTX_get_verify_mode(ctx) & SSL_VERIFY_PEER) != 0;
    out->client_cert_required =
        (SSL_CTX_get_verify_mode(ctx) & SSL_VERIFY_FAIL_IF_NO_PEER_CERT) != 0;
    snprintf(out->crl_policy, sizeof(out->crl_policy), "%s",
             cfg->tls.require_crl ? "CRL required for every issuer"
                                  : "checked where the issuer has a CRL");

    /* Only the suites the certificate's key can actually serve. */
    EVP_PKEY *key = SSL_CTX_get0_privatekey(ctx);
    int key_auth = key && EVP_PKEY_is_a(key, "EC") ? NID_auth_ecdsa : NID_auth_rsa;
    struct strbuf b = STRBUF_INIT;
    STACK_OF(SSL_CIPHER) *ciphers = SSL_CTX_get_ciphers(ctx);
    for (int i = 0; i < sk_SSL_CIPHER_num(ciphers); i++) {
        const SSL_CIPHER *c = sk_SSL_CIPHER_value(ciphers, i);
        int auth = SSL_CIPHER_get_auth_nid(c);
        bool tls13 = strcmp(SSL_CIPHER_get_version(c), "TLSv1.3") == 0;
        if (!tls13 && SSL_CTX_get_min_proto_version(ctx) == TLS1_3_VERSION)
            continue;
        if (auth != NID_auth_any && auth != key_auth)
            continue;
        strbuf_puts(&b, b.len ? ", " : "");
        strbuf_puts(&b, SSL_CIPHER_get_name(c));
    }
    out->suites = strbuf_take(&b, NULL);
}

void tls_context_facts_free(struct tls_context_facts *f)
{
    free(f->suites);
    f->suites = NULL;
}
