#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/strbuf.h"
#include "sip/build.h"
#include "sip/msg.h"

static const char invite[] = "INVITE sip:bob@example.com SIP/2.0\r\n"
                             "Via: SIP/2.0/TLS p1.example.com;branch=z9hG4bKp1;received=192.0.2.1,"
                             " SIP/2.0/TLS p2.example.com;branch=z9hG4bKp2\r\n"
                             "Max-Forwards: 69\r\n"
                             "To: Bob <sip:bob@example.com>\r\n"
                             "Record-Route: <sip:p1.example.com;lr>\r\n"
                             "v: SIP/2.0/TLS\r\n"
                             "  client.example.com:5061;branch=z9hG4bKc\r\n"
                             "f: \"Alice\" <sip:alice@example.com>;tag=1928301774\r\n"
                             "i: a84b4c76e66710@pc33.example.com\r\n"
                             "CSeq: 314159 INVITE\r\n"
                             "Content-Length: 0\r\n"
                             "\r\n";

static struct sip_msg *must_parse(const char *text, size_t n)
{
    struct sip_msg *m;
    struct sip_parse_error err;
    if (sip_msg_parse(text, n, &m, &err) != 0)
        fail_msg("parse failed: %s\n%.*s", err.reason, (int)n, text);
    return m;
}

static void test_reason_phrases(void **state)
{
    (void)state;
    assert_string_equal(sip_reason_phrase(100), "Trying");
    assert_string_equal(sip_reason_phrase(200), "OK");
    assert_string_equal(sip_reason_phrase(404), "Not Found");
    assert_string_equal(sip_reason_phrase(488), "Not Acceptable Here");
    assert_string_equal(sip_reason_phrase(505), "Version Not Supported");
    assert_string_equal(sip_reason_phrase(513), "Message Too Large");
    assert_string_equal(sip_reason_phrase(608), "Rejected");
    assert_string_equal(sip_reason_phrase(299), "Success");
    assert_string_equal(sip_reason_phrase(499), "Client Error");
    assert_string_equal(sip_reason_phrase(699), "Global Failure");
    assert_string_equal(sip_reason_phrase(99), "Unknown");
    assert_string_equal(sip_reason_phrase(700), "Unknown");
}

