/*
 * metrics — parleyd's figures in the Prometheus text format (see
 * metrics.h; the list is docs/METRICS.md).
 */
#include "server/metrics.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#include "anchor/anchor.h"
#include "core/prom.h"
#include "registrar/throttle.h"
#include "relay/relay.h"
#include "server/runtime.h"
#include "store/writer.h"
#include "web/web.h"

#ifndef PARLEY_VERSION
#define PARLEY_VERSION "unknown"
#endif

static const char *const metrics_classes[] = {"", "1xx", "2xx", "3xx", "4xx", "5xx", "6xx"};

static const char *metrics_method_name(size_t m)
{
    return m == SIP_METHOD_UNKNOWN ? "other" : sip_method_name((enum sip_method)m);
}

void metrics_sip_received(struct runtime *rt, const struct sip_msg *msg)
{
    struct runtime_sip_counts *s = &rt->sip_counts;
    if (msg->is_request) {
        size_t m = (size_t)msg->method < RUNTIME_SIP_METHODS ? (size_t)msg->method : 0;
        s->requests_in[m]++;
    } else if (msg->status >= 100 && msg->status < 700) {
        size_t m = (size_t)msg->cseq_method < RUNTIME_SIP_METHODS ? (size_t)msg->cseq_method : 0;
        s->responses_in[m][msg->status / 100]++;
    }
}

void metrics_sip_sent(struct runtime *rt, const struct strbuf *data)
{
    static const char status_line[] = "SIP/2.0 ";
    const size_t sl = sizeof(status_line) - 1;
    if (data->len < sl + 3 || memcmp(data->p, status_line, sl) != 0)
        return;
    const char *d = data->p + sl;
    if (d[0] < '1' || d[0] > '6' || d[1] < '0' || d[1] > '9' || d[2] < '0' || d[2] > '9')
        return;
    size_t cls = (size_t)(d[0] - '0');
    /* the CSeq line of the head ("CSeq: 1 INVITE"), a line at a time:
     * memchr, not a comparison at every byte (each response on the core
     * thread passes here) */
    size_t m = 0;
    const char *p = data->p, *end = data->p + data->len;
    static const char cseq[] = "CSeq: ";
    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL && ++p < end) {
        if (*p == '\r')
            break; /* the blank line: the end of the head */
        if ((size_t)(end - p) < sizeof(cseq) - 1 || memcmp(p, cseq, sizeof(cseq) - 1) != 0)
            continue;
        const char *q = p + sizeof(cseq) - 1;
        while (q < end && *q >= '0' && *q <= '9')
            q++;
        while (q < end && *q == ' ')
            q++;
        const char *name = q;
        while (q < end && *q != '\r' && *q != ' ')
            q++;
        m = (size_t)sip_method_from_view(strview_make(name, (size_t)(q - name)));
        if (m >= RUNTIME_SIP_METHODS)
            m = 0;
        break;
    }
    rt->sip_counts.responses_out[m][cls]++;
}

/* --- the families ---------------------------------------------------------- */

static void metrics_build(struct runtime *rt, struct strbuf *out)
{
    char ver[64];
    snprintf(ver, sizeof(ver), "%s", OpenSSL_version(OPENSSL_VERSION_STRING));
    prom_family(out, "parley_build_info", PROM_GAUGE,
                "Always 1; the labels say which Parley and which OpenSSL run.");
    const char *bl[] = {"version", PARLEY_VERSION, "openssl", ver};
    prom_sample(out, "parley_build_info", bl, 2, 1);
    prom_family(out, "process_start_time_seconds", PROM_GAUGE,
                "When parleyd started, in seconds since the Unix epoch.");
    prom_sample(out, "process_start_time_seconds", NULL, 0, (uint64_t)rt->started);
}

static void metrics_registrations(struct runtime *rt, struct strbuf *out)
{
    prom_family(out, "parley_registrations", PROM_GAUGE,
                "Devices registered now (the registrar's bindings).");
    prom_sample(out, "parley_registrations", NULL, 0,
                rt->registrar ? registrar_count(rt->registrar) : 0);
}

