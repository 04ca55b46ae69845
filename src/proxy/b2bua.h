/*
 * proxy/b2bua — the back-to-back user agent between users and trunks.
 *
 * A call that crosses a trunk is two dialogs, each with its own Call-ID,
 * tags and CSeq space: side A toward whoever called (Parley the UAS),
 * side B toward whom it called (Parley the UAC). Outbound, A is a user
 * and B a gateway, tried trunk after trunk along the route; inbound, A is
 * a gateway and B the user's devices, forked to each binding.
 *
 * Nothing of one side reaches the other as it came: requests and
 * responses are built anew from sip/dialog views (the gateway never sees
 * a user's SIP identity, contacts, digest or keys; the user sees the
 * caller's number, asserted by the trunk). Every call is anchored: the
 * user's leg is under the media policy with Parley's own keys, the
 * gateway's leg follows the trunk's srtp_mode (proxy/anchor).
 *
 * Toward a gateway Parley sends PRACK for reliable provisionals (RFC 3262)
 * and sends reliable ones to a gateway that calls in requiring them; it
 * runs a session timer (RFC 4028: outbound it offers Session-Expires 1800,
 * refresher uac, Min-SE 90, and follows a 422; inbound it grants what the
 * gateway asks for). A re-INVITE or UPDATE with an offer from one
 * side goes to the other as Parley's own; one that crosses Parley's own
 * gets 491. Without an offer (a session refresh) Parley answers it itself.
 */
#ifndef PARLEY_PROXY_B2BUA_H
#define PARLEY_PROXY_B2BUA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sip/msg.h"
#include "sip/txn.h"

struct proxy;
struct proxy_trunk;

/* Session timer Parley asks of a gateway (RFC 4028). */
#define PROXY_B2BUA_SESSION_EXPIRES 1800
#define PROXY_B2BUA_MIN_SE          90

/* An INVITE from user `caller_user` for `number` (E.164), which the route
 * `route` sends through trunks (tried in order). Answers st itself. */
void proxy_b2bua_to_trunks(struct proxy *p, struct sip_server_txn *st, const struct sip_msg *req,
                           const char *caller_user, const char *number, const char *route,
                           const char *const *trunks, size_t ntrunks);

/* An out-of-dialog request from a gateway of trunk t for local user
 * `callee` (the owner of the number it called). Answers st itself. */
void proxy_b2bua_from_trunk(struct proxy *p, struct sip_server_txn *st, const struct sip_msg *req,
                            struct proxy_trunk *t, const char *callee);

/* A request inside a back-to-back call's dialog (either side): handled
 * (answered) and true, or false when it belongs to none. */
bool proxy_b2bua_in_dialog(struct proxy *p, struct sip_server_txn *st, const struct sip_msg *req);
/* The ACK of a 2xx Parley sent: true (and freed) when it was one of ours. */
bool proxy_b2bua_ack(struct proxy *p, uint64_t conn, struct sip_msg *ack);
/* A CANCEL for an INVITE whose context is a back-to-back call's. */
void proxy_b2bua_cancel(struct proxy *p, struct sip_server_txn *cancel_st,
                        struct sip_server_txn *invite_st);
/* A server transaction whose context is a back-to-back call's ends
 * (answered, or its connection went first). */
void proxy_b2bua_server_terminated(struct proxy *p, struct sip_server_txn *st);
/* Is the transaction's context a back-to-back call's? */
bool proxy_b2bua_owns(const struct sip_server_txn *st);

/* A trunk's connection is up (send what waited) or failed (the calls that
 * waited try their next trunk). */
void proxy_b2bua_trunk_ready(struct proxy *p, struct proxy_trunk *t, bool up);
/* The trunks were replaced (a reload): a BYE waiting for a trunk that is
 * gone, or is now another gateway or transport, is given up. */
void proxy_b2bua_trunks_changed(struct proxy *p);
/* A media stream of a back-to-back call timed out: the call ends (BYE
 * both ways, Reason 408). True when the stream was one of theirs. */
bool proxy_b2bua_media_timed_out(struct proxy *p, uint64_t stream);

/* Number of back-to-back calls (any state), for status and tests. */
size_t proxy_b2bua_count(const struct proxy *p);
/* Ends every call (server stopping) and frees them. */
void proxy_b2bua_free_all(struct proxy *p);

#endif
