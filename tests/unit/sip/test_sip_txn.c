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
#include "core/timer.h"
#include "sip/build.h"
#include "sip/msg.h"
#include "sip/txn.h"

/* --- fixture: fake clock, fake hooks that record everything ----------- */

#define MAX_REC 64

struct sent {
    uint64_t conn;
    char *data;
    size_t len;
};

struct report {
    struct sip_client_txn *t;
    void *ctx;
    int status;      /* the hook's status argument */
    int resp_status; /* 0 when resp was NULL */
    bool retransmission;
};

struct fx {
    struct clock_fake clk;
    struct timer_heap *heap;
    struct sip_txn_layer *l;
    struct sent sent[MAX_REC];
    size_t nsent;
    struct report rep[MAX_REC];
    size_t nrep;
    void *srv_term[MAX_REC]; /* contexts of terminated server txns */
    size_t nsrv_term;
    void *cli_term[MAX_REC];
    size_t ncli_term;
    /* Re-entrancy: the send hook reports this connection closed; the
     * response hook cancels cancel_target when a 2xx arrives. */
    uint64_t fail_conn;
    struct sip_client_txn *cancel_target;
};

static void hook_send(void *arg, uint64_t conn, struct strbuf *data)
{
    struct fx *f = arg;
    assert_true(f->nsent < MAX_REC);
    struct sent *s = &f->sent[f->nsent++];
    s->conn = conn;
    s->data = strbuf_take(data, &s->len);
    assert_non_null(s->data);
    if (conn == f->fail_conn)
        sip_txn_conn_closed(f->l, conn);
}

static void hook_client_response(void *arg, struct sip_client_txn *t, const struct sip_msg *resp,
                                 int status, bool retransmission)
{
    struct fx *f = arg;
    assert_true(f->nrep < MAX_REC);
    struct report *r = &f->rep[f->nrep++];
    r->t = t;
    r->ctx = sip_client_txn_context(t);
    r->status = status;
    r->resp_status = resp ? resp->status : 0;
    r->retransmission = retransmission;
    if (resp)
        assert_int_equal(resp->status, status);
    if (f->cancel_target && status >= 200 && status < 300) {
        sip_client_txn_cancel(f->cancel_target, "SIP;cause=200;text=\"Call completed elsewhere\"");
        f->cancel_target = NULL;
    }
}

static void hook_server_terminated(void *arg, struct sip_server_txn *t)
{
    struct fx *f = arg;
    assert_true(f->nsrv_term < MAX_REC);
    /* The transaction is still whole inside the hook (ASan checks). */
    assert_non_null(sip_server_txn_request(t)->call_id.p);
    f->srv_term[f->nsrv_term++] = sip_server_txn_context(t);
}

static void hook_client_terminated(void *arg, struct sip_client_txn *t)
{
    struct fx *f = arg;
    assert_true(f->ncli_term < MAX_REC);
    assert_non_null(sip_client_txn_request(t)->call_id.p);
    f->cli_term[f->ncli_term++] = sip_client_txn_context(t);
}

static const struct sip_txn_hooks hooks = {
    .send = hook_send,
    .client_response = hook_client_response,
    .server_terminated = hook_server_terminated,
    .client_terminated = hook_client_terminated,
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    clock_fake_init(&f->clk, 1000000, 1700000000);
    f->heap = timer_heap_new(&f->clk.base);
    assert_non_null(f->heap);
    f->l = sip_txn_layer_new(f->heap, &hooks, f);
    assert_non_null(f->l);
    *state = f;
    return 0;
}

/* Every transaction reaches its terminated hook exactly once. */
static void assert_unique(void *const *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (ids[i] == ids[j])
                fail_msg("terminated hook called twice for context %p", ids[i]);
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (f->l)
        sip_txn_layer_free(f->l);
    assert_unique(f->srv_term, f->nsrv_term);
    assert_unique(f->cli_term, f->ncli_term);
    timer_heap_free(f->heap);
    for (size_t i = 0; i < f->nsent; i++)
        free(f->sent[i].data);
    free(f);
    return 0;
}

static void *id(uintptr_t n)
{
    return (void *)n;
}

/* Runs every timer due now, the reaper's 0 ms timer included. */
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

static struct sip_msg *parse(const char *text)
{
    struct sip_msg *m = NULL;
    struct sip_parse_error err;
    int rc = sip_msg_parse(text, strlen(text), &m, &err);
    if (rc)
        fail_msg("parse failed: %s\n%s", err.reason, text);
    return m;
}

static struct sip_msg *sent_msg(struct fx *f, size_t i)
{
    struct sip_msg *m = NULL;
    assert_true(i < f->nsent);
    assert_int_equal(sip_msg_parse(f->sent[i].data, f->sent[i].len, &m, NULL), 0);
    return m;
}

static bool sent_eq(struct fx *f, size_t a, size_t b)
{
    return f->sent[a].len == f->sent[b].len &&
           memcmp(f->sent[a].data, f->sent[b].data, f->sent[a].len) == 0;
}

/* A request as a UA sends it to us (server side). */
static struct sip_msg *uac_req(const char *method, const char *branch, const char *sent_by,
                               const char *to_tag)
{
    char buf[1024];
    snprintf(buf, sizeof(buf),
             "%s sip:bob@example.com SIP/2.0\r\n"
             "Via: SIP/2.0/TLS %s;branch=%s;rport\r\n"
             "Max-Forwards: 70\r\n"
             "From: <sip:alice@example.com>;tag=a1\r\n"
             "To: <sip:bob@example.com>%s%s\r\n"
             "Call-ID: call-1@example.com\r\n"
             "CSeq: 1 %s\r\n"
             "Content-Length: 0\r\n\r\n",
             method, sent_by, branch, to_tag ? ";tag=" : "", to_tag ? to_tag : "", method);
    return parse(buf);
}

#define BR1     "z9hG4bKaaaa1111"
#define BR2     "z9hG4bKbbbb2222"
#define SENT_BY "192.0.2.1:5061"
#define CONN_A  11
#define CONN_B  22

static const char body[] = "v=0\r\n";

/* A request as the proxy forwards it (client side): our Via on top of the
 * upstream one, Routes on two lines, a body. */
