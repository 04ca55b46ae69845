/* parleyctl status | reload: runtime views through the control socket. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/strbuf.h"
#include "ctl/ctl.h"
#include "server/status.h"

static const char *status_str(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

static void status_render_list(struct strbuf *t, json_t *arr)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        strbuf_printf(t, "%s%s", i ? "; " : "", json_string_value(v) ? json_string_value(v) : "");
    }
}

static void status_render(json_t *doc, const char *why_offline, struct strbuf *t)
{
    json_t *d = json_object_get(doc, "daemon");
    if (json_is_true(json_object_get(d, "running")))
        strbuf_printf(t, "parleyd: running (pid %lld, up %lld s, %lld workers, %lld connections)\n",
                      json_integer_value(json_object_get(d, "pid")),
                      json_integer_value(json_object_get(d, "uptime_s")),
                      json_integer_value(json_object_get(d, "workers")),
                      json_integer_value(json_object_get(d, "connections")));
    else
        strbuf_printf(t, "parleyd: not running (%s)\nshowing the configured view of %s\n",
                      why_offline ? why_offline : "no answer", status_str(d, "config"));
    strbuf_printf(t, "domain: %s\n", status_str(doc, "domain"));
    strbuf_printf(t, "fips: %s\n", status_str(json_object_get(doc, "fips"), "description"));
    json_t *sip = json_object_get(d, "sip");
    if (sip) {
        json_t *tx = json_object_get(sip, "transactions");
        strbuf_printf(t,
                      "transactions: %lld held of %lld (at most %lld per connection, %lld per "
                      "source); %lld answered statelessly, %lld of their ACKs absorbed, %lld "
                      "stray ACKs dropped, %lld refused with 503\n",
                      json_integer_value(json_object_get(tx, "held")),
                      json_integer_value(json_object_get(tx, "max_total")),
                      json_integer_value(json_object_get(tx, "max_per_connection")),
                      json_integer_value(json_object_get(tx, "max_per_source")),
                      json_integer_value(json_object_get(sip, "stateless_answers")),
                      json_integer_value(json_object_get(sip, "acks_absorbed")),
                      json_integer_value(json_object_get(sip, "acks_dropped")),
                      json_integer_value(json_object_get(sip, "overload_refused")));
    }
    json_t *au = json_object_get(d, "authentication");
    if (au)
        strbuf_printf(t,
                      "password guessing: blocked now %lld user+source pairs, %lld sources (every "
                      "name), %lld users (untrusted sources); %lld attempts refused unchecked, "
                      "%lld blocks since start\n",
                      json_integer_value(json_object_get(au, "pairs_blocked")),
                      json_integer_value(json_object_get(au, "sources_blocked")),
                      json_integer_value(json_object_get(au, "users_blocked")),
                      json_integer_value(json_object_get(au, "throttled_refusals")),
                      json_integer_value(json_object_get(au, "blocks")));

    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(doc, "listeners"), i, l)
    {
        strbuf_printf(t, "\nlistener %s (%s)\n", status_str(l, "address"),
                      status_str(l, "transport"));
        if (json_object_get(l, "tls_error"))
            strbuf_printf(t, "  TLS:            cannot be set up: %s\n",
                          status_str(l, "tls_error"));
        if (json_object_get(l, "tls_versions")) {
            strbuf_printf(t, "  TLS versions:   %s\n", status_str(l, "tls_versions"));
            strbuf_printf(t, "  suites:         %s\n", status_str(l, "tls_suites"));
            strbuf_printf(t, "  groups:         %s\n", status_str(l, "tls_groups"));
            if (json_object_get(l, "tls_sigalgs"))
                strbuf_printf(t, "  signatures:     %s\n", status_str(l, "tls_sigalgs"));
            strbuf_printf(t, "  client certs:   %s\n", status_str(l, "client_certificates"));
            strbuf_printf(t, "  revocation:     %s\n", status_str(l, "revocation"));
        }
        if (json_object_get(l, "allowed_sources")) {
            strbuf_puts(t, "  sources:        ");
            status_render_list(t, json_object_get(l, "allowed_sources"));
            strbuf_puts(t, "\n");
        }
        strbuf_puts(t, "  carries:        ");
        status_render_list(t, json_object_get(l, "carries"));
        strbuf_puts(t, "\n");
        if (json_object_get(l, "refuses")) {
            strbuf_puts(t, "  refuses:        ");
            status_render_list(t, json_object_get(l, "refuses"));
            strbuf_puts(t, "\n");
        }
        json_t *c = json_object_get(l, "certificate");
        if (c && json_object_get(c, "error"))
            strbuf_printf(t, "  certificate:    %s\n", status_str(c, "error"));
        else if (c)
            strbuf_printf(t,
                          "  certificate:    %s\n"
                          "    issuer:       %s\n"
                          "    names:        %s\n"
                          "    key:          %s\n"
                          "    expires:      %s (%lld days left)\n",
                          status_str(c, "subject"), status_str(c, "issuer"), status_str(c, "names"),
                          status_str(c, "key"), status_str(c, "not_after"),
                          json_integer_value(json_object_get(c, "days_left")));
    }

    json_t *partners = json_object_get(doc, "partners");
    if (json_array_size(partners)) {
        strbuf_puts(t, "\npartners\n");
        json_array_foreach(partners, i, l)
        {
            strbuf_printf(t, "  %-24s %-12s %s:%lld", status_str(l, "domain"),
                          status_str(l, "state"), status_str(l, "server"),
                          json_integer_value(json_object_get(l, "port")));
            json_t *c = json_object_get(l, "certificate");
            if (c)
                strbuf_printf(t, "  cert %s (issuer %s, until %s)", status_str(c, "subject"),
                              status_str(c, "issuer"), status_str(c, "not_after"));
            if (*status_str(l, "last_error"))
                strbuf_printf(t, "  last error: %s", status_str(l, "last_error"));
            strbuf_putc(t, '\n');
        }
    }

    json_t *trunks = json_object_get(doc, "trunks");
    if (json_array_size(trunks)) {
        strbuf_puts(t, "\ntrunks\n");
        cmd_trunk_render(t, trunks);
    }

    strbuf_puts(t, "\nprotection\n");
    json_array_foreach(json_object_get(doc, "protection"), i, l)
    {
        strbuf_printf(t, "  %-46s %-12s %s\n", status_str(l, "traffic"),
                      status_str(l, "protection"), status_str(l, "enforced"));
    }
}

int cmd_status(struct ctl *ctl)
{
    if (ctl->argc)
        return ctl_usage(ctl, "status takes no arguments");
    int rc = ctl_load_config(ctl);
    if (rc)
        return rc;

    char err[512];
    json_t *doc = NULL;
    int cr = ctl_control_request(ctl->cfg, "status", &doc, err, sizeof(err));
    const char *why = NULL;
    if (cr != 0) {
        /* no daemon: say so and show what the configuration would enforce */
        why = err;
        /* the configuration's context, so the TLS rows narrow as parleyd's
         * would; when it cannot be opened (mode on without the provider)
         * the report still comes, and its FIPS row says what is configured */
        (void)ctl_open_crypto(ctl);
        doc = status_build(ctl->cfg, NULL, ctl->fips, NULL);
        json_object_set_new(json_object_get(doc, "daemon"), "reason", json_string(err));
    } else if (!json_is_true(json_object_get(doc, "ok"))) {
        rc = ctl_fail(ctl, "parleyd: %s", status_str(doc, "error"));
        json_decref(doc);
        return rc;
    }
    struct strbuf text = STRBUF_INIT;
    status_render(doc, why, &text);
    ctl_done(ctl, doc, strbuf_cstr(&text));
    strbuf_free(&text);
    return CTL_OK;
}

int cmd_reload(struct ctl *ctl)
{
    if (ctl->argc)
        return ctl_usage(ctl, "reload takes no arguments");
    int rc = ctl_load_config(ctl);
    if (rc)
        return rc;
    char err[512];
    json_t *reply = NULL;
    if (ctl_control_request(ctl->cfg, "reload", &reply, err, sizeof(err)) != 0)
        return ctl_fail(ctl, "%s", err);
    if (!json_is_true(json_object_get(reply, "ok"))) {
        rc = ctl_fail(ctl, "%s", status_str(reply, "error"));
        json_decref(reply);
        return rc;
    }
    char msg[512];
    snprintf(msg, sizeof(msg), "%s", status_str(reply, "message"));
    return ctl_done(ctl, reply, msg);
}
