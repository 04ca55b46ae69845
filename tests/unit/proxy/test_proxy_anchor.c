/*
 * The proxy in process with a real media engine (media.anchor = always):
 * whatever the parties do in SIP, no key, address or port of one party's
 * SDP reaches the other. The engine runs its worker on loopback ports
 * 31200-31263; no packet is sent, only SDP is looked at.
 *
 * Each test ends by checking every message either party was sent for the
 * other's key material (assert_nothing_crossed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "agents.h"
#include "anchor/anchor.h"
#include "core/log.h"
#include "crypto/digest.h"
#include "fixture.h"
#include "core/config.h"

/* A third key, and a second party address, found nowhere they must not be. */
#define KEY_C   "c2VjcmV0IGtleSBvZiBhbm90aGVyIHNlY3Rpb24hIQ"
#define ADDR_C  "192.0.2.99"
#define ENGINE  "127.0.0.1"
#define PARLEYS "c=IN IP4 " ENGINE "\r\n"

struct anchored {
    struct fx fx; /* first: the agents' helpers take it as the state */
    struct config cfg;
    struct event_base *base;
    struct anchor *anchor;
};

static void on_timed_out(void *arg, uint64_t stream, const char *call_id)
{
    (void)arg;
    (void)stream;
    (void)call_id;
}

static int setup_anchored(void **state)
{
    struct anchored *t = calloc(1, sizeof(*t));
    if (!t)
        return -1;
    fx_engine_config(&t->cfg, "31200-31263", 8);
    t->base = event_base_new();
    struct anchor_events ev = {.arg = t, .timed_out = on_timed_out};
    char err[200];
    if (!t->base || anchor_start(&t->cfg, t->base, &ev, &t->anchor, err, sizeof(err)) != 0 ||
        fx_init_anchored(&t->fx, t->anchor) != 0) {
        print_error("set-up: %s\n", err);
        anchor_stop(t->anchor);
        if (t->base)
            event_base_free(t->base);
        free(t);
        return -1;
    }
    *state = t;
    return 0;
}

static int teardown_anchored(void **state)
{
    struct anchored *t = *state;
    size_t dropped = t->fx.dropped;
    if (getenv("FX_DUMP"))
        dump(&t->fx);
    fx_cleanup(&t->fx);
    anchor_stop(t->anchor);
    event_base_free(t->base);
    free(t);
    if (dropped)
        fail_msg("the capture lost %zu message(s)", dropped);
    return 0;
}

/* The proxy's configuration changed as by a reload: this encryption
 * level, anchoring on or off (the fixture's two suites). */
static void reconfigure(struct fx *f, const char *level, bool anchor)
{
    static const char *const suites[] = {FX_SUITE_80, FX_SUITE_32};
    struct proxy_config pc = {
        .domain = FX_DOMAIN,
        .max_im_body = 1300,
        .media_level = level,
        .media_suites = suites,
        .media_nsuites = 2,
        .anchor_media = anchor,
    };
    proxy_set_config(f->proxy, &pc);
}

/* An offer with key material everywhere SDP can carry it: a session-level
 * k= (RFC 4566 §5.12), an a=acap capability holding a crypto attribute
 * (RFC 5939), and a refused (port 0) video section with a key and an
 * address of its own. */
#define SDP_KEYS_EVERYWHERE                                                                        \
    "v=0\r\n"                                                                                      \
    "o=- 1 1 IN IP4 192.0.2.11\r\n"                                                                \
    "s=-\r\n"                                                                                      \
    "c=IN IP4 192.0.2.11\r\n"                                                                      \
    "t=0 0\r\n"                                                                                    \
    "k=base64:" KEY_C "\r\n"                                                                       \
    "a=fingerprint:sha-256 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B\r\n"                    \
    "a=ice-pwd:asd88fgpdd777uzjYhagZg\r\n"                                                         \
    "m=audio 10000 RTP/SAVP 0 101\r\n"                                                             \
    "a=rtpmap:0 PCMU/8000\r\n"                                                                     \
    "a=rtpmap:101 telephone-event/8000\r\n"                                                        \
    "a=crypto:1 " FX_SUITE_80 " inline:" FX_KEY_A "\r\n"                                           \
    "a=acap:1 crypto:2 " FX_SUITE_32 " inline:" KEY_C "\r\n"                                       \
    "a=candidate:1 1 UDP 2130706431 " ADDR_C " 10000 typ host\r\n"                                 \
    "a=sendrecv\r\n"                                                                               \
    "m=video 0 RTP/SAVP 96\r\n"                                                                    \
    "c=IN IP4 " ADDR_C "\r\n"                                                                      \
    "a=rtpmap:96 H264/90000\r\n"                                                                   \
    "a=rtcp:7001 IN IP4 " ADDR_C "\r\n"                                                            \
    "a=candidate:1 1 UDP 2130706431 " ADDR_C " 7000 typ host\r\n"                                  \
    "a=crypto:1 " FX_SUITE_80 " inline:" KEY_C "\r\n"

