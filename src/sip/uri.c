#include "sip/uri.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "sip/lex.h"

/* Index after a run of class-cls characters and %HH escapes starting at i,
 * or s.n + 1 on a broken escape. */
static size_t uri_span_esc(struct strview s, size_t i, unsigned cls)
{
    while (i < s.n) {
        unsigned char c = (unsigned char)s.p[i];
        if (c == '%') {
            if (s.n - i < 3)
                return s.n + 1;
            if (!sip_lex_is((unsigned char)s.p[i + 1], SIP_C_HEX) ||
                !sip_lex_is((unsigned char)s.p[i + 2], SIP_C_HEX))
                return s.n + 1;
            i += 3;
            continue;
        }
        if (!sip_lex_is(c, cls))
            break;
        i++;
    }
    return i;
}

/* ";name[=value]" repeated up to the end of s (URI parameters: no LWS). */
static int uri_check_params(struct strview s)
{
    size_t i = 0;

    while (i < s.n) {
        if (s.p[i] != ';')
            return -EINVAL;
        size_t ns = ++i;
        i = uri_span_esc(s, i, SIP_C_PARAM);
        if (i > s.n || i == ns)
            return -EINVAL;
        if (i < s.n && s.p[i] == '=') {
            size_t vs = ++i;
            i = uri_span_esc(s, i, SIP_C_PARAM);
            if (i > s.n || i == vs)
                return -EINVAL;
        }
    }
    return 0;
}

/* hname "=" hvalue *( "&" hname "=" hvalue ) */
static int uri_check_headers(struct strview s)
{
    size_t i = 0;

    for (;;) {
        size_t ns = i;
        i = uri_span_esc(s, i, SIP_C_HNV);
        if (i > s.n || i == ns || i >= s.n || s.p[i] != '=')
            return -EINVAL;
        i = uri_span_esc(s, i + 1, SIP_C_HNV);
        if (i > s.n)
            return -EINVAL;
        if (i == s.n)
            return 0;
        if (s.p[i] != '&')
            return -EINVAL;
        i++;
    }
}

static int uri_parse_tel(struct strview rest, struct sip_uri *out)
{
    size_t i = 0;
    bool global = rest.n > 0 && rest.p[0] == '+';
    int digits = 0;

    if (global)
        i++;
    for (; i < rest.n && rest.p[i] != ';'; i++) {
        char c = rest.p[i];
        if (c >= '0' && c <= '9') {
            digits++;
        } else if (c == '-' || c == '.' || c == '(' || c == ')') {
            continue;
        } else if (!global && (sip_lex_is((unsigned char)c, SIP_C_HEX) || c == '*' || c == '#')) {
            digits++;
        } else {
            return -EINVAL;
        }
    }
    if (digits == 0)
        return -EINVAL;
    out->user = strview_make(rest.p, i);
    out->params = strview_make(rest.p + i, rest.n - i);
    return uri_check_params(out->params);
}

static int uri_parse_host(struct strview s, size_t *pos, struct sip_uri *out)
{
    size_t i = *pos;

    if (i < s.n && s.p[i] == '[') {
        const char *close = memchr(s.p + i, ']', s.n - i);
        char tmp[INET6_ADDRSTRLEN];
        unsigned char bin[16];
        if (!close)
            return -EINVAL;
        size_t n = (size_t)(close - (s.p + i + 1));
        if (n == 0 || n >= sizeof(tmp))
            return -EINVAL;
        memcpy(tmp, s.p + i + 1, n);
        tmp[n] = '\0';
        if (inet_pton(AF_INET6, tmp, bin) != 1)
            return -EINVAL;
        out->host = strview_make(s.p + i + 1, n);
        out->host_is_ipv6 = true;
        i += n + 2;
    } else {
        size_t hs = i;
        i = sip_lex_span(s, i, SIP_C_HOST);
        if (i == hs)
            return -EINVAL;
        out->host = strview_make(s.p + hs, i - hs);
    }
    if (i < s.n && s.p[i] == ':') {
        size_t ps = ++i;
        unsigned port = 0;
        while (i < s.n && s.p[i] >= '0' && s.p[i] <= '9' && i - ps < 6)
            port = port * 10 + (unsigned)(s.p[i++] - '0');
        if (i == ps || port == 0 || port > 65535)
            return -EINVAL;
        out->port = (uint16_t)port;
    }
    *pos = i;
    return 0;
}

