/*
 * server.user: from root to the configured user, once and for good.
 */
#include "server/privdrop.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
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

/* Opened relative to the directory dfd, never through a link: neither
 * name itself (O_NOFOLLOW) nor a directory above it, because the walk
 * holds each directory open and names only its entries. The user owns
 * the directory already (after the first start), so whatever is found is
 * checked on the opened file, not on its name. */
struct own_walk {
    const struct privdrop_target *t;
    dev_t dev;
    char failed[PATH_MAX];
};

static int privdrop_own_fd(struct own_walk *w, int fd, const struct stat *st)
{
    /* a regular file with another name may be one outside (a hard link
     * to /etc/shadow made by the user): root must not give it away */
    if (S_ISREG(st->st_mode) && st->st_nlink > 1 &&
        (st->st_uid != w->t->uid || st->st_gid != w->t->gid))
        return EMLINK;
    mode_t want = S_ISDIR(st->st_mode) ? 0700 : (st->st_mode & 0600);
    if ((st->st_uid != w->t->uid || st->st_gid != w->t->gid) &&
        fchown(fd, w->t->uid, w->t->gid) != 0)
        return errno;
    if (!S_ISSOCK(st->st_mode) && (st->st_mode & 07777) != want && fchmod(fd, want) != 0)
        return errno;
    return 0;
}

/* dfd (a directory, opened and checked) and everything under it; path
 * only names it in an error. Takes dfd. */
static int privdrop_own_dir(struct own_walk *w, int dfd, const char *path, int depth)
{
    int rc = 0;
    DIR *d = NULL;
    if (depth > 64) {
        rc = ELOOP;
        goto fail;
    }
    d = fdopendir(dfd);
    if (!d) {
        rc = errno;
        goto fail;
    }
    for (struct dirent *e; rc == 0 && (errno = 0, e = readdir(d)) != NULL;) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char sub[PATH_MAX];
        snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            rc = errno == ENOENT ? 0 : errno; /* removed meanwhile */
            if (rc)
                snprintf(w->failed, sizeof(w->failed), "%s", sub);
            continue;
        }
        /* a link is not followed and its own owner matters to nobody; a
         * device or fifo is not the daemon's; another file system is not
         * the state directory's */
        if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISSOCK(st.st_mode))
            continue;
        if (st.st_dev != w->dev)
            continue;
        /* a socket cannot be opened, only named (O_PATH) */
        int flags = S_ISSOCK(st.st_mode) ? O_PATH : O_RDONLY | O_NONBLOCK;
        int fd = openat(dirfd(d), e->d_name,
                        flags | O_NOFOLLOW | O_CLOEXEC | (S_ISDIR(st.st_mode) ? O_DIRECTORY : 0));
        struct stat fst;
        if (fd < 0 && errno == ENOENT) {
            continue; /* removed meanwhile */
        } else if (fd < 0 || fstat(fd, &fst) != 0 ||
                   (fst.st_mode & S_IFMT) != (st.st_mode & S_IFMT) || fst.st_dev != w->dev) {
            rc = fd < 0 ? errno : EAGAIN;
        } else if (S_ISSOCK(fst.st_mode)) {
            /* a control socket left by an earlier run, through its O_PATH fd */
            if ((fst.st_uid != w->t->uid || fst.st_gid != w->t->gid) &&
                fchownat(fd, "", w->t->uid, w->t->gid, AT_EMPTY_PATH) != 0)
                rc = errno;
        } else {
            rc = privdrop_own_fd(w, fd, &fst);
            if (rc == 0 && S_ISDIR(fst.st_mode)) {
                rc = privdrop_own_dir(w, fd, sub, depth + 1);
                fd = -1;  /* taken */
                continue; /* w->failed is set */
            }
        }
        if (fd >= 0)
            close(fd);
        if (rc)
            snprintf(w->failed, sizeof(w->failed), "%s", sub);
    }
    if (rc == 0 && errno != 0) {
        rc = errno;
        snprintf(w->failed, sizeof(w->failed), "%s", path);
    }
    closedir(d);
    return rc;
fail:
    close(dfd);
    snprintf(w->failed, sizeof(w->failed), "%s", path);
    return rc;
}

/* Whether t's user could change path: its owner, or a writer through the
 * group or others (a directory's sticky bit keeps others' files theirs). */
static bool privdrop_user_writes(const struct privdrop_target *t, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return false;
    bool sticky = S_ISDIR(st.st_mode) && (st.st_mode & S_ISVTX);
    return st.st_uid == t->uid || ((st.st_mode & S_IWGRP) && st.st_gid == t->gid && !sticky) ||
           ((st.st_mode & S_IWOTH) && !sticky);
}

int privdrop_own_state(const struct privdrop_target *t, const char *state_dir,
                       const char *config_path, char *err, size_t errlen)
{
    if (!t->change)
        return 0;
    char *real = realpath(state_dir, NULL);
    char *conf = config_path ? realpath(config_path, NULL) : NULL;
    if (!real) {
        int e = errno;
        snprintf(err, errlen, "server.state_dir %s: %s", state_dir, strerror(e));
        free(conf);
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
    /* The configuration says what root does (which directory it gives
     * away, which user it becomes): the user must not be able to change
     * it, so it may not lie in what is given to the user. */
    size_t n = strlen(real);
    if (conf && strncmp(conf, real, n) == 0 && (conf[n] == '/' || conf[n] == '\0')) {
        snprintf(err, errlen,
                 "server.user: the configuration file %s is in the state directory %s, which "
                 "is given to %s: it could then rewrite what root runs; set server.state_dir "
                 "to a directory of its own (parleyctl init --state-dir)",
                 conf, real, t->name);
        rc = -EINVAL;
        goto out;
    }
    /* nor where the user could write it anyway (parleyctl -c FILE) */
    char *slash = conf ? strrchr(conf, '/') : NULL;
    if (slash) {
        *slash = '\0';
        bool dir_writable = privdrop_user_writes(t, *conf ? conf : "/");
        *slash = '/';
        if (dir_writable || privdrop_user_writes(t, conf)) {
            snprintf(err, errlen,
                     "server.user: the configuration file %s or its directory can be changed by "
                     "%s: it could then rewrite what root runs; keep it root's",
                     conf, t->name);
            rc = -EINVAL;
            goto out;
        }
    }
    int dfd = open(real, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (dfd < 0 || fstat(dfd, &st) != 0) {
        rc = -errno;
        snprintf(err, errlen, "server.user: cannot open %s: %s", real, strerror(-rc));
        if (dfd >= 0)
            close(dfd);
        goto out;
    }
    struct own_walk w = {.t = t, .dev = st.st_dev};
    int e = privdrop_own_fd(&w, dfd, &st);
    if (e == 0)
        e = privdrop_own_dir(&w, dfd, real, 0);
    else {
        close(dfd);
        snprintf(w.failed, sizeof(w.failed), "%s", real);
    }
    if (e) {
        snprintf(err, errlen, "server.user: cannot give %s to %s: %s", w.failed, t->name,
                 e == EMLINK ? "a file with more than one name (a hard link) is not given away"
                             : strerror(e));
        rc = -e;
    }
out:
    free(real);
    free(conf);
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
