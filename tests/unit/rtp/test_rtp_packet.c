/*
 * rtp/packet: RTP headers with CSRCs, extensions and padding (RFC 3550
 * §5.1, §5.3.1), the RTP/RTCP demux of RFC 5761 §4, compound RTCP walks
 * (RFC 3550 §6.1, A.2; RFC 5506), and every malformed case each refuses.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rtp/packet.h"

static void test_rtp_basic(void **state)
{
    (void)state;
    /* V=2, M, PT 8 (PCMA), SEQ 0x1234, TS 0xdeadbeef, SSRC 0x01020304. */
    const uint8_t p[] = {0x80, 0x88, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 'a', 'b', 'c'};
    struct rtp_header h;
    assert_int_equal(rtp_packet_parse(p, sizeof(p), &h), 0);
    assert_int_equal(h.version, 2);
    assert_false(h.padding);
    assert_false(h.extension);
    assert_int_equal(h.csrc_count, 0);
    assert_true(h.marker);
    assert_int_equal(h.payload_type, 8);
    assert_int_equal(h.seq, 0x1234);
    assert_int_equal(h.timestamp, 0xdeadbeef);
    assert_int_equal(h.ssrc, 0x01020304);
    assert_int_equal(h.header_len, 12);
    assert_int_equal(h.payload_len, 3);
    assert_int_equal(h.padding_len, 0);
    size_t hl = 0;
    assert_int_equal(rtp_packet_header_len(p, sizeof(p), &hl), 0);
    assert_int_equal(hl, 12);

    /* The header alone is a packet with an empty payload. */
    assert_int_equal(rtp_packet_parse(p, 12, &h), 0);
    assert_int_equal(h.payload_len, 0);
    /* Anything shorter is not. */
    for (size_t n = 0; n < 12; n++)
        assert_int_equal(rtp_packet_parse(p, n, &h), -EINVAL);
    assert_int_equal(rtp_packet_parse(NULL, 12, &h), -EINVAL);
    assert_int_equal(rtp_packet_parse(p, 12, NULL), -EINVAL);
    assert_int_equal(rtp_packet_header_len(NULL, 12, &hl), -EINVAL);
}

static void test_rtp_version(void **state)
{
    (void)state;
    uint8_t p[16] = {0x80, 0};
    struct rtp_header h;
    for (unsigned v = 0; v < 4; v++) {
        p[0] = (uint8_t)(v << 6);
        assert_int_equal(rtp_packet_parse(p, sizeof(p), &h), v == 2 ? 0 : -EINVAL);
    }
}

static void test_rtp_csrc(void **state)
{
    (void)state;
    uint8_t p[12 + 60 + 4] = {0x8f, 0};
    struct rtp_header h;
    for (int i = 0; i < 15; i++)
        p[12 + 4 * i + 3] = (uint8_t)i;
    assert_int_equal(rtp_packet_parse(p, sizeof(p), &h), 0);
    assert_int_equal(h.csrc_count, 15);
    assert_int_equal(h.header_len, 72);
    assert_int_equal(h.payload_len, 4);
    /* Exactly the CSRC list, no payload; one octet short of it. */
    assert_int_equal(rtp_packet_parse(p, 72, &h), 0);
    assert_int_equal(rtp_packet_parse(p, 71, &h), -EINVAL);
    p[0] = 0x81;
    assert_int_equal(rtp_packet_parse(p, 16, &h), 0);
    assert_int_equal(rtp_packet_parse(p, 15, &h), -EINVAL);
}

static void test_rtp_extension(void **state)
{
    (void)state;
    /* One CSRC, then an extension header (profile 0xBEDE, two words). */
    uint8_t p[12 + 4 + 4 + 8 + 5] = {0x91, 0x60};
    p[16] = 0xbe;
    p[17] = 0xde;
    p[18] = 0;
    p[19] = 2;
    struct rtp_header h;
    assert_int_equal(rtp_packet_parse(p, sizeof(p), &h), 0);
    assert_true(h.extension);
    assert_int_equal(h.header_len, 28);
    assert_int_equal(h.payload_len, 5);
    assert_int_equal(rtp_packet_parse(p, 28, &h), 0);
    /* Extension data, then its header, past the end. */
    for (size_t n = 12; n < 28; n++)
        assert_int_equal(rtp_packet_parse(p, n, &h), -EINVAL);
    /* An empty extension is allowed. */
    p[19] = 0;
    assert_int_equal(rtp_packet_parse(p, 20, &h), 0);
    assert_int_equal(h.header_len, 20);
    /* A length far past the end (0xffff words). */
    p[18] = p[19] = 0xff;
    assert_int_equal(rtp_packet_parse(p, sizeof(p), &h), -EINVAL);
    size_t hl;
    assert_int_equal(rtp_packet_header_len(p, sizeof(p), &hl), -EINVAL);
}

