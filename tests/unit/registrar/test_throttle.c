/* registrar/throttle on fake time: per user and source, per user, back-off,
 * trust, window, bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/clock.h"
#include "core/netaddr.h"
#include "core/timer.h"
#include "registrar/throttle.h"

struct fx {
    struct clock_fake clk;
    struct timer_heap *heap;
    struct throttle *t;
};

static const struct throttle_config cfg_default = {
    .max_failures = 5,
    .max_source_failures = 30,
    .max_user_failures = 20,
    .window_ms = 60000,
    .backoff_ms = 1000,
    .backoff_max_ms = 8000,
    .trust_ms = 3600000,
    .max_entries = 1000,
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    clock_fake_init(&f->clk, 5000000, 1700000000);
    f->heap = timer_heap_new(&f->clk.base);
    f->t = throttle_new(f->heap, &cfg_default);
    assert_non_null(f->t);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    throttle_free(f->t);
    timer_heap_free(f->heap);
    free(f);
    return 0;
}

static void advance(struct fx *f, uint64_t ms)
{
    clock_fake_advance(&f->clk, ms);
    while (timer_heap_run(f->heap))
        ;
}

static struct netaddr ip(const char *text)
{
    struct netaddr a;
    assert_int_equal(netaddr_parse_ip(text, 5061, &a), 0);
    return a;
}

static void fail_n(struct fx *f, const char *user, const char *src, int n)
{
    struct netaddr a = ip(src);
    for (int i = 0; i < n; i++) {
        assert_int_equal(throttle_check(f->t, user, &a, NULL), 0);
        throttle_failed(f->t, user, &a);
    }
}

static uint64_t check(struct fx *f, const char *user, const char *src, enum throttle_scope *scope)
{
    struct netaddr a = ip(src);
    return throttle_check(f->t, user, &a, scope);
}

static size_t unblock(struct fx *f, const char *user, const char *src)
{
    struct throttle_unblocked u;
    struct netaddr a;
    if (src)
        a = ip(src);
    throttle_unblock(f->t, user, src ? &a : NULL, &u);
    return u.removed;
}

/* Five failures block the source for that user, and only that: the block
 * refuses every attempt (a right password is never looked at), lasts the
 * back-off, and each failure after it doubles the next, up to the max. */
static void test_block_and_backoff(void **state)
{
    struct fx *f = *state;
    fail_n(f, "alice", "192.0.2.1", 4);
    assert_int_equal(check(f, "alice", "192.0.2.1", NULL), 0);
    fail_n(f, "alice", "192.0.2.1", 1);
    enum throttle_scope scope = THROTTLE_USER;
    assert_int_equal(check(f, "alice", "192.0.2.1", &scope), 1000);
    assert_int_equal(scope, THROTTLE_PAIR);
    /* another user from there, the same user from elsewhere: untouched */
    assert_int_equal(check(f, "bob", "192.0.2.1", NULL), 0);
    assert_int_equal(check(f, "alice", "192.0.2.2", NULL), 0);

    advance(f, 999);
    assert_int_equal(check(f, "alice", "192.0.2.1", NULL), 1);
    advance(f, 1);
    uint64_t expect[] = {2000, 4000, 8000, 8000};
    for (size_t i = 0; i < 4; i++) {
        fail_n(f, "alice", "192.0.2.1", 1);
        assert_int_equal(check(f, "alice", "192.0.2.1", NULL), expect[i]);
        advance(f, expect[i]);
    }
    struct throttle_stats st;
    throttle_stats(f->t, &st);
    assert_int_equal(st.blocks, 5);
    assert_true(st.refused >= 5);
}

/* Failures outside the window are forgotten. */
static void test_window(void **state)
{
    struct fx *f = *state;
    fail_n(f, "alice", "192.0.2.1", 4);
    advance(f, 60000);
    fail_n(f, "alice", "192.0.2.1", 4);
    assert_int_equal(check(f, "alice", "192.0.2.1", NULL), 0);
    fail_n(f, "alice", "192.0.2.1", 1);
    assert_int_equal(check(f, "alice", "192.0.2.1", NULL), 1000);
}

