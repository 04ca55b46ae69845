/*
 * crypto/selftest — known-answer tests of what Parley itself composes from
 * the provider's algorithms: SIP digest responses (RFC 7616 §3.9.1), the
 * TURN REST credential (base64 of HMAC-SHA1), AES-256-GCM (the sealing of
 * files and web state) and ES256 verification (web tickets, RFC 7515 A.3).
 * The provider tests its primitives itself (the fips provider at load);
 * these catch a provider or configuration that answers wrongly for the way
 * Parley uses it, at start rather than in a call.
 *
 * Runs on the modules as initialised (digest, mac, aead, sign: fips_open
 * does it on its library context). SRTP's key derivation lives above this
 * layer (rtp): the server runs that one itself.
 */
#ifndef PARLEY_CRYPTO_SELFTEST_H
#define PARLEY_CRYPTO_SELFTEST_H

#include <stdbool.h>

#include <openssl/types.h>

/* Runs every test; restricted skips the MD5 one (MD5 is not an approved
 * hash: under FIPS it is neither offered nor, with the fips provider,
 * available). libctx/propq: where the ES256 test key is decoded. Returns
 * the number of tests passed (>= 1), or -EIO with *failed (may be NULL)
 * naming the first test that failed. */
int selftest_run(OSSL_LIB_CTX *libctx, const char *propq, bool restricted, const char **failed);

#endif
