/*
 * crypto/sign: ES256 round trips, the RFC 7515 A.3 vector, and every form
 * of signature and key that must be refused. Cross-checks use OpenSSL
 * directly, not the code under test.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "core/strview.h"
#include "crypto/encoding.h"
#include "crypto/sign.h"

/* RFC 7515 Appendix A.3. */
static const char A3_X[] = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
static const char A3_Y[] = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
static const char A3_D[] = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI";
static const char A3_INPUT[] = "eyJhbGciOiJFUzI1NiJ9."
                               "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGx"
                               "lLmNvbS9pc19yb290Ijp0cnVlfQ";
static const char A3_SIG[] =
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

static const unsigned char P256_N[32] = {
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
};

static size_t b64u(const char *s, unsigned char *out, size_t cap)
{
    size_t n = 0;
    assert_int_equal(base64_decode(BASE64_URL, strview_cstr(s), out, cap, &n), 0);
    return n;
}

static char *pem_of(EVP_PKEY *pkey, bool private_key)
{
    BIO *b = BIO_new(BIO_s_mem());
    int ok = private_key ? PEM_write_bio_PrivateKey(b, pkey, NULL, NULL, 0, NULL, NULL)
                         : PEM_write_bio_PUBKEY(b, pkey);
    assert_true(ok);
    char *p = NULL;
    long n = BIO_get_mem_data(b, &p);
    char *s = strndup(p, (size_t)n);
    BIO_free(b);
    return s;
}

static struct sign_key *key_from(EVP_PKEY *pkey)
{
    struct sign_key *k = NULL;
    char *pem = pem_of(pkey, true);
    assert_int_equal(sign_key_from_pem(NULL, NULL, pem, strlen(pem), &k), 0);
    free(pem);
    return k;
}

/* The A.3 key from its JWK coordinates. */
static EVP_PKEY *a3_pkey(void)
{
    unsigned char x[32], y[32], d[32], pub[65];
    assert_int_equal(b64u(A3_X, x, sizeof(x)), 32);
    assert_int_equal(b64u(A3_Y, y, sizeof(y)), 32);
    assert_int_equal(b64u(A3_D, d, sizeof(d)), 32);
    pub[0] = 0x04;
    memcpy(pub + 1, x, 32);
    memcpy(pub + 33, y, 32);
    BIGNUM *priv = BN_bin2bn(d, 32, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0);
    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub));
    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv);
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    EVP_PKEY *pkey = NULL;
    assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
    assert_int_equal(EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_KEYPAIR, params), 1);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(priv);
    return pkey;
}

static void test_rfc7515_a3(void **state)
{
    (void)state;
    unsigned char sig[64];
    EVP_PKEY *pkey = a3_pkey();
    struct sign_key *k = key_from(pkey);

    assert_int_equal(b64u(A3_SIG, sig, sizeof(sig)), 64);
    assert_int_equal(sign_es256_verify(k, A3_INPUT, strlen(A3_INPUT), sig, 64), 0);
    /* the input with one character changed */
    char other[sizeof(A3_INPUT)];
    memcpy(other, A3_INPUT, sizeof(other));
    other[30] ^= 1;
    assert_int_equal(sign_es256_verify(k, other, strlen(other), sig, 64), -EBADMSG);

    /* The key id, computed here independently: SHA-256 of the SPKI DER. */
    unsigned char *der = NULL, md[32];
    unsigned int mdlen = 0;
    int n = i2d_PUBKEY(pkey, &der);
    assert_true(n > 0);
    assert_int_equal(EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha256(), NULL), 1);
    char want[17], got[17];
    assert_int_equal(base64_encode(BASE64_URL, md, 12, want, sizeof(want), NULL), 0);
    assert_int_equal(sign_key_id(k, got), 0);
    assert_string_equal(got, want);
    assert_int_equal(strlen(got), 16);
    OPENSSL_free(der);
    sign_key_free(k);
    EVP_PKEY_free(pkey);
}

/* OpenSSL's own verification of an r||s signature (converted to DER). */
static bool openssl_verifies(EVP_PKEY *pub, const char *data, const unsigned char sig[64])
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
    unsigned char *der = NULL;
    int n = i2d_ECDSA_SIG(es, &der);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub) == 1 &&
              EVP_DigestVerify(md, der, (size_t)n, (const unsigned char *)data, strlen(data)) == 1;
    EVP_MD_CTX_free(md);
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
    return ok;
}

static void test_round_trip(void **state)
{
    (void)state;
    struct sign_key *k = NULL, *k2 = NULL;
    unsigned char sig[64];
    char *pem = NULL, id1[17], id2[17];
    size_t len = 0;
    const char *msg = "a ticket's signing input";

    assert_int_equal(sign_key_generate(NULL, NULL, &k), 0);
    assert_int_equal(sign_es256(k, msg, strlen(msg), sig), 0);
    assert_int_equal(sign_es256_verify(k, msg, strlen(msg), sig, 64), 0);

    assert_int_equal(sign_key_to_pem(k, &pem, &len), 0);
    assert_int_equal(strlen(pem), len);
    assert_non_null(strstr(pem, "-----BEGIN PRIVATE KEY-----"));
    assert_int_equal(sign_key_from_pem(NULL, NULL, pem, len, &k2), 0);
    assert_int_equal(sign_es256_verify(k2, msg, strlen(msg), sig, 64), 0);
    sign_key_id(k, id1);
    sign_key_id(k2, id2);
    assert_string_equal(id1, id2);

    /* OpenSSL agrees, from the PEM read independently */
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *pkey = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    assert_non_null(pkey);
    assert_true(openssl_verifies(pkey, msg, sig));
    BIO_free(b);
    EVP_PKEY_free(pkey);

    /* an empty message signs too */
    assert_int_equal(sign_es256(k, NULL, 0, sig), 0);
    assert_int_equal(sign_es256_verify(k, "", 0, sig, 64), 0);

    /* another key's signature is refused */
    struct sign_key *other = NULL;
    assert_int_equal(sign_key_generate(NULL, NULL, &other), 0);
    assert_int_equal(sign_es256(other, msg, strlen(msg), sig), 0);
    assert_int_equal(sign_es256_verify(k, msg, strlen(msg), sig, 64), -EBADMSG);
    sign_key_id(other, id2);
    assert_string_not_equal(id1, id2);

    OPENSSL_cleanse(pem, len);
    free(pem);
    sign_key_free(k);
    sign_key_free(k2);
    sign_key_free(other);
}

