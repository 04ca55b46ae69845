/*
 * http/reader — strict HTTP/1.x request reading over http-parser (see
 * reader.h for what is checked here and why).
 */
#include "http/reader.h"

#include <errno.h>
/* http-parser names its own enum http_method (HTTP_GET...); Parley's is in
 * http/request.h. Its tag is renamed here, which changes no ABI: the
 * parser keeps the method in a bit-field and http_method_str takes an
 * int-sized enum either way. */
#define http_method http_parser_method
#include <http_parser.h>
#undef http_method
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/strbuf.h"

/* Empty lines tolerated before a request line (RFC 9112 §2.2 asks for at
 * least one: some clients send a CRLF after a POST body). */
#define RD_MAX_EMPTY_LINES 4
/* A chunk's extensions are ignored; they need not be long. */
#define RD_MAX_CHUNK_EXT 1024
/* Hex digits of a chunk size: 15 keep every sum far from overflowing. */
#define RD_MAX_CHUNK_DIGITS 15
/* Method SP ... SP HTTP/1.1 around the target. */
#define RD_REQUEST_LINE_EXTRA 32

enum rd_state {
    RD_IDLE, /* between requests: nothing of the next one seen */
    RD_HEAD,
    RD_BODY,
    RD_DONE, /* a request waits for http_reader_take */
    RD_ERROR,
};

/* Chunked framing, checked ahead of http-parser (which, built non-strict,
 * takes any two bytes after a chunk's data as its CRLF). */
enum rd_chunk_state {
    CK_SIZE0, /* the first hex digit of a size */
    CK_SIZE,
    CK_EXT,
    CK_SIZE_LF,
    CK_DATA,
    CK_DATA_CR,
    CK_DATA_LF,
    CK_TRAILER, /* at the start of a trailer line (or the final CRLF) */
    CK_TRAILER_NAME,
    CK_TRAILER_VALUE,
    CK_TRAILER_LF,
    CK_END_LF,
};

struct http_reader {
    struct http_reader_limits lim;
    size_t next_max_header; /* applied when the next request starts */
    enum rd_state st;

    /* the head, gathered whole and checked before http-parser sees it */
    struct strbuf head;
    size_t line_len;    /* bytes of the current line so far, CR excluded */
    size_t lines;       /* complete lines (the request line is the first) */
    size_t reqline_end; /* offset past the request line's CRLF */
    unsigned empty;     /* empty lines skipped before the request line */
    bool cr;            /* the last byte was a CR */
    bool whole;         /* the empty line that ends it came */

    http_parser hp;
    http_parser_settings hs;
    bool complete; /* http-parser's on_message_complete came */

    struct http_request *req;
    bool chunked;
    uint64_t body_limit;
    uint64_t body_left; /* Content-Length bytes still to come */
    struct strbuf body;

    enum rd_chunk_state ck;
    uint64_t ck_size;
    unsigned ck_digits;
    size_t ck_ext;
    uint64_t ck_total;
    size_t ck_trailer;

    int status;
    char reason[64];
};

