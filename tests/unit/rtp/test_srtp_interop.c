/*
 * rtp/srtp against libsrtp2 (Debian's build, on NSS: an implementation
 * that shares no code with OpenSSL's), for every suite Parley has: what
 * Parley protects libsrtp unprotects and the reverse, SRTP across a
 * sequence number rollover (65,600 packets each way) and SRTCP, packets
 * with CSRCs, an extension and padding, reordering, libsrtp's SRTCP sent
 * authenticated only (E = 0), and tampered packets refused both ways.
 *
 * libsrtp2 is a test oracle only: this program links it, parleyd never
 * does.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <srtp2/srtp.h>

#include "rtp/packet.h"
#include "rtp/srtp.h"

#define STREAM_PACKETS 65600u
#define BUF            (1500 + SRTP_MAX_TRAILER_LEN + 32)

static struct rtp_srtp_crypto *g_crypto;

static const enum rtp_srtp_suite all_suites[] = {
    RTP_SRTP_AES_CM_128_HMAC_SHA1_80,
    RTP_SRTP_AES_CM_128_HMAC_SHA1_32,
    RTP_SRTP_AEAD_AES_128_GCM,
    RTP_SRTP_AEAD_AES_256_GCM,
};
#define NSUITES (sizeof(all_suites) / sizeof(all_suites[0]))

static int setup(void **state)
{
    (void)state;
    if (srtp_init() != srtp_err_status_ok)
        return -1;
    return rtp_srtp_crypto_new(NULL, NULL, &g_crypto);
}

static int teardown(void **state)
{
    (void)state;
    rtp_srtp_crypto_free(g_crypto);
    g_crypto = NULL;
    return srtp_shutdown() == srtp_err_status_ok ? 0 : -1;
}

struct keys {
    uint8_t key[RTP_SRTP_MAX_KEY], salt[RTP_SRTP_MAX_SALT];
    uint8_t concat[RTP_SRTP_MAX_KEY + RTP_SRTP_MAX_SALT]; /* libsrtp's form */
};

static void make_keys(enum rtp_srtp_suite suite, struct keys *k)
{
    size_t kl = rtp_srtp_suite_key_len(suite), sl = rtp_srtp_suite_salt_len(suite);
    assert_int_equal(rtp_srtp_generate_master(NULL, suite, k->key, k->salt), 0);
    memcpy(k->concat, k->key, kl);
    memcpy(k->concat + kl, k->salt, sl);
}

/* A libsrtp session for suite with the same master key and salt: RTCP
 * with the suite's own policy (the _32 suite keeps an 80-bit tag there,
 * RFC 4568 §6.2.1), or authenticated only when rtcp_auth_only. */
static srtp_t libsrtp_session(enum rtp_srtp_suite suite, struct keys *k, bool inbound,
                              bool rtcp_auth_only)
{
    srtp_policy_t p;
    srtp_t s = NULL;
    memset(&p, 0, sizeof(p));
    switch (suite) {
    case RTP_SRTP_AES_CM_128_HMAC_SHA1_80:
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&p.rtp);
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&p.rtcp);
        break;
    case RTP_SRTP_AES_CM_128_HMAC_SHA1_32:
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32(&p.rtp);
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&p.rtcp);
        break;
    case RTP_SRTP_AEAD_AES_128_GCM:
        srtp_crypto_policy_set_aes_gcm_128_16_auth(&p.rtp);
        srtp_crypto_policy_set_aes_gcm_128_16_auth(&p.rtcp);
        break;
    case RTP_SRTP_AEAD_AES_256_GCM:
        srtp_crypto_policy_set_aes_gcm_256_16_auth(&p.rtp);
        srtp_crypto_policy_set_aes_gcm_256_16_auth(&p.rtcp);
        break;
    default:
        fail();
    }
    if (rtcp_auth_only)
        p.rtcp.sec_serv = sec_serv_auth;
    p.ssrc.type = inbound ? ssrc_any_inbound : ssrc_any_outbound;
    p.key = k->concat;
    p.window_size = 128;
    p.allow_repeat_tx = 0;
    p.next = NULL;
    assert_int_equal(srtp_create(&s, &p), srtp_err_status_ok);
    return s;
}

