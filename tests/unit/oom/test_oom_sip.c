/*
 * Allocation failures in the SIP message code: parsing, editing, printing
 * and building responses, each allocation failed in turn (oom.h). Every
 * scenario frees what it made on every path and returns 0, -ENOMEM, or
 * oom_bad() on a wrong result (a message refused as malformed because
 * memory ran out is a wrong result).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/strbuf.h"
#include "oom.h"
#include "sip/build.h"
#include "sip/msg.h"

/* --- messages ------------------------------------------------------------- */

#define SDP                                                                                        \
    "v=0\r\n"                                                                                      \
    "o=alice 2890844526 2890844526 IN IP4 198.51.100.10\r\n"                                       \
    "s=-\r\n"                                                                                      \
    "c=IN IP4 198.51.100.10\r\n"                                                                   \
    "t=0 0\r\n"                                                                                    \
    "m=audio 49170 RTP/SAVP 0 8 97\r\n"                                                            \
    "a=rtpmap:0 PCMU/8000\r\n"                                                                     \
    "a=rtpmap:8 PCMA/8000\r\n"                                                                     \
    "a=rtpmap:97 opus/48000/2\r\n"                                                                 \
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r\n"

static const char invite[] =
    "INVITE sip:bob@example.com SIP/2.0\r\n"
    "Via: SIP/2.0/TLS pc33.example.com:5061;branch=z9hG4bK776asdhds;rport\r\n"
    "Max-Forwards: 70\r\n"
    "Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
    "To: Bob <sip:bob@example.com>\r\n"
    "From: \"Alice Liddell\" <sip:alice@example.com>;tag=1928301774\r\n"
    "Call-ID: a84b4c76e66710@pc33.example.com\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Contact: <sip:alice@pc33.example.com;transport=tls>;+sip.instance=\"<urn:uuid:00000000-"
    "0000-1000-8000-000a95a0e128>\"\r\n"
    "Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, MESSAGE, SUBSCRIBE, INFO,\r\n"
    " UPDATE, PRACK\r\n"
    "k: replaces, timer, 100rel\r\n"
    "Session-Expires: 1800;refresher=uac\r\n"
    "Min-SE: 90\r\n"
    "User-Agent: Linphone/5.2.0 (belle-sip/5.2.0)\r\n"
    "Subject: lunch\r\n"
    "P-Preferred-Identity: <sip:alice@example.com>\r\n"
    "Accept: application/sdp, multipart/mixed\r\n"
    "Date: Sat, 13 Nov 2010 23:29:00 GMT\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: 278\r\n"
    "\r\n" SDP;

static const char register_auth[] =
    "REGISTER sip:example.com SIP/2.0\r\n"
    "Via: SIP/2.0/TLS 192.0.2.44:53211;branch=z9hG4bKnashds7;rport;alias\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:alice@example.com>;tag=a73kszlfl\r\n"
    "To: <sip:alice@example.com>\r\n"
    "Call-ID: 1j9FpLxk3uxtm8tn@192.0.2.44\r\n"
    "CSeq: 2 REGISTER\r\n"
    "Contact: <sip:alice@192.0.2.44:53211;transport=tls;ob>;reg-id=1;"
    "+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>\";expires=3600\r\n"
    "Authorization: Digest username=\"alice\", realm=\"example.com\",\r\n"
    "  nonce=\"ea9c8e88df84f1cec4341ae6cbe5a359\", opaque=\"\",\r\n"
    "  uri=\"sip:example.com\", algorithm=SHA-256, qop=auth, nc=00000001,\r\n"
    "  cnonce=\"0a4f113b\",\r\n"
    "  response=\"dfe56131d1958046689d83306477ecc0e96d33b1d6d0ad3a0a1ea8d1b3a0c7ed\"\r\n"
    "Supported: path, outbound, gruu\r\n"
    "Expires: 3600\r\n"
    "User-Agent: Parley-test/1.0\r\n"
    "Content-Length: 0\r\n"
    "\r\n";

