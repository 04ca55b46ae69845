/*
 * The configuration keys this subsystem owns: its rows of the one table
 * (core/config.h) that load, `parleyctl config`, `init` and the docs test
 * use; server/config_keys.c assembles them in order.
 */
#include "server/config_keys.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>

#include "core/config.h"

/* A user name as useradd takes it: no path, no spaces, no ':' */
static int server_config_check_user(const char *value, char *err, size_t errlen)
{
    for (const char *c = value; *c; c++)
        if (!(isalnum((unsigned char)*c) || *c == '_' || *c == '-' || *c == '.') ||
            (c == value && *c == '-')) {
            snprintf(err, errlen, "a user name (letters, digits, '_', '-', '.') or \"\"");
            return -EINVAL;
        }
    return 0;
}

/* clang-format off */
/* [server]: the server itself: domain, workers */
const struct config_key server_config_keys[] = {
    {"server", "domain", CONFIG_DOMAIN, "", NULL, 0, 0, true, true, NULL,
     "The SIP domain this server is authoritative for (users are user@domain).",
     CONFIG_FIELD(server.domain), NULL},
    {"server", "workers", CONFIG_INT, "0", NULL, 0, 64, false, false, NULL,
     "I/O worker threads that carry TLS connections; 0 means one per CPU core.",
     CONFIG_FIELD(server.workers), NULL},
    {"server", "user", CONFIG_STRING, "", NULL, 0, 0, false, false, NULL,
     "The user parleyd runs as: started as root, it binds its ports, then becomes this user "
     "for good; \"\" keeps the user it was started as.",
     CONFIG_FIELD(server.user), server_config_check_user},
    {"server", "state_dir", CONFIG_STRING, "", NULL, 0, 0, false, false, NULL,
     "Where the store, lock, control socket, secrets and keys live; \"\" is the "
     "configuration file's directory.", CONFIG_FIELD(server.state_dir), NULL},
    {"server", "confine", CONFIG_BOOL, "on", NULL, 0, 0, false, false, NULL,
     "Confine parleyd after start-up: Landlock limits the files it may open, seccomp forbids "
     "running programs.",
     CONFIG_FIELD(server.confine), NULL},
    {NULL, NULL, 0, NULL, NULL, 0, 0, false, false, NULL, NULL, 0, NULL},
};

/* [limits]: bounds on connections and transactions */
const struct config_key limits_config_keys[] = {
    {"limits", "connections_per_source", CONFIG_INT, "64", NULL, 1, 1000000, true, false, NULL,
     "Most simultaneous connections from one source address; more are closed at once.",
     CONFIG_FIELD(limits.connections_per_source), NULL},
    {"limits", "connections_total", CONFIG_INT, "10000", NULL, 1, 10000000, true, false, NULL,
     "Most simultaneous connections in all; past it a newcomer takes the place of the oldest "
     "connection that has not authenticated.",
     CONFIG_FIELD(limits.connections_total), NULL},
    {"limits", "transactions_per_connection", CONFIG_INT, "500", NULL, 1, 1000000, true, false,
     NULL,
     "Most requests of one connection that Parley works on at once (forwarded, waiting); more "
     "get 503 with Retry-After.", CONFIG_FIELD(limits.transactions_per_connection), NULL},
    {"limits", "transactions_per_source", CONFIG_INT, "2000", NULL, 1, 10000000, true, false,
     NULL, "Most requests from one source address (IPv6: its /64) worked on at once.",
     CONFIG_FIELD(limits.transactions_per_source), NULL},
    {"limits", "transactions_per_user", CONFIG_INT, "200", NULL, 1, 1000000, true, false, NULL,
     "Most requests one user (or a partner's user) has in progress at once, from all its "
     "devices.", CONFIG_FIELD(limits.transactions_per_user), NULL},
    {"limits", "trunk_calls_per_user", CONFIG_INT, "4", NULL, 1, 1000, true, false, NULL,
     "Most calls one user has through trunks at once (ringing or answered); more get 503.",
     CONFIG_FIELD(limits.trunk_calls_per_user), NULL},
    {"limits", "transactions_total", CONFIG_INT, "10000", NULL, 1, 10000000, true, false, NULL,
     "Most requests worked on at once in all.", CONFIG_FIELD(limits.transactions_total), NULL},
    {NULL, NULL, 0, NULL, NULL, 0, 0, false, false, NULL, NULL, 0, NULL},
};
/* clang-format on */

/* Every subsystem's rows, in the order of parley.conf's sections (the
 * template `parleyctl init` writes follows it). The programs install them
 * (config_install_keys) before they read a configuration. */
extern const struct config_key sip_config_keys[], tls_config_keys[], auth_config_keys[],
    registrar_config_keys[], im_config_keys[], presence_config_keys[], media_config_keys[],
    anchor_config_keys[], relay_config_keys[], https_config_keys[], dns_config_keys[],
    log_config_keys[], security_config_keys[];

const struct config_key *const server_config_key_sets[] = {
    server_config_keys,    sip_config_keys,   tls_config_keys,      auth_config_keys,
    registrar_config_keys, im_config_keys,    presence_config_keys, media_config_keys,
    anchor_config_keys,    relay_config_keys, https_config_keys,    dns_config_keys,
    limits_config_keys,    log_config_keys,   security_config_keys, NULL,
};
