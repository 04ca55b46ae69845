/*
 * bench/srtp_stream — parley-bench's SRTP stream mode (see srtp_stream.h).
 *
 * One thread does everything, so that the generator's own cost is one
 * core's and shows in its CPU figure: a periodic timerfd paces the sends,
 * one epoll set holds the timer and the sockets packets come back on.
 * Packet j of the run is packet k = j / N of stream i = j % N: the streams
 * take turns, so every stream sends once per N / rate seconds and the
 * offered load is even over time. Packets are protected before the run and
 * kept in send order, so the run itself only sends and counts.
 */
#include "bench/srtp_stream.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench/packet_gen.h"
#include "bench/srtp_packets.h"
#include "core/netaddr.h"
#include "rtp/srtp.h"

#define SEND_BATCH_MAX 256
/* A send later than this after its due time counts as late (reported:
 * bursts the server had to take). */
#define LATE_NS (5 * 1000000ull)
/* The forgery check: valid packets first, then forged ones, then more valid. */
#define FORGERY_VALID    10
#define FORGERY_AFTER    5
#define FORGERY_PACKETS  (FORGERY_VALID + FORGERY_AFTER)
#define FORGERY_WAIT_S   0.3
#define SOCKET_BUF_BYTES (32 * 1024 * 1024)

struct srtp_stream_opts {
    const char *streams_file;
    double rate; /* packets/s in all; 0: as fast as the generator can */
    bool rate_set;
    double duration_s;
    double drain_s;
    double hello_wait_s;
    unsigned batch;
    unsigned tick_us;
    uint64_t first_index;
    uint64_t max_packets;
    double late_ms; /* a packet that took longer reached B too late to be played */
    bool forgery_check;
    bool busy_poll;
    bool json;
    bool quiet;
};

/* One local address the generator sends from or receives on. */
struct gen_sock {
    struct netaddr local;
    int fd;
    uint32_t overflow; /* SO_RXQ_OVFL: datagrams the kernel dropped at this socket */
};

struct gen {
    const struct srtp_stream_opts *o;
    struct bench_srtp_stream_spec *specs;
    size_t n;
    struct rtp_srtp_crypto *crypto;
    struct gen_sock *socks;
    size_t nsocks;
    size_t *a_sock, *b_sock;     /* per stream, into socks */
    struct packet_gen_loop loop; /* sockets tagged with their index in socks */
    /* the run's packets, j = k * n + i */
    uint64_t per_stream;
    uint64_t total;
    uint8_t *slots;    /* total * BENCH_SRTP_SLOT */
    uint16_t *lens;    /* octets to send of each */
    uint64_t *sent_ns; /* CLOCK_REALTIME of its send call; 0: not sent */
    uint8_t *got;      /* times it reached B (saturating) */
    uint64_t *highest_k;
    struct packet_gen_lat lat;
    uint64_t late_arrivals; /* received, but more than late_ms after their send */
    /* counters */
    uint64_t sent, received, duplicates, stale, a_received, late, send_stalls;
    uint64_t max_k_sent;
    bool any_sent;
    struct packet_gen_rx rx;
};

/* --- options ----------------------------------------------------------------- */

bool srtp_stream_selected(int argc, char **argv)
{
    return packet_gen_selected(argc, argv, "srtp-stream");
}

static void srtp_stream_usage(FILE *f)
{
    fputs("usage: parley-bench --scenario srtp-stream --streams-file FILE [options]\n"
          "\n"
          "  --streams-file FILE   one stream per line (see src/bench/srtp_packets.h)\n"
          "  --rate R              packets/s from all A parties together; 0 = as fast as\n"
          "                        possible (default: 50 per stream, one every 20 ms)\n"
          "  --duration S          seconds of load (default 10)\n"
          "  --max-packets N       packets protected ahead with --rate 0 (default 3000000)\n"
          "  --first-index I       SRTP index of the first packet of each stream (default 0);\n"
          "                        a later run on the same streams starts at the next_index\n"
          "                        the last one printed, or the server drops it as a replay\n"
          "  --batch N             datagrams per sendmmsg (default 32)\n"
          "  --tick-us U           pacing tick (default 1000)\n"
          "  --hello-wait S        after B's hellos, before A sends (default 0.3)\n"
          "  --drain S             receiving after the last send (default 0.5)\n"
          "  --late-ms MS          a packet that takes longer counts as late, as good as lost\n"
          "                        to a jitter buffer (default 50)\n"
          "  --busy-poll           never sleep: poll the sockets in a loop, so that the server\n"
          "                        never has to wake the generator up (its CPU is then 100 %)\n"
          "  --forgery-check       send valid, then forged and replayed packets instead\n"
          "  --json                one JSON object on stdout\n"
          "  --quiet               no progress lines on stderr\n",
          f);
}

