#include "media/sdp.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

struct parser {
    struct sdp *s;
    char *err;
    size_t errlen;
    size_t lineno; /* 1-based line being parsed; 0: not about one line */
    size_t cap_lines, cap_attrs, cap_cryptos, cap_media;
    struct sdp_level *lv; /* the level lines go to */
    bool seen_o, seen_s;
};

__attribute__((format(printf, 2, 3))) static int fail(struct parser *ps, const char *fmt, ...)
{
    va_list ap;
    int off = 0;

    if (!ps->err || ps->errlen == 0)
        return -EINVAL;
    if (ps->lineno)
        off = snprintf(ps->err, ps->errlen, "line %zu: ", ps->lineno);
    if (off < 0 || (size_t)off >= ps->errlen)
        return -EINVAL;
    va_start(ap, fmt);
    vsnprintf(ps->err + off, ps->errlen - (size_t)off, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* Makes room for need elements; returns the (possibly moved) array, or
 * NULL with p untouched. */
static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return p;
    size_t ncap = *cap ? *cap * 2 : 16;
    while (ncap < need)
        ncap *= 2;
    char *np = realloc(p, ncap * elem);
    if (!np)
        return NULL;
    /* Zeroed so that a struct grown here starts from a known state. */
    memset(np + *cap * elem, 0, (ncap - *cap) * elem);
    *cap = ncap;
    return np;
}

/* RFC 8866 token-char. */
static bool is_token_char(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c && strchr("!#$%&'*+-.^_`{|}~", c) != NULL;
}

static bool is_token(struct strview v)
{
    if (v.n == 0)
        return false;
    for (size_t i = 0; i < v.n; i++)
        if (!is_token_char((unsigned char)v.p[i]))
            return false;
    return true;
}

static bool is_digits(struct strview v)
{
    if (v.n == 0)
        return false;
    for (size_t i = 0; i < v.n; i++)
        if (v.p[i] < '0' || v.p[i] > '9')
            return false;
    return true;
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t';
}

/* Splits v on runs of spaces (and tabs when tabs is set) into at most max
 * fields; returns the number of fields, or max + 1 when there were more. */
static size_t split_fields(struct strview v, bool tabs, struct strview *out, size_t max)
{
    size_t n = 0, i = 0;

    while (i < v.n) {
        while (i < v.n && (v.p[i] == ' ' || (tabs && v.p[i] == '\t')))
            i++;
        if (i == v.n)
            break;
        size_t start = i;
        while (i < v.n && !(v.p[i] == ' ' || (tabs && v.p[i] == '\t')))
            i++;
        if (n == max)
            return max + 1;
        out[n++] = strview_make(v.p + start, i - start);
    }
    return n;
}

/* Finds c in v: index or v.n. */
static size_t find_char(struct strview v, char c)
{
    const char *q = v.n ? memchr(v.p, c, v.n) : NULL;
    return q ? (size_t)(q - v.p) : v.n;
}

static struct strview sv_sub(struct strview v, size_t from, size_t to)
{
    return strview_make(v.p + from, to - from);
}

bool sdp_proto_is_plain_rtp(enum sdp_proto p)
{
    return p == SDP_PROTO_RTP_AVP || p == SDP_PROTO_RTP_AVPF;
}

bool sdp_proto_is_sdes(enum sdp_proto p)
{
    return p == SDP_PROTO_RTP_SAVP || p == SDP_PROTO_RTP_SAVPF;
}

bool sdp_proto_is_dtls_srtp(enum sdp_proto p)
{
    return p == SDP_PROTO_UDP_TLS_RTP_SAVP || p == SDP_PROTO_UDP_TLS_RTP_SAVPF ||
           p == SDP_PROTO_TCP_DTLS_RTP_SAVP || p == SDP_PROTO_TCP_DTLS_RTP_SAVPF;
}

static const struct {
    const char *name;
    enum sdp_proto proto;
} protos[] = {
    {"RTP/AVP", SDP_PROTO_RTP_AVP},
    {"RTP/AVPF", SDP_PROTO_RTP_AVPF},
    {"RTP/SAVP", SDP_PROTO_RTP_SAVP},
    {"RTP/SAVPF", SDP_PROTO_RTP_SAVPF},
    {"UDP/TLS/RTP/SAVP", SDP_PROTO_UDP_TLS_RTP_SAVP},
    {"UDP/TLS/RTP/SAVPF", SDP_PROTO_UDP_TLS_RTP_SAVPF},
    {"TCP/DTLS/RTP/SAVP", SDP_PROTO_TCP_DTLS_RTP_SAVP},
    {"TCP/DTLS/RTP/SAVPF", SDP_PROTO_TCP_DTLS_RTP_SAVPF},
    {"UDP/DTLS/SCTP", SDP_PROTO_DTLS_SCTP},
    {"TCP/DTLS/SCTP", SDP_PROTO_DTLS_SCTP},
};

const char *sdp_proto_name(enum sdp_proto p)
{
    for (size_t i = 0; i < sizeof(protos) / sizeof(protos[0]); i++)
        if (protos[i].proto == p)
            return protos[i].name;
    return "other";
}

/* Case-insensitive: a peer that writes "rtp/savp" must not slip past the
 * policy as "other" while its endpoint treats it as SRTP. */
static enum sdp_proto proto_classify(struct strview v)
{
    for (size_t i = 0; i < sizeof(protos) / sizeof(protos[0]); i++)
        if (strview_eq_nocase(v, protos[i].name))
            return protos[i].proto;
    return SDP_PROTO_OTHER;
}

static const char *level_name(struct parser *ps, char *buf, size_t cap)
{
    if (ps->lv == &ps->s->session)
        return "the session level";
    snprintf(buf, cap, "media section %zu", ps->s->nmedia);
    return buf;
}

static int parse_origin(struct parser *ps, struct strview v)
{
    struct strview f[6];

    if (ps->lv != &ps->s->session)
        return fail(ps, "o= inside a media section");
    if (ps->seen_o)
        return fail(ps, "o= repeated");
    if (split_fields(v, false, f, 6) != 6)
        return fail(ps, "bad o= line (needs 6 fields)");
    ps->seen_o = true;
    ps->s->origin_user = f[0];
    ps->s->origin_sess_id = f[1];
    ps->s->origin_sess_version = f[2];
    ps->s->origin_nettype = f[3];
    ps->s->origin_addrtype = f[4];
    ps->s->origin_address = f[5];
    return 0;
}

static int parse_conn(struct parser *ps, struct strview v, size_t line)
{
    struct strview f[3];

    if (split_fields(v, false, f, 3) != 3 || !is_token(f[0]) || !is_token(f[1]))
        return fail(ps, "bad c= line");
    if (ps->lv->conn.present)
        return 0;
    ps->lv->conn = (struct sdp_conn){true, f[0], f[1], f[2], line};
    return 0;
}

static int parse_media(struct parser *ps, struct strview v, size_t line)
{
    struct sdp *s = ps->s;
    struct strview f[3 + SDP_MAX_FORMATS + 1];
    unsigned long long port, count = 1;
    int rc;

    if (s->nmedia == SDP_MAX_MEDIA)
        return fail(ps, "more than %d media sections", SDP_MAX_MEDIA);
    size_t nf = split_fields(v, false, f, 3 + SDP_MAX_FORMATS);
    if (nf > 3 + SDP_MAX_FORMATS)
        return fail(ps, "m= line has more than %d formats", SDP_MAX_FORMATS);
    if (nf < 3)
        return fail(ps, "bad m= line (needs media, port, proto and formats)");
    if (nf < 4)
        return fail(ps, "bad m= line (no formats)");
    if (!is_token(f[0]))
        return fail(ps, "bad m= line (bad media type)");

    size_t slash = find_char(f[1], '/');
    struct strview pv = sv_sub(f[1], 0, slash);
    rc = strview_to_u64(pv, 65535, &port);
    if (rc == -ERANGE)
        return fail(ps, "m= line port out of range");
    if (rc)
        return fail(ps, "m= line has a non-numeric port");
    if (slash < f[1].n) {
        rc = strview_to_u64(sv_sub(f[1], slash + 1, f[1].n), 65535, &count);
        if (rc || count == 0)
            return fail(ps, "m= line has a bad port count");
    }
    for (size_t i = 0; i < f[2].n; i++)
        if (!is_token_char((unsigned char)f[2].p[i]) && f[2].p[i] != '/')
            return fail(ps, "bad m= line (bad transport protocol)");

    /* Close the previous level first: growing may move the array ps->lv
     * points into. */
    ps->lv->line_end = line;
    ps->lv = NULL;
    void *np_media = grow(s->media, &ps->cap_media, s->nmedia + 1, sizeof(*s->media));
    if (!np_media)
        return -ENOMEM;
    s->media = np_media;
    struct sdp_media *m = &s->media[s->nmedia++];
    memset(m, 0, sizeof(*m));
    m->media = f[0];
    m->port = (unsigned)port;
    m->nports = (unsigned)count;
    m->proto_text = f[2];
    m->proto = proto_classify(f[2]);
    for (size_t i = 3; i < nf; i++)
        m->formats[m->nformats++] = f[i];
    m->lv.line_first = line;
    m->lv.attr_first = s->nattrs;
    m->lv.crypto_first = s->ncryptos;
    ps->lv = &m->lv;
    return 0;
}

static int parse_lifetime(struct parser *ps, struct strview v, struct sdp_crypto_key *k)
{
    unsigned long long x;

    if (v.n > 2 && v.p[0] == '2' && v.p[1] == '^') {
        /* 2^64 would not fit any SRTP counter; larger is nonsense. */
        if (strview_to_u64(sv_sub(v, 2, v.n), 64, &x))
            return fail(ps, "bad a=crypto lifetime");
        k->lifetime_pow2 = true;
    } else if (strview_to_u64(v, ~0ULL, &x)) {
        return fail(ps, "bad a=crypto lifetime");
    }
    k->has_lifetime = true;
    k->lifetime = x;
    return 0;
}

static int parse_mki(struct parser *ps, struct strview v, struct sdp_crypto_key *k)
{
    size_t colon = find_char(v, ':');
    struct strview val = sv_sub(v, 0, colon);
    unsigned long long x, len;
    int rc;

    if (colon == v.n)
        return fail(ps, "bad a=crypto MKI");
    struct strview lv = sv_sub(v, colon + 1, v.n);
    /* mki-length = 1*3DIGIT, 1..128 (RFC 4568 §9.2). */
    if (lv.n > 3 || strview_to_u64(lv, 999, &len) || len < 1 || len > 128)
        return fail(ps, "a=crypto MKI length out of range");
    rc = strview_to_u64(val, ~0ULL, &x);
    if (rc == -ERANGE)
        return fail(ps, "a=crypto MKI value too large");
    if (rc)
        return fail(ps, "bad a=crypto MKI");
    if (len < 8 && (x >> (8 * len)) != 0)
        return fail(ps, "a=crypto MKI value does not fit its length");
    k->has_mki = true;
    k->mki_value = x;
    k->mki_len = (unsigned)len;
    return 0;
}

static bool is_base64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/' || c == '=';
}

