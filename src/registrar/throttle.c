/*
 * registrar/throttle — failed password checks counted per user and source,
 * per source and per user; blocks that double; trust apart (see
 * throttle.h).
 */
#include "registrar/throttle.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hmap.h"
#include "core/log.h"

#define THROTTLE_USER_MAX 65 /* AUTH_USER_MAX + NUL */
#define THROTTLE_TRUSTED  8  /* sources remembered per user */
/* How far from the old end an eviction looks for a record that blocks
 * nothing before it takes the oldest regardless. */
#define THROTTLE_EVICT_SCAN 64
/* Log lines a second, all records together; the rest wait for the flush. */
#define THROTTLE_LINES_PER_SECOND 20

/* Both tables keep their entries on a recency list, oldest first. */
struct lru_node {
    struct lru_node *older, *newer;
};

struct lru {
    struct lru_node *oldest, *newest;
};

static void lru_unlink(struct lru *l, struct lru_node *n)
{
    if (n->older)
        n->older->newer = n->newer;
    else
        l->oldest = n->newer;
    if (n->newer)
        n->newer->older = n->older;
    else
        l->newest = n->older;
    n->older = n->newer = NULL;
}

static void lru_touch(struct lru *l, struct lru_node *n)
{
    if (l->newest == n)
        return;
    if (n->older || n->newer || l->oldest == n)
        lru_unlink(l, n);
    n->older = l->newest;
    if (l->newest)
        l->newest->newer = n;
    else
        l->oldest = n;
    l->newest = n;
}

/* A failure record: user+source, source, or user. */
struct record {
    struct hmap_node node;
    struct lru_node lru;
    enum throttle_scope scope;
    char user[THROTTLE_USER_MAX]; /* "" for THROTTLE_SOURCE */
    uint8_t key[16];              /* the source, unless THROTTLE_USER */
    unsigned failures;
    uint64_t window_start;
    uint64_t last_failure;
    uint64_t blocked_until;
    unsigned blocks;
    /* refusals not logged yet (at most one line a second per record) */
    uint64_t last_line_ms;
    uint64_t unlogged;
    uint8_t unlogged_source[16]; /* the latest refused source */
    struct record *next_unlogged;
    bool listed;
};

/* Sources a user authenticated from: written only by successes. */
struct trust {
    struct hmap_node node;
    struct lru_node lru;
    char user[THROTTLE_USER_MAX];
    struct {
        uint8_t key[16];
        uint64_t until;
    } sources[THROTTLE_TRUSTED];
};

struct throttle {
    struct timer_heap *timers;
    struct clock *clock;
    struct throttle_config cfg;
    struct hmap records;
    struct lru record_lru;
    size_t nrecords;
    struct hmap trusts;
    struct lru trust_lru;
    size_t ntrusts;
    uint64_t refused, blocks;
    /* logging: a budget of lines per second; refusals beyond it are summed
     * per record and written by the flush timer, once a second */
    uint64_t line_second;
    unsigned lines;
    uint64_t blocks_unlogged;
    struct record *unlogged;
    struct timer flush;
};

const char *throttle_scope_name(enum throttle_scope scope)
{
    switch (scope) {
    case THROTTLE_PAIR:
        return "source";
    case THROTTLE_SOURCE:
        return "all names";
    case THROTTLE_USER:
        return "user";
    }
    return "?";
}

#define record_of(n) container_of(n, struct record, lru)
#define trust_of(n)  container_of(n, struct trust, lru)

static uint64_t record_hash(enum throttle_scope scope, const char *user, const uint8_t *key)
{
    uint64_t h = hash_bytes(user, strlen(user)) + (uint64_t)scope;
    return scope == THROTTLE_USER ? h : h ^ (hash_bytes(key, 16) * 0x9e3779b97f4a7c15ull + 1);
}

static void unlogged_unlist(struct throttle *t, struct record *r)
{
    if (!r->listed)
        return;
    for (struct record **pp = &t->unlogged; *pp; pp = &(*pp)->next_unlogged) {
        if (*pp == r) {
            *pp = r->next_unlogged;
            break;
        }
    }
    r->listed = false;
}

