#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/strbuf.h"
#include "sip/uri.h"

/* Parses from an exact-size heap copy so a read past the end is caught
 * by ASan; the copy is leaked into *keep for the views to stay valid. */
static int parse(const char *text, struct sip_uri *u, char **keep)
{
    size_t n = strlen(text);
    char *copy = malloc(n ? n : 1);
    memcpy(copy, text, n);
    *keep = copy;
    return sip_uri_parse(strview_make(copy, n), u);
}

#define assert_view(v, s) assert_true(strview_eq((v), (s)))

static void test_sip_simple(void **state)
{
    (void)state;
    struct sip_uri u;
    char *k;
    assert_int_equal(parse("sip:alice@example.com", &u, &k), 0);
    assert_int_equal(u.scheme, SIP_URI_SIP);
    assert_view(u.user, "alice");
    assert_int_equal(u.password.n, 0);
    assert_view(u.host, "example.com");
    assert_false(u.host_is_ipv6);
    assert_int_equal(u.port, 0);
    assert_int_equal(u.params.n, 0);
    assert_int_equal(u.headers.n, 0);
    free(k);

    assert_int_equal(parse("SIP:registrar.example.com", &u, &k), 0);
    assert_int_equal(u.scheme, SIP_URI_SIP);
    assert_int_equal(u.user.n, 0);
    assert_view(u.host, "registrar.example.com");
    free(k);
}

static void test_sips_full(void **state)
{
    (void)state;
    struct sip_uri u;
    struct strview v;
    char *k;
    assert_int_equal(parse("sips:alice:secret@example.com:5061;transport=tls;lr"
                           "?subject=project%20x&priority=urgent",
                           &u, &k),
                     0);
    assert_int_equal(u.scheme, SIP_URI_SIPS);
    assert_view(u.user, "alice");
    assert_view(u.password, "secret");
    assert_view(u.host, "example.com");
    assert_int_equal(u.port, 5061);
    assert_view(u.params, ";transport=tls;lr");
    assert_view(u.headers, "subject=project%20x&priority=urgent");
    assert_true(sip_uri_param(&u, "transport", &v));
    assert_view(v, "tls");
    assert_true(sip_uri_param(&u, "LR", &v));
    assert_int_equal(v.n, 0);
    assert_false(sip_uri_param(&u, "maddr", &v));
    assert_false(sip_uri_param(&u, "l", &v));
    free(k);
}

static void test_ipv6(void **state)
{
    (void)state;
    struct sip_uri u;
    char *k;
    assert_int_equal(parse("sip:bob@[2001:db8::1]:5070;maddr=[2001:db8::2]", &u, &k), 0);
    assert_view(u.host, "2001:db8::1");
    assert_true(u.host_is_ipv6);
    assert_int_equal(u.port, 5070);
    assert_view(u.params, ";maddr=[2001:db8::2]");
    free(k);

    assert_int_equal(parse("sip:[::ffff:192.0.2.1]", &u, &k), 0);
    assert_view(u.host, "::ffff:192.0.2.1");
    assert_int_equal(u.port, 0);
    free(k);
}

static void test_user_part_oddities(void **state)
{
    (void)state;
    struct sip_uri u;
    char *k;
    /* RFC 4475 semiuri: ';' belongs to the user part before the '@'. */
    assert_int_equal(parse("sip:user;par=u%40example.net@example.com", &u, &k), 0);
    assert_view(u.user, "user;par=u%40example.net");
    assert_view(u.host, "example.com");
    assert_int_equal(u.params.n, 0);
    free(k);

    /* RFC 4475 esc01: an escaped URI as the user. */
    assert_int_equal(parse("sip:sips%3Auser%40example.com@example.net", &u, &k), 0);
    assert_view(u.user, "sips%3Auser%40example.com");
    assert_view(u.host, "example.net");
    free(k);

    /* RFC 4475 intmeth: user and password of unusual characters. */
    assert_int_equal(parse("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!"
                           "*pas$wo~d_too.(doesn't-it)@example.com",
                           &u, &k),
                     0);
    assert_view(u.user, "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*");
    assert_view(u.password, "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)");
    free(k);

    assert_int_equal(parse("sip:%00@host5.example.com", &u, &k), 0);
    assert_view(u.user, "%00");
    free(k);
}

