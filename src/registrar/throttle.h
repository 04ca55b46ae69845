/*
 * registrar/throttle — password guessing, made slow and visible.
 *
 * Every failed password check (SIP digest on any listener; the HTTP logins
 * of the web services use the same mechanism) is counted three ways within
 * a window, a source being an address (an IPv6 source its /64, as
 * connections are):
 *
 *  - per user and source: after `max_failures`, further attempts from that
 *    source for that user are refused without their credentials being
 *    checked — so even the right password is refused then, and guessing is
 *    slowed in fact, not in appearance;
 *  - per source, whatever the name: after `max_source_failures`, the source
 *    is refused for every name (one address spraying a password over many
 *    names, or churning this table with made-up names);
 *  - per user, from every source: after `max_user_failures` (a broad
 *    attack), the user is refused for every source except those that
 *    recently authenticated as that user (`trust_ms`), so an attacker
 *    cannot lock the real user out of the places they use.
 *
 * A block lasts `backoff_ms`; each failure once it has ended (within the
 * window) doubles the next, up to `backoff_max_ms`; a record quiet for the
 * window after its last block forgets it all. A success clears that user
 * and source's record and makes the source trusted. Names count whether or
 * not such a user exists: throttling says nothing about which users exist.
 *
 * Bounded: at most `max_entries` failure records (when full, the least
 * recently failed record that blocks nothing goes first; only if the
 * oldest ones all block does a block go) and as many trust records, which
 * only successful logins write, so strangers cannot evict them.
 *
 * Blocks are logged as `auth.blocked`; refusals as `auth.throttled`, at
 * most one line a second per record with the count refused (a timer writes
 * what a second held back), and at most 20 lines a second in all (beyond,
 * one summary line a second). Belongs to one thread (the SIP core). Time
 * and the flush timer come from a timer heap.
 */
#ifndef PARLEY_REGISTRAR_THROTTLE_H
#define PARLEY_REGISTRAR_THROTTLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/netaddr.h"
#include "core/timer.h"

struct throttle_config {
    unsigned max_failures;        /* per user and source in a window; >= 1 */
    unsigned max_source_failures; /* per source, any name, in a window; >= 1 */
    unsigned max_user_failures;   /* per user, every source, in a window; >= 1 */
    uint64_t window_ms;           /* failures older than this are forgotten */
    uint64_t backoff_ms;          /* the first block */
    uint64_t backoff_max_ms;      /* the longest block */
    uint64_t trust_ms;            /* a source that authenticated stays trusted this long */
    size_t max_entries;           /* failure records at most; as many trust records */
};

struct throttle;

/* NULL when out of memory. */
struct throttle *throttle_new(struct timer_heap *timers, const struct throttle_config *cfg);
/* Applies new limits; records and blocks in force are kept. */
void throttle_set_config(struct throttle *t, const struct throttle_config *cfg);
void throttle_free(struct throttle *t);

enum throttle_scope {
    THROTTLE_PAIR,   /* one user from one source */
    THROTTLE_SOURCE, /* one source, every name */
    THROTTLE_USER,   /* one user, every source it has not authenticated from */
};
const char *throttle_scope_name(enum throttle_scope scope); /* "source", "all names", "user" */

/* May the credentials of `user` from `source` be checked now? Returns 0
 * when they may, else the milliseconds until they may (the attempt is to
 * be refused without a check); *scope, when not NULL, says which block
 * refused it. */
uint64_t throttle_check(struct throttle *t, const char *user, const struct netaddr *source,
                        enum throttle_scope *scope);
/* A check of user's credentials from source failed. */
void throttle_failed(struct throttle *t, const char *user, const struct netaddr *source);
/* A check succeeded. */
void throttle_succeeded(struct throttle *t, const char *user, const struct netaddr *source);

/* One failure record, for parleyctl. */
struct throttle_info {
    enum throttle_scope scope;
    const char *user;            /* "" for THROTTLE_SOURCE */
    char source[NETADDR_STRLEN]; /* "192.0.2.7", "2001:db8:1:2::/64"; "" for THROTTLE_USER */
    unsigned failures;           /* in the current window */
    uint64_t blocked_ms;         /* left of the current block; 0 when not blocked */
    unsigned blocks;             /* blocks so far (each doubles the next) */
};
/* Calls fn for every record that has failures or a block, newest first;
 * stops when fn returns false. */
void throttle_foreach(struct throttle *t, bool (*fn)(const struct throttle_info *, void *),
                      void *arg);

struct throttle_unblocked {
    size_t removed;         /* records removed */
    uint64_t user_block_ms; /* what is left of a user-wide block the call left in force */
};
/* Lifts blocks and forgets failures. With a source: user's record for it
 * and the source's own record (it refused every name there). Without: every
 * record of user, the user-wide one included. Trust is kept. */
void throttle_unblock(struct throttle *t, const char *user, const struct netaddr *source,
                      struct throttle_unblocked *out);

struct throttle_stats {
    size_t records;         /* failure records */
    size_t trusted;         /* trust records */
    size_t pairs_blocked;   /* user+source records blocking now */
    size_t sources_blocked; /* source records blocking now */
    size_t users_blocked;   /* user-wide records blocking now */
    uint64_t refused;       /* attempts refused without a check, since start */
    uint64_t blocks;        /* blocks begun, since start */
};
void throttle_stats(struct throttle *t, struct throttle_stats *out);

#endif
