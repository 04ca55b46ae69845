/*
 * server/config_keys — the configuration keys of every subsystem, in the
 * order of parley.conf's sections: what parleyd, parleyctl and the tests
 * install (config_install_keys) before they read a configuration.
 */
#ifndef PARLEY_SERVER_CONFIG_KEYS_H
#define PARLEY_SERVER_CONFIG_KEYS_H

#include "core/config.h"

/* NULL-terminated; each array ends with a row whose section is NULL. */
extern const struct config_key *const server_config_key_sets[];

#endif
