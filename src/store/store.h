/*
 * store — the state that must survive restarts, in an embedded SQLite file.
 *
 * One connection per process, used by one thread (SQLite is opened without
 * its own mutexes). The daemon and parleyctl may both have the file open:
 * WAL mode lets readers run beside the writer, and a writer that finds the
 * file locked waits up to 5 s before reporting -EBUSY.
 *
 * Durability: synchronous=FULL, so a write that returned 0 is on disk.
 * A write that fails is reported: a negative errno is returned, the SQLite
 * message is kept for store_errmsg() and an event=store.failed line is
 * logged. Nothing is retried or ignored silently.
 *
 * The file is created with mode 0600 whatever the umask (it holds HA1
 * hashes, which are password equivalents for their realm), and an existing
 * file that group or others may access is refused.
 *
 * The schema version lives in PRAGMA user_version. Later work adds tables
 * by appending a migration to store.c; store_open() runs the pending ones
 * in one transaction.
 */
#ifndef PARLEY_STORE_STORE_H
#define PARLEY_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct clock;
struct store;

#define STORE_SCHEMA_VERSION 7
#define STORE_SCHEMA_NEXT    8 /* for tests: a version this build does not know */

/* store_open() flags. */
#define STORE_CREATE   0x1 /* create a new store; refuse (-EEXIST) if the file exists */
#define STORE_READONLY 0x2 /* refuse every write (PRAGMA query_only) */

/* Opens (or with STORE_CREATE creates) the store at path. Without
 * STORE_CREATE the file must exist (-ENOENT otherwise). Returns 0 or a
 * negative errno with a one-line reason in err (when err is not NULL):
 *   -EEXIST   STORE_CREATE and the file exists
 *   -ENOENT   no STORE_CREATE and the file is missing
 *   -EPERM    the existing file is accessible to group or others
 *   -EPROTO   not an initialised Parley store, or a schema newer than this
 *             build (or older, with STORE_READONLY: it cannot migrate)
 *   -EBUSY    another process kept the file locked for 5 s
 *   -EIO and others: from the file system or SQLite (message in err)
 * A store that failed to be created is removed again. */
int store_open(const char *path, int flags, struct store **out, char *err, size_t errlen);
/* Closes the store (NULL is fine). Returns 0, or -EIO (logged) if SQLite
 * could not close cleanly; the handle is freed either way. */
int store_close(struct store *st);

/* --- whole-file views: backups and diagnostics ------------------------ */

/* Copies the store at path into a new file dest (created 0600 with
 * O_EXCL, refused -EEXIST if it exists) through SQLite's online backup,
 * on a connection of its own that only reads: a consistent snapshot of
 * one moment, taken while parleyd writes. Busy or locked steps are
 * retried (for at most about 30 s, then -EBUSY). The copy is synced
 * (fsync) and left in rollback-journal mode, one self-contained file; its
 * schema version is the source's (it is not migrated). Returns 0 or a
 * negative errno with a reason in err; dest is removed on failure. */
int store_snapshot(const char *path, const char *dest, char *err, size_t errlen);

/* What a store file holds, read without changing it (no migration, no
 * WAL mode switch): *version gets PRAGMA user_version and integrity gets
 * the first line of PRAGMA integrity_check ("ok" when sound). Returns 0
 * (whatever integrity_check said), or a negative errno with a reason in
 * err when the file cannot be opened or read. */
int store_check(const char *path, int64_t *version, char *integrity, size_t cap, char *err,
                size_t errlen);

/* The reason for the last failure on this store ("" if none). Valid until
 * the next call on st. */
const char *store_errmsg(const struct store *st);

/* Time source for created/updated stamps (default: clock_system()). */
void store_set_clock(struct store *st, struct clock *clock);

/* --- users --- */

/* A user name: 1..64 characters of [a-z0-9._-], starting with a letter or
 * a digit. Lowercase only: SIP user parts compare case-sensitively but
 * people do not, and guessing which "Alice" was meant (folding on lookup,
 * or not) leads to two accounts or to one that never matches; refusing
 * uppercase up front avoids both. */
#define STORE_USER_NAME_MAX 64
#define STORE_NUMBER_MAX    16 /* "+" and 15 digits (E.164) */
bool store_user_name_valid(const char *name);

