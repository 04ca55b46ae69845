/*
 * What parley-bench's packet generators share (src/bench/packet_gen.c):
 * big-endian fields; --scenario selection, exact and not a prefix;
 * numeric options within their range and refused outside it; the latency
 * histogram's nearest-rank percentiles, its slowest bucket and its JSON
 * (null figures without samples, p999 only when asked); the packets due
 * at a tick, never more than the run has; the CPU share and the "sent
 * slower than asked" test; the JSON counts (no negative loss); every
 * datagram waiting read, past one batch, each with a timestamp; the
 * pacing timer's ticks consumed without a socket callback.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cmocka.h>

#include "bench/packet_gen.h"

static void test_big_endian(void **state)
{
    (void)state;
    uint8_t b[4];
    packet_gen_put32(b, 0x01020304u);
    assert_int_equal(b[0], 1);
    assert_int_equal(b[3], 4);
    assert_int_equal(packet_gen_get32(b), 0x01020304u);
    assert_int_equal(packet_gen_get16(b + 2), 0x0304);
    packet_gen_put32(b, 0xfffffffeu);
    assert_int_equal(packet_gen_get32(b), 0xfffffffeu);
}

static void test_selected(void **state)
{
    (void)state;
    char *a1[] = {"pb", "--scenario=relay", NULL};
    char *a2[] = {"pb", "--rate", "5", "--scenario", "relay", NULL};
    char *a3[] = {"pb", "--scenario=relayx", NULL};
    char *a4[] = {"pb", "--scenario=rel", NULL};
    char *a5[] = {"pb", "--scenario", NULL};
    char *a6[] = {"pb", "relay", NULL};
    assert_true(packet_gen_selected(2, a1, "relay"));
    assert_false(packet_gen_selected(2, a1, "srtp-stream"));
    assert_true(packet_gen_selected(5, a2, "relay"));
    assert_false(packet_gen_selected(2, a3, "relay"));
    assert_false(packet_gen_selected(2, a4, "relay"));
    assert_false(packet_gen_selected(2, a5, "relay"));
    assert_false(packet_gen_selected(2, a6, "relay"));
}

static void test_numbers(void **state)
{
    (void)state;
    static const struct packet_gen_number t[2] = {{1, 10, 5}, {0, 1, -1}};
    double num[2];
    packet_gen_numbers_default(t, 2, num);
    assert_true(num[0] == 5 && num[1] == -1);
    assert_int_equal(packet_gen_number_parse(&t[0], "batch", "10", &num[0]), 0);
    assert_true(num[0] == 10);
    /* refused, and the value kept */
    assert_int_equal(packet_gen_number_parse(&t[0], "batch", "11", &num[0]), -EINVAL);
    assert_int_equal(packet_gen_number_parse(&t[0], "batch", "0.5", &num[0]), -EINVAL);
    assert_int_equal(packet_gen_number_parse(&t[0], "batch", "7x", &num[0]), -EINVAL);
    assert_int_equal(packet_gen_number_parse(&t[0], "batch", "", &num[0]), -EINVAL);
    assert_int_equal(packet_gen_number_parse(&t[0], "batch", "nan", &num[0]), -EINVAL);
    assert_true(num[0] == 10);
}

static void test_latency(void **state)
{
    (void)state;
    struct packet_gen_lat l;
    assert_int_equal(packet_gen_lat_init(&l), 0);
    assert_true(isnan(packet_gen_lat_percentile(&l, 50)));
    json_t *j = packet_gen_lat_json(&l, false);
    assert_int_equal(json_integer_value(json_object_get(j, "samples")), 0);
    assert_true(json_is_null(json_object_get(j, "p50")));
    assert_true(json_is_null(json_object_get(j, "mean")));
    assert_null(json_object_get(j, "p999"));
    json_decref(j);

    for (uint64_t us = 1; us <= 100; us++)
        packet_gen_lat_add(&l, us);
    assert_true(packet_gen_lat_percentile(&l, 0) == 1);
    assert_true(packet_gen_lat_percentile(&l, 50) == 50);
    assert_true(packet_gen_lat_percentile(&l, 99) == 99);
    assert_true(packet_gen_lat_percentile(&l, 99.9) == 100);
    assert_true(packet_gen_lat_percentile(&l, 100) == 100);
    /* slower than the histogram: the last bucket, the mean from the sum */
    packet_gen_lat_add(&l, 10000000);
    assert_true(packet_gen_lat_percentile(&l, 100) == PACKET_GEN_LAT_BUCKETS - 1);
    j = packet_gen_lat_json(&l, true);
    assert_int_equal(json_integer_value(json_object_get(j, "samples")), 101);
    assert_true(json_real_value(json_object_get(j, "p999")) == PACKET_GEN_LAT_BUCKETS - 1);
    assert_true(json_real_value(json_object_get(j, "mean")) == (5050.0 + 10000000.0) / 101.0);
    /* the order both modes print */
    const char *want[] = {"samples", "p50", "p90", "p99", "p999", "max", "mean"};
    size_t i = 0;
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v)
    {
        (void)v;
        assert_true(i < 7);
        assert_string_equal(key, want[i++]);
    }
    json_decref(j);
    packet_gen_lat_free(&l);
}

