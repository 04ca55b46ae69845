/*
 * The configuration keys this subsystem owns: its rows of the one table
 * (core/config.h) that load, `parleyctl config`, `init` and the docs test
 * use; server/config_keys.c assembles them in order.
 */
#include "core/config.h"

/* clang-format off */
/* [media]: the media encryption policy */
const struct config_key media_config_keys[] = {
    {"media", "encryption_level", CONFIG_ENUM, "required", "required|supported|not_supported", 0,
     0, true, true, NULL,
     "Media encryption level enforced on every offer and answer: required (SRTP only), "
     "supported (SRTP preferred, RTP allowed) or not_supported (RTP only).",
     CONFIG_FIELD(media.encryption_level), NULL},
    {"media", "srtp_suites", CONFIG_ENUM_LIST,
     "AES_CM_128_HMAC_SHA1_80, AEAD_AES_128_GCM, AEAD_AES_256_GCM",
     "AES_CM_128_HMAC_SHA1_80|AES_CM_128_HMAC_SHA1_32|AEAD_AES_128_GCM|AEAD_AES_256_GCM", 0, 0,
     true, false, NULL, "SDES crypto suites that count as encryption.", CONFIG_FIELD(media.srtp_suites), NULL},
    {NULL, NULL, 0, NULL, NULL, 0, 0, false, false, NULL, NULL, 0, NULL},
};
/* clang-format on */
