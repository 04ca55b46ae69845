/*
 * store: the mediation tables — users' numbers and outbound rights, the
 * dial plan's normalisation rules, routes and trunks (schema 5).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "core/clock.h"
#include "dialplan/dialplan.h"
#include "store/store.h"
#include "store/store_priv.h"

/* --- numbers and outbound rights ------------------------------------------ */

static int user_read(struct store *st, sqlite3_stmt *s, void *out)
{
    return store_user_from_row(st, s, out);
}

int store_user_set_number(struct store *st, const char *name, const char *number)
{
    if (!number || (*number && !dialplan_is_e164(number))) {
        store_set_msg(st, "a number is E.164: '+' and up to 15 digits, the first not 0");
        return -EINVAL;
    }
    if (*number) {
        struct store_user owner;
        int rc = store_user_by_number(st, number, &owner);
        if (rc == 0 && strcmp(owner.name, name) != 0) {
            store_set_msg(st, "%s is %s's number", number, owner.name);
            return -EEXIST;
        }
        if (rc != 0 && rc != -ENOENT)
            return rc;
    }
    return store_user_update(
        st, "user_set_number",
        "UPDATE users SET number = nullif(?2, ''), updated = ?3 WHERE name = ?1", name, number);
}

int store_user_set_outbound(struct store *st, const char *name, const char *outbound)
{
    enum dialplan_outbound o;
    if (dialplan_outbound_parse(outbound, &o) != 0) {
        store_set_msg(st, "outbound rights are none, national or all");
        return -EINVAL;
    }
    return store_user_update(st, "user_set_outbound",
                             "UPDATE users SET outbound = ?2, updated = ?3 WHERE name = ?1", name,
                             outbound);
}

int store_user_by_number(struct store *st, const char *number, struct store_user *out)
{
    return store_get_one(st, "user_by_number",
                         "SELECT " STORE_USER_COLUMNS " FROM users WHERE number = ?1", number,
                         user_read, out);
}

/* --- dial plan, routes, trunks --------------------------------------------- */

int store_dialplan_add(struct store *st, const struct store_dialplan_rule *r)
{
    static const char op[] = "dialplan_add";
    char why[300];
    if (!dialplan_name_valid(r->name)) {
        store_set_msg(st, "a rule name is 1 to 64 of a-z 0-9 . _ -");
        return -EINVAL;
    }
    if (dialplan_check_rule(r->pattern, r->translation, why, sizeof(why)) != 0) {
        store_set_msg(st, "%s", why);
        return -EINVAL;
    }
    sqlite3_stmt *s = NULL;
    int rc = store_prepare(
        st, op, "INSERT INTO dialplan_rules (name, pattern, translation) VALUES (?1, ?2, ?3)", &s);
    if (rc == 0)
        rc = store_bind_texts(st, op, s, 3, r->name, r->pattern, r->translation);
    if (rc == 0)
        rc = store_insert_named(st, op, s, "rule", r->name);
    sqlite3_finalize(s);
    return rc;
}

int store_dialplan_remove(struct store *st, const char *name)
{
    return store_delete_by_key(st, "dialplan_remove", "DELETE FROM dialplan_rules WHERE name = ?1",
                               name, "rule");
}

struct rule_walk {
    int (*fn)(const struct store_dialplan_rule *rule, void *arg);
    void *arg;
};

static int rule_each(struct store *st, sqlite3_stmt *s, void *walk)
{
    struct rule_walk *w = walk;
    struct store_dialplan_rule r;
    int rc = store_column_copy(st, s, 0, r.name, sizeof(r.name));
    if (rc == 0)
        rc = store_column_copy(st, s, 1, r.pattern, sizeof(r.pattern));
    if (rc == 0)
        rc = store_column_copy(st, s, 2, r.translation, sizeof(r.translation));
    return rc ? rc : w->fn(&r, w->arg);
}

