/*
 * proxy/request — the lifetime and admission of a request being proxied
 * (see request.h). A proxy_request lives while its server transaction or
 * any branch's client transaction lives: the transaction layer's
 * terminated hooks detach them, and the last one out frees it.
 */
#include "proxy/request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/anchor.h"
#include "proxy/call.h"
#include "proxy/reject.h"
#include "proxy/state.h"

static size_t request_live_branches(const struct proxy_request *pr)
{
    size_t n = 0;
    for (size_t i = 0; i < pr->nbranches; i++)
        if (pr->branches[i].txn)
            n++;
    return n;
}

static void request_subscribe_unlist(struct proxy_request *pr)
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

static struct proxy_user_load *request_load_find(struct proxy *p, const char *aor, uint64_t h)
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
static bool request_load_take(struct proxy *p, const char *aor, struct proxy_user_load **out)
{
    uint64_t h = hash_bytes(aor, strlen(aor));
    struct proxy_user_load *u = request_load_find(p, aor, h);
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

static void request_load_put(struct proxy *p, struct proxy_user_load *u)
{
    if (u && --u->n == 0) {
        hmap_remove(&p->user_loads, &u->node);
        free(u);
    }
}

void proxy_request_done(struct proxy_request *pr)
{
    request_load_put(pr->p, pr->load);
    pr->load = NULL;
}

void proxy_request_maybe_free(struct proxy_request *pr)
{
    if (pr->st || pr->waiting_for || request_live_branches(pr))
        return;
    proxy_request_done(pr);
    request_subscribe_unlist(pr);
    if (pr->call)
        proxy_call_release(pr->call);
    for (size_t i = 0; i < pr->nbranches; i++) {
        strbuf_free(&pr->branches[i].offer);
        proxy_anchor_release(pr->p, pr->branches[i].anchor, "not answered");
    }
    strbuf_free(&pr->best);
    strbuf_free(&pr->held);
    free(pr);
}

struct proxy_request *proxy_request_new(struct proxy *p, struct sip_server_txn *st,
                                        const char *sender)
{
    bool bye = sip_server_txn_request(st)->method == SIP_METHOD_BYE;
    const char *full =
        p->env.txn_admit && !bye ? p->env.txn_admit(p->env.arg, sip_server_txn_conn(st)) : NULL;
    struct proxy_user_load *load = NULL;
    if (!full && !bye && !request_load_take(p, sender, &load))
        full = "limits.transactions_per_user";
    if (full) {
        proxy_reject_overload(p, st, full);
        return NULL;
    }
    struct proxy_request *pr = calloc(1, sizeof(*pr));
    if (!pr) {
        request_load_put(p, load);
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
