/*
 * sip/uri — SIP, SIPS and TEL URIs (RFC 3261 §19.1, RFC 3966).
 *
 *   sip:user:password@host:port;uri-parameters?headers
 *
 * Parsing records views into the input; nothing is copied or unescaped.
 */
#ifndef PARLEY_SIP_URI_H
#define PARLEY_SIP_URI_H

#include <stdbool.h>
#include <stdint.h>

#include "core/strbuf.h"
#include "core/strview.h"

enum sip_uri_scheme {
    SIP_URI_SIP = 1,
    SIP_URI_SIPS,
    SIP_URI_TEL,
};

struct sip_uri {
    enum sip_uri_scheme scheme;
    struct strview user; /* empty when there is no user part; TEL: the number */
    struct strview password;
    struct strview host; /* IPv6 without brackets */
    bool host_is_ipv6;
    uint16_t port;          /* 0 when absent */
    struct strview params;  /* ";transport=tls;lr" (leading ';' included) */
    struct strview headers; /* "?subject=x" without the '?' */
};

/* Returns 0 or -EINVAL. Rejects control characters, spaces, non-ASCII
 * bytes, broken %HH escapes, empty hosts, ports 0 or > 65535, unbalanced
 * brackets, invalid IPv6 addresses, empty parameters. A well-formed URI of
 * another scheme ("http:...") returns -EPROTONOSUPPORT with scheme 0. */
int sip_uri_parse(struct strview text, struct sip_uri *out);
/* A URI parameter, case-insensitive name; *value empty for flags like lr. */
bool sip_uri_param(const struct sip_uri *uri, const char *name, struct strview *value);
/* RFC 3261 §19.1.4 comparison (scheme, user case-sensitive, host
 * case-insensitive, port, and the transport/user/method/maddr/ttl params;
 * other parameters must agree when both carry them; headers must agree;
 * escapes compare decoded). TEL: the number without visual separators and
 * the same parameters. Parameter or header lists of more than 64 elements
 * compare equal only when byte-identical (keeps the cost linear). */
bool sip_uri_equal(const struct sip_uri *a, const struct sip_uri *b);
/* Writes "scheme:user@host:port" plus params (no headers). */
void sip_uri_print(const struct sip_uri *uri, struct strbuf *out);

#endif
