/*
 * media/relay_cred: issuing and verifying time-limited relay credentials
 * (the passwords checked against values computed independently with
 * Python's hmac/base64, i.e. what coturn's use-auth-secret computes), and
 * the secrets file: creation mode, loading refusals, rotation and grace.
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

#include "relay/relay_cred.h"

#define SV(s)   strview_cstr(s)
#define NOW     1700000000
#define GRACE   28800
#define SECRET1 "north-secret-0123456789"

static struct relay_secrets one_secret(const char *value, int64_t added)
{
    struct relay_secrets s;
    memset(&s, 0, sizeof(s));
    s.n = 1;
    s.v[0].added = added;
    s.v[0].len = strlen(value);
    snprintf(s.v[0].value, sizeof(s.v[0].value), "%s", value);
    return s;
}

struct dir {
    char path[64];
    char file[128];
};

static int dir_setup(void **state)
{
    struct dir *d = calloc(1, sizeof(*d));
    snprintf(d->path, sizeof(d->path), "/tmp/parley-relaycred-XXXXXX");
    assert_non_null(mkdtemp(d->path));
    assert_int_equal(relay_secrets_path(d->path, d->file, sizeof(d->file)), 0);
    *state = d;
    return 0;
}

static int dir_teardown(void **state)
{
    struct dir *d = *state;
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->path);
    assert_int_equal(system(cmd), 0);
    free(d);
    return 0;
}

static void test_known_passwords(void **state)
{
    (void)state;
    struct relay_secrets s = one_secret(SECRET1, NOW - 10);
    char pw[RELAY_CRED_PASSWORD_BUF];

    /* base64(HMAC-SHA1(secret, username)), computed with Python */
    assert_int_equal(relay_cred_password(&s.v[0], SV("1700000000:alice"), pw), 0);
    assert_string_equal(pw, "rX4Zi/ISDg1rXPMR9j/yhCbVFZ4=");
    assert_int_equal(relay_cred_password(&s.v[0], SV("1700000000"), pw), 0);
    assert_string_equal(pw, "1aau7CVzQTgKw9DrBGLkyKq4eQA=");

    assert_int_equal(relay_cred_verify(&s, SV("1700000000:alice"),
                                       SV("rX4Zi/ISDg1rXPMR9j/yhCbVFZ4="), NOW, GRACE),
                     RELAY_CRED_OK);
    /* bare EXPIRY */
    assert_int_equal(
        relay_cred_verify(&s, SV("1700000000"), SV("1aau7CVzQTgKw9DrBGLkyKq4eQA="), NOW, GRACE),
        RELAY_CRED_OK);
}

