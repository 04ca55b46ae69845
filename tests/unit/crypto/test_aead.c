/*
 * crypto/aead: AES-256-GCM against the GCM specification's test cases
 * (McGrew and Viega, test cases 13 and 14), round trips, and every
 * tampering refused with the output zeroed.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "crypto/aead.h"

static void to_hex(const unsigned char *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", p[i]);
}

static void test_gcm_spec_vectors(void **state)
{
    (void)state;
    unsigned char key[32] = {0}, iv[12] = {0}, pt[16] = {0}, ct[16], tag[16], back[16];
    char hex[33];

    /* Test case 13: empty plaintext */
    assert_int_equal(aead_seal(key, iv, NULL, 0, NULL, 0, NULL, tag), 0);
    to_hex(tag, 16, hex);
    assert_string_equal(hex, "530f8afbc74536b9a963b4f1c4cb738b");
    assert_int_equal(aead_open(key, iv, NULL, 0, NULL, 0, NULL, tag), 0);

    /* Test case 14: 16 zero bytes */
    assert_int_equal(aead_seal(key, iv, NULL, 0, pt, 16, ct, tag), 0);
    to_hex(ct, 16, hex);
    assert_string_equal(hex, "cea7403d4d606b6e074ec5d3baf39d18");
    to_hex(tag, 16, hex);
    assert_string_equal(hex, "d0d1c8a799996bf0265b98b5d48ab919");
    assert_int_equal(aead_open(key, iv, NULL, 0, ct, 16, back, tag), 0);
    assert_memory_equal(back, pt, 16);
}

static void test_round_trip_and_tampering(void **state)
{
    (void)state;
    unsigned char key[32], nonce[12], tag[16], bad_tag[16];
    unsigned char msg[100], ct[100], out[100];
    const char aad[] = "segment 7, not last";

    assert_int_equal(aead_random(NULL, key, sizeof(key)), 0);
    assert_int_equal(aead_random(NULL, nonce, sizeof(nonce)), 0);
    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = (unsigned char)i;
    assert_int_equal(aead_seal(key, nonce, aad, sizeof(aad), msg, sizeof(msg), ct, tag), 0);
    assert_memory_not_equal(ct, msg, sizeof(msg));
    assert_int_equal(aead_open(key, nonce, aad, sizeof(aad), ct, sizeof(ct), out, tag), 0);
    assert_memory_equal(out, msg, sizeof(msg));

    /* a flipped tag bit: refused, output zeroed */
    static const unsigned char zero[100];
    memcpy(bad_tag, tag, 16);
    bad_tag[15] ^= 0x80;
    memset(out, 0xaa, sizeof(out));
    assert_int_equal(aead_open(key, nonce, aad, sizeof(aad), ct, sizeof(ct), out, bad_tag),
                     -EBADMSG);
    assert_memory_equal(out, zero, sizeof(out));
    /* the AAD changed */
    char aad2[sizeof(aad)];
    memcpy(aad2, aad, sizeof(aad));
    aad2[8] = '8';
    memset(out, 0xaa, sizeof(out));
    assert_int_equal(aead_open(key, nonce, aad2, sizeof(aad2), ct, sizeof(ct), out, tag), -EBADMSG);
    assert_memory_equal(out, zero, sizeof(out));
    /* no AAD at all */
    assert_int_equal(aead_open(key, nonce, NULL, 0, ct, sizeof(ct), out, tag), -EBADMSG);
    /* the ciphertext changed */
    ct[50] ^= 1;
    assert_int_equal(aead_open(key, nonce, aad, sizeof(aad), ct, sizeof(ct), out, tag), -EBADMSG);
    ct[50] ^= 1;
    /* another nonce, another key */
    nonce[0] ^= 1;
    assert_int_equal(aead_open(key, nonce, aad, sizeof(aad), ct, sizeof(ct), out, tag), -EBADMSG);
    nonce[0] ^= 1;
    key[31] ^= 1;
    assert_int_equal(aead_open(key, nonce, aad, sizeof(aad), ct, sizeof(ct), out, tag), -EBADMSG);
    key[31] ^= 1;

    /* in place */
    memcpy(out, msg, sizeof(msg));
    assert_int_equal(aead_seal(key, nonce, aad, sizeof(aad), out, sizeof(out), out, tag), 0);
    assert_memory_equal(out, ct, sizeof(ct));
    assert_int_equal(aead_open(key, nonce, aad, sizeof(aad), out, sizeof(out), out, tag), 0);
    assert_memory_equal(out, msg, sizeof(msg));

    /* arguments */
    assert_int_equal(aead_seal(NULL, nonce, NULL, 0, msg, 1, out, tag), -EINVAL);
    assert_int_equal(aead_seal(key, nonce, NULL, 5, msg, 1, out, tag), -EINVAL);
}

static void test_random(void **state)
{
    (void)state;
    unsigned char a[32], b[32];
    assert_int_equal(aead_random(NULL, a, sizeof(a)), 0);
    assert_int_equal(aead_random(NULL, b, sizeof(b)), 0);
    assert_memory_not_equal(a, b, sizeof(a));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gcm_spec_vectors),
        cmocka_unit_test(test_round_trip_and_tampering),
        cmocka_unit_test(test_random),
    };
    assert_int_equal(aead_init(NULL, NULL), 0);
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    aead_cleanup();
    return rc;
}
