/*
 * parleyctl — Parley's management tool.
 *
 *   parleyctl init --dir DIR --domain DOMAIN [--address IP] [--key-type p256|rsa2048]
 *                  [--fips auto|on|approved-only|off] [--state-dir DIR] [--user NAME]
 *   parleyctl [-c CONF] [--json] COMMAND ...
 *
 * The commands, their arguments and help are one table (cmd_help.c) that
 * dispatch, --help and the manual page parleyctl(8) read.
 *
 * Commands that change stored state (users, configuration) work whether or
 * not parleyd runs; runtime views (status) ask the daemon over its control
 * socket.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl/ctl.h"
#include "core/log.h"
#include "core/random.h"
#include "crypto/fips.h"
#include "store/store.h"
#include "server/control.h"
#include "server/privdrop.h"
#include "server/config_keys.h"

int ctl_open_store(struct ctl *ctl, struct store **st, int flags)
{
    char err[1024], path[4096];
    snprintf(path, sizeof(path), "%s/parley.db", ctl->cfg->state_dir);
    if (store_open(path, flags, st, err, sizeof(err)) != 0)
        return ctl_fail(ctl, "%s", err);
    return CTL_OK;
}

int ctl_close_store(struct ctl *ctl, struct store *st, int rc)
{
    if (store_close(st) != 0 && rc == CTL_OK)
        return ctl_fail(ctl, "closing the store failed: what was written may be lost");
    return rc;
}

int ctl_load_config(struct ctl *ctl)
{
    char err[1024];
    if (ctl->cfg)
        return CTL_OK;
    if (config_load(ctl->config_path, &ctl->cfg, err, sizeof(err)) != 0)
        return ctl_fail(ctl, "%s", err);
    if (ctl->keep_privileges || geteuid() != 0 || !*ctl->cfg->server.user)
        return CTL_OK;
    /* root acts as server.user: what it writes, parleyd can read */
    struct privdrop_target t;
    if (privdrop_prepare(ctl->cfg->server.user, &t, err, sizeof(err)) != 0 ||
        privdrop_own_state(&t, ctl->cfg->state_dir, ctl->cfg->path, err, sizeof(err)) != 0 ||
        privdrop_apply(&t, err, sizeof(err)) != 0)
        return ctl_fail(ctl, "%s", err);
    return CTL_OK;
}

int ctl_open_crypto_as(struct ctl *ctl, const char *setting, const char *fips_enabled_file)
{
    char err[2048];
    enum fips_setting fs;
    const char *why = NULL;

    if (ctl->fips)
        return CTL_OK;
    if (fips_setting_parse(setting, &fs) != 0)
        return ctl_usage(ctl, "security.fips must be auto, on, approved-only or off, not \"%s\"",
                         setting ? setting : "");
    enum fips_mode mode = fips_resolve(fs, fips_enabled_file, &why);
    if (fips_open(mode, &ctl->fips, err, sizeof(err)) != 0)
        return ctl_fail(ctl, "%s (%s)", err, why);
    random_set_secret_source(fips_secret_source, ctl->fips);
    return CTL_OK;
}

int ctl_open_crypto(struct ctl *ctl)
{
    int rc = ctl_load_config(ctl);
    if (rc)
        return rc;
    return ctl_open_crypto_as(ctl, ctl->cfg->security.fips, ctl->cfg->security.fips_enabled_file);
}

