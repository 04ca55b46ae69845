/*
 * presence (the server) on fake time, with a real transaction layer and
 * registrar and a fake environment (connections, rules): authorization by
 * policy and rules -- including watchers of other domains, which no
 * integration test can produce without a federated partner -- expiry,
 * throttling of NOTIFYs, and the life of NOTIFY transactions after their
 * subscription ends (a transaction must never point at a freed one).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/clock.h"
#include "net/conn.h"
#include "core/netaddr.h"
#include "core/strbuf.h"
#include "core/timer.h"
#include "presence/presence.h"
#include "registrar/registrar.h"
#include "sip/build.h"
#include "sip/msg.h"
#include "sip/txn.h"

#define DOMAIN    "example.test"
#define MAX_SENT  256
#define MAX_RULES 8

struct rule {
    const char *user, *watcher;
    enum presence_rule rule;
};

struct fx {
    struct clock_fake clk;
    struct timer_heap *heap;
    struct sip_txn_layer *l;
    struct registrar *reg;
    struct presence *ps;
    struct presence_config cfg;
    struct conn_info ci;
    uint64_t closed_conn; /* conn_info() answers NULL for it */
    struct {
        uint64_t conn;
        char *data;
        size_t len;
    } sent[MAX_SENT];
    size_t nsent;
    struct rule rules[MAX_RULES];
    size_t nrules;
    /* Set once no subscription may exist any more: a NOTIFY transaction
     * that still names one as its context names freed memory. */
    bool subs_gone;
    size_t stale_contexts;
    bool no_reap_at_teardown; /* shut down with answered transactions not yet reaped */
    unsigned branch;
};

/* --- hooks: what the proxy does with client transactions ------------------ */

static void hook_send(void *arg, uint64_t conn, struct strbuf *data)
{
    struct fx *f = arg;
    assert_true(f->nsent < MAX_SENT);
    f->sent[f->nsent].conn = conn;
    f->sent[f->nsent].data = strbuf_take(data, &f->sent[f->nsent].len);
    assert_non_null(f->sent[f->nsent].data);
    f->nsent++;
}

static void hook_client_response(void *arg, struct sip_client_txn *t, const struct sip_msg *resp,
                                 int status, bool retransmission)
{
    (void)arg;
    struct sip_txn_user *u = sip_client_txn_context(t);
    if (u && u->response)
        u->response(u, t, resp, status, retransmission);
}

static void hook_client_terminated(void *arg, struct sip_client_txn *t)
{
    struct fx *f = arg;
    struct sip_txn_user *u = sip_client_txn_context(t);
    if (u && f->subs_gone) {
        f->stale_contexts++; /* do not touch it: it was freed */
        return;
    }
    if (u && u->terminated)
        u->terminated(u, t);
}

static const struct sip_txn_hooks hooks = {
    .send = hook_send,
    .client_response = hook_client_response,
    .client_terminated = hook_client_terminated,
};

static const struct conn_info *env_conn_info(void *arg, uint64_t conn)
{
    struct fx *f = arg;
    if (conn == f->closed_conn)
        return NULL;
    f->ci.id = conn;
    return &f->ci;
}

static enum presence_rule env_rule(void *arg, const char *user, const char *watcher)
{
    struct fx *f = arg;
    for (size_t i = 0; i < f->nrules; i++)
        if (strcmp(f->rules[i].user, user) == 0 && strcmp(f->rules[i].watcher, watcher) == 0)
            return f->rules[i].rule;
    return PRESENCE_RULE_NONE;
}

static void on_added(void *arg, const struct binding *b)
{
    struct fx *f = arg;
    if (f->ps)
        presence_binding_added(f->ps, b);
}

static void on_removed(void *arg, const struct binding *b, const char *reason)
{
    (void)reason;
    struct fx *f = arg;
    if (f->ps)
        presence_binding_removed(f->ps, b);
}

