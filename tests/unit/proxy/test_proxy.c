/*
 * The SIP proxy in process (src/proxy through struct proxy_env), on fake
 * time: digest challenges and identity, forking and the best response
 * (RFC 3261 §16.7), CANCEL races, routing inside dialogs and who may use
 * them, and the media policy on answers — where Parley must end a call it
 * already let through, with ACK and BYE of its own.
 *
 * Each test plays the user agents with the fixture (fixture.h): alice
 * calls, bob answers on one or two devices, carol is a third party.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/log.h"
#include "crypto/digest.h"
#include "agents.h"
#include "fixture.h"
#include "proxy/federation.h"

/* === 1. digest challenges and identity ===================================== */

static void test_invite_without_credentials_gets_407(void **state)
{
    struct fx *f = *state;
    uint64_t a = fx_open(f);
    struct fx_req r = {
        .method = "INVITE",
        .from = "alice",
        .to = "bob",
        .call_id = "c407@192.0.2.1",
        .cseq = 1,
        .contact = "alice",
        .sdp = FX_SDP_SRTP_OFFER,
    };
    assert_int_equal(fx_request(f, a, &r), 0);
    int i = last_status(f, a, 407);
    /* one challenge per algorithm, for the realm that is the domain */
    assert_int_equal(fx_sent_header_count(f, i, "Proxy-Authenticate"), 2);
    assert_header_has(f, i, "Proxy-Authenticate", "Digest realm=\"" FX_DOMAIN "\"");
    assert_header_has(f, i, "Proxy-Authenticate", "algorithm=SHA-256");
    assert_no_header(f, i, "WWW-Authenticate");
    assert_int_equal(f->nsent, 1);
    /* answered at once and forgotten: no transaction is left */
    fx_run(f);
    struct proxy_stats st;
    proxy_stats(f->proxy, &st);
    assert_int_equal(st.server_transactions, 0);
    assert_int_equal(st.stateless_answers, 1);
}

static void test_invite_with_wrong_password_gets_403(void **state)
{
    struct fx *f = *state;
    uint64_t b = device(f, "bob");
    uint64_t a = fx_open(f);
    struct fx_req r = {
        .method = "INVITE",
        .from = "alice",
        .to = "bob",
        .call_id = "c403@192.0.2.1",
        .cseq = 1,
        .contact = "alice",
    };
    fx_clear(f);
    assert_int_equal(fx_invite(f, a, &r, "not-wonderland"), 0);
    last_status(f, a, 403);
    assert_int_equal(fx_count_on(f, b), 0);
    assert_int_equal(f->nrecords, 0);
}

static void test_authenticated_invite_is_forwarded_with_parleys_headers(void **state)
{
    struct fx *f = *state;
    uint64_t b = device(f, "bob");
    uint64_t a = fx_open(f);
    struct call c;
    /* an identity of the caller's own choosing must not reach bob */
    call_start(f, &c, a, "alice", "bob", FX_SDP_SRTP_OFFER,
               "P-Asserted-Identity: <sip:carol@" FX_DOMAIN ">\r\n");
    last_status(f, a, 100);
    assert_int_equal(count_status(f, a, c.mark, 0), 0);

    int i = forked(f, b);
    struct sip_msg *m = fx_sent_parse(f, i);
    assert_non_null(m);
    char contact[160];
    fx_contact(f, b, "bob", contact, sizeof(contact));
    assert_true(strview_eq(m->request_uri, contact));
    assert_int_equal(m->max_forwards, 69);
    assert_int_equal(m->cseq_num, 2);
    /* Parley's Via on top of alice's */
    assert_int_equal(sip_msg_hdr_count(m, SIP_HDR_VIA), 2);
    struct sip_via via;
    assert_int_equal(sip_msg_top_via(m, &via), 0);
    assert_true(strview_eq(via.transport, "TLS"));
    assert_true(strview_eq(via.host, "198.51.100.1"));
    assert_int_equal(via.port, 5061);
    assert_true(via.branch.n > 7 && memcmp(via.branch.p, "z9hG4bK", 7) == 0);
    sip_msg_free(m);
    assert_header(f, i, "Record-Route", FX_RECORD_ROUTE);
    assert_no_header(f, i, "Proxy-Authorization");
    assert_int_equal(fx_sent_header_count(f, i, "P-Asserted-Identity"), 1);
    assert_header(f, i, "P-Asserted-Identity", "<sip:alice@" FX_DOMAIN ">");
    /* the offer passed the policy untouched */
    assert_string_equal(body_of(f, i), FX_SDP_SRTP_OFFER);

    char st[32];
    assert_int_equal(live_calls(f, st), 1);
    assert_string_equal(st, "ringing");

    /* bob's answer reaches alice with bob's identity asserted by Parley,
     * not the one bob's device claims */
    assert_int_equal(fx_respond(f, b, i, 200, "b1",
                                "P-Asserted-Identity: <sip:carol@" FX_DOMAIN ">\r\n",
                                FX_SDP_SRTP_ANSWER),
                     0);
    int ok = last_status(f, a, 200);
    assert_int_equal(fx_sent_header_count(f, ok, "P-Asserted-Identity"), 1);
    assert_header(f, ok, "P-Asserted-Identity", "<sip:bob@" FX_DOMAIN ">");
    assert_int_equal(fx_sent_header_count(f, ok, "Via"), 1);
    assert_int_equal(live_calls(f, st), 1);
    assert_string_equal(st, "answered");
}

