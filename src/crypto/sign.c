#include "crypto/sign.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "crypto/encoding.h"

#define SIGN_COORD_LEN 32
#define SIGN_DER_MAX   80 /* an ECDSA P-256 signature in DER is at most 72 bytes */

struct sign_key {
    EVP_PKEY *pkey;
    OSSL_LIB_CTX *libctx;
    char *propq;
    char kid[SIGN_KEY_ID_LEN + 1];
};

/* The order n of P-256 (SEC 2 §2.4.2): r and s must lie in [1, n-1]. */
static const unsigned char p256_order[SIGN_COORD_LEN] = {
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
};

/* Written only by sign_init()/sign_cleanup() (and the first-use
 * initialisation), read-only afterwards; fetched objects are immutable. */
static EVP_MD *g_sha256;
static EVP_KEYMGMT *g_ec;    /* held so the key management stays fetched */
static EVP_SIGNATURE *g_dsa; /* likewise ECDSA */
static bool g_initialised;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

void sign_cleanup(void)
{
    EVP_MD_free(g_sha256);
    EVP_KEYMGMT_free(g_ec);
    EVP_SIGNATURE_free(g_dsa);
    g_sha256 = NULL;
    g_ec = NULL;
    g_dsa = NULL;
    g_initialised = true;
}

int sign_init(OSSL_LIB_CTX *libctx, const char *propq)
{
    sign_cleanup();
    g_sha256 = EVP_MD_fetch(libctx, "SHA2-256", propq);
    g_ec = EVP_KEYMGMT_fetch(libctx, "EC", propq);
    g_dsa = EVP_SIGNATURE_fetch(libctx, "ECDSA", propq);
    ERR_clear_error();
    return g_sha256 && g_ec && g_dsa ? 0 : -ENOTSUP;
}

static void init_once(void)
{
    if (!g_initialised)
        (void)sign_init(NULL, NULL); /* default-context: never opened */
}

static bool ready(void)
{
    pthread_once(&g_once, init_once);
    return g_sha256 && g_ec && g_dsa;
}

int sign_sha256(const void *data, size_t len, unsigned char out[SIGN_SHA256_LEN])
{
    unsigned int n = 0;

    if ((len && !data) || !out)
        return -EINVAL;
    if (!ready())
        return -ENOTSUP;
    if (!EVP_Digest(len ? data : "", len, out, &n, g_sha256, NULL) || n != SIGN_SHA256_LEN) {
        ERR_clear_error();
        return -EIO;
    }
    return 0;
}

void sign_key_free(struct sign_key *k)
{
    if (!k)
        return;
    EVP_PKEY_free(k->pkey); /* the provider cleanses the private scalar */
    free(k->propq);
    free(k);
}

/* Wraps pkey (taken) and computes its key id. */
static int key_wrap(OSSL_LIB_CTX *libctx, const char *propq, EVP_PKEY *pkey, struct sign_key **out)
{
    unsigned char *der = NULL, digest[SIGN_SHA256_LEN];
    struct sign_key *k = calloc(1, sizeof(*k));
    int rc = -ENOMEM;

    if (!k) {
        EVP_PKEY_free(pkey);
        return -ENOMEM;
    }
    k->pkey = pkey;
    k->libctx = libctx;
    if (propq && !(k->propq = strdup(propq)))
        goto out;
    int n = i2d_PUBKEY(pkey, &der);
    if (n <= 0) {
        rc = -EIO;
        goto out;
    }
    rc = sign_sha256(der, (size_t)n, digest);
    if (rc == 0)
        rc = base64_encode(BASE64_URL, digest, 12, k->kid, sizeof(k->kid), NULL);
out:
    OPENSSL_free(der);
    if (rc) {
        sign_key_free(k);
        ERR_clear_error();
        return rc;
    }
    *out = k;
    return 0;
}

