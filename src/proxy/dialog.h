/*
 * proxy/dialog — the dialogs Parley routed (INVITE, SUBSCRIBE and REFER
 * made them), found by Call-ID and tags, so in-dialog requests find their
 * way, only the dialog's parties may send them, and Parley can speak into a
 * dialog itself (sip/dialog views toward each side). Early dialogs end with
 * their INVITE; confirmed ones with BYE, the end of a subscription, both
 * parties' connections closing, or a long idle time. Uses proxy/call and
 * proxy/anchor (a dialog's anchored media ends with it).
 */
#ifndef PARLEY_PROXY_DIALOG_H
#define PARLEY_PROXY_DIALOG_H

#include <stdbool.h>
#include <stdint.h>

#include "core/strbuf.h"
#include "core/strview.h"
#include "sip/msg.h"

struct proxy;
struct proxy_dialog;
struct proxy_request;
struct proxy_call;

/* The dialog of a message with these identifiers, in either direction:
 * *from_caller says whether from_tag is the caller's. */
struct proxy_dialog *proxy_dialog_find(struct proxy *p, struct strview call_id,
                                       struct strview from_tag, struct strview to_tag,
                                       bool *from_caller);
/* The dialog of m by its Call-ID, From and To tags (from_caller may be
 * NULL). */
struct proxy_dialog *proxy_dialog_of(struct proxy *p, const struct sip_msg *m, bool *from_caller);
/* The dialog a response of one of pr's branches (arrived on callee_conn)
 * makes or names: early for a 1xx, to be confirmed for a 2xx. NULL when it
 * cannot be kept (no To tag, a bound reached, out of memory). */
struct proxy_dialog *proxy_dialog_from_response(struct proxy *p, const struct sip_msg *resp,
                                                struct proxy_request *pr, uint64_t callee_conn);
/* The dialog a NOTIFY makes when it overtakes its SUBSCRIBE's 2xx (RFC
 * 6665 §4.1.2.4): the subscriber is the NOTIFY's To, the notifier its
 * From. */
struct proxy_dialog *proxy_dialog_from_notify(struct proxy *p, const struct sip_msg *notify,
                                              struct proxy_request *pr, uint64_t notifier_conn);
void proxy_dialog_confirm(struct proxy_dialog *d);
/* An in-dialog request passes from one side: its CSeq is that side's (a
 * request Parley makes toward the other side must go above it), and a
 * target refresh moves that side's remote target. */
void proxy_dialog_saw_request(struct proxy_dialog *d, const struct sip_msg *req, bool from_caller);
/* In-dialog traffic keeps a subscription's dialog; a NOTIFY saying
 * "terminated" ends it. */
void proxy_dialog_touch(struct proxy_dialog *d, const struct sip_msg *req);
/* An offer the ACK (or PRACK) must answer is kept with the dialog. */
void proxy_dialog_keep_late_offer(struct proxy_dialog *d, const struct strbuf *sdp);
/* Ends the dialog and, with it, its call (logged with reason). */
void proxy_dialog_end(struct proxy_dialog *d, const char *reason);
/* The INVITE of call ended: its early dialogs that were never confirmed
 * go. NULL call: nothing. */
void proxy_dialog_end_early(struct proxy *p, struct proxy_call *call);
/* A branch that failed leaves no early dialog behind. */
void proxy_dialog_end_early_tag(struct proxy *p, struct strview call_id, struct strview from_tag,
                                const char *to_tag);
/* A connection closed: the dialogs of which neither party is left end. */
void proxy_dialog_conn_closed(struct proxy *p, uint64_t conn);
void proxy_dialog_free_all(struct proxy *p);
/* The confirmed or early dialog whose anchored media holds the engine
 * stream, or NULL. */
struct proxy_dialog *proxy_dialog_of_stream(struct proxy *p, uint64_t stream);

#endif
