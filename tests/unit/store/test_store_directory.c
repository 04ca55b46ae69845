/* The directory (store_directory.c): profiles, groups and their expansion,
 * conferences and who may read them, the address book's change log. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store_scratch.h"
#include "core/clock.h"
#include "store/store.h"

#define MD5_A "3d78807defe7de2157e2b0b6573a855f"
#define SHA_A "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232"

struct fixture {
    char dir[64];
    char path[96];
    struct store *st;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char err[256];
    if (!f)
        return -1;
    if (store_scratch_make("parley-dir", f->dir, sizeof(f->dir), f->path, sizeof(f->path)) != 0)
        return -1;
    if (store_open(f->path, STORE_CREATE, &f->st, err, sizeof(err)) != 0)
        return -1;
    static const char *const users[] = {"alice", "bob", "carol", "dave", "erin"};
    for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++)
        if (store_user_add(f->st, users[i], MD5_A, SHA_A) != 0)
            return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    store_close(f->st);
    store_scratch_remove(f->dir, f->path);
    free(f);
    return 0;
}

/* Another connection to the file, as the daemon's or an administrator's. */
static void raw_exec_rc(struct fixture *f, const char *sql, int want)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL) & 0xff, want);
    sqlite3_close(db);
}

/* Names a walk saw, space-separated ("user:" or "group:" in front for
 * members). */
struct names {
    char text[512];
};

static void names_add(struct names *n, const char *prefix, const char *name)
{
    size_t len = strlen(n->text);
    snprintf(n->text + len, sizeof(n->text) - len, "%s%s%s", len ? " " : "", prefix, name);
}

static int note_member(enum store_member_kind kind, const char *name, void *arg)
{
    names_add(arg, kind == STORE_MEMBER_GROUP ? "group:" : "user:", name);
    return 0;
}

static int note_user(const struct store_user *u, void *arg)
{
    names_add(arg, "", u->name);
    return 0;
}

static int note_group(const struct store_group *g, void *arg)
{
    names_add(arg, "", g->name);
    return 0;
}

static int note_conference(const struct store_conference *c, void *arg)
{
    names_add(arg, "", c->name);
    return 0;
}

static int note_change(const struct store_card_change *c, void *arg)
{
    char what[128];
    snprintf(what, sizeof(what), "%s%s%s",
             c->kind == STORE_CARD_GROUP ? "group:" : "user:", c->name, c->removed ? "-" : "");
    names_add(arg, "", what);
    return 0;
}

static const char *expand(struct store *st, const char *group, unsigned depth, bool *truncated,
                          struct names *n)
{
    memset(n, 0, sizeof(*n));
    assert_int_equal(store_group_expand(st, group, depth, note_user, n, truncated), 0);
    return n->text;
}

static const char *changes(struct store *st, int64_t since, struct names *n)
{
    memset(n, 0, sizeof(*n));
    assert_int_equal(store_card_changes(st, since, note_change, n), 0);
    return n->text;
}

static int64_t seq_now(struct store *st)
{
    int64_t seq = -1;
    assert_int_equal(store_card_seq(st, &seq), 0);
    return seq;
}

/* NULL leaves a field, "" clears it; what is not a display name or a plain
 * address is refused with a reason. */
