/*
 * netaddr — socket addresses and CIDR ranges, parsed and printed.
 *
 * Text forms: "192.0.2.1:5061", "[2001:db8::1]:5061"; CIDR "10.0.0.0/8",
 * "fd00::/8", a bare address meaning a single host.
 */
#ifndef PARLEY_CORE_NETADDR_H
#define PARLEY_CORE_NETADDR_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct netaddr {
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
        struct sockaddr_storage ss;
    } u;
    socklen_t len;
};

/* "ADDR:PORT" with a numeric address. Returns 0 or -EINVAL. */
int netaddr_parse(const char *text, struct netaddr *out);
/* A numeric address without a port (port set to `port`). */
int netaddr_parse_ip(const char *text, uint16_t port, struct netaddr *out);
int netaddr_from_sockaddr(const struct sockaddr *sa, socklen_t len, struct netaddr *out);

#define NETADDR_STRLEN 64
/* "ADDR:PORT" ("[v6]:PORT"); returns buf. */
const char *netaddr_format(const struct netaddr *a, char buf[NETADDR_STRLEN]);
/* The address alone, without the port. */
const char *netaddr_format_ip(const struct netaddr *a, char buf[NETADDR_STRLEN]);
uint16_t netaddr_port(const struct netaddr *a);
void netaddr_set_port(struct netaddr *a, uint16_t port);
int netaddr_family(const struct netaddr *a);
/* Same address, ports ignored; an IPv4-mapped IPv6 address equals its IPv4 form. */
bool netaddr_same_ip(const struct netaddr *a, const struct netaddr *b);
bool netaddr_equal(const struct netaddr *a, const struct netaddr *b);
/* The unit per-source limits count: an IPv4 address, or an IPv6 /64 (what
 * one subscriber is usually given, so it cannot take more slots by
 * changing its interface identifier). */
bool netaddr_same_source(const struct netaddr *a, const struct netaddr *b);
/* The source key as 16 bytes (IPv6 form, interface identifier zeroed). */
void netaddr_source_key(const struct netaddr *a, uint8_t out[16]);

struct cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    unsigned prefix;
};

int cidr_parse(const char *text, struct cidr *out);
/* IPv4-mapped IPv6 addresses match IPv4 ranges. */
bool cidr_contains(const struct cidr *range, const struct netaddr *addr);
const char *cidr_format(const struct cidr *c, char buf[NETADDR_STRLEN]);

#endif
