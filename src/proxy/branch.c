/*
 * proxy/branch — forked legs and their responses (see branch.h).
 *
 * A response from a branch is taken in three steps, one concern each:
 * the media policy on the SDP it carries (branch_check_media), the dialogs
 * it makes or changes (branch_note_dialog), and what goes upstream — a
 * provisional or 2xx at once, a failure kept for the best-response choice
 * (proxy/response).
 */
#include "proxy/branch.h"

#include <stdio.h>
#include <string.h>

#include "core/random.h"
#include "proxy/anchor.h"
#include "proxy/dialog.h"
#include "proxy/hangup.h"
#include "proxy/hop.h"
#include "proxy/media.h"
#include "proxy/request.h"
#include "proxy/response.h"
#include "proxy/state.h"

/* What the media policy made of a response's SDP. */
enum branch_media {
    BRANCH_MEDIA_PASS,     /* no SDP, or one that passed (perhaps rewritten) */
    BRANCH_MEDIA_STRIPPED, /* an unreliable provisional's refused SDP: removed */
    BRANCH_MEDIA_REFUSED,  /* a 2xx or reliable provisional Parley refuses */
};

/* Anchored media on a branch's response whose SDP the policy passed: an
 * answer goes to the engine and is rewritten toward the offerer; an offer
 * (late offer) likewise toward the requester, kept in offer_sdp as sent.
 * 0, or the status of a refusal (warning says why). */
static int branch_anchor_response(struct proxy_request *pr, struct proxy_branch *b,
                                  struct sip_msg *resp, bool late_offer, struct strbuf *offer_sdp,
                                  char *warning, size_t cap)
{
    struct proxy *p = pr->p;
    struct proxy_anchor_set **set = &b->anchor;
    bool responder_is_caller = false;
    if (pr->in_dialog) {
        bool requester_is_caller;
        struct proxy_dialog *d = proxy_dialog_of(p, resp, &requester_is_caller);
        if ((d && !d->anchor && d->call && d->call->anchored) || (!d && b->anchored)) {
            snprintf(warning, cap, "an answer in a dialog of an anchored call that is over");
            return 488;
        }
        if (!d || !d->anchor)
            return 0;
        set = &d->anchor;
        responder_is_caller = !requester_is_caller;
    } else if (!*set && b->anchored) {
        /* this branch's media went to the dialog of its first answer: a
         * second answer (another dialog behind the branch) never passes
         * with its own SDP */
        snprintf(warning, cap, "a second answer on an anchored branch");
        return 488;
    } else if (!*set &&
               !(proxy_anchor_enabled(p) && late_offer && pr->method == SIP_METHOD_INVITE)) {
        return 0;
    }
    if (!late_offer)
        return proxy_anchor_answer(p, *set, responder_is_caller, resp, b->conn, warning, cap);
    uint64_t requester_conn = pr->st ? sip_server_txn_conn(pr->st) : 0;
    int status = proxy_anchor_offer(p, set, responder_is_caller, resp, b->conn, requester_conn,
                                    pr->call ? pr->call->call_id : "", pr->caller, warning, cap);
    if (status == 0) {
        struct sip_body_sdp found;
        char why[8];
        strbuf_reset(offer_sdp);
        if (proxy_media_find_sdp(resp, &found, why, sizeof(why)) == 0)
            strbuf_putview(offer_sdp, found.sdp);
        if (!pr->in_dialog) {
            b->anchored = true;
            if (pr->call)
                pr->call->anchored = true;
        }
    }
    return status;
}

/* A retransmitted 2xx carries its answerer's own SDP again: anchored, it
 * is rewritten as the first time, never forwarded as it came. */
