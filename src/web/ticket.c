#include "web/ticket.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#include "core/hmap.h"
#include "core/strview.h"
#include "core/secret_file.h"
#include "crypto/encoding.h"
#include "crypto/sign.h"
#include "store/store.h"

#define KEYS_FILE_MAX (64 * 1024)
#define JTI_BYTES     16
#define PEM_END       "-----END PRIVATE KEY-----"

static const char KEYS_HEADER[] =
    "# Parley web ticket signing keys (parleyctl https rotate-key). Each key is a line\n"
    "# \"key ADDED RETIRED\" (Unix seconds; RETIRED 0 for the current key) and its PEM.\n"
    "# A retired key still verifies tickets for the ticket lifetime after RETIRED.\n";

struct ticket_key {
    struct sign_key *key;
    char kid[SIGN_KEY_ID_LEN + 1];
    int64_t added;
    int64_t retired; /* 0: the current key */
};

struct ticket_keys {
    OSSL_LIB_CTX *libctx;
    size_t n;
    size_t current;
    struct ticket_key v[TICKET_KEYS_MAX];
    /* the file seen at load, for ticket_keys_changed */
    dev_t dev;
    ino_t ino;
    off_t size;
    int64_t mtime_ns;
    mode_t mode;
};

static int keys_path(const char *state_dir, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%s", state_dir, TICKET_KEYS_FILE);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

void ticket_keys_free(struct ticket_keys *k)
{
    if (!k)
        return;
    for (size_t i = 0; i < k->n; i++)
        sign_key_free(k->v[i].key);
    free(k);
}

static struct ticket_keys *keys_new(OSSL_LIB_CTX *libctx)
{
    struct ticket_keys *k = calloc(1, sizeof(*k));
    if (k)
        k->libctx = libctx;
    return k;
}

static int keys_add(struct ticket_keys *k, struct sign_key *key, int64_t added, int64_t retired)
{
    if (k->n == TICKET_KEYS_MAX) {
        sign_key_free(key);
        return -E2BIG;
    }
    struct ticket_key *t = &k->v[k->n++];
    t->key = key;
    t->added = added;
    t->retired = retired;
    return sign_key_id(key, t->kid);
}

/* --- the file ---------------------------------------------------------- */

/* "key ADDED RETIRED" with two non-negative decimal numbers. */
static bool parse_key_line(struct strview line, int64_t *added, int64_t *retired)
{
    char buf[64];
    long long a, r;
    char tail;

    if (line.n >= sizeof(buf) || strview_copy(line, buf, sizeof(buf)) != 0)
        return false;
    if (sscanf(buf, "key %lld %lld %c", &a, &r, &tail) != 2 || a < 0 || r < 0)
        return false;
    for (size_t i = 0; i < line.n; i++) /* digits and single spaces only: no signs, no tabs */
        if (!((buf[i] >= '0' && buf[i] <= '9') || buf[i] == ' ' || i < 3))
            return false;
    *added = a;
    *retired = r;
    return true;
}

static int parse_keys(OSSL_LIB_CTX *libctx, const char *path, const char *text, size_t len,
                      struct ticket_keys *k, char *err, size_t errlen)
{
    size_t off = 0, currents = 0;
    unsigned lineno = 0;

    while (off < len) {
        const char *nl = memchr(text + off, '\n', len - off);
        size_t llen = nl ? (size_t)(nl - (text + off)) : len - off;
        struct strview line = strview_trim(strview_make(text + off, llen));
        off += llen + (nl ? 1 : 0);
        lineno++;
        if (line.n == 0 || line.p[0] == '#')
            continue;
        int64_t added, retired;
        if (!parse_key_line(line, &added, &retired)) {
            snprintf(err, errlen, "%s:%u: not \"key ADDED RETIRED\"", path, lineno);
            return -EINVAL;
        }
        /* The PEM runs to its END line. */
        size_t start = off;
        const char *end = NULL;
        while (off < len) {
            nl = memchr(text + off, '\n', len - off);
            llen = nl ? (size_t)(nl - (text + off)) : len - off;
            struct strview l = strview_trim(strview_make(text + off, llen));
            off += llen + (nl ? 1 : 0);
            lineno++;
            if (strview_eq(l, PEM_END)) {
                end = text + off;
                break;
            }
        }
        struct sign_key *key = NULL;
        if (!end || sign_key_from_pem(libctx, NULL, text + start, (size_t)(end - (text + start)),
                                      &key) != 0) {
            snprintf(err, errlen, "%s:%u: not a P-256 private key in PEM", path, lineno);
            return -EINVAL;
        }
        if (keys_add(k, key, added, retired) == -E2BIG) {
            snprintf(err, errlen, "%s: more than %d keys", path, TICKET_KEYS_MAX);
            return -E2BIG;
        }
        if (retired == 0) {
            k->current = k->n - 1;
            currents++;
        }
    }
    if (currents != 1) {
        snprintf(err, errlen, "%s: %s", path,
                 currents ? "more than one current key (RETIRED 0)" : "holds no current key");
        return -EINVAL;
    }
    return 0;
}

/* Reads and parses path into a new ticket_keys. */
static int keys_read(OSSL_LIB_CTX *libctx, const char *path, struct ticket_keys **out, char *err,
                     size_t errlen)
{
    struct ticket_keys *k = NULL;
    char *text = NULL;
    size_t got = 0;
    struct stat st;
    int rc = secret_file_read(path, KEYS_FILE_MAX, &text, &got, &st, err, errlen);
    if (rc)
        return rc;
    k = keys_new(libctx);
    if (!k) {
        rc = -ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    rc = parse_keys(libctx, path, text, got, k, err, errlen);
    if (rc == 0) {
        k->dev = st.st_dev;
        k->ino = st.st_ino;
        k->size = st.st_size;
        k->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
        k->mode = st.st_mode;
        *out = k;
        k = NULL;
    }
out:
    OPENSSL_cleanse(text, got);
    free(text);
    ticket_keys_free(k);
    return rc;
}

static void fsync_dir(const char *dir)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
}

/* Writes k to path atomically: a private temporary file, fsync, rename,
 * fsync of the directory. The text is built in one buffer sized up front
 * (no reallocation leaves a copy of a key behind) and cleansed. */
static int keys_write(const struct ticket_keys *k, const char *state_dir, const char *path,
                      char *err, size_t errlen)
{
    char *pems[TICKET_KEYS_MAX] = {0};
    size_t pemlens[TICKET_KEYS_MAX] = {0};
    size_t total = sizeof(KEYS_HEADER), used = 0;
    char *text = NULL, tmp[PATH_MAX];
    int rc = 0, fd = -1;

    for (size_t i = 0; i < k->n; i++) {
        rc = sign_key_to_pem(k->v[i].key, &pems[i], &pemlens[i]);
        if (rc) {
            snprintf(err, errlen, "cannot encode a key: %s", strerror(-rc));
            goto out;
        }
        total += 64 + pemlens[i];
    }
    text = malloc(total);
    if (!text) {
        rc = -ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    used = (size_t)snprintf(text, total, "%s", KEYS_HEADER);
    for (size_t i = 0; i < k->n; i++) {
        used += (size_t)snprintf(text + used, total - used, "key %" PRId64 " %" PRId64 "\n",
                                 k->v[i].added, k->v[i].retired);
        memcpy(text + used, pems[i], pemlens[i]);
        used += pemlens[i];
        if (pemlens[i] && pems[i][pemlens[i] - 1] != '\n')
            text[used++] = '\n';
    }
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp)) {
        rc = -ENAMETOOLONG;
        snprintf(err, errlen, "%s: path too long", path);
        goto out;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", tmp, strerror(-rc));
        goto out;
    }
    /* The umask may have removed bits, never added: still make it exact. */
    if (fchmod(fd, 0600) != 0 || write(fd, text, used) != (ssize_t)used || fsync(fd) != 0) {
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
    fsync_dir(state_dir);
out:
    for (size_t i = 0; i < k->n; i++) {
        if (pems[i]) {
            OPENSSL_cleanse(pems[i], pemlens[i]);
            free(pems[i]);
        }
    }
    if (text) {
        OPENSSL_cleanse(text, total);
        free(text);
    }
    return rc;
}

/* Serialises writers: an exclusive flock on the directory (the file is
 * replaced by rename, so it cannot carry the lock). Returns the fd. */
static int lock_dir(const char *state_dir, char *err, size_t errlen)
{
    int dfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || flock(dfd, LOCK_EX) != 0) {
        int e = errno;
        snprintf(err, errlen, "%s: cannot lock: %s", state_dir, strerror(e));
        if (dfd >= 0)
            close(dfd);
        return -e;
    }
    return dfd;
}

