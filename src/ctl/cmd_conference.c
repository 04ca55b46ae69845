/*
 * parleyctl conference create|list|show|remove|allow|disallow: meetings
 * whose content (STATE_DIR/content/<uid>, written by the web services) its
 * organizer may change and the users and groups allowed may read. The
 * store is changed directly; no daemon is needed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/strbuf.h"
#include "ctl/ctl.h"
#include "store/store.h"

/* How deep a content directory may nest before removing it gives up (the
 * web side writes a flat directory; this only bounds the recursion). */
#define CONFERENCE_TREE_DEPTH 32

#define CONFERENCE_USAGE                                                                           \
    "usage: conference create NAME --organizer USER [--allow USER|GROUP]... | conference list | "  \
    "conference show NAME | conference remove NAME | conference allow|disallow NAME USER|GROUP"

static const char *conference_kind(enum store_member_kind kind)
{
    return kind == STORE_MEMBER_GROUP ? "group" : "user";
}

/* STATE_DIR/content/<uid>; the uid is checked to be what the store makes
 * (32 lowercase hex), so a tampered row cannot point elsewhere. */
static int conference_content_path(struct ctl *ctl, const char *uid, char *path, size_t cap)
{
    if (strlen(uid) != STORE_UID_LEN || strspn(uid, "0123456789abcdef") != STORE_UID_LEN)
        return -EINVAL;
    int n = snprintf(path, cap, "%s/content/%s", ctl->cfg->state_dir, uid);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

/*
 * Removes name (in the directory dirfd) and everything under it, never
 * following a symbolic link: each directory is opened with O_NOFOLLOW
 * relative to its parent, so a link planted in the tree is removed as a
 * link, not walked into. Returns 0 or a negative errno with what failed in
 * err.
 */
static int conference_remove_tree(int dirfd, const char *name, int depth, char *err, size_t errlen)
{
    if (depth > CONFERENCE_TREE_DEPTH) {
        snprintf(err, errlen, "%s: nested deeper than %d levels", name, CONFERENCE_TREE_DEPTH);
        return -ELOOP;
    }
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOTDIR || e == ELOOP) { /* a file or a link: itself only */
            if (unlinkat(dirfd, name, 0) == 0)
                return 0;
            e = errno;
        }
        snprintf(err, errlen, "%s: %s", name, strerror(e));
        return -e;
    }
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        snprintf(err, errlen, "%s: %s", name, strerror(e));
        return -e;
    }
    int rc = 0;
    struct dirent *ent;
    while (rc == 0 && (errno = 0, ent = readdir(d)) != NULL) {
        if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0)
            continue;
        if (unlinkat(fd, ent->d_name, 0) == 0)
            continue;
        if (errno == EISDIR || errno == EPERM) /* a directory (EPERM: some systems say so) */
            rc = conference_remove_tree(fd, ent->d_name, depth + 1, err, errlen);
        else {
            rc = -errno;
            snprintf(err, errlen, "%s/%s: %s", name, ent->d_name, strerror(-rc));
        }
    }
    if (rc == 0 && errno != 0) { /* readdir failed */
        rc = -errno;
        snprintf(err, errlen, "%s: %s", name, strerror(-rc));
    }
    closedir(d);
    if (rc == 0 && unlinkat(dirfd, name, AT_REMOVEDIR) != 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", name, strerror(-rc));
    }
    return rc;
}

/* Removes STATE_DIR/content/<uid> if it is there. */
static int conference_remove_content(struct ctl *ctl, const char *uid, char *err, size_t errlen)
{
    char path[4096];
    int rc = conference_content_path(ctl, uid, path, sizeof(path));
    if (rc < 0) {
        snprintf(err, errlen, "the conference's uid \"%s\" is not one the store makes", uid);
        return rc;
    }
    char *slash = strrchr(path, '/');
    *slash = '\0';
    int dirfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dirfd < 0) {
        int e = errno;
        if (e == ENOENT)
            return 0; /* no content was ever stored */
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    struct stat sb;
    if (fstatat(dirfd, slash + 1, &sb, AT_SYMLINK_NOFOLLOW) != 0 && errno == ENOENT) {
        close(dirfd);
        return 0;
    }
    char why[512] = "";
    rc = conference_remove_tree(dirfd, slash + 1, 0, why, sizeof(why));
    close(dirfd);
    if (rc < 0)
        snprintf(err, errlen, "%s/%s", path, why);
    return rc;
}