static void test_register_without_credentials_gets_401(void **state)
{
    struct fx *f = *state;
    uint64_t b = fx_open(f);
    struct fx_req r = {
        .method = "REGISTER",
        .ruri = "sip:" FX_DOMAIN,
        .from = "bob",
        .to = "bob",
        .call_id = "reg401@192.0.2.1",
        .cseq = 1,
        .contact = "bob",
        .headers = "Expires: 600\r\n",
    };
    assert_int_equal(fx_request(f, b, &r), 0);
    int i = last_status(f, b, 401);
    assert_int_equal(fx_sent_header_count(f, i, "WWW-Authenticate"), 2);
    assert_header_has(f, i, "WWW-Authenticate", "Digest realm=\"" FX_DOMAIN "\"");
    assert_no_header(f, i, "Proxy-Authenticate");
    const struct binding *bs[2];
    assert_int_equal(registrar_lookup(f->registrar, "bob", bs, 2), 0);

    /* answering the challenge registers the device on this connection */
    assert_int_equal(fx_register(f, b, "bob", "builder"), 200);
    char contact[160];
    fx_contact(f, b, "bob", contact, sizeof(contact));
    assert_header_has(f, fx_last_on(f, b), "Contact", contact);
    assert_int_equal(registrar_lookup(f->registrar, "bob", bs, 2), 1);
    assert_int_equal(bs[0]->conn, b);
    /* a wrong password registers nothing */
    uint64_t x = fx_open(f);
    assert_int_equal(fx_register(f, x, "bob", "bulldozer"), 403);
    assert_int_equal(registrar_lookup(f->registrar, "bob", bs, 2), 1);
}

static void test_from_other_than_authenticated_user_gets_403(void **state)
{
    struct fx *f = *state;
    uint64_t b = device(f, "bob");
    uint64_t a = fx_open(f);
    /* From carol, with alice's (valid) credentials */
    struct fx_req r = {
        .method = "INVITE",
        .from = "carol",
        .to = "bob",
        .call_id = "cfrom@192.0.2.1",
        .cseq = 1,
        .contact = "carol",
    };
    assert_int_equal(fx_request(f, a, &r), 0);
    char challenge[512], creds[1024];
    assert_int_equal(fx_sent_header(f, last_status(f, a, 407), "Proxy-Authenticate", challenge,
                                    sizeof(challenge)),
                     0);
    assert_int_equal(fx_credentials("Proxy-Authorization", challenge, "alice", "wonderland",
                                    "INVITE", "sip:bob@" FX_DOMAIN, creds, sizeof(creds)),
                     0);
    r.cseq = 2;
    r.headers = creds;
    fx_clear(f);
    assert_int_equal(fx_request(f, a, &r), 0);
    int i = last_status(f, a, 403);
    assert_true(strstr(f->sent[i].data, "From does not match") != NULL);
    assert_int_equal(fx_count_on(f, b), 0);
}

/* === 2. forking and the best response ====================================== */

static void test_fork_busy_device_then_other_answers(void **state)
{
    struct fx *f = *state;
    uint64_t b1 = device(f, "bob"), b2 = device(f, "bob");
    uint64_t a = fx_open(f);
    struct call c;
    call_start(f, &c, a, "alice", "bob", FX_SDP_SRTP_OFFER, NULL);
    int i1 = forked(f, b1), i2 = forked(f, b2);

    respond(f, b1, i1, 486, "b1", NULL);
    /* the busy device gets its ACK from the transaction layer; alice hears
     * nothing of it while another device may still answer */
    last_request(f, b1, "ACK");
    assert_int_equal(count_status(f, a, c.mark, 0), 0);

    respond(f, b2, i2, 180, "b2", NULL);
    last_status(f, a, 180);
    respond(f, b2, i2, 200, "b2", FX_SDP_SRTP_ANSWER);
    int ok = last_status(f, a, 200);
    assert_header_has(f, ok, "To", ";tag=b2");
    assert_header(f, ok, "P-Asserted-Identity", "<sip:bob@" FX_DOMAIN ">");

    assert_int_equal(count_status(f, a, c.mark, 486), 0);
    assert_int_equal(count_status(f, a, c.mark, 0), 1);
    /* the device that had answered is not cancelled, now or later */
    assert_int_equal(count_requests(f, b1, 0, "CANCEL"), 0);
    size_t b1_before = fx_count_on(f, b1);
    fx_advance(f, 40000);
    assert_int_equal(fx_count_on(f, b1), b1_before);
    char st[32];
    assert_int_equal(live_calls(f, st), 1);
    assert_string_equal(st, "answered");
}

static void test_fork_two_failures_forward_one_final_first_of_class(void **state)
{
    struct fx *f = *state;
    uint64_t b1 = device(f, "bob"), b2 = device(f, "bob");
    uint64_t a = fx_open(f);
    struct call c;
    call_start(f, &c, a, "alice", "bob", NULL, NULL);
    int i1 = forked(f, b1), i2 = forked(f, b2);
    respond(f, b1, i1, 486, "b1", NULL);
    assert_int_equal(count_status(f, a, c.mark, 0), 0);
    respond(f, b2, i2, 404, "b2", NULL);
    /* both 4xx: neither class is better, the first kept (RFC 3261 §16.7) */
    assert_int_equal(count_status(f, a, c.mark, 0), 1);
    last_status(f, a, 486);
    assert_string_equal(only_record(f)->reason, "486 Busy Here");
    assert_int_equal(only_record(f)->answered, 0);
}

