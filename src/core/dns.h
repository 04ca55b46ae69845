/*
 * dns — asynchronous DNS (SRV and address records) with c-ares, on an
 * event base. Used to find federation partners through
 * _sipfederationtls._tcp.DOMAIN. Belongs to the thread of its base.
 */
#ifndef PARLEY_CORE_DNS_H
#define PARLEY_CORE_DNS_H

#include <stddef.h>
#include <stdint.h>

#include "core/netaddr.h"

struct event_base;
struct dns_resolver;

#define DNS_NAME_MAX 256

struct dns_srv {
    char target[DNS_NAME_MAX];
    uint16_t port;
    uint16_t priority;
    uint16_t weight;
};

/* nameservers: "IP[:PORT], ..." or NULL/"" for the system's resolv.conf. */
int dns_resolver_new(struct event_base *base, const char *nameservers, struct dns_resolver **out,
                     char *err, size_t errlen);
/* Pending lookups are answered with -ECANCELED before this returns. */
void dns_resolver_free(struct dns_resolver *r);

/* status: 0, -ENOENT (no such name / no records), -ETIMEDOUT, -EIO,
 * -ECANCELED. Records come sorted by priority, then weight (highest
 * first). */
typedef void (*dns_srv_fn)(void *arg, int status, const struct dns_srv *recs, size_t n);
void dns_resolve_srv(struct dns_resolver *r, const char *name, dns_srv_fn fn, void *arg);

/* IPv4 and IPv6 addresses of host, each with `port` set. */
typedef void (*dns_addr_fn)(void *arg, int status, const struct netaddr *addrs, size_t n);
void dns_resolve_addr(struct dns_resolver *r, const char *host, uint16_t port, dns_addr_fn fn,
                      void *arg);

#endif
