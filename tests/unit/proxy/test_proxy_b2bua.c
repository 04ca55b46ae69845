/*
 * The back-to-back user agent between users and trunks (proxy/b2bua), in
 * process on fake time, with a real media engine (every trunk call is
 * anchored) on loopback ports 31300-31363; no packet is sent, only SIP
 * and SDP are looked at.
 *
 * The dial plan routes +1 numbers through the TCP trunks gw1 then gw2
 * (srtp_mode not_supported) and +44 numbers through the TLS trunk gws
 * (srtp_mode required). Parley's connection to a gateway is reserved when
 * the proxy asks for it and opened (or failed) by the test; the gateway
 * is the test, answering what Parley sent it with fx_respond and sending
 * its own requests with gw_request.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>
#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "agents.h"
#include "anchor/anchor.h"
#include "core/config.h"
#include "dialplan/dialplan.h"
#include "fixture.h"
#include "proxy/b2bua.h"
#include "tls/peer_priv.h"

#define ENGINE  "127.0.0.1"
#define PARLEYS "c=IN IP4 " ENGINE "\r\n"

#define US_NUMBER   "+12065550199"  /* no user's: the route "us" (gw1, gw2) */
#define UK_NUMBER   "+442071234567" /* the route "uk" (gws, TLS) */
#define CALLER_PSTN "+12065550100"  /* who calls in from the PSTN */
#define GW1_ADDR    "203.0.113.10"
#define GW2_ADDR    "203.0.113.11"
#define GWS_ADDR    "203.0.113.20"
#define GW_MEDIA    "203.0.113.50" /* the gateways' media address */
#define KEY_GW      "Z2F0ZXdheSBrZXkgb2YgdGhlIFBTVE4gc2lkZSEh"
#define SDP_GW_HEAD                                                                                \
    "v=0\r\n"                                                                                      \
    "o=- 7 7 IN IP4 " GW_MEDIA "\r\n"                                                              \
    "s=-\r\n"                                                                                      \
    "c=IN IP4 " GW_MEDIA "\r\n"                                                                    \
    "t=0 0\r\n"
/* A gateway's plain answer (or offer): G.711 and telephone-event. */
#define SDP_GW_PLAIN                                                                               \
    SDP_GW_HEAD "m=audio 40000 RTP/AVP 0 101\r\n"                                                  \
                "a=rtpmap:0 PCMU/8000\r\n"                                                         \
                "a=rtpmap:101 telephone-event/8000\r\n"                                            \
                "a=sendrecv\r\n"
/* A gateway's SRTP answer (a TLS trunk). */
#define SDP_GW_SRTP                                                                                \
    SDP_GW_HEAD "m=audio 40000 RTP/SAVP 0 101\r\n"                                                 \
                "a=rtpmap:0 PCMU/8000\r\n"                                                         \
                "a=rtpmap:101 telephone-event/8000\r\n"                                            \
                "a=crypto:1 " FX_SUITE_80 " inline:" KEY_GW "\r\n"                                 \
                "a=sendrecv\r\n"

struct med {
    struct fx fx; /* first: the agents' helpers take it as the state */
    struct config cfg;
    struct event_base *base;
    struct anchor *anchor;
    struct dialplan *dp;
    struct tls_peer *gws_cert;
};

static void on_timed_out(void *arg, uint64_t stream, const char *call_id)
{
    (void)arg;
    (void)stream;
    (void)call_id;
}

static const struct proxy_trunk_def trunk_defs[] = {
    {"gw1", GW1_ADDR ":5068", "tcp", "not_supported", GW1_ADDR},
    {"gw2", GW2_ADDR ":5068", "tcp", "not_supported", GW2_ADDR},
    {"gws", GWS_ADDR ":5061", "tls", "required", ""},
};

/* A self-signed certificate naming the TLS gateway by its address (the
 * fixture says it chains to a trusted CA: peer_cert_verified). */
static struct tls_peer *gateway_cert(const char *ip)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    struct tls_peer *peer = NULL;
    char san[64];
    snprintf(san, sizeof(san), "IP:%s", ip);
    if (!key || !x)
        goto out;
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"gateway", -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    X509_set_pubkey(x, key);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);
    if (!ext)
        goto out;
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    if (X509_sign(x, key, EVP_sha256()) <= 0)
        goto out;
    peer = tls_peer_new(x, NULL);
out:
    X509_free(x);
    EVP_PKEY_free(key);
    return peer;
}

static int setup_med(void **state)
{
    struct med *t = calloc(1, sizeof(*t));
    if (!t)
        return -1;
    fx_engine_config(&t->cfg, "31300-31363", 16);
    t->base = event_base_new();
    struct anchor_events ev = {.arg = t, .timed_out = on_timed_out};
    char err[200] = "";
    static const struct dialplan_route_def routes[] = {
        {"us", "^\\+1\\d{10}$", "gw1,gw2"},
        {"uk", "^\\+44\\d+$", "gws"},
    };
    if (!t->base || anchor_start(&t->cfg, t->base, &ev, &t->anchor, err, sizeof(err)) != 0 ||
        fx_init_mediation(&t->fx, t->anchor) != 0 ||
        dialplan_new(NULL, 0, routes, 2, NULL, &t->dp, err, sizeof(err)) != 0 ||
        proxy_set_trunks(t->fx.proxy, trunk_defs, 3, err, sizeof(err)) != 0 ||
        !(t->gws_cert = gateway_cert(GWS_ADDR))) {
        print_error("set-up: %s\n", err);
        if (t->fx.proxy)
            fx_cleanup(&t->fx);
        dialplan_free(t->dp);
        anchor_stop(t->anchor);
        if (t->base)
            event_base_free(t->base);
        free(t);
        return -1;
    }
    proxy_set_dialplan(t->fx.proxy, t->dp);
    *state = t;
    return 0;
}

static int teardown_med(void **state)
{
    struct med *t = *state;
    size_t dropped = t->fx.dropped;
    if (getenv("FX_DUMP"))
        dump(&t->fx);
    fx_cleanup(&t->fx);
    dialplan_free(t->dp);
    tls_peer_unref(t->gws_cert);
    anchor_stop(t->anchor);
    event_base_free(t->base);
    free(t);
    if (dropped)
        fail_msg("the capture lost %zu message(s)", dropped);
    return 0;
}

/* --- helpers --------------------------------------------------------------- */

static bool has(const char *hay, const char *needle)
{
    return strcasestr(hay, needle) != NULL;
}

/* Message i's text holds (or not) part; dumps and fails otherwise. */
static void assert_text(const struct fx *f, int i, const char *part, bool want)
{
    if (i < 0 || (size_t)i >= f->nsent || has(f->sent[i].data, part) != want) {
        dump(f);
        fail_msg("message #%d %s '%s'", i, want ? "lacks" : "carries", part);
    }
}

/* The gateway's connection the proxy asked for (the newest), opened. */
static uint64_t gateway_opens(struct fx *f, size_t connects_before)
{
    if (f->connects != connects_before + 1) {
        dump(f);
        fail_msg("%zu connections asked for, want 1", f->connects - connects_before);
    }
    uint64_t g = f->nconns;
    fx_open_reserved(f, g);
    return g;
}

/* The gateway's connection the proxy asked for (the newest), failed. */
static void gateway_fails(struct fx *f, size_t connects_before)
{
    assert_int_equal(f->connects, connects_before + 1);
    fx_fail_reserved(f, f->nconns);
}

/* alice (on a) calls number with her SRTP offer; returns the gateway
 * connection once it is open (a new one), with Parley's INVITE on it. */
static uint64_t call_out(struct fx *f, struct call *c, uint64_t a, const char *number,
                         const char *headers)
{
    size_t before = f->connects;
    call_start(f, c, a, "alice", number, FX_SDP_SRTP_OFFER, headers);
    last_status(f, a, 100);
    uint64_t g = gateway_opens(f, before);
    last_request(f, g, "INVITE");
    return g;
}

/* Responses on conn since `from` whose CSeq names method. */
static size_t count_status_for(const struct fx *f, uint64_t conn, size_t from, int status,
                               const char *method)
{
    size_t n = 0;
    char cseq[64];
    for (size_t i = from; i < f->nsent; i++)
        if (f->sent[i].conn == conn && fx_sent_status(f, (int)i) == status &&
            fx_sent_header(f, (int)i, "CSeq", cseq, sizeof(cseq)) == 0 && strstr(cseq, method))
            n++;
    return n;
}

/* What the gateway knows of the dialog Parley's INVITE #inv made. */
struct gw_leg {
    uint64_t conn;
    char call_id[128];
    char parley_tag[64]; /* Parley's From tag */
    char gw_tag[64];
    char target[256]; /* Parley's Contact */
    char from[256];   /* Parley's From, as sent */
    char to[256];
    unsigned cseq;
};

static void gw_note(const struct fx *f, int inv, const char *gw_tag, struct gw_leg *l)
{
    char v[300];
    memset(l, 0, sizeof(*l));
    l->conn = f->sent[inv].conn;
    assert_int_equal(fx_sent_header(f, inv, "Call-ID", l->call_id, sizeof(l->call_id)), 0);
    assert_int_equal(fx_sent_header(f, inv, "From", l->from, sizeof(l->from)), 0);
    assert_int_equal(fx_sent_header(f, inv, "To", l->to, sizeof(l->to)), 0);
    fx_tag_of(l->from, l->parley_tag, sizeof(l->parley_tag));
    assert_true(l->parley_tag[0] != '\0');
    assert_int_equal(fx_sent_header(f, inv, "Contact", v, sizeof(v)), 0);
    assert_true(v[0] == '<');
    snprintf(l->target, sizeof(l->target), "%.*s", (int)strcspn(v + 1, ">"), v + 1);
    snprintf(l->gw_tag, sizeof(l->gw_tag), "%s", gw_tag);
    l->cseq = 100;
}