/* Nothing alice was sent carries bob's key or address, nothing bob was
 * sent carries alice's, and the third key went nowhere. */
static void assert_nothing_crossed(const struct fx *f, uint64_t a, uint64_t b)
{
    for (size_t i = 0; i < f->nsent; i++) {
        const char *body = body_of(f, (int)i);
        const char *bad = NULL;
        if (strstr(body, KEY_C) || strstr(body, ADDR_C))
            bad = "the third key or address";
        else if (f->sent[i].conn == a && (strstr(body, FX_KEY_B) || strstr(body, "192.0.2.12")))
            bad = "bob's key or address";
        else if (f->sent[i].conn == b && (strstr(body, FX_KEY_A) || strstr(body, "192.0.2.11")))
            bad = "alice's key or address";
        if (bad) {
            dump(f);
            fail_msg("message #%zu carries %s", i, bad);
        }
    }
}

/* The body of message i is Parley's: its address, a key of its own. */
static void assert_parleys_sdp(const struct fx *f, int i)
{
    const char *body = body_of(f, i);
    if (!strstr(body, PARLEYS) || !strstr(body, "a=crypto:")) {
        dump(f);
        fail_msg("message #%d: no SDP of Parley's", i);
    }
}

/* alice on a calls bob on b with an SRTP offer; bob answers at once with
 * tag bt1. Returns the index of the INVITE bob got. */
static int alice_calls_bob_answers(struct fx *f, struct call *c, uint64_t a, uint64_t b)
{
    call_start(f, c, a, "alice", "bob", FX_SDP_SRTP_OFFER, NULL);
    int inv = forked(f, b);
    respond(f, b, inv, 200, "bt1", FX_SDP_SRTP_ANSWER);
    return inv;
}

static void test_each_party_sees_only_parley(void **state)
{
    struct anchored *t = *state;
    struct fx *f = &t->fx;
    uint64_t b = device(f, "bob");
    uint64_t a = fx_open(f);
    struct call c;
    answered_call(f, &c, a, b);
    int inv = fx_nth_on(f, b, 0);
    while (!fx_sent_is(f, inv, "INVITE"))
        inv++;
    assert_parleys_sdp(f, inv);
    assert_parleys_sdp(f, last_status(f, a, 200));
    assert_int_equal(anchor_stream_count(t->anchor), 1);
    /* the engine's worker takes the stream from its mailbox a moment after
     * the offer (a call lasts longer than this test's) */
    json_t *legs = NULL;
    for (int i = 0; i < 100 && !(legs = anchor_stream_legs(t->anchor, 1)); i++)
        usleep(10000);
    assert_non_null(legs);
    json_decref(legs);
    call_caller_request(f, &c, a, "BYE", c.cseq + 1, NULL, NULL);
    respond(f, b, last_request(f, b, "BYE"), 200, NULL, NULL);
    assert_int_equal(anchor_stream_count(t->anchor), 0);
    /* the call log has the engine's figures, both legs of the one stream */
    const struct fx_record *r = only_record(f);
    if (!strstr(r->legs, "[{\"section\":0,\"legs\":[{") || !strstr(r->legs, "},{\"local\":"))
        fail_msg("figures in the call record: '%s'", r->legs);
    assert_nothing_crossed(f, a, b);
}

/* The answerer's 2xx, retransmitted after the call ended (its ACK lost),
 * names bob's key: it goes nowhere. */
