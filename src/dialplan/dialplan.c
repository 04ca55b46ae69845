/*
 * The dial plan on PCRE2 (see dialplan.h).
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include "dialplan/dialplan.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pcre2.h>

/* Bounds on one match: the input is at most DIALPLAN_DIGITS_MAX
 * characters, so an honest pattern needs a tiny fraction of these. */
#define DIALPLAN_MATCH_LIMIT 100000
#define DIALPLAN_DEPTH_LIMIT 1000

struct dialplan_expr {
    pcre2_code *code;
    pcre2_match_data *match;
    uint32_t groups;
};

struct dialplan_compiled_rule {
    char name[DIALPLAN_NAME_MAX + 1];
    char translation[DIALPLAN_PATTERN_MAX + 1];
    struct dialplan_expr expr;
};

struct dialplan_compiled_route {
    char name[DIALPLAN_NAME_MAX + 1];
    struct dialplan_expr expr;
    char names[DIALPLAN_TRUNKS_MAX][DIALPLAN_NAME_MAX + 1];
    const char *trunks[DIALPLAN_TRUNKS_MAX];
    size_t ntrunks;
};

struct dialplan {
    pcre2_match_context *mctx;
    struct dialplan_compiled_rule *rules;
    size_t nrules;
    struct dialplan_compiled_route *routes;
    size_t nroutes;
    struct dialplan_expr national;
    bool have_national;
};

bool dialplan_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > DIALPLAN_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static void expr_clear(struct dialplan_expr *e)
{
    pcre2_match_data_free(e->match);
    pcre2_code_free(e->code);
    memset(e, 0, sizeof(*e));
}

