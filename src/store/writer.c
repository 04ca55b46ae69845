#include "store/writer.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"

/* Beyond this many waiting records (the disk has stopped), new ones are
 * dropped and counted rather than growing memory without bound. */
#define WRITER_MAX_QUEUE 100000
/* A record the store cannot take now (locked past its busy timeout, disk
 * full, I/O error) waits and is tried again, 1 s later, then 2, 4 ... up
 * to 30 s. At shutdown the queue gets this many more passes, then what
 * is left is logged as lost (a shutdown must end). */
#define WRITER_RETRY_MAX_S   30
#define WRITER_STOP_ATTEMPTS 3

struct writer_item {
    struct writer_item *next;
    struct store_call call;
    char *strings; /* the call's text fields, in one allocation */
    unsigned attempts;
};

struct store_writer {
    struct store *st;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct writer_item *head, *tail;
    size_t queued; /* waiting or in the writer's hands: WRITER_MAX_QUEUE bounds both */
    size_t dropped;
    bool stopping;
    struct prom_histogram latency; /* observed by the writer thread only */
};

/* From a page-cache write to a slow disk's fsync. */
static const double writer_latency_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                               0.05,   0.1,   0.25,   0.5,   1,    2.5};

static double writer_elapsed_s(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

struct prom_histogram *store_writer_latency(struct store_writer *w)
{
    return &w->latency;
}

static void writer_item_free(struct writer_item *it)
{
    free(it->strings);
    free(it);
}

/* Puts records that could not be written back at the head of the queue,
 * ahead of any that arrived meanwhile: the call log keeps its order. */
static void writer_requeue(struct store_writer *w, struct writer_item *list)
{
    struct writer_item *last = list;
    while (last->next)
        last = last->next;
    pthread_mutex_lock(&w->lock);
    last->next = w->head;
    w->head = list;
    if (!w->tail)
        w->tail = last;
    pthread_mutex_unlock(&w->lock);
}

/* Waits seconds, or less if the writer is told to stop. (The condition
 * variable runs on the monotonic clock: a clock step does not stretch it.) */
static void writer_pause(struct store_writer *w, unsigned seconds)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += seconds;
    pthread_mutex_lock(&w->lock);
    while (!w->stopping && pthread_cond_timedwait(&w->cond, &w->lock, &until) != ETIMEDOUT)
        ;
    pthread_mutex_unlock(&w->lock);
}

static void *writer_main(void *arg)
{
    struct store_writer *w = arg;
    unsigned backoff_s = 0, stop_passes = 0;
    for (;;) {
        if (backoff_s)
            writer_pause(w, backoff_s);
        pthread_mutex_lock(&w->lock);
        while (!w->head && !w->stopping)
            pthread_cond_wait(&w->cond, &w->lock);
        struct writer_item *list = w->head;
        w->head = w->tail = NULL;
        bool stop = w->stopping;
        pthread_mutex_unlock(&w->lock);
        bool give_up = stop && stop_passes >= WRITER_STOP_ATTEMPTS;
        bool failing = false; /* giving up: one failure, and the rest are not tried */

        while (list) {
            struct writer_item *next = list->next;
            int rc = -EIO;
            if (!failing) {
                struct timespec t0;
                clock_gettime(CLOCK_MONOTONIC, &t0);
                rc = store_call_insert(w->st, &list->call, NULL);
                prom_histogram_observe(&w->latency, writer_elapsed_s(&t0));
            }
            /* -EINVAL: the store refuses the record itself; retrying would
             * only hold up the ones behind it */
            if (rc != 0 && rc != -EINVAL && !give_up) {
                if (list->attempts++ == 0)
                    log_warn("call.store_retry", "call_id", list->call.call_id, "reason",
                             store_errmsg(w->st));
                break;
            }
            if (rc != 0) {
                log_error("call.store_failed", "call_id", list->call.call_id, "reason",
                          failing ? "the store failed at shutdown" : store_errmsg(w->st));
                failing = give_up && rc != -EINVAL;
            } else if (list->attempts) {
                log_info("call.stored", "call_id", list->call.call_id, "attempts",
                         LOG_INT(list->attempts + 1));
            }
            writer_item_free(list);
            list = next;
            pthread_mutex_lock(&w->lock);
            w->queued--;
            pthread_mutex_unlock(&w->lock);
        }
        if (list) {
            writer_requeue(w, list);
            stop_passes += stop;
            backoff_s = backoff_s ? backoff_s * 2 : 1;
            if (backoff_s > WRITER_RETRY_MAX_S)
                backoff_s = WRITER_RETRY_MAX_S;
            continue;
        }
        backoff_s = 0;
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
    prom_histogram_init(&w->latency, writer_latency_bounds,
                        sizeof(writer_latency_bounds) / sizeof(writer_latency_bounds[0]));
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, &attr);
    pthread_condattr_destroy(&attr);
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
    const char *fields[] = {call->call_id, call->caller, call->callee,
                            call->reason,  call->media,  call->legs};
    size_t total = 0;
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
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
    it->call.legs = writer_put(&p, call->legs);
    it->strings = strings;

    pthread_mutex_lock(&w->lock);
    if (w->queued >= WRITER_MAX_QUEUE) {
        w->dropped++;
        pthread_mutex_unlock(&w->lock);
        log_error("call.store_failed", "call_id", call->call_id, "reason",
                  "the store is not keeping up; record dropped");
        writer_item_free(it);
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
