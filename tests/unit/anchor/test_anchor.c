/*
 * The media engine with real UDP sockets on loopback: two pretend clients
 * (A on leg 0, B on leg 1) protect and unprotect with keys of their own,
 * and the engine between them must re-protect every packet with the key
 * it generated for the receiving leg, follow a party only where its
 * packets authenticate, and drop everything else.
 *
 * The clients use rtp/srtp (interoperability with libsrtp2 is proven in
 * tests/unit/rtp). Delivery is asynchronous (the engine's own thread), so
 * each check sends until the packet arrives or a second passes: a real
 * client sends 50 packets a second too.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "anchor/anchor.h"
#include "core/config.h"
#include "core/netaddr.h"
#include "rtp/packet.h"
#include "rtp/srtp.h"

struct client {
    int fd;
    struct netaddr addr;
    enum anchor_protection prot;
    enum rtp_srtp_suite suite;
    uint8_t key[RTP_SRTP_MAX_KEY], salt[RTP_SRTP_MAX_SALT]; /* what it protects with */
    struct rtp_srtp *tx;                                    /* its own key */
    struct rtp_srtp *rx;                                    /* Parley's key for its leg */
    uint16_t seq;
};

struct fx {
    struct config cfg;
    struct event_base *base;
    struct anchor *a;
    struct rtp_srtp_crypto *crypto;
    uint64_t timed_out; /* the stream the engine said timed out */
};

