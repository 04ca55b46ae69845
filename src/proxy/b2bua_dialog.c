/*
 * proxy/b2bua_dialog — inside a back-to-back call: BYE either way,
 * re-INVITE and UPDATE with an offer passed from one side to the other as
 * Parley's own (491 when one crosses Parley's), refreshes without an offer
 * answered by Parley, and the session timer toward a gateway (RFC 4028:
 * Parley refreshes at half the interval, or ends the call when the gateway
 * that should refresh did not). See b2bua_priv.h.
 */
#include "proxy/b2bua_priv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/log.h"
#include "proxy/anchor.h"
#include "proxy/media.h"
#include "proxy/reject.h"
#include "proxy/trunk.h"
#include "registrar/registrar.h"
#include "sip/build.h"

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
    proxy_b2bua_leg_end(b, "session timer expired", true, true, 408, "session timer expired");
}

static void b2b_arm_timer(struct proxy_b2b *b)
{
    if (!b->stimer.active)
        return;
    uint32_t s = sip_session_timer_due(&b->stimer);
    timer_start(b->p->timers, &b->timer, (uint64_t)s * 1000, b2b_on_timer, b);
}

enum b2b_refresher { B2B_REFRESHER_NONE, B2B_REFRESHER_UAC, B2B_REFRESHER_UAS };

/* Session-Expires: delta-seconds *(";" param), refresher=uac|uas among
 * the params (RFC 4028 §4). 0 or -EINVAL. */
static int b2b_parse_se(struct strview v, uint32_t *interval, enum b2b_refresher *who)
{
    size_t i = 0;
    uint64_t n = 0;
    while (i < v.n && (v.p[i] == ' ' || v.p[i] == '\t'))
        i++;
    size_t digits = i;
    while (i < v.n && v.p[i] >= '0' && v.p[i] <= '9' && n <= UINT32_MAX)
        n = n * 10 + (uint64_t)(v.p[i++] - '0');
    if (i == digits || n > UINT32_MAX)
        return -EINVAL;
    *interval = (uint32_t)n;
    *who = B2B_REFRESHER_NONE;
    while (i < v.n) {
        if (v.p[i] != ';') {
            if (v.p[i] != ' ' && v.p[i] != '\t')
                return -EINVAL;
            i++;
            continue;
        }
        size_t start = ++i;
        while (i < v.n && v.p[i] != ';')
            i++;
        struct strview param = strview_trim(strview_make(v.p + start, i - start));
        const char *eq = memchr(param.p, '=', param.n);
        if (!eq)
            continue;
        struct strview name = strview_trim(strview_make(param.p, (size_t)(eq - param.p)));
        struct strview value =
            strview_trim(strview_make(eq + 1, param.n - (size_t)(eq + 1 - param.p)));
        if (!strview_eq_nocase(name, "refresher"))
            continue;
        if (strview_eq_nocase(value, "uac"))
            *who = B2B_REFRESHER_UAC;
        else if (strview_eq_nocase(value, "uas"))
            *who = B2B_REFRESHER_UAS;
        else
            return -EINVAL;
    }
    return 0;
}

static bool b2b_has_option(const struct sip_msg *m, enum sip_hdr_id id, const char *option)
{
    struct sip_value_iter it;
    struct strview v;
    sip_value_iter_init(&it, m, id);
    while (sip_value_iter_next(&it, &v))
        if (strview_eq_nocase(strview_trim(v), option))
            return true;
    return false;
}

