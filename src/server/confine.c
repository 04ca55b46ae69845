/*
 * Landlock and seccomp through their raw system calls (no library):
 * Debian's headers may be older than the kernel, so the rights of later
 * Landlock ABIs are defined here and asked of the kernel by version.
 */
#include "server/confine.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* rights added after ABI 1 (linux/landlock.h of 6.1 stops at REFER) */
#define CONFINE_FS_REFER     (1ULL << 13) /* ABI 2 */
#define CONFINE_FS_TRUNCATE  (1ULL << 14) /* ABI 3 */
#define CONFINE_FS_IOCTL_DEV (1ULL << 15) /* ABI 5 */
#define CONFINE_FS_ABI1      ((1ULL << 13) - 1)

#define CONFINE_FS_READ (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)
/* what a file (rather than a directory) may carry in a rule */
#define CONFINE_FS_FILE                                                                            \
    (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE |   \
     CONFINE_FS_TRUNCATE | CONFINE_FS_IOCTL_DEV)
/* read-write: everything but running programs and making devices, fifos
 * and links */
#define CONFINE_FS_RW                                                                              \
    (CONFINE_FS_READ | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_REMOVE_DIR |             \
     LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG |  \
     LANDLOCK_ACCESS_FS_MAKE_SOCK | CONFINE_FS_REFER | CONFINE_FS_TRUNCATE)

#if defined(__x86_64__)
#define CONFINE_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define CONFINE_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#error "confine: add this architecture's AUDIT_ARCH"
#endif

static uint64_t confine_handled(int abi)
{
    uint64_t h = CONFINE_FS_ABI1;
    if (abi >= 2)
        h |= CONFINE_FS_REFER;
    if (abi >= 3)
        h |= CONFINE_FS_TRUNCATE;
    if (abi >= 5)
        h |= CONFINE_FS_IOCTL_DEV;
    return h;
}

static int confine_add(int ruleset, const char *path, uint64_t access, uint64_t handled, char *err,
                       size_t errlen)
{
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        goto out;
    }
    struct landlock_path_beneath_attr pb = {
        .allowed_access = access & handled & (S_ISDIR(st.st_mode) ? ~0ULL : CONFINE_FS_FILE),
        .parent_fd = fd,
    };
    if (syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &pb, 0) != 0) {
        rc = -errno;
        snprintf(err, errlen, "landlock: cannot allow %s: %s", path, strerror(-rc));
    }
out:
    close(fd);
    return rc;
}

static int confine_landlock(const char *const *rw, const char *const *ro,
                            struct confine_report *report, char *err, size_t errlen)
{
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    if (abi < 1) {
        int e = errno;
        snprintf(report->landlock_why, sizeof(report->landlock_why), "%s",
                 e == ENOSYS       ? "the kernel has no Landlock"
                 : e == EOPNOTSUPP ? "Landlock is disabled (boot parameter lsm=)"
                                   : strerror(e));
        return 0;
    }
    uint64_t handled = confine_handled((int)abi);
    struct landlock_ruleset_attr attr = {.handled_access_fs = handled};
    int ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);
    if (ruleset < 0) {
        int e = errno;
        snprintf(err, errlen, "landlock: cannot create a ruleset: %s", strerror(e));
        return -e;
    }
    int rc = 0;
    for (const char *const *p = rw; p && *p && rc == 0; p++)
        rc = confine_add(ruleset, *p, CONFINE_FS_RW | CONFINE_FS_FILE, handled, err, errlen);
    for (const char *const *p = ro; p && *p && rc == 0; p++)
        rc = confine_add(ruleset, *p, CONFINE_FS_READ, handled, err, errlen);
    if (rc == 0 && syscall(SYS_landlock_restrict_self, ruleset, 0) != 0) {
        rc = -errno;
        snprintf(err, errlen, "landlock: cannot restrict the process: %s", strerror(-rc));
    }
    close(ruleset);
    if (rc == 0)
        report->landlock_abi = (int)abi;
    else if (!*err)
        snprintf(err, errlen, "landlock: %s", strerror(-rc));
    return rc;
}

/* execve and execveat fail with EPERM; a system call of another ABI (x32,
 * i386 through int 0x80) fails as a whole. Everything else is allowed:
 * this filter takes away running programs, nothing a library may need. */
static int confine_seccomp(char *err, size_t errlen)
{
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, CONFINE_AUDIT_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
#if defined(__x86_64__)
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u /* __X32_SYSCALL_BIT */, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
#endif
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_execve, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_execveat, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {(unsigned short)(sizeof(filter) / sizeof(filter[0])), filter};
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog) != 0) {
        int e = errno;
        snprintf(err, errlen, "seccomp: cannot install the filter: %s", strerror(e));
        return -e;
    }
    return 0;
}

int confine_apply(const char *const *rw, const char *const *ro, struct confine_report *report,
                  char *err, size_t errlen)
{
    memset(report, 0, sizeof(*report));
    if (err && errlen)
        err[0] = '\0';
    /* both need it without CAP_SYS_ADMIN, and nothing may gain privileges
     * through an execve afterwards anyway */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        int e = errno;
        snprintf(err, errlen, "no_new_privs: %s", strerror(e));
        return -e;
    }
    int rc = confine_landlock(rw, ro, report, err, errlen);
    if (rc)
        return rc;
    rc = confine_seccomp(err, errlen);
    if (rc)
        return rc;
    report->seccomp = true;
    return 0;
}
