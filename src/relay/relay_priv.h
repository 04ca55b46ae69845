/*
 * relay internals, shared by relay.c (threads, sockets, shared
 * state), relay_turn.c (STUN/TURN requests, allocations) and relay_data.c
 * (the packet path). Not a public interface.
 *
 * Ownership: each worker thread owns its sockets, connections and
 * allocations and everything hanging from them; nothing of a worker is
 * touched by another thread, except the allocation list (under the
 * worker's list_lock, for relay_status) and the atomic counters. State
 * that spans workers (ports, quotas, reservations, secrets, the master
 * parameters) is in struct relay under its lock, which the packet path
 * never takes.
 */
#ifndef PARLEY_RELAY_PRIV_H
#define PARLEY_RELAY_PRIV_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/util.h>
#include <jansson.h>
#include <openssl/ssl.h>

#include "core/hmap.h"
#include "core/mbox.h"
#include "net/conn.h"
#include "core/netaddr.h"
#include "relay/relay.h"
#include "relay/relay_cred.h"
#include "stun/stun.h"

struct event;
struct event_base;
struct evconnlistener;
struct bufferevent;

#define RELAY_BATCH              32 /* datagrams per recvmmsg/sendmmsg */
#define RELAY_HEADROOM           64 /* room for a Data indication's header in front of data */
#define RELAY_SLOT_SIZE          (RELAY_HEADROOM + 65536 + 64)
#define RELAY_TX_MAX             2048 /* responses we build */
#define RELAY_REALM_MAX          255
#define RELAY_DEFAULT_LIFETIME_S 600 /* RFC 8656 §2.2 */
#define RELAY_PERMISSION_S       300
#define RELAY_CHANNEL_S          600
#define RELAY_RESERVATION_S      30
#define RELAY_CHAN_BLOCKS        64 /* 0x4000-0x7FFF in blocks of 256 */
/* bytes queued to a TCP/TLS client beyond which its packets are dropped:
 * well under the connection's own cut-off (CONN_OUTPUT_LIMIT_DEFAULT), so
 * a burst from a peer costs packets, never the allocation */
#define RELAY_CONN_OUT_MAX   (256u * 1024)
#define RELAY_ALLOC_RESP_MAX 256
/* What one client may hold: past these, 508 Insufficient Capacity. */
#define RELAY_PERMS_MAX 1024  /* permissions per allocation */
#define RELAY_CHANS_MAX 1024  /* channels per allocation */
#define RELAY_CONNS_MAX 16384 /* TCP/TLS connections per worker */

enum relay_transport {
    RELAY_UDP,
    RELAY_TCP,
    RELAY_TLS,
};

/* What a reload may change; each worker has its own copy. */
struct relay_params {
    char realm[RELAY_REALM_MAX + 1];
    struct cidr *allowed; /* owned */
    size_t nallowed;
    int64_t grace_s;      /* relay.max_lifetime */
    uint32_t alloc_max_s; /* relay.allocation_lifetime */
    uint32_t per_user;
    uint32_t total;
    uint64_t bw_bytes_s; /* 0: no limit */
    uint64_t nonce_lifetime_ms;
};

struct relay_bucket {
    uint64_t tokens;
    uint64_t last_ms;
};

/* Counters each allocation keeps; written by its worker only, read by
 * relay_status: relaxed atomics, single writer. */
struct relay_counters {
    _Atomic uint64_t to_peer_bytes, to_peer_packets;
    _Atomic uint64_t from_peer_bytes, from_peer_packets;
    _Atomic uint64_t dropped_packets; /* over the bandwidth limit or a full TCP queue */
};

struct relay_alloc;

struct relay_perm {
    struct hmap_node node; /* worker->perms, by (alloc, ip) */
    struct relay_alloc *a;
    struct relay_perm *next; /* the allocation's list */
    uint8_t ip[16];          /* IPv4 as mapped IPv6 */
    uint64_t expires_ms;
};

struct relay_chan {
    struct hmap_node node; /* worker->chans, by (alloc, ip, port) */
    struct relay_alloc *a;
    struct relay_chan *next; /* the allocation's list */
    uint16_t number;
    struct netaddr peer;
    uint64_t expires_ms;
};

struct relay_udp;
struct relay_conn;

struct relay_alloc {
    struct hmap_node node;           /* worker->allocs, by 5-tuple (UDP clients) */
    struct relay_alloc *prev, *next; /* worker's list, under list_lock */
    struct relay_worker *w;
    enum relay_transport transport;
    struct relay_udp *udp;   /* UDP client: the listen socket it talks to */
    struct relay_conn *conn; /* TCP/TLS client */
    struct netaddr client;
    struct netaddr relayed;
    int fd;
    struct event *ev;
    char username[RELAY_CRED_USERNAME_MAX + 1];
    char user[RELAY_CRED_USER_MAX + 1];
    /* The key the allocation was made with, to check later requests of
     * the same username without re-deriving it. */
    uint8_t key[STUN_KEY_MAX];
    size_t keylen;
    uint16_t pwalg;
    uint8_t alloc_tid[STUN_TID_LEN];
    uint8_t alloc_resp[RELAY_ALLOC_RESP_MAX]; /* for a retransmitted Allocate */
    size_t alloc_resp_len;
    uint64_t created_ms;
    int64_t created_wall;
    _Atomic uint64_t expires_ms;
    _Atomic uint32_t nperms, nchans;
    struct relay_perm *perms;
    struct relay_chan *chans;
    struct relay_chan **chan_blocks[RELAY_CHAN_BLOCKS];
    struct relay_bucket up, down;
    struct relay_counters c;
    bool dead;
};

