/*
 * http/reader — HTTP/1.x requests out of a byte stream, strictly.
 *
 * Built on http-parser (Debian's 2.9.4, which is compiled with
 * HTTP_PARSER_STRICT=0: it takes bare LF line ends, obs-fold, spaces in
 * field names, "gzip, chunked", and any two bytes after a chunk's data as
 * its CRLF). So the reader checks the shapes that requests are smuggled
 * in itself, ahead of it:
 *   - the head: every line ends in CRLF (a bare CR or LF is 400), no NUL,
 *     no obs-fold (400), field names are tokens right before ':', values
 *     hold no control character; the request line is method SP target SP
 *     HTTP/1.x (HTTP/0.9's two-part line is 400, another version 505);
 *   - framing: Content-Length is 1*DIGIT and appears once, Transfer-Encoding
 *     is exactly "chunked" and appears once, never with Content-Length, not
 *     in HTTP/1.0 (400; another coding 501); chunked framing (size line,
 *     the CRLF after each chunk's data, trailers) is checked byte by byte
 *     before http-parser decodes it;
 *   - HTTP/1.1 needs exactly one Host (400); the target is origin-form.
 * http-parser then gives the method (an unknown one is 501), keep-alive
 * and the body. Limits: head bytes (431), header fields (431), target
 * length (414), body bytes decided per request from its head (413 before
 * any of the body is read when Content-Length says so).
 *
 * The reader consumes one request at a time and stops at its end, so
 * pipelined requests are taken one by one.
 */
#ifndef PARLEY_HTTP_READER_H
#define PARLEY_HTTP_READER_H

#include <stdbool.h>
#include <stddef.h>

#include "http/request.h"

#define HTTP_READER_MAX_HEADERS    100
#define HTTP_READER_MAX_TARGET     8192
#define HTTP_READER_HEADER_DEFAULT 16384
#define HTTP_READER_BODY_DEFAULT   65536

struct http_reader_limits {
    size_t max_header_size; /* the head's bytes; 0: HTTP_READER_HEADER_DEFAULT */
    size_t max_headers;     /* 0: HTTP_READER_MAX_HEADERS */
    size_t max_target;      /* 0: HTTP_READER_MAX_TARGET */
    /* The most body bytes this request may carry, from its head (body
     * empty then); NULL: HTTP_READER_BODY_DEFAULT. */
    size_t (*body_limit)(const struct http_request *head, void *arg);
    void *body_limit_arg;
};

enum http_reader_result {
    HTTP_READER_MORE = 0, /* everything given was consumed; feed more */
    HTTP_READER_REQUEST,  /* a request is complete: http_reader_take */
    HTTP_READER_CONTINUE, /* the head asked "Expect: 100-continue" and its body is
                           * allowed: send HTTP_READER_CONTINUE_LINE, then feed on */
    HTTP_READER_ERROR,    /* answer http_reader_status() and close the connection */
};

#define HTTP_READER_CONTINUE_LINE "HTTP/1.1 100 Continue\r\n\r\n"

struct http_reader;

/* NULL when out of memory. */
struct http_reader *http_reader_new(const struct http_reader_limits *lim);
void http_reader_free(struct http_reader *r);
/* Takes effect from the next request on (a reload). */
void http_reader_set_max_header_size(struct http_reader *r, size_t n);

/* Consumes bytes of data (*used says how many: on REQUEST and CONTINUE
 * possibly fewer than len, the rest is for later). After ERROR every
 * further call returns ERROR again. */
enum http_reader_result http_reader_feed(struct http_reader *r, const void *data, size_t len,
                                         size_t *used);
/* The finished request (the caller owns it), or NULL when none is. */
struct http_request *http_reader_take(struct http_reader *r);
/* Whether bytes of an unfinished request have been consumed (its deadline
 * runs). */
bool http_reader_started(const struct http_reader *r);
/* After ERROR: the status to answer (400, 413, 414, 417, 431, 501, 505;
 * 500 when out of memory) and a short reason, for the body and the log. */
int http_reader_status(const struct http_reader *r);
const char *http_reader_reason(const struct http_reader *r);

#endif
