/*
 * rtp/srtp against the known answers of RFC 3711 Appendix B.2 (AES-CM
 * keystream) and B.3 (key derivation) and of RFC 7714 §16 (SRTP with
 * AEAD_AES_128_GCM and AEAD_AES_256_GCM) and §17 (SRTCP with both),
 * byte for byte; then the behaviour around them: round trips of every
 * suite across a sequence number rollover, reordering within the replay
 * window, replays and packets too old, truncation, tampering of every bit
 * (and the state left as it was by each refusal), several sources, a full
 * source table, key lifetimes, and the SDES inline keys.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/crypto.h>

#include "crypto/policy.h"
#include "rtp/packet.h"
#include "rtp/srtp.h"

#define SV(s) strview_cstr(s)

static struct rtp_srtp_crypto *g_crypto;

static const enum rtp_srtp_suite all_suites[] = {
    RTP_SRTP_AES_CM_128_HMAC_SHA1_80,
    RTP_SRTP_AES_CM_128_HMAC_SHA1_32,
    RTP_SRTP_AEAD_AES_128_GCM,
    RTP_SRTP_AEAD_AES_256_GCM,
};
#define NSUITES (sizeof(all_suites) / sizeof(all_suites[0]))

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;
    int hi = -1;
    for (const char *p = hex; *p; p++) {
        int v;
        if (*p >= '0' && *p <= '9')
            v = *p - '0';
        else if (*p >= 'a' && *p <= 'f')
            v = *p - 'a' + 10;
        else if (*p >= 'A' && *p <= 'F')
            v = *p - 'A' + 10;
        else
            continue;
        if (hi < 0) {
            hi = v;
        } else {
            assert_true(n < cap);
            out[n++] = (uint8_t)(hi << 4 | v);
            hi = -1;
        }
    }
    assert_int_equal(hi, -1);
    return n;
}

static int setup(void **state)
{
    (void)state;
    return rtp_srtp_crypto_new(NULL, NULL, &g_crypto);
}

static int teardown(void **state)
{
    (void)state;
    rtp_srtp_crypto_free(g_crypto);
    g_crypto = NULL;
    return 0;
}

/* A master key and salt that differ per suite and per seed. */
static void master_for(enum rtp_srtp_suite suite, uint8_t seed, uint8_t *key, uint8_t *salt)
{
    for (size_t i = 0; i < rtp_srtp_suite_key_len(suite); i++)
        key[i] = (uint8_t)(seed * 31 + i * 7 + 1);
    for (size_t i = 0; i < rtp_srtp_suite_salt_len(suite); i++)
        salt[i] = (uint8_t)(seed * 17 + i * 13 + 5);
}

static struct rtp_srtp *session(enum rtp_srtp_suite suite, uint8_t seed, unsigned window)
{
    uint8_t key[RTP_SRTP_MAX_KEY], salt[RTP_SRTP_MAX_SALT];
    struct rtp_srtp *s = NULL;
    master_for(suite, seed, key, salt);
    assert_int_equal(rtp_srtp_new(g_crypto, suite, key, salt, window, &s), 0);
    assert_non_null(s);
    return s;
}

/* An RTP packet: cc CSRCs, an extension of ext_words words (none if
 * negative), plen payload octets derived from seq, pad octets of padding. */
static size_t make_rtp(uint8_t *p, uint16_t seq, uint32_t ssrc, size_t plen, unsigned cc,
                       int ext_words, unsigned pad)
{
    size_t n = 0;
    p[n++] = (uint8_t)(0x80 | (pad ? 0x20 : 0) | (ext_words >= 0 ? 0x10 : 0) | cc);
    p[n++] = 0; /* PCMU */
    p[n++] = (uint8_t)(seq >> 8);
    p[n++] = (uint8_t)seq;
    uint32_t ts = (uint32_t)seq * 160u;
    for (int i = 3; i >= 0; i--)
        p[n++] = (uint8_t)(ts >> (8 * i));
    for (int i = 3; i >= 0; i--)
        p[n++] = (uint8_t)(ssrc >> (8 * i));
    for (unsigned c = 0; c < cc; c++)
        for (int i = 0; i < 4; i++)
            p[n++] = (uint8_t)(0xc0 + c);
    if (ext_words >= 0) {
        p[n++] = 0xbe;
        p[n++] = 0xde;
        p[n++] = (uint8_t)(ext_words >> 8);
        p[n++] = (uint8_t)ext_words;
        for (int w = 0; w < 4 * ext_words; w++)
            p[n++] = (uint8_t)(0xe0 + w);
    }
    for (size_t i = 0; i < plen; i++)
        p[n++] = (uint8_t)(seq + i * 3);
    for (unsigned i = 0; i + 1 < pad; i++)
        p[n++] = 0;
    if (pad)
        p[n++] = (uint8_t)pad;
    return n;
}

/* A compound RTCP packet: an SR of the given SSRC and an SDES CNAME. */
static size_t make_rtcp(uint8_t *p, uint32_t ssrc, uint32_t stamp)
{
    size_t n = 0;
    static const uint8_t sr[] = {0x80, 200, 0, 6};
    memcpy(p, sr, 4);
    n = 4;
    for (int i = 3; i >= 0; i--)
        p[n++] = (uint8_t)(ssrc >> (8 * i));
    for (int k = 0; k < 5; k++)
        for (int i = 3; i >= 0; i--)
            p[n++] = (uint8_t)((stamp + (uint32_t)k) >> (8 * i));
    /* SDES: one chunk, CNAME "parley" and the end, padded to a word. */
    static const uint8_t sdes[] = {0x81, 202, 0, 4};
    memcpy(p + n, sdes, 4);
    n += 4;
    for (int i = 3; i >= 0; i--)
        p[n++] = (uint8_t)(ssrc >> (8 * i));
    static const uint8_t item[] = {1, 6, 'p', 'a', 'r', 'l', 'e', 'y'};
    memcpy(p + n, item, sizeof(item));
    n += sizeof(item);
    p[n++] = 0;
    p[n++] = 0;
    p[n++] = 0;
    p[n++] = 0;
    return n;
}

/* --- suites ------------------------------------------------------------------ */

