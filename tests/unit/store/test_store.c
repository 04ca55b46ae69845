#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store_scratch.h"
#include "core/clock.h"
#include "core/log.h"
#include "store/store.h"
#include "store/writer.h"

#define STRINGIFY_(x)                  #x
#define STRINGIFY(x)                   STRINGIFY_(x)
#define STORE_SCHEMA_VERSION_TEXT_NEXT STRINGIFY(STORE_SCHEMA_NEXT)

#define MD5_A "3d78807defe7de2157e2b0b6573a855f"
#define MD5_B "939e7578ed9e3c518a452acee763bce9"
#define SHA_A "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232"
#define SHA_B "a1306b0595a6c7fe96c448631fb5cfbd5107bd1fe1da729d978dd7446b812363"

struct fixture {
    char dir[64];
    char path[96];
    char err[256];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    if (store_scratch_make("parley-store", f->dir, sizeof(f->dir), f->path, sizeof(f->path)) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    store_scratch_remove(f->dir, f->path);
    free(f);
    return 0;
}

static struct store *create(struct fixture *f)
{
    struct store *st = NULL;
    int rc = store_open(f->path, STORE_CREATE, &st, f->err, sizeof(f->err));
    if (rc != 0)
        fail_msg("store_open create: %d %s", rc, f->err);
    return st;
}

static struct store *reopen(struct fixture *f, int flags)
{
    struct store *st = NULL;
    int rc = store_open(f->path, flags, &st, f->err, sizeof(f->err));
    if (rc != 0)
        fail_msg("store_open: %d %s", rc, f->err);
    return st;
}

/* Opens the file with plain SQLite, as an administrator's sqlite3 would. */
static sqlite3 *raw_open(struct fixture *f)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static int64_t raw_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

static void raw_exec(struct fixture *f, const char *sql)
{
    sqlite3 *db = raw_open(f);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
    sqlite3_close(db);
}

static void test_create_refuses_existing(void **state)
{
    struct fixture *f = *state;
    struct store *st = create(f);
    assert_int_equal(store_close(st), 0);

    st = (struct store *)0x1;
    assert_int_equal(store_open(f->path, STORE_CREATE, &st, f->err, sizeof(f->err)), -EEXIST);
    assert_null(st);
    assert_non_null(strstr(f->err, "exists"));

    /* an unrelated file is left alone too */
    unlink(f->path);
    int fd = open(f->path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "hello", 5), 5);
    close(fd);
    assert_int_equal(store_open(f->path, STORE_CREATE, &st, f->err, sizeof(f->err)), -EEXIST);
    struct stat sb;
    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal(sb.st_size, 5);
}

static void test_open_refuses_missing(void **state)
{
    struct fixture *f = *state;
    struct store *st = NULL;
    struct stat sb;

    assert_int_equal(store_open(f->path, 0, &st, f->err, sizeof(f->err)), -ENOENT);
    assert_null(st);
    assert_true(f->err[0] != '\0');
    assert_int_equal(stat(f->path, &sb), -1); /* not created behind our back */
    assert_int_equal(store_open(f->path, STORE_READONLY, &st, f->err, sizeof(f->err)), -ENOENT);
    /* and argument errors */
    assert_int_equal(store_open(NULL, 0, &st, f->err, sizeof(f->err)), -EINVAL);
    assert_int_equal(store_open(f->path, STORE_CREATE | STORE_READONLY, &st, NULL, 0), -EINVAL);
    assert_int_equal(store_open(f->path, 0x100, &st, NULL, 0), -EINVAL);
    assert_int_equal(stat(f->path, &sb), -1);
}

static void test_file_mode(void **state)
{
    struct fixture *f = *state;
    struct stat sb;
    char wal[128];

    /* the umask neither widens nor narrows the mode */
    mode_t old = umask(0);
    struct store *st = create(f);
    umask(old);
    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0600);
    assert_int_equal(store_user_add(st, "alice", MD5_A, SHA_A), 0);
    snprintf(wal, sizeof(wal), "%s-wal", f->path);
    assert_int_equal(stat(wal, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0600);
    assert_int_equal(store_close(st), 0);
    unlink(f->path);

    old = umask(0277);
    st = create(f);
    umask(old);
    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0600);
    assert_int_equal(store_close(st), 0);

    /* an existing file others can read is refused */
    assert_int_equal(chmod(f->path, 0640), 0);
    st = NULL;
    assert_int_equal(store_open(f->path, 0, &st, f->err, sizeof(f->err)), -EPERM);
    assert_null(st);
    assert_non_null(strstr(f->err, "chmod 600"));
    assert_int_equal(chmod(f->path, 0604), 0);
    assert_int_equal(store_open(f->path, 0, &st, f->err, sizeof(f->err)), -EPERM);
    assert_int_equal(chmod(f->path, 0600), 0);
    st = reopen(f, 0);
    assert_int_equal(store_close(st), 0);
}