struct relay_udp {
    struct relay_worker *w;
    int fd;
    struct event *ev;
    struct netaddr local;
};

/* TCP/TLS connections one source address may hold on one relay worker. */
#define RELAY_CONNS_PER_SOURCE 64

/* A TCP or TLS client: TURN framed on a stream connection of the worker's
 * conn_host (net/conn.h: TLS hidden there, as for SIP). */
struct relay_conn {
    struct relay_worker *w;
    struct relay_conn *prev, *next;
    struct conn *conn; /* the stream; freed by its host, after on_close frees this */
    enum relay_transport transport;
    struct netaddr peer, local;
    struct relay_alloc *alloc;
    bool framed;          /* a whole frame arrived: the handshake timeout becomes the idle one */
    bool allocated;       /* has held an allocation */
    uint64_t accepted_ms; /* it must hold an allocation by + RELAY_TLS_TIMEOUT_S */
    bool dead;            /* closing: nothing more is read or sent */
};

struct relay_tcp_listener {
    struct relay_worker *w;
    struct evconnlistener *evl;
    bool tls;
    struct netaddr addr;
};

/* Datagrams queued for one socket, sent together with sendmmsg. */
struct relay_txq {
    int fd;
    unsigned n;
    struct mmsghdr msgs[RELAY_BATCH];
    struct iovec iov[RELAY_BATCH];
    struct netaddr to[RELAY_BATCH];
};

/* Answers over UDP to a source that holds no allocation (Binding,
 * challenges, errors) are rate-limited per source (IPv6: per /64), so a
 * forged source address cannot aim the relay at a victim. Direct-mapped:
 * a source that lands on a busy slot starts with a full bucket. */
#define RELAY_UNAUTH_SLOTS     4096
#define RELAY_UNAUTH_RATE      50    /* answers per second per source */
#define RELAY_UNAUTH_BURST     100   /* at once */
#define RELAY_UNAUTH_ALL_RATE  5000  /* sources new to their slot, per worker: forged */
#define RELAY_UNAUTH_ALL_BURST 10000 /* sources that keep evicting slots gain nothing */

struct relay_unauth_slot {
    uint8_t key[16];
    uint64_t last_ms;
    uint32_t tokens;
    bool used;
};

struct relay_worker {
    struct relay *r;
    unsigned index;
    struct log_limit *refusals; /* refusals a client can cause at will, bounded */
    pthread_t thread;
    bool started;
    struct event_base *base;
    struct mbox *mbox;
    struct event *tick;
    struct relay_params params;

    struct relay_udp *udp;
    size_t nudp;
    struct relay_tcp_listener *tcp;
    size_t ntcp;
    struct conn_host *streams; /* TCP/TLS clients' connections */
    uint64_t stream_seq;
    struct relay_conn *conns;
    size_t nconns;

    struct hmap allocs;
    struct hmap perms;
    struct hmap chans;
    pthread_mutex_t list_lock;
    struct relay_alloc *list;
    size_t nallocs;
    /* the counters of allocations ended here (under list_lock): with
     * the live ones', totals that never go back (relay_totals) */
    uint64_t ended_to_peer_bytes, ended_to_peer_packets;
    uint64_t ended_from_peer_bytes, ended_from_peer_packets, ended_dropped;

    /* I/O scratch: receive slots, their headers, the send queue, responses. */
    uint8_t *slots;
    struct mmsghdr rx[RELAY_BATCH];
    struct iovec rx_iov[RELAY_BATCH];
    struct sockaddr_storage rx_from[RELAY_BATCH];
    struct relay_txq txq;
    uint8_t tx[RELAY_TX_MAX];
    uint64_t now_ms; /* cached per callback */

    struct relay_unauth_slot *unauth; /* RELAY_UNAUTH_SLOTS */
    struct relay_unauth_slot unauth_all;
    uint64_t unauth_seed;
    uint64_t unauth_dropped; /* since the last relay.rate_limited line */
    uint64_t unauth_logged_ms;
};

struct relay_user_count {
    struct hmap_node node;
    size_t n;
    char name[RELAY_CRED_USER_MAX + 1];
};

struct relay_reservation {
    uint64_t token;
    int fd;
    uint16_t port;
    uint64_t expires_ms;
};

