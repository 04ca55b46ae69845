/*
 * parleyctl trust add|remove|list and cert request|install|revoke: the
 * certificates a node trusts and presents.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/strbuf.h"
#include "crypto/fips.h"
#include "crypto/pki.h"
#include "crypto/sign.h"
#include "ctl/ctl.h"
#include "tls/cert.h"
#include "tls/context.h"

static void cert_path(struct ctl *ctl, const char *rel, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", ctl->cfg->state_dir, rel);
}

/* SHA-256 fingerprint, lower-case hex without separators. */
static void cert_fingerprint(X509 *x, char out[65])
{
    /* SHA-256 of the DER encoding (what X509_digest computes), through
     * crypto/sign on the configured library context */
    unsigned char md[SIGN_SHA256_LEN], *der = NULL;
    int len = i2d_X509(x, &der);
    out[0] = '\0';
    if (len <= 0 || sign_sha256(der, (size_t)len, md) != 0) {
        OPENSSL_free(der);
        return;
    }
    OPENSSL_free(der);
    for (unsigned i = 0; i < SIGN_SHA256_LEN; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static int cert_write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    int rc = 0;
    if (write(fd, data, len) != (ssize_t)len || fsync(fd) != 0)
        rc = -errno ? -errno : -EIO;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc)
        unlink(tmp);
    return rc;
}

static char *cert_read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct strbuf b = STRBUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0 && b.len < 1024 * 1024)
        strbuf_append(&b, chunk, n);
    fclose(f);
    return strbuf_take(&b, len);
}

/* --- trust ----------------------------------------------------------------- */

struct trust_entry_ctx {
    json_t *arr;
    struct strbuf *text;
};

static void trust_describe(const char *file, const char *source, struct trust_entry_ctx *tc)
{
    BIO *bio = BIO_new_file(file, "r");
    X509 *x;
    if (!bio)
        return;
    while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        struct cert_summary s;
        char fp[65];
        cert_fingerprint(x, fp);
        if (cert_summarize(x, &s) == 0) {
            char days[32];
            snprintf(days, sizeof(days), "%lld", (long long)cert_days_left(x, (int64_t)time(NULL)));
            json_array_append_new(tc->arr,
                                  json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "subject", s.subject,
                                            "issuer", s.issuer, "fingerprint", fp, "file", file,
                                            "source", source, "days_left", days));
            strbuf_printf(tc->text, "%s\n  fingerprint %s\n  %s (%s), %s days left\n", s.subject,
                          fp, file, source, days);
        }
        X509_free(x);
    }
    BIO_free(bio);
    ERR_clear_error();
}

static int trust_list(struct ctl *ctl)
{
    struct strbuf text = STRBUF_INIT;
    struct trust_entry_ctx tc = {json_array(), &text};
    for (size_t i = 0; i < ctl->cfg->tls.ca_files.n; i++)
        trust_describe(ctl->cfg->tls.ca_files.v[i], "tls.ca_files", &tc);
    char dir[4096];
    cert_path(ctl, TLS_TRUSTED_DIR, dir, sizeof(dir));
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            size_t n = strlen(de->d_name);
            if (n < 5 || strcmp(de->d_name + n - 4, ".pem") != 0)
                continue;
            char f[4400];
            snprintf(f, sizeof(f), "%s/%s", dir, de->d_name);
            trust_describe(f, "trust add", &tc);
        }
        closedir(d);
    }
    ctl_done(ctl, json_pack("{s:o}", "trusted", tc.arr), strbuf_cstr(&text));
    strbuf_free(&text);
    return CTL_OK;
}

static int trust_add(struct ctl *ctl, const char *file)
{
    X509 *x = NULL;
    char err[512];
    if (pki_cert_load(file, &x, err, sizeof(err)) != 0)
        return ctl_fail(ctl, "%s", err);
    int rc = CTL_OK;
    if (X509_check_ca(x) < 1) {
        rc =
            ctl_fail(ctl, "%s is not a CA certificate (basicConstraints CA:TRUE is missing)", file);
        goto out;
    }
    if (cert_days_left(x, (int64_t)time(NULL)) < 0) {
        rc = ctl_fail(ctl, "%s has expired", file);
        goto out;
    }
    char dir[4096], fp[65], dest[4400];
    cert_path(ctl, TLS_TRUSTED_DIR, dir, sizeof(dir));
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        rc = ctl_fail(ctl, "%s: cannot create: %s", dir, strerror(errno));
        goto out;
    }
    cert_fingerprint(x, fp);
    snprintf(dest, sizeof(dest), "%s/%.16s.pem", dir, fp);
    BIO *mem = BIO_new(BIO_s_mem());
    char *data = NULL;
    long len = 0;
    if (!mem || !PEM_write_bio_X509(mem, x) || (len = BIO_get_mem_data(mem, &data)) <= 0) {
        BIO_free(mem);
        rc = ctl_fail(ctl, "cannot encode the certificate");
        goto out;
    }
    int wr = cert_write_file(dest, data, (size_t)len, 0644);
    BIO_free(mem);
    if (wr) {
        rc = ctl_fail(ctl, "%s: cannot write: %s", dest, strerror(-wr));
        goto out;
    }
    struct cert_summary s;
    cert_summarize(x, &s);
    char msg[8192];
    snprintf(msg, sizeof(msg),
             "trusted %s (fingerprint %s), stored as %s; `parleyctl reload` applies it", s.subject,
             fp, dest);
    ctl_done(ctl,
             json_pack("{s:s, s:s, s:s}", "subject", s.subject, "fingerprint", fp, "file", dest),
             msg);