static void record_remove(struct throttle *t, struct record *r)
{
    unlogged_unlist(t, r);
    hmap_remove(&t->records, &r->node);
    lru_unlink(&t->record_lru, &r->lru);
    t->nrecords--;
    free(r);
}

static struct record *record_find(struct throttle *t, enum throttle_scope scope, const char *user,
                                  const uint8_t *key)
{
    uint64_t h = record_hash(scope, user, key);
    for (struct hmap_node *n = hmap_first(&t->records, h); n; n = hmap_next(n, h)) {
        struct record *r = container_of(n, struct record, node);
        if (r->scope == scope && strcmp(r->user, user) == 0 &&
            (scope == THROTTLE_USER || memcmp(r->key, key, 16) == 0))
            return r;
    }
    return NULL;
}

static bool record_blocking(const struct record *r, uint64_t now)
{
    return now < r->blocked_until;
}

/* Nothing left to remember: no block, and no failure for a window after
 * the longest block there could be. Then its doubling is forgotten too. */
static bool record_stale(const struct throttle *t, const struct record *r, uint64_t now)
{
    return !record_blocking(r, now) &&
           now - r->last_failure >= t->cfg.window_ms + t->cfg.backoff_max_ms;
}

/* Room for one more record: the oldest that blocks nothing goes (looking a
 * little way), else the oldest. */
static void records_make_room(struct throttle *t, uint64_t now)
{
    while (t->nrecords >= t->cfg.max_entries && t->record_lru.oldest) {
        struct lru_node *victim = t->record_lru.oldest, *n = victim;
        for (int i = 0; n && i < THROTTLE_EVICT_SCAN; i++, n = n->newer) {
            if (!record_blocking(record_of(n), now)) {
                victim = n;
                break;
            }
        }
        record_remove(t, record_of(victim));
    }
}

static struct record *record_get(struct throttle *t, enum throttle_scope scope, const char *user,
                                 const uint8_t *key, uint64_t now)
{
    struct record *r = record_find(t, scope, user, key);
    if (r)
        return r;
    if (strlen(user) >= THROTTLE_USER_MAX)
        return NULL;
    records_make_room(t, now);
    r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->scope = scope;
    snprintf(r->user, sizeof(r->user), "%s", user);
    if (scope != THROTTLE_USER)
        memcpy(r->key, key, 16);
    r->window_start = now;
    r->last_failure = now;
    hmap_insert(&t->records, &r->node, record_hash(scope, user, key));
    t->nrecords++;
    lru_touch(&t->record_lru, &r->lru);
    return r;
}

static struct trust *trust_find(struct throttle *t, const char *user)
{
    uint64_t h = hash_bytes(user, strlen(user));
    for (struct hmap_node *n = hmap_first(&t->trusts, h); n; n = hmap_next(n, h)) {
        struct trust *tr = container_of(n, struct trust, node);
        if (strcmp(tr->user, user) == 0)
            return tr;
    }
    return NULL;
}

static void trust_remove(struct throttle *t, struct trust *tr)
{
    hmap_remove(&t->trusts, &tr->node);
    lru_unlink(&t->trust_lru, &tr->lru);
    t->ntrusts--;
    free(tr);
}

static bool trusted(struct throttle *t, const char *user, const uint8_t *key, uint64_t now)
{
    struct trust *tr = trust_find(t, user);
    if (!tr)
        return false;
    for (size_t i = 0; i < THROTTLE_TRUSTED; i++)
        if (tr->sources[i].until > now && memcmp(tr->sources[i].key, key, 16) == 0)
            return true;
    return false;
}

