/*
 * proxy/branch — one forked leg of a proxied request: the copy sent to one
 * device or partner (its offer checked against the media policy, our Via
 * and, across listener kinds, a second Record-Route), and what its
 * responses mean — the media policy on their answers, the dialogs they
 * make, what goes upstream. Uses proxy/response, proxy/dialog,
 * proxy/hangup, proxy/media, proxy/request and proxy/hop.
 */
#ifndef PARLEY_PROXY_BRANCH_H
#define PARLEY_PROXY_BRANCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct proxy_request;

/* Sends one copy of `bytes` (the request as forwarded) on conn, to
 * target_uri (NULL: the Request-URI as it is), with a branch carrying
 * loop_hash. False when no branch was made: the branch limit, a refused
 * offer (then kept as pr's best response: 488 or 400), or the transaction
 * could not start. */
bool proxy_branch_fork(struct proxy_request *pr, const char *bytes, size_t len,
                       const char *target_uri, uint64_t conn, const char *loop_hash);

#endif
