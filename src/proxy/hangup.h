/*
 * proxy/hangup — the in-dialog requests Parley makes of its own accord:
 * when an answer breaks the media policy after the point where a refusal
 * could still be a response, Parley ACKs the answerer's 2xx and sends BYE
 * (with a Reason saying why) to whoever is left in the call. Every request
 * is built by the dialog primitive (sip/dialog) from a view toward the side
 * it goes to. Uses proxy/hop.
 */
#ifndef PARLEY_PROXY_HANGUP_H
#define PARLEY_PROXY_HANGUP_H

#include <stdbool.h>
#include <stdint.h>

#include "sip/msg.h"

struct proxy;
struct proxy_dialog;

/* The answerer on conn sent resp (a 2xx) to req (as Parley sent it) and
 * Parley refuses it: ACK (an INVITE's 2xx) and BYE with the Reason. */
void proxy_hangup_answerer(struct proxy *p, uint64_t conn, const struct sip_msg *req,
                           const struct sip_msg *resp, const char *warning);
/* The ACK of that 2xx again, for a retransmission of it. */
void proxy_hangup_ack(struct proxy *p, uint64_t conn, const struct sip_msg *req,
                      const struct sip_msg *resp);
/* BYE with "Reason: SIP;cause=CAUSE;text=..." into a routed dialog,
 * toward the caller and/or the callee, each on its connection if it still
 * has one. */
void proxy_hangup_dialog(struct proxy *p, struct proxy_dialog *d, bool to_caller, bool to_callee,
                         int cause, const char *warning);

#endif