static void test_2xx_retransmitted_after_bye_goes_nowhere(void **state)
{
    struct anchored *t = *state;
    struct fx *f = &t->fx;
    uint64_t b = device(f, "bob"), a = fx_open(f);
    struct call c;
    int inv = alice_calls_bob_answers(f, &c, a, b);
    call_note_answer(f, &c, last_status(f, a, 200));
    call_ack(f, &c, c.cseq, NULL);
    call_caller_request(f, &c, a, "BYE", c.cseq + 1, NULL, NULL);
    respond(f, b, last_request(f, b, "BYE"), 200, NULL, NULL);
    size_t mark = f->nsent;
    respond(f, b, inv, 200, "bt1", FX_SDP_SRTP_ANSWER);
    fx_advance(f, 1000);
    assert_int_equal(count_status(f, a, mark, 200), 0);
    assert_nothing_crossed(f, a, b);
}

/* A second 2xx on the same branch with another To tag (a forking proxy or
 * a B2BUA behind bob's connection): a second dialog whose SDP Parley did
 * not anchor never reaches alice as it came; that dialog is ended. */
static void test_second_answer_on_a_branch_never_passes(void **state)
{
    struct anchored *t = *state;
    struct fx *f = &t->fx;
    uint64_t b = device(f, "bob"), a = fx_open(f);
    struct call c;
    int inv = alice_calls_bob_answers(f, &c, a, b);
    size_t mark = f->nsent;
    respond(f, b, inv, 200, "bt2", FX_SDP_SRTP_ANSWER);
    for (size_t i = mark; i < f->nsent; i++)
        if (f->sent[i].conn == a && fx_sent_status(f, (int)i) == 200)
            fail_msg("the second answer (#%zu) reached alice", i);
    assert_true(count_requests(f, b, mark, "BYE") >= 1);
    assert_nothing_crossed(f, a, b);
}

/* Keys anywhere in an offer are replaced by Parley's one a=crypto per
 * anchored section; a refused section names Parley's address. */
static void test_keys_anywhere_in_an_offer_are_removed(void **state)
{
    struct anchored *t = *state;
    struct fx *f = &t->fx;
    uint64_t b = device(f, "bob");
    uint64_t a = fx_open(f);
    struct call c;
    call_start(f, &c, a, "alice", "bob", SDP_KEYS_EVERYWHERE, NULL);
    int inv = forked(f, b);
    const char *body = body_of(f, inv);
    assert_parleys_sdp(f, inv);
    assert_null(strstr(body, "k="));
    assert_null(strstr(body, "a=acap"));
    assert_null(strstr(body, "a=fingerprint"));
    assert_null(strstr(body, "a=ice-pwd"));
    assert_null(strstr(body, "a=candidate"));
    assert_non_null(strstr(body, "m=video 0 "));
    /* one a=crypto: the audio section's, Parley's key */
    const char *first = strstr(body, "a=crypto:");
    assert_null(strstr(first + 1, "a=crypto:"));
    assert_nothing_crossed(f, a, b);
}

/* Turning anchoring off affects new calls only: a re-INVITE of an anchored
 * call is still anchored, both ways (its parties know only Parley). */
static void test_anchored_call_stays_anchored_after_reload(void **state)
{
    struct anchored *t = *state;
    struct fx *f = &t->fx;
    uint64_t b = device(f, "bob");
    uint64_t a = fx_open(f);
    struct call c;
    answered_call(f, &c, a, b);
    reconfigure(f, "required", false);
    call_caller_request(f, &c, a, "INVITE", c.cseq + 1, NULL, FX_SDP_SRTP_HOLD);
    int re = last_request(f, b, "INVITE");
    assert_parleys_sdp(f, re);
    assert_non_null(strstr(body_of(f, re), "a=sendonly"));
    respond(f, b, re, 200, NULL, FX_SDP_SRTP_ANSWER);
    assert_parleys_sdp(f, last_status(f, a, 200));
    assert_nothing_crossed(f, a, b);
}

/* Early media: bob's 183 carries the answer (unreliably), his 200 the
 * same again. Both reach alice as Parley's SDP, with the same key and
 * port of Parley's for her leg; one stream. */