static const char response_vias[] =
    "SIP/2.0 180 Ringing\r\n"
    "Via: SIP/2.0/TLS p2.example.com;branch=z9hG4bKp2x;received=192.0.2.2,\r\n"
    " SIP/2.0/TLS p1.example.com;branch=z9hG4bKp1x;received=192.0.2.1\r\n"
    "v: SIP/2.0/TLS pc33.example.com:5061;branch=z9hG4bK776asdhds;rport=5061;"
    "received=198.51.100.10\r\n"
    "Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\r\n"
    "To: Bob <sip:bob@example.com>;tag=a6c85cf\r\n"
    "From: \"Alice Liddell\" <sip:alice@example.com>;tag=1928301774\r\n"
    "Call-ID: a84b4c76e66710@pc33.example.com\r\n"
    "Contact: <sip:bob@192.0.2.4;transport=tls>\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Require: 100rel\r\n"
    "RSeq: 1\r\n"
    "Content-Length: 0\r\n"
    "\r\n";

/* Built by make_long_chain(): a request after a long proxy chain, more
 * short headers than the message's first arena chunk holds, and a
 * Content-Type with LWS (copied to the arena in canonical form). */
static char long_chain[16384];
static size_t long_chain_len;

static void make_long_chain(void)
{
    struct strbuf b = STRBUF_INIT;

    strbuf_puts(&b, "MESSAGE sip:bob@example.com SIP/2.0\r\n");
    for (int i = 0; i < 30; i++)
        strbuf_printf(&b, "v: SIP/2.0/TLS p%d;branch=z9hG4bK%d\r\n", i, i);
    for (int i = 0; i < 200; i++)
        strbuf_printf(&b, "Record-Route: <sip:p%d;lr>\r\n", i);
    strbuf_puts(&b, "f: <sip:alice@example.com>;tag=1\r\n"
                    "t: <sip:bob@example.com>\r\n"
                    "i: chain@example.com\r\n"
                    "CSeq: 1 MESSAGE\r\n"
                    "Max-Forwards: 30\r\n"
                    "c: text / plain ; charset=utf-8\r\n"
                    "l: 5\r\n"
                    "\r\n"
                    "hello");
    assert_int_equal(b.err, 0);
    assert_true(b.len < sizeof(long_chain));
    memcpy(long_chain, b.p, b.len);
    long_chain_len = b.len;
    strbuf_free(&b);
}

/* --- helpers ---------------------------------------------------------------- */

static bool view_is(struct strview v, const char *s)
{
    return v.p && strview_eq(v, s);
}

/* Parses text; 0 with *out, -ENOMEM (checked to be reported as such), or
 * OOM_BAD. */
static int parse(const char *text, size_t len, struct sip_msg **out)
{
    struct sip_parse_error err;
    int rc = sip_msg_parse(text, len, out, &err);

    if (rc == 0)
        return 0;
    if (*out)
        return oom_bad("sip_msg_parse returned %d and a message", rc);
    if (rc != -ENOMEM)
        return oom_bad("sip_msg_parse refused the message: %d, %d %s", rc, err.status, err.reason);
    if (err.status != 0 || strcmp(err.reason, "out of memory") != 0)
        return oom_bad("sip_msg_parse: -ENOMEM with error %d \"%s\"", err.status, err.reason);
    return rc;
}

/* --- parsing --------------------------------------------------------------- */

struct parse_case {
    const char *text;
    size_t len;
    bool is_request;
    const char *call_id;
    uint32_t cseq;
    size_t vias; /* Via values */
    size_t body;
    const char *content_type;
};

static int scenario_parse(void *arg)
{
    const struct parse_case *pc = arg;
    struct sip_msg *m;
    struct sip_value_iter it;
    struct strview v;
    size_t vias = 0;
    int rc = parse(pc->text, pc->len, &m);

    if (rc)
        return rc;
    sip_value_iter_init(&it, m, SIP_HDR_VIA);
    while (sip_value_iter_next(&it, &v))
        vias++;
    if (m->is_request != pc->is_request || !view_is(m->call_id, pc->call_id) ||
        m->cseq_num != pc->cseq || vias != pc->vias || m->body.n != pc->body ||
        (pc->content_type && !view_is(m->content_type, pc->content_type)))
        rc = oom_bad("parsed values differ: call-id %.*s cseq %u vias %zu body %zu",
                     (int)m->call_id.n, m->call_id.p, m->cseq_num, vias, m->body.n);
    sip_msg_free(m);
    return rc;
}

static const struct oom_opts strict = {.require_enomem = true};

static void run_parse(const char *name, const struct parse_case *pc)
{
    struct oom_stats st;

    assert_int_equal(oom_run_opts(name, scenario_parse, (void *)pc, &strict, &st), 0);
    assert_true(st.allocs >= 1);
}

