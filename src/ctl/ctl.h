/*
 * parleyctl internals: command handlers and output helpers shared by the
 * files of src/ctl. Every command takes --json; exit status 0 success,
 * 1 failure, 2 usage.
 */
#ifndef PARLEY_CTL_CTL_H
#define PARLEY_CTL_CTL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "core/config.h"

struct fips_ctx;

/* The configuration file without -c or $PARLEY_CONFIG (what `make run` uses). */
#define CTL_DEFAULT_CONFIG "var/parley.conf"

enum {
    CTL_OK = 0,
    CTL_FAIL = 1,
    CTL_USAGE = 2,
};

struct ctl {
    const char *config_path;
    bool json;
    int argc; /* the command's own arguments (after the command word) */
    char **argv;
    struct config *cfg;    /* loaded on demand by ctl_load_config */
    struct fips_ctx *fips; /* opened on demand by ctl_open_crypto; closed at exit */
    bool keep_privileges;  /* `config`: stays root, whatever server.user says */
};

/* Loads ctl->config_path into ctl->cfg; prints the error and returns
 * CTL_FAIL on failure. Run as root on a configuration with server.user,
 * it then gives the state directory to that user and becomes it
 * (server/privdrop), so that nothing it writes is out of parleyd's reach;
 * unless ctl->keep_privileges. */
int ctl_load_config(struct ctl *ctl);

/* Opens the cryptographic context (crypto/fips) as parleyd would: the
 * configuration's security.fips and security.fips_enabled_file (loaded
 * first). Commands that make keys, secrets, passwords or certificates call
 * it first; random_secret then draws from the context's DRBG. Opened once;
 * prints why and returns CTL_FAIL when it cannot be (mode on without the
 * fips provider). */
int ctl_open_crypto(struct ctl *ctl);
/* The same for a setting given directly ("auto" | "on" | "approved-only" |
 * "off"): `init`, which has no configuration yet. */
int ctl_open_crypto_as(struct ctl *ctl, const char *setting, const char *fips_enabled_file);

/* Prints a failure (stderr, or {"ok":false,"error":...} with --json) and
 * returns CTL_FAIL. */
int ctl_fail(struct ctl *ctl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints a usage error and returns CTL_USAGE. */
int ctl_usage(struct ctl *ctl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* With --json prints doc (adding "ok": true); otherwise prints text (which
 * may be NULL). Takes ownership of doc. Returns CTL_OK. */
int ctl_done(struct ctl *ctl, json_t *doc, const char *text);

/* Finds and removes "--name" (a flag) from the command's arguments. */
bool ctl_take_flag(struct ctl *ctl, const char *name);
/* Finds and removes "--name VALUE"; returns VALUE or NULL. Sets *missing
 * when the option is present without a value. */
const char *ctl_take_option(struct ctl *ctl, const char *name, bool *missing);

/* One request to the running parleyd over its control socket. Returns 0,
 * -ECONNREFUSED / -ENOENT when no parleyd runs, or another negative errno;
 * err says why. */
int ctl_control_request(const struct config *cfg, const char *command, json_t **reply, char *err,
                        size_t errlen);

/* Same, with a whole request object (not taken). */
int ctl_control_send(const struct config *cfg, json_t *req, json_t **reply, char *err,
                     size_t errlen);

struct store;
/* Opens the state directory's store (flags as store_open: 0 to write,
 * STORE_READONLY to read); on failure prints why and returns CTL_FAIL. */
int ctl_open_store(struct ctl *ctl, struct store **st, int flags);
/* Closes the store; a failed close (an unflushed write) turns rc into a
 * failure that says so. */
int ctl_close_store(struct ctl *ctl, struct store *st, int rc);

/* The running server's trunks (the "trunks" array of status), one line
 * each and a second for the certificate or the last error. */
void cmd_trunk_render(struct strbuf *t, json_t *trunks);

/* A command: runs with ctl->argv holding its arguments (after the command
 * word); returns CTL_OK, CTL_FAIL or CTL_USAGE. */
typedef int ctl_command_fn(struct ctl *ctl);

/* The commands' table (cmd_help.c), which dispatch, --help and parleyctl(8)
 * all read: the function that runs the command word ("user"), or NULL. */
ctl_command_fn *cmd_help_find(const char *word);
/* The --help text. */
void cmd_help_usage(FILE *f);
/* parleyctl help [--format=man]: the --help text, or parleyctl(8) in roff. */
int cmd_help(struct ctl *ctl);

int cmd_init(struct ctl *ctl);
int cmd_presence(struct ctl *ctl);
int cmd_partner(struct ctl *ctl);
int cmd_trust(struct ctl *ctl);
int cmd_cert(struct ctl *ctl);
int cmd_config(struct ctl *ctl);
int cmd_user(struct ctl *ctl);
int cmd_status(struct ctl *ctl);
int cmd_reload(struct ctl *ctl);
int cmd_registrations(struct ctl *ctl);
int cmd_calls(struct ctl *ctl);
int cmd_relay(struct ctl *ctl);
int cmd_media(struct ctl *ctl);
int cmd_dialplan(struct ctl *ctl);
int cmd_route(struct ctl *ctl);
int cmd_trunk(struct ctl *ctl);
int cmd_https(struct ctl *ctl);
int cmd_group(struct ctl *ctl);
int cmd_conference(struct ctl *ctl);

#endif
