/*
 * store internals, shared by store.c (opening, migrations, users, settings,
 * call log, presence rules, partners), store_mediation.c (numbers,
 * outbound rights, the dial plan, routes, trunks) and store_directory.c
 * (profiles, groups, conferences, the address book's change log). Not a
 * public interface.
 *
 * The helpers report a failure the way store.h promises: the message is
 * kept for store_errmsg(), an SQLite failure is logged (event=store.failed)
 * and mapped to a negative errno.
 */
#ifndef PARLEY_STORE_PRIV_H
#define PARLEY_STORE_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include <sqlite3.h>

#include "store/store.h"

/* Statements the hot paths run again and again (a request's user, its
 * meeting, whether the store changed), prepared once per handle. */
#define STORE_KEPT_MAX 16

struct store {
    sqlite3 *db;
    sqlite3_stmt *user_get; /* prepared once: every authenticated request reads a user */
    struct {
        const char *sql; /* the statement's text: a string literal, compared by address */
        sqlite3_stmt *s;
    } kept[STORE_KEPT_MAX];
    size_t nkept;
    char *path; /* for log lines */
    struct clock *clock;
    /* what store_data_changed() saw last: PRAGMA data_version (commits by
     * other connections) and sqlite3_total_changes64 (this one's) */
    int64_t data_version;
    int64_t own_changes;
    bool data_seen;
    char errmsg[512];
};

/* The columns store_user_from_row() reads, in its order. */
#define STORE_USER_COLUMNS                                                                         \
    "name, ha1_md5, ha1_sha256, created, updated, number, outbound, display_name, email, uid, "    \
    "admin"

/* Sets the message store_errmsg() returns. */
void store_set_msg(struct store *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* An SQLite call failed: keeps its message, logs it, maps rc to an errno. */
int store_fail(struct store *st, const char *op, int rc);
int store_prepare(struct store *st, const char *op, const char *sql, sqlite3_stmt **out);
/* Like store_prepare for a statement the handle keeps (sql must be a
 * string literal: it is the key): prepared the first time, then reused.
 * Give it back with store_kept_done (never sqlite3_finalize). When the
 * table is full the statement is an ordinary one and *kept is false: the
 * caller finalizes it. */
int store_prepare_kept(struct store *st, const char *op, const char *sql, sqlite3_stmt **out,
                       bool *kept);
/* Resets a statement from store_prepare_kept (and finalizes it if it was
 * not kept). */
void store_kept_done(sqlite3_stmt *s, bool kept);
/* Binds n texts to ?1.. in order; a NULL binds SQL NULL. */
int store_bind_texts(struct store *st, const char *op, sqlite3_stmt *s, int n, ...);
int store_bind_int64(struct store *st, const char *op, sqlite3_stmt *s, int idx, int64_t v);
/* Runs a statement that returns no rows. */
int store_step_done(struct store *st, const char *op, sqlite3_stmt *s);
/* Runs sql (no rows, no parameters). */
int store_exec(struct store *st, const char *op, const char *sql);
/* A write transaction of several statements: store_begin() takes the
 * write lock first (BEGIN IMMEDIATE), so what was checked stays true until
 * the write; store_end() commits when rc is 0 and rolls back otherwise,
 * and returns rc or the commit's failure. */
int store_begin(struct store *st, const char *op);
int store_end(struct store *st, const char *op, int rc);
/* Runs a DELETE of one row by its key (?1); -ENOENT, with "no WHAT KEY" as
 * the message, when there was no such row. */
int store_delete_by_key(struct store *st, const char *op, const char *sql, const char *key,
                        const char *what);
/* Reads the one row a SELECT by key (?1) finds; -ENOENT when none. */
int store_get_one(struct store *st, const char *op, const char *sql, const char *key,
                  int (*read)(struct store *st, sqlite3_stmt *s, void *out), void *out);
/* Steps an INSERT whose only expected failure is a duplicate name:
 * -EEXIST with "WHAT NAME exists". */
int store_insert_named(struct store *st, const char *op, sqlite3_stmt *s, const char *what,
                       const char *name);
/* Walks the rows of a SELECT: `each` reads one and hands it on. */
int store_list_rows(struct store *st, const char *op, const char *sql,
                    int (*each)(struct store *st, sqlite3_stmt *s, void *walk), void *walk);
/* Copies a text column (NULL reads as ""); -EIO when it does not fit. */
int store_column_copy(struct store *st, sqlite3_stmt *s, int col, char *dst, size_t cap);
/* Reads a row of STORE_USER_COLUMNS. */
int store_user_from_row(struct store *st, sqlite3_stmt *s, struct store_user *u);
/* Runs an UPDATE of one user (?1) with one text value (?2) and the time
 * (?3); -ENOENT when there is no such user. */
int store_user_update(struct store *st, const char *op, const char *sql, const char *name,
                      const char *value);

#endif
