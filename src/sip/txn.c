/*
 * sip/txn — RFC 3261 §17 transactions for reliable transports (see txn.h).
 *
 * Every transaction sits in two tables: one keyed by its top Via branch
 * (servers and clients apart) and one keyed by its connection, so a
 * connection's close finds its transactions without a scan. A transaction
 * that ends leaves both tables at once (so nothing can match it any more)
 * and waits on the dead list until the reaper, a 0 ms timer, calls the
 * terminated hook and frees it: pointers the user holds across a call into
 * the layer stay valid until the event loop runs the timers again.
 */
#include "sip/txn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/hmap.h"
#include "core/log.h"
#include "core/random.h"
#include "crypto/mac.h"
#include "sip/build.h"

#define BRANCH_COOKIE     "z9hG4bK"
#define BRANCH_COOKIE_LEN 7
#define BRANCH_RANDOM_LEN 24
/* Our own non-2xx answers to INVITEs that already carried a To tag (inside
 * a dialog): their ACK repeats that tag, not ours, so each leaves a small
 * record — a keyed hash of branch and sent-by — in a fixed table for as long
 * as Timer H. When the table is busy, a newer record takes the slot and the
 * older ACK is treated as a stray (dropped, or routed along its dialog,
 * where the other party ignores it). */
#define TOMB_SLOTS 4096
/* Local To tags: 80 bits of an HMAC-SHA256, in hex. */
#define LOCAL_TAG_LEN 20
#define TAG_KEY_LEN   32
/* Distinct To tags of 2xx responses remembered per INVITE, to tell a
 * retransmitted 2xx from a forked one. */
#define MAX_2XX_TAGS 8

enum txn_state {
    TXN_CALLING,    /* client INVITE: nothing received yet (Timer B) */
    TXN_TRYING,     /* client non-INVITE: nothing received yet (Timer F) */
    TXN_PROCEEDING, /* client: a 1xx received (C or F); server: no final sent (guard) */
    TXN_COMPLETED,  /* server INVITE: a non-2xx final sent, waiting for the ACK (Timer H) */
    TXN_ACCEPTED,   /* INVITE: a 2xx passed (RFC 6026; Timer L or M) */
    TXN_TERMINATED, /* out of the tables, on the dead list */
};

/* What server and client transactions share; first member of both. */
struct txn {
    struct hmap_node key_node;  /* l->servers or l->clients, by branch */
    struct hmap_node conn_node; /* l->by_conn */
    struct sip_txn_layer *l;
    struct sip_msg *req;
    uint64_t conn;
    bool is_server;
    enum txn_state state;
    struct strview branch; /* views into req */
    enum sip_method method;
    struct strview method_name;
    struct timer timer; /* the one state timer: B, C, F, H, L, M or the guard */
    void *ctx;
    struct txn *prev_dead, *next_dead; /* dead list */
    struct txn *next_closed;           /* sip_txn_conn_closed's batch */
};

struct sip_server_txn {
    struct txn b;
    struct strview host; /* sent-by of the top Via, into req */
    uint16_t port;
    int final_status;            /* 0 until a final response is sent */
    struct strbuf last;          /* the last response sent, for retransmitted requests */
    bool dispatching;            /* new, its user still handling it (see dispatched) */
    bool held;                   /* at work after its dispatch: counted by server_held */
    char tag[LOCAL_TAG_LEN + 1]; /* made on first use */
};

struct sip_client_txn {
    struct txn b;
    bool internal; /* a CANCEL of the layer's own: responses swallowed, no hooks */
    bool cancel_pending;
    bool cancel_sent;
    char *cancel_reason;
    int last_status;
    struct timer cancel_timer; /* 64*T1 after the CANCEL */
    uint64_t tags_2xx[MAX_2XX_TAGS];
    unsigned n_tags_2xx;
};

struct sip_txn_layer {
    struct timer_heap *timers;
    struct sip_txn_hooks hooks;
    void *arg;
    struct hmap servers;
    struct hmap clients;
    struct hmap by_conn;
    size_t count; /* allocated: live plus dead not yet reaped */
    size_t nserver, nclient, nheld;
    uint64_t stateless_answers, acks_absorbed;
    unsigned char tag_key[TAG_KEY_LEN];
    struct tomb {
        uint64_t key;
        uint64_t until;
    } * tombs; /* TOMB_SLOTS */
    struct txn *dead;
    struct txn *dead_tail;
    struct timer reap_timer;
    bool reaping;
    bool freeing;
};

static struct sip_server_txn *as_server(struct txn *t)
{
    return container_of(t, struct sip_server_txn, b);
}

static struct sip_client_txn *as_client(struct txn *t)
{
    return container_of(t, struct sip_client_txn, b);
}

/* --- common ------------------------------------------------------------- */

static bool method_eq(enum sip_method a, struct strview a_name, enum sip_method b,
                      struct strview b_name)
{
    if (a != b)
        return false;
    /* Extension methods compare by name, case-sensitively (RFC 3261 §7.1). */
    return a != SIP_METHOD_UNKNOWN || strview_eq_view(a_name, b_name);
}

