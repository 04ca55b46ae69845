/*
 * Dialogs Parley routed, and the calls they belong to (the call log).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "proxy/proxy_priv.h"

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

static int64_t proxy_now(struct proxy *p)
{
    return clock_wall_s(timer_heap_clock(p->timers));
}

struct proxy_call *proxy_call_new(struct proxy *p, const struct sip_msg *invite, const char *caller,
                                  const char *callee)
{
    struct proxy_call *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->call_id = malloc(invite->call_id.n + 1);
    if (!c->call_id) {
        free(c);
        return NULL;
    }
    strview_copy(invite->call_id, c->call_id, invite->call_id.n + 1);
    snprintf(c->caller, sizeof(c->caller), "%s", caller);
    snprintf(c->callee, sizeof(c->callee), "%s", callee);
    c->started = proxy_now(p);
    c->refs = 1;
    c->next_live = p->live_calls;
    if (p->live_calls)
        p->live_calls->prev_live = c;
    p->live_calls = c;
    c->p = p;
    log_info("call.started", "call_id", c->call_id, "caller", c->caller, "callee", c->callee);
    return c;
}

static void proxy_call_unlist(struct proxy_call *c)
{
    if (!c->p)
        return;
    if (c->prev_live)
        c->prev_live->next_live = c->next_live;
    else
        c->p->live_calls = c->next_live;
    if (c->next_live)
        c->next_live->prev_live = c->prev_live;
    c->prev_live = c->next_live = NULL;
    c->p = NULL;
}

void proxy_call_finish(struct proxy *p, struct proxy_call *call, const char *reason)
{
    if (!call || call->logged)
        return;
    proxy_call_unlist(call);
    call->logged = true;
    call->ended = proxy_now(p);
    log_info("call.ended", "call_id", call->call_id, "caller", call->caller, "callee", call->callee,
             "answered", call->answered ? "yes" : "no", "duration_s",
             LOG_INT(call->answered ? call->ended - call->answered : 0), "reason", reason);
    struct proxy_call_record rec = {
        .media = call->media[0] ? call->media : NULL,
        .call_id = call->call_id,
        .caller = call->caller,
        .callee = call->callee,
        .started = call->started,
        .answered = call->answered,
        .ended = call->ended,
        .reason = reason,
    };
    if (p->env.call_ended)
        p->env.call_ended(p->env.arg, &rec);
}

void proxy_call_release(struct proxy_call *call)
{
    if (!call || --call->refs > 0)
        return;
    proxy_call_unlist(call);
    free(call->call_id);
    free(call);
}

/* Call-ID and both tags, in either order (requests come from both sides):
 * the dialogs of one Call-ID (forks) do not share one chain. */
static uint64_t dialog_hash(struct strview call_id, struct strview tag1, struct strview tag2)
{
    return hash_bytes(call_id.p, call_id.n) ^ hash_bytes(tag1.p, tag1.n) ^
           hash_bytes(tag2.p, tag2.n);
}

struct dialog *dialog_find(struct proxy *p, struct strview call_id, struct strview from_tag,
                           struct strview to_tag, bool *from_caller)
{
    uint64_t h = dialog_hash(call_id, from_tag, to_tag);
    for (struct hmap_node *n = hmap_first(&p->dialogs, h); n; n = hmap_next(n, h)) {
        struct dialog *d = container_of(n, struct dialog, node);
        if (!strview_eq(call_id, d->call_id))
            continue;
        if (strview_eq(from_tag, d->caller_tag) && strview_eq(to_tag, d->callee_tag)) {
            *from_caller = true;
            return d;
        }
        if (strview_eq(from_tag, d->callee_tag) && strview_eq(to_tag, d->caller_tag)) {
            *from_caller = false;
            return d;
        }
    }
    return NULL;
}

