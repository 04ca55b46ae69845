/* sip/dialog: behaviour, then every allocation failed in turn. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "oom.h"
#include "sip/dialog.h"
#include "sip/msg.h"

static const char invite[] = "INVITE sip:bob@example.test SIP/2.0\r\n"
                             "Via: SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bKa1\r\n"
                             "Record-Route: <sip:p1.example.test;lr>, <sip:p2.example.test;lr>\r\n"
                             "Max-Forwards: 69\r\n"
                             "From: \"Alice\" <sip:alice@example.test>;tag=at1\r\n"
                             "To: <sip:bob@example.test>\r\n"
                             "Call-ID: c1@example.test\r\n"
                             "CSeq: 5 INVITE\r\n"
                             "Contact: <sip:alice@192.0.2.1:5061;transport=tls>\r\n"
                             "Content-Length: 0\r\n\r\n";

static const char ok200[] = "SIP/2.0 200 OK\r\n"
                            "Via: SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bKa1\r\n"
                            "Record-Route: <sip:p1.example.test;lr>, <sip:p2.example.test;lr>\r\n"
                            "From: \"Alice\" <sip:alice@example.test>;tag=at1\r\n"
                            "To: <sip:bob@example.test>;tag=bt2\r\n"
                            "Call-ID: c1@example.test\r\n"
                            "CSeq: 5 INVITE\r\n"
                            "Contact: <sip:bob@192.0.2.2:5061;transport=tls>\r\n"
                            "Content-Length: 0\r\n\r\n";

static struct sip_msg *parse(const char *text)
{
    struct sip_msg *m = NULL;
    assert_int_equal(sip_msg_parse(text, strlen(text), &m, NULL), 0);
    return m;
}

static void assert_header(const struct sip_msg *m, enum sip_hdr_id id, const char *want)
{
    const struct sip_hdr *h = sip_msg_hdr_first(m, id);
    assert_non_null(h);
    if (!strview_eq(h->value, want))
        fail_msg("%s: got '%.*s', want '%s'", sip_hdr_name(id), (int)h->value.n, h->value.p, want);
}

/* The callee's view (UAS): routes in order; its BYE goes to the caller's
 * Contact with our tag in From. */
