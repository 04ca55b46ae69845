#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sip/frame.h"

#define MAX 65536

/* Scans an exact-size heap copy: ASan catches any read past avail. */
static enum sip_frame_result scan_n(const char *data, size_t n, size_t max, struct sip_frame *fr)
{
    char *copy = malloc(n ? n : 1);
    memcpy(copy, data, n);
    enum sip_frame_result r = sip_frame_scan(copy, n, max, fr);
    free(copy);
    return r;
}

static enum sip_frame_result scan(const char *data, size_t max, struct sip_frame *fr)
{
    return scan_n(data, strlen(data), max, fr);
}

static const char msg1[] = "INVITE sip:bob@example.com SIP/2.0\r\n"
                           "Via: SIP/2.0/TLS a.example.com;branch=z9hG4bK1\r\n"
                           "Content-Type: text/plain\r\n"
                           "Content-Length: 11\r\n"
                           "\r\n"
                           "hello\r\n\r\nyo";
static const char msg2[] = "SIP/2.0 200 OK\n"
                           "l:0\n"
                           "\n";

static void test_single(void **state)
{
    (void)state;
    struct sip_frame fr;
    assert_int_equal(scan(msg1, MAX, &fr), SIP_FRAME_MESSAGE);
    assert_int_equal(fr.len, strlen(msg1));
    assert_int_equal(fr.ping, 0);
    assert_int_equal(scan(msg2, MAX, &fr), SIP_FRAME_MESSAGE);
    assert_int_equal(fr.len, strlen(msg2));
    assert_int_equal(scan("", MAX, &fr), SIP_FRAME_NEED_MORE);
}

/* Every split point of a two-message stream: NEED_MORE until the first
 * message is complete, then the first, then NEED_MORE until the second. */
static void test_every_split(void **state)
{
    (void)state;
    char stream[512];
    size_t l1 = strlen(msg1), l2 = strlen(msg2);
    memcpy(stream, msg1, l1);
    memcpy(stream + l1, msg2, l2);
    size_t total = l1 + l2;

    for (size_t k = 0; k <= total; k++) {
        struct sip_frame fr;
        enum sip_frame_result r = scan_n(stream, k, MAX, &fr);
        if (k < l1) {
            if (r != SIP_FRAME_NEED_MORE)
                fail_msg("at %zu of %zu: %d", k, l1, (int)r);
            continue;
        }
        assert_int_equal(r, SIP_FRAME_MESSAGE);
        assert_int_equal(fr.len, l1);
        r = scan_n(stream + l1, k - l1, MAX, &fr);
        if (k < total) {
            if (r != SIP_FRAME_NEED_MORE)
                fail_msg("second at %zu of %zu: %d", k - l1, l2, (int)r);
        } else {
            assert_int_equal(r, SIP_FRAME_MESSAGE);
            assert_int_equal(fr.len, l2);
        }
    }
}

static void test_keepalive(void **state)
{
    (void)state;
    struct sip_frame fr;

    assert_int_equal(scan("\r\n\r\n", MAX, &fr), SIP_FRAME_KEEPALIVE);
    assert_int_equal(fr.len, 4);
    assert_int_equal(fr.ping, 1);
    assert_int_equal(scan("\r\n\r\n\r\n\r\nINVITE", MAX, &fr), SIP_FRAME_KEEPALIVE);
    assert_int_equal(fr.len, 4);
    assert_int_equal(fr.ping, 1);

    /* A ping may still be arriving. */
    assert_int_equal(scan("\r", MAX, &fr), SIP_FRAME_NEED_MORE);
    assert_int_equal(scan("\r\n", MAX, &fr), SIP_FRAME_NEED_MORE);
    assert_int_equal(scan("\r\n\r", MAX, &fr), SIP_FRAME_NEED_MORE);

    /* A lone CRLF (a pong, or leftovers) is consumed, unanswered. */
    assert_int_equal(scan("\r\nOPTIONS", MAX, &fr), SIP_FRAME_KEEPALIVE);
    assert_int_equal(fr.len, 2);
    assert_int_equal(fr.ping, 0);
    assert_int_equal(scan("\n\nSIP", MAX, &fr), SIP_FRAME_KEEPALIVE);
    assert_int_equal(fr.len, 2);
    assert_int_equal(fr.ping, 0);
    assert_int_equal(scan("\n", MAX, &fr), SIP_FRAME_KEEPALIVE);
    assert_int_equal(fr.len, 1);
    assert_int_equal(scan("\r\r\r\r\r", MAX, &fr), SIP_FRAME_KEEPALIVE);
    assert_int_equal(fr.len, 5);
    assert_int_equal(fr.ping, 0);
    /* Stops in front of a ping so it gets its answer. */
    assert_int_equal(scan("\n\r\n\r\n", MAX, &fr), SIP_FRAME_KEEPALIVE);
    assert_int_equal(fr.len, 1);
    assert_int_equal(fr.ping, 0);

    /* A keep-alive then a message. */
    char buf[256];
    snprintf(buf, sizeof(buf), "\r\n\r\n%s", msg2);
    assert_int_equal(scan(buf, MAX, &fr), SIP_FRAME_KEEPALIVE);
    assert_int_equal(scan(buf + fr.len, MAX, &fr), SIP_FRAME_MESSAGE);
    assert_int_equal(fr.len, strlen(msg2));
}

