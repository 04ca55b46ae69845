/*
 * net/worker — the I/O worker threads.
 *
 * Each worker owns an event base and a conn_host (net/conn.h) with the
 * connections given to it: TLS handshakes, record encryption and protocol
 * framing happen there, in parallel. Other threads talk to a worker only
 * through its mailbox, with the functions below (all thread-safe);
 * connections are named by id, and the worker that owns an id is encoded
 * in it. The params' TLS context gets a reference of the pool's own; its
 * strings are copied.
 */
#ifndef PARLEY_NET_WORKER_H
#define PARLEY_NET_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "core/netaddr.h"
#include "net/conn.h"

struct worker_pool;

/* Starts n worker threads. Returns NULL with err filled on failure. */
struct worker_pool *worker_pool_new(unsigned n, char *err, size_t errlen);
unsigned worker_pool_size(const struct worker_pool *pool);
/* The workers' refused TLS handshakes by kind (net/conn.h), summed: read
 * without stopping them (relaxed counters). */
void worker_pool_tls_failures(const struct worker_pool *pool, uint64_t out[CONN_TLS_FAIL_COUNT_]);
/* Closes every connection (flushing output and TLS close_notify, for at
 * most grace_ms), then stops and joins the threads. */
void worker_pool_stop(struct worker_pool *pool, unsigned grace_ms);
void worker_pool_free(struct worker_pool *pool);

/* A new connection id, placed on the next worker (round robin). */
uint64_t worker_pool_new_id(struct worker_pool *pool);

/* Hands an accepted socket to the worker that the id names. The socket is
 * owned by the pool from now on (closed on any failure). */
void worker_pool_adopt(struct worker_pool *pool, uint64_t id, int fd, const struct netaddr *peer,
                       const struct conn_params *params);
/* Opens an outgoing connection (TLS when params->tls) to addr, bound to
 * local when not NULL. The protocol's on_open/on_close report the result. */
void worker_pool_connect(struct worker_pool *pool, uint64_t id, const struct netaddr *addr,
                         const struct netaddr *local, const struct conn_params *params);
/* Sends bytes on a connection; takes ownership of data (malloc'd). Bytes
 * for a connection that is gone are dropped. */
void worker_pool_send(struct worker_pool *pool, uint64_t id, void *data, size_t len);
/* Closes a connection after flushing. */
void worker_pool_close(struct worker_pool *pool, uint64_t id, const char *reason);
void worker_pool_set_idle(struct worker_pool *pool, uint64_t id, unsigned seconds);
/* Every connection of proto opened with a read_limit gets this one (a
 * reload of sip.max_message_size). */
void worker_pool_set_read_limit(struct worker_pool *pool, const struct conn_protocol *proto,
                                size_t limit);

#endif
