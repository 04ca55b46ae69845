/*
 * tls/stream — TLS under a libevent bufferevent: the one place where the
 * SSL object of a connection is made, set up and read from.
 *
 * The connection layer (net/conn) calls these for every stream protocol —
 * SIP, TURN over TLS, HTTPS — so that each protocol reads and writes plain
 * bytes, and what the handshake established comes back as plain facts and
 * an opaque tls_peer (tls/peer.h).
 */
#ifndef PARLEY_TLS_STREAM_H
#define PARLEY_TLS_STREAM_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

#include "tls/context.h"
#include "tls/peer.h"

struct bufferevent;
struct event_base;

/* A bufferevent over fd (taken; closed with the bufferevent) that accepts
 * a TLS handshake with ctx, asking the client for a certificate as policy
 * says. NULL when out of memory (fd is then still the caller's). */
struct bufferevent *tls_stream_accept(struct event_base *base, int fd, SSL_CTX *ctx,
                                      enum tls_client_certs policy, int bev_options);
/* The same, connecting: sni is sent (or NULL), and the peer's certificate
 * must name verify_host when not NULL. NULL when out of memory or when the
 * name cannot be set up (fd is then still the caller's). */
struct bufferevent *tls_stream_connect(struct event_base *base, int fd, SSL_CTX *ctx,
                                       const char *sni, const char *verify_host, int bev_options);
/* Is bev one of ours with TLS under it? */
bool tls_stream_is_tls(struct bufferevent *bev);
/* Sends close_notify (libevent 2.1 never does) before the bufferevent is
 * freed; no-op on plain streams. */
void tls_stream_close_notify(struct bufferevent *bev);

/* Why a handshake failed, for the log: the alert sent or received, a
 * certificate verification error, "no client certificate (...)", or
 * OpenSSL's reason. Drains libevent's error list. Returns false when
 * nothing was recorded. *subject gets the subject of a certificate that
 * failed verification, or "". */
bool tls_stream_failure(struct bufferevent *bev, char *buf, size_t cap, const char **subject);

/* What an established TLS stream negotiated. */
struct tls_stream_facts {
    char version[16]; /* "TLSv1.3" */
    char cipher[64];
    bool resumed;
    struct tls_peer *peer; /* a reference (unref it), or NULL: no certificate */
    bool peer_verified;    /* a certificate was presented and chains to a trusted CA */
    bool peer_crl_missing; /* ... but its issuer has no CRL loaded */
};
int tls_stream_facts(struct bufferevent *bev, struct tls_stream_facts *out);

#endif
