#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_level_current = LOG_LEVEL_INFO;
static atomic_int log_fd = 2;

void log_set_level(enum log_level level)
{
    atomic_store(&log_level_current, (int)level);
}

enum log_level log_get_level(void)
{
    return (enum log_level)atomic_load(&log_level_current);
}

bool log_enabled(enum log_level level)
{
    return (int)level >= atomic_load(&log_level_current);
}

static const char *const log_names[] = {"debug", "info", "warn", "error"};

const char *log_level_name(enum log_level level)
{
    if ((unsigned)level > LOG_LEVEL_ERROR)
        return "?";
    return log_names[level];
}

int log_level_parse(const char *text, enum log_level *out)
{
    for (int i = 0; i <= LOG_LEVEL_ERROR; i++) {
        if (strcmp(text, log_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

void log_set_fd(int fd)
{
    atomic_store(&log_fd, fd);
}

const char *log_fmt_int(char *buf, long long value)
{
    snprintf(buf, 24, "%lld", value);
    return buf;
}

/* A line never exceeds this; longer values are cut and marked. */
#define LOG_LINE_MAX 4096

struct log_line {
    char buf[LOG_LINE_MAX];
    size_t len;
    bool truncated;
};

static void log_put(struct log_line *l, const char *s, size_t n)
{
    if (l->len + n > LOG_LINE_MAX - 2) {
        n = LOG_LINE_MAX - 2 - l->len;
        l->truncated = true;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static bool log_needs_quotes(const char *v)
{
    if (*v == '\0')
        return true;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p >= 0x7f)
            return true;
    }
    return false;
}

static void log_put_value(struct log_line *l, const char *v)
{
    if (!log_needs_quotes(v)) {
        log_put(l, v, strlen(v));
        return;
    }
    log_put(l, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)v; *p && !l->truncated; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            log_put(l, esc, 2);
        } else if (*p == '\n') {
            log_put(l, "\\n", 2);
        } else if (*p == '\r') {
            log_put(l, "\\r", 2);
        } else if (*p < ' ' || *p == 0x7f) {
            int n = snprintf(esc, sizeof(esc), "\\x%02x", *p);
            log_put(l, esc, (size_t)n);
        } else {
            log_put(l, (const char *)p, 1);
        }
    }
    log_put(l, "\"", 1);
}

void log_kv(enum log_level level, const char *event, ...)
{
    if (!log_enabled(level))
        return;

    struct log_line l = {.len = 0, .truncated = false};
    struct timespec ts;
    struct tm tm;
    char head[96];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(head, sizeof(head),
                     "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s event=", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, log_level_name(level));
    log_put(&l, head, (size_t)n);
    log_put_value(&l, event);

    va_list ap;
    va_start(ap, event);
    for (;;) {
        const char *key = va_arg(ap, const char *);
        if (!key)
            break;
        const char *value = va_arg(ap, const char *);
        log_put(&l, " ", 1);
        log_put(&l, key, strlen(key));
        log_put(&l, "=", 1);
        log_put_value(&l, value ? value : "");
    }
    va_end(ap);
    if (l.truncated) {
        /* keep the line parseable: the cut value may have lost its quote */
        l.len = LOG_LINE_MAX - 16;
        memcpy(l.buf + l.len, " truncated=yes", 14);
        l.len += 14;
    }
    l.buf[l.len++] = '\n';

    int fd = atomic_load(&log_fd);
    const char *p = l.buf;
    size_t left = l.len;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break; /* nowhere left to report a failing log */
        p += w;
        left -= (size_t)w;
    }
}