static void test_rtp_padding(void **state)
{
    (void)state;
    uint8_t p[12 + 10] = {0xa0, 0};
    struct rtp_header h;
    /* 10 octets after the header: 6 of payload, 4 of padding. */
    p[21] = 4;
    assert_int_equal(rtp_packet_parse(p, sizeof(p), &h), 0);
    assert_true(h.padding);
    assert_int_equal(h.padding_len, 4);
    assert_int_equal(h.payload_len, 6);
    /* All padding. */
    p[21] = 10;
    assert_int_equal(rtp_packet_parse(p, sizeof(p), &h), 0);
    assert_int_equal(h.payload_len, 0);
    assert_int_equal(h.padding_len, 10);
    /* More padding than follows the header, a zero count, or no octet to
     * hold the count at all. */
    p[21] = 11;
    assert_int_equal(rtp_packet_parse(p, sizeof(p), &h), -EINVAL);
    p[21] = 255;
    assert_int_equal(rtp_packet_parse(p, sizeof(p), &h), -EINVAL);
    p[21] = 0;
    assert_int_equal(rtp_packet_parse(p, sizeof(p), &h), -EINVAL);
    assert_int_equal(rtp_packet_parse(p, 12, &h), -EINVAL);
    /* Padding may not reach back into an extension. */
    uint8_t q[12 + 4 + 4 + 2] = {0xb0, 0};
    q[15] = 1;
    q[21] = 3;
    assert_int_equal(rtp_packet_parse(q, sizeof(q), &h), -EINVAL);
    q[21] = 2;
    assert_int_equal(rtp_packet_parse(q, sizeof(q), &h), 0);
    assert_int_equal(h.header_len, 20);
    assert_int_equal(h.payload_len, 0);
    /* The header length does not look at padding. */
    size_t hl;
    q[21] = 200;
    assert_int_equal(rtp_packet_header_len(q, sizeof(q), &hl), 0);
    assert_int_equal(hl, 20);
}

static void test_demux(void **state)
{
    (void)state;
    uint8_t p[8] = {0x80, 0};
    for (unsigned b = 0; b < 256; b++) {
        p[1] = (uint8_t)b;
        assert_int_equal(rtp_packet_is_rtcp(p, sizeof(p)), b >= 192 && b <= 223);
    }
    /* PCMU with the marker is RTP; PT 72 with the marker is where SR
     * would be, which is why RFC 5761 keeps 64..95 from RTP. */
    p[1] = 0x80;
    assert_false(rtp_packet_is_rtcp(p, sizeof(p)));
    p[1] = 0x80 | 72;
    assert_true(rtp_packet_is_rtcp(p, sizeof(p)));
    assert_false(rtp_packet_is_rtcp(p, 1));
    assert_false(rtp_packet_is_rtcp(p, 0));
    assert_false(rtp_packet_is_rtcp(NULL, 8));
}

/* SR (28 octets) + SDES (20) + BYE (8), SSRC 0x0a0b0c0d. */
static size_t compound(uint8_t *p)
{
    static const uint8_t c[] = {
        0x80, 200, 0, 6,  0x0a, 0x0b, 0x0c, 0x0d, 1,  2,  3,    4,    5,    6,
        7,    8,   9, 10, 11,   12,   13,   14,   15, 16, 17,   18,   19,   20,
        0x81, 202, 0, 4,  0x0a, 0x0b, 0x0c, 0x0d, 1,  6,  'p',  'a',  'r',  'l',
        'e',  'y', 0, 0,  0,    0,    0x81, 203,  0,  1,  0x0a, 0x0b, 0x0c, 0x0d,
    };
    memcpy(p, c, sizeof(c));
    return sizeof(c);
}

