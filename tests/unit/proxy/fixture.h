/*
 * The proxy on fake time with a fake environment: no sockets, no threads.
 *
 * struct fx holds a clock, a timer heap, a registrar, digest
 * authentication and a proxy built on them, with a table of pretend TLS
 * connections (the proxy asks env.conn_info about them), a capture of every
 * message the proxy sends (connection and bytes) and of every call record
 * it hands back. The helpers play the user agents at the other end: they
 * build requests and responses as text, parse them and hand them to
 * proxy_on_message, and answer digest challenges with the known passwords
 * of alice, bob and carol.
 *
 * Nothing here uses cmocka: the allocation-failure test (tests/unit/oom)
 * drives the same fixture, and a failed allocation must come back as an
 * error, never as a jump out of the scenario. Every helper returns 0 (or
 * what it was asked for) or a negative errno, and frees what it allocated.
 * Reading the capture allocates nothing, except fx_sent_parse.
 */
#ifndef PARLEY_TEST_PROXY_FIXTURE_H
#define PARLEY_TEST_PROXY_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"
#include "core/netaddr.h"
#include "core/timer.h"
#include "net/conn.h"
#include "proxy/proxy.h"

struct anchor;
#include "registrar/auth.h"
#include "registrar/registrar.h"
#include "sip/msg.h"

#define FX_DOMAIN "example.test"
/* Parley's one listener; every connection's local address, so the Via and
 * Record-Route Parley writes name it. */
#define FX_SELF         "198.51.100.1:5061"
#define FX_RECORD_ROUTE "<sip:" FX_SELF ";transport=tls;lr>"
#define FX_MAX_CONNS    16
#define FX_MAX_SENT     512
#define FX_MAX_RECORDS  16
#define FX_MSG_MAX      8192 /* the longest message the helpers build */

/* The SRTP suites the proxy allows (media.srtp_suites). */
#define FX_SUITE_80 "AES_CM_128_HMAC_SHA1_80"
#define FX_SUITE_32 "AES_CM_128_HMAC_SHA1_32"

/* SDP bodies. Keys are 30 bytes in base64, as AES_CM_128_* want. */
#define FX_KEY_A "NIdS6/iaKrZFxQYHiBbYoLiyWy0HFZVdNF/Lw+ZF"
#define FX_KEY_B "IDdpP4skKzo3FPObwEKe6zl7FWMJj8sva9mYS0oj"
#define FX_SDP_HEAD(host)                                                                          \
    "v=0\r\n"                                                                                      \
    "o=- 1 1 IN IP4 " host "\r\n"                                                                  \
    "s=-\r\n"                                                                                      \
    "c=IN IP4 " host "\r\n"                                                                        \
    "t=0 0\r\n"
/* An SDES-SRTP offer (alice). */
#define FX_SDP_SRTP_OFFER                                                                          \
    FX_SDP_HEAD("192.0.2.11")                                                                      \
    "m=audio 10000 RTP/SAVP 0 101\r\n"                                                             \
    "a=rtpmap:0 PCMU/8000\r\n"                                                                     \
    "a=rtpmap:101 telephone-event/8000\r\n"                                                        \
    "a=crypto:1 " FX_SUITE_80 " inline:" FX_KEY_A "\r\n"                                           \
    "a=sendrecv\r\n"
/* The same offer putting the call on hold (RFC 6337: sendonly). */
#define FX_SDP_SRTP_HOLD                                                                           \
    FX_SDP_HEAD("192.0.2.11")                                                                      \
    "m=audio 10000 RTP/SAVP 0 101\r\n"                                                             \
    "a=rtpmap:0 PCMU/8000\r\n"                                                                     \
    "a=rtpmap:101 telephone-event/8000\r\n"                                                        \
    "a=crypto:1 " FX_SUITE_80 " inline:" FX_KEY_A "\r\n"                                           \
    "a=sendonly\r\n"
/* An SDES-SRTP answer to either (bob): one a=crypto, the offered tag. */
#define FX_SDP_SRTP_ANSWER                                                                         \
    FX_SDP_HEAD("192.0.2.12")                                                                      \
    "m=audio 20000 RTP/SAVP 0 101\r\n"                                                             \
    "a=rtpmap:0 PCMU/8000\r\n"                                                                     \
    "a=rtpmap:101 telephone-event/8000\r\n"                                                        \
    "a=crypto:1 " FX_SUITE_80 " inline:" FX_KEY_B "\r\n"                                           \
    "a=sendrecv\r\n"
