/*
 * The configuration keys this subsystem owns: its rows of the one table
 * (core/config.h) that load, `parleyctl config`, `init` and the docs test
 * use; server/config_keys.c assembles them in order.
 */
#include "core/config.h"

/* clang-format off */
/* [tls]: TLS: certificate, trust, versions, suites */
const struct config_key tls_config_keys[] = {
    {"tls", "certificate", CONFIG_PATH, "pki/server.pem", NULL, 0, 0, true, true, NULL,
     "The server's certificate chain (PEM), leaf first.", CONFIG_FIELD(tls.certificate), NULL},
    {"tls", "private_key", CONFIG_PATH, "pki/server.key", NULL, 0, 0, true, true, NULL,
     "The server's private key (PEM); must not be readable by group or others.",
     CONFIG_FIELD(tls.private_key), NULL},
    {"tls", "ca_files", CONFIG_PATH_LIST, "pki/ca.pem", NULL, 0, 0, true, true, NULL,
     "Trusted CA certificates (PEM files, comma-separated) for client and server "
     "certificates of peers.", CONFIG_FIELD(tls.ca_files), NULL},
    {"tls", "crl_files", CONFIG_PATH_LIST, "pki/crl.pem", NULL, 0, 0, true, true, NULL,
     "Certificate revocation lists (PEM), checked for every peer certificate whose issuer "
     "has one.", CONFIG_FIELD(tls.crl_files), NULL},
    {"tls", "min_version", CONFIG_ENUM, "1.2", "1.2|1.3", 0, 0, true, false, NULL,
     "Lowest TLS version accepted. TLS 1.0 and 1.1 are never accepted.", CONFIG_FIELD(tls.min_version), NULL},
    {"tls", "ciphers", CONFIG_STRING,
     "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
     "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305",
     NULL, 0, 0, true, false, NULL,
     "TLS 1.2 cipher suites (OpenSSL syntax). The default allows ECDHE key exchange with "
     "AEAD ciphers only.", CONFIG_FIELD(tls.ciphers), NULL},
    {"tls", "ciphersuites", CONFIG_STRING,
     "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256", NULL, 0, 0,
     true, false, NULL, "TLS 1.3 cipher suites (OpenSSL syntax).", CONFIG_FIELD(tls.ciphersuites), NULL},
    {"tls", "groups", CONFIG_STRING, "X25519:P-256:P-384", NULL, 0, 0, true, false, NULL,
     "Key-exchange groups, in order of preference.", CONFIG_FIELD(tls.groups), NULL},
    {"tls", "handshake_timeout", CONFIG_INT, "10", NULL, 1, 300, true, false, "seconds",
     "A TLS handshake that has not finished after this long is abandoned.",
     CONFIG_FIELD(tls.handshake_timeout), NULL},
    {"tls", "require_crl", CONFIG_BOOL, "false", NULL, 0, 0, true, false, NULL,
     "Refuse peer certificates whose issuer has no loaded CRL (otherwise they are accepted "
     "with a warning).", CONFIG_FIELD(tls.require_crl), NULL},
    {NULL, NULL, 0, NULL, NULL, 0, 0, false, false, NULL, NULL, 0, NULL},
};
/* clang-format on */
