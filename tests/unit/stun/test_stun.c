/*
 * stun against the sample messages of RFC 5769 (all four) and RFC
 * 8489 Appendix B.1, decoded and re-encoded byte for byte, plus the
 * malformed inputs the parser must refuse.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/netaddr.h"
#include "crypto/mac.h"
#include "stun/stun.h"

#define SV(s) strview_cstr(s)

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

/* RFC 5769 §2.1: short-term credentials, password "VOkJxbRl1RmTxUk/WvJxBt".
 * The USERNAME is padded with spaces (any padding value is valid). */
static const char rfc5769_request[] = "000100582112a442b7e7a701bc34d686fa87dfae"
                                      "802200105354554e20746573742063 6c69656e74"
                                      "002400046e0001ff"
                                      "80290008932ff9b151263b36"
                                      "000600096576746a3a68367659202020"
                                      "000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2"
                                      "80280004e57a3bcf";

/* §2.2: IPv4 response, XOR-MAPPED-ADDRESS 192.0.2.1:32853. */
static const char rfc5769_ipv4[] = "0101003c2112a442b7e7a701bc34d686fa87dfae"
                                   "8022000b7465737420766563746f7220"
                                   "002000080001a147e112a643"
                                   "000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7"
                                   "80280004c07d4c96";

/* §2.3: IPv6 response, 2001:db8:1234:5678:11:2233:4455:6677 port 32853. */
static const char rfc5769_ipv6[] = "010100482112a442b7e7a701bc34d686fa87dfae"
                                   "8022000b7465737420766563746f7220"
                                   "002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d9"
                                   "00080014a382954e4be67bf11784c97c8292c275bfe3ed41"
                                   "80280004c8fb0b4c";

/* §2.4: long-term credentials: user "マトリックス", realm "example.org",
 * password "TheMatrIX", nonce "f//499k954d6OL34oL9FSTvy64sA". */
static const char rfc5769_long_term[] =
    "000100602112a44278ad3433c6ad72c029da412e"
    "00060012e3839ee38388e383aae38383e382afe382b90000"
    "0015001c662f2f3439396b39353464364f4c33346f4c39465354767936347341"
    "0014000b6578616d706c652e6f726700"
    "00080014f67024656dd64a3e02b8e0712e85c9a28ca89666";

/*
 * RFC 8489 Appendix B.1 as corrected by verified erratum 6268: the
 * published bytes lack the PASSWORD-ALGORITHM the text describes, carry a
 * length of 0x9c for a 136-byte body and an HMAC computed over that wrong
 * length, so they cannot verify; the erratum's message can. Username
 * "マトリックス" (sent as USERHASH), password "TheMatrIX" after
 * OpaqueString, realm "example.org", PASSWORD-ALGORITHM SHA-256.
 */
static const char rfc8489_b1[] =
    "000100902112a44278ad3433c6ad72c029da412e"
    "001e00204a3cf38fef6992bda952c6780417da0f24819415569e60b205c46e41407f1704"
    "001500296f624d61744a6f733241414143662f2f3439396b39353464364f4c33346f4c39465354"
    "767936347341000000"
    "0014000b6578616d706c652e6f726700"
    "001d000400020000"
    "001c0020b5c7bf005b6c52a21c51c5e892f81924136296cb927c43149309278cc6518e65";

static const char rfc8489_b1_published[] =
    "0001009c2112a44278ad3433c6ad72c029da412e"
    "001e00204a3cf38fef6992bda952c6780417da0f24819415569e60b205c46e41407f1704"
    "001500296f624d61744a6f733241414143662f2f3439396b39353464364f4c33346f4c39465354"
    "767936347341000000"
    "0014000b6578616d706c652e6f726700"
    "001c0020e4686c8f0edeb59013e07090010a93efccbccc544c0a45d9f830aa6d6f735a01";

static const char user_matrix[] = "\xe3\x83\x9e\xe3\x83\x88\xe3\x83\xaa\xe3\x83\x83\xe3\x82\xaf"
                                  "\xe3\x82\xb9"; /* マトリックス */
static const uint8_t tid_5769[12] = {0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
                                     0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae};
static const uint8_t tid_long[12] = {0x78, 0xad, 0x34, 0x33, 0xc6, 0xad,
                                     0x72, 0xc0, 0x29, 0xda, 0x41, 0x2e};
#define SHORT_TERM_PW "VOkJxbRl1RmTxUk/WvJxBt"

static void check_string(const struct stun_msg *m, uint16_t type, const char *want)
{
    const struct stun_attr *a = stun_msg_find(m, type);
    assert_non_null(a);
    assert_int_equal(a->len, strlen(want));
    assert_memory_equal(stun_attr_value(m, a), want, a->len);
}

