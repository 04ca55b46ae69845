/*
 * crypto/aead — AES-256-GCM (NIST SP 800-38D) for data at rest: 32-byte
 * keys, 12-byte nonces, 16-byte tags.
 *
 * The cipher is fetched once by aead_init() from the caller's library
 * context (NULL: the default; a FIPS provider's under "fips=yes"); a
 * program that never calls it gets the default context, prepared on first
 * use. Each call makes its own cipher context, so after initialisation
 * aead_seal() and aead_open() may run on any thread at once; aead_init()
 * and aead_cleanup() must not run concurrently with anything else here.
 *
 * A nonce must never repeat under one key: the callers say how theirs are
 * made (store/sealed: a fresh key per file and a counter).
 */
#ifndef PARLEY_CRYPTO_AEAD_H
#define PARLEY_CRYPTO_AEAD_H

#include <stddef.h>

#include <openssl/types.h>

#define AEAD_KEY_LEN   32
#define AEAD_NONCE_LEN 12
#define AEAD_TAG_LEN   16

/* Fetches "AES-256-GCM" once. Calling it again replaces it. Returns 0 or
 * -ENOTSUP. */
int aead_init(OSSL_LIB_CTX *libctx, const char *propq);
void aead_cleanup(void);

/* Encrypts in[0..len) into out (len bytes; out may be in) with aad
 * authenticated too, and writes the tag. Returns 0, -EINVAL (NULL with a
 * length, len or aadlen beyond INT_MAX), -ENOTSUP, -ENOMEM or -EIO. */
int aead_seal(const unsigned char key[AEAD_KEY_LEN], const unsigned char nonce[AEAD_NONCE_LEN],
              const void *aad, size_t aadlen, const void *in, size_t len, void *out,
              unsigned char tag[AEAD_TAG_LEN]);
/* Decrypts and authenticates. -EBADMSG when the tag does not match (then
 * out[0..len) is zeroed: nothing unauthenticated is left to use); other
 * errors as aead_seal. */
int aead_open(const unsigned char key[AEAD_KEY_LEN], const unsigned char nonce[AEAD_NONCE_LEN],
              const void *aad, size_t aadlen, const void *in, size_t len, void *out,
              const unsigned char tag[AEAD_TAG_LEN]);

/* len bytes from libctx's private DRBG (RAND_priv_bytes_ex), for keys.
 * Returns 0 or -EIO. */
int aead_random(OSSL_LIB_CTX *libctx, void *buf, size_t len);

#endif
