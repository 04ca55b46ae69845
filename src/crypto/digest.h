/*
 * crypto/digest — HTTP/SIP Digest authentication (RFC 7616, RFC 8760 for
 * SIP, RFC 2617/2069 for old clients): HA1, the response, a constant-time
 * comparison and a parser for the credentials a client sends.
 *
 * Algorithms are MD5 and SHA-256, qop=auth or none. The -sess variants and
 * qop=auth-int are not offered: SIP clients do not need them and each one is
 * a way to get the computation subtly wrong.
 *
 * The EVP_MD objects are fetched once by digest_init() (OpenSSL 3 implicit
 * fetches are slow and lock). After digest_init() returns, every function
 * here may be called from any thread; digest_init() and digest_cleanup()
 * themselves must not run concurrently with anything else in this module.
 *
 * A fetch that fails (MD5 under the FIPS provider, for instance) leaves that
 * algorithm unavailable: digest_alg_available() says so and the computing
 * functions return -ENOTSUP for it, so the caller can refuse the client
 * with a clear reason.
 *
 * Hex digests are lowercase, as the RFCs write them. Output buffers are
 * DIGEST_HEX_BUF bytes (enough for SHA-256) and NUL-terminated.
 */
#ifndef PARLEY_CRYPTO_DIGEST_H
#define PARLEY_CRYPTO_DIGEST_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/types.h>

#include "core/strview.h"

enum digest_alg {
    DIGEST_ALG_MD5 = 0,
    DIGEST_ALG_SHA256 = 1,
};

#define DIGEST_ALG_COUNT 2
#define DIGEST_HEX_MAX   64                   /* longest hex digest (SHA-256) */
#define DIGEST_HEX_BUF   (DIGEST_HEX_MAX + 1) /* with its NUL */

/* Fetches the algorithms from libctx (NULL: the default context) with the
 * property query propq (NULL: none; "fips=yes" narrows to approved
 * implementations). Calling it again replaces the previous fetches.
 * Returns 0 when at least one algorithm is available, -ENOTSUP when none
 * is (the module is then unusable, but digest_cleanup() is still safe). */
int digest_init(OSSL_LIB_CTX *libctx, const char *propq);
/* Frees the fetched algorithms; everything becomes unavailable. */
void digest_cleanup(void);

/* Makes alg unavailable until the next digest_init: a restricted FIPS
 * mode drops MD5 even where the provider has it, so no new caller can use
 * it by mistake. 0 or -EINVAL. */
int digest_forget(enum digest_alg alg);

bool digest_alg_available(enum digest_alg alg);

/* "MD5" or "SHA-256", any case. Returns 0 or -EINVAL (unknown, including
 * the -sess variants). An absent algorithm parameter means MD5 in RFC 7616,
 * but that is for the caller to decide: an empty view is -EINVAL here. */
int digest_alg_parse(struct strview name, enum digest_alg *out);
/* "MD5" / "SHA-256"; "?" for a value outside the enum. */
const char *digest_alg_name(enum digest_alg alg);
/* 32 / 64; 0 for a value outside the enum. */
size_t digest_alg_hex_len(enum digest_alg alg);

/* HA1 = H(user ":" realm ":" password), what the store keeps instead of the
 * password. Returns 0, -EINVAL (NULL argument or unknown alg), -ENOTSUP
 * (alg unavailable) or -EIO (OpenSSL failed). */
int digest_ha1(enum digest_alg alg, const char *user, const char *realm, const char *password,
               char out[DIGEST_HEX_BUF]);

/* The response the client should have sent:
 *   qop empty:  H(HA1 ":" nonce ":" HA2)                           (RFC 2069)
 *   qop "auth": H(HA1 ":" nonce ":" nc ":" cnonce ":" qop ":" HA2)  (RFC 7616)
 * with HA2 = H(method ":" digest_uri). ha1_hex must be digest_alg_hex_len(alg)
 * lowercase hex digits. The views are used as received (unescaped: the
 * caller unescapes quoted values first). Returns 0, -EINVAL (bad ha1_hex,
 * empty nonce, or qop given without nc/cnonce), -ENOTSUP (alg unavailable,
 * or a qop other than "auth", matched case-insensitively) or -EIO. */
int digest_response(enum digest_alg alg, const char *ha1_hex, struct strview nonce,
                    struct strview nc, struct strview cnonce, struct strview qop,
                    struct strview method, struct strview digest_uri, char out[DIGEST_HEX_BUF]);

/* H(data) as lowercase hex (a metrics token's digest, say). 0, -EINVAL,
 * -ENOTSUP (the algorithm is not available here) or -EIO. */
int digest_hash_hex(enum digest_alg alg, struct strview data, char out[DIGEST_HEX_BUF]);

/* Compares the expected hex digest (ours, NUL-terminated, at most
 * DIGEST_HEX_MAX characters) with the one received, ignoring the case of
 * letters. The time taken does not depend on where the two differ, nor on
 * the received length (it is compared after the contents, without early
 * exit). Returns false for NULL or an overlong expected value. */
bool digest_hex_equal(const char *expected, struct strview got);

/* Bounds for digest_credentials_parse(). */
#define DIGEST_CRED_HEADER_MAX 4096 /* whole header value */
#define DIGEST_CRED_VALUE_MAX  1024 /* one parameter's value, as received */
#define DIGEST_CRED_PARAMS_MAX 32   /* parameters, unknown ones included */

/* The parameters of an Authorization / Proxy-Authorization header value.
 * Every view points into the parsed input (which must outlive them); an
 * absent parameter is an empty view. Quoted values are given without their
 * quotes but with their backslash escapes: use digest_unescape() before
 * using one as a string. Tokens have nothing to unescape. */
struct digest_credentials {
    struct strview username;
    struct strview realm;
    struct strview nonce;
    struct strview uri;
    struct strview response;
    struct strview algorithm; /* empty: absent (RFC 7616: means MD5) */
    struct strview cnonce;
    struct strview opaque;
    struct strview qop;
    struct strview nc;
};

/* Parses `Digest username="..", realm="..", ...`: the scheme in any case,
 * then comma-separated name=value parameters in any order, each value a
 * token or a quoted-string; parameter names in any case; unknown ones are
 * ignored. Refuses with -EINVAL: another scheme, a syntax error, an empty
 * list element, a duplicated parameter, a value, header or parameter count
 * over the bounds above, a missing or empty username / realm / nonce / uri
 * / response, and (when qop is present) a missing cnonce or an nc that is
 * not 8 hex digits. *out is zeroed on failure. */
int digest_credentials_parse(struct strview header_value, struct digest_credentials *out);

/* Copies a value with its backslash escapes removed into dst (always
 * NUL-terminated when cap > 0). Returns 0, -ENOSPC when it does not fit,
 * or -EINVAL for a trailing lone backslash or a NUL character (which
 * would silently shorten the C string). */
int digest_unescape(struct strview v, char *dst, size_t cap);

#endif