static void ctl_vreport(struct ctl *ctl, const char *fmt, va_list ap)
{
    char msg[2048];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (ctl->json) {
        json_t *doc = json_pack("{s:b, s:s}", "ok", 0, "error", msg);
        json_dumpf(doc, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(doc);
    } else {
        fprintf(stderr, "parleyctl: %s\n", msg);
    }
}

int ctl_fail(struct ctl *ctl, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ctl_vreport(ctl, fmt, ap);
    va_end(ap);
    return CTL_FAIL;
}

int ctl_usage(struct ctl *ctl, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ctl_vreport(ctl, fmt, ap);
    va_end(ap);
    if (!ctl->json)
        fprintf(stderr, "run `parleyctl --help` for usage\n");
    return CTL_USAGE;
}

int ctl_done(struct ctl *ctl, json_t *doc, const char *text)
{
    if (ctl->json) {
        if (!doc)
            doc = json_object();
        if (!json_object_get(doc, "ok"))
            json_object_set_new(doc, "ok", json_true());
        json_dumpf(doc, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
    } else if (text) {
        fputs(text, stdout);
        if (*text && text[strlen(text) - 1] != '\n')
            fputc('\n', stdout);
    }
    json_decref(doc);
    return CTL_OK;
}

static void ctl_remove_args(struct ctl *ctl, int at, int count)
{
    for (int i = at; i + count < ctl->argc; i++)
        ctl->argv[i] = ctl->argv[i + count];
    ctl->argc -= count;
}

bool ctl_take_flag(struct ctl *ctl, const char *name)
{
    for (int i = 0; i < ctl->argc; i++) {
        if (strcmp(ctl->argv[i], name) == 0) {
            ctl_remove_args(ctl, i, 1);
            return true;
        }
    }
    return false;
}

const char *ctl_take_option(struct ctl *ctl, const char *name, bool *missing)
{
    size_t n = strlen(name);
    for (int i = 0; i < ctl->argc; i++) {
        const char *a = ctl->argv[i];
        if (strncmp(a, name, n) == 0 && a[n] == '=') {
            ctl_remove_args(ctl, i, 1);
            return a + n + 1;
        }
        if (strcmp(a, name) == 0) {
            if (i + 1 >= ctl->argc) {
                *missing = true;
                ctl_remove_args(ctl, i, 1);
                return NULL;
            }
            const char *v = ctl->argv[i + 1];
            ctl_remove_args(ctl, i, 2);
            return v;
        }
    }
    return NULL;
}

int ctl_control_request(const struct config *cfg, const char *command, json_t **reply, char *err,
                        size_t errlen)
{
    json_t *req = json_pack("{s:s}", "command", command);
    int rc = ctl_control_send(cfg, req, reply, err, errlen);
    json_decref(req);
    return rc;
}

int ctl_control_send(const struct config *cfg, json_t *req, json_t **reply, char *err,
                     size_t errlen)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int n =
        snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/%s", cfg->state_dir, CONTROL_SOCKET_NAME);
    if (n < 0 || (size_t)n >= sizeof(sun.sun_path)) {
        snprintf(err, errlen, "control socket path too long");
        return -ENAMETOOLONG;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
        int e = errno;
        snprintf(err, errlen, "parleyd is not running (control socket %s: %s)", sun.sun_path,
                 strerror(e));
        close(fd);
        return -e;
    }
    struct timeval tv = {30, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char *text = json_dumps(req, JSON_COMPACT);
    int rc = 0;
    size_t len = strlen(text);
    if (write(fd, text, len) != (ssize_t)len || write(fd, "\n", 1) != 1) {
        rc = -errno;
        snprintf(err, errlen, "cannot send to parleyd: %s", strerror(errno));
    }
    free(text);
    if (rc == 0) {
        json_error_t jerr;
        FILE *f = fdopen(fd, "r");
        if (!f) {
            rc = -errno;
            close(fd);
            return rc;
        }
        *reply = json_loadf(f, JSON_DISABLE_EOF_CHECK, &jerr);
        fclose(f);
        if (!*reply) {
            snprintf(err, errlen, "no valid answer from parleyd: %s", jerr.text);
            return -EPROTO;
        }
        return 0;
    }
    close(fd);
    return rc;
}

int main(int argc, char **argv)
{
    struct ctl ctl = {0};
    /* library modules log; a command line tool reports only problems */
    log_set_level(LOG_LEVEL_WARN);
    if (config_install_keys(server_config_key_sets) != 0) {
        fprintf(stderr,
                "parleyctl: more configuration keys than CONFIG_KEYS_MAX (a build error)\n");
        return CTL_FAIL;
    }
    const char *env = getenv("PARLEY_CONFIG");
    ctl.config_path = env && *env ? env : CTL_DEFAULT_CONFIG;

    /* global options may come before or after the command */
    char **rest = calloc((size_t)argc + 1, sizeof(*rest));
    int nrest = 0;
    if (!rest)
        return CTL_FAIL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            ctl.json = true;
        } else if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc) {
                free(rest);
                return ctl_usage(&ctl, "%s needs a file name", argv[i]);
            }
            ctl.config_path = argv[++i];
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            cmd_help_usage(stdout);
            free(rest);
            return CTL_OK;
        } else {
            rest[nrest++] = argv[i];
        }
    }
    if (nrest == 0) {
        cmd_help_usage(stderr);
        free(rest);
        return CTL_USAGE;
    }
    const char *cmd = rest[0];
    ctl.argc = nrest - 1;
    ctl.argv = rest + 1;

    /* `config` edits the configuration file, which may be root's (its
     * owner and mode are kept); everything else acts as server.user */
    ctl.keep_privileges = strcmp(cmd, "config") == 0;
    ctl_command_fn *run = cmd_help_find(cmd);
    int rc = run ? run(&ctl) : ctl_usage(&ctl, "unknown command \"%s\"", cmd);

    random_set_secret_source(NULL, NULL);
    fips_close(ctl.fips);
    config_free(ctl.cfg);
    free(rest);
    return rc;
}