static void test_schema_version(void **state)
{
    struct fixture *f = *state;
    struct store *st = create(f);
    assert_int_equal(store_close(st), 0);

    sqlite3 *db = raw_open(f);
    assert_int_equal(raw_int(db, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND "
                                 "name IN ('users', 'settings', 'calls')"),
                     3);
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
    sqlite3_finalize(s);
    sqlite3_close(db);

    /* a newer schema is refused, not guessed at */
    raw_exec(f, "PRAGMA user_version = " STORE_SCHEMA_VERSION_TEXT_NEXT);
    st = NULL;
    assert_int_equal(store_open(f->path, 0, &st, f->err, sizeof(f->err)), -EPROTO);
    assert_null(st);
    assert_non_null(strstr(f->err, "newer"));

    /* an SQLite file that is not ours is refused, not migrated */
    raw_exec(f, "PRAGMA user_version = 0");
    assert_int_equal(store_open(f->path, 0, &st, f->err, sizeof(f->err)), -EPROTO);
    assert_non_null(strstr(f->err, "not an initialised"));

    /* neither is a file that is not SQLite at all */
    unlink(f->path);
    int fd = open(f->path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    char junk[4096];
    memset(junk, 'j', sizeof(junk));
    assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
    close(fd);
    assert_true(store_open(f->path, 0, &st, f->err, sizeof(f->err)) < 0);
    assert_null(st);
    assert_non_null(strstr(f->err, "not a database"));
}

struct collected {
    int n;
    char names[8][STORE_USER_NAME_MAX + 1];
    int stop_after;
};

static int collect_user(const struct store_user *u, void *arg)
{
    struct collected *c = arg;
    if (c->n < 8)
        snprintf(c->names[c->n], sizeof(c->names[0]), "%s", u->name);
    c->n++;
    return c->stop_after && c->n == c->stop_after ? 42 : 0;
}

static void test_users(void **state)
{
    struct fixture *f = *state;
    struct store *st = create(f);
    struct clock_fake clk;
    struct store_user u;

    clock_fake_init(&clk, 0, 1700000000);
    store_set_clock(st, &clk.base);

    assert_int_equal(store_user_add(st, "carol", MD5_A, SHA_A), 0);
    assert_int_equal(store_user_add(st, "alice", MD5_B, SHA_B), 0);
    assert_int_equal(store_user_add(st, "bob", MD5_A, SHA_B), 0);
    assert_int_equal(store_user_add(st, "alice", MD5_A, SHA_A), -EEXIST);
    assert_non_null(strstr(store_errmsg(st), "exists"));

    assert_int_equal(store_user_get(st, "alice", &u), 0);
    assert_string_equal(u.name, "alice");
    assert_string_equal(u.ha1_md5, MD5_B);
    assert_string_equal(u.ha1_sha256, SHA_B);
    assert_int_equal(u.created, 1700000000);
    assert_int_equal(u.updated, 1700000000);
    assert_int_equal(store_user_get(st, "dave", &u), -ENOENT);

    struct collected c = {0};
    assert_int_equal(store_user_list(st, collect_user, &c), 0);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.names[0], "alice");
    assert_string_equal(c.names[1], "bob");
    assert_string_equal(c.names[2], "carol");
    struct collected stop = {.stop_after = 2};
    assert_int_equal(store_user_list(st, collect_user, &stop), 42);
    assert_int_equal(stop.n, 2);

    clock_fake_advance(&clk, 60000);
    assert_int_equal(store_user_set_ha1(st, "alice", MD5_A, SHA_A), 0);
    assert_int_equal(store_user_get(st, "alice", &u), 0);
    assert_string_equal(u.ha1_md5, MD5_A);
    assert_string_equal(u.ha1_sha256, SHA_A);
    assert_int_equal(u.created, 1700000000);
    assert_int_equal(u.updated, 1700000060);
    assert_int_equal(store_user_set_ha1(st, "dave", MD5_A, SHA_A), -ENOENT);

    assert_int_equal(store_user_remove(st, "bob"), 0);
    assert_int_equal(store_user_remove(st, "bob"), -ENOENT);
    assert_string_equal(store_errmsg(st), "no user bob");
    assert_int_equal(store_user_get(st, "bob", &u), -ENOENT);
    c = (struct collected){0};
    assert_int_equal(store_user_list(st, collect_user, &c), 0);
    assert_int_equal(c.n, 2);

    /* FIPS: a user may have only the SHA-256 HA1, or only MD5 */
    assert_int_equal(store_user_add(st, "fips", "", SHA_A), 0);
    assert_int_equal(store_user_get(st, "fips", &u), 0);
    assert_string_equal(u.ha1_md5, "");
    assert_string_equal(u.ha1_sha256, SHA_A);
    assert_int_equal(store_user_add(st, "legacy", MD5_A, ""), 0);
    assert_int_equal(store_user_add(st, "none", "", ""), -EINVAL);

    /* HA1 values are lowercase hex of the right length */
    assert_int_equal(store_user_add(st, "x1", "3D78807DEFE7DE2157E2B0B6573A855F", SHA_A), -EINVAL);
    assert_int_equal(store_user_add(st, "x1", MD5_A "0", SHA_A), -EINVAL);
    assert_int_equal(store_user_add(st, "x1", SHA_A, MD5_A), -EINVAL);
    assert_int_equal(store_user_add(st, "x1", "3d78807defe7de2157e2b0b6573a855z", SHA_A), -EINVAL);
    assert_int_equal(store_user_add(st, "x1", NULL, SHA_A), -EINVAL);
    assert_int_equal(store_user_set_ha1(st, "alice", MD5_A, "abc"), -EINVAL);
    assert_int_equal(store_user_get(st, "x1", &u), -ENOENT);

    assert_int_equal(store_close(st), 0);
}

