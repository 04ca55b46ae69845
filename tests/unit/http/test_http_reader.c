#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/strbuf.h"
#include "http/reader.h"

/* What feeding some bytes gave: the requests, Continues, the error. */
struct outcome {
    struct http_request *reqs[8];
    int nreq;
    int continues;
    int status; /* 0: no error */
};

static void outcome_free(struct outcome *o)
{
    for (int i = 0; i < o->nreq; i++)
        http_request_free(o->reqs[i]);
    memset(o, 0, sizeof(*o));
}

/* Feeds one piece (an exact-size heap copy: ASan sees any overread). */
static void feed_piece(struct http_reader *r, const char *d, size_t len, struct outcome *o)
{
    char *copy = malloc(len ? len : 1);
    memcpy(copy, d, len);
    size_t off = 0;
    while (o->status == 0) {
        size_t used = 0;
        enum http_reader_result res = http_reader_feed(r, copy + off, len - off, &used);
        assert_true(used <= len - off);
        off += used;
        if (res == HTTP_READER_REQUEST) {
            assert_true(o->nreq < 8);
            o->reqs[o->nreq++] = http_reader_take(r);
            assert_non_null(o->reqs[o->nreq - 1]);
        } else if (res == HTTP_READER_CONTINUE) {
            o->continues++;
        } else if (res == HTTP_READER_ERROR) {
            o->status = http_reader_status(r);
        } else {
            assert_int_equal(off, len);
            break;
        }
    }
    free(copy);
}

static size_t limit_arg = 64;

/* Large bodies under /content/ only, as the web side means to. */
static size_t body_limit(const struct http_request *head, void *arg)
{
    (void)arg;
    return strncmp(head->path, "/content/", 9) == 0 ? 1u << 20 : limit_arg;
}

static struct http_reader *reader_new(void)
{
    struct http_reader_limits lim = {.max_header_size = 1024, .body_limit = body_limit};
    struct http_reader *r = http_reader_new(&lim);
    assert_non_null(r);
    return r;
}

/* splits: 0 whole, k > 0 cut after byte k, -1 byte by byte */
static void run(const char *d, size_t len, int split, struct outcome *o)
{
    struct http_reader *r = reader_new();
    memset(o, 0, sizeof(*o));
    if (split == 0) {
        feed_piece(r, d, len, o);
    } else if (split > 0) {
        feed_piece(r, d, (size_t)split, o);
        feed_piece(r, d + split, len - (size_t)split, o);
    } else {
        for (size_t i = 0; i < len && o->status == 0; i++)
            feed_piece(r, d + i, 1, o);
    }
    http_reader_free(r);
}

static void assert_same_request(const struct http_request *a, const struct http_request *b)
{
    assert_int_equal(a->method, b->method);
    assert_string_equal(a->method_name, b->method_name);
    assert_string_equal(a->target, b->target);
    assert_string_equal(a->path, b->path);
    assert_string_equal(a->query, b->query);
    assert_int_equal(a->minor, b->minor);
    assert_int_equal(a->nheaders, b->nheaders);
    for (size_t i = 0; i < a->nheaders; i++) {
        assert_string_equal(a->headers[i].name, b->headers[i].name);
        assert_string_equal(a->headers[i].value, b->headers[i].value);
    }
    assert_int_equal(a->body_len, b->body_len);
    if (a->body_len)
        assert_memory_equal(a->body, b->body, a->body_len);
    assert_int_equal(a->keep_alive, b->keep_alive);
    assert_int_equal(a->upgrade, b->upgrade);
}

/* The same outcome however the bytes are cut. */
static void assert_split_invariant(const char *d)
{
    size_t len = strlen(d);
    struct outcome whole;
    run(d, len, 0, &whole);
    for (int split = -1; split < (int)len; split++) {
        if (split == 0)
            continue;
        struct outcome o;
        run(d, len, split, &o);
        assert_int_equal(o.status, whole.status);
        assert_int_equal(o.nreq, whole.nreq);
        assert_int_equal(o.continues, whole.continues);
        for (int i = 0; i < o.nreq; i++)
            assert_same_request(o.reqs[i], whole.reqs[i]);
        outcome_free(&o);
    }
    outcome_free(&whole);
}