static void test_parse_invite(void **state)
{
    (void)state;
    const struct parse_case pc = {
        invite,          sizeof(invite) - 1, true, "a84b4c76e66710@pc33.example.com", 314159, 1,
        sizeof(SDP) - 1, "application/sdp"};
    run_parse("parse INVITE with SDP", &pc);
}

static void test_parse_register(void **state)
{
    (void)state;
    const struct parse_case pc = {
        register_auth, sizeof(register_auth) - 1, true, "1j9FpLxk3uxtm8tn@192.0.2.44", 2, 1, 0,
        NULL};
    run_parse("parse REGISTER with Authorization", &pc);
}

static void test_parse_response(void **state)
{
    (void)state;
    const struct parse_case pc = {response_vias,
                                  sizeof(response_vias) - 1,
                                  false,
                                  "a84b4c76e66710@pc33.example.com",
                                  314159,
                                  3,
                                  0,
                                  NULL};
    run_parse("parse 180 with Via list", &pc);
}

static void test_parse_long_chain(void **state)
{
    (void)state;
    struct oom_stats st;
    const struct parse_case pc = {long_chain, long_chain_len, true, "chain@example.com", 1, 30,
                                  5,          "text/plain"};

    assert_int_equal(oom_run_opts("parse MESSAGE with 236 short headers", scenario_parse,
                                  (void *)&pc, &strict, &st),
                     0);
    /* The message block, arena chunks, and the canonical Content-Type. */
    assert_true(st.allocs >= 2);
}

/* --- editing and printing --------------------------------------------------- */

static char big_body[4096];

/* Runs the edits a proxy and a B2BUA make, prints, parses the print. */
static int scenario_edit_print(void *arg)
{
    (void)arg;
    struct sip_msg *m, *again = NULL;
    struct strbuf out = STRBUF_INIT;
    int rc = parse(invite, sizeof(invite) - 1, &m);

    if (rc)
        return rc;
    if ((rc = sip_msg_hdr_prepend(m, SIP_HDR_VIA, NULL,
                                  strview_cstr("SIP/2.0/TLS proxy.example.net:5061;branch="
                                               "z9hG4bK-oom-1"))))
        goto out;
    if ((rc = sip_msg_hdr_prepend(m, SIP_HDR_RECORD_ROUTE, NULL,
                                  strview_cstr("<sip:proxy.example.net;transport=tls;lr>"))))
        goto out;
    if ((rc = sip_msg_hdr_remove_first_value(m, SIP_HDR_ROUTE)))
        goto out;
    if ((rc = sip_msg_hdr_append(m, SIP_HDR_OTHER, "X-Parley-Trace", strview_cstr(" oom-1 "))))
        goto out;
    /* A value already in the arena is not copied again. */
    struct strview owned = sip_msg_printf(m, "%s;%s", "<sip:alice@example.com>", "tag=x");
    if (!owned.p) {
        rc = -ENOMEM;
        goto out;
    }
    if ((rc = sip_msg_hdr_append(m, SIP_HDR_P_ASSERTED_IDENTITY, NULL, owned)))
        goto out;
    struct strview dup = sip_msg_strdup(m, big_body, 1500);
    if (!dup.p) {
        rc = -ENOMEM;
        goto out;
    }
    if ((rc = sip_msg_hdr_append(m, SIP_HDR_OTHER, "X-Long", dup)))
        goto out;
    struct sip_hdr *subject = sip_msg_hdr_first(m, SIP_HDR_SUBJECT);
    if (!subject) {
        rc = oom_bad("no Subject");
        goto out;
    }
    if ((rc = sip_msg_hdr_set_value(m, subject, strview_cstr("dinner"))))
        goto out;
    if ((rc = sip_msg_set_request_uri(m, strview_cstr("sip:bob@192.0.2.7:5061;transport=tls"))))
        goto out;
    if ((rc = sip_msg_set_max_forwards(m, 69)))
        goto out;
    if ((rc = sip_msg_set_body(m, strview_cstr("application / sdp"),
                               strview_make(big_body, sizeof(big_body)))))
        goto out;

    if ((rc = sip_msg_print(m, &out)))
        goto out;
    if ((rc = parse(out.p, out.len, &again)))
        goto out;
    struct sip_via via;
    if (sip_msg_top_via(again, &via) || !view_is(via.host, "proxy.example.net") ||
        again->max_forwards != 69 || again->body.n != sizeof(big_body) ||
        memcmp(again->body.p, big_body, sizeof(big_body)) != 0 ||
        !view_is(again->content_type, "application/sdp") ||
        !view_is(again->request_uri, "sip:bob@192.0.2.7:5061;transport=tls") ||
        sip_msg_hdr_count(again, SIP_HDR_ROUTE) != 1 ||
        !sip_msg_hdr_find_name(again, "X-Parley-Trace") ||
        !view_is(sip_msg_hdr_first(again, SIP_HDR_SUBJECT)->value, "dinner"))
        rc = oom_bad("the printed message differs:\n%.*s", (int)out.len, out.p);
out:
    if (rc == -EINVAL)
        rc = oom_bad("an edit returned -EINVAL");
    sip_msg_free(again);
    sip_msg_free(m);
    strbuf_free(&out);
    return rc;
}

