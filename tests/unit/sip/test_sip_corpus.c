/*
 * The parser against the RFC 4475-style corpus in corpus/ (path in argv[1]).
 * valid/NAME.sip: each file is a stream of one or more messages; every one
 * must frame, parse, print and parse again to the same values.
 * invalid/NAME.sip: sip_msg_parse on the whole file must fail with the status
 * and the fault that invalid/expected.txt names.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/strbuf.h"
#include "sip/build.h"
#include "sip/frame.h"
#include "sip/msg.h"

static const char *corpus_dir;

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n + 1);
        if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
        *len = (size_t)n;
    }
    fclose(f);
    return buf;
}

static bool views_equal(struct strview a, struct strview b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

/* print -> parse must give the same message. */
static void check_roundtrip(const char *name, const struct sip_msg *m)
{
    struct strbuf out = STRBUF_INIT;
    struct sip_msg *m2 = NULL;
    struct sip_parse_error err;

    assert_int_equal(sip_msg_print(m, &out), 0);
    if (sip_msg_parse(out.p, out.len, &m2, &err) != 0)
        fail_msg("%s: printed message does not parse: %s\n%s", name, err.reason, out.p);
    assert_int_equal(m2->is_request, m->is_request);
    assert_true(views_equal(m2->method_name, m->method_name));
    assert_true(views_equal(m2->request_uri, m->request_uri));
    assert_int_equal(m2->status, m->status);
    assert_true(views_equal(m2->reason, m->reason));
    assert_true(views_equal(m2->call_id, m->call_id));
    assert_int_equal(m2->cseq_num, m->cseq_num);
    assert_true(views_equal(m2->cseq_method_name, m->cseq_method_name));
    assert_int_equal(m2->max_forwards, m->max_forwards);
    assert_int_equal(m2->expires, m->expires);
    assert_true(views_equal(m2->content_type, m->content_type));
    assert_true(views_equal(m2->body, m->body));
    /* Header by header, but Content-Length prints once, as a number. */
    const struct sip_hdr *a = m->hdrs, *b = m2->hdrs;
    for (;;) {
        while (a && a->id == SIP_HDR_CONTENT_LENGTH)
            a = a->next;
        while (b && b->id == SIP_HDR_CONTENT_LENGTH)
            b = b->next;
        if (!a || !b)
            break;
        assert_int_equal(a->id, b->id);
        assert_true(views_equal(a->name, b->name));
        if (!views_equal(a->value, b->value))
            fail_msg("%s: header %.*s changed", name, (int)a->name.n, a->name.p);
        a = a->next;
        b = b->next;
    }
    assert_null(a);
    assert_null(b);
    assert_int_equal(sip_msg_hdr_count(m2, SIP_HDR_CONTENT_LENGTH), 1);
    sip_msg_free(m2);
    strbuf_free(&out);
}

static int sip_files(const char *dir, char names[][128], int max)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    if (!d)
        fail_msg("cannot open %s: %s", dir, strerror(errno));
    while ((e = readdir(d)) && n < max) {
        size_t len = strlen(e->d_name);
        if (len > 4 && len < 128 && strcmp(e->d_name + len - 4, ".sip") == 0)
            snprintf(names[n++], 128, "%s", e->d_name);
    }
    closedir(d);
    return n;
}

