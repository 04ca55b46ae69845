/*
 * http/request — one parsed HTTP/1.x request, as the core receives it.
 *
 * Made by http/reader in the I/O workers (strictly checked: see reader.h)
 * and handed to the core with http/transport. The whole head lives in one
 * allocation with the struct; the body is a second one. Strings are
 * NUL-terminated; header values are trimmed of surrounding whitespace.
 */
#ifndef PARLEY_HTTP_REQUEST_H
#define PARLEY_HTTP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

enum http_method {
    HTTP_M_OTHER = 0, /* any other method http-parser knows (MKCOL, COPY...): see method_name */
    HTTP_M_GET,
    HTTP_M_HEAD,
    HTTP_M_POST,
    HTTP_M_PUT,
    HTTP_M_DELETE,
    HTTP_M_OPTIONS,
    HTTP_M_PROPFIND,
    HTTP_M_REPORT,
};

struct http_header {
    const char *name; /* as sent */
    const char *value;
};

struct http_request {
    enum http_method method;
    char method_name[16]; /* as sent, e.g. "MKCOL" for HTTP_M_OTHER */
    char *target;         /* request-target as sent: origin-form only ("/path?query") */
    char *path;           /* the target's path, percent-decoded (never holds a NUL) */
    char *query;          /* raw query after '?', "" when none */
    int minor;            /* HTTP/1.minor: 0 or 1 */
    struct http_header *headers;
    size_t nheaders;
    unsigned char *body; /* de-chunked; NULL when body_len is 0 */
    size_t body_len;
    /* The connection stays open after this request's response: HTTP/1.1
     * unless "Connection: close", HTTP/1.0 only with "Connection:
     * keep-alive". When false, the core closes the connection once the
     * response is sent; the transport reads nothing more from it. */
    bool keep_alive;
    /* HTTP/1.1 "Connection: upgrade" with an Upgrade header (WebSocket,
     * later): see http/transport.h for what the transport does then. */
    bool upgrade;
};

/* A piece of someone else's buffer. */
struct http_span {
    const char *p;
    size_t len;
};

/*
 * Makes a request (body empty, keep_alive and upgrade false) from its
 * parts, in one allocation: what http/reader does once a head is checked,
 * and what tests of the services use. target must be origin-form ("/..."
 * without '#', VCHARs only); its path is percent-decoded. Header names
 * and values are copied as given (values trimmed of SP/HT). Returns 0,
 * -EINVAL (the target is not origin-form, an escape is not %XX, or it
 * decodes to a NUL) or -ENOMEM.
 */
int http_request_new(const char *method, struct http_span target, int minor,
                     const struct http_span *names, const struct http_span *values, size_t n,
                     struct http_request **out);
/* The first header of that name (case-insensitive), or NULL. */
const char *http_request_header(const struct http_request *r, const char *name);
/* Whether a comma-separated header (every field line of that name) lists
 * token, case-insensitively ("Connection: keep-alive, Upgrade"). */
bool http_request_has_token(const struct http_request *r, const char *name, const char *token);
/* The enum for a method name ("GET" -> HTTP_M_GET, "MKCOL" -> HTTP_M_OTHER). */
enum http_method http_request_method(const char *name);
/* NULL is fine. */
void http_request_free(struct http_request *r);

#endif
