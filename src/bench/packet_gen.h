/*
 * bench/packet_gen — what parley-bench's two packet generators, the SRTP
 * stream mode (srtp_stream.c) and the TURN relay load mode
 * (relay_load.c), do alike: one thread, one epoll set with a pacing
 * timer, UDP sockets whose datagrams carry the kernel's receive timestamp
 * and drop counter, a latency histogram of 1 µs buckets, the generator's
 * own CPU over the run, and the JSON fields both report the same way.
 *
 * What differs stays in the modes: their packets, how they count what
 * arrives, their verdict thresholds (the CPU share that makes a
 * generator "saturated"), their options and output beyond the shared
 * fields. The structs are open because each mode embeds them in its own
 * state; their fields are read, and written only through these functions.
 */
#ifndef PARLEY_BENCH_PACKET_GEN_H
#define PARLEY_BENCH_PACKET_GEN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

/* --- clocks and big-endian fields ----------------------------------------- */

/* The clock `id` (CLOCK_MONOTONIC for pacing, CLOCK_REALTIME to compare
 * with the kernel's receive timestamps) in nanoseconds. */
uint64_t packet_gen_clock_ns(clockid_t id);
/* CPU seconds (user + system) this process has used so far. */
double packet_gen_cpu_s(void);

static inline void packet_gen_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline uint32_t packet_gen_get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint16_t packet_gen_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

/* --- options -------------------------------------------------------------- */

/* argv asks for `scenario` (--scenario=NAME or --scenario NAME). */
bool packet_gen_selected(int argc, char **argv, const char *scenario);

/* A numeric option's range and default. */
struct packet_gen_number {
    double min, max, dflt;
};

/* num[i] = t[i].dflt for the n options of table t. */
void packet_gen_numbers_default(const struct packet_gen_number *t, size_t n, double *num);
/* The value of option --name into *out, within t's range. Returns 0, or
 * -EINVAL after saying so on stderr. */
int packet_gen_number_parse(const struct packet_gen_number *t, const char *name, const char *arg,
                            double *out);

/* --- the event loop ------------------------------------------------------- */

/* The epoll tag of the pacing timer; the modes tag their sockets below it. */
#define PACKET_GEN_TIMER_TAG UINT64_MAX

/* The epoll set and the pacing timer in it; -1 before they are opened. */
struct packet_gen_loop {
    int epfd, tfd;
};

/* Opens both and puts the timer in the set. Returns 0, -ENOMEM when an fd
 * could not be made, or the negative errno of adding the timer. */
int packet_gen_loop_open(struct packet_gen_loop *l);
void packet_gen_loop_close(struct packet_gen_loop *l);
/* Adds fd (readable) to the set with tag. Returns 0 or a negative errno. */
int packet_gen_loop_add(struct packet_gen_loop *l, int fd, uint64_t tag);
/* A tick every tick_us from now on; stopped by packet_gen_timer_stop. */
void packet_gen_timer_start(struct packet_gen_loop *l, unsigned tick_us);
void packet_gen_timer_stop(struct packet_gen_loop *l);

/* Called for a socket that has something to read. */
typedef void packet_gen_ready_fn(void *ctx, uint64_t tag);
/* One wait of at most timeout_ms (-1: until something happens; 0: a
 * look): ready(ctx, tag) for each socket, a timer tick consumed. */
void packet_gen_wait(struct packet_gen_loop *l, int timeout_ms, packet_gen_ready_fn *ready,
                     void *ctx);
/* Waits, as above, until the monotonic clock passes deadline_ns. */
void packet_gen_pump_until(struct packet_gen_loop *l, uint64_t deadline_ns,
                           packet_gen_ready_fn *ready, void *ctx);

/* --- sockets and receiving ------------------------------------------------ */

/* A non-blocking UDP socket of `family` with send and receive buffers of
 * bufsize (beyond net.core.rmem_max when run as root), so that a burst is
 * not lost at the generator itself, and the kernel's receive timestamp
 * and drop counter on every datagram. Returns the fd or a negative errno. */
