/*
 * proxy/state — the state the files of src/proxy share: the proxy, a
 * request being proxied and its branches, the dialogs and calls Parley
 * routed, partners. Types only, not a public header; each file's functions
 * are declared in that file's own header (proxy/route.h, proxy/branch.h...),
 * which is how the layering inside the folder is written down and checked.
 */
#ifndef PARLEY_PROXY_STATE_H
#define PARLEY_PROXY_STATE_H

#include "core/hmap.h"
#include "core/log_limit.h"
#include "core/strbuf.h"
#include "core/timer.h"
#include "media/policy.h"
#include "proxy/env.h"
#include "registrar/auth.h"
#include "registrar/registrar.h"
#include "sip/dialog.h"
#include "sip/txn.h"
#include "tls/cert.h"

#define PROXY_MAX_BRANCHES 16
#define PROXY_USER_MAX     65
#define PROXY_ADDR_MAX     200 /* "user@domain" */
#define PROXY_TAG_MAX      128

struct proxy_request;
struct proxy_dialog;
struct partner;
struct proxy_anchor_set;
struct proxy_trunk;
struct proxy_b2b;

/* What a server transaction's context is: the first member of each kind
 * of context object, so the entry knows whom a transaction's end
 * concerns. A proxy_request's is 0 (it is calloc'd). */
enum proxy_txn_kind {
    PROXY_TXN_REQUEST = 0, /* struct proxy_request */
    PROXY_TXN_B2B,         /* a back-to-back call's (proxy/b2bua) */
};

/* One forked leg of a proxied request. */
struct proxy_branch {
    struct sip_txn_user user; /* first: the transaction's context */
    struct proxy_request *pr;
    struct sip_client_txn *txn; /* NULL once it has ended */
    uint64_t conn;
    int status;                      /* last status seen; 0 before any */
    struct strbuf offer;             /* the SDP offer as sent on this branch (empty: none) */
    char early_tag[PROXY_TAG_MAX];   /* To tag of the early dialog its 1xx made */
    char asserted[PROXY_ADDR_MAX];   /* the user it reaches (local bindings), for PAI */
    bool media_refused;              /* its answer broke the media policy */
    struct proxy_anchor_set *anchor; /* anchored media of this copy's offer (owned) */
    bool anchored;                   /* its media was anchored: its SDP never passes as it came */
};

/* Requests in progress on behalf of one sender (user or partner's user). */
struct proxy_user_load {
    struct hmap_node node;
    char aor[PROXY_ADDR_MAX];
    size_t n;
};

/* A request being proxied: its server transaction and its branches. */
struct proxy_request {
    enum proxy_txn_kind kind; /* first: PROXY_TXN_REQUEST */
    struct proxy *p;
    struct proxy_user_load *load; /* counted against its sender; NULL for a BYE */
    struct sip_server_txn *st;
    enum sip_method method;
    bool in_dialog;
    struct proxy_branch branches[PROXY_MAX_BRANCHES];
    size_t nbranches;
    size_t pending;     /* branches without a final response */
    int best_status;    /* best final response so far (0: none) */
    struct strbuf best; /* its bytes, ready to send upstream */
    bool forwarded_2xx;
    bool cancelling;
    char warning[MEDIA_WARNING_MAX]; /* a Warning for a locally decided final response */
    char caller[PROXY_ADDR_MAX];
    char callee[PROXY_ADDR_MAX];
    struct proxy_call *call; /* out-of-dialog INVITE: the call being tried */
    /* waiting for a partner connection: the request as it will be sent */
    struct partner *waiting_for;
    struct proxy_request *next_waiting;
    struct strbuf held;
    char loop_hash[17];
    /* the Record-Route Parley added for the side the request came from, or
     * "": a branch leaving through another kind of listener adds its own
     * above it (RFC 5658 double record-routing) */
    char rr_in[320];
    /* an out-of-dialog SUBSCRIBE in flight: its first NOTIFY may come
     * before its 2xx (RFC 6665 §4.1.2.4) and creates the dialog */
    struct proxy_request *sub_prev, *sub_next;
    bool sub_listed;
    unsigned ndialogs; /* dialogs its responses (or NOTIFYs) created */
};

/* A call from its INVITE to its end, for the call log and the list of
 * calls in progress. */
