#include "core/timer.h"

#include <errno.h>
#include <stdlib.h>

struct timer_heap {
    struct clock *clock;
    struct timer **items;
    size_t count;
    size_t cap;
    void (*on_change)(void *arg);
    void *on_change_arg;
};

struct timer_heap *timer_heap_new(struct clock *clock)
{
    struct timer_heap *h = calloc(1, sizeof(*h));
    if (h)
        h->clock = clock;
    return h;
}

void timer_heap_free(struct timer_heap *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->count; i++)
        h->items[i]->heap_index = 0;
    free(h->items);
    free(h);
}

struct clock *timer_heap_clock(struct timer_heap *h)
{
    return h->clock;
}

void timer_heap_on_change(struct timer_heap *h, void (*fn)(void *arg), void *arg)
{
    h->on_change = fn;
    h->on_change_arg = arg;
}

static void timer_heap_changed(struct timer_heap *h)
{
    if (h->on_change)
        h->on_change(h->on_change_arg);
}

static void timer_heap_place(struct timer_heap *h, size_t i, struct timer *t)
{
    h->items[i] = t;
    t->heap_index = i + 1;
}

static void timer_heap_sift_up(struct timer_heap *h, size_t i)
{
    struct timer *t = h->items[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h->items[parent]->due_ms <= t->due_ms)
            break;
        timer_heap_place(h, i, h->items[parent]);
        i = parent;
    }
    timer_heap_place(h, i, t);
}

static void timer_heap_sift_down(struct timer_heap *h, size_t i)
{
    struct timer *t = h->items[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->count)
            break;
        if (child + 1 < h->count && h->items[child + 1]->due_ms < h->items[child]->due_ms)
            child++;
        if (h->items[child]->due_ms >= t->due_ms)
            break;
        timer_heap_place(h, i, h->items[child]);
        i = child;
    }
    timer_heap_place(h, i, t);
}

static void timer_heap_remove(struct timer_heap *h, struct timer *t)
{
    size_t i = t->heap_index - 1;
    t->heap_index = 0;
    h->count--;
    if (i == h->count)
        return;
    struct timer *moved = h->items[h->count];
    timer_heap_place(h, i, moved);
    timer_heap_sift_down(h, i);
    timer_heap_sift_up(h, moved->heap_index - 1);
}

int timer_start(struct timer_heap *h, struct timer *t, uint64_t delay_ms, timer_fn fn, void *arg)
{
    if (t->heap_index)
        timer_heap_remove(h, t);
    if (h->count == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        struct timer **items = realloc(h->items, cap * sizeof(*items));
        if (!items)
            return -ENOMEM;
        h->items = items;
        h->cap = cap;
    }
    t->due_ms = clock_now_ms(h->clock) + delay_ms;
    t->fn = fn;
    t->arg = arg;
    h->items[h->count] = t;
    t->heap_index = ++h->count;
    timer_heap_sift_up(h, h->count - 1);
    timer_heap_changed(h);
    return 0;
}

void timer_stop(struct timer_heap *h, struct timer *t)
{
    if (!t->heap_index)
        return;
    timer_heap_remove(h, t);
    timer_heap_changed(h);
}

int64_t timer_heap_next_ms(struct timer_heap *h)
{
    if (h->count == 0)
        return -1;
    uint64_t now = clock_now_ms(h->clock);
    uint64_t due = h->items[0]->due_ms;
    return due <= now ? 0 : (int64_t)(due - now);
}

size_t timer_heap_run(struct timer_heap *h)
{
    size_t fired = 0;
    uint64_t now = clock_now_ms(h->clock);

    /* A callback that restarts its own timer with delay 0 would loop here
     * forever; bound the run to the timers that were due on entry. */
    size_t budget = h->count;
    while (h->count && h->items[0]->due_ms <= now && budget--) {
        struct timer *t = h->items[0];
        timer_heap_remove(h, t);
        fired++;
        t->fn(t, t->arg);
    }
    if (fired)
        timer_heap_changed(h);
    return fired;
}

size_t timer_heap_count(struct timer_heap *h)
{
    return h->count;
}
