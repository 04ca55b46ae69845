/*
 * libFuzzer target for rtp/packet and rtp/srtp: the RTP and RTCP parsers
 * and the RFC 5761 demux; SRTP and SRTCP unprotect of every suite on
 * sessions made once with fixed keys (what a stranger's packets reach);
 * and, on a fresh pair of sessions per input, protect then unprotect of
 * the input taken as plain RTP and RTCP, which must give it back.
 *
 * Seeds (corpus/rtp/): plain RTP and compound RTCP, and for each suite an
 * SRTP and an SRTCP packet protected with the keys below (master key
 * octets 0x01.., salt 0x41..).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rtp/packet.h"
#include "rtp/srtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_IN (RTP_SRTP_MAX_PACKET + 1)

static struct rtp_srtp_crypto *g_crypto;
static struct rtp_srtp *g_rx[RTP_SRTP_SUITE_COUNT];
static uint8_t g_key[RTP_SRTP_MAX_KEY], g_salt[RTP_SRTP_MAX_SALT];
static uint8_t g_buf[MAX_IN + RTP_SRTCP_MAX_TRAILER];

static void init_once(void)
{
    if (g_crypto)
        return;
    for (size_t i = 0; i < sizeof(g_key); i++)
        g_key[i] = (uint8_t)(0x01 + i);
    for (size_t i = 0; i < sizeof(g_salt); i++)
        g_salt[i] = (uint8_t)(0x41 + i);
    if (rtp_srtp_crypto_new(NULL, NULL, &g_crypto) != 0)
        abort();
    for (int s = 0; s < RTP_SRTP_SUITE_COUNT; s++)
        if (rtp_srtp_new(g_crypto, (enum rtp_srtp_suite)s, g_key, g_salt, 0, &g_rx[s]) != 0)
            abort();
}

/* Touches every octet a successful parse claims, so ASan checks them. */
static void parsers(const uint8_t *data, size_t size)
{
    struct rtp_header h;
    size_t hl;
    uint32_t ssrc;
    if (rtp_packet_parse(data, size, &h) == 0) {
        if (h.header_len + h.payload_len + h.padding_len != size || h.header_len > size)
            __builtin_trap();
        volatile uint8_t sum = 0;
        for (size_t i = 0; i < size; i++)
            sum ^= data[i];
        (void)sum;
    }
    if (rtp_packet_header_len(data, size, &hl) == 0 && hl > size)
        __builtin_trap();
    (void)rtp_packet_is_rtcp(data, size);
    if (rtp_rtcp_parse(data, size, &ssrc) == 0 && size <= MAX_IN) {
        /* scrubbing a valid compound never moves or grows anything */
        static uint8_t copy[MAX_IN];
        memcpy(copy, data, size);
        int n = rtp_rtcp_scrub(copy, size);
        if (n > (int)size || (n >= 0 && rtp_rtcp_parse(copy, size, NULL) != 0))
            __builtin_trap();
    }
}

/* Plain in, protected, unprotected: the same bytes out. */
static void round_trip(enum rtp_srtp_suite suite, const uint8_t *plain, size_t n)
{
    struct rtp_srtp *tx = NULL, *rx = NULL;
    size_t out, back;
    if (rtp_srtp_new(g_crypto, suite, g_key, g_salt, 0, &tx) != 0 ||
        rtp_srtp_new(g_crypto, suite, g_key, g_salt, 0, &rx) != 0)
        abort();

    memcpy(g_buf, plain, n);
    int rc = rtp_srtp_protect(tx, g_buf, n, sizeof(g_buf), &out);
    size_t hl;
    bool valid = n <= RTP_SRTP_MAX_PACKET && rtp_packet_header_len(plain, n, &hl) == 0;
    if ((rc == 0) != valid)
        __builtin_trap();
    if (rc == 0) {
        if (out != n + rtp_srtp_suite_tag_len(suite) || memcmp(g_buf, plain, hl) != 0)
            __builtin_trap();
        if (rtp_srtp_unprotect(rx, g_buf, out, &back) != 0 || back != n ||
            memcmp(g_buf, plain, n) != 0)
            __builtin_trap();
    }

    memcpy(g_buf, plain, n);
    rc = rtp_srtcp_protect(tx, g_buf, n, sizeof(g_buf), &out);
    valid = n <= RTP_SRTP_MAX_PACKET && n >= RTCP_HEADER_MIN && plain[0] >> 6 == RTP_VERSION;
    if ((rc == 0) != valid)
        __builtin_trap();
    if (rc == 0) {
        if (out != n + 4 + rtp_srtcp_suite_tag_len(suite) || memcmp(g_buf, plain, 8) != 0)
            __builtin_trap();
        if (rtp_srtcp_unprotect(rx, g_buf, out, &back) != 0 || back != n ||
            memcmp(g_buf, plain, n) != 0)
            __builtin_trap();
    }
    rtp_srtp_free(tx);
    rtp_srtp_free(rx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t out;

    init_once();
    if (size > MAX_IN)
        return 0;
    parsers(data, size);
    for (int s = 0; s < RTP_SRTP_SUITE_COUNT; s++) {
        memcpy(g_buf, data, size);
        if (rtp_srtp_unprotect(g_rx[s], g_buf, size, &out) == 0 && out > size)
            __builtin_trap();
        memcpy(g_buf, data, size);
        if (rtp_srtcp_unprotect(g_rx[s], g_buf, size, &out) == 0 && out > size)
            __builtin_trap();
    }
    if (size > 1)
        round_trip((enum rtp_srtp_suite)(data[0] % RTP_SRTP_SUITE_COUNT), data + 1, size - 1);
    return 0;
}
