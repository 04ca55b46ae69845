#include "crypto/digest.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

/* Written only by digest_init()/digest_cleanup(), read-only afterwards:
 * EVP_MD objects are immutable and safe to share between threads. */
static EVP_MD *g_md[DIGEST_ALG_COUNT];

static const struct {
    const char *name; /* RFC 7616 §6.1 algorithm token */
    const char *ossl; /* OpenSSL fetch name */
    size_t hex_len;
} g_algs[DIGEST_ALG_COUNT] = {
    [DIGEST_ALG_MD5] = {"MD5", "MD5", 32},
    [DIGEST_ALG_SHA256] = {"SHA-256", "SHA2-256", 64},
};

static bool alg_valid(enum digest_alg alg)
{
    return (unsigned)alg < DIGEST_ALG_COUNT;
}

static bool view_valid(struct strview v)
{
    return v.n == 0 || v.p != NULL;
}

void digest_cleanup(void)
{
    for (size_t i = 0; i < DIGEST_ALG_COUNT; i++) {
        EVP_MD_free(g_md[i]);
        g_md[i] = NULL;
    }
}

int digest_init(OSSL_LIB_CTX *libctx, const char *propq)
{
    int available = 0;

    digest_cleanup();
    for (size_t i = 0; i < DIGEST_ALG_COUNT; i++) {
        g_md[i] = EVP_MD_fetch(libctx, g_algs[i].ossl, propq);
        if (g_md[i])
            available++;
    }
    /* A failed fetch leaves an error on this thread's OpenSSL queue; it is
     * an expected outcome here (FIPS), not something a later unrelated
     * ERR_get_error() should find. */
    ERR_clear_error();
    return available ? 0 : -ENOTSUP;
}

int digest_forget(enum digest_alg alg)
{
    if (!alg_valid(alg))
        return -EINVAL;
    EVP_MD_free(g_md[alg]);
    g_md[alg] = NULL;
    return 0;
}

bool digest_alg_available(enum digest_alg alg)
{
    return alg_valid(alg) && g_md[alg] != NULL;
}

int digest_alg_parse(struct strview name, enum digest_alg *out)
{
    if (!view_valid(name))
        return -EINVAL;
    for (size_t i = 0; i < DIGEST_ALG_COUNT; i++) {
        if (strview_eq_nocase(name, g_algs[i].name)) {
            *out = (enum digest_alg)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *digest_alg_name(enum digest_alg alg)
{
    return alg_valid(alg) ? g_algs[alg].name : "?";
}

size_t digest_alg_hex_len(enum digest_alg alg)
{
    return alg_valid(alg) ? g_algs[alg].hex_len : 0;
}

/* H(parts[0] ":" parts[1] ":" ...) as lowercase hex. */
static int hash_joined(enum digest_alg alg, const struct strview *parts, size_t nparts,
                       char out[DIGEST_HEX_BUF])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = NULL;
    int rc = -EIO;

    if (!alg_valid(alg))
        return -EINVAL;
    if (!g_md[alg])
        return -ENOTSUP;
    ctx = EVP_MD_CTX_new();
    if (!ctx)
        return -ENOMEM;
    if (!EVP_DigestInit_ex2(ctx, g_md[alg], NULL))
        goto out;
    for (size_t i = 0; i < nparts; i++) {
        if (i > 0 && !EVP_DigestUpdate(ctx, ":", 1))
            goto out;
        if (parts[i].n && !EVP_DigestUpdate(ctx, parts[i].p, parts[i].n))
            goto out;
    }
    if (!EVP_DigestFinal_ex(ctx, md, &mdlen))
        goto out;
    if ((size_t)mdlen * 2 != g_algs[alg].hex_len)
        goto out;
    for (unsigned int i = 0; i < mdlen; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0x0f];
    }
    out[2 * mdlen] = '\0';
    rc = 0;
out:
    if (rc == -EIO)
        ERR_clear_error();
    OPENSSL_cleanse(md, sizeof(md));
    EVP_MD_CTX_free(ctx);
    return rc;
}

int digest_hash_hex(enum digest_alg alg, struct strview data, char out[DIGEST_HEX_BUF])
{
    return hash_joined(alg, &data, 1, out);
}

int digest_ha1(enum digest_alg alg, const char *user, const char *realm, const char *password,
               char out[DIGEST_HEX_BUF])
{
    if (!user || !realm || !password || !out)
        return -EINVAL;
    const struct strview parts[] = {strview_cstr(user), strview_cstr(realm),
                                    strview_cstr(password)};
    return hash_joined(alg, parts, 3, out);
}

static bool is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return true;
}