static void test_issue_verify(void **state)
{
    (void)state;
    struct relay_secrets s = one_secret(SECRET1, NOW - 10);
    struct relay_cred c;

    assert_int_equal(relay_cred_issue(&s, "alice", NOW, 600, GRACE, &c), 0);
    assert_string_equal(c.username, "1700000600:alice");
    assert_int_equal(c.expires, NOW + 600);
    assert_int_equal(c.lifetime, 600);
    assert_int_equal(strlen(c.password), RELAY_CRED_PASSWORD_LEN);
    assert_int_equal(relay_cred_verify(&s, SV(c.username), SV(c.password), NOW, GRACE),
                     RELAY_CRED_OK);
    /* still valid at the last second, expired after */
    assert_int_equal(relay_cred_verify(&s, SV(c.username), SV(c.password), NOW + 600, GRACE),
                     RELAY_CRED_OK);
    assert_int_equal(relay_cred_verify(&s, SV(c.username), SV(c.password), NOW + 601, GRACE),
                     RELAY_CRED_EXPIRED);

    /* wrong password: one character changed, shorter, longer, empty */
    char bad[64];
    snprintf(bad, sizeof(bad), "%s", c.password);
    bad[3] = bad[3] == 'A' ? 'B' : 'A';
    assert_int_equal(relay_cred_verify(&s, SV(c.username), SV(bad), NOW, GRACE),
                     RELAY_CRED_INVALID);
    snprintf(bad, sizeof(bad), "%.27s", c.password);
    assert_int_equal(relay_cred_verify(&s, SV(c.username), SV(bad), NOW, GRACE),
                     RELAY_CRED_INVALID);
    snprintf(bad, sizeof(bad), "%sA", c.password);
    assert_int_equal(relay_cred_verify(&s, SV(c.username), SV(bad), NOW, GRACE),
                     RELAY_CRED_INVALID);
    assert_int_equal(relay_cred_verify(&s, SV(c.username), SV(""), NOW, GRACE), RELAY_CRED_INVALID);
    /* the username is bound: another user or expiry with the same password */
    assert_int_equal(relay_cred_verify(&s, SV("1700000600:bob"), SV(c.password), NOW, GRACE),
                     RELAY_CRED_INVALID);
    assert_int_equal(relay_cred_verify(&s, SV("1700000601:alice"), SV(c.password), NOW, GRACE),
                     RELAY_CRED_INVALID);

    /* a secret we do not have */
    struct relay_secrets other = one_secret("another-secret-abcdefgh", NOW - 10);
    assert_int_equal(relay_cred_verify(&other, SV(c.username), SV(c.password), NOW, GRACE),
                     RELAY_CRED_INVALID);

    /* bare EXPIRY */
    assert_int_equal(relay_cred_issue(&s, NULL, NOW, 60, GRACE, &c), 0);
    assert_string_equal(c.username, "1700000060");
    assert_int_equal(relay_cred_verify(&s, SV(c.username), SV(c.password), NOW, GRACE),
                     RELAY_CRED_OK);
    assert_int_equal(relay_cred_issue(&s, "", NOW, 60, GRACE, &c), 0);
    assert_string_equal(c.username, "1700000060");
}

static void test_lifetime_cap(void **state)
{
    (void)state;
    struct relay_secrets s = one_secret(SECRET1, NOW - 10);
    struct relay_cred c;

    assert_int_equal(relay_cred_issue(&s, "alice", NOW, 0, GRACE, &c), 0);
    assert_int_equal(c.lifetime, GRACE);
    assert_int_equal(relay_cred_issue(&s, "alice", NOW, GRACE + 1, GRACE, &c), 0);
    assert_int_equal(c.lifetime, GRACE);
    assert_int_equal(c.expires, NOW + GRACE);
    assert_int_equal(relay_cred_issue(&s, "alice", NOW, -5, GRACE, &c), 0);
    assert_int_equal(c.lifetime, GRACE);
    assert_int_equal(relay_cred_issue(&s, "alice", NOW, 60, 0, &c), -EINVAL);
    /* user names that cannot be one */
    assert_int_equal(relay_cred_issue(&s, "a b", NOW, 60, GRACE, &c), -EINVAL);
    assert_int_equal(relay_cred_issue(&s, "a\nb", NOW, 60, GRACE, &c), -EINVAL);
    assert_int_equal(relay_cred_issue(&s, "caf\xc3\xa9", NOW, 60, GRACE, &c), -EINVAL);
    char longname[RELAY_CRED_USER_MAX + 2];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(relay_cred_issue(&s, longname, NOW, 60, GRACE, &c), -EINVAL);
    longname[RELAY_CRED_USER_MAX] = '\0';
    assert_int_equal(relay_cred_issue(&s, longname, NOW, 60, GRACE, &c), 0);
    struct relay_secrets none;
    memset(&none, 0, sizeof(none));
    assert_int_equal(relay_cred_issue(&none, "alice", NOW, 60, GRACE, &c), -ENOENT);
}

