/*
 * store: the directory (schema 6) — users' profiles, distribution groups,
 * conferences and who may see their content, and the address book's
 * change log. The clean-ups when a user or a group goes and the change log
 * itself are SQLite triggers (store.c's migration 5 -> 6), so that every
 * writer keeps them; what is here checks arguments and says why.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "core/clock.h"
#include "store/store.h"
#include "store/store_priv.h"

/* --- checks ------------------------------------------------------------- */

/* Length of the UTF-8 sequence at p (at most n bytes), 0 when it is not
 * well-formed: no overlong forms, no surrogates, nothing above U+10FFFF. */
static size_t utf8_char(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    size_t len;
    unsigned min, cp;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        min = 0x80;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        min = 0x800;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        min = 0x10000;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* Well-formed UTF-8 of at most max bytes with no control character
 * (< 0x20, 0x7f); a card or a header line carries it as it is. */
static bool text_valid(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);
    if (n > max)
        return false;
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        if (p[i] < 0x20 || p[i] == 0x7f)
            return false;
        size_t len = utf8_char(p + i, n - i);
        if (len == 0)
            return false;
        i += len;
    }
    return true;
}

bool store_display_name_valid(const char *display_name)
{
    return display_name && text_valid(display_name, STORE_DISPLAY_NAME_MAX);
}

bool store_email_valid(const char *email)
{
    if (!email || !text_valid(email, STORE_EMAIL_MAX))
        return false;
    if (!*email)
        return true;
    /* a plain addr-spec: nothing that would make it a display name, a
     * list or a route, and exactly one '@' between two non-empty parts */
    if (strpbrk(email, " <>,;:\"\\"))
        return false;
    const char *at = strchr(email, '@');
    return at && at != email && at[1] && !strchr(at + 1, '@');
}

static int check_name(struct store *st, const char *name, const char *what)
{
    if (store_user_name_valid(name))
        return 0;
    store_set_msg(st, "invalid %s name: 1 to 64 of a-z 0-9 . _ -, starting with a letter or digit",
                  what);
    return -EINVAL;
}

static int check_display_name(struct store *st, const char *display_name)
{
    if (!display_name || store_display_name_valid(display_name))
        return 0;
    store_set_msg(st, "a display name is UTF-8 without control characters, at most %d bytes",
                  STORE_DISPLAY_NAME_MAX);
    return -EINVAL;
}

/* --- profiles ------------------------------------------------------------- */

int store_user_set_profile(struct store *st, const char *name, const char *display_name,
                           const char *email)
{
    static const char op[] = "user_set_profile";
    int rc = check_name(st, name, "user");
    if (rc == 0)
        rc = check_display_name(st, display_name);
    if (rc < 0)
        return rc;
    if (email && !store_email_valid(email)) {
        store_set_msg(st,
                      "an e-mail address is a plain user@domain: no spaces, control characters "
                      "or <>,;:\"\\, at most %d bytes",
                      STORE_EMAIL_MAX);
        return -EINVAL;
    }
    sqlite3_stmt *s = NULL;
    rc = store_prepare(st, op,
                       "UPDATE users SET display_name = coalesce(?2, display_name), "
                       "email = coalesce(?3, email), updated = ?4 WHERE name = ?1",
                       &s);
    if (rc == 0)
        rc = store_bind_texts(st, op, s, 3, name, display_name, email);
    if (rc == 0)
        rc = store_bind_int64(st, op, s, 4, clock_wall_s(st->clock));
    if (rc == 0)
        rc = store_step_done(st, op, s);
    if (rc == 0 && sqlite3_changes(st->db) == 0) {
        store_set_msg(st, "no user %s", name);
        rc = -ENOENT;
    }
    sqlite3_finalize(s);
    return rc;
}

/* --- members: users and groups share one namespace ------------------------ */

static int exists_read(struct store *st, sqlite3_stmt *s, void *out)
{
    (void)st;
    (void)s;
    *(bool *)out = true;
    return 0;
}

/* What `name` is: a user or a group; -ENOENT (message "no user or group
 * NAME") when neither. */
