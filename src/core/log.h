/*
 * log — one event per line, logfmt.
 *
 *   ts=2026-11-28T17:26:39.123Z level=warn event=tls.refused peer=127.0.0.2:40211
 * reason="certificate untrusted"
 *
 * Every line has a stable event= name so people and tests can grep for it.
 * Fields are key/value string pairs; values are quoted when they need to be.
 * Lines are written with one write(2) so threads never interleave them.
 * Never pass secrets (keys, passwords, nonces' secrets) as values.
 */
#ifndef PARLEY_CORE_LOG_H
#define PARLEY_CORE_LOG_H

#include <stdbool.h>

enum log_level {
    LOG_LEVEL_DEBUG = 0,
    LOG_LEVEL_INFO = 1,
    LOG_LEVEL_WARN = 2,
    LOG_LEVEL_ERROR = 3,
};

/* Safe to call from any thread at any time (reload changes it). */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
bool log_enabled(enum log_level level);
/* "debug" | "info" | "warn" | "error". Returns 0 or -EINVAL. */
int log_level_parse(const char *text, enum log_level *out);
const char *log_level_name(enum log_level level);
/* Where lines go (default: 2, stderr). */
void log_set_fd(int fd);

/* Emits one line: key/value pairs of strings, terminated by NULL. A NULL
 * value is written as an empty string. Use the macros below. */
void log_kv(enum log_level level, const char *event, ...);

#define log_debug(event, ...)                                                                      \
    (log_enabled(LOG_LEVEL_DEBUG) ? log_kv(LOG_LEVEL_DEBUG, event, ##__VA_ARGS__, (char *)0)       \
                                  : (void)0)
#define log_info(event, ...)  log_kv(LOG_LEVEL_INFO, event, ##__VA_ARGS__, (char *)0)
#define log_warn(event, ...)  log_kv(LOG_LEVEL_WARN, event, ##__VA_ARGS__, (char *)0)
#define log_error(event, ...) log_kv(LOG_LEVEL_ERROR, event, ##__VA_ARGS__, (char *)0)

/* Formats a number into a caller-provided buffer, for use as a value:
 *   log_info("x", "count", LOG_INT(n)); */
const char *log_fmt_int(char *buf, long long value);
#define LOG_INT(v) log_fmt_int((char[24]){0}, (long long)(v))

#endif