static int branch_anchor_again(struct proxy_request *pr, struct proxy_branch *b,
                               struct sip_msg *resp)
{
    struct proxy *p = pr->p;
    if (!proxy_media_has_sdp(resp))
        return 0;
    bool requester_is_caller;
    struct proxy_dialog *d = proxy_dialog_of(p, resp, &requester_is_caller);
    struct proxy_anchor_set *set = b->anchor ? b->anchor : d ? d->anchor : NULL;
    if (!set)
        return b->anchored ? -1 : 0; /* its dialog has ended: the SDP goes nowhere */
    char warning[MEDIA_WARNING_MAX];
    uint64_t requester_conn = pr->st ? sip_server_txn_conn(pr->st) : 0;
    return proxy_anchor_again(p, set, d ? !requester_is_caller : false, resp, b->conn,
                              requester_conn, warning, sizeof(warning));
}

/* The SDP a branch's response carries, checked: an answer to the branch's
 * offer, or an offer (late offer: the request carried none), kept in
 * offer_sdp for the ACK or PRACK that must answer it. */
static enum branch_media branch_check_media(struct proxy_request *pr, struct proxy_branch *b,
                                            struct sip_msg *resp, int status,
                                            struct strbuf *offer_sdp, bool *late_offer,
                                            char *warning, size_t cap, char *summary,
                                            size_t summary_cap)
{
    bool media_method = pr->method == SIP_METHOD_INVITE || pr->method == SIP_METHOD_UPDATE ||
                        pr->method == SIP_METHOD_PRACK;
    *late_offer = false;
    if (!media_method || !resp || status <= 100 || status >= 300 || !proxy_media_has_sdp(resp))
        return BRANCH_MEDIA_PASS;
    uint64_t caller_conn = pr->st ? sip_server_txn_conn(pr->st) : 0;
    enum proxy_media_result mr;
    if (b->offer.len) {
        mr = proxy_media_answer(pr->p, strview_make(b->offer.p, b->offer.len), resp, b->conn,
                                caller_conn, warning, cap, summary, summary_cap);
    } else {
        mr = proxy_media_offer(pr->p, resp, b->conn, caller_conn, false, offer_sdp, warning, cap);
        *late_offer = true;
    }
    if (mr == PROXY_MEDIA_OK) {
        if (branch_anchor_response(pr, b, resp, *late_offer, offer_sdp, warning, cap) == 0)
            return BRANCH_MEDIA_PASS;
        if (status < 200 && !sip_msg_hdr_first(resp, SIP_HDR_RSEQ)) {
            sip_msg_set_body(resp, STRVIEW_EMPTY, STRVIEW_EMPTY);
            return BRANCH_MEDIA_STRIPPED;
        }
        return BRANCH_MEDIA_REFUSED;
    }
    if (status >= 200 || sip_msg_hdr_first(resp, SIP_HDR_RSEQ))
        return BRANCH_MEDIA_REFUSED;
    /* an unreliable provisional: its early SDP does not bind; the response
     * goes on without it */
    sip_msg_set_body(resp, STRVIEW_EMPTY, STRVIEW_EMPTY);
    return BRANCH_MEDIA_STRIPPED;
}

/* A refused 2xx is never forwarded: the answerer gets ACK and BYE, the
 * caller 488 unless another branch still may answer; inside a dialog the
 * requester gets a BYE too. A refused reliable provisional cancels the
 * branch. */
static void branch_refuse_media(struct proxy_request *pr, struct proxy_branch *b,
                                const struct sip_msg *resp, int status, const char *warning)
{
    b->media_refused = true;
    if (status < 200) {
        sip_client_txn_cancel(b->txn, "SIP;cause=488;text=\"media policy\"");
        if (!pr->warning[0])
            snprintf(pr->warning, sizeof(pr->warning), "%s", warning);
        return;
    }
    const struct sip_msg *req = b->txn ? sip_client_txn_request(b->txn) : NULL;
    if (req)
        proxy_hangup_answerer(pr->p, b->conn, req, resp, warning);
    if (pr->in_dialog) {
        bool from_caller;
        struct proxy_dialog *d = proxy_dialog_of(pr->p, resp, &from_caller);
        if (d) {
            /* the requester is on the side the request came from */
            char full[MEDIA_WARNING_MAX + 80];
            proxy_hangup_dialog(pr->p, d, from_caller, !from_caller, 488, warning);
            snprintf(full, sizeof(full), "488 media refused in a re-offer: %s", warning);
            proxy_dialog_end(d, full);
        }
    }
    if (b->status >= 200)
        return; /* a further answer of a branch that already ended: counted then */
    b->status = 488;
    if (pr->pending)
        pr->pending--;
    proxy_response_decide(pr, 488, warning, false);
    if (pr->pending == 0)
        proxy_response_finish(pr);
}

