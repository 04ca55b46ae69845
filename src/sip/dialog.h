/*
 * sip/dialog — one side's view of a SIP dialog (RFC 3261 §12): the
 * primitive every part of Parley that takes part in a dialog builds on —
 * presence as notifier, the proxy when it ends a call of its own accord,
 * and the user agents to come (a back-to-back user agent, a conference
 * focus).
 *
 * A view holds what that side needs to send in-dialog requests: Call-ID,
 * its own URI and tag, the remote URI and tag, the remote target (the peer's
 * Contact), the route set, and both CSeq counters. It is made from a request
 * we accept (UAS) or from a request we sent and a response to it (UAC),
 * matched against later messages, updated by target refreshes, and turned
 * into requests with the right CSeq, tags and Route headers.
 *
 * Plain data (the strings are the view's own, freed by sip_dialog_clear),
 * no timers, no threads: the owner decides when a dialog ends.
 */
#ifndef PARLEY_SIP_DIALOG_H
#define PARLEY_SIP_DIALOG_H

#include <stdbool.h>
#include <stdint.h>

#include "core/strbuf.h"
#include "core/strview.h"
#include "sip/msg.h"

/* The highest CSeq a request of ours may carry (RFC 3261 §8.1.1.5: below
 * 2^31). */
#define SIP_DIALOG_CSEQ_MAX 0x7fffffffu

struct sip_dialog {
    char *call_id;
    char *local_uri; /* our side's URI (From in our requests), no tag */
    char *local_tag;
    char *remote_uri; /* the peer's URI (To in our requests), no tag */
    char *remote_tag;
    char *remote_target; /* the peer's Contact URI: the Request-URI of our requests */
    char *route_set;     /* Route values, comma-separated, in the order to send; or NULL */
    uint32_t local_cseq; /* the last CSeq we sent (the next is one more) */
    uint32_t remote_cseq;
    bool has_remote_cseq;
};

/* As the UAS of req (a dialog-creating request we answer with local_tag):
 * remote is the request's From, local its To (with our tag), the target its
 * Contact, the route set its Record-Route in order (RFC 3261 §12.1.1).
 * Returns 0, -EINVAL (no From tag, no Contact, a header that does not
 * parse) or -ENOMEM; d is left empty on failure. */
int sip_dialog_uas(struct sip_dialog *d, const struct sip_msg *req, const char *local_tag);
/* As the UAC of req, from a response to it with a To tag: the route set is
 * the response's Record-Route reversed (§12.1.2); the target its Contact.
 * Same returns (-EINVAL also without a To tag). */
int sip_dialog_uac(struct sip_dialog *d, const struct sip_msg *req, const struct sip_msg *resp);
/* From parts, for a view not made from a request of one's own or an
 * answer to it — a proxy that watches a dialog pass and must speak into it
 * (a BYE when a re-offer breaks the media policy): local and remote are
 * each side's address with its tag, target the remote Contact URI, which
 * may be empty (no request can be built until one is set). No route set:
 * such a view's requests leave on the party's own connection. Either tag
 * may be empty (a From without one, RFC 3261 §12.1.1). Returns 0, -EINVAL
 * (no Call-ID) or -ENOMEM; d empty on failure. */
int sip_dialog_init(struct sip_dialog *d, struct strview call_id, const struct sip_addr *local,
                    const struct sip_addr *remote, struct strview target);
/* Frees the view's strings and zeroes it (safe on a zeroed view). */
void sip_dialog_clear(struct sip_dialog *d);

/* Does an incoming request belong to the dialog (Call-ID, From tag = the
 * remote tag, To tag = ours)? */
bool sip_dialog_matches(const struct sip_dialog *d, const struct sip_msg *req);

/* An in-dialog request from the peer: its CSeq must be above the last one
 * seen (RFC 3261 §12.2.2; -EPROTO otherwise: answer 500), and a target
 * refresh (a Contact in INVITE, UPDATE, SUBSCRIBE, NOTIFY, REFER) moves the
 * remote target. Returns 0, -EPROTO or -ENOMEM (nothing changed then). */
int sip_dialog_update(struct sip_dialog *d, const struct sip_msg *req);
/* The peer's CSeq space, without a request of its own to learn from (a
 * proxy that saw the peer's requests pass): remote_cseq = max(it, cseq). */
void sip_dialog_note_remote_cseq(struct sip_dialog *d, uint32_t cseq);
/* Our CSeq space likewise: the next request we make uses more than cseq. */
void sip_dialog_note_local_cseq(struct sip_dialog *d, uint32_t cseq);
/* Moves the remote target (a Contact URI), e.g. a proxy's view of a party
 * whose refresh it routed. 0 or -ENOMEM. */
int sip_dialog_set_target(struct sip_dialog *d, struct strview uri);

/*
 * Appends an in-dialog request to out: Request-URI the remote target,
 * `via` as its single Via value (the caller's sent-by and branch), Route
 * from the route set, From/To with the tags, Call-ID, CSeq one above the
 * last we sent (method ACK: the cseq given, which must be the INVITE's),
 * Max-Forwards 70, then extra_headers (complete CRLF-terminated lines or
 * NULL), Content-Type when a body is given, Content-Length. Returns 0,
 * -EINVAL (no remote target yet, a method that is no token, extra headers
 * that are not whole lines), -EOVERFLOW (our CSeq reached
 * SIP_DIALOG_CSEQ_MAX: the peer pushed it there) or -ENOMEM; out unchanged on failure; local_cseq
 * moves only on success.
 */
int sip_dialog_request(struct sip_dialog *d, const char *method, uint32_t ack_cseq, const char *via,
                       const char *extra_headers, const char *content_type, struct strview body,
                       struct strbuf *out);

#endif
