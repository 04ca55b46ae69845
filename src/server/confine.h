/*
 * confine — server.confine: what parleyd may do once it has started.
 *
 * Landlock limits the files the process may touch to the paths it is
 * given (read-write, or read-only); a seccomp filter makes execve and
 * execveat fail with EPERM, so that whatever takes over the process
 * cannot run a program. ptrace stays allowed: LeakSanitizer stops the
 * world with it at exit. Both stay for the life of the process and are
 * inherited by the threads it starts afterwards: apply it before any
 * thread (Landlock confines only the calling thread and those it makes
 * later; the seccomp filter is synchronised to every thread).
 */
#ifndef PARLEY_SERVER_CONFINE_H
#define PARLEY_SERVER_CONFINE_H

#include <stdbool.h>
#include <stddef.h>

struct confine_report {
    int landlock_abi;       /* the kernel's Landlock ABI used; 0: none (unsupported) */
    bool seccomp;           /* the filter is in place */
    char landlock_why[160]; /* when landlock_abi is 0: why */
};

/* Applies both. rw and ro are NULL-terminated lists of paths (directories
 * or files); a path that does not exist is left out. Directories in rw
 * may be read, written, created in and removed from; ro only read. Sets
 * no_new_privs. Landlock that the kernel does not offer is not an error
 * (report->landlock_abi is 0 and landlock_why says why); any other
 * failure returns a negative errno with err filled, and the caller stops. */
int confine_apply(const char *const *rw, const char *const *ro, struct confine_report *report,
                  char *err, size_t errlen);

#endif