static int add_fresh_key(OSSL_LIB_CTX *libctx, struct ticket_keys *k, int64_t now, char *err,
                         size_t errlen)
{
    struct sign_key *key = NULL;
    int rc = sign_key_generate(libctx, NULL, &key);
    if (rc == 0)
        rc = keys_add(k, key, now, 0);
    if (rc)
        snprintf(err, errlen, "cannot make a signing key: %s", strerror(-rc));
    else
        k->current = k->n - 1;
    return rc;
}

int ticket_keys_load(OSSL_LIB_CTX *libctx, const char *state_dir, int64_t now,
                     struct ticket_keys **out, bool *created, char *err, size_t errlen)
{
    char path[PATH_MAX];
    bool made = false;

    if (!state_dir || !out)
        return -EINVAL;
    if (keys_path(state_dir, path, sizeof(path)) != 0) {
        snprintf(err, errlen, "%s: path too long", state_dir);
        return -ENAMETOOLONG;
    }
    int rc = keys_read(libctx, path, out, err, errlen);
    if (rc == -ENOENT) {
        int dfd = lock_dir(state_dir, err, errlen);
        if (dfd < 0)
            return dfd;
        rc = keys_read(libctx, path, out, err, errlen); /* made meanwhile? */
        if (rc == -ENOENT) {
            struct ticket_keys *k = keys_new(libctx);
            rc = k ? add_fresh_key(libctx, k, now, err, errlen) : -ENOMEM;
            if (rc == 0)
                rc = keys_write(k, state_dir, path, err, errlen);
            ticket_keys_free(k);
            /* Read back: the stamp is then the file's as written. */
            if (rc == 0)
                rc = keys_read(libctx, path, out, err, errlen);
            made = rc == 0;
        }
        close(dfd);
    }
    if (created)
        *created = made;
    return rc;
}

