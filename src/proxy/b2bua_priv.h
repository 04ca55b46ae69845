/*
 * proxy/b2bua_priv — what the files of the back-to-back user agent share:
 * a call's state (struct proxy_b2b, its branches toward B, its server
 * transactions, its re-offer in flight), and the functions of the two
 * lower files. Top to bottom: b2bua.c (calls starting, INVITE responses,
 * trunks, CANCEL, ACK), b2bua_dialog.c (inside a call: BYE, re-offers,
 * refreshes, the session timer), b2bua_leg.c (bookkeeping, building and
 * sending on a side, the end of a call). For src/proxy's b2bua files only.
 */
#ifndef PARLEY_PROXY_B2BUA_PRIV_H
#define PARLEY_PROXY_B2BUA_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/strbuf.h"
#include "core/timer.h"
#include "dialplan/dialplan.h"
#include "media/policy.h"
#include "proxy/state.h"
#include "sip/dialog.h"
#include "sip/msg.h"
#include "sip/session_timer.h"
#include "sip/txn.h"

#define B2B_BRANCHES   PROXY_MAX_BRANCHES
#define B2B_NUMBER_MAX (DIALPLAN_DIGITS_MAX + 1)
#define B2B_ALLOW      "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, PRACK\r\n"

enum b2b_state {
    B2B_WAITING,   /* for a trunk's connection */
    B2B_CALLING,   /* INVITE(s) toward B in flight */
    B2B_CONFIRMED, /* answered on both sides */
    B2B_ENDED,     /* over; freed once nothing reports to it */
};

/* One INVITE toward B: an attempt on a trunk, or one device of a user. */
struct b2b_branch {
    struct sip_txn_user user; /* first: the transaction's context */
    struct proxy_b2b *b;
    struct sip_client_txn *txn; /* NULL once over */
    uint64_t conn;
    int status;    /* last status seen */
    uint32_t rseq; /* highest RSeq Parley sent PRACK for */
};

/* A server transaction of the call's (A's INVITE, a re-offer's request). */
struct b2b_server {
    enum proxy_txn_kind kind; /* first: PROXY_TXN_B2B */
    struct proxy_b2b *b;
    struct sip_server_txn *st; /* NULL once it ended */
};

/* A re-INVITE or UPDATE with an offer, from one side to the other, or
 * Parley's own session refresh toward the gateway (from = -1). */
struct b2b_reoffer {
    struct sip_txn_user user; /* first */
    struct proxy_b2b *b;
    struct b2b_server in;
    int from, to;
    bool invite;
    struct sip_client_txn *txn; /* NULL once over */
    char se_echo[96];           /* the gateway's refresh: Session-Expires lines for its 2xx */
};

struct proxy_b2b {
    /* p->b2bs by each side's Call-ID: an entry per side that says whose and
     * which side it is (a node alone could be either) */
    struct b2b_index {
        struct hmap_node node;
        struct proxy_b2b *b;
        int side;
        bool listed;
    } index[2];
    struct proxy_b2b *prev, *next; /* p->b2b_all */
    struct proxy *p;
    enum b2b_state state;
    bool outbound;                     /* A a user, B a gateway (else the reverse) */
    int user_side;                     /* 0 outbound, 1 inbound */
    char trunk[DIALPLAN_NAME_MAX + 1]; /* the trunk of the attempt in use, or the caller's */
    /* that trunk's gateway and transport when the call took it: a trunk of
     * the same name changed by a reload is another trunk for this call */
    char trunk_gateway[264];
    bool trunk_tls;
    char route[DIALPLAN_NAME_MAX + 1];
    char trunks[DIALPLAN_TRUNKS_MAX][DIALPLAN_NAME_MAX + 1];
    size_t ntrunks, attempt;
    char number[B2B_NUMBER_MAX];        /* the number called */
    char caller_number[B2B_NUMBER_MAX]; /* the caller's number, or "" */
    char user[PROXY_USER_MAX];          /* the user of the call */
    bool privacy;                       /* the caller asked for Privacy: id */
    struct b2b_server a_invite;
    struct sip_dialog side[2];
    uint64_t conn[2];
    char a_tag[PROXY_TAG_MAX];
    struct strbuf a_offer;   /* A's INVITE's SDP, as it came (empty: none) */
    struct strbuf sdp_to[2]; /* the SDP Parley last sent each side (its keys: cleansed) */
    struct b2b_branch br[B2B_BRANCHES];
    size_t nbr;
    int answered; /* index of B's answering branch, or -1 */
    int best_status;
    char best_reason[200];
    char warning[MEDIA_WARNING_MAX];
    uint32_t b_cseq;      /* the highest CSeq Parley used toward B */
    uint32_t invite_cseq; /* of the INVITE B answered */
    bool ack_waits;       /* B's 2xx carried an offer: A's ACK must answer it */
    /* B answered the offer in a provisional (sdp_to[0] holds what A got):
     * its 2xx may come without SDP (RFC 3262; and gateways that skip it
     * after an unreliable 183) */
    bool early_answer;
    bool timer_supported; /* inbound: the gateway said Supported (or Require): timer */
    /* inbound, the gateway required 100rel (RFC 3262): Parley's 18x toward
     * it are reliable, one at a time; a 2xx waits for the PRACK of one
     * that carried SDP */
    bool a_100rel;
    uint32_t a_rseq;    /* the last RSeq sent */
    bool a_unacked;     /* ... and no PRACK for it yet */
    bool a_unacked_sdp; /* ... which carried SDP */
    bool a_2xx_waits;   /* B answered meanwhile: A's 2xx goes with the PRACK */
    unsigned n422;
    struct proxy_anchor_set *anchor;
    struct proxy_call *call;
    uint32_t se_interval, se_min;
    struct sip_session_timer stimer;
    struct timer timer; /* the session timer */
    struct timer reap;
    struct b2b_reoffer *reoffer;
    /* a BYE toward a gateway whose connection is being made again: sent
     * when it opens (its header lines kept), dropped if it fails */
    bool bye_waits;
    char bye_headers[320];
};