static int conference_create(struct ctl *ctl)
{
    bool missing = false;
    const char *organizer = ctl_take_option(ctl, "--organizer", &missing);
    const char *allow[64];
    size_t nallow = 0;
    for (const char *a; (a = ctl_take_option(ctl, "--allow", &missing)) != NULL;) {
        if (nallow == sizeof(allow) / sizeof(allow[0]))
            return ctl_usage(ctl,
                             "at most %zu --allow at creation; add more with `conference "
                             "allow`",
                             nallow);
        allow[nallow++] = a;
    }
    if (missing || ctl->argc != 2 || !organizer)
        return ctl_usage(ctl, "usage: conference create NAME --organizer USER "
                              "[--allow USER|GROUP]...");
    const char *name = ctl->argv[1];
    struct store *st;
    int rc = ctl_open_store(ctl, &st, 0);
    if (rc)
        return rc;
    struct store_conference c;
    int sr = store_conference_add(st, name, organizer);
    if (sr) {
        rc = ctl_fail(ctl, "%s", store_errmsg(st));
        return ctl_close_store(ctl, st, rc);
    }
    /* a conference is made whole or not at all: an allow entry that
     * cannot be made takes the conference back out */
    for (size_t i = 0; i < nallow && sr == 0; i++)
        sr = store_conference_allow(st, name, allow[i]);
    if (sr == 0)
        sr = store_conference_get(st, name, &c);
    if (sr) {
        rc = ctl_fail(ctl, "conference %s not created: %s", name, store_errmsg(st));
        if (store_conference_remove(st, name) != 0)
            rc = ctl_fail(ctl, "and it could not be taken out again: %s (conference remove %s)",
                          store_errmsg(st), name);
    }
    rc = ctl_close_store(ctl, st, rc);
    if (rc)
        return rc;
    json_t *allowed = json_array();
    struct strbuf msg = STRBUF_INIT;
    strbuf_printf(&msg, "created conference %s, organizer %s", c.name, c.organizer);
    for (size_t i = 0; i < nallow; i++) {
        json_array_append_new(allowed, json_string(allow[i]));
        strbuf_printf(&msg, "%s%s", i ? ", " : "; allowed: ", allow[i]);
    }
    ctl_done(ctl,
             json_pack("{s:s, s:s, s:s, s:I, s:o}", "name", c.name, "organizer", c.organizer, "uid",
                       c.uid, "created", (json_int_t)c.created, "allowed", allowed),
             strbuf_cstr(&msg));
    strbuf_free(&msg);
    return CTL_OK;
}

static int conference_remove(struct ctl *ctl)
{
    if (ctl->argc != 2)
        return ctl_usage(ctl, "usage: conference remove NAME");
    const char *name = ctl->argv[1];
    struct store *st;
    int rc = ctl_open_store(ctl, &st, 0);
    if (rc)
        return rc;
    struct store_conference c;
    int sr = store_conference_get(st, name, &c);
    if (sr == 0)
        sr = store_conference_remove(st, name);
    if (sr)
        rc = ctl_fail(ctl, "%s", store_errmsg(st));
    rc = ctl_close_store(ctl, st, rc);
    if (rc)
        return rc;
    /* the row is gone first: the web side stops serving the content
     * before it disappears, never the other way round */
    char err[1024];
    if (conference_remove_content(ctl, c.uid, err, sizeof(err)) != 0)
        return ctl_fail(ctl, "removed conference %s, but not its content: %s", name, err);
    char msg[200];
    snprintf(msg, sizeof(msg), "removed conference %s and its content", name);
    return ctl_done(ctl, json_pack("{s:s, s:s}", "removed", name, "uid", c.uid), msg);
}

static int conference_allow(struct ctl *ctl, bool allow)
{
    if (ctl->argc != 3)
        return ctl_usage(ctl, "usage: conference %s NAME USER|GROUP", allow ? "allow" : "disallow");
    const char *name = ctl->argv[1], *member = ctl->argv[2];
    struct store *st;
    int rc = ctl_open_store(ctl, &st, 0);
    if (rc)
        return rc;
    int sr = allow ? store_conference_allow(st, name, member)
                   : store_conference_disallow(st, name, member);
    if (sr)
        rc = ctl_fail(ctl, "%s", store_errmsg(st));
    rc = ctl_close_store(ctl, st, rc);
    if (rc)
        return rc;
    char msg[300];
    snprintf(msg, sizeof(msg), "%s %s %s %s", allow ? "allowed" : "disallowed", member,
             allow ? "in" : "from", name);
    return ctl_done(ctl, json_pack("{s:s, s:s}", "conference", name, "member", member), msg);
}

