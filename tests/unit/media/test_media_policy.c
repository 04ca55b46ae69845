#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/log.h"
#include "core/strbuf.h"
#include "crypto/policy.h"
#include "media/policy.h"
#include "media/sdp.h"
#include "sdp_samples.h"

/* --- the matrix ------------------------------------------------------------
 *
 * level {required, supported, not_supported} × offer shape × answer shape ×
 * hop {in TLS/out TLS, in TCP/out TLS, in TLS/out TCP}. Each row states the
 * verdict, a substring of the warning for refusals ("" otherwise) and the
 * exact summary. The rows were written out from the rules in
 * src/media/policy.h, not from the implementation.
 */

enum lvl { L_R, L_S, L_N };
enum offer_shape {
    O_PLAIN,    /* RTP/AVP, no a=crypto */
    O_OSRTP,    /* RTP/AVP with a=crypto (RFC 8643) */
    O_SAVP,     /* RTP/SAVP with a=crypto */
    O_SAVPF,    /* RTP/SAVPF with a=crypto (AEAD_AES_128_GCM first) */
    O_DTLS,     /* UDP/TLS/RTP/SAVPF with a=fingerprint */
    O_NULLC,    /* RTP/SAVP, only a NULL-cipher a=crypto */
    O_UNKNOWN,  /* RTP/SAVP, only an unknown-suite a=crypto */
    O_DISABLED, /* port 0 (with an a=crypto left in it) */
    O_MIXED,    /* audio RTP/SAVP with a=crypto + video plain RTP/AVP */
};
enum answer_shape {
    A_PLAIN,    /* RTP/AVP without a=crypto */
    A_SRTP,     /* selects a=crypto tag 1 (the offer's first suite) */
    A_DTLS,     /* UDP/TLS/RTP/SAVPF with a=fingerprint */
    A_REJECTED, /* port 0 */
};
enum hop { H_TLS, H_IN_TCP, H_OUT_TCP };

struct offer_row {
    enum lvl level;
    enum offer_shape offer;
    enum hop hop;
    enum media_verdict verdict;
    const char *warning;
    const char *summary;
};

struct answer_row {
    enum lvl level;
    enum offer_shape offer;
    enum answer_shape answer;
    enum hop hop;
    enum media_verdict verdict;
    const char *warning;
    const char *summary;
};

#include "media_policy_rows.h"

#define OFFER_HEAD                                                                                 \
    "v=0\r\n"                                                                                      \
    "o=- 42 1 IN IP4 192.0.2.10\r\n"                                                               \
    "s=-\r\n"                                                                                      \
    "c=IN IP4 192.0.2.10\r\n"                                                                      \
    "t=0 0\r\n"
#define ANSWER_HEAD                                                                                \
    "v=0\r\n"                                                                                      \
    "o=- 77 1 IN IP4 192.0.2.20\r\n"                                                               \
    "s=-\r\n"                                                                                      \
    "c=IN IP4 192.0.2.20\r\n"                                                                      \
    "t=0 0\r\n"

/* One offered section: its text and what an answer needs to know. */
struct osec {
    const char *media, *proto, *fmt;
    const char *suite1; /* the suite of a=crypto tag 1, NULL when none */
    bool disabled;
    const char *text;
};

#define AUDIO_DTLS_SECTION                                                                         \
    "m=audio 4000 UDP/TLS/RTP/SAVP 0\r\n"                                                          \
    "a=fingerprint:sha-256 " FP_A "\r\n"                                                           \
    "a=setup:actpass\r\n"

static const struct osec sec_plain = {"audio",
                                      "RTP/AVP",
                                      "0",
                                      NULL,
                                      false,
                                      "m=audio 4000 RTP/AVP 0 8\r\n"
                                      "a=rtpmap:0 PCMU/8000\r\n"
                                      "a=sendrecv\r\n"};
static const struct osec sec_osrtp = {"audio",
                                      "RTP/AVP",
                                      "0",
                                      "AES_CM_128_HMAC_SHA1_80",
                                      false,
                                      "m=audio 4000 RTP/AVP 0\r\n"
                                      "a=rtpmap:0 PCMU/8000\r\n"
                                      "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" KEY30_A "\r\n"
                                      "a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:" KEY30_B "\r\n"
                                      "a=ptime:20\r\n"};
static const struct osec sec_savp = {"audio",
                                     "RTP/SAVP",
                                     "0",
                                     "AES_CM_128_HMAC_SHA1_80",
                                     false,
                                     "m=audio 4000 RTP/SAVP 0\r\n"
                                     "a=rtpmap:0 PCMU/8000\r\n"
                                     "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" KEY30_A "\r\n"
                                     "a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:" KEY30_B "\r\n"
                                     "a=ptime:20\r\n"};
static const struct osec sec_savpf = {"audio",
                                      "RTP/SAVPF",
                                      "96",
                                      "AEAD_AES_128_GCM",
                                      false,
                                      "m=audio 4000 RTP/SAVPF 96\r\n"
                                      "a=rtpmap:96 opus/48000/2\r\n"
                                      "a=rtcp-fb:96 nack\r\n"
                                      "a=crypto:1 AEAD_AES_128_GCM inline:" KEY28 "\r\n"
                                      "a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:" KEY30_A "\r\n"};
static const struct osec sec_dtls = {"video",
                                     "UDP/TLS/RTP/SAVPF",
                                     "96",
                                     NULL,
                                     false,
                                     "m=video 4002 UDP/TLS/RTP/SAVPF 96\r\n"
                                     "a=rtpmap:96 VP8/90000\r\n"
                                     "a=fingerprint:sha-256 " FP_A "\r\n"
                                     "a=setup:actpass\r\n"
                                     "a=rtcp-mux\r\n"};
