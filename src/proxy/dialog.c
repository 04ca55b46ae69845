/*
 * proxy/dialog — the dialogs Parley routed (see dialog.h).
 */
#include "proxy/dialog.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "proxy/anchor.h"
#include "proxy/call.h"
#include "proxy/state.h"

/* A confirmed dialog that never sees its BYE (a client that vanished) is
 * forgotten after this long; an early one when its INVITE ends; one of a
 * subscription (no call) after this long without in-dialog traffic. */
#define DIALOG_MAX_LIFETIME_MS  (24ULL * 3600 * 1000)
#define DIALOG_IDLE_LIFETIME_MS (2ULL * 3600 * 1000)
/* Per call and per request: two for each branch a request may fork to
 * (an early dialog and the one its 2xx makes), so every device of a user
 * at the device limit keeps its dialogs. */
#define DIALOG_MAX_PER_CALL      (2 * PROXY_MAX_BRANCHES)
#define DIALOG_MAX_TOTAL         100000
#define DIALOG_EARLY_LIFETIME_MS (SIP_TIMER_C_MS + 64 * SIP_T1_MS)

/* Call-ID and both tags, in either order (requests come from both sides):
 * the dialogs of one Call-ID (forks) do not share one chain. */
static uint64_t dialog_hash(struct strview call_id, struct strview tag1, struct strview tag2)
{
    return hash_bytes(call_id.p, call_id.n) ^ hash_bytes(tag1.p, tag1.n) ^
           hash_bytes(tag2.p, tag2.n);
}

struct proxy_dialog *proxy_dialog_find(struct proxy *p, struct strview call_id,
                                       struct strview from_tag, struct strview to_tag,
                                       bool *from_caller)
{
    uint64_t h = dialog_hash(call_id, from_tag, to_tag);
    for (struct hmap_node *n = hmap_first(&p->dialogs, h); n; n = hmap_next(n, h)) {
        struct proxy_dialog *d = container_of(n, struct proxy_dialog, node);
        /* to_callee speaks as the caller: its local tag is the caller's */
        const struct sip_dialog *v = &d->to_callee;
        if (!strview_eq(call_id, v->call_id))
            continue;
        if (strview_eq(from_tag, v->local_tag) && strview_eq(to_tag, v->remote_tag)) {
            *from_caller = true;
            return d;
        }
        if (strview_eq(from_tag, v->remote_tag) && strview_eq(to_tag, v->local_tag)) {
            *from_caller = false;
            return d;
        }
    }
    return NULL;
}

struct proxy_dialog *proxy_dialog_of(struct proxy *p, const struct sip_msg *m, bool *from_caller)
{
    struct sip_addr from, to;
    bool ignored;
    if (sip_msg_from(m, &from) != 0 || sip_msg_to(m, &to) != 0)
        return NULL;
    return proxy_dialog_find(p, m->call_id, from.tag, to.tag, from_caller ? from_caller : &ignored);
}

static void dialog_free(struct proxy_dialog *d)
{
    struct proxy *p = d->p;
    timer_stop(p->timers, &d->timer);
    hmap_remove(&p->dialogs, &d->node);
    p->ndialogs--;
    if (d->call)
        d->call->ndialogs--;
    proxy_call_release(d->call);
    strbuf_free(&d->late_offer);
    proxy_anchor_release(p, d->anchor, "dialog ended");
    sip_dialog_clear(&d->to_caller);
    sip_dialog_clear(&d->to_callee);
    free(d);
}

static void dialog_expired(struct timer *t, void *arg)
{
    (void)t;
    struct proxy_dialog *d = arg;
    if (d->state == DIALOG_CONFIRMED)
        proxy_dialog_end(d, "dialog expired without BYE");
    else
        dialog_free(d);
}

/* The first Contact URI of m, or an empty view. */
static struct strview dialog_contact(const struct sip_msg *m)
{
    struct sip_value_iter it;
    struct strview cv;
    struct sip_addr contact;
    sip_value_iter_init(&it, m, SIP_HDR_CONTACT);
    if (sip_value_iter_next(&it, &cv) && sip_addr_parse(cv, &contact) == 0 && !contact.wildcard)
        return contact.uri_text;
    return STRVIEW_EMPTY;
}

/* caller/callee: the dialog's two ends as named by msg; msg carries the
 * callee's Contact (a response, or the notifier's NOTIFY), pr's request
 * the caller's. */