static bool branch_has_cookie(struct strview branch)
{
    return branch.p && branch.n > BRANCH_COOKIE_LEN &&
           memcmp(branch.p, BRANCH_COOKIE, BRANCH_COOKIE_LEN) == 0;
}

static void layer_send(struct sip_txn_layer *l, uint64_t conn, struct strbuf *data)
{
    if (data->err == 0 && data->len && l->hooks.send)
        l->hooks.send(l->arg, conn, data);
    /* The hook takes the contents; whatever it left is ours to free. */
    strbuf_free(data);
}

static void reap(struct sip_txn_layer *l);

static void reap_cb(struct timer *tm, void *arg)
{
    (void)tm;
    reap(arg);
}

static void schedule_reap(struct sip_txn_layer *l)
{
    if (!l->dead || l->reaping || l->freeing || timer_is_active(&l->reap_timer))
        return;
    /* On failure the dead wait for the next terminate or entry point. */
    if (timer_start(l->timers, &l->reap_timer, 0, reap_cb, l) != 0)
        log_warn("sip.txn.reap_deferred", "reason", "out of memory");
}

/* Ends a transaction: out of the tables, timers stopped, onto the dead
 * list. Calls no hook. */
static void txn_terminate(struct txn *t)
{
    struct sip_txn_layer *l = t->l;

    if (t->state == TXN_TERMINATED)
        return;
    t->state = TXN_TERMINATED;
    timer_stop(l->timers, &t->timer);
    if (!t->is_server)
        timer_stop(l->timers, &as_client(t)->cancel_timer);
    hmap_remove(t->is_server ? &l->servers : &l->clients, &t->key_node);
    hmap_remove(&l->by_conn, &t->conn_node);
    if (t->is_server)
        l->nserver--;
    else
        l->nclient--;
    t->next_dead = NULL;
    t->prev_dead = l->dead_tail;
    if (l->dead_tail)
        l->dead_tail->next_dead = t;
    else
        l->dead = t;
    l->dead_tail = t;
    /* one still dispatching is usually freed sooner, by
     * sip_txn_server_dispatched(); the reaper is the fallback */
    schedule_reap(l);
}

static void dead_unlink(struct sip_txn_layer *l, struct txn *t)
{
    if (t->prev_dead)
        t->prev_dead->next_dead = t->next_dead;
    else
        l->dead = t->next_dead;
    if (t->next_dead)
        t->next_dead->prev_dead = t->prev_dead;
    else
        l->dead_tail = t->prev_dead;
    t->prev_dead = t->next_dead = NULL;
}

static void txn_insert(struct sip_txn_layer *l, struct txn *t)
{
    hmap_insert(t->is_server ? &l->servers : &l->clients, &t->key_node,
                hash_bytes(t->branch.p, t->branch.n));
    hmap_insert(&l->by_conn, &t->conn_node, hash_u64(t->conn));
    l->count++;
    if (t->is_server)
        l->nserver++;
    else
        l->nclient++;
}

/* The work of a held transaction is over (its final response, or its end). */
static void server_unhold(struct sip_server_txn *s)
{
    struct sip_txn_layer *l = s->b.l;
    if (!s->held)
        return;
    s->held = false;
    l->nheld--;
    if (l->hooks.server_held)
        l->hooks.server_held(l->arg, s, -1);
}

static void txn_free(struct txn *t)
{
    struct sip_txn_layer *l = t->l;

    timer_stop(l->timers, &t->timer);
    if (t->is_server) {
        struct sip_server_txn *s = as_server(t);
        server_unhold(s);
        strbuf_free(&s->last);
    } else {
        timer_stop(l->timers, &as_client(t)->cancel_timer);
        free(as_client(t)->cancel_reason);
    }
    sip_msg_free(t->req);
    l->count--;
    free(t->is_server ? (void *)as_server(t) : (void *)as_client(t));
}

static void reap(struct sip_txn_layer *l)
{
    /* Hooks may end more transactions; they join the list and are reaped
     * in this same pass. */
    l->reaping = true;
    while (l->dead) {
        struct txn *t = l->dead;
        dead_unlink(l, t);
        if (t->is_server) {
            /* it stops counting before its owner hears it ended: the
             * terminated hook may free what the held hook would read */
            server_unhold(as_server(t));
            if (l->hooks.server_terminated)
                l->hooks.server_terminated(l->arg, as_server(t));
        } else if (!as_client(t)->internal && l->hooks.client_terminated) {
            l->hooks.client_terminated(l->arg, as_client(t));
        }
        txn_free(t);
    }
    l->reaping = false;
}

