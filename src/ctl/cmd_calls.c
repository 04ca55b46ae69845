/* parleyctl registrations | calls */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/strbuf.h"
#include "ctl/ctl.h"
#include "store/store.h"

static const char *calls_str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* o[k] (or o[k][sub]) as an integer; 0 when absent. */
static long long calls_count(json_t *o, const char *k, const char *sub)
{
    json_t *v = json_object_get(o, k);
    return (long long)json_integer_value(sub ? json_object_get(v, sub) : v);
}

int cmd_registrations(struct ctl *ctl)
{
    if (ctl->argc)
        return ctl_usage(ctl, "registrations takes no arguments");
    int rc = ctl_load_config(ctl);
    if (rc)
        return rc;
    char err[512];
    json_t *reply = NULL;
    if (ctl_control_request(ctl->cfg, "registrations", &reply, err, sizeof(err)) != 0)
        return ctl_fail(ctl, "%s (registrations live in the running server's memory)", err);
    json_t *regs = json_object_get(reply, "registrations");
    struct strbuf t = STRBUF_INIT;
    size_t i;
    json_t *r;
    if (json_array_size(regs) == 0)
        strbuf_puts(&t, "no registered devices\n");
    else
        strbuf_printf(&t, "%-12s %-9s %-22s %-8s %-8s %s\n", "USER", "TRANSPORT", "SOURCE", "TLS",
                      "EXPIRES", "CONTACT");
    json_array_foreach(regs, i, r)
    {
        char exp[32];
        snprintf(exp, sizeof(exp), "%llds",
                 (long long)json_integer_value(json_object_get(r, "expires_in_s")));
        strbuf_printf(&t, "%-12s %-9s %-22s %-8s %-8s %s\n", calls_str(r, "user"),
                      calls_str(r, "transport"), calls_str(r, "source"),
                      *calls_str(r, "tls_version") ? calls_str(r, "tls_version") : "-", exp,
                      calls_str(r, "contact"));
    }
    ctl_done(ctl, reply, strbuf_cstr(&t));
    strbuf_free(&t);
    return CTL_OK;
}

struct calls_ctx {
    json_t *arr;
    struct strbuf text;
};