static void dialog_free(struct dialog *d)
{
    struct proxy *p = d->p;
    timer_stop(p->timers, &d->timer);
    hmap_remove(&p->dialogs, &d->node);
    p->ndialogs--;
    if (d->call)
        d->call->ndialogs--;
    proxy_call_release(d->call);
    strbuf_free(&d->late_offer);
    free(d->call_id);
    free(d);
}

static void dialog_expired(struct timer *t, void *arg)
{
    (void)t;
    struct dialog *d = arg;
    if (d->state == DIALOG_CONFIRMED)
        dialog_end(d, "dialog expired without BYE");
    else
        dialog_free(d);
}

/* caller/callee: the dialog's two ends as named by the message; msg
 * carries the callee's Contact (a response, or the notifier's NOTIFY). */
static struct dialog *dialog_insert(struct proxy *p, const struct sip_msg *msg,
                                    const struct sip_addr *caller, const struct sip_addr *callee,
                                    struct proxy_request *pr, uint64_t callee_conn)
{
    bool from_caller;
    if (!callee->tag.n || caller->tag.n >= PROXY_TAG_MAX || callee->tag.n >= PROXY_TAG_MAX)
        return NULL;
    struct dialog *d = dialog_find(p, msg->call_id, caller->tag, callee->tag, &from_caller);
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
    d->call_id = malloc(msg->call_id.n + 1);
    if (!d->call_id) {
        free(d);
        return NULL;
    }
    strview_copy(msg->call_id, d->call_id, msg->call_id.n + 1);
    strview_copy(caller->tag, d->caller_tag, sizeof(d->caller_tag));
    strview_copy(callee->tag, d->callee_tag, sizeof(d->callee_tag));
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
    /* enough to send each side a BYE of our own (media policy) */
    strview_copy(caller->uri_text, d->caller_uri, sizeof(d->caller_uri));
    strview_copy(callee->uri_text, d->callee_uri, sizeof(d->callee_uri));
    struct sip_value_iter it;
    struct strview cv;
    struct sip_addr contact;
    sip_value_iter_init(&it, msg, SIP_HDR_CONTACT);
    if (sip_value_iter_next(&it, &cv) && sip_addr_parse(cv, &contact) == 0)
        strview_copy(contact.uri_text, d->callee_target, sizeof(d->callee_target));
    if (pr->st) {
        const struct sip_msg *req = sip_server_txn_request(pr->st);
        sip_value_iter_init(&it, req, SIP_HDR_CONTACT);
        if (sip_value_iter_next(&it, &cv) && sip_addr_parse(cv, &contact) == 0)
            strview_copy(contact.uri_text, d->caller_target, sizeof(d->caller_target));
        d->invite_cseq = req->cseq_num;
    }
    hmap_insert(&p->dialogs, &d->node, dialog_hash(msg->call_id, caller->tag, callee->tag));
    p->ndialogs++;
    timer_start(p->timers, &d->timer, DIALOG_EARLY_LIFETIME_MS, dialog_expired, d);
    return d;
}

struct dialog *dialog_upsert(struct proxy *p, const struct sip_msg *resp, struct proxy_request *pr,
                             uint64_t callee_conn)
{
    struct sip_addr from, to;
    if (sip_msg_from(resp, &from) != 0 || sip_msg_to(resp, &to) != 0)
        return NULL;
    return dialog_insert(p, resp, &from, &to, pr, callee_conn);
}

struct dialog *dialog_upsert_from_notify(struct proxy *p, const struct sip_msg *notify,
                                         struct proxy_request *pr, uint64_t notifier_conn)
{
    struct sip_addr from, to;
    if (sip_msg_from(notify, &from) != 0 || sip_msg_to(notify, &to) != 0)
        return NULL;
    return dialog_insert(p, notify, &to, &from, pr, notifier_conn);
}