static void test_user_names(void **state)
{
    (void)state;
    char n64[65], n65[66];
    memset(n64, 'a', 64);
    n64[64] = '\0';
    memset(n65, 'a', 65);
    n65[65] = '\0';

    assert_true(store_user_name_valid("a"));
    assert_true(store_user_name_valid("0"));
    assert_true(store_user_name_valid("alice.smith_2-x"));
    assert_true(store_user_name_valid("9lives"));
    assert_true(store_user_name_valid(n64));
    assert_false(store_user_name_valid(n65));
    assert_false(store_user_name_valid(""));
    assert_false(store_user_name_valid(NULL));
    assert_false(store_user_name_valid("Alice"));
    assert_false(store_user_name_valid("aliCe"));
    assert_false(store_user_name_valid(".alice"));
    assert_false(store_user_name_valid("-alice"));
    assert_false(store_user_name_valid("_alice"));
    assert_false(store_user_name_valid("al ice"));
    assert_false(store_user_name_valid("alice@example.org"));
    assert_false(store_user_name_valid("al%69ce"));
    assert_false(store_user_name_valid("alice\n"));
    assert_false(store_user_name_valid("al\xc3\xa9"));
}

static void test_invalid_names_refused(void **state)
{
    struct fixture *f = *state;
    struct store *st = create(f);
    struct store_user u;
    static const char *const bad[] = {"Alice", "", ".x", "a b", "a;DROP TABLE users"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(store_user_add(st, bad[i], MD5_A, SHA_A), -EINVAL);
        assert_int_equal(store_user_get(st, bad[i], &u), -EINVAL);
        assert_int_equal(store_user_remove(st, bad[i]), -EINVAL);
        assert_int_equal(store_user_set_ha1(st, bad[i], MD5_A, SHA_A), -EINVAL);
    }
    assert_int_equal(store_user_add(st, NULL, MD5_A, SHA_A), -EINVAL);
    struct collected c = {0};
    assert_int_equal(store_user_list(st, collect_user, &c), 0);
    assert_int_equal(c.n, 0);
    assert_int_equal(store_close(st), 0);
}

static int count_call(const struct store_call *call, void *arg)
{
    (void)call;
    (*(int *)arg)++;
    return 0;
}

