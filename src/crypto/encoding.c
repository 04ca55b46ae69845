#include "crypto/encoding.h"

#include <errno.h>
#include <stdint.h>

static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* 0..63, or -1 for a character outside the variant's alphabet ('='
 * included: padding is handled by the caller). */
static int b64_value(enum base64_variant v, unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (v == BASE64_STD) {
        if (c == '+')
            return 62;
        if (c == '/')
            return 63;
    } else {
        if (c == '-')
            return 62;
        if (c == '_')
            return 63;
    }
    return -1;
}

int base64_encode(enum base64_variant v, const void *data, size_t n, char *out, size_t cap,
                  size_t *outlen)
{
    const unsigned char *in = data;
    size_t need, o = 0;

    if (!out || (n > 0 && !data) || (v != BASE64_STD && v != BASE64_URL))
        return -EINVAL;
    /* The length macros overflow long before memory would run out. */
    if (n > (SIZE_MAX / 4) * 3 - 3)
        return -ENOSPC;
    need = v == BASE64_STD ? BASE64_STD_LEN(n) : BASE64_URL_LEN(n);
    if (cap == 0 || need > cap - 1) {
        if (cap > 0)
            out[0] = '\0';
        return -ENOSPC;
    }

    const char *alpha = v == BASE64_STD ? b64_std : b64_url;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t w = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = alpha[(w >> 18) & 63];
        out[o++] = alpha[(w >> 12) & 63];
        out[o++] = alpha[(w >> 6) & 63];
        out[o++] = alpha[w & 63];
    }
    if (n - i == 1) {
        uint32_t w = (uint32_t)in[i] << 16;
        out[o++] = alpha[(w >> 18) & 63];
        out[o++] = alpha[(w >> 12) & 63];
        if (v == BASE64_STD) {
            out[o++] = '=';
            out[o++] = '=';
        }
    } else if (n - i == 2) {
        uint32_t w = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = alpha[(w >> 18) & 63];
        out[o++] = alpha[(w >> 12) & 63];
        out[o++] = alpha[(w >> 6) & 63];
        if (v == BASE64_STD)
            out[o++] = '=';
    }
    out[o] = '\0';
    if (outlen)
        *outlen = o;
    return 0;
}

int base64_decode(enum base64_variant v, struct strview in, unsigned char *out, size_t cap,
                  size_t *outlen)
{
    const unsigned char *s = (const unsigned char *)in.p;
    size_t n = in.n, o = 0;

    if (!outlen || (n > 0 && (!s || !out)) || (v != BASE64_STD && v != BASE64_URL))
        return -EINVAL;
    if (v == BASE64_STD) {
        if (n % 4 != 0)
            return -EINVAL;
        /* At most two '=' and only at the very end; '=' elsewhere is
         * refused below as outside the alphabet. */
        if (n > 0 && s[n - 1] == '=') {
            n--;
            if (s[n - 1] == '=')
                n--;
        }
    }
    size_t rem = n % 4;
    if (rem == 1)
        return -EINVAL; /* 6 bits cannot end a byte */
    size_t need = (n / 4) * 3 + (rem ? rem - 1 : 0);
    if (need > cap)
        return -ENOSPC;

    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        int a = b64_value(v, s[i]), b = b64_value(v, s[i + 1]);
        int c = b64_value(v, s[i + 2]), d = b64_value(v, s[i + 3]);
        if ((a | b | c | d) < 0)
            return -EINVAL;
        uint32_t w = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        out[o++] = (unsigned char)(w >> 16);
        out[o++] = (unsigned char)(w >> 8);
        out[o++] = (unsigned char)w;
    }
    if (rem) {
        int a = b64_value(v, s[i]), b = b64_value(v, s[i + 1]);
        int c = rem == 3 ? b64_value(v, s[i + 2]) : 0;
        if ((a | b | c) < 0)
            return -EINVAL;
        /* Bits past the last byte must be zero, or several strings would
         * decode to the same bytes. */
        if (rem == 2 && (b & 0x0f) != 0)
            return -EINVAL;
        if (rem == 3 && (c & 0x03) != 0)
            return -EINVAL;
        uint32_t w = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6;
        out[o++] = (unsigned char)(w >> 16);
        if (rem == 3)
            out[o++] = (unsigned char)(w >> 8);
    }
    *outlen = o;
    return 0;
}