/* A request of the gateway's inside the dialog (To: Parley's tag). */
static void gw_request(struct fx *f, struct gw_leg *l, const char *method, const char *headers,
                       const char *sdp)
{
    char text[FX_MSG_MAX], peer[NETADDR_STRLEN], to[300];
    static unsigned n;
    netaddr_format(&f->conns[l->conn].peer, peer);
    /* To is Parley's From; From is the gateway's To with its tag */
    snprintf(to, sizeof(to), "%.*s>", (int)strcspn(l->to, ">"), l->to);
    int len = snprintf(text, sizeof(text),
                       "%s %s SIP/2.0\r\n"
                       "Via: SIP/2.0/TCP %s;branch=z9hG4bKgwreq%u\r\n"
                       "Max-Forwards: 70\r\n"
                       "From: %s;tag=%s\r\n"
                       "To: %s\r\n"
                       "Call-ID: %s\r\n"
                       "CSeq: %u %s\r\n"
                       "Contact: <sip:gw@%s;transport=tcp>\r\n"
                       "%s%s"
                       "Content-Length: %zu\r\n\r\n%s",
                       method, l->target, peer, ++n, to, l->gw_tag, l->from, l->call_id, ++l->cseq,
                       method, peer, headers ? headers : "",
                       sdp ? "Content-Type: application/sdp\r\n" : "", sdp ? strlen(sdp) : 0,
                       sdp ? sdp : "");
    assert_true(len > 0 && (size_t)len < sizeof(text));
    assert_int_equal(fx_send_text(f, l->conn, text, (size_t)len), 0);
}

/* An out-of-dialog INVITE from a gateway on conn g for number. */
static void gw_invite_full(struct fx *f, uint64_t g, const char *number, const char *call_id,
                           const char *sdp, const char *headers);

static void gw_invite(struct fx *f, uint64_t g, const char *number, const char *call_id)
{
    gw_invite_full(f, g, number, call_id, SDP_GW_PLAIN, "");
}

static void gw_invite_sdp(struct fx *f, uint64_t g, const char *number, const char *call_id,
                          const char *sdp)
{
    gw_invite_full(f, g, number, call_id, sdp, "");
}

static void gw_invite_full(struct fx *f, uint64_t g, const char *number, const char *call_id,
                           const char *sdp, const char *headers)
{
    char text[FX_MSG_MAX], peer[NETADDR_STRLEN];
    netaddr_format(&f->conns[g].peer, peer);
    int len = snprintf(text, sizeof(text),
                       "INVITE sip:%s@" FX_DOMAIN ";user=phone SIP/2.0\r\n"
                       "Via: SIP/2.0/TCP %s;branch=z9hG4bKgwinv%s\r\n"
                       "Max-Forwards: 70\r\n"
                       "From: <sip:" CALLER_PSTN "@%s;user=phone>;tag=gwfrom1\r\n"
                       "To: <sip:%s@" FX_DOMAIN ";user=phone>\r\n"
                       "Call-ID: %s\r\n"
                       "CSeq: 1 INVITE\r\n"
                       "Contact: <sip:" CALLER_PSTN "@%s;transport=tcp>\r\n"
                       "P-Asserted-Identity: <sip:" CALLER_PSTN "@%s;user=phone>\r\n"
                       "%s"
                       "Content-Type: application/sdp\r\n"
                       "Content-Length: %zu\r\n\r\n%s",
                       number, peer, call_id, peer, number, call_id, peer, peer, headers,
                       strlen(sdp), sdp);
    assert_true(len > 0 && (size_t)len < sizeof(text));
    assert_int_equal(fx_send_text(f, g, text, (size_t)len), 0);
}

/* Parley's SDP toward alice: its address, SRTP with a key of its own. */
static void assert_parleys_srtp(const struct fx *f, int i)
{
    const char *body = body_of(f, i);
    if (!strstr(body, PARLEYS) || !strstr(body, " RTP/SAVP ") || !strstr(body, "a=crypto:") ||
        strstr(body, FX_KEY_A) || strstr(body, KEY_GW) || strstr(body, GW_MEDIA)) {
        dump(f);
        fail_msg("message #%d: no SRTP SDP of Parley's of its own", i);
    }
}

/* Parley's plain SDP toward a gateway: its address, RTP/AVP, no key. */
static void assert_parleys_plain(const struct fx *f, int i)
{
    const char *body = body_of(f, i);
    if (!strstr(body, PARLEYS) || !strstr(body, " RTP/AVP ") || strstr(body, "a=crypto") ||
        strstr(body, "RTP/SAVP")) {
        dump(f);
        fail_msg("message #%d: no plain SDP of Parley's", i);
    }
}

/* Nothing any gateway connection got carries alice's identity, address
 * or key, nothing alice got carries the gateway's address or key. */
static void assert_nothing_crossed(const struct fx *f, uint64_t a)
{
    for (size_t i = 0; i < f->nsent; i++) {
        const char *m = f->sent[i].data;
        const char *bad = NULL;
        if (f->sent[i].conn == a) {
            if (has(m, GW_MEDIA) || has(m, KEY_GW) || has(m, GW1_ADDR) || has(m, GW2_ADDR))
                bad = "the gateway's address or key";
        } else if (!f->conns[f->sent[i].conn].tls) {
            /* a TCP gateway */
            if (has(m, "alice") || has(m, "192.0.2.") || has(m, FX_KEY_A) || has(m, "a=crypto") ||
                has(m, "Digest"))
                bad = "alice's identity, address or a key";
        }
        if (bad) {
            dump(f);
            fail_msg("message #%zu carries %s", i, bad);
        }
    }
}

/* alice on a calls US_NUMBER; gw1 answers 200 with tag gt1; alice ACKs.
 * Returns gw1's connection; *l is the gateway's view. */
static uint64_t answered_out(struct fx *f, struct call *c, uint64_t a, struct gw_leg *l,
                             const char *ok_headers)
{
    uint64_t g = call_out(f, c, a, US_NUMBER, NULL);
    int inv = last_request(f, g, "INVITE");
    gw_note(f, inv, "gt1", l);
    assert_int_equal(fx_respond(f, g, inv, 200, "gt1", ok_headers, SDP_GW_PLAIN), 0);
    last_request(f, g, "ACK");
    call_note_answer(f, c, last_status(f, a, 200));
    call_ack(f, c, c->cseq, NULL);
    return g;
}

/* --- outbound --------------------------------------------------------------- */

static void test_outbound_call_is_two_dialogs(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a = fx_open(f);
    struct call c;
    uint64_t g = call_out(f, &c, a, US_NUMBER, NULL);
    assert_false(f->conns[g].tls);
    int inv = last_request(f, g, "INVITE");
    /* a dialog of Parley's own: fresh Call-ID and tag */
    char v[512], tag[64];
    assert_int_equal(fx_sent_header(f, inv, "Call-ID", v, sizeof(v)), 0);
    assert_string_not_equal(v, c.call_id);
    assert_int_equal(fx_sent_header(f, inv, "From", v, sizeof(v)), 0);
    fx_tag_of(v, tag, sizeof(tag));
    assert_true(tag[0] != '\0');
    assert_string_not_equal(tag, "t-alice");
    assert_non_null(strstr(v, FX_NUMBER_ALICE));
    assert_null(strcasestr(v, "anonymous"));
    assert_header_has(f, inv, "P-Asserted-Identity", FX_NUMBER_ALICE);
    assert_text(f, inv, "INVITE sip:" US_NUMBER "@" GW1_ADDR ":5068", true);
    /* nothing of alice's */
    assert_text(f, inv, "alice", false);
    assert_text(f, inv, "192.0.2.", false); /* her address, her Via, her SDP */
    assert_text(f, inv, "Authorization", false);
    assert_text(f, inv, "Digest", false);
    assert_text(f, inv, FX_KEY_A, false);
    assert_text(f, inv, "Privacy", false);
    /* the trunk is not_supported: plain RTP, no key at all */
    assert_parleys_plain(f, inv);
    assert_header(f, inv, "Session-Expires", "1800;refresher=uac");
    assert_header(f, inv, "Min-SE", "90");
    assert_header_has(f, inv, "Supported", "100rel");

    /* early media: the gateway's 183 reaches alice as Parley's SRTP */
    assert_int_equal(fx_respond(f, g, inv, 183, "gt1", NULL, SDP_GW_PLAIN), 0);
    int early = last_status(f, a, 183);
    assert_parleys_srtp(f, early);
    const char *k1 = strstr(body_of(f, early), "inline:");
    assert_non_null(k1);

    /* answered: ACK toward the gateway, 200 to alice */
    assert_int_equal(fx_respond(f, g, inv, 200, "gt1", NULL, SDP_GW_PLAIN), 0);
    int ack = last_request(f, g, "ACK");
    char cseq_inv[64], cseq_ack[64];
    assert_int_equal(fx_sent_header(f, inv, "CSeq", cseq_inv, sizeof(cseq_inv)), 0);
    assert_int_equal(fx_sent_header(f, ack, "CSeq", cseq_ack, sizeof(cseq_ack)), 0);
    assert_int_equal(atoi(cseq_inv), atoi(cseq_ack));
    assert_header_has(f, ack, "To", "tag=gt1");
    int ok = last_status(f, a, 200);
    assert_parleys_srtp(f, ok);
    /* the same key of Parley's for alice's leg in the 183 and the 200 */
    const char *k2 = strstr(body_of(f, ok), "inline:");
    assert_non_null(k2);
    assert_memory_equal(k1, k2, 40);
    assert_int_equal(anchor_stream_count(t->anchor), 1);
    call_note_answer(f, &c, ok);
    call_ack(f, &c, c.cseq, NULL);

    /* alice hangs up: BYE toward the gateway in its dialog */
    size_t mark = f->nsent;
    call_caller_request(f, &c, a, "BYE", c.cseq + 1, NULL, NULL);
    last_status(f, a, 200);
    int bye = last_request(f, g, "BYE");
    assert_true((size_t)bye >= mark);
    char gw_call_id[128];
    assert_int_equal(fx_sent_header(f, inv, "Call-ID", gw_call_id, sizeof(gw_call_id)), 0);
    assert_header(f, bye, "Call-ID", gw_call_id);
    assert_header_has(f, bye, "To", "tag=gt1");
    assert_int_equal(fx_respond(f, g, bye, 200, NULL, NULL, NULL), 0);
    assert_int_equal(anchor_stream_count(t->anchor), 0);
    const struct fx_record *r = only_record(f);
    assert_non_null(strstr(r->reason, "BYE from caller"));
    if (!strstr(r->media, "user leg SRTP") || !strstr(r->media, "(trunk gw1: not_supported)"))
        fail_msg("media in the call record: '%s'", r->media);
    assert_nothing_crossed(f, a);
    /* once the transactions are over, nothing of the call is left */
    fx_advance(f, 40000);
    assert_int_equal(proxy_b2bua_count(f->proxy), 0);
}