static int status_of(const char *d)
{
    struct outcome o;
    run(d, strlen(d), 0, &o);
    int s = o.status;
    outcome_free(&o);
    return s;
}

static void test_simple_get(void **state)
{
    (void)state;
    const char *d = "GET /a%20b/c?x=1&y=%20 HTTP/1.1\r\n"
                    "Host: example.com\r\n"
                    "X-Thing:   spaced value \t\r\n"
                    "Empty:\r\n"
                    "\r\n";
    struct outcome o;
    run(d, strlen(d), 0, &o);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.nreq, 1);
    struct http_request *r = o.reqs[0];
    assert_int_equal(r->method, HTTP_M_GET);
    assert_string_equal(r->method_name, "GET");
    assert_string_equal(r->target, "/a%20b/c?x=1&y=%20");
    assert_string_equal(r->path, "/a b/c");
    assert_string_equal(r->query, "x=1&y=%20");
    assert_int_equal(r->minor, 1);
    assert_true(r->keep_alive);
    assert_false(r->upgrade);
    assert_int_equal(r->body_len, 0);
    assert_null(r->body);
    assert_string_equal(http_request_header(r, "host"), "example.com");
    assert_string_equal(http_request_header(r, "HOST"), "example.com");
    assert_string_equal(http_request_header(r, "x-thing"), "spaced value");
    assert_string_equal(http_request_header(r, "Empty"), "");
    assert_null(http_request_header(r, "Missing"));
    outcome_free(&o);
}

static void test_keep_alive(void **state)
{
    (void)state;
    struct {
        const char *d;
        bool keep;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false},
        {"GET / HTTP/1.0\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct outcome o;
        run(cases[i].d, strlen(cases[i].d), 0, &o);
        assert_int_equal(o.nreq, 1);
        assert_int_equal(o.reqs[0]->keep_alive, cases[i].keep);
        outcome_free(&o);
    }
}

static void test_upgrade(void **state)
{
    (void)state;
    const char *d = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n"
                    "Upgrade: websocket\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n";
    struct outcome o;
    run(d, strlen(d), 0, &o);
    assert_int_equal(o.nreq, 2);
    assert_true(o.reqs[0]->upgrade);
    assert_false(o.reqs[1]->upgrade);
    assert_string_equal(o.reqs[1]->path, "/next");
    outcome_free(&o);
    /* no Upgrade field: not an upgrade */
    d = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n";
    run(d, strlen(d), 0, &o);
    assert_int_equal(o.nreq, 1);
    assert_false(o.reqs[0]->upgrade);
    outcome_free(&o);
    assert_split_invariant("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
                           "Upgrade: websocket\r\n\r\n");
}

static void test_pipelined(void **state)
{
    (void)state;
    const char *d = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
                    "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
                    "\r\n" /* an empty line between requests is tolerated */
                    "PUT /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "3\r\nabc\r\n0\r\n\r\n"
                    "DELETE /4 HTTP/1.1\r\nHost: a\r\n\r\n";
    struct outcome o;
    run(d, strlen(d), 0, &o);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.nreq, 4);
    assert_string_equal(o.reqs[0]->path, "/1");
    assert_int_equal(o.reqs[1]->method, HTTP_M_POST);
    assert_int_equal(o.reqs[1]->body_len, 5);
    assert_memory_equal(o.reqs[1]->body, "hello", 5);
    assert_int_equal(o.reqs[2]->method, HTTP_M_PUT);
    assert_int_equal(o.reqs[2]->body_len, 3);
    assert_memory_equal(o.reqs[2]->body, "abc", 3);
    assert_int_equal(o.reqs[3]->method, HTTP_M_DELETE);
    outcome_free(&o);
    assert_split_invariant(d);
}

static void test_chunked(void **state)
{
    (void)state;
    const char *d = "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"
                    "5;name=value\r\nhello\r\n"
                    "A\r\n, world!!!\r\n"
                    "0\r\n"
                    "Trailer-One: x\r\n"
                    "\r\n";
    struct outcome o;
    run(d, strlen(d), 0, &o);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.nreq, 1);
    assert_int_equal(o.reqs[0]->body_len, 15);
    assert_memory_equal(o.reqs[0]->body, "hello, world!!!", 15);
    outcome_free(&o);
    assert_split_invariant(d);
}

