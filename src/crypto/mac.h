/*
 * crypto/mac — HMAC (RFC 2104) with SHA-256 and SHA-1, through OpenSSL 3's
 * EVP_MAC interface.
 *
 * Users: self-verifying digest nonces (HMAC-SHA256) and time-limited media
 * relay credentials (HMAC-SHA1, as TURN's REST-style shared secret scheme
 * and coturn expect).
 *
 * The HMAC implementation and, per hash, a context with its digest already
 * set are prepared once by mac_init(); each mac_hmac() call duplicates the
 * prepared context and keys it, so nothing is fetched per packet (OpenSSL
 * 3's implicit fetches are slow and take locks). A program that never
 * calls mac_init() gets the default library context, prepared on first
 * use (pthread_once).
 *
 * After initialisation mac_hmac() may be called from any thread;
 * mac_init() and mac_cleanup() must not run concurrently with anything
 * else in this module.
 */
#ifndef PARLEY_CRYPTO_MAC_H
#define PARLEY_CRYPTO_MAC_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/types.h>

enum mac_alg {
    MAC_HMAC_SHA256 = 0,
    MAC_HMAC_SHA1 = 1,
};

#define MAC_ALG_COUNT 2
#define MAC_MAX_SIZE  32 /* largest output (HMAC-SHA256) */

/* Fetches HMAC and prepares the hashes from libctx (NULL: the default
 * context) with the property query propq (NULL: none; "fips=yes" for
 * approved implementations only). Calling it again replaces what was
 * prepared. Returns 0 when at least one algorithm is usable, -ENOTSUP when
 * none is. */
int mac_init(OSSL_LIB_CTX *libctx, const char *propq);
/* Frees what mac_init() prepared; everything becomes unavailable (the
 * implicit first-use initialisation does not run again). */
void mac_cleanup(void);

/* Prepares the defaults first when mac_init() has not run. */
bool mac_alg_available(enum mac_alg alg);
/* "HMAC-SHA256" / "HMAC-SHA1"; "?" outside the enum. */
const char *mac_alg_name(enum mac_alg alg);
/* Output bytes: 32 / 20; 0 outside the enum. */
size_t mac_size(enum mac_alg alg);

/* out (MAC_MAX_SIZE bytes are always enough) gets the full HMAC of
 * data[0..len) under key[0..keylen); *outlen its length (mac_size(alg)).
 * key may be NULL only with keylen 0, data only with len 0.
 * Returns 0, -EINVAL, -ENOTSUP (algorithm unavailable), -ENOMEM or -EIO. */
int mac_hmac(enum mac_alg alg, const void *key, size_t keylen, const void *data, size_t len,
             unsigned char out[MAC_MAX_SIZE], size_t *outlen);

#endif
