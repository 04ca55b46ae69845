/*
 * proxy/b2bua_leg — the bottom of the back-to-back user agent: a call's
 * bookkeeping (its Call-IDs, its free after the hooks return), building
 * and sending on one side from Parley's view of that side's dialog, and
 * the end of a call (see b2bua_priv.h).
 */
#include "proxy/b2bua_priv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/log.h"
#include "proxy/anchor.h"
#include "proxy/call.h"
#include "proxy/hop.h"
#include "proxy/media.h"
#include "proxy/trunk.h"
#include "sip/build.h"

static bool b2b_conn_tls(struct proxy *p, uint64_t conn);

/* --- bookkeeping ----------------------------------------------------------- */

uint64_t proxy_b2bua_leg_hash(struct strview call_id)
{
    return hash_bytes(call_id.p, call_id.n);
}

void proxy_b2bua_leg_index(struct proxy_b2b *b, int side)
{
    struct b2b_index *x = &b->index[side];
    if (x->listed || !b->side[side].call_id)
        return;
    x->b = b;
    x->side = side;
    hmap_insert(&b->p->b2bs, &x->node, proxy_b2bua_leg_hash(strview_cstr(b->side[side].call_id)));
    x->listed = true;
}

void proxy_b2bua_leg_unindex(struct proxy_b2b *b, int side)
{
    if (!b->index[side].listed)
        return;
    hmap_remove(&b->p->b2bs, &b->index[side].node);
    b->index[side].listed = false;
}

int proxy_b2bua_leg_trunk_side(const struct proxy_b2b *b)
{
    return 1 - b->user_side;
}

struct proxy_trunk *proxy_b2bua_leg_trunk(struct proxy_b2b *b)
{
    struct proxy_trunk *t = b->trunk[0] ? proxy_trunk_find(b->p, b->trunk) : NULL;
    if (t && (proxy_trunk_tls(t) != b->trunk_tls ||
              strcmp(proxy_trunk_gateway(t), b->trunk_gateway) != 0))
        return NULL; /* reloaded as another gateway or transport: not this call's */
    return t;
}

void proxy_b2bua_leg_take_trunk(struct proxy_b2b *b, const struct proxy_trunk *t)
{
    snprintf(b->trunk, sizeof(b->trunk), "%s", proxy_trunk_name(t));
    snprintf(b->trunk_gateway, sizeof(b->trunk_gateway), "%s", proxy_trunk_gateway(t));
    b->trunk_tls = proxy_trunk_tls(t);
    if (b->call)
        snprintf(b->call->trunk, sizeof(b->call->trunk), "%s", b->trunk);
}

bool proxy_b2bua_leg_sdp_may_go(struct proxy_b2b *b, int side, uint64_t conn)
{
    const struct strbuf *sdp = &b->sdp_to[side];
    bool keys = sdp->len && memmem(sdp->p, sdp->len, "a=crypto:", 9) != NULL;
    return !keys || b2b_conn_tls(b->p, conn);
}

static bool b2b_busy(const struct proxy_b2b *b)
{
    for (size_t i = 0; i < b->nbr; i++)
        if (b->br[i].txn)
            return true;
    /* a re-offer that is over (both its transactions gone) holds nothing */
    return (b->reoffer && (b->reoffer->txn || b->reoffer->in.st)) || b->a_invite.st != NULL ||
           b->bye_waits;
}

void proxy_b2bua_leg_free(struct proxy_b2b *b)
{
    struct proxy *p = b->p;
    proxy_b2bua_leg_unindex(b, 0);
    proxy_b2bua_leg_unindex(b, 1);
    if (b->prev)
        b->prev->next = b->next;
    else if (p->b2b_all == b)
        p->b2b_all = b->next;
    if (b->next)
        b->next->prev = b->prev;
    timer_stop(p->timers, &b->timer);
    timer_stop(p->timers, &b->reap);
    for (size_t i = 0; i < b->nbr; i++)
        if (b->br[i].txn)
            sip_client_txn_set_context(b->br[i].txn, NULL);
    if (b->reoffer) {
        if (b->reoffer->txn)
            sip_client_txn_set_context(b->reoffer->txn, NULL);
        if (b->reoffer->in.st)
            sip_server_txn_set_context(b->reoffer->in.st, NULL);
        free(b->reoffer);
    }
    if (b->a_invite.st)
        sip_server_txn_set_context(b->a_invite.st, NULL);
    proxy_anchor_release(p, b->anchor, "call ended");
    proxy_call_release(b->call);
    sip_dialog_clear(&b->side[0]);
    sip_dialog_clear(&b->side[1]);
    strbuf_free(&b->a_offer);
    for (int s = 0; s < 2; s++) {
        if (b->sdp_to[s].p)
            OPENSSL_cleanse(b->sdp_to[s].p, b->sdp_to[s].cap);
        strbuf_free(&b->sdp_to[s]);
    }
    free(b);
}