static void test_5769_request(void **state)
{
    (void)state;
    uint8_t buf[256];
    struct stun_msg m;
    size_t n = unhex(rfc5769_request, buf, sizeof(buf));

    assert_int_equal(n, 108);
    assert_int_equal(stun_msg_parse(buf, n, &m), 0);
    assert_int_equal(m.method, STUN_METHOD_BINDING);
    assert_int_equal(m.cls, STUN_CLASS_REQUEST);
    assert_memory_equal(m.tid, tid_5769, 12);
    assert_int_equal(m.nattrs, 6);
    check_string(&m, STUN_ATTR_SOFTWARE, "STUN test client");
    check_string(&m, STUN_ATTR_USERNAME, "evtj:h6vY");
    uint32_t prio = 0;
    assert_int_equal(stun_attr_u32(&m, stun_msg_find(&m, STUN_ATTR_PRIORITY), &prio), 0);
    assert_int_equal(prio, 0x6e0001ff);
    assert_int_equal(stun_msg_check_integrity(&m, STUN_INTEGRITY_SHA1,
                                              (const uint8_t *)SHORT_TERM_PW,
                                              strlen(SHORT_TERM_PW)),
                     0);
    assert_int_equal(stun_msg_check_integrity(&m, STUN_INTEGRITY_SHA1,
                                              (const uint8_t *)"VOkJxbRl1RmTxUk/WvJxBT",
                                              strlen(SHORT_TERM_PW)),
                     -EBADMSG);
    assert_int_equal(stun_msg_check_integrity(&m, STUN_INTEGRITY_SHA256,
                                              (const uint8_t *)SHORT_TERM_PW,
                                              strlen(SHORT_TERM_PW)),
                     -ENOENT);
    assert_int_equal(stun_msg_check_fingerprint(&m), 0);
    /* ICE attributes are comprehension-required but known to an ICE agent. */
    uint16_t unknown[4];
    const uint16_t known[] = {STUN_ATTR_USERNAME, STUN_ATTR_MESSAGE_INTEGRITY};
    size_t nu = stun_msg_unknown_required(&m, known, 2, unknown, 4);
    assert_int_equal(nu, 1);
    assert_int_equal(unknown[0], STUN_ATTR_PRIORITY);

    /* Encoding: the same attributes give the same bytes (the test puts the
     * vector's space padding in before the integrity is computed). */
    uint8_t out[256];
    struct stun_builder b;
    size_t len = 0;
    stun_build_start(&b, out, sizeof(out), STUN_METHOD_BINDING, STUN_CLASS_REQUEST, tid_5769);
    stun_build_attr(&b, STUN_ATTR_SOFTWARE, "STUN test client", 16);
    stun_build_u32(&b, STUN_ATTR_PRIORITY, 0x6e0001ff);
    stun_build_attr(&b, STUN_ATTR_ICE_CONTROLLED, buf + 20 + 20 + 8 + 4, 8);
    stun_build_attr(&b, STUN_ATTR_USERNAME, "evtj:h6vY", 9);
    memset(out + b.len - 3, ' ', 3);
    stun_build_integrity(&b, STUN_INTEGRITY_SHA1, (const uint8_t *)SHORT_TERM_PW,
                         strlen(SHORT_TERM_PW));
    stun_build_fingerprint(&b);
    assert_int_equal(stun_build_finish(&b, &len), 0);
    assert_int_equal(len, n);
    assert_memory_equal(out, buf, n);
}

static void check_response(const char *hex, const char *ip, size_t want_len)
{
    uint8_t buf[256], out[256];
    struct stun_msg m;
    struct netaddr a, want;
    char s[NETADDR_STRLEN], w[NETADDR_STRLEN];
    size_t n = unhex(hex, buf, sizeof(buf)), len = 0;

    assert_int_equal(n, want_len);
    assert_int_equal(stun_msg_parse(buf, n, &m), 0);
    assert_int_equal(m.method, STUN_METHOD_BINDING);
    assert_int_equal(m.cls, STUN_CLASS_SUCCESS);
    check_string(&m, STUN_ATTR_SOFTWARE, "test vector");
    const struct stun_attr *xa = stun_msg_find(&m, STUN_ATTR_XOR_MAPPED_ADDRESS);
    assert_non_null(xa);
    assert_int_equal(stun_attr_xor_addr(&m, xa, &a), 0);
    assert_int_equal(netaddr_parse_ip(ip, 32853, &want), 0);
    assert_string_equal(netaddr_format(&a, s), netaddr_format(&want, w));
    assert_int_equal(stun_msg_check_integrity(&m, STUN_INTEGRITY_SHA1,
                                              (const uint8_t *)SHORT_TERM_PW,
                                              strlen(SHORT_TERM_PW)),
                     0);
    assert_int_equal(stun_msg_check_fingerprint(&m), 0);

    struct stun_builder b;
    stun_build_start(&b, out, sizeof(out), STUN_METHOD_BINDING, STUN_CLASS_SUCCESS, tid_5769);
    stun_build_attr(&b, STUN_ATTR_SOFTWARE, "test vector", 11);
    out[b.len - 1] = ' ';
    stun_build_xor_addr(&b, STUN_ATTR_XOR_MAPPED_ADDRESS, &want);
    stun_build_integrity(&b, STUN_INTEGRITY_SHA1, (const uint8_t *)SHORT_TERM_PW,
                         strlen(SHORT_TERM_PW));
    stun_build_fingerprint(&b);
    assert_int_equal(stun_build_finish(&b, &len), 0);
    assert_int_equal(len, n);
    assert_memory_equal(out, buf, n);

    /* Any change breaks both integrity and fingerprint. */
    buf[30] ^= 0x01;
    assert_int_equal(stun_msg_parse(buf, n, &m), 0);
    assert_int_equal(stun_msg_check_integrity(&m, STUN_INTEGRITY_SHA1,
                                              (const uint8_t *)SHORT_TERM_PW,
                                              strlen(SHORT_TERM_PW)),
                     -EBADMSG);
    assert_int_equal(stun_msg_check_fingerprint(&m), -EBADMSG);
}

