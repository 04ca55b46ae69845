/*
 * net/conn — stream connections over libevent bufferevents, TLS from
 * tls/stream (see conn.h).
 */
#include "net/conn.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/hmap.h"
#include "core/log.h"
#include "core/log_limit.h"
#include "tls/stream.h"

/* How long a closing connection may take to flush. */
#define CONN_CLOSE_GRACE_S 5
/* How long an outgoing connect may take when the params name no limit. */
#define CONN_CONNECT_TIMEOUT_S 10

struct conn_host {
    struct event_base *base;
    struct hmap conns; /* by id */
    struct event *reap_ev;
    struct conn *reap_list;
    struct log_limit *refusals; /* tls.refused: bounded per source and reason */
    void (*on_reaped)(void *arg);
    void *on_reaped_arg;
    /* written by the host's thread only, read by anyone (metrics) */
    _Atomic uint64_t tls_failures[CONN_TLS_FAIL_COUNT_];
};

struct conn {
    struct hmap_node node;
    struct conn_host *h;
    struct conn_info info;
    struct bufferevent *bev;
    int connect_fd;       /* outgoing, before the socket is connected */
    SSL_CTX *pending_ctx; /* outgoing TLS, until the socket is connected */
    char *sni;
    char *verify_host;
    size_t output_pause; /* see conn_params */
    size_t output_limit;
    struct event *connect_ev;
    const struct conn_protocol *proto;
    void *proto_arg;
    void *data;
    struct event *timer; /* handshake / connect / close deadline */
    unsigned handshake_s;
    unsigned idle_s;
    size_t read_limit;
    struct event *resume_ev; /* conn_defer_read */
    bool paused_output;      /* reading stopped until our output drains */
    bool open;
    bool closing;
    bool dead;
    bool clean; /* no transport error: send close_notify */
    char reason[96];
    struct conn *reap_next;
};

/* --- conn_info ---------------------------------------------------------- */

struct conn_info *conn_info_dup(const struct conn_info *info)
{
    struct conn_info *d = malloc(sizeof(*d));
    if (!d)
        return NULL;
    *d = *info;
    tls_peer_ref(d->peer_cert);
    return d;
}

void conn_info_free(struct conn_info *info)
{
    if (!info)
        return;
    tls_peer_unref(info->peer_cert);
    free(info);
}

/* --- life and death ------------------------------------------------------ */

uint64_t conn_id(const struct conn *c)
{
    return c->info.id;
}

const struct conn_info *conn_info(const struct conn *c)
{
    return &c->info;
}

struct event_base *conn_event_base(const struct conn *c)
{
    return c->h->base;
}

void conn_set_data(struct conn *c, void *data)
{
    c->data = data;
}

void *conn_get_data(const struct conn *c)
{
    return c->data;
}

const struct conn_protocol *conn_get_protocol(const struct conn *c)
{
    return c->proto;
}

static void host_reap_soon(struct conn_host *h)
{
    event_active(h->reap_ev, EV_TIMEOUT, 0);
}

/* Takes the connection out of service; it is freed by the reaper, outside
 * any of its own callbacks. */
static void conn_kill(struct conn *c, const char *reason, bool clean)
{
    if (c->dead)
        return;
    c->dead = true;
    c->clean = clean;
    if (reason && !c->reason[0])
        snprintf(c->reason, sizeof(c->reason), "%s", reason);
    hmap_remove(&c->h->conns, &c->node);
    if (c->bev)
        bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    if (c->timer)
        event_del(c->timer);
    if (c->resume_ev)
        event_del(c->resume_ev);
    if (c->connect_ev)
        event_del(c->connect_ev);
    c->reap_next = c->h->reap_list;
    c->h->reap_list = c;
    host_reap_soon(c->h);
}

static void conn_free(struct conn *c)
{
    if (c->bev) {
        if (c->open && c->clean)
            tls_stream_close_notify(c->bev); /* libevent 2.1 never sends it */
        bufferevent_free(c->bev);            /* frees the SSL, closes the socket */
    } else if (c->connect_fd >= 0) {
        close(c->connect_fd);
    }
    SSL_CTX_free(c->pending_ctx);
    free(c->sni);
    free(c->verify_host);
    if (c->connect_ev)
        event_free(c->connect_ev);
    if (c->timer)
        event_free(c->timer);
    if (c->resume_ev)
        event_free(c->resume_ev);
    tls_peer_unref(c->info.peer_cert);
    free(c);
}

