/*
 * SIP message parsing: one pass over a private copy of the input. Header
 * records come from the message's arena, values are unfolded in place, and
 * the headers the core relies on are checked as they are met so a message
 * that parses is one the rest of Parley can trust.
 */
#include "sip/msg.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sip/lex.h"
#include "sip/msg_priv.h"

/* --- methods and header names ------------------------------------------ */

static const char *const method_names[] = {
    [SIP_METHOD_UNKNOWN] = "UNKNOWN",
    [SIP_METHOD_INVITE] = "INVITE",
    [SIP_METHOD_ACK] = "ACK",
    [SIP_METHOD_BYE] = "BYE",
    [SIP_METHOD_CANCEL] = "CANCEL",
    [SIP_METHOD_OPTIONS] = "OPTIONS",
    [SIP_METHOD_REGISTER] = "REGISTER",
    [SIP_METHOD_MESSAGE] = "MESSAGE",
    [SIP_METHOD_SUBSCRIBE] = "SUBSCRIBE",
    [SIP_METHOD_NOTIFY] = "NOTIFY",
    [SIP_METHOD_PUBLISH] = "PUBLISH",
    [SIP_METHOD_REFER] = "REFER",
    [SIP_METHOD_INFO] = "INFO",
    [SIP_METHOD_UPDATE] = "UPDATE",
    [SIP_METHOD_PRACK] = "PRACK",
    [SIP_METHOD_SERVICE] = "SERVICE",
};

enum sip_method sip_method_from_view(struct strview name)
{
    /* The first letter and the length single out one candidate. */
    enum sip_method m = SIP_METHOD_UNKNOWN;

    if (name.n < 3 || name.n > 9)
        return SIP_METHOD_UNKNOWN;
    switch (name.p[0]) {
    case 'A':
        m = SIP_METHOD_ACK;
        break;
    case 'B':
        m = SIP_METHOD_BYE;
        break;
    case 'C':
        m = SIP_METHOD_CANCEL;
        break;
    case 'I':
        m = name.n == 6 ? SIP_METHOD_INVITE : SIP_METHOD_INFO;
        break;
    case 'M':
        m = SIP_METHOD_MESSAGE;
        break;
    case 'N':
        m = SIP_METHOD_NOTIFY;
        break;
    case 'O':
        m = SIP_METHOD_OPTIONS;
        break;
    case 'P':
        m = name.n == 5 ? SIP_METHOD_PRACK : SIP_METHOD_PUBLISH;
        break;
    case 'R':
        m = name.n == 5 ? SIP_METHOD_REFER : SIP_METHOD_REGISTER;
        break;
    case 'S':
        m = name.n == 7 ? SIP_METHOD_SERVICE : SIP_METHOD_SUBSCRIBE;
        break;
    case 'U':
        m = SIP_METHOD_UPDATE;
        break;
    default:
        return SIP_METHOD_UNKNOWN;
    }
    return strview_eq(name, method_names[m]) ? m : SIP_METHOD_UNKNOWN;
}

const char *sip_method_name(enum sip_method m)
{
    if ((unsigned)m >= sizeof(method_names) / sizeof(method_names[0]))
        return "UNKNOWN";
    return method_names[m];
}