static void test_fork_6xx_cancels_the_ringing_branch(void **state)
{
    struct fx *f = *state;
    uint64_t b1 = device(f, "bob"), b2 = device(f, "bob");
    uint64_t a = fx_open(f);
    struct call c;
    call_start(f, &c, a, "alice", "bob", NULL, NULL);
    int i1 = forked(f, b1), i2 = forked(f, b2);
    respond(f, b1, i1, 180, "b1", NULL);
    respond(f, b2, i2, 180, "b2", NULL);
    respond(f, b2, i2, 603, "b2", NULL);
    /* the other device stops ringing */
    int cancel = last_request(f, b1, "CANCEL");
    char via[256], inv_via[256];
    assert_int_equal(fx_sent_header(f, cancel, "Via", via, sizeof(via)), 0);
    assert_int_equal(fx_sent_header(f, i1, "Via", inv_via, sizeof(inv_via)), 0);
    assert_string_equal(via, inv_via);
    assert_header(f, cancel, "CSeq", "2 CANCEL");
    assert_int_equal(count_status(f, a, c.mark, 0), 0);
    respond(f, b1, cancel, 200, NULL, NULL);
    respond(f, b1, i1, 487, "b1", NULL);
    /* the decline, not the 487 of the cancelled branch */
    assert_int_equal(count_status(f, a, c.mark, 0), 1);
    last_status(f, a, 603);
    assert_string_equal(only_record(f)->reason, "603 Decline");
}

static void test_only_branch_503_becomes_500(void **state)
{
    struct fx *f = *state;
    uint64_t b = device(f, "bob");
    uint64_t a = fx_open(f);
    struct call c;
    call_start(f, &c, a, "alice", "bob", NULL, NULL);
    assert_int_equal(fx_respond(f, b, forked(f, b), 503, "b1", "Retry-After: 30\r\n", NULL), 0);
    /* a 503 would tell alice that Parley is overloaded (RFC 3261 §16.7) */
    assert_int_equal(count_status(f, a, c.mark, 503), 0);
    assert_int_equal(count_status(f, a, c.mark, 0), 1);
    int i = last_status(f, a, 500);
    /* the phrase goes with the code, and the rest of bob's answer stays */
    assert_true(strncmp(f->sent[i].data, "SIP/2.0 500 Server Internal Error\r\n", 35) == 0);
    assert_header(f, i, "Retry-After", "30");
}

static void test_no_registered_device_gets_480(void **state)
{
    struct fx *f = *state;
    (void)device(f, "bob");
    uint64_t a = fx_open(f);
    struct call c;
    call_start(f, &c, a, "alice", "carol", FX_SDP_SRTP_OFFER, NULL);
    last_status(f, a, 480);
    assert_int_equal(count_status(f, a, c.mark, 0), 1);
    const struct fx_record *r = only_record(f);
    assert_string_equal(r->caller, "alice@" FX_DOMAIN);
    assert_string_equal(r->callee, "carol@" FX_DOMAIN);
    assert_string_equal(r->reason, "480 Temporarily Unavailable");
    /* a user who does not exist is another matter */
    call_start(f, &c, a, "alice", "mallory", NULL, NULL);
    last_status(f, a, 404);
}

static void test_silent_branch_times_out_with_408(void **state)
{
    struct fx *f = *state;
    uint64_t b = device(f, "bob");
    uint64_t a = fx_open(f);
    struct call c;
    call_start(f, &c, a, "alice", "bob", NULL, NULL);
    (void)forked(f, b);
    size_t mark = f->nsent;
    fx_advance(f, 31000);
    assert_int_equal(count_status(f, a, c.mark, 0), 0);
    /* Timer B (64*T1): no response at all */
    fx_advance(f, 2000);
    last_status(f, a, 408);
    assert_int_equal(count_status(f, a, c.mark, 0), 1);
    /* nothing to cancel: the device never said it was there */
    assert_int_equal(count_requests(f, b, mark, "CANCEL"), 0);
    assert_string_equal(only_record(f)->reason, "408 Request Timeout");
}

static void test_ringing_branch_timer_c_cancels_and_408(void **state)
{
    struct fx *f = *state;
    uint64_t b = device(f, "bob");
    uint64_t a = fx_open(f);
    struct call c;
    call_start(f, &c, a, "alice", "bob", NULL, NULL);
    int inv = forked(f, b);
    respond(f, b, inv, 180, "b1", NULL);
    size_t mark = f->nsent;
    fx_advance(f, 179000);
    assert_int_equal(count_status(f, a, c.mark, 0), 0);
    /* Timer C: the proxy gives up on the branch and cancels it (§16.8) */
    fx_advance(f, 2000);
    assert_int_equal(count_requests(f, b, mark, "CANCEL"), 1);
    last_status(f, a, 408);
    assert_int_equal(count_status(f, a, c.mark, 0), 1);
    /* the device's late 487 changes nothing */
    respond(f, b, inv, 487, "b1", NULL);
    assert_int_equal(count_status(f, a, c.mark, 0), 1);
    assert_string_equal(only_record(f)->reason, "408 Request Timeout");
}

/* === 3. CANCEL races ====================================================== */

static void test_cancel_before_final_cancels_every_branch(void **state)
{
    struct fx *f = *state;
    uint64_t b1 = device(f, "bob"), b2 = device(f, "bob");
    uint64_t a = fx_open(f);
    struct call c;
    call_start(f, &c, a, "alice", "bob", NULL, NULL);
    int i1 = forked(f, b1), i2 = forked(f, b2);
    respond(f, b1, i1, 180, "b1", NULL);
    respond(f, b2, i2, 180, "b2", NULL);
    size_t mark = f->nsent;
    call_cancel(f, &c);
    int ok = last_status(f, a, 200);
    assert_header(f, ok, "CSeq", "2 CANCEL");
    int k1 = last_request(f, b1, "CANCEL"), k2 = last_request(f, b2, "CANCEL");
    assert_int_equal(count_requests(f, b1, mark, "CANCEL"), 1);
    assert_int_equal(count_requests(f, b2, mark, "CANCEL"), 1);
    respond(f, b1, k1, 200, NULL, NULL);
    respond(f, b2, k2, 200, NULL, NULL);
    respond(f, b1, i1, 487, "b1", NULL);
    assert_int_equal(count_status(f, a, mark, 487), 0);
    respond(f, b2, i2, 487, "b2", NULL);
    assert_int_equal(count_status(f, a, mark, 487), 1);
    assert_int_equal(count_status(f, a, c.mark, 0), 2); /* 200 (CANCEL), 487 */
    assert_string_equal(only_record(f)->reason, "cancelled by caller");
}

