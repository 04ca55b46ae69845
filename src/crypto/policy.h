/*
 * crypto/policy — the algorithm facts Parley's policies are built from.
 *
 * For now: the SDES SRTP crypto suites (RFC 4568, RFC 6188, RFC 7714)
 * Parley knows, with their master key and salt lengths, whether they
 * encrypt and authenticate, and whether they are FIPS-approved. The media
 * policy (media/policy.h) only ever counts a suite as encryption when it is
 * known here, encrypts and authenticates, and is in the configured list;
 * FIPS mode narrows that list with crypto_srtp_suites_narrow_fips().
 *
 * Suite names are compared case-sensitively, as RFC 4568 registers them.
 * Pure functions over a constant table, safe from any thread.
 */
#ifndef PARLEY_CRYPTO_POLICY_H
#define PARLEY_CRYPTO_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "core/strview.h"

struct crypto_srtp_suite {
    const char *name; /* "AES_CM_128_HMAC_SHA1_80" */
    size_t key_len;   /* master key, bytes */
    size_t salt_len;  /* master salt, bytes; inline keys carry key || salt */
    bool encrypts;    /* false for the NULL cipher suites */
    bool authenticates;
    bool fips; /* AES-CM with HMAC-SHA1, AES-GCM: approved; F8 and NULL: not */
};

/* The table entry for name, or NULL when Parley does not know the suite. */
const struct crypto_srtp_suite *crypto_srtp_suite_find(struct strview name);

bool crypto_srtp_suite_known(struct strview name);
/* Known, encrypts and authenticates: could ever count as encryption. */
bool crypto_srtp_suite_protects(struct strview name);
/* Known and FIPS-approved (false for unknown suites). */
bool crypto_srtp_suite_fips(struct strview name);
/* Bytes an inline key of the suite decodes to (key + salt); 0 when unknown. */
size_t crypto_srtp_suite_inline_len(struct strview name);

/* Every suite in the table, in table order (for documentation and tests). */
const struct crypto_srtp_suite *crypto_srtp_suites_all(size_t *n);

/* The default allowed list (media.srtp_suites): AES_CM_128_HMAC_SHA1_80,
 * AEAD_AES_128_GCM, AEAD_AES_256_GCM. Static storage. */
const char *const *crypto_srtp_suites_default(size_t *n);

/* Copies to out (cap entries) those of in[0..n) that are known, protect
 * and are FIPS-approved, keeping their order; returns how many it kept
 * (never more than cap). The strings are not copied. */
size_t crypto_srtp_suites_narrow_fips(const char *const *in, size_t n, const char **out,
                                      size_t cap);

#endif
