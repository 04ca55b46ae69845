/*
 * strbuf — a growable byte buffer with a sticky error.
 *
 * Appends never fail loudly: the first allocation failure is remembered in
 * err and every later append is a no-op, so a builder can append a whole
 * message and check once at the end.
 */
#ifndef PARLEY_CORE_STRBUF_H
#define PARLEY_CORE_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

#include "core/strview.h"

struct strbuf {
    char *p; /* always NUL-terminated when len > 0 or after strbuf_cstr */
    size_t len;
    size_t cap;
    int err; /* 0 or -ENOMEM, sticky */
};

#define STRBUF_INIT                                                                                \
    {                                                                                              \
        NULL, 0, 0, 0                                                                              \
    }

void strbuf_append(struct strbuf *b, const void *data, size_t n);
void strbuf_puts(struct strbuf *b, const char *s);
void strbuf_putview(struct strbuf *b, struct strview v);
void strbuf_putc(struct strbuf *b, char c);
void strbuf_printf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void strbuf_vprintf(struct strbuf *b, const char *fmt, va_list ap);
/* A NUL-terminated view of the contents ("" when empty). */
const char *strbuf_cstr(struct strbuf *b);
void strbuf_reset(struct strbuf *b);
void strbuf_free(struct strbuf *b);
/* Hands the contents to the caller (who frees them) and resets the buffer. */
char *strbuf_take(struct strbuf *b, size_t *len);

#endif
