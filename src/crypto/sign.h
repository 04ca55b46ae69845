/*
 * crypto/sign — ES256 (ECDSA on P-256 with SHA-256, RFC 7518 §3.4): the
 * signing keys of web tickets (JWT).
 *
 * A key is a P-256 private key and its public half, kept in PKCS#8 PEM on
 * disk. Signatures are JWS's raw form: r || s, 32 bytes each, big-endian,
 * not DER. Verification refuses anything else before OpenSSL sees it: a
 * length other than 64, r or s zero or not below the group order.
 *
 * Everything goes through OpenSSL 3 EVP on the library context the caller
 * gives (NULL: the default), so a FIPS provider covers it. sign_init()
 * fetches SHA-256 and the EC key management and signature implementations
 * once; a program that never calls it gets the default library context,
 * prepared on first use. Keys remember the library context and property
 * query they were made or loaded with (the caller keeps the context alive).
 *
 * After initialisation every function may be called from any thread: a
 * key is immutable once made (signing and verifying read it only), so one
 * key may sign on one thread and verify on another. sign_init() and
 * sign_cleanup() must not run concurrently with anything else here.
 */
#ifndef PARLEY_CRYPTO_SIGN_H
#define PARLEY_CRYPTO_SIGN_H

#include <stddef.h>

#include <openssl/types.h>

#define SIGN_ES256_LEN  64 /* r || s */
#define SIGN_KEY_ID_LEN 16 /* base64url of 12 bytes */
#define SIGN_SHA256_LEN 32

struct sign_key; /* opaque: a P-256 private key (and its public half) */

/* Fetches SHA-256, the EC key management and ECDSA from libctx with propq.
 * Calling it again replaces what was fetched. Returns 0 or -ENOTSUP. */
int sign_init(OSSL_LIB_CTX *libctx, const char *propq);
void sign_cleanup(void);

/* A fresh key from the library context's private DRBG. Returns 0, -ENOTSUP,
 * -ENOMEM or -EIO. */
int sign_key_generate(OSSL_LIB_CTX *libctx, const char *propq, struct sign_key **out);
/* PKCS#8 PEM ("BEGIN PRIVATE KEY", unencrypted), malloc'd and NUL-terminated;
 * the caller cleanses and frees it. Returns 0, -EINVAL, -ENOMEM or -EIO. */
int sign_key_to_pem(const struct sign_key *k, char **pem_out, size_t *len_out);
/* Reads a PEM private key. -EINVAL: not a valid P-256 private key (an RSA
 * or P-384 key, a public key alone, a key whose halves do not match). */
int sign_key_from_pem(OSSL_LIB_CTX *libctx, const char *propq, const char *pem, size_t len,
                      struct sign_key **out);
void sign_key_free(struct sign_key *k);

/* The key id: base64url (no padding) of the first 12 bytes of SHA-256 over
 * the public key's DER SubjectPublicKeyInfo, 16 characters and a NUL.
 * Computed when the key was made; returns 0 or -EINVAL. */
int sign_key_id(const struct sign_key *k, char out[17]);

/* JWS ES256 signature of data[0..len) into sig (r || s). Returns 0, -EINVAL,
 * -ENOTSUP, -ENOMEM or -EIO. */
int sign_es256(const struct sign_key *k, const void *data, size_t len,
               unsigned char sig[SIGN_ES256_LEN]);
/* 0 when sig is a valid ES256 signature of data under k's public half;
 * -EBADMSG when it is not (wrong length, r or s zero or out of range,
 * mismatch); -EINVAL for NULL arguments, -ENOTSUP/-ENOMEM/-EIO otherwise. */
int sign_es256_verify(const struct sign_key *k, const void *data, size_t len,
                      const unsigned char *sig, size_t siglen);

/* SHA-256 with the prefetched implementation (token digests, key ids).
 * Returns 0, -ENOTSUP or -EIO. */
int sign_sha256(const void *data, size_t len, unsigned char out[SIGN_SHA256_LEN]);

#endif
