/*
 * runtime — the one runtime context of parleyd, owned by the core thread.
 *
 * Everything mutable that the daemon holds hangs from here: the active
 * configuration and TLS context, listeners, the connection table, timers,
 * the store. Only the core thread touches it; workers receive copies of
 * what they need with each connection. This header is for the modules of
 * src/server; other subsystems get what they need passed in.
 */
#ifndef PARLEY_SERVER_RUNTIME_H
#define PARLEY_SERVER_RUNTIME_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "core/config.h"
#include "net/conn.h"
#include "core/hmap.h"
#include "core/strbuf.h"
#include "core/timer.h"
#include "dialplan/dialplan.h"
#include "http/transport.h"
#include "net/worker.h"
#include "presence/presence.h"
#include "proxy/proxy.h"
#include "registrar/auth.h"
#include "registrar/registrar.h"
#include "relay/relay_cred.h"
#include "sip/transport.h"

struct event;
struct event_base;
struct evconnlistener;
struct control;
struct relay;
struct anchor;
struct web;
struct fips_ctx;

enum listener_kind {
    LISTENER_TLS,       /* sip.tls_listen: clients; sip.client_certificates applies */
    LISTENER_MTLS,      /* sip.mtls_listen: servers; certificates required */
    LISTENER_TCP,       /* sip.tcp_listen: plain, internal networks only */
    LISTENER_TRUNK_TCP, /* sip.trunk_tcp_listen: plain, TCP trunks' gateways only */
    LISTENER_HTTPS,     /* https.listen: the web services; no client certificates asked */
};

struct listener {
    struct runtime *rt;
    int index;
    enum listener_kind kind;
    bool tls;
    struct netaddr addr;
    struct evconnlistener *evl;
};

/* The key naming a listener kind's addresses ("sip.mtls_listen"). */
const char *listener_key(enum listener_kind kind);

/* SIP messages by method and status class, for the metrics (metrics.c):
 * counted by the core thread only. Index 0 of a method: extensions. */
#define RUNTIME_SIP_METHODS (SIP_METHOD_SERVICE + 1)
struct runtime_sip_counts {
    uint64_t requests_in[RUNTIME_SIP_METHODS];
    uint64_t responses_in[RUNTIME_SIP_METHODS][7];  /* by class: [1] 1xx ... [6] 6xx */
    uint64_t responses_out[RUNTIME_SIP_METHODS][7]; /* ... sent by Parley */
};

/* A connection as the core sees it. */
struct core_conn {
    struct hmap_node node;
    uint64_t id;
    int listener;
    bool tls;
    struct netaddr peer;
    struct conn_info *info; /* set once the connection is established */
    time_t opened;
    /* Trusted: it authenticated (a digest that verified, a certificate
     * that chains to a trusted CA), is a TCP trunk's, or Parley made it.
     * The others wait in accept order on the runtime's untrusted list:
     * with limits.connections_total reached, the oldest of them makes way
     * for a new connection, so idle strangers cannot lock users out. */
    bool trusted;
    bool evicted;                    /* closing to make way */
    struct core_conn *older, *newer; /* on the untrusted list */
};

/* What a SIP connection may buffer unread: the largest message and a little
 * more, so the transport sees a too-large one and answers 513 rather than
 * stalling on a full buffer. */
static inline size_t runtime_read_limit(const struct config *cfg)
{
    return (size_t)cfg->sip.max_message_size + 4096;
}

struct runtime {
    struct config *cfg;
    /* the cryptographic context (security.fips): every algorithm is
     * fetched from it; opened first, closed last */
    struct fips_ctx *fips;
    char *config_path;
    bool debug;
    time_t started;
    int exit_code;

    struct event_base *base;
    struct timer_heap *timers;
    struct event *timer_ev;
    struct event *sig_term, *sig_int, *sig_hup;

    SSL_CTX *tls; /* for new connections; established ones hold their own */
    struct worker_pool *workers;
    bool workers_stopped;
    struct sip_transport transport;
    struct mbox *core_mbox;

    struct listener *listeners;
    size_t nlisteners;

    struct log_limit *refuse_log; /* conn.refused at accept, bounded */
    struct hmap conns;            /* id -> core_conn */
    struct hmap sources;          /* source address -> count */
    size_t nconns;
    struct core_conn *untrusted_oldest, *untrusted_newest; /* see struct core_conn */
    uint64_t conns_evicted;                                /* since start */
    /* held transactions (txn_bounds.c): per connection, per source, all */
    struct hmap txn_conns;
    struct hmap txn_sources;
    size_t ntxn_held;
    struct throttle *throttle; /* password guessing (auth.max_failures, ...) */
    char self_name[256];       /* the host Parley writes for itself (sip.advertised_name) */