static bool rd_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Field-value bytes: VCHAR, obs-text, SP, HT (RFC 9110 §5.5). */
static bool rd_value_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int rd_hex(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static enum http_reader_result rd_fail(struct http_reader *r, int status, const char *reason)
{
    r->st = RD_ERROR;
    r->status = status;
    snprintf(r->reason, sizeof(r->reason), "%s", reason);
    return HTTP_READER_ERROR;
}

/* --- http-parser's callbacks -------------------------------------------- */

static int rd_on_headers_complete(http_parser *p)
{
    /* stop on the head's last LF: the reader decides about the body first */
    http_parser_pause(p, 1);
    return 0;
}

static int rd_on_body(http_parser *p, const char *at, size_t len)
{
    struct http_reader *r = p->data;
    if (r->body.len + len > r->body_limit)
        return -1; /* the framing checks bound it first; never reached */
    strbuf_append(&r->body, at, len);
    return r->body.err ? -1 : 0;
}

static int rd_on_message_complete(http_parser *p)
{
    struct http_reader *r = p->data;
    r->complete = true;
    /* whatever follows is the next request's: stop here */
    http_parser_pause(p, 1);
    return 0;
}

/* --- the reader ----------------------------------------------------------- */

struct http_reader *http_reader_new(const struct http_reader_limits *lim)
{
    struct http_reader *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->lim = *lim;
    if (!r->lim.max_header_size)
        r->lim.max_header_size = HTTP_READER_HEADER_DEFAULT;
    if (!r->lim.max_headers)
        r->lim.max_headers = HTTP_READER_MAX_HEADERS;
    if (!r->lim.max_target)
        r->lim.max_target = HTTP_READER_MAX_TARGET;
    r->next_max_header = r->lim.max_header_size;
    r->hs.on_headers_complete = rd_on_headers_complete;
    r->hs.on_body = rd_on_body;
    r->hs.on_message_complete = rd_on_message_complete;
    return r;
}

void http_reader_free(struct http_reader *r)
{
    if (!r)
        return;
    strbuf_free(&r->head);
    strbuf_free(&r->body);
    http_request_free(r->req);
    free(r);
}

void http_reader_set_max_header_size(struct http_reader *r, size_t n)
{
    r->next_max_header = n ? n : HTTP_READER_HEADER_DEFAULT;
}

bool http_reader_started(const struct http_reader *r)
{
    return r->st == RD_HEAD || r->st == RD_BODY;
}

int http_reader_status(const struct http_reader *r)
{
    return r->status;
}

const char *http_reader_reason(const struct http_reader *r)
{
    return r->reason;
}

static void rd_reset(struct http_reader *r)
{
    r->st = RD_IDLE;
    strbuf_reset(&r->head);
    strbuf_reset(&r->body);
    r->line_len = r->lines = r->reqline_end = 0;
    r->empty = 0;
    r->cr = false;
    r->whole = false;
    r->complete = false;
    r->chunked = false;
    r->body_limit = r->body_left = 0;
    r->ck = CK_SIZE0;
    r->ck_size = r->ck_total = 0;
    r->ck_digits = 0;
    r->ck_ext = r->ck_trailer = 0;
    r->lim.max_header_size = r->next_max_header;
}

struct http_request *http_reader_take(struct http_reader *r)
{
    if (r->st != RD_DONE)
        return NULL;
    struct http_request *req = r->req;
    r->req = NULL;
    if (r->body.len) {
        size_t len;
        req->body = (unsigned char *)strbuf_take(&r->body, &len);
        req->body_len = len;
    }
    rd_reset(r);
    return req;
}

/* Gathers the head byte by byte, refusing bad line shapes at once.
 * Returns MORE (all consumed, or the head is complete: r->st says) or
 * ERROR. */
static enum http_reader_result rd_gather_head(struct http_reader *r, const unsigned char *d,
                                              size_t len, size_t *used)
{
    size_t i = 0;
    while (i < len) {
        unsigned char ch = d[i++];
        r->st = RD_HEAD;
        if (r->cr) {
            r->cr = false;
            if (ch != '\n')
                return rd_fail(r, 400, "bare CR in the request head");
            if (r->lines == 0 && r->line_len == 0) {
                if (++r->empty > RD_MAX_EMPTY_LINES)
                    return rd_fail(r, 400, "empty lines instead of a request");
                continue;
            }
            strbuf_append(&r->head, "\r\n", 2);
            if (r->line_len == 0) {
                r->whole = true;
                *used = i;
                return r->head.err ? rd_fail(r, 500, "out of memory") : HTTP_READER_MORE;
            }
            if (++r->lines == 1)
                r->reqline_end = r->head.len;
            else if (r->lines - 1 > r->lim.max_headers)
                return rd_fail(r, 431, "too many header fields");
            r->line_len = 0;
            continue;
        }
        if (ch == '\r') {
            r->cr = true;
            continue;
        }
        if (ch == '\n')
            return rd_fail(r, 400, "bare LF in the request head");
        if (ch == '\0')
            return rd_fail(r, 400, "NUL in the request head");
        if (r->line_len == 0 && r->lines > 0 && (ch == ' ' || ch == '\t'))
            return rd_fail(r, 400, "obsolete line folding");
        strbuf_putc(&r->head, (char)ch);
        r->line_len++;
        if (r->lines == 0 && r->line_len > r->lim.max_target + RD_REQUEST_LINE_EXTRA)
            return rd_fail(r, 414, "request target too long");
        if (r->lines > 0 && r->head.len - r->reqline_end > r->lim.max_header_size)
            return rd_fail(r, 431, "request header fields too large");
    }
    *used = i;
    return r->head.err ? rd_fail(r, 500, "out of memory") : HTTP_READER_MORE;
}

static bool rd_span_is(struct http_span s, const char *name)
{
    return strlen(name) == s.len && strncasecmp(s.p, name, s.len) == 0;
}

static struct http_span rd_trimmed(struct http_span s)
{
    while (s.len && (s.p[0] == ' ' || s.p[0] == '\t')) {
        s.p++;
        s.len--;
    }
    while (s.len && (s.p[s.len - 1] == ' ' || s.p[s.len - 1] == '\t'))
        s.len--;
    return s;
}

/* The request line: method SP target SP HTTP/1.x. */
static enum http_reader_result rd_request_line(struct http_reader *r, char *method,
                                               struct http_span *target, int *minor)
{
    const char *line = r->head.p;
    size_t len = r->reqline_end - 2;
    const char *sp1 = memchr(line, ' ', len);
    if (!sp1 || sp1 == line)
        return rd_fail(r, 400, "malformed request line");
    size_t mlen = (size_t)(sp1 - line);
    for (size_t i = 0; i < mlen; i++)
        if (!rd_tchar((unsigned char)line[i]))
            return rd_fail(r, 400, "malformed method");
    if (mlen > 15)
        return rd_fail(r, 501, "unknown method");
    memcpy(method, line, mlen);
    method[mlen] = '\0';
    const char *t = sp1 + 1;
    const char *sp2 = memchr(t, ' ', len - (size_t)(t - line));
    if (!sp2)
        return rd_fail(r, 400, "no HTTP version (HTTP/0.9 is not spoken)");
    const char *v = sp2 + 1;
    size_t vlen = len - (size_t)(v - line);
    if (vlen != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' || v[6] != '.' ||
        v[7] < '0' || v[7] > '9')
        return rd_fail(r, 400, "malformed HTTP version");
    if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
        return rd_fail(r, 505, "only HTTP/1.0 and HTTP/1.1 are spoken");
    *minor = v[7] - '0';
    target->p = t;
    target->len = (size_t)(sp2 - t);
    if (target->len == 0)
        return rd_fail(r, 400, "malformed request line");
    if (target->len > r->lim.max_target)
        return rd_fail(r, 414, "request target too long");
    return HTTP_READER_MORE;
}

/* Splits the header lines into names and values, checking each. */
static enum http_reader_result rd_fields(struct http_reader *r, struct http_span *names,
                                         struct http_span *values, size_t *n)
{
    const char *p = r->head.p + r->reqline_end;
    const char *end = r->head.p + r->head.len - 2; /* the final CRLF */
    *n = 0;
    while (p < end) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (!colon || colon == p)
            return rd_fail(r, 400, "malformed header field");
        for (const char *q = p; q < colon; q++)
            if (!rd_tchar((unsigned char)*q))
                return rd_fail(r, 400, "malformed header field name");
        for (const char *q = colon + 1; q < eol; q++)
            if (!rd_value_char((unsigned char)*q))
                return rd_fail(r, 400, "control character in a header field");
        names[*n] = (struct http_span){p, (size_t)(colon - p)};
        values[*n] = rd_trimmed((struct http_span){colon + 1, (size_t)(eol - colon - 1)});
        (*n)++;
        p = eol + 2;
    }
    return HTTP_READER_MORE;
}