out:
    X509_free(x);
    return rc;
}

static int trust_remove(struct ctl *ctl, const char *what)
{
    char dir[4096];
    cert_path(ctl, TLS_TRUSTED_DIR, dir, sizeof(dir));
    char fp[65] = "";
    X509 *x = NULL;
    char err[512];
    if (access(what, R_OK) == 0 && pki_cert_load(what, &x, err, sizeof(err)) == 0) {
        cert_fingerprint(x, fp);
        X509_free(x);
    } else {
        snprintf(fp, sizeof(fp), "%s", what);
    }
    if (strlen(fp) < 16)
        return ctl_usage(ctl, "give the certificate file or at least 16 hex digits of its "
                              "fingerprint (see `parleyctl trust list`)");
    char dest[4400];
    snprintf(dest, sizeof(dest), "%s/%.16s.pem", dir, fp);
    if (unlink(dest) != 0)
        return ctl_fail(ctl,
                        "no trusted certificate %s in %s (certificates from tls.ca_files "
                        "are removed by changing tls.ca_files)",
                        fp, dir);
    char msg[8192];
    snprintf(msg, sizeof(msg), "removed %s; `parleyctl reload` applies it", dest);
    return ctl_done(ctl, json_pack("{s:s}", "removed", dest), msg);
}

/* --- cert ------------------------------------------------------------------- */

static int cert_request(struct ctl *ctl)
{
    char csr[4096], name[300], domain_name[300];
    cert_path(ctl, "pki/server.csr", csr, sizeof(csr));
    snprintf(name, sizeof(name), "sip.%s", ctl->cfg->server.domain);
    snprintf(domain_name, sizeof(domain_name), "%s", ctl->cfg->server.domain);
    const char *names[] = {name, domain_name, NULL};
    char err[512];
    unlink(csr); /* a request is cheap to remake */
    if (pki_csr_write(ctl->cfg->tls.private_key, name, names, csr, err, sizeof(err)) != 0)
        return ctl_fail(ctl, "%s", err);
    char msg[8192];
    snprintf(msg, sizeof(msg),
             "wrote %s for %s and %s; have a CA sign it, then `parleyctl cert install FILE`", csr,
             name, domain_name);
    return ctl_done(ctl, json_pack("{s:s}", "csr", csr), msg);
}

/* Does the certificate chain to what this node trusts? */
static int cert_verify_chain(struct ctl *ctl, const char *file, char *err, size_t errlen)
{
    OSSL_LIB_CTX *libctx = fips_libctx(ctl->fips);
    const char *propq = fips_propq(ctl->fips);
    X509_STORE *store = X509_STORE_new();
    STACK_OF(X509) *chain = sk_X509_new_null();
    X509 *leaf = NULL;
    X509_STORE_CTX *sctx = NULL;
    int rc = -EINVAL;
    if (!store || !chain)
        goto out;
    for (size_t i = 0; i < ctl->cfg->tls.ca_files.n; i++)
        X509_STORE_load_file_ex(store, ctl->cfg->tls.ca_files.v[i], libctx, propq);
    char dir[4096];
    cert_path(ctl, TLS_TRUSTED_DIR, dir, sizeof(dir));
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            size_t n = strlen(de->d_name);
            if (n >= 5 && strcmp(de->d_name + n - 4, ".pem") == 0) {
                char f[4400];
                snprintf(f, sizeof(f), "%s/%s", dir, de->d_name);
                X509_STORE_load_file_ex(store, f, libctx, propq);
            }
        }
        closedir(d);
    }
    BIO *bio = BIO_new_file(file, "r");
    /* each made on the context first: the chain's signatures are checked
     * with its algorithms */
    X509 *x = bio ? X509_new_ex(libctx, propq) : NULL;
    while (x && PEM_read_bio_X509(bio, &x, NULL, NULL) != NULL) {
        if (!leaf)
            leaf = x;
        else
            sk_X509_push(chain, x);
        x = X509_new_ex(libctx, propq);
    }
    X509_free(x);
    BIO_free(bio);
    ERR_clear_error();
    if (!leaf) {
        snprintf(err, errlen, "%s: no certificate found", file);
        goto out;
    }
    sctx = X509_STORE_CTX_new_ex(libctx, propq);
    if (!sctx || !X509_STORE_CTX_init(sctx, store, leaf, chain))
        goto out;
    X509_STORE_CTX_set_purpose(sctx, X509_PURPOSE_SSL_SERVER);
    if (X509_verify_cert(sctx) != 1) {
        snprintf(err, errlen, "%s does not chain to a trusted CA: %s", file,
                 X509_verify_cert_error_string(X509_STORE_CTX_get_error(sctx)));
        goto out;
    }
    rc = 0;
