/*
 * libFuzzer target for store/sealed: sealed_open and sealed_read on
 * arbitrary file bytes, under a fixed master key and context (the seeds in
 * corpus/sealed/ are valid files sealed with them: empty, 1, 100, 1000 and
 * 65546 bytes, so mutations start from files whose header authenticates).
 * Nothing a file holds may crash, hang or read out of bounds, and a read
 * that fails authentication leaves the buffer zeroed.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/sealed.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CONTEXT "meeting-fuzz/content.bin"

static const unsigned char master_key[SEALED_MASTER_LEN] = "parley-fuzz-master-key-32-bytes";

static struct sealed_master *g_master;
static char g_path[64];

static void remove_file(void)
{
    unlink(g_path);
}

static void prepare(void)
{
    if (g_master)
        return;
    if (sealed_master_from_bytes(NULL, master_key, &g_master) != 0)
        abort();
    snprintf(g_path, sizeof(g_path), "/tmp/parley-fuzz-sealed-%ld", (long)getpid());
    atexit(remove_file);
}

static void read_range(struct sealed_file *f, uint64_t off, size_t len)
{
    char err[256];
    unsigned char *buf = malloc(len ? len : 1);
    if (!buf)
        return;
    memset(buf, 0xa5, len);
    if (sealed_read(f, off, buf, len, err, sizeof(err)) == -EBADMSG) {
        for (size_t i = 0; i < len; i++)
            if (buf[i])
                abort(); /* a segment that failed must hand out nothing */
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    struct sealed_file *f = NULL;

    prepare();
    FILE *fp = fopen(g_path, "wb");
    if (!fp)
        return 0;
    if (size && fwrite(data, 1, size, fp) != size) {
        fclose(fp);
        return 0;
    }
    fclose(fp);
    if (sealed_open(g_master, g_path, FUZZ_CONTEXT, &f, err, sizeof(err)) != 0)
        return 0;
    uint64_t n = sealed_size(f);
    /* The size check at open bounds n by the input's size. */
    if (n > size)
        abort();
    read_range(f, 0, (size_t)n);
    /* a few ranges picked by the input's last bytes, some past the end */
    for (size_t i = 0; i < 4 && size >= 8 * (i + 1); i++) {
        const uint8_t *q = data + size - 8 * (i + 1);
        uint64_t off = ((uint64_t)q[0] << 16 | (uint64_t)q[1] << 8 | q[2]) % (n + 2);
        size_t len = ((size_t)q[3] << 16 | (size_t)q[4] << 8 | q[5]) % (size_t)(n + 2);
        read_range(f, off, len);
    }
    sealed_close(f);
    return 0;
}