static int member_kind(struct store *st, const char *name, enum store_member_kind *kind)
{
    bool found = false;
    int rc = store_get_one(st, "member_kind", "SELECT 1 FROM users WHERE name = ?1", name,
                           exists_read, &found);
    if (rc == 0) {
        *kind = STORE_MEMBER_USER;
        return 0;
    }
    if (rc != -ENOENT)
        return rc;
    rc = store_get_one(st, "member_kind", "SELECT 1 FROM groups WHERE name = ?1", name, exists_read,
                       &found);
    if (rc == 0) {
        *kind = STORE_MEMBER_GROUP;
        return 0;
    }
    if (rc == -ENOENT)
        store_set_msg(st, "no user or group %s", name);
    return rc;
}

static const char *kind_text(enum store_member_kind kind)
{
    return kind == STORE_MEMBER_GROUP ? "group" : "user";
}

static enum store_member_kind kind_of(sqlite3_stmt *s, int col)
{
    const char *k = (const char *)sqlite3_column_text(s, col);
    return k && strcmp(k, "group") == 0 ? STORE_MEMBER_GROUP : STORE_MEMBER_USER;
}

struct member_walk {
    int (*fn)(enum store_member_kind kind, const char *name, void *arg);
    void *arg;
};

static int member_each(struct store *st, sqlite3_stmt *s, void *walk)
{
    struct member_walk *w = walk;
    char name[STORE_USER_NAME_MAX + 1];
    int rc = store_column_copy(st, s, 1, name, sizeof(name));
    return rc ? rc : w->fn(kind_of(s, 0), name, w->arg);
}

/* Lists (kind, member) rows of sql by key (?1). */
static int members_list(struct store *st, const char *op, const char *sql, const char *key,
                        struct member_walk *w)
{
    sqlite3_stmt *s = NULL;
    int rc = store_prepare(st, op, sql, &s);
    if (rc == 0)
        rc = store_bind_texts(st, op, s, 1, key);
    while (rc == 0) {
        int src = sqlite3_step(s);
        if (src == SQLITE_DONE)
            break;
        if (src != SQLITE_ROW) {
            rc = store_fail(st, op, src);
            break;
        }
        rc = member_each(st, s, w);
    }
    sqlite3_finalize(s);
    return rc;
}

/* --- groups ----------------------------------------------------------------- */

#define GROUP_COLUMNS "name, display_name, uid, created"

static int group_read(struct store *st, sqlite3_stmt *s, void *out)
{
    struct store_group *g = out;
    memset(g, 0, sizeof(*g));
    int rc = store_column_copy(st, s, 0, g->name, sizeof(g->name));
    if (rc == 0)
        rc = store_column_copy(st, s, 1, g->display_name, sizeof(g->display_name));
    if (rc == 0)
        rc = store_column_copy(st, s, 2, g->uid, sizeof(g->uid));
    g->created = sqlite3_column_int64(s, 3);
    return rc;
}

int store_group_add(struct store *st, const char *name, const char *display_name)
{
    static const char op[] = "group_add";
    int rc = check_name(st, name, "group");
    if (rc == 0)
        rc = check_display_name(st, display_name);
    if (rc < 0)
        return rc;
    sqlite3_stmt *s = NULL;
    rc = store_prepare(st, op,
                       "INSERT INTO groups (name, display_name, uid, created) "
                       "VALUES (?1, coalesce(?2, ''), lower(hex(randomblob(16))), ?3)",
                       &s);
    if (rc == 0)
        rc = store_bind_texts(st, op, s, 2, name, display_name);
    if (rc == 0)
        rc = store_bind_int64(st, op, s, 3, clock_wall_s(st->clock));
    if (rc == 0) {
        int src = sqlite3_step(s);
        if (src == SQLITE_CONSTRAINT_PRIMARYKEY) {
            store_set_msg(st, "group %s exists", name);
            rc = -EEXIST;
        } else if (src == SQLITE_CONSTRAINT_TRIGGER &&
                   strstr(sqlite3_errmsg(st->db), "taken by a user")) {
            store_set_msg(st, "user %s exists (users and groups share one namespace)", name);
            rc = -EEXIST;
        } else if (src != SQLITE_DONE) {
            rc = store_fail(st, op, src);
        }
    }
    sqlite3_finalize(s);
    return rc;
}