out:
    X509_STORE_CTX_free(sctx);
    X509_free(leaf);
    sk_X509_pop_free(chain, X509_free);
    X509_STORE_free(store);
    return rc;
}

static int cert_install(struct ctl *ctl, const char *file)
{
    char err[600];
    if (cert_check_keypair(file, ctl->cfg->tls.private_key, err, sizeof(err)) != 0)
        return ctl_fail(ctl, "%s", err);
    if (cert_verify_chain(ctl, file, err, sizeof(err)) != 0)
        return ctl_fail(ctl, "%s", err);
    size_t len;
    char *data = cert_read_all(file, &len);
    if (!data)
        return ctl_fail(ctl, "%s: cannot read", file);
    int wr = cert_write_file(ctl->cfg->tls.certificate, data, len, 0644);
    free(data);
    if (wr)
        return ctl_fail(ctl, "%s: cannot write: %s", ctl->cfg->tls.certificate, strerror(-wr));
    struct cert_summary s;
    cert_summarize_file(ctl->cfg->tls.certificate, &s, err, sizeof(err));
    /* the same certificate authenticates this node to federation partners */
    X509 *x = NULL;
    bool client_ok = pki_cert_load(ctl->cfg->tls.certificate, &x, err, sizeof(err)) == 0 &&
                     X509_check_purpose(x, X509_PURPOSE_SSL_CLIENT, 0) == 1;
    X509_free(x);
    char msg[8192];
    snprintf(msg, sizeof(msg), "installed %s (issued by %s) as %s; `parleyctl reload` serves it%s",
             s.subject, s.issuer, ctl->cfg->tls.certificate,
             client_ok ? ""
                       : "\nwarning: it is not valid for TLS client authentication, so "
                         "federation partners will refuse this node's connections");
    return ctl_done(ctl,
                    json_pack("{s:s, s:s, s:s}", "subject", s.subject, "issuer", s.issuer, "file",
                              ctl->cfg->tls.certificate),
                    msg);
}

static int cert_revoke(struct ctl *ctl, const char *what)
{
    char ca[4096], key[4096], crl[4096], err[600];
    cert_path(ctl, "pki/" PKI_CA_CERT_FILE, ca, sizeof(ca));
    cert_path(ctl, "pki/" PKI_CA_KEY_FILE, key, sizeof(key));
    cert_path(ctl, "pki/" PKI_CRL_FILE, crl, sizeof(crl));
    if (pki_revoke(ca, key, crl, what, err, sizeof(err)) != 0)
        return ctl_fail(ctl, "%s", err);
    char msg[8192];
    snprintf(msg, sizeof(msg), "revoked %s; %s rewritten; `parleyctl reload` applies it", what,
             crl);
    return ctl_done(ctl, json_pack("{s:s, s:s}", "revoked", what, "crl", crl), msg);
}

int cmd_trust(struct ctl *ctl)
{
    int rc = ctl_open_crypto(ctl); /* fingerprints on the configured context */
    if (rc)
        return rc;
    if (ctl->argc == 1 && strcmp(ctl->argv[0], "list") == 0)
        return trust_list(ctl);
    if (ctl->argc == 2 && strcmp(ctl->argv[0], "add") == 0)
        return trust_add(ctl, ctl->argv[1]);
    if (ctl->argc == 2 && strcmp(ctl->argv[0], "remove") == 0)
        return trust_remove(ctl, ctl->argv[1]);
    return ctl_usage(ctl, "usage: trust add FILE | trust remove FILE|FINGERPRINT | trust list");
}

int cmd_cert(struct ctl *ctl)
{
    /* keys, requests and CRL signatures on the configured context */
    int rc = ctl_open_crypto(ctl);
    if (rc)
        return rc;
    if (ctl->argc == 1 && strcmp(ctl->argv[0], "request") == 0)
        return cert_request(ctl);
    if (ctl->argc == 2 && strcmp(ctl->argv[0], "install") == 0)
        return cert_install(ctl, ctl->argv[1]);
    if (ctl->argc == 2 && strcmp(ctl->argv[0], "revoke") == 0)
        return cert_revoke(ctl, ctl->argv[1]);
    return ctl_usage(ctl, "usage: cert request | cert install FILE | cert revoke FILE|SERIAL");
}
