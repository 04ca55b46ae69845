/*
 * Forwarding: forking a request to a user's devices, choosing the best
 * response, CANCEL, in-dialog requests and the ACK of a 2xx.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/log_limit.h"
#include "core/random.h"
#include "proxy/federation.h"
#include "proxy/proxy_priv.h"
#include "sip/build.h"

/* --- proxy_request lifetime ------------------------------------------------
 * A proxy_request lives while its server transaction or any branch's client
 * transaction lives: the transaction layer's terminated hooks detach them,
 * and the last one out frees it. */

static size_t proxy_request_live_branches(const struct proxy_request *pr)
{
    size_t n = 0;
    for (size_t i = 0; i < pr->nbranches; i++)
        if (pr->branches[i].txn)
            n++;
    return n;
}

static bool proxy_party_on_conn(struct proxy *p, const char *aor, uint64_t in_conn);

static void proxy_subscribe_unlist(struct proxy_request *pr)
{
    if (!pr->sub_listed)
        return;
    if (pr->sub_prev)
        pr->sub_prev->sub_next = pr->sub_next;
    else
        pr->p->subscribes = pr->sub_next;
    if (pr->sub_next)
        pr->sub_next->sub_prev = pr->sub_prev;
    pr->sub_listed = false;
}

/* --- requests in progress per sender (limits.transactions_per_user) ------- */

static struct proxy_user_load *proxy_user_load_find(struct proxy *p, const char *aor, uint64_t h)
{
    for (struct hmap_node *n = hmap_first(&p->user_loads, h); n; n = hmap_next(n, h)) {
        struct proxy_user_load *u = container_of(n, struct proxy_user_load, node);
        if (strcmp(u->aor, aor) == 0)
            return u;
    }
    return NULL;
}

/* Counts one more request of aor in progress; false when aor is at its
 * bound (or out of memory). */
static bool proxy_user_load_take(struct proxy *p, const char *aor, struct proxy_user_load **out)
{
    uint64_t h = hash_bytes(aor, strlen(aor));
    struct proxy_user_load *u = proxy_user_load_find(p, aor, h);
    if (u && u->n >= p->cfg.max_transactions_per_user)
        return false;
    if (!u) {
        u = calloc(1, sizeof(*u));
        if (!u)
            return false;
        snprintf(u->aor, sizeof(u->aor), "%s", aor);
        hmap_insert(&p->user_loads, &u->node, h);
    }
    u->n++;
    *out = u;
    return true;
}

static void proxy_user_load_put(struct proxy *p, struct proxy_user_load *u)
{
    if (u && --u->n == 0) {
        hmap_remove(&p->user_loads, &u->node);
        free(u);
    }
}

void proxy_request_done(struct proxy_request *pr)
{
    proxy_user_load_put(pr->p, pr->load);
    pr->load = NULL;
}

void proxy_request_maybe_free(struct proxy_request *pr)
{
    if (pr->st || pr->waiting_for || proxy_request_live_branches(pr))
        return;
    proxy_request_done(pr);
    proxy_subscribe_unlist(pr);
    if (pr->call)
        proxy_call_release(pr->call);
    for (size_t i = 0; i < pr->nbranches; i++)
        strbuf_free(&pr->branches[i].offer);
    strbuf_free(&pr->best);
    strbuf_free(&pr->held);
    free(pr);
}

/* The transaction bounds are full: 503, statelessly, logged at most a few
 * times a second with the count refused. */
static void proxy_refuse_overload(struct proxy *p, struct sip_server_txn *st, const char *bound)
{
    p->overload_refused++;
    uint64_t suppressed = 0;
    if (log_limit_allow(p->overload_log, clock_now_ms(timer_heap_clock(p->timers)),
                        hash_bytes(bound, strlen(bound)), &suppressed)) {
        struct proxy_stats ps;
        proxy_stats(p, &ps);
        log_warn("sip.overload", "bound", bound, "conn", LOG_INT(sip_server_txn_conn(st)), "held",
                 LOG_INT(ps.held_transactions), "refused", LOG_INT(suppressed + 1), "refused_total",
                 LOG_INT(p->overload_refused));
    }
    sip_server_txn_reply(st, 503, "Service Unavailable (too many requests in progress)",
                         "Retry-After: 5\r\n");
}

/* Starts the state of a request Parley works on beyond this dispatch
 * (forwarding, waiting for a partner) on behalf of sender (user@domain):
 * within the transaction bounds, or 503. A BYE is never refused for load:
 * it ends what holds state, and refusing it would keep the call up.
 * Answers itself when it returns NULL. */