/* Compiles pattern to match whole strings. */
static int expr_compile(struct dialplan_expr *e, const char *pattern, char *err, size_t errlen)
{
    memset(e, 0, sizeof(*e));
    size_t n = strlen(pattern);
    if (n == 0 || n > DIALPLAN_PATTERN_MAX) {
        snprintf(err, errlen, "a pattern has 1 to %d characters", DIALPLAN_PATTERN_MAX);
        return -EINVAL;
    }
    int code;
    PCRE2_SIZE offset;
    e->code = pcre2_compile((PCRE2_SPTR)pattern, n, PCRE2_ANCHORED | PCRE2_ENDANCHORED, &code,
                            &offset, NULL);
    if (!e->code) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(code, msg, sizeof(msg));
        snprintf(err, errlen, "pattern \"%s\": %s at character %zu", pattern, (char *)msg,
                 (size_t)offset);
        return -EINVAL;
    }
    if (pcre2_pattern_info(e->code, PCRE2_INFO_CAPTURECOUNT, &e->groups) != 0)
        e->groups = 0;
    e->match = pcre2_match_data_create_from_pattern(e->code, NULL);
    if (!e->match) {
        expr_clear(e);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

/* 1 when subject matches whole, 0 when not (or the match hit its limits:
 * a pattern that cannot decide in bounded time matches nothing). */
static int expr_match(const struct dialplan *dp, const struct dialplan_expr *e, const char *subject)
{
    int rc = pcre2_match(e->code, (PCRE2_SPTR)subject, strlen(subject), 0, 0, e->match,
                         dp ? dp->mctx : NULL);
    return rc >= 0 ? 1 : 0;
}

/* The highest group a translation names ($1..$9), or -EINVAL for a '$'
 * followed by anything else. */
static int translation_groups(const char *t)
{
    int highest = 0;
    for (const char *p = t; *p; p++) {
        if (*p != '$')
            continue;
        p++;
        if (*p == '$')
            continue;
        if (*p < '1' || *p > '9')
            return -EINVAL;
        if (*p - '0' > highest)
            highest = *p - '0';
    }
    return highest;
}

int dialplan_check_pattern(const char *pattern, char *err, size_t errlen)
{
    struct dialplan_expr e;
    int rc = expr_compile(&e, pattern ? pattern : "", err, errlen);
    expr_clear(&e);
    return rc;
}

int dialplan_check_rule(const char *pattern, const char *translation, char *err, size_t errlen)
{
    size_t tn = translation ? strlen(translation) : 0;
    if (tn == 0 || tn > DIALPLAN_PATTERN_MAX) {
        snprintf(err, errlen, "a translation has 1 to %d characters", DIALPLAN_PATTERN_MAX);
        return -EINVAL;
    }
    int highest = translation_groups(translation);
    if (highest < 0) {
        snprintf(err, errlen,
                 "translation \"%s\": '$' is followed by a group number 1-9, or by '$'",
                 translation);
        return -EINVAL;
    }
    struct dialplan_expr e;
    int rc = expr_compile(&e, pattern ? pattern : "", err, errlen);
    if (rc == 0 && (uint32_t)highest > e.groups) {
        snprintf(err, errlen, "translation \"%s\" uses $%d, but the pattern has %u group(s)",
                 translation, highest, e.groups);
        rc = -EINVAL;
    }
    expr_clear(&e);
    return rc;
}

/* Splits "gw1,gw2" into names (each valid), at most DIALPLAN_TRUNKS_MAX. */
static int trunks_split(const char *trunks, char names[DIALPLAN_TRUNKS_MAX][DIALPLAN_NAME_MAX + 1],
                        size_t *n, char *err, size_t errlen)
{
    *n = 0;
    const char *p = trunks ? trunks : "";
    for (;;) {
        size_t len = strcspn(p, ",");
        char name[DIALPLAN_NAME_MAX + 2];
        snprintf(name, sizeof(name), "%.*s", (int)(len < sizeof(name) ? len : sizeof(name) - 1), p);
        if (len > DIALPLAN_NAME_MAX || !dialplan_name_valid(name)) {
            snprintf(err, errlen, "trunks \"%s\": \"%.*s\" is not a trunk name",
                     trunks ? trunks : "", (int)len, p);
            return -EINVAL;
        }
        if (*n == DIALPLAN_TRUNKS_MAX) {
            snprintf(err, errlen, "a route lists at most %d trunks", DIALPLAN_TRUNKS_MAX);
            return -EINVAL;
        }
        snprintf(names[(*n)++], DIALPLAN_NAME_MAX + 1, "%s", name);
        if (p[len] == '\0')
            return 0;
        p += len + 1;
    }
}

int dialplan_check_trunks(const char *trunks, char *err, size_t errlen)
{
    char names[DIALPLAN_TRUNKS_MAX][DIALPLAN_NAME_MAX + 1];
    size_t n;
    return trunks_split(trunks, names, &n, err, errlen);
}

void dialplan_free(struct dialplan *dp)
{
    if (!dp)
        return;
    for (size_t i = 0; i < dp->nrules; i++)
        expr_clear(&dp->rules[i].expr);
    for (size_t i = 0; i < dp->nroutes; i++)
        expr_clear(&dp->routes[i].expr);
    expr_clear(&dp->national);
    pcre2_match_context_free(dp->mctx);
    free(dp->rules);
    free(dp->routes);
    free(dp);
}

int dialplan_new(const struct dialplan_rule *rules, size_t nrules,
                 const struct dialplan_route_def *routes, size_t nroutes, const char *national,
                 struct dialplan **out, char *err, size_t errlen)
{
    *out = NULL;
    int rc = -ENOMEM;
    char why[300];
    struct dialplan *dp = calloc(1, sizeof(*dp));
    if (!dp)
        goto fail_nomem;
    dp->mctx = pcre2_match_context_create(NULL);
    dp->rules = calloc(nrules ? nrules : 1, sizeof(*dp->rules));
    dp->routes = calloc(nroutes ? nroutes : 1, sizeof(*dp->routes));
    if (!dp->mctx || !dp->rules || !dp->routes)
        goto fail_nomem;
    pcre2_set_match_limit(dp->mctx, DIALPLAN_MATCH_LIMIT);
    pcre2_set_depth_limit(dp->mctx, DIALPLAN_DEPTH_LIMIT);
    for (size_t i = 0; i < nrules; i++, dp->nrules++) {
        struct dialplan_compiled_rule *r = &dp->rules[i];
        if (!dialplan_name_valid(rules[i].name)) {
            snprintf(err, errlen, "dial plan rule %zu: invalid name", i + 1);
            rc = -EINVAL;
            goto fail;
        }
        rc = dialplan_check_rule(rules[i].pattern, rules[i].translation, why, sizeof(why));
        if (rc == 0)
            rc = expr_compile(&r->expr, rules[i].pattern, why, sizeof(why));
        if (rc != 0) {
            snprintf(err, errlen, "dial plan rule %s: %s", rules[i].name, why);
            goto fail;
        }
        snprintf(r->name, sizeof(r->name), "%s", rules[i].name);
        snprintf(r->translation, sizeof(r->translation), "%s", rules[i].translation);
    }
    for (size_t i = 0; i < nroutes; i++, dp->nroutes++) {
        struct dialplan_compiled_route *r = &dp->routes[i];
        if (!dialplan_name_valid(routes[i].name)) {
            snprintf(err, errlen, "route %zu: invalid name", i + 1);
            rc = -EINVAL;
            goto fail;
        }
        rc = trunks_split(routes[i].trunks, r->names, &r->ntrunks, why, sizeof(why));
        if (rc == 0)
            rc = expr_compile(&r->expr, routes[i].pattern ? routes[i].pattern : "", why,
                              sizeof(why));
        if (rc != 0) {
            snprintf(err, errlen, "route %s: %s", routes[i].name, why);
            goto fail;
        }
        snprintf(r->name, sizeof(r->name), "%s", routes[i].name);
        for (size_t t = 0; t < r->ntrunks; t++)
            r->trunks[t] = r->names[t];
    }
    if (national && *national) {
        rc = expr_compile(&dp->national, national, why, sizeof(why));
        if (rc != 0) {
            snprintf(err, errlen, "national numbers: %s", why);
            goto fail;
        }
        dp->have_national = true;
    }
    *out = dp;
    return 0;
fail_nomem:
    snprintf(err, errlen, "out of memory");
    rc = -ENOMEM;
fail:
    dialplan_free(dp);
    return rc;
}

int dialplan_digits(struct strview dialled, char out[DIALPLAN_DIGITS_MAX + 1])
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < dialled.n; i++) {
        char c = dialled.p[i];
        if (c == '-' || c == '.' || c == '(' || c == ')' || c == ' ')
            continue;
        bool ok = (c >= '0' && c <= '9') || (c == '+' && n == 0);
        if (!ok)
            return -EINVAL;
        if (n == DIALPLAN_DIGITS_MAX)
            return -E2BIG;
        out[n++] = c;
    }
    out[n] = '\0';
    return n == 0 || (n == 1 && out[0] == '+') ? -EINVAL : 0;
}