/* A success clears the source's record and makes the source trusted: a
 * broad attack blocks the user for everyone else, not for it. */
static void test_broad_attack_spares_trusted_sources(void **state)
{
    struct fx *f = *state;
    struct netaddr home = ip("198.51.100.7");
    fail_n(f, "alice", "198.51.100.7", 3);
    assert_int_equal(unblock(f, "alice", NULL), 2); /* a clean start */
    throttle_succeeded(f->t, "alice", &home);
    /* 20 failures from ten sources, two each: none reaches 5 */
    char src[32];
    for (int i = 0; i < 10; i++) {
        snprintf(src, sizeof(src), "203.0.113.%d", i + 1);
        fail_n(f, "alice", src, 2);
    }
    enum throttle_scope scope = THROTTLE_PAIR;
    assert_int_equal(check(f, "alice", "203.0.113.99", &scope), 1000);
    assert_int_equal(scope, THROTTLE_USER);
    assert_int_equal(check(f, "alice", "198.51.100.7", NULL), 0);
    assert_int_equal(check(f, "bob", "203.0.113.99", NULL), 0);
    struct throttle_stats st;
    throttle_stats(f->t, &st);
    assert_int_equal(st.users_blocked, 1);
    assert_int_equal(st.sources_blocked, 0);
    advance(f, 1000);
    assert_int_equal(check(f, "alice", "203.0.113.99", NULL), 0);
    /* trust expires: the next broad attack blocks that source too */
    advance(f, 3600000);
    for (int i = 0; i < 10; i++) {
        snprintf(src, sizeof(src), "203.0.113.%d", i + 101);
        fail_n(f, "alice", src, 2);
    }
    assert_true(check(f, "alice", "198.51.100.7", NULL) > 0);
}

/* An IPv6 source is its /64. */
static void test_ipv6_per_64(void **state)
{
    struct fx *f = *state;
    fail_n(f, "alice", "2001:db8:1:2::1", 3);
    fail_n(f, "alice", "2001:db8:1:2:ffff::9", 2);
    assert_true(check(f, "alice", "2001:db8:1:2:aaaa::1", NULL) > 0);
    assert_int_equal(check(f, "alice", "2001:db8:1:3::1", NULL), 0);
}

struct listing {
    int n;
    bool saw_source;
};

static bool list_one(const struct throttle_info *info, void *arg)
{
    struct listing *l = arg;
    l->n++;
    if (info->scope == THROTTLE_PAIR && strcmp(info->source, "192.0.2.1") == 0 &&
        info->blocked_ms == 1000 && info->failures == 5 && strcmp(info->user, "alice") == 0)
        l->saw_source = true;
    return true;
}

static void test_list_and_unblock(void **state)
{
    struct fx *f = *state;
    fail_n(f, "alice", "192.0.2.1", 5);
    fail_n(f, "alice", "192.0.2.2", 5);
    struct listing l = {0};
    throttle_foreach(f->t, list_one, &l);
    /* two user+source pairs, two sources, the user-wide record */
    assert_int_equal(l.n, 5);
    assert_true(l.saw_source);
    assert_int_equal(unblock(f, "alice", "192.0.2.1"), 2); /* the pair and the source's own */
    assert_int_equal(check(f, "alice", "192.0.2.1", NULL), 0);
    assert_true(check(f, "alice", "192.0.2.2", NULL) > 0);
    assert_int_equal(unblock(f, "alice", NULL), 2); /* the other pair and the user-wide one */
    assert_int_equal(check(f, "alice", "192.0.2.2", NULL), 0);
    assert_int_equal(unblock(f, "nobody", NULL), 0);
}

