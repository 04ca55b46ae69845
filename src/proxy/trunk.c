/*
 * proxy/trunk — trunks to PSTN gateways: the table, connections, who a
 * connection belongs to (see trunk.h).
 */
#include "proxy/trunk.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "dialplan/dialplan.h"
#include "proxy/state.h"
#include "tls/peer.h"

struct proxy_trunk {
    struct proxy_trunk *next;
    struct proxy *p;
    char name[DIALPLAN_NAME_MAX + 1];
    char gateway[264]; /* HOST:PORT as configured */
    char host[256];
    uint16_t port;
    bool tls;
    enum proxy_trunk_srtp srtp;
    bool have_address;
    struct netaddr address; /* a TCP gateway's source address (port 0) */
    /* runtime */
    enum proxy_trunk_state state;
    uint64_t conn;       /* Parley's connection to the gateway, once opened */
    unsigned generation; /* bumped when a lookup in flight must be ignored */
    int64_t skip_until_ms;
    bool have_cert;
    struct cert_summary cert;
    char last_error[200];
    uint64_t calls_out, calls_in;
};

struct trunk_lookup {
    struct proxy *p;
    char name[DIALPLAN_NAME_MAX + 1];
    unsigned generation;
};

static int64_t trunk_now_ms(struct proxy *p)
{
    return (int64_t)clock_now_ms(timer_heap_clock(p->timers));
}

const char *proxy_trunk_name(const struct proxy_trunk *t)
{
    return t->name;
}

bool proxy_trunk_tls(const struct proxy_trunk *t)
{
    return t->tls;
}

enum proxy_trunk_srtp proxy_trunk_srtp(const struct proxy_trunk *t)
{
    return t->srtp;
}

const char *proxy_trunk_gateway(const struct proxy_trunk *t)
{
    return t->gateway;
}

const char *proxy_trunk_last_error(const struct proxy_trunk *t)
{
    return t->last_error;
}

const char *proxy_trunk_srtp_name(enum proxy_trunk_srtp m)
{
    switch (m) {
    case PROXY_TRUNK_SRTP_REQUIRED:
        return "required";
    case PROXY_TRUNK_SRTP_OPTIONAL:
        return "optional";
    case PROXY_TRUNK_SRTP_NOT_SUPPORTED:
        return "not_supported";
    }
    return "?";
}

static const char *trunk_state_name(enum proxy_trunk_state s)
{
    switch (s) {
    case PROXY_TRUNK_IDLE:
        return "idle";
    case PROXY_TRUNK_CONNECTING:
        return "connecting";
    case PROXY_TRUNK_UP:
        return "up";
    case PROXY_TRUNK_FAILED:
        return "failed";
    }
    return "?";
}

/* A trunk from its stored row; what the store checked is checked again:
 * a table built here must never carry SDES keys over TCP. */
static int trunk_from_def(const struct proxy_trunk_def *d, struct proxy_trunk *t, char *err,
                          size_t errlen)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "%s", d->name);
    snprintf(t->gateway, sizeof(t->gateway), "%s", d->gateway);
    const char *colon = strrchr(d->gateway, ':');
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : 0;
    size_t hl = colon ? (size_t)(colon - d->gateway) : 0;
    if (!colon || hl == 0 || hl >= sizeof(t->host) || !end || *end || port < 1 || port > 65535) {
        snprintf(err, errlen, "trunk %s: gateway \"%s\" is not HOST:PORT", d->name, d->gateway);
        return -EINVAL;
    }
    memcpy(t->host, d->gateway, hl);
    t->host[hl] = '\0';
    if (t->host[0] == '[' && hl > 2 && t->host[hl - 1] == ']') {
        memmove(t->host, t->host + 1, hl - 2);
        t->host[hl - 2] = '\0';
    }
    t->port = (uint16_t)port;
    if (strcmp(d->transport, "tls") == 0) {
        t->tls = true;
    } else if (strcmp(d->transport, "tcp") != 0) {
        snprintf(err, errlen, "trunk %s: transport \"%s\" is neither tls nor tcp", d->name,
                 d->transport);
        return -EINVAL;
    }
    if (strcmp(d->srtp_mode, "required") == 0)
        t->srtp = PROXY_TRUNK_SRTP_REQUIRED;
    else if (strcmp(d->srtp_mode, "optional") == 0)
        t->srtp = PROXY_TRUNK_SRTP_OPTIONAL;
    else if (strcmp(d->srtp_mode, "not_supported") == 0)
        t->srtp = PROXY_TRUNK_SRTP_NOT_SUPPORTED;
    else {
        snprintf(err, errlen, "trunk %s: srtp_mode \"%s\" is unknown", d->name, d->srtp_mode);
        return -EINVAL;
    }
    if (!t->tls && t->srtp != PROXY_TRUNK_SRTP_NOT_SUPPORTED) {
        snprintf(err, errlen,
                 "trunk %s: a TCP trunk's srtp_mode must be not_supported (SDES keys never cross "
                 "an unencrypted hop)",
                 d->name);
        return -EINVAL;
    }
    if (d->address && d->address[0]) {
        if (netaddr_parse_ip(d->address, 0, &t->address) != 0) {
            snprintf(err, errlen, "trunk %s: address \"%s\" is not an IP address", d->name,
                     d->address);
            return -EINVAL;
        }
        t->have_address = true;
    } else if (!t->tls) {
        snprintf(err, errlen, "trunk %s: a TCP trunk needs the address its gateway connects from",
                 d->name);
        return -EINVAL;
    }
    return 0;
}

