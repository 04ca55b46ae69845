/*
 * store/sealed: round trips of every size around the segment boundaries,
 * range reads, and every way a file on disk may be altered: a flipped
 * byte, truncation, segments swapped between files or within one, a file
 * under another context, a changed length, a readable master key. And
 * that no plaintext shows through.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "crypto/aead.h"
#include "store/sealed.h"

#define SEG SEALED_SEGMENT_SIZE
#define TAG 16
#define HDR SEALED_HEADER_SIZE
#define CTX "meeting-1234/notes.txt"

struct fx {
    char dir[64];
    char master_path[128];
    struct sealed_master *m;
};

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    char err[256];
    bool created = false;
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/parley-sealed-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->master_path, sizeof(fx->master_path), "%s/content.key", fx->dir);
    assert_int_equal(sealed_master_open(NULL, fx->master_path, &fx->m, &created, err, sizeof(err)),
                     0);
    assert_true(created);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    sealed_master_free(fx->m);
    nftw(fx->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

static char *path_in(struct fx *fx, const char *name)
{
    static char p[4][160];
    static int i;
    i = (i + 1) % 4;
    snprintf(p[i], sizeof(p[i]), "%s/%s", fx->dir, name);
    return p[i];
}

static unsigned char *pattern(size_t n, unsigned seed)
{
    unsigned char *b = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)((i * 131 + seed * 7 + (i >> 16)) & 0xff);
    return b;
}

static unsigned char *slurp(const char *path, size_t *len)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    unsigned char *b = malloc((size_t)st.st_size + 1);
    int fd = open(path, O_RDONLY);
    assert_int_equal(read(fd, b, (size_t)st.st_size), st.st_size);
    close(fd);
    *len = (size_t)st.st_size;
    return b;
}

static void spit(const char *path, const unsigned char *b, size_t len)
{
    int fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, b, len), (ssize_t)len);
    close(fd);
}

static int open_rc(struct fx *fx, const char *path, const char *ctx)
{
    struct sealed_file *f = NULL;
    char err[256];
    int rc = sealed_open(fx->m, path, ctx, &f, err, sizeof(err));
    sealed_close(f);
    return rc;
}

/* Opens and reads everything; the result of the read (or of the open). */
static int read_all_rc(struct fx *fx, const char *path, const char *ctx)
{
    struct sealed_file *f = NULL;
    char err[256];
    int rc = sealed_open(fx->m, path, ctx, &f, err, sizeof(err));
    if (rc)
        return rc;
    size_t n = (size_t)sealed_size(f);
    unsigned char *b = malloc(n ? n : 1);
    rc = sealed_read(f, 0, b, n, err, sizeof(err));
    if (rc) {
        for (size_t i = 0; i < n; i++)
            assert_int_equal(b[i], 0); /* nothing unauthenticated handed out */
    }
    free(b);
    sealed_close(f);
    return rc;
}

static void test_round_trip_sizes(void **state)
{
    struct fx *fx = *state;
    static const size_t sizes[] = {0, 1, 65535, 65536, 65537, 3 * 65536 + 5};
    char err[256];

    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        size_t n = sizes[s];
        unsigned char *data = pattern(n, (unsigned)s);
        const char *p = path_in(fx, "rt");
        assert_int_equal(sealed_write_file(fx->m, p, CTX, data, n, err, sizeof(err)), 0);
        struct stat st;
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        size_t nseg = n == 0 ? 1 : (n + SEG - 1) / SEG;
        assert_int_equal((size_t)st.st_size, HDR + n + nseg * TAG);

        struct sealed_file *f = NULL;
        assert_int_equal(sealed_open(fx->m, p, CTX, &f, err, sizeof(err)), 0);
        assert_int_equal(sealed_size(f), n);
        unsigned char *back = malloc(n + 1);
        assert_int_equal(sealed_read(f, 0, back, n, err, sizeof(err)), 0);
        assert_memory_equal(back, data, n);
        /* beyond the end */
        assert_int_equal(sealed_read(f, 0, back, n + 1, err, sizeof(err)), -EINVAL);
        assert_int_equal(sealed_read(f, n + 1, back, 0, err, sizeof(err)), -EINVAL);
        assert_int_equal(sealed_read(f, UINT64_MAX, back, 2, err, sizeof(err)), -EINVAL);
        assert_int_equal(sealed_read(f, n, back, 0, err, sizeof(err)), 0);
        sealed_close(f);
        free(back);
        free(data);
    }
}

