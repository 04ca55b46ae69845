/*
 * The configuration keys this subsystem owns: its rows of the one table
 * (core/config.h) that load, `parleyctl config`, `init` and the docs test
 * use; server/config_keys.c assembles them in order.
 */
#include "core/config.h"

/* clang-format off */
/* [presence]: the presence server */
const struct config_key presence_config_keys[] = {
    {"presence", "policy", CONFIG_ENUM, "domain", "domain|contacts", 0, 0, true, true, NULL,
     "Who may see a user's presence: domain (users of the same domain) or contacts (only "
     "watchers on the user's allow list).", CONFIG_FIELD(presence.policy), NULL},
    {"presence", "min_notify_interval", CONFIG_INT, "5", NULL, 0, 3600, true, false, "seconds",
     "Least time between two NOTIFYs to one watcher; changes in between are sent together.",
     CONFIG_FIELD(presence.min_notify_interval), NULL},
    {"presence", "min_expires", CONFIG_INT, "60", NULL, 1, 86400, true, false, "seconds",
     "Shortest subscription or publication accepted (423 below).", CONFIG_FIELD(presence.min_expires),
     NULL},
    {"presence", "max_expires", CONFIG_INT, "3600", NULL, 1, 604800, true, false, "seconds",
     "Longest subscription or publication granted.", CONFIG_FIELD(presence.max_expires), NULL},
    {"presence", "max_subscriptions", CONFIG_INT, "100000", NULL, 1, 10000000, true, false, NULL,
     "Most presence subscriptions in all.", CONFIG_FIELD(presence.max_subscriptions), NULL},
    {"presence", "max_per_user", CONFIG_INT, "200", NULL, 1, 100000, true, false, NULL,
     "Most watchers of one user, and most publications by one user.", CONFIG_FIELD(presence.max_per_user),
     NULL},
    {"presence", "max_per_watcher", CONFIG_INT, "2000", NULL, 1, 1000000, true, false, NULL,
     "Most subscriptions one watcher (user) holds, over all its devices and contacts.",
     CONFIG_FIELD(presence.max_per_watcher), NULL},
    {NULL, NULL, 0, NULL, NULL, 0, 0, false, false, NULL, NULL, 0, NULL},
};
/* clang-format on */
