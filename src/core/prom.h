/*
 * prom — the Prometheus text exposition format, version 0.0.4: HELP and
 * TYPE lines, samples with escaped label values, and histograms whose
 * buckets are counted without a lock (an observation is a few relaxed
 * atomic additions, so the thread that times something never waits for
 * the one that reads it).
 *
 * Writers build one family at a time: prom_family, then its samples.
 * Label values may be anything (a user agent, a reason); names are the
 * caller's constants and are not checked.
 */
#ifndef PARLEY_CORE_PROM_H
#define PARLEY_CORE_PROM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/strbuf.h"

#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

enum prom_type {
    PROM_COUNTER,
    PROM_GAUGE,
    PROM_HISTOGRAM,
};

/* "# HELP name help" (backslashes and newlines escaped) and "# TYPE". */
void prom_family(struct strbuf *out, const char *name, enum prom_type type, const char *help);

/* One sample: name{l1="v1",...} value. labels holds nlabels name/value
 * pairs (names first: {"method", "INVITE", "class", "2xx"}), or is NULL. */
void prom_sample(struct strbuf *out, const char *name, const char *const *labels, size_t nlabels,
                 uint64_t value);
/* The same with a value that need not be a whole number. */
void prom_sample_double(struct strbuf *out, const char *name, const char *const *labels,
                        size_t nlabels, double value);

/* Appends v as a label value: backslash, double quote and newline
 * escaped (the format's three), everything else as it is. */
void prom_escape_label(struct strbuf *out, const char *v);

#define PROM_HISTOGRAM_MAX_BOUNDS 16

/* A histogram of values in seconds (or any unit) with fixed upper bounds;
 * +Inf is implied. Observed from any thread, read from any other. */
struct prom_histogram {
    size_t nbounds;
    double bounds[PROM_HISTOGRAM_MAX_BOUNDS];                /* ascending */
    _Atomic uint64_t buckets[PROM_HISTOGRAM_MAX_BOUNDS + 1]; /* not cumulative; last: +Inf */
    _Atomic uint64_t sum_micro; /* the sum, in millionths of the unit */
};

/* 0, or -EINVAL for too many bounds or bounds not strictly ascending. */
int prom_histogram_init(struct prom_histogram *h, const double *bounds, size_t nbounds);
void prom_histogram_observe(struct prom_histogram *h, double value);
/* name_bucket{le="..."} (cumulative), name_sum and name_count; the count
 * is the +Inf bucket, so the three agree even while observations go on.
 * The family line is the caller's (prom_family with PROM_HISTOGRAM). */
void prom_histogram_write(struct strbuf *out, const char *name, struct prom_histogram *h);

#endif
