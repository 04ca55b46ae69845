/*
 * tls/expiry — certificates that expire soon, said in the log before they
 * do: the server's own, the CAs it trusts, partners' as last presented.
 *
 * `cert.expiring` (or `cert.expired`) once fewer than TLS_EXPIRY_WARN_DAYS
 * are left; the server calls these at start-up and daily.
 */
#ifndef PARLEY_TLS_EXPIRY_H
#define PARLEY_TLS_EXPIRY_H

#include <stdint.h>

#include "core/config.h"
#include "tls/cert.h"

#define TLS_EXPIRY_WARN_DAYS 30

/* The server certificate, tls.ca_files and the CAs added with `parleyctl
 * trust add`, each certificate of each file. now: Unix seconds. */
void tls_expiry_check_files(const struct config *cfg, int64_t now);
/* A partner's certificate, from its summary. */
void tls_expiry_check_partner(const char *domain, const struct cert_summary *s, int64_t now);

#endif
