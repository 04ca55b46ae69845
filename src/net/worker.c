#include "net/worker.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/mbox.h"

#define WORKER_ID_SHIFT 48

struct worker {
    struct worker_pool *pool;
    unsigned index;
    pthread_t thread;
    struct event_base *base;
    struct mbox *mbox;
    struct conn_host *conns;
    struct event *stop_ev;
    bool stopping;
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
    struct conn_params params; /* tls: a reference of the message's own */
    char *sni;
    char *verify_host;
    void *data;
    size_t len;
    unsigned seconds;
    char reason[96];
};

/* A stopping worker ends its loop once its last connection is reaped. */
static void worker_on_reaped(void *arg)
{
    struct worker *w = arg;
    if (w->stopping && conn_host_count(w->conns) == 0)
        event_base_loopexit(w->base, NULL);
}

static void worker_on_stop_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct worker *w = arg;
    conn_host_kill_all(w->conns, "server shutting down");
    event_base_loopexit(w->base, NULL);
}

static void worker_stop(struct worker *w, unsigned grace_ms)
{
    w->stopping = true;
    conn_host_close_all(w->conns, "server shutting down");
    struct timeval tv = {grace_ms / 1000, (grace_ms % 1000) * 1000};
    w->stop_ev = evtimer_new(w->base, worker_on_stop_deadline, w);
    if (w->stop_ev)
        event_add(w->stop_ev, &tv);
    worker_on_reaped(w);
}

/* A new read limit for every connection of a protocol that has one
 * (reload). */
static void worker_read_limit_one(struct conn *c, void *arg)
{
    const struct wmsg *m = arg;
    if (conn_read_limit(c) && conn_get_protocol(c) == m->params.proto)
        conn_set_read_limit(c, m->len);
}

static void worker_on_msg(struct mbox_msg *msg, void *arg)
{
    struct worker *w = arg;
    struct wmsg *m = (struct wmsg *)msg;
    struct conn *c;

    switch (m->m.type) {
    case WMSG_ADOPT:
        conn_accept(w->conns, m->id, m->fd, &m->addr, &m->params);
        break;
    case WMSG_CONNECT:
        m->params.sni = m->sni;
        m->params.verify_host = m->verify_host;
        conn_connect(w->conns, m->id, &m->addr, m->has_local ? &m->local : NULL, &m->params);
        break;
    case WMSG_SEND:
        c = conn_host_find(w->conns, m->id);
        if (c)
            conn_write(c, m->data, m->len);
        break;
    case WMSG_CLOSE:
        c = conn_host_find(w->conns, m->id);
        if (c)
            conn_close(c, m->reason);
        break;
    case WMSG_IDLE:
        c = conn_host_find(w->conns, m->id);
        if (c)
            conn_set_idle_timeout(c, m->seconds);
        break;
    case WMSG_READ_LIMIT:
        conn_host_foreach(w->conns, worker_read_limit_one, m);
        break;
    case WMSG_STOP:
        worker_stop(w, m->seconds);
        break;
    }
    SSL_CTX_free(m->params.tls);
    free(m->data);
    free(m->sni);
    free(m->verify_host);
    free(m);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
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
        if (!w->base || !(w->conns = conn_host_new(w->base)))
            goto nomem;
        conn_host_on_reaped(w->conns, worker_on_reaped, w);
        w->mbox = mbox_new(w->base, worker_on_msg, w);
        if (!w->mbox)
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
            mbox_free(w->mbox);
            conn_host_free(w->conns);
            if (w->base)
                event_base_free(w->base);
        }
        free(pool->workers);
        free(pool);
    }
    return NULL;
}

void worker_pool_tls_failures(const struct worker_pool *pool, uint64_t out[CONN_TLS_FAIL_COUNT_])
{
    for (size_t i = 0; i < CONN_TLS_FAIL_COUNT_; i++)
        out[i] = 0;
    for (unsigned i = 0; pool && i < pool->n; i++)
        if (pool->workers[i].conns)
            conn_host_tls_failures(pool->workers[i].conns, out);
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
                       const struct conn_params *params)
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
                         const struct netaddr *local, const struct conn_params *params)
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

void worker_pool_set_read_limit(struct worker_pool *pool, const struct conn_protocol *proto,
                                size_t limit)
{
    for (unsigned i = 0; i < pool->n; i++) {
        struct wmsg *m = wmsg_new(WMSG_READ_LIMIT, 0);
        if (!m)
            continue;
        m->len = limit;
        m->params.proto = proto;
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
        /* what is still queued (adopted sockets, say) is handled, then
         * anything left is cut off, its on_close run */
        mbox_free(w->mbox);
        conn_host_on_reaped(w->conns, NULL, NULL);
        conn_host_free(w->conns);
        if (w->stop_ev)
            event_free(w->stop_ev);
        event_base_free(w->base);
    }
    free(pool->workers);
    free(pool);
}
