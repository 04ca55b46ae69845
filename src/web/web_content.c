/*
 * web_content — a meeting's content (slides, handouts), encrypted at rest.
 *
 *   GET    /content/MEETING/        the files, as JSON (readers)
 *   GET    /content/MEETING/NAME    a file, or a byte range of it (readers)
 *   PUT    /content/MEETING/NAME    a file, created or replaced (the organizer)
 *   DELETE /content/MEETING/NAME    (the organizer)
 *
 * Readers are the meeting's organizer, the users it allows and the members
 * of the groups it allows (parleyctl conference allow). Ticket holders
 * only.
 *
 * Each file is a sealed file (store/sealed): AES-256-GCM in 64 KiB
 * segments under a key of its own, wrapped by STATE_DIR/content.key, and
 * bound to "MEETING-UID/NAME", so a file moved or swapped on disk is
 * refused, never served. On disk a file is STATE_DIR/content/UID/HEX.sealed
 * where HEX spells its name's bytes: no name can reach outside that
 * directory, whatever it holds. Quotas count the bytes on disk.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "http/response.h"
#include "web/web_priv.h"

#define CONTENT_NAME_MAX 120 /* bytes; spelt in hex it stays under NAME_MAX */
#define CONTENT_SUFFIX   ".sealed"

struct content_target {
    struct store_conference conf;
    char name[CONTENT_NAME_MAX + 1]; /* "" for the listing */
    char dir[4096];
    char file[4096 + 2 * CONTENT_NAME_MAX + 16];
    char context[STORE_UID_LEN + CONTENT_NAME_MAX + 2];
    bool organizer;
};

/* A file name a user may give: printable UTF-8 without '/', not starting
 * with '.', at most CONTENT_NAME_MAX bytes. */
static bool content_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CONTENT_NAME_MAX || s[0] == '.')
        return false;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '/' || c == '\\')
            return false;
        size_t cl = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (cl == 0 || i + cl > n)
            return false;
        for (size_t k = 1; k < cl; k++)
            if (((unsigned char)s[i + k] >> 6) != 2)
                return false;
        i += cl;
    }
    return true;
}

static void hex_name(const char *name, char *out)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        out[o++] = hex[*p >> 4];
        out[o++] = hex[*p & 15];
    }
    out[o] = '\0';
}

/* The name a file on disk spells, or -EINVAL for anything else there. */
static int unhex_name(const char *file, char *out, size_t cap)
{
    size_t n = strlen(file), sl = strlen(CONTENT_SUFFIX);
    if (n <= sl || strcmp(file + n - sl, CONTENT_SUFFIX) != 0 || (n - sl) % 2 ||
        (n - sl) / 2 >= cap)
        return -EINVAL;
    size_t o = 0;
    for (size_t i = 0; i < n - sl; i += 2) {
        int v = 0;
        for (int k = 0; k < 2; k++) {
            char c = file[i + (size_t)k];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (d < 0)
                return -EINVAL;
            v = v * 16 + d;
        }
        out[o++] = (char)v;
    }
    out[o] = '\0';
    return content_name_valid(out) ? 0 : -EINVAL;
}