static struct proxy_request *proxy_request_new(struct proxy *p, struct sip_server_txn *st,
                                               const char *sender)
{
    bool bye = sip_server_txn_request(st)->method == SIP_METHOD_BYE;
    const char *full =
        p->env.txn_admit && !bye ? p->env.txn_admit(p->env.arg, sip_server_txn_conn(st)) : NULL;
    struct proxy_user_load *load = NULL;
    if (!full && !bye && !proxy_user_load_take(p, sender, &load))
        full = "limits.transactions_per_user";
    if (full) {
        proxy_refuse_overload(p, st, full);
        return NULL;
    }
    struct proxy_request *pr = calloc(1, sizeof(*pr));
    if (!pr) {
        proxy_user_load_put(p, load);
        sip_server_txn_reply(st, 500, "Server Internal Error (out of memory)", NULL);
        return NULL;
    }
    pr->load = load;
    /* a stateful proxy tells an INVITE's sender it is working on it
     * (RFC 3261 §16.2); answered-at-once INVITEs get no 100 */
    if (sip_server_txn_request(st)->method == SIP_METHOD_INVITE)
        sip_server_txn_reply(st, 100, NULL, NULL);
    pr->p = p;
    pr->st = st;
    pr->method = sip_server_txn_request(st)->method;
    sip_server_txn_set_context(st, pr);
    struct sip_addr to;
    if (pr->method == SIP_METHOD_SUBSCRIBE && sip_msg_to(sip_server_txn_request(st), &to) == 0 &&
        !to.tag.n) {
        pr->sub_next = p->subscribes;
        if (p->subscribes)
            p->subscribes->sub_prev = pr;
        p->subscribes = pr;
        pr->sub_listed = true;
    }
    return pr;
}

/* The event package of a SUBSCRIBE or NOTIFY ("presence" of
 * "presence;id=1"); empty when there is none. */
static struct strview proxy_event_package(const struct sip_msg *m)
{
    const struct sip_hdr *h = sip_msg_hdr_first(m, SIP_HDR_EVENT);
    if (!h || !h->value.n)
        return STRVIEW_EMPTY;
    const char *semi = memchr(h->value.p, ';', h->value.n);
    return strview_trim(strview_make(h->value.p, semi ? (size_t)(semi - h->value.p) : h->value.n));
}

/* A NOTIFY with no dialog yet: the SUBSCRIBE in flight it answers (same
 * Call-ID, the subscriber's tag as To tag, the same event package), sent
 * by the party that SUBSCRIBE went to. */
static struct proxy_request *proxy_subscribe_of_notify(struct proxy *p, const struct sip_msg *req,
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
            strview_eq_view_nocase(proxy_event_package(sub), proxy_event_package(req)))
            return proxy_party_on_conn(p, pr->callee, in_conn) ? pr : NULL;
    }
    return NULL;
}

/* --- sending upstream ------------------------------------------------------ */

/* Sends a response received from a branch to the caller, without our Via. */
/* Identities in responses are ours to assert too: whatever the answerer
 * claimed goes, and a device of ours is named for what it is. */
static void proxy_assert_response_identity(struct proxy_branch *b, struct sip_msg *resp)
{
    proxy_strip_identity_headers(resp);
    if (b && b->asserted[0]) {
        struct strview pai = sip_msg_printf(resp, "<sip:%s>", b->asserted);
        sip_msg_hdr_append(resp, SIP_HDR_P_ASSERTED_IDENTITY, "P-Asserted-Identity", pai);
    }
}

static void proxy_forward_response(struct proxy_request *pr, struct proxy_branch *b,
                                   struct sip_msg *resp, int status)
{
    if (!pr->st)
        return;
    struct strbuf out = STRBUF_INIT;
    sip_msg_hdr_remove_first_value(resp, SIP_HDR_VIA);
    proxy_assert_response_identity(b, resp);
    if (sip_msg_print(resp, &out) == 0)
        sip_server_txn_send(pr->st, status, &out);
    strbuf_free(&out);
}

/* RFC 3261 §16.7 step 6: 6xx beats everything, then the lowest class. */
static bool proxy_better(int candidate, int best)
{
    if (best == 0)
        return true;
    if (best >= 600)
        return false;
    if (candidate >= 600)
        return true;
    return candidate / 100 < best / 100;
}

static void proxy_cancel_pending(struct proxy_request *pr, const char *reason)
{
    for (size_t i = 0; i < pr->nbranches; i++) {
        struct proxy_branch *b = &pr->branches[i];
        if (b->txn && b->status < 200)
            sip_client_txn_cancel(b->txn, reason);
    }
}

static void proxy_call_outcome(struct proxy_request *pr, int status, const char *text)
{
    if (!pr->call || pr->call->answered)
        return;
    char reason[300];
    if (pr->cancelling && status == 487)
        snprintf(reason, sizeof(reason), "cancelled by caller");
    else
        snprintf(reason, sizeof(reason), "%d %s%s%s", status, text, pr->warning[0] ? ": " : "",
                 pr->warning);
    dialog_end_early(pr->p, pr->call);
    proxy_call_finish(pr->p, pr->call, reason);
}

/* All branches have answered or failed: the best final response goes up. */
void proxy_finish(struct proxy_request *pr)
{
    if (pr->forwarded_2xx || !pr->st || sip_server_txn_answered(pr->st))
        return;
    if (pr->best_status == 0) {
        sip_server_txn_reply(pr->st, 480, NULL, NULL);
        proxy_call_outcome(pr, 480, "Temporarily Unavailable");
        return;
    }
    if (pr->best.len) {
        sip_server_txn_send(pr->st, pr->best_status, &pr->best);
    } else {
        /* a locally decided status (timeout, lost connection, media policy) */
        char warning[MEDIA_WARNING_MAX + 300] = "";
        if (pr->warning[0])
            proxy_media_warning_header(pr->p, pr->warning, warning, sizeof(warning));
        char reason[MEDIA_WARNING_MAX + 64] = "";
        if (pr->best_status == 400 && pr->warning[0])
            snprintf(reason, sizeof(reason), "Bad Request (%s)", pr->warning);
        sip_server_txn_reply(pr->st, pr->best_status, reason[0] ? reason : NULL,
                             warning[0] ? warning : NULL);
    }
    proxy_call_outcome(pr, pr->best_status, sip_reason_phrase(pr->best_status));
}

