/*
 * The media engine's threads, ports and streams (see anchor.h). The
 * packet path is in anchor_path.c.
 */
#include "anchor/anchor_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <event2/event.h>
#include <openssl/crypto.h>

#include "core/log.h"
#include "core/random.h"

uint64_t anchor_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static int64_t anchor_wall_s(void)
{
    return (int64_t)time(NULL);
}

static void anchor_params_from(const struct config *cfg, struct anchor_params *p)
{
    p->timeout_s = (unsigned)cfg->media.timeout;
    p->consent_ms = (unsigned)cfg->media.consent_timeout * 1000;
    p->replay_window = (unsigned)cfg->media.replay_window;
    p->latch_first = strcmp(cfg->media.latch_plain, "first") == 0;
    p->max_streams = (size_t)cfg->media.max_streams;
    p->max_per_user = (size_t)cfg->media.max_streams_per_user;
}

/* --- ports -------------------------------------------------------------------- */

static bool port_used(const struct anchor *a, unsigned port)
{
    unsigned i = port - a->port_first;
    return a->ports_used[i / 8] & (1u << (i % 8));
}

static void port_mark(struct anchor *a, unsigned port, bool used)
{
    unsigned i = port - a->port_first;
    if (used)
        a->ports_used[i / 8] |= (uint8_t)(1u << (i % 8));
    else
        a->ports_used[i / 8] &= (uint8_t) ~(1u << (i % 8));
}

void anchor_ports_release(struct anchor *a, const unsigned ports[4])
{
    pthread_mutex_lock(&a->lock);
    for (int i = 0; i < 4; i++)
        if (ports[i])
            port_mark(a, ports[i], false);
    pthread_mutex_unlock(&a->lock);
}

