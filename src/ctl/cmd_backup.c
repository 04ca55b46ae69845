/*
 * parleyctl backup FILE | restore FILE --dir DIR: one deployment in one
 * archive, taken while parleyd runs, put down again in a new directory.
 *
 * A deployment is its state directory (the configuration file's
 * directory): parley.conf, the PKI, the store, relay.secrets,
 * https-ticket.keys, content.key and the sealed meeting files under
 * content/. The backup takes the store through SQLite's online backup (a
 * snapshot of one moment, store_snapshot) and every other regular file
 * and directory as it finds them, except what belongs to one running
 * process or is half-written: parleyd.lock, parleyd.sock, the store's
 * -wal/-shm/-journal (the snapshot replaces them) and the temporary files
 * of atomic replacements (".tmp" in the name, "tmp.sealed.*"). Symbolic
 * links and other special files are not followed; they are reported.
 *
 * The archive is a POSIX ustar file (pax headers for long names: the
 * sealed files' names are long) written here, with a last member
 * parley-backup.manifest: JSON listing every member with its mode, size
 * and SHA-256. It is created 0600 under a temporary name (O_EXCL), synced
 * and renamed into place without replacing anything.
 *
 * A restore refuses a directory that is not empty or not its user's,
 * writes every member with O_EXCL (no link followed, no path outside DIR),
 * hashes as it writes, and compares everything with the manifest at the
 * end: on any difference it removes what it wrote and says which member
 * differed. The manifest travels in the archive: it detects damage, not a
 * forger, who rewrites it to match (docs/BACKUP.md says so).
 * Only then are the recorded modes applied (0600 files, 0700 directories
 * stay so); nothing is rewritten, so relative paths in parley.conf point
 * into DIR.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/strbuf.h"
#include "crypto/fips.h"
#include "ctl/ctl.h"
#include "server/control.h"
#include "store/store.h"

#define BACKUP_MANIFEST     "parley-backup.manifest"
#define BACKUP_FORMAT       "parley-backup 1"
#define BACKUP_STORE        "parley.db"
#define BACKUP_SELF         "the archive being written"
#define BACKUP_FILE_MAX     (1LL << 32) /* a member larger than this is refused */
#define BACKUP_MANIFEST_MAX (16 << 20)
#define BACKUP_DEPTH_MAX    8
#define BACKUP_RETRIES      3 /* a file that changes while read is read again */
#define TAR_BLOCK           512

/* --- SHA-256 --- */

struct sha {
    EVP_MD_CTX *ctx;
};

/* On Parley's library context (crypto/fips): SHA-256 is approved in
 * every mode. */
static const struct fips_ctx *sha_fips;

static int sha_start(struct sha *h)
{
    EVP_MD *md = EVP_MD_fetch(fips_libctx(sha_fips), "SHA2-256", fips_propq(sha_fips));
    h->ctx = EVP_MD_CTX_new();
    int ok = md && h->ctx && EVP_DigestInit_ex2(h->ctx, md, NULL);
    EVP_MD_free(md);
    return ok ? 0 : -EIO;
}

static void sha_update(struct sha *h, const void *p, size_t n)
{
    EVP_DigestUpdate(h->ctx, p, n);
}

