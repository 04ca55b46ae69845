#include "stun/stun.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "crypto/encoding.h"
#include "crypto/mac.h"

/* --- digests, fetched once ------------------------------------------------ */

/* Written only by stun_crypto_init()/stun_crypto_cleanup() (and the
 * first-use initialisation); EVP_MD objects are immutable and shared. */
static EVP_MD *g_md5;
static EVP_MD *g_sha256;
static bool g_crypto_done;
static pthread_once_t g_crypto_once = PTHREAD_ONCE_INIT;

void stun_crypto_cleanup(void)
{
    EVP_MD_free(g_md5);
    EVP_MD_free(g_sha256);
    g_md5 = g_sha256 = NULL;
    g_crypto_done = true;
}

int stun_crypto_init(OSSL_LIB_CTX *libctx, const char *propq)
{
    stun_crypto_cleanup();
    g_md5 = EVP_MD_fetch(libctx, "MD5", propq);
    g_sha256 = EVP_MD_fetch(libctx, "SHA2-256", propq);
    /* MD5 missing under FIPS is expected, not an error for later. */
    ERR_clear_error();
    return g_sha256 ? 0 : -ENOTSUP;
}

static void crypto_once(void)
{
    if (!g_crypto_done)
        (void)stun_crypto_init(NULL, NULL); /* default-context: never opened */
}

static void crypto_ensure(void)
{
    pthread_once(&g_crypto_once, crypto_once);
}

bool stun_password_alg_available(enum stun_password_alg alg)
{
    crypto_ensure();
    if (alg == STUN_PASSWORD_MD5)
        return g_md5 != NULL;
    if (alg == STUN_PASSWORD_SHA256)
        return g_sha256 != NULL;
    return false;
}

static int digest_parts(const EVP_MD *md, const struct strview *parts, size_t n, uint8_t *out,
                        size_t *outlen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int len = 0;
    int rc = -EIO;

    if (!ctx)
        return -ENOMEM;
    if (!EVP_DigestInit_ex(ctx, md, NULL))
        goto out;
    for (size_t i = 0; i < n; i++)
        if (parts[i].n && !EVP_DigestUpdate(ctx, parts[i].p, parts[i].n))
            goto out;
    if (!EVP_DigestFinal_ex(ctx, out, &len))
        goto out;
    *outlen = len;
    rc = 0;
out:
    if (rc)
        ERR_clear_error();
    EVP_MD_CTX_free(ctx);
    return rc;
}

static bool view_ok(struct strview v)
{
    return v.n == 0 || v.p != NULL;
}

int stun_long_term_key(enum stun_password_alg alg, struct strview username, struct strview realm,
                       struct strview password, uint8_t key[STUN_KEY_MAX], size_t *keylen)
{
    const EVP_MD *md;

    if (!key || !keylen || !view_ok(username) || !view_ok(realm) || !view_ok(password))
        return -EINVAL;
    crypto_ensure();
    if (alg == STUN_PASSWORD_MD5)
        md = g_md5;
    else if (alg == STUN_PASSWORD_SHA256)
        md = g_sha256;
    else
        return -EINVAL;
    if (!md)
        return -ENOTSUP;
    struct strview colon = strview_make(":", 1);
    struct strview parts[] = {username, colon, realm, colon, password};
    return digest_parts(md, parts, 5, key, keylen);
}

int stun_userhash(struct strview username, struct strview realm, uint8_t out[32])
{
    size_t len = 0;

    if (!out || !view_ok(username) || !view_ok(realm))
        return -EINVAL;
    crypto_ensure();
    if (!g_sha256)
        return -ENOTSUP;
    struct strview parts[] = {username, strview_make(":", 1), realm};
    return digest_parts(g_sha256, parts, 3, out, &len);
}

/* --- CRC-32 ------------------------------------------------------------------ */

static uint32_t g_crc_table[256];
static pthread_once_t g_crc_once = PTHREAD_ONCE_INIT;

static void crc_table_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        g_crc_table[i] = c;
    }
}