int store_group_remove(struct store *st, const char *name)
{
    int rc = check_name(st, name, "group");
    if (rc < 0)
        return rc;
    /* the foreign key and the triggers take its memberships and allow
     * entries with it */
    return store_delete_by_key(st, "group_remove", "DELETE FROM groups WHERE name = ?1", name,
                               "group");
}

int store_group_set_name(struct store *st, const char *name, const char *display_name)
{
    static const char op[] = "group_set_name";
    int rc = check_name(st, name, "group");
    if (rc == 0 && !display_name) {
        store_set_msg(st, "no display name given");
        rc = -EINVAL;
    }
    if (rc == 0)
        rc = check_display_name(st, display_name);
    if (rc < 0)
        return rc;
    sqlite3_stmt *s = NULL;
    rc = store_prepare(st, op, "UPDATE groups SET display_name = ?2 WHERE name = ?1", &s);
    if (rc == 0)
        rc = store_bind_texts(st, op, s, 2, name, display_name);
    if (rc == 0)
        rc = store_step_done(st, op, s);
    if (rc == 0 && sqlite3_changes(st->db) == 0) {
        store_set_msg(st, "no group %s", name);
        rc = -ENOENT;
    }
    sqlite3_finalize(s);
    return rc;
}

int store_group_get(struct store *st, const char *name, struct store_group *out)
{
    int rc = check_name(st, name, "group");
    if (rc == 0)
        rc = store_get_one(st, "group_get", "SELECT " GROUP_COLUMNS " FROM groups WHERE name = ?1",
                           name, group_read, out);
    if (rc == -ENOENT)
        store_set_msg(st, "no group %s", name);
    return rc;
}

struct group_walk {
    int (*fn)(const struct store_group *g, void *arg);
    void *arg;
};

static int group_each(struct store *st, sqlite3_stmt *s, void *walk)
{
    struct group_walk *w = walk;
    struct store_group g;
    int rc = group_read(st, s, &g);
    return rc ? rc : w->fn(&g, w->arg);
}

/* The two lists of users and groups the store keeps for an owner: a
 * group's members and a conference's allow entries. One way to add and
 * remove for both. */
struct member_set {
    const char *what;                     /* "group", "conference": the owner */
    const char *add_op, *remove_op;       /* for store_fail */
    const char *insert_sql;               /* ?1 owner, ?2 member, ?3 kind */
    const char *delete_sql;               /* ?1 owner, ?2 member */
    const char *list_op, *list_sql;       /* ?1 owner: kind, member by name */
    const char *already_fmt, *absent_fmt; /* member, owner */
    int (*owner_exists)(struct store *st, const char *name);
};

static int group_exists(struct store *st, const char *name)
{
    struct store_group g;
    return store_group_get(st, name, &g);
}

static int conference_exists(struct store *st, const char *name)
{
    struct store_conference c;
    return store_conference_get(st, name, &c);
}

static const struct member_set group_members_set = {
    "group",
    "group_member_add",
    "group_member_remove",
    "INSERT INTO group_members (group_name, member, kind) VALUES (?1, ?2, ?3)",
    "DELETE FROM group_members WHERE group_name = ?1 AND member = ?2",
    "group_members",
    "SELECT kind, member FROM group_members WHERE group_name = ?1 ORDER BY member",
    "%s is a member of %s already",
    "%s is not a member of %s",
    group_exists,
};

static const struct member_set conference_allow_set = {
    "conference",
    "conference_allow",
    "conference_disallow",
    "INSERT INTO conference_allow (conference, member, kind) VALUES (?1, ?2, ?3)",
    "DELETE FROM conference_allow WHERE conference = ?1 AND member = ?2",
    "conference_allowed",
    "SELECT kind, member FROM conference_allow WHERE conference = ?1 ORDER BY member",
    "%s is allowed in %s already",
    "%s is not allowed in %s",
    conference_exists,
};

