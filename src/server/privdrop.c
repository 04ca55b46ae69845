/*
 * server.user: from root to the configured user, once and for good.
 */
#include "server/privdrop.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

int privdrop_prepare(const char *user, struct privdrop_target *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof(*t));
    if (!user || !*user)
        return 0;
    if (strlen(user) >= sizeof(t->name)) {
        snprintf(err, errlen, "server.user \"%s\": name too long", user);
        return -EINVAL;
    }
    struct passwd pw, *res = NULL;
    char buf[4096];
    int e = getpwnam_r(user, &pw, buf, sizeof(buf), &res);
    if (!res) {
        snprintf(err, errlen, "server.user \"%s\": no such user%s%s", user, e ? ": " : "",
                 e ? strerror(e) : " (create it, or set server.user = \"\")");
        return -ENOENT;
    }
    snprintf(t->name, sizeof(t->name), "%s", user);
    t->uid = pw.pw_uid;
    t->gid = pw.pw_gid;
    if (geteuid() == 0) {
        t->change = t->uid != 0; /* root named explicitly: nothing to give up */
        return 0;
    }
    uid_t r, ef, s;
    if (getresuid(&r, &ef, &s) != 0 || r != t->uid || ef != t->uid || s != t->uid) {
        snprintf(err, errlen,
                 "server.user is \"%s\" (uid %ld) but parleyd runs as uid %ld, not root: start "
                 "it as root or as %s, or set server.user = \"\"",
                 user, (long)t->uid, (long)geteuid(), user);
        return -EPERM;
    }
    /* started as the user (systemd's User= with AmbientCapabilities=
     * CAP_NET_BIND_SERVICE): the capabilities go once the ports are bound */
    t->drop_caps = t->uid != 0;
    return 0;
}

/* A mistake in server.state_dir must not give the system away. */
static bool privdrop_system_dir(const char *dir)
{
    static const char *const refused[] = {
        "/",        "/etc",  "/usr", "/var",     "/var/lib", "/home",  "/root",      "/tmp",
        "/var/tmp", "/opt",  "/srv", "/run",     "/bin",     "/sbin",  "/lib",       "/boot",
        "/dev",     "/proc", "/sys", "/usr/lib", "/mnt",     "/media", "/usr/local", NULL};
    for (const char *const *r = refused; *r; r++)
        if (strcmp(dir, *r) == 0)
            return true;
    return false;
}

/* nftw has no argument for its callback */
static const struct privdrop_target *own_target;
static int own_errno;
static char own_failed[PATH_MAX];

static int privdrop_own_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)ftw;
    int fd = -1, rc = 0;
    if (type == FTW_SL || type == FTW_SLN)
        return 0; /* a link is not followed, and its own owner matters to nobody */
    if (S_ISREG(sb->st_mode) || S_ISDIR(sb->st_mode)) {
        /* opened without following a link put there meanwhile */
        fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC |
                            (S_ISDIR(sb->st_mode) ? O_DIRECTORY : 0));
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0 || (st.st_mode & S_IFMT) != (sb->st_mode & S_IFMT)) {
            rc = fd < 0 ? errno : EAGAIN;
            goto out;
        }
        mode_t want = S_ISDIR(st.st_mode) ? 0700 : (st.st_mode & 0600);
        if ((st.st_uid != own_target->uid || st.st_gid != own_target->gid) &&
            fchown(fd, own_target->uid, own_target->gid) != 0)
            rc = errno;
        else if ((st.st_mode & 07777) != want && fchmod(fd, want) != 0)
            rc = errno;
    } else if (S_ISSOCK(sb->st_mode)) {
        /* a control socket left by an earlier run */
        if (fchownat(AT_FDCWD, path, own_target->uid, own_target->gid, AT_SYMLINK_NOFOLLOW) != 0)
            rc = errno;
    }
out:
    if (fd >= 0)
        close(fd);
    if (rc) {
        own_errno = rc;
        snprintf(own_failed, sizeof(own_failed), "%s", path);
        return 1;
    }
    return 0;
}