/* Plain RTP: an offer or an answer the "required" level refuses. */
#define FX_SDP_PLAIN                                                                               \
    FX_SDP_HEAD("192.0.2.12")                                                                      \
    "m=audio 20000 RTP/AVP 0 101\r\n"                                                              \
    "a=rtpmap:0 PCMU/8000\r\n"                                                                     \
    "a=rtpmap:101 telephone-event/8000\r\n"                                                        \
    "a=sendrecv\r\n"

/* The line numbers of the mediation fixture (fx_init_mediation): alice
 * and bob own one each, carol none. */
#define FX_NUMBER_ALICE "+14255550101"
#define FX_NUMBER_BOB   "+14255550102"

/* A message the proxy sent. */
struct fx_sent {
    uint64_t conn;
    char *data; /* taken from the proxy's strbuf; NUL-terminated */
    size_t len;
};

/* A call record the proxy handed back, its strings copied. */
struct fx_record {
    char call_id[128];
    char caller[128];
    char callee[128];
    char reason[400];
    char media[400]; /* "" for none */
    char legs[1024]; /* anchored media's figures (JSON); "" for none */
    int64_t started, answered, ended;
};

struct fx {
    struct clock_fake clock;
    struct timer_heap *timers;
    struct registrar *registrar;
    struct auth *auth;
    struct proxy *proxy;
    struct netaddr listener;
    struct conn_info conns[FX_MAX_CONNS + 1]; /* by id; 0 is no connection */
    bool open[FX_MAX_CONNS + 1];
    uint64_t nconns;
    struct fx_sent sent[FX_MAX_SENT];
    size_t nsent;
    size_t dropped;  /* sends the capture could not keep (full, or a failed strbuf) */
    size_t connects; /* connections the proxy asked for (env.connect, env.connect_tcp) */
    /* the mediation fixture (fx_init_mediation) */
    bool trunk_listener[FX_MAX_CONNS + 1]; /* accepted on sip.trunk_tcp_listen */
    enum dialplan_outbound outbound;       /* every user's right to call out */
    size_t disconnects;                    /* connections the proxy closed (env.disconnect) */
    struct fx_record records[FX_MAX_RECORDS];
    size_t nrecords;
    unsigned seq;         /* makes branches unique */
    char last_branch[64]; /* the Via branch of the last request fx_request built */
};

/* Builds clock, heap, registrar, auth and proxy (media level "required",
 * the two suites above). 0, or -ENOMEM with nothing left allocated. */
int fx_init(struct fx *f);
/* The same with media.anchor = always through the engine `anchor` (the
 * caller's: started before and stopped after the fixture). */
struct config;
/* The media engine's keys for a test engine on 127.0.0.1 with that port
 * range and stream bound (total and per user), the rest at their
 * defaults. */
void fx_engine_config(struct config *cfg, char *port_range, long long max_streams);

int fx_init_anchored(struct fx *f, struct anchor *anchor);
/* The anchored fixture with what mediation needs from the environment:
 * line numbers (FX_NUMBER_ALICE, FX_NUMBER_BOB: env.number_owner and
 * env.user_number), outbound rights (f->outbound, "all" at first),
 * TCP connections to gateways (env.connect_tcp reserves the next id like
 * env.connect: the test opens it with fx_open_reserved or fails it with
 * fx_fail_reserved), which connections came in on the trunk listener
 * (f->trunk_listener) and env.disconnect (counted; the connection is
 * then gone for env.conn_info, the proxy not told). The dial plan and the
 * trunks are the test's: proxy_set_dialplan, proxy_set_trunks. */
int fx_init_mediation(struct fx *f, struct anchor *anchor);
/* Runs what is due (the transaction reaper), then frees everything. */
void fx_cleanup(struct fx *f);

/* Runs the timers that are due now. */
void fx_run(struct fx *f);
/* Moves fake time on (a second at a time, running what falls due). */
void fx_advance(struct fx *f, uint64_t ms);

/* --- connections ----------------------------------------------------------- */

/* A new accepted TLS connection from 192.0.2.(10+id):(50000+id); 0 when
 * the table is full. */
uint64_t fx_open(struct fx *f);
/* env.connect (a partner's server) reserves the next id, not open yet:
 * env.conn_info answers NULL for it until the test opens it with
 * fx_open_reserved. */
void fx_open_reserved(struct fx *f, uint64_t conn);
/* A connection the proxy asked for fails before it opened (refused,
 * unreachable): the proxy is told it closed. */
void fx_fail_reserved(struct fx *f, uint64_t conn);
/* A new accepted connection from peer ("IP:PORT"), TLS or plain TCP, on
 * the trunk listener or not; 0 when the table is full. */