static const struct osec sec_nullc = {"audio",
                                      "RTP/SAVP",
                                      "0",
                                      "NULL_HMAC_SHA1_80",
                                      false,
                                      "m=audio 4000 RTP/SAVP 0\r\n"
                                      "a=crypto:1 NULL_HMAC_SHA1_80 inline:" KEY30_A "\r\n"};
static const struct osec sec_unknown = {"audio",
                                        "RTP/SAVP",
                                        "0",
                                        "FOO_CM_256_HMAC_SHA3_80",
                                        false,
                                        "m=audio 4000 RTP/SAVP 0\r\n"
                                        "a=crypto:1 FOO_CM_256_HMAC_SHA3_80 inline:" KEY30_A
                                        "\r\n"};
static const struct osec sec_disabled = {"audio",
                                         "RTP/SAVP",
                                         "0",
                                         "AES_CM_128_HMAC_SHA1_80",
                                         true,
                                         "m=audio 0 RTP/SAVP 0\r\n"
                                         "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" KEY30_A
                                         "\r\n"};
static const struct osec sec_video_plain = {"video",
                                            "RTP/AVP",
                                            "96",
                                            NULL,
                                            false,
                                            "m=video 4002 RTP/AVP 96\r\n"
                                            "a=rtpmap:96 H264/90000\r\n"};

static size_t offer_secs(enum offer_shape o, const struct osec **out)
{
    switch (o) {
    case O_PLAIN:
        out[0] = &sec_plain;
        return 1;
    case O_OSRTP:
        out[0] = &sec_osrtp;
        return 1;
    case O_SAVP:
        out[0] = &sec_savp;
        return 1;
    case O_SAVPF:
        out[0] = &sec_savpf;
        return 1;
    case O_DTLS:
        out[0] = &sec_dtls;
        return 1;
    case O_NULLC:
        out[0] = &sec_nullc;
        return 1;
    case O_UNKNOWN:
        out[0] = &sec_unknown;
        return 1;
    case O_DISABLED:
        out[0] = &sec_disabled;
        return 1;
    case O_MIXED:
        out[0] = &sec_savp;
        out[1] = &sec_video_plain;
        return 2;
    }
    return 0;
}

static void build_offer(enum offer_shape o, struct strbuf *b)
{
    const struct osec *secs[2];
    size_t n = offer_secs(o, secs);
    strbuf_puts(b, OFFER_HEAD);
    for (size_t i = 0; i < n; i++)
        strbuf_puts(b, secs[i]->text);
}

static const char *key_for(const char *suite)
{
    if (strcmp(suite, "AEAD_AES_128_GCM") == 0)
        return KEY28;
    if (strcmp(suite, "AEAD_AES_256_GCM") == 0)
        return KEY44;
    return KEY30_C;
}

static void build_answer(enum offer_shape o, enum answer_shape a, struct strbuf *b)
{
    const struct osec *secs[2];
    size_t n = offer_secs(o, secs);
    strbuf_puts(b, ANSWER_HEAD);
    for (size_t i = 0; i < n; i++) {
        const struct osec *s = secs[i];
        if (s->disabled || a == A_REJECTED) {
            strbuf_printf(b, "m=%s 0 %s %s\r\n", s->media, s->proto, s->fmt);
        } else if (a == A_PLAIN) {
            strbuf_printf(b, "m=%s 5000 RTP/AVP %s\r\na=sendrecv\r\n", s->media, s->fmt);
        } else if (a == A_DTLS) {
            strbuf_printf(b,
                          "m=%s 5000 UDP/TLS/RTP/SAVPF %s\r\na=fingerprint:sha-256 " FP_B
                          "\r\na=setup:active\r\na=rtcp-mux\r\n",
                          s->media, s->fmt);
        } else {
            const char *proto = strstr(s->proto, "UDP/TLS") ? "RTP/SAVPF" : s->proto;
            const char *suite = s->suite1 ? s->suite1 : "AES_CM_128_HMAC_SHA1_80";
            strbuf_printf(b, "m=%s 5000 %s %s\r\na=crypto:1 %s inline:%s\r\n", s->media, proto,
                          s->fmt, suite, key_for(suite));
        }
    }
}

static const enum media_level levels[] = {MEDIA_LEVEL_REQUIRED, MEDIA_LEVEL_SUPPORTED,
                                          MEDIA_LEVEL_NOT_SUPPORTED};
static const struct media_hops hops_of[] = {
    {true, true},  /* H_TLS */
    {false, true}, /* H_IN_TCP */
    {true, false}, /* H_OUT_TCP */
};
static const char *const verdict_names[] = {"PASS", "REWRITE", "REFUSE"};

static struct media_policy default_policy(enum media_level level)
{
    struct media_policy p = {.level = level};
    p.suites = crypto_srtp_suites_default(&p.nsuites);
    return p;
}

/* Deletes every line of text that starts with prefix. */
static char *drop_lines(const char *text, const char *prefix)
{
    struct strbuf b = STRBUF_INIT;
    const char *p = text;
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) + 1 : strlen(p);
        if (strncmp(p, prefix, strlen(prefix)) != 0)
            strbuf_append(&b, p, n);
        p += n;
    }
    char *r = strbuf_take(&b, NULL);
    return r ? r : strdup("");
}

