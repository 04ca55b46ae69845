#include "http/request.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
    const char *name;
    enum http_method m;
} http_methods[] = {
    {"GET", HTTP_M_GET},           {"HEAD", HTTP_M_HEAD},     {"POST", HTTP_M_POST},
    {"PUT", HTTP_M_PUT},           {"DELETE", HTTP_M_DELETE}, {"OPTIONS", HTTP_M_OPTIONS},
    {"PROPFIND", HTTP_M_PROPFIND}, {"REPORT", HTTP_M_REPORT},
};

enum http_method http_request_method(const char *name)
{
    /* method names are case-sensitive (RFC 9110 §9.1) */
    for (size_t i = 0; i < sizeof(http_methods) / sizeof(http_methods[0]); i++)
        if (strcmp(name, http_methods[i].name) == 0)
            return http_methods[i].m;
    return HTTP_M_OTHER;
}

static int http_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes src[0..len) into dst (room for len + 1); -EINVAL for a bad or
 * NUL escape. */
static int http_percent_decode(const char *src, size_t len, char *dst)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] != '%') {
            dst[o++] = src[i];
            continue;
        }
        int hi = i + 2 < len ? http_hexval(src[i + 1]) : -1;
        int lo = hi >= 0 ? http_hexval(src[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi | lo) == 0)
            return -EINVAL;
        dst[o++] = (char)(hi << 4 | lo);
        i += 2;
    }
    dst[o] = '\0';
    return 0;
}

static void http_trim(struct http_span *s)
{
    while (s->len && (s->p[0] == ' ' || s->p[0] == '\t')) {
        s->p++;
        s->len--;
    }
    while (s->len && (s->p[s->len - 1] == ' ' || s->p[s->len - 1] == '\t'))
        s->len--;
}

int http_request_new(const char *method, struct http_span target, int minor,
                     const struct http_span *names, const struct http_span *values, size_t n,
                     struct http_request **out)
{
    *out = NULL;
    if (target.len == 0 || target.p[0] != '/')
        return -EINVAL; /* absolute-form, authority-form, asterisk-form */
    for (size_t i = 0; i < target.len; i++) {
        unsigned char ch = (unsigned char)target.p[i];
        if (ch <= 0x20 || ch >= 0x7f || ch == '#')
            return -EINVAL;
    }
    const char *q = memchr(target.p, '?', target.len);
    size_t plen = q ? (size_t)(q - target.p) : target.len;

    /* one block: struct, header array, then the strings */
    size_t need = sizeof(struct http_request) + n * sizeof(struct http_header);
    size_t strings = 2 * (target.len + 1);
    for (size_t i = 0; i < n; i++) {
        if (strings > SIZE_MAX / 2 || names[i].len > SIZE_MAX / 4 || values[i].len > SIZE_MAX / 4)
            return -EINVAL;
        strings += names[i].len + values[i].len + 2;
    }
    struct http_request *r = calloc(1, need + strings);
    if (!r)
        return -ENOMEM;
    r->headers = (struct http_header *)(r + 1);
    char *p = (char *)(r->headers + n);

    snprintf(r->method_name, sizeof(r->method_name), "%s", method);
    r->method = http_request_method(method);
    r->minor = minor;
    r->target = p;
    memcpy(p, target.p, target.len);
    p[target.len] = '\0';
    r->query = q ? r->target + plen + 1 : r->target + target.len;
    p += target.len + 1;
    r->path = p;
    if (http_percent_decode(target.p, plen, p) != 0) {
        free(r);
        return -EINVAL;
    }
    p += plen + 1;
    /* the query's room (target.len - plen) is left over: harmless */
    p += target.len - plen;
    for (size_t i = 0; i < n; i++) {
        struct http_span v = values[i];
        http_trim(&v);
        memcpy(p, names[i].p, names[i].len);
        p[names[i].len] = '\0';
        r->headers[i].name = p;
        p += names[i].len + 1;
        memcpy(p, v.p, v.len);
        p[v.len] = '\0';
        r->headers[i].value = p;
        p += v.len + 1;
    }
    r->nheaders = n;
    *out = r;
    return 0;
}

const char *http_request_header(const struct http_request *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

bool http_request_has_token(const struct http_request *r, const char *name, const char *token)
{
    size_t tl = strlen(token);
    for (size_t i = 0; i < r->nheaders; i++) {
        if (strcasecmp(r->headers[i].name, name) != 0)
            continue;
        const char *s = r->headers[i].value;
        while (*s) {
            while (*s == ' ' || *s == '\t' || *s == ',')
                s++;
            const char *e = s;
            while (*e && *e != ',')
                e++;
            const char *t = e;
            while (t > s && (t[-1] == ' ' || t[-1] == '\t'))
                t--;
            if ((size_t)(t - s) == tl && strncasecmp(s, token, tl) == 0)
                return true;
            s = e;
        }
    }
    return false;
}

void http_request_free(struct http_request *r)
{
    if (!r)
        return;
    free(r->body);
    free(r);
}
