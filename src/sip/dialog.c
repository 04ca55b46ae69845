/*
 * sip/dialog — one side's view of a dialog (see dialog.h).
 */
#include "sip/dialog.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sip/lex.h"

void sip_dialog_clear(struct sip_dialog *d)
{
    free(d->call_id);
    free(d->local_uri);
    free(d->local_tag);
    free(d->remote_uri);
    free(d->remote_tag);
    free(d->remote_target);
    free(d->route_set);
    memset(d, 0, sizeof(*d));
}

/* The first Contact URI of m, or an empty view. */
static struct strview first_contact(const struct sip_msg *m)
{
    struct sip_value_iter it;
    struct strview v;
    struct sip_addr a;
    sip_value_iter_init(&it, m, SIP_HDR_CONTACT);
    if (sip_value_iter_next(&it, &v) && sip_addr_parse(v, &a) == 0 && !a.wildcard)
        return a.uri_text;
    return STRVIEW_EMPTY;
}

/* The Record-Route values of m joined with ", ", in order or reversed;
 * NULL (and 0) when there are none. */
static int join_record_route(const struct sip_msg *m, bool reversed, char **out)
{
    struct strview vals[64];
    size_t n = 0;
    struct sip_value_iter it;
    struct strview v;
    *out = NULL;
    sip_value_iter_init(&it, m, SIP_HDR_RECORD_ROUTE);
    while (sip_value_iter_next(&it, &v)) {
        if (n == sizeof(vals) / sizeof(vals[0]))
            return -EINVAL;
        vals[n++] = v;
    }
    if (n == 0)
        return 0;
    struct strbuf b = STRBUF_INIT;
    for (size_t i = 0; i < n; i++) {
        if (i)
            strbuf_puts(&b, ", ");
        strbuf_putview(&b, vals[reversed ? n - 1 - i : i]);
    }
    if (b.err) {
        strbuf_free(&b);
        return -ENOMEM;
    }
    *out = strbuf_take(&b, NULL);
    return *out ? 0 : -ENOMEM;
}

/* local/remote: the headers naming each side; tags: ours and theirs;
 * rr_from: the message whose Record-Route makes the route set, or NULL. */
static int dialog_make(struct sip_dialog *d, struct strview call_id, const struct sip_addr *local,
                       struct strview local_tag, const struct sip_addr *remote,
                       struct strview target, const struct sip_msg *rr_from, bool rr_reversed)
{
    memset(d, 0, sizeof(*d));
    if (!call_id.n)
        return -EINVAL;
    int rc = rr_from ? join_record_route(rr_from, rr_reversed, &d->route_set) : 0;
    if (rc)
        return rc;
    d->call_id = strview_dup(call_id);
    d->local_uri = strview_dup(local->uri_text);
    d->local_tag = strview_dup(local_tag);
    d->remote_uri = strview_dup(remote->uri_text);
    d->remote_tag = strview_dup(remote->tag);
    d->remote_target = strview_dup(target);
    if (!d->call_id || !d->local_uri || !d->local_tag || !d->remote_uri || !d->remote_tag ||
        !d->remote_target) {
        sip_dialog_clear(d);
        return -ENOMEM;
    }
    return 0;
}

int sip_dialog_uas(struct sip_dialog *d, const struct sip_msg *req, const char *local_tag)
{
    struct sip_addr from, to;
    memset(d, 0, sizeof(*d));
    if (!local_tag || !*local_tag || sip_msg_from(req, &from) != 0 || sip_msg_to(req, &to) != 0 ||
        !from.tag.n)
        return -EINVAL;
    struct strview target = first_contact(req);
    if (!target.n)
        return -EINVAL;
    int rc = dialog_make(d, req->call_id, &to, strview_cstr(local_tag), &from, target, req, false);
    if (rc == 0) {
        d->remote_cseq = req->cseq_num;
        d->has_remote_cseq = true;
    }
    return rc;
}

int sip_dialog_uac(struct sip_dialog *d, const struct sip_msg *req, const struct sip_msg *resp)
{
    struct sip_addr from, to;
    memset(d, 0, sizeof(*d));
    if (sip_msg_from(req, &from) != 0 || sip_msg_to(resp, &to) != 0 || !from.tag.n || !to.tag.n)
        return -EINVAL;
    struct strview target = first_contact(resp);
    if (!target.n)
        return -EINVAL;
    int rc = dialog_make(d, req->call_id, &from, from.tag, &to, target, resp, true);
    if (rc == 0)
        d->local_cseq = req->cseq_num;
    return rc;
}

int sip_dialog_init(struct sip_dialog *d, struct strview call_id, const struct sip_addr *local,
                    const struct sip_addr *remote, struct strview target)
{
    return dialog_make(d, call_id, local, local->tag, remote, target, NULL, false);
}