/* A device that has sent nothing yet gets its CANCEL once it has (RFC 3261
 * §9.1): a CANCEL may not overtake the INVITE. */
static void test_cancel_waits_for_a_silent_branchs_provisional(void **state)
{
    struct fx *f = *state;
    uint64_t b1 = device(f, "bob"), b2 = device(f, "bob");
    uint64_t a = fx_open(f);
    struct call c;
    call_start(f, &c, a, "alice", "bob", NULL, NULL);
    int i1 = forked(f, b1), i2 = forked(f, b2);
    respond(f, b1, i1, 180, "b1", NULL);
    size_t mark = f->nsent;
    call_cancel(f, &c);
    last_status(f, a, 200);
    assert_int_equal(count_requests(f, b1, mark, "CANCEL"), 1);
    assert_int_equal(count_requests(f, b2, mark, "CANCEL"), 0);
    respond(f, b2, i2, 100, NULL, NULL);
    assert_int_equal(count_requests(f, b2, mark, "CANCEL"), 1);
    respond(f, b1, i1, 487, "b1", NULL);
    respond(f, b2, i2, 487, "b2", NULL);
    assert_int_equal(count_status(f, a, mark, 487), 1);
    assert_string_equal(only_record(f)->reason, "cancelled by caller");
}

static void test_cancel_after_200_cancels_nothing(void **state)
{
    struct fx *f = *state;
    uint64_t b = device(f, "bob");
    uint64_t a = fx_open(f);
    struct call c;
    call_start(f, &c, a, "alice", "bob", FX_SDP_SRTP_OFFER, NULL);
    int inv = forked(f, b);
    respond(f, b, inv, 200, "b1", FX_SDP_SRTP_ANSWER);
    last_status(f, a, 200);
    size_t mark = f->nsent;
    call_cancel(f, &c);
    int ok = last_status(f, a, 200);
    assert_header(f, ok, "CSeq", "2 CANCEL");
    assert_int_equal(count_requests(f, b, mark, "CANCEL"), 0);
    assert_int_equal(count_status(f, a, mark, 487), 0);
    assert_int_equal(f->nrecords, 0);
    char st[32];
    assert_int_equal(live_calls(f, st), 1);
    assert_string_equal(st, "answered");
}

static void test_200_after_cancel_is_still_forwarded(void **state)
{
    struct fx *f = *state;
    uint64_t b = device(f, "bob");
    uint64_t a = fx_open(f);
    struct call c;
    call_start(f, &c, a, "alice", "bob", FX_SDP_SRTP_OFFER, NULL);
    int inv = forked(f, b);
    respond(f, b, inv, 180, "b1", NULL);
    call_cancel(f, &c);
    int k = last_request(f, b, "CANCEL");
    /* bob picked up as the CANCEL was on its way: the CANCEL finds no
     * transaction to cancel there, and the 2xx must reach alice */
    size_t mark = f->nsent;
    respond(f, b, inv, 200, "b1", FX_SDP_SRTP_ANSWER);
    respond(f, b, k, 481, NULL, NULL);
    int ok = last_status(f, a, 200);
    assert_header_has(f, ok, "CSeq", "INVITE");
    assert_int_equal(count_status(f, a, mark, 0), 1);
    assert_int_equal(f->nrecords, 0);
    char st[32];
    assert_int_equal(live_calls(f, st), 1);
    assert_string_equal(st, "answered");
    /* and the call goes on: alice's ACK reaches bob */
    call_note_answer(f, &c, ok);
    call_ack(f, &c, c.cseq, NULL);
    last_request(f, b, "ACK");
}

static void test_cancel_of_unknown_transaction_gets_481(void **state)
{
    struct fx *f = *state;
    uint64_t a = fx_open(f);
    struct fx_req r = {
        .method = "CANCEL",
        .from = "alice",
        .to = "bob",
        .call_id = "nothing@192.0.2.1",
        .cseq = 1,
        .branch = "z9hG4bKnever-sent",
    };
    assert_int_equal(fx_request(f, a, &r), 0);
    int i = last_status(f, a, 481);
    assert_header(f, i, "CSeq", "1 CANCEL");
}

/* A CANCEL is hop-by-hop: it comes over the connection its INVITE came
 * over. Its branch and sent-by are no credential (the callee's devices
 * and partners see them), so the same CANCEL over someone else's
 * connection cancels nothing. */
static void test_cancel_over_another_connection_gets_481(void **state)
{
    struct fx *f = *state;
    uint64_t b = device(f, "bob");
    uint64_t a = fx_open(f), m = device(f, "carol");
    struct call c;
    call_start(f, &c, a, "alice", "bob", NULL, NULL);
    int i = forked(f, b);
    respond(f, b, i, 180, "b1", NULL);
    size_t mark = f->nsent;
    struct fx_req r = {
        .method = "CANCEL",
        .from = c.caller,
        .to = c.callee,
        .call_id = c.call_id,
        .cseq = c.cseq,
        .branch = c.branch,
    };
    char text[FX_MSG_MAX];
    assert_int_equal(fx_build_request(f, a, &r, text, sizeof(text)), 0); /* alice's Via */
    assert_int_equal(fx_send_text(f, m, text, strlen(text)), 0);         /* carol's connection */
    last_status(f, m, 481);
    assert_int_equal(count_requests(f, b, mark, "CANCEL"), 0);
    /* alice's own CANCEL still works */
    call_cancel(f, &c);
    last_status(f, a, 200);
    assert_int_equal(count_requests(f, b, mark, "CANCEL"), 1);
}