static void b2b_on_reap(struct timer *t, void *arg)
{
    (void)t;
    struct proxy_b2b *b = arg;
    if (b->state == B2B_ENDED && !b2b_busy(b))
        proxy_b2bua_leg_free(b);
}

/* Frees the call after the hooks on the stack have returned, if it is
 * over and nothing can report to it any more. */
void proxy_b2bua_leg_maybe_reap(struct proxy_b2b *b)
{
    if (b->state == B2B_ENDED && !b2b_busy(b) && !timer_is_active(&b->reap))
        timer_start(b->p->timers, &b->reap, 0, b2b_on_reap, b);
}

/* --- building and sending -------------------------------------------------- */

static bool b2b_conn_tls(struct proxy *p, uint64_t conn)
{
    const struct conn_info *ci = conn ? p->env.conn_info(p->env.arg, conn) : NULL;
    return ci && ci->tls;
}

/* "Contact: <sip:HOST:PORT;transport=tls>": Parley's own address toward
 * conn; in-dialog requests find the call by Call-ID and tags. */
void proxy_b2bua_leg_contact(struct proxy *p, uint64_t conn, char *out, size_t cap)
{
    char self[300];
    proxy_hop_self_address(p, conn, self, sizeof(self));
    snprintf(out, cap, "Contact: <sip:%s;transport=%s>\r\n", self,
             b2b_conn_tls(p, conn) ? "tls" : "tcp");
}

/* The connection requests toward side go on: the party's own, or for a
 * gateway whose connection went, Parley's connection to its trunk. */
uint64_t proxy_b2bua_leg_conn(struct proxy_b2b *b, int side)
{
    struct proxy *p = b->p;
    if (b->conn[side] && p->env.conn_info(p->env.arg, b->conn[side]))
        return b->conn[side];
    if (side == proxy_b2bua_leg_trunk_side(b)) {
        struct proxy_trunk *t = proxy_b2bua_leg_trunk(b);
        uint64_t c = 0;
        if (t && proxy_trunk_connect(p, t, &c) == 0)
            return b->conn[side] = c;
    }
    return 0;
}

/* A request of Parley's in side's view, parsed, ready for its client
 * transaction (or, an ACK, to be printed and sent). NULL on failure. */
struct sip_msg *proxy_b2bua_leg_build(struct proxy_b2b *b, int side, uint64_t conn,
                                      const char *method, uint32_t ack_cseq, const char *headers,
                                      struct strview body)
{
    struct proxy *p = b->p;
    char branch[48];
    sip_txn_new_branch(branch, sizeof(branch));
    struct strbuf via = STRBUF_INIT, out = STRBUF_INIT;
    proxy_hop_via(p, conn, branch, &via);
    struct sip_msg *msg = NULL;
    struct sip_parse_error perr;
    if (!via.err &&
        sip_dialog_request(&b->side[side], method, ack_cseq, strbuf_cstr(&via), headers,
                           body.n ? "application/sdp" : NULL, body, &out) == 0 &&
        sip_msg_parse(out.p, out.len, &msg, &perr) != 0)
        msg = NULL;
    if (side == 1 && b->side[1].local_cseq > b->b_cseq)
        b->b_cseq = b->side[1].local_cseq;
    if (out.p)
        OPENSSL_cleanse(out.p, out.cap);
    strbuf_free(&via);
    strbuf_free(&out);
    return msg;
}

