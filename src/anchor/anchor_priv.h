/*
 * anchor internals, shared by anchor.c (threads, ports, the core's side of
 * streams, status) and anchor_path.c (the packet path). Not a public
 * interface.
 *
 * Ownership: the core thread owns struct anchor_stream (ports, Parley's
 * keys, the user's count) in a->streams; each worker thread owns its
 * struct anchor_wstream and everything hanging from it (sockets, events,
 * SRTP sessions). The two meet only through messages (core → worker) and
 * the worker's list (under its list_lock, for anchor_status). State that
 * spans threads — the port bitmap — is under a->lock, which the packet
 * path never takes.
 */
#ifndef PARLEY_ANCHOR_PRIV_H
#define PARLEY_ANCHOR_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/util.h>

#include "anchor/anchor.h"
#include "core/hmap.h"
#include "core/log_limit.h"
#include "core/mbox.h"
#include "core/netaddr.h"
#include "rtp/srtp.h"

struct event;
struct event_base;

#define ANCHOR_BATCH 32 /* datagrams per recvmmsg/sendmmsg */
/* Slots a worker reads into: what one pass forwards is queued and sent
 * together at its end (or when fewer than ANCHOR_BATCH slots are left), so
 * that the sends of a pass leave back to back. */
#define ANCHOR_SLOTS     (2 * ANCHOR_BATCH)
#define ANCHOR_SLOT_SIZE 2048 /* a datagram longer than this is dropped */
/* Room protect needs behind a packet: an SRTCP E/index word and tag. */
#define ANCHOR_TAILROOM    RTP_SRTCP_MAX_TRAILER
#define ANCHOR_MAX_PACKET  (ANCHOR_SLOT_SIZE - ANCHOR_TAILROOM)
#define ANCHOR_CALL_ID_MAX 128
#define ANCHOR_USER_MAX    128
#define ANCHOR_TICK_MS     1000
/* A party is followed to a new source only once the address it was
 * latched to has been silent this long: a copy of a genuine packet raced
 * ahead of it from elsewhere is forwarded (it is the party's media, once)
 * but does not move the leg while the party still sends. A NAT that
 * rebinds silences the old address at once. */
#define ANCHOR_REBIND_QUIET_MS 500
#define ANCHOR_WORKERS_MAX     64
/* Coalescing wake-ups. At 50 packets/s a stream, every packet arrives
 * alone on its socket and each one costs an epoll wake-up of its own;
 * under load the worker therefore waits a little between event-loop passes
 * so that one pass finds several sockets ready. It waits only while the
 * recent rate would bring at least ANCHOR_COALESCE_MIN packets in
 * ANCHOR_COALESCE_MAX_US, aims at ANCHOR_COALESCE_TARGET packets a pass,
 * and never makes a pass start more than ANCHOR_COALESCE_MAX_US after the
 * previous one started: the delay a packet gains is bounded by that, and
 * is zero when the engine is idle or the rate is low (a lone packet wakes
 * it at once). */
#define ANCHOR_COALESCE_MAX_US    1000
#define ANCHOR_COALESCE_TARGET    16
#define ANCHOR_COALESCE_MIN       4
#define ANCHOR_COALESCE_WINDOW_US 20000 /* the rate is measured over this */

/* What a reload may change, copied to each worker. */
struct anchor_params {
    unsigned timeout_s;
    /* A leg latched to an address its party's SDP and signalling did not
     * name keeps receiving only while that address is heard from within
     * this: a party cannot point the other's media at a third party that
     * never answers for longer (media.consent_timeout; RFC 7675's 30 s) */
    unsigned consent_ms;
    unsigned replay_window;
    bool latch_first; /* media.latch_plain = first */
    size_t max_streams;
    size_t max_per_user;
};