/* === 4. inside dialogs ==================================================== */

static void test_ack_of_200_goes_to_callee_statelessly(void **state)
{
    struct fx *f = *state;
    uint64_t b = device(f, "bob");
    uint64_t a = fx_open(f);
    struct call c;
    call_start(f, &c, a, "alice", "bob", FX_SDP_SRTP_OFFER, NULL);
    respond(f, b, forked(f, b), 200, "b1", FX_SDP_SRTP_ANSWER);
    call_note_answer(f, &c, last_status(f, a, 200));
    struct proxy_stats before, after;
    proxy_stats(f->proxy, &before);
    call_ack(f, &c, c.cseq, NULL);
    proxy_stats(f->proxy, &after);
    int ack = last_request(f, b, "ACK");
    char contact[160];
    fx_contact(f, b, "bob", contact, sizeof(contact));
    struct sip_msg *m = fx_sent_parse(f, ack);
    assert_non_null(m);
    assert_true(strview_eq(m->request_uri, contact));
    assert_int_equal(sip_msg_hdr_count(m, SIP_HDR_VIA), 2);
    assert_int_equal(sip_msg_hdr_count(m, SIP_HDR_ROUTE), 0); /* our own Route popped */
    assert_int_equal(m->cseq_num, c.cseq);
    sip_msg_free(m);
    /* no transaction was made for it, and nothing answered it */
    assert_int_equal(after.server_transactions, before.server_transactions);
    assert_int_equal(after.client_transactions, before.client_transactions);
    assert_int_equal(after.acks_dropped, 0);
    assert_int_equal(fx_count_on(f, a), count_status(f, a, 0, 0) + count_status(f, a, 0, 100) +
                                            count_status(f, a, 0, 180));
}

static void test_bye_from_caller_is_forwarded_and_logged(void **state)
{
    struct fx *f = *state;
    uint64_t b = device(f, "bob");
    uint64_t a = fx_open(f);
    struct call c;
    answered_call(f, &c, a, b);
    fx_advance(f, 5000);
    call_caller_request(f, &c, a, "BYE", c.cseq + 1, NULL, NULL);
    int bye = last_request(f, b, "BYE");
    assert_header(f, bye, "CSeq", "3 BYE");
    respond(f, b, bye, 200, NULL, NULL);
    int ok = last_status(f, a, 200);
    assert_header(f, ok, "CSeq", "3 BYE");
    const struct fx_record *r = only_record(f);
    assert_string_equal(r->reason, "BYE from caller");
    assert_string_equal(r->call_id, c.call_id);
    assert_true(r->answered > 0);
    assert_true(r->ended >= r->answered + 5);
    assert_string_equal(r->media, "audio SRTP " FX_SUITE_80);
    struct proxy_stats st;
    proxy_stats(f->proxy, &st);
    assert_int_equal(st.dialogs, 0);
    char state_[32];
    assert_int_equal(live_calls(f, state_), 0);
}

static void test_bye_over_a_third_partys_connection_gets_403(void **state)
{
    struct fx *f = *state;
    uint64_t b = device(f, "bob");
    uint64_t k = device(f, "carol");
    uint64_t a = fx_open(f);
    struct call c;
    answered_call(f, &c, a, b);
    size_t mark = f->nsent;
    /* carol knows the dialog's identifiers, which are no credential */
    call_caller_request(f, &c, k, "BYE", c.cseq + 1, NULL, NULL);
    int i = last_status(f, k, 403);
    assert_true(strstr(f->sent[i].data, "not a party") != NULL);
    assert_int_equal(count_requests(f, b, mark, "BYE"), 0);
    assert_int_equal(f->nrecords, 0);
    char st[32];
    assert_int_equal(live_calls(f, st), 1);
}

static void test_bye_with_unknown_tags_gets_481(void **state)
{
    struct fx *f = *state;
    uint64_t b = device(f, "bob");
    uint64_t a = fx_open(f);
    struct call c;
    answered_call(f, &c, a, b);
    size_t mark = f->nsent;
    call_caller_request(f, &c, a, "BYE", c.cseq + 1, "not-bobs-tag", NULL);
    last_status(f, a, 481);
    assert_int_equal(count_requests(f, b, mark, "BYE"), 0);
    assert_int_equal(f->nrecords, 0);
}

static void test_in_dialog_request_after_other_side_closed_gets_480(void **state)
{
    struct fx *f = *state;
    uint64_t b = device(f, "bob");
    uint64_t a = fx_open(f);
    struct call c;
    answered_call(f, &c, a, b);
    fx_close(f, b);
    fx_run(f);
    size_t mark = f->nsent;
    call_caller_request(f, &c, a, "INFO", c.cseq + 1, NULL, NULL);
    last_status(f, a, 480);
    call_caller_request(f, &c, a, "BYE", c.cseq + 2, NULL, NULL);
    last_status(f, a, 480);
    /* nothing went to the closed connection */
    for (size_t i = mark; i < f->nsent; i++)
        assert_true(f->sent[i].conn != b);
    assert_string_equal(only_record(f)->reason, "BYE from caller");
}

