#include "xml/xml.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Namespace declarations in scope, as a stack. */
struct xml_nsdecl {
    struct strview prefix; /* "" for the default namespace */
    struct strview uri;
};

#define XML_MAX_NSDECLS 128

struct xml_doc {
    struct xml_node *nodes;
    size_t nnodes;
    struct xml_attr *attrs;
    size_t nattrs;
    struct xml_node *root;
    size_t cap; /* nodes and attributes allocated */
};

struct xml_parser {
    const char *p, *end;
    struct xml_doc *doc;
    struct xml_nsdecl ns[XML_MAX_NSDECLS];
    size_t nns;
    char *err;
    size_t errlen;
};

static const char xml_ns_xml[] = "http://www.w3.org/XML/1998/namespace";

static int xml_fail(struct xml_parser *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int xml_fail(struct xml_parser *x, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->err, x->errlen, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static bool xml_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool xml_name_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static bool xml_name_char(unsigned char c)
{
    return xml_name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == ':';
}

static void xml_skip_space(struct xml_parser *x)
{
    while (x->p < x->end && xml_is_space(*x->p))
        x->p++;
}

static bool xml_starts(struct xml_parser *x, const char *s)
{
    size_t n = strlen(s);
    return (size_t)(x->end - x->p) >= n && memcmp(x->p, s, n) == 0;
}

/* Skips past `term`; fails when it never comes. */
static int xml_skip_to(struct xml_parser *x, const char *term, const char *what)
{
    size_t n = strlen(term);
    while ((size_t)(x->end - x->p) >= n) {
        if (memcmp(x->p, term, n) == 0) {
            x->p += n;
            return 0;
        }
        x->p++;
    }
    return xml_fail(x, "unterminated %s", what);
}

static int xml_name(struct xml_parser *x, struct strview *out)
{
    const char *s = x->p;
    if (x->p >= x->end || !xml_name_start((unsigned char)*x->p))
        return xml_fail(x, "a name was expected");
    while (x->p < x->end && xml_name_char((unsigned char)*x->p))
        x->p++;
    *out = strview_make(s, (size_t)(x->p - s));
    return 0;
}

/* Checks character data or an attribute value: entity and character
 * references must be well formed, and no raw '<' (or '&' alone). */
static int xml_check_text(struct xml_parser *x, struct strview v, bool attr)
{
    for (size_t i = 0; i < v.n; i++) {
        unsigned char c = (unsigned char)v.p[i];
        if (c == '<' && attr)
            return xml_fail(x, "'<' in an attribute value");
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
            return xml_fail(x, "control character in text");
        if (c != '&')
            continue;
        const char *semi = memchr(v.p + i, ';', v.n - i);
        if (!semi || semi - (v.p + i) > 12)
            return xml_fail(x, "malformed entity reference");
        struct strview ref = strview_make(v.p + i + 1, (size_t)(semi - (v.p + i + 1)));
        if (strview_eq(ref, "lt") || strview_eq(ref, "gt") || strview_eq(ref, "amp") ||
            strview_eq(ref, "quot") || strview_eq(ref, "apos")) {
            /* predefined */
        } else if (ref.n >= 2 && ref.p[0] == '#') {
            bool hex = ref.p[1] == 'x';
            size_t start = hex ? 2 : 1;
            if (ref.n == start)
                return xml_fail(x, "empty character reference");
            unsigned long cp = 0;
            for (size_t k = start; k < ref.n; k++) {
                char d = ref.p[k];
                unsigned digit;
                if (d >= '0' && d <= '9')
                    digit = (unsigned)(d - '0');
                else if (hex && d >= 'a' && d <= 'f')
                    digit = (unsigned)(d - 'a' + 10);
                else if (hex && d >= 'A' && d <= 'F')
                    digit = (unsigned)(d - 'A' + 10);
                else
                    return xml_fail(x, "malformed character reference");
                cp = cp * (hex ? 16 : 10) + digit;
                if (cp > 0x10FFFF)
                    return xml_fail(x, "character reference out of range");
            }
            /* XML 1.0 Char: no NUL or other C0 controls but tab/LF/CR, no
             * surrogates, no U+FFFE/U+FFFF */
            if ((cp < 0x20 && cp != 0x9 && cp != 0xA && cp != 0xD) ||
                (cp >= 0xD800 && cp <= 0xDFFF) || cp == 0xFFFE || cp == 0xFFFF)
                return xml_fail(x, "character reference to a character XML forbids");
        } else {
            return xml_fail(x, "unknown entity &%.*s;", (int)(ref.n > 20 ? 20 : ref.n), ref.p);
        }
        i = (size_t)(semi - v.p);
    }
    return 0;
}

static int xml_resolve(struct xml_parser *x, struct strview prefix, struct strview *uri)
{
    if (strview_eq(prefix, "xml")) {
        *uri = strview_cstr(xml_ns_xml);
        return 0;
    }
    for (size_t i = x->nns; i-- > 0;) {
        if (strview_eq_view(x->ns[i].prefix, prefix)) {
            *uri = x->ns[i].uri;
            return 0;
        }
    }
    if (prefix.n == 0) {
        *uri = STRVIEW_EMPTY;
        return 0;
    }
    return xml_fail(x, "undeclared namespace prefix %.*s", (int)(prefix.n > 20 ? 20 : prefix.n),
                    prefix.p);
}

static void xml_split_qname(struct strview q, struct strview *prefix, struct strview *local)
{
    const char *colon = memchr(q.p, ':', q.n);
    if (!colon) {
        *prefix = STRVIEW_EMPTY;
        *local = q;
        return;
    }
    *prefix = strview_make(q.p, (size_t)(colon - q.p));
    *local = strview_make(colon + 1, q.n - (size_t)(colon - q.p) - 1);
}

/* Comments, PIs and white space between markup (outside the root, or
 * inside elements). */
static int xml_comment(struct xml_parser *x)
{
    x->p += 4; /* "<!--" */
    while (x->p < x->end) {
        if (x->end - x->p >= 2 && x->p[0] == '-' && x->p[1] == '-') {
            if (x->end - x->p >= 3 && x->p[2] == '>') {
                x->p += 3;
                return 0;
            }
            return xml_fail(x, "'--' inside a comment");
        }
        x->p++;
    }
    return xml_fail(x, "unterminated comment");
}

static int xml_misc(struct xml_parser *x, bool *consumed)
{
    *consumed = true;
    if (xml_starts(x, "<!--"))
        return xml_comment(x);
    if (xml_starts(x, "<?"))
        return xml_skip_to(x, "?>", "processing instruction");
    if (xml_starts(x, "<!DOCTYPE") || xml_starts(x, "<!ENTITY"))
        return xml_fail(x, "DOCTYPE declarations are not accepted");
    *consumed = false;
    return 0;
}

static int xml_element(struct xml_parser *x, struct xml_node *parent, unsigned depth,
                       struct xml_node **out);

static int xml_content(struct xml_parser *x, struct xml_node *el, unsigned depth)
{
    struct xml_node *last = NULL;
    bool have_text = false;
    for (;;) {
        const char *s = x->p;
        while (x->p < x->end && *x->p != '<')
            x->p++;
        if (x->p > s) {
            struct strview t = strview_make(s, (size_t)(x->p - s));
            int rc = xml_check_text(x, t, false);
            if (rc)
                return rc;
            for (size_t k = 0; k + 3 <= t.n; k++)
                if (memcmp(t.p + k, "]]>", 3) == 0)
                    return xml_fail(x, "']]>' in character data");
            if (!have_text) {
                el->text = t;
                have_text = true;
            }
        }
        if (x->p >= x->end)
            return xml_fail(x, "element %.*s is not closed", (int)el->local.n, el->local.p);
        if (xml_starts(x, "</"))
            return 0;
        if (xml_starts(x, "<![CDATA[")) {
            x->p += 9;
            const char *cs = x->p;
            int rc = xml_skip_to(x, "]]>", "CDATA section");
            if (rc)
                return rc;
            if (!have_text) {
                el->text = strview_make(cs, (size_t)(x->p - 3 - cs));
                have_text = true;
            }
            continue;
        }
        bool consumed;
        int rc = xml_misc(x, &consumed);
        if (rc)
            return rc;
        if (consumed)
            continue;
        struct xml_node *child;
        rc = xml_element(x, el, depth + 1, &child);
        if (rc)
            return rc;
        if (last)
            last->next = child;
        else
            el->first_child = child;
        last = child;
    }
}

static int xml_element(struct xml_parser *x, struct xml_node *parent, unsigned depth,
                       struct xml_node **out)
{
    struct xml_doc *d = x->doc;
    if (depth > XML_MAX_DEPTH)
        return xml_fail(x, "elements nested deeper than %d", XML_MAX_DEPTH);
    if (d->nnodes == d->cap)
        return xml_fail(x, "more than %d elements", XML_MAX_NODES);
    x->p++; /* '<' */
    struct strview qname;
    int rc = xml_name(x, &qname);
    if (rc)
        return rc;
    struct xml_node *el = &d->nodes[d->nnodes++];
    memset(el, 0, sizeof(*el));
    el->parent = parent;
    size_t ns_mark = x->nns;

    /* attributes, raw, before namespace resolution */
    struct strview qnames[XML_MAX_ATTRS], values[XML_MAX_ATTRS];
    size_t na = 0;
    bool empty = false;
    for (;;) {
        bool sp = x->p < x->end && xml_is_space(*x->p);
        xml_skip_space(x);
        if (x->p >= x->end)
            return xml_fail(x, "unterminated start tag");
        if (*x->p == '>') {
            x->p++;
            break;
        }
        if (xml_starts(x, "/>")) {
            x->p += 2;
            empty = true;
            break;
        }
        if (!sp)
            return xml_fail(x, "white space needed between attributes");
        if (na == XML_MAX_ATTRS)
            return xml_fail(x, "more than %d attributes", XML_MAX_ATTRS);
        rc = xml_name(x, &qnames[na]);
        if (rc)
            return rc;
        xml_skip_space(x);
        if (x->p >= x->end || *x->p != '=')
            return xml_fail(x, "'=' expected after an attribute name");
        x->p++;
        xml_skip_space(x);
        if (x->p >= x->end || (*x->p != '"' && *x->p != '\''))
            return xml_fail(x, "quoted attribute value expected");
        char q = *x->p++;
        const char *vs = x->p;
        while (x->p < x->end && *x->p != q)
            x->p++;
        if (x->p >= x->end)
            return xml_fail(x, "unterminated attribute value");
        values[na] = strview_make(vs, (size_t)(x->p - vs));
        x->p++;
        rc = xml_check_text(x, values[na], true);
        if (rc)
            return rc;
        for (size_t k = 0; k < na; k++)
            if (strview_eq_view(qnames[k], qnames[na]))
                return xml_fail(x, "attribute given twice");
        /* namespace declarations */
        if (strview_eq(qnames[na], "xmlns") ||
            (qnames[na].n > 6 && memcmp(qnames[na].p, "xmlns:", 6) == 0)) {
            if (x->nns == XML_MAX_NSDECLS)
                return xml_fail(x, "too many namespace declarations");
            struct strview prefix = qnames[na].n == 5
                                        ? STRVIEW_EMPTY
                                        : strview_make(qnames[na].p + 6, qnames[na].n - 6);
            for (size_t k = ns_mark; k < x->nns; k++)
                if (strview_eq_view(x->ns[k].prefix, prefix))
                    return xml_fail(x, "a namespace prefix declared twice");
            struct xml_nsdecl *decl = &x->ns[x->nns++];
            decl->prefix = prefix;
            decl->uri = values[na];
            continue; /* not kept as an attribute */
        }
        na++;
    }

    struct strview prefix, local;
    xml_split_qname(qname, &prefix, &local);
    el->prefix = prefix;
    el->local = local;
    rc = xml_resolve(x, prefix, &el->ns);
    if (rc)
        return rc;
    if (na) {
        if (d->nattrs + na > d->cap)
            return xml_fail(x, "too many attributes");
        el->attrs = &d->attrs[d->nattrs];
        el->nattrs = na;
        d->nattrs += na;
        for (size_t k = 0; k < na; k++) {
            struct strview ap, al;
            xml_split_qname(qnames[k], &ap, &al);
            el->attrs[k].local = al;
            el->attrs[k].value = values[k];
            el->attrs[k].ns = STRVIEW_EMPTY;
            if (ap.n) {
                rc = xml_resolve(x, ap, &el->attrs[k].ns);
                if (rc)
                    return rc;
            }
            for (size_t j = 0; j < k; j++)
                if (strview_eq_view(el->attrs[j].ns, el->attrs[k].ns) &&
                    strview_eq_view(el->attrs[j].local, el->attrs[k].local))
                    return xml_fail(x, "two attributes with the same name");
        }
    }

    if (!empty) {
        rc = xml_content(x, el, depth);
        if (rc)
            return rc;
        x->p += 2; /* "</" */
        struct strview end;
        rc = xml_name(x, &end);
        if (rc)
            return rc;
        if (!strview_eq_view(end, qname))
            return xml_fail(x, "</%.*s> closes <%.*s>", (int)(end.n > 30 ? 30 : end.n), end.p,
                            (int)(qname.n > 30 ? 30 : qname.n), qname.p);
        xml_skip_space(x);
        if (x->p >= x->end || *x->p != '>')
            return xml_fail(x, "'>' expected in an end tag");
        x->p++;
    }
    x->nns = ns_mark;
    *out = el;
    return 0;
}

int xml_parse(const char *data, size_t len, struct xml_doc **out, char *err, size_t errlen)
{
    struct xml_doc *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    /* every element takes at least 4 bytes ("<a/>") */
    size_t cap = len / 4 + 1 < XML_MAX_NODES ? len / 4 + 1 : XML_MAX_NODES;
    d->cap = cap;
    d->nodes = calloc(cap, sizeof(*d->nodes));
    d->attrs = calloc(cap, sizeof(*d->attrs));
    if (!d->nodes || !d->attrs) {
        xml_free(d);
        return -ENOMEM;
    }
    struct xml_parser x = {.p = data, .end = data + len, .doc = d, .err = err, .errlen = errlen};
    int rc = 0;

    if (memchr(data, '\0', len)) {
        rc = xml_fail(&x, "NUL byte in the document");
        goto fail;
    }
    /* a UTF-8 byte order mark is allowed */
    if (len >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0)
        x.p += 3;
    for (;;) {
        xml_skip_space(&x);
        bool consumed;
        rc = xml_misc(&x, &consumed);
        if (rc)
            goto fail;
        if (!consumed)
            break;
    }
    if (x.p >= x.end || *x.p != '<') {
        rc = xml_fail(&x, "no root element");
        goto fail;
    }
    rc = xml_element(&x, NULL, 1, &d->root);
    if (rc)
        goto fail;
    for (;;) {
        xml_skip_space(&x);
        if (x.p >= x.end)
            break;
        bool consumed;
        rc = xml_misc(&x, &consumed);
        if (rc)
            goto fail;
        if (!consumed) {
            rc = xml_fail(&x, "content after the root element");
            goto fail;
        }
    }
    *out = d;
    return 0;
fail:
    xml_free(d);
    return rc;
}

void xml_free(struct xml_doc *doc)
{
    if (!doc)
        return;
    free(doc->nodes);
    free(doc->attrs);
    free(doc);
}

struct xml_node *xml_root(const struct xml_doc *doc)
{
    return doc->root;
}

static bool xml_is(const struct xml_node *n, const char *ns, const char *local)
{
    return (!ns || strview_eq(n->ns, ns)) && strview_eq(n->local, local);
}

struct xml_node *xml_child(const struct xml_node *n, const char *ns, const char *local)
{
    for (struct xml_node *c = n->first_child; c; c = c->next)
        if (xml_is(c, ns, local))
            return c;
    return NULL;
}

struct xml_node *xml_next(const struct xml_node *n, const char *ns, const char *local)
{
    for (struct xml_node *c = n->next; c; c = c->next)
        if (xml_is(c, ns, local))
            return c;
    return NULL;
}

const struct xml_attr *xml_attr(const struct xml_node *n, const char *local)
{
    for (size_t i = 0; i < n->nattrs; i++)
        if (n->attrs[i].ns.n == 0 && strview_eq(n->attrs[i].local, local))
            return &n->attrs[i];
    return NULL;
}

struct strview xml_text_trimmed(const struct xml_node *n)
{
    struct strview t = n->text;
    while (t.n && xml_is_space(t.p[0])) {
        t.p++;
        t.n--;
    }
    while (t.n && xml_is_space(t.p[t.n - 1]))
        t.n--;
    return t;
}
