#include "rtp/packet.h"

#include <errno.h>
#include <string.h>

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int rtp_packet_header_len(const uint8_t *p, size_t len, size_t *hlen)
{
    if (!p || len < RTP_HEADER_MIN || p[0] >> 6 != RTP_VERSION)
        return -EINVAL;
    size_t n = RTP_HEADER_MIN + 4u * (p[0] & 0x0f);
    if (n > len)
        return -EINVAL;
    if (p[0] & 0x10) {
        /* RFC 3550 §5.3.1: a 4-octet extension header whose second half
         * counts the 32-bit words that follow it. */
        if (len - n < 4)
            return -EINVAL;
        size_t words = get16(p + n + 2);
        n += 4;
        if (len - n < 4 * words)
            return -EINVAL;
        n += 4 * words;
    }
    *hlen = n;
    return 0;
}

int rtp_packet_parse(const uint8_t *p, size_t len, struct rtp_header *out)
{
    size_t hlen;
    int rc = rtp_packet_header_len(p, len, &hlen);

    if (rc < 0 || !out)
        return -EINVAL;
    size_t pad = 0;
    if (p[0] & 0x20) {
        /* RFC 3550 §5.1: the last octet counts the padding, itself
         * included, so it is at least one and cannot reach into the
         * header. */
        if (len == hlen)
            return -EINVAL;
        pad = p[len - 1];
        if (pad == 0 || pad > len - hlen)
            return -EINVAL;
    }
    out->version = RTP_VERSION;
    out->padding = (p[0] & 0x20) != 0;
    out->extension = (p[0] & 0x10) != 0;
    out->csrc_count = p[0] & 0x0f;
    out->marker = (p[1] & 0x80) != 0;
    out->payload_type = p[1] & 0x7f;
    out->seq = get16(p + 2);
    out->timestamp = get32(p + 4);
    out->ssrc = get32(p + 8);
    out->header_len = hlen;
    out->padding_len = pad;
    out->payload_len = len - hlen - pad;
    return 0;
}

bool rtp_packet_is_rtcp(const uint8_t *p, size_t len)
{
    return p && len >= 2 && p[1] >= 192 && p[1] <= 223;
}

int rtp_rtcp_scrub(uint8_t *p, size_t len)
{
    size_t off = 0;
    int scrubbed = 0;
    if (rtp_rtcp_parse(p, len, NULL) != 0)
        return -EINVAL; /* the SRTCP path has not checked it yet */
    while (off + 4 <= len) {
        uint8_t *h = p + off;
        size_t plen = 4 * ((size_t)get16(h + 2) + 1);
        if (plen > len - off)
            return -EINVAL;
        size_t end = off + plen;
        if (h[0] & 0x20 && end == len) {
            /* padding says nothing either: blanked (to zero) */
            size_t pad = p[len - 1] <= plen - 4 ? p[len - 1] : 0;
            end -= pad;
            if (pad > 1)
                memset(p + end, 0, pad - 1);
        }
        /* reports and descriptions only: feedback, XR and the types to come
         * may carry anything, and a private party gets none of them */
        if (h[1] < 200 || h[1] > 204)
            return -EINVAL;
        unsigned count = h[0] & 0x1f;
        size_t at = off + 4;
        if (h[1] == 202) {
            /* SDES: count chunks of an SSRC and items up to an END item,
             * each chunk padded to 32 bits */
            for (unsigned c = 0; c < count; c++) {
                if (at + 4 > end)
                    return -EINVAL;
                at += 4;
                while (at < end && p[at] != 0) {
                    if (at + 2 > end || at + 2 + p[at + 1] > end)
                        return -EINVAL;
                    size_t n = p[at + 1];
                    memset(p + at + 2, 'x', n);
                    scrubbed += (int)n;
                    at += 2 + n;
                }
                at = (at + 4) & ~(size_t)3; /* the END octet and padding */
            }
        } else if (h[1] == 204) {
            /* APP: SSRC, a 4-octet name, then application data: all of it
             * after the SSRC may say anything */
            if (at + 4 < end) {
                memset(p + at + 4, 'x', end - (at + 4));
                scrubbed += (int)(end - (at + 4));
            }
        } else if (h[1] == 203) {
            /* BYE: count SSRCs, then an optional length-prefixed reason */
            at += 4 * (size_t)count;
            if (at < end) {
                if (at + 1 + p[at] > end)
                    return -EINVAL;
                memset(p + at + 1, 'x', p[at]);
                scrubbed += p[at];
            }
        }
        off += plen;
    }
    return scrubbed;
}

int rtp_rtcp_parse(const uint8_t *p, size_t len, uint32_t *sender_ssrc)
{
    size_t off = 0;

    if (!p || len < RTCP_HEADER_MIN)
        return -EINVAL;
    /* The first packet names the sender; RFC 5506 lets it be feedback or
     * XR instead of SR/RR, but never anything else. */
    if (p[1] < 200 || p[1] > 207)
        return -EINVAL;
    while (off < len) {
        const uint8_t *h = p + off;
        size_t left = len - off;
        if (left < 4 || h[0] >> 6 != RTP_VERSION || h[1] < 192 || h[1] > 223)
            return -EINVAL;
        size_t plen = 4 * ((size_t)get16(h + 2) + 1);
        if (plen > left)
            return -EINVAL;
        if (off == 0 && plen < RTCP_HEADER_MIN)
            return -EINVAL;
        if (h[0] & 0x20) {
            /* Only the last packet of a compound may carry padding
             * (RFC 3550 §6.4.1), and its count must fit in that packet
             * after its header (and the sender's SSRC, when the first). */
            if (plen != left)
                return -EINVAL;
            size_t pad = p[len - 1];
            if (pad == 0 || pad > plen - (off == 0 ? RTCP_HEADER_MIN : 4))
                return -EINVAL;
        }
        off += plen;
    }
    if (sender_ssrc)
        *sender_ssrc = get32(p + 4);
    return 0;
}
