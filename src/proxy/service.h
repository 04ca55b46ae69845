/*
 * proxy/service — the media relay authentication service (MRAS): a
 * SERVICE request from an authenticated user over TLS gets time-limited
 * relay credentials. Uses proxy/reject.
 */
#ifndef PARLEY_PROXY_SERVICE_H
#define PARLEY_PROXY_SERVICE_H

#include <stdbool.h>

#include "sip/msg.h"
#include "sip/txn.h"

struct proxy;

/* Is req a SERVICE request of the MRAS content type? */
bool proxy_service_is_mras(const struct sip_msg *req);
/* Answers st (user: the authenticated user) with credentials, or why not. */
void proxy_service_mras(struct proxy *p, struct sip_server_txn *st, const struct sip_msg *req,
                        const char *user);

#endif