/* The dialogs a provisional or 2xx makes or changes: an early dialog for a
 * 1xx with a tag, a confirmed one for a 2xx of a dialog-creating request,
 * an offer the ACK or PRACK must answer, the hold state of a re-offer. */
static void branch_note_dialog(struct proxy_request *pr, struct proxy_branch *b,
                               const struct sip_msg *resp, int status, bool late_offer,
                               const struct strbuf *offer_sdp)
{
    struct proxy *p = pr->p;
    if (status < 200) {
        struct sip_addr to;
        struct proxy_dialog *d = NULL;
        if (sip_msg_to(resp, &to) == 0 && to.tag.n && !pr->in_dialog &&
            (d = proxy_dialog_from_response(p, resp, pr, b->conn)) != NULL)
            strview_copy(to.tag, b->early_tag, sizeof(b->early_tag));
        /* an offer in a reliable provisional: the PRACK must answer it */
        if (d && late_offer && offer_sdp->len && sip_msg_hdr_first(resp, SIP_HDR_RSEQ))
            proxy_dialog_keep_late_offer(d, offer_sdp);
        return;
    }
    bool creating = pr->method == SIP_METHOD_INVITE || pr->method == SIP_METHOD_SUBSCRIBE ||
                    pr->method == SIP_METHOD_REFER;
    if (creating && !pr->in_dialog) {
        struct proxy_dialog *d = proxy_dialog_from_response(p, resp, pr, b->conn);
        if (d) {
            proxy_dialog_confirm(d);
            if (late_offer)
                proxy_dialog_keep_late_offer(d, offer_sdp);
            if (b->anchor && !d->anchor) {
                /* this branch's media is the call's now */
                d->anchor = b->anchor;
                b->anchor = NULL;
            }
        }
        return;
    }
    if (!pr->in_dialog)
        return;
    struct proxy_dialog *d = proxy_dialog_of(p, resp, NULL);
    if (!d)
        return;
    if ((pr->method == SIP_METHOD_INVITE || pr->method == SIP_METHOD_UPDATE) && b->offer.len &&
        d->call) {
        /* an accepted re-offer holds or resumes the call (parleyctl calls) */
        d->call->on_hold = media_sdp_is_hold(strview_make(b->offer.p, b->offer.len));
    }
    if (late_offer && pr->method == SIP_METHOD_INVITE) {
        /* a re-INVITE without SDP: the ACK will carry the answer */
        proxy_dialog_keep_late_offer(d, offer_sdp);
    }
}

/* A final failure: the branch's early dialog goes, and the response is
 * kept for the best-response choice; the best goes up when every branch
 * has ended. */
static void branch_failed(struct proxy_request *pr, struct proxy_branch *b, struct sip_msg *resp,
                          int status)
{
    proxy_anchor_release(pr->p, b->anchor, "branch failed");
    b->anchor = NULL;
    if (pr->method == SIP_METHOD_INVITE && b->early_tag[0] && pr->st) {
        struct sip_addr from;
        const struct sip_msg *req = sip_server_txn_request(pr->st);
        if (sip_msg_from(req, &from) == 0)
            proxy_dialog_end_early_tag(pr->p, req->call_id, from.tag, b->early_tag);
        b->early_tag[0] = '\0';
    }
    if (b->media_refused) {
        /* the branch was cancelled over its media: the caller hears why */
        proxy_response_decide(pr, 488, NULL, true);
    } else {
        proxy_response_keep(pr, b, resp, status);
        if (pr->method == SIP_METHOD_INVITE && status >= 600)
            proxy_response_cancel_pending(pr, NULL);
    }
    if (pr->pending == 0)
        proxy_response_finish(pr);
}

