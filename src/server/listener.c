/*
 * Listeners and the core's connection table: the accept path applies the
 * connection limits and the internal-network rule for plain TCP before a
 * connection is handed to a worker.
 */
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/log_limit.h"
#include "server/runtime.h"
#include "tls/context.h"

struct source_count {
    struct hmap_node node;
    struct netaddr addr; /* port zeroed */
    size_t n;
};

static uint64_t source_hash(const struct netaddr *a)
{
    uint8_t key[16];
    netaddr_source_key(a, key);
    return hash_bytes(key, sizeof(key));
}

static struct source_count *source_find(struct runtime *rt, const struct netaddr *a, uint64_t h)
{
    for (struct hmap_node *n = hmap_first(&rt->sources, h); n; n = hmap_next(n, h)) {
        struct source_count *s = container_of(n, struct source_count, node);
        if (netaddr_same_source(&s->addr, a))
            return s;
    }
    return NULL;
}

static void source_release(struct runtime *rt, const struct netaddr *a)
{
    uint64_t h = source_hash(a);
    struct source_count *s = source_find(rt, a, h);
    if (s && --s->n == 0) {
        hmap_remove(&rt->sources, &s->node);
        free(s);
    }
}

static void untrusted_unlink(struct runtime *rt, struct core_conn *cc)
{
    if (cc->older)
        cc->older->newer = cc->newer;
    else if (rt->untrusted_oldest == cc)
        rt->untrusted_oldest = cc->newer;
    if (cc->newer)
        cc->newer->older = cc->older;
    else if (rt->untrusted_newest == cc)
        rt->untrusted_newest = cc->older;
    cc->older = cc->newer = NULL;
}

static void untrusted_append(struct runtime *rt, struct core_conn *cc)
{
    cc->older = rt->untrusted_newest;
    cc->newer = NULL;
    if (rt->untrusted_newest)
        rt->untrusted_newest->newer = cc;
    else
        rt->untrusted_oldest = cc;
    rt->untrusted_newest = cc;
}

void runtime_conn_trust(struct runtime *rt, uint64_t id)
{
    struct core_conn *cc = runtime_conn_find(rt, id);
    if (!cc || cc->trusted)
        return;
    cc->trusted = true;
    if (!cc->evicted)
        untrusted_unlink(rt, cc);
}

/* The table is full: the oldest connection that never authenticated makes
 * way (it is closed; the new one is accepted). false when every
 * connection is trusted: the new one is refused then. */
static bool listener_evict_oldest(struct runtime *rt, const struct netaddr *newcomer)
{
    struct core_conn *victim = rt->untrusted_oldest;
    if (!victim)
        return false;
    untrusted_unlink(rt, victim);
    victim->evicted = true;
    rt->conns_evicted++;
    worker_pool_close(rt->workers, victim->id,
                      "evicted: limits.connections_total reached; the oldest connection that "
                      "had not authenticated made way");
    /* at most one line a second (the accept path's limiter), with the count */
    uint8_t key[16];
    netaddr_source_key(newcomer, key);
    uint64_t suppressed = 0;
    if (log_limit_allow(rt->refuse_log, clock_now_ms(timer_heap_clock(rt->timers)),
                        hash_bytes("conn.evicted", 12), &suppressed)) {
        char v[NETADDR_STRLEN], n[NETADDR_STRLEN];
        log_warn("conn.evicted", "peer", netaddr_format(&victim->peer, v), "for",
                 netaddr_format(newcomer, n), "reason",
                 "limits.connections_total reached; the oldest connection that had not "
                 "authenticated made way",
                 "evicted_total", LOG_INT(rt->conns_evicted), "suppressed", LOG_INT(suppressed));
    }
    return true;
}

static bool listener_source_allowed(struct runtime *rt, const struct netaddr *peer)
{
    const struct config_cidr_list *nets = &rt->cfg->sip.internal_networks;
    for (size_t i = 0; i < nets->n; i++)
        if (cidr_contains(&nets->v[i], peer))
            return true;
    return false;
}

/* Refused at accept: anyone can cause that at will, so at most one line a
 * second per source and reason, with the count held back since. */
