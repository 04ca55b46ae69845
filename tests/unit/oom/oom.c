/*
 * oom — the allocation wrappers and the runner (see oom.h).
 *
 * The linker's --wrap turns every reference to malloc (calloc, realloc,
 * strdup, strndup, free) in the program's own objects, libparley's
 * included, into one to __wrap_malloc; __real_malloc is the real one (in
 * the ASan build, ASan's interceptor). The wrappers only decide whether an
 * allocation fails and remember which blocks a run made: every block still
 * comes from the real allocator, so free() of any block (ours, libc's,
 * a shared library's) is simply passed on.
 *
 * GCC and strdup: at -O2 GCC keeps strdup(s) as a call to strdup (it may
 * turn strdup("constant") into malloc + memcpy, which is wrapped as well),
 * and glibc >= 2.26 no longer maps strdup to __strdup in its headers. So
 * nothing escapes; `nm -A libparley.a | grep ' U '` lists what is called.
 * What would escape: asprintf, getline, open_memstream, realpath and other
 * libc functions that allocate inside libc (realpath is used once in src/;
 * those allocations are neither counted nor failed, and freeing their
 * result through __wrap_free is fine). LTO would defeat --wrap; the builds
 * do not use it.
 *
 * Tracked blocks are stored as (address ^ KEY_MASK) so the table does not
 * make a leaked block look reachable to LeakSanitizer.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* dladdr; the build defines it already */
#endif
#include "oom.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* --- the wrappers' state ------------------------------------------------- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t nmemb, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void __real_free(void *p);

void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t nmemb, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);
void __wrap_free(void *p);

static atomic_bool armed;         /* a run of oom_run is in progress */
static atomic_int suspended;      /* oom_suspend depth */
static atomic_ulong nallocs;      /* allocations counted in this run */
static atomic_ulong nfailed;      /* allocations failed in this run */
static unsigned long fail_at;     /* 0: none fail */
static bool sticky;               /* ... and every one after it */
static void *volatile fault_site; /* caller of the failed allocation #fail_at */
static const char *volatile fault_fn;

/* --- live blocks of the current run -------------------------------------- */

#define KEY_MASK ((uintptr_t)0xa5a5a5a5a5a5a5a5ULL)
#define KEY_NONE ((uintptr_t)0)
#define KEY_DEAD ((uintptr_t)1)

struct block {
    uintptr_t key;
    size_t size;
    unsigned long seq; /* the allocation's number in its run */
    const char *fn;
    void *site;
};

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct block *table;
static size_t table_cap, table_used; /* used: live + dead slots */
static atomic_size_t live;

static size_t slot_of(uintptr_t key)
{
    return (size_t)(((uint64_t)key * 0x9e3779b97f4a7c15ULL) >> 20) & (table_cap - 1);
}

static void table_grow(void)
{
    struct block *old = table;
    size_t old_cap = table_cap;

    table_cap = table_cap ? table_cap * 2 : 1024;
    if (atomic_load(&live) * 4 < old_cap)
        table_cap = old_cap; /* mostly dead slots: just rehash */
    table = __real_calloc(table_cap, sizeof(*table));
    if (!table) {
        fputs("oom: out of memory for the block table\n", stderr);
        abort();
    }
    table_used = 0;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].key == KEY_NONE || old[i].key == KEY_DEAD)
            continue;
        size_t s = slot_of(old[i].key);
        while (table[s].key != KEY_NONE)
            s = (s + 1) & (table_cap - 1);
        table[s] = old[i];
        table_used++;
    }
    __real_free(old);
}

static void track(void *p, size_t size, unsigned long seq, const char *fn, void *site)
{
    uintptr_t key = (uintptr_t)p ^ KEY_MASK;

    pthread_mutex_lock(&table_lock);
    if ((table_used + 1) * 2 > table_cap)
        table_grow();
    size_t s = slot_of(key);
    while (table[s].key != KEY_NONE && table[s].key != KEY_DEAD)
        s = (s + 1) & (table_cap - 1);
    if (table[s].key == KEY_NONE)
        table_used++;
    table[s] = (struct block){key, size, seq, fn, site};
    atomic_fetch_add(&live, 1);
    pthread_mutex_unlock(&table_lock);
}

