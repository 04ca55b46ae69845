/*
 * bench/relay_load — parley-bench's TURN relay load mode (see relay_load.h).
 *
 * One thread does everything, as in srtp_stream.c, so that the
 * generator's cost is one core's and shows in its CPU figure. The set-up
 * runs every allocation's transactions side by side (a window of them in
 * flight, each retransmitted on its own timer), because a thousand
 * allocations one after the other would take minutes. The load sends
 * packet j of the run from allocation j % N as that allocation's packet
 * j / N: every allocation sends once per N / rate seconds. What is due at
 * a tick goes out per allocation in one sendmmsg; only the payload's
 * first 16 octets (sender, sequence number, send time) are written per
 * packet, into send slots whose header and filler are made once.
 */
#include "bench/relay_load.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/packet_gen.h"
#include "core/netaddr.h"
#include "core/random.h"
#include "core/strview.h"
#include "crypto/encoding.h"
#include "crypto/mac.h"
#include "stun/stun.h"

#define SEND_BATCH_MAX 256
#define SIZE_MIN       16 /* sender (4), sequence number (4), send time (8) */
#define SIZE_MAX_      4096
#define SLOT           (TURN_CHANNEL_HEADER_LEN + SIZE_MAX_)
/* The one channel every allocation binds (channels are per allocation). */
#define CHANNEL 0x4001
/* Set-up: transactions in flight at once, first retransmission timeout. */
#define SETUP_WINDOW  256
#define SETUP_RTO_NS  250000000ull
#define STALE_NONCES  5
#define PERMISSION_S  300 /* RFC 8656 §9: a permission lasts 300 s */
#define REST_EXPIRY_S 86400

enum rl_phase { PH_ALLOCATE, PH_BIND, PH_RELEASE };

static const char *const phase_names[] = {"Allocate", "ChannelBind", "Refresh (lifetime 0)"};

struct rl_opts {
    const char *server_text;
    struct netaddr server;
    const char *username, *password, *secret, *user;
    char rest_username[128], rest_password[64];
    enum stun_password_alg alg;
    bool loop; /* peer mode loop; else pairs */
    unsigned allocations;
    double rate;
    double duration_s;
    bool duration_set;
    uint64_t packets; /* per allocation; 0: as many as the rate and duration make */
    uint64_t max_packets;
    unsigned size;
    unsigned batch;
    unsigned tick_us;
    double drain_s;
    double timeout_s;
    bool json;
    bool quiet;
};

struct rl_alloc {
    int fd;      /* connected to the server */
    int peer_fd; /* loop mode: the generator's peer socket */
    struct netaddr peer_at, relayed, target;
    bool allocated;
    uint32_t lifetime;
    /* the transaction in progress */
    uint8_t tid[STUN_TID_LEN];
    bool done, inflight;
    unsigned tries, stale;
    uint64_t next_ns;
    /* the long-term credential's state */
    char realm[256];
    uint8_t nonce[256];
    size_t nonce_len;
    uint8_t pas[64];
    size_t pas_len;
    uint8_t key[STUN_KEY_MAX];
    size_t keylen;
    /* the load: what this allocation sent, and what arrived of it */
    uint64_t next_seq;
    uint64_t highest;
    bool any;
    uint8_t *seen; /* a bit per sequence number */
    uint32_t overflow;
};

struct rl {
    struct rl_opts *o;
    struct rl_alloc *a;
    size_t n;
    /* allocation i's socket tagged i << 1, its peer socket i << 1 | 1 */
    struct packet_gen_loop loop;
    uint64_t per_alloc; /* sequence numbers each allocation may use */
    uint64_t total;     /* packets of the run */
    /* counters */
    uint64_t sent, received, duplicates, reordered, stale, send_stalls, late;
    uint64_t retransmissions, released, release_failed;
    uint32_t min_lifetime;
    struct packet_gen_lat lat;
    char release_error[200];
    /* send slots: header and filler made once */
    uint8_t (*tx)[SLOT];
    struct packet_gen_rx rx;
};

/* --- options ----------------------------------------------------------------- */

bool relay_load_selected(int argc, char **argv)
{
    return packet_gen_selected(argc, argv, "relay");
}

static void relay_load_usage(FILE *f)
{
    fputs("usage: parley-bench --scenario relay --server IP:PORT\n"
          "                    (--username U --password P | --secret S --user NAME) [options]\n"
          "\n"
          "ChannelData through a TURN server's UDP listener (RFC 8656), counted at the far\n"
          "end. Set-up: per allocation a UDP socket, Allocate with the long-term credential,\n"
          "a ChannelBind toward its target; at the end Refresh with lifetime 0.\n"
          "\n"
          "  --server IP:PORT      the TURN server's UDP listener\n"
          "  --username U          a REST-style credential (parleyctl relay credentials\n"
          "  --password P          USER --json prints one)\n"
          "  --secret S            or compute it: username EXPIRY:NAME (a day from now),\n"
          "  --user NAME           password base64(HMAC-SHA1(S, username))\n"
          "  --algorithm A         MD5 (default; all coturn knows) or SHA-256\n"
          "                        (PASSWORD-ALGORITHM, RFC 8489)\n"
          "  --allocations N       allocations (default 100; even in pairs mode)\n"
          "  --peer-mode M         pairs (default): allocations in pairs, each bound to the\n"
          "                        other's relayed address, as turnutils_uclient -y: each\n"
          "                        packet crosses the relay twice;\n"
          "                        loop: each bound to a UDP socket of the generator that\n"
          "                        only counts: each packet crosses the relay once\n"
          "  --rate R              packets/s sent by all allocations together; 0 = as fast\n"
          "                        as possible (default 50 per allocation)\n"
          "  --duration S          seconds of load (default 10; with --packets: until sent);\n"
          "                        at most 270: the generator does not refresh\n"
          "  --packets N           packets per allocation, then stop\n"
          "  --max-packets N       bound on the run's packets with --rate 0 (default 20000000)\n"
          "  --size N              payload octets (default 172, G.711 20 ms with RTP; min 16)\n"
          "  --batch N             datagrams per sendmmsg at most (default 32)\n"
          "  --tick-us U           pacing tick (default 1000)\n"
          "  --drain S             receiving after the last send (default 1)\n"
          "  --timeout S           set-up: give up after S seconds without an answer (default 5)\n"
          "  --json                one JSON object on stdout\n"
          "  --quiet               no progress lines on stderr\n"
          "\n"
          "A relayed packet is one sent and received back at its target: sent = received\n"
          "+ lost. relay_traversals counts what the server forwarded (twice a relayed\n"
          "packet in pairs mode). generator_limited: the generator used 95 % of its core or\n"
          "could not keep the rate asked; the server's figure is then a floor.\n",
          f);
}

