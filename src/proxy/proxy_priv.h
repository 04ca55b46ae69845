/*
 * Internals shared by the files of src/proxy. Not a public header.
 */
#ifndef PARLEY_PROXY_PRIV_H
#define PARLEY_PROXY_PRIV_H

#include "core/hmap.h"
#include "core/strbuf.h"
#include "proxy/proxy.h"
#include "sip/txn.h"
#include "media/policy.h"
#include "tls/cert.h"

#define PROXY_MAX_BRANCHES 16
#define PROXY_USER_MAX     65
#define PROXY_ADDR_MAX     200 /* "user@domain" */
#define PROXY_TAG_MAX      128

struct proxy_request;
struct dialog;
struct partner;

/* One forked leg of a proxied request. */
struct proxy_branch {
    struct sip_txn_user user; /* first: the transaction's context */
    struct proxy_request *pr;
    struct sip_client_txn *txn; /* NULL once it has ended */
    uint64_t conn;
    int status;                    /* last status seen; 0 before any */
    struct strbuf offer;           /* the SDP offer as sent on this branch (empty: none) */
    char early_tag[PROXY_TAG_MAX]; /* To tag of the early dialog its 1xx made */
    char asserted[PROXY_ADDR_MAX]; /* the user it reaches (local bindings), for PAI */
    bool media_refused;            /* its answer broke the media policy */
};

/* Requests in progress on behalf of one sender (user or partner's user). */
struct proxy_user_load {
    struct hmap_node node;
    char aor[PROXY_ADDR_MAX];
    size_t n;
};

