/*
 * rtp/packet — RTP and RTCP headers (RFC 3550) and the RTP/RTCP demux of
 * RFC 5761 §4.
 *
 * These read packets that arrive from anyone, so every length is checked
 * against the buffer before a byte is read; nothing is copied, nothing is
 * allocated, and the functions are pure (safe from any thread).
 *
 * rtp_packet_parse reads a plain RTP packet, padding included. An SRTP
 * packet's padding is encrypted (and its end is the tag), so the SRTP code
 * uses rtp_packet_header_len, which stops at the end of the header.
 */
#ifndef PARLEY_RTP_PACKET_H
#define PARLEY_RTP_PACKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Fixed RTP header, before CSRCs and extension (RFC 3550 §5.1). */
#define RTP_HEADER_MIN 12
/* RTCP common header plus the sender's SSRC (RFC 3550 §6.4). */
#define RTCP_HEADER_MIN 8
#define RTP_VERSION     2

struct rtp_header {
    uint8_t version; /* always 2 after a successful parse */
    bool padding;
    bool extension;
    uint8_t csrc_count;
    bool marker;
    uint8_t payload_type; /* 7 bits */
    uint16_t seq;
    uint32_t timestamp;
    uint32_t ssrc;
    size_t header_len;  /* fixed header, CSRCs and the extension with its header */
    size_t payload_len; /* what lies between the header and the padding */
    size_t padding_len; /* the padding octets, count octet included; 0 without P */
};

/* Parses the RTP packet p[0..len). Returns 0, or -EINVAL when it is
 * shorter than its fixed header, its version is not 2, its CSRC list or
 * extension runs past the end, or (P set) its padding count is zero or
 * longer than what follows the header. */
int rtp_packet_parse(const uint8_t *p, size_t len, struct rtp_header *out);

/* Length of the RTP header of p[0..len) (CSRCs and extension included),
 * without looking at padding. Returns 0 and sets *hlen, or -EINVAL (too
 * short, version not 2, CSRC list or extension past the end). */
int rtp_packet_header_len(const uint8_t *p, size_t len, size_t *hlen);

/* RFC 5761 §4: with RTP and RTCP on one port, a packet whose second octet
 * is 192..223 (RTCP packet types 192..223; RTP payload types 64..95 with
 * the marker set, which RFC 5761 reserves) is RTCP. False for fewer than
 * two octets. Says nothing about validity: parse afterwards. */
bool rtp_packet_is_rtcp(const uint8_t *p, size_t len);

/* Checks a compound RTCP packet p[0..len) (RFC 3550 §6.1, §A.2, with the
 * reduced-size packets of RFC 5506 allowed): every packet has version 2,
 * a type of 192..223 and a length within what is left, the lengths add up
 * to len exactly, only the last packet may be padded (with a count of at
 * least one that fits in it), and the first one is SR, RR, SDES, BYE or
 * APP (200..204) or a feedback or XR packet (205..207) at least 8 octets
 * long. Sets *sender_ssrc (may be NULL) to the SSRC that follows the first
 * header. Returns 0 or -EINVAL. */
int rtp_rtcp_parse(const uint8_t *p, size_t len, uint32_t *sender_ssrc);

/* Overwrites, in place, what a compound RTCP packet p[0..len) says about
 * its sender in words: the text of every SDES item (CNAME, NAME, EMAIL,
 * PHONE, LOC, TOOL, NOTE, PRIV; RFC 3550 §6.5), a BYE's reason (§6.6) and
 * an APP packet's name and data (§6.7),
 * each octet by 'x', lengths unchanged (a CNAME stays one per source, and
 * nothing else of the packet moves). For a party that must learn nothing
 * of the other (a gateway, of a user whose client names itself
 * sip:alice@...). Padding is zeroed. Only SR, RR, SDES, BYE and APP may
 * be in it. Returns the number of octets overwritten, or -EINVAL for a
 * compound that rtp_rtcp_parse refuses, that holds another packet type, or
 * whose SDES or BYE insides run past their length (then drop it: what was
 * touched is not all there is). */
int rtp_rtcp_scrub(uint8_t *p, size_t len);

#endif
