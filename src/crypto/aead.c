#include "crypto/aead.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

/* Written only by aead_init()/aead_cleanup() (and the first-use
 * initialisation), read-only afterwards: a fetched EVP_CIPHER is
 * immutable and shared by the per-call contexts. */
static EVP_CIPHER *g_gcm;
static bool g_initialised;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

void aead_cleanup(void)
{
    EVP_CIPHER_free(g_gcm);
    g_gcm = NULL;
    g_initialised = true;
}

int aead_init(OSSL_LIB_CTX *libctx, const char *propq)
{
    aead_cleanup();
    g_gcm = EVP_CIPHER_fetch(libctx, "AES-256-GCM", propq);
    ERR_clear_error();
    return g_gcm ? 0 : -ENOTSUP;
}

static void init_once(void)
{
    if (!g_initialised)
        (void)aead_init(NULL, NULL); /* default-context: never opened */
}

static bool args_ok(const unsigned char *key, const unsigned char *nonce, const void *aad,
                    size_t aadlen, const void *in, size_t len, const void *out, const void *tag)
{
    return key && nonce && tag && (!aadlen || aad) && (!len || (in && out)) && aadlen <= INT_MAX &&
           len <= INT_MAX;
}

/* One cipher context keyed for this call, the AAD already fed. */
static EVP_CIPHER_CTX *start(const unsigned char *key, const unsigned char *nonce, const void *aad,
                             size_t aadlen, int enc)
{
    int outl = 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();

    if (!ctx)
        return NULL;
    /* The nonce length is GCM's default (12); said anyway so a change of
     * AEAD_NONCE_LEN could not go unnoticed. */
    OSSL_PARAM params[2] = {
        OSSL_PARAM_construct_size_t(OSSL_CIPHER_PARAM_AEAD_IVLEN, &(size_t){AEAD_NONCE_LEN}),
        OSSL_PARAM_construct_end(),
    };
    if (!EVP_CipherInit_ex2(ctx, g_gcm, NULL, NULL, enc, params) ||
        !EVP_CipherInit_ex2(ctx, NULL, key, nonce, enc, NULL) ||
        (aadlen && !EVP_CipherUpdate(ctx, NULL, &outl, aad, (int)aadlen))) {
        EVP_CIPHER_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

int aead_seal(const unsigned char key[AEAD_KEY_LEN], const unsigned char nonce[AEAD_NONCE_LEN],
              const void *aad, size_t aadlen, const void *in, size_t len, void *out,
              unsigned char tag[AEAD_TAG_LEN])
{
    int outl = 0, fin = 0, rc = -EIO;

    if (!args_ok(key, nonce, aad, aadlen, in, len, out, tag))
        return -EINVAL;
    pthread_once(&g_once, init_once);
    if (!g_gcm)
        return -ENOTSUP;
    EVP_CIPHER_CTX *ctx = start(key, nonce, aad, aadlen, 1);
    if (!ctx) {
        ERR_clear_error();
        return -ENOMEM;
    }
    if (len && (!EVP_EncryptUpdate(ctx, out, &outl, in, (int)len) || (size_t)outl != len))
        goto out;
    if (!EVP_EncryptFinal_ex(ctx, (unsigned char *)out + outl, &fin) || fin != 0)
        goto out;
    OSSL_PARAM params[2] = {
        OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, AEAD_TAG_LEN),
        OSSL_PARAM_construct_end(),
    };
    if (!EVP_CIPHER_CTX_get_params(ctx, params))
        goto out;
    rc = 0;
out:
    EVP_CIPHER_CTX_free(ctx); /* cleanses the key schedule */
    if (rc)
        ERR_clear_error();
    return rc;
}

int aead_open(const unsigned char key[AEAD_KEY_LEN], const unsigned char nonce[AEAD_NONCE_LEN],
              const void *aad, size_t aadlen, const void *in, size_t len, void *out,
              const unsigned char tag[AEAD_TAG_LEN])
{
    unsigned char t[AEAD_TAG_LEN];
    int outl = 0, fin = 0, rc = -EIO;

    if (!args_ok(key, nonce, aad, aadlen, in, len, out, tag))
        return -EINVAL;
    pthread_once(&g_once, init_once);
    if (!g_gcm)
        return -ENOTSUP;
    EVP_CIPHER_CTX *ctx = start(key, nonce, aad, aadlen, 0);
    if (!ctx) {
        ERR_clear_error();
        return -ENOMEM;
    }
    if (len && (!EVP_DecryptUpdate(ctx, out, &outl, in, (int)len) || (size_t)outl != len))
        goto out;
    memcpy(t, tag, sizeof(t)); /* set_params wants a writable buffer */
    OSSL_PARAM params[2] = {
        OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, t, AEAD_TAG_LEN),
        OSSL_PARAM_construct_end(),
    };
    if (!EVP_CIPHER_CTX_set_params(ctx, params))
        goto out;
    /* The provider compares the tag in constant time. */
    rc = EVP_DecryptFinal_ex(ctx, (unsigned char *)out + outl, &fin) > 0 ? 0 : -EBADMSG;
out:
    EVP_CIPHER_CTX_free(ctx);
    if (rc) {
        if (len)
            OPENSSL_cleanse(out, len);
        ERR_clear_error();
    }
    return rc;
}

int aead_random(OSSL_LIB_CTX *libctx, void *buf, size_t len)
{
    if (len && !buf)
        return -EINVAL;
    if (len && RAND_priv_bytes_ex(libctx, buf, len, 0) != 1) {
        ERR_clear_error();
        return -EIO;
    }
    return 0;
}
