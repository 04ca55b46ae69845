/*
 * tls/peer — what a TLS connection's peer proved about itself: its
 * certificate and chain, as an opaque, reference-counted object.
 *
 * Layers above the TLS module (connections, federation, status) learn of a
 * peer through these functions only, never through OpenSSL types: the
 * certificate is the TLS module's business. Safe to share between threads
 * (references are atomic; the certificate is never modified).
 */
#ifndef PARLEY_TLS_PEER_H
#define PARLEY_TLS_PEER_H

#include <stdbool.h>
#include <stddef.h>

#include "tls/cert.h"

struct tls_peer;

struct tls_peer *tls_peer_ref(struct tls_peer *p); /* NULL-safe; returns p */
void tls_peer_unref(struct tls_peer *p);           /* NULL-safe */

/* Subject, issuer, names, validity of the peer's certificate: 0 or -EINVAL. */
int tls_peer_summarize(const struct tls_peer *p, struct cert_summary *out);
/* The certificate proves the SIP domain (RFC 5922: a dNSName or a sip: URI
 * subjectAltName equal to it). */
bool tls_peer_proves_sip_domain(const struct tls_peer *p, const char *domain);
/* The certificate names host (RFC 6125, see cert_matches_host). */
bool tls_peer_matches_host(const struct tls_peer *p, const char *host);
/* ... without wildcards (cert_matches_host_exactly). */
bool tls_peer_names_host_exactly(const struct tls_peer *p, const char *host);
/* Checks the certificate and its chain again against ctx's trust store and
 * CRLs (after a reload): 0, or -EKEYREJECTED with the reason in why.
 * ctx is an SSL_CTX (void here so callers need no OpenSSL header). */
int tls_peer_recheck(const struct tls_peer *p, void *ctx, char *why, size_t cap);

#endif