static void test_bye_from_gateway_reaches_alice(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a = fx_open(f);
    struct call c;
    struct gw_leg l;
    uint64_t g = answered_out(f, &c, a, &l, NULL);
    size_t mark = f->nsent;
    gw_request(f, &l, "BYE", NULL, NULL);
    last_status(f, g, 200);
    int bye = last_request(f, a, "BYE");
    assert_true((size_t)bye >= mark);
    assert_header(f, bye, "Call-ID", c.call_id);
    assert_header_has(f, bye, "From", c.to_tag);
    assert_header_has(f, bye, "To", "tag=t-alice");
    /* no BYE back toward the gateway that hung up */
    assert_int_equal(count_requests(f, g, mark, "BYE"), 0);
    assert_int_equal(fx_respond(f, a, bye, 200, NULL, NULL, NULL), 0);
    assert_non_null(strstr(only_record(f)->reason, "BYE from gateway"));
    assert_int_equal(anchor_stream_count(t->anchor), 0);
    /* a second BYE for the ended call: 481 */
    gw_request(f, &l, "BYE", NULL, NULL);
    last_status(f, g, 481);
    assert_nothing_crossed(f, a);
}

static void test_privacy_id_makes_from_anonymous(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a = fx_open(f);
    struct call c;
    uint64_t g = call_out(f, &c, a, US_NUMBER, "Privacy: id\r\n");
    int inv = last_request(f, g, "INVITE");
    char from[300];
    assert_int_equal(fx_sent_header(f, inv, "From", from, sizeof(from)), 0);
    assert_non_null(strcasestr(from, "anonymous"));
    assert_null(strstr(from, FX_NUMBER_ALICE));
    /* the number is still asserted, for the network, with the privacy ask */
    assert_header_has(f, inv, "P-Asserted-Identity", FX_NUMBER_ALICE);
    assert_header_has(f, inv, "Privacy", "id");
    assert_text(f, inv, "alice", false);
    assert_nothing_crossed(f, a);
}

/* --- failover --------------------------------------------------------------- */

static void test_503_fails_over_to_the_next_trunk(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a = fx_open(f);
    struct call c;
    uint64_t g1 = call_out(f, &c, a, US_NUMBER, NULL);
    int inv1 = last_request(f, g1, "INVITE");
    size_t before = f->connects, mark = f->nsent;
    assert_int_equal(fx_respond(f, g1, inv1, 503, "gt1", NULL, NULL), 0);
    /* the 503 went no further than Parley */
    assert_int_equal(count_status(f, a, mark, 0), 0);
    uint64_t g2 = gateway_opens(f, before);
    assert_int_not_equal(g1, g2);
    int inv2 = last_request(f, g2, "INVITE");
    assert_text(f, inv2, "INVITE sip:" US_NUMBER "@" GW2_ADDR ":5068", true);
    /* a dialog of its own per attempt */
    char id1[128], id2[128];
    assert_int_equal(fx_sent_header(f, inv1, "Call-ID", id1, sizeof(id1)), 0);
    assert_int_equal(fx_sent_header(f, inv2, "Call-ID", id2, sizeof(id2)), 0);
    assert_string_not_equal(id1, id2);
    assert_parleys_plain(f, inv2);
    assert_int_equal(fx_respond(f, g2, inv2, 200, "gt2", NULL, SDP_GW_PLAIN), 0);
    last_request(f, g2, "ACK");
    assert_parleys_srtp(f, last_status(f, a, 200));
    assert_int_equal(anchor_stream_count(t->anchor), 1);
    assert_nothing_crossed(f, a);
}

/* A line of message i's SDP that starts with prefix, into out. */
static void sdp_line(const struct fx *f, int i, const char *prefix, char *out, size_t cap)
{
    const char *body = body_of(f, i), *at = strstr(body, prefix);
    assert_non_null(at);
    size_t n = strcspn(at, "\r\n");
    assert_true(n < cap);
    memcpy(out, at, n);
    out[n] = '\0';
}

/* gw1 plays early media (183 with SDP), then fails with 503: gw2 answers,
 * and the SDP alice gets in the 200 names the same ports and Parley's same
 * key as the 183 she already had (her leg stays; only the gateway's is
 * made again). */
static void test_failover_after_early_media_keeps_alices_leg(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a = fx_open(f);
    struct call c;
    uint64_t g1 = call_out(f, &c, a, US_NUMBER, NULL);
    int inv1 = last_request(f, g1, "INVITE");
    assert_int_equal(fx_respond(f, g1, inv1, 183, "gt1", NULL, SDP_GW_PLAIN), 0);
    int early = last_status(f, a, 183);
    char m183[128], k183[160], m200[128], k200[160];
    sdp_line(f, early, "m=audio", m183, sizeof(m183));
    sdp_line(f, early, "a=crypto", k183, sizeof(k183));
    size_t before = f->connects;
    assert_int_equal(fx_respond(f, g1, inv1, 503, "gt1", NULL, NULL), 0);
    uint64_t g2 = gateway_opens(f, before);
    int inv2 = last_request(f, g2, "INVITE");
    assert_int_equal(fx_respond(f, g2, inv2, 200, "gt2", NULL, SDP_GW_PLAIN), 0);
    int ok = last_status(f, a, 200);
    sdp_line(f, ok, "m=audio", m200, sizeof(m200));
    sdp_line(f, ok, "a=crypto", k200, sizeof(k200));
    assert_string_equal(m183, m200);
    assert_string_equal(k183, k200);
    assert_int_equal(anchor_stream_count(t->anchor), 1);
}

/* alice calls US_NUMBER: the INVITE goes to conn `want` (an open
 * gateway connection); it answers 486 and the call ends. */
static void call_reaches_open(struct fx *f, uint64_t a, uint64_t want, uint64_t other)
{
    struct call c;
    size_t before = f->connects, mark = f->nsent;
    call_start(f, &c, a, "alice", US_NUMBER, FX_SDP_SRTP_OFFER, NULL);
    assert_int_equal(f->connects, before);
    assert_int_equal(count_requests(f, other, mark, "INVITE"), 0);
    assert_int_equal(count_requests(f, want, mark, "INVITE"), 1);
    assert_int_equal(fx_respond(f, want, last_request(f, want, "INVITE"), 486, "gtx", NULL, NULL),
                     0);
    last_status(f, a, 486);
}

static void test_503_retry_after_skips_the_trunk_for_a_while(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a = fx_open(f);
    struct call c;
    uint64_t g1 = call_out(f, &c, a, US_NUMBER, NULL);
    size_t before = f->connects;
    assert_int_equal(
        fx_respond(f, g1, last_request(f, g1, "INVITE"), 503, "gt1", "Retry-After: 60\r\n", NULL),
        0);
    uint64_t g2 = gateway_opens(f, before);
    assert_int_equal(fx_respond(f, g2, last_request(f, g2, "INVITE"), 486, "gt2", NULL, NULL), 0);
    last_status(f, a, 486);
    /* within the 60 s: straight to gw2, gw1 is not asked */
    fx_advance(f, 30000);
    call_reaches_open(f, a, g2, g1);
    fx_advance(f, 29000);
    call_reaches_open(f, a, g2, g1);
    /* after them: gw1 again (its connection is still up) */
    fx_advance(f, 2000);
    call_reaches_open(f, a, g1, g2);
}

/* A final answer other than 408, 500, 502, 503, 504 ends the attempt:
 * the caller gets it, no other trunk is asked. */
static void final_answer_passes(void **state, int status)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a = fx_open(f);
    struct call c;
    uint64_t g = call_out(f, &c, a, US_NUMBER, NULL);
    size_t before = f->connects, mark = f->nsent;
    assert_int_equal(fx_respond(f, g, last_request(f, g, "INVITE"), status, "gt1", NULL, NULL), 0);
    assert_int_equal(last_status(f, a, status), fx_last_on(f, a));
    assert_int_equal(f->connects, before);
    for (uint64_t conn = 1; conn <= f->nconns; conn++)
        assert_int_equal(count_requests(f, conn, mark, "INVITE"), 0);
    assert_int_equal(anchor_stream_count(t->anchor), 0);
}

static void test_486_is_no_failover(void **state)
{
    final_answer_passes(state, 486);
}

static void test_603_is_no_failover(void **state)
{
    final_answer_passes(state, 603);
}

static void test_connection_failure_tries_next_trunk(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a = fx_open(f);
    struct call c;
    size_t before = f->connects;
    call_start(f, &c, a, "alice", US_NUMBER, FX_SDP_SRTP_OFFER, NULL);
    uint64_t g1 = f->nconns;
    gateway_fails(f, before);
    assert_int_equal(count_status(f, a, c.mark, 0), 0);
    uint64_t g2 = gateway_opens(f, before + 1);
    int inv = last_request(f, g2, "INVITE");
    assert_text(f, inv, GW2_ADDR ":5068", true);
    assert_int_equal(fx_count_on(f, g1), 0);
    assert_int_equal(fx_respond(f, g2, inv, 200, "gt2", NULL, SDP_GW_PLAIN), 0);
    assert_parleys_srtp(f, last_status(f, a, 200));
}

static void test_no_trunk_left_gets_503(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a = fx_open(f);
    struct call c;
    uint64_t g1 = call_out(f, &c, a, US_NUMBER, NULL);
    size_t before = f->connects;
    assert_int_equal(fx_respond(f, g1, last_request(f, g1, "INVITE"), 503, "gt1", NULL, NULL), 0);
    /* gw2's connection fails: nothing is left */
    gateway_fails(f, before);
    last_status(f, a, 503);
    assert_int_equal(count_status(f, a, c.mark, 0), 1);
    assert_int_equal(anchor_stream_count(t->anchor), 0);
    assert_int_equal(f->nrecords, 1);
}

/* The gateway's connection closes while the INVITE is out: next trunk. */
static void test_connection_lost_while_calling_tries_next_trunk(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a = fx_open(f);
    struct call c;
    uint64_t g1 = call_out(f, &c, a, US_NUMBER, NULL);
    size_t before = f->connects;
    fx_close(f, g1);
    assert_int_equal(count_status(f, a, c.mark, 0), 0);
    uint64_t g2 = gateway_opens(f, before);
    last_request(f, g2, "INVITE");
}

/* Neither gateway answers at all: each INVITE times out (Timer B), the
 * next trunk is tried, and the caller gets 408 (issue 16: "a timeout as
 * 408"), not a 503 of Parley's. */
static void test_gateways_silent_gets_408(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a = fx_open(f);
    struct call c;
    call_out(f, &c, a, US_NUMBER, NULL);
    size_t before = f->connects;
    fx_advance(f, SIP_TIMER_B_MS + 1000);
    assert_int_equal(count_status(f, a, c.mark, 0), 0);
    uint64_t g2 = gateway_opens(f, before);
    last_request(f, g2, "INVITE");
    fx_advance(f, SIP_TIMER_B_MS + 1000);
    last_status(f, a, 408);
    assert_int_equal(count_status(f, a, c.mark, 0), 1);
}