static void listener_refuse(int fd, const struct listener *l, const struct netaddr *peer,
                            const char *reason)
{
    close(fd);
    uint8_t src[16];
    netaddr_source_key(peer, src);
    uint64_t suppressed = 0;
    if (!log_limit_allow(l->rt->refuse_log, clock_now_ms(timer_heap_clock(l->rt->timers)),
                         hash_bytes(src, sizeof(src)) ^ (hash_bytes(reason, strlen(reason)) * 31),
                         &suppressed))
        return;
    char p[NETADDR_STRLEN], a[NETADDR_STRLEN];
    log_warn("conn.refused", "peer", netaddr_format(peer, p), "listener",
             netaddr_format(&l->addr, a), "transport", l->tls ? "tls" : "tcp", "reason", reason,
             "suppressed", LOG_INT(suppressed));
}

static void listener_on_accept(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa,
                               int salen, void *arg)
{
    (void)evl;
    struct listener *l = arg;
    struct runtime *rt = l->rt;
    struct netaddr peer;

    if (netaddr_from_sockaddr(sa, (socklen_t)salen, &peer) != 0) {
        close(fd);
        return;
    }
    /* Plain TCP exists only for the internal networks; anyone else is cut
     * off before a byte is read. */
    if (l->kind == LISTENER_TCP && !listener_source_allowed(rt, &peer)) {
        listener_refuse(fd, l, &peer, "source not in sip.internal_networks");
        return;
    }
    if (l->kind == LISTENER_TRUNK_TCP &&
        (!rt->proxy || !proxy_trunk_source_allowed(rt->proxy, &peer))) {
        listener_refuse(fd, l, &peer, "source is no TCP trunk's address");
        return;
    }
    uint64_t h = source_hash(&peer);
    struct source_count *src = source_find(rt, &peer, h);
    if (src && src->n >= (size_t)rt->cfg->limits.connections_per_source) {
        listener_refuse(fd, l, &peer, "limits.connections_per_source reached");
        return;
    }
    /* Connections being evicted still count until their close arrives;
     * each newcomer past the limit evicts one more. */
    if (rt->nconns >= (size_t)rt->cfg->limits.connections_total &&
        !listener_evict_oldest(rt, &peer)) {
        listener_refuse(fd, l, &peer, "limits.connections_total reached");
        return;
    }
    struct core_conn *cc = calloc(1, sizeof(*cc));
    if (!src) {
        src = calloc(1, sizeof(*src));
        if (src) {
            src->addr = peer;
            netaddr_set_port(&src->addr, 0);
            hmap_insert(&rt->sources, &src->node, h);
        }
    }
    if (!cc || !src) {
        free(cc);
        close(fd);
        return;
    }
    src->n++;
    cc->id = worker_pool_new_id(rt->workers);
    cc->listener = l->index;
    cc->tls = l->tls;
    cc->peer = peer;
    cc->opened = time(NULL);
    hmap_insert(&rt->conns, &cc->node, hash_u64(cc->id));
    rt->nconns++;
    /* a TCP trunk's gateway is known by its address already */
    cc->trusted = l->kind == LISTENER_TRUNK_TCP;
    if (!cc->trusted)
        untrusted_append(rt, cc);

    char p[NETADDR_STRLEN];
    log_debug("conn.accepted", "conn", LOG_INT(cc->id), "peer", netaddr_format(&peer, p),
              "transport",
              l->kind == LISTENER_HTTPS ? "https"
              : l->tls                  ? "tls"
                                        : "tcp");
    if (l->kind == LISTENER_HTTPS) {
        /* No CertificateRequest: a browser would show a certificate picker. */
        const struct config *cfg = rt->cfg;
        struct conn_params hp = {
            .tls = rt->tls,
            .proto = &http_transport_protocol,
            .proto_arg = &rt->http_transport,
            .listener = l->index,
            .client_certs = TLS_CLIENT_CERTS_NONE,
            .handshake_timeout_s = (unsigned)cfg->tls.handshake_timeout,
            .idle_timeout_s = (unsigned)cfg->https.keepalive_timeout,
            .read_limit = (size_t)cfg->https.max_header_size + 65536,
            /* a content download is written whole */
            .output_limit = (size_t)cfg->https.content_max_file + (1u << 20),
        };
        worker_pool_adopt(rt->workers, cc->id, fd, &peer, &hp);
        return;
    }
    enum tls_client_certs certs = TLS_CLIENT_CERTS_REQUIRE;
    if (l->kind == LISTENER_TLS && tls_client_certs_parse(rt->cfg->sip.client_certificates, &certs))
        certs = TLS_CLIENT_CERTS_NONE;
    struct conn_params params = {
        .tls = l->tls ? rt->tls : NULL,
        .proto = &sip_transport_protocol,
        .proto_arg = &rt->transport,
        .listener = l->index,
        .client_certs = (int)certs,
        .handshake_timeout_s = (unsigned)rt->cfg->tls.handshake_timeout,
        .idle_timeout_s = (unsigned)rt->cfg->sip.idle_timeout,
        .read_limit = runtime_read_limit(rt->cfg),
    };
    worker_pool_adopt(rt->workers, cc->id, fd, &peer, &params);
}

