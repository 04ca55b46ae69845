/*
 * proxy/number — requests for phone numbers: a tel: URI, a sip: URI of
 * this domain with user=phone, or one whose user part is dialled digits
 * and no user's name. What was dialled goes through the dial plan
 * (dialplan_normalise); a number a user owns reaches that user like a
 * call to their name; any other number goes by the dial plan's routes,
 * for callers whose outbound rights allow it, to the back-to-back user
 * agent (proxy/b2bua) and the route's trunks.
 */
#ifndef PARLEY_PROXY_NUMBER_H
#define PARLEY_PROXY_NUMBER_H

#include <stddef.h>

#include "sip/msg.h"
#include "sip/txn.h"

struct proxy;

/* A new request from authenticated user `caller_user` (NULL for a
 * partner's user: numbers reach only local users then). Returns 1 when it
 * is for a number a user owns (*callee is that user), 0 when it is not for
 * a number (nothing done), -1 when it was answered: 404 (no user owns the
 * number and no route takes it), 403 (the caller may not call it out),
 * 484 (not a number); or it went to the back-to-back user agent (a route
 * takes it: proxy_b2bua_to_trunks answers it). */
int proxy_number_route(struct proxy *p, struct sip_server_txn *st, const struct sip_msg *req,
                       const char *caller_user, char *callee, size_t cap);

#endif