#define STORE_DISPLAY_NAME_MAX 128
#define STORE_EMAIL_MAX        254
#define STORE_UID_LEN          32 /* lowercase hex: 128 random bits */

/* HA1 values are lowercase hex (32 for MD5, 64 for SHA-256), or "" when
 * that algorithm's HA1 could not be computed (MD5 under FIPS): at least
 * one of the two must be present. The realm is fixed per deployment, so
 * the HA1 values are valid only for the realm they were computed with. */
struct store_user {
    char name[STORE_USER_NAME_MAX + 1];
    char ha1_md5[33];
    char ha1_sha256[65];
    int64_t created;                   /* Unix seconds */
    int64_t updated;                   /* Unix seconds; changed by store_user_set_ha1() */
    char number[STORE_NUMBER_MAX + 1]; /* E.164 line number, "" for none */
    char outbound[16];                 /* "none", "national" or "all" */
    char display_name[STORE_DISPLAY_NAME_MAX + 1]; /* "" for none */
    char email[STORE_EMAIL_MAX + 1];               /* "" for none */
    char uid[STORE_UID_LEN + 1];                   /* set when the user is added, never changed */
    bool admin; /* may read /metrics with a web ticket (store_user_set_admin) */
};

/* Returns 0, -EINVAL (bad name or HA1), -EEXIST (a user or a group of that
 * name exists: the two share one namespace; the message says which), or a
 * write failure. */
int store_user_add(struct store *st, const char *name, const char *ha1_md5, const char *ha1_sha256);
/* Removes the user with their group memberships and conference allow
 * entries. Returns 0, -EINVAL, -ENOENT, -EBUSY (the user organizes a
 * conference: the message names it), or a write failure. */
int store_user_remove(struct store *st, const char *name);
/* Replaces both HA1 values (a password change). Returns 0, -EINVAL,
 * -ENOENT, or a write failure. */
int store_user_set_ha1(struct store *st, const char *name, const char *ha1_md5,
                       const char *ha1_sha256);
/* Returns 0, -EINVAL (bad name), -ENOENT, or a read failure. */
int store_user_get(struct store *st, const char *name, struct store_user *out);
/* Calls fn for every user in name order. fn must not change the store. A
 * non-zero return from fn stops the walk and is returned; otherwise 0 or
 * a read failure. */
int store_user_list(struct store *st, int (*fn)(const struct store_user *user, void *arg),
                    void *arg);

/* A user's line number (E.164; "" removes it). Numbers are unique.
 * Returns 0, -EINVAL (bad name or number), -ENOENT, -EEXIST (another user
 * has it: the message names them), or a write failure. */
int store_user_set_number(struct store *st, const char *name, const char *number);
/* A user's outbound rights: "none", "national" or "all". Returns 0,
 * -EINVAL, -ENOENT, or a write failure. */
int store_user_set_outbound(struct store *st, const char *name, const char *outbound);
/* The user whose number this is. Returns 0, -ENOENT, or a read failure. */
int store_user_by_number(struct store *st, const char *number, struct store_user *out);

/* A user's display name and e-mail address; NULL leaves a field as it is,
 * "" clears it. Display names: UTF-8, no control characters (< 0x20,
 * 0x7f), at most STORE_DISPLAY_NAME_MAX bytes; e-mail: a plain addr-spec
 * (one '@' with something on both sides, no spaces, no control
 * characters, none of <>,;:"\), at most STORE_EMAIL_MAX bytes. Returns
 * 0, -EINVAL (the message says why), -ENOENT, or a write failure. */
int store_user_set_profile(struct store *st, const char *name, const char *display_name,
                           const char *email);
/* Makes the user an administrator or not (like any change to the account,
 * it ends the web tickets issued before). Returns 0, -EINVAL, -ENOENT, or a
 * write failure. */
int store_user_set_admin(struct store *st, const char *name, bool admin);
/* The checks store_user_set_profile() makes ("" passes both). */
bool store_display_name_valid(const char *display_name);
bool store_email_valid(const char *email);

/* --- the directory: distribution groups ------------------------------- */