static void test_5769_ipv4_response(void **state)
{
    (void)state;
    check_response(rfc5769_ipv4, "192.0.2.1", 80);
}

static void test_5769_ipv6_response(void **state)
{
    (void)state;
    check_response(rfc5769_ipv6, "2001:db8:1234:5678:11:2233:4455:6677", 92);
}

static void test_5769_long_term(void **state)
{
    (void)state;
    uint8_t buf[256], out[256], key[STUN_KEY_MAX];
    size_t n = unhex(rfc5769_long_term, buf, sizeof(buf)), keylen = 0, len = 0;
    struct stun_msg m;

    assert_int_equal(n, 116);
    assert_int_equal(stun_msg_parse(buf, n, &m), 0);
    check_string(&m, STUN_ATTR_USERNAME, user_matrix);
    check_string(&m, STUN_ATTR_NONCE, "f//499k954d6OL34oL9FSTvy64sA");
    check_string(&m, STUN_ATTR_REALM, "example.org");
    assert_int_equal(m.fingerprint, -1);
    assert_int_equal(stun_msg_check_fingerprint(&m), -ENOENT);

    /* key = MD5("マトリックス:example.org:TheMatrIX") */
    assert_int_equal(stun_long_term_key(STUN_PASSWORD_MD5, SV(user_matrix), SV("example.org"),
                                        SV("TheMatrIX"), key, &keylen),
                     0);
    uint8_t want_key[16];
    unhex("e8ca7ad59d5eb0518e312911d2dab2a9", want_key, sizeof(want_key));
    assert_int_equal(keylen, 16);
    assert_memory_equal(key, want_key, 16);
    assert_int_equal(stun_msg_check_integrity(&m, STUN_INTEGRITY_SHA1, key, keylen), 0);

    uint8_t bad[STUN_KEY_MAX];
    size_t badlen = 0;
    assert_int_equal(stun_long_term_key(STUN_PASSWORD_MD5, SV(user_matrix), SV("example.org"),
                                        SV("TheMatrix"), bad, &badlen),
                     0);
    assert_int_equal(stun_msg_check_integrity(&m, STUN_INTEGRITY_SHA1, bad, badlen), -EBADMSG);

    struct stun_builder b;
    stun_build_start(&b, out, sizeof(out), STUN_METHOD_BINDING, STUN_CLASS_REQUEST, tid_long);
    stun_build_attr(&b, STUN_ATTR_USERNAME, user_matrix, strlen(user_matrix));
    stun_build_attr(&b, STUN_ATTR_NONCE, "f//499k954d6OL34oL9FSTvy64sA", 28);
    stun_build_attr(&b, STUN_ATTR_REALM, "example.org", 11);
    stun_build_integrity(&b, STUN_INTEGRITY_SHA1, key, keylen);
    assert_int_equal(stun_build_finish(&b, &len), 0);
    assert_int_equal(len, n);
    assert_memory_equal(out, buf, n);
}

