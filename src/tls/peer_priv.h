/* Inside the TLS module only: the peer object and its making. */
#ifndef PARLEY_TLS_PEER_PRIV_H
#define PARLEY_TLS_PEER_PRIV_H

#include <openssl/x509.h>
#include <stdatomic.h>

#include "tls/peer.h"

struct tls_peer {
    atomic_int refs;
    X509 *cert;
    STACK_OF(X509) * chain; /* what came with it, or NULL */
};

/* A peer holding references to cert and chain; NULL when out of memory. */
struct tls_peer *tls_peer_new(X509 *cert, STACK_OF(X509) * chain);

#endif