static const char *const hdr_names[SIP_HDR_COUNT_] = {
    [SIP_HDR_OTHER] = NULL,
    [SIP_HDR_VIA] = "Via",
    [SIP_HDR_FROM] = "From",
    [SIP_HDR_TO] = "To",
    [SIP_HDR_CALL_ID] = "Call-ID",
    [SIP_HDR_CSEQ] = "CSeq",
    [SIP_HDR_CONTACT] = "Contact",
    [SIP_HDR_ROUTE] = "Route",
    [SIP_HDR_RECORD_ROUTE] = "Record-Route",
    [SIP_HDR_MAX_FORWARDS] = "Max-Forwards",
    [SIP_HDR_CONTENT_LENGTH] = "Content-Length",
    [SIP_HDR_CONTENT_TYPE] = "Content-Type",
    [SIP_HDR_CONTENT_ENCODING] = "Content-Encoding",
    [SIP_HDR_EXPIRES] = "Expires",
    [SIP_HDR_MIN_EXPIRES] = "Min-Expires",
    [SIP_HDR_AUTHORIZATION] = "Authorization",
    [SIP_HDR_PROXY_AUTHORIZATION] = "Proxy-Authorization",
    [SIP_HDR_WWW_AUTHENTICATE] = "WWW-Authenticate",
    [SIP_HDR_PROXY_AUTHENTICATE] = "Proxy-Authenticate",
    [SIP_HDR_AUTHENTICATION_INFO] = "Authentication-Info",
    [SIP_HDR_EVENT] = "Event",
    [SIP_HDR_ALLOW_EVENTS] = "Allow-Events",
    [SIP_HDR_SUBSCRIPTION_STATE] = "Subscription-State",
    [SIP_HDR_SUPPORTED] = "Supported",
    [SIP_HDR_REQUIRE] = "Require",
    [SIP_HDR_PROXY_REQUIRE] = "Proxy-Require",
    [SIP_HDR_UNSUPPORTED] = "Unsupported",
    [SIP_HDR_ALLOW] = "Allow",
    [SIP_HDR_ACCEPT] = "Accept",
    [SIP_HDR_USER_AGENT] = "User-Agent",
    [SIP_HDR_SERVER] = "Server",
    [SIP_HDR_P_ASSERTED_IDENTITY] = "P-Asserted-Identity",
    [SIP_HDR_P_PREFERRED_IDENTITY] = "P-Preferred-Identity",
    [SIP_HDR_SIP_ETAG] = "SIP-ETag",
    [SIP_HDR_SIP_IF_MATCH] = "SIP-If-Match",
    [SIP_HDR_REASON] = "Reason",
    [SIP_HDR_WARNING] = "Warning",
    [SIP_HDR_RSEQ] = "RSeq",
    [SIP_HDR_RACK] = "RAck",
    [SIP_HDR_REFER_TO] = "Refer-To",
    [SIP_HDR_REFERRED_BY] = "Referred-By",
    [SIP_HDR_PATH] = "Path",
    [SIP_HDR_TIMESTAMP] = "Timestamp",
    [SIP_HDR_SUBJECT] = "Subject",
    [SIP_HDR_SESSION_EXPIRES] = "Session-Expires",
    [SIP_HDR_IDENTITY] = "Identity",
    [SIP_HDR_DATE] = "Date",
};

const char *sip_hdr_name(enum sip_hdr_id id)
{
    if ((unsigned)id >= SIP_HDR_COUNT_)
        return NULL;
    return hdr_names[id];
}

/* Candidates per name length, so a lookup compares at most a handful of
 * names and usually one (the first letter rejects the others cheaply). */
#define HDR_MAX_NAME 20
#define HDR_PER_LEN  6
static uint8_t hdr_by_len[HDR_MAX_NAME + 1][HDR_PER_LEN];

__attribute__((constructor)) static void hdr_index_init(void)
{
    for (int id = 1; id < SIP_HDR_COUNT_; id++) {
        size_t n = strlen(hdr_names[id]);
        for (int k = 0; k < HDR_PER_LEN; k++) {
            if (hdr_by_len[n][k] == 0) {
                hdr_by_len[n][k] = (uint8_t)id;
                break;
            }
        }
    }
}

static enum sip_hdr_id hdr_compact(char c)
{
    switch (c | 0x20) {
    case 'v':
        return SIP_HDR_VIA;
    case 'f':
        return SIP_HDR_FROM;
    case 't':
        return SIP_HDR_TO;
    case 'i':
        return SIP_HDR_CALL_ID;
    case 'm':
        return SIP_HDR_CONTACT;
    case 'l':
        return SIP_HDR_CONTENT_LENGTH;
    case 'c':
        return SIP_HDR_CONTENT_TYPE;
    case 'e':
        return SIP_HDR_CONTENT_ENCODING;
    case 'k':
        return SIP_HDR_SUPPORTED;
    case 'o':
        return SIP_HDR_EVENT;
    case 'u':
        return SIP_HDR_ALLOW_EVENTS;
    case 'r':
        return SIP_HDR_REFER_TO;
    case 'b':
        return SIP_HDR_REFERRED_BY;
    case 's':
        return SIP_HDR_SUBJECT;
    case 'x':
        return SIP_HDR_SESSION_EXPIRES;
    case 'y':
        return SIP_HDR_IDENTITY;
    default:
        return SIP_HDR_OTHER;
    }
}

