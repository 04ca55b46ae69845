/*
 * The relay's packet path: datagrams from clients (ChannelData, Send
 * indications, STUN requests) and from peers, TCP/TLS framing, the
 * per-allocation bandwidth limit, and batched sends.
 *
 * Nothing here allocates. Datagrams are read with recvmmsg into the
 * worker's slots, each with RELAY_HEADROOM free bytes in front, so that a
 * peer's payload becomes a Data indication or ChannelData by writing a
 * header in place; datagrams for the same socket are sent with one
 * sendmmsg. Queued datagrams point into the slots, so the queue is flushed
 * before the slots are read into again.
 */
#include "relay/relay_priv.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <string.h>
#include <sys/socket.h>

#include "core/log.h"
#include "core/random.h"

#define RELAY_ROUNDS 4 /* recvmmsg batches per wake-up, so one socket cannot starve the rest */

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint8_t *slot(struct relay_worker *w, unsigned i)
{
    return w->slots + (size_t)i * RELAY_SLOT_SIZE + RELAY_HEADROOM;
}

bool relay_bucket_take(struct relay_bucket *b, uint64_t rate, uint64_t now_ms, size_t n)
{
    if (!rate)
        return true;
    /* In millibytes: bytes/s times ms. Up to one second of traffic may
     * burst (at least a few full packets, or nothing would ever pass). */
    uint64_t cap = (rate > 4096 ? rate : 4096) * 1000;
    if (now_ms > b->last_ms) {
        uint64_t elapsed = now_ms - b->last_ms;
        if (elapsed > 10000)
            elapsed = 10000;
        b->tokens += elapsed * rate;
        b->last_ms = now_ms;
    }
    if (b->tokens > cap)
        b->tokens = cap;
    uint64_t need = (uint64_t)n * 1000;
    if (b->tokens < need)
        return false;
    b->tokens -= need;
    return true;
}

/* --- sending ------------------------------------------------------------------------ */

void relay_txq_flush(struct relay_worker *w)
{
    struct relay_txq *q = &w->txq;
    unsigned done = 0;

    while (done < q->n) {
        int k = sendmmsg(q->fd, q->msgs + done, q->n - done, MSG_DONTWAIT);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            /* EAGAIN (socket buffer full) and ICMP errors reported here
             * (ECONNREFUSED from an earlier datagram): skip one and go on,
             * as a router would drop it. */
            done++;
            continue;
        }
        done += (unsigned)k;
    }
    q->n = 0;
}

static void txq_add(struct relay_worker *w, int fd, const struct netaddr *to, const void *p,
                    size_t len)
{
    struct relay_txq *q = &w->txq;
    if (q->n && (q->fd != fd || q->n == RELAY_BATCH))
        relay_txq_flush(w);
    unsigned i = q->n++;
    q->fd = fd;
    q->to[i] = *to;
    q->iov[i].iov_base = (void *)p;
    q->iov[i].iov_len = len;
    memset(&q->msgs[i], 0, sizeof(q->msgs[i]));
    q->msgs[i].msg_hdr.msg_name = &q->to[i].u.sa;
    q->msgs[i].msg_hdr.msg_namelen = q->to[i].len;
    q->msgs[i].msg_hdr.msg_iov = &q->iov[i];
    q->msgs[i].msg_hdr.msg_iovlen = 1;
}

/* Queues bytes for a TCP/TLS client; false when its queue is full (the
 * client does not read) and the bytes were dropped. */
_Static_assert(RELAY_CONN_OUT_MAX < CONN_OUTPUT_LIMIT_DEFAULT,
               "relayed packets are dropped before the connection is cut");

static bool stream_write(struct relay_conn *c, const void *p, size_t len)
{
    if (c->dead || conn_output_pending(c->conn) + len > RELAY_CONN_OUT_MAX)
        return false;
    return conn_write(c->conn, p, len) == 0;
}

void relay_send_to_client(struct relay_worker *w, struct relay_udp *udp, struct relay_conn *conn,
                          const struct netaddr *to, const uint8_t *buf, size_t len)
{
    (void)w;
    if (conn) {
        stream_write(conn, buf, len);
        return;
    }
    while (sendto(udp->fd, buf, len, MSG_DONTWAIT, &to->u.sa, to->len) < 0 && errno == EINTR)
        ;
}

/* --- client to peer ----------------------------------------------------------------- */

