/*
 * The configuration keys this subsystem owns: its rows of the one table
 * (core/config.h) that load, `parleyctl config`, `init` and the docs test
 * use; server/config_keys.c assembles them in order. The engine's keys
 * share the [media] section with the media policy's, right after them.
 */
#include "core/config.h"

/* clang-format off */
/* [media]: the media engine */
const struct config_key anchor_config_keys[] = {
    {"media", "anchor", CONFIG_ENUM, "never", "never|always", 0, 0, true, false, NULL,
     "Whether Parley anchors the media of calls between users in its media engine, each leg "
     "with keys of its own (always), or leaves media to flow between the clients (never).",
     CONFIG_FIELD(media.anchor), NULL},
    {"media", "workers", CONFIG_INT, "1", NULL, 1, 64, false, false, NULL,
     "Threads of the media engine.", CONFIG_FIELD(media.workers), NULL},
    {"media", "port_range", CONFIG_STRING, "30000-39999", NULL, 0, 0, false, false, NULL,
     "UDP ports of anchored media, as FIRST-LAST (RTP on even ports, RTCP on the next); must "
     "not overlap relay.port_range.", CONFIG_FIELD(media.port_range), config_check_port_range},
    {"media", "address", CONFIG_STRING, "", NULL, 0, 0, false, false, NULL,
     "The IP address the media engine binds; empty means the address of the first "
     "sip.tls_listen entry.", CONFIG_FIELD(media.address), config_check_ip_or_empty},
    {"media", "public_address", CONFIG_STRING, "", NULL, 0, 0, false, false, NULL,
     "The IP address written in the SDP Parley sends; empty means media.address.",
     CONFIG_FIELD(media.public_address), config_check_ip_or_empty},
    {"media", "timeout", CONFIG_INT, "60", NULL, 5, 3600, true, false, "seconds",
     "A stream with no RTP or RTCP on any leg for this long ends its call (BYE both ways).",
     CONFIG_FIELD(media.timeout), NULL},
    {"media", "consent_timeout", CONFIG_INT, "30", NULL, 5, 300, true, false, "seconds",
     "A leg that follows its party to an address neither its SDP nor its signalling named "
     "receives media there only while that address is heard from within this long.",
     CONFIG_FIELD(media.consent_timeout), NULL},
    {"media", "replay_window", CONFIG_INT, "128", NULL, 64, 1024, true, false, "packets",
     "SRTP replay window of each leg (RFC 3711 section 3.3.2).", CONFIG_FIELD(media.replay_window),
     NULL},
    {"media", "latch_plain", CONFIG_ENUM, "sdp", "sdp|first", 0, 0, true, false, NULL,
     "Where a plain RTP leg's party may send from: only the address in its SDP (sdp), or the "
     "first source that sends (first).", CONFIG_FIELD(media.latch_plain), NULL},
    {"media", "max_streams", CONFIG_INT, "2500", NULL, 1, 1000000, true, false, NULL,
     "Most anchored streams in all (each takes four ports of media.port_range).",
     CONFIG_FIELD(media.max_streams), NULL},
    {"media", "max_streams_per_user", CONFIG_INT, "16", NULL, 1, 100000, true, false, NULL,
     "Most anchored streams of calls one user makes or takes.",
     CONFIG_FIELD(media.max_streams_per_user), NULL},
    {NULL, NULL, 0, NULL, NULL, 0, 0, false, false, NULL, NULL, 0, NULL},
};
/* clang-format on */
