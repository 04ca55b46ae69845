/*
 * status — what this node actually enforces, as a JSON document: each
 * listener with its TLS versions, suites, client-certificate policy and
 * certificate, and the protection table of the product brief as
 * configured. parleyd answers it over the control socket (with runtime
 * figures); parleyctl builds the same document from the configuration
 * alone when no parleyd runs.
 */
#ifndef PARLEY_SERVER_STATUS_H
#define PARLEY_SERVER_STATUS_H

#include <jansson.h>
#include <openssl/ssl.h>

#include "core/config.h"

struct runtime;
struct fips_ctx;

/* ctx may be NULL: a context is then built from cfg on fc (crypto/fips.h),
 * or the document says why TLS facts are missing; rt is NULL when built by
 * parleyctl without a running daemon. */
json_t *status_build(const struct config *cfg, SSL_CTX *ctx, const struct fips_ctx *fc,
                     const struct runtime *rt);

/* Every registered device: user, contact, transport, source, TLS version,
 * expiry. */
json_t *status_registrations(const struct runtime *rt);

#endif
