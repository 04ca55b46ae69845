/*
 * parley-bench — a SIP-over-TLS load generator on Parley's own SIP stack.
 *
 *   parley-bench --server 127.0.0.1:5061 --domain example.test --users 200 \
 *                --connections 10 --scenario message --rate 500 --duration 10
 *
 * Prints throughput, latency percentiles, failures by status and the
 * generator's own CPU use (a saturated generator is visible), as a table or
 * as one JSON object (--json). Exit status: 0 when every operation
 * succeeded, 1 when any failed or set-up failed, 2 for usage errors.
 */
#include <errno.h>
#include <event2/thread.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/relay_load.h"
#include "bench/srtp_stream.h"

int engine_on_new_session(SSL *ssl, SSL_SESSION *sess);

static void usage(FILE *f)
{
    fputs(
        "usage: parley-bench --server HOST:PORT --domain DOMAIN [options]\n"
        "\n"
        "  --scenario S          register | register-newconn | message | call | handshake | idle\n"
        "                        (default register); srtp-stream: media through an anchoring\n"
        "                        server, with options of its own (--scenario srtp-stream --help);\n"
        "                        relay: TURN ChannelData load through a relay, options of its\n"
        "                        own (--scenario relay --help)\n"
        "  --users N             users USER_TEMPLATE with i = first..first+N-1 (default 100);\n"
        "                        message/call: the first half call the second half\n"
        "  --first-user I        first i (default 0)\n"
        "  --user-template T     default \"user{i}\"\n"
        "  --password-template T default \"pw{i}\"\n"
        "  --connections N       callers' TLS connections (idle: connections to hold; default 10)\n"
        "  --callee-connections N  callees' connections (message/call; default = --connections)\n"
        "  --rate R              operations per second in all; 0 = as fast as possible (default "
        "100)\n"
        "  --duration S          seconds of load (default 10)\n"
        "  --concurrency N       operations in flight at most (default: one per caller;\n"
        "                        handshake: 32 slots)\n"
        "  --threads N           generator threads (default 1)\n"
        "  --auth fresh|reuse    fresh: every operation is challenged (401/407, then "
        "credentials);\n"
        "                        reuse: the last nonce is answered pre-emptively with nc+1\n"
        "                        (default: fresh for register*, reuse for message and call)\n"
        "  --algorithm MD5|SHA-256  digest algorithm to answer (default MD5)\n"
        "  --expires S           REGISTER Expires (default 600)\n"
        "  --body-size N         MESSAGE body bytes (default 32)\n"
        "  --timeout S           per operation (default 5)\n"
        "  --setup-timeout S     connections and callee registrations (default 60)\n"
        "  --tls 1.2|1.3         force a TLS version (default: either)\n"
        "  --cert FILE --key FILE  client certificate\n"
        "  --cafile FILE         trust these CAs for the server (default: system store)\n"
        "  --insecure            do not verify the server's certificate\n"
        "  --sni NAME            server name to send and verify (default DOMAIN)\n"
        "  --no-resumption       full handshake on every connection\n"
        "  --json                one JSON object on stdout instead of the table\n"
        "  --quiet               no progress lines on stderr\n",
        f);
}

static int parse_scenario(const char *s, enum bench_scenario *out)
{
    static const struct {
        const char *name;
        enum bench_scenario s;
    } t[] = {{"register", BENCH_REGISTER},   {"register-newconn", BENCH_REGISTER_NEWCONN},
             {"message", BENCH_MESSAGE},     {"call", BENCH_CALL},
             {"handshake", BENCH_HANDSHAKE}, {"idle", BENCH_IDLE}};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        if (strcmp(s, t[i].name) == 0) {
            *out = t[i].s;
            return 0;
        }
    }
    return -EINVAL;
}

static int parse_uint(const char *s, unsigned max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v > max || s[0] == '-')
        return -EINVAL;
    *out = (unsigned)v;
    return 0;
}

