#include "core/netaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int netaddr_parse_port(const char *s, uint16_t *port)
{
    if (*s == '\0' || strlen(s) > 5)
        return -EINVAL;
    unsigned long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        v = v * 10 + (unsigned long)(*p - '0');
    }
    if (v > 65535)
        return -EINVAL;
    *port = (uint16_t)v;
    return 0;
}

int netaddr_parse_ip(const char *text, uint16_t port, struct netaddr *out)
{
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, text, &out->u.in4.sin_addr) == 1) {
        out->u.in4.sin_family = AF_INET;
        out->u.in4.sin_port = htons(port);
        out->len = sizeof(struct sockaddr_in);
        return 0;
    }
    if (inet_pton(AF_INET6, text, &out->u.in6.sin6_addr) == 1) {
        out->u.in6.sin6_family = AF_INET6;
        out->u.in6.sin6_port = htons(port);
        out->len = sizeof(struct sockaddr_in6);
        return 0;
    }
    return -EINVAL;
}

int netaddr_parse(const char *text, struct netaddr *out)
{
    char host[INET6_ADDRSTRLEN + 2];
    const char *colon;
    size_t hlen;
    uint16_t port;

    if (!text)
        return -EINVAL;
    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (!end || end[1] != ':')
            return -EINVAL;
        hlen = (size_t)(end - text - 1);
        if (hlen == 0 || hlen >= sizeof(host))
            return -EINVAL;
        memcpy(host, text + 1, hlen);
        host[hlen] = '\0';
        colon = end + 1;
        if (!strchr(host, ':'))
            return -EINVAL;
    } else {
        colon = strrchr(text, ':');
        if (!colon)
            return -EINVAL;
        hlen = (size_t)(colon - text);
        if (hlen == 0 || hlen >= sizeof(host))
            return -EINVAL;
        memcpy(host, text, hlen);
        host[hlen] = '\0';
        if (strchr(host, ':'))
            return -EINVAL; /* IPv6 needs brackets */
    }
    if (netaddr_parse_port(colon + 1, &port))
        return -EINVAL;
    return netaddr_parse_ip(host, port, out);
}

int netaddr_from_sockaddr(const struct sockaddr *sa, socklen_t len, struct netaddr *out)
{
    memset(out, 0, sizeof(*out));
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        memcpy(&out->u.in4, sa, sizeof(struct sockaddr_in));
        out->len = sizeof(struct sockaddr_in);
        return 0;
    }
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        memcpy(&out->u.in6, sa, sizeof(struct sockaddr_in6));
        out->len = sizeof(struct sockaddr_in6);
        return 0;
    }
    return -EAFNOSUPPORT;
}

const char *netaddr_format_ip(const struct netaddr *a, char buf[NETADDR_STRLEN])
{
    buf[0] = '\0';
    if (a->u.sa.sa_family == AF_INET)
        inet_ntop(AF_INET, &a->u.in4.sin_addr, buf, NETADDR_STRLEN);
    else if (a->u.sa.sa_family == AF_INET6)
        inet_ntop(AF_INET6, &a->u.in6.sin6_addr, buf, NETADDR_STRLEN);
    else
        snprintf(buf, NETADDR_STRLEN, "?");
    return buf;
}

const char *netaddr_format(const struct netaddr *a, char buf[NETADDR_STRLEN])
{
    char ip[INET6_ADDRSTRLEN + 8]; /* 46 + brackets, colon and port fit in 64 */
    ip[0] = '\0';
    if (a->u.sa.sa_family == AF_INET)
        inet_ntop(AF_INET, &a->u.in4.sin_addr, ip, INET6_ADDRSTRLEN);
    else if (a->u.sa.sa_family == AF_INET6)
        inet_ntop(AF_INET6, &a->u.in6.sin6_addr, ip, INET6_ADDRSTRLEN);
    if (a->u.sa.sa_family == AF_INET6)
        snprintf(buf, NETADDR_STRLEN, "[%s]:%u", ip, netaddr_port(a));
    else
        snprintf(buf, NETADDR_STRLEN, "%s:%u", ip, netaddr_port(a));
    return buf;
}

uint16_t netaddr_port(const struct netaddr *a)
{
    if (a->u.sa.sa_family == AF_INET)
        return ntohs(a->u.in4.sin_port);
    if (a->u.sa.sa_family == AF_INET6)
        return ntohs(a->u.in6.sin6_port);
    return 0;
}

