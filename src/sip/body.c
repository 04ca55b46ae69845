/*
 * Finding the session description in a message body. Multipart parsing
 * is deliberately stricter than RFC 2046 asks of a reader: wherever a
 * lenient user agent could see a part that Parley does not (a boundary
 * after a bare LF, a boundary string inside a part, text after the closing
 * boundary, a folded part header), the body is refused instead, so the
 * media policy never passes an SDP it did not inspect.
 */
#include "sip/body.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "sip/lex.h"

#define BOUNDARY_MAX 70 /* RFC 2046 §5.1.1 */

struct body_scan {
    struct strview all; /* the whole body: offsets are taken from it */
    struct sip_body_sdp *out;
    size_t nsdp;
    char *err;
    size_t cap;
};

static int scan_typed(struct body_scan *s, struct strview content_type, struct strview content,
                      int depth);

static int scan_fail(struct body_scan *s, const char *why)
{
    snprintf(s->err, s->cap, "%s", why);
    return -EINVAL;
}

#define PARAMS_MAX 16 /* parameters of one Content-Type */

/* "type/subtype;params" split, the parameter list checked. A parameter
 * given twice is refused: readers differ on which one counts. */
static int media_type_split(struct strview v, struct strview *type, struct strview *subtype,
                            struct strview *params)
{
    if (sip_lex_media_type(strview_trim(v), type, subtype, params))
        return -EINVAL;
    size_t pos = 0, n = 0;
    struct strview pn, pv, seen[PARAMS_MAX];
    int rc;
    while ((rc = sip_lex_param_next(*params, &pos, &pn, &pv)) > 0) {
        if (n == PARAMS_MAX)
            return -EINVAL;
        for (size_t i = 0; i < n; i++)
            if (strview_eq_view_nocase(seen[i], pn))
                return -EINVAL;
        seen[n++] = pn;
    }
    return rc < 0 ? -EINVAL : 0;
}

static int record_sdp(struct body_scan *s, struct strview sdp, bool whole)
{
    if (s->nsdp++)
        return scan_fail(s, "more than one session description in the body");
    s->out->sdp = sdp;
    s->out->offset = (size_t)(sdp.p - s->all.p);
    s->out->whole = whole;
    return 0;
}

static bool is_identity_encoding(struct strview v, bool transfer)
{
    v = strview_trim(v);
    if (transfer)
        return strview_eq_nocase(v, "7bit") || strview_eq_nocase(v, "8bit") ||
               strview_eq_nocase(v, "binary");
    return strview_eq_nocase(v, "identity");
}