static void test_8489_b1(void **state)
{
    (void)state;
    uint8_t buf[256], out[256], key[STUN_KEY_MAX], hash[32];
    size_t n = unhex(rfc8489_b1, buf, sizeof(buf)), keylen = 0, len = 0;
    struct stun_msg m;

    assert_int_equal(n, 164);
    assert_int_equal(stun_msg_parse(buf, n, &m), 0);
    assert_int_equal(m.method, STUN_METHOD_BINDING);
    assert_null(stun_msg_find(&m, STUN_ATTR_USERNAME));
    const struct stun_attr *uh = stun_msg_find(&m, STUN_ATTR_USERHASH);
    assert_non_null(uh);
    assert_int_equal(stun_userhash(SV(user_matrix), SV("example.org"), hash), 0);
    assert_int_equal(uh->len, 32);
    assert_memory_equal(stun_attr_value(&m, uh), hash, 32);
    check_string(&m, STUN_ATTR_NONCE, "obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA");
    uint16_t alg = 0;
    assert_int_equal(
        stun_attr_password_alg(&m, stun_msg_find(&m, STUN_ATTR_PASSWORD_ALGORITHM), &alg), 0);
    assert_int_equal(alg, STUN_PASSWORD_SHA256);

    assert_int_equal(stun_long_term_key(STUN_PASSWORD_SHA256, SV(user_matrix), SV("example.org"),
                                        SV("TheMatrIX"), key, &keylen),
                     0);
    uint8_t want_key[32];
    unhex("dd295a613b9058c3c23d6dc7165bda072304d989c9d0af3a8c7e184b4f9bb4a1", want_key, 32);
    assert_int_equal(keylen, 32);
    assert_memory_equal(key, want_key, 32);
    assert_int_equal(stun_msg_check_integrity(&m, STUN_INTEGRITY_SHA256, key, keylen), 0);
    assert_int_equal(stun_msg_check_integrity(&m, STUN_INTEGRITY_SHA1, key, keylen), -ENOENT);
    /* The MD5 key of the same password does not verify SHA-256 integrity. */
    uint8_t md5key[STUN_KEY_MAX];
    size_t md5len = 0;
    assert_int_equal(stun_long_term_key(STUN_PASSWORD_MD5, SV(user_matrix), SV("example.org"),
                                        SV("TheMatrIX"), md5key, &md5len),
                     0);
    assert_int_equal(stun_msg_check_integrity(&m, STUN_INTEGRITY_SHA256, md5key, md5len), -EBADMSG);

    struct stun_builder b;
    const uint8_t pa[4] = {0, 2, 0, 0};
    stun_build_start(&b, out, sizeof(out), STUN_METHOD_BINDING, STUN_CLASS_REQUEST, tid_long);
    stun_build_attr(&b, STUN_ATTR_USERHASH, hash, 32);
    stun_build_attr(&b, STUN_ATTR_NONCE, "obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA", 41);
    stun_build_attr(&b, STUN_ATTR_REALM, "example.org", 11);
    stun_build_attr(&b, STUN_ATTR_PASSWORD_ALGORITHM, pa, 4);
    stun_build_integrity(&b, STUN_INTEGRITY_SHA256, key, keylen);
    assert_int_equal(stun_build_finish(&b, &len), 0);
    assert_int_equal(len, n);
    assert_memory_equal(out, buf, n);

    /* The message as published has a length that does not match its size. */
    n = unhex(rfc8489_b1_published, buf, sizeof(buf));
    assert_int_equal(n, 156);
    assert_int_equal(stun_msg_parse(buf, n, &m), -EINVAL);
    /* With the length corrected it parses but (the MAC being over the wrong
     * length) does not verify. */
    buf[3] = 0x88;
    assert_int_equal(stun_msg_parse(buf, n, &m), 0);
    assert_int_equal(stun_msg_check_integrity(&m, STUN_INTEGRITY_SHA256, key, keylen), -EBADMSG);
}

static void test_truncated_sha256(void **state)
{
    (void)state;
    uint8_t out[128], key[32], mac[MAC_MAX_SIZE];
    struct stun_builder b;
    struct stun_msg m;
    size_t len = 0, maclen = 0;
    memset(key, 7, sizeof(key));

    stun_build_start(&b, out, sizeof(out), TURN_METHOD_REFRESH, STUN_CLASS_REQUEST, tid_long);
    stun_build_attr(&b, STUN_ATTR_USERNAME, "user", 4);
    stun_build_integrity(&b, STUN_INTEGRITY_SHA256, key, sizeof(key));
    assert_int_equal(stun_build_finish(&b, &len), 0);
    assert_int_equal(stun_msg_parse(out, len, &m), 0);
    assert_int_equal(stun_msg_check_integrity(&m, STUN_INTEGRITY_SHA256, key, 32), 0);
    key[0] ^= 1;
    assert_int_equal(stun_msg_check_integrity(&m, STUN_INTEGRITY_SHA256, key, 32), -EBADMSG);
    key[0] ^= 1;

    /* RFC 8489 §14.6: a sender may truncate to 16 bytes; its HMAC covers a
     * header whose length counts the 16-byte attribute (computed here with
     * crypto/mac directly). */
    size_t at = len - 36;
    out[3] = (uint8_t)(at + 4 + 16 - 20);
    assert_int_equal(mac_hmac(MAC_HMAC_SHA256, key, 32, out, at, mac, &maclen), 0);
    out[at + 3] = 16;
    memcpy(out + at + 4, mac, 16);
    assert_int_equal(stun_msg_parse(out, at + 4 + 16, &m), 0);
    assert_int_equal(m.attrs[m.integrity_sha256].len, 16);
    assert_int_equal(stun_msg_check_integrity(&m, STUN_INTEGRITY_SHA256, key, 32), 0);
    out[at + 4] ^= 0x80;
    assert_int_equal(stun_msg_check_integrity(&m, STUN_INTEGRITY_SHA256, key, 32), -EBADMSG);
    /* below 16 bytes is malformed */
    out[at + 3] = 12;
    out[3] = (uint8_t)(at + 4 + 12 - 20);
    assert_int_equal(stun_msg_parse(out, at + 4 + 12, &m), -EBADMSG);
}

