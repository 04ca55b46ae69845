/*
 * server/confine and server/privdrop: each check runs in a child process
 * (both change the process for good) that reports by its exit status.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "server/confine.h"
#include "server/privdrop.h"

#define CHILD_SKIP 77

struct dirs {
    char allowed[64];  /* read-write */
    char readonly[64]; /* read-only, holds "file" */
    char outside[64];  /* neither, holds "file" */
};

static void make_file(const char *dir, const char *name)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "x", 1), 1);
    close(fd);
}

static void dirs_make(struct dirs *d)
{
    snprintf(d->allowed, sizeof(d->allowed), "/tmp/parley-confine-rw-XXXXXX");
    snprintf(d->readonly, sizeof(d->readonly), "/tmp/parley-confine-ro-XXXXXX");
    snprintf(d->outside, sizeof(d->outside), "/tmp/parley-confine-no-XXXXXX");
    assert_non_null(mkdtemp(d->allowed));
    assert_non_null(mkdtemp(d->readonly));
    assert_non_null(mkdtemp(d->outside));
    make_file(d->readonly, "file");
    make_file(d->outside, "file");
}

static void dirs_remove(const struct dirs *d)
{
    char p[128];
    const char *const all[] = {d->allowed, d->readonly, d->outside};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s/file", all[i]);
        unlink(p);
        snprintf(p, sizeof(p), "%s/new", all[i]);
        unlink(p);
        rmdir(all[i]);
    }
}

/* Runs fn in a child; returns its exit status (or 100 + signal). */
static int in_child(int (*fn)(const struct dirs *), const struct dirs *d)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        /* exit, not _exit: the sanitizers' checks at exit run confined too */
        exit(fn(d));
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

static int child_confined(const struct dirs *d)
{
    const char *rw[] = {d->allowed, "/dev/null", NULL};
    const char *ro[] = {d->readonly, "/proc", "/usr",         "/lib",
                        "/lib64",    "/etc",  "/nonexistent", NULL};
    struct confine_report rep;
    char err[256];
    if (confine_apply(rw, ro, &rep, err, sizeof(err)) != 0) {
        fprintf(stderr, "confine_apply: %s\n", err);
        return 1;
    }
    if (!rep.seccomp)
        return 2;
    /* seccomp: no program runs, whatever Landlock says */
    char *const argv[] = {"/bin/true", NULL};
    char *const envp[] = {NULL};
    execve("/bin/true", argv, envp);
    if (errno != EPERM)
        return 3;
    if (rep.landlock_abi == 0)
        return CHILD_SKIP; /* the kernel offers no Landlock: nothing more to see */

    char p[128];
    /* allowed: created, written, read, removed */
    snprintf(p, sizeof(p), "%s/new", d->allowed);
    int fd = open(p, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || write(fd, "y", 1) != 1)
        return 4;
    close(fd);
    if (unlink(p) != 0)
        return 5;
    /* read-only: read, not written, nothing created */
    snprintf(p, sizeof(p), "%s/file", d->readonly);
    fd = open(p, O_RDONLY);
    if (fd < 0)
        return 6;
    close(fd);
    if (open(p, O_WRONLY) >= 0 || errno != EACCES)
        return 7;
    snprintf(p, sizeof(p), "%s/new", d->readonly);
    if (open(p, O_WRONLY | O_CREAT, 0600) >= 0 || errno != EACCES)
        return 8;
    /* outside: neither read nor written */
    snprintf(p, sizeof(p), "%s/file", d->outside);
    if (open(p, O_RDONLY) >= 0 || errno != EACCES)
        return 9;
    if (open(p, O_WRONLY) >= 0 || errno != EACCES)
        return 10;
    snprintf(p, sizeof(p), "%s/new", d->outside);
    if (open(p, O_WRONLY | O_CREAT, 0600) >= 0 || errno != EACCES)
        return 11;
    /* a file allowed on its own, not its directory */
    fd = open("/dev/null", O_WRONLY);
    if (fd < 0)
        return 12;
    close(fd);
    if (open("/dev/zero", O_RDONLY) >= 0 || errno != EACCES)
        return 13;
    return 0;
}

static void test_confine_denies_exec_and_files_outside(void **state)
{
    (void)state;
    struct dirs d;
    dirs_make(&d);
    int rc = in_child(child_confined, &d);
    /* the parent is not confined: the child's limits were its own */
    char p[128];
    snprintf(p, sizeof(p), "%s/file", d.outside);
    int fd = open(p, O_RDONLY);
    assert_true(fd >= 0);
    close(fd);
    dirs_remove(&d);
    if (rc == CHILD_SKIP)
        skip();
    assert_int_equal(rc, 0);
}

