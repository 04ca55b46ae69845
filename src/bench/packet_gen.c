/*
 * bench/packet_gen — what parley-bench's packet generators share (see
 * packet_gen.h).
 */
#include "bench/packet_gen.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "bench/bench.h"

/* --- clocks ---------------------------------------------------------------- */

uint64_t packet_gen_clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

double packet_gen_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* --- options --------------------------------------------------------------- */

bool packet_gen_selected(int argc, char **argv, const char *scenario)
{
    size_t n = strlen(scenario);
    for (int i = 1; i < argc; i++) {
        if ((strncmp(argv[i], "--scenario=", 11) == 0 && strncmp(argv[i] + 11, scenario, n) == 0 &&
             argv[i][11 + n] == '\0') ||
            (strcmp(argv[i], "--scenario") == 0 && i + 1 < argc &&
             strcmp(argv[i + 1], scenario) == 0))
            return true;
    }
    return false;
}

void packet_gen_numbers_default(const struct packet_gen_number *t, size_t n, double *num)
{
    for (size_t i = 0; i < n; i++)
        num[i] = t[i].dflt;
}

int packet_gen_number_parse(const struct packet_gen_number *t, const char *name, const char *arg,
                            double *out)
{
    if (bench_parse_double(arg, t->min, t->max, out) != 0) {
        fprintf(stderr, "parley-bench: invalid value for --%s: %s\n", name, arg);
        return -EINVAL;
    }
    return 0;
}

/* --- the event loop -------------------------------------------------------- */

int packet_gen_loop_open(struct packet_gen_loop *l)
{
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    l->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (l->epfd < 0 || l->tfd < 0)
        return -ENOMEM;
    return packet_gen_loop_add(l, l->tfd, PACKET_GEN_TIMER_TAG);
}

void packet_gen_loop_close(struct packet_gen_loop *l)
{
    if (l->epfd >= 0)
        close(l->epfd);
    if (l->tfd >= 0)
        close(l->tfd);
    l->epfd = l->tfd = -1;
}

int packet_gen_loop_add(struct packet_gen_loop *l, int fd, uint64_t tag)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag};
    return epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : -errno;
}

void packet_gen_timer_start(struct packet_gen_loop *l, unsigned tick_us)
{
    struct itimerspec its = {
        .it_interval = {.tv_sec = tick_us / 1000000, .tv_nsec = (tick_us % 1000000) * 1000},
        .it_value = {.tv_sec = 0, .tv_nsec = 1000}};
    timerfd_settime(l->tfd, 0, &its, NULL);
}

void packet_gen_timer_stop(struct packet_gen_loop *l)
{
    struct itimerspec off = {0};
    timerfd_settime(l->tfd, 0, &off, NULL);
}

void packet_gen_wait(struct packet_gen_loop *l, int timeout_ms, packet_gen_ready_fn *ready,
                     void *ctx)
{
    struct epoll_event evs[64];
    int ne = epoll_wait(l->epfd, evs, 64, timeout_ms);
    for (int e = 0; e < ne; e++) {
        uint64_t ticks;
        if (evs[e].data.u64 != PACKET_GEN_TIMER_TAG)
            ready(ctx, evs[e].data.u64);
        else if (read(l->tfd, &ticks, sizeof(ticks)) < 0)
            continue; /* a tick another wait took already */
    }
}

void packet_gen_pump_until(struct packet_gen_loop *l, uint64_t deadline_ns,
                           packet_gen_ready_fn *ready, void *ctx)
{
    for (;;) {
        uint64_t now = packet_gen_clock_ns(CLOCK_MONOTONIC);
        if (now >= deadline_ns)
            return;
        packet_gen_wait(l, (int)((deadline_ns - now + 999999) / 1000000), ready, ctx);
    }
}

/* --- sockets and receiving ------------------------------------------------- */

int packet_gen_socket(int family, int bufsize)
{
    int one = 1;
    int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* the FORCE forms pass net.core.rmem_max when run as root */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bufsize, sizeof(bufsize)) != 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof(bufsize));
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bufsize, sizeof(bufsize)) != 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof(bufsize));
    setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one));
    return fd;
}

/* At most one batch: how many datagrams (0: none), each passed on. */
static int rx_batch(struct packet_gen_rx *rx, int fd, uint32_t *overflow,
                    packet_gen_datagram_fn *got, void *ctx)
{
    int n;
    do {
        for (unsigned m = 0; m < PACKET_GEN_RX_BATCH; m++) {
            rx->iov[m] = (struct iovec){.iov_base = rx->buf[m], .iov_len = PACKET_GEN_RX_BUF};
            rx->msgs[m].msg_hdr = (struct msghdr){.msg_iov = &rx->iov[m],
                                                  .msg_iovlen = 1,
                                                  .msg_control = rx->ctl[m],
                                                  .msg_controllen = sizeof(rx->ctl[m])};
        }
        n = recvmmsg(fd, rx->msgs, PACKET_GEN_RX_BATCH, MSG_DONTWAIT, NULL);
    } while (n < 0 && errno == EINTR);
    if (n <= 0)
        return 0;
    uint64_t now = packet_gen_clock_ns(CLOCK_REALTIME);
    for (int m = 0; m < n; m++) {
        struct msghdr *h = &rx->msgs[m].msg_hdr;
        uint64_t at = now;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
            if (c->cmsg_level != SOL_SOCKET)
                continue;
            if (c->cmsg_type == SCM_TIMESTAMPNS) {
                struct timespec ts;
                memcpy(&ts, CMSG_DATA(c), sizeof(ts));
                at = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
            } else if (c->cmsg_type == SO_RXQ_OVFL) {
                memcpy(overflow, CMSG_DATA(c), sizeof(*overflow));
            }
        }
        got(ctx, rx->buf[m], rx->msgs[m].msg_len, at);
    }
    return n;
}