struct sip_txn_layer *sip_txn_layer_new(struct timer_heap *timers,
                                        const struct sip_txn_hooks *hooks, void *arg)
{
    struct sip_txn_layer *l;

    if (!timers || !hooks)
        return NULL;
    l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->timers = timers;
    l->hooks = *hooks;
    l->arg = arg;
    l->tombs = calloc(TOMB_SLOTS, sizeof(*l->tombs));
    if (!l->tombs || random_secret(l->tag_key, sizeof(l->tag_key)) != 0) {
        free(l->tombs);
        free(l);
        return NULL;
    }
    if (hmap_init(&l->servers, 64) || hmap_init(&l->clients, 64) || hmap_init(&l->by_conn, 64)) {
        hmap_destroy(&l->servers);
        hmap_destroy(&l->clients);
        hmap_destroy(&l->by_conn);
        free(l->tombs);
        free(l);
        return NULL;
    }
    return l;
}

void sip_txn_layer_free(struct sip_txn_layer *l)
{
    if (!l)
        return;
    l->freeing = true;
    timer_stop(l->timers, &l->reap_timer);
    /* Hooks run while reaping could start transactions; the layer refuses
     * them while freeing, so one pass empties the tables, but loop anyway
     * rather than leak. */
    while (l->by_conn.count || l->dead) {
        size_t bucket;
        struct hmap_node *n = hmap_iter_first(&l->by_conn, &bucket);
        while (n) {
            struct hmap_node *next = hmap_iter_next(&l->by_conn, n, &bucket);
            txn_terminate(container_of(n, struct txn, conn_node));
            n = next;
        }
        reap(l);
    }
    hmap_destroy(&l->servers);
    hmap_destroy(&l->clients);
    hmap_destroy(&l->by_conn);
    OPENSSL_cleanse(l->tag_key, sizeof(l->tag_key));
    free(l->tombs);
    free(l);
}

size_t sip_txn_layer_count(const struct sip_txn_layer *l)
{
    return l ? l->count : 0;
}

void sip_txn_layer_stats(const struct sip_txn_layer *l, struct sip_txn_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!l)
        return;
    out->server = l->nserver;
    out->client = l->nclient;
    out->held = l->nheld;
    out->stateless_answers = l->stateless_answers;
    out->acks_absorbed = l->acks_absorbed;
}

void sip_txn_new_branch(char *out, size_t cap)
{
    char rnd[BRANCH_RANDOM_LEN + 1];

    if (!out || cap == 0)
        return;
    random_token(rnd, BRANCH_RANDOM_LEN);
    snprintf(out, cap, "%s%s", BRANCH_COOKIE, rnd);
}

/* --- stateless To tags ----------------------------------------------------- */

/* Appends a field as "length:bytes", so no two field lists share an
 * encoding; long fields are cut (a tag need only differ between requests
 * that differ early, and two requests cut alike still differ in Call-ID or
 * branch length). */
static size_t tag_put(char *buf, size_t at, size_t cap, struct strview v)
{
    size_t n = v.n < 300 ? v.n : 300;
    int w = snprintf(buf + at, cap - at, "%zu:", v.n);
    if (w < 0 || (size_t)w >= cap - at)
        return at;
    at += (size_t)w;
    if (n > cap - at)
        n = cap - at;
    if (n)
        memcpy(buf + at, v.p, n);
    return at + n;
}

/* The keyed MAC of the fields an ACK for a non-2xx final repeats: Call-ID,
 * From tag, CSeq number, top Via branch. Returns false when it cannot be
 * computed (no MAC available); out gets "" then. */
static bool tag_compute(const struct sip_txn_layer *l, const struct sip_msg *req,
                        struct strview branch, char out[LOCAL_TAG_LEN + 1])
{
    char buf[1024];
    size_t at = 0;
    struct sip_addr from;
    struct strview from_tag = STRVIEW_EMPTY;
    char cseq[16];
    unsigned char mac[MAC_MAX_SIZE];
    size_t maclen;

    out[0] = '\0';
    if (sip_msg_from(req, &from) == 0)
        from_tag = from.tag;
    snprintf(cseq, sizeof(cseq), "%u", (unsigned)req->cseq_num);
    at = tag_put(buf, at, sizeof(buf), req->call_id);
    at = tag_put(buf, at, sizeof(buf), from_tag);
    at = tag_put(buf, at, sizeof(buf), strview_cstr(cseq));
    at = tag_put(buf, at, sizeof(buf), branch);
    if (mac_hmac(MAC_HMAC_SHA256, l->tag_key, sizeof(l->tag_key), buf, at, mac, &maclen) != 0)
        return false;
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < LOCAL_TAG_LEN / 2; i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 15];
    }
    out[LOCAL_TAG_LEN] = '\0';
    return true;
}

/* Is the ACK's To tag the one the layer gave the response it acknowledges? */
static bool tag_recognised(const struct sip_txn_layer *l, const struct sip_msg *ack,
                           struct strview branch)
{
    struct sip_addr to;
    char want[LOCAL_TAG_LEN + 1];
    if (sip_msg_to(ack, &to) != 0 || to.tag.n != LOCAL_TAG_LEN ||
        !tag_compute(l, ack, branch, want))
        return false;
    return CRYPTO_memcmp(to.tag.p, want, LOCAL_TAG_LEN) == 0;
}