/* A name as long as the file system allows is written: the temporary
 * file beside it does not need a longer one. */
static void test_long_name(void **state)
{
    struct fx *fx = *state;
    char name[NAME_MAX + 1], path[sizeof(fx->dir) + NAME_MAX + 2], err[256];
    memset(name, 'n', NAME_MAX);
    name[NAME_MAX] = '\0';
    snprintf(path, sizeof(path), "%s/%s", fx->dir, name);
    assert_int_equal(sealed_write_file(fx->m, path, CTX, "abc", 3, err, sizeof(err)), 0);
    assert_int_equal(read_all_rc(fx, path, CTX), 0);
    /* and its temporary file is gone */
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "ls -A %s | grep -q tmp", fx->dir);
    assert_int_not_equal(system(cmd), 0);
}

static void test_range_reads(void **state)
{
    struct fx *fx = *state;
    size_t n = 3 * SEG + 5;
    unsigned char *data = pattern(n, 9), *buf = malloc(n);
    char err[256];
    struct sealed_file *f = NULL;
    const char *p = path_in(fx, "ranges");

    assert_int_equal(sealed_write_file(fx->m, p, CTX, data, n, err, sizeof(err)), 0);
    assert_int_equal(sealed_open(fx->m, p, CTX, &f, err, sizeof(err)), 0);
    static const struct {
        uint64_t off;
        size_t len;
    } r[] = {
        {0, 1},       {SEG - 1, 2},     {SEG - 10, SEG + 20}, {2 * SEG, SEG},
        {3 * SEG, 5}, {3 * SEG + 4, 1}, {100, 3 * SEG - 100}, {SEG, 0},
        {5, 3 * SEG}, {2 * SEG - 1, 7}, {0, 3 * SEG + 5},
    };
    for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
        memset(buf, 0, n);
        assert_int_equal(sealed_read(f, r[i].off, buf, r[i].len, err, sizeof(err)), 0);
        assert_memory_equal(buf, data + r[i].off, r[i].len);
    }
    /* small sequential pieces (the segment cache) */
    for (size_t off = 0; off < n; off += 4000) {
        size_t len = n - off < 4000 ? n - off : 4000;
        assert_int_equal(sealed_read(f, off, buf, len, err, sizeof(err)), 0);
        assert_memory_equal(buf, data + off, len);
    }
    sealed_close(f);
    free(data);
    free(buf);
}

/* Only the touched segment is authenticated: a range in an intact segment
 * still reads when another segment is damaged, and one touching the damage
 * fails with the buffer zeroed. */