static int member_add(struct store *st, const struct member_set *ms, const char *owner,
                      const char *member)
{
    const char *op = ms->add_op;
    int rc = check_name(st, owner, ms->what);
    if (rc == 0)
        rc = check_name(st, member, "member");
    if (rc < 0)
        return rc;
    rc = store_begin(st, op);
    if (rc < 0)
        return rc;
    enum store_member_kind kind = STORE_MEMBER_USER;
    sqlite3_stmt *s = NULL;
    rc = ms->owner_exists(st, owner);
    if (rc == 0)
        rc = member_kind(st, member, &kind);
    if (rc == 0)
        rc = store_prepare(st, op, ms->insert_sql, &s);
    if (rc == 0)
        rc = store_bind_texts(st, op, s, 3, owner, member, kind_text(kind));
    if (rc == 0) {
        int src = sqlite3_step(s);
        if (src == SQLITE_CONSTRAINT_PRIMARYKEY) {
            store_set_msg(st, ms->already_fmt, member, owner);
            rc = -EEXIST;
        } else if (src != SQLITE_DONE) {
            rc = store_fail(st, op, src);
        }
    }
    sqlite3_finalize(s);
    return store_end(st, op, rc);
}

static int member_remove(struct store *st, const struct member_set *ms, const char *owner,
                         const char *member)
{
    const char *op = ms->remove_op;
    int rc = check_name(st, owner, ms->what);
    if (rc == 0)
        rc = check_name(st, member, "member");
    if (rc < 0)
        return rc;
    sqlite3_stmt *s = NULL;
    rc = store_prepare(st, op, ms->delete_sql, &s);
    if (rc == 0)
        rc = store_bind_texts(st, op, s, 2, owner, member);
    if (rc == 0)
        rc = store_step_done(st, op, s);
    if (rc == 0 && sqlite3_changes(st->db) == 0) {
        rc = ms->owner_exists(st, owner);
        if (rc == 0) {
            store_set_msg(st, ms->absent_fmt, member, owner);
            rc = -ENOENT;
        }
    }
    sqlite3_finalize(s);
    return rc;
}

/* Every member, users and groups, ordered by name; -ENOENT for no owner. */
static int member_list(struct store *st, const struct member_set *ms, const char *owner,
                       int (*fn)(enum store_member_kind kind, const char *name, void *arg),
                       void *arg)
{
    int rc = ms->owner_exists(st, owner);
    if (rc < 0)
        return rc;
    struct member_walk w = {fn, arg};
    return members_list(st, ms->list_op, ms->list_sql, owner, &w);
}

int store_group_list(struct store *st, int (*fn)(const struct store_group *g, void *arg), void *arg)
{
    struct group_walk w = {fn, arg};
    return store_list_rows(st, "group_list", "SELECT " GROUP_COLUMNS " FROM groups ORDER BY name",
                           group_each, &w);
}

int store_group_member_add(struct store *st, const char *group, const char *member)
{
    if (check_name(st, group, "group") == 0 && check_name(st, member, "member") == 0 &&
        strcmp(group, member) == 0) {
        store_set_msg(st, "a group cannot be a member of itself");
        return -EINVAL;
    }
    return member_add(st, &group_members_set, group, member);
}

int store_group_member_remove(struct store *st, const char *group, const char *member)
{
    return member_remove(st, &group_members_set, group, member);
}

int store_group_members(struct store *st, const char *group,
                        int (*fn)(enum store_member_kind kind, const char *name, void *arg),
                        void *arg)
{
    return member_list(st, &group_members_set, group, fn, arg);
}

/*
 * Expansion through nested groups: reach(name, kind, depth) holds every
 * member found and how many group levels below the start it sits (the
 * start's own members are at 1). A group is followed when it sits at most
 * ?2 levels down. UNION drops a row seen before, so a cycle ends at the
 * bound; and since a group reachable at all is reachable through distinct
 * groups, no group's shallowest place is deeper than there are groups:
 * bounding ?2 by that count changes no answer and keeps a cycle under a
 * huge max_depth from going round billions of times.
 */
