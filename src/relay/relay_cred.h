/*
 * relay/relay_cred — the media relay's time-limited credentials and the
 * secrets they are made from.
 *
 * A credential is verifiable without any shared state (the "TURN REST API"
 * scheme, coturn's use-auth-secret):
 *
 *   username = EXPIRY ":" USER        (or a bare EXPIRY)
 *   password = base64(HMAC-SHA1(secret, username))
 *
 * EXPIRY is in Unix seconds. The relay accepts any unexpired credential
 * one of its usable secrets verifies; Parley issues credentials that last
 * at most relay.max_lifetime (8 hours by default).
 *
 * Secrets live in STATE_DIR/relay.secrets (mode 0600), one per line:
 *
 *   ADDED SECRET
 *
 * ADDED is when the secret was added (Unix seconds); the newest one is the
 * current secret, used to issue. Rotation adds a new secret; an older one
 * stays usable for a grace period after the next one was added, so every
 * credential issued from it stays verifiable until it expires: the grace
 * is relay.max_lifetime. Rotation also drops the secrets past their grace.
 *
 * The secret is used as the HMAC key as it is written (the text, not its
 * decoding), so `turnutils_uclient -W SECRET` computes the same passwords.
 *
 * struct relay_secrets is a plain value (copy it freely); the functions
 * are safe from any thread.
 */
#ifndef PARLEY_RELAY_RELAY_CRED_H
#define PARLEY_RELAY_RELAY_CRED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/strview.h"

#define RELAY_SECRETS_FILE      "relay.secrets"
#define RELAY_SECRETS_MAX       16
#define RELAY_SECRET_MIN_LEN    16
#define RELAY_SECRET_MAX_LEN    128
#define RELAY_CRED_USER_MAX     128 /* the USER part */
#define RELAY_CRED_USERNAME_MAX (20 + 1 + RELAY_CRED_USER_MAX)
#define RELAY_CRED_PASSWORD_LEN 28 /* base64 of a 20-byte HMAC-SHA1 */
#define RELAY_CRED_PASSWORD_BUF (RELAY_CRED_PASSWORD_LEN + 1)

struct relay_secret {
    int64_t added;
    size_t len;
    char value[RELAY_SECRET_MAX_LEN + 1];
};

/* Oldest first; the last one is current. */
struct relay_secrets {
    size_t n;
    struct relay_secret v[RELAY_SECRETS_MAX];
};

/* What a file looked like when read, to notice a change cheaply. */
struct relay_secrets_stamp {
    dev_t dev;
    ino_t ino;
    off_t size;
    int64_t mtime_ns;
    int64_t mode; /* a chmod 600 of a refused file is a change too */
};

/* STATE_DIR/relay.secrets into out. Returns 0 or -ENAMETOOLONG. */
int relay_secrets_path(const char *state_dir, char *out, size_t cap);

/*
 * Reads a secrets file. Refuses (-EPERM) a file that others than its owner
 * may read or write, (-EINVAL) a line that is not "ADDED SECRET" with a
 * secret of RELAY_SECRET_MIN_LEN..MAX_LEN printable characters, or a file
 * without any secret, and (-E2BIG) more than RELAY_SECRETS_MAX secrets.
 * -ENOENT when there is no file. Lines starting with '#' and blank lines
 * are skipped. stamp (may be NULL) records the file seen, also when its
 * content is refused (it is left alone when there is no file). err says
 * why.
 */
int relay_secrets_load(const char *path, struct relay_secrets *out,
                       struct relay_secrets_stamp *stamp, char *err, size_t errlen);
/* True when the file is not the one stamp describes. A file that cannot be
 * seen has changed unless stamp is all zeros (known to be missing). */
bool relay_secrets_changed(const char *path, const struct relay_secrets_stamp *stamp);

/* Loads the file, creating it (0600) with one fresh secret when it does
 * not exist; *created says which. */
int relay_secrets_ensure(const char *path, int64_t now, struct relay_secrets *out, bool *created,
                         char *err, size_t errlen);

/* Adds a fresh secret (added = now) and drops the secrets past their grace
 * (and the oldest, when the file is full); the file is replaced atomically
 * under a lock, so concurrent rotations do not lose each other's secret.
 * out (may be NULL) gets the new set, *retired (may be NULL) how many
 * went. Creates the file when there is none. */
int relay_secrets_rotate(const char *path, int64_t now, int64_t grace_s, struct relay_secrets *out,
                         size_t *retired, char *err, size_t errlen);

/* The current secret, or NULL when s is empty. */
const struct relay_secret *relay_secrets_current(const struct relay_secrets *s);
/* May v[i] still verify credentials at `now`? The current one always; an
 * older one until grace_s after the next one was added. */
bool relay_secrets_usable(const struct relay_secrets *s, size_t i, int64_t now, int64_t grace_s);

struct relay_cred {
    char username[RELAY_CRED_USERNAME_MAX + 1];
    char password[RELAY_CRED_PASSWORD_BUF];
    int64_t expires;  /* Unix seconds */
    int64_t lifetime; /* seconds granted */
};

/*
 * Issues a credential for user (NULL or "": a bare EXPIRY username) from
 * the current secret: lifetime_s <= 0 means max_lifetime_s, and anything
 * longer is capped to it. Returns 0, -EINVAL (a user longer than
 * RELAY_CRED_USER_MAX or holding control characters, spaces or non-ASCII;
 * max_lifetime_s <= 0), -ENOENT (no secret) or what HMAC-SHA1 returns
 * (-ENOTSUP when unavailable).
 */
int relay_cred_issue(const struct relay_secrets *s, const char *user, int64_t now,
                     int64_t lifetime_s, int64_t max_lifetime_s, struct relay_cred *out);

/* The password for username under one secret (NUL-terminated). */
int relay_cred_password(const struct relay_secret *secret, struct strview username,
                        char out[RELAY_CRED_PASSWORD_BUF]);

/* Splits "EXPIRY:USER" or "EXPIRY": EXPIRY is 1-19 decimal digits.
 * Returns 0 or -EINVAL. user (may be NULL) is empty for a bare EXPIRY. */
int relay_cred_parse_username(struct strview username, int64_t *expiry, struct strview *user);

enum relay_cred_result {
    RELAY_CRED_OK,
    RELAY_CRED_MALFORMED, /* not EXPIRY[:USER], or too long */
    RELAY_CRED_EXPIRED,   /* EXPIRY is in the past */
    RELAY_CRED_INVALID,   /* no usable secret verifies it */
    RELAY_CRED_ERROR,     /* HMAC failed (unavailable, out of memory) */
};

const char *relay_cred_result_name(enum relay_cred_result r);

/* Checks a username/password pair (password compared in constant time). */
enum relay_cred_result relay_cred_verify(const struct relay_secrets *s, struct strview username,
                                         struct strview password, int64_t now, int64_t grace_s);

/* For protocols that never see the password (TURN proves it with an HMAC
 * keyed by it): calls try(password, arg) with the password each usable
 * secret gives, newest first, until one returns 0. Expiry and form are
 * checked first. *secret_index (may be NULL) gets the secret that matched. */
typedef int (*relay_cred_try_fn)(const char *password, size_t len, void *arg);
enum relay_cred_result relay_cred_check(const struct relay_secrets *s, struct strview username,
                                        int64_t now, int64_t grace_s, relay_cred_try_fn try_fn,
                                        void *arg, size_t *secret_index);

#endif