static void test_response(void **state)
{
    (void)state;
    struct sip_msg *req = must_parse(invite, strlen(invite));
    struct strbuf out = STRBUF_INIT;

    strbuf_puts(&out, "KEEP");
    assert_int_equal(sip_build_response(req, 486, NULL, "as8d7f", NULL, NULL, STRVIEW_EMPTY, &out),
                     0);
    static const char want[] =
        "KEEPSIP/2.0 486 Busy Here\r\n"
        "Via: SIP/2.0/TLS p1.example.com;branch=z9hG4bKp1;received=192.0.2.1,"
        " SIP/2.0/TLS p2.example.com;branch=z9hG4bKp2\r\n"
        "Via: SIP/2.0/TLS client.example.com:5061;branch=z9hG4bKc\r\n"
        "From: \"Alice\" <sip:alice@example.com>;tag=1928301774\r\n"
        "To: Bob <sip:bob@example.com>;tag=as8d7f\r\n"
        "Call-ID: a84b4c76e66710@pc33.example.com\r\n"
        "CSeq: 314159 INVITE\r\n"
        "Server: Parley\r\n"
        "Content-Length: 0\r\n"
        "\r\n";
    assert_string_equal(strbuf_cstr(&out), want);

    struct sip_msg *resp = must_parse(out.p + 4, out.len - 4);
    assert_int_equal(resp->status, 486);
    struct sip_addr to;
    assert_int_equal(sip_msg_to(resp, &to), 0);
    assert_true(strview_eq(to.tag, "as8d7f"));
    struct sip_value_iter it;
    struct strview v;
    const char *branches[] = {"z9hG4bKp1", "z9hG4bKp2", "z9hG4bKc"};
    int n = 0;
    sip_value_iter_init(&it, resp, SIP_HDR_VIA);
    while (sip_value_iter_next(&it, &v)) {
        struct sip_via via;
        assert_int_equal(sip_via_parse(v, &via), 0);
        assert_true(n < 3 && strview_eq(via.branch, branches[n]));
        n++;
    }
    assert_int_equal(n, 3);
    assert_null(sip_msg_hdr_first(resp, SIP_HDR_RECORD_ROUTE));
    assert_non_null(sip_msg_hdr_first(resp, SIP_HDR_SERVER));
    sip_msg_free(resp);

    /* 100 Trying gets no tag. */
    strbuf_reset(&out);
    assert_int_equal(sip_build_response(req, 100, NULL, "as8d7f", NULL, NULL, STRVIEW_EMPTY, &out),
                     0);
    assert_non_null(strstr(out.p, "\r\nTo: Bob <sip:bob@example.com>\r\n"));
    assert_non_null(strstr(out.p, "SIP/2.0 100 Trying\r\n"));

    /* Body, type, extra headers, a reason that tries to break the line. */
    strbuf_reset(&out);
    assert_int_equal(sip_build_response(req, 200, "OK\r\nX-Evil: 1", "t2",
                                        "Contact: <sip:bob@192.0.2.9>\r\nAllow: INVITE, ACK\r\n",
                                        "application/sdp", strview_cstr("v=0\r\n"), &out),
                     0);
    assert_non_null(strstr(out.p, "SIP/2.0 200 OK  X-Evil: 1\r\n"));
    assert_null(strstr(out.p, "\nX-Evil"));
    resp = must_parse(out.p, out.len);
    assert_true(strview_eq(resp->content_type, "application/sdp"));
    assert_true(strview_eq(resp->body, "v=0\r\n"));
    assert_non_null(sip_msg_hdr_first(resp, SIP_HDR_CONTACT));
    assert_non_null(sip_msg_hdr_first(resp, SIP_HDR_ALLOW));
    sip_msg_free(resp);
    sip_msg_free(req);
    strbuf_free(&out);
}

static void test_response_keeps_tag(void **state)
{
    (void)state;
    static const char bye[] = "BYE sip:alice@pc33.example.com SIP/2.0\r\n"
                              "Via: SIP/2.0/TLS 192.0.2.4;branch=z9hG4bKnashds10\r\n"
                              "From: Bob <sip:bob@example.com>;tag=a6c85cf\r\n"
                              "To: Alice <sip:alice@example.com> ; TAG = 1928301774\r\n"
                              "Call-ID: a84b4c76e66710\r\n"
                              "CSeq: 231 BYE\r\n"
                              "\r\n";
    struct sip_msg *req = must_parse(bye, strlen(bye));
    struct strbuf out = STRBUF_INIT;
    assert_int_equal(sip_build_response(req, 200, NULL, "other", NULL, NULL, STRVIEW_EMPTY, &out),
                     0);
    assert_non_null(strstr(out.p, "\r\nTo: Alice <sip:alice@example.com> ; TAG = 1928301774\r\n"));
    assert_null(strstr(out.p, "other"));
    /* No to_tag at all is fine too. */
    strbuf_reset(&out);
    assert_int_equal(sip_build_response(req, 481, NULL, NULL, NULL, NULL, STRVIEW_EMPTY, &out), 0);
    strbuf_free(&out);
    sip_msg_free(req);
}