uint64_t fx_open_from(struct fx *f, const char *peer, bool tls, bool trunk_listener);
/* The connection closes: env.conn_info answers NULL for it from now on,
 * and the proxy is told. */
void fx_close(struct fx *f, uint64_t conn);
/* The Contact URI of user's device on conn: sip:user@PEER;transport=tls */
void fx_contact(const struct fx *f, uint64_t conn, const char *user, char *out, size_t cap);

/* --- what the proxy sent ---------------------------------------------------- */

size_t fx_count_on(const struct fx *f, uint64_t conn);
/* Index in f->sent of the n-th message (from 0) sent on conn, or -1. */
int fx_nth_on(const struct fx *f, uint64_t conn, size_t n);
/* Index of the last message sent on conn, or -1. */
int fx_last_on(const struct fx *f, uint64_t conn);
/* A response's status; 0 for a request (or an index out of range). */
int fx_sent_status(const struct fx *f, int i);
/* Is message i a request of this method? */
bool fx_sent_is(const struct fx *f, int i, const char *method);
/* The value of the first header `name` (exact name, any case) of message
 * i, trimmed: 0, -ENOENT or -ENOSPC. */
int fx_sent_header(const struct fx *f, int i, const char *name, char *out, size_t cap);
/* How many header lines of that name message i has. */
size_t fx_sent_header_count(const struct fx *f, int i, const char *name);
/* Message i parsed (the caller frees it), or NULL. */
struct sip_msg *fx_sent_parse(const struct fx *f, int i);
/* Forgets what was sent. */
void fx_clear(struct fx *f);

/* The tag parameter of a From or To value ("" when none). */
void fx_tag_of(const char *value, char *out, size_t cap);

/* --- user agents ---------------------------------------------------------- */

/* The password of alice, bob or carol (the users that exist); NULL for
 * anyone else. */
const char *fx_password(const char *user);

/* A request as a user agent on a connection sends it. */
struct fx_req {
    const char *method;
    const char *ruri;     /* NULL: sip:TO@example.test */
    const char *from;     /* user */
    const char *from_tag; /* NULL: "t-FROM" */
    const char *to;       /* user */
    const char *to_tag;   /* NULL: none (outside a dialog) */
    const char *call_id;
    unsigned cseq;
    const char *branch;  /* NULL: a fresh one */
    const char *route;   /* a Route value, or NULL */
    const char *contact; /* user for a Contact on this connection, or NULL */
    const char *headers; /* complete extra lines, or NULL */
    const char *sdp;     /* an application/sdp body, or NULL */
};

/* Writes the request as text (Via sent-by: the connection's peer);
 * records its branch in f->last_branch. 0 or -ENOSPC. */
int fx_build_request(struct fx *f, uint64_t conn, const struct fx_req *r, char *out, size_t cap);
/* Builds, parses and hands it to the proxy. 0, -EINVAL, -ENOSPC, -ENOMEM. */
int fx_request(struct fx *f, uint64_t conn, const struct fx_req *r);
/* Parses text and hands it to the proxy as arriving on conn. */
int fx_send_text(struct fx *f, uint64_t conn, const char *text, size_t len);

/* The user agent on conn answers message i (a request the proxy sent it):
 * Via, Record-Route, From, Call-ID, CSeq copied, To with to_tag added when
 * it has none, a Contact on conn for 101..299 (the user of To), extra
 * header lines and an SDP body when given. 0 or a negative errno. */
int fx_respond(struct fx *f, uint64_t conn, int i, int status, const char *to_tag,
               const char *headers, const char *sdp);

/* The credentials header line ("NAME: Digest ...\r\n") answering the
 * challenge value (a WWW- or Proxy-Authenticate value) for method and uri.
 * 0 or a negative errno. */
int fx_credentials(const char *hdr_name, const char *challenge, const char *user,
                   const char *password, const char *method, const char *uri, char *out,
                   size_t cap);

/* REGISTER of user's device on conn: without credentials, then with the
 * answer to the 401's challenge. Returns the status of the final answer
 * (200 when registered), or a negative errno; -EPROTO when the first
 * answer was no 401. */
int fx_register(struct fx *f, uint64_t conn, const char *user, const char *password);

/* An INVITE (or any request the proxy challenges with 407) from the user
 * agent on conn: sent as r says, the 407 acknowledged, then sent again with
 * CSeq r->cseq + 1, a fresh branch (f->last_branch) and the
 * Proxy-Authorization password gives. Returns 0 once that second request
 * was handed to the proxy, the status of the first answer when it was no
 * 407, or a negative errno. */
int fx_invite(struct fx *f, uint64_t conn, const struct fx_req *r, const char *password);

#endif
