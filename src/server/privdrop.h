/*
 * privdrop — server.user: parleyd started as root binds its ports, gives
 * the state directory to the configured user and becomes that user for
 * good; parleyctl run as root becomes it before touching the state
 * directory, so that neither leaves files the other cannot read.
 *
 * The three steps are separate because parleyd binds its listeners
 * between the first and the last: privdrop_prepare (before anything is
 * created: an unknown user refuses the start), privdrop_own_state,
 * privdrop_apply.
 */
#ifndef PARLEY_SERVER_PRIVDROP_H
#define PARLEY_SERVER_PRIVDROP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct privdrop_target {
    bool change;    /* root becomes uid/gid (privdrop_apply) */
    bool drop_caps; /* already the user: only capabilities to give up */
    uid_t uid;
    gid_t gid;
    char name[64];
};

/* Resolves server.user (user; "" or NULL: nothing to do, *t says so).
 * Returns 0, -ENOENT when there is no such user, -EPERM when the process
 * is neither root nor that user; err names server.user and the fault. */
int privdrop_prepare(const char *user, struct privdrop_target *t, char *err, size_t errlen);

/* Gives state_dir and everything under it (same file system, no link
 * followed, walked through directory descriptors so that a directory
 * swapped for a link meanwhile leads nowhere) to t's user: files 0600 (at
 * most), directories 0700. Refuses (-EINVAL) a system directory such as /
 * or /etc, and a state directory that holds config_path, or a config_path
 * that the user could change otherwise (its owner, or writing to it or its
 * directory through the group or others): the user could then rewrite the
 * configuration root reads (NULL: not checked); stops
 * (-EMLINK) at a file of someone else's with more than one name (a hard
 * link to a file outside). Does nothing unless t->change. */
int privdrop_own_state(const struct privdrop_target *t, const char *state_dir,
                       const char *config_path, char *err, size_t errlen);

/* Becomes t's user and primary group for good (no supplementary groups,
 * real, effective and saved ids), then checks that root cannot be
 * regained and that no capability is left (effective, permitted,
 * inheritable, ambient). With t->drop_caps only the capabilities go.
 * Returns 0, or a negative errno with err filled: the caller must stop. */
int privdrop_apply(const struct privdrop_target *t, char *err, size_t errlen);

/* Checks that the process holds no capability at all (capget) and cannot
 * set its user id to 0. Returns 0 or -EPERM. */
int privdrop_verify(void);

#endif