static void start(struct fx *f, enum presence_policy policy, uint64_t min_notify_ms)
{
    f->cfg = (struct presence_config){
        .domain = DOMAIN,
        .policy = policy,
        .min_notify_interval_ms = min_notify_ms,
        .min_expires = 1,
        .max_expires = 3600,
        .max_subscriptions = 100,
        .max_per_user = 10,
        .max_per_watcher = 10,
    };
    struct presence_env env = {.arg = f, .conn_info = env_conn_info, .rule = env_rule};
    f->ps = presence_new(f->heap, f->l, f->reg, &env, &f->cfg);
    assert_non_null(f->ps);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    clock_fake_init(&f->clk, 5000000, 1700000000);
    f->heap = timer_heap_new(&f->clk.base);
    f->l = sip_txn_layer_new(f->heap, &hooks, f);
    struct registrar_config rc = {.domain = DOMAIN,
                                  .min_expires = 1,
                                  .max_expires = 3600,
                                  .default_expires = 600,
                                  .max_per_user = 10,
                                  .max_total = 100};
    f->reg = registrar_new(f->heap, &rc);
    assert_non_null(f->heap);
    assert_non_null(f->l);
    assert_non_null(f->reg);
    registrar_on_added(f->reg, on_added, f);
    registrar_on_removed(f->reg, on_removed, f);
    f->ci.tls = true;
    assert_int_equal(netaddr_parse("127.0.0.1:5061", &f->ci.local), 0);
    assert_int_equal(netaddr_parse("127.0.0.1:40000", &f->ci.peer), 0);
    snprintf(f->ci.tls_version, sizeof(f->ci.tls_version), "TLSv1.3");
    *state = f;
    return 0;
}

static void run(struct fx *f)
{
    for (int i = 0; i < 16 && timer_heap_run(f->heap); i++)
        ;
}

static void advance(struct fx *f, uint64_t ms)
{
    clock_fake_advance(&f->clk, ms);
    run(f);
}

static int teardown(void **state)
{
    struct fx *f = *state;
    /* the event loop has reaped what ended long before a shut-down, except
     * where a test says otherwise */
    if (!f->no_reap_at_teardown)
        run(f);
    size_t stale_before = f->stale_contexts;
    /* the order of sipcore_stop: presence, then the transactions */
    presence_free(f->ps);
    f->ps = NULL;
    f->subs_gone = true;
    sip_txn_layer_free(f->l);
    registrar_free(f->reg);
    timer_heap_free(f->heap);
    size_t stale = f->stale_contexts - stale_before;
    for (size_t i = 0; i < f->nsent; i++)
        free(f->sent[i].data);
    free(f);
    if (stale)
        fail_msg("%zu NOTIFY transaction(s) still named a freed subscription at shut-down", stale);
    return 0;
}

/* --- driving it ------------------------------------------------------------ */

static struct sip_msg *parse(const char *text, size_t len)
{
    struct sip_msg *m = NULL;
    struct sip_parse_error perr;
    if (sip_msg_parse(text, len, &m, &perr) != 0)
        fail_msg("parse failed: %s\n%.*s", perr.reason, (int)len, text);
    return m;
}

/* A request from a client on conn, handed to the transaction layer. */
static struct sip_server_txn *incoming(struct fx *f, uint64_t conn, const char *text)
{
    struct sip_msg *m = parse(text, strlen(text));
    struct sip_server_txn *st = NULL, *cancelled = NULL;
    assert_int_equal(sip_txn_server_receive(f->l, conn, m, &st, &cancelled), SIP_TXN_NEW);
    assert_non_null(st);
    return st;
}

static void subscribe(struct fx *f, uint64_t conn, const char *watcher, const char *presentity,
                      const char *call_id, unsigned expires)
{
    char buf[2048];
    unsigned b = ++f->branch;
    snprintf(buf, sizeof(buf),
             "SUBSCRIBE sip:%s@" DOMAIN " SIP/2.0\r\n"
             "Via: SIP/2.0/TLS 127.0.0.1:40000;branch=z9hG4bKsub%u\r\n"
             "Max-Forwards: 70\r\n"
             "From: <sip:w%u@watcher.test>;tag=w%u\r\n"
             "To: <sip:%s@" DOMAIN ">\r\n"
             "Call-ID: %s\r\n"
             "CSeq: 1 SUBSCRIBE\r\n"
             "Contact: <sip:watcher@127.0.0.1:40000;transport=tls>\r\n"
             "Event: presence\r\n"
             "Accept: application/pidf+xml\r\n"
             "Expires: %u\r\n"
             "Content-Length: 0\r\n\r\n",
             presentity, b, b, b, presentity, call_id, expires);
    presence_subscribe(f->ps, incoming(f, conn, buf), watcher, presentity);
}