static void host_on_reap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct conn_host *h = arg;
    while (h->reap_list) {
        struct conn *c = h->reap_list;
        h->reap_list = c->reap_next;
        if (c->proto->on_close)
            c->proto->on_close(c, c->reason[0] ? c->reason : "closed", c->proto_arg);
        conn_free(c);
    }
    if (h->on_reaped)
        h->on_reaped(h->on_reaped_arg);
}

struct conn_host *conn_host_new(struct event_base *base)
{
    struct conn_host *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->base = base;
    h->reap_ev = event_new(base, -1, 0, host_on_reap, h);
    h->refusals = log_limit_new("tls.refused", 4096, 50);
    if (!h->reap_ev || !h->refusals || hmap_init(&h->conns, 1024) != 0) {
        conn_host_free(h);
        return NULL;
    }
    return h;
}

void conn_host_free(struct conn_host *h)
{
    if (!h)
        return;
    if (h->conns.buckets) {
        conn_host_kill_all(h, "shutting down");
        h->on_reaped = NULL;
        host_on_reap(-1, 0, h);
        hmap_destroy(&h->conns);
    }
    if (h->reap_ev)
        event_free(h->reap_ev);
    log_limit_free(h->refusals);
    free(h);
}

size_t conn_host_count(const struct conn_host *h)
{
    return h->conns.count;
}

struct conn *conn_host_find(struct conn_host *h, uint64_t id)
{
    uint64_t hash = hash_u64(id);
    for (struct hmap_node *n = hmap_first(&h->conns, hash); n; n = hmap_next(n, hash)) {
        struct conn *c = container_of(n, struct conn, node);
        if (c->info.id == id)
            return c;
    }
    return NULL;
}

void conn_host_foreach(struct conn_host *h, void (*fn)(struct conn *c, void *arg), void *arg)
{
    size_t bucket;
    struct hmap_node *n = h->conns.count ? hmap_iter_first(&h->conns, &bucket) : NULL;
    while (n) {
        struct hmap_node *next = hmap_iter_next(&h->conns, n, &bucket);
        fn(container_of(n, struct conn, node), arg);
        n = next;
    }
}

static void host_close_one(struct conn *c, void *arg)
{
    conn_close(c, arg);
}

static void host_kill_one(struct conn *c, void *arg)
{
    conn_kill(c, arg, false);
}

void conn_host_close_all(struct conn_host *h, const char *reason)
{
    conn_host_foreach(h, host_close_one, (void *)reason);
}

void conn_host_kill_all(struct conn_host *h, const char *reason)
{
    conn_host_foreach(h, host_kill_one, (void *)reason);
}

void conn_host_on_reaped(struct conn_host *h, void (*fn)(void *arg), void *arg)
{
    h->on_reaped = fn;
    h->on_reaped_arg = arg;
}

/* --- I/O ----------------------------------------------------------------- */

int conn_write(struct conn *c, const void *data, size_t len)
{
    if (c->dead || c->closing || !c->bev)
        return -EPIPE;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (evbuffer_get_length(out) + len > c->output_limit) {
        char peer[NETADDR_STRLEN];
        log_warn("conn.overflow", "conn", LOG_INT(c->info.id), "peer",
                 netaddr_format(&c->info.peer, peer), "reason", "peer does not read its data");
        conn_kill(c, "output limit reached", false);
        return -ENOBUFS;
    }
    if (bufferevent_write(c->bev, data, len) != 0) {
        conn_kill(c, "write failed", false);
        return -ENOMEM;
    }
    return 0;
}

size_t conn_output_pending(const struct conn *c)
{
    return c->bev ? evbuffer_get_length(bufferevent_get_output(c->bev)) : 0;
}

/* A refused handshake: anyone can cause them at will, so at most one line
 * a second per source and reason, with the count held back since. */
static void conn_log_refused(struct conn *c, const char *subject, const char *why)
{
    uint8_t src[16];
    netaddr_source_key(&c->info.peer, src);
    uint64_t key = hash_bytes(src, sizeof(src)) ^ (hash_bytes(why, strlen(why)) * 31);
    uint64_t suppressed = 0;
    if (!log_limit_allow(c->h->refusals, clock_now_ms(clock_system()), key, &suppressed))
        return;
    char peer[NETADDR_STRLEN];
    log_info("tls.refused", "peer", netaddr_format(&c->info.peer, peer), "subject", subject,
             "reason", why, "suppressed", LOG_INT(suppressed));
}

