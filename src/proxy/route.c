/*
 * proxy/route — where a request goes (see route.h).
 */
#include "proxy/route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/random.h"
#include "proxy/anchor.h"
#include "proxy/branch.h"
#include "proxy/call.h"
#include "proxy/dialog.h"
#include "proxy/federation_priv.h"
#include "proxy/hangup.h"
#include "proxy/hop.h"
#include "proxy/media.h"
#include "proxy/reject.h"
#include "proxy/request.h"
#include "proxy/response.h"
#include "proxy/state.h"

/* The event package of a SUBSCRIBE or NOTIFY ("presence" of
 * "presence;id=1"); empty when there is none. */
static struct strview route_event_package(const struct sip_msg *m)
{
    const struct sip_hdr *h = sip_msg_hdr_first(m, SIP_HDR_EVENT);
    if (!h || !h->value.n)
        return STRVIEW_EMPTY;
    const char *semi = memchr(h->value.p, ';', h->value.n);
    return strview_trim(strview_make(h->value.p, semi ? (size_t)(semi - h->value.p) : h->value.n));
}

/* Does in_conn belong to aor: a connection that user registered over, or
 * for a partner's user one whose certificate proves the domain? */
static bool route_party_on_conn(struct proxy *p, const char *aor, uint64_t in_conn)
{
    const char *at = strrchr(aor, '@');
    if (!at)
        return false;
    if (strcasecmp(at + 1, p->domain) == 0) {
        char user[PROXY_USER_MAX];
        snprintf(user, sizeof(user), "%.*s", (int)(at - aor), aor);
        return registrar_find_flow(p->registrar, user, in_conn) != NULL;
    }
    return proxy_federation_conn_proves(p, in_conn, at + 1);
}

/* A NOTIFY with no dialog yet: the SUBSCRIBE in flight it answers (same
 * Call-ID, the subscriber's tag as To tag, the same event package), sent
 * by the party that SUBSCRIBE went to. */
static struct proxy_request *route_subscribe_of_notify(struct proxy *p, const struct sip_msg *req,
                                                       uint64_t in_conn)
{
    struct sip_addr from, to, sub_from;
    if (req->method != SIP_METHOD_NOTIFY || sip_msg_from(req, &from) != 0 ||
        sip_msg_to(req, &to) != 0 || !from.tag.n || !to.tag.n)
        return NULL;
    for (struct proxy_request *pr = p->subscribes; pr; pr = pr->sub_next) {
        if (!pr->st)
            continue;
        const struct sip_msg *sub = sip_server_txn_request(pr->st);
        if (strview_eq_view(sub->call_id, req->call_id) && sip_msg_from(sub, &sub_from) == 0 &&
            strview_eq_view(sub_from.tag, to.tag) &&
            strview_eq_view_nocase(route_event_package(sub), route_event_package(req)))
            return route_party_on_conn(p, pr->callee, in_conn) ? pr : NULL;
    }
    return NULL;
}

/* Edits common to every copy: our realm's credentials removed (they were
 * for us: the next hop could test password guesses against them),
 * Max-Forwards, and (record_route) our Record-Route for the side the
 * request came from, kept in pr->rr_in for the branches. */
static void route_prepare(struct proxy_request *pr, struct sip_msg *req, uint64_t in_conn,
                          bool record_route)
{
    struct proxy *p = pr->p;
    proxy_hop_strip_own_credentials(p, req);
    sip_msg_set_max_forwards(req, req->max_forwards < 0 ? 70 : req->max_forwards - 1);
    if (!record_route)
        return;
    proxy_hop_record_route(p, in_conn, pr->rr_in, sizeof(pr->rr_in));
    sip_msg_hdr_prepend(req, SIP_HDR_RECORD_ROUTE, "Record-Route",
                        sip_msg_strdup(req, pr->rr_in, strlen(pr->rr_in)));
}

