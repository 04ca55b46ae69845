/*
 * clock — the one source of time for timers and expiries.
 *
 * Everything that expires (transactions, nonces, bindings, subscriptions,
 * relay allocations) reads time through a struct clock, so unit tests can
 * run state machines on a fake clock they advance by hand.
 */
#ifndef PARLEY_CORE_CLOCK_H
#define PARLEY_CORE_CLOCK_H

#include <stdint.h>

struct clock {
    /* Monotonic milliseconds. */
    uint64_t (*now_ms)(struct clock *self);
    /* Wall-clock Unix seconds (expiry of credentials, call log). */
    int64_t (*wall_s)(struct clock *self);
};

/* The real clocks: CLOCK_MONOTONIC and CLOCK_REALTIME. */
struct clock *clock_system(void);

static inline uint64_t clock_now_ms(struct clock *c)
{
    return c->now_ms(c);
}

static inline int64_t clock_wall_s(struct clock *c)
{
    return c->wall_s(c);
}

/* A clock for tests: time moves only when told to. */
struct clock_fake {
    struct clock base;
    uint64_t now_ms;
    int64_t wall_s;
};

void clock_fake_init(struct clock_fake *c, uint64_t start_ms, int64_t wall_s);
void clock_fake_advance(struct clock_fake *c, uint64_t ms);

#endif