const char *conn_tls_failure_name(enum conn_tls_failure f)
{
    static const char *const names[CONN_TLS_FAIL_COUNT_] = {"timeout", "certificate", "alert",
                                                            "protocol", "closed"};
    return (unsigned)f < CONN_TLS_FAIL_COUNT_ ? names[f] : "protocol";
}

void conn_host_tls_failures(const struct conn_host *h, uint64_t out[CONN_TLS_FAIL_COUNT_])
{
    for (size_t i = 0; i < CONN_TLS_FAIL_COUNT_; i++)
        out[i] += atomic_load_explicit(&h->tls_failures[i], memory_order_relaxed);
}

static void conn_count_tls_failure(struct conn *c, enum conn_tls_failure f)
{
    atomic_fetch_add_explicit(&c->h->tls_failures[f], 1, memory_order_relaxed);
}

/* The kind of a failure conn_describe_error described (from TLS when tls). */
static enum conn_tls_failure conn_tls_failure_kind(const char *why, bool from_tls)
{
    if (!from_tls)
        return CONN_TLS_FAIL_CLOSED;
    if (strncmp(why, "certificate verify failed", 25) == 0 ||
        strncmp(why, "no client certificate", 21) == 0)
        return CONN_TLS_FAIL_CERTIFICATE;
    if (strstr(why, " alert: "))
        return CONN_TLS_FAIL_ALERT;
    return CONN_TLS_FAIL_PROTOCOL;
}

static void conn_on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct conn *c = arg;

    if (c->closing) {
        conn_kill(c, NULL, false);
    } else if (!c->open) {
        if (c->info.tls && !c->info.outgoing) {
            conn_count_tls_failure(c, CONN_TLS_FAIL_TIMEOUT);
            conn_log_refused(c, "", "handshake timeout");
        }
        conn_kill(c, c->info.outgoing ? "connect timeout" : "handshake timeout", false);
    }
}

static void conn_on_read(struct bufferevent *bev, void *arg);

static void conn_on_flushed(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    if (c->closing) {
        conn_kill(c, NULL, true);
        return;
    }
    if (c->paused_output && !c->dead) {
        /* the peer took our answers: read (and handle what waited) again */
        c->paused_output = false;
        bufferevent_enable(bev, EV_READ);
        if (evbuffer_get_length(bufferevent_get_input(bev)))
            conn_on_read(bev, c);
    }
}

void conn_close(struct conn *c, const char *reason)
{
    if (c->dead || c->closing)
        return;
    c->closing = true;
    snprintf(c->reason, sizeof(c->reason), "%s", reason ? reason : "closed");
    if (!c->bev || evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        conn_kill(c, NULL, true);
        return;
    }
    bufferevent_disable(c->bev, EV_READ);
    struct timeval tv = {CONN_CLOSE_GRACE_S, 0};
    event_add(c->timer, &tv);
}

void conn_set_idle_timeout(struct conn *c, unsigned seconds)
{
    c->idle_s = seconds;
    if (!c->bev || !c->open)
        return;
    struct timeval tv = {(time_t)seconds, 0};
    bufferevent_set_timeouts(c->bev, seconds ? &tv : NULL, NULL);
}

void conn_set_read_limit(struct conn *c, size_t limit)
{
    if (!limit)
        return;
    c->read_limit = limit;
    if (!c->bev)
        return;
    bufferevent_setwatermark(c->bev, EV_READ, 0, limit);
    /* a lower limit under what is buffered stops reading with no read
     * callback to come: let the protocol look again */
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) >= limit)
        conn_defer_read(c, 0);
}

size_t conn_read_limit(const struct conn *c)
{
    return c->read_limit;
}

/* Reads what the TLS layer and the kernel said about a failure, for the
 * log; true when the TLS layer said it. */
static bool conn_describe_error(struct conn *c, short what, char *buf, size_t cap,
                                const char **subject)
{
    *subject = "";
    if (c->info.tls && !c->open && tls_stream_failure(c->bev, buf, cap, subject))
        return true;
    int err = EVUTIL_SOCKET_ERROR();
    if ((what & BEV_EVENT_EOF) || err == 0)
        snprintf(buf, cap, c->open ? "peer closed" : "peer closed during handshake");
    else
        snprintf(buf, cap, "%s", evutil_socket_error_to_string(err));
    return false;
}