void proxy_route_new_request(struct proxy *p, struct sip_server_txn *st, struct sip_msg *req,
                             const char *caller, const char *callee_user)
{
    const struct binding *bindings[PROXY_MAX_BRANCHES];
    char loop[17];
    uint64_t in_conn = sip_server_txn_conn(st);

    proxy_hop_loop_hash(req, loop);
    if (proxy_hop_is_loop(req, loop)) {
        proxy_reject(p, st, 482, NULL, "the request came back to us");
        return;
    }
    size_t n = registrar_lookup(p->registrar, callee_user, bindings, PROXY_MAX_BRANCHES);
    if (n > PROXY_MAX_BRANCHES)
        n = PROXY_MAX_BRANCHES;
    struct proxy_request *pr = proxy_request_new(p, st, caller);
    if (!pr)
        return;
    snprintf(pr->caller, sizeof(pr->caller), "%s", caller);
    snprintf(pr->callee, sizeof(pr->callee), "%s@%s", callee_user, p->domain);
    if (req->method == SIP_METHOD_INVITE)
        pr->call = proxy_call_new(p, req, pr->caller, pr->callee);
    if (n == 0) {
        proxy_reject(p, st, 480, NULL, "callee has no registered device");
        proxy_response_ends_call(pr, 480, "Temporarily Unavailable");
        return;
    }

    bool rr = req->method == SIP_METHOD_INVITE || req->method == SIP_METHOD_SUBSCRIBE ||
              req->method == SIP_METHOD_REFER;
    route_prepare(pr, req, in_conn, rr);
    struct strbuf bytes = STRBUF_INIT;
    if (sip_msg_print(req, &bytes) != 0) {
        strbuf_free(&bytes);
        sip_server_txn_reply(st, 500, NULL, NULL);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        size_t before = pr->nbranches;
        if (proxy_branch_fork(pr, bytes.p, bytes.len, bindings[i]->contact, bindings[i]->conn,
                              loop) &&
            pr->nbranches > before)
            snprintf(pr->branches[before].asserted, sizeof(pr->branches[before].asserted), "%s",
                     pr->callee);
    }
    strbuf_free(&bytes);
    if (pr->nbranches == 0) {
        if (pr->best_status) {
            proxy_response_finish(pr); /* e.g. 488: no device may get this offer */
        } else {
            sip_server_txn_reply(st, 480, NULL, NULL);
            proxy_response_ends_call(pr, 480, "Temporarily Unavailable");
        }
    }
}

/* Is the request on in_conn from the dialog party its tags claim? A
 * dialog's identifiers are no credential (they travel in dialog-event
 * NOTIFYs, Replaces, partners' logs): the sender must use that party's
 * connection, one that party registered over, or — for a partner's user —
 * a connection whose certificate proves that party's domain. */
static bool route_dialog_sender_ok(struct proxy *p, const struct proxy_dialog *d, bool from_caller,
                                   uint64_t in_conn)
{
    if (in_conn == (from_caller ? d->caller_conn : d->callee_conn))
        return true;
    return route_party_on_conn(p, from_caller ? d->caller_aor : d->callee_aor, in_conn);
}

/* Where an in-dialog request goes: a registered device whose contact is the
 * Request-URI (its current connection), else the dialog's other side. */
static uint64_t route_dialog_target(struct proxy *p, const struct sip_msg *req, uint64_t in_conn,
                                    struct proxy_dialog **dout, bool *from_caller, bool *sender_ok)
{
    struct sip_addr from, to;
    *dout = NULL;
    *sender_ok = false;
    if (sip_msg_from(req, &from) != 0 || sip_msg_to(req, &to) != 0)
        return 0;
    struct proxy_dialog *d = proxy_dialog_find(p, req->call_id, from.tag, to.tag, from_caller);
    if (!d)
        return 0;
    *dout = d;
    *sender_ok = route_dialog_sender_ok(p, d, *from_caller, in_conn);
    if (!*sender_ok)
        return 0;
    /* The other party may have moved to a new connection: its binding says
     * where. Only that party's binding counts: a Request-URI naming someone
     * else's device must not turn a dialog into a way to reach them. */
    const char *other = *from_caller ? d->callee_aor : d->caller_aor;
    const struct binding *b = registrar_find_contact(p->registrar, &req->ruri);
    if (b && p->env.conn_info(p->env.arg, b->conn)) {
        char aor[PROXY_ADDR_MAX];
        snprintf(aor, sizeof(aor), "%s@%s", b->user, p->domain);
        if (strcmp(aor, other) == 0)
            return b->conn;
    }
    uint64_t conn = *from_caller ? d->callee_conn : d->caller_conn;
    return p->env.conn_info(p->env.arg, conn) ? conn : 0;
}

