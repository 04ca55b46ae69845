/*
 * An engine: one thread's event base, its connections and its users, the
 * offered-rate scheduler, timeouts, and the set-up / run / drain phases.
 */
#include "bench/engine_priv.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "sip/frame.h"

/* Connections being set up at once, per engine: enough to fill the pipe,
 * few enough that no listen backlog overflows. */
#define SETUP_PARALLEL 64
/* A start later than this after its scheduled time counts as late. */
#define LATE_NS     (10 * 1000000ull)
#define MAX_MESSAGE 65535

static void engine_pump(struct engine *e);
static void engine_setup_pump(struct engine *e);
static void engine_finish(struct engine *e);

static void setup_finish(struct engine *e)
{
    e->setup_done = true;
    event_base_loopbreak(e->base);
}

/* --- connections ---------------------------------------------------------- */

void engine_conn_error(struct engine *e, const char *why)
{
    if (!e->st.conn_error[0])
        snprintf(e->st.conn_error, sizeof(e->st.conn_error), "%s", why);
}

static void engine_on_reap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct engine *e = arg;
    while (e->reap_list) {
        struct bconn *c = e->reap_list;
        e->reap_list = c->reap_next;
        if (c->bev)
            bufferevent_free(c->bev); /* frees the SSL, closes the socket */
        c->bev = NULL;
        c->ssl = NULL;
        /* shared connections stay (dead) in e->conns until engine_free */
        if (!c->shared)
            free(c);
    }
}

void engine_close(struct bconn *c, const char *why)
{
    (void)why;
    if (c->state == BC_DEAD)
        return;
    struct engine *e = c->e;
    if (c->state == BC_OPEN && c->ssl) {
        /* libevent 2.1 never sends close_notify itself */
        SSL_shutdown(c->ssl);
    }
    c->state = BC_DEAD;
    if (c->bev)
        bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    c->reap_next = e->reap_list;
    e->reap_list = c;
    event_active(e->reap_ev, EV_READ, 0);
}

int engine_send(struct bconn *c, const struct strbuf *data)
{
    if (c->state != BC_OPEN || data->err)
        return -EPIPE;
    if (bufferevent_write(c->bev, data->p, data->len) != 0)
        return -ENOMEM;
    return 0;
}

static void describe_error(struct bconn *c, short what, char *buf, size_t cap)
{
    int sock_err = EVUTIL_SOCKET_ERROR();
    if (c->bev && c->state == BC_CONNECTING) {
        int so = 0;
        socklen_t sl = sizeof(so);
        evutil_socket_t fd = bufferevent_getfd(c->bev);
        if (fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &sl) == 0 && so) {
            snprintf(buf, cap, "connect: %s", strerror(so));
            return;
        }
        struct sockaddr_storage ss;
        socklen_t pl = sizeof(ss);
        if (fd >= 0 && getpeername(fd, (struct sockaddr *)&ss, &pl) != 0 && errno == ENOTCONN) {
            snprintf(buf, cap, "connect: %s", strerror(sock_err ? sock_err : ECONNREFUSED));
            return;
        }
    }
    unsigned long ossl = c->bev ? bufferevent_get_openssl_error(c->bev) : 0;
    /* libevent reports a failed system call as SSL_ERROR_SYSCALL (5, no library) */
    while (ossl && ERR_GET_LIB(ossl) == 0)
        ossl = bufferevent_get_openssl_error(c->bev);
    if (ossl) {
        char tmp[120];
        ERR_error_string_n(ossl, tmp, sizeof(tmp));
        snprintf(buf, cap, "TLS: %s", tmp);
    } else if (what & BEV_EVENT_TIMEOUT) {
        snprintf(buf, cap, "timeout");
    } else if (what & BEV_EVENT_EOF) {
        snprintf(buf, cap, "%s",
                 c->state == BC_CONNECTING ? "closed during the TLS handshake"
                                           : "closed by the server");
    } else {
        snprintf(buf, cap, "%s%s", c->state == BC_CONNECTING ? "connect: " : "",
                 sock_err ? strerror(sock_err) : "connection error");
    }
    while (ERR_get_error() != 0) {
    }
}

