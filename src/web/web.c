/*
 * web — the service object, the routing of a request, answers, the access
 * log, and the two small services: group expansion and relay credentials.
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/prom.h"
#include "http/response.h"
#include "web/web_priv.h"

#define WEB_GZIP_MIN 1024 /* smaller bodies go as they are */

/* --- answers ------------------------------------------------------------- */

void web_reply_begin(struct web_req *r, int status)
{
    r->status = status;
    http_response_begin(r->out, status, NULL);
}

void web_reply_end(struct web_req *r, const char *content_type, const void *body, size_t len)
{
    if (content_type)
        http_response_header(r->out, "Content-Type", content_type);
    http_response_end(r->out, body, len, r->head, r->close);
    r->bytes = r->head ? 0 : len;
}

void web_reply_end_maybe_gzip(struct web_req *r, const char *content_type, const void *body,
                              size_t len)
{
    if (len >= WEB_GZIP_MIN && http_accepts_gzip(r->http)) {
        struct strbuf z = STRBUF_INIT;
        if (http_gzip(body, len, &z) == 0 && !z.err) {
            http_response_header(r->out, "Content-Encoding", "gzip");
            http_response_header(r->out, "Vary", "Accept-Encoding");
            web_reply_end(r, content_type, z.p, z.len);
            strbuf_free(&z);
            return;
        }
        strbuf_free(&z);
    }
    if (len >= WEB_GZIP_MIN)
        http_response_header(r->out, "Vary", "Accept-Encoding");
    web_reply_end(r, content_type, body, len);
}

void web_reply_text(struct web_req *r, int status, const char *text)
{
    web_reply_begin(r, status);
    char body[512];
    int n = snprintf(body, sizeof(body), "%s\n", text);
    web_reply_end(r, "text/plain; charset=utf-8", body,
                  n < 0 ? 0 : ((size_t)n < sizeof(body) ? (size_t)n : sizeof(body) - 1));
}

void web_reply_json(struct web_req *r, int status, json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text) {
        web_reply_text(r, 500, "out of memory");
        return;
    }
    web_reply_begin(r, status);
    size_t len = strlen(text);
    web_reply_end_maybe_gzip(r, "application/json", text, len);
    free(text);
}

static void web_reply_method_not_allowed(struct web_req *r, const char *allow)
{
    web_reply_begin(r, 405);
    http_response_header(r->out, "Allow", allow);
    static const char text[] = "method not allowed\n";
    web_reply_end(r, "text/plain; charset=utf-8", text, sizeof(text) - 1);
}

/* --- group expansion: GET /groups/NAME/members --------------------------- */

struct members_walk {
    json_t *list;
    const char *domain;
};

static int members_add(const struct store_user *u, void *arg)
{
    struct members_walk *mw = arg;
    char uri[STORE_USER_NAME_MAX + 300];
    snprintf(uri, sizeof(uri), "sip:%s@%s", u->name, mw->domain);
    json_t *m = json_pack("{s:s, s:s, s:s}", "user", u->name, "uri", uri, "name",
                          u->display_name[0] ? u->display_name : u->name);
    if (!m || json_array_append_new(mw->list, m) != 0)
        return -ENOMEM;
    return 0;
}

static void web_groups_members(struct web_req *r, const char *name)
{
    struct web *w = r->w;
    if (web_auth_request(r, WEB_AUTH_BEARER) != 0)
        return;
    struct store_group g;
    int rc = store_user_name_valid(name) ? store_group_get(w->env.store, name, &g) : -ENOENT;
    if (rc == -ENOENT) {
        web_reply_text(r, 404, "no such group");
        return;
    }
    struct members_walk mw = {json_array(), w->domain};
    bool truncated = false;
    if (rc == 0 && mw.list)
        rc = store_group_expand(w->env.store, name, WEB_GROUP_DEPTH, members_add, &mw, &truncated);
    if (rc != 0 || !mw.list) {
        json_decref(mw.list);
        log_error("http.store_failed", "path", r->http->path, "reason", store_errmsg(w->env.store));
        web_reply_text(r, 500, "the store could not be read");
        return;
    }
    json_t *doc = json_pack("{s:s, s:s, s:o, s:b}", "group", g.name, "name",
                            g.display_name[0] ? g.display_name : g.name, "members", mw.list,
                            "truncated", truncated);
    web_reply_json(r, 200, doc);
}