static void test_limits(void **state)
{
    (void)state;
    /* Content-Length over the limit: refused from the head alone */
    assert_int_equal(status_of("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 65\r\n\r\n"), 413);
    assert_int_equal(status_of("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: "
                               "99999999999999999999\r\n\r\n"),
                     400);
    /* /content/ may carry more (the body limit is decided from the head) */
    struct outcome o;
    char big[400];
    int n = snprintf(big, sizeof(big),
                     "PUT /content/f HTTP/1.1\r\nHost: a\r\nContent-Length: "
                     "100\r\n\r\n%0100d",
                     0);
    run(big, (size_t)n, 0, &o);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.nreq, 1);
    assert_int_equal(o.reqs[0]->body_len, 100);
    outcome_free(&o);
    /* chunked: the sum of the chunks counts */
    assert_int_equal(status_of("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                               "20\r\n0123456789abcdef0123456789abcdef\r\n"
                               "21\r\n"),
                     413);
    assert_int_equal(status_of("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                               "0000000000000001\r\n"),
                     413);
    /* exactly at the limit is fine */
    char body[200];
    n = snprintf(body, sizeof(body),
                 "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 64\r\n\r\n%064d", 7);
    run(body, (size_t)n, 0, &o);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.reqs[0]->body_len, 64);
    outcome_free(&o);

    /* the header block (1024 here) */
    struct strbuf b = STRBUF_INIT;
    strbuf_puts(&b, "GET / HTTP/1.1\r\nHost: a\r\nX-Big: ");
    for (int i = 0; i < 1100; i++)
        strbuf_putc(&b, 'x');
    strbuf_puts(&b, "\r\n\r\n");
    assert_int_equal(status_of(strbuf_cstr(&b)), 431);
    strbuf_reset(&b);
    /* 100 fields pass, 101 do not */
    struct http_reader_limits lim = {.max_header_size = 65536};
    for (int count = 100; count <= 101; count++) {
        strbuf_reset(&b);
        strbuf_puts(&b, "GET / HTTP/1.1\r\nHost: a\r\n");
        for (int i = 1; i < count; i++)
            strbuf_printf(&b, "X-%d: v\r\n", i);
        strbuf_puts(&b, "\r\n");
        struct http_reader *r = http_reader_new(&lim);
        memset(&o, 0, sizeof(o));
        feed_piece(r, b.p, b.len, &o);
        assert_int_equal(o.status, count == 100 ? 0 : 431);
        outcome_free(&o);
        http_reader_free(r);
    }
    /* the target */
    strbuf_reset(&b);
    strbuf_puts(&b, "GET /");
    for (int i = 0; i < HTTP_READER_MAX_TARGET; i++)
        strbuf_putc(&b, 'a');
    strbuf_puts(&b, " HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_int_equal(status_of(strbuf_cstr(&b)), 414);
    /* ... and one that never ends is refused without reading it all */
    strbuf_reset(&b);
    strbuf_puts(&b, "GET /");
    for (int i = 0; i < 3 * HTTP_READER_MAX_TARGET; i++)
        strbuf_putc(&b, 'a');
    assert_int_equal(status_of(strbuf_cstr(&b)), 414);
    strbuf_free(&b);
}

