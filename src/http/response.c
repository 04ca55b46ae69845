#include "http/response.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <zlib.h>

#include "core/clock.h"

/* Where the response being built on this thread began (see response.h). */
static _Thread_local struct {
    const struct strbuf *out;
    size_t start;
} http_response_cur;

/* The Date of the current second, per thread (workers answer errors too). */
static _Thread_local struct {
    int64_t wall;
    char text[30];
} http_date_cache;

static const struct {
    int status;
    const char *reason;
} http_reasons[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {206, "Partial Content"},
    {207, "Multi-Status"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Range Not Satisfiable"},
    {417, "Expectation Failed"},
    {422, "Unprocessable Content"},
    {423, "Locked"},
    {426, "Upgrade Required"},
    {428, "Precondition Required"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
    {507, "Insufficient Storage"},
};

const char *http_status_reason(int status)
{
    for (size_t i = 0; i < sizeof(http_reasons) / sizeof(http_reasons[0]); i++)
        if (http_reasons[i].status == status)
            return http_reasons[i].reason;
    return "Unknown";
}

void http_response_date(int64_t wall_s, char out[30])
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = (time_t)wall_s;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        snprintf(out, 30, "Thu, 01 Jan 1970 00:00:00 GMT");
        return;
    }
    snprintf(out, 30, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7], tm.tm_mday,
             months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static bool http_token_char(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Appends s with control characters (CR, LF, NUL...) as spaces. */
static void http_put_oneline(struct strbuf *out, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        strbuf_putc(out, (c < 0x20 && c != '\t') || c == 0x7f ? ' ' : (char)c);
    }
}

void http_response_begin(struct strbuf *out, int status, const char *reason)
{
    if (status < 100 || status > 999)
        status = 500;
    http_response_cur.out = out;
    http_response_cur.start = out->len;
    strbuf_printf(out, "HTTP/1.1 %d ", status);
    http_put_oneline(out, reason ? reason : http_status_reason(status));
    int64_t now = clock_wall_s(clock_system());
    if (now != http_date_cache.wall || !http_date_cache.text[0]) {
        http_response_date(now, http_date_cache.text);
        http_date_cache.wall = now;
    }
    strbuf_printf(out,
                  "\r\nDate: %s\r\n"
                  "Server: Parley\r\n"
                  "Strict-Transport-Security: max-age=31536000\r\n"
                  "X-Content-Type-Options: nosniff\r\n",
                  http_date_cache.text);
}

void http_response_header(struct strbuf *out, const char *name, const char *value)
{
    if (!*name)
        return;
    for (const char *p = name; *p; p++)
        if (!http_token_char((unsigned char)*p))
            return;
    strbuf_puts(out, name);
    strbuf_puts(out, ": ");
    http_put_oneline(out, value);
    strbuf_puts(out, "\r\n");
}

void http_response_headerf(struct strbuf *out, const char *name, const char *fmt, ...)
{
    struct strbuf v = STRBUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    strbuf_vprintf(&v, fmt, ap);
    va_end(ap);
    if (v.err)
        out->err = v.err;
    else
        http_response_header(out, name, strbuf_cstr(&v));
    strbuf_free(&v);
}

/* Whether the head begun at start names the field already. */
static bool http_head_has(const struct strbuf *out, size_t start, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = start; i + 2 + nl < out->len; i++)
        if (out->p[i] == '\r' && out->p[i + 1] == '\n' &&
            strncasecmp(out->p + i + 2, name, nl) == 0 && out->p[i + 2 + nl] == ':')
            return true;
    return false;
}

void http_response_end(struct strbuf *out, const void *body, size_t len, bool head_only, bool close)
{
    size_t start = 0;
    if (http_response_cur.out == out && http_response_cur.start <= out->len)
        start = http_response_cur.start;
    int status = 0;
    if (out->len >= start + 12)
        status = atoi(out->p + start + 9);
    bool bodiless = (status >= 100 && status < 200) || status == 204 || status == 304;
    if (!http_head_has(out, start, "Cache-Control"))
        strbuf_puts(out, "Cache-Control: no-store\r\n");
    if (!bodiless)
        strbuf_printf(out, "Content-Length: %zu\r\n", len);
    if (close)
        strbuf_puts(out, "Connection: close\r\n");
    strbuf_puts(out, "\r\n");
    if (!head_only && !bodiless && len)
        strbuf_append(out, body, len);
    http_response_cur.out = NULL;
}