static void trust_add(struct throttle *t, const char *user, const uint8_t *key, uint64_t now)
{
    struct trust *tr = trust_find(t, user);
    if (!tr) {
        if (strlen(user) >= THROTTLE_USER_MAX)
            return;
        while (t->ntrusts >= t->cfg.max_entries && t->trust_lru.oldest)
            trust_remove(t, trust_of(t->trust_lru.oldest));
        if (!(tr = calloc(1, sizeof(*tr))))
            return;
        snprintf(tr->user, sizeof(tr->user), "%s", user);
        hmap_insert(&t->trusts, &tr->node, hash_bytes(user, strlen(user)));
        t->ntrusts++;
    }
    /* the same source renewed, else the slot that expires first */
    size_t slot = 0;
    for (size_t i = 0; i < THROTTLE_TRUSTED; i++) {
        if (tr->sources[i].until && memcmp(tr->sources[i].key, key, 16) == 0) {
            slot = i;
            break;
        }
        if (tr->sources[i].until < tr->sources[slot].until)
            slot = i;
    }
    memcpy(tr->sources[slot].key, key, 16);
    tr->sources[slot].until = now + t->cfg.trust_ms;
    lru_touch(&t->trust_lru, &tr->lru);
}

static void key_format(const uint8_t key[16], char out[NETADDR_STRLEN])
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(key, mapped, 12) == 0) {
        inet_ntop(AF_INET, key + 12, out, NETADDR_STRLEN);
        return;
    }
    char a[INET6_ADDRSTRLEN];
    inet_ntop(AF_INET6, key, a, sizeof(a));
    snprintf(out, NETADDR_STRLEN, "%s/64", a);
}

/* A failure against r (limit: failures that start a block). Returns true
 * when this failure began a block. */
static bool record_fail(struct throttle *t, struct record *r, unsigned limit, uint64_t now)
{
    if (now - r->window_start >= t->cfg.window_ms) {
        r->window_start = now;
        r->failures = 0;
    }
    if (r->failures < UINT32_MAX)
        r->failures++;
    r->last_failure = now;
    lru_touch(&t->record_lru, &r->lru);
    if (r->failures < limit || record_blocking(r, now))
        return false;
    uint64_t backoff = t->cfg.backoff_ms;
    for (unsigned i = 0; i < r->blocks && backoff < t->cfg.backoff_max_ms; i++)
        backoff *= 2;
    if (backoff > t->cfg.backoff_max_ms)
        backoff = t->cfg.backoff_max_ms;
    r->blocked_until = now + backoff;
    r->blocks++;
    t->blocks++;
    return true;
}

/* May a line be written now? The budget is shared by every record. */
static bool line_budget(struct throttle *t, uint64_t now)
{
    if (now / 1000 != t->line_second) {
        t->line_second = now / 1000;
        t->lines = 0;
    }
    if (t->lines >= THROTTLE_LINES_PER_SECOND)
        return false;
    t->lines++;
    return true;
}

static void log_blocked(struct throttle *t, const struct record *r, uint64_t now)
{
    if (!line_budget(t, now)) {
        t->blocks_unlogged++;
        return;
    }
    char src[NETADDR_STRLEN] = "";
    if (r->scope != THROTTLE_USER)
        key_format(r->key, src);
    log_warn("auth.blocked", "user", r->scope == THROTTLE_SOURCE ? "*" : r->user, "scope",
             throttle_scope_name(r->scope), "source", src, "failures", LOG_INT(r->failures),
             "blocks", LOG_INT(r->blocks), "seconds",
             LOG_INT((r->blocked_until - now + 999) / 1000));
}

static void log_refusals(const struct record *r, const char *user, const uint8_t *source,
                         uint64_t refused, uint64_t now)
{
    char src[NETADDR_STRLEN];
    key_format(source, src);
    log_info("auth.throttled", "user", user, "source", src, "scope", throttle_scope_name(r->scope),
             "refused", LOG_INT(refused), "retry_after",
             LOG_INT(now < r->blocked_until ? (r->blocked_until - now + 999) / 1000 : 0));
}

