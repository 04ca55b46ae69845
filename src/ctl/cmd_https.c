/*
 * parleyctl https rotate-key
 *
 * Rotates STATE_DIR/https-ticket.keys: a new key signs web tickets from
 * now on; the previous one still verifies the tickets it signed for the
 * ticket lifetime (https.ticket_lifetime). With --now the previous keys go
 * at once, and every ticket issued so far with them (a key that leaked).
 * A running parleyd picks the change up at its next reload.
 *
 * parleyctl https metrics-token [--revoke]
 *
 * Makes the token that reads GET /metrics (Bearer), 256 bits from the
 * cryptographic context's DRBG, prints it once and keeps only its SHA-256
 * in the store: a new one replaces the previous, --revoke removes it. The
 * running parleyd reads the digest at each request: no reload needed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "core/config.h"
#include "core/strbuf.h"
#include "crypto/fips.h"
#include "core/random.h"
#include "crypto/digest.h"
#include "crypto/encoding.h"
#include "ctl/ctl.h"
#include "store/store.h"
#include "web/ticket.h"
#include "web/web.h"

#define HTTPS_METRICS_USAGE "usage: https metrics-token [--revoke]"

static int https_metrics_token_cmd(struct ctl *ctl)
{
    bool revoke = ctl_take_flag(ctl, "--revoke");
    if (ctl->argc)
        return ctl_usage(ctl, HTTPS_METRICS_USAGE);
    int rc = revoke ? ctl_load_config(ctl) : ctl_open_crypto(ctl);
    if (rc)
        return rc;
    struct store *st;
    rc = ctl_open_store(ctl, &st, 0);
    if (rc)
        return rc;
    if (revoke) {
        int sr = store_setting_delete(st, WEB_METRICS_TOKEN_SETTING);
        if (sr != 0 && sr != -ENOENT)
            rc = ctl_fail(ctl, "%s", store_errmsg(st));
        rc = ctl_close_store(ctl, st, rc);
        if (rc)
            return rc;
        return ctl_done(ctl, json_pack("{s:b}", "revoked", sr == 0),
                        sr == 0 ? "the metrics token is revoked: GET /metrics refuses it now"
                                : "there was no metrics token");
    }
    /* pmt_ and 256 bits, base64url */
    unsigned char raw[32];
    char token[sizeof(WEB_METRICS_TOKEN_PREFIX) + BASE64_URL_LEN(sizeof(raw)) + 1];
    char digest[DIGEST_HEX_BUF];
    size_t plen = strlen(WEB_METRICS_TOKEN_PREFIX);
    memcpy(token, WEB_METRICS_TOKEN_PREFIX, plen);
    int cr = random_secret(raw, sizeof(raw));
    if (cr == 0)
        cr = base64_encode(BASE64_URL, raw, sizeof(raw), token + plen, sizeof(token) - plen, NULL);
    if (cr == 0)
        cr = digest_hash_hex(DIGEST_ALG_SHA256, strview_cstr(token), digest);
    OPENSSL_cleanse(raw, sizeof(raw));
    if (cr != 0)
        rc = ctl_fail(ctl, "the token could not be made: %s", strerror(-cr));
    else if (store_setting_set(st, WEB_METRICS_TOKEN_SETTING, digest) != 0)
        rc = ctl_fail(ctl, "%s", store_errmsg(st));
    rc = ctl_close_store(ctl, st, rc);
    if (rc == CTL_OK) {
        struct strbuf t = STRBUF_INIT;
        strbuf_printf(&t,
                      "%s\n(shown once: send it as \"Authorization: Bearer TOKEN\" to GET "
                      "/metrics; any previous token no longer works)",
                      token);
        ctl_done(ctl, json_pack("{s:s}", "token", token), strbuf_cstr(&t));
        strbuf_free(&t);
    }
    OPENSSL_cleanse(token, sizeof(token));
    return rc;
}

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
        return ctl_usage(ctl, "usage: https rotate-key [--now] | https metrics-token [--revoke]");
    const char *sub = ctl->argv[0];
    ctl->argc--;
    ctl->argv++;
    if (strcmp(sub, "rotate-key") == 0)
        return https_rotate_cmd(ctl);
    if (strcmp(sub, "metrics-token") == 0)
        return https_metrics_token_cmd(ctl);
    return ctl_usage(ctl, "unknown https command \"%s\"", sub);
}
