/*
 * proxy/media — the media encryption level on offers and answers (see
 * media.h).
 */
#include "proxy/media.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "proxy/state.h"
#include "sip/body.h"

void proxy_media_configure(struct proxy *p, const char *level, const char *const *suites,
                           size_t nsuites)
{
    enum media_level l = MEDIA_LEVEL_REQUIRED;
    media_level_parse(level, &l);
    for (size_t i = 0; i < 8; i++) {
        free(p->media_suites[i]);
        p->media_suites[i] = NULL;
    }
    size_t n = 0;
    for (size_t i = 0; i < nsuites && n < 8; i++)
        if ((p->media_suites[n] = strdup(suites[i])) != NULL)
            n++;
    p->media.level = l;
    p->media.suites = (const char *const *)p->media_suites;
    p->media.nsuites = n;
}

void proxy_media_free(struct proxy *p)
{
    for (size_t i = 0; i < 8; i++) {
        free(p->media_suites[i]);
        p->media_suites[i] = NULL;
    }
}

/* The SDP of a message's body (sip/body finds it, in a multipart too);
 * -EINVAL with the reason when the body cannot be read with certainty,
 * which the policy treats as malformed: a user agent might find an SDP
 * in it that Parley did not inspect. */
int proxy_media_find_sdp(const struct sip_msg *m, struct sip_body_sdp *found, char *warning,
                         size_t cap)
{
    const struct sip_hdr *ct = sip_msg_hdr_first(m, SIP_HDR_CONTENT_TYPE);
    const struct sip_hdr *ce = sip_msg_hdr_first(m, SIP_HDR_CONTENT_ENCODING);

    *found = (struct sip_body_sdp){.sdp = STRVIEW_EMPTY};
    /* readers differ on which of two counts */
    if (m->body.n && (sip_msg_hdr_count(m, SIP_HDR_CONTENT_TYPE) > 1 ||
                      sip_msg_hdr_count(m, SIP_HDR_CONTENT_ENCODING) > 1)) {
        snprintf(warning, cap, "two Content-Type or Content-Encoding headers");
        return -EINVAL;
    }
    if (m->body.n && ce && !strview_eq_nocase(strview_trim(ce->value), "identity")) {
        snprintf(warning, cap, "encoded message bodies are not accepted");
        return -EINVAL;
    }
    return sip_body_find_sdp(ct ? ct->value : STRVIEW_EMPTY, m->body, found, warning, cap);
}

bool proxy_media_has_sdp(const struct sip_msg *m)
{
    struct sip_body_sdp found;
    char why[8];
    return m->body.n > 0 && (proxy_media_find_sdp(m, &found, why, sizeof(why)) || found.sdp.n > 0);
}

/* Puts the policy's rewritten SDP where the old one was. A message whose
 * rewrite fails must not go out with the old SDP (it may hold keys): the
 * caller refuses it. */
int proxy_media_replace_sdp(struct sip_msg *m, const struct sip_body_sdp *found,
                            const struct strbuf *sdp)
{
    if (found->whole)
        return sip_msg_set_body(m, strview_cstr("application/sdp"), strview_make(sdp->p, sdp->len));
    const struct sip_hdr *ct = sip_msg_hdr_first(m, SIP_HDR_CONTENT_TYPE);
    size_t tail = found->offset + found->sdp.n;
    struct strbuf body = STRBUF_INIT;
    strbuf_putview(&body, strview_make(m->body.p, found->offset));
    strbuf_putview(&body, strview_make(sdp->p, sdp->len));
    strbuf_putview(&body, strview_make(m->body.p + tail, m->body.n - tail));
    int rc =
        body.err || !ct ? -ENOMEM : sip_msg_set_body(m, ct->value, strview_make(body.p, body.len));
    strbuf_free(&body);
    return rc;
}

static bool proxy_conn_tls(struct proxy *p, uint64_t conn)
{
    const struct conn_info *ci = p->env.conn_info(p->env.arg, conn);
    return ci && ci->tls;
}