void netaddr_set_port(struct netaddr *a, uint16_t port)
{
    if (a->u.sa.sa_family == AF_INET)
        a->u.in4.sin_port = htons(port);
    else if (a->u.sa.sa_family == AF_INET6)
        a->u.in6.sin6_port = htons(port);
}

int netaddr_family(const struct netaddr *a)
{
    return a->u.sa.sa_family;
}

/* Writes the address as 16 bytes of IPv6 (IPv4 as ::ffff:a.b.c.d). */
static void netaddr_as_v6(const struct netaddr *a, uint8_t out[16])
{
    if (a->u.sa.sa_family == AF_INET) {
        memset(out, 0, 10);
        out[10] = 0xff;
        out[11] = 0xff;
        memcpy(out + 12, &a->u.in4.sin_addr, 4);
    } else {
        memcpy(out, &a->u.in6.sin6_addr, 16);
    }
}

bool netaddr_same_ip(const struct netaddr *a, const struct netaddr *b)
{
    uint8_t x[16], y[16];
    netaddr_as_v6(a, x);
    netaddr_as_v6(b, y);
    return memcmp(x, y, 16) == 0;
}

void netaddr_source_key(const struct netaddr *a, uint8_t out[16])
{
    netaddr_as_v6(a, out);
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(out, mapped, 12) != 0)
        memset(out + 8, 0, 8);
}

bool netaddr_same_source(const struct netaddr *a, const struct netaddr *b)
{
    uint8_t x[16], y[16];
    netaddr_source_key(a, x);
    netaddr_source_key(b, y);
    return memcmp(x, y, 16) == 0;
}

bool netaddr_equal(const struct netaddr *a, const struct netaddr *b)
{
    return netaddr_same_ip(a, b) && netaddr_port(a) == netaddr_port(b);
}

int cidr_parse(const char *text, struct cidr *out)
{
    char addr[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(text, '/');
    size_t alen = slash ? (size_t)(slash - text) : strlen(text);

    memset(out, 0, sizeof(*out));
    if (alen == 0 || alen >= sizeof(addr))
        return -EINVAL;
    memcpy(addr, text, alen);
    addr[alen] = '\0';
    if (inet_pton(AF_INET, addr, out->addr) == 1) {
        out->family = AF_INET;
        out->prefix = 32;
    } else if (inet_pton(AF_INET6, addr, out->addr) == 1) {
        out->family = AF_INET6;
        out->prefix = 128;
    } else {
        return -EINVAL;
    }
    if (slash) {
        uint16_t p;
        if (netaddr_parse_port(slash + 1, &p) || p > out->prefix)
            return -EINVAL;
        out->prefix = p;
    }
    /* canonicalise: clear host bits so "10.1.2.3/8" means 10.0.0.0/8 */
    unsigned bytes = out->family == AF_INET ? 4 : 16;
    for (unsigned i = 0; i < bytes; i++) {
        unsigned bit = i * 8;
        if (bit >= out->prefix)
            out->addr[i] = 0;
        else if (out->prefix - bit < 8)
            out->addr[i] &= (uint8_t)(0xff << (8 - (out->prefix - bit)));
    }
    return 0;
}

static bool cidr_match_bytes(const uint8_t *net, const uint8_t *addr, unsigned prefix)
{
    unsigned full = prefix / 8, rest = prefix % 8;
    if (memcmp(net, addr, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (net[full] & mask) == (addr[full] & mask);
}

bool cidr_contains(const struct cidr *range, const struct netaddr *a)
{
    uint8_t v6[16];
    netaddr_as_v6(a, v6);
    bool mapped = memcmp(v6, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0;

    if (range->family == AF_INET)
        return mapped && cidr_match_bytes(range->addr, v6 + 12, range->prefix);
    return cidr_match_bytes(range->addr, v6, range->prefix);
}

const char *cidr_format(const struct cidr *c, char buf[NETADDR_STRLEN])
{
    char ip[INET6_ADDRSTRLEN];
    inet_ntop(c->family, c->addr, ip, sizeof(ip));
    snprintf(buf, NETADDR_STRLEN, "%s/%u", ip, c->prefix);
    return buf;
}