static void test_pacing_and_verdict(void **state)
{
    (void)state;
    assert_int_equal(packet_gen_due(0, 1000, 50), 1);
    assert_int_equal(packet_gen_due(10e6, 1000, 50), 11);
    assert_int_equal(packet_gen_due(1e9, 1000, 50), 50); /* never past the run */

    struct packet_gen_result r = {0};
    assert_true(packet_gen_cpu_percent(&r) == 0);
    assert_false(packet_gen_sent_slow(&r, 0, 1000)); /* no send time: no verdict */
    r.send_s = 2;
    r.cpu_send_s = 1;
    assert_true(packet_gen_cpu_percent(&r) == 50);
    assert_false(packet_gen_sent_slow(&r, 1960, 1000)); /* 98 % */
    assert_true(packet_gen_sent_slow(&r, 1950, 1000));
    assert_false(packet_gen_sent_slow(&r, 0, 0)); /* unpaced */

    json_t *cpu = packet_gen_cpu_json(&r, true);
    assert_true(json_real_value(json_object_get(cpu, "percent_of_one_core")) == 50);
    assert_true(json_is_true(json_object_get(cpu, "saturated")));
    json_decref(cpu);
}

static void test_json_counts(void **state)
{
    (void)state;
    json_t *j = json_object();
    packet_gen_json_counts(j, 200, 150);
    assert_int_equal(json_integer_value(json_object_get(j, "lost")), 50);
    assert_true(json_real_value(json_object_get(j, "loss_ratio")) == 0.25);
    /* duplicates counted apart: more received than sent is no negative loss */
    packet_gen_json_counts(j, 10, 12);
    assert_int_equal(json_integer_value(json_object_get(j, "lost")), 0);
    packet_gen_json_counts(j, 0, 0);
    assert_true(json_real_value(json_object_get(j, "loss_ratio")) == 0);
    assert_true(json_is_null(packet_gen_json_figure(NAN)));
    json_decref(j);
}

struct seen {
    unsigned n;
    uint32_t sum;
    bool stamped;
};

static void on_datagram(void *ctx, const uint8_t *p, size_t len, uint64_t at)
{
    struct seen *s = ctx;
    assert_int_equal(len, 4);
    s->n++;
    s->sum += packet_gen_get32(p);
    s->stamped &= at > 0;
}

struct ready {
    struct packet_gen_rx *rx;
    int fd;
    uint32_t overflow;
    struct seen seen;
    unsigned calls;
};

static void on_ready(void *ctx, uint64_t tag)
{
    struct ready *r = ctx;
    assert_int_equal(tag, 7);
    r->calls++;
    packet_gen_receive(r->rx, r->fd, &r->overflow, on_datagram, &r->seen);
}

static void test_receive_and_loop(void **state)
{
    (void)state;
    struct packet_gen_rx *rx = calloc(1, sizeof(*rx));
    struct packet_gen_loop l = {-1, -1};
    struct sockaddr_in at = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(at);
    int fd = packet_gen_socket(AF_INET, 1 << 20);
    int tx = socket(AF_INET, SOCK_DGRAM, 0);
    assert_non_null(rx);
    assert_true(fd >= 0 && tx >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&at, sizeof(at)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&at, &alen), 0);
    assert_int_equal(packet_gen_loop_open(&l), 0);
    assert_int_equal(packet_gen_loop_add(&l, fd, 7), 0);

    /* more than a batch waits: all of it is read in one call */
    unsigned count = PACKET_GEN_RX_BATCH + 6;
    uint32_t want = 0;
    for (uint32_t i = 0; i < count; i++) {
        uint8_t b[4];
        packet_gen_put32(b, i);
        want += i;
        assert_int_equal(sendto(tx, b, 4, 0, (struct sockaddr *)&at, sizeof(at)), 4);
    }
    struct ready r = {.rx = rx, .fd = fd, .seen = {.stamped = true}};
    packet_gen_pump_until(&l, packet_gen_clock_ns(CLOCK_MONOTONIC) + 50000000ull, on_ready, &r);
    assert_int_equal(r.seen.n, count);
    assert_int_equal(r.seen.sum, want);
    assert_true(r.seen.stamped);
    assert_int_equal(r.overflow, 0);

    /* the timer's ticks wake a wait and are consumed: no socket callback */
    unsigned calls = r.calls;
    packet_gen_timer_start(&l, 1000);
    for (int i = 0; i < 5; i++)
        packet_gen_wait(&l, 1000, on_ready, &r);
    packet_gen_timer_stop(&l);
    assert_int_equal(r.calls, calls);

    packet_gen_loop_close(&l);
    assert_int_equal(l.epfd, -1);
    close(fd);
    close(tx);
    free(rx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_big_endian),
        cmocka_unit_test(test_selected),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_latency),
        cmocka_unit_test(test_pacing_and_verdict),
        cmocka_unit_test(test_json_counts),
        cmocka_unit_test(test_receive_and_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