static void test_early_media_answer_then_2xx(void **state)
{
    struct anchored *t = *state;
    struct fx *f = &t->fx;
    uint64_t b = device(f, "bob"), a = fx_open(f);
    struct call c;
    call_start(f, &c, a, "alice", "bob", FX_SDP_SRTP_OFFER, NULL);
    int inv = forked(f, b);
    respond(f, b, inv, 183, "bt1", FX_SDP_SRTP_ANSWER);
    int early = last_status(f, a, 183);
    assert_parleys_sdp(f, early);
    respond(f, b, inv, 200, "bt1", FX_SDP_SRTP_ANSWER);
    int ok = last_status(f, a, 200);
    assert_parleys_sdp(f, ok);
    const char *k1 = strstr(body_of(f, early), "inline:"), *k2 = strstr(body_of(f, ok), "inline:");
    assert_non_null(k1);
    assert_non_null(k2);
    assert_memory_equal(k1, k2, 40);
    const char *m1 = strstr(body_of(f, early), "m=audio "),
               *m2 = strstr(body_of(f, ok), "m=audio ");
    assert_memory_equal(m1, m2, 14);
    assert_int_equal(anchor_stream_count(t->anchor), 1);
    assert_nothing_crossed(f, a, b);
}

/* A reliable 183 (RFC 3262) with the answer: anchored like a 2xx; its
 * PRACK (no SDP) reaches bob; the 200 then carries the same. */
static void test_reliable_183_answer_and_prack(void **state)
{
    struct anchored *t = *state;
    struct fx *f = &t->fx;
    uint64_t b = device(f, "bob"), a = fx_open(f);
    struct call c;
    call_start(f, &c, a, "alice", "bob", FX_SDP_SRTP_OFFER, "Supported: 100rel\r\n");
    int inv = forked(f, b);
    assert_int_equal(
        fx_respond(f, b, inv, 183, "bt1", "Require: 100rel\r\nRSeq: 1\r\n", FX_SDP_SRTP_ANSWER), 0);
    int early = last_status(f, a, 183);
    assert_parleys_sdp(f, early);
    call_note_answer(f, &c, early);
    struct fx_req r = {
        .method = "PRACK",
        .ruri = c.contact,
        .from = "alice",
        .to = "bob",
        .to_tag = c.to_tag,
        .call_id = c.call_id,
        .cseq = c.cseq + 1,
        .route = FX_RECORD_ROUTE,
        .headers = "RAck: 1 2 INVITE\r\n",
    };
    assert_int_equal(fx_request(f, a, &r), 0);
    respond(f, b, last_request(f, b, "PRACK"), 200, NULL, NULL);
    last_status(f, a, 200);
    respond(f, b, inv, 200, "bt1", FX_SDP_SRTP_ANSWER);
    assert_parleys_sdp(f, last_status(f, a, 200));
    assert_int_equal(anchor_stream_count(t->anchor), 1);
    assert_nothing_crossed(f, a, b);
}

/* An SRTP leg stays SRTP: a later offer toward a device of the party's on
 * a plain hop (under "supported", which lets plain offers through) is
 * refused, and Parley's key for that leg never crosses the plain hop. */
static void test_srtp_leg_key_never_on_a_plain_hop(void **state)
{
    struct anchored *t = *state;
    struct fx *f = &t->fx;
    uint64_t b1 = device(f, "bob"), b2 = device(f, "bob"), a = fx_open(f);
    reconfigure(f, "supported", true);
    struct call c;
    call_start(f, &c, a, "alice", "bob", FX_SDP_SRTP_OFFER, NULL);
    respond(f, b1, forked(f, b1), 200, "bt1", FX_SDP_SRTP_ANSWER);
    call_note_answer(f, &c, last_status(f, a, 200));
    call_ack(f, &c, c.cseq, NULL);
    /* bob's second device is now reached over plain TCP */
    f->conns[b2].tls = false;
    char contact[256];
    fx_contact(f, b2, "bob", contact, sizeof(contact));
    size_t mark = f->nsent;
    struct fx_req r = {
        .method = "INVITE",
        .ruri = contact,
        .from = "alice",
        .to = "bob",
        .to_tag = c.to_tag,
        .call_id = c.call_id,
        .cseq = c.cseq + 1,
        .route = FX_RECORD_ROUTE,
        .contact = "alice",
        .sdp = FX_SDP_PLAIN,
    };
    assert_int_equal(fx_request(f, a, &r), 0);
    for (size_t i = mark; i < f->nsent; i++)
        if (f->sent[i].conn == b2 && strstr(f->sent[i].data, "a=crypto"))
            fail_msg("message #%zu carries a key over the plain hop", i);
    int refused = last_status(f, a, 488);
    assert_header_has(f, refused, "Warning", "the leg's media is SRTP and this hop is not TLS");
}