static void check_decision(const char *what, size_t row, const char *input,
                           const struct media_decision *d, enum media_verdict verdict,
                           const char *warning, const char *summary)
{
    if (d->verdict != verdict)
        fail_msg("%s row %zu: verdict %s, wanted %s (warning \"%s\")\n---\n%s", what, row,
                 verdict_names[d->verdict], verdict_names[verdict], d->warning, input);
    if (verdict == MEDIA_REFUSE) {
        if (!warning[0] || !strstr(d->warning, warning))
            fail_msg("%s row %zu: warning \"%s\", wanted \"%s\"", what, row, d->warning, warning);
    } else if (d->warning[0]) {
        fail_msg("%s row %zu: unexpected warning \"%s\"", what, row, d->warning);
    }
    if (strcmp(strbuf_cstr((struct strbuf *)&d->summary), summary) != 0)
        fail_msg("%s row %zu: summary \"%s\", wanted \"%s\"", what, row,
                 strbuf_cstr((struct strbuf *)&d->summary), summary);
    if (verdict == MEDIA_REWRITE) {
        /* the keys gone, everything else (profiles included) untouched */
        char *want = drop_lines(input, "a=crypto:");
        if (strcmp(strbuf_cstr((struct strbuf *)&d->sdp), want) != 0)
            fail_msg("%s row %zu: rewritten SDP\n%s\nwanted\n%s", what, row,
                     strbuf_cstr((struct strbuf *)&d->sdp), want);
        assert_null(strstr(d->sdp.p, "a=crypto"));
        free(want);
    } else if (d->sdp.len != 0) {
        fail_msg("%s row %zu: an SDP without REWRITE", what, row);
    }
}

static void test_offer_matrix(void **state)
{
    (void)state;
    struct media_decision d;
    media_decision_init(&d);
    assert_int_equal(sizeof(offer_rows) / sizeof(offer_rows[0]), 3 * 9 * 3);
    for (size_t i = 0; i < sizeof(offer_rows) / sizeof(offer_rows[0]); i++) {
        const struct offer_row *r = &offer_rows[i];
        struct strbuf offer = STRBUF_INIT;
        struct media_policy pol = default_policy(levels[r->level]);
        build_offer(r->offer, &offer);
        int rc = media_policy_offer(&pol, strview_make(offer.p, offer.len), &hops_of[r->hop], &d);
        if (rc != 0)
            fail_msg("offer row %zu: rc %d (%s)", i, rc, d.warning);
        check_decision("offer", i, strbuf_cstr(&offer), &d, r->verdict, r->warning, r->summary);
        strbuf_free(&offer);
    }
    media_decision_free(&d);
}

static void test_answer_matrix(void **state)
{
    (void)state;
    struct media_decision d;
    media_decision_init(&d);
    assert_int_equal(sizeof(answer_rows) / sizeof(answer_rows[0]), 3 * 9 * 4 * 3);
    for (size_t i = 0; i < sizeof(answer_rows) / sizeof(answer_rows[0]); i++) {
        const struct answer_row *r = &answer_rows[i];
        struct strbuf offer = STRBUF_INIT, answer = STRBUF_INIT;
        struct media_policy pol = default_policy(levels[r->level]);
        build_offer(r->offer, &offer);
        build_answer(r->offer, r->answer, &answer);
        int rc = media_policy_answer(&pol, strview_make(offer.p, offer.len),
                                     strview_make(answer.p, answer.len), &hops_of[r->hop], &d);
        if (rc != 0)
            fail_msg("answer row %zu: rc %d (%s)", i, rc, d.warning);
        check_decision("answer", i, strbuf_cstr(&answer), &d, r->verdict, r->warning, r->summary);
        strbuf_free(&offer);
        strbuf_free(&answer);
    }
    media_decision_free(&d);
}

/* --- one-off cases ----------------------------------------------------------- */

struct one {
    enum media_verdict verdict;
    char warning[MEDIA_WARNING_MAX];
    char *summary;
    char *sdp;
};

static struct one run_offer_with(const struct media_policy *pol, const char *sdp,
                                 struct media_hops hops)
{
    struct media_decision d;
    struct one o = {0};
    media_decision_init(&d);
    int rc = media_policy_offer(pol, strview_cstr(sdp), &hops, &d);
    if (rc)
        fail_msg("media_policy_offer: %d %s", rc, d.warning);
    o.verdict = d.verdict;
    memcpy(o.warning, d.warning, sizeof(o.warning));
    o.summary = strdup(strbuf_cstr(&d.summary));
    o.sdp = strdup(strbuf_cstr(&d.sdp));
    media_decision_free(&d);
    return o;
}

static struct one run_offer(enum media_level level, const char *sdp)
{
    struct media_policy pol = default_policy(level);
    return run_offer_with(&pol, sdp, (struct media_hops){true, true});
}

static struct one run_answer(enum media_level level, const char *offer, const char *answer,
                             struct media_hops hops)
{
    struct media_policy pol = default_policy(level);
    struct media_decision d;
    struct one o = {0};
    media_decision_init(&d);
    int rc = media_policy_answer(&pol, strview_cstr(offer), strview_cstr(answer), &hops, &d);
    if (rc)
        fail_msg("media_policy_answer: %d %s", rc, d.warning);
    o.verdict = d.verdict;
    memcpy(o.warning, d.warning, sizeof(o.warning));
    o.summary = strdup(strbuf_cstr(&d.summary));
    o.sdp = strdup(strbuf_cstr(&d.sdp));
    media_decision_free(&d);
    return o;
}

static void one_free(struct one *o)
{
    free(o->summary);
    free(o->sdp);
}

static void expect(struct one o, enum media_verdict v, const char *warning, const char *summary)
{
    if (o.verdict != v)
        fail_msg("verdict %s, wanted %s (warning \"%s\")", verdict_names[o.verdict],
                 verdict_names[v], o.warning);
    if (warning && !strstr(o.warning, warning))
        fail_msg("warning \"%s\", wanted \"%s\"", o.warning, warning);
    if (!warning && o.warning[0])
        fail_msg("unexpected warning \"%s\"", o.warning);
    if (summary && strcmp(o.summary, summary) != 0)
        fail_msg("summary \"%s\", wanted \"%s\"", o.summary, summary);
    one_free(&o);
}