int proxy_trunk_set_all(struct proxy *p, const struct proxy_trunk_def *defs, size_t n, char *err,
                        size_t errlen)
{
    struct proxy_trunk *fresh = NULL, **tail = &fresh;
    for (size_t i = 0; i < n; i++) {
        struct proxy_trunk *t = malloc(sizeof(*t));
        int rc = t ? trunk_from_def(&defs[i], t, err, errlen) : -ENOMEM;
        if (rc) {
            if (rc == -ENOMEM)
                snprintf(err, errlen, "out of memory");
            free(t);
            while (fresh) {
                struct proxy_trunk *next = fresh->next;
                free(fresh);
                fresh = next;
            }
            return rc;
        }
        t->p = p;
        /* the same gateway over the same transport keeps its connection,
         * its state and its figures */
        struct proxy_trunk *old = proxy_trunk_find(p, t->name);
        if (old && strcmp(old->gateway, t->gateway) == 0 && old->tls == t->tls) {
            t->state = old->state;
            t->conn = old->conn;
            t->generation = old->generation;
            t->skip_until_ms = old->skip_until_ms;
            t->have_cert = old->have_cert;
            t->cert = old->cert;
            memcpy(t->last_error, old->last_error, sizeof(t->last_error));
            t->calls_out = old->calls_out;
            t->calls_in = old->calls_in;
            old->conn = 0; /* handed over */
        }
        *tail = t;
        tail = &t->next;
    }
    proxy_trunk_free_all(p);
    p->trunks = fresh;
    return 0;
}

void proxy_trunk_free_all(struct proxy *p)
{
    struct proxy_trunk *t = p->trunks;
    while (t) {
        struct proxy_trunk *next = t->next;
        if (t->conn && p->env.disconnect)
            p->env.disconnect(p->env.arg, t->conn, "trunk removed or changed");
        free(t);
        t = next;
    }
    p->trunks = NULL;
}

struct proxy_trunk *proxy_trunk_find(struct proxy *p, const char *name)
{
    for (struct proxy_trunk *t = p->trunks; t; t = t->next)
        if (strcmp(t->name, name) == 0)
            return t;
    return NULL;
}

static void trunk_failed(struct proxy_trunk *t, const char *why)
{
    t->state = PROXY_TRUNK_FAILED;
    t->conn = 0;
    snprintf(t->last_error, sizeof(t->last_error), "%s", why);
    log_warn("trunk.connect_failed", "trunk", t->name, "gateway", t->gateway, "reason", why);
}

static int trunk_connect_addr(struct proxy_trunk *t, const struct netaddr *addr)
{
    struct proxy *p = t->p;
    uint64_t id = 0;
    if (t->tls && p->env.connect)
        id = p->env.connect(p->env.arg, addr, t->host, t->host);
    else if (!t->tls && p->env.connect_tcp)
        id = p->env.connect_tcp(p->env.arg, addr);
    if (!id) {
        trunk_failed(t, "no connection could be opened");
        return -EIO;
    }
    t->conn = id;
    t->state = PROXY_TRUNK_CONNECTING;
    return 0;
}

/* After an asynchronous lookup: the trunk it was for, if it still waits
 * for this one. */
static struct proxy_trunk *trunk_lookup_target(struct trunk_lookup *lk)
{
    struct proxy_trunk *t = proxy_trunk_find(lk->p, lk->name);
    if (!t || t->generation != lk->generation || t->state != PROXY_TRUNK_CONNECTING || t->conn)
        return NULL;
    return t;
}