static void test_privdrop_prepare(void **state)
{
    (void)state;
    struct privdrop_target t;
    char err[256] = "";
    assert_int_equal(privdrop_prepare("", &t, err, sizeof(err)), 0);
    assert_false(t.change);
    assert_false(t.drop_caps);
    assert_int_equal(privdrop_prepare(NULL, &t, err, sizeof(err)), 0);
    assert_false(t.change);

    /* negative: a user that does not exist refuses, naming the key */
    assert_int_equal(privdrop_prepare("parley-no-such-user", &t, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "server.user"));
    assert_non_null(strstr(err, "no such user"));

    /* another user: root changes to it, anyone else is refused */
    int rc = privdrop_prepare("nobody", &t, err, sizeof(err));
    if (geteuid() == 0) {
        assert_int_equal(rc, 0);
        assert_true(t.change);
        assert_int_not_equal(t.uid, 0);
    } else {
        assert_int_equal(rc, -EPERM);
        assert_non_null(strstr(err, "server.user"));
    }
}

static void test_privdrop_refuses_system_dirs(void **state)
{
    (void)state;
    struct privdrop_target t = {.change = true, .uid = 65534, .gid = 65534, .name = "nobody"};
    char err[256] = "";
    assert_int_equal(privdrop_own_state(&t, "/", NULL, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "system directory"));
    assert_int_equal(privdrop_own_state(&t, "/etc/", NULL, err, sizeof(err)), -EINVAL);
    /* nothing to do without a change of user */
    t.change = false;
    assert_int_equal(privdrop_own_state(&t, "/", NULL, err, sizeof(err)), 0);
}

static int child_dropped(const struct dirs *d)
{
    struct privdrop_target t;
    char err[256];
    if (privdrop_prepare("nobody", &t, err, sizeof(err)) != 0 || !t.change)
        return 1;
    if (privdrop_own_state(&t, d->allowed, NULL, err, sizeof(err)) != 0)
        return 2;
    struct stat st;
    if (stat(d->allowed, &st) != 0 || st.st_uid != t.uid || (st.st_mode & 07777) != 0700)
        return 3;
    if (privdrop_apply(&t, err, sizeof(err)) != 0) {
        fprintf(stderr, "privdrop_apply: %s\n", err);
        return 4;
    }
    /* negative: root does not come back */
    if (getuid() != t.uid || geteuid() != t.uid || setuid(0) == 0 || seteuid(0) == 0)
        return 5;
    if (privdrop_verify() != 0)
        return 6;
    /* the state directory is the user's: writable after the drop */
    char p[128];
    snprintf(p, sizeof(p), "%s/new", d->allowed);
    int fd = open(p, O_WRONLY | O_CREAT, 0600);
    if (fd < 0)
        return 7;
    close(fd);
    return 0;
}

static void test_privdrop_apply_for_good(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip(); /* only root changes user */
    struct dirs d;
    dirs_make(&d);
    int rc = in_child(child_dropped, &d);
    dirs_remove(&d);
    assert_int_equal(rc, 0);
    /* while root, privdrop_verify says so */
    assert_int_equal(privdrop_verify(), -EPERM);
}

/* The user owns the state directory after the first start, and root walks
 * it again at every start and every parleyctl command: what the user puts
 * there must not make root give away a file outside. */
static void own_state_outside_is_roots(const struct dirs *d)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/file", d->outside);
    struct stat st;
    assert_int_equal(lstat(p, &st), 0);
    assert_int_equal(st.st_uid, 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    assert_int_equal(lstat(d->outside, &st), 0);
    assert_int_equal(st.st_uid, 0);
}

static void test_privdrop_own_state_hard_link(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    struct dirs d;
    dirs_make(&d);
    struct privdrop_target t = {.change = true, .uid = 65534, .gid = 65534, .name = "nobody"};
    char p[128], q[128], sub[128], err[512] = "";
    snprintf(p, sizeof(p), "%s/file", d.outside);
    assert_int_equal(chmod(p, 0644), 0);
    /* as a /etc/shadow: a second name for it in the state directory */
    snprintf(sub, sizeof(sub), "%s/sub", d.allowed);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(q, sizeof(q), "%s/shadow", sub);
    assert_int_equal(link(p, q), 0);
    assert_int_equal(privdrop_own_state(&t, d.allowed, NULL, err, sizeof(err)), -EMLINK);
    assert_non_null(strstr(err, "hard link"));
    own_state_outside_is_roots(&d);
    /* a symbolic link is not followed either */
    assert_int_equal(unlink(q), 0);
    assert_int_equal(symlink(p, q), 0);
    assert_int_equal(privdrop_own_state(&t, d.allowed, NULL, err, sizeof(err)), 0);
    own_state_outside_is_roots(&d);
    unlink(q);
    rmdir(sub);
    dirs_remove(&d);
}