static void test_edit_print(void **state)
{
    (void)state;
    assert_int_equal(
        oom_run_opts("edit and print INVITE", scenario_edit_print, NULL, &strict, NULL), 0);
}

/* sip_msg_print of a message as parsed, into a buffer that grows; the
 * print parses back to the same values. */
static int scenario_print_response(void *arg)
{
    (void)arg;
    struct sip_msg *m, *again = NULL;
    struct strbuf out = STRBUF_INIT;
    int rc = parse(response_vias, sizeof(response_vias) - 1, &m);

    if (rc)
        return rc;
    if ((rc = sip_msg_print(m, &out)))
        goto out;
    if ((rc = parse(out.p, out.len, &again)))
        goto out;
    if (again->status != 180 || !view_is(again->reason, "Ringing") ||
        sip_msg_hdr_count(again, SIP_HDR_VIA) != 2 ||
        sip_msg_hdr_count(again, SIP_HDR_CONTENT_LENGTH) != 1 ||
        !strview_eq_view(again->call_id, m->call_id))
        rc = oom_bad("printed %zu bytes:\n%.*s", out.len, (int)out.len, out.p);
out:
    sip_msg_free(again);
    sip_msg_free(m);
    strbuf_free(&out);
    return rc;
}

static void test_print_response(void **state)
{
    (void)state;
    assert_int_equal(oom_run_opts("print 180", scenario_print_response, NULL, &strict, NULL), 0);
}

/* --- building responses ------------------------------------------------------ */

/* Appends after "KEEP"; on failure nothing may have been appended. */
static int build_checked(const struct sip_msg *req, int status, const char *to_tag,
                         const char *extra, const char *ctype, struct strview body,
                         struct strbuf *out)
{
    strbuf_puts(out, "KEEP");
    if (out->err)
        return out->err;
    int rc = sip_build_response(req, status, NULL, to_tag, extra, ctype, body, out);
    if (rc && (out->len != 4 || memcmp(out->p, "KEEP", 4) != 0))
        return oom_bad("sip_build_response failed (%d) but left %zu bytes", rc, out->len);
    return rc;
}

static int scenario_build(void *arg)
{
    (void)arg;
    struct sip_msg *req, *resp = NULL;
    struct strbuf a = STRBUF_INIT, b = STRBUF_INIT;
    int rc = parse(register_auth, sizeof(register_auth) - 1, &req);

    if (rc)
        return rc;
    rc = build_checked(req, 401, "8f7e6d",
                       "WWW-Authenticate: Digest realm=\"example.com\", qop=\"auth\", "
                       "algorithm=SHA-256, nonce=\"0cd0bd27b4a4a0f2a36d7a2c4f0c7e6e\", "
                       "opaque=\"\", stale=FALSE\r\n",
                       NULL, STRVIEW_EMPTY, &a);
    if (rc)
        goto out;
    if ((rc = parse(a.p + 4, a.len - 4, &resp)))
        goto out;
    struct sip_addr to;
    if (resp->status != 401 || sip_msg_to(resp, &to) || !view_is(to.tag, "8f7e6d") ||
        !sip_msg_hdr_first(resp, SIP_HDR_WWW_AUTHENTICATE)) {
        rc = oom_bad("wrong 401:\n%s", a.p);
        goto out;
    }
    rc = build_checked(req, 200, "8f7e6d",
                       "Contact: <sip:alice@192.0.2.44:53211;transport=tls;ob>;expires=3600\r\n"
                       "Date: Sat, 13 Nov 2010 23:29:00 GMT\r\n",
                       "text/plain", strview_make(big_body, 600), &b);
out:
    if (rc == -EINVAL)
        rc = oom_bad("sip_build_response returned -EINVAL");
    sip_msg_free(resp);
    sip_msg_free(req);
    strbuf_free(&a);
    strbuf_free(&b);
    return rc;
}