static int parse_key_param(struct parser *ps, struct strview v, struct sdp_crypto_key *k)
{
    size_t colon = find_char(v, ':');
    int rc;

    if (v.n == 0)
        return fail(ps, "bad a=crypto (empty key parameter)");
    if (colon == v.n || colon == 0)
        return fail(ps, "bad a=crypto (key parameter without method)");
    k->method = sv_sub(v, 0, colon);
    k->info = sv_sub(v, colon + 1, v.n);
    for (size_t i = 0; i < k->method.n; i++) {
        char c = k->method.p[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return fail(ps, "bad a=crypto (bad key method)");
    }
    if (!strview_eq_nocase(k->method, "inline"))
        return 0; /* another key method: its key-info is opaque to us */

    struct strview part[3];
    size_t np = 0, i = 0;
    for (;;) {
        size_t bar = find_char(sv_sub(k->info, i, k->info.n), '|') + i;
        if (np == 3)
            return fail(ps, "bad a=crypto (too many '|' fields in inline key)");
        part[np++] = sv_sub(k->info, i, bar);
        if (bar == k->info.n)
            break;
        i = bar + 1;
    }
    k->key_salt = part[0];
    if (k->key_salt.n == 0)
        return fail(ps, "bad a=crypto (empty inline key)");
    for (size_t j = 0; j < k->key_salt.n; j++)
        if (!is_base64_char(k->key_salt.p[j]))
            return fail(ps, "bad a=crypto (inline key is not base64)");
    for (size_t j = 1; j < np; j++) {
        bool is_mki = find_char(part[j], ':') < part[j].n;
        if (is_mki) {
            if (k->has_mki)
                return fail(ps, "bad a=crypto MKI");
            if ((rc = parse_mki(ps, part[j], k)))
                return rc;
        } else {
            /* lifetime comes before the MKI, once */
            if (k->has_lifetime || k->has_mki)
                return fail(ps, "bad a=crypto lifetime");
            if ((rc = parse_lifetime(ps, part[j], k)))
                return rc;
        }
    }
    return 0;
}

static int parse_session_params(struct parser *ps, struct sdp_crypto *c)
{
    struct strview v = c->session_params;
    size_t i = 0;

    while (i < v.n) {
        while (i < v.n && is_ws(v.p[i]))
            i++;
        size_t start = i;
        while (i < v.n && !is_ws(v.p[i]))
            i++;
        if (start == i)
            break;
        struct strview t = sv_sub(v, start, i);
        /* Case-insensitive on purpose: a parameter that weakens the stream
         * counts however it is spelt. */
        if (strview_eq_nocase(t, "UNENCRYPTED_SRTP")) {
            c->unencrypted_srtp = true;
        } else if (strview_eq_nocase(t, "UNENCRYPTED_SRTCP")) {
            c->unencrypted_srtcp = true;
        } else if (strview_eq_nocase(t, "UNAUTHENTICATED_SRTP")) {
            c->unauthenticated_srtp = true;
        } else if (t.n > 4 && strncasecmp(t.p, "KDR=", 4) == 0) {
            unsigned long long kdr;
            if (strview_to_u64(sv_sub(t, 4, t.n), 24, &kdr))
                return fail(ps, "bad a=crypto KDR");
            c->has_kdr = true;
            c->kdr = (unsigned)kdr;
        }
        /* Other parameters (FEC_ORDER, FEC_KEY, WSH, extensions) are kept in
         * session_params; none of them weakens confidentiality. */
    }
    return 0;
}

static int parse_crypto(struct parser *ps, struct strview v, size_t line)
{
    struct sdp *s = ps->s;
    struct strview f[3];
    unsigned long long tag;
    int rc;
    size_t i = 0;

    /* tag, suite and key-params, then the session parameters as one view */
    size_t nf = 0;
    while (nf < 3) {
        while (i < v.n && is_ws(v.p[i]))
            i++;
        size_t start = i;
        while (i < v.n && !is_ws(v.p[i]))
            i++;
        if (start == i)
            break;
        f[nf++] = sv_sub(v, start, i);
    }
    if (nf < 1 || !is_digits(f[0]) || f[0].n > 9 || strview_to_u64(f[0], 999999999, &tag))
        return fail(ps, "bad a=crypto tag");
    if (nf < 2)
        return fail(ps, "bad a=crypto (no crypto suite)");
    for (size_t j = 0; j < f[1].n; j++) {
        char ch = f[1].p[j];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '_'))
            return fail(ps, "bad a=crypto suite");
    }
    if (nf < 3)
        return fail(ps, "bad a=crypto (no key parameters)");
    for (size_t j = ps->lv->crypto_first; j < s->ncryptos; j++)
        if (s->cryptos[j].tag == tag)
            return fail(ps, "duplicate a=crypto tag %llu", tag);

    void *np_cryptos = grow(s->cryptos, &ps->cap_cryptos, s->ncryptos + 1, sizeof(*s->cryptos));
    if (!np_cryptos)
        return -ENOMEM;
    s->cryptos = np_cryptos;
    struct sdp_crypto *c = &s->cryptos[s->ncryptos];
    memset(c, 0, sizeof(*c));
    c->tag = (unsigned long)tag;
    c->suite = f[1];
    c->key_params = f[2];
    c->line = line;
    c->session_params = strview_trim(sv_sub(v, i, v.n));

    size_t k = 0;
    for (;;) {
        struct strview rest = sv_sub(f[2], k, f[2].n);
        size_t semi = find_char(rest, ';');
        if (c->nkeys == SDP_MAX_CRYPTO_KEYS)
            return fail(ps, "a=crypto has more than %d keys", SDP_MAX_CRYPTO_KEYS);
        if ((rc = parse_key_param(ps, sv_sub(rest, 0, semi), &c->keys[c->nkeys])))
            return rc;
        c->nkeys++;
        if (semi == rest.n)
            break;
        k += semi + 1;
    }
    if ((rc = parse_session_params(ps, c)))
        return rc;
    s->ncryptos++;
    ps->lv->ncrypto++;
    return 0;
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int parse_fingerprint(struct parser *ps, struct strview v)
{
    struct strview f[2];

    if (split_fields(v, false, f, 2) != 2 || !is_token(f[0]))
        return fail(ps, "bad a=fingerprint");
    /* 2HEXDIG *(":" 2HEXDIG) (RFC 8122 §5) */
    if (f[1].n < 2 || f[1].n % 3 != 2)
        return fail(ps, "bad a=fingerprint");
    for (size_t i = 0; i < f[1].n; i++) {
        bool ok = i % 3 == 2 ? f[1].p[i] == ':' : is_hex(f[1].p[i]);
        if (!ok)
            return fail(ps, "bad a=fingerprint");
    }
    if (!ps->lv->fingerprint.present)
        ps->lv->fingerprint = (struct sdp_fingerprint){true, f[0], f[1]};
    ps->lv->nfingerprints++;
    return 0;
}