static void test_valid(void **state)
{
    (void)state;
    char dir[512], path[1024 + 128];
    static char names[256][128];
    int messages = 0;

    snprintf(dir, sizeof(dir), "%.500s/valid", corpus_dir);
    int n = sip_files(dir, names, 256);
    assert_true(n >= 20);
    for (int i = 0; i < n; i++) {
        size_t len = 0, off = 0;
        snprintf(path, sizeof(path), "%s/%.127s", dir, names[i]);
        char *data = read_file(path, &len);
        assert_non_null(data);
        while (off < len) {
            struct sip_frame fr;
            enum sip_frame_result r = sip_frame_scan(data + off, len - off, 65536, &fr);
            if (r == SIP_FRAME_KEEPALIVE) {
                off += fr.len;
                continue;
            }
            if (r != SIP_FRAME_MESSAGE)
                fail_msg("%s: framing at %zu gave %d (%s)", names[i], off, (int)r,
                         fr.reason ? fr.reason : "");
            struct sip_msg *m;
            struct sip_parse_error err;
            if (sip_msg_parse(data + off, fr.len, &m, &err) != 0)
                fail_msg("%s: %s (status %d)", names[i], err.reason, err.status);
            assert_int_equal(err.status, 0);
            check_roundtrip(names[i], m);
            if (m->is_request) {
                struct strbuf resp = STRBUF_INIT;
                assert_int_equal(
                    sip_build_response(m, 200, NULL, "t1", NULL, NULL, STRVIEW_EMPTY, &resp), 0);
                struct sip_msg *r2;
                if (sip_msg_parse(resp.p, resp.len, &r2, &err) != 0)
                    fail_msg("%s: response does not parse: %s\n%s", names[i], err.reason, resp.p);
                assert_int_equal(sip_msg_hdr_count(r2, SIP_HDR_VIA),
                                 sip_msg_hdr_count(m, SIP_HDR_VIA));
                sip_msg_free(r2);
                strbuf_free(&resp);
            }
            sip_msg_free(m);
            off += fr.len;
            messages++;
        }
        free(data);
    }
    assert_true(messages > n);
}

struct expectation {
    char name[64];
    int status;
    char fault[96];
    bool seen;
};

static void test_invalid(void **state)
{
    (void)state;
    char dir[512], path[1024 + 128], line[256];
    static char names[256][128];
    static struct expectation exp[256];
    int nexp = 0;

    snprintf(path, sizeof(path), "%.500s/invalid/expected.txt", corpus_dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f) && nexp < 256) {
        struct expectation *e = &exp[nexp];
        if (line[0] == '#' || line[0] == '\n')
            continue;
        line[strcspn(line, "\n")] = '\0';
        int used = 0;
        if (sscanf(line, "%63s %d %n", e->name, &e->status, &used) < 2)
            fail_msg("bad line in expected.txt: %s", line);
        snprintf(e->fault, sizeof(e->fault), "%s", line + used);
        e->seen = false;
        nexp++;
    }
    fclose(f);

    snprintf(dir, sizeof(dir), "%.500s/invalid", corpus_dir);
    int n = sip_files(dir, names, 256);
    assert_true(n >= 25);
    for (int i = 0; i < n; i++) {
        struct expectation *e = NULL;
        for (int k = 0; k < nexp; k++)
            if (strncmp(exp[k].name, names[i], strlen(names[i]) - 4) == 0 &&
                exp[k].name[strlen(names[i]) - 4] == '\0')
                e = &exp[k];
        if (!e)
            fail_msg("%s has no line in expected.txt", names[i]);
        e->seen = true;
        size_t len = 0;
        snprintf(path, sizeof(path), "%s/%.127s", dir, names[i]);
        char *data = read_file(path, &len);
        assert_non_null(data);
        struct sip_msg *m = NULL;
        struct sip_parse_error err;
        int rc = sip_msg_parse(data, len, &m, &err);
        if (rc != -EINVAL)
            fail_msg("%s: parsed (rc %d)", names[i], rc);
        assert_null(m);
        if (err.status != e->status || !strstr(err.reason, e->fault))
            fail_msg("%s: got %d \"%s\", want %d \"%s\"", names[i], err.status, err.reason,
                     e->status, e->fault);
        /* Whatever failed, the raw fallback must stay inside the input. */
        struct strbuf out = STRBUF_INIT;
        if (e->status >= 400 &&
            sip_build_error_from_raw(data, len, e->status, err.reason, &out) == 0)
            assert_memory_equal(out.p, "SIP/2.0 ", 8);
        strbuf_free(&out);
        free(data);
    }
    for (int k = 0; k < nexp; k++)
        if (!exp[k].seen)
            fail_msg("expected.txt names %s, which is not in the corpus", exp[k].name);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
    };
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    corpus_dir = argv[1];
    return cmocka_run_group_tests(tests, NULL, NULL);
}
