/*
 * crypto/fips — Parley's cryptographic context: the FIPS mode, the OpenSSL
 * library context every algorithm is fetched from, and what status says.
 *
 * security.fips = auto | on | approved-only | off:
 *   on             OpenSSL's `fips` provider (and `base`, for encoders) in
 *                  Parley's own library context, default properties
 *                  "fips=yes"; start is refused when it cannot be loaded or
 *                  its self-test fails
 *   approved-only  the same restrictions on algorithms, with the `default`
 *                  provider (no validated module: status says so)
 *   off            the `default` provider, no restriction beyond Parley's
 *                  own defaults
 *   auto           on when the kernel says it runs in FIPS mode (the file
 *                  security.fips_enabled_file, /proc/sys/crypto/fips_enabled
 *                  by default, holds 1) or OpenSSL's default properties
 *                  already ask for fips=yes; else off
 *
 * One fips_ctx per process, made at start before any other crypto module
 * is used (fips_open initialises digest, mac, sign and aead on it); every
 * other module that fetches algorithms takes fips_libctx()/fips_propq().
 * After fips_open, the getters may be called from any thread.
 *
 * Randomness: keys, secrets and nonces come from the context's private DRBG
 * (fips_random, and core/random's random_secret once the program installs
 * fips_secret_source). SIP tags, branches and Call-IDs (random_token) are
 * identifiers, not secrets, and the hash tables' SipHash seed (core/hmap)
 * protects against flooding, not a secret: both stay on the kernel.
 */
#ifndef PARLEY_CRYPTO_FIPS_H
#define PARLEY_CRYPTO_FIPS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/types.h>

/* The kernel's FIPS switch: security.fips_enabled_file's default. */
#define FIPS_ENABLED_FILE_DEFAULT "/proc/sys/crypto/fips_enabled"

enum fips_setting { FIPS_SETTING_AUTO, FIPS_SETTING_ON, FIPS_SETTING_APPROVED, FIPS_SETTING_OFF };
enum fips_mode { FIPS_MODE_OFF, FIPS_MODE_APPROVED, FIPS_MODE_ON };

/* "auto" | "on" | "approved-only" | "off". 0 or -EINVAL. */
int fips_setting_parse(const char *text, enum fips_setting *out);
/* "off" | "approved-only" | "on" */
const char *fips_mode_name(enum fips_mode mode);

/* What a setting means on this machine: auto reads fips_enabled_file
 * ("1" there means on; a missing file means off) and OpenSSL's default
 * properties. *why (may be NULL) says in words what decided it. */
enum fips_mode fips_resolve(enum fips_setting setting, const char *fips_enabled_file,
                            const char **why);

struct fips_ctx;

/* Makes the library context for mode and initialises the crypto modules
 * on it, then runs crypto/selftest's known-answer tests. Mode on also
 * loads OpenSSL's configuration file (OPENSSL_CONF, else the one in
 * OpenSSL's directory) into the context: the fips provider's own
 * configuration (`openssl fipsinstall`'s output) is found through it.
 * -ENOENT with err naming what is missing and how to install or configure
 * it (FIPS_MODE_ON without a fips.so in OPENSSL_MODULES), -EIO when the
 * provider does not load (its self-test or configuration) or a known-answer
 * test fails (err names it), -ENOTSUP when an algorithm Parley needs is not
 * offered, -ENOMEM. Once only per process at a time: the crypto modules'
 * algorithms are process-wide. */
int fips_open(enum fips_mode mode, struct fips_ctx **out, char *err, size_t errlen);
void fips_close(struct fips_ctx *c);

enum fips_mode fips_mode(const struct fips_ctx *c);
/* approved-only or on: algorithms narrow to the approved ones */
bool fips_restricted(const struct fips_ctx *c);
OSSL_LIB_CTX *fips_libctx(const struct fips_ctx *c);
/* "fips=yes" in mode on, NULL otherwise */
const char *fips_propq(const struct fips_ctx *c);
/* For status: "on (provider OpenSSL FIPS Provider 3.0.9, self-test passed)",
 * "approved-only (no validated module)", "off". */
const char *fips_describe(const struct fips_ctx *c);
/* Mode on: the validated module's name and version ("OpenSSL FIPS Provider
 * 3.0.9"); NULL in the other modes. */
const char *fips_provider(const struct fips_ctx *c);
/* Mode on: algorithms come from a (separately) validated module. */
bool fips_validated_module(const struct fips_ctx *c);
/* How many of crypto/selftest's known-answer tests fips_open ran and
 * passed (it fails otherwise). */
int fips_self_tests(const struct fips_ctx *c);

/* len bytes from the context's private DRBG (RAND_priv_bytes_ex), for keys
 * and secrets. 0, -EINVAL or -EIO. */
int fips_random(const struct fips_ctx *c, void *buf, size_t len);
/* fips_random with the context as an opaque argument: the shape of
 * core/random's random_secret source (random_set_secret_source), so that
 * random_secret's callers (nonce keys, relay secrets, tag keys) draw from
 * the context's DRBG without knowing crypto. */
int fips_secret_source(void *ctx, void *buf, size_t len);

#endif
