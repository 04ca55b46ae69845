/*
 * daemon/manual — parleyd's options, its --help and its manual page
 * parleyd(8), from one table so that the three cannot disagree.
 */
#ifndef PARLEY_DAEMON_MANUAL_H
#define PARLEY_DAEMON_MANUAL_H

#include <stdio.h>

#include "core/strbuf.h"

enum manual_option_id {
    MANUAL_OPT_CONFIG = 'c',
    MANUAL_OPT_DEBUG = 'd',
    MANUAL_OPT_HELP = 'h',
    MANUAL_OPT_MAN = 256, /* no short form */
};

struct manual_option {
    int id;                /* the short letter, or a value above 255 */
    const char *long_name; /* without the dashes */
    const char *arg;       /* the argument's placeholder, or NULL */
    const char *help;      /* one line */
};

/* parleyd's options, ended by a row whose long_name is NULL. */
extern const struct manual_option manual_options[];

/* The --help text. */
void manual_usage(FILE *f);
/* parleyd(8) in roff. Returns 0 or -ENOMEM. */
int manual_page(struct strbuf *out);

#endif