int sip_uri_parse(struct strview text, struct sip_uri *out)
{
    size_t i;

    memset(out, 0, sizeof(*out));
    if (text.n == 0 || !sip_lex_is((unsigned char)text.p[0], SIP_C_ALPHA))
        return -EINVAL;
    i = sip_lex_span(text, 1, SIP_C_SCHEME);
    if (i >= text.n || text.p[i] != ':')
        return -EINVAL;
    struct strview scheme = strview_make(text.p, i);
    struct strview rest = strview_make(text.p + i + 1, text.n - i - 1);

    /* Every URI form we take is printable ASCII; checking once here keeps
     * spaces and controls out of every part below. */
    if (rest.n == 0)
        return -EINVAL;
    for (size_t k = 0; k < rest.n; k++) {
        unsigned char c = (unsigned char)rest.p[k];
        if (c <= 0x20 || c >= 0x7f)
            return -EINVAL;
    }

    if (strview_eq_nocase(scheme, "sip"))
        out->scheme = SIP_URI_SIP;
    else if (strview_eq_nocase(scheme, "sips"))
        out->scheme = SIP_URI_SIPS;
    else if (strview_eq_nocase(scheme, "tel"))
        out->scheme = SIP_URI_TEL;
    else
        return -EPROTONOSUPPORT;

    if (out->scheme == SIP_URI_TEL)
        return uri_parse_tel(rest, out);

    /* The user part may hold ';' and '?' (user-unreserved) but never an
     * unescaped '@', so the first '@' ends it. */
    i = 0;
    const char *at = memchr(rest.p, '@', rest.n);
    if (at) {
        size_t ui = (size_t)(at - rest.p);
        struct strview userinfo = strview_make(rest.p, ui);
        size_t u = uri_span_esc(userinfo, 0, SIP_C_USER);
        if (u > userinfo.n || u == 0)
            return -EINVAL;
        out->user = strview_make(rest.p, u);
        if (u < userinfo.n) {
            if (userinfo.p[u] != ':')
                return -EINVAL;
            size_t pw = uri_span_esc(userinfo, u + 1, SIP_C_PASS);
            if (pw != userinfo.n)
                return -EINVAL;
            out->password = strview_make(rest.p + u + 1, pw - u - 1);
        }
        i = ui + 1;
    }
    if (uri_parse_host(rest, &i, out))
        return -EINVAL;
    size_t ps = i;
    while (i < rest.n && rest.p[i] != '?')
        i++;
    out->params = strview_make(rest.p + ps, i - ps);
    if (uri_check_params(out->params))
        return -EINVAL;
    if (i < rest.n) {
        out->headers = strview_make(rest.p + i + 1, rest.n - i - 1);
        if (uri_check_headers(out->headers))
            return -EINVAL;
    }
    return 0;
}