enum sip_hdr_id sip_hdr_id_from_name(struct strview name)
{
    if (name.n == 1)
        return hdr_compact(name.p[0]);
    if (name.n == 0 || name.n > HDR_MAX_NAME)
        return SIP_HDR_OTHER;
    char first = (char)(name.p[0] | 0x20);
    for (int k = 0; k < HDR_PER_LEN && hdr_by_len[name.n][k]; k++) {
        const char *cand = hdr_names[hdr_by_len[name.n][k]];
        if ((cand[0] | 0x20) == first && sip_lex_eq_nocase(name.p, cand, name.n))
            return (enum sip_hdr_id)hdr_by_len[name.n][k];
    }
    return SIP_HDR_OTHER;
}

/* --- parsing ------------------------------------------------------------- */

struct parse_ctx {
    struct sip_msg *msg;
    struct sip_parse_error *err;
    char *buf;
    size_t len;
    size_t nhdrs;
    bool have_via;
    bool have_cl;
    unsigned long long cl;
    /* The first From, To, Call-ID and CSeq: repeats must say the same. */
    const struct sip_hdr *single[4];
};

__attribute__((format(printf, 3, 4))) static int fail(struct parse_ctx *c, int status,
                                                      const char *fmt, ...)
{
    char fault[96];
    va_list ap;

    if (!c->err)
        return -EINVAL;
    va_start(ap, fmt);
    vsnprintf(fault, sizeof(fault), fmt, ap);
    va_end(ap);
    switch (status) {
    case 505:
        snprintf(c->err->reason, sizeof(c->err->reason), "Version Not Supported (%s)", fault);
        break;
    case 513:
        snprintf(c->err->reason, sizeof(c->err->reason), "Message Too Large (%s)", fault);
        break;
    case 416:
        snprintf(c->err->reason, sizeof(c->err->reason), "Unsupported URI Scheme (%s)", fault);
        break;
    default:
        snprintf(c->err->reason, sizeof(c->err->reason), "Bad Request (%s)", fault);
        break;
    }
    /* Nobody answers a response: a broken one is dropped. */
    c->err->status = c->msg && !c->msg->is_request ? 0 : status;
    return -EINVAL;
}

static bool is_sip_version(struct strview v)
{
    return v.n == 7 && sip_lex_eq_nocase(v.p, "SIP/2.0", 7);
}

/* "SIP/" 1*DIGIT "." 1*DIGIT: a version we could name but do not speak. */
static bool is_other_version(struct strview v)
{
    size_t i = 4, d;

    if (v.n < 7 || !sip_lex_eq_nocase(v.p, "SIP/", 4))
        return false;
    d = sip_lex_span(v, i, SIP_C_DIGIT);
    if (d == i || d >= v.n || v.p[d] != '.')
        return false;
    i = d + 1;
    d = sip_lex_span(v, i, SIP_C_DIGIT);
    return d > i && d == v.n;
}

static int parse_status_line(struct parse_ctx *c, struct strview line)
{
    struct sip_msg *msg = c->msg;
    const char *sp = memchr(line.p, ' ', line.n);

    msg->is_request = false;
    if (!sp)
        return fail(c, 400, "malformed status line");
    struct strview version = strview_make(line.p, (size_t)(sp - line.p));
    if (!is_sip_version(version))
        return fail(c, 505, "SIP version");
    size_t i = version.n + 1, d = sip_lex_span(line, i, SIP_C_DIGIT);
    if (d - i != 3 || (d < line.n && line.p[d] != ' '))
        return fail(c, 400, "malformed status code");
    msg->status = (line.p[i] - '0') * 100 + (line.p[i + 1] - '0') * 10 + (line.p[i + 2] - '0');
    if (msg->status < 100 || msg->status > 699)
        return fail(c, 400, "status code out of range");
    msg->reason =
        d < line.n ? strview_make(line.p + d + 1, line.n - d - 1) : strview_make(line.p + d, 0);
    for (size_t k = 0; k < msg->reason.n; k++) {
        unsigned char ch = (unsigned char)msg->reason.p[k];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return fail(c, 400, "control character in reason phrase");
    }
    if (12 + msg->reason.n > SIP_MAX_HEADER_LINE)
        return fail(c, 513, "status line too long");
    return 0;
}

