/*
 * registrar/throttle — failed password checks counted per user and source
 * and per user; blocks that double (see throttle.h).
 */
#include "registrar/throttle.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hmap.h"
#include "core/log.h"
#include "core/timer.h"

#define THROTTLE_USER_MAX 65 /* AUTH_USER_MAX + NUL */
#define THROTTLE_TRUSTED  8  /* sources remembered per user */
/* How far from the old end an eviction looks for a record that blocks
 * nothing before it takes the oldest regardless. */
#define THROTTLE_EVICT_SCAN 32
/* Log lines a second, all records together; the rest wait for the flush. */
#define THROTTLE_LINES_PER_SECOND 20

struct trusted_source {
    uint8_t key[16];
    uint64_t until;
};

struct record {
    struct hmap_node node;
    struct record *older, *newer; /* recency list, oldest first */
    char user[THROTTLE_USER_MAX];
    bool has_source;
    uint8_t key[16]; /* the source, when has_source */
    unsigned failures;
    uint64_t window_start;
    uint64_t last_failure;
    uint64_t blocked_until;
    unsigned blocks;
    struct trusted_source *trusted; /* user-wide records: THROTTLE_TRUSTED, or NULL */
    /* refusals not logged yet (at most one line a second per record) */
    uint64_t last_line_ms;
    uint64_t unlogged;
    uint8_t unlogged_source[16]; /* the latest refused source */
    struct record *next_unlogged;
    bool listed;
};

struct throttle {
    struct timer_heap *timers;
    struct clock *clock;
    struct throttle_config cfg;
    struct hmap records;
    size_t count;
    struct record *oldest, *newest;
    uint64_t refused, blocks;
    /* logging: a budget of lines per second; refusals beyond it are summed
     * per record and written by the flush timer, once a second */
    uint64_t line_second;
    unsigned lines;
    uint64_t blocks_unlogged;
    struct record *unlogged;
    struct timer flush;
};

static uint64_t record_hash(const char *user, const uint8_t *key)
{
    uint64_t h = hash_bytes(user, strlen(user));
    return key ? h ^ (hash_bytes(key, 16) * 0x9e3779b97f4a7c15ull + 1) : h;
}

static void recency_unlink(struct throttle *t, struct record *r)
{
    if (r->older)
        r->older->newer = r->newer;
    else
        t->oldest = r->newer;
    if (r->newer)
        r->newer->older = r->older;
    else
        t->newest = r->older;
    r->older = r->newer = NULL;
}

static void recency_touch(struct throttle *t, struct record *r)
{
    if (t->newest == r)
        return;
    if (r->older || r->newer || t->oldest == r)
        recency_unlink(t, r);
    r->older = t->newest;
    if (t->newest)
        t->newest->newer = r;
    else
        t->oldest = r;
    t->newest = r;
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
    recency_unlink(t, r);
    t->count--;
    free(r->trusted);
    free(r);
}

static struct record *record_find(struct throttle *t, const char *user, const uint8_t *key)
{
    uint64_t h = record_hash(user, key);
    for (struct hmap_node *n = hmap_first(&t->records, h); n; n = hmap_next(n, h)) {
        struct record *r = container_of(n, struct record, node);
        if (r->has_source == (key != NULL) && strcmp(r->user, user) == 0 &&
            (!key || memcmp(r->key, key, 16) == 0))
            return r;
    }
    return NULL;
}

static bool record_blocking(const struct record *r, uint64_t now)
{
    return now < r->blocked_until;
}

static bool record_trusts(const struct record *r, const uint8_t *key, uint64_t now)
{
    if (!r->trusted)
        return false;
    for (size_t i = 0; i < THROTTLE_TRUSTED; i++)
        if (r->trusted[i].until > now && memcmp(r->trusted[i].key, key, 16) == 0)
            return true;
    return false;
}

/* Nothing left to remember: no block, no failure inside the window, no
 * source trusted. */
static bool record_stale(const struct throttle *t, const struct record *r, uint64_t now)
{
    if (record_blocking(r, now))
        return false;
    if (r->failures && now - r->last_failure < t->cfg.window_ms + t->cfg.backoff_max_ms)
        return false;
    if (r->trusted)
        for (size_t i = 0; i < THROTTLE_TRUSTED; i++)
            if (r->trusted[i].until > now)
                return false;
    return true;
}

/* Room for one more record: the oldest that blocks nothing goes (looking
 * a little way), else the oldest. */
static void throttle_make_room(struct throttle *t, uint64_t now)
{
    while (t->count >= t->cfg.max_entries && t->oldest) {
        struct record *victim = t->oldest, *r = t->oldest;
        for (int i = 0; r && i < THROTTLE_EVICT_SCAN; i++, r = r->newer) {
            if (!record_blocking(r, now)) {
                victim = r;
                break;
            }
        }
        record_remove(t, victim);
    }
}

static struct record *record_get(struct throttle *t, const char *user, const uint8_t *key,
                                 uint64_t now)
{
    struct record *r = record_find(t, user, key);
    if (r)
        return r;
    if (strlen(user) >= THROTTLE_USER_MAX)
        return NULL;
    throttle_make_room(t, now);
    r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    snprintf(r->user, sizeof(r->user), "%s", user);
    r->has_source = key != NULL;
    if (key)
        memcpy(r->key, key, 16);
    r->window_start = now;
    hmap_insert(&t->records, &r->node, record_hash(user, key));
    t->count++;
    recency_touch(t, r);
    return r;
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
    recency_touch(t, r);
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
    if (r->has_source)
        key_format(r->key, src);
    log_warn("auth.blocked", "user", r->user, "scope", r->has_source ? "source" : "user", "source",
             src, "failures", LOG_INT(r->failures), "blocks", LOG_INT(r->blocks), "seconds",
             LOG_INT((r->blocked_until - now + 999) / 1000));
}