static void test_tel(void **state)
{
    (void)state;
    struct sip_uri u;
    struct strview v;
    char *k;
    assert_int_equal(parse("tel:+1-201-555-0123;phone-context=example.com", &u, &k), 0);
    assert_int_equal(u.scheme, SIP_URI_TEL);
    assert_view(u.user, "+1-201-555-0123");
    assert_int_equal(u.host.n, 0);
    assert_true(sip_uri_param(&u, "phone-context", &v));
    assert_view(v, "example.com");
    free(k);

    assert_int_equal(parse("tel:7042;phone-context=example.com", &u, &k), 0);
    assert_view(u.user, "7042");
    free(k);
    assert_int_equal(parse("tel:*21#", &u, &k), 0);
    free(k);

    const char *bad[] = {"tel:",    "tel:+",      "tel:+12a4", "tel:12 34",
                         "tel:+1;", "tel:+1?x=y", "tel:+1;;a", "tel:--"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse(bad[i], &u, &k) != -EINVAL)
            fail_msg("accepted %s", bad[i]);
        free(k);
    }
}

static void test_refusals(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "sip",
        "sip:",
        ":foo",
        "1sip:host",
        "<sip:host>",
        "sip:@host",
        "sip:user@",
        "sip:user@;lr",
        "sip:host:0",
        "sip:host:65536",
        "sip:host:99999999",
        "sip:host:",
        "sip:host:5a",
        "sip:[::1",
        "sip:[::1]x",
        "sip:[]",
        "sip:[zz::1]",
        "sip:[2001:db8::1::2]",
        "sip:2001:db8::10",
        "sip:ho st",
        "sip:host ",
        "sip:host\x01",
        "sip:host\x7f",
        "sip:h\xc3\xa9te",
        "sip:host;",
        "sip:host;;lr",
        "sip:host;=x",
        "sip:host;a=",
        "sip:host;a=b=c",
        "sip:host?",
        "sip:host?a",
        "sip:host?=b",
        "sip:host?a=b&",
        "sip:us%zzer@host",
        "sip:us%4@host",
        "sip:user@host%",
        "sip:a@b@c",
        "sip:us er@host",
        "sip:user:pa@ss@host",
        "sip:user@ho>st",
        "sips:user@host;transport=tls\r\n",
    };
    struct sip_uri u;
    char *k;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse(bad[i], &u, &k) != -EINVAL)
            fail_msg("accepted \"%s\"", bad[i]);
        free(k);
    }
}

static void test_other_schemes(void **state)
{
    (void)state;
    struct sip_uri u;
    char *k;
    assert_int_equal(parse("http://www.example.com/a?b=c", &u, &k), -EPROTONOSUPPORT);
    assert_int_equal(u.scheme, 0);
    free(k);
    assert_int_equal(parse("urn:service:sos", &u, &k), -EPROTONOSUPPORT);
    free(k);
    assert_int_equal(parse("soap.beep://192.0.2.103:3002", &u, &k), -EPROTONOSUPPORT);
    free(k);
    /* Well-formed scheme but not a well-formed URI: plain refusal. */
    assert_int_equal(parse("http://www.exa mple.com", &u, &k), -EINVAL);
    free(k);
    assert_int_equal(parse("http:", &u, &k), -EINVAL);
    free(k);
}

