/*
 * proxy/response — the best response and what goes upstream (see
 * response.h).
 */
#include "proxy/response.h"

#include <stdio.h>
#include <string.h>

#include "proxy/call.h"
#include "proxy/dialog.h"
#include "proxy/hop.h"
#include "proxy/media.h"
#include "proxy/state.h"
#include "sip/build.h"

bool proxy_response_better(int candidate, int best)
{
    if (best == 0)
        return true;
    if (best >= 600)
        return false;
    if (candidate >= 600)
        return true;
    return candidate / 100 < best / 100;
}

/* Identities in responses are ours to assert too: whatever the answerer
 * claimed goes, and a device of ours is named for what it is. */
static void response_assert_identity(struct proxy_branch *b, struct sip_msg *resp)
{
    proxy_hop_strip_identity_headers(resp);
    if (b && b->asserted[0]) {
        struct strview pai = sip_msg_printf(resp, "<sip:%s>", b->asserted);
        sip_msg_hdr_append(resp, SIP_HDR_P_ASSERTED_IDENTITY, "P-Asserted-Identity", pai);
    }
}

void proxy_response_forward(struct proxy_request *pr, struct proxy_branch *b, struct sip_msg *resp,
                            int status)
{
    if (!pr->st)
        return;
    struct strbuf out = STRBUF_INIT;
    sip_msg_hdr_remove_first_value(resp, SIP_HDR_VIA);
    response_assert_identity(b, resp);
    if (sip_msg_print(resp, &out) == 0)
        sip_server_txn_send(pr->st, status, &out);
    strbuf_free(&out);
}

void proxy_response_keep(struct proxy_request *pr, struct proxy_branch *b, struct sip_msg *resp,
                         int status)
{
    int effective = status;
    if (resp && status == 503)
        effective = 500; /* RFC 3261 §16.7: a 503 is not ours to pass on */
    if (!resp)
        effective = status == 408 ? 408 : 480; /* timer, or the device's connection went */
    if (!proxy_response_better(effective, pr->best_status))
        return;
    pr->best_status = effective;
    strbuf_reset(&pr->best);
    if (!resp)
        return;
    sip_msg_hdr_remove_first_value(resp, SIP_HDR_VIA);
    response_assert_identity(b, resp);
    if (effective != status) {
        /* a new status line (code and its phrase), then the rest as is */
        struct strbuf tmp = STRBUF_INIT;
        const char *eol = NULL;
        if (sip_msg_print(resp, &tmp) == 0 && (eol = memchr(tmp.p, '\n', tmp.len)) != NULL) {
            strbuf_printf(&pr->best, "SIP/2.0 %d %s\r\n", effective, sip_reason_phrase(effective));
            strbuf_append(&pr->best, eol + 1, tmp.len - (size_t)(eol + 1 - tmp.p));
        }
        strbuf_free(&tmp);
    } else {
        sip_msg_print(resp, &pr->best);
    }
}

void proxy_response_decide(struct proxy_request *pr, int status, const char *warning, bool or_same)
{
    if (!proxy_response_better(status, pr->best_status) && !(or_same && pr->best_status == status))
        return;
    pr->best_status = status;
    strbuf_reset(&pr->best);
    if (warning)
        snprintf(pr->warning, sizeof(pr->warning), "%s", warning);
}

void proxy_response_cancel_pending(struct proxy_request *pr, const char *reason)
{
    for (size_t i = 0; i < pr->nbranches; i++) {
        struct proxy_branch *b = &pr->branches[i];
        if (b->txn && b->status < 200)
            sip_client_txn_cancel(b->txn, reason);
    }
}

void proxy_response_ends_call(struct proxy_request *pr, int status, const char *text)
{
    if (!pr->call || pr->call->answered)
        return;
    char reason[300];
    if (pr->cancelling && status == 487)
        snprintf(reason, sizeof(reason), "cancelled by caller");
    else
        snprintf(reason, sizeof(reason), "%d %s%s%s", status, text, pr->warning[0] ? ": " : "",
                 pr->warning);
    proxy_dialog_end_early(pr->p, pr->call);
    proxy_call_finish(pr->p, pr->call, reason);
}

void proxy_response_finish(struct proxy_request *pr)
{
    if (pr->forwarded_2xx || !pr->st || sip_server_txn_answered(pr->st))
        return;
    if (pr->best_status == 0) {
        sip_server_txn_reply(pr->st, 480, NULL, NULL);
        proxy_response_ends_call(pr, 480, "Temporarily Unavailable");
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
    proxy_response_ends_call(pr, pr->best_status, sip_reason_phrase(pr->best_status));
}
