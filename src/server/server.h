/*
 * server — the parleyd process: start-up checks, the core thread's event
 * loop, reload on SIGHUP, orderly stop on SIGTERM.
 */
#ifndef PARLEY_SERVER_SERVER_H
#define PARLEY_SERVER_SERVER_H

#include <stdbool.h>
#include <stddef.h>

struct runtime;

struct server_options {
    const char *config_path;
    bool debug; /* -d: log level debug, whatever the configuration says */
};

/* Loads and checks everything, takes the state-directory lock, opens the
 * listeners and starts the workers. On failure returns a negative errno and
 * one line naming the file and the fault in err; nothing is left running. */
int server_start(const struct server_options *opts, struct runtime **out, char *err, size_t errlen);
/* Runs until SIGTERM/SIGINT. Returns the process exit status. */
int server_run(struct runtime *rt);
void server_free(struct runtime *rt);

#endif