#define REACH_STEP                                                                                 \
    "  UNION"                                                                                      \
    "  SELECT m.member, m.kind, r.depth + 1 FROM reach r"                                          \
    "    JOIN group_members m ON m.group_name = r.name"                                            \
    "    WHERE r.kind = 'group' AND r.depth <= min(?2, (SELECT count(*) FROM groups))"

#define REACH_FROM_GROUP                                                                           \
    "WITH RECURSIVE reach(name, kind, depth) AS (  VALUES (?1, 'group', 0)" REACH_STEP ") "

struct user_walk {
    int (*fn)(const struct store_user *user, void *arg);
    void *arg;
};

static int user_each(struct store *st, sqlite3_stmt *s, void *walk)
{
    struct user_walk *w = walk;
    struct store_user u;
    int rc = store_user_from_row(st, s, &u);
    return rc ? rc : w->fn(&u, w->arg);
}

/* Runs a statement with ?1 = text, ?2 = max_depth; `each` reads each row. */
static int reach_query(struct store *st, const char *op, const char *sql, const char *text,
                       unsigned max_depth,
                       int (*each)(struct store *st, sqlite3_stmt *s, void *walk), void *walk)
{
    sqlite3_stmt *s = NULL;
    int rc = store_prepare(st, op, sql, &s);
    if (rc == 0)
        rc = store_bind_texts(st, op, s, 1, text);
    if (rc == 0)
        rc = store_bind_int64(st, op, s, 2, (int64_t)max_depth);
    while (rc == 0) {
        int src = sqlite3_step(s);
        if (src == SQLITE_DONE)
            break;
        if (src != SQLITE_ROW) {
            rc = store_fail(st, op, src);
            break;
        }
        rc = each(st, s, walk);
    }
    sqlite3_finalize(s);
    return rc;
}

static int bool_each(struct store *st, sqlite3_stmt *s, void *walk)
{
    (void)st;
    *(bool *)walk = sqlite3_column_int(s, 0) != 0;
    return 0;
}

int store_group_expand(struct store *st, const char *group, unsigned max_depth,
                       int (*fn)(const struct store_user *user, void *arg), void *arg,
                       bool *truncated)
{
    static const char op[] = "group_expand";
    struct store_group g;
    bool deep = false;
    int rc = store_group_get(st, group, &g);
    /* truncated: a group that was not followed, with members to lose */
    if (rc == 0)
        rc = reach_query(st, op,
                         REACH_FROM_GROUP
                         "SELECT EXISTS (SELECT 1 FROM (SELECT name FROM reach WHERE kind = "
                         "'group' GROUP BY name HAVING min(depth) > ?2) AS deep "
                         "JOIN group_members m ON m.group_name = deep.name)",
                         group, max_depth, bool_each, &deep);
    if (rc < 0)
        return rc;
    if (truncated)
        *truncated = deep;
    struct user_walk w = {fn, arg};
    return reach_query(st, op,
                       REACH_FROM_GROUP
                       "SELECT " STORE_USER_COLUMNS " FROM users WHERE name IN "
                       "(SELECT name FROM reach WHERE kind = 'user') ORDER BY name",
                       group, max_depth, user_each, &w);
}

/* --- conferences ------------------------------------------------------------ */

#define CONFERENCE_COLUMNS "name, organizer, uid, created"

static int conference_read(struct store *st, sqlite3_stmt *s, void *out)
{
    struct store_conference *c = out;
    memset(c, 0, sizeof(*c));
    int rc = store_column_copy(st, s, 0, c->name, sizeof(c->name));
    if (rc == 0)
        rc = store_column_copy(st, s, 1, c->organizer, sizeof(c->organizer));
    if (rc == 0)
        rc = store_column_copy(st, s, 2, c->uid, sizeof(c->uid));
    c->created = sqlite3_column_int64(s, 3);
    return rc;
}