static void conn_on_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    if (c->dead || c->closing || c->paused_output)
        return;
    if (evbuffer_get_length(bufferevent_get_output(bev)) > c->output_pause) {
        c->paused_output = true;
        bufferevent_disable(bev, EV_READ);
        return;
    }
    c->proto->on_read(c, bufferevent_get_input(bev), c->proto_arg);
}

static void conn_on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct conn *c = arg;
    if (c->dead || c->closing || !c->bev)
        return;
    bufferevent_enable(c->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_input(c->bev)))
        conn_on_read(c->bev, c);
}

void conn_defer_read(struct conn *c, unsigned ms)
{
    if (c->dead || !c->bev)
        return;
    if (!c->resume_ev)
        c->resume_ev = evtimer_new(c->h->base, conn_on_resume, c);
    if (!c->resume_ev)
        return;
    bufferevent_disable(c->bev, EV_READ);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(c->resume_ev, &tv);
}

static void conn_opened(struct conn *c)
{
    c->open = true;
    event_del(c->timer);
    if (c->info.tls) {
        struct tls_stream_facts f;
        if (tls_stream_facts(c->bev, &f) == 0) {
            snprintf(c->info.tls_version, sizeof(c->info.tls_version), "%s", f.version);
            snprintf(c->info.tls_cipher, sizeof(c->info.tls_cipher), "%s", f.cipher);
            c->info.tls_resumed = f.resumed;
            c->info.peer_cert = f.peer;
            c->info.peer_cert_verified = f.peer_verified;
            c->info.peer_crl_missing = f.peer_crl_missing;
        }
    }
    conn_set_idle_timeout(c, c->idle_s);
    if (c->proto->on_open)
        c->proto->on_open(c, c->proto_arg);
}

static void conn_on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct conn *c = arg;
    char why[160];
    char peer[NETADDR_STRLEN];

    if (c->dead)
        return;
    if (what & BEV_EVENT_CONNECTED) {
        conn_opened(c);
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) {
        conn_kill(c, "idle timeout", true);
        return;
    }
    const char *subject;
    bool from_tls = conn_describe_error(c, what, why, sizeof(why), &subject);
    if (!c->open && c->info.tls) {
        if (!c->info.outgoing)
            conn_count_tls_failure(c, conn_tls_failure_kind(why, from_tls));
        if (c->info.outgoing)
            log_warn("tls.connect_failed", "peer", netaddr_format(&c->info.peer, peer), "host",
                     c->verify_host ? c->verify_host : (c->sni ? c->sni : ""), "subject", subject,
                     "reason", why);
        else
            conn_log_refused(c, subject, why);
    }
    conn_kill(c, why, (what & BEV_EVENT_EOF) != 0);
}

static struct conn *conn_new(struct conn_host *h, uint64_t id, const struct conn_params *p)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->h = h;
    c->info.id = id;
    c->info.listener = p->listener;
    c->info.tls = p->tls != NULL;
    c->proto = p->proto;
    c->proto_arg = p->proto_arg;
    c->handshake_s = p->handshake_timeout_s;
    c->idle_s = p->idle_timeout_s;
    c->read_limit = p->read_limit;
    c->output_pause = p->output_pause ? p->output_pause : CONN_OUTPUT_PAUSE_DEFAULT;
    c->output_limit = p->output_limit ? p->output_limit : CONN_OUTPUT_LIMIT_DEFAULT;
    c->connect_fd = -1;
    c->timer = evtimer_new(h->base, conn_on_timer, c);
    if (!c->timer) {
        free(c);
        return NULL;
    }
    hmap_insert(&h->conns, &c->node, hash_u64(id));
    return c;
}

/* Wires a connected socket into a bufferevent (TLS or plain). The socket
 * is the bufferevent's from here; on failure it is still the caller's. */
