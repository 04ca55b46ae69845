/*
 * bench — parley-bench, a SIP-over-TLS load generator built on Parley's own
 * SIP stack (sip/msg parser, sip/build, crypto/digest).
 *
 * The generator is one or a few engines (one per --threads), each owning an
 * event base, a share of the connections and a share of the users. An
 * engine plays both sides: callers that start operations (REGISTER,
 * MESSAGE, INVITE-200-ACK-BYE, TLS handshakes) at a fixed offered rate or
 * as fast as possible, and callees registered on their own connections
 * that answer what the server forwards to them. Engines share nothing
 * while they run; main() merges their statistics at the end.
 *
 * Not part of the server: nothing here is linked into parleyd.
 */
#ifndef PARLEY_BENCH_BENCH_H
#define PARLEY_BENCH_BENCH_H

#include <openssl/ssl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/netaddr.h"
#include "crypto/digest.h"

enum bench_scenario {
    BENCH_REGISTER =
        0, /* REGISTER (401, REGISTER with credentials, 200) on long-lived connections */
    BENCH_REGISTER_NEWCONN, /* the same on a new TLS connection per registration */
    BENCH_MESSAGE,          /* MESSAGE caller -> callee (407, retry, forwarded, 200) */
    BENCH_CALL,             /* INVITE-200-ACK, then BYE-200 */
    BENCH_HANDSHAKE,        /* a full TLS handshake, then close */
    BENCH_IDLE,             /* open --connections, one OPTIONS each, hold them for --duration */
};

enum bench_auth_mode {
    BENCH_AUTH_FRESH = 0, /* every operation starts without credentials and is challenged */
    BENCH_AUTH_REUSE,     /* the last challenge is answered pre-emptively (nc + 1) */
};

#define BENCH_TEMPLATE_MAX 128

struct bench_opts {
    char server[300]; /* HOST:PORT as given */
    struct netaddr addr;
    char domain[256];
    char sni[256]; /* server name for SNI; empty: none */
    unsigned users;
    unsigned first_user;                        /* users are user<first>..user<first+users-1> */
    char user_template[BENCH_TEMPLATE_MAX];     /* "user{i}" */
    char password_template[BENCH_TEMPLATE_MAX]; /* "pw{i}" */
    unsigned connections; /* callers' connections (idle: the connections to hold) */
    unsigned callee_connections;
    enum bench_scenario scenario;
    double rate; /* operations per second in all; 0: as fast as possible */
    double duration_s;
    double timeout_s; /* per operation (and per connection set-up) */
    double setup_timeout_s;
    unsigned concurrency; /* operations in flight at most (0: one per caller) */
    unsigned threads;
    int tls_version; /* 0 (any of 1.2/1.3), 12 or 13 */
    const char *cert, *key, *cafile;
    bool insecure;
    bool resumption;
    bool json;
    bool quiet;
    enum bench_auth_mode auth;
    bool auth_set; /* --auth given (else chosen by scenario) */
    enum digest_alg algorithm;
    unsigned expires;
    unsigned body_size; /* MESSAGE body bytes */
};

/* Statistics of one engine; merged by bench_stats_merge(). */
struct bench_stats {
    uint64_t started;
    uint64_t ok;
    uint64_t failed;
    uint64_t timeouts;
    uint64_t conn_errors;     /* operations lost to a connection that failed or closed */
    uint64_t late_starts;     /* started more than 10 ms after their scheduled time */
    uint64_t max_backlog;     /* most operations due but not startable (no free user) */
    uint64_t by_status[700];  /* failed operations by final status */
    uint64_t callee_requests; /* requests the callees received and answered */
    uint64_t handshakes;      /* TLS handshakes completed (set-up included) */
    uint64_t resumed;         /* ... of which resumed a session */
    uint64_t setup_conns;     /* connections established during set-up */
    uint64_t setup_failures;
    char conn_error[160];    /* the first connection error seen */
    char setup_error[160];   /* why set-up failed */
    char tls_negotiated[96]; /* version and suite of the first connection */
    uint32_t *lat_us;        /* latency of each successful operation */
    size_t nlat, caplat;
};

struct engine;

/* Shared by all engines; read-only once they run, except as noted. */
struct bench_shared {
    const struct bench_opts *o;
    SSL_CTX *ssl_ctx;
    pthread_barrier_t barrier; /* set-up done / start */
    uint64_t t0_ns;            /* start of the measured window, set by main */
    volatile int abort_run;    /* a set-up failed somewhere: skip the run */
};

/* engine.c */
struct engine *engine_new(struct bench_shared *sh, unsigned index);
/* The thread body: set-up, barrier, barrier, run, drain. */
void *engine_thread(void *engine);
struct bench_stats *engine_stats(struct engine *e);
void engine_free(struct engine *e);

/* flows.c: what goes on the wire. */
struct buser;
struct bconn;
uint64_t bench_now_ns(void);
/* A number in [min, max], the whole of s (an option's value). Returns 0
 * or -EINVAL. */
int bench_parse_double(const char *s, double min, double max, double *out);
/* The soft limit on open files raised to the hard one: a generator's
 * connections and sockets go past the usual 1024. */
void bench_raise_nofile(void);
/* "user{i}" with {i} replaced by i. Returns 0 or -ENOSPC. */
int bench_expand(const char *tmpl, unsigned i, char *out, size_t cap);
void bench_stats_add_latency(struct bench_stats *s, uint64_t ns);
void bench_stats_merge(struct bench_stats *into, const struct bench_stats *from);
void bench_stats_free(struct bench_stats *s);
const char *bench_scenario_name(enum bench_scenario s);

#endif