static void test_profiles(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    struct store_user u;

    assert_int_equal(store_user_set_profile(st, "alice", "Alice Liddell", "alice@example.test"), 0);
    assert_int_equal(store_user_set_profile(st, "alice", NULL, NULL), 0);
    assert_int_equal(store_user_get(st, "alice", &u), 0);
    assert_string_equal(u.display_name, "Alice Liddell");
    assert_string_equal(u.email, "alice@example.test");
    assert_int_equal(store_user_set_profile(st, "alice", "Älice Ŀiddell 🐇", ""), 0);
    assert_int_equal(store_user_get(st, "alice", &u), 0);
    assert_string_equal(u.display_name, "Älice Ŀiddell 🐇");
    assert_string_equal(u.email, "");
    assert_int_equal(store_user_set_profile(st, "nobody", "N", NULL), -ENOENT);
    assert_int_equal(store_user_set_profile(st, "Alice", "N", NULL), -EINVAL);

    /* display names: no control characters, well-formed UTF-8, bounded */
    static const char *const bad_names[] = {
        "Line\nbreak",
        "Tab\there",
        "Del\x7f",
        "Esc\x1b[31m",
        "\xc0\x80",         /* an overlong NUL */
        "\xed\xa0\x80",     /* a surrogate */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
        "\xe2\x82",         /* cut short */
        "\xff",
    };
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        assert_int_equal(store_user_set_profile(st, "bob", bad_names[i], NULL), -EINVAL);
        assert_non_null(strstr(store_errmsg(st), "display name"));
    }
    char name[STORE_DISPLAY_NAME_MAX + 2];
    memset(name, 'x', sizeof(name));
    name[STORE_DISPLAY_NAME_MAX] = '\0';
    assert_int_equal(store_user_set_profile(st, "bob", name, NULL), 0);
    name[STORE_DISPLAY_NAME_MAX] = 'x';
    name[STORE_DISPLAY_NAME_MAX + 1] = '\0';
    assert_int_equal(store_user_set_profile(st, "bob", name, NULL), -EINVAL);

    /* e-mail: one '@' between two parts, nothing that is not an addr-spec */
    static const char *const bad_mail[] = {
        "bob",
        "@example.test",
        "bob@",
        "bob@@example.test",
        "b@b@example",
        "bob @example.test",
        "Bob <bob@x.y>",
        "bob@x.y,eve@x.y",
        "bob@x.y;eve",
        "\"bob\"@example.test",
        "bob\\@x.y",
        "bob:x@y.z",
        "bob@x.y\r\nBcc: eve@x.y",
    };
    for (size_t i = 0; i < sizeof(bad_mail) / sizeof(bad_mail[0]); i++) {
        assert_int_equal(store_user_set_profile(st, "bob", NULL, bad_mail[i]), -EINVAL);
        assert_non_null(strstr(store_errmsg(st), "e-mail"));
    }
    char mail[STORE_EMAIL_MAX + 2];
    memset(mail, 'b', sizeof(mail));
    memcpy(mail + 100, "@example", 8);
    mail[STORE_EMAIL_MAX] = '\0';
    assert_int_equal(store_user_set_profile(st, "bob", NULL, mail), 0);
    mail[STORE_EMAIL_MAX] = 'b';
    mail[STORE_EMAIL_MAX + 1] = '\0';
    assert_int_equal(store_user_set_profile(st, "bob", NULL, mail), -EINVAL);
    /* a refused change changed nothing */
    assert_int_equal(store_user_get(st, "bob", &u), 0);
    assert_int_equal(strlen(u.email), STORE_EMAIL_MAX);
}

/* Users and groups share one namespace; group names follow the user-name
 * rule; members are ordered, each once, never the group itself. */