static uint64_t tomb_key(struct strview branch, struct strview host, uint16_t port)
{
    uint64_t h = hash_bytes(branch.p ? branch.p : "", branch.n);
    uint64_t k = h ^ (hash_bytes_nocase(host.p ? host.p : "", host.n) * 31 + port);
    return k ? k : 1;
}

static void tomb_add(struct sip_txn_layer *l, const struct sip_server_txn *s)
{
    uint64_t k = tomb_key(s->b.branch, s->host, s->port);
    struct tomb *t = &l->tombs[k & (TOMB_SLOTS - 1)];
    t->key = k;
    t->until = clock_now_ms(timer_heap_clock(l->timers)) + SIP_TIMER_H_MS;
}

static bool tomb_take(struct sip_txn_layer *l, const struct sip_via *via)
{
    uint64_t k = tomb_key(via->branch, via->host, via->port);
    struct tomb *t = &l->tombs[k & (TOMB_SLOTS - 1)];
    if (t->key != k || t->until < clock_now_ms(timer_heap_clock(l->timers)))
        return false;
    t->key = 0;
    return true;
}

/* --- server transactions ------------------------------------------------- */

static struct sip_server_txn *server_find(struct sip_txn_layer *l, const struct sip_via *via,
                                          enum sip_method m, struct strview m_name)
{
    uint64_t h = hash_bytes(via->branch.p, via->branch.n);

    for (struct hmap_node *n = hmap_first(&l->servers, h); n; n = hmap_next(n, h)) {
        struct sip_server_txn *s = as_server(container_of(n, struct txn, key_node));
        if (strview_eq_view(s->b.branch, via->branch) &&
            strview_eq_view_nocase(s->host, via->host) && s->port == via->port &&
            method_eq(s->b.method, s->b.method_name, m, m_name))
            return s;
    }
    return NULL;
}

static void server_timer_cb(struct timer *tm, void *arg)
{
    struct sip_server_txn *s = arg;
    (void)tm;

    if (s->b.state == TXN_PROCEEDING) {
        char call_id[128]; /* a truncated Call-ID is enough to find the call */
        strview_copy(s->b.req->call_id, call_id, sizeof(call_id));
        log_warn("sip.txn.unanswered", "method", sip_method_name(s->b.method), "call_id", call_id);
    }
    /* Timer H (no ACK came), Timer L, or the guard: the transaction ends. */
    txn_terminate(&s->b);
}

static void server_resend_last(struct sip_server_txn *s)
{
    struct strbuf copy = STRBUF_INIT;

    if (!s->last.len)
        return;
    strbuf_append(&copy, s->last.p, s->last.len);
    layer_send(s->b.l, s->b.conn, &copy);
}

static struct sip_server_txn *server_new(struct sip_txn_layer *l, uint64_t conn,
                                         struct sip_msg *req, const struct sip_via *via)
{
    struct sip_server_txn *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->b.l = l;
    s->b.req = req;
    s->b.conn = conn;
    s->b.is_server = true;
    s->b.state = TXN_PROCEEDING;
    s->b.branch = via->branch;
    s->b.method = req->method;
    s->b.method_name = req->method_name;
    s->host = via->host;
    s->port = via->port;
    s->dispatching = true;
    if (timer_start(l->timers, &s->b.timer,
                    req->method == SIP_METHOD_INVITE ? SIP_SERVER_INVITE_GUARD_MS
                                                     : SIP_SERVER_GUARD_MS,
                    server_timer_cb, s) != 0) {
        free(s);
        return NULL;
    }
    txn_insert(l, &s->b);
    return s;
}

enum sip_txn_verdict sip_txn_server_receive(struct sip_txn_layer *l, uint64_t conn,
                                            struct sip_msg *req, struct sip_server_txn **txn,
                                            struct sip_server_txn **cancelled)
{
    struct sip_via via;
    struct sip_server_txn *s;

    if (txn)
        *txn = NULL;
    if (cancelled)
        *cancelled = NULL;
    if (!l || !req || !req->is_request || sip_msg_top_via(req, &via) != 0 ||
        !branch_has_cookie(via.branch))
        return SIP_TXN_INVALID;
    if (l->freeing)
        return SIP_TXN_FAILED;
    schedule_reap(l);

    if (req->method == SIP_METHOD_ACK) {
        s = server_find(l, &via, SIP_METHOD_INVITE, strview_cstr("INVITE"));
        /* The ACK of a non-2xx final the layer built: its transaction
         * ended with the response; the tag says the ACK is ours. */
        if (!s && (tag_recognised(l, req, via.branch) || tomb_take(l, &via))) {
            l->acks_absorbed++;
            sip_msg_free(req);
            return SIP_TXN_ABSORBED;
        }
        /* No transaction, or the ACK of a 2xx (RFC 6026): end to end. */
        if (!s || s->b.state == TXN_ACCEPTED)
            return SIP_TXN_ACK;
        /* The ACK of our non-2xx final; Timer I is zero on reliable
         * transports. An ACK before any final response means nothing and
         * is absorbed too. */
        if (s->b.state == TXN_COMPLETED)
            txn_terminate(&s->b);
        sip_msg_free(req);
        return SIP_TXN_ABSORBED;
    }

