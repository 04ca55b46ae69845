/*
 * parleyctl dialplan add|remove|list|national and route add|remove|list:
 * the dial plan in the store. Rules turn what users dial into E.164
 * numbers, tried in the order they were added; routes send a number to
 * an ordered list of trunks. Every pattern is checked (src/dialplan)
 * before it is stored: a rule that cannot compile never reaches the
 * server.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/strbuf.h"
#include "ctl/ctl.h"
#include "dialplan/dialplan.h"
#include "store/store.h"

/* Where the national pattern lives (a store setting: data, like the
 * rules, not configuration). */
#define DIALPLAN_NATIONAL_KEY "dialplan.national"

/* Tells a running parleyd to take the dial plan again; true when one did. */
static bool dialplan_tell_daemon(struct ctl *ctl)
{
    json_t *reply = NULL;
    char err[256];
    bool live = ctl_control_request(ctl->cfg, "dialplan", &reply, err, sizeof(err)) == 0 &&
                json_is_true(json_object_get(reply, "ok"));
    json_decref(reply);
    return live;
}

/* msg, and whether the running server took the change. */
static int dialplan_done(struct ctl *ctl, json_t *doc, const char *msg)
{
    bool live = dialplan_tell_daemon(ctl);
    json_object_set_new(doc, "applied_live", json_boolean(live));
    char text[1200];
    snprintf(text, sizeof(text), "%s%s", msg, live ? "; applied by the running server" : "");
    return ctl_done(ctl, doc, text);
}

static int dialplan_add(struct ctl *ctl)
{
    if (ctl->argc != 4)
        return ctl_usage(ctl, "usage: dialplan add NAME PATTERN TRANSLATION "
                              "(e.g. dialplan add extension '^(\\d{4})$' '+1425555$1')");
    struct store_dialplan_rule r;
    snprintf(r.name, sizeof(r.name), "%s", ctl->argv[1]);
    snprintf(r.pattern, sizeof(r.pattern), "%s", ctl->argv[2]);
    snprintf(r.translation, sizeof(r.translation), "%s", ctl->argv[3]);
    if (strlen(ctl->argv[2]) >= sizeof(r.pattern) || strlen(ctl->argv[3]) >= sizeof(r.translation))
        return ctl_usage(ctl, "a pattern or translation has at most %d characters",
                         DIALPLAN_PATTERN_MAX);
    struct store *st;
    int rc = ctl_open_store(ctl, &st, 0);
    if (rc)
        return rc;
    int sr = store_dialplan_add(st, &r);
    if (sr == -EEXIST)
        rc = ctl_fail(ctl, "rule %s exists (remove it first to change it)", r.name);
    else if (sr)
        rc = ctl_fail(ctl, "rule %s refused: %s", r.name, store_errmsg(st));
    rc = ctl_close_store(ctl, st, rc);
    if (rc)
        return rc;
    char msg[700];
    snprintf(msg, sizeof(msg), "rule %s: %s -> %s (after the rules before it)", r.name, r.pattern,
             r.translation);
    return dialplan_done(ctl,
                         json_pack("{s:s, s:s, s:s}", "name", r.name, "pattern", r.pattern,
                                   "translation", r.translation),
                         msg);
}

/* Removes NAME with remove(); what names the thing in messages. */
static int dialplan_remove_named(struct ctl *ctl, const char *what,
                                 int (*remove)(struct store *st, const char *name))
{
    if (ctl->argc != 2)
        return ctl_usage(ctl, "usage: %s remove NAME", what);
    const char *name = ctl->argv[1];
    struct store *st;
    int rc = ctl_open_store(ctl, &st, 0);
    if (rc)
        return rc;
    int sr = remove(st, name);
    if (sr == -ENOENT)
        rc = ctl_fail(ctl, "no %s %s", what, name);
    else if (sr)
        rc = ctl_fail(ctl, "cannot remove %s %s: %s", what, name, store_errmsg(st));
    rc = ctl_close_store(ctl, st, rc);
    if (rc)
        return rc;
    char msg[200];
    snprintf(msg, sizeof(msg), "removed %s %s", what, name);
    return dialplan_done(ctl, json_pack("{s:s}", "removed", name), msg);
}

