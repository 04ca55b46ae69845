/*
 * proxy/hop — the proxy's own hop (see hop.h).
 */
#include "proxy/hop.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "crypto/digest.h"
#include "proxy/state.h"

bool proxy_hop_uri_is_us(struct proxy *p, const struct sip_uri *uri)
{
    if (uri->scheme == SIP_URI_TEL)
        return false;
    size_t dl = strlen(p->domain);
    if (strview_eq_nocase(uri->host, p->domain))
        return true;
    if (uri->host.n == dl + 4 && strncasecmp(uri->host.p, "sip.", 4) == 0 &&
        strncasecmp(uri->host.p + 4, p->domain, dl) == 0)
        return true;
    if (p->self_name && strview_eq_nocase(uri->host, p->self_name)) {
        if (uri->port == 0)
            return true;
        for (size_t i = 0; i < p->env.nlisteners; i++)
            if (uri->port == netaddr_port(&p->env.listeners[i]))
                return true;
    }
    char host[NETADDR_STRLEN];
    struct netaddr a;
    if (strview_copy(uri->host, host, sizeof(host)) != 0 || netaddr_parse_ip(host, 0, &a) != 0)
        return false;
    for (size_t i = 0; i < p->env.nlisteners; i++) {
        if (netaddr_same_ip(&p->env.listeners[i], &a) &&
            (uri->port == 0 || uri->port == netaddr_port(&p->env.listeners[i])))
            return true;
    }
    return false;
}

void proxy_hop_self_address(struct proxy *p, uint64_t conn, char *out, size_t cap)
{
    if (p->env.self_address) {
        p->env.self_address(p->env.arg, conn, out, cap);
        return;
    }
    const struct conn_info *ci = p->env.conn_info(p->env.arg, conn);
    char a[NETADDR_STRLEN];
    if (ci)
        netaddr_format(&ci->local, a);
    else if (p->env.nlisteners)
        netaddr_format(&p->env.listeners[0], a);
    else
        snprintf(a, sizeof(a), "%s", p->domain);
    snprintf(out, cap, "%s", a);
}

void proxy_hop_via(struct proxy *p, uint64_t conn, const char *branch, struct strbuf *out)
{
    const struct conn_info *ci = p->env.conn_info(p->env.arg, conn);
    char a[300];
    proxy_hop_self_address(p, conn, a, sizeof(a));
    strbuf_printf(out, "SIP/2.0/%s %s;branch=%s", ci && !ci->tls ? "TCP" : "TLS", a, branch);
}

void proxy_hop_record_route(struct proxy *p, uint64_t conn, char *out, size_t cap)
{
    const struct conn_info *ci = conn ? p->env.conn_info(p->env.arg, conn) : NULL;
    char a[300];
    proxy_hop_self_address(p, conn, a, sizeof(a));
    snprintf(out, cap, "<sip:%s;transport=%s;lr>", a, ci && !ci->tls ? "tcp" : "tls");
}

bool proxy_hop_pop_own_routes(struct proxy *p, struct sip_msg *req)
{
    for (;;) {
        struct sip_value_iter it;
        struct strview v;
        sip_value_iter_init(&it, req, SIP_HDR_ROUTE);
        if (!sip_value_iter_next(&it, &v))
            return true;
        struct sip_addr a;
        if (sip_addr_parse(v, &a) != 0 || !proxy_hop_uri_is_us(p, &a.uri))
            return false;
        sip_msg_hdr_remove_first_value(req, SIP_HDR_ROUTE);
    }
}

void proxy_hop_strip_own_credentials(struct proxy *p, struct sip_msg *req)
{
    static const enum sip_hdr_id ids[] = {SIP_HDR_PROXY_AUTHORIZATION, SIP_HDR_AUTHORIZATION};
    for (size_t i = 0; i < 2; i++) {
        for (struct sip_hdr *h = sip_msg_hdr_first(req, ids[i]); h;) {
            struct sip_hdr *next = sip_msg_hdr_next(h, ids[i]);
            struct digest_credentials cred;
            char realm[256];
            if (digest_credentials_parse(h->value, &cred) != 0 ||
                (digest_unescape(cred.realm, realm, sizeof(realm)) == 0 &&
                 strcmp(realm, p->domain) == 0))
                sip_msg_hdr_remove(req, h);
            h = next;
        }
    }
}

void proxy_hop_strip_identity_headers(struct sip_msg *req)
{
    static const char *const names[] = {"Remote-Party-ID", "Identity-Info"};
    sip_msg_hdr_remove_all(req, SIP_HDR_P_ASSERTED_IDENTITY);
    sip_msg_hdr_remove_all(req, SIP_HDR_P_PREFERRED_IDENTITY);
    sip_msg_hdr_remove_all(req, SIP_HDR_IDENTITY);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        struct sip_hdr *h;
        while ((h = sip_msg_hdr_find_name(req, names[i])) != NULL)
            sip_msg_hdr_remove(req, h);
    }
}

void proxy_hop_loop_hash(const struct sip_msg *req, char out[17])
{
    struct strbuf k = STRBUF_INIT;
    struct sip_addr from;
    strbuf_putview(&k, req->request_uri);
    strbuf_putc(&k, '\n');
    strbuf_putview(&k, req->call_id);
    if (sip_msg_from(req, &from) == 0) {
        strbuf_putc(&k, '\n');
        strbuf_putview(&k, from.tag);
    }
    strbuf_printf(&k, "\n%u", req->cseq_num);
    uint64_t h = hash_bytes(k.p ? k.p : "", k.len);
    snprintf(out, 17, "%016llx", (unsigned long long)h);
    strbuf_free(&k);
}

bool proxy_hop_is_loop(const struct sip_msg *req, const char *hash)
{
    struct sip_value_iter it;
    struct strview v;
    sip_value_iter_init(&it, req, SIP_HDR_VIA);
    size_t plen = strlen(PROXY_HOP_BRANCH_PREFIX);
    while (sip_value_iter_next(&it, &v)) {
        struct sip_via via;
        if (sip_via_parse(v, &via) != 0)
            continue;
        if (via.branch.n >= plen + 16 && memcmp(via.branch.p, PROXY_HOP_BRANCH_PREFIX, plen) == 0 &&
            memcmp(via.branch.p + plen, hash, 16) == 0)
            return true;
    }
    return false;
}
