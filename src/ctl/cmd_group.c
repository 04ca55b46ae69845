/*
 * parleyctl group add|set|remove|list|show|member: distribution groups in
 * the store. A group's name is a user's kind of name and users and groups
 * share one namespace; members are users and other groups (cycles are
 * allowed: expansion is bounded and visits each group once per depth).
 * The store is changed directly: the web services read it live, no
 * daemon is needed. A failure is reported with the store's reason, which
 * names what is wrong.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/strbuf.h"
#include "ctl/ctl.h"
#include "store/store.h"

/* How deep `group show` follows nested groups (as the web side does). */
#define GROUP_SHOW_DEPTH 16

#define GROUP_USAGE                                                                                \
    "usage: group add NAME [--name \"Display Name\"] | group set NAME --name \"Display Name\" | "  \
    "group remove NAME | group list | group show NAME | group member add|remove NAME USER|GROUP"

static const char *group_kind(enum store_member_kind kind)
{
    return kind == STORE_MEMBER_GROUP ? "group" : "user";
}

static int group_add_or_set(struct ctl *ctl, bool add)
{
    bool missing = false;
    const char *display = ctl_take_option(ctl, "--name", &missing);
    if (missing || ctl->argc != 2 || (!add && !display))
        return ctl_usage(ctl, "usage: group %s",
                         add ? "add NAME [--name \"Display Name\"]"
                             : "set NAME --name \"Display Name\"");
    const char *name = ctl->argv[1];
    struct store *st;
    int rc = ctl_open_store(ctl, &st, 0);
    if (rc)
        return rc;
    int sr = add ? store_group_add(st, name, display) : store_group_set_name(st, name, display);
    struct store_group g;
    if (sr == 0)
        sr = store_group_get(st, name, &g);
    if (sr)
        rc = ctl_fail(ctl, "%s", store_errmsg(st));
    rc = ctl_close_store(ctl, st, rc);
    if (rc)
        return rc;
    char msg[300];
    snprintf(msg, sizeof(msg), "%s group %s%s%s%s", add ? "added" : "changed", g.name,
             g.display_name[0] ? " (\"" : "", g.display_name, g.display_name[0] ? "\")" : "");
    return ctl_done(ctl,
                    json_pack("{s:s, s:s, s:s, s:I}", "name", g.name, "display_name",
                              g.display_name, "uid", g.uid, "created", (json_int_t)g.created),
                    msg);
}

static int group_remove(struct ctl *ctl)
{
    if (ctl->argc != 2)
        return ctl_usage(ctl, "usage: group remove NAME");
    const char *name = ctl->argv[1];
    struct store *st;
    int rc = ctl_open_store(ctl, &st, 0);
    if (rc)
        return rc;
    if (store_group_remove(st, name) != 0)
        rc = ctl_fail(ctl, "%s", store_errmsg(st));
    rc = ctl_close_store(ctl, st, rc);
    if (rc)
        return rc;
    char msg[200];
    snprintf(msg, sizeof(msg), "removed group %s", name);
    return ctl_done(ctl, json_pack("{s:s}", "removed", name), msg);
}

struct group_list_ctx {
    json_t *arr;
    struct strbuf text;
};

static int group_list_one(const struct store_group *g, void *arg)
{
    struct group_list_ctx *lc = arg;
    json_array_append_new(lc->arr, json_pack("{s:s, s:s, s:s, s:I}", "name", g->name,
                                             "display_name", g->display_name, "uid", g->uid,
                                             "created", (json_int_t)g->created));
    if (g->display_name[0])
        strbuf_printf(&lc->text, "%-24s \"%s\"\n", g->name, g->display_name);
    else
        strbuf_printf(&lc->text, "%s\n", g->name);
    return 0;
}

static int group_list(struct ctl *ctl)
{
    if (ctl->argc != 1)
        return ctl_usage(ctl, "group list takes no arguments");
    struct store *st;
    int rc = ctl_open_store(ctl, &st, STORE_READONLY);
    if (rc)
        return rc;
    struct group_list_ctx lc = {json_array(), STRBUF_INIT};
    int sr = store_group_list(st, group_list_one, &lc);
    if (sr)
        rc = ctl_fail(ctl, "cannot read the groups: %s", store_errmsg(st));
    rc = ctl_close_store(ctl, st, rc);
    if (rc == CTL_OK) {
        if (json_array_size(lc.arr) == 0)
            strbuf_puts(&lc.text, "no groups; add one with `parleyctl group add NAME`\n");
        ctl_done(ctl, json_pack("{s:O}", "groups", lc.arr), strbuf_cstr(&lc.text));
    }
    json_decref(lc.arr);
    strbuf_free(&lc.text);
    return rc;
}

