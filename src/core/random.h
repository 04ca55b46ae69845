/*
 * random — identifiers that must not repeat or be guessed cheaply (SIP
 * tags, branches, Call-IDs). Secrets (nonce keys, passwords) use
 * random_secret(): the kernel's generator, or the source the program
 * installs once at start (parleyd and parleyctl: the private DRBG of
 * their OpenSSL library context, crypto/fips's fips_secret_source, so that
 * secrets come from the approved generator under FIPS). core cannot call
 * crypto (a higher layer): the program hands the source down.
 */
#ifndef PARLEY_CORE_RANDOM_H
#define PARLEY_CORE_RANDOM_H

#include <stddef.h>
#include <stdint.h>

/* Fills out with len lowercase alphanumeric characters and a NUL
 * (out must hold len + 1). Fast: a per-thread generator seeded from the
 * kernel. */
void random_token(char *out, size_t len);
uint64_t random_u64(void);
/* Randomness for keys and secrets from the installed source (the kernel's
 * until one is); returns 0 or -EIO. */
int random_secret(void *out, size_t len);

/* Installs random_secret's source: fill(arg, out, len) returns 0 or a
 * negative errno. NULL goes back to the kernel. Call before threads start
 * and uninstall before arg goes away (a process-wide setting, like
 * config_install_keys). */
void random_set_secret_source(int (*fill)(void *arg, void *out, size_t len), void *arg);

#endif