/* One source failing for many names is blocked for every name: spraying
 * one password over many users, or churning the table, stops there. */
static void test_source_wide(void **state)
{
    struct fx *f = *state;
    char user[32];
    for (int i = 0; i < 29; i++) {
        snprintf(user, sizeof(user), "name%d", i);
        fail_n(f, user, "192.0.2.66", 1);
    }
    assert_int_equal(check(f, "alice", "192.0.2.66", NULL), 0);
    fail_n(f, "name29", "192.0.2.66", 1);
    enum throttle_scope scope = THROTTLE_PAIR;
    assert_int_equal(check(f, "alice", "192.0.2.66", &scope), 1000);
    assert_int_equal(scope, THROTTLE_SOURCE);
    assert_int_equal(check(f, "alice", "192.0.2.67", NULL), 0);
    struct throttle_stats st;
    throttle_stats(f->t, &st);
    assert_int_equal(st.sources_blocked, 1);
}

/* Strangers cannot evict trust: only successes write it. */
static void test_trust_survives_churn(void **state)
{
    struct fx *f = *state;
    struct throttle_config c = cfg_default;
    c.max_entries = 100;
    c.max_source_failures = 1000000;
    throttle_set_config(f->t, &c);
    struct netaddr home = ip("198.51.100.7");
    throttle_succeeded(f->t, "alice", &home);
    char user[32], src[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(user, sizeof(user), "junk%d", i);
        snprintf(src, sizeof(src), "203.0.%d.%d", 100 + i / 250, i % 250 + 1);
        fail_n(f, user, src, 1);
    }
    for (int i = 0; i < 20; i++) {
        snprintf(src, sizeof(src), "192.0.2.%d", i + 1);
        fail_n(f, "alice", src, 1);
    }
    assert_true(check(f, "alice", "192.0.2.200", NULL) > 0);
    assert_int_equal(check(f, "alice", "198.51.100.7", NULL), 0);
    struct throttle_stats st;
    throttle_stats(f->t, &st);
    assert_true(st.records <= 100);
    assert_int_equal(st.trusted, 1);
}

/* A record quiet for the window after its longest block forgets its
 * doubling. */
static void test_blocks_decay(void **state)
{
    struct fx *f = *state;
    fail_n(f, "alice", "192.0.2.1", 5);
    advance(f, 1000);
    fail_n(f, "alice", "192.0.2.1", 1);
    assert_int_equal(check(f, "alice", "192.0.2.1", NULL), 2000);
    advance(f, 2000 + 60000 + 8000);
    fail_n(f, "alice", "192.0.2.1", 5);
    assert_int_equal(check(f, "alice", "192.0.2.1", NULL), 1000);
}

/* The table is bounded; records that block something outlive those that
 * do not. */
static void test_bounded(void **state)
{
    struct fx *f = *state;
    struct throttle_config c = cfg_default;
    c.max_entries = 100;
    c.max_source_failures = 1000000;
    throttle_set_config(f->t, &c);
    fail_n(f, "alice", "192.0.2.1", 5); /* blocked: 3 records */
    char user[32];
    for (int i = 0; i < 500; i++) {
        snprintf(user, sizeof(user), "guess%d", i);
        fail_n(f, user, "192.0.2.66", 1);
    }
    struct throttle_stats st;
    throttle_stats(f->t, &st);
    assert_true(st.records <= 100);
    assert_true(check(f, "alice", "192.0.2.1", NULL) > 0);
}

/* A user name too long for a record is never blocked by one, and nothing
 * breaks. */
static void test_long_names(void **state)
{
    struct fx *f = *state;
    char name[200];
    memset(name, 'x', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    fail_n(f, name, "192.0.2.1", 10);
    assert_int_equal(check(f, name, "192.0.2.1", NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_block_and_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broad_attack_spares_trusted_sources, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipv6_per_64, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_and_unblock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_source_wide, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trust_survives_churn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blocks_decay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_names, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