static struct proxy_dialog *dialog_insert(struct proxy *p, const struct sip_msg *msg,
                                          const struct sip_addr *caller,
                                          const struct sip_addr *callee, struct proxy_request *pr,
                                          uint64_t callee_conn)
{
    bool from_caller;
    if (!callee->tag.n || caller->tag.n >= PROXY_TAG_MAX || callee->tag.n >= PROXY_TAG_MAX)
        return NULL;
    struct proxy_dialog *d =
        proxy_dialog_find(p, msg->call_id, caller->tag, callee->tag, &from_caller);
    if (d)
        return d;
    /* A callee answering one request with endless 2xx (or NOTIFYs) of new
     * tags must not grow the table: a few dialogs per call and per request,
     * and a bound in all. */
    if (p->ndialogs >= DIALOG_MAX_TOTAL || pr->ndialogs >= DIALOG_MAX_PER_CALL ||
        (pr->call && pr->call->ndialogs >= DIALOG_MAX_PER_CALL)) {
        char cid[128];
        strview_copy(msg->call_id, cid, sizeof(cid));
        log_warn("dialog.refused", "call_id", cid, "reason",
                 p->ndialogs >= DIALOG_MAX_TOTAL ? "too many dialogs"
                                                 : "too many dialogs for one call");
        return NULL;
    }
    d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    const struct sip_msg *req = pr->st ? sip_server_txn_request(pr->st) : NULL;
    struct strview caller_target = req ? dialog_contact(req) : STRVIEW_EMPTY;
    if (sip_dialog_init(&d->to_callee, msg->call_id, caller, callee, dialog_contact(msg)) != 0 ||
        sip_dialog_init(&d->to_caller, msg->call_id, callee, caller, caller_target) != 0) {
        sip_dialog_clear(&d->to_callee);
        free(d);
        return NULL;
    }
    if (req) {
        /* the creating request is the caller's: Parley speaking as the
         * caller goes above its CSeq */
        sip_dialog_note_local_cseq(&d->to_callee, req->cseq_num);
        sip_dialog_note_remote_cseq(&d->to_caller, req->cseq_num);
    }
    d->p = p;
    d->state = DIALOG_EARLY;
    d->caller_conn = pr->st ? sip_server_txn_conn(pr->st) : 0;
    d->callee_conn = callee_conn;
    pr->ndialogs++;
    if (pr->call) {
        d->call = pr->call;
        d->call->refs++;
        d->call->ndialogs++;
    }
    snprintf(d->caller_aor, sizeof(d->caller_aor), "%s", pr->caller);
    snprintf(d->callee_aor, sizeof(d->callee_aor), "%s", pr->callee);
    hmap_insert(&p->dialogs, &d->node, dialog_hash(msg->call_id, caller->tag, callee->tag));
    p->ndialogs++;
    timer_start(p->timers, &d->timer, DIALOG_EARLY_LIFETIME_MS, dialog_expired, d);
    return d;
}

struct proxy_dialog *proxy_dialog_from_response(struct proxy *p, const struct sip_msg *resp,
                                                struct proxy_request *pr, uint64_t callee_conn)
{
    struct sip_addr from, to;
    if (sip_msg_from(resp, &from) != 0 || sip_msg_to(resp, &to) != 0)
        return NULL;
    return dialog_insert(p, resp, &from, &to, pr, callee_conn);
}

struct proxy_dialog *proxy_dialog_from_notify(struct proxy *p, const struct sip_msg *notify,
                                              struct proxy_request *pr, uint64_t notifier_conn)
{
    struct sip_addr from, to;
    if (sip_msg_from(notify, &from) != 0 || sip_msg_to(notify, &to) != 0)
        return NULL;
    struct proxy_dialog *d = dialog_insert(p, notify, &to, &from, pr, notifier_conn);
    if (d)
        proxy_dialog_saw_request(d, notify, false);
    return d;
}

void proxy_dialog_confirm(struct proxy_dialog *d)
{
    struct proxy *p = d->p;
    if (d->state == DIALOG_CONFIRMED)
        return;
    d->state = DIALOG_CONFIRMED;
    timer_start(p->timers, &d->timer, d->call ? DIALOG_MAX_LIFETIME_MS : DIALOG_IDLE_LIFETIME_MS,
                dialog_expired, d);
    proxy_call_answered(p, d->call);
}

static bool dialog_is_target_refresh(enum sip_method m)
{
    return m == SIP_METHOD_INVITE || m == SIP_METHOD_UPDATE || m == SIP_METHOD_SUBSCRIBE ||
           m == SIP_METHOD_NOTIFY || m == SIP_METHOD_REFER;
}

void proxy_dialog_saw_request(struct proxy_dialog *d, const struct sip_msg *req, bool from_caller)
{
    /* the sender's CSeq space: the view toward the other side speaks as the
     * sender; the view toward the sender has it as its remote */
    struct sip_dialog *as_sender = from_caller ? &d->to_callee : &d->to_caller;
    struct sip_dialog *to_sender = from_caller ? &d->to_caller : &d->to_callee;
    sip_dialog_note_local_cseq(as_sender, req->cseq_num);
    sip_dialog_note_remote_cseq(to_sender, req->cseq_num);
    /* a target refresh moves the sender's Contact; out of memory keeps the
     * old one, which a BYE of Parley's own may then miss */
    if (dialog_is_target_refresh(req->method))
        (void)sip_dialog_set_target(to_sender, dialog_contact(req));
}

