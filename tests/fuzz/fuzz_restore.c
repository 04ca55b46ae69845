/*
 * libFuzzer target for parleyctl restore's archive reader (src/ctl/
 * cmd_backup.c: restore_members, restore_verify, restore_modes) on
 * arbitrary archive bytes, restored into a scratch directory. The reader
 * is static in parleyctl, so this file includes it and stands in for the
 * few parleyctl functions it calls. Nothing an archive holds may crash,
 * hang, or put anything outside the directory: after each input the
 * scratch directory's parent holds only the scratch directory, and once
 * what was written is removed the scratch directory is empty again.
 */
#include "../../src/ctl/cmd_backup.c"

#include <sys/mman.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int ctl_open_crypto(struct ctl *ctl)
{
    (void)ctl;
    return 0;
}

int ctl_open_crypto_as(struct ctl *ctl, const char *setting, const char *fips_enabled_file)
{
    (void)ctl, (void)setting, (void)fips_enabled_file;
    return 0;
}

int ctl_fail(struct ctl *ctl, const char *fmt, ...)
{
    (void)ctl, (void)fmt;
    return CTL_FAIL;
}

int ctl_usage(struct ctl *ctl, const char *fmt, ...)
{
    (void)ctl, (void)fmt;
    return CTL_USAGE;
}

int ctl_done(struct ctl *ctl, json_t *doc, const char *text)
{
    (void)ctl, (void)text;
    json_decref(doc);
    return CTL_OK;
}

const char *ctl_take_option(struct ctl *ctl, const char *name, bool *missing)
{
    (void)ctl, (void)name, (void)missing;
    return NULL;
}

static char g_base[64], g_dir[80];

static void remove_dirs(void)
{
    rmdir(g_dir);
    rmdir(g_base);
}

static size_t entries(const char *path)
{
    DIR *d = opendir(path);
    size_t n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    if (d)
        closedir(d);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_base[0]) {
        snprintf(g_base, sizeof(g_base), "/tmp/parley-fuzz-restore-%ld", (long)getpid());
        snprintf(g_dir, sizeof(g_dir), "%s/d", g_base);
        if (mkdir(g_base, 0700) != 0 || mkdir(g_dir, 0700) != 0)
            abort();
        atexit(remove_dirs);
    }
    struct restore r = {.in = memfd_create("archive", MFD_CLOEXEC), .dirfd = -1};
    if (r.in < 0)
        abort();
    struct tar_out o = {.fd = r.in};
    tar_write(&o, data, size);
    if (o.err || lseek(r.in, 0, SEEK_SET) != 0)
        abort();
    r.dirfd = open(g_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (r.dirfd < 0)
        abort();
    json_t *doc = NULL;
    if (restore_members(&r) == 0 && restore_verify(&r, &doc) == 0)
        restore_modes(&r, doc);
    json_decref(doc);
    /* directories restored with mode 0 still let root remove them, but
     * not others: put the owner's bits back first */
    for (size_t i = 0; i < r.n; i++)
        if (r.v[i].dir)
            fchmodat(r.dirfd, r.v[i].path, 0700, 0);
    restore_undo(&r);
    if (entries(g_base) != 1 || entries(g_dir) != 0)
        abort();
    close(r.in);
    close(r.dirfd);
    for (size_t i = 0; i < r.n; i++)
        free(r.v[i].path);
    free(r.v);
    free(r.manifest);
    return 0;
}