/* A user without outbound rights: 403, no trunk is asked. */
static void test_no_outbound_rights_gets_403(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a = fx_open(f);
    struct call c;
    f->outbound = DIALPLAN_OUTBOUND_NONE;
    call_start(f, &c, a, "alice", US_NUMBER, FX_SDP_SRTP_OFFER, NULL);
    last_status(f, a, 403);
    assert_int_equal(f->connects, 0);
    f->outbound = DIALPLAN_OUTBOUND_ALL;
    call_start(f, &c, a, "alice", US_NUMBER, FX_SDP_SRTP_OFFER, NULL);
    last_status(f, a, 100);
    assert_int_equal(f->connects, 1);
}

/* --- failures mapped -------------------------------------------------------- */

static void test_gateway_challenge_becomes_403(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a = fx_open(f);
    static const struct {
        int status;
        const char *hdr;
    } cases[] = {
        {401, "WWW-Authenticate: Digest realm=\"gw\", nonce=\"n0nce\"\r\n"},
        {407, "Proxy-Authenticate: Digest realm=\"gw\", nonce=\"n0nce\"\r\n"},
    };
    uint64_t g = 0;
    for (size_t k = 0; k < 2; k++) {
        struct call c;
        size_t before = f->connects;
        call_start(f, &c, a, "alice", US_NUMBER, FX_SDP_SRTP_OFFER, NULL);
        if (!g)
            g = gateway_opens(f, before);
        size_t mark = f->nsent;
        assert_int_equal(fx_respond(f, g, last_request(f, g, "INVITE"), cases[k].status, "gt1",
                                    cases[k].hdr, NULL),
                         0);
        int r = last_status(f, a, 403);
        assert_no_header(f, r, "WWW-Authenticate");
        assert_no_header(f, r, "Proxy-Authenticate");
        assert_text(f, r, "n0nce", false);
        /* no retry with credentials, no other trunk */
        assert_int_equal(count_requests(f, g, mark, "INVITE"), 0);
        assert_int_equal(f->connects, before + (k == 0));
    }
}

static void test_gateway_redirect_becomes_502(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a = fx_open(f);
    struct call c;
    uint64_t g = call_out(f, &c, a, US_NUMBER, NULL);
    size_t mark = f->nsent;
    assert_int_equal(fx_respond(f, g, last_request(f, g, "INVITE"), 302, "gt1",
                                "Contact: <sip:+19995550000@198.51.100.77>\r\n", NULL),
                     0);
    int r = last_status(f, a, 502);
    assert_text(f, r, "198.51.100.77", false);
    assert_int_equal(count_requests(f, g, mark, "INVITE"), 0);
}

/* --- CANCEL ----------------------------------------------------------------- */

static void test_cancel_before_provisional(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a = fx_open(f);
    struct call c;
    uint64_t g = call_out(f, &c, a, US_NUMBER, NULL);
    int inv = last_request(f, g, "INVITE");
    size_t mark = f->nsent;
    call_cancel(f, &c);
    assert_int_equal(count_status_for(f, a, mark, 200, "CANCEL"), 1);
    assert_int_equal(count_status_for(f, a, mark, 487, "INVITE"), 1);
    /* no CANCEL before the gateway sent a provisional (RFC 3261 §9.1) */
    assert_int_equal(count_requests(f, g, mark, "CANCEL"), 0);
    assert_int_equal(fx_respond(f, g, inv, 180, "gt1", NULL, NULL), 0);
    int cancel = last_request(f, g, "CANCEL");
    char v1[128], v2[128];
    assert_int_equal(fx_sent_header(f, inv, "Via", v1, sizeof(v1)), 0);
    assert_int_equal(fx_sent_header(f, cancel, "Via", v2, sizeof(v2)), 0);
    assert_string_equal(v1, v2);
    assert_int_equal(fx_respond(f, g, inv, 487, "gt1", NULL, NULL), 0);
    /* alice heard nothing of the 180 nor of the gateway's 487 */
    assert_int_equal(count_status(f, a, mark, 180), 0);
    assert_int_equal(count_status_for(f, a, mark, 487, "INVITE"), 1);
    assert_int_equal(anchor_stream_count(t->anchor), 0);
    fx_advance(f, 40000);
    assert_int_equal(proxy_b2bua_count(f->proxy), 0);
}

static void test_cancel_while_the_trunk_connects(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a = fx_open(f);
    struct call c;
    size_t before = f->connects;
    call_start(f, &c, a, "alice", US_NUMBER, FX_SDP_SRTP_OFFER, NULL);
    assert_int_equal(f->connects, before + 1);
    call_cancel(f, &c);
    last_status(f, a, 487);
    /* the connection opens afterwards: no INVITE goes to the gateway */
    uint64_t g = f->nconns;
    fx_open_reserved(f, g);
    fx_run(f);
    assert_int_equal(count_requests(f, g, 0, "INVITE"), 0);
    fx_advance(f, 40000);
    assert_int_equal(proxy_b2bua_count(f->proxy), 0);
}

static void test_200_crossing_cancel_is_acked_and_ended(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a = fx_open(f);
    struct call c;
    uint64_t g = call_out(f, &c, a, US_NUMBER, NULL);
    int inv = last_request(f, g, "INVITE");
    assert_int_equal(fx_respond(f, g, inv, 180, "gt1", NULL, NULL), 0);
    last_status(f, a, 180);
    size_t mark = f->nsent;
    call_cancel(f, &c);
    last_request(f, g, "CANCEL");
    /* the gateway answered before the CANCEL reached it */
    assert_int_equal(fx_respond(f, g, inv, 200, "gt1", NULL, SDP_GW_PLAIN), 0);
    assert_int_equal(count_requests(f, g, mark, "ACK"), 1);
    int bye = last_request(f, g, "BYE");
    assert_header_has(f, bye, "To", "tag=gt1");
    assert_int_equal(count_status_for(f, a, mark, 487, "INVITE"), 1);
    assert_int_equal(count_status_for(f, a, mark, 200, "INVITE"), 0);
    assert_int_equal(fx_respond(f, g, bye, 200, NULL, NULL, NULL), 0);
    /* the 200 again (its ACK lost): ACKed again, alice still hears nothing */
    size_t mark2 = f->nsent;
    assert_int_equal(fx_respond(f, g, inv, 200, "gt1", NULL, SDP_GW_PLAIN), 0);
    assert_int_equal(count_status(f, a, mark2, 0), 0);
    assert_nothing_crossed(f, a);
    fx_advance(f, 40000);
    assert_int_equal(proxy_b2bua_count(f->proxy), 0);
}

/* alice's connection goes while the gateway rings: the gateway's INVITE
 * is cancelled, nothing is left. */
static void test_caller_gone_while_ringing_cancels(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a = fx_open(f);
    struct call c;
    uint64_t g = call_out(f, &c, a, US_NUMBER, NULL);
    int inv = last_request(f, g, "INVITE");
    assert_int_equal(fx_respond(f, g, inv, 180, "gt1", NULL, NULL), 0);
    size_t mark = f->nsent;
    fx_close(f, a);
    fx_run(f);
    assert_int_equal(count_requests(f, g, mark, "CANCEL"), 1);
    assert_int_equal(fx_respond(f, g, inv, 487, "gt1", NULL, NULL), 0);
    assert_int_equal(anchor_stream_count(t->anchor), 0);
    fx_advance(f, 40000);
    assert_int_equal(proxy_b2bua_count(f->proxy), 0);
}

/* The gateway's 2xx again (its ACK lost) in an answered call: ACKed
 * again; alice is not told twice. */
static void test_2xx_retransmission_is_acked_again(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a = fx_open(f);
    struct call c;
    struct gw_leg l;
    uint64_t g = answered_out(f, &c, a, &l, NULL);
    int inv = fx_nth_on(f, g, 0);
    size_t mark = f->nsent;
    assert_int_equal(fx_respond(f, g, inv, 200, "gt1", NULL, SDP_GW_PLAIN), 0);
    assert_int_equal(count_requests(f, g, mark, "ACK"), 1);
    assert_int_equal(count_requests(f, g, mark, "BYE"), 0);
    assert_true(fx_last_on(f, a) < (int)mark);
}

/* The trunk's connection dropped during the call; alice hangs up: Parley
 * connects to the gateway again and the BYE goes on the new connection. */
static void test_bye_after_trunk_connection_dropped(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a = fx_open(f);
    struct call c;
    struct gw_leg l;
    uint64_t g = answered_out(f, &c, a, &l, NULL);
    fx_close(f, g);
    size_t before = f->connects;
    call_caller_request(f, &c, a, "BYE", c.cseq + 1, NULL, NULL);
    last_status(f, a, 200);
    /* the trunk's connection is made again and the BYE waits for it; the
     * ended call is not freed before it went */
    assert_int_equal(f->connects, before + 1);
    assert_int_equal(count_requests(f, f->nconns, 0, "BYE"), 0);
    fx_run(f);
    fx_open_reserved(f, f->nconns);
    fx_run(f);
    uint64_t g2 = f->nconns;
    int bye = last_request(f, g2, "BYE");
    assert_header(f, bye, "Call-ID", l.call_id);
}

/* alice holds, then resumes a few seconds later: both re-INVITEs reach the
 * gateway (the first one's transactions linger 32 s after its 2xx, RFC
 * 6026; that is no exchange in progress). */
static void test_hold_then_resume_at_once(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a = fx_open(f);
    struct call c;
    struct gw_leg l;
    uint64_t g = answered_out(f, &c, a, &l, NULL);
    for (unsigned k = 1; k <= 2; k++) {
        size_t mark = f->nsent;
        call_caller_request(f, &c, a, "INVITE", c.cseq + k, NULL,
                            k == 1 ? FX_SDP_SRTP_HOLD : FX_SDP_SRTP_OFFER);
        assert_int_equal(count_status(f, a, mark, 491), 0);
        int re = last_request(f, g, "INVITE");
        assert_true((size_t)re >= mark);
        assert_text(f, re, k == 1 ? "a=sendonly" : "a=sendrecv", true);
        assert_int_equal(fx_respond(f, g, re, 200, NULL, NULL, SDP_GW_PLAIN), 0);
        assert_parleys_srtp(f, last_status(f, a, 200));
        call_ack(f, &c, c.cseq + k, NULL);
        fx_advance(f, 3000);
    }
    assert_nothing_crossed(f, a);
}

