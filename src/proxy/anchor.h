/*
 * proxy/anchor — anchored media (media.anchor = always): the SDP of every
 * offer and answer between users is rewritten so that each party sends
 * its media to the media engine (src/anchor) and gets a key of Parley's
 * for its leg alone. Leg 0 is the caller's (the side that sent the
 * dialog-creating request), leg 1 the callee's.
 *
 * A set is the engine streams of one offer/answer exchange's media
 * sections: made for each branch an INVITE is forked to (each branch's
 * copy gets ports of its own), kept by the dialog the answering branch
 * makes, released with the rest. Uses proxy/media (the suites the policy
 * allows) and proxy/hop.
 */
#ifndef PARLEY_PROXY_ANCHOR_H
#define PARLEY_PROXY_ANCHOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sip/msg.h"

struct proxy;
struct proxy_anchor_set;

/* How a leg is protected: by the media policy (a user's leg, the
 * default), or by a trunk's srtp_mode (a gateway's leg: SRTP only; SRTP
 * offered as RTP/AVP with a=crypto, RFC 8643, and whatever the gateway
 * answers taken; plain RTP). */
enum proxy_anchor_leg {
    PROXY_ANCHOR_LEG_POLICY,
    PROXY_ANCHOR_LEG_SRTP_REQUIRED,
    PROXY_ANCHOR_LEG_SRTP_OPTIONAL,
    PROXY_ANCHOR_LEG_PLAIN,
};

/* An empty set for call_id, its streams counted against user (the
 * back-to-back user agent makes its own, to set a leg's mode first).
 * 0 or -ENOMEM. */
int proxy_anchor_new(struct proxy_anchor_set **out, const char *call_id, const char *user);
void proxy_anchor_set_leg(struct proxy_anchor_set *set, int leg, enum proxy_anchor_leg mode);
/* What the leg negotiated, per section ("SRTP AES_CM_128_HMAC_SHA1_80",
 * "RTP"), into out; returns its length (0: nothing yet). */
size_t proxy_anchor_describe_leg(const struct proxy_anchor_set *set, int leg, char *out,
                                 size_t cap);

/* The party of leg is to be another one (a call that fails over to the
 * next trunk): the leg's protection is decided again by the next offer,
 * and Parley's key for it is dropped (the next party never gets the key
 * the last one had). The other leg — its ports, its key, the SDP its
 * party has — stays. 0 or -EIO. */
int proxy_anchor_reset_leg(struct proxy *p, struct proxy_anchor_set *set, int leg);

/* Is media anchored for new calls (media.anchor = always and an engine)? */
bool proxy_anchor_enabled(const struct proxy *p);

/* An offer in m from the caller's side (from_caller) or the callee's,
 * that came in on in_conn and is about to leave on out_conn: the
 * offerer's leg learns where the offerer (and its signalling) is
 * is and its key; m's SDP is rewritten toward the other leg (Parley's
 * address, that leg's ports and Parley's key for it). *set is made on the
 * first offer (call_id and user name the streams). Returns 0, or 488 /
 * 503 / 500 with warning saying why (m unchanged). */
int proxy_anchor_offer(struct proxy *p, struct proxy_anchor_set **set, bool from_caller,
                       struct sip_msg *m, uint64_t in_conn, uint64_t out_conn, const char *call_id,
                       const char *user, char *warning, size_t cap);
/* The answer to the last offer, in m from the other side: that leg
 * learns where its party is; m's SDP is rewritten toward the offerer's
 * leg. Same returns. */
int proxy_anchor_answer(struct proxy *p, struct proxy_anchor_set *set, bool from_caller,
                        struct sip_msg *m, uint64_t in_conn, char *warning, size_t cap);
/* A retransmission of the last offer or answer from that side (a 2xx
 * repeated by its answerer): rewritten as the first time. NULL set: 0. */
int proxy_anchor_again(struct proxy *p, struct proxy_anchor_set *set, bool from_caller,
                       struct sip_msg *m, uint64_t in_conn, uint64_t out_conn, char *warning,
                       size_t cap);
/* Does the set hold the engine stream id? */
bool proxy_anchor_has_stream(const struct proxy_anchor_set *set, uint64_t stream);
/* Ends the set's streams and frees it (NULL: nothing). */
/* The figures of the set's streams for the call log, as JSON text
 * ([{"section": N, "legs": [...]}], anchor_stream_legs), to free(); NULL
 * when there are none. */
char *proxy_anchor_figures(struct proxy *p, const struct proxy_anchor_set *set);
void proxy_anchor_release(struct proxy *p, struct proxy_anchor_set *set, const char *reason);

#endif
