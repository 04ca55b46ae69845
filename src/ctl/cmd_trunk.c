/*
 * parleyctl trunk add|remove|list|status: PSTN gateways and SIP trunks in the
 * store. A TLS trunk is mutual TLS both ways (the gateway's certificate
 * chains to `parleyctl trust` and names the gateway); a TCP trunk carries
 * plain RTP only (SDES keys never cross an unencrypted hop) and may
 * connect only from its --address.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/netaddr.h"
#include "core/strbuf.h"
#include "ctl/ctl.h"
#include "store/store.h"

#define TRUNK_ADD_USAGE                                                                            \
    "usage: trunk add NAME --gateway HOST:PORT --transport tls|tcp "                               \
    "--srtp-mode required|optional|not_supported [--address IP]"

/* HOST:PORT with a port 1..65535 and a host that is an IP or a name. */
static bool trunk_gateway_valid(const char *gw)
{
    const char *colon = strrchr(gw, ':');
    if (!colon || colon == gw || strchr(colon, ']'))
        return false;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 1 || port > 65535)
        return false;
    for (const char *p = gw; p < colon; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '[' || c == ']' || c == ':'))
            return false;
    }
    return true;
}

static int trunk_add(struct ctl *ctl)
{
    bool missing = false;
    const char *gateway = ctl_take_option(ctl, "--gateway", &missing);
    const char *transport = ctl_take_option(ctl, "--transport", &missing);
    const char *srtp = ctl_take_option(ctl, "--srtp-mode", &missing);
    const char *address = ctl_take_option(ctl, "--address", &missing);
    if (missing || ctl->argc != 2 || !gateway || !transport || !srtp)
        return ctl_usage(ctl, TRUNK_ADD_USAGE);
    struct store_trunk t = {0};
    if (strlen(ctl->argv[1]) >= sizeof(t.name) || strlen(gateway) >= sizeof(t.gateway) ||
        !trunk_gateway_valid(gateway))
        return ctl_usage(ctl, "--gateway \"%s\" is not HOST:PORT", gateway);
    snprintf(t.name, sizeof(t.name), "%s", ctl->argv[1]);
    snprintf(t.gateway, sizeof(t.gateway), "%s", gateway);
    snprintf(t.transport, sizeof(t.transport), "%s", transport);
    snprintf(t.srtp_mode, sizeof(t.srtp_mode), "%s", srtp);
    if (address) {
        struct netaddr a;
        if (netaddr_parse_ip(address, 0, &a) != 0)
            return ctl_usage(ctl, "--address: \"%s\" is not a numeric IP address", address);
        snprintf(t.address, sizeof(t.address), "%s", address);
    } else if (strcmp(transport, "tcp") == 0) {
        /* a TCP gateway is known only by where it connects from */
        struct netaddr a;
        char host[256];
        snprintf(host, sizeof(host), "%.*s", (int)(strrchr(gateway, ':') - gateway), gateway);
        if (netaddr_parse_ip(host, 0, &a) != 0)
            return ctl_usage(ctl, "a TCP trunk needs --address IP (its gateway is named, and "
                                  "only the address it connects from identifies it)");
        snprintf(t.address, sizeof(t.address), "%s", host);
    }
    struct store *st;
    int rc = ctl_open_store(ctl, &st, 0);
    if (rc)
        return rc;
    int sr = store_trunk_add(st, &t);
    if (sr == -EEXIST)
        rc = ctl_fail(ctl, "trunk %s exists (remove it first to change it)", t.name);
    else if (sr)
        rc = ctl_fail(ctl, "trunk %s refused: %s", t.name, store_errmsg(st));
    rc = ctl_close_store(ctl, st, rc);
    if (rc)
        return rc;
    char msg[700];
    snprintf(msg, sizeof(msg), "trunk %s: %s over %s, media toward it %s%s%s", t.name, t.gateway,
             t.transport,
             strcmp(t.srtp_mode, "required") == 0   ? "SRTP only"
             : strcmp(t.srtp_mode, "optional") == 0 ? "SRTP when it answers so, else RTP"
                                                    : "plain RTP",
             t.address[0] ? ", connecting from " : "", t.address);
    return ctl_done(ctl,
                    json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", t.name, "gateway", t.gateway,
                              "transport", t.transport, "srtp_mode", t.srtp_mode, "address",
                              t.address),
                    msg);
}

static int trunk_remove(struct ctl *ctl)
{
    if (ctl->argc != 2)
        return ctl_usage(ctl, "usage: trunk remove NAME");
    const char *name = ctl->argv[1];
    struct store *st;
    int rc = ctl_open_store(ctl, &st, 0);
    if (rc)
        return rc;
    int sr = store_trunk_remove(st, name);
    if (sr == -ENOENT)
        rc = ctl_fail(ctl, "no trunk %s", name);
    else if (sr)
        rc = ctl_fail(ctl, "cannot remove trunk %s: %s", name, store_errmsg(st));
    rc = ctl_close_store(ctl, st, rc);
    if (rc)
        return rc;
    char msg[200];
    snprintf(msg, sizeof(msg), "removed trunk %s", name);
    return ctl_done(ctl, json_pack("{s:s}", "removed", name), msg);
}