/* A listener's transport label; "outgoing" for connections Parley made. */
static const char *metrics_transport(const struct runtime *rt, const struct core_conn *cc)
{
    if (cc->listener < 0 || (size_t)cc->listener >= rt->nlisteners)
        return cc->tls ? "outgoing-tls" : "outgoing-tcp";
    switch (rt->listeners[cc->listener].kind) {
    case LISTENER_TLS:
        return "tls";
    case LISTENER_MTLS:
        return "mtls";
    case LISTENER_TCP:
        return "tcp";
    case LISTENER_TRUNK_TCP:
        return "trunk-tcp";
    case LISTENER_HTTPS:
        return "https";
    }
    return "other";
}

#define METRICS_CONN_ROWS 32

struct metrics_conn_row {
    const char *transport;
    char version[16];
    uint64_t n;
};

static void metrics_connections(struct runtime *rt, struct strbuf *out)
{
    struct metrics_conn_row rows[METRICS_CONN_ROWS];
    size_t nrows = 0;
    size_t bucket = 0;
    for (struct hmap_node *n = hmap_iter_first(&rt->conns, &bucket); n;
         n = hmap_iter_next(&rt->conns, n, &bucket)) {
        const struct core_conn *cc = (const struct core_conn *)n;
        const char *transport = metrics_transport(rt, cc);
        const char *version = !cc->tls                               ? "none"
                              : cc->info && cc->info->tls_version[0] ? cc->info->tls_version
                                                                     : "handshake";
        size_t i = 0;
        while (i < nrows &&
               (rows[i].transport != transport || strcmp(rows[i].version, version) != 0))
            i++;
        if (i == nrows) {
            if (nrows == METRICS_CONN_ROWS)
                continue; /* cannot happen: a few transports, two versions */
            rows[nrows].transport = transport;
            snprintf(rows[nrows].version, sizeof(rows[nrows].version), "%s", version);
            rows[nrows++].n = 0;
        }
        rows[i].n++;
    }
    prom_family(out, "parley_connections", PROM_GAUGE,
                "Connections open now, by transport (the listener's kind, or outgoing) and "
                "negotiated TLS version (none without TLS; handshake while it runs).");
    for (size_t i = 0; i < nrows; i++) {
        const char *l[] = {"transport", rows[i].transport, "tls_version", rows[i].version};
        prom_sample(out, "parley_connections", l, 2, rows[i].n);
    }
    prom_family(out, "parley_connections_evicted_total", PROM_COUNTER,
                "Untrusted connections closed to make way for new ones at "
                "limits.connections_total.");
    prom_sample(out, "parley_connections_evicted_total", NULL, 0, rt->conns_evicted);

    uint64_t fails[CONN_TLS_FAIL_COUNT_] = {0};
    if (rt->workers)
        worker_pool_tls_failures(rt->workers, fails);
    prom_family(out, "parley_tls_handshake_failures_total", PROM_COUNTER,
                "TLS handshakes refused on Parley's listeners, by reason: timeout, certificate "
                "(verification failed or none where required), alert, protocol, closed.");
    for (size_t i = 0; i < CONN_TLS_FAIL_COUNT_; i++) {
        const char *l[] = {"reason", conn_tls_failure_name((enum conn_tls_failure)i)};
        prom_sample(out, "parley_tls_handshake_failures_total", l, 1, fails[i]);
    }
}

