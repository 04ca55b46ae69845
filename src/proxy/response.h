/*
 * proxy/response — what goes back to the sender of a proxied request: a
 * branch's provisional or 2xx passed on at once, failures held until every
 * branch has ended and the best of them sent (RFC 3261 §16.7), or a status
 * Parley decided itself (a timeout, a lost connection, the media policy),
 * and what the outcome means for the call log. Uses proxy/dialog,
 * proxy/call and proxy/media.
 */
#ifndef PARLEY_PROXY_RESPONSE_H
#define PARLEY_PROXY_RESPONSE_H

#include <stdbool.h>

#include "sip/msg.h"

struct proxy_request;
struct proxy_branch;

/* RFC 3261 §16.7 step 6: 6xx beats everything, then the lowest class. */
bool proxy_response_better(int candidate, int best);
/* Sends a branch's response (b may be NULL) to the sender now, without our
 * Via, with the identity Parley asserts for that branch. */
void proxy_response_forward(struct proxy_request *pr, struct proxy_branch *b, struct sip_msg *resp,
                            int status);
/* A branch's final failure (resp NULL: the timer fired or its connection
 * went): kept when it is the best so far. */
void proxy_response_keep(struct proxy_request *pr, struct proxy_branch *b, struct sip_msg *resp,
                         int status);
/* A status Parley decided (with the warning that says why, or NULL to
 * keep the one there): kept when it is the best so far — or, or_same,
 * when it equals the best, replacing what a branch sent (a refusal that
 * must be Parley's own, with its Warning). */
void proxy_response_decide(struct proxy_request *pr, int status, const char *warning, bool or_same);
/* Every branch has ended: the best final response goes up (480 when there
 * is none), and a call that was not answered ends with it. */
void proxy_response_finish(struct proxy_request *pr);
/* CANCEL (with the Reason, or NULL) to every branch still ringing. */
void proxy_response_cancel_pending(struct proxy_request *pr, const char *reason);
/* The request was answered with status (text its phrase) without a 2xx: a
 * call attempt ends, logged with why. */
void proxy_response_ends_call(struct proxy_request *pr, int status, const char *text);

#endif
