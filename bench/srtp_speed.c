/*
 * srtp_speed — what one core forwards through rtp/srtp: for each suite,
 * 172-octet G.711 RTP packets (12-octet header, 160 octets of payload) are
 * unprotected with one leg's session and protected again with the other
 * leg's, as the media engine does; also protect and unprotect alone, and
 * the same forwarding through libsrtp2 (Debian's, on NSS) for a ratio on
 * the same machine in the same run.
 *
 * Not part of the test suite. Build after `ninja -C build`, run pinned:
 *   cc -O2 -Isrc -o build/srtp_speed bench/srtp_speed.c build/libparley.a \
 *      $(pkg-config --cflags --libs openssl libsrtp2) -lpthread
 *   taskset -c 1 build/srtp_speed [seconds per figure, default 1]
 *
 * The packets of the far end are protected ahead of each timed batch
 * (a sender would have done that), so only the forwarding is timed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <srtp2/srtp.h>

#include "rtp/srtp.h"

#define BATCH   8192
#define PKT_LEN 172
#define SLOT    (PKT_LEN + 32)

static uint8_t g_in[BATCH][SLOT];
static size_t g_len[BATCH];

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t make_rtp(uint8_t *p, uint16_t seq, uint32_t ssrc)
{
    memset(p, 0, PKT_LEN);
    p[0] = 0x80;
    p[1] = 0;
    p[2] = (uint8_t)(seq >> 8);
    p[3] = (uint8_t)seq;
    uint32_t ts = (uint32_t)seq * 160u;
    for (int i = 0; i < 4; i++) {
        p[4 + i] = (uint8_t)(ts >> (24 - 8 * i));
        p[8 + i] = (uint8_t)(ssrc >> (24 - 8 * i));
    }
    for (int i = 12; i < PKT_LEN; i++)
        p[i] = (uint8_t)(0xd5 ^ (seq + i));
    return PKT_LEN;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "srtp_speed: %s: %d\n", what, rc);
    exit(1);
}

enum mode { FORWARD, PROTECT, UNPROTECT };

/* Packets per second for one mode and suite through rtp/srtp. */
static double parley_rate(struct rtp_srtp_crypto *c, enum rtp_srtp_suite suite, enum mode mode,
                          double seconds)
{
    uint8_t k1[RTP_SRTP_MAX_KEY], s1[RTP_SRTP_MAX_SALT], k2[RTP_SRTP_MAX_KEY],
        s2[RTP_SRTP_MAX_SALT];
    struct rtp_srtp *peer, *in, *out;
    int rc;

    if (rtp_srtp_generate_master(NULL, suite, k1, s1) ||
        rtp_srtp_generate_master(NULL, suite, k2, s2))
        die("keys", -EIO);
    if ((rc = rtp_srtp_new(c, suite, k1, s1, 0, &peer)) ||
        (rc = rtp_srtp_new(c, suite, k1, s1, 0, &in)) ||
        (rc = rtp_srtp_new(c, suite, k2, s2, 0, &out)))
        die("rtp_srtp_new", rc);
    uint32_t seq = 0;
    double spent = 0;
    unsigned long done = 0;
    while (spent < seconds) {
        /* The far end's packets (untimed). */
        for (int i = 0; i < BATCH; i++) {
            size_t n = make_rtp(g_in[i], (uint16_t)(seq + i), 0x11111111);
            if (mode == PROTECT) {
                g_len[i] = n;
                continue;
            }
            if ((rc = rtp_srtp_protect(peer, g_in[i], n, SLOT, &g_len[i])))
                die("peer protect", rc);
        }
        seq += BATCH;
        double t0 = now();
        for (int i = 0; i < BATCH; i++) {
            size_t n = g_len[i], m;
            if (mode != PROTECT && (rc = rtp_srtp_unprotect(in, g_in[i], n, &n)))
                die("unprotect", rc);
            if (mode != UNPROTECT && (rc = rtp_srtp_protect(out, g_in[i], n, SLOT, &m)))
                die("protect", rc);
        }
        spent += now() - t0;
        done += BATCH;
    }
    rtp_srtp_free(peer);
    rtp_srtp_free(in);
    rtp_srtp_free(out);
    return (double)done / spent;
}