/* Bytes of the sealed files under dir (one level), skipping skip_file. */
static uint64_t dir_bytes(const char *dir, const char *skip_file)
{
    uint64_t total = 0;
    DIR *dp = opendir(dir);
    if (!dp)
        return 0;
    struct dirent *e;
    char path[8192];
    while ((e = readdir(dp)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (skip_file && strcmp(path, skip_file) == 0)
            continue;
        struct stat st;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
            total += (uint64_t)st.st_size;
    }
    closedir(dp);
    return total;
}

static uint64_t content_total_bytes(const char *root, const char *skip_file)
{
    uint64_t total = 0;
    DIR *dp = opendir(root);
    if (!dp)
        return 0;
    struct dirent *e;
    char path[8192];
    while ((e = readdir(dp)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", root, e->d_name);
        total += dir_bytes(path, skip_file);
    }
    closedir(dp);
    return total;
}

/* Resolves MEETING[/NAME] and the caller's rights; answers and returns
 * -EACCES when it goes no further. */
static int content_target(struct web_req *r, const char *rest, struct content_target *t)
{
    struct web *w = r->w;
    memset(t, 0, sizeof(*t));
    const char *slash = strchr(rest, '/');
    size_t ml = slash ? (size_t)(slash - rest) : strlen(rest);
    char meeting[STORE_USER_NAME_MAX + 1];
    if (ml == 0 || ml > STORE_USER_NAME_MAX) {
        web_reply_text(r, ml ? 400 : 404, ml ? "bad meeting name" : "not found");
        return -EACCES;
    }
    memcpy(meeting, rest, ml);
    meeting[ml] = '\0';
    const char *name = slash ? slash + 1 : "";
    if (!store_user_name_valid(meeting)) {
        web_reply_text(r, 400, "bad meeting name");
        return -EACCES;
    }
    if (name[0] && !content_name_valid(name)) {
        web_reply_text(r, 400,
                       "bad file name: 1 to 120 bytes of printable UTF-8, no '/' or '\\', "
                       "not starting with '.'");
        return -EACCES;
    }
    int rc = store_conference_get(w->env.store, meeting, &t->conf);
    if (rc == -ENOENT) {
        web_reply_text(r, 404, "no such meeting");
        return -EACCES;
    }
    bool may_read = false;
    if (rc == 0)
        rc = store_conference_access(w->env.store, meeting, r->user, WEB_GROUP_DEPTH, &may_read,
                                     &t->organizer);
    if (rc != 0) {
        log_error("http.store_failed", "what", "conference", "reason", store_errmsg(w->env.store));
        web_reply_text(r, 500, "the store could not be read");
        return -EACCES;
    }
    if (!may_read) {
        web_reply_text(r, 403, "you are not allowed into this meeting's content");
        return -EACCES;
    }
    snprintf(t->name, sizeof(t->name), "%s", name);
    snprintf(t->dir, sizeof(t->dir), "%s/content/%s", w->state_dir, t->conf.uid);
    char hex[2 * CONTENT_NAME_MAX + 1];
    hex_name(t->name, hex);
    snprintf(t->file, sizeof(t->file), "%s/%s%s", t->dir, hex, CONTENT_SUFFIX);
    snprintf(t->context, sizeof(t->context), "%s/%s", t->conf.uid, t->name);
    return 0;
}

static int mkdir_private(const char *path)
{
    if (mkdir(path, 0700) == 0 || errno == EEXIST)
        return 0;
    return -errno;
}

static void content_list(struct web_req *r, struct content_target *t)
{
    json_t *files = json_array();
    DIR *dp = opendir(t->dir);
    struct dirent *e;
    while (files && dp && (e = readdir(dp)) != NULL) {
        char name[CONTENT_NAME_MAX + 1], path[8192], err[160];
        if (unhex_name(e->d_name, name, sizeof(name)) != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", t->dir, e->d_name);
        char context[sizeof(t->context)];
        snprintf(context, sizeof(context), "%s/%s", t->conf.uid, name);
        struct sealed_file *f = NULL;
        struct stat st;
        if (stat(path, &st) != 0 ||
            sealed_open(r->w->master, path, context, &f, err, sizeof(err)) != 0) {
            log_error("content.corrupt", "meeting", t->conf.name, "file", name, "reason", err);
            continue;
        }
        json_array_append_new(files, json_pack("{s:s, s:I, s:I}", "name", name, "size",
                                               (json_int_t)sealed_size(f), "modified",
                                               (json_int_t)st.st_mtime));
        sealed_close(f);
    }
    if (dp)
        closedir(dp);
    web_reply_json(r, 200,
                   json_pack("{s:s, s:s, s:b, s:o}", "meeting", t->conf.name, "organizer",
                             t->conf.organizer, "may_write", t->organizer, "files", files));
}

static void content_put(struct web_req *r, struct content_target *t)
{
    struct web *w = r->w;
    if (!t->organizer) {
        web_reply_text(r, 403, "only the meeting's organizer may add or change its content");
        return;
    }
    const struct http_request *h = r->http;
    if (h->body_len > w->cfg.content_max_file) {
        web_reply_text(r, 413, "the file is larger than https.content_max_file");
        return;
    }
    char root[4096];
    snprintf(root, sizeof(root), "%s/content", w->state_dir);
    uint64_t in_meeting = dir_bytes(t->dir, t->file);
    if (in_meeting + h->body_len > w->cfg.content_quota_meeting) {
        web_reply_text(r, 413, "the meeting's content would pass https.content_quota_meeting");
        return;
    }
    if (content_total_bytes(root, t->file) + h->body_len > w->cfg.content_quota_total) {
        web_reply_text(r, 413, "the server's content would pass https.content_quota_total");
        return;
    }
    int rc = mkdir_private(root);
    if (rc == 0)
        rc = mkdir_private(t->dir);
    struct stat st;
    bool existed = stat(t->file, &st) == 0;
    char err[200] = "";
    if (rc == 0)
        rc = sealed_write_file(w->master, t->file, t->context, h->body, h->body_len, err,
                               sizeof(err));
    else
        snprintf(err, sizeof(err), "%s: %s", t->dir, strerror(-rc));
    if (rc != 0) {
        log_error("content.write_failed", "meeting", t->conf.name, "file", t->name, "reason", err);
        web_reply_text(r, 500, "the file could not be stored");
        return;
    }
    log_info("content.stored", "meeting", t->conf.name, "file", t->name, "bytes",
             LOG_INT(h->body_len), "user", r->user);
    web_reply_begin(r, existed ? 204 : 201);
    if (!existed)
        http_response_headerf(r->out, "Location", "%s", h->path);
    web_reply_end(r, NULL, NULL, 0);
}

/* Range: bytes=A-B | A- | -N (one range). 1: no usable Range (send all);
 * 0: [*from, *to] set; -1: unsatisfiable. */
static int parse_range(const char *v, uint64_t size, uint64_t *from, uint64_t *to)
{
    if (!v || strncmp(v, "bytes=", 6) != 0 || strchr(v, ','))
        return 1;
    const char *p = v + 6, *dash = strchr(p, '-');
    if (!dash)
        return 1;
    unsigned long long a = 0, b = 0;
    bool has_a = dash > p, has_b = dash[1] != '\0';
    if ((has_a && strview_to_u64(strview_make(p, (size_t)(dash - p)), UINT64_MAX, &a) != 0) ||
        (has_b && strview_to_u64(strview_cstr(dash + 1), UINT64_MAX, &b) != 0) ||
        (!has_a && !has_b))
        return 1;
    if (!has_a) { /* the last b bytes */
        if (b == 0 || size == 0)
            return -1;
        *from = b >= size ? 0 : size - b;
        *to = size - 1;
        return 0;
    }
    if (a >= size)
        return -1;
    if (has_b && b < a)
        return 1;
    *from = a;
    *to = has_b && b < size ? b : size - 1;
    return 0;
}

static void content_disposition(struct web_req *r, const char *name)
{
    /* filename= with anything unusual replaced; filename*= the exact bytes */
    struct strbuf v = STRBUF_INIT;
    strbuf_puts(&v, "attachment; filename=\"");
    for (const char *p = name; *p; p++)
        strbuf_putc(&v, ((unsigned char)*p < 0x80 && *p != '"' && *p != '%') ? *p : '_');
    strbuf_puts(&v, "\"; filename*=UTF-8''");
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("!#$&+-.^_`|~", *p))
            strbuf_putc(&v, (char)*p);
        else
            strbuf_printf(&v, "%%%c%c", hex[*p >> 4], hex[*p & 15]);
    }
    http_response_header(r->out, "Content-Disposition", strbuf_cstr(&v));
    strbuf_free(&v);
}

static void content_get(struct web_req *r, struct content_target *t)
{
    struct web *w = r->w;
    struct sealed_file *f = NULL;
    char err[200] = "";
    int rc = sealed_open(w->master, t->file, t->context, &f, err, sizeof(err));
    if (rc == -ENOENT) {
        web_reply_text(r, 404, "no such file");
        return;
    }
    if (rc != 0) {
        log_error("content.corrupt", "meeting", t->conf.name, "file", t->name, "reason", err);
        web_reply_text(r, 500, "the stored file failed its integrity check and is not served");
        return;
    }
    uint64_t size = sealed_size(f), from = 0, to = size ? size - 1 : 0;
    int range = parse_range(http_request_header(r->http, "Range"), size, &from, &to);
    if (range < 0) {
        sealed_close(f);
        web_reply_begin(r, 416);
        http_response_headerf(r->out, "Content-Range", "bytes */%llu", (unsigned long long)size);
        web_reply_end(r, NULL, NULL, 0);
        return;
    }
    size_t len = size ? (size_t)(to - from + 1) : 0;
    unsigned char *buf = len && !r->head ? malloc(len) : NULL;
    if (len && !r->head && !buf) {
        sealed_close(f);
        web_reply_text(r, 500, "out of memory");
        return;
    }
    rc = (len && !r->head) ? sealed_read(f, from, buf, len, err, sizeof(err)) : 0;
    sealed_close(f);
    if (rc != 0) {
        free(buf);
        log_error("content.corrupt", "meeting", t->conf.name, "file", t->name, "reason", err);
        web_reply_text(r, 500, "the stored file failed its integrity check and is not served");
        return;
    }
    web_reply_begin(r, range == 0 ? 206 : 200);
    http_response_header(r->out, "Accept-Ranges", "bytes");
    if (range == 0)
        http_response_headerf(r->out, "Content-Range", "bytes %llu-%llu/%llu",
                              (unsigned long long)from, (unsigned long long)to,
                              (unsigned long long)size);
    content_disposition(r, t->name);
    /* HEAD: the length of what GET would send, without reading it */
    http_response_header(r->out, "Content-Type", "application/octet-stream");
    http_response_end(r->out, buf, len, r->head, r->close);
    r->bytes = r->head ? 0 : len;
    free(buf);
}

static void content_delete(struct web_req *r, struct content_target *t)
{
    if (!t->organizer) {
        web_reply_text(r, 403, "only the meeting's organizer may remove its content");
        return;
    }
    if (unlink(t->file) != 0) {
        int e = errno;
        if (e == ENOENT) {
            web_reply_text(r, 404, "no such file");
            return;
        }
        log_error("content.write_failed", "meeting", t->conf.name, "file", t->name, "reason",
                  strerror(e));
        web_reply_text(r, 500, "the file could not be removed");
        return;
    }
    log_info("content.removed", "meeting", t->conf.name, "file", t->name, "user", r->user);
    web_reply_begin(r, 204);
    web_reply_end(r, NULL, NULL, 0);
}

void web_content_handle(struct web_req *r, const char *rest)
{
    if (web_auth_request(r, WEB_AUTH_BEARER) != 0)
        return;
    struct content_target *t = malloc(sizeof(*t));
    if (!t) {
        web_reply_text(r, 500, "out of memory");
        return;
    }
    if (content_target(r, rest, t) != 0)
        goto out;
    enum http_method m = r->http->method;
    if (!t->name[0]) {
        if (m == HTTP_M_GET || m == HTTP_M_HEAD) {
            content_list(r, t);
        } else {
            web_reply_begin(r, 405);
            http_response_header(r->out, "Allow", "GET, HEAD");
            web_reply_end(r, "text/plain; charset=utf-8", "method not allowed\n", 19);
        }
    } else if (m == HTTP_M_GET || m == HTTP_M_HEAD) {
        content_get(r, t);
    } else if (m == HTTP_M_PUT) {
        content_put(r, t);
    } else if (m == HTTP_M_DELETE) {
        content_delete(r, t);
    } else {
        web_reply_begin(r, 405);
        http_response_header(r->out, "Allow", "GET, HEAD, PUT, DELETE");
        web_reply_end(r, "text/plain; charset=utf-8", "method not allowed\n", 19);
    }
out:
    free(t);
}
