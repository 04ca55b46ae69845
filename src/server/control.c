#include "server/control.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "anchor/anchor.h"
#include "core/log.h"
#include "relay/relay.h"
#include "registrar/throttle.h"
#include "server/metrics.h"
#include "server/runtime.h"
#include "server/status.h"

#define CONTROL_REQUEST_MAX 4096

struct control_client {
    struct control *ctl;
    struct bufferevent *bev;
    struct control_client *prev, *next;
};

struct control {
    struct runtime *rt;
    struct evconnlistener *evl;
    char *path;
    struct control_client *clients; /* so a stop mid-request frees them */
};

static void control_client_free(struct control_client *cl)
{
    if (cl->prev)
        cl->prev->next = cl->next;
    else
        cl->ctl->clients = cl->next;
    if (cl->next)
        cl->next->prev = cl->prev;
    bufferevent_free(cl->bev);
    free(cl);
}

static void control_client_done(struct bufferevent *bev, void *arg)
{
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        control_client_free(arg);
}

static void control_client_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    (void)what;
    control_client_free(arg);
}

static json_t *control_error(const char *message)
{
    return json_pack("{s:b, s:s}", "ok", 0, "error", message);
}

/* Names are shown as sent, with anything outside printable ASCII
 * escaped: a record for a name that is no user must still be listed. */
static json_t *control_printable(const char *text)
{
    char out[4 * 65 + 1];
    size_t j = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p && j + 5 < sizeof(out); p++) {
        if (*p >= 0x20 && *p < 0x7f && *p != '\\')
            out[j++] = (char)*p;
        else
            j += (size_t)snprintf(out + j, sizeof(out) - j, "\\x%02x", *p);
    }
    out[j] = '\0';
    return json_string(out);
}

static bool control_throttle_one(const struct throttle_info *info, void *arg)
{
    json_t *o =
        json_pack("{s:s, s:s, s:i, s:I, s:i}", "scope", throttle_scope_name(info->scope), "source",
                  info->source, "failures", (int)info->failures, "blocked_s",
                  (json_int_t)((info->blocked_ms + 999) / 1000), "blocks", (int)info->blocks);
    json_object_set_new(o, "user",
                        info->scope == THROTTLE_SOURCE ? json_string("*")
                                                       : control_printable(info->user));
    json_array_append_new(arg, o);
    return true;
}

static void control_time(int64_t t, char *buf, size_t cap)
{
    struct tm tm;
    time_t tt = (time_t)t;
    gmtime_r(&tt, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static bool control_call_one(const struct proxy_call_info *c, void *arg)
{
    char started[32], answered[32] = "";
    control_time(c->started, started, sizeof(started));
    if (c->answered)
        control_time(c->answered, answered, sizeof(answered));
    json_array_append_new(arg,
                          json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "call_id",
                                    c->call_id, "caller", c->caller, "callee", c->callee, "started",
                                    started, "answered", answered, "state", c->state, "media",
                                    c->media, "duration_s", (json_int_t)(time(NULL) - c->started)));
    return true;
}

static json_t *control_unblock(struct runtime *rt, json_t *req)
{
    const char *user = NULL, *source = NULL;
    if (json_unpack(req, "{s:s, s?:s}", "user", &user, "source", &source) != 0)
        return control_error("unblock needs a \"user\"");
    struct netaddr a;
    if (source && netaddr_parse_ip(source, 0, &a) != 0)
        return control_error("source must be a numeric IPv4 or IPv6 address");
    struct throttle_unblocked u = {0};
    if (rt->throttle)
        throttle_unblock(rt->throttle, user, source ? &a : NULL, &u);
    if (u.removed)
        log_info("auth.unblocked", "user", user, "source", source ? source : "(all)", "records",
                 LOG_INT(u.removed));
    return json_pack("{s:b, s:I, s:I}", "ok", 1, "removed", (json_int_t)u.removed, "user_blocked_s",
                     (json_int_t)((u.user_block_ms + 999) / 1000));
}

static json_t *control_dispatch(struct runtime *rt, const char *line)
{
    json_error_t jerr;
    json_t *req = json_loads(line, 0, &jerr);
    json_t *reply = NULL;
    const char *cmd = NULL;

    if (!req || json_unpack(req, "{s:s}", "command", &cmd) != 0) {
        reply = control_error("request must be a JSON object with a \"command\"");
        goto out;
    }
    if (strcmp(cmd, "status") == 0) {
        reply = status_build(rt->cfg, rt->tls, rt->fips, rt);
    } else if (strcmp(cmd, "presence-rules") == 0) {
        const char *user = NULL;
        json_unpack(req, "{s?:s}", "user", &user);
        if (rt->presence)
            presence_rules_changed(rt->presence, user);
        reply = json_pack("{s:b}", "ok", 1);
    } else if (strcmp(cmd, "partners") == 0) {
        int rc = rt->proxy ? sipcore_load_partners(rt) : -ENOENT;
        reply = json_pack("{s:b}", "ok", rc == 0);
    } else if (strcmp(cmd, "dialplan") == 0) {
        int rc = rt->proxy ? mediation_load_dialplan(rt) : -ENOENT;
        reply = json_pack("{s:b}", "ok", rc == 0);
    } else if (strcmp(cmd, "trunks") == 0) {
        reply = json_pack("{s:b, s:o}", "ok", 1, "trunks",
                          rt->proxy ? proxy_trunks_status(rt->proxy) : json_array());
    } else if (strcmp(cmd, "calls") == 0) {
        json_t *calls = json_array();
        if (rt->proxy)
            proxy_foreach_call(rt->proxy, control_call_one, calls);
        reply = json_pack("{s:b, s:o}", "ok", 1, "active", calls);
    } else if (strcmp(cmd, "throttle") == 0) {
        json_t *records = json_array();
        if (rt->throttle)
            throttle_foreach(rt->throttle, control_throttle_one, records);
        reply = json_pack("{s:b, s:o}", "ok", 1, "records", records);
    } else if (strcmp(cmd, "unblock") == 0) {
        reply = control_unblock(rt, req);
    } else if (strcmp(cmd, "registrations") == 0) {
        reply = status_registrations(rt);
    } else if (strcmp(cmd, "relay") == 0) {
        reply = relay_status(rt->relay);
        json_object_set_new(reply, "ok", json_true());
    } else if (strcmp(cmd, "media") == 0) {
        reply = anchor_status(rt->anchor);
        json_object_set_new(reply, "ok", json_true());
        /* what the running server does, not what the file says now */
        json_object_set_new(reply, "anchor", json_string(rt->cfg->media.anchor));
    } else if (strcmp(cmd, "metrics") == 0) {
        /* the text GET /metrics serves, made by the same function */
        struct strbuf text = STRBUF_INIT;
        if (metrics_text(rt, &text) == 0)
            reply = json_pack("{s:b, s:s%}", "ok", 1, "text", text.p ? text.p : "", text.len);
        strbuf_free(&text);
    } else if (strcmp(cmd, "reload") == 0) {
        struct strbuf report = STRBUF_INIT;
        int rc = runtime_reload(rt, &report);
        reply = json_pack("{s:b, s:s}", "ok", rc == 0, rc == 0 ? "message" : "error",
                          strbuf_cstr(&report));
        strbuf_free(&report);
    } else {
        reply = control_error("unknown command");
    }
out:
    json_decref(req);
    return reply ? reply : control_error("out of memory");
}

static void control_client_read(struct bufferevent *bev, void *arg)
{
    struct control_client *cl = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len;
    char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);

    if (!line) {
        if (evbuffer_get_length(in) > CONTROL_REQUEST_MAX)
            control_client_free(cl);
        return;
    }
    json_t *reply = control_dispatch(cl->ctl->rt, line);
    free(line);
    char *text = json_dumps(reply, JSON_COMPACT);
    json_decref(reply);
    bufferevent_disable(bev, EV_READ);
    if (text) {
        bufferevent_write(bev, text, strlen(text));
        bufferevent_write(bev, "\n", 1);
        free(text);
    }
    bufferevent_setcb(bev, NULL, control_client_done, control_client_event, cl);
}

