/*
 * registrar — bindings of users to their devices (RFC 3261 §10), in memory.
 *
 * A binding remembers the connection its REGISTER arrived on: requests for
 * that device go back over that same connection (RFC 5626-style flow
 * reuse), because clients behind NAT, and clients without a certificate of
 * their own, cannot accept a new one. When the connection closes, the
 * bindings that depend on it end. Bindings expire on the clock given to
 * the timer heap; after a restart clients simply register again.
 *
 * Belongs to the SIP core thread.
 */
#ifndef PARLEY_REGISTRAR_REGISTRAR_H
#define PARLEY_REGISTRAR_REGISTRAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/netaddr.h"
#include "core/strbuf.h"
#include "core/timer.h"
#include "sip/msg.h"

struct registrar_config {
    const char *domain;
    uint32_t min_expires;     /* below: 423 Interval Too Brief */
    uint32_t max_expires;     /* above: lowered to this */
    uint32_t default_expires; /* when the request names none */
    size_t max_per_user;      /* devices per user */
    size_t max_total;
};

/* What a binding knows about the connection it came over. */
struct registrar_flow {
    uint64_t conn;
    struct netaddr source;
    const char *transport;   /* "TLS" or "TCP" */
    const char *tls_version; /* "" without TLS */
};

struct binding {
    const char *user;
    const char *contact;  /* the Contact URI as registered */
    const char *instance; /* +sip.instance, or "" */
    const char *user_agent;
    uint64_t conn;
    struct netaddr source;
    char transport[8];
    char tls_version[16];
    int64_t registered_at; /* wall clock, seconds */
    int64_t expires_at;    /* wall clock, seconds */
};

/* Told when a binding ends (expiry, un-register, connection closed), e.g.
 * so presence can drop what the device published. */
typedef void (*registrar_removed_fn)(void *arg, const struct binding *b, const char *reason);

struct registrar;

struct registrar *registrar_new(struct timer_heap *timers, const struct registrar_config *cfg);
void registrar_set_config(struct registrar *r, const struct registrar_config *cfg);
void registrar_on_removed(struct registrar *r, registrar_removed_fn fn, void *arg);
/* Told when a new binding is made (not on refreshes). */
typedef void (*registrar_added_fn)(void *arg, const struct binding *b);
void registrar_on_added(struct registrar *r, registrar_added_fn fn, void *arg);
void registrar_free(struct registrar *r);

/*
 * Applies a REGISTER from the authenticated `user` (the caller has checked
 * that To names that user). Sets *status (200, 400, 403, 423, 500) and
 * *reason; appends header lines to `headers` (for 200: every current
 * Contact with its expires; for 423: Min-Expires).
 */
void registrar_register(struct registrar *r, const char *user, const struct sip_msg *req,
                        const struct registrar_flow *flow, int *status, const char **reason,
                        struct strbuf *headers);

/* The user's current bindings, most recent first; returns how many there
 * are (may exceed max). Pointers stay valid until the registrar changes. */
size_t registrar_lookup(struct registrar *r, const char *user, const struct binding **out,
                        size_t max);
/* The binding whose contact URI equals uri (RFC 3261 §19.1.4), if any. */
const struct binding *registrar_find_contact(struct registrar *r, const struct sip_uri *uri);
/* The binding of user on connection conn, if any. */
const struct binding *registrar_find_flow(struct registrar *r, const char *user, uint64_t conn);
/* Does any binding use this connection? */
bool registrar_conn_in_use(struct registrar *r, uint64_t conn);

/* Ends every binding that depends on the connection. */
void registrar_conn_closed(struct registrar *r, uint64_t conn);

/* Every binding, in no particular order; stop by returning false. */
void registrar_foreach(struct registrar *r, bool (*fn)(const struct binding *b, void *arg),
                       void *arg);
size_t registrar_count(const struct registrar *r);

#endif