static int sha_finish(struct sha *h, char hex[65])
{
    unsigned char d[32];
    unsigned int n = 0;
    int ok = EVP_DigestFinal_ex(h->ctx, d, &n) && n == sizeof(d);
    EVP_MD_CTX_free(h->ctx);
    h->ctx = NULL;
    for (unsigned i = 0; i < sizeof(d); i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    return ok ? 0 : -EIO;
}

/* A name for messages and the manifest: control characters (C0, DEL and
 * C1 in UTF-8) as \xNN, so that a name cannot drive the terminal; with
 * ascii, every byte outside printable ASCII (a name that is not UTF-8
 * cannot go in JSON as it is). */
static const char *printable(const char *s, char *out, size_t cap, bool ascii)
{
    size_t o = 0; /* room is kept for the longest step, "\xc2\x9b", and the NUL */
    for (const unsigned char *c = (const unsigned char *)(s ? s : "?"); *c && o + 9 < cap; c++) {
        bool c1 = c[0] == 0xc2 && c[1] >= 0x80 && c[1] <= 0x9f;
        if (*c < 0x20 || *c == 0x7f || (ascii && *c > 0x7f)) {
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", *c);
        } else if (c1) {
            o += (size_t)snprintf(out + o, cap - o, "\\xc2\\x%02x", c[1]);
            c++;
        } else {
            out[o++] = (char)*c;
        }
    }
    out[o] = '\0';
    return out;
}

/* --- writing the archive --- */

struct tar_out {
    int fd;
    int err; /* sticky: the first write error */
};

static void tar_write(struct tar_out *t, const void *p, size_t n)
{
    const char *c = p;
    while (t->err == 0 && n > 0) {
        ssize_t w = write(t->fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            t->err = w < 0 ? -errno : -EIO;
            return;
        }
        c += w;
        n -= (size_t)w;
    }
}

static void tar_pad(struct tar_out *t, uint64_t size)
{
    static const char zero[TAR_BLOCK];
    if (size % TAR_BLOCK)
        tar_write(t, zero, TAR_BLOCK - size % TAR_BLOCK);
}

static void tar_octal(char *field, size_t len, uint64_t v)
{
    snprintf(field, len, "%0*llo", (int)len - 1, (unsigned long long)v);
}

static void tar_header(struct tar_out *t, const char *name, char type, unsigned mode, uint64_t size,
                       int64_t mtime)
{
    char h[TAR_BLOCK] = {0};
    snprintf(h, 100, "%s", name); /* long names also go in a pax header */
    tar_octal(h + 100, 8, mode & 07777);
    tar_octal(h + 108, 8, 0);
    tar_octal(h + 116, 8, 0);
    tar_octal(h + 124, 12, size);
    tar_octal(h + 136, 12, mtime > 0 ? (uint64_t)mtime : 0);
    memset(h + 148, ' ', 8);
    h[156] = type;
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    unsigned sum = 0;
    for (size_t i = 0; i < sizeof(h); i++)
        sum += (unsigned char)h[i];
    snprintf(h + 148, 8, "%06o", sum);
    h[155] = ' ';
    tar_write(t, h, sizeof(h));
}

/* A member's header, preceded by a pax header with its whole path when
 * the path does not fit ustar's 100 bytes. */
static void tar_member(struct tar_out *t, const char *path, char type, unsigned mode, uint64_t size,
                       int64_t mtime)
{
    size_t n = strlen(path);
    if (n >= 100) {
        /* "LEN path=PATH\n", LEN counting itself */
        char rec[4200];
        size_t body = n + strlen(" path=\n"), len = body + 1;
        while ((size_t)snprintf(NULL, 0, "%zu", len) + body != len)
            len++;
        snprintf(rec, sizeof(rec), "%zu path=%s\n", len, path);
        tar_header(t, "PaxHeader", 'x', 0600, len, mtime);
        tar_write(t, rec, len);
        tar_pad(t, len);
    }
    tar_header(t, path, type, mode, size, mtime);
}

struct backup {
    struct ctl *ctl;
    struct tar_out out;
    json_t *files;     /* the manifest's entries */
    json_t *skipped;   /* what was not taken, and why */
    dev_t skip_dev;    /* the archive's temporary files, when they are */
    ino_t skip_ino[2]; /* inside the state directory */
    char err[1024];
};

static int backup_add_data(struct backup *b, const char *path, unsigned mode, const char *data,
                           size_t len, int64_t mtime)
{
    struct sha h;
    char hex[65];
    if (sha_start(&h) != 0)
        return -EIO;
    sha_update(&h, data, len);
    if (sha_finish(&h, hex) != 0)
        return -EIO;
    char m[8];
    snprintf(m, sizeof(m), "%04o", mode & 0777);
    tar_member(&b->out, path, '0', mode, len, mtime);
    tar_write(&b->out, data, len);
    tar_pad(&b->out, len);
    json_array_append_new(b->files,
                          json_pack("{s:s, s:s, s:s, s:I, s:s}", "path", path, "type", "file",
                                    "mode", m, "size", (json_int_t)len, "sha256", hex));
    return b->out.err;
}

/* Reads a whole file, the same bytes as fstat said before and after:
 * a file replaced or written meanwhile is read again. */
static int backup_read_file(int dirfd, const char *name, char **data, size_t *len, struct stat *sb,
                            char *err, size_t errlen)
{
    for (int attempt = 0; attempt < BACKUP_RETRIES; attempt++) {
        /* O_NONBLOCK: a FIFO put there after the walk's lstat does not
         * block the open (fstat refuses it next) */
        int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) {
            snprintf(err, errlen, "%s: %s", name, strerror(errno));
            return -errno;
        }
        struct stat after;
        if (fstat(fd, sb) != 0 || !S_ISREG(sb->st_mode) || sb->st_size > BACKUP_FILE_MAX) {
            snprintf(err, errlen, "%s: not a regular file of a size we take", name);
            close(fd);
            return -EINVAL;
        }
        size_t want = (size_t)sb->st_size, got = 0;
        char *buf = malloc(want ? want : 1);
        if (!buf) {
            close(fd);
            return -ENOMEM;
        }
        while (got < want) {
            ssize_t r = read(fd, buf + got, want - got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        char extra;
        bool same = got == want && read(fd, &extra, 1) == 0 && fstat(fd, &after) == 0 &&
                    after.st_size == sb->st_size && after.st_mtim.tv_sec == sb->st_mtim.tv_sec &&
                    after.st_mtim.tv_nsec == sb->st_mtim.tv_nsec;
        close(fd);
        if (same) {
            *data = buf;
            *len = want;
            return 0;
        }
        free(buf);
    }
    snprintf(err, errlen, "%s: changed each time it was read", name);
    return -EAGAIN;
}

/* What the walk leaves out: one process's files, the store (taken by
 * snapshot), temporary files of atomic replacements. */
static const char *backup_excluded(const char *rel, const char *name)
{
    static const char *const exact[] = {
        "parleyd.lock",      CONTROL_SOCKET_NAME,     BACKUP_STORE,    BACKUP_STORE "-wal",
        BACKUP_STORE "-shm", BACKUP_STORE "-journal", BACKUP_MANIFEST,
    };
    if (!strchr(rel, '/'))
        for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
            if (strcmp(name, exact[i]) == 0)
                return i < 2 ? "belongs to the running parleyd"
                             : (i < 6 ? "the store is taken by snapshot" : "reserved name");
    if (strstr(name, ".tmp") || strncmp(name, "tmp.sealed.", 11) == 0)
        return "a temporary file of a replacement in progress";
    return NULL;
}

/* An archive of ours left in the state directory (its first member is
 * always the store) would go into every later backup, each holding the
 * one before. */
static bool backup_is_archive(int dirfd, const char *name)
{
    char h[TAR_BLOCK];
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool ours = pread(fd, h, sizeof(h), 0) == (ssize_t)sizeof(h) &&
                memcmp(h, BACKUP_STORE, sizeof(BACKUP_STORE)) == 0 &&
                memcmp(h + 257, "ustar", 5) == 0;
    close(fd);
    return ours;
}

static int strcmp_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int backup_walk(struct backup *b, int dirfd, const char *prefix, int depth)
{
    DIR *d = fdopendir(dirfd);
    if (!d) {
        close(dirfd);
        return -errno;
    }
    /* sorted, so two backups of the same state list the same */
    struct strbuf names = STRBUF_INIT;
    size_t count = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        strbuf_append(&names, e->d_name, strlen(e->d_name) + 1);
        count++;
    }
    const char **v = calloc(count ? count : 1, sizeof(*v));
    int rc = v && names.err == 0 ? 0 : -ENOMEM;
    const char *p = names.p;
    for (size_t i = 0; rc == 0 && i < count; i++, p += strlen(p) + 1)
        v[i] = p;
    if (rc == 0)
        qsort(v, count, sizeof(*v), strcmp_ptr);
    for (size_t i = 0; rc == 0 && i < count; i++) {
        char rel[4096];
        if (snprintf(rel, sizeof(rel), "%s%s", prefix, v[i]) >= (int)sizeof(rel)) {
            rc = -ENAMETOOLONG;
            break;
        }
        struct stat sb;
        const char *why = NULL;
        char shown[4096 * 4 + 1];
        json_t *name = json_string(rel);
        bool plain = name && strcmp(printable(rel, shown, sizeof(shown), false), rel) == 0;
        json_decref(name);
        if (!plain) {
            /* the manifest (JSON) cannot hold it, or restore refuses it */
            json_array_append_new(
                b->skipped,
                json_pack("{s:s, s:s}", "path", printable(rel, shown, sizeof(shown), true), "why",
                          "a name that is not UTF-8 or has control characters (rename it)"));
            continue;
        }
        if (fstatat(dirfd, v[i], &sb, AT_SYMLINK_NOFOLLOW) != 0)
            why = "vanished while read";
        else if (sb.st_dev == b->skip_dev &&
                 (sb.st_ino == b->skip_ino[0] || sb.st_ino == b->skip_ino[1]))
            why = BACKUP_SELF;
        else
            why = backup_excluded(rel, v[i]);
        if (!why && !S_ISREG(sb.st_mode) && !S_ISDIR(sb.st_mode))
            why = S_ISLNK(sb.st_mode) ? "a symbolic link (not followed)" : "not a regular file";
        if (!why && S_ISDIR(sb.st_mode) && depth >= BACKUP_DEPTH_MAX)
            why = "nested too deep";
        if (!why && S_ISREG(sb.st_mode) && backup_is_archive(dirfd, v[i]))
            why = "a Parley backup (keep backups outside the state directory)";
        if (why) {
            json_array_append_new(b->skipped, json_pack("{s:s, s:s}", "path", rel, "why", why));
            continue;
        }
        if (S_ISDIR(sb.st_mode)) {
            char m[8], sub[4096];
            snprintf(m, sizeof(m), "%04o", (unsigned)(sb.st_mode & 0777));
            snprintf(sub, sizeof(sub), "%s/", rel);
            tar_member(&b->out, sub, '5', sb.st_mode, 0, sb.st_mtim.tv_sec);
            json_array_append_new(
                b->files, json_pack("{s:s, s:s, s:s}", "path", rel, "type", "dir", "mode", m));
            int fd = openat(dirfd, v[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            rc = fd < 0 ? -errno : backup_walk(b, fd, sub, depth + 1);
            if (rc && !b->err[0])
                snprintf(b->err, sizeof(b->err), "%s: %s", rel, strerror(-rc));
            continue;
        }
        char *data = NULL;
        size_t len = 0;
        rc = backup_read_file(dirfd, v[i], &data, &len, &sb, b->err, sizeof(b->err));
        if (rc == 0) {
            rc = backup_add_data(b, rel, sb.st_mode, data, len, sb.st_mtim.tv_sec);
            OPENSSL_cleanse(data, len);
        }
        free(data);
    }
    free(v);
    strbuf_free(&names);
    closedir(d);
    return rc;
}

static bool backup_inside(const char *dir, const char *path)
{
    size_t n = strlen(dir);
    return strncmp(path, dir, n) == 0 && path[n] == '/';
}

/* Files the configuration names outside the state directory are not in
 * the archive: said in the manifest and on the terminal. */
static json_t *backup_outside(const struct config *cfg)
{
    json_t *out = json_array();
    const char *one[] = {cfg->tls.certificate, cfg->tls.private_key};
    for (size_t i = 0; i < 2; i++)
        if (one[i] && *one[i] && !backup_inside(cfg->state_dir, one[i]))
            json_array_append_new(out, json_string(one[i]));
    const struct config_str_list *lists[] = {&cfg->tls.ca_files, &cfg->tls.crl_files};
    for (size_t l = 0; l < 2; l++)
        for (size_t i = 0; i < lists[l]->n; i++)
            if (!backup_inside(cfg->state_dir, lists[l]->v[i]))
                json_array_append_new(out, json_string(lists[l]->v[i]));
    return out;
}

static int backup_take(struct ctl *ctl, const char *file)
{
    struct backup b = {.ctl = ctl, .out = {.fd = -1}};
    char tmp[4096], parts[4096], snap[4200], src[4200], integrity[256];
    bool have_parts = false, have_snap = false;
    int64_t version = -1;
    json_t *outside = NULL;
    int rc = CTL_FAIL;
    struct stat sb;
    const char *state = ctl->cfg->state_dir;

    if (lstat(file, &sb) == 0)
        return ctl_fail(ctl, "%s exists: a backup never replaces a file", file);
    /* In a directory others may write without the sticky bit, they could
     * rename our temporary file away and put theirs in its place: the
     * rename would give their file the backup's name. */
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", file);
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = '\0';
    if (stat(slash ? dir : ".", &sb) == 0 && (sb.st_mode & S_IWOTH) && !(sb.st_mode & S_ISVTX))
        return ctl_fail(ctl,
                        "%s: others may write in its directory (mode %04o, no sticky bit): "
                        "put backups where only administrators write",
                        file, (unsigned)(sb.st_mode & 07777));
    if (snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", file) >= (int)sizeof(tmp) ||
        snprintf(parts, sizeof(parts), "%s.parts-XXXXXX", file) >= (int)sizeof(parts))
        return ctl_fail(ctl, "%s: name too long", file);
    b.out.fd = mkostemp(tmp, O_CLOEXEC);
    if (b.out.fd < 0)
        return ctl_fail(ctl, "cannot create %s: %s", tmp, strerror(errno));
    b.files = json_array();
    b.skipped = json_array();
    if (fchmod(b.out.fd, 0600) != 0 || fstat(b.out.fd, &sb) != 0) {
        snprintf(b.err, sizeof(b.err), "%s: %s", tmp, strerror(errno));
        goto out;
    }
    b.skip_dev = sb.st_dev;
    b.skip_ino[0] = sb.st_ino;
    if (!mkdtemp(parts)) {
        snprintf(b.err, sizeof(b.err), "%s: %s", parts, strerror(errno));
        goto out;
    }
    have_parts = true;
    if (stat(parts, &sb) == 0)
        b.skip_ino[1] = sb.st_ino;

    /* the store first: one moment of it, while parleyd writes */
    snprintf(src, sizeof(src), "%s/%s", state, BACKUP_STORE);
    snprintf(snap, sizeof(snap), "%s/%s", parts, BACKUP_STORE);
    if (store_snapshot(src, snap, b.err, sizeof(b.err)) != 0)
        goto out;
    have_snap = true;
    char why[512];
    if (store_check(snap, &version, integrity, sizeof(integrity), why, sizeof(why)) != 0 ||
        strcmp(integrity, "ok") != 0) {
        snprintf(b.err, sizeof(b.err), "the store's snapshot fails its integrity check: %s%s",
                 integrity, why);
        goto out;
    }
    int pfd = open(parts, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    char *data = NULL;
    size_t len = 0;
    int r = pfd < 0 ? -errno
                    : backup_read_file(pfd, BACKUP_STORE, &data, &len, &sb, b.err, sizeof(b.err));
    if (pfd >= 0)
        close(pfd);
    if (r == 0) {
        r = backup_add_data(&b, BACKUP_STORE, 0600, data, len, (int64_t)time(NULL));
        OPENSSL_cleanse(data, len);
    }
    free(data);
    if (r != 0) {
        if (!b.err[0])
            snprintf(b.err, sizeof(b.err), "%s: %s", BACKUP_STORE, strerror(-r));
        goto out;
    }

    int sfd = open(state, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    r = sfd < 0 ? -errno : backup_walk(&b, sfd, "", 0);
    if (r != 0 || b.out.err) {
        if (!b.err[0])
            snprintf(b.err, sizeof(b.err), "%s: %s", state, strerror(r ? -r : -b.out.err));
        goto out;
    }

    char created[32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    outside = backup_outside(ctl->cfg);
    json_t *manifest = json_pack("{s:s, s:s, s:s, s:s, s:I, s:O, s:O, s:O}", "format",
                                 BACKUP_FORMAT, "created", created, "source", state, "domain",
                                 ctl->cfg->server.domain, "schema_version", (json_int_t)version,
                                 "files", b.files, "skipped", b.skipped, "not_included", outside);
    char *text = json_dumps(manifest, JSON_INDENT(1) | JSON_SORT_KEYS);
    json_decref(manifest);
    if (!text) {
        snprintf(b.err, sizeof(b.err), "out of memory");
        goto out;
    }
    size_t tlen = strlen(text);
    tar_member(&b.out, BACKUP_MANIFEST, '0', 0600, tlen, (int64_t)now);
    tar_write(&b.out, text, tlen);
    tar_pad(&b.out, tlen);
    free(text);
    static const char end[2 * TAR_BLOCK];
    tar_write(&b.out, end, sizeof(end));
    if (b.out.err == 0 && fsync(b.out.fd) != 0)
        b.out.err = -errno;
    if (b.out.err) {
        snprintf(b.err, sizeof(b.err), "%s: %s", tmp, strerror(-b.out.err));
        goto out;
    }
    if (close(b.out.fd) != 0) {
        b.out.fd = -1;
        snprintf(b.err, sizeof(b.err), "%s: %s", tmp, strerror(errno));
        goto out;
    }
    b.out.fd = -1;
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, file, RENAME_NOREPLACE) != 0) {
        snprintf(b.err, sizeof(b.err), "%s: %s", file, strerror(errno));
        goto out;
    }
    tmp[0] = '\0';
    /* the rename itself durable */
    int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    rc = CTL_OK;

out:
    if (b.out.fd >= 0)
        close(b.out.fd);
    if (tmp[0])
        unlink(tmp);
    if (have_snap)
        unlink(snap);
    if (have_parts)
        rmdir(parts);
    if (rc != CTL_OK) {
        json_decref(b.files);
        json_decref(b.skipped);
        json_decref(outside);
        return ctl_fail(ctl, "backup failed: %s", b.err[0] ? b.err : "write error");
    }
    struct strbuf t = STRBUF_INIT;
    json_int_t bytes = 0;
    size_t i, nfiles = 0;
    json_t *f;
    json_array_foreach(b.files, i, f)
    {
        if (strcmp(json_string_value(json_object_get(f, "type")), "file") == 0) {
            nfiles++;
            bytes += json_integer_value(json_object_get(f, "size"));
        }
    }
    strbuf_printf(&t, "backup %s: %zu files, %lld bytes, store schema %lld (mode 0600)\n", file,
                  nfiles, (long long)bytes, (long long)version);
    json_array_foreach(b.skipped, i, f)
    {
        /* the store's own files and parleyd's are left out every time */
        const char *p = json_string_value(json_object_get(f, "path"));
        if (strncmp(p, BACKUP_STORE, strlen(BACKUP_STORE)) == 0 || strcmp(p, "parleyd.lock") == 0 ||
            strcmp(p, CONTROL_SOCKET_NAME) == 0 ||
            strcmp(json_string_value(json_object_get(f, "why")), BACKUP_SELF) == 0)
            continue;
        strbuf_printf(&t, "  not taken: %s (%s)\n", json_string_value(json_object_get(f, "path")),
                      json_string_value(json_object_get(f, "why")));
    }
    json_array_foreach(outside, i, f)
    {
        strbuf_printf(&t, "  warning: %s is outside %s and not in the backup: save it separately\n",
                      json_string_value(f), state);
    }
    ctl_done(ctl,
             json_pack("{s:s, s:o, s:o, s:o, s:I}", "archive", file, "files", b.files, "skipped",
                       b.skipped, "not_included", outside, "schema_version", (json_int_t)version),
             strbuf_cstr(&t));
    strbuf_free(&t);
    return CTL_OK;
}

/* --- restore --- */

struct restore_entry {
    char *path;
    bool dir;
    uint64_t size;
    char sha256[65];
};

struct restore {
    int in;
    int dirfd;
    struct restore_entry *v;
    size_t n, cap;
    char *manifest;
    size_t manifest_len;
    char err[1024];
};

static int restore_read(struct restore *r, void *p, size_t n)
{
    char *c = p;
    while (n > 0) {
        ssize_t got = read(r->in, c, n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            snprintf(r->err, sizeof(r->err), "the archive ends too early (cut short?)");
            return -EPROTO;
        }
        c += got;
        n -= (size_t)got;
    }
    return 0;
}

static int restore_octal(const char *f, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    size_t i = 0;
    while (i < len && f[i] == ' ')
        i++;
    if (i == len || f[i] < '0' || f[i] > '7')
        return -EPROTO;
    for (; i < len && f[i] >= '0' && f[i] <= '7'; i++) {
        if (v >> 60)
            return -EPROTO;
        v = v * 8 + (uint64_t)(f[i] - '0');
    }
    for (; i < len; i++)
        if (f[i] != ' ' && f[i] != '\0')
            return -EPROTO;
    *out = v;
    return 0;
}

/* A member's path may only name something inside DIR: relative, no "..",
 * no empty or "." component, no control character (printable). */
static bool restore_path_valid(const char *p)
{
    char shown[4096 * 4 + 1];
    if (!*p || *p == '/' || strlen(p) >= 4096 ||
        strcmp(printable(p, shown, sizeof(shown), false), p) != 0)
        return false;
    for (const char *c = p; *c;) {
        const char *e = strchr(c, '/');
        size_t n = e ? (size_t)(e - c) : strlen(c);
        if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
            return false;
        c += n;
        if (*c == '/')
            c++;
        else
            break;
    }
    return p[strlen(p) - 1] != '/';
}

static struct restore_entry *restore_add(struct restore *r, const char *path, bool dir)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 64;
        struct restore_entry *v = realloc(r->v, cap * sizeof(*v));
        if (!v)
            return NULL;
        r->v = v;
        r->cap = cap;
    }
    struct restore_entry *e = &r->v[r->n];
    memset(e, 0, sizeof(*e));
    e->path = strdup(path);
    if (!e->path)
        return NULL;
    e->dir = dir;
    r->n++;
    return e;
}

static int restore_file(struct restore *r, const char *path, uint64_t size)
{
    struct restore_entry *e = NULL;
    int fd = openat(r->dirfd, path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(r->err, sizeof(r->err), "%s: %s", path, strerror(errno));
        return -errno;
    }
    e = restore_add(r, path, false);
    if (!e) {
        close(fd);
        unlinkat(r->dirfd, path, 0);
        return -ENOMEM;
    }
    e->size = size;
    struct sha h;
    int rc = sha_start(&h);
    char buf[65536];
    uint64_t left = size;
    while (rc == 0 && left > 0) {
        size_t n = left < sizeof(buf) ? (size_t)left : sizeof(buf);
        rc = restore_read(r, buf, n);
        if (rc == 0) {
            sha_update(&h, buf, n);
            struct tar_out o = {.fd = fd};
            tar_write(&o, buf, n);
            if (o.err) {
                snprintf(r->err, sizeof(r->err), "%s: %s", path, strerror(-o.err));
                rc = o.err;
            }
            left -= n;
        }
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    if (sha_finish(&h, e->sha256) != 0 && rc == 0)
        rc = -EIO;
    if (rc == 0 && fsync(fd) != 0) {
        rc = -errno;
        snprintf(r->err, sizeof(r->err), "%s: fsync: %s", path, strerror(errno));
    }
    close(fd);
    return rc;
}

static int restore_skip_padding(struct restore *r, uint64_t size)
{
    char pad[TAR_BLOCK];
    return size % TAR_BLOCK ? restore_read(r, pad, TAR_BLOCK - size % TAR_BLOCK) : 0;
}

/* Reads a small member's data whole (pax headers, the manifest). */
static int restore_small(struct restore *r, uint64_t size, size_t max, char **out)
{
    if (size > max) {
        snprintf(r->err, sizeof(r->err), "a header or manifest of %llu bytes is too large",
                 (unsigned long long)size);
        return -EPROTO;
    }
    char *p = malloc((size_t)size + 1);
    if (!p)
        return -ENOMEM;
    int rc = restore_read(r, p, (size_t)size);
    if (rc == 0)
        rc = restore_skip_padding(r, size);
    if (rc) {
        free(p);
        return rc;
    }
    p[size] = '\0';
    *out = p;
    return 0;
}

/* pax keys that only describe a member (its times, owner, a comment):
 * restore sets none of it and may ignore them. */
static bool restore_pax_descriptive(const char *k, size_t n)
{
    static const char *const keys[] = {"mtime", "atime", "ctime",   "uid",     "gid",
                                       "uname", "gname", "comment", "charset", "hdrcharset"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (strlen(keys[i]) == n && memcmp(keys[i], k, n) == 0)
            return true;
    return false;
}

/* "LEN path=VALUE\n" records; keys that only describe are ignored, any
 * other is refused. */
static int restore_pax_path(struct restore *r, const char *p, size_t n, char *path, size_t cap)
{
    size_t at = 0;
    while (at < n) {
        /* LEN is decimal digits and nothing else (strtoul would also take
         * blanks and a sign, and "-1" would wrap the bounds check) */
        const char *end = p + at;
        size_t len = 0;
        while (end < p + n && *end >= '0' && *end <= '9' && len <= n)
            len = len * 10 + (size_t)(*end++ - '0');
        if (end == p + at || len > n - at || end >= p + at + len || *end != ' ' ||
            p[at + len - 1] != '\n') {
            snprintf(r->err, sizeof(r->err), "a damaged pax header");
            return -EPROTO;
        }
        const char *kv = end + 1;
        size_t kvlen = (size_t)(p + at + len - 1 - kv);
        const char *eq = memchr(kv, '=', kvlen);
        if (!eq || memchr(kv, '\0', kvlen)) {
            snprintf(r->err, sizeof(r->err), "a damaged pax header");
            return -EPROTO;
        }
        size_t klen = (size_t)(eq - kv), vlen = kvlen - klen - 1;
        if (klen == 4 && memcmp(kv, "path", 4) == 0) {
            if (vlen >= cap)
                return -ENAMETOOLONG;
            memcpy(path, eq + 1, vlen);
            path[vlen] = '\0';
        } else if (!restore_pax_descriptive(kv, klen)) {
            /* size, linkpath, GNU.sparse.* change what the data is: tar
             * would read the archive one way and restore another */
            char key[41], shown[201];
            snprintf(key, sizeof(key), "%.*s", (int)(klen < 40 ? klen : 40), kv);
            snprintf(r->err, sizeof(r->err), "a pax record \"%s\" (only path is taken)",
                     printable(key, shown, sizeof(shown), true));
            return -EPROTO;
        }
        at += len;
    }
    return 0;
}

static int restore_members(struct restore *r)
{
    char pax_path[4096] = "";
    for (;;) {
        unsigned char h[TAR_BLOCK];
        int rc = restore_read(r, h, sizeof(h));
        if (rc)
            return rc;
        bool zero = true;
        for (size_t i = 0; i < sizeof(h) && zero; i++)
            zero = h[i] == 0;
        if (zero)
            return 0;
        uint64_t sum = 0, want = 0, size = 0;
        for (size_t i = 0; i < sizeof(h); i++)
            sum += (i >= 148 && i < 156) ? ' ' : h[i];
        if (restore_octal((char *)h + 148, 8, &want) != 0 || want != sum ||
            memcmp(h + 257, "ustar", 5) != 0 || restore_octal((char *)h + 124, 12, &size) != 0) {
            snprintf(r->err, sizeof(r->err),
                     "a damaged member header (checksum or format) after %zu members", r->n);
            return -EPROTO;
        }
        char type = (char)h[156];
        if (type == 'x') {
            char *pax = NULL;
            rc = restore_small(r, size, 65536, &pax);
            if (rc == 0)
                rc = restore_pax_path(r, pax, (size_t)size, pax_path, sizeof(pax_path));
            free(pax);
            if (rc)
                return rc;
            continue;
        }
        char path[4096];
        if (pax_path[0]) {
            snprintf(path, sizeof(path), "%s", pax_path);
            pax_path[0] = '\0';
        } else {
            char name[101], prefix[156];
            memcpy(name, h, 100);
            name[100] = '\0';
            memcpy(prefix, h + 345, 155);
            prefix[155] = '\0';
            snprintf(path, sizeof(path), "%s%s%s", prefix, prefix[0] ? "/" : "", name);
        }
        size_t plen = strlen(path);
        if (type == '5' && plen > 1 && path[plen - 1] == '/')
            path[plen - 1] = '\0';
        if (!restore_path_valid(path)) {
            char shown[1601];
            snprintf(r->err, sizeof(r->err),
                     "a member named \"%.200s\" would land outside DIR or has control characters",
                     printable(path, shown, sizeof(shown), false));
            return -EPROTO;
        }
        if (strcmp(path, BACKUP_MANIFEST) == 0 && (type == '0' || type == '\0')) {
            if (r->manifest) {
                snprintf(r->err, sizeof(r->err), "two manifests");
                return -EPROTO;
            }
            rc = restore_small(r, size, BACKUP_MANIFEST_MAX, &r->manifest);
            r->manifest_len = (size_t)size;
            if (rc)
                return rc;
            continue;
        }
        if (type == '5') {
            /* a directory has no data: tar would skip what follows as
             * its data, we would read it as members */
            if (size != 0) {
                snprintf(r->err, sizeof(r->err), "%s: a directory member with data", path);
                return -EPROTO;
            }
            if (mkdirat(r->dirfd, path, 0700) != 0) {
                snprintf(r->err, sizeof(r->err), "%s: %s", path, strerror(errno));
                return -errno;
            }
            if (!restore_add(r, path, true)) {
                unlinkat(r->dirfd, path, AT_REMOVEDIR);
                return -ENOMEM;
            }
        } else if (type == '0' || type == '\0') {
            rc = restore_file(r, path, size);
            if (rc == 0)
                rc = restore_skip_padding(r, size);
        } else {
            snprintf(r->err, sizeof(r->err),
                     "%s: a member of type '%c' (only files and "
                     "directories are restored)",
                     path, type);
            return -EPROTO;
        }
        if (rc)
            return rc;
    }
}

/* Everything written against the manifest: the same members, each of the
 * same kind, size and SHA-256. */
static int restore_verify(struct restore *r, json_t **doc)
{
    json_error_t jerr;
    if (!r->manifest) {
        snprintf(r->err, sizeof(r->err), "no %s in the archive: not a Parley backup",
                 BACKUP_MANIFEST);
        return -EPROTO;
    }
    json_t *m = json_loadb(r->manifest, r->manifest_len, 0, &jerr);
    const char *format = json_string_value(json_object_get(m, "format"));
    json_t *files = json_object_get(m, "files");
    if (!m || !format || strcmp(format, BACKUP_FORMAT) != 0 || !json_is_array(files)) {
        snprintf(r->err, sizeof(r->err), "the manifest is damaged or of another format (%s)",
                 m ? "format" : jerr.text);
        json_decref(m);
        return -EPROTO;
    }
    if (json_array_size(files) != r->n) {
        snprintf(r->err, sizeof(r->err), "the manifest lists %zu members, the archive has %zu",
                 json_array_size(files), r->n);
        json_decref(m);
        return -EPROTO;
    }
    size_t i;
    json_t *f;
    json_array_foreach(files, i, f)
    {
        const char *path = json_string_value(json_object_get(f, "path"));
        const char *type = json_string_value(json_object_get(f, "type"));
        const char *mode = json_string_value(json_object_get(f, "mode"));
        struct restore_entry *e = &r->v[i];
        bool dir = type && strcmp(type, "dir") == 0;
        if (!path || !mode || strcmp(path, e->path) != 0 || dir != e->dir) {
            char shown[1601];
            snprintf(r->err, sizeof(r->err), "member %zu: the manifest says %.200s, the archive %s",
                     i + 1, printable(path, shown, sizeof(shown), false), e->path);
            json_decref(m);
            return -EPROTO;
        }
        if (dir)
            continue;
        const char *sha = json_string_value(json_object_get(f, "sha256"));
        if ((uint64_t)json_integer_value(json_object_get(f, "size")) != e->size || !sha ||
            strcmp(sha, e->sha256) != 0) {
            snprintf(r->err, sizeof(r->err),
                     "%s: SHA-256 mismatch (the manifest says %.16s..., the archive holds "
                     "%.16s...): the archive is damaged or was changed",
                     e->path, sha ? sha : "?", e->sha256);
            json_decref(m);
            return -EPROTO;
        }
    }
    *doc = m;
    return 0;
}

/* The recorded modes, only once everything verified; set-id bits never. */
static int restore_modes(struct restore *r, json_t *doc)
{
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(doc, "files"), i, f)
    {
        unsigned long mode = strtoul(json_string_value(json_object_get(f, "mode")), NULL, 8);
        if (fchmodat(r->dirfd, r->v[i].path, (mode_t)(mode & 0777), 0) != 0) {
            snprintf(r->err, sizeof(r->err), "%s: chmod: %s", r->v[i].path, strerror(errno));
            return -errno;
        }
    }
    return 0;
}

static void restore_undo(struct restore *r)
{
    for (size_t i = r->n; i-- > 0;)
        unlinkat(r->dirfd, r->v[i].path, r->v[i].dir ? AT_REMOVEDIR : 0);
}

static bool restore_dir_empty(int dirfd)
{
    int fd = dup(dirfd);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    if (!d) {
        if (fd >= 0)
            close(fd);
        return false;
    }
    rewinddir(d);
    bool empty = true;
    struct dirent *e;
    while (empty && (e = readdir(d)))
        empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    closedir(d);
    return empty;
}

static int restore_run(struct ctl *ctl, const char *file, const char *dir)
{
    struct restore r = {.in = -1, .dirfd = -1};
    json_t *doc = NULL;
    bool made = false;
    int rc;
    struct stat sb;

    if (mkdir(dir, 0700) == 0)
        made = true;
    else if (errno != EEXIST)
        return ctl_fail(ctl, "%s: %s", dir, strerror(errno));
    /* From here DIR is this descriptor. An existing DIR must be ours: its
     * owner could put a link in it while we write (chmod would not stop
     * them, they can chmod it back), and the archive's files would follow
     * it. */
    r.dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (r.dirfd < 0 || fstat(r.dirfd, &sb) != 0) {
        rc = ctl_fail(ctl, "%s: %s", dir, strerror(errno));
        goto out;
    }
    if (sb.st_uid != geteuid()) {
        rc = ctl_fail(ctl,
                      "%s belongs to uid %u, not to the user restoring: restore into a new "
                      "directory (nothing was changed)",
                      dir, (unsigned)sb.st_uid);
        goto out;
    }
    /* empty before the chmod (a directory in use keeps its mode) and after
     * it (nothing came in before others were shut out) */
    if (!made && !restore_dir_empty(r.dirfd)) {
        rc = ctl_fail(ctl,
                      "%s is not empty: restore only into an empty or new directory "
                      "(nothing was changed)",
                      dir);
        goto out;
    }
    if (fchmod(r.dirfd, 0700) != 0) {
        rc = ctl_fail(ctl, "%s: %s", dir, strerror(errno));
        goto out;
    }
    if (!made && !restore_dir_empty(r.dirfd)) {
        rc = ctl_fail(ctl, "%s: something was put in it while restore started", dir);
        goto out;
    }
    r.in = open(file, O_RDONLY | O_CLOEXEC);
    if (r.in < 0) {
        rc = ctl_fail(ctl, "%s: %s", file, strerror(errno));
        goto out;
    }
    int e = restore_members(&r);
    if (e == 0)
        e = restore_verify(&r, &doc);
    if (e == 0)
        e = restore_modes(&r, doc);
    if (e == 0 && fsync(r.dirfd) != 0) {
        e = -errno;
        snprintf(r.err, sizeof(r.err), "%s: fsync: %s", dir, strerror(errno));
    }
    if (e != 0) {
        restore_undo(&r);
        rc = ctl_fail(ctl, "restore of %s refused: %s; nothing was restored", file,
                      r.err[0] ? r.err : strerror(-e));
        goto out;
    }
    size_t files = 0;
    for (size_t i = 0; i < r.n; i++)
        files += !r.v[i].dir;
    /* what the manifest says of itself, shown as text but not trusted */
    char source[801], domain[801], created[801], msg[4096];
    snprintf(
        msg, sizeof(msg),
        "restored %zu files into %s (store schema %lld, from %s of %s, taken %s)\n"
        "next: parleyd -c %s/parley.conf (as the user that owns %s; `chown -R` it first "
        "if parleyd runs as another user)",
        files, dir, (long long)json_integer_value(json_object_get(doc, "schema_version")),
        printable(json_string_value(json_object_get(doc, "source")), source, sizeof(source), false),
        printable(json_string_value(json_object_get(doc, "domain")), domain, sizeof(domain), false),
        printable(json_string_value(json_object_get(doc, "created")), created, sizeof(created),
                  false),
        dir, dir);
    json_t *out =
        json_pack("{s:s, s:I, s:O}", "dir", dir, "files", (json_int_t)files, "manifest", doc);
    rc = ctl_done(ctl, out, msg);
out:
    if (rc != CTL_OK && made)
        rmdir(dir);
    json_decref(doc);
    if (r.in >= 0)
        close(r.in);
    if (r.dirfd >= 0)
        close(r.dirfd);
    for (size_t i = 0; i < r.n; i++)
        free(r.v[i].path);
    free(r.v);
    if (r.manifest)
        OPENSSL_cleanse(r.manifest, r.manifest_len);
    free(r.manifest);
    return rc;
}

int cmd_backup(struct ctl *ctl)
{
    if (ctl->argc != 1)
        return ctl_usage(ctl, "usage: backup FILE");
    int rc = ctl_open_crypto(ctl);
    if (rc)
        return rc;
    sha_fips = ctl->fips;
    return backup_take(ctl, ctl->argv[0]);
}

int cmd_restore(struct ctl *ctl)
{
    bool missing = false;
    const char *dir = ctl_take_option(ctl, "--dir", &missing);
    if (missing || !dir || ctl->argc != 1)
        return ctl_usage(ctl, "usage: restore FILE --dir DIR");
    /* no configuration yet: the context a new one would have */
    const struct config_key *mode = config_key_find("security.fips");
    const struct config_key *file = config_key_find("security.fips_enabled_file");
    int rc = ctl_open_crypto_as(ctl, mode ? mode->default_value : "auto",
                                file ? file->default_value : NULL);
    if (rc)
        return rc;
    sha_fips = ctl->fips;
    return restore_run(ctl, ctl->argv[0], dir);
}