static void test_flipped_byte_each_segment(void **state)
{
    struct fx *fx = *state;
    size_t n = 3 * SEG + 5, flen;
    unsigned char *data = pattern(n, 3), buf[64];
    char err[256];
    const char *p = path_in(fx, "flip");

    assert_int_equal(sealed_write_file(fx->m, p, CTX, data, n, err, sizeof(err)), 0);
    unsigned char *orig = slurp(p, &flen);
    for (size_t seg = 0; seg < 4; seg++) {
        size_t seg_off = HDR + seg * (SEG + TAG);
        size_t seg_len = seg < 3 ? SEG : 5;
        /* a ciphertext byte, then a tag byte */
        size_t where[2] = {seg_off + seg_len / 2, seg_off + seg_len + 3};
        for (int w = 0; w < 2; w++) {
            unsigned char *b = malloc(flen);
            memcpy(b, orig, flen);
            b[where[w]] ^= 0x01;
            spit(p, b, flen);
            free(b);
            struct sealed_file *f = NULL;
            assert_int_equal(sealed_open(fx->m, p, CTX, &f, err, sizeof(err)), 0);
            memset(buf, 0xaa, sizeof(buf));
            uint64_t in_seg = seg * (uint64_t)SEG + (seg_len > 8 ? 8 : 0);
            assert_int_equal(sealed_read(f, in_seg, buf, 4, err, sizeof(err)), -EBADMSG);
            for (int i = 0; i < 4; i++)
                assert_int_equal(buf[i], 0);
            assert_non_null(strstr(err, "authenticate"));
            uint64_t other = seg == 0 ? SEG : 0;
            assert_int_equal(sealed_read(f, other, buf, 4, err, sizeof(err)), 0);
            assert_memory_equal(buf, data + other, 4);
            sealed_close(f);
        }
    }
    /* a flipped header byte: every field is checked or authenticated */
    for (size_t i = 0; i < HDR; i += 3) {
        unsigned char *b = malloc(flen);
        memcpy(b, orig, flen);
        b[i] ^= 0x10;
        spit(p, b, flen);
        free(b);
        assert_int_equal(open_rc(fx, p, CTX), -EBADMSG);
    }
    free(orig);
    free(data);
}

static void test_truncation_refused(void **state)
{
    struct fx *fx = *state;
    size_t n = 3 * SEG + 5, flen;
    unsigned char *data = pattern(n, 4);
    char err[256];
    const char *p = path_in(fx, "trunc");

    assert_int_equal(sealed_write_file(fx->m, p, CTX, data, n, err, sizeof(err)), 0);
    unsigned char *orig = slurp(p, &flen);
    /* at each segment boundary: the segment before would end the file but
     * its last flag is 0, and the header's length no longer matches */
    for (size_t seg = 1; seg <= 3; seg++) {
        assert_int_equal(truncate(p, (off_t)(HDR + seg * (SEG + TAG))), 0);
        assert_int_equal(open_rc(fx, p, CTX), -EBADMSG);
        spit(p, orig, flen);
    }
    /* by one byte, to the header only, to nothing; one byte appended */
    assert_int_equal(truncate(p, (off_t)flen - 1), 0);
    assert_int_equal(open_rc(fx, p, CTX), -EBADMSG);
    assert_int_equal(truncate(p, HDR), 0);
    assert_int_equal(open_rc(fx, p, CTX), -EBADMSG);
    assert_int_equal(truncate(p, 0), 0);
    assert_int_equal(open_rc(fx, p, CTX), -EBADMSG);
    spit(p, orig, flen);
    int fd = open(p, O_WRONLY | O_APPEND);
    assert_int_equal(write(fd, "x", 1), 1);
    close(fd);
    assert_int_equal(open_rc(fx, p, CTX), -EBADMSG);
    /* intact again */
    spit(p, orig, flen);
    assert_int_equal(read_all_rc(fx, p, CTX), 0);
    free(orig);
    free(data);
}

/* A forger who could rewrite the header (here: the test, holding the
 * master key) to claim a length that ends at a segment boundary still
 * fails: the segment that would now be last was sealed with last = 0. */
static void test_last_flag(void **state)
{
    struct fx *fx = *state;
    unsigned char mk[32], fkey[32], aad[40 + sizeof(CTX)];
    size_t flen;
    char err[256];
    struct sealed_master *m = NULL;
    struct sealed_file *f = NULL;
    const char *p = path_in(fx, "last");
    unsigned char *data = pattern(2 * SEG, 2), buf[16];

    memset(mk, 0x42, sizeof(mk));
    assert_int_equal(sealed_master_from_bytes(NULL, mk, &m), 0);
    assert_int_equal(sealed_write_file(m, p, CTX, data, 2 * SEG, err, sizeof(err)), 0);
    unsigned char *b = slurp(p, &flen);
    memcpy(aad, b, 40);
    memcpy(aad + 40, CTX, strlen(CTX));
    assert_int_equal(aead_open(mk, b + 40, aad, 40 + strlen(CTX), b + 52, 32, fkey, b + 84), 0);
    b[32 + 5] = 0x01; /* length 65536 (was 131072) */
    b[32 + 5 - 1] = 0x00;
    memcpy(aad, b, 40);
    assert_int_equal(aead_seal(mk, b + 40, aad, 40 + strlen(CTX), fkey, 32, b + 52, b + 84), 0);
    spit(p, b, HDR + SEG + TAG);
    assert_int_equal(truncate(p, HDR + SEG + TAG), 0);
    assert_int_equal(sealed_open(m, p, CTX, &f, err, sizeof(err)), 0);
    assert_int_equal(sealed_size(f), SEG);
    assert_int_equal(sealed_read(f, 0, buf, sizeof(buf), err, sizeof(err)), -EBADMSG);
    sealed_close(f);
    sealed_master_free(m);
    free(b);
    free(data);
}

