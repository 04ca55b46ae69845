/*
 * The configuration keys this subsystem owns: its rows of the one table
 * (core/config.h) that load, `parleyctl config`, `init` and the docs test
 * use; server/config_keys.c assembles them in order.
 */
#include "core/config.h"

/* clang-format off */
/* [https]: the web services (web tickets, address book, groups, relay credentials, content) */
const struct config_key https_config_keys[] = {
    {"https", "listen", CONFIG_ADDR_LIST, "", NULL, 0, 0, false, true, NULL,
     "Where the HTTPS web services are served (ADDR:PORT, comma-separated; 443 in production). "
     "Empty: no web services. TLS only: plain HTTP gets no answer.",
     CONFIG_FIELD(https.listen), NULL},
    {"https", "ticket_lifetime", CONFIG_INT, "28800", NULL, 300, 604800, true, false, "seconds",
     "How long a web ticket from POST /auth/ticket is valid (8 hours by default); a retired "
     "ticket key is still accepted this long after `parleyctl https rotate-key`.",
     CONFIG_FIELD(https.ticket_lifetime), NULL},
    {"https", "max_header_size", CONFIG_INT, "16384", NULL, 1024, 1048576, true, false, "bytes",
     "Largest request line and header block; beyond, 431 and the connection closes.",
     CONFIG_FIELD(https.max_header_size), NULL},
    {"https", "max_body_size", CONFIG_INT, "65536", NULL, 1024, 16777216, true, false, "bytes",
     "Largest request body other than a content upload (PROPFIND, REPORT); beyond, 413.",
     CONFIG_FIELD(https.max_body_size), NULL},
    {"https", "request_timeout", CONFIG_INT, "30", NULL, 1, 3600, true, false, "seconds",
     "A request must be complete (headers and body) this long after its first byte; else 408 "
     "and the connection closes.", CONFIG_FIELD(https.request_timeout), NULL},
    {"https", "keepalive_timeout", CONFIG_INT, "60", NULL, 1, 3600, true, false, "seconds",
     "An idle connection between requests is closed after this long.",
     CONFIG_FIELD(https.keepalive_timeout), NULL},
    {"https", "content_max_file", CONFIG_INT, "16777216", NULL, 1024, 1073741824, true, false,
     "bytes", "Largest meeting content file (PUT /content/...); beyond, 413.",
     CONFIG_FIELD(https.content_max_file), NULL},
    {"https", "content_quota_meeting", CONFIG_INT, "268435456", NULL, 1024, 1099511627776LL, true,
     false, "bytes", "Most content bytes stored for one meeting (on disk, encrypted); beyond, 413.",
     CONFIG_FIELD(https.content_quota_meeting), NULL},
    {"https", "content_quota_total", CONFIG_INT, "4294967296", NULL, 1024, 1099511627776LL, true,
     false, "bytes", "Most content bytes stored for all meetings together; beyond, 413.",
     CONFIG_FIELD(https.content_quota_total), NULL},
    {"https", "metrics_networks", CONFIG_CIDR_LIST, "", NULL, 0, 0, true, false, NULL,
     "Networks (CIDR, comma-separated) that may read GET /metrics without credentials "
     "(else an admin's web ticket or the metrics token); the list: docs/METRICS.md.",
     CONFIG_FIELD(https.metrics_networks), NULL},
    {NULL, NULL, 0, NULL, NULL, 0, 0, false, false, NULL, NULL, 0, NULL},
};
/* clang-format on */