/* A group's name follows the user-name rule, and users and groups share
 * one namespace (a group is addressed like a user). Its members are users
 * and other groups; cycles through other groups are allowed, expansion is
 * cycle-safe. A change to a group's display name or members is recorded
 * in the address book's change log (below). */
struct store_group {
    char name[STORE_USER_NAME_MAX + 1];
    char display_name[STORE_DISPLAY_NAME_MAX + 1];
    char uid[STORE_UID_LEN + 1];
    int64_t created; /* Unix seconds */
};

/* display_name may be NULL or "". Returns 0, -EINVAL, -EEXIST (a group or
 * a user of that name exists: the message says which), or a write
 * failure. */
int store_group_add(struct store *st, const char *name, const char *display_name);
/* Removes the group, its memberships (as a group and as a member) and the
 * conference allow entries that name it. Returns 0, -EINVAL, -ENOENT, or a
 * write failure. */
int store_group_remove(struct store *st, const char *name);
/* Returns 0, -EINVAL, -ENOENT, or a write failure. */
int store_group_set_name(struct store *st, const char *name, const char *display_name);
/* Returns 0, -EINVAL, -ENOENT, or a read failure. */
int store_group_get(struct store *st, const char *name, struct store_group *out);
/* Every group in name order; the same callback rules as store_user_list(). */
int store_group_list(struct store *st, int (*fn)(const struct store_group *g, void *arg),
                     void *arg);

enum store_member_kind {
    STORE_MEMBER_USER = 1,
    STORE_MEMBER_GROUP = 2,
};

/* member names a user or a group. Returns 0, -EINVAL (a bad name, or a
 * group made a member of itself), -ENOENT (no such group or member),
 * -EEXIST (a member already), or a write failure. */
int store_group_member_add(struct store *st, const char *group, const char *member);
/* Returns 0, -EINVAL, -ENOENT (no such group, or not a member), or a write
 * failure. */
int store_group_member_remove(struct store *st, const char *group, const char *member);
/* Direct members, users and groups, ordered by name. -ENOENT for an
 * unknown group; otherwise as store_user_list(). */
int store_group_members(struct store *st, const char *group,
                        int (*fn)(enum store_member_kind kind, const char *name, void *arg),
                        void *arg);
/* Every user reachable from group through nested groups, each once, in
 * name order. A group nested more than max_depth levels below `group` is
 * not followed, and then *truncated (which may be NULL) is set true; a
 * group that is also reachable within the bound is followed there, so a
 * cycle never truncates. Returns 0, -EINVAL, -ENOENT (unknown group), a
 * read failure, or fn's non-zero return. */
int store_group_expand(struct store *st, const char *group, unsigned max_depth,
                       int (*fn)(const struct store_user *user, void *arg), void *arg,
                       bool *truncated);

/* --- the directory: conferences (meetings with content) --------------- */

/* A conference's name follows the user-name rule (its own namespace); its
 * organizer is a user, who cannot be removed while organizing it. */
struct store_conference {
    char name[STORE_USER_NAME_MAX + 1];
    char organizer[STORE_USER_NAME_MAX + 1];
    char uid[STORE_UID_LEN + 1]; /* names its content: STATE_DIR/content/<uid> */
    int64_t created;
};

/* Returns 0, -EINVAL, -ENOENT (the organizer is not a user), -EEXIST (the
 * name is taken), or a write failure. */
int store_conference_add(struct store *st, const char *name, const char *organizer);
/* Removes the conference and its allow entries (not its content: the
 * caller removes STATE_DIR/content/<uid>). Returns 0, -EINVAL, -ENOENT,
 * or a write failure. */
int store_conference_remove(struct store *st, const char *name);
int store_conference_get(struct store *st, const char *name, struct store_conference *out);
int store_conference_list(struct store *st, int (*fn)(const struct store_conference *c, void *arg),
                          void *arg);
/* member: a user or a group. Returns 0, -EINVAL, -ENOENT (no such
 * conference or member), -EEXIST (allowed already), or a write failure. */
int store_conference_allow(struct store *st, const char *conference, const char *member);
/* Returns 0, -EINVAL, -ENOENT (no such conference, or not allowed), or a
 * write failure. */
int store_conference_disallow(struct store *st, const char *conference, const char *member);
/* Who is allowed, users and groups, ordered by name; -ENOENT for an
 * unknown conference. */