static bool untrack(void *p)
{
    uintptr_t key = (uintptr_t)p ^ KEY_MASK;
    bool found = false;

    pthread_mutex_lock(&table_lock);
    if (table_cap) {
        for (size_t s = slot_of(key); table[s].key != KEY_NONE; s = (s + 1) & (table_cap - 1)) {
            if (table[s].key == key) {
                table[s].key = KEY_DEAD;
                atomic_fetch_sub(&live, 1);
                found = true;
                break;
            }
        }
    }
    pthread_mutex_unlock(&table_lock);
    return found;
}

static void table_clear(void)
{
    pthread_mutex_lock(&table_lock);
    if (table)
        memset(table, 0, table_cap * sizeof(*table));
    table_used = 0;
    atomic_store(&live, 0);
    pthread_mutex_unlock(&table_lock);
}

/* --- the wrappers -------------------------------------------------------- */

static bool observing(void)
{
    return atomic_load_explicit(&armed, memory_order_relaxed) &&
           atomic_load_explicit(&suspended, memory_order_relaxed) == 0;
}

/* Counts one allocation; true when it is to fail. */
static bool next_fails(const char *fn, void *site, unsigned long *seq)
{
    unsigned long n = atomic_fetch_add(&nallocs, 1) + 1;

    *seq = n;
    if (!fail_at || n < fail_at || (n > fail_at && !sticky))
        return false;
    if (n == fail_at) {
        fault_fn = fn;
        fault_site = site;
    }
    atomic_fetch_add(&nfailed, 1);
    errno = ENOMEM;
    return true;
}

void *__wrap_malloc(size_t n)
{
    unsigned long seq;
    void *site = __builtin_return_address(0);

    if (!observing())
        return __real_malloc(n);
    if (next_fails("malloc", site, &seq))
        return NULL;
    void *p = __real_malloc(n);
    if (p)
        track(p, n, seq, "malloc", site);
    return p;
}

void *__wrap_calloc(size_t nmemb, size_t size)
{
    unsigned long seq;
    void *site = __builtin_return_address(0);

    if (!observing())
        return __real_calloc(nmemb, size);
    if (next_fails("calloc", site, &seq))
        return NULL;
    void *p = __real_calloc(nmemb, size);
    if (p)
        track(p, nmemb * size, seq, "calloc", site);
    return p;
}

void *__wrap_realloc(void *p, size_t n)
{
    unsigned long seq;
    void *site = __builtin_return_address(0);

    if (!observing())
        return __real_realloc(p, n);
    if (p && n == 0) {
        /* Frees p (glibc and ASan return NULL): not an allocation. */
        untrack(p);
        return __real_realloc(p, 0);
    }
    if (next_fails("realloc", site, &seq))
        return NULL; /* p stays valid, as after a real failure */
    /* A block from before the run that grows stays the fixture's. */
    bool ours = !p || untrack(p);
    void *q = __real_realloc(p, n);
    if (q && ours)
        track(q, n, seq, "realloc", site);
    else if (!q && p && ours)
        track(p, 0, seq, "realloc (failed for real)", site);
    return q;
}

char *__wrap_strdup(const char *s)
{
    unsigned long seq;
    void *site = __builtin_return_address(0);

    if (!observing())
        return __real_strdup(s);
    if (next_fails("strdup", site, &seq))
        return NULL;
    char *p = __real_strdup(s);
    if (p)
        track(p, strlen(p) + 1, seq, "strdup", site);
    return p;
}

char *__wrap_strndup(const char *s, size_t n)
{
    unsigned long seq;
    void *site = __builtin_return_address(0);

    if (!observing())
        return __real_strndup(s, n);
    if (next_fails("strndup", site, &seq))
        return NULL;
    char *p = __real_strndup(s, n);
    if (p)
        track(p, strlen(p) + 1, seq, "strndup", site);
    return p;
}

void __wrap_free(void *p)
{
    /* Blocks from the real allocator (made before the run, or by a shared
     * library) are not in the table: they are just freed. */
    if (p && atomic_load_explicit(&live, memory_order_relaxed))
        untrack(p);
    __real_free(p);
}

void oom_suspend(void)
{
    atomic_fetch_add(&suspended, 1);
}

void oom_resume(void)
{
    atomic_fetch_sub(&suspended, 1);
}

unsigned long oom_failures(void)
{
    return atomic_load(&nfailed);
}

