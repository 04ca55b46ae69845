/*
 * parleyctl partner add|remove|list: the partner domains Parley federates
 * with over mutual TLS. A running parleyd is told at once.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/netaddr.h"
#include "core/strbuf.h"
#include "ctl/ctl.h"
#include "store/store.h"

static bool partner_tell_daemon(struct ctl *ctl)
{
    json_t *req = json_pack("{s:s}", "command", "partners");
    json_t *reply = NULL;
    char err[256];
    bool live = ctl_control_send(ctl->cfg, req, &reply, err, sizeof(err)) == 0;
    json_decref(req);
    json_decref(reply);
    return live;
}

static bool partner_host_valid(const char *h)
{
    const struct config_key *k = config_key_find("server.domain");
    char err[256];
    struct netaddr a;
    return netaddr_parse_ip(h, 0, &a) == 0 ||
           (config_validate_value(k, h, err, sizeof(err)) == 0 && *h);
}

static int partner_add(struct ctl *ctl, const char *domain)
{
    bool missing = false;
    const char *server = ctl_take_option(ctl, "--server", &missing);
    const char *address = ctl_take_option(ctl, "--address", &missing);
    if (missing || ctl->argc != 2)
        return ctl_usage(ctl, "usage: partner add DOMAIN [--server HOST[:PORT]] [--address IP]");
    struct store_partner p = {0};
    if (!partner_host_valid(domain))
        return ctl_usage(ctl, "\"%s\" is not a domain name", domain);
    if (strcasecmp(domain, ctl->cfg->server.domain) == 0)
        return ctl_fail(ctl, "%s is this server's own domain", domain);
    snprintf(p.domain, sizeof(p.domain), "%s", domain);
    for (char *c = p.domain; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    if (server) {
        snprintf(p.server, sizeof(p.server), "%s", server);
        char *colon = strrchr(p.server, ':');
        if (colon && !strchr(colon + 1, ']')) {
            char *end;
            long port = strtol(colon + 1, &end, 10);
            if (*end || port < 1 || port > 65535)
                return ctl_usage(ctl, "--server %s: bad port", server);
            p.port = (int)port;
            *colon = '\0';
        }
        if (!partner_host_valid(p.server))
            return ctl_usage(ctl, "--server: \"%s\" is not a host name", p.server);
    }
    if (address) {
        struct netaddr a;
        if (netaddr_parse_ip(address, 0, &a) != 0)
            return ctl_usage(ctl, "--address: \"%s\" is not a numeric IP address", address);
        if (!server)
            return ctl_usage(ctl, "--address needs --server (it says where HOST is)");
        snprintf(p.address, sizeof(p.address), "%s", address);
    }
    p.added = (int64_t)time(NULL);
    struct store *st;
    int rc = ctl_open_store(ctl, &st, 0);
    if (rc)
        return rc;
    int sr = store_partner_add(st, &p);
    if (sr == -EEXIST)
        rc = ctl_fail(ctl, "%s is a partner already (remove it first to change it)", p.domain);
    else if (sr)
        rc = ctl_fail(ctl, "cannot store the partner: %s", store_errmsg(st));
    if (store_close(st) != 0 && rc == CTL_OK)
        rc = ctl_fail(ctl, "closing the store failed");
    if (rc)
        return rc;
    bool live = partner_tell_daemon(ctl);
    char msg[700];
    if (p.server[0])
        snprintf(msg, sizeof(msg), "partner %s at %s:%d%s%s%s", p.domain, p.server,
                 p.port ? p.port : 5061, p.address[0] ? " (address " : "", p.address,
                 p.address[0] ? ")" : "");
    else
        snprintf(msg, sizeof(msg), "partner %s, found through DNS SRV _sipfederationtls._tcp.%s",
                 p.domain, p.domain);
    if (live)
        strncat(msg, "; applied by the running server", sizeof(msg) - strlen(msg) - 1);
    return ctl_done(ctl,
                    json_pack("{s:s, s:s, s:i, s:s, s:b}", "domain", p.domain, "server", p.server,
                              "port", p.port, "address", p.address, "applied_live", live),
                    msg);
}

static int partner_remove(struct ctl *ctl, const char *domain)
{
    struct store *st;
    int rc = ctl_open_store(ctl, &st, 0);
    if (rc)
        return rc;
    int sr = store_partner_remove(st, domain);
    if (sr == -ENOENT)
        rc = ctl_fail(ctl, "%s is not a partner", domain);
    else if (sr)
        rc = ctl_fail(ctl, "cannot remove the partner: %s", store_errmsg(st));
    store_close(st);
    if (rc)
        return rc;
    partner_tell_daemon(ctl);
    char msg[300];
    snprintf(msg, sizeof(msg), "removed partner %s", domain);
    return ctl_done(ctl, json_pack("{s:s}", "removed", domain), msg);
}

struct partner_list_ctx {
    json_t *arr;
    struct strbuf text;
};

static int partner_list_one(const struct store_partner *p, void *arg)
{
    struct partner_list_ctx *lc = arg;
    json_array_append_new(lc->arr, json_pack("{s:s, s:s, s:i, s:s}", "domain", p->domain, "server",
                                             p->server, "port", p->port, "address", p->address));
    if (p->server[0])
        strbuf_printf(&lc->text, "%-24s %s:%d%s%s\n", p->domain, p->server,
                      p->port ? p->port : 5061, p->address[0] ? " at " : "", p->address);
    else
        strbuf_printf(&lc->text, "%-24s (DNS SRV)\n", p->domain);
    return 0;
}

static int partner_list(struct ctl *ctl)
{
    struct store *st;
    int rc = ctl_open_store(ctl, &st, STORE_READONLY);
    if (rc)
        return rc;
    struct partner_list_ctx lc = {json_array(), STRBUF_INIT};
    int sr = store_partner_list(st, partner_list_one, &lc);
    store_close(st);
    if (sr) {
        json_decref(lc.arr);
        strbuf_free(&lc.text);
        return ctl_fail(ctl, "cannot list partners");
    }
    if (json_array_size(lc.arr) == 0)
        strbuf_puts(&lc.text, "no partners\n");
    ctl_done(ctl, json_pack("{s:o}", "partners", lc.arr), strbuf_cstr(&lc.text));
    strbuf_free(&lc.text);
    return CTL_OK;
}

int cmd_partner(struct ctl *ctl)
{
    int rc = ctl_load_config(ctl);
    if (rc)
        return rc;
    if (ctl->argc >= 2 && strcmp(ctl->argv[0], "add") == 0)
        return partner_add(ctl, ctl->argv[1]);
    if (ctl->argc == 2 && strcmp(ctl->argv[0], "remove") == 0)
        return partner_remove(ctl, ctl->argv[1]);
    if (ctl->argc == 1 && strcmp(ctl->argv[0], "list") == 0)
        return partner_list(ctl);
    return ctl_usage(ctl, "usage: partner add DOMAIN [--server HOST[:PORT]] [--address IP] | "
                          "partner remove DOMAIN | partner list");
}
