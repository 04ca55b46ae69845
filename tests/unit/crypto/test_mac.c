#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/strview.h"
#include "crypto/encoding.h"
#include "crypto/mac.h"

#define SV(s) strview_cstr(s)

static void to_hex(const unsigned char *p, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[p[i] >> 4];
        out[2 * i + 1] = hex[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static void check_hmac(enum mac_alg alg, const void *key, size_t keylen, const void *data,
                       size_t len, const char *want_hex)
{
    unsigned char out[MAC_MAX_SIZE];
    char hex[2 * MAC_MAX_SIZE + 1];
    size_t outlen = 0;

    assert_int_equal(mac_hmac(alg, key, keylen, data, len, out, &outlen), 0);
    assert_int_equal(outlen, mac_size(alg));
    to_hex(out, outlen, hex);
    assert_string_equal(hex, want_hex);
}

/* Runs before mac_init(): the first call prepares the defaults itself. */
static void test_lazy_init(void **state)
{
    (void)state;
    unsigned char key[20];
    memset(key, 0x0b, sizeof(key));
    check_hmac(MAC_HMAC_SHA256, key, sizeof(key), "Hi There", 8,
               "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    assert_true(mac_alg_available(MAC_HMAC_SHA1));
}

/* RFC 4231 §4.2-4.4. */
static void test_rfc4231(void **state)
{
    (void)state;
    unsigned char key[20], data[50];

    memset(key, 0x0b, 20);
    check_hmac(MAC_HMAC_SHA256, key, 20, "Hi There", 8,
               "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    check_hmac(MAC_HMAC_SHA256, "Jefe", 4, "what do ya want for nothing?", 28,
               "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    memset(key, 0xaa, 20);
    memset(data, 0xdd, 50);
    check_hmac(MAC_HMAC_SHA256, key, 20, data, 50,
               "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
}

/* RFC 2202 §3, test cases 1 and 2. */
static void test_rfc2202(void **state)
{
    (void)state;
    unsigned char key[20];

    memset(key, 0x0b, 20);
    check_hmac(MAC_HMAC_SHA1, key, 20, "Hi There", 8, "b617318655057264e28bc0b6fb378c8ef146be00");
    check_hmac(MAC_HMAC_SHA1, "Jefe", 4, "what do ya want for nothing?", 28,
               "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
}

/* Empty key and empty message (value from Python's hmac module), and a
 * key longer than the block size, which HMAC hashes first (RFC 4231 §4.7). */
static void test_edges(void **state)
{
    (void)state;
    unsigned char key[131];

    check_hmac(MAC_HMAC_SHA256, NULL, 0, NULL, 0,
               "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
    memset(key, 0xaa, sizeof(key));
    check_hmac(MAC_HMAC_SHA256, key, sizeof(key),
               "Test Using Larger Than Block-Size Key - Hash Key First", 54,
               "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

/* The same prepared context serves different keys one after another: the
 * key of one call must not leak into the next. */
static void test_key_independence(void **state)
{
    (void)state;
    unsigned char a[MAC_MAX_SIZE], b[MAC_MAX_SIZE], c[MAC_MAX_SIZE];
    size_t la, lb, lc;

    assert_int_equal(mac_hmac(MAC_HMAC_SHA256, "k1", 2, "m", 1, a, &la), 0);
    assert_int_equal(mac_hmac(MAC_HMAC_SHA256, "k2", 2, "m", 1, b, &lb), 0);
    assert_int_equal(mac_hmac(MAC_HMAC_SHA256, "k1", 2, "m", 1, c, &lc), 0);
    assert_memory_not_equal(a, b, 32);
    assert_memory_equal(a, c, 32);
    assert_int_equal(mac_hmac(MAC_HMAC_SHA1, "k1", 2, "m", 1, b, &lb), 0);
    assert_int_equal(lb, 20);
    assert_memory_not_equal(a, b, 20);
}

static void test_refusals(void **state)
{
    (void)state;
    unsigned char out[MAC_MAX_SIZE];
    size_t outlen = 0;

    assert_int_equal(mac_hmac((enum mac_alg)7, "k", 1, "m", 1, out, &outlen), -EINVAL);
    assert_int_equal(mac_hmac(MAC_HMAC_SHA256, NULL, 1, "m", 1, out, &outlen), -EINVAL);
    assert_int_equal(mac_hmac(MAC_HMAC_SHA256, "k", 1, NULL, 1, out, &outlen), -EINVAL);
    assert_int_equal(mac_hmac(MAC_HMAC_SHA256, "k", 1, "m", 1, NULL, &outlen), -EINVAL);
    assert_int_equal(mac_hmac(MAC_HMAC_SHA256, "k", 1, "m", 1, out, NULL), -EINVAL);
    assert_false(mac_alg_available((enum mac_alg)7));
    assert_int_equal(mac_size((enum mac_alg)7), 0);
    assert_string_equal(mac_alg_name(MAC_HMAC_SHA256), "HMAC-SHA256");
    assert_string_equal(mac_alg_name(MAC_HMAC_SHA1), "HMAC-SHA1");
    assert_string_equal(mac_alg_name((enum mac_alg)7), "?");
}

/* After cleanup nothing is available (and first-use initialisation does
 * not silently come back); mac_init() restores it. */
static void test_cleanup_reinit(void **state)
{
    (void)state;
    unsigned char out[MAC_MAX_SIZE];
    size_t outlen = 0;

    mac_cleanup();
    assert_false(mac_alg_available(MAC_HMAC_SHA256));
    assert_int_equal(mac_hmac(MAC_HMAC_SHA256, "k", 1, "m", 1, out, &outlen), -ENOTSUP);
    /* a property query nothing satisfies */
    assert_int_equal(mac_init(NULL, "provider=nonexistent"), -ENOTSUP);
    assert_false(mac_alg_available(MAC_HMAC_SHA1));
    assert_int_equal(mac_init(NULL, NULL), 0);
    assert_true(mac_alg_available(MAC_HMAC_SHA256));
    assert_true(mac_alg_available(MAC_HMAC_SHA1));
    assert_int_equal(mac_hmac(MAC_HMAC_SHA1, "k", 1, "m", 1, out, &outlen), 0);
}

static void *mac_worker(void *arg)
{
    (void)arg;
    unsigned char key[20], out[MAC_MAX_SIZE];
    char hex[2 * MAC_MAX_SIZE + 1];
    size_t outlen;

    memset(key, 0x0b, sizeof(key));
    for (int i = 0; i < 2000; i++) {
        if (mac_hmac(MAC_HMAC_SHA1, key, 20, "Hi There", 8, out, &outlen) != 0)
            return (void *)1;
        to_hex(out, outlen, hex);
        if (strcmp(hex, "b617318655057264e28bc0b6fb378c8ef146be00") != 0)
            return (void *)1;
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, mac_worker, NULL), 0);
    for (int i = 0; i < 4; i++) {
        void *ret = (void *)1;
        assert_int_equal(pthread_join(t[i], &ret), 0);
        assert_null(ret);
    }
}

/* --- base64 --- */

struct b64_vector {
    const char *raw, *std, *url;
};

/* RFC 4648 §10; the url column is the same without padding. */
static const struct b64_vector rfc4648[] = {
    {"", "", ""},
    {"f", "Zg==", "Zg"},
    {"fo", "Zm8=", "Zm8"},
    {"foo", "Zm9v", "Zm9v"},
    {"foob", "Zm9vYg==", "Zm9vYg"},
    {"fooba", "Zm9vYmE=", "Zm9vYmE"},
    {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
};

static void test_base64_rfc4648(void **state)
{
    (void)state;
    char enc[32];
    unsigned char dec[32];
    size_t n;

    for (size_t i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
        const struct b64_vector *v = &rfc4648[i];
        size_t rawlen = strlen(v->raw);

        assert_int_equal(base64_encode(BASE64_STD, v->raw, rawlen, enc, sizeof(enc), &n), 0);
        assert_string_equal(enc, v->std);
        assert_int_equal(n, strlen(v->std));
        assert_int_equal(BASE64_STD_LEN(rawlen), strlen(v->std));
        assert_int_equal(base64_encode(BASE64_URL, v->raw, rawlen, enc, sizeof(enc), &n), 0);
        assert_string_equal(enc, v->url);
        assert_int_equal(n, strlen(v->url));
        assert_int_equal(BASE64_URL_LEN(rawlen), strlen(v->url));

        n = 99;
        assert_int_equal(base64_decode(BASE64_STD, SV(v->std), dec, sizeof(dec), &n), 0);
        assert_int_equal(n, rawlen);
        assert_memory_equal(dec, v->raw, rawlen);
        n = 99;
        assert_int_equal(base64_decode(BASE64_URL, SV(v->url), dec, sizeof(dec), &n), 0);
        assert_int_equal(n, rawlen);
        assert_memory_equal(dec, v->raw, rawlen);
        assert_true(n <= BASE64_DECODED_MAX(strlen(v->url)));
    }
}

/* The two alphabets differ in exactly the last two symbols. */
static void test_base64_alphabets(void **state)
{
    (void)state;
    const unsigned char raw[] = {0xfb, 0xff, 0xbf, 0xfe};
    char enc[16];
    unsigned char dec[8];
    size_t n;

    assert_int_equal(base64_encode(BASE64_STD, raw, 4, enc, sizeof(enc), NULL), 0);
    assert_string_equal(enc, "+/+//g==");
    assert_int_equal(base64_encode(BASE64_URL, raw, 4, enc, sizeof(enc), NULL), 0);
    assert_string_equal(enc, "-_-__g");
    assert_int_equal(base64_decode(BASE64_URL, SV("-_-__g"), dec, sizeof(dec), &n), 0);
    assert_int_equal(n, 4);
    assert_memory_equal(dec, raw, 4);
    assert_int_equal(base64_decode(BASE64_STD, SV("+/+//g=="), dec, sizeof(dec), &n), 0);
    assert_memory_equal(dec, raw, 4);
    /* each alphabet refuses the other's symbols */
    assert_int_equal(base64_decode(BASE64_URL, SV("+/+//g"), dec, sizeof(dec), &n), -EINVAL);
    assert_int_equal(base64_decode(BASE64_STD, SV("-_-__g=="), dec, sizeof(dec), &n), -EINVAL);

    /* all 256 byte values round-trip in both variants */
    unsigned char all[256], back[256];
    char big[400];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    for (int v = BASE64_STD; v <= BASE64_URL; v++) {
        for (size_t len = 0; len <= 256; len += 37) {
            assert_int_equal(base64_encode((enum base64_variant)v, all + (256 - len) % 256, len,
                                           big, sizeof(big), &n),
                             0);
            size_t m = 0;
            assert_int_equal(
                base64_decode((enum base64_variant)v, strview_make(big, n), back, sizeof(back), &m),
                0);
            assert_int_equal(m, len);
            assert_memory_equal(back, all + (256 - len) % 256, len);
        }
    }
}

static void test_base64_refusals(void **state)
{
    (void)state;
    unsigned char dec[16];
    size_t n;
    static const char *const bad_std[] = {
        "Zg",                         /* missing padding */
        "Zg=",                        /* short padding */
        "Zg===",                      /* long padding */
        "====",                       /* padding only */
        "Z===",                       /* one symbol cannot end a byte */
        "Zh==",                       /* non-zero unused bits */
        "Zm9=",                       /* non-zero unused bits */
        "Zm=v",                       /* padding inside */
        "Zm9v Yg==",                  /* whitespace */
        "Zm9v\nYg==", "Zm9vYg==Zm9v", /* data after padding */
        "Zm9*",
    };
    static const char *const bad_url[] = {
        "Zg==",       /* no padding in url */
        "Zm8=",  "Z", /* length 1 mod 4 */
        "Zm9vY",      /* length 1 mod 4 */
        "Zh",         /* non-zero unused bits */
        "Zm9",   "Zm 9", "Zm9v+g",
    };
    for (size_t i = 0; i < sizeof(bad_std) / sizeof(bad_std[0]); i++) {
        if (base64_decode(BASE64_STD, SV(bad_std[i]), dec, sizeof(dec), &n) != -EINVAL)
            fail_msg("std accepted \"%s\"", bad_std[i]);
    }
    for (size_t i = 0; i < sizeof(bad_url) / sizeof(bad_url[0]); i++) {
        if (base64_decode(BASE64_URL, SV(bad_url[i]), dec, sizeof(dec), &n) != -EINVAL)
            fail_msg("url accepted \"%s\"", bad_url[i]);
    }
    /* a length of 1 mod 4 is refused from the length alone, whatever
     * follows the view */
    assert_int_equal(base64_decode(BASE64_URL, strview_make("ZA", 1), dec, sizeof(dec), &n),
                     -EINVAL);
    assert_int_equal(base64_decode(BASE64_URL, strview_make("Zm9vYA", 5), dec, sizeof(dec), &n),
                     -EINVAL);
    /* an embedded NUL is outside the alphabet */
    assert_int_equal(base64_decode(BASE64_URL, strview_make("Zm\0v", 4), dec, sizeof(dec), &n),
                     -EINVAL);
    /* a view that does not end at a NUL is read only up to its length */
    assert_int_equal(base64_decode(BASE64_URL, strview_make("Zm9vYmFy", 4), dec, sizeof(dec), &n),
                     0);
    assert_int_equal(n, 3);
    assert_memory_equal(dec, "foo", 3);
}

static void test_base64_space(void **state)
{
    (void)state;
    char enc[9];
    unsigned char dec[6];
    size_t n;

    /* "foobar" needs 8 characters and the NUL */
    assert_int_equal(base64_encode(BASE64_STD, "foobar", 6, enc, 8, &n), -ENOSPC);
    assert_string_equal(enc, "");
    assert_int_equal(base64_encode(BASE64_STD, "foobar", 6, enc, 9, &n), 0);
    assert_int_equal(base64_encode(BASE64_URL, "fooba", 5, enc, 7, &n), -ENOSPC);
    assert_int_equal(base64_encode(BASE64_URL, "fooba", 5, enc, 8, &n), 0);
    assert_int_equal(base64_encode(BASE64_URL, "", 0, enc, 0, &n), -ENOSPC);
    assert_int_equal(base64_decode(BASE64_STD, SV("Zm9vYmFy"), dec, 5, &n), -ENOSPC);
    assert_int_equal(base64_decode(BASE64_STD, SV("Zm9vYmFy"), dec, 6, &n), 0);
    assert_int_equal(base64_decode(BASE64_URL, SV("Zm9vYmE"), dec, 4, &n), -ENOSPC);
    assert_int_equal(base64_decode(BASE64_URL, SV("Zm9vYmE"), dec, 5, &n), 0);
    assert_int_equal(n, 5);
    assert_int_equal(base64_encode((enum base64_variant)5, "f", 1, enc, 9, &n), -EINVAL);
    assert_int_equal(base64_encode(BASE64_STD, NULL, 1, enc, 9, &n), -EINVAL);
    assert_int_equal(base64_decode((enum base64_variant)5, SV("Zg"), dec, 6, &n), -EINVAL);
    assert_int_equal(base64_decode(BASE64_URL, SV("Zg"), dec, 6, NULL), -EINVAL);
}

/* A TURN REST-style password: base64(HMAC-SHA1(secret, "expiry:user")).
 * Expected value computed independently with Python's hmac and base64. */
static void test_turn_style_credential(void **state)
{
    (void)state;
    unsigned char mac[MAC_MAX_SIZE];
    char b64[BASE64_STD_LEN(MAC_MAX_SIZE) + 1];
    size_t n;

    assert_int_equal(mac_hmac(MAC_HMAC_SHA1, "secret", 6, "1700000000:alice", 16, mac, &n), 0);
    assert_int_equal(base64_encode(BASE64_STD, mac, n, b64, sizeof(b64), NULL), 0);
    assert_string_equal(b64, "d8soP47RbdIKLDUOpnJPVQyq5Ts=");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lazy_init),
        cmocka_unit_test(test_rfc4231),
        cmocka_unit_test(test_rfc2202),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_key_independence),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_cleanup_reinit),
        cmocka_unit_test(test_base64_rfc4648),
        cmocka_unit_test(test_base64_alphabets),
        cmocka_unit_test(test_base64_refusals),
        cmocka_unit_test(test_base64_space),
        cmocka_unit_test(test_turn_style_credential),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    mac_cleanup();
    return rc;
}
