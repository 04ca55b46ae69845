/*
 * The relay's life and shared state: start-up (sockets, secrets, worker
 * threads), reload, status, stop; the port pool, quotas, reservations,
 * secrets and the peer policy that every worker consults; TCP/TLS
 * connections.
 */
#include "relay/relay_priv.h"
#include "tls/context.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>

#include "core/log.h"
#include "core/log_limit.h"
#include "core/random.h"

#define RELAY_SOCKBUF       (4 << 20)
#define RELAY_TLS_TIMEOUT_S 10 /* handshake and first request */
#define RELAY_RESV_MAX      4096
#define RELAY_PORT_ATTEMPTS 64

enum { RMSG_RELOAD = 1, RMSG_STOP };

uint64_t relay_now_ms(void)
{
    struct timespec ts;
    /* The coarse clock is a vDSO read: cheap enough for every batch. */
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* --- parameters -------------------------------------------------------------- */

void relay_params_free(struct relay_params *p)
{
    free(p->allowed);
    p->allowed = NULL;
    p->nallowed = 0;
}

int relay_params_copy(struct relay_params *dst, const struct relay_params *src)
{
    struct cidr *allowed = NULL;
    if (src->nallowed) {
        allowed = malloc(src->nallowed * sizeof(*allowed));
        if (!allowed)
            return -ENOMEM;
        memcpy(allowed, src->allowed, src->nallowed * sizeof(*allowed));
    }
    relay_params_free(dst);
    *dst = *src;
    dst->allowed = allowed;
    return 0;
}

static int params_from_config(const struct config *cfg, struct relay_params *p)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->realm, sizeof(p->realm), "%s", cfg->server.domain ? cfg->server.domain : "");
    p->grace_s = cfg->relay.max_lifetime;
    p->alloc_max_s = (uint32_t)cfg->relay.allocation_lifetime;
    p->per_user = (uint32_t)cfg->relay.max_allocations_per_user;
    p->total = (uint32_t)cfg->relay.max_allocations;
    p->bw_bytes_s = (uint64_t)cfg->relay.max_bandwidth * 1000 / 8;
    p->nonce_lifetime_ms = (uint64_t)cfg->relay.nonce_lifetime * 1000;
    p->nallowed = cfg->relay.allowed_peers.n;
    if (p->nallowed) {
        p->allowed = malloc(p->nallowed * sizeof(*p->allowed));
        if (!p->allowed)
            return -ENOMEM;
        memcpy(p->allowed, cfg->relay.allowed_peers.v, p->nallowed * sizeof(*p->allowed));
    }
    return 0;
}

/* --- secrets -------------------------------------------------------------------- */

static int secrets_reload_locked(struct relay *r, const char *why)
{
    char err[512];
    struct relay_secrets s;
    struct relay_secrets_stamp stamp;

    memset(&stamp, 0, sizeof(stamp));
    int rc = relay_secrets_load(r->secrets_path, &s, &stamp, err, sizeof(err));
    /* Whatever happened, this is the file as seen (zeros: none), so a broken
     * or missing file is reported once, not on every check. */
    r->stamp = stamp;
    if (rc) {
        log_error("relay.secrets_failed", "reason", err, "action", "keeping the secrets in use");
        return rc;
    }
    r->secrets = s;
    OPENSSL_cleanse(&s, sizeof(s));
    log_info("relay.secrets_loaded", "path", r->secrets_path, "secrets", LOG_INT(r->secrets.n),
             "why", why);
    return 0;
}

/* Once a second (worker 0): a rotation takes effect without a reload. */
static void secrets_poll(struct relay *r)
{
    pthread_mutex_lock(&r->lock);
    if (relay_secrets_changed(r->secrets_path, &r->stamp))
        secrets_reload_locked(r, "file changed");
    pthread_mutex_unlock(&r->lock);
}

void relay_secrets_snapshot(struct relay *r, bool check, struct relay_secrets *out)
{
    uint64_t now = relay_now_ms();
    pthread_mutex_lock(&r->lock);
    if (check && now - r->secrets_checked_ms >= 100) {
        r->secrets_checked_ms = now;
        if (relay_secrets_changed(r->secrets_path, &r->stamp))
            secrets_reload_locked(r, "file changed");
    }
    *out = r->secrets;
    pthread_mutex_unlock(&r->lock);
}

/* --- quotas ------------------------------------------------------------------------ */

static struct relay_user_count *user_find(struct relay *r, const char *user, uint64_t h)
{
    for (struct hmap_node *n = hmap_first(&r->users, h); n; n = hmap_next(n, h)) {
        struct relay_user_count *u = container_of(n, struct relay_user_count, node);
        if (strcmp(u->name, user) == 0)
            return u;
    }
    return NULL;
}

int relay_quota_take(struct relay *r, const struct relay_params *p, const char *user)
{
    uint64_t h = hash_bytes(user, strlen(user));
    int rc = 0;

    pthread_mutex_lock(&r->lock);
    struct relay_user_count *u = user_find(r, user, h);
    if (r->total >= p->total) {
        rc = 508;
    } else if (u && u->n >= p->per_user) {
        rc = 486;
    } else {
        if (!u) {
            u = calloc(1, sizeof(*u));
            if (!u) {
                rc = 508;
                goto out;
            }
            snprintf(u->name, sizeof(u->name), "%s", user);
            hmap_insert(&r->users, &u->node, h);
        }
        u->n++;
        r->total++;
    }
out:
    pthread_mutex_unlock(&r->lock);
    return rc;
}