static void test_survives_reopen(void **state)
{
    struct fixture *f = *state;
    struct store *st = create(f);
    struct store_user u;
    char buf[64];

    assert_int_equal(store_user_add(st, "alice", MD5_A, SHA_A), 0);
    assert_int_equal(store_setting_set(st, "relay.secret.id", "k1"), 0);
    struct store_call call = {
        .call_id = "c1@x", .caller = "alice", .callee = "bob", .started = 100};
    assert_int_equal(store_call_insert(st, &call, NULL), 0);
    assert_int_equal(store_close(st), 0);

    st = reopen(f, 0);
    assert_int_equal(store_user_get(st, "alice", &u), 0);
    assert_string_equal(u.ha1_sha256, SHA_A);
    assert_int_equal(store_setting_get(st, "relay.secret.id", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "k1");
    int n = 0;
    assert_int_equal(store_call_list(st, 0, count_call, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(store_close(st), 0);

    /* read-only opens see the data too */
    st = reopen(f, STORE_READONLY);
    assert_int_equal(store_user_get(st, "alice", &u), 0);
    assert_int_equal(store_close(st), 0);
    assert_int_equal(store_close(NULL), 0);
}

static void test_write_failure_reported(void **state)
{
    struct fixture *f = *state;
    struct store *st = create(f);
    char buf[16];
    int fds[2];

    assert_int_equal(store_user_add(st, "alice", MD5_A, SHA_A), 0);
    assert_int_equal(store_close(st), 0);

    /* capture the log line a failure leaves */
    assert_int_equal(pipe(fds), 0);
    log_set_fd(fds[1]);

    /* a connection that may not write: every write says so */
    st = reopen(f, STORE_READONLY);
    assert_int_equal(store_user_add(st, "bob", MD5_A, SHA_A), -EROFS);
    assert_non_null(strstr(store_errmsg(st), "user_add"));
    assert_non_null(strstr(store_errmsg(st), "readonly"));
    assert_int_equal(store_user_set_ha1(st, "alice", MD5_B, SHA_B), -EROFS);
    assert_int_equal(store_user_remove(st, "alice"), -EROFS);
    assert_int_equal(store_setting_set(st, "k", "v"), -EROFS);
    assert_non_null(strstr(store_errmsg(st), "setting_set"));
    struct store_call call = {.call_id = "c", .caller = "a", .callee = "b", .started = 1};
    assert_int_equal(store_call_insert(st, &call, NULL), -EROFS);
    assert_non_null(strstr(store_errmsg(st), "call_insert"));
    assert_int_equal(store_close(st), 0);

    /* a write SQLite itself refuses, on a normal connection: the message
     * is SQLite's, passed on */
    raw_exec(f, "CREATE TRIGGER no_users BEFORE INSERT ON users "
                "BEGIN SELECT RAISE(ABORT, 'disk says no'); END");
    st = reopen(f, 0);
    int rc = store_user_add(st, "bob", MD5_A, SHA_A);
    assert_true(rc < 0);
    assert_int_not_equal(rc, -EEXIST);
    assert_non_null(strstr(store_errmsg(st), "disk says no"));
    struct store_user u;
    assert_int_equal(store_user_get(st, "bob", &u), -ENOENT);
    assert_int_equal(store_user_get(st, "alice", &u), 0);
    assert_string_equal(u.ha1_md5, MD5_A); /* the read-only attempts changed nothing */
    assert_int_equal(store_setting_get(st, "k", buf, sizeof(buf)), -ENOENT);
    assert_int_equal(store_close(st), 0);

    log_set_fd(2);
    close(fds[1]);
    char logbuf[8192];
    ssize_t n = read(fds[0], logbuf, sizeof(logbuf) - 1);
    close(fds[0]);
    assert_true(n > 0);
    logbuf[n] = '\0';
    assert_non_null(strstr(logbuf, "event=store.failed path="));
    assert_non_null(strstr(logbuf, " op=user_add error=\"disk says no\""));
}

static void test_settings(void **state)
{
    struct fixture *f = *state;
    struct store *st = create(f);
    char buf[8];

    assert_int_equal(store_setting_get(st, "a.b", buf, sizeof(buf)), -ENOENT);
    assert_int_equal(store_setting_set(st, "a.b", "one"), 0);
    assert_int_equal(store_setting_get(st, "a.b", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "one");
    assert_int_equal(store_setting_set(st, "a.b", "two"), 0);
    assert_int_equal(store_setting_get(st, "a.b", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "two");
    assert_int_equal(store_setting_set(st, "a.b", ""), 0);
    assert_int_equal(store_setting_get(st, "a.b", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "");
    assert_int_equal(store_setting_set(st, "long", "1234567"), 0);
    assert_int_equal(store_setting_get(st, "long", buf, sizeof(buf)), 0);
    assert_int_equal(store_setting_set(st, "long", "12345678"), 0);
    assert_int_equal(store_setting_get(st, "long", buf, sizeof(buf)), -ENOSPC);
    assert_int_equal(store_setting_delete(st, "long"), 0);
    assert_int_equal(store_setting_delete(st, "long"), -ENOENT);
    assert_string_equal(store_errmsg(st), "no setting long");
    assert_int_equal(store_setting_get(st, "long", buf, sizeof(buf)), -ENOENT);

    assert_int_equal(store_setting_set(st, "", "x"), -EINVAL);
    assert_int_equal(store_setting_set(st, "Upper", "x"), -EINVAL);
    assert_int_equal(store_setting_set(st, "a b", "x"), -EINVAL);
    assert_int_equal(store_setting_set(st, NULL, "x"), -EINVAL);
    assert_int_equal(store_setting_set(st, "k", NULL), -EINVAL);
    assert_int_equal(store_setting_get(st, "k", buf, 0), -EINVAL);
    char key[STORE_SETTING_KEY_MAX + 2];
    memset(key, 'k', sizeof(key));
    key[STORE_SETTING_KEY_MAX] = '\0';
    assert_int_equal(store_setting_set(st, key, "x"), 0);
    key[STORE_SETTING_KEY_MAX] = 'k';
    key[STORE_SETTING_KEY_MAX + 1] = '\0';
    assert_int_equal(store_setting_set(st, key, "x"), -EINVAL);
    assert_int_equal(store_close(st), 0);
}

struct calls_seen {
    int n;
    int64_t ids[8];
    char call_ids[8][16];
    int64_t answered[8];
    bool reason_null[8];
};

static int collect_call(const struct store_call *call, void *arg)
{
    struct calls_seen *c = arg;
    if (c->n < 8) {
        c->ids[c->n] = call->id;
        snprintf(c->call_ids[c->n], sizeof(c->call_ids[0]), "%s", call->call_id);
        c->answered[c->n] = call->answered;
        c->reason_null[c->n] = call->reason == NULL;
    }
    c->n++;
    return 0;
}

/* SQL that undoes a migration, for tests that start from an old schema. */
#define UNDO_7 "ALTER TABLE users DROP COLUMN admin;"
#define UNDO_6                                                                                     \
    "DROP TRIGGER users_name_free; DROP TRIGGER users_uid_given; DROP TRIGGER users_uid_fixed;"    \
    "DROP TRIGGER users_card_added; DROP TRIGGER users_card_changed;"                              \
    "DROP TRIGGER users_card_removed; DROP TABLE card_changes; DROP TABLE conference_allow;"       \
    "DROP TABLE conferences; DROP TABLE group_members; DROP TABLE groups;"                         \
    "DROP INDEX users_by_uid; ALTER TABLE users DROP COLUMN uid;"                                  \
    "ALTER TABLE users DROP COLUMN email; ALTER TABLE users DROP COLUMN display_name;"
#define UNDO_5                                                                                     \
    "DROP TABLE trunks; DROP TABLE routes; DROP TABLE dialplan_rules;"                             \
    "DROP INDEX users_by_number; ALTER TABLE users DROP COLUMN number;"                            \
    "ALTER TABLE users DROP COLUMN outbound;"
#define UNDO_4 "ALTER TABLE calls DROP COLUMN legs;"

static int collect_legs(const struct store_call *call, void *arg)
{
    char(*legs)[64] = arg;
    snprintf(legs[strcmp(call->call_id, "old@x") == 0 ? 0 : 1], 64, "%s",
             call->legs ? call->legs : "(null)");
    return 0;
}

/* A store of schema 3 (before anchored media's figures) is migrated: its
 * calls stay, without figures; new calls keep theirs. */
static void test_migration_from_3_keeps_calls(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(store_close(create(f)), 0);
    /* the schema as version 3 left it, with one call and one user in it */
    raw_exec(f, UNDO_7 UNDO_6 UNDO_5 UNDO_4
             "PRAGMA user_version = 3;"
             "INSERT INTO users (name, ha1_md5, ha1_sha256, created, updated) VALUES "
             "('alice', '" MD5_A "', '" SHA_A "', 1, 1);"
             "INSERT INTO calls (call_id, caller, callee, started, media) VALUES "
             "('old@x', 'alice@example.test', 'bob@example.test', 1700000000, "
             "'audio SRTP AES_CM_128_HMAC_SHA1_80')");
    struct store *st = reopen(f, 0);
    struct store_call c = {.call_id = "new@x",
                           .caller = "alice@example.test",
                           .callee = "bob@example.test",
                           .started = 1700000100,
                           .legs = "[{\"section\":0,\"legs\":[]}]"};
    assert_int_equal(store_call_insert(st, &c, NULL), 0);
    char legs[2][64] = {"", ""};
    assert_int_equal(store_call_list(st, 0, collect_legs, legs), 0);
    assert_string_equal(legs[0], "(null)");
    assert_string_equal(legs[1], c.legs);
    /* the user is there, with no number and no right to call out */
    struct store_user u;
    assert_int_equal(store_user_get(st, "alice", &u), 0);
    assert_string_equal(u.number, "");
    assert_string_equal(u.outbound, "none");
    assert_int_equal(store_close(st), 0);
    sqlite3 *db = raw_open(f);
    assert_int_equal(raw_int(db, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
    sqlite3_close(db);
}

struct seeded {
    int n;
    char names[4][STORE_USER_NAME_MAX + 1];
    char uids[4][STORE_UID_LEN + 1];
};

static int note_seeded(const struct store_card_change *c, void *arg)
{
    struct seeded *s = arg;
    assert_int_equal(c->kind, STORE_CARD_USER);
    assert_false(c->removed);
    if (s->n < 4) {
        snprintf(s->names[s->n], sizeof(s->names[0]), "%s", c->name);
        snprintf(s->uids[s->n], sizeof(s->uids[0]), "%s", c->uid);
    }
    s->n++;
    return 0;
}

static bool uid_form(const char *uid)
{
    if (strlen(uid) != STORE_UID_LEN)
        return false;
    for (const char *p = uid; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

/* A store of schema 5 (before the directory) is migrated: its users keep
 * what they had, each gains a uid of its own (32 lowercase hex), no
 * profile, and a seeded change so that a first address-book sync sees
 * them; users added afterwards get a uid too. */
static void test_migration_from_5_fills_uids(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(store_close(create(f)), 0);
    raw_exec(f, UNDO_7 UNDO_6
             "PRAGMA user_version = 5;"
             "INSERT INTO users (name, ha1_md5, ha1_sha256, created, updated, number, "
             "outbound) VALUES "
             "('alice', '" MD5_A "', '" SHA_A "', 1, 2, '+14255550101', 'national'),"
             "('bob', '" MD5_B "', '', 3, 4, NULL, 'none'),"
             "('carol', '', '" SHA_B "', 5, 6, NULL, 'all');"
             "INSERT INTO trunks (name, gateway, transport, srtp_mode, address, added) "
             "VALUES ('gw1', '192.0.2.1:5060', 'tcp', 'not_supported', '192.0.2.1', 7)");
    struct store *st = reopen(f, 0);
    struct store_user a, b, c;
    assert_int_equal(store_user_get(st, "alice", &a), 0);
    assert_int_equal(store_user_get(st, "bob", &b), 0);
    assert_int_equal(store_user_get(st, "carol", &c), 0);
    assert_string_equal(a.ha1_md5, MD5_A);
    assert_string_equal(a.ha1_sha256, SHA_A);
    assert_int_equal(a.created, 1);
    assert_int_equal(a.updated, 2);
    assert_string_equal(a.number, "+14255550101");
    assert_string_equal(a.outbound, "national");
    assert_string_equal(b.ha1_sha256, "");
    assert_string_equal(c.ha1_md5, "");
    assert_string_equal(c.outbound, "all");
    assert_string_equal(a.display_name, "");
    assert_string_equal(a.email, "");
    assert_true(uid_form(a.uid) && uid_form(b.uid) && uid_form(c.uid));
    assert_string_not_equal(a.uid, b.uid);
    assert_string_not_equal(a.uid, c.uid);
    assert_string_not_equal(b.uid, c.uid);
    struct store_trunk t;
    assert_int_equal(store_trunk_get(st, "gw1", &t), 0);
    assert_string_equal(t.address, "192.0.2.1");

    /* the change log is seeded: one change per user, in name order */
    int64_t seq = 0;
    assert_int_equal(store_card_seq(st, &seq), 0);
    assert_int_equal(seq, 3);
    struct seeded s = {0};
    assert_int_equal(store_card_changes(st, 0, note_seeded, &s), 0);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.names[0], "alice");
    assert_string_equal(s.uids[0], a.uid);
    assert_string_equal(s.names[2], "carol");
    assert_string_equal(s.uids[2], c.uid);

    /* the schema is 6's in full: a new user gets a uid, and is logged */
    struct store_user d;
    assert_int_equal(store_user_add(st, "dave", MD5_A, SHA_A), 0);
    assert_int_equal(store_user_get(st, "dave", &d), 0);
    assert_true(uid_form(d.uid));
    assert_int_equal(store_card_seq(st, &seq), 0);
    assert_int_equal(seq, 4);
    assert_int_equal(store_group_add(st, "staff", "Staff"), 0);
    assert_int_equal(store_close(st), 0);
    sqlite3 *db = raw_open(f);
    assert_int_equal(raw_int(db, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
    assert_int_equal(raw_int(db, "SELECT count(DISTINCT uid) FROM users"), 4);
    sqlite3_close(db);
}

/* A store of schema 6 (before administrators) is migrated: its users keep
 * their accounts and are no administrators; one can be made one, and back,
 * each change ending the tickets issued before (updated moves). */
static void test_migration_from_6_adds_admin(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(store_close(create(f)), 0);
    raw_exec(f,
             UNDO_7 "PRAGMA user_version = 6;"
                    "INSERT INTO users (name, ha1_md5, ha1_sha256, created, updated, uid) VALUES "
                    "('alice', '" MD5_A "', '" SHA_A "', 1, 2, "
                    "'0123456789abcdef0123456789abcdef')");
    struct store *st = reopen(f, 0);
    struct store_user u;
    assert_int_equal(store_user_get(st, "alice", &u), 0);
    assert_false(u.admin);
    assert_string_equal(u.ha1_sha256, SHA_A);
    assert_string_equal(u.uid, "0123456789abcdef0123456789abcdef");
    assert_int_equal(u.updated, 2);
    assert_int_equal(store_user_set_admin(st, "alice", true), 0);
    assert_int_equal(store_user_get(st, "alice", &u), 0);
    assert_true(u.admin);
    assert_true(u.updated > 2);
    assert_int_equal(store_user_set_admin(st, "alice", false), 0);
    assert_int_equal(store_user_get(st, "alice", &u), 0);
    assert_false(u.admin);
    /* negative: no such user, a bad name */
    assert_int_equal(store_user_set_admin(st, "nobody", true), -ENOENT);
    assert_int_equal(store_user_set_admin(st, "bad name", true), -EINVAL);
    /* a new user is no administrator */
    assert_int_equal(store_user_add(st, "bob", MD5_B, SHA_B), 0);
    assert_int_equal(store_user_get(st, "bob", &u), 0);
    assert_false(u.admin);
    assert_int_equal(store_close(st), 0);
    sqlite3 *db = raw_open(f);
    assert_int_equal(raw_int(db, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
    /* the column takes 0 or 1 only, whoever writes it */
    assert_int_not_equal(sqlite3_exec(db, "UPDATE users SET admin = 2", NULL, NULL, NULL),
                         SQLITE_OK);
    sqlite3_close(db);
}

static int note_rule(const struct store_dialplan_rule *r, void *arg)
{
    char *names = arg;
    strcat(names, r->name);
    strcat(names, " ");
    return 0;
}

static int note_route(const struct store_route *r, void *arg)
{
    char *names = arg;
    strcat(names, r->name);
    strcat(names, "=");
    strcat(names, r->trunks);
    strcat(names, " ");
    return 0;
}

static int count_trunk(const struct store_trunk *t, void *arg)
{
    (void)t;
    ++*(int *)arg;
    return 0;
}

/* Numbers are E.164 and unique; outbound rights are one of three. */
static void test_numbers(void **state)
{
    struct fixture *f = *state;
    struct store *st = create(f);
    assert_int_equal(store_user_add(st, "alice", MD5_A, SHA_A), 0);
    assert_int_equal(store_user_add(st, "bob", MD5_A, SHA_A), 0);
    assert_int_equal(store_user_set_number(st, "alice", "+14255550101"), 0);
    assert_int_equal(store_user_set_number(st, "bob", "+14255550101"), -EEXIST);
    assert_non_null(strstr(store_errmsg(st), "alice's number"));
    assert_int_equal(store_user_set_number(st, "bob", "4255550102"), -EINVAL);
    assert_int_equal(store_user_set_number(st, "nobody", "+14255550103"), -ENOENT);
    struct store_user u;
    assert_int_equal(store_user_by_number(st, "+14255550101", &u), 0);
    assert_string_equal(u.name, "alice");
    assert_int_equal(store_user_by_number(st, "+14255550102", &u), -ENOENT);
    /* the number moves once its owner lets it go */
    assert_int_equal(store_user_set_number(st, "alice", ""), 0);
    assert_int_equal(store_user_set_number(st, "bob", "+14255550101"), 0);
    assert_int_equal(store_user_set_outbound(st, "bob", "national"), 0);
    assert_int_equal(store_user_set_outbound(st, "bob", "everything"), -EINVAL);
    assert_int_equal(store_user_get(st, "bob", &u), 0);
    assert_string_equal(u.number, "+14255550101");
    assert_string_equal(u.outbound, "national");
    assert_int_equal(store_close(st), 0);
}

/* Rules and routes keep their order; routes name trunks that exist; a
 * trunk a route uses is not removed; a TCP trunk carries no SRTP. */
static void test_dialplan_routes_trunks(void **state)
{
    struct fixture *f = *state;
    struct store *st = create(f);
    struct store_dialplan_rule r1 = {"ext", "^(\\d{4})$", "+1425555$1"};
    struct store_dialplan_rule r2 = {"nat", "^1?(\\d{10})$", "+1$1"};
    struct store_dialplan_rule bad = {"bad", "^(\\d{4})$", "+1$2"};
    assert_int_equal(store_dialplan_add(st, &r2), 0);
    assert_int_equal(store_dialplan_add(st, &r1), 0);
    assert_int_equal(store_dialplan_add(st, &r1), -EEXIST);
    assert_int_equal(store_dialplan_add(st, &bad), -EINVAL);
    assert_non_null(strstr(store_errmsg(st), "uses $2"));
    char names[256] = "";
    assert_int_equal(store_dialplan_list(st, note_rule, names), 0);
    assert_string_equal(names, "nat ext ");

    struct store_trunk tcp = {.name = "gw1",
                              .gateway = "192.0.2.50:5060",
                              .transport = "tcp",
                              .srtp_mode = "required",
                              .address = "192.0.2.50"};
    assert_int_equal(store_trunk_add(st, &tcp), -EINVAL);
    assert_non_null(strstr(store_errmsg(st), "never cross an unencrypted hop"));
    snprintf(tcp.srtp_mode, sizeof(tcp.srtp_mode), "not_supported");
    assert_int_equal(store_trunk_add(st, &tcp), 0);
    struct store_trunk tls = {.name = "gw2",
                              .gateway = "gw2.example.net:5061",
                              .transport = "tls",
                              .srtp_mode = "required"};
    assert_int_equal(store_trunk_add(st, &tls), 0);
    assert_int_equal(store_trunk_add(st, &tls), -EEXIST);

    struct store_route na = {"north-america", "^\\+1\\d{10}$", "gw1,gw2"};
    struct store_route nowhere = {"world", "^\\+\\d+$", "gw3"};
    assert_int_equal(store_route_add(st, &na), 0);
    assert_int_equal(store_route_add(st, &nowhere), -ENOENT);
    assert_non_null(strstr(store_errmsg(st), "no trunk gw3"));
    names[0] = '\0';
    assert_int_equal(store_route_list(st, note_route, names), 0);
    assert_string_equal(names, "north-america=gw1,gw2 ");
    assert_int_equal(store_trunk_remove(st, "gw2"), -EBUSY);
    assert_non_null(strstr(store_errmsg(st), "route north-america uses trunk gw2"));
    assert_int_equal(store_route_remove(st, "north-america"), 0);
    assert_int_equal(store_trunk_remove(st, "gw2"), 0);
    assert_int_equal(store_dialplan_remove(st, "nat"), 0);
    assert_int_equal(store_dialplan_remove(st, "nat"), -ENOENT);
    int ntrunks = 0;
    assert_int_equal(store_trunk_list(st, count_trunk, &ntrunks), 0);
    assert_int_equal(ntrunks, 1);
    struct store_trunk got;
    assert_int_equal(store_trunk_get(st, "gw1", &got), 0);
    assert_string_equal(got.address, "192.0.2.50");
    assert_int_equal(store_close(st), 0);
    /* what the store keeps survives a reopen */
    st = reopen(f, 0);
    names[0] = '\0';
    assert_int_equal(store_dialplan_list(st, note_rule, names), 0);
    assert_string_equal(names, "ext ");
    assert_int_equal(store_close(st), 0);
}

static void test_calls(void **state)
{
    struct fixture *f = *state;
    struct store *st = create(f);
    int64_t id1 = 0, id2 = 0, id3 = 0, id4 = 0;

    struct store_call a = {.call_id = "a",
                           .caller = "alice",
                           .callee = "bob",
                           .started = 100,
                           .answered = 105,
                           .ended = 160,
                           .reason = "bye",
                           .media = "srtp"};
    struct store_call b = {.call_id = "b", .caller = "bob", .callee = "alice", .started = 300};
    struct store_call c = {.call_id = "c",
                           .caller = "carol",
                           .callee = "bob",
                           .started = 200,
                           .ended = 210,
                           .reason = "486"};
    struct store_call d = {.call_id = "d", .caller = "dave", .callee = "bob", .started = 300};
    assert_int_equal(store_call_insert(st, &a, &id1), 0);
    assert_int_equal(store_call_insert(st, &b, &id2), 0);
    assert_int_equal(store_call_insert(st, &c, &id3), 0);
    assert_int_equal(store_call_insert(st, &d, &id4), 0);
    assert_true(id1 > 0 && id2 > id1 && id3 > id2 && id4 > id3);

    struct calls_seen seen = {0};
    assert_int_equal(store_call_list(st, 0, collect_call, &seen), 0);
    assert_int_equal(seen.n, 4);
    /* newest start first; same start: last inserted first */
    assert_string_equal(seen.call_ids[0], "d");
    assert_string_equal(seen.call_ids[1], "b");
    assert_string_equal(seen.call_ids[2], "c");
    assert_string_equal(seen.call_ids[3], "a");
    assert_int_equal(seen.ids[3], id1);
    assert_int_equal(seen.answered[3], 105);
    assert_int_equal(seen.answered[1], 0); /* never answered */
    assert_true(seen.reason_null[1]);
    assert_false(seen.reason_null[3]);

    seen = (struct calls_seen){0};
    assert_int_equal(store_call_list(st, 2, collect_call, &seen), 0);
    assert_int_equal(seen.n, 2);
    assert_string_equal(seen.call_ids[0], "d");
    assert_string_equal(seen.call_ids[1], "b");

    struct store_call bad = {.call_id = "x", .caller = NULL, .callee = "b", .started = 1};
    assert_int_equal(store_call_insert(st, &bad, NULL), -EINVAL);
    assert_int_equal(store_call_insert(st, NULL, NULL), -EINVAL);

    /* the NULLs really are NULLs in the table */
    assert_int_equal(store_close(st), 0);
    sqlite3 *db = raw_open(f);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM calls WHERE answered IS NULL"), 3);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM calls WHERE ended IS NULL"), 2);
    sqlite3_close(db);
}

/* The writer keeps a record the store cannot take now: with the database
 * locked past the busy timeout (5 s) the insert fails, and the record is
 * written once the lock goes, in its place before later ones. */
static void test_writer_retries_a_locked_store(void **state)
{
    struct fixture *f = *state;
    struct store *st = create(f);
    assert_int_equal(store_close(st), 0);

    struct store_writer *w = NULL;
    assert_int_equal(store_writer_start(f->path, &w, f->err, sizeof(f->err)), 0);
    sqlite3 *db = raw_open(f);
    assert_int_equal(sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    struct store_call a = {.call_id = "first", .caller = "alice", .callee = "bob", .started = 1};
    struct store_call b = {.call_id = "second", .caller = "bob", .callee = "alice", .started = 2};
    store_writer_call(w, &a);
    sleep(6); /* past the writer's busy timeout: its insert has failed */
    store_writer_call(w, &b);
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);

    int n = 0;
    for (int i = 0; i < 100 && n < 2; i++) {
        usleep(100000);
        n = raw_int(db, "SELECT count(*) FROM calls");
    }
    assert_int_equal(n, 2);
    assert_int_equal(raw_int(db, "SELECT id FROM calls WHERE call_id = 'first'"), 1);
    assert_int_equal(raw_int(db, "SELECT id FROM calls WHERE call_id = 'second'"), 2);
    sqlite3_close(db);
    store_writer_stop(w);
}

static void test_partners(void **state)
{
    struct fixture *f = *state;
    struct store *st = create(f);
    struct store_partner p = {.domain = "b.test",
                              .server = "sip.b.test",
                              .port = 5071,
                              .address = "127.0.0.3",
                              .added = 1700000000};
    struct store_partner got;

    assert_int_equal(store_partner_add(st, &p), 0);
    assert_int_equal(store_partner_add(st, &p), -EEXIST);
    assert_int_equal(store_partner_get(st, "b.test", &got), 0);
    assert_string_equal(got.server, "sip.b.test");
    assert_int_equal(got.port, 5071);
    assert_string_equal(got.address, "127.0.0.3");
    assert_int_equal(store_partner_remove(st, "b.test"), 0);
    assert_int_equal(store_partner_remove(st, "b.test"), -ENOENT);
    assert_string_equal(store_errmsg(st), "no partner b.test");
    assert_int_equal(store_partner_get(st, "b.test", &got), -ENOENT);
    assert_int_equal(store_close(st), 0);
}

/* A snapshot taken while another connection holds a write transaction
 * open sees the last committed state, is 0600, one file, and opens. */
static void test_snapshot(void **state)
{
    struct fixture *f = *state;
    struct store *st = create(f);
    assert_int_equal(store_user_add(st, "alice", MD5_A, SHA_A), 0);

    sqlite3 *w = NULL;
    assert_int_equal(sqlite3_open(f->path, &w), SQLITE_OK);
    assert_int_equal(sqlite3_exec(w,
                                  "BEGIN IMMEDIATE; UPDATE users SET ha1_md5 = '" MD5_B
                                  "' WHERE name = 'alice'",
                                  NULL, NULL, NULL),
                     SQLITE_OK);

    char dest[128], integrity[64];
    snprintf(dest, sizeof(dest), "%s/snap.db", f->dir);
    assert_int_equal(store_snapshot(f->path, dest, f->err, sizeof(f->err)), 0);
    assert_int_equal(sqlite3_exec(w, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(w);
    /* it exists now: never overwritten */
    assert_int_equal(store_snapshot(f->path, dest, f->err, sizeof(f->err)), -EEXIST);

    struct stat sb;
    assert_int_equal(stat(dest, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0600);
    int64_t version = 0;
    assert_int_equal(
        store_check(dest, &version, integrity, sizeof(integrity), f->err, sizeof(f->err)), 0);
    assert_int_equal(version, STORE_SCHEMA_VERSION);
    assert_string_equal(integrity, "ok");

    struct store *snap = NULL;
    assert_int_equal(store_open(dest, 0, &snap, f->err, sizeof(f->err)), 0);
    struct store_user u;
    assert_int_equal(store_user_get(snap, "alice", &u), 0);
    assert_string_equal(u.ha1_md5, MD5_A); /* not the uncommitted change */
    store_close(snap);
    store_close(st);
    char p[160];
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
        snprintf(p, sizeof(p), "%s%s", dest, suffix[i]);
        unlink(p);
    }
}

/* store_check says when the file is damaged, and refuses what is not a
 * store at all or may be read by others */
static void test_check_damaged(void **state)
{
    struct fixture *f = *state;
    struct store *st = create(f);
    for (int i = 0; i < 200; i++) {
        char name[32];
        snprintf(name, sizeof(name), "user%03d", i);
        assert_int_equal(store_user_add(st, name, MD5_A, SHA_A), 0);
    }
    assert_int_equal(store_close(st), 0);

    char integrity[256];
    int64_t version = 0;
    assert_int_equal(
        store_check(f->path, &version, integrity, sizeof(integrity), f->err, sizeof(f->err)), 0);
    assert_string_equal(integrity, "ok");

    /* every page after the first gets its page header overwritten */
    int fd = open(f->path, O_RDWR);
    assert_true(fd >= 0);
    struct stat sb;
    assert_int_equal(fstat(fd, &sb), 0);
    char junk[16];
    memset(junk, 0x5a, sizeof(junk));
    for (off_t at = 4096; at < sb.st_size; at += 4096)
        assert_int_equal(pwrite(fd, junk, sizeof(junk), at), sizeof(junk));
    close(fd);
    int rc = store_check(f->path, &version, integrity, sizeof(integrity), f->err, sizeof(f->err));
    assert_true(rc < 0 || strcmp(integrity, "ok") != 0);

    assert_int_equal(chmod(f->path, 0644), 0);
    assert_int_equal(
        store_check(f->path, &version, integrity, sizeof(integrity), f->err, sizeof(f->err)),
        -EPERM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_refuses_existing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_refuses_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_from_3_keeps_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_from_5_fills_uids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_from_6_adds_admin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_numbers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dialplan_routes_trunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_users, setup, teardown),
        cmocka_unit_test(test_user_names),
        cmocka_unit_test_setup_teardown(test_invalid_names_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_survives_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_failure_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partners, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_damaged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_retries_a_locked_store, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
