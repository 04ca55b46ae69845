/*
 * bench/srtp_packets — what parley-bench's SRTP stream mode sends: the
 * streams file, and the G.711-sized RTP packets it protects ahead of time.
 *
 * A stream is one anchored call as the generator plays it: party A sends
 * 172-octet RTP packets (12-octet header, 160 octets of G.711 payload)
 * protected with A's key to the server's port for A's leg; party B first
 * sends one packet of its own ("hello", protected with B's key) to the
 * server's port for B's leg, since an engine that latches only on an
 * authenticated packet sends nothing toward B before, then only receives.
 *
 * The streams file has one stream per line, as key=value words ('#' starts
 * a comment):
 *
 *   a_to=IP:PORT     where A's packets go (the server's port for A's leg)
 *   a_from=IP:PORT   A's own address (the one in A's SDP)
 *   a_suite=SUITE    A's SDES suite (AES_CM_128_HMAC_SHA1_80, ...)
 *   a_key=BASE64     A's inline key||salt, as in A's a=crypto line
 *   b_to=IP:PORT     where B's hello goes (the server's port for B's leg)
 *   b_at=IP:PORT     where B receives (the one in B's SDP)
 *   b_suite=SUITE    B's suite, or RTP for a plain leg (then no b_key)
 *   b_key=BASE64     B's inline key||salt
 *
 * Packet k of stream i carries SSRC BENCH_SRTP_SSRC_A + i, sequence number
 * (first_index + k) mod 2^16 and RTP timestamp 160 * k: what arrives at B
 * is matched by its header alone, without unprotecting it.
 */
#ifndef PARLEY_BENCH_SRTP_PACKETS_H
#define PARLEY_BENCH_SRTP_PACKETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/netaddr.h"
#include "rtp/srtp.h"

#define BENCH_SRTP_RTP_LEN     172 /* RTP header + 20 ms of G.711 at 8 kHz */
#define BENCH_SRTP_PAYLOAD_LEN 160
#define BENCH_SRTP_PT          0 /* PCMU */
/* A protected packet fits a slot of this size (172 + the longest tag). */
#define BENCH_SRTP_SLOT 192
/* SSRCs of A's packets and of B's hellos: stream i adds i. */
#define BENCH_SRTP_SSRC_A      0x50000000u
#define BENCH_SRTP_SSRC_B      0x60000000u
#define BENCH_SRTP_STREAMS_MAX 100000

struct bench_srtp_party {
    bool plain; /* RTP, no key (only B may be plain) */
    enum rtp_srtp_suite suite;
    uint8_t key[RTP_SRTP_MAX_KEY], salt[RTP_SRTP_MAX_SALT];
};

struct bench_srtp_stream_spec {
    struct netaddr a_to, a_from, b_to, b_at;
    struct bench_srtp_party a, b;
};

/* Reads one line of a streams file into out. Returns 0, 1 for a blank or
 * comment line, or -EINVAL with the reason in err. */
int srtp_packets_parse_line(const char *line, struct bench_srtp_stream_spec *out, char *err,
                            size_t errlen);
/* Reads a streams file: *out (free it) with *n streams. Returns 0 or a
 * negative errno with "FILE:LINE: reason" in err. */
int srtp_packets_load(const char *path, struct bench_srtp_stream_spec **out, size_t *n, char *err,
                      size_t errlen);

/* Writes the plain RTP packet of index `index` (48 bits: ROC << 16 | SEQ)
 * and RTP timestamp 160 * k into buf (BENCH_SRTP_RTP_LEN octets); the
 * payload says which stream and packet it is, for a test to check. */
void srtp_packets_make_rtp(uint8_t *buf, uint32_t ssrc, uint64_t index, uint64_t k);

/* A session for a party that sends from `first_index` on (its sender state
 * set so that the first packet gets that index's ROC). Returns 0 or a
 * negative errno from rtp/srtp. */
int srtp_packets_session(struct rtp_srtp_crypto *c, const struct bench_srtp_party *p, uint32_t ssrc,
                         uint64_t first_index, struct rtp_srtp **out);

/* Protects packet k (index first_index + k) of the stream with SSRC ssrc
 * into slot (BENCH_SRTP_SLOT octets) with session s (NULL: plain RTP).
 * Packets must be made in increasing k per session. *len gets the length
 * sent. Returns 0 or a negative errno. */
int srtp_packets_protect(struct rtp_srtp *s, uint32_t ssrc, uint64_t first_index, uint64_t k,
                         uint8_t *slot, uint16_t *len);

/* The packet number k of a stream from the sequence number of a packet
 * that arrived, given the highest k seen so far on it (the nearest k with
 * that sequence number, as RFC 3711 §3.3.1 guesses a ROC); UINT64_MAX for
 * a packet from before first_index (an earlier run's straggler). */
uint64_t srtp_packets_k_from_seq(uint16_t seq, uint64_t first_index, uint64_t highest_k);

#endif
