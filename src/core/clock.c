#include "core/clock.h"

#include <time.h>

static uint64_t clock_system_now_ms(struct clock *self)
{
    (void)self;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int64_t clock_system_wall_s(struct clock *self)
{
    (void)self;
    return (int64_t)time(NULL);
}

static struct clock clock_system_instance = {clock_system_now_ms, clock_system_wall_s};

struct clock *clock_system(void)
{
    return &clock_system_instance;
}

static uint64_t clock_fake_now_ms(struct clock *self)
{
    return ((struct clock_fake *)self)->now_ms;
}

static int64_t clock_fake_wall_s(struct clock *self)
{
    struct clock_fake *c = (struct clock_fake *)self;
    return c->wall_s;
}

void clock_fake_init(struct clock_fake *c, uint64_t start_ms, int64_t wall_s)
{
    c->base.now_ms = clock_fake_now_ms;
    c->base.wall_s = clock_fake_wall_s;
    c->now_ms = start_ms;
    c->wall_s = wall_s;
}

void clock_fake_advance(struct clock_fake *c, uint64_t ms)
{
    uint64_t before = c->now_ms / 1000;
    c->now_ms += ms;
    c->wall_s += (int64_t)(c->now_ms / 1000 - before);
}
