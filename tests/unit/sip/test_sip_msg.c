#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/strbuf.h"
#include "sip/msg.h"

#define assert_view(v, s)                                                                          \
    do {                                                                                           \
        struct strview v_ = (v);                                                                   \
        if (!strview_eq(v_, (s)))                                                                  \
            fail_msg("got \"%.*s\", want \"%s\"", (int)v_.n, v_.p ? v_.p : "", (s));               \
    } while (0)

/* Parses from an exact-size heap copy (ASan sees any read past it). */
static int parse_n(const char *text, size_t n, struct sip_msg **m, struct sip_parse_error *err)
{
    char *copy = malloc(n ? n : 1);
    memcpy(copy, text, n);
    int rc = sip_msg_parse(copy, n, m, err);
    /* The message owns its own copy: scribble over ours to prove it. */
    memset(copy, 'Z', n);
    free(copy);
    return rc;
}

static int parse(const char *text, struct sip_msg **m, struct sip_parse_error *err)
{
    return parse_n(text, strlen(text), m, err);
}

static struct sip_msg *must_parse(const char *text)
{
    struct sip_msg *m = NULL;
    struct sip_parse_error err;
    if (parse(text, &m, &err) != 0)
        fail_msg("parse failed: %s (%d)\n%s", err.reason, err.status, text);
    return m;
}

static void expect_error(const char *text, int status, const char *fault)
{
    struct sip_msg *m = (struct sip_msg *)1;
    struct sip_parse_error err;
    int rc = parse(text, &m, &err);
    if (rc != -EINVAL)
        fail_msg("parsed (rc %d), want %d (%s):\n%s", rc, status, fault, text);
    assert_null(m);
    if (err.status != status || !strstr(err.reason, fault))
        fail_msg("got %d \"%s\", want %d \"%s\"\n%s", err.status, err.reason, status, fault, text);
}

#define HEAD_VIA  "Via: SIP/2.0/TLS pc33.example.com:5061;branch=z9hG4bK776asdhds\r\n"
#define HEAD_FROM "From: Alice <sips:alice@example.com>;tag=1928301774\r\n"
#define HEAD_TO   "To: Bob <sips:bob@example.com>\r\n"
#define HEAD_CID  "Call-ID: a84b4c76e66710@pc33.example.com\r\n"
#define HEAD_CSEQ "CSeq: 314159 INVITE\r\n"

static const char invite[] = "INVITE sips:bob@example.com SIP/2.0\r\n" HEAD_VIA
                             "Max-Forwards: 70\r\n" HEAD_TO HEAD_FROM HEAD_CID HEAD_CSEQ
                             "Contact: <sips:alice@pc33.example.com>\r\n"
                             "Content-Type: application/sdp; charset=utf-8\r\n"
                             "Expires: 3600\r\n"
                             "Content-Length: 4\r\n"
                             "\r\n"
                             "v=0\n";

static void test_methods(void **state)
{
    (void)state;
    for (int m = SIP_METHOD_INVITE; m <= SIP_METHOD_SERVICE; m++) {
        const char *name = sip_method_name((enum sip_method)m);
        assert_int_equal(sip_method_from_view(strview_cstr(name)), m);
    }
    assert_int_equal(sip_method_from_view(strview_cstr("invite")), SIP_METHOD_UNKNOWN);
    assert_int_equal(sip_method_from_view(strview_cstr("INVITES")), SIP_METHOD_UNKNOWN);
    assert_int_equal(sip_method_from_view(strview_cstr("INFOX")), SIP_METHOD_UNKNOWN);
    assert_int_equal(sip_method_from_view(strview_cstr("FOO")), SIP_METHOD_UNKNOWN);
    assert_int_equal(sip_method_from_view(strview_cstr("")), SIP_METHOD_UNKNOWN);
    assert_string_equal(sip_method_name(SIP_METHOD_UNKNOWN), "UNKNOWN");
    assert_string_equal(sip_method_name((enum sip_method)999), "UNKNOWN");
}

