#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/log.h"

static char *capture(void (*fn)(void))
{
    static char out[8192];
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    log_set_fd(fds[1]);
    fn();
    log_set_fd(2);
    close(fds[1]);
    ssize_t n = read(fds[0], out, sizeof(out) - 1);
    close(fds[0]);
    out[n < 0 ? 0 : n] = '\0';
    return out;
}

static void emit_quoting(void)
{
    log_set_level(LOG_LEVEL_INFO);
    log_warn("tls.refused", "peer", "127.0.0.2:40211", "reason", "certificate untrusted", "detail",
             "a \"q\"\nline", "empty", "", "count", LOG_INT(42));
}

static void test_logfmt_quoting(void **state)
{
    (void)state;
    char *line = capture(emit_quoting);
    assert_non_null(strstr(line, " level=warn event=tls.refused peer=127.0.0.2:40211 "
                                 "reason=\"certificate untrusted\" detail=\"a \\\"q\\\"\\nline\" "
                                 "empty=\"\" count=42\n"));
    assert_int_equal(strncmp(line, "ts=", 3), 0);
    /* exactly one line */
    assert_ptr_equal(strchr(line, '\n'), line + strlen(line) - 1);
}

static void emit_filtered(void)
{
    log_set_level(LOG_LEVEL_WARN);
    log_info("should.not.appear");
    log_debug("nor.this");
    log_error("but.this");
    log_set_level(LOG_LEVEL_INFO);
}

static void test_level_filter(void **state)
{
    (void)state;
    char *out = capture(emit_filtered);
    assert_null(strstr(out, "should.not.appear"));
    assert_null(strstr(out, "nor.this"));
    assert_non_null(strstr(out, "event=but.this"));
}

static void test_level_parse(void **state)
{
    (void)state;
    enum log_level l;
    assert_int_equal(log_level_parse("debug", &l), 0);
    assert_int_equal(l, LOG_LEVEL_DEBUG);
    assert_int_equal(log_level_parse("warn", &l), 0);
    assert_int_equal(l, LOG_LEVEL_WARN);
    assert_int_equal(log_level_parse("verbose", &l), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logfmt_quoting),
        cmocka_unit_test(test_level_filter),
        cmocka_unit_test(test_level_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
