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

#include "proxy/b2bua_priv.h"

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

/* how many 422s one attempt follows before it gives up */
#define B2B_422_MAX 2

static void b2b_attempt(struct proxy_b2b *b);

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
    struct sip_msg *m = proxy_b2bua_leg_build(b, 1, conn, "INVITE", 0, headers, body);
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
        proxy_b2bua_leg_keep_sdp(b, 1, m);
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
    proxy_b2bua_leg_contact(p, conn, contact, sizeof(contact));
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
    struct proxy_trunk *t = proxy_b2bua_leg_trunk(b);
    if (!t) {
        proxy_b2bua_leg_fail(b, 503, "Service Unavailable (the trunk was removed)", NULL);
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
        proxy_b2bua_leg_fail(b, status, reason, b->warning);
        return;
    }
    proxy_trunk_count_call(t, true);
    log_info("b2bua.attempt", "call_id", b->call ? b->call->call_id : "", "trunk", b->trunk,
             "number", b->number, "attempt", LOG_INT(b->attempt + 1));
}

/* Side B's view: a fresh Call-ID, tag and CSeq; From the caller's number
 * (named in its display name too, when `display`) or anonymous (none, or
 * Privacy: id); To as given. 0 or -EINVAL / -ENOMEM. */
static int b2b_view_toward_b(struct proxy_b2b *b, bool display, const char *to)
{
    struct proxy *p = b->p;
    char call_id[64], tag[32], from[400], name[B2B_NUMBER_MAX + 4] = "";
    random_token(call_id, 32);
    random_token(tag, 16);
    if (b->privacy || !b->caller_number[0]) {
        snprintf(from, sizeof(from), "\"Anonymous\" <sip:anonymous@anonymous.invalid>;tag=%s", tag);
    } else {
        if (display)
            snprintf(name, sizeof(name), "\"%s\" ", b->caller_number);
        snprintf(from, sizeof(from), "%s<sip:%s@%s;user=phone>;tag=%s", name, b->caller_number,
                 p->domain, tag);
    }
    struct sip_addr fa, ta;
    proxy_b2bua_leg_unindex(b, 1);
    sip_dialog_clear(&b->side[1]);
    if (sip_addr_parse(strview_cstr(from), &fa) != 0 || sip_addr_parse(strview_cstr(to), &ta) != 0)
        return -EINVAL;
    int rc = sip_dialog_init(&b->side[1], strview_cstr(call_id), &fa, &ta, STRVIEW_EMPTY);
    if (rc == 0) {
        /* a CSeq of its own, not 1: nothing about it says how many
         * requests came before */
        sip_dialog_note_local_cseq(&b->side[1], (uint32_t)(random_u64() % 10000));
        proxy_b2bua_leg_index(b, 1);
    }
    return rc;
}

