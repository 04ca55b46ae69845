/*
 * secret_file — see secret_file.h.
 */
#include "core/secret_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int secret_file_open(const char *path, size_t max, struct stat *st, char *err, size_t errlen)
{
    struct stat own;
    if (!st)
        st = &own;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        int rc = -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        return rc;
    }
    int rc = 0;
    if (fstat(fd, st) != 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(-rc));
    } else if (!S_ISREG(st->st_mode)) {
        rc = -EINVAL;
        snprintf(err, errlen, "%s: not a regular file", path);
    } else if (st->st_mode & 077) {
        rc = -EPERM;
        snprintf(err, errlen, "%s: readable or writable by others (mode %04o); chmod 600 it", path,
                 (unsigned)(st->st_mode & 07777));
    } else if ((unsigned long long)st->st_size > max) {
        rc = -E2BIG;
        snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
    }
    if (rc) {
        close(fd);
        return rc;
    }
    return fd;
}

int secret_file_read(const char *path, size_t max, char **text, size_t *len, struct stat *st,
                     char *err, size_t errlen)
{
    struct stat own;
    if (!st)
        st = &own;
    *text = NULL;
    *len = 0;
    int fd = secret_file_open(path, max, st, err, errlen);
    if (fd < 0)
        return fd;
    size_t size = (size_t)st->st_size, got = 0;
    char *buf = malloc(size + 1);
    if (!buf) {
        close(fd);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    *text = buf;
    *len = got;
    return 0;
}