/* The dialog an in-dialog request of pr belongs to. */
static struct dialog *proxy_dialog_of(struct proxy_request *pr, const struct sip_msg *resp)
{
    struct sip_addr from, to;
    bool from_caller;
    if (sip_msg_from(resp, &from) != 0 || sip_msg_to(resp, &to) != 0)
        return NULL;
    return dialog_find(pr->p, resp->call_id, from.tag, to.tag, &from_caller);
}

/* A refused answer inside a dialog ends the call: the requester gets a BYE
 * too (the answerer got one), and the call is logged. */
static void proxy_end_dialog_of(struct proxy_request *pr, const struct sip_msg *resp,
                                const char *warning)
{
    struct sip_addr from, to;
    bool from_caller;
    if (sip_msg_from(resp, &from) != 0 || sip_msg_to(resp, &to) != 0)
        return;
    struct dialog *d = dialog_find(pr->p, resp->call_id, from.tag, to.tag, &from_caller);
    if (!d)
        return;
    char reason[MEDIA_WARNING_MAX + 64], full[MEDIA_WARNING_MAX + 80];
    snprintf(reason, sizeof(reason), "SIP;cause=488;text=\"%s\"", warning);
    /* the requester is on the side the request came from */
    uint64_t conn = from_caller ? d->caller_conn : d->callee_conn;
    if (conn) {
        if (from_caller)
            proxy_send_bye(pr->p, conn, d->caller_target, d->callee_uri, d->callee_tag,
                           d->caller_uri, d->caller_tag, resp->call_id, 100000 + d->invite_cseq,
                           reason);
        else
            proxy_send_bye(pr->p, conn, d->callee_target, d->caller_uri, d->caller_tag,
                           d->callee_uri, d->callee_tag, resp->call_id, 100000 + d->invite_cseq,
                           reason);
    }
    snprintf(full, sizeof(full), "488 media refused in a re-offer: %s", warning);
    dialog_end(d, full);
}

/* A branch ends with a status Parley decided (media policy...). */
static void proxy_branch_local_failure(struct proxy_request *pr, struct proxy_branch *b, int status,
                                       const char *warning)
{
    b->status = status;
    if (pr->pending)
        pr->pending--;
    if (proxy_better(status, pr->best_status)) {
        pr->best_status = status;
        strbuf_reset(&pr->best);
        snprintf(pr->warning, sizeof(pr->warning), "%s", warning);
    }
    if (pr->pending == 0)
        proxy_finish(pr);
}

/* --- responses from branches -------------------------------------------- */

