/*
 * Federation: connections to partner domains, and the checks on requests
 * that come from them.
 */
#include "proxy/federation.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "proxy/branch.h"
#include "proxy/federation_priv.h"
#include "proxy/reject.h"
#include "proxy/request.h"
#include "proxy/response.h"
#include "proxy/state.h"

#define FEDERATION_DEFAULT_PORT 5061
#define FEDERATION_MAX_WAITING  256

struct partner *proxy_federation_find(struct proxy *p, const char *domain)
{
    for (struct partner *pt = p->partners; pt; pt = pt->next)
        if (strcasecmp(pt->domain, domain) == 0)
            return pt;
    return NULL;
}

bool proxy_federation_is_partner(struct proxy *p, const char *domain)
{
    return proxy_federation_find(p, domain) != NULL;
}

static const char *partner_state_name(enum partner_state s)
{
    switch (s) {
    case PARTNER_IDLE:
        return "idle";
    case PARTNER_RESOLVING:
        return "resolving";
    case PARTNER_CONNECTING:
        return "connecting";
    case PARTNER_UP:
        return "up";
    }
    return "?";
}

/* pr's held request goes to the partner's connection; when it cannot
 * (a refused offer decided 488 or 400 already), the sender is answered. */
static void federation_fork(struct proxy_request *pr, struct partner *pt)
{
    if (proxy_branch_fork(pr, pr->held.p, pr->held.len, NULL, pt->conn, pr->loop_hash))
        return;
    if (!pr->best_status)
        proxy_response_decide(pr, 500, NULL, false);
    proxy_response_finish(pr);
}

/* Every request waiting for the partner fails with `status`. */
static void partner_fail_waiters(struct partner *pt, int status, const char *why)
{
    while (pt->waiting) {
        struct proxy_request *pr = pt->waiting;
        pt->waiting = pr->next_waiting;
        pt->nwaiting--;
        pr->waiting_for = NULL;
        pr->next_waiting = NULL;
        strbuf_free(&pr->held);
        if (pr->st) {
            proxy_reject_log(pr->p, sip_server_txn_request(pr->st), sip_server_txn_conn(pr->st),
                             status, why);
            proxy_response_decide(pr, status, NULL, false);
            proxy_response_finish(pr);
        }
        proxy_request_maybe_free(pr);
    }
}

static void partner_flush_waiters(struct partner *pt)
{
    while (pt->waiting) {
        struct proxy_request *pr = pt->waiting;
        pt->waiting = pr->next_waiting;
        pt->nwaiting--;
        pr->waiting_for = NULL;
        pr->next_waiting = NULL;
        if (pr->st)
            federation_fork(pr, pt);
        strbuf_free(&pr->held);
        proxy_request_maybe_free(pr);
    }
}

static void partner_failed(struct partner *pt, const char *why)
{
    snprintf(pt->last_error, sizeof(pt->last_error), "%s", why);
    log_warn("federation.unreachable", "partner", pt->domain, "host", pt->host, "reason", why);
    pt->state = PARTNER_IDLE;
    pt->conn = 0;
    partner_fail_waiters(pt, 503, "partner unreachable");
}

/* DNS answers carry the partner's domain and the generation they were
 * asked in, never a pointer that may have gone. */
struct partner_lookup {
    struct proxy *p;
    char domain[256];
    unsigned generation;
    uint16_t port;
};

static struct partner *partner_lookup_target(struct partner_lookup *lk, int status)
{
    if (status == -ECANCELED)
        return NULL;
    struct partner *pt = proxy_federation_find(lk->p, lk->domain);
    if (!pt || pt->generation != lk->generation || pt->state != PARTNER_RESOLVING)
        return NULL;
    return pt;
}

static void partner_connect_addr(struct partner *pt, const struct netaddr *addr)
{
    struct proxy *p = pt->p;
    char a[NETADDR_STRLEN];
    pt->state = PARTNER_CONNECTING;
    /* a configured server must be named in the certificate (checked in
     * the handshake); a partner found by SRV must prove its domain, which
     * is checked once the connection is up */
    pt->conn = p->env.connect(p->env.arg, addr, pt->server[0] ? pt->server : pt->domain,
                              pt->server[0] ? pt->server : NULL);
    log_info("federation.connecting", "partner", pt->domain, "host", pt->host, "address",
             netaddr_format(addr, a));
    if (!pt->conn)
        partner_failed(pt, "cannot open a connection");
}

