/*
 * sip/txn — RFC 3261 §17 transactions, with RFC 6026's Accepted state, for
 * reliable transports (Parley speaks SIP over TLS and TCP only, so nothing
 * is retransmitted by timer; the timers that remain bound how long a
 * transaction may wait).
 *
 * The layer belongs to the SIP core thread. It owns the transactions and
 * the requests they carry, matches incoming requests and responses to
 * them, absorbs retransmissions and hop-by-hop ACKs, sends the ACK for a
 * non-2xx final response itself, builds CANCELs, and reports to the
 * transaction user (the proxy) through hooks. Time comes from the timer
 * heap's clock, so tests run the state machines on fake time.
 *
 * Transactions are freed by the layer when they terminate, after the
 * `terminated` hook; the user must drop its pointers then. Nothing is freed
 * inside the user's own hook calls: a transaction that terminates during a
 * hook is reaped afterwards. The reaper is a 0 ms timer on the heap, so a
 * transaction that ends during any call into the layer (a final response
 * sent or received, Timers D/I/J/K, which are zero here) stays valid until
 * the event loop next runs the timers; the terminated hooks run there.
 *
 * Stateless answers. Most requests a server gets from strangers are
 * answered on the spot — a challenge, 403, 404, 400, 503 — and must cost
 * nothing afterwards. A new server transaction is therefore only
 * "dispatching" until its user calls sip_txn_server_dispatched(): one that
 * was answered by then is freed there and then (it was never more than a
 * way to build the answer), and only one still waiting for work (a
 * forwarded request) stays, counted as held. The To tag of every response
 * the layer builds itself is a keyed MAC of the request's Call-ID, From
 * tag, CSeq number and top Via branch — the fields the ACK of a non-2xx
 * final response repeats (RFC 3261 §17.1.1.3) — so such an INVITE ends
 * with its final response, and its ACK, which matches no transaction any
 * more, is still recognised by its tag and absorbed. A forged or foreign
 * tag is not recognised: that ACK goes to the user like any stray ACK.
 */
#ifndef PARLEY_SIP_TXN_H
#define PARLEY_SIP_TXN_H

#include <stdbool.h>
#include <stdint.h>

#include "core/strbuf.h"
#include "core/timer.h"
#include "sip/msg.h"

#define SIP_T1_MS      500
#define SIP_TIMER_B_MS (64 * SIP_T1_MS) /* INVITE client: no response at all */
#define SIP_TIMER_C_MS (180 * 1000)     /* INVITE client (proxy): no final response after a 1xx */
#define SIP_TIMER_F_MS (64 * SIP_T1_MS) /* non-INVITE client: no final response */
#define SIP_TIMER_H_MS (64 * SIP_T1_MS) /* INVITE server: waiting for the ACK of a non-2xx */
#define SIP_TIMER_L_MS (64 * SIP_T1_MS) /* INVITE server: Accepted, after a 2xx */
#define SIP_TIMER_M_MS (64 * SIP_T1_MS) /* INVITE client: Accepted, after a 2xx */
/* Not in RFC 3261: a server transaction its user never answers still ends
 * (server_terminated, no response sent), so a stuck user cannot hold memory
 * for ever. An INVITE gets Timer B + Timer C + 64*T1 (longer than its
 * forwarded INVITE can wait), restarted by each provisional response it
 * sends; any other request 2 * 64*T1 (longer than Timer F). */
#define SIP_SERVER_INVITE_GUARD_MS (SIP_TIMER_B_MS + SIP_TIMER_C_MS + 64 * SIP_T1_MS)
#define SIP_SERVER_GUARD_MS        (2 * 64 * SIP_T1_MS)

struct sip_txn_layer;
struct sip_server_txn;
struct sip_client_txn;

struct sip_txn_hooks {
    /* Sends bytes on a connection; takes the strbuf's contents. */
    void (*send)(void *arg, uint64_t conn, struct strbuf *data);
    /* A client transaction received a response (resp set; 1xx or final;
     * for INVITE also 2xx retransmissions while Accepted, with
     * retransmission = true), or failed: status 408 (a timer fired) or 503
     * (its connection closed), resp NULL. */
    void (*client_response)(void *arg, struct sip_client_txn *t, const struct sip_msg *resp,
                            int status, bool retransmission);
    /* A transaction is about to be freed. */
    void (*server_terminated)(void *arg, struct sip_server_txn *t);
    void (*client_terminated)(void *arg, struct sip_client_txn *t);
    /* A server transaction outlived its dispatch without a final response
     * (delta +1: work under way), or, having done so, got its final
     * response or ended (-1): the user counts what each connection holds.
     * An ending transaction's -1 comes before its server_terminated, never
     * after. May be NULL. */
    void (*server_held)(void *arg, struct sip_server_txn *t, int delta);
};

