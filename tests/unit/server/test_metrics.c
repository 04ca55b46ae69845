/*
 * server/metrics: the SIP counters the core thread keeps (responses sent
 * are counted by their status class and the method of their CSeq line,
 * found in the head only).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "server/metrics.h"
#include "server/runtime.h"

static uint64_t sent(struct runtime *rt, const char *text)
{
    struct strbuf b = STRBUF_INIT;
    strbuf_puts(&b, text);
    memset(&rt->sip_counts, 0, sizeof(rt->sip_counts));
    metrics_sip_sent(rt, &b);
    strbuf_free(&b);
    uint64_t total = 0;
    for (size_t m = 0; m < RUNTIME_SIP_METHODS; m++)
        for (size_t c = 0; c < 7; c++)
            total += rt->sip_counts.responses_out[m][c];
    return total;
}

static void test_sip_sent(void **state)
{
    (void)state;
    struct runtime *rt = calloc(1, sizeof(*rt));
    assert_non_null(rt);
    const uint64_t(*out)[7] = rt->sip_counts.responses_out;

    assert_int_equal(sent(rt, "SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS h;branch=z9hG4bKx\r\n"
                              "CSeq: 314159 INVITE\r\nContent-Length: 0\r\n\r\n"),
                     1);
    assert_int_equal(out[SIP_METHOD_INVITE][2], 1);
    /* the first header line, a class other than 2xx */
    assert_int_equal(sent(rt, "SIP/2.0 486 Busy Here\r\nCSeq: 2 BYE\r\n\r\n"), 1);
    assert_int_equal(out[SIP_METHOD_BYE][4], 1);
    /* an extension method, no CSeq at all: "other" (index 0) */
    assert_int_equal(sent(rt, "SIP/2.0 501 Not Implemented\r\nCSeq: 7 FOO\r\n\r\n"), 1);
    assert_int_equal(out[0][5], 1);
    assert_int_equal(sent(rt, "SIP/2.0 603 Decline\r\nTo: <sip:a@b>\r\n\r\n"), 1);
    assert_int_equal(out[0][6], 1);
    /* a CSeq line in the body is not the head's */
    assert_int_equal(sent(rt, "SIP/2.0 180 Ringing\r\nContent-Length: 20\r\n\r\n"
                              "x\r\nCSeq: 1 INVITE\r\n"),
                     1);
    assert_int_equal(out[0][1], 1);
    /* a header whose name only ends in CSeq */
    assert_int_equal(sent(rt, "SIP/2.0 200 OK\r\nX-CSeq: 1 INVITE\r\nCSeq: 1 MESSAGE\r\n\r\n"), 1);
    assert_int_equal(out[SIP_METHOD_MESSAGE][2], 1);
    /* the head cut short at the method */
    assert_int_equal(sent(rt, "SIP/2.0 200 OK\r\nCSeq: 1 REGISTER"), 1);
    assert_int_equal(out[SIP_METHOD_REGISTER][2], 1);
    /* requests and anything else are not responses */
    assert_int_equal(sent(rt, "INVITE sip:b@example.test SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n"), 0);
    assert_int_equal(sent(rt, "SIP/2.0 2x0 OK\r\n\r\n"), 0);
    assert_int_equal(sent(rt, "SIP/2.0 20"), 0);
    assert_int_equal(sent(rt, "\r\n\r\n"), 0);
    free(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sip_sent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