/* A connection failed or was closed by the server. */
static void conn_failed(struct bconn *c, const char *why)
{
    struct engine *e = c->e;
    if (c->state == BC_DEAD)
        return;
    bool was_open = c->state == BC_OPEN;
    engine_conn_error(e, why);
    engine_close(c, why);
    if (c->shared) {
        if (e->phase == PH_SETUP && (!was_open || (e->o->scenario == BENCH_IDLE && !c->pinged))) {
            e->st.setup_failures++;
            if (!e->st.setup_error[0])
                snprintf(e->st.setup_error, sizeof(e->st.setup_error), "connection: %s", why);
            e->conns_opened++;
        }
        for (unsigned i = 0; i < e->nusers; i++) {
            struct buser *u = &e->users[i];
            if (u->conn != c)
                continue;
            u->retired = true;
            if (u->busy)
                engine_op_done(u, -ECONNRESET);
        }
        if (e->phase == PH_SETUP)
            engine_setup_pump(e);
    } else if (c->owner && c->owner->conn == c && c->owner->busy) {
        engine_op_done(c->owner, -ECONNRESET);
    }
}

static void conn_on_read(struct bufferevent *bev, void *arg)
{
    struct bconn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (c->state == BC_OPEN) {
        size_t avail = evbuffer_get_length(in);
        if (avail == 0)
            return;
        const char *data = (const char *)evbuffer_pullup(in, (ssize_t)avail);
        struct sip_frame fr;
        enum sip_frame_result r = sip_frame_scan(data, avail, MAX_MESSAGE, &fr);
        if (r == SIP_FRAME_NEED_MORE)
            return;
        if (r == SIP_FRAME_KEEPALIVE) {
            if (fr.ping)
                bufferevent_write(bev, "\r\n", 2);
            evbuffer_drain(in, fr.len);
            continue;
        }
        if (r != SIP_FRAME_MESSAGE) {
            char why[160];
            snprintf(why, sizeof(why), "unframable input from the server: %s",
                     fr.reason ? fr.reason : "?");
            conn_failed(c, why);
            return;
        }
        struct sip_msg *m = NULL;
        struct sip_parse_error perr;
        int rc = sip_msg_parse(data, fr.len, &m, &perr);
        evbuffer_drain(in, fr.len);
        if (rc != 0) {
            char why[200];
            snprintf(why, sizeof(why), "unparsable message from the server: %s", perr.reason);
            engine_conn_error(c->e, why);
            continue;
        }
        flow_on_message(c, m);
    }
}

static void conn_on_event(struct bufferevent *bev, short what, void *arg)
{
    struct bconn *c = arg;
    struct engine *e = c->e;
    if (what & BEV_EVENT_CONNECTED) {
        c->state = BC_OPEN;
        evutil_socket_t fd = bufferevent_getfd(bev);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        struct netaddr local;
        if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
            netaddr_from_sockaddr((struct sockaddr *)&ss, sl, &local) == 0)
            netaddr_format(&local, c->local);
        e->st.handshakes++;
        if (!e->st.tls_negotiated[0])
            snprintf(e->st.tls_negotiated, sizeof(e->st.tls_negotiated), "%s %s",
                     SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl));
        if (SSL_session_reused(c->ssl))
            e->st.resumed++;
        if (c->shared) {
            if (e->o->scenario == BENCH_IDLE) {
                flow_send_options(c);
            } else {
                e->conns_opened++;
                e->conns_ok++;
                e->st.setup_conns++;
                engine_setup_pump(e);
            }
        } else {
            flow_conn_open(c);
        }
        return;
    }
    char why[200];
    describe_error(c, what, why, sizeof(why));
    conn_failed(c, why);
}

/* The client keeps the newest session it is given (TLS 1.3 tickets arrive
 * after the handshake) to resume the next connection with. */
int engine_on_new_session(SSL *ssl, SSL_SESSION *sess);
int engine_on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    struct bconn *c = SSL_get_app_data(ssl);
    if (!c)
        return 0;
    if (c->e->session)
        SSL_SESSION_free(c->e->session);
    c->e->session = sess;
    return 1; /* we keep the reference */
}