int ticket_keys_rotate(OSSL_LIB_CTX *libctx, const char *state_dir, int64_t now, int64_t grace_s,
                       char *err, size_t errlen)
{
    char path[PATH_MAX];
    struct ticket_keys *old = NULL, *k = NULL;

    if (!state_dir)
        return -EINVAL;
    if (keys_path(state_dir, path, sizeof(path)) != 0) {
        snprintf(err, errlen, "%s: path too long", state_dir);
        return -ENAMETOOLONG;
    }
    int dfd = lock_dir(state_dir, err, errlen);
    if (dfd < 0)
        return dfd;
    int rc = keys_read(libctx, path, &old, err, errlen);
    if (rc == -ENOENT)
        rc = 0;
    if (rc)
        goto out;
    k = keys_new(libctx);
    if (!k) {
        rc = -ENOMEM;
        goto out;
    }
    /* Keys move to k (old keeps none, so freeing it frees nothing twice). */
    for (size_t i = 0; old && i < old->n; i++) {
        struct ticket_key t = old->v[i];
        old->v[i].key = NULL;
        if (t.retired == 0)
            t.retired = now;
        if (now - t.retired > grace_s) {
            sign_key_free(t.key);
            continue;
        }
        k->v[k->n++] = t;
    }
    if (k->n == TICKET_KEYS_MAX) {
        /* Full: the oldest retirement goes even within its grace. */
        size_t oldest = 0;
        for (size_t i = 1; i < k->n; i++)
            if (k->v[i].retired < k->v[oldest].retired)
                oldest = i;
        sign_key_free(k->v[oldest].key);
        memmove(&k->v[oldest], &k->v[oldest + 1], (k->n - oldest - 1) * sizeof(k->v[0]));
        k->n--;
    }
    rc = add_fresh_key(libctx, k, now, err, errlen);
    if (rc == 0)
        rc = keys_write(k, state_dir, path, err, errlen);
out:
    ticket_keys_free(old);
    ticket_keys_free(k);
    close(dfd);
    return rc;
}

