/*
 * anchor — the media engine: RTP and RTCP streams that Parley itself
 * receives, checks and sends on, each leg protected with keys of its own.
 *
 * A stream is one media section of a call with two legs, 0 (the caller's
 * side) and 1 (the callee's). Each leg has its local ports (an even RTP
 * port and the next one for RTCP, from media.port_range on media.address),
 * its remote addresses (from that party's SDP, then latched), and its
 * protection: plain RTP/RTCP, or SDES-SRTP with two sessions — the party's
 * key (from its SDP) to unprotect what it sends, and a key Parley
 * generated for this leg alone to protect what Parley sends it. No key
 * crosses from one leg to the other; no client learns another's key.
 *
 * A packet read on one leg is checked (an SRTP packet must authenticate
 * and not be a replay; a plain one must be well formed) and must come from
 * where that leg's party is: its SDP address at first, then the source of
 * a packet that authenticated under the leg's key (symmetric RTP behind
 * NAT); a plain leg latches only to its SDP address, or to the first
 * source with media.latch_plain = first. Anything else is dropped and
 * counted, never forwarded. What passes is protected for the other leg and
 * sent from that leg's port.
 *
 * The engine runs on media.workers threads of its own, each with its event
 * loop and the sockets of the streams it owns; the packet path reads and
 * writes in batches (recvmmsg/sendmmsg), allocates nothing and takes no
 * lock. Every function below is called from the daemon's core thread;
 * the core learns of timed-out streams through anchor_events.
 */
#ifndef PARLEY_ANCHOR_ANCHOR_H
#define PARLEY_ANCHOR_ANCHOR_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "core/netaddr.h"
#include "rtp/srtp.h"

struct anchor;
struct event_base;

/* What the engine tells the core (on the core's event loop). */
struct anchor_events {
    void *arg;
    /* No RTP or RTCP on any leg of the stream for media.timeout since both
     * parties described themselves (and it is not on hold): its call
     * should end. Told once, until a party describes itself again. */
    void (*timed_out)(void *arg, uint64_t stream, const char *call_id);
    /* Not an event: where the SRTP algorithms are fetched from and the
     * session keys drawn (the server's crypto/fips context and property
     * query; NULL: OpenSSL's default context, for tests). Must outlive the
     * engine. */
    OSSL_LIB_CTX *libctx;
    const char *propq;
};

/* Binds nothing yet (ports are taken per stream) but checks the address
 * and the port range, and starts the threads. The core's event base
 * carries the engine's messages back. Returns 0 or a negative errno with
 * one line in err. */
int anchor_start(const struct config *cfg, struct event_base *core, const struct anchor_events *ev,
                 struct anchor **out, char *err, size_t errlen);
/* What a reload may change: timeout, replay window, latching, bounds (for
 * new streams where it matters). */
void anchor_reload(struct anchor *a, const struct config *cfg);
/* Ends every stream and stops the threads. NULL is a no-op. */
void anchor_stop(struct anchor *a);

/* --- streams (core thread) -------------------------------------------------- */

enum anchor_protection {
    ANCHOR_PLAIN,
    ANCHOR_SRTP, /* SDES-SRTP */
};

/* How Parley appears to one leg's party: what its SDP toward that party
 * says. */
struct anchor_local {
    struct netaddr rtp, rtcp; /* media.public_address and the leg's ports */
    enum anchor_protection protection;
    enum rtp_srtp_suite suite;
    char inline_key[RTP_SRTP_INLINE_MAX]; /* Parley's key for this leg (a SECRET) */
};

/* What one leg's party said in its SDP. */
struct anchor_remote {
    struct netaddr rtp, rtcp; /* rtcp = rtp + 1 unless a=rtcp said otherwise */
    bool rtcp_mux;
    bool on_hold; /* sendonly, recvonly or inactive: exempt from the timeout */
    enum anchor_protection protection;
    enum rtp_srtp_suite suite;
    uint8_t key[RTP_SRTP_MAX_KEY], salt[RTP_SRTP_MAX_SALT]; /* the party's (a SECRET) */
    /* The IP the party's signalling came from, when known: a source there
     * (or at the SDP's address) may take the leg at once; any other only
     * once the leg's own address has been quiet (see anchor_path.c). */
    bool have_signal_ip;
    struct netaddr signal_ip;
    /* The party must learn nothing of the other's identity (a PSTN
     * gateway): the RTCP sent to it has its SDES text and BYE reasons
     * overwritten (rtp_rtcp_scrub). */
    bool private_party;
};

/* A new stream for call_id on behalf of user (counted against
 * media.max_streams and media.max_streams_per_user): ports for both legs
 * taken and bound. Returns 0 with *id, -EAGAIN (a bound reached: logged),
 * -EADDRINUSE (no free ports) or -ENOMEM. */
int anchor_stream_new(struct anchor *a, const char *call_id, const char *user, uint64_t *id);
/* Parley's side of leg (0 or 1) with that protection: generates Parley's
 * key for the leg the first time (or when the suite changes) and fills
 * out for the SDP toward that leg's party. 0, -ENOENT, -EIO. */
int anchor_leg_local(struct anchor *a, uint64_t id, int leg, enum anchor_protection protection,
                     enum rtp_srtp_suite suite, struct anchor_local *out);
/* The party of leg described itself (an offer or answer): where it is,
 * its key. Takes effect on the worker at once. 0, -ENOENT, -EINVAL. */
int anchor_leg_remote(struct anchor *a, uint64_t id, int leg, const struct anchor_remote *remote);
/* Ends the stream: its ports are released, its figures logged
 * (media.stream_ended). Unknown ids are ignored. */
void anchor_stream_end(struct anchor *a, uint64_t id, const char *reason);
size_t anchor_stream_count(const struct anchor *a);
/* Why an address a party's SDP names cannot be one the engine serves
 * (multicast, broadcast, loopback unless the engine is on loopback itself,
 * one of the engine's own ports), or NULL when it can. The engine sends to
 * a party only where its packets came from anyway; this refuses the
 * nonsense early, with a reason. */
const char *anchor_remote_refused(const struct anchor *a, const struct netaddr *addr);
/* The address written in SDP for anchored media (media.public_address). */
const struct netaddr *anchor_public_address(const struct anchor *a);

/* What the engine holds now, as JSON (a new reference):
 *   {"enabled": true, "workers": N, "address": "...", "port_range": "...",
 *    "streams": [{"id", "call_id", "user", "age_s", "legs": [{"local",
 *      "remote", "latched", "protection", "suite", "in": {"packets", "bytes"},
 *      "out": {"packets", "bytes"}, "auth_failures", "replays",
 *      "foreign_dropped", "malformed", "undelivered"}, ...]}]}
 * NULL a gives {"enabled": false, "streams": []}. */
json_t *anchor_status(struct anchor *a);

/* What the engine carried since it started, both legs of every stream,
 * ended ones included, for the metrics; streams is how many there are
 * now. Summed under each worker's list lock, as anchor_status does (the
 * packet path never takes it). A NULL a gives zeros. */
struct anchor_totals {
    uint64_t streams;
    uint64_t in_packets, in_bytes;   /* accepted from the parties */
    uint64_t out_packets, out_bytes; /* sent to them */
    uint64_t auth_failures, replays; /* refused */
};
void anchor_totals(struct anchor *a, struct anchor_totals *out);
/* One stream's legs as anchor_status shows them (a new array of two
 * objects), for the call log; NULL when the engine does not hold it (yet,
 * or any more). */
json_t *anchor_stream_legs(struct anchor *a, uint64_t id);

#endif