static void partner_on_addr(void *arg, int status, const struct netaddr *addrs, size_t n)
{
    struct partner_lookup *lk = arg;
    struct partner *pt = partner_lookup_target(lk, status);
    if (pt) {
        if (status || n == 0) {
            char why[300];
            snprintf(why, sizeof(why), "no address for %s (%s)", pt->host,
                     status == -ETIMEDOUT ? "DNS timeout" : "not found");
            partner_failed(pt, why);
        } else {
            partner_connect_addr(pt, &addrs[0]);
        }
    }
    free(lk);
}

static void partner_resolve_host(struct partner *pt, uint16_t port)
{
    struct proxy *p = pt->p;
    struct partner_lookup *lk = calloc(1, sizeof(*lk));
    if (!lk || !p->env.dns) {
        free(lk);
        partner_failed(pt, "no DNS resolver");
        return;
    }
    lk->p = p;
    snprintf(lk->domain, sizeof(lk->domain), "%s", pt->domain);
    lk->generation = pt->generation;
    lk->port = port;
    dns_resolve_addr(p->env.dns, pt->host, port, partner_on_addr, lk);
}

static void partner_on_srv(void *arg, int status, const struct dns_srv *recs, size_t n)
{
    struct partner_lookup *lk = arg;
    struct partner *pt = partner_lookup_target(lk, status);
    if (pt) {
        if (status || n == 0) {
            char why[320];
            snprintf(why, sizeof(why), "no _sipfederationtls._tcp.%s SRV record (%s)", pt->domain,
                     status == -ETIMEDOUT ? "DNS timeout" : "not found");
            partner_failed(pt, why);
        } else {
            snprintf(pt->host, sizeof(pt->host), "%s", recs[0].target);
            partner_resolve_host(pt, recs[0].port);
        }
    }
    free(lk);
}

static void partner_start(struct partner *pt)
{
    struct proxy *p = pt->p;
    pt->generation++;
    pt->state = PARTNER_RESOLVING;
    if (pt->server[0]) {
        snprintf(pt->host, sizeof(pt->host), "%s", pt->server);
        uint16_t port = (uint16_t)(pt->port ? pt->port : FEDERATION_DEFAULT_PORT);
        if (pt->address[0]) {
            struct netaddr a;
            if (netaddr_parse_ip(pt->address, port, &a) == 0) {
                partner_connect_addr(pt, &a);
                return;
            }
        }
        partner_resolve_host(pt, port);
        return;
    }
    struct partner_lookup *lk = calloc(1, sizeof(*lk));
    if (!lk || !p->env.dns) {
        free(lk);
        partner_failed(pt, "no DNS resolver");
        return;
    }
    lk->p = p;
    snprintf(lk->domain, sizeof(lk->domain), "%s", pt->domain);
    lk->generation = pt->generation;
    char name[300];
    snprintf(name, sizeof(name), "_sipfederationtls._tcp.%s", pt->domain);
    snprintf(pt->host, sizeof(pt->host), "%s", name);
    dns_resolve_srv(p->env.dns, name, partner_on_srv, lk);
}

void proxy_federation_send(struct proxy *p, struct partner *pt, struct proxy_request *pr)
{
    if (pt->state == PARTNER_UP && p->env.conn_info(p->env.arg, pt->conn)) {
        federation_fork(pr, pt);
        strbuf_free(&pr->held);
        return;
    }
    if (pt->nwaiting >= FEDERATION_MAX_WAITING) {
        strbuf_free(&pr->held);
        proxy_response_decide(pr, 503, NULL, false);
        proxy_response_finish(pr);
        return;
    }
    pr->waiting_for = pt;
    pr->next_waiting = pt->waiting;
    pt->waiting = pr;
    pt->nwaiting++;
    if (pt->state == PARTNER_IDLE || pt->state == PARTNER_UP)
        partner_start(pt);
}

void proxy_federation_forget_waiter(struct proxy_request *pr)
{
    struct partner *pt = pr->waiting_for;
    if (!pt)
        return;
    for (struct proxy_request **pp = &pt->waiting; *pp; pp = &(*pp)->next_waiting) {
        if (*pp == pr) {
            *pp = pr->next_waiting;
            pt->nwaiting--;
            break;
        }
    }
    pr->waiting_for = NULL;
    pr->next_waiting = NULL;
    strbuf_free(&pr->held);
}