static void test_parse_username(void **state)
{
    (void)state;
    int64_t e = 0;
    struct strview u;
    assert_int_equal(relay_cred_parse_username(SV("1700000000:alice"), &e, &u), 0);
    assert_int_equal(e, 1700000000);
    assert_true(strview_eq(u, "alice"));
    assert_int_equal(relay_cred_parse_username(SV("42"), &e, &u), 0);
    assert_int_equal(e, 42);
    assert_int_equal(u.n, 0);
    assert_int_equal(relay_cred_parse_username(SV("1:a:b"), &e, &u), 0);
    assert_true(strview_eq(u, "a:b"));
    const char *bad[] = {"",          "alice",    "alice:1700000000",      ":alice",
                         "17x:alice", "-1:alice", "1234567890123456789:a", " 1:a"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(relay_cred_parse_username(SV(bad[i]), &e, &u), -EINVAL);
    struct relay_secrets s = one_secret(SECRET1, NOW);
    assert_int_equal(relay_cred_verify(&s, SV("alice"), SV("x"), NOW, GRACE), RELAY_CRED_MALFORMED);
}

static int count_tries(const char *password, size_t len, void *arg)
{
    (void)password;
    (void)len;
    (*(int *)arg)++;
    return -1;
}

struct want {
    const char *pw;
    int tries;
};

static int match_try(const char *password, size_t len, void *arg)
{
    struct want *w = arg;
    w->tries++;
    return strlen(w->pw) == len && memcmp(w->pw, password, len) == 0 ? 0 : -1;
}

static void test_usable_and_check_order(void **state)
{
    (void)state;
    struct relay_secrets s;
    memset(&s, 0, sizeof(s));
    s.n = 3;
    for (int i = 0; i < 3; i++) {
        s.v[i].added = NOW + i * 100;
        s.v[i].len =
            (size_t)snprintf(s.v[i].value, sizeof(s.v[i].value), "secret-number-%d-xxxx", i);
    }
    /* v[0] was superseded at NOW+100, v[1] at NOW+200; v[2] is current */
    assert_true(relay_secrets_usable(&s, 2, NOW + 1000000, GRACE));
    assert_true(relay_secrets_usable(&s, 1, NOW + 200 + GRACE, GRACE));
    assert_false(relay_secrets_usable(&s, 1, NOW + 201 + GRACE, GRACE));
    assert_true(relay_secrets_usable(&s, 0, NOW + 100 + GRACE, GRACE));
    assert_false(relay_secrets_usable(&s, 0, NOW + 101 + GRACE, GRACE));
    assert_false(relay_secrets_usable(&s, 3, NOW, GRACE));
    assert_string_equal(relay_secrets_current(&s)->value, "secret-number-2-xxxx");

    int tries = 0;
    assert_int_equal(relay_cred_check(&s, SV("1800000000:a"), NOW + 150 + GRACE, GRACE, count_tries,
                                      &tries, NULL),
                     RELAY_CRED_INVALID);
    assert_int_equal(tries, 2); /* v[0] past its grace is not tried */

    /* a credential from the middle secret names it */
    struct relay_secrets mid = one_secret(s.v[1].value, 0);
    struct relay_cred c;
    size_t idx = 99;
    assert_int_equal(relay_cred_issue(&mid, "a", NOW, 600, GRACE, &c), 0);
    assert_int_equal(relay_cred_verify(&s, SV(c.username), SV(c.password), NOW + 300, GRACE),
                     RELAY_CRED_OK);
    /* newest first: the current secret, then the one that matches */
    struct want w = {c.password, 0};
    assert_int_equal(relay_cred_check(&s, SV(c.username), NOW + 300, GRACE, match_try, &w, &idx),
                     RELAY_CRED_OK);
    assert_int_equal(idx, 1);
    assert_int_equal(w.tries, 2);
}

static void test_file_create_mode(void **state)
{
    struct dir *d = *state;
    struct relay_secrets s, again;
    struct stat st;
    bool created = false;
    char err[256];

    assert_int_equal(relay_secrets_load(d->file, &s, NULL, err, sizeof(err)), -ENOENT);
    mode_t old = umask(0);
    int rc = relay_secrets_ensure(d->file, NOW, &s, &created, err, sizeof(err));
    umask(old);
    assert_int_equal(rc, 0);
    assert_true(created);
    assert_int_equal(stat(d->file, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.v[0].added, NOW);
    assert_true(s.v[0].len >= RELAY_SECRET_MIN_LEN);

    /* again: the same secret, nothing created */
    assert_int_equal(relay_secrets_ensure(d->file, NOW + 5, &again, &created, err, sizeof(err)), 0);
    assert_false(created);
    assert_string_equal(again.v[0].value, s.v[0].value);

    /* readable by others: refused (and its stamp still recorded) */
    struct relay_secrets_stamp stamp, zero;
    memset(&stamp, 0, sizeof(stamp));
    memset(&zero, 0, sizeof(zero));
    assert_int_equal(chmod(d->file, 0644), 0);
    assert_int_equal(relay_secrets_load(d->file, &again, &stamp, err, sizeof(err)), -EPERM);
    assert_non_null(strstr(err, "chmod 600"));
    assert_false(relay_secrets_changed(d->file, &stamp));
    assert_int_equal(chmod(d->file, 0600), 0);
    assert_true(relay_secrets_changed(d->file, &stamp)); /* fixing the mode is a change */
    /* a missing file is a change, unless known to be missing */
    assert_int_equal(unlink(d->file), 0);
    assert_true(relay_secrets_changed(d->file, &stamp));
    assert_false(relay_secrets_changed(d->file, &zero));
}

static void write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static void test_file_refusals(void **state)
{
    struct dir *d = *state;
    struct relay_secrets s;
    char err[256];

    write_file(d->file, "# only a comment\n\n");
    assert_int_equal(relay_secrets_load(d->file, &s, NULL, err, sizeof(err)), -EINVAL);
    write_file(d->file, "1700000000\n");
    assert_int_equal(relay_secrets_load(d->file, &s, NULL, err, sizeof(err)), -EINVAL);
    write_file(d->file, "1700000000 short\n");
    assert_int_equal(relay_secrets_load(d->file, &s, NULL, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, ":1:"));
    write_file(d->file, "x1700000000 abcdefghijklmnopqrstuvwxyz\n");
    assert_int_equal(relay_secrets_load(d->file, &s, NULL, err, sizeof(err)), -EINVAL);
    write_file(d->file, "1700000000 abcdefghij klmnopqrstuvwxyz\n");
    assert_int_equal(relay_secrets_load(d->file, &s, NULL, err, sizeof(err)), -EINVAL);

    /* good lines in any order, comments and CRLF: sorted oldest first */
    write_file(d->file,
               "# c\r\n1700000200 bbbbbbbbbbbbbbbbbbbb\r\n1700000100 aaaaaaaaaaaaaaaaaaaa\n");
    assert_int_equal(relay_secrets_load(d->file, &s, NULL, err, sizeof(err)), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.v[0].value, "aaaaaaaaaaaaaaaaaaaa");
    assert_string_equal(relay_secrets_current(&s)->value, "bbbbbbbbbbbbbbbbbbbb");

    /* too many */
    char big[4096] = "";
    for (int i = 0; i <= RELAY_SECRETS_MAX; i++) {
        char line[64];
        snprintf(line, sizeof(line), "%d cccccccccccccccccccc%02d\n", 1700000000 + i, i);
        strcat(big, line);
    }
    write_file(d->file, big);
    assert_int_equal(relay_secrets_load(d->file, &s, NULL, err, sizeof(err)), -E2BIG);
}

static void test_rotation(void **state)
{
    struct dir *d = *state;
    struct relay_secrets s, r1, r2;
    struct relay_secrets_stamp stamp;
    struct relay_cred old_cred;
    size_t retired = 99;
    char err[256];
    struct stat st;

    assert_int_equal(relay_secrets_ensure(d->file, NOW, &s, NULL, err, sizeof(err)), 0);
    assert_int_equal(relay_secrets_load(d->file, &s, &stamp, err, sizeof(err)), 0);
    assert_false(relay_secrets_changed(d->file, &stamp));
    assert_int_equal(relay_cred_issue(&s, "alice", NOW + 10, GRACE, GRACE, &old_cred), 0);

    /* rotate at NOW+100: the old secret stays, the new one issues */
    assert_int_equal(
        relay_secrets_rotate(d->file, NOW + 100, GRACE, &r1, &retired, err, sizeof(err)), 0);
    assert_int_equal(retired, 0);
    assert_int_equal(r1.n, 2);
    assert_string_equal(r1.v[0].value, s.v[0].value);
    assert_string_not_equal(relay_secrets_current(&r1)->value, s.v[0].value);
    assert_int_equal(stat(d->file, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_true(relay_secrets_changed(d->file, &stamp));

    /* what the file says is what rotate returned */
    struct relay_secrets loaded;
    assert_int_equal(relay_secrets_load(d->file, &loaded, NULL, err, sizeof(err)), 0);
    assert_int_equal(loaded.n, 2);
    assert_string_equal(loaded.v[1].value, r1.v[1].value);

    /* the old credential keeps verifying during the grace period, until it
     * expires (it was issued for the full max_lifetime at NOW+10) */
    assert_int_equal(
        relay_cred_verify(&r1, SV(old_cred.username), SV(old_cred.password), NOW + 1000, GRACE),
        RELAY_CRED_OK);
    assert_int_equal(relay_cred_verify(&r1, SV(old_cred.username), SV(old_cred.password),
                                       NOW + 10 + GRACE, GRACE),
                     RELAY_CRED_OK);
    /* a new credential comes from the new secret, and the old secret alone
     * does not verify it */
    struct relay_cred fresh;
    assert_int_equal(relay_cred_issue(&r1, "alice", NOW + 200, 600, GRACE, &fresh), 0);
    assert_int_equal(
        relay_cred_verify(&r1, SV(fresh.username), SV(fresh.password), NOW + 200, GRACE),
        RELAY_CRED_OK);
    assert_int_equal(
        relay_cred_verify(&s, SV(fresh.username), SV(fresh.password), NOW + 200, GRACE),
        RELAY_CRED_INVALID);

    /* past the grace, the old secret no longer verifies anything... */
    struct relay_cred late;
    struct relay_secrets only_old = one_secret(s.v[0].value, NOW);
    assert_int_equal(relay_cred_issue(&only_old, "alice", NOW + 100 + GRACE, 600, GRACE, &late), 0);
    assert_int_equal(
        relay_cred_verify(&r1, SV(late.username), SV(late.password), NOW + 101 + GRACE, GRACE),
        RELAY_CRED_INVALID);
    /* ...and the next rotation drops it from the file */
    assert_int_equal(
        relay_secrets_rotate(d->file, NOW + 101 + GRACE, GRACE, &r2, &retired, err, sizeof(err)),
        0);
    assert_int_equal(retired, 1);
    assert_int_equal(r2.n, 2);
    assert_string_equal(r2.v[0].value, r1.v[1].value);
}

/* Root writes the file in a directory server.user owns: a file the user
 * left at the temporary name (a hard link to one outside) is replaced,
 * never written through. */
static void test_file_tmp_name_taken(void **state)
{
    struct dir *d = *state;
    struct relay_secrets s;
    char err[256], outside[160], tmp[200];
    snprintf(outside, sizeof(outside), "%s/outside", d->path);
    int fd = open(outside, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "precious\n", 9), 9);
    close(fd);
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", d->file, (long)getpid());
    assert_int_equal(link(outside, tmp), 0);
    assert_int_equal(relay_secrets_ensure(d->file, NOW, &s, NULL, err, sizeof(err)), 0);
    struct stat st;
    assert_int_equal(stat(outside, &st), 0);
    assert_int_equal(st.st_size, 9);
    assert_int_equal(st.st_mode & 0777, 0644);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_passwords),
        cmocka_unit_test(test_issue_verify),
        cmocka_unit_test(test_lifetime_cap),
        cmocka_unit_test(test_parse_username),
        cmocka_unit_test(test_usable_and_check_order),
        cmocka_unit_test_setup_teardown(test_file_create_mode, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(test_file_refusals, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(test_rotation, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(test_file_tmp_name_taken, dir_setup, dir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
