#include "media/policy.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/log.h"
#include "crypto/encoding.h"
#include "crypto/policy.h"
#include "media/sdp.h"

/* What one media section negotiates, as far as the policy cares. */
enum sec_kind {
    SEC_DISABLED,  /* port 0 */
    SEC_SDES,      /* RTP/SAVP[F] with a usable a=crypto */
    SEC_OSRTP,     /* RTP/AVP[F] with a usable a=crypto (RFC 8643) */
    SEC_DTLS,      /* DTLS-SRTP with a=fingerprint */
    SEC_DTLS_DATA, /* DTLS/SCTP with a=fingerprint (data channels) */
    SEC_PLAIN,     /* anything else: not encrypted */
};

struct sec {
    enum sec_kind kind;
    struct strview suite; /* SEC_SDES, SEC_OSRTP */
    char why[160];        /* SEC_PLAIN: why it does not count */
};

/* Longest names echoed into warnings and summaries. */
#define NAME_MAX_SHOWN 40

static const char *const level_names[] = {"required", "supported", "not_supported"};

int media_level_parse(const char *text, enum media_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (text && strcmp(text, level_names[i]) == 0) {
            *out = (enum media_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *media_level_name(enum media_level level)
{
    if ((size_t)level < sizeof(level_names) / sizeof(level_names[0]))
        return level_names[level];
    return "unknown";
}

void media_decision_init(struct media_decision *d)
{
    memset(d, 0, sizeof(*d));
    d->verdict = MEDIA_PASS;
}

void media_decision_free(struct media_decision *d)
{
    strbuf_free(&d->sdp);
    strbuf_free(&d->summary);
}

static void decision_reset(struct media_decision *d)
{
    d->verdict = MEDIA_PASS;
    d->warning[0] = '\0';
    strbuf_reset(&d->sdp);
    strbuf_reset(&d->summary);
}

static int shown(struct strview v)
{
    return (int)(v.n > NAME_MAX_SHOWN ? NAME_MAX_SHOWN : v.n);
}

/* Records the first refusal; later ones only add to the log line the
 * proxy writes from the summary. */
__attribute__((format(printf, 2, 3))) static void refuse(struct media_decision *d, const char *fmt,
                                                         ...)
{
    va_list ap;

    d->verdict = MEDIA_REFUSE;
    if (d->warning[0])
        return;
    va_start(ap, fmt);
    vsnprintf(d->warning, sizeof(d->warning), fmt, ap);
    va_end(ap);
}

/* The warning goes into a quoted-string (Warning: 399 host "..."): what
 * came from the SDP is tokens already, but make sure. */
static void warning_sanitize(char *w)
{
    for (; *w; w++)
        if (*w == '"' || *w == '\\' || (unsigned char)*w < 0x20 || (unsigned char)*w > 0x7e)
            *w = '?';
}

static void fmt_why(struct sec *sec, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fmt_why(struct sec *sec, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sec->why, sizeof(sec->why), fmt, ap);
    va_end(ap);
}

/* What a section offers, in the words a user's client uses, for the
 * Warning of a refusal: a client that offered ZRTP should read that the
 * server saw ZRTP, not that it saw nothing. */
static const char *offered_kind(const struct sdp *s, const struct sdp_media *m)
{
    if (sdp_proto_is_dtls_srtp(m->proto) || m->proto == SDP_PROTO_DTLS_SCTP ||
        sdp_media_fingerprint(s, m))
        return "DTLS-SRTP";
    if (m->lv.ncrypto)
        return "SDES";
    if (sdp_level_attr_find(s, &m->lv, "zrtp-hash") ||
        sdp_level_attr_find(s, &s->session, "zrtp-hash"))
        return "ZRTP only";
    if (sdp_proto_is_sdes(m->proto))
        return "SRTP without keys";
    return "no encryption";
}

/* What each level demands, named in its refusals. */
#define REQUIRED_TEXT      "media encryption required (SDES-SRTP or DTLS-SRTP)"
#define NOT_SUPPORTED_TEXT "media encryption not supported (plain RTP only)"

bool media_sdp_is_hold(struct strview text)
{
    struct sdp *s = NULL;
    char err[64];
    if (sdp_parse(text, &s, err, sizeof(err)) != 0)
        return false;
    size_t active = 0, held = 0;
    for (size_t i = 0; i < s->nmedia; i++) {
        const struct sdp_media *m = &s->media[i];
        if (!sdp_media_active(m))
            continue;
        active++;
        enum sdp_direction d = sdp_media_direction(s, m);
        const struct sdp_conn *c = sdp_media_conn(s, m);
        if (d == SDP_DIR_SENDONLY || d == SDP_DIR_INACTIVE ||
            (c && strview_eq(c->address, "0.0.0.0")))
            held++;
    }
    sdp_free(s);
    return active && held == active;
}

static bool suite_allowed(const struct media_policy *pol, struct strview suite)
{
    for (size_t i = 0; i < pol->nsuites; i++)
        if (pol->suites && pol->suites[i] && strview_eq(suite, pol->suites[i]))
            return true;
    return false;
}

/* Whether the inline key decodes to exactly len bytes. RFC 4568 asks for
 * padded base64; unpadded keys are seen in the wild and mean the same. */
static bool key_len_ok(struct strview key, size_t len)
{
    char buf[72];
    unsigned char raw[BASE64_DECODED_MAX(sizeof(buf))];
    size_t n = key.n, got = 0;
    bool ok = false;

    if (n + 2 >= sizeof(buf) || n % 4 == 1)
        return false;
    memcpy(buf, key.p, n);
    while (n % 4)
        buf[n++] = '=';
    ok = base64_decode(BASE64_STD, strview_make(buf, n), raw, sizeof(raw), &got) == 0 && got == len;
    OPENSSL_cleanse(buf, sizeof(buf));
    OPENSSL_cleanse(raw, sizeof(raw));
    return ok;
}

/* Whether c counts as encryption under pol; if not, why (no key material
 * ever goes into why or the log). */
static bool crypto_usable(const struct media_policy *pol, const struct sdp_crypto *c,
                          struct sec *sec)
{
    const struct crypto_srtp_suite *suite = crypto_srtp_suite_find(c->suite);
    int sn = shown(c->suite);

    if (!suite) {
        fmt_why(sec, "unknown SRTP suite %.*s", sn, c->suite.p);
        return false;
    }
    if (!suite->encrypts) {
        fmt_why(sec, "SRTP suite %s does not encrypt", suite->name);
        return false;
    }
    if (!suite->authenticates) {
        fmt_why(sec, "SRTP suite %s does not authenticate", suite->name);
        return false;
    }
    if (!suite_allowed(pol, c->suite)) {
        fmt_why(sec, "SRTP suite %s not allowed", suite->name);
        return false;
    }
    if (c->unencrypted_srtp || c->unencrypted_srtcp || c->unauthenticated_srtp) {
        fmt_why(sec, "a=crypto with %s",
                c->unencrypted_srtp    ? "UNENCRYPTED_SRTP"
                : c->unencrypted_srtcp ? "UNENCRYPTED_SRTCP"
                                       : "UNAUTHENTICATED_SRTP");
        return false;
    }
    for (size_t i = 0; i < c->nkeys; i++) {
        const struct sdp_crypto_key *k = &c->keys[i];
        if (!strview_eq_nocase(k->method, "inline")) {
            fmt_why(sec, "a=crypto key method %.*s not supported", shown(k->method), k->method.p);
            return false;
        }
        if (!key_len_ok(k->key_salt, suite->key_len + suite->salt_len)) {
            log_warn("media.crypto_key_length", "suite", suite->name, "tag", LOG_INT(c->tag),
                     "expected", LOG_INT(suite->key_len + suite->salt_len));
            fmt_why(sec, "inline key of wrong length for %s", suite->name);
            return false;
        }
    }
    /* RFC 4568 §6.1: several master keys need MKIs of one length, and
     * distinct values to tell them apart. */
    if (c->nkeys > 1) {
        for (size_t i = 0; i < c->nkeys; i++) {
            if (!c->keys[i].has_mki || c->keys[i].mki_len != c->keys[0].mki_len) {
                fmt_why(sec, "a=crypto with several keys needs MKIs of one length");
                return false;
            }
            for (size_t j = 0; j < i; j++)
                if (c->keys[j].mki_value == c->keys[i].mki_value) {
                    fmt_why(sec, "a=crypto with two keys of the same MKI");
                    return false;
                }
        }
    }
    return true;
}

/* For an answer: whether the offer section offered tag with suite. */
static bool offered(const struct sdp *offer, const struct sdp_media *om, const struct sdp_crypto *c)
{
    for (size_t i = 0; i < om->lv.ncrypto; i++) {
        const struct sdp_crypto *oc = sdp_level_crypto(offer, &om->lv, i);
        if (oc->tag == c->tag && strview_eq_view(oc->suite, c->suite))
            return true;
    }
    return false;
}

/* Classifies media section m of s. For an answer, om is the matching
 * offer section (in offer). */
static void analyze(const struct media_policy *pol, const struct sdp *s, const struct sdp_media *m,
                    const struct sdp *offer, const struct sdp_media *om, struct sec *sec)
{
    memset(sec, 0, sizeof(*sec));
    sec->kind = SEC_PLAIN;

    if (!sdp_media_active(m)) {
        sec->kind = SEC_DISABLED;
        return;
    }
    if (sdp_proto_is_dtls_srtp(m->proto) || m->proto == SDP_PROTO_DTLS_SCTP) {
        if (sdp_media_fingerprint(s, m))
            sec->kind = m->proto == SDP_PROTO_DTLS_SCTP ? SEC_DTLS_DATA : SEC_DTLS;
        else
            fmt_why(sec, "%.*s without a=fingerprint", shown(m->proto_text), m->proto_text.p);
        return;
    }
    if (!sdp_proto_is_sdes(m->proto) && !sdp_proto_is_plain_rtp(m->proto)) {
        fmt_why(sec, "transport %.*s is not encrypted", shown(m->proto_text), m->proto_text.p);
        return;
    }
    enum sec_kind ok_kind = sdp_proto_is_sdes(m->proto) ? SEC_SDES : SEC_OSRTP;
    if (m->lv.ncrypto == 0) {
        if (sdp_level_attr_find(s, &m->lv, "zrtp-hash") ||
            sdp_level_attr_find(s, &s->session, "zrtp-hash"))
            fmt_why(sec,
                    "%.*s with a=zrtp-hash: ZRTP keys are agreed end to end, out of the "
                    "server's sight",
                    shown(m->proto_text), m->proto_text.p);
        else
            fmt_why(sec, "%.*s without a=crypto", shown(m->proto_text), m->proto_text.p);
        return;
    }
    if (offer) {
        /* RFC 4568 §5.1.2: the answer selects exactly one. */
        if (m->lv.ncrypto > 1) {
            fmt_why(sec, "answer carries more than one a=crypto");
            return;
        }
        const struct sdp_crypto *c = sdp_level_crypto(s, &m->lv, 0);
        if (!crypto_usable(pol, c, sec))
            return;
        if (!offered(offer, om, c)) {
            fmt_why(sec, "answer selects a=crypto tag %lu that was not offered", c->tag);
            return;
        }
        sec->kind = ok_kind;
        sec->suite = c->suite;
        return;
    }
    for (size_t i = 0; i < m->lv.ncrypto; i++) {
        struct sec probe;
        const struct sdp_crypto *c = sdp_level_crypto(s, &m->lv, i);
        if (crypto_usable(pol, c, &probe)) {
            sec->kind = ok_kind;
            sec->suite = c->suite;
            return;
        }
        if (i == 0)
            memcpy(sec->why, probe.why, sizeof(sec->why));
    }
}

static void summary_add(struct media_decision *d, const struct media_policy *pol,
                        const struct sdp_media *m, const struct sec *sec, bool offer)
{
    int mn = shown(m->media);

    if (d->summary.len)
        strbuf_puts(&d->summary, "; ");
    switch (sec->kind) {
    case SEC_DISABLED:
        strbuf_printf(&d->summary, "%.*s disabled", mn, m->media.p);
        break;
    case SEC_SDES:
    case SEC_OSRTP:
        strbuf_printf(&d->summary, "%.*s SRTP %.*s%s", mn, m->media.p, shown(sec->suite),
                      sec->suite.p, offer && sec->kind == SEC_OSRTP ? " (optional)" : "");
        break;
    case SEC_DTLS:
        strbuf_printf(&d->summary, "%.*s DTLS-SRTP", mn, m->media.p);
        break;
    case SEC_DTLS_DATA:
        strbuf_printf(&d->summary, "%.*s DTLS", mn, m->media.p);
        break;
    case SEC_PLAIN:
        strbuf_printf(&d->summary, "%.*s unencrypted (level %s)", mn, m->media.p,
                      media_level_name(pol->level));
        break;
    }
}

/* Applies a rewrite, or drops it when the SDP is refused anyway. */
static int finish(struct media_decision *d, struct sdp *s, bool rewrite)
{
    int rc = 0;

    if (d->verdict == MEDIA_REFUSE) {
        warning_sanitize(d->warning);
    } else if (rewrite) {
        d->verdict = MEDIA_REWRITE;
        rc = sdp_write(s, &d->sdp);
    }
    if (!rc && d->summary.err)
        rc = d->summary.err;
    return rc;
}

static int parse_or_explain(struct strview text, const char *what, struct sdp **s,
                            struct media_decision *d)
{
    char err[128];
    int rc = sdp_parse(text, s, err, sizeof(err));

    if (rc == -EINVAL) {
        snprintf(d->warning, sizeof(d->warning), "malformed SDP%s: %s", what, err);
        warning_sanitize(d->warning);
    }
    return rc;
}

int media_policy_offer(const struct media_policy *pol, struct strview sdp,
                       const struct media_hops *hops, struct media_decision *out)
{
    struct sdp *s = NULL;
    bool rewrite = false;
    int rc;

    decision_reset(out);
    if ((rc = parse_or_explain(sdp, "", &s, out)))
        goto out;

    /* First, so that it is the reason given whatever else is wrong. */
    if (!hops->in_tls && sdp_has_keys(s))
        refuse(out, "SDES keys received over an unencrypted hop");

    for (size_t i = 0; i < s->nmedia; i++) {
        const struct sdp_media *m = &s->media[i];
        struct sec sec;
        int mn = shown(m->media), pn = shown(m->proto_text);

        analyze(pol, s, m, NULL, NULL, &sec);
        if (sec.kind == SEC_DISABLED) {
            summary_add(out, pol, m, &sec, true);
            continue;
        }
        switch (pol->level) {
        case MEDIA_LEVEL_REQUIRED:
            if (sec.kind == SEC_PLAIN)
                refuse(out, REQUIRED_TEXT ": %.*s offers %s (%s)", mn, m->media.p,
                       offered_kind(s, m), sec.why);
            break;
        case MEDIA_LEVEL_SUPPORTED:
            break;
        case MEDIA_LEVEL_NOT_SUPPORTED:
            if (sdp_proto_is_sdes(m->proto) || sdp_proto_is_dtls_srtp(m->proto)) {
                refuse(out, NOT_SUPPORTED_TEXT ": %.*s offers %s (%.*s)", mn, m->media.p,
                       offered_kind(s, m), pn, m->proto_text.p);
            } else if (sdp_proto_is_plain_rtp(m->proto) && m->lv.ncrypto) {
                /* Optional SRTP: offered as RTP without the keys. */
                sdp_level_remove_crypto(s, &m->lv);
                rewrite = true;
                sec.kind = SEC_PLAIN;
            }
            break;
        }
        if (!hops->out_tls) {
            if (sdp_proto_is_sdes(m->proto) && m->lv.ncrypto) {
                refuse(out, "SDES keys cannot be sent over an unencrypted hop (%.*s %.*s)", mn,
                       m->media.p, pn, m->proto_text.p);
            } else if (sec.kind == SEC_OSRTP) {
                if (pol->level == MEDIA_LEVEL_REQUIRED)
                    refuse(out,
                           "media encryption required: %.*s cannot be encrypted toward an "
                           "unencrypted hop",
                           mn, m->media.p);
                else
                    sec.kind = SEC_PLAIN; /* its a=crypto goes below */
            }
        }
        summary_add(out, pol, m, &sec, true);
    }
    /* Toward a plain hop no key leaves, wherever it sits (session level,
     * disabled sections, k=, RFC 5939 capabilities). */
    if (!hops->out_tls && sdp_has_keys(s)) {
        sdp_remove_keys(s);
        rewrite = true;
    }
    rc = finish(out, s, rewrite);
out:
    sdp_free(s);
    return rc;
}

int media_policy_answer(const struct media_policy *pol, struct strview offer, struct strview answer,
                        const struct media_hops *hops, struct media_decision *out)
{
    struct sdp *o = NULL, *s = NULL;
    bool rewrite = false;
    int rc;

    decision_reset(out);
    if ((rc = parse_or_explain(offer, " offer", &o, out)))
        goto out;
    if ((rc = parse_or_explain(answer, "", &s, out)))
        goto out;
    if (s->nmedia != o->nmedia) {
        snprintf(out->warning, sizeof(out->warning),
                 "malformed SDP: answer has %zu media sections, offer %zu", s->nmedia, o->nmedia);
        rc = -EINVAL;
        goto out;
    }

    if (!hops->in_tls && sdp_has_keys(s))
        refuse(out, "SDES keys received over an unencrypted hop");

    for (size_t i = 0; i < s->nmedia; i++) {
        const struct sdp_media *m = &s->media[i];
        struct sec sec;
        int mn = shown(m->media), pn = shown(m->proto_text);

        analyze(pol, s, m, o, &o->media[i], &sec);
        if (sec.kind != SEC_DISABLED) {
            if (pol->level == MEDIA_LEVEL_REQUIRED && sec.kind == SEC_PLAIN)
                refuse(out, REQUIRED_TEXT ": %.*s answer carries %s (%s)", mn, m->media.p,
                       offered_kind(s, m), sec.why);
            if (pol->level == MEDIA_LEVEL_NOT_SUPPORTED &&
                (sdp_proto_is_sdes(m->proto) || sdp_proto_is_dtls_srtp(m->proto) ||
                 (sdp_proto_is_plain_rtp(m->proto) && m->lv.ncrypto)))
                refuse(out, NOT_SUPPORTED_TEXT ": %.*s answer selects %s (%.*s)", mn, m->media.p,
                       offered_kind(s, m), pn, m->proto_text.p);
            /* Removing the key an answerer selected would not un-select
             * SRTP at its end: the call could only fail later. */
            if (!hops->out_tls &&
                (sdp_proto_is_sdes(m->proto) || sdp_proto_is_plain_rtp(m->proto)) && m->lv.ncrypto)
                refuse(out, "SDES keys cannot be sent over an unencrypted hop (%.*s %.*s)", mn,
                       m->media.p, pn, m->proto_text.p);
        }
        summary_add(out, pol, m, &sec, false);
    }
    if (!hops->out_tls && sdp_has_keys(s)) {
        sdp_remove_keys(s);
        rewrite = true;
    }
    rc = finish(out, s, rewrite);
out:
    sdp_free(o);
    sdp_free(s);
    return rc;
}