void proxy_federation_conn_opened(struct proxy *p, uint64_t conn, const struct conn_info *info)
{
    for (struct partner *pt = p->partners; pt; pt = pt->next) {
        if (pt->conn != conn || pt->state != PARTNER_CONNECTING)
            continue;
        pt->have_cert = info->peer_cert && tls_peer_summarize(info->peer_cert, &pt->cert) == 0;
        bool proves = info->peer_cert && info->peer_cert_verified &&
                      (tls_peer_proves_sip_domain(info->peer_cert, pt->domain) ||
                       (pt->server[0] && tls_peer_matches_host(info->peer_cert, pt->server)));
        if (!proves) {
            const char *why = !info->peer_cert ? "no certificate"
                              : !info->peer_cert_verified
                                  ? "certificate not verified"
                                  : "certificate does not prove the partner's domain";
            log_warn("federation.refused", "partner", pt->domain, "direction", "outgoing",
                     "subject", pt->have_cert ? pt->cert.subject : "", "reason", why);
            p->env.disconnect(p->env.arg, conn, why);
            partner_failed(pt, why);
            return;
        }
        pt->state = PARTNER_UP;
        pt->last_error[0] = '\0';
        if (pt->have_cert && (pt->cert.not_after - (int64_t)time(NULL)) / 86400 < 30)
            log_warn("cert.expiring", "certificate", "partner", "partner", pt->domain, "subject",
                     pt->cert.subject, "issuer", pt->cert.issuer, "days_left",
                     LOG_INT((pt->cert.not_after - (int64_t)time(NULL)) / 86400));
        log_info("federation.connected", "partner", pt->domain, "host", pt->host, "subject",
                 pt->cert.subject, "issuer", pt->cert.issuer, "tls", info->tls_version);
        partner_flush_waiters(pt);
        return;
    }
}

void proxy_federation_conn_closed(struct proxy *p, uint64_t conn, const char *reason)
{
    for (struct partner *pt = p->partners; pt; pt = pt->next) {
        if (pt->conn != conn)
            continue;
        if (pt->state == PARTNER_CONNECTING) {
            char why[200];
            snprintf(why, sizeof(why), "connection failed: %s", reason ? reason : "closed");
            partner_failed(pt, why);
        } else {
            log_info("federation.disconnected", "partner", pt->domain, "reason",
                     reason ? reason : "closed");
            pt->state = PARTNER_IDLE;
            pt->conn = 0;
        }
    }
}

/* Checks one identity header value names a user of `domain`. */
static bool federation_identity_in(struct strview v, const char *domain)
{
    struct sip_addr a;
    if (sip_addr_parse(v, &a) != 0 || a.uri.scheme == SIP_URI_TEL)
        return false;
    return strview_eq_nocase(a.uri.host, domain);
}

static void federation_refuse(struct proxy *p, struct sip_server_txn *st, const char *domain,
                              const struct conn_info *ci, const char *why, bool close)
{
    char subject[300] = "";
    struct cert_summary s;
    if (ci && ci->peer_cert && tls_peer_summarize(ci->peer_cert, &s) == 0)
        snprintf(subject, sizeof(subject), "%s", s.subject);
    char peer[NETADDR_STRLEN];
    uint64_t suppressed = 0;
    if (proxy_reject_log_allowed(p, p->federation_log, sip_server_txn_conn(st), why, &suppressed,
                                 peer))
        log_warn("federation.refused", "domain", domain, "peer", peer, "subject", subject, "reason",
                 why, "suppressed", LOG_INT(suppressed));
    char reason[200];
    snprintf(reason, sizeof(reason), "Forbidden (%s)", why);
    sip_server_txn_reply(st, 403, reason, NULL);
    if (close && ci)
        p->env.disconnect(p->env.arg, ci->id, why);
}

