/*
 * libFuzzer target for the SDP module and the media encryption policy:
 * parsing (what parses must write back byte for byte and parse again to
 * the same structure, with and without its keys), and every offer and
 * answer decision under every level and hop (the decisions must keep the
 * policy's promises: no key crosses a plain hop, `required` never passes
 * an unencrypted section, `not_supported` never passes SRTP, a forwarded
 * SDP passes again unchanged). An input with a NUL byte is split there into
 * an offer and an answer; otherwise it is both. Any broken promise aborts.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/strbuf.h"
#include "crypto/policy.h"
#include "media/policy.h"
#include "media/sdp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

static bool inside(struct strview v, struct strview text)
{
    return v.n == 0 || (v.p >= text.p && v.p + v.n <= text.p + text.n);
}

static void check_level(const struct sdp *s, const struct sdp_level *lv)
{
    CHECK(lv->nattrs <= SDP_MAX_ATTRS);
    CHECK(lv->attr_first + lv->nattrs <= s->nattrs);
    CHECK(lv->crypto_first + lv->ncrypto <= s->ncryptos);
    CHECK(lv->line_first <= lv->line_end && lv->line_end <= s->nlines);
    for (size_t i = 0; i < lv->ncrypto; i++) {
        const struct sdp_crypto *c = sdp_level_crypto(s, lv, i);
        CHECK(c->nkeys >= 1 && c->nkeys <= SDP_MAX_CRYPTO_KEYS);
        CHECK(c->tag <= 999999999);
        CHECK(c->line < s->nlines && s->lines[c->line].key);
        CHECK(inside(c->suite, s->text) && inside(c->session_params, s->text));
        for (size_t k = 0; k < c->nkeys; k++) {
            CHECK(inside(c->keys[k].key_salt, s->text));
            CHECK(!c->keys[k].has_mki || (c->keys[k].mki_len >= 1 && c->keys[k].mki_len <= 128));
        }
    }
}

static void check_parsed(const struct sdp *s)
{
    CHECK(s->nmedia <= SDP_MAX_MEDIA);
    CHECK(s->nlines >= 3 && s->lines[0].type == 'v');
    for (size_t i = 0; i < s->nlines; i++)
        CHECK(inside(s->lines[i].raw, s->text) && inside(s->lines[i].value, s->text));
    check_level(s, &s->session);
    for (size_t i = 0; i < s->nmedia; i++) {
        const struct sdp_media *m = &s->media[i];
        CHECK(m->nformats >= 1 && m->nformats <= SDP_MAX_FORMATS);
        CHECK(m->port <= 65535 && m->nports >= 1);
        CHECK(s->lines[m->lv.line_first].type == 'm');
        CHECK(!sdp_media_active(m) || sdp_media_conn(s, m) != NULL);
        check_level(s, &m->lv);
    }
}

static void check_same(const struct sdp *a, const struct sdp *b)
{
    CHECK(a->nlines == b->nlines && a->nattrs == b->nattrs && a->ncryptos == b->ncryptos);
    CHECK(a->nmedia == b->nmedia);
    for (size_t i = 0; i < a->nmedia; i++) {
        CHECK(a->media[i].port == b->media[i].port && a->media[i].proto == b->media[i].proto);
        CHECK(a->media[i].lv.ncrypto == b->media[i].lv.ncrypto);
    }
}

/* Parse, write back, parse again; then without keys. Returns whether the
 * text parsed. */
static bool check_sdp(struct strview text)
{
    struct sdp *s = NULL, *r = NULL;
    struct strbuf out = STRBUF_INIT;
    char err[128];
    int rc = sdp_parse(text, &s, err, sizeof(err));

    if (rc) {
        CHECK(rc == -EINVAL || rc == -ENOMEM);
        CHECK(s == NULL && (rc == -ENOMEM || err[0] != '\0'));
        return false;
    }
    check_parsed(s);

    CHECK(sdp_write(s, &out) == 0);
    CHECK(out.len == text.n && memcmp(out.p, text.p, text.n) == 0);
    CHECK(sdp_parse(strview_make(out.p, out.len), &r, err, sizeof(err)) == 0);
    check_same(s, r);
    sdp_free(r);
    strbuf_reset(&out);

    sdp_remove_keys(s);
    CHECK(!sdp_has_keys(s));
    CHECK(sdp_write(s, &out) == 0);
    CHECK(sdp_parse(strview_make(out.p, out.len), &r, err, sizeof(err)) == 0);
    CHECK(!sdp_has_keys(r) && r->ncryptos == 0 && r->nmedia == s->nmedia);
    sdp_free(r);
    strbuf_free(&out);
    sdp_free(s);
    return true;
}

static bool has_keys(struct strview text)
{
    struct sdp *s = NULL;
    char err[128];
    CHECK(sdp_parse(text, &s, err, sizeof(err)) == 0);
    bool k = sdp_has_keys(s);
    sdp_free(s);
    return k;
}