int proxy_b2bua_dialog_grant_timer(struct proxy_b2b *b, const struct sip_msg *req,
                                   struct strbuf *reject_headers)
{
    const struct sip_hdr *se = sip_msg_hdr_first(req, SIP_HDR_SESSION_EXPIRES);
    if (!se)
        return 0; /* no timer asked for: none (RFC 4028 §9) */
    uint32_t interval;
    enum b2b_refresher who;
    if (b2b_parse_se(se->value, &interval, &who) != 0)
        return 400;
    b->timer_supported = b2b_has_option(req, SIP_HDR_SUPPORTED, "timer") ||
                         b2b_has_option(req, SIP_HDR_REQUIRE, "timer");
    if (interval < SIP_SESSION_TIMER_MIN) {
        if (b->timer_supported) {
            strbuf_printf(reject_headers, "Min-SE: %u\r\n", SIP_SESSION_TIMER_MIN);
            return 422;
        }
        interval = SIP_SESSION_TIMER_MIN; /* §9: a UAS may raise it */
    }
    if (interval > SIP_SESSION_TIMER_MAX)
        interval = SIP_SESSION_TIMER_MAX;
    b->stimer.active = true;
    b->stimer.interval = interval;
    b->stimer.min_se = SIP_SESSION_TIMER_MIN;
    /* a gateway that does not know timers cannot refresh: Parley does;
     * one that does refreshes unless it named Parley (uas) */
    b->stimer.we_refresh = !b->timer_supported || who == B2B_REFRESHER_UAS;
    b->se_interval = interval;
    b->se_min = SIP_SESSION_TIMER_MIN;
    return 0;
}

void proxy_b2bua_dialog_timer_granted(const struct proxy_b2b *b, char *out, size_t cap)
{
    out[0] = '\0';
    if (!b->outbound && b->stimer.active)
        snprintf(out, cap, "Session-Expires: %u;refresher=%s\r\n%s", b->stimer.interval,
                 b->stimer.we_refresh ? "uas" : "uac",
                 b->timer_supported ? "Require: timer\r\n" : "");
}

void proxy_b2bua_dialog_answer_a(struct proxy_b2b *b)
{
    char granted[128];
    proxy_b2bua_dialog_timer_granted(b, granted, sizeof(granted));
    proxy_b2bua_leg_reply_a(b, 200, NULL, granted[0] ? granted : NULL,
                            strview_make(b->sdp_to[0].p, b->sdp_to[0].len));
}

/* A's PRACK (RFC 3262 §7.2): RAck "RSEQ CSEQ INVITE" of the reliable
 * provisional in flight gets 200, and a 2xx that waited for it goes. */
static void b2b_prack_from_a(struct proxy_b2b *b, struct sip_server_txn *st,
                             const struct sip_msg *req)
{
    const struct sip_hdr *h = sip_msg_hdr_first(req, SIP_HDR_RACK);
    const struct sip_msg *inv = b->a_invite.st ? sip_server_txn_request(b->a_invite.st) : NULL;
    char v[64] = "", method[16] = "";
    unsigned long rseq = 0, cseq = 0;
    if (!h || !inv || !b->a_unacked || strview_copy(h->value, v, sizeof(v)) != 0 ||
        sscanf(v, "%lu %lu %15s", &rseq, &cseq, method) != 3 || rseq != b->a_rseq ||
        cseq != inv->cseq_num || strcmp(method, "INVITE") != 0) {
        sip_server_txn_reply(st, 481, NULL, NULL);
        return;
    }
    b->a_unacked = false;
    sip_server_txn_reply(st, 200, NULL, NULL);
    if (b->a_2xx_waits) {
        b->a_2xx_waits = false;
        proxy_b2bua_dialog_answer_a(b);
    }
}

void proxy_b2bua_dialog_timer_start(struct proxy_b2b *b)
{
    b2b_arm_timer(b);
}

/* A refresh from the gateway (a re-INVITE or UPDATE, Parley its UAS): its
 * Session-Expires, if any, becomes the interval, with the refresher it
 * names (the gateway, unless it names Parley); the lines for its 2xx go to
 * echo. 0, or 422 (below Min-SE: the Min-SE line in echo) or 400. */