/* offer_sdp: scratch for a late offer's SDP (what the ACK must answer). */
static void branch_response(struct sip_txn_user *u, const struct sip_msg *cresp, int status,
                            bool retransmission, struct strbuf *offer_sdp)
{
    struct proxy_branch *b = (struct proxy_branch *)u;
    struct proxy_request *pr = b->pr;
    /* The transaction layer lends us the response the proxy itself passed
     * to sip_txn_client_receive (see proxy_on_message); editing it here,
     * before it is freed, is ours to do. */
    struct sip_msg *resp = (struct sip_msg *)cresp;

    if (retransmission) {
        /* a 2xx retransmitted by a forked answerer: pass it on (RFC 6026),
         * unless Parley refused it: then it only gets its ACK again */
        if (resp && status >= 200 && status < 300) {
            if (b->media_refused)
                proxy_media_ack_2xx(pr->p, b, resp);
            else
                proxy_forward_response(pr, b, resp, status);
        }
        return;
    }
    bool media_method = pr->method == SIP_METHOD_INVITE || pr->method == SIP_METHOD_UPDATE ||
                        pr->method == SIP_METHOD_PRACK;
    uint64_t caller_conn = pr->st ? sip_server_txn_conn(pr->st) : 0;
    char warning[MEDIA_WARNING_MAX] = "", summary[400] = "";
    bool late_offer = false;
    if (media_method && resp && status > 100 && status < 300 && proxy_has_sdp(resp)) {
        enum proxy_media_result mr;
        if (b->offer.len) {
            mr =
                proxy_media_answer(pr->p, strview_make(b->offer.p, b->offer.len), resp, b->conn,
                                   caller_conn, warning, sizeof(warning), summary, sizeof(summary));
        } else {
            /* no offer in the request: this is the offer (late offer) */
            mr = proxy_media_offer(pr->p, resp, b->conn, caller_conn, offer_sdp, warning,
                                   sizeof(warning));
            late_offer = true;
        }
        if (mr != PROXY_MEDIA_OK) {
            bool reliable = sip_msg_hdr_first(resp, SIP_HDR_RSEQ) != NULL;
            if (status >= 200) {
                /* never forwarded: the answerer gets ACK and BYE, the caller
                 * 488 unless another branch still may answer */
                proxy_media_reject_2xx(pr->p, b, resp, warning);
                b->media_refused = true;
                if (pr->in_dialog)
                    proxy_end_dialog_of(pr, resp, warning);
                proxy_branch_local_failure(pr, b, 488, warning);
                return;
            }
            if (reliable) {
                sip_client_txn_cancel(b->txn, "SIP;cause=488;text=\"media policy\"");
                b->media_refused = true;
                if (!pr->warning[0])
                    snprintf(pr->warning, sizeof(pr->warning), "%s", warning);
                return;
            }
            /* an unreliable provisional: its early SDP does not bind; pass
             * the response on without it */
            sip_msg_set_body(resp, STRVIEW_EMPTY, STRVIEW_EMPTY);
        }
    }

    if (status < 200) {
        b->status = status;
        if (status == 100 || !resp)
            return;
        if (pr->method == SIP_METHOD_INVITE && !pr->forwarded_2xx) {
            struct sip_addr to;
            struct dialog *d = NULL;
            if (sip_msg_to(resp, &to) == 0 && to.tag.n && !pr->in_dialog &&
                (d = dialog_upsert(pr->p, resp, pr, b->conn)) != NULL)
                strview_copy(to.tag, b->early_tag, sizeof(b->early_tag));
            /* an offer in a reliable provisional: the PRACK must answer it */
            if (d && late_offer && offer_sdp->len && sip_msg_hdr_first(resp, SIP_HDR_RSEQ)) {
                strbuf_reset(&d->late_offer);
                strbuf_putview(&d->late_offer, strview_make(offer_sdp->p, offer_sdp->len));
            }
            proxy_forward_response(pr, b, resp, status);
        }
        return;
    }

    b->status = status;
    if (pr->pending)
        pr->pending--;

    if (status < 300 && resp) {
        if (pr->method == SIP_METHOD_INVITE || pr->method == SIP_METHOD_SUBSCRIBE ||
            pr->method == SIP_METHOD_REFER) {
            if (!pr->in_dialog) {
                struct dialog *d = dialog_upsert(pr->p, resp, pr, b->conn);
                if (d) {
                    dialog_confirm(d);
                    if (late_offer) {
                        strbuf_reset(&d->late_offer);
                        strbuf_putview(&d->late_offer, strview_make(offer_sdp->p, offer_sdp->len));
                    }
                }
            }
        }
        if (pr->in_dialog && (pr->method == SIP_METHOD_INVITE || pr->method == SIP_METHOD_UPDATE) &&
            b->offer.len) {
            /* an accepted re-offer holds or resumes the call (parleyctl calls) */
            struct dialog *d = proxy_dialog_of(pr, resp);
            if (d && d->call)
                d->call->on_hold = media_sdp_is_hold(strview_make(b->offer.p, b->offer.len));
        }
        if (pr->in_dialog && late_offer && pr->method == SIP_METHOD_INVITE) {
            /* a re-INVITE without SDP: the ACK will carry the answer */
            struct dialog *d = proxy_dialog_of(pr, resp);
            if (d) {
                strbuf_reset(&d->late_offer);
                strbuf_putview(&d->late_offer, strview_make(offer_sdp->p, offer_sdp->len));
            }
        }
        if (pr->call && summary[0])
            snprintf(pr->call->media, sizeof(pr->call->media), "%s", summary);
        bool first = !pr->forwarded_2xx;
        pr->forwarded_2xx = true;
        if (pr->method == SIP_METHOD_INVITE || first)
            proxy_forward_response(pr, b, resp, status);
        if (pr->method == SIP_METHOD_INVITE)
            proxy_cancel_pending(pr, "SIP;cause=200;text=\"Call completed elsewhere\"");
        return;
    }

    /* a final failure: remember the best, forward when every branch ended */
    if (pr->method == SIP_METHOD_INVITE && b->early_tag[0] && pr->st) {
        struct sip_addr from;
        const struct sip_msg *req = sip_server_txn_request(pr->st);
        if (sip_msg_from(req, &from) == 0)
            dialog_end_early_tag(pr->p, req->call_id, from.tag, b->early_tag);
        b->early_tag[0] = '\0';
    }
    if (b->media_refused) {
        /* the branch was cancelled over its media: the caller hears why */
        if (proxy_better(488, pr->best_status) || pr->best_status == 488) {
            pr->best_status = 488;
            strbuf_reset(&pr->best);
        }
        if (pr->pending == 0)
            proxy_finish(pr);
        return;
    }
    int effective = status;
    if (resp && status == 503)
        effective = 500; /* RFC 3261 §16.7: a 503 is not ours to pass on */
    if (!resp)
        effective = status == 408 ? 408 : 480; /* timer, or the device's connection went */
    if (proxy_better(effective, pr->best_status)) {
        pr->best_status = effective;
        strbuf_reset(&pr->best);
        if (resp) {
            sip_msg_hdr_remove_first_value(resp, SIP_HDR_VIA);
            proxy_assert_response_identity(b, resp);
            if (effective != status) {
                /* rewrite the status line: print, then patch the code */
                struct strbuf tmp = STRBUF_INIT;
                if (sip_msg_print(resp, &tmp) == 0 && tmp.len > 12) {
                    char code[12];
                    snprintf(code, sizeof(code), "%03d", effective % 1000);
                    memcpy(tmp.p + 8, code, 3);
                    strbuf_append(&pr->best, tmp.p, tmp.len);
                }
                strbuf_free(&tmp);
            } else {
                sip_msg_print(resp, &pr->best);
            }
        }
    }
    if (pr->method == SIP_METHOD_INVITE && status >= 600)
        proxy_cancel_pending(pr, NULL);
    if (pr->pending == 0)
        proxy_finish(pr);
}