    struct store *store;               /* reads on the core thread */
    struct store_writer *store_writer; /* durable writes, on their own thread */
    struct auth *auth;
    struct registrar *registrar;
    struct proxy *proxy;
    struct presence *presence;
    struct netaddr *listen_addrs; /* the listeners' addresses, for the proxy */
    struct dns_resolver *dns;
    struct event *cert_check_ev; /* daily certificate expiry check */

    int lock_fd;
    char *lock_path;
    struct control *control;

    struct relay *relay;       /* the media relay (TURN), when relay.enabled */
    struct anchor *anchor;     /* the media engine */
    struct dialplan *dialplan; /* from the store (mediation.c); the proxy borrows it */

    struct http_transport http_transport; /* HTTPS: shared with the workers */
    struct mbox *http_mbox;               /* HTTP events to the core (websvc.c) */
    struct web *web;                      /* the web services, when https.listen is set */

    struct runtime_sip_counts sip_counts; /* SIP messages by method and class (metrics.c) */
};

/* listener.c */
int listeners_open(struct runtime *rt, char *err, size_t errlen);
void listeners_close(struct runtime *rt);
/* The connection table (listener.c): */
struct core_conn *runtime_conn_find(struct runtime *rt, uint64_t id);
void runtime_conn_opened(struct runtime *rt, uint64_t id, struct conn_info *info);
void runtime_conn_closed(struct runtime *rt, uint64_t id, const char *reason);
/* The connection proved who is at the other end (a digest that verified):
 * it is no longer one a flood's newcomer may push out. */
void runtime_conn_trust(struct runtime *rt, uint64_t id);
void runtime_conn_tables_free(struct runtime *rt);
/* Records an outgoing connection the core asked a worker to make. */
struct core_conn *runtime_conn_add_outgoing(struct runtime *rt, uint64_t id,
                                            const struct netaddr *peer);

/* txn_bounds.c: the limits.transactions_* bounds. */
/* NULL when conn may hold one more, else the name of the full bound. */
const char *runtime_txn_admit(struct runtime *rt, uint64_t conn);
void runtime_txn_held(struct runtime *rt, uint64_t conn, int delta);
void runtime_txn_tables_free(struct runtime *rt);

/* server.c */
int runtime_reload(struct runtime *rt, struct strbuf *report);
void runtime_send(struct runtime *rt, uint64_t conn, struct strbuf *data);

/* sipcore.c: the SIP core (proxy, registrar, authentication) and the
 * messages and connection events from the transport. */
int sipcore_start(struct runtime *rt, char *err, size_t errlen);
/* Loads the partner list from the store into the proxy. */
int sipcore_load_partners(struct runtime *rt);
/* Warns (log) about certificates that expire within 30 days; re-arms a
 * daily check. */
void sipcore_check_certificates(struct runtime *rt);
void sipcore_reconfigure(struct runtime *rt);
void sipcore_stop(struct runtime *rt);
void sipcore_on_event(struct mbox_msg *m, void *arg);
/* A relay credential for user from STATE_DIR/relay.secrets (lifetime_s
 * <= 0: relay.max_lifetime): 0, -ENOENT (no relay here) or an error. */
int sipcore_relay_issue(struct runtime *rt, const char *user, int64_t lifetime_s,
                        struct relay_cred *out);
/* websvc.c: the HTTPS web services (src/web) and their transport. */
int websvc_start(struct runtime *rt, char *err, size_t errlen);
void websvc_reconfigure(struct runtime *rt);
void websvc_stop(struct runtime *rt);
/* mediation.c: the dial plan from the store into the proxy (at start, on
 * reload, on `parleyctl dialplan|route|trunk`); a plan that fails to
 * build leaves the one in force, logged. 0 or a negative errno. */
int mediation_load_dialplan(struct runtime *rt);
/* proxy_env.number_owner and .user_outbound, on the store. */
int mediation_number_owner(void *arg, const char *number, char *user, size_t cap);
int mediation_user_outbound(void *arg, const char *user, enum dialplan_outbound *out);
int mediation_user_number(void *arg, const char *user, char *out, size_t cap);
void mediation_stop(struct runtime *rt);
void sipcore_configs(const struct config *cfg, struct auth_config *ac, struct registrar_config *rc,
                     struct proxy_config *pc, struct presence_config *prc);

#endif
