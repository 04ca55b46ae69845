/*
 * parleyctl media status: the running media engine's streams, each leg
 * with its addresses, protection and counters (what was carried, and what
 * was dropped: authentication failures, replays, packets from elsewhere).
 * Streams live in the running server's memory only.
 */
#include <stdio.h>
#include <string.h>

#include "core/strbuf.h"
#include "ctl/ctl.h"

static const char *media_str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static long long media_int(json_t *o, const char *k1, const char *k2)
{
    json_t *v = json_object_get(o, k1);
    if (k2)
        v = json_object_get(v, k2);
    return (long long)json_integer_value(v);
}

static int media_status_cmd(struct ctl *ctl)
{
    char err[512];
    json_t *reply = NULL;
    if (ctl->argc)
        return ctl_usage(ctl, "media status takes no arguments");
    int rc = ctl_load_config(ctl);
    if (rc)
        return rc;
    if (ctl_control_request(ctl->cfg, "media", &reply, err, sizeof(err)) != 0)
        return ctl_fail(ctl, "%s (streams live in the running server's memory)", err);
    if (!json_is_true(json_object_get(reply, "ok"))) {
        rc = ctl_fail(ctl, "%s", media_str(reply, "error"));
        json_decref(reply);
        return rc;
    }
    struct strbuf t = STRBUF_INIT;
    json_t *streams = json_object_get(reply, "streams");
    if (!json_is_true(json_object_get(reply, "enabled")))
        strbuf_puts(&t, "the media engine is not running (see media.not_started in the log)\n");
    else
        strbuf_printf(&t, "media engine on %s, ports %s, media.anchor = %s\n",
                      media_str(reply, "address"), media_str(reply, "port_range"),
                      media_str(reply, "anchor"));
    if (json_array_size(streams) == 0) {
        strbuf_puts(&t, "no anchored streams\n");
    } else {
        size_t i;
        json_t *s;
        json_array_foreach(streams, i, s)
        {
            strbuf_printf(&t, "stream %lld  call %s  user %s  %llds\n", media_int(s, "id", NULL),
                          media_str(s, "call_id"), media_str(s, "user"),
                          media_int(s, "age_s", NULL));
            size_t j;
            json_t *l;
            json_array_foreach(json_object_get(s, "legs"), j, l)
            {
                const char *suite = media_str(l, "suite");
                strbuf_printf(&t,
                              "  leg %zu  %-21s <-> %-21s%s %s%s%s  in %lld pkt/%lld B  out %lld "
                              "pkt/%lld B  auth failures %lld  replays %lld  foreign %lld  "
                              "undelivered %lld\n",
                              j, media_str(l, "local"),
                              *media_str(l, "remote") ? media_str(l, "remote") : "-",
                              json_is_true(json_object_get(l, "latched")) ? "" : " (not heard yet)",
                              media_str(l, "protection"), *suite ? " " : "", suite,
                              media_int(l, "in", "packets"), media_int(l, "in", "bytes"),
                              media_int(l, "out", "packets"), media_int(l, "out", "bytes"),
                              media_int(l, "auth_failures", NULL), media_int(l, "replays", NULL),
                              media_int(l, "foreign_dropped", NULL),
                              media_int(l, "undelivered", NULL));
            }
        }
    }
    ctl_done(ctl, reply, strbuf_cstr(&t));
    strbuf_free(&t);
    return CTL_OK;
}

int cmd_media(struct ctl *ctl)
{
    if (ctl->argc == 0)
        return ctl_usage(ctl, "usage: media status");
    const char *sub = ctl->argv[0];
    ctl->argc--;
    ctl->argv++;
    if (strcmp(sub, "status") == 0)
        return media_status_cmd(ctl);
    return ctl_usage(ctl, "unknown media command \"%s\"", sub);
}