/* offer_sdp: scratch for a late offer's SDP (what the ACK must answer). */
static void branch_response(struct proxy_branch *b, struct sip_msg *resp, int status,
                            bool retransmission, struct strbuf *offer_sdp)
{
    struct proxy_request *pr = b->pr;

    if (retransmission) {
        /* a 2xx retransmitted by a forked answerer: pass it on (RFC 6026),
         * unless Parley refused it: then it only gets its ACK again */
        if (resp && status >= 200 && status < 300) {
            const struct sip_msg *req = b->txn ? sip_client_txn_request(b->txn) : NULL;
            if (b->media_refused && req)
                proxy_hangup_ack(pr->p, b->conn, req, resp);
            else if (!b->media_refused && branch_anchor_again(pr, b, resp) == 0)
                proxy_response_forward(pr, b, resp, status);
        }
        return;
    }
    char warning[MEDIA_WARNING_MAX] = "", summary[400] = "";
    bool late_offer;
    switch (branch_check_media(pr, b, resp, status, offer_sdp, &late_offer, warning,
                               sizeof(warning), summary, sizeof(summary))) {
    case BRANCH_MEDIA_REFUSED:
        branch_refuse_media(pr, b, resp, status, warning);
        return;
    case BRANCH_MEDIA_STRIPPED:
    case BRANCH_MEDIA_PASS:
        break;
    }

    b->status = status;
    if (status < 200) {
        if (status == 100 || !resp || pr->method != SIP_METHOD_INVITE || pr->forwarded_2xx)
            return;
        branch_note_dialog(pr, b, resp, status, late_offer, offer_sdp);
        proxy_response_forward(pr, b, resp, status);
        return;
    }
    if (pr->pending)
        pr->pending--;
    if (status >= 300 || !resp) {
        branch_failed(pr, b, resp, status);
        return;
    }
    branch_note_dialog(pr, b, resp, status, late_offer, offer_sdp);
    if (pr->call && summary[0])
        snprintf(pr->call->media, sizeof(pr->call->media), "%s", summary);
    bool first = !pr->forwarded_2xx;
    pr->forwarded_2xx = true;
    if (pr->method == SIP_METHOD_INVITE || first)
        proxy_response_forward(pr, b, resp, status);
    if (pr->method == SIP_METHOD_INVITE)
        proxy_response_cancel_pending(pr, "SIP;cause=200;text=\"Call completed elsewhere\"");
}

static void branch_on_response(struct sip_txn_user *u, struct sip_client_txn *t,
                               const struct sip_msg *cresp, int status, bool retransmission)
{
    (void)t;
    /* The transaction layer lends us the response the proxy itself passed
     * to sip_txn_client_receive (see proxy_on_message); editing it here,
     * before it is freed, is ours to do. */
    struct strbuf offer_sdp = STRBUF_INIT;
    branch_response((struct proxy_branch *)u, (struct sip_msg *)cresp, status, retransmission,
                    &offer_sdp);
    strbuf_free(&offer_sdp);
}

static void branch_on_terminated(struct sip_txn_user *u, struct sip_client_txn *t)
{
    (void)t;
    struct proxy_branch *b = (struct proxy_branch *)u;
    struct proxy_request *pr = b->pr;
    if (b->status < 200 && pr->pending) {
        /* ended without a final response reported: count it as failed */
        pr->pending--;
        if (pr->pending == 0)
            proxy_response_finish(pr);
    }
    b->txn = NULL;
    proxy_request_maybe_free(pr);
}