enum rl_number {
    NUM_ALLOCATIONS,
    NUM_RATE,
    NUM_DURATION,
    NUM_PACKETS,
    NUM_MAX_PACKETS,
    NUM_SIZE,
    NUM_BATCH,
    NUM_TICK_US,
    NUM_DRAIN,
    NUM_TIMEOUT,
    NUM_COUNT,
};

static const struct packet_gen_number rl_numbers[NUM_COUNT] = {
    [NUM_ALLOCATIONS] = {1, 30000, 100},
    [NUM_RATE] = {0, 1e8, -1}, /* -1: 50 per allocation */
    [NUM_DURATION] = {0.1, PERMISSION_S - 30, 10},
    [NUM_PACKETS] = {0, 4e9, 0},
    [NUM_MAX_PACKETS] = {1, 1e9, 2e7},
    [NUM_SIZE] = {SIZE_MIN, SIZE_MAX_, 172},
    [NUM_BATCH] = {1, SEND_BATCH_MAX, 32},
    [NUM_TICK_US] = {50, 1e6, 1000},
    [NUM_DRAIN] = {0, 20, 1},
    [NUM_TIMEOUT] = {0.1, 600, 5},
};

/* The REST-style credential of --secret and --user (RFC-less "TURN REST
 * API", as coturn's --use-auth-secret and Parley's relay check it). */
static int rl_rest_credential(struct rl_opts *o)
{
    unsigned char mac[MAC_MAX_SIZE];
    size_t maclen;
    long long expiry = (long long)time(NULL) + REST_EXPIRY_S;
    int n = snprintf(o->rest_username, sizeof(o->rest_username), "%lld:%s", expiry, o->user);
    if (n < 0 || (size_t)n >= sizeof(o->rest_username))
        return -ENOSPC;
    int rc = mac_hmac(MAC_HMAC_SHA1, o->secret, strlen(o->secret), o->rest_username, (size_t)n, mac,
                      &maclen);
    if (rc == 0)
        rc = base64_encode(BASE64_STD, mac, maclen, o->rest_password, sizeof(o->rest_password),
                           NULL);
    if (rc)
        return rc;
    o->username = o->rest_username;
    o->password = o->rest_password;
    return 0;
}

static int rl_parse(int argc, char **argv, struct rl_opts *o)
{
    enum {
        F_SCENARIO = 256,
        F_SERVER,
        F_USERNAME,
        F_PASSWORD,
        F_SECRET,
        F_USER,
        F_ALGORITHM,
        F_PEER_MODE,
        F_JSON,
        F_QUIET,
        F_HELP
    };
    static const struct option options[] = {
        {"allocations", required_argument, 0, NUM_ALLOCATIONS},
        {"rate", required_argument, 0, NUM_RATE},
        {"duration", required_argument, 0, NUM_DURATION},
        {"packets", required_argument, 0, NUM_PACKETS},
        {"max-packets", required_argument, 0, NUM_MAX_PACKETS},
        {"size", required_argument, 0, NUM_SIZE},
        {"batch", required_argument, 0, NUM_BATCH},
        {"tick-us", required_argument, 0, NUM_TICK_US},
        {"drain", required_argument, 0, NUM_DRAIN},
        {"timeout", required_argument, 0, NUM_TIMEOUT},
        {"scenario", required_argument, 0, F_SCENARIO},
        {"server", required_argument, 0, F_SERVER},
        {"username", required_argument, 0, F_USERNAME},
        {"password", required_argument, 0, F_PASSWORD},
        {"secret", required_argument, 0, F_SECRET},
        {"user", required_argument, 0, F_USER},
        {"algorithm", required_argument, 0, F_ALGORITHM},
        {"peer-mode", required_argument, 0, F_PEER_MODE},
        {"json", no_argument, 0, F_JSON},
        {"quiet", no_argument, 0, F_QUIET},
        {"help", no_argument, 0, F_HELP},
        {0, 0, 0, 0},
    };
    double num[NUM_COUNT];
    bool set[NUM_COUNT] = {0};
    int c, index = 0;

    memset(o, 0, sizeof(*o));
    o->alg = STUN_PASSWORD_MD5;
    packet_gen_numbers_default(rl_numbers, NUM_COUNT, num);
    while ((c = getopt_long(argc, argv, "h", options, &index)) != -1) {
        if (c >= 0 && c < NUM_COUNT) {
            if (packet_gen_number_parse(&rl_numbers[c], options[index].name, optarg, &num[c]) != 0)
                return -EINVAL;
            set[c] = true;
            continue;
        }
        switch (c) {
        case F_SCENARIO:
            if (strcmp(optarg, "relay") != 0)
                return -EINVAL;
            break;
        case F_SERVER:
            o->server_text = optarg;
            if (netaddr_parse(optarg, &o->server) != 0) {
                fprintf(stderr, "parley-bench: --server wants IP:PORT, not %s\n", optarg);
                return -EINVAL;
            }
            break;
        case F_USERNAME:
            o->username = optarg;
            break;
        case F_PASSWORD:
            o->password = optarg;
            break;
        case F_SECRET:
            o->secret = optarg;
            break;
        case F_USER:
            o->user = optarg;
            break;
        case F_ALGORITHM:
            if (strcasecmp(optarg, "MD5") == 0) {
                o->alg = STUN_PASSWORD_MD5;
            } else if (strcasecmp(optarg, "SHA-256") == 0 || strcasecmp(optarg, "SHA256") == 0) {
                o->alg = STUN_PASSWORD_SHA256;
            } else {
                fprintf(stderr, "parley-bench: --algorithm is MD5 or SHA-256\n");
                return -EINVAL;
            }
            break;
        case F_PEER_MODE:
            if (strcmp(optarg, "loop") == 0 || strcmp(optarg, "pairs") == 0) {
                o->loop = optarg[0] == 'l';
            } else {
                fprintf(stderr, "parley-bench: --peer-mode is pairs or loop\n");
                return -EINVAL;
            }
            break;
        case F_JSON:
            o->json = true;
            break;
        case F_QUIET:
            o->quiet = true;
            break;
        case F_HELP:
        case 'h':
            relay_load_usage(stdout);
            exit(0);
        default:
            return -EINVAL;
        }
    }
    if (optind < argc || !o->server_text) {
        fprintf(stderr, "parley-bench: relay needs --server and nothing but options\n");
        return -EINVAL;
    }
    bool given = o->username || o->password, computed = o->secret || o->user;
    if (given == computed || (given && !(o->username && o->password)) ||
        (computed && !(o->secret && o->user))) {
        fprintf(stderr, "parley-bench: relay needs --username and --password, or --secret and "
                        "--user\n");
        return -EINVAL;
    }
    o->allocations = (unsigned)num[NUM_ALLOCATIONS];
    if (!o->loop && o->allocations % 2) {
        fprintf(stderr, "parley-bench: pairs mode needs an even number of --allocations\n");
        return -EINVAL;
    }
    o->rate = num[NUM_RATE] >= 0 ? num[NUM_RATE] : 50.0 * o->allocations;
    o->packets = (uint64_t)num[NUM_PACKETS];
    o->duration_set = set[NUM_DURATION];
    o->duration_s = num[NUM_DURATION];
    if (o->packets && !o->duration_set) {
        /* until they are sent (a second to spare), within what a permission lasts */
        double need = o->rate > 0 ? (double)o->packets * o->allocations / o->rate + 1 : INFINITY;
        o->duration_s = need < rl_numbers[NUM_DURATION].max ? need : rl_numbers[NUM_DURATION].max;
    }
    o->max_packets = (uint64_t)num[NUM_MAX_PACKETS];
    o->size = (unsigned)num[NUM_SIZE];
    o->batch = (unsigned)num[NUM_BATCH];
    o->tick_us = (unsigned)num[NUM_TICK_US];
    o->drain_s = num[NUM_DRAIN];
    o->timeout_s = num[NUM_TIMEOUT];
    return 0;
}

