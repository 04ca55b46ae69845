#include "store/sealed.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#include "core/secret_file.h"
#include "crypto/aead.h"

#define FILE_ID_LEN  16
#define OFF_VERSION  8
#define OFF_SEGSIZE  12
#define OFF_FILE_ID  16
#define OFF_LENGTH   32
#define OFF_NONCE    40
#define OFF_WRAPPED  52
#define OFF_TAG      84
#define SEG_AAD_LEN  (FILE_ID_LEN + 8 + 1)
#define SEG_DISK_LEN (SEALED_SEGMENT_SIZE + AEAD_TAG_LEN)

_Static_assert(OFF_TAG + AEAD_TAG_LEN == SEALED_HEADER_SIZE, "header layout");

struct sealed_master {
    unsigned char key[SEALED_MASTER_LEN];
    OSSL_LIB_CTX *libctx;
};

struct sealed_file {
    int fd;
    uint64_t size;
    uint64_t nseg;
    unsigned char id[FILE_ID_LEN];
    unsigned char key[AEAD_KEY_LEN];
    uint64_t cached; /* the segment in plain, or UINT64_MAX */
    /* sized to the file's largest segment: a 4 kB file costs 8 kB here,
     * not two 64 KiB buffers to allocate and wipe */
    size_t seg_cap;
    unsigned char *disk;  /* seg_cap + AEAD_TAG_LEN bytes */
    unsigned char *plain; /* seg_cap bytes */
    unsigned char buf[];
};