static int parse_request_line(struct parse_ctx *c, struct strview line)
{
    struct sip_msg *msg = c->msg;
    const char *sp1 = memchr(line.p, ' ', line.n);
    const char *sp2 = memrchr(line.p, ' ', line.n);

    msg->is_request = true;
    if (!sp1 || sp1 == sp2)
        return fail(c, 400, "malformed request line");
    msg->method_name = strview_make(line.p, (size_t)(sp1 - line.p));
    if (!sip_lex_is_token(msg->method_name))
        return fail(c, 400, "malformed method");
    msg->method = sip_method_from_view(msg->method_name);
    struct strview version = strview_make(sp2 + 1, (size_t)(line.p + line.n - sp2 - 1));
    if (!is_sip_version(version)) {
        if (is_other_version(version))
            return fail(c, 505, "SIP version");
        return fail(c, 400, "malformed request line");
    }
    msg->request_uri = strview_make(sp1 + 1, (size_t)(sp2 - sp1 - 1));
    if (msg->method_name.n + msg->request_uri.n + 9 > SIP_MAX_HEADER_LINE)
        return fail(c, 513, "request line too long");
    int rc = sip_uri_parse(msg->request_uri, &msg->ruri);
    if (rc == -EPROTONOSUPPORT)
        return fail(c, 416, "Request-URI scheme");
    if (rc)
        return fail(c, 400, "malformed Request-URI");
    if (msg->ruri.headers.n)
        return fail(c, 400, "headers in Request-URI");
    return 0;
}

static int check_via_value(struct parse_ctx *c, struct strview value)
{
    size_t pos = 0;
    struct strview elem;
    struct sip_via via;
    bool any = false;

    while (sip_lex_split_next(value, &pos, &elem)) {
        if (elem.n == 0 || sip_via_parse(elem, &via))
            return fail(c, 400, "malformed Via");
        /* The bare magic cookie carries no transaction identifier
         * (the "badbranch" case of RFC 4475). */
        if (!c->have_via && strview_eq(via.branch, "z9hG4bK"))
            return fail(c, 400, "empty Via branch");
        c->have_via = true;
        any = true;
    }
    if (!any)
        return fail(c, 400, "empty Via");
    return 0;
}

static int check_addr(struct parse_ctx *c, const struct sip_hdr *h)
{
    struct sip_addr addr;

    if (sip_addr_parse(h->value, &addr) || addr.wildcard)
        return fail(c, 400, "malformed %s", sip_hdr_name(h->id));
    return 0;
}

static int check_contact(struct parse_ctx *c, struct strview value)
{
    size_t pos = 0, n = 0;
    struct strview elem;
    struct sip_addr addr;
    bool wildcard = false;

    while (sip_lex_split_next(value, &pos, &elem)) {
        if (elem.n == 0 || sip_addr_parse(elem, &addr))
            return fail(c, 400, "malformed Contact");
        wildcard |= addr.wildcard;
        n++;
    }
    if (n == 0 || (wildcard && n > 1))
        return fail(c, 400, "malformed Contact");
    return 0;
}

static int parse_cseq(struct parse_ctx *c, struct strview v)
{
    struct sip_msg *msg = c->msg;
    unsigned long long num;
    size_t d = sip_lex_span(v, 0, SIP_C_DIGIT);
    size_t m = sip_lex_skip_wsp(v, d);

    if (d == 0 || m == d || m >= v.n)
        return fail(c, 400, "malformed CSeq");
    if (strview_to_u64(strview_make(v.p, d), 0xffffffffULL, &num))
        return fail(c, 400, "CSeq number out of range");
    msg->cseq_num = (uint32_t)num;
    msg->cseq_method_name = strview_make(v.p + m, v.n - m);
    if (!sip_lex_is_token(msg->cseq_method_name))
        return fail(c, 400, "malformed CSeq method");
    msg->cseq_method = sip_method_from_view(msg->cseq_method_name);
    return 0;
}

static int parse_content_type(struct parse_ctx *c, struct strview v)
{
    int rc = sip_msg_media_type(c->msg, v, &c->msg->content_type);
    if (rc == -EINVAL)
        return fail(c, 400, "malformed Content-Type");
    return rc;
}

/* rfc1123-date, which RFC 3261 §20.17 pins to GMT. */
static bool is_sip_date(struct strview v)
{
    static const char pattern[] = "aaa, dd aaa dddd dd:dd:dd GMT";

    if (v.n != sizeof(pattern) - 1)
        return false;
    for (size_t i = 0; i < v.n; i++) {
        unsigned char ch = (unsigned char)v.p[i];
        if (pattern[i] == 'a'   ? !sip_lex_is(ch, SIP_C_ALPHA)
            : pattern[i] == 'd' ? !sip_lex_is(ch, SIP_C_DIGIT)
                                : ch != (unsigned char)pattern[i])
            return false;
    }
    return true;
}

