#include "core/worker.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/hmap.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/log_limit.h"
#include "core/mbox.h"
#include "tls/context.h"

/* A peer that stops reading while we keep writing is cut off here rather
 * than allowed to grow our memory without bound... */
#define CONN_OUTPUT_LIMIT (1024u * 1024)
/* ...and long before that, we stop reading what it sends until it has
 * taken our answers: requests keep coming only as fast as answers go. */
#define CONN_OUTPUT_PAUSE (128u * 1024)
/* How long a closing connection may take to flush. */
#define CONN_CLOSE_GRACE_S 5
#define WORKER_ID_SHIFT    48

struct worker;

struct conn {
    struct hmap_node node;
    struct worker *w;
    struct conn_info info;
    struct bufferevent *bev;
    SSL *ssl;             /* owned by bev when bev is set */
    int connect_fd;       /* outgoing, before the socket is connected */
    SSL_CTX *pending_ctx; /* outgoing TLS, until the socket is connected */
    char *sni;
    char *verify_host;
    struct event *connect_ev;
    const struct conn_protocol *proto;
    void *proto_arg;
    void *data;
    struct event *timer; /* handshake / connect / close deadline */
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

struct worker {
    struct worker_pool *pool;
    unsigned index;
    pthread_t thread;
    struct event_base *base;
    struct mbox *mbox;
    struct hmap conns;
    struct event *reap_ev;
    struct conn *reap_list;
    struct event *stop_ev;
    bool stopping;
    struct log_limit *refusals; /* tls.refused: bounded per source and reason */
};

struct worker_pool {
    unsigned n;
    struct worker *workers;
    atomic_uint_fast64_t next_seq;
};

enum wmsg_type {
    WMSG_ADOPT = 1,
    WMSG_CONNECT,
    WMSG_SEND,
    WMSG_CLOSE,
    WMSG_IDLE,
    WMSG_READ_LIMIT,
    WMSG_STOP,
};

struct wmsg {
    struct mbox_msg m;
    uint64_t id;
    int fd;
    struct netaddr addr;
    struct netaddr local;
    bool has_local;
    struct worker_conn_params params;
    char *sni;
    char *verify_host;
    void *data;
    size_t len;
    unsigned seconds;
    char reason[96];
};

/* --- connection objects ------------------------------------------------ */

uint64_t conn_id(const struct conn *c)
{
    return c->info.id;
}

const struct conn_info *conn_info(const struct conn *c)
{
    return &c->info;
}

void conn_set_data(struct conn *c, void *data)
{
    c->data = data;
}

void *conn_get_data(const struct conn *c)
{
    return c->data;
}

struct conn_info *conn_info_dup(const struct conn_info *info)
{
    struct conn_info *d = malloc(sizeof(*d));
    if (!d)
        return NULL;
    *d = *info;
    if (d->peer_cert)
        X509_up_ref(d->peer_cert);
    if (d->peer_chain)
        d->peer_chain = X509_chain_up_ref(d->peer_chain);
    return d;
}

void conn_info_free(struct conn_info *info)
{
    if (!info)
        return;
    X509_free(info->peer_cert);
    sk_X509_pop_free(info->peer_chain, X509_free);
    free(info);
}

static void worker_reap_soon(struct worker *w)
{
    event_active(w->reap_ev, EV_TIMEOUT, 0);
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
    hmap_remove(&c->w->conns, &c->node);
    if (c->bev)
        bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    if (c->timer)
        event_del(c->timer);
    if (c->resume_ev)
        event_del(c->resume_ev);
    if (c->connect_ev)
        event_del(c->connect_ev);
    c->reap_next = c->w->reap_list;
    c->w->reap_list = c;
    worker_reap_soon(c->w);
}

static void conn_free(struct conn *c)
{
    if (c->bev) {
        if (c->ssl && c->open && c->clean) {
            /* libevent 2.1 never sends close_notify itself. */
            SSL_shutdown(c->ssl);
        }
        bufferevent_free(c->bev); /* frees the SSL and closes the socket */
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
    X509_free(c->info.peer_cert);
    sk_X509_pop_free(c->info.peer_chain, X509_free);
    free(c);
}

static void worker_on_reap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct worker *w = arg;
    while (w->reap_list) {
        struct conn *c = w->reap_list;
        w->reap_list = c->reap_next;
        if (c->proto->on_close)
            c->proto->on_close(c, c->reason[0] ? c->reason : "closed", c->proto_arg);
        conn_free(c);
    }
    if (w->stopping && w->conns.count == 0)
        event_base_loopexit(w->base, NULL);
}

int conn_write(struct conn *c, const void *data, size_t len)
{
    if (c->dead || c->closing || !c->bev)
        return -EPIPE;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (evbuffer_get_length(out) + len > CONN_OUTPUT_LIMIT) {
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

/* A refused handshake: anyone can cause them at will, so at most one line
 * a second per source and reason, with the count held back since. */
static void conn_log_refused(struct conn *c, const char *subject, const char *why)
{
    uint8_t src[16];
    netaddr_source_key(&c->info.peer, src);
    uint64_t key = hash_bytes(src, sizeof(src)) ^ (hash_bytes(why, strlen(why)) * 31);
    uint64_t suppressed = 0;
    if (!log_limit_allow(c->w->refusals, clock_now_ms(clock_system()), key, &suppressed))
        return;
    char peer[NETADDR_STRLEN];
    log_info("tls.refused", "peer", netaddr_format(&c->info.peer, peer), "subject", subject,
             "reason", why, "suppressed", LOG_INT(suppressed));
}

static void conn_on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct conn *c = arg;

    if (c->closing) {
        conn_kill(c, NULL, false);
    } else if (!c->open) {
        if (c->info.tls && !c->info.outgoing)
            conn_log_refused(c, "", "handshake timeout");
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

/* Reads what OpenSSL and the kernel said about a failure, for the log. */
static void conn_describe_error(struct conn *c, short what, char *buf, size_t cap)
{
    /* The alert or verification error the TLS layer recorded says most;
     * libevent's own error list often holds only SSL_get_error codes. */
    unsigned long errs[8], e;
    size_t n = 0;
    while (c->bev && c->ssl && (e = bufferevent_get_openssl_error(c->bev)) != 0)
        if (n < sizeof(errs) / sizeof(errs[0]))
            errs[n++] = e;
    if (c->ssl && !c->open && tls_session_failure(c->ssl, errs, n, buf, cap))
        return;
    const char *reason = NULL;
    for (size_t i = 0; i < n; i++)
        if (ERR_reason_error_string(errs[i]))
            reason = ERR_reason_error_string(errs[i]);
    if (reason) {
        snprintf(buf, cap, "%s", reason);
        return;
    }
    int err = EVUTIL_SOCKET_ERROR();
    if ((what & BEV_EVENT_EOF) || err == 0)
        snprintf(buf, cap, c->open ? "peer closed" : "peer closed during handshake");
    else
        snprintf(buf, cap, "%s", evutil_socket_error_to_string(err));
}

static void conn_fill_tls_info(struct conn *c)
{
    SSL *ssl = c->ssl;
    snprintf(c->info.tls_version, sizeof(c->info.tls_version), "%s", SSL_get_version(ssl));
    const SSL_CIPHER *cipher = SSL_get_current_cipher(ssl);
    snprintf(c->info.tls_cipher, sizeof(c->info.tls_cipher), "%s",
             cipher ? SSL_CIPHER_get_name(cipher) : "");
    c->info.tls_resumed = SSL_session_reused(ssl) == 1;
    c->info.peer_cert = SSL_get1_peer_certificate(ssl);
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
    c->info.peer_chain = chain ? X509_chain_up_ref(chain) : NULL;
    c->info.peer_cert_verified =
        c->info.peer_cert != NULL && SSL_get_verify_result(ssl) == X509_V_OK;
    c->info.peer_crl_missing = tls_session_crl_missing(ssl);
}

static void conn_on_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    if (c->dead || c->closing || c->paused_output)
        return;
    if (evbuffer_get_length(bufferevent_get_output(bev)) > CONN_OUTPUT_PAUSE) {
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
        c->resume_ev = evtimer_new(c->w->base, conn_on_resume, c);
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
    if (c->ssl)
        conn_fill_tls_info(c);
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
    conn_describe_error(c, what, why, sizeof(why));
    if (!c->open && c->info.tls) {
        const char *subject = c->ssl ? tls_session_failed_subject(c->ssl) : "";
        if (c->info.outgoing)
            log_warn("tls.connect_failed", "peer", netaddr_format(&c->info.peer, peer), "host",
                     c->verify_host ? c->verify_host : (c->sni ? c->sni : ""), "subject", subject,
                     "reason", why);
        else
            conn_log_refused(c, subject, why);
    }
    conn_kill(c, why, (what & BEV_EVENT_EOF) != 0);
}

static struct conn *conn_new(struct worker *w, uint64_t id, const struct worker_conn_params *p)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->w = w;
    c->info.id = id;
    c->info.listener = p->listener;
    c->info.tls = p->tls != NULL;
    c->proto = p->proto;
    c->proto_arg = p->proto_arg;
    c->idle_s = p->idle_timeout_s;
    c->read_limit = p->read_limit;
    c->connect_fd = -1;
    c->timer = evtimer_new(w->base, conn_on_timer, c);
    if (!c->timer) {
        free(c);
        return NULL;
    }
    return c;
}

/* SIP messages are small and each one waits for an answer: Nagle's
 * algorithm meeting delayed ACKs would hold them back tens of ms. */
static void conn_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Wires a connected socket into a bufferevent (TLS or plain). */
static int conn_attach(struct conn *c, int fd, SSL_CTX *tls, const char *sni,
                       const char *verify_host, bool accepting, int client_certs)
{
    const int opts = BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS;
    conn_nodelay(fd);
    if (tls) {
        c->ssl = SSL_new(tls);
        if (!c->ssl)
            return -ENOMEM;
        if (accepting)
            tls_session_client_certs(c->ssl, (enum tls_client_certs)client_certs);
        if (!accepting && sni)
            SSL_set_tlsext_host_name(c->ssl, sni);
        if (!accepting && verify_host) {
            /* the peer's certificate must name the host we meant to reach;
             * if that cannot be arranged, the connection is not made */
            SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            if (SSL_set1_host(c->ssl, verify_host) != 1) {
                SSL_free(c->ssl);
                c->ssl = NULL;
                return -EINVAL;
            }
        }
        c->bev = bufferevent_openssl_socket_new(
            c->w->base, fd, c->ssl,
            accepting ? BUFFEREVENT_SSL_ACCEPTING : BUFFEREVENT_SSL_CONNECTING, opts);
        if (!c->bev) {
            SSL_free(c->ssl);
            c->ssl = NULL;
            return -ENOMEM;
        }
        /* A peer that just closes the socket without close_notify is
         * normal for SIP (framing is by Content-Length). */
        bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    } else {
        c->bev = bufferevent_socket_new(c->w->base, fd, opts);
        if (!c->bev)
            return -ENOMEM;
    }
    bufferevent_setcb(c->bev, conn_on_read, conn_on_flushed, conn_on_event, c);
    if (c->read_limit)
        bufferevent_setwatermark(c->bev, EV_READ, 0, c->read_limit);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    return 0;
}

static void worker_adopt(struct worker *w, struct wmsg *m)
{
    struct conn *c = conn_new(w, m->id, &m->params);
    if (!c) {
        close(m->fd);
        goto out;
    }
    c->info.peer = m->addr;
    struct netaddr local;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(m->fd, (struct sockaddr *)&ss, &sl) == 0 &&
        netaddr_from_sockaddr((struct sockaddr *)&ss, sl, &local) == 0)
        c->info.local = local;
    hmap_insert(&w->conns, &c->node, hash_u64(c->info.id));
    if (conn_attach(c, m->fd, m->params.tls, NULL, NULL, true, m->params.client_certs) != 0) {
        close(m->fd);
        conn_kill(c, "out of memory", false);
        goto out;
    }
    if (m->params.tls) {
        struct timeval tv = {(time_t)m->params.handshake_timeout_s, 0};
        event_add(c->timer, &tv);
    } else {
        conn_opened(c);
    }
out:
    if (m->params.tls)
        SSL_CTX_free(m->params.tls);
}

static void conn_on_connect_ready(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    int err = 0;
    socklen_t len = sizeof(err);
    char peer[NETADDR_STRLEN];

    if (what & EV_TIMEOUT) {
        err = ETIMEDOUT;
    } else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
        err = errno;
    }
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
    if (conn_attach(c, fd, c->pending_ctx, c->sni, c->verify_host, false, 0) != 0) {
        close(fd);
        conn_kill(c, "out of memory", false);
        return;
    }
    if (c->pending_ctx) {
        struct timeval tv = {10, 0};
        event_add(c->timer, &tv);
    } else {
        conn_opened(c);
    }
}

static void worker_connect(struct worker *w, struct wmsg *m)
{
    struct conn *c = conn_new(w, m->id, &m->params);
    char peer[NETADDR_STRLEN];
    int fd = -1;

    if (!c)
        goto out;
    c->info.outgoing = true;
    c->info.listener = -1;
    c->info.peer = m->addr;
    hmap_insert(&w->conns, &c->node, hash_u64(c->info.id));
    /* the reference taken by worker_pool_connect passes to the connection */
    c->pending_ctx = m->params.tls;
    m->params.tls = NULL;
    c->sni = m->sni;
    m->sni = NULL;
    c->verify_host = m->verify_host;
    m->verify_host = NULL;

    fd = socket(netaddr_family(&m->addr), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail_errno;
    if (m->has_local) {
        struct netaddr local = m->local;
        netaddr_set_port(&local, 0);
        if (bind(fd, &local.u.sa, local.len) != 0)
            goto fail_errno;
    }
    if (connect(fd, &m->addr.u.sa, m->addr.len) != 0 && errno != EINPROGRESS)
        goto fail_errno;
    c->connect_fd = fd;
    c->connect_ev = event_new(w->base, fd, EV_WRITE, conn_on_connect_ready, c);
    struct timeval tv = {
        (time_t)(m->params.handshake_timeout_s ? m->params.handshake_timeout_s : 10), 0};
    if (!c->connect_ev || event_add(c->connect_ev, &tv) != 0) {
        conn_kill(c, "out of memory", false);
        goto out;
    }
    goto out;

fail_errno : {
    char why[128];
    snprintf(why, sizeof(why), "connect: %s", strerror(errno));
    log_warn("conn.connect_failed", "peer", netaddr_format(&m->addr, peer), "reason", why);
    if (fd >= 0)
        close(fd);
    conn_kill(c, why, false);
}
out:
    SSL_CTX_free(m->params.tls); /* NULL unless the connection was not made */
}

static struct conn *worker_find(struct worker *w, uint64_t id)
{
    uint64_t h = hash_u64(id);
    for (struct hmap_node *n = hmap_first(&w->conns, h); n; n = hmap_next(n, h)) {
        struct conn *c = container_of(n, struct conn, node);
        if (c->info.id == id)
            return c;
    }
    return NULL;
}

static void worker_on_stop_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct worker *w = arg;
    size_t bucket;
    struct hmap_node *n = hmap_iter_first(&w->conns, &bucket);
    while (n) {
        struct hmap_node *next = hmap_iter_next(&w->conns, n, &bucket);
        conn_kill(container_of(n, struct conn, node), "server shutting down", false);
        n = next;
    }
    event_base_loopexit(w->base, NULL);
}

static void worker_stop(struct worker *w, unsigned grace_ms)
{
    w->stopping = true;
    size_t bucket;
    struct hmap_node *n = hmap_iter_first(&w->conns, &bucket);
    while (n) {
        struct hmap_node *next = hmap_iter_next(&w->conns, n, &bucket);
        conn_close(container_of(n, struct conn, node), "server shutting down");
        n = next;
    }
    struct timeval tv = {grace_ms / 1000, (grace_ms % 1000) * 1000};
    w->stop_ev = evtimer_new(w->base, worker_on_stop_deadline, w);
    if (w->stop_ev)
        event_add(w->stop_ev, &tv);
    worker_reap_soon(w);
}

static void worker_set_read_limit(struct worker *w, size_t limit);

static void worker_on_msg(struct mbox_msg *msg, void *arg)
{
    struct worker *w = arg;
    struct wmsg *m = (struct wmsg *)msg;
    struct conn *c;

    switch (m->m.type) {
    case WMSG_ADOPT:
        worker_adopt(w, m);
        break;
    case WMSG_CONNECT:
        worker_connect(w, m);
        break;
    case WMSG_SEND:
        c = worker_find(w, m->id);
        if (c)
            conn_write(c, m->data, m->len);
        break;
    case WMSG_CLOSE:
        c = worker_find(w, m->id);
        if (c)
            conn_close(c, m->reason);
        break;
    case WMSG_IDLE:
        c = worker_find(w, m->id);
        if (c)
            conn_set_idle_timeout(c, m->seconds);
        break;
    case WMSG_READ_LIMIT:
        worker_set_read_limit(w, m->len);
        break;
    case WMSG_STOP:
        worker_stop(w, m->seconds);
        break;
    }
    free(m->data);
    free(m->sni);
    free(m->verify_host);
    free(m);
}

/* A new read limit for every connection that has one (reload). */
static void worker_set_read_limit(struct worker *w, size_t limit)
{
    size_t bucket;
    for (struct hmap_node *n = w->conns.count ? hmap_iter_first(&w->conns, &bucket) : NULL; n;
         n = hmap_iter_next(&w->conns, n, &bucket)) {
        struct conn *c = container_of(n, struct conn, node);
        if (!c->read_limit)
            continue;
        c->read_limit = limit;
        if (!c->bev)
            continue;
        bufferevent_setwatermark(c->bev, EV_READ, 0, limit);
        /* a lower limit under what is buffered stops reading with no read
         * callback to come: let the transport look again (and answer 513) */
        if (evbuffer_get_length(bufferevent_get_input(c->bev)) >= limit)
            conn_defer_read(c, 0);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
    /* Anything left (a stop deadline that cut flushing short) goes now. */
    worker_on_reap(-1, 0, w);
    return NULL;
}

/* --- the pool ----------------------------------------------------------- */

struct worker_pool *worker_pool_new(unsigned n, char *err, size_t errlen)
{
    struct worker_pool *pool = calloc(1, sizeof(*pool));
    if (!pool || n == 0)
        goto nomem;
    pool->workers = calloc(n, sizeof(*pool->workers));
    if (!pool->workers)
        goto nomem;
    for (unsigned i = 0; i < n; i++) {
        struct worker *w = &pool->workers[i];
        w->pool = pool;
        w->index = i;
        w->base = event_base_new();
        if (!w->base || hmap_init(&w->conns, 1024) != 0)
            goto nomem;
        w->mbox = mbox_new(w->base, worker_on_msg, w);
        w->reap_ev = event_new(w->base, -1, 0, worker_on_reap, w);
        w->refusals = log_limit_new("tls.refused", 4096, 50);
        if (!w->mbox || !w->reap_ev || !w->refusals)
            goto nomem;
        pool->n++;
    }
    for (unsigned i = 0; i < n; i++) {
        int rc = pthread_create(&pool->workers[i].thread, NULL, worker_main, &pool->workers[i]);
        if (rc) {
            snprintf(err, errlen, "cannot start worker thread: %s", strerror(rc));
            /* stop the i threads that run, then free all n workers (each
             * has its base and mailbox, started or not) */
            pool->n = i;
            worker_pool_stop(pool, 0);
            pool->n = n;
            worker_pool_free(pool);
            return NULL;
        }
    }
    return pool;
nomem:
    snprintf(err, errlen, "out of memory creating %u workers", n);
    if (pool) {
        for (unsigned i = 0; pool->workers && i < n; i++) {
            struct worker *w = &pool->workers[i];
            if (w->reap_ev)
                event_free(w->reap_ev);
            mbox_free(w->mbox);
            log_limit_free(w->refusals);
            if (w->conns.buckets)
                hmap_destroy(&w->conns);
            if (w->base)
                event_base_free(w->base);
        }
        free(pool->workers);
        free(pool);
    }
    return NULL;
}

unsigned worker_pool_size(const struct worker_pool *pool)
{
    return pool->n;
}

uint64_t worker_pool_new_id(struct worker_pool *pool)
{
    uint64_t seq = atomic_fetch_add(&pool->next_seq, 1) + 1;
    uint64_t w = seq % pool->n;
    return (w << WORKER_ID_SHIFT) | (seq & ((1ULL << WORKER_ID_SHIFT) - 1));
}

static struct worker *worker_for(struct worker_pool *pool, uint64_t id)
{
    uint64_t w = id >> WORKER_ID_SHIFT;
    return w < pool->n ? &pool->workers[w] : NULL;
}

static struct wmsg *wmsg_new(int type, uint64_t id)
{
    struct wmsg *m = calloc(1, sizeof(*m));
    if (m) {
        m->m.type = type;
        m->id = id;
        m->fd = -1;
    }
    return m;
}

void worker_pool_adopt(struct worker_pool *pool, uint64_t id, int fd, const struct netaddr *peer,
                       const struct worker_conn_params *params)
{
    struct worker *w = worker_for(pool, id);
    struct wmsg *m = w ? wmsg_new(WMSG_ADOPT, id) : NULL;
    if (!m) {
        close(fd);
        return;
    }
    m->fd = fd;
    m->addr = *peer;
    m->params = *params;
    if (params->tls)
        SSL_CTX_up_ref(params->tls);
    mbox_post(w->mbox, &m->m);
}

void worker_pool_connect(struct worker_pool *pool, uint64_t id, const struct netaddr *addr,
                         const struct netaddr *local, const struct worker_conn_params *params)
{
    struct worker *w = worker_for(pool, id);
    struct wmsg *m = w ? wmsg_new(WMSG_CONNECT, id) : NULL;
    if (!m)
        return;
    m->addr = *addr;
    if (local) {
        m->local = *local;
        m->has_local = true;
    }
    m->params = *params;
    m->params.sni = NULL;
    m->params.verify_host = NULL;
    if (params->sni)
        m->sni = strdup(params->sni);
    if (params->verify_host)
        m->verify_host = strdup(params->verify_host);
    if (params->tls)
        SSL_CTX_up_ref(params->tls);
    mbox_post(w->mbox, &m->m);
}

void worker_pool_send(struct worker_pool *pool, uint64_t id, void *data, size_t len)
{
    struct worker *w = worker_for(pool, id);
    struct wmsg *m = w ? wmsg_new(WMSG_SEND, id) : NULL;
    if (!m) {
        free(data);
        return;
    }
    m->data = data;
    m->len = len;
    mbox_post(w->mbox, &m->m);
}

void worker_pool_close(struct worker_pool *pool, uint64_t id, const char *reason)
{
    struct worker *w = worker_for(pool, id);
    struct wmsg *m = w ? wmsg_new(WMSG_CLOSE, id) : NULL;
    if (!m)
        return;
    snprintf(m->reason, sizeof(m->reason), "%s", reason ? reason : "closed");
    mbox_post(w->mbox, &m->m);
}

void worker_pool_set_idle(struct worker_pool *pool, uint64_t id, unsigned seconds)
{
    struct worker *w = worker_for(pool, id);
    struct wmsg *m = w ? wmsg_new(WMSG_IDLE, id) : NULL;
    if (!m)
        return;
    m->seconds = seconds;
    mbox_post(w->mbox, &m->m);
}

void worker_pool_set_read_limit(struct worker_pool *pool, size_t limit)
{
    for (unsigned i = 0; i < pool->n; i++) {
        struct wmsg *m = wmsg_new(WMSG_READ_LIMIT, 0);
        if (!m)
            continue;
        m->len = limit;
        mbox_post(pool->workers[i].mbox, &m->m);
    }
}

void worker_pool_stop(struct worker_pool *pool, unsigned grace_ms)
{
    for (unsigned i = 0; i < pool->n; i++) {
        struct wmsg *m = wmsg_new(WMSG_STOP, 0);
        if (!m) {
            event_base_loopbreak(pool->workers[i].base);
            continue;
        }
        m->seconds = grace_ms;
        mbox_post(pool->workers[i].mbox, &m->m);
    }
    for (unsigned i = 0; i < pool->n; i++)
        pthread_join(pool->workers[i].thread, NULL);
}

void worker_pool_free(struct worker_pool *pool)
{
    if (!pool)
        return;
    for (unsigned i = 0; i < pool->n; i++) {
        struct worker *w = &pool->workers[i];
        mbox_free(w->mbox);
        /* anything adopted after the stop is closed here */
        size_t bucket;
        struct hmap_node *n = w->conns.count ? hmap_iter_first(&w->conns, &bucket) : NULL;
        while (n) {
            struct hmap_node *next = hmap_iter_next(&w->conns, n, &bucket);
            conn_kill(container_of(n, struct conn, node), "server shutting down", false);
            n = next;
        }
        worker_on_reap(-1, 0, w);
        if (w->stop_ev)
            event_free(w->stop_ev);
        event_free(w->reap_ev);
        hmap_destroy(&w->conns);
        event_base_free(w->base);
        log_limit_free(w->refusals);
    }
    free(pool->workers);
    free(pool);
}
