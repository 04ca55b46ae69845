/*
 * web: the HTTPS services end to end through web_handle(), over a real
 * store (a temporary file), the SIP core's throttle and digest checker,
 * and a fake clock: routing, tickets (Basic, Digest, Bearer), CardDAV,
 * vCard, group expansion, meeting content and relay credentials. No
 * network: requests are made with http_request_new() and each response is
 * parsed from the text web_handle() writes (and checked for the headers
 * every answer carries).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "core/clock.h"
#include "core/prom.h"
#include "core/log.h"
#include "core/strbuf.h"
#include "core/strview.h"
#include "core/timer.h"
#include "crypto/digest.h"
#include "crypto/encoding.h"
#include "http/request.h"
#include "registrar/auth.h"
#include "registrar/throttle.h"
#include "store/store.h"
#include "web/ticket.h"
#include "web/web.h"
#include "web/web_priv.h"
#include "xml/xml.h"

#define DOMAIN       "example.test"
#define WALL0        1700000000LL
#define LIFE         3600
#define MAX_FAILURES 3
#define BACKOFF_MS   60000
#define BOOK         "/dav/addressbooks/global/"
#define NS_DAV       "DAV:"

/* 13 times e-acute (2 bytes), euro (3) and G clef (4): 117 bytes */
#define MB         "\xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9e"
#define MB13       MB MB MB MB MB MB MB MB MB MB MB MB MB
#define CAROL_NAME "Carol " MB13

struct fx {
    char dir[64];
    char db[128];
    char state[128];
    struct clock_fake clock;
    struct timer_heap *timers;
    struct store *st;
    struct throttle *throttle;
    struct auth *auth;
    struct web *w;
    struct web_config cfg;
    struct web_peer peer;
    bool no_keepalive; /* requests as HTTP/1.1 with Connection: close */
    int relay_rc;
    unsigned relay_calls;
    char relay_user[STORE_USER_NAME_MAX + 1];
};

static const struct {
    const char *name, *password, *display, *email, *number;
} users[] = {
    {"alice", "alice-pw", "Alice Liddell", "alice@example.test", "+15551230001"},
    {"bob", "bob-pw", "Bob, Builder; Jr\\", "", ""},
    {"carol", "carol-pw", CAROL_NAME, "", ""},
    {"dave", "dave-pw", "", "", ""},
};

/* --- the fixture ----------------------------------------------------------- */

static int relay_fake(void *arg, const char *user, struct web_relay_grant *out)
{
    struct fx *fx = arg;
    fx->relay_calls++;
    snprintf(fx->relay_user, sizeof(fx->relay_user), "%s", user);
    if (fx->relay_rc)
        return fx->relay_rc;
    snprintf(out->username, sizeof(out->username), "%lld:%s", WALL0 + 86400, user);
    snprintf(out->password, sizeof(out->password), "c2VjcmV0LXBhc3N3b3Jk");
    out->ttl_s = 86400;
    snprintf(out->uris[0], sizeof(out->uris[0]), "turn:relay.example.test?transport=udp");
    snprintf(out->uris[1], sizeof(out->uris[1]), "turns:relay.example.test?transport=tcp");
    out->nuris = 2;
    return 0;
}

#define METRICS_TEXT "# HELP x_total X.\n# TYPE x_total counter\nx_total 1\n"

static int metrics_fake(void *arg, struct strbuf *out)
{
    (void)arg;
    strbuf_puts(out, METRICS_TEXT);
    return 0;
}

static void add_user(struct store *st, const char *name, const char *password)
{
    char md5[DIGEST_HEX_BUF], sha[DIGEST_HEX_BUF];
    assert_int_equal(digest_ha1(DIGEST_ALG_MD5, name, DOMAIN, password, md5), 0);
    assert_int_equal(digest_ha1(DIGEST_ALG_SHA256, name, DOMAIN, password, sha), 0);
    assert_int_equal(store_user_add(st, name, md5, sha), 0);
}

static struct web_config default_config(void)
{
    struct web_config c = {
        .domain = DOMAIN,
        .realm = DOMAIN,
        .allow_md5 = true,
        .allow_sha256 = true,
        .ticket_lifetime_s = LIFE,
        .max_body_size = 1 << 20,
        .content_max_file = 4 << 20,
        .content_quota_meeting = 16 << 20,
        .content_quota_total = 64 << 20,
    };
    return c;
}

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/parley-web-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->db, sizeof(fx->db), "%s/parley.db", fx->dir);
    snprintf(fx->state, sizeof(fx->state), "%s/state", fx->dir);
    assert_int_equal(mkdir(fx->state, 0700), 0);
    clock_fake_init(&fx->clock, 5000000, WALL0);
    fx->timers = timer_heap_new(&fx->clock.base);
    assert_non_null(fx->timers);

    char err[256];
    assert_int_equal(store_open(fx->db, STORE_CREATE, &fx->st, err, sizeof(err)), 0);
    store_set_clock(fx->st, &fx->clock.base);
    for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++) {
        add_user(fx->st, users[i].name, users[i].password);
        assert_int_equal(
            store_user_set_profile(fx->st, users[i].name, users[i].display, users[i].email), 0);
        if (users[i].number[0])
            assert_int_equal(store_user_set_number(fx->st, users[i].name, users[i].number), 0);
    }
    /* team -> alice, sub; sub -> bob, alice, team: a cycle */
    assert_int_equal(store_group_add(fx->st, "team", "Team"), 0);
    assert_int_equal(store_group_add(fx->st, "sub", "Sub team"), 0);
    assert_int_equal(store_group_member_add(fx->st, "team", "alice"), 0);
    assert_int_equal(store_group_member_add(fx->st, "team", "sub"), 0);
    assert_int_equal(store_group_member_add(fx->st, "sub", "bob"), 0);
    assert_int_equal(store_group_member_add(fx->st, "sub", "alice"), 0);
    assert_int_equal(store_group_member_add(fx->st, "sub", "team"), 0);
    /* standup: alice organizes, carol allowed, and sub's members (bob) */
    assert_int_equal(store_conference_add(fx->st, "standup", "alice"), 0);
    assert_int_equal(store_conference_allow(fx->st, "standup", "carol"), 0);
    assert_int_equal(store_conference_allow(fx->st, "standup", "sub"), 0);
    assert_int_equal(store_conference_add(fx->st, "retro", "alice"), 0);

    struct throttle_config tc = {
        .max_failures = MAX_FAILURES,
        .max_source_failures = 1000,
        .max_user_failures = 1000,
        .window_ms = 600000,
        .backoff_ms = BACKOFF_MS,
        .backoff_max_ms = 8 * BACKOFF_MS,
        .trust_ms = 3600000,
        .max_entries = 1000,
    };
    fx->throttle = throttle_new(fx->timers, &tc);
    assert_non_null(fx->throttle);
    struct auth_config ac = {
        .realm = DOMAIN,
        .algorithms = {DIGEST_ALG_SHA256, DIGEST_ALG_MD5},
        .nalgorithms = 2,
    };
    fx->auth = auth_new(&fx->clock.base, &ac);
    assert_non_null(fx->auth);

    fx->cfg = default_config();
    struct web_env env = {
        .store = fx->st,
        .throttle = fx->throttle,
        .auth = fx->auth,
        .clock = &fx->clock.base,
        .state_dir = fx->state,
        .relay_credentials = relay_fake,
        .metrics = metrics_fake,
        .arg = fx,
    };
    assert_int_equal(web_new(&env, &fx->cfg, &fx->w, err, sizeof(err)), 0);
    struct stat sb;
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", fx->state, TICKET_KEYS_FILE);
    assert_int_equal(stat(path, &sb), 0);
    snprintf(path, sizeof(path), "%s/content.key", fx->state);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 077, 0);

    fx->peer.conn = 7;
    assert_int_equal(netaddr_parse("192.0.2.10:40000", &fx->peer.addr), 0);
    *state = fx;
    return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    web_free(fx->w);
    auth_free(fx->auth);
    throttle_free(fx->throttle);
    timer_heap_free(fx->timers);
    store_close(fx->st);
    nftw(fx->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    log_set_level(LOG_LEVEL_ERROR);
    return digest_init(NULL, NULL);
}

static int group_teardown(void **state)
{
    (void)state;
    digest_cleanup();
    return 0;
}

/* What parleyctl does: a second connection to the store, so that the
 * daemon's handle sees the commit in PRAGMA data_version. */
static struct store *other_handle(struct fx *fx)
{
    struct store *st = NULL;
    char err[256];
    assert_int_equal(store_open(fx->db, 0, &st, err, sizeof(err)), 0);
    return st;
}

/* --- requests and responses ------------------------------------------------ */

#define MAXH 40

struct resp {
    struct strbuf raw;
    char *head;
    int status;
    size_t nh;
    char *hn[MAXH], *hv[MAXH];
    const unsigned char *body;
    size_t len;
    bool close;
};

static void resp_free(struct resp *r)
{
    strbuf_free(&r->raw);
    free(r->head);
    memset(r, 0, sizeof(*r));
}

static const char *hdr(const struct resp *r, const char *name)
{
    for (size_t i = 0; i < r->nh; i++)
        if (strcasecmp(r->hn[i], name) == 0)
            return r->hv[i];
    return NULL;
}

/* The first header of that name, which must be there. */
static const char *hdrv(const struct resp *r, const char *name)
{
    const char *v = hdr(r, name);
    if (!v)
        fail_msg("no %s header in a %d response", name, r->status);
    return v;
}

/* The first header of that name whose value holds sub. */
static const char *hdr_with(const struct resp *r, const char *name, const char *sub)
{
    for (size_t i = 0; i < r->nh; i++)
        if (strcasecmp(r->hn[i], name) == 0 && strstr(r->hv[i], sub))
            return r->hv[i];
    return NULL;
}

static size_t hdr_count(const struct resp *r, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < r->nh; i++)
        n += strcasecmp(r->hn[i], name) == 0;
    return n;
}

static const char *body(const struct resp *r)
{
    return r->body ? (const char *)r->body : "";
}

/* Parses the one response in r->raw, checking what every answer has. */
static void resp_parse(struct resp *r, bool head_only)
{
    const char *p = strbuf_cstr(&r->raw);
    const char *end = strstr(p, "\r\n\r\n");
    assert_non_null(end);
    size_t hl = (size_t)(end - p);
    r->head = malloc(hl + 3);
    assert_non_null(r->head);
    memcpy(r->head, p, hl);
    memcpy(r->head + hl, "\r\n", 3);
    r->body = (const unsigned char *)end + 4;
    r->len = r->raw.len - hl - 4;

    assert_memory_equal(r->head, "HTTP/1.1 ", 9);
    r->status = atoi(r->head + 9);
    char *line = strstr(r->head, "\r\n") + 2;
    while (*line) {
        char *eol = strstr(line, "\r\n");
        *eol = '\0';
        char *colon = strchr(line, ':');
        assert_non_null(colon);
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ')
            v++;
        assert_true(r->nh < MAXH);
        r->hn[r->nh] = line;
        r->hv[r->nh] = v;
        r->nh++;
        line = eol + 2;
    }
    /* every answer: HSTS, nosniff, and one body of the length it says */
    assert_non_null(hdr_with(r, "Strict-Transport-Security", "max-age="));
    assert_non_null(hdr_with(r, "X-Content-Type-Options", "nosniff"));
    const char *cl = hdr(r, "Content-Length");
    if (r->status == 204 || r->status == 304) {
        assert_null(cl);
        assert_int_equal(r->len, 0);
    } else {
        assert_non_null(cl);
        if (head_only)
            assert_int_equal(r->len, 0);
        else
            assert_int_equal(strtoull(cl, NULL, 10), r->len);
    }
}

/* One request: hdrs is name, value, ..., NULL; authz the Authorization
 * value (NULL: none). Returns the status. */
static int call(struct fx *fx, struct resp *r, const char *method, const char *target,
                const char *authz, const char *const *hdrs, const void *data, size_t len)
{
    resp_free(r);
    struct http_span names[16], values[16];
    size_t n = 0;
    if (authz) {
        names[n] = (struct http_span){"Authorization", 13};
        values[n] = (struct http_span){authz, strlen(authz)};
        n++;
    }
    for (size_t i = 0; hdrs && hdrs[2 * i]; i++, n++) {
        assert_true(n < 16);
        names[n] = (struct http_span){hdrs[2 * i], strlen(hdrs[2 * i])};
        values[n] = (struct http_span){hdrs[2 * i + 1], strlen(hdrs[2 * i + 1])};
    }
    struct http_request *rq = NULL;
    assert_int_equal(http_request_new(method, (struct http_span){target, strlen(target)}, 1, names,
                                      values, n, &rq),
                     0);
    rq->keep_alive = !fx->no_keepalive;
    if (len) {
        rq->body = malloc(len);
        assert_non_null(rq->body);
        memcpy(rq->body, data, len);
        rq->body_len = len;
    }
    bool close = true;
    web_handle(fx->w, &fx->peer, rq, &r->raw, &close);
    assert_false(r->raw.err);
    r->close = close;
    resp_parse(r, rq->method == HTTP_M_HEAD);
    http_request_free(rq);
    return r->status;
}

static int get(struct fx *fx, struct resp *r, const char *target, const char *authz)
{
    return call(fx, r, "GET", target, authz, NULL, NULL, 0);
}

static void basic_authz(char *out, size_t cap, const char *user, const char *password)
{
    char up[256];
    int n = snprintf(up, sizeof(up), "%s:%s", user, password);
    assert_true(n > 0 && (size_t)n < sizeof(up));
    memcpy(out, "Basic ", 7);
    assert_int_equal(base64_encode(BASE64_STD, up, (size_t)n, out + 6, cap - 6, NULL), 0);
}

/* POST /auth/ticket with Basic; authz gets "Bearer TICKET". */
static void login(struct fx *fx, const char *user, const char *password, char *authz, size_t cap)
{
    char b[512];
    basic_authz(b, sizeof(b), user, password);
    struct resp r = {0};
    assert_int_equal(call(fx, &r, "POST", "/auth/ticket", b, NULL, NULL, 0), 200);
    json_t *doc = json_loadb(body(&r), r.len, 0, NULL);
    assert_non_null(doc);
    const char *t = json_string_value(json_object_get(doc, "ticket"));
    assert_non_null(t);
    assert_true(strlen(t) + 8 < cap);
    snprintf(authz, cap, "Bearer %s", t);
    json_decref(doc);
    resp_free(&r);
}