static void test_response_refusals(void **state)
{
    (void)state;
    struct sip_msg *req = must_parse(invite, strlen(invite));
    struct strbuf out = STRBUF_INIT;
    const struct strview none = STRVIEW_EMPTY;

    assert_int_equal(sip_build_response(req, 99, NULL, "t", NULL, NULL, none, &out), -EINVAL);
    assert_int_equal(sip_build_response(req, 700, NULL, "t", NULL, NULL, none, &out), -EINVAL);
    assert_int_equal(sip_build_response(NULL, 200, NULL, "t", NULL, NULL, none, &out), -EINVAL);
    assert_int_equal(sip_build_response(req, 200, NULL, "a b", NULL, NULL, none, &out), -EINVAL);
    assert_int_equal(sip_build_response(req, 200, NULL, "a\r\nX: y", NULL, NULL, none, &out),
                     -EINVAL);
    assert_int_equal(sip_build_response(req, 200, NULL, "t", "X-A: 1", NULL, none, &out), -EINVAL);
    assert_int_equal(
        sip_build_response(req, 200, NULL, "t", "X-A: 1\r\n\r\nbody\r\n", NULL, none, &out),
        -EINVAL);
    assert_int_equal(sip_build_response(req, 200, NULL, "t", "\r\n", NULL, none, &out), -EINVAL);
    assert_int_equal(
        sip_build_response(req, 200, NULL, "t", NULL, "text/plain\r\nX: 1", none, &out), -EINVAL);
    assert_int_equal(out.len, 0);

    /* A request edited until it lacks what a response needs. */
    sip_msg_hdr_remove_all(req, SIP_HDR_CALL_ID);
    assert_int_equal(sip_build_response(req, 200, NULL, "t", NULL, NULL, none, &out), -EINVAL);
    sip_msg_free(req);

    /* Responses are not answered. */
    static const char ok[] = "SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS h;branch=z9hG4bK1\r\n"
                             "From: <sip:a@b.c>;tag=1\r\nTo: <sip:a@b.c>\r\nCall-ID: x\r\n"
                             "CSeq: 1 INVITE\r\n\r\n";
    struct sip_msg *resp = must_parse(ok, strlen(ok));
    assert_int_equal(sip_build_response(resp, 200, NULL, "t", NULL, NULL, none, &out), -EINVAL);
    sip_msg_free(resp);
    strbuf_free(&out);
}

static const char broken[] = "INVITE sip:bob@example.com SIP/2.0\r\n"
                             "Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK1\r\n"
                             "v: SIP/2.0/UDP\r\n"
                             "   relay.example.com;branch=z9hG4bK2\r\n"
                             "Max-Forwards: 999\r\n"
                             "To: Bob <sip:bob@example.com>\r\n"
                             "From: Alice <sip:alice@example.com>;tag=88\r\n"
                             "Call-ID: 3848276298220188511@pc33\r\n"
                             "CSeq: 1 INVITE\r\n"
                             "X-Odd: a\x01"
                             "b\r\n"
                             "Content-Length: 0\r\n"
                             "\r\n";