static struct sip_msg *proxy_req(const char *method, const char *branch)
{
    char buf[2048];
    snprintf(buf, sizeof(buf),
             "%s sip:bob@10.0.0.2:5061;transport=tls SIP/2.0\r\n"
             "Via: SIP/2.0/TLS proxy.example.com:5061;branch=%s\r\n"
             "Via: SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bKupstream;received=192.0.2.1\r\n"
             "Route: <sip:r1.example.com;lr>, <sip:r2.example.com;lr>\r\n"
             "Route: <sip:r3.example.com;lr>\r\n"
             "Max-Forwards: 69\r\n"
             "From: \"Alice\" <sip:alice@example.com>;tag=fromtag1\r\n"
             "To: <sip:bob@example.com>\r\n"
             "Call-ID: cid-42@example.com\r\n"
             "CSeq: 7 %s\r\n"
             "Contact: <sip:alice@192.0.2.1:5061;transport=tls>\r\n"
             "Content-Type: application/sdp\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             method, branch, method, strlen(body), body);
    return parse(buf);
}

/* A downstream response to req, as it arrives (every Via of req). */
static struct sip_msg *resp_to(const struct sip_msg *req, int status, const char *to_tag)
{
    struct strbuf b = STRBUF_INIT;
    assert_int_equal(sip_build_response(req, status, NULL, to_tag, NULL, NULL, STRVIEW_EMPTY, &b),
                     0);
    struct sip_msg *m = parse(strbuf_cstr(&b));
    strbuf_free(&b);
    return m;
}

static void deliver(struct fx *f, uint64_t conn, struct sip_client_txn *c, int status,
                    const char *to_tag, bool expect_match)
{
    struct sip_msg *r = resp_to(sip_client_txn_request(c), status, to_tag);
    assert_int_equal(sip_txn_client_receive(f->l, conn, r), expect_match);
    sip_msg_free(r);
}

static struct sip_server_txn *new_server(struct fx *f, uint64_t conn, struct sip_msg *req,
                                         uintptr_t ctx)
{
    struct sip_server_txn *s = NULL, *cancelled = NULL;
    assert_int_equal(sip_txn_server_receive(f->l, conn, req, &s, &cancelled), SIP_TXN_NEW);
    assert_non_null(s);
    assert_null(cancelled);
    assert_ptr_equal(sip_server_txn_request(s), req);
    assert_int_equal(sip_server_txn_conn(s), conn);
    sip_server_txn_set_context(s, id(ctx));
    return s;
}

static struct sip_client_txn *new_client(struct fx *f, uint64_t conn, const char *method,
                                         const char *branch, uintptr_t ctx)
{
    struct sip_client_txn *c = sip_txn_client_send(f->l, conn, proxy_req(method, branch), id(ctx));
    assert_non_null(c);
    assert_int_equal(sip_client_txn_conn(c), conn);
    assert_ptr_equal(sip_client_txn_context(c), id(ctx));
    assert_int_equal(sip_client_txn_last_status(c), 0);
    return c;
}

static void assert_hdr(const struct sip_msg *m, enum sip_hdr_id hid, const char *value)
{
    const struct sip_hdr *h = sip_msg_hdr_first(m, hid);
    assert_non_null(h);
    if (!strview_eq(h->value, value))
        fail_msg("%s: got '%.*s', want '%s'", sip_hdr_name(hid), (int)h->value.n, h->value.p,
                 value);
    assert_null(sip_msg_hdr_next(h, hid));
}

/* The headers ACK and CANCEL share with the request (RFC 3261 §9.1,
 * §17.1.1.3). */
static void assert_ack_or_cancel(const struct sip_msg *m, const struct sip_msg *req,
                                 enum sip_method method, const char *to)
{
    assert_true(m->is_request);
    assert_int_equal(m->method, method);
    assert_true(strview_eq_view(m->request_uri, req->request_uri));
    assert_int_equal(sip_msg_hdr_count(m, SIP_HDR_VIA), 1);
    assert_hdr(m, SIP_HDR_VIA, "SIP/2.0/TLS proxy.example.com:5061;branch=" BR1);
    const char *routes[] = {"<sip:r1.example.com;lr>", "<sip:r2.example.com;lr>",
                            "<sip:r3.example.com;lr>"};
    struct sip_value_iter it;
    struct strview v;
    size_t n = 0;
    sip_value_iter_init(&it, m, SIP_HDR_ROUTE);
    while (sip_value_iter_next(&it, &v)) {
        assert_true(n < 3);
        assert_true(strview_eq(v, routes[n]));
        n++;
    }
    assert_int_equal(n, 3);
    assert_int_equal(m->max_forwards, 70);
    assert_hdr(m, SIP_HDR_FROM, "\"Alice\" <sip:alice@example.com>;tag=fromtag1");
    assert_hdr(m, SIP_HDR_TO, to);
    assert_true(strview_eq(m->call_id, "cid-42@example.com"));
    assert_int_equal(m->cseq_num, 7);
    assert_int_equal(m->cseq_method, method);
    assert_int_equal(m->body.n, 0);
    assert_hdr(m, SIP_HDR_CONTENT_LENGTH, "0");
    assert_null(sip_msg_hdr_first(m, SIP_HDR_CONTACT));
    assert_null(sip_msg_hdr_first(m, SIP_HDR_CONTENT_TYPE));
}

/* --- server transactions ----------------------------------------------- */

/* A forwarded response: bytes from downstream with its own To tag. */
static int forward_final(struct sip_server_txn *s, int status, const char *tag)
{
    struct strbuf b = STRBUF_INIT;
    assert_int_equal(sip_build_response(sip_server_txn_request(s), status, NULL, tag, NULL, NULL,
                                        STRVIEW_EMPTY, &b),
                     0);
    return sip_server_txn_send(s, status, &b);
}

static void test_server_invite_1xx_486_ack(void **state)
{
    struct fx *f = *state;
    struct sip_server_txn *s = new_server(f, CONN_A, uac_req("INVITE", BR1, SENT_BY, NULL), 1);
    assert_false(sip_server_txn_answered(s));

    assert_int_equal(sip_server_txn_reply(s, 180, NULL, NULL), 0);
    assert_false(sip_server_txn_answered(s));
    assert_int_equal(forward_final(s, 486, "callee-tag"), 0);
    assert_true(sip_server_txn_answered(s));
    assert_int_equal(f->nsent, 2);
    assert_int_equal(f->sent[1].conn, CONN_A);
    struct sip_msg *r = sent_msg(f, 1);
    assert_int_equal(r->status, 486);
    sip_msg_free(r);

    /* Only one final response. */
    assert_int_equal(sip_server_txn_reply(s, 500, NULL, NULL), -EALREADY);
    assert_int_equal(sip_server_txn_reply(s, 200, NULL, NULL), -EALREADY);
    assert_int_equal(f->nsent, 2);

    /* A forwarded final waits in Completed for the ACK. */
    advance(f, 1000);
    assert_int_equal(f->nsrv_term, 0);
    assert_int_equal(sip_txn_layer_count(f->l), 1);

    struct sip_server_txn *t = (void *)1, *c = (void *)1;
    struct sip_msg *ack = uac_req("ACK", BR1, SENT_BY, "callee-tag");
    assert_int_equal(sip_txn_server_receive(f->l, CONN_A, ack, &t, &c), SIP_TXN_ABSORBED);
    assert_null(t);
    assert_null(c);
    assert_int_equal(f->nsent, 2); /* nothing re-sent for an ACK */
    /* Timer I is zero, but the transaction is freed by the reaper, not
     * under the caller. */
    assert_int_equal(f->nsrv_term, 0);
    assert_ptr_equal(sip_server_txn_context(s), id(1));
    run(f);
    assert_int_equal(f->nsrv_term, 1);
    assert_ptr_equal(f->srv_term[0], id(1));
    assert_int_equal(sip_txn_layer_count(f->l), 0);
    /* Nothing left to fire: Timer H was stopped. */
    assert_int_equal(timer_heap_count(f->heap), 0);
}

/* Our own non-2xx to an INVITE ends the transaction with the response; its
 * ACK is recognised by the tag alone, a forged tag is not. */
static void test_server_invite_local_final_is_stateless(void **state)
{
    struct fx *f = *state;
    struct sip_server_txn *s = new_server(f, CONN_A, uac_req("INVITE", BR1, SENT_BY, NULL), 7);
    const char *tag = sip_server_txn_local_tag(s);
    assert_int_equal(strlen(tag), 20);
    char saved[32];
    snprintf(saved, sizeof(saved), "%s", tag);
    assert_int_equal(sip_server_txn_reply(s, 407, NULL, NULL), 0);
    struct sip_msg *r = sent_msg(f, 0);
    struct sip_addr to;
    assert_int_equal(sip_msg_to(r, &to), 0);
    assert_true(strview_eq(to.tag, saved));
    sip_msg_free(r);
    sip_txn_server_dispatched(s); /* freed here: nothing held */
    assert_int_equal(sip_txn_layer_count(f->l), 0);
    struct sip_txn_stats st;
    sip_txn_layer_stats(f->l, &st);
    assert_int_equal(st.stateless_answers, 1);
    assert_int_equal(st.held, 0);

    /* The same INVITE again (a retransmission) is a new transaction, and
     * gets the same tag: the same answer. */
    s = new_server(f, CONN_A, uac_req("INVITE", BR1, SENT_BY, NULL), 8);
    assert_string_equal(sip_server_txn_local_tag(s), saved);
    assert_int_equal(sip_server_txn_reply(s, 407, NULL, NULL), 0);
    sip_txn_server_dispatched(s);
    assert_true(sent_eq(f, 0, 1));

    /* Its ACK: absorbed, counted, nothing sent. */
    struct sip_server_txn *t = NULL, *c = NULL;
    assert_int_equal(
        sip_txn_server_receive(f->l, CONN_A, uac_req("ACK", BR1, SENT_BY, saved), &t, &c),
        SIP_TXN_ABSORBED);
    sip_txn_layer_stats(f->l, &st);
    assert_int_equal(st.acks_absorbed, 1);
    assert_int_equal(f->nsent, 2);

    /* Forged: one character changed, another length, the right tag on an
     * ACK with another branch (the ACK of a 2xx is its own transaction),
     * another CSeq or From tag. The caller keeps each. */
    char forged[32];
    snprintf(forged, sizeof(forged), "%s", saved);
    forged[5] = forged[5] == 'a' ? 'b' : 'a';
    const char *tags[] = {forged, "0123456789abcdef0123", "abc"};
    for (size_t i = 0; i < 3; i++) {
        struct sip_msg *ack = uac_req("ACK", BR1, SENT_BY, tags[i]);
        assert_int_equal(sip_txn_server_receive(f->l, CONN_A, ack, &t, &c), SIP_TXN_ACK);
        sip_msg_free(ack);
    }
    struct sip_msg *ack = uac_req("ACK", BR2, SENT_BY, saved);
    assert_int_equal(sip_txn_server_receive(f->l, CONN_A, ack, &t, &c), SIP_TXN_ACK);
    sip_msg_free(ack);
    char text[1024];
    snprintf(text, sizeof(text),
             "ACK sip:bob@example.com SIP/2.0\r\n"
             "Via: SIP/2.0/TLS %s;branch=%s\r\n"
             "From: <sip:alice@example.com>;tag=a1\r\n"
             "To: <sip:bob@example.com>;tag=%s\r\n"
             "Call-ID: call-1@example.com\r\n"
             "CSeq: 2 ACK\r\n"
             "Content-Length: 0\r\n\r\n",
             SENT_BY, BR1, saved);
    ack = parse(text);
    assert_int_equal(sip_txn_server_receive(f->l, CONN_A, ack, &t, &c), SIP_TXN_ACK);
    sip_msg_free(ack);
    snprintf(text, sizeof(text),
             "ACK sip:bob@example.com SIP/2.0\r\n"
             "Via: SIP/2.0/TLS %s;branch=%s\r\n"
             "From: <sip:alice@example.com>;tag=a2\r\n"
             "To: <sip:bob@example.com>;tag=%s\r\n"
             "Call-ID: call-1@example.com\r\n"
             "CSeq: 1 ACK\r\n"
             "Content-Length: 0\r\n\r\n",
             SENT_BY, BR1, saved);
    ack = parse(text);
    assert_int_equal(sip_txn_server_receive(f->l, CONN_A, ack, &t, &c), SIP_TXN_ACK);
    sip_msg_free(ack);
    sip_txn_layer_stats(f->l, &st);
    assert_int_equal(st.acks_absorbed, 1);

    /* Another layer (another key, a restarted server) does not know it. */
    struct sip_txn_layer *other = sip_txn_layer_new(f->heap, &hooks, f);
    assert_non_null(other);
    ack = uac_req("ACK", BR1, SENT_BY, saved);
    assert_int_equal(sip_txn_server_receive(other, CONN_A, ack, &t, &c), SIP_TXN_ACK);
    sip_msg_free(ack);
    sip_txn_layer_free(other);
}

/* Inside a dialog the To tag is the dialog's, not ours: the ACK of our own
 * non-2xx is still absorbed (a small record of branch and sent-by), once,
 * and not after Timer H. */
static void test_server_in_dialog_local_final(void **state)
{
    struct fx *f = *state;
    struct sip_server_txn *s = new_server(f, CONN_A, uac_req("INVITE", BR1, SENT_BY, "dlg"), 9);
    assert_int_equal(sip_server_txn_reply(s, 488, NULL, NULL), 0);
    sip_txn_server_dispatched(s);
    assert_int_equal(sip_txn_layer_count(f->l), 0);
    struct sip_server_txn *t = NULL, *c = NULL;
    assert_int_equal(
        sip_txn_server_receive(f->l, CONN_A, uac_req("ACK", BR1, SENT_BY, "dlg"), &t, &c),
        SIP_TXN_ABSORBED);
    /* a second one is no longer ours: the caller routes or drops it */
    struct sip_msg *ack = uac_req("ACK", BR1, SENT_BY, "dlg");
    assert_int_equal(sip_txn_server_receive(f->l, CONN_A, ack, &t, &c), SIP_TXN_ACK);
    sip_msg_free(ack);
    /* another sent-by, or after Timer H: not absorbed */
    s = new_server(f, CONN_A, uac_req("INVITE", BR2, SENT_BY, "dlg"), 10);
    assert_int_equal(sip_server_txn_reply(s, 491, NULL, NULL), 0);
    sip_txn_server_dispatched(s);
    ack = uac_req("ACK", BR2, "192.0.2.99:5061", "dlg");
    assert_int_equal(sip_txn_server_receive(f->l, CONN_A, ack, &t, &c), SIP_TXN_ACK);
    sip_msg_free(ack);
    advance(f, SIP_TIMER_H_MS + 1);
    ack = uac_req("ACK", BR2, SENT_BY, "dlg");
    assert_int_equal(sip_txn_server_receive(f->l, CONN_A, ack, &t, &c), SIP_TXN_ACK);
    sip_msg_free(ack);
}

static int held_count[2];

static void hook_server_held(void *arg, struct sip_server_txn *t, int delta)
{
    (void)arg;
    held_count[sip_server_txn_conn(t) == CONN_A ? 0 : 1] += delta;
}

/* What outlives its dispatch is held and counted until it ends; what was
 * answered, or abandoned, is freed at once. */
static void test_server_dispatched_and_held(void **state)
{
    struct fx *f = *state;
    struct sip_txn_hooks h = hooks;
    h.server_held = hook_server_held;
    sip_txn_layer_free(f->l);
    f->l = sip_txn_layer_new(f->heap, &h, f);
    assert_non_null(f->l);
    held_count[0] = held_count[1] = 0;

    /* answered: freed within dispatched, terminated hook included */
    struct sip_server_txn *s = new_server(f, CONN_A, uac_req("OPTIONS", BR1, SENT_BY, NULL), 1);
    assert_int_equal(sip_server_txn_reply(s, 200, NULL, NULL), 0);
    sip_txn_server_dispatched(s);
    assert_int_equal(f->nsrv_term, 1);
    assert_int_equal(sip_txn_layer_count(f->l), 0);
    assert_int_equal(held_count[0], 0);

    /* abandoned: no context, no answer */
    s = new_server(f, CONN_A, uac_req("MESSAGE", BR1, SENT_BY, NULL), 0);
    sip_server_txn_set_context(s, NULL);
    sip_txn_server_dispatched(s);
    assert_int_equal(f->nsrv_term, 2);
    assert_int_equal(sip_txn_layer_count(f->l), 0);

    /* held: two on A, one on B */
    struct sip_server_txn *a1 = new_server(f, CONN_A, uac_req("INVITE", BR1, SENT_BY, NULL), 3);
    struct sip_server_txn *a2 = new_server(f, CONN_A, uac_req("MESSAGE", BR2, SENT_BY, NULL), 4);
    struct sip_server_txn *b1 = new_server(f, CONN_B, uac_req("INVITE", BR2, SENT_BY, NULL), 5);
    sip_txn_server_dispatched(a1);
    sip_txn_server_dispatched(a2);
    sip_txn_server_dispatched(b1);
    sip_txn_server_dispatched(b1); /* twice is harmless */
    assert_int_equal(held_count[0], 2);
    assert_int_equal(held_count[1], 1);
    struct sip_txn_stats st;
    sip_txn_layer_stats(f->l, &st);
    assert_int_equal(st.held, 3);
    assert_int_equal(st.server, 3);
    assert_int_equal(st.stateless_answers, 1);

    /* released as they end: a final, a connection closing */
    assert_int_equal(sip_server_txn_reply(a2, 200, NULL, NULL), 0);
    run(f);
    assert_int_equal(held_count[0], 1);
    sip_txn_conn_closed(f->l, CONN_B);
    run(f);
    assert_int_equal(held_count[1], 0);
    /* a held INVITE answered by us ends at once too */
    assert_int_equal(sip_server_txn_reply(a1, 480, NULL, NULL), 0);
    run(f);
    assert_int_equal(held_count[0], 0);
    /* one answered 2xx is no longer at work, though it stays (Accepted) */
    struct sip_server_txn *a3 =
        new_server(f, CONN_A, uac_req("INVITE", "z9hG4bKcccc3333", SENT_BY, NULL), 6);
    sip_txn_server_dispatched(a3);
    assert_int_equal(held_count[0], 1);
    assert_int_equal(forward_final(a3, 200, "callee"), 0);
    assert_int_equal(held_count[0], 0);
    assert_int_equal(sip_txn_layer_count(f->l), 1);
    advance(f, SIP_TIMER_L_MS);
    sip_txn_layer_stats(f->l, &st);
    assert_int_equal(st.held, 0);
    assert_int_equal(st.server, 0);
    assert_int_equal(sip_txn_layer_count(f->l), 0);
}

static void test_server_invite_timer_h(void **state)
{
    struct fx *f = *state;
    struct sip_server_txn *s = new_server(f, CONN_A, uac_req("INVITE", BR1, SENT_BY, NULL), 1);
    assert_int_equal(forward_final(s, 603, "callee-tag"), 0);
    advance(f, SIP_TIMER_H_MS - 1);
    assert_int_equal(f->nsrv_term, 0);
    advance(f, 1);
    assert_int_equal(f->nsrv_term, 1);
    assert_int_equal(sip_txn_layer_count(f->l), 0);

    /* A late ACK matches nothing now: the caller keeps it. */
    struct sip_server_txn *t = NULL, *c = NULL;
    struct sip_msg *ack = uac_req("ACK", BR1, SENT_BY, "callee-tag");
    assert_int_equal(sip_txn_server_receive(f->l, CONN_A, ack, &t, &c), SIP_TXN_ACK);
    sip_msg_free(ack);
}

static void test_server_invite_2xx_accepted(void **state)
{
    struct fx *f = *state;
    struct sip_server_txn *s = new_server(f, CONN_A, uac_req("INVITE", BR1, SENT_BY, NULL), 1);
    assert_int_equal(sip_server_txn_reply(s, 200, NULL, NULL), 0);
    assert_true(sip_server_txn_answered(s));

    /* The ACK of a 2xx is end to end: returned to the caller. */
    struct sip_server_txn *t = NULL, *c = NULL;
    struct sip_msg *ack = uac_req("ACK", BR1, SENT_BY, sip_server_txn_local_tag(s));
    assert_int_equal(sip_txn_server_receive(f->l, CONN_A, ack, &t, &c), SIP_TXN_ACK);
    assert_null(t);
    assert_int_equal(ack->method, SIP_METHOD_ACK); /* still ours, still whole */
    sip_msg_free(ack);
    run(f);
    assert_int_equal(f->nsrv_term, 0);

    /* Forked 2xx may follow in Accepted; nothing else. */
    struct strbuf b = STRBUF_INIT;
    strbuf_puts(&b, "SIP/2.0 200 OK\r\n(fork)");
    assert_int_equal(sip_server_txn_send(s, 200, &b), 0);
    assert_int_equal(f->nsent, 2);
    assert_int_equal(sip_server_txn_reply(s, 486, NULL, NULL), -EALREADY);
    assert_int_equal(sip_server_txn_reply(s, 180, NULL, NULL), -EALREADY);
    assert_int_equal(f->nsent, 2);

    advance(f, SIP_TIMER_L_MS - 1);
    assert_int_equal(f->nsrv_term, 0);
    advance(f, 1);
    assert_int_equal(f->nsrv_term, 1);
    assert_int_equal(sip_txn_layer_count(f->l), 0);
}

static void test_server_retransmission_resends_last(void **state)
{
    struct fx *f = *state;
    struct sip_server_txn *s = new_server(f, CONN_A, uac_req("INVITE", BR1, SENT_BY, NULL), 1);
    struct sip_server_txn *t = (void *)1, *c = (void *)1;

    /* Nothing sent yet: absorbed, nothing to re-send. */
    assert_int_equal(
        sip_txn_server_receive(f->l, CONN_A, uac_req("INVITE", BR1, SENT_BY, NULL), &t, &c),
        SIP_TXN_ABSORBED);
    assert_null(t);
    assert_null(c);
    assert_int_equal(f->nsent, 0);

    assert_int_equal(sip_server_txn_reply(s, 180, NULL, NULL), 0);
    assert_int_equal(
        sip_txn_server_receive(f->l, CONN_A, uac_req("INVITE", BR1, SENT_BY, NULL), &t, &c),
        SIP_TXN_ABSORBED);
    assert_int_equal(f->nsent, 2);
    assert_true(sent_eq(f, 0, 1));

    assert_int_equal(forward_final(s, 486, "callee-tag"), 0);
    /* Re-sent on the transaction's connection, whichever one carried the
     * retransmission. */
    assert_int_equal(
        sip_txn_server_receive(f->l, CONN_B, uac_req("INVITE", BR1, SENT_BY, NULL), &t, &c),
        SIP_TXN_ABSORBED);
    assert_int_equal(f->nsent, 4);
    assert_true(sent_eq(f, 2, 3));
    assert_false(sent_eq(f, 1, 3));
    assert_int_equal(f->sent[3].conn, CONN_A);
    assert_int_equal(sip_txn_layer_count(f->l), 1);

    /* Same branch, another sent-by or method: other transactions. */
    struct sip_server_txn *s2 =
        new_server(f, CONN_A, uac_req("INVITE", BR1, "192.0.2.9:5061", NULL), 2);
    assert_ptr_not_equal(s2, s);
    struct sip_server_txn *s3 = new_server(f, CONN_A, uac_req("OPTIONS", BR1, SENT_BY, NULL), 3);
    assert_ptr_not_equal(s3, s);
    assert_int_equal(sip_txn_layer_count(f->l), 3);
}

static void test_server_cancel(void **state)
{
    struct fx *f = *state;
    struct sip_server_txn *inv = new_server(f, CONN_A, uac_req("INVITE", BR1, SENT_BY, NULL), 1);
    assert_int_equal(sip_server_txn_reply(inv, 180, NULL, NULL), 0);

    struct sip_server_txn *t = NULL, *c = NULL;
    struct sip_msg *cancel = uac_req("CANCEL", BR1, SENT_BY, NULL);
    assert_int_equal(sip_txn_server_receive(f->l, CONN_A, cancel, &t, &c), SIP_TXN_CANCEL);
    assert_non_null(t);
    assert_ptr_not_equal(t, inv);
    assert_ptr_equal(c, inv);
    assert_ptr_equal(sip_server_txn_request(t), cancel);
    sip_server_txn_set_context(t, id(2));

    /* A retransmitted CANCEL is the CANCEL's own transaction. */
    struct sip_server_txn *t2 = NULL, *c2 = NULL;
    assert_int_equal(
        sip_txn_server_receive(f->l, CONN_A, uac_req("CANCEL", BR1, SENT_BY, NULL), &t2, &c2),
        SIP_TXN_ABSORBED);
    assert_null(t2);
    assert_null(c2);

    assert_int_equal(sip_server_txn_reply(t, 200, NULL, NULL), 0);
    char inv_tag[32];
    snprintf(inv_tag, sizeof(inv_tag), "%s", sip_server_txn_local_tag(inv));
    assert_int_equal(sip_server_txn_reply(inv, 487, NULL, NULL), 0);
    run(f);
    /* the CANCEL's (Timer J is zero) and the INVITE's: our own 487 ends it */
    assert_int_equal(f->nsrv_term, 2);
    assert_ptr_equal(f->srv_term[0], id(2));
    assert_int_equal(
        sip_txn_server_receive(f->l, CONN_A, uac_req("ACK", BR1, SENT_BY, inv_tag), &t2, &c2),
        SIP_TXN_ABSORBED);
    run(f);
    assert_int_equal(f->nsrv_term, 2);

    /* A CANCEL that names nothing: its own transaction, cancelled NULL (the
     * user answers 481). Another sent-by does not name the INVITE either. */
    struct sip_server_txn *inv2 = new_server(f, CONN_A, uac_req("INVITE", BR2, SENT_BY, NULL), 3);
    assert_int_equal(sip_txn_server_receive(
                         f->l, CONN_A, uac_req("CANCEL", "z9hG4bKnothing", SENT_BY, NULL), &t, &c),
                     SIP_TXN_CANCEL);
    assert_non_null(t);
    assert_null(c);
    sip_server_txn_set_context(t, id(4));
    assert_int_equal(sip_server_txn_reply(t, 481, NULL, NULL), 0);
    assert_int_equal(sip_txn_server_receive(f->l, CONN_A,
                                            uac_req("CANCEL", BR2, "192.0.2.7:5061", NULL), &t, &c),
                     SIP_TXN_CANCEL);
    assert_null(c);
    sip_server_txn_set_context(t, id(5));
    run(f);
    assert_int_equal(f->nsrv_term, 3); /* the 481'd CANCEL */
    assert_int_equal(sip_txn_layer_count(f->l), 2);
    (void)inv2;
}

static void test_server_invalid_and_unmatched_ack(void **state)
{
    struct fx *f = *state;
    struct sip_server_txn *t = (void *)1, *c = (void *)1;

    /* RFC 2543 branches are not supported. */
    struct sip_msg *m = uac_req("INVITE", "oldstyle1234", SENT_BY, NULL);
    assert_int_equal(sip_txn_server_receive(f->l, CONN_A, m, &t, &c), SIP_TXN_INVALID);
    assert_null(t);
    assert_null(c);
    assert_int_equal(m->method, SIP_METHOD_INVITE); /* the caller keeps it */
    sip_msg_free(m);

    m = parse("OPTIONS sip:bob@example.com SIP/2.0\r\n"
              "Via: SIP/2.0/TLS 192.0.2.1:5061\r\n"
              "From: <sip:alice@example.com>;tag=a1\r\n"
              "To: <sip:bob@example.com>\r\n"
              "Call-ID: c2@example.com\r\n"
              "CSeq: 1 OPTIONS\r\n"
              "Content-Length: 0\r\n\r\n");
    assert_int_equal(sip_txn_server_receive(f->l, CONN_A, m, &t, &c), SIP_TXN_INVALID);
    sip_msg_free(m);

    m = uac_req("ACK", BR1, SENT_BY, "x");
    assert_int_equal(sip_txn_server_receive(f->l, CONN_A, m, &t, &c), SIP_TXN_ACK);
    assert_null(t);
    sip_msg_free(m);
    assert_int_equal(sip_txn_layer_count(f->l), 0);
    assert_int_equal(f->nsent, 0);
}

static void test_server_non_invite(void **state)
{
    struct fx *f = *state;
    struct sip_server_txn *s = new_server(f, CONN_A, uac_req("OPTIONS", BR1, SENT_BY, NULL), 1);

    assert_int_equal(sip_server_txn_reply(s, 100, NULL, NULL), 0);
    run(f);
    assert_int_equal(f->nsrv_term, 0);
    assert_int_equal(sip_server_txn_reply(s, 200, NULL, NULL), 0);
    assert_true(sip_server_txn_answered(s));
    assert_int_equal(f->nsent, 2);
    struct sip_msg *r = sent_msg(f, 1);
    assert_int_equal(r->status, 200);
    assert_int_equal(r->cseq_method, SIP_METHOD_OPTIONS);
    sip_msg_free(r);
    assert_int_equal(sip_server_txn_reply(s, 200, NULL, NULL), -EALREADY);
    /* Terminated, but only the reaper frees it. */
    assert_int_equal(f->nsrv_term, 0);
    assert_int_equal(sip_server_txn_conn(s), CONN_A);
    run(f);
    assert_int_equal(f->nsrv_term, 1);
    assert_int_equal(sip_txn_layer_count(f->l), 0);
    assert_int_equal(f->nsent, 2);

    /* Out-of-range statuses are refused (the bytes are still taken). */
    s = new_server(f, CONN_A, uac_req("MESSAGE", BR2, SENT_BY, NULL), 2);
    struct strbuf b = STRBUF_INIT;
    strbuf_puts(&b, "junk");
    assert_int_equal(sip_server_txn_send(s, 99, &b), -EINVAL);
    assert_null(b.p);
    assert_int_equal(f->nsent, 2);
}

static void test_server_guard(void **state)
{
    struct fx *f = *state;
    new_server(f, CONN_A, uac_req("OPTIONS", BR1, SENT_BY, NULL), 1);
    struct sip_server_txn *inv = new_server(f, CONN_A, uac_req("INVITE", BR2, SENT_BY, NULL), 2);

    advance(f, SIP_SERVER_GUARD_MS - 1);
    assert_int_equal(f->nsrv_term, 0);
    advance(f, 1);
    assert_int_equal(f->nsrv_term, 1);
    assert_ptr_equal(f->srv_term[0], id(1));

    /* A provisional response restarts the INVITE's guard. */
    assert_int_equal(sip_server_txn_reply(inv, 180, NULL, NULL), 0);
    advance(f, SIP_SERVER_INVITE_GUARD_MS - 1);
    assert_int_equal(f->nsrv_term, 1);
    advance(f, 1);
    assert_int_equal(f->nsrv_term, 2);
    assert_int_equal(sip_txn_layer_count(f->l), 0);
}

/* --- client transactions ----------------------------------------------- */

static void test_client_invite_180_200(void **state)
{
    struct fx *f = *state;
    struct sip_client_txn *c = new_client(f, CONN_A, "INVITE", BR1, 1);

    /* The request goes out as printed. */
    assert_int_equal(f->nsent, 1);
    assert_int_equal(f->sent[0].conn, CONN_A);
    struct strbuf want = STRBUF_INIT;
    assert_int_equal(sip_msg_print(sip_client_txn_request(c), &want), 0);
    assert_int_equal(want.len, f->sent[0].len);
    assert_memory_equal(want.p, f->sent[0].data, want.len);
    strbuf_free(&want);

    deliver(f, CONN_A, c, 180, "t1", true);
    assert_int_equal(f->nrep, 1);
    assert_int_equal(f->rep[0].status, 180);
    assert_int_equal(f->rep[0].resp_status, 180);
    assert_false(f->rep[0].retransmission);
    assert_int_equal(sip_client_txn_last_status(c), 180);

    deliver(f, CONN_A, c, 200, "t1", true);
    deliver(f, CONN_A, c, 200, "t1", true); /* a 2xx retransmission */
    deliver(f, CONN_A, c, 200, "t2", true); /* a forked 2xx */
    deliver(f, CONN_A, c, 486, "t3", true); /* dropped after a 2xx (RFC 6026) */
    deliver(f, CONN_A, c, 183, "t1", true); /* dropped too */
    assert_int_equal(f->nrep, 4);
    assert_int_equal(f->rep[1].status, 200);
    assert_false(f->rep[1].retransmission);
    assert_int_equal(f->rep[2].status, 200);
    assert_true(f->rep[2].retransmission);
    assert_int_equal(f->rep[3].status, 200);
    assert_false(f->rep[3].retransmission);
    assert_int_equal(sip_client_txn_last_status(c), 200);
    assert_int_equal(f->nsent, 1); /* no ACK for a 2xx: the UAC sends it */

    advance(f, SIP_TIMER_M_MS - 1);
    assert_int_equal(f->ncli_term, 0);
    advance(f, 1);
    assert_int_equal(f->ncli_term, 1);
    assert_ptr_equal(f->cli_term[0], id(1));
    assert_int_equal(f->nrep, 4); /* Timer M reports nothing */
    assert_int_equal(sip_txn_layer_count(f->l), 0);
}

static void test_client_invite_486_ack(void **state)
{
    struct fx *f = *state;
    struct sip_client_txn *c = new_client(f, CONN_A, "INVITE", BR1, 1);

    deliver(f, CONN_A, c, 486, "callee9", true);
    assert_int_equal(f->nrep, 1);
    assert_int_equal(f->rep[0].status, 486);
    assert_int_equal(f->rep[0].resp_status, 486);
    assert_int_equal(f->nsent, 2);
    assert_int_equal(f->sent[1].conn, CONN_A);
    struct sip_msg *ack = sent_msg(f, 1);
    assert_ack_or_cancel(ack, sip_client_txn_request(c), SIP_METHOD_ACK,
                         "<sip:bob@example.com>;tag=callee9");
    sip_msg_free(ack);

    /* Timer D is zero: ended, reaped afterwards; nothing matches it. */
    assert_int_equal(f->ncli_term, 0);
    run(f);
    assert_int_equal(f->ncli_term, 1);
    assert_int_equal(sip_txn_layer_count(f->l), 0);
    struct sip_msg *again = proxy_req("INVITE", BR1);
    struct sip_msg *r = resp_to(again, 486, "callee9");
    assert_false(sip_txn_client_receive(f->l, CONN_A, r));
    sip_msg_free(r);
    sip_msg_free(again);
    assert_int_equal(f->nsent, 2);
    assert_int_equal(f->nrep, 1);
}

static void test_client_invite_timer_b(void **state)
{
    struct fx *f = *state;
    new_client(f, CONN_A, "INVITE", BR1, 1);
    advance(f, SIP_TIMER_B_MS - 1);
    assert_int_equal(f->nrep, 0);
    advance(f, 1);
    assert_int_equal(f->nrep, 1);
    assert_int_equal(f->rep[0].status, 408);
    assert_int_equal(f->rep[0].resp_status, 0);
    assert_int_equal(f->ncli_term, 1);
    assert_int_equal(f->nsent, 1); /* no CANCEL without a provisional response */
    assert_int_equal(sip_txn_layer_count(f->l), 0);
}

static void test_client_invite_timer_c(void **state)
{
    struct fx *f = *state;
    struct sip_client_txn *c = new_client(f, CONN_A, "INVITE", BR1, 1);

    advance(f, 1000);
    deliver(f, CONN_A, c, 100, NULL, true);
    /* Timer B no longer applies. */
    advance(f, SIP_TIMER_B_MS);
    assert_int_equal(f->nrep, 1);
    /* A 1xx other than 100 restarts Timer C. */
    advance(f, 60000);
    deliver(f, CONN_A, c, 180, "t1", true);
    advance(f, SIP_TIMER_C_MS - 1);
    assert_int_equal(f->nrep, 2);
    assert_int_equal(f->nsent, 1);
    advance(f, 1);
    assert_int_equal(f->nrep, 3);
    assert_int_equal(f->rep[2].status, 408);
    assert_int_equal(f->rep[2].resp_status, 0);
    /* The branch was cancelled before being given up (RFC 3261 §16.8). */
    assert_int_equal(f->nsent, 2);
    struct sip_msg *m = sent_msg(f, 1);
    assert_int_equal(m->method, SIP_METHOD_CANCEL);
    sip_msg_free(m);
    assert_int_equal(f->ncli_term, 1);
    /* The CANCEL's own transaction is internal and ends with Timer F. */
    assert_int_equal(sip_txn_layer_count(f->l), 1);
    advance(f, SIP_TIMER_F_MS);
    assert_int_equal(sip_txn_layer_count(f->l), 0);
    assert_int_equal(f->nrep, 3);
    assert_int_equal(f->ncli_term, 1);
}

static void test_client_non_invite(void **state)
{
    struct fx *f = *state;
    struct sip_client_txn *c = new_client(f, CONN_A, "MESSAGE", BR1, 1);
    deliver(f, CONN_A, c, 100, NULL, true);
    assert_int_equal(f->nrep, 1);
    assert_int_equal(f->rep[0].status, 100);
    advance(f, SIP_TIMER_F_MS - 1);
    assert_int_equal(f->nrep, 1);
    advance(f, 1);
    assert_int_equal(f->nrep, 2);
    assert_int_equal(f->rep[1].status, 408);
    assert_int_equal(f->rep[1].resp_status, 0);
    assert_int_equal(f->ncli_term, 1);

    c = new_client(f, CONN_A, "OPTIONS", BR2, 2);
    deliver(f, CONN_A, c, 200, "x", true);
    assert_int_equal(f->nrep, 3);
    assert_int_equal(f->rep[2].status, 200);
    assert_int_equal(f->nsent, 2); /* no ACK for non-INVITE */
    run(f);
    assert_int_equal(f->ncli_term, 2);
    assert_int_equal(sip_txn_layer_count(f->l), 0);
}

static void test_client_send_refusals(void **state)
{
    struct fx *f = *state;
    new_client(f, CONN_A, "INVITE", BR1, 1);
    /* Same branch and method: refused (the request is freed). */
    assert_null(sip_txn_client_send(f->l, CONN_A, proxy_req("INVITE", BR1), NULL));
    /* An ACK is no transaction. */
    assert_null(sip_txn_client_send(f->l, CONN_A, proxy_req("ACK", BR2), NULL));
    /* No branch. */
    assert_null(sip_txn_client_send(f->l, CONN_A,
                                    parse("OPTIONS sip:bob@example.com SIP/2.0\r\n"
                                          "Via: SIP/2.0/TLS proxy.example.com\r\n"
                                          "From: <sip:alice@example.com>;tag=a1\r\n"
                                          "To: <sip:bob@example.com>\r\n"
                                          "Call-ID: c3@example.com\r\n"
                                          "CSeq: 1 OPTIONS\r\n\r\n"),
                                    NULL));
    assert_null(sip_txn_client_send(f->l, CONN_A, NULL, NULL));
    assert_int_equal(f->nsent, 1);
    assert_int_equal(sip_txn_layer_count(f->l), 1);
}

static void test_cancel_deferred_until_1xx(void **state)
{
    struct fx *f = *state;
    struct sip_client_txn *c = new_client(f, CONN_A, "INVITE", BR1, 1);

    sip_client_txn_cancel(c, "SIP;cause=600;text=\"Busy Everywhere\"");
    assert_int_equal(f->nsent, 1); /* not before a provisional response */
    deliver(f, CONN_A, c, 180, "callee1", true);
    assert_int_equal(f->nrep, 1);
    assert_int_equal(f->nsent, 2);
    struct sip_msg *m = sent_msg(f, 1);
    /* To is the request's, without the tag the 180 added. */
    assert_ack_or_cancel(m, sip_client_txn_request(c), SIP_METHOD_CANCEL, "<sip:bob@example.com>");
    assert_hdr(m, SIP_HDR_REASON, "SIP;cause=600;text=\"Busy Everywhere\"");

    /* The CANCEL's responses are swallowed. */
    struct sip_msg *r = resp_to(m, 200, "callee1");
    assert_true(sip_txn_client_receive(f->l, CONN_A, r));
    sip_msg_free(r);
    sip_msg_free(m);
    assert_int_equal(f->nrep, 1);
    /* Twice is once. */
    sip_client_txn_cancel(c, NULL);
    deliver(f, CONN_A, c, 183, "callee1", true);
    assert_int_equal(f->nsent, 2);

    deliver(f, CONN_A, c, 487, "callee1", true);
    assert_int_equal(f->nrep, 3);
    assert_int_equal(f->rep[2].status, 487);
    assert_int_equal(f->nsent, 3);
    m = sent_msg(f, 2);
    assert_int_equal(m->method, SIP_METHOD_ACK);
    sip_msg_free(m);
    run(f);
    assert_int_equal(f->ncli_term, 1); /* the internal CANCEL has no hook */
    assert_int_equal(sip_txn_layer_count(f->l), 0);
    /* The 64*T1 CANCEL timer was stopped with the transaction. */
    advance(f, 64 * SIP_T1_MS);
    assert_int_equal(f->nrep, 3);
    assert_int_equal(timer_heap_count(f->heap), 0);
}

static void test_cancel_after_1xx_then_no_final(void **state)
{
    struct fx *f = *state;
    struct sip_client_txn *c = new_client(f, CONN_A, "INVITE", BR1, 1);

    deliver(f, CONN_A, c, 183, "callee1", true);
    advance(f, 5000);
    sip_client_txn_cancel(c, NULL);
    assert_int_equal(f->nsent, 2); /* at once */
    struct sip_msg *m = sent_msg(f, 1);
    assert_ack_or_cancel(m, sip_client_txn_request(c), SIP_METHOD_CANCEL, "<sip:bob@example.com>");
    assert_null(sip_msg_hdr_first(m, SIP_HDR_REASON));
    /* A 200 to the CANCEL does not end the INVITE. */
    struct sip_msg *r = resp_to(m, 200, "callee1");
    assert_true(sip_txn_client_receive(f->l, CONN_A, r));
    sip_msg_free(r);
    sip_msg_free(m);

    advance(f, 64 * SIP_T1_MS - 1);
    assert_int_equal(f->nrep, 1);
    advance(f, 1);
    assert_int_equal(f->nrep, 2);
    assert_int_equal(f->rep[1].status, 408);
    assert_int_equal(f->rep[1].resp_status, 0);
    assert_int_equal(f->ncli_term, 1);
    assert_int_equal(sip_txn_layer_count(f->l), 0);
    /* Timer C (longer) is gone with it. */
    advance(f, SIP_TIMER_C_MS);
    assert_int_equal(f->nrep, 2);
}

static void test_cancel_final_first(void **state)
{
    struct fx *f = *state;
    struct sip_client_txn *c = new_client(f, CONN_A, "INVITE", BR1, 1);

    sip_client_txn_cancel(c, "SIP;cause=487");
    deliver(f, CONN_A, c, 486, "callee1", true);
    assert_int_equal(f->nsent, 2);
    struct sip_msg *m = sent_msg(f, 1);
    assert_int_equal(m->method, SIP_METHOD_ACK); /* and never a CANCEL */
    sip_msg_free(m);
    sip_client_txn_cancel(c, NULL); /* after a final: no-op */
    run(f);
    assert_int_equal(f->nsent, 2);
    assert_int_equal(sip_txn_layer_count(f->l), 0);

    /* Not for a 2xx either. */
    c = new_client(f, CONN_A, "INVITE", BR2, 2);
    deliver(f, CONN_A, c, 200, "callee2", true);
    sip_client_txn_cancel(c, NULL);
    assert_int_equal(f->nsent, 3);
    /* Nor for a non-INVITE. */
    c = new_client(f, CONN_A, "MESSAGE", "z9hG4bKmsg", 3);
    deliver(f, CONN_A, c, 100, NULL, true);
    sip_client_txn_cancel(c, NULL);
    assert_int_equal(f->nsent, 4);
}

static void test_client_stray_responses(void **state)
{
    struct fx *f = *state;
    struct sip_client_txn *c = new_client(f, CONN_A, "INVITE", BR1, 1);

    /* Unknown branch. */
    struct sip_msg *other = proxy_req("INVITE", BR2);
    struct sip_msg *r = resp_to(other, 180, "x");
    assert_false(sip_txn_client_receive(f->l, CONN_A, r));
    sip_msg_free(r);
    sip_msg_free(other);
    /* Right branch, another CSeq method. */
    other = proxy_req("BYE", BR1);
    r = resp_to(other, 200, "x");
    assert_false(sip_txn_client_receive(f->l, CONN_A, r));
    sip_msg_free(r);
    sip_msg_free(other);
    /* Right transaction, wrong connection. */
    deliver(f, CONN_B, c, 180, "x", false);
    /* A request is no response. */
    other = proxy_req("INVITE", BR1);
    assert_false(sip_txn_client_receive(f->l, CONN_A, other));
    sip_msg_free(other);

    assert_int_equal(f->nrep, 0);
    assert_int_equal(sip_client_txn_last_status(c), 0);
    deliver(f, CONN_A, c, 180, "x", true);
    assert_int_equal(f->nrep, 1);
}

static void test_conn_closed(void **state)
{
    struct fx *f = *state;
    struct sip_server_txn *s1 = new_server(f, CONN_A, uac_req("INVITE", BR1, SENT_BY, NULL), 1);
    new_server(f, CONN_A, uac_req("OPTIONS", BR2, SENT_BY, NULL), 2);
    struct sip_server_txn *s3 =
        new_server(f, CONN_B, uac_req("INVITE", BR1, "192.0.2.2:5061", NULL), 3);
    struct sip_client_txn *c1 = new_client(f, CONN_A, "INVITE", "z9hG4bKc1", 11);
    new_client(f, CONN_A, "MESSAGE", "z9hG4bKc2", 12);
    struct sip_client_txn *c3 = new_client(f, CONN_A, "INVITE", "z9hG4bKc3", 13);
    struct sip_client_txn *c4 = new_client(f, CONN_B, "INVITE", "z9hG4bKc4", 14);
    deliver(f, CONN_A, c1, 180, "x", true);
    sip_client_txn_cancel(c1, NULL); /* its internal CANCEL is on CONN_A too */
    deliver(f, CONN_A, c3, 200, "y", true);
    assert_int_equal(f->nrep, 2);
    assert_int_equal(sip_txn_layer_count(f->l), 8);

    sip_txn_conn_closed(f->l, CONN_A);
    /* 503 for c1 and c2; c3 had its final (2xx) already. */
    assert_int_equal(f->nrep, 4);
    void *ids[2] = {f->rep[2].ctx, f->rep[3].ctx};
    assert_true((ids[0] == id(11) && ids[1] == id(12)) || (ids[0] == id(12) && ids[1] == id(11)));
    assert_int_equal(f->rep[2].status, 503);
    assert_int_equal(f->rep[2].resp_status, 0);
    assert_int_equal(f->rep[3].status, 503);
    /* Ended, not yet freed: answering is refused, nothing is sent. */
    size_t nsent = f->nsent;
    assert_int_equal(sip_server_txn_reply(s1, 200, NULL, NULL), -ENOTCONN);
    assert_int_equal(f->nsent, nsent);
    sip_client_txn_cancel(c1, NULL);
    assert_int_equal(f->nsent, nsent);
    assert_int_equal(f->nsrv_term, 0);
    run(f);
    assert_int_equal(f->nsrv_term, 2);
    assert_int_equal(f->ncli_term, 3);
    /* CONN_B's transactions live on. */
    assert_int_equal(sip_txn_layer_count(f->l), 2);
    deliver(f, CONN_B, c4, 180, "z", true);
    assert_int_equal(sip_server_txn_reply(s3, 180, NULL, NULL), 0);
    /* A second close of the same connection finds nothing. */
    sip_txn_conn_closed(f->l, CONN_A);
    assert_int_equal(f->nrep, 5);
}

static void test_reentrant_hooks(void **state)
{
    struct fx *f = *state;

    /* The connection fails inside the send of a new request: 503 before
     * the caller has the pointer, which stays valid until the reaper. */
    f->fail_conn = CONN_A;
    struct sip_client_txn *c = sip_txn_client_send(f->l, CONN_A, proxy_req("INVITE", BR1), id(1));
    assert_non_null(c);
    assert_int_equal(f->nrep, 1);
    assert_ptr_equal(f->rep[0].t, c);
    assert_int_equal(f->rep[0].status, 503);
    assert_ptr_equal(sip_client_txn_context(c), id(1));
    assert_int_equal(f->ncli_term, 0);

    /* ... or inside the send of a final response. */
    f->fail_conn = 0;
    struct sip_server_txn *s = new_server(f, CONN_A, uac_req("INVITE", BR1, SENT_BY, NULL), 2);
    f->fail_conn = CONN_A;
    assert_int_equal(sip_server_txn_reply(s, 486, NULL, NULL), 0);
    assert_true(sip_server_txn_answered(s));
    assert_int_equal(f->nsrv_term, 0);
    run(f);
    assert_int_equal(f->ncli_term, 1);
    assert_int_equal(f->nsrv_term, 1);
    assert_int_equal(sip_txn_layer_count(f->l), 0);

    /* A proxy cancels the other fork from inside the 2xx report. */
    f->fail_conn = 0;
    struct sip_client_txn *a = new_client(f, CONN_B, "INVITE", "z9hG4bKforka", 3);
    struct sip_client_txn *b = new_client(f, CONN_B, "INVITE", "z9hG4bKforkb", 4);
    deliver(f, CONN_B, a, 180, "ta", true);
    deliver(f, CONN_B, b, 180, "tb", true);
    f->cancel_target = b;
    size_t nsent = f->nsent;
    deliver(f, CONN_B, a, 200, "ta", true);
    assert_int_equal(f->nsent, nsent + 1);
    struct sip_msg *m = sent_msg(f, nsent);
    assert_int_equal(m->method, SIP_METHOD_CANCEL);
    struct sip_via via;
    assert_int_equal(sip_msg_top_via(m, &via), 0);
    assert_true(strview_eq(via.branch, "z9hG4bKforkb"));
    assert_hdr(m, SIP_HDR_REASON, "SIP;cause=200;text=\"Call completed elsewhere\"");
    sip_msg_free(m);
}

static void test_layer_free_ends_everything(void **state)
{
    struct fx *f = *state;
    struct sip_server_txn *s = new_server(f, CONN_A, uac_req("INVITE", BR1, SENT_BY, NULL), 1);
    assert_int_equal(sip_server_txn_reply(s, 486, NULL, NULL), 0);
    new_server(f, CONN_A, uac_req("OPTIONS", BR2, SENT_BY, NULL), 2);
    struct sip_client_txn *c = new_client(f, CONN_B, "INVITE", BR1, 11);
    deliver(f, CONN_B, c, 180, "x", true);
    sip_client_txn_cancel(c, NULL);
    struct sip_client_txn *c2 = new_client(f, CONN_B, "OPTIONS", BR2, 12);
    deliver(f, CONN_B, c2, 200, "x", true); /* ended, waiting for the reaper */

    sip_txn_layer_free(f->l);
    f->l = NULL;
    assert_int_equal(f->nsrv_term, 2);
    assert_int_equal(f->ncli_term, 2);
    assert_int_equal(timer_heap_count(f->heap), 0);
    assert_int_equal(f->nrep, 2); /* freeing reports no response */
}

static void test_new_branch(void **state)
{
    (void)state;
    char a[32], b[32], small[10];
    sip_txn_new_branch(a, sizeof(a));
    sip_txn_new_branch(b, sizeof(b));
    assert_int_equal(strlen(a), 31);
    assert_memory_equal(a, "z9hG4bK", 7);
    assert_string_not_equal(a, b);
    sip_txn_new_branch(small, sizeof(small));
    assert_int_equal(strlen(small), 9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_server_invite_1xx_486_ack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_invite_local_final_is_stateless, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_server_dispatched_and_held, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_in_dialog_local_final, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_invite_timer_h, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_invite_2xx_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_retransmission_resends_last, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_invalid_and_unmatched_ack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_non_invite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_guard, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_invite_180_200, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_invite_486_ack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_invite_timer_b, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_invite_timer_c, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_non_invite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_send_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_deferred_until_1xx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_after_1xx_then_no_final, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_final_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_stray_responses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conn_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reentrant_hooks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_layer_free_ends_everything, setup, teardown),
        cmocka_unit_test(test_new_branch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