static void test_levels(void **state)
{
    (void)state;
    enum media_level l;
    assert_int_equal(media_level_parse("required", &l), 0);
    assert_int_equal(l, MEDIA_LEVEL_REQUIRED);
    assert_int_equal(media_level_parse("supported", &l), 0);
    assert_int_equal(l, MEDIA_LEVEL_SUPPORTED);
    assert_int_equal(media_level_parse("not_supported", &l), 0);
    assert_int_equal(l, MEDIA_LEVEL_NOT_SUPPORTED);
    assert_int_equal(media_level_parse("Required", &l), -EINVAL);
    assert_int_equal(media_level_parse("", &l), -EINVAL);
    assert_int_equal(media_level_parse(NULL, &l), -EINVAL);
    assert_string_equal(media_level_name(MEDIA_LEVEL_REQUIRED), "required");
    assert_string_equal(media_level_name(MEDIA_LEVEL_SUPPORTED), "supported");
    assert_string_equal(media_level_name(MEDIA_LEVEL_NOT_SUPPORTED), "not_supported");
    assert_string_equal(media_level_name((enum media_level)7), "unknown");
}

static void test_crypto_suite_table(void **state)
{
    (void)state;
    size_t n;
    const char *const *def = crypto_srtp_suites_default(&n);
    assert_int_equal(n, 3);
    assert_string_equal(def[0], "AES_CM_128_HMAC_SHA1_80");
    assert_string_equal(def[1], "AEAD_AES_128_GCM");
    assert_string_equal(def[2], "AEAD_AES_256_GCM");

    assert_true(crypto_srtp_suite_known(strview_cstr("AES_CM_128_HMAC_SHA1_32")));
    assert_true(crypto_srtp_suite_known(strview_cstr("NULL_HMAC_SHA1_80")));
    assert_false(crypto_srtp_suite_known(strview_cstr("aes_cm_128_hmac_sha1_80")));
    assert_false(crypto_srtp_suite_known(strview_cstr("AES_CM_128_HMAC_SHA1_8")));
    assert_false(crypto_srtp_suite_known(STRVIEW_EMPTY));

    assert_true(crypto_srtp_suite_protects(strview_cstr("AEAD_AES_256_GCM")));
    assert_false(crypto_srtp_suite_protects(strview_cstr("NULL_HMAC_SHA1_32")));
    assert_false(crypto_srtp_suite_protects(strview_cstr("BOGUS")));

    assert_true(crypto_srtp_suite_fips(strview_cstr("AES_CM_128_HMAC_SHA1_80")));
    assert_true(crypto_srtp_suite_fips(strview_cstr("AES_CM_128_HMAC_SHA1_32")));
    assert_true(crypto_srtp_suite_fips(strview_cstr("AEAD_AES_128_GCM")));
    assert_true(crypto_srtp_suite_fips(strview_cstr("AEAD_AES_256_GCM")));
    assert_false(crypto_srtp_suite_fips(strview_cstr("F8_128_HMAC_SHA1_80")));
    assert_false(crypto_srtp_suite_fips(strview_cstr("NULL_HMAC_SHA1_80")));
    assert_false(crypto_srtp_suite_fips(strview_cstr("BOGUS")));

    assert_int_equal(crypto_srtp_suite_inline_len(strview_cstr("AES_CM_128_HMAC_SHA1_80")), 30);
    assert_int_equal(crypto_srtp_suite_inline_len(strview_cstr("AEAD_AES_128_GCM")), 28);
    assert_int_equal(crypto_srtp_suite_inline_len(strview_cstr("AEAD_AES_256_GCM")), 44);
    assert_int_equal(crypto_srtp_suite_inline_len(strview_cstr("AES_256_CM_HMAC_SHA1_80")), 46);
    assert_int_equal(crypto_srtp_suite_inline_len(strview_cstr("BOGUS")), 0);
    const struct crypto_srtp_suite *s = crypto_srtp_suite_find(strview_cstr("NULL_HMAC_SHA1_80"));
    assert_non_null(s);
    assert_false(s->encrypts);
    assert_true(s->authenticates);

    const struct crypto_srtp_suite *all = crypto_srtp_suites_all(&n);
    assert_true(n >= 4);
    for (size_t i = 0; i < n; i++)
        assert_ptr_equal(crypto_srtp_suite_find(strview_cstr(all[i].name)), &all[i]);

    /* FIPS narrowing keeps order, drops F8, NULL and unknown, honours cap */
    const char *in[] = {
        "F8_128_HMAC_SHA1_80",     "AEAD_AES_256_GCM",       "NULL_HMAC_SHA1_80", NULL, "BOGUS",
        "AES_CM_128_HMAC_SHA1_32", "AES_CM_128_HMAC_SHA1_80"};
    const char *out[8];
    assert_int_equal(crypto_srtp_suites_narrow_fips(in, 7, out, 8), 3);
    assert_string_equal(out[0], "AEAD_AES_256_GCM");
    assert_string_equal(out[1], "AES_CM_128_HMAC_SHA1_32");
    assert_string_equal(out[2], "AES_CM_128_HMAC_SHA1_80");
    assert_int_equal(crypto_srtp_suites_narrow_fips(in, 7, out, 2), 2);
    assert_int_equal(crypto_srtp_suites_narrow_fips(in, 0, out, 8), 0);
}

#define SAVP_WITH(crypto_lines) OFFER_HEAD "m=audio 4000 RTP/SAVP 0\r\n" crypto_lines

