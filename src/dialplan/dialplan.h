/*
 * The dial plan: what a user dialled becomes an E.164 number, and an
 * E.164 number picks a route (an ordered list of trunks).
 *
 * Rules and routes are regular expressions (PCRE2 syntax, so `\d` works),
 * tried in order; the first that matches the whole string wins. A rule's
 * translation writes the number from the dialled string: `$1`..`$9` are
 * the pattern's groups, `$$` a dollar sign, anything else itself
 * (`^(\d{4})$` with `+142555$1` makes 4-digit extensions numbers).
 * Matching is bounded (PCRE2 match and depth limits, DIALPLAN_DIGITS_MAX
 * characters of input): a pattern that backtracks badly fails the match,
 * it never stalls the core.
 *
 * Outbound rights: `none` (no call leaves through a trunk), `national`
 * (numbers the dial plan's national pattern matches), `all`.
 *
 * A struct dialplan is built whole from the store's rows and replaced
 * whole on reload; it is used by one thread (the SIP core).
 */
#ifndef PARLEY_DIALPLAN_DIALPLAN_H
#define PARLEY_DIALPLAN_DIALPLAN_H

#include <stdbool.h>
#include <stddef.h>

#include "core/strview.h"

#define DIALPLAN_DIGITS_MAX  32  /* characters of a dialled string or number, '+' included */
#define DIALPLAN_PATTERN_MAX 256 /* characters of a pattern or a translation */
#define DIALPLAN_NAME_MAX    64
#define DIALPLAN_TRUNKS_MAX  8 /* trunks one route may list */

enum dialplan_outbound {
    DIALPLAN_OUTBOUND_NONE,
    DIALPLAN_OUTBOUND_NATIONAL,
    DIALPLAN_OUTBOUND_ALL,
};

/* A normalisation rule, as the store keeps it. */
struct dialplan_rule {
    const char *name;
    const char *pattern;
    const char *translation;
};

/* A route, as the store keeps it: trunks is "gw1,gw2". */
struct dialplan_route_def {
    const char *name;
    const char *pattern;
    const char *trunks;
};

struct dialplan;

/* Builds a dial plan; national may be NULL or "" (then `national` rights
 * reach no number). 0, -EINVAL with *err naming the rule or route and what
 * is wrong, or -ENOMEM. */
int dialplan_new(const struct dialplan_rule *rules, size_t nrules,
                 const struct dialplan_route_def *routes, size_t nroutes, const char *national,
                 struct dialplan **out, char *err, size_t errlen);
void dialplan_free(struct dialplan *dp);

/* What `parleyctl dialplan add` and `route add` check before storing:
 * the pattern compiles, within the size limits; the translation names no
 * group the pattern lacks; a trunk list has 1..DIALPLAN_TRUNKS_MAX names.
 * 0 or -EINVAL with *err. */
int dialplan_check_pattern(const char *pattern, char *err, size_t errlen);
int dialplan_check_rule(const char *pattern, const char *translation, char *err, size_t errlen);
int dialplan_check_trunks(const char *trunks, char *err, size_t errlen);
/* A rule, route or trunk name: 1..DIALPLAN_NAME_MAX of [a-z0-9._-]. */
bool dialplan_name_valid(const char *name);

/* The dialled string without RFC 3966 visual separators ("-", ".", "(",
 * ")", and spaces): "+1 (425) 555-0101" is "+14255550101". Only digits
 * and one leading '+' may remain. 0, -EINVAL, or -E2BIG (longer than
 * DIALPLAN_DIGITS_MAX). */
int dialplan_digits(struct strview dialled, char out[DIALPLAN_DIGITS_MAX + 1]);
/* "+" then 2..15 digits, the first not 0 (E.164). */
bool dialplan_is_e164(const char *number);

/* digits (dialplan_digits) after the first rule that matches: written to
 * out, with the rule's name in *rule (NULL when none matched and digits
 * is copied as it is). 0, or -E2BIG when the translation does not fit. */
int dialplan_normalise(const struct dialplan *dp, const char *digits,
                       char out[DIALPLAN_DIGITS_MAX + 1], const char **rule);

/* The first route whose pattern matches number: its name and trunks (the
 * dial plan's storage). -ENOENT when none does. */
int dialplan_route(const struct dialplan *dp, const char *number, const char **name,
                   const char *const **trunks, size_t *ntrunks);

/* May a user with these rights call number through a trunk? */
bool dialplan_may_call(const struct dialplan *dp, enum dialplan_outbound rights,
                       const char *number);

/* After a trunk's final answer to a call (status; 0 for a connection that
 * failed or a transaction that timed out without one): try the route's
 * next trunk, or end the attempt with this answer. Connection failures,
 * 408, 500, 502, 503 and 504 move on; any other final answer goes to the
 * caller (a 6xx is final everywhere, RFC 3261 §16.7). *skip_s is how long
 * to leave this trunk out of later calls: a 503's Retry-After (at most
 * an hour), else 0. */
bool dialplan_try_next_trunk(int status, long retry_after_s, long *skip_s);

int dialplan_outbound_parse(const char *text, enum dialplan_outbound *out);
const char *dialplan_outbound_name(enum dialplan_outbound o);

#endif
