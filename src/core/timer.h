/*
 * timer — one-shot timers in a binary heap, on a struct clock.
 *
 * Owners embed a struct timer and start/stop it; the heap never allocates
 * per timer. The event loop asks timer_heap_next_ms() how long it may sleep
 * and calls timer_heap_run() when it wakes. Tests drive the same heap with a
 * fake clock. A callback may start or stop any timer, its own included.
 */
#ifndef PARLEY_CORE_TIMER_H
#define PARLEY_CORE_TIMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"

struct timer;
typedef void (*timer_fn)(struct timer *t, void *arg);

struct timer {
    uint64_t due_ms;
    size_t heap_index; /* 0 = not scheduled; else position + 1 */
    timer_fn fn;
    void *arg;
};

struct timer_heap;

struct timer_heap *timer_heap_new(struct clock *clock);
void timer_heap_free(struct timer_heap *h);
struct clock *timer_heap_clock(struct timer_heap *h);

/* Called whenever the earliest deadline may have changed, so an event loop
 * can re-arm its wake-up. */
void timer_heap_on_change(struct timer_heap *h, void (*fn)(void *arg), void *arg);

/* (Re)starts t to fire after delay_ms. Returns 0 or -ENOMEM. */
int timer_start(struct timer_heap *h, struct timer *t, uint64_t delay_ms, timer_fn fn, void *arg);
void timer_stop(struct timer_heap *h, struct timer *t);
static inline bool timer_is_active(const struct timer *t)
{
    return t->heap_index != 0;
}

/* Milliseconds until the earliest timer is due: 0 if one is due now, -1 if
 * none is scheduled. */
int64_t timer_heap_next_ms(struct timer_heap *h);
/* Fires every timer that is due. Returns how many fired. */
size_t timer_heap_run(struct timer_heap *h);
size_t timer_heap_count(struct timer_heap *h);

#endif
