/*
 * Unit tests of src/registrar/registrar.c on a fake clock: bindings made,
 * refreshed, expired, capped and refused, wildcard and per-contact
 * un-registration, device limits, connection close, the removed hook and
 * REGISTER ordering.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/clock.h"
#include "core/netaddr.h"
#include "core/strbuf.h"
#include "core/timer.h"
#include "registrar/registrar.h"
#include "sip/msg.h"

#define WALL0 1700000000

/* --- the removed hook: a record of every call --- */

#define MAX_REMOVED 32

struct removal {
    char user[64];
    char contact[256];
    char reason[64];
    uint64_t conn;
};

struct fx {
    struct clock_fake clock;
    struct timer_heap *timers;
    struct registrar *reg;
    struct registrar_config cfg;
    struct removal removed[MAX_REMOVED];
    size_t nremoved;
    char added[MAX_REMOVED][256];
    size_t nadded;
    /* the last REGISTER's outcome */
    int status;
    const char *reason;
    struct strbuf headers;
};

static void on_removed(void *arg, const struct binding *b, const char *reason)
{
    struct fx *f = arg;
    assert_true(f->nremoved < MAX_REMOVED);
    struct removal *r = &f->removed[f->nremoved++];
    snprintf(r->user, sizeof(r->user), "%s", b->user);
    snprintf(r->contact, sizeof(r->contact), "%s", b->contact);
    snprintf(r->reason, sizeof(r->reason), "%s", reason);
    r->conn = b->conn;
}