static srtp_t lib_session(enum rtp_srtp_suite suite, const uint8_t *key, const uint8_t *salt,
                          bool inbound)
{
    uint8_t concat[RTP_SRTP_MAX_KEY + RTP_SRTP_MAX_SALT];
    srtp_policy_t p;
    srtp_t s;
    size_t kl = rtp_srtp_suite_key_len(suite);
    memcpy(concat, key, kl);
    memcpy(concat + kl, salt, rtp_srtp_suite_salt_len(suite));
    memset(&p, 0, sizeof(p));
    switch (suite) {
    case RTP_SRTP_AES_CM_128_HMAC_SHA1_80:
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&p.rtp);
        break;
    case RTP_SRTP_AES_CM_128_HMAC_SHA1_32:
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32(&p.rtp);
        break;
    case RTP_SRTP_AEAD_AES_128_GCM:
        srtp_crypto_policy_set_aes_gcm_128_16_auth(&p.rtp);
        break;
    default:
        srtp_crypto_policy_set_aes_gcm_256_16_auth(&p.rtp);
        break;
    }
    p.rtcp = p.rtp;
    p.ssrc.type = inbound ? ssrc_any_inbound : ssrc_any_outbound;
    p.key = concat;
    p.window_size = 128;
    if (srtp_create(&s, &p) != srtp_err_status_ok)
        die("srtp_create", -EIO);
    return s;
}

/* The same forwarding through libsrtp2. */
static double libsrtp_rate(enum rtp_srtp_suite suite, double seconds)
{
    uint8_t k1[RTP_SRTP_MAX_KEY], s1[RTP_SRTP_MAX_SALT], k2[RTP_SRTP_MAX_KEY],
        s2[RTP_SRTP_MAX_SALT];
    if (rtp_srtp_generate_master(NULL, suite, k1, s1) ||
        rtp_srtp_generate_master(NULL, suite, k2, s2))
        die("keys", -EIO);
    srtp_t peer = lib_session(suite, k1, s1, false), in = lib_session(suite, k1, s1, true),
           out = lib_session(suite, k2, s2, false);
    uint32_t seq = 0;
    double spent = 0;
    unsigned long done = 0;
    while (spent < seconds) {
        for (int i = 0; i < BATCH; i++) {
            int n = (int)make_rtp(g_in[i], (uint16_t)(seq + i), 0x22222222);
            if (srtp_protect(peer, g_in[i], &n) != srtp_err_status_ok)
                die("libsrtp peer protect", -EIO);
            g_len[i] = (size_t)n;
        }
        seq += BATCH;
        double t0 = now();
        for (int i = 0; i < BATCH; i++) {
            int n = (int)g_len[i];
            if (srtp_unprotect(in, g_in[i], &n) != srtp_err_status_ok ||
                srtp_protect(out, g_in[i], &n) != srtp_err_status_ok)
                die("libsrtp forward", -EIO);
        }
        spent += now() - t0;
        done += BATCH;
    }
    srtp_dealloc(peer);
    srtp_dealloc(in);
    srtp_dealloc(out);
    return (double)done / spent;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 1.0;
    struct rtp_srtp_crypto *c;
    int rc;

    if (seconds <= 0)
        seconds = 1.0;
    if ((rc = rtp_srtp_crypto_new(NULL, NULL, &c)))
        die("rtp_srtp_crypto_new", rc);
    if (srtp_init() != srtp_err_status_ok)
        die("srtp_init", -EIO);
    printf("%-26s %14s %14s %14s %16s %8s\n", "suite (172-octet RTP)", "forward/s", "protect/s",
           "unprotect/s", "libsrtp fwd/s", "ratio");
    for (int s = 0; s < RTP_SRTP_SUITE_COUNT; s++) {
        enum rtp_srtp_suite suite = (enum rtp_srtp_suite)s;
        double fwd = parley_rate(c, suite, FORWARD, seconds);
        double prot = parley_rate(c, suite, PROTECT, seconds);
        double unprot = parley_rate(c, suite, UNPROTECT, seconds);
        double lib = libsrtp_rate(suite, seconds);
        printf("%-26s %14.0f %14.0f %14.0f %16.0f %8.2f\n", rtp_srtp_suite_name(suite), fwd, prot,
               unprot, lib, fwd / lib);
    }
    srtp_shutdown();
    rtp_srtp_crypto_free(c);
    return 0;
}