static void listener_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    evconnlistener_enable(arg);
}

static void listener_on_error(struct evconnlistener *evl, void *arg)
{
    struct listener *l = arg;
    char a[NETADDR_STRLEN];
    int err = EVUTIL_SOCKET_ERROR();
    log_error("listener.error", "listener", netaddr_format(&l->addr, a), "reason",
              evutil_socket_error_to_string(err));
    /* EMFILE and the like: pause briefly rather than spin */
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        evconnlistener_disable(evl);
        struct timeval tv = {1, 0};
        event_base_once(l->rt->base, -1, EV_TIMEOUT, listener_resume, evl, &tv);
    }
}

static int listener_open_one(struct runtime *rt, struct listener *l, char *err, size_t errlen)
{
    char a[NETADDR_STRLEN];
    /* SO_REUSEADDR only (for TIME_WAIT); never SO_REUSEPORT, which would let
     * a second server share the port silently. */
    l->evl =
        evconnlistener_new_bind(rt->base, listener_on_accept, l,
                                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE,
                                1024, &l->addr.u.sa, (int)l->addr.len);
    if (!l->evl) {
        int e = errno;
        snprintf(err, errlen, "%s (%s in %s): cannot listen: %s%s", netaddr_format(&l->addr, a),
                 listener_key(l->kind), rt->config_path, strerror(e),
                 e == EADDRINUSE ? " (another parleyd or SIP server holds it)" : "");
        return -e;
    }
    evconnlistener_set_error_cb(l->evl, listener_on_error);
    return 0;
}

const char *listener_key(enum listener_kind kind)
{
    switch (kind) {
    case LISTENER_TLS:
        return "sip.tls_listen";
    case LISTENER_MTLS:
        return "sip.mtls_listen";
    case LISTENER_TCP:
        return "sip.tcp_listen";
    case LISTENER_TRUNK_TCP:
        return "sip.trunk_tcp_listen";
    case LISTENER_HTTPS:
        return "https.listen";
    }
    return "?";
}

int listeners_open(struct runtime *rt, char *err, size_t errlen)
{
    const struct config *cfg = rt->cfg;
    /* TLS listeners first: the first one is the node's own address */
    const struct {
        enum listener_kind kind;
        const struct config_addr_list *addrs;
    } sets[] = {
        {LISTENER_TLS, &cfg->sip.tls_listen}, {LISTENER_MTLS, &cfg->sip.mtls_listen},
        {LISTENER_TCP, &cfg->sip.tcp_listen}, {LISTENER_TRUNK_TCP, &cfg->sip.trunk_tcp_listen},
        {LISTENER_HTTPS, &cfg->https.listen},
    };
    size_t n = cfg->sip.tls_listen.n + cfg->sip.mtls_listen.n + cfg->sip.tcp_listen.n +
               cfg->sip.trunk_tcp_listen.n + cfg->https.listen.n;
    rt->listeners = calloc(n ? n : 1, sizeof(*rt->listeners));
    if (!rt->listeners)
        return -ENOMEM;
    for (size_t s = 0; s < sizeof(sets) / sizeof(sets[0]); s++) {
        for (size_t i = 0; i < sets[s].addrs->n; i++) {
            struct listener *l = &rt->listeners[rt->nlisteners];
            l->rt = rt;
            l->index = (int)rt->nlisteners;
            l->kind = sets[s].kind;
            l->tls =
                l->kind == LISTENER_TLS || l->kind == LISTENER_MTLS || l->kind == LISTENER_HTTPS;
            l->addr = sets[s].addrs->v[i];
            int rc = listener_open_one(rt, l, err, errlen);
            if (rc)
                return rc; /* listeners_close cleans up */
            rt->nlisteners++;
        }
    }
    for (size_t i = 0; i < rt->nlisteners; i++) {
        char a[NETADDR_STRLEN];
        struct listener *l = &rt->listeners[i];
        log_info("listener.open", "address", netaddr_format(&l->addr, a), "transport",
                 l->kind == LISTENER_TCP         ? "tcp"
                 : l->kind == LISTENER_TRUNK_TCP ? "trunk-tcp"
                 : l->kind == LISTENER_MTLS      ? "mtls"
                 : l->kind == LISTENER_HTTPS     ? "https"
                                                 : "tls");
    }
    return 0;
}