bool sip_uri_param(const struct sip_uri *uri, const char *name, struct strview *value)
{
    return sip_lex_param_find(uri->params, name, value);
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Next character of s from *i with %HH decoded. */
static int uri_next_char(struct strview s, size_t *i)
{
    unsigned char c = (unsigned char)s.p[*i];
    if (c == '%' && s.n - *i >= 3) {
        int h1 = hex_value(s.p[*i + 1]), h2 = hex_value(s.p[*i + 2]);
        if (h1 >= 0 && h2 >= 0) {
            *i += 3;
            return (h1 << 4) | h2;
        }
    }
    (*i)++;
    return c;
}

static int ascii_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* Compares with escapes decoded (RFC 3261 §19.1.4: "%61lice" is "alice"). */
static bool uri_eq_esc(struct strview a, struct strview b, bool nocase)
{
    size_t i = 0, j = 0;

    while (i < a.n && j < b.n) {
        int x = uri_next_char(a, &i), y = uri_next_char(b, &j);
        if (nocase) {
            x = ascii_lower(x);
            y = ascii_lower(y);
        }
        if (x != y)
            return false;
    }
    return i == a.n && j == b.n;
}

struct uri_kv {
    struct strview name, value;
    bool has_value;
};

/* Next element of a URI parameter (sep ';', leading sep) or header (sep
 * '&', no leading sep) list. */
static bool uri_kv_next(struct strview s, size_t *pos, char sep, struct uri_kv *kv)
{
    size_t i = *pos;

    if (i < s.n && s.p[i] == sep)
        i++;
    if (i >= s.n)
        return false;
    size_t ns = i;
    while (i < s.n && s.p[i] != sep && s.p[i] != '=')
        i++;
    kv->name = strview_make(s.p + ns, i - ns);
    kv->value = strview_make(s.p + i, 0);
    kv->has_value = false;
    if (i < s.n && s.p[i] == '=') {
        size_t vs = ++i;
        while (i < s.n && s.p[i] != sep)
            i++;
        kv->value = strview_make(s.p + vs, i - vs);
        kv->has_value = true;
    }
    *pos = i;
    return true;
}

static bool uri_kv_find(struct strview s, char sep, struct strview name, struct uri_kv *out)
{
    size_t pos = 0;
    struct uri_kv kv;

    while (uri_kv_next(s, &pos, sep, &kv)) {
        if (uri_eq_esc(kv.name, name, true)) {
            *out = kv;
            return true;
        }
    }
    return false;
}

/* Only the first of a repeated name counts, on both sides, so that the
 * comparison stays an equivalence however odd the input. */
static bool uri_kv_first(struct strview s, char sep, const struct uri_kv *kv)
{
    struct uri_kv first;
    return uri_kv_find(s, sep, kv->name, &first) && first.name.p == kv->name.p;
}

static bool uri_param_must_match(struct strview name)
{
    static const char *const must[] = {"transport", "user", "ttl", "method", "maddr"};
    for (size_t k = 0; k < sizeof(must) / sizeof(must[0]); k++)
        if (uri_eq_esc(name, strview_cstr(must[k]), true))
            return true;
    return false;
}

/* Lookups below are linear, so comparing two lists is quadratic: past
 * this many elements, only byte-identical lists compare equal. */
#define URI_CMP_MAX_ELEMS 64

static size_t uri_kv_count(struct strview s, char sep)
{
    size_t pos = 0, n = 0;
    struct uri_kv kv;
    while (uri_kv_next(s, &pos, sep, &kv))
        n++;
    return n;
}

/* 1: equal bytes, 0: too long to compare, -1: compare element-wise. */
static int uri_lists_quick(struct strview a, struct strview b, char sep)
{
    if (a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0))
        return 1;
    if (uri_kv_count(a, sep) > URI_CMP_MAX_ELEMS || uri_kv_count(b, sep) > URI_CMP_MAX_ELEMS)
        return 0;
    return -1;
}

/* Parameters present in both must agree; the RFC 3261 §19.1.4 ones (or,
 * with all_required, every one) must also be present in both. */
static bool uri_params_match(struct strview a, struct strview b, bool all_required)
{
    size_t pos = 0;
    struct uri_kv kv, other;
    int quick = uri_lists_quick(a, b, ';');

    if (quick >= 0)
        return quick;

    while (uri_kv_next(a, &pos, ';', &kv)) {
        if (!uri_kv_first(a, ';', &kv))
            continue;
        if (uri_kv_find(b, ';', kv.name, &other)) {
            if (!uri_eq_esc(kv.value, other.value, true) || kv.has_value != other.has_value)
                return false;
        } else if (all_required || uri_param_must_match(kv.name)) {
            return false;
        }
    }
    pos = 0;
    while (uri_kv_next(b, &pos, ';', &kv)) {
        if (!uri_kv_find(a, ';', kv.name, &other) &&
            (all_required || uri_param_must_match(kv.name)))
            return false;
    }
    return true;
}

