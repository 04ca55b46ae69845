/*
 * The inside of an engine, shared by engine.c (connections, scheduling,
 * the event loop) and flows.c (the SIP messages of each scenario).
 */
#ifndef PARLEY_BENCH_ENGINE_PRIV_H
#define PARLEY_BENCH_ENGINE_PRIV_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

#include "bench/bench.h"
#include "core/netaddr.h"
#include "core/strbuf.h"
#include "crypto/digest.h"
#include "sip/msg.h"

struct engine;

enum bconn_state {
    BC_CONNECTING = 0,
    BC_OPEN,
    BC_DEAD,
};

struct bconn {
    struct engine *e;
    struct bufferevent *bev;
    SSL *ssl;
    enum bconn_state state;
    bool shared;                /* a long-lived connection many users share */
    bool pinged;                /* idle scenario: its OPTIONS was answered */
    char local[NETADDR_STRLEN]; /* our address as the server sees it (Via, Contact) */
    uint64_t t_start_ns;
    struct buser *owner; /* the operation that opened it (new connection per operation) */
    struct bconn *reap_next;
};

enum op_state {
    OP_IDLE = 0,
    OP_CONNECTING, /* waiting for its own connection's handshake */
    OP_REGISTER,   /* REGISTER sent */
    OP_MESSAGE,    /* MESSAGE sent */
    OP_INVITE,     /* INVITE sent */
    OP_BYE,        /* ACK and BYE sent */
    OP_OPTIONS,    /* OPTIONS sent (idle set-up) */
};

/* The last challenge a user got, answered again with nc + 1 (--auth reuse). */
struct bchal {
    bool have;
    bool proxy; /* 407 / Proxy-Authenticate */
    bool qop;   /* qop=auth offered */
    bool stale;
    enum digest_alg alg;
    char realm[128];
    char nonce[256];
    char opaque[256];
    uint32_t nc;
};

struct buser {
    struct engine *e;
    unsigned local; /* index in e->users */
    char name[64];
    char password[64];
    bool callee;
    bool retired; /* its connection is gone: never used again */
    bool busy;
    bool setup_op;      /* the operation is part of set-up (callee registration) */
    struct buser *peer; /* a caller's callee (message, call) */
    struct bconn *conn; /* the shared connection, or the operation's own */

    struct bchal chal;
    char ha1[DIGEST_HEX_BUF];
    char ha1_realm[128];
    enum digest_alg ha1_alg;
    bool have_ha1;

    enum op_state st;
    uint64_t t_start_ns;
    int auth_tries;
    char call_id[96];
    uint32_t cseq;
    char from_tag[24];
    char branch[48];
    char reg_call_id[96]; /* the same for every REGISTER of this user */
    uint32_t reg_cseq;
    /* the dialog of a call */
    char to_tag[128];
    char target[256];
    char route[1024]; /* Route header value(s), in order; empty when none */

    struct buser *free_next;
};

enum engine_phase {
    PH_SETUP = 0,
    PH_RUN,
    PH_DRAIN,
    PH_DONE,
};

struct engine {
    struct bench_shared *sh;
    const struct bench_opts *o;
    unsigned index;
    struct event_base *base;
    struct event *tick, *sweep, *reap_ev;
    enum engine_phase phase;

    struct bconn **conns; /* callers' shared connections (idle: all) */
    unsigned nconns;
    struct bconn **cconns; /* callees' */
    unsigned ncconns;
    unsigned conns_opened; /* set-up progress */
    unsigned conns_started;
    unsigned conns_ok;

    struct buser *users; /* callers first, then callees */
    unsigned nusers, ncallers;
    unsigned setup_regs_started, setup_regs_done;
    bool setup_done;

    struct buser *free_list;
    unsigned in_flight;
    unsigned max_in_flight;

    uint64_t t0, t_end;
    double rate; /* this engine's share; 0: as fast as possible */
    uint64_t issued;
    bool pumping;

    SSL_SESSION *session; /* the newest session, for resumption */
    struct bconn *reap_list;
    struct bench_stats st;
};

/* engine.c */
struct bconn *engine_connect(struct engine *e, struct buser *owner, bool shared);
/* Closes a connection (close_notify when it is open); freed after the dispatch. */
void engine_close(struct bconn *c, const char *why);
int engine_send(struct bconn *c, const struct strbuf *data);
/* Ends the user's operation: status 0 = success, > 0 = failed with that
 * final status, -ETIMEDOUT = timeout, -ECONNRESET = connection lost. */
void engine_op_done(struct buser *u, int status);
void engine_conn_error(struct engine *e, const char *why);

/* flows.c */
void flow_start(struct buser *u);                         /* on a ready connection */
void flow_conn_open(struct bconn *c);                     /* an operation's own connection is up */
void flow_on_message(struct bconn *c, struct sip_msg *m); /* takes m */
void flow_send_options(struct bconn *c);
void flow_user_init(struct buser *u); /* reg_call_id */

#endif