static void test_header_names(void **state)
{
    (void)state;
    for (int id = 1; id < SIP_HDR_COUNT_; id++) {
        const char *name = sip_hdr_name((enum sip_hdr_id)id);
        char upper[64], lower[64];
        assert_non_null(name);
        assert_int_equal(sip_hdr_id_from_name(strview_cstr(name)), id);
        for (size_t i = 0; i <= strlen(name); i++) {
            upper[i] = (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 32 : name[i]);
            lower[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
        }
        assert_int_equal(sip_hdr_id_from_name(strview_cstr(upper)), id);
        assert_int_equal(sip_hdr_id_from_name(strview_cstr(lower)), id);
    }
    assert_null(sip_hdr_name(SIP_HDR_OTHER));
    assert_null(sip_hdr_name(SIP_HDR_COUNT_));

    static const struct {
        char c;
        enum sip_hdr_id id;
    } compact[] = {
        {'i', SIP_HDR_CALL_ID},
        {'m', SIP_HDR_CONTACT},
        {'e', SIP_HDR_CONTENT_ENCODING},
        {'l', SIP_HDR_CONTENT_LENGTH},
        {'c', SIP_HDR_CONTENT_TYPE},
        {'f', SIP_HDR_FROM},
        {'s', SIP_HDR_SUBJECT},
        {'k', SIP_HDR_SUPPORTED},
        {'t', SIP_HDR_TO},
        {'v', SIP_HDR_VIA},
        {'o', SIP_HDR_EVENT},
        {'r', SIP_HDR_REFER_TO},
        {'u', SIP_HDR_ALLOW_EVENTS},
        {'b', SIP_HDR_REFERRED_BY},
        {'x', SIP_HDR_SESSION_EXPIRES},
        {'y', SIP_HDR_IDENTITY},
    };
    for (size_t i = 0; i < sizeof(compact) / sizeof(compact[0]); i++) {
        char up = (char)(compact[i].c - 32);
        assert_int_equal(sip_hdr_id_from_name(strview_make(&compact[i].c, 1)), compact[i].id);
        assert_int_equal(sip_hdr_id_from_name(strview_make(&up, 1)), compact[i].id);
    }
    assert_int_equal(sip_hdr_id_from_name(strview_cstr("a")), SIP_HDR_OTHER);
    assert_int_equal(sip_hdr_id_from_name(strview_cstr("X-Via")), SIP_HDR_OTHER);
    assert_int_equal(sip_hdr_id_from_name(strview_cstr("Vias")), SIP_HDR_OTHER);
    assert_int_equal(sip_hdr_id_from_name(strview_cstr("Content-Lengt")), SIP_HDR_OTHER);
    assert_int_equal(sip_hdr_id_from_name(strview_cstr("")), SIP_HDR_OTHER);
    assert_int_equal(sip_hdr_id_from_name(strview_cstr("P-Preferred-Identity-X-Long-Name")),
                     SIP_HDR_OTHER);
}

static void test_parse_invite(void **state)
{
    (void)state;
    struct sip_msg *m = must_parse(invite);
    assert_true(m->is_request);
    assert_int_equal(m->method, SIP_METHOD_INVITE);
    assert_view(m->method_name, "INVITE");
    assert_view(m->request_uri, "sips:bob@example.com");
    assert_int_equal(m->ruri.scheme, SIP_URI_SIPS);
    assert_view(m->ruri.host, "example.com");
    assert_view(m->call_id, "a84b4c76e66710@pc33.example.com");
    assert_int_equal(m->cseq_num, 314159);
    assert_int_equal(m->cseq_method, SIP_METHOD_INVITE);
    assert_view(m->cseq_method_name, "INVITE");
    assert_int_equal(m->max_forwards, 70);
    assert_int_equal(m->expires, 3600);
    assert_view(m->content_type, "application/sdp");
    assert_view(m->body, "v=0\n");
    assert_int_equal(sip_msg_hdr_count(m, SIP_HDR_VIA), 1);
    assert_int_equal(sip_msg_hdr_count(m, SIP_HDR_ROUTE), 0);

    struct sip_addr a;
    assert_int_equal(sip_msg_from(m, &a), 0);
    assert_view(a.display, "Alice");
    assert_view(a.uri_text, "sips:alice@example.com");
    assert_view(a.tag, "1928301774");
    assert_int_equal(sip_msg_to(m, &a), 0);
    assert_view(a.display, "Bob");
    assert_null(a.tag.p);

    struct sip_via v;
    assert_int_equal(sip_msg_top_via(m, &v), 0);
    assert_view(v.protocol, "SIP/2.0");
    assert_view(v.transport, "TLS");
    assert_view(v.host, "pc33.example.com");
    assert_int_equal(v.port, 5061);
    assert_view(v.branch, "z9hG4bK776asdhds");

    struct sip_hdr *h = sip_msg_hdr_first(m, SIP_HDR_CONTENT_TYPE);
    assert_non_null(h);
    assert_view(h->name, "Content-Type");
    assert_view(h->value, "application/sdp; charset=utf-8");
    assert_null(sip_msg_hdr_next(h, SIP_HDR_CONTENT_TYPE));
    sip_msg_free(m);
    sip_msg_free(NULL);
}

static void test_parse_response(void **state)
{
    (void)state;
    struct sip_msg *m =
        must_parse("SIP/2.0 180 Ringing\r\n" HEAD_VIA HEAD_FROM
                   "To: Bob <sips:bob@example.com>;tag=a6c85cf\r\n" HEAD_CID HEAD_CSEQ
                   "Content-Length: 0\r\n\r\n");
    assert_false(m->is_request);
    assert_int_equal(m->status, 180);
    assert_view(m->reason, "Ringing");
    assert_int_equal(m->max_forwards, -1);
    assert_int_equal(m->expires, -1);
    assert_int_equal(m->body.n, 0);
    sip_msg_free(m);

    /* A response's CSeq method need not be compared with anything. */
    m = must_parse("SIP/2.0 200\r\n" HEAD_VIA HEAD_FROM HEAD_TO HEAD_CID
                   "CSeq: 2 REGISTER\r\n\r\n");
    assert_int_equal(m->status, 200);
    assert_int_equal(m->reason.n, 0);
    sip_msg_free(m);
}

static void test_compact_folding_lf(void **state)
{
    (void)state;
    static const char text[] = "\r\n\r\n" /* leftover keep-alive */
                               "OPTIONS sip:bob@example.com SIP/2.0\n"
                               "v: SIP/2.0/TCP a.example.com;branch=z9hG4bK1,\n"
                               "\t SIP/2.0/UDP b.example.com:5062 ;branch=z9hG4bK2\n"
                               "f: \"A \\\"quoted\\\" name\"\n"
                               "   <sip:a@example.com>\n"
                               "  ;tag=x1\n"
                               "t:sip:b@example.com\n"
                               "i:   cid-1   \n"
                               "CSEQ:  7\n"
                               "    OPTIONS\n"
                               "k: path, \n"
                               "   outbound\n"
                               "X-Empty:\n"
                               "X-Folded-Empty:\n"
                               "   \n"
                               "l: 0\n"
                               "\n";
    struct sip_msg *m = must_parse(text);
    assert_int_equal(m->method, SIP_METHOD_OPTIONS);
    assert_view(m->call_id, "cid-1");
    assert_int_equal(m->cseq_num, 7);
    assert_view(m->cseq_method_name, "OPTIONS");

    struct sip_hdr *h = sip_msg_hdr_first(m, SIP_HDR_VIA);
    assert_view(h->name, "v");
    assert_view(h->value,
                "SIP/2.0/TCP a.example.com;branch=z9hG4bK1, SIP/2.0/UDP b.example.com:5062 "
                ";branch=z9hG4bK2");
    h = sip_msg_hdr_first(m, SIP_HDR_FROM);
    assert_view(h->value, "\"A \\\"quoted\\\" name\" <sip:a@example.com> ;tag=x1");
    struct sip_addr a;
    assert_int_equal(sip_msg_from(m, &a), 0);
    assert_view(a.display, "A \\\"quoted\\\" name");
    assert_view(a.tag, "x1");
    h = sip_msg_hdr_first(m, SIP_HDR_SUPPORTED);
    assert_view(h->value, "path, outbound");
    h = sip_msg_hdr_find_name(m, "x-empty");
    assert_non_null(h);
    assert_int_equal(h->value.n, 0);
    h = sip_msg_hdr_find_name(m, "X-Folded-Empty");
    assert_non_null(h);
    assert_int_equal(h->value.n, 0);
    assert_non_null(sip_msg_hdr_find_name(m, "Call-ID"));
    assert_non_null(sip_msg_hdr_find_name(m, "i"));
    assert_null(sip_msg_hdr_find_name(m, "X-Missing"));

    struct sip_value_iter it;
    struct strview v;
    int n = 0;
    sip_value_iter_init(&it, m, SIP_HDR_VIA);
    while (sip_value_iter_next(&it, &v)) {
        struct sip_via via;
        assert_int_equal(sip_via_parse(v, &via), 0);
        assert_view(via.branch, n == 0 ? "z9hG4bK1" : "z9hG4bK2");
        if (n == 1) {
            assert_view(via.host, "b.example.com");
            assert_int_equal(via.port, 5062);
        }
        n++;
    }
    assert_int_equal(n, 2);
    sip_msg_free(m);
}

struct collect {
    struct strview items[16];
    int n;
    int stop_after;
};

static bool collect_fn(struct strview elem, void *arg)
{
    struct collect *c = arg;
    c->items[c->n++] = elem;
    return c->n != c->stop_after;
}

static void test_split_commas(void **state)
{
    (void)state;
    struct collect c = {.n = 0, .stop_after = -1};
    sip_split_commas(strview_cstr("\"Doe, John\" <sip:j@x.com;a=\"1,2\">;q=0.5 , <sip:a,b@y.com>,"
                                  " ,sip:c@z.com;p=\"x\\\",y\" ,, tok"),
                     collect_fn, &c);
    assert_int_equal(c.n, 4);
    assert_view(c.items[0], "\"Doe, John\" <sip:j@x.com;a=\"1,2\">;q=0.5");
    assert_view(c.items[1], "<sip:a,b@y.com>");
    assert_view(c.items[2], "sip:c@z.com;p=\"x\\\",y\"");
    assert_view(c.items[3], "tok");

    c.n = 0;
    c.stop_after = 1;
    sip_split_commas(strview_cstr("a, b, c"), collect_fn, &c);
    assert_int_equal(c.n, 1);

    /* An unterminated quote or bracket swallows the rest. */
    c.n = 0;
    c.stop_after = -1;
    sip_split_commas(strview_cstr("\"a, b, c"), collect_fn, &c);
    assert_int_equal(c.n, 1);
    c.n = 0;
    sip_split_commas(strview_cstr("x, <a, b"), collect_fn, &c);
    assert_int_equal(c.n, 2);
    assert_view(c.items[1], "<a, b");
    c.n = 0;
    sip_split_commas(strview_cstr(""), collect_fn, &c);
    sip_split_commas(strview_cstr(" , ,"), collect_fn, &c);
    assert_int_equal(c.n, 0);
}

static void test_params(void **state)
{
    (void)state;
    struct strview v;
    struct strview p = strview_cstr(" ; tag = 98asjd8 ;lr; q=0.5;+sip.instance=\"<urn:a;b>\";x=");
    assert_true(sip_param_find(p, "TAG", &v));
    assert_view(v, "98asjd8");
    assert_true(sip_param_find(p, "lr", &v));
    assert_int_equal(v.n, 0);
    assert_true(sip_param_find(p, "q", &v));
    assert_view(v, "0.5");
    assert_true(sip_param_find(p, "+sip.instance", &v));
    assert_view(v, "\"<urn:a;b>\"");
    assert_true(sip_param_find(p, "x", NULL));
    assert_false(sip_param_find(p, "b", &v));
    assert_false(sip_param_find(p, "ta", &v));
    assert_false(sip_param_find(STRVIEW_EMPTY, "tag", &v));
}

static void test_via_parse(void **state)
{
    (void)state;
    struct sip_via v;
    assert_int_equal(
        sip_via_parse(strview_cstr("SIP  /   2.0 /UDP    192.0.2.2;branch=390skdjuw"), &v), 0);
    assert_view(v.protocol, "SIP/2.0");
    assert_view(v.transport, "UDP");
    assert_view(v.host, "192.0.2.2");
    assert_view(v.branch, "390skdjuw");

    assert_int_equal(sip_via_parse(strview_cstr("SIP/2.0/WSS [2001:db8::9:1] : 443 ; rport ; "
                                                "received=2001:db8::9:255;branch = z9hG4bKx"),
                                   &v),
                     0);
    assert_view(v.transport, "WSS");
    assert_view(v.host, "2001:db8::9:1");
    assert_int_equal(v.port, 443);
    assert_view(v.branch, "z9hG4bKx");
    struct strview r;
    assert_true(sip_param_find(v.params, "received", &r));
    assert_view(r, "2001:db8::9:255");

    assert_int_equal(sip_via_parse(strview_cstr("SIP/2.0/TCP host"), &v), 0);
    assert_null(v.branch.p);
    assert_int_equal(v.params.n, 0);
    assert_int_equal(sip_via_parse(strview_cstr("XSIP/3.0/TCP host;branch=1"), &v), 0);
    assert_view(v.protocol, "XSIP/3.0");

    static const char *const bad[] = {
        "",
        "SIP/2.0/UDP",
        "SIP/2.0/UDP ",
        "SIP/2.0 UDP host",
        "SIP/2.0/UDPhost",
        "SIP//UDP host",
        "SIP/2.0/ host",
        "SIP/2.0/UDP host;",
        "SIP/2.0/UDP host;;branch=1",
        "SIP/2.0/UDP host;branch=",
        "SIP/2.0/UDP host:0",
        "SIP/2.0/UDP host:65536",
        "SIP/2.0/UDP host:",
        "SIP/2.0/UDP host extra",
        "SIP/2.0/UDP [::1",
        "SIP/2.0/UDP [nothex]",
        "SIP/2.0/UDP ho$t",
        "SIP/2.0/UDP host;branch=\"open",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (sip_via_parse(strview_cstr(bad[i]), &v) != -EINVAL)
            fail_msg("accepted Via \"%s\"", bad[i]);
}

static void test_addr_parse(void **state)
{
    (void)state;
    struct sip_addr a;

    assert_int_equal(sip_addr_parse(strview_cstr("\"J Rosenberg \\\\\\\"\"       "
                                                 "<sip:jdrosen@example.com>\n;tag = 98asjd8"),
                                    &a),
                     -EINVAL); /* a raw LF is not LWS once unfolded */
    assert_int_equal(sip_addr_parse(strview_cstr("\"J Rosenberg \\\\\\\"\"       "
                                                 "<sip:jdrosen@example.com> ; tag = 98asjd8"),
                                    &a),
                     0);
    assert_view(a.display, "J Rosenberg \\\\\\\"");
    assert_view(a.uri_text, "sip:jdrosen@example.com");
    assert_view(a.uri.user, "jdrosen");
    assert_view(a.tag, "98asjd8");

    assert_int_equal(sip_addr_parse(strview_cstr("caller<sip:caller@example.com>;tag=323"), &a), 0);
    assert_view(a.display, "caller");
    assert_view(a.tag, "323");

    assert_int_equal(sip_addr_parse(strview_cstr("token1~` token2'+_ token3*%!.- "
                                                 "<sip:mundane@example.com>"),
                                    &a),
                     0);
    assert_view(a.display, "token1~` token2'+_ token3*%!.-");

    assert_int_equal(sip_addr_parse(strview_cstr("sip:bob@example.com;user=phone;tag=1"), &a), 0);
    assert_int_equal(a.display.n, 0);
    assert_view(a.uri_text, "sip:bob@example.com");
    assert_view(a.params, ";user=phone;tag=1");
    assert_view(a.tag, "1");
    assert_int_equal(a.uri.params.n, 0);

    assert_int_equal(sip_addr_parse(strview_cstr("<sip:bob@example.com;user=phone>"), &a), 0);
    assert_view(a.uri.params, ";user=phone");
    assert_int_equal(a.params.n, 0);

    assert_int_equal(sip_addr_parse(strview_cstr(" * "), &a), 0);
    assert_true(a.wildcard);

    assert_int_equal(sip_addr_parse(strview_cstr("<http://www.example.com>;tag=3"), &a), 0);
    assert_int_equal(a.uri.scheme, 0);
    assert_view(a.uri_text, "http://www.example.com");
    assert_view(a.tag, "3");
    assert_int_equal(sip_addr_parse(strview_cstr("isbn:2983792873"), &a), 0);

    assert_int_equal(sip_addr_parse(strview_cstr("\"Bj\xc3\xb6rn\" <sip:b@x.org>"), &a), 0);
    assert_int_equal(sip_addr_parse(strview_cstr("Bj\xc3\xb6rn <sip:b@x.org>"), &a), 0);

    static const char *const bad[] = {
        "",
        "*;tag=1",
        "\"unterminated <sip:a@b.c>",
        "\"Mr. J. User <sip:j.user@example.com>",
        "<sip:a@b.c",
        "< sip:t.watson@example.org >",
        "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
        "<sip:a@b.c>x",
        "<sip:a@b.c>;;",
        "<sip:a@b.c>;tag=",
        "\"x\" sip:a@b.c",
        "<>",
        "<sip:a b@c>",
        "<sip:@c>",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (sip_addr_parse(strview_cstr(bad[i]), &a) != -EINVAL)
            fail_msg("accepted address \"%s\"", bad[i]);

    /* A valueless tag is a flag: present, empty. */
    assert_int_equal(sip_addr_parse(strview_cstr("<sip:a@b.c>;tag"), &a), 0);
    assert_non_null(a.tag.p);
    assert_int_equal(a.tag.n, 0);
}

/* A message made of the five required headers with one replaced or added. */
static char *msg_with(const char *start, const char *replace, const char *with, const char *body)
{
    static char buf[70000];
    char head[4096];
    snprintf(head, sizeof(head), "%s%s%s%s%s%s", HEAD_VIA, HEAD_FROM, HEAD_TO, HEAD_CID, HEAD_CSEQ,
             "Max-Forwards: 70\r\n");
    char *at = replace ? strstr(head, replace) : NULL;
    if (replace && !at)
        fail_msg("no %s", replace);
    if (at) {
        char *eol = strstr(at, "\r\n") + 2;
        snprintf(buf, sizeof(buf), "%s\r\n%.*s%s%s\r\n%s", start, (int)(at - head), head, with, eol,
                 body);
    } else {
        snprintf(buf, sizeof(buf), "%s\r\n%s%s\r\n%s", start, head, with ? with : "", body);
    }
    return buf;
}

#define REQ "INVITE sip:bob@example.com SIP/2.0"

static void test_errors_required(void **state)
{
    (void)state;
    expect_error(msg_with(REQ, "Via:", "", ""), 400, "missing Via");
    expect_error(msg_with(REQ, "From:", "", ""), 400, "missing From");
    expect_error(msg_with(REQ, "To:", "", ""), 400, "missing To");
    expect_error(msg_with(REQ, "Call-ID:", "", ""), 400, "missing Call-ID");
    expect_error(msg_with(REQ, "CSeq:", "", ""), 400, "missing CSeq");
    expect_error(msg_with(REQ, "CSeq:", "CSeq: 1 BYE\r\n", ""), 400, "CSeq method");
    expect_error(msg_with("FOO sip:bob@example.com SIP/2.0", NULL, NULL, ""), 400, "CSeq method");
    struct sip_msg *m = must_parse(msg_with(REQ, "Max-Forwards:", "", ""));
    assert_int_equal(m->max_forwards, -1);
    sip_msg_free(m);
    /* Responses too need their Via and friends, but are never answered. */
    expect_error(msg_with("SIP/2.0 200 OK", "Call-ID:", "", ""), 0, "missing Call-ID");
}

static void test_errors_start_line(void **state)
{
    (void)state;
    expect_error(msg_with("INVITE sip:bob@example.com SIP/3.0", NULL, NULL, ""), 505, "version");
    expect_error(msg_with("INVITE sip:bob@example.com SIP/2.0x", NULL, NULL, ""), 400, "request");
    expect_error(msg_with("INVITE sip:bob@example.com HTTP/1.1", NULL, NULL, ""), 400, "request");
    expect_error(msg_with("INVITE sip:bob@example.com", NULL, NULL, ""), 400, "request line");
    expect_error(msg_with("INVITE", NULL, NULL, ""), 400, "request line");
    expect_error(msg_with("INV@TE sip:bob@example.com SIP/2.0", NULL, NULL, ""), 400, "method");
    expect_error(msg_with("INVITE  sip:bob@example.com SIP/2.0", NULL, NULL, ""), 400,
                 "Request-URI");
    expect_error(msg_with("INVITE mailto:bob@example.com SIP/2.0", NULL, NULL, ""), 416, "scheme");
    expect_error(msg_with("INVITE sip:bob@example.com?x=y SIP/2.0", NULL, NULL, ""), 400,
                 "headers in Request-URI");
    expect_error(msg_with("SIP/2.0 99 Low", NULL, NULL, ""), 0, "status code");
    expect_error(msg_with("SIP/2.0 099 Low", NULL, NULL, ""), 0, "out of range");
    expect_error(msg_with("SIP/2.0 2000 OK", NULL, NULL, ""), 0, "status code");
    expect_error(msg_with("SIP/2.0 200\tOK", NULL, NULL, ""), 0, "status code");
    expect_error(msg_with("SIP/2.0 200 O\x01K", NULL, NULL, ""), 0, "control");
    expect_error(msg_with("SIP/2.0", NULL, NULL, ""), 0, "status line");
    expect_error(msg_with("SIP/1.0 200 OK", NULL, NULL, ""), 0, "version");
    expect_error("", 0, "empty");
    expect_error("\r\n\r\n", 0, "empty");
    expect_error("INVITE sip:a@b SIP/2.0", 0, "start line");

    struct sip_msg *m = must_parse(msg_with("sip/2.0 200 OK", NULL, NULL, ""));
    assert_int_equal(m->status, 200);
    sip_msg_free(m);
    m = must_parse(msg_with("INVITE sip:bob@example.com sip/2.0", NULL, NULL, ""));
    sip_msg_free(m);

    /* No err: just the code. */
    struct sip_msg *out;
    assert_int_equal(sip_msg_parse("x", 1, &out, NULL), -EINVAL);
    assert_null(out);
}

static void test_errors_values(void **state)
{
    (void)state;
    struct sip_msg *m;

    m = must_parse(msg_with(REQ, "Max-Forwards:", "Max-Forwards: 255\r\n", ""));
    assert_int_equal(m->max_forwards, 255);
    sip_msg_free(m);
    m = must_parse(msg_with(REQ, "Max-Forwards:", "Max-Forwards: 0\r\n", ""));
    assert_int_equal(m->max_forwards, 0);
    sip_msg_free(m);
    expect_error(msg_with(REQ, "Max-Forwards:", "Max-Forwards: 256\r\n", ""), 400, "Max-Forwards");
    expect_error(msg_with(REQ, "Max-Forwards:", "Max-Forwards: -1\r\n", ""), 400, "Max-Forwards");
    expect_error(msg_with(REQ, "Max-Forwards:", "Max-Forwards: 7 0\r\n", ""), 400, "Max-Forwards");
    expect_error(msg_with(REQ, "Max-Forwards:", "Max-Forwards:\r\n", ""), 400, "Max-Forwards");

    m = must_parse(msg_with(REQ, "CSeq:", "CSeq: 4294967295 INVITE\r\n", ""));
    assert_int_equal(m->cseq_num, 4294967295u);
    sip_msg_free(m);
    expect_error(msg_with(REQ, "CSeq:", "CSeq: 4294967296 INVITE\r\n", ""), 400, "CSeq");
    expect_error(msg_with(REQ, "CSeq:", "CSeq: 1INVITE\r\n", ""), 400, "CSeq");
    expect_error(msg_with(REQ, "CSeq:", "CSeq: INVITE\r\n", ""), 400, "CSeq");
    expect_error(msg_with(REQ, "CSeq:", "CSeq: 1\r\n", ""), 400, "CSeq");
    expect_error(msg_with(REQ, "CSeq:", "CSeq: 1 INVITE x\r\n", ""), 400, "CSeq");
    expect_error(msg_with(REQ, "CSeq:", "CSeq: -1 INVITE\r\n", ""), 400, "CSeq");

    expect_error(msg_with(REQ, "Call-ID:", "Call-ID: a b\r\n", ""), 400, "Call-ID");
    expect_error(msg_with(REQ, "Call-ID:", "Call-ID: a@b@c\r\n", ""), 400, "Call-ID");
    expect_error(msg_with(REQ, "Call-ID:", "Call-ID: a@\r\n", ""), 400, "Call-ID");
    expect_error(msg_with(REQ, "Call-ID:", "Call-ID:\r\n", ""), 400, "Call-ID");
    expect_error(msg_with(REQ, "Call-ID:", "Call-ID: \xc3\xa9\r\n", ""), 400, "Call-ID");

    /* Content-Length against the body sip_msg_parse was given. */
    m = must_parse(msg_with(REQ, NULL, "Content-Length: 5\r\n", "hello"));
    assert_view(m->body, "hello");
    sip_msg_free(m);
    m = must_parse(msg_with(REQ, NULL, "Content-Length: 5\r\nl: 5\r\n", "hello"));
    sip_msg_free(m);
    m = must_parse(msg_with(REQ, NULL, "", "no length, all is body"));
    assert_view(m->body, "no length, all is body");
    sip_msg_free(m);
    expect_error(msg_with(REQ, NULL, "Content-Length: 4\r\n", "hello"), 400, "Content-Length");
    expect_error(msg_with(REQ, NULL, "Content-Length: 6\r\n", "hello"), 400, "Content-Length");
    expect_error(msg_with(REQ, NULL, "Content-Length: 5\r\nl: 6\r\n", "hello"), 400,
                 "conflicting Content-Length");
    expect_error(msg_with(REQ, NULL, "Content-Length: 99999999999999999999999\r\n", "hello"), 400,
                 "Content-Length");
    expect_error(msg_with(REQ, NULL, "Content-Length: five\r\n", "hello"), 400, "Content-Length");

    /* Repeated singletons: the same value is tolerated, another is not. */
    m = must_parse(msg_with(REQ, NULL, HEAD_CID HEAD_FROM "t: Bob <sips:bob@example.com>\r\n", ""));
    sip_msg_free(m);
    expect_error(msg_with(REQ, NULL, "Call-ID: other\r\n", ""), 400, "conflicting Call-ID");
    expect_error(msg_with(REQ, NULL, "f: <sip:x@y.z>\r\n", ""), 400, "conflicting From");
    expect_error(msg_with(REQ, NULL, "To: <sip:x@y.z>\r\n", ""), 400, "conflicting To");
    expect_error(msg_with(REQ, NULL, "CSeq: 2 INVITE\r\n", ""), 400, "conflicting CSeq");
    expect_error(msg_with(REQ, NULL, "Max-Forwards: 69\r\n", ""), 400, "conflicting Max-Forwards");

    m = must_parse(msg_with(REQ, NULL, "Expires: 4294967295\r\n", ""));
    assert_int_equal(m->expires, 4294967295LL);
    sip_msg_free(m);
    expect_error(msg_with(REQ, NULL, "Expires: 4294967296\r\n", ""), 400, "Expires");
    expect_error(msg_with(REQ, NULL, "Expires: Thu, 01 Dec 1994 16:00:00 GMT\r\n", ""), 400,
                 "Expires");
    m = must_parse(msg_with(REQ, NULL, "Date: Sat, 13 Nov 2010 23:29:00 GMT\r\n", ""));
    sip_msg_free(m);
    expect_error(msg_with(REQ, NULL, "Date: Sat, 13 Nov 2010 23:29:00 EST\r\n", ""), 400, "Date");
    expect_error(msg_with(REQ, NULL, "Content-Type: application\r\n", ""), 400, "Content-Type");
    expect_error(msg_with(REQ, NULL, "c: text/plain;;\r\n", ""), 400, "Content-Type");
    m = must_parse(msg_with(REQ, NULL, "c: text / plain ; charset=utf-8\r\n", ""));
    assert_view(m->content_type, "text/plain");
    sip_msg_free(m);

    expect_error(msg_with(REQ, NULL, "Contact: *, <sip:a@b.c>\r\n", ""), 400, "Contact");
    expect_error(msg_with(REQ, NULL, "Contact: <sip:a@b.c>,,<sip:d@b.c>\r\n", ""), 400, "Contact");
    expect_error(msg_with(REQ, NULL, "Contact:\r\n", ""), 400, "Contact");
    expect_error(msg_with(REQ, "From:", "From: *\r\n", ""), 400, "From");
    expect_error(msg_with(REQ, "Via:", "Via: SIP/2.0/UDP h;branch=z9hG4bK\r\n", ""), 400, "branch");
    m = must_parse(msg_with(REQ, NULL, "Via: SIP/2.0/UDP h;branch=z9hG4bK\r\n", ""));
    sip_msg_free(m); /* only the top Via carries our transaction */
    expect_error(msg_with(REQ, NULL, "Via: SIP/2.0/UDP h, \r\n", ""), 400, "Via");
    expect_error(msg_with(REQ, NULL, "Via:\r\n", ""), 400, "Via");
}

static void test_errors_lines(void **state)
{
    (void)state;
    expect_error(msg_with(REQ, NULL,
                          "X-Nul: a\x01"
                          "b\r\n",
                          ""),
                 400, "control");
    expect_error(msg_with(REQ, NULL, "X-Del: a\x7f\r\n", ""), 400, "control");
    expect_error(msg_with(REQ, NULL, "X-Cr: a\rb\r\n", ""), 400, "bare CR");
    expect_error(msg_with(REQ, NULL, "No colon\r\n", ""), 400, "header line");
    expect_error(msg_with(REQ, NULL, ": no name\r\n", ""), 400, "header line");
    expect_error(msg_with(REQ, NULL, "Bad(name): x\r\n", ""), 400, "header line");
    expect_error(REQ "\r\n" HEAD_VIA HEAD_FROM HEAD_TO HEAD_CID HEAD_CSEQ, 400, "no empty line");
    expect_error(REQ "\r\n" HEAD_VIA HEAD_FROM HEAD_TO HEAD_CID "CSeq: 1 INVITE", 400,
                 "no empty line");
    expect_error(REQ "\r\n" HEAD_VIA HEAD_FROM HEAD_TO HEAD_CID HEAD_CSEQ "\r", 400, "bare CR");
    expect_error(REQ "\r\n" HEAD_VIA HEAD_FROM HEAD_TO HEAD_CID HEAD_CSEQ "X: a\\", 400,
                 "no empty line");

    /* Escaped controls inside quoted strings are fine (RFC 4475 intmeth). */
    static const char nul_quoted[] = REQ "\r\n" HEAD_VIA HEAD_FROM HEAD_CID HEAD_CSEQ
                                         "To: \"NUL:\\\0 BEL:\\\a\" <sip:bob@example.com>\r\n\r\n";
    struct sip_msg *m;
    struct sip_parse_error err;
    assert_int_equal(parse_n(nul_quoted, sizeof(nul_quoted) - 1, &m, &err), 0);
    struct sip_addr a;
    assert_int_equal(sip_msg_to(m, &a), 0);
    assert_int_equal(a.display.n, 13);
    sip_msg_free(m);
}

static size_t base_head(char *buf, size_t cap)
{
    return (size_t)snprintf(buf, cap, "%s\r\n%s%s%s%s%sMax-Forwards: 70\r\n", REQ, HEAD_VIA,
                            HEAD_FROM, HEAD_TO, HEAD_CID, HEAD_CSEQ);
}

static int parse_tail(char *buf, size_t n, const char *tail, struct sip_msg **m,
                      struct sip_parse_error *err)
{
    size_t t = strlen(tail);
    memcpy(buf + n, tail, t);
    return parse_n(buf, n + t, m, err);
}

static void test_limits(void **state)
{
    (void)state;
    static char big[SIP_MAX_HEADER_LINE * 2 + 1024];
    char line[64];
    struct sip_msg *m;
    struct sip_parse_error err;

    /* SIP_MAX_HEADERS - 1 headers (the request's own 6 included)... */
    size_t n = base_head(big, sizeof(big));
    for (int i = 6; i < SIP_MAX_HEADERS - 1; i++) {
        int k = snprintf(line, sizeof(line), "X-%d: %d\r\n", i, i);
        memcpy(big + n, line, (size_t)k);
        n += (size_t)k;
    }
    /* ...plus one is the most there may be... */
    assert_int_equal(parse_tail(big, n, "X-Last: 1\r\n\r\n", &m, &err), 0);
    assert_int_equal(sip_msg_hdr_count(m, SIP_HDR_OTHER), SIP_MAX_HEADERS - 6);
    /* ...and printing adds a Content-Length, which parses again... */
    struct strbuf out = STRBUF_INIT;
    assert_int_equal(sip_msg_print(m, &out), 0);
    sip_msg_free(m);
    assert_int_equal(parse_n(out.p, out.len, &m, &err), 0);
    sip_msg_free(m);
    strbuf_free(&out);
    /* ...because Content-Length headers do not count... */
    assert_int_equal(parse_tail(big, n, "X-Last: 1\r\nl: 0\r\nContent-Length: 0\r\n\r\n", &m, &err),
                     0);
    sip_msg_free(m);
    /* ...and one more of the others is too many. */
    assert_int_equal(parse_tail(big, n, "X-Last: 1\r\nX-Next: 1\r\n\r\n", &m, &err), -EINVAL);
    assert_int_equal(err.status, 513);
    assert_non_null(strstr(err.reason, "too many headers"));

    /* A header line of exactly SIP_MAX_HEADER_LINE (name + value)... */
    n = base_head(big, sizeof(big));
    n += (size_t)snprintf(big + n, sizeof(big) - n, "X-Big:   ");
    size_t value = SIP_MAX_HEADER_LINE - 5;
    memset(big + n, 'v', value);
    assert_int_equal(parse_tail(big, n + value, "  \r\n\r\n", &m, &err), 0);
    struct sip_hdr *h = sip_msg_hdr_find_name(m, "X-Big");
    assert_int_equal(h->name.n + h->value.n, SIP_MAX_HEADER_LINE);
    sip_msg_free(m);
    /* ...one more byte is too long... */
    assert_int_equal(parse_tail(big, n + value, "w\r\n\r\n", &m, &err), -EINVAL);
    assert_int_equal(err.status, 513);
    assert_non_null(strstr(err.reason, "header too long"));
    /* ...and a fold counts as the one space it becomes. */
    memcpy(big + n + 100, "\r\n    ", 6);
    assert_int_equal(parse_tail(big, n + value, "wwwww\r\n\r\n", &m, &err), 0);
    h = sip_msg_hdr_find_name(m, "X-Big");
    assert_int_equal(h->name.n + h->value.n, SIP_MAX_HEADER_LINE);
    assert_int_equal(h->value.p[100], ' ');
    assert_int_equal(h->value.p[101], 'v');
    sip_msg_free(m);
}

static void print_and_check(const struct sip_msg *m, const char *want)
{
    struct strbuf b = STRBUF_INIT;
    assert_int_equal(sip_msg_print(m, &b), 0);
    if (want && strcmp(strbuf_cstr(&b), want) != 0)
        fail_msg("printed:\n%s\nwant:\n%s", strbuf_cstr(&b), want);
    struct sip_msg *again = must_parse(strbuf_cstr(&b));
    assert_true(strview_eq_view(again->call_id, m->call_id));
    assert_true(strview_eq_view(again->body, m->body));
    sip_msg_free(again);
    strbuf_free(&b);
}

static void test_print_roundtrip(void **state)
{
    (void)state;
    struct sip_msg *m = must_parse("OPTIONS sip:b@x.org SIP/2.0\n"
                                   "v: SIP/2.0/UDP h\n ;branch=z9hG4bK1\n"
                                   "f: <sip:a@x.org>;tag=1\n"
                                   "t: <sip:b@x.org>\n"
                                   "i: c1\n"
                                   "CSeq: 1 OPTIONS\n"
                                   "X-Empty:\n"
                                   "l: 000\n"
                                   "Content-Length: 0\n"
                                   "\n");
    print_and_check(m, "OPTIONS sip:b@x.org SIP/2.0\r\n"
                       "v: SIP/2.0/UDP h ;branch=z9hG4bK1\r\n"
                       "f: <sip:a@x.org>;tag=1\r\n"
                       "t: <sip:b@x.org>\r\n"
                       "i: c1\r\n"
                       "CSeq: 1 OPTIONS\r\n"
                       "X-Empty:\r\n"
                       "l: 0\r\n"
                       "\r\n");
    sip_msg_free(m);

    /* Content-Length added when missing. */
    m = must_parse("SIP/2.0 100 \r\n" HEAD_VIA HEAD_FROM HEAD_TO HEAD_CID HEAD_CSEQ "\r\n");
    print_and_check(m, "SIP/2.0 100 \r\n" HEAD_VIA HEAD_FROM HEAD_TO HEAD_CID HEAD_CSEQ
                       "Content-Length: 0\r\n\r\n");
    sip_msg_free(m);
}

static void test_edit(void **state)
{
    (void)state;
    struct sip_msg *m = must_parse("INVITE sip:bob@example.com SIP/2.0\r\n"
                                   "Via: SIP/2.0/TLS p1.example.com;branch=z9hG4bKp1, "
                                   "SIP/2.0/TLS c.example.com;branch=z9hG4bKc\r\n"
                                   "Route: <sip:p2.example.com;lr>, <sip:p3.example.com;lr>\r\n"
                                   "Route: <sip:p4.example.com;lr>\r\n"
                                   "Max-Forwards: 69\r\n"
                                   "Max-Forwards: 69\r\n" HEAD_FROM HEAD_TO HEAD_CID HEAD_CSEQ
                                   "Content-Type: text/plain\r\n"
                                   "Content-Length: 2\r\n"
                                   "\r\nhi");
    struct sip_via via;
    char branch[] = "z9hG4bKnew";

    /* A proxy: pops its Via, adds its own, pops a Route, counts down. */
    assert_int_equal(sip_msg_hdr_remove_first_value(m, SIP_HDR_VIA), 0);
    assert_int_equal(sip_msg_top_via(m, &via), 0);
    assert_view(via.host, "c.example.com");
    struct strview nv = sip_msg_printf(m, "SIP/2.0/TLS %s;branch=%s", "proxy.example.com", branch);
    memset(branch, 'X', sizeof(branch) - 1); /* the message holds its own copy */
    assert_int_equal(sip_msg_hdr_prepend(m, SIP_HDR_VIA, NULL, nv), 0);
    assert_int_equal(sip_msg_top_via(m, &via), 0);
    assert_view(via.branch, "z9hG4bKnew");
    assert_view(m->hdrs->name, "Via");

    assert_int_equal(sip_msg_hdr_remove_first_value(m, SIP_HDR_ROUTE), 0);
    assert_int_equal(sip_msg_hdr_remove_first_value(m, SIP_HDR_ROUTE), 0);
    assert_int_equal(sip_msg_hdr_count(m, SIP_HDR_ROUTE), 1);
    assert_view(sip_msg_hdr_first(m, SIP_HDR_ROUTE)->value, "<sip:p4.example.com;lr>");
    assert_int_equal(sip_msg_hdr_remove_first_value(m, SIP_HDR_ROUTE), 0);
    assert_int_equal(sip_msg_hdr_count(m, SIP_HDR_ROUTE), 0);
    assert_int_equal(sip_msg_hdr_remove_first_value(m, SIP_HDR_ROUTE), -ENOENT);

    assert_int_equal(sip_msg_set_max_forwards(m, m->max_forwards - 1), 0);
    assert_int_equal(m->max_forwards, 68);
    assert_int_equal(sip_msg_hdr_count(m, SIP_HDR_MAX_FORWARDS), 1);
    assert_int_equal(sip_msg_set_max_forwards(m, 256), -EINVAL);
    assert_int_equal(sip_msg_set_max_forwards(m, -1), -EINVAL);

    assert_int_equal(sip_msg_hdr_append(m, SIP_HDR_OTHER, "Record-Route",
                                        strview_cstr("  <sip:proxy.example.com;lr>  ")),
                     0);
    assert_int_equal(sip_msg_hdr_count(m, SIP_HDR_RECORD_ROUTE), 1);
    assert_view(sip_msg_hdr_first(m, SIP_HDR_RECORD_ROUTE)->value, "<sip:proxy.example.com;lr>");
    assert_int_equal(sip_msg_hdr_append(m, SIP_HDR_OTHER, "X-Proxy", strview_cstr("1")), 0);
    assert_int_equal(sip_msg_hdr_append(m, SIP_HDR_OTHER, "X Bad", strview_cstr("1")), -EINVAL);
    assert_int_equal(sip_msg_hdr_append(m, SIP_HDR_OTHER, NULL, strview_cstr("1")), -EINVAL);
    assert_int_equal(
        sip_msg_hdr_prepend(m, SIP_HDR_OTHER, "X-Inject", strview_cstr("a\r\nVia: evil")), -EINVAL);

    struct sip_hdr *h = sip_msg_hdr_find_name(m, "X-Proxy");
    assert_int_equal(sip_msg_hdr_set_value(m, h, strview_cstr("2")), 0);
    assert_int_equal(sip_msg_hdr_set_value(m, h, strview_cstr("2\n")), -EINVAL);
    assert_view(h->value, "2");
    assert_int_equal(sip_msg_hdr_set_value(m, h, strview_cstr("a\nb")), -EINVAL);
    assert_view(h->value, "2");

    assert_int_equal(
        sip_msg_set_request_uri(m, strview_cstr("sip:bob@192.0.2.7:5061;transport=tls")), 0);
    assert_int_equal(m->ruri.port, 5061);
    assert_int_equal(sip_msg_set_request_uri(m, strview_cstr("sip:bob@host?x=y")), -EINVAL);
    assert_int_equal(sip_msg_set_request_uri(m, strview_cstr("not a uri")), -EINVAL);
    assert_view(m->request_uri, "sip:bob@192.0.2.7:5061;transport=tls");

    assert_int_equal(
        sip_msg_set_body(m, strview_cstr("application/sdp;x=1"), strview_cstr("v=0\r\n")), 0);
    assert_view(m->content_type, "application/sdp");
    assert_view(m->body, "v=0\r\n");
    assert_int_equal(sip_msg_set_body(m, strview_cstr("sdp"), strview_cstr("x")), -EINVAL);
    assert_int_equal(sip_msg_set_body(m, strview_cstr("a/b;"), strview_cstr("x")), -EINVAL);
    assert_view(m->body, "v=0\r\n");

    assert_int_equal(sip_msg_hdr_remove_all(m, SIP_HDR_CSEQ), 1);
    assert_null(sip_msg_hdr_first(m, SIP_HDR_CSEQ));
    assert_int_equal(sip_msg_hdr_append(m, SIP_HDR_CSEQ, NULL, strview_cstr("314159 INVITE")), 0);

    print_and_check(m, "INVITE sip:bob@192.0.2.7:5061;transport=tls SIP/2.0\r\n"
                       "Via: SIP/2.0/TLS proxy.example.com;branch=z9hG4bKnew\r\n"
                       "Via: SIP/2.0/TLS c.example.com;branch=z9hG4bKc\r\n"
                       "Max-Forwards: 68\r\n" HEAD_FROM HEAD_TO HEAD_CID
                       "Content-Type: application/sdp;x=1\r\n"
                       "Content-Length: 5\r\n"
                       "Record-Route: <sip:proxy.example.com;lr>\r\n"
                       "X-Proxy: 2\r\n"
                       "CSeq: 314159 INVITE\r\n"
                       "\r\n"
                       "v=0\r\n");

    /* No body and no type: the header goes. */
    assert_int_equal(sip_msg_set_body(m, STRVIEW_EMPTY, STRVIEW_EMPTY), 0);
    assert_null(sip_msg_hdr_first(m, SIP_HDR_CONTENT_TYPE));
    assert_int_equal(m->body.n, 0);
    assert_int_equal(m->content_type.n, 0);
    print_and_check(m, NULL);

    sip_msg_hdr_remove(m, sip_msg_hdr_first(m, SIP_HDR_VIA));
    assert_int_equal(sip_msg_hdr_count(m, SIP_HDR_VIA), 1);
    sip_msg_free(m);

    /* Responses have no Request-URI to set. */
    m = must_parse("SIP/2.0 200 OK\r\n" HEAD_VIA HEAD_FROM HEAD_TO HEAD_CID HEAD_CSEQ "\r\n");
    assert_int_equal(sip_msg_set_request_uri(m, strview_cstr("sip:a@b")), -EINVAL);
    /* Max-Forwards added when absent. */
    assert_int_equal(sip_msg_set_max_forwards(m, 5), 0);
    assert_view(sip_msg_hdr_first(m, SIP_HDR_MAX_FORWARDS)->value, "5");
    sip_msg_free(m);
}

static void test_arena_growth(void **state)
{
    (void)state;
    struct sip_msg *m = must_parse(msg_with(REQ, NULL, NULL, ""));
    char name[32];
    /* Far past the first chunk: later chunks hold the rest. */
    for (int i = 0; i < 2000; i++) {
        snprintf(name, sizeof(name), "X-H%d", i);
        struct strview v = sip_msg_printf(m, "value-%d-%0200d", i, i);
        assert_non_null(v.p);
        assert_int_equal(sip_msg_hdr_append(m, SIP_HDR_OTHER, name, v), 0);
    }
    struct strview big = sip_msg_strdup(m, "", 0);
    assert_non_null(big.p);
    char *blob = malloc(100000);
    memset(blob, 'b', 100000);
    assert_int_equal(
        sip_msg_set_body(m, strview_cstr("application/octet-stream"), strview_make(blob, 100000)),
        0);
    free(blob);
    struct sip_hdr *h = sip_msg_hdr_find_name(m, "X-H1999");
    assert_non_null(h);
    assert_memory_equal(h->value.p, "value-1999-", 11);
    struct strbuf b = STRBUF_INIT;
    assert_int_equal(sip_msg_print(m, &b), 0);
    assert_non_null(strstr(b.p, "Content-Length: 100000\r\n"));
    strbuf_free(&b);
    sip_msg_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_methods),
        cmocka_unit_test(test_header_names),
        cmocka_unit_test(test_parse_invite),
        cmocka_unit_test(test_parse_response),
        cmocka_unit_test(test_compact_folding_lf),
        cmocka_unit_test(test_split_commas),
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_via_parse),
        cmocka_unit_test(test_addr_parse),
        cmocka_unit_test(test_errors_required),
        cmocka_unit_test(test_errors_start_line),
        cmocka_unit_test(test_errors_values),
        cmocka_unit_test(test_errors_lines),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_print_roundtrip),
        cmocka_unit_test(test_edit),
        cmocka_unit_test(test_arena_growth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