bool ticket_keys_changed(const struct ticket_keys *k, const char *state_dir)
{
    char path[PATH_MAX];
    struct stat st;

    if (!k || !state_dir || keys_path(state_dir, path, sizeof(path)) != 0 || stat(path, &st) != 0)
        return true;
    int64_t mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    return st.st_dev != k->dev || st.st_ino != k->ino || st.st_size != k->size ||
           mtime_ns != k->mtime_ns || st.st_mode != k->mode;
}

const char *ticket_keys_current_id(const struct ticket_keys *k)
{
    return k && k->n ? k->v[k->current].kid : "";
}

size_t ticket_keys_count(const struct ticket_keys *k)
{
    return k ? k->n : 0;
}

/* --- tickets ----------------------------------------------------------- */

/* base64url of a JSON value's compact text, appended at out + *used. */
static int put_b64_json(json_t *v, char *out, size_t cap, size_t *used)
{
    char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;
    if (!s)
        return -ENOMEM;
    size_t n = 0;
    int rc = base64_encode(BASE64_URL, s, strlen(s), out + *used, cap - *used, &n);
    free(s);
    if (rc == 0)
        *used += n;
    return rc;
}

static bool domain_ok(const char *d)
{
    size_t n = d ? strnlen(d, 254) : 0;
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)d[i] <= 0x20 || (unsigned char)d[i] >= 0x7f)
            return false;
    return true;
}

/* A user's store uid: 32 lowercase hex digits. */
static bool uid_ok(const char *uid)
{
    size_t n = 0;
    for (; uid && uid[n]; n++)
        if (!((uid[n] >= '0' && uid[n] <= '9') || (uid[n] >= 'a' && uid[n] <= 'f')))
            return false;
    return n == 32;
}

int ticket_issue(const struct ticket_keys *k, const char *user, const char *uid, const char *domain,
                 int64_t now, int64_t lifetime_s, char *out, size_t cap)
{
    unsigned char raw[JTI_BYTES], sig[SIGN_ES256_LEN];
    char jti[BASE64_URL_LEN(JTI_BYTES) + 1];
    json_t *hdr = NULL, *claims = NULL;
    size_t used = 0;
    int rc;

    if (!k || !k->n || !store_user_name_valid(user) || !uid_ok(uid) || !domain_ok(domain) ||
        lifetime_s <= 0 || now < 0 || now > INT64_MAX - lifetime_s || !out || cap == 0)
        return -EINVAL;
    out[0] = '\0';
    if (RAND_bytes_ex(k->libctx, raw, sizeof(raw), 0) != 1) {
        ERR_clear_error();
        return -EIO;
    }
    rc = base64_encode(BASE64_URL, raw, sizeof(raw), jti, sizeof(jti), NULL);
    if (rc)
        return rc;
    const struct ticket_key *cur = &k->v[k->current];
    hdr = json_pack("{s:s, s:s, s:s}", "alg", "ES256", "typ", "JWT", "kid", cur->kid);
    claims = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:s}", "iss", "parley", "sub", user, "uid",
                       uid, "dom", domain, "iat", (json_int_t)now, "exp",
                       (json_int_t)(now + lifetime_s), "jti", jti);
    rc = put_b64_json(hdr, out, cap, &used);
    if (rc == 0 && used + 1 >= cap)
        rc = -ENOSPC;
    if (rc == 0) {
        out[used++] = '.';
        rc = put_b64_json(claims, out, cap, &used);
    }
    if (rc == 0)
        rc = sign_es256(cur->key, out, used, sig);
    if (rc == 0 && used + 1 + BASE64_URL_LEN(SIGN_ES256_LEN) + 1 > cap)
        rc = -ENOSPC;
    if (rc == 0) {
        out[used++] = '.';
        rc = base64_encode(BASE64_URL, sig, sizeof(sig), out + used, cap - used, NULL);
    }
    if (rc)
        out[0] = '\0';
    json_decref(hdr);
    json_decref(claims);
    return rc;
}