int sign_key_generate(OSSL_LIB_CTX *libctx, const char *propq, struct sign_key **out)
{
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *ctx = NULL;

    if (!out)
        return -EINVAL;
    if (!ready())
        return -ENOTSUP;
    ctx = EVP_PKEY_CTX_new_from_name(libctx, "EC", propq);
    if (!ctx || EVP_PKEY_keygen_init(ctx) <= 0 || EVP_PKEY_CTX_set_group_name(ctx, "P-256") <= 0 ||
        EVP_PKEY_generate(ctx, &pkey) <= 0) {
        EVP_PKEY_CTX_free(ctx);
        ERR_clear_error();
        return ctx ? -EIO : -ENOTSUP;
    }
    EVP_PKEY_CTX_free(ctx);
    return key_wrap(libctx, propq, pkey, out);
}

/* A P-256 key with a private half that matches its public half. */
static bool key_acceptable(OSSL_LIB_CTX *libctx, const char *propq, EVP_PKEY *pkey)
{
    char group[64];
    BIGNUM *priv = NULL;
    bool ok = false;

    if (!EVP_PKEY_is_a(pkey, "EC") ||
        !EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                        NULL) ||
        strcmp(group, "prime256v1") != 0)
        return false;
    if (!EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_PRIV_KEY, &priv))
        return false;
    BN_clear_free(priv);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(libctx, pkey, propq);
    ok = ctx && EVP_PKEY_check(ctx) == 1;
    EVP_PKEY_CTX_free(ctx);
    return ok;
}

int sign_key_from_pem(OSSL_LIB_CTX *libctx, const char *propq, const char *pem, size_t len,
                      struct sign_key **out)
{
    EVP_PKEY *pkey = NULL;
    const unsigned char *p = (const unsigned char *)pem;
    size_t left = len;

    if (!pem || !out || len == 0)
        return -EINVAL;
    if (!ready())
        return -ENOTSUP;
    OSSL_DECODER_CTX *dctx = OSSL_DECODER_CTX_new_for_pkey(
        &pkey, "PEM", NULL, "EC", OSSL_KEYMGMT_SELECT_KEYPAIR, libctx, propq);
    if (!dctx) {
        ERR_clear_error();
        return -ENOMEM;
    }
    int ok = OSSL_DECODER_from_data(dctx, &p, &left);
    OSSL_DECODER_CTX_free(dctx);
    if (!ok || !pkey || !key_acceptable(libctx, propq, pkey)) {
        EVP_PKEY_free(pkey);
        ERR_clear_error();
        return -EINVAL;
    }
    return key_wrap(libctx, propq, pkey, out);
}

int sign_key_to_pem(const struct sign_key *k, char **pem_out, size_t *len_out)
{
    BUF_MEM *mem = NULL;
    int rc = -EIO;

    if (!k || !pem_out)
        return -EINVAL;
    /* A secure-memory BIO: its buffer is cleansed when it grows and when
     * freed, so the private key leaves no copy behind but the caller's. */
    BIO *bio = BIO_new(BIO_s_secmem());
    OSSL_ENCODER_CTX *ectx = OSSL_ENCODER_CTX_new_for_pkey(k->pkey, OSSL_KEYMGMT_SELECT_KEYPAIR,
                                                           "PEM", "PrivateKeyInfo", k->propq);
    if (!bio || !ectx) {
        rc = -ENOMEM;
        goto out;
    }
    if (OSSL_ENCODER_CTX_get_num_encoders(ectx) == 0 || !OSSL_ENCODER_to_bio(ectx, bio) ||
        BIO_get_mem_ptr(bio, &mem) <= 0 || !mem || mem->length == 0)
        goto out;
    char *pem = malloc(mem->length + 1);
    if (!pem) {
        rc = -ENOMEM;
        goto out;
    }
    memcpy(pem, mem->data, mem->length);
    pem[mem->length] = '\0';
    *pem_out = pem;
    if (len_out)
        *len_out = mem->length;
    rc = 0;
out:
    OSSL_ENCODER_CTX_free(ectx);
    BIO_free(bio);
    ERR_clear_error();
    return rc;
}

int sign_key_id(const struct sign_key *k, char out[17])
{
    if (!k || !out)
        return -EINVAL;
    memcpy(out, k->kid, sizeof(k->kid));
    return 0;
}