void dialog_confirm(struct dialog *d)
{
    struct proxy *p = d->p;
    if (d->state == DIALOG_CONFIRMED)
        return;
    d->state = DIALOG_CONFIRMED;
    timer_start(p->timers, &d->timer, d->call ? DIALOG_MAX_LIFETIME_MS : DIALOG_IDLE_LIFETIME_MS,
                dialog_expired, d);
    if (d->call && !d->call->answered) {
        d->call->answered = proxy_now(p);
        log_info("call.answered", "call_id", d->call->call_id, "caller", d->call->caller, "callee",
                 d->call->callee);
    }
}

void dialog_end(struct dialog *d, const char *reason)
{
    if (d->call)
        proxy_call_finish(d->p, d->call, reason);
    dialog_free(d);
}

/* The INVITE ended: its early dialogs that were never confirmed go. */
void dialog_end_early(struct proxy *p, struct proxy_call *call)
{
    if (!call)
        return;
    size_t bucket;
    struct hmap_node *n = p->dialogs.count ? hmap_iter_first(&p->dialogs, &bucket) : NULL;
    while (n) {
        struct hmap_node *next = hmap_iter_next(&p->dialogs, n, &bucket);
        struct dialog *d = container_of(n, struct dialog, node);
        if (d->call == call && d->state == DIALOG_EARLY)
            dialog_free(d);
        n = next;
    }
}

void dialogs_conn_closed(struct proxy *p, uint64_t conn)
{
    size_t bucket;
    struct hmap_node *n = p->dialogs.count ? hmap_iter_first(&p->dialogs, &bucket) : NULL;
    while (n) {
        struct hmap_node *next = hmap_iter_next(&p->dialogs, n, &bucket);
        struct dialog *d = container_of(n, struct dialog, node);
        /* A device may come back on a new connection (its binding will say
         * where); only when both sides are gone is the call over. */
        if (d->caller_conn == conn)
            d->caller_conn = 0;
        if (d->callee_conn == conn)
            d->callee_conn = 0;
        if (d->caller_conn == 0 && d->callee_conn == 0)
            dialog_end(d, "connections closed");
        n = next;
    }
}

void dialogs_free(struct proxy *p)
{
    size_t bucket;
    struct hmap_node *n = p->dialogs.count ? hmap_iter_first(&p->dialogs, &bucket) : NULL;
    while (n) {
        struct hmap_node *next = hmap_iter_next(&p->dialogs, n, &bucket);
        dialog_free(container_of(n, struct dialog, node));
        n = next;
    }
}

/* A branch that failed leaves no early dialog behind. */
void dialog_end_early_tag(struct proxy *p, struct strview call_id, struct strview from_tag,
                          const char *to_tag)
{
    bool from_caller;
    if (!to_tag[0])
        return;
    struct dialog *d = dialog_find(p, call_id, from_tag, strview_cstr(to_tag), &from_caller);
    if (d && d->state == DIALOG_EARLY)
        dialog_free(d);
}

/* In-dialog traffic keeps a subscription's dialog; a terminated
 * subscription ends it. An unsubscribe (Expires: 0) is answered by one
 * last NOTIFY that must still find the dialog, so it only shortens the
 * dialog's life to a transaction's span. */
void dialog_touch(struct dialog *d, const struct sip_msg *req)
{
    if (d->call || d->state != DIALOG_CONFIRMED)
        return;
    struct sip_hdr *ss = sip_msg_hdr_first(req, SIP_HDR_SUBSCRIPTION_STATE);
    if (req->method == SIP_METHOD_NOTIFY && ss && ss->value.n >= 10 &&
        strncasecmp(ss->value.p, "terminated", 10) == 0) {
        dialog_end(d, "subscription ended");
        return;
    }
    uint64_t life = req->method == SIP_METHOD_SUBSCRIBE && req->expires == 0
                        ? 64 * SIP_T1_MS
                        : DIALOG_IDLE_LIFETIME_MS;
    timer_start(d->p->timers, &d->timer, life, dialog_expired, d);
}
