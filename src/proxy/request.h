/*
 * proxy/request — a request Parley works on beyond its dispatch
 * (forwarding, waiting for a partner): admitted within the transaction
 * bounds and the sender's own (limits.transactions_per_user), alive while
 * its server transaction, a branch's client transaction or a partner's
 * waiting list holds it, freed by the last one out. Uses proxy/call and
 * proxy/reject.
 */
#ifndef PARLEY_PROXY_REQUEST_H
#define PARLEY_PROXY_REQUEST_H

#include "sip/txn.h"

struct proxy;
struct proxy_request;

/* The state of st's request, worked on behalf of sender (user@domain):
 * within the transaction bounds, or 503. A BYE is never refused for load:
 * it ends what holds state, and refusing it would keep the call up. An
 * INVITE is answered 100 Trying. Answers itself when it returns NULL. */
struct proxy_request *proxy_request_new(struct proxy *p, struct sip_server_txn *st,
                                        const char *sender);
/* Its work is done (a final response went up): it no longer counts
 * against its sender's bound. */
void proxy_request_done(struct proxy_request *pr);
/* Frees pr once nothing holds it any more. */
void proxy_request_maybe_free(struct proxy_request *pr);

#endif