/* Under "supported", an SRTP caller reaches a callee on a plain hop: the
 * callee's leg is plain RTP with no key at all, the caller's leg SRTP
 * with Parley's key; "required" refuses the same call. */
static void test_srtp_caller_plain_callee_under_supported(void **state)
{
    struct anchored *t = *state;
    struct fx *f = &t->fx;
    uint64_t b = device(f, "bob"), a = fx_open(f);
    f->conns[b].tls = false; /* bob's device is reached over plain TCP */
    struct call c;
    call_start(f, &c, a, "alice", "bob", FX_SDP_SRTP_OFFER, NULL);
    assert_header_has(f, last_status(f, a, 488), "Warning", "the hop is not TLS");
    reconfigure(f, "supported", true);
    call_start(f, &c, a, "alice", "bob", FX_SDP_SRTP_OFFER, NULL);
    int inv = forked(f, b);
    const char *offer = body_of(f, inv);
    assert_non_null(strstr(offer, " RTP/AVP "));
    assert_null(strstr(offer, "a=crypto"));
    respond(f, b, inv, 200, "bt1", FX_SDP_PLAIN);
    int ok = last_status(f, a, 200);
    assert_parleys_sdp(f, ok);
    assert_non_null(strstr(body_of(f, ok), " RTP/SAVP "));
    assert_nothing_crossed(f, a, b);
}

/* DTLS-SRTP (RFC 5763) cannot be anchored yet: the engine would have to
 * terminate DTLS on each leg. Refused with a reason, never passed through
 * with the parties' fingerprints (which would let them key each other). */
static void test_dtls_srtp_offer_refused(void **state)
{
    struct anchored *t = *state;
    struct fx *f = &t->fx;
    uint64_t b = device(f, "bob"), a = fx_open(f);
    struct call c;
    size_t before = f->nsent;
    call_start(f, &c, a, "alice", "bob",
               FX_SDP_HEAD("192.0.2.11") "m=audio 10000 UDP/TLS/RTP/SAVP 0\r\n"
                                         "a=rtpmap:0 PCMU/8000\r\n"
                                         "a=fingerprint:sha-256 "
                                         "4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:"
                                         "AB:3C:5B:6A:0F:8E:1C:8B:2A:0C:9F:1D:2E\r\n"
                                         "a=setup:actpass\r\n"
                                         "a=sendrecv\r\n",
               NULL);
    int r = last_status(f, a, 488);
    assert_header_has(f, r, "Warning", "only RTP media can be anchored (UDP/TLS/RTP/SAVP)");
    assert_int_equal(count_requests(f, b, before, "INVITE"), 0);
    assert_int_equal(anchor_stream_count(t->anchor), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_each_party_sees_only_parley, setup_anchored,
                                        teardown_anchored),
        cmocka_unit_test_setup_teardown(test_2xx_retransmitted_after_bye_goes_nowhere,
                                        setup_anchored, teardown_anchored),
        cmocka_unit_test_setup_teardown(test_second_answer_on_a_branch_never_passes, setup_anchored,
                                        teardown_anchored),
        cmocka_unit_test_setup_teardown(test_keys_anywhere_in_an_offer_are_removed, setup_anchored,
                                        teardown_anchored),
        cmocka_unit_test_setup_teardown(test_anchored_call_stays_anchored_after_reload,
                                        setup_anchored, teardown_anchored),
        cmocka_unit_test_setup_teardown(test_early_media_answer_then_2xx, setup_anchored,
                                        teardown_anchored),
        cmocka_unit_test_setup_teardown(test_reliable_183_answer_and_prack, setup_anchored,
                                        teardown_anchored),
        cmocka_unit_test_setup_teardown(test_srtp_leg_key_never_on_a_plain_hop, setup_anchored,
                                        teardown_anchored),
        cmocka_unit_test_setup_teardown(test_srtp_caller_plain_callee_under_supported,
                                        setup_anchored, teardown_anchored),
        cmocka_unit_test_setup_teardown(test_dtls_srtp_offer_refused, setup_anchored,
                                        teardown_anchored),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
