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
 * than the core answers waits; nothing piles up in memory). The
 * transactions the core keeps for a connection (see sip_tp_flow_hold)
 * count too, on top of the connection's transaction bound: the core
 * answers 503 at that bound, so reading pauses for them only when a
 * reload lowered it, and a connection at its bound still has room for the
 * ACKs, CANCELs and BYEs that end its transactions. */
#define SIP_TP_MAX_INFLIGHT_CONN 32
#define SIP_TP_MAX_INFLIGHT      8192

/* Shared by every worker; settings change on reload (atomics). */
struct sip_transport {
    struct mbox *core; /* where events go */
    atomic_size_t max_message_size;
    atomic_uint message_deadline_s; /* a message must be complete this soon after it began */
    atomic_int inflight;            /* messages posted to the core, not yet handled */
    atomic_int max_held_conn;       /* limits.transactions_per_connection; 0: none */
};

/* The core's handle on a connection's flow, taken from a MESSAGE event:
 * a reference that outlives the connection. */
struct sip_flow *sip_tp_flow_ref(struct sip_flow *f);
void sip_tp_flow_unref(struct sip_flow *f);
/* The core holds delta more (or fewer) transactions for the flow's
 * connection: they count against its in-flight bound. */
void sip_tp_flow_hold(struct sip_flow *f, int delta);

extern const struct conn_protocol sip_transport_protocol;

#endif
