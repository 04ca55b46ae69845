/*
 * The dial plan (src/dialplan), table-driven: what users dial becomes an
 * E.164 number, a number picks its route, rights decide who may call out,
 * and bad rules are refused with a reason.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dialplan/dialplan.h"

/* A plan like a site in Redmond would write. */
static const struct dialplan_rule rules[] = {
    {"extension", "^(\\d{4})$", "+1425555$1"},
    {"local", "^(\\d{7})$", "+1425$1"},
    {"national", "^1?(\\d{10})$", "+1$1"},
    {"international", "^011(\\d+)$", "+$1"},
    {"e164", "^\\+(\\d+)$", "+$1"},
};
static const struct dialplan_route_def routes[] = {
    {"emergency", "^\\+1911$", "gw1"},
    {"north-america", "^\\+1\\d{10}$", "gw1,gw2"},
    {"world", "^\\+\\d+$", "gw2"},
};
#define NATIONAL "^\\+1\\d{10}$"

static int setup(void **state)
{
    struct dialplan *dp = NULL;
    char err[300];
    if (dialplan_new(rules, sizeof(rules) / sizeof(rules[0]), routes,
                     sizeof(routes) / sizeof(routes[0]), NATIONAL, &dp, err, sizeof(err)) != 0) {
        print_error("%s\n", err);
        return -1;
    }
    *state = dp;
    return 0;
}

static int teardown(void **state)
{
    dialplan_free(*state);
    return 0;
}

static void test_digits(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
        int rc;
    } cases[] = {
        {"+1 (425) 555-0101", "+14255550101", 0},
        {"425.555.0101", "4255550101", 0},
        {"0101", "0101", 0},
        {"+", "", -EINVAL},
        {"", "", -EINVAL},
        {"1+2", "", -EINVAL},  /* '+' only first */
        {"12a4", "", -EINVAL}, /* no letters (no *, #, pause) */
        {"+12345678901234567890123456789012", "", -E2BIG},
        {"12345678901234567890123456789012", "12345678901234567890123456789012", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[DIALPLAN_DIGITS_MAX + 1];
        int rc = dialplan_digits(strview_cstr(cases[i].in), out);
        if (rc != cases[i].rc || (rc == 0 && strcmp(out, cases[i].out) != 0))
            fail_msg("digits(\"%s\"): %d \"%s\", want %d \"%s\"", cases[i].in, rc, out, cases[i].rc,
                     cases[i].out);
    }
    assert_true(dialplan_is_e164("+14255550101"));
    assert_true(dialplan_is_e164("+44"));
    assert_false(dialplan_is_e164("+0123"));
    assert_false(dialplan_is_e164("14255550101"));
    assert_false(dialplan_is_e164("+1234567890123456")); /* 16 digits */
    assert_false(dialplan_is_e164("+1425x"));
}

static void test_normalise_and_route(void **state)
{
    struct dialplan *dp = *state;
    static const struct {
        const char *dialled, *number, *rule, *route, *trunks;
    } cases[] = {
        {"0101", "+14255550101", "extension", "north-america", "gw1,gw2"},
        {"5550101", "+14255550101", "local", "north-america", "gw1,gw2"},
        {"4255550101", "+14255550101", "national", "north-america", "gw1,gw2"},
        {"14255550101", "+14255550101", "national", "north-america", "gw1,gw2"},
        {"011442079460000", "+442079460000", "international", "world", "gw2"},
        {"+442079460000", "+442079460000", "e164", "world", "gw2"},
        {"911", "911", NULL, NULL, NULL}, /* no rule: as dialled, and no route */
        {"12", "12", NULL, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char number[DIALPLAN_DIGITS_MAX + 1];
        const char *rule;
        assert_int_equal(dialplan_normalise(dp, cases[i].dialled, number, &rule), 0);
        if (strcmp(number, cases[i].number) != 0 ||
            (rule ? !cases[i].rule || strcmp(rule, cases[i].rule) : cases[i].rule != NULL))
            fail_msg("\"%s\" became \"%s\" by %s; want \"%s\" by %s", cases[i].dialled, number,
                     rule ? rule : "(none)", cases[i].number,
                     cases[i].rule ? cases[i].rule : "(none)");
        const char *name = NULL;
        const char *const *trunks = NULL;
        size_t n = 0;
        int rc = dialplan_route(dp, number, &name, &trunks, &n);
        if (!cases[i].route) {
            assert_int_equal(rc, -ENOENT);
            continue;
        }
        assert_int_equal(rc, 0);
        assert_string_equal(name, cases[i].route);
        char list[200] = "";
        for (size_t t = 0; t < n; t++)
            snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", t ? "," : "",
                     trunks[t]);
        assert_string_equal(list, cases[i].trunks);
    }
}