static int user_index(const char *name)
{
    for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++)
        if (strcmp(users[i].name, name) == 0)
            return (int)i;
    fail_msg("no user %s", name);
    return -1;
}

static void login_as(struct fx *fx, const char *user, char *authz, size_t cap)
{
    login(fx, user, users[user_index(user)].password, authz, cap);
}

/* The 8-4-4-4-12 id of a user's or group's card. */
static void card_uuid(struct store *st, const char *name, char out[37])
{
    struct store_user u;
    struct store_group g;
    if (store_user_get(st, name, &u) == 0)
        web_book_uuid(u.uid, out);
    else if (store_group_get(st, name, &g) == 0)
        web_book_uuid(g.uid, out);
    else
        fail_msg("no card for %s", name);
}

static void card_href(struct store *st, const char *name, char out[128])
{
    char uuid[37];
    card_uuid(st, name, uuid);
    snprintf(out, 128, BOOK "%s.vcf", uuid);
}

/* --- multistatus ----------------------------------------------------------- */

struct ms_entry {
    char href[200];
    int status;        /* of the response itself; 0 when it has propstats */
    char ok[600];      /* local names of the 200 properties, "name," each */
    char missing[300]; /* of the 404 ones */
    char etag[32];
};

struct ms {
    size_t n;
    struct ms_entry e[24];
    char token[200];
};

static void copy_view(struct strview v, char *out, size_t cap)
{
    assert_true(v.n < cap);
    if (v.n)
        memcpy(out, v.p, v.n);
    out[v.n] = '\0';
}

static int status_of(const struct xml_node *n)
{
    char s[64];
    copy_view(xml_text_trimmed(n), s, sizeof(s));
    assert_memory_equal(s, "HTTP/1.1 ", 9);
    return atoi(s + 9);
}

static void ms_parse(const struct resp *r, struct ms *out)
{
    memset(out, 0, sizeof(*out));
    assert_int_equal(r->status, 207);
    assert_non_null(strstr(hdr(r, "Content-Type"), "application/xml"));
    struct xml_doc *doc = NULL;
    char err[128];
    assert_int_equal(xml_parse(body(r), r->len, &doc, err, sizeof(err)), 0);
    const struct xml_node *root = xml_root(doc);
    assert_true(strview_eq(root->ns, NS_DAV) && strview_eq(root->local, "multistatus"));
    for (const struct xml_node *c = xml_child(root, NS_DAV, "response"); c;
         c = xml_next(c, NS_DAV, "response")) {
        assert_true(out->n < sizeof(out->e) / sizeof(out->e[0]));
        struct ms_entry *e = &out->e[out->n++];
        const struct xml_node *h = xml_child(c, NS_DAV, "href");
        assert_non_null(h);
        copy_view(xml_text_trimmed(h), e->href, sizeof(e->href));
        const struct xml_node *st = xml_child(c, NS_DAV, "status");
        if (st)
            e->status = status_of(st);
        for (const struct xml_node *ps = xml_child(c, NS_DAV, "propstat"); ps;
             ps = xml_next(ps, NS_DAV, "propstat")) {
            int code = status_of(xml_child(ps, NS_DAV, "status"));
            assert_true(code == 200 || code == 404);
            char *list = code == 200 ? e->ok : e->missing;
            size_t cap = code == 200 ? sizeof(e->ok) : sizeof(e->missing);
            const struct xml_node *prop = xml_child(ps, NS_DAV, "prop");
            assert_non_null(prop);
            for (const struct xml_node *p = prop->first_child; p; p = p->next) {
                size_t l = strlen(list);
                assert_true(l + p->local.n + 2 < cap);
                memcpy(list + l, p->local.p, p->local.n);
                memcpy(list + l + p->local.n, ",", 2);
                if (code == 200 && strview_eq(p->ns, NS_DAV) && strview_eq(p->local, "getetag")) {
                    /* the quotes come as &quot; */
                    char raw[64];
                    copy_view(xml_text_trimmed(p), raw, sizeof(raw));
                    assert_memory_equal(raw, "&quot;", 6);
                    size_t rl = strlen(raw);
                    assert_string_equal(raw + rl - 6, "&quot;");
                    snprintf(e->etag, sizeof(e->etag), "\"%.*s\"", (int)(rl - 12), raw + 6);
                }
            }
        }
    }
    const struct xml_node *tok = xml_child(root, NS_DAV, "sync-token");
    if (tok)
        copy_view(xml_text_trimmed(tok), out->token, sizeof(out->token));
    xml_free(doc);
}

static const struct ms_entry *ms_find(const struct ms *m, const char *href)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->e[i].href, href) == 0)
            return &m->e[i];
    return NULL;
}

static bool has_prop(const char *list, const char *name)
{
    char want[80];
    snprintf(want, sizeof(want), "%s,", name);
    for (const char *p = list; (p = strstr(p, want)) != NULL; p++)
        if (p == list || p[-1] == ',')
            return true;
    return false;
}

/* The hrefs of every card: users and groups of the fixture. */
static const char *const all_cards[] = {"alice", "bob", "carol", "dave", "team", "sub"};
#define NCARDS (sizeof(all_cards) / sizeof(all_cards[0]))

/* --- 1. routing ------------------------------------------------------------ */

static void test_routing(void **state)
{
    struct fx *fx = *state;
    struct resp r = {0};
    char bearer[2048];
    login_as(fx, "alice", bearer, sizeof(bearer));

    assert_int_equal(get(fx, &r, "/", NULL), 404);
    assert_int_equal(get(fx, &r, "/nope", bearer), 404);
    assert_int_equal(get(fx, &r, "/auth/ticketx", NULL), 404);
    assert_int_equal(get(fx, &r, "/groups/team/other", bearer), 404);
    assert_int_equal(get(fx, &r, "/groups//members", bearer), 404);
    assert_int_equal(get(fx, &r, "/groups/team", bearer), 404);
    assert_int_equal(get(fx, &r, "/turn/credentials/x", bearer), 404);
    assert_false(r.close); /* keep-alive kept */

    assert_int_equal(get(fx, &r, "/auth/ticket", NULL), 405);
    assert_string_equal(hdrv(&r, "Allow"), "POST");
    assert_int_equal(call(fx, &r, "PUT", "/auth/ticket", NULL, NULL, "x", 1), 405);
    assert_string_equal(hdrv(&r, "Allow"), "POST");
    assert_int_equal(call(fx, &r, "POST", "/turn/credentials", bearer, NULL, NULL, 0), 405);
    assert_string_equal(hdrv(&r, "Allow"), "GET, HEAD");
    assert_int_equal(call(fx, &r, "DELETE", "/groups/team/members", bearer, NULL, NULL, 0), 405);
    assert_string_equal(hdrv(&r, "Allow"), "GET, HEAD");
    assert_int_equal(call(fx, &r, "POST", "/content/standup/x.txt", bearer, NULL, "x", 1), 405);
    assert_non_null(hdr_with(&r, "Allow", "PUT"));
    assert_int_equal(call(fx, &r, "PUT", "/content/standup/", bearer, NULL, "x", 1), 405);
    assert_string_equal(hdrv(&r, "Allow"), "GET, HEAD");
    assert_int_equal(call(fx, &r, "PATCH", BOOK, bearer, NULL, NULL, 0), 405);
    assert_non_null(hdr_with(&r, "Allow", "PROPFIND"));

    /* discovery and OPTIONS need no credentials */
    assert_int_equal(get(fx, &r, "/.well-known/carddav", NULL), 301);
    assert_string_equal(hdrv(&r, "Location"), "/dav/");
    assert_int_equal(call(fx, &r, "PROPFIND", "/dav", NULL, NULL, NULL, 0), 301);
    assert_int_equal(call(fx, &r, "OPTIONS", BOOK, NULL, NULL, NULL, 0), 200);
    assert_non_null(hdr_with(&r, "DAV", "addressbook"));
    assert_non_null(hdr_with(&r, "Allow", "REPORT"));

    /* HEAD: the headers of GET without a body */
    assert_int_equal(call(fx, &r, "HEAD", "/groups/team/members", bearer, NULL, NULL, 0), 200);
    assert_true(strtoull(hdr(&r, "Content-Length"), NULL, 10) > 0);
    assert_int_equal(r.len, 0);

    /* a request that asked to close is closed */
    fx->no_keepalive = true;
    assert_int_equal(get(fx, &r, "/nope", NULL), 404);
    assert_true(r.close);
    assert_string_equal(hdrv(&r, "Connection"), "close");
    assert_int_equal(get(fx, &r, "/turn/credentials", bearer), 200);
    assert_true(r.close);
    resp_free(&r);
}

/* --- 2. tickets ------------------------------------------------------------ */

static void test_ticket_basic(void **state)
{
    struct fx *fx = *state;
    struct resp r = {0};
    char b[512];

    basic_authz(b, sizeof(b), "alice", "alice-pw");
    assert_int_equal(call(fx, &r, "POST", "/auth/ticket", b, NULL, NULL, 0), 200);
    assert_non_null(strstr(hdr(&r, "Content-Type"), "application/json"));
    assert_string_equal(hdrv(&r, "Cache-Control"), "no-store");
    json_t *doc = json_loadb(body(&r), r.len, 0, NULL);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "token_type")), "Bearer");
    assert_string_equal(json_string_value(json_object_get(doc, "user")), "alice");
    assert_string_equal(json_string_value(json_object_get(doc, "domain")), DOMAIN);
    assert_int_equal(json_integer_value(json_object_get(doc, "expires_in")), LIFE);
    assert_int_equal(json_integer_value(json_object_get(doc, "expires")), WALL0 + LIFE);
    const char *t = json_string_value(json_object_get(doc, "ticket"));
    assert_non_null(t);
    char user[65];
    int64_t exp = 0;
    struct ticket_keys *k = NULL;
    char err[256];
    assert_int_equal(ticket_keys_load(NULL, fx->state, WALL0, &k, NULL, err, sizeof(err)), 0);
    assert_int_equal(ticket_verify(k, t, strlen(t), DOMAIN, WALL0, LIFE, user, NULL, NULL, &exp),
                     TICKET_OK);
    assert_string_equal(user, "alice");
    ticket_keys_free(k);
    json_decref(doc);

    /* wrong password, unknown user: the same 401 with the challenges */
    basic_authz(b, sizeof(b), "alice", "wrong");
    assert_int_equal(call(fx, &r, "POST", "/auth/ticket", b, NULL, NULL, 0), 401);
    assert_non_null(hdr_with(&r, "WWW-Authenticate", "Basic realm=\"" DOMAIN "\""));
    assert_non_null(hdr_with(&r, "WWW-Authenticate", "Digest "));
    assert_null(strstr(body(&r), "ticket"));
    basic_authz(b, sizeof(b), "nobody", "alice-pw");
    assert_int_equal(call(fx, &r, "POST", "/auth/ticket", b, NULL, NULL, 0), 401);
    assert_non_null(hdr_with(&r, "WWW-Authenticate", "Basic "));
    basic_authz(b, sizeof(b), "Alice", "alice-pw"); /* not a user name */
    assert_int_equal(call(fx, &r, "POST", "/auth/ticket", b, NULL, NULL, 0), 401);
    basic_authz(b, sizeof(b), "", "alice-pw");
    assert_int_equal(call(fx, &r, "POST", "/auth/ticket", b, NULL, NULL, 0), 401);
    /* no credentials */
    assert_int_equal(call(fx, &r, "POST", "/auth/ticket", NULL, NULL, NULL, 0), 401);
    assert_non_null(hdr_with(&r, "WWW-Authenticate", "Basic "));

    /* malformed: bad base64, no colon, a NUL, too long */
    assert_int_equal(call(fx, &r, "POST", "/auth/ticket", "Basic !!!notbase64", NULL, NULL, 0),
                     400);
    assert_int_equal(call(fx, &r, "POST", "/auth/ticket", "Basic YWxpY2U", NULL, NULL, 0), 400);
    char nocolon[64] = "Basic ";
    assert_int_equal(base64_encode(BASE64_STD, "alice", 5, nocolon + 6, 58, NULL), 0);
    assert_int_equal(call(fx, &r, "POST", "/auth/ticket", nocolon, NULL, NULL, 0), 400);
    char nul[64] = "Basic ";
    assert_int_equal(base64_encode(BASE64_STD, "alice:a\0b", 9, nul + 6, 58, NULL), 0);
    assert_int_equal(call(fx, &r, "POST", "/auth/ticket", nul, NULL, NULL, 0), 400);
    char *huge = malloc(2000);
    assert_non_null(huge);
    memcpy(huge, "Basic ", 6);
    memset(huge + 6, 'A', 1500);
    huge[1506] = '\0';
    assert_int_equal(call(fx, &r, "POST", "/auth/ticket", huge, NULL, NULL, 0), 400);
    free(huge);

    /* a Bearer ticket does not buy a ticket */
    char bearer[2048];
    login_as(fx, "bob", bearer, sizeof(bearer));
    assert_int_equal(call(fx, &r, "POST", "/auth/ticket", bearer, NULL, NULL, 0), 401);
    resp_free(&r);
}

static void test_ticket_throttle(void **state)
{
    struct fx *fx = *state;
    struct resp r = {0};
    char good[512], bad[512];
    basic_authz(good, sizeof(good), "alice", "alice-pw");
    basic_authz(bad, sizeof(bad), "alice", "guess");

    for (int i = 0; i < MAX_FAILURES; i++)
        assert_int_equal(call(fx, &r, "POST", "/auth/ticket", bad, NULL, NULL, 0), 401);
    /* now even the right password is refused, unchecked */
    assert_int_equal(call(fx, &r, "POST", "/auth/ticket", good, NULL, NULL, 0), 429);
    const char *ra = hdr(&r, "Retry-After");
    assert_non_null(ra);
    assert_int_equal(atoi(ra), BACKOFF_MS / 1000);
    assert_null(strstr(body(&r), "ticket\""));
    /* on CardDAV too: the same throttle */
    assert_int_equal(
        call(fx, &r, "PROPFIND", BOOK, good, (const char *const[]){"Depth", "0", NULL}, NULL, 0),
        429);
    /* another user from the same source is not blocked */
    char bob[512];
    basic_authz(bob, sizeof(bob), "bob", "bob-pw");
    assert_int_equal(call(fx, &r, "POST", "/auth/ticket", bob, NULL, NULL, 0), 200);
    /* Retry-After counts down with the clock */
    clock_fake_advance(&fx->clock, 30000);
    assert_int_equal(call(fx, &r, "POST", "/auth/ticket", good, NULL, NULL, 0), 429);
    assert_int_equal(atoi(hdr(&r, "Retry-After")), BACKOFF_MS / 1000 - 30);
    /* once the block has passed, the right password works */
    clock_fake_advance(&fx->clock, BACKOFF_MS);
    assert_int_equal(call(fx, &r, "POST", "/auth/ticket", good, NULL, NULL, 0), 200);
    resp_free(&r);
}