static int conn_attach(struct conn *c, int fd, SSL_CTX *tls, bool accepting,
                       enum tls_client_certs policy)
{
    const int opts = BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS;
    /* every protocol here sends small messages that someone waits for
     * (SIP answers, relayed media, HTTP responses): Nagle's algorithm
     * meeting delayed ACKs would hold them back tens of ms */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (tls)
        c->bev = accepting ? tls_stream_accept(c->h->base, fd, tls, policy, opts)
                           : tls_stream_connect(c->h->base, fd, tls, c->sni, c->verify_host, opts);
    else
        c->bev = bufferevent_socket_new(c->h->base, fd, opts);
    if (!c->bev)
        return -ENOMEM;
    bufferevent_setcb(c->bev, conn_on_read, conn_on_flushed, conn_on_event, c);
    if (c->read_limit)
        bufferevent_setwatermark(c->bev, EV_READ, 0, c->read_limit);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    return 0;
}

struct conn *conn_accept(struct conn_host *h, uint64_t id, int fd, const struct netaddr *peer,
                         const struct conn_params *p)
{
    struct conn *c = conn_new(h, id, p);
    if (!c) {
        close(fd);
        return NULL;
    }
    c->info.peer = *peer;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        netaddr_from_sockaddr((struct sockaddr *)&ss, sl, &c->info.local);
    if (conn_attach(c, fd, p->tls, true, p->client_certs) != 0) {
        close(fd);
        conn_kill(c, "out of memory", false);
        return c; /* reaped soon: its on_close still runs */
    }
    if (p->tls) {
        struct timeval tv = {(time_t)p->handshake_timeout_s, 0};
        event_add(c->timer, &tv);
    } else {
        conn_opened(c);
    }
    return c;
}

static void conn_on_connect_ready(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    int err = 0;
    socklen_t len = sizeof(err);
    char peer[NETADDR_STRLEN];

    if (what & EV_TIMEOUT)
        err = ETIMEDOUT;
    else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err) {
        char why[128];
        snprintf(why, sizeof(why), "connect: %s", strerror(err));
        log_warn("conn.connect_failed", "peer", netaddr_format(&c->info.peer, peer), "reason", why);
        conn_kill(c, why, false);
        return;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        netaddr_from_sockaddr((struct sockaddr *)&ss, sl, &c->info.local);

    event_free(c->connect_ev);
    c->connect_ev = NULL;
    c->connect_fd = -1;
    if (conn_attach(c, fd, c->pending_ctx, false, TLS_CLIENT_CERTS_NONE) != 0) {
        close(fd);
        conn_kill(c, "out of memory", false);
        return;
    }
    if (c->pending_ctx) {
        struct timeval tv = {(time_t)(c->handshake_s ? c->handshake_s : CONN_CONNECT_TIMEOUT_S), 0};
        event_add(c->timer, &tv);
    } else {
        conn_opened(c);
    }
}

struct conn *conn_connect(struct conn_host *h, uint64_t id, const struct netaddr *addr,
                          const struct netaddr *local, const struct conn_params *p)
{
    char peer[NETADDR_STRLEN];
    struct conn *c = conn_new(h, id, p);
    if (!c)
        return NULL;
    c->info.outgoing = true;
    c->info.listener = -1;
    c->info.peer = *addr;
    if (p->tls)
        SSL_CTX_up_ref(p->tls);
    c->pending_ctx = p->tls;
    c->sni = p->sni ? strdup(p->sni) : NULL;
    c->verify_host = p->verify_host ? strdup(p->verify_host) : NULL;
    if ((p->sni && !c->sni) || (p->verify_host && !c->verify_host)) {
        conn_kill(c, "out of memory", false);
        return c;
    }
    int fd = socket(netaddr_family(addr), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail_errno;
    c->connect_fd = fd; /* closed with the connection from here */
    if (local) {
        struct netaddr l = *local;
        netaddr_set_port(&l, 0);
        if (bind(fd, &l.u.sa, l.len) != 0)
            goto fail_errno;
    }
    if (connect(fd, &addr->u.sa, addr->len) != 0 && errno != EINPROGRESS)
        goto fail_errno;
    c->connect_ev = event_new(h->base, fd, EV_WRITE, conn_on_connect_ready, c);
    struct timeval tv = {
        (time_t)(p->handshake_timeout_s ? p->handshake_timeout_s : CONN_CONNECT_TIMEOUT_S), 0};
    if (!c->connect_ev || event_add(c->connect_ev, &tv) != 0)
        conn_kill(c, "out of memory", false);
    return c;

fail_errno : {
    char why[128];
    snprintf(why, sizeof(why), "connect: %s", strerror(errno));
    log_warn("conn.connect_failed", "peer", netaddr_format(addr, peer), "reason", why);
    conn_kill(c, why, false);
    return c;
}
}