static void register_device(struct fx *f, uint64_t conn, const char *user, unsigned expires)
{
    char buf[1024];
    unsigned b = ++f->branch;
    snprintf(buf, sizeof(buf),
             "REGISTER sip:" DOMAIN " SIP/2.0\r\n"
             "Via: SIP/2.0/TLS 127.0.0.1:40001;branch=z9hG4bKreg%u\r\n"
             "Max-Forwards: 70\r\n"
             "From: <sip:%s@" DOMAIN ">;tag=r%u\r\n"
             "To: <sip:%s@" DOMAIN ">\r\n"
             "Call-ID: reg-%s-%llu\r\n"
             "CSeq: 1 REGISTER\r\n"
             "Contact: <sip:%s@127.0.0.1:%llu;transport=tls>\r\n"
             "Expires: %u\r\n"
             "Content-Length: 0\r\n\r\n",
             b, user, b, user, user, (unsigned long long)conn, user,
             (unsigned long long)(41000 + conn), expires);
    struct sip_msg *m = parse(buf, strlen(buf));
    struct registrar_flow flow = {
        .conn = conn, .source = f->ci.peer, .transport = "TLS", .tls_version = "TLSv1.3"};
    int status = 0;
    const char *reason = NULL;
    struct strbuf h = STRBUF_INIT;
    registrar_register(f->reg, user, m, &flow, &status, &reason, &h);
    assert_int_equal(status, 200);
    strbuf_free(&h);
    sip_msg_free(m);
}

/* A PUBLISH of `activity`; with *etag set (not "") a modify of that
 * publication. *etag (if given) receives the new entity tag. */
static void publish_etag(struct fx *f, uint64_t conn, const char *user, const char *activity,
                         char *etag, size_t etag_cap)
{
    char body[1024], buf[3072];
    unsigned b = ++f->branch;
    snprintf(body, sizeof(body),
             "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" "
             "xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" entity=\"sip:%s@" DOMAIN "\">"
             "<tuple id=\"t\"><status><basic>open</basic></status></tuple>"
             "<rpid:activities><rpid:%s/></rpid:activities></presence>",
             user, activity);
    snprintf(buf, sizeof(buf),
             "PUBLISH sip:%s@" DOMAIN " SIP/2.0\r\n"
             "Via: SIP/2.0/TLS 127.0.0.1:40001;branch=z9hG4bKpub%u\r\n"
             "Max-Forwards: 70\r\n"
             "From: <sip:%s@" DOMAIN ">;tag=p%u\r\n"
             "To: <sip:%s@" DOMAIN ">\r\n"
             "Call-ID: pub-%u\r\n"
             "CSeq: 1 PUBLISH\r\n"
             "Event: presence\r\n"
             "Expires: 600\r\n"
             "%s%s%s"
             "Content-Type: application/pidf+xml\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             user, b, user, b, user, b, etag && etag[0] ? "SIP-If-Match: " : "",
             etag && etag[0] ? etag : "", etag && etag[0] ? "\r\n" : "", strlen(body), body);
    size_t mark = f->nsent;
    presence_publish(f->ps, incoming(f, conn, buf), user);
    assert_true(f->nsent > mark);
    if (strncmp(f->sent[mark].data, "SIP/2.0 200 ", 12) != 0)
        fail_msg("PUBLISH refused:\n%.*s", (int)f->sent[mark].len, f->sent[mark].data);
    if (etag) {
        const char *h = memmem(f->sent[mark].data, f->sent[mark].len, "SIP-ETag: ", 10);
        assert_non_null(h);
        h += 10;
        size_t n = strcspn(h, "\r\n");
        assert_true(n < etag_cap);
        memcpy(etag, h, n);
        etag[n] = '\0';
    }
}

static void publish(struct fx *f, uint64_t conn, const char *user, const char *activity)
{
    publish_etag(f, conn, user, activity, NULL, 0);
}