struct bconn *engine_connect(struct engine *e, struct buser *owner, bool shared)
{
    const struct bench_opts *o = e->o;
    struct bconn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->e = e;
    c->owner = owner;
    c->shared = shared;
    c->t_start_ns = bench_now_ns();
    c->ssl = SSL_new(e->sh->ssl_ctx);
    if (!c->ssl)
        goto fail;
    SSL_set_app_data(c->ssl, c);
    if (o->sni[0])
        SSL_set_tlsext_host_name(c->ssl, o->sni);
    if (!o->insecure)
        SSL_set1_host(c->ssl, o->sni[0] ? o->sni : o->domain);
    if (o->resumption && e->session)
        SSL_set_session(c->ssl, e->session);
    c->bev = bufferevent_openssl_socket_new(e->base, -1, c->ssl, BUFFEREVENT_SSL_CONNECTING,
                                            BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!c->bev) {
        SSL_free(c->ssl);
        goto fail;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    bufferevent_setcb(c->bev, conn_on_read, NULL, conn_on_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(c->bev, &o->addr.u.sa, (int)o->addr.len) != 0) {
        char why[160];
        snprintf(why, sizeof(why), "connect: %s", strerror(errno ? errno : ECONNREFUSED));
        engine_conn_error(e, why);
        bufferevent_free(c->bev); /* frees the SSL */
        free(c);
        return NULL;
    }
    return c;
fail:
    free(c);
    engine_conn_error(e, "out of memory");
    return NULL;
}

/* --- operations --------------------------------------------------------- */

static struct buser *pop_free(struct engine *e)
{
    while (e->free_list) {
        struct buser *u = e->free_list;
        e->free_list = u->free_next;
        u->free_next = NULL;
        if (!u->retired)
            return u;
    }
    return NULL;
}

static void push_free(struct engine *e, struct buser *u)
{
    if (u->retired)
        return;
    u->free_next = e->free_list;
    e->free_list = u;
}

static void op_begin(struct engine *e, struct buser *u, bool setup)
{
    u->busy = true;
    u->setup_op = setup;
    u->t_start_ns = bench_now_ns();
    u->auth_tries = 0;
    e->in_flight++;
    if (!setup)
        e->st.started++;
    enum bench_scenario s = e->o->scenario;
    if (!setup && (s == BENCH_REGISTER_NEWCONN || s == BENCH_HANDSHAKE)) {
        u->st = OP_CONNECTING;
        u->conn = NULL;
        struct bconn *c = engine_connect(e, u, false);
        if (c)
            u->conn = c;
        else if (u->busy)
            engine_op_done(u, -ECONNRESET);
        return;
    }
    flow_start(u);
}

void engine_op_done(struct buser *u, int status)
{
    struct engine *e = u->e;
    if (!u->busy)
        return;
    u->busy = false;
    u->st = OP_IDLE;
    e->in_flight--;
    if (!u->conn || !u->conn->shared) {
        if (u->conn)
            engine_close(u->conn, "operation done");
        u->conn = NULL;
    }
    if (u->setup_op) {
        u->setup_op = false;
        e->setup_regs_done++;
        if (status != 0) {
            e->st.setup_failures++;
            if (!e->st.setup_error[0]) {
                if (status > 0)
                    snprintf(e->st.setup_error, sizeof(e->st.setup_error),
                             "registration of %s answered %d", u->name, status);
                else
                    snprintf(e->st.setup_error, sizeof(e->st.setup_error), "registration of %s: %s",
                             u->name, status == -ETIMEDOUT ? "timeout" : "connection lost");
            }
        }
        /* callers are on the free list already; callees never are */
        engine_setup_pump(e);
        return;
    }
    if (status == 0) {
        e->st.ok++;
        bench_stats_add_latency(&e->st, bench_now_ns() - u->t_start_ns);
    } else {
        e->st.failed++;
        if (status == -ETIMEDOUT)
            e->st.timeouts++;
        else if (status < 0)
            e->st.conn_errors++;
        else if (status < 700)
            e->st.by_status[status]++;
    }
    push_free(e, u);
    if (e->phase == PH_RUN)
        engine_pump(e);
    else if (e->phase == PH_DRAIN && e->in_flight == 0)
        engine_finish(e);
}

/* --- phases --------------------------------------------------------------- */

static void engine_finish(struct engine *e)
{
    if (e->phase == PH_DONE)
        return;
    e->phase = PH_DONE;
    if (e->tick)
        event_del(e->tick);
    event_base_loopbreak(e->base);
}

static void engine_enter_drain(struct engine *e)
{
    e->phase = PH_DRAIN;
    if (e->tick)
        event_del(e->tick);
    if (e->in_flight == 0)
        engine_finish(e);
}

static void engine_pump(struct engine *e)
{
    if (e->pumping || e->phase != PH_RUN)
        return;
    e->pumping = true;
    uint64_t now = bench_now_ns();
    if (now >= e->t_end) {
        e->pumping = false;
        engine_enter_drain(e);
        return;
    }
    uint64_t due = UINT64_MAX;
    if (e->rate > 0) {
        uint64_t should = (uint64_t)((double)(now - e->t0) * e->rate / 1e9) + 1;
        due = should > e->issued ? should - e->issued : 0;
    }
    /* bounded, so that synchronous failures cannot spin here forever */
    unsigned budget = e->nusers + 64;
    while (due > 0 && budget-- > 0) {
        if (e->max_in_flight && e->in_flight >= e->max_in_flight)
            break;
        struct buser *u = pop_free(e);
        if (!u)
            break;
        if (e->rate > 0) {
            uint64_t sched = e->t0 + (uint64_t)((double)e->issued * 1e9 / e->rate);
            if (now > sched + LATE_NS)
                e->st.late_starts++;
            due--;
        }
        e->issued++;
        op_begin(e, u, false);
    }
    if (e->rate > 0 && due > e->st.max_backlog)
        e->st.max_backlog = due;
    e->pumping = false;
}

static void engine_on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    engine_pump(arg);
}

