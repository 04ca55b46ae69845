#include "relay/relay_cred.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "core/random.h"
#include "core/secret_file.h"
#include "core/strbuf.h"
#include "crypto/encoding.h"
#include "crypto/mac.h"

#define SECRET_RANDOM_BYTES 32
#define SECRETS_FILE_MAX    (64 * 1024)

static const char SECRETS_HEADER[] =
    "# Parley media relay secrets (see parleyctl relay): one per line, \"ADDED SECRET\",\n"
    "# ADDED in Unix seconds. The newest issues credentials; an older one still\n"
    "# verifies them for relay.max_lifetime after the next one was added.\n";

int relay_secrets_path(const char *state_dir, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%s", state_dir, RELAY_SECRETS_FILE);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

static void stamp_from(const struct stat *st, struct relay_secrets_stamp *stamp)
{
    memset(stamp, 0, sizeof(*stamp)); /* compared with memcmp, padding included */
    stamp->mode = st->st_mode;
    stamp->dev = st->st_dev;
    stamp->ino = st->st_ino;
    stamp->size = st->st_size;
    stamp->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

bool relay_secrets_changed(const char *path, const struct relay_secrets_stamp *stamp)
{
    static const struct relay_secrets_stamp missing;
    struct stat st;
    struct relay_secrets_stamp now;

    if (stat(path, &st) != 0)
        return memcmp(stamp, &missing, sizeof(missing)) != 0;
    stamp_from(&st, &now);
    return memcmp(&now, stamp, sizeof(now)) != 0;
}

static bool secret_char_ok(char c)
{
    return c > 0x20 && c < 0x7f;
}

/* One "ADDED SECRET" line (without its newline). */
static int parse_line(const char *line, size_t len, struct relay_secret *out)
{
    size_t i = 0;
    int64_t added = 0;

    if (len == 0 || line[0] < '0' || line[0] > '9')
        return -EINVAL;
    while (i < len && line[i] >= '0' && line[i] <= '9') {
        if (i >= 18)
            return -EINVAL;
        added = added * 10 + (line[i] - '0');
        i++;
    }
    if (i >= len || line[i] != ' ')
        return -EINVAL;
    while (i < len && line[i] == ' ')
        i++;
    size_t start = i;
    while (i < len && secret_char_ok(line[i]))
        i++;
    size_t slen = i - start;
    while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
        i++;
    if (i != len || slen < RELAY_SECRET_MIN_LEN || slen > RELAY_SECRET_MAX_LEN)
        return -EINVAL;
    out->added = added;
    out->len = slen;
    memcpy(out->value, line + start, slen);
    out->value[slen] = '\0';
    return 0;
}

static int parse_text(const char *path, const char *text, size_t len, struct relay_secrets *out,
                      char *err, size_t errlen)
{
    size_t off = 0;
    unsigned lineno = 0;

    memset(out, 0, sizeof(*out));
    while (off < len) {
        const char *nl = memchr(text + off, '\n', len - off);
        size_t llen = nl ? (size_t)(nl - (text + off)) : len - off;
        const char *line = text + off;
        off += llen + (nl ? 1 : 0);
        lineno++;
        while (llen && (line[llen - 1] == '\r' || line[llen - 1] == ' '))
            llen--;
        if (llen == 0 || line[0] == '#')
            continue;
        if (out->n == RELAY_SECRETS_MAX) {
            snprintf(err, errlen, "%s: more than %d secrets", path, RELAY_SECRETS_MAX);
            return -E2BIG;
        }
        if (parse_line(line, llen, &out->v[out->n]) != 0) {
            snprintf(err, errlen,
                     "%s:%u: not \"ADDED SECRET\" (Unix seconds, then %d-%d printable "
                     "characters)",
                     path, lineno, RELAY_SECRET_MIN_LEN, RELAY_SECRET_MAX_LEN);
            return -EINVAL;
        }
        out->n++;
    }
    if (out->n == 0) {
        snprintf(err, errlen, "%s: holds no secret", path);
        return -EINVAL;
    }
    /* Oldest first, whatever order the lines were in (stable for equal times). */
    for (size_t i = 1; i < out->n; i++) {
        struct relay_secret tmp = out->v[i];
        size_t j = i;
        while (j > 0 && out->v[j - 1].added > tmp.added) {
            out->v[j] = out->v[j - 1];
            j--;
        }
        out->v[j] = tmp;
    }
    return 0;
}

int relay_secrets_load(const char *path, struct relay_secrets *out,
                       struct relay_secrets_stamp *stamp, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    struct stat st;
    memset(&st, 0, sizeof(st));
    int rc = secret_file_read(path, SECRETS_FILE_MAX, &text, &len, &st, err, errlen);
    /* Recorded whatever the content: a caller that keeps its old secrets
     * after a refusal waits for the file to change before trying again. */
    if (stamp && st.st_ino)
        stamp_from(&st, stamp);
    if (rc == 0)
        rc = parse_text(path, text, len, out, err, errlen);
    if (text) {
        OPENSSL_cleanse(text, len);
        free(text);
    }
    return rc;
}

static int new_secret(int64_t now, struct relay_secret *out)
{
    unsigned char raw[SECRET_RANDOM_BYTES];
    int rc = random_secret(raw, sizeof(raw));
    if (rc == 0)
        rc = base64_encode(BASE64_URL, raw, sizeof(raw), out->value, sizeof(out->value), &out->len);
    OPENSSL_cleanse(raw, sizeof(raw));
    out->added = now;
    return rc;
}

/* Writes s to path atomically: a private temporary file, fsync, rename,
 * fsync of the directory. */
static int write_file(const char *path, const struct relay_secrets *s, char *err, size_t errlen)
{
    char tmp[PATH_MAX];
    struct strbuf text = STRBUF_INIT;
    int rc = 0;

    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp)) {
        snprintf(err, errlen, "%s: path too long", path);
        return -ENAMETOOLONG;
    }
    strbuf_puts(&text, SECRETS_HEADER);
    for (size_t i = 0; i < s->n; i++)
        strbuf_printf(&text, "%lld %s\n", (long long)s->v[i].added, s->v[i].value);
    if (text.err) {
        strbuf_free(&text);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    /* a new file, never one found at the name: root writes here before
     * parleyd drops to server.user, in a directory that user owns, and a
     * hard link left at the name would be written through */
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", tmp, strerror(-rc));
        goto out;
    }
    /* The umask may have removed bits, never added: still make it exact. */
    if (fchmod(fd, 0600) != 0 || write(fd, text.p, text.len) != (ssize_t)text.len ||
        fsync(fd) != 0) {
        rc = errno ? -errno : -EIO;
        snprintf(err, errlen, "%s: cannot write: %s", tmp, strerror(-rc));
        close(fd);
        unlink(tmp);
        goto out;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: cannot replace: %s", path, strerror(-rc));
        unlink(tmp);
        goto out;
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
out:
    OPENSSL_cleanse(text.p, text.cap);
    strbuf_free(&text);
    return rc;
}

/* Serialises writers of the file: an exclusive flock on its directory
 * (the file itself is replaced by rename, so it cannot carry the lock). */
static int lock_dir(const char *path, char *err, size_t errlen)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || flock(dfd, LOCK_EX) != 0) {
        int e = errno;
        snprintf(err, errlen, "%s: cannot lock its directory: %s", path, strerror(e));
        if (dfd >= 0)
            close(dfd);
        return -e;
    }
    return dfd;
}