static void test_segments_swapped(void **state)
{
    struct fx *fx = *state;
    size_t n = 2 * SEG + 100, alen, blen;
    unsigned char *da = pattern(n, 5), *db = pattern(n, 6);
    char err[256];
    const char *pa = path_in(fx, "a"), *pb = path_in(fx, "b");

    assert_int_equal(sealed_write_file(fx->m, pa, CTX, da, n, err, sizeof(err)), 0);
    assert_int_equal(sealed_write_file(fx->m, pb, CTX, db, n, err, sizeof(err)), 0);
    unsigned char *a = slurp(pa, &alen), *b = slurp(pb, &blen);
    assert_int_equal(alen, blen);

    /* segment 1 of b put into a */
    unsigned char *x = malloc(alen);
    memcpy(x, a, alen);
    memcpy(x + HDR + (SEG + TAG), b + HDR + (SEG + TAG), SEG + TAG);
    spit(pa, x, alen);
    assert_int_equal(read_all_rc(fx, pa, CTX), -EBADMSG);

    /* segments 0 and 1 of a exchanged */
    memcpy(x, a, alen);
    memcpy(x + HDR, a + HDR + (SEG + TAG), SEG + TAG);
    memcpy(x + HDR + (SEG + TAG), a + HDR, SEG + TAG);
    spit(pa, x, alen);
    assert_int_equal(read_all_rc(fx, pa, CTX), -EBADMSG);

    /* b's header on a's segments */
    memcpy(x, a, alen);
    memcpy(x, b, HDR);
    spit(pa, x, alen);
    assert_int_equal(read_all_rc(fx, pa, CTX), -EBADMSG);

    /* whole files swapped keep working: the context is the same here */
    spit(pa, a, alen);
    assert_int_equal(read_all_rc(fx, pa, CTX), 0);
    free(x);
    free(a);
    free(b);
    free(da);
    free(db);
}

static void test_other_context_refused(void **state)
{
    struct fx *fx = *state;
    char err[256];
    const char *p = path_in(fx, "ctx"), *q = path_in(fx, "moved");
    unsigned char *data = pattern(1000, 7);

    assert_int_equal(sealed_write_file(fx->m, p, "meeting-1/a.txt", data, 1000, err, sizeof(err)),
                     0);
    assert_int_equal(rename(p, q), 0);
    assert_int_equal(open_rc(fx, q, "meeting-1/b.txt"), -EBADMSG);
    assert_int_equal(open_rc(fx, q, "meeting-2/a.txt"), -EBADMSG);
    assert_int_equal(open_rc(fx, q, "meeting-1/a.tx"), -EBADMSG);
    assert_int_equal(open_rc(fx, q, "meeting-1/a.txt"), 0);

    /* another master key */
    unsigned char other[32] = {1};
    struct sealed_master *m2 = NULL;
    struct sealed_file *f = NULL;
    assert_int_equal(sealed_master_from_bytes(NULL, other, &m2), 0);
    assert_int_equal(sealed_open(m2, q, "meeting-1/a.txt", &f, err, sizeof(err)), -EBADMSG);
    sealed_master_free(m2);
    assert_int_equal(open_rc(fx, path_in(fx, "absent"), CTX), -ENOENT);
    assert_int_equal(sealed_write_file(fx->m, p, "", data, 10, err, sizeof(err)), -EINVAL);
    free(data);
}