static int single_slot(enum sip_hdr_id id)
{
    switch (id) {
    case SIP_HDR_FROM:
        return 0;
    case SIP_HDR_TO:
        return 1;
    case SIP_HDR_CALL_ID:
        return 2;
    case SIP_HDR_CSEQ:
        return 3;
    default:
        return -1;
    }
}

static int check_header(struct parse_ctx *c, struct sip_hdr *h)
{
    struct sip_msg *msg = c->msg;
    unsigned long long num;
    struct strview v = h->value;

    int slot = single_slot(h->id);
    if (slot >= 0) {
        if (c->single[slot]) {
            /* A repeat is harmless only when it says the same thing. */
            if (!strview_eq_view(c->single[slot]->value, v))
                return fail(c, 400, "conflicting %s headers", sip_hdr_name(h->id));
            return 0;
        }
        c->single[slot] = h;
    }

    switch (h->id) {
    case SIP_HDR_VIA:
        return check_via_value(c, v);
    case SIP_HDR_FROM:
    case SIP_HDR_TO:
        return check_addr(c, h);
    case SIP_HDR_CONTACT:
        return check_contact(c, v);
    case SIP_HDR_CALL_ID: {
        /* word [ "@" word ] */
        size_t w = sip_lex_span(v, 0, SIP_C_WORD);
        if (w == 0 || (w < v.n && (v.p[w] != '@' || w + 1 >= v.n ||
                                   sip_lex_span(v, w + 1, SIP_C_WORD) != v.n)))
            return fail(c, 400, "malformed Call-ID");
        msg->call_id = v;
        return 0;
    }
    case SIP_HDR_CSEQ:
        return parse_cseq(c, v);
    case SIP_HDR_MAX_FORWARDS:
        /* Numbers repeat as numbers: "070" says what "70" says. */
        if (strview_to_u64(v, 255, &num))
            return fail(c, 400, "Max-Forwards not 0-255");
        if (msg->max_forwards >= 0 && msg->max_forwards != (int)num)
            return fail(c, 400, "conflicting Max-Forwards headers");
        msg->max_forwards = (int)num;
        return 0;
    case SIP_HDR_CONTENT_LENGTH:
        if (strview_to_u64(v, ~0ULL, &num))
            return fail(c, 400, "malformed Content-Length");
        if (c->have_cl && c->cl != num)
            return fail(c, 400, "conflicting Content-Length headers");
        c->have_cl = true;
        c->cl = num;
        return 0;
    case SIP_HDR_CONTENT_TYPE:
        if (msg->content_type.n)
            return 0;
        return parse_content_type(c, v);
    case SIP_HDR_EXPIRES:
        if (strview_to_u64(v, 0xffffffffULL, &num))
            return fail(c, 400, "malformed Expires");
        if (msg->expires < 0)
            msg->expires = (long long)num;
        return 0;
    case SIP_HDR_DATE:
        if (!is_sip_date(v))
            return fail(c, 400, "malformed Date");
        return 0;
    default:
        return 0;
    }
}

/* True when one of 8 bytes is a control (HTAB included: it only sends the
 * scan to the byte loop), DEL or '\'. Bytes >= 0x80 never match. */
static inline bool swar_stop(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    uint64_t del = x ^ (ones * 0x7f), bs = x ^ (ones * '\\');
    return (((x - ones * 0x20) & ~x) | ((del - ones) & ~del) | ((bs - ones) & ~bs)) & high;
}

/* Index of the first byte at or after p that the value scan must look at
 * (SIP_C_VSTOP), or len: eight bytes at a time while nothing is there. */
static inline size_t skip_plain(const char *buf, size_t p, size_t len)
{
    while (len - p >= 8) {
        uint64_t x;
        memcpy(&x, buf + p, 8);
        if (swar_stop(x))
            break;
        p += 8;
    }
    while (p < len && !sip_lex_is((unsigned char)buf[p], SIP_C_VSTOP))
        p++;
    return p;
}

/*
 * One header field starting at *pos (not an empty line, not a
 * continuation). Unfolds continuation lines in place: the value's bytes
 * only ever move left, over line ends and the indentation they replace.
 */