/* --- sockets ------------------------------------------------------------------- */

/* A UDP socket connected to `to`, or else bound to `at` (port 0: any);
 * large buffers, the kernel's receive timestamp and drop counter on every
 * datagram; in the epoll set as tag. *local gets its address. */
static int rl_socket(struct rl *g, const struct netaddr *to, const struct netaddr *at, int bufsize,
                     uint64_t tag, struct netaddr *local)
{
    int fd = packet_gen_socket(netaddr_family(&g->o->server), bufsize);
    if (fd < 0)
        return fd;
    int rc = 0;
    if (to) {
        if (connect(fd, &to->u.sa, to->len) != 0)
            rc = -errno;
    } else if (bind(fd, &at->u.sa, at->len) != 0) {
        rc = -errno;
    }
    if (rc == 0) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0 ||
            netaddr_from_sockaddr((struct sockaddr *)&ss, len, local) != 0)
            rc = -EIO;
    }
    if (rc == 0)
        rc = packet_gen_loop_add(&g->loop, fd, tag);
    if (rc) {
        close(fd);
        return rc;
    }
    return fd;
}

static int rl_open(struct rl *g, char *err, size_t errlen)
{
    const struct rl_opts *o = g->o;
    g->n = o->allocations;
    int rc = packet_gen_loop_open(&g->loop);
    g->a = calloc(g->n, sizeof(*g->a));
    int lat_rc = packet_gen_lat_init(&g->lat);
    g->tx = calloc(SEND_BATCH_MAX, sizeof(*g->tx));
    if (rc == -ENOMEM || !g->a || lat_rc || !g->tx) {
        snprintf(err, errlen, "out of resources");
        return -ENOMEM;
    }
    for (size_t i = 0; i < g->n; i++)
        g->a[i].fd = g->a[i].peer_fd = -1;
    if (rc) {
        snprintf(err, errlen, "epoll: %s", strerror(-rc));
        return rc;
    }
    bench_raise_nofile();
    /* room for bursts at the generator, without pinning gigabytes over
     * thousands of sockets */
    long per = (64l << 20) / (long)g->n;
    int bufsize = (int)(per < (256l << 10) ? (256l << 10) : per > (32l << 20) ? (32l << 20) : per);
    for (size_t i = 0; i < g->n; i++) {
        struct rl_alloc *a = &g->a[i];
        struct netaddr local;
        int fd = rl_socket(g, &o->server, NULL, bufsize, (uint64_t)i << 1, &local);
        if (fd >= 0) {
            a->fd = fd;
            if (o->loop) {
                /* the peer on the IP the server reaches the client at */
                netaddr_set_port(&local, 0);
                fd = rl_socket(g, NULL, &local, bufsize, (uint64_t)i << 1 | 1, &a->peer_at);
                a->peer_fd = fd;
            }
        }
        if (fd < 0) {
            snprintf(err, errlen, "allocation %zu: no socket: %s", i, strerror(-fd));
            return fd;
        }
    }
    /* the send slots: the ChannelData header and a filler */
    for (unsigned s = 0; s < SEND_BATCH_MAX; s++) {
        uint8_t *p = g->tx[s];
        p[0] = CHANNEL >> 8;
        p[1] = CHANNEL & 0xff;
        p[2] = (uint8_t)(o->size >> 8);
        p[3] = (uint8_t)o->size;
        for (unsigned k = SIZE_MIN; k < o->size; k++)
            p[TURN_CHANNEL_HEADER_LEN + k] = (uint8_t)k;
    }
    return 0;
}

