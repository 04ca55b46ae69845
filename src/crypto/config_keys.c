/*
 * The configuration keys this subsystem owns: its rows of the one table
 * (core/config.h) that load, `parleyctl config`, `init` and the docs test
 * use; server/config_keys.c assembles them in order.
 */
#include "core/config.h"
#include "crypto/fips.h"

/* clang-format off */
/* [security]: the cryptographic mode (crypto/fips) */
const struct config_key security_config_keys[] = {
    {"security", "fips", CONFIG_ENUM, "auto", "auto|on|approved-only|off", 0, 0, false, false,
     NULL,
     "FIPS 140: on needs OpenSSL's fips provider; approved-only restricts algorithms "
     "without it; auto is on when the kernel runs in FIPS mode.",
     CONFIG_FIELD(security.fips), NULL},
    {"security", "fips_enabled_file", CONFIG_PATH, FIPS_ENABLED_FILE_DEFAULT, NULL, 0, 0,
     false, false, NULL,
     "The file whose 1 says the kernel runs in FIPS mode (read by security.fips = auto).",
     CONFIG_FIELD(security.fips_enabled_file), NULL},
    {NULL, NULL, 0, NULL, NULL, 0, 0, false, false, NULL, NULL, 0, NULL},
};
/* clang-format on */