static size_t make_rtp(uint8_t *p, uint16_t seq, uint32_t ssrc, size_t plen, unsigned cc,
                       int ext_words, unsigned pad)
{
    size_t n = 0;
    p[n++] = (uint8_t)(0x80 | (pad ? 0x20 : 0) | (ext_words >= 0 ? 0x10 : 0) | cc);
    p[n++] = (uint8_t)(seq % 7 == 0 ? 0x80 : 0);
    p[n++] = (uint8_t)(seq >> 8);
    p[n++] = (uint8_t)seq;
    uint32_t ts = (uint32_t)seq * 160u;
    for (int i = 3; i >= 0; i--)
        p[n++] = (uint8_t)(ts >> (8 * i));
    for (int i = 3; i >= 0; i--)
        p[n++] = (uint8_t)(ssrc >> (8 * i));
    for (unsigned c = 0; c < cc; c++)
        for (int i = 0; i < 4; i++)
            p[n++] = (uint8_t)(0xc0 + c + i);
    if (ext_words >= 0) {
        p[n++] = 0xbe;
        p[n++] = 0xde;
        p[n++] = (uint8_t)(ext_words >> 8);
        p[n++] = (uint8_t)ext_words;
        for (int w = 0; w < 4 * ext_words; w++)
            p[n++] = (uint8_t)(0xe0 + w);
    }
    for (size_t i = 0; i < plen; i++)
        p[n++] = (uint8_t)(seq * 5 + i);
    for (unsigned i = 0; i + 1 < pad; i++)
        p[n++] = 0;
    if (pad)
        p[n++] = (uint8_t)pad;
    return n;
}

/* SR + SDES CNAME, sender ssrc, contents varying with k. */
static size_t make_rtcp(uint8_t *p, uint32_t ssrc, uint32_t k)
{
    size_t n = 0;
    const uint8_t sr[] = {0x80, 200, 0, 6};
    memcpy(p, sr, 4);
    n = 4;
    for (int i = 3; i >= 0; i--)
        p[n++] = (uint8_t)(ssrc >> (8 * i));
    for (int w = 0; w < 5; w++)
        for (int i = 3; i >= 0; i--)
            p[n++] = (uint8_t)((k * 7 + (uint32_t)w) >> (8 * i));
    const uint8_t sdes[] = {0x81, 202, 0, 4};
    memcpy(p + n, sdes, 4);
    n += 4;
    for (int i = 3; i >= 0; i--)
        p[n++] = (uint8_t)(ssrc >> (8 * i));
    const uint8_t item[] = {1, 6, 'p', 'a', 'r', 'l', 'e', 'y', 0, 0, 0, 0};
    memcpy(p + n, item, sizeof(item));
    return n + sizeof(item);
}

/* Shapes of packets: G.711 (160 octets), then with CSRCs, an extension,
 * padding, an empty payload, a large one. */
static size_t shaped(uint8_t *p, uint32_t k, uint16_t seq, uint32_t ssrc)
{
    switch (k % 11) {
    case 3:
        return make_rtp(p, seq, ssrc, 100, 2, -1, 0);
    case 5:
        return make_rtp(p, seq, ssrc, 77, 0, 3, 0);
    case 7:
        return make_rtp(p, seq, ssrc, 61, 1, 1, 3);
    case 9:
        return make_rtp(p, seq, ssrc, 0, 0, -1, 0);
    case 10:
        return make_rtp(p, seq, ssrc, 1200, 0, -1, 0);
    default:
        return make_rtp(p, seq, ssrc, 160, 0, -1, 0);
    }
}

static void rtp_parley_to_libsrtp(enum rtp_srtp_suite suite)
{
    struct keys k;
    make_keys(suite, &k);
    struct rtp_srtp *tx = NULL;
    assert_int_equal(rtp_srtp_new(g_crypto, suite, k.key, k.salt, 0, &tx), 0);
    srtp_t rx = libsrtp_session(suite, &k, true, false);
    uint8_t orig[BUF], buf[BUF];
    uint16_t first = 1000;
    for (uint32_t i = 0; i < STREAM_PACKETS; i++) {
        uint16_t seq = (uint16_t)(first + i);
        size_t n = shaped(orig, i, seq, 0x50415231), out;
        memcpy(buf, orig, n);
        assert_int_equal(rtp_srtp_protect(tx, buf, n, sizeof(buf), &out), 0);
        int len = (int)out;
        srtp_err_status_t st = srtp_unprotect(rx, buf, &len);
        if (st != srtp_err_status_ok)
            fail_msg("%s: libsrtp refused packet %u (seq %u): %d", rtp_srtp_suite_name(suite), i,
                     seq, st);
        assert_int_equal(len, n);
        assert_memory_equal(buf, orig, n);
    }
    /* Tampered by us in transit: libsrtp refuses it. */
    size_t n = make_rtp(orig, (uint16_t)(first + STREAM_PACKETS), 0x50415231, 160, 0, -1, 0), out;
    memcpy(buf, orig, n);
    assert_int_equal(rtp_srtp_protect(tx, buf, n, sizeof(buf), &out), 0);
    buf[20] ^= 0x01;
    int len = (int)out;
    assert_int_equal(srtp_unprotect(rx, buf, &len), srtp_err_status_auth_fail);
    rtp_srtp_free(tx);
    srtp_dealloc(rx);
}

