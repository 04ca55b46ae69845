/*
 * strview — a borrowed, length-delimited view of characters.
 *
 * Parsers hand out views into buffers they own instead of copying; a view is
 * valid only while its buffer lives. Views are never NUL-terminated.
 */
#ifndef PARLEY_CORE_STRVIEW_H
#define PARLEY_CORE_STRVIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

struct strview {
    const char *p;
    size_t n;
};

#define STRVIEW_EMPTY ((struct strview){NULL, 0})

static inline struct strview strview_make(const char *p, size_t n)
{
    return (struct strview){p, n};
}

static inline struct strview strview_cstr(const char *s)
{
    return (struct strview){s, s ? strlen(s) : 0};
}

static inline bool strview_is_empty(struct strview v)
{
    return v.n == 0;
}

static inline bool strview_eq(struct strview v, const char *s)
{
    size_t n = strlen(s);
    return v.n == n && (n == 0 || memcmp(v.p, s, n) == 0);
}

static inline bool strview_eq_nocase(struct strview v, const char *s)
{
    size_t n = strlen(s);
    return v.n == n && (n == 0 || strncasecmp(v.p, s, n) == 0);
}

static inline bool strview_eq_view(struct strview a, struct strview b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static inline bool strview_eq_view_nocase(struct strview a, struct strview b)
{
    return a.n == b.n && (a.n == 0 || strncasecmp(a.p, b.p, a.n) == 0);
}

/* Copies the view into dst (always NUL-terminated when cap > 0). Returns
 * -ENOSPC when it did not fit (dst then holds a truncated copy). */
int strview_copy(struct strview v, char *dst, size_t cap);

/* A NUL-terminated copy of the view on the heap (the caller frees it);
 * NULL when out of memory. */
char *strview_dup(struct strview v);

/* Trims spaces and tabs on both ends. */
struct strview strview_trim(struct strview v);

/* Parses an unsigned decimal number that must fill the whole view and fit
 * in max. Returns 0 or -EINVAL / -ERANGE. */
int strview_to_u64(struct strview v, unsigned long long max, unsigned long long *out);

#endif