/* HOST:PORT with a numeric address or "localhost". */
static int parse_server(const char *s, struct bench_opts *o)
{
    snprintf(o->server, sizeof(o->server), "%s", s);
    if (netaddr_parse(s, &o->addr) == 0)
        return 0;
    if (strncmp(s, "localhost:", 10) == 0) {
        char tmp[64];
        snprintf(tmp, sizeof(tmp), "127.0.0.1:%s", s + 10);
        return netaddr_parse(tmp, &o->addr);
    }
    return -EINVAL;
}

enum {
    OPT_SERVER = 256,
    OPT_DOMAIN,
    OPT_USERS,
    OPT_FIRST,
    OPT_UTMPL,
    OPT_PTMPL,
    OPT_CONNS,
    OPT_CCONNS,
    OPT_SCEN,
    OPT_RATE,
    OPT_DUR,
    OPT_CONC,
    OPT_THREADS,
    OPT_AUTH,
    OPT_ALG,
    OPT_EXPIRES,
    OPT_BODY,
    OPT_TIMEOUT,
    OPT_STIMEOUT,
    OPT_TLS,
    OPT_CERT,
    OPT_KEY,
    OPT_CAFILE,
    OPT_INSECURE,
    OPT_SNI,
    OPT_NORES,
    OPT_JSON,
    OPT_QUIET,
    OPT_HELP,
};