static int set_direction(struct parser *ps, enum sdp_direction d)
{
    if (ps->lv->direction != SDP_DIR_NONE && ps->lv->direction != d)
        return fail(ps, "conflicting direction attributes");
    ps->lv->direction = d;
    return 0;
}

static int parse_attr(struct parser *ps, struct strview v, size_t line)
{
    struct sdp *s = ps->s;
    char buf[40];

    if (ps->lv->nattrs == SDP_MAX_ATTRS)
        return fail(ps, "more than %d attributes at %s", SDP_MAX_ATTRS,
                    level_name(ps, buf, sizeof(buf)));
    size_t colon = find_char(v, ':');
    struct strview name = sv_sub(v, 0, colon);
    struct strview value = colon < v.n ? sv_sub(v, colon + 1, v.n) : STRVIEW_EMPTY;
    if (!is_token(name))
        return fail(ps, name.n ? "bad attribute name" : "attribute without a name");

    void *np_attrs = grow(s->attrs, &ps->cap_attrs, s->nattrs + 1, sizeof(*s->attrs));
    if (!np_attrs)
        return -ENOMEM;
    s->attrs = np_attrs;
    s->attrs[s->nattrs++] = (struct sdp_attr){name, value, colon < v.n, line};
    ps->lv->nattrs++;

    if (strview_eq_nocase(name, "crypto")) {
        s->lines[line].key = true;
        return parse_crypto(ps, value, line);
    }
    if (strview_eq_nocase(name, "fingerprint"))
        return parse_fingerprint(ps, value);
    if (strview_eq_nocase(name, "setup")) {
        static const char *const names[] = {"actpass", "active", "passive", "holdconn"};
        for (size_t i = 0; i < 4; i++)
            if (strview_eq_nocase(strview_trim(value), names[i])) {
                ps->lv->setup = (enum sdp_setup)(SDP_SETUP_ACTPASS + i);
                return 0;
            }
        return fail(ps, "bad a=setup");
    }
    if (strview_eq_nocase(name, "rtcp-mux")) {
        ps->lv->rtcp_mux = true;
        return 0;
    }
    if (strview_eq_nocase(name, "sendrecv"))
        return set_direction(ps, SDP_DIR_SENDRECV);
    if (strview_eq_nocase(name, "sendonly"))
        return set_direction(ps, SDP_DIR_SENDONLY);
    if (strview_eq_nocase(name, "recvonly"))
        return set_direction(ps, SDP_DIR_RECVONLY);
    if (strview_eq_nocase(name, "inactive"))
        return set_direction(ps, SDP_DIR_INACTIVE);
    if (strview_eq_nocase(name, "acap")) {
        /* RFC 5939 capability: "a=acap:1 crypto:1 AES_CM_... inline:KEY"
         * carries the same keys as a=crypto. */
        size_t i = 0;
        while (i < value.n && !is_ws(value.p[i]))
            i++;
        struct strview cap = strview_trim(sv_sub(value, i, value.n));
        if (cap.n >= 6 && strncasecmp(cap.p, "crypto", 6) == 0 &&
            (cap.n == 6 || cap.p[6] == ':' || is_ws(cap.p[6]))) {
            s->lines[line].key = true;
            ps->lv->nkey_lines++;
        }
    }
    return 0;
}