static int b2b_timer_from_refresh(struct proxy_b2b *b, const struct sip_msg *req, char *echo,
                                  size_t cap)
{
    echo[0] = '\0';
    const struct sip_hdr *se = sip_msg_hdr_first(req, SIP_HDR_SESSION_EXPIRES);
    if (!se || !b->stimer.active)
        return 0; /* the timer as it was */
    uint32_t interval;
    enum b2b_refresher who;
    if (b2b_parse_se(se->value, &interval, &who) != 0)
        return 400;
    if (interval < SIP_SESSION_TIMER_MIN) {
        snprintf(echo, cap, "Min-SE: %u\r\n", SIP_SESSION_TIMER_MIN);
        return 422;
    }
    if (interval > SIP_SESSION_TIMER_MAX)
        interval = SIP_SESSION_TIMER_MAX;
    b->stimer.interval = interval;
    b->stimer.we_refresh = who == B2B_REFRESHER_UAS;
    snprintf(echo, cap, "Session-Expires: %u;refresher=%s\r\nRequire: timer\r\n", interval,
             b->stimer.we_refresh ? "uas" : "uac");
    return 0;
}

/* A 2xx from the gateway to an INVITE or UPDATE of Parley's (or one it
 * passed): the session timer it sets. */
void proxy_b2bua_dialog_timer_from_2xx(struct proxy_b2b *b, const struct sip_msg *resp)
{
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
    if (side == proxy_b2bua_leg_trunk_side(b)) {
        /* the trunk the call took, not one a reload gave its name */
        struct proxy_trunk *t = proxy_trunk_of_conn(p, conn);
        return t && t == proxy_b2bua_leg_trunk(b);
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
    if (to != proxy_b2bua_leg_trunk_side(b) || (!b->outbound && !b->stimer.active))
        return;
    /* Parley is this request's UAC: "uac" keeps Parley the refresher,
     * "uas" the gateway (RFC 4028 §7.4: a refresh must not move it) */
    bool we = b->stimer.active ? b->stimer.we_refresh : true;
    strbuf_printf(h, "Session-Expires: %u;refresher=%s\r\nMin-SE: %u\r\nSupported: timer\r\n",
                  b->stimer.active ? b->stimer.interval : b->se_interval, we ? "uac" : "uas",
                  b->se_min);
}

/* A re-INVITE or UPDATE of Parley's toward side `to` on conn: Contact,
 * Allow, the session timer toward a gateway; the body given. NULL on
 * failure. */
static struct sip_msg *b2b_reoffer_request(struct proxy_b2b *b, int to, uint64_t conn,
                                           const char *method, struct strview body)
{
    struct strbuf h = STRBUF_INIT;
    char contact[400];
    proxy_b2bua_leg_contact(b->p, conn, contact, sizeof(contact));
    strbuf_puts(&h, contact);
    strbuf_puts(&h, B2B_ALLOW);
    b2b_timer_headers(b, to, &h);
    struct sip_msg *m =
        h.err ? NULL : proxy_b2bua_leg_build(b, to, conn, method, 0, strbuf_cstr(&h), body);
    strbuf_free(&h);
    return m;
}

static void b2b_refresh(struct proxy_b2b *b)
{
    struct proxy *p = b->p;
    int gw = proxy_b2bua_leg_trunk_side(b);
    uint64_t conn = proxy_b2bua_leg_conn(b, gw);
    if (conn && !proxy_b2bua_leg_sdp_may_go(b, gw, conn)) {
        /* the gateway's leg is SRTP and its connection is no longer TLS */
        proxy_b2bua_leg_end(b, "the gateway's hop is no longer TLS", true, true, 488,
                            "SRTP keys are not sent over a plain hop");
        return;
    }
    struct b2b_reoffer *r = conn ? b2b_reoffer_slot(b) : NULL;
    if (!r) {
        b2b_arm_timer(b); /* later */
        return;
    }
    r->from = -1;
    r->to = gw;
    r->invite = true;
    struct sip_msg *m = b2b_reoffer_request(b, gw, conn, "INVITE",
                                            strview_make(b->sdp_to[gw].p, b->sdp_to[gw].len));
    r->txn = m ? sip_txn_client_send(p->txn, conn, m, r) : NULL;
    if (!r->txn)
        proxy_b2bua_leg_end(b, "session refresh could not be sent", true, true, 500, NULL);
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
    proxy_b2bua_leg_contact(p, sip_server_txn_conn(st), extra, sizeof(extra));
    n = strlen(extra);
    if (from == proxy_b2bua_leg_trunk_side(b)) {
        int rc = b2b_timer_from_refresh(b, req, extra + n, sizeof(extra) - n);
        if (rc) {
            sip_server_txn_reply(st, rc, NULL, rc == 422 ? extra + n : NULL);
            return;
        }
    }
    bool invite = req->method == SIP_METHOD_INVITE;
    if (invite && !proxy_b2bua_leg_sdp_may_go(b, from, sip_server_txn_conn(st))) {
        /* the SDP that side has holds Parley's key, and this hop is plain
         * (a device of the user's on TCP, a trunk reloaded as TCP) */
        sip_server_txn_reply(st, 488, NULL,
                             "Warning: 399 parley \"SRTP keys are not sent over a plain hop\"\r\n");
        return;
    }
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
    if (from == proxy_b2bua_leg_trunk_side(b) && b->stimer.active && !b->stimer.we_refresh)
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
    struct strview sdp = proxy_b2bua_leg_sdp_of(req);
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
        sdp = proxy_b2bua_leg_sdp_of(req);
    }
    int to = 1 - from;
    uint64_t out_conn = proxy_b2bua_leg_conn(b, to);
    struct b2b_reoffer *r = out_conn ? b2b_reoffer_slot(b) : NULL;
    if (!r) {
        sip_server_txn_reply(st, 500, "Server Internal Error (the other party cannot be reached)",
                             "Retry-After: 5\r\n");
        return;
    }
    r->from = from;
    r->to = to;
    r->invite = req->method == SIP_METHOD_INVITE;
    if (from == proxy_b2bua_leg_trunk_side(b)) {
        int rc = b2b_timer_from_refresh(b, req, r->se_echo, sizeof(r->se_echo));
        if (rc) {
            sip_server_txn_reply(st, rc, NULL, rc == 422 ? r->se_echo : NULL);
            free(r);
            b->reoffer = NULL;
            return;
        }
    }
    struct sip_msg *m = b2b_reoffer_request(b, to, out_conn, r->invite ? "INVITE" : "UPDATE", sdp);
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
    proxy_b2bua_leg_keep_sdp(b, to, m);
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
                proxy_b2bua_leg_build(b, r->to, to_conn, "ACK", req->cseq_num, NULL, STRVIEW_EMPTY);
            struct strbuf out = STRBUF_INIT;
            if (ack && sip_msg_print(ack, &out) == 0)
                p->env.send(p->env.arg, to_conn, &out);
            strbuf_free(&out);
            sip_msg_free(ack);
        }
        if (retransmission || b->state != B2B_CONFIRMED)
            return;
        if (r->to == proxy_b2bua_leg_trunk_side(b))
            proxy_b2bua_dialog_timer_from_2xx(b, resp);
        if (r->from < 0)
            return; /* Parley's refresh: the SDP is unchanged */
        char warning[MEDIA_WARNING_MAX], extra[1200];
        struct strview sdp = proxy_b2bua_leg_sdp_of(resp);
        int rc = sdp.n ? proxy_anchor_answer(p, b->anchor, r->to == 0, resp, to_conn, warning,
                                             sizeof(warning))
                       : 488;
        if (!sdp.n)
            snprintf(warning, sizeof(warning), "an answer without SDP to an offer");
        if (rc) {
            proxy_media_warning_header(p, warning, extra, sizeof(extra));
            if (r->in.st)
                sip_server_txn_reply(r->in.st, 488, NULL, extra);
            proxy_b2bua_leg_end(b, "488 media refused in a re-offer", true, true, 488, warning);
            return;
        }
        proxy_b2bua_leg_keep_sdp(b, r->from, resp);
        if (r->in.st) {
            const struct sip_msg *in = sip_server_txn_request(r->in.st);
            proxy_b2bua_leg_contact(p, b->conn[r->from], extra, sizeof(extra));
            if (r->from == proxy_b2bua_leg_trunk_side(b)) {
                /* the gateway's re-offer refreshed the session (its
                 * Session-Expires taken when it came: r->se_echo) */
                size_t n = strlen(extra);
                snprintf(extra + n, sizeof(extra) - n, "%s", r->se_echo);
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
            proxy_b2bua_leg_end(b, "session refresh failed", true, true, status, NULL);
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
        int mapped = proxy_b2bua_leg_map_failure(status, &mapped_reason);
        sip_server_txn_reply(r->in.st, mapped, mapped_reason, NULL);
    }
    if (status == 481 || status == 408)
        proxy_b2bua_leg_end(
            b, status == 481 ? "481 the other side's dialog is gone" : "408 re-offer timed out",
            true, true, status, NULL);
}

