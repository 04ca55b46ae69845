/* core/roff: what a table says reaches the page as it is, and nothing in
 * it is taken as a roff request or escape. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/roff.h"

static char page[4096];

static const char *text(const char *prefix, const char *in)
{
    struct strbuf b = STRBUF_INIT;
    strbuf_puts(&b, prefix);
    roff_text(&b, in);
    snprintf(page, sizeof(page), "%s", strbuf_cstr(&b));
    strbuf_free(&b);
    return page;
}

static const char *literal(const char *in)
{
    struct strbuf b = STRBUF_INIT;
    roff_literal(&b, in);
    snprintf(page, sizeof(page), "%s", strbuf_cstr(&b));
    strbuf_free(&b);
    return page;
}

/* A backslash is printed, never an escape: "\fB" in a help text would
 * otherwise switch fonts, "\n" read a register. */
static void test_backslash_is_not_an_escape(void **state)
{
    (void)state;
    assert_string_equal(text("", "a\\fB b\\n"), "a\\efB b\\en");
    assert_string_equal(literal("C:\\x"), "C:\\:\\ex");
}

/* A '.' or '\'' that starts a line would be a request (".so /etc/x"). */
static void test_control_character_at_line_start(void **state)
{
    (void)state;
    assert_string_equal(text("", ".so /etc/passwd"), "\\&.so /etc/passwd");
    assert_string_equal(text("", "'br"), "\\&'br");
    assert_string_equal(text("x\n", ".TH"), "x\n\\&.TH");
    assert_string_equal(text("", "one\n.two\n'three"), "one\n\\&.two\n\\&'three");
    /* elsewhere they are plain characters */
    assert_string_equal(text("x ", ".a it's"), "x .a it's");
}

/* Options are minus signs (typed), other hyphens stay hyphens. */
static void test_hyphens(void **state)
{
    (void)state;
    assert_string_equal(text("", "re-read with --format=man or -c (--json) [--now]"),
                        "re-read with \\-\\-format=man or \\-c (\\-\\-json) [\\-\\-now]");
    assert_string_equal(text("", "--password-stdin a-b"), "\\-\\-password\\-stdin a-b");
    assert_string_equal(literal("approved-only"), "approved\\-only");
}

/* `quoted` spans are bold, their hyphens minus signs, and a span left
 * open is closed. */
static void test_backquotes(void **state)
{
    (void)state;
    assert_string_equal(text("", "run `parleyctl https rotate-key` now"),
                        "run \\fBparleyctl https rotate\\-key\\fR now");
    assert_string_equal(text("", "`open"), "\\fBopen\\fR");
    assert_string_equal(literal("`x`"), "`x`");
}

/* Long lists may break after their separators. */
static void test_literal_breaks(void **state)
{
    (void)state;
    assert_string_equal(literal("A:B,C"), "A:\\:B,\\:C");
}

static void test_title(void **state)
{
    (void)state;
    struct strbuf b = STRBUF_INIT;
    roff_title(&b, "PARLEY.CONF", "5", "File Formats");
    const char *t = strbuf_cstr(&b);
    assert_non_null(strstr(t, ".TH \"PARLEY.CONF\" \"5\" \"\" \"Parley " PARLEY_VERSION
                              "\" \"File Formats\"\n"));
    assert_non_null(strstr(t, "\n.nh\n.ad l\n"));
    assert_int_equal(t[0], '.');
    strbuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backslash_is_not_an_escape),
        cmocka_unit_test(test_control_character_at_line_start),
        cmocka_unit_test(test_hyphens),
        cmocka_unit_test(test_backquotes),
        cmocka_unit_test(test_literal_breaks),
        cmocka_unit_test(test_title),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
