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
#include "core/strbuf.h"
#include "crypto/digest.h"
#include "sip/msg.h"

#define AUTH_MAX_ALGORITHMS 2

struct auth_config {
    const char *realm;                          /* the SIP domain */
    enum digest_alg algorithms[AUTH_MAX_ALGORITHMS];
    size_t nalgorithms;                         /* offered in this order */
    uint64_t nonce_lifetime_ms;
    size_t max_nonces;                          /* nc table bound (0: a default) */
};

struct auth;

/* Returns NULL when out of memory or when randomness for the key fails. */
struct auth *auth_new(struct clock *clock, const struct auth_config *cfg);
/* Applies a new configuration (reload); issued nonces stay valid until
 * they expire, unless their algorithm is no longer allowed. */
int auth_set_config(struct auth *a, const struct auth_config *cfg);
void auth_free(struct auth *a);

/* Appends the challenge header lines for a 401 (proxy = false:
 * WWW-Authenticate) or 407 (proxy = true: Proxy-Authenticate), each
 * ending in CRLF, one per configured algorithm, all with a fresh nonce,
 * qop="auth", and stale=true when asked. */
void auth_challenge(struct auth *a, bool proxy, bool stale, struct strbuf *out);

enum auth_result {
    AUTH_OK,              /* credentials valid: *user is set */
    AUTH_CHALLENGE,       /* no credentials for our realm: answer 401/407 */
    AUTH_STALE,           /* nonce expired or forgotten: 401/407 with stale=true */
    AUTH_FORBIDDEN,       /* wrong password, unknown user, replayed nc,
                           * algorithm not allowed: 403 */
    AUTH_BAD_REQUEST,     /* malformed credentials: 400 */
};

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
 * `why` is set to a short reason for the log on every result but AUTH_OK.
 */
enum auth_result auth_check(struct auth *a, const struct sip_msg *req, bool proxy,
                            auth_lookup_fn lookup, void *lookup_arg, char *user, size_t user_cap,
                            const char **why);

/* Number of nonces in the nc table (for status and tests). */
size_t auth_nonce_count(const struct auth *a);

#endif