    s = server_find(l, &via, req->method, req->method_name);
    if (s) {
        server_resend_last(s);
        sip_msg_free(req);
        return SIP_TXN_ABSORBED;
    }

    s = server_new(l, conn, req, &via);
    if (!s)
        return SIP_TXN_FAILED;
    if (txn)
        *txn = s;
    if (req->method != SIP_METHOD_CANCEL)
        return SIP_TXN_NEW;
    /* A CANCEL names the INVITE with the same branch and sent-by (RFC 3261
     * §9.2); whether it was answered already is the user's concern. */
    if (cancelled)
        *cancelled = server_find(l, &via, SIP_METHOD_INVITE, strview_cstr("INVITE"));
    return SIP_TXN_CANCEL;
}

const struct sip_msg *sip_server_txn_request(const struct sip_server_txn *t)
{
    return t->b.req;
}

uint64_t sip_server_txn_conn(const struct sip_server_txn *t)
{
    return t->b.conn;
}

void sip_txn_server_dispatched(struct sip_server_txn *t)
{
    struct sip_txn_layer *l;

    if (!t || !t->dispatching)
        return;
    l = t->b.l;
    t->dispatching = false;
    if (t->b.state != TXN_TERMINATED && !t->b.ctx && !t->final_status) {
        /* nobody holds it and nobody answered it: nobody ever will */
        char call_id[128];
        strview_copy(t->b.req->call_id, call_id, sizeof(call_id));
        log_debug("sip.txn.abandoned", "method", sip_method_name(t->b.method), "call_id", call_id);
        txn_terminate(&t->b);
    }
    if (t->b.state == TXN_TERMINATED) {
        if (l->reaping)
            return; /* dispatched from a hook: the reaper has it */
        if (t->final_status)
            l->stateless_answers++;
        dead_unlink(l, &t->b);
        if (l->hooks.server_terminated)
            l->hooks.server_terminated(l->arg, t);
        txn_free(&t->b);
        return;
    }
    if (t->final_status)
        return; /* answered, kept only for an ACK or more 2xx */
    t->held = true;
    l->nheld++;
    if (l->hooks.server_held)
        l->hooks.server_held(l->arg, t, +1);
}

void sip_server_txn_set_context(struct sip_server_txn *t, void *ctx)
{
    t->b.ctx = ctx;
}

void *sip_server_txn_context(const struct sip_server_txn *t)
{
    return t->b.ctx;
}

bool sip_server_txn_answered(const struct sip_server_txn *t)
{
    return t->final_status != 0;
}

const char *sip_server_txn_local_tag(struct sip_server_txn *t)
{
    /* a random one should the MAC fail: the ACK then just is not absorbed */
    if (!t->tag[0] && !tag_compute(t->b.l, t->b.req, t->b.branch, t->tag))
        random_token(t->tag, LOCAL_TAG_LEN);
    return t->tag;
}

/* local: the response was built by the layer with the local tag. */
static int server_send(struct sip_server_txn *t, int status, struct strbuf *bytes, bool local)
{
    struct sip_txn_layer *l;
    bool invite, is_2xx = status >= 200 && status < 300;
    int rc = 0;

    if (!t || !bytes) {
        if (bytes)
            strbuf_free(bytes);
        return -EINVAL;
    }
    l = t->b.l;
    invite = t->b.method == SIP_METHOD_INVITE;
    if (status < 100 || status > 699) {
        rc = -EINVAL;
        goto drop;
    }
    /* After a 2xx to an INVITE only more 2xx may follow (forking); after
     * any other final nothing may. */
    if (t->final_status && !(invite && t->final_status >= 200 && t->final_status < 300 && is_2xx)) {
        rc = -EALREADY;
        goto drop;
    }
    if (t->b.state == TXN_TERMINATED) {
        rc = -ENOTCONN;
        goto drop;
    }
    if (bytes->err) {
        rc = bytes->err;
        goto drop;
    }

    if (status < 200) {
        /* A provisional response shows the user is alive: restart the
         * guard (an INVITE may ring for longer than any fixed bound). */
        if (invite)
            timer_start(l->timers, &t->b.timer, SIP_SERVER_INVITE_GUARD_MS, server_timer_cb, t);
    } else if (invite && is_2xx) {
        if (t->b.state == TXN_PROCEEDING) {
            t->b.state = TXN_ACCEPTED;
            t->final_status = status;
            timer_start(l->timers, &t->b.timer, SIP_TIMER_L_MS, server_timer_cb, t);
        }
    } else if (invite && !local) {
        t->b.state = TXN_COMPLETED;
        t->final_status = status;
        timer_start(l->timers, &t->b.timer, SIP_TIMER_H_MS, server_timer_cb, t);
    } else {
        /* a non-INVITE final, or our own non-2xx to an INVITE, whose ACK the
         * tag identifies without the transaction */
        t->final_status = status;
    }

    if (t->final_status)
        server_unhold(t);
    if (t->final_status && invite && local && !is_2xx) {
        struct sip_addr to;
        if (sip_msg_to(t->b.req, &to) == 0 && to.tag.n)
            tomb_add(l, t); /* its ACK will carry the dialog's tag, not ours */
    }
    if (t->final_status && (!invite || (local && !is_2xx))) {
        /* Timer J is zero: nothing can retransmit on a reliable transport. */
        layer_send(l, t->b.conn, bytes);
        txn_terminate(&t->b);
        return 0;
    }
    strbuf_reset(&t->last);
    strbuf_append(&t->last, bytes->p, bytes->len);
    if (t->last.err)
        strbuf_free(&t->last); /* no copy; a retransmitted request gets nothing */
    layer_send(l, t->b.conn, bytes);
    return 0;
drop:
    strbuf_free(bytes);
    return rc;
}