struct relay {
    unsigned nworkers;
    struct relay_worker *workers;
    struct netaddr relay_addr; /* port 0 */
    int family;
    uint16_t port_first, port_last;
    struct netaddr *listen; /* relay.listen then relay.tls_listen */
    size_t nlisten, nlisten_udp;
    struct netaddr *own; /* own IP addresses (ports ignored) */
    size_t nown;
    struct cidr refused[32];
    size_t nrefused;
    uint8_t nonce_key[32];
    bool restricted; /* FIPS: the MD5-derived key is refused (relay_start) */
    char secrets_path[PATH_MAX];

    pthread_mutex_t lock;
    struct relay_params params; /* the master copy */
    SSL_CTX *tls;
    struct relay_secrets secrets;
    struct relay_secrets_stamp stamp;
    uint64_t secrets_checked_ms;
    uint64_t *port_bits;
    struct hmap users;
    size_t total;
    struct relay_reservation *resv;
    size_t nresv, cap_resv;
};

/* --- relay.c ------------------------------------------------------------ */

uint64_t relay_now_ms(void);
void relay_params_free(struct relay_params *p);
int relay_params_copy(struct relay_params *dst, const struct relay_params *src);
/* A copy of the secrets, re-read first when the file changed (checked at
 * most every 100 ms when `check`). */
void relay_secrets_snapshot(struct relay *r, bool check, struct relay_secrets *out);
/* Quotas: 0, 486 (per user) or 508 (in total). */
int relay_quota_take(struct relay *r, const struct relay_params *p, const char *user);
void relay_quota_release(struct relay *r, const char *user);
/* A bound, non-blocking UDP socket on the relay address. even: an even
 * port; reserve_next: also bind port + 1 and keep it under a new token.
 * Returns the fd or a negative errno (-EAGAIN: no port free). */
int relay_port_open(struct relay *r, bool even, bool reserve_next, uint64_t *token,
                    struct netaddr *bound);
/* The socket reserved under token (-ENOENT when unknown or expired). */
int relay_port_claim(struct relay *r, uint64_t token, struct netaddr *bound);
void relay_port_close(struct relay *r, int fd, const struct netaddr *bound);
void relay_reservations_sweep(struct relay *r, uint64_t now_ms);
/* May a permission or channel be made toward peer? */
bool relay_peer_allowed(const struct relay *r, const struct relay_params *p,
                        const struct netaddr *peer);
void relay_conn_close(struct relay_conn *c, const char *reason);
/* The idle limit of a TCP/TLS client: none while it has an allocation. */
void relay_conn_idle(struct relay_conn *c);

/* --- relay_turn.c -------------------------------------------------------- */

/* A STUN message from a client (UDP: via udp; TCP/TLS: via conn). */
void relay_handle_stun(struct relay_worker *w, struct relay_udp *udp, struct relay_conn *conn,
                       const struct netaddr *from, const uint8_t *buf, size_t len);
struct relay_alloc *relay_alloc_find_udp(struct relay_worker *w, const struct relay_udp *udp,
                                         const struct netaddr *client);
void relay_alloc_end(struct relay_alloc *a, const char *reason);
struct relay_perm *relay_perm_find(struct relay_worker *w, const struct relay_alloc *a,
                                   const struct netaddr *peer);
struct relay_chan *relay_chan_by_peer(struct relay_worker *w, const struct relay_alloc *a,
                                      const struct netaddr *peer);
static inline struct relay_chan *relay_chan_by_number(const struct relay_alloc *a, uint16_t n)
{
    unsigned i = (unsigned)n - TURN_CHANNEL_MIN;
    if (n < TURN_CHANNEL_MIN || n > TURN_CHANNEL_MAX || !a->chan_blocks[i >> 8])
        return NULL;
    return a->chan_blocks[i >> 8][i & 0xFF];
}
/* Once a second: expiries. */
void relay_worker_expire(struct relay_worker *w);
void relay_alloc_status(const struct relay_alloc *a, uint64_t now_ms, int64_t now_wall,
                        json_t *arr);

/* --- relay_data.c -------------------------------------------------------- */

void relay_on_udp(evutil_socket_t fd, short what, void *arg);
void relay_on_peer(evutil_socket_t fd, short what, void *arg);
/* Bytes from a TCP/TLS client. */
void relay_conn_on_read(struct relay_conn *c, struct evbuffer *in);
/* Sends a response to a client (immediately, outside the batch). */
void relay_send_to_client(struct relay_worker *w, struct relay_udp *udp, struct relay_conn *conn,
                          const struct netaddr *to, const uint8_t *buf, size_t len);
/* A Send indication's payload toward a peer. */
void relay_forward_to_peer(struct relay_worker *w, struct relay_alloc *a,
                           const struct netaddr *peer, const uint8_t *data, size_t len);
void relay_txq_flush(struct relay_worker *w);
bool relay_bucket_take(struct relay_bucket *b, uint64_t rate, uint64_t now_ms, size_t n);

static inline void relay_count(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* May a line about what a client at src caused (event, reason) be
 * written now? At most a few a second per source and reason, through the
 * worker's refusals limiter; *suppressed: lines held back since. */
bool relay_log_allowed(struct relay_worker *w, const struct netaddr *src, const char *event,
                       const char *reason, uint64_t *suppressed);

#endif