static void test_error_from_raw(void **state)
{
    (void)state;
    struct sip_msg *m;
    struct sip_parse_error err;
    struct strbuf out = STRBUF_INIT, again = STRBUF_INIT;

    assert_int_equal(sip_msg_parse(broken, strlen(broken), &m, &err), -EINVAL);
    assert_int_equal(err.status, 400);
    assert_int_equal(sip_build_error_from_raw(broken, strlen(broken), err.status, err.reason, &out),
                     0);
    assert_non_null(strstr(out.p, "SIP/2.0 400 Bad Request (Max-Forwards not 0-255)\r\n"));
    struct sip_msg *resp = must_parse(out.p, out.len);
    assert_int_equal(resp->status, 400);
    assert_int_equal(sip_msg_hdr_count(resp, SIP_HDR_VIA), 2);
    struct sip_hdr *via2 = sip_msg_hdr_next(sip_msg_hdr_first(resp, SIP_HDR_VIA), SIP_HDR_VIA);
    assert_true(strview_eq(via2->value, "SIP/2.0/UDP relay.example.com;branch=z9hG4bK2"));
    struct sip_addr to;
    assert_int_equal(sip_msg_to(resp, &to), 0);
    assert_int_equal(to.tag.n, 9);
    assert_true(strview_eq(resp->call_id, "3848276298220188511@pc33"));
    assert_int_equal(resp->cseq_num, 1);
    sip_msg_free(resp);
    /* The same input gets the same tag (a retransmission). */
    assert_int_equal(sip_build_error_from_raw(broken, strlen(broken), 400, NULL, &again), 0);
    assert_non_null(strstr(again.p, "SIP/2.0 400 Bad Request\r\n"));
    assert_string_equal(strstr(out.p, "\r\nTo:"), strstr(again.p, "\r\nTo:"));
    strbuf_free(&again);

    /* An existing tag is kept; LF-only lines work. */
    static const char lf[] = "BYE sip:b@x SIP/2.0\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\n"
                             "To: <sip:b@x>;tag=abc\nFrom: <sip:a@x>;tag=1\nCall-ID: c\n"
                             "CSeq: 2 BYE\nMax-Forwards: x\n\n";
    strbuf_reset(&out);
    assert_int_equal(sip_build_error_from_raw(lf, strlen(lf), 400, "Bad\r\nRequest", &out), 0);
    assert_non_null(strstr(out.p, "SIP/2.0 400 Bad  Request\r\n"));
    assert_non_null(strstr(out.p, "\r\nTo: <sip:b@x>;tag=abc\r\n"));

    /* Nothing to answer: missing headers, a response, no request line. */
    static const char nocid[] = "BYE sip:b@x SIP/2.0\r\nVia: SIP/2.0/TCP h\r\nTo: <sip:b@x>\r\n"
                                "From: <sip:a@x>;tag=1\r\nCSeq: 2 BYE\r\n\r\n";
    static const char novia[] = "BYE sip:b@x SIP/2.0\r\nTo: <sip:b@x>\r\nCall-ID: c\r\n"
                                "From: <sip:a@x>;tag=1\r\nCSeq: 2 BYE\r\n\r\n";
    static const char resp_raw[] = "SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP h\r\nTo: <sip:b@x>\r\n"
                                   "From: <sip:a@x>\r\nCall-ID: c\r\nCSeq: 2 BYE\r\n\r\n";
    strbuf_reset(&out);
    strbuf_puts(&out, "KEEP");
    assert_int_equal(sip_build_error_from_raw(nocid, strlen(nocid), 400, NULL, &out), -EINVAL);
    assert_int_equal(sip_build_error_from_raw(novia, strlen(novia), 400, NULL, &out), -EINVAL);
    assert_int_equal(sip_build_error_from_raw(resp_raw, strlen(resp_raw), 400, NULL, &out),
                     -EINVAL);
    assert_int_equal(sip_build_error_from_raw("\x16\x03\x01\x02", 4, 400, NULL, &out), -EINVAL);
    assert_int_equal(sip_build_error_from_raw("", 0, 400, NULL, &out), -EINVAL);
    assert_int_equal(sip_build_error_from_raw(broken, strlen(broken), 42, NULL, &out), -EINVAL);
    assert_string_equal(strbuf_cstr(&out), "KEEP");
    strbuf_free(&out);
}

/* Every prefix, from an exact-size copy: never a read past len. */
static void test_error_from_raw_prefixes(void **state)
{
    (void)state;
    size_t n = strlen(broken);
    int built = 0;
    for (size_t k = 0; k <= n; k++) {
        char *copy = malloc(k ? k : 1);
        memcpy(copy, broken, k);
        struct strbuf out = STRBUF_INIT;
        int rc = sip_build_error_from_raw(copy, k, 400, NULL, &out);
        assert_true(rc == 0 || rc == -EINVAL);
        if (rc == 0) {
            built++;
            assert_memory_equal(out.p, "SIP/2.0 400 ", 12);
        }
        strbuf_free(&out);
        free(copy);
    }
    assert_true(built > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reason_phrases),     cmocka_unit_test(test_response),
        cmocka_unit_test(test_response_keeps_tag), cmocka_unit_test(test_response_refusals),
        cmocka_unit_test(test_error_from_raw),     cmocka_unit_test(test_error_from_raw_prefixes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