static void test_uas_bye(void **state)
{
    (void)state;
    struct sip_msg *req = parse(invite);
    struct sip_dialog d;
    assert_int_equal(sip_dialog_uas(&d, req, "bt2"), 0);
    assert_string_equal(d.remote_target, "sip:alice@192.0.2.1:5061;transport=tls");
    assert_string_equal(d.route_set, "<sip:p1.example.test;lr>, <sip:p2.example.test;lr>");
    assert_true(d.has_remote_cseq);
    assert_int_equal(d.remote_cseq, 5);

    struct strbuf out = STRBUF_INIT;
    assert_int_equal(sip_dialog_request(&d, "BYE", 0, "SIP/2.0/TLS 192.0.2.2:5061;branch=z9hG4bKb",
                                        "Reason: SIP;cause=200\r\n", NULL, STRVIEW_EMPTY, &out),
                     0);
    struct sip_msg *bye = parse(strbuf_cstr(&out));
    assert_true(strview_eq(bye->request_uri, "sip:alice@192.0.2.1:5061;transport=tls"));
    assert_header(bye, SIP_HDR_FROM, "<sip:bob@example.test>;tag=bt2");
    assert_header(bye, SIP_HDR_TO, "<sip:alice@example.test>;tag=at1");
    assert_header(bye, SIP_HDR_ROUTE, "<sip:p1.example.test;lr>, <sip:p2.example.test;lr>");
    assert_int_equal(bye->cseq_num, 1);
    assert_non_null(sip_msg_hdr_find_name(bye, "Reason"));
    sip_msg_free(bye);

    /* the caller's requests match; a lower CSeq is refused; a refresh moves
     * the target */
    static const char reinvite[] = "INVITE sip:bob@192.0.2.2:5061 SIP/2.0\r\n"
                                   "Via: SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bKa2\r\n"
                                   "From: <sip:alice@example.test>;tag=at1\r\n"
                                   "To: <sip:bob@example.test>;tag=bt2\r\n"
                                   "Call-ID: c1@example.test\r\n"
                                   "CSeq: 6 INVITE\r\n"
                                   "Contact: <sip:alice@198.51.100.9:5061>\r\n"
                                   "Content-Length: 0\r\n\r\n";
    struct sip_msg *re = parse(reinvite);
    assert_true(sip_dialog_matches(&d, re));
    assert_int_equal(sip_dialog_update(&d, re), 0);
    assert_string_equal(d.remote_target, "sip:alice@198.51.100.9:5061");
    assert_int_equal(sip_dialog_update(&d, re), -EPROTO); /* the same CSeq again */
    sip_msg_free(re);
    assert_false(sip_dialog_matches(&d, req)); /* no To tag: not in the dialog */

    /* bad input */
    strbuf_reset(&out);
    assert_int_equal(sip_dialog_request(&d, "BY E", 0, "v", NULL, NULL, STRVIEW_EMPTY, &out),
                     -EINVAL);
    assert_int_equal(
        sip_dialog_request(&d, "BYE", 0, "v", "X: 1\r\n\r\nY: 2\r\n", NULL, STRVIEW_EMPTY, &out),
        -EINVAL);
    assert_int_equal(sip_dialog_request(&d, "BYE", 0, "v", "X: 1", NULL, STRVIEW_EMPTY, &out),
                     -EINVAL);
    assert_int_equal(out.len, 0);
    assert_int_equal(d.local_cseq, 1);
    strbuf_free(&out);
    sip_dialog_clear(&d);
    sip_msg_free(req);
}

/* The caller's view (UAC): the 200's Record-Route reversed; ACK keeps the
 * INVITE's CSeq; a NOTIFY with a body. */