static void trunk_on_addr(void *arg, int status, const struct netaddr *addrs, size_t n)
{
    struct trunk_lookup *lk = arg;
    struct proxy_trunk *t = trunk_lookup_target(lk);
    struct proxy *p = lk->p;
    free(lk);
    if (!t)
        return;
    if (status || n == 0) {
        char why[320];
        snprintf(why, sizeof(why), "no address for %s (%s)", t->host,
                 status == -ETIMEDOUT ? "DNS timeout" : "not found");
        trunk_failed(t, why);
        /* the callers waiting learn it like a connection that closed */
        if (p->trunk_failed)
            p->trunk_failed(p, t);
        return;
    }
    if (trunk_connect_addr(t, &addrs[0]) != 0 && p->trunk_failed)
        p->trunk_failed(p, t);
}

int proxy_trunk_connect(struct proxy *p, struct proxy_trunk *t, uint64_t *conn)
{
    if (t->state == PROXY_TRUNK_UP && t->conn && p->env.conn_info(p->env.arg, t->conn)) {
        *conn = t->conn;
        return 0;
    }
    if (t->state == PROXY_TRUNK_CONNECTING)
        return -EINPROGRESS;
    t->generation++;
    struct netaddr a;
    if (!t->tls && t->have_address) {
        /* a TCP trunk is its address: nothing in DNS decides who gets
         * the calls (TLS trunks are proven by their certificate instead) */
        a = t->address;
        netaddr_set_port(&a, t->port);
        return trunk_connect_addr(t, &a) == 0 ? -EINPROGRESS : -EIO;
    }
    if (netaddr_parse_ip(t->host, t->port, &a) == 0)
        return trunk_connect_addr(t, &a) == 0 ? -EINPROGRESS : -EIO;
    struct trunk_lookup *lk = calloc(1, sizeof(*lk));
    if (!lk || !p->env.dns) {
        free(lk);
        trunk_failed(t, "no DNS resolver for the gateway's name");
        return -EIO;
    }
    lk->p = p;
    snprintf(lk->name, sizeof(lk->name), "%s", t->name);
    lk->generation = t->generation;
    t->state = PROXY_TRUNK_CONNECTING;
    t->conn = 0;
    dns_resolve_addr(p->env.dns, t->host, t->port, trunk_on_addr, lk);
    /* a resolver may answer at once (a cached or failed lookup) */
    if (t->state == PROXY_TRUNK_FAILED)
        return -EIO;
    return t->state == PROXY_TRUNK_UP ? (*conn = t->conn, 0) : -EINPROGRESS;
}

bool proxy_trunk_skipped(struct proxy *p, const struct proxy_trunk *t)
{
    return t->skip_until_ms > trunk_now_ms(p);
}

void proxy_trunk_skip(struct proxy *p, struct proxy_trunk *t, long seconds)
{
    if (seconds <= 0)
        return;
    t->skip_until_ms = trunk_now_ms(p) + (int64_t)seconds * 1000;
    log_info("trunk.skipped", "trunk", t->name, "seconds", LOG_INT(seconds), "reason",
             "503 with Retry-After");
}

/* Does a verified certificate name the trunk's gateway (RFC 5922: a
 * subjectAltName DNS or IP entry, the CN only without any)? */
static bool trunk_cert_names(const struct proxy_trunk *t, const struct conn_info *ci)
{
    return ci->peer_cert && ci->peer_cert_verified && tls_peer_matches_host(ci->peer_cert, t->host);
}

struct proxy_trunk *proxy_trunk_of_conn(struct proxy *p, uint64_t conn)
{
    const struct conn_info *ci = p->env.conn_info(p->env.arg, conn);
    if (!ci)
        return NULL;
    for (struct proxy_trunk *t = p->trunks; t; t = t->next)
        if (t->conn == conn && t->state == PROXY_TRUNK_UP)
            /* Parley's own connection: TLS proved the gateway; over TCP only
             * its address does (a gateway named in DNS could be anyone) */
            return t->tls || (t->have_address && netaddr_same_source(&t->address, &ci->peer))
                       ? t
                       : NULL;
    if (ci->outgoing)
        return NULL;
    if (ci->tls) {
        /* a gateway calls in on the server-to-server listener only (a
         * user's device on the clients' listener is a user, whatever its
         * certificate), with a certificate that names it exactly (no
         * wildcard: one that merely covers its name is not it), from the
         * trunk's address when it has one. Several trunks of one gateway
         * (same host) are that gateway's; a certificate naming several
         * gateways is none of them. */
        if (!p->env.conn_on_mtls_listener || !p->env.conn_on_mtls_listener(p->env.arg, conn))
            return NULL;
        struct proxy_trunk *found = NULL;
        for (struct proxy_trunk *t = p->trunks; t; t = t->next) {
            if (!t->tls || !ci->peer_cert || !ci->peer_cert_verified ||
                !tls_peer_names_host_exactly(ci->peer_cert, t->host) ||
                (t->have_address && !netaddr_same_source(&t->address, &ci->peer)))
                continue;
            if (found && strcasecmp(found->host, t->host) != 0)
                return NULL;
            if (!found)
                found = t;
        }
        return found;
    }
    if (!p->env.conn_on_trunk_listener || !p->env.conn_on_trunk_listener(p->env.arg, conn))
        return NULL;
    for (struct proxy_trunk *t = p->trunks; t; t = t->next)
        if (!t->tls && t->have_address && netaddr_same_source(&t->address, &ci->peer))
            return t;
    return NULL;
}