static void metrics_sip(struct runtime *rt, struct strbuf *out)
{
    const struct runtime_sip_counts *s = &rt->sip_counts;
    prom_family(out, "parley_sip_requests_received_total", PROM_COUNTER,
                "SIP requests received, by method (other: extension methods).");
    for (size_t m = 0; m < RUNTIME_SIP_METHODS; m++) {
        const char *l[] = {"method", metrics_method_name(m)};
        prom_sample(out, "parley_sip_requests_received_total", l, 1, s->requests_in[m]);
    }
    prom_family(out, "parley_sip_responses_total", PROM_COUNTER,
                "SIP responses, by direction (received, sent), the method of their CSeq and "
                "status class; only the combinations seen so far.");
    for (int dir = 0; dir < 2; dir++) {
        for (size_t m = 0; m < RUNTIME_SIP_METHODS; m++) {
            for (size_t c = 1; c <= 6; c++) {
                uint64_t v = dir ? s->responses_out[m][c] : s->responses_in[m][c];
                if (!v)
                    continue;
                const char *l[] = {"direction", dir ? "sent" : "received",
                                   "method",    metrics_method_name(m),
                                   "class",     metrics_classes[c]};
                prom_sample(out, "parley_sip_responses_total", l, 3, v);
            }
        }
    }
    struct proxy_stats ps;
    memset(&ps, 0, sizeof(ps));
    if (rt->proxy)
        proxy_stats(rt->proxy, &ps);
    prom_family(out, "parley_sip_transactions", PROM_GAUGE,
                "SIP transactions held now (what limits.transactions_* bound).");
    prom_sample(out, "parley_sip_transactions", NULL, 0, ps.held_transactions);
    prom_family(out, "parley_sip_dialogs", PROM_GAUGE, "Dialogs Parley routed and still knows.");
    prom_sample(out, "parley_sip_dialogs", NULL, 0, ps.dialogs);
    prom_family(out, "parley_sip_overload_refused_total", PROM_COUNTER,
                "Requests refused with 503 because a transaction bound was full.");
    prom_sample(out, "parley_sip_overload_refused_total", NULL, 0, ps.overload_refused);
}

struct metrics_calls {
    uint64_t srtp, rtp, pending;
};

/* A call's media summary (media/policy's lines, the anchor's legs): any
 * section or leg in the clear makes it rtp; else SRTP anywhere, srtp. */
static bool metrics_call_one(const struct proxy_call_info *c, void *arg)
{
    struct metrics_calls *mc = arg;
    const char *m = c->media ? c->media : "";
    bool plain = strstr(m, "unencrypted") != NULL;
    for (const char *p = m; !plain && (p = strstr(p, "RTP")); p += 3)
        plain = (p == m || p[-1] == ' ' || p[-1] == '/') && (p[3] == '\0' || p[3] == ' ');
    if (!*m)
        mc->pending++;
    else if (plain)
        mc->rtp++;
    else if (strstr(m, "SRTP"))
        mc->srtp++;
    else
        mc->pending++;
    return true;
}

static void metrics_calls(struct runtime *rt, struct strbuf *out)
{
    struct metrics_calls mc = {0};
    if (rt->proxy)
        proxy_foreach_call(rt->proxy, metrics_call_one, &mc);
    prom_family(out, "parley_calls", PROM_GAUGE,
                "Calls in progress, by media protection: srtp (every section encrypted), rtp "
                "(a section or leg in the clear), negotiating (no answer yet).");
    const char *l1[] = {"protection", "srtp"}, *l2[] = {"protection", "rtp"},
               *l3[] = {"protection", "negotiating"};
    prom_sample(out, "parley_calls", l1, 1, mc.srtp);
    prom_sample(out, "parley_calls", l2, 1, mc.rtp);
    prom_sample(out, "parley_calls", l3, 1, mc.pending);
}

/* A counter family with one sample per direction (label "direction"). */
static void metrics_directions(struct strbuf *out, const char *name, const char *help,
                               const char *first, uint64_t a, const char *second, uint64_t b)
{
    const char *la[] = {"direction", first}, *lb[] = {"direction", second};
    prom_family(out, name, PROM_COUNTER, help);
    prom_sample(out, name, la, 1, a);
    prom_sample(out, name, lb, 1, b);
}