int store_conference_allowed(struct store *st, const char *conference,
                             int (*fn)(enum store_member_kind kind, const char *name, void *arg),
                             void *arg);
/* May `user` read the conference's content: its organizer, a user allowed
 * directly, or a member (through nested groups, max_depth levels below an
 * allowed group as store_group_expand() bounds them) of an allowed group.
 * *organizer says whether user is the organizer (who may write). Returns
 * 0 with both set, -EINVAL (a bad conference or user name), -ENOENT (no
 * such conference), or a read failure. */
int store_conference_access(struct store *st, const char *conference, const char *user,
                            unsigned max_depth, bool *may_read, bool *organizer);

/* --- the directory: the address book's change log --------------------- */

/* SQLite triggers record every change to what an address book shows,
 * whoever writes (parleyctl or the daemon): a user added, removed, or
 * with a changed display name, e-mail or number; a group added, removed,
 * or with a changed display name or members. A change's seq only grows. */
enum store_card_kind {
    STORE_CARD_USER = 1,
    STORE_CARD_GROUP = 2,
};

struct store_card_change {
    int64_t seq;
    enum store_card_kind kind;
    const char *name;
    const char *uid;
    bool removed;
};

/* The highest change seq (0 when there has been none). */
int store_card_seq(struct store *st, int64_t *out);
/* For each uid changed after `since`, its latest change only, in seq
 * order (strings valid during the callback). Returns 0, -EINVAL (since is
 * negative or above store_card_seq: a token from another store), a read
 * failure, or fn's non-zero return. */
int store_card_changes(struct store *st, int64_t since,
                       int (*fn)(const struct store_card_change *c, void *arg), void *arg);
/* Cheap test of whether the store changed since the last call on this
 * handle: a commit by any other connection (PRAGMA data_version) or a
 * change through this one. The first call says changed. Lets a reader
 * keep caches. Returns 0 and sets *changed, or a read failure. */
int store_data_changed(struct store *st, bool *changed);

/* --- the dial plan: normalisation rules and routes, in order --- */

#define STORE_DIALPLAN_NAME_MAX    64
#define STORE_DIALPLAN_PATTERN_MAX 256
#define STORE_DIALPLAN_TRUNKS_MAX  (8 * 65)

struct store_dialplan_rule {
    char name[STORE_DIALPLAN_NAME_MAX + 1];
    char pattern[STORE_DIALPLAN_PATTERN_MAX + 1];
    char translation[STORE_DIALPLAN_PATTERN_MAX + 1];
};

struct store_route {
    char name[STORE_DIALPLAN_NAME_MAX + 1];
    char pattern[STORE_DIALPLAN_PATTERN_MAX + 1];
    char trunks[STORE_DIALPLAN_TRUNKS_MAX + 1]; /* "gw1,gw2", in the order tried */
};

/* Appends a rule (checked as dialplan_check_rule does). Returns 0, -EINVAL
 * (the message says why), -EEXIST, or a write failure. */
int store_dialplan_add(struct store *st, const struct store_dialplan_rule *rule);
/* Returns 0, -ENOENT, or a write failure. */
int store_dialplan_remove(struct store *st, const char *name);
/* Every rule in order; the same callback rules as store_user_list(). */
int store_dialplan_list(struct store *st,
                        int (*fn)(const struct store_dialplan_rule *rule, void *arg), void *arg);

/* Appends a route; every trunk it names must exist. Returns 0, -EINVAL,
 * -ENOENT (a trunk that does not exist: the message names it), -EEXIST,
 * or a write failure. */
int store_route_add(struct store *st, const struct store_route *route);
int store_route_remove(struct store *st, const char *name);
int store_route_list(struct store *st, int (*fn)(const struct store_route *route, void *arg),
                     void *arg);

/* --- trunks to PSTN gateways --- */

struct store_trunk {
    char name[STORE_DIALPLAN_NAME_MAX + 1];
    char gateway[256];  /* HOST:PORT */
    char transport[4];  /* "tls" or "tcp" */
    char srtp_mode[16]; /* "required", "optional" or "not_supported" */
    char address[64];   /* the address it connects from (TCP), "" for any (TLS) */
    int64_t added;      /* Unix seconds; set by store_trunk_add() */
};

