#include "crypto/fips.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/provider.h>
#include <openssl/rand.h>

#include "crypto/aead.h"
#include "crypto/digest.h"
#include "crypto/mac.h"
#include "crypto/pki.h"
#include "crypto/selftest.h"
#include "crypto/sign.h"

struct fips_ctx {
    enum fips_mode mode;
    OSSL_LIB_CTX *libctx;
    OSSL_PROVIDER *main; /* fips (mode on) or default */
    OSSL_PROVIDER *base; /* mode on: encoders and decoders (PEM keys) */
    int self_tests;
    char provider[128]; /* mode on: "NAME VERSION" */
    char describe[192];
};

int fips_setting_parse(const char *text, enum fips_setting *out)
{
    static const struct {
        const char *name;
        enum fips_setting setting;
    } names[] = {
        {"auto", FIPS_SETTING_AUTO},
        {"on", FIPS_SETTING_ON},
        {"approved-only", FIPS_SETTING_APPROVED},
        {"off", FIPS_SETTING_OFF},
    };

    if (!text || !out)
        return -EINVAL;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(text, names[i].name) == 0) {
            *out = names[i].setting;
            return 0;
        }
    return -EINVAL;
}

const char *fips_mode_name(enum fips_mode mode)
{
    switch (mode) {
    case FIPS_MODE_ON:
        return "on";
    case FIPS_MODE_APPROVED:
        return "approved-only";
    case FIPS_MODE_OFF:
        break;
    }
    return "off";
}

/* The kernel's word: the file's first character is '1'. A file that cannot
 * be read (no such file: a kernel without the FIPS option) means no. */
static bool kernel_fips(const char *path)
{
    char c = 0;
    FILE *f = path && path[0] ? fopen(path, "re") : NULL;

    if (!f)
        return false;
    bool on = fread(&c, 1, 1, f) == 1 && c == '1';
    fclose(f);
    return on;
}

enum fips_mode fips_resolve(enum fips_setting setting, const char *fips_enabled_file,
                            const char **why)
{
    const char *w;
    enum fips_mode m;

    switch (setting) {
    case FIPS_SETTING_ON:
        m = FIPS_MODE_ON, w = "security.fips = on";
        break;
    case FIPS_SETTING_APPROVED:
        m = FIPS_MODE_APPROVED, w = "security.fips = approved-only";
        break;
    case FIPS_SETTING_OFF:
        m = FIPS_MODE_OFF, w = "security.fips = off";
        break;
    case FIPS_SETTING_AUTO:
    default:
        if (kernel_fips(fips_enabled_file)) {
            m = FIPS_MODE_ON, w = "auto: the kernel runs in FIPS mode (security.fips_enabled_file)";
        } else if (EVP_default_properties_is_fips_enabled(NULL)) {
            /* a site's openssl.cnf asking for fips=yes: only reads the
             * default context's properties, fetches nothing from it */
            m = FIPS_MODE_ON, w = "auto: OpenSSL's default properties ask for fips=yes";
        } else {
            m = FIPS_MODE_OFF, w = "auto: the kernel does not run in FIPS mode";
        }
        ERR_clear_error();
        break;
    }
    if (why)
        *why = w;
    return m;
}

/* Where OpenSSL looks for provider modules: OPENSSL_MODULES, else its
 * build-time directory. */
static const char *modules_dir(void)
{
    const char *d = getenv("OPENSSL_MODULES");
    return d && d[0] ? d : OPENSSL_info(OPENSSL_INFO_MODULES_DIR);
}

/* OpenSSL's configuration file: OPENSSL_CONF, else openssl.cnf in its
 * directory. */
static void config_file(char *out, size_t cap)
{
    const char *f = getenv("OPENSSL_CONF");
    if (f && f[0])
        snprintf(out, cap, "%s", f);
    else
        snprintf(out, cap, "%s/openssl.cnf", OPENSSL_info(OPENSSL_INFO_CONFIG_DIR));
}

static void last_error(char *buf, size_t cap)
{
    unsigned long e = ERR_peek_last_error();
    if (e)
        ERR_error_string_n(e, buf, cap);
    else
        snprintf(buf, cap, "no detail from OpenSSL");
    ERR_clear_error();
}

