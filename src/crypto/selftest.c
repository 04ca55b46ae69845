#include "crypto/selftest.h"

#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/strview.h"
#include "crypto/aead.h"
#include "crypto/digest.h"
#include "crypto/encoding.h"
#include "crypto/mac.h"
#include "crypto/sign.h"

/* RFC 7616 §3.9.1: Mufasa's GET of /dir/index.html, qop=auth. */
static int kat_digest(enum digest_alg alg, const char *want)
{
    char ha1[DIGEST_HEX_BUF], resp[DIGEST_HEX_BUF];
    int rc = digest_ha1(alg, "Mufasa", "http-auth@example.org", "Circle of Life", ha1);

    if (rc == 0)
        rc = digest_response(
            alg, ha1, strview_cstr("7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"),
            strview_cstr("00000001"), strview_cstr("f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"),
            strview_cstr("auth"), strview_cstr("GET"), strview_cstr("/dir/index.html"), resp);
    return rc == 0 && strcmp(resp, want) == 0 ? 0 : -EIO;
}

static int kat_digest_sha256(void)
{
    return kat_digest(DIGEST_ALG_SHA256,
                      "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
}

static int kat_digest_md5(void)
{
    return kat_digest(DIGEST_ALG_MD5, "8ca523f5e9506fed4657c9700eebdbec");
}

/* The TURN REST password relay/relay_cred makes: base64(HMAC-SHA1(secret,
 * username)). The answer was computed with Python's hmac module. */
static int kat_relay_credential(void)
{
    static const char secret[] = "parley-selftest-secret", user[] = "1700000000:alice";
    unsigned char m[MAC_MAX_SIZE];
    size_t mlen = 0;
    char b64[BASE64_STD_LEN(MAC_MAX_SIZE) + 1];
    int rc = mac_hmac(MAC_HMAC_SHA1, secret, strlen(secret), user, strlen(user), m, &mlen);

    if (rc == 0)
        rc = base64_encode(BASE64_STD, m, mlen, b64, sizeof(b64), NULL);
    return rc == 0 && strcmp(b64, "aH9nItAksA8GzgO52fEa4HabBmI=") == 0 ? 0 : -EIO;
}

/* HMAC-SHA256, RFC 4231 test case 2: the MAC of SIP and relay nonces and
 * of TURN's MESSAGE-INTEGRITY-SHA256. */
static int kat_hmac_sha256(void)
{
    static const char key[] = "Jefe", data[] = "what do ya want for nothing?";
    static const unsigned char want[32] = {0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e,
                                           0x6a, 0x04, 0x24, 0x26, 0x08, 0x95, 0x75, 0xc7,
                                           0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83,
                                           0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43};
    unsigned char m[MAC_MAX_SIZE];
    size_t mlen = 0;
    int rc = mac_hmac(MAC_HMAC_SHA256, key, strlen(key), data, strlen(data), m, &mlen);
    return rc == 0 && mlen == sizeof(want) && memcmp(m, want, sizeof(want)) == 0 ? 0 : -EIO;
}

/* The GCM specification's (McGrew, Viega) test case 16: AES-256, a 96-bit
 * IV, 60 octets of plaintext, 20 of AAD. Sealed, then opened, then opened
 * with one bit of the tag flipped (which must fail). */
static const unsigned char gcm_key[32] = {
    0xfe, 0xff, 0xe9, 0x92, 0x86, 0x65, 0x73, 0x1c, 0x6d, 0x6a, 0x8f, 0x94, 0x67, 0x30, 0x83, 0x08,
    0xfe, 0xff, 0xe9, 0x92, 0x86, 0x65, 0x73, 0x1c, 0x6d, 0x6a, 0x8f, 0x94, 0x67, 0x30, 0x83, 0x08,
};
static const unsigned char gcm_iv[12] = {0xca, 0xfe, 0xba, 0xbe, 0xfa, 0xce,
                                         0xdb, 0xad, 0xde, 0xca, 0xf8, 0x88};
static const unsigned char gcm_aad[20] = {0xfe, 0xed, 0xfa, 0xce, 0xde, 0xad, 0xbe,
                                          0xef, 0xfe, 0xed, 0xfa, 0xce, 0xde, 0xad,
                                          0xbe, 0xef, 0xab, 0xad, 0xda, 0xd2};
static const unsigned char gcm_pt[60] = {
    0xd9, 0x31, 0x32, 0x25, 0xf8, 0x84, 0x06, 0xe5, 0xa5, 0x59, 0x09, 0xc5, 0xaf, 0xf5, 0x26,
    0x9a, 0x86, 0xa7, 0xa9, 0x53, 0x15, 0x34, 0xf7, 0xda, 0x2e, 0x4c, 0x30, 0x3d, 0x8a, 0x31,
    0x8a, 0x72, 0x1c, 0x3c, 0x0c, 0x95, 0x95, 0x68, 0x09, 0x53, 0x2f, 0xcf, 0x0e, 0x24, 0x49,
    0xa6, 0xb5, 0x25, 0xb1, 0x6a, 0xed, 0xf5, 0xaa, 0x0d, 0xe6, 0x57, 0xba, 0x63, 0x7b, 0x39,
};
static const unsigned char gcm_ct[60] = {
    0x52, 0x2d, 0xc1, 0xf0, 0x99, 0x56, 0x7d, 0x07, 0xf4, 0x7f, 0x37, 0xa3, 0x2a, 0x84, 0x42,
    0x7d, 0x64, 0x3a, 0x8c, 0xdc, 0xbf, 0xe5, 0xc0, 0xc9, 0x75, 0x98, 0xa2, 0xbd, 0x25, 0x55,
    0xd1, 0xaa, 0x8c, 0xb0, 0x8e, 0x48, 0x59, 0x0d, 0xbb, 0x3d, 0xa7, 0xb0, 0x8b, 0x10, 0x56,
    0x82, 0x88, 0x38, 0xc5, 0xf6, 0x1e, 0x63, 0x93, 0xba, 0x7a, 0x0a, 0xbc, 0xc9, 0xf6, 0x62,
};
static const unsigned char gcm_tag[16] = {0x76, 0xfc, 0x6e, 0xce, 0x0f, 0x4e, 0x17, 0x68,
                                          0xcd, 0xdf, 0x88, 0x53, 0xbb, 0x2d, 0x55, 0x1b};

static int kat_aes_256_gcm(void)
{
    unsigned char ct[sizeof(gcm_pt)], pt[sizeof(gcm_pt)], tag[AEAD_TAG_LEN];

    if (aead_seal(gcm_key, gcm_iv, gcm_aad, sizeof(gcm_aad), gcm_pt, sizeof(gcm_pt), ct, tag) ||
        memcmp(ct, gcm_ct, sizeof(ct)) != 0 || memcmp(tag, gcm_tag, sizeof(tag)) != 0)
        return -EIO;
    if (aead_open(gcm_key, gcm_iv, gcm_aad, sizeof(gcm_aad), gcm_ct, sizeof(gcm_ct), pt, gcm_tag) ||
        memcmp(pt, gcm_pt, sizeof(pt)) != 0)
        return -EIO;
    tag[0] ^= 1;
    if (aead_open(gcm_key, gcm_iv, gcm_aad, sizeof(gcm_aad), gcm_ct, sizeof(gcm_ct), pt, tag) !=
        -EBADMSG)
        return -EIO;
    OPENSSL_cleanse(pt, sizeof(pt));
    return 0;
}

/* RFC 7515 A.3: the key (its JWK d, x, y as PKCS#8), the signing input and
 * the signature; verified as given, and refused with one bit changed. */
static const char es256_pem[] = "-----BEGIN PRIVATE KEY-----\n"
                                "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgjpsQnnGQmL+YBIff\n"
                                "H1136cspYG6+0iY7X1fCE9+E9LKhRANCAAR/zc4ncPbEXUGDy+5v20t7WAczNXvp\n"
                                "7xO6z248e9FURcfxRM0bvZt+hyzf7bnuufSzaV1uqQskrYpGIyiFiOWt\n"
                                "-----END PRIVATE KEY-----\n";
static const char es256_input[] = "eyJhbGciOiJFUzI1NiJ9."
                                  "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leG"
                                  "FtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
static const char es256_sig[] =
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

static int kat_es256(OSSL_LIB_CTX *libctx, const char *propq)
{
    struct sign_key *k = NULL;
    unsigned char sig[SIGN_ES256_LEN];
    size_t n = 0;
    int rc = sign_key_from_pem(libctx, propq, es256_pem, sizeof(es256_pem) - 1, &k);

    if (rc == 0)
        rc = base64_decode(BASE64_URL, strview_cstr(es256_sig), sig, sizeof(sig), &n);
    if (rc == 0 && n != sizeof(sig))
        rc = -EIO;
    if (rc == 0)
        rc = sign_es256_verify(k, es256_input, strlen(es256_input), sig, n);
    if (rc == 0) {
        sig[5] ^= 0x10;
        if (sign_es256_verify(k, es256_input, strlen(es256_input), sig, n) != -EBADMSG)
            rc = -EIO;
    }
    sign_key_free(k);
    return rc ? -EIO : 0;
}

int selftest_run(OSSL_LIB_CTX *libctx, const char *propq, bool restricted, const char **failed)
{
    int passed = 0;
    const char *name = NULL;

#define RUN(label, call)                                                                           \
    do {                                                                                           \
        if ((call) != 0) {                                                                         \
            name = (label);                                                                        \
            goto out;                                                                              \
        }                                                                                          \
        passed++;                                                                                  \
    } while (0)

    RUN("sip-digest-sha256", kat_digest_sha256());
    if (!restricted)
        RUN("sip-digest-md5", kat_digest_md5());
    RUN("turn-credential-hmac-sha1", kat_relay_credential());
    RUN("hmac-sha256", kat_hmac_sha256());
    RUN("aes-256-gcm", kat_aes_256_gcm());
    RUN("es256-verify", kat_es256(libctx, propq));
#undef RUN
out:
    if (failed)
        *failed = name;
    return name ? -EIO : passed;
}
