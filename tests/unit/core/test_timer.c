#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "core/clock.h"
#include "core/timer.h"

struct record {
    int order[16];
    int n;
};

struct tagged {
    struct timer t;
    int id;
    struct record *rec;
};

static void on_fire(struct timer *t, void *arg)
{
    (void)t;
    struct tagged *x = arg;
    x->rec->order[x->rec->n++] = x->id;
}

static void test_fires_in_order_on_fake_time(void **state)
{
    (void)state;
    struct clock_fake clk;
    clock_fake_init(&clk, 1000, 1700000000);
    struct timer_heap *h = timer_heap_new(&clk.base);
    struct record rec = {{0}, 0};
    struct tagged a = {{0}, 1, &rec}, b = {{0}, 2, &rec}, c = {{0}, 3, &rec};

    timer_start(h, &a.t, 500, on_fire, &a);
    timer_start(h, &b.t, 100, on_fire, &b);
    timer_start(h, &c.t, 300, on_fire, &c);
    assert_int_equal(timer_heap_next_ms(h), 100);
    assert_int_equal(timer_heap_run(h), 0);

    clock_fake_advance(&clk, 300);
    assert_int_equal(timer_heap_run(h), 2);
    assert_int_equal(rec.n, 2);
    assert_int_equal(rec.order[0], 2);
    assert_int_equal(rec.order[1], 3);
    assert_int_equal(timer_heap_next_ms(h), 200);

    timer_stop(h, &a.t);
    assert_false(timer_is_active(&a.t));
    assert_int_equal(timer_heap_next_ms(h), -1);
    clock_fake_advance(&clk, 1000);
    assert_int_equal(timer_heap_run(h), 0);
    timer_heap_free(h);
}

static void test_restart_moves_deadline(void **state)
{
    (void)state;
    struct clock_fake clk;
    clock_fake_init(&clk, 0, 0);
    struct timer_heap *h = timer_heap_new(&clk.base);
    struct record rec = {{0}, 0};
    struct tagged a = {{0}, 1, &rec};

    timer_start(h, &a.t, 100, on_fire, &a);
    timer_start(h, &a.t, 1000, on_fire, &a);
    assert_int_equal(timer_heap_count(h), 1);
    clock_fake_advance(&clk, 500);
    assert_int_equal(timer_heap_run(h), 0);
    clock_fake_advance(&clk, 500);
    assert_int_equal(timer_heap_run(h), 1);
    timer_heap_free(h);
}

static void on_fire_restart_zero(struct timer *t, void *arg)
{
    struct timer_heap *h = arg;
    timer_start(h, t, 0, on_fire_restart_zero, h);
}

static void test_self_restart_does_not_loop(void **state)
{
    (void)state;
    struct clock_fake clk;
    clock_fake_init(&clk, 0, 0);
    struct timer_heap *h = timer_heap_new(&clk.base);
    struct timer t = {0};
    timer_start(h, &t, 0, on_fire_restart_zero, h);
    assert_int_equal(timer_heap_run(h), 1);
    assert_true(timer_is_active(&t));
    timer_heap_free(h);
}

/* Many timers with pseudo-random deadlines and random removals always fire
 * in deadline order: the heap invariant holds through removals. */
static void test_heap_order_stress(void **state)
{
    (void)state;
    enum { N = 2000 };
    struct clock_fake clk;
    clock_fake_init(&clk, 0, 0);
    struct timer_heap *h = timer_heap_new(&clk.base);
    struct timer *ts = calloc(N, sizeof(*ts));
    unsigned seed = 12345;
    for (int i = 0; i < N; i++) {
        seed = seed * 1103515245u + 12345u;
        timer_start(h, &ts[i], (seed >> 8) % 100000, on_fire_restart_zero, NULL);
    }
    for (int i = 0; i < N; i += 3)
        timer_stop(h, &ts[i]);
    uint64_t last = 0;
    size_t left = timer_heap_count(h);
    while (left--) {
        int64_t next = timer_heap_next_ms(h);
        assert_true(next >= 0);
        clock_fake_advance(&clk, (uint64_t)next);
        /* pop exactly one by stopping the minimum */
        uint64_t now = clock_now_ms(&clk.base);
        assert_true(now >= last);
        last = now;
        for (int i = 0; i < N; i++) {
            if (timer_is_active(&ts[i]) && ts[i].due_ms == now) {
                timer_stop(h, &ts[i]);
                break;
            }
        }
    }
    assert_int_equal(timer_heap_count(h), 0);
    free(ts);
    timer_heap_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fires_in_order_on_fake_time),
        cmocka_unit_test(test_restart_moves_deadline),
        cmocka_unit_test(test_self_restart_does_not_loop),
        cmocka_unit_test(test_heap_order_stress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