static void test_rtcp_compound(void **state)
{
    (void)state;
    uint8_t p[128];
    size_t n = compound(p);
    uint32_t ssrc = 0;
    assert_int_equal(n, 56);
    assert_int_equal(rtp_rtcp_parse(p, n, &ssrc), 0);
    assert_int_equal(ssrc, 0x0a0b0c0d);
    assert_int_equal(rtp_rtcp_parse(p, n, NULL), 0);
    /* Each prefix that ends on a packet boundary is a compound too;
     * others are not. */
    for (size_t k = 0; k < n; k++)
        assert_int_equal(rtp_rtcp_parse(p, k, &ssrc), k == 28 || k == 48 ? 0 : -EINVAL);
    /* Trailing octets. */
    for (size_t extra = 1; extra <= 4; extra++) {
        memset(p + n, 0, extra);
        assert_int_equal(rtp_rtcp_parse(p, n + extra, &ssrc), -EINVAL);
    }
    /* A length that runs past the end, in the first and in a later packet. */
    p[3] = 7;
    assert_int_equal(rtp_rtcp_parse(p, 28, &ssrc), -EINVAL);
    n = compound(p);
    p[51] = 2;
    assert_int_equal(rtp_rtcp_parse(p, n, &ssrc), -EINVAL);
    /* A later packet with the wrong version, or a type outside RTCP's. */
    n = compound(p);
    p[48] = 0x41;
    assert_int_equal(rtp_rtcp_parse(p, n, &ssrc), -EINVAL);
    n = compound(p);
    p[49] = 96;
    assert_int_equal(rtp_rtcp_parse(p, n, &ssrc), -EINVAL);
    n = compound(p);
    p[49] = 224;
    assert_int_equal(rtp_rtcp_parse(p, n, &ssrc), -EINVAL);
    /* The first packet's version. */
    n = compound(p);
    p[0] = 0x00;
    assert_int_equal(rtp_rtcp_parse(p, n, &ssrc), -EINVAL);
    assert_int_equal(rtp_rtcp_parse(NULL, 8, &ssrc), -EINVAL);
}

static void test_rtcp_first_packet(void **state)
{
    (void)state;
    /* An empty RR: the smallest valid compound. */
    uint8_t p[12] = {0x80, 201, 0, 1, 0xff, 0xee, 0xdd, 0xcc};
    uint32_t ssrc;
    assert_int_equal(rtp_rtcp_parse(p, 8, &ssrc), 0);
    assert_int_equal(ssrc, 0xffeeddcc);
    for (size_t k = 0; k < 8; k++)
        assert_int_equal(rtp_rtcp_parse(p, k, &ssrc), -EINVAL);
    /* First types: 200..204, and 205..207 (RFC 5506); not 192..199,
     * 208..223, nor SDES's neighbours outside RTCP. */
    for (unsigned t = 0; t < 256; t++) {
        p[1] = (uint8_t)t;
        assert_int_equal(rtp_rtcp_parse(p, 8, &ssrc), t >= 200 && t <= 207 ? 0 : -EINVAL);
    }
    /* A first packet of only a header (length 0) cannot name a sender. */
    uint8_t q[12] = {0x80, 201, 0, 0, 0x80, 201, 0, 0, 0, 0, 0, 0};
    assert_int_equal(rtp_rtcp_parse(q, 4, &ssrc), -EINVAL);
    assert_int_equal(rtp_rtcp_parse(q, 8, &ssrc), -EINVAL);
}

/* What a compound says of its sender in words is overwritten in place:
 * SDES items and a BYE's reason; lengths and everything else unchanged. */