/* A request being proxied: its server transaction and its branches. */
struct proxy_request {
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

/* A dialog Parley routed (INVITE-created), known by Call-ID and tags. */
struct dialog {
    struct hmap_node node;
    struct proxy *p;
    enum dialog_state state;
    char *call_id;
    char caller_tag[PROXY_TAG_MAX];
    char callee_tag[PROXY_TAG_MAX];
    uint64_t caller_conn;
    uint64_t callee_conn;
    struct proxy_call *call;
    struct strbuf late_offer;            /* an offer in a 2xx, until the ACK answers it */
    char caller_uri[PROXY_ADDR_MAX + 8]; /* From URI, To URI and remote targets, to BYE */
    char callee_uri[PROXY_ADDR_MAX + 8];
    char caller_target[256];
    char caller_aor[PROXY_ADDR_MAX]; /* user@domain of each party */
    char callee_aor[PROXY_ADDR_MAX];
    char callee_target[256];
    uint32_t invite_cseq;
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
    struct partner *partners;
    struct hmap dialogs; /* by Call-ID */
    size_t ndialogs;
    struct proxy_request *subscribes; /* out-of-dialog SUBSCRIBEs in flight */
    struct hmap user_loads;           /* sender -> requests in progress */
    struct proxy_call *live_calls;    /* calls not ended, newest first */
    uint64_t acks_dropped;
    uint64_t overload_refused;
    uint64_t throttled;
    struct log_limit *overload_log;
    struct log_limit *reject_log;     /* sip.rejected */
    struct log_limit *federation_log; /* federation.refused: a budget of its own */
};

/* proxy.c */
void proxy_strip_own_credentials(struct proxy *p, struct sip_msg *req);
/* P-Asserted-Identity, P-Preferred-Identity, Identity, Identity-Info,
 * Remote-Party-ID: identities only Parley asserts. */
void proxy_strip_identity_headers(struct sip_msg *req);
bool proxy_uri_is_us(struct proxy *p, const struct sip_uri *uri);
void proxy_make_via(struct proxy *p, uint64_t conn, const char *branch, struct strbuf *out);
/* "HOST:PORT" by which Parley is reached over conn (see proxy_env). */
void proxy_self_address(struct proxy *p, uint64_t conn, char *out, size_t cap);
/* A refusal, logged at most once a second per source and reason (anyone can
 * cause them at will), with the count held back since. */
void proxy_log_reject(struct proxy *p, const struct sip_msg *req, uint64_t conn, int status,
                      const char *why);
/* May a line about what a remote party on conn caused be written now?
 * Fills peer ("" when the connection is gone) and *suppressed. */
bool proxy_log_bounded(struct proxy *p, struct log_limit *ll, uint64_t conn, const char *what,
                       uint64_t *suppressed, char peer[NETADDR_STRLEN]);

/* route.c: forwarding and responses */
void proxy_route_new_request(struct proxy *p, struct sip_server_txn *st, struct sip_msg *req,
                             const char *caller, const char *callee_user);
void proxy_route_to_partner(struct proxy *p, struct sip_server_txn *st, struct sip_msg *req,
                            const char *caller, struct partner *pt);
void proxy_route_in_dialog(struct proxy *p, struct sip_server_txn *st, struct sip_msg *req);
void proxy_route_ack(struct proxy *p, uint64_t conn, struct sip_msg *ack);
void proxy_route_cancel(struct proxy *p, struct sip_server_txn *cancel_st,
                        struct sip_server_txn *invite_st);
void proxy_branch_response(struct sip_txn_user *u, struct sip_client_txn *t,
                           const struct sip_msg *resp, int status, bool retransmission);
void proxy_branch_terminated(struct sip_txn_user *u, struct sip_client_txn *t);
void proxy_server_terminated(void *arg, struct sip_server_txn *t);

/* federation.c */
/* Does the connection's verified certificate prove `domain` (a partner)? */
bool federation_conn_proves(struct proxy *p, uint64_t conn, const char *domain);
struct partner *federation_find(struct proxy *p, const char *domain);
/* Sends pr's held request to the partner now, or once connected. */
void federation_send(struct proxy *p, struct partner *pt, struct proxy_request *pr);
void federation_forget_waiter(struct proxy_request *pr);
void federation_conn_opened(struct proxy *p, uint64_t conn, const struct conn_info *info);
void federation_conn_closed(struct proxy *p, uint64_t conn, const char *reason);
/* Is the request from a partner, and may it be accepted? Answers and
 * returns false when not; sets *partner_domain otherwise. */
bool federation_check_inbound(struct proxy *p, struct sip_server_txn *st, const struct sip_msg *req,
                              const char *from_domain);
void federation_free(struct proxy *p);

/* route.c, used by federation.c */
bool proxy_fork_one(struct proxy_request *pr, const char *bytes, size_t len, const char *target_uri,
                    uint64_t conn, const char *loop_hash);
void proxy_finish(struct proxy_request *pr);
void proxy_request_maybe_free(struct proxy_request *pr);
/* Its work is done (a final response went up): it no longer counts
 * against its sender's bound. */
void proxy_request_done(struct proxy_request *pr);

/* media.c: the encryption level on offers and answers */
enum proxy_media_result {
    PROXY_MEDIA_OK,
    PROXY_MEDIA_REFUSED, /* 488: `warning` says why */
    PROXY_MEDIA_BAD,     /* malformed SDP: 400 */
};
bool proxy_has_sdp(const struct sip_msg *m);
/* An offer in a request about to leave on out_conn; may rewrite m's body.
 * On success the SDP as sent goes to `sent` (if not NULL). */
enum proxy_media_result proxy_media_offer(struct proxy *p, struct sip_msg *m, uint64_t in_conn,
                                          uint64_t out_conn, struct strbuf *sent, char *warning,
                                          size_t cap);
/* An answer to `offer` in m (a response or an ACK) about to leave on
 * out_conn, having come over in_conn; may rewrite m's body. */
enum proxy_media_result proxy_media_answer(struct proxy *p, struct strview offer, struct sip_msg *m,
                                           uint64_t in_conn, uint64_t out_conn, char *warning,
                                           size_t cap, char *summary, size_t summary_cap);
/* A Warning header line (CRLF-terminated) for a refusal. */
void proxy_media_warning_header(struct proxy *p, const char *warning, char *out, size_t cap);
/* Ends an answered INVITE branch Parley refuses: ACK its 2xx, then BYE
 * with a Reason. */
void proxy_media_reject_2xx(struct proxy *p, struct proxy_branch *b, const struct sip_msg *resp,
                            const char *warning);
void proxy_media_ack_2xx(struct proxy *p, struct proxy_branch *b, const struct sip_msg *resp);
/* Sends a BYE with a Reason into a dialog, to one side. */
void proxy_send_bye(struct proxy *p, uint64_t conn, const char *target, const char *from_uri,
                    const char *from_tag, const char *to_uri, const char *to_tag,
                    struct strview call_id, uint32_t cseq, const char *reason);
void proxy_media_configure(struct proxy *p, const char *level, const char *const *suites,
                           size_t nsuites);

/* service.c: the media relay authentication service (MRAS) */
bool proxy_service_is_mras(const struct sip_msg *req);
void proxy_service_mras(struct proxy *p, struct sip_server_txn *st, const struct sip_msg *req,
                        const char *user);

/* dialog.c */
struct dialog *dialog_find(struct proxy *p, struct strview call_id, struct strview from_tag,
                           struct strview to_tag, bool *from_caller);
struct dialog *dialog_upsert(struct proxy *p, const struct sip_msg *resp, struct proxy_request *pr,
                             uint64_t callee_conn);
/* The dialog a NOTIFY creates when it overtakes its SUBSCRIBE's 2xx: the
 * subscriber is the NOTIFY's To, the notifier its From. */
struct dialog *dialog_upsert_from_notify(struct proxy *p, const struct sip_msg *notify,
                                         struct proxy_request *pr, uint64_t notifier_conn);
void dialog_confirm(struct dialog *d);
void dialog_touch(struct dialog *d, const struct sip_msg *req);
void dialog_end(struct dialog *d, const char *reason);
void dialog_end_early(struct proxy *p, struct proxy_call *call);
void dialog_end_early_tag(struct proxy *p, struct strview call_id, struct strview from_tag,
                          const char *to_tag);
void dialogs_conn_closed(struct proxy *p, uint64_t conn);
void dialogs_free(struct proxy *p);
struct proxy_call *proxy_call_new(struct proxy *p, const struct sip_msg *invite, const char *caller,
                                  const char *callee);
void proxy_call_finish(struct proxy *p, struct proxy_call *call, const char *reason);
void proxy_call_release(struct proxy_call *call);

#endif
