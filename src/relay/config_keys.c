/*
 * The configuration keys this subsystem owns: its rows of the one table
 * (core/config.h) that load, `parleyctl config`, `init` and the docs test
 * use; server/config_keys.c assembles them in order.
 */
#include "core/config.h"

/* clang-format off */
/* [relay]: the media relay (TURN) */
const struct config_key relay_config_keys[] = {
    {"relay", "enabled", CONFIG_BOOL, "true", NULL, 0, 0, false, true, NULL,
     "Run the media relay (TURN) on this node.", CONFIG_FIELD(relay.enabled), NULL},
    {"relay", "listen", CONFIG_ADDR_LIST, "127.0.0.1:3478", NULL, 0, 0, false, true, NULL,
     "Where TURN is served over UDP and TCP (ADDR:PORT, comma-separated).", CONFIG_FIELD(relay.listen),
     NULL},
    {"relay", "tls_listen", CONFIG_ADDR_LIST, "127.0.0.1:5349", NULL, 0, 0, false, true, NULL,
     "Where TURN is served over TLS (5349, or 443 where a site wants it).",
     CONFIG_FIELD(relay.tls_listen), NULL},
    {"relay", "relay_address", CONFIG_STRING, "", NULL, 0, 0, false, false, NULL,
     "The IP address relayed transport addresses are allocated on and announced with; empty "
     "means the address of the first relay.listen entry.", CONFIG_FIELD(relay.relay_address),
     config_check_ip_or_empty},
    {"relay", "port_range", CONFIG_STRING, "50000-59999", NULL, 0, 0, false, false, NULL,
     "UDP ports for relayed transport addresses, as FIRST-LAST.", CONFIG_FIELD(relay.port_range),
     config_check_port_range},
    {"relay", "allowed_peers", CONFIG_CIDR_LIST, "", NULL, 0, 0, true, false, NULL,
     "Peer networks the relay may send to although they are in a refused range (loopback, "
     "private, link-local...): for tests and internal deployments.", CONFIG_FIELD(relay.allowed_peers),
     NULL},
    {"relay", "max_lifetime", CONFIG_INT, "28800", NULL, 60, 604800, true, false, "seconds",
     "Longest lifetime of the relay credentials Parley issues (8 hours by default).",
     CONFIG_FIELD(relay.max_lifetime), NULL},
    {"relay", "allocation_lifetime", CONFIG_INT, "3600", NULL, 60, 86400, true, false, "seconds",
     "Longest lifetime a TURN allocation may be given per Allocate or Refresh.",
     CONFIG_FIELD(relay.allocation_lifetime), NULL},
    {"relay", "max_allocations_per_user", CONFIG_INT, "10", NULL, 1, 1000000, true, false, NULL,
     "Most simultaneous allocations per user (486 Allocation Quota Reached beyond).",
     CONFIG_FIELD(relay.max_allocations_per_user), NULL},
    {"relay", "max_allocations", CONFIG_INT, "10000", NULL, 1, 1000000, true, false, NULL,
     "Most simultaneous allocations in all.", CONFIG_FIELD(relay.max_allocations), NULL},
    {"relay", "max_bandwidth", CONFIG_INT, "10000", NULL, 0, 10000000, true, false, "kbit/s",
     "Most relayed traffic per allocation and direction; 0 means no limit.",
     CONFIG_FIELD(relay.max_bandwidth), NULL},
    {"relay", "nonce_lifetime", CONFIG_INT, "600", NULL, 1, 86400, true, false, "seconds",
     "How long a TURN nonce stays valid before 438 Stale Nonce.", CONFIG_FIELD(relay.nonce_lifetime),
     NULL},
    {"relay", "workers", CONFIG_INT, "1", NULL, 1, 64, false, false, NULL,
     "Threads that carry relayed packets.", CONFIG_FIELD(relay.workers), NULL},
    {NULL, NULL, 0, NULL, NULL, 0, 0, false, false, NULL, NULL, 0, NULL},
};
/* clang-format on */
