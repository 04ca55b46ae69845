/*
 * parleyctl's commands: the one table that dispatch, `parleyctl --help`
 * and the manual page parleyctl(8) (`parleyctl help --format=man`) read,
 * so that a command cannot be run without being described, nor described
 * differently in the two.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/roff.h"
#include "core/strbuf.h"
#include "ctl/ctl.h"
#include "server/control.h"

struct cmd_help_row {
    /* the command words, then its arguments: "user add NAME [--generate-password]";
     * the first word is what main() dispatches on */
    const char *usage;
    const char *help; /* one sentence */
    ctl_command_fn *run;
};

/* clang-format off */
static const struct cmd_help_row cmd_help_rows[] = {
    {"init --dir DIR --domain DOMAIN [--address IP] [--key-type p256|rsa2048] "
     "[--fips auto|on|approved-only|off] [--state-dir DIR] [--user NAME]",
     "create a configuration, development PKI and store (--state-dir: state apart from the "
     "configuration; --user: server.user, who then owns the state)", cmd_init},
    {"config get SECTION.KEY", "print a configuration value", cmd_config},
    {"config set SECTION.KEY VALUE",
     "change a value (validated; the file is replaced atomically)", cmd_config},
    {"config list", "every key with its value", cmd_config},
    {"config keys [--format=man]",
     "every key the server knows, with its default (no configuration needed); "
     "--format=man prints parley.conf(5)", cmd_config},
    {"user add NAME [--password-stdin | --generate-password]", "add a user", cmd_user},
    {"user passwd NAME [--password-stdin | --generate-password]", "change a user's password",
     cmd_user},
    {"user set NAME [--number +E164|none] [--outbound none|national|all] "
     "[--name \"Display Name\"] [--email ADDR] [--admin|--no-admin]",
     "a user's line number, right to call out, the name and e-mail address book cards "
     "show (\"\" clears), and whether their web ticket reads /metrics", cmd_user},
    {"user remove NAME", "remove a user", cmd_user},
    {"user list", "every user", cmd_user},
    {"user unblock NAME [--source ADDR]",
     "lift the running server's blocks on a user after failed password checks", cmd_user},
    {"group add NAME [--name \"Display Name\"]",
     "a distribution group (one namespace with users; groups nest)", cmd_group},
    {"group set NAME --name \"Display Name\"", "a group's display name", cmd_group},
    {"group remove NAME", "remove a group", cmd_group},
    {"group list", "every group", cmd_group},
    {"group show NAME", "a group's members, nested groups flattened to users", cmd_group},
    {"group member add|remove NAME USER|GROUP", "add or remove a member of a group", cmd_group},
    {"conference create NAME --organizer USER [--allow USER|GROUP]...",
     "a meeting: the organizer changes its content, those allowed read it", cmd_conference},
    {"conference allow|disallow NAME USER|GROUP", "who may read a meeting's content",
     cmd_conference},
    {"conference list", "every meeting", cmd_conference},
    {"conference show NAME", "a meeting's organizer and who may read it", cmd_conference},
    {"conference remove NAME", "remove a meeting and its content", cmd_conference},
    {"status", "what the running server enforces (or the configured view)", cmd_status},
    {"reload", "re-read configuration and certificates (as SIGHUP)", cmd_reload},
    {"registrations", "registered devices (from the running server)", cmd_registrations},
    {"calls [--active] [--limit N]", "the call log, newest first; --active: calls in progress",
     cmd_calls},
    {"presence allow|block|unset USER WATCHER", "whether WATCHER may see USER's presence",
     cmd_presence},
    {"presence list USER", "who may (not) see USER's presence", cmd_presence},
    {"partner add DOMAIN [--server HOST[:PORT]] [--address IP]",
     "a federation partner (mutual TLS)", cmd_partner},
    {"partner remove DOMAIN", "remove a federation partner", cmd_partner},
    {"partner list", "every federation partner", cmd_partner},
    {"trust add FILE", "trust a CA certificate for peers", cmd_trust},
    {"trust remove FILE|FINGERPRINT", "stop trusting a CA certificate", cmd_trust},
    {"trust list", "the CA certificates trusted for peers", cmd_trust},
    {"cert request", "write a CSR for this node's key", cmd_cert},
    {"cert install FILE", "install a signed certificate (checked first)", cmd_cert},
    {"cert revoke FILE|SERIAL", "revoke a certificate of the development CA", cmd_cert},
    {"dialplan add NAME PATTERN TRANSLATION",
     "a normalisation rule for what users dial (rules apply in order)", cmd_dialplan},
    {"dialplan remove NAME", "remove a dial plan rule", cmd_dialplan},
    {"dialplan list", "the dial plan rules, in order", cmd_dialplan},
    {"dialplan national PATTERN|none", "which numbers `--outbound national` reaches",
     cmd_dialplan},
    {"route add NAME PATTERN --trunks T1,T2",
     "which trunks carry calls to numbers that match", cmd_route},
    {"route remove NAME", "remove a route", cmd_route},
    {"route list", "every route", cmd_route},
    {"trunk add NAME --gateway HOST:PORT --transport tls|tcp "
     "--srtp-mode required|optional|not_supported [--address IP]",
     "a PSTN gateway or SIP trunk", cmd_trunk},
    {"trunk remove NAME", "remove a trunk", cmd_trunk},
    {"trunk list", "the configured trunks", cmd_trunk},
    {"trunk status", "each trunk's connection (running server)", cmd_trunk},
    {"media status",
     "anchored media streams, each leg's protection and counters (running server)", cmd_media},
    {"relay status", "relay allocations and their counters (running server)", cmd_relay},
    {"relay credentials USER [--lifetime SECONDS]",
     "a time-limited relay username and password (at most relay.max_lifetime)", cmd_relay},
    {"relay secret", "print the current relay secret (administrators only)", cmd_relay},
    {"relay rotate-secret",
     "add a new relay secret; older ones retire after relay.max_lifetime", cmd_relay},
    {"https rotate-key [--now]",
     "a new web ticket signing key; the previous one verifies for https.ticket_lifetime, none "
     "with --now (a running parleyd: after reload)", cmd_https},
    {"diag",
     "check certificates (chains, expiry), partners' and trunks' reachability, DNS SRV "
     "records, the clock, key and state directory permissions, the store and parleyd; one "
     "line per check (ok, warn, fail) with what to do; exit 1 when a check fails", cmd_diag},
    {"backup FILE",
     "the deployment (store snapshot, configuration, PKI, secrets, meeting content) in one "
     "archive, created 0600, while parleyd runs; a manifest holds each file's SHA-256",
     cmd_backup},
    {"restore FILE --dir DIR",
     "the archive into an empty or new DIR, every digest checked (on a mismatch nothing is "
     "left; the digests catch damage, not a forged archive: restore only your own); then "
     "parleyd -c DIR/parley.conf", cmd_restore},
    {"https metrics-token [--revoke]",
     "a new token for GET /metrics, printed once (only its SHA-256 is kept; replaces the "
     "previous one)", cmd_https},
    {"metrics", "the running server's metrics (Prometheus text format)", cmd_metrics},
    {"help [--format=man]", "this text, or the manual page parleyctl(8) in roff", cmd_help},
    {NULL, NULL, NULL},
};

