/*
 * The configuration keys this subsystem owns: its rows of the one table
 * (core/config.h) that load, `parleyctl config`, `init` and the docs test
 * use; server/config_keys.c assembles them in order.
 */
#include "core/config.h"

/* clang-format off */
/* [sip]: SIP listeners and messages */
const struct config_key sip_config_keys[] = {
    {"sip", "tls_listen", CONFIG_ADDR_LIST, "127.0.0.1:5061", NULL, 0, 0, false, true, NULL,
     "Addresses (ADDR:PORT, comma-separated) where SIP over TLS is accepted.",
     CONFIG_FIELD(sip.tls_listen), NULL},
    {"sip", "mtls_listen", CONFIG_ADDR_LIST, "", NULL, 0, 0, false, true, NULL,
     "Addresses for server-to-server SIP over mutual TLS (federation partners, later "
     "gateways): every peer must present a certificate from a trusted CA. Empty: none.",
     CONFIG_FIELD(sip.mtls_listen), NULL},
    {"sip", "client_certificates", CONFIG_ENUM, "none", "none|request|require", 0, 0, true,
     false, NULL,
     "What the sip.tls_listen listeners ask of clients: none (no CertificateRequest), request "
     "(verified when presented) or require.",
     CONFIG_FIELD(sip.client_certificates), NULL},
    {"sip", "advertised_name", CONFIG_STRING, "", NULL, 0, 0, true, false, NULL,
     "The host name Parley writes for itself in Record-Route, Via and Contact; empty: the "
     "first DNS name of the server certificate. An IP address only if set so here.",
     CONFIG_FIELD(sip.advertised_name), config_check_host_or_empty},
    {"sip", "tcp_listen", CONFIG_ADDR_LIST, "", NULL, 0, 0, false, true, NULL,
     "Addresses for plain SIP over TCP; empty (the default) means no plain TCP. Only sources "
     "inside sip.internal_networks may use it, and it never carries media keys.",
     CONFIG_FIELD(sip.tcp_listen), NULL},
    {"sip", "trunk_tcp_listen", CONFIG_ADDR_LIST, "", NULL, 0, 0, false, true, NULL,
     "Addresses where the gateways of TCP trunks connect (plain SIP over TCP; 5068 in "
     "examples); empty: none. Only TCP trunks' addresses may connect here.",
     CONFIG_FIELD(sip.trunk_tcp_listen), NULL},
    {"sip", "internal_networks", CONFIG_CIDR_LIST, "127.0.0.0/8, ::1/128", NULL, 0, 0, true, true,
     NULL, "Networks (CIDR, comma-separated) allowed to use the plain TCP listener.",
     CONFIG_FIELD(sip.internal_networks), NULL},
    {"sip", "max_message_size", CONFIG_INT, "65535", NULL, 1024, 1048576, true, false, "bytes",
     "Largest SIP message (head and body) accepted; larger ones get 513 and the connection "
     "closes.", CONFIG_FIELD(sip.max_message_size), NULL},
    {"sip", "idle_timeout", CONFIG_INT, "300", NULL, 1, 86400, true, false, "seconds",
     "A connection that carries nothing for this long is closed (a message that stops "
     "half-way is waited for this long too).", CONFIG_FIELD(sip.idle_timeout), NULL},
    {NULL, NULL, 0, NULL, NULL, 0, 0, false, false, NULL, NULL, 0, NULL},
};
/* clang-format on */