struct trunk_list_ctx {
    json_t *arr;
    struct strbuf text;
};

static int trunk_list_one(const struct store_trunk *t, void *arg)
{
    struct trunk_list_ctx *lc = arg;
    json_array_append_new(lc->arr, json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", t->name,
                                             "gateway", t->gateway, "transport", t->transport,
                                             "srtp_mode", t->srtp_mode, "address", t->address));
    strbuf_printf(&lc->text, "%-16s %-28s %-4s srtp %s%s%s\n", t->name, t->gateway, t->transport,
                  t->srtp_mode, t->address[0] ? "  from " : "", t->address);
    return 0;
}

static int trunk_list(struct ctl *ctl)
{
    struct store *st;
    int rc = ctl_open_store(ctl, &st, STORE_READONLY);
    if (rc)
        return rc;
    struct trunk_list_ctx lc = {json_array(), STRBUF_INIT};
    int sr = store_trunk_list(st, trunk_list_one, &lc);
    rc = ctl_close_store(ctl, st, CTL_OK);
    if (sr) {
        json_decref(lc.arr);
        strbuf_free(&lc.text);
        return ctl_fail(ctl, "cannot read the trunks");
    }
    if (json_array_size(lc.arr) == 0)
        strbuf_puts(&lc.text, "no trunks\n");
    ctl_done(ctl, json_pack("{s:o}", "trunks", lc.arr), strbuf_cstr(&lc.text));
    strbuf_free(&lc.text);
    return rc;
}

static const char *trunk_str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

void cmd_trunk_render(struct strbuf *t, json_t *trunks)
{
    size_t i;
    json_t *o;
    json_array_foreach(trunks, i, o)
    {
        strbuf_printf(t, "  %-16s %-28s %-4s srtp %-13s %-10s calls out %lld in %lld",
                      trunk_str(o, "name"), trunk_str(o, "gateway"), trunk_str(o, "transport"),
                      trunk_str(o, "srtp_mode"), trunk_str(o, "state"),
                      (long long)json_integer_value(json_object_get(o, "calls_out")),
                      (long long)json_integer_value(json_object_get(o, "calls_in")));
        long long skipped = (long long)json_integer_value(json_object_get(o, "skipped_for_s"));
        if (skipped)
            strbuf_printf(t, "  skipped for %lld s (503 Retry-After)", skipped);
        strbuf_putc(t, '\n');
        json_t *c = json_object_get(o, "certificate");
        if (json_is_object(c))
            strbuf_printf(t, "    certificate %s (issuer %s, serial %s)\n", trunk_str(c, "subject"),
                          trunk_str(c, "issuer"), trunk_str(c, "serial"));
        else if (*trunk_str(o, "address"))
            strbuf_printf(t, "    connects from %s\n", trunk_str(o, "address"));
        if (*trunk_str(o, "last_error"))
            strbuf_printf(t, "    last error: %s\n", trunk_str(o, "last_error"));
    }
}

/* What the running server makes of each trunk: connection, certificate,
 * calls, a Retry-After skip. */
static int trunk_status(struct ctl *ctl)
{
    json_t *reply = NULL;
    char err[256];
    if (ctl_control_request(ctl->cfg, "trunks", &reply, err, sizeof(err)) != 0)
        return ctl_fail(ctl,
                        "%s (a trunk's state lives in the running server; trunk list shows "
                        "the stored trunks)",
                        err);
    json_t *trunks = json_object_get(reply, "trunks");
    struct strbuf t = STRBUF_INIT;
    if (json_array_size(trunks) == 0)
        strbuf_puts(&t, "no trunks\n");
    else
        cmd_trunk_render(&t, trunks);
    int rc = ctl_done(ctl, json_pack("{s:O}", "trunks", trunks ? trunks : json_array()),
                      strbuf_cstr(&t));
    strbuf_free(&t);
    json_decref(reply);
    return rc;
}

int cmd_trunk(struct ctl *ctl)
{
    int rc = ctl_load_config(ctl);
    if (rc)
        return rc;
    const char *verb = ctl->argc ? ctl->argv[0] : "";
    if (strcmp(verb, "add") == 0)
        return trunk_add(ctl);
    if (strcmp(verb, "remove") == 0)
        return trunk_remove(ctl);
    if (strcmp(verb, "list") == 0 && ctl->argc == 1)
        return trunk_list(ctl);
    if (strcmp(verb, "status") == 0 && ctl->argc == 1)
        return trunk_status(ctl);
    return ctl_usage(ctl, TRUNK_ADD_USAGE " | trunk remove NAME | trunk list | trunk status");
}
