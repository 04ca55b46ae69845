#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/strview.h"
#include "store/store_priv.h"

/*
 * Migrations: entry i brings the schema from version i to i + 1. Append,
 * never edit a released one. STRICT tables (SQLite >= 3.37) make SQLite
 * refuse a value of the wrong type instead of storing it anyway.
 */
static const char *const migrations[] = {
    /* 0 -> 1: users, settings, call log */
    "CREATE TABLE users ("
    "  name TEXT PRIMARY KEY NOT NULL,"
    "  ha1_md5 TEXT NOT NULL CHECK (length(ha1_md5) IN (0, 32)),"
    "  ha1_sha256 TEXT NOT NULL CHECK (length(ha1_sha256) IN (0, 64)),"
    "  created INTEGER NOT NULL,"
    "  updated INTEGER NOT NULL"
    ") STRICT;"
    "CREATE TABLE settings ("
    "  key TEXT PRIMARY KEY NOT NULL,"
    "  value TEXT NOT NULL"
    ") STRICT;"
    "CREATE TABLE calls ("
    "  id INTEGER PRIMARY KEY,"
    "  call_id TEXT NOT NULL,"
    "  caller TEXT NOT NULL,"
    "  callee TEXT NOT NULL,"
    "  started INTEGER NOT NULL,"
    "  answered INTEGER,"
    "  ended INTEGER,"
    "  reason TEXT,"
    "  media TEXT"
    ") STRICT;"
    "CREATE INDEX calls_by_started ON calls (started, id);",
    /* 1 -> 2: presence authorization rules */
    "CREATE TABLE presence_rules ("
    "  user TEXT NOT NULL,"
    "  watcher TEXT NOT NULL,"
    "  rule TEXT NOT NULL CHECK (rule IN ('allow', 'block')),"
    "  PRIMARY KEY (user, watcher)"
    ") STRICT;",
    /* 2 -> 3: federation partners */
    "CREATE TABLE partners ("
    "  domain TEXT PRIMARY KEY NOT NULL,"
    "  server TEXT NOT NULL,"
    "  port INTEGER NOT NULL,"
    "  address TEXT NOT NULL,"
    "  added INTEGER NOT NULL"
    ") STRICT;",
    /* 3 -> 4: anchored media's figures per leg, a JSON array */
    "ALTER TABLE calls ADD COLUMN legs TEXT;",
    /* 4 -> 5: mediation: users' numbers and outbound rights, the dial
     * plan's rules, routes and trunks (position orders rules and routes) */
    "ALTER TABLE users ADD COLUMN number TEXT;"
    "ALTER TABLE users ADD COLUMN outbound TEXT NOT NULL DEFAULT 'none'"
    "  CHECK (outbound IN ('none', 'national', 'all'));"
    "CREATE UNIQUE INDEX users_by_number ON users (number) WHERE number IS NOT NULL;"
    "CREATE TABLE dialplan_rules ("
    "  position INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  pattern TEXT NOT NULL,"
    "  translation TEXT NOT NULL"
    ") STRICT;"
    "CREATE TABLE routes ("
    "  position INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  pattern TEXT NOT NULL,"
    "  trunks TEXT NOT NULL"
    ") STRICT;"
    "CREATE TABLE trunks ("
    "  name TEXT PRIMARY KEY NOT NULL,"
    "  gateway TEXT NOT NULL,"
    "  transport TEXT NOT NULL CHECK (transport IN ('tls', 'tcp')),"
    "  srtp_mode TEXT NOT NULL CHECK (srtp_mode IN ('required', 'optional', 'not_supported')),"
    "  address TEXT NOT NULL,"
    "  added INTEGER NOT NULL,"
    "  CHECK (transport = 'tls' OR srtp_mode = 'not_supported')"
    ") STRICT;",
    /* 5 -> 6: the directory: users' profiles and uids, distribution
     * groups, conferences, and the address book's change log. Triggers
     * keep the log, so that every writer (parleyctl, the daemon, an
     * administrator's sqlite3) records what it changes; and so do the
     * clean-ups when a user or group goes, and the one namespace of users
     * and groups. A uid is 128 random bits, never changed: it names a
     * card or a meeting's content for good, even if the name comes back. */
    "ALTER TABLE users ADD COLUMN display_name TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE users ADD COLUMN email TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE users ADD COLUMN uid TEXT;"
    "UPDATE users SET uid = lower(hex(randomblob(16)));"
    "CREATE UNIQUE INDEX users_by_uid ON users (uid);"
    "CREATE TABLE groups ("
    "  name TEXT PRIMARY KEY NOT NULL,"
    "  display_name TEXT NOT NULL DEFAULT '',"
    "  uid TEXT NOT NULL UNIQUE CHECK (length(uid) = 32),"
    "  created INTEGER NOT NULL"
    ") STRICT;"
    "CREATE TABLE group_members ("
    "  group_name TEXT NOT NULL REFERENCES groups (name) ON DELETE CASCADE,"
    "  member TEXT NOT NULL,"
    "  kind TEXT NOT NULL CHECK (kind IN ('user', 'group')),"
    "  PRIMARY KEY (group_name, member)"
    ") STRICT;"
    "CREATE INDEX group_members_by_member ON group_members (member);"
    "CREATE TABLE conferences ("
    "  name TEXT PRIMARY KEY NOT NULL,"
    "  organizer TEXT NOT NULL REFERENCES users (name),"
    "  uid TEXT NOT NULL UNIQUE CHECK (length(uid) = 32),"
    "  created INTEGER NOT NULL"
    ") STRICT;"
    "CREATE INDEX conferences_by_organizer ON conferences (organizer);"
    "CREATE TABLE conference_allow ("
    "  conference TEXT NOT NULL REFERENCES conferences (name) ON DELETE CASCADE,"
    "  member TEXT NOT NULL,"
    "  kind TEXT NOT NULL CHECK (kind IN ('user', 'group')),"
    "  PRIMARY KEY (conference, member)"
    ") STRICT;"
    "CREATE INDEX conference_allow_by_member ON conference_allow (member);"
    "CREATE TABLE card_changes ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  kind TEXT NOT NULL CHECK (kind IN ('user', 'group')),"
    "  name TEXT NOT NULL,"
    "  uid TEXT NOT NULL,"
    "  removed INTEGER NOT NULL CHECK (removed IN (0, 1))"
    ") STRICT;"
    /* a first sync sees the users there are */
    "INSERT INTO card_changes (kind, name, uid, removed)"
    "  SELECT 'user', name, uid, 0 FROM users ORDER BY name;"
    "CREATE TRIGGER users_name_free BEFORE INSERT ON users"
    "  WHEN EXISTS (SELECT 1 FROM groups WHERE name = new.name)"
    "  BEGIN SELECT RAISE(ABORT, 'the name is taken by a group'); END;"
    "CREATE TRIGGER users_uid_given BEFORE INSERT ON users"
    "  WHEN new.uid IS NULL OR length(new.uid) <> 32"
    "  BEGIN SELECT RAISE(ABORT, 'a user needs a uid of 32 hex characters'); END;"
    "CREATE TRIGGER users_uid_fixed BEFORE UPDATE OF uid ON users"
    "  WHEN new.uid IS NOT old.uid"
    "  BEGIN SELECT RAISE(ABORT, 'a uid never changes'); END;"
    "CREATE TRIGGER users_card_added AFTER INSERT ON users BEGIN"
    "  INSERT INTO card_changes (kind, name, uid, removed) VALUES ('user', new.name, new.uid, 0);"
    "END;"
    "CREATE TRIGGER users_card_changed AFTER UPDATE OF display_name, email, number ON users"
    "  WHEN old.display_name IS NOT new.display_name OR old.email IS NOT new.email"
    "    OR old.number IS NOT new.number BEGIN"
    "  INSERT INTO card_changes (kind, name, uid, removed) VALUES ('user', new.name, new.uid, 0);"
    "END;"
    "CREATE TRIGGER users_card_removed AFTER DELETE ON users BEGIN"
    "  DELETE FROM group_members WHERE member = old.name AND kind = 'user';"
    "  DELETE FROM conference_allow WHERE member = old.name AND kind = 'user';"
    "  INSERT INTO card_changes (kind, name, uid, removed) VALUES ('user', old.name, old.uid, 1);"
    "END;"
    "CREATE TRIGGER groups_name_free BEFORE INSERT ON groups"
    "  WHEN EXISTS (SELECT 1 FROM users WHERE name = new.name)"
    "  BEGIN SELECT RAISE(ABORT, 'the name is taken by a user'); END;"
    "CREATE TRIGGER groups_uid_fixed BEFORE UPDATE OF uid ON groups"
    "  WHEN new.uid IS NOT old.uid"
    "  BEGIN SELECT RAISE(ABORT, 'a uid never changes'); END;"
    "CREATE TRIGGER groups_card_added AFTER INSERT ON groups BEGIN"
    "  INSERT INTO card_changes (kind, name, uid, removed) VALUES ('group', new.name, new.uid, 0);"
    "END;"
    "CREATE TRIGGER groups_card_changed AFTER UPDATE OF display_name ON groups"
    "  WHEN old.display_name IS NOT new.display_name BEGIN"
    "  INSERT INTO card_changes (kind, name, uid, removed) VALUES ('group', new.name, new.uid, 0);"
    "END;"
    /* its own member rows go by the foreign key's cascade (recording
     * nothing: the group is gone); the groups it was a member of change */
    "CREATE TRIGGER groups_card_removed AFTER DELETE ON groups BEGIN"
    "  DELETE FROM group_members WHERE member = old.name AND kind = 'group';"
    "  DELETE FROM conference_allow WHERE member = old.name AND kind = 'group';"
    "  INSERT INTO card_changes (kind, name, uid, removed) VALUES ('group', old.name, old.uid, 1);"
    "END;"
    "CREATE TRIGGER group_members_card_added AFTER INSERT ON group_members BEGIN"
    "  INSERT INTO card_changes (kind, name, uid, removed)"
    "    SELECT 'group', name, uid, 0 FROM groups WHERE name = new.group_name;"
    "END;"
    "CREATE TRIGGER group_members_card_removed AFTER DELETE ON group_members BEGIN"
    "  INSERT INTO card_changes (kind, name, uid, removed)"
    "    SELECT 'group', name, uid, 0 FROM groups WHERE name = old.group_name;"
    "END;",
    /* 6 -> 7: administrators (who may read /metrics with a web ticket);
     * nobody is one until `parleyctl user set NAME --admin` */
    "ALTER TABLE users ADD COLUMN admin INTEGER NOT NULL DEFAULT 0 CHECK (admin IN (0, 1));",
};