void proxy_route_in_dialog(struct proxy *p, struct sip_server_txn *st, struct sip_msg *req)
{
    struct proxy_dialog *d;
    bool from_caller = false, sender_ok;
    uint64_t in_conn = sip_server_txn_conn(st);
    uint64_t conn = route_dialog_target(p, req, in_conn, &d, &from_caller, &sender_ok);
    struct proxy_request *sub = d ? NULL : route_subscribe_of_notify(p, req, in_conn);
    if (sub && (d = proxy_dialog_from_notify(p, req, sub, in_conn)) != NULL) {
        /* the NOTIFY overtook the 2xx: it makes the dialog (RFC 6665) */
        proxy_dialog_confirm(d);
        conn = route_dialog_target(p, req, in_conn, &d, &from_caller, &sender_ok);
    }
    if (!d) {
        proxy_reject(p, st, 481, NULL, "no dialog Parley routed");
        return;
    }
    if (!sender_ok) {
        proxy_reject(p, st, 403, "Forbidden (not a party of this dialog)",
                     "in-dialog request from a connection of no party of the dialog");
        return;
    }
    proxy_dialog_saw_request(d, req, from_caller);
    const char *other = from_caller ? d->callee_aor : d->caller_aor;
    const char *other_domain = strchr(other, '@');
    struct partner *pt = !conn && other_domain ? proxy_federation_find(p, other_domain + 1) : NULL;
    if (pt) {
        /* the other side is a partner's user: its server is reached again
         * (the link closed when idle, or the partner restarted) */
        struct proxy_request *pr =
            proxy_request_new(p, st, from_caller ? d->caller_aor : d->callee_aor);
        if (!pr)
            return;
        pr->in_dialog = true;
        proxy_hop_loop_hash(req, pr->loop_hash);
        proxy_hop_strip_identity_headers(req);
        route_prepare(pr, req, sip_server_txn_conn(st), false);
        if (sip_msg_print(req, &pr->held) != 0) {
            sip_server_txn_reply(st, 500, NULL, NULL);
            return;
        }
        if (req->method == SIP_METHOD_BYE)
            proxy_dialog_end(d, from_caller ? "BYE from caller" : "BYE from callee");
        proxy_federation_send(p, pt, pr);
        return;
    }
    if (!conn) {
        proxy_reject(p, st, 480, "Temporarily Unavailable (connection gone)",
                     "the other side's connection is gone");
        if (req->method == SIP_METHOD_BYE)
            proxy_dialog_end(d, from_caller ? "BYE from caller" : "BYE from callee");
        return;
    }
    /* identities inside a dialog are no more the client's to assert */
    proxy_hop_strip_identity_headers(req);
    struct proxy_request *pr =
        proxy_request_new(p, st, from_caller ? d->caller_aor : d->callee_aor);
    if (!pr)
        return;
    pr->in_dialog = true;
    char loop[17];
    proxy_hop_loop_hash(req, loop);
    route_prepare(pr, req, sip_server_txn_conn(st), false);
    struct strbuf bytes = STRBUF_INIT;
    if (sip_msg_print(req, &bytes) != 0) {
        sip_server_txn_reply(st, 500, NULL, NULL);
    } else if (!proxy_branch_fork(pr, bytes.p, bytes.len, NULL, conn, loop)) {
        if (!pr->best_status)
            proxy_response_decide(pr, 500, NULL, false);
        proxy_response_finish(pr);
    }
    strbuf_free(&bytes);
    if (req->method == SIP_METHOD_BYE)
        proxy_dialog_end(d, from_caller ? "BYE from caller" : "BYE from callee");
    else
        proxy_dialog_touch(d, req);
}

void proxy_route_ack(struct proxy *p, uint64_t in_conn, struct sip_msg *ack)
{
    struct proxy_dialog *d;
    bool from_caller, sender_ok;
    /* the ACK of a 2xx is end-to-end: routed statelessly along the dialog */
    proxy_hop_pop_own_routes(p, ack);
    uint64_t conn = route_dialog_target(p, ack, in_conn, &d, &from_caller, &sender_ok);
    if (d && !sender_ok) {
        proxy_reject_log(p, ack, in_conn, 0, "in-dialog ACK from a connection of no party");
        sip_msg_free(ack);
        return;
    }
    if (!conn && d) {
        const char *other = from_caller ? d->callee_aor : d->caller_aor;
        const char *at = strchr(other, '@');
        if (at)
            conn = proxy_federation_conn(p, at + 1); /* an ACK cannot wait for a new link */
    }
    if (!conn || ack->max_forwards == 0) {
        /* an ACK for nothing Parley knows (or cannot reach): counted, not
         * logged — anyone can send them */
        if (!d)
            p->acks_dropped++;
        sip_msg_free(ack);
        return;
    }
    bool end_dialog = false;
    char warning[MEDIA_WARNING_MAX] = "";
    if (d && d->late_offer.len && proxy_media_has_sdp(ack)) {
        char summary[400] = "";
        enum proxy_media_result mr =
            proxy_media_answer(p, strview_make(d->late_offer.p, d->late_offer.len), ack, in_conn,
                               conn, warning, sizeof(warning), summary, sizeof(summary));
        strbuf_free(&d->late_offer);
        if (mr != PROXY_MEDIA_OK) {
            /* the ACK still goes (it ends the 2xx's retransmissions), without
             * the refused answer; then both sides get a BYE */
            sip_msg_set_body(ack, STRVIEW_EMPTY, STRVIEW_EMPTY);
            end_dialog = true;
        } else if (d->anchor && proxy_anchor_answer(p, d->anchor, from_caller, ack, in_conn,
                                                    warning, sizeof(warning)) != 0) {
            /* anchored: the answer goes to the engine and is rewritten;
             * one that cannot be is not forwarded either */
            sip_msg_set_body(ack, STRVIEW_EMPTY, STRVIEW_EMPTY);
            end_dialog = true;
        } else if (d->call && summary[0]) {
            snprintf(d->call->media, sizeof(d->call->media), "%s", summary);
        }
    } else if (proxy_media_has_sdp(ack)) {
        /* an ACK answers only a late offer (RFC 3261 §13.2.2.4); an SDP
         * here answers nothing Parley checked, and may hold keys */
        char cid[128];
        strview_copy(ack->call_id, cid, sizeof(cid));
        log_info("media.ack_sdp_removed", "call_id", cid, "reason", "no offer to answer");
        sip_msg_set_body(ack, STRVIEW_EMPTY, STRVIEW_EMPTY);
    }
    proxy_hop_strip_own_credentials(p, ack);
    sip_msg_set_max_forwards(ack, ack->max_forwards < 0 ? 70 : ack->max_forwards - 1);
    char branch[48], rnd[17];
    random_token(rnd, 16);
    snprintf(branch, sizeof(branch), "z9hG4bKpa%s", rnd);
    struct strbuf via = STRBUF_INIT;
    proxy_hop_via(p, conn, branch, &via);
    sip_msg_hdr_prepend(ack, SIP_HDR_VIA, "Via", sip_msg_strdup(ack, via.p, via.len));
    strbuf_free(&via);
    struct strbuf out = STRBUF_INIT;
    if (sip_msg_print(ack, &out) == 0)
        p->env.send(p->env.arg, conn, &out);
    strbuf_free(&out);
    if (end_dialog) {
        char full[MEDIA_WARNING_MAX + 80];
        proxy_hangup_dialog(p, d, true, true, 488, warning);
        snprintf(full, sizeof(full), "488 media refused in the ACK: %s", warning);
        proxy_dialog_end(d, full);
    }
    sip_msg_free(ack);
}