/* --- relay credentials: GET /turn/credentials ---------------------------- */

static void web_turn_credentials(struct web_req *r)
{
    struct web *w = r->w;
    if (web_auth_request(r, WEB_AUTH_BEARER) != 0)
        return;
    struct web_relay_grant g;
    memset(&g, 0, sizeof(g));
    int rc = w->env.relay_credentials ? w->env.relay_credentials(w->env.arg, r->user, &g) : -ENOENT;
    if (rc == -ENOENT) {
        web_reply_text(r, 404, "no media relay on this server");
        return;
    }
    if (rc != 0) {
        web_reply_text(r, 500, "relay credentials could not be issued");
        return;
    }
    json_t *uris = json_array();
    for (size_t i = 0; uris && i < g.nuris; i++)
        json_array_append_new(uris, json_string(g.uris[i]));
    json_t *doc = json_pack("{s:s, s:s, s:I, s:o}", "username", g.username, "password", g.password,
                            "ttl", (json_int_t)g.ttl_s, "uris", uris);
    OPENSSL_cleanse(&g, sizeof(g));
    web_reply_json(r, 200, doc);
}

/* --- metrics: GET /metrics ---------------------------------------------- */

static void web_metrics(struct web_req *r)
{
    struct web *w = r->w;
    if (!w->env.metrics) {
        web_reply_text(r, 404, "not found");
        return;
    }
    if (web_auth_metrics(r) != 0)
        return;
    struct strbuf text = STRBUF_INIT;
    int rc = w->env.metrics(w->env.arg, &text);
    if (rc != 0 || text.err) {
        strbuf_free(&text);
        web_reply_text(r, 500, "the metrics could not be gathered");
        return;
    }
    web_reply_begin(r, 200);
    http_response_header(r->out, "Cache-Control", "no-store");
    web_reply_end_maybe_gzip(r, PROM_CONTENT_TYPE, text.p, text.len);
    strbuf_free(&text);
}

/* --- routing ------------------------------------------------------------- */

static bool path_is(const char *path, const char *prefix, const char **rest)
{
    size_t n = strlen(prefix);
    if (strncmp(path, prefix, n) != 0)
        return false;
    *rest = path + n;
    return true;
}

static void web_route(struct web_req *r)
{
    const char *path = r->http->path, *rest;
    enum http_method m = r->http->method;

    if (strcmp(path, "/auth/ticket") == 0) {
        if (m != HTTP_M_POST)
            web_reply_method_not_allowed(r, "POST");
        else
            web_auth_ticket(r);
        return;
    }
    if (strcmp(path, "/.well-known/carddav") == 0 || strcmp(path, "/dav") == 0 ||
        path_is(path, "/dav/", &rest)) {
        web_dav_handle(r, path);
        return;
    }
    if (path_is(path, "/groups/", &rest)) {
        const char *slash = strchr(rest, '/');
        if (!slash || strcmp(slash, "/members") != 0 || slash == rest ||
            (size_t)(slash - rest) > STORE_USER_NAME_MAX) {
            web_reply_text(r, 404, "not found");
            return;
        }
        if (m != HTTP_M_GET && m != HTTP_M_HEAD) {
            web_reply_method_not_allowed(r, "GET, HEAD");
            return;
        }
        char name[STORE_USER_NAME_MAX + 1];
        memcpy(name, rest, (size_t)(slash - rest));
        name[slash - rest] = '\0';
        web_groups_members(r, name);
        return;
    }
    if (strcmp(path, "/turn/credentials") == 0) {
        if (m != HTTP_M_GET && m != HTTP_M_HEAD)
            web_reply_method_not_allowed(r, "GET, HEAD");
        else
            web_turn_credentials(r);
        return;
    }
    if (path_is(path, "/content/", &rest)) {
        web_content_handle(r, rest);
        return;
    }
    if (strcmp(path, "/metrics") == 0) {
        if (m != HTTP_M_GET && m != HTTP_M_HEAD)
            web_reply_method_not_allowed(r, "GET, HEAD");
        else
            web_metrics(r);
        return;
    }
    web_reply_text(r, 404, "not found");
}