struct dialplan_list_ctx {
    json_t *arr;
    struct strbuf text;
    int n;
};

static int dialplan_list_one(const struct store_dialplan_rule *r, void *arg)
{
    struct dialplan_list_ctx *lc = arg;
    json_array_append_new(lc->arr, json_pack("{s:s, s:s, s:s}", "name", r->name, "pattern",
                                             r->pattern, "translation", r->translation));
    strbuf_printf(&lc->text, "%2d. %-16s %-24s -> %s\n", ++lc->n, r->name, r->pattern,
                  r->translation);
    return 0;
}

static int dialplan_list(struct ctl *ctl)
{
    struct store *st;
    int rc = ctl_open_store(ctl, &st, STORE_READONLY);
    if (rc)
        return rc;
    struct dialplan_list_ctx lc = {json_array(), STRBUF_INIT, 0};
    char national[DIALPLAN_PATTERN_MAX + 1] = "";
    int sr = store_dialplan_list(st, dialplan_list_one, &lc);
    int nr = store_setting_get(st, DIALPLAN_NATIONAL_KEY, national, sizeof(national));
    rc = ctl_close_store(ctl, st, CTL_OK);
    if (sr || (nr && nr != -ENOENT)) {
        json_decref(lc.arr);
        strbuf_free(&lc.text);
        return ctl_fail(ctl, "cannot read the dial plan");
    }
    if (lc.n == 0)
        strbuf_puts(&lc.text, "no rules: numbers are taken as dialled\n");
    strbuf_printf(&lc.text, "national numbers: %s\n",
                  *national ? national : "none (dialplan national PATTERN)");
    ctl_done(ctl, json_pack("{s:o, s:s}", "rules", lc.arr, "national", national),
             strbuf_cstr(&lc.text));
    strbuf_free(&lc.text);
    return rc;
}

static int dialplan_national(struct ctl *ctl)
{
    if (ctl->argc != 2)
        return ctl_usage(ctl, "usage: dialplan national PATTERN|none "
                              "(e.g. dialplan national '^\\+1\\d{10}$')");
    const char *pattern = strcmp(ctl->argv[1], "none") == 0 ? "" : ctl->argv[1];
    char why[300];
    if (*pattern && dialplan_check_pattern(pattern, why, sizeof(why)) != 0)
        return ctl_fail(ctl, "%s", why);
    struct store *st;
    int rc = ctl_open_store(ctl, &st, 0);
    if (rc)
        return rc;
    int sr = *pattern ? store_setting_set(st, DIALPLAN_NATIONAL_KEY, pattern)
                      : store_setting_delete(st, DIALPLAN_NATIONAL_KEY);
    if (sr && sr != -ENOENT)
        rc = ctl_fail(ctl, "cannot store it: %s", store_errmsg(st));
    rc = ctl_close_store(ctl, st, rc);
    if (rc)
        return rc;
    char msg[400];
    snprintf(msg, sizeof(msg), "national numbers: %s",
             *pattern ? pattern : "none (--outbound national reaches no number)");
    return dialplan_done(ctl, json_pack("{s:s}", "national", pattern), msg);
}

int cmd_dialplan(struct ctl *ctl)
{
    int rc = ctl_load_config(ctl);
    if (rc)
        return rc;
    const char *verb = ctl->argc ? ctl->argv[0] : "";
    if (strcmp(verb, "add") == 0)
        return dialplan_add(ctl);
    if (strcmp(verb, "remove") == 0)
        return dialplan_remove_named(ctl, "rule", store_dialplan_remove);
    if (strcmp(verb, "list") == 0 && ctl->argc == 1)
        return dialplan_list(ctl);
    if (strcmp(verb, "national") == 0)
        return dialplan_national(ctl);
    return ctl_usage(ctl, "usage: dialplan add NAME PATTERN TRANSLATION | dialplan remove NAME | "
                          "dialplan list | dialplan national PATTERN|none");
}