void relay_quota_release(struct relay *r, const char *user)
{
    uint64_t h = hash_bytes(user, strlen(user));
    pthread_mutex_lock(&r->lock);
    struct relay_user_count *u = user_find(r, user, h);
    if (u && --u->n == 0) {
        hmap_remove(&r->users, &u->node);
        free(u);
    }
    if (r->total)
        r->total--;
    pthread_mutex_unlock(&r->lock);
}

/* --- ports ------------------------------------------------------------------------- */

static bool port_used(const struct relay *r, unsigned port)
{
    unsigned i = port - r->port_first;
    return (r->port_bits[i / 64] >> (i % 64)) & 1;
}

static void port_mark(struct relay *r, unsigned port, bool used)
{
    unsigned i = port - r->port_first;
    if (used)
        r->port_bits[i / 64] |= 1ULL << (i % 64);
    else
        r->port_bits[i / 64] &= ~(1ULL << (i % 64));
}

static int udp_socket_bind(const struct netaddr *a, bool reuseport, bool bigbuf)
{
    int fd = socket(netaddr_family(a), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1, size = RELAY_SOCKBUF;

    if (fd < 0)
        return -errno;
    if (netaddr_family(a) == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    if (bigbuf) {
        /* Best effort: the kernel caps it at net.core.[rw]mem_max. */
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    }
    if (bind(fd, &a->u.sa, a->len) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* Picks a free port (even when asked, with a free successor when
 * pair) and marks it (and the successor) used. Under r->lock. */
static int port_pick_locked(struct relay *r, bool even, bool pair)
{
    unsigned n = (unsigned)r->port_last - r->port_first + 1;
    unsigned start = (unsigned)(random_u64() % n);

    for (unsigned k = 0; k < n; k++) {
        unsigned port = r->port_first + (start + k) % n;
        if ((even || pair) && (port & 1))
            continue;
        if (port_used(r, port))
            continue;
        if (pair && (port + 1 > r->port_last || port_used(r, port + 1)))
            continue;
        port_mark(r, port, true);
        if (pair)
            port_mark(r, port + 1, true);
        return (int)port;
    }
    return -EAGAIN;
}

int relay_port_open(struct relay *r, bool even, bool reserve_next, uint64_t *token,
                    struct netaddr *bound)
{
    for (int attempt = 0; attempt < RELAY_PORT_ATTEMPTS; attempt++) {
        pthread_mutex_lock(&r->lock);
        int port = port_pick_locked(r, even, reserve_next);
        if (port > 0 && reserve_next && r->nresv >= RELAY_RESV_MAX) {
            port_mark(r, (unsigned)port, false);
            port_mark(r, (unsigned)port + 1, false);
            port = -EAGAIN;
        }
        pthread_mutex_unlock(&r->lock);
        if (port < 0)
            return port;

        struct netaddr a = r->relay_addr, b = r->relay_addr;
        netaddr_set_port(&a, (uint16_t)port);
        netaddr_set_port(&b, (uint16_t)(port + 1));
        int fd = udp_socket_bind(&a, false, false);
        int fd2 = fd >= 0 && reserve_next ? udp_socket_bind(&b, false, false) : -1;
        if (fd >= 0 && (!reserve_next || fd2 >= 0)) {
            *bound = a;
            if (reserve_next) {
                /* a reservation token is a capability: kernel randomness, not
                 * the fast generator whose outputs clients can observe */
                uint64_t t = 0;
                if (random_secret(&t, sizeof(t)) != 0) {
                    /* fail closed: no reservation rather than a guessable one */
                    close(fd);
                    close(fd2);
                    pthread_mutex_lock(&r->lock);
                    port_mark(r, (unsigned)port, false);
                    port_mark(r, (unsigned)port + 1, false);
                    pthread_mutex_unlock(&r->lock);
                    return -EIO;
                }
                t |= 1; /* never 0 */
                pthread_mutex_lock(&r->lock);
                r->resv[r->nresv++] = (struct relay_reservation){
                    t, fd2, (uint16_t)(port + 1), relay_now_ms() + RELAY_RESERVATION_S * 1000};
                pthread_mutex_unlock(&r->lock);
                *token = t;
            }
            return fd;
        }
        /* Someone else (another program) holds it: free our marks, try another. */
        if (fd >= 0)
            close(fd);
        pthread_mutex_lock(&r->lock);
        port_mark(r, (unsigned)port, false);
        if (reserve_next)
            port_mark(r, (unsigned)port + 1, false);
        pthread_mutex_unlock(&r->lock);
    }
    return -EAGAIN;
}

int relay_port_claim(struct relay *r, uint64_t token, struct netaddr *bound)
{
    int fd = -ENOENT;
    uint64_t now = relay_now_ms();

    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->nresv; i++) {
        struct relay_reservation *v = &r->resv[i];
        if (v->token != token || v->expires_ms < now)
            continue;
        fd = v->fd;
        *bound = r->relay_addr;
        netaddr_set_port(bound, v->port);
        r->resv[i] = r->resv[--r->nresv];
        break;
    }
    pthread_mutex_unlock(&r->lock);
    return fd;
}

void relay_port_close(struct relay *r, int fd, const struct netaddr *bound)
{
    if (fd >= 0)
        close(fd);
    unsigned port = netaddr_port(bound);
    if (port < r->port_first || port > r->port_last)
        return;
    pthread_mutex_lock(&r->lock);
    port_mark(r, port, false);
    pthread_mutex_unlock(&r->lock);
}

void relay_reservations_sweep(struct relay *r, uint64_t now_ms)
{
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->nresv;) {
        struct relay_reservation *v = &r->resv[i];
        if (v->expires_ms >= now_ms) {
            i++;
            continue;
        }
        close(v->fd);
        port_mark(r, v->port, false);
        r->resv[i] = r->resv[--r->nresv];
    }
    pthread_mutex_unlock(&r->lock);
}

/* --- peers -------------------------------------------------------------------------- */

static const char *const refused_ranges[] = {
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "224.0.0.0/4",
    "240.0.0.0/4", /* reserved, and 255.255.255.255 */
    "::/128",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
    /* IPv6 forms that carry an IPv4 address a gateway would reach for us:
     * IPv4-compatible (::a.b.c.d), NAT64 (RFC 6052, RFC 8215), 6to4
     * (RFC 3056) and Teredo (RFC 4380). Refused whole: telling a private
     * address inside them from a public one is not worth the risk, and a
     * client that wants an IPv4 peer asks for an IPv4 allocation. */
    "::/96",
    "64:ff9b::/96",
    "64:ff9b:1::/48",
    "2002::/16",
    "2001::/32",
};

static bool in_list(const struct cidr *v, size_t n, const struct netaddr *a)
{
    for (size_t i = 0; i < n; i++)
        if (cidr_contains(&v[i], a))
            return true;
    return false;
}

bool relay_peer_allowed(const struct relay *r, const struct relay_params *p,
                        const struct netaddr *peer)
{
    bool allowed = in_list(p->allowed, p->nallowed, peer);
    uint16_t port = netaddr_port(peer);

    for (size_t i = 0; i < r->nown; i++) {
        if (!netaddr_same_ip(&r->own[i], peer))
            continue;
        /* Never toward our own listeners: the relay would talk to itself. */
        for (size_t k = 0; k < r->nlisten; k++)
            if (netaddr_port(&r->listen[k]) == port && netaddr_same_ip(&r->listen[k], peer))
                return false;
        /* Another allocation of this relay: two of its clients reaching
         * each other through it is what ICE relay pairs do. */
        if (port >= r->port_first && port <= r->port_last && netaddr_same_ip(&r->relay_addr, peer))
            return true;
        return allowed;
    }
    if (in_list(r->refused, r->nrefused, peer))
        return allowed;
    return true;
}

bool relay_log_allowed(struct relay_worker *w, const struct netaddr *src, const char *event,
                       const char *reason, uint64_t *suppressed)
{
    uint8_t key[16];
    netaddr_source_key(src, key);
    uint64_t k = hash_bytes(key, sizeof(key)) ^ (hash_bytes(event, strlen(event)) * 31) ^
                 (hash_bytes(reason, strlen(reason)) * 131);
    return log_limit_allow(w->refusals, relay_now_ms(), k, suppressed);
}

/* --- TCP and TLS connections -------------------------------------------------- */

void relay_conn_close(struct relay_conn *c, const char *reason)
{
    if (c->dead)
        return;
    c->dead = true;
    if (c->alloc)
        relay_alloc_end(c->alloc, reason);
    c->alloc = NULL;
    conn_close(c->conn, reason);
}

static void stream_on_read(struct conn *conn, struct evbuffer *in, void *arg)
{
    (void)arg;
    struct relay_conn *c = conn_get_data(conn);
    if (c && !c->dead)
        relay_conn_on_read(c, in);
}

/* The stream is gone (after the dispatch that ended it): so is the client. */
static void stream_on_close(struct conn *conn, const char *reason, void *arg)
{
    (void)arg;
    struct relay_conn *c = conn_get_data(conn);
    if (!c)
        return;
    if (c->alloc) {
        /* the allocation's end names the client's doing in the relay's own
         * words; anything else (a reset, a timeout) as the stream saw it */
        bool peer_closed = reason && strncmp(reason, "peer closed", 11) == 0;
        relay_alloc_end(c->alloc, peer_closed ? "connection closed" : reason);
    }
    struct relay_worker *w = c->w;
    w->nconns--;
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
}

static const struct conn_protocol relay_stream_protocol = {
    .name = "turn",
    .on_read = stream_on_read,
    .on_close = stream_on_close,
};

static void tcp_on_accept(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa,
                          int salen, void *arg)
{
    (void)evl;
    struct relay_tcp_listener *l = arg;
    struct relay_worker *w = l->w;
    struct relay_conn *c = NULL;
    SSL_CTX *ctx = NULL;

    if (w->nconns >= RELAY_CONNS_MAX) {
        char p[NETADDR_STRLEN], a[NETADDR_STRLEN];
        struct netaddr peer;
        uint64_t suppressed = 0;
        const char *why = "too many TCP/TLS connections";
        if (netaddr_from_sockaddr(sa, (socklen_t)salen, &peer) == 0 &&
            relay_log_allowed(w, &peer, "relay.conn_refused", why, &suppressed))
            log_warn("relay.conn_refused", "peer", netaddr_format(&peer, p), "listener",
                     netaddr_format(&l->addr, a), "reason", why, "suppressed", LOG_INT(suppressed));
        goto fail;
    }
    c = calloc(1, sizeof(*c));
    if (!c || netaddr_from_sockaddr(sa, (socklen_t)salen, &c->peer) != 0)
        goto fail;
    /* one source may not take the worker's descriptors (and with them the
     * whole server's) with idle connections */
    size_t same = 0;
    for (struct relay_conn *o = w->conns; o; o = o->next)
        if (netaddr_same_source(&o->peer, &c->peer))
            same++;
    if (same >= RELAY_CONNS_PER_SOURCE) {
        char p[NETADDR_STRLEN], a[NETADDR_STRLEN];
        uint64_t suppressed = 0;
        const char *why = "too many connections from this source";
        if (relay_log_allowed(w, &c->peer, "relay.conn_refused", why, &suppressed))
            log_warn("relay.conn_refused", "peer", netaddr_format(&c->peer, p), "listener",
                     netaddr_format(&l->addr, a), "reason", why, "suppressed", LOG_INT(suppressed));
        goto fail;
    }
    c->w = w;
    c->local = l->addr;
    c->accepted_ms = relay_now_ms();
    c->transport = l->tls ? RELAY_TLS : RELAY_TCP;
    if (l->tls) {
        pthread_mutex_lock(&w->r->lock);
        ctx = w->r->tls;
        if (ctx)
            SSL_CTX_up_ref(ctx);
        pthread_mutex_unlock(&w->r->lock);
        if (!ctx)
            goto fail;
    }
    /* The worker's own deadline (worker_on_tick) ends a connection without
     * an allocation after RELAY_TLS_TIMEOUT_S, however its bytes trickle;
     * the stream's timeouts are a little longer, a backstop. */
    struct conn_params params = {
        .tls = ctx,
        .client_certs = TLS_CLIENT_CERTS_NONE, /* TURN clients prove themselves otherwise */
        .proto = &relay_stream_protocol,
        .proto_arg = w,
        .listener = -1,
        .handshake_timeout_s = RELAY_TLS_TIMEOUT_S + 5,
        .idle_timeout_s = RELAY_TLS_TIMEOUT_S + 5,
        .read_limit = 4 * 65536,
        /* a client that does not take what its peers send still sends its
         * own media and Refreshes: what it does not take is dropped
         * (stream_write), never a reason to stop reading it */
        .output_pause = CONN_OUTPUT_NEVER_PAUSE,
    };
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    c->conn = conn_accept(w->streams, ++w->stream_seq, fd, &c->peer, &params);
    SSL_CTX_free(ctx);
    if (!c->conn) {
        /* fd closed; unlink what was linked */
        w->nconns--;
        w->conns = c->next;
        if (c->next)
            c->next->prev = NULL;
        free(c);
        return;
    }
    conn_set_data(c->conn, c);
    return;
fail:
    SSL_CTX_free(ctx);
    free(c);
    close(fd);
}

/* --- workers ------------------------------------------------------------------------- */

struct relay_msg {
    struct mbox_msg m;
};

static void worker_end_everything(struct relay_worker *w, const char *reason)
{
    while (w->list)
        relay_alloc_end(w->list, reason);
    for (struct relay_conn *c = w->conns; c; c = c->next)
        relay_conn_close(c, reason);
}

static void worker_on_msg(struct mbox_msg *msg, void *arg)
{
    struct relay_worker *w = arg;
    if (msg->type == RMSG_RELOAD) {
        struct relay_params p = {0};
        pthread_mutex_lock(&w->r->lock);
        int rc = relay_params_copy(&p, &w->r->params);
        pthread_mutex_unlock(&w->r->lock);
        if (rc == 0) {
            relay_params_free(&w->params);
            w->params = p;
        }
    } else if (msg->type == RMSG_STOP) {
        worker_end_everything(w, "shutdown");
        event_base_loopexit(w->base, NULL);
    }
    free(msg);
}

static void worker_on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct relay_worker *w = arg;
    w->now_ms = relay_now_ms();
    relay_worker_expire(w);
    /* The read timeout restarts with every byte; this deadline does not, so
     * a client trickling its handshake (or empty frames) cannot hold a
     * connection without an allocation for long. */
    for (struct relay_conn *c = w->conns; c; c = c->next)
        if (!c->allocated && !c->dead && w->now_ms - c->accepted_ms > RELAY_TLS_TIMEOUT_S * 1000) {
            char p[NETADDR_STRLEN];
            uint64_t suppressed = 0;
            if (relay_log_allowed(w, &c->peer, "relay.conn_deadline",
                                  c->transport == RELAY_TLS ? "tls" : "tcp", &suppressed))
                log_info("relay.conn_deadline", "peer", netaddr_format(&c->peer, p), "transport",
                         c->transport == RELAY_TLS ? "tls" : "tcp", "suppressed",
                         LOG_INT(suppressed));
            relay_conn_close(c, "no allocation within the deadline");
        }
    if (w->index == 0) {
        relay_reservations_sweep(w->r, w->now_ms);
        secrets_poll(w->r);
    }
}

static void *worker_main(void *arg)
{
    struct relay_worker *w = arg;
    event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static void post(struct relay_worker *w, int type)
{
    struct relay_msg *m = calloc(1, sizeof(*m));
    if (!m) {
        if (type == RMSG_STOP)
            event_base_loopbreak(w->base);
        return;
    }
    m->m.type = type;
    mbox_post(w->mbox, &m->m);
}

static int listen_error(char *err, size_t errlen, const char *key, const struct netaddr *a, int e,
                        const char *proto)
{
    char s[NETADDR_STRLEN];
    snprintf(err, errlen, "%s %s: %s (%s)", key, netaddr_format(a, s), strerror(e), proto);
    return -e;
}

static int tcp_listen_socket(const struct netaddr *a, bool reuseport)
{
    int one = 1;
    int fd = socket(netaddr_family(a), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (netaddr_family(a) == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if ((reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) ||
        bind(fd, &a->u.sa, a->len) != 0 || listen(fd, 1024) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/*
 * With several workers every one binds the same addresses with
 * SO_REUSEPORT (the kernel then keeps each client 5-tuple on one socket,
 * hence one worker). SO_REUSEPORT would also let a second server join the
 * group silently, so first a plain bind proves the port is free: it fails
 * when anything, our own group included, holds it.
 */
static int probe_free(const struct netaddr *a, bool udp)
{
    int fd = udp ? udp_socket_bind(a, false, false) : tcp_listen_socket(a, false);
    if (fd < 0)
        return fd;
    close(fd);
    return 0;
}

static int worker_open(struct relay *r, struct relay_worker *w, char *err, size_t errlen)
{
    bool reuse = r->nworkers > 1;

    w->nudp = r->nlisten_udp;
    w->udp = calloc(w->nudp ? w->nudp : 1, sizeof(*w->udp));
    w->ntcp = r->nlisten;
    w->tcp = calloc(w->ntcp ? w->ntcp : 1, sizeof(*w->tcp));
    if (!w->udp || !w->tcp)
        return -ENOMEM;
    for (size_t i = 0; i < w->nudp; i++) {
        struct relay_udp *u = &w->udp[i];
        u->w = w;
        u->fd = -1;
        u->local = r->listen[i];
        if (reuse && w->index == 0) {
            int rc = probe_free(&u->local, true);
            if (rc)
                return listen_error(err, errlen, "relay.listen", &u->local, -rc, "UDP");
        }
        u->fd = udp_socket_bind(&u->local, reuse, true);
        if (u->fd < 0)
            return listen_error(err, errlen, "relay.listen", &u->local, -u->fd, "UDP");
        u->ev = event_new(w->base, u->fd, EV_READ | EV_PERSIST, relay_on_udp, u);
        if (!u->ev || event_add(u->ev, NULL) != 0)
            return -ENOMEM;
    }
    for (size_t i = 0; i < w->ntcp; i++) {
        struct relay_tcp_listener *l = &w->tcp[i];
        l->w = w;
        l->tls = i >= r->nlisten_udp;
        l->addr = r->listen[i];
        const char *key = l->tls ? "relay.tls_listen" : "relay.listen";
        if (reuse && w->index == 0) {
            int rc = probe_free(&l->addr, false);
            if (rc)
                return listen_error(err, errlen, key, &l->addr, -rc, l->tls ? "TLS" : "TCP");
        }
        int fd = tcp_listen_socket(&l->addr, reuse);
        if (fd < 0)
            return listen_error(err, errlen, key, &l->addr, -fd, l->tls ? "TLS" : "TCP");
        l->evl = evconnlistener_new(w->base, tcp_on_accept, l,
                                    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
        if (!l->evl) {
            close(fd);
            return -ENOMEM;
        }
    }
    return 0;
}

static int worker_init(struct relay *r, struct relay_worker *w, unsigned index)
{
    w->r = r;
    w->index = index;
    pthread_mutex_init(&w->list_lock, NULL);
    w->base = event_base_new();
    if (!w->base || hmap_init(&w->allocs, 256) || hmap_init(&w->perms, 256) ||
        hmap_init(&w->chans, 256))
        return -ENOMEM;
    w->mbox = mbox_new(w->base, worker_on_msg, w);
    w->tick = event_new(w->base, -1, EV_PERSIST, worker_on_tick, w);
    w->streams = conn_host_new(w->base);
    w->slots = malloc((size_t)RELAY_BATCH * RELAY_SLOT_SIZE);
    w->unauth = calloc(RELAY_UNAUTH_SLOTS, sizeof(*w->unauth));
    w->unauth_seed = random_u64();
    w->refusals = log_limit_new("relay refusals", 4096, 50);
    if (!w->mbox || !w->tick || !w->streams || !w->slots || !w->unauth || !w->refusals)
        return -ENOMEM;
    struct timeval tv = {1, 0};
    event_add(w->tick, &tv);
    w->txq.fd = -1;
    pthread_mutex_lock(&r->lock);
    int rc = relay_params_copy(&w->params, &r->params);
    pthread_mutex_unlock(&r->lock);
    return rc;
}

static void worker_free(struct relay_worker *w)
{
    if (!w->r)
        return;
    if (w->base)
        worker_end_everything(w, "shutdown");
    mbox_free(w->mbox); /* delivers what is queued: frees the messages */
    for (size_t i = 0; w->udp && i < w->nudp; i++) {
        if (w->udp[i].ev)
            event_free(w->udp[i].ev);
        if (w->udp[i].fd >= 0)
            close(w->udp[i].fd);
    }
    for (size_t i = 0; w->tcp && i < w->ntcp; i++)
        if (w->tcp[i].evl)
            evconnlistener_free(w->tcp[i].evl);
    free(w->udp);
    free(w->tcp);
    if (w->tick)
        event_free(w->tick);
    conn_host_free(w->streams); /* what is left goes now, its clients with it */
    if (w->allocs.buckets)
        hmap_destroy(&w->allocs);
    if (w->perms.buckets)
        hmap_destroy(&w->perms);
    if (w->chans.buckets)
        hmap_destroy(&w->chans);
    if (w->base)
        event_base_free(w->base);
    free(w->slots);
    free(w->unauth);
    log_limit_free(w->refusals);
    relay_params_free(&w->params);
    pthread_mutex_destroy(&w->list_lock);
}

/* --- start, reload, status, stop -------------------------------------------------- */

static int add_own(struct relay *r, const struct netaddr *a)
{
    for (size_t i = 0; i < r->nown; i++)
        if (netaddr_same_ip(&r->own[i], a))
            return 0;
    struct netaddr *v = realloc(r->own, (r->nown + 1) * sizeof(*v));
    if (!v)
        return -ENOMEM;
    r->own = v;
    r->own[r->nown++] = *a;
    return 0;
}

static bool is_wildcard(const struct netaddr *a)
{
    static const uint8_t zero[16];
    if (netaddr_family(a) == AF_INET)
        return a->u.in4.sin_addr.s_addr == 0;
    return memcmp(a->u.in6.sin6_addr.s6_addr, zero, 16) == 0;
}

static int relay_setup(struct relay *r, const struct config *cfg, char *err, size_t errlen)
{
    unsigned first = 0, last = 0;
    char s[NETADDR_STRLEN];

    if (sscanf(cfg->relay.port_range, "%u-%u", &first, &last) != 2 || first < 1024 ||
        first >= last || last > 65535) {
        snprintf(err, errlen, "relay.port_range \"%s\": not FIRST-LAST", cfg->relay.port_range);
        return -EINVAL;
    }
    r->port_first = (uint16_t)first;
    r->port_last = (uint16_t)last;
    r->port_bits = calloc((last - first + 1) / 64 + 1, sizeof(uint64_t));
    if (!r->port_bits)
        return -ENOMEM;

    r->nlisten_udp = cfg->relay.listen.n;
    r->nlisten = cfg->relay.listen.n + cfg->relay.tls_listen.n;
    if (r->nlisten == 0) {
        snprintf(err, errlen, "relay.listen and relay.tls_listen are both empty");
        return -EINVAL;
    }
    r->listen = calloc(r->nlisten, sizeof(*r->listen));
    if (!r->listen)
        return -ENOMEM;
    for (size_t i = 0; i < r->nlisten; i++) {
        r->listen[i] = i < r->nlisten_udp ? cfg->relay.listen.v[i]
                                          : cfg->relay.tls_listen.v[i - r->nlisten_udp];
        /* A relay on a wildcard address would answer from whatever source
         * address routing picks; clients match answers by address. */
        if (is_wildcard(&r->listen[i])) {
            snprintf(err, errlen,
                     "%s %s: the relay needs a specific address (answers must come from the "
                     "address clients used)",
                     i < r->nlisten_udp ? "relay.listen" : "relay.tls_listen",
                     netaddr_format(&r->listen[i], s));
            return -EINVAL;
        }
    }
    if (cfg->relay.relay_address && *cfg->relay.relay_address) {
        if (netaddr_parse_ip(cfg->relay.relay_address, 0, &r->relay_addr) != 0 ||
            is_wildcard(&r->relay_addr)) {
            snprintf(err, errlen, "relay.relay_address \"%s\": not a specific IP address",
                     cfg->relay.relay_address);
            return -EINVAL;
        }
    } else {
        r->relay_addr = r->listen[0];
        netaddr_set_port(&r->relay_addr, 0);
    }
    r->family = netaddr_family(&r->relay_addr);
    if (add_own(r, &r->relay_addr))
        return -ENOMEM;
    for (size_t i = 0; i < r->nlisten; i++)
        if (add_own(r, &r->listen[i]))
            return -ENOMEM;
    for (size_t i = 0; i < sizeof(refused_ranges) / sizeof(refused_ranges[0]); i++)
        if (cidr_parse(refused_ranges[i], &r->refused[r->nrefused]) == 0)
            r->nrefused++;
    if (relay_secrets_path(cfg->state_dir, r->secrets_path, sizeof(r->secrets_path)) != 0) {
        snprintf(err, errlen, "%s: state directory path too long", cfg->state_dir);
        return -ENAMETOOLONG;
    }
    return 0;
}

int relay_start(const struct config *cfg, bool restricted, struct relay **out, char *err,
                size_t errlen)
{
    struct relay *r = calloc(1, sizeof(*r));
    int rc;
    bool created = false;

    if (!r)
        return -ENOMEM;
    pthread_mutex_init(&r->lock, NULL);
    if (hmap_init(&r->users, 64) != 0) {
        rc = -ENOMEM;
        goto fail;
    }
    r->restricted = restricted;
    rc = relay_setup(r, cfg, err, errlen);
    if (rc)
        goto fail;
    rc = params_from_config(cfg, &r->params);
    if (rc)
        goto fail;
    r->cap_resv = RELAY_RESV_MAX;
    r->resv = calloc(r->cap_resv, sizeof(*r->resv));
    if (!r->resv || random_secret(r->nonce_key, sizeof(r->nonce_key)) != 0) {
        rc = -ENOMEM;
        snprintf(err, errlen, "relay: out of memory or randomness");
        goto fail;
    }
    rc = relay_secrets_ensure(r->secrets_path, (int64_t)time(NULL), NULL, &created, err, errlen);
    if (rc == 0)
        rc = relay_secrets_load(r->secrets_path, &r->secrets, &r->stamp, err, errlen);
    if (rc)
        goto fail;
    if (created)
        log_info("relay.secret_created", "path", r->secrets_path);
    r->nworkers = (unsigned)(cfg->relay.workers > 0 ? cfg->relay.workers : 1);
    r->workers = calloc(r->nworkers, sizeof(*r->workers));
    if (!r->workers) {
        rc = -ENOMEM;
        goto fail;
    }
    for (unsigned i = 0; i < r->nworkers; i++) {
        rc = worker_init(r, &r->workers[i], i);
        if (rc == 0)
            rc = worker_open(r, &r->workers[i], err, errlen);
        if (rc) {
            if (rc == -ENOMEM && !*err)
                snprintf(err, errlen, "relay: out of memory");
            goto fail;
        }
    }
    *out = r;
    return 0;
fail:
    relay_stop(r);
    return rc;
}

int relay_run(struct relay *r, SSL_CTX *tls, char *err, size_t errlen)
{
    char s[NETADDR_STRLEN], ports[16];
    if (tls)
        SSL_CTX_up_ref(tls);
    SSL_CTX_free(r->tls);
    r->tls = tls;
    for (unsigned i = 0; i < r->nworkers; i++) {
        int e = pthread_create(&r->workers[i].thread, NULL, worker_main, &r->workers[i]);
        if (e) {
            snprintf(err, errlen, "relay: cannot start a thread: %s", strerror(e));
            return -e;
        }
        r->workers[i].started = true;
    }
    struct strbuf l = STRBUF_INIT;
    for (size_t i = 0; i < r->nlisten; i++)
        strbuf_printf(&l, "%s%s/%s", i ? "," : "", i < r->nlisten_udp ? "udp+tcp" : "tls",
                      netaddr_format(&r->listen[i], s));
    snprintf(ports, sizeof(ports), "%u-%u", r->port_first, r->port_last);
    log_info("relay.started", "listen", strbuf_cstr(&l), "relay_address",
             netaddr_format_ip(&r->relay_addr, s), "ports", ports, "workers", LOG_INT(r->nworkers),
             "secrets", LOG_INT(r->secrets.n), "password_algorithms",
             r->restricted ? "SHA-256 (FIPS: MD5 key refused)" : "SHA-256,MD5");
    strbuf_free(&l);
    return 0;
}

int relay_reload(struct relay *r, const struct config *cfg, SSL_CTX *tls)
{
    struct relay_params p;
    if (!r)
        return 0;
    if (params_from_config(cfg, &p) != 0)
        return -ENOMEM;
    pthread_mutex_lock(&r->lock);
    relay_params_free(&r->params);
    r->params = p;
    if (tls)
        SSL_CTX_up_ref(tls);
    SSL_CTX_free(r->tls);
    r->tls = tls;
    int rc = secrets_reload_locked(r, "reload");
    pthread_mutex_unlock(&r->lock);
    for (unsigned i = 0; i < r->nworkers; i++)
        post(&r->workers[i], RMSG_RELOAD);
    return rc;
}

json_t *relay_status(struct relay *r)
{
    char s[NETADDR_STRLEN];
    json_t *doc = json_object();
    json_t *allocs = json_array();

    if (!r) {
        json_object_set_new(doc, "enabled", json_false());
        json_object_set_new(doc, "allocations", allocs);
        return doc;
    }
    json_t *listen = json_array();
    for (size_t i = 0; i < r->nlisten; i++) {
        char t[NETADDR_STRLEN + 8];
        netaddr_format(&r->listen[i], s);
        if (i < r->nlisten_udp) {
            snprintf(t, sizeof(t), "udp/%s", s);
            json_array_append_new(listen, json_string(t));
            snprintf(t, sizeof(t), "tcp/%s", s);
        } else {
            snprintf(t, sizeof(t), "tls/%s", s);
        }
        json_array_append_new(listen, json_string(t));
    }
    uint64_t now = relay_now_ms();
    int64_t wall = (int64_t)time(NULL);
    for (unsigned i = 0; i < r->nworkers; i++) {
        struct relay_worker *w = &r->workers[i];
        pthread_mutex_lock(&w->list_lock);
        for (struct relay_alloc *a = w->list; a; a = a->next)
            relay_alloc_status(a, now, wall, allocs);
        pthread_mutex_unlock(&w->list_lock);
    }
    char range[32];
    snprintf(range, sizeof(range), "%u-%u", r->port_first, r->port_last);
    pthread_mutex_lock(&r->lock);
    json_t *secrets =
        json_pack("{s:I, s:I}", "count", (json_int_t)r->secrets.n, "current_added",
                  (json_int_t)(r->secrets.n ? r->secrets.v[r->secrets.n - 1].added : 0));
    size_t total = r->total;
    pthread_mutex_unlock(&r->lock);
    json_object_set_new(doc, "enabled", json_true());
    json_object_set_new(doc, "workers", json_integer(r->nworkers));
    json_object_set_new(doc, "relay_address", json_string(netaddr_format_ip(&r->relay_addr, s)));
    json_object_set_new(doc, "port_range", json_string(range));
    json_object_set_new(doc, "listen", listen);
    uint16_t algs[2];
    size_t nalgs = stun_password_algs_offer(r->restricted, algs);
    json_t *pwalgs = json_array();
    for (size_t i = 0; i < nalgs; i++)
        json_array_append_new(pwalgs,
                              json_string(algs[i] == STUN_PASSWORD_SHA256 ? "SHA-256" : "MD5"));
    json_object_set_new(doc, "password_algorithms", pwalgs);
    json_object_set_new(doc, "secrets", secrets);
    json_object_set_new(doc, "allocation_count", json_integer((json_int_t)total));
    json_object_set_new(doc, "allocations", allocs);
    return doc;
}

void relay_totals(struct relay *r, struct relay_totals *out)
{
    memset(out, 0, sizeof(*out));
    for (unsigned i = 0; r && i < r->nworkers; i++) {
        struct relay_worker *w = &r->workers[i];
        pthread_mutex_lock(&w->list_lock);
        out->to_peer_bytes += w->ended_to_peer_bytes;
        out->to_peer_packets += w->ended_to_peer_packets;
        out->from_peer_bytes += w->ended_from_peer_bytes;
        out->from_peer_packets += w->ended_from_peer_packets;
        out->dropped_packets += w->ended_dropped;
        for (struct relay_alloc *a = w->list; a; a = a->next) {
            out->allocations++;
            out->to_peer_bytes += atomic_load_explicit(&a->c.to_peer_bytes, memory_order_relaxed);
            out->to_peer_packets +=
                atomic_load_explicit(&a->c.to_peer_packets, memory_order_relaxed);
            out->from_peer_bytes +=
                atomic_load_explicit(&a->c.from_peer_bytes, memory_order_relaxed);
            out->from_peer_packets +=
                atomic_load_explicit(&a->c.from_peer_packets, memory_order_relaxed);
            out->dropped_packets +=
                atomic_load_explicit(&a->c.dropped_packets, memory_order_relaxed);
        }
        pthread_mutex_unlock(&w->list_lock);
    }
}

void relay_stop(struct relay *r)
{
    if (!r)
        return;
    for (unsigned i = 0; r->workers && i < r->nworkers; i++)
        if (r->workers[i].started)
            post(&r->workers[i], RMSG_STOP);
    for (unsigned i = 0; r->workers && i < r->nworkers; i++)
        if (r->workers[i].started)
            pthread_join(r->workers[i].thread, NULL);
    for (unsigned i = 0; r->workers && i < r->nworkers; i++)
        worker_free(&r->workers[i]);
    free(r->workers);
    relay_reservations_sweep(r, UINT64_MAX);
    free(r->resv);
    if (r->users.buckets) {
        size_t b;
        struct hmap_node *n = hmap_iter_first(&r->users, &b);
        while (n) {
            struct hmap_node *next = hmap_iter_next(&r->users, n, &b);
            free(container_of(n, struct relay_user_count, node));
            n = next;
        }
        hmap_destroy(&r->users);
    }
    relay_params_free(&r->params);
    SSL_CTX_free(r->tls);
    OPENSSL_cleanse(&r->secrets, sizeof(r->secrets));
    OPENSSL_cleanse(r->nonce_key, sizeof(r->nonce_key));
    free(r->port_bits);
    free(r->listen);
    free(r->own);
    pthread_mutex_destroy(&r->lock);
    free(r);
}