static void test_reinvite_with_hold_offer_puts_call_on_hold(void **state)
{
    struct fx *f = *state;
    uint64_t b = device(f, "bob");
    uint64_t a = fx_open(f);
    struct call c;
    answered_call(f, &c, a, b);
    char st[32];
    assert_int_equal(live_calls(f, st), 1);
    assert_string_equal(st, "answered");
    call_caller_request(f, &c, a, "INVITE", c.cseq + 1, NULL, FX_SDP_SRTP_HOLD);
    int re = last_request(f, b, "INVITE");
    assert_header(f, re, "CSeq", "3 INVITE");
    assert_no_header(f, re, "Record-Route"); /* only the dialog-creating request */
    respond(f, b, re, 200, NULL, FX_SDP_SRTP_ANSWER);
    last_status(f, a, 200);
    call_ack(f, &c, c.cseq + 1, NULL);
    last_request(f, b, "ACK");
    assert_int_equal(live_calls(f, st), 1);
    assert_string_equal(st, "on hold");
    /* and off hold again */
    call_caller_request(f, &c, a, "INVITE", c.cseq + 2, NULL, FX_SDP_SRTP_OFFER);
    respond(f, b, last_request(f, b, "INVITE"), 200, NULL, FX_SDP_SRTP_ANSWER);
    last_status(f, a, 200);
    assert_int_equal(live_calls(f, st), 1);
    assert_string_equal(st, "answered");
}

/* === 5. the media policy on answers ========================================= */

static void test_plain_offer_gets_488_with_warning(void **state)
{
    struct fx *f = *state;
    uint64_t b = device(f, "bob");
    uint64_t a = fx_open(f);
    size_t mark = f->nsent;
    struct call c;
    call_start(f, &c, a, "alice", "bob", FX_SDP_PLAIN, NULL);
    int i = last_status(f, a, 488);
    assert_header_has(f, i, "Warning", "399 " FX_DOMAIN " \"media encryption required");
    assert_int_equal(count_status(f, a, c.mark, 0), 1);
    /* bob never sees it */
    for (size_t k = mark; k < f->nsent; k++)
        assert_true(f->sent[k].conn != b);
    const struct fx_record *r = only_record(f);
    assert_true(strncmp(r->reason, "488 Not Acceptable Here: media encryption required", 50) == 0);
}

/* The checks of Parley's BYE toward the answerer of a refused 2xx: the
 * answerer's dialog as it knows it. */
static void assert_bye_to_answerer(const struct fx *f, int bye, const struct call *c, uint64_t dev,
                                   const char *tag)
{
    char contact[160], want[256];
    fx_contact(f, dev, c->callee, contact, sizeof(contact));
    struct sip_msg *m = fx_sent_parse(f, bye);
    assert_non_null(m);
    assert_true(m->method == SIP_METHOD_BYE);
    assert_true(strview_eq(m->request_uri, contact));
    assert_true(strview_eq(m->call_id, c->call_id));
    assert_int_equal(m->cseq_num, c->cseq + 1);
    struct sip_addr from, to;
    assert_int_equal(sip_msg_from(m, &from), 0);
    assert_int_equal(sip_msg_to(m, &to), 0);
    snprintf(want, sizeof(want), "t-%s", c->caller);
    assert_true(strview_eq(from.tag, want));
    assert_true(strview_eq(to.tag, tag));
    sip_msg_free(m);
    assert_header_has(f, bye, "Reason", "SIP;cause=488;text=\"");
}

static void test_plain_answer_to_srtp_offer_gets_ack_bye_and_488(void **state)
{
    struct fx *f = *state;
    uint64_t b = device(f, "bob");
    uint64_t a = fx_open(f);
    struct call c;
    call_start(f, &c, a, "alice", "bob", FX_SDP_SRTP_OFFER, NULL);
    int inv = forked(f, b);
    size_t mark = f->nsent;
    respond(f, b, inv, 200, "b1", FX_SDP_PLAIN);

    /* alice: a 488 saying why, never the 200 */
    int i = last_status(f, a, 488);
    assert_header_has(f, i, "Warning", "399 " FX_DOMAIN " \"");
    assert_int_equal(count_status(f, a, c.mark, 200), 0);
    assert_int_equal(count_status(f, a, c.mark, 0), 1);

    /* bob: the ACK of its 200, then a BYE */
    int ack = fx_nth_on(f, b, fx_count_on(f, b) - 2);
    int bye = fx_nth_on(f, b, fx_count_on(f, b) - 1);
    assert_true((size_t)ack >= mark);
    assert_request(f, ack, "ACK");
    assert_header(f, ack, "CSeq", "2 ACK");
    assert_header_has(f, ack, "To", ";tag=b1");
    assert_request(f, bye, "BYE");
    assert_bye_to_answerer(f, bye, &c, b, "b1");

    /* the 200 again: only another ACK, nothing for alice */
    size_t mark2 = f->nsent;
    respond(f, b, inv, 200, "b1", FX_SDP_PLAIN);
    assert_int_equal(f->nsent, mark2 + 1);
    last_request(f, b, "ACK");
    assert_int_equal(count_status(f, a, c.mark, 200), 0);

    respond(f, b, bye, 200, NULL, NULL);
    const struct fx_record *r = only_record(f);
    assert_true(strncmp(r->reason, "488 Not Acceptable Here: ", 25) == 0);
    assert_int_equal(r->answered, 0);
}

static void test_late_offer_refused_in_the_200(void **state)
{
    struct fx *f = *state;
    uint64_t b = device(f, "bob");
    uint64_t a = fx_open(f);
    struct call c;
    call_start(f, &c, a, "alice", "bob", NULL, NULL); /* no offer */
    int inv = forked(f, b);
    respond(f, b, inv, 200, "b1", FX_SDP_PLAIN); /* bob offers plain RTP */
    int i = last_status(f, a, 488);
    assert_header_has(f, i, "Warning", "media encryption required");
    assert_int_equal(count_status(f, a, c.mark, 200), 0);
    int ack = fx_nth_on(f, b, fx_count_on(f, b) - 2);
    int bye = fx_nth_on(f, b, fx_count_on(f, b) - 1);
    assert_request(f, ack, "ACK");
    assert_request(f, bye, "BYE");
    assert_bye_to_answerer(f, bye, &c, b, "b1");
    assert_true(strncmp(only_record(f)->reason, "488 Not Acceptable Here: ", 25) == 0);
}

