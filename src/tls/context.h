/*
 * tls/context — the TLS contexts Parley serves and connects with.
 *
 * One SSL_CTX per configuration, used both to accept (SIP/TLS listeners)
 * and to connect (server-to-server links): TLS 1.2+ only, the configured
 * AEAD suites and groups, the node certificate, the trust store with its
 * CRLs (client certificates: see tls_session_client_certs), session
 * resumption, buffers released while idle. After SIGHUP a new context is
 * built and used for new connections; established ones keep theirs
 * (OpenSSL reference-counts contexts).
 */
#ifndef PARLEY_TLS_CONTEXT_H
#define PARLEY_TLS_CONTEXT_H

#include <openssl/ssl.h>
#include <stdbool.h>

#include "core/config.h"
#include "core/strbuf.h"

struct fips_ctx;

/* CA certificates added with `parleyctl trust add`, relative to the state
 * directory; loaded in addition to tls.ca_files. */
#define TLS_TRUSTED_DIR "pki/trusted"

/* What an accepting listener asks of clients (RFC 5246 CertificateRequest):
 * nothing (clients are users; most show a picker or stall when asked),
 * a certificate when they have one, or one they must have (servers). */
enum tls_client_certs {
    TLS_CLIENT_CERTS_NONE = 0,
    TLS_CLIENT_CERTS_REQUEST,
    TLS_CLIENT_CERTS_REQUIRE,
};
/* "none" | "request" | "require"; 0 or -EINVAL. */
int tls_client_certs_parse(const char *text, enum tls_client_certs *out);
const char *tls_client_certs_name(enum tls_client_certs policy);
/* Applies the policy to an accepted connection's session, before its
 * handshake. Each policy has a session id context of its own, so a session
 * made without a certificate is never resumed where one is required. */
void tls_session_client_certs(SSL *ssl, enum tls_client_certs policy);

/* Once per process, before any context is built. Returns 0 or -ENOMEM. */
int tls_init(void);

/*
 * Builds a context from cfg on fc's library context (crypto/fips.h; NULL:
 * OpenSSL's default context, no restriction). On failure returns a
 * negative errno and writes one line naming the file or key and the fault
 * into err.
 *
 * When fips_restricted(fc): TLS 1.2/1.3 with AES-GCM suites only, groups
 * P-256 and P-384, signature algorithms ECDSA P-256/P-384 with SHA-256/384
 * and RSA-PSS/PKCS#1 with SHA-256/384, security level 2 at least (peers'
 * RSA keys of 2048 bits and more, EC keys of 224 bits and more), and the
 * server's own key RSA >= 2048 bits or ECDSA P-256/P-384 (-EKEYREJECTED
 * otherwise). tls.ciphers, tls.ciphersuites and tls.groups left at their
 * defaults take their approved subset; one set in parley.conf that names a
 * forbidden item is refused (-EINVAL, "tls.groups: X25519 is not
 * FIPS-approved (security.fips = approved-only); ...").
 */
int tls_context_new(const struct config *cfg, const struct fips_ctx *fc, SSL_CTX **out, char *err,
                    size_t errlen);

/* The peer's issuer had no CRL loaded and the certificate was accepted
 * anyway (tls.require_crl = false). */
bool tls_session_crl_missing(SSL *ssl);

/* Why a handshake failed, as far as the TLS layer recorded it: the alert
 * we sent or received ("we sent alert: protocol version"). Returns false
 * when nothing was recorded. */
bool tls_session_failure(SSL *ssl, const unsigned long *errors, size_t nerrors, char *buf,
                         size_t cap);
/* The subject ("/CN=...") of the certificate that failed verification, or
 * "" (for the log line of a refused handshake). */
const char *tls_session_failed_subject(SSL *ssl);

/* Checks a peer certificate of an established connection again, against
 * ctx's trust store and CRLs (after a reload). Returns 0, or -EKEYREJECTED
 * with the reason in why. */
int tls_context_recheck(SSL_CTX *ctx, X509 *cert, STACK_OF(X509) * chain, char *why, size_t cap);

/* What a context actually enforces, for `parleyctl status`: the effective
 * values, after narrowing under a restricted FIPS mode. */
struct tls_context_facts {
    char versions[32]; /* "TLSv1.2, TLSv1.3" */
    char *suites;      /* malloc'd, comma-separated, usable with the key */
    char groups[128];
    char sigalgs[256];    /* "" when OpenSSL's defaults apply */
    bool fips_restricted; /* narrowed to FIPS-approved suites, groups and sigalgs */
    bool client_cert_requested;
    bool client_cert_required;
    char crl_policy[64];
};
void tls_context_facts(SSL_CTX *ctx, const struct config *cfg, struct tls_context_facts *out);
void tls_context_facts_free(struct tls_context_facts *f);

/* "TLSv1.2" style name for a protocol version constant. */
const char *tls_version_name(int version);

#endif