static void test_build_response(void **state)
{
    (void)state;
    assert_int_equal(
        oom_run_opts("build 401 and 200 to REGISTER", scenario_build, NULL, &strict, NULL), 0);
}

/* A request that does not parse, answered from its raw bytes. */
static const char bad_cseq[] = "INVITE sip:bob@example.com SIP/2.0\r\n"
                               "Via: SIP/2.0/TLS p1.example.com;branch=z9hG4bKp1,\r\n"
                               " SIP/2.0/TLS pc33.example.com;branch=z9hG4bKc\r\n"
                               "From: <sip:alice@example.com>;tag=1\r\n"
                               "To: <sip:bob@example.com>\r\n"
                               "Call-ID: raw@example.com\r\n"
                               "CSeq: nine INVITE\r\n"
                               "Content-Length: 0\r\n"
                               "\r\n";

static int scenario_error_from_raw(void *arg)
{
    (void)arg;
    struct sip_msg *m;
    struct sip_parse_error err;
    struct strbuf out = STRBUF_INIT;
    int rc = sip_msg_parse(bad_cseq, sizeof(bad_cseq) - 1, &m, &err);

    if (rc == -ENOMEM)
        return rc;
    if (rc != -EINVAL || err.status != 400)
        return oom_bad("sip_msg_parse: %d, %d %s", rc, err.status, err.reason);
    strbuf_puts(&out, "KEEP");
    if ((rc = out.err))
        goto out;
    rc = sip_build_error_from_raw(bad_cseq, sizeof(bad_cseq) - 1, err.status, err.reason, &out);
    if (rc && out.len != 4)
        rc = oom_bad("sip_build_error_from_raw failed (%d) but left %zu bytes", rc, out.len);
    else if (rc == 0 && !strstr(out.p, "SIP/2.0 400 Bad Request (malformed CSeq)\r\n"))
        rc = oom_bad("wrong 400:\n%s", out.p);
    else if (rc == -EINVAL)
        rc = oom_bad("sip_build_error_from_raw returned -EINVAL");
out:
    strbuf_free(&out);
    return rc;
}

static void test_error_from_raw(void **state)
{
    (void)state;
    assert_int_equal(
        oom_run_opts("400 from raw bytes", scenario_error_from_raw, NULL, &strict, NULL), 0);
}

/* --- the runner itself ------------------------------------------------------- */

/* A scenario that loses a block when its second allocation fails: the
 * runner must notice. The block goes to a global, so that LeakSanitizer
 * does not report it at exit too, and the test frees it afterwards. */
static void *lost;

static int scenario_leaky(void *arg)
{
    (void)arg;
    char *a = malloc(16);
    if (!a)
        return -ENOMEM;
    char *b = strdup("second");
    if (!b) {
        lost = a; /* "forgets" a */
        return -ENOMEM;
    }
    free(b);
    free(a);
    return 0;
}

static int scenario_wrong_code(void *arg)
{
    (void)arg;
    void *p = calloc(1, 8);
    if (!p)
        return 1; /* neither 0 nor a negative errno */
    free(p);
    return 0;
}

static void test_runner_catches(void **state)
{
    (void)state;
    struct oom_stats st;

    fputs("(two oom failures expected below: the runner's self-test)\n", stderr);
    assert_int_equal(oom_run_opts("self-test: leak", scenario_leaky, NULL, NULL, &st), -1);
    assert_int_equal(st.allocs, 2);
    assert_non_null(lost);
    free(lost);
    lost = NULL;
    assert_int_equal(oom_run_opts("self-test: bad code", scenario_wrong_code, NULL, NULL, &st), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_invite),   cmocka_unit_test(test_parse_register),
        cmocka_unit_test(test_parse_response), cmocka_unit_test(test_parse_long_chain),
        cmocka_unit_test(test_edit_print),     cmocka_unit_test(test_print_response),
        cmocka_unit_test(test_build_response), cmocka_unit_test(test_error_from_raw),
        cmocka_unit_test(test_runner_catches),
    };

    for (size_t i = 0; i < sizeof(big_body); i++)
        big_body[i] = (char)('a' + i % 26);
    make_long_chain();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