static int parse_line(struct parser *ps, size_t idx)
{
    struct sdp *s = ps->s;
    struct sdp_line *l = &s->lines[idx];

    if (idx == 0) {
        if (l->type != 'v')
            return fail(ps, "missing v=0 (the first line must be v=0)");
        if (!strview_eq(l->value, "0"))
            return fail(ps, "unsupported SDP version (v=0 expected)");
        return 0;
    }
    switch (l->type) {
    case 'v':
        return fail(ps, "v= repeated");
    case 'o':
        return parse_origin(ps, l->value);
    case 's':
        if (ps->lv != &s->session)
            return fail(ps, "s= inside a media section");
        if (ps->seen_s)
            return fail(ps, "s= repeated");
        ps->seen_s = true;
        s->session_name = l->value;
        return 0;
    case 't':
        if (ps->lv != &s->session)
            return fail(ps, "t= inside a media section");
        return 0;
    case 'm':
        return parse_media(ps, l->value, idx);
    case 'c':
        return parse_conn(ps, l->value, idx);
    case 'a':
        return parse_attr(ps, l->value, idx);
    case 'k':
        /* RFC 8866 §5.12 (obsolete) key field: key material too. */
        l->key = true;
        ps->lv->nkey_lines++;
        return 0;
    default:
        return 0; /* kept as is */
    }
}