/* The media of the copy about to leave on conn: an offer is checked (and
 * kept as the branch's offer); a PRACK answers the offer of the reliable
 * provisional it acknowledges (kept in the early dialog), or without one
 * may carry a new offer. False (with pr's best response decided) when the
 * copy may not go. */
/* Anchored media (media.anchor = always) on a copy about to leave on conn,
 * after the policy passed its offer: the SDP is rewritten toward the
 * receiving leg and kept as the offer sent (`offer`). An out-of-dialog
 * INVITE gets a set of its own for this branch (*set); a re-offer uses
 * its dialog's. Returns 0 or the status refusing the copy. */
static int branch_anchor_offer(struct proxy_request *pr, struct sip_msg *m, uint64_t conn,
                               struct strbuf *offer, struct proxy_anchor_set **set, char *warning,
                               size_t cap)
{
    struct proxy *p = pr->p;
    if (!proxy_media_has_sdp(m))
        return 0;
    int status;
    if (!pr->in_dialog) {
        /* whether a new call is anchored is the configuration's choice now */
        if (!proxy_anchor_enabled(p) || m->method != SIP_METHOD_INVITE)
            return 0;
        status = proxy_anchor_offer(p, set, true, m, pr->st ? sip_server_txn_conn(pr->st) : 0, conn,
                                    pr->call ? pr->call->call_id : "", pr->caller, warning, cap);
        if (status == 0 && pr->call)
            pr->call->anchored = true;
    } else {
        /* an anchored call stays anchored whatever the configuration says
         * since: its parties know only Parley's addresses and keys */
        bool from_caller;
        struct proxy_dialog *d = proxy_dialog_of(p, m, &from_caller);
        bool anchored_call = d && d->call && d->call->anchored;
        if ((proxy_anchor_enabled(p) || anchored_call) &&
            (m->method == SIP_METHOD_PRACK || !d || (!d->anchor && d->state == DIALOG_EARLY))) {
            /* an early dialog's media is its branch's, not reachable here */
            snprintf(warning, cap, "an offer or answer in an early dialog cannot be anchored");
            return 488;
        }
        if (!d || !d->anchor)
            return 0; /* a call set up before anchoring was on stays as it is */
        status = proxy_anchor_offer(p, &d->anchor, from_caller, m,
                                    pr->st ? sip_server_txn_conn(pr->st) : 0, conn,
                                    d->call ? d->call->call_id : "", d->caller_aor, warning, cap);
    }
    if (status == 0) {
        struct sip_body_sdp found;
        char why[8];
        strbuf_reset(offer);
        if (proxy_media_find_sdp(m, &found, why, sizeof(why)) == 0)
            strbuf_putview(offer, found.sdp);
    }
    return status;
}

static bool branch_check_offer(struct proxy_request *pr, struct sip_msg *m, uint64_t conn,
                               struct strbuf *offer, struct proxy_anchor_set **set)
{
    struct proxy *p = pr->p;
    if (m->method != SIP_METHOD_INVITE && m->method != SIP_METHOD_UPDATE &&
        m->method != SIP_METHOD_PRACK)
        return true;
    struct proxy_dialog *early = m->method == SIP_METHOD_PRACK ? proxy_dialog_of(p, m, NULL) : NULL;
    if (early && !early->late_offer.len)
        early = NULL;
    char warning[MEDIA_WARNING_MAX] = "", summary[400] = "";
    uint64_t in_conn = pr->st ? sip_server_txn_conn(pr->st) : 0;
    enum proxy_media_result mr = PROXY_MEDIA_OK;
    if (!early) {
        /* an offer the engine will anchor carries none of these keys on */
        struct proxy_dialog *d = pr->in_dialog ? proxy_dialog_of(p, m, NULL) : NULL;
        bool anchored = pr->in_dialog ? d && d->anchor
                                      : proxy_anchor_enabled(p) && m->method == SIP_METHOD_INVITE;
        mr = proxy_media_offer(p, m, in_conn, conn, anchored, offer, warning, sizeof(warning));
    } else if (proxy_media_has_sdp(m)) {
        mr = proxy_media_answer(p, strview_make(early->late_offer.p, early->late_offer.len), m,
                                in_conn, conn, warning, sizeof(warning), summary, sizeof(summary));
        if (mr == PROXY_MEDIA_OK) {
            strbuf_reset(&early->late_offer); /* answered */
            if (early->call && summary[0])
                snprintf(early->call->media, sizeof(early->call->media), "%s", summary);
        }
    }
    if (mr == PROXY_MEDIA_OK) {
        int status = branch_anchor_offer(pr, m, conn, offer, set, warning, sizeof(warning));
        if (status == 0)
            return true;
        proxy_response_decide(pr, status, warning, true);
        return false;
    }
    proxy_response_decide(pr, mr == PROXY_MEDIA_BAD ? 400 : 488, warning, true);
    return false;
}

