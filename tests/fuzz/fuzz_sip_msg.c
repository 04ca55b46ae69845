/*
 * libFuzzer target for the SIP message module: framing, parsing, the typed
 * accessors, printing (whose output must parse again to the same values),
 * editing and building responses; the raw 400 builder on what fails.
 * Any broken promise aborts, so libFuzzer keeps the input.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/strbuf.h"
#include "sip/build.h"
#include "sip/frame.h"
#include "sip/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

static bool same(struct strview a, struct strview b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static void check_raw_error(const char *d, size_t n, int status, const char *reason)
{
    struct strbuf out = STRBUF_INIT;
    if (sip_build_error_from_raw(d, n, status ? status : 400, reason, &out) == 0)
        CHECK(out.len > 12 && memcmp(out.p, "SIP/2.0 ", 8) == 0);
    else
        CHECK(out.len == 0);
    strbuf_free(&out);
}

static void check_accessors(const struct sip_msg *m)
{
    struct sip_addr a;
    struct sip_via via;
    struct sip_value_iter it;
    struct strview v;

    /* What parsing validated, the accessors must read. */
    CHECK(sip_msg_from(m, &a) == 0);
    CHECK(sip_msg_to(m, &a) == 0);
    CHECK(sip_msg_top_via(m, &via) == 0);
    sip_value_iter_init(&it, m, SIP_HDR_VIA);
    while (sip_value_iter_next(&it, &v))
        CHECK(sip_via_parse(v, &via) == 0);
    sip_value_iter_init(&it, m, SIP_HDR_CONTACT);
    while (sip_value_iter_next(&it, &v))
        CHECK(sip_addr_parse(v, &a) == 0);

    static const enum sip_hdr_id addr_ids[] = {SIP_HDR_ROUTE, SIP_HDR_RECORD_ROUTE,
                                               SIP_HDR_P_ASSERTED_IDENTITY, SIP_HDR_PATH};
    for (size_t k = 0; k < sizeof(addr_ids) / sizeof(addr_ids[0]); k++) {
        sip_value_iter_init(&it, m, addr_ids[k]);
        while (sip_value_iter_next(&it, &v)) {
            if (sip_addr_parse(v, &a) == 0) {
                struct strview p;
                (void)sip_param_find(a.params, "lr", &p);
                if (a.uri.scheme)
                    CHECK(sip_uri_equal(&a.uri, &a.uri));
            }
        }
    }
    if (m->is_request) {
        struct strbuf u = STRBUF_INIT;
        struct sip_uri again;
        CHECK(sip_uri_equal(&m->ruri, &m->ruri));
        sip_uri_print(&m->ruri, &u);
        CHECK(u.err == 0);
        CHECK(sip_uri_parse(strview_make(u.p, u.len), &again) == 0);
        CHECK(sip_uri_equal(&m->ruri, &again));
        strbuf_free(&u);
    }
}

static size_t live_headers(const struct sip_msg *m)
{
    size_t n = 0;
    for (const struct sip_hdr *h = m->hdrs; h; h = h->next)
        n += !h->removed;
    return n;
}

static void check_print(const struct sip_msg *m)
{
    struct strbuf out = STRBUF_INIT;
    struct sip_msg *m2;
    struct sip_parse_error err;

    CHECK(sip_msg_print(m, &out) == 0);
    CHECK(sip_msg_parse(out.p, out.len, &m2, &err) == 0);
    CHECK(m2->is_request == m->is_request && m2->status == m->status);
    CHECK(same(m2->method_name, m->method_name) && same(m2->request_uri, m->request_uri));
    CHECK(same(m2->reason, m->reason) && same(m2->call_id, m->call_id));
    CHECK(m2->cseq_num == m->cseq_num && same(m2->cseq_method_name, m->cseq_method_name));
    CHECK(m2->max_forwards == m->max_forwards && m2->expires == m->expires);
    CHECK(same(m2->content_type, m->content_type) && same(m2->body, m->body));
    /* Header by header, but Content-Length prints once, as a number. */
    const struct sip_hdr *a = m->hdrs, *b = m2->hdrs;
    for (;;) {
        while (a && a->id == SIP_HDR_CONTENT_LENGTH)
            a = a->next;
        while (b && b->id == SIP_HDR_CONTENT_LENGTH)
            b = b->next;
        if (!a || !b)
            break;
        CHECK(a->id == b->id && same(a->name, b->name) && same(a->value, b->value));
        a = a->next;
        b = b->next;
    }
    CHECK(!a && !b);
    CHECK(sip_msg_hdr_count(m2, SIP_HDR_CONTENT_LENGTH) == 1);
    sip_msg_free(m2);
    strbuf_free(&out);
}