int digest_response(enum digest_alg alg, const char *ha1_hex, struct strview nonce,
                    struct strview nc, struct strview cnonce, struct strview qop,
                    struct strview method, struct strview digest_uri, char out[DIGEST_HEX_BUF])
{
    char ha2[DIGEST_HEX_BUF];
    int rc;

    if (!alg_valid(alg) || !ha1_hex || !out)
        return -EINVAL;
    if (!view_valid(nonce) || !view_valid(nc) || !view_valid(cnonce) || !view_valid(qop) ||
        !view_valid(method) || !view_valid(digest_uri))
        return -EINVAL;
    size_t hl = g_algs[alg].hex_len;
    if (strnlen(ha1_hex, hl + 1) != hl || !is_lower_hex(ha1_hex, hl))
        return -EINVAL;
    if (nonce.n == 0 || method.n == 0 || digest_uri.n == 0)
        return -EINVAL;
    if (qop.n != 0) {
        /* auth-int would need H(entity-body) in HA2; not offered. */
        if (!strview_eq_nocase(qop, "auth"))
            return -ENOTSUP;
        if (nc.n == 0 || cnonce.n == 0)
            return -EINVAL;
    }

    const struct strview a2[] = {method, digest_uri};
    rc = hash_joined(alg, a2, 2, ha2);
    if (rc < 0)
        return rc;

    const struct strview ha1v = strview_make(ha1_hex, hl);
    const struct strview ha2v = strview_make(ha2, hl);
    if (qop.n == 0) {
        const struct strview parts[] = {ha1v, nonce, ha2v};
        return hash_joined(alg, parts, 3, out);
    }
    const struct strview parts[] = {ha1v, nonce, nc, cnonce, qop, ha2v};
    return hash_joined(alg, parts, 6, out);
}

/* ASCII lowercase without a data-dependent branch. */
static unsigned char ct_lower(unsigned char c)
{
    unsigned is_upper = (unsigned)(c - 'A') < 26u;
    return (unsigned char)(c | (is_upper << 5));
}

bool digest_hex_equal(const char *expected, struct strview got)
{
    unsigned char a[DIGEST_HEX_MAX], b[DIGEST_HEX_MAX];

    if (!expected || !view_valid(got))
        return false;
    size_t elen = strnlen(expected, DIGEST_HEX_MAX + 1);
    if (elen > DIGEST_HEX_MAX)
        return false;
    /* Both sides are copied into fixed-size buffers so the comparison
     * always covers DIGEST_HEX_MAX bytes, whatever the lengths; the
     * lengths are folded in after, so a short or long answer costs the
     * same as a wrong one. The lengths themselves are not secret. */
    for (size_t i = 0; i < DIGEST_HEX_MAX; i++) {
        a[i] = i < elen ? ct_lower((unsigned char)expected[i]) : 0;
        b[i] = i < got.n ? ct_lower((unsigned char)got.p[i]) : 0;
    }
    int diff = CRYPTO_memcmp(a, b, sizeof(a));
    return (diff == 0) & (elen == got.n);
}

/* --- credentials parser --- */

