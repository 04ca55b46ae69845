/*
 * conn — a stream connection owned by an I/O worker thread.
 *
 * TLS is hidden under the connection: protocol code reads decrypted bytes
 * from an evbuffer and writes plain bytes, and never knows whether a TLS
 * layer is there. Every function here must be called from the worker
 * thread that owns the connection (protocol callbacks run there). Other
 * threads reach a connection by id through worker.h.
 */
#ifndef PARLEY_CORE_CONN_H
#define PARLEY_CORE_CONN_H

#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/netaddr.h"

struct conn;
struct evbuffer;

/* What is known about a connection once it is established. */
struct conn_info {
    uint64_t id;
    bool tls;
    bool outgoing;
    int listener; /* index of the accepting listener; -1 when outgoing */
    struct netaddr peer;
    struct netaddr local;
    char tls_version[16]; /* "TLSv1.3"; empty without TLS */
    char tls_cipher[64];
    bool tls_resumed;
    bool peer_cert_verified;     /* a certificate was presented and chains to a trusted CA */
    bool peer_crl_missing;       /* ... but its issuer has no CRL loaded */
    X509 *peer_cert;             /* the presented certificate (a reference) or NULL */
    STACK_OF(X509) * peer_chain; /* what came with it (references), or NULL */
};

/* Copies an info (taking a new reference on the certificate); free with
 * conn_info_free. */
struct conn_info *conn_info_dup(const struct conn_info *info);
void conn_info_free(struct conn_info *info);

/* A protocol that runs over connections (SIP framing, TURN over TCP...). */
struct conn_protocol {
    const char *name;
    /* The connection is established (TLS handshake done). */
    void (*on_open)(struct conn *c, void *arg);
    /* Bytes arrived; consume what forms whole units, leave the rest. */
    void (*on_read)(struct conn *c, struct evbuffer *in, void *arg);
    /* The connection is gone (called exactly once per connection, also
     * when it never opened). reason is for the log. */
    void (*on_close)(struct conn *c, const char *reason, void *arg);
};

uint64_t conn_id(const struct conn *c);
const struct conn_info *conn_info(const struct conn *c);
/* Queues bytes for the peer. Returns 0, or -EPIPE when the connection is
 * closing, or -ENOBUFS when the peer does not read and the output limit is
 * reached (the connection is then closed). */
int conn_write(struct conn *c, const void *data, size_t len);
/* Closes after what was written has been sent (TLS close_notify included).
 * Safe to call from the connection's own callbacks: the object is freed
 * later, never inside its own callback. */
void conn_close(struct conn *c, const char *reason);
/* Seconds without incoming bytes before the connection is closed; 0 means
 * no idle limit. */
void conn_set_idle_timeout(struct conn *c, unsigned seconds);
/* Stops reading for ms milliseconds, then reads again (and hands over
 * what is buffered): a protocol whose consumer is behind slows its peer. */
void conn_defer_read(struct conn *c, unsigned ms);
/* Protocol state attached to the connection. */
void conn_set_data(struct conn *c, void *data);
void *conn_get_data(const struct conn *c);

#endif