static void test_plain_answer_in_ack_hangs_up_both_sides(void **state)
{
    struct fx *f = *state;
    uint64_t b = device(f, "bob");
    uint64_t a = fx_open(f);
    struct call c;
    call_start(f, &c, a, "alice", "bob", NULL, NULL); /* late offer */
    int inv = forked(f, b);
    respond(f, b, inv, 200, "b1", FX_SDP_SRTP_OFFER);
    int ok = last_status(f, a, 200);
    call_note_answer(f, &c, ok);
    size_t mark = f->nsent;
    call_ack(f, &c, c.cseq, FX_SDP_PLAIN); /* alice answers in plain RTP */

    /* bob: the ACK (ending the 200's retransmissions) without the refused
     * answer, then Parley's BYE in bob's view of the dialog */
    assert_int_equal(count_requests(f, b, mark, "ACK"), 1);
    int ack = fx_nth_on(f, b, fx_count_on(f, b) - 2);
    assert_request(f, ack, "ACK");
    assert_string_equal(body_of(f, ack), "");
    assert_no_header(f, ack, "Content-Type");
    int bye_b = last_request(f, b, "BYE");
    assert_bye_to_answerer(f, bye_b, &c, b, "b1");

    /* alice: a BYE in her view: from bob's tag to hers, to her Contact */
    int bye_a = last_request(f, a, "BYE");
    char contact[160];
    fx_contact(f, a, "alice", contact, sizeof(contact));
    struct sip_msg *m = fx_sent_parse(f, bye_a);
    assert_non_null(m);
    assert_true(strview_eq(m->request_uri, contact));
    assert_true(strview_eq(m->call_id, c.call_id));
    struct sip_addr from, to;
    assert_int_equal(sip_msg_from(m, &from), 0);
    assert_int_equal(sip_msg_to(m, &to), 0);
    assert_true(strview_eq(from.tag, "b1"));
    assert_true(strview_eq(to.tag, "t-alice"));
    assert_true(strview_eq(from.uri.user, "bob"));
    sip_msg_free(m);
    assert_header_has(f, bye_a, "Reason", "SIP;cause=488;text=\"");

    const struct fx_record *r = only_record(f);
    assert_true(strncmp(r->reason, "488 media refused in the ACK", 28) == 0);
    assert_true(r->answered > 0);
    struct proxy_stats st;
    proxy_stats(f->proxy, &st);
    assert_int_equal(st.dialogs, 0);
    respond(f, b, bye_b, 200, NULL, NULL);
    respond(f, a, bye_a, 200, NULL, NULL);
}

static void test_unreliable_183_with_refused_sdp_loses_its_body(void **state)
{
    struct fx *f = *state;
    uint64_t b = device(f, "bob");
    uint64_t a = fx_open(f);
    struct call c;
    call_start(f, &c, a, "alice", "bob", FX_SDP_SRTP_OFFER, NULL);
    int inv = forked(f, b);
    respond(f, b, inv, 183, "b1", FX_SDP_PLAIN);
    int i = last_status(f, a, 183);
    assert_string_equal(body_of(f, i), "");
    assert_no_header(f, i, "Content-Type");
    assert_header(f, i, "Content-Length", "0");
    /* an early answer binds nothing: the call goes on */
    assert_int_equal(count_requests(f, b, 0, "BYE"), 0);
    assert_int_equal(count_requests(f, b, 0, "CANCEL"), 0);
    respond(f, b, inv, 200, "b1", FX_SDP_SRTP_ANSWER);
    i = last_status(f, a, 200);
    assert_string_equal(body_of(f, i), FX_SDP_SRTP_ANSWER);
}

/* A re-offer inside an answered call whose answer breaks the policy: the
 * re-INVITE is refused to alice, bob's 200 is ACKed and both sides get a
 * BYE — the call cannot go on with media Parley refused. */
static void test_reinvite_answer_refused_ends_call(void **state)
{
    struct fx *f = *state;
    uint64_t b = device(f, "bob");
    uint64_t a = fx_open(f);
    struct call c;
    answered_call(f, &c, a, b);
    call_caller_request(f, &c, a, "INVITE", c.cseq + 1, NULL, FX_SDP_SRTP_OFFER);
    int re = last_request(f, b, "INVITE");
    size_t mark = f->nsent;
    respond(f, b, re, 200, NULL, FX_SDP_PLAIN);
    assert_int_equal(count_status(f, a, mark, 200), 0);
    /* alice: 488 for her re-INVITE, and a BYE in her view of the dialog */
    assert_int_equal(count_status(f, a, mark, 488), 1);
    assert_int_equal(count_requests(f, a, mark, "BYE"), 1);
    int bye_a = -1;
    for (size_t i = mark; i < f->nsent; i++)
        if (f->sent[i].conn == a && fx_sent_is(f, (int)i, "BYE"))
            bye_a = (int)i;
    assert_header_has(f, bye_a, "From", ";tag=bt1");
    assert_header_has(f, bye_a, "To", ";tag=t-alice");
    assert_header_has(f, bye_a, "Reason", "SIP;cause=488;text=\"");
    /* bob: the ACK of his 200 (CSeq of the re-INVITE), then the BYE */
    int ack = fx_nth_on(f, b, fx_count_on(f, b) - 2);
    assert_request(f, ack, "ACK");
    assert_header(f, ack, "CSeq", "3 ACK");
    int bye = last_request(f, b, "BYE");
    assert_header(f, bye, "CSeq", "4 BYE");
    assert_header_has(f, bye, "Reason", "SIP;cause=488;text=\"");
    const struct fx_record *r = only_record(f);
    assert_true(strncmp(r->reason, "488 media refused in a re-offer", 31) == 0);
    struct proxy_stats st;
    proxy_stats(f->proxy, &st);
    assert_int_equal(st.dialogs, 0);
}