void relay_forward_to_peer(struct relay_worker *w, struct relay_alloc *a,
                           const struct netaddr *peer, const uint8_t *data, size_t len)
{
    struct relay_perm *p = relay_perm_find(w, a, peer);
    if (!p || p->expires_ms <= w->now_ms)
        return;
    if (!relay_bucket_take(&a->up, w->params.bw_bytes_s, w->now_ms, len)) {
        relay_count(&a->c.dropped_packets, 1);
        return;
    }
    relay_count(&a->c.to_peer_bytes, len);
    relay_count(&a->c.to_peer_packets, 1);
    txq_add(w, a->fd, peer, data, len);
}

static void channel_data(struct relay_worker *w, struct relay_udp *udp, struct relay_conn *conn,
                         const struct netaddr *from, const uint8_t *p, size_t len)
{
    uint16_t number = get16(p);
    size_t dlen = get16(p + 2);

    if (TURN_CHANNEL_HEADER_LEN + dlen > len)
        return;
    struct relay_alloc *a = conn ? conn->alloc : relay_alloc_find_udp(w, udp, from);
    if (!a)
        return;
    struct relay_chan *ch = relay_chan_by_number(a, number);
    if (!ch || ch->expires_ms <= w->now_ms)
        return;
    relay_forward_to_peer(w, a, &ch->peer, p + TURN_CHANNEL_HEADER_LEN, dlen);
}

static void from_client(struct relay_worker *w, struct relay_udp *udp, struct relay_conn *conn,
                        const struct netaddr *from, const uint8_t *p, size_t len)
{
    if (stun_is_channel_data(p, len))
        channel_data(w, udp, conn, from, p, len);
    else if (len >= STUN_HEADER_LEN && (p[0] & 0xC0) == 0)
        relay_handle_stun(w, udp, conn, from, p, len);
}

static void rx_prepare(struct relay_worker *w)
{
    for (unsigned i = 0; i < RELAY_BATCH; i++) {
        w->rx_iov[i].iov_base = slot(w, i);
        w->rx_iov[i].iov_len = RELAY_SLOT_SIZE - RELAY_HEADROOM - 8;
        memset(&w->rx[i].msg_hdr, 0, sizeof(w->rx[i].msg_hdr));
        w->rx[i].msg_hdr.msg_name = &w->rx_from[i];
        w->rx[i].msg_hdr.msg_namelen = sizeof(w->rx_from[i]);
        w->rx[i].msg_hdr.msg_iov = &w->rx_iov[i];
        w->rx[i].msg_hdr.msg_iovlen = 1;
    }
}