static void test_privdrop_own_state_keeps_the_config_out(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    struct dirs d;
    dirs_make(&d);
    struct privdrop_target t = {.change = true, .uid = 65534, .gid = 65534, .name = "nobody"};
    char conf[128], err[512] = "";
    make_file(d.allowed, "parley.conf");
    snprintf(conf, sizeof(conf), "%s/parley.conf", d.allowed);
    /* the configuration in the state directory: the user could rewrite it */
    assert_int_equal(privdrop_own_state(&t, d.allowed, conf, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "configuration file"));
    struct stat st;
    assert_int_equal(stat(conf, &st), 0);
    assert_int_equal(st.st_uid, 0);
    assert_int_equal(stat(d.allowed, &st), 0);
    assert_int_equal(st.st_uid, 0);
    /* apart from it, but the user's, or in a directory it may write to */
    snprintf(conf, sizeof(conf), "%s/file", d.readonly);
    assert_int_equal(chown(conf, 65534, 0), 0);
    assert_int_equal(privdrop_own_state(&t, d.allowed, conf, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "can be changed by nobody"));
    assert_int_equal(chown(conf, 0, 0), 0);
    assert_int_equal(chmod(d.readonly, 0770), 0);
    assert_int_equal(chown(d.readonly, 0, 65534), 0);
    assert_int_equal(privdrop_own_state(&t, d.allowed, conf, err, sizeof(err)), -EINVAL);
    assert_int_equal(chmod(d.readonly, 0700), 0);
    assert_int_equal(stat(d.allowed, &st), 0);
    assert_int_equal(st.st_uid, 0);
    /* root's, apart: given */
    assert_int_equal(privdrop_own_state(&t, d.allowed, conf, err, sizeof(err)), 0);
    assert_int_equal(stat(d.allowed, &st), 0);
    assert_int_equal(st.st_uid, 65534);
    snprintf(conf, sizeof(conf), "%s/parley.conf", d.allowed);
    unlink(conf);
    dirs_remove(&d);
}

/* While root walks, the user swaps a directory of the state for a link
 * to one outside, again and again: root must never follow it. */
static void test_privdrop_own_state_swapped_dir(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    struct dirs d;
    dirs_make(&d);
    struct privdrop_target t = {.change = true, .uid = 65534, .gid = 65534, .name = "nobody"};
    char sub[128], real[128], p[128], err[512];
    snprintf(sub, sizeof(sub), "%s/sub", d.allowed);
    snprintf(real, sizeof(real), "%s/real", d.allowed);
    snprintf(p, sizeof(p), "%s/file", d.outside);
    assert_int_equal(chmod(p, 0644), 0);
    assert_int_equal(mkdir(sub, 0700), 0);
    /* the name of a file outside (as /etc/shadow) */
    make_file(sub, "file");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        for (;;) {
            if (rename(sub, real) == 0) {
                if (symlink(d.outside, sub) != 0)
                    _exit(1);
                unlink(sub);
                rename(real, sub);
            }
        }
    }
    bool given = false;
    /* nftw's walk (by path) gave it away within a few hundred */
    for (int i = 0; i < 5000 && !given; i++) {
        privdrop_own_state(&t, d.allowed, NULL, err, sizeof(err));
        struct stat st;
        given =
            lstat(p, &st) != 0 || st.st_uid != 0 || lstat(d.outside, &st) != 0 || st.st_uid != 0;
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    unlink(sub);
    rename(real, sub);
    snprintf(real, sizeof(real), "%s/file", sub);
    unlink(real);
    rmdir(sub);
    dirs_remove(&d);
    assert_false(given);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_confine_denies_exec_and_files_outside),
        cmocka_unit_test(test_privdrop_prepare),
        cmocka_unit_test(test_privdrop_refuses_system_dirs),
        cmocka_unit_test(test_privdrop_apply_for_good),
        cmocka_unit_test(test_privdrop_own_state_hard_link),
        cmocka_unit_test(test_privdrop_own_state_keeps_the_config_out),
        cmocka_unit_test(test_privdrop_own_state_swapped_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
