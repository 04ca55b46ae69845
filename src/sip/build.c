#include "sip/build.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "sip/lex.h"

struct phrase {
    int status;
    const char *text;
};

static const struct phrase phrases[] = {
    {100, "Trying"},
    {180, "Ringing"},
    {181, "Call Is Being Forwarded"},
    {182, "Queued"},
    {183, "Session Progress"},
    {199, "Early Dialog Terminated"},
    {200, "OK"},
    {202, "Accepted"},
    {204, "No Notification"},
    {300, "Multiple Choices"},
    {301, "Moved Permanently"},
    {302, "Moved Temporarily"},
    {305, "Use Proxy"},
    {380, "Alternative Service"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {402, "Payment Required"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {407, "Proxy Authentication Required"},
    {408, "Request Timeout"},
    {410, "Gone"},
    {412, "Conditional Request Failed"},
    {413, "Request Entity Too Large"},
    {414, "Request-URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Unsupported URI Scheme"},
    {417, "Unknown Resource-Priority"},
    {420, "Bad Extension"},
    {421, "Extension Required"},
    {422, "Session Interval Too Small"},
    {423, "Interval Too Brief"},
    {428, "Use Identity Header"},
    {429, "Provide Referrer Identity"},
    {430, "Flow Failed"},
    {433, "Anonymity Disallowed"},
    {436, "Bad Identity-Info"},
    {437, "Unsupported Certificate"},
    {438, "Invalid Identity Header"},
    {439, "First Hop Lacks Outbound Support"},
    {440, "Max-Breadth Exceeded"},
    {469, "Bad Info Package"},
    {470, "Consent Needed"},
    {480, "Temporarily Unavailable"},
    {481, "Call/Transaction Does Not Exist"},
    {482, "Loop Detected"},
    {483, "Too Many Hops"},
    {484, "Address Incomplete"},
    {485, "Ambiguous"},
    {486, "Busy Here"},
    {487, "Request Terminated"},
    {488, "Not Acceptable Here"},
    {489, "Bad Event"},
    {491, "Request Pending"},
    {493, "Undecipherable"},
    {494, "Security Agreement Required"},
    {500, "Server Internal Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Server Time-out"},
    {505, "Version Not Supported"},
    {513, "Message Too Large"},
    {555, "Push Notification Service Not Supported"},
    {580, "Precondition Failure"},
    {600, "Busy Everywhere"},
    {603, "Decline"},
    {604, "Does Not Exist Anywhere"},
    {606, "Not Acceptable"},
    {607, "Unwanted"},
    {608, "Rejected"},
};

const char *sip_reason_phrase(int status)
{
    static const char *const classes[] = {"Provisional",  "Success",      "Redirection",
                                          "Client Error", "Server Error", "Global Failure"};
    size_t lo = 0, hi = sizeof(phrases) / sizeof(phrases[0]);

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (phrases[mid].status == status)
            return phrases[mid].text;
        if (phrases[mid].status < status)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (status >= 100 && status <= 699)
        return classes[status / 100 - 1];
    return "Unknown";
}

/* The reason phrase with anything that could end or corrupt the line
 * replaced. */
static void put_reason(struct strbuf *out, int status, const char *reason)
{
    if (!reason)
        reason = sip_reason_phrase(status);
    for (const unsigned char *p = (const unsigned char *)reason; *p; p++)
        strbuf_putc(out, (*p < 0x20 && *p != '\t') || *p == 0x7f ? ' ' : (char)*p);
}

static bool has_ctl_line_end(const char *s)
{
    return s && (strchr(s, '\r') || strchr(s, '\n'));
}

int sip_build_response(const struct sip_msg *req, int status, const char *reason,
                       const char *to_tag, const char *extra_headers, const char *content_type,
                       struct strview body, struct strbuf *out)
{
    const struct sip_hdr *from, *to, *call_id, *cseq, *via;
    size_t start = out->len;
    struct sip_addr to_addr;

    if (!req || !req->is_request || status < 100 || status > 699)
        return -EINVAL;
    via = sip_msg_hdr_first(req, SIP_HDR_VIA);
    from = sip_msg_hdr_first(req, SIP_HDR_FROM);
    to = sip_msg_hdr_first(req, SIP_HDR_TO);
    call_id = sip_msg_hdr_first(req, SIP_HDR_CALL_ID);
    cseq = sip_msg_hdr_first(req, SIP_HDR_CSEQ);
    if (!via || !from || !to || !call_id || !cseq)
        return -EINVAL;
    if (to_tag && *to_tag && !sip_lex_is_token(strview_cstr(to_tag)))
        return -EINVAL;
    if (has_ctl_line_end(content_type))
        return -EINVAL;
    if (extra_headers && *extra_headers) {
        size_t n = strlen(extra_headers);
        /* Whole lines, and no empty one that would end the head early. */
        if (n < 2 || memcmp(extra_headers + n - 2, "\r\n", 2) != 0 ||
            memcmp(extra_headers, "\r\n", 2) == 0 || strstr(extra_headers, "\r\n\r\n") ||
            strstr(extra_headers, "\n\n"))
            return -EINVAL;
    }

    strbuf_printf(out, "SIP/2.0 %03d ", status);
    put_reason(out, status, reason);
    strbuf_puts(out, "\r\n");
    for (; via; via = sip_msg_hdr_next(via, SIP_HDR_VIA)) {
        strbuf_puts(out, "Via: ");
        strbuf_putview(out, via->value);
        strbuf_puts(out, "\r\n");
    }
    strbuf_puts(out, "From: ");
    strbuf_putview(out, from->value);
    strbuf_puts(out, "\r\nTo: ");
    strbuf_putview(out, to->value);
    if (status > 100 && to_tag && *to_tag &&
        (sip_addr_parse(to->value, &to_addr) != 0 || !to_addr.tag.p)) {
        strbuf_puts(out, ";tag=");
        strbuf_puts(out, to_tag);
    }
    strbuf_puts(out, "\r\nCall-ID: ");
    strbuf_putview(out, call_id->value);
    strbuf_puts(out, "\r\nCSeq: ");
    strbuf_putview(out, cseq->value);
    strbuf_puts(out, "\r\nServer: Parley\r\n");
    if (extra_headers)
        strbuf_puts(out, extra_headers);
    if (content_type && *content_type) {
        strbuf_puts(out, "Content-Type: ");
        strbuf_puts(out, content_type);
        strbuf_puts(out, "\r\n");
    }
    strbuf_printf(out, "Content-Length: %zu\r\n\r\n", body.n);
    strbuf_putview(out, body);
    if (out->err) {
        int err = out->err;
        if (out->p && start < out->len) {
            out->len = start;
            out->p[start] = '\0';
        }
        return err;
    }
    return 0;
}

/* --- responses from raw bytes ------------------------------------------------ */

struct raw_hdr {
    size_t vs, ve; /* value bytes, line ends and folds included */
    bool found;
};

/* Writes a raw header value on one line: folds become one space, other
 * control characters become spaces, ends trimmed. */
static void put_clean(struct strbuf *b, const char *d, size_t vs, size_t ve)
{
    bool space = false, any = false;

    for (size_t i = vs; i < ve; i++) {
        unsigned char c = (unsigned char)d[i];
        if (c < 0x20 || c == 0x7f || c == ' ') {
            space = true;
            continue;
        }
        if (space && any)
            strbuf_putc(b, ' ');
        space = false;
        any = true;
        strbuf_putc(b, (char)c);
    }
}

static enum sip_hdr_id raw_name_id(const char *p, size_t n)
{
    enum sip_hdr_id id = sip_hdr_id_from_name(strview_make(p, n));
    switch (id) {
    case SIP_HDR_VIA:
    case SIP_HDR_FROM:
    case SIP_HDR_TO:
    case SIP_HDR_CALL_ID:
    case SIP_HDR_CSEQ:
        return id;
    default:
        return SIP_HDR_OTHER;
    }
}

static uint32_t fnv1a(uint32_t h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 16777619u;
    }
    return h;
}

int sip_build_error_from_raw(const char *data, size_t len, int status, const char *reason,
                             struct strbuf *out)
{
    struct raw_hdr from = {0}, to = {0}, call_id = {0}, cseq = {0};
    struct strbuf vias = STRBUF_INIT, tmp = STRBUF_INIT;
    size_t i = 0, start = out->len;
    int rc = -EINVAL;

    if (!data || status < 100 || status > 699)
        return -EINVAL;
    while (i < len && (data[i] == '\r' || data[i] == '\n'))
        i++;
    /* Only a request gets an answer: Method SP ... */
    size_t m = i;
    while (m < len && sip_lex_is((unsigned char)data[m], SIP_C_TOKEN))
        m++;
    if (m == i || m >= len || data[m] != ' ')
        return -EINVAL;
    const char *nl = memchr(data + i, '\n', len - i);
    if (!nl)
        return -EINVAL;
    i = (size_t)(nl - data) + 1;

    while (i < len && data[i] != '\n' && !(data[i] == '\r' && i + 1 < len && data[i + 1] == '\n')) {
        size_t ls = i, he;
        nl = memchr(data + i, '\n', len - i);
        he = nl ? (size_t)(nl - data) : len;
        while (he + 1 < len && (data[he + 1] == ' ' || data[he + 1] == '\t')) {
            nl = memchr(data + he + 1, '\n', len - he - 1);
            he = nl ? (size_t)(nl - data) : len;
        }
        i = he < len ? he + 1 : len;

        size_t ne = ls;
        while (ne < he && sip_lex_is((unsigned char)data[ne], SIP_C_TOKEN))
            ne++;
        size_t colon = ne;
        while (colon < he && (data[colon] == ' ' || data[colon] == '\t'))
            colon++;
        if (ne == ls || colon >= he || data[colon] != ':')
            continue;
        struct raw_hdr *slot = NULL;
        switch (raw_name_id(data + ls, ne - ls)) {
        case SIP_HDR_VIA:
            strbuf_puts(&vias, "Via: ");
            put_clean(&vias, data, colon + 1, he);
            strbuf_puts(&vias, "\r\n");
            continue;
        case SIP_HDR_FROM:
            slot = &from;
            break;
        case SIP_HDR_TO:
            slot = &to;
            break;
        case SIP_HDR_CALL_ID:
            slot = &call_id;
            break;
        case SIP_HDR_CSEQ:
            slot = &cseq;
            break;
        default:
            continue;
        }
        if (!slot->found) {
            slot->found = true;
            slot->vs = colon + 1;
            slot->ve = he;
        }
    }
    if (vias.err) {
        rc = vias.err; /* out of memory: not "no response can be formed" */
        goto out;
    }
    if (vias.len == 0 || !from.found || !to.found || !call_id.found || !cseq.found)
        goto out;

    strbuf_printf(out, "SIP/2.0 %03d ", status);
    put_reason(out, status, reason);
    strbuf_puts(out, "\r\n");
    strbuf_append(out, vias.p, vias.len);
    strbuf_puts(out, "From: ");
    put_clean(out, data, from.vs, from.ve);
    strbuf_puts(out, "\r\nTo: ");
    put_clean(&tmp, data, to.vs, to.ve);
    strbuf_append(out, tmp.p, tmp.len);
    /* The tag only has to be stable across retransmissions. */
    const char *gt = tmp.len ? memrchr(tmp.p, '>', tmp.len) : NULL;
    struct strview params = gt ? strview_make(gt + 1, tmp.len - (size_t)(gt + 1 - tmp.p))
                               : strview_make(tmp.p, tmp.len);
    if (status > 100 && !sip_lex_param_find(params, "tag", NULL)) {
        uint32_t h = fnv1a(2166136261u, data + call_id.vs, call_id.ve - call_id.vs);
        h = fnv1a(h, data + from.vs, from.ve - from.vs);
        strbuf_printf(out, ";tag=p%08x", (unsigned)h);
    }
    strbuf_puts(out, "\r\nCall-ID: ");
    put_clean(out, data, call_id.vs, call_id.ve);
    strbuf_puts(out, "\r\nCSeq: ");
    put_clean(out, data, cseq.vs, cseq.ve);
    strbuf_puts(out, "\r\nServer: Parley\r\nContent-Length: 0\r\n\r\n");
    rc = vias.err ? vias.err : tmp.err ? tmp.err : out->err;
out:
    if (rc && out->len > start) {
        out->len = start;
        out->p[start] = '\0';
    }
    strbuf_free(&vias);
    strbuf_free(&tmp);
    return rc;
}
