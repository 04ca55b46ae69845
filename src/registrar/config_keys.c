/*
 * The configuration keys this subsystem owns: its rows of the one table
 * (core/config.h) that load, `parleyctl config`, `init` and the docs test
 * use; server/config_keys.c assembles them in order.
 */
#include "core/config.h"

/* clang-format off */
/* [auth]: digest authentication and password-guessing throttle */
const struct config_key auth_config_keys[] = {
    /* not written out by init (unless under FIPS): left at its default it
     * narrows to SHA-256 by itself when security.fips restricts */
    {"auth", "algorithms", CONFIG_ENUM_LIST, "MD5", "MD5|SHA-256", 0, 0, true, false, NULL,
     "Digest algorithms offered in challenges, in order (RFC 8760). Many clients (Debian's "
     "baresip among them) answer only MD5; use \"SHA-256, MD5\" where clients allow.",
     CONFIG_FIELD(auth.algorithms), NULL},
    {"auth", "nonce_lifetime", CONFIG_INT, "300", NULL, 1, 86400, true, false, "seconds",
     "How long a challenge's nonce may be used; an older one is answered stale=true.",
     CONFIG_FIELD(auth.nonce_lifetime), NULL},
    {"auth", "max_failures", CONFIG_INT, "5", NULL, 1, 1000, true, false, NULL,
     "Failed password checks for one user from one source (IPv6: its /64) within "
     "auth.failure_window before that source is blocked for that user.",
     CONFIG_FIELD(auth.max_failures), NULL},
    {"auth", "max_source_failures", CONFIG_INT, "100", NULL, 1, 1000000, true, false, NULL,
     "Failed password checks from one source (IPv6: its /64) for any names within "
     "auth.failure_window before that source is blocked for every name.",
     CONFIG_FIELD(auth.max_source_failures), NULL},
    {"auth", "max_user_failures", CONFIG_INT, "50", NULL, 1, 1000000, true, false, NULL,
     "Failed password checks for one user from all sources within auth.failure_window before "
     "the user is blocked for every source that has not recently authenticated as the user.",
     CONFIG_FIELD(auth.max_user_failures), NULL},
    {"auth", "failure_window", CONFIG_INT, "900", NULL, 1, 604800, true, false, "seconds",
     "How long a failed password check counts.", CONFIG_FIELD(auth.failure_window), NULL},
    {"auth", "block_time", CONFIG_INT, "60", NULL, 1, 86400, true, false, "seconds",
     "The first block; each further failure after a block ends doubles it.",
     CONFIG_FIELD(auth.block_time), NULL},
    {"auth", "max_block_time", CONFIG_INT, "3600", NULL, 1, 604800, true, false, "seconds",
     "The longest a block grows to.", CONFIG_FIELD(auth.max_block_time), NULL},
    {"auth", "trust_time", CONFIG_INT, "604800", NULL, 1, 31536000, true, false, "seconds",
     "How long a source that authenticated as a user stays exempt from that user's user-wide "
     "block.", CONFIG_FIELD(auth.trust_time), NULL},
    {"auth", "max_tracked", CONFIG_INT, "50000", NULL, 100, 10000000, true, false, NULL,
     "Most records (user and source pairs, users) the throttle keeps; past it the oldest that "
     "block nothing are forgotten first.", CONFIG_FIELD(auth.max_tracked), NULL},
    {NULL, NULL, 0, NULL, NULL, 0, 0, false, false, NULL, NULL, 0, NULL},
};

/* [registrar]: registrations */
const struct config_key registrar_config_keys[] = {
    {"registrar", "min_expires", CONFIG_INT, "60", NULL, 1, 86400, true, false, "seconds",
     "Shortest registration accepted; shorter ones get 423 Interval Too Brief.",
     CONFIG_FIELD(registrar.min_expires), NULL},
    {"registrar", "max_expires", CONFIG_INT, "3600", NULL, 1, 604800, true, false, "seconds",
     "Longest registration granted; longer requests are shortened to this.",
     CONFIG_FIELD(registrar.max_expires), NULL},
    {"registrar", "default_expires", CONFIG_INT, "3600", NULL, 1, 604800, true, false, "seconds",
     "Registration length when a REGISTER names none.", CONFIG_FIELD(registrar.default_expires), NULL},
    {"registrar", "max_devices_per_user", CONFIG_INT, "10", NULL, 1, 16, true, false, NULL,
     "Most devices one user may register at once.", CONFIG_FIELD(registrar.max_devices_per_user), NULL},
    {NULL, NULL, 0, NULL, NULL, 0, 0, false, false, NULL, NULL, 0, NULL},
};
/* clang-format on */