static void test_refusals(void **state)
{
    (void)state;
    uint8_t buf[256], msg[256];
    struct stun_msg m;
    size_t n = unhex(rfc5769_ipv4, buf, sizeof(buf));

    /* not STUN at all */
    assert_int_equal(stun_msg_parse(buf, 19, &m), -EINVAL);
    assert_int_equal(stun_msg_parse(buf, n - 4, &m), -EINVAL); /* length mismatch */
    assert_int_equal(stun_msg_parse(NULL, n, &m), -EINVAL);
    memcpy(msg, buf, n);
    msg[4] ^= 0x01; /* cookie */
    assert_int_equal(stun_msg_parse(msg, n, &m), -EINVAL);
    memcpy(msg, buf, n);
    msg[0] |= 0x80; /* top bits */
    assert_int_equal(stun_msg_parse(msg, n, &m), -EINVAL);
    memcpy(msg, buf, n);
    msg[3] = 0x3d; /* length not a multiple of 4 */
    assert_int_equal(stun_msg_parse(msg, n, &m), -EINVAL);

    /* header fine, attributes broken: the transaction is known */
    memcpy(msg, buf, n);
    msg[20 + 3] = 0xff; /* SOFTWARE overruns */
    assert_int_equal(stun_msg_parse(msg, n, &m), -EBADMSG);
    assert_memory_equal(m.tid, tid_5769, 12);
    assert_int_equal(m.cls, STUN_CLASS_SUCCESS);
    memcpy(msg, buf, n);
    msg[48 + 3] = 0x10; /* MESSAGE-INTEGRITY of 16 bytes */
    assert_int_equal(stun_msg_parse(msg, n, &m), -EBADMSG);
    /* an attribute after FINGERPRINT */
    memcpy(msg, buf, n);
    memcpy(msg + n, "\x80\x22\x00\x00", 4);
    msg[3] += 4;
    assert_int_equal(stun_msg_parse(msg, n + 4, &m), -EBADMSG);
    /* a header shorter than 4 bytes left at the end */
    memcpy(msg, buf, 20);
    msg[2] = 0;
    msg[3] = 4;
    memcpy(msg + 20, "\x80\x22\x00\x01", 4);
    assert_int_equal(stun_msg_parse(msg, 24, &m), -EBADMSG);

    /* what follows MESSAGE-INTEGRITY is ignored (except FINGERPRINT) */
    uint8_t key[4] = "key";
    struct stun_builder b;
    size_t len = 0;
    stun_build_start(&b, msg, sizeof(msg), STUN_METHOD_BINDING, STUN_CLASS_REQUEST, tid_long);
    stun_build_attr(&b, STUN_ATTR_USERNAME, "u", 1);
    stun_build_integrity(&b, STUN_INTEGRITY_SHA1, key, 3);
    stun_build_attr(&b, STUN_ATTR_SOFTWARE, "after", 5);
    stun_build_fingerprint(&b);
    assert_int_equal(stun_build_finish(&b, &len), 0);
    assert_int_equal(stun_msg_parse(msg, len, &m), 0);
    assert_int_equal(m.ignored, 1);
    assert_null(stun_msg_find(&m, STUN_ATTR_SOFTWARE));
    assert_int_equal(stun_msg_check_integrity(&m, STUN_INTEGRITY_SHA1, key, 3), 0);
    assert_int_equal(stun_msg_check_fingerprint(&m), 0);

    /* too many attributes */
    uint8_t big[20 + 4 * (STUN_MAX_ATTRS + 1)];
    stun_build_start(&b, big, sizeof(big), STUN_METHOD_BINDING, STUN_CLASS_REQUEST, tid_long);
    for (int i = 0; i <= STUN_MAX_ATTRS; i++)
        stun_build_attr(&b, STUN_ATTR_SOFTWARE, NULL, 0);
    assert_int_equal(stun_build_finish(&b, &len), 0);
    assert_int_equal(stun_msg_parse(big, len, &m), -E2BIG);

    /* the builder refuses to overflow its buffer */
    stun_build_start(&b, msg, 30, STUN_METHOD_BINDING, STUN_CLASS_REQUEST, tid_long);
    stun_build_attr(&b, STUN_ATTR_SOFTWARE, "0123456789", 10);
    assert_int_equal(stun_build_finish(&b, &len), -ENOSPC);
}

