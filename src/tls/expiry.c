/*
 * tls/expiry — warnings about certificates that expire soon (see expiry.h).
 */
#include "tls/expiry.h"

#include <dirent.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "tls/context.h"

static void expiry_warn(X509 *x, const char *what, int64_t now)
{
    int64_t days = cert_days_left(x, now);
    if (days >= TLS_EXPIRY_WARN_DAYS)
        return;
    struct cert_summary s;
    if (cert_summarize(x, &s) != 0)
        return;
    char when[32];
    struct tm tm;
    time_t t = (time_t)s.not_after;
    gmtime_r(&t, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    log_warn(days < 0 ? "cert.expired" : "cert.expiring", "certificate", what, "subject", s.subject,
             "issuer", s.issuer, "not_after", when, "days_left", LOG_INT(days));
}

static void expiry_check_file(const char *path, const char *what, int64_t now)
{
    BIO *bio = BIO_new_file(path, "r");
    X509 *x;
    while (bio && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        expiry_warn(x, what, now);
        X509_free(x);
    }
    BIO_free(bio);
    ERR_clear_error();
}

void tls_expiry_check_files(const struct config *cfg, int64_t now)
{
    expiry_check_file(cfg->tls.certificate, "server", now);
    for (size_t i = 0; i < cfg->tls.ca_files.n; i++)
        expiry_check_file(cfg->tls.ca_files.v[i], "trusted CA", now);
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/" TLS_TRUSTED_DIR, cfg->state_dir);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n < 5 || strcmp(de->d_name + n - 4, ".pem") != 0)
            continue;
        char f[4400];
        snprintf(f, sizeof(f), "%s/%s", dir, de->d_name);
        expiry_check_file(f, "trusted CA", now);
    }
    closedir(d);
}

void tls_expiry_check_partner(const char *domain, const struct cert_summary *s, int64_t now)
{
    int64_t days = (s->not_after - now) / 86400;
    if (days < TLS_EXPIRY_WARN_DAYS)
        log_warn(days < 0 ? "cert.expired" : "cert.expiring", "certificate", "partner", "partner",
                 domain, "subject", s->subject, "issuer", s->issuer, "days_left", LOG_INT(days));
}