bool proxy_trunk_tcp_source_allowed(struct proxy *p, const struct netaddr *peer)
{
    for (struct proxy_trunk *t = p->trunks; t; t = t->next)
        if (!t->tls && t->have_address && netaddr_same_source(&t->address, peer))
            return true;
    return false;
}

struct proxy_trunk *proxy_trunk_conn_opened(struct proxy *p, uint64_t conn,
                                            const struct conn_info *info, bool *up)
{
    *up = false;
    for (struct proxy_trunk *t = p->trunks; t; t = t->next) {
        if (t->conn != conn || t->state != PROXY_TRUNK_CONNECTING)
            continue;
        if (t->tls) {
            t->have_cert = info->peer_cert && tls_peer_summarize(info->peer_cert, &t->cert) == 0;
            if (!trunk_cert_names(t, info)) {
                const char *why = !info->peer_cert            ? "the gateway sent no certificate"
                                  : !info->peer_cert_verified ? "the gateway's certificate is not "
                                                                "from a trusted CA"
                                                              : "the gateway's certificate does "
                                                                "not name it";
                log_warn("trunk.refused", "trunk", t->name, "direction", "outgoing", "subject",
                         t->have_cert ? t->cert.subject : "", "issuer",
                         t->have_cert ? t->cert.issuer : "", "reason", why);
                p->env.disconnect(p->env.arg, conn, why);
                trunk_failed(t, why);
                return t;
            }
        }
        t->state = PROXY_TRUNK_UP;
        t->last_error[0] = '\0';
        log_info("trunk.connected", "trunk", t->name, "gateway", t->gateway, "transport",
                 t->tls ? "tls" : "tcp", "subject", t->have_cert ? t->cert.subject : "", "tls",
                 info->tls_version);
        *up = true;
        return t;
    }
    return NULL;
}

struct proxy_trunk *proxy_trunk_conn_closed(struct proxy *p, uint64_t conn, const char *reason)
{
    for (struct proxy_trunk *t = p->trunks; t; t = t->next) {
        if (t->conn != conn)
            continue;
        if (t->state == PROXY_TRUNK_CONNECTING) {
            char why[240];
            snprintf(why, sizeof(why), "connection failed: %s", reason ? reason : "closed");
            trunk_failed(t, why);
        } else if (t->state == PROXY_TRUNK_UP) {
            t->state = PROXY_TRUNK_IDLE;
            t->conn = 0;
            log_info("trunk.disconnected", "trunk", t->name, "reason", reason ? reason : "closed");
        } else {
            t->conn = 0;
        }
        return t;
    }
    return NULL;
}

void proxy_trunk_count_call(struct proxy_trunk *t, bool outbound)
{
    if (outbound)
        t->calls_out++;
    else
        t->calls_in++;
}

json_t *proxy_trunk_status(struct proxy *p)
{
    json_t *arr = json_array();
    int64_t now = trunk_now_ms(p);
    for (struct proxy_trunk *t = p->trunks; arr && t; t = t->next) {
        char addr[NETADDR_STRLEN] = "";
        if (t->have_address)
            netaddr_format_ip(&t->address, addr);
        json_t *cert = t->have_cert ? json_pack("{s:s, s:s, s:s, s:I}", "subject", t->cert.subject,
                                                "issuer", t->cert.issuer, "serial", t->cert.serial,
                                                "not_after", (json_int_t)t->cert.not_after)
                                    : json_null();
        json_array_append_new(
            arr,
            json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:I, s:I, s:I}", "name", t->name,
                      "gateway", t->gateway, "transport", t->tls ? "tls" : "tcp", "srtp_mode",
                      proxy_trunk_srtp_name(t->srtp), "address", addr, "state",
                      trunk_state_name(t->state), "certificate", cert, "last_error", t->last_error,
                      "skipped_for_s",
                      (json_int_t)(t->skip_until_ms > now ? (t->skip_until_ms - now) / 1000 : 0),
                      "calls_out", (json_int_t)t->calls_out, "calls_in", (json_int_t)t->calls_in));
    }
    return arr;
}