static void rl_close(struct rl *g)
{
    for (size_t i = 0; g->a && i < g->n; i++) {
        if (g->a[i].fd >= 0)
            close(g->a[i].fd);
        if (g->a[i].peer_fd >= 0)
            close(g->a[i].peer_fd);
        free(g->a[i].seen);
    }
    packet_gen_loop_close(&g->loop);
    free(g->a);
    packet_gen_lat_free(&g->lat);
    free(g->tx);
}

/* --- set-up: transactions ------------------------------------------------------ */

static int rl_build(const struct rl *g, struct rl_alloc *a, enum rl_phase ph, uint8_t *buf,
                    size_t cap, size_t *len)
{
    static const uint16_t methods[] = {TURN_METHOD_ALLOCATE, TURN_METHOD_CHANNEL_BIND,
                                       TURN_METHOD_REFRESH};
    const struct rl_opts *o = g->o;
    struct stun_builder b;

    stun_build_start(&b, buf, cap, methods[ph], STUN_CLASS_REQUEST, a->tid);
    if (ph == PH_ALLOCATE) {
        stun_build_u32(&b, TURN_ATTR_REQUESTED_TRANSPORT, 17u << 24); /* UDP */
    } else if (ph == PH_BIND) {
        stun_build_u32(&b, TURN_ATTR_CHANNEL_NUMBER, (uint32_t)CHANNEL << 16);
        stun_build_xor_addr(&b, TURN_ATTR_XOR_PEER_ADDRESS, &a->target);
    } else {
        stun_build_u32(&b, TURN_ATTR_LIFETIME, 0);
    }
    if (a->nonce_len) {
        stun_build_attr(&b, STUN_ATTR_USERNAME, o->username, strlen(o->username));
        stun_build_attr(&b, STUN_ATTR_REALM, a->realm, strlen(a->realm));
        stun_build_attr(&b, STUN_ATTR_NONCE, a->nonce, a->nonce_len);
        if (o->alg == STUN_PASSWORD_SHA256) {
            /* RFC 8489 §9.2.4: the offer echoed, the choice named */
            uint8_t pa[4] = {0, STUN_PASSWORD_SHA256, 0, 0};
            stun_build_attr(&b, STUN_ATTR_PASSWORD_ALGORITHMS, a->pas, a->pas_len);
            stun_build_attr(&b, STUN_ATTR_PASSWORD_ALGORITHM, pa, sizeof(pa));
        }
        stun_build_integrity(&b, STUN_INTEGRITY_SHA1, a->key, a->keylen);
    }
    stun_build_fingerprint(&b);
    return stun_build_finish(&b, len);
}

static int rl_send_request(struct rl *g, struct rl_alloc *a, enum rl_phase ph, uint64_t now,
                           char *err, size_t errlen)
{
    uint8_t buf[1024];
    size_t len;
    int rc = rl_build(g, a, ph, buf, sizeof(buf), &len);
    if (rc) {
        snprintf(err, errlen, "%s: cannot build the request: %s", phase_names[ph], strerror(-rc));
        return rc;
    }
    if (a->inflight)
        g->retransmissions++;
    a->inflight = true;
    a->next_ns = now + (SETUP_RTO_NS << (a->tries < 3 ? a->tries : 3));
    a->tries++;
    /* a full buffer or a refused port is what the retransmission is for */
    (void)send(a->fd, buf, len, MSG_DONTWAIT);
    return 0;
}

/* The challenge of a 401 or 438: the realm, nonce and offered password
 * algorithms, and the key for them. */
static int rl_take_challenge(struct rl *g, struct rl_alloc *a, const struct stun_msg *m, char *err,
                             size_t errlen)
{
    const struct stun_attr *realm = stun_msg_find(m, STUN_ATTR_REALM);
    const struct stun_attr *nonce = stun_msg_find(m, STUN_ATTR_NONCE);
    const struct stun_attr *pas = stun_msg_find(m, STUN_ATTR_PASSWORD_ALGORITHMS);
    if (!realm || !nonce || realm->len >= sizeof(a->realm) || nonce->len > sizeof(a->nonce) ||
        nonce->len == 0) {
        snprintf(err, errlen, "the server's challenge has no usable REALM and NONCE");
        return -EPROTO;
    }
    memcpy(a->realm, stun_attr_value(m, realm), realm->len);
    a->realm[realm->len] = '\0';
    memcpy(a->nonce, stun_attr_value(m, nonce), nonce->len);
    a->nonce_len = nonce->len;
    a->pas_len = 0;
    if (pas && pas->len <= sizeof(a->pas)) {
        memcpy(a->pas, stun_attr_value(m, pas), pas->len);
        a->pas_len = pas->len;
    }
    if (g->o->alg == STUN_PASSWORD_SHA256) {
        uint16_t algs[8];
        int n = pas ? stun_attr_password_algs(m, pas, algs, 8) : 0;
        bool offered = false;
        for (int i = 0; i < n; i++)
            offered |= algs[i] == STUN_PASSWORD_SHA256;
        if (!offered || !a->pas_len) {
            snprintf(err, errlen,
                     "the server does not offer PASSWORD-ALGORITHM SHA-256: use --algorithm MD5");
            return -ENOTSUP;
        }
    }
    int rc = stun_long_term_key(g->o->alg, strview_cstr(g->o->username), strview_cstr(a->realm),
                                strview_cstr(g->o->password), a->key, &a->keylen);
    if (rc)
        snprintf(err, errlen, "no long-term key: %s", strerror(-rc));
    return rc;
}

enum { R_IGNORE, R_DONE, R_AGAIN };

/* An answer on a's socket during phase ph: R_IGNORE (not ours), R_DONE,
 * R_AGAIN (a new challenge: send again now), or a negative errno with err. */
