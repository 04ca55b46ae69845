/* daemon/manual — parleyd's options, --help and parleyd(8) (see manual.h). */
#include "daemon/manual.h"

#include "core/roff.h"
#include "server/control.h"

const struct manual_option manual_options[] = {
    {MANUAL_OPT_CONFIG, "config", "CONFIG",
     "the configuration file (its directory holds the state unless server.state_dir names "
     "another)"},
    {MANUAL_OPT_DEBUG, "debug", NULL, "log at debug level"},
    {MANUAL_OPT_HELP, "help", NULL, "this help"},
    {MANUAL_OPT_MAN, "man", NULL, "print this manual page, parleyd(8), in roff"},
    {0, NULL, NULL, NULL},
};

void manual_usage(FILE *f)
{
    fputs("usage: parleyd -c CONFIG [-d]\n", f);
    for (const struct manual_option *o = manual_options; o->long_name; o++) {
        char name[64];
        if (o->id < 256)
            snprintf(name, sizeof(name), "-%c, --%s%s%s", o->id, o->long_name, o->arg ? " " : "",
                     o->arg ? o->arg : "");
        else
            snprintf(name, sizeof(name), "    --%s%s%s", o->long_name, o->arg ? " " : "",
                     o->arg ? o->arg : "");
        fprintf(f, "  %-24s %s\n", name, o->help);
    }
}

int manual_page(struct strbuf *out)
{
    roff_title(out, "PARLEYD", "8", "System Administration");
    strbuf_puts(out, ".SH NAME\n"
                     "parleyd \\- the Parley communications server\n"
                     ".SH SYNOPSIS\n"
                     ".B parleyd\n"
                     "\\fB\\-c\\fR \\fICONFIG\\fR [\\fB\\-d\\fR]\n"
                     ".SH DESCRIPTION\n"
                     ".B parleyd\n"
                     "is Parley's server: SIP over TLS (registrar, proxy, presence, calls to\n"
                     "trunks and federation partners), the media relay and anchor, and the\n"
                     "HTTPS web services, as\n"
                     ".BR parley.conf (5)\n"
                     "configures them. It runs in the foreground and logs logfmt lines (one\n"
                     "stable event= name each) to standard error. Its state directory is\n"
                     "server.state_dir, or else the configuration file's directory; one parleyd\n"
                     "at a time holds it. Started as root with server.user set, it binds its\n"
                     "ports, gives the state directory to that user and runs as it, without\n"
                     "capabilities.\n"
                     ".PP\n"
                     "A start\\-up refusal (a configuration that does not load, a certificate\n"
                     "that does not fit, an address in use) is one log line naming the file and\n"
                     "the fault.\n"
                     ".SH OPTIONS\n");
    for (const struct manual_option *o = manual_options; o->long_name; o++) {
        strbuf_puts(out, ".TP\n");
        if (o->id < 256)
            strbuf_printf(out, "\\fB\\-%c\\fR, ", o->id);
        strbuf_puts(out, "\\fB\\-\\-");
        roff_literal(out, o->long_name);
        strbuf_puts(out, "\\fR");
        if (o->arg) {
            strbuf_puts(out, " \\fI");
            roff_literal(out, o->arg);
            strbuf_puts(out, "\\fR");
        }
        strbuf_putc(out, '\n');
        roff_text(out, o->help);
        strbuf_puts(out, ".\n");
    }
    strbuf_puts(out, ".SH SIGNALS\n"
                     ".TP\n"
                     ".B SIGHUP\n"
                     "re\\-read the configuration and the certificates (as\n"
                     ".BR \"parleyctl reload\" );\n"
                     "keys that apply only at restart are logged, and a file that does not load\n"
                     "leaves the running configuration in force.\n"
                     ".TP\n"
                     ".BR SIGTERM \", \" SIGINT\n"
                     "stop: no new connections, the open ones closed with a flush and a\n"
                     "deadline, then exit.\n"
                     ".SH ENVIRONMENT\n"
                     ".TP\n"
                     ".B NOTIFY_SOCKET\n"
                     "set by systemd for a unit of Type=notify: parleyd reports its state to it\n"
                     "(the sd_notify protocol): READY=1 once it serves, RELOADING=1 and READY=1\n"
                     "around a SIGHUP reload, STOPPING=1 when it stops.\n"
                     ".SH FILES\n"
                     ".TP\n"
                     ".I STATE_DIR/parley.conf\n"
                     "the configuration, see\n"
                     ".BR parley.conf (5).\n"
                     ".TP\n"
                     ".I STATE_DIR/parleyd.lock\n"
                     "held while parleyd runs: a second parleyd on the same state directory\n"
                     "is refused.\n"
                     ".TP\n"
                     ".I STATE_DIR/" CONTROL_SOCKET_NAME "\n"
                     "the control socket (mode 0600) for\n"
                     ".BR parleyctl (8).\n"
                     ".TP\n"
                     ".I STATE_DIR/parley.db\n"
                     "the store (SQLite).\n"
                     ".SH EXIT STATUS\n"
                     "0 after a stop by signal, 1 when start\\-up is refused or the server\n"
                     "fails, 2 on a usage error.\n"
                     ".SH SEE ALSO\n"
                     ".BR parleyctl (8),\n"
                     ".BR parley.conf (5),\n"
                     ".BR systemd.service (5)\n");
    return out->err;
}