/* Returns 0, -EINVAL (the message says why: a TCP trunk's srtp_mode is
 * not_supported, SDES keys never cross an unencrypted hop), -EEXIST, or
 * a write failure. */
int store_trunk_add(struct store *st, const struct store_trunk *trunk);
/* Returns 0, -ENOENT, -EBUSY (a route names it: the message says which),
 * or a write failure. */
int store_trunk_remove(struct store *st, const char *name);
int store_trunk_get(struct store *st, const char *name, struct store_trunk *out);
int store_trunk_list(struct store *st, int (*fn)(const struct store_trunk *trunk, void *arg),
                     void *arg);

/* --- settings: a small key/value table for state, not configuration --- */

/* Keys: 1..128 characters of [a-z0-9._:-]. Values: any string. */
#define STORE_SETTING_KEY_MAX 128
/* Copies the value into buf (NUL-terminated). Returns 0, -EINVAL (bad
 * key), -ENOENT, -ENOSPC (buf too small; nothing useful in buf), or a read
 * failure. */
int store_setting_get(struct store *st, const char *key, char *buf, size_t cap);
/* Inserts or replaces. Returns 0, -EINVAL, or a write failure. */
int store_setting_set(struct store *st, const char *key, const char *value);
/* Returns 0, -EINVAL, -ENOENT, or a write failure. */
int store_setting_delete(struct store *st, const char *key);

/* --- call log --- */

/* Strings are borrowed: the caller's for store_call_insert(), SQLite's
 * (valid only during the callback) for store_call_list(). call_id, caller
 * and callee are required; reason, media and legs may be NULL. Times are Unix
 * seconds; 0 in answered/ended means "never" (NULL in the table). */
struct store_call {
    int64_t id; /* assigned by the store; ignored by store_call_insert() */
    const char *call_id;
    const char *caller;
    const char *callee;
    int64_t started;
    int64_t answered;
    int64_t ended;
    const char *reason;
    const char *media;
    const char *legs; /* anchored media per leg: a JSON array (anchor_stream_legs) */
};

/* Returns 0 and the new row's id in *id_out (when not NULL), -EINVAL, or
 * a write failure. */
int store_call_insert(struct store *st, const struct store_call *call, int64_t *id_out);
/* Calls fn for at most limit calls (limit <= 0: all), newest start first
 * (ties: last inserted first). Same callback rules as store_user_list(). */
int store_call_list(struct store *st, int limit,
                    int (*fn)(const struct store_call *call, void *arg), void *arg);

/* --- presence authorization rules ------------------------------------ */

enum store_presence_rule {
    STORE_PRESENCE_NONE = 0, /* no rule: the presence policy decides */
    STORE_PRESENCE_ALLOW,
    STORE_PRESENCE_BLOCK,
};

/* Sets the rule for `watcher` ("user@domain") on `user`'s presence;
 * STORE_PRESENCE_NONE removes it. */
int store_presence_rule_set(struct store *st, const char *user, const char *watcher,
                            enum store_presence_rule rule);
/* The rule, or STORE_PRESENCE_NONE (returned as 0 with *out set). */
int store_presence_rule_get(struct store *st, const char *user, const char *watcher,
                            enum store_presence_rule *out);
/* Every rule of a user, ordered by watcher. */
int store_presence_rule_list(struct store *st, const char *user,
                             int (*fn)(const char *watcher, enum store_presence_rule rule,
                                       void *arg),
                             void *arg);

/* --- federation partners --------------------------------------------- */

struct store_partner {
    char domain[256];
    char server[256]; /* HOST the partner is reached at; "" = DNS SRV */
    int port;         /* 0 = default (5061) */
    char address[64]; /* overrides where HOST resolves; "" = DNS */
    int64_t added;
};

/* -EEXIST when the domain is already a partner. */
int store_partner_add(struct store *st, const struct store_partner *p);
int store_partner_remove(struct store *st, const char *domain); /* -ENOENT */
int store_partner_get(struct store *st, const char *domain, struct store_partner *out);
int store_partner_list(struct store *st, int (*fn)(const struct store_partner *p, void *arg),
                       void *arg);

#endif