int relay_secrets_ensure(const char *path, int64_t now, struct relay_secrets *out, bool *created,
                         char *err, size_t errlen)
{
    struct relay_secrets s;
    bool made = false;

    int rc = relay_secrets_load(path, &s, NULL, err, errlen);
    if (rc == -ENOENT) {
        int dfd = lock_dir(path, err, errlen);
        if (dfd < 0)
            return dfd;
        rc = relay_secrets_load(path, &s, NULL, err, errlen);
        if (rc == -ENOENT) {
            memset(&s, 0, sizeof(s));
            rc = new_secret(now, &s.v[0]);
            if (rc == 0) {
                s.n = 1;
                rc = write_file(path, &s, err, errlen);
                made = rc == 0;
            } else {
                snprintf(err, errlen, "no randomness for a new secret");
            }
        }
        close(dfd);
    }
    if (created)
        *created = made;
    if (rc == 0 && out)
        *out = s;
    OPENSSL_cleanse(&s, sizeof(s));
    return rc;
}

const struct relay_secret *relay_secrets_current(const struct relay_secrets *s)
{
    return s && s->n ? &s->v[s->n - 1] : NULL;
}

bool relay_secrets_usable(const struct relay_secrets *s, size_t i, int64_t now, int64_t grace_s)
{
    if (!s || i >= s->n)
        return false;
    if (i == s->n - 1)
        return true;
    return now - s->v[i + 1].added <= grace_s;
}