static void test_suites(void **state)
{
    (void)state;
    static const size_t want[][5] = {
        {16, 14, 10, 10, 0},
        {16, 14, 4, 10, 0},
        {16, 12, 16, 16, 0},
        {32, 12, 16, 16, 0},
    };
    for (size_t i = 0; i < NSUITES; i++) {
        enum rtp_srtp_suite s = all_suites[i], got;
        const char *name = rtp_srtp_suite_name(s);
        assert_int_equal(rtp_srtp_suite_parse(SV(name), &got), 0);
        assert_int_equal(got, s);
        assert_int_equal(rtp_srtp_suite_key_len(s), want[i][0]);
        assert_int_equal(rtp_srtp_suite_salt_len(s), want[i][1]);
        assert_int_equal(rtp_srtp_suite_tag_len(s), want[i][2]);
        assert_int_equal(rtp_srtcp_suite_tag_len(s), want[i][3]);
        /* The same facts as the policy's table. */
        const struct crypto_srtp_suite *p = crypto_srtp_suite_find(SV(name));
        assert_non_null(p);
        assert_int_equal(p->key_len, rtp_srtp_suite_key_len(s));
        assert_int_equal(p->salt_len, rtp_srtp_suite_salt_len(s));
        assert_true(rtp_srtp_crypto_has_suite(g_crypto, s));
    }
    enum rtp_srtp_suite got;
    assert_int_equal(rtp_srtp_suite_parse(SV("AES_256_CM_HMAC_SHA1_80"), &got), -ENOTSUP);
    assert_int_equal(rtp_srtp_suite_parse(SV("F8_128_HMAC_SHA1_80"), &got), -ENOTSUP);
    assert_int_equal(rtp_srtp_suite_parse(SV("aes_cm_128_hmac_sha1_80"), &got), -EINVAL);
    assert_int_equal(rtp_srtp_suite_parse(SV("AES_CM_128_HMAC_SHA1_8"), &got), -EINVAL);
    assert_int_equal(rtp_srtp_suite_parse(SV(""), &got), -EINVAL);
    assert_string_equal(rtp_srtp_suite_name(RTP_SRTP_SUITE_COUNT), "?");
    assert_int_equal(rtp_srtp_suite_key_len(RTP_SRTP_SUITE_COUNT), 0);
    assert_int_equal(rtp_srtp_suite_tag_len((enum rtp_srtp_suite) - 1), 0);
}

/* --- RFC 3711 Appendix B ------------------------------------------------------ */

/*
 * RFC 3711 B.2, AES-CM test vectors: session key 2B7E1516 28AED2A6
 * ABF71588 09CF4F3C, session salt F0F1F2F3 F4F5F6F7 F8F9FAFB FCFD, ROC 0,
 * SEQ 0, SSRC 0, so the first counter block is F0F1...FCFD0000; the RFC
 * lists the keystream blocks 0, 1, 2 and 0xFEFF, 0xFF00, 0xFF01 of a
 * segment of 0xFF02 blocks.
 */
static const char b2_key[] = "2B7E151628AED2A6ABF7158809CF4F3C";
static const char b2_salt[] = "F0F1F2F3F4F5F6F7F8F9FAFBFCFD";
static const struct {
    unsigned block;
    const char *hex;
} b2_blocks[] = {
    {0x0000, "E03EAD0935C95E80E166B16DD92B4EB4"}, {0x0001, "D23513162B02D0F72A43A2FE4A5F97AB"},
    {0x0002, "41E95B3BB0A2E8DD477901E4FCA894C0"}, {0xFEFF, "EC8CDF7398607CB0F2D21675EA9EA1E4"},
    {0xFF00, "362B7C3C6773516318A077D7FC5073AE"}, {0xFF01, "6A2CC3787889374FBEB4C81B17BA6C44"},
};

static void test_rfc3711_b2_keystream(void **state)
{
    (void)state;
    uint8_t key[16], salt[14], want[16];
    assert_int_equal(unhex(b2_key, key, sizeof(key)), 16);
    assert_int_equal(unhex(b2_salt, salt, sizeof(salt)), 14);

    /* The whole segment through the AES-CM generator the KDF uses: with
     * label 0 its IV is the salt * 2^16, the B.2 counter. */
    size_t seg = 0xFF02 * 16;
    uint8_t *ks = malloc(seg);
    assert_non_null(ks);
    assert_int_equal(
        rtp_srtp_kdf(g_crypto, key, 16, salt, 14, RTP_SRTP_LABEL_RTP_ENCRYPTION, ks, seg), 0);
    for (size_t i = 0; i < sizeof(b2_blocks) / sizeof(b2_blocks[0]); i++) {
        unhex(b2_blocks[i].hex, want, sizeof(want));
        assert_memory_equal(ks + 16 * (size_t)b2_blocks[i].block, want, 16);
    }
    free(ks);

    /* And through the packet path: an SRTP packet of SSRC 0, SEQ 0, ROC 0
     * whose payload is 48 zero octets encrypts to the first three blocks
     * (a packet cannot be long enough to reach block 0xFEFF). */
    struct rtp_srtp_session_keys sk;
    memset(&sk, 0, sizeof(sk));
    memcpy(sk.rtp_key, key, 16);
    memcpy(sk.rtp_salt, salt, 14);
    struct rtp_srtp *s = NULL;
    assert_int_equal(
        rtp_srtp_new_with_session_keys(g_crypto, RTP_SRTP_AES_CM_128_HMAC_SHA1_80, &sk, 0, &s), 0);
    uint8_t pkt[12 + 48 + 10] = {0x80, 0};
    size_t out = 0;
    assert_int_equal(rtp_srtp_protect(s, pkt, 60, sizeof(pkt), &out), 0);
    assert_int_equal(out, 70);
    for (size_t i = 0; i < 3; i++) {
        unhex(b2_blocks[i].hex, want, sizeof(want));
        assert_memory_equal(pkt + 12 + 16 * i, want, 16);
    }
    rtp_srtp_free(s);
}

/*
 * RFC 3711 B.3, key derivation test vectors: master key E1F97A0D
 * 3E018BE0 D64FA32C 06DE4139, master salt 0EC675AD 498AFEEB B6960B3A
 * ABE6, index DIV kdr 0. The RFC prints 94 octets of the authentication
 * key's keystream; SRTP uses the first 20.
 */
static void test_rfc3711_b3_kdf(void **state)
{
    (void)state;
    uint8_t mk[16], ms[14], want[94], got[94];
    unhex("E1F97A0D3E018BE0D64FA32C06DE4139", mk, sizeof(mk));
    unhex("0EC675AD498AFEEBB6960B3AABE6", ms, sizeof(ms));

    unhex("C61E7A93744F39EE10734AFE3FF7A087", want, sizeof(want));
    assert_int_equal(rtp_srtp_kdf(g_crypto, mk, 16, ms, 14, RTP_SRTP_LABEL_RTP_ENCRYPTION, got, 16),
                     0);
    assert_memory_equal(got, want, 16);

    unhex("30CBBC08863D8C85D49DB34A9AE1", want, sizeof(want));
    assert_int_equal(rtp_srtp_kdf(g_crypto, mk, 16, ms, 14, RTP_SRTP_LABEL_RTP_SALT, got, 14), 0);
    assert_memory_equal(got, want, 14);

    size_t n = unhex("CEBE321F6FF7716B6FD4AB49AF256A15"
                     "6D38BAA48F0A0ACF3C34E2359E6CDBCE"
                     "E049646C43D9327AD175578EF7227098"
                     "6371C10C9A369AC2F94A8C5FBCDDDC25"
                     "6D6E919A48B610EF17C2041E47403576"
                     "6B68642C59BBFC2F34DB60DBDFB2",
                     want, sizeof(want));
    assert_int_equal(n, 94);
    assert_int_equal(rtp_srtp_kdf(g_crypto, mk, 16, ms, 14, RTP_SRTP_LABEL_RTP_AUTH, got, 94), 0);
    assert_memory_equal(got, want, 94);

    /* A session made from that master key uses those keys: its first
     * packet equals one protected with the session keys given directly. */
    struct rtp_srtp_session_keys sk;
    memset(&sk, 0, sizeof(sk));
    unhex("C61E7A93744F39EE10734AFE3FF7A087", sk.rtp_key, 16);
    unhex("30CBBC08863D8C85D49DB34A9AE1", sk.rtp_salt, 14);
    memcpy(sk.rtp_auth, want, 20);
    struct rtp_srtp *a = NULL, *b = NULL;
    assert_int_equal(rtp_srtp_new(g_crypto, RTP_SRTP_AES_CM_128_HMAC_SHA1_80, mk, ms, 0, &a), 0);
    assert_int_equal(
        rtp_srtp_new_with_session_keys(g_crypto, RTP_SRTP_AES_CM_128_HMAC_SHA1_80, &sk, 0, &b), 0);
    uint8_t p1[200], p2[200];
    size_t l1 = make_rtp(p1, 4711, 0x12345678, 160, 0, -1, 0), o1, o2;
    memcpy(p2, p1, l1);
    assert_int_equal(rtp_srtp_protect(a, p1, l1, sizeof(p1), &o1), 0);
    assert_int_equal(rtp_srtp_protect(b, p2, l1, sizeof(p2), &o2), 0);
    assert_int_equal(o1, o2);
    assert_memory_equal(p1, p2, o1);
    rtp_srtp_free(a);
    rtp_srtp_free(b);

    /* Arguments the KDF refuses. */
    assert_int_equal(rtp_srtp_kdf(g_crypto, mk, 24, ms, 14, 0, got, 16), -EINVAL);
    assert_int_equal(rtp_srtp_kdf(g_crypto, mk, 16, ms, 15, 0, got, 16), -EINVAL);
    assert_int_equal(rtp_srtp_kdf(g_crypto, mk, 16, ms, 14, 6, got, 16), -EINVAL);
    assert_int_equal(rtp_srtp_kdf(NULL, mk, 16, ms, 14, 0, got, 16), -EINVAL);
}