void relay_on_udp(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct relay_udp *u = arg;
    struct relay_worker *w = u->w;
    struct netaddr from;

    w->now_ms = relay_now_ms();
    for (int round = 0; round < RELAY_ROUNDS; round++) {
        rx_prepare(w);
        int n = recvmmsg(fd, w->rx, RELAY_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            break;
        for (int i = 0; i < n; i++) {
            struct msghdr *h = &w->rx[i].msg_hdr;
            if ((h->msg_flags & MSG_TRUNC) ||
                netaddr_from_sockaddr(h->msg_name, h->msg_namelen, &from) != 0)
                continue;
            from_client(w, u, NULL, &from, slot(w, (unsigned)i), w->rx[i].msg_len);
        }
        relay_txq_flush(w);
        if (n < RELAY_BATCH)
            break;
    }
}

/* --- peer to client ---------------------------------------------------------------- */

/* Turns the payload at p (len bytes, headroom in front, room for padding
 * behind) into what goes to the client; returns its start and *out_len. */
static uint8_t *wrap_for_client(struct relay_worker *w, struct relay_alloc *a,
                                const struct netaddr *peer, uint8_t *p, size_t len, size_t *out_len)
{
    size_t pad = (4 - (len & 3)) & 3;
    struct relay_chan *ch = relay_chan_by_peer(w, a, peer);

    if (ch && ch->expires_ms > w->now_ms) {
        uint8_t *h = p - TURN_CHANNEL_HEADER_LEN;
        put16(h, ch->number);
        put16(h + 2, (uint16_t)len);
        /* Over streams ChannelData is padded to 4 (RFC 8656 §12.5);
         * over UDP the padding is not sent. */
        if (a->conn && pad)
            memset(p + len, 0, pad);
        *out_len = TURN_CHANNEL_HEADER_LEN + len + (a->conn ? pad : 0);
        return h;
    }
    /* A Data indication: header, XOR-PEER-ADDRESS, DATA. */
    size_t hl = STUN_HEADER_LEN + 4 + (netaddr_family(peer) == AF_INET ? 8 : 20) + 4;
    uint8_t *h = p - hl;
    uint8_t tid[STUN_TID_LEN];
    uint64_t r1 = random_u64(), r2 = random_u64();
    memcpy(tid, &r1, 8);
    memcpy(tid + 8, &r2, 4);
    struct stun_builder b;
    stun_build_start(&b, h, hl - 4, TURN_METHOD_DATA, STUN_CLASS_INDICATION, tid);
    stun_build_xor_addr(&b, TURN_ATTR_XOR_PEER_ADDRESS, peer);
    put16(h + hl - 4, TURN_ATTR_DATA);
    put16(h + hl - 2, (uint16_t)len);
    memset(p + len, 0, pad);
    put16(h + 2, (uint16_t)(hl - STUN_HEADER_LEN + len + pad));
    *out_len = hl + len + pad;
    return h;
}

void relay_on_peer(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct relay_alloc *a = arg;
    struct relay_worker *w = a->w;
    struct netaddr from;

    w->now_ms = relay_now_ms();
    for (int round = 0; round < RELAY_ROUNDS; round++) {
        rx_prepare(w);
        int n = recvmmsg(fd, w->rx, RELAY_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            break;
        for (int i = 0; i < n; i++) {
            struct msghdr *h = &w->rx[i].msg_hdr;
            size_t len = w->rx[i].msg_len, out_len = 0;
            /* A datagram too large for one TURN message cannot be relayed. */
            if ((h->msg_flags & MSG_TRUNC) || len > 65535 - 64 ||
                netaddr_from_sockaddr(h->msg_name, h->msg_namelen, &from) != 0)
                continue;
            struct relay_perm *p = relay_perm_find(w, a, &from);
            if (!p || p->expires_ms <= w->now_ms)
                continue; /* no permission: silently dropped (RFC 8656 §10.3) */
            if (!relay_bucket_take(&a->down, w->params.bw_bytes_s, w->now_ms, len)) {
                relay_count(&a->c.dropped_packets, 1);
                continue;
            }
            uint8_t *out = wrap_for_client(w, a, &from, slot(w, (unsigned)i), len, &out_len);
            if (a->conn) {
                if (!stream_write(a->conn, out, out_len)) {
                    relay_count(&a->c.dropped_packets, 1);
                    continue;
                }
            } else {
                txq_add(w, a->udp->fd, &a->client, out, out_len);
            }
            relay_count(&a->c.from_peer_bytes, len);
            relay_count(&a->c.from_peer_packets, 1);
        }
        relay_txq_flush(w);
        if (n < RELAY_BATCH)
            break;
    }
}

/* --- TCP and TLS framing ------------------------------------------------------------- */

void relay_conn_on_read(struct relay_conn *c, struct evbuffer *in)
{
    struct relay_worker *w = c->w;
    uint8_t head[4];
    bool framed = false;

    w->now_ms = relay_now_ms();
    while (!c->dead) {
        size_t avail = evbuffer_get_length(in);
        if (avail < sizeof(head))
            break;
        evbuffer_copyout(in, head, sizeof(head));
        long flen = stun_frame_length(head, sizeof(head));
        if (flen < 0) {
            char p[NETADDR_STRLEN];
            uint64_t suppressed = 0;
            const char *why = "neither STUN nor ChannelData";
            if (relay_log_allowed(w, &c->peer, "relay.stream_refused", why, &suppressed))
                log_info("relay.stream_refused", "client", netaddr_format(&c->peer, p), "reason",
                         why, "suppressed", LOG_INT(suppressed));
            relay_conn_close(c, "not STUN or ChannelData");
            break;
        }
        if ((size_t)flen > avail)
            break;
        uint8_t *p = slot(w, 0);
        evbuffer_remove(in, p, (size_t)flen);
        framed = true;
        from_client(w, NULL, c, &c->peer, p, (size_t)flen);
        relay_txq_flush(w); /* the next frame reuses the slot */
    }
    if (framed && !c->framed && !c->dead) {
        c->framed = true;
        relay_conn_idle(c);
    }
}