int store_conference_add(struct store *st, const char *name, const char *organizer)
{
    static const char op[] = "conference_add";
    int rc = check_name(st, name, "conference");
    if (rc == 0)
        rc = check_name(st, organizer, "organizer's user");
    if (rc < 0)
        return rc;
    sqlite3_stmt *s = NULL;
    rc = store_prepare(st, op,
                       "INSERT INTO conferences (name, organizer, uid, created) "
                       "VALUES (?1, ?2, lower(hex(randomblob(16))), ?3)",
                       &s);
    if (rc == 0)
        rc = store_bind_texts(st, op, s, 2, name, organizer);
    if (rc == 0)
        rc = store_bind_int64(st, op, s, 3, clock_wall_s(st->clock));
    if (rc == 0) {
        int src = sqlite3_step(s);
        if (src == SQLITE_CONSTRAINT_PRIMARYKEY) {
            store_set_msg(st, "conference %s exists", name);
            rc = -EEXIST;
        } else if (src == SQLITE_CONSTRAINT_FOREIGNKEY) {
            store_set_msg(st, "no user %s (the organizer is a user)", organizer);
            rc = -ENOENT;
        } else if (src != SQLITE_DONE) {
            rc = store_fail(st, op, src);
        }
    }
    sqlite3_finalize(s);
    return rc;
}

int store_conference_remove(struct store *st, const char *name)
{
    int rc = check_name(st, name, "conference");
    if (rc < 0)
        return rc;
    return store_delete_by_key(st, "conference_remove", "DELETE FROM conferences WHERE name = ?1",
                               name, "conference");
}

int store_conference_get(struct store *st, const char *name, struct store_conference *out)
{
    int rc = check_name(st, name, "conference");
    if (rc == 0)
        rc = store_get_one(st, "conference_get",
                           "SELECT " CONFERENCE_COLUMNS " FROM conferences WHERE name = ?1", name,
                           conference_read, out);
    if (rc == -ENOENT)
        store_set_msg(st, "no conference %s", name);
    return rc;
}

struct conference_walk {
    int (*fn)(const struct store_conference *c, void *arg);
    void *arg;
};

static int conference_each(struct store *st, sqlite3_stmt *s, void *walk)
{
    struct conference_walk *w = walk;
    struct store_conference c;
    int rc = conference_read(st, s, &c);
    return rc ? rc : w->fn(&c, w->arg);
}

int store_conference_list(struct store *st, int (*fn)(const struct store_conference *c, void *arg),
                          void *arg)
{
    struct conference_walk w = {fn, arg};
    return store_list_rows(st, "conference_list",
                           "SELECT " CONFERENCE_COLUMNS " FROM conferences ORDER BY name",
                           conference_each, &w);
}

int store_conference_allow(struct store *st, const char *conference, const char *member)
{
    return member_add(st, &conference_allow_set, conference, member);
}

int store_conference_disallow(struct store *st, const char *conference, const char *member)
{
    return member_remove(st, &conference_allow_set, conference, member);
}

int store_conference_allowed(struct store *st, const char *conference,
                             int (*fn)(enum store_member_kind kind, const char *name, void *arg),
                             void *arg)
{
    return member_list(st, &conference_allow_set, conference, fn, arg);
}

int store_conference_access(struct store *st, const char *conference, const char *user,
                            unsigned max_depth, bool *may_read, bool *organizer)
{
    static const char op[] = "conference_access";
    struct store_conference c;
    *may_read = false;
    *organizer = false;
    int rc = check_name(st, user, "user");
    if (rc == 0)
        rc = store_conference_get(st, conference, &c);
    if (rc < 0)
        return rc;
    if (strcmp(c.organizer, user) == 0) {
        *may_read = *organizer = true;
        return 0;
    }
    /* the allowed users and groups are at depth 0: a group allowed is
     * followed as store_group_expand() follows the group it starts from */
    sqlite3_stmt *s = NULL;
    bool kept = false;
    rc = store_prepare_kept(
        st, op,
        "WITH RECURSIVE reach(name, kind, depth) AS ("
        "  SELECT member, kind, 0 FROM conference_allow WHERE conference = ?1" REACH_STEP
        ") SELECT EXISTS (SELECT 1 FROM reach WHERE kind = 'user' AND name = ?3)",
        &s, &kept);
    if (rc == 0)
        rc = store_bind_texts(st, op, s, 1, conference);
    if (rc == 0)
        rc = store_bind_int64(st, op, s, 2, (int64_t)max_depth);
    if (rc == 0 && sqlite3_bind_text(s, 3, user, -1, SQLITE_STATIC) != SQLITE_OK)
        rc = store_fail(st, op, sqlite3_errcode(st->db));
    if (rc == 0) {
        int src = sqlite3_step(s);
        if (src == SQLITE_ROW)
            *may_read = sqlite3_column_int(s, 0) != 0;
        else
            rc = store_fail(st, op, src);
    }
    if (s)
        store_kept_done(s, kept);
    return rc;
}