/* The numeric options, in the order of their table below. */
enum srtp_stream_number {
    NUM_RATE,
    NUM_DURATION,
    NUM_MAX_PACKETS,
    NUM_FIRST_INDEX,
    NUM_BATCH,
    NUM_TICK_US,
    NUM_HELLO_WAIT,
    NUM_DRAIN,
    NUM_LATE_MS,
    NUM_COUNT,
};

static const struct packet_gen_number srtp_stream_numbers[NUM_COUNT] = {
    [NUM_RATE] = {0, 1e8, -1}, /* -1: 50 per stream, known once the file is read */
    [NUM_DURATION] = {0.1, 86400, 10},
    [NUM_MAX_PACKETS] = {1, 1e9, 3e6},
    [NUM_FIRST_INDEX] = {0, 2.5e14, 0}, /* an SRTP index has 48 bits */
    [NUM_BATCH] = {1, SEND_BATCH_MAX, 32},
    [NUM_TICK_US] = {50, 1e6, 1000},
    [NUM_HELLO_WAIT] = {0, 60, 0.3},
    [NUM_DRAIN] = {0, 60, 0.5},
    [NUM_LATE_MS] = {0.001, 60000, 50},
};

static int srtp_stream_parse(int argc, char **argv, struct srtp_stream_opts *o)
{
    /* past every character getopt may return ('h', '?') */
    enum { F_SCENARIO = 256, F_FILE, F_FORGERY, F_BUSY, F_JSON, F_QUIET, F_HELP };
    static const struct option options[] = {
        {"rate", required_argument, 0, NUM_RATE},
        {"duration", required_argument, 0, NUM_DURATION},
        {"max-packets", required_argument, 0, NUM_MAX_PACKETS},
        {"first-index", required_argument, 0, NUM_FIRST_INDEX},
        {"batch", required_argument, 0, NUM_BATCH},
        {"tick-us", required_argument, 0, NUM_TICK_US},
        {"hello-wait", required_argument, 0, NUM_HELLO_WAIT},
        {"drain", required_argument, 0, NUM_DRAIN},
        {"late-ms", required_argument, 0, NUM_LATE_MS},
        {"scenario", required_argument, 0, F_SCENARIO},
        {"streams-file", required_argument, 0, F_FILE},
        {"forgery-check", no_argument, 0, F_FORGERY},
        {"busy-poll", no_argument, 0, F_BUSY},
        {"json", no_argument, 0, F_JSON},
        {"quiet", no_argument, 0, F_QUIET},
        {"help", no_argument, 0, F_HELP},
        {0, 0, 0, 0},
    };
    double num[NUM_COUNT];
    int c, index = 0;

    memset(o, 0, sizeof(*o));
    packet_gen_numbers_default(srtp_stream_numbers, NUM_COUNT, num);
    while ((c = getopt_long(argc, argv, "h", options, &index)) != -1) {
        if (c >= 0 && c < NUM_COUNT) {
            if (packet_gen_number_parse(&srtp_stream_numbers[c], options[index].name, optarg,
                                        &num[c]) != 0)
                return -EINVAL;
            continue;
        }
        if (c == F_SCENARIO && strcmp(optarg, "srtp-stream") != 0)
            return -EINVAL;
        if (c == F_HELP || c == 'h') {
            srtp_stream_usage(stdout);
            exit(0);
        }
        if (c == '?')
            return -EINVAL;
        o->streams_file = c == F_FILE ? optarg : o->streams_file;
        o->forgery_check |= c == F_FORGERY;
        o->busy_poll |= c == F_BUSY;
        o->json |= c == F_JSON;
        o->quiet |= c == F_QUIET;
    }
    if (optind < argc || !o->streams_file) {
        fprintf(stderr, "parley-bench: srtp-stream needs --streams-file and nothing else\n");
        return -EINVAL;
    }
    o->rate_set = num[NUM_RATE] >= 0;
    o->rate = num[NUM_RATE];
    o->duration_s = num[NUM_DURATION];
    o->max_packets = (uint64_t)num[NUM_MAX_PACKETS];
    o->first_index = (uint64_t)num[NUM_FIRST_INDEX];
    o->batch = (unsigned)num[NUM_BATCH];
    o->tick_us = (unsigned)num[NUM_TICK_US];
    o->hello_wait_s = num[NUM_HELLO_WAIT];
    o->drain_s = num[NUM_DRAIN];
    o->late_ms = num[NUM_LATE_MS];
    return 0;
}