void listeners_close(struct runtime *rt)
{
    for (size_t i = 0; i < rt->nlisteners; i++)
        if (rt->listeners[i].evl)
            evconnlistener_free(rt->listeners[i].evl);
    free(rt->listeners);
    rt->listeners = NULL;
    rt->nlisteners = 0;
}

struct core_conn *runtime_conn_find(struct runtime *rt, uint64_t id)
{
    uint64_t h = hash_u64(id);
    for (struct hmap_node *n = hmap_first(&rt->conns, h); n; n = hmap_next(n, h)) {
        struct core_conn *cc = container_of(n, struct core_conn, node);
        if (cc->id == id)
            return cc;
    }
    return NULL;
}

void runtime_conn_opened(struct runtime *rt, uint64_t id, struct conn_info *info)
{
    struct core_conn *cc = runtime_conn_find(rt, id);
    if (!cc) {
        conn_info_free(info);
        return;
    }
    conn_info_free(cc->info);
    cc->info = info;
    /* a certificate that chains to a trusted CA proves the peer */
    if (info->peer_cert_verified)
        runtime_conn_trust(rt, id);
    char p[NETADDR_STRLEN];
    if (info->tls)
        log_debug("conn.open", "conn", LOG_INT(id), "peer", netaddr_format(&info->peer, p), "tls",
                  info->tls_version, "cipher", info->tls_cipher, "resumed",
                  info->tls_resumed ? "yes" : "no", "client_cert",
                  info->peer_cert ? (info->peer_cert_verified ? "verified" : "unverified")
                                  : "none");
    if (info->peer_crl_missing)
        log_warn("tls.crl_missing", "conn", LOG_INT(id), "peer", netaddr_format(&info->peer, p),
                 "reason", "issuer of the peer certificate has no CRL loaded; accepted");
}

void runtime_conn_closed(struct runtime *rt, uint64_t id, const char *reason)
{
    struct core_conn *cc = runtime_conn_find(rt, id);
    if (!cc)
        return;
    char p[NETADDR_STRLEN];
    log_debug("conn.closed", "conn", LOG_INT(id), "peer", netaddr_format(&cc->peer, p), "reason",
              reason);
    hmap_remove(&rt->conns, &cc->node);
    rt->nconns--;
    if (!cc->trusted && !cc->evicted)
        untrusted_unlink(rt, cc);
    source_release(rt, &cc->peer);
    conn_info_free(cc->info);
    free(cc);
}

void runtime_conn_tables_free(struct runtime *rt)
{
    size_t b;
    if (rt->conns.buckets) {
        struct hmap_node *n = hmap_iter_first(&rt->conns, &b);
        while (n) {
            struct hmap_node *next = hmap_iter_next(&rt->conns, n, &b);
            struct core_conn *cc = container_of(n, struct core_conn, node);
            conn_info_free(cc->info);
            free(cc);
            n = next;
        }
        hmap_destroy(&rt->conns);
    }
    rt->untrusted_oldest = rt->untrusted_newest = NULL;
    if (rt->sources.buckets) {
        struct hmap_node *n = hmap_iter_first(&rt->sources, &b);
        while (n) {
            struct hmap_node *next = hmap_iter_next(&rt->sources, n, &b);
            free(container_of(n, struct source_count, node));
            n = next;
        }
        hmap_destroy(&rt->sources);
    }
    rt->nconns = 0;
}

struct core_conn *runtime_conn_add_outgoing(struct runtime *rt, uint64_t id,
                                            const struct netaddr *peer)
{
    struct core_conn *cc = calloc(1, sizeof(*cc));
    if (!cc)
        return NULL;
    cc->id = id;
    cc->listener = -1;
    cc->tls = true;
    cc->trusted = true; /* Parley made it */
    cc->peer = *peer;
    cc->opened = time(NULL);
    hmap_insert(&rt->conns, &cc->node, hash_u64(id));
    rt->nconns++;
    /* counted against its own peer like any connection, so the per-source
     * count stays balanced when it closes */
    uint64_t h = source_hash(peer);
    struct source_count *src = source_find(rt, peer, h);
    if (!src) {
        src = calloc(1, sizeof(*src));
        if (src) {
            src->addr = *peer;
            netaddr_set_port(&src->addr, 0);
            hmap_insert(&rt->sources, &src->node, h);
        }
    }
    if (src)
        src->n++;
    return cc;
}
