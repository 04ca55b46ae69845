/*
 * oom — allocation-failure testing in the style of libre's testcase_oom.
 *
 * A test program linked with
 *   -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,--wrap=strndup,--wrap=free
 * (tests/unit/oom/meson.build: oom_dep carries the arguments and oom.c)
 * sends every allocation made by its own objects and by libparley's (a
 * static library) through the wrappers in oom.c. Shared libraries
 * (libc internals, OpenSSL, libevent, cmocka) are not wrapped: their
 * allocations are neither counted nor failed.
 *
 * oom_run() runs a scenario
 *   1. once unobserved (warm-up: lazy one-time initialisations happen here),
 *   2. once counting the allocations it makes: N; it must return 0 and free
 *      everything it allocated,
 *   3. N times failing only allocation #i on run i (i = 1..N),
 *   4. N times failing allocation #i and every one after it ("sticky").
 * Every run must return 0 (the failed allocation was optional, or the
 * scenario handled it and still did its work) or a negative errno (a clean
 * error); anything else fails the test. Every block allocated during a run
 * must be freed by the end of the run (checked by the wrappers, so the
 * plain build checks it too; LeakSanitizer in the ASan build also sees
 * leaks of memory the wrappers do not track). A crash or a sanitizer
 * report ends the program; oom prints which run it was in (after a UBSan
 * halt it cannot: run with OOM_VERBOSE=1, which prints a line before and
 * after every run). A scenario reports a wrong result with oom_bad(), not
 * with cmocka's assert_* (a longjmp out of oom_run leaves failures armed).
 *
 * A scenario builds everything it uses and frees everything it built, on
 * every path. A block that existed before the run (a fixture) and is
 * realloc'd during it is not tracked; a block made during the run and
 * handed to a shared library that frees it would look leaked (use
 * oom_suspend/oom_resume around such calls, or opts.no_leak_check).
 *
 * Typical use in a cmocka test:
 *
 *   static int parse_one(void *arg)
 *   {
 *       struct sip_msg *m;
 *       int rc = sip_msg_parse(arg, strlen(arg), &m, NULL);
 *       if (rc)
 *           return rc;             // -ENOMEM under failure: clean
 *       ...check m, return oom_bad("...") on a wrong result...
 *       sip_msg_free(m);
 *       return 0;
 *   }
 *   static void test_parse(void **state)
 *   {
 *       assert_int_equal(oom_run("parse_one", parse_one, (void *)text), 0);
 *   }
 */
#ifndef PARLEY_TEST_OOM_H
#define PARLEY_TEST_OOM_H

#include <stdbool.h>
#include <stddef.h>

/* A scenario: 0 on success, a negative errno on a handled failure. Any
 * other value (oom_bad() returns one) is a test failure. */
typedef int (*oom_scenario_fn)(void *arg);

#define OOM_BAD 1

struct oom_opts {
    bool no_sticky;      /* skip pass 4 */
    bool no_warmup;      /* skip pass 1 (count lazy initialisations too) */
    bool no_leak_check;  /* rely on LeakSanitizer alone (memory handed over to libraries) */
    bool require_error;  /* a run in which an allocation failed must not return 0 */
    bool require_enomem; /* ... and a failing run must return -ENOMEM, no other errno */
    /* A run that makes fewer than i allocations (so nothing fails) is an
     * error unless this is set: the scenario's allocations must not vary. */
    bool allow_unreached;
};

struct oom_stats {
    unsigned long allocs;    /* allocations counted in pass 2 */
    unsigned long runs;      /* failing runs (passes 3 and 4) */
    unsigned long errors;    /* runs that returned a negative errno */
    unsigned long enomem;    /* ... of which -ENOMEM */
    unsigned long ok;        /* runs that returned 0 despite the failure */
    unsigned long unreached; /* runs in which no allocation failed */
};

/* Runs the passes above; prints one summary line to stdout
 *   oom: <name>: N allocations, R runs (E errors [M -ENOMEM], K ok despite failure)
 * Returns 0, or -1 after printing what went wrong (the run, the failed
 * allocation's call site, leaked blocks and where they were allocated).
 * Stops at the first bad run. opts and stats may be NULL. */
int oom_run(const char *name, oom_scenario_fn fn, void *arg);
int oom_run_opts(const char *name, oom_scenario_fn fn, void *arg, const struct oom_opts *opts,
                 struct oom_stats *stats);

/* For scenarios: how many allocations have failed so far in this run (0
 * outside oom_run, in passes 1 and 2, and before the fault point). */
unsigned long oom_failures(void);
/* Prints "oom: <name>: run ...: " and the message to stderr; returns
 * OOM_BAD, so a scenario can `return oom_bad("...")` on a wrong result. */
int oom_bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Allocations between these (nestable, per process) are neither counted,
 * failed nor tracked: for the test's own bookkeeping inside a scenario. */
void oom_suspend(void);
void oom_resume(void);

#endif
