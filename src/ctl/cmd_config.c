/* parleyctl config get|set|list|keys; keys --format=man is parley.conf(5) */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/roff.h"
#include "core/strbuf.h"
#include "ctl/ctl.h"
#include "server/control.h"

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

/* The hand-written parts of parley.conf(5); what is said about each key
 * comes from its row. */
static const char *const config_man_description[] = {
    ".SH NAME",
    "parley.conf - configuration file of the Parley server",
    ".SH SYNOPSIS",
    ".IR STATE_DIR /parley.conf",
    ".SH DESCRIPTION",
    ".BR parleyd (8)",
    "reads its configuration from one INI file:",
    "`[section]` headers, `key = value` lines, and comments that start with",
    "`#` or `;`. Lists are comma-separated. Relative paths are relative to the",
    "directory of the file, which is also the server's state directory (lock",
    "file, control socket, store).",
    ".PP",
    "`parleyctl init` writes a complete file with every key and its help; keys",
    "shown commented out (`# key = value`) are at their defaults. Change a key",
    "with",
    ".PP",
    ".RS",
    ".B parleyctl \\-c parley.conf config set",
    ".I SECTION.KEY VALUE",
    ".RE",
    ".PP",
    "which validates the value, checks that the whole file still loads, and",
    "replaces the file atomically, keeping comments.",
    ".PP",
    "`parleyctl reload` or the signal SIGHUP makes a running parleyd read the",
    "file again. Keys marked \"applied by reload\" take effect for new",
    "connections and requests; keys marked \"applied at restart\" (listener",
    "addresses, worker counts) take effect when parleyd restarts, and a reload",
    "that sees them changed logs `event=config.restart_needed`.",
    "A reload with a file that does not load keeps the running configuration",
    "(`event=config.reload_failed`).",
    ".PP",
    "A file that does not load is refused as a whole, with one line naming the",
    "file, the line and the fault.",
    NULL,
};

static const char *const config_man_end[] = {
    ".SH FILES",
    ".TP",
    ".I STATE_DIR/parley.conf",
    "this file; parleyctl reads the one named by",
    ".B \\-c",
    "or",
    ".BR PARLEY_CONFIG .",
    ".TP",
    ".I STATE_DIR/parley.db",
    "the store: users, call log, dial plan, trunks, partners.",
    ".TP",
    ".I STATE_DIR/" CONTROL_SOCKET_NAME,
    "the control socket parleyctl talks to the running server through.",
    ".SH SEE ALSO",
    ".BR parleyd (8),",
    ".BR parleyctl (8)",
    ".PP",
    "docs/parley.conf.md in Parley's sources explains every key at more length.",
    NULL,
};

static void config_man_lines(struct strbuf *out, const char *const *lines)
{
    for (const char *const *l = lines; *l; l++) {
        /* a line that starts with '.' is a request; the others are prose */
        if (**l == '.')
            strbuf_puts(out, *l);
        else
            roff_text(out, *l);
        strbuf_putc(out, '\n');
    }
}

/* parley.conf(5), from the rows: one subsection per section, one entry
 * per key with its value, default, whether reload applies it and help. */
static void config_man(struct strbuf *out)
{
    const char *section = NULL;

    roff_title(out, "PARLEY.CONF", "5", "File Formats");
    config_man_lines(out, config_man_description);
    strbuf_puts(out, ".SH KEYS\n");
    for (const struct config_key *k = config_keys(); k->section; k++) {
        if (!section || strcmp(section, k->section) != 0) {
            section = k->section;
            strbuf_puts(out, ".SS [");
            roff_literal(out, section);
            strbuf_puts(out, "]\n");
        }
        struct strbuf allowed = STRBUF_INIT;
        config_describe_allowed(k, &allowed);
        strbuf_puts(out, ".TP\n.B ");
        roff_literal(out, k->name);
        strbuf_putc(out, '\n');
        roff_text(out, k->help);
        strbuf_puts(out, "\n.br\nValue: ");
        roff_text(out, strbuf_cstr(&allowed));
        strbuf_puts(out, ".\n.br\nDefault: ");
        if (*k->default_value) {
            strbuf_puts(out, "\\fB");
            roff_literal(out, k->default_value);
            strbuf_puts(out, "\\fR");
        } else {
            strbuf_puts(out, "empty");
        }
        strbuf_puts(out,
                    k->reloadable ? ". Applied by reload (SIGHUP).\n" : ". Applied at restart.\n");
        strbuf_free(&allowed);
    }
    config_man_lines(out, config_man_end);
}

/* Every key of the table with its default, without a configuration file;
 * --format=man prints parley.conf(5) (what the build installs). */
static int config_cmd_keys(struct ctl *ctl)
{
    bool missing = false;
    const char *format = ctl_take_option(ctl, "--format", &missing);
    if (missing || ctl->argc != 1 || (format && strcmp(format, "man") != 0))
        return ctl_usage(ctl, "usage: config keys [--format=man]");
    struct strbuf text = STRBUF_INIT;
    if (format) {
        config_man(&text);
        int rc = text.err ? ctl_fail(ctl, "out of memory") : CTL_OK;
        if (rc == CTL_OK)
            fputs(strbuf_cstr(&text), stdout);
        strbuf_free(&text);
        return rc;
    }
    json_t *keys = json_array();
    for (const struct config_key *k = config_keys(); k->section; k++) {
        struct strbuf allowed = STRBUF_INIT;
        config_describe_allowed(k, &allowed);
        char name[128];
        snprintf(name, sizeof(name), "%s.%s", k->section, k->name);
        strbuf_printf(&text, "%-40s %-7s %s\n", name, k->reloadable ? "reload" : "restart",
                      *k->default_value ? k->default_value : "\"\"");
        json_array_append_new(keys, json_pack("{s:s, s:s, s:s, s:s, s:s}", "key", name, "default",
                                              k->default_value, "allowed", strbuf_cstr(&allowed),
                                              "applies", k->reloadable ? "reload" : "restart",
                                              "help", k->help));
        strbuf_free(&allowed);
    }
    ctl_done(ctl, json_pack("{s:o}", "keys", keys), strbuf_cstr(&text));
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
    if (strcmp(verb, "keys") == 0)
        return config_cmd_keys(ctl);
    return ctl_usage(ctl,
                     "usage: config get KEY | config set KEY VALUE | config list | config keys");
}