/* --- RFC 7714 §16 and §17 ------------------------------------------------------ */

/*
 * RFC 7714 §16 and §17 state their vectors with the session key and the
 * session salt, not a master key: key 000102..0f (AEAD_AES_128_GCM) or
 * 000102..1f (AEAD_AES_256_GCM), salt 51756964 2070726f 2071756f ("Quid
 * pro quo") for SRTP and SRTCP alike.
 *
 * The bytes below were taken from the RFC's vectors as several public
 * SRTP implementations reproduce them in their own tests (the RFC text
 * itself was not at hand), and agree between those implementations.
 */
static const char v_key128[] = "000102030405060708090a0b0c0d0e0f";
static const char v_key256[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
static const char v_salt[] = "517569642070726f2071756f";

/* §16: RTP header 8040f17b 8041f8d3 5501a0b2 (SEQ 0xf17b, SSRC
 * 0x5501a0b2, ROC 0), payload "Gallia est omnis divisa in partes tres". */
static const char v_rtp[] = "8040f17b8041f8d35501a0b2"
                            "47616c6c696120657374206f6d6e69732064697669736120696e20706172746573"
                            "2074726573";
/* §16.1.1 (encryption) and §16.1.2 (decryption), AEAD_AES_128_GCM. */
static const char v_srtp128[] = "8040f17b8041f8d35501a0b2"
                                "f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f42a5f47a51c7d19b"
                                "36de3adf8833"
                                "899d7f27beb16a9152cf765ee4390cce";
/* §16.2.1 (encryption) and §16.2.2 (decryption), AEAD_AES_256_GCM. */
static const char v_srtp256[] = "8040f17b8041f8d35501a0b2"
                                "32b1de78a822fe12ef9f78fa332e33aab18012389a58e2f3b50b2a0276ffae0f"
                                "1ba63799b87b"
                                "7aa3db36dfffd6b0f9bb7878d7a76c13";

/* §17: a sender report of SSRC 0x4d617273 ("Mars"), SRTCP index 0x5d4. */
static const char v_rtcp[] = "81c8000d4d6172734e5450314e545032525450200000042a0000e9304c756e61"
                             "deadbeefdeadbeefdeadbeefdeadbeefdeadbeef";
/* §17.1: AEAD_AES_128_GCM, E = 1: header, ciphertext, tag, E/index. */
static const char v_srtcp128[] = "81c8000d4d617273"
                                 "63e94885dcdab67ca727d7662f6b7e997ff5c0f76c06f32dc676a5f1730d6fda"
                                 "4ce09b4686303ded0bb9275b"
                                 "c84aa45896cf4d2fc5abf87245d9eade"
                                 "800005d4";
/* §17.2: AEAD_AES_256_GCM, E = 1. */
static const char v_srtcp256[] = "81c8000d4d617273"
                                 "d50ae4d1f5ce5d304ba297e47d470c282c3ece5dbffe0a50a2eaa5c1110555be"
                                 "8415f658c61de0476f1b6fad"
                                 "1d1eb30c4446839f57ff6f6cb26ac3be"
                                 "800005d4";
/* §17.3 (AEAD_AES_128_GCM) and §17.4 (AEAD_AES_256_GCM): E = 0, the
 * packet authenticated but not encrypted; the tags. */
static const char v_srtcp128_e0_tag[] = "841dd9683dd78ec92ae58790125f62b3";
static const char v_srtcp256_e0_tag[] = "91db4afbfeee5a978fab4393ed2615fe";

static struct rtp_srtp *vector_session(enum rtp_srtp_suite suite)
{
    struct rtp_srtp_session_keys sk;
    struct rtp_srtp *s = NULL;
    const char *key = suite == RTP_SRTP_AEAD_AES_256_GCM ? v_key256 : v_key128;
    memset(&sk, 0, sizeof(sk));
    unhex(key, sk.rtp_key, sizeof(sk.rtp_key));
    unhex(key, sk.rtcp_key, sizeof(sk.rtcp_key));
    unhex(v_salt, sk.rtp_salt, sizeof(sk.rtp_salt));
    unhex(v_salt, sk.rtcp_salt, sizeof(sk.rtcp_salt));
    assert_int_equal(rtp_srtp_new_with_session_keys(g_crypto, suite, &sk, 0, &s), 0);
    return s;
}

static void check_srtp_vector(enum rtp_srtp_suite suite, const char *protected_hex)
{
    uint8_t plain[128], prot[128], buf[128];
    size_t pl = unhex(v_rtp, plain, sizeof(plain));
    size_t ql = unhex(protected_hex, prot, sizeof(prot)), out = 0;
    assert_int_equal(ql, pl + 16);

    struct rtp_srtp *tx = vector_session(suite), *rx = vector_session(suite);
    memcpy(buf, plain, pl);
    assert_int_equal(rtp_srtp_protect(tx, buf, pl, sizeof(buf), &out), 0);
    assert_int_equal(out, ql);
    assert_memory_equal(buf, prot, ql);

    assert_int_equal(rtp_srtp_unprotect(rx, buf, ql, &out), 0);
    assert_int_equal(out, pl);
    assert_memory_equal(buf, plain, pl);
    /* Once only. */
    memcpy(buf, prot, ql);
    assert_int_equal(rtp_srtp_unprotect(rx, buf, ql, &out), -EALREADY);
    rtp_srtp_free(tx);
    rtp_srtp_free(rx);
}

static void test_rfc7714_16_srtp(void **state)
{
    (void)state;
    check_srtp_vector(RTP_SRTP_AEAD_AES_128_GCM, v_srtp128);
    check_srtp_vector(RTP_SRTP_AEAD_AES_256_GCM, v_srtp256);
}

static void check_srtcp_vector(enum rtp_srtp_suite suite, const char *protected_hex,
                               const char *e0_tag_hex)
{
    uint8_t plain[128], prot[128], buf[128];
    size_t pl = unhex(v_rtcp, plain, sizeof(plain));
    size_t ql = unhex(protected_hex, prot, sizeof(prot)), out = 0;
    assert_int_equal(ql, pl + 20);

    /* The sender's index is 0x5d4 when the packet before was 0x5d3. */
    struct rtp_srtp *tx = vector_session(suite), *rx = vector_session(suite);
    assert_int_equal(rtp_srtcp_set_index(tx, 0x4d617273, 0x5d3), 0);
    memcpy(buf, plain, pl);
    assert_int_equal(rtp_srtcp_protect(tx, buf, pl, sizeof(buf), &out), 0);
    assert_int_equal(out, ql);
    assert_memory_equal(buf, prot, ql);

    assert_int_equal(rtp_srtcp_unprotect(rx, buf, ql, &out), 0);
    assert_int_equal(out, pl);
    assert_memory_equal(buf, plain, pl);
    memcpy(buf, prot, ql);
    assert_int_equal(rtp_srtcp_unprotect(rx, buf, ql, &out), -EALREADY);
    rtp_srtp_free(rx);

    /* E = 0: the plain packet, the tag, then 000005d4. Refused unless
     * negotiated (UNENCRYPTED_SRTCP), then taken when authentic. */
    rx = vector_session(suite);
    memcpy(buf, plain, pl);
    unhex(e0_tag_hex, buf + pl, 16);
    unhex("000005d4", buf + pl + 16, 4);
    memcpy(prot, buf, pl + 20);
    assert_int_equal(rtp_srtcp_unprotect(rx, prot, pl + 20, &out), -EPROTO);
    rtp_srtp_allow_unencrypted_srtcp(rx, true);
    prot[10] ^= 0x40; /* tampered copy, for later */
    assert_int_equal(rtp_srtcp_unprotect(rx, prot, pl + 20, &out), -EBADMSG);
    assert_int_equal(rtp_srtcp_unprotect(rx, buf, pl + 20, &out), 0);
    assert_int_equal(out, pl);
    assert_memory_equal(buf, plain, pl);
    rtp_srtp_free(tx);
    rtp_srtp_free(rx);
}

static void test_rfc7714_17_srtcp(void **state)
{
    (void)state;
    check_srtcp_vector(RTP_SRTP_AEAD_AES_128_GCM, v_srtcp128, v_srtcp128_e0_tag);
    check_srtcp_vector(RTP_SRTP_AEAD_AES_256_GCM, v_srtcp256, v_srtcp256_e0_tag);
}

/* --- round trips ------------------------------------------------------------ */

/* Protect with tx, unprotect with rx, compare with the original. */
static void round_trip(struct rtp_srtp *tx, struct rtp_srtp *rx, const uint8_t *orig, size_t len)
{
    uint8_t buf[1600];
    size_t out = 0, back = 0;
    size_t tag = rtp_srtp_suite_tag_len(rtp_srtp_suite(tx));
    memcpy(buf, orig, len);
    assert_int_equal(rtp_srtp_protect(tx, buf, len, sizeof(buf), &out), 0);
    assert_int_equal(out, len + tag);
    assert_int_equal(rtp_srtp_unprotect(rx, buf, out, &back), 0);
    assert_int_equal(back, len);
    assert_memory_equal(buf, orig, len);
}

static void test_round_trip_rollover(void **state)
{
    (void)state;
    for (size_t i = 0; i < NSUITES; i++) {
        enum rtp_srtp_suite suite = all_suites[i];
        struct rtp_srtp *tx = session(suite, 1, 0), *rx = session(suite, 1, 0);
        uint8_t pkt[300], enc[320];
        /* 65530 .. 65535, 0 .. 9: ROC 0 then 1, on both sides. */
        for (unsigned k = 0; k < 16; k++) {
            uint16_t seq = (uint16_t)(65530 + k);
            size_t n = make_rtp(pkt, seq, 0xcafe0001, 160, 0, -1, 0);
            round_trip(tx, rx, pkt, n);
        }
        /* The sender is now in ROC 1: a sender told so gives the same
         * bytes for the next packet; one left in ROC 0 does not. */
        struct rtp_srtp *ref = session(suite, 1, 0);
        assert_int_equal(rtp_srtp_set_index(ref, 0xcafe0001, (UINT64_C(1) << 16) | 9), 0);
        size_t n = make_rtp(pkt, 10, 0xcafe0001, 160, 0, -1, 0), o1, o2;
        memcpy(enc, pkt, n);
        assert_int_equal(rtp_srtp_protect(tx, pkt, n, sizeof(pkt), &o1), 0);
        assert_int_equal(rtp_srtp_protect(ref, enc, n, sizeof(enc), &o2), 0);
        assert_int_equal(o1, o2);
        assert_memory_equal(pkt, enc, o1);
        rtp_srtp_free(ref);
        /* Headers with CSRCs, an extension and padding go through too:
         * the header stays in clear, the rest does not. */
        n = make_rtp(pkt, 11, 0xcafe0001, 33, 3, 2, 7);
        memcpy(enc, pkt, n);
        struct rtp_header h;
        assert_int_equal(rtp_packet_parse(pkt, n, &h), 0);
        assert_int_equal(rtp_srtp_protect(tx, enc, n, sizeof(enc), &o1), 0);
        assert_memory_equal(enc, pkt, h.header_len);
        assert_memory_not_equal(enc + h.header_len, pkt + h.header_len, 16);
        assert_int_equal(rtp_srtp_unprotect(rx, enc, o1, &o2), 0);
        assert_int_equal(o2, n);
        assert_memory_equal(enc, pkt, n);
        /* An empty payload is an RTP packet too. */
        n = make_rtp(pkt, 12, 0xcafe0001, 0, 0, -1, 0);
        round_trip(tx, rx, pkt, n);
        rtp_srtp_free(tx);
        rtp_srtp_free(rx);
    }
}

static void test_rtcp_round_trip(void **state)
{
    (void)state;
    for (size_t i = 0; i < NSUITES; i++) {
        enum rtp_srtp_suite suite = all_suites[i];
        struct rtp_srtp *tx = session(suite, 2, 0), *rx = session(suite, 2, 0);
        size_t trailer = 4 + rtp_srtcp_suite_tag_len(suite);
        for (uint32_t k = 0; k < 300; k++) {
            uint8_t pkt[200], buf[200];
            size_t n = make_rtcp(pkt, 0x11223344, k), out, back;
            uint32_t ssrc = 0;
            assert_int_equal(rtp_rtcp_parse(pkt, n, &ssrc), 0);
            assert_int_equal(ssrc, 0x11223344);
            memcpy(buf, pkt, n);
            assert_int_equal(rtp_srtcp_protect(tx, buf, n, sizeof(buf), &out), 0);
            assert_int_equal(out, n + trailer);
            /* Encrypted past the first 8 octets, E set, index k. */
            assert_memory_equal(buf, pkt, 8);
            assert_memory_not_equal(buf + 8, pkt + 8, 16);
            const uint8_t *eidx = rtp_srtp_suite_tag_len(suite) == 16 ? buf + out - 4 : buf + n;
            assert_int_equal(eidx[0], 0x80 | (uint8_t)(k >> 24));
            assert_int_equal(eidx[3], (uint8_t)k);
            assert_int_equal(rtp_srtcp_unprotect(rx, buf, out, &back), 0);
            assert_int_equal(back, n);
            assert_memory_equal(buf, pkt, n);
        }
        rtp_srtp_free(tx);
        rtp_srtp_free(rx);
    }
}

/* --- replay --------------------------------------------------------------- */

/* protect seq first..first+count-1 into out[][], lengths into lens[]. */
static void protect_run(struct rtp_srtp *tx, uint16_t first, unsigned count, uint32_t ssrc,
                        uint8_t (*out)[220], size_t *lens)
{
    for (unsigned k = 0; k < count; k++) {
        size_t n = make_rtp(out[k], (uint16_t)(first + k), ssrc, 160, 0, -1, 0);
        assert_int_equal(rtp_srtp_protect(tx, out[k], n, 220, &lens[k]), 0);
    }
}

static int deliver(struct rtp_srtp *rx, const uint8_t *p, size_t len)
{
    uint8_t buf[220];
    size_t out;
    memcpy(buf, p, len);
    return rtp_srtp_unprotect(rx, buf, len, &out);
}

static void test_replay_window(void **state)
{
    (void)state;
    static uint8_t pk[300][220];
    size_t lens[300];
    for (size_t i = 0; i < NSUITES; i++) {
        enum rtp_srtp_suite suite = all_suites[i];
        struct rtp_srtp *tx = session(suite, 3, 0), *rx = session(suite, 3, 128);
        protect_run(tx, 1000, 300, 0xabcdef01, pk, lens);

        /* Out of order within the window: accepted once each. */
        assert_int_equal(deliver(rx, pk[20], lens[20]), 0);
        assert_int_equal(deliver(rx, pk[15], lens[15]), 0);
        assert_int_equal(deliver(rx, pk[10], lens[10]), 0);
        assert_int_equal(deliver(rx, pk[15], lens[15]), -EALREADY);
        assert_int_equal(deliver(rx, pk[20], lens[20]), -EALREADY);
        assert_int_equal(deliver(rx, pk[11], lens[11]), 0);

        /* Jump ahead: the window is now 172..299 (packets 1172..1299). */
        assert_int_equal(deliver(rx, pk[299], lens[299]), 0);
        assert_int_equal(deliver(rx, pk[172], lens[172]), 0);         /* the oldest in it */
        assert_int_equal(deliver(rx, pk[171], lens[171]), -EALREADY); /* just out */
        assert_int_equal(deliver(rx, pk[12], lens[12]), -EALREADY);   /* far too old */
        assert_int_equal(deliver(rx, pk[172], lens[172]), -EALREADY);
        assert_int_equal(deliver(rx, pk[250], lens[250]), 0);
        assert_int_equal(deliver(rx, pk[299], lens[299]), -EALREADY);

        /* The sender refuses to protect an index twice (it would reuse
         * keystream) and anything behind its window. */
        uint8_t b[220];
        size_t n = make_rtp(b, 1299, 0xabcdef01, 160, 0, -1, 0), o;
        assert_int_equal(rtp_srtp_protect(tx, b, n, sizeof(b), &o), -EALREADY);
        n = make_rtp(b, 1000, 0xabcdef01, 160, 0, -1, 0);
        assert_int_equal(rtp_srtp_protect(tx, b, n, sizeof(b), &o), -EALREADY);
        rtp_srtp_free(tx);
        rtp_srtp_free(rx);
    }
}

static void test_replay_window_sizes(void **state)
{
    (void)state;
    static uint8_t pk[1100][220];
    static size_t lens[1100];
    struct rtp_srtp *s = NULL;
    uint8_t key[16] = {1}, salt[14] = {2};
    enum rtp_srtp_suite suite = RTP_SRTP_AES_CM_128_HMAC_SHA1_80;
    assert_int_equal(rtp_srtp_new(g_crypto, suite, key, salt, 63, &s), -EINVAL);
    assert_int_equal(rtp_srtp_new(g_crypto, suite, key, salt, 1025, &s), -EINVAL);

    struct rtp_srtp *tx = session(suite, 4, 0), *rx = session(suite, 4, 1024);
    for (unsigned k = 0; k < 1100; k++) {
        size_t n = make_rtp(pk[k], (uint16_t)(65000 + k), 7, 160, 0, -1, 0);
        assert_int_equal(rtp_srtp_protect(tx, pk[k], n, 220, &lens[k]), 0);
    }
    /* The receiver learns ROC 0 from the first packet, then follows the
     * rollover. */
    assert_int_equal(deliver(rx, pk[0], lens[0]), 0);
    assert_int_equal(deliver(rx, pk[1099], lens[1099]), 0);
    /* The window reaches back 1023 packets, across the rollover. */
    assert_int_equal(deliver(rx, pk[76], lens[76]), 0);
    assert_int_equal(deliver(rx, pk[75], lens[75]), -EALREADY);
    for (unsigned k = 77; k < 1099; k++)
        assert_int_equal(deliver(rx, pk[k], lens[k]), 0);
    for (unsigned k = 76; k < 1100; k += 101)
        assert_int_equal(deliver(rx, pk[k], lens[k]), -EALREADY);
    rtp_srtp_free(tx);
    rtp_srtp_free(rx);

    /* The smallest window, after jumps of every size. */
    tx = session(suite, 5, 0);
    rx = session(suite, 5, 64);
    for (unsigned k = 0; k < 1100; k++) {
        size_t n = make_rtp(pk[k], (uint16_t)k, 9, 160, 0, -1, 0);
        assert_int_equal(rtp_srtp_protect(tx, pk[k], n, 220, &lens[k]), 0);
    }
    unsigned at = 0;
    assert_int_equal(deliver(rx, pk[0], lens[0]), 0);
    for (unsigned jump = 1; at + jump < 1100; jump += 7) {
        at += jump;
        assert_int_equal(deliver(rx, pk[at], lens[at]), 0);
        if (at >= 64)
            assert_int_equal(deliver(rx, pk[at - 64], lens[at - 64]), -EALREADY);
        /* Whatever was skipped within the window still gets in once. */
        if (jump > 1) {
            assert_int_equal(deliver(rx, pk[at - 1], lens[at - 1]), 0);
            assert_int_equal(deliver(rx, pk[at - 1], lens[at - 1]), -EALREADY);
        }
    }
    rtp_srtp_free(tx);
    rtp_srtp_free(rx);

    /* A window that is not a power of two (its ring is 128 bits): exactly
     * the last 100 indices are told apart, after jumps that wrap the ring. */
    tx = session(suite, 6, 0);
    rx = session(suite, 6, 100);
    for (unsigned k = 0; k < 1100; k++) {
        size_t n = make_rtp(pk[k], (uint16_t)k, 11, 160, 0, -1, 0);
        assert_int_equal(rtp_srtp_protect(tx, pk[k], n, 220, &lens[k]), 0);
    }
    assert_int_equal(deliver(rx, pk[0], lens[0]), 0);
    for (at = 130; at < 1100; at += 130) {
        assert_int_equal(deliver(rx, pk[at], lens[at]), 0);
        assert_int_equal(deliver(rx, pk[at - 100], lens[at - 100]), -EALREADY);
        assert_int_equal(deliver(rx, pk[at - 99], lens[at - 99]), 0);
        assert_int_equal(deliver(rx, pk[at - 99], lens[at - 99]), -EALREADY);
        assert_int_equal(deliver(rx, pk[at], lens[at]), -EALREADY);
    }
    rtp_srtp_free(tx);
    rtp_srtp_free(rx);
}

static void test_rtcp_replay(void **state)
{
    (void)state;
    for (size_t i = 0; i < NSUITES; i++) {
        enum rtp_srtp_suite suite = all_suites[i];
        struct rtp_srtp *tx = session(suite, 6, 0), *rx = session(suite, 6, 128);
        static uint8_t pk[200][200];
        size_t lens[200], out;
        for (uint32_t k = 0; k < 200; k++) {
            size_t n = make_rtcp(pk[k], 0x5555, k);
            assert_int_equal(rtp_srtcp_protect(tx, pk[k], n, 200, &lens[k]), 0);
        }
        uint8_t b[200];
#define RTCP_DELIVER(k) (memcpy(b, pk[k], lens[k]), rtp_srtcp_unprotect(rx, b, lens[k], &out))
        assert_int_equal(RTCP_DELIVER(5), 0);
        assert_int_equal(RTCP_DELIVER(3), 0);
        assert_int_equal(RTCP_DELIVER(3), -EALREADY);
        assert_int_equal(RTCP_DELIVER(199), 0);
        assert_int_equal(RTCP_DELIVER(72), 0);
        assert_int_equal(RTCP_DELIVER(71), -EALREADY);
        assert_int_equal(RTCP_DELIVER(199), -EALREADY);
#undef RTCP_DELIVER
        rtp_srtp_free(tx);
        rtp_srtp_free(rx);
    }
}

/* --- refusals --------------------------------------------------------------- */

static void test_truncated(void **state)
{
    (void)state;
    for (size_t i = 0; i < NSUITES; i++) {
        enum rtp_srtp_suite suite = all_suites[i];
        struct rtp_srtp *tx = session(suite, 7, 0), *rx = session(suite, 7, 0);
        size_t tag = rtp_srtp_suite_tag_len(suite), rtag = rtp_srtcp_suite_tag_len(suite);
        uint8_t pkt[300], buf[300];
        size_t n = make_rtp(pkt, 1, 1, 160, 2, 1, 0), out;
        memcpy(buf, pkt, n);
        assert_int_equal(rtp_srtp_protect(tx, buf, n, sizeof(buf), &out), 0);
        /* Shorter than the header and the tag, or a header that reaches
         * into the tag: malformed, whatever the bytes. */
        for (size_t len = 0; len < 12 + 8 + 8 + tag; len++) {
            uint8_t t[300];
            size_t o;
            memcpy(t, buf, len);
            assert_int_equal(rtp_srtp_unprotect(rx, t, len, &o), -EINVAL);
        }
        /* Truncated elsewhere: the tag no longer matches. */
        uint8_t t[300];
        size_t o;
        memcpy(t, buf, out - 1);
        assert_int_equal(rtp_srtp_unprotect(rx, t, out - 1, &o), -EBADMSG);
        memcpy(t, buf, out);
        assert_int_equal(rtp_srtp_unprotect(rx, t, out, &o), 0);

        /* Protect: a malformed RTP packet, or no room for the tag. */
        memcpy(t, pkt, n);
        assert_int_equal(rtp_srtp_protect(tx, t, 11, sizeof(t), &o), -EINVAL);
        assert_int_equal(rtp_srtp_protect(tx, t, 12 + 7, sizeof(t), &o), -EINVAL);
        t[0] = 0x40;
        assert_int_equal(rtp_srtp_protect(tx, t, n, sizeof(t), &o), -EINVAL);
        n = make_rtp(t, 2, 1, 160, 0, -1, 0);
        assert_int_equal(rtp_srtp_protect(tx, t, n, n + tag - 1, &o), -ENOSPC);
        assert_int_equal(rtp_srtp_protect(tx, t, n, n - 1, &o), -ENOSPC);
        assert_int_equal(rtp_srtp_protect(tx, t, n, n + tag, &o), 0);
        assert_int_equal(rtp_srtp_protect(tx, t, RTP_SRTP_MAX_PACKET + 1, SIZE_MAX, &o), -EINVAL);

        /* SRTCP likewise. */
        n = make_rtcp(pkt, 2, 0);
        assert_int_equal(rtp_srtcp_protect(tx, pkt, n, n + 4 + rtag - 1, &o), -ENOSPC);
        assert_int_equal(rtp_srtcp_protect(tx, pkt, 7, sizeof(pkt), &o), -EINVAL);
        assert_int_equal(rtp_srtcp_protect(tx, pkt, n, sizeof(pkt), &out), 0);
        for (size_t len = 0; len < 8 + 4 + rtag; len++) {
            memcpy(t, pkt, len);
            assert_int_equal(rtp_srtcp_unprotect(rx, t, len, &o), -EINVAL);
        }
        memcpy(t, pkt, out - 1);
        assert_int_equal(rtp_srtcp_unprotect(rx, t, out - 1, &o), -EBADMSG);
        memcpy(t, pkt, out);
        assert_int_equal(rtp_srtcp_unprotect(rx, t, out, &o), 0);
        rtp_srtp_free(tx);
        rtp_srtp_free(rx);
    }
}

/* Every single-bit change of a protected packet is refused, and leaves
 * the receiver as it was: the genuine packet is accepted afterwards, and
 * the forged SSRCs took no place in its table. */
static void test_tampering(void **state)
{
    (void)state;
    for (size_t i = 0; i < NSUITES; i++) {
        enum rtp_srtp_suite suite = all_suites[i];
        struct rtp_srtp *tx = session(suite, 8, 0), *rx = session(suite, 8, 0);
        uint8_t pkt[300], prot[300], t[300];
        size_t n, len, o;

        /* Give the receiver some history first. */
        for (uint16_t k = 0; k < 5; k++) {
            n = make_rtp(pkt, (uint16_t)(100 + k), 0x42, 160, 0, -1, 0);
            round_trip(tx, rx, pkt, n);
        }
        /* SRTCP first, while the table has room for the forged SSRCs. */
        n = make_rtcp(pkt, 0x42, 9);
        memcpy(prot, pkt, n);
        assert_int_equal(rtp_srtcp_protect(tx, prot, n, sizeof(prot), &len), 0);
        for (size_t bit = 0; bit < 8 * len; bit++) {
            memcpy(t, prot, len);
            t[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            int rc = rtp_srtcp_unprotect(rx, t, len, &o);
            if (bit == 6 || bit == 7)
                assert_int_equal(rc, -EINVAL); /* version */
            else
                assert_int_equal(rc, -EBADMSG);
        }
        memcpy(t, prot, len);
        assert_int_equal(rtp_srtcp_unprotect(rx, t, len, &o), 0);
        assert_memory_equal(t, pkt, n);

        n = make_rtp(pkt, 105, 0x42, 160, 1, 1, 0);
        memcpy(prot, pkt, n);
        assert_int_equal(rtp_srtp_protect(tx, prot, n, sizeof(prot), &len), 0);
        for (size_t bit = 0; bit < 8 * len; bit++) {
            memcpy(t, prot, len);
            t[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            int rc = rtp_srtp_unprotect(rx, t, len, &o);
            if (bit < 8)
                /* version, P, X, CC: malformed or forged */
                assert_true(rc == -EINVAL || rc == -EBADMSG);
            else if (bit >= 16 && bit < 32)
                /* SEQ: forged, or one already seen (105 ^ 1 = 104) */
                assert_true(rc == -EBADMSG || rc == -EALREADY);
            else if (bit >= 8 * 18 && bit < 8 * 20)
                /* the extension's length: past the end, or forged */
                assert_true(rc == -EINVAL || rc == -EBADMSG);
            else
                assert_int_equal(rc, -EBADMSG);
        }
        memcpy(t, prot, len);
        assert_int_equal(rtp_srtp_unprotect(rx, t, len, &o), 0);
        assert_int_equal(o, n);
        assert_memory_equal(t, pkt, n);
        /* The forged SSRCs took no place: seven more sources still fit. */
        for (uint32_t src = 1; src < RTP_SRTP_MAX_SSRC; src++) {
            n = make_rtp(pkt, 1, 0x1000 + src, 20, 0, -1, 0);
            round_trip(tx, rx, pkt, n);
        }
        rtp_srtp_free(tx);
        rtp_srtp_free(rx);
    }
}

/* A packet from the wrong key or the wrong suite is refused. */
static void test_wrong_key(void **state)
{
    (void)state;
    for (size_t i = 0; i < NSUITES; i++) {
        struct rtp_srtp *tx = session(all_suites[i], 9, 0), *rx = session(all_suites[i], 10, 0);
        uint8_t pkt[300];
        size_t n = make_rtp(pkt, 1, 1, 160, 0, -1, 0), len, o;
        assert_int_equal(rtp_srtp_protect(tx, pkt, n, sizeof(pkt), &len), 0);
        assert_int_equal(rtp_srtp_unprotect(rx, pkt, len, &o), -EBADMSG);
        rtp_srtp_free(tx);
        rtp_srtp_free(rx);
    }
}

/* --- sources ------------------------------------------------------------------ */

static void test_sources(void **state)
{
    (void)state;
    for (size_t i = 0; i < NSUITES; i++) {
        enum rtp_srtp_suite suite = all_suites[i];
        struct rtp_srtp *tx = session(suite, 11, 0), *rx = session(suite, 11, 0);
        static uint8_t a[10][220], b[10][220];
        size_t la[10], lb[10];
        /* Two sources with the same sequence numbers, tracked apart. */
        protect_run(tx, 500, 10, 0xaaaa, a, la);
        protect_run(tx, 500, 10, 0xbbbb, b, lb);
        for (unsigned k = 0; k < 10; k++) {
            assert_int_equal(deliver(rx, a[k], la[k]), 0);
            assert_int_equal(deliver(rx, b[9 - k], lb[9 - k]), 0);
        }
        assert_int_equal(deliver(rx, a[3], la[3]), -EALREADY);
        assert_int_equal(deliver(rx, b[3], lb[3]), -EALREADY);

        /* Up to RTP_SRTP_MAX_SSRC sources; one more is refused on both
         * sides, before any cryptography. */
        uint8_t pkt[220];
        for (uint32_t s = 2; s < RTP_SRTP_MAX_SSRC; s++) {
            size_t n = make_rtp(pkt, 1, 0x100 + s, 160, 0, -1, 0);
            round_trip(tx, rx, pkt, n);
        }
        size_t n = make_rtcp(pkt, 0x999, 0), o;
        assert_int_equal(rtp_srtcp_protect(tx, pkt, n, sizeof(pkt), &o), -ENOSPC);
        n = make_rtp(pkt, 1, 0x999, 160, 0, -1, 0);
        assert_int_equal(rtp_srtp_protect(tx, pkt, n, sizeof(pkt), &o), -ENOSPC);
        struct rtp_srtp *tx2 = session(suite, 11, 0);
        assert_int_equal(rtp_srtp_protect(tx2, pkt, n, sizeof(pkt), &o), 0);
        assert_int_equal(deliver(rx, pkt, o), -ENOSPC);
        /* Known sources carry on. */
        n = make_rtp(pkt, 510, 0xaaaa, 160, 0, -1, 0);
        round_trip(tx, rx, pkt, n);
        rtp_srtp_free(tx2);
        rtp_srtp_free(tx);
        rtp_srtp_free(rx);
    }
}

/* --- key lifetime -------------------------------------------------------- */

static void test_key_lifetime(void **state)
{
    (void)state;
    for (size_t i = 0; i < NSUITES; i++) {
        enum rtp_srtp_suite suite = all_suites[i];
        struct rtp_srtp *tx = session(suite, 12, 0), *rx = session(suite, 12, 0);
        uint8_t pkt[220], b2[220];
        size_t n, o;

        /* The last SRTP index is 2^48 - 1: ROC 0xffffffff, SEQ 0xffff. */
        assert_int_equal(rtp_srtp_set_index(tx, 77, RTP_SRTP_INDEX_LIMIT), -EINVAL);
        assert_int_equal(rtp_srtp_set_index(tx, 77, RTP_SRTP_INDEX_LIMIT - 3), 0);
        assert_int_equal(rtp_srtp_set_index(rx, 77, RTP_SRTP_INDEX_LIMIT - 3), 0);
        n = make_rtp(pkt, 0xfffe, 77, 160, 0, -1, 0);
        round_trip(tx, rx, pkt, n);
        n = make_rtp(pkt, 0xffff, 77, 160, 0, -1, 0);
        round_trip(tx, rx, pkt, n);
        n = make_rtp(pkt, 0, 77, 160, 0, -1, 0);
        assert_int_equal(rtp_srtp_protect(tx, pkt, n, sizeof(pkt), &o), -EOVERFLOW);
        /* A receiver there refuses what would be ROC 2^32 as well (here a
         * packet protected by a sender that was never told). */
        struct rtp_srtp *fresh = session(suite, 12, 0);
        memcpy(b2, pkt, n);
        assert_int_equal(rtp_srtp_protect(fresh, b2, n, sizeof(b2), &o), 0);
        assert_int_equal(deliver(rx, b2, o), -EOVERFLOW);
        rtp_srtp_free(fresh);

        /* SRTCP: the last index is 2^31 - 1. */
        assert_int_equal(rtp_srtcp_set_index(tx, 78, 0x80000000u), -EINVAL);
        assert_int_equal(rtp_srtcp_set_index(tx, 78, 0x7ffffffdu), 0);
        n = make_rtcp(pkt, 78, 0);
        size_t len;
        memcpy(b2, pkt, n);
        assert_int_equal(rtp_srtcp_protect(tx, b2, n, sizeof(b2), &len), 0);
        assert_int_equal(rtp_srtcp_unprotect(rx, b2, len, &o), 0);
        memcpy(b2, pkt, n);
        assert_int_equal(rtp_srtcp_protect(tx, b2, n, sizeof(b2), &len), 0);
        assert_int_equal(rtp_srtcp_unprotect(rx, b2, len, &o), 0);
        memcpy(b2, pkt, n);
        assert_int_equal(rtp_srtcp_protect(tx, b2, n, sizeof(b2), &len), -EOVERFLOW);
        rtp_srtp_free(tx);
        rtp_srtp_free(rx);
    }
}

/* --- construction ---------------------------------------------------------- */

static void test_new_refusals(void **state)
{
    (void)state;
    uint8_t key[32] = {0}, salt[14] = {0};
    struct rtp_srtp *s = NULL;
    assert_int_equal(rtp_srtp_new(NULL, RTP_SRTP_AEAD_AES_128_GCM, key, salt, 0, &s), -EINVAL);
    assert_int_equal(rtp_srtp_new(g_crypto, RTP_SRTP_SUITE_COUNT, key, salt, 0, &s), -EINVAL);
    assert_int_equal(rtp_srtp_new(g_crypto, RTP_SRTP_AEAD_AES_128_GCM, NULL, salt, 0, &s), -EINVAL);
    assert_int_equal(rtp_srtp_new(g_crypto, RTP_SRTP_AEAD_AES_128_GCM, key, salt, 0, NULL),
                     -EINVAL);
    assert_null(s);
    rtp_srtp_free(NULL);
    rtp_srtp_crypto_free(NULL);
    /* A crypto context from an explicit library context and a property
     * query works the same. */
    struct rtp_srtp_crypto *c = NULL;
    OSSL_LIB_CTX *lib = OSSL_LIB_CTX_new();
    assert_non_null(lib);
    assert_int_equal(rtp_srtp_crypto_new(lib, "provider=default", &c), 0);
    assert_int_equal(rtp_srtp_new(c, RTP_SRTP_AEAD_AES_256_GCM, key, salt, 0, &s), 0);
    rtp_srtp_free(s);
    rtp_srtp_crypto_free(c);
    /* A provider that is not there gives nothing. */
    c = NULL;
    assert_int_equal(rtp_srtp_crypto_new(lib, "provider=nonesuch", &c), -ENOTSUP);
    assert_null(c);
    OSSL_LIB_CTX_free(lib);
}

/* --- SDES keys ---------------------------------------------------------- */

static void test_inline_keys(void **state)
{
    (void)state;
    static const size_t chars[] = {40, 40, 40, 60};
    for (size_t i = 0; i < NSUITES; i++) {
        enum rtp_srtp_suite suite = all_suites[i];
        uint8_t key[32], salt[14], k2[32], s2[14];
        char text[RTP_SRTP_INLINE_MAX];
        size_t kl = rtp_srtp_suite_key_len(suite), sl = rtp_srtp_suite_salt_len(suite);
        assert_int_equal(rtp_srtp_generate_master(NULL, suite, key, salt), 0);
        assert_int_equal(rtp_srtp_generate_master(NULL, suite, k2, s2), 0);
        assert_memory_not_equal(key, k2, kl);
        assert_int_equal(rtp_srtp_inline_encode(suite, key, salt, text, sizeof(text)), 0);
        assert_int_equal(strlen(text), chars[i]);
        assert_int_equal(crypto_srtp_suite_inline_len(SV(rtp_srtp_suite_name(suite))), kl + sl);
        assert_int_equal(rtp_srtp_inline_decode(SV(text), suite, k2, s2), 0);
        assert_memory_equal(k2, key, kl);
        assert_memory_equal(s2, salt, sl);
        /* Without its padding too. */
        size_t tl = strlen(text);
        while (tl && text[tl - 1] == '=')
            tl--;
        memset(k2, 0, sizeof(k2));
        assert_int_equal(rtp_srtp_inline_decode(strview_make(text, tl), suite, k2, s2), 0);
        assert_memory_equal(k2, key, kl);
        /* Too small a buffer. */
        assert_int_equal(rtp_srtp_inline_encode(suite, key, salt, text, chars[i]), -ENOSPC);
    }
    /* RFC 4568 §4's example key for AES_CM_128_HMAC_SHA1_80 (30 octets);
     * it is not one of the AEAD lengths. */
    uint8_t key[32], salt[14];
    const char *ex = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
    assert_int_equal(rtp_srtp_inline_decode(SV(ex), RTP_SRTP_AES_CM_128_HMAC_SHA1_80, key, salt),
                     0);
    assert_int_equal(key[0], 0x3d);
    assert_int_equal(rtp_srtp_inline_decode(SV(ex), RTP_SRTP_AEAD_AES_128_GCM, key, salt), -EINVAL);
    assert_int_equal(rtp_srtp_inline_decode(SV(ex), RTP_SRTP_AEAD_AES_256_GCM, key, salt), -EINVAL);
    /* Not base64, a character short or long, empty, far too long. */
    assert_int_equal(rtp_srtp_inline_decode(SV("PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVB!"),
                                            RTP_SRTP_AES_CM_128_HMAC_SHA1_80, key, salt),
                     -EINVAL);
    assert_int_equal(rtp_srtp_inline_decode(SV("PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVB"),
                                            RTP_SRTP_AES_CM_128_HMAC_SHA1_80, key, salt),
                     -EINVAL);
    assert_int_equal(rtp_srtp_inline_decode(SV("PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBRAA"),
                                            RTP_SRTP_AES_CM_128_HMAC_SHA1_80, key, salt),
                     -EINVAL);
    assert_int_equal(rtp_srtp_inline_decode(SV(""), RTP_SRTP_AES_CM_128_HMAC_SHA1_80, key, salt),
                     -EINVAL);
    char longer[200];
    memset(longer, 'A', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    assert_int_equal(
        rtp_srtp_inline_decode(SV(longer), RTP_SRTP_AES_CM_128_HMAC_SHA1_80, key, salt), -EINVAL);
    assert_int_equal(rtp_srtp_generate_master(NULL, RTP_SRTP_SUITE_COUNT, key, salt), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_suites),
        cmocka_unit_test(test_rfc3711_b2_keystream),
        cmocka_unit_test(test_rfc3711_b3_kdf),
        cmocka_unit_test(test_rfc7714_16_srtp),
        cmocka_unit_test(test_rfc7714_17_srtcp),
        cmocka_unit_test(test_round_trip_rollover),
        cmocka_unit_test(test_rtcp_round_trip),
        cmocka_unit_test(test_replay_window),
        cmocka_unit_test(test_replay_window_sizes),
        cmocka_unit_test(test_rtcp_replay),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_tampering),
        cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_sources),
        cmocka_unit_test(test_key_lifetime),
        cmocka_unit_test(test_new_refusals),
        cmocka_unit_test(test_inline_keys),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
