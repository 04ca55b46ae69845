/*
 * registrar/auth — digest authentication of SIP requests (RFC 3261 §22,
 * RFC 7616, RFC 8760), the server side.
 *
 * Challenges offer the configured algorithms in order (one
 * WWW-Authenticate / Proxy-Authenticate header each). Nonces are
 * self-verifying — base64url of issue time, randomness and an HMAC-SHA256
 * under a key chosen at start-up — so a forged or foreign nonce is refused
 * without any lookup, and they expire after `nonce_lifetime`. Replay
 * protection keeps the highest `nc` seen per nonce in a bounded table;
 * when the table is full the oldest entries go, and a nonce whose entry
 * went is answered stale=true (the client just retries with a new one).
 *
 * No answer reveals whether a user exists: an unknown user is challenged
 * like any other, and its credentials are checked against a dummy hash
 * with the same work before being refused like a wrong password.
 *
 * Belongs to the SIP core thread. Time comes from a struct clock.
 */
#ifndef PARLEY_REGISTRAR_AUTH_H
#define PARLEY_REGISTRAR_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/strbuf.h"
#include "crypto/digest.h"
#include "sip/msg.h"

#define AUTH_MAX_ALGORITHMS 2

#define AUTH_USER_MAX                  64  /* longest user name accepted */
#define AUTH_REALM_MAX                 255 /* longest realm configured */
#define AUTH_DEFAULT_MAX_NONCES        100000
#define AUTH_DEFAULT_NONCE_LIFETIME_MS 300000 /* 5 minutes */

struct auth_config {
    const char *realm; /* the SIP domain */
    enum digest_alg algorithms[AUTH_MAX_ALGORITHMS];
    size_t nalgorithms;         /* offered in this order */
    uint64_t nonce_lifetime_ms; /* 0: a default */
    size_t max_nonces;          /* nc table bound (0: a default) */
    /* security.fips = on or approved-only (crypto/fips: fips_restricted):
     * SHA-256 only. MD5 among the algorithms is refused (-EPERM), and a
     * client answering with MD5 is refused "algorithm not allowed (MD5
     * under FIPS)". */
    bool restricted;
};

/* What auth.algorithms becomes under FIPS, and what `parleyctl init`
 * writes there when it sets up a restricted node. */
#define AUTH_FIPS_ALGORITHMS "SHA-256"

/*
 * Applies the FIPS policy to a loaded configuration's auth.algorithms
 * (restricted: crypto/fips's fips_restricted). Not restricted: nothing
 * changes. Restricted: a value left at its default narrows to
 * AUTH_FIPS_ALGORITHMS (config_override: status and `config get` show
 * it); an explicit value naming MD5 is refused, -EPERM with one line in
 * err naming the key, its value and why ("auth.algorithms = MD5, SHA-256:
 * MD5 is not a FIPS approved digest (security.fips restricts SIP and HTTP
 * digest to SHA-256); set auth.algorithms = SHA-256"). Call it on every
 * configuration loaded (start and reload) before it is used.
 */
int auth_config_narrow(struct config *cfg, bool restricted, char *err, size_t errlen);

struct auth;

/* Returns NULL when out of memory, when randomness for the key fails, or
 * when the configuration is refused (see auth_set_config). digest_init()
 * must have run: algorithms are checked for availability. */
struct auth *auth_new(struct clock *clock, const struct auth_config *cfg);
/* Applies a new configuration (reload); issued nonces stay valid until
 * they expire, unless their algorithm is no longer allowed. Returns 0,
 * -EINVAL (no realm, a realm longer than AUTH_REALM_MAX or holding '"',
 * '\' or control characters, no algorithm, an unknown or repeated one),
 * -EPERM (MD5 while restricted: refused by policy, whatever the provider
 * offers), -ENOTSUP (an algorithm digest_init() could not fetch, MD5
 * under a FIPS provider) or -ENOMEM; on failure the previous configuration
 * stays. */
int auth_set_config(struct auth *a, const struct auth_config *cfg);
void auth_free(struct auth *a);

/* Appends the challenge header lines for a 401 (proxy = false:
 * WWW-Authenticate) or 407 (proxy = true: Proxy-Authenticate), each
 * ending in CRLF, one per configured algorithm, all with a fresh nonce,
 * qop="auth", and stale=true when asked:
 *   WWW-Authenticate: Digest realm="R", nonce="N", algorithm=MD5, qop="auth"
 * Returns 0, out's error (-ENOMEM), or -EIO when a nonce could not be
 * made (nothing is appended then). */
int auth_challenge(struct auth *a, bool proxy, bool stale, struct strbuf *out);

enum auth_result {
    AUTH_OK,          /* credentials valid: *user is set */
    AUTH_CHALLENGE,   /* no credentials for our realm: answer 401/407 */
    AUTH_STALE,       /* nonce expired or forgotten: 401/407 with stale=true */
    AUTH_FORBIDDEN,   /* wrong password, unknown user, replayed nc,
                       * algorithm not allowed: 403 */
    AUTH_BAD_REQUEST, /* malformed credentials: 400 */
};

