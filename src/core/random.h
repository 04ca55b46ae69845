/*
 * random — identifiers that must not repeat or be guessed cheaply (SIP
 * tags, branches, Call-IDs). Secrets (nonce keys, passwords) use
 * random_secret(), which reads the kernel's generator directly.
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
/* Kernel randomness for keys; returns 0 or -EIO. */
int random_secret(void *out, size_t len);

#endif