static void test_smuggling(void **state)
{
    (void)state;
    const char *bad400[] = {
        /* CL with TE, either order */
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        "0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
        "0\r\n\r\n",
        /* two Content-Lengths, differing or not, or a list */
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\nhello",
        /* two Transfer-Encodings */
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked"
        "\r\n\r\n0\r\n\r\n",
        /* TE in HTTP/1.0 */
        "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        /* line shapes http-parser (non-strict) takes */
        "GET / HTTP/1.1\nHost: a\n\n",
        "GET / HTTP/1.1\r\nHost: a\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n\tc\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX Y: b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX : b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01 b\r\n\r\n",
        "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
        " GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        /* chunked framing */
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXY0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\rXhello\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\r",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX Y: z\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n z\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad400) / sizeof(bad400[0]); i++) {
        int s = status_of(bad400[i]);
        if (s != 400)
            fail_msg("case %zu: status %d for %s", i, s, bad400[i]);
    }
    /* codings other than chunked are not implemented */
    assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n"
                               "\r\n0\r\n\r\n"),
                     501);
    assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n"
                               "\r\n0\r\n\r\n"),
                     501);
    /* nothing is taken before the refusal: the bytes after are not a
     * second request */
    struct outcome o;
    const char *d = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nTransfer-Encoding: chunked"
                    "\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
    run(d, strlen(d), 0, &o);
    assert_int_equal(o.status, 400);
    assert_int_equal(o.nreq, 0);
    outcome_free(&o);
    /* once failed, always failed */
    struct http_reader *r = reader_new();
    size_t used;
    assert_int_equal(http_reader_feed(r, "GET / HTTP/1.1\n", 15, &used), HTTP_READER_ERROR);
    assert_int_equal(http_reader_feed(r, "GET / HTTP/1.1\r\n", 16, &used), HTTP_READER_ERROR);
    assert_int_equal(used, 0);
    assert_non_null(http_reader_reason(r));
    http_reader_free(r);
}