void proxy_branch_response(struct sip_txn_user *u, struct sip_client_txn *t,
                           const struct sip_msg *cresp, int status, bool retransmission)
{
    (void)t;
    struct strbuf offer_sdp = STRBUF_INIT;
    branch_response(u, cresp, status, retransmission, &offer_sdp);
    strbuf_free(&offer_sdp);
}

void proxy_branch_terminated(struct sip_txn_user *u, struct sip_client_txn *t)
{
    (void)t;
    struct proxy_branch *b = (struct proxy_branch *)u;
    struct proxy_request *pr = b->pr;
    if (b->status < 200 && pr->pending) {
        /* ended without a final response reported: count it as failed */
        pr->pending--;
        if (pr->pending == 0)
            proxy_finish(pr);
    }
    b->txn = NULL;
    proxy_request_maybe_free(pr);
}

void proxy_server_terminated(void *arg, struct sip_server_txn *t)
{
    (void)arg;
    struct proxy_request *pr = sip_server_txn_context(t);
    if (!pr)
        return;
    if (!sip_server_txn_answered(t)) {
        /* the caller's connection went before an answer: stop ringing */
        pr->cancelling = true;
        proxy_cancel_pending(pr, "SIP;cause=487;text=\"Caller went away\"");
        if (pr->call && !pr->call->answered) {
            dialog_end_early(pr->p, pr->call);
            proxy_call_finish(pr->p, pr->call, "caller connection closed");
        }
    }
    federation_forget_waiter(pr);
    pr->st = NULL;
    proxy_request_maybe_free(pr);
}

/* --- forwarding downstream ---------------------------------------------- */

/* A loop is our own Via on a request that comes back unchanged: our
 * branches carry a hash of what identifies the request as we got it. */
static void proxy_loop_hash(const struct sip_msg *req, char out[17])
{
    struct strbuf k = STRBUF_INIT;
    struct sip_addr from;
    strbuf_putview(&k, req->request_uri);
    strbuf_putc(&k, '\n');
    strbuf_putview(&k, req->call_id);
    if (sip_msg_from(req, &from) == 0) {
        strbuf_putc(&k, '\n');
        strbuf_putview(&k, from.tag);
    }
    strbuf_printf(&k, "\n%u", req->cseq_num);
    uint64_t h = hash_bytes(k.p ? k.p : "", k.len);
    snprintf(out, 17, "%016llx", (unsigned long long)h);
    strbuf_free(&k);
}

#define PROXY_BRANCH_PREFIX "z9hG4bKpl"

static bool proxy_is_loop(const struct sip_msg *req, const char *hash)
{
    struct sip_value_iter it;
    struct strview v;
    sip_value_iter_init(&it, req, SIP_HDR_VIA);
    size_t plen = strlen(PROXY_BRANCH_PREFIX);
    while (sip_value_iter_next(&it, &v)) {
        struct sip_via via;
        if (sip_via_parse(v, &via) != 0)
            continue;
        if (via.branch.n >= plen + 16 && memcmp(via.branch.p, PROXY_BRANCH_PREFIX, plen) == 0 &&
            memcmp(via.branch.p + plen, hash, 16) == 0)
            return true;
    }
    return false;
}

/* The Record-Route value naming Parley on conn (0: a connection still to
 * be made to a partner, whose side is the server-to-server listener). */
static void proxy_rr_value(struct proxy *p, uint64_t conn, char *out, size_t cap)
{
    const struct conn_info *ci = conn ? p->env.conn_info(p->env.arg, conn) : NULL;
    char a[300];
    proxy_self_address(p, conn, a, sizeof(a));
    snprintf(out, cap, "<sip:%s;transport=%s;lr>", a, ci && !ci->tls ? "tcp" : "tls");
}

