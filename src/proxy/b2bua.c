/*
 * proxy/b2bua — the back-to-back user agent between users and trunks
 * (see b2bua.h).
 *
 * Side 0 is A (Parley answers its INVITE), side 1 is B (Parley's INVITE
 * goes there); the anchored streams' legs are numbered the same way. The
 * views in side[] are Parley's own dialogs with each party (sip/dialog):
 * every request Parley sends on a side is built from that side's view,
 * every response to A from A's INVITE and Parley's tag toward A.
 *
 * A call is freed only once nothing can still report to it: its state is
 * ENDED, its B branches' INVITE transactions are over (a 2xx that crosses
 * a CANCEL must still get its ACK and BYE) and no re-offer is in flight;
 * the free itself runs from a timer, never inside a transaction's hook.
 */
#include "proxy/b2bua.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/log.h"
#include "core/random.h"
#include "dialplan/dialplan.h"
#include "media/policy.h"
#include "proxy/anchor.h"
#include "proxy/call.h"
#include "proxy/hop.h"
#include "proxy/media.h"
#include "proxy/reject.h"
#include "proxy/state.h"
#include "proxy/trunk.h"
#include "sip/build.h"
#include "sip/dialog.h"
#include "sip/session_timer.h"

#define B2B_BRANCHES   PROXY_MAX_BRANCHES
#define B2B_NUMBER_MAX (DIALPLAN_DIGITS_MAX + 1)
#define B2B_ALLOW      "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, PRACK\r\n"
/* how many 422s one attempt follows before it gives up */
#define B2B_422_MAX 2

enum b2b_state {
    B2B_WAITING,   /* for a trunk's connection */
    B2B_CALLING,   /* INVITE(s) toward B in flight */
    B2B_CONFIRMED, /* answered on both sides */
    B2B_ENDED,     /* over; freed once nothing reports to it */
};

/* One INVITE toward B: an attempt on a trunk, or one device of a user. */
struct b2b_branch {
    struct sip_txn_user user; /* first: the transaction's context */
    struct proxy_b2b *b;
    struct sip_client_txn *txn; /* NULL once over */
    uint64_t conn;
    int status;    /* last status seen */
    uint32_t rseq; /* highest RSeq Parley sent PRACK for */
};

/* A server transaction of the call's (A's INVITE, a re-offer's request). */
struct b2b_server {
    enum proxy_txn_kind kind; /* first: PROXY_TXN_B2B */
    struct proxy_b2b *b;
    struct sip_server_txn *st; /* NULL once it ended */
};

/* A re-INVITE or UPDATE with an offer, from one side to the other, or
 * Parley's own session refresh toward the gateway (from = -1). */
struct b2b_reoffer {
    struct sip_txn_user user; /* first */
    struct proxy_b2b *b;
    struct b2b_server in;
    int from, to;
    bool invite;
    struct sip_client_txn *txn; /* NULL once over */
};

struct proxy_b2b {
    struct hmap_node node[2]; /* p->b2bs by each side's Call-ID */
    bool indexed[2];
    struct proxy_b2b *prev, *next; /* p->b2b_all */
    struct proxy *p;
    enum b2b_state state;
    bool outbound;                     /* A a user, B a gateway (else the reverse) */
    int user_side;                     /* 0 outbound, 1 inbound */
    char trunk[DIALPLAN_NAME_MAX + 1]; /* the trunk of the attempt in use, or the caller's */
    char route[DIALPLAN_NAME_MAX + 1];
    char trunks[DIALPLAN_TRUNKS_MAX][DIALPLAN_NAME_MAX + 1];
    size_t ntrunks, attempt;
    char number[B2B_NUMBER_MAX];        /* the number called */
    char caller_number[B2B_NUMBER_MAX]; /* the caller's number, or "" */
    char user[PROXY_USER_MAX];          /* the user of the call */
    bool privacy;                       /* the caller asked for Privacy: id */
    struct b2b_server a_invite;
    struct sip_dialog side[2];
    uint64_t conn[2];
    char a_tag[PROXY_TAG_MAX];
    struct strbuf a_offer;   /* A's INVITE's SDP, as it came (empty: none) */
    struct strbuf sdp_to[2]; /* the SDP Parley last sent each side (its keys: cleansed) */
    struct b2b_branch br[B2B_BRANCHES];
    size_t nbr;
    int answered; /* index of B's answering branch, or -1 */
    int best_status;
    char best_reason[200];
    char warning[MEDIA_WARNING_MAX];
    uint32_t b_cseq;      /* the highest CSeq Parley used toward B */
    uint32_t invite_cseq; /* of the INVITE B answered */
    bool ack_waits;       /* B's 2xx carried an offer: A's ACK must answer it */
    unsigned n422;
    struct proxy_anchor_set *anchor;
    struct proxy_call *call;
    uint32_t se_interval, se_min;
    struct sip_session_timer stimer;
    struct timer timer; /* the session timer */
    struct timer reap;
    struct b2b_reoffer *reoffer;
};

static void b2b_attempt(struct proxy_b2b *b);
static void b2b_end(struct proxy_b2b *b, const char *reason, bool bye_a, bool bye_b, int cause,
                    const char *text);

/* --- bookkeeping ----------------------------------------------------------- */

static uint64_t b2b_hash(struct strview call_id)
{
    return hash_bytes(call_id.p, call_id.n);
}

static void b2b_index(struct proxy_b2b *b, int side)
{
    if (b->indexed[side] || !b->side[side].call_id)
        return;
    hmap_insert(&b->p->b2bs, &b->node[side], b2b_hash(strview_cstr(b->side[side].call_id)));
    b->indexed[side] = true;
}

static void b2b_unindex(struct proxy_b2b *b, int side)
{
    if (!b->indexed[side])
        return;
    hmap_remove(&b->p->b2bs, &b->node[side]);
    b->indexed[side] = false;
}

static int b2b_trunk_side(const struct proxy_b2b *b)
{
    return 1 - b->user_side;
}

static struct proxy_trunk *b2b_trunk(struct proxy_b2b *b)
{
    return b->trunk[0] ? proxy_trunk_find(b->p, b->trunk) : NULL;
}

static bool b2b_busy(const struct proxy_b2b *b)
{
    for (size_t i = 0; i < b->nbr; i++)
        if (b->br[i].txn)
            return true;
    return b->reoffer != NULL || b->a_invite.st != NULL;
}

static void b2b_free(struct proxy_b2b *b)
{
    struct proxy *p = b->p;
    b2b_unindex(b, 0);
    b2b_unindex(b, 1);
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
        b2b_free(b);
}

/* Frees the call after the hooks on the stack have returned, if it is
 * over and nothing can report to it any more. */
static void b2b_maybe_reap(struct proxy_b2b *b)
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
static void b2b_contact(struct proxy *p, uint64_t conn, char *out, size_t cap)
{
    char self[300];
    proxy_hop_self_address(p, conn, self, sizeof(self));
    snprintf(out, cap, "Contact: <sip:%s;transport=%s>\r\n", self,
             b2b_conn_tls(p, conn) ? "tls" : "tcp");
}

/* The connection requests toward side go on: the party's own, or for a
 * gateway whose connection went, Parley's connection to its trunk. */
static uint64_t b2b_conn(struct proxy_b2b *b, int side)
{
    struct proxy *p = b->p;
    if (b->conn[side] && p->env.conn_info(p->env.arg, b->conn[side]))
        return b->conn[side];
    if (side == b2b_trunk_side(b)) {
        struct proxy_trunk *t = b2b_trunk(b);
        uint64_t c = 0;
        if (t && proxy_trunk_connect(p, t, &c) == 0)
            return b->conn[side] = c;
    }
    return 0;
}

/* A request of Parley's in side's view, parsed, ready for its client
 * transaction (or, an ACK, to be printed and sent). NULL on failure. */
static struct sip_msg *b2b_build(struct proxy_b2b *b, int side, uint64_t conn, const char *method,
                                 uint32_t ack_cseq, const char *headers, struct strview body)
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
static void b2b_send_oneway(struct proxy_b2b *b, int side, const char *method, const char *headers)
{
    uint64_t conn = b2b_conn(b, side);
    if (!conn || !b->side[side].remote_target)
        return;
    struct sip_msg *m = b2b_build(b, side, conn, method, 0, headers, STRVIEW_EMPTY);
    if (m)
        sip_txn_client_send(b->p->txn, conn, m, NULL);
}