static void engine_on_sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct engine *e = arg;
    uint64_t now = bench_now_ns();
    uint64_t limit = (uint64_t)(e->o->timeout_s * 1e9);
    for (unsigned i = 0; i < e->nusers; i++) {
        struct buser *u = &e->users[i];
        if (u->busy && now - u->t_start_ns > limit)
            engine_op_done(u, -ETIMEDOUT);
    }
    struct bconn **lists[2] = {e->conns, e->cconns};
    unsigned counts[2] = {e->nconns, e->ncconns};
    for (int l = 0; l < 2; l++) {
        for (unsigned i = 0; i < counts[l]; i++) {
            struct bconn *c = lists[l][i];
            if (c && c->state == BC_CONNECTING && now - c->t_start_ns > limit)
                conn_failed(c, "TLS handshake timeout");
            else if (c && e->o->scenario == BENCH_IDLE && e->phase == PH_SETUP &&
                     c->state == BC_OPEN && !c->pinged && now - c->t_start_ns > limit)
                conn_failed(c, "no answer to OPTIONS");
        }
    }
    if (e->phase == PH_SETUP && now - e->t0 > (uint64_t)(e->o->setup_timeout_s * 1e9)) {
        e->st.setup_failures++;
        if (!e->st.setup_error[0])
            snprintf(e->st.setup_error, sizeof(e->st.setup_error),
                     "set-up did not finish in %.0f s", e->o->setup_timeout_s);
        setup_finish(e);
    }
    if (e->phase == PH_RUN)
        engine_pump(e);
    if (e->phase == PH_DRAIN && now > e->t_end + limit + 100000000ull) {
        for (unsigned i = 0; i < e->nusers; i++)
            if (e->users[i].busy)
                engine_op_done(&e->users[i], -ETIMEDOUT);
        engine_finish(e);
    }
}

/* Called by flows.c when an idle-scenario connection got its OPTIONS answer. */
void engine_conn_pinged(struct bconn *c);
void engine_conn_pinged(struct bconn *c)
{
    struct engine *e = c->e;
    if (c->pinged)
        return;
    c->pinged = true;
    e->conns_opened++;
    e->conns_ok++;
    e->st.setup_conns++;
    engine_setup_pump(e);
}

static bool needs_registration(const struct engine *e)
{
    return e->o->scenario == BENCH_MESSAGE || e->o->scenario == BENCH_CALL;
}

/* Set-up: open the shared connections a few at a time, then register the
 * users that must be reachable; breaks the loop when everything is done. */