int relay_secrets_rotate(const char *path, int64_t now, int64_t grace_s, struct relay_secrets *out,
                         size_t *retired, char *err, size_t errlen)
{
    struct relay_secrets s, kept;
    size_t gone = 0;

    int dfd = lock_dir(path, err, errlen);
    if (dfd < 0)
        return dfd;
    int rc = relay_secrets_load(path, &s, NULL, err, errlen);
    if (rc == -ENOENT) {
        memset(&s, 0, sizeof(s));
        rc = 0;
    }
    if (rc)
        goto out;
    /* A new secret must be the newest even if the clock went back. */
    int64_t added = now;
    if (s.n && s.v[s.n - 1].added >= added)
        added = s.v[s.n - 1].added + 1;
    memset(&kept, 0, sizeof(kept));
    for (size_t i = 0; i < s.n; i++) {
        if (relay_secrets_usable(&s, i, now, grace_s))
            kept.v[kept.n++] = s.v[i];
        else
            gone++;
    }
    if (kept.n == RELAY_SECRETS_MAX) {
        /* Full: the oldest goes even within its grace. */
        memmove(&kept.v[0], &kept.v[1], (kept.n - 1) * sizeof(kept.v[0]));
        kept.n--;
        gone++;
    }
    rc = new_secret(added, &kept.v[kept.n]);
    if (rc) {
        snprintf(err, errlen, "no randomness for a new secret");
        goto out;
    }
    kept.n++;
    rc = write_file(path, &kept, err, errlen);
    if (rc == 0 && out)
        *out = kept;
    if (rc == 0 && retired)
        *retired = gone;
out:
    OPENSSL_cleanse(&s, sizeof(s));
    OPENSSL_cleanse(&kept, sizeof(kept));
    close(dfd);
    return rc;
}

/* --- credentials ------------------------------------------------------------- */

int relay_cred_password(const struct relay_secret *secret, struct strview username,
                        char out[RELAY_CRED_PASSWORD_BUF])
{
    unsigned char mac[MAC_MAX_SIZE];
    size_t maclen = 0;

    if (!secret || !out || (username.n && !username.p))
        return -EINVAL;
    int rc =
        mac_hmac(MAC_HMAC_SHA1, secret->value, secret->len, username.p, username.n, mac, &maclen);
    if (rc == 0)
        rc = base64_encode(BASE64_STD, mac, maclen, out, RELAY_CRED_PASSWORD_BUF, NULL);
    OPENSSL_cleanse(mac, sizeof(mac));
    return rc;
}

int relay_cred_parse_username(struct strview username, int64_t *expiry, struct strview *user)
{
    size_t i = 0;
    int64_t v = 0;

    if (!expiry || username.n == 0 || !username.p || username.n > RELAY_CRED_USERNAME_MAX)
        return -EINVAL;
    while (i < username.n && username.p[i] >= '0' && username.p[i] <= '9') {
        if (i >= 18)
            return -EINVAL;
        v = v * 10 + (username.p[i] - '0');
        i++;
    }
    if (i == 0 || (i < username.n && username.p[i] != ':'))
        return -EINVAL;
    *expiry = v;
    if (user)
        *user = i < username.n ? strview_make(username.p + i + 1, username.n - i - 1)
                               : strview_make(username.p + i, 0);
    return 0;
}