static void control_on_accept(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa,
                              int salen, void *arg)
{
    (void)evl;
    (void)sa;
    (void)salen;
    struct control *ctl = arg;
    struct control_client *cl = calloc(1, sizeof(*cl));
    struct bufferevent *bev =
        cl ? bufferevent_socket_new(ctl->rt->base, fd,
                                    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS)
           : NULL;
    if (!bev) {
        free(cl);
        close(fd);
        return;
    }
    cl->ctl = ctl;
    cl->bev = bev;
    cl->next = ctl->clients;
    if (ctl->clients)
        ctl->clients->prev = cl;
    ctl->clients = cl;
    struct timeval tv = {5, 0};
    bufferevent_set_timeouts(bev, &tv, &tv);
    bufferevent_setwatermark(bev, EV_READ, 0, CONTROL_REQUEST_MAX + 1);
    bufferevent_setcb(bev, control_client_read, NULL, control_client_event, cl);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

int control_open(struct runtime *rt, struct control **out, char *err, size_t errlen)
{
    struct control *ctl = calloc(1, sizeof(*ctl));
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int rc = 0;

    if (!ctl)
        return -ENOMEM;
    ctl->rt = rt;
    size_t n = strlen(rt->cfg->state_dir) + sizeof("/" CONTROL_SOCKET_NAME);
    ctl->path = malloc(n);
    if (!ctl->path) {
        free(ctl);
        return -ENOMEM;
    }
    snprintf(ctl->path, n, "%s/%s", rt->cfg->state_dir, CONTROL_SOCKET_NAME);
    if (n > sizeof(sun.sun_path)) {
        snprintf(err, errlen, "%s: path too long for a Unix socket (%zu bytes, at most %zu)",
                 ctl->path, n - 1, sizeof(sun.sun_path) - 1);
        rc = -ENAMETOOLONG;
        goto fail;
    }
    memcpy(sun.sun_path, ctl->path, n);
    /* We hold the state-directory lock, so a socket file left here is from
     * a parleyd that died. */
    unlink(ctl->path);
    /* Created private: only the server's user (and root) may ask it things. */
    mode_t old = umask(0077);
    ctl->evl = evconnlistener_new_bind(rt->base, control_on_accept, ctl,
                                       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 16,
                                       (struct sockaddr *)&sun, (int)sizeof(sun));
    umask(old);
    if (!ctl->evl) {
        rc = -errno;
        snprintf(err, errlen, "%s: cannot create the control socket: %s", ctl->path, strerror(-rc));
        goto fail;
    }
    chmod(ctl->path, 0600);
    *out = ctl;
    return 0;
fail:
    free(ctl->path);
    free(ctl);
    return rc;
}

void control_close(struct control *ctl)
{
    if (!ctl)
        return;
    evconnlistener_free(ctl->evl);
    while (ctl->clients)
        control_client_free(ctl->clients);
    unlink(ctl->path);
    free(ctl->path);
    free(ctl);
}