static int rl_answer(struct rl *g, struct rl_alloc *a, enum rl_phase ph, const uint8_t *p,
                     size_t len, char *err, size_t errlen)
{
    struct stun_msg m;
    if (stun_is_channel_data(p, len) || stun_msg_parse(p, len, &m) != 0 || !a->inflight ||
        memcmp(m.tid, a->tid, STUN_TID_LEN) != 0 ||
        (m.cls != STUN_CLASS_SUCCESS && m.cls != STUN_CLASS_ERROR))
        return R_IGNORE;
    if (stun_msg_find(&m, STUN_ATTR_FINGERPRINT) && stun_msg_check_fingerprint(&m) != 0)
        return R_IGNORE;
    if (m.cls == STUN_CLASS_ERROR) {
        int code = 0;
        struct strview reason = {"", 0};
        const struct stun_attr *ec = stun_msg_find(&m, STUN_ATTR_ERROR_CODE);
        if (!ec || stun_attr_error_code(&m, ec, &code, &reason) != 0)
            code = 0;
        bool had_creds = a->nonce_len != 0;
        if ((code == 401 && !had_creds) || (code == 438 && a->stale++ < STALE_NONCES)) {
            int rc = rl_take_challenge(g, a, &m, err, errlen);
            return rc ? rc : R_AGAIN;
        }
        if (ph == PH_RELEASE && code == 437) /* gone already */
            return R_DONE;
        if (code == 401)
            snprintf(err, errlen,
                     "%s: the server refused the credentials (401 %.*s): check --username and "
                     "--password (or --secret) and --algorithm",
                     phase_names[ph], (int)reason.n, reason.p);
        else
            snprintf(err, errlen, "%s refused: %d %.*s%s", phase_names[ph], code, (int)reason.n,
                     reason.p,
                     code == 486   ? " (a quota per user: Parley's relay.max_allocations_per_user)"
                     : code == 508 ? " (the server's relay ports or allocations ran out)"
                                   : "");
        return -EACCES;
    }
    if (a->nonce_len && stun_msg_check_integrity(&m, STUN_INTEGRITY_SHA1, a->key, a->keylen) != 0) {
        snprintf(err, errlen, "%s: the success response's MESSAGE-INTEGRITY does not match",
                 phase_names[ph]);
        return -EBADMSG;
    }
    if (ph == PH_ALLOCATE) {
        const struct stun_attr *relayed = stun_msg_find(&m, TURN_ATTR_XOR_RELAYED_ADDRESS);
        const struct stun_attr *lifetime = stun_msg_find(&m, TURN_ATTR_LIFETIME);
        if (!relayed || stun_attr_xor_addr(&m, relayed, &a->relayed) != 0) {
            snprintf(err, errlen, "Allocate: the success response has no XOR-RELAYED-ADDRESS");
            return -EPROTO;
        }
        if (!lifetime || stun_attr_u32(&m, lifetime, &a->lifetime) != 0)
            a->lifetime = 600; /* RFC 8656's default */
        a->allocated = true;
    }
    return R_DONE;
}

static void rl_new_tid(struct rl_alloc *a)
{
    uint64_t r1 = random_u64(), r2 = random_u64();
    memcpy(a->tid, &r1, 8);
    memcpy(a->tid + 8, &r2, 4);
}

/*
 * Runs phase ph for every allocation (every allocated one, for
 * PH_RELEASE) side by side: up to SETUP_WINDOW transactions in flight,
 * each retransmitted after 250 ms, 500 ms, 1 s, then every 2 s, until
 * every one is answered or nothing has been answered for --timeout
 * seconds. After a refusal no new transaction starts, but those in flight
 * are still answered, so that what they allocated is known and can be
 * deleted. Returns 0, or a negative errno with err (the first refusal).
 */
static int rl_phase_run(struct rl *g, enum rl_phase ph, char *err, size_t errlen)
{
    size_t left = 0, inflight = 0;
    int fatal = 0;
    char scratch[512];
    for (size_t i = 0; i < g->n; i++) {
        struct rl_alloc *a = &g->a[i];
        a->done = ph == PH_RELEASE && !a->allocated;
        a->inflight = false;
        a->tries = a->stale = 0;
        left += !a->done;
    }
    uint64_t timeout_ns = (uint64_t)(g->o->timeout_s * 1e9);
    uint64_t last_progress = packet_gen_clock_ns(CLOCK_MONOTONIC);
    int rc = 0;
    while (left && !(fatal && inflight == 0)) {
        uint64_t now = packet_gen_clock_ns(CLOCK_MONOTONIC);
        for (size_t i = 0; rc == 0 && i < g->n; i++) {
            struct rl_alloc *a = &g->a[i];
            if (a->done)
                continue;
            if (!a->inflight && inflight < SETUP_WINDOW && !fatal) {
                rl_new_tid(a);
                rc = rl_send_request(g, a, ph, now, err, errlen);
                inflight++;
            } else if (a->inflight && now >= a->next_ns) {
                rc = rl_send_request(g, a, ph, now, err, errlen);
            }
        }
        if (rc)
            return rc;
        struct epoll_event evs[64];
        int ne = epoll_wait(g->loop.epfd, evs, 64, 10);
        for (int e = 0; e < ne; e++) {
            uint64_t tag = evs[e].data.u64;
            if (tag == PACKET_GEN_TIMER_TAG || (tag & 1)) { /* the timer; a peer socket */
                uint8_t sink[PACKET_GEN_RX_BUF];
                int fd = tag == PACKET_GEN_TIMER_TAG ? g->loop.tfd : g->a[tag >> 1].peer_fd;
                while (read(fd, sink, sizeof(sink)) > 0)
                    ;
                continue;
            }
            struct rl_alloc *a = &g->a[tag >> 1];
            for (;;) {
                uint8_t buf[PACKET_GEN_RX_BUF];
                ssize_t got = recv(a->fd, buf, sizeof(buf), MSG_DONTWAIT);
                if (got < 0)
                    break;
                int r = rl_answer(g, a, ph, buf, (size_t)got, fatal ? scratch : err,
                                  fatal ? sizeof(scratch) : errlen);
                if (r < 0 && ph == PH_RELEASE) {
                    /* reported, but the figures of the run stand */
                    g->release_failed++;
                    snprintf(g->release_error, sizeof(g->release_error), "%s",
                             fatal ? scratch : err);
                    r = R_DONE;
                }
                if (r == R_IGNORE)
                    continue;
                last_progress = packet_gen_clock_ns(CLOCK_MONOTONIC);
                if (r == R_AGAIN) {
                    a->inflight = false;
                    a->tries = 0;
                    rl_new_tid(a);
                    rc = rl_send_request(g, a, ph, last_progress, err, errlen);
                    if (rc)
                        return rc;
                    continue;
                }
                if (r < 0 && !fatal)
                    fatal = r;
                if (r == R_DONE && ph == PH_RELEASE && a->allocated) {
                    a->allocated = false;
                    g->released++;
                }
                a->done = true;
                a->inflight = false;
                inflight--;
                left--;
                break;
            }
        }
        if (left && packet_gen_clock_ns(CLOCK_MONOTONIC) - last_progress > timeout_ns) {
            if (fatal)
                return fatal;
            char text[NETADDR_STRLEN];
            snprintf(err, errlen,
                     "timeout: no answer from %s to %s for %.1f s (%zu of %zu allocations "
                     "waiting)",
                     netaddr_format(&g->o->server, text), phase_names[ph], g->o->timeout_s, left,
                     g->n);
            return -ETIMEDOUT;
        }
    }
    if (ph == PH_RELEASE)
        err[0] = '\0';
    return fatal;
}