static bool has_control(struct strview v)
{
    for (size_t i = 0; i < v.n; i++) {
        unsigned char c = (unsigned char)v.p[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return true;
    }
    return false;
}

/* One part: its headers (no folding), a blank line, its content; or
 * nothing at all (an empty text/plain part). */
static int scan_part(struct body_scan *s, struct strview part, int depth)
{
    struct strview ct = STRVIEW_EMPTY, cte = STRVIEW_EMPTY, ce = STRVIEW_EMPTY;
    bool have_ct = false;
    size_t pos = 0;

    if (part.n == 0)
        return 0;
    for (;;) {
        const char *eol = memmem(part.p + pos, part.n - pos, "\r\n", 2);
        if (!eol)
            return scan_fail(s, "multipart part without a blank line after its headers");
        struct strview line = strview_make(part.p + pos, (size_t)(eol - (part.p + pos)));
        pos += line.n + 2;
        if (line.n == 0)
            break;
        if (sip_lex_is_wsp(line.p[0]))
            return scan_fail(s, "folded header in a multipart part");
        /* a bare LF or CR ends a line for some readers: what follows it
         * would be a header Parley did not see */
        if (has_control(line))
            return scan_fail(s, "control character in a multipart part header");
        const char *colon = memchr(line.p, ':', line.n);
        if (!colon)
            return scan_fail(s, "malformed header in a multipart part");
        struct strview name = strview_trim(strview_make(line.p, (size_t)(colon - line.p)));
        struct strview value = strview_make(colon + 1, (size_t)(line.p + line.n - colon - 1));
        if (strview_eq_nocase(name, "Content-Type") || strview_eq_nocase(name, "c")) {
            if (have_ct)
                return scan_fail(s, "two Content-Type headers in a multipart part");
            ct = value;
            have_ct = true;
        } else if (strview_eq_nocase(name, "Content-Transfer-Encoding")) {
            if (cte.p)
                return scan_fail(s, "two Content-Transfer-Encoding headers in a multipart part");
            cte = value;
        } else if (strview_eq_nocase(name, "Content-Encoding") || strview_eq_nocase(name, "e")) {
            if (ce.p)
                return scan_fail(s, "two Content-Encoding headers in a multipart part");
            ce = value;
        }
    }
    struct strview content = strview_make(part.p + pos, part.n - pos);
    if (!have_ct)
        return 0; /* text/plain (RFC 2046 §5.1) */
    struct strview type, subtype, params;
    if (media_type_split(ct, &type, &subtype, &params))
        return scan_fail(s, "malformed Content-Type in a multipart part");
    bool sdp = strview_eq_nocase(type, "application") && strview_eq_nocase(subtype, "sdp");
    bool nested = strview_eq_nocase(type, "multipart");
    if ((sdp || nested) &&
        ((cte.p && !is_identity_encoding(cte, true)) || (ce.p && !is_identity_encoding(ce, false))))
        return scan_fail(s, "encoded session description in a multipart part");
    return scan_typed(s, ct, content, depth);
}

static int scan_multipart(struct body_scan *s, struct strview body, struct strview boundary,
                          int depth)
{
    char delim[2 + BOUNDARY_MAX];
    size_t dl = 2 + boundary.n;
    memcpy(delim, "--", 2);
    memcpy(delim + 2, boundary.p, boundary.n);

    size_t from = 0, part_start = 0, nparts = 0;
    bool opened = false, closed = false;
    for (;;) {
        const char *hit = memmem(body.p + from, body.n - from, delim, dl);
        if (!hit)
            break;
        size_t at = (size_t)(hit - body.p);
        if (at != 0 && (at < 2 || body.p[at - 2] != '\r' || body.p[at - 1] != '\n'))
            return scan_fail(s, "multipart boundary inside a part");
        size_t k = at + dl;
        bool close = k + 2 <= body.n && body.p[k] == '-' && body.p[k + 1] == '-';
        if (close)
            k += 2;
        while (k < body.n && sip_lex_is_wsp(body.p[k]))
            k++;
        if (k + 2 <= body.n && body.p[k] == '\r' && body.p[k + 1] == '\n')
            k += 2;
        else if (!(close && k == body.n))
            return scan_fail(s, "malformed multipart boundary line");
        if (opened) {
            if (at < part_start + 2)
                return scan_fail(s, "malformed multipart part");
            if (++nparts > SIP_BODY_MAX_PARTS)
                return scan_fail(s, "too many parts in a multipart body");
            int rc = scan_part(s, strview_make(body.p + part_start, at - 2 - part_start), depth);
            if (rc)
                return rc;
        } else if (close) {
            return scan_fail(s, "multipart body without parts");
        }
        opened = true;
        closed = close;
        part_start = from = k;
        if (closed) {
            /* an epilogue is for readers to ignore; some would not (a
             * padded close delimiter read as an ordinary line): only
             * blank space may follow */
            for (size_t i = k; i < body.n; i++)
                if (!sip_lex_is_wsp(body.p[i]) && body.p[i] != '\r' && body.p[i] != '\n')
                    return scan_fail(s, "text after the closing multipart boundary");
            break;
        }
    }
    if (!closed)
        return scan_fail(s, "multipart body without its closing boundary");
    return 0;
}

static int scan_typed(struct body_scan *s, struct strview content_type, struct strview content,
                      int depth)
{
    struct strview type, subtype, params;
    if (media_type_split(content_type, &type, &subtype, &params))
        return scan_fail(s, "malformed Content-Type");
    if (strview_eq_nocase(type, "application") && strview_eq_nocase(subtype, "sdp"))
        return record_sdp(s, content, depth == 0);
    if (!strview_eq_nocase(type, "multipart"))
        return 0;
    if (depth >= SIP_BODY_MAX_DEPTH)
        return scan_fail(s, "multipart bodies nested too deep");
    struct strview boundary;
    if (!sip_lex_param_find(params, "boundary", &boundary) || boundary.n == 0)
        return scan_fail(s, "multipart body without a boundary");
    if (boundary.n >= 2 && boundary.p[0] == '"' && boundary.p[boundary.n - 1] == '"')
        boundary = strview_make(boundary.p + 1, boundary.n - 2);
    if (boundary.n == 0 || boundary.n > BOUNDARY_MAX || memchr(boundary.p, '\\', boundary.n))
        return scan_fail(s, "malformed multipart boundary");
    return scan_multipart(s, content, boundary, depth + 1);
}

int sip_body_find_sdp(struct strview content_type, struct strview body, struct sip_body_sdp *out,
                      char *err, size_t cap)
{
    struct body_scan s = {.all = body, .out = out, .err = err, .cap = cap};
    *out = (struct sip_body_sdp){.sdp = STRVIEW_EMPTY};
    if (cap)
        err[0] = '\0';
    if (body.n == 0)
        return 0;
    if (strview_trim(content_type).n == 0)
        return scan_fail(&s, "message body without Content-Type");
    int rc = scan_typed(&s, content_type, body, 0);
    if (rc)
        *out = (struct sip_body_sdp){.sdp = STRVIEW_EMPTY};
    return rc;
}