/* Framing and the other fields that decide how to read what follows. */
static enum http_reader_result rd_framing(struct http_reader *r, int minor,
                                          const struct http_span *names,
                                          const struct http_span *values, size_t n, uint64_t *clen,
                                          bool *has_cl, bool *expect)
{
    unsigned ncl = 0, nte = 0, nhost = 0;
    *clen = 0;
    *has_cl = false;
    *expect = false;
    for (size_t i = 0; i < n; i++) {
        struct http_span v = values[i];
        if (rd_span_is(names[i], "Content-Length")) {
            /* one value, digits only: "5, 5", "+5", a second field (even
             * equal) are how bodies are smuggled past another parser */
            if (++ncl > 1)
                return rd_fail(r, 400, "more than one Content-Length");
            if (v.len == 0 || v.len > 19)
                return rd_fail(r, 400, "bad Content-Length");
            uint64_t x = 0;
            for (size_t k = 0; k < v.len; k++) {
                if (v.p[k] < '0' || v.p[k] > '9')
                    return rd_fail(r, 400, "bad Content-Length");
                x = x * 10 + (uint64_t)(v.p[k] - '0');
            }
            *clen = x;
            *has_cl = true;
        } else if (rd_span_is(names[i], "Transfer-Encoding")) {
            if (++nte > 1)
                return rd_fail(r, 400, "more than one Transfer-Encoding");
            if (!rd_span_is(v, "chunked"))
                return rd_fail(r, 501, "transfer coding not implemented");
        } else if (rd_span_is(names[i], "Host")) {
            nhost++;
        } else if (rd_span_is(names[i], "Expect") && minor == 1) {
            /* HTTP/1.0 expectations are ignored (RFC 9110 §10.1.1) */
            if (!rd_span_is(v, "100-continue"))
                return rd_fail(r, 417, "expectation not supported");
            *expect = true;
        }
    }
    if (nte && ncl)
        return rd_fail(r, 400, "both Content-Length and Transfer-Encoding");
    if (nte && minor == 0)
        return rd_fail(r, 400, "Transfer-Encoding in HTTP/1.0");
    if (minor == 1 && nhost != 1)
        return rd_fail(r, 400, nhost ? "more than one Host" : "no Host");
    if (nhost > 1)
        return rd_fail(r, 400, "more than one Host");
    r->chunked = nte > 0;
    return HTTP_READER_MORE;
}