/* The index of the next NOTIFY sent from `from` on, or -1. */
static long next_notify(struct fx *f, size_t from)
{
    for (size_t i = from; i < f->nsent; i++)
        if (f->sent[i].len > 7 && memcmp(f->sent[i].data, "NOTIFY ", 7) == 0)
            return (long)i;
    return -1;
}

static size_t count_notifies(struct fx *f, size_t from)
{
    size_t n = 0;
    for (long i = next_notify(f, from); i >= 0; i = next_notify(f, (size_t)i + 1))
        n++;
    return n;
}

static bool sent_has(struct fx *f, size_t i, const char *s)
{
    return memmem(f->sent[i].data, f->sent[i].len, s, strlen(s)) != NULL;
}

/* The status of the response sent at i ("SIP/2.0 200 ..."). */
static int sent_status(struct fx *f, size_t i)
{
    if (f->sent[i].len < 12 || memcmp(f->sent[i].data, "SIP/2.0 ", 8) != 0)
        return 0;
    return atoi(f->sent[i].data + 8);
}

/* The watcher answers the NOTIFY sent at i. */
static void answer(struct fx *f, size_t i, int status)
{
    struct sip_msg *n = parse(f->sent[i].data, f->sent[i].len);
    struct strbuf out = STRBUF_INIT;
    assert_int_equal(sip_build_response(n, status, NULL, "wt", NULL, NULL, STRVIEW_EMPTY, &out), 0);
    struct sip_msg *r = parse(out.p, out.len);
    assert_true(sip_txn_client_receive(f->l, f->sent[i].conn, r));
    sip_msg_free(r);
    sip_msg_free(n);
    strbuf_free(&out);
}

/* Subscribes and returns the first NOTIFY's index (checked: one NOTIFY). */
static size_t watch(struct fx *f, uint64_t conn, const char *watcher, const char *call_id)
{
    size_t mark = f->nsent;
    subscribe(f, conn, watcher, "bob", call_id, 600);
    assert_true(f->nsent > mark);
    assert_int_equal(sent_status(f, mark), 200);
    long n = next_notify(f, mark);
    assert_true(n >= 0);
    return (size_t)n;
}

static bool is_active_with_state(struct fx *f, size_t i)
{
    return sent_has(f, i, "Subscription-State: active") &&
           sent_has(f, i, "Content-Type: application/pidf+xml\r\n") && sent_has(f, i, "<basic>");
}

static bool is_without_state(struct fx *f, size_t i)
{
    return !sent_has(f, i, "<basic>") && !sent_has(f, i, "Content-Type:") &&
           sent_has(f, i, "Content-Length: 0");
}

/* --- authorization ---------------------------------------------------------- */

static void test_domain_policy_same_domain_active(void **state)
{
    struct fx *f = *state;
    start(f, PRESENCE_POLICY_DOMAIN, 0);
    size_t n = watch(f, 1, "alice@" DOMAIN, "c1");
    assert_true(is_active_with_state(f, n));
    /* the domain compares without regard to case */
    n = watch(f, 1, "carol@EXAMPLE.Test", "c2");
    assert_true(is_active_with_state(f, n));
    /* a user watching themself */
    n = watch(f, 1, "bob@" DOMAIN, "c3");
    assert_true(is_active_with_state(f, n));
}

static void test_domain_policy_never_covers_other_domains(void **state)
{
    struct fx *f = *state;
    start(f, PRESENCE_POLICY_DOMAIN, 0);
    register_device(f, 9, "bob", 600);
    publish(f, 9, "bob", "busy");
    static const char *foreign[] = {
        "mallory@other.test",
        "mallory@example.test.evil.org",
        "mallory@sub.example.test",
        "mallory@xexample.test",
        "mallory@example.tes",
        "mallory@",
        "example.test",
        "mallory@other.test@" DOMAIN "x",
    };
    for (size_t k = 0; k < sizeof(foreign) / sizeof(foreign[0]); k++) {
        char cid[32];
        snprintf(cid, sizeof(cid), "f%zu", k);
        size_t n = watch(f, 1, foreign[k], cid);
        if (!sent_has(f, n, "Subscription-State: pending"))
            fail_msg("watcher %s is not pending:\n%.*s", foreign[k], (int)f->sent[n].len,
                     f->sent[n].data);
        assert_true(is_without_state(f, n));
    }
    /* bob changes: none of them hears of it */
    size_t mark = f->nsent;
    publish(f, 9, "bob", "away");
    run(f);
    assert_int_equal(count_notifies(f, mark), 0);
}