uint32_t stun_crc32(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint32_t c = 0xFFFFFFFFu;

    pthread_once(&g_crc_once, crc_table_init);
    for (size_t i = 0; i < len; i++)
        c = g_crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

/* --- message type -------------------------------------------------------------- */

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

uint16_t stun_type(uint16_t method, enum stun_class cls)
{
    unsigned c = (unsigned)cls & 3;
    return (uint16_t)((method & 0x000F) | ((method & 0x0070) << 1) | ((method & 0x0F80) << 2) |
                      ((c & 1) << 4) | ((c & 2) << 7));
}

static void type_split(uint16_t type, uint16_t *method, enum stun_class *cls)
{
    *method = (uint16_t)((type & 0x000F) | ((type & 0x00E0) >> 1) | ((type & 0x3E00) >> 2));
    *cls = (enum stun_class)(((type >> 4) & 1) | ((type >> 7) & 2));
}

/* --- parsing ----------------------------------------------------------------------- */

int stun_msg_parse(const void *buf, size_t len, struct stun_msg *out)
{
    const uint8_t *p = buf;

    if (!p || !out || len < STUN_HEADER_LEN || len > STUN_MAX_MESSAGE)
        return -EINVAL;
    uint16_t type = get16(p), mlen = get16(p + 2);
    if ((type & 0xC000) != 0 || (mlen & 3) != 0 || (size_t)mlen + STUN_HEADER_LEN != len ||
        get32(p + 4) != STUN_MAGIC_COOKIE)
        return -EINVAL;

    out->buf = p;
    out->len = len;
    type_split(type, &out->method, &out->cls);
    out->tid = p + 8;
    out->nattrs = 0;
    out->integrity = out->integrity_sha256 = out->fingerprint = -1;
    out->ignored = 0;

    size_t off = STUN_HEADER_LEN;
    while (off < len) {
        if (len - off < 4)
            return -EBADMSG;
        uint16_t at = get16(p + off), alen = get16(p + off + 2);
        size_t padded = ((size_t)alen + 3) & ~(size_t)3;
        if (padded > len - off - 4)
            return -EBADMSG;
        if (out->fingerprint >= 0)
            return -EBADMSG; /* FINGERPRINT must be the last attribute */

        bool keep = true;
        if (at == STUN_ATTR_FINGERPRINT) {
            if (alen != 4)
                return -EBADMSG;
        } else if (at == STUN_ATTR_MESSAGE_INTEGRITY_SHA256) {
            if (out->integrity_sha256 >= 0 || alen < 16 || alen > 32 || (alen & 3))
                return -EBADMSG;
        } else if (at == STUN_ATTR_MESSAGE_INTEGRITY) {
            if (alen != 20)
                return -EBADMSG;
            if (out->integrity >= 0 || out->integrity_sha256 >= 0)
                keep = false; /* after an integrity attribute: ignored */
        } else if (out->integrity >= 0 || out->integrity_sha256 >= 0) {
            keep = false;
        }
        if (keep) {
            if (out->nattrs == STUN_MAX_ATTRS)
                return -E2BIG;
            struct stun_attr *a = &out->attrs[out->nattrs];
            a->type = at;
            a->len = alen;
            a->off = (uint32_t)(off + 4);
            if (at == STUN_ATTR_FINGERPRINT)
                out->fingerprint = (int)out->nattrs;
            else if (at == STUN_ATTR_MESSAGE_INTEGRITY_SHA256)
                out->integrity_sha256 = (int)out->nattrs;
            else if (at == STUN_ATTR_MESSAGE_INTEGRITY)
                out->integrity = (int)out->nattrs;
            out->nattrs++;
        } else {
            out->ignored++;
        }
        off += 4 + padded;
    }
    return 0;
}

const struct stun_attr *stun_msg_find(const struct stun_msg *m, uint16_t type)
{
    for (size_t i = 0; i < m->nattrs; i++)
        if (m->attrs[i].type == type)
            return &m->attrs[i];
    return NULL;
}

static int addr_decode(const struct stun_msg *m, const struct stun_attr *a, bool xor,
                       struct netaddr *out)
{
    const uint8_t *v = stun_attr_value(m, a);

    if (!out || a->len < 4)
        return -EINVAL;
    uint16_t port = get16(v + 2);
    if (xor)
        port ^= (uint16_t)(STUN_MAGIC_COOKIE >> 16);
    memset(out, 0, sizeof(*out));
    if (v[1] == 0x01 && a->len == 8) {
        uint32_t ip = get32(v + 4);
        if (xor)
            ip ^= STUN_MAGIC_COOKIE;
        out->u.in4.sin_family = AF_INET;
        out->u.in4.sin_port = htons(port);
        out->u.in4.sin_addr.s_addr = htonl(ip);
        out->len = sizeof(out->u.in4);
        return 0;
    }
    if (v[1] == 0x02 && a->len == 20) {
        uint8_t *ip = out->u.in6.sin6_addr.s6_addr;
        memcpy(ip, v + 4, 16);
        if (xor) {
            uint8_t mask[16];
            put32(mask, STUN_MAGIC_COOKIE);
            memcpy(mask + 4, m->tid, STUN_TID_LEN);
            for (int i = 0; i < 16; i++)
                ip[i] ^= mask[i];
        }
        out->u.in6.sin6_family = AF_INET6;
        out->u.in6.sin6_port = htons(port);
        out->len = sizeof(out->u.in6);
        return 0;
    }
    return -EINVAL;
}

int stun_attr_xor_addr(const struct stun_msg *m, const struct stun_attr *a, struct netaddr *out)
{
    return addr_decode(m, a, true, out);
}

int stun_attr_addr(const struct stun_msg *m, const struct stun_attr *a, struct netaddr *out)
{
    return addr_decode(m, a, false, out);
}

int stun_attr_u32(const struct stun_msg *m, const struct stun_attr *a, uint32_t *out)
{
    if (a->len != 4 || !out)
        return -EINVAL;
    *out = get32(stun_attr_value(m, a));
    return 0;
}

int stun_attr_error_code(const struct stun_msg *m, const struct stun_attr *a, int *code,
                         struct strview *reason)
{
    const uint8_t *v = stun_attr_value(m, a);

    if (a->len < 4 || !code)
        return -EINVAL;
    int cls = v[2] & 0x07, num = v[3];
    if (cls < 3 || cls > 6 || num > 99)
        return -EINVAL;
    *code = cls * 100 + num;
    if (reason)
        *reason = strview_make((const char *)v + 4, a->len - 4u);
    return 0;
}

int stun_attr_password_alg(const struct stun_msg *m, const struct stun_attr *a, uint16_t *alg)
{
    const uint8_t *v = stun_attr_value(m, a);

    if (a->len < 4 || !alg)
        return -EINVAL;
    size_t plen = get16(v + 2);
    if (((plen + 3) & ~(size_t)3) != (size_t)a->len - 4 && plen != (size_t)a->len - 4)
        return -EINVAL;
    *alg = get16(v);
    return 0;
}

int stun_attr_password_algs(const struct stun_msg *m, const struct stun_attr *a, uint16_t *out,
                            size_t cap)
{
    const uint8_t *v = stun_attr_value(m, a);
    size_t off = 0, n = 0;

    while (off < a->len) {
        if (a->len - off < 4)
            return -EINVAL;
        size_t plen = ((size_t)get16(v + off + 2) + 3) & ~(size_t)3;
        if (plen > a->len - off - 4)
            return -EINVAL;
        if (n < cap && out)
            out[n] = get16(v + off);
        n++;
        off += 4 + plen;
    }
    return (int)(n < cap ? n : cap);
}

size_t stun_password_algs_offer(bool restricted, uint16_t out[2])
{
    size_t n = 0;

    if (stun_password_alg_available(STUN_PASSWORD_SHA256))
        out[n++] = STUN_PASSWORD_SHA256;
    if (!restricted && stun_password_alg_available(STUN_PASSWORD_MD5))
        out[n++] = STUN_PASSWORD_MD5;
    return n;
}

int stun_password_alg_select(const struct stun_msg *m, const uint16_t *offered, size_t n,
                             uint16_t *alg)
{
    const struct stun_attr *pa = stun_msg_find(m, STUN_ATTR_PASSWORD_ALGORITHM);
    const struct stun_attr *pas = stun_msg_find(m, STUN_ATTR_PASSWORD_ALGORITHMS);
    uint16_t chosen = 0;

    if (!alg || (n && !offered))
        return -EINVAL;
    if (!pa && !pas) {
        *alg = STUN_PASSWORD_MD5;
        return 0;
    }
    if (!pa || !pas || stun_attr_password_alg(m, pa, &chosen) != 0)
        return -EINVAL;
    /* Compared as bytes: the same algorithms in the same order, and no
     * parameters (we send none), so nothing can be stripped or added. */
    const uint8_t *v = stun_attr_value(m, pas);
    if (pas->len != 4 * n)
        return -EPERM;
    for (size_t i = 0; i < n; i++)
        if (get16(v + 4 * i) != offered[i] || get16(v + 4 * i + 2) != 0)
            return -EPERM;
    for (size_t i = 0; i < n; i++) {
        if (offered[i] == chosen) {
            *alg = chosen;
            return 0;
        }
    }
    return -ENOTSUP;
}

void stun_nonce_cookie(uint32_t features, char out[STUN_NONCE_COOKIE_LEN + 1])
{
    uint8_t raw[3] = {(uint8_t)(features >> 16), (uint8_t)(features >> 8), (uint8_t)features};

    memcpy(out, STUN_NONCE_COOKIE, sizeof(STUN_NONCE_COOKIE) - 1);
    (void)base64_encode(BASE64_STD, raw, sizeof(raw), out + sizeof(STUN_NONCE_COOKIE) - 1,
                        STUN_NONCE_COOKIE_LEN + 1 - (sizeof(STUN_NONCE_COOKIE) - 1), NULL);
}

int stun_nonce_features(struct strview nonce, uint32_t *features)
{
    const size_t clen = sizeof(STUN_NONCE_COOKIE) - 1;
    uint8_t raw[BASE64_DECODED_MAX(4)];
    size_t len = 0;

    if (!features || !nonce.p || nonce.n < STUN_NONCE_COOKIE_LEN ||
        memcmp(nonce.p, STUN_NONCE_COOKIE, clen) != 0)
        return -EINVAL;
    if (base64_decode(BASE64_STD, strview_make(nonce.p + clen, 4), raw, sizeof(raw), &len) != 0 ||
        len != 3)
        return -EINVAL;
    *features = (uint32_t)raw[0] << 16 | (uint32_t)raw[1] << 8 | raw[2];
    return 0;
}

size_t stun_msg_unknown_required(const struct stun_msg *m, const uint16_t *known, size_t nknown,
                                 uint16_t *out, size_t cap)
{
    size_t n = 0;

    for (size_t i = 0; i < m->nattrs; i++) {
        uint16_t t = m->attrs[i].type;
        bool seen = !STUN_ATTR_COMPREHENSION_REQUIRED(t);
        for (size_t k = 0; !seen && k < nknown; k++)
            seen = known[k] == t;
        for (size_t k = 0; !seen && k < n; k++)
            seen = out[k] == t;
        if (!seen && n < cap)
            out[n++] = t;
    }
    return n;
}

/* --- integrity -------------------------------------------------------------------- */

/* HMAC over the message up to the attribute at attr_off (its header's
 * offset), with the header's length set as if the message ended with that
 * attribute (value length vlen). */
static int integrity_hmac(const uint8_t *msg, size_t attr_off, size_t vlen, enum mac_alg alg,
                          const uint8_t *key, size_t keylen, unsigned char out[MAC_MAX_SIZE])
{
    uint8_t stack[STUN_INTEGRITY_STACK];
    uint8_t *copy = attr_off <= sizeof(stack) ? stack : malloc(attr_off);
    size_t outlen = 0;

    if (!copy)
        return -ENOMEM;
    memcpy(copy, msg, attr_off);
    put16(copy + 2, (uint16_t)(attr_off + 4 + vlen - STUN_HEADER_LEN));
    int rc = mac_hmac(alg, key, keylen, copy, attr_off, out, &outlen);
    if (copy != stack)
        free(copy);
    return rc;
}

int stun_msg_check_integrity(const struct stun_msg *m, enum stun_integrity which,
                             const uint8_t *key, size_t keylen)
{
    unsigned char mac[MAC_MAX_SIZE];
    int idx = which == STUN_INTEGRITY_SHA256 ? m->integrity_sha256 : m->integrity;

    if (idx < 0)
        return -ENOENT;
    if (keylen && !key)
        return -EINVAL;
    const struct stun_attr *a = &m->attrs[idx];
    int rc = integrity_hmac(m->buf, a->off - 4, a->len,
                            which == STUN_INTEGRITY_SHA256 ? MAC_HMAC_SHA256 : MAC_HMAC_SHA1, key,
                            keylen, mac);
    if (rc)
        return rc;
    rc = CRYPTO_memcmp(mac, stun_attr_value(m, a), a->len) == 0 ? 0 : -EBADMSG;
    OPENSSL_cleanse(mac, sizeof(mac));
    return rc;
}

int stun_msg_check_fingerprint(const struct stun_msg *m)
{
    if (m->fingerprint < 0)
        return -ENOENT;
    const struct stun_attr *a = &m->attrs[m->fingerprint];
    /* FINGERPRINT is last, so the header's length already covers it. */
    uint32_t want = stun_crc32(m->buf, a->off - 4) ^ STUN_FINGERPRINT_XOR;
    return get32(stun_attr_value(m, a)) == want ? 0 : -EBADMSG;
}

/* --- building ---------------------------------------------------------------------- */

static void build_set_length(struct stun_builder *b)
{
    put16(b->buf + 2, (uint16_t)(b->len - STUN_HEADER_LEN));
}

void stun_build_start(struct stun_builder *b, void *buf, size_t cap, uint16_t method,
                      enum stun_class cls, const uint8_t tid[STUN_TID_LEN])
{
    b->buf = buf;
    b->cap = cap;
    b->len = 0;
    b->err = 0;
    if (!buf || cap < STUN_HEADER_LEN || !tid) {
        b->err = -ENOSPC;
        return;
    }
    put16(b->buf, stun_type(method, cls));
    put16(b->buf + 2, 0);
    put32(b->buf + 4, STUN_MAGIC_COOKIE);
    memmove(b->buf + 8, tid, STUN_TID_LEN);
    b->len = STUN_HEADER_LEN;
}

/* Reserves an attribute of len value bytes; returns where the value goes. */
static uint8_t *build_reserve(struct stun_builder *b, uint16_t type, size_t len)
{
    size_t padded = (len + 3) & ~(size_t)3;

    if (b->err)
        return NULL;
    if (len > 0xFFFF || b->cap - b->len < 4 + padded || b->len + 4 + padded > STUN_MAX_MESSAGE) {
        b->err = -ENOSPC;
        return NULL;
    }
    uint8_t *p = b->buf + b->len;
    put16(p, type);
    put16(p + 2, (uint16_t)len);
    memset(p + 4 + len, 0, padded - len);
    b->len += 4 + padded;
    build_set_length(b);
    return p + 4;
}

void stun_build_attr(struct stun_builder *b, uint16_t type, const void *value, size_t len)
{
    uint8_t *v = build_reserve(b, type, len);
    if (v && len)
        memcpy(v, value, len);
}

void stun_build_u32(struct stun_builder *b, uint16_t type, uint32_t value)
{
    uint8_t *v = build_reserve(b, type, 4);
    if (v)
        put32(v, value);
}

static void build_addr(struct stun_builder *b, uint16_t type, const struct netaddr *addr, bool xor)
{
    int fam = addr ? netaddr_family(addr) : 0;
    uint8_t *v;

    if (fam != AF_INET && fam != AF_INET6) {
        if (!b->err)
            b->err = -EINVAL;
        return;
    }
    v = build_reserve(b, type, fam == AF_INET ? 8 : 20);
    if (!v)
        return;
    uint16_t port = netaddr_port(addr);
    v[0] = 0;
    v[1] = fam == AF_INET ? 0x01 : 0x02;
    put16(v + 2, xor? port ^ (uint16_t)(STUN_MAGIC_COOKIE >> 16) : port);
    if (fam == AF_INET) {
        uint32_t ip = ntohl(addr->u.in4.sin_addr.s_addr);
        put32(v + 4, xor? ip ^ STUN_MAGIC_COOKIE : ip);
    } else {
        memcpy(v + 4, addr->u.in6.sin6_addr.s6_addr, 16);
        if (xor) {
            uint8_t mask[16];
            put32(mask, STUN_MAGIC_COOKIE);
            memcpy(mask + 4, b->buf + 8, STUN_TID_LEN);
            for (int i = 0; i < 16; i++)
                v[4 + i] ^= mask[i];
        }
    }
}

void stun_build_xor_addr(struct stun_builder *b, uint16_t type, const struct netaddr *addr)
{
    build_addr(b, type, addr, true);
}

void stun_build_addr(struct stun_builder *b, uint16_t type, const struct netaddr *addr)
{
    build_addr(b, type, addr, false);
}

const char *stun_error_reason(int code)
{
    switch (code) {
    case 300:
        return "Try Alternate";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthenticated";
    case 403:
        return "Forbidden";
    case 420:
        return "Unknown Attribute";
    case 437:
        return "Allocation Mismatch";
    case 438:
        return "Stale Nonce";
    case 440:
        return "Address Family not Supported";
    case 441:
        return "Wrong Credentials";
    case 442:
        return "Unsupported Transport Protocol";
    case 443:
        return "Peer Address Family Mismatch";
    case 486:
        return "Allocation Quota Reached";
    case 500:
        return "Server Error";
    case 508:
        return "Insufficient Capacity";
    default:
        return "Error";
    }
}

void stun_build_error(struct stun_builder *b, int code, const char *reason)
{
    if (!reason)
        reason = stun_error_reason(code);
    size_t rlen = strnlen(reason, 763); /* RFC 8489 §14.8: < 128 characters, 763 bytes */
    uint8_t *v = build_reserve(b, STUN_ATTR_ERROR_CODE, 4 + rlen);
    if (!v)
        return;
    v[0] = v[1] = 0;
    v[2] = (uint8_t)((code / 100) & 0x07);
    v[3] = (uint8_t)(code % 100);
    memcpy(v + 4, reason, rlen);
}

void stun_build_unknown_attrs(struct stun_builder *b, const uint16_t *types, size_t n)
{
    uint8_t *v = build_reserve(b, STUN_ATTR_UNKNOWN_ATTRIBUTES, 2 * n);
    for (size_t i = 0; v && i < n; i++)
        put16(v + 2 * i, types[i]);
}

void stun_build_password_algs(struct stun_builder *b, const uint16_t *algs, size_t n)
{
    uint8_t *v = build_reserve(b, STUN_ATTR_PASSWORD_ALGORITHMS, 4 * n);
    for (size_t i = 0; v && i < n; i++) {
        put16(v + 4 * i, algs[i]);
        put16(v + 4 * i + 2, 0);
    }
}

void stun_build_integrity(struct stun_builder *b, enum stun_integrity which, const uint8_t *key,
                          size_t keylen)
{
    unsigned char mac[MAC_MAX_SIZE];
    bool sha256 = which == STUN_INTEGRITY_SHA256;
    size_t vlen = sha256 ? 32 : 20;
    size_t at = b->len;

    uint8_t *v = build_reserve(
        b, sha256 ? STUN_ATTR_MESSAGE_INTEGRITY_SHA256 : STUN_ATTR_MESSAGE_INTEGRITY, vlen);
    if (!v)
        return;
    int rc = integrity_hmac(b->buf, at, vlen, sha256 ? MAC_HMAC_SHA256 : MAC_HMAC_SHA1, key, keylen,
                            mac);
    if (rc) {
        b->err = rc;
        return;
    }
    memcpy(v, mac, vlen);
    OPENSSL_cleanse(mac, sizeof(mac));
}

void stun_build_fingerprint(struct stun_builder *b)
{
    size_t at = b->len;
    uint8_t *v = build_reserve(b, STUN_ATTR_FINGERPRINT, 4);
    if (v)
        put32(v, stun_crc32(b->buf, at) ^ STUN_FINGERPRINT_XOR);
}

int stun_build_finish(struct stun_builder *b, size_t *len)
{
    if (b->err)
        return b->err;
    if (len)
        *len = b->len;
    return 0;
}

/* --- framing ------------------------------------------------------------------------ */

long stun_frame_length(const uint8_t *p, size_t avail)
{
    if (avail < 4)
        return 0;
    unsigned top = p[0] & 0xC0;
    size_t len = get16(p + 2);
    if (top == 0x00)
        return (long)(STUN_HEADER_LEN + len);
    if (top == 0x40)
        return (long)(TURN_CHANNEL_HEADER_LEN + ((len + 3) & ~(size_t)3));
    return -EINVAL;
}
