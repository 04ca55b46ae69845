/*
 * tls/peer — a peer's certificate and chain behind an opaque handle (see
 * peer.h). Made by tls/stream.c from an established session.
 */
#include "tls/peer.h"

#include <errno.h>
#include <openssl/x509.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "tls/context.h"
#include "tls/peer_priv.h"

struct tls_peer *tls_peer_new(X509 *cert, STACK_OF(X509) * chain)
{
    struct tls_peer *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    atomic_init(&p->refs, 1);
    X509_up_ref(cert);
    p->cert = cert;
    p->chain = chain ? X509_chain_up_ref(chain) : NULL;
    return p;
}

struct tls_peer *tls_peer_ref(struct tls_peer *p)
{
    if (p)
        atomic_fetch_add(&p->refs, 1);
    return p;
}

void tls_peer_unref(struct tls_peer *p)
{
    if (!p || atomic_fetch_sub(&p->refs, 1) != 1)
        return;
    X509_free(p->cert);
    sk_X509_pop_free(p->chain, X509_free);
    free(p);
}

int tls_peer_summarize(const struct tls_peer *p, struct cert_summary *out)
{
    return p ? cert_summarize(p->cert, out) : -EINVAL;
}

bool tls_peer_proves_sip_domain(const struct tls_peer *p, const char *domain)
{
    return p && cert_proves_sip_domain(p->cert, domain);
}

bool tls_peer_matches_host(const struct tls_peer *p, const char *host)
{
    return p && cert_matches_host(p->cert, host);
}

bool tls_peer_names_host_exactly(const struct tls_peer *p, const char *host)
{
    return p && cert_matches_host_exactly(p->cert, host);
}

int tls_peer_recheck(const struct tls_peer *p, void *ctx, char *why, size_t cap)
{
    if (!p || !ctx)
        return 0;
    return tls_context_recheck(ctx, p->cert, p->chain, why, cap);
}