static void on_timed_out(void *arg, uint64_t stream, const char *call_id)
{
    (void)call_id;
    struct fx *f = arg;
    f->timed_out = stream;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->cfg.media.anchor = "always";
    f->cfg.media.workers = 1;
    f->cfg.media.port_range = "31000-31063";
    f->cfg.media.address = "127.0.0.1";
    f->cfg.media.public_address = "";
    f->cfg.media.timeout = 5;
    f->cfg.media.consent_timeout = 5;
    f->cfg.media.replay_window = 128;
    f->cfg.media.latch_plain = "sdp";
    f->cfg.media.max_streams = 4;
    f->cfg.media.max_streams_per_user = 3;
    f->cfg.relay.enabled = false;
    f->base = event_base_new();
    assert_non_null(f->base);
    struct anchor_events ev = {.arg = f, .timed_out = on_timed_out};
    char err[200];
    int rc = anchor_start(&f->cfg, f->base, &ev, &f->a, err, sizeof(err));
    if (rc != 0)
        fail_msg("anchor_start: %s", err);
    assert_int_equal(rtp_srtp_crypto_new(NULL, NULL, &f->crypto), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    anchor_stop(f->a);
    rtp_srtp_crypto_free(f->crypto);
    event_base_free(f->base);
    free(f);
    return 0;
}

static void client_open(struct fx *f, struct client *c, enum anchor_protection prot,
                        enum rtp_srtp_suite suite)
{
    memset(c, 0, sizeof(*c));
    c->fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(c->fd >= 0);
    assert_int_equal(netaddr_parse_ip("127.0.0.1", 0, &c->addr), 0);
    assert_int_equal(bind(c->fd, &c->addr.u.sa, c->addr.len), 0);
    socklen_t len = sizeof(c->addr.u);
    assert_int_equal(getsockname(c->fd, &c->addr.u.sa, &len), 0);
    c->addr.len = len;
    c->prot = prot;
    c->suite = suite;
    c->seq = 1000;
    if (prot == ANCHOR_SRTP) {
        assert_int_equal(rtp_srtp_generate_master(NULL, suite, c->key, c->salt), 0);
        assert_int_equal(rtp_srtp_new(f->crypto, suite, c->key, c->salt, 0, &c->tx), 0);
    }
}

static void client_close(struct client *c)
{
    close(c->fd);
    rtp_srtp_free(c->tx);
    rtp_srtp_free(c->rx);
}

/* What the client's SDP says (its socket for RTP, with rtcp-mux). */
static struct anchor_remote client_remote(const struct client *c)
{
    struct anchor_remote r = {.rtp = c->addr, .rtcp = c->addr, .rtcp_mux = true};
    r.protection = c->prot;
    r.suite = c->suite;
    memcpy(r.key, c->key, sizeof(r.key));
    memcpy(r.salt, c->salt, sizeof(r.salt));
    return r;
}

/* The client learns Parley's key for its leg from the SDP Parley sent. */
static void client_learn(struct fx *f, struct client *c, const struct anchor_local *l)
{
    if (l->protection != ANCHOR_SRTP)
        return;
    uint8_t key[RTP_SRTP_MAX_KEY], salt[RTP_SRTP_MAX_SALT];
    assert_int_equal(rtp_srtp_inline_decode(strview_cstr(l->inline_key), l->suite, key, salt), 0);
    /* a key of Parley's own: never the other party's */
    assert_true(memcmp(key, c->key, rtp_srtp_suite_key_len(l->suite)) != 0);
    rtp_srtp_free(c->rx);
    assert_int_equal(rtp_srtp_new(f->crypto, l->suite, key, salt, 0, &c->rx), 0);
}

/* An RTP packet of the client's (PCMU, 160 bytes of payload `fill`). */
static size_t client_packet(struct client *c, uint8_t *buf, size_t cap, uint8_t fill)
{
    buf[0] = 0x80;
    buf[1] = 0;
    buf[2] = (uint8_t)(c->seq >> 8);
    buf[3] = (uint8_t)c->seq;
    uint32_t ts = (uint32_t)c->seq * 160;
    buf[4] = (uint8_t)(ts >> 24);
    buf[5] = (uint8_t)(ts >> 16);
    buf[6] = (uint8_t)(ts >> 8);
    buf[7] = (uint8_t)ts;
    buf[8] = 0x11;
    buf[9] = 0x22;
    buf[10] = 0x33;
    buf[11] = (uint8_t)(c == NULL ? 0 : 0x44);
    memset(buf + 12, fill, 160);
    c->seq++;
    size_t len = 172;
    if (c->prot == ANCHOR_SRTP)
        assert_int_equal(rtp_srtp_protect(c->tx, buf, 172, cap, &len), 0);
    return len;
}

/* Waits up to ms for a datagram on c; returns its length (0: none), and
 * the sender. */
static size_t client_recv(struct fx *f, struct client *c, uint8_t *buf, size_t cap, int ms,
                          struct netaddr *from)
{
    uint64_t end = now_ms() + (uint64_t)ms;
    for (;;) {
        event_base_loop(f->base, EVLOOP_NONBLOCK);
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        if (poll(&p, 1, 10) == 1) {
            struct netaddr a;
            socklen_t len = sizeof(a.u);
            ssize_t n = recvfrom(c->fd, buf, cap, 0, &a.u.sa, &len);
            assert_true(n > 0);
            a.len = len;
            if (from)
                *from = a;
            return (size_t)n;
        }
        if (now_ms() > end)
            return 0;
    }
}

/* sender sends (from its socket) to `to` until receiver gets a packet
 * carrying `fill`, unprotected with Parley's key for its leg. Returns
 * whether it arrived within a second. */
static bool deliver(struct fx *f, struct client *sender, int sender_fd, const struct netaddr *to,
                    struct client *receiver, uint8_t fill)
{
    uint64_t end = now_ms() + 1000;
    while (now_ms() < end) {
        uint8_t buf[256], got[256];
        size_t n = client_packet(sender, buf, sizeof(buf), fill);
        assert_int_equal(sendto(sender_fd, buf, n, 0, &to->u.sa, to->len), (ssize_t)n);
        size_t m = client_recv(f, receiver, got, sizeof(got), 20, NULL);
        while (m) {
            size_t plain = m;
            if (receiver->prot == ANCHOR_SRTP) {
                if (rtp_srtp_unprotect(receiver->rx, got, m, &plain) != 0)
                    fail_msg("a packet the receiver cannot unprotect with Parley's key");
            }
            assert_int_equal(plain, 172);
            if (got[12] == fill)
                return true;
            m = client_recv(f, receiver, got, sizeof(got), 0, NULL);
        }
    }
    return false;
}

struct call {
    uint64_t id;
    struct anchor_local local[2];
};

/* Empties c's socket. */
static void client_drain(struct fx *f, struct client *c)
{
    uint8_t buf[256];
    while (client_recv(f, c, buf, sizeof(buf), 50, NULL) != 0)
        ;
}

static long long leg_count(struct fx *f, uint64_t id, int leg, const char *what);
static long long leg_in_packets(struct fx *f, uint64_t id, int leg);

/* c sends one packet to Parley's port for its leg, so that the engine
 * latches to it: the engine sends a party nothing before its packets have
 * shown where it is. Waits until the engine has taken it. */
static void client_hello(struct fx *f, struct client *c, const struct call *k, int leg)
{
    long long before = leg_in_packets(f, k->id, leg);
    uint8_t buf[256];
    size_t n = client_packet(c, buf, sizeof(buf), 0);
    const struct netaddr *to = &k->local[leg].rtp;
    assert_int_equal(sendto(c->fd, buf, n, 0, &to->u.sa, to->len), (ssize_t)n);
    uint64_t end = now_ms() + 1000;
    while (leg_in_packets(f, k->id, leg) == before && now_ms() < end) {
        event_base_loop(f->base, EVLOOP_NONBLOCK);
        usleep(2000);
    }
    assert_true(leg_in_packets(f, k->id, leg) > before);
}

/* A stream with A on leg 0 and B on leg 1, each told Parley's key. */
/* A stream between a and b, both described and heard from; b_private:
 * b's party is private (a gateway's leg). */
static void call_setup_as(struct fx *f, struct call *k, struct client *a, struct client *b,
                          bool b_private)
{
    assert_int_equal(anchor_stream_new(f->a, "call-1@test", "alice", &k->id), 0);
    assert_int_equal(anchor_leg_local(f->a, k->id, 0, a->prot, a->suite, &k->local[0]), 0);
    assert_int_equal(anchor_leg_local(f->a, k->id, 1, b->prot, b->suite, &k->local[1]), 0);
    struct anchor_remote ra = client_remote(a), rb = client_remote(b);
    rb.private_party = b_private;
    assert_int_equal(anchor_leg_remote(f->a, k->id, 0, &ra), 0);
    assert_int_equal(anchor_leg_remote(f->a, k->id, 1, &rb), 0);
    client_learn(f, a, &k->local[0]);
    client_learn(f, b, &k->local[1]);
    client_hello(f, a, k, 0);
    client_hello(f, b, k, 1);
    client_drain(f, a);
    client_drain(f, b);
}

static void call_setup(struct fx *f, struct call *k, struct client *a, struct client *b)
{
    call_setup_as(f, k, a, b, false);
}

/* A leg's status. The engine's worker takes a new stream from its
 * mailbox a moment after anchor_stream_new returns: waits up to a second
 * for it. */
static json_t *leg_status(struct fx *f, uint64_t id, int leg)
{
    uint64_t end = now_ms() + 1000;
    do {
        json_t *st = anchor_status(f->a);
        json_t *streams = json_object_get(st, "streams");
        for (size_t i = 0; i < json_array_size(streams); i++) {
            json_t *s = json_array_get(streams, i);
            if ((uint64_t)json_integer_value(json_object_get(s, "id")) == id) {
                json_t *l = json_incref(json_array_get(json_object_get(s, "legs"), (size_t)leg));
                json_decref(st);
                return l;
            }
        }
        json_decref(st);
        usleep(2000);
    } while (now_ms() < end);
    fail_msg("stream %llu not in status", (unsigned long long)id);
    return NULL;
}

static long long leg_count(struct fx *f, uint64_t id, int leg, const char *what)
{
    json_t *l = leg_status(f, id, leg);
    long long v = json_integer_value(json_object_get(l, what));
    json_decref(l);
    return v;
}

static long long leg_in_packets(struct fx *f, uint64_t id, int leg)
{
    json_t *l = leg_status(f, id, leg);
    long long v = json_integer_value(json_object_get(json_object_get(l, "in"), "packets"));
    json_decref(l);
    return v;
}

/* Both ways, each leg with its own suite: what arrives is protected with
 * Parley's key for the receiving leg, never with the sender's. */
static void test_srtp_both_ways_rekeyed(void **state)
{
    struct fx *f = *state;
    struct client a, b;
    client_open(f, &a, ANCHOR_SRTP, RTP_SRTP_AES_CM_128_HMAC_SHA1_80);
    client_open(f, &b, ANCHOR_SRTP, RTP_SRTP_AEAD_AES_128_GCM);
    struct call k;
    call_setup(f, &k, &a, &b);
    assert_true(deliver(f, &a, a.fd, &k.local[0].rtp, &b, 0xa1));
    assert_true(deliver(f, &b, b.fd, &k.local[1].rtp, &a, 0xb2));
    json_t *l0 = leg_status(f, k.id, 0);
    assert_string_equal(json_string_value(json_object_get(l0, "suite")), "AES_CM_128_HMAC_SHA1_80");
    json_decref(l0);
    json_t *l1 = leg_status(f, k.id, 1);
    assert_string_equal(json_string_value(json_object_get(l1, "suite")), "AEAD_AES_128_GCM");
    assert_true(json_integer_value(json_object_get(json_object_get(l1, "out"), "packets")) >= 1);
    json_decref(l1);
    anchor_stream_end(f->a, k.id, "test over");
    client_close(&a);
    client_close(&b);
}

/* A stranger's copy of A's packet, a packet under the wrong key, and a
 * replay from A itself are dropped and counted, and never reach B. */
static void test_forged_and_replayed_dropped(void **state)
{
    struct fx *f = *state;
    struct client a, b, m;
    client_open(f, &a, ANCHOR_SRTP, RTP_SRTP_AES_CM_128_HMAC_SHA1_80);
    client_open(f, &b, ANCHOR_SRTP, RTP_SRTP_AES_CM_128_HMAC_SHA1_80);
    client_open(f, &m, ANCHOR_SRTP, RTP_SRTP_AES_CM_128_HMAC_SHA1_80); /* its own key */
    struct call k;
    call_setup(f, &k, &a, &b);
    assert_true(deliver(f, &a, a.fd, &k.local[0].rtp, &b, 0x01));

    uint8_t pkt[256], got[256];
    /* a forged packet (the stranger's own key) from the stranger */
    size_t n = client_packet(&m, pkt, sizeof(pkt), 0x66);
    assert_int_equal(sendto(m.fd, pkt, n, 0, &k.local[0].rtp.u.sa, k.local[0].rtp.len), (ssize_t)n);
    /* one of A's genuine packets, sent again by the stranger */
    n = client_packet(&a, pkt, sizeof(pkt), 0x67);
    assert_int_equal(sendto(a.fd, pkt, n, 0, &k.local[0].rtp.u.sa, k.local[0].rtp.len), (ssize_t)n);
    assert_int_equal(client_recv(f, &b, got, sizeof(got), 500, NULL), n);
    assert_int_equal(sendto(m.fd, pkt, n, 0, &k.local[0].rtp.u.sa, k.local[0].rtp.len), (ssize_t)n);
    /* and A's own replay */
    assert_int_equal(sendto(a.fd, pkt, n, 0, &k.local[0].rtp.u.sa, k.local[0].rtp.len), (ssize_t)n);
    /* from A's address under the wrong key (an index ahead of the window,
     * so that it is the key, not the index, that fails) */
    m.seq = 30000;
    n = client_packet(&m, pkt, sizeof(pkt), 0x68);
    assert_int_equal(sendto(a.fd, pkt, n, 0, &k.local[0].rtp.u.sa, k.local[0].rtp.len), (ssize_t)n);
    assert_int_equal(client_recv(f, &b, got, sizeof(got), 300, NULL), 0);
    assert_true(leg_count(f, k.id, 0, "foreign_dropped") >= 2);
    assert_true(leg_count(f, k.id, 0, "replays") >= 1);
    assert_true(leg_count(f, k.id, 0, "auth_failures") >= 1);
    /* A still gets through */
    assert_true(deliver(f, &a, a.fd, &k.local[0].rtp, &b, 0x02));
    anchor_stream_end(f->a, k.id, "test over");
    client_close(&a);
    client_close(&b);
    client_close(&m);
}

/* A behind a NAT that rebinds: the engine follows it to its new port
 * once a packet from there authenticates, and sends B's media there. */
static void test_nat_rebinding_followed_after_authentication(void **state)
{
    struct fx *f = *state;
    struct client a, b;
    client_open(f, &a, ANCHOR_SRTP, RTP_SRTP_AES_CM_128_HMAC_SHA1_80);
    client_open(f, &b, ANCHOR_SRTP, RTP_SRTP_AES_CM_128_HMAC_SHA1_80);
    struct call k;
    call_setup(f, &k, &a, &b);
    assert_true(deliver(f, &a, a.fd, &k.local[0].rtp, &b, 0x10));
    /* A's packets now come from another port, and no longer from the old
     * one: the engine follows once that has been quiet a while
     * (ANCHOR_REBIND_QUIET_MS, 500 ms) */
    usleep(600 * 1000);
    int fd2 = socket(AF_INET, SOCK_DGRAM, 0);
    struct netaddr lo;
    assert_int_equal(netaddr_parse_ip("127.0.0.1", 0, &lo), 0);
    assert_int_equal(bind(fd2, &lo.u.sa, lo.len), 0);
    assert_true(deliver(f, &a, fd2, &k.local[0].rtp, &b, 0x11));
    /* B's media follows A there, and no longer to the old port */
    uint8_t pkt[256], got[256];
    struct client a2 = a;
    a2.fd = fd2;
    assert_true(deliver(f, &b, b.fd, &k.local[1].rtp, &a2, 0x12));
    size_t n = client_packet(&b, pkt, sizeof(pkt), 0x13);
    assert_int_equal(sendto(b.fd, pkt, n, 0, &k.local[1].rtp.u.sa, k.local[1].rtp.len), (ssize_t)n);
    assert_int_equal(client_recv(f, &a, got, sizeof(got), 300, NULL), 0);
    close(fd2);
    anchor_stream_end(f->a, k.id, "test over");
    client_close(&a);
    client_close(&b);
}

/* A plain leg (B) and an SRTP leg (A): B's plain packets are taken only
 * from B's SDP address and reach A protected with Parley's key. */
static void test_plain_leg_latches_to_sdp_address_only(void **state)
{
    struct fx *f = *state;
    struct client a, b, m;
    client_open(f, &a, ANCHOR_SRTP, RTP_SRTP_AEAD_AES_256_GCM);
    client_open(f, &b, ANCHOR_PLAIN, RTP_SRTP_AES_CM_128_HMAC_SHA1_80);
    client_open(f, &m, ANCHOR_PLAIN, RTP_SRTP_AES_CM_128_HMAC_SHA1_80);
    struct call k;
    call_setup(f, &k, &a, &b);
    assert_true(deliver(f, &b, b.fd, &k.local[1].rtp, &a, 0x20));
    assert_true(deliver(f, &a, a.fd, &k.local[0].rtp, &b, 0x21)); /* plain to B */
    uint8_t pkt[256], got[256];
    size_t n = client_packet(&m, pkt, sizeof(pkt), 0x22);
    assert_int_equal(sendto(m.fd, pkt, n, 0, &k.local[1].rtp.u.sa, k.local[1].rtp.len), (ssize_t)n);
    assert_int_equal(client_recv(f, &a, got, sizeof(got), 300, NULL), 0);
    assert_true(leg_count(f, k.id, 1, "foreign_dropped") >= 1);
    anchor_stream_end(f->a, k.id, "test over");
    client_close(&a);
    client_close(&b);
    client_close(&m);
}

/* An RR and an SDES whose CNAME is `cname`, from SSRC 0x11223344. */
static size_t rtcp_with_cname(uint8_t *buf, const char *cname)
{
    size_t n = strlen(cname), at = 0;
    const uint8_t rr[8] = {0x80, 201, 0, 1, 0x11, 0x22, 0x33, 0x44};
    memcpy(buf, rr, 8);
    at = 8;
    size_t sdes_len = 4 + 4 + 2 + n + 1;
    size_t padded = (sdes_len + 3) & ~(size_t)3;
    buf[at] = 0x81;
    buf[at + 1] = 202;
    buf[at + 2] = 0;
    buf[at + 3] = (uint8_t)(padded / 4 - 1);
    memcpy(buf + at + 4, rr + 4, 4);
    buf[at + 8] = 1;
    buf[at + 9] = (uint8_t)n;
    memcpy(buf + at + 10, cname, n);
    memset(buf + at + 10 + n, 0, padded - (10 + n));
    return at + padded;
}

/* A private party's leg (a PSTN gateway): the RTCP the other party sends
 * reaches it without the other party's CNAME; what the gateway itself
 * says reaches the user as it said it. */
static void test_rtcp_toward_a_private_party_scrubbed(void **state)
{
    struct fx *f = *state;
    struct client a, b;
    client_open(f, &a, ANCHOR_SRTP, RTP_SRTP_AES_CM_128_HMAC_SHA1_80);
    client_open(f, &b, ANCHOR_PLAIN, RTP_SRTP_AES_CM_128_HMAC_SHA1_80);
    struct call k;
    call_setup_as(f, &k, &a, &b, true);
    assert_true(deliver(f, &a, a.fd, &k.local[0].rtp, &b, 0x31));
    assert_true(deliver(f, &b, b.fd, &k.local[1].rtp, &a, 0x32));
    uint8_t pkt[256], got[256];
    /* alice's SRTCP (rtcp-mux) toward the gateway */
    size_t n = rtcp_with_cname(pkt, "sip:alice@example.test"), out = 0;
    assert_int_equal(rtp_srtcp_protect(a.tx, pkt, n, sizeof(pkt), &out), 0);
    assert_int_equal(sendto(a.fd, pkt, out, 0, &k.local[0].rtp.u.sa, k.local[0].rtp.len),
                     (ssize_t)out);
    size_t m;
    do
        m = client_recv(f, &b, got, sizeof(got), 500, NULL);
    while (m && !rtp_packet_is_rtcp(got, m));
    assert_int_equal(m, n);
    assert_int_equal(rtp_rtcp_parse(got, m, NULL), 0);
    assert_null(memmem(got, m, "alice", 5));
    assert_non_null(memmem(got, m, "xxxxxxxx", 8));
    /* the gateway's RTCP toward alice: untouched */
    n = rtcp_with_cname(pkt, "gw.example.net");
    assert_int_equal(sendto(b.fd, pkt, n, 0, &k.local[1].rtp.u.sa, k.local[1].rtp.len), (ssize_t)n);
    do
        m = client_recv(f, &a, got, sizeof(got), 500, NULL);
    while (m && !rtp_packet_is_rtcp(got, m));
    assert_true(m > 0);
    size_t plain = 0;
    assert_int_equal(rtp_srtcp_unprotect(a.rx, got, m, &plain), 0);
    assert_non_null(memmem(got, plain, "gw.example.net", 14));
    anchor_stream_end(f->a, k.id, "test over");
    client_close(&a);
    client_close(&b);
}

/* Nothing goes toward a leg before Parley's key for it is decided, even
 * when its party has described itself and sent: the order the core tells
 * the engine things in cannot leak a party's media in the clear or under
 * a key nobody holds. */
static void test_nothing_sent_before_the_legs_key(void **state)
{
    struct fx *f = *state;
    struct client a, b;
    client_open(f, &a, ANCHOR_SRTP, RTP_SRTP_AES_CM_128_HMAC_SHA1_80);
    client_open(f, &b, ANCHOR_SRTP, RTP_SRTP_AES_CM_128_HMAC_SHA1_80);
    struct call k;
    assert_int_equal(anchor_stream_new(f->a, "call-2@test", "alice", &k.id), 0);
    struct anchor_remote ra = client_remote(&a), rb = client_remote(&b);
    assert_int_equal(anchor_leg_remote(f->a, k.id, 0, &ra), 0);
    assert_int_equal(anchor_leg_local(f->a, k.id, 1, b.prot, b.suite, &k.local[1]), 0);
    assert_int_equal(anchor_leg_remote(f->a, k.id, 1, &rb), 0);
    client_learn(f, &b, &k.local[1]);
    /* leg 0's port is not known to the test yet: read it from status */
    json_t *l0 = leg_status(f, k.id, 0);
    assert_int_equal(
        netaddr_parse(json_string_value(json_object_get(l0, "local")), &k.local[0].rtp), 0);
    json_decref(l0);
    client_hello(f, &a, &k, 0);
    client_hello(f, &b, &k, 1);
    uint8_t pkt[256], got[256];
    for (int i = 0; i < 5; i++) {
        size_t n = client_packet(&b, pkt, sizeof(pkt), 0x40);
        assert_int_equal(sendto(b.fd, pkt, n, 0, &k.local[1].rtp.u.sa, k.local[1].rtp.len),
                         (ssize_t)n);
    }
    assert_int_equal(client_recv(f, &a, got, sizeof(got), 300, NULL), 0);
    assert_true(leg_count(f, k.id, 0, "undelivered") >= 5);
    /* once Parley's key for A's leg is decided, B's media reaches A under it */
    assert_int_equal(anchor_leg_local(f->a, k.id, 0, a.prot, a.suite, &k.local[0]), 0);
    client_learn(f, &a, &k.local[0]);
    assert_true(deliver(f, &b, b.fd, &k.local[1].rtp, &a, 0x41));
    anchor_stream_end(f->a, k.id, "test over");
    client_close(&a);
    client_close(&b);
}

/* A party that moves to an address its SDP did not name (127.0.0.2 here)
 * keeps the other side's media there only while it is heard from there
 * (media.consent_timeout, 5 s in this fixture): a third party that never
 * sends gets nothing after that. */
static void test_consent_at_an_unnamed_address(void **state)
{
    struct fx *f = *state;
    struct client a, b;
    client_open(f, &a, ANCHOR_SRTP, RTP_SRTP_AES_CM_128_HMAC_SHA1_80);
    client_open(f, &b, ANCHOR_SRTP, RTP_SRTP_AES_CM_128_HMAC_SHA1_80);
    struct call k;
    call_setup(f, &k, &a, &b);
    usleep(600 * 1000); /* A's address quiet: it may move */
    int fd2 = socket(AF_INET, SOCK_DGRAM, 0);
    struct netaddr other;
    assert_int_equal(netaddr_parse_ip("127.0.0.2", 0, &other), 0);
    assert_int_equal(bind(fd2, &other.u.sa, other.len), 0);
    struct client a2 = a;
    a2.fd = fd2;
    assert_true(deliver(f, &a, fd2, &k.local[0].rtp, &b, 0x50));
    assert_true(deliver(f, &b, b.fd, &k.local[1].rtp, &a2, 0x51));
    /* A goes silent there; after the consent timeout B's media stops */
    uint64_t end = now_ms() + 5600;
    while (now_ms() < end) {
        event_base_loop(f->base, EVLOOP_NONBLOCK);
        usleep(50000);
    }
    long long before = leg_count(f, k.id, 0, "undelivered");
    uint8_t pkt[256], got[256];
    size_t n = client_packet(&b, pkt, sizeof(pkt), 0x52);
    assert_int_equal(sendto(b.fd, pkt, n, 0, &k.local[1].rtp.u.sa, k.local[1].rtp.len), (ssize_t)n);
    assert_int_equal(client_recv(f, &a2, got, sizeof(got), 300, NULL), 0);
    assert_true(leg_count(f, k.id, 0, "undelivered") > before);
    /* heard again: consent again */
    assert_true(deliver(f, &a, fd2, &k.local[0].rtp, &b, 0x53));
    assert_true(deliver(f, &b, b.fd, &k.local[1].rtp, &a2, 0x54));
    close(fd2);
    anchor_stream_end(f->a, k.id, "test over");
    client_close(&a);
    client_close(&b);
}

/* Bounds: per user, then in all; ports come back when streams end. */
static void test_bounds_and_ports_released(void **state)
{
    struct fx *f = *state;
    uint64_t ids[4];
    for (int i = 0; i < 3; i++)
        assert_int_equal(anchor_stream_new(f->a, "c@test", "alice", &ids[i]), 0);
    uint64_t extra;
    assert_int_equal(anchor_stream_new(f->a, "c@test", "alice", &extra), -EAGAIN);
    assert_int_equal(anchor_stream_new(f->a, "c@test", "bob", &ids[3]), 0);
    assert_int_equal(anchor_stream_new(f->a, "c@test", "carol", &extra), -EAGAIN);
    assert_int_equal(anchor_stream_count(f->a), 4);
    for (int i = 0; i < 4; i++)
        anchor_stream_end(f->a, ids[i], "test over");
    assert_int_equal(anchor_stream_count(f->a), 0);
    /* 64 ports make 16 streams' worth of pairs: all come back, again and
     * again (the worker releases them once their sockets are closed) */
    for (int round = 0; round < 20; round++) {
        int rc = -1;
        uint64_t end = now_ms() + 1000;
        while ((rc = anchor_stream_new(f->a, "c@test", "dave", &extra)) == -EADDRINUSE &&
               now_ms() < end)
            usleep(10000);
        assert_int_equal(rc, 0);
        anchor_stream_end(f->a, extra, "test over");
    }
}

/* Silence past media.timeout is told to the core, once. */
static void test_silent_stream_times_out(void **state)
{
    struct fx *f = *state;
    struct client a, b;
    client_open(f, &a, ANCHOR_SRTP, RTP_SRTP_AES_CM_128_HMAC_SHA1_80);
    client_open(f, &b, ANCHOR_SRTP, RTP_SRTP_AES_CM_128_HMAC_SHA1_80);
    struct call k;
    call_setup(f, &k, &a, &b);
    assert_true(deliver(f, &a, a.fd, &k.local[0].rtp, &b, 0x30));
    uint64_t end = now_ms() + 9000;
    while (!f->timed_out && now_ms() < end) {
        event_base_loop(f->base, EVLOOP_NONBLOCK);
        usleep(20000);
    }
    assert_int_equal(f->timed_out, k.id);
    anchor_stream_end(f->a, k.id, "media timeout");
    client_close(&a);
    client_close(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_srtp_both_ways_rekeyed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rtcp_toward_a_private_party_scrubbed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forged_and_replayed_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nat_rebinding_followed_after_authentication, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_plain_leg_latches_to_sdp_address_only, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_nothing_sent_before_the_legs_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_consent_at_an_unnamed_address, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounds_and_ports_released, setup, teardown),
        cmocka_unit_test_setup_teardown(test_silent_stream_times_out, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