/* --- sockets ------------------------------------------------------------------- */

/* The socket bound to local, made the first time it is asked for. Large
 * buffers, so that a burst is not lost at the generator itself; the
 * kernel's receive timestamp and drop counter on every datagram. */
static int gen_sock_for(struct gen *g, const struct netaddr *local, size_t *index)
{
    for (size_t i = g->nsocks; i-- > 0;) {
        if (netaddr_equal(&g->socks[i].local, local)) {
            *index = i;
            return 0;
        }
    }
    struct gen_sock *s = &g->socks[g->nsocks];
    int fd = packet_gen_socket(netaddr_family(local), SOCKET_BUF_BYTES);
    if (fd < 0)
        return fd;
    if (bind(fd, &local->u.sa, local->len) != 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    int rc = packet_gen_loop_add(&g->loop, fd, g->nsocks);
    if (rc) {
        close(fd);
        return rc;
    }
    s->local = *local;
    s->fd = fd;
    s->overflow = 0;
    *index = g->nsocks++;
    return 0;
}

/* --- receiving ----------------------------------------------------------------- */

/* A datagram that reached one of our sockets at realtime `at`. Matched by
 * its header only: A's SSRCs are the load arriving at B, B's are hellos
 * the server passed on to A. */
static void gen_account(void *ctx, const uint8_t *p, size_t len, uint64_t at)
{
    struct gen *g = ctx;
    if (len < 12 || (p[0] & 0xc0) != 0x80) {
        g->stale++;
        return;
    }
    uint32_t ssrc = packet_gen_get32(p + 8);
    uint16_t seq = packet_gen_get16(p + 2);
    if (ssrc - BENCH_SRTP_SSRC_B < g->n) {
        g->a_received++;
        return;
    }
    size_t i = ssrc - BENCH_SRTP_SSRC_A;
    if (i >= g->n) {
        g->stale++;
        return;
    }
    uint64_t k = srtp_packets_k_from_seq(seq, g->o->first_index, g->highest_k[i]);
    if (k >= g->per_stream) {
        g->stale++;
        return;
    }
    if (k > g->highest_k[i])
        g->highest_k[i] = k;
    uint64_t j = k * g->n + i;
    if (g->got[j]) {
        g->duplicates++;
        if (g->got[j] < UINT8_MAX)
            g->got[j]++;
        return;
    }
    g->got[j] = 1;
    g->received++;
    if (g->sent_ns[j] && at >= g->sent_ns[j]) {
        uint64_t us = (at - g->sent_ns[j]) / 1000;
        if ((double)us > g->o->late_ms * 1000.0)
            g->late_arrivals++;
        packet_gen_lat_add(&g->lat, us);
    }
}

static void gen_ready(void *ctx, uint64_t tag)
{
    struct gen *g = ctx;
    struct gen_sock *s = &g->socks[tag];
    packet_gen_receive(&g->rx, s->fd, &s->overflow, gen_account, g);
}

/* One wait of at most timeout_ms (-1: until something happens; 0: a
 * look): what arrived is counted, a timer tick consumed. */
static void gen_wait(struct gen *g, int timeout_ms)
{
    packet_gen_wait(&g->loop, timeout_ms, gen_ready, g);
}

/* Receives until the monotonic clock passes deadline_ns. */
static void gen_pump_until(struct gen *g, uint64_t deadline_ns)
{
    packet_gen_pump_until(&g->loop, deadline_ns, gen_ready, g);
}

/* --- sending -------------------------------------------------------------------- */

/* Sends packets [from, to) of the run, consecutive ones of one socket in
 * one sendmmsg. Returns the first not sent (to, unless a socket's buffer
 * was full: the rest waits for the next call). */
static uint64_t gen_send(struct gen *g, uint64_t from, uint64_t to)
{
    struct mmsghdr msgs[SEND_BATCH_MAX];
    struct iovec iov[SEND_BATCH_MAX];
    uint64_t j = from;
    while (j < to) {
        size_t sock = g->a_sock[j % g->n];
        unsigned count = 0;
        while (count < g->o->batch && j + count < to && g->a_sock[(j + count) % g->n] == sock) {
            uint64_t p = j + count;
            const struct netaddr *dest = &g->specs[p % g->n].a_to;
            iov[count] =
                (struct iovec){.iov_base = g->slots + p * BENCH_SRTP_SLOT, .iov_len = g->lens[p]};
            msgs[count] = (struct mmsghdr){.msg_hdr = {.msg_name = (void *)&dest->u.sa,
                                                       .msg_namelen = dest->len,
                                                       .msg_iov = &iov[count],
                                                       .msg_iovlen = 1}};
            count++;
        }
        uint64_t t = packet_gen_clock_ns(CLOCK_REALTIME);
        int sent = sendmmsg(g->socks[sock].fd, msgs, count, MSG_DONTWAIT);
        if (sent < 0 && errno == EINTR)
            continue;
        if (sent <= 0) {
            g->send_stalls++;
            break;
        }
        for (int m = 0; m < sent; m++)
            g->sent_ns[j + (uint64_t)m] = t;
        j += (uint64_t)sent;
        g->sent += (uint64_t)sent;
        uint64_t k = (j - 1) / g->n;
        if (!g->any_sent || k > g->max_k_sent)
            g->max_k_sent = k;
        g->any_sent = true;
        if ((unsigned)sent < count) {
            g->send_stalls++;
            break;
        }
    }
    return j;
}

/* --- set-up ---------------------------------------------------------------------- */

static int gen_alloc_packets(struct gen *g, uint64_t per_stream, char *err, size_t errlen)
{
    g->per_stream = per_stream;
    g->total = per_stream * g->n;
    g->slots = malloc(g->total * BENCH_SRTP_SLOT);
    g->lens = calloc(g->total, sizeof(*g->lens));
    g->sent_ns = calloc(g->total, sizeof(*g->sent_ns));
    g->got = calloc(g->total, 1);
    g->highest_k = calloc(g->n, sizeof(*g->highest_k));
    int rc = packet_gen_lat_init(&g->lat);
    if (!g->slots || !g->lens || !g->sent_ns || !g->got || !g->highest_k || rc) {
        snprintf(err, errlen, "out of memory for %" PRIu64 " packets", g->total);
        return -ENOMEM;
    }
    return 0;
}

/* Every packet of the run, protected with its stream's A session. */
static int gen_precompute(struct gen *g, char *err, size_t errlen)
{
    struct rtp_srtp **sessions = calloc(g->n, sizeof(*sessions));
    int rc = sessions ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < g->n; i++)
        rc = srtp_packets_session(g->crypto, &g->specs[i].a, BENCH_SRTP_SSRC_A + (uint32_t)i,
                                  g->o->first_index, &sessions[i]);
    for (uint64_t j = 0; rc == 0 && j < g->total; j++) {
        size_t i = j % g->n;
        rc = srtp_packets_protect(sessions[i], BENCH_SRTP_SSRC_A + (uint32_t)i, g->o->first_index,
                                  j / g->n, g->slots + j * BENCH_SRTP_SLOT, &g->lens[j]);
    }
    if (rc)
        snprintf(err, errlen, "protecting the packets failed: %s", strerror(-rc));
    for (size_t i = 0; sessions && i < g->n; i++)
        rtp_srtp_free(sessions[i]);
    free(sessions);
    return rc;
}