static void put_be32(unsigned char *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static void put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static uint32_t get_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static uint64_t segment_count(uint64_t len)
{
    return len == 0 ? 1 : (len + SEALED_SEGMENT_SIZE - 1) / SEALED_SEGMENT_SIZE;
}

/* Segment i's nonce: 4 zero bytes || i (see the header comment for why a
 * counter is safe here). */
static void segment_nonce(uint64_t i, unsigned char nonce[AEAD_NONCE_LEN])
{
    memset(nonce, 0, 4);
    put_be64(nonce + 4, i);
}

static void segment_aad(const unsigned char id[FILE_ID_LEN], uint64_t i, bool last,
                        unsigned char aad[SEG_AAD_LEN])
{
    memcpy(aad, id, FILE_ID_LEN);
    put_be64(aad + FILE_ID_LEN, i);
    aad[FILE_ID_LEN + 8] = last ? 1 : 0;
}

/* The wrapped key's AAD: the header up to the length, then the context. */
static size_t wrap_aad(const unsigned char *hdr, const char *context,
                       unsigned char out[OFF_NONCE + SEALED_CONTEXT_MAX])
{
    size_t n = strlen(context);
    memcpy(out, hdr, OFF_NONCE);
    memcpy(out + OFF_NONCE, context, n);
    return OFF_NONCE + n;
}

static bool context_ok(const char *context)
{
    return context && *context && strnlen(context, SEALED_CONTEXT_MAX + 1) <= SEALED_CONTEXT_MAX;
}

static int write_all(int fd, const void *p, size_t n)
{
    const unsigned char *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EIO;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_at(int fd, void *p, size_t n, uint64_t off)
{
    unsigned char *b = p;
    while (n) {
        ssize_t r = pread(fd, b, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return -EBADMSG; /* shorter than its header said: caught by the size check too */
        b += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

static void fsync_dir_of(const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
}

/* A private temporary file in path's directory: mode 0600 whatever the
 * umask. Its name has a fixed length, not path's name with a suffix, so
 * that any name up to NAME_MAX can be written (meeting content spells
 * names of up to 120 bytes in hex: 247 characters). */
static int temp_beside(const char *path, char tmp[PATH_MAX], char *err, size_t errlen)
{
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir) ||
        snprintf(tmp, PATH_MAX, "%s/tmp.sealed.XXXXXX", dirname(dir)) >= PATH_MAX) {
        snprintf(err, errlen, "%s: path too long", path);
        return -ENAMETOOLONG;
    }
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0 || fchmod(fd, 0600) != 0) {
        int e = errno;
        snprintf(err, errlen, "%s: cannot create a temporary file: %s", path, strerror(e));
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        return -e;
    }
    return fd;
}

/* --- the master key --------------------------------------------------------- */

int sealed_master_from_bytes(OSSL_LIB_CTX *libctx, const unsigned char key[SEALED_MASTER_LEN],
                             struct sealed_master **out)
{
    if (!key || !out)
        return -EINVAL;
    struct sealed_master *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    memcpy(m->key, key, SEALED_MASTER_LEN);
    m->libctx = libctx;
    *out = m;
    return 0;
}

void sealed_master_free(struct sealed_master *m)
{
    if (!m)
        return;
    OPENSSL_cleanse(m, sizeof(*m));
    free(m);
}

static int master_read(const char *path, unsigned char key[SEALED_MASTER_LEN], char *err,
                       size_t errlen)
{
    struct stat st;
    int fd = secret_file_open(path, 4096, &st, err, errlen); /* the size is checked below */
    if (fd < 0)
        return fd;
    int rc = 0;
    if (st.st_size != SEALED_MASTER_LEN) {
        rc = -EINVAL;
        snprintf(err, errlen, "%s: %lld bytes, not a %d-byte key", path, (long long)st.st_size,
                 SEALED_MASTER_LEN);
    } else if (read_at(fd, key, SEALED_MASTER_LEN, 0) != 0) {
        rc = -EIO;
        snprintf(err, errlen, "%s: cannot read", path);
        OPENSSL_cleanse(key, SEALED_MASTER_LEN);
    }
    close(fd);
    return rc;
}

/* Creates the key file. link(2) instead of rename: a key that another
 * process created meanwhile is kept (EEXIST), never replaced, or the files
 * sealed under it would be lost. */
static int master_create(OSSL_LIB_CTX *libctx, const char *path,
                         unsigned char key[SEALED_MASTER_LEN], char *err, size_t errlen)
{
    char tmp[PATH_MAX];
    int rc = aead_random(libctx, key, SEALED_MASTER_LEN);
    if (rc) {
        snprintf(err, errlen, "no randomness for a master key");
        return rc;
    }
    int fd = temp_beside(path, tmp, err, errlen);
    if (fd < 0)
        return fd;
    rc = write_all(fd, key, SEALED_MASTER_LEN);
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && link(tmp, path) != 0)
        rc = -errno;
    if (rc && rc != -EEXIST)
        snprintf(err, errlen, "%s: cannot write: %s", path, strerror(-rc));
    unlink(tmp);
    if (rc == 0)
        fsync_dir_of(path);
    return rc;
}

int sealed_master_open(OSSL_LIB_CTX *libctx, const char *path, struct sealed_master **out,
                       bool *created, char *err, size_t errlen)
{
    unsigned char key[SEALED_MASTER_LEN];
    bool made = false;

    if (!path || !out)
        return -EINVAL;
    int rc = master_read(path, key, err, errlen);
    if (rc == -ENOENT) {
        rc = master_create(libctx, path, key, err, errlen);
        made = rc == 0;
        if (rc == -EEXIST) /* lost a race: use the winner's key */
            rc = master_read(path, key, err, errlen);
    }
    if (rc == 0)
        rc = sealed_master_from_bytes(libctx, key, out);
    if (created)
        *created = made && rc == 0;
    OPENSSL_cleanse(key, sizeof(key));
    return rc;
}

/* --- writing ------------------------------------------------------------- */

static int write_segments(int fd, const unsigned char key[AEAD_KEY_LEN],
                          const unsigned char id[FILE_ID_LEN], const unsigned char *data,
                          uint64_t len, unsigned char *buf)
{
    uint64_t n = segment_count(len);
    for (uint64_t i = 0; i < n; i++) {
        unsigned char nonce[AEAD_NONCE_LEN], aad[SEG_AAD_LEN];
        size_t seglen = i + 1 < n ? SEALED_SEGMENT_SIZE : (size_t)(len - i * SEALED_SEGMENT_SIZE);
        segment_nonce(i, nonce);
        segment_aad(id, i, i + 1 == n, aad);
        int rc =
            aead_seal(key, nonce, aad, sizeof(aad), seglen ? data + i * SEALED_SEGMENT_SIZE : NULL,
                      seglen, buf, buf + seglen);
        if (rc == 0)
            rc = write_all(fd, buf, seglen + AEAD_TAG_LEN);
        if (rc)
            return rc;
    }
    return 0;
}

int sealed_write_file(const struct sealed_master *m, const char *path, const char *context,
                      const void *data, size_t len, char *err, size_t errlen)
{
    unsigned char hdr[SEALED_HEADER_SIZE], fkey[AEAD_KEY_LEN];
    unsigned char aad[OFF_NONCE + SEALED_CONTEXT_MAX];
    unsigned char *buf = NULL;
    char tmp[PATH_MAX];
    int fd = -1, rc;

    if (!m || !path || !context_ok(context) || (len && !data)) {
        snprintf(err, errlen, "invalid arguments to seal a file");
        return -EINVAL;
    }
    if ((uint64_t)len > SEALED_MAX_SIZE) {
        snprintf(err, errlen, "%s: larger than a sealed file may be", path);
        return -EFBIG;
    }
    memset(hdr, 0, sizeof(hdr));
    memcpy(hdr, SEALED_MAGIC, 8);
    put_be32(hdr + OFF_VERSION, SEALED_VERSION);
    put_be32(hdr + OFF_SEGSIZE, SEALED_SEGMENT_SIZE);
    put_be64(hdr + OFF_LENGTH, (uint64_t)len);
    rc = aead_random(m->libctx, fkey, sizeof(fkey));
    if (rc == 0 && RAND_bytes_ex(m->libctx, hdr + OFF_FILE_ID, FILE_ID_LEN, 0) != 1)
        rc = -EIO;
    if (rc == 0 && RAND_bytes_ex(m->libctx, hdr + OFF_NONCE, AEAD_NONCE_LEN, 0) != 1)
        rc = -EIO;
    if (rc) {
        ERR_clear_error();
        snprintf(err, errlen, "no randomness for a file key");
        goto out;
    }
    size_t aadlen = wrap_aad(hdr, context, aad);
    rc = aead_seal(m->key, hdr + OFF_NONCE, aad, aadlen, fkey, sizeof(fkey), hdr + OFF_WRAPPED,
                   hdr + OFF_TAG);
    if (rc) {
        snprintf(err, errlen, "cannot wrap the file key: %s", strerror(-rc));
        goto out;
    }
    buf = malloc(SEG_DISK_LEN);
    if (!buf) {
        rc = -ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    fd = temp_beside(path, tmp, err, errlen);
    if (fd < 0) {
        rc = fd;
        goto out;
    }
    rc = write_all(fd, hdr, sizeof(hdr));
    if (rc == 0)
        rc = write_segments(fd, fkey, hdr + OFF_FILE_ID, data, len, buf);
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc) {
        snprintf(err, errlen, "%s: cannot write: %s", path, strerror(-rc));
        unlink(tmp);
        goto out;
    }
    fsync_dir_of(path);
out:
    OPENSSL_cleanse(fkey, sizeof(fkey));
    free(buf); /* ciphertext only */
    return rc;
}

/* --- reading ------------------------------------------------------------- */

int sealed_open(const struct sealed_master *m, const char *path, const char *context,
                struct sealed_file **out, char *err, size_t errlen)
{
    unsigned char hdr[SEALED_HEADER_SIZE];
    unsigned char aad[OFF_NONCE + SEALED_CONTEXT_MAX];
    struct sealed_file *f = NULL;
    struct stat st;
    int rc;

    if (!m || !path || !context_ok(context) || !out) {
        snprintf(err, errlen, "invalid arguments to open a sealed file");
        return -EINVAL;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        return rc;
    }
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        goto out;
    }
    if (!S_ISREG(st.st_mode) || st.st_size < SEALED_HEADER_SIZE) {
        rc = -EBADMSG;
        snprintf(err, errlen, "%s: not a sealed file (too short)", path);
        goto out;
    }
    rc = read_at(fd, hdr, sizeof(hdr), 0);
    if (rc) {
        snprintf(err, errlen, "%s: cannot read its header", path);
        goto out;
    }
    rc = -EBADMSG;
    if (memcmp(hdr, SEALED_MAGIC, 8) != 0) {
        snprintf(err, errlen, "%s: not a sealed file (magic)", path);
        goto out;
    }
    if (get_be32(hdr + OFF_VERSION) != SEALED_VERSION ||
        get_be32(hdr + OFF_SEGSIZE) != SEALED_SEGMENT_SIZE) {
        snprintf(err, errlen, "%s: unknown version or segment size", path);
        goto out;
    }
    uint64_t len = get_be64(hdr + OFF_LENGTH);
    if (len > SEALED_MAX_SIZE) {
        snprintf(err, errlen, "%s: claims an impossible length", path);
        goto out;
    }
    uint64_t nseg = segment_count(len);
    if ((uint64_t)st.st_size != SEALED_HEADER_SIZE + len + nseg * AEAD_TAG_LEN) {
        snprintf(err, errlen, "%s: its size does not match the length it claims (truncated?)",
                 path);
        goto out;
    }
    size_t seg_cap = len < SEALED_SEGMENT_SIZE ? (size_t)(len ? len : 1) : SEALED_SEGMENT_SIZE;
    f = calloc(1, sizeof(*f) + 2 * seg_cap + AEAD_TAG_LEN);
    if (!f) {
        rc = -ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    f->seg_cap = seg_cap;
    f->plain = f->buf;
    f->disk = f->buf + seg_cap;
    size_t aadlen = wrap_aad(hdr, context, aad);
    if (aead_open(m->key, hdr + OFF_NONCE, aad, aadlen, hdr + OFF_WRAPPED, AEAD_KEY_LEN, f->key,
                  hdr + OFF_TAG) != 0) {
        snprintf(err, errlen,
                 "%s: its key does not authenticate (another context, another master key, or "
                 "an altered header)",
                 path);
        goto out;
    }
    f->fd = fd;
    f->size = len;
    f->nseg = nseg;
    f->cached = UINT64_MAX;
    memcpy(f->id, hdr + OFF_FILE_ID, FILE_ID_LEN);
    *out = f;
    return 0;
out:
    if (f) {
        OPENSSL_cleanse(f->key, sizeof(f->key));
        free(f);
    }
    close(fd);
    return rc;
}

uint64_t sealed_size(const struct sealed_file *f)
{
    return f ? f->size : 0;
}

/* Decrypts segment i into f->plain (unless it is there already). */
static int load_segment(struct sealed_file *f, uint64_t i, char *err, size_t errlen)
{
    unsigned char nonce[AEAD_NONCE_LEN], aad[SEG_AAD_LEN];

    if (f->cached == i)
        return 0;
    f->cached = UINT64_MAX;
    bool last = i + 1 == f->nseg;
    size_t seglen = last ? (size_t)(f->size - i * SEALED_SEGMENT_SIZE) : SEALED_SEGMENT_SIZE;
    uint64_t off = SEALED_HEADER_SIZE + i * (uint64_t)SEG_DISK_LEN;
    int rc = read_at(f->fd, f->disk, seglen + AEAD_TAG_LEN, off);
    if (rc) {
        snprintf(err, errlen, "segment %llu: cannot read: %s", (unsigned long long)i,
                 strerror(-rc));
        return rc;
    }
    segment_nonce(i, nonce);
    segment_aad(f->id, i, last, aad);
    rc = aead_open(f->key, nonce, aad, sizeof(aad), f->disk, seglen, f->plain, f->disk + seglen);
    if (rc) {
        snprintf(err, errlen, "segment %llu does not authenticate", (unsigned long long)i);
        return rc == -EBADMSG ? rc : -EIO;
    }
    f->cached = i;
    return 0;
}

int sealed_read(struct sealed_file *f, uint64_t offset, void *buf, size_t len, char *err,
                size_t errlen)
{
    unsigned char *out = buf;

    if (!f || (len && !buf)) {
        snprintf(err, errlen, "invalid arguments to read a sealed file");
        return -EINVAL;
    }
    if (offset > f->size || len > f->size - offset) {
        snprintf(err, errlen, "range beyond the file's %llu bytes", (unsigned long long)f->size);
        return -EINVAL;
    }
    uint64_t pos = offset, end = offset + len;
    while (pos < end) {
        uint64_t i = pos / SEALED_SEGMENT_SIZE;
        size_t in_seg = (size_t)(pos - i * SEALED_SEGMENT_SIZE);
        size_t n = SEALED_SEGMENT_SIZE - in_seg;
        if (n > end - pos)
            n = (size_t)(end - pos);
        int rc = load_segment(f, i, err, errlen);
        if (rc) {
            OPENSSL_cleanse(buf, len);
            return rc;
        }
        memcpy(out + (pos - offset), f->plain + in_seg, n);
        pos += n;
    }
    return 0;
}

void sealed_close(struct sealed_file *f)
{
    if (!f)
        return;
    close(f->fd);
    OPENSSL_cleanse(f->key, sizeof(f->key));
    OPENSSL_cleanse(f->plain, f->seg_cap);
    free(f);
}