static void test_groups(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    struct names n = {0};

    assert_int_equal(store_group_add(st, "sales", "Sales Team"), 0);
    assert_int_equal(store_group_add(st, "support", NULL), 0);
    assert_int_equal(store_group_add(st, "sales", NULL), -EEXIST);
    assert_non_null(strstr(store_errmsg(st), "group sales exists"));
    assert_int_equal(store_group_add(st, "alice", NULL), -EEXIST);
    assert_non_null(strstr(store_errmsg(st), "user alice exists"));
    assert_int_equal(store_user_add(st, "sales", MD5_A, SHA_A), -EEXIST);
    assert_non_null(strstr(store_errmsg(st), "group sales exists"));
    assert_int_equal(store_group_add(st, "Sales", NULL), -EINVAL);
    assert_int_equal(store_group_add(st, "-x", NULL), -EINVAL);
    assert_int_equal(store_group_add(st, "a/b", NULL), -EINVAL);
    assert_int_equal(store_group_add(st, "x", "Bad\nName"), -EINVAL);

    struct store_group g, g2;
    assert_int_equal(store_group_get(st, "sales", &g), 0);
    assert_string_equal(g.display_name, "Sales Team");
    assert_int_equal(strlen(g.uid), STORE_UID_LEN);
    assert_int_equal(store_group_set_name(st, "sales", "Sales"), 0);
    assert_int_equal(store_group_get(st, "sales", &g2), 0);
    assert_string_equal(g2.display_name, "Sales");
    assert_string_equal(g2.uid, g.uid);
    assert_int_equal(store_group_set_name(st, "nobody", "X"), -ENOENT);
    assert_int_equal(store_group_get(st, "nobody", &g), -ENOENT);
    assert_int_equal(store_group_list(st, note_group, &n), 0);
    assert_string_equal(n.text, "sales support");

    assert_int_equal(store_group_member_add(st, "sales", "carol"), 0);
    assert_int_equal(store_group_member_add(st, "sales", "alice"), 0);
    assert_int_equal(store_group_member_add(st, "sales", "support"), 0);
    assert_int_equal(store_group_member_add(st, "sales", "alice"), -EEXIST);
    assert_int_equal(store_group_member_add(st, "sales", "sales"), -EINVAL);
    assert_non_null(strstr(store_errmsg(st), "itself"));
    assert_int_equal(store_group_member_add(st, "sales", "mallory"), -ENOENT);
    assert_non_null(strstr(store_errmsg(st), "no user or group mallory"));
    assert_int_equal(store_group_member_add(st, "nobody", "alice"), -ENOENT);
    assert_non_null(strstr(store_errmsg(st), "no group nobody"));
    assert_int_equal(store_group_member_add(st, "sales", "Alice"), -EINVAL);
    memset(&n, 0, sizeof(n));
    assert_int_equal(store_group_members(st, "sales", note_member, &n), 0);
    assert_string_equal(n.text, "user:alice user:carol group:support");
    assert_int_equal(store_group_members(st, "nobody", note_member, &n), -ENOENT);

    assert_int_equal(store_group_member_remove(st, "sales", "carol"), 0);
    assert_int_equal(store_group_member_remove(st, "sales", "carol"), -ENOENT);
    assert_non_null(strstr(store_errmsg(st), "not a member"));
    assert_int_equal(store_group_member_remove(st, "nobody", "carol"), -ENOENT);
    assert_non_null(strstr(store_errmsg(st), "no group nobody"));

    /* a group that goes leaves no membership behind, either way round */
    assert_int_equal(store_group_member_add(st, "support", "bob"), 0);
    assert_int_equal(store_group_remove(st, "support"), 0);
    assert_int_equal(store_group_remove(st, "support"), -ENOENT);
    memset(&n, 0, sizeof(n));
    assert_int_equal(store_group_members(st, "sales", note_member, &n), 0);
    assert_string_equal(n.text, "user:alice");
    /* the name is free again, for a user or a new group (with a new uid) */
    assert_int_equal(store_group_add(st, "support", NULL), 0);
    memset(&n, 0, sizeof(n));
    assert_int_equal(store_group_members(st, "support", note_member, &n), 0);
    assert_string_equal(n.text, "");
}

/* Nested groups flatten to each user once; a cycle is harmless; a group
 * too deep is not followed and says so. */