/* The nonce of the Digest challenge for alg ("SHA-256" or "MD5"). */
static void challenge_nonce(const struct resp *r, const char *alg, char out[200])
{
    char want[40];
    snprintf(want, sizeof(want), "algorithm=%s,", alg);
    for (size_t i = 0; i < r->nh; i++) {
        if (strcasecmp(r->hn[i], "WWW-Authenticate") != 0 || strncmp(r->hv[i], "Digest ", 7) != 0 ||
            !strstr(r->hv[i], want))
            continue;
        assert_non_null(strstr(r->hv[i], "realm=\"" DOMAIN "\""));
        assert_non_null(strstr(r->hv[i], "qop=\"auth\""));
        const char *n = strstr(r->hv[i], "nonce=\"");
        assert_non_null(n);
        n += 7;
        const char *q = strchr(n, '"');
        assert_non_null(q);
        assert_true(q - n < 200);
        memcpy(out, n, (size_t)(q - n));
        out[q - n] = '\0';
        return;
    }
    fail_msg("no Digest challenge for %s", alg);
}

static void digest_authz(char *out, size_t cap, enum digest_alg alg, const char *user,
                         const char *password, const char *nonce, unsigned nc, const char *method,
                         const char *uri)
{
    char ha1[DIGEST_HEX_BUF], resp[DIGEST_HEX_BUF], ncs[16];
    snprintf(ncs, sizeof(ncs), "%08x", nc);
    assert_int_equal(digest_ha1(alg, user, DOMAIN, password, ha1), 0);
    assert_int_equal(digest_response(alg, ha1, strview_cstr(nonce), strview_cstr(ncs),
                                     strview_cstr("0a4f113b"), strview_cstr("auth"),
                                     strview_cstr(method), strview_cstr(uri), resp),
                     0);
    snprintf(out, cap,
             "Digest username=\"%s\", realm=\"" DOMAIN "\", nonce=\"%s\", uri=\"%s\", "
             "algorithm=%s, qop=auth, nc=%s, cnonce=\"0a4f113b\", response=\"%s\"",
             user, nonce, uri, digest_alg_name(alg), ncs, resp);
}

static void test_ticket_digest(void **state)
{
    struct fx *fx = *state;
    struct resp r = {0};
    char nonce[200], a[1024];

    assert_int_equal(call(fx, &r, "POST", "/auth/ticket", NULL, NULL, NULL, 0), 401);
    /* Digest is offered first, SHA-256 before MD5, then Basic */
    assert_int_equal(hdr_count(&r, "WWW-Authenticate"), 3);
    assert_memory_equal(hdr(&r, "WWW-Authenticate"), "Digest ", 7);
    challenge_nonce(&r, "SHA-256", nonce);

    digest_authz(a, sizeof(a), DIGEST_ALG_SHA256, "alice", "alice-pw", nonce, 1, "POST",
                 "/auth/ticket");
    assert_int_equal(call(fx, &r, "POST", "/auth/ticket", a, NULL, NULL, 0), 200);
    json_t *doc = json_loadb(body(&r), r.len, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(doc, "user")), "alice");
    json_decref(doc);

    /* the same nc again: a replay */
    assert_int_equal(call(fx, &r, "POST", "/auth/ticket", a, NULL, NULL, 0), 401);
    assert_non_null(hdr_with(&r, "WWW-Authenticate", "Digest "));
    /* the next nc is fine */
    digest_authz(a, sizeof(a), DIGEST_ALG_SHA256, "alice", "alice-pw", nonce, 2, "POST",
                 "/auth/ticket");
    assert_int_equal(call(fx, &r, "POST", "/auth/ticket", a, NULL, NULL, 0), 200);
    /* the wrong password */
    digest_authz(a, sizeof(a), DIGEST_ALG_SHA256, "alice", "nope", nonce, 3, "POST",
                 "/auth/ticket");
    assert_int_equal(call(fx, &r, "POST", "/auth/ticket", a, NULL, NULL, 0), 401);
    /* a response for another request-target */
    digest_authz(a, sizeof(a), DIGEST_ALG_SHA256, "alice", "alice-pw", nonce, 4, "POST", "/dav/");
    assert_int_equal(call(fx, &r, "POST", "/auth/ticket", a, NULL, NULL, 0), 400);
    /* an unknown user: refused like a wrong password */
    digest_authz(a, sizeof(a), DIGEST_ALG_SHA256, "mallory", "x", nonce, 5, "POST", "/auth/ticket");
    assert_int_equal(call(fx, &r, "POST", "/auth/ticket", a, NULL, NULL, 0), 401);
    /* MD5 with its own nonce */
    assert_int_equal(call(fx, &r, "POST", "/auth/ticket", NULL, NULL, NULL, 0), 401);
    challenge_nonce(&r, "MD5", nonce);
    digest_authz(a, sizeof(a), DIGEST_ALG_MD5, "bob", "bob-pw", nonce, 1, "POST", "/auth/ticket");
    assert_int_equal(call(fx, &r, "POST", "/auth/ticket", a, NULL, NULL, 0), 200);
    /* a tampered nonce is stale: a fresh challenge with stale=true */
    nonce[3] = nonce[3] == 'A' ? 'B' : 'A';
    digest_authz(a, sizeof(a), DIGEST_ALG_MD5, "bob", "bob-pw", nonce, 2, "POST", "/auth/ticket");
    assert_int_equal(call(fx, &r, "POST", "/auth/ticket", a, NULL, NULL, 0), 401);
    assert_non_null(hdr_with(&r, "WWW-Authenticate", "stale=true"));

    /* a nonce never accepted is good for nc 1 only: at 2 it is "forgotten"
     * (stale), so a guesser needs a challenge per guess */
    assert_int_equal(call(fx, &r, "POST", "/auth/ticket", NULL, NULL, NULL, 0), 401);
    challenge_nonce(&r, "SHA-256", nonce);
    digest_authz(a, sizeof(a), DIGEST_ALG_SHA256, "carol", "carol-pw", nonce, 2, "POST",
                 "/auth/ticket");
    assert_int_equal(call(fx, &r, "POST", "/auth/ticket", a, NULL, NULL, 0), 401);
    assert_non_null(hdr_with(&r, "WWW-Authenticate", "stale=true"));

    /* Digest guesses feed the throttle: MAX_FAILURES wrong, then blocked */
    for (unsigned i = 0; i < MAX_FAILURES; i++) {
        assert_int_equal(call(fx, &r, "POST", "/auth/ticket", NULL, NULL, NULL, 0), 401);
        challenge_nonce(&r, "SHA-256", nonce);
        digest_authz(a, sizeof(a), DIGEST_ALG_SHA256, "carol", "guess", nonce, 1, "POST",
                     "/auth/ticket");
        assert_int_equal(call(fx, &r, "POST", "/auth/ticket", a, NULL, NULL, 0), 401);
    }
    assert_int_equal(call(fx, &r, "POST", "/auth/ticket", NULL, NULL, NULL, 0), 401);
    challenge_nonce(&r, "SHA-256", nonce);
    digest_authz(a, sizeof(a), DIGEST_ALG_SHA256, "carol", "carol-pw", nonce, 1, "POST",
                 "/auth/ticket");
    assert_int_equal(call(fx, &r, "POST", "/auth/ticket", a, NULL, NULL, 0), 429);
    assert_int_equal(atoi(hdr(&r, "Retry-After")), BACKOFF_MS / 1000);
    /* and Basic for the same user from the same source with it */
    char b[512];
    basic_authz(b, sizeof(b), "carol", "carol-pw");
    assert_int_equal(call(fx, &r, "POST", "/auth/ticket", b, NULL, NULL, 0), 429);

    /* Digest on CardDAV, with the request-target as digest-uri */
    assert_int_equal(
        call(fx, &r, "PROPFIND", BOOK, NULL, (const char *const[]){"Depth", "0", NULL}, NULL, 0),
        401);
    challenge_nonce(&r, "SHA-256", nonce);
    digest_authz(a, sizeof(a), DIGEST_ALG_SHA256, "bob", "bob-pw", nonce, 1, "PROPFIND", BOOK);
    assert_int_equal(
        call(fx, &r, "PROPFIND", BOOK, a, (const char *const[]){"Depth", "0", NULL}, NULL, 0), 207);
    resp_free(&r);
}

/* --- 3. Bearer --------------------------------------------------------------- */

static void test_bearer(void **state)
{
    struct fx *fx = *state;
    struct resp r = {0};
    char bearer[2048];
    login_as(fx, "alice", bearer, sizeof(bearer));

    assert_int_equal(get(fx, &r, "/turn/credentials", bearer), 200);
    assert_string_equal(fx->relay_user, "alice");
    assert_int_equal(get(fx, &r, "/groups/team/members", bearer), 200);
    assert_int_equal(get(fx, &r, "/content/standup/", bearer), 200);
    assert_int_equal(call(fx, &r, "PROPFIND", "/dav/", bearer,
                          (const char *const[]){"Depth", "0", NULL}, NULL, 0),
                     207);
    struct ms m;
    ms_parse(&r, &m);
    assert_int_equal(m.n, 1);
    assert_string_equal(m.e[0].href, "/dav/");
    /* the scheme name is case-insensitive */
    char lower[2048];
    snprintf(lower, sizeof(lower), "bearer %s", bearer + 7);
    assert_int_equal(get(fx, &r, "/turn/credentials", lower), 200);

    /* without a token: a challenge without an error */
    assert_int_equal(get(fx, &r, "/turn/credentials", NULL), 401);
    assert_string_equal(hdrv(&r, "WWW-Authenticate"), "Bearer realm=\"" DOMAIN "\"");
    assert_int_equal(hdr_count(&r, "WWW-Authenticate"), 1);
    /* Basic is not for these */
    char b[512];
    basic_authz(b, sizeof(b), "alice", "alice-pw");
    assert_int_equal(get(fx, &r, "/groups/team/members", b), 401);
    assert_int_equal(get(fx, &r, "/content/standup/", b), 401);
    assert_int_equal(fx->relay_calls, 2);
    resp_free(&r);
}

static void assert_invalid_token(const struct resp *r, const char *why)
{
    assert_int_equal(r->status, 401);
    const char *v = hdr_with(r, "WWW-Authenticate", "Bearer ");
    assert_non_null(v);
    assert_non_null(strstr(v, "realm=\"" DOMAIN "\""));
    assert_non_null(strstr(v, "error=\"invalid_token\""));
    char d[100];
    snprintf(d, sizeof(d), "error_description=\"%s\"", why);
    assert_non_null(strstr(v, d));
}

static void test_bearer_refused(void **state)
{
    struct fx *fx = *state;
    struct resp r = {0};
    char bearer[2048], t[2048];
    login_as(fx, "alice", bearer, sizeof(bearer));
    assert_int_equal(get(fx, &r, "/turn/credentials", bearer), 200);

    /* tampered: one character of the signature, of the claims */
    snprintf(t, sizeof(t), "%s", bearer);
    size_t n = strlen(t);
    t[n - 10] = t[n - 10] == 'A' ? 'B' : 'A';
    assert_int_equal(get(fx, &r, "/turn/credentials", t), 401);
    assert_invalid_token(&r, "bad_signature");
    snprintf(t, sizeof(t), "%s", bearer);
    char *dot = strchr(t, '.');
    dot[5] = dot[5] == 'A' ? 'B' : 'A';
    assert_int_equal(get(fx, &r, "/turn/credentials", t), 401);
    assert_invalid_token(&r, "bad_signature");
    assert_int_equal(get(fx, &r, "/turn/credentials", "Bearer x.y.z"), 401);
    assert_invalid_token(&r, "malformed");
    /* on CardDAV the refusal names the token too */
    assert_int_equal(call(fx, &r, "PROPFIND", BOOK, "Bearer x.y.z",
                          (const char *const[]){"Depth", "0", NULL}, NULL, 0),
                     401);
    assert_invalid_token(&r, "malformed");

    /* another domain's ticket, signed with our own key */
    struct ticket_keys *k = NULL;
    char err[256];
    assert_int_equal(ticket_keys_load(NULL, fx->state, WALL0, &k, NULL, err, sizeof(err)), 0);
    memcpy(t, "Bearer ", 7);
    struct store_user au;
    assert_int_equal(store_user_get(fx->st, "alice", &au), 0);
    assert_int_equal(
        ticket_issue(k, "alice", au.uid, "other.test", WALL0, LIFE, t + 7, sizeof(t) - 7), 0);
    assert_int_equal(get(fx, &r, "/turn/credentials", t), 401);
    assert_invalid_token(&r, "wrong_domain");
    /* a ticket of a user that does not exist */
    assert_int_equal(ticket_issue(k, "mallory", au.uid, DOMAIN, WALL0, LIFE, t + 7, sizeof(t) - 7),
                     0);
    assert_int_equal(get(fx, &r, "/turn/credentials", t), 401);
    assert_invalid_token(&r, "no such user");
    /* alice's name with another account's uid: a user removed and made
     * again under the same name is not the one the ticket was for */
    struct store_user bu;
    assert_int_equal(store_user_get(fx->st, "bob", &bu), 0);
    assert_int_equal(ticket_issue(k, "alice", bu.uid, DOMAIN, WALL0, LIFE, t + 7, sizeof(t) - 7),
                     0);
    assert_int_equal(get(fx, &r, "/turn/credentials", t), 401);
    assert_invalid_token(&r, "no such user");
    /* one issued for later than now */
    assert_int_equal(ticket_issue(k, "alice", au.uid, DOMAIN, WALL0 + 3 * TICKET_CLOCK_SKEW, LIFE,
                                  t + 7, sizeof(t) - 7),
                     0);
    assert_int_equal(get(fx, &r, "/turn/credentials", t), 401);
    assert_invalid_token(&r, "not_yet_valid");

    /* expired: the one in the cache, and one never used before */
    char unused[2048];
    login_as(fx, "alice", unused, sizeof(unused));
    clock_fake_advance(&fx->clock, (uint64_t)(LIFE - 1) * 1000);
    assert_int_equal(get(fx, &r, "/turn/credentials", bearer), 200);
    clock_fake_advance(&fx->clock, 2000);
    assert_int_equal(get(fx, &r, "/turn/credentials", bearer), 401);
    assert_invalid_token(&r, "expired");
    assert_int_equal(get(fx, &r, "/groups/team/members", unused), 401);
    assert_invalid_token(&r, "expired");
    assert_int_equal(
        call(fx, &r, "PROPFIND", BOOK, unused, (const char *const[]){"Depth", "0", NULL}, NULL, 0),
        401);
    assert_invalid_token(&r, "expired");
    ticket_keys_free(k);

    /* a user removed by parleyctl: the cached ticket goes with them */
    char carol[2048];
    login_as(fx, "carol", carol, sizeof(carol));
    assert_int_equal(get(fx, &r, "/content/standup/", carol), 200);
    assert_int_equal(get(fx, &r, "/turn/credentials", carol), 200);
    struct store *other = other_handle(fx);
    assert_int_equal(store_user_remove(other, "carol"), 0);
    assert_int_equal(store_close(other), 0);
    assert_int_equal(get(fx, &r, "/turn/credentials", carol), 401);
    assert_invalid_token(&r, "no such user");
    assert_int_equal(get(fx, &r, "/content/standup/", carol), 401);
    resp_free(&r);
}

