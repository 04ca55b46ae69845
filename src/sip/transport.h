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

#include "net/conn.h"
#include "core/mbox.h"
#include "sip/msg.h"

/* What the transport posts to the core (struct sip_tp_event). */
enum sip_tp_event_type {
    SIP_TP_OPEN = 1, /* info set */
    SIP_TP_MESSAGE,  /* msg set */
    SIP_TP_CLOSE,    /* reason set */
};

struct sip_flow;

struct sip_tp_event {
    struct mbox_msg m; /* m.type is an enum sip_tp_event_type */
    uint64_t conn;
    struct conn_info *info;
    struct sip_msg *msg;
    struct sip_flow *flow; /* MESSAGE: its connection's in-flight count */
    char reason[96];
};

void sip_tp_event_free(struct sip_tp_event *ev);

/* Messages handed to the core and not yet handled, per connection and in
 * all: past these, a connection's reading pauses (a peer that sends faster
 * than the core answers waits; nothing piles up in memory). Transactions
 * the core keeps once it has handled a message are not counted here: the
 * core bounds them with 503 answers, so that a connection at its bound
 * stays readable for the ACKs, CANCELs and BYEs that end them. */
#define SIP_TP_MAX_INFLIGHT_CONN 32
#define SIP_TP_MAX_INFLIGHT      8192

/* Shared by every worker; settings change on reload (atomics). */
struct sip_transport {
    struct mbox *core; /* where events go */
    atomic_size_t max_message_size;
    atomic_uint message_deadline_s; /* a message must be complete this soon after it began */
    atomic_int inflight;            /* messages posted to the core, not yet handled */
};

extern const struct conn_protocol sip_transport_protocol;

#endif