static void test_content_length_forms(void **state)
{
    (void)state;
    struct sip_frame fr;
    assert_int_equal(scan("BYE sip:a@b SIP/2.0\r\nCONTENT-LENGTH  :   3  \r\n\r\nabc", MAX, &fr),
                     SIP_FRAME_MESSAGE);
    assert_int_equal(fr.len, strlen("BYE sip:a@b SIP/2.0\r\nCONTENT-LENGTH  :   3  \r\n\r\nabc"));
    assert_int_equal(scan("BYE sip:a@b SIP/2.0\r\nL: 3\r\n\r\nabcdef", MAX, &fr),
                     SIP_FRAME_MESSAGE);
    assert_int_equal(fr.len, strlen("BYE sip:a@b SIP/2.0\r\nL: 3\r\n\r\n") + 3);
    /* Folded value. */
    assert_int_equal(scan("BYE sip:a@b SIP/2.0\r\nContent-Length:\r\n  2\r\n\r\nab", MAX, &fr),
                     SIP_FRAME_MESSAGE);
    /* Repeats that agree. */
    assert_int_equal(scan("BYE sip:a@b SIP/2.0\r\nl: 2\r\nContent-Length: 02\r\n\r\nab", MAX, &fr),
                     SIP_FRAME_MESSAGE);
    /* Names that only look alike, and a Content-Length in the body. */
    assert_int_equal(scan("BYE sip:a@b SIP/2.0\r\nContent-Lengths: 9\r\nlx: 9\r\nl: 0\r\n\r\n"
                          "Content-Length: 5\r\n\r\n",
                          MAX, &fr),
                     SIP_FRAME_MESSAGE);
    assert_int_equal(fr.len, strlen("BYE sip:a@b SIP/2.0\r\nContent-Lengths: 9\r\nlx: 9\r\nl: 0\r\n"
                                    "\r\n"));
    /* LF-only head; "\n\r\n" ends a head too. */
    assert_int_equal(scan("BYE sip:a@b SIP/2.0\nl: 1\n\r\nx", MAX, &fr), SIP_FRAME_MESSAGE);
    assert_int_equal(fr.len, strlen("BYE sip:a@b SIP/2.0\nl: 1\n\r\nx"));
}

static void test_bad(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "BYE sip:a@b SIP/2.0\r\nVia: x\r\n\r\n",
        "BYE sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n",
        "BYE sip:a@b SIP/2.0\r\nContent-Length: abc\r\n\r\n",
        "BYE sip:a@b SIP/2.0\r\nContent-Length: \r\n\r\n",
        "BYE sip:a@b SIP/2.0\r\nContent-Length: 1 2\r\n\r\n",
        "BYE sip:a@b SIP/2.0\r\nContent-Length: 1, 2\r\n\r\n",
        "BYE sip:a@b SIP/2.0\r\nContent-Length: 0x10\r\n\r\n",
        "BYE sip:a@b SIP/2.0\r\nContent-Length: +5\r\n\r\n",
        "BYE sip:a@b SIP/2.0\r\nContent-Length: 0\r\nl: 1\r\n\r\nx",
        "BYE sip:a@b SIP/2.0\r\nl: 9999999999999999999999999\r\nl: 1\r\n\r\nx",
        "BYE sip:a@b SIP/2.0\r\nl: 1\r\nl: 9999999999999999999999999\r\n\r\nx",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct sip_frame fr;
        enum sip_frame_result r = scan(bad[i], MAX, &fr);
        if (r != SIP_FRAME_BAD)
            fail_msg("%zu: got %d for %s", i, (int)r, bad[i]);
        assert_non_null(fr.reason);
    }
}