/* --- 4. CardDAV ---------------------------------------------------------------- */

static const char *const depth0[] = {"Depth", "0", NULL};
static const char *const depth1[] = {"Depth", "1", NULL};

static const char propfind_etag[] = "<?xml version=\"1.0\"?>\n"
                                    "<D:propfind xmlns:D=\"DAV:\" xmlns:X=\"urn:example:x\">"
                                    "<D:prop><D:getetag/><D:resourcetype/><X:color/></D:prop>"
                                    "</D:propfind>";

static void test_dav_propfind(void **state)
{
    struct fx *fx = *state;
    struct resp r = {0};
    struct ms m;
    char bearer[2048], b[512];
    login_as(fx, "alice", bearer, sizeof(bearer));
    basic_authz(b, sizeof(b), "bob", "bob-pw");

    /* no credentials: every scheme offered */
    assert_int_equal(call(fx, &r, "PROPFIND", BOOK, NULL, depth0, NULL, 0), 401);
    assert_non_null(hdr_with(&r, "WWW-Authenticate", "Digest "));
    assert_non_null(hdr_with(&r, "WWW-Authenticate", "Basic "));
    assert_non_null(hdr_with(&r, "WWW-Authenticate", "Bearer "));

    /* Depth 0, allprop (no body), with Basic */
    assert_int_equal(call(fx, &r, "PROPFIND", BOOK, b, depth0, NULL, 0), 207);
    ms_parse(&r, &m);
    assert_int_equal(m.n, 1);
    assert_string_equal(m.e[0].href, BOOK);
    assert_true(has_prop(m.e[0].ok, "resourcetype"));
    assert_true(has_prop(m.e[0].ok, "sync-token"));
    assert_true(has_prop(m.e[0].ok, "getctag"));
    assert_true(has_prop(m.e[0].ok, "supported-report-set"));
    assert_non_null(strstr(body(&r), "<C:addressbook/>"));

    /* Depth 1 with named properties: the book and each card */
    assert_int_equal(
        call(fx, &r, "PROPFIND", BOOK, bearer, depth1, propfind_etag, sizeof(propfind_etag) - 1),
        207);
    ms_parse(&r, &m);
    assert_int_equal(m.n, 1 + NCARDS);
    const struct ms_entry *book = ms_find(&m, BOOK);
    assert_non_null(book);
    assert_true(has_prop(book->ok, "resourcetype"));
    assert_true(has_prop(book->missing, "getetag"));
    assert_true(has_prop(book->missing, "color"));
    char etags[NCARDS][32];
    for (size_t i = 0; i < NCARDS; i++) {
        char href[128];
        card_href(fx->st, all_cards[i], href);
        const struct ms_entry *e = ms_find(&m, href);
        assert_non_null(e);
        assert_true(has_prop(e->ok, "getetag"));
        assert_true(has_prop(e->ok, "resourcetype"));
        assert_true(has_prop(e->missing, "color"));
        assert_int_equal(strlen(e->etag), 22);
        snprintf(etags[i], sizeof(etags[i]), "%s", e->etag);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(etags[i], etags[j]);
    }
    /* the unknown property's namespace is declared where it is used */
    assert_non_null(strstr(body(&r), "<X:color xmlns:X=\"urn:example:x\"/>"));
    /* an unknown property in no namespace comes back in no namespace */
    static const char nons[] = "<D:propfind xmlns:D=\"DAV:\"><D:prop><D:getetag/>"
                               "<plain xmlns=\"\"/></D:prop></D:propfind>";
    assert_int_equal(call(fx, &r, "PROPFIND", BOOK, bearer, depth0, nons, sizeof(nons) - 1), 207);
    ms_parse(&r, &m);
    assert_true(has_prop(m.e[0].missing, "plain"));
    assert_non_null(strstr(body(&r), "<plain xmlns=\"\"/>"));
    assert_null(strstr(body(&r), "xmlns:X=\"\""));
    /* absent Depth: as 1 */
    assert_int_equal(
        call(fx, &r, "PROPFIND", BOOK, bearer, NULL, propfind_etag, sizeof(propfind_etag) - 1),
        207);
    ms_parse(&r, &m);
    assert_int_equal(m.n, 1 + NCARDS);

    /* Depth 0 on a card */
    char href[128];
    card_href(fx->st, "alice", href);
    assert_int_equal(
        call(fx, &r, "PROPFIND", href, bearer, depth0, propfind_etag, sizeof(propfind_etag) - 1),
        207);
    ms_parse(&r, &m);
    assert_int_equal(m.n, 1);
    assert_string_equal(m.e[0].etag, etags[0]);

    /* the root and the principal */
    assert_int_equal(call(fx, &r, "PROPFIND", "/dav/", bearer, depth1, NULL, 0), 207);
    ms_parse(&r, &m);
    assert_int_equal(m.n, 3);
    assert_non_null(ms_find(&m, "/dav/principals/alice/"));
    assert_non_null(ms_find(&m, "/dav/addressbooks/"));
    assert_non_null(strstr(body(&r), "<D:current-user-principal><D:href>/dav/principals/alice/"));
    assert_int_equal(call(fx, &r, "PROPFIND", "/dav/principals/alice/", bearer, depth0, NULL, 0),
                     207);
    assert_non_null(strstr(body(&r), "<C:addressbook-home-set><D:href>/dav/addressbooks/"));
    /* someone else's principal is not there */
    assert_int_equal(call(fx, &r, "PROPFIND", "/dav/principals/bob/", bearer, depth0, NULL, 0),
                     404);

    /* refused: infinity, other depths, unknown paths, bad bodies */
    assert_int_equal(call(fx, &r, "PROPFIND", BOOK, bearer,
                          (const char *const[]){"Depth", "infinity", NULL}, NULL, 0),
                     403);
    assert_non_null(strstr(body(&r), "propfind-finite-depth"));
    assert_non_null(strstr(body(&r), "xmlns:X=\"DAV:\""));
    assert_int_equal(
        call(fx, &r, "PROPFIND", BOOK, bearer, (const char *const[]){"Depth", "2", NULL}, NULL, 0),
        400);
    assert_int_equal(call(fx, &r, "PROPFIND", BOOK "nope.vcf", bearer, depth0, NULL, 0), 404);
    assert_int_equal(call(fx, &r, "PROPFIND", BOOK "00000000-0000-0000-0000-000000000000.vcf",
                          bearer, depth0, NULL, 0),
                     404);
    assert_int_equal(call(fx, &r, "PROPFIND", BOOK, bearer, depth0, "<D:propfind", 11), 400);
    static const char notpf[] = "<x xmlns=\"DAV:\"/>";
    assert_int_equal(call(fx, &r, "PROPFIND", BOOK, bearer, depth0, notpf, sizeof(notpf) - 1), 400);

    /* read-only */
    assert_int_equal(call(fx, &r, "PUT", href, bearer, NULL, "BEGIN:VCARD", 11), 403);
    assert_int_equal(call(fx, &r, "DELETE", href, bearer, NULL, NULL, 0), 403);
    assert_int_equal(call(fx, &r, "PROPPATCH", BOOK, bearer, NULL, NULL, 0), 403);
    assert_int_equal(call(fx, &r, "MKCOL", BOOK "x/", bearer, NULL, NULL, 0), 403);
    resp_free(&r);
}

static void test_dav_multiget(void **state)
{
    struct fx *fx = *state;
    struct resp r = {0};
    struct ms m;
    char bearer[2048];
    login_as(fx, "bob", bearer, sizeof(bearer));
    char alice[128], team[128], ua[37];
    card_href(fx->st, "alice", alice);
    card_href(fx->st, "team", team);
    card_uuid(fx->st, "carol", ua);

    char req[2048];
    snprintf(req, sizeof(req),
             "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
             "<C:addressbook-multiget xmlns:D=\"DAV:\" "
             "xmlns:C=\"urn:ietf:params:xml:ns:carddav\">"
             "<D:prop><D:getetag/><C:address-data/></D:prop>"
             "<D:href>%s</D:href>"
             "<D:href> https://" DOMAIN BOOK "%s.vcf </D:href>"
             "<D:href>%s</D:href>"
             "<D:href>" BOOK "11111111-2222-3333-4444-555555555555.vcf</D:href>"
             "<D:href>/dav/</D:href>"
             "<D:href>https://" DOMAIN "</D:href>"
             "</C:addressbook-multiget>",
             alice, ua, team);
    assert_int_equal(call(fx, &r, "REPORT", BOOK, bearer, depth1, req, strlen(req)), 207);
    ms_parse(&r, &m);
    assert_int_equal(m.n, 6);
    assert_string_equal(m.e[0].href, alice);
    assert_true(has_prop(m.e[0].ok, "address-data"));
    assert_true(has_prop(m.e[0].ok, "getetag"));
    char carol[128];
    snprintf(carol, sizeof(carol), BOOK "%s.vcf", ua);
    assert_string_equal(m.e[1].href, carol); /* the absolute URL, answered by path */
    assert_true(has_prop(m.e[1].ok, "address-data"));
    assert_string_equal(m.e[2].href, team);
    assert_int_equal(m.e[3].status, 404);
    assert_int_equal(m.e[4].status, 404); /* not a card */
    assert_string_equal(m.e[4].href, "/dav/");
    assert_int_equal(m.e[5].status, 404);
    assert_non_null(strstr(body(&r), "FN:Alice Liddell&#13;\n"));
    assert_non_null(strstr(body(&r), "VERSION:3.0"));
    assert_null(strstr(body(&r), "VERSION:4.0"));

    /* address-data version 4.0 */
    snprintf(req, sizeof(req),
             "<C:addressbook-multiget xmlns:D=\"DAV:\" "
             "xmlns:C=\"urn:ietf:params:xml:ns:carddav\">"
             "<D:prop><D:getcontenttype/>"
             "<C:address-data content-type=\"text/vcard\" version=\"4.0\"/></D:prop>"
             "<D:href>%s</D:href></C:addressbook-multiget>",
             team);
    assert_int_equal(call(fx, &r, "REPORT", BOOK, bearer, NULL, req, strlen(req)), 207);
    ms_parse(&r, &m);
    assert_int_equal(m.n, 1);
    assert_non_null(strstr(body(&r), "VERSION:4.0"));
    assert_non_null(strstr(body(&r), "KIND:group"));
    assert_non_null(strstr(body(&r), "version=4.0</D:getcontenttype>"));

    /* REPORTs only on the book; unknown reports and no body refused */
    assert_int_equal(call(fx, &r, "REPORT", alice, bearer, NULL, req, strlen(req)), 403);
    assert_non_null(strstr(body(&r), "supported-report"));
    static const char unknown[] = "<D:expand-property xmlns:D=\"DAV:\"/>";
    assert_int_equal(call(fx, &r, "REPORT", BOOK, bearer, NULL, unknown, sizeof(unknown) - 1), 403);
    assert_int_equal(call(fx, &r, "REPORT", BOOK, bearer, NULL, NULL, 0), 400);
    assert_int_equal(call(fx, &r, "REPORT", BOOK "x", bearer, NULL, req, strlen(req)), 404);
    resp_free(&r);
}

/* An addressbook-query with one prop-filter holding inner (raw XML). */
static int query(struct fx *fx, struct resp *r, const char *authz, const char *filter_attrs,
                 const char *inner, struct ms *m)
{
    char req[2048];
    snprintf(req, sizeof(req),
             "<C:addressbook-query xmlns:D=\"DAV:\" xmlns:C=\"urn:ietf:params:xml:ns:carddav\">"
             "<D:prop><D:getetag/></D:prop><C:filter %s>%s</C:filter>"
             "</C:addressbook-query>",
             filter_attrs, inner);
    int st = call(fx, r, "REPORT", BOOK, authz, depth1, req, strlen(req));
    if (st == 207)
        ms_parse(r, m);
    return st;
}

