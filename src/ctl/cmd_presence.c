/*
 * parleyctl presence allow|block|unset|list: who may see a user's
 * presence. Rules are stored; a running parleyd is told so it re-checks the
 * user's watchers at once (a watcher who lost the right is cut off).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/strbuf.h"
#include "ctl/ctl.h"
#include "store/store.h"

static int presence_open(struct ctl *ctl, struct store **st, int flags)
{
    char err[1024], path[4096];
    snprintf(path, sizeof(path), "%s/parley.db", ctl->cfg->state_dir);
    if (store_open(path, flags, st, err, sizeof(err)) != 0)
        return ctl_fail(ctl, "%s", err);
    return CTL_OK;
}

/* WATCHER is user@domain or a bare name in our domain. */
static int presence_watcher(struct ctl *ctl, const char *in, char *out, size_t cap)
{
    if (strchr(in, '@'))
        snprintf(out, cap, "%s", in);
    else
        snprintf(out, cap, "%s@%s", in, ctl->cfg->server.domain);
    const char *at = strchr(out, '@');
    if (at == out || !at[1] || strchr(at + 1, '@') || strpbrk(out, " \t<>\"';,"))
        return ctl_usage(ctl, "\"%s\" is not a watcher: give user@domain or a user name", in);
    return CTL_OK;
}

static const char *presence_rule_name(enum store_presence_rule r)
{
    return r == STORE_PRESENCE_ALLOW ? "allow" : r == STORE_PRESENCE_BLOCK ? "block" : "none";
}

struct presence_list_ctx {
    json_t *arr;
    struct strbuf text;
};

static int presence_list_one(const char *watcher, enum store_presence_rule rule, void *arg)
{
    struct presence_list_ctx *lc = arg;
    json_array_append_new(
        lc->arr, json_pack("{s:s, s:s}", "watcher", watcher, "rule", presence_rule_name(rule)));
    strbuf_printf(&lc->text, "%-6s %s\n", presence_rule_name(rule), watcher);
    return 0;
}

int cmd_presence(struct ctl *ctl)
{
    if (ctl->argc < 2)
        return ctl_usage(ctl,
                         "usage: presence allow|block|unset USER WATCHER | presence list USER");
    const char *verb = ctl->argv[0], *user = ctl->argv[1];
    int rc = ctl_load_config(ctl);
    if (rc)
        return rc;
    if (!store_user_name_valid(user))
        return ctl_fail(ctl, "\"%s\" is not a valid user name", user);

    if (strcmp(verb, "list") == 0) {
        if (ctl->argc != 2)
            return ctl_usage(ctl, "usage: presence list USER");
        struct store *st;
        if ((rc = presence_open(ctl, &st, STORE_READONLY)))
            return rc;
        struct presence_list_ctx lc = {json_array(), STRBUF_INIT};
        strbuf_printf(&lc.text, "presence policy: %s\n", ctl->cfg->presence.policy);
        int sr = store_presence_rule_list(st, user, presence_list_one, &lc);
        store_close(st);
        if (sr) {
            json_decref(lc.arr);
            strbuf_free(&lc.text);
            return ctl_fail(ctl, "cannot read the rules of %s", user);
        }
        if (json_array_size(lc.arr) == 0)
            strbuf_printf(&lc.text, "no rules for %s\n", user);
        ctl_done(ctl,
                 json_pack("{s:s, s:s, s:o}", "user", user, "policy", ctl->cfg->presence.policy,
                           "rules", lc.arr),
                 strbuf_cstr(&lc.text));
        strbuf_free(&lc.text);
        return CTL_OK;
    }

    enum store_presence_rule rule;
    if (strcmp(verb, "allow") == 0)
        rule = STORE_PRESENCE_ALLOW;
    else if (strcmp(verb, "block") == 0)
        rule = STORE_PRESENCE_BLOCK;
    else if (strcmp(verb, "unset") == 0)
        rule = STORE_PRESENCE_NONE;
    else
        return ctl_usage(ctl, "unknown presence command \"%s\"", verb);
    if (ctl->argc != 3)
        return ctl_usage(ctl, "usage: presence %s USER WATCHER", verb);
    char watcher[256];
    if ((rc = presence_watcher(ctl, ctl->argv[2], watcher, sizeof(watcher))))
        return rc;

    struct store *st;
    if ((rc = presence_open(ctl, &st, 0)))
        return rc;
    struct store_user u;
    if (store_user_get(st, user, &u) != 0) {
        store_close(st);
        return ctl_fail(ctl, "no user %s", user);
    }
    int sr = store_presence_rule_set(st, user, watcher, rule);
    if (sr) {
        rc = ctl_fail(ctl, "cannot store the rule: %s", store_errmsg(st));
        store_close(st);
        return rc;
    }
    if (store_close(st) != 0)
        return ctl_fail(ctl, "closing the store failed");

    /* tell a running server, so it applies the rule now */
    json_t *req = json_pack("{s:s, s:s}", "command", "presence-rules", "user", user);
    json_t *reply = NULL;
    char err[256];
    bool live = ctl_control_send(ctl->cfg, req, &reply, err, sizeof(err)) == 0;
    json_decref(req);
    json_decref(reply);

    char msg[512];
    snprintf(msg, sizeof(msg), "%s: %s %s%s", user, presence_rule_name(rule), watcher,
             live ? " (applied by the running server)" : "");
    return ctl_done(ctl,
                    json_pack("{s:s, s:s, s:s, s:b}", "user", user, "watcher", watcher, "rule",
                              presence_rule_name(rule), "applied_live", live),
                    msg);
}