int store_dialplan_list(struct store *st,
                        int (*fn)(const struct store_dialplan_rule *rule, void *arg), void *arg)
{
    struct rule_walk w = {fn, arg};
    return store_list_rows(
        st, "dialplan_list",
        "SELECT name, pattern, translation FROM dialplan_rules ORDER BY position", rule_each, &w);
}

int store_route_add(struct store *st, const struct store_route *r)
{
    static const char op[] = "route_add";
    char why[300];
    if (!dialplan_name_valid(r->name)) {
        store_set_msg(st, "a route name is 1 to 64 of a-z 0-9 . _ -");
        return -EINVAL;
    }
    if (dialplan_check_pattern(r->pattern, why, sizeof(why)) != 0 ||
        dialplan_check_trunks(r->trunks, why, sizeof(why)) != 0) {
        store_set_msg(st, "%s", why);
        return -EINVAL;
    }
    /* every trunk named exists: a route to nowhere is refused now, not
     * discovered on the first call */
    for (const char *p = r->trunks; *p;) {
        size_t len = strcspn(p, ",");
        char name[STORE_DIALPLAN_NAME_MAX + 1];
        snprintf(name, sizeof(name), "%.*s", (int)len, p);
        struct store_trunk t;
        int rc = store_trunk_get(st, name, &t);
        if (rc == -ENOENT) {
            store_set_msg(st, "no trunk %s (parleyctl trunk add)", name);
            return -ENOENT;
        }
        if (rc != 0)
            return rc;
        p += len + (p[len] == ',');
    }
    sqlite3_stmt *s = NULL;
    int rc =
        store_prepare(st, op, "INSERT INTO routes (name, pattern, trunks) VALUES (?1, ?2, ?3)", &s);
    if (rc == 0)
        rc = store_bind_texts(st, op, s, 3, r->name, r->pattern, r->trunks);
    if (rc == 0)
        rc = store_insert_named(st, op, s, "route", r->name);
    sqlite3_finalize(s);
    return rc;
}

int store_route_remove(struct store *st, const char *name)
{
    return store_delete_by_key(st, "route_remove", "DELETE FROM routes WHERE name = ?1", name,
                               "route");
}

struct route_walk {
    int (*fn)(const struct store_route *route, void *arg);
    void *arg;
};

static int route_each(struct store *st, sqlite3_stmt *s, void *walk)
{
    struct route_walk *w = walk;
    struct store_route r;
    int rc = store_column_copy(st, s, 0, r.name, sizeof(r.name));
    if (rc == 0)
        rc = store_column_copy(st, s, 1, r.pattern, sizeof(r.pattern));
    if (rc == 0)
        rc = store_column_copy(st, s, 2, r.trunks, sizeof(r.trunks));
    return rc ? rc : w->fn(&r, w->arg);
}

int store_route_list(struct store *st, int (*fn)(const struct store_route *route, void *arg),
                     void *arg)
{
    struct route_walk w = {fn, arg};
    return store_list_rows(st, "route_list",
                           "SELECT name, pattern, trunks FROM routes ORDER BY position", route_each,
                           &w);
}