static void test_suite_policy(void **state)
{
    (void)state;
    /* the real baresip offer: first allowed suite wins the summary */
    expect(run_offer(MEDIA_LEVEL_REQUIRED, SDP_BARESIP_SRTP_MAND), MEDIA_PASS, NULL,
           "audio SRTP AES_CM_128_HMAC_SHA1_80");
    expect(run_offer(MEDIA_LEVEL_REQUIRED, SDP_BARESIP_SRTP_OPT), MEDIA_PASS, NULL,
           "audio SRTP AES_CM_128_HMAC_SHA1_80 (optional)");

    /* a configured list: only _32 */
    const char *only32[] = {"AES_CM_128_HMAC_SHA1_32"};
    struct media_policy pol = {MEDIA_LEVEL_REQUIRED, only32, 1};
    expect(run_offer_with(&pol, SDP_BARESIP_SRTP_MAND, (struct media_hops){true, true}), MEDIA_PASS,
           NULL, "audio SRTP AES_CM_128_HMAC_SHA1_32");
    expect(run_offer_with(&pol,
                          SAVP_WITH("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" KEY30_A "\r\n"),
                          (struct media_hops){true, true}),
           MEDIA_REFUSE, "SRTP suite AES_CM_128_HMAC_SHA1_80 not allowed", NULL);

    /* an empty list: SDES never counts, DTLS still does */
    struct media_policy none = {MEDIA_LEVEL_REQUIRED, NULL, 0};
    expect(run_offer_with(&none, SDP_BARESIP_SRTP_MAND, (struct media_hops){true, true}),
           MEDIA_REFUSE,
           "media encryption required (SDES-SRTP or DTLS-SRTP): audio offers SDES (SRTP suite "
           "AES_CM_128_HMAC_SHA1_32 not allowed)",
           "audio unencrypted (level required)");
    expect(run_offer_with(&none, SDP_LINPHONE_DTLS, (struct media_hops){true, true}), MEDIA_PASS,
           NULL, "audio DTLS-SRTP; video DTLS-SRTP");

    /* a FIPS-narrowed list from the table */
    const char *narrowed[8];
    const char *conf[] = {"F8_128_HMAC_SHA1_80", "AEAD_AES_256_GCM"};
    struct media_policy fips = {MEDIA_LEVEL_REQUIRED, narrowed,
                                crypto_srtp_suites_narrow_fips(conf, 2, narrowed, 8)};
    expect(run_offer_with(&fips,
                          SAVP_WITH("a=crypto:1 F8_128_HMAC_SHA1_80 inline:" KEY30_A "\r\n"
                                    "a=crypto:2 AEAD_AES_256_GCM inline:" KEY44 "\r\n"),
                          (struct media_hops){true, true}),
           MEDIA_PASS, NULL, "audio SRTP AEAD_AES_256_GCM");
    /* a known but non-encrypting suite in the configured list still does not count */
    const char *nulls[] = {"NULL_HMAC_SHA1_80"};
    struct media_policy bad = {MEDIA_LEVEL_REQUIRED, nulls, 1};
    expect(run_offer_with(&bad, SAVP_WITH("a=crypto:1 NULL_HMAC_SHA1_80 inline:" KEY30_A "\r\n"),
                          (struct media_hops){true, true}),
           MEDIA_REFUSE, "SRTP suite NULL_HMAC_SHA1_80 does not encrypt", NULL);
    const char *unknowns[] = {"ROT13_HMAC_SHA1_80"};
    struct media_policy unk = {MEDIA_LEVEL_REQUIRED, unknowns, 1};
    expect(run_offer_with(&unk, SAVP_WITH("a=crypto:1 ROT13_HMAC_SHA1_80 inline:" KEY30_A "\r\n"),
                          (struct media_hops){true, true}),
           MEDIA_REFUSE, "unknown SRTP suite ROT13_HMAC_SHA1_80", NULL);
}

static void test_session_params_and_keys(void **state)
{
    (void)state;
    const enum media_level R = MEDIA_LEVEL_REQUIRED;
    expect(run_offer(R, SAVP_WITH("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" KEY30_A
                                  " UNENCRYPTED_SRTP\r\n")),
           MEDIA_REFUSE, "a=crypto with UNENCRYPTED_SRTP", "audio unencrypted (level required)");
    expect(run_offer(R, SAVP_WITH("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" KEY30_A
                                  " UNAUTHENTICATED_SRTP\r\n")),
           MEDIA_REFUSE, "a=crypto with UNAUTHENTICATED_SRTP", NULL);
    expect(run_offer(R, SAVP_WITH("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" KEY30_A
                                  " unencrypted_srtcp\r\n")),
           MEDIA_REFUSE, "a=crypto with UNENCRYPTED_SRTCP", NULL);
    /* KDR, lifetime, MKI and unknown parameters do not weaken anything */
    expect(run_offer(R, SAVP_WITH("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" KEY30_A
                                  "|2^31|1:4 KDR=10 WSH=64\r\n")),
           MEDIA_PASS, NULL, "audio SRTP AES_CM_128_HMAC_SHA1_80");
    /* a weak first line does not hide a good second one */
    expect(run_offer(R, SAVP_WITH("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" KEY30_A
                                  " UNENCRYPTED_SRTP\r\n"
                                  "a=crypto:2 AEAD_AES_256_GCM inline:" KEY44 "\r\n")),
           MEDIA_PASS, NULL, "audio SRTP AEAD_AES_256_GCM");

    /* several keys need distinct MKIs of one length */
    expect(run_offer(R, SAVP_WITH("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" KEY30_A
                                  "|2^20|1:4;inline:" KEY30_B "|2^20|2:4\r\n")),
           MEDIA_PASS, NULL, "audio SRTP AES_CM_128_HMAC_SHA1_80");
    expect(run_offer(R, SAVP_WITH("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" KEY30_A
                                  ";inline:" KEY30_B "\r\n")),
           MEDIA_REFUSE, "several keys needs MKIs of one length", NULL);
    expect(run_offer(R, SAVP_WITH("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" KEY30_A
                                  "|1:4;inline:" KEY30_B "|2:2\r\n")),
           MEDIA_REFUSE, "several keys needs MKIs of one length", NULL);
    expect(run_offer(R, SAVP_WITH("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" KEY30_A
                                  "|7:4;inline:" KEY30_B "|7:4\r\n")),
           MEDIA_REFUSE, "two keys of the same MKI", NULL);
    /* a key method we cannot check */
    expect(run_offer(R, SAVP_WITH("a=crypto:1 AES_CM_128_HMAC_SHA1_80 uri:opaque\r\n")),
           MEDIA_REFUSE, "key method uri not supported", NULL);
    /* unpadded base64 of the right length is accepted */
    expect(run_offer(R, SAVP_WITH("a=crypto:1 AEAD_AES_128_GCM inline:"
                                  "eoGz8QtNqhTOrgv34854l/bKZQ7g86IuQBMtbg\r\n")),
           MEDIA_PASS, NULL, "audio SRTP AEAD_AES_128_GCM");
    /* a key that is not canonical base64 (non-zero trailing bits) */
    expect(run_offer(R, SAVP_WITH("a=crypto:1 AEAD_AES_128_GCM inline:"
                                  "eoGz8QtNqhTOrgv34854l/bKZQ7g86IuQBMtbh==\r\n")),
           MEDIA_REFUSE, "inline key of wrong length for AEAD_AES_128_GCM", NULL);
}