static int rl_setup(struct rl *g, char *err, size_t errlen)
{
    int rc = rl_phase_run(g, PH_ALLOCATE, err, errlen);
    if (rc)
        return rc;
    g->min_lifetime = UINT32_MAX;
    for (size_t i = 0; i < g->n; i++) {
        struct rl_alloc *a = &g->a[i];
        a->target = g->o->loop ? a->peer_at : g->a[i ^ 1].relayed;
        if (a->lifetime < g->min_lifetime)
            g->min_lifetime = a->lifetime;
    }
    /* no Refresh during the run: it must end before the allocations do */
    double run_s = g->o->duration_s + g->o->drain_s + 5;
    if (run_s > (double)g->min_lifetime) {
        snprintf(err, errlen,
                 "the run (%.0f s with the drain) would outlive the allocations (%" PRIu32
                 " s): a shorter --duration",
                 run_s, g->min_lifetime);
        return -ERANGE;
    }
    return rl_phase_run(g, PH_BIND, err, errlen);
}

/* --- the load -------------------------------------------------------------------- */

static int rl_alloc_packets(struct rl *g, char *err, size_t errlen)
{
    const struct rl_opts *o = g->o;
    double per;
    if (o->packets)
        per = (double)o->packets;
    else if (o->rate > 0)
        per = ceil(o->rate * o->duration_s / (double)g->n);
    else
        per = ceil((double)o->max_packets / (double)g->n);
    if (per > 4e9)
        per = 4e9; /* the sequence number has 32 bits */
    g->per_alloc = per < 1 ? 1 : (uint64_t)per;
    g->total = g->per_alloc * g->n;
    for (size_t i = 0; i < g->n; i++) {
        g->a[i].seen = calloc((g->per_alloc + 7) / 8, 1);
        if (!g->a[i].seen) {
            snprintf(err, errlen, "out of memory for %" PRIu64 " packets", g->total);
            return -ENOMEM;
        }
    }
    return 0;
}

/* A payload that reached a target at realtime `at`: as it is at a peer
 * socket (loop mode). */
static void rl_account(void *ctx, const uint8_t *p, size_t len, uint64_t at)
{
    struct rl *g = ctx;
    if (len != g->o->size) {
        g->stale++;
        return;
    }
    uint32_t from = packet_gen_get32(p), seq = packet_gen_get32(p + 4);
    if (from >= g->n || seq >= g->per_alloc) {
        g->stale++;
        return;
    }
    struct rl_alloc *s = &g->a[from];
    uint8_t bit = (uint8_t)(1u << (seq & 7));
    if (s->seen[seq >> 3] & bit) {
        g->duplicates++;
        return;
    }
    s->seen[seq >> 3] |= bit;
    g->received++;
    if (s->any && seq < s->highest)
        g->reordered++;
    if (!s->any || seq > s->highest)
        s->highest = seq;
    s->any = true;
    uint64_t sent_at;
    memcpy(&sent_at, p + 8, sizeof(sent_at));
    if (at >= sent_at) {
        packet_gen_lat_add(&g->lat, (at - sent_at) / 1000);
    }
}

/* What reached an allocation's socket from the server: ChannelData on
 * our channel from its target (pairs mode). */
static void rl_from_server(void *ctx, const uint8_t *p, size_t len, uint64_t at)
{
    struct rl *g = ctx;
    if (stun_is_channel_data(p, len) && (p[0] << 8 | p[1]) == CHANNEL &&
        (size_t)(p[2] << 8 | p[3]) + TURN_CHANNEL_HEADER_LEN <= len)
        rl_account(g, p + TURN_CHANNEL_HEADER_LEN, (size_t)(p[2] << 8 | p[3]), at);
    else
        g->stale++; /* a late answer to a retransmitted request, say */
}

static void rl_ready(void *ctx, uint64_t tag)
{
    struct rl *g = ctx;
    struct rl_alloc *a = &g->a[tag >> 1];
    if (tag & 1)
        packet_gen_receive(&g->rx, a->peer_fd, &a->overflow, rl_account, g);
    else
        packet_gen_receive(&g->rx, a->fd, &a->overflow, rl_from_server, g);
}

/* One wait of at most timeout_ms (0: a look): what arrived is counted, a
 * timer tick consumed. */
static void rl_wait(struct rl *g, int timeout_ms)
{
    packet_gen_wait(&g->loop, timeout_ms, rl_ready, g);
}

static void rl_pump_until(struct rl *g, uint64_t deadline_ns)
{
    packet_gen_pump_until(&g->loop, deadline_ns, rl_ready, g);
}

/* Sends allocation i's packets up to sequence number `upto` (exclusive),
 * in sendmmsg batches. Returns false when its socket's buffer was full
 * (the rest waits for the next tick). */