static size_t count_media(struct strview text)
{
    struct sdp *s = NULL;
    char err[128];
    CHECK(sdp_parse(text, &s, err, sizeof(err)) == 0);
    size_t n = s->nmedia;
    sdp_free(s);
    return n;
}

/* The promises every decision on `in` keeps; returns what is forwarded. */
static struct strview check_decision(const struct media_policy *pol, const struct media_hops *h,
                                     struct strview in, const struct media_decision *d)
{
    const char *summary = d->summary.len ? d->summary.p : "";
    size_t entries = 0;

    CHECK(d->verdict == MEDIA_PASS || d->verdict == MEDIA_REWRITE || d->verdict == MEDIA_REFUSE);
    CHECK(memchr(d->warning, '\0', sizeof(d->warning)) != NULL);
    for (const char *p = d->warning; *p; p++)
        CHECK(*p != '"' && *p != '\\' && (unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
    if (summary[0])
        entries = 1;
    for (const char *p = strstr(summary, "; "); p; p = strstr(p + 2, "; "))
        entries++;
    CHECK(entries == count_media(in));

    if (d->verdict == MEDIA_REFUSE) {
        CHECK(d->warning[0] != '\0' && d->sdp.len == 0);
        return STRVIEW_EMPTY;
    }
    CHECK(d->warning[0] == '\0');
    CHECK((d->verdict == MEDIA_REWRITE) == (d->sdp.len > 0));
    struct strview fwd = d->verdict == MEDIA_REWRITE ? strview_make(d->sdp.p, d->sdp.len) : in;
    CHECK(check_sdp(fwd));
    CHECK(count_media(fwd) == count_media(in));
    if (!h->in_tls)
        CHECK(!has_keys(in));
    if (!h->out_tls)
        CHECK(!has_keys(fwd));
    /* Each entry is "<media> <kind...>"; media names are tokens (no
     * spaces, no ';'), so the kind starts after the first space. */
    for (const char *e = summary; *e;) {
        const char *end = strstr(e, "; ");
        const char *kind = strchr(e, ' ');
        CHECK(kind && (!end || kind < end));
        kind++;
        if (pol->level == MEDIA_LEVEL_REQUIRED)
            CHECK(strncmp(kind, "unencrypted", 11) != 0);
        if (pol->level == MEDIA_LEVEL_NOT_SUPPORTED)
            CHECK(strncmp(kind, "SRTP", 4) != 0 && strncmp(kind, "DTLS-SRTP", 9) != 0);
        e = end ? end + 2 : kind + strlen(kind);
    }
    return fwd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool quiet;
    if (!quiet) {
        log_set_level(LOG_LEVEL_ERROR);
        quiet = true;
    }
    const char *p = (const char *)data;
    const char *nul = size ? memchr(p, '\0', size) : NULL;
    struct strview offer = strview_make(p, nul ? (size_t)(nul - p) : size);
    struct strview answer = nul ? strview_make(nul + 1, size - offer.n - 1) : offer;

    bool offer_ok = check_sdp(offer);
    bool answer_ok = nul ? check_sdp(answer) : offer_ok;

    static const enum media_level levels[] = {MEDIA_LEVEL_REQUIRED, MEDIA_LEVEL_SUPPORTED,
                                              MEDIA_LEVEL_NOT_SUPPORTED};
    struct media_decision d, again;
    media_decision_init(&d);
    media_decision_init(&again);
    for (size_t l = 0; l < 3; l++) {
        struct media_policy pol = {.level = levels[l]};
        pol.suites = crypto_srtp_suites_default(&pol.nsuites);
        for (int hop = 0; hop < 4; hop++) {
            struct media_hops h = {(hop & 1) != 0, (hop & 2) != 0};

            int rc = media_policy_offer(&pol, offer, &h, &d);
            CHECK(rc == (offer_ok ? 0 : -EINVAL));
            if (rc) {
                CHECK(strncmp(d.warning, "malformed SDP: ", 15) == 0);
            } else {
                struct strview fwd = check_decision(&pol, &h, offer, &d);
                if (d.verdict != MEDIA_REFUSE) {
                    /* what was forwarded passes the same hop as it is */
                    CHECK(media_policy_offer(&pol, fwd, &h, &again) == 0);
                    CHECK(again.verdict == MEDIA_PASS);
                }
            }

            rc = media_policy_answer(&pol, offer, answer, &h, &d);
            if (!offer_ok || !answer_ok) {
                CHECK(rc == -EINVAL && strncmp(d.warning, "malformed SDP", 13) == 0);
                continue;
            }
            if (count_media(offer) != count_media(answer)) {
                CHECK(rc == -EINVAL);
                continue;
            }
            CHECK(rc == 0);
            struct strview fwd = check_decision(&pol, &h, answer, &d);
            if (d.verdict != MEDIA_REFUSE) {
                CHECK(media_policy_answer(&pol, offer, fwd, &h, &again) == 0);
                CHECK(again.verdict == MEDIA_PASS);
            }
        }
    }
    media_decision_free(&d);
    media_decision_free(&again);
    return 0;
}