int sip_server_txn_send(struct sip_server_txn *t, int status, struct strbuf *bytes)
{
    return server_send(t, status, bytes, false);
}

int sip_server_txn_reply(struct sip_server_txn *t, int status, const char *reason,
                         const char *extra_headers)
{
    struct strbuf out = STRBUF_INIT;
    int rc;

    if (!t)
        return -EINVAL;
    /* a 100 carries no tag (RFC 3261 §8.2.6.2): no MAC for it */
    rc = sip_build_response(t->b.req, status, reason,
                            status > 100 ? sip_server_txn_local_tag(t) : NULL, extra_headers, NULL,
                            STRVIEW_EMPTY, &out);
    if (rc) {
        strbuf_free(&out);
        return rc;
    }
    return server_send(t, status, &out, true);
}

/* --- client transactions ------------------------------------------------- */

static struct sip_client_txn *client_find(struct sip_txn_layer *l, struct strview branch,
                                          enum sip_method m, struct strview m_name)
{
    uint64_t h = hash_bytes(branch.p, branch.n);

    for (struct hmap_node *n = hmap_first(&l->clients, h); n; n = hmap_next(n, h)) {
        struct sip_client_txn *c = as_client(container_of(n, struct txn, key_node));
        if (strview_eq_view(c->b.branch, branch) &&
            method_eq(c->b.method, c->b.method_name, m, m_name))
            return c;
    }
    return NULL;
}

static void client_report(struct sip_client_txn *c, const struct sip_msg *resp, int status,
                          bool retransmission)
{
    struct sip_txn_layer *l = c->b.l;

    if (!c->internal && l->hooks.client_response)
        l->hooks.client_response(l->arg, c, resp, status, retransmission);
}

/* Ends the transaction with a failure of our own (408, 503). */
static void client_fail(struct sip_client_txn *c, int status)
{
    txn_terminate(&c->b);
    client_report(c, NULL, status, false);
}

/*
 * The headers ACK (RFC 3261 §17.1.1.3) and CANCEL (§9.1) copy from the
 * request: Request-URI, the single top Via (same branch), every Route, From,
 * Call-ID and the CSeq number; To is the response's for an ACK and the
 * request's for a CANCEL.
 */
static void put_ack_or_cancel(struct strbuf *b, const struct sip_msg *req, const char *method,
                              struct strview to, const char *reason)
{
    struct sip_value_iter it;
    struct strview v;
    const struct sip_hdr *from = sip_msg_hdr_first(req, SIP_HDR_FROM);

    strbuf_printf(b, "%s ", method);
    strbuf_putview(b, req->request_uri);
    strbuf_puts(b, " SIP/2.0\r\n");
    sip_value_iter_init(&it, req, SIP_HDR_VIA);
    if (sip_value_iter_next(&it, &v)) {
        strbuf_puts(b, "Via: ");
        strbuf_putview(b, v);
        strbuf_puts(b, "\r\n");
    }
    sip_value_iter_init(&it, req, SIP_HDR_ROUTE);
    while (sip_value_iter_next(&it, &v)) {
        strbuf_puts(b, "Route: ");
        strbuf_putview(b, v);
        strbuf_puts(b, "\r\n");
    }
    strbuf_puts(b, "Max-Forwards: 70\r\nFrom: ");
    if (from)
        strbuf_putview(b, from->value);
    strbuf_puts(b, "\r\nTo: ");
    strbuf_putview(b, to);
    strbuf_puts(b, "\r\nCall-ID: ");
    strbuf_putview(b, req->call_id);
    strbuf_printf(b, "\r\nCSeq: %u %s\r\n", (unsigned)req->cseq_num, method);
    if (reason) {
        strbuf_puts(b, "Reason: ");
        strbuf_puts(b, reason);
        strbuf_puts(b, "\r\n");
    }
    strbuf_puts(b, "Content-Length: 0\r\n\r\n");
}

static void client_send_ack(struct sip_client_txn *c, const struct sip_msg *resp)
{
    struct strbuf b = STRBUF_INIT;
    const struct sip_hdr *to = sip_msg_hdr_first(resp, SIP_HDR_TO);

    if (!to)
        return;
    put_ack_or_cancel(&b, c->b.req, "ACK", to->value, NULL);
    if (b.err)
        log_warn("sip.txn.ack_failed", "reason", "out of memory");
    layer_send(c->b.l, c->b.conn, &b);
}