static void test_flipped_bits(void **state)
{
    (void)state;
    struct sign_key *k = NULL;
    unsigned char sig[64], bad[64];
    char msg[] = "hello tickets";

    assert_int_equal(sign_key_generate(NULL, NULL, &k), 0);
    assert_int_equal(sign_es256(k, msg, strlen(msg), sig), 0);
    for (size_t i = 0; i < 64; i += 7) {
        memcpy(bad, sig, 64);
        bad[i] ^= 0x01;
        assert_int_equal(sign_es256_verify(k, msg, strlen(msg), bad, 64), -EBADMSG);
    }
    msg[0] ^= 0x20;
    assert_int_equal(sign_es256_verify(k, msg, strlen(msg), sig, 64), -EBADMSG);
    sign_key_free(k);
}

static void test_bad_forms_refused(void **state)
{
    (void)state;
    struct sign_key *k = NULL;
    unsigned char sig[64], bad[80];
    const char *msg = "m";

    assert_int_equal(sign_key_generate(NULL, NULL, &k), 0);
    assert_int_equal(sign_es256(k, msg, 1, sig), 0);

    /* the same signature in DER */
    ECDSA_SIG *es = ECDSA_SIG_new();
    ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
    unsigned char *der = NULL;
    int n = i2d_ECDSA_SIG(es, &der);
    assert_true(n > 0 && n != 64);
    assert_int_equal(sign_es256_verify(k, msg, 1, der, (size_t)n), -EBADMSG);
    OPENSSL_free(der);
    ECDSA_SIG_free(es);

    /* wrong lengths */
    assert_int_equal(sign_es256_verify(k, msg, 1, sig, 63), -EBADMSG);
    memcpy(bad, sig, 64);
    bad[64] = 0;
    assert_int_equal(sign_es256_verify(k, msg, 1, bad, 65), -EBADMSG);
    assert_int_equal(sign_es256_verify(k, msg, 1, sig, 0), -EBADMSG);

    /* r = 0, s = 0 */
    memcpy(bad, sig, 64);
    memset(bad, 0, 32);
    assert_int_equal(sign_es256_verify(k, msg, 1, bad, 64), -EBADMSG);
    memcpy(bad, sig, 64);
    memset(bad + 32, 0, 32);
    assert_int_equal(sign_es256_verify(k, msg, 1, bad, 64), -EBADMSG);
    /* s = n, s = n + 1 (not reduced), s = 2^256 - 1, r = n */
    memcpy(bad, sig, 64);
    memcpy(bad + 32, P256_N, 32);
    assert_int_equal(sign_es256_verify(k, msg, 1, bad, 64), -EBADMSG);
    bad[63]++;
    assert_int_equal(sign_es256_verify(k, msg, 1, bad, 64), -EBADMSG);
    memset(bad + 32, 0xff, 32);
    assert_int_equal(sign_es256_verify(k, msg, 1, bad, 64), -EBADMSG);
    memcpy(bad, P256_N, 32);
    memcpy(bad + 32, sig + 32, 32);
    assert_int_equal(sign_es256_verify(k, msg, 1, bad, 64), -EBADMSG);
    /* n - s is the other valid s for the same r (malleability): ECDSA
     * accepts it, as JWS does; what matters is that nothing else is. */
    sign_key_free(k);
}

static void test_wrong_keys_refused(void **state)
{
    (void)state;
    struct sign_key *k = NULL;
    EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *p256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    char *pem;

    pem = pem_of(p384, true);
    assert_int_equal(sign_key_from_pem(NULL, NULL, pem, strlen(pem), &k), -EINVAL);
    free(pem);
    pem = pem_of(rsa, true);
    assert_int_equal(sign_key_from_pem(NULL, NULL, pem, strlen(pem), &k), -EINVAL);
    free(pem);
    /* a P-256 public key alone signs nothing */
    pem = pem_of(p256, false);
    assert_int_equal(sign_key_from_pem(NULL, NULL, pem, strlen(pem), &k), -EINVAL);
    free(pem);
    /* garbage, truncation */
    assert_int_equal(sign_key_from_pem(NULL, NULL, "hello", 5, &k), -EINVAL);
    pem = pem_of(p256, true);
    assert_int_equal(sign_key_from_pem(NULL, NULL, pem, strlen(pem) / 2, &k), -EINVAL);
    assert_int_equal(sign_key_from_pem(NULL, NULL, pem, strlen(pem), &k), 0);
    free(pem);
    sign_key_free(k);
    EVP_PKEY_free(p384);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(p256);
}

static void test_sha256(void **state)
{
    (void)state;
    unsigned char md[32];
    char hex[65];
    assert_int_equal(sign_sha256("abc", 3, md), 0);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc7515_a3),         cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_flipped_bits),       cmocka_unit_test(test_bad_forms_refused),
        cmocka_unit_test(test_wrong_keys_refused), cmocka_unit_test(test_sha256),
    };
    assert_int_equal(sign_init(NULL, NULL), 0);
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sign_cleanup();
    return rc;
}
