/*
 * proxy/route — where a request goes: an out-of-dialog request to every
 * device its callee registered (or to a partner's server), an in-dialog
 * request along the dialog Parley routed — only from a party of that
 * dialog —, the ACK of a 2xx statelessly along its dialog, and CANCEL to
 * the branches still ringing. Answers what it refuses. Uses
 * proxy/federation, proxy/branch, proxy/response, proxy/request,
 * proxy/dialog, proxy/hangup, proxy/media, proxy/hop and proxy/reject.
 */
#ifndef PARLEY_PROXY_ROUTE_H
#define PARLEY_PROXY_ROUTE_H

#include <stdint.h>

#include "sip/msg.h"
#include "sip/txn.h"

struct proxy;
struct partner;

/* An out-of-dialog request of caller (user@domain) to callee_user, one of
 * ours: forked to each of the callee's devices. */
void proxy_route_new_request(struct proxy *p, struct sip_server_txn *st, struct sip_msg *req,
                             const char *caller, const char *callee_user);
/* An out-of-dialog request of one of our users to a partner's user. */
void proxy_route_to_partner(struct proxy *p, struct sip_server_txn *st, struct sip_msg *req,
                            const char *caller, struct partner *pt);
/* A request inside a dialog (a To tag). */
void proxy_route_in_dialog(struct proxy *p, struct sip_server_txn *st, struct sip_msg *req);
/* The ACK of a 2xx (the transaction layer took those of failures); takes
 * ack. */
void proxy_route_ack(struct proxy *p, uint64_t conn, struct sip_msg *ack);
/* CANCEL of invite_st (NULL: no such transaction, 481). */
void proxy_route_cancel(struct proxy *p, struct sip_server_txn *cancel_st,
                        struct sip_server_txn *invite_st);

#endif