struct proxy_call {
    struct proxy_call *prev_live, *next_live; /* p->live_calls until it ends */
    bool on_hold;                             /* the latest offer in the dialog held it */
    bool anchored;                            /* its media goes through the engine */
    char trunk[72];                           /* the trunk it crosses, or "" */
    char *legs; /* the engine's figures when the call ended (JSON), or NULL */
    char *call_id;
    char media[400]; /* what each media section negotiated */
    char caller[PROXY_ADDR_MAX];
    char callee[PROXY_ADDR_MAX];
    int64_t started, answered, ended;
    struct proxy *p;   /* while listed */
    unsigned refs;     /* the INVITE's proxy_request and dialogs */
    unsigned ndialogs; /* early and confirmed dialogs of this call */
    bool logged;
};

enum dialog_state {
    DIALOG_EARLY,
    DIALOG_CONFIRMED,
};

/* A dialog Parley routed (made by an INVITE, SUBSCRIBE or REFER), known
 * by Call-ID and tags. The caller is the side that sent the creating
 * request. Parley keeps a view of the dialog toward each side (sip/dialog):
 * to_callee speaks as the caller (its local tag is the caller's), to_caller
 * as the callee, so a BYE of Parley's own reaches either side with the
 * tags, target and a CSeq that side expects. */
struct proxy_dialog {
    struct hmap_node node;
    struct proxy *p;
    enum dialog_state state;
    struct sip_dialog to_caller;
    struct sip_dialog to_callee;
    uint64_t caller_conn;
    uint64_t callee_conn;
    struct proxy_call *call;
    struct strbuf late_offer;        /* an offer in a 2xx, until the ACK answers it */
    struct proxy_anchor_set *anchor; /* its anchored media (owned), or NULL */
    char caller_aor[PROXY_ADDR_MAX]; /* user@domain of each party */
    char callee_aor[PROXY_ADDR_MAX];
    struct timer timer; /* early dialogs and confirmed ones both end eventually */
};

enum partner_state {
    PARTNER_IDLE,
    PARTNER_RESOLVING,
    PARTNER_CONNECTING,
    PARTNER_UP,
};

struct partner {
    struct proxy *p;
    char domain[256];
    char server[256];
    int port;
    char address[64];
    enum partner_state state;
    uint64_t conn;       /* our connection to it, once opened */
    char host[320];      /* the host being connected (SRV target or server) */
    unsigned generation; /* bumped when a lookup must be ignored */
    struct proxy_request *waiting;
    size_t nwaiting;
    bool have_cert;
    struct cert_summary cert;
    char last_error[160];
    uint64_t last_accepted_conn; /* federation.accepted is logged once per connection */
    struct partner *next;
};

struct proxy {
    struct timer_heap *timers;
    struct media_policy media;
    char *media_suites[8];
    struct proxy_env env;
    struct proxy_config cfg;
    char *domain;
    char *self_name; /* sip.advertised_name in force, or NULL */
    struct registrar *registrar;
    struct auth *auth;
    struct sip_txn_layer *txn;
    struct presence *presence;
    const struct dialplan *dialplan; /* the server's (proxy_set_dialplan); NULL: none */
    struct partner *partners;
    struct hmap dialogs; /* by Call-ID */
    size_t ndialogs;
    struct proxy_request *subscribes; /* out-of-dialog SUBSCRIBEs in flight */
    struct hmap user_loads;           /* sender -> requests in progress */
    struct proxy_call *live_calls;    /* calls not ended, newest first */
    struct proxy_trunk *trunks;       /* proxy/trunk: the trunks in force */
    /* set by the entry: a trunk's connection attempt failed outside a
     * connection event (its gateway's name did not resolve) */
    void (*trunk_failed)(struct proxy *p, struct proxy_trunk *t);
    struct hmap b2bs;          /* back-to-back calls by the Call-ID of each side */
    struct proxy_b2b *b2b_all; /* every back-to-back call, for walks */
    uint64_t acks_dropped;
    uint64_t overload_refused;
    uint64_t throttled;
    struct log_limit *overload_log;
    struct log_limit *reject_log;     /* sip.rejected */
    struct log_limit *federation_log; /* federation.refused: a budget of its own */
};

#endif