static void test_uac(void **state)
{
    (void)state;
    struct sip_msg *req = parse(invite), *resp = parse(ok200);
    struct sip_dialog d;
    assert_int_equal(sip_dialog_uac(&d, req, resp), 0);
    assert_string_equal(d.route_set, "<sip:p2.example.test;lr>, <sip:p1.example.test;lr>");
    assert_string_equal(d.remote_target, "sip:bob@192.0.2.2:5061;transport=tls");
    assert_string_equal(d.local_tag, "at1");
    assert_string_equal(d.remote_tag, "bt2");
    struct strbuf out = STRBUF_INIT;
    assert_int_equal(sip_dialog_request(&d, "ACK", 5, "SIP/2.0/TLS h;branch=z9hG4bKc", NULL, NULL,
                                        STRVIEW_EMPTY, &out),
                     0);
    struct sip_msg *ack = parse(strbuf_cstr(&out));
    assert_int_equal(ack->cseq_num, 5);
    sip_msg_free(ack);
    strbuf_reset(&out);
    assert_int_equal(sip_dialog_request(&d, "INFO", 0, "SIP/2.0/TLS h;branch=z9hG4bKd", NULL,
                                        "application/dtmf-relay", strview_cstr("Signal=1\r\n"),
                                        &out),
                     0);
    struct sip_msg *info = parse(strbuf_cstr(&out));
    assert_int_equal(info->cseq_num, 6);
    assert_true(strview_eq(info->body, "Signal=1\r\n"));
    assert_header(info, SIP_HDR_CONTENT_TYPE, "application/dtmf-relay");
    sip_msg_free(info);
    /* a proxy that saw the caller's requests pass */
    sip_dialog_note_local_cseq(&d, 40);
    sip_dialog_note_local_cseq(&d, 7);
    assert_int_equal(d.local_cseq, 40);
    /* extra headers that would end the head early are refused */
    strbuf_reset(&out);
    assert_int_equal(sip_dialog_request(&d, "BYE", 0, "SIP/2.0/TLS h;branch=z9hG4bKf", "\r\n", NULL,
                                        STRVIEW_EMPTY, &out),
                     -EINVAL);
    assert_int_equal(sip_dialog_request(&d, "BYE", 0, "SIP/2.0/TLS h;branch=z9hG4bKf",
                                        "\r\nX-Body: y\r\n", NULL, STRVIEW_EMPTY, &out),
                     -EINVAL);
    assert_int_equal(sip_dialog_request(&d, "BYE", 0, "SIP/2.0/TLS h;branch=z9hG4bKf",
                                        "Reason: a\r\n\r\nX: y\r\n", NULL, STRVIEW_EMPTY, &out),
                     -EINVAL);
    assert_int_equal(out.len, 0);
    assert_int_equal(d.local_cseq, 40);
    /* a peer that pushed the CSeq to the top: no request wraps to 0 */
    sip_dialog_note_local_cseq(&d, 0xffffffffu);
    assert_int_equal(sip_dialog_request(&d, "BYE", 0, "SIP/2.0/TLS h;branch=z9hG4bKg", NULL, NULL,
                                        STRVIEW_EMPTY, &out),
                     -EOVERFLOW);
    assert_int_equal(out.len, 0);
    strbuf_free(&out);
    sip_dialog_clear(&d);
    sip_dialog_clear(&d); /* twice is harmless */

    /* no To tag in the response: no dialog */
    struct sip_msg *notag = parse("SIP/2.0 180 Ringing\r\n"
                                  "Via: SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bKa1\r\n"
                                  "From: <sip:alice@example.test>;tag=at1\r\n"
                                  "To: <sip:bob@example.test>\r\n"
                                  "Call-ID: c1@example.test\r\n"
                                  "CSeq: 5 INVITE\r\n"
                                  "Contact: <sip:bob@192.0.2.2>\r\n"
                                  "Content-Length: 0\r\n\r\n");
    assert_int_equal(sip_dialog_uac(&d, req, notag), -EINVAL);
    sip_msg_free(notag);
    sip_msg_free(req);
    sip_msg_free(resp);
}

static int dialog_scenario(void *arg)
{
    (void)arg;
    struct sip_msg *req = NULL, *resp = NULL, *bye = NULL;
    struct sip_dialog uas = {0}, uac = {0};
    struct strbuf out = STRBUF_INIT;
    int rc = sip_msg_parse(invite, strlen(invite), &req, NULL);
    if (rc == 0)
        rc = sip_msg_parse(ok200, strlen(ok200), &resp, NULL);
    if (rc == 0)
        rc = sip_dialog_uas(&uas, req, "bt2");
    if (rc == 0)
        rc = sip_dialog_uac(&uac, req, resp);
    if (rc == 0)
        rc = sip_dialog_request(&uas, "BYE", 0, "SIP/2.0/TLS h;branch=z9hG4bKe", NULL, NULL,
                                STRVIEW_EMPTY, &out);
    if (rc == 0)
        rc = sip_msg_parse(out.p, out.len, &bye, NULL);
    if (rc == 0)
        rc = sip_dialog_set_target(&uac, strview_cstr("sip:bob@203.0.113.5"));
    if (rc == 0 && uas.local_cseq != 1)
        rc = oom_bad("CSeq moved to %u", (unsigned)uas.local_cseq);
    sip_msg_free(bye);
    strbuf_free(&out);
    sip_dialog_clear(&uas);
    sip_dialog_clear(&uac);
    sip_msg_free(req);
    sip_msg_free(resp);
    return rc;
}

static void test_oom(void **state)
{
    (void)state;
    assert_int_equal(oom_run("sip_dialog", dialog_scenario, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uas_bye),
        cmocka_unit_test(test_uac),
        cmocka_unit_test(test_oom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