int packet_gen_socket(int family, int bufsize);

#define PACKET_GEN_RX_BATCH 64
#define PACKET_GEN_RX_BUF   4200 /* the largest ChannelData relay_load sends, and more */

/* Receive scratch: too big for the stack, so part of the mode's state. */
struct packet_gen_rx {
    struct mmsghdr msgs[PACKET_GEN_RX_BATCH];
    struct iovec iov[PACKET_GEN_RX_BATCH];
    uint8_t buf[PACKET_GEN_RX_BATCH][PACKET_GEN_RX_BUF];
    uint64_t ctl[PACKET_GEN_RX_BATCH][16]; /* cmsg space, aligned */
};

/* A datagram of len octets at p that reached the socket at realtime `at`
 * (ns: the kernel's timestamp, else when it was read). */
typedef void packet_gen_datagram_fn(void *ctx, const uint8_t *p, size_t len, uint64_t at);
/* Reads every datagram waiting on fd, PACKET_GEN_RX_BATCH at a time into
 * rx, and passes each to got(ctx, ...); the socket's drop counter, when
 * the kernel reports it, into *overflow. */
void packet_gen_receive(struct packet_gen_rx *rx, int fd, uint32_t *overflow,
                        packet_gen_datagram_fn *got, void *ctx);

/* --- latency ------------------------------------------------------------- */

/* 1 µs buckets; the last one holds everything slower. */
#define PACKET_GEN_LAT_BUCKETS 200001

struct packet_gen_lat {
    uint64_t *hist;
    uint64_t count, sum_us;
};

/* Returns 0 or -ENOMEM. */
int packet_gen_lat_init(struct packet_gen_lat *l);
void packet_gen_lat_free(struct packet_gen_lat *l);
void packet_gen_lat_add(struct packet_gen_lat *l, uint64_t us);
/* The nearest-rank percentile in µs (100: the slowest); NaN without samples. */
double packet_gen_lat_percentile(const struct packet_gen_lat *l, double pct);
/* {samples, p50, p90, p99, [p999,] max, mean}, null for a figure without samples. */
json_t *packet_gen_lat_json(const struct packet_gen_lat *l, bool p999);

/* --- the run's figures ---------------------------------------------------- */

struct packet_gen_result {
    double send_s, drain_s;
    double cpu_send_s, cpu_total_s;
    bool generator_limited; /* set by the mode, by its own thresholds */
};

/* Wall and CPU time at the start of the load and at its last send. */
struct packet_gen_meter {
    uint64_t t0, t_sent;
    double cpu0, cpu_sent;
};

void packet_gen_meter_start(struct packet_gen_meter *m);
void packet_gen_meter_sent(struct packet_gen_meter *m);
/* After the drain: r's times (all but generator_limited). */
void packet_gen_meter_result(const struct packet_gen_meter *m, struct packet_gen_result *r);

/* The run's packets due elapsed_ns into it at rate (packets/s), at most
 * total: the one due at time 0, and one every 1 / rate s after. */
uint64_t packet_gen_due(double elapsed_ns, double rate, uint64_t total);
/* The generator's CPU while sending, in percent of one core (0: no send time). */
double packet_gen_cpu_percent(const struct packet_gen_result *r);
/* It sent fewer than 98 % of the packets the rate asked for (paced runs). */
bool packet_gen_sent_slow(const struct packet_gen_result *r, uint64_t sent, double rate);

/* --- JSON ----------------------------------------------------------------- */

json_t *packet_gen_json_u64(uint64_t v);
/* jansson has no NaN: a figure that could not be measured is null. */
json_t *packet_gen_json_figure(double v);
/* sent, received, lost and loss_ratio into j. */
void packet_gen_json_counts(json_t *j, uint64_t sent, uint64_t received);
/* {send_s, total_s, percent_of_one_core, saturated}: the generator_cpu object. */
json_t *packet_gen_cpu_json(const struct packet_gen_result *r, bool saturated);
/* j on stdout, indented, in the order it was built. */
void packet_gen_json_print(const json_t *j);

#endif
