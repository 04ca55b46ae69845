/*
 * proxy/call — a call from its INVITE to its end: the list of calls in
 * progress (parleyctl calls) and the record handed to the call log when it
 * ends. A call is shared by the INVITE's request and the dialogs it made,
 * counted by references. Leaf of the folder.
 */
#ifndef PARLEY_PROXY_CALL_H
#define PARLEY_PROXY_CALL_H

#include "sip/msg.h"

struct proxy;
struct proxy_call;

/* A call attempt of caller to callee (user@domain), listed as in progress;
 * one reference, the INVITE's. NULL when out of memory. */
struct proxy_call *proxy_call_new(struct proxy *p, const struct sip_msg *invite, const char *caller,
                                  const char *callee);
/* The call ended (once; later calls do nothing): unlisted, logged, and
 * handed to the call log with the reason ("BYE from caller", "486 Busy
 * Here"). NULL call: nothing. */
void proxy_call_finish(struct proxy *p, struct proxy_call *call, const char *reason);
/* The call answered now, if not answered before. */
void proxy_call_answered(struct proxy *p, struct proxy_call *call);
/* Drops a reference; the last one frees the call. NULL: nothing. */
void proxy_call_release(struct proxy_call *call);

#endif
