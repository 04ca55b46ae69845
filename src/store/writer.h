/*
 * store/writer — the thread that writes to the store for parleyd.
 *
 * Writes that must be durable (synchronous=FULL: an fsync each) do not
 * belong on the SIP core thread, where they would stall every call behind
 * the disk. The core queues records here; one writer thread, with its own
 * connection, writes them in order. A record the store cannot take now
 * (locked, disk full, I/O error) is kept and tried again with a growing
 * pause (event=call.store_retry, then call.stored); only a record the
 * store refuses as such, a full queue, or a store still failing at
 * shutdown loses one (event=call.store_failed). Stopping drains the
 * queue first.
 */
#ifndef PARLEY_STORE_WRITER_H
#define PARLEY_STORE_WRITER_H

#include <stddef.h>

#include "core/prom.h"
#include "store/store.h"

struct store_writer;

int store_writer_start(const char *path, struct store_writer **out, char *err, size_t errlen);
/* Queues a call record (copied). Never blocks on the disk. */
void store_writer_call(struct store_writer *w, const struct store_call *call);
/* How long each write took (one call record, fsync included), in seconds,
 * failed attempts too: read from any thread while the writer runs. */
struct prom_histogram *store_writer_latency(struct store_writer *w);
/* Writes what is queued, then stops the thread and closes. */
void store_writer_stop(struct store_writer *w);

#endif