/* Whether [p, p+n) is only line ends (LF or CRLF). */
static bool only_line_ends(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n')
            continue;
        if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n')
            continue;
        return false;
    }
    return true;
}

static int split_lines(struct parser *ps, struct strview text)
{
    struct sdp *s = ps->s;
    const char *p = text.p;
    size_t n = text.n, pos = 0;

    while (pos < n) {
        ps->lineno = s->nlines + 1;
        const char *lf = memchr(p + pos, '\n', n - pos);
        size_t end = lf ? (size_t)(lf - p) : n;
        size_t next = lf ? end + 1 : n;
        size_t cend = end;
        if (lf && cend > pos && p[cend - 1] == '\r')
            cend--;
        if (memchr(p + pos, '\r', cend - pos))
            return fail(ps, "CR not followed by LF");
        if (memchr(p + pos, '\0', cend - pos))
            return fail(ps, "NUL byte");
        if (cend == pos) {
            if (s->nlines > 0 && only_line_ends(p + pos, n - pos)) {
                s->tail = strview_make(p + pos, n - pos);
                break;
            }
            return fail(ps, "empty line");
        }
        unsigned char t = (unsigned char)p[pos];
        if (cend - pos < 2 || p[pos + 1] != '=' ||
            !((t >= 'a' && t <= 'z') || (t >= 'A' && t <= 'Z')))
            return fail(ps, "not a <type>=<value> line");
        void *np_lines = grow(s->lines, &ps->cap_lines, s->nlines + 1, sizeof(*s->lines));
        if (!np_lines)
            return -ENOMEM;
        s->lines = np_lines;
        s->lines[s->nlines++] = (struct sdp_line){
            .type = (char)t,
            .value = strview_make(p + pos + 2, cend - pos - 2),
            .raw = strview_make(p + pos, next - pos),
        };
        pos = next;
    }
    ps->lineno = 0;
    return 0;
}

