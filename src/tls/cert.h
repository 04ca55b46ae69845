/*
 * cert — facts about certificates and the checks parleyd and parleyctl make
 * before they trust a certificate/key pair with a listener.
 *
 * Identity checks follow RFC 6125 (host names) and RFC 5922 (SIP domains);
 * they look only at the certificate, not at its chain: verifying the chain
 * is the TLS context's job.
 */
#ifndef PARLEY_TLS_CERT_H
#define PARLEY_TLS_CERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

/*
 * Refuses a certificate/key pair a server must not start with, writing one
 * line naming the file and the fault into err:
 *   -ENOENT       key or certificate file missing
 *   -EACCES       key or certificate not readable by this user
 *   -EPERM        private key readable, writable or executable by group or
 *                 others ("private key /x/server.key is readable by others
 *                 (mode 0644); chmod 600 it")
 *   -EINVAL       not a regular file, too large, encrypted key, or PEM that
 *                 does not parse
 *   -EKEYREJECTED the certificate (the first in the file) is not for this key
 *   -EKEYEXPIRED  the certificate has expired or is not yet valid
 * Returns 0 when the pair is usable now.
 */
int cert_check_keypair(const char *cert_path, const char *key_path, char *err, size_t errlen);

struct cert_summary {
    char subject[256]; /* "CN=sip.example.test" (RFC 2253 order and escaping, UTF-8) */
    char issuer[256];
    char serial[80];    /* upper-case hex, as `openssl x509 -serial` prints it */
    int64_t not_before; /* seconds since the epoch, UTC */
    int64_t not_after;
    char sans[512];    /* "DNS:a, DNS:b, IP:1.2.3.4, URI:sip:x" */
    char key_type[32]; /* "ECDSA P-256", "RSA 2048", "Ed25519" */
};
/* Text fields too long for their arrays end in "...". Subject and issuer
 * are UTF-8 with RFC 2253 escapes ("CN=a\,b", control bytes as \XX); bytes
 * of subjectAltNames outside printable ASCII are shown as \xNN. */

/* 0, -EINVAL (a field does not parse) or -ENOMEM. */
int cert_summarize(X509 *cert, struct cert_summary *out);
/* The first certificate of a PEM file; errors as cert_check_keypair. */
int cert_summarize_file(const char *path, struct cert_summary *out, char *err, size_t errlen);

/*
 * RFC 6125 reference-identity check of a host the caller connected to or
 * expects: an IP literal (IPv6 optionally in brackets) matches only an
 * iPAddress subjectAltName; a DNS name matches a dNSName subjectAltName
 * case-insensitively, with a wildcard only as the whole left-most label
 * ("*.example.test" matches "a.example.test", not "example.test" nor
 * "a.b.example.test"); the subject CN counts only when the certificate has
 * no dNSName at all. One trailing dot on host is ignored.
 */
bool cert_matches_host(X509 *cert, const char *host);
/* The same without wildcards: only a dNSName (or iPAddress) that is host
 * itself counts (a party recognised by its certificate alone, e.g. a
 * gateway calling in, must be named, not covered). */
bool cert_matches_host_exactly(X509 *cert, const char *host);

/*
 * RFC 5922 7.1: true when domain is a dNSName subjectAltName or the URI
 * subjectAltName "sip:DOMAIN" (case-insensitive; no wildcards, no user
 * part, no parameters). The CN, which 5922 allows only as a legacy
 * fallback, is not used.
 */
bool cert_proves_sip_domain(X509 *cert, const char *domain);

/* Whole days from now until notAfter, rounded down (negative once
 * expired); INT64_MIN when notAfter cannot be read. */
int64_t cert_days_left(X509 *cert, int64_t now);

/* The first dNSName subjectAltName of the first certificate in a PEM file
 * that is a plain host name (letters, digits, '-', '.'; no wildcard):
 * the name Parley gives itself when sip.advertised_name is empty. Returns
 * 0, -ENOENT (no such name) or -EIO (unreadable file). */
int cert_first_dns_name(const char *path, char *out, size_t cap);
/* cert_matches_host on the first certificate of a PEM file (false when it
 * cannot be read). */
bool cert_file_matches_host(const char *path, const char *host);

#endif