static void test_attributes(void **state)
{
    (void)state;
    uint8_t msg[256];
    struct stun_builder b;
    struct stun_msg m;
    struct netaddr a, got;
    size_t len = 0;
    char s[NETADDR_STRLEN];

    assert_int_equal(netaddr_parse("[2001:db8::7]:3478", &a), 0);
    stun_build_start(&b, msg, sizeof(msg), TURN_METHOD_ALLOCATE, STUN_CLASS_ERROR, tid_long);
    stun_build_error(&b, 438, NULL);
    stun_build_xor_addr(&b, TURN_ATTR_XOR_PEER_ADDRESS, &a);
    stun_build_addr(&b, STUN_ATTR_MAPPED_ADDRESS, &a);
    const uint16_t algs[] = {STUN_PASSWORD_SHA256, STUN_PASSWORD_MD5};
    stun_build_password_algs(&b, algs, 2);
    const uint16_t unk[] = {0x7777};
    stun_build_unknown_attrs(&b, unk, 1);
    assert_int_equal(stun_build_finish(&b, &len), 0);

    assert_int_equal(stun_msg_parse(msg, len, &m), 0);
    assert_int_equal(m.method, TURN_METHOD_ALLOCATE);
    assert_int_equal(m.cls, STUN_CLASS_ERROR);
    int code = 0;
    struct strview reason;
    assert_int_equal(
        stun_attr_error_code(&m, stun_msg_find(&m, STUN_ATTR_ERROR_CODE), &code, &reason), 0);
    assert_int_equal(code, 438);
    assert_true(strview_eq(reason, "Stale Nonce"));
    assert_int_equal(stun_attr_xor_addr(&m, stun_msg_find(&m, TURN_ATTR_XOR_PEER_ADDRESS), &got),
                     0);
    assert_string_equal(netaddr_format(&got, s), "[2001:db8::7]:3478");
    /* the XOR form is not the plain form */
    assert_memory_not_equal(stun_attr_value(&m, stun_msg_find(&m, TURN_ATTR_XOR_PEER_ADDRESS)),
                            stun_attr_value(&m, stun_msg_find(&m, STUN_ATTR_MAPPED_ADDRESS)), 20);
    assert_int_equal(stun_attr_addr(&m, stun_msg_find(&m, STUN_ATTR_MAPPED_ADDRESS), &got), 0);
    assert_string_equal(netaddr_format(&got, s), "[2001:db8::7]:3478");
    uint16_t out[4];
    assert_int_equal(
        stun_attr_password_algs(&m, stun_msg_find(&m, STUN_ATTR_PASSWORD_ALGORITHMS), out, 4), 2);
    assert_int_equal(out[0], STUN_PASSWORD_SHA256);
    assert_int_equal(out[1], STUN_PASSWORD_MD5);
    /* an XOR address of the wrong length or family is refused */
    struct stun_attr fake = {TURN_ATTR_XOR_PEER_ADDRESS, 8, 0};
    const struct stun_attr *pa = stun_msg_find(&m, TURN_ATTR_XOR_PEER_ADDRESS);
    fake.off = pa->off;
    assert_int_equal(stun_attr_xor_addr(&m, &fake, &got), -EINVAL); /* IPv6 family, 8 bytes */
    msg[pa->off + 1] = 0x03;
    assert_int_equal(stun_attr_xor_addr(&m, pa, &got), -EINVAL);
    /* a LIFETIME must be 4 bytes */
    uint32_t v;
    assert_int_equal(stun_attr_u32(&m, &fake, &v), -EINVAL);
}

static void test_types_and_framing(void **state)
{
    (void)state;
    assert_int_equal(stun_type(STUN_METHOD_BINDING, STUN_CLASS_REQUEST), 0x0001);
    assert_int_equal(stun_type(STUN_METHOD_BINDING, STUN_CLASS_SUCCESS), 0x0101);
    assert_int_equal(stun_type(STUN_METHOD_BINDING, STUN_CLASS_ERROR), 0x0111);
    assert_int_equal(stun_type(TURN_METHOD_ALLOCATE, STUN_CLASS_REQUEST), 0x0003);
    assert_int_equal(stun_type(TURN_METHOD_SEND, STUN_CLASS_INDICATION), 0x0016);
    assert_int_equal(stun_type(TURN_METHOD_DATA, STUN_CLASS_INDICATION), 0x0017);
    assert_int_equal(stun_type(TURN_METHOD_CHANNEL_BIND, STUN_CLASS_SUCCESS), 0x0109);

    const uint8_t stun[] = {0x00, 0x01, 0x00, 0x08};
    const uint8_t chan[] = {0x40, 0x00, 0x00, 0x05};
    const uint8_t bad[] = {0x80, 0x00, 0x00, 0x00};
    assert_int_equal(stun_frame_length(stun, 4), 28);
    assert_int_equal(stun_frame_length(chan, 4), 12); /* 4 + 5 padded to 8 */
    assert_int_equal(stun_frame_length(chan, 3), 0);
    assert_int_equal(stun_frame_length(bad, 4), -EINVAL);
    assert_true(stun_is_channel_data(chan, 4));
    assert_false(stun_is_channel_data(stun, 4));
    assert_false(stun_is_channel_data(chan, 3));

    /* CRC-32 check value */
    assert_int_equal(stun_crc32("123456789", 9), 0xCBF43926u);
    assert_true(stun_password_alg_available(STUN_PASSWORD_SHA256));
    assert_false(stun_password_alg_available((enum stun_password_alg)3));
    uint8_t key[STUN_KEY_MAX];
    size_t kl;
    assert_int_equal(
        stun_long_term_key((enum stun_password_alg)3, SV("a"), SV("b"), SV("c"), key, &kl),
        -EINVAL);
}