/* Wrong key lengths: not encrypted, a warning logged, the key never shown. */
static void test_wrong_key_length(void **state)
{
    (void)state;
    char path[] = "/tmp/parley-test-media-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    log_set_fd(fd);

    static const struct {
        const char *line;
        const char *suite;
    } cases[] = {
        {"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" KEY29 "\r\n", "AES_CM_128_HMAC_SHA1_80"},
        {"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" KEY28 "\r\n", "AES_CM_128_HMAC_SHA1_80"},
        {"a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:" KEY44 "|2^31\r\n", "AES_CM_128_HMAC_SHA1_32"},
        {"a=crypto:1 AEAD_AES_128_GCM inline:" KEY30_A "\r\n", "AEAD_AES_128_GCM"},
        {"a=crypto:1 AEAD_AES_256_GCM inline:" KEY28 "|1:1\r\n", "AEAD_AES_256_GCM"},
        {"a=crypto:1 AEAD_AES_256_GCM inline:" KEY44 KEY44 "\r\n", "AEAD_AES_256_GCM"},
        {"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:====\r\n", "AES_CM_128_HMAC_SHA1_80"},
        {"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:A\r\n", "AES_CM_128_HMAC_SHA1_80"},
    };
    const char *suites[] = {"AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32",
                            "AEAD_AES_128_GCM", "AEAD_AES_256_GCM"};
    struct media_policy pol = {MEDIA_LEVEL_REQUIRED, suites, 4};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct strbuf b = STRBUF_INIT, want = STRBUF_INIT;
        strbuf_printf(&b, SAVP_WITH("%s"), cases[i].line);
        strbuf_printf(&want, "inline key of wrong length for %s", cases[i].suite);
        expect(run_offer_with(&pol, strbuf_cstr(&b), (struct media_hops){true, true}), MEDIA_REFUSE,
               strbuf_cstr(&want), "audio unencrypted (level required)");
        strbuf_free(&b);
        strbuf_free(&want);
    }
    /* under supported the call goes on, unencrypted, and the log says why */
    pol.level = MEDIA_LEVEL_SUPPORTED;
    expect(run_offer_with(&pol,
                          SAVP_WITH("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" KEY29 "\r\n"),
                          (struct media_hops){true, true}),
           MEDIA_PASS, NULL, "audio unencrypted (level supported)");

    log_set_fd(2);
    char buf[8192];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    close(fd);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "event=media.crypto_key_length"));
    assert_non_null(strstr(buf, "suite=AEAD_AES_256_GCM"));
    assert_non_null(strstr(buf, "expected=30"));
    assert_null(strstr(buf, KEY29));
    assert_null(strstr(buf, KEY28));
    assert_null(strstr(buf, KEY44));
    assert_null(strstr(buf, "inline"));
}

