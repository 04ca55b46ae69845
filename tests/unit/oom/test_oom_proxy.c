/*
 * The SIP proxy under allocation failure (oom.h): registrar, digest
 * authentication and proxy built on fake time (the fixture of
 * tests/unit/proxy), a whole call played through them, everything freed —
 * with each allocation failed in turn. Under failure the proxy may answer
 * 500, drop a message or give up on the call, but it may not crash, leak,
 * or let through what the media policy refused.
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

#include "core/log.h"
#include "crypto/digest.h"
#include "fixture.h"
#include "oom.h"

/* One fixture, rebuilt by each run (fx_init clears it). */
static struct fx fx;

/* A step the scenario needs did not happen: fine when an allocation failed
 * (the run ends there, and the teardown frees whatever state it left),
 * wrong when none did. */
#define NEED(cond, ...)                                                                            \
    do {                                                                                           \
        if (!(cond))                                                                               \
            return oom_failures() ? -ENOMEM : oom_bad(__VA_ARGS__);                                \
    } while (0)

/* Checked whatever failed. */
#define NEVER(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond)                                                                                  \
            return oom_bad(__VA_ARGS__);                                                           \
    } while (0)

/* Index of the last message on conn if it was sent at or after `from`. */
static int last_since(const struct fx *f, uint64_t conn, size_t from)
{
    int i = fx_last_on(f, conn);
    return i >= 0 && (size_t)i >= from ? i : -1;
}

static bool header_has(const struct fx *f, int i, const char *name, const char *part)
{
    char v[512];
    return fx_sent_header(f, i, name, v, sizeof(v)) == 0 && strstr(v, part) != NULL;
}

/* The answerer's tag and Contact URI from response i, as the caller's
 * user agent takes them. */
static int note_answer(const struct fx *f, int i, char *tag, size_t tcap, char *contact,
                       size_t ccap)
{
    char v[256];
    if (fx_sent_header(f, i, "To", v, sizeof(v)) != 0)
        return -EPROTO;
    fx_tag_of(v, tag, tcap);
    if (fx_sent_header(f, i, "Contact", v, sizeof(v)) != 0 || v[0] != '<')
        return -EPROTO;
    snprintf(contact, ccap, "%.*s", (int)strcspn(v + 1, ">"), v + 1);
    return tag[0] ? 0 : -EPROTO;
}

/* bob's device on b, alice on a; returns the index of the INVITE forked to
 * bob, or a negative value the scenario returns. */
static int invite(struct fx *f, uint64_t a, uint64_t b, const char *call_id, const char *sdp)
{
    int rc = fx_register(f, b, "bob", "builder");
    NEED(rc == 200, "REGISTER: %d", rc);
    struct fx_req r = {
        .method = "INVITE",
        .from = "alice",
        .to = "bob",
        .call_id = call_id,
        .cseq = 1,
        .contact = "alice",
        .sdp = sdp,
    };
    size_t mark = f->nsent;
    rc = fx_invite(f, a, &r, "wonderland");
    NEED(rc == 0, "INVITE: %d", rc);
    int i = last_since(f, b, mark);
    NEED(fx_sent_is(f, i, "INVITE"), "no INVITE forked to bob");
    NEED(fx_sent_status(f, last_since(f, a, mark)) == 100, "no 100 Trying");
    return i;
}

/* An in-dialog request from alice (a) toward bob's Contact. */
static int alice_says(struct fx *f, uint64_t a, const char *method, unsigned cseq,
                      const char *call_id, const char *tag, const char *contact)
{
    struct fx_req r = {
        .method = method,
        .ruri = contact,
        .from = "alice",
        .to = "bob",
        .to_tag = tag,
        .call_id = call_id,
        .cseq = cseq,
        .route = FX_RECORD_ROUTE,
    };
    return fx_request(f, a, &r);
}

/* alice calls bob with SRTP, bob rings and answers with SRTP, alice ACKs,
 * hangs up, bob says 200 to the BYE. */
static int call_flow(struct fx *f, uint64_t a, uint64_t b)
{
    static const char call_id[] = "oom-call@192.0.2.1";
    char tag[128], contact[256];
    int inv = invite(f, a, b, call_id, FX_SDP_SRTP_OFFER);
    if (inv < 0)
        return inv;
    if (oom_failures() == 0) {
        /* what Parley does to the copy: its Via and Record-Route, alice's
         * identity asserted, her credentials gone */
        if (!header_has(f, inv, "Via", "SIP/2.0/TLS " FX_SELF ";branch=z9hG4bK") ||
            !header_has(f, inv, "Record-Route", FX_RECORD_ROUTE) ||
            !header_has(f, inv, "P-Asserted-Identity", "<sip:alice@" FX_DOMAIN ">") ||
            fx_sent_header_count(f, inv, "Proxy-Authorization") != 0)
            return oom_bad("the forked INVITE is not as Parley makes it");
    }

    size_t mark = f->nsent;
    NEED(fx_respond(f, b, inv, 180, "b1", NULL, NULL) == 0, "180 not parsed");
    NEED(fx_sent_status(f, last_since(f, a, mark)) == 180, "180 not forwarded");
    mark = f->nsent;
    NEED(fx_respond(f, b, inv, 200, "b1", NULL, FX_SDP_SRTP_ANSWER) == 0, "200 not parsed");
    int ok = last_since(f, a, mark);
    NEED(fx_sent_status(f, ok) == 200, "200 not forwarded");
    NEED(note_answer(f, ok, tag, sizeof(tag), contact, sizeof(contact)) == 0,
         "200 without tag or Contact");

    mark = f->nsent;
    NEED(alice_says(f, a, "ACK", 2, call_id, tag, contact) == 0, "ACK not parsed");
    NEED(fx_sent_is(f, last_since(f, b, mark), "ACK"), "ACK not routed to bob");
    mark = f->nsent;
    NEED(alice_says(f, a, "BYE", 3, call_id, tag, contact) == 0, "BYE not parsed");
    int bye = last_since(f, b, mark);
    NEED(fx_sent_is(f, bye, "BYE"), "BYE not routed to bob");
    mark = f->nsent;
    NEED(fx_respond(f, b, bye, 200, NULL, NULL, NULL) == 0, "200 (BYE) not parsed");
    int done = last_since(f, a, mark);
    NEED(fx_sent_status(f, done) == 200 && header_has(f, done, "CSeq", "3 BYE"),
         "200 (BYE) not forwarded");

    fx_run(f);
    NEED(f->nrecords == 1, "%zu call records", f->nrecords);
    NEED(strcmp(f->records[0].reason, "BYE from caller") == 0, "call ended: %s",
         f->records[0].reason);
    NEED(strcmp(f->records[0].media, "audio SRTP " FX_SUITE_80) == 0, "media: %s",
         f->records[0].media);
    struct proxy_stats st;
    proxy_stats(f->proxy, &st);
    NEED(st.dialogs == 0 && st.held_transactions == 0, "%zu dialogs, %zu held left", st.dialogs,
         st.held_transactions);
    return 0;
}

