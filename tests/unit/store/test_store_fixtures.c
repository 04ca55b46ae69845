/*
 * Stores written by earlier builds (tests/fixtures/store/schema-N.db, made
 * by make-fixtures.sh with the parleyctl of the commit that introduced
 * schema N) open with this build: they migrate to STORE_SCHEMA_VERSION,
 * and every row survives, the password digests unchanged, so the users
 * still authenticate with the passwords they had.
 *
 * The fixture directory comes as argv[1] (meson passes it).
 */
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
#include "core/log.h"
#include "crypto/digest.h"
#include "store/store.h"

#define FIXTURE_REALM "example.test"

static const char *fixture_dir;

struct fixture {
    char dir[64];
    char path[96];
    char err[256];
    int version;
};

/* git does not keep 0600, and the store refuses a file others may read:
 * the test works on a 0600 copy, which is also what an upgrade would find */
static void copy_fixture(struct fixture *f, int version)
{
    char src[4096], buf[65536];
    snprintf(src, sizeof(src), "%s/schema-%d.db", fixture_dir, version);
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        fail_msg("%s: %s", src, strerror(errno));
    int out = open(f->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    assert_true(out >= 0);
    ssize_t n;
    while ((n = read(in, buf, sizeof(buf))) > 0)
        assert_int_equal(write(out, buf, (size_t)n), n);
    assert_int_equal(n, 0);
    close(in);
    close(out);
    f->version = version;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    if (store_scratch_make("parley-fixture", f->dir, sizeof(f->dir), f->path, sizeof(f->path)) != 0)
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

static int64_t user_version(const char *path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    int64_t v = -1;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL), SQLITE_OK);
    if (sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

static void check_user(struct store *st, const char *name, const char *password)
{
    struct store_user u;
    char md5[DIGEST_HEX_BUF], sha[DIGEST_HEX_BUF];
    assert_int_equal(store_user_get(st, name, &u), 0);
    assert_int_equal(digest_ha1(DIGEST_ALG_MD5, name, FIXTURE_REALM, password, md5), 0);
    assert_int_equal(digest_ha1(DIGEST_ALG_SHA256, name, FIXTURE_REALM, password, sha), 0);
    assert_string_equal(u.ha1_md5, md5);
    assert_string_equal(u.ha1_sha256, sha);
    /* schema 6 gave every user a uid, also to those who came before it */
    assert_int_equal(strlen(u.uid), STORE_UID_LEN);
}

static int count_call(const struct store_call *c, void *arg)
{
    int *n = arg;
    if (strcmp(c->call_id, "fixture-call-1") == 0 && strcmp(c->caller, "alice") == 0 &&
        c->answered == 1764000002 && c->ended == 1764000060)
        (*n)++;
    return 0;
}

static int count_member(enum store_member_kind kind, const char *name, void *arg)
{
    int *n = arg;
    (*n)++;
    return 0;
}

static void check_version(void **state, int version)
{
    struct fixture *f = *state;
    copy_fixture(f, version);
    assert_int_equal(user_version(f->path), version);

    /* read-only cannot migrate, and says so (unless nothing is pending) */
    struct store *st = NULL;
    int rc = store_open(f->path, STORE_READONLY, &st, f->err, sizeof(f->err));
    if (version < STORE_SCHEMA_VERSION) {
        assert_int_equal(rc, -EPROTO);
        assert_non_null(strstr(f->err, "migrating"));
    } else {
        assert_int_equal(rc, 0);
        store_close(st);
    }

    rc = store_open(f->path, 0, &st, f->err, sizeof(f->err));
    if (rc != 0)
        fail_msg("schema-%d.db: %d %s", version, rc, f->err);

    check_user(st, "alice", "alice-secret-1");
    check_user(st, "bob", "bob-secret-2");
    struct store_user u;
    assert_int_equal(store_user_get(st, "carol", &u), -ENOENT);

    int calls = 0;
    assert_int_equal(store_call_list(st, 0, count_call, &calls), 0);
    assert_int_equal(calls, 1);

    if (version >= 2) {
        enum store_presence_rule r;
        assert_int_equal(store_presence_rule_get(st, "alice", "bob@" FIXTURE_REALM, &r), 0);
        assert_int_equal(r, STORE_PRESENCE_ALLOW);
        assert_int_equal(store_presence_rule_get(st, "bob", "alice@" FIXTURE_REALM, &r), 0);
        assert_int_equal(r, STORE_PRESENCE_BLOCK);
    }
    if (version >= 3) {
        struct store_partner p;
        assert_int_equal(store_partner_get(st, "partner.example", &p), 0);
        assert_string_equal(p.server, "sip.partner.example");
        assert_int_equal(p.port, 5062);
    }
    if (version >= 5) {
        assert_int_equal(store_user_get(st, "alice", &u), 0);
        assert_string_equal(u.number, "+15551230001");
        assert_string_equal(u.outbound, "national");
        struct store_trunk t;
        assert_int_equal(store_trunk_get(st, "gw1", &t), 0);
        assert_string_equal(t.gateway, "gw1.example:5062");
        assert_string_equal(t.srtp_mode, "required");
    } else {
        assert_int_equal(store_user_get(st, "alice", &u), 0);
        assert_string_equal(u.number, "");
        assert_string_equal(u.outbound, "none");
    }
    if (version >= 6) {
        assert_int_equal(store_user_get(st, "bob", &u), 0);
        assert_string_equal(u.display_name, "Bob Example");
        struct store_group g;
        assert_int_equal(store_group_get(st, "sales", &g), 0);
        int members = 0;
        assert_int_equal(store_group_members(st, "sales", count_member, &members), 0);
        assert_int_equal(members, 2);
        bool may_read = false, organizer = true;
        assert_int_equal(store_conference_access(st, "weekly", "bob", 8, &may_read, &organizer), 0);
        assert_true(may_read);
        assert_false(organizer);
    }
    /* what the migrations added works on the old rows: a user from before
     * schema 6 gets a card, a number can be given */
    assert_int_equal(store_user_set_number(st, "bob", "+15551230002"), 0);
    assert_int_equal(store_group_add(st, "support", "Support"), 0);
    assert_int_equal(store_group_member_add(st, "support", "bob"), 0);
    assert_int_equal(store_close(st), 0);
    assert_int_equal(user_version(f->path), STORE_SCHEMA_VERSION);

    /* and it opens again without migrating */
    assert_int_equal(store_open(f->path, STORE_READONLY, &st, f->err, sizeof(f->err)), 0);
    check_user(st, "alice", "alice-secret-1");
    store_close(st);
}

static void test_schema_1(void **state)
{
    check_version(state, 1);
}
static void test_schema_2(void **state)
{
    check_version(state, 2);
}
static void test_schema_3(void **state)
{
    check_version(state, 3);
}
static void test_schema_4(void **state)
{
    check_version(state, 4);
}
static void test_schema_5(void **state)
{
    check_version(state, 5);
}
static void test_schema_6(void **state)
{
    check_version(state, 6);
}

/* a wrong password does not match what survived: the comparison above
 * would notice a digest the migration had changed */
static void test_wrong_password_differs(void **state)
{
    struct fixture *f = *state;
    copy_fixture(f, 1);
    struct store *st = NULL;
    assert_int_equal(store_open(f->path, 0, &st, f->err, sizeof(f->err)), 0);
    struct store_user u;
    char md5[DIGEST_HEX_BUF];
    assert_int_equal(store_user_get(st, "alice", &u), 0);
    assert_int_equal(digest_ha1(DIGEST_ALG_MD5, "alice", FIXTURE_REALM, "alice-secret-2", md5), 0);
    assert_string_not_equal(u.ha1_md5, md5);
    store_close(st);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FIXTURE_DIR\n", argv[0]);
        return 2;
    }
    fixture_dir = argv[1];
    log_set_level(LOG_LEVEL_WARN);
    if (digest_init(NULL, NULL) != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_schema_1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_3, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_4, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_5, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_6, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_password_differs, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    digest_cleanup();
    return rc;
}