static void on_added(void *arg, const struct binding *b)
{
    struct fx *f = arg;
    assert_true(f->nadded < MAX_REMOVED);
    snprintf(f->added[f->nadded++], sizeof(f->added[0]), "%s", b->contact);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    clock_fake_init(&f->clock, 5000000, WALL0);
    f->timers = timer_heap_new(&f->clock.base);
    f->cfg = (struct registrar_config){
        .domain = "example.test",
        .min_expires = 60,
        .max_expires = 3600,
        .default_expires = 1800,
        .max_per_user = 3,
        .max_total = 6,
    };
    f->reg = f->timers ? registrar_new(f->timers, &f->cfg) : NULL;
    if (!f->reg)
        return -1;
    registrar_on_removed(f->reg, on_removed, f);
    registrar_on_added(f->reg, on_added, f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    registrar_free(f->reg);
    timer_heap_free(f->timers);
    strbuf_free(&f->headers);
    free(f);
    return 0;
}

/* --- building REGISTERs --- */

struct req {
    const char *user;    /* To/From user (default alice) */
    const char *call_id; /* default "cid-1" */
    unsigned cseq;
    const char *contacts; /* complete Contact header lines, or NULL */
    long expires;         /* Expires header; < 0: none */
    uint64_t conn;        /* the connection it came on (default 1) */
};

static struct sip_msg *build(const struct req *q)
{
    char text[4096];
    char exp[64] = "";
    const char *user = q->user ? q->user : "alice";
    if (q->expires >= 0)
        snprintf(exp, sizeof(exp), "Expires: %ld\r\n", q->expires);
    int n = snprintf(text, sizeof(text),
                     "REGISTER sip:example.test SIP/2.0\r\n"
                     "Via: SIP/2.0/TLS 10.0.0.1:5061;branch=z9hG4bKtest%u\r\n"
                     "Max-Forwards: 70\r\n"
                     "From: <sip:%s@example.test>;tag=t1\r\n"
                     "To: <sip:%s@example.test>\r\n"
                     "Call-ID: %s\r\n"
                     "CSeq: %u REGISTER\r\n"
                     "%s%s"
                     "User-Agent: unit-test/1.0\r\n"
                     "Content-Length: 0\r\n\r\n",
                     q->cseq, user, user, q->call_id ? q->call_id : "cid-1", q->cseq,
                     q->contacts ? q->contacts : "", exp);
    assert_true(n > 0 && (size_t)n < sizeof(text));
    struct sip_msg *m = NULL;
    struct sip_parse_error perr;
    assert_int_equal(sip_msg_parse(text, (size_t)n, &m, &perr), 0);
    assert_non_null(m);
    return m;
}

/* Applies a REGISTER; the outcome goes to f->status, reason, headers. */
static int do_register(struct fx *f, struct req q)
{
    if (!q.conn)
        q.conn = 1;
    if (!q.cseq)
        q.cseq = 1;
    struct sip_msg *m = build(&q);
    struct registrar_flow flow = {
        .conn = q.conn,
        .transport = "TLS",
        .tls_version = "TLSv1.3",
    };
    char src[32];
    snprintf(src, sizeof(src), "10.0.0.%u", (unsigned)(q.conn % 250) + 1);
    assert_int_equal(netaddr_parse_ip(src, 40000, &flow.source), 0);
    strbuf_reset(&f->headers);
    f->status = 0;
    f->reason = NULL;
    registrar_register(f->reg, q.user ? q.user : "alice", m, &flow, &f->status, &f->reason,
                       &f->headers);
    sip_msg_free(m);
    return f->status;
}

static const char *hdrs(struct fx *f)
{
    return strbuf_cstr(&f->headers);
}

static size_t count_substr(const char *s, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

static size_t lookup(struct fx *f, const char *user, const struct binding **out, size_t max)
{
    return registrar_lookup(f->reg, user, out, max);
}

/* Moves fake time on and fires what is due. */
static void advance(struct fx *f, uint64_t ms)
{
    clock_fake_advance(&f->clock, ms);
    timer_heap_run(f->timers);
}

#define C_A "Contact: <sip:alice@10.0.0.2:5061;transport=tls>\r\n"
#define C_B "Contact: <sip:alice@10.0.0.3:5061;transport=tls>\r\n"
#define C_C "Contact: <sip:alice@10.0.0.4:5061;transport=tls>\r\n"
#define C_D "Contact: <sip:alice@10.0.0.5:5061;transport=tls>\r\n"

/* --- tests --- */

static void test_register_creates_binding(void **state)
{
    struct fx *f = *state;
    assert_int_equal(do_register(f, (struct req){.contacts = C_A, .expires = 600, .conn = 7}), 200);
    assert_string_equal(hdrs(f),
                        "Contact: <sip:alice@10.0.0.2:5061;transport=tls>;expires=600\r\n");
    assert_int_equal(registrar_count(f->reg), 1);

    const struct binding *b[4];
    assert_int_equal(lookup(f, "alice", b, 4), 1);
    assert_string_equal(b[0]->user, "alice");
    assert_string_equal(b[0]->contact, "sip:alice@10.0.0.2:5061;transport=tls");
    assert_string_equal(b[0]->user_agent, "unit-test/1.0");
    assert_string_equal(b[0]->transport, "TLS");
    assert_string_equal(b[0]->tls_version, "TLSv1.3");
    assert_int_equal(b[0]->conn, 7);
    char src[NETADDR_STRLEN];
    assert_string_equal(netaddr_format(&b[0]->source, src), "10.0.0.8:40000");
    assert_int_equal(b[0]->registered_at, WALL0);
    assert_int_equal(b[0]->expires_at, WALL0 + 600);
    assert_true(registrar_conn_in_use(f->reg, 7));
    assert_false(registrar_conn_in_use(f->reg, 8));
    assert_ptr_equal(registrar_find_flow(f->reg, "alice", 7), b[0]);
    assert_null(registrar_find_flow(f->reg, "alice", 8));
    assert_null(registrar_find_flow(f->reg, "bob", 7));
    assert_int_equal(lookup(f, "bob", b, 4), 0);

    struct sip_uri u;
    assert_int_equal(sip_uri_parse(strview_cstr("sip:alice@10.0.0.2:5061;transport=tls"), &u), 0);
    assert_ptr_equal(registrar_find_contact(f->reg, &u), b[0]);
    assert_int_equal(sip_uri_parse(strview_cstr("sip:alice@10.0.0.9:5061;transport=tls"), &u), 0);
    assert_null(registrar_find_contact(f->reg, &u));
    assert_int_equal(f->nremoved, 0);
}

static void test_added_hook_once_per_new_binding(void **state)
{
    struct fx *f = *state;
    assert_int_equal(do_register(f, (struct req){.contacts = C_A C_B, .expires = 600}), 200);
    assert_int_equal(f->nadded, 2);
    /* refreshes, refusals and removals add nothing */
    assert_int_equal(do_register(f, (struct req){.cseq = 2, .contacts = C_A, .expires = 900}), 200);
    assert_int_equal(do_register(f, (struct req){.cseq = 3, .contacts = C_C, .expires = 10}), 423);
    assert_int_equal(do_register(f, (struct req){.cseq = 4, .contacts = C_B, .expires = 0}), 200);
    assert_int_equal(f->nadded, 2);
    /* bound again after its removal: new again */
    assert_int_equal(do_register(f, (struct req){.cseq = 5, .contacts = C_B, .expires = 600}), 200);
    assert_int_equal(f->nadded, 3);
    assert_string_equal(f->added[2], "sip:alice@10.0.0.3:5061;transport=tls");
}

static void test_query_lists_without_changing(void **state)
{
    struct fx *f = *state;
    assert_int_equal(do_register(f, (struct req){.contacts = C_A, .expires = 600}), 200);
    advance(f, 100 * 1000);
    assert_int_equal(do_register(f, (struct req){.cseq = 2, .expires = -1}), 200);
    assert_string_equal(hdrs(f),
                        "Contact: <sip:alice@10.0.0.2:5061;transport=tls>;expires=500\r\n");
    const struct binding *b[1];
    assert_int_equal(lookup(f, "alice", b, 1), 1);
    assert_int_equal(b[0]->expires_at, WALL0 + 600);
    /* nobody registered: an empty list */
    assert_int_equal(do_register(f, (struct req){.user = "bob", .call_id = "cid-b", .expires = -1}),
                     200);
    assert_string_equal(hdrs(f), "");
}

static void test_refresh_restarts_the_timer(void **state)
{
    struct fx *f = *state;
    assert_int_equal(do_register(f, (struct req){.contacts = C_A, .expires = 600}), 200);
    advance(f, 500 * 1000);
    assert_int_equal(do_register(f, (struct req){.cseq = 2, .contacts = C_A, .expires = 600}), 200);
    const struct binding *b[2];
    assert_int_equal(lookup(f, "alice", b, 2), 1);
    assert_int_equal(b[0]->registered_at, WALL0);
    assert_int_equal(b[0]->expires_at, WALL0 + 1100);
    /* past the first expiry: still there */
    advance(f, 200 * 1000);
    assert_int_equal(lookup(f, "alice", b, 2), 1);
    assert_int_equal(f->nremoved, 0);
    /* one millisecond before the second expiry, then at it */
    advance(f, 400 * 1000 - 1);
    assert_int_equal(lookup(f, "alice", b, 2), 1);
    advance(f, 1);
    assert_int_equal(lookup(f, "alice", b, 2), 0);
    assert_int_equal(registrar_count(f->reg), 0);
    assert_int_equal(f->nremoved, 1);
    assert_string_equal(f->removed[0].reason, "expired");
    assert_string_equal(f->removed[0].user, "alice");
    assert_string_equal(f->removed[0].contact, "sip:alice@10.0.0.2:5061;transport=tls");
    assert_false(registrar_conn_in_use(f->reg, 1));
    /* a shorter refresh shortens */
    assert_int_equal(do_register(f, (struct req){.cseq = 3, .contacts = C_B, .expires = 900}), 200);
    assert_int_equal(do_register(f, (struct req){.cseq = 4, .contacts = C_B, .expires = 60}), 200);
    advance(f, 60 * 1000);
    assert_int_equal(lookup(f, "alice", b, 2), 0);
    assert_int_equal(f->nremoved, 2);
    /* nothing left to fire */
    advance(f, 3600 * 1000);
    assert_int_equal(f->nremoved, 2);
    assert_int_equal(timer_heap_count(f->timers), 0);
}

static void test_interval_too_brief(void **state)
{
    struct fx *f = *state;
    assert_int_equal(do_register(f, (struct req){.contacts = C_A, .expires = 59}), 423);
    assert_string_equal(f->reason, "Interval Too Brief");
    assert_string_equal(hdrs(f), "Min-Expires: 60\r\n");
    assert_int_equal(registrar_count(f->reg), 0);
    /* the Contact parameter wins over the header, both ways */
    assert_int_equal(do_register(f, (struct req){.cseq = 2,
                                                 .contacts = "Contact: <sip:alice@10.0.0.2:5061>"
                                                             ";expires=30\r\n",
                                                 .expires = 600}),
                     423);
    assert_int_equal(registrar_count(f->reg), 0);
    assert_int_equal(do_register(f, (struct req){.cseq = 3,
                                                 .contacts = "Contact: <sip:alice@10.0.0.2:5061>"
                                                             ";expires=120\r\n",
                                                 .expires = 30}),
                     200);
    assert_string_equal(hdrs(f), "Contact: <sip:alice@10.0.0.2:5061>;expires=120\r\n");
    /* one brief Contact refuses the whole request */
    assert_int_equal(do_register(f, (struct req){.cseq = 4,
                                                 .contacts = C_B "Contact: <sip:alice@10.0.0.9>"
                                                                 ";expires=10\r\n",
                                                 .expires = 600}),
                     423);
    assert_int_equal(registrar_count(f->reg), 1);
    /* exactly the minimum is enough; 0 is not "brief" */
    assert_int_equal(do_register(f, (struct req){.cseq = 5, .contacts = C_C, .expires = 60}), 200);
    assert_int_equal(do_register(f, (struct req){.cseq = 6, .contacts = C_D, .expires = 0}), 200);
    assert_int_equal(registrar_count(f->reg), 2);
    /* a new minimum applies to the next request */
    f->cfg.min_expires = 300;
    registrar_set_config(f->reg, &f->cfg);
    assert_int_equal(do_register(f, (struct req){.cseq = 7, .contacts = C_C, .expires = 200}), 423);
    assert_string_equal(hdrs(f), "Min-Expires: 300\r\n");
    assert_int_equal(f->nremoved, 0);
}

static void test_max_expires_and_default(void **state)
{
    struct fx *f = *state;
    assert_int_equal(do_register(f, (struct req){.contacts = C_A, .expires = 7200}), 200);
    assert_string_equal(hdrs(f),
                        "Contact: <sip:alice@10.0.0.2:5061;transport=tls>;expires=3600\r\n");
    const struct binding *b[2];
    assert_int_equal(lookup(f, "alice", b, 2), 1);
    assert_int_equal(b[0]->expires_at, WALL0 + 3600);
    /* the largest value a Contact may carry */
    assert_int_equal(
        do_register(f, (struct req){.cseq = 2,
                                    .contacts = "Contact: <sip:alice@10.0.0.2:5061;"
                                                "transport=tls>;expires=4294967295\r\n",
                                    .expires = -1}),
        200);
    assert_int_equal(lookup(f, "alice", b, 2), 1);
    assert_int_equal(b[0]->expires_at, WALL0 + 3600);
    /* no Expires anywhere: the default */
    assert_int_equal(do_register(f, (struct req){.cseq = 3, .contacts = C_B, .expires = -1}), 200);
    assert_int_equal(lookup(f, "alice", b, 2), 2);
    assert_int_equal(b[0]->expires_at, WALL0 + 1800);
    advance(f, 1800 * 1000);
    assert_int_equal(lookup(f, "alice", b, 2), 1);
    advance(f, 1800 * 1000);
    assert_int_equal(lookup(f, "alice", b, 2), 0);
    assert_int_equal(f->nremoved, 2);
}

static void test_unregister_one_contact(void **state)
{
    struct fx *f = *state;
    assert_int_equal(do_register(f, (struct req){.contacts = C_A C_B, .expires = 600}), 200);
    assert_int_equal(count_substr(hdrs(f), "Contact: "), 2);
    assert_int_equal(do_register(f, (struct req){.cseq = 2, .contacts = C_A, .expires = 0}), 200);
    assert_string_equal(hdrs(f),
                        "Contact: <sip:alice@10.0.0.3:5061;transport=tls>;expires=600\r\n");
    assert_int_equal(f->nremoved, 1);
    assert_string_equal(f->removed[0].reason, "un-registered");
    assert_string_equal(f->removed[0].contact, "sip:alice@10.0.0.2:5061;transport=tls");
    /* again: nothing to remove, nothing reported */
    assert_int_equal(do_register(f, (struct req){.cseq = 3, .contacts = C_A, .expires = 0}), 200);
    assert_int_equal(f->nremoved, 1);
    /* the last one, by its expires parameter */
    assert_int_equal(do_register(f, (struct req){.cseq = 4,
                                                 .contacts = "Contact: <sip:alice@10.0.0.3:5061;"
                                                             "transport=tls>;expires=0\r\n",
                                                 .expires = 600}),
                     200);
    assert_string_equal(hdrs(f), "");
    assert_int_equal(registrar_count(f->reg), 0);
    assert_int_equal(f->nremoved, 2);
    /* the timers went with them */
    advance(f, 700 * 1000);
    assert_int_equal(f->nremoved, 2);
}

static void test_wildcard(void **state)
{
    struct fx *f = *state;
    assert_int_equal(do_register(f, (struct req){.contacts = C_A C_B, .expires = 600}), 200);
    assert_int_equal(do_register(f, (struct req){.user = "bob",
                                                 .call_id = "cid-b",
                                                 .contacts = "Contact: <sip:bob@10.0.0.7>\r\n",
                                                 .expires = 600}),
                     200);
    /* malformed wildcards change nothing */
    assert_int_equal(
        do_register(f, (struct req){.cseq = 2, .contacts = "Contact: *\r\n", .expires = 600}), 400);
    assert_int_equal(
        do_register(f, (struct req){.cseq = 3, .contacts = "Contact: *\r\n", .expires = -1}), 400);
    assert_int_equal(
        do_register(f, (struct req){.cseq = 4, .contacts = "Contact: *\r\n" C_C, .expires = 0}),
        400);
    assert_int_equal(registrar_count(f->reg), 3);
    assert_int_equal(f->nremoved, 0);

    assert_int_equal(
        do_register(f, (struct req){.cseq = 5, .contacts = "Contact: *\r\n", .expires = 0}), 200);
    assert_int_equal(registrar_count(f->reg), 1);
    assert_int_equal(f->nremoved, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_string_equal(f->removed[i].user, "alice");
        assert_string_equal(f->removed[i].reason, "un-registered");
    }
    assert_string_not_equal(f->removed[0].contact, f->removed[1].contact);
    const struct binding *b[2];
    assert_int_equal(lookup(f, "alice", b, 2), 0);
    assert_int_equal(lookup(f, "bob", b, 2), 1);
    /* with nothing bound it is still fine */
    assert_int_equal(
        do_register(f, (struct req){.cseq = 6, .contacts = "Contact: *\r\n", .expires = 0}), 200);
    assert_int_equal(f->nremoved, 2);
    advance(f, 700 * 1000);
    assert_int_equal(f->nremoved, 3); /* bob's expiry only */
    assert_string_equal(f->removed[2].user, "bob");
}

static void test_device_limits(void **state)
{
    struct fx *f = *state;
    assert_int_equal(do_register(f, (struct req){.contacts = C_A C_B, .expires = 600}), 200);
    /* two new ones would make four: all or nothing */
    assert_int_equal(do_register(f, (struct req){.cseq = 2, .contacts = C_C C_D, .expires = 600}),
                     403);
    assert_int_equal(registrar_count(f->reg), 2);
    assert_int_equal(do_register(f, (struct req){.cseq = 3, .contacts = C_C, .expires = 600}), 200);
    assert_int_equal(do_register(f, (struct req){.cseq = 4, .contacts = C_D, .expires = 600}), 403);
    /* refreshing one already bound is no new device */
    assert_int_equal(
        do_register(f, (struct req){.cseq = 5, .contacts = C_A C_B C_C, .expires = 600}), 200);
    assert_int_equal(registrar_count(f->reg), 3);
    /* the server-wide limit (6) counts every user */
    assert_int_equal(do_register(f, (struct req){.user = "bob",
                                                 .call_id = "b",
                                                 .contacts = "Contact: <sip:bob@10.0.0.7>\r\n"
                                                             "Contact: <sip:bob@10.0.0.8>\r\n"
                                                             "Contact: <sip:bob@10.0.0.9>\r\n",
                                                 .expires = 600}),
                     200);
    assert_int_equal(registrar_count(f->reg), 6);
    assert_int_equal(do_register(f, (struct req){.user = "carol",
                                                 .call_id = "c",
                                                 .contacts = "Contact: <sip:carol@10.0.0.10>\r\n",
                                                 .expires = 600}),
                     403);
    assert_int_equal(registrar_count(f->reg), 6);
    assert_int_equal(f->nremoved, 0);
}

static void test_removals_make_room(void **state)
{
    struct fx *f = *state;
    assert_int_equal(do_register(f, (struct req){.contacts = C_A C_B C_C, .expires = 600}), 200);
    /* at the limit (3): removing A makes room for D in the same REGISTER */
    const char *swap = "Contact: <sip:alice@10.0.0.2:5061;transport=tls>;expires=0\r\n" C_D;
    assert_int_equal(do_register(f, (struct req){.cseq = 2, .contacts = swap, .expires = 600}),
                     200);
    assert_int_equal(registrar_count(f->reg), 3);
    /* one device named twice is refused whole, whatever the order: each
     * mention would change what the next one finds */
    const char *again = "Contact: <sip:alice@10.0.0.3:5061;transport=tls>;expires=0\r\n" C_B
                        "Contact: <sip:alice@10.0.0.6:5061;transport=tls>\r\n";
    const char *last = C_B "Contact: <sip:alice@10.0.0.3:5061;transport=tls>;expires=0\r\n"
                           "Contact: <sip:alice@10.0.0.6:5061;transport=tls>\r\n";
    const char *instances = "Contact: <sip:alice@10.0.0.7:5061>;+sip.instance=\"<urn:a>\"\r\n"
                            "Contact: <sip:alice@10.0.0.7:5061>;+sip.instance=\"<urn:b>\"\r\n";
    unsigned cseq = 3;
    for (const char *const *c = (const char *const[]){again, last, instances, NULL}; *c; c++) {
        assert_int_equal(
            do_register(f, (struct req){.cseq = cseq++, .contacts = *c, .expires = 600}), 400);
        assert_int_equal(registrar_count(f->reg), 3);
    }
    /* a device (by instance) that moves, named with its old address too:
     * both name one binding */
    assert_int_equal(do_register(f, (struct req){.user = "bob",
                                                 .call_id = "b",
                                                 .contacts = "Contact: <sip:bob@10.0.0.9>;"
                                                             "+sip.instance=\"<urn:x>\"\r\n"
                                                             "Contact: <sip:bob@10.0.0.10>\r\n",
                                                 .expires = 600}),
                     200);
    assert_int_equal(
        do_register(f, (struct req){.user = "bob",
                                    .call_id = "b",
                                    .cseq = 2,
                                    .contacts = "Contact: <sip:bob@10.0.0.11>;"
                                                "+sip.instance=\"<urn:x>\"\r\n"
                                                "Contact: <sip:bob@10.0.0.9>;expires=0\r\n"
                                                "Contact: <sip:bob@10.0.0.12>\r\n",
                                    .expires = 600}),
        400);
    assert_int_equal(registrar_count(f->reg), 5);
}

static void test_conn_closed_removes_its_bindings(void **state)
{
    struct fx *f = *state;
    f->cfg.max_total = 100;
    registrar_set_config(f->reg, &f->cfg);
    assert_int_equal(do_register(f, (struct req){.contacts = C_A, .expires = 600, .conn = 1}), 200);
    assert_int_equal(
        do_register(f,
                    (struct req){.call_id = "cid-2", .contacts = C_B, .expires = 600, .conn = 2}),
        200);
    assert_int_equal(
        do_register(f,
                    (struct req){.call_id = "cid-3", .contacts = C_C, .expires = 600, .conn = 1}),
        200);
    assert_int_equal(do_register(f, (struct req){.user = "bob",
                                                 .call_id = "b",
                                                 .contacts = "Contact: <sip:bob@10.0.0.7>\r\n",
                                                 .expires = 600,
                                                 .conn = 1}),
                     200);
    assert_int_equal(do_register(f, (struct req){.user = "carol",
                                                 .call_id = "c",
                                                 .contacts = "Contact: <sip:carol@10.0.0.8>\r\n",
                                                 .expires = 600,
                                                 .conn = 3}),
                     200);
    assert_int_equal(registrar_count(f->reg), 5);

    registrar_conn_closed(f->reg, 99); /* nothing on it */
    assert_int_equal(f->nremoved, 0);

    registrar_conn_closed(f->reg, 1);
    assert_int_equal(f->nremoved, 3);
    for (size_t i = 0; i < f->nremoved; i++) {
        assert_string_equal(f->removed[i].reason, "connection closed");
        assert_int_equal(f->removed[i].conn, 1);
    }
    assert_int_equal(registrar_count(f->reg), 2);
    assert_false(registrar_conn_in_use(f->reg, 1));
    const struct binding *b[4];
    assert_int_equal(lookup(f, "alice", b, 4), 1);
    assert_int_equal(b[0]->conn, 2);
    assert_int_equal(lookup(f, "bob", b, 4), 0);
    assert_int_equal(lookup(f, "carol", b, 4), 1);
    /* again: nothing more */
    registrar_conn_closed(f->reg, 1);
    assert_int_equal(f->nremoved, 3);
    /* the timers of what went are gone; the others still fire, once each */
    advance(f, 600 * 1000);
    assert_int_equal(f->nremoved, 5);
    assert_string_equal(f->removed[3].reason, "expired");
    assert_string_equal(f->removed[4].reason, "expired");
    assert_int_equal(registrar_count(f->reg), 0);
    advance(f, 3600 * 1000);
    assert_int_equal(f->nremoved, 5);
}

static void test_a_binding_follows_its_latest_connection(void **state)
{
    struct fx *f = *state;
    /* the device reconnects and registers the same contact again */
    assert_int_equal(do_register(f, (struct req){.contacts = C_A, .expires = 600, .conn = 1}), 200);
    assert_int_equal(
        do_register(f,
                    (struct req){.call_id = "cid-new", .contacts = C_A, .expires = 600, .conn = 2}),
        200);
    const struct binding *b[2];
    assert_int_equal(lookup(f, "alice", b, 2), 1);
    assert_int_equal(b[0]->conn, 2);
    registrar_conn_closed(f->reg, 1);
    assert_int_equal(lookup(f, "alice", b, 2), 1);
    assert_int_equal(f->nremoved, 0);
    registrar_conn_closed(f->reg, 2);
    assert_int_equal(lookup(f, "alice", b, 2), 0);
    assert_int_equal(f->nremoved, 1);
}

static void test_instance_id_replaces_the_contact(void **state)
{
    struct fx *f = *state;
    /* RFC 5626 §6: the same +sip.instance from a new address is the same
     * device; its binding takes the new Contact */
    assert_int_equal(
        do_register(f, (struct req){.contacts =
                                        "Contact: <sip:alice@10.0.0.2:5061>;+sip.instance="
                                        "\"<urn:uuid:00000000-0000-0000-0000-000000000001>\"\r\n",
                                    .expires = 600,
                                    .conn = 1}),
        200);
    assert_int_equal(
        do_register(f, (struct req){.call_id = "cid-2",
                                    .contacts =
                                        "Contact: <sip:alice@10.0.0.99:5062>;+sip.instance="
                                        "\"<urn:uuid:00000000-0000-0000-0000-000000000001>\"\r\n",
                                    .expires = 600,
                                    .conn = 2}),
        200);
    const struct binding *b[2];
    assert_int_equal(lookup(f, "alice", b, 2), 1);
    assert_int_equal(b[0]->conn, 2);
    assert_string_equal(b[0]->contact, "sip:alice@10.0.0.99:5062");
    /* the device's instance is echoed (RFC 5626 §6) */
    assert_string_equal(hdrs(f), "Contact: <sip:alice@10.0.0.99:5062>;expires=600;+sip.instance="
                                 "\"<urn:uuid:00000000-0000-0000-0000-000000000001>\"\r\n");
    struct sip_uri u;
    assert_int_equal(sip_uri_parse(strview_cstr("sip:alice@10.0.0.99:5062"), &u), 0);
    assert_ptr_equal(registrar_find_contact(f->reg, &u), b[0]);
}

static void test_cseq_ordering(void **state)
{
    struct fx *f = *state;
    assert_int_equal(do_register(f, (struct req){.cseq = 10, .contacts = C_A, .expires = 600}),
                     200);
    /* same Call-ID, not higher: out of order */
    assert_int_equal(do_register(f, (struct req){.cseq = 10, .contacts = C_A, .expires = 300}),
                     500);
    assert_string_equal(hdrs(f), "Retry-After: 1\r\n");
    assert_int_equal(do_register(f, (struct req){.cseq = 9, .contacts = C_A, .expires = 0}), 500);
    const struct binding *b[2];
    assert_int_equal(lookup(f, "alice", b, 2), 1);
    assert_int_equal(b[0]->expires_at, WALL0 + 600);
    assert_int_equal(f->nremoved, 0);
    /* higher: fine */
    assert_int_equal(do_register(f, (struct req){.cseq = 11, .contacts = C_A, .expires = 300}),
                     200);
    assert_int_equal(lookup(f, "alice", b, 2), 1);
    assert_int_equal(b[0]->expires_at, WALL0 + 300);
    /* another Call-ID (the device restarted) starts its own sequence */
    assert_int_equal(
        do_register(
            f, (struct req){.call_id = "cid-restart", .cseq = 1, .contacts = C_A, .expires = 600}),
        200);
    /* which then keeps its own order */
    assert_int_equal(
        do_register(
            f, (struct req){.call_id = "cid-restart", .cseq = 1, .contacts = C_A, .expires = 600}),
        500);
    /* a Contact that is not bound yet has no order to keep */
    assert_int_equal(do_register(f, (struct req){.cseq = 1, .contacts = C_B, .expires = 600}), 200);
}

static void test_lookup_order_and_max(void **state)
{
    struct fx *f = *state;
    assert_int_equal(do_register(f, (struct req){.call_id = "1", .contacts = C_A, .expires = 600}),
                     200);
    advance(f, 1000);
    assert_int_equal(do_register(f, (struct req){.call_id = "2", .contacts = C_B, .expires = 600}),
                     200);
    advance(f, 1000);
    assert_int_equal(do_register(f, (struct req){.call_id = "3", .contacts = C_C, .expires = 600}),
                     200);
    const struct binding *b[3] = {NULL, NULL, NULL};
    assert_int_equal(lookup(f, "alice", b, 3), 3);
    assert_string_equal(b[0]->contact, "sip:alice@10.0.0.4:5061;transport=tls");
    assert_string_equal(b[1]->contact, "sip:alice@10.0.0.3:5061;transport=tls");
    assert_string_equal(b[2]->contact, "sip:alice@10.0.0.2:5061;transport=tls");
    /* fewer slots than bindings: the count is still the total */
    const struct binding *two[2] = {NULL, NULL};
    assert_int_equal(lookup(f, "alice", two, 2), 3);
    assert_ptr_equal(two[0], b[0]);
    assert_ptr_equal(two[1], b[1]);
    assert_int_equal(lookup(f, "alice", NULL, 0), 3);
}

static bool count_one(const struct binding *x, void *arg)
{
    (void)x;
    (*(size_t *)arg)++;
    return true;
}

static bool stop_at_one(const struct binding *x, void *arg)
{
    (void)x;
    (*(size_t *)arg)++;
    return false;
}

static void test_foreach(void **state)
{
    struct fx *f = *state;
    assert_int_equal(do_register(f, (struct req){.contacts = C_A C_B, .expires = 600}), 200);
    assert_int_equal(do_register(f, (struct req){.user = "bob",
                                                 .call_id = "b",
                                                 .contacts = "Contact: <sip:bob@10.0.0.7>\r\n",
                                                 .expires = 600}),
                     200);
    size_t n = 0;
    registrar_foreach(f->reg, count_one, &n);
    assert_int_equal(n, 3);
    n = 0;
    registrar_foreach(f->reg, stop_at_one, &n);
    assert_int_equal(n, 1);
}

static void test_malformed_requests_change_nothing(void **state)
{
    struct fx *f = *state;
    assert_int_equal(do_register(f, (struct req){.contacts = C_A, .expires = 600}), 200);
    /* (a Contact the message parser refuses never reaches the registrar) */
    assert_int_equal(
        do_register(
            f, (struct req){.cseq = 3, .contacts = "Contact: <tel:+15550100>\r\n", .expires = 600}),
        400);
    assert_int_equal(
        do_register(f, (struct req){.cseq = 4,
                                    .contacts = "Contact: <sip:a@10.0.0.9>;expires=soon\r\n",
                                    .expires = 600}),
        400);
    /* too many Contacts in one request */
    char many[2048] = "";
    for (int i = 0; i < 17; i++) {
        char line[64];
        snprintf(line, sizeof(line), "Contact: <sip:alice@10.0.1.%d>\r\n", i);
        strcat(many, line);
    }
    assert_int_equal(do_register(f, (struct req){.cseq = 5, .contacts = many, .expires = 600}),
                     403);
    const struct binding *b[2];
    assert_int_equal(lookup(f, "alice", b, 2), 1);
    assert_int_equal(b[0]->expires_at, WALL0 + 600);
    assert_int_equal(f->nremoved, 0);
}

static void test_free_with_live_bindings(void **state)
{
    struct fx *f = *state;
    assert_int_equal(do_register(f, (struct req){.contacts = C_A C_B, .expires = 600}), 200);
    registrar_free(f->reg);
    f->reg = NULL;
    /* no timer of a freed binding may stay in the heap */
    assert_int_equal(timer_heap_count(f->timers), 0);
    advance(f, 700 * 1000);
    assert_int_equal(f->nremoved, 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_register_creates_binding),
        T(test_added_hook_once_per_new_binding),
        T(test_query_lists_without_changing),
        T(test_refresh_restarts_the_timer),
        T(test_interval_too_brief),
        T(test_max_expires_and_default),
        T(test_unregister_one_contact),
        T(test_wildcard),
        T(test_device_limits),
        T(test_removals_make_room),
        T(test_conn_closed_removes_its_bindings),
        T(test_a_binding_follows_its_latest_connection),
        T(test_instance_id_replaces_the_contact),
        T(test_cseq_ordering),
        T(test_lookup_order_and_max),
        T(test_foreach),
        T(test_malformed_requests_change_nothing),
        T(test_free_with_live_bindings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