/* The gateway's UPDATE with an offer reaches alice as Parley's own. */
static void test_update_from_gateway_reaches_alice(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a = fx_open(f);
    struct call c;
    struct gw_leg l;
    uint64_t g = answered_out(f, &c, a, &l, NULL);
    size_t mark = f->nsent;
    gw_request(f, &l, "UPDATE", NULL, SDP_GW_PLAIN);
    int up = last_request(f, a, "UPDATE");
    assert_true((size_t)up >= mark);
    assert_parleys_srtp(f, up);
    assert_int_equal(fx_respond(f, a, up, 200, NULL, NULL, FX_SDP_SRTP_ANSWER), 0);
    assert_parleys_plain(f, last_status(f, g, 200));
    assert_nothing_crossed(f, a);
}

/* --- reliable provisionals ---------------------------------------------------- */

static void test_reliable_183_gets_prack(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a = fx_open(f);
    struct call c;
    uint64_t g = call_out(f, &c, a, US_NUMBER, NULL);
    int inv = last_request(f, g, "INVITE");
    char cseq[64];
    assert_int_equal(fx_sent_header(f, inv, "CSeq", cseq, sizeof(cseq)), 0);
    unsigned inv_cseq = (unsigned)atoi(cseq);
    size_t mark = f->nsent;
    assert_int_equal(
        fx_respond(f, g, inv, 183, "gt1", "Require: 100rel\r\nRSeq: 1\r\n", SDP_GW_PLAIN), 0);
    int prack = last_request(f, g, "PRACK");
    char rack[64];
    snprintf(rack, sizeof(rack), "1 %u INVITE", inv_cseq);
    assert_header(f, prack, "RAck", rack);
    assert_header_has(f, prack, "To", "tag=gt1");
    char id1[128], id2[128];
    assert_int_equal(fx_sent_header(f, inv, "Call-ID", id1, sizeof(id1)), 0);
    assert_int_equal(fx_sent_header(f, prack, "Call-ID", id2, sizeof(id2)), 0);
    assert_string_equal(id1, id2);
    assert_int_equal(fx_sent_header(f, prack, "CSeq", cseq, sizeof(cseq)), 0);
    assert_true((unsigned)atoi(cseq) > inv_cseq);
    assert_non_null(strstr(cseq, "PRACK"));
    /* alice's copy is unreliable, with Parley's SDP */
    int early = last_status(f, a, 183);
    assert_no_header(f, early, "RSeq");
    assert_text(f, early, "100rel", false);
    assert_parleys_srtp(f, early);
    assert_int_equal(fx_respond(f, g, prack, 200, NULL, NULL, NULL), 0);
    /* the same 183 again: no second PRACK; the next one: RAck 2 */
    assert_int_equal(
        fx_respond(f, g, inv, 183, "gt1", "Require: 100rel\r\nRSeq: 1\r\n", SDP_GW_PLAIN), 0);
    assert_int_equal(count_requests(f, g, mark, "PRACK"), 1);
    assert_int_equal(fx_respond(f, g, inv, 180, "gt1", "Require: 100rel\r\nRSeq: 2\r\n", NULL), 0);
    assert_int_equal(count_requests(f, g, mark, "PRACK"), 2);
    snprintf(rack, sizeof(rack), "2 %u INVITE", inv_cseq);
    assert_header(f, last_request(f, g, "PRACK"), "RAck", rack);
    /* an unreliable 180 gets none */
    assert_int_equal(fx_respond(f, g, inv, 180, "gt1", NULL, NULL), 0);
    assert_int_equal(count_requests(f, g, mark, "PRACK"), 2);
    assert_nothing_crossed(f, a);
}

/* --- re-INVITEs ----------------------------------------------------------------- */

static void test_reinvite_glare_gets_491(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a = fx_open(f);
    struct call c;
    struct gw_leg l;
    uint64_t g = answered_out(f, &c, a, &l, NULL);
    /* alice puts the call on hold: Parley's re-INVITE toward the gateway */
    size_t mark = f->nsent;
    call_caller_request(f, &c, a, "INVITE", c.cseq + 1, NULL, FX_SDP_SRTP_HOLD);
    int re = last_request(f, g, "INVITE");
    assert_true((size_t)re >= mark);
    assert_parleys_plain(f, re);
    assert_text(f, re, "a=sendonly", true);
    assert_header(f, re, "Call-ID", l.call_id);
    /* the gateway's own re-INVITE crosses it */
    size_t mark2 = f->nsent;
    gw_request(f, &l, "INVITE", NULL, SDP_GW_PLAIN);
    last_status(f, g, 491);
    assert_int_equal(count_requests(f, a, mark2, "INVITE"), 0);
    /* Parley's re-INVITE answered: ACK, 200 to alice */
    assert_int_equal(fx_respond(f, g, re, 200, NULL, NULL, SDP_GW_PLAIN), 0);
    last_request(f, g, "ACK");
    int ok = last_status(f, a, 200);
    assert_parleys_srtp(f, ok);
    call_ack(f, &c, c.cseq + 1, NULL);
    /* no glare now: the gateway's re-INVITE with an offer reaches alice */
    mark2 = f->nsent;
    gw_request(f, &l, "INVITE", NULL, SDP_GW_PLAIN);
    int to_alice = last_request(f, a, "INVITE");
    assert_true((size_t)to_alice >= mark2);
    assert_parleys_srtp(f, to_alice);
    assert_int_equal(count_status(f, g, mark2, 491), 0);
    assert_int_equal(fx_respond(f, a, to_alice, 200, NULL, NULL, FX_SDP_SRTP_ANSWER), 0);
    assert_parleys_plain(f, last_status(f, g, 200));
    last_request(f, a, "ACK");
    assert_nothing_crossed(f, a);
}

static void test_reinvite_without_sdp_answered_by_parley(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a = fx_open(f);
    struct call c;
    struct gw_leg l;
    uint64_t g = answered_out(f, &c, a, &l, NULL);
    size_t mark = f->nsent;
    gw_request(f, &l, "INVITE", NULL, NULL);
    int ok = last_status(f, g, 200);
    assert_parleys_plain(f, ok);
    /* the SDP Parley last sent the gateway, unchanged */
    int inv = fx_nth_on(f, g, 0);
    while (!fx_sent_is(f, inv, "INVITE"))
        inv++;
    assert_string_equal(body_of(f, ok), body_of(f, inv));
    /* alice heard nothing of it */
    assert_true(fx_last_on(f, a) < (int)mark);
    /* an UPDATE without SDP too, with no body */
    gw_request(f, &l, "UPDATE", NULL, NULL);
    int up = last_status(f, g, 200);
    assert_string_equal(body_of(f, up), "");
    assert_true(fx_last_on(f, a) < (int)mark);
    assert_nothing_crossed(f, a);
}

/* --- session timers ------------------------------------------------------------- */

static void test_session_timer_parley_refreshes(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a = fx_open(f);
    struct call c;
    struct gw_leg l;
    uint64_t g =
        answered_out(f, &c, a, &l, "Session-Expires: 90;refresher=uac\r\nRequire: timer\r\n");
    size_t mark = f->nsent;
    fx_advance(f, 44000);
    assert_int_equal(count_requests(f, g, mark, "INVITE"), 0);
    fx_advance(f, 2000);
    int re = last_request(f, g, "INVITE");
    assert_true((size_t)re >= mark);
    assert_header_has(f, re, "Session-Expires", "90");
    assert_header(f, re, "Call-ID", l.call_id);
    assert_parleys_plain(f, re);
    assert_int_equal(count_requests(f, a, mark, "INVITE"), 0);
    assert_int_equal(count_requests(f, a, mark, "BYE"), 0);
    assert_int_equal(
        fx_respond(f, g, re, 200, NULL, "Session-Expires: 90;refresher=uac\r\n", SDP_GW_PLAIN), 0);
    last_request(f, g, "ACK");
    /* and again half an interval later; the call never ends by itself */
    size_t mark2 = f->nsent;
    fx_advance(f, 46000);
    assert_int_equal(count_requests(f, g, mark2, "INVITE"), 1);
    assert_int_equal(count_requests(f, g, mark, "BYE"), 0);
    assert_int_equal(count_requests(f, a, mark, "BYE"), 0);
}

static void test_session_timer_expiry_ends_the_call(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a = fx_open(f);
    struct call c;
    struct gw_leg l;
    uint64_t g =
        answered_out(f, &c, a, &l, "Session-Expires: 90;refresher=uas\r\nRequire: timer\r\n");
    size_t mark = f->nsent;
    /* the gateway refreshes at 40 s: the expiry moves on (it is the UAC of
     * its refresh, so it keeps the role as "uac", RFC 4028 §7.4) */
    fx_advance(f, 40000);
    gw_request(f, &l, "INVITE", "Session-Expires: 90;refresher=uac\r\n", NULL);
    last_status(f, g, 200);
    fx_advance(f, 30000); /* 70 s: past 60 s after the 2xx */
    assert_int_equal(count_requests(f, g, mark, "BYE"), 0);
    assert_int_equal(count_requests(f, a, mark, "BYE"), 0);
    assert_int_equal(count_requests(f, g, mark, "INVITE"), 0); /* Parley is no refresher */
    /* no refresh since: at 40 + 90 - min(32, 90/3) = 100 s, BYE both ways */
    fx_advance(f, 29000); /* 99 s */
    assert_int_equal(count_requests(f, g, mark, "BYE"), 0);
    fx_advance(f, 2000);
    int bg = last_request(f, g, "BYE"), ba = last_request(f, a, "BYE");
    assert_header_has(f, bg, "Reason", "cause=408");
    assert_header_has(f, ba, "Reason", "cause=408");
    assert_int_equal(anchor_stream_count(t->anchor), 0);
}

static void test_422_retries_with_the_gateways_min_se(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a = fx_open(f);
    struct call c;
    uint64_t g = call_out(f, &c, a, US_NUMBER, NULL);
    int inv = last_request(f, g, "INVITE");
    size_t mark = f->nsent;
    assert_int_equal(fx_respond(f, g, inv, 422, "gt1", "Min-SE: 1900\r\n", NULL), 0);
    int inv2 = last_request(f, g, "INVITE");
    assert_true((size_t)inv2 >= mark);
    assert_header(f, inv2, "Session-Expires", "1900;refresher=uac");
    assert_header(f, inv2, "Min-SE", "1900");
    char v1[128], v2[128];
    assert_int_equal(fx_sent_header(f, inv, "Call-ID", v1, sizeof(v1)), 0);
    assert_int_equal(fx_sent_header(f, inv2, "Call-ID", v2, sizeof(v2)), 0);
    assert_string_equal(v1, v2);
    assert_int_equal(fx_sent_header(f, inv, "CSeq", v1, sizeof(v1)), 0);
    assert_int_equal(fx_sent_header(f, inv2, "CSeq", v2, sizeof(v2)), 0);
    assert_true(atoi(v2) > atoi(v1));
    assert_string_equal(body_of(f, inv), body_of(f, inv2));
    /* alice heard nothing of the 422; nothing went to gw2 */
    assert_int_equal(count_status(f, a, mark, 0), 0);
    assert_int_equal(f->connects, 1);
    assert_int_equal(
        fx_respond(f, g, inv2, 200, "gt1", "Session-Expires: 1900;refresher=uac\r\n", SDP_GW_PLAIN),
        0);
    assert_parleys_srtp(f, last_status(f, a, 200));
}