static void test_length_changed_refused(void **state)
{
    struct fx *fx = *state;
    size_t flen;
    char err[256];
    const char *p = path_in(fx, "len");
    unsigned char *data = pattern(2 * SEG, 8);

    assert_int_equal(sealed_write_file(fx->m, p, CTX, data, 2 * SEG, err, sizeof(err)), 0);
    unsigned char *b = slurp(p, &flen);
    /* a shorter length, with the file cut to match it exactly */
    b[32 + 7] = 0x00;
    b[32 + 6] = 0x00;
    b[32 + 5] = 0x01; /* 65536: one segment */
    spit(p, b, flen);
    assert_int_equal(truncate(p, HDR + SEG + TAG), 0);
    assert_int_equal(open_rc(fx, p, CTX), -EBADMSG);
    /* an impossible length */
    memset(b + 32, 0xff, 8);
    spit(p, b, flen);
    assert_int_equal(open_rc(fx, p, CTX), -EBADMSG);
    free(b);
    free(data);
}

static void test_master_key_file(void **state)
{
    struct fx *fx = *state;
    char err[256];
    bool created = true;
    struct sealed_master *m = NULL;

    /* reopened, not recreated: files sealed before still open */
    const char *p = path_in(fx, "mk");
    unsigned char *data = pattern(10, 1);
    assert_int_equal(sealed_write_file(fx->m, p, CTX, data, 10, err, sizeof(err)), 0);
    assert_int_equal(sealed_master_open(NULL, fx->master_path, &m, &created, err, sizeof(err)), 0);
    assert_false(created);
    struct sealed_file *f = NULL;
    assert_int_equal(sealed_open(m, p, CTX, &f, err, sizeof(err)), 0);
    sealed_close(f);
    sealed_master_free(m);
    m = NULL;

    struct stat st;
    assert_int_equal(stat(fx->master_path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, 32);

    /* readable by others: refused */
    assert_int_equal(chmod(fx->master_path, 0644), 0);
    assert_int_equal(sealed_master_open(NULL, fx->master_path, &m, &created, err, sizeof(err)),
                     -EPERM);
    assert_non_null(strstr(err, "chmod 600"));
    assert_int_equal(chmod(fx->master_path, 0640), 0);
    assert_int_equal(sealed_master_open(NULL, fx->master_path, &m, &created, err, sizeof(err)),
                     -EPERM);
    assert_int_equal(chmod(fx->master_path, 0600), 0);
    /* the wrong size */
    assert_int_equal(truncate(fx->master_path, 31), 0);
    assert_int_equal(sealed_master_open(NULL, fx->master_path, &m, &created, err, sizeof(err)),
                     -EINVAL);
    assert_null(m);
    /* no temporary file left behind by any of this */
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "ls %s | grep -q tmp", fx->dir);
    assert_int_not_equal(system(cmd), 0);
    free(data);
}

/* The test from the issue: a recognisable 64-byte marker repeated; no
 * 16-byte window of it appears anywhere in the sealed file. */
static void test_no_plaintext_on_disk(void **state)
{
    struct fx *fx = *state;
    static const char marker[65] =
        "PARLEY-MARKER-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJK!";
    size_t n = 5 * SEG + 320, flen;
    unsigned char *data = malloc(n);
    char err[256];
    const char *p = path_in(fx, "marker");

    for (size_t i = 0; i < n; i++)
        data[i] = (unsigned char)marker[i % 64];
    assert_int_equal(sealed_write_file(fx->m, p, CTX, data, n, err, sizeof(err)), 0);
    unsigned char *b = slurp(p, &flen);
    for (size_t w = 0; w + 16 <= 64; w++)
        assert_null(memmem(b, flen, marker + w, 16));
    /* and the context is not written out either */
    assert_null(memmem(b, flen, CTX, strlen(CTX)));
    free(b);
    free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flipped_byte_each_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncation_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_last_flag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segments_swapped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_context_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_length_changed_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_master_key_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_plaintext_on_disk, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