int sdp_parse(struct strview text, struct sdp **out, char *err, size_t errlen)
{
    struct parser ps = {.err = err, .errlen = errlen};
    int rc;

    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    if (text.n > SDP_MAX_SIZE)
        return fail(&ps, "SDP larger than %d bytes", SDP_MAX_SIZE);
    if (text.n == 0 || !text.p)
        return fail(&ps, "empty SDP");
    struct sdp *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    ps.s = s;
    ps.lv = &s->session;
    s->text = text;

    if ((rc = split_lines(&ps, text)))
        goto out;
    for (size_t i = 0; i < s->nlines; i++) {
        ps.lineno = i + 1;
        if ((rc = parse_line(&ps, i)))
            goto out;
    }
    ps.lineno = 0;
    ps.lv->line_end = s->nlines;
    if (!ps.seen_o) {
        rc = fail(&ps, "missing o= line");
        goto out;
    }
    if (!ps.seen_s) {
        rc = fail(&ps, "missing s= line");
        goto out;
    }
    for (size_t i = 0; i < s->nmedia; i++) {
        const struct sdp_media *m = &s->media[i];
        if (sdp_media_active(m) && !m->lv.conn.present && !s->session.conn.present) {
            rc = fail(&ps,
                      "media section %zu (%.*s) has no c= line and there is no session c=", i + 1,
                      (int)(m->media.n > 32 ? 32 : m->media.n), m->media.p);
            goto out;
        }
    }
    *out = s;
    s = NULL;
    rc = 0;
out:
    sdp_free(s);
    return rc;
}

