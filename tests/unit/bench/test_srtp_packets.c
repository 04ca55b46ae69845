/*
 * parley-bench's SRTP stream mode (src/bench/srtp_packets.c): the packets it
 * protects ahead of a run are what libsrtp2 (Debian's, on NSS: no code
 * shared with OpenSSL) unprotects, byte for byte, for every suite, from a
 * run's first index across a rollover and from a later run's first index
 * with a ROC above 0; B's plain hello is plain RTP; the streams file is
 * read strictly; a sequence number is mapped back to its packet across a
 * rollover and an earlier run's packets are told apart.
 *
 * libsrtp2 is a test oracle only: this program links it, parley-bench and
 * parleyd never do.
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

#include "bench/srtp_packets.h"
#include "rtp/srtp.h"

#define PACKETS 24

static struct rtp_srtp_crypto *g_crypto;

/* The libsrtp policy of each suite, in the order of enum rtp_srtp_suite
 * (AES_CM_128_HMAC_SHA1_80 is libsrtp's default, its setter a macro). */
static void (*const libsrtp_policy_of[])(srtp_crypto_policy_t *) = {
    srtp_crypto_policy_set_rtp_default,
    srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32,
    srtp_crypto_policy_set_aes_gcm_128_16_auth,
    srtp_crypto_policy_set_aes_gcm_256_16_auth,
};

/* A libsrtp receiver for party p's packets from ssrc, told the ROC the
 * first of them has (a receiver that joined a stream late learns it from
 * signalling; RFC 3711 §3.3.1). */
static srtp_t libsrtp_receiver(const struct bench_srtp_party *p, uint32_t ssrc, uint32_t roc)
{
    uint8_t master[RTP_SRTP_MAX_KEY + RTP_SRTP_MAX_SALT];
    size_t key_len = rtp_srtp_suite_key_len(p->suite);
    memcpy(master, p->key, key_len);
    memcpy(master + key_len, p->salt, rtp_srtp_suite_salt_len(p->suite));
    srtp_policy_t policy;
    memset(&policy, 0, sizeof(policy));
    libsrtp_policy_of[p->suite](&policy.rtp);
    libsrtp_policy_of[p->suite](&policy.rtcp);
    policy.ssrc.type = ssrc_specific;
    policy.ssrc.value = ssrc;
    policy.key = master;
    policy.window_size = 128;
    srtp_t session = NULL;
    assert_int_equal(srtp_create(&session, &policy), srtp_err_status_ok);
    assert_int_equal(srtp_set_stream_roc(session, ssrc, roc), srtp_err_status_ok);
    return session;
}

static void make_party(enum rtp_srtp_suite suite, struct bench_srtp_party *p)
{
    memset(p, 0, sizeof(*p));
    p->suite = suite;
    assert_int_equal(rtp_srtp_generate_master(NULL, suite, p->key, p->salt), 0);
}

/* PACKETS packets of one stream from first_index, as a run protects them,
 * unprotected by libsrtp into exactly the RTP packet that was protected. */
static void check_run(enum rtp_srtp_suite suite, uint64_t first_index)
{
    struct bench_srtp_party a;
    make_party(suite, &a);
    uint32_t ssrc = BENCH_SRTP_SSRC_A + 7;
    struct rtp_srtp *tx = NULL;
    assert_int_equal(srtp_packets_session(g_crypto, &a, ssrc, first_index, &tx), 0);
    srtp_t rx = libsrtp_receiver(&a, ssrc, (uint32_t)(first_index >> 16));
    for (uint64_t k = 0; k < PACKETS; k++) {
        uint8_t slot[BENCH_SRTP_SLOT], plain[BENCH_SRTP_RTP_LEN];
        uint16_t len = 0;
        assert_int_equal(srtp_packets_protect(tx, ssrc, first_index, k, slot, &len), 0);
        assert_int_equal(len, BENCH_SRTP_RTP_LEN + rtp_srtp_suite_tag_len(suite));
        int n = len;
        srtp_err_status_t st = srtp_unprotect(rx, slot, &n);
        if (st != srtp_err_status_ok)
            fail_msg("%s: libsrtp refused packet %llu of a run from index %llu: %d",
                     rtp_srtp_suite_name(suite), (unsigned long long)k,
                     (unsigned long long)first_index, st);
        srtp_packets_make_rtp(plain, ssrc, first_index + k, k);
        assert_int_equal(n, BENCH_SRTP_RTP_LEN);
        assert_memory_equal(slot, plain, BENCH_SRTP_RTP_LEN);
    }
    rtp_srtp_free(tx);
    srtp_dealloc(rx);
}

static void test_every_suite_unprotects_with_libsrtp(void **state)
{
    (void)state;
    for (int suite = 0; suite < RTP_SRTP_SUITE_COUNT; suite++) {
        check_run((enum rtp_srtp_suite)suite, 0);
        /* a run that crosses a rollover, and a later one past it */
        check_run((enum rtp_srtp_suite)suite, 65536 - PACKETS / 2);
        check_run((enum rtp_srtp_suite)suite, 3 * 65536 + 1000);
    }
}

static void test_plain_hello_is_plain_rtp(void **state)
{
    (void)state;
    uint8_t slot[BENCH_SRTP_SLOT], plain[BENCH_SRTP_RTP_LEN];
    uint16_t len = 0;
    assert_int_equal(srtp_packets_protect(NULL, BENCH_SRTP_SSRC_B, 5, 0, slot, &len), 0);
    assert_int_equal(len, BENCH_SRTP_RTP_LEN);
    srtp_packets_make_rtp(plain, BENCH_SRTP_SSRC_B, 5, 0);
    assert_memory_equal(slot, plain, BENCH_SRTP_RTP_LEN);
    /* V=2, PCMU, seq 5, SSRC in the clear: matched at B without a key */
    assert_int_equal(slot[0], 0x80);
    assert_int_equal(slot[1], 0);
    assert_int_equal(slot[3], 5);
    assert_int_equal(slot[8], BENCH_SRTP_SSRC_B >> 24);
}