static void test_other_domain_allowed_by_rule(void **state)
{
    struct fx *f = *state;
    f->rules[f->nrules++] = (struct rule){"bob", "mallory@other.test", PRESENCE_RULE_ALLOW};
    start(f, PRESENCE_POLICY_DOMAIN, 0);
    size_t n = watch(f, 1, "mallory@other.test", "a1");
    assert_true(is_active_with_state(f, n));
    /* a rule of another user does not count */
    n = watch(f, 1, "trudy@other.test", "a2");
    assert_true(sent_has(f, n, "Subscription-State: pending"));
}

static void test_block_rule_rejects(void **state)
{
    struct fx *f = *state;
    f->rules[f->nrules++] = (struct rule){"bob", "alice@" DOMAIN, PRESENCE_RULE_BLOCK};
    start(f, PRESENCE_POLICY_DOMAIN, 0);
    size_t mark = f->nsent;
    subscribe(f, 1, "alice@" DOMAIN, "bob", "b1", 600);
    long n = next_notify(f, mark);
    assert_true(n >= 0);
    assert_true(sent_has(f, (size_t)n, "Subscription-State: terminated;reason=rejected"));
    assert_true(is_without_state(f, (size_t)n));
    assert_int_equal(presence_subscription_count(f->ps), 0);
}

static void test_contacts_policy(void **state)
{
    struct fx *f = *state;
    f->rules[f->nrules++] = (struct rule){"bob", "alice@" DOMAIN, PRESENCE_RULE_ALLOW};
    start(f, PRESENCE_POLICY_CONTACTS, 0);
    size_t n = watch(f, 1, "alice@" DOMAIN, "k1");
    assert_true(is_active_with_state(f, n));
    answer(f, n, 200);
    run(f);
    n = watch(f, 2, "carol@" DOMAIN, "k2");
    assert_true(sent_has(f, n, "Subscription-State: pending"));
    assert_true(is_without_state(f, n));
    answer(f, n, 200);
    run(f);

    /* carol is allowed: active, with the state */
    f->rules[f->nrules++] = (struct rule){"bob", "carol@" DOMAIN, PRESENCE_RULE_ALLOW};
    size_t mark = f->nsent;
    presence_rules_changed(f->ps, "bob");
    long k = next_notify(f, mark);
    assert_true(k >= 0);
    assert_true(is_active_with_state(f, (size_t)k));
    assert_int_equal(f->sent[k].conn, 2);
    assert_int_equal(count_notifies(f, mark), 1); /* alice is not bothered */
    answer(f, (size_t)k, 200);
    run(f);

    /* and blocked: terminated;reason=rejected */
    f->rules[f->nrules - 1].rule = PRESENCE_RULE_BLOCK;
    mark = f->nsent;
    presence_rules_changed(f->ps, NULL);
    k = next_notify(f, mark);
    assert_true(k >= 0);
    assert_true(sent_has(f, (size_t)k, "Subscription-State: terminated;reason=rejected"));
    assert_int_equal(presence_subscription_count(f->ps), 1);
    run(f);
}

/* Allowing a pending watcher is news for that watcher at once: the
 * throttle is for changes of the presentity's state. */
static void test_allow_notifies_at_once(void **state)
{
    struct fx *f = *state;
    start(f, PRESENCE_POLICY_CONTACTS, 5000);
    size_t n = watch(f, 1, "carol@" DOMAIN, "z1");
    assert_true(sent_has(f, n, "Subscription-State: pending"));
    answer(f, n, 200);
    run(f);
    f->rules[f->nrules++] = (struct rule){"bob", "carol@" DOMAIN, PRESENCE_RULE_ALLOW};
    size_t mark = f->nsent;
    advance(f, 100);
    presence_rules_changed(f->ps, "bob");
    run(f);
    long k = next_notify(f, mark);
    if (k < 0)
        fail_msg("no NOTIFY when carol was allowed (held back by min_notify_interval)");
    assert_true(is_active_with_state(f, (size_t)k));
}