void proxy_route_cancel(struct proxy *p, struct sip_server_txn *cancel_st,
                        struct sip_server_txn *invite_st)
{
    /* A CANCEL is hop-by-hop: it comes over its INVITE's connection. The
     * branch and sent-by it matches on are no credential (the callee's
     * devices and partners see them), so from elsewhere it cancels
     * nothing. */
    if (invite_st && sip_server_txn_conn(invite_st) != sip_server_txn_conn(cancel_st)) {
        proxy_reject(p, cancel_st, 481, NULL, "CANCEL over another connection than its INVITE");
        return;
    }
    if (!invite_st) {
        sip_server_txn_reply(cancel_st, 481, NULL, NULL);
        return;
    }
    sip_server_txn_reply(cancel_st, 200, NULL, NULL);
    struct proxy_request *pr = sip_server_txn_context(invite_st);
    if (!pr || sip_server_txn_answered(invite_st))
        return;
    pr->cancelling = true;
    const struct sip_msg *c = sip_server_txn_request(cancel_st);
    struct sip_hdr *reason = sip_msg_hdr_first(c, SIP_HDR_REASON);
    char rbuf[256] = "";
    if (reason)
        strview_copy(reason->value, rbuf, sizeof(rbuf));
    proxy_response_cancel_pending(pr, rbuf[0] ? rbuf : NULL);
    if (pr->nbranches == 0) {
        /* still waiting for a partner connection: it must never ring */
        proxy_federation_forget_waiter(pr);
        sip_server_txn_reply(invite_st, 487, NULL, NULL);
        proxy_response_ends_call(pr, 487, "Request Terminated");
    }
}

void proxy_route_to_partner(struct proxy *p, struct sip_server_txn *st, struct sip_msg *req,
                            const char *caller, struct partner *pt)
{
    uint64_t in_conn = sip_server_txn_conn(st);
    struct proxy_request *pr = proxy_request_new(p, st, caller);
    if (!pr)
        return;
    proxy_hop_loop_hash(req, pr->loop_hash);
    if (proxy_hop_is_loop(req, pr->loop_hash)) {
        proxy_reject(p, st, 482, NULL, "the request came back to us");
        return;
    }
    snprintf(pr->caller, sizeof(pr->caller), "%s", caller);
    char user[PROXY_USER_MAX] = "";
    strview_copy(req->ruri.user, user, sizeof(user));
    snprintf(pr->callee, sizeof(pr->callee), "%s@%s", user, pt->domain);
    if (req->method == SIP_METHOD_INVITE)
        pr->call = proxy_call_new(p, req, pr->caller, pr->callee);
    bool rr = req->method == SIP_METHOD_INVITE || req->method == SIP_METHOD_SUBSCRIBE ||
              req->method == SIP_METHOD_REFER;
    route_prepare(pr, req, in_conn, rr);
    if (sip_msg_print(req, &pr->held) != 0) {
        sip_server_txn_reply(st, 500, NULL, NULL);
        return;
    }
    proxy_federation_send(p, pt, pr);
}
