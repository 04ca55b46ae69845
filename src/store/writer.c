#include "store/writer.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

/* Beyond this many waiting records (the disk has stopped), new ones are
 * dropped and counted rather than growing memory without bound. */
#define WRITER_MAX_QUEUE 100000

struct writer_item {
    struct writer_item *next;
    struct store_call call;
    char *strings; /* the call's text fields, in one allocation */
};

struct store_writer {
    struct store *st;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct writer_item *head, *tail;
    size_t queued;
    size_t dropped;
    bool stopping;
};

static void *writer_main(void *arg)
{
    struct store_writer *w = arg;
    for (;;) {
        pthread_mutex_lock(&w->lock);
        while (!w->head && !w->stopping)
            pthread_cond_wait(&w->cond, &w->lock);
        struct writer_item *list = w->head;
        w->head = w->tail = NULL;
        w->queued = 0;
        bool stop = w->stopping;
        pthread_mutex_unlock(&w->lock);

        while (list) {
            struct writer_item *next = list->next;
            if (store_call_insert(w->st, &list->call, NULL) != 0)
                log_error("call.store_failed", "call_id", list->call.call_id, "reason",
                          store_errmsg(w->st));
            free(list->strings);
            free(list);
            list = next;
        }
        if (stop)
            return NULL;
    }
}

int store_writer_start(const char *path, struct store_writer **out, char *err, size_t errlen)
{
    struct store_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    int rc = store_open(path, 0, &w->st, err, errlen);
    if (rc) {
        free(w);
        return rc;
    }
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    rc = pthread_create(&w->thread, NULL, writer_main, w);
    if (rc) {
        snprintf(err, errlen, "%s: cannot start the store writer: %s", path, strerror(rc));
        store_close(w->st);
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->cond);
        free(w);
        return -rc;
    }
    *out = w;
    return 0;
}

static char *writer_put(char **p, const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *r = *p;
    memcpy(r, s, n);
    *p += n;
    return r;
}

void store_writer_call(struct store_writer *w, const struct store_call *call)
{
    const char *fields[] = {call->call_id, call->caller, call->callee, call->reason, call->media};
    size_t total = 0;
    for (size_t i = 0; i < 5; i++)
        total += fields[i] ? strlen(fields[i]) + 1 : 0;
    struct writer_item *it = calloc(1, sizeof(*it));
    char *strings = malloc(total ? total : 1);
    if (!it || !strings) {
        free(it);
        free(strings);
        log_error("call.store_failed", "call_id", call->call_id, "reason", "out of memory");
        return;
    }
    char *p = strings;
    it->call = *call;
    it->call.call_id = writer_put(&p, call->call_id);
    it->call.caller = writer_put(&p, call->caller);
    it->call.callee = writer_put(&p, call->callee);
    it->call.reason = writer_put(&p, call->reason);
    it->call.media = writer_put(&p, call->media);
    it->strings = strings;

    pthread_mutex_lock(&w->lock);
    if (w->queued >= WRITER_MAX_QUEUE) {
        w->dropped++;
        pthread_mutex_unlock(&w->lock);
        log_error("call.store_failed", "call_id", call->call_id, "reason",
                  "the store is not keeping up; record dropped");
        free(strings);
        free(it);
        return;
    }
    if (w->tail)
        w->tail->next = it;
    else
        w->head = it;
    w->tail = it;
    w->queued++;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

void store_writer_stop(struct store_writer *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    store_close(w->st);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    free(w);
}
