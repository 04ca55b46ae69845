/*
 * registrar/throttle — password guessing, made slow and visible.
 *
 * Every failed password check (SIP digest on any listener; the HTTP logins
 * of the web services use the same mechanism) is counted per user and
 * source (an IPv6 source per /64, as connections are) and per user over
 * all sources, within a window:
 *
 *  - after `max_failures` failures of one user from one source, further
 *    attempts from that source for that user are refused without checking
 *    the credentials for `backoff` — so even the right password is refused
 *    then, and guessing is slowed in fact, not in appearance — and each
 *    further failure once the block has ended doubles the block, up to
 *    `backoff_max`;
 *  - after `max_user_failures` failures of one user from all sources (a
 *    broad attack), the user is blocked the same way for every source
 *    except those that recently authenticated as that user (for
 *    `trust_ms`), so an attacker cannot lock the real user out of the
 *    devices they already use.
 *
 * A success from a source clears that source's record for the user and
 * makes the source trusted. Names are counted whether or not such a user
 * exists, so throttling says nothing about which users exist. The table
 * is bounded (`max_entries`): when full, the least recently failed entry
 * that is not blocking anything goes first.
 *
 * Blocks are logged as `auth.blocked`; refusals as `auth.throttled`, at
 * most one line a second per record with the count refused (a timer
 * writes what a second held back), and at most 20 lines a second in all
 * (beyond, one summary line a second). Belongs to one thread (the SIP
 * core). Time and the flush timer come from a timer heap.
 */
#ifndef PARLEY_REGISTRAR_THROTTLE_H
#define PARLEY_REGISTRAR_THROTTLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/netaddr.h"
#include "core/timer.h"

struct throttle_config {
    unsigned max_failures;      /* per user and source in a window; >= 1 */
    unsigned max_user_failures; /* per user, every source, in a window; >= 1 */
    uint64_t window_ms;         /* failures older than this are forgotten */
    uint64_t backoff_ms;        /* the first block */
    uint64_t backoff_max_ms;    /* the longest block */
    uint64_t trust_ms;          /* a source that authenticated stays trusted this long */
    size_t max_entries;         /* records kept at most (users and user+source pairs) */
};

struct throttle;

/* NULL when out of memory. */
struct throttle *throttle_new(struct timer_heap *timers, const struct throttle_config *cfg);
/* Applies new limits; records and blocks in force are kept. */
void throttle_set_config(struct throttle *t, const struct throttle_config *cfg);
void throttle_free(struct throttle *t);

/* May the credentials of `user` from `source` be checked now? Returns 0
 * when they may, else the milliseconds until they may (the attempt is to
 * be refused without a check); *by_user, when not NULL, says whether the
 * user-wide block refused it. */
uint64_t throttle_check(struct throttle *t, const char *user, const struct netaddr *source,
                        bool *by_user);
/* A check of user's credentials from source failed. */
void throttle_failed(struct throttle *t, const char *user, const struct netaddr *source);
/* A check succeeded. */
void throttle_succeeded(struct throttle *t, const char *user, const struct netaddr *source);

/* One record, for parleyctl. */
struct throttle_info {
    const char *user;
    bool has_source;             /* false: the user-wide record */
    char source[NETADDR_STRLEN]; /* "192.0.2.7", "2001:db8:1:2::/64"; "" when !has_source */
    unsigned failures;           /* in the current window */
    uint64_t blocked_ms;         /* left of the current block; 0 when not blocked */
    unsigned blocks;             /* blocks so far (each doubles the next) */
};
/* Calls fn for every record that has failures or a block; stops when fn
 * returns false. */
void throttle_foreach(struct throttle *t, bool (*fn)(const struct throttle_info *, void *),
                      void *arg);
/* Lifts blocks and forgets failures: for user from source, or from every
 * source and the user-wide record when source is NULL. Returns the number
 * of records removed. */
size_t throttle_unblock(struct throttle *t, const char *user, const struct netaddr *source);

struct throttle_stats {
    size_t records;
    size_t sources_blocked; /* user+source records blocking now */
    size_t users_blocked;   /* user-wide records blocking now */
    uint64_t refused;       /* attempts refused without a check, since start */
    uint64_t blocks;        /* blocks begun, since start */
};
void throttle_stats(struct throttle *t, struct throttle_stats *out);

#endif