/* The options every command takes, before or after it. */
static const struct cmd_help_row cmd_help_options[] = {
    {"-c CONF", "configuration file (default $PARLEY_CONFIG or " CTL_DEFAULT_CONFIG ")", NULL},
    {"--json", "machine-readable output", NULL},
    {"-h, --help", "this text", NULL},
    {NULL, NULL, NULL},
};
/* clang-format on */

#define CMD_HELP_WIDTH  79
#define CMD_HELP_COLUMN 26

/* The length of the first word of s. */
static size_t cmd_help_word(const char *s)
{
    size_t n = 0;
    while (s[n] && s[n] != ' ')
        n++;
    return n;
}

ctl_command_fn *cmd_help_find(const char *word)
{
    for (const struct cmd_help_row *r = cmd_help_rows; r->usage; r++) {
        size_t n = cmd_help_word(r->usage);
        if (strlen(word) == n && strncmp(r->usage, word, n) == 0)
            return r->run;
    }
    return NULL;
}

/* Appends text's words to f from column *col, breaking before
 * CMD_HELP_WIDTH to the column indent. */
static void cmd_help_wrap(FILE *f, const char *text, int indent, int *col)
{
    int line_start = *col;
    for (const char *p = text; *p;) {
        while (*p == ' ')
            p++;
        int n = (int)cmd_help_word(p);
        if (n == 0)
            break;
        if (*col > line_start && *col + 1 + n > CMD_HELP_WIDTH) {
            fprintf(f, "\n%*s", indent, "");
            *col = line_start = indent;
        } else if (*col > line_start) {
            fputc(' ', f);
            (*col)++;
        }
        fprintf(f, "%.*s", n, p);
        *col += n;
        p += n;
    }
}

static void cmd_help_print_rows(FILE *f, const struct cmd_help_row *rows)
{
    for (const struct cmd_help_row *r = rows; r->usage; r++) {
        fputs("  ", f);
        int col = 2;
        cmd_help_wrap(f, r->usage, 6, &col);
        if (col + 2 > CMD_HELP_COLUMN)
            fprintf(f, "\n%*s", CMD_HELP_COLUMN, "");
        else
            fprintf(f, "%*s", CMD_HELP_COLUMN - col, "");
        col = CMD_HELP_COLUMN;
        cmd_help_wrap(f, r->help, CMD_HELP_COLUMN, &col);
        fputc('\n', f);
    }
}

