/*
 * http/response — HTTP/1.1 responses built into a core/strbuf.
 *
 * A response is begun, given headers, and ended with its body; every
 * response carries the headers Parley's HTTPS services always send (see
 * http_response_begin). Build one response at a time on a thread (begin
 * remembers where it started in out, so that end can tell whether the
 * caller set Cache-Control); several may follow one another in one buffer.
 * Names must be tokens and values are kept on one line: a control
 * character in a value or a reason becomes a space, a header whose name is
 * not a token is left out, so nothing a caller passes along can split the
 * response.
 */
#ifndef PARLEY_HTTP_RESPONSE_H
#define PARLEY_HTTP_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/strbuf.h"
#include "http/request.h"

/* Status line, Date (formatted once per second per thread), and the
 * headers every Parley HTTPS response carries:
 * Strict-Transport-Security: max-age=31536000, X-Content-Type-Options:
 * nosniff, Server: Parley, and (at http_response_end) Cache-Control:
 * no-store unless the caller set another. */
void http_response_begin(struct strbuf *out, int status, const char *reason /* NULL: standard */);
void http_response_header(struct strbuf *out, const char *name, const char *value);
void http_response_headerf(struct strbuf *out, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Content-Length and the body (len may be 0); head_only for HEAD (the
 * Content-Length of the body, no body); close adds Connection: close. A
 * 1xx, 204 or 304 gets neither Content-Length nor body. */
void http_response_end(struct strbuf *out, const void *body, size_t len, bool head_only,
                       bool close);
/* The standard reason phrase ("Not Found"); "Unknown" for others. */
const char *http_status_reason(int status);
/* An IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") of a wall time in
 * seconds; out has room for 30 bytes. */
void http_response_date(int64_t wall_s, char out[30]);

/* Whether Accept-Encoding allows gzip (q > 0), per RFC 9110 §12.5.3: gzip
 * or x-gzip named, or "*" when gzip is not named. Without Accept-Encoding,
 * false: Parley compresses only for clients that ask. */
bool http_accepts_gzip(const struct http_request *r);
/* gzip (zlib deflateInit2 windowBits 31) of in, appended to out. Returns 0,
 * -ENOMEM or -EIO. */
int http_gzip(const void *in, size_t len, struct strbuf *out);

/* A simple error response with a short text/plain body (text and a
 * newline; NULL: the reason phrase). */
void http_response_error(struct strbuf *out, int status, const char *text, bool close);

#endif