static int route_add(struct ctl *ctl)
{
    bool missing = false;
    const char *trunks = ctl_take_option(ctl, "--trunks", &missing);
    if (missing || !trunks || ctl->argc != 3)
        return ctl_usage(ctl, "usage: route add NAME PATTERN --trunks T1[,T2...] "
                              "(e.g. route add north-america '^\\+1\\d{10}$' --trunks gw1,gw2)");
    struct store_route r;
    snprintf(r.name, sizeof(r.name), "%s", ctl->argv[1]);
    snprintf(r.pattern, sizeof(r.pattern), "%s", ctl->argv[2]);
    snprintf(r.trunks, sizeof(r.trunks), "%s", trunks);
    if (strlen(ctl->argv[2]) >= sizeof(r.pattern) || strlen(trunks) >= sizeof(r.trunks))
        return ctl_usage(ctl, "the pattern or the trunk list is too long");
    struct store *st;
    int rc = ctl_open_store(ctl, &st, 0);
    if (rc)
        return rc;
    int sr = store_route_add(st, &r);
    if (sr == -EEXIST)
        rc = ctl_fail(ctl, "route %s exists (remove it first to change it)", r.name);
    else if (sr)
        rc = ctl_fail(ctl, "route %s refused: %s", r.name, store_errmsg(st));
    rc = ctl_close_store(ctl, st, rc);
    if (rc)
        return rc;
    char msg[900];
    snprintf(msg, sizeof(msg), "route %s: %s through %s (in that order)", r.name, r.pattern,
             r.trunks);
    return dialplan_done(
        ctl, json_pack("{s:s, s:s, s:s}", "name", r.name, "pattern", r.pattern, "trunks", r.trunks),
        msg);
}

static int route_list_one(const struct store_route *r, void *arg)
{
    struct dialplan_list_ctx *lc = arg;
    json_array_append_new(lc->arr, json_pack("{s:s, s:s, s:s}", "name", r->name, "pattern",
                                             r->pattern, "trunks", r->trunks));
    strbuf_printf(&lc->text, "%2d. %-16s %-24s %s\n", ++lc->n, r->name, r->pattern, r->trunks);
    return 0;
}

static int route_list(struct ctl *ctl)
{
    struct store *st;
    int rc = ctl_open_store(ctl, &st, STORE_READONLY);
    if (rc)
        return rc;
    struct dialplan_list_ctx lc = {json_array(), STRBUF_INIT, 0};
    int sr = store_route_list(st, route_list_one, &lc);
    rc = ctl_close_store(ctl, st, CTL_OK);
    if (sr) {
        json_decref(lc.arr);
        strbuf_free(&lc.text);
        return ctl_fail(ctl, "cannot read the routes");
    }
    if (lc.n == 0)
        strbuf_puts(&lc.text, "no routes: numbers no user owns get 404\n");
    ctl_done(ctl, json_pack("{s:o}", "routes", lc.arr), strbuf_cstr(&lc.text));
    strbuf_free(&lc.text);
    return rc;
}

int cmd_route(struct ctl *ctl)
{
    int rc = ctl_load_config(ctl);
    if (rc)
        return rc;
    const char *verb = ctl->argc ? ctl->argv[0] : "";
    if (strcmp(verb, "add") == 0)
        return route_add(ctl);
    if (strcmp(verb, "remove") == 0)
        return dialplan_remove_named(ctl, "route", store_route_remove);
    if (strcmp(verb, "list") == 0 && ctl->argc == 1)
        return route_list(ctl);
    return ctl_usage(ctl, "usage: route add NAME PATTERN --trunks T1[,T2...] | route remove NAME | "
                          "route list");
}
