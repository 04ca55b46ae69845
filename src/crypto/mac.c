#include "crypto/mac.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>

static const struct {
    const char *name;
    const char *digest; /* OpenSSL fetch name */
    size_t size;
} g_algs[MAC_ALG_COUNT] = {
    [MAC_HMAC_SHA256] = {"HMAC-SHA256", "SHA2-256", 32},
    [MAC_HMAC_SHA1] = {"HMAC-SHA1", "SHA1", 20},
};

/* Written only by mac_init()/mac_cleanup() (and the first-use
 * initialisation), read-only afterwards. The prepared contexts hold the
 * digest but no key; they are only ever duplicated, which reads them. */
static EVP_MAC *g_mac;
static EVP_MAC_CTX *g_tmpl[MAC_ALG_COUNT];
static bool g_initialised;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static bool alg_valid(enum mac_alg alg)
{
    return (unsigned)alg < MAC_ALG_COUNT;
}

void mac_cleanup(void)
{
    for (size_t i = 0; i < MAC_ALG_COUNT; i++) {
        EVP_MAC_CTX_free(g_tmpl[i]);
        g_tmpl[i] = NULL;
    }
    EVP_MAC_free(g_mac);
    g_mac = NULL;
    g_initialised = true;
}

static EVP_MAC_CTX *prepare(const char *digest, const char *propq)
{
    OSSL_PARAM params[3];
    size_t n = 0;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(g_mac);

    if (!ctx)
        return NULL;
    params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)digest, 0);
    if (propq)
        params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_PROPERTIES, (char *)propq, 0);
    params[n] = OSSL_PARAM_construct_end();
    if (!EVP_MAC_CTX_set_params(ctx, params)) {
        EVP_MAC_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

int mac_init(OSSL_LIB_CTX *libctx, const char *propq)
{
    int available = 0;

    mac_cleanup();
    g_mac = EVP_MAC_fetch(libctx, OSSL_MAC_NAME_HMAC, propq);
    if (g_mac) {
        for (size_t i = 0; i < MAC_ALG_COUNT; i++) {
            g_tmpl[i] = prepare(g_algs[i].digest, propq);
            if (g_tmpl[i])
                available++;
        }
    }
    /* A failed fetch (SHA-1 refused by a provider, say) is an expected
     * outcome, not an error for a later ERR_get_error() to find. */
    ERR_clear_error();
    return available ? 0 : -ENOTSUP;
}

static void init_once(void)
{
    if (!g_initialised)
        (void)mac_init(NULL, NULL); /* default-context: never opened */
}

static void ensure_init(void)
{
    pthread_once(&g_once, init_once);
}

bool mac_alg_available(enum mac_alg alg)
{
    ensure_init();
    return alg_valid(alg) && g_tmpl[alg] != NULL;
}

const char *mac_alg_name(enum mac_alg alg)
{
    return alg_valid(alg) ? g_algs[alg].name : "?";
}

size_t mac_size(enum mac_alg alg)
{
    return alg_valid(alg) ? g_algs[alg].size : 0;
}

int mac_hmac(enum mac_alg alg, const void *key, size_t keylen, const void *data, size_t len,
             unsigned char out[MAC_MAX_SIZE], size_t *outlen)
{
    static const unsigned char empty[1];
    EVP_MAC_CTX *ctx = NULL;
    size_t olen = 0;
    int rc = -EIO;

    if (!alg_valid(alg) || !out || !outlen || (keylen > 0 && !key) || (len > 0 && !data))
        return -EINVAL;
    ensure_init();
    if (!g_tmpl[alg])
        return -ENOTSUP;
    ctx = EVP_MAC_CTX_dup(g_tmpl[alg]);
    if (!ctx) {
        ERR_clear_error();
        return -ENOMEM;
    }
    /* A NULL key would mean "keep the previous key" to EVP_MAC_init, and
     * the prepared context has none: an empty key must be a real one. */
    if (!EVP_MAC_init(ctx, keylen ? key : empty, keylen, NULL))
        goto out;
    if (len && !EVP_MAC_update(ctx, data, len))
        goto out;
    if (!EVP_MAC_final(ctx, out, &olen, MAC_MAX_SIZE) || olen != g_algs[alg].size)
        goto out;
    *outlen = olen;
    rc = 0;
out:
    if (rc < 0)
        ERR_clear_error();
    EVP_MAC_CTX_free(ctx); /* cleanses the keyed state */
    return rc;
}