static void test_targets(void **state)
{
    (void)state;
    assert_int_equal(status_of("GET /a%00b HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(status_of("GET /a%zzb HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(status_of("GET /a%4 HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(status_of("GET /a% HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(status_of("GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(status_of("GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(status_of("GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(status_of("GET http://example.com/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(status_of("CONNECT example.com:443 HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(status_of("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    /* a NUL in the head itself */
    struct outcome o;
    static const char nul[] = "GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n";
    run(nul, sizeof(nul) - 1, 0, &o);
    assert_int_equal(o.status, 400);
    outcome_free(&o);
    static const char nul2[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n";
    run(nul2, sizeof(nul2) - 1, 0, &o);
    assert_int_equal(o.status, 400);
    outcome_free(&o);
    /* an escaped slash and a '+' stay what they decode to */
    run("GET /a%2Fb+c?q HTTP/1.1\r\nHost: a\r\n\r\n", 37, 0, &o);
    assert_int_equal(o.nreq, 1);
    assert_string_equal(o.reqs[0]->path, "/a/b+c");
    assert_string_equal(o.reqs[0]->query, "q");
    outcome_free(&o);
}

static void test_versions(void **state)
{
    (void)state;
    assert_int_equal(status_of("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 505);
    assert_int_equal(status_of("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), 505);
    assert_int_equal(status_of("GET / HTTP/3.0\r\nHost: a\r\n\r\n"), 505);
    assert_int_equal(status_of("GET / HTTP/0.9\r\n\r\n"), 505);
    assert_int_equal(status_of("GET /\r\n\r\n"), 400); /* HTTP/0.9's request line */
    assert_int_equal(status_of("GET / HTTP/1.10\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(status_of("GET / http/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(status_of("\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    /* Host: exactly one in 1.1, none needed in 1.0 */
    assert_int_equal(status_of("GET / HTTP/1.1\r\n\r\n"), 400);
    assert_int_equal(status_of("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
    assert_int_equal(status_of("GET / HTTP/1.0\r\n\r\n"), 0);
    assert_int_equal(status_of("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n"), 400);
}

static void test_methods(void **state)
{
    (void)state;
    struct {
        const char *name;
        enum http_method m;
    } known[] = {
        {"GET", HTTP_M_GET},           {"HEAD", HTTP_M_HEAD},     {"POST", HTTP_M_POST},
        {"PUT", HTTP_M_PUT},           {"DELETE", HTTP_M_DELETE}, {"OPTIONS", HTTP_M_OPTIONS},
        {"PROPFIND", HTTP_M_PROPFIND}, {"REPORT", HTTP_M_REPORT}, {"MKCOL", HTTP_M_OTHER},
        {"PROPPATCH", HTTP_M_OTHER},   {"MOVE", HTTP_M_OTHER},    {"COPY", HTTP_M_OTHER},
    };
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        char d[128];
        int n = snprintf(d, sizeof(d), "%s /x HTTP/1.1\r\nHost: a\r\n\r\n", known[i].name);
        struct outcome o;
        run(d, (size_t)n, 0, &o);
        assert_int_equal(o.status, 0);
        assert_int_equal(o.reqs[0]->method, known[i].m);
        assert_string_equal(o.reqs[0]->method_name, known[i].name);
        outcome_free(&o);
    }
    assert_int_equal(status_of("FOO /x HTTP/1.1\r\nHost: a\r\n\r\n"), 501);
    assert_int_equal(status_of("get /x HTTP/1.1\r\nHost: a\r\n\r\n"), 501);
    assert_int_equal(status_of("VERYLONGMETHODNAMEXX /x HTTP/1.1\r\nHost: a\r\n\r\n"), 501);
    assert_int_equal(status_of("G(T /x HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(http_request_method("PROPFIND"), HTTP_M_PROPFIND);
    assert_int_equal(http_request_method("propfind"), HTTP_M_OTHER);
}

static void test_expect(void **state)
{
    (void)state;
    const char *d = "PUT /content/f HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                    "Content-Length: 4\r\n\r\nbody";
    struct outcome o;
    run(d, strlen(d), 0, &o);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.continues, 1);
    assert_int_equal(o.nreq, 1);
    assert_memory_equal(o.reqs[0]->body, "body", 4);
    outcome_free(&o);
    assert_split_invariant(d);
    /* the body is not allowed: 413, no Continue */
    d = "PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1000\r\n\r\n";
    run(d, strlen(d), 0, &o);
    assert_int_equal(o.status, 413);
    assert_int_equal(o.continues, 0);
    outcome_free(&o);
    /* an expectation we do not know */
    assert_int_equal(status_of("PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\nContent-Length: 1"
                               "\r\n\r\nx"),
                     417);
    /* without a body there is nothing to continue to; in 1.0 it is ignored */
    run("GET /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n", 51, 0, &o);
    assert_int_equal(o.continues, 0);
    assert_int_equal(o.nreq, 1);
    outcome_free(&o);
    d = "PUT /x HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx";
    run(d, strlen(d), 0, &o);
    assert_int_equal(o.continues, 0);
    assert_int_equal(o.nreq, 1);
    outcome_free(&o);
}

static void test_split_invariance(void **state)
{
    (void)state;
    const char *cases[] = {
        "GET /a?b HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n",
        "\r\nGET / HTTP/1.0\r\n\r\n",
        "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world",
        "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1;a\r\nx\r\n"
        "2\r\nyz\r\n0;b=c\r\nT: 1\r\nU: 2\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nX: b\r\n c\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXY0\r\n\r\n",
        "GET /%00 HTTP/1.1\r\nHost: a\r\n\r\n",
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 65\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_split_invariant(cases[i]);
}

static void test_request_new(void **state)
{
    (void)state;
    struct http_span names[] = {{"Host", 4}, {"X", 1}};
    struct http_span values[] = {{"a", 1}, {"  v  ", 5}};
    struct http_request *r;
    assert_int_equal(
        http_request_new("GET", (struct http_span){"/p?q", 4}, 1, names, values, 2, &r), 0);
    assert_string_equal(r->path, "/p");
    assert_string_equal(r->query, "q");
    assert_string_equal(http_request_header(r, "x"), "v");
    assert_true(http_request_has_token(r, "host", "A"));
    http_request_free(r);
    assert_int_equal(http_request_new("GET", (struct http_span){"p", 1}, 1, NULL, NULL, 0, &r),
                     -EINVAL);
    assert_null(r);
    http_request_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_get),  cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_upgrade),     cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_chunked),     cmocka_unit_test(test_limits),
        cmocka_unit_test(test_smuggling),   cmocka_unit_test(test_targets),
        cmocka_unit_test(test_versions),    cmocka_unit_test(test_methods),
        cmocka_unit_test(test_expect),      cmocka_unit_test(test_split_invariance),
        cmocka_unit_test(test_request_new),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