static void log_refusals(const struct record *r, const uint8_t *source, uint64_t refused,
                         uint64_t now)
{
    char src[NETADDR_STRLEN];
    key_format(source, src);
    log_info("auth.throttled", "user", r->user, "source", src, "scope",
             r->has_source ? "source" : "user", "refused", LOG_INT(refused), "retry_after",
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
            log_refusals(r, r->unlogged_source, r->unlogged, now);
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

/* A refusal by r of an attempt from source: a line now if r had none this
 * second and the budget allows, else counted for the flush. */
static void note_refusal(struct throttle *t, struct record *r, const uint8_t *source, uint64_t now)
{
    if (!r->listed && now - r->last_line_ms >= 1000 && line_budget(t, now)) {
        log_refusals(r, source, 1, now);
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
    if (hmap_init(&t->records, 256) != 0) {
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
    while (t->oldest)
        record_remove(t, t->oldest);
    hmap_destroy(&t->records);
    free(t);
}

uint64_t throttle_check(struct throttle *t, const char *user, const struct netaddr *source,
                        bool *by_user)
{
    uint64_t now = clock_now_ms(t->clock);
    uint8_t key[16];
    netaddr_source_key(source, key);
    if (by_user)
        *by_user = false;

    struct record *r = record_find(t, user, key);
    if (r && record_stale(t, r, now)) {
        record_remove(t, r);
        r = NULL;
    }
    struct record *refuser = NULL;
    if (r && record_blocking(r, now)) {
        refuser = r;
    } else {
        struct record *u = record_find(t, user, NULL);
        if (u && record_blocking(u, now) && !record_trusts(u, key, now))
            refuser = u;
    }
    if (!refuser)
        return 0;
    t->refused++;
    if (by_user)
        *by_user = !refuser->has_source;
    note_refusal(t, refuser, key, now);
    return refuser->blocked_until - now;
}

void throttle_failed(struct throttle *t, const char *user, const struct netaddr *source)
{
    uint64_t now = clock_now_ms(t->clock);
    uint8_t key[16];
    netaddr_source_key(source, key);
    struct record *r = record_get(t, user, key, now);
    if (r && record_fail(t, r, t->cfg.max_failures, now))
        log_blocked(t, r, now);
    struct record *u = record_get(t, user, NULL, now);
    if (u && record_fail(t, u, t->cfg.max_user_failures, now))
        log_blocked(t, u, now);
}

void throttle_succeeded(struct throttle *t, const char *user, const struct netaddr *source)
{
    uint64_t now = clock_now_ms(t->clock);
    uint8_t key[16];
    netaddr_source_key(source, key);
    struct record *r = record_find(t, user, key);
    if (r)
        record_remove(t, r);
    struct record *u = record_get(t, user, NULL, now);
    if (!u)
        return;
    if (!u->trusted && !(u->trusted = calloc(THROTTLE_TRUSTED, sizeof(*u->trusted))))
        return;
    /* the same source renewed, else the slot that expires first */
    size_t slot = 0;
    for (size_t i = 0; i < THROTTLE_TRUSTED; i++) {
        if (memcmp(u->trusted[i].key, key, 16) == 0 && u->trusted[i].until) {
            slot = i;
            break;
        }
        if (u->trusted[i].until < u->trusted[slot].until)
            slot = i;
    }
    memcpy(u->trusted[slot].key, key, 16);
    u->trusted[slot].until = now + t->cfg.trust_ms;
    recency_touch(t, u);
}

void throttle_foreach(struct throttle *t, bool (*fn)(const struct throttle_info *, void *),
                      void *arg)
{
    uint64_t now = clock_now_ms(t->clock);
    for (struct record *r = t->newest; r; r = r->older) {
        bool counted = r->failures && now - r->window_start < t->cfg.window_ms;
        if (!counted && !record_blocking(r, now))
            continue;
        struct throttle_info info = {
            .user = r->user,
            .has_source = r->has_source,
            .failures = counted ? r->failures : 0,
            .blocked_ms = record_blocking(r, now) ? r->blocked_until - now : 0,
            .blocks = r->blocks,
        };
        if (r->has_source)
            key_format(r->key, info.source);
        if (!fn(&info, arg))
            return;
    }
}

size_t throttle_unblock(struct throttle *t, const char *user, const struct netaddr *source)
{
    size_t removed = 0;
    uint8_t key[16];
    if (source) {
        netaddr_source_key(source, key);
        struct record *r = record_find(t, user, key);
        if (r) {
            record_remove(t, r);
            removed++;
        }
        return removed;
    }
    for (struct record *r = t->oldest, *next; r; r = next) {
        next = r->newer;
        if (strcmp(r->user, user) != 0)
            continue;
        if (!r->has_source && r->trusted) {
            /* keep what it trusts, forget the rest */
            r->failures = 0;
            r->blocked_until = 0;
            r->blocks = 0;
            removed++;
            continue;
        }
        record_remove(t, r);
        removed++;
    }
    return removed;
}

void throttle_stats(struct throttle *t, struct throttle_stats *out)
{
    uint64_t now = clock_now_ms(t->clock);
    memset(out, 0, sizeof(*out));
    out->records = t->count;
    out->refused = t->refused;
    out->blocks = t->blocks;
    for (struct record *r = t->oldest; r; r = r->newer) {
        if (!record_blocking(r, now))
            continue;
        if (r->has_source)
            out->sources_blocked++;
        else
            out->users_blocked++;
    }
}