/* --- sanitizer defaults and hooks ----------------------------------------- */

/* Defaults for this program only; ASAN_OPTIONS / UBSAN_OPTIONS override.
 * A UBSan report must fail the test, not scroll by. */
const char *__asan_default_options(void) __attribute__((used, visibility("default")));
const char *__asan_default_options(void)
{
    return "detect_leaks=1";
}
const char *__ubsan_default_options(void) __attribute__((used, visibility("default")));
const char *__ubsan_default_options(void)
{
    return "halt_on_error=1:print_stacktrace=1";
}

/* Present in the sanitizer runtimes only. */
extern void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));
extern void __sanitizer_symbolize_pc(void *pc, const char *fmt, char *out, size_t cap)
    __attribute__((weak));

/* --- reporting ------------------------------------------------------------ */

static const char *cur_name = "";
static char cur_run[96];     /* "run 7/31 (allocation #7 fails)" */
static char crash_note[256]; /* written as is by the crash hooks */
static volatile sig_atomic_t in_run;
static bool verbose;       /* OOM_VERBOSE set: a line before and after each run */
static uintptr_t exe_bias; /* load address of this program when it is a PIE */

/* The offset addr2line wants for an address in this program. */
static uintptr_t link_bias(void *pc)
{
    Dl_info info;

    if (!dladdr(pc, &info) || !info.dli_fbase)
        return 0;
    const ElfW(Ehdr) *eh = info.dli_fbase;
    return eh->e_type == ET_DYN ? (uintptr_t)info.dli_fbase : 0;
}

/* "function file:line" for a return address in this program. */
static void describe_site(void *pc, char *out, size_t cap)
{
    Dl_info info;

    snprintf(out, cap, "%p", pc);
    if (!pc)
        return;
    if (__sanitizer_symbolize_pc) {
        char buf[256] = "";
        __sanitizer_symbolize_pc((char *)pc - 1, "%f %L", buf, sizeof(buf));
        if (buf[0] && strncmp(buf, "<null>", 6) != 0) {
            snprintf(out, cap, "%s", buf);
            return;
        }
    }
    if (!dladdr(pc, &info) || !info.dli_fbase)
        return;
    /* addr2line wants link-time addresses: offsets in a PIE. */
    uintptr_t off = (uintptr_t)pc - 1 - link_bias(pc);
    /* The object the address is in (this program, by construction); by
     * pid, as /proc/self in the shell popen starts is the shell. */
    char cmd[128], fn[128] = "", loc[256] = "";
    snprintf(cmd, sizeof(cmd), "addr2line -f -e /proc/%ld/exe 0x%lx 2>/dev/null", (long)getpid(),
             (unsigned long)off);
    FILE *f = popen(cmd, "r");
    if (f) {
        if (fgets(fn, sizeof(fn), f) && fgets(loc, sizeof(loc), f)) {
            fn[strcspn(fn, "\n")] = '\0';
            loc[strcspn(loc, "\n")] = '\0';
        }
        pclose(f);
    }
    if (fn[0] && loc[0] && fn[0] != '?')
        snprintf(out, cap, "%s %s", fn, loc);
    else
        snprintf(out, cap, "exe+0x%lx", (unsigned long)off);
}

static void vreport(const char *fmt, va_list ap)
{
    fprintf(stderr, "oom: %s: %s: ", cur_name, cur_run);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

static void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(fmt, ap);
    va_end(ap);
}

int oom_bad(const char *fmt, ...)
{
    va_list ap;
    bool was = atomic_exchange(&armed, false);

    va_start(ap, fmt);
    vreport(fmt, ap);
    va_end(ap);
    atomic_store(&armed, was);
    return OOM_BAD;
}

/* The crash hooks: say which run it was, then let the previous handler
 * (cmocka's, ASan's, the default) do what it does. */
static const int crash_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
#define NSIG_HOOKED (sizeof(crash_signals) / sizeof(crash_signals[0]))
static struct sigaction old_actions[NSIG_HOOKED];

static void write_str(const char *s)
{
    ssize_t r = write(STDERR_FILENO, s, strlen(s));
    (void)r;
}