static void test_dtls_and_other_transports(void **state)
{
    (void)state;
    const enum media_level R = MEDIA_LEVEL_REQUIRED;
    expect(run_offer(R, SDP_WEBRTC), MEDIA_PASS, NULL,
           "audio DTLS-SRTP; video DTLS-SRTP; application DTLS");
    expect(run_offer(MEDIA_LEVEL_NOT_SUPPORTED, SDP_WEBRTC), MEDIA_REFUSE,
           "media encryption not supported (plain RTP only): audio offers DTLS-SRTP "
           "(UDP/TLS/RTP/SAVPF)",
           NULL);
    expect(run_offer(R, SDP_LINPHONE_DTLS), MEDIA_PASS, NULL, "audio DTLS-SRTP; video DTLS-SRTP");
    /* DTLS without any fingerprint */
    expect(run_offer(R, OFFER_HEAD "m=audio 4000 UDP/TLS/RTP/SAVP 0\r\na=setup:actpass\r\n"),
           MEDIA_REFUSE, "audio offers DTLS-SRTP (UDP/TLS/RTP/SAVP without a=fingerprint)",
           "audio unencrypted (level required)");
    expect(run_offer(R, OFFER_HEAD "m=application 4000 UDP/DTLS/SCTP webrtc-datachannel\r\n"),
           MEDIA_REFUSE, "UDP/DTLS/SCTP without a=fingerprint", NULL);
    expect(run_offer(MEDIA_LEVEL_NOT_SUPPORTED,
                     OFFER_HEAD "m=application 4000 UDP/DTLS/SCTP webrtc-datachannel\r\n"
                                "a=fingerprint:sha-256 " FP_A "\r\n"),
           MEDIA_PASS, NULL, "application DTLS");
    expect(run_offer(R, OFFER_HEAD "m=audio 4000 TCP/DTLS/RTP/SAVPF 0\r\na=fingerprint:sha-1 "
                                   "AB:CD\r\n"),
           MEDIA_PASS, NULL, "audio DTLS-SRTP");
    /* other transports are not encryption; disabled ones do not matter */
    expect(run_offer(R, OFFER_HEAD "m=image 4000 udptl t38\r\n"), MEDIA_REFUSE,
           "media encryption required (SDES-SRTP or DTLS-SRTP): image offers no encryption "
           "(transport udptl is not encrypted)",
           "image unencrypted (level required)");
    expect(run_offer(R, OFFER_HEAD "m=image 0 udptl t38\r\n" AUDIO_DTLS_SECTION), MEDIA_PASS, NULL,
           "image disabled; audio DTLS-SRTP");
    /* a lower-case profile is still SRTP, and still demands it */
    expect(run_offer(MEDIA_LEVEL_NOT_SUPPORTED,
                     OFFER_HEAD "m=audio 4000 rtp/savp 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 "
                                "inline:" KEY30_A "\r\n"),
           MEDIA_REFUSE, "offers SDES (rtp/savp)", NULL);
    /* ZRTP (keys agreed end to end): named for what it is */
    expect(run_offer(R, OFFER_HEAD
                     "m=audio 4000 RTP/AVP 0\r\na=zrtp-hash:1.10 "
                     "fe30efd02423cb054e50efd0248742ac7a52c8f91bc2df881ae642c371ba46df\r\n"),
           MEDIA_REFUSE,
           "media encryption required (SDES-SRTP or DTLS-SRTP): audio offers ZRTP only (RTP/AVP "
           "with a=zrtp-hash: ZRTP keys are agreed end to end, out of the server's sight)",
           NULL);
    expect(run_offer(R, OFFER_HEAD "a=zrtp-hash:1.10 ab\r\nm=audio 4000 RTP/AVP 0\r\n"),
           MEDIA_REFUSE, "audio offers ZRTP only", NULL);
    /* RTP/SAVP without any a=crypto */
    expect(run_offer(R, OFFER_HEAD "m=audio 4000 RTP/SAVP 0\r\n"), MEDIA_REFUSE,
           "audio offers SRTP without keys (RTP/SAVP without a=crypto)", NULL);
    expect(run_offer(MEDIA_LEVEL_SUPPORTED, OFFER_HEAD "m=audio 4000 RTP/SAVP 0\r\n"), MEDIA_PASS,
           NULL, "audio unencrypted (level supported)");
}

static void test_keys_travel_only_over_tls(void **state)
{
    (void)state;
    struct media_policy pol = default_policy(MEDIA_LEVEL_SUPPORTED);
    const struct media_hops in_tcp = {false, true}, out_tcp = {true, false};

    /* keys anywhere in an SDP that came over TCP: session level, k=, RFC 5939 */
    expect(
        run_offer_with(&pol, OFFER_HEAD "k=clear:c2VjcmV0\r\nm=audio 4000 RTP/AVP 0\r\n", in_tcp),
        MEDIA_REFUSE, "SDES keys received over an unencrypted hop", NULL);
    const char *capneg =
        OFFER_HEAD "m=audio 4000 RTP/AVP 0\r\n"
                   "a=tcap:1 RTP/SAVP\r\n"
                   "a=acap:1 crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" KEY30_A "\r\n"
                   "a=pcfg:1 t=1 a=1\r\n";
    expect(run_offer_with(&pol, capneg, in_tcp), MEDIA_REFUSE,
           "SDES keys received over an unencrypted hop", NULL);
    /* toward TCP they are removed, the rest stays */
    struct one o = run_offer_with(&pol, capneg, out_tcp);
    assert_int_equal(o.verdict, MEDIA_REWRITE);
    char *want = drop_lines(capneg, "a=acap:1 crypto");
    assert_string_equal(o.sdp, want);
    free(want);
    one_free(&o);
    /* capability negotiation is not an encrypted offer under required */
    pol.level = MEDIA_LEVEL_REQUIRED;
    expect(run_offer_with(&pol, capneg, (struct media_hops){true, true}), MEDIA_REFUSE,
           "audio offers no encryption (RTP/AVP without a=crypto)", NULL);
    pol.level = MEDIA_LEVEL_SUPPORTED;

    /* session-level a=crypto (not valid there, but keys all the same) */
    const char *sess = OFFER_HEAD "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" KEY30_A "\r\n"
                                  "m=audio 4000 RTP/AVP 0\r\n";
    expect(run_offer_with(&pol, sess, in_tcp), MEDIA_REFUSE, "received over an unencrypted hop",
           NULL);
    o = run_offer_with(&pol, sess, out_tcp);
    assert_int_equal(o.verdict, MEDIA_REWRITE);
    assert_string_equal(o.summary, "audio unencrypted (level supported)");
    assert_null(strstr(o.sdp, "a=crypto"));
    assert_non_null(strstr(o.sdp, "m=audio 4000 RTP/AVP 0\r\n"));
    one_free(&o);
    /* stray a=crypto in a DTLS section toward TCP: removed, still DTLS */
    pol.level = MEDIA_LEVEL_REQUIRED;
    o = run_offer_with(&pol,
                       OFFER_HEAD AUDIO_DTLS_SECTION
                       "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" KEY30_A "\r\n",
                       out_tcp);
    assert_int_equal(o.verdict, MEDIA_REWRITE);
    assert_string_equal(o.summary, "audio DTLS-SRTP");
    assert_string_equal(o.sdp, OFFER_HEAD AUDIO_DTLS_SECTION);
    one_free(&o);
}

