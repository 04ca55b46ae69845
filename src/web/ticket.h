/*
 * web/ticket — web tickets: JWTs (RFC 7519) signed with ES256, which the
 * HTTPS services issue after a login and accept as bearer tokens.
 *
 *   header  {"alg":"ES256","typ":"JWT","kid":KID}
 *   claims  {"iss":"parley","sub":USER,"uid":UID,"dom":DOMAIN,"iat":NOW,"exp":NOW+LIFETIME,
 *            "jti":RANDOM}
 *
 * UID is the user's store uid, which a user of the same name made later
 * does not have: a ticket names one account, not a name.
 *
 * Verification is strict and only for Parley's own tickets: three
 * base64url parts decoded strictly (one accepted encoding per byte string),
 * a header of exactly these members with alg "ES256" (none, HS256 and
 * everything else are MALFORMED, so no key confusion is possible), a known
 * kid, the signature, then the claims: iss "parley", iat at most 60 s ahead,
 * exp in the future, dom this domain, sub a valid user name. At most
 * TICKET_MAX_LEN bytes. The signature is checked before any claim is
 * believed.
 *
 * Keys live in STATE_DIR/https-ticket.keys (0600, replaced atomically):
 *
 *   key ADDED RETIRED        (Unix seconds; RETIRED 0 for the current key)
 *   -----BEGIN PRIVATE KEY-----  (its PKCS#8 PEM, P-256)
 *   ...
 *
 * The current key signs; `parleyctl https rotate-key` adds a new current
 * key and retires the previous one, which still verifies tickets for a
 * grace period (the ticket lifetime) after its retirement, so tickets
 * issued just before a rotation stay valid until they expire. A running
 * daemon notices the change with ticket_keys_changed() and reloads.
 *
 * struct ticket_keys is immutable once loaded: any thread may issue and
 * verify with it. A ticket_cache belongs to one thread.
 */
#ifndef PARLEY_WEB_TICKET_H
#define PARLEY_WEB_TICKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#define TICKET_KEYS_FILE  "https-ticket.keys"
#define TICKET_KEYS_MAX   16
#define TICKET_MAX_LEN    4096 /* bytes of a ticket, for verification and issue */
#define TICKET_CLOCK_SKEW 60   /* seconds an iat may lie ahead */

struct ticket_keys; /* the current signing key and retired ones still accepted */

/* Loads STATE_DIR/https-ticket.keys, creating it with one key (added at
 * now) when absent; *created (may be NULL) says which. -EPERM for a file
 * group or others may access, -EINVAL for one that does not parse (err
 * says where), -E2BIG for more than TICKET_KEYS_MAX keys. */
int ticket_keys_load(OSSL_LIB_CTX *libctx, const char *state_dir, int64_t now,
                     struct ticket_keys **out, bool *created, char *err, size_t errlen);
/* A new current key; the previous one is retired at now; retired keys
 * retired more than grace_s ago are dropped (and the oldest when the file
 * is full). The file is replaced atomically under a lock on its directory,
 * so concurrent rotations do not lose each other's key. Creates the file
 * when there is none. */
int ticket_keys_rotate(OSSL_LIB_CTX *libctx, const char *state_dir, int64_t now, int64_t grace_s,
                       char *err, size_t errlen);
/* Whether the file is no longer the one these keys were loaded from
 * (device, inode, size, mtime, mode). */
bool ticket_keys_changed(const struct ticket_keys *k, const char *state_dir);
void ticket_keys_free(struct ticket_keys *k);
/* The current key's id (16 characters). */
const char *ticket_keys_current_id(const struct ticket_keys *k);
/* How many keys were loaded (the current one and the retired ones). */
size_t ticket_keys_count(const struct ticket_keys *k);

/* A ticket for user (a valid user name) whose store uid is uid (32
 * lowercase hex digits) in domain, valid from now for lifetime_s (> 0)
 * seconds, written into out (NUL-terminated). Returns 0, -EINVAL, -ENOSPC
 * (cap too small), -ENOMEM or what signing returns. */
int ticket_issue(const struct ticket_keys *k, const char *user, const char *uid, const char *domain,
                 int64_t now, int64_t lifetime_s, char *out, size_t cap);

enum ticket_result {
    TICKET_OK = 0,
    TICKET_MALFORMED,
    TICKET_UNKNOWN_KEY,
    TICKET_BAD_SIGNATURE,
    TICKET_EXPIRED,
    TICKET_NOT_YET_VALID,
    TICKET_WRONG_DOMAIN,
};
/* "ok", "malformed", "unknown_key", "bad_signature", "expired",
 * "not_yet_valid", "wrong_domain"; "?" outside the enum. */
const char *ticket_result_name(enum ticket_result r);

/* Checks token[0..len) as said above; a retired key verifies until grace_s
 * after its retirement. On TICKET_OK, user gets sub, uid (may be NULL) the
 * uid, *iat and *exp (may be NULL) when it was issued and when it expires;
 * otherwise user is "". The caller checks that the user still has that uid
 * (and has not changed since iat). */
enum ticket_result ticket_verify(const struct ticket_keys *k, const char *token, size_t len,
                                 const char *domain, int64_t now, int64_t grace_s, char user[65],
                                 char uid[33], int64_t *iat, int64_t *exp);

/*
 * Verified tickets, so keep-alive requests do not check a signature each
 * time. Keyed by SHA-256 of the token (the token itself is never kept),
 * bounded (the oldest entry goes when full), entries dropped at their exp.
 * Clear it when the keys are reloaded. One thread; no lock.
 */
struct ticket_cache;
struct ticket_cache *ticket_cache_new(size_t max_entries);
void ticket_cache_free(struct ticket_cache *c);
/* True with user filled when token was inserted and has not expired. */
bool ticket_cache_lookup(struct ticket_cache *c, const char *token, size_t len, int64_t now,
                         char user[65]);
/* Remembers a verified token (call only after TICKET_OK). */
void ticket_cache_insert(struct ticket_cache *c, const char *token, size_t len, const char *user,
                         int64_t exp);
void ticket_cache_clear(struct ticket_cache *c);
size_t ticket_cache_count(const struct ticket_cache *c);

#endif
