/*
 * log_limit — one line per key per second, a cap per second overall (see
 * log_limit.h).
 */
#include "core/log_limit.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/log.h"

struct log_limit_slot {
    uint64_t key;
    uint64_t second; /* of the key's last line */
    uint64_t suppressed;
    bool used;
};

struct log_limit {
    char name[48];
    struct log_limit_slot *slots;
    size_t mask;
    unsigned per_second;
    uint64_t second;     /* the second `lines` counts */
    unsigned lines;      /* written in that second */
    uint64_t over_cap;   /* held back by the cap, not yet reported */
    uint64_t total_held; /* held back since creation */
};

struct log_limit *log_limit_new(const char *name, size_t slots, unsigned per_second)
{
    size_t n = 64;
    while (n < slots && n < ((size_t)1 << 20))
        n <<= 1;
    struct log_limit *ll = calloc(1, sizeof(*ll));
    if (!ll)
        return NULL;
    ll->slots = calloc(n, sizeof(*ll->slots));
    if (!ll->slots) {
        free(ll);
        return NULL;
    }
    snprintf(ll->name, sizeof(ll->name), "%s", name ? name : "");
    ll->mask = n - 1;
    ll->per_second = per_second ? per_second : 1;
    return ll;
}

void log_limit_free(struct log_limit *ll)
{
    if (!ll)
        return;
    free(ll->slots);
    free(ll);
}

bool log_limit_allow(struct log_limit *ll, uint64_t now_ms, uint64_t key, uint64_t *suppressed)
{
    uint64_t sec = now_ms / 1000;
    /* mix the key so callers may pass any hash, even a poor one */
    struct log_limit_slot *s = &ll->slots[(key ^ (key >> 29)) & ll->mask];
    bool same = s->used && s->key == key;

    if (same && s->second == sec) {
        s->suppressed++;
        ll->total_held++;
        return false;
    }
    if (ll->second != sec) {
        if (ll->over_cap)
            log_warn("log.suppressed", "for", ll->name, "count", LOG_INT(ll->over_cap));
        ll->second = sec;
        ll->lines = 0;
        ll->over_cap = 0;
    }
    if (!same) {
        /* another key takes the slot: what it held back goes to the
         * summary rather than vanish */
        if (s->used)
            ll->over_cap += s->suppressed;
        s->used = true;
        s->key = key;
        s->suppressed = 0;
        s->second = UINT64_MAX;
    }
    if (ll->lines >= ll->per_second) {
        ll->over_cap++;
        ll->total_held++;
        return false;
    }
    ll->lines++;
    if (suppressed)
        *suppressed = s->suppressed;
    s->suppressed = 0;
    s->second = sec;
    return true;
}

uint64_t log_limit_suppressed_total(const struct log_limit *ll)
{
    return ll ? ll->total_held : 0;
}