const char *ticket_result_name(enum ticket_result r)
{
    switch (r) {
    case TICKET_OK:
        return "ok";
    case TICKET_MALFORMED:
        return "malformed";
    case TICKET_UNKNOWN_KEY:
        return "unknown_key";
    case TICKET_BAD_SIGNATURE:
        return "bad_signature";
    case TICKET_EXPIRED:
        return "expired";
    case TICKET_NOT_YET_VALID:
        return "not_yet_valid";
    case TICKET_WRONG_DOMAIN:
        return "wrong_domain";
    }
    return "?";
}

/* A JSON object from its bytes (duplicate members refused). */
static json_t *parse_object(const unsigned char *buf, size_t len)
{
    json_error_t jerr;
    json_t *v = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (v && !json_is_object(v)) {
        json_decref(v);
        return NULL;
    }
    return v;
}

/* Only the named members, each present. */
static bool members_exactly(json_t *o, const char *const *names, size_t n, size_t optional)
{
    size_t found = 0;
    for (size_t i = 0; i < n; i++) {
        if (json_object_get(o, names[i]))
            found++;
        else if (i < n - optional)
            return false;
    }
    return json_object_size(o) == found;
}

static const struct ticket_key *find_key(const struct ticket_keys *k, const char *kid, int64_t now,
                                         int64_t grace_s)
{
    for (size_t i = 0; i < k->n; i++) {
        const struct ticket_key *t = &k->v[i];
        if (strcmp(t->kid, kid) != 0)
            continue;
        if (t->retired == 0 || now - t->retired <= grace_s)
            return t;
        return NULL;
    }
    return NULL;
}

static enum ticket_result check_header(const struct ticket_keys *k, const unsigned char *p,
                                       size_t n, int64_t now, int64_t grace_s,
                                       const struct ticket_key **key)
{
    static const char *const names[] = {"alg", "kid", "typ"}; /* typ optional */
    enum ticket_result r = TICKET_MALFORMED;
    json_t *h = parse_object(p, n);

    if (!h || !members_exactly(h, names, 3, 1))
        goto out;
    const char *alg = json_string_value(json_object_get(h, "alg"));
    const char *kid = json_string_value(json_object_get(h, "kid"));
    json_t *typ = json_object_get(h, "typ");
    /* Exactly ES256: "none", HS256 (a public key as an HMAC secret) and
     * every other algorithm are refused before any key is looked at. */
    if (!alg || strcmp(alg, "ES256") != 0 || !kid || (typ && !json_is_string(typ)) ||
        (typ && strcmp(json_string_value(typ), "JWT") != 0))
        goto out;
    *key = find_key(k, kid, now, grace_s);
    r = *key ? TICKET_OK : TICKET_UNKNOWN_KEY;
out:
    json_decref(h);
    return r;
}