static void test_expand(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    struct names n;
    bool truncated = true;

    /* all -> eng -> (backend -> eng: a cycle), (frontend); all -> alice */
    assert_int_equal(store_group_add(st, "all", NULL), 0);
    assert_int_equal(store_group_add(st, "eng", NULL), 0);
    assert_int_equal(store_group_add(st, "backend", NULL), 0);
    assert_int_equal(store_group_add(st, "frontend", NULL), 0);
    assert_int_equal(store_group_add(st, "empty", NULL), 0);
    assert_int_equal(store_group_member_add(st, "all", "eng"), 0);
    assert_int_equal(store_group_member_add(st, "all", "alice"), 0);
    assert_int_equal(store_group_member_add(st, "eng", "backend"), 0);
    assert_int_equal(store_group_member_add(st, "eng", "frontend"), 0);
    assert_int_equal(store_group_member_add(st, "eng", "bob"), 0);
    assert_int_equal(store_group_member_add(st, "backend", "eng"), 0);
    assert_int_equal(store_group_member_add(st, "backend", "carol"), 0);
    assert_int_equal(store_group_member_add(st, "backend", "bob"), 0);
    assert_int_equal(store_group_member_add(st, "frontend", "dave"), 0);
    assert_int_equal(store_group_member_add(st, "frontend", "alice"), 0);
    assert_int_equal(store_group_member_add(st, "frontend", "empty"), 0);

    assert_string_equal(expand(st, "all", 16, &truncated, &n), "alice bob carol dave");
    assert_false(truncated);
    assert_string_equal(expand(st, "backend", 16, &truncated, &n), "alice bob carol dave");
    assert_false(truncated);
    /* a huge bound on a cycle ends all the same */
    assert_string_equal(expand(st, "eng", UINT32_MAX, NULL, &n), "alice bob carol dave");
    /* depth 0: the group's own users only, and its groups were not followed */
    assert_string_equal(expand(st, "all", 0, &truncated, &n), "alice");
    assert_true(truncated);
    /* depth 1: eng is followed, backend and frontend are not */
    assert_string_equal(expand(st, "all", 1, &truncated, &n), "alice bob");
    assert_true(truncated);
    /* depth 2 reaches everyone; "empty" (depth 3, unfollowed) loses nothing */
    assert_string_equal(expand(st, "all", 2, &truncated, &n), "alice bob carol dave");
    assert_false(truncated);
    assert_string_equal(expand(st, "empty", 16, &truncated, &n), "");
    assert_false(truncated);
    assert_int_equal(store_group_expand(st, "nobody", 16, note_user, &n, NULL), -ENOENT);
    assert_int_equal(store_group_expand(st, "alice", 16, note_user, &n, NULL), -ENOENT);

    /* a user who goes leaves the groups */
    assert_int_equal(store_user_remove(st, "bob"), 0);
    assert_string_equal(expand(st, "all", 16, &truncated, &n), "alice carol dave");
}

/* Conferences: an organizer who is a user, allow entries for users and
 * groups, access through nested groups within the bound, and nobody else. */
