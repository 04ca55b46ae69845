/*
 * parleyd — the Parley server.
 *
 *   parleyd -c CONF [-d]
 *
 * Runs in the foreground and logs logfmt lines to stderr. SIGHUP reloads
 * the configuration and certificates; SIGTERM stops after closing
 * connections. A start-up refusal is one log line naming the file and the
 * fault, and exit status 1. Started as root with server.user set, it binds
 * its ports, then runs as that user, confined (server/server.c).
 */
#include <getopt.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/log.h"
#include "server/server.h"
#include "core/config.h"
#include "server/config_keys.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: parleyd -c CONFIG [-d]\n"
               "  -c CONFIG   the configuration file (its directory holds the state unless\n"
               "              server.state_dir names another)\n"
               "  -d          log at debug level\n"
               "  -h          this help\n");
}

int main(int argc, char **argv)
{
    struct server_options opts = {NULL, false};
    int c;

    if (config_install_keys(server_config_key_sets) != 0) {
        fprintf(stderr, "parleyd: more configuration keys than CONFIG_KEYS_MAX (a build error)\n");
        return 1;
    }

    while ((c = getopt(argc, argv, "c:dh")) != -1) {
        switch (c) {
        case 'c':
            opts.config_path = optarg;
            break;
        case 'd':
            opts.debug = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!opts.config_path || optind != argc) {
        usage(stderr);
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
