/*
 * libFuzzer target for the HTTP request reader: arbitrary bytes, fed whole
 * and again in pieces cut where the input's first bytes say, must give the
 * same requests and the same refusal; each request keeps the reader's
 * promises (origin-form target, no NUL in the path, bounds), and the
 * response helpers run over it. Any broken promise aborts.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/strbuf.h"
#include "http/reader.h"
#include "http/response.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

#define MAX_REQS 16
#define BODY_MAX 4096

struct outcome {
    struct http_request *reqs[MAX_REQS];
    int nreq;
    int continues;
    int status;
};

static size_t body_limit(const struct http_request *head, void *arg)
{
    (void)arg;
    return head->method == HTTP_M_PUT ? BODY_MAX : 256;
}

static void check_request(const struct http_request *r)
{
    CHECK(r->target[0] == '/');
    CHECK(strlen(r->path) <= strlen(r->target));
    CHECK(r->minor == 0 || r->minor == 1);
    CHECK(r->nheaders <= HTTP_READER_MAX_HEADERS);
    CHECK(r->body_len <= BODY_MAX);
    CHECK((r->body_len == 0) == (r->body == NULL));
    CHECK(!r->upgrade || r->minor == 1);
    CHECK(r->method_name[0] != '\0');
    for (size_t i = 0; i < r->nheaders; i++) {
        CHECK(http_request_header(r, r->headers[i].name) != NULL);
        CHECK(!strchr(r->headers[i].value, '\r') && !strchr(r->headers[i].value, '\n'));
    }
    (void)http_accepts_gzip(r);
    struct strbuf out = STRBUF_INIT;
    http_response_begin(&out, 200, NULL);
    http_response_header(&out, "X-Path", r->path);
    http_response_end(&out, r->body, r->body_len, r->method == HTTP_M_HEAD, !r->keep_alive);
    CHECK(out.err || memcmp(out.p, "HTTP/1.1 200 OK\r\n", 17) == 0);
    strbuf_free(&out);
}

static void feed(struct http_reader *rd, const uint8_t *d, size_t len, struct outcome *o)
{
    size_t off = 0;
    while (o->status == 0 && o->nreq < MAX_REQS) {
        size_t used = 0;
        enum http_reader_result res = http_reader_feed(rd, d + off, len - off, &used);
        CHECK(used <= len - off);
        off += used;
        if (res == HTTP_READER_REQUEST) {
            struct http_request *r = http_reader_take(rd);
            CHECK(r != NULL);
            check_request(r);
            o->reqs[o->nreq++] = r;
        } else if (res == HTTP_READER_CONTINUE) {
            o->continues++;
        } else if (res == HTTP_READER_ERROR) {
            o->status = http_reader_status(rd);
            CHECK(o->status >= 400 && o->status <= 505);
            struct strbuf out = STRBUF_INIT;
            http_response_error(&out, o->status, http_reader_reason(rd), true);
            strbuf_free(&out);
        } else {
            CHECK(off == len);
            break;
        }
    }
}

static struct http_reader *reader(void)
{
    struct http_reader_limits lim = {.max_header_size = 2048, .body_limit = body_limit};
    return http_reader_new(&lim);
}

static void outcome_free(struct outcome *o)
{
    for (int i = 0; i < o->nreq; i++)
        http_request_free(o->reqs[i]);
}

static bool same_request(const struct http_request *a, const struct http_request *b)
{
    if (a->method != b->method || strcmp(a->target, b->target) || strcmp(a->path, b->path) ||
        strcmp(a->query, b->query) || a->minor != b->minor || a->nheaders != b->nheaders ||
        a->body_len != b->body_len || a->keep_alive != b->keep_alive || a->upgrade != b->upgrade)
        return false;
    if (a->body_len && memcmp(a->body, b->body, a->body_len))
        return false;
    for (size_t i = 0; i < a->nheaders; i++)
        if (strcmp(a->headers[i].name, b->headers[i].name) ||
            strcmp(a->headers[i].value, b->headers[i].value))
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint32_t seed = (uint32_t)data[0] << 8 | data[1];
    data += 2;
    size -= 2;

    struct outcome whole = {0}, cut = {0};
    struct http_reader *r = reader();
    if (!r)
        return 0;
    feed(r, data, size, &whole);
    http_reader_free(r);

    r = reader();
    if (!r) {
        outcome_free(&whole);
        return 0;
    }
    size_t off = 0;
    while (off < size && cut.status == 0 && cut.nreq < MAX_REQS) {
        seed = seed * 1103515245u + 12345u;
        size_t n = 1 + (seed >> 16) % 64;
        if (n > size - off)
            n = size - off;
        /* each piece an exact-size copy: ASan sees any read past it */
        uint8_t *piece = malloc(n);
        if (!piece)
            break;
        memcpy(piece, data + off, n);
        feed(r, piece, n, &cut);
        free(piece);
        off += n;
    }
    http_reader_free(r);

    /* past MAX_REQS the two stop at different places: compare only then */
    if (whole.nreq < MAX_REQS && cut.nreq < MAX_REQS) {
        CHECK(whole.status == cut.status);
        CHECK(whole.nreq == cut.nreq);
        CHECK(whole.continues == cut.continues);
    }
    int n = whole.nreq < cut.nreq ? whole.nreq : cut.nreq;
    for (int i = 0; i < n; i++)
        CHECK(same_request(whole.reqs[i], cut.reqs[i]));
    outcome_free(&whole);
    outcome_free(&cut);
    return 0;
}