void web_handle(struct web *w, const struct web_peer *peer, const struct http_request *req,
                struct strbuf *out, bool *close)
{
    uint64_t t0 = clock_now_ms(w->env.clock);
    struct web_req r = {
        .w = w,
        .peer = peer,
        .http = req,
        .out = out,
        .close = !req->keep_alive,
        .head = req->method == HTTP_M_HEAD,
    };
    w->requests++;

    /* What the store said last may be out of date: parleyctl writes it
     * directly (a user removed, a name changed). */
    bool changed = false;
    if (store_data_changed(w->env.store, &changed) == 0 && changed) {
        web_auth_forget(w);
        if (w->book)
            w->book->seq = -1; /* rebuilt at its next use */
    }
    web_route(&r);
    if (r.status >= 100 && r.status < 600)
        w->answered[r.status / 100]++;

    *close = r.close;
    if (!log_enabled(LOG_LEVEL_INFO))
        return;
    char p[NETADDR_STRLEN];
    log_info("http.request", "conn", LOG_INT(peer->conn), "peer", netaddr_format(&peer->addr, p),
             "method", req->method_name, "path", req->path, "status", LOG_INT(r.status), "bytes",
             LOG_INT(r.bytes), "duration_ms", LOG_INT(clock_now_ms(w->env.clock) - t0), "user",
             r.user);
}

size_t web_body_limit(const struct http_request *head, void *arg)
{
    struct web *w = arg;
    const struct web_gate *g = atomic_load(&w->gate);
    if (head->method != HTTP_M_PUT || strncmp(head->path, "/content/", 9) != 0)
        return g->max_body_size;
    /* A large body is buffered only for a head whose ticket verifies here
     * (signature, expiry, domain): a stranger's upload is refused at its
     * head, before any of it is held in memory. The core checks the
     * ticket's account and the meeting's rights once the body is in. */
    const char *a = http_request_header(head, "Authorization");
    if (!a || strncasecmp(a, "Bearer ", 7) != 0)
        return g->max_body_size;
    const char *token = a + 7;
    while (*token == ' ')
        token++;
    char user[STORE_USER_NAME_MAX + 1];
    /* the clock is the system's in parleyd (any thread may read it) */
    if (ticket_verify(g->keys, token, strlen(token), g->domain, clock_wall_s(w->env.clock),
                      g->grace_s, user, NULL, NULL, NULL) != TICKET_OK)
        return g->max_body_size;
    return g->content_max_file;
}

/* Publishes a new gate for the workers (the old ones stay until web_free). */
static int web_publish_gate(struct web *w)
{
    struct web_gate *g = calloc(1, sizeof(*g));
    if (!g || !(g->domain = strdup(w->domain))) {
        free(g);
        return -ENOMEM;
    }
    g->keys = w->keys;
    g->grace_s = w->cfg.ticket_lifetime_s;
    g->max_body_size = w->cfg.max_body_size;
    g->content_max_file = w->cfg.content_max_file;
    g->older = atomic_load(&w->gate);
    atomic_store(&w->gate, g);
    return 0;
}

/* --- the object ---------------------------------------------------------- */

static int web_apply_config(struct web *w, const struct web_config *cfg)
{
    char *domain = strdup(cfg->domain ? cfg->domain : "");
    char *realm = strdup(cfg->realm ? cfg->realm : "");
    struct cidr *nets = NULL;
    if (cfg->nmetrics_networks) {
        nets = calloc(cfg->nmetrics_networks, sizeof(*nets));
        if (nets)
            memcpy(nets, cfg->metrics_networks, cfg->nmetrics_networks * sizeof(*nets));
    }
    if (!domain || !realm || (cfg->nmetrics_networks && !nets)) {
        free(domain);
        free(realm);
        free(nets);
        return -ENOMEM;
    }
    free(w->domain);
    free(w->realm);
    free(w->metrics_networks);
    w->domain = domain;
    w->realm = realm;
    w->metrics_networks = nets;
    w->cfg = *cfg;
    w->cfg.domain = w->domain;
    w->cfg.realm = w->realm;
    w->cfg.metrics_networks = w->metrics_networks;
    return 0;
}

