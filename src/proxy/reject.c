/*
 * proxy/reject — refusals and their bounded log lines (see reject.h).
 */
#include "proxy/reject.h"

#include <string.h>

#include "core/log.h"
#include "proxy/state.h"

bool proxy_reject_log_allowed(struct proxy *p, struct log_limit *ll, uint64_t conn,
                              const char *what, uint64_t *suppressed, char peer[NETADDR_STRLEN])
{
    const struct conn_info *ci = p->env.conn_info(p->env.arg, conn);
    uint8_t key[16] = {0};
    peer[0] = '\0';
    if (ci) {
        netaddr_source_key(&ci->peer, key);
        netaddr_format(&ci->peer, peer);
    }
    uint64_t k = hash_bytes(key, sizeof(key)) ^ (hash_bytes(what, strlen(what)) * 31);
    return log_limit_allow(ll, clock_now_ms(timer_heap_clock(p->timers)), k, suppressed);
}

void proxy_reject_log(struct proxy *p, const struct sip_msg *req, uint64_t conn, int status,
                      const char *why)
{
    char method[32], cid[128], peer[NETADDR_STRLEN];
    uint64_t suppressed = 0;
    if (!proxy_reject_log_allowed(p, p->reject_log, conn, why, &suppressed, peer))
        return;
    strview_copy(req->method_name, method, sizeof(method));
    strview_copy(req->call_id, cid, sizeof(cid));
    log_info("sip.rejected", "conn", LOG_INT(conn), "peer", peer, "method", method, "call_id", cid,
             "status", LOG_INT(status), "reason", why, "suppressed", LOG_INT(suppressed));
}

void proxy_reject(struct proxy *p, struct sip_server_txn *st, int status, const char *reason,
                  const char *why)
{
    proxy_reject_log(p, sip_server_txn_request(st), sip_server_txn_conn(st), status, why);
    sip_server_txn_reply(st, status, reason, NULL);
}

void proxy_reject_overload(struct proxy *p, struct sip_server_txn *st, const char *bound)
{
    p->overload_refused++;
    uint64_t suppressed = 0;
    if (log_limit_allow(p->overload_log, clock_now_ms(timer_heap_clock(p->timers)),
                        hash_bytes(bound, strlen(bound)), &suppressed)) {
        struct sip_txn_stats ts;
        sip_txn_layer_stats(p->txn, &ts);
        log_warn("sip.overload", "bound", bound, "conn", LOG_INT(sip_server_txn_conn(st)), "held",
                 LOG_INT(ts.held), "refused", LOG_INT(suppressed + 1), "refused_total",
                 LOG_INT(p->overload_refused));
    }
    sip_server_txn_reply(st, 503, "Service Unavailable (too many requests in progress)",
                         "Retry-After: 5\r\n");
}