/* B's first packet on every stream: the server sends nothing toward B
 * before one authenticates on B's leg. */
static int gen_send_hellos(struct gen *g, char *err, size_t errlen)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < g->n; i++) {
        const struct bench_srtp_stream_spec *sp = &g->specs[i];
        uint32_t ssrc = BENCH_SRTP_SSRC_B + (uint32_t)i;
        struct rtp_srtp *s = NULL;
        uint8_t pkt[BENCH_SRTP_SLOT];
        uint16_t len = 0;
        if (!sp->b.plain)
            rc = srtp_packets_session(g->crypto, &sp->b, ssrc, g->o->first_index, &s);
        if (rc == 0)
            rc = srtp_packets_protect(s, ssrc, g->o->first_index, 0, pkt, &len);
        rtp_srtp_free(s);
        if (rc == 0 && sendto(g->socks[g->b_sock[i]].fd, pkt, len, 0, &sp->b_to.u.sa,
                              sp->b_to.len) != (ssize_t)len)
            rc = -errno;
        if (rc)
            snprintf(err, errlen, "stream %zu: B's hello: %s", i, strerror(-rc));
    }
    return rc;
}

static int gen_open(struct gen *g, char *err, size_t errlen)
{
    int rc = packet_gen_loop_open(&g->loop);
    g->socks = calloc(2 * g->n, sizeof(*g->socks));
    g->a_sock = calloc(g->n, sizeof(*g->a_sock));
    g->b_sock = calloc(g->n, sizeof(*g->b_sock));
    if (rc == -ENOMEM || !g->socks || !g->a_sock || !g->b_sock) {
        snprintf(err, errlen, "out of resources");
        return -ENOMEM;
    }
    if (rc) {
        snprintf(err, errlen, "epoll: %s", strerror(-rc));
        return rc;
    }
    for (size_t i = 0; i < g->n; i++) {
        const struct netaddr *at = &g->specs[i].a_from;
        rc = gen_sock_for(g, at, &g->a_sock[i]);
        if (rc == 0) {
            at = &g->specs[i].b_at;
            rc = gen_sock_for(g, at, &g->b_sock[i]);
        }
        if (rc) {
            char text[NETADDR_STRLEN];
            snprintf(err, errlen, "stream %zu: cannot bind %s: %s", i, netaddr_format(at, text),
                     strerror(-rc));
            return rc;
        }
    }
    return rtp_srtp_crypto_new(NULL, NULL, &g->crypto) == 0 ? 0 : -EIO;
}