void proxy_dialog_keep_late_offer(struct proxy_dialog *d, const struct strbuf *sdp)
{
    strbuf_reset(&d->late_offer);
    strbuf_putview(&d->late_offer, strview_make(sdp->p, sdp->len));
}

void proxy_dialog_end(struct proxy_dialog *d, const char *reason)
{
    if (d->call && d->anchor && !d->call->logged && !d->call->legs)
        d->call->legs = proxy_anchor_figures(d->p, d->anchor); /* before they go */
    if (d->call)
        proxy_call_finish(d->p, d->call, reason);
    dialog_free(d);
}

void proxy_dialog_end_early(struct proxy *p, struct proxy_call *call)
{
    if (!call)
        return;
    size_t bucket;
    struct hmap_node *n = p->dialogs.count ? hmap_iter_first(&p->dialogs, &bucket) : NULL;
    while (n) {
        struct hmap_node *next = hmap_iter_next(&p->dialogs, n, &bucket);
        struct proxy_dialog *d = container_of(n, struct proxy_dialog, node);
        if (d->call == call && d->state == DIALOG_EARLY)
            dialog_free(d);
        n = next;
    }
}

void proxy_dialog_conn_closed(struct proxy *p, uint64_t conn)
{
    size_t bucket;
    struct hmap_node *n = p->dialogs.count ? hmap_iter_first(&p->dialogs, &bucket) : NULL;
    while (n) {
        struct hmap_node *next = hmap_iter_next(&p->dialogs, n, &bucket);
        struct proxy_dialog *d = container_of(n, struct proxy_dialog, node);
        /* A device may come back on a new connection (its binding will say
         * where); only when both sides are gone is the call over. */
        if (d->caller_conn == conn)
            d->caller_conn = 0;
        if (d->callee_conn == conn)
            d->callee_conn = 0;
        if (d->caller_conn == 0 && d->callee_conn == 0)
            proxy_dialog_end(d, "connections closed");
        n = next;
    }
}

struct proxy_dialog *proxy_dialog_of_stream(struct proxy *p, uint64_t stream)
{
    size_t bucket;
    struct hmap_node *n = p->dialogs.count ? hmap_iter_first(&p->dialogs, &bucket) : NULL;
    for (; n; n = hmap_iter_next(&p->dialogs, n, &bucket)) {
        struct proxy_dialog *d = container_of(n, struct proxy_dialog, node);
        if (proxy_anchor_has_stream(d->anchor, stream))
            return d;
    }
    return NULL;
}

void proxy_dialog_free_all(struct proxy *p)
{
    size_t bucket;
    struct hmap_node *n = p->dialogs.count ? hmap_iter_first(&p->dialogs, &bucket) : NULL;
    while (n) {
        struct hmap_node *next = hmap_iter_next(&p->dialogs, n, &bucket);
        dialog_free(container_of(n, struct proxy_dialog, node));
        n = next;
    }
}

void proxy_dialog_end_early_tag(struct proxy *p, struct strview call_id, struct strview from_tag,
                                const char *to_tag)
{
    bool from_caller;
    if (!to_tag[0])
        return;
    struct proxy_dialog *d =
        proxy_dialog_find(p, call_id, from_tag, strview_cstr(to_tag), &from_caller);
    if (d && d->state == DIALOG_EARLY)
        dialog_free(d);
}

/* An unsubscribe (Expires: 0) is answered by one last NOTIFY that must
 * still find the dialog, so it only shortens the dialog's life to a
 * transaction's span. */
void proxy_dialog_touch(struct proxy_dialog *d, const struct sip_msg *req)
{
    if (d->call || d->state != DIALOG_CONFIRMED)
        return;
    struct sip_hdr *ss = sip_msg_hdr_first(req, SIP_HDR_SUBSCRIPTION_STATE);
    if (req->method == SIP_METHOD_NOTIFY && ss && ss->value.n >= 10 &&
        strncasecmp(ss->value.p, "terminated", 10) == 0) {
        proxy_dialog_end(d, "subscription ended");
        return;
    }
    uint64_t life = req->method == SIP_METHOD_SUBSCRIBE && req->expires == 0
                        ? 64 * SIP_T1_MS
                        : DIALOG_IDLE_LIFETIME_MS;
    timer_start(d->p->timers, &d->timer, life, dialog_expired, d);
}