static void test_dav_query(void **state)
{
    struct fx *fx = *state;
    struct resp r = {0};
    struct ms m;
    char bearer[2048], alice[128], team[128], sub[128];
    login_as(fx, "carol", bearer, sizeof(bearer));
    card_href(fx->st, "alice", alice);
    card_href(fx->st, "team", team);
    card_href(fx->st, "sub", sub);

    assert_int_equal(
        query(fx, &r, bearer, "",
              "<C:prop-filter name=\"FN\"><C:text-match collation=\"i;unicode-casemap\" "
              "match-type=\"contains\">liDDell</C:text-match></C:prop-filter>",
              &m),
        207);
    assert_int_equal(m.n, 1);
    assert_string_equal(m.e[0].href, alice);
    assert_true(has_prop(m.e[0].ok, "getetag"));

    assert_int_equal(query(fx, &r, bearer, "",
                           "<C:prop-filter name=\"FN\"><C:text-match match-type=\"equals\">"
                           "alice liddell</C:text-match></C:prop-filter>",
                           &m),
                     207);
    assert_int_equal(m.n, 1);
    assert_int_equal(query(fx, &r, bearer, "",
                           "<C:prop-filter name=\"FN\"><C:text-match match-type=\"equals\">"
                           "alice</C:text-match></C:prop-filter>",
                           &m),
                     207);
    assert_int_equal(m.n, 0);
    /* negated: everyone else */
    assert_int_equal(query(fx, &r, bearer, "",
                           "<C:prop-filter name=\"FN\"><C:text-match negate-condition=\"yes\">"
                           "liddell</C:text-match></C:prop-filter>",
                           &m),
                     207);
    assert_int_equal(m.n, NCARDS - 1);
    assert_null(ms_find(&m, alice));
    /* the kind of card; starts-with; anyof by default, allof when asked */
    assert_int_equal(query(fx, &r, bearer, "",
                           "<C:prop-filter name=\"KIND\"><C:text-match match-type=\"equals\">"
                           "group</C:text-match></C:prop-filter>",
                           &m),
                     207);
    assert_int_equal(m.n, 2);
    assert_non_null(ms_find(&m, team));
    assert_non_null(ms_find(&m, sub));
    static const char two[] =
        "<C:prop-filter name=\"KIND\"><C:text-match match-type=\"equals\">group"
        "</C:text-match></C:prop-filter>"
        "<C:prop-filter name=\"FN\"><C:text-match match-type=\"starts-with\">sub"
        "</C:text-match></C:prop-filter>";
    assert_int_equal(query(fx, &r, bearer, "", two, &m), 207);
    assert_int_equal(m.n, 2);
    assert_int_equal(query(fx, &r, bearer, "test=\"allof\"", two, &m), 207);
    assert_int_equal(m.n, 1);
    assert_string_equal(m.e[0].href, sub);
    /* defined / not defined */
    assert_int_equal(query(fx, &r, bearer, "", "<C:prop-filter name=\"EMAIL\"/>", &m), 207);
    assert_int_equal(m.n, 1);
    assert_int_equal(query(fx, &r, bearer, "",
                           "<C:prop-filter name=\"TEL\"><C:is-not-defined/></C:prop-filter>", &m),
                     207);
    assert_int_equal(m.n, NCARDS - 1);
    /* no filter: everything */
    assert_int_equal(query(fx, &r, bearer, "", "", &m), 207);
    assert_int_equal(m.n, NCARDS);

    /* unsupported: param-filter, another collation, no name */
    assert_int_equal(query(fx, &r, bearer, "",
                           "<C:prop-filter name=\"TEL\"><C:param-filter name=\"TYPE\">"
                           "<C:text-match>work</C:text-match></C:param-filter></C:prop-filter>",
                           &m),
                     403);
    assert_non_null(strstr(body(&r), "supported-filter"));
    assert_non_null(strstr(body(&r), "urn:ietf:params:xml:ns:carddav"));
    assert_int_equal(query(fx, &r, bearer, "",
                           "<C:prop-filter name=\"FN\"><C:text-match collation=\"i;octet\">"
                           "x</C:text-match></C:prop-filter>",
                           &m),
                     403);
    assert_int_equal(query(fx, &r, bearer, "", "<C:prop-filter/>", &m), 403);

    /* a limit */
    static const char lim[] =
        "<C:addressbook-query xmlns:D=\"DAV:\" xmlns:C=\"urn:ietf:params:xml:ns:carddav\">"
        "<D:prop><D:getetag/></D:prop><C:limit><C:nresults>2</C:nresults></C:limit>"
        "</C:addressbook-query>";
    assert_int_equal(call(fx, &r, "REPORT", BOOK, bearer, depth1, lim, sizeof(lim) - 1), 207);
    ms_parse(&r, &m);
    assert_int_equal(m.n, 2);
    resp_free(&r);
}

static int sync_report(struct fx *fx, struct resp *r, const char *authz, const char *token,
                       struct ms *m)
{
    char req[1024];
    snprintf(req, sizeof(req),
             "<D:sync-collection xmlns:D=\"DAV:\"><D:sync-token>%s</D:sync-token>"
             "<D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop>"
             "</D:sync-collection>",
             token);
    int st = call(fx, r, "REPORT", BOOK, authz, NULL, req, strlen(req));
    if (st == 207)
        ms_parse(r, m);
    return st;
}

static void test_dav_sync(void **state)
{
    struct fx *fx = *state;
    struct resp r = {0};
    struct ms m;
    char bearer[2048];
    login_as(fx, "alice", bearer, sizeof(bearer));

    /* the first sync: every card, and a token */
    assert_int_equal(sync_report(fx, &r, bearer, "", &m), 207);
    assert_int_equal(m.n, NCARDS);
    for (size_t i = 0; i < NCARDS; i++)
        assert_true(has_prop(m.e[i].ok, "getetag"));
    char t1[200];
    snprintf(t1, sizeof(t1), "%s", m.token);
    assert_memory_equal(t1, "https://" DOMAIN "/dav/sync/", strlen("https://" DOMAIN "/dav/sync/"));
    /* nothing changed: nothing listed, the same token */
    assert_int_equal(sync_report(fx, &r, bearer, t1, &m), 207);
    assert_int_equal(m.n, 0);
    assert_string_equal(m.token, t1);
    /* the token is the book's sync-token property too */
    assert_int_equal(call(fx, &r, "PROPFIND", BOOK, bearer, depth0, NULL, 0), 207);
    char want[300];
    snprintf(want, sizeof(want), "<D:sync-token>%s</D:sync-token>", t1);
    assert_non_null(strstr(body(&r), want));

    /* parleyctl changes: bob renamed, dave removed, erin added, carol
     * added to sub (sub's card changes) */
    char bob[128], dave[128], sub[128], erin[128];
    card_href(fx->st, "bob", bob);
    card_href(fx->st, "dave", dave);
    card_href(fx->st, "sub", sub);
    struct store *other = other_handle(fx);
    assert_int_equal(store_user_set_profile(other, "bob", "Robert", NULL), 0);
    assert_int_equal(store_user_remove(other, "dave"), 0);
    add_user(other, "erin", "erin-pw");
    assert_int_equal(store_group_member_add(other, "sub", "carol"), 0);
    card_href(other, "erin", erin);
    assert_int_equal(store_close(other), 0);

    assert_int_equal(sync_report(fx, &r, bearer, t1, &m), 207);
    assert_int_equal(m.n, 4);
    const struct ms_entry *e = ms_find(&m, bob);
    assert_non_null(e);
    assert_true(has_prop(e->ok, "getetag"));
    assert_non_null(e = ms_find(&m, dave));
    assert_int_equal(e->status, 404);
    assert_non_null(e = ms_find(&m, erin));
    assert_true(has_prop(e->ok, "getetag"));
    assert_non_null(e = ms_find(&m, sub));
    assert_true(has_prop(e->ok, "getetag"));
    char t2[200];
    snprintf(t2, sizeof(t2), "%s", m.token);
    assert_string_not_equal(t1, t2);
    /* from the new token: nothing */
    assert_int_equal(sync_report(fx, &r, bearer, t2, &m), 207);
    assert_int_equal(m.n, 0);
    /* a full sync now: dave gone, erin there */
    assert_int_equal(sync_report(fx, &r, bearer, "", &m), 207);
    assert_int_equal(m.n, NCARDS);
    assert_null(ms_find(&m, dave));
    assert_non_null(ms_find(&m, erin));
    /* a change through the core's own handle is seen as well */
    assert_int_equal(store_user_set_profile(fx->st, "erin", "Erin", NULL), 0);
    assert_int_equal(sync_report(fx, &r, bearer, t2, &m), 207);
    assert_int_equal(m.n, 1);
    assert_string_equal(m.e[0].href, erin);

    /* bad tokens: garbage, another server's, one from the future, a
     * negative one, no number */
    const char *bad[] = {
        "garbage",
        "https://other.test/dav/sync/1",
        "https://" DOMAIN "/dav/sync/999999",
        "https://" DOMAIN "/dav/sync/-1",
        "https://" DOMAIN "/dav/sync/",
        "https://" DOMAIN "/dav/sync/1x",
        "http://" DOMAIN "/dav/sync/1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(sync_report(fx, &r, bearer, bad[i], &m), 403);
        assert_non_null(strstr(body(&r), "valid-sync-token"));
    }
    /* sync-level infinite */
    static const char inf[] = "<D:sync-collection xmlns:D=\"DAV:\"><D:sync-token/>"
                              "<D:sync-level>infinite</D:sync-level></D:sync-collection>";
    assert_int_equal(call(fx, &r, "REPORT", BOOK, bearer, NULL, inf, sizeof(inf) - 1), 403);
    assert_non_null(strstr(body(&r), "sync-traversal-supported"));
    resp_free(&r);
}

/* Inflates a gzip body. */
static void gunzip(const unsigned char *in, size_t len, struct strbuf *out)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    assert_int_equal(inflateInit2(&z, 31), Z_OK);
    z.next_in = (unsigned char *)in;
    z.avail_in = (uInt)len;
    unsigned char buf[4096];
    int rc;
    do {
        z.next_out = buf;
        z.avail_out = sizeof(buf);
        rc = inflate(&z, Z_NO_FLUSH);
        assert_true(rc == Z_OK || rc == Z_STREAM_END);
        strbuf_append(out, buf, sizeof(buf) - z.avail_out);
    } while (rc != Z_STREAM_END);
    assert_int_equal(z.avail_in, 0);
    inflateEnd(&z);
}

static void test_dav_get(void **state)
{
    struct fx *fx = *state;
    struct resp r = {0};
    struct ms m;
    char bearer[2048], alice[128], ua[37];
    login_as(fx, "bob", bearer, sizeof(bearer));
    card_href(fx->st, "alice", alice);
    card_uuid(fx->st, "alice", ua);

    assert_int_equal(
        call(fx, &r, "PROPFIND", alice, bearer, depth0, propfind_etag, sizeof(propfind_etag) - 1),
        207);
    ms_parse(&r, &m);
    char etag[32];
    snprintf(etag, sizeof(etag), "%s", m.e[0].etag);

    assert_int_equal(get(fx, &r, alice, bearer), 200);
    assert_string_equal(hdrv(&r, "Content-Type"), "text/vcard; charset=utf-8");
    assert_string_equal(hdrv(&r, "ETag"), etag);
    assert_non_null(hdr(&r, "Cache-Control"));
    assert_null(hdr(&r, "Content-Encoding"));
    char uid[80];
    snprintf(uid, sizeof(uid), "\r\nUID:%s\r\n", ua);
    assert_memory_equal(body(&r), "BEGIN:VCARD\r\nVERSION:3.0\r\n", 26);
    assert_non_null(strstr(body(&r), uid));
    assert_non_null(strstr(body(&r), "\r\nFN:Alice Liddell\r\n"));
    assert_non_null(strstr(body(&r), "\r\nN:Liddell;Alice;;;\r\n"));
    assert_non_null(strstr(body(&r), "\r\nNICKNAME:alice\r\n"));
    assert_non_null(strstr(body(&r), "\r\nEMAIL;TYPE=INTERNET,WORK:alice@example.test\r\n"));
    assert_non_null(strstr(body(&r), "\r\nTEL;TYPE=WORK,VOICE:+15551230001\r\n"));
    assert_non_null(strstr(body(&r), "\r\nIMPP;X-SERVICE-TYPE=SIP:sip:alice@" DOMAIN "\r\n"));
    assert_non_null(strstr(body(&r), "\r\nEND:VCARD\r\n"));

    /* 4.0 when asked */
    assert_int_equal(call(fx, &r, "GET", alice, bearer,
                          (const char *const[]){"Accept", "text/vcard; version=4.0", NULL}, NULL,
                          0),
                     200);
    assert_string_equal(hdrv(&r, "Content-Type"), "text/vcard; charset=utf-8; version=4.0");
    assert_string_equal(hdrv(&r, "ETag"), etag);
    snprintf(uid, sizeof(uid), "\r\nUID:urn:uuid:%s\r\n", ua);
    assert_non_null(strstr(body(&r), "\r\nVERSION:4.0\r\n"));
    assert_non_null(strstr(body(&r), uid));
    assert_non_null(strstr(body(&r), "\r\nKIND:individual\r\n"));
    assert_non_null(strstr(body(&r), "\r\nTEL;VALUE=uri;TYPE=work,voice:tel:+15551230001\r\n"));

    /* If-None-Match */
    assert_int_equal(call(fx, &r, "GET", alice, bearer,
                          (const char *const[]){"If-None-Match", etag, NULL}, NULL, 0),
                     304);
    assert_string_equal(hdrv(&r, "ETag"), etag);
    char list[80];
    snprintf(list, sizeof(list), "\"00000000000000000000\", %s", etag);
    assert_int_equal(call(fx, &r, "GET", alice, bearer,
                          (const char *const[]){"If-None-Match", list, NULL}, NULL, 0),
                     304);
    assert_int_equal(call(fx, &r, "GET", alice, bearer,
                          (const char *const[]){"If-None-Match", "\"00000000000000000000\"", NULL},
                          NULL, 0),
                     200);
    /* HEAD */
    assert_int_equal(call(fx, &r, "HEAD", alice, bearer, NULL, NULL, 0), 200);
    assert_string_equal(hdrv(&r, "ETag"), etag);

    /* the ETag follows a change to the card */
    struct store *other = other_handle(fx);
    assert_int_equal(store_user_set_profile(other, "alice", "Alice Pleasance Liddell", NULL), 0);
    assert_int_equal(store_close(other), 0);
    assert_int_equal(call(fx, &r, "GET", alice, bearer,
                          (const char *const[]){"If-None-Match", etag, NULL}, NULL, 0),
                     200);
    assert_string_not_equal(hdrv(&r, "ETag"), etag);
    assert_non_null(strstr(body(&r), "\r\nN:Liddell;Alice Pleasance;;;\r\n"));

    /* unknown cards and the collections */
    assert_int_equal(get(fx, &r, BOOK "11111111-2222-3333-4444-555555555555.vcf", bearer), 404);
    assert_int_equal(get(fx, &r, BOOK "x.vcf", bearer), 404);
    assert_int_equal(get(fx, &r, BOOK, bearer), 200);
    assert_non_null(strstr(hdr(&r, "Content-Type"), "text/plain"));
    assert_int_equal(get(fx, &r, alice, NULL), 401);

    /* gzip: a large multistatus, compressed only for a client that asks */
    static const char allcards[] = "<D:propfind xmlns:D=\"DAV:\" "
                                   "xmlns:C=\"urn:ietf:params:xml:ns:carddav\"><D:prop>"
                                   "<D:getetag/><C:address-data/></D:prop></D:propfind>";
    assert_int_equal(call(fx, &r, "PROPFIND", BOOK, bearer, depth1, allcards, sizeof(allcards) - 1),
                     207);
    assert_true(r.len > 1024);
    assert_null(hdr(&r, "Content-Encoding"));
    assert_string_equal(hdrv(&r, "Vary"), "Accept-Encoding");
    struct strbuf plain = STRBUF_INIT;
    strbuf_append(&plain, r.body, r.len);
    assert_int_equal(call(fx, &r, "PROPFIND", BOOK, bearer,
                          (const char *const[]){"Depth", "1", "Accept-Encoding", "br, gzip", NULL},
                          allcards, sizeof(allcards) - 1),
                     207);
    assert_string_equal(hdrv(&r, "Content-Encoding"), "gzip");
    assert_string_equal(hdrv(&r, "Vary"), "Accept-Encoding");
    assert_true(r.len < plain.len);
    struct strbuf z = STRBUF_INIT;
    gunzip(r.body, r.len, &z);
    assert_int_equal(z.len, plain.len);
    assert_memory_equal(z.p, plain.p, plain.len);
    strbuf_free(&z);
    strbuf_free(&plain);
    /* gzip;q=0 refuses it */
    assert_int_equal(call(fx, &r, "PROPFIND", BOOK, bearer,
                          (const char *const[]){"Depth", "1", "Accept-Encoding", "gzip;q=0", NULL},
                          allcards, sizeof(allcards) - 1),
                     207);
    assert_null(hdr(&r, "Content-Encoding"));
    /* a small card is sent as it is even to a client that accepts gzip */
    assert_int_equal(call(fx, &r, "GET", alice, bearer,
                          (const char *const[]){"Accept-Encoding", "gzip", NULL}, NULL, 0),
                     200);
    assert_null(hdr(&r, "Content-Encoding"));
    resp_free(&r);
}