static void test_streams_file_lines(void **state)
{
    (void)state;
    struct bench_srtp_party a, b;
    make_party(RTP_SRTP_AES_CM_128_HMAC_SHA1_80, &a);
    make_party(RTP_SRTP_AEAD_AES_128_GCM, &b);
    char akey[RTP_SRTP_INLINE_MAX], bkey[RTP_SRTP_INLINE_MAX], line[512], err[160];
    assert_int_equal(rtp_srtp_inline_encode(a.suite, a.key, a.salt, akey, sizeof(akey)), 0);
    assert_int_equal(rtp_srtp_inline_encode(b.suite, b.key, b.salt, bkey, sizeof(bkey)), 0);
    struct bench_srtp_stream_spec spec;

    snprintf(line, sizeof(line),
             "a_to=127.0.0.1:30000 a_from=127.0.0.1:40000 a_suite=AES_CM_128_HMAC_SHA1_80 "
             "a_key=%s b_to=127.0.0.1:30002 b_at=127.0.0.1:40002 b_suite=AEAD_AES_128_GCM "
             "b_key=%s  # a comment\n",
             akey, bkey);
    assert_int_equal(srtp_packets_parse_line(line, &spec, err, sizeof(err)), 0);
    assert_int_equal(netaddr_port(&spec.a_to), 30000);
    assert_int_equal(netaddr_port(&spec.b_at), 40002);
    assert_false(spec.b.plain);
    assert_int_equal(spec.b.suite, RTP_SRTP_AEAD_AES_128_GCM);
    assert_memory_equal(spec.a.key, a.key, 16);
    assert_memory_equal(spec.b.salt, b.salt, 12);

    snprintf(line, sizeof(line),
             "a_to=127.0.0.1:30000 a_from=127.0.0.1:40000 a_suite=AES_CM_128_HMAC_SHA1_80 "
             "a_key=%s b_to=127.0.0.1:30002 b_at=127.0.0.1:40002 b_suite=RTP",
             akey);
    assert_int_equal(srtp_packets_parse_line(line, &spec, err, sizeof(err)), 0);
    assert_true(spec.b.plain);

    assert_int_equal(srtp_packets_parse_line("   # nothing\n", &spec, err, sizeof(err)), 1);
    assert_int_equal(srtp_packets_parse_line("\n", &spec, err, sizeof(err)), 1);

    /* refused: a missing field, a key of another suite's length, A plain,
     * an unknown word, a port 0 */
    const char *bad[] = {
        "a_to=127.0.0.1:30000 a_from=127.0.0.1:40000 a_suite=AES_CM_128_HMAC_SHA1_80 a_key=%s "
        "b_to=127.0.0.1:30002 b_suite=RTP",
        "a_to=127.0.0.1:30000 a_from=127.0.0.1:40000 a_suite=AEAD_AES_256_GCM a_key=%s "
        "b_to=127.0.0.1:30002 b_at=127.0.0.1:40002 b_suite=RTP",
        "a_to=127.0.0.1:30000 a_from=127.0.0.1:40000 a_suite=RTP a_key=%s "
        "b_to=127.0.0.1:30002 b_at=127.0.0.1:40002 b_suite=RTP",
        "a_to=127.0.0.1:30000 a_from=127.0.0.1:40000 a_suite=AES_CM_128_HMAC_SHA1_80 a_key=%s "
        "b_to=127.0.0.1:30002 b_at=127.0.0.1:40002 b_suite=RTP colour=blue",
        "a_to=127.0.0.1:0 a_from=127.0.0.1:40000 a_suite=AES_CM_128_HMAC_SHA1_80 a_key=%s "
        "b_to=127.0.0.1:30002 b_at=127.0.0.1:40002 b_suite=RTP",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(line, sizeof(line), bad[i], akey);
        err[0] = '\0';
        assert_int_equal(srtp_packets_parse_line(line, &spec, err, sizeof(err)), -EINVAL);
        assert_true(err[0] != '\0');
    }
}

static void test_sequence_numbers_back_to_packets(void **state)
{
    (void)state;
    /* within a run, across its rollover, out of order */
    assert_int_equal(srtp_packets_k_from_seq(10, 0, 0), 10);
    assert_int_equal(srtp_packets_k_from_seq(2, 65530, 3), 8);
    assert_int_equal(srtp_packets_k_from_seq(65533, 65530, 8), 3);
    assert_int_equal(srtp_packets_k_from_seq(5, 0, 70000), 65541);
    /* a straggler of an earlier run (its index below first_index) */
    assert_int_equal(srtp_packets_k_from_seq(990, 1000, 0), UINT64_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_suite_unprotects_with_libsrtp),
        cmocka_unit_test(test_plain_hello_is_plain_rtp),
        cmocka_unit_test(test_streams_file_lines),
        cmocka_unit_test(test_sequence_numbers_back_to_packets),
    };
    /* libsrtp and Parley's algorithms, made once for every test */
    if (srtp_init() != srtp_err_status_ok || rtp_srtp_crypto_new(NULL, NULL, &g_crypto) != 0)
        return 1;
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    rtp_srtp_crypto_free(g_crypto);
    srtp_shutdown();
    return failed;
}
