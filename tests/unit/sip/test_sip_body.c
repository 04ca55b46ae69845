/*
 * sip/body: the session description of a body, in application/sdp or a
 * multipart, and every shape where a lenient reader could see an SDP that
 * Parley would not (each must be an error, never "no SDP").
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sip/body.h"

#define SDP "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"

static char err[128];

/* From an exact-size heap copy, so a read past the end is caught by ASan. */
static int find(const char *ct, const char *body, struct sip_body_sdp *out, char **keep)
{
    size_t n = strlen(body);
    char *copy = malloc(n ? n : 1);
    memcpy(copy, body, n);
    *keep = copy;
    return sip_body_find_sdp(strview_cstr(ct), strview_make(copy, n), out, err, sizeof(err));
}

static void expect_sdp(const char *ct, const char *body, const char *sdp, bool whole)
{
    struct sip_body_sdp f;
    char *k;
    assert_int_equal(find(ct, body, &f, &k), 0);
    assert_int_equal(f.sdp.n, strlen(sdp));
    assert_memory_equal(f.sdp.p, sdp, f.sdp.n);
    assert_ptr_equal(f.sdp.p, k + f.offset);
    assert_int_equal(f.whole, whole);
    free(k);
}

static void expect_none(const char *ct, const char *body)
{
    struct sip_body_sdp f;
    char *k;
    assert_int_equal(find(ct, body, &f, &k), 0);
    assert_int_equal(f.sdp.n, 0);
    free(k);
}

static void expect_error(const char *ct, const char *body, const char *why)
{
    struct sip_body_sdp f;
    char *k;
    assert_int_equal(find(ct, body, &f, &k), -EINVAL);
    assert_int_equal(f.sdp.n, 0);
    if (!strstr(err, why))
        fail_msg("error \"%s\" does not say \"%s\"", err, why);
    free(k);
}

static void test_plain_bodies(void **state)
{
    (void)state;
    expect_sdp("application/sdp", SDP, SDP, true);
    expect_sdp("Application/SDP ; charset=utf-8", SDP, SDP, true);
    expect_none("text/plain", "hello");
    expect_none("application/pidf+xml", "<presence/>");
    expect_none("", "");
    expect_error("", SDP, "without Content-Type");
    expect_error("application", SDP, "malformed Content-Type");
}

static void test_multipart(void **state)
{
    (void)state;
    expect_sdp("multipart/mixed;boundary=unique-1",
               "preamble\r\n"
               "--unique-1\r\n"
               "Content-Type: application/sdp\r\n"
               "\r\n" SDP "\r\n--unique-1\r\n"
               "Content-Type: application/isup;version=itu-t92+\r\n"
               "Content-Disposition: signal;handling=optional\r\n"
               "\r\n"
               "\x01\x02\x03\r\n"
               "--unique-1--\r\n",
               SDP, false);
    /* quoted boundary, compact header name, nested multipart, padding */
    expect_sdp("multipart/mixed; boundary=\"outer b\"",
               "--outer b  \r\n"
               "Content-Type: multipart/alternative;boundary=inner\r\n"
               "\r\n"
               "--inner\r\n"
               "c: text/plain\r\n"
               "\r\n"
               "hi\r\n"
               "--inner\r\n"
               "c: application/sdp\r\n"
               "Content-Transfer-Encoding: 8bit\r\n"
               "\r\n" SDP "\r\n--inner--\r\n"
               "--outer b--",
               SDP, false);
    /* no SDP at all; a part without headers is text/plain */
    expect_none("multipart/mixed;boundary=b", "--b\r\n\r\nv=0\r\n--b\r\n"
                                              "Content-Type: text/plain\r\n\r\nx\r\n--b--\r\n");
}

