/*
 * proxy/reject — refusals and their log lines. Anyone can make Parley
 * refuse at will, so every line a stranger causes is bounded: at most a
 * few per second per source and reason, with the count held back since.
 * Leaf of the folder.
 */
#ifndef PARLEY_PROXY_REJECT_H
#define PARLEY_PROXY_REJECT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/log_limit.h"
#include "core/netaddr.h"
#include "sip/msg.h"
#include "sip/txn.h"

struct proxy;

/* May a line about what a remote party on conn caused (`what`) be written
 * now, under the limiter ll? Fills peer ("" when the connection is gone)
 * and *suppressed (lines held back since the last one). */
bool proxy_reject_log_allowed(struct proxy *p, struct log_limit *ll, uint64_t conn,
                              const char *what, uint64_t *suppressed, char peer[NETADDR_STRLEN]);
/* Logs sip.rejected for req on conn (bounded). */
void proxy_reject_log(struct proxy *p, const struct sip_msg *req, uint64_t conn, int status,
                      const char *why);
/* Answers st with status and reason phrase (NULL: the standard one), and
 * logs why (bounded). */
void proxy_reject(struct proxy *p, struct sip_server_txn *st, int status, const char *reason,
                  const char *why);
/* A transaction bound is full (`bound` names it): 503 with Retry-After,
 * logged at most a few times a second with the count refused. */
void proxy_reject_overload(struct proxy *p, struct sip_server_txn *st, const char *bound);

#endif