int web_new(const struct web_env *env, const struct web_config *cfg, struct web **out, char *err,
            size_t errlen)
{
    *out = NULL;
    struct web *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->env = *env;
    w->state_dir = strdup(env->state_dir);
    w->env.state_dir = w->state_dir;
    w->tickets = ticket_cache_new(4096);
    w->auth_log = log_limit_new("http.auth_failed", 1024, 20);
    int rc = (!w->state_dir || !w->tickets || !w->auth_log) ? -ENOMEM : web_apply_config(w, cfg);
    if (rc) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    bool created = false;
    rc = ticket_keys_load(env->libctx, w->state_dir, clock_wall_s(env->clock), &w->keys, &created,
                          err, errlen);
    if (rc)
        goto out;
    if (created)
        log_info("https.ticket_key_created", "key", ticket_keys_current_id(w->keys));
    char path[4096];
    snprintf(path, sizeof(path), "%s/content.key", w->state_dir);
    rc = sealed_master_open(env->libctx, path, &w->master, &created, err, errlen);
    if (rc)
        goto out;
    if (created)
        log_info("https.content_key_created", "path", path);
    rc = web_publish_gate(w);
    if (rc) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    *out = w;
    return 0;
out:
    web_free(w);
    return rc;
}

int web_reload(struct web *w, const struct web_config *cfg, char *err, size_t errlen)
{
    if (ticket_keys_changed(w->keys, w->state_dir)) {
        struct ticket_keys *k = NULL;
        bool created = false;
        int rc = ticket_keys_load(w->env.libctx, w->state_dir, clock_wall_s(w->env.clock), &k,
                                  &created, err, errlen);
        if (rc)
            return rc;
        /* the old keys stay with the gate that names them (web_free) */
        w->keys = k;
        ticket_cache_clear(w->tickets);
        log_info("https.ticket_keys_loaded", "key", ticket_keys_current_id(k));
    }
    int rc = web_apply_config(w, cfg);
    if (rc == 0)
        rc = web_publish_gate(w);
    if (rc)
        snprintf(err, errlen, "out of memory");
    return rc;
}

void web_free(struct web *w)
{
    if (!w)
        return;
    /* every gate, and the keys each named (a reload may have kept them) */
    struct ticket_keys *freed = NULL;
    for (struct web_gate *g = atomic_load(&w->gate), *older; g; g = older) {
        older = g->older;
        if (g->keys != freed && g->keys != w->keys)
            ticket_keys_free(g->keys);
        freed = g->keys;
        free(g->domain);
        free(g);
    }
    ticket_keys_free(w->keys);
    ticket_cache_free(w->tickets);
    sealed_master_free(w->master);
    web_book_free(w->book);
    log_limit_free(w->auth_log);
    free(w->state_dir);
    free(w->metrics_networks);
    free(w->domain);
    free(w->realm);
    free(w);
}

void web_http_counts(const struct web *w, uint64_t out[6])
{
    memcpy(out, w->answered, sizeof(w->answered));
}

json_t *web_status(struct web *w)
{
    return json_pack("{s:s, s:I, s:I, s:I, s:I, s:I}", "ticket_key",
                     w->keys ? ticket_keys_current_id(w->keys) : "", "ticket_lifetime",
                     (json_int_t)w->cfg.ticket_lifetime_s, "requests", (json_int_t)w->requests,
                     "tickets_issued", (json_int_t)w->tickets_issued, "logins_failed",
                     (json_int_t)w->logins_failed, "tokens_refused", (json_int_t)w->tokens_refused);
}