static void test_rtcp_scrub(void **state)
{
    (void)state;
    /* RR; SDES: CNAME "sip:alice@example.test" (22), NAME "Alice" (5),
     * END + padding; BYE with reason "Adjo" */
    uint8_t p[] = {
        0x80, 201, 0,   1,   1,   2,   3,   4,                       /* RR, no blocks */
        0x81, 202, 0,   9,   1,   2,   3,   4,                       /* SDES, 1 chunk */
        1,    22,  's', 'i', 'p', ':', 'a', 'l', 'i', 'c', 'e', '@', /* CNAME */
        'e',  'x', 'a', 'm', 'p', 'l', 'e', '.', 't', 'e', 's', 't', /* */
        2,    5,   'A', 'l', 'i', 'c', 'e', 0,                       /* NAME, END */
        0x81, 203, 0,   3,   1,   2,   3,   4,   4,   'A', 'd', 'j', 'o', 0, 0, 0, /* BYE */
    };
    uint8_t before[sizeof(p)];
    memcpy(before, p, sizeof(p));
    assert_int_equal(rtp_rtcp_parse(p, sizeof(p), NULL), 0);
    assert_int_equal(rtp_rtcp_scrub(p, sizeof(p)), 22 + 5 + 4);
    assert_int_equal(rtp_rtcp_parse(p, sizeof(p), NULL), 0);
    assert_null(memmem(p, sizeof(p), "alice", 5));
    assert_null(memmem(p, sizeof(p), "Alice", 5));
    assert_null(memmem(p, sizeof(p), "Adjo", 4));
    for (size_t i = 0; i < sizeof(p); i++)
        if (p[i] != before[i])
            assert_int_equal(p[i], 'x');
    assert_memory_equal(p, before, 18); /* headers, SSRCs, item types */
    /* an item that runs past its packet: refused, nothing after touched */
    p[17] = 200;
    assert_int_equal(rtp_rtcp_scrub(p, sizeof(p)), -EINVAL);
    /* feedback (PSFB, application layer) may carry anything: refused */
    uint8_t fb[] = {0x80, 201, 0, 1, 1, 2, 3, 4, 0x8f, 206, 0,   3,
                    1,    2,   3, 4, 5, 6, 7, 8, 'a',  'l', 'i', 'c'};
    assert_int_equal(rtp_rtcp_parse(fb, sizeof(fb), NULL), 0);
    assert_int_equal(rtp_rtcp_scrub(fb, sizeof(fb)), -EINVAL);
    /* a compound rtp_rtcp_parse refuses (bytes left over): refused */
    assert_int_equal(rtp_rtcp_scrub(fb, 10), -EINVAL);
    /* padding is zeroed: an RR padded with 4 octets whose first three say "ali" */
    uint8_t pad[] = {0xa0, 201, 0, 2, 1, 2, 3, 4, 'a', 'l', 'i', 4};
    assert_int_equal(rtp_rtcp_scrub(pad, sizeof(pad)), 0);
    assert_null(memmem(pad, sizeof(pad), "ali", 3));
    assert_int_equal(rtp_rtcp_parse(pad, sizeof(pad), NULL), 0);
}

static void test_rtcp_padding(void **state)
{
    (void)state;
    /* An RR with 4 octets of padding, the last (and only) packet. */
    uint8_t p[32] = {0xa0, 201, 0, 2, 1, 2, 3, 4, 0, 0, 0, 4};
    uint32_t ssrc;
    assert_int_equal(rtp_rtcp_parse(p, 12, &ssrc), 0);
    assert_int_equal(ssrc, 0x01020304);
    /* Padding over the sender's SSRC, past the packet, or a zero count. */
    p[11] = 5;
    assert_int_equal(rtp_rtcp_parse(p, 12, &ssrc), -EINVAL);
    p[11] = 13;
    assert_int_equal(rtp_rtcp_parse(p, 12, &ssrc), -EINVAL);
    p[11] = 0;
    assert_int_equal(rtp_rtcp_parse(p, 12, &ssrc), -EINVAL);
    /* Padding on a packet that is not the last. */
    p[11] = 4;
    const uint8_t bye[] = {0x81, 203, 0, 1, 1, 2, 3, 4};
    memcpy(p + 12, bye, sizeof(bye));
    assert_int_equal(rtp_rtcp_parse(p, 20, &ssrc), -EINVAL);

    /* An empty RR, then a BYE with 4 octets of padding: fine. */
    const uint8_t q0[] = {0x80, 201, 0, 1, 1, 2, 3, 4, 0xa1, 203, 0, 2, 1, 2, 3, 4, 0, 0, 0, 4};
    uint8_t q[sizeof(q0)];
    memcpy(q, q0, sizeof(q));
    assert_int_equal(rtp_rtcp_parse(q, sizeof(q), &ssrc), 0);
    /* A later packet may pad everything after its header. */
    q[19] = 8;
    assert_int_equal(rtp_rtcp_parse(q, sizeof(q), &ssrc), 0);
    q[19] = 9;
    assert_int_equal(rtp_rtcp_parse(q, sizeof(q), &ssrc), -EINVAL);
    q[19] = 0;
    assert_int_equal(rtp_rtcp_parse(q, sizeof(q), &ssrc), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rtp_basic),     cmocka_unit_test(test_rtp_version),
        cmocka_unit_test(test_rtp_csrc),      cmocka_unit_test(test_rtp_extension),
        cmocka_unit_test(test_rtp_padding),   cmocka_unit_test(test_demux),
        cmocka_unit_test(test_rtcp_compound), cmocka_unit_test(test_rtcp_first_packet),
        cmocka_unit_test(test_rtcp_padding),  cmocka_unit_test(test_rtcp_scrub),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