int store_trunk_add(struct store *st, const struct store_trunk *t)
{
    static const char op[] = "trunk_add";
    if (!dialplan_name_valid(t->name)) {
        store_set_msg(st, "a trunk name is 1 to 64 of a-z 0-9 . _ -");
        return -EINVAL;
    }
    bool tls = strcmp(t->transport, "tls") == 0, tcp = strcmp(t->transport, "tcp") == 0;
    if (!tls && !tcp) {
        store_set_msg(st, "a trunk's transport is tls or tcp");
        return -EINVAL;
    }
    if (strcmp(t->srtp_mode, "required") != 0 && strcmp(t->srtp_mode, "optional") != 0 &&
        strcmp(t->srtp_mode, "not_supported") != 0) {
        store_set_msg(st, "a trunk's srtp_mode is required, optional or not_supported");
        return -EINVAL;
    }
    if (tcp && strcmp(t->srtp_mode, "not_supported") != 0) {
        store_set_msg(st, "a TCP trunk's srtp_mode is not_supported: SDES keys never cross an "
                          "unencrypted hop (use --transport tls for SRTP toward the gateway)");
        return -EINVAL;
    }
    if (!t->gateway[0]) {
        store_set_msg(st, "a trunk needs its gateway (HOST:PORT)");
        return -EINVAL;
    }
    sqlite3_stmt *s = NULL;
    int rc =
        store_prepare(st, op,
                      "INSERT INTO trunks (name, gateway, transport, srtp_mode, address, added) "
                      "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                      &s);
    if (rc == 0)
        rc = store_bind_texts(st, op, s, 5, t->name, t->gateway, t->transport, t->srtp_mode,
                              t->address);
    if (rc == 0)
        rc = store_bind_int64(st, op, s, 6, clock_wall_s(st->clock));
    if (rc == 0)
        rc = store_insert_named(st, op, s, "trunk", t->name);
    sqlite3_finalize(s);
    return rc;
}

/* Is name one of the trunks of a route's list? */
static bool trunks_name(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        if (len == n && strncmp(p, name, n) == 0)
            return true;
        p += len + (p[len] == ',');
    }
    return false;
}

struct trunk_user {
    const char *trunk;
    char route[STORE_DIALPLAN_NAME_MAX + 1];
};

static int route_uses_trunk(const struct store_route *r, void *arg)
{
    struct trunk_user *u = arg;
    if (!trunks_name(r->trunks, u->trunk))
        return 0;
    snprintf(u->route, sizeof(u->route), "%s", r->name);
    return 1;
}

int store_trunk_remove(struct store *st, const char *name)
{
    struct trunk_user u = {.trunk = name};
    int rc = store_route_list(st, route_uses_trunk, &u);
    if (rc == 1) {
        store_set_msg(st, "route %s uses trunk %s (parleyctl route remove %s first)", u.route, name,
                      u.route);
        return -EBUSY;
    }
    if (rc != 0)
        return rc;
    return store_delete_by_key(st, "trunk_remove", "DELETE FROM trunks WHERE name = ?1", name,
                               "trunk");
}

static int trunk_row(struct store *st, sqlite3_stmt *s, struct store_trunk *t)
{
    memset(t, 0, sizeof(*t));
    int rc = store_column_copy(st, s, 0, t->name, sizeof(t->name));
    if (rc == 0)
        rc = store_column_copy(st, s, 1, t->gateway, sizeof(t->gateway));
    if (rc == 0)
        rc = store_column_copy(st, s, 2, t->transport, sizeof(t->transport));
    if (rc == 0)
        rc = store_column_copy(st, s, 3, t->srtp_mode, sizeof(t->srtp_mode));
    if (rc == 0)
        rc = store_column_copy(st, s, 4, t->address, sizeof(t->address));
    t->added = sqlite3_column_int64(s, 5);
    return rc;
}

#define TRUNK_COLUMNS "name, gateway, transport, srtp_mode, address, added"

static int trunk_read(struct store *st, sqlite3_stmt *s, void *out)
{
    return trunk_row(st, s, out);
}

int store_trunk_get(struct store *st, const char *name, struct store_trunk *out)
{
    return store_get_one(st, "trunk_get", "SELECT " TRUNK_COLUMNS " FROM trunks WHERE name = ?1",
                         name, trunk_read, out);
}

struct trunk_walk {
    int (*fn)(const struct store_trunk *trunk, void *arg);
    void *arg;
};

static int trunk_each(struct store *st, sqlite3_stmt *s, void *walk)
{
    struct trunk_walk *w = walk;
    struct store_trunk t;
    int rc = trunk_row(st, s, &t);
    return rc ? rc : w->fn(&t, w->arg);
}

int store_trunk_list(struct store *st, int (*fn)(const struct store_trunk *trunk, void *arg),
                     void *arg)
{
    struct trunk_walk w = {fn, arg};
    return store_list_rows(st, "trunk_list", "SELECT " TRUNK_COLUMNS " FROM trunks ORDER BY name",
                           trunk_each, &w);
}
