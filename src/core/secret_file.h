/*
 * secret_file — reading the files that hold keys and secrets (relay
 * secrets, web ticket keys, the content master key) with the same care
 * everywhere: no symbolic link followed, a regular file only, refused
 * when group or others may read or write it, bounded in size, and the
 * same words in every refusal.
 */
#ifndef PARLEY_CORE_SECRET_FILE_H
#define PARLEY_CORE_SECRET_FILE_H

#include <stddef.h>
#include <sys/stat.h>

/*
 * Opens path for reading and checks it. Returns the descriptor (the
 * caller closes it) or a negative errno with a reason in err:
 *   -ENOENT and other open/fstat errors   as the system says
 *   -EINVAL   not a regular file
 *   -EPERM    group or others may access it ("chmod 600 it")
 *   -E2BIG    larger than max bytes
 * *st (may be NULL) gets what fstat saw whenever fstat ran, also when the
 * file is refused, so a caller can wait for it to change.
 */
int secret_file_open(const char *path, size_t max, struct stat *st, char *err, size_t errlen);

/* secret_file_open, then the whole file into a malloc'd, NUL-terminated
 * buffer (*len bytes before the NUL). The caller wipes and frees it. */
int secret_file_read(const char *path, size_t max, char **text, size_t *len, struct stat *st,
                     char *err, size_t errlen);

#endif
