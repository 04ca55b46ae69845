#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "core/netaddr.h"

static void test_parse_format_v4(void **state)
{
    (void)state;
    struct netaddr a;
    char buf[NETADDR_STRLEN];
    assert_int_equal(netaddr_parse("127.0.0.1:5061", &a), 0);
    assert_int_equal(netaddr_port(&a), 5061);
    assert_string_equal(netaddr_format(&a, buf), "127.0.0.1:5061");
    assert_string_equal(netaddr_format_ip(&a, buf), "127.0.0.1");
}

static void test_parse_format_v6(void **state)
{
    (void)state;
    struct netaddr a;
    char buf[NETADDR_STRLEN];
    assert_int_equal(netaddr_parse("[::1]:5061", &a), 0);
    assert_string_equal(netaddr_format(&a, buf), "[::1]:5061");
    assert_int_equal(netaddr_family(&a), AF_INET6);
}

static void test_same_source(void **state)
{
    (void)state;
    struct netaddr a, b;
    /* IPv6: one /64 is one source, whatever the interface identifier */
    assert_int_equal(netaddr_parse("[2001:db8:1:2::1]:5061", &a), 0);
    assert_int_equal(netaddr_parse("[2001:db8:1:2:ffff:ffff:ffff:ffff]:1", &b), 0);
    assert_true(netaddr_same_source(&a, &b));
    assert_false(netaddr_same_ip(&a, &b));
    assert_int_equal(netaddr_parse("[2001:db8:1:3::1]:5061", &b), 0);
    assert_false(netaddr_same_source(&a, &b));
    /* IPv4, and its mapped form: the whole address */
    assert_int_equal(netaddr_parse("192.0.2.1:1", &a), 0);
    assert_int_equal(netaddr_parse("[::ffff:192.0.2.1]:2", &b), 0);
    assert_true(netaddr_same_source(&a, &b));
    assert_int_equal(netaddr_parse("192.0.2.2:1", &b), 0);
    assert_false(netaddr_same_source(&a, &b));
    uint8_t k[16];
    netaddr_source_key(&a, k);
    assert_int_equal(k[15], 1);
}

static void test_parse_refusals(void **state)
{
    (void)state;
    struct netaddr a;
    const char *bad[] = {"",
                         "127.0.0.1",
                         "127.0.0.1:",
                         "127.0.0.1:65536",
                         "::1:5061",
                         "[::1]5061",
                         "[]:1",
                         "host.example:5061",
                         "1.2.3.4:12x",
                         ":5061",
                         "[127.0.0.1]:5061"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(netaddr_parse(bad[i], &a), -EINVAL);
}

static void test_cidr(void **state)
{
    (void)state;
    struct cidr c;
    struct netaddr a;
    char buf[NETADDR_STRLEN];

    assert_int_equal(cidr_parse("10.1.2.3/8", &c), 0);
    assert_string_equal(cidr_format(&c, buf), "10.0.0.0/8");
    assert_int_equal(netaddr_parse("10.200.0.1:1", &a), 0);
    assert_true(cidr_contains(&c, &a));
    assert_int_equal(netaddr_parse("11.0.0.1:1", &a), 0);
    assert_false(cidr_contains(&c, &a));
    /* IPv4-mapped IPv6 matches the IPv4 range */
    assert_int_equal(netaddr_parse("[::ffff:10.0.0.9]:1", &a), 0);
    assert_true(cidr_contains(&c, &a));

    assert_int_equal(cidr_parse("127.0.0.1", &c), 0);
    assert_int_equal(c.prefix, 32);
    assert_int_equal(cidr_parse("fc00::/7", &c), 0);
    assert_int_equal(netaddr_parse("[fd12::1]:1", &a), 0);
    assert_true(cidr_contains(&c, &a));
    assert_int_equal(netaddr_parse("[fe80::1]:1", &a), 0);
    assert_false(cidr_contains(&c, &a));
    assert_int_equal(cidr_parse("0.0.0.0/0", &c), 0);
    assert_int_equal(netaddr_parse("[2001:db8::1]:1", &a), 0);
    assert_false(cidr_contains(&c, &a)); /* an IPv4 range never holds IPv6 */

    assert_int_equal(cidr_parse("10.0.0.0/33", &c), -EINVAL);
    assert_int_equal(cidr_parse("10.0.0.0/", &c), -EINVAL);
    assert_int_equal(cidr_parse("/8", &c), -EINVAL);
    assert_int_equal(cidr_parse("10.0.0/8", &c), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_format_v4),
        cmocka_unit_test(test_parse_format_v6),
        cmocka_unit_test(test_parse_refusals),
        cmocka_unit_test(test_same_source),
        cmocka_unit_test(test_cidr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