static int parse_header(struct parse_ctx *c, size_t *pos)
{
    char *buf = c->buf;
    size_t len = c->len, p = *pos;
    size_t ns = p;

    while (p < len && sip_lex_is((unsigned char)buf[p], SIP_C_TOKEN))
        p++;
    size_t ne = p;
    while (p < len && sip_lex_is_wsp(buf[p]))
        p++;
    if (ne == ns || p >= len || buf[p] != ':')
        return fail(c, 400, "malformed header line");
    p++;

    size_t vs = 0, w = 0;
    bool started = false;
    for (;;) {
        while (p < len && sip_lex_is_wsp(buf[p]))
            p++;
        size_t seg = p;
        for (;;) {
            p = skip_plain(buf, p, len);
            if (p >= len || buf[p] == '\r' || buf[p] == '\n')
                break;
            if (buf[p] == '\\') {
                /* A quoted-pair may escape any control but CR and LF. */
                p++;
                if (p < len && buf[p] != '\r' && buf[p] != '\n')
                    p++;
                continue;
            }
            return fail(c, 400, "control character in header");
        }
        size_t seg_end = p;
        while (seg_end > seg && sip_lex_is_wsp(buf[seg_end - 1]))
            seg_end--;
        if (p >= len)
            return fail(c, 400, "no empty line after headers");
        if (buf[p] == '\r') {
            if (p + 1 >= len || buf[p + 1] != '\n')
                return fail(c, 400, "bare CR");
            p += 2;
        } else {
            p++;
        }
        if (seg_end > seg) {
            if (!started) {
                vs = seg;
                w = seg_end;
                started = true;
            } else {
                buf[w++] = ' ';
                memmove(buf + w, buf + seg, seg_end - seg);
                w += seg_end - seg;
            }
        }
        if (p < len && sip_lex_is_wsp(buf[p]))
            continue;
        break;
    }

    struct strview name = strview_make(buf + ns, ne - ns);
    struct strview value = started ? strview_make(buf + vs, w - vs) : strview_make(buf + p, 0);
    if (name.n + value.n > SIP_MAX_HEADER_LINE)
        return fail(c, 513, "header too long");
    enum sip_hdr_id id = sip_hdr_id_from_name(name);
    /* Content-Length does not count: print writes exactly one, present or
     * not, and what parsed must print as something that parses. */
    if (id != SIP_HDR_CONTENT_LENGTH && ++c->nhdrs > SIP_MAX_HEADERS)
        return fail(c, 513, "too many headers");

    struct sip_hdr *h = sip_msg_alloc(c->msg, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->id = id;
    h->name = name;
    h->value = value;
    h->next = NULL;
    h->removed = false;
    struct sip_msg_priv *priv = sip_msg_priv(c->msg);
    if (priv->tail)
        priv->tail->next = h;
    else
        c->msg->hdrs = h;
    priv->tail = h;
    *pos = p;
    return check_header(c, h);
}

static int parse_all(struct parse_ctx *c)
{
    struct sip_msg *msg = c->msg;
    char *buf = c->buf;
    size_t len = c->len, p = 0;
    int rc;

    /* CRLFs before the start line are keep-alive leftovers (§7.5). */
    while (p < len && (buf[p] == '\r' || buf[p] == '\n'))
        p++;
    if (p >= len)
        return fail(c, 0, "empty message");
    const char *nl = memchr(buf + p, '\n', len - p);
    if (!nl)
        return fail(c, 0, "no end of start line");
    size_t le = (size_t)(nl - buf);
    struct strview line = strview_make(buf + p, le - p);
    if (line.n && line.p[line.n - 1] == '\r')
        line.n--;
    if (line.n >= 4 && sip_lex_eq_nocase(line.p, "SIP/", 4))
        rc = parse_status_line(c, line);
    else
        rc = parse_request_line(c, line);
    if (rc)
        return rc;
    p = le + 1;

    for (;;) {
        if (p >= len)
            return fail(c, 400, "no empty line after headers");
        if (buf[p] == '\n') {
            p++;
            break;
        }
        if (buf[p] == '\r') {
            if (p + 1 < len && buf[p + 1] == '\n') {
                p += 2;
                break;
            }
            return fail(c, 400, "bare CR");
        }
        if (sip_lex_is_wsp(buf[p]))
            return fail(c, 400, "continuation line without header");
        if ((rc = parse_header(c, &p)))
            return rc;
    }
    msg->body = strview_make(buf + p, len - p);

    if (!c->have_via)
        return fail(c, 400, "missing Via");
    if (!c->single[single_slot(SIP_HDR_FROM)])
        return fail(c, 400, "missing From");
    if (!c->single[single_slot(SIP_HDR_TO)])
        return fail(c, 400, "missing To");
    if (!c->single[single_slot(SIP_HDR_CALL_ID)])
        return fail(c, 400, "missing Call-ID");
    if (!c->single[single_slot(SIP_HDR_CSEQ)])
        return fail(c, 400, "missing CSeq");
    if (msg->is_request && !strview_eq_view(msg->cseq_method_name, msg->method_name))
        return fail(c, 400, "CSeq method does not match");
    if (c->have_cl && c->cl != msg->body.n)
        return fail(c, 400, "Content-Length does not match body");
    return 0;
}

int sip_msg_parse(const char *data, size_t len, struct sip_msg **out, struct sip_parse_error *err)
{
    struct parse_ctx c;
    int rc;

    *out = NULL;
    if (err) {
        err->status = 0;
        err->reason[0] = '\0';
    }
    memset(&c, 0, sizeof(c));
    c.err = err;
    if (!data || len == 0)
        return fail(&c, 0, "empty message");
    c.msg = sip_msg_new(data, len);
    if (!c.msg) {
        if (err)
            snprintf(err->reason, sizeof(err->reason), "out of memory");
        return -ENOMEM;
    }
    c.buf = c.msg->buf_;
    c.len = len;
    c.msg->max_forwards = -1;
    c.msg->expires = -1;
    rc = parse_all(&c);
    if (rc) {
        if (rc == -ENOMEM && err) {
            err->status = 0;
            snprintf(err->reason, sizeof(err->reason), "out of memory");
        }
        sip_msg_free(c.msg);
        return rc;
    }
    *out = c.msg;
    return 0;
}

/* --- reading -------------------------------------------------------------- */

struct sip_hdr *sip_msg_hdr_next(const struct sip_hdr *h, enum sip_hdr_id id)
{
    for (h = h ? h->next : NULL; h; h = h->next)
        if (h->id == id && !h->removed)
            return (struct sip_hdr *)h;
    return NULL;
}

struct sip_hdr *sip_msg_hdr_first(const struct sip_msg *msg, enum sip_hdr_id id)
{
    for (struct sip_hdr *h = msg->hdrs; h; h = h->next)
        if (h->id == id && !h->removed)
            return h;
    return NULL;
}

struct sip_hdr *sip_msg_hdr_find_name(const struct sip_msg *msg, const char *name)
{
    struct strview n = strview_cstr(name);
    enum sip_hdr_id id = sip_hdr_id_from_name(n);

    if (id != SIP_HDR_OTHER)
        return sip_msg_hdr_first(msg, id);
    for (struct sip_hdr *h = msg->hdrs; h; h = h->next)
        if (h->id == SIP_HDR_OTHER && !h->removed && strview_eq_view_nocase(h->name, n))
            return h;
    return NULL;
}

size_t sip_msg_hdr_count(const struct sip_msg *msg, enum sip_hdr_id id)
{
    size_t n = 0;
    for (const struct sip_hdr *h = sip_msg_hdr_first(msg, id); h; h = sip_msg_hdr_next(h, id))
        n++;
    return n;
}

void sip_value_iter_init(struct sip_value_iter *it, const struct sip_msg *msg, enum sip_hdr_id id)
{
    it->id = id;
    it->hdr = sip_msg_hdr_first(msg, id);
    it->pos = 0;
}

bool sip_value_iter_next(struct sip_value_iter *it, struct strview *value)
{
    while (it->hdr) {
        struct strview elem;
        while (sip_lex_split_next(it->hdr->value, &it->pos, &elem)) {
            if (elem.n) {
                *value = elem;
                return true;
            }
        }
        it->hdr = sip_msg_hdr_next(it->hdr, it->id);
        it->pos = 0;
    }
    return false;
}

void sip_split_commas(struct strview value, bool (*fn)(struct strview elem, void *arg), void *arg)
{
    size_t pos = 0;
    struct strview elem;

    while (sip_lex_split_next(value, &pos, &elem))
        if (elem.n && !fn(elem, arg))
            return;
}
