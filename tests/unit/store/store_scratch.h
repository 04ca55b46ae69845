/*
 * store_scratch — a store's scratch directory for the store folder's unit
 * tests: made under /tmp, and removed with the database and the files
 * SQLite keeps beside it (WAL, shared memory, journal).
 */
#ifndef PARLEY_TESTS_STORE_SCRATCH_H
#define PARLEY_TESTS_STORE_SCRATCH_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* dir gets a new directory named after prefix, path "dir/parley.db".
 * Returns 0, or -1 when the directory cannot be made. */
static inline int store_scratch_make(const char *prefix, char *dir, size_t dirlen, char *path,
                                     size_t pathlen)
{
    snprintf(dir, dirlen, "/tmp/%s-XXXXXX", prefix);
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, pathlen, "%s/parley.db", dir);
    return 0;
}

static inline void store_scratch_remove(const char *dir, const char *path)
{
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
    char p[256];
    for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
        snprintf(p, sizeof(p), "%s%s", path, suffix[i]);
        unlink(p);
    }
    rmdir(dir);
}

#endif