void sdp_free(struct sdp *sdp)
{
    if (!sdp)
        return;
    while (sdp->owned) {
        struct sdp_owned *o = sdp->owned;
        sdp->owned = o->next;
        free(o);
    }
    free(sdp->lines);
    free(sdp->attrs);
    free(sdp->cryptos);
    free(sdp->media);
    free(sdp);
}

int sdp_write(const struct sdp *sdp, struct strbuf *out)
{
    for (size_t i = 0; i < sdp->nlines; i++)
        if (!sdp->lines[i].removed)
            strbuf_putview(out, sdp->lines[i].raw);
    strbuf_putview(out, sdp->tail);
    return out->err;
}

/* Whole CRLF-terminated lines, each "<letter>=..." with no control
 * characters: what sdp_write may emit in place of a parsed line. */
static bool sdp_lines_ok(struct strview t)
{
    if (t.n < 4 || t.p[t.n - 2] != '\r' || t.p[t.n - 1] != '\n')
        return false;
    size_t start = 0;
    for (size_t i = 0; i < t.n; i++) {
        unsigned char c = (unsigned char)t.p[i];
        if (c == '\r') {
            if (i + 1 >= t.n || t.p[i + 1] != '\n' || i - start < 2)
                return false;
            i++;
            start = i + 1;
            continue;
        }
        if (i == start && !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
            return false;
        if (i == start + 1 && c != '=')
            return false;
        if (c < ' ' && c != '\t')
            return false;
    }
    return true;
}

/* Line i's output becomes prefix (its own text, or nothing) + text. */
static int sdp_line_emit(struct sdp *sdp, size_t i, bool keep, struct strview text)
{
    if (i >= sdp->nlines || !sdp_lines_ok(text))
        return -EINVAL;
    struct sdp_line *l = &sdp->lines[i];
    /* a removed line stays removed: only the text added after it goes out
     * (a line removed for the keys it carries must never come back) */
    keep = keep && !l->removed;
    size_t before = keep ? l->raw.n : 0;
    bool crlf = keep && before >= 2 && l->raw.p[before - 2] == '\r';
    bool lf_only = keep && !crlf && before >= 1 && l->raw.p[before - 1] == '\n';
    size_t fix = keep && !crlf && !lf_only ? 2 : 0; /* a last line without its end */
    struct sdp_owned *o = malloc(sizeof(*o) + before + fix + text.n);
    if (!o)
        return -ENOMEM;
    char *p = o->text;
    if (before)
        memcpy(p, l->raw.p, before);
    if (fix)
        memcpy(p + before, "\r\n", 2);
    memcpy(p + before + fix, text.p, text.n);
    o->next = sdp->owned;
    sdp->owned = o;
    l->raw = strview_make(p, before + fix + text.n);
    l->removed = false;
    return 0;
}

int sdp_line_set(struct sdp *sdp, size_t i, struct strview text)
{
    return sdp_line_emit(sdp, i, false, text);
}

int sdp_line_add_after(struct sdp *sdp, size_t i, struct strview text)
{
    return sdp_line_emit(sdp, i, true, text);
}

void sdp_line_remove(struct sdp *sdp, size_t i)
{
    if (i < sdp->nlines)
        sdp->lines[i].removed = true;
}

void sdp_level_remove_crypto(struct sdp *sdp, const struct sdp_level *lv)
{
    for (size_t i = 0; i < lv->ncrypto; i++)
        sdp_line_remove(sdp, sdp->cryptos[lv->crypto_first + i].line);
}

void sdp_remove_keys(struct sdp *sdp)
{
    for (size_t i = 0; i < sdp->nlines; i++)
        if (sdp->lines[i].key)
            sdp->lines[i].removed = true;
}

bool sdp_has_keys(const struct sdp *sdp)
{
    for (size_t i = 0; i < sdp->nlines; i++)
        if (sdp->lines[i].key && !sdp->lines[i].removed)
            return true;
    return false;
}

const struct sdp_crypto *sdp_level_crypto(const struct sdp *sdp, const struct sdp_level *lv,
                                          size_t i)
{
    return i < lv->ncrypto ? &sdp->cryptos[lv->crypto_first + i] : NULL;
}

const struct sdp_attr *sdp_level_attr(const struct sdp *sdp, const struct sdp_level *lv, size_t i)
{
    return i < lv->nattrs ? &sdp->attrs[lv->attr_first + i] : NULL;
}

const struct sdp_attr *sdp_level_attr_find(const struct sdp *sdp, const struct sdp_level *lv,
                                           const char *name)
{
    for (size_t i = 0; i < lv->nattrs; i++)
        if (strview_eq_nocase(sdp->attrs[lv->attr_first + i].name, name))
            return &sdp->attrs[lv->attr_first + i];
    return NULL;
}

const struct sdp_conn *sdp_media_conn(const struct sdp *sdp, const struct sdp_media *m)
{
    if (m->lv.conn.present)
        return &m->lv.conn;
    return sdp->session.conn.present ? &sdp->session.conn : NULL;
}

const struct sdp_fingerprint *sdp_media_fingerprint(const struct sdp *sdp,
                                                    const struct sdp_media *m)
{
    if (m->lv.fingerprint.present)
        return &m->lv.fingerprint;
    return sdp->session.fingerprint.present ? &sdp->session.fingerprint : NULL;
}

enum sdp_setup sdp_media_setup(const struct sdp *sdp, const struct sdp_media *m)
{
    return m->lv.setup != SDP_SETUP_NONE ? m->lv.setup : sdp->session.setup;
}

enum sdp_direction sdp_media_direction(const struct sdp *sdp, const struct sdp_media *m)
{
    if (m->lv.direction != SDP_DIR_NONE)
        return m->lv.direction;
    return sdp->session.direction != SDP_DIR_NONE ? sdp->session.direction : SDP_DIR_SENDRECV;
}