/* Side B's view for an attempt on a trunk: To the number at the gateway. */
static int b2b_view_toward_gateway(struct proxy_b2b *b)
{
    struct proxy_trunk *t = proxy_b2bua_leg_trunk(b);
    char to[400];
    snprintf(to, sizeof(to), "<sip:%s@%s;user=phone>", b->number,
             t ? proxy_trunk_gateway(t) : "invalid");
    return b2b_view_toward_b(b, false, to);
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
        proxy_b2bua_leg_take_trunk(b, t);
        /* the user's leg stays (its ports and key: what the user already
         * has from an early answer stays true); the gateway's leg is the
         * next gateway's, with a key of its own */
        if (b->anchor && proxy_anchor_reset_leg(p, b->anchor, 1) != 0) {
            proxy_anchor_release(p, b->anchor, "next trunk");
            b->anchor = NULL;
            if (b->sdp_to[0].p)
                OPENSSL_cleanse(b->sdp_to[0].p, b->sdp_to[0].cap);
            strbuf_reset(&b->sdp_to[0]);
        }
        /* nothing of the last gateway's answer carries over */
        b->early_answer = false;
        b->ack_waits = false;
        b->n422 = 0;
        b->se_interval = PROXY_B2BUA_SESSION_EXPIRES;
        b->se_min = PROXY_B2BUA_MIN_SE;
        if ((!b->anchor &&
             proxy_anchor_new(&b->anchor, b->call ? b->call->call_id : "", b->user) != 0) ||
            b2b_view_toward_gateway(b) != 0) {
            proxy_b2bua_leg_fail(b, 500, "Server Internal Error (out of memory)", NULL);
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
    proxy_b2bua_leg_fail(b, b->best_status, b->best_reason, NULL);
}

void proxy_b2bua_trunk_ready(struct proxy *p, struct proxy_trunk *t, bool up)
{
    const char *name = proxy_trunk_name(t);
    struct proxy_b2b *next;
    for (struct proxy_b2b *b = p->b2b_all; b; b = next) {
        next = b->next;
        if (strcmp(b->trunk, name) != 0)
            continue;
        if (b->bye_waits) {
            b->bye_waits = false;
            uint64_t conn = 0;
            if (up && proxy_trunk_connect(p, t, &conn) == 0) {
                b->conn[proxy_b2bua_leg_trunk_side(b)] = conn;
                proxy_b2bua_leg_send_oneway(b, proxy_b2bua_leg_trunk_side(b), "BYE",
                                            b->bye_headers[0] ? b->bye_headers : NULL);
            }
            proxy_b2bua_leg_maybe_reap(b);
            continue;
        }
        if (b->state != B2B_WAITING)
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
    proxy_b2bua_leg_reason(488, why, rh, sizeof(rh));
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
    struct strview sdp = proxy_b2bua_leg_sdp_of(resp);
    if (sdp.n && b->a_offer.len) {
        int rc = proxy_anchor_answer(b->p, b->anchor, false, resp, br->conn, b->warning,
                                     sizeof(b->warning));
        if (rc == 0) {
            proxy_b2bua_leg_keep_sdp(b, 0, resp);
            sdp = strview_make(b->sdp_to[0].p, b->sdp_to[0].len);
            b->early_answer = true;
        } else {
            sdp = STRVIEW_EMPTY; /* early media refused: the ringing goes on */
        }
    } else {
        sdp = STRVIEW_EMPTY;
    }
    char reason[128];
    strview_copy(resp->reason, reason, sizeof(reason));
    proxy_b2bua_leg_reply_a(b, status, reason[0] ? reason : NULL, NULL, sdp);
}

/* B answered on br: the call is up on both sides. */
static void b2b_answered(struct proxy_b2b *b, struct b2b_branch *br, const struct sip_msg *req,
                         struct sip_msg *resp)
{
    struct proxy *p = b->p;
    struct strview sdp = proxy_b2bua_leg_sdp_of(resp);
    int media = 0;
    if (b->a_offer.len) {
        media = sdp.n ? proxy_anchor_answer(p, b->anchor, false, resp, br->conn, b->warning,
                                            sizeof(b->warning))
                : b->early_answer ? 0
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
        proxy_b2bua_leg_fail(b, 488, "Not Acceptable Here", b->warning);
        return;
    }
    proxy_b2bua_leg_unindex(b, 1);
    sip_dialog_clear(&b->side[1]);
    if (sip_dialog_uac(&b->side[1], req, resp) != 0) {
        b2b_refuse_answer(b, br, req, resp, "the answer could not be read");
        proxy_b2bua_leg_fail(b, 500, "Server Internal Error", NULL);
        return;
    }
    sip_dialog_note_local_cseq(&b->side[1], b->b_cseq);
    proxy_b2bua_leg_index(b, 1);
    b->answered = (int)(br - b->br);
    b->conn[1] = br->conn;
    b->invite_cseq = req->cseq_num;
    b->state = B2B_CONFIRMED;
    for (size_t i = 0; i < b->nbr; i++)
        if (&b->br[i] != br && b->br[i].txn)
            sip_client_txn_cancel(b->br[i].txn, "SIP;cause=200;text=\"Call completed elsewhere\"");
    if (!b->ack_waits)
        proxy_b2bua_leg_send_ack(b, STRVIEW_EMPTY);
    if (sdp.n)
        proxy_b2bua_leg_keep_sdp(b, 0, resp);
    if (b->outbound)
        proxy_b2bua_dialog_timer_from_2xx(b, resp);
    else
        proxy_b2bua_dialog_timer_start(b); /* the one granted to the gateway */
    if (b->a_unacked && b->a_unacked_sdp)
        b->a_2xx_waits = true; /* RFC 3262 §3: the 2xx goes with the PRACK */
    else
        proxy_b2bua_dialog_answer_a(b);
    if (b->call) {
        proxy_call_answered(p, b->call);
        proxy_b2bua_leg_describe_media(b);
    }
    log_info("b2bua.answered", "call_id", b->call ? b->call->call_id : "", "trunk", b->trunk,
             "media", b->call ? b->call->media : "");
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
/* The codecs of A's offer ("opus, PCMU, PCMA, telephone-event"), from its
 * a=rtpmap lines, for the Warning of a call the other side found no codec
 * in common with: Parley does not transcode. */
static void b2b_offered_codecs(const struct proxy_b2b *b, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    const char *s = b->a_offer.p, *end = s ? s + b->a_offer.len : NULL;
    while (s && s < end && n + 1 < cap) {
        const char *eol = memchr(s, '\n', (size_t)(end - s));
        const char *line_end = eol ? eol : end;
        if (line_end - s > 9 && memcmp(s, "a=rtpmap:", 9) == 0) {
            const char *name = memchr(s, ' ', (size_t)(line_end - s));
            const char *slash = name ? memchr(name, '/', (size_t)(line_end - name)) : NULL;
            if (name && slash && slash - name > 1) {
                int w = snprintf(out + n, cap - n, "%s%.*s", n ? ", " : "", (int)(slash - name - 1),
                                 name + 1);
                if (w < 0 || (size_t)w >= cap - n)
                    break;
                n += (size_t)w;
            }
        }
        s = eol ? eol + 1 : end;
    }
}

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
            struct proxy_trunk *t = proxy_b2bua_leg_trunk(b);
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
        int mapped = proxy_b2bua_leg_map_failure(status, &mapped_reason);
        if (status == 422) {
            mapped = 500;
            mapped_reason = "Server Internal Error (the gateway refused Parley's session timer)";
        }
        char warning[MEDIA_WARNING_MAX] = "";
        if (mapped == 488 || mapped == 606) {
            char codecs[160], leg[96];
            b2b_offered_codecs(b, codecs, sizeof(codecs));
            proxy_anchor_describe_leg(b->anchor, 1, leg, sizeof(leg));
            struct proxy_trunk *t = proxy_b2bua_leg_trunk(b);
            snprintf(warning, sizeof(warning),
                     "the gateway refused the offer: codecs %s, media %s (trunk %s: srtp_mode "
                     "%s); Parley does not transcode",
                     codecs[0] ? codecs : "-", leg[0] ? leg : "-", b->trunk,
                     t ? proxy_trunk_srtp_name(proxy_trunk_srtp(t)) : "?");
        }
        proxy_b2bua_leg_fail(b, mapped, mapped_reason, warning);
        return;
    }
    /* inbound: a device of the user; the best answer once all have
     * ended (RFC 3261 §16.7's ranking, simplified: a 6xx at once, else
     * the lowest class seen, 486 over 480) */
    if (status >= 600) {
        proxy_b2bua_leg_fail(b, status, reason[0] ? reason : NULL, NULL);
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
    proxy_b2bua_leg_fail(b, best,
                         best == b->best_status && b->best_reason[0] ? b->best_reason : NULL, NULL);
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
                proxy_b2bua_leg_send_ack(b, STRVIEW_EMPTY);
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
    proxy_b2bua_leg_maybe_reap(br->b);
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
    if (outbound && b2b_requires(req, "100rel")) {
        /* toward users Parley's provisionals are not reliable (a gateway
         * that requires them gets them; one that merely supports them gets
         * unreliable ones) */
        sip_server_txn_reply(st, 420, NULL, "Unsupported: 100rel\r\n");
        return NULL;
    }
    if (outbound && b2b_requires(req, "timer")) {
        /* a user's client: the session timer is Parley's business toward
         * the gateway, not theirs */
        sip_server_txn_reply(st, 420, NULL, "Unsupported: timer\r\n");
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
    if (!outbound) {
        b->a_100rel = b2b_requires(req, "100rel");
        struct strbuf h = STRBUF_INIT;
        int rc = proxy_b2bua_dialog_grant_timer(b, req, &h);
        if (rc) {
            sip_server_txn_reply(
                st, rc, rc == 400 ? "Bad Request (a Session-Expires that does not read)" : NULL,
                rc == 422 && !h.err ? strbuf_cstr(&h) : NULL);
            strbuf_free(&h);
            free(b);
            return NULL;
        }
        strbuf_free(&h);
    }
    if (sip_dialog_uas(&b->side[0], req, b->a_tag) != 0) {
        free(b);
        proxy_reject(p, st, 400, "Bad Request (an INVITE without From tag or Contact)",
                     "INVITE without From tag or Contact");
        return NULL;
    }
    strbuf_putview(&b->a_offer, proxy_b2bua_leg_sdp_of(req));
    sip_server_txn_set_context(st, &b->a_invite);
    b->next = p->b2b_all;
    if (p->b2b_all)
        p->b2b_all->prev = b;
    p->b2b_all = b;
    proxy_b2bua_leg_index(b, 0);
    sip_server_txn_reply(st, 100, NULL, NULL);
    return b;
}

/* Calls through trunks user has now (not ended). */
static size_t b2b_user_trunk_calls(const struct proxy *p, const char *user)
{
    size_t n = 0;
    for (const struct proxy_b2b *b = p->b2b_all; b; b = b->next)
        if (b->outbound && b->state != B2B_ENDED && strcmp(b->user, user) == 0)
            n++;
    return n;
}

void proxy_b2bua_to_trunks(struct proxy *p, struct sip_server_txn *st, const struct sip_msg *req,
                           const char *caller_user, const char *number, const char *route,
                           const char *const *trunks, size_t ntrunks)
{
    if (p->cfg.max_trunk_calls_per_user &&
        b2b_user_trunk_calls(p, caller_user) >= p->cfg.max_trunk_calls_per_user) {
        proxy_reject_overload(p, st, "limits.trunk_calls_per_user");
        return;
    }
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
    proxy_b2bua_leg_take_trunk(b, t);
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
        proxy_b2bua_leg_fail(b, 480, NULL, NULL);
        return;
    }
    if (proxy_anchor_new(&b->anchor, b->call ? b->call->call_id : "", callee) != 0) {
        proxy_b2bua_leg_fail(b, 500, NULL, NULL);
        return;
    }
    proxy_anchor_set_leg(b->anchor, 0, b2b_leg_mode(t));
    /* side B: Parley calls the user, as the caller's number */
    char to[PROXY_ADDR_MAX + 8];
    snprintf(to, sizeof(to), "<sip:%s>", callee_aor);
    if (b2b_view_toward_b(b, true, to) != 0) {
        proxy_b2bua_leg_fail(b, 500, NULL, NULL);
        return;
    }
    int last = 0;
    /* one INVITE forked: every device gets the same CSeq */
    uint32_t base = b->side[1].local_cseq;
    for (size_t i = 0; i < n && b->state == B2B_CALLING; i++) {
        b->side[1].local_cseq = base;
        char headers[800] = "", contact[400];
        proxy_b2bua_leg_contact(p, bindings[i]->conn, contact, sizeof(contact));
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
        proxy_b2bua_leg_fail(b, last ? last : 480, NULL, b->warning);
}

/* --- A's ACK and CANCEL; transactions ending -------------------------------- */

static struct proxy_b2b *b2b_find(struct proxy *p, const struct sip_msg *req, int *side)
{
    struct sip_addr from, to;
    if (sip_msg_from(req, &from) != 0 || sip_msg_to(req, &to) != 0 || !to.tag.n)
        return NULL;
    uint64_t h = proxy_b2bua_leg_hash(req->call_id);
    for (struct hmap_node *n = hmap_first(&p->b2bs, h); n; n = hmap_next(n, h)) {
        const struct b2b_index *x = container_of(n, struct b2b_index, node);
        const struct sip_dialog *d = &x->b->side[x->side];
        if (!d->call_id || !strview_eq(req->call_id, d->call_id) || !d->remote_tag ||
            !strview_eq(from.tag, d->remote_tag) || !strview_eq(to.tag, d->local_tag))
            continue;
        *side = x->side;
        return x->b;
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
            proxy_b2bua_leg_keep_sdp(b, 1, ack);
            proxy_b2bua_leg_send_ack(b, strview_make(b->sdp_to[1].p, b->sdp_to[1].len));
        } else {
            proxy_b2bua_leg_send_ack(b, STRVIEW_EMPTY);
            proxy_b2bua_leg_end(b, "488 media refused in the ACK", true, true, 488, warning);
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
    proxy_b2bua_leg_reply_a(b, 487, NULL, NULL, STRVIEW_EMPTY);
    proxy_b2bua_leg_end(b, "487 Request Terminated (cancelled by the caller)", false, false, 487,
                        NULL);
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
        proxy_b2bua_leg_end(b, "caller connection closed", false, false, 487, NULL);
    }
    proxy_b2bua_leg_maybe_reap(b);
}

void proxy_b2bua_trunks_changed(struct proxy *p)
{
    struct proxy_b2b *next;
    for (struct proxy_b2b *b = p->b2b_all; b; b = next) {
        next = b->next;
        if (b->state == B2B_WAITING && !proxy_b2bua_leg_trunk(b)) {
            /* waiting for a trunk that is gone or another now: the next */
            b->attempt++;
            b2b_attempt(b);
            continue;
        }
        if (!b->bye_waits || proxy_b2bua_leg_trunk(b))
            continue;
        b->bye_waits = false;
        log_warn("b2bua.bye_lost", "call_id", b->call ? b->call->call_id : "", "trunk", b->trunk,
                 "reason", "the trunk was removed or changed before its connection came back");
        proxy_b2bua_leg_maybe_reap(b);
    }
}

bool proxy_b2bua_in_dialog(struct proxy *p, struct sip_server_txn *st, const struct sip_msg *reqc)
{
    int side;
    struct proxy_b2b *b = b2b_find(p, reqc, &side);
    if (!b)
        return false;
    proxy_b2bua_dialog_request(b, side, st, (struct sip_msg *)reqc);
    return true;
}

bool proxy_b2bua_media_timed_out(struct proxy *p, uint64_t stream)
{
    for (struct proxy_b2b *b = p->b2b_all; b; b = b->next) {
        if (!proxy_anchor_has_stream(b->anchor, stream))
            continue;
        if (b->state == B2B_CONFIRMED)
            proxy_b2bua_leg_end(b, "media timeout", true, true, 408, "media timeout");
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
            proxy_b2bua_leg_end(b, "server stopping", true, true, 503, "server stopping");
        proxy_b2bua_leg_free(b);
    }
}