/* --- inbound ------------------------------------------------------------------ */

static void test_inbound_call_reaches_alice_as_the_callers_number(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a = device(f, "alice");
    uint64_t g = fx_open_from(f, GW1_ADDR ":40000", false, true);
    size_t mark = f->nsent;
    gw_invite(f, g, FX_NUMBER_ALICE, "pstn-call-1@" GW1_ADDR);
    int inv = last_request(f, a, "INVITE");
    assert_true((size_t)inv >= mark);
    char v[300];
    assert_int_equal(fx_sent_header(f, inv, "Call-ID", v, sizeof(v)), 0);
    assert_null(strstr(v, "pstn-call-1"));
    assert_header_has(f, inv, "From", CALLER_PSTN);
    assert_header_has(f, inv, "P-Asserted-Identity", CALLER_PSTN);
    assert_header_has(f, inv, "To", "alice@" FX_DOMAIN);
    assert_text(f, inv, GW1_ADDR, false);
    assert_text(f, inv, "gwfrom1", false);
    assert_parleys_srtp(f, inv);
    /* alice answers: the gateway gets Parley's plain SDP */
    assert_int_equal(fx_respond(f, a, inv, 200, "at1", NULL, FX_SDP_SRTP_ANSWER), 0);
    last_request(f, a, "ACK");
    int ok = last_status(f, g, 200);
    assert_parleys_plain(f, ok);
    assert_text(f, ok, FX_KEY_B, false);
    assert_text(f, ok, "192.0.2.", false);
    assert_header_has(f, ok, "To", "tag=");
    assert_int_equal(anchor_stream_count(t->anchor), 1);
}

/* A gateway on a TCP trunk (not_supported) that offers SRTP: a key of
 * Parley's never goes back over TCP. RTP/SAVP is refused with 488; RTP/AVP
 * with a=crypto (RFC 8643) is taken as plain RTP, the key left unused. */
static void test_tcp_gateway_offering_keys_gets_none(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a = device(f, "alice");
    uint64_t g = fx_open_from(f, GW1_ADDR ":40000", false, true);
    size_t mark = f->nsent;
    gw_invite_sdp(f, g, FX_NUMBER_ALICE, "pstn-srtp-1@" GW1_ADDR, SDP_GW_SRTP);
    int r = last_status(f, g, 488);
    assert_header_has(f, r, "Warning", "plain RTP only");
    assert_int_equal(count_requests(f, a, mark, "INVITE"), 0);
    gw_invite_sdp(f, g, FX_NUMBER_ALICE, "pstn-srtp-2@" GW1_ADDR,
                  SDP_GW_HEAD "m=audio 40000 RTP/AVP 0 101\r\n"
                              "a=rtpmap:0 PCMU/8000\r\n"
                              "a=crypto:1 " FX_SUITE_80 " inline:" KEY_GW "\r\n"
                              "a=sendrecv\r\n");
    int inv = last_request(f, a, "INVITE");
    assert_parleys_srtp(f, inv);
    assert_int_equal(fx_respond(f, a, inv, 200, "at1", NULL, FX_SDP_SRTP_ANSWER), 0);
    int ok = last_status(f, g, 200);
    assert_parleys_plain(f, ok);
    assert_text(f, ok, "a=crypto", false);
}

/* A gateway calling in asks for a session timer (Parley the UAS, RFC 4028
 * §9): granted with the gateway as refresher; a refresh (UPDATE without
 * SDP) moves the expiry; none, and the call ends with Reason 408. One below
 * Min-SE gets 422. */
static void test_inbound_session_timer_granted_and_enforced(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a = device(f, "alice");
    uint64_t g = fx_open_from(f, GW1_ADDR ":40000", false, true);
    gw_invite_full(f, g, FX_NUMBER_ALICE, "pstn-st-0@" GW1_ADDR, SDP_GW_PLAIN,
                   "Supported: timer\r\nSession-Expires: 60\r\n");
    int r = last_status(f, g, 422);
    assert_header(f, r, "Min-SE", "90");
    gw_invite_full(f, g, FX_NUMBER_ALICE, "pstn-st-1@" GW1_ADDR, SDP_GW_PLAIN,
                   "Supported: timer\r\nSession-Expires: 120;refresher=uac\r\n");
    int inv = last_request(f, a, "INVITE");
    assert_int_equal(fx_respond(f, a, inv, 200, "at1", NULL, FX_SDP_SRTP_ANSWER), 0);
    int ok = last_status(f, g, 200);
    assert_header(f, ok, "Session-Expires", "120;refresher=uac");
    assert_header_has(f, ok, "Require", "timer");
    char to[300], peer[NETADDR_STRLEN], text[FX_MSG_MAX];
    assert_int_equal(fx_sent_header(f, ok, "To", to, sizeof(to)), 0);
    netaddr_format(&f->conns[g].peer, peer);
    size_t mark = f->nsent;
    /* the gateway refreshes at 60 s */
    fx_advance(f, 60000);
    int len = snprintf(text, sizeof(text),
                       "UPDATE sip:parley@" FX_DOMAIN " SIP/2.0\r\n"
                       "Via: SIP/2.0/TCP %s;branch=z9hG4bKgwupd1\r\n"
                       "Max-Forwards: 70\r\n"
                       "From: <sip:" CALLER_PSTN "@%s;user=phone>;tag=gwfrom1\r\n"
                       "To: %s\r\n"
                       "Call-ID: pstn-st-1@" GW1_ADDR "\r\n"
                       "CSeq: 2 UPDATE\r\n"
                       "Session-Expires: 120;refresher=uac\r\n"
                       "Content-Length: 0\r\n\r\n",
                       peer, peer, to);
    assert_true(len > 0 && (size_t)len < sizeof(text));
    assert_int_equal(fx_send_text(f, g, text, (size_t)len), 0);
    last_status(f, g, 200);
    fx_advance(f, 60000); /* 120 s: past 88 s after the 2xx, not after the refresh */
    assert_int_equal(count_requests(f, g, mark, "BYE"), 0);
    fx_advance(f, 30000); /* 150 s: 90 s after the refresh, past 120 - 32 */
    int bg = last_request(f, g, "BYE"), ba = last_request(f, a, "BYE");
    assert_header_has(f, bg, "Reason", "cause=408");
    assert_header_has(f, ba, "Reason", "cause=408");
}

/* A gateway that asks for a timer without supporting it (no Supported:
 * timer; a proxy on the way added Session-Expires, RFC 4028 §8): Parley
 * grants it as the refresher, without Require, and refreshes toward the
 * gateway at half the interval. */
static void test_inbound_timer_without_support_parley_refreshes(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a = device(f, "alice");
    uint64_t g = fx_open_from(f, GW1_ADDR ":40000", false, true);
    gw_invite_full(f, g, FX_NUMBER_ALICE, "pstn-st-9@" GW1_ADDR, SDP_GW_PLAIN,
                   "Session-Expires: 60\r\n");
    int inv = last_request(f, a, "INVITE");
    assert_int_equal(fx_respond(f, a, inv, 200, "at1", NULL, FX_SDP_SRTP_ANSWER), 0);
    int ok = last_status(f, g, 200);
    assert_header(f, ok, "Session-Expires", "90;refresher=uas"); /* raised to Min-SE */
    assert_no_header(f, ok, "Require");
    size_t mark = f->nsent;
    fx_advance(f, 44000);
    assert_int_equal(count_requests(f, g, mark, "INVITE"), 0);
    fx_advance(f, 2000); /* 46 s: past half of 90 */
    int re = last_request(f, g, "INVITE");
    assert_true((size_t)re >= mark);
    assert_header_has(f, re, "Session-Expires", "refresher=uac");
    /* an unreadable Session-Expires is refused */
    gw_invite_full(f, g, FX_NUMBER_ALICE, "pstn-st-10@" GW1_ADDR, SDP_GW_PLAIN,
                   "Supported: timer\r\nSession-Expires: -5\r\n");
    last_status(f, g, 400);
}

/* alice (the callee of a gateway's call) puts it on hold: Parley's
 * re-INVITE toward the gateway keeps the gateway the refresher
 * (refresher=uas: Parley is the UAC of that request); the gateway's 2xx
 * saying so leaves Parley no refresher, and the call ends when the gateway
 * stops refreshing. */
static void test_inbound_hold_keeps_the_gateway_refresher(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a = device(f, "alice");
    uint64_t g = fx_open_from(f, GW1_ADDR ":40000", false, true);
    gw_invite_full(f, g, FX_NUMBER_ALICE, "pstn-st-11@" GW1_ADDR, SDP_GW_PLAIN,
                   "Supported: timer\r\nSession-Expires: 120;refresher=uac\r\n");
    int inv = last_request(f, a, "INVITE");
    assert_int_equal(fx_respond(f, a, inv, 200, "at1", NULL, FX_SDP_SRTP_ANSWER), 0);
    last_status(f, g, 200);
    char from[300], to[300], cid[200], peer[NETADDR_STRLEN], text[FX_MSG_MAX];
    assert_int_equal(fx_sent_header(f, inv, "From", from, sizeof(from)), 0);
    assert_int_equal(fx_sent_header(f, inv, "To", to, sizeof(to)), 0);
    assert_int_equal(fx_sent_header(f, inv, "Call-ID", cid, sizeof(cid)), 0);
    netaddr_format(&f->conns[a].peer, peer);
    fx_advance(f, 10000);
    size_t mark = f->nsent;
    int len = snprintf(text, sizeof(text),
                       "INVITE sip:parley@" FX_DOMAIN " SIP/2.0\r\n"
                       "Via: SIP/2.0/TLS %s;branch=z9hG4bKalicehold1\r\n"
                       "Max-Forwards: 70\r\n"
                       "From: %s;tag=at1\r\n"
                       "To: %s\r\n"
                       "Call-ID: %s\r\n"
                       "CSeq: 5 INVITE\r\n"
                       "Contact: <sip:alice@%s;transport=tls>\r\n"
                       "Content-Type: application/sdp\r\n"
                       "Content-Length: %zu\r\n\r\n%s",
                       peer, to, from, cid, peer, strlen(FX_SDP_SRTP_HOLD), FX_SDP_SRTP_HOLD);
    assert_true(len > 0 && (size_t)len < sizeof(text));
    assert_int_equal(fx_send_text(f, a, text, (size_t)len), 0);
    int re = last_request(f, g, "INVITE");
    assert_true((size_t)re >= mark);
    assert_header(f, re, "Session-Expires", "120;refresher=uas");
    assert_int_equal(
        fx_respond(f, g, re, 200, NULL, "Session-Expires: 120;refresher=uas\r\n", SDP_GW_PLAIN), 0);
    last_status(f, a, 200);
    mark = f->nsent;
    /* no refresh from Parley; at 10 + 120 - 32 = 98 s, BYE both ways */
    fx_advance(f, 80000);
    assert_int_equal(count_requests(f, g, mark, "INVITE"), 0);
    assert_int_equal(count_requests(f, g, mark, "BYE"), 0);
    fx_advance(f, 10000);
    assert_header_has(f, last_request(f, g, "BYE"), "Reason", "cause=408");
}

