/*
 * proxy — Parley's SIP core: the registrar's front door and a stateful
 * proxy (RFC 3261 §16) for the users of our domain.
 *
 * It authenticates requests (401 for REGISTER, 407 for the rest; ACK and
 * CANCEL are not challenged), asserts the caller's identity
 * (P-Asserted-Identity, From must match), forks requests to every device a
 * user registered — over the connection each device registered on —,
 * selects the best response, cancels the other branches on a 2xx, and keeps
 * the dialogs of the calls it routes so in-dialog requests find their way
 * and the call log knows how each call went.
 *
 * Belongs to the SIP core thread. What it needs from the outside comes in
 * struct proxy_env, so it does not depend on the daemon's runtime.
 */
#ifndef PARLEY_PROXY_PROXY_H
#define PARLEY_PROXY_PROXY_H

#include <stdbool.h>
#include <stdint.h>

#include "core/timer.h"
#include "net/conn.h"
#include "proxy/env.h"
#include "proxy/trunk.h"
#include "registrar/registrar.h"
#include "sip/msg.h"

struct proxy;

struct proxy *proxy_new(struct timer_heap *timers, const struct proxy_env *env,
                        const struct proxy_config *cfg, struct registrar *registrar,
                        struct auth *auth);
void proxy_set_config(struct proxy *p, const struct proxy_config *cfg);
void proxy_free(struct proxy *p);

struct presence;
struct dialplan;
/* Hands SUBSCRIBE and PUBLISH of the presence event package to the
 * presence server. */
void proxy_set_presence(struct proxy *p, struct presence *presence);
/* The dial plan numbers go through (borrowed: the caller keeps it alive
 * until it sets another or frees the proxy); NULL: numbers as dialled. */
void proxy_set_dialplan(struct proxy *p, const struct dialplan *dp);
/* The trunks in force, from the store (replaced whole; a trunk that keeps
 * its gateway and transport keeps its connection). 0, or -EINVAL with err
 * (the trunks in force stay). */
int proxy_set_trunks(struct proxy *p, const struct proxy_trunk_def *defs, size_t n, char *err,
                     size_t errlen);
/* May a TCP connection from peer use sip.trunk_tcp_listen (a TCP trunk's
 * address)? */
bool proxy_trunk_source_allowed(struct proxy *p, const struct netaddr *peer);
/* The trunks and their state, for status (a new JSON array). */
json_t *proxy_trunks_status(struct proxy *p);
/* The transaction layer, for other modules that send requests. */
struct sip_txn_layer *proxy_txn_layer(struct proxy *p);

/* A request or response arrived on conn; the proxy takes msg. */
void proxy_on_message(struct proxy *p, uint64_t conn, struct sip_msg *msg);
/* The media engine's stream went silent past media.timeout: its call is
 * ended with a BYE to both parties (Reason: SIP;cause=408). */
void proxy_media_timed_out(struct proxy *p, uint64_t stream);
/* A connection (ours to a partner, or accepted) is established. */
void proxy_conn_opened(struct proxy *p, uint64_t conn, const struct conn_info *info);
/* A connection closed: its transactions, bindings and dialogs end. */
void proxy_conn_closed(struct proxy *p, uint64_t conn, const char *reason);

/* Calls fn for each call not ended yet, newest first; stops when fn
 * returns false. */
void proxy_foreach_call(const struct proxy *p, bool (*fn)(const struct proxy_call_info *, void *),
                        void *arg);

/* Figures for status. */
void proxy_stats(const struct proxy *p, struct proxy_stats *out);

#endif