/*
 * How each case is answered; the `why` strings are stable (logs, tests).
 *
 *   CHALLENGE "no credentials": no Authorization for our realm (none,
 *     only other realms, only other schemes such as Basic).
 *   BAD_REQUEST "malformed credentials": no usable credentials for our
 *     realm and at least one Digest header that does not parse.
 *   FORBIDDEN "algorithm not allowed": credentials for our realm, none
 *     with a configured algorithm (unknown names and -sess included; an
 *     absent algorithm means MD5).
 *   FORBIDDEN "algorithm not allowed: MD5 is not FIPS approved": the same
 *     in the restricted mode when the refused credentials used MD5 (an
 *     MD5-only client such as Debian's baresip).
 *   FORBIDDEN "qop=auth required": no qop (RFC 2069 form: without nc
 *     there is no replay protection; our challenges always ask for it).
 *   FORBIDDEN "qop not supported": a qop other than auth (auth-int).
 *   BAD_REQUEST "bad username": empty, longer than AUTH_USER_MAX or than
 *     user_cap allows, or holding control characters (after unescaping).
 *   BAD_REQUEST "digest-uri mismatch": the unescaped uri is not
 *     byte-equal to the Request-URI (RFC 7616 §3.4: 400).
 *   STALE "unknown nonce": not one of ours (undecodable, tampered, from
 *     another instance or an earlier run); treated like an expired one so
 *     the client retries at once with the stale challenge's fresh nonce.
 *   STALE "nonce expired": older than nonce_lifetime_ms.
 *   FORBIDDEN "nonce algorithm mismatch": issued for another algorithm.
 *   BAD_REQUEST "bad nonce count": nc 00000000.
 *   FORBIDDEN "nonce count replayed": nc not above the highest accepted.
 *   STALE "nonce forgotten": a valid nonce the table does not hold, at an
 *     nc above 1, or at any nc when it was issued before (or in the same
 *     millisecond as) the latest entry evicted for room: it may have been
 *     used and forgotten, and accepting nc 1 again would accept a replay.
 *     A never-used nonce that old is refused too; that costs a retry.
 *   FORBIDDEN "authentication failed": wrong password, unknown user,
 *     store failure, stored HA1 not lowercase hex of the right length.
 *   FORBIDDEN "algorithm not available": digest_init() no longer offers
 *     the algorithm (re-initialised after the configuration was set).
 *   FORBIDDEN "internal error": invalid arguments, out of memory.
 *
 * A stale nonce is answered before the password is checked: the retry
 * with a fresh nonce checks it. nc is recorded only once the response has
 * verified, so a client without the password cannot use up nc values.
 */

/* Looks up a user's HA1 for an algorithm: 0, -ENOENT (no such user) or
 * another negative errno (store failure: treated as AUTH_FORBIDDEN and
 * logged). ha1 holds lowercase hex. */
typedef int (*auth_lookup_fn)(void *arg, const char *user, enum digest_alg alg,
                              char ha1[DIGEST_HEX_BUF]);

/*
 * Checks the request's Authorization (proxy = false) or
 * Proxy-Authorization (proxy = true) credentials for our realm: known
 * algorithm among those configured, our nonce (HMAC, age), nc greater than
 * any seen for the nonce, digest-uri equal to the Request-URI, and the
 * response computed from the user's HA1 (compared in constant time).
 * `why` is set to a short reason for the log on every result but AUTH_OK
 * (NULL then; why itself may be NULL). user (user_cap bytes, at least 1)
 * gets the authenticated name on AUTH_OK and "" otherwise. Invalid
 * arguments (NULL auth, request, lookup or user, a response message) are
 * answered AUTH_FORBIDDEN "internal error": failing closed.
 */
enum auth_result auth_check(struct auth *a, const struct sip_msg *req, bool proxy,
                            auth_lookup_fn lookup, void *lookup_arg, char *user, size_t user_cap,
                            const char **why);

/* The parts of a request that digest authentication looks at, whatever
 * the protocol: SIP (auth_check fills it from the message) or HTTP (the
 * web services, RFC 7616). Views borrow the caller's memory. */
#define AUTH_MAX_CREDENTIALS 32 /* headers looked at; clients send one or two */
struct auth_request {
    struct strview method; /* "REGISTER", "POST" */
    struct strview uri;    /* Request-URI (SIP) or request-target (HTTP): the digest-uri */
    struct strview creds[AUTH_MAX_CREDENTIALS]; /* the Authorization header values */
    size_t ncreds;
};
/* auth_check for any protocol; the same rules and results. */
enum auth_result auth_check_request(struct auth *a, const struct auth_request *req,
                                    auth_lookup_fn lookup, void *lookup_arg, char *user,
                                    size_t user_cap, const char **why);
/* auth_claimed_user for any protocol. */
int auth_claimed_user_request(const struct auth *a, const struct auth_request *req, char *user,
                              size_t user_cap);

/* The user name the request's credentials for our realm claim (unescaped,
 * plausible), whether or not they would verify: 0 with user set, or
 * -ENOENT when there are none (or none usable). Cheap: no lookup, no hash.
 * The password-guessing throttle is keyed by it before anything is
 * checked. */
int auth_claimed_user(const struct auth *a, const struct sip_msg *req, bool proxy, char *user,
                      size_t user_cap);

/* Is `why` (from auth_check) a failed password check — the outcome a
 * guess produces, which the throttle counts? */
bool auth_why_is_wrong_password(const char *why);

/* Number of nonces in the nc table (for status and tests). */
size_t auth_nonce_count(const struct auth *a);

#endif