void http_response_error(struct strbuf *out, int status, const char *text, bool close)
{
    http_response_begin(out, status, NULL);
    http_response_header(out, "Content-Type", "text/plain; charset=utf-8");
    struct strbuf body = STRBUF_INIT;
    http_put_oneline(&body, text ? text : http_status_reason(status));
    strbuf_putc(&body, '\n');
    if (body.err)
        out->err = body.err;
    http_response_end(out, body.p, body.len, false, close);
    strbuf_free(&body);
}

/* A qvalue (RFC 9110 §12.4.2) is above zero; a malformed one is not. */
static bool http_q_positive(const char *s, size_t n)
{
    if (n == 0 || n > 5 || (s[0] != '0' && s[0] != '1'))
        return false;
    if (n > 1 && s[1] != '.')
        return false;
    bool nonzero = s[0] == '1';
    for (size_t i = 2; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        if (s[0] == '1' && s[i] != '0')
            return false;
        nonzero |= s[i] != '0';
    }
    return nonzero;
}

bool http_accepts_gzip(const struct http_request *r)
{
    int gzip = -1, star = -1; /* -1 not named, 0 refused, 1 accepted */
    for (size_t i = 0; i < r->nheaders; i++) {
        if (strcasecmp(r->headers[i].name, "Accept-Encoding") != 0)
            continue;
        const char *s = r->headers[i].value;
        while (*s) {
            while (*s == ' ' || *s == '\t' || *s == ',')
                s++;
            if (!*s)
                break;
            const char *e = s + strcspn(s, ",");
            const char *semi = memchr(s, ';', (size_t)(e - s));
            const char *ce = semi ? semi : e;
            while (ce > s && (ce[-1] == ' ' || ce[-1] == '\t'))
                ce--;
            bool ok = true;
            if (semi) {
                /* parameters: only q matters */
                const char *p = semi + 1;
                while (p < e && (*p == ' ' || *p == '\t'))
                    p++;
                if (e - p >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
                    const char *v = p + 2, *ve = v;
                    while (ve < e && *ve != ' ' && *ve != '\t' && *ve != ';')
                        ve++;
                    ok = http_q_positive(v, (size_t)(ve - v));
                } else {
                    ok = false;
                }
            }
            size_t cl = (size_t)(ce - s);
            if ((cl == 4 && strncasecmp(s, "gzip", 4) == 0) ||
                (cl == 6 && strncasecmp(s, "x-gzip", 6) == 0))
                gzip = gzip == 1 ? 1 : ok;
            else if (cl == 1 && *s == '*')
                star = star == 1 ? 1 : ok;
            s = e;
        }
    }
    if (gzip >= 0)
        return gzip == 1;
    return star == 1;
}

int http_gzip(const void *in, size_t len, struct strbuf *out)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -ENOMEM;
    int rc = 0;
    uLong bound = deflateBound(&zs, (uLong)len);
    unsigned char *buf = malloc(bound);
    if (!buf || (uLong)len != len) {
        rc = -ENOMEM;
        goto out;
    }
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)len;
    zs.next_out = buf;
    zs.avail_out = (uInt)bound;
    if ((uInt)len != len || (uInt)bound != bound) {
        rc = -EIO; /* over 4 GiB: not for one response */
        goto out;
    }
    if (deflate(&zs, Z_FINISH) != Z_STREAM_END) {
        rc = -EIO;
        goto out;
    }
    strbuf_append(out, buf, bound - zs.avail_out);
    if (out->err)
        rc = -ENOMEM;
out:
    deflateEnd(&zs);
    free(buf);
    return rc;
}
