/*
 * proxy/federation, the part the proxy's own files use: sending a request
 * to a partner (at once, or once the connection is made), the checks on
 * requests from partners, connection events. Uses proxy/branch,
 * proxy/response, proxy/request and proxy/reject.
 */
#ifndef PARLEY_PROXY_FEDERATION_PRIV_H
#define PARLEY_PROXY_FEDERATION_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include "net/conn.h"
#include "proxy/federation.h"
#include "sip/msg.h"
#include "sip/txn.h"

struct partner;
struct proxy_request;

struct partner *proxy_federation_find(struct proxy *p, const char *domain);
/* Does the connection's verified certificate prove `domain` (a partner)? */
bool proxy_federation_conn_proves(struct proxy *p, uint64_t conn, const char *domain);
/* Sends pr's held request to the partner now, or once connected; a
 * partner that cannot be reached answers it (503). */
void proxy_federation_send(struct proxy *p, struct partner *pt, struct proxy_request *pr);
/* pr no longer waits for a partner connection (cancelled, or its server
 * transaction ended). */
void proxy_federation_forget_waiter(struct proxy_request *pr);
void proxy_federation_conn_opened(struct proxy *p, uint64_t conn, const struct conn_info *info);
void proxy_federation_conn_closed(struct proxy *p, uint64_t conn, const char *reason);
/* Is the request (From in from_domain) from a partner, over a connection
 * that proves it, with identities of that domain only? Answers 403 and
 * returns false when not. */
bool proxy_federation_check_inbound(struct proxy *p, struct sip_server_txn *st,
                                    const struct sip_msg *req, const char *from_domain);
void proxy_federation_free(struct proxy *p);

#endif