static bool rl_send_upto(struct rl *g, size_t i, uint64_t upto)
{
    struct rl_alloc *a = &g->a[i];
    struct mmsghdr msgs[SEND_BATCH_MAX];
    struct iovec iov[SEND_BATCH_MAX];
    size_t len = TURN_CHANNEL_HEADER_LEN + g->o->size;
    if (upto > g->per_alloc)
        upto = g->per_alloc;
    while (a->next_seq < upto) {
        uint64_t left = upto - a->next_seq;
        unsigned count = left < g->o->batch ? (unsigned)left : g->o->batch;
        uint64_t t = packet_gen_clock_ns(CLOCK_REALTIME);
        for (unsigned m = 0; m < count; m++) {
            uint8_t *p = g->tx[m] + TURN_CHANNEL_HEADER_LEN;
            packet_gen_put32(p, (uint32_t)i);
            packet_gen_put32(p + 4, (uint32_t)(a->next_seq + m));
            memcpy(p + 8, &t, sizeof(t));
            iov[m] = (struct iovec){.iov_base = g->tx[m], .iov_len = len};
            msgs[m] = (struct mmsghdr){.msg_hdr = {.msg_iov = &iov[m], .msg_iovlen = 1}};
        }
        int sent = sendmmsg(a->fd, msgs, count, MSG_DONTWAIT);
        if (sent < 0 && errno == EINTR)
            continue;
        if (sent <= 0) {
            g->send_stalls++;
            return false;
        }
        a->next_seq += (uint64_t)sent;
        g->sent += (uint64_t)sent;
        if ((unsigned)sent < count) {
            g->send_stalls++;
            return false;
        }
    }
    return true;
}

/* Allocation i's share of the run's first `due` packets (j < due, j % N == i). */
static uint64_t rl_share(const struct rl *g, uint64_t due, size_t i)
{
    return due > i ? (due - i + g->n - 1) / g->n : 0;
}

static void rl_run(struct rl *g, struct packet_gen_result *r)
{
    const struct rl_opts *o = g->o;
    struct packet_gen_meter m;
    packet_gen_meter_start(&m);
    uint64_t end = m.t0 + (uint64_t)(o->duration_s * 1e9);
    uint64_t done = 0; /* the run's packets due so far (all sent but for stalls) */
    bool behind = false;

    if (o->rate > 0)
        packet_gen_timer_start(&g->loop, o->tick_us);
    size_t cursor = 0;
    while (g->sent < g->total) {
        rl_wait(g, o->rate > 0 ? -1 : 0);
        uint64_t now = packet_gen_clock_ns(CLOCK_MONOTONIC);
        bool last = now >= end;
        if (last && o->rate <= 0)
            break;
        if (last)
            now = end; /* what was due by the end goes out, nothing after */
        if (o->rate <= 0) {
            /* one batch from the next allocation with packets left */
            for (size_t k = 0; k < g->n; k++, cursor = (cursor + 1) % g->n) {
                if (g->a[cursor].next_seq < g->per_alloc) {
                    rl_send_upto(g, cursor, g->a[cursor].next_seq + o->batch);
                    cursor = (cursor + 1) % g->n;
                    break;
                }
            }
            continue;
        }
        double elapsed = (double)(now - m.t0);
        uint64_t due = packet_gen_due(elapsed, o->rate, g->total);
        if (due <= done && !behind) {
            if (last)
                break;
            continue;
        }
        /* the allocations with packets newly due, or all after a stall */
        size_t span = behind || due - done >= g->n ? g->n : (size_t)(due - done);
        size_t first = behind ? 0 : (size_t)(done % g->n);
        behind = false;
        for (size_t k = 0; k < span; k++) {
            size_t i = (first + k) % g->n;
            if (!rl_send_upto(g, i, rl_share(g, due, i)))
                behind = true;
        }
        if (elapsed > 5e6 && g->sent + o->rate * 0.005 < (double)due)
            g->late++; /* more than 5 ms behind the schedule at this tick */
        done = due;
        if (last)
            break;
    }
    packet_gen_meter_sent(&m);
    packet_gen_timer_stop(&g->loop);
    rl_pump_until(g, m.t_sent + (uint64_t)(o->drain_s * 1e9));
    packet_gen_meter_result(&m, r);
    bool saturated = packet_gen_cpu_percent(r) >= 95.0;
    bool slow = g->sent < g->total && packet_gen_sent_slow(r, g->sent, o->rate);
    r->generator_limited = saturated || slow;
}

/* --- output ------------------------------------------------------------------------ */