static void b2b_send_ack(struct proxy_b2b *b, struct strview body)
{
    uint64_t conn = b2b_conn(b, 1);
    struct sip_msg *m = conn ? b2b_build(b, 1, conn, "ACK", b->invite_cseq, NULL, body) : NULL;
    struct strbuf out = STRBUF_INIT;
    if (m && sip_msg_print(m, &out) == 0)
        b->p->env.send(b->p->env.arg, conn, &out);
    strbuf_free(&out);
    sip_msg_free(m);
}

/* The SDP of m (its whole body or its application/sdp part), or empty. */
static struct strview b2b_sdp_of(const struct sip_msg *m)
{
    struct sip_body_sdp found;
    char why[8];
    if (proxy_media_find_sdp(m, &found, why, sizeof(why)) != 0)
        return STRVIEW_EMPTY;
    return found.sdp;
}

static void b2b_keep_sdp(struct proxy_b2b *b, int side, const struct sip_msg *m)
{
    struct strbuf *kept = &b->sdp_to[side];
    if (kept->p)
        OPENSSL_cleanse(kept->p, kept->cap);
    strbuf_reset(kept);
    strbuf_putview(kept, b2b_sdp_of(m));
}

/* A response to A's INVITE: Parley's tag, its Contact on 1xx/2xx, the
 * body given (SDP), extra header lines. */
