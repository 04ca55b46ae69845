/*
 * parleyd — the Parley server.
 *
 *   parleyd -c CONF [-d]
 *
 * The options, --help and the manual page (parleyd --man) are one table:
 * daemon/manual.c.
 *
 * Runs in the foreground and logs logfmt lines to stderr. SIGHUP reloads
 * the configuration and certificates; SIGTERM stops after closing
 * connections. A start-up refusal is one log line naming the file and the
 * fault, and exit status 1. Started as root with server.user set, it binds
 * its ports, then runs as that user, confined (server/server.c).
 */
#include <errno.h>
#include <getopt.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/log.h"
#include "server/server.h"
#include "core/config.h"
#include "server/config_keys.h"
#include "daemon/manual.h"

/* The getopt_long tables, from manual_options: what --help and parleyd(8)
 * describe is what is parsed. */
#define MAIN_OPTIONS_MAX 16

static int main_options(char *shortopts, struct option *longopts)
{
    size_t ns = 0, nl = 0;
    for (const struct manual_option *o = manual_options; o->long_name; o++) {
        if (nl == MAIN_OPTIONS_MAX)
            return -E2BIG;
        if (o->id < 256) {
            shortopts[ns++] = (char)o->id;
            if (o->arg)
                shortopts[ns++] = ':';
        }
        longopts[nl++] =
            (struct option){o->long_name, o->arg ? required_argument : no_argument, NULL, o->id};
    }
    shortopts[ns] = '\0';
    longopts[nl] = (struct option){NULL, 0, NULL, 0};
    return 0;
}

int main(int argc, char **argv)
{
    struct server_options opts = {NULL, false};
    int c;

    if (config_install_keys(server_config_key_sets) != 0) {
        fprintf(stderr, "parleyd: more configuration keys than CONFIG_KEYS_MAX (a build error)\n");
        return 1;
    }

    char shortopts[2 * MAIN_OPTIONS_MAX + 1];
    struct option longopts[MAIN_OPTIONS_MAX + 1];
    if (main_options(shortopts, longopts) != 0) {
        fprintf(stderr, "parleyd: more options than MAIN_OPTIONS_MAX (a build error)\n");
        return 1;
    }
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        switch (c) {
        case MANUAL_OPT_CONFIG:
            opts.config_path = optarg;
            break;
        case MANUAL_OPT_DEBUG:
            opts.debug = true;
            break;
        case MANUAL_OPT_HELP:
            manual_usage(stdout);
            return 0;
        case MANUAL_OPT_MAN: {
            struct strbuf page = STRBUF_INIT;
            int rc = manual_page(&page);
            if (rc == 0)
                fputs(strbuf_cstr(&page), stdout);
            strbuf_free(&page);
            return rc == 0 ? 0 : 1;
        }
        default:
            manual_usage(stderr);
            return 2;
        }
    }
    if (!opts.config_path || optind != argc) {
        manual_usage(stderr);
        return 2;
    }

    /* every connection, relayed port and file is a descriptor: take all the
     * system allows this process, not the shell's default of 1024 */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }

    struct runtime *rt = NULL;
    char err[1024];
    if (server_start(&opts, &rt, err, sizeof(err)) != 0) {
        log_error("server.start_failed", "reason", err);
        return 1;
    }
    int status = server_run(rt);
    server_free(rt);
    return status;
}