bool proxy_branch_fork(struct proxy_request *pr, const char *bytes, size_t len,
                       const char *target_uri, uint64_t conn, const char *loop_hash)
{
    struct proxy *p = pr->p;
    if (pr->nbranches == PROXY_MAX_BRANCHES)
        return false;
    struct sip_msg *m = NULL;
    struct sip_parse_error perr;
    if (sip_msg_parse(bytes, len, &m, &perr) != 0)
        return false;
    if (target_uri)
        sip_msg_set_request_uri(m, strview_cstr(target_uri));
    struct strbuf offer = STRBUF_INIT;
    struct proxy_anchor_set *anchor = NULL;
    if (!branch_check_offer(pr, m, conn, &offer, &anchor)) {
        proxy_anchor_release(p, anchor, "offer refused");
        strbuf_free(&offer);
        sip_msg_free(m);
        return false;
    }
    if (pr->rr_in[0]) {
        /* leaving through another listener than it came in on (a partner's
         * call to a user, or a user's to a partner): each side must be
         * given the address it can reach Parley at (RFC 5658) */
        char out_rr[320];
        proxy_hop_record_route(p, conn, out_rr, sizeof(out_rr));
        if (strcmp(out_rr, pr->rr_in) != 0)
            sip_msg_hdr_prepend(m, SIP_HDR_RECORD_ROUTE, "Record-Route",
                                sip_msg_strdup(m, out_rr, strlen(out_rr)));
    }
    char branch[64], rnd[9];
    random_token(rnd, 8);
    snprintf(branch, sizeof(branch), PROXY_HOP_BRANCH_PREFIX "%s.%s", loop_hash, rnd);
    struct strbuf via = STRBUF_INIT;
    proxy_hop_via(p, conn, branch, &via);
    sip_msg_hdr_prepend(m, SIP_HDR_VIA, "Via", sip_msg_strdup(m, via.p, via.len));
    strbuf_free(&via);

    struct proxy_branch *b = &pr->branches[pr->nbranches];
    b->offer = offer;
    b->anchor = anchor;
    /* a copy whose SDP was anchored (its own set, or its dialog's): no SDP
     * coming back on this branch ever passes as it came */
    struct proxy_dialog *within = pr->in_dialog ? proxy_dialog_of(p, m, NULL) : NULL;
    b->anchored = anchor != NULL || (within && within->anchor);
    b->user.response = branch_on_response;
    b->user.terminated = branch_on_terminated;
    b->pr = pr;
    b->conn = conn;
    b->status = 0;
    b->txn = sip_txn_client_send(p->txn, conn, m, &b->user);
    if (!b->txn) {
        strbuf_free(&b->offer);
        proxy_anchor_release(p, b->anchor, "not sent");
        b->anchor = NULL;
        return false;
    }
    pr->nbranches++;
    pr->pending++;
    return true;
}
