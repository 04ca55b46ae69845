/*
 * The bounds on what stays stateful: requests the SIP core works on beyond
 * their dispatch (forwarded, waiting for a partner), counted per
 * connection, per source (an IPv6 source per /64, as connections are) and
 * in all. Everything answered at once is stateless and counts nowhere.
 *
 * Counts outlive their connection: a transaction may end (and be
 * released) after its connection has gone, so each connection's count
 * keeps its source until it drops to zero.
 */
#include <stdlib.h>
#include <string.h>

#include "server/runtime.h"

struct txn_conn_count {
    struct hmap_node node;
    uint64_t conn;
    uint8_t source[16];
    size_t n;
};

struct txn_source_count {
    struct hmap_node node;
    uint8_t source[16];
    size_t n;
};

static struct txn_conn_count *conn_count_find(struct runtime *rt, uint64_t conn)
{
    uint64_t h = hash_u64(conn);
    for (struct hmap_node *n = hmap_first(&rt->txn_conns, h); n; n = hmap_next(n, h)) {
        struct txn_conn_count *c = container_of(n, struct txn_conn_count, node);
        if (c->conn == conn)
            return c;
    }
    return NULL;
}

static struct txn_source_count *source_count_find(struct runtime *rt, const uint8_t key[16])
{
    uint64_t h = hash_bytes(key, 16);
    for (struct hmap_node *n = hmap_first(&rt->txn_sources, h); n; n = hmap_next(n, h)) {
        struct txn_source_count *s = container_of(n, struct txn_source_count, node);
        if (memcmp(s->source, key, 16) == 0)
            return s;
    }
    return NULL;
}

const char *runtime_txn_admit(struct runtime *rt, uint64_t conn)
{
    const struct config *cfg = rt->cfg;
    if (rt->ntxn_held >= (size_t)cfg->limits.transactions_total)
        return "limits.transactions_total";
    struct txn_conn_count *c = conn_count_find(rt, conn);
    if (c && c->n >= (size_t)cfg->limits.transactions_per_connection)
        return "limits.transactions_per_connection";
    uint8_t key[16];
    if (c) {
        memcpy(key, c->source, 16);
    } else {
        struct core_conn *cc = runtime_conn_find(rt, conn);
        if (!cc)
            return NULL; /* the connection is gone; nothing will be held for it */
        netaddr_source_key(&cc->peer, key);
    }
    struct txn_source_count *s = source_count_find(rt, key);
    if (s && s->n >= (size_t)cfg->limits.transactions_per_source)
        return "limits.transactions_per_source";
    return NULL;
}

void runtime_txn_held(struct runtime *rt, uint64_t conn, int delta)
{
    struct txn_conn_count *c = conn_count_find(rt, conn);
    if (delta > 0) {
        if (!c) {
            struct core_conn *cc = runtime_conn_find(rt, conn);
            c = calloc(1, sizeof(*c));
            if (!c)
                return; /* uncounted: it is released uncounted too (no entry) */
            c->conn = conn;
            if (cc)
                netaddr_source_key(&cc->peer, c->source);
            hmap_insert(&rt->txn_conns, &c->node, hash_u64(conn));
        }
        struct txn_source_count *s = source_count_find(rt, c->source);
        if (!s && (s = calloc(1, sizeof(*s))) != NULL) {
            memcpy(s->source, c->source, 16);
            hmap_insert(&rt->txn_sources, &s->node, hash_bytes(s->source, 16));
        }
        if (s)
            s->n++;
        c->n++;
        rt->ntxn_held++;
        return;
    }
    if (!c || c->n == 0)
        return;
    c->n--;
    rt->ntxn_held--;
    struct txn_source_count *s = source_count_find(rt, c->source);
    if (s && --s->n == 0) {
        hmap_remove(&rt->txn_sources, &s->node);
        free(s);
    }
    if (c->n == 0) {
        hmap_remove(&rt->txn_conns, &c->node);
        free(c);
    }
}

void runtime_txn_tables_free(struct runtime *rt)
{
    size_t b;
    if (rt->txn_conns.buckets) {
        struct hmap_node *n = hmap_iter_first(&rt->txn_conns, &b);
        while (n) {
            struct hmap_node *next = hmap_iter_next(&rt->txn_conns, n, &b);
            free(container_of(n, struct txn_conn_count, node));
            n = next;
        }
        hmap_destroy(&rt->txn_conns);
    }
    if (rt->txn_sources.buckets) {
        struct hmap_node *n = hmap_iter_first(&rt->txn_sources, &b);
        while (n) {
            struct hmap_node *next = hmap_iter_next(&rt->txn_sources, n, &b);
            free(container_of(n, struct txn_source_count, node));
            n = next;
        }
        hmap_destroy(&rt->txn_sources);
    }
    rt->ntxn_held = 0;
}