static void test_policy_change_by_config(void **state)
{
    struct fx *f = *state;
    start(f, PRESENCE_POLICY_DOMAIN, 0);
    size_t n = watch(f, 1, "alice@" DOMAIN, "p1");
    answer(f, n, 200);
    run(f);
    struct presence_config c = f->cfg;
    c.policy = PRESENCE_POLICY_CONTACTS;
    size_t mark = f->nsent;
    presence_set_config(f->ps, &c);
    long k = next_notify(f, mark);
    assert_true(k >= 0);
    assert_true(sent_has(f, (size_t)k, "Subscription-State: terminated;reason=rejected"));
    assert_int_equal(presence_subscription_count(f->ps), 0);
    run(f);
}

/* --- time -------------------------------------------------------------------- */

static void test_subscription_expiry(void **state)
{
    struct fx *f = *state;
    start(f, PRESENCE_POLICY_DOMAIN, 0);
    size_t mark = f->nsent;
    subscribe(f, 1, "alice@" DOMAIN, "bob", "e1", 60);
    long n = next_notify(f, mark);
    assert_true(n >= 0);
    assert_true(sent_has(f, (size_t)n, "Subscription-State: active;expires=60"));
    answer(f, (size_t)n, 200);
    mark = f->nsent;
    advance(f, 59999);
    assert_int_equal(count_notifies(f, mark), 0);
    advance(f, 1);
    n = next_notify(f, mark);
    assert_true(n >= 0);
    assert_true(sent_has(f, (size_t)n, "Subscription-State: terminated;reason=timeout"));
    assert_int_equal(presence_subscription_count(f->ps), 0);
    run(f);
}

static void test_throttle(void **state)
{
    struct fx *f = *state;
    start(f, PRESENCE_POLICY_DOMAIN, 2000);
    register_device(f, 9, "bob", 600);
    size_t n = watch(f, 1, "alice@" DOMAIN, "t1");
    answer(f, n, 200);
    run(f);
    char etag[64] = "";
    size_t mark = f->nsent;
    advance(f, 100);
    publish_etag(f, 9, "bob", "busy", etag, sizeof(etag));
    advance(f, 100);
    publish_etag(f, 9, "bob", "meeting", etag, sizeof(etag));
    advance(f, 100);
    publish_etag(f, 9, "bob", "away", etag, sizeof(etag));
    advance(f, 1699); /* 1999 ms after the first NOTIFY */
    assert_int_equal(count_notifies(f, mark), 0);
    advance(f, 1);
    assert_int_equal(count_notifies(f, mark), 1);
    long k = next_notify(f, mark);
    assert_true(sent_has(f, (size_t)k, "<rpid:away/>"));
    assert_false(sent_has(f, (size_t)k, "busy"));
    answer(f, (size_t)k, 200);
    advance(f, 5000);
    assert_int_equal(count_notifies(f, mark), 1);

    /* a change after a quiet interval goes out at once */
    mark = f->nsent;
    publish_etag(f, 9, "bob", "busy", etag, sizeof(etag));
    assert_int_equal(count_notifies(f, mark), 1);
    k = next_notify(f, mark);

    /* while a NOTIFY is unanswered, changes wait for its answer */
    advance(f, 3000);
    mark = f->nsent;
    publish_etag(f, 9, "bob", "away", etag, sizeof(etag));
    advance(f, 100);
    assert_int_equal(count_notifies(f, mark), 0);
    answer(f, (size_t)k, 200);
    run(f);
    assert_int_equal(count_notifies(f, mark), 1);
    k = next_notify(f, mark);
    if (!sent_has(f, (size_t)k, "<rpid:away/>"))
        fail_msg("not the latest state:\n%.*s", (int)f->sent[k].len, f->sent[k].data);
    answer(f, (size_t)k, 200);
    run(f);
}