static void test_conferences(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    struct names n = {0};
    bool may = true, org = true;

    assert_int_equal(store_group_add(st, "team", NULL), 0);
    assert_int_equal(store_group_add(st, "inner", NULL), 0);
    assert_int_equal(store_group_member_add(st, "team", "inner"), 0);
    assert_int_equal(store_group_member_add(st, "inner", "carol"), 0);

    assert_int_equal(store_conference_add(st, "weekly", "alice"), 0);
    assert_int_equal(store_conference_add(st, "weekly", "bob"), -EEXIST);
    assert_int_equal(store_conference_add(st, "other", "mallory"), -ENOENT);
    assert_non_null(strstr(store_errmsg(st), "no user mallory"));
    assert_int_equal(store_conference_add(st, "other", "team"),
                     -ENOENT); /* a group organizes not */
    assert_int_equal(store_conference_add(st, "We ekly", "alice"), -EINVAL);
    struct store_conference c;
    assert_int_equal(store_conference_get(st, "weekly", &c), 0);
    assert_string_equal(c.organizer, "alice");
    assert_int_equal(strlen(c.uid), STORE_UID_LEN);
    assert_int_equal(store_conference_list(st, note_conference, &n), 0);
    assert_string_equal(n.text, "weekly");

    assert_int_equal(store_conference_allow(st, "weekly", "bob"), 0);
    assert_int_equal(store_conference_allow(st, "weekly", "team"), 0);
    assert_int_equal(store_conference_allow(st, "weekly", "bob"), -EEXIST);
    assert_int_equal(store_conference_allow(st, "weekly", "mallory"), -ENOENT);
    assert_int_equal(store_conference_allow(st, "nothing", "bob"), -ENOENT);
    memset(&n, 0, sizeof(n));
    assert_int_equal(store_conference_allowed(st, "weekly", note_member, &n), 0);
    assert_string_equal(n.text, "user:bob group:team");

    assert_int_equal(store_conference_access(st, "weekly", "alice", 16, &may, &org), 0);
    assert_true(may && org);
    assert_int_equal(store_conference_access(st, "weekly", "bob", 16, &may, &org), 0);
    assert_true(may);
    assert_false(org);
    assert_int_equal(store_conference_access(st, "weekly", "carol", 16, &may, &org), 0);
    assert_true(may);
    assert_false(org);
    /* carol is one group below the allowed one: a bound of 0 stops there */
    assert_int_equal(store_conference_access(st, "weekly", "carol", 0, &may, &org), 0);
    assert_false(may);
    assert_int_equal(store_conference_access(st, "weekly", "dave", 16, &may, &org), 0);
    assert_false(may || org);
    assert_int_equal(store_conference_access(st, "weekly", "team", 16, &may, &org), 0);
    assert_false(may); /* a group's name is no user */
    assert_int_equal(store_conference_access(st, "nothing", "alice", 16, &may, &org), -ENOENT);
    assert_false(may || org);
    assert_int_equal(store_conference_access(st, "weekly", "Alice", 16, &may, &org), -EINVAL);
    assert_false(may || org);

    /* the organizer stays while organizing; others go with their entries */
    assert_int_equal(store_user_remove(st, "alice"), -EBUSY);
    assert_non_null(strstr(store_errmsg(st), "conference weekly"));
    struct store_user u;
    assert_int_equal(store_user_get(st, "alice", &u), 0);
    assert_int_equal(store_user_remove(st, "bob"), 0);
    assert_int_equal(store_conference_access(st, "weekly", "bob", 16, &may, &org), 0);
    assert_false(may);
    assert_int_equal(store_user_add(st, "bob", MD5_A, SHA_A), 0);
    assert_int_equal(store_conference_access(st, "weekly", "bob", 16, &may, &org), 0);
    assert_false(may); /* a new bob is not the old one */
    assert_int_equal(store_group_remove(st, "team"), 0);
    memset(&n, 0, sizeof(n));
    assert_int_equal(store_conference_allowed(st, "weekly", note_member, &n), 0);
    assert_string_equal(n.text, "");

    assert_int_equal(store_conference_allow(st, "weekly", "inner"), 0);
    assert_int_equal(store_conference_disallow(st, "weekly", "inner"), 0);
    assert_int_equal(store_conference_disallow(st, "weekly", "inner"), -ENOENT);
    assert_non_null(strstr(store_errmsg(st), "not allowed"));
    assert_int_equal(store_conference_disallow(st, "nothing", "inner"), -ENOENT);
    assert_int_equal(store_conference_allow(st, "weekly", "carol"), 0);
    assert_int_equal(store_conference_remove(st, "weekly"), 0);
    assert_int_equal(store_conference_remove(st, "weekly"), -ENOENT);
    assert_int_equal(store_user_remove(st, "alice"), 0);
    /* the allow entries went with the conference */
    assert_int_equal(store_conference_add(st, "weekly", "carol"), 0);
    memset(&n, 0, sizeof(n));
    assert_int_equal(store_conference_allowed(st, "weekly", note_member, &n), 0);
    assert_string_equal(n.text, "");
}

/* The change log: every change of a card, by whoever, latest only per uid,
 * and tokens from elsewhere refused. */