static void throttle_flush_cb(struct timer *tm, void *arg)
{
    (void)tm;
    struct throttle *t = arg;
    uint64_t now = clock_now_ms(t->clock);
    size_t skipped = 0;
    uint64_t skipped_refusals = 0;
    while (t->unlogged) {
        struct record *r = t->unlogged;
        t->unlogged = r->next_unlogged;
        r->listed = false;
        if (line_budget(t, now)) {
            log_refusals(r, r->scope == THROTTLE_SOURCE ? "*" : r->user, r->unlogged_source,
                         r->unlogged, now);
            r->last_line_ms = now;
        } else {
            skipped++;
            skipped_refusals += r->unlogged;
        }
        r->unlogged = 0;
    }
    if (skipped || t->blocks_unlogged)
        log_info("auth.throttled", "scope", "summary", "records", LOG_INT(skipped), "refused",
                 LOG_INT(skipped_refusals), "blocks", LOG_INT(t->blocks_unlogged));
    t->blocks_unlogged = 0;
}

/* A refusal by r of user's attempt from source: a line now if r had none
 * this second and the budget allows, else counted for the flush. */
static void note_refusal(struct throttle *t, struct record *r, const char *user,
                         const uint8_t *source, uint64_t now)
{
    if (!r->listed && now - r->last_line_ms >= 1000 && line_budget(t, now)) {
        log_refusals(r, user, source, 1, now);
        r->last_line_ms = now;
        return;
    }
    r->unlogged++;
    memcpy(r->unlogged_source, source, 16);
    if (!r->listed) {
        r->listed = true;
        r->next_unlogged = t->unlogged;
        t->unlogged = r;
    }
    if (!timer_is_active(&t->flush))
        timer_start(t->timers, &t->flush, 1000, throttle_flush_cb, t);
}

struct throttle *throttle_new(struct timer_heap *timers, const struct throttle_config *cfg)
{
    struct throttle *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->timers = timers;
    t->clock = timer_heap_clock(timers);
    throttle_set_config(t, cfg);
    if (hmap_init(&t->records, 256) != 0 || hmap_init(&t->trusts, 256) != 0) {
        hmap_destroy(&t->records);
        free(t);
        return NULL;
    }
    return t;
}

void throttle_set_config(struct throttle *t, const struct throttle_config *cfg)
{
    t->cfg = *cfg;
    if (!t->cfg.max_failures)
        t->cfg.max_failures = 1;
    if (!t->cfg.max_source_failures)
        t->cfg.max_source_failures = 1;
    if (!t->cfg.max_user_failures)
        t->cfg.max_user_failures = 1;
    if (!t->cfg.window_ms)
        t->cfg.window_ms = 1;
    if (!t->cfg.backoff_ms)
        t->cfg.backoff_ms = 1;
    if (t->cfg.backoff_max_ms < t->cfg.backoff_ms)
        t->cfg.backoff_max_ms = t->cfg.backoff_ms;
    if (!t->cfg.max_entries)
        t->cfg.max_entries = 1;
}

void throttle_free(struct throttle *t)
{
    if (!t)
        return;
    timer_stop(t->timers, &t->flush);
    while (t->record_lru.oldest)
        record_remove(t, record_of(t->record_lru.oldest));
    while (t->trust_lru.oldest)
        trust_remove(t, trust_of(t->trust_lru.oldest));
    hmap_destroy(&t->records);
    hmap_destroy(&t->trusts);
    free(t);
}

/* The record of scope refusing now, or NULL; stale ones go on the way. */
static struct record *blocking_record(struct throttle *t, enum throttle_scope scope,
                                      const char *user, const uint8_t *key, uint64_t now)
{
    struct record *r = record_find(t, scope, user, key);
    if (r && record_stale(t, r, now)) {
        record_remove(t, r);
        return NULL;
    }
    return r && record_blocking(r, now) ? r : NULL;
}

uint64_t throttle_check(struct throttle *t, const char *user, const struct netaddr *source,
                        enum throttle_scope *scope)
{
    uint64_t now = clock_now_ms(t->clock);
    uint8_t key[16];
    netaddr_source_key(source, key);

    struct record *r = blocking_record(t, THROTTLE_PAIR, user, key, now);
    if (!r)
        r = blocking_record(t, THROTTLE_SOURCE, "", key, now);
    if (!r) {
        r = blocking_record(t, THROTTLE_USER, user, NULL, now);
        if (r && trusted(t, user, key, now))
            r = NULL;
    }
    if (!r)
        return 0;
    t->refused++;
    if (scope)
        *scope = r->scope;
    note_refusal(t, r, user, key, now);
    return r->blocked_until - now;
}