bool sip_dialog_matches(const struct sip_dialog *d, const struct sip_msg *req)
{
    struct sip_addr from, to;
    if (!d->call_id || sip_msg_from(req, &from) != 0 || sip_msg_to(req, &to) != 0)
        return false;
    return strview_eq(req->call_id, d->call_id) && strview_eq(from.tag, d->remote_tag) &&
           strview_eq(to.tag, d->local_tag);
}

static bool is_target_refresh(enum sip_method m)
{
    return m == SIP_METHOD_INVITE || m == SIP_METHOD_UPDATE || m == SIP_METHOD_SUBSCRIBE ||
           m == SIP_METHOD_NOTIFY || m == SIP_METHOD_REFER;
}

int sip_dialog_set_target(struct sip_dialog *d, struct strview uri)
{
    if (!uri.n)
        return 0;
    char *t = strview_dup(uri);
    if (!t)
        return -ENOMEM;
    free(d->remote_target);
    d->remote_target = t;
    return 0;
}

int sip_dialog_update(struct sip_dialog *d, const struct sip_msg *req)
{
    /* ACK and CANCEL share their INVITE's CSeq number */
    bool same_ok = req->method == SIP_METHOD_ACK || req->method == SIP_METHOD_CANCEL;
    if (d->has_remote_cseq &&
        (req->cseq_num < d->remote_cseq || (req->cseq_num == d->remote_cseq && !same_ok)))
        return -EPROTO;
    if (is_target_refresh(req->method)) {
        int rc = sip_dialog_set_target(d, first_contact(req));
        if (rc)
            return rc;
    }
    d->remote_cseq = req->cseq_num;
    d->has_remote_cseq = true;
    return 0;
}

void sip_dialog_note_remote_cseq(struct sip_dialog *d, uint32_t cseq)
{
    if (!d->has_remote_cseq || cseq > d->remote_cseq)
        d->remote_cseq = cseq;
    d->has_remote_cseq = true;
}

void sip_dialog_note_local_cseq(struct sip_dialog *d, uint32_t cseq)
{
    if (cseq > d->local_cseq)
        d->local_cseq = cseq;
}

/* Whole CRLF-terminated lines without stray CR or LF, and no empty line
 * (which would end the head there, making the rest a body). */
static bool whole_lines(const char *s)
{
    size_t n = strlen(s);
    if (n < 2 || s[n - 2] != '\r' || s[n - 1] != '\n' || s[0] == '\r')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\r' && (i + 1 >= n || s[i + 1] != '\n'))
            return false;
        if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
            return false;
        if (s[i] == '\r' && i + 3 < n && s[i + 2] == '\r')
            return false; /* an empty line would end the head */
    }
    return true;
}

int sip_dialog_request(struct sip_dialog *d, const char *method, uint32_t ack_cseq, const char *via,
                       const char *extra_headers, const char *content_type, struct strview body,
                       struct strbuf *out)
{
    if (!d->call_id || !d->remote_target || !*d->remote_target || !method ||
        !sip_lex_is_token(strview_cstr(method)) || !via ||
        (extra_headers && *extra_headers && !whole_lines(extra_headers)) ||
        (content_type && strpbrk(content_type, "\r\n")))
        return -EINVAL;
    bool ack = strcmp(method, "ACK") == 0;
    /* CSeq numbers stay below 2^31 (RFC 3261 §8.1.1.5); past that a peer
     * could be made to see ours wrap to 0 and refuse the request */
    if (!ack && d->local_cseq >= SIP_DIALOG_CSEQ_MAX)
        return -EOVERFLOW;
    uint32_t cseq = ack ? ack_cseq : d->local_cseq + 1;
    struct strbuf b = STRBUF_INIT;
    strbuf_printf(&b, "%s %s SIP/2.0\r\nVia: %s\r\nMax-Forwards: 70\r\n", method, d->remote_target,
                  via);
    if (d->route_set)
        strbuf_printf(&b, "Route: %s\r\n", d->route_set);
    /* a tag may be empty: a peer's From without one (RFC 3261 §12.1.1) */
    strbuf_printf(&b, "From: <%s>%s%s\r\nTo: <%s>%s%s\r\nCall-ID: %s\r\nCSeq: %u %s\r\n",
                  d->local_uri, *d->local_tag ? ";tag=" : "", d->local_tag, d->remote_uri,
                  *d->remote_tag ? ";tag=" : "", d->remote_tag, d->call_id, (unsigned)cseq, method);
    if (extra_headers)
        strbuf_puts(&b, extra_headers);
    if (body.n && content_type)
        strbuf_printf(&b, "Content-Type: %s\r\n", content_type);
    strbuf_printf(&b, "Content-Length: %zu\r\n\r\n", body.n);
    if (body.n)
        strbuf_append(&b, body.p, body.n);
    int rc = b.err;
    if (rc == 0) {
        strbuf_append(out, b.p, b.len);
        rc = out->err;
    }
    strbuf_free(&b);
    if (rc == 0 && !ack)
        d->local_cseq = cseq;
    return rc;
}