/* Sends one copy of `bytes` (the request as forwarded) to a device. */
bool proxy_fork_one(struct proxy_request *pr, const char *bytes, size_t len, const char *target_uri,
                    uint64_t conn, const char *loop_hash)
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
    /* A PRACK answers the offer of the reliable provisional it acknowledges
     * (kept in the early dialog); without one it may carry a new offer. */
    struct dialog *early = m->method == SIP_METHOD_PRACK ? proxy_dialog_of(pr, m) : NULL;
    if (early && !early->late_offer.len)
        early = NULL;
    if (m->method == SIP_METHOD_INVITE || m->method == SIP_METHOD_UPDATE ||
        m->method == SIP_METHOD_PRACK) {
        char warning[MEDIA_WARNING_MAX] = "", summary[400] = "";
        uint64_t in_conn = pr->st ? sip_server_txn_conn(pr->st) : 0;
        enum proxy_media_result mr = PROXY_MEDIA_OK;
        if (!early) {
            mr = proxy_media_offer(p, m, in_conn, conn, &offer, warning, sizeof(warning));
        } else if (proxy_has_sdp(m)) {
            mr = proxy_media_answer(p, strview_make(early->late_offer.p, early->late_offer.len), m,
                                    in_conn, conn, warning, sizeof(warning), summary,
                                    sizeof(summary));
            if (mr == PROXY_MEDIA_OK) {
                strbuf_reset(&early->late_offer); /* answered */
                if (early->call && summary[0])
                    snprintf(early->call->media, sizeof(early->call->media), "%s", summary);
            }
        }
        if (mr != PROXY_MEDIA_OK) {
            int status = mr == PROXY_MEDIA_BAD ? 400 : 488;
            if (proxy_better(status, pr->best_status) || pr->best_status == status) {
                pr->best_status = status;
                strbuf_reset(&pr->best);
                snprintf(pr->warning, sizeof(pr->warning), "%s", warning);
            }
            strbuf_free(&offer);
            sip_msg_free(m);
            return false;
        }
    }
    if (pr->rr_in[0]) {
        /* leaving through another listener than it came in on (a partner's
         * call to a user, or a user's to a partner): each side must be
         * given the address it can reach Parley at (RFC 5658) */
        char out_rr[320];
        proxy_rr_value(p, conn, out_rr, sizeof(out_rr));
        if (strcmp(out_rr, pr->rr_in) != 0)
            sip_msg_hdr_prepend(m, SIP_HDR_RECORD_ROUTE, "Record-Route",
                                sip_msg_strdup(m, out_rr, strlen(out_rr)));
    }
    char branch[64], rnd[9];
    random_token(rnd, 8);
    snprintf(branch, sizeof(branch), PROXY_BRANCH_PREFIX "%s.%s", loop_hash, rnd);
    struct strbuf via = STRBUF_INIT;
    proxy_make_via(p, conn, branch, &via);
    sip_msg_hdr_prepend(m, SIP_HDR_VIA, "Via", sip_msg_strdup(m, via.p, via.len));
    strbuf_free(&via);

    struct proxy_branch *b = &pr->branches[pr->nbranches];
    b->offer = offer;
    b->user.response = proxy_branch_response;
    b->user.terminated = proxy_branch_terminated;
    b->pr = pr;
    b->conn = conn;
    b->status = 0;
    b->txn = sip_txn_client_send(p->txn, conn, m, &b->user);
    if (!b->txn) {
        strbuf_free(&b->offer);
        return false;
    }
    pr->nbranches++;
    pr->pending++;
    return true;
}

/* Edits common to every copy: our realm's credentials removed (they were
 * for us: the next hop could test password guesses against them),
 * Max-Forwards, and (record_route) our Record-Route for the side the
 * request came from, kept in pr->rr_in for the branches. */
static void proxy_prepare(struct proxy_request *pr, struct sip_msg *req, uint64_t in_conn,
                          bool record_route)
{
    struct proxy *p = pr->p;
    proxy_strip_own_credentials(p, req);
    sip_msg_set_max_forwards(req, req->max_forwards < 0 ? 70 : req->max_forwards - 1);
    if (!record_route)
        return;
    proxy_rr_value(p, in_conn, pr->rr_in, sizeof(pr->rr_in));
    sip_msg_hdr_prepend(req, SIP_HDR_RECORD_ROUTE, "Record-Route",
                        sip_msg_strdup(req, pr->rr_in, strlen(pr->rr_in)));
}

void proxy_route_new_request(struct proxy *p, struct sip_server_txn *st, struct sip_msg *req,
                             const char *caller, const char *callee_user)
{
    const struct binding *bindings[PROXY_MAX_BRANCHES];
    char loop[17];
    uint64_t in_conn = sip_server_txn_conn(st);

    proxy_loop_hash(req, loop);
    if (proxy_is_loop(req, loop)) {
        proxy_log_reject(p, req, in_conn, 482, "the request came back to us");
        sip_server_txn_reply(st, 482, NULL, NULL);
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
        proxy_log_reject(p, req, in_conn, 480, "callee has no registered device");
        sip_server_txn_reply(st, 480, NULL, NULL);
        proxy_call_outcome(pr, 480, "Temporarily Unavailable");
        return;
    }

    bool rr = req->method == SIP_METHOD_INVITE || req->method == SIP_METHOD_SUBSCRIBE ||
              req->method == SIP_METHOD_REFER;
    proxy_prepare(pr, req, in_conn, rr);
    struct strbuf bytes = STRBUF_INIT;
    if (sip_msg_print(req, &bytes) != 0) {
        strbuf_free(&bytes);
        sip_server_txn_reply(st, 500, NULL, NULL);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        size_t before = pr->nbranches;
        if (proxy_fork_one(pr, bytes.p, bytes.len, bindings[i]->contact, bindings[i]->conn, loop) &&
            pr->nbranches > before)
            snprintf(pr->branches[before].asserted, sizeof(pr->branches[before].asserted), "%s",
                     pr->callee);
    }
    strbuf_free(&bytes);
    if (pr->nbranches == 0) {
        if (pr->best_status) {
            proxy_finish(pr); /* e.g. 488: no device may get this offer */
        } else {
            sip_server_txn_reply(st, 480, NULL, NULL);
            proxy_call_outcome(pr, 480, "Temporarily Unavailable");
        }
    }
}

/* Where an in-dialog request goes: a registered device whose contact is the
 * Request-URI (its current connection), else the dialog's other side. */
