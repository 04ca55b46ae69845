/*
 * proxy/env — what the proxy needs from the daemon (struct proxy_env),
 * its configuration, and the records it hands back (a finished call, a call
 * in progress, relay credentials, figures for status). Types only: the
 * public header proxy/proxy.h and the proxy's own files share them, so no
 * file of src/proxy depends on the entry (proxy.c) for a type.
 */
#ifndef PARLEY_PROXY_ENV_H
#define PARLEY_PROXY_ENV_H

#include <stdbool.h>
#include <stdint.h>

#include "core/dns.h"
#include "core/strbuf.h"
#include "dialplan/dialplan.h"
#include "net/conn.h"
#include "registrar/auth.h"

struct anchor;

/* A finished call, for the call log. */
struct proxy_call_record {
    const char *call_id;
    const char *caller; /* user@domain */
    const char *callee;
    int64_t started;  /* wall clock, seconds */
    int64_t answered; /* 0 when never answered */
    int64_t ended;
    const char *reason; /* "BYE from caller", "486 Busy Here", ... */
    const char *media;  /* per media section: "audio SRTP AES_CM_128_HMAC_SHA1_80"; or NULL */
    const char *legs;   /* anchored media's figures per leg (JSON), or NULL */
};

/* What the credential service hands out (Lync's MRAS shape). */
struct proxy_relay_grant {
    char username[160];
    char password[64];
    int64_t lifetime_s;
    char host[64];
    uint16_t udp_port;
    uint16_t tcp_port;
};

struct proxy_env {
    void *arg;
    /* Facts about a connection; NULL once it is gone. */
    const struct conn_info *(*conn_info)(void *arg, uint64_t conn);
    /* Sends bytes on a connection (takes the contents). */
    void (*send)(void *arg, uint64_t conn, struct strbuf *data);
    /* Does the user exist in the store? */
    bool (*user_exists)(void *arg, const char *user);
    /* HA1 lookup for digest authentication. */
    auth_lookup_fn lookup;
    /* A device registered on conn: keep the connection open for this long
     * even when idle. */
    void (*keep_alive)(void *arg, uint64_t conn, unsigned seconds);
    /* A call ended (attempt, answered or not). */
    void (*call_ended)(void *arg, const struct proxy_call_record *rec);
    /* The user whose line number is `number` (E.164) into user: 0,
     * -ENOENT, or another negative errno. NULL: numbers are not served. */
    int (*number_owner)(void *arg, const char *number, char *user, size_t cap);
    /* A user's right to call out through trunks: 0 or a negative errno
     * (then *out is left as it was: none). */
    int (*user_outbound)(void *arg, const char *user, enum dialplan_outbound *out);
    /* A user's line number (E.164) into out, "" when none: 0 or a
     * negative errno. May be NULL. */
    int (*user_number)(void *arg, const char *user, char *out, size_t cap);
    /* Opens a TLS connection to a partner server (bound to our listen
     * address); returns its id, or 0. Its OPEN and CLOSE come back through
     * proxy_conn_opened / proxy_conn_closed. */
    uint64_t (*connect)(void *arg, const struct netaddr *addr, const char *sni,
                        const char *verify_host);
    /* Opens a plain TCP connection to a gateway of a TCP trunk (bound to
     * our listen address); its id or 0. NULL: TCP trunks cannot be used. */
    uint64_t (*connect_tcp)(void *arg, const struct netaddr *addr);
    /* Was conn accepted on sip.trunk_tcp_listen? NULL: never. */
    bool (*conn_on_trunk_listener)(void *arg, uint64_t conn);
    /* Was conn accepted on sip.mtls_listen (server-to-server)? NULL: never. */
    bool (*conn_on_mtls_listener)(void *arg, uint64_t conn);
    /* Closes a connection (a partner that failed its identity check). */
    void (*disconnect)(void *arg, uint64_t conn, const char *reason);
    /* A request on conn carried a digest that verified: the connection is
     * someone's (a flood's newcomer may not push it out). NULL: ignored. */
    void (*conn_authenticated)(void *arg, uint64_t conn);
    struct dns_resolver *dns;
    /* Relay credentials for user (issued only to authenticated users over
     * TLS): fills username/password/lifetime and where the relay is.
     * Returns 0, or a negative errno (no relay on this node: -ENOENT). */
    int (*relay_credentials)(void *arg, const char *user, int64_t lifetime_s,
                             struct proxy_relay_grant *out);
    /* Addresses of our listeners (Record-Route, Via, "is this URI us?"). */
    const struct netaddr *listeners;
    size_t nlisteners;
    /* May a request on conn become a transaction that outlives its
     * dispatch (forwarded, waiting for a partner)? NULL when it may, else
     * the name of the bound that is full ("limits.transactions_total").
     * NULL function: no bounds. */
    const char *(*txn_admit)(void *arg, uint64_t conn);
    /* A transaction on conn began (+1) or stopped (-1) outliving its
     * dispatch. May be NULL. */
    void (*txn_held)(void *arg, uint64_t conn, int delta);
    /* Failed password checks, counted and throttled; may be NULL. */
    struct throttle *throttle;
    /* How Parley names itself toward conn, as a URI's host and port
     * ("sip.example.test:5061"): the advertised name (sip.advertised_name,
     * a name its certificate carries, so a client that opens a connection
     * to it can check the certificate) and the port of the listener conn
     * came in on, or of the server-to-server listener for a connection
     * Parley opened. NULL function: the connection's local address. */
    void (*self_address)(void *arg, uint64_t conn, char *out, size_t cap);
    /* The media engine, when this node runs one (media.anchor = always
     * anchors calls through it); NULL otherwise. */
    struct anchor *anchor;
};

/* Figures for status. */
struct proxy_stats {
    size_t server_transactions; /* alive */
    size_t client_transactions; /* alive */
    size_t held_transactions;   /* outlived their dispatch: what the bounds count */
    uint64_t stateless_answers; /* requests answered and forgotten at once */
    uint64_t acks_absorbed;     /* ACKs of those answers, recognised by their tag */
    uint64_t acks_dropped;      /* ACKs that matched nothing */
    uint64_t overload_refused;  /* 503s because a transaction bound was full */
    uint64_t throttled;         /* authentications refused unchecked (guessing) */
    size_t dialogs;             /* dialogs Parley routed and still knows */
};

struct proxy_config {
    const char *domain;
    const char *self_name;   /* the advertised name: a URI with it and a listener port is us */
    size_t max_im_body;      /* MESSAGE bodies larger than this get 413 */
    const char *media_level; /* media.encryption_level */
    const char *const *media_suites; /* media.srtp_suites */
    size_t media_nsuites;
    size_t max_transactions_per_user; /* requests in progress per sender; 0: no bound */
    size_t max_trunk_calls_per_user;  /* calls through trunks per user at once; 0: no bound */
    bool anchor_media;                /* media.anchor = always */
};

/* A call in progress, for parleyctl calls. */
struct proxy_call_info {
    const char *call_id;
    const char *caller; /* user@domain */
    const char *callee;
    int64_t started;   /* wall clock, seconds */
    int64_t answered;  /* 0 while ringing */
    const char *state; /* "ringing", "answered", "on hold" */
    const char *media; /* what each media section negotiated so far; "" before an answer */
};
#endif