int privdrop_own_state(const struct privdrop_target *t, const char *state_dir, char *err,
                       size_t errlen)
{
    if (!t->change)
        return 0;
    char *real = realpath(state_dir, NULL);
    if (!real) {
        int e = errno;
        snprintf(err, errlen, "server.state_dir %s: %s", state_dir, strerror(e));
        return -e;
    }
    int rc = 0;
    if (privdrop_system_dir(real)) {
        snprintf(err, errlen,
                 "server.user: the state directory %s is a system directory; parleyd gives its "
                 "state directory to %s and will not give this one (set server.state_dir)",
                 real, t->name);
        rc = -EINVAL;
        goto out;
    }
    own_target = t;
    own_errno = 0;
    if (nftw(real, privdrop_own_one, 32, FTW_PHYS | FTW_MOUNT) != 0) {
        int e = own_errno ? own_errno : errno;
        snprintf(err, errlen, "server.user: cannot give %s to %s: %s",
                 own_errno ? own_failed : real, t->name, strerror(e));
        rc = -e;
    }
    own_target = NULL;
out:
    free(real);
    return rc;
}

int privdrop_verify(void)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    memset(data, 0, sizeof(data));
    if (syscall(SYS_capget, &hdr, data) != 0)
        return -EPERM;
    for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
        if (data[i].effective || data[i].permitted || data[i].inheritable)
            return -EPERM;
    for (int c = 0; c <= CAP_LAST_CAP; c++)
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, c, 0, 0) == 1)
            return -EPERM;
    /* root cannot come back: with no capability and no id 0 left this
     * fails; if it succeeded, the process is root again and must stop */
    if (geteuid() == 0 || setuid(0) == 0)
        return -EPERM;
    return 0;
}

static int privdrop_caps_clear(void)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    memset(data, 0, sizeof(data));
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    return syscall(SYS_capset, &hdr, data) == 0 ? 0 : -errno;
}

int privdrop_apply(const struct privdrop_target *t, char *err, size_t errlen)
{
    int rc = 0;
    if (!t->change && !t->drop_caps)
        return 0;
    if (t->change) {
        /* while root: no capability may come back through an execve of a
         * file with capabilities either (the bounding set) */
        for (int c = 0; c <= CAP_LAST_CAP; c++)
            prctl(PR_CAPBSET_DROP, c, 0, 0, 0);
        /* glibc applies these to every thread of the process */
        if (setgroups(1, &t->gid) != 0 || setresgid(t->gid, t->gid, t->gid) != 0 ||
            setresuid(t->uid, t->uid, t->uid) != 0) {
            rc = -errno;
            snprintf(err, errlen, "server.user: cannot become %s (uid %ld, gid %ld): %s", t->name,
                     (long)t->uid, (long)t->gid, strerror(-rc));
            return rc;
        }
        /* the process is now undumpable (the id change): no core file
         * with keys, no ptrace by other processes of the user;
         * LeakSanitizer makes it dumpable for its own check at exit */
    }
    rc = privdrop_caps_clear();
    if (rc) {
        snprintf(err, errlen, "server.user: cannot give up capabilities: %s", strerror(-rc));
        return rc;
    }
    uid_t r, e, s;
    gid_t rg, eg, sg;
    bool ids = getresuid(&r, &e, &s) == 0 && getresgid(&rg, &eg, &sg) == 0 && r == t->uid &&
               e == t->uid && s == t->uid;
    /* the group is ours to check only when we chose it (not systemd's Group=) */
    if (ids && t->change)
        ids = rg == t->gid && eg == t->gid && sg == t->gid;
    if (!ids || privdrop_verify() != 0) {
        snprintf(err, errlen,
                 "server.user: after the change to %s the process still holds privileges "
                 "(ids %ld/%ld/%ld): refusing to run",
                 t->name, (long)r, (long)e, (long)s);
        return -EPERM;
    }
    return 0;
}