/* --- b2bua_leg.c ------------------------------------------------------------ */

uint64_t proxy_b2bua_leg_hash(struct strview call_id);
/* Lists the call under side's Call-ID (p->b2bs), or takes it off. */
void proxy_b2bua_leg_index(struct proxy_b2b *b, int side);
void proxy_b2bua_leg_unindex(struct proxy_b2b *b, int side);
/* The side toward the gateway (1 outbound, 0 inbound), and its trunk
 * (NULL when removed meanwhile). */
int proxy_b2bua_leg_trunk_side(const struct proxy_b2b *b);
struct proxy_trunk *proxy_b2bua_leg_trunk(struct proxy_b2b *b);
/* The call takes trunk t (its name, gateway and transport are kept). */
void proxy_b2bua_leg_take_trunk(struct proxy_b2b *b, const struct proxy_trunk *t);
/* May the SDP Parley last sent side go out on conn? Not when it carries
 * a key of Parley's and conn is not TLS. */
bool proxy_b2bua_leg_sdp_may_go(struct proxy_b2b *b, int side, uint64_t conn);
/* Frees the call now (contexts of its transactions cleared). */
void proxy_b2bua_leg_free(struct proxy_b2b *b);
/* Frees it after the hooks on the stack returned, once it is over and
 * nothing can report to it any more. */
void proxy_b2bua_leg_maybe_reap(struct proxy_b2b *b);
/* "Contact: <sip:HOST:PORT;transport=...>" line toward conn. */
void proxy_b2bua_leg_contact(struct proxy *p, uint64_t conn, char *out, size_t cap);
/* The connection requests toward side go on, or 0. */
uint64_t proxy_b2bua_leg_conn(struct proxy_b2b *b, int side);
/* A request of Parley's in side's view, parsed (NULL on failure). */
struct sip_msg *proxy_b2bua_leg_build(struct proxy_b2b *b, int side, uint64_t conn,
                                      const char *method, uint32_t ack_cseq, const char *headers,
                                      struct strview body);
/* A request whose answer is of no interest (BYE); a BYE toward a gateway
 * whose connection is being made again waits for it. */
void proxy_b2bua_leg_send_oneway(struct proxy_b2b *b, int side, const char *method,
                                 const char *headers);
/* The ACK of B's 2xx (body: an answer to an offer in it, or empty). */
void proxy_b2bua_leg_send_ack(struct proxy_b2b *b, struct strview body);
struct strview proxy_b2bua_leg_sdp_of(const struct sip_msg *m);
/* Keeps the SDP of m as what Parley last sent side. */
void proxy_b2bua_leg_keep_sdp(struct proxy_b2b *b, int side, const struct sip_msg *m);
/* A response to A's INVITE (Parley's tag; its Contact on 1xx/2xx; a
 * provisional reliable when A required 100rel: while one is unacknowledged
 * the next provisional is not sent). */
void proxy_b2bua_leg_reply_a(struct proxy_b2b *b, int status, const char *reason, const char *extra,
                             struct strview sdp);
/* "Reason: SIP;cause=N;text=..." line. */
void proxy_b2bua_leg_reason(int cause, const char *text, char *out, size_t cap);
/* The call record's media text: each leg's protection and the trunk. */
void proxy_b2bua_leg_describe_media(struct proxy_b2b *b);
/* The call is over: BYE to the sides asked (a confirmed call's; cause 0:
 * no Reason), branches cancelled, record and streams released. */
void proxy_b2bua_leg_end(struct proxy_b2b *b, const char *reason, bool bye_a, bool bye_b, int cause,
                         const char *text);
/* A's INVITE fails with status (Warning when given); the call is over. */
void proxy_b2bua_leg_fail(struct proxy_b2b *b, int status, const char *reason, const char *warning);
/* What a gateway's failure becomes for the user (401/407: 403; 3xx: 502). */
int proxy_b2bua_leg_map_failure(int status, const char **reason);

/* --- b2bua_dialog.c ---------------------------------------------------------- */

/* A 2xx from the gateway (to an INVITE or UPDATE of Parley's or one it
 * passed): the session timer it sets, armed. */
void proxy_b2bua_dialog_timer_from_2xx(struct proxy_b2b *b, const struct sip_msg *resp);
/* An inbound call's INVITE from the gateway (Parley the UAS): the session
 * timer it asks for, granted (RFC 4028 §9): with the refresher it named
 * when it supports timers (below Min-SE 90: 422, the Min-SE line in
 * reject_headers), else with Parley refreshing and no Require. 0, 422, or
 * 400 for a Session-Expires that does not read. */
int proxy_b2bua_dialog_grant_timer(struct proxy_b2b *b, const struct sip_msg *req,
                                   struct strbuf *reject_headers);
/* The header lines of the granted timer for A's 2xx ("" when none). */
void proxy_b2bua_dialog_timer_granted(const struct proxy_b2b *b, char *out, size_t cap);
/* The 2xx to A's INVITE: the SDP Parley has for A, the granted timer. */
void proxy_b2bua_dialog_answer_a(struct proxy_b2b *b);
/* An inbound call is answered: the granted timer starts. */
void proxy_b2bua_dialog_timer_start(struct proxy_b2b *b);
/* A request inside the call from side's party, answered. */
void proxy_b2bua_dialog_request(struct proxy_b2b *b, int side, struct sip_server_txn *st,
                                struct sip_msg *req);

#endif