static void test_outbound_rights(void **state)
{
    struct dialplan *dp = *state;
    static const struct {
        enum dialplan_outbound rights;
        const char *number;
        bool may;
    } cases[] = {
        {DIALPLAN_OUTBOUND_NONE, "+14255550101", false},
        {DIALPLAN_OUTBOUND_NATIONAL, "+14255550101", true},
        {DIALPLAN_OUTBOUND_NATIONAL, "+442079460000", false},
        {DIALPLAN_OUTBOUND_ALL, "+442079460000", true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(dialplan_may_call(dp, cases[i].rights, cases[i].number), cases[i].may);
    enum dialplan_outbound o;
    assert_int_equal(dialplan_outbound_parse("national", &o), 0);
    assert_int_equal(o, DIALPLAN_OUTBOUND_NATIONAL);
    assert_string_equal(dialplan_outbound_name(o), "national");
    assert_int_equal(dialplan_outbound_parse("some", &o), -EINVAL);
    /* without a national pattern, national rights reach nothing */
    struct dialplan *bare = NULL;
    char err[200];
    assert_int_equal(dialplan_new(NULL, 0, NULL, 0, "", &bare, err, sizeof(err)), 0);
    assert_false(dialplan_may_call(bare, DIALPLAN_OUTBOUND_NATIONAL, "+14255550101"));
    char number[DIALPLAN_DIGITS_MAX + 1];
    const char *rule;
    assert_int_equal(dialplan_normalise(bare, "0101", number, &rule), 0);
    assert_string_equal(number, "0101");
    assert_null(rule);
    dialplan_free(bare);
}

/* Rules that cannot work are refused, naming what is wrong. */
static void test_bad_rules_refused(void **state)
{
    (void)state;
    static const struct {
        const char *pattern, *translation, *why;
    } cases[] = {
        {"^(\\d{4}$", "+1$1", "missing closing parenthesis"},
        {"^(\\d{4})$", "+1$2", "uses $2, but the pattern has 1 group"},
        {"^\\d{4}$", "+1$x", "followed by a group number"},
        {"^\\d{4}$", "", "a translation has 1 to"},
        {"", "+1", "a pattern has 1 to"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[300] = "";
        assert_int_equal(
            dialplan_check_rule(cases[i].pattern, cases[i].translation, err, sizeof(err)), -EINVAL);
        if (!strstr(err, cases[i].why))
            fail_msg("rule %zu: \"%s\" does not say \"%s\"", i, err, cases[i].why);
    }
    char err[300];
    assert_int_equal(dialplan_check_trunks("gw1,gw2", err, sizeof(err)), 0);
    assert_int_equal(dialplan_check_trunks("gw1,,gw2", err, sizeof(err)), -EINVAL);
    assert_int_equal(dialplan_check_trunks("GW1", err, sizeof(err)), -EINVAL);
    assert_int_equal(dialplan_check_trunks("a,b,c,d,e,f,g,h,i", err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "at most 8"));
    struct dialplan *dp = NULL;
    struct dialplan_rule bad = {"x", "^(\\d)$", "$3"};
    assert_int_equal(dialplan_new(&bad, 1, NULL, 0, NULL, &dp, err, sizeof(err)), -EINVAL);
    assert_null(dp);
    assert_non_null(strstr(err, "dial plan rule x"));
    assert_false(dialplan_name_valid("Upper"));
    assert_false(dialplan_name_valid(""));
    assert_true(dialplan_name_valid("gw-1.a_b"));
}

/* Which answers move a call to the route's next trunk (issue 16). */
static void test_failover(void **state)
{
    (void)state;
    static const struct {
        int status;
        long retry_after, skip;
        bool next;
    } cases[] = {
        {0, 0, 0, true}, /* no connection, or no answer at all */
        {408, 0, 0, true},     {500, 0, 0, true},        {502, 0, 0, true},  {503, 0, 0, true},
        {503, 120, 120, true}, {503, 86400, 3600, true}, {504, 0, 0, true},  {404, 0, 0, false},
        {486, 0, 0, false},    {480, 0, 0, false},       {501, 0, 0, false}, {600, 0, 0, false},
        {603, 30, 0, false},   {200, 0, 0, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        long skip = -1;
        bool next = dialplan_try_next_trunk(cases[i].status, cases[i].retry_after, &skip);
        if (next != cases[i].next || skip != cases[i].skip)
            fail_msg("%d (Retry-After %ld): next %d skip %ld, want %d %ld", cases[i].status,
                     cases[i].retry_after, next, skip, cases[i].next, cases[i].skip);
    }
}

/* A pattern that backtracks catastrophically matches nothing rather than
 * stalling the core: the match limit ends it. */
static void test_backtracking_bounded(void **state)
{
    (void)state;
    struct dialplan_rule evil = {"evil", "^(\\d+)+$", "+$1"};
    struct dialplan *dp = NULL;
    char err[200];
    assert_int_equal(dialplan_new(&evil, 1, NULL, 0, NULL, &dp, err, sizeof(err)), 0);
    char number[DIALPLAN_DIGITS_MAX + 1];
    const char *rule;
    /* a digit string then a character that makes every split fail */
    assert_int_equal(dialplan_normalise(dp, "1234567890123456789012345678901+", number, &rule), 0);
    assert_null(rule);
    dialplan_free(dp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_digits),
        cmocka_unit_test_setup_teardown(test_normalise_and_route, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbound_rights, setup, teardown),
        cmocka_unit_test(test_bad_rules_refused),
        cmocka_unit_test(test_backtracking_bounded),
        cmocka_unit_test(test_failover),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
