/*
 * parleyctl metrics: the running server's metrics in the Prometheus text
 * format, the very text GET /metrics serves (server/metrics.c makes both),
 * read over the control socket. The names are listed in docs/METRICS.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"

int cmd_metrics(struct ctl *ctl)
{
    char err[512];
    json_t *reply = NULL;
    if (ctl->argc)
        return ctl_usage(ctl, "metrics takes no arguments");
    int rc = ctl_load_config(ctl);
    if (rc)
        return rc;
    if (ctl_control_request(ctl->cfg, "metrics", &reply, err, sizeof(err)) != 0)
        return ctl_fail(ctl, "%s (the metrics live in the running server's memory)", err);
    const char *text = json_string_value(json_object_get(reply, "text"));
    if (!json_is_true(json_object_get(reply, "ok")) || !text) {
        const char *why = json_string_value(json_object_get(reply, "error"));
        rc = ctl_fail(ctl, "%s", why ? why : "the server did not answer with its metrics");
        json_decref(reply);
        return rc;
    }
    /* the text as it is (it ends with a newline), or {"ok":true,"text":...} */
    char *copy = strdup(text);
    json_t *doc = json_pack("{s:s}", "text", text);
    json_decref(reply);
    if (!copy || !doc) {
        free(copy);
        json_decref(doc);
        return ctl_fail(ctl, "out of memory");
    }
    ctl_done(ctl, doc, copy);
    free(copy);
    return CTL_OK;
}