static void b2b_reoffer_terminated(struct sip_txn_user *u, struct sip_client_txn *t)
{
    (void)t;
    struct b2b_reoffer *r = (struct b2b_reoffer *)u;
    r->txn = NULL;
    proxy_b2bua_leg_maybe_reap(r->b);
}

void proxy_b2bua_dialog_request(struct proxy_b2b *b, int side, struct sip_server_txn *st,
                                struct sip_msg *req)
{
    struct proxy *p = b->p;
    uint64_t conn = sip_server_txn_conn(st);
    if (!b2b_sender_ok(b, side, conn)) {
        proxy_reject(p, st, 403, "Forbidden (not from a party of this call)",
                     "in-dialog request from elsewhere");
        return;
    }
    if (b->state == B2B_ENDED) {
        sip_server_txn_reply(st, 481, NULL, NULL);
        return;
    }
    if ((req->method == SIP_METHOD_INVITE || req->method == SIP_METHOD_UPDATE) &&
        b2b_reoffer_pending(b->reoffer)) {
        /* glare: refused before it refreshes the target (RFC 6141 §3.4) */
        sip_dialog_note_remote_cseq(&b->side[side], req->cseq_num);
        sip_server_txn_reply(st, 491, NULL, NULL);
        return;
    }
    if (sip_dialog_update(&b->side[side], req) != 0) {
        sip_server_txn_reply(st, 500, "Server Internal Error (CSeq out of order)",
                             "Retry-After: 1\r\n");
        return;
    }
    switch (req->method) {
    case SIP_METHOD_BYE: {
        sip_server_txn_reply(st, 200, NULL, NULL);
        bool from_user = side == b->user_side;
        const char *why = side == 0 ? (from_user ? "BYE from caller" : "BYE from gateway (caller)")
                                    : (from_user ? "BYE from callee" : "BYE from gateway");
        proxy_b2bua_leg_end(b, why, side == 1, side == 0, 0, NULL);
        return;
    }
    case SIP_METHOD_INVITE:
    case SIP_METHOD_UPDATE:
        b2b_reoffer_start(b, side, st, req);
        return;
    case SIP_METHOD_OPTIONS:
        sip_server_txn_reply(st, 200, NULL, B2B_ALLOW);
        return;
    case SIP_METHOD_PRACK:
        /* Parley's provisionals are reliable toward a gateway that
         * required it; a PRACK from anyone else acknowledges nothing */
        if (side == 0 && b->a_100rel)
            b2b_prack_from_a(b, st, req);
        else
            sip_server_txn_reply(st, 481, NULL, NULL);
        return;
    default:
        sip_server_txn_reply(st, 405, NULL, B2B_ALLOW);
        return;
    }
}
