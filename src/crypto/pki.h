/*
 * pki — Parley's development certificate authority.
 *
 * `parleyctl init` uses pki_create to make a self-contained PKI for one SIP
 * domain: a CA, an empty CRL and a server certificate that is good for both
 * ends of mutual TLS. pki_issue makes further leaf certificates from an
 * existing CA (tests, federation: one CA per deployment), pki_revoke adds
 * them to the CRL, and pki_csr_write makes a request to send to a real CA.
 *
 * Every function returns 0 or a negative errno and, on failure, writes one
 * line naming the file and the fault into err (if err is not NULL). No
 * secret ever appears in that line.
 *
 * Files are written so that a reader never sees half of one: each goes to
 * a temporary name in the same directory, created O_CREAT|O_EXCL with its
 * final mode (0600 for private keys, 0644 otherwise), is fsync'd and then
 * renamed into place, and the directory is fsync'd. Functions that create
 * new files refuse with -EEXIST, naming the file, when a target exists, and
 * remove whatever they created when they fail part-way.
 *
 * Not thread-safe against itself on the same files: callers (parleyctl)
 * serialise pki_revoke on one CRL.
 */
#ifndef PARLEY_CRYPTO_PKI_H
#define PARLEY_CRYPTO_PKI_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/types.h>

/* File names pki_create makes inside its directory. */
#define PKI_CA_KEY_FILE      "ca.key"
#define PKI_CA_CERT_FILE     "ca.pem"
#define PKI_CRL_FILE         "crl.pem"
#define PKI_SERVER_KEY_FILE  "server.key"
#define PKI_SERVER_CERT_FILE "server.pem"

/* Validity of what pki_create makes. */
#define PKI_CA_DAYS     3652 /* ten years */
#define PKI_SERVER_DAYS 397  /* the CA/Browser Forum ceiling, so clients never balk */
#define PKI_CRL_DAYS    365  /* nextUpdate; pki_revoke refreshes it */

enum pki_key_type {
    PKI_KEY_ECDSA_P256 = 0, /* the default */
    PKI_KEY_RSA_2048 = 1,
};

/* Where keys are made, certificates built and signatures checked:
 * libctx with propq (crypto/fips calls it at start with its context;
 * until then OpenSSL's default context). restricted (security.fips on or
 * approved-only): a CA key or a key for a request must be approved too (EC
 * P-256/P-384, RSA >= 2048 bits; what pki makes always is), else -EINVAL
 * naming the file. 0 or -ENOMEM. */
int pki_init(OSSL_LIB_CTX *libctx, const char *propq, bool restricted);
void pki_cleanup(void);

/* "ecdsa" | "ec" | "p256" | "ecdsa-p256" | "rsa" | "rsa2048" | "rsa-2048"
 * (case-insensitive). Returns 0 or -EINVAL. */
int pki_key_type_parse(const char *name, enum pki_key_type *out);
/* "ECDSA P-256" | "RSA 2048" */
const char *pki_key_type_name(enum pki_key_type type);

/*
 * Creates pki_dir (mode 0700) if it is missing — its parent must exist —
 * and in it ca.key, ca.pem, crl.pem, server.key and server.pem.
 *
 * The CA is "CN=Parley development CA for DOMAIN" (just "Parley development
 * CA" when that would not fit the 64-character CN limit), valid ten years.
 * The server certificate has CN sip.DOMAIN, subjectAltName DNS:sip.DOMAIN,
 * DNS:DOMAIN and, when ip_or_null is an IPv4 or IPv6 literal (NULL or ""
 * for none), IP:ip; extendedKeyUsage serverAuth and clientAuth; the same
 * key type as the CA. DOMAIN is stored lower-case.
 *
 * -EEXIST (naming the file) if any of the five exists; -EINVAL for a bad
 * domain or IP; other negative errnos from the file system.
 */
int pki_create(const char *pki_dir, const char *domain, const char *ip_or_null,
               enum pki_key_type type, char *err, size_t errlen);

/*
 * Issues a leaf certificate (serverAuth + clientAuth) from an existing CA
 * into out_cert_path with a new key in out_key_path (0600).
 *
 * dns_names: NULL-terminated list of DNS names (a whole-label "*." prefix is
 * allowed); ip_names: NULL-terminated list of IP literals, or NULL. At least
 * one name is needed. common_name may be NULL: the first DNS name (or IP) is
 * used. days: 1..36500; notBefore is an hour in the past for clock skew.
 *
 * The CA key must match the CA certificate, the CA certificate must be a CA
 * and be within its validity. -EEXIST if either output exists.
 */
int pki_issue(const char *ca_cert_path, const char *ca_key_path, const char *out_cert_path,
              const char *out_key_path, const char *const *dns_names, const char *const *ip_names,
              const char *common_name, int days, enum pki_key_type type, char *err, size_t errlen);

/*
 * Adds a certificate to the CA's CRL at crl_path, re-signs it with the next
 * crlNumber and a fresh lastUpdate/nextUpdate, and atomically replaces
 * crl_path.
 *
 * cert_path_or_serial_hex is either a hex serial ("0x" prefix and ':'
 * separators allowed, as `openssl x509 -serial` or -text print it) or the
 * path of a PEM certificate, which must have been issued by this CA. A
 * string of only hex digits is taken as a serial: write "./cafe" for a file
 * named cafe.
 *
 * Revoking a serial that is already on the CRL succeeds and leaves the file
 * untouched. The existing CRL must have been signed by this CA.
 */
int pki_revoke(const char *ca_cert_path, const char *ca_key_path, const char *crl_path,
               const char *cert_path_or_serial_hex, char *err, size_t errlen);

/*
 * Writes a PKCS#10 request for the key at key_path: subject CN=subject_cn
 * (may be NULL if dns_names is not empty: the first DNS name is used) and a
 * subjectAltName request for dns_names (NULL-terminated, may be NULL).
 * -EEXIST if out_csr_path exists.
 */
int pki_csr_write(const char *key_path, const char *subject_cn, const char *const *dns_names,
                  const char *out_csr_path, char *err, size_t errlen);

/*
 * Loads an unencrypted PEM private key, refusing (with the errno in
 * parentheses) a missing file (-ENOENT), one this user may not read
 * (-EACCES), one that group or others may read, write or execute (-EPERM:
 * "private key /x/server.key is readable by others (mode 0644); chmod 600
 * it"), anything but a regular file of at most 1 MiB (-EINVAL), an
 * encrypted key or one that does not parse (-EINVAL). Never prompts for a
 * passphrase. The caller frees *out with EVP_PKEY_free.
 */
int pki_key_load(const char *key_path, EVP_PKEY **out, char *err, size_t errlen);

/*
 * Loads the first PEM certificate of a file (others after it, a chain, are
 * ignored): -ENOENT, -EACCES, -EINVAL as above. The caller frees *out with
 * X509_free.
 */
int pki_cert_load(const char *cert_path, X509 **out, char *err, size_t errlen);

#endif
