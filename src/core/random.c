#include "core/random.h"

#include <errno.h>
#include <stdbool.h>
#include <sys/random.h>

/* xoshiro256** per thread: tokens need to be unique and unpredictable to
 * an observer of a few of them, not to resist a cryptanalyst; the state is
 * reseeded from the kernel every 2^16 outputs. */
static _Thread_local uint64_t rng_state[4];
static _Thread_local unsigned rng_left;

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static void rng_seed(void)
{
    if (random_secret(rng_state, sizeof(rng_state)) != 0 ||
        (rng_state[0] | rng_state[1] | rng_state[2] | rng_state[3]) == 0) {
        rng_state[0] = 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)&rng_left;
        rng_state[1] = 0xbf58476d1ce4e5b9ULL;
        rng_state[2] = 0x94d049bb133111ebULL;
        rng_state[3] = 0x2545f4914f6cdd1dULL;
    }
    rng_left = 1u << 16;
}

uint64_t random_u64(void)
{
    if (rng_left == 0)
        rng_seed();
    rng_left--;
    uint64_t *s = rng_state;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

void random_token(char *out, size_t len)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    uint64_t bits = 0;
    int left = 0;
    for (size_t i = 0; i < len; i++) {
        if (left < 6) {
            bits = random_u64();
            left = 64;
        }
        /* 36 symbols from 6 bits: reject 36..63 to stay uniform */
        unsigned v;
        do {
            if (left < 6) {
                bits = random_u64();
                left = 64;
            }
            v = bits & 63;
            bits >>= 6;
            left -= 6;
        } while (v >= 36);
        out[i] = alphabet[v];
    }
    out[len] = '\0';
}

/* Set once at start, before threads, and reset after they end: read-only
 * while anything else runs. */
static int (*g_secret_fill)(void *arg, void *out, size_t len);
static void *g_secret_arg;

void random_set_secret_source(int (*fill)(void *arg, void *out, size_t len), void *arg)
{
    g_secret_fill = fill;
    g_secret_arg = fill ? arg : NULL;
}

int random_secret(void *out, size_t len)
{
    unsigned char *p = out;

    if (g_secret_fill)
        return g_secret_fill(g_secret_arg, out, len) == 0 ? 0 : -EIO;
    while (len) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -EIO;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}