static void gen_close(struct gen *g)
{
    for (size_t i = 0; g->socks && i < g->nsocks; i++)
        close(g->socks[i].fd);
    packet_gen_loop_close(&g->loop);
    rtp_srtp_crypto_free(g->crypto);
    free(g->socks);
    free(g->a_sock);
    free(g->b_sock);
    free(g->slots);
    free(g->lens);
    free(g->sent_ns);
    free(g->got);
    free(g->highest_k);
    packet_gen_lat_free(&g->lat);
}

/* --- the load -------------------------------------------------------------------- */

/* Sends every packet at its due time (or as fast as possible with rate 0,
 * until the duration or the packets run out), then drains. */
static void gen_run(struct gen *g, struct packet_gen_result *r)
{
    const struct srtp_stream_opts *o = g->o;
    double rate = o->rate;
    uint64_t j = 0;
    struct packet_gen_meter m;
    packet_gen_meter_start(&m);
    uint64_t end = m.t0 + (uint64_t)(o->duration_s * 1e9);

    /* busy polling needs no timer: the loop reads the clock every turn */
    if (rate > 0 && !o->busy_poll)
        packet_gen_timer_start(&g->loop, o->tick_us);
    while (j < g->total) {
        gen_wait(g, rate > 0 && !o->busy_poll ? -1 : 0);
        uint64_t now = packet_gen_clock_ns(CLOCK_MONOTONIC);
        if (rate <= 0) {
            if (now >= end)
                break;
            uint64_t to = j + o->batch < g->total ? j + o->batch : g->total;
            j = gen_send(g, j, to);
            continue;
        }
        double elapsed = (double)(now - m.t0);
        uint64_t due = packet_gen_due(elapsed, rate, g->total);
        if (due <= j)
            continue;
        /* packets whose due time passed more than LATE_NS ago */
        double late_before = (elapsed - (double)LATE_NS) * rate / 1e9;
        if (late_before > (double)j) {
            uint64_t upto = (uint64_t)ceil(late_before);
            g->late += (upto < due ? upto : due) - j;
        }
        j = gen_send(g, j, due);
    }
    packet_gen_meter_sent(&m);
    packet_gen_timer_stop(&g->loop);
    gen_pump_until(g, m.t_sent + (uint64_t)(o->drain_s * 1e9));
    packet_gen_meter_result(&m, r);
    bool saturated = packet_gen_cpu_percent(r) > 90.0;
    /* Paced: it did not send at the rate asked (late sends it caught up
     * with are only burstier, and counted apart), or its core was full.
     * Unpaced: the generator is what ran out. A busy-polling generator
     * always uses its whole core: only the rate says. */
    bool slow = packet_gen_sent_slow(r, g->sent, rate);
    r->generator_limited = slow || (!o->busy_poll && saturated);
}

/* --- the forgery check ------------------------------------------------------------- */

struct forgery_result {
    uint64_t valid_sent, valid_received;
    uint64_t forged_tag_delivered;        /* a wrong tag, from A's address */
    uint64_t forged_other_port_delivered; /* a wrong tag, from another port */
    uint64_t replay_other_port_delivered; /* a valid packet again, from another port */
    uint64_t after_received;              /* valid packets after the forgeries */
    bool passed;
    char why[200];
};

static uint64_t gen_got_k(const struct gen *g, uint64_t k, bool extra)
{
    uint64_t n = 0;
    for (size_t i = 0; i < g->n; i++) {
        uint8_t c = g->got[k * g->n + i];
        n += extra ? (c > 1 ? c - 1u : 0) : (c ? 1 : 0);
    }
    return n;
}

/* Packet k of every stream, altered (its last tag octet flipped) when
 * forge, sent from A's socket or from `other`. */
