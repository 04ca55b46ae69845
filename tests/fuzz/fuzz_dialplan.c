/*
 * libFuzzer target for dialplan: what a user dials (the user part of a
 * Request-URI, any bytes) through dialplan_digits, then the normalisation
 * rules and the routes of a fixed plan, as the core runs them on every
 * call to a number. The first byte chooses whether the input also serves
 * as a rule's pattern and translation (checked, and built when valid),
 * which is what `parleyctl dialplan add` takes from an administrator.
 *
 * Seeds (corpus/dialplan/): extensions, national and international
 * numbers, with and without visual separators.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dialplan/dialplan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct dialplan *g_plan;

static void init_once(void)
{
    static const struct dialplan_rule rules[] = {
        {"extension", "^(\\d{4})$", "+1425555$1"},
        {"national", "^1?(\\d{10})$", "+1$1"},
        {"international", "^011(\\d+)$", "+$1"},
        {"alternatives", "^(0|00)?(\\d{2,3})?(\\d+)$", "+$2$3$$"},
    };
    static const struct dialplan_route_def routes[] = {
        {"north-america", "^\\+1\\d{10}$", "gw1,gw2"},
        {"world", "^\\+\\d+$", "gw2"},
    };
    char err[300];
    if (!g_plan &&
        dialplan_new(rules, 4, routes, 2, "^\\+1\\d{10}$", &g_plan, err, sizeof(err)) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    char digits[DIALPLAN_DIGITS_MAX + 1], number[DIALPLAN_DIGITS_MAX + 1];
    const char *rule, *route;
    const char *const *trunks;
    size_t n;
    if (dialplan_digits(strview_make((const char *)data, size), digits) == 0 &&
        dialplan_normalise(g_plan, digits, number, &rule) == 0) {
        (void)dialplan_is_e164(number);
        (void)dialplan_may_call(g_plan, DIALPLAN_OUTBOUND_NATIONAL, number);
        if (dialplan_route(g_plan, number, &route, &trunks, &n) == 0 &&
            (n == 0 || n > DIALPLAN_TRUNKS_MAX))
            abort();
    }
    /* the input as an administrator's rule: "PATTERN\nTRANSLATION" */
    if (size > 1 && data[0] == 'R' && size < 600) {
        char text[600];
        memcpy(text, data + 1, size - 1);
        text[size - 1] = '\0';
        char *nl = strchr(text, '\n');
        if (nl) {
            *nl = '\0';
            char err[300];
            struct dialplan_rule r = {"fuzz", text, nl + 1};
            struct dialplan *dp = NULL;
            if (dialplan_check_rule(text, nl + 1, err, sizeof(err)) == 0) {
                if (dialplan_new(&r, 1, NULL, 0, NULL, &dp, err, sizeof(err)) != 0)
                    abort(); /* a rule that passes the check must build */
                (void)dialplan_normalise(dp, "14255550101", number, &rule);
                dialplan_free(dp);
            }
        }
    }
    return 0;
}