static enum ticket_result check_claims(const unsigned char *p, size_t n, const char *domain,
                                       int64_t now, char user[65], char uid_out[33],
                                       int64_t *iat_out, int64_t *exp_out)
{
    static const char *const names[] = {"iss", "sub", "uid", "dom", "iat", "exp", "jti"};
    enum ticket_result r = TICKET_MALFORMED;
    json_t *c = parse_object(p, n);

    if (!c || !members_exactly(c, names, 7, 0))
        goto out;
    const char *iss = json_string_value(json_object_get(c, "iss"));
    const char *sub = json_string_value(json_object_get(c, "sub"));
    const char *uid = json_string_value(json_object_get(c, "uid"));
    const char *dom = json_string_value(json_object_get(c, "dom"));
    json_t *iat = json_object_get(c, "iat"), *exp = json_object_get(c, "exp");
    if (!iss || strcmp(iss, "parley") != 0 || !sub || !dom || !json_is_integer(iat) ||
        !json_is_integer(exp) || !json_is_string(json_object_get(c, "jti")) ||
        !store_user_name_valid(sub) || !uid_ok(uid) ||
        json_integer_value(exp) <= json_integer_value(iat))
        goto out;
    if (json_integer_value(iat) > now + TICKET_CLOCK_SKEW) {
        r = TICKET_NOT_YET_VALID;
        goto out;
    }
    if (json_integer_value(exp) <= now) {
        r = TICKET_EXPIRED;
        goto out;
    }
    if (strcmp(dom, domain) != 0) {
        r = TICKET_WRONG_DOMAIN;
        goto out;
    }
    snprintf(user, 65, "%s", sub);
    if (uid_out)
        snprintf(uid_out, 33, "%s", uid);
    if (iat_out)
        *iat_out = json_integer_value(iat);
    if (exp_out)
        *exp_out = json_integer_value(exp);
    r = TICKET_OK;
out:
    json_decref(c);
    return r;
}

/* Strict base64url of one part into out. */
static bool decode_part(const char *p, size_t n, unsigned char *out, size_t cap, size_t *len)
{
    return n > 0 && base64_decode(BASE64_URL, strview_make(p, n), out, cap, len) == 0;
}

enum ticket_result ticket_verify(const struct ticket_keys *k, const char *token, size_t len,
                                 const char *domain, int64_t now, int64_t grace_s, char user[65],
                                 char uid[33], int64_t *iat, int64_t *exp)
{
    /* Each part decodes to at most 3/4 of the token. */
    unsigned char hdr[BASE64_DECODED_MAX(TICKET_MAX_LEN)], body[BASE64_DECODED_MAX(TICKET_MAX_LEN)];
    unsigned char sig[BASE64_DECODED_MAX(TICKET_MAX_LEN)];
    size_t hn = 0, bn = 0, sn = 0;
    const struct ticket_key *key = NULL;

    if (user)
        user[0] = '\0';
    if (!k || !token || !domain || !user || len == 0 || len > TICKET_MAX_LEN ||
        memchr(token, '\0', len))
        return TICKET_MALFORMED;
    const char *d1 = memchr(token, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
    if (!d1 || !d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)))
        return TICKET_MALFORMED;
    /* All three parts decode strictly before anything else is looked at;
     * the claims are parsed only once the signature holds. */
    if (!decode_part(token, (size_t)(d1 - token), hdr, sizeof(hdr), &hn) ||
        !decode_part(d1 + 1, (size_t)(d2 - d1 - 1), body, sizeof(body), &bn) ||
        !decode_part(d2 + 1, len - (size_t)(d2 + 1 - token), sig, sizeof(sig), &sn))
        return TICKET_MALFORMED;
    enum ticket_result r = check_header(k, hdr, hn, now, grace_s, &key);
    if (r != TICKET_OK)
        return r;
    if (sign_es256_verify(key->key, token, (size_t)(d2 - token), sig, sn) != 0)
        return TICKET_BAD_SIGNATURE;
    r = check_claims(body, bn, domain, now, user, uid, iat, exp);
    if (r != TICKET_OK)
        user[0] = '\0';
    return r;
}