static void engine_setup_pump(struct engine *e)
{
    if (e->phase != PH_SETUP)
        return;
    unsigned total = e->nconns + e->ncconns;
    while (e->conns_started < total && e->conns_started - e->conns_opened < SETUP_PARALLEL) {
        unsigned i = e->conns_started++;
        struct bconn *c = engine_connect(e, NULL, true);
        if (i < e->nconns)
            e->conns[i] = c;
        else
            e->cconns[i - e->nconns] = c;
        if (!c) {
            e->st.setup_failures++;
            e->conns_opened++;
        }
    }
    if (e->conns_opened < total)
        return;
    if (e->st.setup_failures && e->o->scenario != BENCH_IDLE) {
        setup_finish(e);
        return;
    }
    if (needs_registration(e)) {
        /* users' connections, now that they exist */
        for (unsigned i = 0; i < e->nusers; i++) {
            struct buser *u = &e->users[i];
            if (!u->conn && !u->retired) {
                u->conn =
                    u->callee ? e->cconns[(i - e->ncallers) % e->ncconns] : e->conns[i % e->nconns];
                if (!u->conn || u->conn->state != BC_OPEN)
                    u->retired = true;
            }
        }
        while (e->setup_regs_started < e->nusers &&
               e->setup_regs_started - e->setup_regs_done < SETUP_PARALLEL) {
            struct buser *u = &e->users[e->setup_regs_started++];
            if (u->retired) {
                e->setup_regs_done++;
                continue;
            }
            op_begin(e, u, true);
        }
        if (e->setup_regs_done < e->nusers)
            return;
    } else if (e->nconns) {
        for (unsigned i = 0; i < e->nusers; i++)
            if (!e->users[i].conn)
                e->users[i].conn = e->conns[i % e->nconns];
    }
    setup_finish(e);
}

/* --- the engine ------------------------------------------------------------- */

/* How many of n items fall to engine `index` of `count` when item i goes
 * to engine i % count. */
static unsigned share(unsigned n, unsigned index, unsigned count)
{
    return n / count + (index < n % count ? 1 : 0);
}

struct engine *engine_new(struct bench_shared *sh, unsigned index)
{
    const struct bench_opts *o = sh->o;
    struct engine *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->sh = sh;
    e->o = o;
    e->index = index;
    e->base = event_base_new();
    if (!e->base)
        goto fail;
    e->reap_ev = event_new(e->base, -1, 0, engine_on_reap, e);
    e->sweep = event_new(e->base, -1, EV_PERSIST, engine_on_sweep, e);
    e->tick = event_new(e->base, -1, EV_PERSIST, engine_on_tick, e);
    if (!e->reap_ev || !e->sweep || !e->tick)
        goto fail;

    unsigned T = o->threads;
    bool pairs = o->scenario == BENCH_MESSAGE || o->scenario == BENCH_CALL;
    unsigned total_callers = pairs ? o->users / 2 : o->users;
    if (o->scenario == BENCH_HANDSHAKE)
        total_callers = o->concurrency;
    if (o->scenario == BENCH_IDLE)
        total_callers = 0;
    e->ncallers = share(total_callers, index, T);
    e->nusers = pairs ? 2 * e->ncallers : e->ncallers;
    bool shared_conns = o->scenario == BENCH_REGISTER || pairs || o->scenario == BENCH_IDLE;
    if (shared_conns) {
        e->nconns = share(o->connections, index, T);
        if (pairs)
            e->ncconns = share(o->callee_connections, index, T);
        if (e->nconns == 0 && e->ncallers > 0)
            e->nconns = 1;
        if (pairs && e->ncconns == 0 && e->ncallers > 0)
            e->ncconns = 1;
        e->conns = calloc(e->nconns ? e->nconns : 1, sizeof(*e->conns));
        e->cconns = calloc(e->ncconns ? e->ncconns : 1, sizeof(*e->cconns));
        if (!e->conns || !e->cconns)
            goto fail;
    }
    e->users = calloc(e->nusers ? e->nusers : 1, sizeof(*e->users));
    if (!e->users)
        goto fail;
    for (unsigned k = 0; k < e->nusers; k++) {
        struct buser *u = &e->users[k];
        u->e = e;
        u->local = k;
        bool callee = k >= e->ncallers;
        unsigned caller_k = callee ? k - e->ncallers : k;
        unsigned global = caller_k * T + index; /* caller number across engines */
        unsigned n = o->first_user + (callee ? total_callers + global : global);
        u->callee = callee;
        if (bench_expand(o->user_template, n, u->name, sizeof(u->name)) != 0 ||
            bench_expand(o->password_template, n, u->password, sizeof(u->password)) != 0)
            goto fail;
        flow_user_init(u);
    }
    if (pairs)
        for (unsigned k = 0; k < e->ncallers; k++)
            e->users[k].peer = &e->users[e->ncallers + k];
    /* callers are handed out in order: push in reverse */
    for (unsigned k = e->ncallers; k-- > 0;)
        push_free(e, &e->users[k]);
    e->max_in_flight = o->scenario == BENCH_HANDSHAKE ? 0 : share(o->concurrency, index, T);
    e->rate = o->rate / T;
    return e;
fail:
    engine_free(e);
    return NULL;
}

