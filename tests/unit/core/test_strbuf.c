#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/strbuf.h"
#include "core/strview.h"

static void test_append_and_printf(void **state)
{
    (void)state;
    struct strbuf b = STRBUF_INIT;
    strbuf_puts(&b, "SIP/2.0 ");
    strbuf_printf(&b, "%d %s", 200, "OK");
    strbuf_putc(&b, '!');
    assert_string_equal(strbuf_cstr(&b), "SIP/2.0 200 OK!");
    assert_int_equal(b.len, 15);
    assert_int_equal(b.err, 0);
    strbuf_free(&b);
}

static void test_long_printf(void **state)
{
    (void)state;
    struct strbuf b = STRBUF_INIT;
    char big[1000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    strbuf_printf(&b, "<%s>", big);
    assert_int_equal(b.len, 1001);
    assert_int_equal(b.p[0], '<');
    assert_int_equal(b.p[1000], '>');
    strbuf_free(&b);
}

static void test_empty_cstr(void **state)
{
    (void)state;
    struct strbuf b = STRBUF_INIT;
    assert_string_equal(strbuf_cstr(&b), "");
    strbuf_free(&b);
}

static void test_strview_numbers(void **state)
{
    (void)state;
    unsigned long long v;
    assert_int_equal(strview_to_u64(strview_cstr("70"), 255, &v), 0);
    assert_int_equal(v, 70);
    assert_int_equal(strview_to_u64(strview_cstr("256"), 255, &v), -ERANGE);
    assert_int_equal(strview_to_u64(strview_cstr("18446744073709551616"), ~0ULL, &v), -ERANGE);
    assert_int_equal(strview_to_u64(strview_cstr("12a"), 255, &v), -EINVAL);
    assert_int_equal(strview_to_u64(strview_cstr(""), 255, &v), -EINVAL);
    assert_int_equal(strview_to_u64(strview_cstr("-1"), 255, &v), -EINVAL);
}

static void test_strview_trim_copy(void **state)
{
    (void)state;
    char out[4];
    struct strview v = strview_trim(strview_cstr(" \tabc  "));
    assert_true(strview_eq(v, "abc"));
    assert_int_equal(strview_copy(v, out, sizeof(out)), 0);
    assert_string_equal(out, "abc");
    assert_int_equal(strview_copy(strview_cstr("abcd"), out, sizeof(out)), -ENOSPC);
    assert_string_equal(out, "abc");
    /* a copy of its own, NUL-terminated: a view into the middle of a line */
    char *d = strview_dup(strview_make("tag=abc;x", 7));
    assert_non_null(d);
    assert_string_equal(d, "tag=abc");
    free(d);
    d = strview_dup(STRVIEW_EMPTY);
    assert_non_null(d);
    assert_string_equal(d, "");
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_and_printf), cmocka_unit_test(test_long_printf),
        cmocka_unit_test(test_empty_cstr),        cmocka_unit_test(test_strview_numbers),
        cmocka_unit_test(test_strview_trim_copy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
