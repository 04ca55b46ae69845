/*
 * The configuration keys this subsystem owns: its rows of the one table
 * (core/config.h) that load, `parleyctl config`, `init` and the docs test
 * use; server/config_keys.c assembles them in order.
 */
#include "core/config.h"

/* clang-format off */
/* [im]: instant messages */
const struct config_key im_config_keys[] = {
    {"im", "max_body_size", CONFIG_INT, "16384", NULL, 1, 1048576, true, false, "bytes",
     "Largest instant message (MESSAGE body) relayed; larger ones get 413.",
     CONFIG_FIELD(im.max_body_size), NULL},
    {NULL, NULL, 0, NULL, NULL, 0, 0, false, false, NULL, NULL, 0, NULL},
};
/* clang-format on */