/* The head is whole: check it, build the request, give http-parser the
 * head and decide about the body. */
static enum http_reader_result rd_head_done(struct http_reader *r)
{
    char method[16];
    struct http_span target;
    int minor;
    enum http_reader_result res = rd_request_line(r, method, &target, &minor);
    if (res != HTTP_READER_MORE)
        return res;

    size_t cap = r->lines - 1, n = 0;
    struct http_span *names = calloc(cap ? cap : 1, sizeof(*names));
    struct http_span *values = calloc(cap ? cap : 1, sizeof(*values));
    uint64_t clen;
    bool has_cl, expect;
    if (!names || !values) {
        res = rd_fail(r, 500, "out of memory");
        goto out;
    }
    res = rd_fields(r, names, values, &n);
    if (res != HTTP_READER_MORE)
        goto out;
    res = rd_framing(r, minor, names, values, n, &clen, &has_cl, &expect);
    if (res != HTTP_READER_MORE)
        goto out;

    /* http-parser reads the checked head; it stops on the last LF */
    http_parser_init(&r->hp, HTTP_REQUEST);
    r->hp.data = r;
    size_t last = r->head.len - 1;
    size_t got = http_parser_execute(&r->hp, &r->hs, r->head.p, last + 1);
    enum http_errno e = HTTP_PARSER_ERRNO(&r->hp);
    if (e == HPE_INVALID_METHOD) {
        res = rd_fail(r, 501, "unknown method");
        goto out;
    }
    if (e == HPE_HEADER_OVERFLOW) { /* its own bound, 80 KiB */
        res = rd_fail(r, 431, "request header fields too large");
        goto out;
    }
    if (e != HPE_PAUSED || got != last || strcmp(http_method_str(r->hp.method), method) != 0) {
        res = rd_fail(r, 400,
                      e == HPE_OK || e == HPE_PAUSED ? "malformed request head"
                                                     : http_errno_description(e));
        goto out;
    }