void packet_gen_receive(struct packet_gen_rx *rx, int fd, uint32_t *overflow,
                        packet_gen_datagram_fn *got, void *ctx)
{
    while (rx_batch(rx, fd, overflow, got, ctx) == PACKET_GEN_RX_BATCH)
        ;
}

/* --- latency --------------------------------------------------------------- */

int packet_gen_lat_init(struct packet_gen_lat *l)
{
    memset(l, 0, sizeof(*l));
    l->hist = calloc(PACKET_GEN_LAT_BUCKETS, sizeof(*l->hist));
    return l->hist ? 0 : -ENOMEM;
}

void packet_gen_lat_free(struct packet_gen_lat *l)
{
    free(l->hist);
    l->hist = NULL;
}

void packet_gen_lat_add(struct packet_gen_lat *l, uint64_t us)
{
    l->hist[us < PACKET_GEN_LAT_BUCKETS ? us : PACKET_GEN_LAT_BUCKETS - 1]++;
    l->count++;
    l->sum_us += us;
}

double packet_gen_lat_percentile(const struct packet_gen_lat *l, double pct)
{
    if (!l->count)
        return NAN;
    uint64_t rank = (uint64_t)ceil(pct / 100.0 * (double)l->count), seen = 0;
    if (rank < 1)
        rank = 1;
    for (size_t b = 0; b < PACKET_GEN_LAT_BUCKETS; b++) {
        seen += l->hist[b];
        if (seen >= rank)
            return (double)b;
    }
    return (double)(PACKET_GEN_LAT_BUCKETS - 1);
}

json_t *packet_gen_lat_json(const struct packet_gen_lat *l, bool p999)
{
    json_t *lat = json_object();
    json_object_set_new(lat, "samples", packet_gen_json_u64(l->count));
    json_object_set_new(lat, "p50", packet_gen_json_figure(packet_gen_lat_percentile(l, 50)));
    json_object_set_new(lat, "p90", packet_gen_json_figure(packet_gen_lat_percentile(l, 90)));
    json_object_set_new(lat, "p99", packet_gen_json_figure(packet_gen_lat_percentile(l, 99)));
    if (p999)
        json_object_set_new(lat, "p999",
                            packet_gen_json_figure(packet_gen_lat_percentile(l, 99.9)));
    json_object_set_new(lat, "max", packet_gen_json_figure(packet_gen_lat_percentile(l, 100)));
    json_object_set_new(
        lat, "mean", packet_gen_json_figure(l->count ? (double)l->sum_us / (double)l->count : NAN));
    return lat;
}

/* --- the run's figures ----------------------------------------------------- */

void packet_gen_meter_start(struct packet_gen_meter *m)
{
    m->cpu0 = packet_gen_cpu_s();
    m->t0 = packet_gen_clock_ns(CLOCK_MONOTONIC);
}

void packet_gen_meter_sent(struct packet_gen_meter *m)
{
    m->t_sent = packet_gen_clock_ns(CLOCK_MONOTONIC);
    m->cpu_sent = packet_gen_cpu_s();
}

void packet_gen_meter_result(const struct packet_gen_meter *m, struct packet_gen_result *r)
{
    r->send_s = (double)(m->t_sent - m->t0) / 1e9;
    r->drain_s = (double)(packet_gen_clock_ns(CLOCK_MONOTONIC) - m->t_sent) / 1e9;
    r->cpu_send_s = m->cpu_sent - m->cpu0;
    r->cpu_total_s = packet_gen_cpu_s() - m->cpu0;
}

uint64_t packet_gen_due(double elapsed_ns, double rate, uint64_t total)
{
    uint64_t due = (uint64_t)(elapsed_ns * rate / 1e9) + 1;
    return due < total ? due : total;
}

double packet_gen_cpu_percent(const struct packet_gen_result *r)
{
    return r->send_s > 0 ? 100.0 * r->cpu_send_s / r->send_s : 0;
}

bool packet_gen_sent_slow(const struct packet_gen_result *r, uint64_t sent, double rate)
{
    return rate > 0 && r->send_s > 0 && (double)sent / r->send_s < 0.98 * rate;
}

/* --- JSON ------------------------------------------------------------------ */

json_t *packet_gen_json_u64(uint64_t v)
{
    return json_integer((json_int_t)v);
}

json_t *packet_gen_json_figure(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

void packet_gen_json_counts(json_t *j, uint64_t sent, uint64_t received)
{
    uint64_t lost = sent > received ? sent - received : 0;
    json_object_set_new(j, "sent", packet_gen_json_u64(sent));
    json_object_set_new(j, "received", packet_gen_json_u64(received));
    json_object_set_new(j, "lost", packet_gen_json_u64(lost));
    json_object_set_new(j, "loss_ratio", json_real(sent ? (double)lost / (double)sent : 0.0));
}

json_t *packet_gen_cpu_json(const struct packet_gen_result *r, bool saturated)
{
    json_t *cpu = json_object();
    json_object_set_new(cpu, "send_s", json_real(r->cpu_send_s));
    json_object_set_new(cpu, "total_s", json_real(r->cpu_total_s));
    json_object_set_new(cpu, "percent_of_one_core", json_real(packet_gen_cpu_percent(r)));
    json_object_set_new(cpu, "saturated", json_boolean(saturated));
    return cpu;
}

void packet_gen_json_print(const json_t *j)
{
    char *txt = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    if (txt)
        printf("%s\n", txt);
    free(txt);
}