static void metrics_relay(struct runtime *rt, struct strbuf *out)
{
    struct relay_totals t;
    relay_totals(rt->relay, &t);
    prom_family(out, "parley_relay_allocations", PROM_GAUGE, "TURN allocations held now.");
    prom_sample(out, "parley_relay_allocations", NULL, 0, t.allocations);
    metrics_directions(out, "parley_relay_packets_total",
                       "Packets the relay forwarded, by direction (to_peer: from clients to "
                       "their peers).",
                       "to_peer", t.to_peer_packets, "from_peer", t.from_peer_packets);
    metrics_directions(out, "parley_relay_bytes_total",
                       "Payload bytes the relay forwarded, by direction.", "to_peer",
                       t.to_peer_bytes, "from_peer", t.from_peer_bytes);
    prom_family(out, "parley_relay_dropped_packets_total", PROM_COUNTER,
                "Packets the relay dropped (over relay.max_bandwidth, or a full TCP queue).");
    prom_sample(out, "parley_relay_dropped_packets_total", NULL, 0, t.dropped_packets);
}

static void metrics_media(struct runtime *rt, struct strbuf *out)
{
    struct anchor_totals t;
    anchor_totals(rt->anchor, &t);
    prom_family(out, "parley_media_streams", PROM_GAUGE,
                "Anchored media streams held now by the media engine.");
    prom_sample(out, "parley_media_streams", NULL, 0, t.streams);
    metrics_directions(out, "parley_media_packets_total",
                       "Anchored media packets, by direction (in: accepted from the parties, "
                       "out: sent to them).",
                       "in", t.in_packets, "out", t.out_packets);
    metrics_directions(out, "parley_media_bytes_total", "Anchored media bytes, by direction.", "in",
                       t.in_bytes, "out", t.out_bytes);
    prom_family(out, "parley_media_refused_packets_total", PROM_COUNTER,
                "Anchored media packets refused from a party's address, by reason "
                "(authentication, replay).");
    const char *a[] = {"reason", "authentication"}, *r[] = {"reason", "replay"};
    prom_sample(out, "parley_media_refused_packets_total", a, 1, t.auth_failures);
    prom_sample(out, "parley_media_refused_packets_total", r, 1, t.replays);
}

static void metrics_store(struct runtime *rt, struct strbuf *out)
{
    prom_family(out, "parley_store_write_duration_seconds", PROM_HISTOGRAM,
                "How long the store writer took for each durable write (a call record, fsync "
                "included), failed attempts too.");
    if (rt->store_writer) {
        prom_histogram_write(out, "parley_store_write_duration_seconds",
                             store_writer_latency(rt->store_writer));
    } else {
        struct prom_histogram empty;
        prom_histogram_init(&empty, NULL, 0);
        prom_histogram_write(out, "parley_store_write_duration_seconds", &empty);
    }
}

static void metrics_auth_web(struct runtime *rt, struct strbuf *out)
{
    struct throttle_stats ts;
    memset(&ts, 0, sizeof(ts));
    if (rt->throttle)
        throttle_stats(rt->throttle, &ts);
    prom_family(out, "parley_auth_throttled_total", PROM_COUNTER,
                "Authentication attempts (SIP and HTTPS) refused unchecked: password guessing.");
    prom_sample(out, "parley_auth_throttled_total", NULL, 0, ts.refused);
    prom_family(out, "parley_auth_blocks_total", PROM_COUNTER,
                "Blocks the password-guessing throttle began.");
    prom_sample(out, "parley_auth_blocks_total", NULL, 0, ts.blocks);

    uint64_t answered[6] = {0};
    if (rt->web)
        web_http_counts(rt->web, answered);
    prom_family(out, "parley_http_requests_total", PROM_COUNTER,
                "HTTPS requests the web services answered, by status class (malformed requests "
                "the I/O workers refuse are not counted).");
    for (size_t c = 1; c <= 5; c++) {
        const char *l[] = {"class", metrics_classes[c]};
        prom_sample(out, "parley_http_requests_total", l, 1, answered[c]);
    }
}

int metrics_text(struct runtime *rt, struct strbuf *out)
{
    metrics_build(rt, out);
    metrics_registrations(rt, out);
    metrics_connections(rt, out);
    metrics_sip(rt, out);
    metrics_calls(rt, out);
    metrics_relay(rt, out);
    metrics_media(rt, out);
    metrics_store(rt, out);
    metrics_auth_web(rt, out);
    return out->err ? -ENOMEM : 0;
}