/* --- 5. vCard ------------------------------------------------------------------ */

/* Each physical line at most 75 octets and valid UTF-8 on its own (no
 * character split by a fold); out gets the text unfolded. */
static void check_folding(const char *text, struct strbuf *out)
{
    const char *line = text;
    while (*line) {
        const char *eol = strstr(line, "\r\n");
        assert_non_null(eol);
        size_t n = (size_t)(eol - line);
        assert_true(n <= 75);
        const unsigned char *p = (const unsigned char *)line;
        if (line != text && *p == ' ') {
            p++; /* a continuation */
            n--;
        } else if (line != text) {
            strbuf_puts(out, "\r\n");
        }
        for (size_t i = 0; i < n;) {
            size_t cl = p[i] < 0x80         ? 1
                        : (p[i] >> 5) == 6  ? 2
                        : (p[i] >> 4) == 14 ? 3
                        : (p[i] >> 3) == 30 ? 4
                                            : 0;
            assert_true(cl > 0);
            assert_true(i + cl <= n);
            for (size_t k = 1; k < cl; k++)
                assert_int_equal(p[i + k] >> 6, 2);
            i += cl;
        }
        strbuf_append(out, p, n);
        line = eol + 2;
    }
    strbuf_puts(out, "\r\n");
}

static void test_vcard(void **state)
{
    struct fx *fx = *state;
    struct resp r = {0};
    char bearer[2048], href[128];
    login_as(fx, "dave", bearer, sizeof(bearer));

    /* bob: ',', ';' and '\' escaped in FN and N */
    card_href(fx->st, "bob", href);
    assert_int_equal(get(fx, &r, href, bearer), 200);
    assert_non_null(strstr(body(&r), "\r\nFN:Bob\\, Builder\\; Jr\\\\\r\n"));
    assert_non_null(strstr(body(&r), "\r\nN:Jr\\\\;Bob\\, Builder\\;;;;\r\n"));
    assert_null(strstr(body(&r), "EMAIL"));
    assert_null(strstr(body(&r), "TEL"));

    /* carol: a long name of 2-, 3- and 4-byte characters, folded */
    card_href(fx->st, "carol", href);
    for (int v = 3; v <= 4; v++) {
        assert_int_equal(
            call(fx, &r, "GET", href, bearer,
                 (const char *const[]){"Accept", v == 4 ? "text/vcard; version=4.0" : "text/vcard",
                                       NULL},
                 NULL, 0),
            200);
        assert_non_null(strstr(body(&r), "\r\n ")); /* folded somewhere */
        struct strbuf u = STRBUF_INIT;
        check_folding(body(&r), &u);
        assert_non_null(strstr(strbuf_cstr(&u), "\r\nFN:" CAROL_NAME "\r\n"));
        assert_non_null(strstr(strbuf_cstr(&u), "\r\nN:" MB13 ";Carol;;;\r\n"));
        strbuf_free(&u);
    }

    /* groups: 3.0 with the X-ADDRESSBOOKSERVER extension, 4.0 with KIND
     * and MEMBER; team's members are alice and sub */
    char ua[37], usub[37], line[200];
    card_uuid(fx->st, "alice", ua);
    card_uuid(fx->st, "sub", usub);
    card_href(fx->st, "team", href);
    assert_int_equal(get(fx, &r, href, bearer), 200);
    assert_non_null(strstr(body(&r), "\r\nFN:Team\r\n"));
    assert_non_null(strstr(body(&r), "\r\nN:Team;;;;\r\n"));
    assert_non_null(strstr(body(&r), "\r\nX-ADDRESSBOOKSERVER-KIND:group\r\n"));
    snprintf(line, sizeof(line), "\r\nX-ADDRESSBOOKSERVER-MEMBER:urn:uuid:%s\r\n", ua);
    assert_non_null(strstr(body(&r), line));
    snprintf(line, sizeof(line), "\r\nX-ADDRESSBOOKSERVER-MEMBER:urn:uuid:%s\r\n", usub);
    assert_non_null(strstr(body(&r), line));
    assert_null(strstr(body(&r), "KIND:individual"));
    assert_null(strstr(body(&r), "IMPP"));
    assert_int_equal(call(fx, &r, "GET", href, bearer,
                          (const char *const[]){"Accept", "text/vcard;version=4.0", NULL}, NULL, 0),
                     200);
    assert_non_null(strstr(body(&r), "\r\nKIND:group\r\n"));
    snprintf(line, sizeof(line), "\r\nMEMBER:urn:uuid:%s\r\n", ua);
    assert_non_null(strstr(body(&r), line));
    snprintf(line, sizeof(line), "\r\nMEMBER:urn:uuid:%s\r\n", usub);
    assert_non_null(strstr(body(&r), line));
    assert_null(strstr(body(&r), "X-ADDRESSBOOKSERVER"));
    /* sub's members: bob, alice and team (the cycle is only a member) */
    card_href(fx->st, "sub", href);
    assert_int_equal(get(fx, &r, href, bearer), 200);
    const char *p = body(&r);
    size_t members = 0;
    while ((p = strstr(p, "X-ADDRESSBOOKSERVER-MEMBER:")) != NULL) {
        members++;
        p++;
    }
    assert_int_equal(members, 3);

    /* what the store never holds, written directly: newlines, and a fold
     * falling exactly inside a 4-byte character */
    struct web_card c;
    memset(&c, 0, sizeof(c));
    c.kind = STORE_CARD_USER;
    snprintf(c.name, sizeof(c.name), "x");
    snprintf(c.uuid, sizeof(c.uuid), "%s", ua);
    snprintf(c.display_name, sizeof(c.display_name), "Line one\r\nline two\nthree, four");
    struct strbuf v = STRBUF_INIT;
    web_vcard_write(&v, &c, 3, DOMAIN);
    assert_non_null(strstr(strbuf_cstr(&v), "\r\nFN:Line one\\nline two\\nthree\\, four\r\n"));
    strbuf_free(&v);
    for (size_t pad = 0; pad < 4; pad++) {
        /* "FN:" + pad + 'a's puts the 4-byte character across column 75 */
        memset(c.display_name, 0, sizeof(c.display_name));
        memset(c.display_name, 'a', 70 + pad);
        strcat(c.display_name, "\xf0\x9d\x84\x9e\xf0\x9d\x84\x9e");
        web_vcard_write(&v, &c, 4, DOMAIN);
        struct strbuf u = STRBUF_INIT;
        check_folding(strbuf_cstr(&v), &u);
        char want[200];
        snprintf(want, sizeof(want), "\r\nFN:%s\r\n", c.display_name);
        assert_non_null(strstr(strbuf_cstr(&u), want));
        strbuf_free(&u);
        strbuf_free(&v);
    }
    resp_free(&r);
}

/* --- 6. groups ------------------------------------------------------------------ */

static void test_groups(void **state)
{
    struct fx *fx = *state;
    struct resp r = {0};
    char bearer[2048];
    login_as(fx, "dave", bearer, sizeof(bearer));

    const char *groups[] = {"/groups/team/members", "/groups/sub/members"};
    for (size_t g = 0; g < 2; g++) {
        assert_int_equal(get(fx, &r, groups[g], bearer), 200);
        json_t *doc = json_loadb(body(&r), r.len, 0, NULL);
        assert_non_null(doc);
        assert_false(json_is_true(json_object_get(doc, "truncated")));
        json_t *list = json_object_get(doc, "members");
        assert_int_equal(json_array_size(list), 2); /* alice and bob, once each */
        json_t *a = json_array_get(list, 0), *b = json_array_get(list, 1);
        assert_string_equal(json_string_value(json_object_get(a, "user")), "alice");
        assert_string_equal(json_string_value(json_object_get(a, "uri")), "sip:alice@" DOMAIN);
        assert_string_equal(json_string_value(json_object_get(a, "name")), "Alice Liddell");
        assert_string_equal(json_string_value(json_object_get(b, "user")), "bob");
        json_decref(doc);
    }
    json_t *doc = json_loadb(body(&r), r.len, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(doc, "group")), "sub");
    assert_string_equal(json_string_value(json_object_get(doc, "name")), "Sub team");
    json_decref(doc);

    /* a name without a display name stands for itself */
    struct store *other = other_handle(fx);
    assert_int_equal(store_group_add(other, "solo", NULL), 0);
    assert_int_equal(store_group_member_add(other, "solo", "dave"), 0);
    assert_int_equal(store_close(other), 0);
    assert_int_equal(get(fx, &r, "/groups/solo/members", bearer), 200);
    doc = json_loadb(body(&r), r.len, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(doc, "name")), "solo");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(doc, "members"), 0), "name")),
                        "dave");
    json_decref(doc);

    /* not groups */
    assert_int_equal(get(fx, &r, "/groups/nosuch/members", bearer), 404);
    assert_int_equal(get(fx, &r, "/groups/alice/members", bearer), 404);
    assert_int_equal(get(fx, &r, "/groups/Team/members", bearer), 404);
    assert_int_equal(get(fx, &r, "/groups/a%2Fb/members", bearer), 404);
    assert_int_equal(get(fx, &r, "/groups/team/members", NULL), 401);
    resp_free(&r);
}

/* --- 7. content ------------------------------------------------------------------ */

static unsigned char *pattern(size_t n, unsigned seed)
{
    unsigned char *p = malloc(n ? n : 1);
    assert_non_null(p);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        p[i] = (unsigned char)(x >> 16);
    }
    return p;
}

static int get_range(struct fx *fx, struct resp *r, const char *target, const char *authz,
                     const char *range)
{
    return call(fx, r, "GET", target, authz, (const char *const[]){"Range", range, NULL}, NULL, 0);
}