struct sip_txn_stats {
    size_t server;              /* server transactions alive */
    size_t client;              /* client transactions alive */
    size_t held;                /* server transactions at work after their dispatch */
    uint64_t stateless_answers; /* requests answered and forgotten within their dispatch */
    uint64_t acks_absorbed;     /* ACKs of such answers, recognised by their To tag */
};

struct sip_txn_layer *sip_txn_layer_new(struct timer_heap *timers,
                                        const struct sip_txn_hooks *hooks, void *arg);
/* Frees every transaction (calling the terminated hooks) and the layer. */
void sip_txn_layer_free(struct sip_txn_layer *l);
size_t sip_txn_layer_count(const struct sip_txn_layer *l); /* server + client, for status */
void sip_txn_layer_stats(const struct sip_txn_layer *l, struct sip_txn_stats *out);

/* A fresh branch ("z9hG4bK" + random), NUL-terminated; out holds >= 32. */
void sip_txn_new_branch(char *out, size_t cap);

/* --- server transactions -------------------------------------------- */

enum sip_txn_verdict {
    SIP_TXN_NEW,      /* a new server transaction: *txn (the layer took the request);
                       * dispatching until sip_txn_server_dispatched() */
    SIP_TXN_ABSORBED, /* a retransmission (last response re-sent) or the ACK of a
                       * non-2xx final (by transaction or by stateless tag); the
                       * request was freed */
    SIP_TXN_CANCEL,   /* a CANCEL: *txn is its own new transaction (answer it;
                       * dispatching like a NEW one), *cancelled the INVITE
                       * transaction it names or NULL (481) */
    SIP_TXN_ACK,      /* an ACK that belongs to no transaction (the ACK of a 2xx):
                       * the caller keeps the request and routes it */
    SIP_TXN_INVALID,  /* no usable top Via branch; the caller keeps the request */
    SIP_TXN_FAILED,   /* out of memory (or the layer is being freed): no
                       * transaction; the caller keeps the request */
};

/* Matches a request received on conn (RFC 3261 §17.2.3: branch, sent-by and
 * method; INVITE and its ACK share a transaction). The top Via branch must
 * start with the magic cookie z9hG4bK (no RFC 2543 matching). A
 * retransmission re-sends the last response on the transaction's own
 * connection. An ACK that matches an INVITE transaction in Accepted (a 2xx
 * was sent) is SIP_TXN_ACK; one that matches it before any final response
 * is absorbed. *txn and *cancelled are NULL unless the verdict sets them. */
enum sip_txn_verdict sip_txn_server_receive(struct sip_txn_layer *l, uint64_t conn,
                                            struct sip_msg *req, struct sip_server_txn **txn,
                                            struct sip_server_txn **cancelled);

/*
 * The user has finished handling a NEW (or CANCEL) transaction's request
 * for now. A transaction that has ended (a final response was sent; the
 * terminated hook runs here) is freed at once: t must not be used again.
 * One that has not, yet has no context and no final response, was
 * abandoned by its user (nobody will answer it) and is freed too. Anything
 * else stays until it ends; while it has no final response it is held,
 * and the server_held hook counts it (a transaction waiting only for an
 * ACK, or in Accepted after a 2xx, is done with its work). Without this call a transaction stays
 * dispatching and is reaped like any other when it ends.
 */
void sip_txn_server_dispatched(struct sip_server_txn *t);

const struct sip_msg *sip_server_txn_request(const struct sip_server_txn *t);
uint64_t sip_server_txn_conn(const struct sip_server_txn *t);
void sip_server_txn_set_context(struct sip_server_txn *t, void *ctx);
void *sip_server_txn_context(const struct sip_server_txn *t);
/* Has a final response been sent? */
bool sip_server_txn_answered(const struct sip_server_txn *t);
/* The To tag used for responses this transaction builds itself: the
 * layer's keyed MAC of the request (see above), the same for the same
 * request. */