/* Sends a request of Parley's whose answer is of no interest (BYE). */
void proxy_b2bua_leg_send_oneway(struct proxy_b2b *b, int side, const char *method,
                                 const char *headers)
{
    uint64_t conn = proxy_b2bua_leg_conn(b, side);
    if (!b->side[side].remote_target)
        return;
    if (!conn) {
        /* the gateway's connection is being made again (proxy_b2bua_leg_conn): the
         * BYE goes once it is up (proxy_b2bua_trunk_ready) */
        struct proxy_trunk *t = proxy_b2bua_leg_trunk(b);
        if (side == proxy_b2bua_leg_trunk_side(b) && t && strcmp(method, "BYE") == 0 &&
            proxy_trunk_connect(b->p, t, &conn) == -EINPROGRESS) {
            b->bye_waits = true;
            snprintf(b->bye_headers, sizeof(b->bye_headers), "%s", headers ? headers : "");
        }
        return;
    }
    struct sip_msg *m = proxy_b2bua_leg_build(b, side, conn, method, 0, headers, STRVIEW_EMPTY);
    if (m)
        sip_txn_client_send(b->p->txn, conn, m, NULL);
}

void proxy_b2bua_leg_send_ack(struct proxy_b2b *b, struct strview body)
{
    uint64_t conn = proxy_b2bua_leg_conn(b, 1);
    struct sip_msg *m =
        conn ? proxy_b2bua_leg_build(b, 1, conn, "ACK", b->invite_cseq, NULL, body) : NULL;
    struct strbuf out = STRBUF_INIT;
    if (m && sip_msg_print(m, &out) == 0)
        b->p->env.send(b->p->env.arg, conn, &out);
    strbuf_free(&out);
    sip_msg_free(m);
}

/* The SDP of m (its whole body or its application/sdp part), or empty. */
struct strview proxy_b2bua_leg_sdp_of(const struct sip_msg *m)
{
    struct sip_body_sdp found;
    char why[8];
    if (proxy_media_find_sdp(m, &found, why, sizeof(why)) != 0)
        return STRVIEW_EMPTY;
    return found.sdp;
}

void proxy_b2bua_leg_keep_sdp(struct proxy_b2b *b, int side, const struct sip_msg *m)
{
    struct strbuf *kept = &b->sdp_to[side];
    if (kept->p)
        OPENSSL_cleanse(kept->p, kept->cap);
    strbuf_reset(kept);
    strbuf_putview(kept, proxy_b2bua_leg_sdp_of(m));
}

/* A response to A's INVITE: Parley's tag, its Contact on 1xx/2xx, the
 * body given (SDP), extra header lines. */
void proxy_b2bua_leg_reply_a(struct proxy_b2b *b, int status, const char *reason, const char *extra,
                             struct strview sdp)
{
    struct sip_server_txn *st = b->a_invite.st;
    if (!st || sip_server_txn_answered(st))
        return;
    struct proxy *p = b->p;
    char headers[1024] = "";
    size_t n = 0;
    bool reliable = b->a_100rel && status > 100 && status < 200;
    if (reliable && b->a_unacked)
        return; /* one reliable provisional at a time (RFC 3262 §3) */
    if (status > 100 && status < 300) {
        proxy_b2bua_leg_contact(p, b->conn[0], headers, sizeof(headers));
        n = strlen(headers);
        snprintf(headers + n, sizeof(headers) - n, "%s", B2B_ALLOW);
        n = strlen(headers);
    }
    if (reliable) {
        snprintf(headers + n, sizeof(headers) - n, "Require: 100rel\r\nRSeq: %u\r\n", ++b->a_rseq);
        n = strlen(headers);
        b->a_unacked = true;
        b->a_unacked_sdp = sdp.n > 0;
    }
    if (extra)
        snprintf(headers + n, sizeof(headers) - n, "%s", extra);
    struct strbuf out = STRBUF_INIT;
    if (sip_build_response(sip_server_txn_request(st), status, reason, b->a_tag,
                           headers[0] ? headers : NULL, sdp.n ? "application/sdp" : NULL, sdp,
                           &out) == 0)
        sip_server_txn_send(st, status, &out);
    else
        sip_server_txn_reply(st, 500, NULL, NULL);
    if (out.p)
        OPENSSL_cleanse(out.p, out.cap);
    strbuf_free(&out);
}

/* A Reason header line for a BYE of Parley's. */
void proxy_b2bua_leg_reason(int cause, const char *text, char *out, size_t cap)
{
    char clean[200];
    size_t j = 0;
    for (size_t i = 0; text && text[i] && j + 1 < sizeof(clean); i++) {
        unsigned char c = (unsigned char)text[i];
        clean[j++] = (c == '"' || c == '\\' || c < ' ' || c == 0x7f) ? '\'' : (char)c;
    }
    clean[j] = '\0';
    snprintf(out, cap, "Reason: SIP;cause=%d;text=\"%s\"\r\n", cause, clean);
}

