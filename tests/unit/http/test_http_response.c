#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <cmocka.h>

#include "core/strbuf.h"
#include "http/request.h"
#include "http/response.h"

static bool has_line(const char *head, const char *line)
{
    char want[256];
    snprintf(want, sizeof(want), "\r\n%s\r\n", line);
    return strstr(head, want) != NULL;
}

static void test_basic(void **state)
{
    (void)state;
    struct strbuf b = STRBUF_INIT;
    http_response_begin(&b, 200, NULL);
    http_response_header(&b, "Content-Type", "text/html");
    http_response_headerf(&b, "ETag", "\"%d\"", 42);
    http_response_end(&b, "hello", 5, false, false);
    const char *s = strbuf_cstr(&b);
    assert_memory_equal(s, "HTTP/1.1 200 OK\r\nDate: ", 23);
    assert_true(has_line(s, "Server: Parley"));
    assert_true(has_line(s, "Strict-Transport-Security: max-age=31536000"));
    assert_true(has_line(s, "X-Content-Type-Options: nosniff"));
    assert_true(has_line(s, "Cache-Control: no-store"));
    assert_true(has_line(s, "Content-Type: text/html"));
    assert_true(has_line(s, "ETag: \"42\""));
    assert_true(has_line(s, "Content-Length: 5"));
    assert_null(strstr(s, "Connection:"));
    assert_int_equal(strcmp(s + b.len - 9, "\r\n\r\nhello"), 0);
    /* Date is an IMF-fixdate */
    const char *d = strstr(s, "Date: ") + 6;
    assert_int_equal(strcspn(d, "\r"), 29);
    assert_memory_equal(d + 25, " GMT", 4);
    strbuf_free(&b);
}

static void test_cache_control_head_close(void **state)
{
    (void)state;
    struct strbuf b = STRBUF_INIT;
    /* a first response in the same buffer does not count for the second */
    http_response_begin(&b, 200, NULL);
    http_response_header(&b, "Cache-Control", "max-age=60");
    http_response_end(&b, "x\r\nCache-Control: y", 19, false, false);
    size_t first = b.len;
    http_response_begin(&b, 404, "Gone Fishing");
    http_response_end(&b, "abcdef", 6, true, true);
    const char *s = strbuf_cstr(&b);
    assert_non_null(strstr(s, "max-age=60"));
    /* the first body's "Cache-Control: y" is not the second's field */
    assert_non_null(strstr(s + first, "Cache-Control: no-store"));
    assert_null(strstr(s + first, "max-age=60"));
    assert_int_equal(strstr(s, "no-store") - s > (ptrdiff_t)first, 1);
    strbuf_free(&b);
    /* the second one alone */
    http_response_begin(&b, 200, NULL);
    http_response_header(&b, "Cache-Control", "private");
    http_response_end(&b, NULL, 0, false, false);
    http_response_begin(&b, 404, "Gone Fishing");
    http_response_end(&b, "abcdef", 6, true, true);
    s = strbuf_cstr(&b);
    const char *second = strstr(s, "HTTP/1.1 404 Gone Fishing\r\n");
    assert_non_null(second);
    assert_true(has_line(second, "Cache-Control: no-store"));
    assert_true(has_line(second, "Content-Length: 6"));
    assert_true(has_line(second, "Connection: close"));
    assert_int_equal(strcmp(s + b.len - 4, "\r\n\r\n"), 0); /* HEAD: no body */
    strbuf_free(&b);
}

static void test_bodiless_and_injection(void **state)
{
    (void)state;
    struct strbuf b = STRBUF_INIT;
    http_response_begin(&b, 204, NULL);
    http_response_header(&b, "X-Evil", "a\r\nSet-Cookie: x=1");
    http_response_header(&b, "Bad Name", "v");
    http_response_header(&b, "Bad\r\nName", "v");
    http_response_end(&b, "ignored", 7, false, false);
    const char *s = strbuf_cstr(&b);
    assert_memory_equal(s, "HTTP/1.1 204 No Content\r\n", 25);
    assert_true(has_line(s, "X-Evil: a  Set-Cookie: x=1"));
    assert_null(strstr(s, "\r\nSet-Cookie"));
    assert_null(strstr(s, "Bad"));
    assert_null(strstr(s, "Content-Length"));
    assert_null(strstr(s, "ignored"));
    strbuf_reset(&b);
    http_response_begin(&b, 400, "bad\r\nX: y");
    http_response_end(&b, NULL, 0, false, true);
    assert_memory_equal(strbuf_cstr(&b), "HTTP/1.1 400 bad  X: y\r\n", 24);
    strbuf_free(&b);
}