/* A P-256 scalar of a signature is usable when 0 < v < n. */
static bool coord_in_range(const unsigned char v[SIGN_COORD_LEN])
{
    static const unsigned char zero[SIGN_COORD_LEN];
    return memcmp(v, zero, SIGN_COORD_LEN) != 0 && memcmp(v, p256_order, SIGN_COORD_LEN) < 0;
}

static EVP_PKEY_CTX *op_ctx(const struct sign_key *k, bool signing)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(k->libctx, k->pkey, k->propq);
    if (!ctx)
        return NULL;
    int ok = signing ? EVP_PKEY_sign_init(ctx) : EVP_PKEY_verify_init(ctx);
    /* The digest named so the provider checks the hash length (and, under
     * FIPS, that the digest is an approved one). */
    if (ok <= 0 || EVP_PKEY_CTX_set_signature_md(ctx, g_sha256) <= 0) {
        EVP_PKEY_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

int sign_es256(const struct sign_key *k, const void *data, size_t len,
               unsigned char sig[SIGN_ES256_LEN])
{
    unsigned char hash[SIGN_SHA256_LEN], der[SIGN_DER_MAX];
    size_t derlen = sizeof(der);
    ECDSA_SIG *es = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    int rc;

    if (!k || !sig || (len && !data))
        return -EINVAL;
    rc = sign_sha256(data, len, hash);
    if (rc)
        return rc;
    rc = -EIO;
    ctx = op_ctx(k, true);
    if (!ctx || EVP_PKEY_sign(ctx, der, &derlen, hash, sizeof(hash)) <= 0)
        goto out;
    const unsigned char *p = der;
    es = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
    if (!es)
        goto out;
    const BIGNUM *r = NULL, *s = NULL;
    ECDSA_SIG_get0(es, &r, &s);
    if (BN_bn2binpad(r, sig, SIGN_COORD_LEN) != SIGN_COORD_LEN ||
        BN_bn2binpad(s, sig + SIGN_COORD_LEN, SIGN_COORD_LEN) != SIGN_COORD_LEN)
        goto out;
    rc = 0;
out:
    ECDSA_SIG_free(es);
    EVP_PKEY_CTX_free(ctx);
    if (rc)
        ERR_clear_error();
    return rc;
}

int sign_es256_verify(const struct sign_key *k, const void *data, size_t len,
                      const unsigned char *sig, size_t siglen)
{
    unsigned char hash[SIGN_SHA256_LEN], *der = NULL;
    ECDSA_SIG *es = NULL;
    BIGNUM *r = NULL, *s = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    int rc;

    if (!k || (len && !data) || (siglen && !sig))
        return -EINVAL;
    /* Only the raw JWS form: a DER signature, or one with a zero or
     * out-of-range scalar, is refused before any arithmetic. */
    if (siglen != SIGN_ES256_LEN || !coord_in_range(sig) || !coord_in_range(sig + SIGN_COORD_LEN))
        return -EBADMSG;
    rc = sign_sha256(data, len, hash);
    if (rc)
        return rc;
    rc = -ENOMEM;
    es = ECDSA_SIG_new();
    r = BN_bin2bn(sig, SIGN_COORD_LEN, NULL);
    s = BN_bin2bn(sig + SIGN_COORD_LEN, SIGN_COORD_LEN, NULL);
    if (!es || !r || !s)
        goto out;
    if (!ECDSA_SIG_set0(es, r, s))
        goto out;
    r = s = NULL; /* owned by es now */
    int derlen = i2d_ECDSA_SIG(es, &der);
    if (derlen <= 0)
        goto out;
    rc = -EIO;
    ctx = op_ctx(k, false);
    if (!ctx)
        goto out;
    int v = EVP_PKEY_verify(ctx, der, (size_t)derlen, hash, sizeof(hash));
    /* 0 is a mismatch; a negative answer (a signature the provider finds
     * malformed) is a refusal too, never an "error, try again". */
    rc = v == 1 ? 0 : -EBADMSG;
out:
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    OPENSSL_free(der);
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    return rc;
}