bool proxy_federation_check_inbound(struct proxy *p, struct sip_server_txn *st,
                                    const struct sip_msg *req, const char *from_domain)
{
    const struct conn_info *ci = p->env.conn_info(p->env.arg, sip_server_txn_conn(st));
    if (!ci)
        return false;
    struct partner *pt = proxy_federation_find(p, from_domain);
    if (!pt) {
        federation_refuse(p, st, from_domain, ci, "not a partner domain", false);
        return false;
    }
    /* server traffic is mutual TLS, without exception */
    if (!ci->tls || !ci->peer_cert || !ci->peer_cert_verified) {
        federation_refuse(
            p, st, from_domain, ci,
            !ci->tls ? "partner traffic over plain TCP" : "no verified client certificate", true);
        return false;
    }
    if (!tls_peer_proves_sip_domain(ci->peer_cert, pt->domain) &&
        !(pt->server[0] && tls_peer_matches_host(ci->peer_cert, pt->server))) {
        federation_refuse(p, st, from_domain, ci, "certificate does not prove the domain", true);
        return false;
    }
    struct sip_value_iter it;
    struct strview v;
    sip_value_iter_init(&it, req, SIP_HDR_P_ASSERTED_IDENTITY);
    while (sip_value_iter_next(&it, &v)) {
        if (!federation_identity_in(v, pt->domain)) {
            federation_refuse(p, st, from_domain, ci,
                              "P-Asserted-Identity outside the partner's domain", false);
            return false;
        }
    }
    {
        /* each decision is logged, with the certificate that decided it */
        struct cert_summary cs;
        tls_peer_summarize(ci->peer_cert, &cs);
        char peer[NETADDR_STRLEN];
        log_info("federation.accepted", "domain", pt->domain, "peer",
                 netaddr_format(&ci->peer, peer), "subject", cs.subject, "issuer", cs.issuer,
                 "reason", "verified client certificate proves the domain");
    }
    return true;
}

int proxy_federation_set(struct proxy *p, const struct federation_partner_conf *list, size_t n)
{
    /* drop partners no longer listed */
    struct partner **pp = &p->partners;
    while (*pp) {
        struct partner *pt = *pp;
        bool keep = false;
        for (size_t i = 0; i < n; i++)
            if (strcasecmp(list[i].domain, pt->domain) == 0 &&
                strcmp(list[i].server, pt->server) == 0 && list[i].port == pt->port &&
                strcmp(list[i].address, pt->address) == 0)
                keep = true;
        if (keep) {
            pp = &pt->next;
            continue;
        }
        *pp = pt->next;
        partner_fail_waiters(pt, 503, "partner removed");
        if (pt->conn && p->env.disconnect)
            p->env.disconnect(p->env.arg, pt->conn, "partner removed");
        free(pt);
    }
    for (size_t i = 0; i < n; i++) {
        if (proxy_federation_find(p, list[i].domain))
            continue;
        struct partner *pt = calloc(1, sizeof(*pt));
        if (!pt)
            return -ENOMEM;
        pt->p = p;
        snprintf(pt->domain, sizeof(pt->domain), "%s", list[i].domain);
        snprintf(pt->server, sizeof(pt->server), "%s", list[i].server);
        pt->port = list[i].port;
        snprintf(pt->address, sizeof(pt->address), "%s", list[i].address);
        pt->next = p->partners;
        p->partners = pt;
    }
    return 0;
}

void proxy_federation_foreach(struct proxy *p,
                              bool (*fn)(const struct federation_partner_info *info, void *arg),
                              void *arg)
{
    for (struct partner *pt = p->partners; pt; pt = pt->next) {
        struct federation_partner_info info = {
            .domain = pt->domain,
            .server = pt->server,
            .port = pt->port,
            .state = partner_state_name(pt->state),
            .last_error = pt->last_error,
            .have_cert = pt->have_cert,
        };
        if (pt->have_cert)
            info.cert = pt->cert;
        if (!fn(&info, arg))
            return;
    }
}

void proxy_federation_free(struct proxy *p)
{
    while (p->partners) {
        struct partner *pt = p->partners;
        p->partners = pt->next;
        /* waiters belong to transactions being freed by the layer */
        for (struct proxy_request *pr = pt->waiting; pr; pr = pr->next_waiting)
            pr->waiting_for = NULL;
        free(pt);
    }
}

uint64_t proxy_federation_conn(struct proxy *p, const char *domain)
{
    struct partner *pt = proxy_federation_find(p, domain);
    if (!pt)
        return 0;
    if (pt->state == PARTNER_UP && p->env.conn_info(p->env.arg, pt->conn))
        return pt->conn;
    if (pt->state == PARTNER_IDLE || pt->state == PARTNER_UP)
        partner_start(pt);
    return 0;
}

bool proxy_federation_conn_proves(struct proxy *p, uint64_t conn, const char *domain)
{
    struct partner *pt = proxy_federation_find(p, domain);
    const struct conn_info *ci = p->env.conn_info(p->env.arg, conn);
    if (!pt || !ci || !ci->tls || !ci->peer_cert || !ci->peer_cert_verified)
        return false;
    return tls_peer_proves_sip_domain(ci->peer_cert, pt->domain) ||
           (pt->server[0] && tls_peer_matches_host(ci->peer_cert, pt->server));
}