static void test_content(void **state)
{
    struct fx *fx = *state;
    struct resp r = {0};
    char alice[2048], bob[2048], carol[2048], dave[2048];
    login_as(fx, "alice", alice, sizeof(alice));
    login_as(fx, "bob", bob, sizeof(bob));
    login_as(fx, "carol", carol, sizeof(carol));
    login_as(fx, "dave", dave, sizeof(dave));
    const char *file = "/content/standup/slides.pdf";
    const size_t size = 200000; /* four 64 KiB segments */
    unsigned char *data = pattern(size, 1);

    /* nothing yet */
    assert_int_equal(get(fx, &r, file, alice), 404);
    assert_int_equal(get(fx, &r, "/content/standup/", alice), 200);
    json_t *doc = json_loadb(body(&r), r.len, 0, NULL);
    assert_int_equal(json_array_size(json_object_get(doc, "files")), 0);
    assert_true(json_is_true(json_object_get(doc, "may_write")));
    json_decref(doc);

    /* the organizer writes: created, then replaced */
    assert_int_equal(
        call(fx, &r, "PUT", "/content/standup/slides.pdf?x=1", alice, NULL, data, size / 2), 201);
    assert_string_equal(hdrv(&r, "Location"), file);
    assert_int_equal(call(fx, &r, "PUT", file, alice, NULL, data, size), 204);
    assert_null(hdr(&r, "Location"));

    /* readers: carol (allowed), bob (through sub), alice; byte-identical */
    const char *readers[] = {alice, bob, carol};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(get(fx, &r, file, readers[i]), 200);
        assert_int_equal(r.len, size);
        assert_memory_equal(r.body, data, size);
        assert_string_equal(hdrv(&r, "Content-Type"), "application/octet-stream");
        assert_string_equal(hdrv(&r, "Accept-Ranges"), "bytes");
        assert_non_null(hdr_with(&r, "Content-Disposition", "filename=\"slides.pdf\""));
        assert_null(hdr(&r, "Content-Encoding"));
    }
    /* not a reader; readers that may not write */
    assert_int_equal(get(fx, &r, file, dave), 403);
    assert_null(strstr(body(&r), "PRLY"));
    assert_int_equal(get(fx, &r, "/content/standup/", dave), 403);
    assert_int_equal(call(fx, &r, "PUT", file, dave, NULL, "x", 1), 403);
    assert_int_equal(call(fx, &r, "PUT", file, carol, NULL, "x", 1), 403);
    assert_int_equal(call(fx, &r, "PUT", "/content/standup/new.txt", bob, NULL, "x", 1), 403);
    assert_int_equal(call(fx, &r, "DELETE", file, carol, NULL, NULL, 0), 403);
    assert_int_equal(call(fx, &r, "DELETE", file, dave, NULL, NULL, 0), 403);
    assert_int_equal(get(fx, &r, file, carol), 200); /* still there, unchanged */
    assert_memory_equal(r.body, data, size);
    assert_int_equal(get(fx, &r, file, NULL), 401);
    assert_int_equal(get(fx, &r, "/content/nosuch/x", alice), 404);
    assert_int_equal(get(fx, &r, "/content/", alice), 404);
    assert_int_equal(get(fx, &r, "/content/Bad!/x", alice), 400);

    /* ranges */
    struct {
        const char *range;
        int status;
        size_t from, to; /* inclusive, for 206 */
    } ranges[] = {
        {"bytes=10-19", 206, 10, 19},
        {"bytes=65530-65545", 206, 65530, 65545}, /* across a segment boundary */
        {"bytes=150000-", 206, 150000, size - 1},
        {"bytes=-50", 206, size - 50, size - 1},
        {"bytes=-999999", 206, 0, size - 1},
        {"bytes=199999-500000", 206, 199999, size - 1},
        {"bytes=0-0", 206, 0, 0},
        {"bytes=200000-", 416, 0, 0},
        {"bytes=300000-300010", 416, 0, 0},
        {"bytes=-0", 416, 0, 0},
        {"bytes=0-1,5-6", 200, 0, size - 1}, /* several: the whole file */
        {"bytes=20-10", 200, 0, size - 1},   /* invalid: ignored */
        {"items=0-1", 200, 0, size - 1},
        {"bytes=x-1", 200, 0, size - 1},
        {"bytes=-", 200, 0, size - 1},
    };
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        int st = get_range(fx, &r, file, carol, ranges[i].range);
        if (st != ranges[i].status)
            fail_msg("Range %s: %d", ranges[i].range, st);
        if (st == 206) {
            size_t n = ranges[i].to - ranges[i].from + 1;
            assert_int_equal(r.len, n);
            assert_memory_equal(r.body, data + ranges[i].from, n);
            char cr[80];
            snprintf(cr, sizeof(cr), "bytes %zu-%zu/%zu", ranges[i].from, ranges[i].to, size);
            assert_string_equal(hdrv(&r, "Content-Range"), cr);
        } else if (st == 416) {
            assert_string_equal(hdrv(&r, "Content-Range"), "bytes */200000");
            assert_int_equal(r.len, 0);
        } else {
            assert_int_equal(r.len, size);
            assert_null(hdr(&r, "Content-Range"));
        }
    }
    /* HEAD: the size, no body */
    assert_int_equal(call(fx, &r, "HEAD", file, bob, NULL, NULL, 0), 200);
    assert_int_equal(strtoull(hdr(&r, "Content-Length"), NULL, 10), size);

    /* a name in UTF-8, an empty file, and the listing */
    const char *resume = "/content/standup/r%C3%A9sum%C3%A9%20v2.txt";
    assert_int_equal(call(fx, &r, "PUT", resume, alice, NULL, "hello", 5), 201);
    assert_string_equal(hdrv(&r, "Location"), "/content/standup/r%C3%A9sum%C3%A9%20v2.txt");
    assert_int_equal(call(fx, &r, "PUT", "/content/standup/empty", alice, NULL, NULL, 0), 201);
    assert_int_equal(get(fx, &r, "/content/standup/empty", carol), 200);
    assert_int_equal(r.len, 0);
    assert_int_equal(get_range(fx, &r, "/content/standup/empty", carol, "bytes=0-"), 416);
    assert_int_equal(get(fx, &r, resume, bob), 200);
    assert_memory_equal(r.body, "hello", 5);
    assert_non_null(
        hdr_with(&r, "Content-Disposition",
                 "filename=\"r__sum__ v2.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20v2.txt"));
    assert_int_equal(get(fx, &r, "/content/standup", carol), 200);
    doc = json_loadb(body(&r), r.len, 0, NULL);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "meeting")), "standup");
    assert_string_equal(json_string_value(json_object_get(doc, "organizer")), "alice");
    assert_false(json_is_true(json_object_get(doc, "may_write")));
    json_t *files = json_object_get(doc, "files");
    assert_int_equal(json_array_size(files), 3);
    bool seen[3] = {false, false, false};
    for (size_t i = 0; i < 3; i++) {
        json_t *f = json_array_get(files, i);
        const char *name = json_string_value(json_object_get(f, "name"));
        json_int_t sz = json_integer_value(json_object_get(f, "size"));
        assert_non_null(json_object_get(f, "modified"));
        if (strcmp(name, "slides.pdf") == 0) {
            assert_int_equal(sz, size);
            seen[0] = true;
        } else if (strcmp(name, "r\xc3\xa9sum\xc3\xa9 v2.txt") == 0) {
            assert_int_equal(sz, 5);
            seen[1] = true;
        } else if (strcmp(name, "empty") == 0) {
            assert_int_equal(sz, 0);
            seen[2] = true;
        }
    }
    assert_true(seen[0] && seen[1] && seen[2]);
    json_decref(doc);

    /* another meeting's content is not this one's */
    assert_int_equal(get(fx, &r, "/content/retro/slides.pdf", alice), 404);
    assert_int_equal(get(fx, &r, "/content/retro/slides.pdf", carol), 403);

    /* removal */
    assert_int_equal(call(fx, &r, "DELETE", file, alice, NULL, NULL, 0), 204);
    assert_int_equal(get(fx, &r, file, carol), 404);
    assert_int_equal(call(fx, &r, "DELETE", file, alice, NULL, NULL, 0), 404);
    free(data);
    resp_free(&r);
}

static void test_content_names(void **state)
{
    struct fx *fx = *state;
    struct resp r = {0};
    char alice[2048];
    login_as(fx, "alice", alice, sizeof(alice));

    char long_ok[300], long_bad[300];
    memcpy(long_ok, "/content/standup/", 17);
    memset(long_ok + 17, 'n', 120);
    long_ok[137] = '\0';
    memcpy(long_bad, long_ok, 137);
    memcpy(long_bad + 137, "n", 2);
    assert_int_equal(call(fx, &r, "PUT", long_ok, alice, NULL, "x", 1), 201);
    assert_int_equal(get(fx, &r, long_ok, alice), 200);

    const char *bad[] = {
        "/content/standup/..",
        "/content/standup/.",
        "/content/standup/.x",
        "/content/standup/%2E%2E",
        "/content/standup/a/b",
        "/content/standup/a%2Fb",
        "/content/standup/../../etc",
        "/content/standup/a%5Cb", /* '\' */
        long_bad,
        "/content/standup/%FF",
        "/content/standup/a%C3",
        "/content/standup/%C3%28",
        "/content/standup/%80abc",
        "/content/standup/%F8%88%80%80%80",
        "/content/standup/a%C0%AFb",           /* an overlong '/' */
        "/content/standup/%E0%80%AE%E0%80%AE", /* overlong dots */
        "/content/standup/%ED%A0%80",          /* a surrogate */
        "/content/standup/%F4%90%80%80",       /* above U+10FFFF */
        "/content/standup/a%01b",
        "/content/standup/a%1Fb",
        "/content/standup/a%7Fb",
        "/content/standup/a%0Ab",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int st = call(fx, &r, "PUT", bad[i], alice, NULL, "x", 1);
        if (st != 400)
            fail_msg("PUT %s: %d", bad[i], st);
        st = get(fx, &r, bad[i], alice);
        if (st != 400)
            fail_msg("GET %s: %d", bad[i], st);
    }
    /* a meeting name that is not one */
    assert_int_equal(call(fx, &r, "PUT", "/content/Standup/x", alice, NULL, "x", 1), 400);
    char longm[200] = "/content/";
    memset(longm + 9, 'm', 65);
    strcpy(longm + 74, "/x");
    assert_int_equal(call(fx, &r, "PUT", longm, alice, NULL, "x", 1), 400);

    /* only the two files made it to disk: the long name, nothing else */
    struct store_conference c;
    assert_int_equal(store_conference_get(fx->st, "standup", &c), 0);
    char dir[300];
    snprintf(dir, sizeof(dir), "%s/content/%s", fx->state, c.uid);
    struct resp l = {0};
    assert_int_equal(get(fx, &l, "/content/standup/", alice), 200);
    json_t *doc = json_loadb(body(&l), l.len, 0, NULL);
    assert_int_equal(json_array_size(json_object_get(doc, "files")), 1);
    json_decref(doc);
    resp_free(&l);
    struct stat sb;
    char path[700];
    char hex[300];
    for (int i = 0; i < 120; i++)
        memcpy(hex + 2 * i, "6e", 2);
    hex[240] = '\0';
    snprintf(path, sizeof(path), "%s/%s.sealed", dir, hex);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 077, 0);
    resp_free(&r);
}

static void test_content_quota(void **state)
{
    struct fx *fx = *state;
    struct resp r = {0};
    char alice[2048];
    login_as(fx, "alice", alice, sizeof(alice));
    unsigned char *data = pattern(30000, 2);

    /* on disk a file is its bytes and about 116 more; each counts as at
     * least 4096 */
    struct web_config cfg = default_config();
    cfg.content_max_file = 20000;
    cfg.content_quota_meeting = 25000;
    cfg.content_quota_total = 40000;
    char err[256];
    assert_int_equal(web_reload(fx->w, &cfg, err, sizeof(err)), 0);

    /* one file above content_max_file */
    assert_int_equal(call(fx, &r, "PUT", "/content/standup/big", alice, NULL, data, 20001), 413);
    assert_int_equal(call(fx, &r, "PUT", "/content/standup/a", alice, NULL, data, 20000), 201);
    /* the meeting's quota: 20116 stored + 5000 */
    assert_int_equal(call(fx, &r, "PUT", "/content/standup/b", alice, NULL, data, 5000), 413);
    assert_non_null(strstr(body(&r), "content_quota_meeting"));
    /* 4000 bytes count as 4096 */
    assert_int_equal(call(fx, &r, "PUT", "/content/standup/b", alice, NULL, data, 4000), 201);
    /* replacing a file counts it once */
    assert_int_equal(call(fx, &r, "PUT", "/content/standup/a", alice, NULL, data, 20000), 204);
    /* the server's total */
    assert_int_equal(call(fx, &r, "PUT", "/content/retro/c", alice, NULL, data, 16000), 413);
    assert_non_null(strstr(body(&r), "content_quota_total"));
    assert_int_equal(call(fx, &r, "PUT", "/content/retro/c", alice, NULL, data, 10000), 201);
    /* room made by a removal */
    assert_int_equal(call(fx, &r, "PUT", "/content/retro/d", alice, NULL, data, 13000), 413);
    assert_int_equal(call(fx, &r, "DELETE", "/content/standup/a", alice, NULL, NULL, 0), 204);
    assert_int_equal(call(fx, &r, "PUT", "/content/retro/d", alice, NULL, data, 13000), 201);
    assert_int_equal(get(fx, &r, "/content/retro/d", alice), 200);
    assert_memory_equal(r.body, data, 13000);

    /* web_body_limit: content uploads with a ticket that verifies get
     * content_max_file; without one, or with a bad one, the small limit */
    struct http_request *h = NULL;
    assert_int_equal(
        http_request_new("PUT", (struct http_span){"/content/x/y", 12}, 1, NULL, NULL, 0, &h), 0);
    assert_int_equal(web_body_limit(h, fx->w), cfg.max_body_size);
    http_request_free(h);
    const struct http_span names[] = {{"Authorization", 13}};
    const struct http_span good[] = {{alice, strlen(alice)}};
    assert_int_equal(
        http_request_new("PUT", (struct http_span){"/content/x/y", 12}, 1, names, good, 1, &h), 0);
    assert_int_equal(web_body_limit(h, fx->w), 20000);
    http_request_free(h);
    char forged[2100];
    snprintf(forged, sizeof(forged), "%s", alice);
    forged[strlen(forged) - 2] ^= 1; /* the signature's last characters */
    const struct http_span bad[] = {{forged, strlen(forged)}};
    assert_int_equal(
        http_request_new("PUT", (struct http_span){"/content/x/y", 12}, 1, names, bad, 1, &h), 0);
    assert_int_equal(web_body_limit(h, fx->w), cfg.max_body_size);
    http_request_free(h);
    assert_int_equal(http_request_new("PUT", (struct http_span){"/dav/x", 6}, 1, NULL, NULL, 0, &h),
                     0);
    assert_int_equal(web_body_limit(h, fx->w), cfg.max_body_size);
    http_request_free(h);
    free(data);
    resp_free(&r);
}

static void test_content_corrupt(void **state)
{
    struct fx *fx = *state;
    struct resp r = {0};
    char alice[2048];
    login_as(fx, "alice", alice, sizeof(alice));
    const size_t size = 150000;
    unsigned char *data = pattern(size, 3);
    /* a recognisable plaintext, so that its absence can be checked */
    memcpy(data, "TOP-SECRET-PLAINTEXT", 20);
    assert_int_equal(call(fx, &r, "PUT", "/content/standup/doc", alice, NULL, data, size), 201);
    assert_int_equal(call(fx, &r, "PUT", "/content/standup/other", alice, NULL, data, 100), 201);

    struct store_conference c;
    assert_int_equal(store_conference_get(fx->st, "standup", &c), 0);
    char path[600];
    snprintf(path, sizeof(path), "%s/content/%s/646f63.sealed", fx->state, c.uid);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    /* the file holds no plaintext */
    unsigned char *disk = malloc(size + 1000);
    ssize_t n = pread(fd, disk, size + 1000, 0);
    assert_true(n > (ssize_t)size);
    assert_null(memmem(disk, (size_t)n, "TOP-SECRET", 10));
    free(disk);
    /* one byte flipped in the first segment */
    unsigned char b;
    assert_int_equal(pread(fd, &b, 1, 100 + 5), 1);
    b ^= 0x01;
    assert_int_equal(pwrite(fd, &b, 1, 100 + 5), 1);
    close(fd);

    assert_int_equal(get(fx, &r, "/content/standup/doc", alice), 500);
    assert_null(memmem(r.body, r.len, "TOP-SECRET", 10));
    assert_int_equal(get_range(fx, &r, "/content/standup/doc", alice, "bytes=0-30"), 500);
    assert_null(memmem(r.body, r.len, "SECRET", 6));
    /* segments are sealed each on their own: a range in an intact one is
     * served (only the segments it touches are checked) */
    assert_int_equal(get_range(fx, &r, "/content/standup/doc", alice, "bytes=70000-70099"), 206);
    assert_memory_equal(r.body, data + 70000, 100);
    /* the other file is fine */
    assert_int_equal(get(fx, &r, "/content/standup/other", alice), 200);
    assert_memory_equal(r.body, data, 100);

    /* a file swapped for another (moved on disk): refused */
    char other[600];
    snprintf(other, sizeof(other), "%s/content/%s/6f74686572.sealed", fx->state, c.uid);
    assert_int_equal(rename(other, path), 0);
    assert_int_equal(get(fx, &r, "/content/standup/doc", alice), 500);
    assert_null(memmem(r.body, r.len, "TOP-SECRET", 10));
    /* a byte of the header (the length): the whole file is refused */
    assert_int_equal(call(fx, &r, "PUT", "/content/standup/hdr", alice, NULL, data, 100), 201);
    snprintf(path, sizeof(path), "%s/content/%s/686472.sealed", fx->state, c.uid);
    fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "X", 1, 33), 1);
    close(fd);
    assert_int_equal(get(fx, &r, "/content/standup/hdr", alice), 500);
    assert_int_equal(get_range(fx, &r, "/content/standup/hdr", alice, "bytes=0-9"), 500);
    /* the listing leaves broken files out */
    assert_int_equal(get(fx, &r, "/content/standup/", alice), 200);
    json_t *doc = json_loadb(body(&r), r.len, 0, NULL);
    assert_int_equal(json_array_size(json_object_get(doc, "files")), 0);
    json_decref(doc);
    free(data);
    resp_free(&r);
}

