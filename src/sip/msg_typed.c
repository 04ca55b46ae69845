/*
 * Typed header values: Via, name-addr / addr-spec, parameter lists.
 * Everything here returns views into the value it was given.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "sip/lex.h"
#include "sip/msg.h"

bool sip_param_find(struct strview params, const char *name, struct strview *value)
{
    return sip_lex_param_find(params, name, value);
}

/* Checks a header parameter list and returns the value of `want` (the
 * first one). */
static int params_check(struct strview s, const char *want, struct strview *found)
{
    size_t pos = 0;
    struct strview name, value;
    int rc;

    while ((rc = sip_lex_param_next(s, &pos, &name, &value)) > 0) {
        if (want && found && !found->p && strview_eq_nocase(name, want))
            *found = value;
    }
    return rc;
}

int sip_via_parse(struct strview value, struct sip_via *out)
{
    struct strview s = strview_trim(value);
    size_t i, t;

    memset(out, 0, sizeof(*out));
    /* sent-protocol: name SLASH version SLASH transport, SLASH = SWS "/" SWS */
    size_t name_end = sip_lex_span(s, 0, SIP_C_TOKEN);
    i = sip_lex_skip_wsp(s, name_end);
    if (name_end == 0 || i >= s.n || s.p[i] != '/')
        return -EINVAL;
    size_t vs = sip_lex_skip_wsp(s, i + 1);
    size_t ve = sip_lex_span(s, vs, SIP_C_TOKEN);
    i = sip_lex_skip_wsp(s, ve);
    if (ve == vs || i >= s.n || s.p[i] != '/')
        return -EINVAL;
    size_t ts = sip_lex_skip_wsp(s, i + 1);
    t = sip_lex_span(s, ts, SIP_C_TOKEN);
    if (t == ts)
        return -EINVAL;
    if (strview_eq_nocase(strview_make(s.p, name_end), "SIP") &&
        strview_eq(strview_make(s.p + vs, ve - vs), "2.0"))
        out->protocol = strview_cstr("SIP/2.0");
    else
        out->protocol = strview_make(s.p, ve);
    out->transport = strview_make(s.p + ts, t - ts);

    /* LWS sent-by */
    i = sip_lex_skip_wsp(s, t);
    if (i == t || i >= s.n)
        return -EINVAL;
    if (s.p[i] == '[') {
        const char *close = memchr(s.p + i, ']', s.n - i);
        char tmp[INET6_ADDRSTRLEN];
        unsigned char bin[16];
        if (!close)
            return -EINVAL;
        size_t n = (size_t)(close - (s.p + i + 1));
        if (n == 0 || strview_copy(strview_make(s.p + i + 1, n), tmp, sizeof(tmp)) ||
            inet_pton(AF_INET6, tmp, bin) != 1)
            return -EINVAL;
        out->host = strview_make(s.p + i + 1, n);
        i += n + 2;
    } else {
        size_t hs = i;
        i = sip_lex_span(s, i, SIP_C_HOST);
        if (i == hs)
            return -EINVAL;
        out->host = strview_make(s.p + hs, i - hs);
    }
    size_t j = sip_lex_skip_wsp(s, i);
    if (j < s.n && s.p[j] == ':') {
        size_t ps = sip_lex_skip_wsp(s, j + 1);
        size_t pe = sip_lex_span(s, ps, SIP_C_DIGIT);
        unsigned long long port;
        if (pe == ps || strview_to_u64(strview_make(s.p + ps, pe - ps), 65535, &port) || port == 0)
            return -EINVAL;
        out->port = (uint16_t)port;
        i = pe;
    }
    out->params = strview_trim(strview_make(s.p + i, s.n - i));
    if (params_check(out->params, "branch", &out->branch) < 0)
        return -EINVAL;
    return 0;
}

static bool display_char(unsigned char c)
{
    /* token and LWS per RFC 3261; raw UTF-8 too, which some phones send
     * unquoted. */
    return sip_lex_is(c, SIP_C_TOKEN | SIP_C_WSP) || c >= 0x80;
}

int sip_addr_parse(struct strview value, struct sip_addr *out)
{
    struct strview s = strview_trim(value);
    size_t i = 0;

    memset(out, 0, sizeof(*out));
    if (s.n == 0)
        return -EINVAL;
    if (s.n == 1 && s.p[0] == '*') {
        out->wildcard = true;
        return 0;
    }
    if (s.p[0] == '"') {
        size_t e = sip_lex_quoted_end(s, 0);
        if (e > s.n)
            return -EINVAL;
        out->display = strview_make(s.p + 1, e - 2);
        i = sip_lex_skip_wsp(s, e);
        if (i >= s.n || s.p[i] != '<')
            return -EINVAL;
    } else {
        while (i < s.n && display_char((unsigned char)s.p[i]))
            i++;
        if (i < s.n && s.p[i] == '<')
            out->display = strview_trim(strview_make(s.p, i));
        else
            i = 0;
    }

    if (i < s.n && s.p[i] == '<') {
        const char *close = memchr(s.p + i + 1, '>', s.n - i - 1);
        if (!close)
            return -EINVAL;
        out->uri_text = strview_make(s.p + i + 1, (size_t)(close - (s.p + i + 1)));
        i = (size_t)(close - s.p) + 1;
    } else {
        /* addr-spec: its parameters belong to the header, so a URI with
         * ';', '?' or ',' of its own needs <> (RFC 3261 §20). */
        while (i < s.n && s.p[i] != ';' && !sip_lex_is_wsp(s.p[i]))
            i++;
        out->uri_text = strview_make(s.p, i);
        if (memchr(out->uri_text.p, '?', out->uri_text.n) ||
            memchr(out->uri_text.p, ',', out->uri_text.n))
            return -EINVAL;
    }
    int rc = sip_uri_parse(out->uri_text, &out->uri);
    if (rc == -EPROTONOSUPPORT)
        memset(&out->uri, 0, sizeof(out->uri)); /* another scheme: text only */
    else if (rc)
        return -EINVAL;
    out->params = strview_trim(strview_make(s.p + i, s.n - i));
    if (params_check(out->params, "tag", &out->tag) < 0)
        return -EINVAL;
    return 0;
}

int sip_msg_from(const struct sip_msg *msg, struct sip_addr *out)
{
    const struct sip_hdr *h = sip_msg_hdr_first(msg, SIP_HDR_FROM);
    if (!h)
        return -EINVAL;
    return sip_addr_parse(h->value, out);
}

int sip_msg_to(const struct sip_msg *msg, struct sip_addr *out)
{
    const struct sip_hdr *h = sip_msg_hdr_first(msg, SIP_HDR_TO);
    if (!h)
        return -EINVAL;
    return sip_addr_parse(h->value, out);
}

int sip_msg_top_via(const struct sip_msg *msg, struct sip_via *out)
{
    struct sip_value_iter it;
    struct strview v;

    sip_value_iter_init(&it, msg, SIP_HDR_VIA);
    if (!sip_value_iter_next(&it, &v))
        return -EINVAL;
    return sip_via_parse(v, out);
}