static void rl_print(const struct rl *g, const struct packet_gen_result *r, double setup_s,
                     const char *error, int exit_code)
{
    const struct rl_opts *o = g->o;
    uint64_t lost = g->sent > g->received ? g->sent - g->received : 0;
    unsigned traversals = o->loop ? 1 : 2;
    uint64_t overflow = 0;
    for (size_t i = 0; g->a && i < g->n; i++)
        overflow += g->a[i].overflow;
    double pct = packet_gen_cpu_percent(r);
    double sent_ps = r->send_s > 0 ? (double)g->sent / r->send_s : 0;
    double recv_ps = r->send_s > 0 ? (double)g->received / r->send_s : 0;
    if (o->json) {
        json_t *j = json_object();
        json_object_set_new(j, "scenario", json_string("relay"));
        json_object_set_new(j, "server", json_string(o->server_text));
        json_object_set_new(j, "username", json_string(o->username));
        json_object_set_new(j, "algorithm",
                            json_string(o->alg == STUN_PASSWORD_SHA256 ? "SHA-256" : "MD5"));
        json_object_set_new(j, "peer_mode", json_string(o->loop ? "loop" : "pairs"));
        json_object_set_new(j, "allocations", json_integer(o->allocations));
        json_object_set_new(j, "payload_bytes", json_integer(o->size));
        json_object_set_new(j, "rate_offered", json_real(o->rate));
        json_object_set_new(j, "duration_s", json_real(o->duration_s));
        json_object_set_new(j, "packets_per_allocation", packet_gen_json_u64(g->per_alloc));
        packet_gen_json_counts(j, g->sent, g->received);
        json_object_set_new(j, "duplicates", packet_gen_json_u64(g->duplicates));
        json_object_set_new(j, "reordered", packet_gen_json_u64(g->reordered));
        json_object_set_new(j, "stale", packet_gen_json_u64(g->stale));
        json_object_set_new(j, "relay_traversals_per_packet", json_integer(traversals));
        json_object_set_new(j, "relay_traversals", packet_gen_json_u64(g->received * traversals));
        json_object_set_new(j, "send_s", json_real(r->send_s));
        json_object_set_new(j, "drain_s", json_real(r->drain_s));
        json_object_set_new(j, "sent_per_s", json_real(sent_ps));
        json_object_set_new(j, "received_per_s", json_real(recv_ps));
        json_object_set_new(j, "relay_traversals_per_s", json_real(recv_ps * traversals));
        json_object_set_new(j, "late_ticks", packet_gen_json_u64(g->late));
        json_object_set_new(j, "send_stalls", packet_gen_json_u64(g->send_stalls));
        json_object_set_new(j, "generator_limited", json_boolean(r->generator_limited));
        json_object_set_new(j, "generator_socket_drops", packet_gen_json_u64(overflow));
        json_object_set_new(j, "generator_cpu", packet_gen_cpu_json(r, pct >= 95.0));
        json_object_set_new(j, "latency_us", packet_gen_lat_json(&g->lat, false));
        json_t *setup = json_object();
        json_object_set_new(setup, "seconds", json_real(setup_s));
        json_object_set_new(setup, "retransmissions", packet_gen_json_u64(g->retransmissions));
        json_object_set_new(setup, "lifetime_s",
                            g->min_lifetime && g->min_lifetime != UINT32_MAX
                                ? json_integer(g->min_lifetime)
                                : json_null());
        json_object_set_new(setup, "released", packet_gen_json_u64(g->released));
        json_object_set_new(setup, "release_failed", packet_gen_json_u64(g->release_failed));
        json_object_set_new(setup, "release_error",
                            g->release_error[0] ? json_string(g->release_error) : json_null());
        json_object_set_new(j, "setup", setup);
        json_object_set_new(j, "error", error && error[0] ? json_string(error) : json_null());
        json_object_set_new(j, "exit_code", json_integer(exit_code));
        packet_gen_json_print(j);
        json_decref(j);
        return;
    }
    if (error && error[0])
        return; /* said on stderr */
    printf("parley-bench  scenario=relay  server=%s  peer-mode=%s  allocations=%u  payload=%u\n",
           o->server_text, o->loop ? "loop" : "pairs", o->allocations, o->size);
    if (o->rate > 0)
        printf("  offered           %.0f packets/s for %.1f s\n", o->rate, r->send_s);
    else
        printf("  offered           as fast as possible for %.1f s\n", r->send_s);
    printf("  sent              %" PRIu64 "  (%.0f/s)\n", g->sent, sent_ps);
    printf("  relayed           %" PRIu64 "  (%.0f/s; %u relay traversal%s each: %.0f/s)\n",
           g->received, recv_ps, traversals, traversals > 1 ? "s" : "", recv_ps * traversals);
    printf("  lost              %" PRIu64 " (%.4f %%)  duplicated %" PRIu64 "  reordered %" PRIu64
           "\n",
           lost, g->sent ? 100.0 * (double)lost / (double)g->sent : 0.0, g->duplicates,
           g->reordered);
    printf("  latency us        p50 %.0f  p90 %.0f  p99 %.0f  max %.0f\n",
           packet_gen_lat_percentile(&g->lat, 50), packet_gen_lat_percentile(&g->lat, 90),
           packet_gen_lat_percentile(&g->lat, 99), packet_gen_lat_percentile(&g->lat, 100));
    printf("  set-up            %.2f s, %" PRIu64 " retransmissions; released %" PRIu64 "%s%s\n",
           setup_s, g->retransmissions, g->released, g->release_error[0] ? ": " : "",
           g->release_error);
    printf("  generator CPU     %.1f %% of one core%s\n", pct,
           r->generator_limited ? "  ** generator-limited: the figures are a floor **" : "");
}

int relay_load_main(int argc, char **argv)
{
    struct rl_opts o;
    struct rl *g = calloc(1, sizeof(*g)); /* receive buffers: too big for the stack */
    struct packet_gen_result r = {0};
    char err[512] = "";
    double setup_s = 0;
    int rc = 1;

    if (!g) {
        fprintf(stderr, "parley-bench: out of memory\n");
        return 1;
    }
    g->loop.epfd = g->loop.tfd = -1;
    if (rl_parse(argc, argv, &o) != 0) {
        relay_load_usage(stderr);
        free(g);
        return 2;
    }
    g->o = &o;
    if (o.secret && rl_rest_credential(&o) != 0) {
        snprintf(err, sizeof(err), "cannot compute the credential from --secret");
        goto out;
    }
    if (!stun_password_alg_available(o.alg)) {
        snprintf(err, sizeof(err), "%s is not available here",
                 o.alg == STUN_PASSWORD_MD5 ? "MD5" : "SHA-256");
        goto out;
    }
    if (rl_open(g, err, sizeof(err)) != 0)
        goto out;
    uint64_t t_setup = packet_gen_clock_ns(CLOCK_MONOTONIC);
    if (!o.quiet)
        fprintf(stderr, "parley-bench: allocating %u on %s\n", o.allocations, o.server_text);
    if (rl_setup(g, err, sizeof(err)) != 0 || rl_alloc_packets(g, err, sizeof(err)) != 0) {
        /* delete what was allocated; the error stands */
        char ignored[256];
        rl_phase_run(g, PH_RELEASE, ignored, sizeof(ignored));
        goto out;
    }
    setup_s = (double)(packet_gen_clock_ns(CLOCK_MONOTONIC) - t_setup) / 1e9;
    if (!o.quiet)
        fprintf(stderr, "parley-bench: set-up done in %.2f s; %" PRIu64 " packets at %s\n", setup_s,
                g->total, o.rate > 0 ? "the rate asked" : "full speed");
    rl_run(g, &r);
    char rerr[256] = "";
    if (rl_phase_run(g, PH_RELEASE, rerr, sizeof(rerr)) != 0)
        snprintf(g->release_error, sizeof(g->release_error), "%s", rerr);
    rc = g->received >= g->sent && g->sent > 0 ? 0 : 1;
out:
    if (err[0]) {
        fprintf(stderr, "parley-bench: %s\n", err);
        rc = 1;
    }
    if (err[0] ? o.json : true)
        rl_print(g, &r, setup_s, err, rc);
    rl_close(g);
    free(g);
    return rc;
}