static void calls_time(int64_t t, char *buf, size_t cap)
{
    if (!t) {
        snprintf(buf, cap, "-");
        return;
    }
    struct tm tm;
    time_t tt = (time_t)t;
    gmtime_r(&tt, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int calls_one(const struct store_call *c, void *arg)
{
    struct calls_ctx *cc = arg;
    char s[32], a[32], e[32];
    calls_time(c->started, s, sizeof(s));
    calls_time(c->answered, a, sizeof(a));
    calls_time(c->ended, e, sizeof(e));
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "call_id", c->call_id, "caller",
                          c->caller, "callee", c->callee, "started", s, "answered", a, "ended", e,
                          "reason", c->reason ? c->reason : "");
    if (c->media)
        json_object_set_new(o, "media", json_string(c->media));
    strbuf_printf(&cc->text, "%s  %s -> %s  answered %s  ended %s  (%s)%s%s\n", s, c->caller,
                  c->callee, a, e, c->reason ? c->reason : "", c->media ? "  media: " : "",
                  c->media ? c->media : "");
    /* anchored media: what the engine saw on each leg (written by
     * parleyd; read back as JSON, shown as it is when it is not) */
    json_t *sections = c->legs ? json_loads(c->legs, 0, NULL) : NULL;
    if (sections)
        json_object_set_new(o, "legs", json_incref(sections));
    size_t i, j;
    json_t *sec, *l;
    json_array_foreach(sections, i, sec)
    {
        json_array_foreach(json_object_get(sec, "legs"), j, l)
        {
            const char *suite = calls_str(l, "suite");
            strbuf_printf(&cc->text,
                          "    section %lld leg %zu  %s <-> %s  %s%s%s  in %lld pkt  out %lld pkt  "
                          "auth failures %lld  replays %lld  foreign %lld\n",
                          (long long)json_integer_value(json_object_get(sec, "section")), j,
                          calls_str(l, "local"),
                          *calls_str(l, "remote") ? calls_str(l, "remote") : "-",
                          calls_str(l, "protection"), *suite ? " " : "", suite,
                          calls_count(l, "in", "packets"), calls_count(l, "out", "packets"),
                          calls_count(l, "auth_failures", NULL), calls_count(l, "replays", NULL),
                          calls_count(l, "foreign_dropped", NULL));
        }
    }
    json_decref(sections);
    json_array_append_new(cc->arr, o);
    return 0;
}

/* The running daemon's calls in progress, as text; NULL when no daemon
 * answers (*why says so). */
static json_t *calls_active(struct ctl *ctl, struct strbuf *text, char *why, size_t cap)
{
    json_t *reply = NULL;
    if (ctl_control_request(ctl->cfg, "calls", &reply, why, cap) != 0)
        return NULL;
    json_t *active = json_incref(json_object_get(reply, "active"));
    json_decref(reply);
    if (!active)
        return NULL;
    size_t i;
    json_t *c;
    if (json_array_size(active) == 0)
        strbuf_puts(text, "no calls in progress\n");
    else
        strbuf_puts(text, "calls in progress\n");
    json_array_foreach(active, i, c)
    {
        const char *media = calls_str(c, "media");
        strbuf_printf(text, "  %s  %s -> %s  %s for %llds%s%s\n", calls_str(c, "started"),
                      calls_str(c, "caller"), calls_str(c, "callee"), calls_str(c, "state"),
                      (long long)json_integer_value(json_object_get(c, "duration_s")),
                      *media ? "  media: " : "", media);
    }
    return active;
}

int cmd_calls(struct ctl *ctl)
{
    bool missing = false;
    const char *limit_s = ctl_take_option(ctl, "--limit", &missing);
    bool only_active = ctl_take_flag(ctl, "--active");
    if (missing || ctl->argc)
        return ctl_usage(ctl, "usage: calls [--active] [--limit N]");
    int limit = limit_s ? atoi(limit_s) : 50;
    int rc = ctl_load_config(ctl);
    if (rc)
        return rc;
    struct strbuf head = STRBUF_INIT;
    char why[512];
    json_t *active = calls_active(ctl, &head, why, sizeof(why));
    if (only_active) {
        if (!active) {
            strbuf_free(&head);
            return ctl_fail(ctl, "%s (calls in progress live in the running server)", why);
        }
        ctl_done(ctl, json_pack("{s:o}", "active", active), strbuf_cstr(&head));
        strbuf_free(&head);
        return CTL_OK;
    }
    if (!active)
        strbuf_printf(&head, "calls in progress unknown: %s\n", why);
    char err[1024], path[4096];
    snprintf(path, sizeof(path), "%s/parley.db", ctl->cfg->state_dir);
    struct store *st = NULL;
    if (store_open(path, STORE_READONLY, &st, err, sizeof(err)) != 0)
        return ctl_fail(ctl, "%s", err);
    struct calls_ctx cc = {json_array(), STRBUF_INIT};
    int sr = store_call_list(st, limit, calls_one, &cc);
    store_close(st);
    if (sr) {
        json_decref(cc.arr);
        json_decref(active);
        strbuf_free(&cc.text);
        strbuf_free(&head);
        return ctl_fail(ctl, "cannot read the call log");
    }
    if (json_array_size(cc.arr) == 0)
        strbuf_puts(&cc.text, "no calls logged\n");
    strbuf_printf(&head, "\ncall log (newest first)\n%s", strbuf_cstr(&cc.text));
    json_t *doc = json_pack("{s:o}", "calls", cc.arr);
    json_object_set_new(doc, "active", active ? active : json_array());
    ctl_done(ctl, doc, strbuf_cstr(&head));
    strbuf_free(&cc.text);
    strbuf_free(&head);
    return CTL_OK;
}