/* --- the end of a call ----------------------------------------------------- */

void proxy_b2bua_leg_describe_media(struct proxy_b2b *b)
{
    if (!b->call || !b->anchor)
        return;
    char user_leg[160], gw_leg[160];
    proxy_anchor_describe_leg(b->anchor, b->user_side, user_leg, sizeof(user_leg));
    proxy_anchor_describe_leg(b->anchor, proxy_b2bua_leg_trunk_side(b), gw_leg, sizeof(gw_leg));
    struct proxy_trunk *t = proxy_b2bua_leg_trunk(b);
    snprintf(b->call->media, sizeof(b->call->media), "user leg %s / gateway leg %s (trunk %s: %s)",
             user_leg[0] ? user_leg : "-", gw_leg[0] ? gw_leg : "-", b->trunk,
             t ? proxy_trunk_srtp_name(proxy_trunk_srtp(t)) : "removed");
}

void proxy_b2bua_leg_end(struct proxy_b2b *b, const char *reason, bool bye_a, bool bye_b, int cause,
                         const char *text)
{
    if (b->state == B2B_ENDED)
        return;
    struct proxy *p = b->p;
    char rh[300] = "";
    if (cause)
        proxy_b2bua_leg_reason(cause, text ? text : reason, rh, sizeof(rh));
    /* only a confirmed call has dialogs to end on both sides */
    if (bye_a && b->state == B2B_CONFIRMED)
        proxy_b2bua_leg_send_oneway(b, 0, "BYE", rh[0] ? rh : NULL);
    if (bye_b && b->state == B2B_CONFIRMED && b->answered >= 0)
        proxy_b2bua_leg_send_oneway(b, 1, "BYE", rh[0] ? rh : NULL);
    /* A's INVITE never stays unanswered (a BYE in an early dialog ends
     * the call before any final response) */
    if (b->a_invite.st && !sip_server_txn_answered(b->a_invite.st))
        proxy_b2bua_leg_reply_a(b, 487, NULL, NULL, STRVIEW_EMPTY);
    b->state = B2B_ENDED;
    timer_stop(p->timers, &b->timer);
    for (size_t i = 0; i < b->nbr; i++)
        if (b->br[i].txn && (int)i != b->answered)
            sip_client_txn_cancel(b->br[i].txn, "SIP;cause=487;text=\"Call ended\"");
    if (b->call) {
        proxy_b2bua_leg_describe_media(b);
        free(b->call->legs);
        b->call->legs = proxy_anchor_figures(p, b->anchor);
        proxy_call_finish(p, b->call, reason);
    }
    proxy_anchor_release(p, b->anchor, reason);
    b->anchor = NULL;
    log_info("b2bua.ended", "call_id", b->call ? b->call->call_id : "", "trunk", b->trunk, "reason",
             reason);
    proxy_b2bua_leg_maybe_reap(b);
}

/* A's INVITE fails with status: answered, and the call is over. */
void proxy_b2bua_leg_fail(struct proxy_b2b *b, int status, const char *reason, const char *warning)
{
    char extra[MEDIA_WARNING_MAX + 64] = "";
    if (warning && warning[0])
        proxy_media_warning_header(b->p, warning, extra, sizeof(extra));
    proxy_b2bua_leg_reply_a(b, status, reason, extra[0] ? extra : NULL, STRVIEW_EMPTY);
    char why[260];
    snprintf(why, sizeof(why), "%d %s", status, reason ? reason : sip_reason_phrase(status));
    proxy_b2bua_leg_end(b, why, false, false, status, NULL);
}

/* What a gateway's final failure becomes for the user. */
int proxy_b2bua_leg_map_failure(int status, const char **reason)
{
    if (status == 401 || status == 407) {
        *reason = "Forbidden (the gateway asked for credentials: trunks are trusted by their "
                  "address or certificate)";
        return 403;
    }
    if (status >= 300 && status < 400) {
        *reason = "Bad Gateway (the gateway redirected the call; trunk calls are not redirected)";
        return 502;
    }
    return status;
}