static void check_response(const struct sip_msg *m)
{
    struct strbuf out = STRBUF_INIT;
    struct sip_msg *r;
    struct sip_parse_error err;
    const struct sip_hdr *to = sip_msg_hdr_first(m, SIP_HDR_TO);

    CHECK(sip_build_response(m, 404, NULL, "fz1", "X-Fuzz: 1\r\n", "text/plain",
                             strview_make("x", 1), &out) == 0);
    /* The tag may push a To at the length limit over it. */
    if (to->value.n + to->name.n < SIP_MAX_HEADER_LINE - 16) {
        CHECK(sip_msg_parse(out.p, out.len, &r, &err) == 0);
        CHECK(r->status == 404 && same(r->call_id, m->call_id) && r->cseq_num == m->cseq_num);
        CHECK(sip_msg_hdr_count(r, SIP_HDR_VIA) == sip_msg_hdr_count(m, SIP_HDR_VIA));
        sip_msg_free(r);
    }
    strbuf_free(&out);
}

static void check_edits(struct sip_msg *m)
{
    struct strbuf out = STRBUF_INIT;
    struct sip_msg *m2;
    struct sip_parse_error err;

    CHECK(sip_msg_hdr_prepend(m, SIP_HDR_VIA, NULL,
                              strview_cstr("SIP/2.0/TLS fuzz.example.com;branch=z9hG4bKfz")) == 0);
    (void)sip_msg_hdr_remove_first_value(m, SIP_HDR_ROUTE);
    CHECK(sip_msg_set_max_forwards(m, 10) == 0);
    CHECK(sip_msg_set_body(m, strview_cstr("text/plain"), strview_make("body", 4)) == 0);
    if (m->is_request)
        CHECK(sip_msg_set_request_uri(m, strview_cstr("sip:fuzz@example.com")) == 0);
    CHECK(sip_msg_print(m, &out) == 0);
    if (live_headers(m) < SIP_MAX_HEADERS - 2) {
        CHECK(sip_msg_parse(out.p, out.len, &m2, &err) == 0);
        CHECK(m2->max_forwards == 10 && same(m2->body, strview_make("body", 4)));
        sip_msg_free(m2);
    }
    strbuf_free(&out);
}

static void parse_one(const char *d, size_t n)
{
    struct sip_msg *m;
    struct sip_parse_error err;
    int rc = sip_msg_parse(d, n, &m, &err);

    if (rc) {
        CHECK(rc == -EINVAL);
        CHECK(err.status == 0 || err.status == 400 || err.status == 416 || err.status == 505 ||
              err.status == 513);
        CHECK(memchr(err.reason, '\0', sizeof(err.reason)) != NULL);
        check_raw_error(d, n, err.status, err.reason);
        return;
    }
    CHECK(m->is_request || (m->status >= 100 && m->status <= 699));
    check_accessors(m);
    check_print(m);
    if (m->is_request)
        check_response(m);
    check_edits(m);
    sip_msg_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *d = (const char *)data;
    static const size_t limits[] = {16, 300, 65536};
    struct sip_frame fr;

    for (size_t k = 0; k < sizeof(limits) / sizeof(limits[0]); k++) {
        enum sip_frame_result r = sip_frame_scan(d, size, limits[k], &fr);
        if (r == SIP_FRAME_MESSAGE) {
            CHECK(fr.len > 0 && fr.len <= size && fr.len <= limits[k]);
            if (k == 2 && fr.len < size)
                parse_one(d, fr.len);
        } else if (r == SIP_FRAME_KEEPALIVE) {
            CHECK(fr.len > 0 && fr.len <= size);
        } else if (r == SIP_FRAME_BAD || r == SIP_FRAME_TOO_LARGE) {
            CHECK(fr.reason != NULL);
        }
    }
    parse_one(d, size);
    return 0;
}