/* Counters of one leg: written by its worker only, read by status. */
struct anchor_counters {
    _Atomic uint64_t in_packets, in_bytes;   /* accepted from the leg's party */
    _Atomic uint64_t out_packets, out_bytes; /* sent to the leg's party */
    _Atomic uint64_t auth_failures;          /* from the party's address, not authentic */
    _Atomic uint64_t replays;
    _Atomic uint64_t foreign;     /* from anywhere else, not accepted */
    _Atomic uint64_t malformed;   /* not RTP/RTCP, too long, SSRC table full */
    _Atomic uint64_t undelivered; /* for a party whose address is not known yet, or send failed */
};

/* One socket of a leg. */
struct anchor_sock {
    struct anchor_wstream *st;
    int leg;
    bool rtcp; /* the RTCP port (without rtcp-mux) */
    int fd;
    struct event *ev;
};

/* One leg. What the packet path reads or writes for every packet comes
 * first, in the order it is used (two cache lines with the start of the
 * latched address: per-stream state is cold when each stream sends every
 * 20 ms); keys, SDP addresses and the sockets' own records follow. */
struct anchor_wleg {
    _Alignas(64) bool have_remote; /* its party described itself */
    bool rtcp_mux;
    bool latched_rtp_set, latched_rtcp_set; /* where it really is is known */
    bool latched_expected; /* latched_rtp is at the IP its SDP or signalling named */
    bool tx_set;           /* Parley's side of the leg is decided: nothing is sent before */
    bool on_hold;
    bool have_signal_ip;
    bool scrub_rtcp; /* its party is private: RTCP toward it scrubbed */
    enum anchor_protection rx_protection, tx_protection;
    struct rtp_srtp *rx;                  /* the party's key: unprotects what it sends */
    struct rtp_srtp *tx;                  /* Parley's key for this leg: protects what it gets */
    uint64_t heard_rtp_ms, heard_rtcp_ms; /* last packet from the latched address */
    int fd_rtp, fd_rtcp;                  /* = rtp.fd, rtcp.fd: where its packets are sent from */
    struct anchor_counters c;
    struct netaddr latched_rtp, latched_rtcp;
    /* the party: where its SDP says */
    struct netaddr sdp_rtp, sdp_rtcp;
    uint64_t described_ms;    /* when its party last described itself */
    struct netaddr signal_ip; /* where its party's signalling came from */
    enum rtp_srtp_suite rx_suite, tx_suite;
    uint8_t rx_key[RTP_SRTP_MAX_KEY], rx_salt[RTP_SRTP_MAX_SALT]; /* the party's (SECRET) */
    struct anchor_sock rtp, rtcp;
    struct netaddr local_rtp, local_rtcp;
};

/* A stream as its worker holds it. */
struct anchor_wstream {
    struct hmap_node node;
    struct anchor_worker *w;
    uint64_t last_rx_ms;                /* written for every packet */
    struct anchor_wstream *prev, *next; /* the worker's list (under list_lock) */
    uint64_t id;
    char call_id[ANCHOR_CALL_ID_MAX];
    char user[ANCHOR_USER_MAX];
    int64_t created_s; /* wall clock */
    bool timed_out;    /* told the core */
    unsigned ports[4]; /* to release: leg 0 RTP, RTCP, leg 1 RTP, RTCP */
    struct anchor_wleg leg[2];
};

/* A queued datagram (points into the worker's slots). */
struct anchor_txq {
    unsigned n;
    int fd[ANCHOR_SLOTS];
    /* the leg each datagram goes to, and its plain length: counted out
     * once the kernel took it, undelivered when it did not */
    struct anchor_counters *counters[ANCHOR_SLOTS];
    size_t plain_len[ANCHOR_SLOTS];
    struct mmsghdr msgs[ANCHOR_SLOTS];
    struct iovec iov[ANCHOR_SLOTS];
    struct netaddr to[ANCHOR_SLOTS];
};