/* MD5 gone (as under a FIPS provider): the key derivation says so. */
static void test_without_md5(void **state)
{
    (void)state;
    uint8_t key[STUN_KEY_MAX];
    size_t kl = 0;
    assert_int_equal(stun_crypto_init(NULL, "provider=nosuchprovider"), -ENOTSUP);
    assert_false(stun_password_alg_available(STUN_PASSWORD_MD5));
    assert_int_equal(stun_long_term_key(STUN_PASSWORD_MD5, SV("a"), SV("b"), SV("c"), key, &kl),
                     -ENOTSUP);
    assert_int_equal(stun_crypto_init(NULL, NULL), 0);
    assert_true(stun_password_alg_available(STUN_PASSWORD_MD5));
    assert_int_equal(stun_long_term_key(STUN_PASSWORD_MD5, SV("a"), SV("b"), SV("c"), key, &kl), 0);
}

/* A request with the given PASSWORD-ALGORITHMS value (NULL: none) and
 * PASSWORD-ALGORITHM value (NULL: none), parsed into m over buf. */
static void pwalg_request(uint8_t *buf, size_t cap, const uint8_t *pas, size_t paslen,
                          const uint8_t *pa, size_t palen, struct stun_msg *m)
{
    static const uint8_t tid[STUN_TID_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    struct stun_builder b;
    size_t len = 0;

    stun_build_start(&b, buf, cap, TURN_METHOD_ALLOCATE, STUN_CLASS_REQUEST, tid);
    stun_build_attr(&b, STUN_ATTR_USERNAME, "u", 1);
    if (pas)
        stun_build_attr(&b, STUN_ATTR_PASSWORD_ALGORITHMS, pas, paslen);
    if (pa)
        stun_build_attr(&b, STUN_ATTR_PASSWORD_ALGORITHM, pa, palen);
    assert_int_equal(stun_build_finish(&b, &len), 0);
    assert_int_equal(stun_msg_parse(buf, len, m), 0);
}

/* What a server offers, and the RFC 8489 §9.2.4 checks of the echo: the
 * restricted mode drops MD5; a client that strips, adds, reorders or
 * parameterises an entry (a downgrade) is refused, and so is a
 * PASSWORD-ALGORITHM that was not offered or comes without the list. */
static void test_password_alg_select(void **state)
{
    (void)state;
    uint8_t buf[256];
    struct stun_msg m;
    uint16_t offer[2], alg = 0;

    assert_int_equal(stun_password_algs_offer(false, offer), 2);
    assert_int_equal(offer[0], STUN_PASSWORD_SHA256);
    assert_int_equal(offer[1], STUN_PASSWORD_MD5);
    assert_int_equal(stun_password_algs_offer(true, offer), 1);
    assert_int_equal(offer[0], STUN_PASSWORD_SHA256);

    const uint16_t both[] = {STUN_PASSWORD_SHA256, STUN_PASSWORD_MD5};
    const uint16_t sha_only[] = {STUN_PASSWORD_SHA256};
    const uint8_t echo_both[] = {0, 2, 0, 0, 0, 1, 0, 0};
    const uint8_t echo_sha[] = {0, 2, 0, 0};
    const uint8_t echo_swapped[] = {0, 1, 0, 0, 0, 2, 0, 0};
    const uint8_t echo_param[] = {0, 2, 0, 4, 1, 2, 3, 4, 0, 1, 0, 0};
    const uint8_t echo_md5_added[] = {0, 2, 0, 0, 0, 1, 0, 0};
    const uint8_t pa_sha[] = {0, 2, 0, 0}, pa_md5[] = {0, 1, 0, 0}, pa_other[] = {0, 3, 0, 0};
    const uint8_t pa_short[] = {0, 2};

    /* neither attribute: an RFC 5389 client, MD5 */
    pwalg_request(buf, sizeof(buf), NULL, 0, NULL, 0, &m);
    assert_int_equal(stun_password_alg_select(&m, both, 2, &alg), 0);
    assert_int_equal(alg, STUN_PASSWORD_MD5);
    /* the echo of the offer and a choice among it */
    pwalg_request(buf, sizeof(buf), echo_both, sizeof(echo_both), pa_sha, 4, &m);
    assert_int_equal(stun_password_alg_select(&m, both, 2, &alg), 0);
    assert_int_equal(alg, STUN_PASSWORD_SHA256);
    pwalg_request(buf, sizeof(buf), echo_both, sizeof(echo_both), pa_md5, 4, &m);
    assert_int_equal(stun_password_alg_select(&m, both, 2, &alg), 0);
    assert_int_equal(alg, STUN_PASSWORD_MD5);
    pwalg_request(buf, sizeof(buf), echo_sha, sizeof(echo_sha), pa_sha, 4, &m);
    assert_int_equal(stun_password_alg_select(&m, sha_only, 1, &alg), 0);
    assert_int_equal(alg, STUN_PASSWORD_SHA256);

    /* downgrades: MD5 stripped, entries swapped, a parameter, MD5 added */
    pwalg_request(buf, sizeof(buf), echo_sha, sizeof(echo_sha), pa_sha, 4, &m);
    assert_int_equal(stun_password_alg_select(&m, both, 2, &alg), -EPERM);
    pwalg_request(buf, sizeof(buf), echo_swapped, sizeof(echo_swapped), pa_md5, 4, &m);
    assert_int_equal(stun_password_alg_select(&m, both, 2, &alg), -EPERM);
    pwalg_request(buf, sizeof(buf), echo_param, sizeof(echo_param), pa_sha, 4, &m);
    assert_int_equal(stun_password_alg_select(&m, both, 2, &alg), -EPERM);
    pwalg_request(buf, sizeof(buf), echo_md5_added, sizeof(echo_md5_added), pa_md5, 4, &m);
    assert_int_equal(stun_password_alg_select(&m, sha_only, 1, &alg), -EPERM);
    /* a choice not offered: MD5 where only SHA-256 was, an unknown one */
    pwalg_request(buf, sizeof(buf), echo_sha, sizeof(echo_sha), pa_md5, 4, &m);
    assert_int_equal(stun_password_alg_select(&m, sha_only, 1, &alg), -ENOTSUP);
    pwalg_request(buf, sizeof(buf), echo_both, sizeof(echo_both), pa_other, 4, &m);
    assert_int_equal(stun_password_alg_select(&m, both, 2, &alg), -ENOTSUP);
    /* one without the other, a malformed PASSWORD-ALGORITHM */
    pwalg_request(buf, sizeof(buf), NULL, 0, pa_sha, 4, &m);
    assert_int_equal(stun_password_alg_select(&m, both, 2, &alg), -EINVAL);
    pwalg_request(buf, sizeof(buf), echo_both, sizeof(echo_both), NULL, 0, &m);
    assert_int_equal(stun_password_alg_select(&m, both, 2, &alg), -EINVAL);
    pwalg_request(buf, sizeof(buf), echo_both, sizeof(echo_both), pa_short, 2, &m);
    assert_int_equal(stun_password_alg_select(&m, both, 2, &alg), -EINVAL);
    assert_int_equal(stun_password_alg_select(&m, both, 2, NULL), -EINVAL);
}

/* The nonce cookie of RFC 8489 §9.2: "obMatJos2" and the feature set. */
static void test_nonce_cookie(void **state)
{
    (void)state;
    char c[STUN_NONCE_COOKIE_LEN + 1];
    uint32_t f = 0;

    stun_nonce_cookie(STUN_FEATURE_PASSWORD_ALGORITHMS, c);
    assert_string_equal(c, "obMatJos2gAAA");
    stun_nonce_cookie(STUN_FEATURE_PASSWORD_ALGORITHMS | STUN_FEATURE_USERNAME_ANONYMITY, c);
    assert_string_equal(c, "obMatJos2wAAA");
    assert_int_equal(stun_nonce_features(SV("obMatJos2gAAAsomething"), &f), 0);
    assert_int_equal(f, STUN_FEATURE_PASSWORD_ALGORITHMS);
    assert_int_equal(stun_nonce_features(SV("obMatJos2wAAA"), &f), 0);
    assert_int_equal(f, 0xC00000u);
    /* no cookie, too short, not base64 */
    assert_int_equal(stun_nonce_features(SV("xbMatJos2gAAA"), &f), -EINVAL);
    assert_int_equal(stun_nonce_features(SV("obMatJos2gA"), &f), -EINVAL);
    assert_int_equal(stun_nonce_features(SV("obMatJos2g!AA"), &f), -EINVAL);
    assert_int_equal(stun_nonce_features(SV(""), &f), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_5769_request),
        cmocka_unit_test(test_5769_ipv4_response),
        cmocka_unit_test(test_5769_ipv6_response),
        cmocka_unit_test(test_5769_long_term),
        cmocka_unit_test(test_8489_b1),
        cmocka_unit_test(test_truncated_sha256),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_attributes),
        cmocka_unit_test(test_types_and_framing),
        cmocka_unit_test(test_without_md5),
        cmocka_unit_test(test_password_alg_select),
        cmocka_unit_test(test_nonce_cookie),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
