/*
 * parleyctl https rotate-key
 *
 * Rotates STATE_DIR/https-ticket.keys: a new key signs web tickets from
 * now on; the previous one still verifies the tickets it signed for the
 * ticket lifetime (https.ticket_lifetime). With --now the previous keys go
 * at once, and every ticket issued so far with them (a key that leaked).
 * A running parleyd picks the change up at its next reload.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/config.h"
#include "core/strbuf.h"
#include "crypto/fips.h"
#include "ctl/ctl.h"
#include "web/ticket.h"

static int https_rotate_cmd(struct ctl *ctl)
{
    char err[1024];
    struct ticket_keys *k = NULL;

    bool at_once = ctl->argc == 1 && strcmp(ctl->argv[0], "--now") == 0;
    if (ctl->argc && !at_once)
        return ctl_usage(ctl, "usage: https rotate-key [--now]");
    int rc = ctl_open_crypto(ctl);
    if (rc)
        return rc;
    /* a grace below zero: no retired key is kept */
    int64_t now = (int64_t)time(NULL), grace = at_once ? -1 : ctl->cfg->https.ticket_lifetime;
    const char *dir = ctl->cfg->state_dir;
    OSSL_LIB_CTX *libctx = fips_libctx(ctl->fips);
    if (ticket_keys_rotate(libctx, dir, now, grace, err, sizeof(err)) != 0 ||
        ticket_keys_load(libctx, dir, now, &k, NULL, err, sizeof(err)) != 0)
        return ctl_fail(ctl, "%s", err);
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, TICKET_KEYS_FILE);
    json_t *doc =
        json_pack("{s:s, s:s, s:I, s:I}", "path", path, "key_id", ticket_keys_current_id(k), "keys",
                  (json_int_t)ticket_keys_count(k), "grace_s", (json_int_t)(grace < 0 ? 0 : grace));
    struct strbuf t = STRBUF_INIT;
    strbuf_printf(&t, "new web ticket key %s in %s (%zu kept)\n", ticket_keys_current_id(k), path,
                  ticket_keys_count(k));
    if (at_once)
        strbuf_puts(&t, "every ticket issued before is refused from the next reload on\n");
    else
        strbuf_printf(&t, "tickets signed by the previous key stay valid for %llds\n",
                      (long long)grace);
    strbuf_puts(&t,
                "a running parleyd uses the new key after its next reload (parleyctl reload)\n");
    ctl_done(ctl, doc, strbuf_cstr(&t));
    strbuf_free(&t);
    ticket_keys_free(k);
    return CTL_OK;
}

int cmd_https(struct ctl *ctl)
{
    if (ctl->argc == 0)
        return ctl_usage(ctl, "usage: https rotate-key [--now]");
    const char *sub = ctl->argv[0];
    ctl->argc--;
    ctl->argv++;
    if (strcmp(sub, "rotate-key") == 0)
        return https_rotate_cmd(ctl);
    return ctl_usage(ctl, "unknown https command \"%s\"", sub);
}