/* Mode on: the fips provider (its configuration through OpenSSL's
 * configuration file), base for encoders, fips=yes by default. */
static int load_fips(struct fips_ctx *c, char *err, size_t errlen)
{
    char module[4096], conf[4096], detail[256];
    const char *dir = modules_dir();

    config_file(conf, sizeof(conf));
    snprintf(module, sizeof(module), "%s/fips.so", dir ? dir : "");
    /* A missing configuration file is not fatal here: the provider may be
     * configured otherwise; a wrong one is said with the load's error. */
    if (access(conf, R_OK) == 0 && !OSSL_LIB_CTX_load_config(c->libctx, conf)) {
        last_error(detail, sizeof(detail));
        snprintf(err, errlen,
                 "FIPS mode on: OpenSSL's configuration %s does not load (%s); fix it "
                 "(or set OPENSSL_CONF to one that includes the fips provider's configuration "
                 "from `openssl fipsinstall`)",
                 conf, detail);
        return -EIO;
    }
    c->main = OSSL_PROVIDER_load(c->libctx, "fips");
    if (!c->main) {
        bool present = access(module, R_OK) == 0;
        last_error(detail, sizeof(detail));
        if (!present) {
            snprintf(err, errlen,
                     "FIPS mode on but OpenSSL's fips provider is missing: no module "
                     "fips.so in OPENSSL_MODULES (%s). Install a validated FIPS provider there "
                     "(Debian ships none), generate its configuration with `openssl fipsinstall "
                     "-module %s -out fipsmodule.cnf`, include that from the openssl.cnf Parley "
                     "reads (%s, or OPENSSL_CONF) and activate the provider; or set "
                     "security.fips = approved-only for the same policy without a validated "
                     "module",
                     dir ? dir : "", module, conf);
            return -ENOENT;
        }
        snprintf(err, errlen,
                 "FIPS mode on but OpenSSL's fips provider %s did not load (%s): its "
                 "self-test failed or its configuration is missing or does not match the module; "
                 "regenerate it with `openssl fipsinstall -module %s -out fipsmodule.cnf` and "
                 "include it from %s (or OPENSSL_CONF)",
                 module, detail, module, conf);
        return -EIO;
    }
    if (!OSSL_PROVIDER_self_test(c->main)) {
        last_error(detail, sizeof(detail));
        snprintf(err, errlen, "FIPS mode on: the fips provider's self-test failed (%s)", detail);
        return -EIO;
    }
    c->base = OSSL_PROVIDER_load(c->libctx, "base");
    if (!c->base || !EVP_set_default_properties(c->libctx, "fips=yes")) {
        last_error(detail, sizeof(detail));
        snprintf(err, errlen,
                 "FIPS mode on: OpenSSL's base provider (for key encoders) does not load "
                 "(%s)",
                 detail);
        return -EIO;
    }

    const char *name = NULL, *version = NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_ptr(OSSL_PROV_PARAM_NAME, (char **)&name, 0),
        OSSL_PARAM_construct_utf8_ptr(OSSL_PROV_PARAM_VERSION, (char **)&version, 0),
        OSSL_PARAM_construct_end(),
    };
    if (!OSSL_PROVIDER_get_params(c->main, params) || !name)
        name = "fips";
    snprintf(c->provider, sizeof(c->provider), "%s%s%s", name, version ? " " : "",
             version ? version : "");
    ERR_clear_error();
    return 0;
}

/* The crypto modules on the context: all of them must find their
 * algorithms (digest at least SHA-256: the known-answer test says). */
static int init_modules(struct fips_ctx *c, char *err, size_t errlen)
{
    const char *propq = fips_propq(c);
    const char *what = NULL;

    if (digest_init(c->libctx, propq) != 0)
        what = "the digest algorithms (SHA-256)";
    else if ((fips_restricted(c) ? digest_forget(DIGEST_ALG_MD5) : 0) != 0)
        what = "the digest algorithms";
    else if (mac_init(c->libctx, propq) != 0)
        what = "HMAC";
    else if (aead_init(c->libctx, propq) != 0)
        what = "AES-256-GCM";
    else if (sign_init(c->libctx, propq) != 0)
        what = "ECDSA P-256 with SHA-256";
    else if (pki_init(c->libctx, propq, fips_restricted(c)) != 0)
        what = "memory for the certificate authority's settings";
    if (what) {
        snprintf(err, errlen, "the %s library context offers no %s",
                 c->mode == FIPS_MODE_ON ? "fips provider's" : "default provider's", what);
        return -ENOTSUP;
    }
    return 0;
}