static void rtp_libsrtp_to_parley(enum rtp_srtp_suite suite)
{
    struct keys k;
    make_keys(suite, &k);
    struct rtp_srtp *rx = NULL;
    assert_int_equal(rtp_srtp_new(g_crypto, suite, k.key, k.salt, 0, &rx), 0);
    srtp_t tx = libsrtp_session(suite, &k, false, false);
    uint8_t orig[BUF], buf[BUF], held[BUF];
    size_t held_len = 0;
    uint16_t first = 60000;
    for (uint32_t i = 0; i < STREAM_PACKETS; i++) {
        uint16_t seq = (uint16_t)(first + i);
        size_t n = shaped(orig, i, seq, 0x4c494231), out;
        memcpy(buf, orig, n);
        int len = (int)n;
        assert_int_equal(srtp_protect(tx, buf, &len), srtp_err_status_ok);
        /* Every 1000th packet arrives three packets late. */
        if (i % 1000 == 500) {
            memcpy(held, buf, (size_t)len);
            held_len = (size_t)len;
            continue;
        }
        int rc = rtp_srtp_unprotect(rx, buf, (size_t)len, &out);
        if (rc != 0)
            fail_msg("%s: Parley refused libsrtp's packet %u (seq %u): %d",
                     rtp_srtp_suite_name(suite), i, seq, rc);
        assert_int_equal(out, n);
        assert_memory_equal(buf, orig, n);
        if (i % 1000 == 503) {
            assert_int_equal(rtp_srtp_unprotect(rx, held, held_len, &out), 0);
            assert_int_equal(rtp_srtp_unprotect(rx, held, held_len, &out), -EALREADY);
        }
    }
    /* libsrtp's packet tampered with, in every part: refused, and the
     * genuine one accepted after. */
    size_t n = make_rtp(orig, (uint16_t)(first + STREAM_PACKETS), 0x4c494231, 160, 1, 1, 0), out;
    memcpy(buf, orig, n);
    int len = (int)n;
    assert_int_equal(srtp_protect(tx, buf, &len), srtp_err_status_ok);
    const size_t spots[] = {1, 5, 9, 13, 21, 30, 100, n - 1, (size_t)len - 1};
    for (size_t i = 0; i < sizeof(spots) / sizeof(spots[0]); i++) {
        uint8_t t[BUF];
        memcpy(t, buf, (size_t)len);
        t[spots[i]] ^= 0x10;
        assert_int_equal(rtp_srtp_unprotect(rx, t, (size_t)len, &out), -EBADMSG);
    }
    assert_int_equal(rtp_srtp_unprotect(rx, buf, (size_t)len, &out), 0);
    assert_memory_equal(buf, orig, n);
    rtp_srtp_free(rx);
    srtp_dealloc(tx);
}

