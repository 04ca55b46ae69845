/*
 * web — Parley's HTTPS services, on the core thread.
 *
 * The I/O workers parse HTTP (http/transport) and post each request to the
 * core; web_handle() answers it there, beside the SIP core, so that the
 * same store handle and the same password-guessing throttle serve SIP and
 * HTTP logins alike (`parleyctl user unblock` lifts both). What it serves:
 *
 *   POST /auth/ticket                 a web ticket (JWT, ES256) for Basic or
 *                                     Digest credentials of a Parley user
 *   /dav/...                          the address book over CardDAV (read-only):
 *                                     /dav/addressbooks/global/ (web_dav.c)
 *   GET /groups/NAME/members          a distribution group, expanded (JSON)
 *   GET /turn/credentials             relay credentials, TURN REST shape
 *   /content/MEETING/[NAME]           a meeting's content, encrypted at rest
 *
 * Every answer carries HSTS and nosniff (http/response). Each request is
 * logged as one `event=http.request` line: method, path (never the query),
 * status, bytes, duration, user — never a credential.
 */
#ifndef PARLEY_WEB_WEB_H
#define PARLEY_WEB_WEB_H

#include <jansson.h>
#include <openssl/types.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/netaddr.h"
#include "core/strbuf.h"
#include "http/request.h"

struct clock;
struct store;
struct throttle;
struct auth;

/* What the daemon's configuration says (https.*, and what the services
 * borrow from other sections). Strings are copied. */
struct web_config {
    const char *domain;        /* server.domain: tickets are bound to it */
    const char *realm;         /* the digest realm (the domain) */
    bool allow_md5;            /* auth.algorithms lists MD5 (for Digest and Basic's HA1) */
    bool allow_sha256;         /* ... SHA-256 */
    int64_t ticket_lifetime_s; /* https.ticket_lifetime */
    size_t max_body_size;      /* https.max_body_size: requests other than content uploads */
    size_t content_max_file;   /* https.content_max_file */
    uint64_t content_quota_meeting;
    uint64_t content_quota_total;
    /* https.metrics_networks: clients there read /metrics without credentials */
    const struct cidr *metrics_networks;
    size_t nmetrics_networks;
};

/* The setting (store) holding the SHA-256 (hex) of the metrics token, and
 * the token's form: the prefix, then 43 base64url characters (256 bits). */
#define WEB_METRICS_TOKEN_SETTING "https.metrics_token_sha256"
#define WEB_METRICS_TOKEN_PREFIX  "pmt_"

/* Relay credentials for a user (the daemon issues them as `parleyctl relay
 * credentials` does), with the relay's turn: and turns: URIs. */
struct web_relay_grant {
    char username[128];
    char password[64];
    int64_t ttl_s;
    char uris[4][160];
    size_t nuris;
};

struct web_env {
    struct store *store;       /* the core thread's handle */
    struct throttle *throttle; /* failed logins, shared with SIP digest */
    struct auth *auth;         /* SIP's digest checker: nonces, nc replay, algorithms */
    struct clock *clock;
    const char *state_dir;
    OSSL_LIB_CTX *libctx; /* NULL: the default context */
    /* 0, -ENOENT (no relay here) or another negative errno */
    int (*relay_credentials)(void *arg, const char *user, struct web_relay_grant *out);
    /* Appends the metrics (Prometheus text format) to out: 0 or a negative
     * errno; NULL: /metrics answers 404. */
    int (*metrics)(void *arg, struct strbuf *out);
    void *arg;
};

/* Who is asking, as the connection says. */
struct web_peer {
    uint64_t conn;
    struct netaddr addr;
};

struct web;

/* Loads (or creates) the ticket keys and the content master key under the
 * state directory. Returns 0, or a negative errno with a reason in err. */
int web_new(const struct web_env *env, const struct web_config *cfg, struct web **out, char *err,
            size_t errlen);
void web_free(struct web *w);
/* Applies a reloaded configuration and picks up rotated ticket keys
 * (`parleyctl https rotate-key`). 0, or a negative errno with a reason
 * (the previous configuration and keys stay). */
int web_reload(struct web *w, const struct web_config *cfg, char *err, size_t errlen);

/* Answers one request: the whole response is appended to out, and *close
 * is set when the connection must close after it. */
void web_handle(struct web *w, const struct web_peer *peer, const struct http_request *req,
                struct strbuf *out, bool *close);

/* The most body bytes a request with this head may send: large for a
 * content upload, https.max_body_size for anything else. Called on the I/O
 * workers: reads only what web_reload publishes atomically. */
size_t web_body_limit(const struct http_request *head, void *arg);

/* Counters and keys in force, for parleyctl status. */
json_t *web_status(struct web *w);

/* Requests answered by the web services, by status class: out[1] the 1xx
 * ... out[5] the 5xx (out[0] is 0). Malformed requests the workers answer
 * themselves (400, 408, 413, 431) are not among them. */
void web_http_counts(const struct web *w, uint64_t out[6]);

#endif
