/*
 * crypto/encoding — base64 (RFC 4648 §4) and base64url (RFC 4648 §5).
 *
 * Standard base64 is written and read with '=' padding (TURN passwords,
 * PEM-like payloads); base64url is written and read without padding
 * (nonces, tokens that travel in URIs and quoted strings).
 *
 * Decoding is strict, because what is decoded comes from the network and
 * is often compared or used as a table key: the alphabet of the variant
 * only, no whitespace, padding exactly as the variant says, and the unused
 * low bits of the last character must be zero. So each byte string has
 * exactly one accepted encoding.
 *
 * Pure functions, safe from any thread.
 */
#ifndef PARLEY_CRYPTO_ENCODING_H
#define PARLEY_CRYPTO_ENCODING_H

#include <stddef.h>

#include "core/strview.h"

enum base64_variant {
    BASE64_STD, /* A-Z a-z 0-9 + /, padded with '=' */
    BASE64_URL, /* A-Z a-z 0-9 - _, no padding */
};

/* Characters base64_encode writes for n bytes, without the NUL. */
#define BASE64_STD_LEN(n) ((((n) + 2) / 3) * 4)
#define BASE64_URL_LEN(n) (((n) / 3) * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))
/* Bytes base64_decode may write for an input of n characters (an upper
 * bound for both variants). */
#define BASE64_DECODED_MAX(n) (((n) / 4) * 3 + 2)

/* Writes the encoding of data[0..n) and a NUL into out (cap bytes, which
 * must hold the length above plus one). *outlen (may be NULL) gets the
 * length without the NUL. Returns 0, -EINVAL (NULL argument with n > 0,
 * unknown variant) or -ENOSPC (out too small; out is then "" when cap > 0). */
int base64_encode(enum base64_variant v, const void *data, size_t n, char *out, size_t cap,
                  size_t *outlen);

/* Decodes in into out (cap bytes) and sets *outlen. Returns 0, -EINVAL
 * (not a valid, canonical encoding of the variant) or -ENOSPC (out too
 * small). Nothing useful is left in out on failure. */
int base64_decode(enum base64_variant v, struct strview in, unsigned char *out, size_t cap,
                  size_t *outlen);

#endif