/* The gateway's PRACK for RSeq rseq of its call call_id (To from
 * Parley's provisional i). */
static void gw_prack(struct fx *f, uint64_t g, int i, const char *call_id, unsigned rseq,
                     unsigned cseq)
{
    char to[300], peer[NETADDR_STRLEN], text[FX_MSG_MAX];
    assert_int_equal(fx_sent_header(f, i, "To", to, sizeof(to)), 0);
    netaddr_format(&f->conns[g].peer, peer);
    int len = snprintf(text, sizeof(text),
                       "PRACK sip:parley@" FX_DOMAIN " SIP/2.0\r\n"
                       "Via: SIP/2.0/TCP %s;branch=z9hG4bKgwprack%u\r\n"
                       "Max-Forwards: 70\r\n"
                       "From: <sip:" CALLER_PSTN "@%s;user=phone>;tag=gwfrom1\r\n"
                       "To: %s\r\n"
                       "Call-ID: %s\r\n"
                       "CSeq: %u PRACK\r\n"
                       "RAck: %u 1 INVITE\r\n"
                       "Content-Length: 0\r\n\r\n",
                       peer, rseq, peer, to, call_id, cseq, rseq);
    assert_true(len > 0 && (size_t)len < sizeof(text));
    assert_int_equal(fx_send_text(f, g, text, (size_t)len), 0);
}

/* A gateway calling in that requires 100rel: Parley's provisionals toward
 * it are reliable, one at a time (a second waits... and is dropped while
 * the first is unacknowledged), and the 2xx waits for the PRACK of one
 * that carried SDP. */
static void test_inbound_100rel_required(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a = device(f, "alice");
    uint64_t g = fx_open_from(f, GW1_ADDR ":40000", false, true);
    const char *cid = "pstn-rel-1@" GW1_ADDR;
    gw_invite_full(f, g, FX_NUMBER_ALICE, cid, SDP_GW_PLAIN, "Require: 100rel\r\n");
    int inv = last_request(f, a, "INVITE");
    assert_int_equal(fx_respond(f, a, inv, 180, "at1", NULL, NULL), 0);
    int r180 = last_status(f, g, 180);
    assert_header_has(f, r180, "Require", "100rel");
    assert_header(f, r180, "RSeq", "1");
    /* alice's 183 with early media while the 180 is unacknowledged: held */
    size_t mark = f->nsent;
    assert_int_equal(fx_respond(f, a, inv, 183, "at1", NULL, FX_SDP_SRTP_ANSWER), 0);
    assert_int_equal(count_status(f, g, mark, 183), 0);
    /* a PRACK for another RSeq acknowledges nothing */
    gw_prack(f, g, r180, cid, 7, 2);
    last_status(f, g, 481);
    gw_prack(f, g, r180, cid, 1, 3);
    last_status(f, g, 200);
    /* now the 183 with SDP goes, reliably; the 2xx waits for its PRACK */
    assert_int_equal(fx_respond(f, a, inv, 183, "at1", NULL, FX_SDP_SRTP_ANSWER), 0);
    int r183 = last_status(f, g, 183);
    assert_header(f, r183, "RSeq", "2");
    assert_parleys_plain(f, r183);
    mark = f->nsent;
    assert_int_equal(fx_respond(f, a, inv, 200, "at1", NULL, FX_SDP_SRTP_ANSWER), 0);
    assert_int_equal(count_status(f, g, mark, 200), 0);
    gw_prack(f, g, r183, cid, 2, 4);
    assert_int_equal(count_status(f, g, mark, 200), 2); /* the PRACK's, the INVITE's */
}

static void test_inbound_from_elsewhere_is_refused(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a = device(f, "alice");
    /* on the trunk listener, from an address that is no trunk's */
    uint64_t x = fx_open_from(f, "203.0.113.99:40000", false, true);
    size_t mark = f->nsent;
    gw_invite(f, x, FX_NUMBER_ALICE, "pstn-call-2@203.0.113.99");
    int r = fx_last_on(f, x);
    if (fx_sent_status(f, r) < 400) {
        dump(f);
        fail_msg("an INVITE from no trunk's address was not refused");
    }
    /* from a trunk's address, but not on the trunk listener */
    uint64_t y = fx_open_from(f, GW1_ADDR ":40001", false, false);
    gw_invite(f, y, FX_NUMBER_ALICE, "pstn-call-3@" GW1_ADDR);
    r = fx_last_on(f, y);
    if (fx_sent_status(f, r) < 400) {
        dump(f);
        fail_msg("an INVITE off the trunk listener was not refused");
    }
    assert_int_equal(count_requests(f, a, mark, "INVITE"), 0);
    assert_int_equal(proxy_b2bua_count(f->proxy), 0);
}

static void test_inbound_for_nobodys_number_gets_404(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a = device(f, "alice");
    uint64_t g = fx_open_from(f, GW1_ADDR ":40000", false, true);
    size_t mark = f->nsent;
    gw_invite(f, g, "+14255550177", "pstn-call-4@" GW1_ADDR);
    last_status(f, g, 404);
    assert_int_equal(count_requests(f, a, mark, "INVITE"), 0);
    /* nor does a gateway's call to a number leave through a trunk */
    gw_invite(f, g, US_NUMBER, "pstn-call-5@" GW1_ADDR);
    last_status(f, g, 404);
    assert_int_equal(f->connects, 0);
}

/* The gateway cancels its INVITE while alice's two devices ring: both are
 * cancelled, the gateway gets 487. */
static void test_inbound_cancel_from_gateway(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a1 = device(f, "alice"), a2 = device(f, "alice");
    uint64_t g = fx_open_from(f, GW1_ADDR ":40000", false, true);
    gw_invite(f, g, FX_NUMBER_ALICE, "pstn-call-6@" GW1_ADDR);
    int i1 = last_request(f, a1, "INVITE"), i2 = last_request(f, a2, "INVITE");
    respond(f, a1, i1, 180, "at1", NULL);
    respond(f, a2, i2, 180, "at2", NULL);
    last_status(f, g, 180);
    size_t mark = f->nsent;
    char text[FX_MSG_MAX], peer[NETADDR_STRLEN];
    netaddr_format(&f->conns[g].peer, peer);
    int len = snprintf(text, sizeof(text),
                       "CANCEL sip:" FX_NUMBER_ALICE "@" FX_DOMAIN ";user=phone SIP/2.0\r\n"
                       "Via: SIP/2.0/TCP %s;branch=z9hG4bKgwinvpstn-call-6@" GW1_ADDR "\r\n"
                       "Max-Forwards: 70\r\n"
                       "From: <sip:" CALLER_PSTN "@%s;user=phone>;tag=gwfrom1\r\n"
                       "To: <sip:" FX_NUMBER_ALICE "@" FX_DOMAIN ";user=phone>\r\n"
                       "Call-ID: pstn-call-6@" GW1_ADDR "\r\n"
                       "CSeq: 1 CANCEL\r\n"
                       "Content-Length: 0\r\n\r\n",
                       peer, peer);
    assert_int_equal(fx_send_text(f, g, text, (size_t)len), 0);
    assert_int_equal(count_status_for(f, g, mark, 200, "CANCEL"), 1);
    assert_int_equal(count_status_for(f, g, mark, 487, "INVITE"), 1);
    assert_int_equal(count_requests(f, a1, mark, "CANCEL"), 1);
    assert_int_equal(count_requests(f, a2, mark, "CANCEL"), 1);
    respond(f, a1, i1, 487, "at1", NULL);
    respond(f, a2, i2, 487, "at2", NULL);
    assert_int_equal(count_status_for(f, g, mark, 487, "INVITE"), 1);
    fx_advance(f, 40000);
    assert_int_equal(proxy_b2bua_count(f->proxy), 0);
}

/* alice answers on one device (the other is cancelled) and hangs up: the
 * BYE goes to the gateway in its own dialog. */
static void test_inbound_answered_then_bye_from_alice(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a1 = device(f, "alice"), a2 = device(f, "alice");
    uint64_t g = fx_open_from(f, GW1_ADDR ":40000", false, true);
    gw_invite(f, g, FX_NUMBER_ALICE, "pstn-call-7@" GW1_ADDR);
    int i1 = last_request(f, a1, "INVITE"), i2 = last_request(f, a2, "INVITE");
    respond(f, a2, i2, 180, "at2", NULL);
    size_t mark = f->nsent;
    respond(f, a1, i1, 200, "at1", FX_SDP_SRTP_ANSWER);
    last_request(f, a1, "ACK");
    assert_int_equal(count_requests(f, a2, mark, "CANCEL"), 1);
    int ok = last_status(f, g, 200);
    char to[256], tag[64];
    assert_int_equal(fx_sent_header(f, ok, "To", to, sizeof(to)), 0);
    fx_tag_of(to, tag, sizeof(tag));
    assert_true(tag[0] != '\0');
    assert_string_not_equal(tag, "at1");
    /* alice hangs up in her dialog with Parley */
    char call_id[128], from[256], contact[256], text[FX_MSG_MAX];
    assert_int_equal(fx_sent_header(f, i1, "Call-ID", call_id, sizeof(call_id)), 0);
    assert_int_equal(fx_sent_header(f, i1, "From", from, sizeof(from)), 0);
    assert_int_equal(fx_sent_header(f, i1, "Contact", contact, sizeof(contact)), 0);
    char ptag[64];
    fx_tag_of(from, ptag, sizeof(ptag));
    int len = snprintf(text, sizeof(text),
                       "BYE %.*s SIP/2.0\r\n"
                       "Via: SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bKalicebye1\r\n"
                       "Max-Forwards: 70\r\n"
                       "From: <sip:alice@" FX_DOMAIN ">;tag=at1\r\n"
                       "To: %s\r\n"
                       "Call-ID: %s\r\n"
                       "CSeq: 1 BYE\r\n"
                       "Content-Length: 0\r\n\r\n",
                       (int)strcspn(contact + 1, ">"), contact + 1, from, call_id);
    mark = f->nsent;
    assert_int_equal(fx_send_text(f, a1, text, (size_t)len), 0);
    last_status(f, a1, 200);
    int bye = last_request(f, g, "BYE");
    assert_true((size_t)bye >= mark);
    assert_header(f, bye, "Call-ID", "pstn-call-7@" GW1_ADDR);
    assert_header_has(f, bye, "To", "tag=gwfrom1");
    assert_header_has(f, bye, "From", tag);
    assert_text(f, bye, "alice", false);
    assert_int_equal(anchor_stream_count(t->anchor), 0);
}

