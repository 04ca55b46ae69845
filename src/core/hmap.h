/*
 * hmap — an intrusive hash table.
 *
 * Owners embed a struct hmap_node in their objects and compute the hash
 * with hash_bytes(), which is keyed with a per-process random secret: keys
 * such as Call-IDs and branches come from the network, and an unkeyed hash
 * would let a peer aim many of them at one bucket. Lookups walk the
 * entries of one hash and compare keys themselves:
 *
 *   uint64_t h = hash_bytes(key, len);
 *   for (struct hmap_node *n = hmap_first(&map, h); n; n = hmap_next(n, h)) {
 *       struct thing *t = container_of(n, struct thing, node);
 *       if (key matches t) return t;
 *   }
 *
 * Not thread-safe: each table belongs to one thread.
 */
#ifndef PARLEY_CORE_HMAP_H
#define PARLEY_CORE_HMAP_H

#include <stddef.h>
#include <stdint.h>

#ifndef container_of
#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))
#endif

struct hmap_node {
    struct hmap_node *next;
    uint64_t hash;
};

struct hmap {
    struct hmap_node **buckets;
    size_t mask; /* bucket count - 1 */
    size_t count;
};

/* Returns 0 or -ENOMEM. */
int hmap_init(struct hmap *m, size_t expected);
void hmap_destroy(struct hmap *m); /* the table only; entries are the owner's */
/* Never fails: the table grows when it can and stays correct when it cannot. */
void hmap_insert(struct hmap *m, struct hmap_node *n, uint64_t hash);
void hmap_remove(struct hmap *m, struct hmap_node *n);
struct hmap_node *hmap_first(const struct hmap *m, uint64_t hash);
struct hmap_node *hmap_next(const struct hmap_node *n, uint64_t hash);

/* Iteration over everything (no insert/remove while iterating, except of
 * the current node after fetching the next one). */
struct hmap_node *hmap_iter_first(const struct hmap *m, size_t *bucket);
struct hmap_node *hmap_iter_next(const struct hmap *m, const struct hmap_node *n, size_t *bucket);

/* SipHash-1-3 of the bytes under a random key chosen at first use. */
uint64_t hash_bytes(const void *data, size_t len);
/* Same, ASCII case folded (for case-insensitive keys such as hosts). */
uint64_t hash_bytes_nocase(const void *data, size_t len);
uint64_t hash_u64(uint64_t v);

#endif