static bool uri_eq(const char *a, const char *b)
{
    struct sip_uri ua, ub;
    char *ka = NULL, *kb = NULL;
    if (parse(a, &ua, &ka) || parse(b, &ub, &kb))
        fail_msg("unparsable %s / %s", a, b);
    bool eq = sip_uri_equal(&ua, &ub);
    assert_int_equal(eq, sip_uri_equal(&ub, &ua));
    free(ka);
    free(kb);
    return eq;
}

static void test_equal_rfc3261(void **state)
{
    (void)state;
    /* The examples of RFC 3261 §19.1.4. */
    assert_true(
        uri_eq("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"));
    assert_true(uri_eq("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"));
    assert_true(uri_eq("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"));
    assert_true(uri_eq("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"));
    assert_true(uri_eq("sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
                       "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"));
    assert_true(uri_eq("sip:alice@atlanta.com?subject=project%20x&priority=urgent",
                       "sip:alice@atlanta.com?priority=urgent&subject=project%20x"));

    assert_false(
        uri_eq("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"));
    assert_false(uri_eq("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"));
    assert_false(uri_eq("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"));
    assert_false(uri_eq("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"));
    assert_false(uri_eq("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"));
    assert_false(uri_eq("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"));
    assert_false(uri_eq("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"));

    assert_false(uri_eq("sip:alice@example.com", "sips:alice@example.com"));
    assert_false(uri_eq("sip:alice:x@example.com", "sip:alice@example.com"));
    assert_true(uri_eq("sip:[2001:db8::1]:5060", "sip:[2001:DB8:0::1]:5060"));
    assert_false(uri_eq("sip:[2001:db8::1]", "sip:[2001:db8::2]"));
    assert_true(uri_eq("sip:host;lr", "sip:host;LR"));
    assert_false(uri_eq("sip:host;maddr=a", "sip:host"));
    assert_true(uri_eq("tel:+1-201-555-0123", "tel:+12015550123"));
    assert_false(uri_eq("tel:+1-201-555-0123", "tel:+12015550124"));
    assert_false(uri_eq("tel:7042;phone-context=a.com", "tel:7042"));

    /* Long parameter lists: equal only when byte-identical. */
    char a[2048] = "sip:h", b[2048] = "sip:h";
    for (int i = 0; i < 100; i++) {
        snprintf(a + strlen(a), sizeof(a) - strlen(a), ";p%d=%d", i, i);
        snprintf(b + strlen(b), sizeof(b) - strlen(b), ";p%d=%d", 99 - i, 99 - i);
    }
    assert_true(uri_eq(a, a));
    assert_false(uri_eq(a, b));
    a[40] = '\0';
    b[40] = '\0';
    strcpy(b, a);
    strcat(b, ";zz=1");
    assert_true(uri_eq(a, b)); /* short lists still compare element-wise */
}

static void test_print(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"sips:alice:pw@example.com:5061;transport=tls?subject=x",
         "sips:alice:pw@example.com:5061;transport=tls"},
        {"sip:[2001:db8::1]:5070;lr", "sip:[2001:db8::1]:5070;lr"},
        {"sip:host", "sip:host"},
        {"tel:+1-201-555-0123;phone-context=x", "tel:+1-201-555-0123;phone-context=x"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sip_uri u, again;
        struct strbuf b = STRBUF_INIT;
        char *k;
        assert_int_equal(parse(cases[i][0], &u, &k), 0);
        sip_uri_print(&u, &b);
        assert_string_equal(strbuf_cstr(&b), cases[i][1]);
        assert_int_equal(sip_uri_parse(strview_make(b.p, b.len), &again), 0);
        assert_true(sip_uri_equal(&u, &again) || u.headers.n);
        strbuf_free(&b);
        free(k);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sip_simple),    cmocka_unit_test(test_sips_full),
        cmocka_unit_test(test_ipv6),          cmocka_unit_test(test_user_part_oddities),
        cmocka_unit_test(test_tel),           cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_other_schemes), cmocka_unit_test(test_equal_rfc3261),
        cmocka_unit_test(test_print),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