void proxy_media_warning_header(struct proxy *p, const char *warning, char *out, size_t cap)
{
    /* Warning: 399 is "miscellaneous" (RFC 3261 §20.43); the text must not
     * break the quoted string */
    char clean[MEDIA_WARNING_MAX];
    size_t j = 0;
    for (size_t i = 0; warning[i] && j + 1 < sizeof(clean); i++)
        clean[j++] =
            (warning[i] == '"' || warning[i] == '\\' || warning[i] < ' ') ? '\'' : warning[i];
    clean[j] = '\0';
    snprintf(out, cap, "Warning: 399 %s \"%s\"\r\n", p->domain, clean);
}

static void proxy_media_log(const struct sip_msg *m, const char *what, const char *warning)
{
    char cid[128];
    strview_copy(m->call_id, cid, sizeof(cid));
    log_info("media.refused", "call_id", cid, "sdp", what, "reason", warning);
}

enum proxy_media_result proxy_media_offer(struct proxy *p, struct sip_msg *m, uint64_t in_conn,
                                          uint64_t out_conn, bool anchored, struct strbuf *sent,
                                          char *warning, size_t cap)
{
    struct sip_body_sdp found;
    if (proxy_media_find_sdp(m, &found, warning, cap)) {
        proxy_media_log(m, "offer", warning);
        return PROXY_MEDIA_BAD;
    }
    if (found.sdp.n == 0)
        return PROXY_MEDIA_OK;
    struct media_hops hops = {proxy_conn_tls(p, in_conn), anchored || proxy_conn_tls(p, out_conn)};
    struct media_decision d;
    media_decision_init(&d);
    int rc = media_policy_offer(&p->media, found.sdp, &hops, &d);
    enum proxy_media_result res = PROXY_MEDIA_OK;
    struct strview forwarded = found.sdp;
    if (rc) {
        snprintf(warning, cap, "%s", d.warning[0] ? d.warning : "malformed SDP");
        res = PROXY_MEDIA_BAD;
    } else if (d.verdict == MEDIA_REFUSE) {
        snprintf(warning, cap, "%s", d.warning);
        proxy_media_log(m, "offer", warning);
        res = PROXY_MEDIA_REFUSED;
    } else if (d.verdict == MEDIA_REWRITE) {
        if (proxy_media_replace_sdp(m, &found, &d.sdp) == 0) {
            forwarded = strview_make(d.sdp.p, d.sdp.len);
        } else {
            snprintf(warning, cap, "the session description could not be rewritten");
            proxy_media_log(m, "offer", warning);
            res = PROXY_MEDIA_REFUSED;
        }
    }
    if (res == PROXY_MEDIA_OK && sent) {
        strbuf_reset(sent);
        strbuf_putview(sent, forwarded);
    }
    media_decision_free(&d);
    return res;
}

enum proxy_media_result proxy_media_answer(struct proxy *p, struct strview offer, struct sip_msg *m,
                                           uint64_t in_conn, uint64_t out_conn, char *warning,
                                           size_t cap, char *summary, size_t summary_cap)
{
    struct sip_body_sdp found;
    if (proxy_media_find_sdp(m, &found, warning, cap)) {
        proxy_media_log(m, "answer", warning);
        return PROXY_MEDIA_BAD;
    }
    if (found.sdp.n == 0)
        return PROXY_MEDIA_OK;
    struct media_hops hops = {proxy_conn_tls(p, in_conn), proxy_conn_tls(p, out_conn)};
    struct media_decision d;
    media_decision_init(&d);
    int rc = media_policy_answer(&p->media, offer, found.sdp, &hops, &d);
    enum proxy_media_result res = PROXY_MEDIA_OK;
    if (rc) {
        snprintf(warning, cap, "%s", d.warning[0] ? d.warning : "malformed SDP");
        res = PROXY_MEDIA_BAD;
    } else if (d.verdict == MEDIA_REFUSE) {
        snprintf(warning, cap, "%s", d.warning);
        proxy_media_log(m, "answer", warning);
        res = PROXY_MEDIA_REFUSED;
    } else if (d.verdict == MEDIA_REWRITE && proxy_media_replace_sdp(m, &found, &d.sdp) != 0) {
        snprintf(warning, cap, "the session description could not be rewritten");
        proxy_media_log(m, "answer", warning);
        res = PROXY_MEDIA_REFUSED;
    } else {
        if (summary && summary_cap)
            snprintf(summary, summary_cap, "%s", strbuf_cstr(&d.summary));
    }
    media_decision_free(&d);
    return res;
}