/* --- the cache ----------------------------------------------------------- */

struct cache_entry {
    struct hmap_node node;
    struct cache_entry *older, *newer; /* insertion order */
    unsigned char digest[SIGN_SHA256_LEN];
    int64_t exp;
    char user[STORE_USER_NAME_MAX + 1];
};

struct ticket_cache {
    struct hmap map;
    size_t max;
    struct cache_entry *oldest, *newest;
};

struct ticket_cache *ticket_cache_new(size_t max_entries)
{
    if (max_entries == 0)
        return NULL;
    struct ticket_cache *c = calloc(1, sizeof(*c));
    if (!c || hmap_init(&c->map, max_entries < 4096 ? max_entries : 4096) != 0) {
        free(c);
        return NULL;
    }
    c->max = max_entries;
    return c;
}

static void cache_remove(struct ticket_cache *c, struct cache_entry *e)
{
    hmap_remove(&c->map, &e->node);
    if (e->older)
        e->older->newer = e->newer;
    else
        c->oldest = e->newer;
    if (e->newer)
        e->newer->older = e->older;
    else
        c->newest = e->older;
    free(e);
}

void ticket_cache_clear(struct ticket_cache *c)
{
    while (c && c->oldest)
        cache_remove(c, c->oldest);
}

void ticket_cache_free(struct ticket_cache *c)
{
    if (!c)
        return;
    ticket_cache_clear(c);
    hmap_destroy(&c->map);
    free(c);
}

size_t ticket_cache_count(const struct ticket_cache *c)
{
    return c ? c->map.count : 0;
}

static struct cache_entry *cache_find(struct ticket_cache *c, const unsigned char *digest,
                                      uint64_t h)
{
    for (struct hmap_node *n = hmap_first(&c->map, h); n; n = hmap_next(n, h)) {
        struct cache_entry *e = container_of(n, struct cache_entry, node);
        if (CRYPTO_memcmp(e->digest, digest, SIGN_SHA256_LEN) == 0)
            return e;
    }
    return NULL;
}

bool ticket_cache_lookup(struct ticket_cache *c, const char *token, size_t len, int64_t now,
                         char user[65])
{
    unsigned char digest[SIGN_SHA256_LEN];

    if (user)
        user[0] = '\0';
    if (!c || !token || !user || len == 0 || len > TICKET_MAX_LEN ||
        sign_sha256(token, len, digest) != 0)
        return false;
    struct cache_entry *e = cache_find(c, digest, hash_bytes(digest, sizeof(digest)));
    if (!e)
        return false;
    if (e->exp <= now) {
        cache_remove(c, e);
        return false;
    }
    memcpy(user, e->user, sizeof(e->user));
    return true;
}

void ticket_cache_insert(struct ticket_cache *c, const char *token, size_t len, const char *user,
                         int64_t exp)
{
    unsigned char digest[SIGN_SHA256_LEN];

    if (!c || !token || len == 0 || len > TICKET_MAX_LEN || !store_user_name_valid(user) ||
        sign_sha256(token, len, digest) != 0)
        return;
    uint64_t h = hash_bytes(digest, sizeof(digest));
    struct cache_entry *e = cache_find(c, digest, h);
    if (e)
        cache_remove(c, e);
    while (c->map.count >= c->max && c->oldest)
        cache_remove(c, c->oldest);
    e = calloc(1, sizeof(*e));
    if (!e)
        return; /* a cache: nothing is lost but a signature check */
    memcpy(e->digest, digest, sizeof(digest));
    e->exp = exp;
    snprintf(e->user, sizeof(e->user), "%s", user);
    e->older = c->newest;
    if (c->newest)
        c->newest->newer = e;
    else
        c->oldest = e;
    c->newest = e;
    hmap_insert(&c->map, &e->node, h);
}
