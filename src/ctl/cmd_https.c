/*
 * parleyctl https rotate-key
 *
 * Rotates STATE_DIR/https-ticket.keys: a new key signs web tickets from
 * now on; the previous one still verifies the tickets it signed for the
 * ticket lifetime (https.ticket_lifetime, 8 h without that key). A running
 * parleyd picks the new key up at its next reload.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/strbuf.h"
#include "ctl/ctl.h"
#include "web/ticket.h"

#define HTTPS_DEFAULT_GRACE 28800

/* The configured ticket lifetime, read by name: the key may not exist in
 * every build's table. */
static int64_t https_grace(const struct config *cfg)
{
    const struct config_key *key = config_key_find("https.ticket_lifetime");
    struct strbuf v = STRBUF_INIT;
    int64_t grace = HTTPS_DEFAULT_GRACE;

    if (key && key->type == CONFIG_INT) {
        config_format_value(cfg, key, &v);
        char *end = NULL;
        long long n = strtoll(strbuf_cstr(&v), &end, 10);
        if (end && *end == '\0' && n > 0)
            grace = n;
    }
    strbuf_free(&v);
    return grace;
}

static int https_rotate_cmd(struct ctl *ctl)
{
    char err[1024];
    struct ticket_keys *k = NULL;

    if (ctl->argc)
        return ctl_usage(ctl, "https rotate-key takes no arguments");
    int rc = ctl_load_config(ctl);
    if (rc)
        return rc;
    int64_t now = (int64_t)time(NULL), grace = https_grace(ctl->cfg);
    const char *dir = ctl->cfg->state_dir;
    if (ticket_keys_rotate(NULL, dir, now, grace, err, sizeof(err)) != 0 ||
        ticket_keys_load(NULL, dir, now, &k, NULL, err, sizeof(err)) != 0)
        return ctl_fail(ctl, "%s", err);
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, TICKET_KEYS_FILE);
    json_t *doc =
        json_pack("{s:s, s:s, s:I, s:I}", "path", path, "key_id", ticket_keys_current_id(k), "keys",
                  (json_int_t)ticket_keys_count(k), "grace_s", (json_int_t)grace);
    struct strbuf t = STRBUF_INIT;
    strbuf_printf(&t,
                  "new web ticket key %s in %s (%zu kept)\n"
                  "tickets signed by the previous key stay valid for %llds\n"
                  "a running parleyd uses the new key after its next reload (parleyctl reload)\n",
                  ticket_keys_current_id(k), path, ticket_keys_count(k), (long long)grace);
    ctl_done(ctl, doc, strbuf_cstr(&t));
    strbuf_free(&t);
    ticket_keys_free(k);
    return CTL_OK;
}

int cmd_https(struct ctl *ctl)
{
    if (ctl->argc == 0)
        return ctl_usage(ctl, "usage: https rotate-key");
    const char *sub = ctl->argv[0];
    ctl->argc--;
    ctl->argv++;
    if (strcmp(sub, "rotate-key") == 0)
        return https_rotate_cmd(ctl);
    return ctl_usage(ctl, "unknown https command \"%s\"", sub);
}