static void test_card_changes(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    struct names n;

    int64_t start = seq_now(st);
    assert_int_equal(start, 5); /* the five users of the fixture */
    assert_string_equal(changes(st, 0, &n), "user:alice user:bob user:carol user:dave user:erin");
    assert_string_equal(changes(st, start, &n), "");

    /* what an address book shows changes; a password does not */
    assert_int_equal(store_user_set_ha1(st, "alice", MD5_A, SHA_A), 0);
    assert_int_equal(store_user_set_outbound(st, "alice", "all"), 0);
    assert_int_equal(store_user_set_profile(st, "erin", NULL, NULL), 0);
    assert_int_equal(seq_now(st), start);
    assert_int_equal(store_user_set_profile(st, "alice", "Alice", NULL), 0);
    assert_int_equal(store_user_set_profile(st, "alice", "Alice", NULL), 0); /* the same */
    assert_int_equal(store_user_set_number(st, "bob", "+14255550102"), 0);
    assert_int_equal(seq_now(st), start + 2);

    int64_t mark = seq_now(st);
    assert_int_equal(store_group_add(st, "ops", NULL), 0);
    assert_int_equal(store_group_member_add(st, "ops", "carol"), 0);
    assert_int_equal(store_group_member_add(st, "ops", "dave"), 0);
    assert_int_equal(store_user_remove(st, "dave"), 0); /* ops changes too */
    assert_int_equal(store_user_set_profile(st, "carol", NULL, "carol@example.test"), 0);
    /* each uid once, at its latest change, in that order */
    assert_string_equal(changes(st, mark, &n), "group:ops user:dave- user:carol");
    assert_string_equal(changes(st, start, &n), "user:alice user:bob group:ops user:dave- "
                                                "user:carol");

    /* a group removed: its parents change, it is gone */
    mark = seq_now(st);
    assert_int_equal(store_group_add(st, "top", NULL), 0);
    assert_int_equal(store_group_member_add(st, "top", "ops"), 0);
    int64_t mark2 = seq_now(st);
    assert_int_equal(store_group_remove(st, "ops"), 0);
    assert_string_equal(changes(st, mark2, &n), "group:top group:ops-");
    assert_string_equal(changes(st, mark, &n), "group:top group:ops-");
    assert_int_equal(store_group_set_name(st, "top", "Top"), 0);
    assert_string_equal(changes(st, seq_now(st) - 1, &n), "group:top");

    /* a token this store never gave */
    assert_int_equal(store_card_changes(st, seq_now(st) + 1, note_change, &n), -EINVAL);
    assert_int_equal(store_card_changes(st, -1, note_change, &n), -EINVAL);

    /* another writer's changes are logged too (the triggers are the log) */
    mark = seq_now(st);
    raw_exec_rc(f, "UPDATE users SET email = 'e@example.test' WHERE name = 'erin'", SQLITE_OK);
    assert_string_equal(changes(st, mark, &n), "user:erin");
    /* and nobody rewrites a uid, or adds a user without one */
    raw_exec_rc(f, "UPDATE users SET uid = '00000000000000000000000000000000' WHERE name = 'erin'",
                SQLITE_CONSTRAINT);
    raw_exec_rc(f, "UPDATE groups SET uid = '00000000000000000000000000000000'", SQLITE_CONSTRAINT);
    raw_exec_rc(f,
                "INSERT INTO users (name, ha1_md5, ha1_sha256, created, updated) "
                "VALUES ('zed', '', '" SHA_A "', 1, 1)",
                SQLITE_CONSTRAINT);
    raw_exec_rc(f,
                "INSERT INTO groups (name, uid, created) VALUES "
                "('erin', '0123456789abcdef0123456789abcdef', 1)",
                SQLITE_CONSTRAINT);
}

/* store_data_changed: the first call says changed, then only a commit by
 * another connection or a change through this one does. */
static void test_data_changed(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    bool changed = false;

    assert_int_equal(store_data_changed(st, &changed), 0);
    assert_true(changed);
    assert_int_equal(store_data_changed(st, &changed), 0);
    assert_false(changed);
    raw_exec_rc(f, "UPDATE users SET email = 'x@example.test' WHERE name = 'erin'", SQLITE_OK);
    assert_int_equal(store_data_changed(st, &changed), 0);
    assert_true(changed);
    assert_int_equal(store_data_changed(st, &changed), 0);
    assert_false(changed);
    assert_int_equal(store_group_add(st, "g", NULL), 0);
    assert_int_equal(store_data_changed(st, &changed), 0);
    assert_true(changed);
    /* a read is no change */
    struct store_group g;
    assert_int_equal(store_group_get(st, "g", &g), 0);
    assert_int_equal(store_data_changed(st, &changed), 0);
    assert_false(changed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_profiles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_groups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expand, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conferences, setup, teardown),
        cmocka_unit_test_setup_teardown(test_card_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_data_changed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