static void test_answers(void **state)
{
    (void)state;
    const struct media_hops tls = {true, true}, out_tcp = {true, false};
    const char *offer = SDP_BARESIP_SRTP_MAND;
#define ANS(lines) ANSWER_HEAD "m=audio 5000 RTP/SAVP 0\r\n" lines

    expect(run_answer(MEDIA_LEVEL_REQUIRED, offer,
                      ANS("a=crypto:3 AEAD_AES_256_GCM inline:" KEY44 "\r\n"), tls),
           MEDIA_PASS, NULL, "audio SRTP AEAD_AES_256_GCM");
    /* a tag the offer has, but with another suite */
    expect(run_answer(MEDIA_LEVEL_REQUIRED, offer,
                      ANS("a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:" KEY30_C "\r\n"), tls),
           MEDIA_REFUSE, "answer selects a=crypto tag 3 that was not offered", NULL);
    /* the offer's _32 is known but not allowed */
    expect(run_answer(MEDIA_LEVEL_REQUIRED, offer,
                      ANS("a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:" KEY30_C "\r\n"), tls),
           MEDIA_REFUSE, "SRTP suite AES_CM_128_HMAC_SHA1_32 not allowed",
           "audio unencrypted (level required)");
    /* an answer picks one */
    expect(run_answer(MEDIA_LEVEL_REQUIRED, offer,
                      ANS("a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:" KEY30_C "\r\n"
                          "a=crypto:3 AEAD_AES_256_GCM inline:" KEY44 "\r\n"),
                      tls),
           MEDIA_REFUSE, "answer carries more than one a=crypto", NULL);
    expect(run_answer(MEDIA_LEVEL_REQUIRED, offer,
                      ANS("a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:" KEY29 "\r\n"), tls),
           MEDIA_REFUSE, "inline key of wrong length", NULL);
    expect(run_answer(
               MEDIA_LEVEL_REQUIRED, offer,
               ANS("a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:" KEY30_C " UNENCRYPTED_SRTP\r\n"),
               tls),
           MEDIA_REFUSE, "UNENCRYPTED_SRTP", NULL);
    /* keys the answer does not need toward a TCP hop are dropped */
    const char *dtls_ans = ANSWER_HEAD "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" KEY30_C "\r\n"
                                       "m=video 5000 UDP/TLS/RTP/SAVPF 96\r\n"
                                       "a=fingerprint:sha-256 " FP_B "\r\n";
    struct one o = run_answer(MEDIA_LEVEL_REQUIRED,
                              OFFER_HEAD "m=video 4002 UDP/TLS/RTP/SAVPF 96\r\n"
                                         "a=fingerprint:sha-256 " FP_A "\r\n",
                              dtls_ans, out_tcp);
    assert_int_equal(o.verdict, MEDIA_REWRITE);
    assert_string_equal(o.summary, "video DTLS-SRTP");
    char *want = drop_lines(dtls_ans, "a=crypto");
    assert_string_equal(o.sdp, want);
    free(want);
    one_free(&o);
    /* supported, an optional-SRTP answer that selected SRTP, toward TCP:
     * removing the key would not undo the selection, so it is refused */
    expect(run_answer(MEDIA_LEVEL_SUPPORTED, SDP_BARESIP_SRTP_OPT,
                      ANSWER_HEAD "m=audio 5000 RTP/AVP 0\r\n"
                                  "a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:" KEY30_C "\r\n",
                      out_tcp),
           MEDIA_REFUSE, "SDES keys cannot be sent over an unencrypted hop (audio RTP/AVP)",
           "audio SRTP AES_CM_128_HMAC_SHA1_80");
#undef ANS
}

static void test_malformed_sdp(void **state)
{
    (void)state;
    struct media_policy pol = default_policy(MEDIA_LEVEL_REQUIRED);
    const struct media_hops tls = {true, true};
    struct media_decision d;
    media_decision_init(&d);

    assert_int_equal(media_policy_offer(&pol, strview_cstr("v=0\r\ns=-\r\n"), &tls, &d), -EINVAL);
    assert_string_equal(d.warning, "malformed SDP: missing o= line");
    assert_int_equal(
        media_policy_offer(&pol, strview_cstr(OFFER_HEAD "m=audio x RTP/AVP 0\r\n"), &tls, &d),
        -EINVAL);
    assert_string_equal(d.warning, "malformed SDP: line 6: m= line has a non-numeric port");

    assert_int_equal(
        media_policy_answer(&pol, strview_cstr("junk"), strview_cstr(SDP_WEBRTC), &tls, &d),
        -EINVAL);
    assert_string_equal(d.warning, "malformed SDP offer: line 1: not a <type>=<value> line");
    assert_int_equal(
        media_policy_answer(&pol, strview_cstr(SDP_WEBRTC), strview_cstr("v=0\r\n"), &tls, &d),
        -EINVAL);
    assert_string_equal(d.warning, "malformed SDP: missing o= line");
    assert_int_equal(media_policy_answer(&pol, strview_cstr(SDP_WEBRTC),
                                         strview_cstr(SDP_LINPHONE_DTLS), &tls, &d),
                     -EINVAL);
    assert_string_equal(d.warning, "malformed SDP: answer has 2 media sections, offer 3");

    /* the decision is reset by every call */
    assert_int_equal(media_policy_offer(&pol, strview_cstr(SDP_WEBRTC), &tls, &d), 0);
    assert_int_equal(d.verdict, MEDIA_PASS);
    assert_string_equal(d.warning, "");
    assert_string_equal(strbuf_cstr(&d.summary),
                        "audio DTLS-SRTP; video DTLS-SRTP; application DTLS");
    assert_int_equal(d.sdp.len, 0);
    media_decision_free(&d);
}

int main(void)
{
    log_set_level(LOG_LEVEL_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_levels),
        cmocka_unit_test(test_crypto_suite_table),
        cmocka_unit_test(test_offer_matrix),
        cmocka_unit_test(test_answer_matrix),
        cmocka_unit_test(test_suite_policy),
        cmocka_unit_test(test_session_params_and_keys),
        cmocka_unit_test(test_wrong_key_length),
        cmocka_unit_test(test_dtls_and_other_transports),
        cmocka_unit_test(test_keys_travel_only_over_tls),
        cmocka_unit_test(test_answers),
        cmocka_unit_test(test_malformed_sdp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
