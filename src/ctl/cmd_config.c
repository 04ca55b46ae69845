/* parleyctl config get|set|list */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/strbuf.h"
#include "ctl/ctl.h"

static int config_cmd_get(struct ctl *ctl, const char *name)
{
    const struct config_key *key = config_key_find(name);
    if (!key)
        return ctl_fail(ctl, "unknown key \"%s\" (see `parleyctl config list`)", name);
    int rc = ctl_load_config(ctl);
    if (rc)
        return rc;
    struct strbuf v = STRBUF_INIT;
    config_format_value(ctl->cfg, key, &v);
    json_t *doc = json_pack("{s:s, s:s}", "key", name, "value", strbuf_cstr(&v));
    ctl_done(ctl, doc, strbuf_cstr(&v));
    strbuf_free(&v);
    return CTL_OK;
}

static int config_cmd_set(struct ctl *ctl, const char *name, const char *value)
{
    char err[1024];
    const struct config_key *key = config_key_find(name);
    if (!key)
        return ctl_fail(ctl, "unknown key \"%s\" (see `parleyctl config list`)", name);
    if (config_set(ctl->config_path, name, value, err, sizeof(err)) != 0)
        return ctl_fail(ctl, "%s", err);
    char msg[512];
    snprintf(msg, sizeof(msg), "%s = %s (%s)", name, value,
             key->reloadable ? "applied by `parleyctl reload` or SIGHUP"
                             : "takes effect when parleyd restarts");
    json_t *doc = json_pack("{s:s, s:s, s:s}", "key", name, "value", value, "applies",
                            key->reloadable ? "reload" : "restart");
    return ctl_done(ctl, doc, msg);
}

static int config_cmd_list(struct ctl *ctl)
{
    int rc = ctl_load_config(ctl);
    if (rc)
        return rc;
    json_t *doc = json_object();
    json_t *keys = json_array();
    struct strbuf text = STRBUF_INIT;
    for (const struct config_key *k = config_keys(); k->section; k++) {
        struct strbuf v = STRBUF_INIT;
        config_format_value(ctl->cfg, k, &v);
        char name[128];
        snprintf(name, sizeof(name), "%s.%s", k->section, k->name);
        strbuf_printf(&text, "%-32s %s\n", name, strbuf_cstr(&v));
        json_array_append_new(keys, json_pack("{s:s, s:s, s:s, s:s}", "key", name, "value",
                                              strbuf_cstr(&v), "default", k->default_value,
                                              "applies", k->reloadable ? "reload" : "restart"));
        strbuf_free(&v);
    }
    json_object_set_new(doc, "keys", keys);
    ctl_done(ctl, doc, strbuf_cstr(&text));
    strbuf_free(&text);
    return CTL_OK;
}

int cmd_config(struct ctl *ctl)
{
    if (ctl->argc < 1)
        return ctl_usage(ctl, "config needs get, set or list");
    const char *verb = ctl->argv[0];
    if (strcmp(verb, "get") == 0 && ctl->argc == 2)
        return config_cmd_get(ctl, ctl->argv[1]);
    if (strcmp(verb, "set") == 0 && ctl->argc == 3)
        return config_cmd_set(ctl, ctl->argv[1], ctl->argv[2]);
    if (strcmp(verb, "list") == 0 && ctl->argc == 1)
        return config_cmd_list(ctl);
    return ctl_usage(ctl, "usage: config get KEY | config set KEY VALUE | config list");
}