/* bob answers alice's SRTP offer with plain RTP: alice gets 488 (never the
 * 200), bob an ACK and a BYE of Parley's. */
static int refused_flow(struct fx *f, uint64_t a, uint64_t b)
{
    static const char call_id[] = "oom-refused@192.0.2.1";
    int inv = invite(f, a, b, call_id, FX_SDP_SRTP_OFFER);
    if (inv < 0)
        return inv;
    size_t mark = f->nsent;
    NEED(fx_respond(f, b, inv, 200, "b1", NULL, FX_SDP_PLAIN) == 0, "200 not parsed");
    /* whatever failed, the refused answer never reaches alice */
    for (size_t i = mark; i < f->nsent; i++)
        NEVER(f->sent[i].conn == a && fx_sent_status(f, (int)i) == 200,
              "the refused 200 was forwarded");
    int refusal = last_since(f, a, mark);
    NEED(fx_sent_status(f, refusal) == 488, "no 488 for alice");
    NEED(header_has(f, refusal, "Warning", "399 " FX_DOMAIN " \""), "488 without Warning");
    int bye = last_since(f, b, mark);
    NEED(fx_sent_is(f, bye, "BYE") && header_has(f, bye, "Reason", "SIP;cause=488;text=\"") &&
             header_has(f, bye, "CSeq", "3 BYE"),
         "no BYE with a Reason for bob");
    NEED(bye > 0 && fx_sent_is(f, fx_nth_on(f, b, fx_count_on(f, b) - 2), "ACK"),
         "no ACK before the BYE");

    /* bob's 200 again, as if the ACK were lost: only another ACK */
    mark = f->nsent;
    NEED(fx_respond(f, b, inv, 200, "b1", NULL, FX_SDP_PLAIN) == 0, "200 not parsed");
    for (size_t i = mark; i < f->nsent; i++)
        NEVER(f->sent[i].conn == a, "the 200's retransmission reached alice");
    NEED(f->nsent == mark + 1 && fx_sent_is(f, last_since(f, b, mark), "ACK"),
         "the 200's retransmission got no ACK");
    NEED(fx_respond(f, b, bye, 200, NULL, NULL, NULL) == 0, "200 (BYE) not parsed");

    fx_run(f);
    NEED(f->nrecords == 1 && strncmp(f->records[0].reason, "488 Not Acceptable Here: ", 25) == 0,
         "call ended: %s", f->nrecords ? f->records[0].reason : "(no record)");
    return 0;
}

/* How a run ends: the proxy freed with whatever the flow left in flight
 * (an allocation failure may leave a call ringing, a dialog, a CANCEL
 * waiting), or first every connection closed, callee's first, as at the
 * daemon's stop (the workers' CLOSE events are delivered before
 * sipcore_stop frees the proxy). */
struct flow {
    int (*play)(struct fx *f, uint64_t a, uint64_t b);
    bool close_first;
};

/* Builds everything, plays the flow, frees everything, on every path. */
static int scenario(void *arg)
{
    const struct flow *flow = arg;
    struct fx *f = &fx;
    int rc = fx_init(f);
    if (rc)
        return rc;
    uint64_t b = fx_open(f), a = fx_open(f);
    rc = flow->play(f, a, b);
    if (flow->close_first) {
        fx_close(f, b);
        fx_run(f);
        fx_close(f, a);
    }
    fx_cleanup(f);
    return rc;
}

static void test_oom_call(void **state)
{
    (void)state;
    static const struct flow call = {call_flow, false};
    assert_int_equal(oom_run("proxy_call", scenario, (void *)&call), 0);
}

static void test_oom_call_connections_closed(void **state)
{
    (void)state;
    static const struct flow call = {call_flow, true};
    assert_int_equal(oom_run("proxy_call_connections_closed", scenario, (void *)&call), 0);
}

static void test_oom_refused_answer(void **state)
{
    (void)state;
    static const struct flow refused = {refused_flow, false};
    assert_int_equal(oom_run("proxy_refused_answer", scenario, (void *)&refused), 0);
}

static int group_setup(void **state)
{
    (void)state;
    /* thousands of runs, each failing somewhere: their warnings are
     * expected and would drown the summary */
    log_set_level(LOG_LEVEL_ERROR);
    return digest_init(NULL, NULL);
}

static int group_teardown(void **state)
{
    (void)state;
    digest_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oom_call),
        cmocka_unit_test(test_oom_call_connections_closed),
        cmocka_unit_test(test_oom_refused_answer),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