static int udp_bind(const struct netaddr *addr, unsigned port)
{
    struct netaddr at = *addr;
    netaddr_set_port(&at, (uint16_t)port);
    int fd = socket(netaddr_family(&at), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (bind(fd, &at.u.sa, at.len) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* An even RTP port and the next one for RTCP, both bound; the pair is
 * marked used. Ports something else holds are skipped. */
static int ports_take_pair(struct anchor *a, unsigned *rtp, int *fd_rtp, int *fd_rtcp)
{
    pthread_mutex_lock(&a->lock);
    unsigned span = (a->port_last - a->port_first + 1) / 2;
    int rc = -EADDRINUSE;
    /* from a random pair on: the next stream's ports are not for a
     * stranger to guess and spray before its party sends */
    a->port_next = a->port_first + 2 * (unsigned)(random_u64() % span);
    for (unsigned tries = 0; tries < span; tries++) {
        unsigned p = a->port_next;
        a->port_next += 2;
        if (a->port_next + 1 > a->port_last)
            a->port_next = a->port_first;
        if (port_used(a, p) || port_used(a, p + 1))
            continue;
        int f1 = udp_bind(&a->address, p);
        if (f1 < 0)
            continue;
        int f2 = udp_bind(&a->address, p + 1);
        if (f2 < 0) {
            close(f1);
            continue;
        }
        port_mark(a, p, true);
        port_mark(a, p + 1, true);
        *rtp = p;
        *fd_rtp = f1;
        *fd_rtcp = f2;
        rc = 0;
        break;
    }
    pthread_mutex_unlock(&a->lock);
    return rc;
}

/* --- per-user counts (core thread) --------------------------------------------- */

static struct anchor_user_count *user_find(struct anchor *a, const char *user, uint64_t h)
{
    for (struct hmap_node *n = hmap_first(&a->users, h); n; n = hmap_next(n, h)) {
        struct anchor_user_count *u = container_of(n, struct anchor_user_count, node);
        if (strcmp(u->user, user) == 0)
            return u;
    }
    return NULL;
}

static int user_take(struct anchor *a, const char *user)
{
    uint64_t h = hash_bytes(user, strlen(user));
    struct anchor_user_count *u = user_find(a, user, h);
    if (u && u->n >= a->params.max_per_user)
        return -EAGAIN;
    if (!u) {
        u = calloc(1, sizeof(*u));
        if (!u)
            return -ENOMEM;
        snprintf(u->user, sizeof(u->user), "%s", user);
        hmap_insert(&a->users, &u->node, h);
    }
    u->n++;
    return 0;
}

static void user_put(struct anchor *a, const char *user)
{
    uint64_t h = hash_bytes(user, strlen(user));
    struct anchor_user_count *u = user_find(a, user, h);
    if (u && --u->n == 0) {
        hmap_remove(&a->users, &u->node);
        free(u);
    }
}

/* --- the worker's side ------------------------------------------------------------ */

static struct anchor_wstream *wstream_find(struct anchor_worker *w, uint64_t id)
{
    uint64_t h = hash_u64(id);
    for (struct hmap_node *n = hmap_first(&w->streams, h); n; n = hmap_next(n, h)) {
        struct anchor_wstream *st = container_of(n, struct anchor_wstream, node);
        if (st->id == id)
            return st;
    }
    return NULL;
}

static void sock_close(struct anchor_sock *s)
{
    if (s->ev)
        event_free(s->ev);
    s->ev = NULL;
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}

static void wstream_free(struct anchor_wstream *st)
{
    for (int i = 0; i < 2; i++) {
        sock_close(&st->leg[i].rtp);
        sock_close(&st->leg[i].rtcp);
        rtp_srtp_free(st->leg[i].rx);
        rtp_srtp_free(st->leg[i].tx);
    }
    OPENSSL_cleanse(st, sizeof(*st));
    free(st);
}

static uint64_t load(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* media.stream_ended: what each leg carried, for the log (and the call
 * log's reader). */
static void wstream_log_end(const struct anchor_wstream *st, const char *reason)
{
    for (int i = 0; i < 2; i++) {
        const struct anchor_wleg *l = &st->leg[i];
        struct anchor_counters *c = (struct anchor_counters *)&l->c;
        log_info("media.stream_ended", "call_id", st->call_id, "leg", LOG_INT(i), "protection",
                 l->tx_protection == ANCHOR_SRTP ? rtp_srtp_suite_name(l->tx_suite) : "RTP",
                 "in_packets", LOG_INT(load(&c->in_packets)), "out_packets",
                 LOG_INT(load(&c->out_packets)), "auth_failures", LOG_INT(load(&c->auth_failures)),
                 "replays", LOG_INT(load(&c->replays)), "foreign_dropped",
                 LOG_INT(load(&c->foreign)), "reason", reason);
    }
}

/* Adds a stream's two legs' counters to t. */
static void anchor_stream_add(const struct anchor_wstream *st, struct anchor_totals *t)
{
    for (int i = 0; i < 2; i++) {
        const struct anchor_counters *c = &st->leg[i].c;
        t->in_packets += atomic_load_explicit(&c->in_packets, memory_order_relaxed);
        t->in_bytes += atomic_load_explicit(&c->in_bytes, memory_order_relaxed);
        t->out_packets += atomic_load_explicit(&c->out_packets, memory_order_relaxed);
        t->out_bytes += atomic_load_explicit(&c->out_bytes, memory_order_relaxed);
        t->auth_failures += atomic_load_explicit(&c->auth_failures, memory_order_relaxed);
        t->replays += atomic_load_explicit(&c->replays, memory_order_relaxed);
    }
}

static void wstream_remove(struct anchor_worker *w, struct anchor_wstream *st, const char *reason)
{
    hmap_remove(&w->streams, &st->node);
    pthread_mutex_lock(&w->list_lock);
    if (st->prev)
        st->prev->next = st->next;
    else
        w->list = st->next;
    if (st->next)
        st->next->prev = st->prev;
    w->nstreams--;
    struct anchor_totals t = {0};
    anchor_stream_add(st, &t);
    w->ended_in_packets += t.in_packets;
    w->ended_in_bytes += t.in_bytes;
    w->ended_out_packets += t.out_packets;
    w->ended_out_bytes += t.out_bytes;
    w->ended_auth_failures += t.auth_failures;
    w->ended_replays += t.replays;
    pthread_mutex_unlock(&w->list_lock);
    wstream_log_end(st, reason);
    unsigned ports[4];
    memcpy(ports, st->ports, sizeof(ports));
    wstream_free(st);                  /* the sockets are closed... */
    anchor_ports_release(w->a, ports); /* ...before the ports go back */
}

static int sock_arm(struct anchor_worker *w, struct anchor_sock *s)
{
    if (s->fd < 0)
        return 0;
    s->ev = event_new(w->base, s->fd, EV_READ | EV_PERSIST, anchor_path_on_readable, s);
    if (!s->ev || event_add(s->ev, NULL) != 0)
        return -ENOMEM;
    return 0;
}

static void worker_add(struct anchor_worker *w, struct anchor_wstream *st)
{
    st->w = w;
    st->last_rx_ms = anchor_now_ms();
    for (int i = 0; i < 2; i++) {
        st->leg[i].rtp.st = st->leg[i].rtcp.st = st;
        st->leg[i].rtp.leg = st->leg[i].rtcp.leg = i;
        st->leg[i].rtcp.rtcp = true;
        st->leg[i].fd_rtp = st->leg[i].rtp.fd;
        st->leg[i].fd_rtcp = st->leg[i].rtcp.fd;
        if (sock_arm(w, &st->leg[i].rtp) != 0 || sock_arm(w, &st->leg[i].rtcp) != 0) {
            log_warn("media.stream_failed", "call_id", st->call_id, "reason", "out of memory");
            unsigned ports[4];
            memcpy(ports, st->ports, sizeof(ports));
            wstream_free(st);
            anchor_ports_release(w->a, ports);
            return;
        }
    }
    hmap_insert(&w->streams, &st->node, hash_u64(st->id));
    pthread_mutex_lock(&w->list_lock);
    st->next = w->list;
    if (w->list)
        w->list->prev = st;
    w->list = st;
    w->nstreams++;
    pthread_mutex_unlock(&w->list_lock);
}

/* A new session for one direction of a leg; NULL (logged) when it cannot
 * be made: the leg then carries nothing that way. */
static struct rtp_srtp *worker_session(struct anchor_worker *w, const struct anchor_wstream *st,
                                       enum rtp_srtp_suite suite, const uint8_t *key,
                                       const uint8_t *salt)
{
    struct rtp_srtp *s = NULL;
    int rc = rtp_srtp_new(w->crypto, suite, key, salt, w->params.replay_window, &s);
    if (rc != 0) {
        log_warn("media.session_failed", "call_id", st->call_id, "suite",
                 rtp_srtp_suite_name(suite), "reason", strerror(-rc));
        return NULL;
    }
    return s;
}

static void worker_remote(struct anchor_worker *w, struct anchor_msg *m)
{
    struct anchor_wstream *st = wstream_find(w, m->id);
    if (!st)
        return;
    struct anchor_wleg *l = &st->leg[m->leg];
    const struct anchor_remote *r = &m->remote;
    bool srtp = r->protection == ANCHOR_SRTP;
    /* a re-offer repeats the party's key: its session stays, with its
     * rollover counter and replay window; only a new key makes a new one */
    bool same_key = srtp && l->rx && l->rx_suite == r->suite &&
                    CRYPTO_memcmp(l->rx_key, r->key, sizeof(l->rx_key)) == 0 &&
                    CRYPTO_memcmp(l->rx_salt, r->salt, sizeof(l->rx_salt)) == 0;
    struct rtp_srtp *rx = l->rx, *old = NULL;
    if (!srtp || !same_key) {
        old = l->rx;
        /* NULL when it cannot be made: nothing from this party is taken */
        rx = srtp ? worker_session(w, st, r->suite, r->key, r->salt) : NULL;
    }
    pthread_mutex_lock(&w->list_lock);
    bool moved = !l->have_remote || !netaddr_equal(&l->sdp_rtp, &r->rtp) ||
                 !netaddr_equal(&l->sdp_rtcp, &r->rtcp);
    l->have_remote = true;
    l->sdp_rtp = r->rtp;
    l->sdp_rtcp = r->rtcp;
    l->rtcp_mux = r->rtcp_mux;
    l->on_hold = r->on_hold;
    l->have_signal_ip = r->have_signal_ip;
    l->signal_ip = r->signal_ip;
    l->scrub_rtcp = r->private_party;
    if (moved) { /* a new address in its SDP: where it is must be proven again */
        l->latched_rtp_set = l->latched_rtcp_set = false;
        l->described_ms = anchor_now_ms();
    }
    /* the silence that counts starts when both parties have described
     * themselves (an answer), and again at every new description */
    if (st->leg[0].have_remote && st->leg[1].have_remote) {
        st->last_rx_ms = anchor_now_ms();
        st->timed_out = false;
    }
    l->rx = rx;
    l->rx_protection = r->protection;
    l->rx_suite = r->suite;
    memcpy(l->rx_key, r->key, sizeof(l->rx_key));
    memcpy(l->rx_salt, r->salt, sizeof(l->rx_salt));
    pthread_mutex_unlock(&w->list_lock);
    rtp_srtp_free(old);
}

static void worker_local(struct anchor_worker *w, struct anchor_msg *m)
{
    struct anchor_wstream *st = wstream_find(w, m->id);
    if (!st)
        return;
    struct anchor_wleg *l = &st->leg[m->leg];
    struct rtp_srtp *tx = NULL;
    if (m->local.protection == ANCHOR_SRTP)
        tx = worker_session(w, st, m->local.suite, m->local.key, m->local.salt);
    pthread_mutex_lock(&w->list_lock);
    struct rtp_srtp *old = l->tx;
    l->tx = tx;
    l->tx_protection = m->local.protection;
    l->tx_set = true;
    l->tx_suite = m->local.suite;
    pthread_mutex_unlock(&w->list_lock);
    rtp_srtp_free(old);
}

static void worker_end_all(struct anchor_worker *w, const char *reason)
{
    while (w->list)
        wstream_remove(w, w->list, reason);
}

static void worker_on_msg(struct mbox_msg *mm, void *arg)
{
    struct anchor_worker *w = arg;
    struct anchor_msg *m = (struct anchor_msg *)mm;
    /* what this pass queued is sent first: a queued datagram names its
     * leg's counters and socket, which ending a stream frees and closes
     * (and the core may bind that descriptor number again at once) */
    anchor_path_flush(w);
    switch (m->m.type) {
    case ANCHOR_MSG_ADD:
        worker_add(w, m->stream);
        break;
    case ANCHOR_MSG_REMOTE:
        worker_remote(w, m);
        break;
    case ANCHOR_MSG_LOCAL:
        worker_local(w, m);
        break;
    case ANCHOR_MSG_END: {
        struct anchor_wstream *st = wstream_find(w, m->id);
        if (st)
            wstream_remove(w, st, m->reason);
        break;
    }
    case ANCHOR_MSG_PARAMS:
        w->params = m->params;
        break;
    case ANCHOR_MSG_STOP:
        worker_end_all(w, "media engine stopped");
        w->stopping = true;
        event_base_loopbreak(w->base);
        break;
    }
    OPENSSL_cleanse(&m->remote, sizeof(m->remote));
    OPENSSL_cleanse(&m->local, sizeof(m->local));
    free(m);
}

/* Streams silent past media.timeout (and not on hold) are told to the
 * core, once. */
static void worker_on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct anchor_worker *w = arg;
    uint64_t now = anchor_now_ms(), limit = (uint64_t)w->params.timeout_s * 1000;
    for (struct anchor_wstream *st = w->list; st; st = st->next) {
        if (st->timed_out || !st->leg[0].have_remote || !st->leg[1].have_remote)
            continue; /* ringing: no answer yet, nothing is due */
        if (st->leg[0].on_hold || st->leg[1].on_hold) {
            st->last_rx_ms = now; /* the silence of a held call does not count */
            continue;
        }
        if (now - st->last_rx_ms < limit)
            continue;
        st->timed_out = true;
        log_warn("media.timeout", "call_id", st->call_id, "silent_s",
                 LOG_INT((now - st->last_rx_ms) / 1000), "action", "ending the call");
        struct anchor_core_msg *cm = calloc(1, sizeof(*cm));
        if (cm) {
            cm->m.type = ANCHOR_CORE_TIMED_OUT;
            cm->id = st->id;
            snprintf(cm->call_id, sizeof(cm->call_id), "%s", st->call_id);
            mbox_post(w->a->core_mbox, &cm->m);
        }
    }
}

/* How long after a pass that started at `start` the next one should
 * start (0: at once), from the recent rate: see ANCHOR_COALESCE_*. */
static uint64_t coalesce_period_us(struct anchor_worker *w, uint64_t now)
{
    w->win_packets += w->pass_packets;
    if (now - w->win_start_us >= ANCHOR_COALESCE_WINDOW_US) {
        w->rate_pps = w->win_packets * 1000000 / (now - w->win_start_us);
        w->win_start_us = now;
        w->win_packets = 0;
    }
    /* a pass that already found a batch was not woken too early */
    if (w->pass_packets >= ANCHOR_COALESCE_TARGET ||
        w->rate_pps * ANCHOR_COALESCE_MAX_US < (uint64_t)ANCHOR_COALESCE_MIN * 1000000)
        return 0;
    uint64_t period = (uint64_t)ANCHOR_COALESCE_TARGET * 1000000 / w->rate_pps;
    return period < ANCHOR_COALESCE_MAX_US ? period : ANCHOR_COALESCE_MAX_US;
}

static void *worker_main(void *arg)
{
    struct anchor_worker *w = arg;
    w->win_start_us = now_us();
    while (!w->stopping) {
        uint64_t start = now_us();
        w->pass_packets = 0;
        /* 1: nothing registered (never, the mailbox is; but never spin) */
        if (event_base_loop(w->base, EVLOOP_ONCE) != 0)
            break;
        anchor_path_flush(w); /* what the pass forwarded, back to back */
        if (w->stopping)
            break;
        uint64_t now = now_us(), period = coalesce_period_us(w, now);
        if (period && now - start < period) {
            /* the sockets fill meanwhile; nothing here holds a lock */
            uint64_t until = start + period;
            struct timespec ts = {(time_t)(until / 1000000), (long)(until % 1000000) * 1000};
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
                ;
        }
    }
    return NULL;
}

static void worker_post(struct anchor_worker *w, struct anchor_msg *m)
{
    mbox_post(w->mbox, &m->m);
}

static int worker_init(struct anchor *a, struct anchor_worker *w, unsigned index)
{
    w->a = a;
    w->index = index;
    w->params = a->params;
    pthread_mutex_init(&w->list_lock, NULL);
    if (hmap_init(&w->streams, 64) != 0)
        return -ENOMEM;
    w->base = event_base_new();
    w->slots = malloc((size_t)ANCHOR_SLOTS * ANCHOR_SLOT_SIZE);
    w->logs = log_limit_new("media", 1024, 20);
    if (!w->base || !w->slots || !w->logs)
        return -ENOMEM;
    anchor_path_init(w);
    w->mbox = mbox_new(w->base, worker_on_msg, w);
    w->tick = event_new(w->base, -1, EV_PERSIST, worker_on_tick, w);
    if (!w->mbox || !w->tick)
        return -ENOMEM;
    struct timeval tv = {ANCHOR_TICK_MS / 1000, (ANCHOR_TICK_MS % 1000) * 1000};
    event_add(w->tick, &tv);
    /* the SRTP algorithms, fetched once for this thread from the server's
     * library context (crypto/fips) */
    int rc = rtp_srtp_crypto_new(a->events.libctx, a->events.propq, &w->crypto);
    return rc;
}

static void worker_free(struct anchor_worker *w)
{
    if (!w->a)
        return; /* never initialised (a start-up that failed before it) */
    if (w->started) {
        struct anchor_msg *m = calloc(1, sizeof(*m));
        if (m) {
            m->m.type = ANCHOR_MSG_STOP;
            worker_post(w, m);
        }
        pthread_join(w->thread, NULL);
    }
    if (w->mbox)
        mbox_free(w->mbox); /* what is still queued is handled, then freed */
    worker_end_all(w, "media engine stopped");
    if (w->tick)
        event_free(w->tick);
    if (w->base)
        event_base_free(w->base);
    rtp_srtp_crypto_free(w->crypto);
    log_limit_free(w->logs);
    free(w->slots);
    if (w->streams.buckets)
        hmap_destroy(&w->streams);
    pthread_mutex_destroy(&w->list_lock);
}

/* --- the core's side -------------------------------------------------------------- */

static void core_on_msg(struct mbox_msg *mm, void *arg)
{
    struct anchor *a = arg;
    struct anchor_core_msg *m = (struct anchor_core_msg *)mm;
    if (m->m.type == ANCHOR_CORE_TIMED_OUT && a->events.timed_out)
        a->events.timed_out(a->events.arg, m->id, m->call_id);
    free(m);
}

static int start_error(char *err, size_t errlen, int rc, const char *fmt, const char *what)
{
    snprintf(err, errlen, fmt, what);
    return rc;
}

int anchor_start(const struct config *cfg, struct event_base *core, const struct anchor_events *ev,
                 struct anchor **out, char *err, size_t errlen)
{
    *out = NULL;
    unsigned first, last;
    if (sscanf(cfg->media.port_range, "%u-%u", &first, &last) != 2 || first < 1024 ||
        last > 65535 || first > last || last - first < 3)
        return start_error(err, errlen, -EINVAL, "media.port_range \"%s\": not FIRST-LAST",
                           cfg->media.port_range);
    unsigned rfirst, rlast;
    if (cfg->relay.enabled && sscanf(cfg->relay.port_range, "%u-%u", &rfirst, &rlast) == 2 &&
        first <= rlast && rfirst <= last) {
        snprintf(err, errlen, "media.port_range %u-%u overlaps relay.port_range %s", first, last,
                 cfg->relay.port_range);
        return -EINVAL;
    }
    struct anchor *a = calloc(1, sizeof(*a));
    if (!a)
        return start_error(err, errlen, -ENOMEM, "%s", "media engine: out of memory");
    pthread_mutex_init(&a->lock, NULL);
    a->port_first = first + (first & 1); /* RTP on even ports */
    a->port_last = last;
    a->port_next = a->port_first;
    snprintf(a->port_range, sizeof(a->port_range), "%u-%u", first, last);
    anchor_params_from(cfg, &a->params);
    if (ev)
        a->events = *ev;
    int rc = -ENOMEM;
    const char *address = cfg->media.address;
    char fallback[NETADDR_STRLEN] = "";
    if (!*address && cfg->sip.tls_listen.n) {
        netaddr_format_ip(&cfg->sip.tls_listen.v[0], fallback);
        address = fallback;
    }
    if (netaddr_parse_ip(address, 0, &a->address) != 0) {
        anchor_stop(a);
        return start_error(err, errlen, -EINVAL, "media.address \"%s\": not an IP address",
                           address);
    }
    char any[NETADDR_STRLEN];
    netaddr_format_ip(&a->address, any);
    if (strcmp(any, "0.0.0.0") == 0 || strcmp(any, "::") == 0) {
        anchor_stop(a);
        return start_error(err, errlen, -EINVAL,
                           "media.address is empty and the first sip.tls_listen is %s: set "
                           "media.address (the engine writes its address in SDP)",
                           any);
    }
    const char *pub = *cfg->media.public_address ? cfg->media.public_address : address;
    if (netaddr_parse_ip(pub, 0, &a->public_address) != 0) {
        anchor_stop(a);
        return start_error(err, errlen, -EINVAL, "media.public_address \"%s\": not an IP address",
                           pub);
    }
    a->ports_used = calloc((a->port_last - a->port_first) / 8 + 2, 1);
    a->refusals = log_limit_new("media refusals", 1024, 20);
    if (!a->ports_used || !a->refusals || hmap_init(&a->streams, 256) != 0 ||
        hmap_init(&a->users, 64) != 0)
        goto fail;
    a->core_mbox = mbox_new(core, core_on_msg, a);
    if (!a->core_mbox)
        goto fail;
    /* a bound test port: an address this host does not have fails here,
     * at start-up, not on the first call */
    int probe = udp_bind(&a->address, 0);
    if (probe < 0) {
        char text[200];
        snprintf(text, sizeof(text), "%s: %s", address, strerror(-probe));
        anchor_stop(a);
        return start_error(err, errlen, probe, "media.address %s", text);
    }
    close(probe);
    a->nworkers = (unsigned)cfg->media.workers;
    a->workers = calloc(a->nworkers, sizeof(*a->workers));
    if (!a->workers)
        goto fail;
    for (unsigned i = 0; i < a->nworkers; i++) {
        if ((rc = worker_init(a, &a->workers[i], i)) != 0)
            goto fail;
    }
    for (unsigned i = 0; i < a->nworkers; i++) {
        if (pthread_create(&a->workers[i].thread, NULL, worker_main, &a->workers[i]) != 0) {
            rc = -EAGAIN;
            goto fail;
        }
        a->workers[i].started = true;
    }
    char at[NETADDR_STRLEN], pa[NETADDR_STRLEN];
    log_info("media.started", "address", netaddr_format_ip(&a->address, at), "public_address",
             netaddr_format_ip(&a->public_address, pa), "ports", a->port_range, "workers",
             LOG_INT(a->nworkers), "anchor", cfg->media.anchor);
    *out = a;
    return 0;
fail:
    anchor_stop(a);
    return start_error(err, errlen, rc < 0 ? rc : -ENOMEM, "media engine: %s",
                       rc == -ENOTSUP ? "no SRTP algorithm available" : "cannot start");
}

void anchor_reload(struct anchor *a, const struct config *cfg)
{
    if (!a)
        return;
    anchor_params_from(cfg, &a->params);
    for (unsigned i = 0; i < a->nworkers; i++) {
        struct anchor_msg *m = calloc(1, sizeof(*m));
        if (!m)
            continue; /* that worker keeps its parameters until the next reload */
        m->m.type = ANCHOR_MSG_PARAMS;
        m->params = a->params;
        worker_post(&a->workers[i], m);
    }
}

void anchor_stop(struct anchor *a)
{
    if (!a)
        return;
    for (unsigned i = 0; i < a->nworkers; i++)
        worker_free(&a->workers[i]);
    free(a->workers);
    /* what the workers still told the core is dropped: the core is going */
    a->events.timed_out = NULL;
    if (a->core_mbox)
        mbox_free(a->core_mbox);
    if (a->streams.buckets) {
        size_t bucket;
        struct hmap_node *n = a->streams.count ? hmap_iter_first(&a->streams, &bucket) : NULL;
        while (n) {
            struct hmap_node *next = hmap_iter_next(&a->streams, n, &bucket);
            struct anchor_stream *s = container_of(n, struct anchor_stream, node);
            OPENSSL_cleanse(s->local, sizeof(s->local));
            free(s);
            n = next;
        }
        hmap_destroy(&a->streams);
    }
    if (a->users.buckets) {
        size_t bucket;
        struct hmap_node *n = a->users.count ? hmap_iter_first(&a->users, &bucket) : NULL;
        while (n) {
            struct hmap_node *next = hmap_iter_next(&a->users, n, &bucket);
            free(container_of(n, struct anchor_user_count, node));
            n = next;
        }
        hmap_destroy(&a->users);
    }
    log_limit_free(a->refusals);
    free(a->ports_used);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

static struct anchor_stream *stream_find(struct anchor *a, uint64_t id)
{
    uint64_t h = hash_u64(id);
    for (struct hmap_node *n = hmap_first(&a->streams, h); n; n = hmap_next(n, h)) {
        struct anchor_stream *s = container_of(n, struct anchor_stream, node);
        if (s->id == id)
            return s;
    }
    return NULL;
}

static void stream_refused(struct anchor *a, const char *call_id, const char *user, const char *why)
{
    uint64_t suppressed = 0;
    if (log_limit_allow(a->refusals, anchor_now_ms(), hash_bytes(user, strlen(user)), &suppressed))
        log_warn("media.stream_refused", "call_id", call_id, "user", user, "reason", why,
                 "suppressed", LOG_INT(suppressed));
}

int anchor_stream_new(struct anchor *a, const char *call_id, const char *user, uint64_t *id)
{
    /* counted under the name as the stream keeps it: a longer one would be
     * counted under one key and released under another */
    char who[ANCHOR_USER_MAX];
    snprintf(who, sizeof(who), "%s", user);
    user = who;
    if (a->nstreams >= a->params.max_streams) {
        stream_refused(a, call_id, user, "media.max_streams");
        return -EAGAIN;
    }
    int rc = user_take(a, user);
    if (rc != 0) {
        if (rc == -EAGAIN)
            stream_refused(a, call_id, user, "media.max_streams_per_user");
        return rc;
    }
    struct anchor_stream *s = calloc(1, sizeof(*s));
    /* aligned as its legs' hot fields ask (a cache line) */
    struct anchor_wstream *st = aligned_alloc(_Alignof(struct anchor_wstream), sizeof(*st));
    if (st)
        memset(st, 0, sizeof(*st));
    struct anchor_msg *m = calloc(1, sizeof(*m));
    if (!s || !st || !m) {
        rc = -ENOMEM;
        goto fail;
    }
    for (int i = 0; i < 2; i++)
        st->leg[i].rtp.fd = st->leg[i].rtcp.fd = -1;
    for (int i = 0; i < 2; i++) {
        unsigned port;
        rc = ports_take_pair(a, &port, &st->leg[i].rtp.fd, &st->leg[i].rtcp.fd);
        if (rc != 0) {
            stream_refused(a, call_id, user, "no free port in media.port_range");
            goto fail;
        }
        s->ports[i * 2] = st->ports[i * 2] = port;
        s->ports[i * 2 + 1] = st->ports[i * 2 + 1] = port + 1;
        st->leg[i].local_rtp = st->leg[i].local_rtcp = a->public_address;
        netaddr_set_port(&st->leg[i].local_rtp, (uint16_t)port);
        netaddr_set_port(&st->leg[i].local_rtcp, (uint16_t)(port + 1));
    }
    s->id = st->id = ++a->next_id;
    s->worker = (unsigned)(s->id % a->nworkers);
    snprintf(s->user, sizeof(s->user), "%s", user);
    snprintf(st->user, sizeof(st->user), "%s", user);
    snprintf(st->call_id, sizeof(st->call_id), "%s", call_id);
    st->created_s = anchor_wall_s();
    hmap_insert(&a->streams, &s->node, hash_u64(s->id));
    a->nstreams++;
    m->m.type = ANCHOR_MSG_ADD;
    m->stream = st;
    worker_post(&a->workers[s->worker], m);
    *id = s->id;
    return 0;
fail:
    if (st) {
        unsigned ports[4];
        memcpy(ports, st->ports, sizeof(ports));
        wstream_free(st); /* closes what was bound */
        anchor_ports_release(a, ports);
    }
    free(s);
    free(m);
    user_put(a, user);
    return rc;
}

int anchor_leg_local(struct anchor *a, uint64_t id, int leg, enum anchor_protection protection,
                     enum rtp_srtp_suite suite, struct anchor_local *out)
{
    struct anchor_stream *s = stream_find(a, id);
    if (!s || leg < 0 || leg > 1)
        return -ENOENT;
    struct anchor_local_key *k = &s->local[leg];
    bool renew =
        !k->set || k->protection != protection || (protection == ANCHOR_SRTP && k->suite != suite);
    if (renew) {
        struct anchor_local_key nk = {.set = true, .protection = protection, .suite = suite};
        if (protection == ANCHOR_SRTP &&
            rtp_srtp_generate_master(a->events.libctx, suite, nk.key, nk.salt) != 0) {
            OPENSSL_cleanse(&nk, sizeof(nk));
            return -EIO;
        }
        struct anchor_msg *m = calloc(1, sizeof(*m));
        if (!m) {
            OPENSSL_cleanse(&nk, sizeof(nk));
            return -ENOMEM;
        }
        *k = nk;
        OPENSSL_cleanse(&nk, sizeof(nk));
        m->m.type = ANCHOR_MSG_LOCAL;
        m->id = id;
        m->leg = leg;
        m->local = *k;
        worker_post(&a->workers[s->worker], m);
    }
    memset(out, 0, sizeof(*out));
    out->rtp = out->rtcp = a->public_address;
    netaddr_set_port(&out->rtp, (uint16_t)s->ports[leg * 2]);
    netaddr_set_port(&out->rtcp, (uint16_t)s->ports[leg * 2 + 1]);
    out->protection = protection;
    out->suite = suite;
    if (protection == ANCHOR_SRTP && rtp_srtp_inline_encode(suite, k->key, k->salt, out->inline_key,
                                                            sizeof(out->inline_key)) != 0)
        return -EIO;
    return 0;
}

int anchor_leg_remote(struct anchor *a, uint64_t id, int leg, const struct anchor_remote *remote)
{
    struct anchor_stream *s = stream_find(a, id);
    if (!s || leg < 0 || leg > 1)
        return -ENOENT;
    struct anchor_msg *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    m->m.type = ANCHOR_MSG_REMOTE;
    m->id = id;
    m->leg = leg;
    m->remote = *remote;
    worker_post(&a->workers[s->worker], m);
    return 0;
}

void anchor_stream_end(struct anchor *a, uint64_t id, const char *reason)
{
    struct anchor_stream *s = a ? stream_find(a, id) : NULL;
    if (!s)
        return;
    struct anchor_msg *m = calloc(1, sizeof(*m));
    if (m) {
        m->m.type = ANCHOR_MSG_END;
        m->id = id;
        snprintf(m->reason, sizeof(m->reason), "%s", reason ? reason : "ended");
        worker_post(&a->workers[s->worker], m);
    }
    /* without the message the worker keeps the stream until the engine
     * stops: its ports stay taken, nothing else goes wrong */
    hmap_remove(&a->streams, &s->node);
    a->nstreams--;
    user_put(a, s->user);
    OPENSSL_cleanse(s->local, sizeof(s->local));
    free(s);
}

size_t anchor_stream_count(const struct anchor *a)
{
    return a ? a->nstreams : 0;
}

const struct netaddr *anchor_public_address(const struct anchor *a)
{
    return &a->public_address;
}

static bool addr_is_loopback(const struct netaddr *x)
{
    if (netaddr_family(x) == AF_INET)
        return (ntohl(x->u.in4.sin_addr.s_addr) >> 24) == 127;
    return IN6_IS_ADDR_LOOPBACK(&x->u.in6.sin6_addr);
}

const char *anchor_remote_refused(const struct anchor *a, const struct netaddr *x)
{
    if (netaddr_family(x) == AF_INET) {
        uint32_t v = ntohl(x->u.in4.sin_addr.s_addr);
        if ((v >> 28) == 0xe)
            return "a multicast address";
        if (v == 0xffffffffu)
            return "the broadcast address";
    } else if (IN6_IS_ADDR_MULTICAST(&x->u.in6.sin6_addr)) {
        return "a multicast address";
    }
    /* a production engine never talks to this host's loopback: only an
     * engine on loopback itself (a test set-up) does */
    if (addr_is_loopback(x) && !addr_is_loopback(&a->address))
        return "a loopback address";
    unsigned port = netaddr_port(x);
    if ((netaddr_same_ip(x, &a->address) || netaddr_same_ip(x, &a->public_address)) &&
        port >= a->port_first && port <= a->port_last)
        return "one of Parley's own media ports";
    return NULL;
}

/* --- status ------------------------------------------------------------------------ */

static json_t *counters_json(struct anchor_counters *c, bool in)
{
    return json_pack("{s:I, s:I}", "packets",
                     (json_int_t)load(in ? &c->in_packets : &c->out_packets), "bytes",
                     (json_int_t)load(in ? &c->in_bytes : &c->out_bytes));
}

static json_t *leg_json(struct anchor_wleg *l)
{
    char lo[NETADDR_STRLEN], re[NETADDR_STRLEN] = "";
    const struct netaddr *at = l->latched_rtp_set ? &l->latched_rtp : &l->sdp_rtp;
    if (l->have_remote)
        netaddr_format(at, re);
    json_t *o = json_pack(
        "{s:s, s:s, s:b, s:s, s:s, s:o, s:o, s:I, s:I, s:I, s:I, s:I}", "local",
        netaddr_format(&l->local_rtp, lo), "remote", re, "latched", l->latched_rtp_set,
        "protection", l->tx_protection == ANCHOR_SRTP ? "SRTP" : "RTP", "suite",
        l->tx_protection == ANCHOR_SRTP ? rtp_srtp_suite_name(l->tx_suite) : "", "in",
        counters_json(&l->c, true), "out", counters_json(&l->c, false), "auth_failures",
        (json_int_t)load(&l->c.auth_failures), "replays", (json_int_t)load(&l->c.replays),
        "foreign_dropped", (json_int_t)load(&l->c.foreign), "malformed",
        (json_int_t)load(&l->c.malformed), "undelivered", (json_int_t)load(&l->c.undelivered));
    return o;
}

json_t *anchor_stream_legs(struct anchor *a, uint64_t id)
{
    if (!a)
        return NULL;
    json_t *legs = NULL;
    for (unsigned i = 0; i < a->nworkers && !legs; i++) {
        struct anchor_worker *w = &a->workers[i];
        pthread_mutex_lock(&w->list_lock);
        for (struct anchor_wstream *st = w->list; st; st = st->next) {
            if (st->id == id) {
                legs = json_pack("[o, o]", leg_json(&st->leg[0]), leg_json(&st->leg[1]));
                break;
            }
        }
        pthread_mutex_unlock(&w->list_lock);
    }
    return legs;
}

void anchor_totals(struct anchor *a, struct anchor_totals *out)
{
    memset(out, 0, sizeof(*out));
    for (unsigned i = 0; a && i < a->nworkers; i++) {
        struct anchor_worker *w = &a->workers[i];
        pthread_mutex_lock(&w->list_lock);
        out->in_packets += w->ended_in_packets;
        out->in_bytes += w->ended_in_bytes;
        out->out_packets += w->ended_out_packets;
        out->out_bytes += w->ended_out_bytes;
        out->auth_failures += w->ended_auth_failures;
        out->replays += w->ended_replays;
        for (struct anchor_wstream *st = w->list; st; st = st->next) {
            out->streams++;
            anchor_stream_add(st, out);
        }
        pthread_mutex_unlock(&w->list_lock);
    }
}

json_t *anchor_status(struct anchor *a)
{
    json_t *streams = json_array();
    if (!a)
        return json_pack("{s:b, s:o}", "enabled", 0, "streams", streams);
    int64_t now = anchor_wall_s();
    for (unsigned i = 0; i < a->nworkers; i++) {
        struct anchor_worker *w = &a->workers[i];
        pthread_mutex_lock(&w->list_lock);
        for (struct anchor_wstream *st = w->list; st; st = st->next) {
            json_t *legs = json_array();
            json_array_append_new(legs, leg_json(&st->leg[0]));
            json_array_append_new(legs, leg_json(&st->leg[1]));
            json_array_append_new(streams,
                                  json_pack("{s:I, s:s, s:s, s:I, s:o}", "id", (json_int_t)st->id,
                                            "call_id", st->call_id, "user", st->user, "age_s",
                                            (json_int_t)(now - st->created_s), "legs", legs));
        }
        pthread_mutex_unlock(&w->list_lock);
    }
    char at[NETADDR_STRLEN];
    return json_pack("{s:b, s:I, s:s, s:s, s:o}", "enabled", 1, "workers", (json_int_t)a->nworkers,
                     "address", netaddr_format_ip(&a->public_address, at), "port_range",
                     a->port_range, "streams", streams);
}
