/*
 * store/writer — the thread that writes to the store for parleyd.
 *
 * Writes that must be durable (synchronous=FULL: an fsync each) do not
 * belong on the SIP core thread, where they would stall every call behind
 * the disk. The core queues records here; one writer thread, with its own
 * connection, writes them in order and logs any failure (event=store.failed
 * and event=call.store_failed). Stopping drains the queue first.
 */
#ifndef PARLEY_STORE_WRITER_H
#define PARLEY_STORE_WRITER_H

#include <stddef.h>

#include "store/store.h"

struct store_writer;

int store_writer_start(const char *path, struct store_writer **out, char *err, size_t errlen);
/* Queues a call record (copied). Never blocks on the disk. */
void store_writer_call(struct store_writer *w, const struct store_call *call);
/* Writes what is queued, then stops the thread and closes. */
void store_writer_stop(struct store_writer *w);

#endif