static void note_crash(void)
{
    if (!in_run)
        return;
    in_run = 0;
    atomic_store(&armed, false);
    write_str(crash_note);
    if (fault_site) {
        char hex[2 + 16 + 1];
        uintptr_t v = (uintptr_t)fault_site - exe_bias;
        int i = (int)sizeof(hex) - 1;
        hex[i] = '\0';
        do {
            hex[--i] = "0123456789abcdef"[v & 15];
            v >>= 4;
        } while (v && i > 2);
        hex[--i] = 'x';
        hex[--i] = '0';
        write_str(" (the failed ");
        write_str(fault_fn ? fault_fn : "allocation");
        write_str(" returned to ");
        write_str(exe_bias ? "program+" : "");
        write_str(hex + i);
        write_str("; addr2line -f -e <program> <that - 1> names the caller)");
    }
    write_str("\n");
}

static void restore_handlers(void)
{
    for (size_t i = 0; i < NSIG_HOOKED; i++)
        sigaction(crash_signals[i], &old_actions[i], NULL);
}

static void on_crash(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    note_crash();
    restore_handlers();
    /* A fault repeats when the handler returns; a raised signal (abort) is
     * raised again, for the previous handler. */
    if (sig == SIGABRT || si->si_code <= 0)
        raise(sig);
}

static void install_handlers(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_crash;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < NSIG_HOOKED; i++)
        sigaction(crash_signals[i], &sa, &old_actions[i]);
}

/* --- the runner ------------------------------------------------------------ */

enum pass { PASS_WARMUP, PASS_COUNT, PASS_ONCE, PASS_STICKY };

struct run_result {
    int rc;
    unsigned long allocs, failed;
};

static void set_run(enum pass pass, unsigned long i, unsigned long n)
{
    switch (pass) {
    case PASS_WARMUP:
        snprintf(cur_run, sizeof(cur_run), "warm-up run");
        break;
    case PASS_COUNT:
        snprintf(cur_run, sizeof(cur_run), "counting run");
        break;
    case PASS_ONCE:
        snprintf(cur_run, sizeof(cur_run), "run %lu/%lu (allocation #%lu fails)", i, n, i);
        break;
    case PASS_STICKY:
        snprintf(cur_run, sizeof(cur_run), "sticky run %lu/%lu (allocations #%lu.. fail)", i, n, i);
        break;
    }
    snprintf(crash_note, sizeof(crash_note), "\noom: %s: crashed in %s", cur_name, cur_run);
    /* A UBSan halt runs no callback: this says which run it was. */
    if (verbose) {
        fprintf(stderr, "oom: %s: %s...\n", cur_name, cur_run);
        fflush(stderr);
    }
}

static struct run_result do_run(oom_scenario_fn fn, void *arg, unsigned long fail, bool stick)
{
    struct run_result r;

    table_clear();
    atomic_store(&nallocs, 0);
    atomic_store(&nfailed, 0);
    fail_at = fail;
    sticky = stick;
    fault_site = NULL;
    fault_fn = NULL;
    in_run = 1;
    atomic_store(&armed, true);
    r.rc = fn(arg);
    atomic_store(&armed, false);
    in_run = 0;
    r.allocs = atomic_load(&nallocs);
    r.failed = atomic_load(&nfailed);
    return r;
}

static void report_leaks(void)
{
    size_t n = 0, shown = 0;
    char where[320];

    pthread_mutex_lock(&table_lock);
    for (size_t i = 0; i < table_cap; i++)
        if (table[i].key != KEY_NONE && table[i].key != KEY_DEAD)
            n++;
    report("%zu block(s) allocated during the run were not freed:", n);
    for (size_t i = 0; i < table_cap && shown < 8; i++) {
        struct block *b = &table[i];
        if (b->key == KEY_NONE || b->key == KEY_DEAD)
            continue;
        shown++;
        describe_site(b->site, where, sizeof(where));
        fprintf(stderr, "    allocation #%lu: %s(%zu bytes) called from %s\n", b->seq, b->fn,
                b->size, where);
    }
    pthread_mutex_unlock(&table_lock);
}

static bool is_errno(int rc)
{
    return rc < 0 && rc > -4096;
}