/* alice's only device is busy: the gateway gets 486; with no device at
 * all, 480. */
static void test_inbound_busy_and_unregistered(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t g = fx_open_from(f, GW1_ADDR ":40000", false, true);
    gw_invite(f, g, FX_NUMBER_BOB, "pstn-call-8@" GW1_ADDR);
    last_status(f, g, 480);
    uint64_t a = device(f, "alice");
    gw_invite(f, g, FX_NUMBER_ALICE, "pstn-call-9@" GW1_ADDR);
    respond(f, a, last_request(f, a, "INVITE"), 486, "at1", NULL);
    last_request(f, a, "ACK");
    last_status(f, g, 486);
}

/* --- a TLS trunk with srtp_mode required ------------------------------------- */

/* alice calls UK_NUMBER; the TLS gateway's connection opens with its
 * certificate (or none); returns it. */
static uint64_t call_out_tls(struct med *t, struct call *c, uint64_t a, bool cert)
{
    struct fx *f = &t->fx;
    size_t before = f->connects;
    call_start(f, c, a, "alice", UK_NUMBER, FX_SDP_SRTP_OFFER, NULL);
    assert_int_equal(f->connects, before + 1);
    uint64_t g = f->nconns;
    assert_true(f->conns[g].tls);
    if (cert) {
        f->conns[g].peer_cert = t->gws_cert;
        f->conns[g].peer_cert_verified = true;
    }
    fx_open_reserved(f, g);
    return g;
}

static void test_tls_trunk_required_refuses_plain_answer(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a = fx_open(f);
    struct call c;
    uint64_t g = call_out_tls(t, &c, a, true);
    int inv = last_request(f, g, "INVITE");
    const char *offer = body_of(f, inv);
    assert_non_null(strstr(offer, PARLEYS));
    assert_non_null(strstr(offer, " RTP/SAVP "));
    assert_non_null(strstr(offer, "a=crypto:"));
    assert_null(strstr(offer, FX_KEY_A));
    size_t mark = f->nsent;
    assert_int_equal(fx_respond(f, g, inv, 200, "gt1", NULL, SDP_GW_PLAIN), 0);
    assert_int_equal(count_requests(f, g, mark, "ACK"), 1);
    assert_int_equal(count_requests(f, g, mark, "BYE"), 1);
    int r = last_status(f, a, 488);
    assert_header_has(f, r, "Warning", "requires SRTP");
    assert_header_has(f, last_request(f, g, "BYE"), "Reason", "cause=488");
    assert_int_equal(count_status_for(f, a, mark, 200, "INVITE"), 0);
    assert_int_equal(anchor_stream_count(t->anchor), 0);
}

static void test_tls_trunk_required_takes_srtp_answer(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a = fx_open(f);
    struct call c;
    uint64_t g = call_out_tls(t, &c, a, true);
    int inv = last_request(f, g, "INVITE");
    char k_gw[48];
    const char *k = strstr(body_of(f, inv), "inline:");
    assert_non_null(k);
    snprintf(k_gw, sizeof(k_gw), "%.40s", k + 7);
    assert_int_equal(fx_respond(f, g, inv, 200, "gt1", NULL, SDP_GW_SRTP), 0);
    last_request(f, g, "ACK");
    int ok = last_status(f, a, 200);
    assert_parleys_srtp(f, ok);
    /* each leg has a key of its own */
    assert_null(strstr(body_of(f, ok), k_gw));
    assert_int_equal(count_requests(f, g, 0, "BYE"), 0);
}

/* srtp_mode optional (RFC 8643): the gateway is offered RTP/AVP with an
 * a=crypto of Parley's; it may take the key (SRTP on its leg) or leave
 * it (plain RTP), and the call goes on either way. */
static void optional_mode(struct med *t)
{
    static const struct proxy_trunk_def defs[] = {
        {"gw1", GW1_ADDR ":5068", "tcp", "not_supported", GW1_ADDR},
        {"gw2", GW2_ADDR ":5068", "tcp", "not_supported", GW2_ADDR},
        {"gws", GWS_ADDR ":5061", "tls", "optional", ""},
    };
    char err[200];
    assert_int_equal(proxy_set_trunks(t->fx.proxy, defs, 3, err, sizeof(err)), 0);
}

static void test_tls_trunk_optional_offers_rtp_avp_with_a_key(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    optional_mode(t);
    uint64_t g = 0;
    for (int taken = 0; taken < 2; taken++) {
        uint64_t a = fx_open(f);
        struct call c;
        if (!g)
            g = call_out_tls(t, &c, a, true);
        else /* the trunk's connection is up: the next call takes it */
            call_start(f, &c, a, "alice", UK_NUMBER, FX_SDP_SRTP_OFFER, NULL);
        int inv = last_request(f, g, "INVITE");
        const char *offer = body_of(f, inv);
        assert_non_null(strstr(offer, " RTP/AVP "));
        assert_null(strstr(offer, " RTP/SAVP "));
        assert_non_null(strstr(offer, "a=crypto:"));
        assert_null(strstr(offer, FX_KEY_A));
        size_t mark = f->nsent;
        /* RFC 8643: an answerer that takes the key says so in RTP/AVP */
        const char *answer = taken ? SDP_GW_HEAD "m=audio 40000 RTP/AVP 0 101\r\n"
                                                 "a=rtpmap:0 PCMU/8000\r\n"
                                                 "a=crypto:1 " FX_SUITE_80 " inline:" KEY_GW "\r\n"
                                                 "a=sendrecv\r\n"
                                   : SDP_GW_PLAIN;
        assert_int_equal(fx_respond(f, g, inv, 200, taken ? "gt2" : "gt1", NULL, answer), 0);
        assert_int_equal(count_requests(f, g, mark, "ACK"), 1);
        assert_int_equal(count_requests(f, g, mark, "BYE"), 0);
        int ok = last_status(f, a, 200);
        assert_parleys_srtp(f, ok);
        call_note_answer(f, &c, ok);
        call_ack(f, &c, c.cseq, NULL);
        call_caller_request(f, &c, a, "BYE", c.cseq + 1, NULL, NULL);
        last_status(f, a, 200);
        fx_run(f);
        const char *media = f->nrecords ? f->records[f->nrecords - 1].media : "";
        assert_non_null(strstr(media, taken ? "gateway leg SRTP AES_CM_128_HMAC_SHA1_80 (RFC 8643)"
                                            : "gateway leg RTP (trunk gws: optional)"));
    }
}

static void test_tls_trunk_without_certificate_is_refused(void **state)
{
    struct med *t = *state;
    struct fx *f = &t->fx;
    uint64_t a = fx_open(f);
    struct call c;
    uint64_t g = call_out_tls(t, &c, a, false);
    assert_int_equal(f->disconnects, 1);
    assert_int_equal(fx_count_on(f, g), 0);
    last_status(f, a, 503);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup_med, teardown_med)
    const struct CMUnitTest tests[] = {
        T(test_outbound_call_is_two_dialogs),
        T(test_bye_from_gateway_reaches_alice),
        T(test_privacy_id_makes_from_anonymous),
        T(test_503_fails_over_to_the_next_trunk),
        T(test_failover_after_early_media_keeps_alices_leg),
        T(test_503_retry_after_skips_the_trunk_for_a_while),
        T(test_486_is_no_failover),
        T(test_603_is_no_failover),
        T(test_connection_failure_tries_next_trunk),
        T(test_no_trunk_left_gets_503),
        T(test_connection_lost_while_calling_tries_next_trunk),
        T(test_gateways_silent_gets_408),
        T(test_no_outbound_rights_gets_403),
        T(test_gateway_challenge_becomes_403),
        T(test_gateway_redirect_becomes_502),
        T(test_cancel_before_provisional),
        T(test_cancel_while_the_trunk_connects),
        T(test_200_crossing_cancel_is_acked_and_ended),
        T(test_caller_gone_while_ringing_cancels),
        T(test_2xx_retransmission_is_acked_again),
        T(test_bye_after_trunk_connection_dropped),
        T(test_hold_then_resume_at_once),
        T(test_update_from_gateway_reaches_alice),
        T(test_reliable_183_gets_prack),
        T(test_reinvite_glare_gets_491),
        T(test_reinvite_without_sdp_answered_by_parley),
        T(test_session_timer_parley_refreshes),
        T(test_session_timer_expiry_ends_the_call),
        T(test_422_retries_with_the_gateways_min_se),
        T(test_inbound_call_reaches_alice_as_the_callers_number),
        T(test_tcp_gateway_offering_keys_gets_none),
        T(test_inbound_session_timer_granted_and_enforced),
        T(test_inbound_timer_without_support_parley_refreshes),
        T(test_inbound_hold_keeps_the_gateway_refresher),
        T(test_inbound_100rel_required),
        T(test_inbound_from_elsewhere_is_refused),
        T(test_inbound_for_nobodys_number_gets_404),
        T(test_inbound_cancel_from_gateway),
        T(test_inbound_answered_then_bye_from_alice),
        T(test_inbound_busy_and_unregistered),
        T(test_tls_trunk_required_refuses_plain_answer),
        T(test_tls_trunk_required_takes_srtp_answer),
        T(test_tls_trunk_optional_offers_rtp_avp_with_a_key),
        T(test_tls_trunk_without_certificate_is_refused),
    };
#undef T
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