static void test_binding_end_removes_publication(void **state)
{
    struct fx *f = *state;
    start(f, PRESENCE_POLICY_DOMAIN, 0);
    register_device(f, 9, "bob", 10);
    publish(f, 9, "bob", "busy");
    assert_int_equal(presence_publication_count(f->ps), 1);
    size_t n = watch(f, 1, "alice@" DOMAIN, "x1");
    assert_true(sent_has(f, n, "<rpid:busy/>"));
    answer(f, n, 200);
    size_t mark = f->nsent;
    advance(f, 10000); /* the binding expires */
    assert_int_equal(presence_publication_count(f->ps), 0);
    long k = next_notify(f, mark);
    assert_true(k >= 0);
    assert_true(sent_has(f, (size_t)k, "<basic>closed</basic>"));
    answer(f, (size_t)k, 200);
    run(f);
}

/* --- NOTIFY transactions outliving their subscription ------------------------- */

/* The watcher answers a NOTIFY and its connection closes before the
 * transaction layer reaps the answered transaction (one event batch):
 * the transaction must not keep naming the freed subscription. */
static void test_conn_closed_after_answered_notify(void **state)
{
    struct fx *f = *state;
    start(f, PRESENCE_POLICY_DOMAIN, 0);
    size_t n = watch(f, 1, "alice@" DOMAIN, "u1");
    answer(f, n, 200); /* the NOTIFY transaction is over; reaped at the next timer run */
    /* sipcore: the proxy (transactions, bindings) first, then presence */
    sip_txn_conn_closed(f->l, 1);
    presence_conn_closed(f->ps, 1);
    assert_int_equal(presence_subscription_count(f->ps), 0);
    f->subs_gone = true;
    run(f);
    if (f->stale_contexts)
        fail_msg("%zu NOTIFY transaction(s) reaped with a freed subscription as context "
                 "(use after free in the terminated hook)",
                 f->stale_contexts);
}

/* The same with a NOTIFY in flight when the connection closes. */
static void test_conn_closed_with_notify_in_flight(void **state)
{
    struct fx *f = *state;
    start(f, PRESENCE_POLICY_DOMAIN, 0);
    register_device(f, 9, "bob", 600);
    size_t n = watch(f, 1, "alice@" DOMAIN, "u2");
    answer(f, n, 200);
    publish(f, 9, "bob", "away"); /* a second NOTIFY, not answered */
    sip_txn_conn_closed(f->l, 1);
    presence_conn_closed(f->ps, 1);
    assert_int_equal(presence_subscription_count(f->ps), 0);
    f->subs_gone = true;
    run(f);
    if (f->stale_contexts)
        fail_msg("%zu NOTIFY transaction(s) reaped with a freed subscription as context "
                 "(use after free in the terminated hook)",
                 f->stale_contexts);
}

/* Shut-down right after an answered NOTIFY (sipcore_stop frees presence
 * before the transaction layer): teardown checks the contexts. */
static void test_shutdown_after_answered_notify(void **state)
{
    struct fx *f = *state;
    f->no_reap_at_teardown = true;
    start(f, PRESENCE_POLICY_DOMAIN, 0);
    size_t n = watch(f, 1, "alice@" DOMAIN, "s1");
    answer(f, n, 200);
    n = watch(f, 2, "carol@" DOMAIN, "s2"); /* left unanswered: in flight */
    (void)n;
}

static void test_watcher_unreachable(void **state)
{
    struct fx *f = *state;
    start(f, PRESENCE_POLICY_DOMAIN, 0);
    register_device(f, 9, "bob", 600);
    size_t n = watch(f, 1, "alice@" DOMAIN, "w1");
    answer(f, n, 200);
    run(f);
    /* the connection is gone but its close not yet processed: no NOTIFY */
    f->closed_conn = 1;
    size_t mark = f->nsent;
    publish(f, 9, "bob", "away");
    run(f);
    assert_int_equal(count_notifies(f, mark), 0);
    presence_conn_closed(f->ps, 1);
    assert_int_equal(presence_subscription_count(f->ps), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_domain_policy_same_domain_active, setup, teardown),
        cmocka_unit_test_setup_teardown(test_domain_policy_never_covers_other_domains, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_other_domain_allowed_by_rule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_block_rule_rejects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contacts_policy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_allow_notifies_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_change_by_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subscription_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_throttle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binding_end_removes_publication, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conn_closed_after_answered_notify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conn_closed_with_notify_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_after_answered_notify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watcher_unreachable, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
