/*
 * prom — the Prometheus text exposition format (see prom.h).
 */
#include "core/prom.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *prom_type_name(enum prom_type type)
{
    switch (type) {
    case PROM_COUNTER:
        return "counter";
    case PROM_GAUGE:
        return "gauge";
    case PROM_HISTOGRAM:
        return "histogram";
    }
    return "untyped";
}

void prom_family(struct strbuf *out, const char *name, enum prom_type type, const char *help)
{
    strbuf_printf(out, "# HELP %s ", name);
    /* HELP escapes only backslash and newline (a quote stays as it is) */
    for (const char *p = help; *p; p++) {
        if (*p == '\\')
            strbuf_puts(out, "\\\\");
        else if (*p == '\n')
            strbuf_puts(out, "\\n");
        else
            strbuf_putc(out, *p);
    }
    strbuf_printf(out, "\n# TYPE %s %s\n", name, prom_type_name(type));
}

void prom_escape_label(struct strbuf *out, const char *v)
{
    for (const char *p = v; *p; p++) {
        if (*p == '\\')
            strbuf_puts(out, "\\\\");
        else if (*p == '"')
            strbuf_puts(out, "\\\"");
        else if (*p == '\n')
            strbuf_puts(out, "\\n");
        else
            strbuf_putc(out, *p);
    }
}

static void prom_labels(struct strbuf *out, const char *name, const char *const *labels,
                        size_t nlabels)
{
    strbuf_puts(out, name);
    if (!nlabels)
        return;
    strbuf_putc(out, '{');
    for (size_t i = 0; i < nlabels; i++) {
        strbuf_printf(out, "%s%s=\"", i ? "," : "", labels[2 * i]);
        prom_escape_label(out, labels[2 * i + 1] ? labels[2 * i + 1] : "");
        strbuf_putc(out, '"');
    }
    strbuf_putc(out, '}');
}

void prom_sample(struct strbuf *out, const char *name, const char *const *labels, size_t nlabels,
                 uint64_t value)
{
    prom_labels(out, name, labels, nlabels);
    strbuf_printf(out, " %llu\n", (unsigned long long)value);
}

/* Go's strconv forms, which Prometheus reads: +Inf, -Inf, NaN. */
static void prom_double(struct strbuf *out, double v)
{
    if (isnan(v))
        strbuf_puts(out, "NaN");
    else if (isinf(v))
        strbuf_puts(out, v > 0 ? "+Inf" : "-Inf");
    else
        strbuf_printf(out, "%.15g", v);
}

void prom_sample_double(struct strbuf *out, const char *name, const char *const *labels,
                        size_t nlabels, double value)
{
    prom_labels(out, name, labels, nlabels);
    strbuf_putc(out, ' ');
    prom_double(out, value);
    strbuf_putc(out, '\n');
}

int prom_histogram_init(struct prom_histogram *h, const double *bounds, size_t nbounds)
{
    if (nbounds > PROM_HISTOGRAM_MAX_BOUNDS)
        return -EINVAL;
    for (size_t i = 1; i < nbounds; i++)
        if (!(bounds[i] > bounds[i - 1]))
            return -EINVAL;
    memset(h, 0, sizeof(*h));
    h->nbounds = nbounds;
    if (nbounds)
        memcpy(h->bounds, bounds, nbounds * sizeof(bounds[0]));
    return 0;
}

void prom_histogram_observe(struct prom_histogram *h, double value)
{
    size_t i = 0;
    while (i < h->nbounds && value > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    if (value > 0)
        atomic_fetch_add_explicit(&h->sum_micro, (uint64_t)(value * 1e6 + 0.5),
                                  memory_order_relaxed);
}

void prom_histogram_write(struct strbuf *out, const char *name, struct prom_histogram *h)
{
    char bucket[128], le[32];
    snprintf(bucket, sizeof(bucket), "%s_bucket", name);
    uint64_t cum = 0;
    for (size_t i = 0; i <= h->nbounds; i++) {
        cum += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        if (i < h->nbounds)
            snprintf(le, sizeof(le), "%.15g", h->bounds[i]);
        else
            snprintf(le, sizeof(le), "+Inf");
        const char *labels[] = {"le", le};
        prom_sample(out, bucket, labels, 1, cum);
    }
    char sum[128], count[128];
    snprintf(sum, sizeof(sum), "%s_sum", name);
    snprintf(count, sizeof(count), "%s_count", name);
    prom_sample_double(out, sum, NULL, 0,
                       (double)atomic_load_explicit(&h->sum_micro, memory_order_relaxed) / 1e6);
    prom_sample(out, count, NULL, 0, cum);
}