void cmd_help_usage(FILE *f)
{
    fputs("usage: parleyctl [-c CONF] [--json] COMMAND [ARGS]\n\n", f);
    cmd_help_print_rows(f, cmd_help_rows);
    fputc('\n', f);
    cmd_help_print_rows(f, cmd_help_options);
    fputs("Exit status: 0 success, 1 failure, 2 usage error.\n", f);
}

static bool cmd_help_is_upper(char c)
{
    return (c >= 'A' && c <= 'Z') || c == '_';
}

/* Arguments as typed, with the placeholders (NAME, SECTION.KEY) in
 * italics. */
static void cmd_help_man_args(struct strbuf *out, const char *args)
{
    const char *p = args;
    while (*p) {
        size_t n = 0;
        while (p[n] && !cmd_help_is_upper(p[n]))
            n++;
        char part[256];
        snprintf(part, sizeof(part), "%.*s", (int)n, p);
        roff_literal(out, part);
        p += n;
        for (n = 0; cmd_help_is_upper(p[n]);)
            n++;
        if (n == 0)
            break;
        snprintf(part, sizeof(part), "%.*s", (int)n, p);
        if (n > 1)
            strbuf_puts(out, "\\fI");
        roff_literal(out, part);
        if (n > 1)
            strbuf_puts(out, "\\fR");
        p += n;
    }
}

/* One .TP entry: the command words (or the option) in bold, the
 * arguments as they are typed, then the help. */
static void cmd_help_man_rows(struct strbuf *out, const struct cmd_help_row *rows)
{
    for (const struct cmd_help_row *r = rows; r->usage; r++) {
        /* the command words ("user add") or the option ("-c"): the words
         * before the first argument */
        bool option = r->usage[0] == '-';
        const char *args = r->usage;
        while ((*args >= 'a' && *args <= 'z') || (option && *args == '-')) {
            args += cmd_help_word(args);
            while (*args == ' ')
                args++;
        }
        char words[128];
        snprintf(words, sizeof(words), "%.*s", (int)(args - r->usage), r->usage);
        strbuf_puts(out, ".TP\n\\fB");
        roff_literal(out, words);
        strbuf_puts(out, "\\fR");
        cmd_help_man_args(out, args);
        strbuf_putc(out, '\n');
        roff_text(out, r->help);
        strbuf_puts(out, ".\n");
    }
}

static void cmd_help_man(struct strbuf *out)
{
    roff_title(out, "PARLEYCTL", "8", "System Administration");
    strbuf_puts(out, ".SH NAME\n"
                     "parleyctl \\- manage a Parley server\n"
                     ".SH SYNOPSIS\n"
                     ".B parleyctl\n"
                     "[\\fB\\-c\\fR \\fICONF\\fR] [\\fB\\-\\-json\\fR] \\fICOMMAND\\fR "
                     "[\\fIARGS\\fR]\n"
                     ".SH DESCRIPTION\n"
                     ".B parleyctl\n"
                     "manages the Parley server\n"
                     ".BR parleyd (8)\n"
                     "and its state directory. Commands that change stored state (users,\n"
                     "configuration) work whether or not parleyd runs; runtime views (status)\n"
                     "ask the running server over its control socket.\n"
                     ".SH OPTIONS\n");
    cmd_help_man_rows(out, cmd_help_options);
    strbuf_puts(out, ".SH COMMANDS\n");
    cmd_help_man_rows(out, cmd_help_rows);
    strbuf_puts(out, ".SH ENVIRONMENT\n"
                     ".TP\n"
                     ".B PARLEY_CONFIG\n"
                     "the configuration file when\n"
                     ".B \\-c\n"
                     "is not given.\n"
                     ".SH FILES\n"
                     ".TP\n"
                     ".I " CTL_DEFAULT_CONFIG "\n"
                     "the configuration file (relative to the current directory) when neither\n"
                     ".B \\-c\n"
                     "nor\n"
                     ".B PARLEY_CONFIG\n"
                     "names one.\n"
                     ".TP\n"
                     ".I STATE_DIR/" CONTROL_SOCKET_NAME "\n"
                     "the running server's control socket (the state directory is the\n"
                     "configuration file's directory).\n"
                     ".SH EXIT STATUS\n"
                     "0 on success, 1 on failure, 2 on a usage error.\n"
                     ".SH SEE ALSO\n"
                     ".BR parleyd (8),\n"
                     ".BR parley.conf (5)\n");
}

int cmd_help(struct ctl *ctl)
{
    bool missing = false;
    const char *format = ctl_take_option(ctl, "--format", &missing);
    if (missing || ctl->argc != 0 || (format && strcmp(format, "man") != 0))
        return ctl_usage(ctl, "usage: help [--format=man]");
    if (!format) {
        cmd_help_usage(stdout);
        return CTL_OK;
    }
    struct strbuf page = STRBUF_INIT;
    cmd_help_man(&page);
    int rc = page.err ? ctl_fail(ctl, "out of memory") : CTL_OK;
    if (rc == CTL_OK)
        fputs(strbuf_cstr(&page), stdout);
    strbuf_free(&page);
    return rc;
}
