/*
 * notify — sd_notify's datagram, written here rather than linking
 * libsystemd for one sendto(2): a socket per message (they are rare:
 * start, reloads, stop), no state kept.
 */
#include "server/notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int notify_format_reloading(char *buf, size_t len, const char *status)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return -errno;
    unsigned long long usec =
        (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL;
    int n = snprintf(buf, len, "RELOADING=1\nMONOTONIC_USEC=%llu%s%s", usec,
                     status ? "\nSTATUS=" : "", status ? status : "");
    return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

int notify_reloading(const char *status)
{
    char msg[512];
    int rc = notify_format_reloading(msg, sizeof(msg), status);
    return rc ? rc : notify_send(msg);
}

int notify_send(const char *state)
{
    const char *name = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    socklen_t salen;
    int fd = -1, rc = 0;

    if (!name || !name[0])
        return 0;
    /* systemd also offers vsock:CID:PORT to virtual machines; not ours */
    if (strncmp(name, "vsock:", 6) == 0)
        return -EAFNOSUPPORT;
    if (name[0] != '/' && name[0] != '@')
        return -EINVAL;
    size_t n = strlen(name);
    if (n >= sizeof(sa.sun_path))
        return -EINVAL;
    memcpy(sa.sun_path, name, n);
    /* an abstract name: a leading NUL, and its length counts exactly */
    if (name[0] == '@')
        sa.sun_path[0] = '\0';
    salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (name[0] == '/'));

    /* Never wait: a manager that does not read its socket (a full queue)
     * must not stall the event loop that sends RELOADING=1 and STOPPING=1;
     * the message is dropped with -EAGAIN instead. */
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    size_t len = strlen(state);
    ssize_t w =
        sendto(fd, state, len, MSG_NOSIGNAL | MSG_DONTWAIT, (const struct sockaddr *)&sa, salen);
    if (w < 0)
        rc = -errno;
    else if ((size_t)w != len)
        rc = -EMSGSIZE;
    close(fd);
    return rc;
}