static struct sip_client_txn *client_start(struct sip_txn_layer *l, uint64_t conn,
                                           struct sip_msg *req, void *ctx, bool internal);

static void cancel_timer_cb(struct timer *tm, void *arg)
{
    struct sip_client_txn *c = arg;
    (void)tm;

    /* The CANCEL brought no final response within 64*T1 (RFC 3261 §9.1). */
    client_fail(c, 408);
}

static void client_send_cancel(struct sip_client_txn *c)
{
    struct sip_txn_layer *l = c->b.l;
    struct strbuf b = STRBUF_INIT;
    struct sip_msg *msg = NULL;
    const struct sip_hdr *to = sip_msg_hdr_first(c->b.req, SIP_HDR_TO);

    c->cancel_pending = false;
    if (c->cancel_sent || !to)
        return;
    c->cancel_sent = true;
    put_ack_or_cancel(&b, c->b.req, "CANCEL", to->value, c->cancel_reason);
    /* Parsed back into a message: the CANCEL is a transaction of its own,
     * and the parser is the judge of what we built. */
    if (b.err || sip_msg_parse(b.p, b.len, &msg, NULL) != 0)
        log_warn("sip.txn.cancel_failed", "reason", b.err ? "out of memory" : "invalid");
    else if (!client_start(l, c->b.conn, msg, NULL, true))
        log_warn("sip.txn.cancel_failed", "reason", "no transaction");
    strbuf_free(&b);
    if (c->b.state != TXN_TERMINATED &&
        timer_start(l->timers, &c->cancel_timer, 64 * SIP_T1_MS, cancel_timer_cb, c) != 0)
        log_warn("sip.txn.cancel_timer", "reason", "out of memory");
}

static void client_timer_cb(struct timer *tm, void *arg)
{
    struct sip_client_txn *c = arg;
    (void)tm;

    if (c->internal || c->b.state == TXN_ACCEPTED) {
        /* A CANCEL's Timer F, or Timer M: ends quietly. */
        txn_terminate(&c->b);
        return;
    }
    /* Timer C with a provisional response: the proxy cancels the branch
     * before giving up on it (RFC 3261 §16.8). */
    if (c->b.method == SIP_METHOD_INVITE && c->b.state == TXN_PROCEEDING)
        client_send_cancel(c);
    client_fail(c, 408); /* Timer B, C or F */
}

static bool client_2xx_seen(struct sip_client_txn *c, const struct sip_msg *resp)
{
    struct sip_addr to;
    uint64_t h;

    if (sip_msg_to(resp, &to) != 0)
        return true;
    h = to.tag.p ? hash_bytes(to.tag.p, to.tag.n) : 0;
    for (unsigned i = 0; i < c->n_tags_2xx; i++)
        if (c->tags_2xx[i] == h)
            return true;
    if (c->n_tags_2xx < MAX_2XX_TAGS)
        c->tags_2xx[c->n_tags_2xx++] = h;
    return false;
}

static void client_on_response(struct sip_client_txn *c, const struct sip_msg *resp)
{
    struct sip_txn_layer *l = c->b.l;
    int st = resp->status;
    bool invite = c->b.method == SIP_METHOD_INVITE;

    if (c->internal) {
        /* Our CANCEL: its answer does not matter, the INVITE's does. */
        if (st >= 200)
            txn_terminate(&c->b);
        else
            c->b.state = TXN_PROCEEDING;
        return;
    }

    if (st < 200) {
        if (c->b.state == TXN_ACCEPTED)
            return; /* late provisional after a 2xx */
        /* Timer C starts with the first 1xx and restarts with each 1xx
         * other than 100 (RFC 3261 §16.7 step 2). */
        if (invite && (c->b.state == TXN_CALLING || st > 100))
            timer_start(l->timers, &c->b.timer, SIP_TIMER_C_MS, client_timer_cb, c);
        c->b.state = TXN_PROCEEDING;
        c->last_status = st;
        if (c->cancel_pending)
            client_send_cancel(c);
        if (c->b.state != TXN_TERMINATED)
            client_report(c, resp, st, false);
        return;
    }

    if (invite && st < 300) {
        if (c->b.state == TXN_ACCEPTED) {
            client_report(c, resp, st, client_2xx_seen(c, resp));
            return;
        }
        c->b.state = TXN_ACCEPTED;
        c->last_status = st;
        c->cancel_pending = false;
        timer_stop(l->timers, &c->cancel_timer);
        timer_start(l->timers, &c->b.timer, SIP_TIMER_M_MS, client_timer_cb, c);
        client_2xx_seen(c, resp);
        client_report(c, resp, st, false);
        return;
    }

    if (c->b.state == TXN_ACCEPTED)
        return; /* a non-2xx after a 2xx is dropped (RFC 6026) */
    c->last_status = st;
    c->cancel_pending = false;
    if (invite)
        client_send_ack(c, resp);
    /* Timer D (INVITE) and Timer K are zero on reliable transports. */
    txn_terminate(&c->b);
    client_report(c, resp, st, false);
}

