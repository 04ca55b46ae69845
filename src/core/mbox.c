#include "core/mbox.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct mbox {
    pthread_mutex_t lock;
    struct mbox_msg *head; /* newest first; reversed on delivery */
    int efd;
    struct event *ev;
    mbox_handler handler;
    void *arg;
};

static void mbox_deliver(struct mbox *mb)
{
    pthread_mutex_lock(&mb->lock);
    struct mbox_msg *list = mb->head;
    mb->head = NULL;
    pthread_mutex_unlock(&mb->lock);

    struct mbox_msg *fifo = NULL;
    while (list) {
        struct mbox_msg *next = list->next;
        list->next = fifo;
        fifo = list;
        list = next;
    }
    while (fifo) {
        struct mbox_msg *next = fifo->next;
        fifo->next = NULL;
        mb->handler(fifo, mb->arg);
        fifo = next;
    }
}

static void mbox_on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    uint64_t n;
    while (read(fd, &n, sizeof(n)) < 0 && errno == EINTR)
        ;
    mbox_deliver(arg);
}

struct mbox *mbox_new(struct event_base *base, mbox_handler handler, void *arg)
{
    struct mbox *mb = calloc(1, sizeof(*mb));
    if (!mb)
        return NULL;
    pthread_mutex_init(&mb->lock, NULL);
    mb->handler = handler;
    mb->arg = arg;
    mb->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (mb->efd < 0)
        goto fail;
    mb->ev = event_new(base, mb->efd, EV_READ | EV_PERSIST, mbox_on_wake, mb);
    if (!mb->ev || event_add(mb->ev, NULL) != 0)
        goto fail;
    return mb;
fail:
    if (mb->ev)
        event_free(mb->ev);
    if (mb->efd >= 0)
        close(mb->efd);
    pthread_mutex_destroy(&mb->lock);
    free(mb);
    errno = ENOMEM;
    return NULL;
}

void mbox_post(struct mbox *mb, struct mbox_msg *msg)
{
    pthread_mutex_lock(&mb->lock);
    int was_empty = mb->head == NULL;
    msg->next = mb->head;
    mb->head = msg;
    pthread_mutex_unlock(&mb->lock);

    /* Only the post that makes the queue non-empty needs to wake the
     * receiver: it drains everything queued when it runs. */
    if (was_empty) {
        uint64_t one = 1;
        while (write(mb->efd, &one, sizeof(one)) < 0 && errno == EINTR)
            ;
    }
}

void mbox_drain(struct mbox *mb)
{
    mbox_deliver(mb);
}

void mbox_free(struct mbox *mb)
{
    if (!mb)
        return;
    mbox_deliver(mb);
    event_free(mb->ev);
    close(mb->efd);
    pthread_mutex_destroy(&mb->lock);
    free(mb);
}