static bool user_ok(const char *user)
{
    size_t n = strnlen(user, RELAY_CRED_USER_MAX + 1);
    if (n > RELAY_CRED_USER_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!secret_char_ok(user[i]))
            return false;
    return true;
}

int relay_cred_issue(const struct relay_secrets *s, const char *user, int64_t now,
                     int64_t lifetime_s, int64_t max_lifetime_s, struct relay_cred *out)
{
    const struct relay_secret *cur = relay_secrets_current(s);

    if (!out || max_lifetime_s <= 0 || (user && !user_ok(user)))
        return -EINVAL;
    if (!cur)
        return -ENOENT;
    memset(out, 0, sizeof(*out));
    out->lifetime = lifetime_s <= 0 || lifetime_s > max_lifetime_s ? max_lifetime_s : lifetime_s;
    out->expires = now + out->lifetime;
    if (user && *user)
        snprintf(out->username, sizeof(out->username), "%lld:%s", (long long)out->expires, user);
    else
        snprintf(out->username, sizeof(out->username), "%lld", (long long)out->expires);
    int rc = relay_cred_password(cur, strview_cstr(out->username), out->password);
    if (rc)
        memset(out, 0, sizeof(*out));
    return rc;
}

const char *relay_cred_result_name(enum relay_cred_result r)
{
    switch (r) {
    case RELAY_CRED_OK:
        return "ok";
    case RELAY_CRED_MALFORMED:
        return "malformed username";
    case RELAY_CRED_EXPIRED:
        return "credential expired";
    case RELAY_CRED_INVALID:
        return "credential not valid";
    case RELAY_CRED_ERROR:
        return "internal error";
    }
    return "?";
}

enum relay_cred_result relay_cred_check(const struct relay_secrets *s, struct strview username,
                                        int64_t now, int64_t grace_s, relay_cred_try_fn try_fn,
                                        void *arg, size_t *secret_index)
{
    char pw[RELAY_CRED_PASSWORD_BUF];
    int64_t expiry;
    enum relay_cred_result res = RELAY_CRED_INVALID;

    if (!s || !try_fn)
        return RELAY_CRED_ERROR;
    if (relay_cred_parse_username(username, &expiry, NULL) != 0)
        return RELAY_CRED_MALFORMED;
    if (expiry < now)
        return RELAY_CRED_EXPIRED;
    for (size_t k = s->n; k-- > 0;) {
        if (!relay_secrets_usable(s, k, now, grace_s))
            continue;
        if (relay_cred_password(&s->v[k], username, pw) != 0) {
            res = RELAY_CRED_ERROR;
            break;
        }
        if (try_fn(pw, RELAY_CRED_PASSWORD_LEN, arg) == 0) {
            if (secret_index)
                *secret_index = k;
            res = RELAY_CRED_OK;
            break;
        }
    }
    OPENSSL_cleanse(pw, sizeof(pw));
    return res;
}

static int verify_try(const char *password, size_t len, void *arg)
{
    const struct strview *got = arg;
    /* Compare over our length whatever was received, so the time taken
     * says nothing about where they differ. */
    unsigned char padded[RELAY_CRED_PASSWORD_LEN];
    memset(padded, 0, sizeof(padded));
    memcpy(padded, got->p, got->n < len ? got->n : len);
    int diff = CRYPTO_memcmp(padded, password, len);
    return diff == 0 && got->n == len ? 0 : -1;
}

enum relay_cred_result relay_cred_verify(const struct relay_secrets *s, struct strview username,
                                         struct strview password, int64_t now, int64_t grace_s)
{
    if (password.n && !password.p)
        return RELAY_CRED_ERROR;
    return relay_cred_check(s, username, now, grace_s, verify_try, &password, NULL);
}
