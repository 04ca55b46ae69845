#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/prom.h"

static void test_family_lines(void **state)
{
    (void)state;
    struct strbuf b = STRBUF_INIT;
    prom_family(&b, "parley_x_total", PROM_COUNTER, "Things \"counted\", a\\b\nsecond line");
    prom_family(&b, "parley_y", PROM_GAUGE, "Now");
    prom_family(&b, "parley_z_seconds", PROM_HISTOGRAM, "Durations");
    assert_string_equal(strbuf_cstr(&b),
                        "# HELP parley_x_total Things \"counted\", a\\\\b\\nsecond line\n"
                        "# TYPE parley_x_total counter\n"
                        "# HELP parley_y Now\n"
                        "# TYPE parley_y gauge\n"
                        "# HELP parley_z_seconds Durations\n"
                        "# TYPE parley_z_seconds histogram\n");
    strbuf_free(&b);
}

static void test_samples_and_escaping(void **state)
{
    (void)state;
    struct strbuf b = STRBUF_INIT;
    prom_sample(&b, "parley_up", NULL, 0, 1);
    const char *l[] = {"method", "INVITE", "class", "2xx"};
    prom_sample(&b, "parley_r_total", l, 2, 18446744073709551615ULL);
    /* a value with every character the format escapes, and one it does not */
    const char *e[] = {"reason", "a \"quoted\" back\\slash\nnew line; {braces}=ok"};
    prom_sample(&b, "parley_f_total", e, 1, 3);
    const char *n[] = {"v", NULL};
    prom_sample(&b, "parley_n", n, 1, 0);
    prom_sample_double(&b, "parley_t_seconds", NULL, 0, 1.5);
    prom_sample_double(&b, "parley_t_seconds", NULL, 0, 1.0 / 0.0);
    assert_string_equal(strbuf_cstr(&b),
                        "parley_up 1\n"
                        "parley_r_total{method=\"INVITE\",class=\"2xx\"} 18446744073709551615\n"
                        "parley_f_total{reason=\"a \\\"quoted\\\" back\\\\slash\\nnew line; "
                        "{braces}=ok\"} 3\n"
                        "parley_n{v=\"\"} 0\n"
                        "parley_t_seconds 1.5\n"
                        "parley_t_seconds +Inf\n");
    strbuf_free(&b);
}

static void test_histogram(void **state)
{
    (void)state;
    struct prom_histogram h;
    const double bounds[] = {0.001, 0.01, 0.1};
    assert_int_equal(prom_histogram_init(&h, bounds, 3), 0);
    prom_histogram_observe(&h, 0.0005); /* first bucket */
    prom_histogram_observe(&h, 0.001);  /* on a bound: that bucket (le is <=) */
    prom_histogram_observe(&h, 0.05);
    prom_histogram_observe(&h, 2.0); /* only +Inf */
    struct strbuf b = STRBUF_INIT;
    prom_histogram_write(&b, "parley_w_seconds", &h);
    assert_string_equal(strbuf_cstr(&b), "parley_w_seconds_bucket{le=\"0.001\"} 2\n"
                                         "parley_w_seconds_bucket{le=\"0.01\"} 2\n"
                                         "parley_w_seconds_bucket{le=\"0.1\"} 3\n"
                                         "parley_w_seconds_bucket{le=\"+Inf\"} 4\n"
                                         "parley_w_seconds_sum 2.0515\n"
                                         "parley_w_seconds_count 4\n");
    strbuf_free(&b);

    /* an empty one still has every bucket, a zero sum and count */
    assert_int_equal(prom_histogram_init(&h, bounds, 3), 0);
    prom_histogram_write(&b, "e", &h);
    assert_string_equal(strbuf_cstr(&b), "e_bucket{le=\"0.001\"} 0\ne_bucket{le=\"0.01\"} 0\n"
                                         "e_bucket{le=\"0.1\"} 0\ne_bucket{le=\"+Inf\"} 0\n"
                                         "e_sum 0\ne_count 0\n");
    strbuf_free(&b);
}

static void test_histogram_bad_bounds(void **state)
{
    (void)state;
    struct prom_histogram h;
    const double unordered[] = {0.1, 0.01};
    const double repeated[] = {0.1, 0.1};
    double many[PROM_HISTOGRAM_MAX_BOUNDS + 1];
    for (size_t i = 0; i < PROM_HISTOGRAM_MAX_BOUNDS + 1; i++)
        many[i] = (double)(i + 1);
    assert_int_equal(prom_histogram_init(&h, unordered, 2), -EINVAL);
    assert_int_equal(prom_histogram_init(&h, repeated, 2), -EINVAL);
    assert_int_equal(prom_histogram_init(&h, many, PROM_HISTOGRAM_MAX_BOUNDS + 1), -EINVAL);
    assert_int_equal(prom_histogram_init(&h, many, PROM_HISTOGRAM_MAX_BOUNDS), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_family_lines),
        cmocka_unit_test(test_samples_and_escaping),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_histogram_bad_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