static struct sip_client_txn *client_start(struct sip_txn_layer *l, uint64_t conn,
                                           struct sip_msg *req, void *ctx, bool internal)
{
    struct sip_via via;
    struct sip_client_txn *c = NULL;
    struct strbuf out = STRBUF_INIT;
    bool invite;

    if (!l || !req || l->freeing || !req->is_request || req->method == SIP_METHOD_ACK)
        goto fail;
    if (sip_msg_top_via(req, &via) != 0 || !via.branch.p || via.branch.n == 0)
        goto fail;
    if (client_find(l, via.branch, req->method, req->method_name)) {
        log_warn("sip.txn.branch_in_use", "method", sip_method_name(req->method));
        goto fail;
    }
    invite = req->method == SIP_METHOD_INVITE;
    c = calloc(1, sizeof(*c));
    if (!c)
        goto fail;
    c->b.l = l;
    c->b.req = req;
    c->b.conn = conn;
    c->b.state = invite ? TXN_CALLING : TXN_TRYING;
    c->b.branch = via.branch;
    c->b.method = req->method;
    c->b.method_name = req->method_name;
    c->b.ctx = ctx;
    c->internal = internal;
    if (sip_msg_print(req, &out) != 0)
        goto fail;
    if (timer_start(l->timers, &c->b.timer, invite ? SIP_TIMER_B_MS : SIP_TIMER_F_MS,
                    client_timer_cb, c) != 0)
        goto fail;
    txn_insert(l, &c->b);
    layer_send(l, conn, &out);
    return c;
fail:
    strbuf_free(&out);
    free(c);
    sip_msg_free(req);
    return NULL;
}

struct sip_client_txn *sip_txn_client_send(struct sip_txn_layer *l, uint64_t conn,
                                           struct sip_msg *req, void *ctx)
{
    return client_start(l, conn, req, ctx, false);
}

bool sip_txn_client_receive(struct sip_txn_layer *l, uint64_t conn, const struct sip_msg *resp)
{
    struct sip_via via;
    struct sip_client_txn *c;

    if (!l || !resp || resp->is_request || sip_msg_top_via(resp, &via) != 0 || !via.branch.p)
        return false;
    schedule_reap(l);
    c = client_find(l, via.branch, resp->cseq_method, resp->cseq_method_name);
    /* A response belongs to the connection its request went out on. */
    if (!c || c->b.conn != conn)
        return false;
    client_on_response(c, resp);
    return true;
}

const struct sip_msg *sip_client_txn_request(const struct sip_client_txn *t)
{
    return t->b.req;
}

uint64_t sip_client_txn_conn(const struct sip_client_txn *t)
{
    return t->b.conn;
}

void *sip_client_txn_context(const struct sip_client_txn *t)
{
    return t->b.ctx;
}

void sip_client_txn_set_context(struct sip_client_txn *t, void *ctx)
{
    t->b.ctx = ctx;
}

int sip_client_txn_last_status(const struct sip_client_txn *t)
{
    return t->last_status;
}

static bool reason_ok(const char *s)
{
    if (!*s)
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
            return false;
    return true;
}

void sip_client_txn_cancel(struct sip_client_txn *t, const char *reason)
{
    if (!t || t->internal || t->b.method != SIP_METHOD_INVITE || t->b.state == TXN_TERMINATED ||
        t->last_status >= 200 || t->cancel_pending || t->cancel_sent)
        return;
    if (reason && reason_ok(reason))
        t->cancel_reason = strdup(reason); /* without it, the CANCEL goes without a Reason */
    else if (reason)
        log_warn("sip.txn.cancel_reason_refused", "reason", "control characters");
    /* A CANCEL before any provisional response could overtake the INVITE
     * downstream (RFC 3261 §9.1): wait for one. */
    if (t->b.state == TXN_PROCEEDING)
        client_send_cancel(t);
    else
        t->cancel_pending = true;
}

void sip_txn_conn_closed(struct sip_txn_layer *l, uint64_t conn)
{
    uint64_t h = hash_u64(conn);
    struct txn *batch = NULL, **tail = &batch;

    if (!l)
        return;
    /* First end them all (no hook runs), then report: a hook cannot disturb
     * the walk of the table. */
    for (struct hmap_node *n = hmap_first(&l->by_conn, h), *next; n; n = next) {
        struct txn *t = container_of(n, struct txn, conn_node);
        next = hmap_next(n, h);
        if (t->conn != conn)
            continue;
        bool report = !t->is_server && t->state != TXN_ACCEPTED;
        txn_terminate(t);
        if (report) {
            t->next_closed = NULL;
            *tail = t;
            tail = &t->next_closed;
        }
    }
    for (struct txn *t = batch; t; t = t->next_closed)
        client_report(as_client(t), NULL, 503, false);
}
