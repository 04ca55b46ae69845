#include "crypto/policy.h"

/*
 * Key and salt lengths: RFC 4568 §6.2 (AES_CM_128_*, F8_128_*: 128-bit
 * key, 112-bit salt), RFC 6188 (AES_192_CM_*, AES_256_CM_*: 112-bit salt),
 * RFC 7714 §12 (AEAD_AES_*_GCM: 96-bit salt). The NULL cipher suites are
 * libsrtp's and are listed only so that they are recognised and refused
 * with a precise reason; their "key" is the HMAC key and salt of the
 * AES_CM suites.
 *
 * FIPS: AES in counter mode and GCM are approved (SP 800-38A/D) and
 * HMAC-SHA1 is acceptable for authentication (SP 800-131A); AES-F8 is not
 * an approved mode, and a NULL cipher is not encryption at all.
 */
static const struct crypto_srtp_suite suites[] = {
    {"AES_CM_128_HMAC_SHA1_80", 16, 14, true, true, true},
    {"AES_CM_128_HMAC_SHA1_32", 16, 14, true, true, true},
    {"AEAD_AES_128_GCM", 16, 12, true, true, true},
    {"AEAD_AES_256_GCM", 32, 12, true, true, true},
    {"AES_192_CM_HMAC_SHA1_80", 24, 14, true, true, true},
    {"AES_192_CM_HMAC_SHA1_32", 24, 14, true, true, true},
    {"AES_256_CM_HMAC_SHA1_80", 32, 14, true, true, true},
    {"AES_256_CM_HMAC_SHA1_32", 32, 14, true, true, true},
    {"F8_128_HMAC_SHA1_80", 16, 14, true, true, false},
    {"NULL_HMAC_SHA1_80", 16, 14, false, true, false},
    {"NULL_HMAC_SHA1_32", 16, 14, false, true, false},
};

static const char *const default_suites[] = {
    "AES_CM_128_HMAC_SHA1_80",
    "AEAD_AES_128_GCM",
    "AEAD_AES_256_GCM",
};

const struct crypto_srtp_suite *crypto_srtp_suite_find(struct strview name)
{
    for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++)
        if (strview_eq(name, suites[i].name))
            return &suites[i];
    return NULL;
}

bool crypto_srtp_suite_known(struct strview name)
{
    return crypto_srtp_suite_find(name) != NULL;
}

bool crypto_srtp_suite_protects(struct strview name)
{
    const struct crypto_srtp_suite *s = crypto_srtp_suite_find(name);
    return s && s->encrypts && s->authenticates;
}

bool crypto_srtp_suite_fips(struct strview name)
{
    const struct crypto_srtp_suite *s = crypto_srtp_suite_find(name);
    return s && s->fips;
}

size_t crypto_srtp_suite_inline_len(struct strview name)
{
    const struct crypto_srtp_suite *s = crypto_srtp_suite_find(name);
    return s ? s->key_len + s->salt_len : 0;
}

const struct crypto_srtp_suite *crypto_srtp_suites_all(size_t *n)
{
    *n = sizeof(suites) / sizeof(suites[0]);
    return suites;
}

const char *const *crypto_srtp_suites_default(size_t *n)
{
    *n = sizeof(default_suites) / sizeof(default_suites[0]);
    return default_suites;
}

size_t crypto_srtp_suites_narrow_fips(const char *const *in, size_t n, const char **out, size_t cap)
{
    size_t kept = 0;

    for (size_t i = 0; i < n && kept < cap; i++) {
        if (!in[i])
            continue;
        struct strview v = strview_cstr(in[i]);
        if (crypto_srtp_suite_protects(v) && crypto_srtp_suite_fips(v))
            out[kept++] = in[i];
    }
    return kept;
}
