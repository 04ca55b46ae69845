#include "core/dns.h"

#include <arpa/nameser.h>
#include <ares.h>
#include <errno.h>
#include <event2/event.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DNS_MAX_SOCKS   16
#define DNS_MAX_RECORDS 16

struct dns_sock {
    ares_socket_t fd;
    struct event *ev;
};

struct dns_resolver {
    struct event_base *base;
    ares_channel channel;
    struct dns_sock socks[DNS_MAX_SOCKS];
    struct event *timer;
};

static void dns_arm_timer(struct dns_resolver *r)
{
    struct timeval tv, *tvp = ares_timeout(r->channel, NULL, &tv);
    if (tvp)
        event_add(r->timer, tvp);
    else
        event_del(r->timer);
}

static void dns_on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct dns_resolver *r = arg;
    ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    dns_arm_timer(r);
}

static void dns_on_sock(evutil_socket_t fd, short what, void *arg)
{
    struct dns_resolver *r = arg;
    ares_process_fd(r->channel, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
                    (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
    dns_arm_timer(r);
}

/* c-ares says which sockets it wants watched, and for what. */
static void dns_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct dns_resolver *r = data;
    struct dns_sock *slot = NULL, *free_slot = NULL;
    for (size_t i = 0; i < DNS_MAX_SOCKS; i++) {
        if (r->socks[i].ev && r->socks[i].fd == fd)
            slot = &r->socks[i];
        else if (!r->socks[i].ev && !free_slot)
            free_slot = &r->socks[i];
    }
    if (slot) {
        event_free(slot->ev);
        slot->ev = NULL;
    }
    if (!readable && !writable)
        return;
    if (!slot)
        slot = free_slot;
    if (!slot)
        return; /* more sockets than c-ares uses in practice; the timer still drives it */
    short what = EV_PERSIST | (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);
    slot->fd = fd;
    slot->ev = event_new(r->base, fd, what, dns_on_sock, r);
    if (slot->ev)
        event_add(slot->ev, NULL);
}

int dns_resolver_new(struct event_base *base, const char *nameservers, struct dns_resolver **out,
                     char *err, size_t errlen)
{
    static int initialised;
    if (!initialised) {
        int rc = ares_library_init(ARES_LIB_INIT_ALL);
        if (rc != ARES_SUCCESS) {
            snprintf(err, errlen, "DNS: %s", ares_strerror(rc));
            return -EIO;
        }
        initialised = 1;
    }
    struct dns_resolver *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->base = base;
    struct ares_options opts = {0};
    opts.sock_state_cb = dns_sock_state;
    opts.sock_state_cb_data = r;
    opts.timeout = 2000; /* ms per try */
    opts.tries = 2;
    int rc = ares_init_options(&r->channel, &opts,
                               ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
    if (rc != ARES_SUCCESS) {
        snprintf(err, errlen, "DNS: %s", ares_strerror(rc));
        free(r);
        return -EIO;
    }
    if (nameservers && *nameservers) {
        rc = ares_set_servers_ports_csv(r->channel, nameservers);
        if (rc != ARES_SUCCESS) {
            snprintf(err, errlen, "dns.nameservers \"%s\": %s", nameservers, ares_strerror(rc));
            ares_destroy(r->channel);
            free(r);
            return -EINVAL;
        }
    }
    r->timer = evtimer_new(base, dns_on_timer, r);
    if (!r->timer) {
        ares_destroy(r->channel);
        free(r);
        return -ENOMEM;
    }
    *out = r;
    return 0;
}

void dns_resolver_free(struct dns_resolver *r)
{
    if (!r)
        return;
    ares_destroy(r->channel); /* answers pending queries with ARES_EDESTRUCTION */
    for (size_t i = 0; i < DNS_MAX_SOCKS; i++)
        if (r->socks[i].ev)
            event_free(r->socks[i].ev);
    event_free(r->timer);
    free(r);
}

static int dns_status(int ares_status)
{
    switch (ares_status) {
    case ARES_SUCCESS:
        return 0;
    case ARES_ENODATA:
    case ARES_ENOTFOUND:
        return -ENOENT;
    case ARES_ETIMEOUT:
        return -ETIMEDOUT;
    case ARES_EDESTRUCTION:
    case ARES_ECANCELLED:
        return -ECANCELED;
    default:
        return -EIO;
    }
}

struct dns_srv_query {
    dns_srv_fn fn;
    void *arg;
};

static int dns_srv_cmp(const void *a, const void *b)
{
    const struct dns_srv *x = a, *y = b;
    if (x->priority != y->priority)
        return x->priority < y->priority ? -1 : 1;
    return x->weight > y->weight ? -1 : x->weight < y->weight;
}

static void dns_on_srv(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    (void)timeouts;
    struct dns_srv_query *q = arg;
    struct dns_srv recs[DNS_MAX_RECORDS];
    size_t n = 0;
    int rc = dns_status(status);
    if (rc == 0) {
        struct ares_srv_reply *reply = NULL;
        int prc = ares_parse_srv_reply(abuf, alen, &reply);
        if (prc != ARES_SUCCESS) {
            rc = dns_status(prc);
        } else {
            for (struct ares_srv_reply *s = reply; s && n < DNS_MAX_RECORDS; s = s->next) {
                snprintf(recs[n].target, sizeof(recs[n].target), "%s", s->host);
                recs[n].port = s->port;
                recs[n].priority = s->priority;
                recs[n].weight = s->weight;
                n++;
            }
            ares_free_data(reply);
            qsort(recs, n, sizeof(recs[0]), dns_srv_cmp);
            if (n == 0)
                rc = -ENOENT;
        }
    }
    q->fn(q->arg, rc, recs, n);
    free(q);
}

void dns_resolve_srv(struct dns_resolver *r, const char *name, dns_srv_fn fn, void *arg)
{
    struct dns_srv_query *q = malloc(sizeof(*q));
    if (!q) {
        fn(arg, -ENOMEM, NULL, 0);
        return;
    }
    q->fn = fn;
    q->arg = arg;
    ares_query(r->channel, name, ns_c_in, ns_t_srv, dns_on_srv, q);
    dns_arm_timer(r);
}

struct dns_addr_query {
    dns_addr_fn fn;
    void *arg;
    uint16_t port;
};

static void dns_on_addr(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    (void)timeouts;
    struct dns_addr_query *q = arg;
    struct netaddr addrs[DNS_MAX_RECORDS];
    size_t n = 0;
    int rc = dns_status(status);
    if (rc == 0 && res) {
        for (struct ares_addrinfo_node *a = res->nodes; a && n < DNS_MAX_RECORDS; a = a->ai_next) {
            if (netaddr_from_sockaddr(a->ai_addr, (socklen_t)a->ai_addrlen, &addrs[n]) == 0) {
                netaddr_set_port(&addrs[n], q->port);
                n++;
            }
        }
        if (n == 0)
            rc = -ENOENT;
    }
    if (res)
        ares_freeaddrinfo(res);
    q->fn(q->arg, rc, addrs, n);
    free(q);
}

void dns_resolve_addr(struct dns_resolver *r, const char *host, uint16_t port, dns_addr_fn fn,
                      void *arg)
{
    struct netaddr literal;
    if (netaddr_parse_ip(host, port, &literal) == 0) {
        fn(arg, 0, &literal, 1);
        return;
    }
    struct dns_addr_query *q = malloc(sizeof(*q));
    if (!q) {
        fn(arg, -ENOMEM, NULL, 0);
        return;
    }
    q->fn = fn;
    q->arg = arg;
    q->port = port;
    struct ares_addrinfo_hints hints = {0};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    ares_getaddrinfo(r->channel, host, NULL, &hints, dns_on_addr, q);
    dns_arm_timer(r);
}
