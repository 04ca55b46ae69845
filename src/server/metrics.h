/*
 * metrics — parleyd's figures in the Prometheus text format (0.0.4), one
 * text for GET /metrics (src/web, https.metrics_networks and credentials)
 * and `parleyctl metrics` (the control socket). The names and what each
 * means are listed in docs/METRICS.md.
 *
 * Gathered when asked, from where `parleyctl status` gets its figures
 * (the registrar, the proxy, the throttle, the web services) and from the
 * engines' own totals (relay_totals, anchor_totals, the workers' TLS
 * failures, the store writer's latency histogram): the packet paths keep
 * counting lock-free, per worker, and are summed here. What no module
 * counted — SIP messages by method and class — is counted on the core
 * thread, in the runtime, by the two hooks below.
 */
#ifndef PARLEY_SERVER_METRICS_H
#define PARLEY_SERVER_METRICS_H

#include "core/strbuf.h"
#include "sip/msg.h"

struct runtime;

/* The counters themselves are the runtime's (struct runtime_sip_counts,
 * server/runtime.h), written by the core thread only. */
/* A message arrived from a connection (before the proxy takes it). */
void metrics_sip_received(struct runtime *rt, const struct sip_msg *msg);
/* Bytes about to go out on a SIP connection: a response is counted by its
 * status and its CSeq method (Parley writes both in the canonical form). */
void metrics_sip_sent(struct runtime *rt, const struct strbuf *data);

/* Appends every family to out. 0, or -ENOMEM. */
int metrics_text(struct runtime *rt, struct strbuf *out);

#endif
