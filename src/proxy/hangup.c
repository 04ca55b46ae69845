/*
 * proxy/hangup — Parley's own ACK and BYE (see hangup.h).
 */
#include "proxy/hangup.h"

#include <stdio.h>

#include "core/log.h"
#include "media/policy.h"
#include "proxy/hop.h"
#include "proxy/state.h"
#include "sip/dialog.h"

/* Parley as the UAC of req toward the answerer of resp: the tags and
 * target the answerer expects, CSeq above req's. */
static int hangup_view_of_answer(struct sip_dialog *v, const struct sip_msg *req,
                                 const struct sip_msg *resp)
{
    struct sip_addr from, to, contact;
    struct sip_value_iter it;
    struct strview cv, target = req->request_uri; /* the device we sent it to */
    if (sip_msg_from(req, &from) != 0 || sip_msg_to(resp, &to) != 0)
        return -1;
    sip_value_iter_init(&it, resp, SIP_HDR_CONTACT);
    if (sip_value_iter_next(&it, &cv) && sip_addr_parse(cv, &contact) == 0 && !contact.wildcard)
        target = contact.uri_text;
    int rc = sip_dialog_init(v, req->call_id, &from, &to, target);
    if (rc == 0)
        sip_dialog_note_local_cseq(v, req->cseq_num);
    return rc;
}

/* The Reason header line (a media refusal: cause 488; a media timeout:
 * 408); the text must not break the quoted string nor the line. */
static void hangup_reason(int cause, const char *warning, char *out, size_t cap)
{
    char clean[MEDIA_WARNING_MAX];
    size_t j = 0;
    for (size_t i = 0; warning[i] && j + 1 < sizeof(clean); i++) {
        unsigned char c = (unsigned char)warning[i];
        clean[j++] = (c == '"' || c == '\\' || c < ' ' || c == 0x7f) ? '\'' : (char)c;
    }
    clean[j] = '\0';
    snprintf(out, cap, "Reason: SIP;cause=%d;text=\"%s\"\r\n", cause, clean);
}

/* Builds method in view v and sends it on conn: an ACK statelessly, any
 * other request in a client transaction whose answer is of no interest. */
static void hangup_send(struct proxy *p, uint64_t conn, struct sip_dialog *v, const char *method,
                        uint32_t ack_cseq, const char *headers)
{
    char branch[48];
    sip_txn_new_branch(branch, sizeof(branch));
    struct strbuf via = STRBUF_INIT, out = STRBUF_INIT;
    proxy_hop_via(p, conn, branch, &via);
    bool ack = method[0] == 'A';
    if (!via.err && sip_dialog_request(v, method, ack_cseq, strbuf_cstr(&via), headers, NULL,
                                       STRVIEW_EMPTY, &out) == 0) {
        if (ack) {
            p->env.send(p->env.arg, conn, &out);
        } else {
            struct sip_msg *msg = NULL;
            struct sip_parse_error perr;
            if (sip_msg_parse(out.p, out.len, &msg, &perr) == 0)
                sip_txn_client_send(p->txn, conn, msg, NULL);
        }
    }
    strbuf_free(&via);
    strbuf_free(&out);
}

void proxy_hangup_ack(struct proxy *p, uint64_t conn, const struct sip_msg *req,
                      const struct sip_msg *resp)
{
    struct sip_dialog v;
    if (req->method != SIP_METHOD_INVITE || hangup_view_of_answer(&v, req, resp) != 0)
        return;
    hangup_send(p, conn, &v, "ACK", req->cseq_num, NULL);
    sip_dialog_clear(&v);
}

void proxy_hangup_answerer(struct proxy *p, uint64_t conn, const struct sip_msg *req,
                           const struct sip_msg *resp, const char *warning)
{
    struct sip_dialog v;
    if (hangup_view_of_answer(&v, req, resp) != 0)
        return;
    if (req->method == SIP_METHOD_INVITE)
        hangup_send(p, conn, &v, "ACK", req->cseq_num, NULL);
    char reason[MEDIA_WARNING_MAX + 64];
    hangup_reason(488, warning, reason, sizeof(reason));
    hangup_send(p, conn, &v, "BYE", 0, reason);
    char cid[128];
    strview_copy(req->call_id, cid, sizeof(cid));
    log_info("media.answer_refused", "call_id", cid, "answerer", v.remote_uri, "reason", warning,
             "action",
             req->method == SIP_METHOD_INVITE ? "ACK and BYE sent to the answerer"
                                              : "BYE sent to the answerer");
    sip_dialog_clear(&v);
}

void proxy_hangup_dialog(struct proxy *p, struct proxy_dialog *d, bool to_caller, bool to_callee,
                         int cause, const char *warning)
{
    char reason[MEDIA_WARNING_MAX + 64];
    hangup_reason(cause, warning, reason, sizeof(reason));
    if (to_callee && d->callee_conn)
        hangup_send(p, d->callee_conn, &d->to_callee, "BYE", 0, reason);
    if (to_caller && d->caller_conn)
        hangup_send(p, d->caller_conn, &d->to_caller, "BYE", 0, reason);
}