    int rc = http_request_new(method, target, minor, names, values, n, &r->req);
    if (rc == -ENOMEM) {
        res = rd_fail(r, 500, "out of memory");
        goto out;
    }
    if (rc) {
        res = rd_fail(r, 400, "bad request target");
        goto out;
    }
    r->req->keep_alive = http_should_keep_alive(&r->hp) != 0;
    r->req->upgrade = minor == 1 && http_request_has_token(r->req, "Connection", "upgrade") &&
                      http_request_header(r->req, "Upgrade") != NULL;

    bool body = r->chunked || clen > 0;
    r->body_limit = HTTP_READER_BODY_DEFAULT;
    if (r->lim.body_limit)
        r->body_limit = r->lim.body_limit(r->req, r->lim.body_limit_arg);
    if (has_cl && clen > r->body_limit) {
        res = rd_fail(r, 413, "request body too large");
        goto out;
    }
    r->body_left = clen;

    /* on with the last LF: a request without a body completes here */
    http_parser_pause(&r->hp, 0);
    got = http_parser_execute(&r->hp, &r->hs, r->head.p + last, 1);
    e = HTTP_PARSER_ERRNO(&r->hp);
    if (got != 1 || (e != HPE_OK && e != HPE_PAUSED) || r->complete == body) {
        res = rd_fail(r, 400, "malformed request head");
        goto out;
    }
    r->st = body ? RD_BODY : RD_DONE;
    if (body && expect)
        res = HTTP_READER_CONTINUE;
    else
        res = body ? HTTP_READER_MORE : HTTP_READER_REQUEST;
out:
    free(names);
    free(values);
    return res;
}

/* Checks chunked framing over d; *end is the count of bytes up to the end
 * of the message when it is in d (else len). */
static enum http_reader_result rd_chunks(struct http_reader *r, const unsigned char *d, size_t len,
                                         size_t *end, bool *done)
{
    *done = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = d[i];
        if (r->ck >= CK_TRAILER && ++r->ck_trailer > r->lim.max_header_size)
            return rd_fail(r, 431, "trailer fields too large");
        switch (r->ck) {
        case CK_SIZE0:
        case CK_SIZE: {
            int h = rd_hex(ch);
            if (h >= 0) {
                if (++r->ck_digits > RD_MAX_CHUNK_DIGITS)
                    return rd_fail(r, 413, "request body too large");
                r->ck_size = r->ck_size * 16 + (uint64_t)h;
                r->ck = CK_SIZE;
                break;
            }
            if (r->ck == CK_SIZE0 || (ch != ';' && ch != '\r'))
                return rd_fail(r, 400, "bad chunk size");
            if (r->ck_total + r->ck_size > r->body_limit)
                return rd_fail(r, 413, "request body too large");
            r->ck_total += r->ck_size;
            r->ck_ext = 0;
            r->ck = ch == ';' ? CK_EXT : CK_SIZE_LF;
            break;
        }
        case CK_EXT:
            if (ch == '\r')
                r->ck = CK_SIZE_LF;
            else if (!rd_value_char(ch) || ++r->ck_ext > RD_MAX_CHUNK_EXT)
                return rd_fail(r, 400, "bad chunk extension");
            break;
        case CK_SIZE_LF:
            if (ch != '\n')
                return rd_fail(r, 400, "bad chunk framing");
            r->ck = r->ck_size ? CK_DATA : CK_TRAILER;
            r->ck_digits = 0;
            break;
        case CK_DATA: {
            size_t take = len - i;
            if (take > r->ck_size)
                take = (size_t)r->ck_size;
            r->ck_size -= take;
            i += take - 1;
            if (r->ck_size == 0)
                r->ck = CK_DATA_CR;
            break;
        }
        case CK_DATA_CR:
            if (ch != '\r')
                return rd_fail(r, 400, "bad chunk framing");
            r->ck = CK_DATA_LF;
            break;
        case CK_DATA_LF:
            if (ch != '\n')
                return rd_fail(r, 400, "bad chunk framing");
            r->ck = CK_SIZE0;
            break;
        case CK_TRAILER:
            if (ch == '\r')
                r->ck = CK_END_LF;
            else if (rd_tchar(ch))
                r->ck = CK_TRAILER_NAME;
            else
                return rd_fail(r, 400, "malformed trailer field");
            break;
        case CK_TRAILER_NAME:
            if (ch == ':')
                r->ck = CK_TRAILER_VALUE;
            else if (!rd_tchar(ch))
                return rd_fail(r, 400, "malformed trailer field");
            break;
        case CK_TRAILER_VALUE:
            if (ch == '\r')
                r->ck = CK_TRAILER_LF;
            else if (!rd_value_char(ch))
                return rd_fail(r, 400, "malformed trailer field");
            break;
        case CK_TRAILER_LF:
            if (ch != '\n')
                return rd_fail(r, 400, "malformed trailer field");
            r->ck = CK_TRAILER;
            break;
        case CK_END_LF:
            if (ch != '\n')
                return rd_fail(r, 400, "bad chunk framing");
            *end = i + 1;
            *done = true;
            return HTTP_READER_MORE;
        }
    }
    *end = len;
    return HTTP_READER_MORE;
}