static void test_too_large(void **state)
{
    (void)state;
    struct sip_frame fr;
    const char *head = "MESSAGE sip:a@b SIP/2.0\r\nl: 10\r\n\r\n";
    size_t hl = strlen(head);
    char buf[128];
    snprintf(buf, sizeof(buf), "%s0123456789", head);

    /* head + body == max: fine; one less: too large, before any body. */
    assert_int_equal(scan(buf, hl + 10, &fr), SIP_FRAME_MESSAGE);
    assert_int_equal(scan_n(buf, hl, hl + 9, &fr), SIP_FRAME_TOO_LARGE);
    assert_non_null(fr.reason);
    assert_int_equal(
        scan("MESSAGE sip:a@b SIP/2.0\r\nl: 99999999999999999999999999\r\n\r\n", MAX, &fr),
        SIP_FRAME_TOO_LARGE);
    assert_int_equal(scan("MESSAGE sip:a@b SIP/2.0\r\nl: 65536\r\n\r\n", MAX, &fr),
                     SIP_FRAME_TOO_LARGE);
    assert_int_equal(scan("MESSAGE sip:a@b SIP/2.0\r\nl: 18446744073709551615\r\n\r\n", MAX, &fr),
                     SIP_FRAME_TOO_LARGE);
    assert_int_equal(
        scan("MESSAGE sip:a@b SIP/2.0\r\nl: 18446744073709551616\r\n\r\n", (size_t)-1, &fr),
        SIP_FRAME_TOO_LARGE);
    assert_int_equal(scan("MESSAGE sip:a@b SIP/2.0\r\nl: 1\r\n\r\n", 3, &fr), SIP_FRAME_TOO_LARGE);
    assert_int_equal(scan("MESSAGE sip:a@b SIP/2.0\r\nl: 1\r\n\r\n", 0, &fr), SIP_FRAME_TOO_LARGE);

    /* No end of head within max_size bytes. */
    char big[300];
    memset(big, 'a', sizeof(big));
    memcpy(big, "OPTIONS sip:a@b SIP/2.0\r\nX: ", 28);
    assert_int_equal(scan_n(big, sizeof(big), 256, &fr), SIP_FRAME_TOO_LARGE);
    assert_int_equal(scan_n(big, 256, 256, &fr), SIP_FRAME_TOO_LARGE);
    assert_int_equal(scan_n(big, 255, 256, &fr), SIP_FRAME_NEED_MORE);
    /* The blank line just past the limit does not count. */
    memcpy(big + 253, "\r\n\r\n", 4);
    assert_int_equal(scan_n(big, sizeof(big), 256, &fr), SIP_FRAME_TOO_LARGE);
    assert_int_equal(scan_n(big, sizeof(big), 257, &fr), SIP_FRAME_BAD); /* no Content-Length */
}

/* Feeds the scanner every prefix of a long run of junk and of messages:
 * the scan stays within the bytes it is given (ASan watches). */
static void test_prefixes(void **state)
{
    (void)state;
    static const char stream[] = "\r\n\r\n\nBYE sip:a@b SIP/2.0\r\nl:\r\n 3\r\nX:\r\n\r\nabc"
                                 "\r\nINVITE x\n\rl: 1\n\n\n";
    for (size_t k = 0; k < sizeof(stream); k++) {
        for (size_t off = 0; off < k; off++) {
            struct sip_frame fr;
            enum sip_frame_result r = scan_n(stream + off, k - off, 64, &fr);
            if (r == SIP_FRAME_MESSAGE || r == SIP_FRAME_KEEPALIVE)
                assert_true(fr.len > 0 && fr.len <= k - off);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single),    cmocka_unit_test(test_every_split),
        cmocka_unit_test(test_keepalive), cmocka_unit_test(test_content_length_forms),
        cmocka_unit_test(test_bad),       cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_prefixes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