static int parse_args(int argc, char **argv, struct bench_opts *o)
{
    static const struct option lo[] = {
        {"server", required_argument, 0, OPT_SERVER},
        {"domain", required_argument, 0, OPT_DOMAIN},
        {"users", required_argument, 0, OPT_USERS},
        {"first-user", required_argument, 0, OPT_FIRST},
        {"user-template", required_argument, 0, OPT_UTMPL},
        {"password-template", required_argument, 0, OPT_PTMPL},
        {"connections", required_argument, 0, OPT_CONNS},
        {"callee-connections", required_argument, 0, OPT_CCONNS},
        {"scenario", required_argument, 0, OPT_SCEN},
        {"rate", required_argument, 0, OPT_RATE},
        {"duration", required_argument, 0, OPT_DUR},
        {"concurrency", required_argument, 0, OPT_CONC},
        {"threads", required_argument, 0, OPT_THREADS},
        {"auth", required_argument, 0, OPT_AUTH},
        {"algorithm", required_argument, 0, OPT_ALG},
        {"expires", required_argument, 0, OPT_EXPIRES},
        {"body-size", required_argument, 0, OPT_BODY},
        {"timeout", required_argument, 0, OPT_TIMEOUT},
        {"setup-timeout", required_argument, 0, OPT_STIMEOUT},
        {"tls", required_argument, 0, OPT_TLS},
        {"cert", required_argument, 0, OPT_CERT},
        {"key", required_argument, 0, OPT_KEY},
        {"cafile", required_argument, 0, OPT_CAFILE},
        {"insecure", no_argument, 0, OPT_INSECURE},
        {"sni", required_argument, 0, OPT_SNI},
        {"no-resumption", no_argument, 0, OPT_NORES},
        {"json", no_argument, 0, OPT_JSON},
        {"quiet", no_argument, 0, OPT_QUIET},
        {"help", no_argument, 0, OPT_HELP},
        {0, 0, 0, 0},
    };
    bool have_server = false, cc_set = false, conc_set = false, sni_set = false;
    int c, bad = 0;
    o->users = 100;
    snprintf(o->user_template, sizeof(o->user_template), "user{i}");
    snprintf(o->password_template, sizeof(o->password_template), "pw{i}");
    o->connections = 10;
    o->rate = 100;
    o->duration_s = 10;
    o->timeout_s = 5;
    o->setup_timeout_s = 60;
    o->threads = 1;
    o->resumption = true;
    o->expires = 600;
    o->body_size = 32;
    o->algorithm = DIGEST_ALG_MD5;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        const char *a = optarg;
        switch (c) {
        case OPT_SERVER:
            bad |= parse_server(a, o) != 0;
            have_server = true;
            break;
        case OPT_DOMAIN:
            snprintf(o->domain, sizeof(o->domain), "%s", a);
            break;
        case OPT_USERS:
            bad |= parse_uint(a, 10000000, &o->users) != 0;
            break;
        case OPT_FIRST:
            bad |= parse_uint(a, 100000000, &o->first_user) != 0;
            break;
        case OPT_UTMPL:
            bad |=
                snprintf(o->user_template, sizeof(o->user_template), "%s", a) >= BENCH_TEMPLATE_MAX;
            break;
        case OPT_PTMPL:
            bad |= snprintf(o->password_template, sizeof(o->password_template), "%s", a) >=
                   BENCH_TEMPLATE_MAX;
            break;
        case OPT_CONNS:
            bad |= parse_uint(a, 1000000, &o->connections) != 0 || o->connections == 0;
            break;
        case OPT_CCONNS:
            bad |=
                parse_uint(a, 1000000, &o->callee_connections) != 0 || o->callee_connections == 0;
            cc_set = true;
            break;
        case OPT_SCEN:
            bad |= parse_scenario(a, &o->scenario) != 0;
            break;
        case OPT_RATE:
            bad |= bench_parse_double(a, 0, 1e7, &o->rate) != 0;
            break;
        case OPT_DUR:
            bad |= bench_parse_double(a, 0.1, 86400, &o->duration_s) != 0;
            break;
        case OPT_CONC:
            bad |= parse_uint(a, 10000000, &o->concurrency) != 0 || o->concurrency == 0;
            conc_set = true;
            break;
        case OPT_THREADS:
            bad |= parse_uint(a, 64, &o->threads) != 0 || o->threads == 0;
            break;
        case OPT_AUTH:
            if (strcmp(a, "fresh") == 0)
                o->auth = BENCH_AUTH_FRESH;
            else if (strcmp(a, "reuse") == 0)
                o->auth = BENCH_AUTH_REUSE;
            else
                bad = 1;
            o->auth_set = true;
            break;
        case OPT_ALG:
            bad |= digest_alg_parse(strview_cstr(a), &o->algorithm) != 0;
            break;
        case OPT_EXPIRES:
            bad |= parse_uint(a, 86400 * 7, &o->expires) != 0;
            break;
        case OPT_BODY:
            bad |= parse_uint(a, 60000, &o->body_size) != 0;
            break;
        case OPT_TIMEOUT:
            bad |= bench_parse_double(a, 0.01, 3600, &o->timeout_s) != 0;
            break;
        case OPT_STIMEOUT:
            bad |= bench_parse_double(a, 0.1, 3600, &o->setup_timeout_s) != 0;
            break;
        case OPT_TLS:
            if (strcmp(a, "1.2") == 0)
                o->tls_version = 12;
            else if (strcmp(a, "1.3") == 0)
                o->tls_version = 13;
            else
                bad = 1;
            break;
        case OPT_CERT:
            o->cert = a;
            break;
        case OPT_KEY:
            o->key = a;
            break;
        case OPT_CAFILE:
            o->cafile = a;
            break;
        case OPT_INSECURE:
            o->insecure = true;
            break;
        case OPT_SNI:
            snprintf(o->sni, sizeof(o->sni), "%s", a);
            sni_set = true;
            break;
        case OPT_NORES:
            o->resumption = false;
            break;
        case OPT_JSON:
            o->json = true;
            break;
        case OPT_QUIET:
            o->quiet = true;
            break;
        case OPT_HELP:
        case 'h':
            usage(stdout);
            exit(0);
        default:
            return -EINVAL;
        }
        if (bad) {
            fprintf(stderr, "parley-bench: invalid value for --%s: %s\n", lo[c - OPT_SERVER].name,
                    a ? a : "");
            return -EINVAL;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "parley-bench: unexpected argument: %s\n", argv[optind]);
        return -EINVAL;
    }
    if (!have_server || !o->domain[0]) {
        fprintf(stderr, "parley-bench: --server and --domain are required\n");
        return -EINVAL;
    }
    if (!cc_set)
        o->callee_connections = o->connections;
    bool pairs = o->scenario == BENCH_MESSAGE || o->scenario == BENCH_CALL;
    if (pairs && o->users < 2) {
        fprintf(stderr, "parley-bench: message and call need --users 2 or more\n");
        return -EINVAL;
    }
    if (o->scenario == BENCH_HANDSHAKE && !conc_set)
        o->concurrency = 32;
    else if (!conc_set)
        o->concurrency = pairs ? o->users / 2 : o->users;
    if (!o->auth_set)
        o->auth = pairs ? BENCH_AUTH_REUSE : BENCH_AUTH_FRESH;
    if (!sni_set)
        snprintf(o->sni, sizeof(o->sni), "%s", o->domain);
    if ((o->cert == NULL) != (o->key == NULL)) {
        fprintf(stderr, "parley-bench: --cert and --key go together\n");
        return -EINVAL;
    }
    unsigned units = o->scenario == BENCH_IDLE        ? o->connections
                     : o->scenario == BENCH_HANDSHAKE ? o->concurrency
                     : pairs                          ? o->users / 2
                                                      : o->users;
    if (o->threads > units)
        o->threads = units ? units : 1;
    return 0;
}