static void b2b_reply_a(struct proxy_b2b *b, int status, const char *reason, const char *extra,
                        struct strview sdp)
{
    struct sip_server_txn *st = b->a_invite.st;
    if (!st || sip_server_txn_answered(st))
        return;
    struct proxy *p = b->p;
    char headers[1024] = "";
    size_t n = 0;
    if (status > 100 && status < 300) {
        b2b_contact(p, b->conn[0], headers, sizeof(headers));
        n = strlen(headers);
        snprintf(headers + n, sizeof(headers) - n, "%s", B2B_ALLOW);
        n = strlen(headers);
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
static void b2b_reason(int cause, const char *text, char *out, size_t cap)
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

static void b2b_describe_media(struct proxy_b2b *b)
{
    if (!b->call || !b->anchor)
        return;
    char user_leg[160], gw_leg[160];
    proxy_anchor_describe_leg(b->anchor, b->user_side, user_leg, sizeof(user_leg));
    proxy_anchor_describe_leg(b->anchor, b2b_trunk_side(b), gw_leg, sizeof(gw_leg));
    struct proxy_trunk *t = b2b_trunk(b);
    snprintf(b->call->media, sizeof(b->call->media), "user leg %s / gateway leg %s (trunk %s: %s)",
             user_leg[0] ? user_leg : "-", gw_leg[0] ? gw_leg : "-", b->trunk,
             t ? proxy_trunk_srtp_name(proxy_trunk_srtp(t)) : "removed");
}

static void b2b_end(struct proxy_b2b *b, const char *reason, bool bye_a, bool bye_b, int cause,
                    const char *text)
{
    if (b->state == B2B_ENDED)
        return;
    struct proxy *p = b->p;
    char rh[300] = "";
    if (cause)
        b2b_reason(cause, text ? text : reason, rh, sizeof(rh));
    /* only a confirmed call has dialogs to end on both sides */
    if (bye_a && b->state == B2B_CONFIRMED)
        b2b_send_oneway(b, 0, "BYE", rh[0] ? rh : NULL);
    if (bye_b && b->state == B2B_CONFIRMED && b->answered >= 0)
        b2b_send_oneway(b, 1, "BYE", rh[0] ? rh : NULL);
    b->state = B2B_ENDED;
    timer_stop(p->timers, &b->timer);
    for (size_t i = 0; i < b->nbr; i++)
        if (b->br[i].txn && (int)i != b->answered)
            sip_client_txn_cancel(b->br[i].txn, "SIP;cause=487;text=\"Call ended\"");
    if (b->call) {
        b2b_describe_media(b);
        free(b->call->legs);
        b->call->legs = proxy_anchor_figures(p, b->anchor);
        proxy_call_finish(p, b->call, reason);
    }
    proxy_anchor_release(p, b->anchor, reason);
    b->anchor = NULL;
    log_info("b2bua.ended", "call_id", b->call ? b->call->call_id : "", "trunk", b->trunk, "reason",
             reason);
    b2b_maybe_reap(b);
}

/* A's INVITE fails with status: answered, and the call is over. */
static void b2b_fail(struct proxy_b2b *b, int status, const char *reason, const char *warning)
{
    char extra[MEDIA_WARNING_MAX + 64] = "";
    if (warning && warning[0])
        proxy_media_warning_header(b->p, warning, extra, sizeof(extra));
    b2b_reply_a(b, status, reason, extra[0] ? extra : NULL, STRVIEW_EMPTY);
    char why[260];
    snprintf(why, sizeof(why), "%d %s", status, reason ? reason : sip_reason_phrase(status));
    b2b_end(b, why, false, false, status, NULL);
}

/* --- session timer toward the gateway (outbound calls) --------------------- */

static void b2b_refresh(struct proxy_b2b *b);

static void b2b_on_timer(struct timer *t, void *arg)
{
    (void)t;
    struct proxy_b2b *b = arg;
    if (b->state != B2B_CONFIRMED)
        return;
    if (b->stimer.we_refresh) {
        b2b_refresh(b); /* or later, while a re-offer is pending */
        return;
    }
    log_info("b2bua.session_expired", "call_id", b->call ? b->call->call_id : "", "trunk",
             b->trunk);
    b2b_end(b, "session timer expired", true, true, 408, "session timer expired");
}

static void b2b_arm_timer(struct proxy_b2b *b)
{
    if (!b->stimer.active)
        return;
    uint32_t s = sip_session_timer_due(&b->stimer);
    timer_start(b->p->timers, &b->timer, (uint64_t)s * 1000, b2b_on_timer, b);
}

/* A 2xx from the gateway to an INVITE or UPDATE of Parley's (or one it
 * passed): the session timer it sets. */
static void b2b_timer_from_2xx(struct proxy_b2b *b, const struct sip_msg *resp)
{
    if (!b->outbound)
        return;
    struct sip_session_timer t;
    if (sip_session_timer_on_2xx(resp, b->se_min, &t) != 0) {
        /* a Session-Expires Parley cannot take: no timer rather than a
         * wrong one (logged) */
        log_warn("b2bua.session_timer_refused", "trunk", b->trunk, "reason",
                 "the gateway's Session-Expires is below Min-SE or unreadable");
        memset(&b->stimer, 0, sizeof(b->stimer));
        return;
    }
    b->stimer = t;
    if (t.active)
        b->se_interval = t.interval;
    b2b_arm_timer(b);
}

/* --- responses from B to Parley's INVITEs ---------------------------------- */

static void b2b_branch_response(struct sip_txn_user *u, struct sip_client_txn *t,
                                const struct sip_msg *resp, int status, bool retransmission);
static void b2b_branch_terminated(struct sip_txn_user *u, struct sip_client_txn *t);

/* Sends Parley's INVITE toward B on conn, to target (a device's contact,
 * or the gateway's URI); the offer is A's, anchored toward B. */
static int b2b_send_invite(struct proxy_b2b *b, uint64_t conn, const char *target,
                           const char *headers, struct strview body, bool anchor)
{
    struct proxy *p = b->p;
    if (b->nbr == B2B_BRANCHES) {
        snprintf(b->warning, sizeof(b->warning), "too many attempts");
        return 500;
    }
    if (sip_dialog_set_target(&b->side[1], strview_cstr(target)) != 0)
        return 500;
    uint32_t cseq = b->side[1].local_cseq;
    struct sip_msg *m = b2b_build(b, 1, conn, "INVITE", 0, headers, body);
    if (!m)
        return 500;
    if (anchor && body.n) {
        int status = proxy_anchor_offer(p, &b->anchor, true, m, b->conn[0], conn,
                                        b->call ? b->call->call_id : "", b->user, b->warning,
                                        sizeof(b->warning));
        if (status) {
            b->side[1].local_cseq = cseq;
            sip_msg_free(m);
            return status;
        }
        b2b_keep_sdp(b, 1, m);
    }
    struct b2b_branch *br = &b->br[b->nbr];
    memset(br, 0, sizeof(*br));
    br->user.response = b2b_branch_response;
    br->user.terminated = b2b_branch_terminated;
    br->b = b;
    br->conn = conn;
    b->nbr++;
    br->txn = sip_txn_client_send(p->txn, conn, m, br);
    if (!br->txn) {
        b->nbr--;
        return 500;
    }
    return 0;
}

/* How the engine protects a gateway's leg: the trunk's srtp_mode. */
static enum proxy_anchor_leg b2b_leg_mode(const struct proxy_trunk *t)
{
    switch (proxy_trunk_srtp(t)) {
    case PROXY_TRUNK_SRTP_REQUIRED:
        return PROXY_ANCHOR_LEG_SRTP_REQUIRED;
    case PROXY_TRUNK_SRTP_OPTIONAL:
        return PROXY_ANCHOR_LEG_SRTP_OPTIONAL;
    case PROXY_TRUNK_SRTP_NOT_SUPPORTED:
        break;
    }
    return PROXY_ANCHOR_LEG_PLAIN;
}

/* The header lines of Parley's INVITE toward a gateway. */
static void b2b_gateway_headers(struct proxy_b2b *b, uint64_t conn, char *out, size_t cap)
{
    struct proxy *p = b->p;
    struct strbuf h = STRBUF_INIT;
    char contact[400];
    b2b_contact(p, conn, contact, sizeof(contact));
    strbuf_puts(&h, contact);
    strbuf_puts(&h, B2B_ALLOW);
    strbuf_puts(&h, "Supported: 100rel\r\n");
    sip_session_timer_offer(&h, b->se_interval, b->se_min);
    if (b->caller_number[0])
        strbuf_printf(&h, "P-Asserted-Identity: <sip:%s@%s;user=phone>\r\n", b->caller_number,
                      p->domain);
    if (b->privacy)
        strbuf_puts(&h, "Privacy: id\r\n");
    snprintf(out, cap, "%s", h.err ? "" : strbuf_cstr(&h));
    strbuf_free(&h);
}

/* The INVITE toward the gateway of the attempt's trunk, its connection up. */
static void b2b_invite_gateway(struct proxy_b2b *b, uint64_t conn)
{
    struct proxy_trunk *t = b2b_trunk(b);
    if (!t) {
        b2b_fail(b, 503, "Service Unavailable (the trunk was removed)", NULL);
        return;
    }
    b->conn[1] = conn;
    b->state = B2B_CALLING;
    char target[400], headers[1200];
    const char *gw = proxy_trunk_gateway(t);
    snprintf(target, sizeof(target), "sip:%s@%s;user=phone;transport=%s", b->number, gw,
             proxy_trunk_tls(t) ? "tls" : "tcp");
    b2b_gateway_headers(b, conn, headers, sizeof(headers));
    proxy_anchor_set_leg(b->anchor, 1, b2b_leg_mode(t));
    int status =
        b2b_send_invite(b, conn, target, headers, strview_make(b->a_offer.p, b->a_offer.len), true);
    if (status) {
        char reason[MEDIA_WARNING_MAX + 40];
        snprintf(reason, sizeof(reason), "%s", sip_reason_phrase(status));
        b2b_fail(b, status, reason, b->warning);
        return;
    }
    proxy_trunk_count_call(t, true);
    log_info("b2bua.attempt", "call_id", b->call ? b->call->call_id : "", "trunk", b->trunk,
             "number", b->number, "attempt", LOG_INT(b->attempt + 1));
}

/* Side B's view for the attempt: a fresh Call-ID and tag, From the
 * caller's number (or anonymous), To the number at the gateway. */
static int b2b_view_toward_gateway(struct proxy_b2b *b)
{
    struct proxy *p = b->p;
    struct proxy_trunk *t = b2b_trunk(b);
    char call_id[64], tag[32], from[400], to[400];
    random_token(call_id, 32);
    random_token(tag, 16);
    if (b->privacy || !b->caller_number[0])
        snprintf(from, sizeof(from), "\"Anonymous\" <sip:anonymous@anonymous.invalid>;tag=%s", tag);
    else
        snprintf(from, sizeof(from), "<sip:%s@%s;user=phone>;tag=%s", b->caller_number, p->domain,
                 tag);
    snprintf(to, sizeof(to), "<sip:%s@%s;user=phone>", b->number,
             t ? proxy_trunk_gateway(t) : "invalid");
    struct sip_addr fa, ta;
    b2b_unindex(b, 1);
    sip_dialog_clear(&b->side[1]);
    if (sip_addr_parse(strview_cstr(from), &fa) != 0 || sip_addr_parse(strview_cstr(to), &ta) != 0)
        return -EINVAL;
    int rc = sip_dialog_init(&b->side[1], strview_cstr(call_id), &fa, &ta, STRVIEW_EMPTY);
    if (rc == 0) {
        /* a CSeq of its own, not 1: nothing about it says how many
         * requests came before */
        sip_dialog_note_local_cseq(&b->side[1], (uint32_t)(random_u64() % 10000));
        b2b_index(b, 1);
    }
    return rc;
}

/* The next trunk of the route that is not left out; the call fails when
 * none is left (with the last failure seen, or 503). */
static void b2b_attempt(struct proxy_b2b *b)
{
    struct proxy *p = b->p;
    for (; b->attempt < b->ntrunks; b->attempt++) {
        struct proxy_trunk *t = proxy_trunk_find(p, b->trunks[b->attempt]);
        if (!t || proxy_trunk_skipped(p, t))
            continue;
        snprintf(b->trunk, sizeof(b->trunk), "%s", b->trunks[b->attempt]);
        if (b->call)
            snprintf(b->call->trunk, sizeof(b->call->trunk), "%s", b->trunk);
        /* a fresh set of streams per attempt: each gateway's leg is its own */
        proxy_anchor_release(p, b->anchor, "next trunk");
        b->anchor = NULL;
        b->n422 = 0;
        b->se_interval = PROXY_B2BUA_SESSION_EXPIRES;
        b->se_min = PROXY_B2BUA_MIN_SE;
        if (proxy_anchor_new(&b->anchor, b->call ? b->call->call_id : "", b->user) != 0 ||
            b2b_view_toward_gateway(b) != 0) {
            b2b_fail(b, 500, "Server Internal Error (out of memory)", NULL);
            return;
        }
        uint64_t conn = 0;
        int rc = proxy_trunk_connect(p, t, &conn);
        if (rc == 0) {
            b2b_invite_gateway(b, conn);
            return;
        }
        if (rc == -EINPROGRESS) {
            b->state = B2B_WAITING;
            return;
        }
        b->best_status = 503;
        snprintf(b->best_reason, sizeof(b->best_reason), "Service Unavailable (trunk %s: %s)",
                 b->trunk, proxy_trunk_last_error(t));
    }
    if (!b->best_status) {
        b->best_status = 503;
        snprintf(b->best_reason, sizeof(b->best_reason),
                 "Service Unavailable (no trunk of route %s can take the call now)", b->route);
    }
    b2b_fail(b, b->best_status, b->best_reason, NULL);
}

void proxy_b2bua_trunk_ready(struct proxy *p, struct proxy_trunk *t, bool up)
{
    const char *name = proxy_trunk_name(t);
    struct proxy_b2b *next;
    for (struct proxy_b2b *b = p->b2b_all; b; b = next) {
        next = b->next;
        if (b->state != B2B_WAITING || strcmp(b->trunk, name) != 0)
            continue;
        uint64_t conn = 0;
        if (up && proxy_trunk_connect(p, t, &conn) == 0) {
            b2b_invite_gateway(b, conn);
        } else {
            b->best_status = 503;
            snprintf(b->best_reason, sizeof(b->best_reason), "Service Unavailable (trunk %s: %s)",
                     name, proxy_trunk_last_error(t));
            b->attempt++;
            b2b_attempt(b);
        }
    }
}

/* PRACK for a reliable provisional (RFC 3262): in the early dialog the
 * provisional made, CSeq above anything Parley sent toward B. */
static void b2b_prack(struct proxy_b2b *b, struct b2b_branch *br, const struct sip_msg *req,
                      const struct sip_msg *resp)
{
    const struct sip_hdr *rs = sip_msg_hdr_first(resp, SIP_HDR_RSEQ);
    char num[16] = "";
    if (!rs || strview_copy(rs->value, num, sizeof(num)) != 0)
        return;
    char *end = NULL;
    unsigned long rseq = strtoul(num, &end, 10);
    if (!end || *end || rseq == 0 || rseq > 0xffffffffUL || (uint32_t)rseq <= br->rseq)
        return; /* a repeat, or out of order: RFC 3262 §4 */
    br->rseq = (uint32_t)rseq;
    struct sip_dialog early;
    if (sip_dialog_uac(&early, req, resp) != 0)
        return;
    sip_dialog_note_local_cseq(&early, b->b_cseq);
    char rack[96];
    snprintf(rack, sizeof(rack), "RAck: %lu %u INVITE\r\n", rseq, req->cseq_num);
    char branch[48];
    sip_txn_new_branch(branch, sizeof(branch));
    struct strbuf via = STRBUF_INIT, out = STRBUF_INIT;
    proxy_hop_via(b->p, br->conn, branch, &via);
    struct sip_msg *m = NULL;
    struct sip_parse_error perr;
    if (!via.err &&
        sip_dialog_request(&early, "PRACK", 0, strbuf_cstr(&via), rack, NULL, STRVIEW_EMPTY,
                           &out) == 0 &&
        sip_msg_parse(out.p, out.len, &m, &perr) == 0)
        sip_txn_client_send(b->p->txn, br->conn, m, NULL);
    if (early.local_cseq > b->b_cseq)
        b->b_cseq = early.local_cseq;
    strbuf_free(&via);
    strbuf_free(&out);
    sip_dialog_clear(&early);
}

static bool b2b_requires(const struct sip_msg *m, const char *option)
{
    struct sip_value_iter it;
    struct strview v;
    sip_value_iter_init(&it, m, SIP_HDR_REQUIRE);
    while (sip_value_iter_next(&it, &v))
        if (strview_eq_nocase(v, option))
            return true;
    return false;
}

/* A 2xx from B that Parley will not take (another branch answered, the
 * call ended, its answer was refused): ACK and BYE to its sender. */
static void b2b_refuse_answer(struct proxy_b2b *b, struct b2b_branch *br, const struct sip_msg *req,
                              const struct sip_msg *resp, const char *why)
{
    struct sip_dialog v;
    if (sip_dialog_uac(&v, req, resp) != 0)
        return;
    sip_dialog_note_local_cseq(&v, b->b_cseq);
    char rh[300];
    b2b_reason(488, why, rh, sizeof(rh));
    for (int i = 0; i < 2; i++) {
        const char *method = i == 0 ? "ACK" : "BYE";
        char branch[48];
        sip_txn_new_branch(branch, sizeof(branch));
        struct strbuf via = STRBUF_INIT, out = STRBUF_INIT;
        proxy_hop_via(b->p, br->conn, branch, &via);
        struct sip_msg *m = NULL;
        struct sip_parse_error perr;
        if (!via.err && sip_dialog_request(&v, method, req->cseq_num, strbuf_cstr(&via),
                                           i ? rh : NULL, NULL, STRVIEW_EMPTY, &out) == 0) {
            if (i == 0)
                b->p->env.send(b->p->env.arg, br->conn, &out);
            else if (sip_msg_parse(out.p, out.len, &m, &perr) == 0)
                sip_txn_client_send(b->p->txn, br->conn, m, NULL);
        }
        strbuf_free(&via);
        strbuf_free(&out);
    }
    sip_dialog_clear(&v);
}

/* B's provisional: PRACK toward a gateway that asked for reliability,
 * then on to A (never reliably) with its early answer anchored. */
static void b2b_provisional(struct proxy_b2b *b, struct b2b_branch *br, const struct sip_msg *req,
                            struct sip_msg *resp, int status)
{
    if (status == 100 || b->state != B2B_CALLING)
        return;
    if (sip_msg_hdr_first(resp, SIP_HDR_RSEQ) && b2b_requires(resp, "100rel"))
        b2b_prack(b, br, req, resp);
    struct strview sdp = b2b_sdp_of(resp);
    if (sdp.n && b->a_offer.len) {
        int rc = proxy_anchor_answer(b->p, b->anchor, false, resp, br->conn, b->warning,
                                     sizeof(b->warning));
        if (rc == 0) {
            b2b_keep_sdp(b, 0, resp);
            sdp = strview_make(b->sdp_to[0].p, b->sdp_to[0].len);
        } else {
            sdp = STRVIEW_EMPTY; /* early media refused: the ringing goes on */
        }
    } else {
        sdp = STRVIEW_EMPTY;
    }
    char reason[128];
    strview_copy(resp->reason, reason, sizeof(reason));
    b2b_reply_a(b, status, reason[0] ? reason : NULL, NULL, sdp);
}

/* B answered on br: the call is up on both sides. */
static void b2b_answered(struct proxy_b2b *b, struct b2b_branch *br, const struct sip_msg *req,
                         struct sip_msg *resp)
{
    struct proxy *p = b->p;
    struct strview sdp = b2b_sdp_of(resp);
    int media = 0;
    if (b->a_offer.len) {
        media = sdp.n ? proxy_anchor_answer(p, b->anchor, false, resp, br->conn, b->warning,
                                            sizeof(b->warning))
                      : 488;
        if (media && !sdp.n)
            snprintf(b->warning, sizeof(b->warning), "an answer without SDP to an offer");
    } else if (sdp.n) {
        /* A made no offer: B's 2xx carries it, A's ACK answers it */
        media = proxy_anchor_offer(p, &b->anchor, false, resp, br->conn, b->conn[0],
                                   b->call ? b->call->call_id : "", b->user, b->warning,
                                   sizeof(b->warning));
        b->ack_waits = media == 0;
    } else {
        media = 488;
        snprintf(b->warning, sizeof(b->warning), "no offer on either side");
    }
    if (media) {
        log_info("b2bua.answer_refused", "trunk", b->trunk, "reason", b->warning);
        b2b_refuse_answer(b, br, req, resp, b->warning);
        b2b_fail(b, 488, "Not Acceptable Here", b->warning);
        return;
    }
    b2b_unindex(b, 1);
    sip_dialog_clear(&b->side[1]);
    if (sip_dialog_uac(&b->side[1], req, resp) != 0) {
        b2b_refuse_answer(b, br, req, resp, "the answer could not be read");
        b2b_fail(b, 500, "Server Internal Error", NULL);
        return;
    }
    sip_dialog_note_local_cseq(&b->side[1], b->b_cseq);
    b2b_index(b, 1);
    b->answered = (int)(br - b->br);
    b->conn[1] = br->conn;
    b->invite_cseq = req->cseq_num;
    b->state = B2B_CONFIRMED;
    for (size_t i = 0; i < b->nbr; i++)
        if (&b->br[i] != br && b->br[i].txn)
            sip_client_txn_cancel(b->br[i].txn, "SIP;cause=200;text=\"Call completed elsewhere\"");
    if (!b->ack_waits)
        b2b_send_ack(b, STRVIEW_EMPTY);
    b2b_keep_sdp(b, 0, resp);
    b2b_timer_from_2xx(b, resp);
    b2b_reply_a(b, 200, NULL, NULL, strview_make(b->sdp_to[0].p, b->sdp_to[0].len));
    if (b->call) {
        proxy_call_answered(p, b->call);
        b2b_describe_media(b);
    }
    log_info("b2bua.answered", "call_id", b->call ? b->call->call_id : "", "trunk", b->trunk,
             "media", b->call ? b->call->media : "");
}

/* What a gateway's final failure becomes for the user. */
static int b2b_map_failure(int status, const char **reason)
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

static long b2b_retry_after(const struct sip_msg *resp)
{
    const struct sip_hdr *h = sip_msg_hdr_find_name(resp, "Retry-After");
    char v[24] = "";
    if (!h)
        return 0;
    size_t i = 0;
    while (i < h->value.n && i + 1 < sizeof(v) && h->value.p[i] >= '0' && h->value.p[i] <= '9') {
        v[i] = h->value.p[i];
        i++;
    }
    v[i] = '\0';
    return v[0] ? strtol(v, NULL, 10) : 0;
}

/* B's final failure on br (resp NULL: the transaction failed: 408 for a
 * timeout, 503 for a connection that closed). */
static void b2b_branch_failed(struct proxy_b2b *b, struct b2b_branch *br,
                              const struct sip_msg *resp, int status)
{
    struct proxy *p = b->p;
    if (b->state != B2B_CALLING)
        return;
    char reason[200] = "";
    if (resp)
        strview_copy(resp->reason, reason, sizeof(reason));
    if (b->outbound) {
        if (status == 422 && resp && b->n422 < B2B_422_MAX &&
            sip_session_timer_on_422(resp, &b->se_interval, &b->se_min) == 0) {
            /* RFC 4028 §7.4: again, with the gateway's Min-SE */
            b->n422++;
            char target[400], headers[1200];
            snprintf(target, sizeof(target), "%s", b->side[1].remote_target);
            b2b_gateway_headers(b, br->conn, headers, sizeof(headers));
            /* the offer as first sent: the same streams and keys */
            struct strbuf offer = STRBUF_INIT;
            strbuf_putview(&offer, strview_make(b->sdp_to[1].p, b->sdp_to[1].len));
            int rc = offer.err ? 500
                               : b2b_send_invite(b, br->conn, target, headers,
                                                 strview_make(offer.p, offer.len), false);
            if (offer.p)
                OPENSSL_cleanse(offer.p, offer.cap);
            strbuf_free(&offer);
            if (rc == 0)
                return;
        }
        long skip = 0;
        if (dialplan_try_next_trunk(resp ? status : 0, resp ? b2b_retry_after(resp) : 0, &skip)) {
            struct proxy_trunk *t = b2b_trunk(b);
            if (t)
                proxy_trunk_skip(p, t, skip);
            log_info("b2bua.next_trunk", "call_id", b->call ? b->call->call_id : "", "trunk",
                     b->trunk, "status", LOG_INT(status));
            b->best_status = resp || status == 408 ? status : 503; /* a timeout is 408 */
            snprintf(b->best_reason, sizeof(b->best_reason), "%s (trunk %s)",
                     resp && reason[0] ? reason : sip_reason_phrase(b->best_status), b->trunk);
            b->attempt++;
            b2b_attempt(b);
            return;
        }
        const char *mapped_reason = reason[0] ? reason : NULL;
        int mapped = b2b_map_failure(status, &mapped_reason);
        if (status == 422) {
            mapped = 500;
            mapped_reason = "Server Internal Error (the gateway refused Parley's session timer)";
        }
        b2b_fail(b, mapped, mapped_reason, NULL);
        return;
    }
    /* inbound: a device of the user; the best answer once all have
     * ended (RFC 3261 §16.7's ranking, simplified: a 6xx at once, else
     * the lowest class seen, 486 over 480) */
    if (status >= 600) {
        b2b_fail(b, status, reason[0] ? reason : NULL, NULL);
        return;
    }
    if (!b->best_status || (status / 100 < b->best_status / 100) ||
        (status == 486 && b->best_status == 480)) {
        b->best_status = status;
        snprintf(b->best_reason, sizeof(b->best_reason), "%s", reason);
    }
    for (size_t i = 0; i < b->nbr; i++)
        if (b->br[i].txn && &b->br[i] != br && b->br[i].status < 200)
            return;
    int best = b->best_status == 401 || b->best_status == 407 ? 480 : b->best_status;
    b2b_fail(b, best, best == b->best_status && b->best_reason[0] ? b->best_reason : NULL, NULL);
}

static void b2b_branch_response(struct sip_txn_user *u, struct sip_client_txn *t,
                                const struct sip_msg *resp_c, int status, bool retransmission)
{
    struct b2b_branch *br = (struct b2b_branch *)u;
    struct proxy_b2b *b = br->b;
    const struct sip_msg *req = sip_client_txn_request(t);
    struct sip_msg *resp = (struct sip_msg *)resp_c; /* rewritten in place, then dropped */
    br->status = status;
    if (resp && status >= 200 && status < 300) {
        if (retransmission) {
            if (b->answered == (int)(br - b->br) && b->state == B2B_CONFIRMED && !b->ack_waits)
                b2b_send_ack(b, STRVIEW_EMPTY);
            return;
        }
        if (b->state != B2B_CALLING) {
            /* crossed a CANCEL, or another device answered first */
            b2b_refuse_answer(b, br, req, resp,
                              b->state == B2B_ENDED ? "the call was over"
                                                    : "the call was answered elsewhere");
            return;
        }
        b2b_answered(b, br, req, resp);
        return;
    }
    if (resp && status < 200) {
        b2b_provisional(b, br, req, resp, status);
        return;
    }
    b2b_branch_failed(b, br, resp, status);
}

static void b2b_branch_terminated(struct sip_txn_user *u, struct sip_client_txn *t)
{
    (void)t;
    struct b2b_branch *br = (struct b2b_branch *)u;
    br->txn = NULL;
    b2b_maybe_reap(br->b);
}

/* --- starting calls -------------------------------------------------------- */

/* Does the request ask for Privacy: id (RFC 3323, RFC 3325)? */
static bool b2b_privacy_id(const struct sip_msg *req)
{
    struct sip_hdr *h = sip_msg_hdr_find_name(req, "Privacy");
    if (!h)
        return false;
    /* priv-value *(";" priv-value) */
    size_t i = 0;
    while (i < h->value.n) {
        size_t j = i;
        while (j < h->value.n && h->value.p[j] != ';')
            j++;
        if (strview_eq_nocase(strview_trim(strview_make(h->value.p + i, j - i)), "id"))
            return true;
        i = j + 1;
    }
    return false;
}

static struct proxy_b2b *b2b_new(struct proxy *p, struct sip_server_txn *st,
                                 const struct sip_msg *req, bool outbound)
{
    const char *full =
        p->env.txn_admit ? p->env.txn_admit(p->env.arg, sip_server_txn_conn(st)) : NULL;
    if (full) {
        proxy_reject_overload(p, st, full);
        return NULL;
    }
    if (req->method != SIP_METHOD_INVITE) {
        proxy_reject(p, st, 405, "Method Not Allowed (trunks carry calls only)",
                     "request other than INVITE through a trunk");
        return NULL;
    }
    if (b2b_requires(req, "100rel") || b2b_requires(req, "timer")) {
        sip_server_txn_reply(st, 420, NULL, "Unsupported: 100rel, timer\r\n");
        return NULL;
    }
    if (!p->env.anchor) {
        /* every trunk call is anchored, whatever media.anchor says of
         * calls between users */
        proxy_reject(p, st, 503,
                     "Service Unavailable (the media engine is not running: see media.* and "
                     "the start-up log)",
                     "trunk call without the media engine");
        return NULL;
    }
    struct proxy_b2b *b = calloc(1, sizeof(*b));
    if (!b) {
        sip_server_txn_reply(st, 500, "Server Internal Error (out of memory)", NULL);
        return NULL;
    }
    b->p = p;
    b->outbound = outbound;
    b->user_side = outbound ? 0 : 1;
    b->answered = -1;
    b->state = B2B_CALLING;
    b->a_invite.kind = PROXY_TXN_B2B;
    b->a_invite.b = b;
    b->a_invite.st = st;
    b->conn[0] = sip_server_txn_conn(st);
    snprintf(b->a_tag, sizeof(b->a_tag), "%s", sip_server_txn_local_tag(st));
    if (sip_dialog_uas(&b->side[0], req, b->a_tag) != 0) {
        free(b);
        proxy_reject(p, st, 400, "Bad Request (an INVITE without From tag or Contact)",
                     "INVITE without From tag or Contact");
        return NULL;
    }
    strbuf_putview(&b->a_offer, b2b_sdp_of(req));
    sip_server_txn_set_context(st, &b->a_invite);
    b->next = p->b2b_all;
    if (p->b2b_all)
        p->b2b_all->prev = b;
    p->b2b_all = b;
    b2b_index(b, 0);
    sip_server_txn_reply(st, 100, NULL, NULL);
    return b;
}

void proxy_b2bua_to_trunks(struct proxy *p, struct sip_server_txn *st, const struct sip_msg *req,
                           const char *caller_user, const char *number, const char *route,
                           const char *const *trunks, size_t ntrunks)
{
    char warning[MEDIA_WARNING_MAX];
    if (req->method == SIP_METHOD_INVITE && proxy_media_has_sdp(req)) {
        /* the user's offer answers to the domain's level like any */
        struct sip_msg *copy = (struct sip_msg *)req;
        struct strbuf sent = STRBUF_INIT;
        enum proxy_media_result mr = proxy_media_offer(p, copy, sip_server_txn_conn(st), 0, true,
                                                       &sent, warning, sizeof(warning));
        strbuf_free(&sent);
        if (mr != PROXY_MEDIA_OK) {
            char extra[MEDIA_WARNING_MAX + 64];
            proxy_media_warning_header(p, warning, extra, sizeof(extra));
            sip_server_txn_reply(st, 488, NULL, extra);
            return;
        }
    }
    struct proxy_b2b *b = b2b_new(p, st, req, true);
    if (!b)
        return;
    snprintf(b->number, sizeof(b->number), "%s", number);
    snprintf(b->user, sizeof(b->user), "%s", caller_user);
    snprintf(b->route, sizeof(b->route), "%s", route);
    for (size_t i = 0; i < ntrunks && i < DIALPLAN_TRUNKS_MAX; i++)
        snprintf(b->trunks[b->ntrunks++], sizeof(b->trunks[0]), "%s", trunks[i]);
    if (p->env.user_number)
        (void)p->env.user_number(p->env.arg, caller_user, b->caller_number,
                                 sizeof(b->caller_number));
    b->privacy = b2b_privacy_id(req);
    char caller[PROXY_ADDR_MAX], callee[PROXY_ADDR_MAX];
    snprintf(caller, sizeof(caller), "%s@%s", caller_user, p->domain);
    snprintf(callee, sizeof(callee), "%s", number);
    b->call = proxy_call_new(p, req, caller, callee);
    if (b->call)
        b->call->anchored = true;
    b2b_attempt(b);
}

/* The caller's number a trunk asserts: its P-Asserted-Identity's user
 * part, else its From's, when it reads as a number. */
static void b2b_asserted_number(const struct sip_msg *req, char *out, size_t cap)
{
    struct sip_addr a;
    struct sip_value_iter it;
    struct strview v;
    out[0] = '\0';
    sip_value_iter_init(&it, req, SIP_HDR_P_ASSERTED_IDENTITY);
    bool found = sip_value_iter_next(&it, &v) && sip_addr_parse(v, &a) == 0;
    if (!found)
        found = sip_msg_from(req, &a) == 0;
    char digits[DIALPLAN_DIGITS_MAX + 1];
    if (found && a.uri.user.n && dialplan_digits(a.uri.user, digits) == 0 && digits[0])
        snprintf(out, cap, "%s", digits);
}

void proxy_b2bua_from_trunk(struct proxy *p, struct sip_server_txn *st, const struct sip_msg *req,
                            struct proxy_trunk *t, const char *callee)
{
    const struct binding *bindings[PROXY_MAX_BRANCHES];
    size_t n = registrar_lookup(p->registrar, callee, bindings, PROXY_MAX_BRANCHES);
    if (n > PROXY_MAX_BRANCHES)
        n = PROXY_MAX_BRANCHES;
    struct proxy_b2b *b = b2b_new(p, st, req, false);
    if (!b)
        return;
    snprintf(b->trunk, sizeof(b->trunk), "%s", proxy_trunk_name(t));
    snprintf(b->user, sizeof(b->user), "%s", callee);
    b2b_asserted_number(req, b->caller_number, sizeof(b->caller_number));
    b->privacy = b2b_privacy_id(req);
    char caller[PROXY_ADDR_MAX], callee_aor[PROXY_ADDR_MAX];
    snprintf(caller, sizeof(caller), "%s", b->caller_number[0] ? b->caller_number : "anonymous");
    snprintf(callee_aor, sizeof(callee_aor), "%s@%s", callee, p->domain);
    b->call = proxy_call_new(p, req, caller, callee_aor);
    if (b->call) {
        b->call->anchored = true;
        snprintf(b->call->trunk, sizeof(b->call->trunk), "%s", b->trunk);
    }
    proxy_trunk_count_call(t, false);
    if (n == 0) {
        b2b_fail(b, 480, NULL, NULL);
        return;
    }
    if (proxy_anchor_new(&b->anchor, b->call ? b->call->call_id : "", callee) != 0) {
        b2b_fail(b, 500, NULL, NULL);
        return;
    }
    proxy_anchor_set_leg(b->anchor, 0, b2b_leg_mode(t));
    /* side B: Parley calls the user, as the caller's number */
    char call_id[64], tag[32], from[400], to[400];
    random_token(call_id, 32);
    random_token(tag, 16);
    if (b->privacy || !b->caller_number[0])
        snprintf(from, sizeof(from), "\"Anonymous\" <sip:anonymous@anonymous.invalid>;tag=%s", tag);
    else
        snprintf(from, sizeof(from), "\"%s\" <sip:%s@%s;user=phone>;tag=%s", b->caller_number,
                 b->caller_number, p->domain, tag);
    snprintf(to, sizeof(to), "<sip:%s>", callee_aor);
    struct sip_addr fa, ta;
    if (sip_addr_parse(strview_cstr(from), &fa) != 0 ||
        sip_addr_parse(strview_cstr(to), &ta) != 0 ||
        sip_dialog_init(&b->side[1], strview_cstr(call_id), &fa, &ta, STRVIEW_EMPTY) != 0) {
        b2b_fail(b, 500, NULL, NULL);
        return;
    }
    sip_dialog_note_local_cseq(&b->side[1], (uint32_t)(random_u64() % 10000));
    b2b_index(b, 1);
    int last = 0;
    /* one INVITE forked: every device gets the same CSeq */
    uint32_t base = b->side[1].local_cseq;
    for (size_t i = 0; i < n && b->state == B2B_CALLING; i++) {
        b->side[1].local_cseq = base;
        char headers[800] = "", contact[400];
        b2b_contact(p, bindings[i]->conn, contact, sizeof(contact));
        size_t hl = (size_t)snprintf(headers, sizeof(headers), "%s%s", contact, B2B_ALLOW);
        if (b->caller_number[0] && !b->privacy && hl < sizeof(headers))
            snprintf(headers + hl, sizeof(headers) - hl,
                     "P-Asserted-Identity: <sip:%s@%s;user=phone>\r\n", b->caller_number,
                     p->domain);
        int rc = b2b_send_invite(b, bindings[i]->conn, bindings[i]->contact, headers,
                                 strview_make(b->a_offer.p, b->a_offer.len), true);
        if (rc)
            last = rc;
    }
    if (b->nbr == 0)
        b2b_fail(b, last ? last : 480, NULL, b->warning);
}

/* --- A's ACK and CANCEL; transactions ending -------------------------------- */

static struct proxy_b2b *b2b_find(struct proxy *p, const struct sip_msg *req, int *side)
{
    struct sip_addr from, to;
    if (sip_msg_from(req, &from) != 0 || sip_msg_to(req, &to) != 0 || !to.tag.n)
        return NULL;
    uint64_t h = b2b_hash(req->call_id);
    for (struct hmap_node *n = hmap_first(&p->b2bs, h); n; n = hmap_next(n, h)) {
        for (int s = 0; s < 2; s++) {
            struct proxy_b2b *b = container_of(n, struct proxy_b2b, node[0]);
            if (s == 1)
                b = container_of(n, struct proxy_b2b, node[1]);
            if (n != &b->node[s] || !b->indexed[s])
                continue;
            const struct sip_dialog *d = &b->side[s];
            if (!d->call_id || !strview_eq(req->call_id, d->call_id) || !d->remote_tag ||
                !strview_eq(from.tag, d->remote_tag) || !strview_eq(to.tag, d->local_tag))
                continue;
            *side = s;
            return b;
        }
    }
    return NULL;
}

bool proxy_b2bua_ack(struct proxy *p, uint64_t conn, struct sip_msg *ack)
{
    int side;
    struct proxy_b2b *b = b2b_find(p, ack, &side);
    if (!b)
        return false;
    if (side == 0 && b->ack_waits && b->state == B2B_CONFIRMED && conn == b->conn[0]) {
        b->ack_waits = false;
        char warning[MEDIA_WARNING_MAX];
        int rc = proxy_anchor_answer(p, b->anchor, true, ack, conn, warning, sizeof(warning));
        if (rc == 0) {
            b2b_keep_sdp(b, 1, ack);
            b2b_send_ack(b, strview_make(b->sdp_to[1].p, b->sdp_to[1].len));
        } else {
            b2b_send_ack(b, STRVIEW_EMPTY);
            b2b_end(b, "488 media refused in the ACK", true, true, 488, warning);
        }
    }
    sip_msg_free(ack);
    return true;
}

void proxy_b2bua_cancel(struct proxy *p, struct sip_server_txn *cancel_st,
                        struct sip_server_txn *invite_st)
{
    /* hop-by-hop, over its INVITE's connection only (as proxy/route) */
    if (sip_server_txn_conn(invite_st) != sip_server_txn_conn(cancel_st)) {
        proxy_reject(p, cancel_st, 481, NULL, "CANCEL over another connection than its INVITE");
        return;
    }
    sip_server_txn_reply(cancel_st, 200, NULL, NULL);
    struct b2b_server *ctx = sip_server_txn_context(invite_st);
    struct proxy_b2b *b = ctx ? ctx->b : NULL;
    if (!b || ctx != &b->a_invite || sip_server_txn_answered(invite_st))
        return;
    b2b_reply_a(b, 487, NULL, NULL, STRVIEW_EMPTY);
    b2b_end(b, "487 Request Terminated (cancelled by the caller)", false, false, 487, NULL);
}

bool proxy_b2bua_owns(const struct sip_server_txn *st)
{
    const enum proxy_txn_kind *kind = sip_server_txn_context(st);
    return kind && *kind == PROXY_TXN_B2B;
}

void proxy_b2bua_server_terminated(struct proxy *p, struct sip_server_txn *st)
{
    (void)p;
    struct b2b_server *ctx = sip_server_txn_context(st);
    if (!ctx || ctx->kind != PROXY_TXN_B2B)
        return;
    struct proxy_b2b *b = ctx->b;
    bool answered = sip_server_txn_answered(st);
    ctx->st = NULL;
    sip_server_txn_set_context(st, NULL);
    if (ctx == &b->a_invite && !answered) {
        /* A went away before an answer: nothing may keep ringing */
        b2b_end(b, "caller connection closed", false, false, 487, NULL);
    }
    b2b_maybe_reap(b);
}

/* --- inside the call: BYE, re-offers, refreshes ---------------------------- */

static void b2b_reoffer_response(struct sip_txn_user *u, struct sip_client_txn *t,
                                 const struct sip_msg *resp, int status, bool retransmission);
static void b2b_reoffer_terminated(struct sip_txn_user *u, struct sip_client_txn *t);

/* Was req sent by the party of that side? Its own connection, another of
 * its trunk's (a gateway), or one the user registered over. */
static bool b2b_sender_ok(struct proxy_b2b *b, int side, uint64_t conn)
{
    struct proxy *p = b->p;
    if (conn == b->conn[side])
        return true;
    if (side == b2b_trunk_side(b)) {
        struct proxy_trunk *t = proxy_trunk_of_conn(p, conn);
        return t && strcmp(proxy_trunk_name(t), b->trunk) == 0;
    }
    return registrar_find_flow(p->registrar, b->user, conn) != NULL;
}

/* Is the exchange still waiting for a final response on either side? (Its
 * transactions outlive their 2xx by 64*T1, RFC 6026: that is no glare.) */
static bool b2b_reoffer_pending(const struct b2b_reoffer *r)
{
    return r && ((r->txn && sip_client_txn_last_status(r->txn) < 200) ||
                 (r->in.st && !sip_server_txn_answered(r->in.st)));
}

/* A re-offer slot for a new exchange: NULL when one is still at work
 * (the new one gets 491, RFC 3261 §14.2). */
static struct b2b_reoffer *b2b_reoffer_slot(struct proxy_b2b *b)
{
    struct b2b_reoffer *r = b->reoffer;
    if (b2b_reoffer_pending(r))
        return NULL;
    if (r) {
        /* the last one is answered; its transactions' end concerns no one */
        if (r->txn)
            sip_client_txn_set_context(r->txn, NULL);
        if (r->in.st)
            sip_server_txn_set_context(r->in.st, NULL);
        free(r);
        b->reoffer = NULL;
    }
    r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->user.response = b2b_reoffer_response;
    r->user.terminated = b2b_reoffer_terminated;
    r->b = b;
    r->in.kind = PROXY_TXN_B2B;
    r->in.b = b;
    b->reoffer = r;
    return r;
}

/* Session-timer header lines toward a gateway (outbound calls only). */
static void b2b_timer_headers(struct proxy_b2b *b, int to, struct strbuf *h)
{
    if (!b->outbound || to != 1)
        return;
    strbuf_printf(h, "Session-Expires: %u;refresher=uac\r\nMin-SE: %u\r\nSupported: timer\r\n",
                  b->se_interval, b->se_min);
}

static void b2b_refresh(struct proxy_b2b *b)
{
    struct proxy *p = b->p;
    uint64_t conn = b2b_conn(b, 1);
    struct b2b_reoffer *r = conn ? b2b_reoffer_slot(b) : NULL;
    if (!r) {
        b2b_arm_timer(b); /* later */
        return;
    }
    r->from = -1;
    r->to = 1;
    r->invite = true;
    struct strbuf h = STRBUF_INIT;
    char contact[400];
    b2b_contact(p, conn, contact, sizeof(contact));
    strbuf_puts(&h, contact);
    strbuf_puts(&h, B2B_ALLOW);
    b2b_timer_headers(b, 1, &h);
    struct sip_msg *m = h.err ? NULL
                              : b2b_build(b, 1, conn, "INVITE", 0, strbuf_cstr(&h),
                                          strview_make(b->sdp_to[1].p, b->sdp_to[1].len));
    strbuf_free(&h);
    r->txn = m ? sip_txn_client_send(p->txn, conn, m, r) : NULL;
    if (!r->txn)
        b2b_end(b, "session refresh could not be sent", true, true, 500, NULL);
}

/* A re-INVITE or UPDATE without an offer: a session refresh, answered by
 * Parley itself (a re-INVITE's 200 carries the SDP Parley last sent that
 * side, unchanged, so the ACK's answer changes nothing). */
static void b2b_answer_refresh(struct proxy_b2b *b, int from, struct sip_server_txn *st,
                               const struct sip_msg *req)
{
    struct proxy *p = b->p;
    char extra[600];
    size_t n = 0;
    b2b_contact(p, sip_server_txn_conn(st), extra, sizeof(extra));
    n = strlen(extra);
    const struct sip_hdr *se = sip_msg_hdr_first(req, SIP_HDR_SESSION_EXPIRES);
    char sev[64];
    if (se && strview_copy(se->value, sev, sizeof(sev)) == 0) {
        unsigned long v = strtoul(sev, NULL, 10);
        if (v >= SIP_SESSION_TIMER_MIN && v <= SIP_SESSION_TIMER_MAX)
            snprintf(extra + n, sizeof(extra) - n,
                     "Session-Expires: %lu;refresher=uac\r\nRequire: timer\r\n", v);
    }
    bool invite = req->method == SIP_METHOD_INVITE;
    struct strview sdp =
        invite ? strview_make(b->sdp_to[from].p, b->sdp_to[from].len) : STRVIEW_EMPTY;
    struct strbuf out = STRBUF_INIT;
    if (sip_build_response(req, 200, NULL, NULL, extra, sdp.n ? "application/sdp" : NULL, sdp,
                           &out) == 0)
        sip_server_txn_send(st, 200, &out);
    else
        sip_server_txn_reply(st, 500, NULL, NULL);
    if (out.p)
        OPENSSL_cleanse(out.p, out.cap);
    strbuf_free(&out);
    if (from == b2b_trunk_side(b) && b->outbound && b->stimer.active && !b->stimer.we_refresh)
        b2b_arm_timer(b); /* the gateway refreshed */
}

static void b2b_reoffer_start(struct proxy_b2b *b, int from, struct sip_server_txn *st,
                              struct sip_msg *req)
{
    struct proxy *p = b->p;
    char warning[MEDIA_WARNING_MAX], extra[MEDIA_WARNING_MAX + 64];
    if (b->state != B2B_CONFIRMED) {
        sip_server_txn_reply(st, 403, "Forbidden (no re-offer before the call is answered)", NULL);
        return;
    }
    if (b2b_reoffer_pending(b->reoffer)) {
        sip_server_txn_reply(st, 491, NULL, NULL);
        return;
    }
    struct strview sdp = b2b_sdp_of(req);
    if (!sdp.n) {
        b2b_answer_refresh(b, from, st, req);
        return;
    }
    uint64_t in_conn = sip_server_txn_conn(st);
    if (from == b->user_side) {
        struct strbuf sent = STRBUF_INIT;
        enum proxy_media_result mr =
            proxy_media_offer(p, req, in_conn, 0, true, &sent, warning, sizeof(warning));
        strbuf_free(&sent);
        if (mr != PROXY_MEDIA_OK) {
            proxy_media_warning_header(p, warning, extra, sizeof(extra));
            sip_server_txn_reply(st, 488, NULL, extra);
            return;
        }
        sdp = b2b_sdp_of(req);
    }
    int to = 1 - from;
    uint64_t out_conn = b2b_conn(b, to);
    struct b2b_reoffer *r = out_conn ? b2b_reoffer_slot(b) : NULL;
    if (!r) {
        sip_server_txn_reply(st, 500, "Server Internal Error (the other party cannot be reached)",
                             "Retry-After: 5\r\n");
        return;
    }
    r->from = from;
    r->to = to;
    r->invite = req->method == SIP_METHOD_INVITE;
    struct strbuf h = STRBUF_INIT;
    char contact[400];
    b2b_contact(p, out_conn, contact, sizeof(contact));
    strbuf_puts(&h, contact);
    strbuf_puts(&h, B2B_ALLOW);
    b2b_timer_headers(b, to, &h);
    struct sip_msg *m = h.err ? NULL
                              : b2b_build(b, to, out_conn, r->invite ? "INVITE" : "UPDATE", 0,
                                          strbuf_cstr(&h), sdp);
    strbuf_free(&h);
    int status =
        m ? proxy_anchor_offer(p, &b->anchor, from == 0, m, in_conn, out_conn,
                               b->call ? b->call->call_id : "", b->user, warning, sizeof(warning))
          : 500;
    if (status) {
        sip_msg_free(m);
        free(r);
        b->reoffer = NULL;
        if (!m)
            snprintf(warning, sizeof(warning), "the request could not be built");
        proxy_media_warning_header(p, warning, extra, sizeof(extra));
        sip_server_txn_reply(st, status, NULL, extra);
        return;
    }
    b2b_keep_sdp(b, to, m);
    r->in.st = st;
    sip_server_txn_set_context(st, &r->in);
    r->txn = sip_txn_client_send(p->txn, out_conn, m, r);
    if (!r->txn) {
        sip_server_txn_set_context(st, NULL);
        r->in.st = NULL;
        sip_server_txn_reply(st, 500, NULL, NULL);
    }
}

static void b2b_reoffer_response(struct sip_txn_user *u, struct sip_client_txn *t,
                                 const struct sip_msg *resp_c, int status, bool retransmission)
{
    struct b2b_reoffer *r = (struct b2b_reoffer *)u;
    struct proxy_b2b *b = r->b;
    struct proxy *p = b->p;
    const struct sip_msg *req = sip_client_txn_request(t);
    struct sip_msg *resp = (struct sip_msg *)resp_c;
    uint64_t to_conn = sip_client_txn_conn(t);
    if (status < 200)
        return;
    if (resp && status < 300) {
        if (r->invite) {
            struct sip_msg *ack =
                b2b_build(b, r->to, to_conn, "ACK", req->cseq_num, NULL, STRVIEW_EMPTY);
            struct strbuf out = STRBUF_INIT;
            if (ack && sip_msg_print(ack, &out) == 0)
                p->env.send(p->env.arg, to_conn, &out);
            strbuf_free(&out);
            sip_msg_free(ack);
        }
        if (retransmission || b->state != B2B_CONFIRMED)
            return;
        if (r->to == 1)
            b2b_timer_from_2xx(b, resp);
        if (r->from < 0)
            return; /* Parley's refresh: the SDP is unchanged */
        char warning[MEDIA_WARNING_MAX], extra[1200];
        struct strview sdp = b2b_sdp_of(resp);
        int rc = sdp.n ? proxy_anchor_answer(p, b->anchor, r->to == 0, resp, to_conn, warning,
                                             sizeof(warning))
                       : 488;
        if (!sdp.n)
            snprintf(warning, sizeof(warning), "an answer without SDP to an offer");
        if (rc) {
            proxy_media_warning_header(p, warning, extra, sizeof(extra));
            if (r->in.st)
                sip_server_txn_reply(r->in.st, 488, NULL, extra);
            b2b_end(b, "488 media refused in a re-offer", true, true, 488, warning);
            return;
        }
        b2b_keep_sdp(b, r->from, resp);
        if (r->in.st) {
            const struct sip_msg *in = sip_server_txn_request(r->in.st);
            b2b_contact(p, b->conn[r->from], extra, sizeof(extra));
            if (r->from == 1 && b->outbound) {
                /* the gateway's re-offer: it refreshed the session */
                size_t n = strlen(extra);
                if (sip_msg_hdr_first(in, SIP_HDR_SESSION_EXPIRES) && b->stimer.active)
                    snprintf(extra + n, sizeof(extra) - n,
                             "Session-Expires: %u;refresher=uac\r\nRequire: timer\r\n",
                             b->stimer.interval);
                if (!b->stimer.we_refresh)
                    b2b_arm_timer(b);
            }
            struct strbuf out = STRBUF_INIT;
            struct strview body = strview_make(b->sdp_to[r->from].p, b->sdp_to[r->from].len);
            if (sip_build_response(in, 200, NULL, NULL, extra, "application/sdp", body, &out) == 0)
                sip_server_txn_send(r->in.st, 200, &out);
            if (out.p)
                OPENSSL_cleanse(out.p, out.cap);
            strbuf_free(&out);
        }
        return;
    }
    if (retransmission)
        return;
    if (r->from < 0) {
        if (status == 422 && resp &&
            sip_session_timer_on_422(resp, &b->se_interval, &b->se_min) == 0) {
            b->stimer.interval = b->se_interval;
            b2b_arm_timer(b);
            return;
        }
        if (status == 408 || status == 481) {
            b2b_end(b, "session refresh failed", true, true, status, NULL);
            return;
        }
        b->stimer.we_refresh = false; /* the session ends at its expiry now */
        b2b_arm_timer(b);
        return;
    }
    if (r->in.st) {
        char reason[160] = "";
        if (resp)
            strview_copy(resp->reason, reason, sizeof(reason));
        const char *mapped_reason = reason[0] ? reason : NULL;
        int mapped = b2b_map_failure(status, &mapped_reason);
        sip_server_txn_reply(r->in.st, mapped, mapped_reason, NULL);
    }
    if (status == 481 || status == 408)
        b2b_end(b, status == 481 ? "481 the other side's dialog is gone" : "408 re-offer timed out",
                true, true, status, NULL);
}

static void b2b_reoffer_terminated(struct sip_txn_user *u, struct sip_client_txn *t)
{
    (void)t;
    struct b2b_reoffer *r = (struct b2b_reoffer *)u;
    r->txn = NULL;
    b2b_maybe_reap(r->b);
}

bool proxy_b2bua_in_dialog(struct proxy *p, struct sip_server_txn *st, const struct sip_msg *reqc)
{
    int side;
    struct proxy_b2b *b = b2b_find(p, reqc, &side);
    if (!b)
        return false;
    struct sip_msg *req = (struct sip_msg *)reqc;
    uint64_t conn = sip_server_txn_conn(st);
    if (!b2b_sender_ok(b, side, conn)) {
        proxy_reject(p, st, 403, "Forbidden (not from a party of this call)",
                     "in-dialog request from elsewhere");
        return true;
    }
    if (b->state == B2B_ENDED) {
        sip_server_txn_reply(st, 481, NULL, NULL);
        return true;
    }
    if (sip_dialog_update(&b->side[side], req) != 0) {
        sip_server_txn_reply(st, 500, "Server Internal Error (CSeq out of order)",
                             "Retry-After: 1\r\n");
        return true;
    }
    switch (req->method) {
    case SIP_METHOD_BYE: {
        sip_server_txn_reply(st, 200, NULL, NULL);
        bool from_user = side == b->user_side;
        const char *why = side == 0 ? (from_user ? "BYE from caller" : "BYE from gateway (caller)")
                                    : (from_user ? "BYE from callee" : "BYE from gateway");
        b2b_end(b, why, side == 1, side == 0, 0, NULL);
        return true;
    }
    case SIP_METHOD_INVITE:
    case SIP_METHOD_UPDATE:
        b2b_reoffer_start(b, side, st, req);
        return true;
    case SIP_METHOD_OPTIONS:
        sip_server_txn_reply(st, 200, NULL, B2B_ALLOW);
        return true;
    case SIP_METHOD_PRACK:
        /* Parley sends no reliable provisionals */
        sip_server_txn_reply(st, 481, NULL, NULL);
        return true;
    default:
        sip_server_txn_reply(st, 405, NULL, B2B_ALLOW);
        return true;
    }
}

bool proxy_b2bua_media_timed_out(struct proxy *p, uint64_t stream)
{
    for (struct proxy_b2b *b = p->b2b_all; b; b = b->next) {
        if (!proxy_anchor_has_stream(b->anchor, stream))
            continue;
        if (b->state == B2B_CONFIRMED)
            b2b_end(b, "media timeout", true, true, 408, "media timeout");
        return true;
    }
    return false;
}

size_t proxy_b2bua_count(const struct proxy *p)
{
    size_t n = 0;
    for (const struct proxy_b2b *b = p->b2b_all; b; b = b->next)
        n++;
    return n;
}

void proxy_b2bua_free_all(struct proxy *p)
{
    while (p->b2b_all) {
        struct proxy_b2b *b = p->b2b_all;
        if (b->state != B2B_ENDED)
            b2b_end(b, "server stopping", true, true, 503, "server stopping");
        b2b_free(b);
    }
}
