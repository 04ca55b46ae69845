/*
 * notify: with $NOTIFY_SOCKET naming a datagram socket (a path or an
 * abstract '@' name) the state arrives there as one datagram; without it
 * nothing is sent and the call succeeds; a name that is neither absolute
 * nor abstract, too long, or the vsock form is refused, and a socket
 * nobody listens on is an error, not a hang, and so is one whose queue
 * is full.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "server/notify.h"

static char dir[] = "/tmp/parley-notify-XXXXXX";

/* A datagram socket bound to name ('@' for abstract), non-blocking reads. */
static int bind_receiver(const char *name)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(name);
    assert_true(n < sizeof(sa.sun_path));
    memcpy(sa.sun_path, name, n);
    if (name[0] == '@')
        sa.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    assert_true(fd >= 0);
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (name[0] == '/'));
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, len), 0);
    return fd;
}

/* The next datagram, NUL-terminated; fails when there is none. */
static void receive(int fd, char *buf, size_t len)
{
    ssize_t r = recv(fd, buf, len - 1, 0);
    if (r < 0)
        fail_msg("no datagram: %s", strerror(errno));
    buf[r] = '\0';
}

static void assert_nothing_waiting(int fd)
{
    char buf[64];
    assert_int_equal(recv(fd, buf, sizeof(buf), 0), -1);
    assert_int_equal(errno, EAGAIN);
}

static void test_path_socket(void **state)
{
    (void)state;
    char path[128], buf[512];
    snprintf(path, sizeof(path), "%s/notify", dir);
    int fd = bind_receiver(path);
    setenv("NOTIFY_SOCKET", path, 1);

    assert_int_equal(notify_send("READY=1\nSTATUS=serving"), 0);
    receive(fd, buf, sizeof(buf));
    assert_string_equal(buf, "READY=1\nSTATUS=serving");
    assert_int_equal(notify_send("STOPPING=1"), 0);
    receive(fd, buf, sizeof(buf));
    assert_string_equal(buf, "STOPPING=1");
    assert_nothing_waiting(fd);

    close(fd);
    unlink(path);
    unsetenv("NOTIFY_SOCKET");
}

static void test_abstract_socket(void **state)
{
    (void)state;
    char name[64], buf[512];
    snprintf(name, sizeof(name), "@parley-notify-test-%ld", (long)getpid());
    int fd = bind_receiver(name);
    setenv("NOTIFY_SOCKET", name, 1);

    assert_int_equal(notify_send("READY=1"), 0);
    receive(fd, buf, sizeof(buf));
    assert_string_equal(buf, "READY=1");

    close(fd);
    unsetenv("NOTIFY_SOCKET");
}

/* RELOADING=1 carries the monotonic clock at the time of the call, which
 * systemd compares with its own reading when the reload was asked for. */
static void test_reloading(void **state)
{
    (void)state;
    char path[128], buf[512];
    snprintf(path, sizeof(path), "%s/reload", dir);
    int fd = bind_receiver(path);
    setenv("NOTIFY_SOCKET", path, 1);

    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    assert_int_equal(notify_reloading("reloading"), 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    receive(fd, buf, sizeof(buf));

    unsigned long long usec = 0;
    char status[64] = "";
    assert_int_equal(
        sscanf(buf, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=%63[^\n]", &usec, status), 2);
    assert_string_equal(status, "reloading");
    unsigned long long lo = (unsigned long long)a.tv_sec * 1000000ULL + a.tv_nsec / 1000;
    unsigned long long hi = (unsigned long long)b.tv_sec * 1000000ULL + b.tv_nsec / 1000;
    assert_true(usec >= lo && usec <= hi);

    /* without a status there is no STATUS= line */
    assert_int_equal(notify_reloading(NULL), 0);
    receive(fd, buf, sizeof(buf));
    assert_null(strstr(buf, "STATUS="));
    assert_non_null(strstr(buf, "MONOTONIC_USEC="));

    char small[16];
    assert_int_equal(notify_format_reloading(small, sizeof(small), NULL), -ENOSPC);

    close(fd);
    unlink(path);
    unsetenv("NOTIFY_SOCKET");
}

/* Unset or empty: nothing to tell, and not an error (parleyd by hand). */
static void test_unset_is_noop(void **state)
{
    (void)state;
    unsetenv("NOTIFY_SOCKET");
    assert_int_equal(notify_send("READY=1"), 0);
    assert_int_equal(notify_reloading(NULL), 0);
    setenv("NOTIFY_SOCKET", "", 1);
    assert_int_equal(notify_send("READY=1"), 0);
    unsetenv("NOTIFY_SOCKET");
}

/* Negative: a relative name (which would resolve against whatever the
 * working directory is), one too long for sun_path, the vsock form, and a
 * socket nobody listens on are all refused; nothing is sent anywhere. */
static void test_bad_names(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof(path), "%s/relative", dir);
    int fd = bind_receiver(path);
    char cwd[256];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(dir), 0);
    setenv("NOTIFY_SOCKET", "relative", 1);
    assert_int_equal(notify_send("READY=1"), -EINVAL);
    assert_int_equal(chdir(cwd), 0);
    assert_nothing_waiting(fd);
    close(fd);
    unlink(path);

    char longname[200];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[0] = '/';
    longname[sizeof(longname) - 1] = '\0';
    setenv("NOTIFY_SOCKET", longname, 1);
    assert_int_equal(notify_send("READY=1"), -EINVAL);

    setenv("NOTIFY_SOCKET", "vsock:2:1234", 1);
    assert_int_equal(notify_send("READY=1"), -EAFNOSUPPORT);

    snprintf(path, sizeof(path), "%s/nobody", dir);
    setenv("NOTIFY_SOCKET", path, 1);
    int rc = notify_send("READY=1");
    assert_true(rc == -ENOENT || rc == -ECONNREFUSED);
    unsetenv("NOTIFY_SOCKET");
}

/* A receiver that never reads: once its queue is full the send fails with
 * -EAGAIN at once instead of blocking the caller (the event loop). The
 * alarm turns a blocking send into a failure rather than a hung test. */
static void test_full_queue_does_not_block(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof(path), "%s/full", dir);
    int fd = bind_receiver(path);
    setenv("NOTIFY_SOCKET", path, 1);
    alarm(10);
    int rc = 0, sent = 0;
    /* the queue holds net.unix.max_dgram_qlen datagrams (512 by default)
     * or fewer when the receive buffer fills first */
    while (sent < 100000 && (rc = notify_send("RELOADING=1")) == 0)
        sent++;
    alarm(0);
    assert_int_equal(rc, -EAGAIN);
    assert_true(sent > 0);
    close(fd);
    unlink(path);
    unsetenv("NOTIFY_SOCKET");
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_socket), cmocka_unit_test(test_abstract_socket),
        cmocka_unit_test(test_reloading),   cmocka_unit_test(test_unset_is_noop),
        cmocka_unit_test(test_bad_names),   cmocka_unit_test(test_full_queue_does_not_block),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    rmdir(dir);
    return rc;
}