static SSL_CTX *make_ssl_ctx(const struct bench_opts *o)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return NULL;
    int minv = o->tls_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION;
    int maxv = o->tls_version == 12 ? TLS1_2_VERSION : TLS1_3_VERSION;
    SSL_CTX_set_min_proto_version(ctx, minv);
    SSL_CTX_set_max_proto_version(ctx, maxv);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION);
    /* AES-128-GCM first, as Parley's defaults: whichever server honours the
     * client's order negotiates the same suite, so comparisons are fair */
    SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
                                  "TLS_CHACHA20_POLY1305_SHA256");
    SSL_CTX_set_cipher_list(ctx, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                 "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                 "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305");
    if (o->resumption) {
        SSL_CTX_set_session_cache_mode(ctx,
                                       SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ctx, engine_on_new_session);
    } else {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    }
    if (o->insecure) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    } else {
        if (o->cafile ? SSL_CTX_load_verify_file(ctx, o->cafile) != 1
                      : SSL_CTX_set_default_verify_paths(ctx) != 1) {
            fprintf(stderr, "parley-bench: cannot load CA file %s\n",
                    o->cafile ? o->cafile : "(system)");
            goto fail;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    if (o->cert) {
        if (SSL_CTX_use_certificate_chain_file(ctx, o->cert) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx, o->key, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx) != 1) {
            fprintf(stderr, "parley-bench: cannot use client certificate %s / key %s\n", o->cert,
                    o->key);
            goto fail;
        }
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile, in milliseconds. */
static double pct_ms(const struct bench_stats *s, double p)
{
    if (!s->nlat)
        return NAN;
    size_t rank = (size_t)ceil(p / 100.0 * (double)s->nlat);
    if (rank < 1)
        rank = 1;
    return s->lat_us[rank - 1] / 1000.0;
}

static double tv_s(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

struct result {
    double elapsed_s; /* measured window plus drain */
    double user_s, sys_s;
    double setup_s;
    bool aborted;
};

static const char *tls_name(int v)
{
    return v == 12 ? "1.2" : v == 13 ? "1.3" : "1.2-1.3";
}

static void print_json(const struct bench_opts *o, const struct bench_stats *s,
                       const struct result *r, int exit_code)
{
    json_t *j = json_object();
    json_object_set_new(j, "scenario", json_string(bench_scenario_name(o->scenario)));
    json_object_set_new(j, "server", json_string(o->server));
    json_object_set_new(j, "domain", json_string(o->domain));
    json_object_set_new(j, "tls", json_string(tls_name(o->tls_version)));
    json_object_set_new(j, "resumption", json_boolean(o->resumption));
    json_object_set_new(j, "client_certificate", json_boolean(o->cert != NULL));
    json_object_set_new(j, "auth", json_string(o->auth == BENCH_AUTH_FRESH ? "fresh" : "reuse"));
    json_object_set_new(j, "users", json_integer(o->users));
    json_object_set_new(j, "connections", json_integer(o->connections));
    json_object_set_new(j, "threads", json_integer(o->threads));
    json_object_set_new(j, "rate_offered", json_real(o->rate));
    json_object_set_new(j, "duration_s", json_real(o->duration_s));
    json_object_set_new(j, "elapsed_s", json_real(r->elapsed_s));
    json_t *ops = json_object();
    json_object_set_new(ops, "started", json_integer((json_int_t)s->started));
    json_object_set_new(ops, "ok", json_integer((json_int_t)s->ok));
    json_object_set_new(ops, "failed", json_integer((json_int_t)s->failed));
    json_object_set_new(ops, "timeouts", json_integer((json_int_t)s->timeouts));
    json_object_set_new(ops, "connection_errors", json_integer((json_int_t)s->conn_errors));
    json_object_set_new(j, "operations", ops);
    double thr = o->duration_s > 0 ? (double)s->ok / o->duration_s : 0;
    json_object_set_new(j, "throughput_per_s", json_real(thr));
    double fr = s->started ? (double)s->failed / (double)s->started : 0;
    json_object_set_new(j, "failure_ratio", json_real(fr));
    if (s->nlat) {
        json_t *l = json_object();
        json_object_set_new(l, "p50", json_real(pct_ms(s, 50)));
        json_object_set_new(l, "p90", json_real(pct_ms(s, 90)));
        json_object_set_new(l, "p99", json_real(pct_ms(s, 99)));
        json_object_set_new(l, "max", json_real(s->lat_us[s->nlat - 1] / 1000.0));
        double sum = 0;
        for (size_t i = 0; i < s->nlat; i++)
            sum += s->lat_us[i];
        json_object_set_new(l, "mean", json_real(sum / (double)s->nlat / 1000.0));
        json_object_set_new(j, "latency_ms", l);
    } else {
        json_object_set_new(j, "latency_ms", json_null());
    }
    json_t *bys = json_object();
    for (int i = 0; i < 700; i++) {
        if (s->by_status[i]) {
            char k[8];
            snprintf(k, sizeof(k), "%d", i);
            json_object_set_new(bys, k, json_integer((json_int_t)s->by_status[i]));
        }
    }
    json_object_set_new(j, "failures_by_status", bys);
    json_object_set_new(j, "connection_error",
                        s->conn_error[0] ? json_string(s->conn_error) : json_null());
    json_object_set_new(j, "callee_requests", json_integer((json_int_t)s->callee_requests));
    json_object_set_new(j, "tls_negotiated",
                        s->tls_negotiated[0] ? json_string(s->tls_negotiated) : json_null());
    json_object_set_new(j, "handshakes", json_integer((json_int_t)s->handshakes));
    json_object_set_new(j, "resumed", json_integer((json_int_t)s->resumed));
    json_object_set_new(j, "late_starts", json_integer((json_int_t)s->late_starts));
    json_object_set_new(j, "max_backlog", json_integer((json_int_t)s->max_backlog));
    json_t *setup = json_object();
    json_object_set_new(setup, "connections", json_integer((json_int_t)s->setup_conns));
    json_object_set_new(setup, "failures", json_integer((json_int_t)s->setup_failures));
    json_object_set_new(setup, "error",
                        s->setup_error[0] ? json_string(s->setup_error) : json_null());
    json_object_set_new(setup, "seconds", json_real(r->setup_s));
    json_object_set_new(setup, "aborted", json_boolean(r->aborted));
    json_object_set_new(j, "setup", setup);
    json_t *cpu = json_object();
    double pc = r->elapsed_s > 0 ? 100.0 * (r->user_s + r->sys_s) / r->elapsed_s : 0;
    json_object_set_new(cpu, "user_s", json_real(r->user_s));
    json_object_set_new(cpu, "sys_s", json_real(r->sys_s));
    json_object_set_new(cpu, "percent_of_one_core", json_real(pc));
    json_object_set_new(cpu, "saturated", json_boolean(pc > 90.0 * o->threads));
    json_object_set_new(j, "generator_cpu", cpu);
    json_object_set_new(j, "exit_code", json_integer(exit_code));
    char *txt = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    if (txt)
        printf("%s\n", txt);
    free(txt);
    json_decref(j);
}

static void print_table(const struct bench_opts *o, const struct bench_stats *s,
                        const struct result *r)
{
    double pc = r->elapsed_s > 0 ? 100.0 * (r->user_s + r->sys_s) / r->elapsed_s : 0;
    printf("parley-bench  scenario=%s  server=%s  tls=%s%s%s  auth=%s\n",
           bench_scenario_name(o->scenario), o->server, tls_name(o->tls_version),
           o->resumption ? "" : " (no resumption)", o->cert ? " (client cert)" : "",
           o->auth == BENCH_AUTH_FRESH ? "fresh" : "reuse");
    printf("  users %u  connections %u  threads %u  offered %s  duration %.1f s\n", o->users,
           o->connections, o->threads, o->rate > 0 ? "" : "max", o->duration_s);
    if (o->rate > 0)
        printf("  offered rate      %.1f /s\n", o->rate);
    if (o->scenario == BENCH_IDLE) {
        printf("  connections held  %llu  (set-up failures %llu, %.1f s to set up)\n",
               (unsigned long long)s->setup_conns, (unsigned long long)s->setup_failures,
               r->setup_s);
    }
    printf("  operations        %llu started, %llu ok, %llu failed (%.3f %%)\n",
           (unsigned long long)s->started, (unsigned long long)s->ok, (unsigned long long)s->failed,
           s->started ? 100.0 * (double)s->failed / (double)s->started : 0.0);
    printf("  throughput        %.1f /s\n", (double)s->ok / o->duration_s);
    if (s->nlat)
        printf("  latency ms        p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n", pct_ms(s, 50),
               pct_ms(s, 90), pct_ms(s, 99), s->lat_us[s->nlat - 1] / 1000.0);
    if (s->failed) {
        printf("  failures          timeouts %llu  connection %llu",
               (unsigned long long)s->timeouts, (unsigned long long)s->conn_errors);
        for (int i = 0; i < 700; i++)
            if (s->by_status[i])
                printf("  %d: %llu", i, (unsigned long long)s->by_status[i]);
        printf("\n");
    }
    if (s->conn_error[0])
        printf("  connection error  %s\n", s->conn_error);
    if (s->setup_error[0])
        printf("  set-up error      %s\n", s->setup_error);
    printf("  TLS handshakes    %llu (%llu resumed)  %s\n", (unsigned long long)s->handshakes,
           (unsigned long long)s->resumed, s->tls_negotiated);
    if (o->scenario == BENCH_MESSAGE || o->scenario == BENCH_CALL)
        printf("  callee requests   %llu\n", (unsigned long long)s->callee_requests);
    if (o->rate > 0)
        printf("  late starts       %llu  (max backlog %llu)\n", (unsigned long long)s->late_starts,
               (unsigned long long)s->max_backlog);
    printf("  generator CPU     %.1f %% of one core (user %.2f s, sys %.2f s)%s\n", pc, r->user_s,
           r->sys_s,
           pc > 90.0 * o->threads ? "  ** SATURATED: the figures measure the generator **" : "");
}

int main(int argc, char **argv)
{
    struct bench_opts o = {0};
    struct bench_shared sh = {0};
    struct engine *engines[64] = {0};
    pthread_t tids[64];
    struct bench_stats total = {0};
    struct result r = {0};
    int rc = 1;

    /* media streams share nothing with the SIP scenarios but the binary */
    if (srtp_stream_selected(argc, argv))
        return srtp_stream_main(argc, argv);
    if (relay_load_selected(argc, argv))
        return relay_load_main(argc, argv);
    if (parse_args(argc, argv, &o) != 0) {
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    bench_raise_nofile();
    evthread_use_pthreads();
    if (digest_init(NULL, NULL) != 0 || !digest_alg_available(o.algorithm)) {
        fprintf(stderr, "parley-bench: digest algorithm %s unavailable\n",
                digest_alg_name(o.algorithm));
        return 1;
    }
    sh.o = &o;
    sh.ssl_ctx = make_ssl_ctx(&o);
    if (!sh.ssl_ctx)
        return 1;
    for (unsigned i = 0; i < o.threads; i++) {
        engines[i] = engine_new(&sh, i);
        if (!engines[i]) {
            fprintf(stderr, "parley-bench: out of memory\n");
            return 1;
        }
    }
    pthread_barrier_init(&sh.barrier, NULL, o.threads + 1);
    uint64_t t_setup = bench_now_ns();
    for (unsigned i = 0; i < o.threads; i++)
        pthread_create(&tids[i], NULL, engine_thread, engines[i]);

    pthread_barrier_wait(&sh.barrier); /* set-up done */
    r.setup_s = (double)(bench_now_ns() - t_setup) / 1e9;
    r.aborted = sh.abort_run != 0;
    if (!o.quiet) {
        if (r.aborted)
            fprintf(stderr, "parley-bench: set-up failed; not running\n");
        else
            fprintf(stderr, "parley-bench: set-up done in %.1f s; running %s for %.1f s\n",
                    r.setup_s, bench_scenario_name(o.scenario), o.duration_s);
    }
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    sh.t0_ns = bench_now_ns();
    pthread_barrier_wait(&sh.barrier); /* go */
    for (unsigned i = 0; i < o.threads; i++)
        pthread_join(tids[i], NULL);
    uint64_t t1 = bench_now_ns();
    getrusage(RUSAGE_SELF, &ru1);
    r.elapsed_s = r.aborted ? 0 : (double)(t1 - sh.t0_ns) / 1e9;
    r.user_s = tv_s(ru1.ru_utime) - tv_s(ru0.ru_utime);
    r.sys_s = tv_s(ru1.ru_stime) - tv_s(ru0.ru_stime);

    for (unsigned i = 0; i < o.threads; i++)
        bench_stats_merge(&total, engine_stats(engines[i]));
    if (o.scenario == BENCH_IDLE) {
        /* the operations are the connections set up and held */
        total.started = o.connections;
        total.ok = total.setup_conns;
        total.failed = total.started - total.ok;
        total.conn_errors = total.failed;
    }
    if (total.nlat)
        qsort(total.lat_us, total.nlat, sizeof(*total.lat_us), cmp_u32);

    rc = (r.aborted || total.failed || (total.started == 0 && o.scenario != BENCH_IDLE)) ? 1 : 0;
    if (o.json)
        print_json(&o, &total, &r, rc);
    else
        print_table(&o, &total, &r);

    for (unsigned i = 0; i < o.threads; i++)
        engine_free(engines[i]);
    pthread_barrier_destroy(&sh.barrier);
    bench_stats_free(&total);
    SSL_CTX_free(sh.ssl_ctx);
    digest_cleanup();
    return rc;
}