void throttle_failed(struct throttle *t, const char *user, const struct netaddr *source)
{
    uint64_t now = clock_now_ms(t->clock);
    uint8_t key[16];
    netaddr_source_key(source, key);
    const enum throttle_scope scopes[] = {THROTTLE_PAIR, THROTTLE_SOURCE, THROTTLE_USER};
    const unsigned limits[] = {t->cfg.max_failures, t->cfg.max_source_failures,
                               t->cfg.max_user_failures};
    for (size_t i = 0; i < 3; i++) {
        const char *name = scopes[i] == THROTTLE_SOURCE ? "" : user;
        struct record *r = record_get(t, scopes[i], name, key, now);
        if (r && record_fail(t, r, limits[i], now))
            log_blocked(t, r, now);
    }
}

void throttle_succeeded(struct throttle *t, const char *user, const struct netaddr *source)
{
    uint64_t now = clock_now_ms(t->clock);
    uint8_t key[16];
    netaddr_source_key(source, key);
    struct record *r = record_find(t, THROTTLE_PAIR, user, key);
    if (r)
        record_remove(t, r);
    trust_add(t, user, key, now);
}

void throttle_foreach(struct throttle *t, bool (*fn)(const struct throttle_info *, void *),
                      void *arg)
{
    uint64_t now = clock_now_ms(t->clock);
    for (struct lru_node *n = t->record_lru.newest; n; n = n->older) {
        struct record *r = record_of(n);
        bool counted = r->failures && now - r->window_start < t->cfg.window_ms;
        if (!counted && !record_blocking(r, now))
            continue;
        struct throttle_info info = {
            .scope = r->scope,
            .user = r->user,
            .failures = counted ? r->failures : 0,
            .blocked_ms = record_blocking(r, now) ? r->blocked_until - now : 0,
            .blocks = r->blocks,
        };
        if (r->scope != THROTTLE_USER)
            key_format(r->key, info.source);
        if (!fn(&info, arg))
            return;
    }
}

void throttle_unblock(struct throttle *t, const char *user, const struct netaddr *source,
                      struct throttle_unblocked *out)
{
    uint64_t now = clock_now_ms(t->clock);
    memset(out, 0, sizeof(*out));
    if (source) {
        uint8_t key[16];
        netaddr_source_key(source, key);
        struct record *r = record_find(t, THROTTLE_PAIR, user, key);
        if (r) {
            record_remove(t, r);
            out->removed++;
        }
        if ((r = record_find(t, THROTTLE_SOURCE, "", key)) != NULL) {
            record_remove(t, r);
            out->removed++;
        }
        r = record_find(t, THROTTLE_USER, user, NULL);
        if (r && record_blocking(r, now) && !trusted(t, user, key, now))
            out->user_block_ms = r->blocked_until - now;
        return;
    }
    for (struct lru_node *n = t->record_lru.oldest, *next; n; n = next) {
        next = n->newer;
        struct record *r = record_of(n);
        if (r->scope != THROTTLE_SOURCE && strcmp(r->user, user) == 0) {
            record_remove(t, r);
            out->removed++;
        }
    }
}

void throttle_stats(struct throttle *t, struct throttle_stats *out)
{
    uint64_t now = clock_now_ms(t->clock);
    memset(out, 0, sizeof(*out));
    out->records = t->nrecords;
    out->trusted = t->ntrusts;
    out->refused = t->refused;
    out->blocks = t->blocks;
    for (struct lru_node *n = t->record_lru.oldest; n; n = n->newer) {
        struct record *r = record_of(n);
        if (!record_blocking(r, now))
            continue;
        if (r->scope == THROTTLE_PAIR)
            out->pairs_blocked++;
        else if (r->scope == THROTTLE_SOURCE)
            out->sources_blocked++;
        else
            out->users_blocked++;
    }
}