/* --- 8. relay ---------------------------------------------------------------------- */

static void test_relay(void **state)
{
    struct fx *fx = *state;
    struct resp r = {0};
    char bob[2048];
    login_as(fx, "bob", bob, sizeof(bob));

    assert_int_equal(get(fx, &r, "/turn/credentials", bob), 200);
    assert_string_equal(fx->relay_user, "bob");
    json_t *doc = json_loadb(body(&r), r.len, 0, NULL);
    assert_non_null(doc);
    char want[80];
    snprintf(want, sizeof(want), "%lld:bob", WALL0 + 86400);
    assert_string_equal(json_string_value(json_object_get(doc, "username")), want);
    assert_string_equal(json_string_value(json_object_get(doc, "password")),
                        "c2VjcmV0LXBhc3N3b3Jk");
    assert_int_equal(json_integer_value(json_object_get(doc, "ttl")), 86400);
    json_t *uris = json_object_get(doc, "uris");
    assert_int_equal(json_array_size(uris), 2);
    assert_string_equal(json_string_value(json_array_get(uris, 0)),
                        "turn:relay.example.test?transport=udp");
    assert_string_equal(json_string_value(json_array_get(uris, 1)),
                        "turns:relay.example.test?transport=tcp");
    assert_int_equal(json_object_size(doc), 4);
    json_decref(doc);
    assert_string_equal(hdrv(&r, "Cache-Control"), "no-store");

    fx->relay_rc = -ENOENT;
    assert_int_equal(get(fx, &r, "/turn/credentials", bob), 404);
    fx->relay_rc = -EIO;
    assert_int_equal(get(fx, &r, "/turn/credentials", bob), 500);
    assert_null(strstr(body(&r), "c2VjcmV0"));
    /* the callback is not asked without a ticket */
    unsigned calls = fx->relay_calls;
    fx->relay_rc = 0;
    assert_int_equal(get(fx, &r, "/turn/credentials", NULL), 401);
    assert_int_equal(fx->relay_calls, calls);

    /* status counts */
    json_t *st = web_status(fx->w);
    assert_true(json_integer_value(json_object_get(st, "requests")) >= 5);
    assert_int_equal(json_integer_value(json_object_get(st, "tickets_issued")), 1);
    json_decref(st);
    resp_free(&r);
}

/* GET /metrics: served to https.metrics_networks, the metrics token and
 * administrators' tickets; refused to everyone else, wrong tokens counted
 * as failed logins. */
static void test_metrics_access(void **state)
{
    struct fx *fx = *state;
    struct resp r = {0};
    unsigned nsrc = 0;
    /* each refusal below from a source of its own, so that the throttle
     * (tested at the end) stays out of the way */
#define FRESH_SOURCE()                                                                             \
    do {                                                                                           \
        char a_[32];                                                                               \
        snprintf(a_, sizeof(a_), "192.0.2.%u:40000", 100 + nsrc++);                                \
        assert_int_equal(netaddr_parse(a_, &fx->peer.addr), 0);                                    \
    } while (0)
    struct netaddr home = fx->peer.addr;
    char good[128], wrong[128], digest[DIGEST_HEX_BUF];
    snprintf(good, sizeof(good), "Bearer " WEB_METRICS_TOKEN_PREFIX "%043d", 7);
    snprintf(wrong, sizeof(wrong), "Bearer " WEB_METRICS_TOKEN_PREFIX "%043d", 8);

    /* no credentials: 401 with a Bearer challenge, no metrics */
    assert_int_equal(get(fx, &r, "/metrics", NULL), 401);
    assert_string_equal(hdrv(&r, "WWW-Authenticate"), "Bearer realm=\"" DOMAIN "\"");
    assert_null(strstr(body(&r), "x_total"));
    /* no token issued yet: a token-shaped one is wrong */
    FRESH_SOURCE();
    assert_int_equal(get(fx, &r, "/metrics", good), 401);
    assert_invalid_token(&r, "wrong metrics token");

    /* the token (its digest in the store, as parleyctl writes it) */
    assert_int_equal(digest_hash_hex(DIGEST_ALG_SHA256, strview_cstr(good + 7), digest), 0);
    assert_int_equal(store_setting_set(fx->st, WEB_METRICS_TOKEN_SETTING, digest), 0);
    fx->peer.addr = home;
    assert_int_equal(get(fx, &r, "/metrics", good), 200);
    assert_string_equal(hdr(&r, "Content-Type"), PROM_CONTENT_TYPE);
    assert_string_equal(body(&r), METRICS_TEXT);
    FRESH_SOURCE();
    assert_int_equal(get(fx, &r, "/metrics", wrong), 401);
    assert_invalid_token(&r, "wrong metrics token");
    /* one character short, or the digest itself, are no token */
    char shorter[128];
    snprintf(shorter, sizeof(shorter), "%.*s", (int)strlen(good) - 1, good);
    FRESH_SOURCE();
    assert_int_equal(get(fx, &r, "/metrics", shorter), 401);
    char as_digest[128];
    snprintf(as_digest, sizeof(as_digest), "Bearer %s", digest);
    FRESH_SOURCE();
    assert_int_equal(get(fx, &r, "/metrics", as_digest), 401);
    /* nor its prefix in capitals, nor with padding, nor under another
     * scheme; the scheme's name itself is case-insensitive (RFC 9110) */
    char variant[160];
    snprintf(variant, sizeof(variant), "Bearer PMT_%s", good + 7 + 4);
    FRESH_SOURCE();
    assert_int_equal(get(fx, &r, "/metrics", variant), 401);
    snprintf(variant, sizeof(variant), "%s=", good);
    FRESH_SOURCE();
    assert_int_equal(get(fx, &r, "/metrics", variant), 401);
    snprintf(variant, sizeof(variant), "Token %s", good + 7);
    FRESH_SOURCE();
    assert_int_equal(get(fx, &r, "/metrics", variant), 401);
    snprintf(variant, sizeof(variant), "bearer %s", good + 7);
    assert_int_equal(get(fx, &r, "/metrics", variant), 200);
    fx->peer.addr = home;
    /* nothing but GET and HEAD */
    assert_int_equal(call(fx, &r, "POST", "/metrics", good, NULL, NULL, 0), 405);
    assert_int_equal(call(fx, &r, "HEAD", "/metrics", good, NULL, NULL, 0), 200);

    /* revoked: refused */
    assert_int_equal(store_setting_delete(fx->st, WEB_METRICS_TOKEN_SETTING), 0);
    FRESH_SOURCE();
    assert_int_equal(get(fx, &r, "/metrics", good), 401);
    fx->peer.addr = home;
    assert_int_equal(store_setting_set(fx->st, WEB_METRICS_TOKEN_SETTING, digest), 0);

    /* tickets: a user who is no administrator gets 403, an administrator
     * the metrics; Basic is not accepted at all */
    char bob[2048], alice[2048], basic[512];
    login_as(fx, "bob", bob, sizeof(bob));
    assert_int_equal(get(fx, &r, "/metrics", bob), 403);
    assert_null(strstr(body(&r), "x_total"));
    assert_int_equal(store_user_set_admin(fx->st, "alice", true), 0);
    login_as(fx, "alice", alice, sizeof(alice));
    assert_int_equal(get(fx, &r, "/metrics", alice), 200);
    assert_string_equal(body(&r), METRICS_TEXT);
    basic_authz(basic, sizeof(basic), "alice", "alice-pw");
    FRESH_SOURCE();
    assert_int_equal(get(fx, &r, "/metrics", basic), 401);
    fx->peer.addr = home;
    /* no longer an administrator: the ticket ends with the change */
    clock_fake_advance(&fx->clock, 2000);
    assert_int_equal(store_user_set_admin(fx->st, "alice", false), 0);
    FRESH_SOURCE();
    assert_int_equal(get(fx, &r, "/metrics", alice), 401);
    fx->peer.addr = home;
    login_as(fx, "alice", alice, sizeof(alice));
    assert_int_equal(get(fx, &r, "/metrics", alice), 403);

    /* https.metrics_networks: inside, no credentials needed; outside, 401 */
    struct cidr nets[1];
    assert_int_equal(cidr_parse("198.51.100.0/24", &nets[0]), 0);
    struct web_config cfg = default_config();
    cfg.metrics_networks = nets;
    cfg.nmetrics_networks = 1;
    char err[256];
    assert_int_equal(web_reload(fx->w, &cfg, err, sizeof(err)), 0);
    assert_int_equal(get(fx, &r, "/metrics", NULL), 401); /* 192.0.2.10 */
    assert_int_equal(netaddr_parse("198.51.100.7:40000", &fx->peer.addr), 0);
    assert_int_equal(get(fx, &r, "/metrics", NULL), 200);
    assert_string_equal(body(&r), METRICS_TEXT);

    /* wrong tokens from a source count like failed logins: after
     * MAX_FAILURES even the right one is refused from there, unchecked */
    assert_int_equal(netaddr_parse("203.0.113.9:40000", &fx->peer.addr), 0);
    for (int i = 0; i < MAX_FAILURES; i++)
        assert_int_equal(get(fx, &r, "/metrics", wrong), 401);
    assert_int_equal(get(fx, &r, "/metrics", good), 429);
    assert_non_null(hdr(&r, "Retry-After"));
    /* a garbage ticket counts too (another source) */
    assert_int_equal(netaddr_parse("203.0.113.10:40000", &fx->peer.addr), 0);
    for (int i = 0; i < MAX_FAILURES; i++)
        assert_int_equal(get(fx, &r, "/metrics", "Bearer not.a.ticket"), 401);
    assert_int_equal(get(fx, &r, "/metrics", good), 429);
    /* elsewhere the token still works */
    fx->peer.addr = home;
    assert_int_equal(get(fx, &r, "/metrics", good), 200);

    /* answers by status class */
    uint64_t counts[6];
    web_http_counts(fx->w, counts);
    assert_int_equal(counts[0], 0);
    assert_true(counts[2] >= 6);
    assert_true(counts[4] >= 10);
    assert_int_equal(counts[5], 0);
    resp_free(&r);
#undef FRESH_SOURCE
}

/* A broad guess at the metrics token (wrong ones from many sources) blocks
 * the "(metrics)" name for every source that has not used the token: an
 * administrator's ticket, signed and not guessed, is not refused for it,
 * nor from a source that sent wrong tokens itself. */
static void test_metrics_ticket_not_locked_out(void **state)
{
    struct fx *fx = *state;
    struct resp r = {0};
    char good[128], wrong[128], digest[DIGEST_HEX_BUF], alice[2048];
    snprintf(good, sizeof(good), "Bearer " WEB_METRICS_TOKEN_PREFIX "%043d", 7);
    snprintf(wrong, sizeof(wrong), "Bearer " WEB_METRICS_TOKEN_PREFIX "%043d", 8);
    assert_int_equal(digest_hash_hex(DIGEST_ALG_SHA256, strview_cstr(good + 7), digest), 0);
    assert_int_equal(store_setting_set(fx->st, WEB_METRICS_TOKEN_SETTING, digest), 0);
    assert_int_equal(store_user_set_admin(fx->st, "alice", true), 0);
    clock_fake_advance(&fx->clock, 2000);
    login_as(fx, "alice", alice, sizeof(alice));
    struct netaddr home = fx->peer.addr;
    /* the scraper has used the token from home: trusted there */
    assert_int_equal(get(fx, &r, "/metrics", good), 200);

    struct throttle_config tc = {
        .max_failures = MAX_FAILURES,
        .max_source_failures = 1000,
        .max_user_failures = 2 * MAX_FAILURES,
        .window_ms = 600000,
        .backoff_ms = BACKOFF_MS,
        .backoff_max_ms = 8 * BACKOFF_MS,
        .trust_ms = 3600000,
        .max_entries = 1000,
    };
    throttle_set_config(fx->throttle, &tc);
    for (int s = 0; s < 2; s++) {
        char a[32];
        snprintf(a, sizeof(a), "203.0.113.%d:40000", 50 + s);
        assert_int_equal(netaddr_parse(a, &fx->peer.addr), 0);
        for (int i = 0; i < MAX_FAILURES; i++)
            assert_int_equal(get(fx, &r, "/metrics", wrong), 401);
    }
    /* blocked everywhere the token was not used, even for the right one */
    assert_int_equal(netaddr_parse("198.51.100.77:40000", &fx->peer.addr), 0);
    assert_int_equal(get(fx, &r, "/metrics", good), 429);
    /* an administrator's ticket is no guess: served there */
    assert_int_equal(get(fx, &r, "/metrics", alice), 200);
    assert_string_equal(body(&r), METRICS_TEXT);
    /* and from a source blocked for its own wrong tokens */
    assert_int_equal(netaddr_parse("203.0.113.50:40000", &fx->peer.addr), 0);
    assert_int_equal(get(fx, &r, "/metrics", good), 429);
    assert_int_equal(get(fx, &r, "/metrics", alice), 200);
    /* a garbage ticket still counts, and is still refused */
    assert_int_equal(get(fx, &r, "/metrics", "Bearer not.a.ticket"), 401);
    /* the scraper where it used the token: still served */
    fx->peer.addr = home;
    assert_int_equal(get(fx, &r, "/metrics", good), 200);
    resp_free(&r);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_routing),         T(test_ticket_basic),
        T(test_ticket_throttle), T(test_ticket_digest),
        T(test_bearer),          T(test_bearer_refused),
        T(test_dav_propfind),    T(test_dav_multiget),
        T(test_dav_query),       T(test_dav_sync),
        T(test_dav_get),         T(test_vcard),
        T(test_groups),          T(test_content),
        T(test_content_names),   T(test_content_quota),
        T(test_content_corrupt), T(test_relay),
        T(test_metrics_access),  T(test_metrics_ticket_not_locked_out),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