/* The same set of header names with the same values. */
static bool uri_headers_match(struct strview a, struct strview b)
{
    size_t pos = 0;
    struct uri_kv kv, other;
    int quick = uri_lists_quick(a, b, '&');

    if (quick >= 0)
        return quick;

    while (uri_kv_next(a, &pos, '&', &kv)) {
        if (!uri_kv_first(a, '&', &kv))
            continue;
        if (!uri_kv_find(b, '&', kv.name, &other) || !uri_eq_esc(kv.value, other.value, false))
            return false;
    }
    pos = 0;
    while (uri_kv_next(b, &pos, '&', &kv))
        if (!uri_kv_find(a, '&', kv.name, &other))
            return false;
    return true;
}

static bool tel_number_eq(struct strview a, struct strview b)
{
    size_t i = 0, j = 0;

    for (;;) {
        while (i < a.n && strchr("-.()", a.p[i]))
            i++;
        while (j < b.n && strchr("-.()", b.p[j]))
            j++;
        if (i == a.n || j == b.n)
            return i == a.n && j == b.n;
        if (ascii_lower((unsigned char)a.p[i]) != ascii_lower((unsigned char)b.p[j]))
            return false;
        i++;
        j++;
    }
}

static bool uri_host_eq(const struct sip_uri *a, const struct sip_uri *b)
{
    if (a->host_is_ipv6 != b->host_is_ipv6)
        return false;
    if (a->host_is_ipv6) {
        char ta[INET6_ADDRSTRLEN], tb[INET6_ADDRSTRLEN];
        unsigned char ba[16], bb[16];
        if (strview_copy(a->host, ta, sizeof(ta)) || strview_copy(b->host, tb, sizeof(tb)))
            return false;
        if (inet_pton(AF_INET6, ta, ba) != 1 || inet_pton(AF_INET6, tb, bb) != 1)
            return false;
        return memcmp(ba, bb, sizeof(ba)) == 0;
    }
    return a->host.n == b->host.n && sip_lex_eq_nocase(a->host.p, b->host.p, a->host.n);
}

bool sip_uri_equal(const struct sip_uri *a, const struct sip_uri *b)
{
    if (a->scheme == 0 || a->scheme != b->scheme)
        return false;
    if (a->scheme == SIP_URI_TEL)
        return tel_number_eq(a->user, b->user) && uri_params_match(a->params, b->params, true);
    return uri_eq_esc(a->user, b->user, false) && uri_eq_esc(a->password, b->password, false) &&
           uri_host_eq(a, b) && a->port == b->port &&
           uri_params_match(a->params, b->params, false) &&
           uri_headers_match(a->headers, b->headers);
}

void sip_uri_print(const struct sip_uri *uri, struct strbuf *out)
{
    switch (uri->scheme) {
    case SIP_URI_SIP:
        strbuf_puts(out, "sip:");
        break;
    case SIP_URI_SIPS:
        strbuf_puts(out, "sips:");
        break;
    case SIP_URI_TEL:
        strbuf_puts(out, "tel:");
        strbuf_putview(out, uri->user);
        strbuf_putview(out, uri->params);
        return;
    default:
        return;
    }
    if (uri->user.n) {
        strbuf_putview(out, uri->user);
        if (uri->password.n) {
            strbuf_putc(out, ':');
            strbuf_putview(out, uri->password);
        }
        strbuf_putc(out, '@');
    }
    if (uri->host_is_ipv6) {
        strbuf_putc(out, '[');
        strbuf_putview(out, uri->host);
        strbuf_putc(out, ']');
    } else {
        strbuf_putview(out, uri->host);
    }
    if (uri->port)
        strbuf_printf(out, ":%u", (unsigned)uri->port);
    strbuf_putview(out, uri->params);
}