struct bench_stats *engine_stats(struct engine *e)
{
    return &e->st;
}

static void engine_close_all(struct engine *e)
{
    for (unsigned i = 0; i < e->nusers; i++) {
        struct buser *u = &e->users[i];
        if (u->conn && !u->conn->shared)
            engine_close(u->conn, "end");
    }
    for (unsigned i = 0; i < e->nconns; i++)
        if (e->conns[i])
            engine_close(e->conns[i], "end");
    for (unsigned i = 0; i < e->ncconns; i++)
        if (e->cconns[i])
            engine_close(e->cconns[i], "end");
    engine_on_reap(-1, 0, e);
}

void *engine_thread(void *arg)
{
    struct engine *e = arg;
    struct bench_shared *sh = e->sh;
    struct timeval sweep_tv = {0, 50000};

    e->phase = PH_SETUP;
    e->t0 = bench_now_ns();
    event_add(e->sweep, &sweep_tv);
    engine_setup_pump(e);
    if (!e->setup_done)
        event_base_dispatch(e->base);
    if (e->st.setup_failures && e->o->scenario != BENCH_IDLE)
        sh->abort_run = 1;

    pthread_barrier_wait(&sh->barrier); /* set-up done everywhere; main takes t0 */
    pthread_barrier_wait(&sh->barrier);

    if (!sh->abort_run) {
        e->t0 = sh->t0_ns;
        e->t_end = e->t0 + (uint64_t)(e->o->duration_s * 1e9);
        e->phase = PH_RUN;
        if (e->rate > 0) {
            struct timeval tick = {0, 1000};
            event_add(e->tick, &tick);
        }
        engine_pump(e);
        if (e->o->scenario == BENCH_IDLE || e->ncallers == 0) {
            /* nothing to start: hold the connections until the end */
            struct timeval hold = {
                (time_t)e->o->duration_s,
                (suseconds_t)((e->o->duration_s - (time_t)e->o->duration_s) * 1e6)};
            event_base_loopexit(e->base, &hold);
            e->phase = PH_DRAIN;
            event_base_dispatch(e->base);
        } else if (e->phase != PH_DONE) {
            event_base_dispatch(e->base);
        }
    }
    e->phase = PH_DONE;
    event_del(e->sweep);
    event_del(e->tick);
    engine_close_all(e);
    /* let the close_notify records and FINs go out */
    event_base_loop(e->base, EVLOOP_NONBLOCK);
    return NULL;
}

void engine_free(struct engine *e)
{
    if (!e)
        return;
    if (e->base)
        engine_on_reap(-1, 0, e);
    if (e->tick)
        event_free(e->tick);
    if (e->sweep)
        event_free(e->sweep);
    if (e->reap_ev)
        event_free(e->reap_ev);
    for (unsigned i = 0; e->conns && i < e->nconns; i++)
        free(e->conns[i]);
    for (unsigned i = 0; e->cconns && i < e->ncconns; i++)
        free(e->cconns[i]);
    if (e->session)
        SSL_SESSION_free(e->session);
    if (e->base)
        event_base_free(e->base);
    free(e->conns);
    free(e->cconns);
    free(e->users);
    bench_stats_free(&e->st);
    free(e);
}