static bool is_lws(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* RFC 7230 tchar; a superset of RFC 3261's token characters. */
static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Characters a quoted-string may hold, escaped or not: no controls but
 * HTAB (no CR/LF: the SIP parser has already unfolded lines). */
static bool is_qchar(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

struct cursor {
    const unsigned char *p, *end;
};

static void skip_lws(struct cursor *c)
{
    while (c->p < c->end && is_lws(*c->p))
        c->p++;
}

static struct strview take_token(struct cursor *c)
{
    const unsigned char *start = c->p;
    while (c->p < c->end && is_tchar(*c->p))
        c->p++;
    return strview_make((const char *)start, (size_t)(c->p - start));
}

/* At an opening quote: returns the content between the quotes, escapes
 * kept, and leaves the cursor after the closing quote. */
static int take_quoted(struct cursor *c, struct strview *out)
{
    const unsigned char *start = ++c->p;

    while (c->p < c->end && *c->p != '"') {
        if (*c->p == '\\') {
            if (++c->p == c->end)
                return -EINVAL;
        }
        if (!is_qchar(*c->p))
            return -EINVAL;
        c->p++;
    }
    if (c->p == c->end)
        return -EINVAL; /* unterminated */
    *out = strview_make((const char *)start, (size_t)(c->p - start));
    c->p++;
    return 0;
}

static struct strview *known_param(struct digest_credentials *cr, struct strview name)
{
    static const struct {
        const char *name;
        size_t off;
    } tab[] = {
        {"username", offsetof(struct digest_credentials, username)},
        {"realm", offsetof(struct digest_credentials, realm)},
        {"nonce", offsetof(struct digest_credentials, nonce)},
        {"uri", offsetof(struct digest_credentials, uri)},
        {"response", offsetof(struct digest_credentials, response)},
        {"algorithm", offsetof(struct digest_credentials, algorithm)},
        {"cnonce", offsetof(struct digest_credentials, cnonce)},
        {"opaque", offsetof(struct digest_credentials, opaque)},
        {"qop", offsetof(struct digest_credentials, qop)},
        {"nc", offsetof(struct digest_credentials, nc)},
    };
    for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
        if (strview_eq_nocase(name, tab[i].name))
            return (struct strview *)((char *)cr + tab[i].off);
    }
    return NULL;
}

static int check_credentials(const struct digest_credentials *cr)
{
    if (cr->username.n == 0 || cr->realm.n == 0 || cr->nonce.n == 0 || cr->uri.n == 0 ||
        cr->response.n == 0)
        return -EINVAL;
    if (cr->qop.n != 0) {
        if (cr->cnonce.n == 0 || cr->nc.n != 8)
            return -EINVAL;
        for (size_t i = 0; i < 8; i++) {
            if (!is_hex((unsigned char)cr->nc.p[i]))
                return -EINVAL;
        }
    }
    return 0;
}

static int parse_credentials(struct strview header_value, struct digest_credentials *out)
{
    struct strview names[DIGEST_CRED_PARAMS_MAX];
    size_t nparams = 0;
    int rc;

    if (!view_valid(header_value) || header_value.n == 0 || header_value.n > DIGEST_CRED_HEADER_MAX)
        return -EINVAL;

    struct cursor c = {(const unsigned char *)header_value.p,
                       (const unsigned char *)header_value.p + header_value.n};
    skip_lws(&c);
    if (!strview_eq_nocase(take_token(&c), "Digest"))
        return -EINVAL;
    if (c.p == c.end || !is_lws(*c.p))
        return -EINVAL;
    skip_lws(&c);

    for (;;) {
        struct strview name, value;

        /* Also refuses an empty element ("a=b,,c=d") and a trailing comma:
         * no SIP client sends them, and RFC 3261 does not allow them. */
        name = take_token(&c);
        if (name.n == 0)
            return -EINVAL;
        skip_lws(&c);
        if (c.p == c.end || *c.p != '=')
            return -EINVAL;
        c.p++;
        skip_lws(&c);
        if (c.p < c.end && *c.p == '"') {
            rc = take_quoted(&c, &value);
            if (rc < 0)
                return rc;
        } else {
            value = take_token(&c);
            if (value.n == 0)
                return -EINVAL;
        }
        if (value.n > DIGEST_CRED_VALUE_MAX || nparams == DIGEST_CRED_PARAMS_MAX)
            return -EINVAL;
        /* Duplicates are refused, unknown ones too: two answers to one
         * question mean the sender is broken or is probing us. */
        for (size_t i = 0; i < nparams; i++) {
            if (strview_eq_view_nocase(names[i], name))
                return -EINVAL;
        }
        names[nparams++] = name;
        struct strview *slot = known_param(out, name);
        if (slot)
            *slot = value;

        skip_lws(&c);
        if (c.p == c.end)
            break;
        if (*c.p != ',')
            return -EINVAL;
        c.p++;
        skip_lws(&c);
    }
    return check_credentials(out);
}

int digest_credentials_parse(struct strview header_value, struct digest_credentials *out)
{
    if (!out)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    int rc = parse_credentials(header_value, out);
    if (rc < 0)
        memset(out, 0, sizeof(*out)); /* no half-parsed views to misuse */
    return rc;
}

int digest_unescape(struct strview v, char *dst, size_t cap)
{
    size_t o = 0;
    int rc = 0;

    if (!dst || !view_valid(v))
        return -EINVAL;
    if (cap == 0)
        return -ENOSPC;
    for (size_t i = 0; i < v.n; i++) {
        char ch = v.p[i];
        if (ch == '\\') {
            if (++i == v.n) {
                rc = -EINVAL;
                break;
            }
            ch = v.p[i];
        }
        if (ch == '\0') {
            rc = -EINVAL;
            break;
        }
        if (o + 1 >= cap) {
            rc = -ENOSPC;
            break;
        }
        dst[o++] = ch;
    }
    dst[o] = '\0';
    return rc;
}