static void rtcp_both_ways(enum rtp_srtp_suite suite)
{
    struct keys k;
    make_keys(suite, &k);
    struct rtp_srtp *ptx = NULL, *prx = NULL;
    assert_int_equal(rtp_srtp_new(g_crypto, suite, k.key, k.salt, 0, &ptx), 0);
    assert_int_equal(rtp_srtp_new(g_crypto, suite, k.key, k.salt, 0, &prx), 0);
    srtp_t ltx = libsrtp_session(suite, &k, false, false);
    srtp_t lrx = libsrtp_session(suite, &k, true, false);
    uint8_t orig[BUF], buf[BUF];
    for (uint32_t i = 0; i < 2000; i++) {
        size_t n = make_rtcp(orig, 0x52544350, i), out;
        int len;
        /* Parley -> libsrtp */
        memcpy(buf, orig, n);
        assert_int_equal(rtp_srtcp_protect(ptx, buf, n, sizeof(buf), &out), 0);
        len = (int)out;
        assert_int_equal(srtp_unprotect_rtcp(lrx, buf, &len), srtp_err_status_ok);
        assert_int_equal(len, n);
        assert_memory_equal(buf, orig, n);
        /* libsrtp -> Parley */
        memcpy(buf, orig, n);
        len = (int)n;
        assert_int_equal(srtp_protect_rtcp(ltx, buf, &len), srtp_err_status_ok);
        assert_int_equal((size_t)len, n + 4 + rtp_srtcp_suite_tag_len(suite));
        if (i == 1999) {
            uint8_t t[BUF];
            for (size_t spot = 0; spot < (size_t)len; spot += 7) {
                memcpy(t, buf, (size_t)len);
                t[spot] ^= 0x04;
                assert_int_equal(rtp_srtcp_unprotect(prx, t, (size_t)len, &out), -EBADMSG);
            }
        }
        assert_int_equal(rtp_srtcp_unprotect(prx, buf, (size_t)len, &out), 0);
        assert_int_equal(out, n);
        assert_memory_equal(buf, orig, n);
    }
    rtp_srtp_free(ptx);
    rtp_srtp_free(prx);
    srtp_dealloc(ltx);
    srtp_dealloc(lrx);
}

static void test_srtp_parley_to_libsrtp(void **state)
{
    (void)state;
    for (size_t i = 0; i < NSUITES; i++)
        rtp_parley_to_libsrtp(all_suites[i]);
}

static void test_srtp_libsrtp_to_parley(void **state)
{
    (void)state;
    for (size_t i = 0; i < NSUITES; i++)
        rtp_libsrtp_to_parley(all_suites[i]);
}

static void test_srtcp_both_ways(void **state)
{
    (void)state;
    for (size_t i = 0; i < NSUITES; i++)
        rtcp_both_ways(all_suites[i]);
}

/* libsrtp with RTCP authenticated only sends E = 0 (RFC 3711 §3.4):
 * refused unless UNENCRYPTED_SRTCP was negotiated; then taken as it is
 * authentic, and refused with E flipped. */
static void test_srtcp_unencrypted_from_libsrtp(void **state)
{
    (void)state;
    for (size_t i = 0; i < 2; i++) {
        enum rtp_srtp_suite suite = all_suites[i];
        struct keys k;
        make_keys(suite, &k);
        struct rtp_srtp *rx = NULL;
        assert_int_equal(rtp_srtp_new(g_crypto, suite, k.key, k.salt, 0, &rx), 0);
        srtp_t tx = libsrtp_session(suite, &k, false, true);
        uint8_t orig[BUF], buf[BUF];
        for (uint32_t j = 0; j < 10; j++) {
            size_t n = make_rtcp(orig, 0x45303030, j), out;
            memcpy(buf, orig, n);
            int len = (int)n;
            assert_int_equal(srtp_protect_rtcp(tx, buf, &len), srtp_err_status_ok);
            assert_memory_equal(buf, orig, n); /* not encrypted */
            assert_int_equal(buf[n] & 0x80, 0);
            uint8_t t[BUF];
            memcpy(t, buf, (size_t)len);
            rtp_srtp_allow_unencrypted_srtcp(rx, false);
            assert_int_equal(rtp_srtcp_unprotect(rx, t, (size_t)len, &out), -EPROTO);
            rtp_srtp_allow_unencrypted_srtcp(rx, true);
            t[n] ^= 0x80;
            assert_int_equal(rtp_srtcp_unprotect(rx, t, (size_t)len, &out), -EBADMSG);
            assert_int_equal(rtp_srtcp_unprotect(rx, buf, (size_t)len, &out), 0);
            assert_int_equal(out, n);
            assert_memory_equal(buf, orig, n);
        }
        rtp_srtp_free(rx);
        srtp_dealloc(tx);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_srtp_parley_to_libsrtp),
        cmocka_unit_test(test_srtp_libsrtp_to_parley),
        cmocka_unit_test(test_srtcp_both_ways),
        cmocka_unit_test(test_srtcp_unencrypted_from_libsrtp),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