/* Is the request on in_conn from the dialog party its tags claim? A
 * dialog's identifiers are no credential (they travel in dialog-event
 * NOTIFYs, Replaces, partners' logs): the sender must use that party's
 * connection, one that party registered over, or — for a partner's user —
 * a connection whose certificate proves that party's domain. */
static bool proxy_dialog_sender_ok(struct proxy *p, const struct dialog *d, bool from_caller,
                                   uint64_t in_conn)
{
    if (in_conn == (from_caller ? d->caller_conn : d->callee_conn))
        return true;
    return proxy_party_on_conn(p, from_caller ? d->caller_aor : d->callee_aor, in_conn);
}

/* Does in_conn belong to aor: a connection that user registered over, or
 * for a partner's user one whose certificate proves the domain? */
static bool proxy_party_on_conn(struct proxy *p, const char *aor, uint64_t in_conn)
{
    const char *at = strrchr(aor, '@');
    if (!at)
        return false;
    if (strcasecmp(at + 1, p->domain) == 0) {
        char user[PROXY_USER_MAX];
        snprintf(user, sizeof(user), "%.*s", (int)(at - aor), aor);
        return registrar_find_flow(p->registrar, user, in_conn) != NULL;
    }
    return federation_conn_proves(p, in_conn, at + 1);
}

static uint64_t proxy_dialog_target(struct proxy *p, const struct sip_msg *req, uint64_t in_conn,
                                    struct dialog **dout, bool *from_caller, bool *sender_ok)
{
    struct sip_addr from, to;
    *dout = NULL;
    *sender_ok = false;
    if (sip_msg_from(req, &from) != 0 || sip_msg_to(req, &to) != 0)
        return 0;
    struct dialog *d = dialog_find(p, req->call_id, from.tag, to.tag, from_caller);
    if (!d)
        return 0;
    *dout = d;
    *sender_ok = proxy_dialog_sender_ok(p, d, *from_caller, in_conn);
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
    struct dialog *d;
    bool from_caller = false, sender_ok;
    uint64_t in_conn = sip_server_txn_conn(st);
    uint64_t conn = proxy_dialog_target(p, req, in_conn, &d, &from_caller, &sender_ok);
    struct proxy_request *sub = d ? NULL : proxy_subscribe_of_notify(p, req, in_conn);
    if (sub && (d = dialog_upsert_from_notify(p, req, sub, in_conn)) != NULL) {
        /* the NOTIFY overtook the 2xx: it makes the dialog (RFC 6665) */
        dialog_confirm(d);
        conn = proxy_dialog_target(p, req, in_conn, &d, &from_caller, &sender_ok);
    }
    if (!d) {
        proxy_log_reject(p, req, sip_server_txn_conn(st), 481, "no dialog Parley routed");
        sip_server_txn_reply(st, 481, NULL, NULL);
        return;
    }
    if (!sender_ok) {
        proxy_log_reject(p, req, sip_server_txn_conn(st), 403,
                         "in-dialog request from a connection of no party of the dialog");
        sip_server_txn_reply(st, 403, "Forbidden (not a party of this dialog)", NULL);
        return;
    }
    const char *other = from_caller ? d->callee_aor : d->caller_aor;
    const char *other_domain = strchr(other, '@');
    struct partner *pt = !conn && other_domain ? federation_find(p, other_domain + 1) : NULL;
    if (pt) {
        /* the other side is a partner's user: its server is reached again
         * (the link closed when idle, or the partner restarted) */
        struct proxy_request *pr =
            proxy_request_new(p, st, from_caller ? d->caller_aor : d->callee_aor);
        if (!pr)
            return;
        pr->in_dialog = true;
        proxy_loop_hash(req, pr->loop_hash);
        proxy_strip_identity_headers(req);
        proxy_prepare(pr, req, sip_server_txn_conn(st), false);
        if (sip_msg_print(req, &pr->held) != 0) {
            sip_server_txn_reply(st, 500, NULL, NULL);
            return;
        }
        if (req->method == SIP_METHOD_BYE)
            dialog_end(d, from_caller ? "BYE from caller" : "BYE from callee");
        federation_send(p, pt, pr);
        return;
    }
    if (!conn) {
        proxy_log_reject(p, req, sip_server_txn_conn(st), 480,
                         "the other side's connection is gone");
        sip_server_txn_reply(st, 480, "Temporarily Unavailable (connection gone)", NULL);
        if (req->method == SIP_METHOD_BYE)
            dialog_end(d, from_caller ? "BYE from caller" : "BYE from callee");
        return;
    }
    /* identities inside a dialog are no more the client's to assert */
    proxy_strip_identity_headers(req);
    struct proxy_request *pr =
        proxy_request_new(p, st, from_caller ? d->caller_aor : d->callee_aor);
    if (!pr)
        return;
    pr->in_dialog = true;
    char loop[17];
    proxy_loop_hash(req, loop);
    proxy_prepare(pr, req, sip_server_txn_conn(st), false);
    struct strbuf bytes = STRBUF_INIT;
    if (sip_msg_print(req, &bytes) != 0) {
        sip_server_txn_reply(st, 500, NULL, NULL);
    } else if (!proxy_fork_one(pr, bytes.p, bytes.len, NULL, conn, loop)) {
        if (!pr->best_status)
            pr->best_status = 500;
        proxy_finish(pr);
    }
    strbuf_free(&bytes);
    if (req->method == SIP_METHOD_BYE)
        dialog_end(d, from_caller ? "BYE from caller" : "BYE from callee");
    else
        dialog_touch(d, req);
}