static void test_error_and_reasons(void **state)
{
    (void)state;
    struct strbuf b = STRBUF_INIT;
    http_response_error(&b, 413, "request body too large", true);
    const char *s = strbuf_cstr(&b);
    assert_memory_equal(s, "HTTP/1.1 413 Content Too Large\r\n", 32);
    assert_true(has_line(s, "Content-Type: text/plain; charset=utf-8"));
    assert_true(has_line(s, "Content-Length: 23"));
    assert_true(has_line(s, "Connection: close"));
    assert_int_equal(strcmp(s + b.len - 23, "request body too large\n"), 0);
    strbuf_free(&b);
    assert_string_equal(http_status_reason(505), "HTTP Version Not Supported");
    assert_string_equal(http_status_reason(431), "Request Header Fields Too Large");
    assert_string_equal(http_status_reason(299), "Unknown");
    char d[30];
    http_response_date(784111777, d);
    assert_string_equal(d, "Sun, 06 Nov 1994 08:49:37 GMT");
}

static struct http_request *with_ae(const char *value)
{
    struct http_span names[] = {{"Host", 4}, {"Accept-Encoding", 15}};
    struct http_span values[] = {{"a", 1}, {value, value ? strlen(value) : 0}};
    struct http_request *r;
    assert_int_equal(
        http_request_new("GET", (struct http_span){"/", 1}, 1, names, values, value ? 2 : 1, &r),
        0);
    return r;
}

static void test_accept_encoding(void **state)
{
    (void)state;
    struct {
        const char *v;
        bool gzip;
    } cases[] = {
        {NULL, false},
        {"gzip", true},
        {"GZIP", true},
        {"deflate, gzip;q=1.0", true},
        {"gzip;q=0", false},
        {"gzip;q=0.000", false},
        {"gzip; q=0.001", true},
        {"gzip;q=0, *", false}, /* named explicitly: * does not override */
        {"*", true},
        {"*;q=0", false},
        {"identity", false},
        {"identity, *;q=0", false},
        {"br, x-gzip", true},
        {"gzip;q=2", false},
        {"gzip;q=abc", false},
        {"gzipx, xgzip", false},
        {"", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct http_request *r = with_ae(cases[i].v);
        if (http_accepts_gzip(r) != cases[i].gzip)
            fail_msg("Accept-Encoding: %s", cases[i].v ? cases[i].v : "(none)");
        http_request_free(r);
    }
}

static void test_gzip_round_trip(void **state)
{
    (void)state;
    struct strbuf in = STRBUF_INIT, out = STRBUF_INIT;
    for (int i = 0; i < 5000; i++)
        strbuf_printf(&in, "line %d of some compressible text\n", i % 50);
    strbuf_puts(&out, "prefix");
    assert_int_equal(http_gzip(in.p, in.len, &out), 0);
    assert_true(out.len > 6 + 18 && out.len < in.len / 4);
    assert_int_equal((unsigned char)out.p[6], 0x1f); /* gzip magic */
    assert_int_equal((unsigned char)out.p[7], 0x8b);

    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    assert_int_equal(inflateInit2(&zs, 31), Z_OK);
    unsigned char *back = malloc(in.len + 16);
    zs.next_in = (unsigned char *)out.p + 6;
    zs.avail_in = (uInt)(out.len - 6);
    zs.next_out = back;
    zs.avail_out = (uInt)(in.len + 16);
    assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
    assert_int_equal(zs.total_out, in.len);
    assert_memory_equal(back, in.p, in.len);
    inflateEnd(&zs);
    free(back);

    /* empty input is a valid, empty gzip member */
    strbuf_reset(&out);
    assert_int_equal(http_gzip("", 0, &out), 0);
    assert_true(out.len >= 18);
    strbuf_free(&in);
    strbuf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_cache_control_head_close),
        cmocka_unit_test(test_bodiless_and_injection),
        cmocka_unit_test(test_error_and_reasons),
        cmocka_unit_test(test_accept_encoding),
        cmocka_unit_test(test_gzip_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