bool dialplan_is_e164(const char *number)
{
    size_t n = strlen(number);
    if (n < 3 || n > 16 || number[0] != '+' || number[1] == '0')
        return false;
    for (size_t i = 1; i < n; i++)
        if (number[i] < '0' || number[i] > '9')
            return false;
    return true;
}

/* Writes the rule's translation of the last match into out. */
static int translate(const struct dialplan_compiled_rule *r, const char *subject,
                     char out[DIALPLAN_DIGITS_MAX + 1])
{
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->expr.match);
    uint32_t pairs = pcre2_get_ovector_count(r->expr.match);
    size_t n = 0;
    for (const char *p = r->translation; *p; p++) {
        const char *piece = p;
        size_t len = 1;
        if (*p == '$') {
            p++;
            if (*p != '$') {
                uint32_t g = (uint32_t)(*p - '0');
                /* a group that did not take part in the match is empty */
                if (g >= pairs || ov[2 * g] == PCRE2_UNSET)
                    continue;
                piece = subject + ov[2 * g];
                len = ov[2 * g + 1] - ov[2 * g];
            } else {
                piece = p;
            }
        }
        if (n + len > DIALPLAN_DIGITS_MAX)
            return -E2BIG;
        memcpy(out + n, piece, len);
        n += len;
    }
    out[n] = '\0';
    return 0;
}

int dialplan_normalise(const struct dialplan *dp, const char *digits,
                       char out[DIALPLAN_DIGITS_MAX + 1], const char **rule)
{
    *rule = NULL;
    for (size_t i = 0; dp && i < dp->nrules; i++) {
        if (expr_match(dp, &dp->rules[i].expr, digits) != 1)
            continue;
        *rule = dp->rules[i].name;
        return translate(&dp->rules[i], digits, out);
    }
    if (strlen(digits) > DIALPLAN_DIGITS_MAX)
        return -E2BIG;
    snprintf(out, DIALPLAN_DIGITS_MAX + 1, "%s", digits);
    return 0;
}

int dialplan_route(const struct dialplan *dp, const char *number, const char **name,
                   const char *const **trunks, size_t *ntrunks)
{
    for (size_t i = 0; dp && i < dp->nroutes; i++) {
        const struct dialplan_compiled_route *r = &dp->routes[i];
        if (expr_match(dp, &r->expr, number) != 1)
            continue;
        *name = r->name;
        *trunks = r->trunks;
        *ntrunks = r->ntrunks;
        return 0;
    }
    return -ENOENT;
}

bool dialplan_may_call(const struct dialplan *dp, enum dialplan_outbound rights, const char *number)
{
    switch (rights) {
    case DIALPLAN_OUTBOUND_ALL:
        return true;
    case DIALPLAN_OUTBOUND_NATIONAL:
        return dp && dp->have_national && expr_match(dp, &dp->national, number) == 1;
    case DIALPLAN_OUTBOUND_NONE:
        break;
    }
    return false;
}

bool dialplan_try_next_trunk(int status, long retry_after_s, long *skip_s)
{
    *skip_s = 0;
    switch (status) {
    case 503:
        if (retry_after_s > 0)
            *skip_s = retry_after_s < 3600 ? retry_after_s : 3600;
        return true;
    case 0:
    case 408:
    case 500:
    case 502:
    case 504:
        return true;
    default:
        return false;
    }
}

static const char *const outbound_names[] = {"none", "national", "all"};

int dialplan_outbound_parse(const char *text, enum dialplan_outbound *out)
{
    for (size_t i = 0; i < sizeof(outbound_names) / sizeof(outbound_names[0]); i++) {
        if (text && strcmp(text, outbound_names[i]) == 0) {
            *out = (enum dialplan_outbound)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *dialplan_outbound_name(enum dialplan_outbound o)
{
    return (size_t)o < sizeof(outbound_names) / sizeof(outbound_names[0]) ? outbound_names[o] : "?";
}