static void gen_send_each(struct gen *g, uint64_t k, bool forge, int other)
{
    for (size_t i = 0; i < g->n; i++) {
        uint64_t j = k * g->n + i;
        uint8_t pkt[BENCH_SRTP_SLOT];
        memcpy(pkt, g->slots + j * BENCH_SRTP_SLOT, g->lens[j]);
        if (forge)
            pkt[g->lens[j] - 1] ^= 0x5a;
        int fd = other >= 0 ? other : g->socks[g->a_sock[i]].fd;
        const struct netaddr *to = &g->specs[i].a_to;
        g->sent_ns[j] = packet_gen_clock_ns(CLOCK_REALTIME);
        if (sendto(fd, pkt, g->lens[j], 0, &to->u.sa, to->len) == (ssize_t)g->lens[j])
            g->sent++;
    }
}

static void gen_forgery(struct gen *g, struct forgery_result *f)
{
    uint64_t wait_ns = (uint64_t)(FORGERY_WAIT_S * 1e9);
    /* the other port: A's address, a port the server never heard of */
    struct netaddr other_at = g->specs[0].a_from;
    netaddr_set_port(&other_at, 0);
    int other = socket(netaddr_family(&other_at), SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (other < 0 || bind(other, &other_at.u.sa, other_at.len) != 0) {
        snprintf(f->why, sizeof(f->why), "no socket for the other port: %s", strerror(errno));
        goto out;
    }
    for (uint64_t k = 0; k < FORGERY_VALID; k++) {
        gen_send_each(g, k, false, -1);
        gen_pump_until(g, packet_gen_clock_ns(CLOCK_MONOTONIC) + 20000000ull);
    }
    gen_pump_until(g, packet_gen_clock_ns(CLOCK_MONOTONIC) + wait_ns);
    f->valid_sent = FORGERY_VALID * g->n;
    for (uint64_t k = 0; k < FORGERY_VALID; k++)
        f->valid_received += gen_got_k(g, k, false);

    gen_send_each(g, FORGERY_VALID, true, -1);
    gen_pump_until(g, packet_gen_clock_ns(CLOCK_MONOTONIC) + wait_ns);
    f->forged_tag_delivered = gen_got_k(g, FORGERY_VALID, false);

    gen_send_each(g, FORGERY_VALID + 1, true, other);
    gen_pump_until(g, packet_gen_clock_ns(CLOCK_MONOTONIC) + wait_ns);
    f->forged_other_port_delivered = gen_got_k(g, FORGERY_VALID + 1, false);

    gen_send_each(g, 3, false, other);
    gen_pump_until(g, packet_gen_clock_ns(CLOCK_MONOTONIC) + wait_ns);
    f->replay_other_port_delivered = gen_got_k(g, 3, true);

    /* the stream still works from A's address: the forgeries neither
     * used up an index nor moved the server's idea of where A is */
    uint64_t before = 0;
    for (uint64_t k = FORGERY_VALID; k < FORGERY_PACKETS; k++)
        before += gen_got_k(g, k, false);
    for (uint64_t k = FORGERY_VALID; k < FORGERY_PACKETS; k++) {
        gen_send_each(g, k, false, -1);
        gen_pump_until(g, packet_gen_clock_ns(CLOCK_MONOTONIC) + 20000000ull);
    }
    gen_pump_until(g, packet_gen_clock_ns(CLOCK_MONOTONIC) + wait_ns);
    for (uint64_t k = FORGERY_VALID; k < FORGERY_PACKETS; k++)
        f->after_received += gen_got_k(g, k, false);
    f->after_received -= before;

    if (f->valid_received < f->valid_sent)
        snprintf(f->why, sizeof(f->why), "only %" PRIu64 " of %" PRIu64 " valid packets reached B",
                 f->valid_received, f->valid_sent);
    else if (f->forged_tag_delivered)
        snprintf(f->why, sizeof(f->why), "a packet with a wrong tag from A's address reached B");
    else if (f->forged_other_port_delivered)
        snprintf(f->why, sizeof(f->why), "a packet with a wrong tag from another port reached B");
    else if (f->after_received == 0)
        snprintf(f->why, sizeof(f->why), "no valid packet reached B after the forged ones");
    else
        f->passed = true;
out:
    if (other >= 0)
        close(other);
}

/* --- output ------------------------------------------------------------------------ */

/* UDP datagrams the kernel dropped for full receive buffers, host-wide
 * (the server's sockets and ours): what explains a loss. */
static long long udp_rcvbuf_errors(void)
{
    FILE *f = fopen("/proc/net/snmp", "r");
    char names[1024], values[1024];
    long long result = -1;
    if (!f)
        return -1;
    while (fgets(names, sizeof(names), f) && fgets(values, sizeof(values), f)) {
        if (strncmp(names, "Udp: ", 5) != 0)
            continue;
        char *ns = NULL, *vs = NULL;
        char *n = strtok_r(names, " \n", &ns), *v = strtok_r(values, " \n", &vs);
        while (n && v) {
            if (strcmp(n, "RcvbufErrors") == 0)
                result = atoll(v);
            n = strtok_r(NULL, " \n", &ns);
            v = strtok_r(NULL, " \n", &vs);
        }
        break;
    }
    fclose(f);
    return result;
}

static void gen_print(const struct gen *g, const struct packet_gen_result *r,
                      const struct forgery_result *f, long long rcvbuf_errors, int exit_code)
{
    const struct srtp_stream_opts *o = g->o;
    uint64_t lost = g->sent > g->received ? g->sent - g->received : 0;
    uint32_t overflow = 0;
    for (size_t i = 0; i < g->nsocks; i++)
        overflow += g->socks[i].overflow;
    uint64_t next = o->first_index + (g->any_sent ? g->max_k_sent + 1 : 1);
    if (f)
        next = o->first_index + FORGERY_PACKETS;
    double pct = packet_gen_cpu_percent(r);
    json_t *j = json_object();
    json_object_set_new(j, "scenario", json_string("srtp-stream"));
    json_object_set_new(j, "mode", json_string(f ? "forgery-check" : "load"));
    json_object_set_new(j, "busy_poll", json_boolean(o->busy_poll));
    json_object_set_new(j, "streams", packet_gen_json_u64(g->n));
    json_object_set_new(j, "rate_offered", json_real(f ? 0 : o->rate));
    json_object_set_new(j, "duration_s", json_real(o->duration_s));
    json_object_set_new(j, "first_index", packet_gen_json_u64(o->first_index));
    json_object_set_new(j, "next_index", packet_gen_json_u64(next));
    json_object_set_new(j, "packets_per_stream", packet_gen_json_u64(g->per_stream));
    packet_gen_json_counts(j, g->sent, g->received);
    /* A server that falls behind queues packets in its sockets' buffers
     * (about 200 G.711 packets each by default: seconds of traffic over
     * a thousand streams) before it drops any: packets that came too late
     * to be played count with the lost for a rate it sustains. */
    json_object_set_new(j, "late_arrivals", packet_gen_json_u64(g->late_arrivals));
    json_object_set_new(j, "late_ms", json_real(o->late_ms));
    json_object_set_new(
        j, "lost_or_late_ratio",
        json_real(g->sent ? (double)(lost + g->late_arrivals) / (double)g->sent : 0.0));
    json_object_set_new(j, "duplicates", packet_gen_json_u64(g->duplicates));
    json_object_set_new(j, "stale", packet_gen_json_u64(g->stale));
    json_object_set_new(j, "hellos_passed_to_a", packet_gen_json_u64(g->a_received));
    json_object_set_new(j, "late_sends", packet_gen_json_u64(g->late));
    json_object_set_new(j, "send_stalls", packet_gen_json_u64(g->send_stalls));
    json_object_set_new(j, "send_s", json_real(r->send_s));
    json_object_set_new(j, "sent_per_s", json_real(r->send_s > 0 ? g->sent / r->send_s : 0));
    json_object_set_new(j, "received_per_s",
                        json_real(r->send_s > 0 ? g->received / r->send_s : 0));
    json_object_set_new(j, "generator_limited", json_boolean(r->generator_limited));
    json_object_set_new(j, "generator_socket_drops", json_integer(overflow));
    json_object_set_new(j, "host_udp_rcvbuf_errors", json_integer(rcvbuf_errors));
    json_object_set_new(j, "generator_cpu", packet_gen_cpu_json(r, pct > 90.0));
    json_object_set_new(j, "latency_us", packet_gen_lat_json(&g->lat, true));
    if (f) {
        json_t *fj = json_object();
        json_object_set_new(fj, "valid_sent", packet_gen_json_u64(f->valid_sent));
        json_object_set_new(fj, "valid_received", packet_gen_json_u64(f->valid_received));
        json_object_set_new(fj, "forged_tag_delivered",
                            packet_gen_json_u64(f->forged_tag_delivered));
        json_object_set_new(fj, "forged_other_port_delivered",
                            packet_gen_json_u64(f->forged_other_port_delivered));
        json_object_set_new(fj, "replay_other_port_delivered",
                            packet_gen_json_u64(f->replay_other_port_delivered));
        json_object_set_new(fj, "after_received", packet_gen_json_u64(f->after_received));
        json_object_set_new(fj, "passed", json_boolean(f->passed));
        json_object_set_new(fj, "why", f->passed ? json_null() : json_string(f->why));
        json_object_set_new(j, "forgery", fj);
    }
    json_object_set_new(j, "exit_code", json_integer(exit_code));
    if (o->json) {
        packet_gen_json_print(j);
    } else {
        printf("parley-bench  scenario=srtp-stream  streams=%zu  offered %s\n", g->n,
               f             ? "forgery check"
               : o->rate > 0 ? "paced"
                             : "max");
        printf("  sent %" PRIu64 "  received %" PRIu64 "  lost %" PRIu64 " (%.4f %%)\n", g->sent,
               g->received, lost, g->sent ? 100.0 * (double)lost / (double)g->sent : 0.0);
        printf("  rate sent %.0f/s  received %.0f/s%s\n", r->send_s > 0 ? g->sent / r->send_s : 0,
               r->send_s > 0 ? g->received / r->send_s : 0,
               r->generator_limited ? "  ** the generator is the limit: a floor **" : "");
        printf("  latency us  p50 %.0f  p99 %.0f  max %.0f\n",
               packet_gen_lat_percentile(&g->lat, 50), packet_gen_lat_percentile(&g->lat, 99),
               packet_gen_lat_percentile(&g->lat, 100));
        printf("  generator CPU %.1f %% of one core; next index %" PRIu64 "\n", pct, next);
        if (f)
            printf("  forgery check: %s%s\n",
                   f->passed ? "passed" : "FAILED: ", f->passed ? "" : f->why);
    }
    json_decref(j);
}

int srtp_stream_main(int argc, char **argv)
{
    struct srtp_stream_opts o;
    struct gen *g = NULL;
    struct packet_gen_result r = {0};
    struct forgery_result f = {0};
    char err[256] = "";
    int rc = 1;

    if (srtp_stream_parse(argc, argv, &o) != 0) {
        srtp_stream_usage(stderr);
        return 2;
    }
    g = calloc(1, sizeof(*g));
    if (!g) {
        fprintf(stderr, "parley-bench: out of memory\n");
        return 1;
    }
    g->o = &o;
    g->loop.epfd = g->loop.tfd = -1;
    if (srtp_packets_load(o.streams_file, &g->specs, &g->n, err, sizeof(err)) != 0 ||
        gen_open(g, err, sizeof(err)) != 0)
        goto out;
    if (!o.rate_set)
        o.rate = 50.0 * (double)g->n;
    uint64_t per_stream = FORGERY_PACKETS;
    if (!o.forgery_check) {
        double want = o.rate > 0 ? ceil(o.rate * o.duration_s / (double)g->n)
                                 : ceil((double)o.max_packets / (double)g->n);
        per_stream = want < 1 ? 1 : (uint64_t)want;
    }
    if (gen_alloc_packets(g, per_stream, err, sizeof(err)) != 0 ||
        gen_precompute(g, err, sizeof(err)) != 0 || gen_send_hellos(g, err, sizeof(err)) != 0)
        goto out;
    gen_pump_until(g, packet_gen_clock_ns(CLOCK_MONOTONIC) + (uint64_t)(o.hello_wait_s * 1e9));
    g->a_received = 0;
    long long rcvbuf0 = udp_rcvbuf_errors();
    if (!o.quiet)
        fprintf(stderr, "parley-bench: set-up done: %zu streams, %" PRIu64 " packets; running %s\n",
                g->n, g->total, o.forgery_check ? "the forgery check" : "srtp-stream");
    if (o.forgery_check) {
        gen_forgery(g, &f);
        rc = f.passed ? 0 : 1;
    } else {
        gen_run(g, &r);
        rc = g->received >= g->sent ? 0 : 1;
    }
    long long rcvbuf1 = udp_rcvbuf_errors();
    gen_print(g, &r, o.forgery_check ? &f : NULL,
              rcvbuf0 >= 0 && rcvbuf1 >= 0 ? rcvbuf1 - rcvbuf0 : -1, rc);
out:
    if (err[0]) {
        fprintf(stderr, "parley-bench: %s\n", err);
        rc = 1;
    }
    if (g) {
        if (g->specs)
            memset(g->specs, 0, g->n * sizeof(*g->specs)); /* keys */
        free(g->specs);
        gen_close(g);
        free(g);
    }
    return rc;
}