_Static_assert(sizeof(migrations) / sizeof(migrations[0]) == STORE_SCHEMA_VERSION,
               "one migration per schema version");

static int errno_from_sqlite(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_READONLY:
        return -EROFS;
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_PERM:
    case SQLITE_AUTH:
        return -EPERM;
    case SQLITE_CANTOPEN:
        return -ENOENT;
    case SQLITE_CONSTRAINT: /* a CHECK or trigger refused the data */
    case SQLITE_TOOBIG:
    case SQLITE_RANGE:
    case SQLITE_MISMATCH:
        return -EINVAL;
    default:
        return -EIO;
    }
}

void store_set_msg(struct store *st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->errmsg, sizeof(st->errmsg), fmt, ap);
    va_end(ap);
}

/* An SQLite call failed: keep its message, log it, map it to an errno. */
int store_fail(struct store *st, const char *op, int rc)
{
    store_set_msg(st, "%s: %s", op, sqlite3_errmsg(st->db));
    log_error("store.failed", "path", st->path, "op", op, "error", sqlite3_errmsg(st->db), "code",
              LOG_INT(rc));
    return errno_from_sqlite(rc);
}

int store_prepare(struct store *st, const char *op, const char *sql, sqlite3_stmt **out)
{
    int rc = sqlite3_prepare_v2(st->db, sql, -1, out, NULL);
    if (rc != SQLITE_OK) {
        *out = NULL;
        return store_fail(st, op, rc);
    }
    return 0;
}

/* Binds texts to ?1.. in order; a NULL binds SQL NULL. */
int store_bind_texts(struct store *st, const char *op, sqlite3_stmt *s, int n, ...)
{
    va_list ap;
    int rc = SQLITE_OK;

    va_start(ap, n);
    for (int i = 1; i <= n && rc == SQLITE_OK; i++) {
        const char *t = va_arg(ap, const char *);
        rc = t ? sqlite3_bind_text(s, i, t, -1, SQLITE_STATIC) : sqlite3_bind_null(s, i);
    }
    va_end(ap);
    return rc == SQLITE_OK ? 0 : store_fail(st, op, rc);
}

int store_bind_int64(struct store *st, const char *op, sqlite3_stmt *s, int idx, int64_t v)
{
    int rc = sqlite3_bind_int64(s, idx, v);
    return rc == SQLITE_OK ? 0 : store_fail(st, op, rc);
}

