#include "core/hmap.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

int hmap_init(struct hmap *m, size_t expected)
{
    size_t n = 16;
    while (n < expected)
        n <<= 1;
    m->buckets = calloc(n, sizeof(*m->buckets));
    if (!m->buckets)
        return -ENOMEM;
    m->mask = n - 1;
    m->count = 0;
    return 0;
}

void hmap_destroy(struct hmap *m)
{
    free(m->buckets);
    m->buckets = NULL;
    m->mask = 0;
    m->count = 0;
}

static void hmap_grow(struct hmap *m)
{
    size_t n = (m->mask + 1) * 2;
    struct hmap_node **b = calloc(n, sizeof(*b));
    if (!b)
        return; /* longer chains, still correct */
    for (size_t i = 0; i <= m->mask; i++) {
        struct hmap_node *node = m->buckets[i];
        while (node) {
            struct hmap_node *next = node->next;
            size_t j = node->hash & (n - 1);
            node->next = b[j];
            b[j] = node;
            node = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->mask = n - 1;
}

void hmap_insert(struct hmap *m, struct hmap_node *n, uint64_t hash)
{
    if (m->count >= (m->mask + 1) * 2)
        hmap_grow(m);
    n->hash = hash;
    size_t i = hash & m->mask;
    n->next = m->buckets[i];
    m->buckets[i] = n;
    m->count++;
}

void hmap_remove(struct hmap *m, struct hmap_node *n)
{
    struct hmap_node **pp = &m->buckets[n->hash & m->mask];
    while (*pp) {
        if (*pp == n) {
            *pp = n->next;
            n->next = NULL;
            m->count--;
            return;
        }
        pp = &(*pp)->next;
    }
}

struct hmap_node *hmap_first(const struct hmap *m, uint64_t hash)
{
    struct hmap_node *n = m->buckets[hash & m->mask];
    while (n && n->hash != hash)
        n = n->next;
    return n;
}

struct hmap_node *hmap_next(const struct hmap_node *n, uint64_t hash)
{
    struct hmap_node *x = n->next;
    while (x && x->hash != hash)
        x = x->next;
    return x;
}

struct hmap_node *hmap_iter_first(const struct hmap *m, size_t *bucket)
{
    for (size_t i = 0; i <= m->mask; i++) {
        if (m->buckets[i]) {
            *bucket = i;
            return m->buckets[i];
        }
    }
    return NULL;
}

struct hmap_node *hmap_iter_next(const struct hmap *m, const struct hmap_node *n, size_t *bucket)
{
    if (n->next)
        return n->next;
    for (size_t i = *bucket + 1; i <= m->mask; i++) {
        if (m->buckets[i]) {
            *bucket = i;
            return m->buckets[i];
        }
    }
    return NULL;
}

/* --- SipHash-1-3 ------------------------------------------------------ */

static uint64_t hash_key[2];
static pthread_once_t hash_key_once = PTHREAD_ONCE_INIT;

static void hash_key_init(void)
{
    if (getrandom(hash_key, sizeof(hash_key), 0) != (ssize_t)sizeof(hash_key)) {
        /* Never expected on Linux; a fixed key still hashes correctly. */
        hash_key[0] = 0x736f6d6570736575ULL;
        hash_key[1] = 0x646f72616e646f6dULL;
    }
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

static uint64_t siphash13(const uint8_t *in, size_t len, bool fold)
{
    pthread_once(&hash_key_once, hash_key_init);
    uint64_t v0 = 0x736f6d6570736575ULL ^ hash_key[0];
    uint64_t v1 = 0x646f72616e646f6dULL ^ hash_key[1];
    uint64_t v2 = 0x6c7967656e657261ULL ^ hash_key[0];
    uint64_t v3 = 0x7465646279746573ULL ^ hash_key[1];
    uint64_t b = ((uint64_t)len) << 56;
    size_t i = 0;

    for (; i + 8 <= len; i += 8) {
        uint64_t m = 0;
        for (int k = 7; k >= 0; k--) {
            uint8_t c = in[i + (size_t)k];
            m = (m << 8) | (fold ? (uint8_t)tolower(c) : c);
        }
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    for (int k = (int)(len - i) - 1; k >= 0; k--) {
        uint8_t c = in[i + (size_t)k];
        b |= ((uint64_t)(fold ? (uint8_t)tolower(c) : c)) << (8 * k);
    }
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t hash_bytes(const void *data, size_t len)
{
    return siphash13(data, len, false);
}

uint64_t hash_bytes_nocase(const void *data, size_t len)
{
    return siphash13(data, len, true);
}

uint64_t hash_u64(uint64_t v)
{
    return siphash13((const uint8_t *)&v, sizeof(v), false);
}
