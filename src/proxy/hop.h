/*
 * proxy/hop — what the proxy does to a message at its own hop: is a URI
 * us, how Parley names itself on a connection (Via, Record-Route), the
 * Route headers that name us, credentials and identity headers that must
 * not travel on, and the loop check. Leaf of the folder: uses only the
 * proxy's state.
 */
#ifndef PARLEY_PROXY_HOP_H
#define PARLEY_PROXY_HOP_H

#include <stdbool.h>
#include <stdint.h>

#include "core/strbuf.h"
#include "sip/msg.h"

struct proxy;

/* Our domain, sip.DOMAIN, the advertised name (at a listener's port) or a
 * listener's address. */
bool proxy_hop_uri_is_us(struct proxy *p, const struct sip_uri *uri);
/* "HOST:PORT" by which Parley is reached over conn (see proxy_env). */
void proxy_hop_self_address(struct proxy *p, uint64_t conn, char *out, size_t cap);
/* Our Via value for a request leaving on conn, with the given branch. */
void proxy_hop_via(struct proxy *p, uint64_t conn, const char *branch, struct strbuf *out);
/* The Record-Route value naming Parley on conn (0: a connection still to
 * be made to a partner, whose side is the server-to-server listener). */
void proxy_hop_record_route(struct proxy *p, uint64_t conn, char *out, size_t cap);
/* Removes the Route headers that name us (loose routing, RFC 3261 §16.4):
 * the client's outbound proxy route and our own Record-Route. Returns
 * false when a Route to somewhere else remains. */
bool proxy_hop_pop_own_routes(struct proxy *p, struct sip_msg *req);
/* Authorization and Proxy-Authorization for our realm: they were for us,
 * and the next hop could test password guesses against them. */
void proxy_hop_strip_own_credentials(struct proxy *p, struct sip_msg *req);
/* P-Asserted-Identity, P-Preferred-Identity, Identity, Identity-Info,
 * Remote-Party-ID: identities only Parley asserts. */
void proxy_hop_strip_identity_headers(struct sip_msg *req);

/* A loop is our own Via on a request that comes back unchanged: our
 * branches carry a hash of what identifies the request as we got it. */
#define PROXY_HOP_BRANCH_PREFIX "z9hG4bKpl"
void proxy_hop_loop_hash(const struct sip_msg *req, char out[17]);
bool proxy_hop_is_loop(const struct sip_msg *req, const char *hash);

#endif