static void test_multipart_refused(void **state)
{
    (void)state;
    const char *ct = "multipart/mixed;boundary=b";
    expect_error(ct,
                 "--b\r\nContent-Type: application/sdp\r\n\r\n" SDP "\r\n"
                 "--b\r\nContent-Type: application/sdp\r\n\r\n" SDP "\r\n--b--\r\n",
                 "more than one session description");
    /* a boundary after a bare LF: a lenient reader sees a second part */
    expect_error(ct,
                 "--b\r\nContent-Type: text/plain\r\n\r\nx\n--b\r\n"
                 "Content-Type: application/sdp\r\n\r\n" SDP "\r\n--b--\r\n",
                 "boundary inside a part");
    expect_error(ct, "--b\r\nContent-Type: application/sdp\r\n\r\n" SDP, "closing boundary");
    expect_error(ct,
                 "--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--\r\n"
                 "--b\r\nContent-Type: application/sdp\r\n\r\n" SDP "\r\n--b--\r\n",
                 "text after the closing multipart boundary");
    expect_error(ct, "--b\r\nContent-Type: application/sdp\r\n" SDP "\r\n--b--\r\n",
                 "malformed header");
    expect_error(ct, "--b\r\nContent-Type:\r\n application/sdp\r\n\r\n" SDP "\r\n--b--\r\n",
                 "folded header");
    expect_error(ct,
                 "--b\r\nContent-Type: application/sdp\r\nContent-Type: text/plain\r\n\r\n" SDP
                 "\r\n--b--\r\n",
                 "two Content-Type");
    expect_error(ct,
                 "--b\r\nContent-Type: application/sdp\r\nContent-Transfer-Encoding: base64\r\n"
                 "\r\ndj0w\r\n--b--\r\n",
                 "encoded session description");
    expect_error(ct,
                 "--b\r\nContent-Type: application/sdp\r\nContent-Encoding: gzip\r\n"
                 "\r\nxx\r\n--b--\r\n",
                 "encoded session description");
    /* a bare LF or CR inside a part's headers hides a header from Parley
     * that a lenient reader sees */
    expect_error(ct, "--b\r\nX-A: 1\nContent-Type: application/sdp\r\n\r\n" SDP "\r\n--b--\r\n",
                 "control character");
    expect_error(ct, "--b\r\nX-A: 1\rContent-Type: application/sdp\r\n\r\n" SDP "\r\n--b--\r\n",
                 "control character");
    expect_error(ct,
                 "--b\r\nContent-Type: application/sdp\r\nContent-Transfer-Encoding: 8bit\r\n"
                 "Content-Transfer-Encoding: base64\r\n\r\ndj0w\r\n--b--\r\n",
                 "two Content-Transfer-Encoding");
    /* readers differ on which of two boundary parameters counts */
    expect_error("multipart/mixed;boundary=a;boundary=b",
                 "--a\r\n\r\nx\r\n--a--\r\n--b\r\nContent-Type: application/sdp\r\n\r\n" SDP
                 "\r\n--b--\r\n",
                 "malformed Content-Type");
    /* only blank space after the close: a padded close is no line to read on */
    expect_error(ct, "--b\r\n\r\nx\r\n--b-- \r\na=crypto:1 x\r\n", "text after the closing");
    expect_none(ct, "--b\r\n\r\nx\r\n--b-- \r\n\r\n");
    /* an empty part is an empty text/plain part */
    expect_none(ct, "--b\r\n\r\n--b--");
    expect_error(ct, "--bx\r\n\r\nx\r\n--b--\r\n", "malformed multipart boundary line");
    expect_error(ct, "--b--\r\n", "without parts");
    expect_error(ct, "no delimiter at all", "closing boundary");
    expect_error("multipart/mixed", "--b\r\n\r\nx\r\n--b--\r\n", "without a boundary");
    expect_error("multipart/mixed;boundary=\"\"", "--\r\n\r\nx\r\n----\r\n",
                 "malformed multipart boundary");
    expect_error("multipart/mixed;boundary=b;x=\"unterminated", "--b--", "malformed Content-Type");
}

static void test_limits(void **state)
{
    (void)state;
    /* nesting: three levels pass, a fourth is refused */
    char body[4096];
    const char *ct = "multipart/mixed;boundary=a";
    snprintf(body, sizeof(body),
             "--a\r\nContent-Type: multipart/mixed;boundary=b\r\n\r\n"
             "--b\r\nContent-Type: multipart/mixed;boundary=c\r\n\r\n"
             "--c\r\nContent-Type: application/sdp\r\n\r\n" SDP "\r\n--c--\r\n"
             "--b--\r\n"
             "--a--\r\n");
    expect_sdp(ct, body, SDP, false);
    snprintf(body, sizeof(body),
             "--a\r\nContent-Type: multipart/mixed;boundary=b\r\n\r\n"
             "--b\r\nContent-Type: multipart/mixed;boundary=c\r\n\r\n"
             "--c\r\nContent-Type: multipart/mixed;boundary=d\r\n\r\n"
             "--d\r\nContent-Type: application/sdp\r\n\r\n" SDP "\r\n--d--\r\n"
             "--c--\r\n"
             "--b--\r\n"
             "--a--\r\n");
    expect_error(ct, body, "nested too deep");

    /* parts: SIP_BODY_MAX_PARTS pass, one more is refused */
    size_t n = 0;
    for (int i = 0; i < SIP_BODY_MAX_PARTS; i++)
        n += (size_t)snprintf(body + n, sizeof(body) - n, "--a\r\n\r\nx\r\n");
    snprintf(body + n, sizeof(body) - n, "--a--");
    expect_none(ct, body);
    snprintf(body + n, sizeof(body) - n, "--a\r\n\r\nx\r\n--a--");
    expect_error(ct, body, "too many parts");

    char longct[128];
    snprintf(longct, sizeof(longct), "multipart/mixed;boundary=%071d", 0);
    expect_error(longct, "x", "malformed multipart boundary");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_bodies),
        cmocka_unit_test(test_multipart),
        cmocka_unit_test(test_multipart_refused),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
