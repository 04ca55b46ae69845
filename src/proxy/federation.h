/*
 * proxy/federation — partner domains reached over mutual TLS.
 *
 * A partner is reached at the server the administrator named for it, or
 * through DNS SRV _sipfederationtls._tcp.DOMAIN. Parley opens one
 * connection per partner when it first has something to send, presents
 * its certificate, and checks that the partner's certificate proves the
 * partner: DOMAIN as a dNSName or sip:DOMAIN URI subjectAltName (RFC 5922),
 * or the configured server HOST. Requests wait while the connection is
 * being made; a partner that went away is reconnected on the next request.
 *
 * Requests from partners must arrive over a connection whose client
 * certificate verified and proves the sending domain, and may carry only
 * identities of that domain. Part of the proxy; runs on the core thread.
 */
#ifndef PARLEY_PROXY_FEDERATION_H
#define PARLEY_PROXY_FEDERATION_H

#include <stdbool.h>
#include <stdint.h>

#include "tls/cert.h"

struct proxy;

struct federation_partner_conf {
    const char *domain;
    const char *server;  /* "" = DNS SRV */
    int port;            /* 0 = 5061 */
    const char *address; /* "" = resolve server */
};

/* Replaces the partner list (start-up, `parleyctl partner`, reload).
 * Connections to partners that stay are kept. */
int proxy_federation_set(struct proxy *p, const struct federation_partner_conf *list, size_t n);

struct federation_partner_info {
    const char *domain;
    const char *server;
    int port;
    const char *state;      /* "idle", "resolving", "connecting", "up" */
    const char *last_error; /* "" when none */
    bool have_cert;
    struct cert_summary cert; /* the certificate the partner last presented */
};

void proxy_federation_foreach(struct proxy *p,
                              bool (*fn)(const struct federation_partner_info *info, void *arg),
                              void *arg);
bool proxy_federation_is_partner(struct proxy *p, const char *domain);
/* The connection to a partner if it is up; otherwise starts making one
 * and returns 0 (ask again later). */
uint64_t proxy_federation_conn(struct proxy *p, const char *domain);

#endif