/* Checks one run; false (after a report) when it went wrong. */
static bool check_run(enum pass pass, const struct run_result *r, const struct oom_opts *o,
                      unsigned long counted, struct oom_stats *st)
{
    char where[320] = "";
    bool ok = true;

    if (r->failed && fault_site) {
        char site[256];
        describe_site(fault_site, site, sizeof(site));
        snprintf(where, sizeof(where), " (the failed %s was called from %s)", fault_fn, site);
    }
    if (r->rc != 0 && !is_errno(r->rc)) {
        report("returned %d, neither 0 nor a negative errno%s", r->rc, where);
        ok = false;
    } else if (pass == PASS_WARMUP || pass == PASS_COUNT) {
        if (r->rc != 0) {
            report("failed with no allocation failing: %d (%s)", r->rc, strerror(-r->rc));
            ok = false;
        }
    } else if (r->failed == 0) {
        st->unreached++;
        if (!o->allow_unreached) {
            report("made only %lu allocations (the counting run made %lu): the scenario's "
                   "allocations vary from run to run",
                   r->allocs, counted);
            ok = false;
        }
    } else if (r->rc == 0 && o->require_error) {
        report("returned 0 although an allocation failed%s", where);
        ok = false;
    } else if (r->rc < 0 && o->require_enomem && r->rc != -ENOMEM) {
        report("returned %d (%s), not -ENOMEM%s", r->rc, strerror(-r->rc), where);
        ok = false;
    }
    if (pass == PASS_ONCE || pass == PASS_STICKY) {
        st->runs++;
        if (r->rc < 0) {
            st->errors++;
            if (r->rc == -ENOMEM)
                st->enomem++;
        } else if (r->rc == 0 && r->failed) {
            st->ok++;
        }
    }
    if (pass != PASS_WARMUP && !o->no_leak_check && atomic_load(&live)) {
        if (ok && where[0])
            report("returned %d%s", r->rc, where);
        report_leaks();
        ok = false;
    }
    if (ok && verbose)
        report("%lu allocations, %lu failed, returned %d%s", r->allocs, r->failed, r->rc, where);
    return ok;
}

int oom_run(const char *name, oom_scenario_fn fn, void *arg)
{
    return oom_run_opts(name, fn, arg, NULL, NULL);
}

int oom_run_opts(const char *name, oom_scenario_fn fn, void *arg, const struct oom_opts *opts,
                 struct oom_stats *stats)
{
    static const struct oom_opts defaults;
    const struct oom_opts *o = opts ? opts : &defaults;
    struct oom_stats st;
    struct run_result r;
    int rc = -1;
    static bool death_hooked;

    memset(&st, 0, sizeof(st));
    cur_name = name;
    fflush(stdout);
    if (!death_hooked && __sanitizer_set_death_callback) {
        __sanitizer_set_death_callback(note_crash);
        death_hooked = true;
    }
    exe_bias = link_bias((void *)oom_run_opts);
    verbose = getenv("OOM_VERBOSE") != NULL;
    install_handlers();

    if (!o->no_warmup) {
        set_run(PASS_WARMUP, 0, 0);
        r = do_run(fn, arg, 0, false);
        if (!check_run(PASS_WARMUP, &r, o, 0, &st))
            goto out;
    }
    set_run(PASS_COUNT, 0, 0);
    r = do_run(fn, arg, 0, false);
    if (!check_run(PASS_COUNT, &r, o, 0, &st))
        goto out;
    st.allocs = r.allocs;

    for (int pass = PASS_ONCE; pass <= PASS_STICKY; pass++) {
        if (pass == PASS_STICKY && o->no_sticky)
            break;
        for (unsigned long i = 1; i <= st.allocs; i++) {
            set_run((enum pass)pass, i, st.allocs);
            r = do_run(fn, arg, i, pass == PASS_STICKY);
            if (!check_run((enum pass)pass, &r, o, st.allocs, &st))
                goto out;
        }
    }
    rc = 0;
    printf("oom: %s: %lu allocations, %lu runs (%lu errors [%lu -ENOMEM], %lu ok despite "
           "failure%s)\n",
           name, st.allocs, st.runs, st.errors, st.enomem, st.ok,
           st.unreached ? ", some runs failed nothing" : "");
    fflush(stdout);
out:
    restore_handlers();
    fail_at = 0;
    table_clear();
    pthread_mutex_lock(&table_lock);
    __real_free(table);
    table = NULL;
    table_cap = table_used = 0;
    pthread_mutex_unlock(&table_lock);
    if (stats)
        *stats = st;
    return rc;
}
