/*
 * sip/session_timer (RFC 4028), table-driven over real 2xx and 422
 * responses: what Parley offers, how it takes a 422, what a 2xx decides,
 * and when a refresh or the end is due.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sip/msg.h"
#include "sip/session_timer.h"

static struct sip_msg *response(int status, const char *extra)
{
    char text[1024];
    snprintf(text, sizeof(text),
             "SIP/2.0 %d Whatever\r\n"
             "Via: SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bKabc\r\n"
             "From: <sip:+14255550101@example.test>;tag=a\r\n"
             "To: <sip:+442079460000@gw.example.net>;tag=b\r\n"
             "Call-ID: st@example.test\r\n"
             "CSeq: 1 INVITE\r\n"
             "%s"
             "Content-Length: 0\r\n\r\n",
             status, extra);
    struct sip_msg *m = NULL;
    struct sip_parse_error err;
    assert_int_equal(sip_msg_parse(text, strlen(text), &m, &err), 0);
    return m;
}

static void test_offer_headers(void **state)
{
    (void)state;
    struct strbuf b = STRBUF_INIT;
    sip_session_timer_offer(&b, 1800, 90);
    assert_string_equal(strbuf_cstr(&b), "Session-Expires: 1800;refresher=uac\r\n"
                                         "Min-SE: 90\r\n"
                                         "Supported: timer\r\n");
    strbuf_free(&b);
}

static void test_2xx_outcomes(void **state)
{
    (void)state;
    static const struct {
        const char *headers;
        int rc;
        bool active, we_refresh;
        uint32_t interval, due;
    } cases[] = {
        {"", 0, false, false, 0, 0}, /* no Session-Expires: no timer (§7.2) */
        {"Session-Expires: 1800;refresher=uac\r\nRequire: timer\r\n", 0, true, true, 1800, 900},
        {"Session-Expires: 1800;refresher=uas\r\nRequire: timer\r\n", 0, true, false, 1800, 1768},
        {"x: 600 ; refresher=UAS\r\n", 0, true, false, 600, 568},          /* compact form, case */
        {"Session-Expires: 90;refresher=uas\r\n", 0, true, false, 90, 60}, /* 90 - 90/3 */
        {"Session-Expires: 1200\r\n", 0, true, true, 1200, 600}, /* no refresher: Parley */
        {"Session-Expires: 60;refresher=uac\r\n", -EINVAL, false, false, 0, 0}, /* < Min-SE */
        {"Session-Expires: soon\r\n", -EINVAL, false, false, 0, 0},
        {"Session-Expires: 1800;refresher=proxy\r\n", -EINVAL, false, false, 0, 0},
        {"Session-Expires: 99999999999\r\n", -EINVAL, false, false, 0, 0},
        {"Session-Expires: 172800\r\n", -EINVAL, false, false, 0, 0}, /* two days */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sip_msg *m = response(200, cases[i].headers);
        struct sip_session_timer t;
        int rc = sip_session_timer_on_2xx(m, 90, &t);
        if (rc != cases[i].rc)
            fail_msg("case %zu (%s): rc %d, want %d", i, cases[i].headers, rc, cases[i].rc);
        if (rc == 0) {
            assert_int_equal(t.active, cases[i].active);
            assert_int_equal(t.we_refresh, cases[i].we_refresh);
            assert_int_equal(t.interval, cases[i].interval);
            if (t.active)
                assert_int_equal(sip_session_timer_due(&t), cases[i].due);
        }
        sip_msg_free(m);
    }
}

static void test_422(void **state)
{
    (void)state;
    uint32_t interval = 90, min_se = 90;
    struct sip_msg *m = response(422, "Min-SE: 600\r\n");
    assert_int_equal(sip_session_timer_on_422(m, &interval, &min_se), 0);
    assert_int_equal(interval, 600);
    assert_int_equal(min_se, 600);
    /* the same 422 again asks for nothing larger: no second retry */
    assert_int_equal(sip_session_timer_on_422(m, &interval, &min_se), -EINVAL);
    sip_msg_free(m);
    static const char *const bad[] = {"", "Min-SE: none\r\n", "Min-SE: 100000\r\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        interval = min_se = 90;
        m = response(422, bad[i]);
        assert_int_equal(sip_session_timer_on_422(m, &interval, &min_se), -EINVAL);
        assert_int_equal(interval, 90);
        sip_msg_free(m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offer_headers),
        cmocka_unit_test(test_2xx_outcomes),
        cmocka_unit_test(test_422),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