static enum http_reader_result rd_body(struct http_reader *r, const unsigned char *d, size_t len,
                                       size_t *used)
{
    size_t n;
    bool done;
    if (r->chunked) {
        if (rd_chunks(r, d, len, &n, &done) != HTTP_READER_MORE)
            return HTTP_READER_ERROR;
    } else {
        n = len < r->body_left ? len : (size_t)r->body_left;
        r->body_left -= n;
        done = r->body_left == 0;
    }
    size_t got = http_parser_execute(&r->hp, &r->hs, (const char *)d, n);
    enum http_errno e = HTTP_PARSER_ERRNO(&r->hp);
    if (r->body.err)
        return rd_fail(r, 500, "out of memory");
    /* the checks above and http-parser must agree on where the body ends */
    if (got != n || (e != HPE_OK && e != HPE_PAUSED) || r->complete != done)
        return rd_fail(r, 400,
                       e != HPE_OK && e != HPE_PAUSED ? http_errno_description(e)
                                                      : "malformed body framing");
    *used = n;
    if (!done)
        return HTTP_READER_MORE;
    r->st = RD_DONE;
    return HTTP_READER_REQUEST;
}

enum http_reader_result http_reader_feed(struct http_reader *r, const void *data, size_t len,
                                         size_t *used)
{
    const unsigned char *d = data;
    *used = 0;
    if (len == 0 && r->st != RD_ERROR && r->st != RD_DONE)
        return HTTP_READER_MORE; /* http-parser would take it for the end of input */
    switch (r->st) {
    case RD_ERROR:
        return HTTP_READER_ERROR;
    case RD_DONE:
        return HTTP_READER_REQUEST;
    case RD_BODY:
        return rd_body(r, d, len, used);
    case RD_IDLE:
    case RD_HEAD:
        break;
    }
    size_t n = 0;
    enum http_reader_result res = rd_gather_head(r, d, len, &n);
    if (res != HTTP_READER_MORE)
        return res;
    *used = n;
    if (!r->whole)
        return HTTP_READER_MORE;
    res = rd_head_done(r);
    if (res != HTTP_READER_MORE || n == len)
        return res;
    /* the body follows in the same bytes */
    size_t more = 0;
    res = rd_body(r, d + n, len - n, &more);
    *used = n + more;
    return res;
}