/* --- the address book's change log ----------------------------------------- */

static int int64_read(struct store *st, sqlite3_stmt *s, void *out)
{
    (void)st;
    *(int64_t *)out = sqlite3_column_int64(s, 0);
    return 0;
}

int store_card_seq(struct store *st, int64_t *out)
{
    static const char op[] = "card_seq";
    sqlite3_stmt *s = NULL;
    int rc = store_prepare(st, op, "SELECT coalesce(max(seq), 0) FROM card_changes", &s);
    if (rc == 0) {
        int src = sqlite3_step(s);
        if (src == SQLITE_ROW)
            rc = int64_read(st, s, out);
        else
            rc = store_fail(st, op, src);
    }
    sqlite3_finalize(s);
    return rc;
}

int store_card_changes(struct store *st, int64_t since,
                       int (*fn)(const struct store_card_change *c, void *arg), void *arg)
{
    static const char op[] = "card_changes";
    int64_t last = 0;
    int rc = store_card_seq(st, &last);
    if (rc < 0)
        return rc;
    if (since < 0 || since > last) {
        store_set_msg(st, "change %lld is not one of this store's (the last is %lld)",
                      (long long)since, (long long)last);
        return -EINVAL;
    }
    /* max() makes SQLite take the other columns from the row that has it */
    sqlite3_stmt *s = NULL;
    rc = store_prepare(st, op,
                       "SELECT max(seq) AS last, kind, name, uid, removed FROM card_changes "
                       "WHERE seq > ?1 GROUP BY uid ORDER BY last",
                       &s);
    if (rc == 0)
        rc = store_bind_int64(st, op, s, 1, since);
    while (rc == 0) {
        int src = sqlite3_step(s);
        if (src == SQLITE_DONE)
            break;
        if (src != SQLITE_ROW) {
            rc = store_fail(st, op, src);
            break;
        }
        const char *kind = (const char *)sqlite3_column_text(s, 1);
        struct store_card_change c = {
            .seq = sqlite3_column_int64(s, 0),
            .kind = kind && strcmp(kind, "group") == 0 ? STORE_CARD_GROUP : STORE_CARD_USER,
            .name = (const char *)sqlite3_column_text(s, 2),
            .uid = (const char *)sqlite3_column_text(s, 3),
            .removed = sqlite3_column_int(s, 4) != 0,
        };
        if (!c.name || !c.uid) {
            store_set_msg(st, "corrupt card_changes row %lld", (long long)c.seq);
            rc = -EIO;
            break;
        }
        rc = fn(&c, arg);
    }
    sqlite3_finalize(s);
    return rc;
}

int store_data_changed(struct store *st, bool *changed)
{
    static const char op[] = "data_changed";
    int64_t version = 0;
    sqlite3_stmt *s = NULL;
    bool kept = false;
    int rc = store_prepare_kept(st, op, "PRAGMA data_version", &s, &kept);
    if (rc == 0) {
        int src = sqlite3_step(s);
        if (src == SQLITE_ROW)
            rc = int64_read(st, s, &version);
        else
            rc = store_fail(st, op, src);
        store_kept_done(s, kept);
    }
    if (rc < 0)
        return rc;
    /* data_version moves with other connections' commits only; this
     * connection's own writes show in its change count */
    int64_t own = sqlite3_total_changes64(st->db);
    *changed = !st->data_seen || version != st->data_version || own != st->own_changes;
    st->data_seen = true;
    st->data_version = version;
    st->own_changes = own;
    return 0;
}
