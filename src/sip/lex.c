#include "sip/lex.h"

#include <errno.h>

uint16_t sip_lex_class[256];

static void lex_mark(const char *chars, unsigned cls)
{
    for (const unsigned char *c = (const unsigned char *)chars; *c; c++)
        sip_lex_class[*c] |= (uint16_t)cls;
}

/* The table is written once before main() so the hot loops read a plain
 * array; spelling the classes as strings keeps them reviewable against
 * RFC 3261 §25.1. */
__attribute__((constructor)) static void lex_init(void)
{
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    static const char mark[] = "-_.!~*'()";

    lex_mark(alnum, SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER | SIP_C_PASS | SIP_C_PARAM |
                        SIP_C_HNV | SIP_C_HOST | SIP_C_WORD | SIP_C_SCHEME);
    lex_mark("-.!%*_+`'~", SIP_C_TOKEN);
    lex_mark(" \t", SIP_C_WSP);
    lex_mark("0123456789", SIP_C_DIGIT);
    lex_mark("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", SIP_C_ALPHA);
    lex_mark("0123456789abcdefABCDEF", SIP_C_HEX);
    lex_mark(mark, SIP_C_UNRESERVED | SIP_C_USER | SIP_C_PASS | SIP_C_PARAM | SIP_C_HNV);
    lex_mark("&=+$,;?/", SIP_C_USER);
    lex_mark("&=+$,", SIP_C_PASS);
    lex_mark("[]/:&+$", SIP_C_PARAM);
    lex_mark("[]/?:+$", SIP_C_HNV);
    lex_mark("-._", SIP_C_HOST);
    lex_mark("-.!%*_+`'~()<>:\\\"/[]?{}", SIP_C_WORD);
    lex_mark("+-.", SIP_C_SCHEME);
    for (unsigned c = 0; c < 32; c++)
        if (c != '\t')
            sip_lex_class[c] |= SIP_C_VSTOP;
    sip_lex_class[127] |= SIP_C_VSTOP;
    sip_lex_class['\\'] |= SIP_C_VSTOP;
    for (unsigned c = 33; c < 256; c++)
        if (c != 127 && c != ';' && c != ',' && c != '"' && c != '<' && c != '>')
            sip_lex_class[c] |= SIP_C_PVALUE;
}

bool sip_lex_is_token(struct strview s)
{
    return s.n > 0 && sip_lex_span(s, 0, SIP_C_TOKEN) == s.n;
}

size_t sip_lex_quoted_end(struct strview s, size_t i)
{
    for (i++; i < s.n; i++) {
        if (s.p[i] == '\\') {
            i++;
            continue;
        }
        if (s.p[i] == '"')
            return i + 1;
    }
    return s.n + 1;
}

bool sip_lex_split_next(struct strview s, size_t *pos, struct strview *elem)
{
    size_t i = *pos, start = *pos;
    bool in_angle = false;

    if (s.n == 0 || i > s.n)
        return false;
    while (i < s.n) {
        char c = s.p[i];
        if (c == '"') {
            i = sip_lex_quoted_end(s, i);
            continue;
        }
        if (c == '<')
            in_angle = true;
        else if (c == '>')
            in_angle = false;
        else if (c == ',' && !in_angle)
            break;
        i++;
    }
    if (i > s.n)
        i = s.n;
    *elem = strview_trim(strview_make(s.p + start, i - start));
    *pos = i + 1;
    return true;
}

int sip_lex_param_next(struct strview s, size_t *pos, struct strview *name, struct strview *value)
{
    size_t i = sip_lex_skip_wsp(s, *pos);

    if (i >= s.n) {
        *pos = i;
        return 0;
    }
    if (s.p[i] != ';')
        return -EINVAL;
    i = sip_lex_skip_wsp(s, i + 1);
    size_t ns = i;
    i = sip_lex_span(s, i, SIP_C_TOKEN);
    if (i == ns)
        return -EINVAL;
    *name = strview_make(s.p + ns, i - ns);
    *value = strview_make(s.p + i, 0);
    size_t j = sip_lex_skip_wsp(s, i);
    if (j < s.n && s.p[j] == '=') {
        j = sip_lex_skip_wsp(s, j + 1);
        size_t vs = j;
        if (j < s.n && s.p[j] == '"') {
            j = sip_lex_quoted_end(s, j);
            if (j > s.n)
                return -EINVAL;
        } else {
            j = sip_lex_span(s, j, SIP_C_PVALUE);
        }
        if (j == vs)
            return -EINVAL;
        *value = strview_make(s.p + vs, j - vs);
        i = j;
    }
    *pos = i;
    return 1;
}

bool sip_lex_eq_nocase(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x != y) {
            if (x >= 'A' && x <= 'Z')
                x = (unsigned char)(x + 32);
            if (y >= 'A' && y <= 'Z')
                y = (unsigned char)(y + 32);
            if (x != y)
                return false;
        }
    }
    return true;
}

bool sip_lex_param_find(struct strview s, const char *name, struct strview *value)
{
    size_t want = strlen(name), i = 0;

    while (i < s.n) {
        if (s.p[i] == '"') {
            i = sip_lex_quoted_end(s, i);
            continue;
        }
        if (s.p[i] != ';') {
            i++;
            continue;
        }
        size_t ns = ++i;
        while (i < s.n && s.p[i] != ';' && s.p[i] != '=')
            i++;
        struct strview n = strview_trim(strview_make(s.p + ns, i - ns));
        struct strview v = strview_make(s.p + i, 0);
        if (i < s.n && s.p[i] == '=') {
            size_t vs = ++i;
            while (i < s.n && s.p[i] != ';') {
                if (s.p[i] == '"')
                    i = sip_lex_quoted_end(s, i);
                else
                    i++;
            }
            if (i > s.n)
                i = s.n;
            v = strview_trim(strview_make(s.p + vs, i - vs));
        }
        if (n.n == want && sip_lex_eq_nocase(n.p, name, want)) {
            if (value)
                *value = v;
            return true;
        }
    }
    return false;
}

int sip_lex_media_type(struct strview v, struct strview *type, struct strview *subtype,
                       struct strview *params)
{
    size_t t = sip_lex_span(v, 0, SIP_C_TOKEN);
    size_t slash = sip_lex_skip_wsp(v, t);
    if (t == 0 || slash >= v.n || v.p[slash] != '/')
        return -EINVAL;
    size_t ss = sip_lex_skip_wsp(v, slash + 1);
    size_t se = sip_lex_span(v, ss, SIP_C_TOKEN);
    if (se == ss)
        return -EINVAL;
    *type = strview_make(v.p, t);
    *subtype = strview_make(v.p + ss, se - ss);
    *params = strview_make(v.p + se, v.n - se);
    size_t pos = 0;
    struct strview pn, pv;
    int rc;
    while ((rc = sip_lex_param_next(*params, &pos, &pn, &pv)) > 0)
        ;
    return rc < 0 ? -EINVAL : 0;
}