struct group_show_ctx {
    json_t *members;
    json_t *users;
    struct strbuf text;
};

static int group_show_member(enum store_member_kind kind, const char *name, void *arg)
{
    struct group_show_ctx *sc = arg;
    json_array_append_new(sc->members,
                          json_pack("{s:s, s:s}", "name", name, "kind", group_kind(kind)));
    strbuf_printf(&sc->text, "  %-6s %s\n", group_kind(kind), name);
    return 0;
}

static int group_show_user(const struct store_user *u, void *arg)
{
    struct group_show_ctx *sc = arg;
    json_array_append_new(sc->users, json_string(u->name));
    strbuf_printf(&sc->text, "%s%s", json_array_size(sc->users) > 1 ? " " : "  ", u->name);
    return 0;
}

static int group_show(struct ctl *ctl)
{
    if (ctl->argc != 2)
        return ctl_usage(ctl, "usage: group show NAME");
    const char *name = ctl->argv[1];
    struct store *st;
    int rc = ctl_open_store(ctl, &st, STORE_READONLY);
    if (rc)
        return rc;
    struct group_show_ctx sc = {json_array(), json_array(), STRBUF_INIT};
    struct store_group g;
    bool truncated = false;
    int sr = store_group_get(st, name, &g);
    if (sr == 0) {
        strbuf_printf(&sc.text, "group %s%s%s%s, uid %s\nmembers:\n", g.name,
                      g.display_name[0] ? " \"" : "", g.display_name, g.display_name[0] ? "\"" : "",
                      g.uid);
        sr = store_group_members(st, name, group_show_member, &sc);
    }
    if (sr == 0) {
        if (json_array_size(sc.members) == 0)
            strbuf_puts(&sc.text, "  (none)\n");
        strbuf_puts(&sc.text, "users, through nested groups:\n");
        sr = store_group_expand(st, name, GROUP_SHOW_DEPTH, group_show_user, &sc, &truncated);
    }
    if (sr)
        rc = ctl_fail(ctl, "%s", store_errmsg(st));
    rc = ctl_close_store(ctl, st, rc);
    if (rc == CTL_OK) {
        strbuf_puts(&sc.text, json_array_size(sc.users) ? "\n" : "  (none)\n");
        if (truncated)
            strbuf_printf(&sc.text,
                          "(groups nested more than %d levels below %s were not followed)\n",
                          GROUP_SHOW_DEPTH, name);
        ctl_done(ctl,
                 json_pack("{s:s, s:s, s:s, s:I, s:O, s:O, s:b, s:i}", "name", g.name,
                           "display_name", g.display_name, "uid", g.uid, "created",
                           (json_int_t)g.created, "members", sc.members, "users", sc.users,
                           "truncated", truncated, "depth", GROUP_SHOW_DEPTH),
                 strbuf_cstr(&sc.text));
    }
    json_decref(sc.members);
    json_decref(sc.users);
    strbuf_free(&sc.text);
    return rc;
}

static int group_member(struct ctl *ctl)
{
    const char *verb = ctl->argc > 1 ? ctl->argv[1] : "";
    bool add = strcmp(verb, "add") == 0;
    if ((!add && strcmp(verb, "remove") != 0) || ctl->argc != 4)
        return ctl_usage(ctl, "usage: group member add|remove NAME USER|GROUP");
    const char *group = ctl->argv[2], *member = ctl->argv[3];
    struct store *st;
    int rc = ctl_open_store(ctl, &st, 0);
    if (rc)
        return rc;
    int sr = add ? store_group_member_add(st, group, member)
                 : store_group_member_remove(st, group, member);
    if (sr)
        rc = ctl_fail(ctl, "%s", store_errmsg(st));
    rc = ctl_close_store(ctl, st, rc);
    if (rc)
        return rc;
    char msg[300];
    snprintf(msg, sizeof(msg), "%s %s %s %s", add ? "added" : "removed", member,
             add ? "to" : "from", group);
    return ctl_done(ctl, json_pack("{s:s, s:s}", "group", group, "member", member), msg);
}

int cmd_group(struct ctl *ctl)
{
    int rc = ctl_load_config(ctl);
    if (rc)
        return rc;
    const char *verb = ctl->argc ? ctl->argv[0] : "";
    if (strcmp(verb, "add") == 0)
        return group_add_or_set(ctl, true);
    if (strcmp(verb, "set") == 0)
        return group_add_or_set(ctl, false);
    if (strcmp(verb, "remove") == 0)
        return group_remove(ctl);
    if (strcmp(verb, "list") == 0)
        return group_list(ctl);
    if (strcmp(verb, "show") == 0)
        return group_show(ctl);
    if (strcmp(verb, "member") == 0)
        return group_member(ctl);
    return ctl_usage(ctl, GROUP_USAGE);
}