const char *sip_server_txn_local_tag(struct sip_server_txn *t);

/* Sends a response (bytes already built, e.g. forwarded from downstream)
 * and moves the state machine: 1xx keeps it Proceeding; a 2xx to INVITE
 * moves to Accepted (more 2xx may follow: forked answers); another final
 * to an INVITE moves to Completed (its ACK, carrying the downstream's To
 * tag, is waited for: Timer H); to anything else, Terminated.
 * Returns -EALREADY when a final response other than an INVITE 2xx was
 * already sent, or when anything but a 2xx follows a 2xx; -ENOTCONN when the
 * transaction has ended without a final response (connection closed, guard
 * timer) or ended in Accepted (Timer L); -EINVAL for a status outside
 * 100..699; else 0. The bytes are taken in every case. The response always
 * goes to the transaction's connection. */
int sip_server_txn_send(struct sip_server_txn *t, int status, struct strbuf *bytes);
/* Builds the response with sip_build_response (To tag = local tag) and
 * sends it. extra_headers: complete CRLF-terminated lines or NULL. A
 * non-2xx final response to an INVITE built here ends the transaction at
 * once: its ACK is recognised by the tag. */
int sip_server_txn_reply(struct sip_server_txn *t, int status, const char *reason,
                         const char *extra_headers);

/* --- client transactions -------------------------------------------- */

/*
 * Several modules start client transactions on one layer (the proxy's
 * branches, presence's NOTIFYs). By convention the context of every client
 * transaction is a struct sip_txn_user, embedded first in the owner's
 * object, and the layer's hooks dispatch to it. A context set to NULL
 * means the owner went away: reports are dropped.
 */
struct sip_txn_user {
    void (*response)(struct sip_txn_user *u, struct sip_client_txn *t, const struct sip_msg *resp,
                     int status, bool retransmission);
    void (*terminated)(struct sip_txn_user *u, struct sip_client_txn *t);
};

/* Sends req (owned by the layer from now on) on conn as a new client
 * transaction. The request must already carry the caller's top Via with a
 * branch from sip_txn_new_branch. Returns NULL (and frees req) only when
 * out of memory, when the Via has no branch, when a client transaction with
 * the same branch and method exists, for an ACK (not a transaction: send it
 * directly), or while the layer is being freed. The send hook is called
 * before this returns; should the connection fail inside it, the 503 may
 * be reported before the caller sees the pointer (which stays valid until
 * client_terminated). */
struct sip_client_txn *sip_txn_client_send(struct sip_txn_layer *l, uint64_t conn,
                                           struct sip_msg *req, void *ctx);

/* Matches a response received on conn to its client transaction (top Via
 * branch and CSeq method) and reports it through client_response. Returns
 * false for a stray response (the caller drops it). The caller keeps resp. */
bool sip_txn_client_receive(struct sip_txn_layer *l, uint64_t conn, const struct sip_msg *resp);

const struct sip_msg *sip_client_txn_request(const struct sip_client_txn *t);
uint64_t sip_client_txn_conn(const struct sip_client_txn *t);
void *sip_client_txn_context(const struct sip_client_txn *t);
void sip_client_txn_set_context(struct sip_client_txn *t, void *ctx);
int sip_client_txn_last_status(const struct sip_client_txn *t); /* 0 before any response */

/* Cancels an INVITE client transaction (RFC 3261 §9.1): sends a CANCEL
 * built from its request once a provisional response has arrived (at once
 * if one has; later otherwise), with `reason` as a Reason header value when
 * not NULL (ignored if it holds control characters). No-op for a
 * transaction that has a final response, or when called again. If no final
 * response comes within 64*T1 after the CANCEL, the transaction ends with
 * 408. The CANCEL's own responses are not reported. When Timer C fires
 * after a provisional response the layer sends a CANCEL itself (RFC 3261
 * §16.8) before reporting 408. */
void sip_client_txn_cancel(struct sip_client_txn *t, const char *reason);

/* The connection closed: client transactions on it end with 503 (an INVITE
 * already Accepted ends without a report: its final response was reported);
 * server transactions on it can no longer answer and end
 * (server_terminated). */
void sip_txn_conn_closed(struct sip_txn_layer *l, uint64_t conn);

#endif
