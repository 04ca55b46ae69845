/*
 * proxy/trunk — the trunks to PSTN gateways, as the SIP core uses them:
 * the table (from the store, replaced whole on reload), the connection
 * Parley opens to each gateway (TCP, or mutual TLS whose certificate must
 * chain to a trusted CA and name the gateway, RFC 5922), which trunk a
 * connection belongs to (a gateway's own connections: over TLS by its
 * certificate, over TCP by its address on sip.trunk_tcp_listen), and how
 * long a trunk is left out after a 503 with Retry-After.
 *
 * The trunk module never calls the calls that wait for a connection: the
 * entry (proxy.c) hears of connections and tells the back-to-back user
 * agent (proxy/b2bua) which trunk became ready or failed.
 */
#ifndef PARLEY_PROXY_TRUNK_H
#define PARLEY_PROXY_TRUNK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/netaddr.h"
#include "net/conn.h"

struct proxy;

enum proxy_trunk_srtp {
    PROXY_TRUNK_SRTP_REQUIRED,      /* SRTP offered and accepted only */
    PROXY_TRUNK_SRTP_OPTIONAL,      /* RTP/AVP with a=crypto (RFC 8643): what the gateway takes */
    PROXY_TRUNK_SRTP_NOT_SUPPORTED, /* plain RTP */
};

enum proxy_trunk_state {
    PROXY_TRUNK_IDLE,       /* no connection of Parley's (none needed yet) */
    PROXY_TRUNK_CONNECTING, /* resolving or handshaking */
    PROXY_TRUNK_UP,
    PROXY_TRUNK_FAILED, /* the last attempt failed: last_error says why */
};

/* A trunk as the store keeps it (strings borrowed for the call). */
struct proxy_trunk_def {
    const char *name;
    const char *gateway;   /* HOST:PORT */
    const char *transport; /* "tls" or "tcp" */
    const char *srtp_mode; /* "required", "optional", "not_supported" */
    const char *address;   /* the gateway's source address (TCP); "" for TLS */
};

struct proxy_trunk;

/* Replaces the table: trunks that keep their name, gateway and transport
 * keep their connection; the others' connections are closed. 0, or
 * -EINVAL with err naming the trunk (the table in force is unchanged). */
int proxy_trunk_set_all(struct proxy *p, const struct proxy_trunk_def *defs, size_t n, char *err,
                        size_t errlen);
void proxy_trunk_free_all(struct proxy *p);

struct proxy_trunk *proxy_trunk_find(struct proxy *p, const char *name);
const char *proxy_trunk_name(const struct proxy_trunk *t);
bool proxy_trunk_tls(const struct proxy_trunk *t);
enum proxy_trunk_srtp proxy_trunk_srtp(const struct proxy_trunk *t);
const char *proxy_trunk_srtp_name(enum proxy_trunk_srtp m);
/* "gw.example.net:5068" */
const char *proxy_trunk_gateway(const struct proxy_trunk *t);

/* A connection to the gateway for a request: 0 with *conn when one is up;
 * -EINPROGRESS when one is being made (the entry tells the callers with
 * proxy_trunk_conn_opened / _closed); another negative errno when none can
 * be made (no resolver, no workers). */
int proxy_trunk_connect(struct proxy *p, struct proxy_trunk *t, uint64_t *conn);

/* Is the trunk left out of calls for now (a 503 with Retry-After)? */
bool proxy_trunk_skipped(struct proxy *p, const struct proxy_trunk *t);
/* Leaves the trunk out for seconds (0: no change). */
void proxy_trunk_skip(struct proxy *p, struct proxy_trunk *t, long seconds);

/* The trunk a connection belongs to, or NULL: Parley's own connection to
 * a gateway; a TLS connection whose verified certificate names a TLS
 * trunk's gateway; a TCP connection accepted on sip.trunk_tcp_listen from
 * a TCP trunk's address. */
struct proxy_trunk *proxy_trunk_of_conn(struct proxy *p, uint64_t conn);
/* May a TCP connection from peer be accepted on sip.trunk_tcp_listen? */
bool proxy_trunk_tcp_source_allowed(struct proxy *p, const struct netaddr *peer);

/* A connection opened or closed: the trunk whose connection it was (its
 * state updated; a TLS gateway whose certificate does not prove its name
 * is disconnected here and reported failed), else NULL. *up says whether
 * the trunk can carry requests now. */
struct proxy_trunk *proxy_trunk_conn_opened(struct proxy *p, uint64_t conn,
                                            const struct conn_info *info, bool *up);
struct proxy_trunk *proxy_trunk_conn_closed(struct proxy *p, uint64_t conn, const char *reason);
/* Why the trunk's last connection failed ("" when it did not). */
const char *proxy_trunk_last_error(const struct proxy_trunk *t);

/* The trunks for status: [{"name", "gateway", "transport", "srtp_mode",
 * "address", "state", "certificate": {...}|null, "last_error",
 * "skipped_for_s", "calls_out", "calls_in"}] (a new reference). */
json_t *proxy_trunk_status(struct proxy *p);
/* Counts a call through the trunk (for status). */
void proxy_trunk_count_call(struct proxy_trunk *t, bool outbound);

#endif