struct conference_list_ctx {
    json_t *arr;
    struct strbuf text;
};

static int conference_list_one(const struct store_conference *c, void *arg)
{
    struct conference_list_ctx *lc = arg;
    json_array_append_new(lc->arr, json_pack("{s:s, s:s, s:s, s:I}", "name", c->name, "organizer",
                                             c->organizer, "uid", c->uid, "created",
                                             (json_int_t)c->created));
    strbuf_printf(&lc->text, "%-24s organizer %s\n", c->name, c->organizer);
    return 0;
}

static int conference_list(struct ctl *ctl)
{
    if (ctl->argc != 1)
        return ctl_usage(ctl, "conference list takes no arguments");
    struct store *st;
    int rc = ctl_open_store(ctl, &st, STORE_READONLY);
    if (rc)
        return rc;
    struct conference_list_ctx lc = {json_array(), STRBUF_INIT};
    if (store_conference_list(st, conference_list_one, &lc) != 0)
        rc = ctl_fail(ctl, "cannot read the conferences: %s", store_errmsg(st));
    rc = ctl_close_store(ctl, st, rc);
    if (rc == CTL_OK) {
        if (json_array_size(lc.arr) == 0)
            strbuf_puts(&lc.text, "no conferences\n");
        ctl_done(ctl, json_pack("{s:O}", "conferences", lc.arr), strbuf_cstr(&lc.text));
    }
    json_decref(lc.arr);
    strbuf_free(&lc.text);
    return rc;
}

struct conference_show_ctx {
    json_t *allowed;
    struct strbuf text;
};

static int conference_show_one(enum store_member_kind kind, const char *name, void *arg)
{
    struct conference_show_ctx *sc = arg;
    json_array_append_new(sc->allowed,
                          json_pack("{s:s, s:s}", "name", name, "kind", conference_kind(kind)));
    strbuf_printf(&sc->text, "  %-6s %s\n", conference_kind(kind), name);
    return 0;
}

static int conference_show(struct ctl *ctl)
{
    if (ctl->argc != 2)
        return ctl_usage(ctl, "usage: conference show NAME");
    const char *name = ctl->argv[1];
    struct store *st;
    int rc = ctl_open_store(ctl, &st, STORE_READONLY);
    if (rc)
        return rc;
    struct conference_show_ctx sc = {json_array(), STRBUF_INIT};
    struct store_conference c;
    char content[4096] = "";
    int sr = store_conference_get(st, name, &c);
    if (sr == 0) {
        conference_content_path(ctl, c.uid, content, sizeof(content));
        strbuf_printf(&sc.text, "conference %s, organizer %s, uid %s\ncontent %s\nallowed:\n",
                      c.name, c.organizer, c.uid, content);
        sr = store_conference_allowed(st, name, conference_show_one, &sc);
    }
    if (sr)
        rc = ctl_fail(ctl, "%s", store_errmsg(st));
    rc = ctl_close_store(ctl, st, rc);
    if (rc == CTL_OK) {
        if (json_array_size(sc.allowed) == 0)
            strbuf_puts(&sc.text, "  (only the organizer)\n");
        ctl_done(ctl,
                 json_pack("{s:s, s:s, s:s, s:I, s:s, s:O}", "name", c.name, "organizer",
                           c.organizer, "uid", c.uid, "created", (json_int_t)c.created, "content",
                           content, "allowed", sc.allowed),
                 strbuf_cstr(&sc.text));
    }
    json_decref(sc.allowed);
    strbuf_free(&sc.text);
    return rc;
}

int cmd_conference(struct ctl *ctl)
{
    int rc = ctl_load_config(ctl);
    if (rc)
        return rc;
    const char *verb = ctl->argc ? ctl->argv[0] : "";
    if (strcmp(verb, "create") == 0)
        return conference_create(ctl);
    if (strcmp(verb, "remove") == 0)
        return conference_remove(ctl);
    if (strcmp(verb, "allow") == 0)
        return conference_allow(ctl, true);
    if (strcmp(verb, "disallow") == 0)
        return conference_allow(ctl, false);
    if (strcmp(verb, "list") == 0)
        return conference_list(ctl);
    if (strcmp(verb, "show") == 0)
        return conference_show(ctl);
    return ctl_usage(ctl, CONFERENCE_USAGE);
}