/* === shutting down with work under way ===================================== */

/* The daemon frees the proxy at shutdown whatever is in flight: a call
 * still ringing must go without a trace (no leak, no freed memory read).
 * Caller and callee share one connection here, which fixes the order in
 * which the transaction layer ends the request and its branch (the branch
 * first); across two connections the order follows the hash table's
 * random key. */
static void test_proxy_free_while_a_call_rings(void **state)
{
    struct fx *f = *state;
    uint64_t a = fx_open(f);
    assert_int_equal(fx_register(f, a, "bob", "builder"), 200);
    struct call c;
    call_start(f, &c, a, "alice", "bob", FX_SDP_SRTP_OFFER, NULL);
    respond(f, a, last_request(f, a, "INVITE"), 180, "b1", NULL);
    last_status(f, a, 180);
    proxy_free(f->proxy);
    f->proxy = NULL;
}

/* A user calling their own other account on the same connection (a
 * client with two accounts, a PBX trunk): when that one connection closes
 * while the call rings, the request and its branch end in one pass. */
static void test_conn_closed_while_calling_over_the_same_connection(void **state)
{
    struct fx *f = *state;
    uint64_t a = fx_open(f);
    assert_int_equal(fx_register(f, a, "alice", "wonderland"), 200);
    assert_int_equal(fx_register(f, a, "bob", "builder"), 200);
    struct call c;
    call_start(f, &c, a, "alice", "bob", FX_SDP_SRTP_OFFER, NULL);
    respond(f, a, last_request(f, a, "INVITE"), 180, "b1", NULL);
    last_status(f, a, 180);
    fx_close(f, a);
    fx_run(f);
    /* the call ended (as "480": the branch's failure is seen first) */
    (void)only_record(f);
    char state_[32];
    assert_int_equal(live_calls(f, state_), 0);
    struct proxy_stats st;
    proxy_stats(f->proxy, &st);
    assert_int_equal(st.server_transactions, 0);
    assert_int_equal(st.client_transactions, 0);
    assert_int_equal(st.held_transactions, 0);
    assert_int_equal(st.dialogs, 0);
}

/* A call to a partner's user waits for the connection to the partner;
 * the caller's connection closes meanwhile: the request must go with no
 * trace. */
static void test_caller_gone_while_waiting_for_a_partner(void **state)
{
    struct fx *f = *state;
    const struct federation_partner_conf partner = {
        .domain = "partner.test",
        .server = "sip.partner.test",
        .port = 5061,
        .address = "203.0.113.9",
    };
    assert_int_equal(proxy_federation_set(f->proxy, &partner, 1), 0);
    uint64_t a = fx_open(f);
    struct fx_req r = {
        .method = "INVITE",
        .ruri = "sip:zoe@partner.test",
        .from = "alice",
        .to = "zoe",
        .call_id = "partner-call@192.0.2.1",
        .cseq = 1,
        .contact = "alice",
        .sdp = FX_SDP_SRTP_OFFER,
    };
    assert_int_equal(fx_invite(f, a, &r, "wonderland"), 0);
    last_status(f, a, 100);
    assert_int_equal(f->connects, 1);
    fx_close(f, a);
    fx_run(f);
    /* the call ended (as "480": the branch's failure is seen first) */
    (void)only_record(f);
    char state_[32];
    assert_int_equal(live_calls(f, state_), 0);
    struct proxy_stats st;
    proxy_stats(f->proxy, &st);
    assert_int_equal(st.server_transactions, 0);
    assert_int_equal(st.held_transactions, 0);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_invite_without_credentials_gets_407),
        T(test_invite_with_wrong_password_gets_403),
        T(test_authenticated_invite_is_forwarded_with_parleys_headers),
        T(test_register_without_credentials_gets_401),
        T(test_from_other_than_authenticated_user_gets_403),
        T(test_fork_busy_device_then_other_answers),
        T(test_fork_two_failures_forward_one_final_first_of_class),
        T(test_fork_6xx_cancels_the_ringing_branch),
        T(test_only_branch_503_becomes_500),
        T(test_no_registered_device_gets_480),
        T(test_silent_branch_times_out_with_408),
        T(test_ringing_branch_timer_c_cancels_and_408),
        T(test_cancel_before_final_cancels_every_branch),
        T(test_cancel_waits_for_a_silent_branchs_provisional),
        T(test_cancel_after_200_cancels_nothing),
        T(test_200_after_cancel_is_still_forwarded),
        T(test_cancel_of_unknown_transaction_gets_481),
        T(test_cancel_over_another_connection_gets_481),
        T(test_ack_of_200_goes_to_callee_statelessly),
        T(test_bye_from_caller_is_forwarded_and_logged),
        T(test_bye_over_a_third_partys_connection_gets_403),
        T(test_bye_with_unknown_tags_gets_481),
        T(test_in_dialog_request_after_other_side_closed_gets_480),
        T(test_reinvite_with_hold_offer_puts_call_on_hold),
        T(test_plain_offer_gets_488_with_warning),
        T(test_plain_answer_to_srtp_offer_gets_ack_bye_and_488),
        T(test_late_offer_refused_in_the_200),
        T(test_plain_answer_in_ack_hangs_up_both_sides),
        T(test_unreliable_183_with_refused_sdp_loses_its_body),
        T(test_reinvite_answer_refused_ends_call),
        /* Last: until the server_held/server_terminated order is fixed
         * (a held request is freed by server_terminated, then given its -1
         * by server_held), each of these reads freed memory and the first
         * one to run ends the program. */
        T(test_caller_gone_while_waiting_for_a_partner),
        T(test_conn_closed_while_calling_over_the_same_connection),
        T(test_proxy_free_while_a_call_rings),
    };
#undef T
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