/* Runs a statement that returns no rows. */
int store_step_done(struct store *st, const char *op, sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    return rc == SQLITE_DONE ? 0 : store_fail(st, op, rc);
}

/* Runs a DELETE of one row by its key (?1); -ENOENT, with "no WHAT KEY" as
 * the message, when there was no such row. */
int store_delete_by_key(struct store *st, const char *op, const char *sql, const char *key,
                        const char *what)
{
    sqlite3_stmt *s = NULL;
    int rc = store_prepare(st, op, sql, &s);
    if (rc == 0)
        rc = store_bind_texts(st, op, s, 1, key);
    if (rc == 0)
        rc = store_step_done(st, op, s);
    if (rc == 0 && sqlite3_changes(st->db) == 0) {
        store_set_msg(st, "no %s %s", what, key);
        rc = -ENOENT;
    }
    sqlite3_finalize(s);
    return rc;
}

int store_exec(struct store *st, const char *op, const char *sql)
{
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : store_fail(st, op, rc);
}

int store_begin(struct store *st, const char *op)
{
    return store_exec(st, op, "BEGIN IMMEDIATE");
}

int store_end(struct store *st, const char *op, int rc)
{
    if (rc == 0)
        rc = store_exec(st, op, "COMMIT");
    if (rc != 0 && !sqlite3_get_autocommit(st->db))
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* Reads a single-row, single-column result (PRAGMAs). text may be NULL. */
static int query_one(struct store *st, const char *op, const char *sql, int64_t *num, char *text,
                     size_t cap)
{
    sqlite3_stmt *s = NULL;
    int rc;

    rc = store_prepare(st, op, sql, &s);
    if (rc < 0)
        goto out;
    int src = sqlite3_step(s);
    if (src == SQLITE_DONE) {
        store_set_msg(st, "%s: no result", op);
        rc = -EIO;
        goto out;
    }
    if (src != SQLITE_ROW) {
        rc = store_fail(st, op, src);
        goto out;
    }
    if (num)
        *num = sqlite3_column_int64(s, 0);
    if (text) {
        const char *t = (const char *)sqlite3_column_text(s, 0);
        snprintf(text, cap, "%s", t ? t : "");
    }
out:
    sqlite3_finalize(s);
    return rc;
}

/* Reads the one row a SELECT by key (?1) finds; -ENOENT when none. */
int store_prepare_kept(struct store *st, const char *op, const char *sql, sqlite3_stmt **out,
                       bool *kept)
{
    for (size_t i = 0; i < st->nkept; i++) {
        if (st->kept[i].sql == sql) {
            *out = st->kept[i].s;
            *kept = true;
            return 0;
        }
    }
    *kept = false;
    if (st->nkept == STORE_KEPT_MAX)
        return store_prepare(st, op, sql, out);
    int rc = sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
    if (rc != SQLITE_OK) {
        *out = NULL;
        return store_fail(st, op, rc);
    }
    st->kept[st->nkept].sql = sql;
    st->kept[st->nkept].s = *out;
    st->nkept++;
    *kept = true;
    return 0;
}

void store_kept_done(sqlite3_stmt *s, bool kept)
{
    if (!kept) {
        sqlite3_finalize(s);
        return;
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
}

int store_get_one(struct store *st, const char *op, const char *sql, const char *key,
                  int (*read)(struct store *st, sqlite3_stmt *s, void *out), void *out)
{
    sqlite3_stmt *s = NULL;
    bool kept = false;
    int rc = store_prepare_kept(st, op, sql, &s, &kept);
    if (rc == 0)
        rc = store_bind_texts(st, op, s, 1, key);
    if (rc == 0) {
        int src = sqlite3_step(s);
        if (src == SQLITE_ROW)
            rc = read(st, s, out);
        else if (src == SQLITE_DONE)
            rc = -ENOENT;
        else
            rc = store_fail(st, op, src);
    }
    if (s)
        store_kept_done(s, kept);
    return rc;
}

/* An INSERT whose only expected failure is a duplicate name. */
int store_insert_named(struct store *st, const char *op, sqlite3_stmt *s, const char *what,
                       const char *name)
{
    int src = sqlite3_step(s);
    if (src == SQLITE_DONE)
        return 0;
    if (src == SQLITE_CONSTRAINT_UNIQUE || src == SQLITE_CONSTRAINT_PRIMARYKEY) {
        store_set_msg(st, "%s %s exists", what, name);
        return -EEXIST;
    }
    return store_fail(st, op, src);
}

/* Walks the rows of a SELECT: `each` reads one and hands it on. */
int store_list_rows(struct store *st, const char *op, const char *sql,
                    int (*each)(struct store *st, sqlite3_stmt *s, void *walk), void *walk)
{
    sqlite3_stmt *s = NULL;
    int rc = store_prepare(st, op, sql, &s);
    while (rc == 0) {
        int src = sqlite3_step(s);
        if (src == SQLITE_DONE)
            break;
        if (src != SQLITE_ROW) {
            rc = store_fail(st, op, src);
            break;
        }
        rc = each(st, s, walk);
    }
    sqlite3_finalize(s);
    return rc;
}

/* --- opening --- */

static int configure(struct store *st)
{
    char mode[16];
    int64_t fk = 0;
    int rc;

    sqlite3_extended_result_codes(st->db, 1);
    rc = sqlite3_busy_timeout(st->db, 5000);
    if (rc != SQLITE_OK)
        return store_fail(st, "busy_timeout", rc);
    /* Defensive mode stops SQL from corrupting the file on purpose
     * (writable_schema and the like); we never need those. */
    rc = sqlite3_db_config(st->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_db_config(st->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
    if (rc != SQLITE_OK)
        return store_fail(st, "db_config", rc);

    rc = query_one(st, "journal_mode", "PRAGMA journal_mode = WAL", NULL, mode, sizeof(mode));
    if (rc < 0)
        return rc;
    /* SQLite answers with the mode it kept: WAL can be refused (no shared
     * memory on some file systems), and we rely on it for readers. */
    if (strcasecmp(mode, "wal") != 0) {
        store_set_msg(st, "journal_mode: WAL refused (got %s)", mode);
        return -EIO;
    }
    rc = store_exec(st, "synchronous", "PRAGMA synchronous = FULL");
    if (rc == 0)
        rc = store_exec(st, "foreign_keys", "PRAGMA foreign_keys = ON");
    if (rc < 0)
        return rc;
    rc = query_one(st, "foreign_keys", "PRAGMA foreign_keys", &fk, NULL, 0);
    if (rc < 0)
        return rc;
    if (fk != 1) {
        store_set_msg(st, "foreign_keys: not supported by this SQLite");
        return -EIO;
    }
    return 0;
}

static int migrate(struct store *st, bool created, bool readonly)
{
    int64_t version = 0;
    int rc;

    if (!readonly) {
        /* IMMEDIATE takes the write lock first, so two processes opening
         * an old store at once cannot both migrate it. */
        rc = store_exec(st, "migrate", "BEGIN IMMEDIATE");
        if (rc < 0)
            return rc;
    }
    rc = query_one(st, "user_version", "PRAGMA user_version", &version, NULL, 0);
    if (rc < 0)
        goto out;
    if (version == 0 && !created) {
        store_set_msg(st, "not an initialised Parley store (schema version 0)");
        rc = -EPROTO;
        goto out;
    }
    if (version > STORE_SCHEMA_VERSION || version < 0) {
        store_set_msg(st, "schema version %lld is newer than this build's (%d)", (long long)version,
                      STORE_SCHEMA_VERSION);
        rc = -EPROTO;
        goto out;
    }
    if (version < STORE_SCHEMA_VERSION && readonly) {
        store_set_msg(st, "schema version %lld needs migrating to %d; open read-write",
                      (long long)version, STORE_SCHEMA_VERSION);
        rc = -EPROTO;
        goto out;
    }
    for (int64_t v = version; v < STORE_SCHEMA_VERSION; v++) {
        char sql[48];
        rc = store_exec(st, "migrate", migrations[v]);
        if (rc < 0)
            goto out;
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %lld", (long long)(v + 1));
        rc = store_exec(st, "migrate", sql);
        if (rc < 0)
            goto out;
    }
    if (!readonly)
        rc = store_exec(st, "migrate", "COMMIT");
    if (rc == 0 && version < STORE_SCHEMA_VERSION)
        log_info("store.migrated", "path", st->path, "from", LOG_INT(version), "to",
                 LOG_INT(STORE_SCHEMA_VERSION));
out:
    if (rc < 0 && !readonly && !sqlite3_get_autocommit(st->db))
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* Creates the file with mode 0600 before SQLite sees it: SQLite would use
 * 0644 & ~umask, and gives its -wal and -shm files the database's mode. */
static int create_file(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    /* The umask can only have removed bits; fchmod puts back exactly 0600. */
    if (fchmod(fd, 0600) < 0) {
        int e = errno;
        snprintf(err, errlen, "%s: chmod: %s", path, strerror(e));
        close(fd);
        unlink(path);
        return -e;
    }
    close(fd);
    return 0;
}

static int check_existing(const char *path, char *err, size_t errlen)
{
    struct stat sb;

    if (stat(path, &sb) < 0) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    if (!S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        return -EINVAL;
    }
    if (sb.st_mode & 077) {
        snprintf(err, errlen,
                 "%s: mode %04o lets group or others access it (it holds password "
                 "hashes); chmod 600 it",
                 path, (unsigned)(sb.st_mode & 07777));
        return -EPERM;
    }
    return 0;
}

int store_open(const char *path, int flags, struct store **out, char *err, size_t errlen)
{
    char dummy[1];
    struct store *st = NULL;
    bool create = flags & STORE_CREATE;
    bool readonly = flags & STORE_READONLY;
    bool created = false;
    int rc;

    if (!err || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = '\0';
    if (out)
        *out = NULL;
    if (!path || !*path || !out || (flags & ~(STORE_CREATE | STORE_READONLY)) ||
        (create && readonly)) {
        snprintf(err, errlen, "invalid arguments");
        return -EINVAL;
    }

    rc = create ? create_file(path, err, errlen) : check_existing(path, err, errlen);
    if (rc < 0)
        return rc;
    created = create;

    st = calloc(1, sizeof(*st));
    if (st)
        st->path = strdup(path);
    if (!st || !st->path) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
        goto out;
    }
    st->clock = clock_system();
    /* Without SQLITE_OPEN_CREATE: the file exists now (we made it or
     * checked it), and if it vanished meanwhile we want an error, not a
     * fresh empty store. NOMUTEX: one thread per connection. */
    int src = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (src != SQLITE_OK) {
        rc = st->db ? store_fail(st, "open", src) : -ENOMEM;
        goto out;
    }
    rc = configure(st);
    if (rc == 0)
        rc = migrate(st, created, readonly);
    if (rc == 0 && readonly)
        rc = store_exec(st, "query_only", "PRAGMA query_only = ON");
    if (rc < 0)
        goto out;
    st->errmsg[0] = '\0';
    *out = st;
    st = NULL;
out:
    if (st) {
        if (st->errmsg[0])
            snprintf(err, errlen, "%s: %s", path, st->errmsg);
        sqlite3_close(st->db);
        free(st->path);
        free(st);
    }
    if (rc < 0 && created)
        unlink(path);
    return rc;
}

int store_close(struct store *st)
{
    int rc = 0;

    if (!st)
        return 0;
    sqlite3_finalize(st->user_get);
    for (size_t i = 0; i < st->nkept; i++)
        sqlite3_finalize(st->kept[i].s);
    /* Closing checkpoints the WAL into the main file; a failure there
     * loses nothing (the WAL stays and is replayed on the next open) but
     * it is still worth knowing about. */
    int src = sqlite3_close(st->db);
    if (src != SQLITE_OK) {
        log_error("store.failed", "path", st->path, "op", "close", "error", sqlite3_errmsg(st->db));
        sqlite3_close_v2(st->db);
        rc = -EIO;
    }
    free(st->path);
    free(st);
    return rc;
}

const char *store_errmsg(const struct store *st)
{
    return st ? st->errmsg : "no store";
}

void store_set_clock(struct store *st, struct clock *clock)
{
    st->clock = clock ? clock : clock_system();
}

/* --- users --- */

bool store_user_name_valid(const char *name)
{
    size_t n;

    if (!name)
        return false;
    for (n = 0; name[n]; n++) {
        char c = name[n];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (n >= STORE_USER_NAME_MAX)
            return false;
        if (!alnum && (n == 0 || (c != '.' && c != '_' && c != '-')))
            return false;
    }
    return n > 0;
}

static bool ha1_valid(const char *h, size_t len)
{
    if (!h)
        return false;
    size_t n = strnlen(h, len + 1);
    if (n == 0)
        return true;
    if (n != len)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
            return false;
    }
    return true;
}

static int check_user_args(struct store *st, const char *name, const char *md5, const char *sha256)
{
    if (!store_user_name_valid(name)) {
        store_set_msg(st, "invalid user name");
        return -EINVAL;
    }
    if (!ha1_valid(md5, 32) || !ha1_valid(sha256, 64) || (!md5[0] && !sha256[0])) {
        store_set_msg(st, "invalid HA1 values");
        return -EINVAL;
    }
    return 0;
}

int store_user_add(struct store *st, const char *name, const char *ha1_md5, const char *ha1_sha256)
{
    static const char op[] = "user_add";
    sqlite3_stmt *s = NULL;
    int rc;

    rc = check_user_args(st, name, ha1_md5, ha1_sha256);
    if (rc < 0)
        return rc;
    int64_t now = clock_wall_s(st->clock);
    rc = store_prepare(st, op,
                       "INSERT INTO users (name, ha1_md5, ha1_sha256, created, updated, uid) "
                       "VALUES (?1, ?2, ?3, ?4, ?4, lower(hex(randomblob(16))))",
                       &s);
    if (rc == 0)
        rc = store_bind_texts(st, op, s, 3, name, ha1_md5, ha1_sha256);
    if (rc == 0)
        rc = store_bind_int64(st, op, s, 4, now);
    if (rc < 0)
        goto out;
    int src = sqlite3_step(s);
    if (src == SQLITE_CONSTRAINT_PRIMARYKEY) {
        store_set_msg(st, "user %s exists", name);
        rc = -EEXIST;
    } else if (src == SQLITE_CONSTRAINT_TRIGGER &&
               strstr(sqlite3_errmsg(st->db), "taken by a group")) {
        store_set_msg(st, "group %s exists (users and groups share one namespace)", name);
        rc = -EEXIST;
    } else if (src != SQLITE_DONE) {
        rc = store_fail(st, op, src);
    }
out:
    sqlite3_finalize(s);
    return rc;
}

/* The first conference (by name) that user organizes: 1 with its name in
 * conf, 0 when none. The foreign key would refuse the removal too, but
 * without saying which conference is in the way. */
static int user_organizes(struct store *st, const char *user, char *conf, size_t cap)
{
    static const char op[] = "user_remove";
    sqlite3_stmt *s = NULL;
    int rc = store_prepare(
        st, op, "SELECT name FROM conferences WHERE organizer = ?1 ORDER BY name LIMIT 1", &s);
    if (rc == 0)
        rc = store_bind_texts(st, op, s, 1, user);
    if (rc == 0) {
        int src = sqlite3_step(s);
        if (src == SQLITE_ROW) {
            rc = store_column_copy(st, s, 0, conf, cap);
            if (rc == 0)
                rc = 1;
        } else if (src != SQLITE_DONE) {
            rc = store_fail(st, op, src);
        }
    }
    sqlite3_finalize(s);
    return rc;
}

int store_user_remove(struct store *st, const char *name)
{
    char conf[STORE_USER_NAME_MAX + 1];
    if (!store_user_name_valid(name)) {
        store_set_msg(st, "invalid user name");
        return -EINVAL;
    }
    int rc = user_organizes(st, name, conf, sizeof(conf));
    if (rc == 1) {
        store_set_msg(st,
                      "%s organizes conference %s (remove the conference, or create it anew "
                      "with another organizer, first)",
                      name, conf);
        return -EBUSY;
    }
    if (rc < 0)
        return rc;
    /* the triggers take the user out of groups and conferences */
    return store_delete_by_key(st, "user_remove", "DELETE FROM users WHERE name = ?1", name,
                               "user");
}

int store_user_set_ha1(struct store *st, const char *name, const char *ha1_md5,
                       const char *ha1_sha256)
{
    static const char op[] = "user_set_ha1";
    sqlite3_stmt *s = NULL;
    int rc;

    rc = check_user_args(st, name, ha1_md5, ha1_sha256);
    if (rc < 0)
        return rc;
    int64_t now = clock_wall_s(st->clock);
    rc = store_prepare(
        st, op, "UPDATE users SET ha1_md5 = ?2, ha1_sha256 = ?3, updated = ?4 WHERE name = ?1", &s);
    if (rc == 0)
        rc = store_bind_texts(st, op, s, 3, name, ha1_md5, ha1_sha256);
    if (rc == 0)
        rc = store_bind_int64(st, op, s, 4, now);
    if (rc == 0)
        rc = store_step_done(st, op, s);
    if (rc == 0 && sqlite3_changes(st->db) == 0) {
        store_set_msg(st, "no user %s", name);
        rc = -ENOENT;
    }
    sqlite3_finalize(s);
    return rc;
}

/* Copies a text column; a value that does not fit means the file was
 * edited behind our back, which we report rather than truncate. */
int store_column_copy(struct store *st, sqlite3_stmt *s, int col, char *dst, size_t cap)
{
    const char *t = (const char *)sqlite3_column_text(s, col);
    size_t n = (size_t)sqlite3_column_bytes(s, col);
    if (strview_copy(strview_make(t, t ? n : 0), dst, cap) < 0) {
        store_set_msg(st, "corrupt row: %s too long", sqlite3_column_name(s, col));
        return -EIO;
    }
    return 0;
}

int store_user_from_row(struct store *st, sqlite3_stmt *s, struct store_user *u)
{
    int rc;

    memset(u, 0, sizeof(*u));
    rc = store_column_copy(st, s, 0, u->name, sizeof(u->name));
    if (rc == 0)
        rc = store_column_copy(st, s, 1, u->ha1_md5, sizeof(u->ha1_md5));
    if (rc == 0)
        rc = store_column_copy(st, s, 2, u->ha1_sha256, sizeof(u->ha1_sha256));
    u->created = sqlite3_column_int64(s, 3);
    u->updated = sqlite3_column_int64(s, 4);
    if (rc == 0)
        rc = store_column_copy(st, s, 5, u->number, sizeof(u->number));
    if (rc == 0)
        rc = store_column_copy(st, s, 6, u->outbound, sizeof(u->outbound));
    if (rc == 0)
        rc = store_column_copy(st, s, 7, u->display_name, sizeof(u->display_name));
    if (rc == 0)
        rc = store_column_copy(st, s, 8, u->email, sizeof(u->email));
    if (rc == 0)
        rc = store_column_copy(st, s, 9, u->uid, sizeof(u->uid));
    u->admin = sqlite3_column_int64(s, 10) != 0;
    return rc;
}

int store_user_get(struct store *st, const char *name, struct store_user *out)
{
    static const char op[] = "user_get";
    sqlite3_stmt *s = NULL;
    int rc;

    if (!store_user_name_valid(name)) {
        store_set_msg(st, "invalid user name");
        return -EINVAL;
    }
    if (!st->user_get) {
        int prc =
            sqlite3_prepare_v3(st->db, "SELECT " STORE_USER_COLUMNS " FROM users WHERE name = ?1",
                               -1, SQLITE_PREPARE_PERSISTENT, &st->user_get, NULL);
        if (prc != SQLITE_OK) {
            st->user_get = NULL;
            return store_fail(st, op, prc);
        }
    }
    s = st->user_get;
    rc = store_bind_texts(st, op, s, 1, name);
    if (rc < 0)
        goto out;
    int src = sqlite3_step(s);
    if (src == SQLITE_ROW) {
        rc = store_user_from_row(st, s, out);
    } else if (src == SQLITE_DONE) {
        store_set_msg(st, "no user %s", name);
        rc = -ENOENT;
    } else {
        rc = store_fail(st, op, src);
    }
out:
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc;
}

int store_user_list(struct store *st, int (*fn)(const struct store_user *user, void *arg),
                    void *arg)
{
    static const char op[] = "user_list";
    sqlite3_stmt *s = NULL;
    struct store_user u;
    int rc, src;

    rc = store_prepare(st, op, "SELECT " STORE_USER_COLUMNS " FROM users ORDER BY name", &s);
    if (rc < 0)
        return rc;
    while ((src = sqlite3_step(s)) == SQLITE_ROW) {
        rc = store_user_from_row(st, s, &u);
        if (rc == 0)
            rc = fn(&u, arg);
        if (rc != 0)
            goto out;
    }
    if (src != SQLITE_DONE)
        rc = store_fail(st, op, src);
out:
    sqlite3_finalize(s);
    return rc;
}

/* Runs an UPDATE of one user (?1) with one text value (?2); -ENOENT when
 * there is no such user. */
int store_user_update(struct store *st, const char *op, const char *sql, const char *name,
                      const char *value)
{
    if (!store_user_name_valid(name)) {
        store_set_msg(st, "invalid user name");
        return -EINVAL;
    }
    sqlite3_stmt *s = NULL;
    int rc = store_prepare(st, op, sql, &s);
    if (rc == 0)
        rc = store_bind_texts(st, op, s, 2, name, value);
    if (rc == 0)
        rc = store_bind_int64(st, op, s, 3, clock_wall_s(st->clock));
    if (rc == 0)
        rc = store_step_done(st, op, s);
    if (rc == 0 && sqlite3_changes(st->db) == 0) {
        store_set_msg(st, "no user %s", name);
        rc = -ENOENT;
    }
    sqlite3_finalize(s);
    return rc;
}

int store_user_set_admin(struct store *st, const char *name, bool admin)
{
    return store_user_update(st, "user_set_admin",
                             "UPDATE users SET admin = (?2 = '1'), updated = ?3 WHERE name = ?1",
                             name, admin ? "1" : "0");
}

/* --- settings --- */

static bool setting_key_valid(const char *key)
{
    size_t n;

    if (!key)
        return false;
    for (n = 0; key[n]; n++) {
        char c = key[n];
        if (n >= STORE_SETTING_KEY_MAX)
            return false;
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == ':' || c == '-'))
            return false;
    }
    return n > 0;
}

int store_setting_get(struct store *st, const char *key, char *buf, size_t cap)
{
    static const char op[] = "setting_get";
    sqlite3_stmt *s = NULL;
    int rc;

    if (!setting_key_valid(key) || !buf || cap == 0) {
        store_set_msg(st, "invalid setting key or buffer");
        return -EINVAL;
    }
    rc = store_prepare(st, op, "SELECT value FROM settings WHERE key = ?1", &s);
    if (rc == 0)
        rc = store_bind_texts(st, op, s, 1, key);
    if (rc < 0)
        goto out;
    int src = sqlite3_step(s);
    if (src == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(s, 0);
        size_t n = (size_t)sqlite3_column_bytes(s, 0);
        if (strview_copy(strview_make(t, t ? n : 0), buf, cap) < 0) {
            store_set_msg(st, "setting %s: value longer than %zu bytes", key, cap - 1);
            buf[0] = '\0';
            rc = -ENOSPC;
        }
    } else if (src == SQLITE_DONE) {
        store_set_msg(st, "no setting %s", key);
        rc = -ENOENT;
    } else {
        rc = store_fail(st, op, src);
    }
out:
    sqlite3_finalize(s);
    return rc;
}

int store_setting_set(struct store *st, const char *key, const char *value)
{
    static const char op[] = "setting_set";
    sqlite3_stmt *s = NULL;
    int rc;

    if (!setting_key_valid(key) || !value) {
        store_set_msg(st, "invalid setting key or value");
        return -EINVAL;
    }
    rc = store_prepare(st, op,
                       "INSERT INTO settings (key, value) VALUES (?1, ?2) "
                       "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                       &s);
    if (rc == 0)
        rc = store_bind_texts(st, op, s, 2, key, value);
    if (rc == 0)
        rc = store_step_done(st, op, s);
    sqlite3_finalize(s);
    return rc;
}

int store_setting_delete(struct store *st, const char *key)
{
    if (!setting_key_valid(key)) {
        store_set_msg(st, "invalid setting key");
        return -EINVAL;
    }
    return store_delete_by_key(st, "setting_delete", "DELETE FROM settings WHERE key = ?1", key,
                               "setting");
}

/* --- call log --- */

static int bind_time(struct store *st, const char *op, sqlite3_stmt *s, int idx, int64_t t)
{
    if (t != 0)
        return store_bind_int64(st, op, s, idx, t);
    int rc = sqlite3_bind_null(s, idx);
    return rc == SQLITE_OK ? 0 : store_fail(st, op, rc);
}

int store_call_insert(struct store *st, const struct store_call *call, int64_t *id_out)
{
    static const char op[] = "call_insert";
    sqlite3_stmt *s = NULL;
    int rc;

    if (!call || !call->call_id || !call->caller || !call->callee) {
        store_set_msg(st, "call_id, caller and callee are required");
        return -EINVAL;
    }
    rc = store_prepare(st, op,
                       "INSERT INTO calls (call_id, caller, callee, reason, media, legs, started, "
                       "answered, ended) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                       &s);
    if (rc == 0)
        rc = store_bind_texts(st, op, s, 6, call->call_id, call->caller, call->callee, call->reason,
                              call->media, call->legs);
    if (rc == 0)
        rc = store_bind_int64(st, op, s, 7, call->started);
    if (rc == 0)
        rc = bind_time(st, op, s, 8, call->answered);
    if (rc == 0)
        rc = bind_time(st, op, s, 9, call->ended);
    if (rc == 0)
        rc = store_step_done(st, op, s);
    if (rc == 0 && id_out)
        *id_out = sqlite3_last_insert_rowid(st->db);
    sqlite3_finalize(s);
    return rc;
}

int store_call_list(struct store *st, int limit,
                    int (*fn)(const struct store_call *call, void *arg), void *arg)
{
    static const char op[] = "call_list";
    sqlite3_stmt *s = NULL;
    int rc, src;

    rc = store_prepare(
        st, op,
        "SELECT id, call_id, caller, callee, started, answered, ended, reason, media, "
        "legs FROM calls ORDER BY started DESC, id DESC LIMIT ?1",
        &s);
    if (rc == 0)
        rc = store_bind_int64(st, op, s, 1, limit > 0 ? limit : -1);
    if (rc < 0)
        goto out;
    while ((src = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_call c = {
            .id = sqlite3_column_int64(s, 0),
            .call_id = (const char *)sqlite3_column_text(s, 1),
            .caller = (const char *)sqlite3_column_text(s, 2),
            .callee = (const char *)sqlite3_column_text(s, 3),
            .started = sqlite3_column_int64(s, 4),
            .answered = sqlite3_column_int64(s, 5), /* NULL reads as 0 */
            .ended = sqlite3_column_int64(s, 6),
            .reason = (const char *)sqlite3_column_text(s, 7),
            .media = (const char *)sqlite3_column_text(s, 8),
            .legs = (const char *)sqlite3_column_text(s, 9),
        };
        if (!c.call_id || !c.caller || !c.callee) {
            store_set_msg(st, "corrupt calls row %lld", (long long)c.id);
            rc = -EIO;
            goto out;
        }
        rc = fn(&c, arg);
        if (rc != 0)
            goto out;
    }
    if (src != SQLITE_DONE)
        rc = store_fail(st, op, src);
out:
    sqlite3_finalize(s);
    return rc;
}

/* --- presence rules ------------------------------------------------------ */

int store_presence_rule_set(struct store *st, const char *user, const char *watcher,
                            enum store_presence_rule rule)
{
    static const char op[] = "presence_rule_set";
    sqlite3_stmt *s = NULL;
    int rc;

    if (!store_user_name_valid(user) || !watcher || !*watcher || strlen(watcher) > 255) {
        store_set_msg(st, "invalid user or watcher");
        return -EINVAL;
    }
    if (rule == STORE_PRESENCE_NONE)
        rc = store_prepare(st, op, "DELETE FROM presence_rules WHERE user = ?1 AND watcher = ?2",
                           &s);
    else
        rc = store_prepare(st, op,
                           "INSERT INTO presence_rules (user, watcher, rule) VALUES (?1, ?2, ?3) "
                           "ON CONFLICT (user, watcher) DO UPDATE SET rule = excluded.rule",
                           &s);
    if (rc == 0)
        rc = rule == STORE_PRESENCE_NONE
                 ? store_bind_texts(st, op, s, 2, user, watcher)
                 : store_bind_texts(st, op, s, 3, user, watcher,
                                    rule == STORE_PRESENCE_ALLOW ? "allow" : "block");
    if (rc == 0)
        rc = store_step_done(st, op, s);
    sqlite3_finalize(s);
    return rc;
}

int store_presence_rule_get(struct store *st, const char *user, const char *watcher,
                            enum store_presence_rule *out)
{
    static const char op[] = "presence_rule_get";
    sqlite3_stmt *s = NULL;
    *out = STORE_PRESENCE_NONE;
    int rc = store_prepare(st, op,
                           "SELECT rule FROM presence_rules WHERE user = ?1 AND watcher = ?2", &s);
    if (rc == 0)
        rc = store_bind_texts(st, op, s, 2, user, watcher);
    if (rc == 0) {
        int src = sqlite3_step(s);
        if (src == SQLITE_ROW) {
            const char *t = (const char *)sqlite3_column_text(s, 0);
            *out = t && strcmp(t, "allow") == 0 ? STORE_PRESENCE_ALLOW : STORE_PRESENCE_BLOCK;
        } else if (src != SQLITE_DONE) {
            rc = store_fail(st, op, src);
        }
    }
    sqlite3_finalize(s);
    return rc;
}

int store_presence_rule_list(struct store *st, const char *user,
                             int (*fn)(const char *watcher, enum store_presence_rule rule,
                                       void *arg),
                             void *arg)
{
    static const char op[] = "presence_rule_list";
    sqlite3_stmt *s = NULL;
    int rc = store_prepare(
        st, op, "SELECT watcher, rule FROM presence_rules WHERE user = ?1 ORDER BY watcher", &s);
    if (rc == 0)
        rc = store_bind_texts(st, op, s, 1, user);
    while (rc == 0) {
        int src = sqlite3_step(s);
        if (src == SQLITE_DONE)
            break;
        if (src != SQLITE_ROW) {
            rc = store_fail(st, op, src);
            break;
        }
        const char *w = (const char *)sqlite3_column_text(s, 0);
        const char *r = (const char *)sqlite3_column_text(s, 1);
        rc = fn(w ? w : "",
                r && strcmp(r, "allow") == 0 ? STORE_PRESENCE_ALLOW : STORE_PRESENCE_BLOCK, arg);
    }
    sqlite3_finalize(s);
    return rc;
}

/* --- partners -------------------------------------------------------------- */

static void partner_from_row(sqlite3_stmt *s, struct store_partner *p)
{
    memset(p, 0, sizeof(*p));
    const char *d = (const char *)sqlite3_column_text(s, 0);
    const char *h = (const char *)sqlite3_column_text(s, 1);
    const char *a = (const char *)sqlite3_column_text(s, 3);
    snprintf(p->domain, sizeof(p->domain), "%s", d ? d : "");
    snprintf(p->server, sizeof(p->server), "%s", h ? h : "");
    p->port = sqlite3_column_int(s, 2);
    snprintf(p->address, sizeof(p->address), "%s", a ? a : "");
    p->added = sqlite3_column_int64(s, 4);
}

int store_partner_add(struct store *st, const struct store_partner *p)
{
    static const char op[] = "partner_add";
    sqlite3_stmt *s = NULL;
    struct store_partner existing;
    if (store_partner_get(st, p->domain, &existing) == 0) {
        store_set_msg(st, "%s is a partner already", p->domain);
        return -EEXIST;
    }
    int rc = store_prepare(st, op,
                           "INSERT INTO partners (domain, server, port, address, added) "
                           "VALUES (?1, ?2, ?3, ?4, ?5)",
                           &s);
    if (rc == 0)
        rc = store_bind_texts(st, op, s, 2, p->domain, p->server);
    if (rc == 0 && (sqlite3_bind_int(s, 3, p->port) != SQLITE_OK ||
                    sqlite3_bind_text(s, 4, p->address, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
                    sqlite3_bind_int64(s, 5, p->added) != SQLITE_OK))
        rc = store_fail(st, op, sqlite3_errcode(st->db));
    if (rc == 0)
        rc = store_step_done(st, op, s);
    sqlite3_finalize(s);
    return rc;
}

int store_partner_remove(struct store *st, const char *domain)
{
    return store_delete_by_key(st, "partner_remove", "DELETE FROM partners WHERE domain = ?1",
                               domain, "partner");
}

int store_partner_get(struct store *st, const char *domain, struct store_partner *out)
{
    static const char op[] = "partner_get";
    sqlite3_stmt *s = NULL;
    int rc = store_prepare(
        st, op, "SELECT domain, server, port, address, added FROM partners WHERE domain = ?1", &s);
    if (rc == 0)
        rc = store_bind_texts(st, op, s, 1, domain);
    if (rc == 0) {
        int src = sqlite3_step(s);
        if (src == SQLITE_ROW)
            partner_from_row(s, out);
        else if (src == SQLITE_DONE)
            rc = -ENOENT;
        else
            rc = store_fail(st, op, src);
    }
    sqlite3_finalize(s);
    return rc;
}

int store_partner_list(struct store *st, int (*fn)(const struct store_partner *p, void *arg),
                       void *arg)
{
    static const char op[] = "partner_list";
    sqlite3_stmt *s = NULL;
    int rc = store_prepare(
        st, op, "SELECT domain, server, port, address, added FROM partners ORDER BY domain", &s);
    while (rc == 0) {
        int src = sqlite3_step(s);
        if (src == SQLITE_DONE)
            break;
        if (src != SQLITE_ROW) {
            rc = store_fail(st, op, src);
            break;
        }
        struct store_partner p;
        partner_from_row(s, &p);
        rc = fn(&p, arg);
    }
    sqlite3_finalize(s);
    return rc;
}

/* --- whole-file views: backups and diagnostics --- */

/* SQLITE_BUSY and SQLITE_LOCKED while parleyd writes: wait and step again.
 * 300 waits of 100 ms bound it at about 30 s. */
#define SNAPSHOT_RETRIES 300
#define SNAPSHOT_WAIT_MS 100
#define SNAPSHOT_PAGES   256 /* per step: the writer gets its turns between steps */

int store_snapshot(const char *path, const char *dest, char *err, size_t errlen)
{
    sqlite3 *src = NULL, *dst = NULL;
    sqlite3_backup *b = NULL;
    bool made = false;
    int rc = 0;

    err[0] = '\0';
    rc = check_existing(path, err, errlen);
    if (rc < 0)
        return rc;
    rc = create_file(dest, err, errlen);
    if (rc < 0)
        return rc;
    made = true;
    /* read-only: the snapshot must never be what writes to the live
     * store (a hot journal, a checkpoint); WAL readers see one moment */
    int s = sqlite3_open_v2(path, &src, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (s == SQLITE_OK)
        s = sqlite3_open_v2(dest, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (s != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path,
                 src ? sqlite3_errmsg(dst ? dst : src) : sqlite3_errstr(s));
        rc = -EIO;
        goto out;
    }
    sqlite3_busy_timeout(src, SNAPSHOT_WAIT_MS);
    b = sqlite3_backup_init(dst, "main", src, "main");
    if (!b) {
        snprintf(err, errlen, "%s: backup: %s", dest, sqlite3_errmsg(dst));
        rc = -EIO;
        goto out;
    }
    int tries = 0;
    for (;;) {
        s = sqlite3_backup_step(b, SNAPSHOT_PAGES);
        if (s == SQLITE_DONE)
            break;
        if (s == SQLITE_OK)
            continue;
        if ((s == SQLITE_BUSY || s == SQLITE_LOCKED) && ++tries < SNAPSHOT_RETRIES) {
            sqlite3_sleep(SNAPSHOT_WAIT_MS);
            continue;
        }
        snprintf(err, errlen, "%s: backup: %s", path, sqlite3_errstr(s));
        rc = (s == SQLITE_BUSY || s == SQLITE_LOCKED) ? -EBUSY : -EIO;
        goto out;
    }
    s = sqlite3_backup_finish(b);
    b = NULL;
    if (s != SQLITE_OK) {
        snprintf(err, errlen, "%s: backup: %s", path, sqlite3_errstr(s));
        rc = -EIO;
        goto out;
    }
    /* the copy took the source's WAL mode: back to a journal, so it is
     * one file that a restore puts down as it is */
    if (sqlite3_exec(dst, "PRAGMA journal_mode = DELETE", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: journal_mode: %s", dest, sqlite3_errmsg(dst));
        rc = -EIO;
        goto out;
    }
out:
    if (b)
        sqlite3_backup_finish(b);
    sqlite3_close(src);
    if (dst && sqlite3_close(dst) != SQLITE_OK && rc == 0) {
        snprintf(err, errlen, "%s: close failed", dest);
        rc = -EIO;
    }
    if (rc == 0) {
        int fd = open(dest, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) != 0) {
            rc = -errno;
            snprintf(err, errlen, "%s: fsync: %s", dest, strerror(errno));
        }
        if (fd >= 0)
            close(fd);
    }
    if (rc < 0 && made)
        unlink(dest);
    return rc;
}

int store_check(const char *path, int64_t *version, char *integrity, size_t cap, char *err,
                size_t errlen)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    int rc = 0;

    err[0] = '\0';
    integrity[0] = '\0';
    *version = -1;
    rc = check_existing(path, err, errlen);
    if (rc < 0)
        return rc;
    int q = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (q == SQLITE_OK) {
        sqlite3_busy_timeout(db, 5000);
        q = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL);
    }
    if (q == SQLITE_OK && (q = sqlite3_step(s)) == SQLITE_ROW) {
        *version = sqlite3_column_int64(s, 0);
        q = SQLITE_OK;
    }
    sqlite3_finalize(s);
    s = NULL;
    if (q == SQLITE_OK)
        q = sqlite3_prepare_v2(db, "PRAGMA integrity_check(1)", -1, &s, NULL);
    if (q == SQLITE_OK && (q = sqlite3_step(s)) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(s, 0);
        snprintf(integrity, cap, "%s", t ? t : "");
        q = SQLITE_OK;
    }
    if (q != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(q));
        rc = -EIO;
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    return rc;
}
