/*
 * sip/transport — SIP over stream connections (TLS or TCP).
 *
 * Runs inside the I/O workers as a conn_protocol: it frames the byte
 * stream (Content-Length), parses each message there, in parallel, and
 * hands parsed messages to the SIP core's mailbox. Malformed input is
 * answered right here (400 / 505 / 513) without bothering the core.
 */
#ifndef PARLEY_SIP_TRANSPORT_H
#define PARLEY_SIP_TRANSPORT_H

#include <stdatomic.h>
#include <stdint.h>

#include "core/conn.h"
#include "core/mbox.h"
#include "sip/msg.h"

/* What the transport posts to the core (struct sip_tp_event). */
enum sip_tp_event_type {
    SIP_TP_OPEN = 1,  /* info set */
    SIP_TP_MESSAGE,   /* msg set */
    SIP_TP_CLOSE,     /* reason set */
};

struct sip_tp_event {
    struct mbox_msg m;     /* m.type is an enum sip_tp_event_type */
    uint64_t conn;
    struct conn_info *info;
    struct sip_msg *msg;
    char reason[96];
};

void sip_tp_event_free(struct sip_tp_event *ev);

/* Shared by every worker; settings change on reload (atomics). */
struct sip_transport {
    struct mbox *core;                 /* where events go */
    atomic_size_t max_message_size;
};

extern const struct conn_protocol sip_transport_protocol;

#endif