struct anchor_worker {
    struct anchor *a;
    unsigned index;
    pthread_t thread;
    bool started;
    struct event_base *base;
    struct mbox *mbox;
    struct event *tick;
    struct rtp_srtp_crypto *crypto;
    struct anchor_params params;
    struct log_limit *logs; /* latching and refusals a stranger can cause */
    struct hmap streams;    /* by id */
    pthread_mutex_t list_lock;
    struct anchor_wstream *list;
    /* the counters of streams ended here, both legs (under list_lock):
     * with the live ones', totals that never go back (anchor_totals) */
    uint64_t ended_in_packets, ended_in_bytes, ended_out_packets, ended_out_bytes;
    uint64_t ended_auth_failures, ended_replays;
    size_t nstreams;
    /* I/O scratch */
    uint8_t *slots;     /* ANCHOR_SLOTS * ANCHOR_SLOT_SIZE */
    unsigned slot_next; /* slots before it hold datagrams read in this pass */
    struct mmsghdr rx[ANCHOR_SLOTS];
    struct iovec rx_iov[ANCHOR_SLOTS];
    struct sockaddr_storage rx_from[ANCHOR_SLOTS];
    struct anchor_txq txq;
    uint64_t now_ms;
    /* coalescing (worker_main) */
    bool stopping;
    unsigned pass_packets;              /* datagrams accepted in this pass */
    uint64_t win_start_us, win_packets; /* the current rate window */
    uint64_t rate_pps;                  /* datagrams/s over the last window */
};

/* Parley's key for one leg, kept by the core until the stream ends (the
 * same key is announced again in every SDP toward that party). */
struct anchor_local_key {
    bool set;
    enum anchor_protection protection;
    enum rtp_srtp_suite suite;
    uint8_t key[RTP_SRTP_MAX_KEY], salt[RTP_SRTP_MAX_SALT];
};

/* A stream as the core holds it. */
struct anchor_stream {
    struct hmap_node node;
    uint64_t id;
    unsigned worker;
    char user[ANCHOR_USER_MAX];
    unsigned ports[4];
    struct anchor_local_key local[2];
};

struct anchor_user_count {
    struct hmap_node node;
    size_t n;
    char user[ANCHOR_USER_MAX];
};

struct anchor {
    pthread_mutex_t lock; /* ports */
    uint8_t *ports_used;  /* bitmap over [port_first, port_last] */
    unsigned port_first, port_last, port_next;
    struct netaddr address, public_address;
    char port_range[32];
    struct anchor_params params;
    struct anchor_events events;
    struct mbox *core_mbox; /* worker → core */
    struct anchor_worker *workers;
    unsigned nworkers;
    /* the core's side */
    struct hmap streams;
    struct hmap users;
    size_t nstreams;
    uint64_t next_id;
    struct log_limit *refusals;
};

/* Messages to a worker. */
enum anchor_msg_type {
    ANCHOR_MSG_ADD,    /* a stream, its sockets bound */
    ANCHOR_MSG_REMOTE, /* a leg's party described itself */
    ANCHOR_MSG_LOCAL,  /* Parley's key for a leg */
    ANCHOR_MSG_END,
    ANCHOR_MSG_PARAMS,
    ANCHOR_MSG_STOP,
};

struct anchor_msg {
    struct mbox_msg m;
    uint64_t id;
    int leg;
    struct anchor_wstream *stream; /* ADD */
    struct anchor_remote remote;   /* REMOTE (its key cleansed once used) */
    struct anchor_local_key local; /* LOCAL (cleansed once used) */
    struct anchor_params params;   /* PARAMS */
    char reason[96];               /* END */
};

/* Messages to the core. */
enum anchor_core_msg_type {
    ANCHOR_CORE_TIMED_OUT,
};

struct anchor_core_msg {
    struct mbox_msg m;
    uint64_t id;
    char call_id[ANCHOR_CALL_ID_MAX];
};

uint64_t anchor_now_ms(void);
/* Returns the ports of an ended stream to the pool (any thread). */
void anchor_ports_release(struct anchor *a, const unsigned ports[4]);

/* anchor_path.c */
void anchor_path_on_readable(evutil_socket_t fd, short what, void *arg);
/* Sends what the pass queued (and frees the slots): at the end of each
 * event-loop pass. */
void anchor_path_flush(struct anchor_worker *w);
/* Builds the worker's receive and send headers (once, before its thread runs). */
void anchor_path_init(struct anchor_worker *w);

#endif