void proxy_route_ack(struct proxy *p, uint64_t in_conn, struct sip_msg *ack)
{
    struct dialog *d;
    bool from_caller, sender_ok;
    /* the ACK of a 2xx is end-to-end: routed statelessly along the dialog */
    for (;;) {
        struct sip_value_iter it;
        struct strview v;
        sip_value_iter_init(&it, ack, SIP_HDR_ROUTE);
        if (!sip_value_iter_next(&it, &v))
            break;
        struct sip_addr a;
        if (sip_addr_parse(v, &a) != 0 || !proxy_uri_is_us(p, &a.uri))
            break;
        sip_msg_hdr_remove_first_value(ack, SIP_HDR_ROUTE);
    }
    uint64_t conn = proxy_dialog_target(p, ack, in_conn, &d, &from_caller, &sender_ok);
    if (d && !sender_ok) {
        proxy_log_reject(p, ack, in_conn, 0, "in-dialog ACK from a connection of no party");
        sip_msg_free(ack);
        return;
    }
    if (!conn && d) {
        const char *other = from_caller ? d->callee_aor : d->caller_aor;
        const char *at = strchr(other, '@');
        if (at)
            conn = proxy_partner_conn(p, at + 1); /* an ACK cannot wait for a new link */
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
    if (d && d->late_offer.len && proxy_has_sdp(ack)) {
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
        } else if (d->call && summary[0]) {
            snprintf(d->call->media, sizeof(d->call->media), "%s", summary);
        }
    } else if (proxy_has_sdp(ack)) {
        /* an ACK answers only a late offer (RFC 3261 §13.2.2.4); an SDP
         * here answers nothing Parley checked, and may hold keys */
        char cid[128];
        strview_copy(ack->call_id, cid, sizeof(cid));
        log_info("media.ack_sdp_removed", "call_id", cid, "reason", "no offer to answer");
        sip_msg_set_body(ack, STRVIEW_EMPTY, STRVIEW_EMPTY);
    }
    proxy_strip_own_credentials(p, ack);
    sip_msg_set_max_forwards(ack, ack->max_forwards < 0 ? 70 : ack->max_forwards - 1);
    char branch[48], rnd[17];
    random_token(rnd, 16);
    snprintf(branch, sizeof(branch), "z9hG4bKpa%s", rnd);
    struct strbuf via = STRBUF_INIT;
    proxy_make_via(p, conn, branch, &via);
    sip_msg_hdr_prepend(ack, SIP_HDR_VIA, "Via", sip_msg_strdup(ack, via.p, via.len));
    strbuf_free(&via);
    struct strbuf out = STRBUF_INIT;
    if (sip_msg_print(ack, &out) == 0)
        p->env.send(p->env.arg, conn, &out);
    strbuf_free(&out);
    if (end_dialog) {
        char reason[MEDIA_WARNING_MAX + 64];
        snprintf(reason, sizeof(reason), "SIP;cause=488;text=\"%s\"", warning);
        if (d->callee_conn)
            proxy_send_bye(p, d->callee_conn, d->callee_target, d->caller_uri, d->caller_tag,
                           d->callee_uri, d->callee_tag, ack->call_id, d->invite_cseq + 1, reason);
        if (d->caller_conn)
            proxy_send_bye(p, d->caller_conn, d->caller_target, d->callee_uri, d->callee_tag,
                           d->caller_uri, d->caller_tag, ack->call_id, 100000 + d->invite_cseq,
                           reason);
        char full[MEDIA_WARNING_MAX + 80];
        snprintf(full, sizeof(full), "488 media refused in the ACK: %s", warning);
        dialog_end(d, full);
    }
    sip_msg_free(ack);
}

void proxy_route_cancel(struct proxy *p, struct sip_server_txn *cancel_st,
                        struct sip_server_txn *invite_st)
{
    (void)p;
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
    proxy_cancel_pending(pr, rbuf[0] ? rbuf : NULL);
    if (pr->nbranches == 0) {
        /* still waiting for a partner connection: it must never ring */
        federation_forget_waiter(pr);
        sip_server_txn_reply(invite_st, 487, NULL, NULL);
        proxy_call_outcome(pr, 487, "Request Terminated");
    }
}

void proxy_route_to_partner(struct proxy *p, struct sip_server_txn *st, struct sip_msg *req,
                            const char *caller, struct partner *pt)
{
    uint64_t in_conn = sip_server_txn_conn(st);
    struct proxy_request *pr = proxy_request_new(p, st, caller);
    if (!pr)
        return;
    proxy_loop_hash(req, pr->loop_hash);
    if (proxy_is_loop(req, pr->loop_hash)) {
        proxy_log_reject(p, req, in_conn, 482, "the request came back to us");
        sip_server_txn_reply(st, 482, NULL, NULL);
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
    proxy_prepare(pr, req, in_conn, rr);
    if (sip_msg_print(req, &pr->held) != 0) {
        sip_server_txn_reply(st, 500, NULL, NULL);
        return;
    }
    federation_send(p, pt, pr);
}