int fips_open(enum fips_mode mode, struct fips_ctx **out, char *err, size_t errlen)
{
    struct fips_ctx *c;
    const char *failed = NULL;
    int rc;

    if (!out || (!err && errlen))
        return -EINVAL;
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->mode = mode;
    c->libctx = OSSL_LIB_CTX_new();
    if (!c->libctx) {
        rc = -ENOMEM;
        goto out;
    }
    if (mode == FIPS_MODE_ON) {
        rc = load_fips(c, err, errlen);
        if (rc)
            goto out;
    } else {
        c->main = OSSL_PROVIDER_load(c->libctx, "default");
        if (!c->main) {
            char detail[256];
            last_error(detail, sizeof(detail));
            snprintf(err, errlen, "OpenSSL's default provider does not load (%s)", detail);
            rc = -EIO;
            goto out;
        }
    }
    rc = init_modules(c, err, errlen);
    if (rc)
        goto out;
    rc = selftest_run(c->libctx, fips_propq(c), fips_restricted(c), &failed);
    if (rc < 0) {
        snprintf(err, errlen, "the known-answer self-test %s failed (mode %s)",
                 failed ? failed : "?", fips_mode_name(mode));
        rc = -EIO;
        goto out;
    }
    c->self_tests = rc;
    rc = 0;
    switch (mode) {
    case FIPS_MODE_ON:
        snprintf(c->describe, sizeof(c->describe), "on (provider %s, self-test passed)",
                 c->provider);
        break;
    case FIPS_MODE_APPROVED:
        snprintf(c->describe, sizeof(c->describe), "approved-only (no validated module)");
        break;
    case FIPS_MODE_OFF:
        snprintf(c->describe, sizeof(c->describe), "off");
        break;
    }
out:
    ERR_clear_error();
    if (rc) {
        fips_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

void fips_close(struct fips_ctx *c)
{
    if (!c)
        return;
    /* The modules hold algorithms fetched from this context: they go
     * first (a later user gets -ENOTSUP, not a dangling context). */
    digest_cleanup();
    mac_cleanup();
    aead_cleanup();
    sign_cleanup();
    pki_cleanup();
    if (c->base)
        OSSL_PROVIDER_unload(c->base);
    if (c->main)
        OSSL_PROVIDER_unload(c->main);
    OSSL_LIB_CTX_free(c->libctx);
    free(c);
}

enum fips_mode fips_mode(const struct fips_ctx *c)
{
    return c ? c->mode : FIPS_MODE_OFF;
}

bool fips_restricted(const struct fips_ctx *c)
{
    return c && c->mode != FIPS_MODE_OFF;
}

OSSL_LIB_CTX *fips_libctx(const struct fips_ctx *c)
{
    return c ? c->libctx : NULL;
}

const char *fips_propq(const struct fips_ctx *c)
{
    return c && c->mode == FIPS_MODE_ON ? "fips=yes" : NULL;
}

const char *fips_describe(const struct fips_ctx *c)
{
    return c ? c->describe : "off";
}

const char *fips_provider(const struct fips_ctx *c)
{
    return c && c->mode == FIPS_MODE_ON ? c->provider : NULL;
}

bool fips_validated_module(const struct fips_ctx *c)
{
    return c && c->mode == FIPS_MODE_ON;
}

int fips_self_tests(const struct fips_ctx *c)
{
    return c ? c->self_tests : 0;
}

int fips_random(const struct fips_ctx *c, void *buf, size_t len)
{
    if (!c || (!buf && len))
        return -EINVAL;
    if (len && RAND_priv_bytes_ex(c->libctx, buf, len, 0) != 1) {
        ERR_clear_error();
        return -EIO;
    }
    return 0;
}

int fips_secret_source(void *ctx, void *buf, size_t len)
{
    return fips_random(ctx, buf, len);
}
