/*
 * The media engine's packet path: datagrams read in batches from a leg's
 * socket, checked against that leg (source, authentication, replay), and
 * protected for the other leg and sent from its port, in batches.
 *
 * Nothing here allocates or takes a lock in the steady state: datagrams
 * are read with recvmmsg into the worker's slots, unprotected and
 * protected in place (each slot keeps room behind the packet for a tag),
 * and sent with sendmmsg at the end of the event-loop pass, all of the
 * pass's datagrams back to back (a receiver woken by the first is still
 * awake for the rest: on loopback, and for the engine's CPU, the wake-up
 * of the receiving party is a large part of a send). A latch (the party's
 * address changing) takes the worker's list lock, so status never reads
 * an address half-written.
 */
#include "anchor/anchor_priv.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "core/log.h"
#include "rtp/packet.h"

static uint8_t *slot(struct anchor_worker *w, unsigned i)
{
    return w->slots + (size_t)i * ANCHOR_SLOT_SIZE;
}

static void count(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

void anchor_path_flush(struct anchor_worker *w)
{
    struct anchor_txq *q = &w->txq;
    unsigned i = 0;
    while (i < q->n) {
        /* consecutive datagrams of one socket go in one sendmmsg */
        unsigned j = i + 1;
        while (j < q->n && q->fd[j] == q->fd[i])
            j++;
        unsigned k = i;
        while (k < j) {
            int sent = sendmmsg(q->fd[i], &q->msgs[k], j - k, MSG_DONTWAIT);
            if (sent <= 0) {
                if (sent < 0 && errno == EINTR)
                    continue;
                break; /* the socket's buffer is full: the rest is lost, as UDP may be */
            }
            for (unsigned m = k; m < k + (unsigned)sent; m++) {
                count(&q->counters[m]->out_packets, 1);
                count(&q->counters[m]->out_bytes, q->plain_len[m]);
            }
            k += (unsigned)sent;
        }
        for (; k < j; k++)
            count(&q->counters[k]->undelivered, 1);
        i = j;
    }
    q->n = 0;
    w->slot_next = 0;
}

static void queue(struct anchor_worker *w, int fd, const struct netaddr *to, const uint8_t *p,
                  size_t len, struct anchor_counters *counters, size_t plain_len)
{
    struct anchor_txq *q = &w->txq;
    unsigned i = q->n++; /* never full: a queued datagram holds a slot of its own */
    q->fd[i] = fd;
    q->counters[i] = counters;
    q->plain_len[i] = plain_len;
    /* the headers point at to[i] and iov[i] already (anchor_path_init) */
    memcpy(&q->to[i].u, &to->u, to->len);
    q->iov[i].iov_base = (void *)p;
    q->iov[i].iov_len = len;
    q->msgs[i].msg_hdr.msg_namelen = to->len;
}

/* Where a leg's party is for RTP or RTCP: where its packets came from
 * (authenticated, or from its SDP address on a plain leg). Until then,
 * NULL: the engine sends nothing to an address it has only been told of,
 * so an SDP cannot aim it at a third party. (Without rtcp-mux, RTCP goes
 * where the party's RTCP came from, else beside its RTP.) */
static const struct netaddr *leg_dest(const struct anchor_worker *w, const struct anchor_wleg *l,
                                      bool rtcp)
{
    if (!l->have_remote || !l->tx_set)
        return NULL;
    uint64_t heard = l->heard_rtp_ms > l->heard_rtcp_ms ? l->heard_rtp_ms : l->heard_rtcp_ms;
    if (!l->latched_expected && w->now_ms - heard > w->params.consent_ms)
        return NULL; /* an address nobody named, silent: no consent */
    if (rtcp && !l->rtcp_mux && l->latched_rtcp_set)
        return &l->latched_rtcp;
    return l->latched_rtp_set && !(rtcp && !l->rtcp_mux) ? &l->latched_rtp : NULL;
}

/* Is `from` where the leg's party said it is: its SDP's IP, or the IP its
 * signalling came from? */
static bool leg_expected_source(const struct anchor_wleg *l, const struct netaddr *from,
                                const struct netaddr *sdp)
{
    return netaddr_same_ip(from, sdp) ||
           (l->have_signal_ip && netaddr_same_ip(from, &l->signal_ip));
}

/* The party of leg l is now at `from` (for RTP or RTCP): logged, at most
 * a few lines a second per stream. */
static void leg_latch(struct anchor_worker *w, struct anchor_wstream *st, int leg, bool rtcp,
                      const struct netaddr *from, const char *why)
{
    struct anchor_wleg *l = &st->leg[leg];
    bool *set = rtcp && !l->rtcp_mux ? &l->latched_rtcp_set : &l->latched_rtp_set;
    struct netaddr *at = rtcp && !l->rtcp_mux ? &l->latched_rtcp : &l->latched_rtp;
    bool moved = *set;
    char before[NETADDR_STRLEN] = "", now[NETADDR_STRLEN];
    if (moved)
        netaddr_format(at, before);
    pthread_mutex_lock(&w->list_lock);
    *at = *from;
    *set = true;
    if (at == &l->latched_rtp)
        l->latched_expected = leg_expected_source(l, from, &l->sdp_rtp);
    pthread_mutex_unlock(&w->list_lock);
    uint64_t suppressed = 0;
    if (log_limit_allow(w->logs, w->now_ms, st->id * 4 + (uint64_t)leg * 2 + rtcp, &suppressed))
        log_info(moved ? "media.moved" : "media.latched", "call_id", st->call_id, "leg",
                 LOG_INT(leg), "what", rtcp ? "rtcp" : "rtp", "from", before, "to",
                 netaddr_format(from, now), "reason", why, "suppressed", LOG_INT(suppressed));
}

/* One datagram read on leg `leg` of st (from its RTCP port if on_rtcp). */
static void packet(struct anchor_worker *w, struct anchor_wstream *st, int leg, bool on_rtcp,
                   const struct netaddr *from, uint8_t *p, size_t len)
{
    struct anchor_wleg *l = &st->leg[leg], *o = &st->leg[1 - leg];
    bool rtcp = on_rtcp || (l->rtcp_mux && rtp_packet_is_rtcp(p, len));
    if (!l->have_remote) {
        /* nobody is expected here yet: its party has not described itself */
        count(&l->c.foreign, 1);
        return;
    }
    bool separate = rtcp && !l->rtcp_mux;
    const struct netaddr *latched = separate ? (l->latched_rtcp_set ? &l->latched_rtcp : NULL)
                                             : (l->latched_rtp_set ? &l->latched_rtp : NULL);
    const struct netaddr *sdp = separate ? &l->sdp_rtcp : &l->sdp_rtp;
    bool known = latched ? netaddr_equal(from, latched) : false;
    uint64_t *heard = separate ? &l->heard_rtcp_ms : &l->heard_rtp_ms;

    size_t plain_len = len;
    if (l->rx_protection == ANCHOR_SRTP) {
        int rc = rtcp ? rtp_srtcp_unprotect(l->rx, p, len, &plain_len)
                      : rtp_srtp_unprotect(l->rx, p, len, &plain_len);
        if (rc != 0) {
            if (!known)
                count(&l->c.foreign, 1); /* a stranger's packet is never followed */
            else if (rc == -EALREADY)
                count(&l->c.replays, 1);
            else if (rc == -EBADMSG || rc == -EPROTO)
                count(&l->c.auth_failures, 1);
            else
                count(&l->c.malformed, 1);
            return;
        }
        /* authentic under this leg's key: its party is where it came from
         * — at once from where its SDP or its signalling said; from
         * elsewhere only once the leg has gone quiet where it was (or, not
         * yet latched, since it was described): a copy raced ahead of the
         * party's packet is delivered, but does not take the leg */
        if (!known) {
            bool expected = leg_expected_source(l, from, sdp);
            uint64_t since = latched ? *heard : l->described_ms;
            if ((expected && !(latched && leg_expected_source(l, latched, sdp))) ||
                w->now_ms - since >= ANCHOR_REBIND_QUIET_MS) {
                leg_latch(w, st, leg, rtcp, from,
                          expected ? "authenticated" : "authenticated, moved");
                known = true;
            }
        }
    } else {
        struct rtp_header h;
        uint32_t ssrc;
        if (rtcp ? rtp_rtcp_parse(p, len, &ssrc) != 0 : rtp_packet_parse(p, len, &h) != 0) {
            count(&l->c.malformed, 1);
            return;
        }
        if (!known) {
            /* plain RTP proves nothing: the SDP's address, or the first
             * source when the administrator chose so */
            bool ok = netaddr_equal(from, sdp) ||
                      (w->params.latch_first && !latched &&
                       (!l->have_signal_ip || netaddr_same_ip(from, &l->signal_ip)));
            if (!ok) {
                count(&l->c.foreign, 1);
                return;
            }
            leg_latch(w, st, leg, rtcp, from,
                      netaddr_equal(from, sdp) ? "address in SDP" : "first source");
            known = true;
        }
    }
    if (known)
        *heard = w->now_ms;
    count(&l->c.in_packets, 1);
    count(&l->c.in_bytes, plain_len);
    /* what the wake-up coalescing goes by: a stranger's junk must not
     * turn on the wait for every call of the worker */
    w->pass_packets++;
    st->last_rx_ms = w->now_ms;

    const struct netaddr *to = leg_dest(w, o, rtcp);
    if (!to) {
        count(&o->c.undelivered, 1);
        return;
    }
    /* what the other party's RTCP says of it; one that cannot be read to
     * the end is not forwarded to a private party at all */
    if (rtcp && o->scrub_rtcp && rtp_rtcp_scrub(p, plain_len) < 0) {
        count(&l->c.malformed, 1);
        return;
    }
    size_t out_len = plain_len;
    if (o->tx_protection == ANCHOR_SRTP) {
        int rc = rtcp ? rtp_srtcp_protect(o->tx, p, plain_len, ANCHOR_SLOT_SIZE, &out_len)
                      : rtp_srtp_protect(o->tx, p, plain_len, ANCHOR_SLOT_SIZE, &out_len);
        if (rc != 0) {
            count(&o->c.undelivered, 1);
            return;
        }
    }
    int fd = rtcp && !o->rtcp_mux ? o->fd_rtcp : o->fd_rtp;
    queue(w, fd, to, p, out_len, &o->c, plain_len);
}

/* The receive and send headers, built once: each points at its slot (or
 * queued address) for good; per datagram only what the kernel changed or
 * the packet decides is set again. */
void anchor_path_init(struct anchor_worker *w)
{
    struct anchor_txq *q = &w->txq;
    memset(w->rx, 0, sizeof(w->rx));
    memset(q->msgs, 0, sizeof(q->msgs));
    for (unsigned i = 0; i < ANCHOR_SLOTS; i++) {
        w->rx_iov[i].iov_base = slot(w, i);
        w->rx_iov[i].iov_len = ANCHOR_MAX_PACKET;
        w->rx[i].msg_hdr.msg_iov = &w->rx_iov[i];
        w->rx[i].msg_hdr.msg_iovlen = 1;
        w->rx[i].msg_hdr.msg_name = &w->rx_from[i];
        w->rx[i].msg_hdr.msg_namelen = sizeof(w->rx_from[i]);
        q->msgs[i].msg_hdr.msg_name = &q->to[i].u.sa;
        q->msgs[i].msg_hdr.msg_iov = &q->iov[i];
        q->msgs[i].msg_hdr.msg_iovlen = 1;
    }
}

#define ANCHOR_ROUNDS 4 /* batches per wake-up, so one socket cannot starve the rest */

void anchor_path_on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct anchor_sock *s = arg;
    struct anchor_wstream *st = s->st;
    struct anchor_worker *w = st->w;
    w->now_ms = anchor_now_ms();
    for (int round = 0; round < ANCHOR_ROUNDS; round++) {
        /* queued datagrams point into the slots: with too few free,
         * send them first */
        if (ANCHOR_SLOTS - w->slot_next < ANCHOR_BATCH)
            anchor_path_flush(w);
        unsigned first = w->slot_next;
        int n = recvmmsg(fd, &w->rx[first], ANCHOR_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            break;
        w->slot_next += (unsigned)n;
        /* (the pass's rate counts accepted packets only: see packet()) */
        for (unsigned i = first; i < first + (unsigned)n; i++) {
            struct msghdr *h = &w->rx[i].msg_hdr;
            struct netaddr from;
            int bad = netaddr_from_sockaddr(h->msg_name, h->msg_namelen, &from);
            h->msg_namelen = sizeof(w->rx_from[i]); /* for the next recvmmsg */
            if (bad != 0)
                continue;
            if (h->msg_flags & MSG_TRUNC) {
                count(&st->leg[s->leg].c.malformed, 1);
                continue;
            }
            packet(w, st, s->leg, s->rtcp, &from, slot(w, i), w->rx[i].msg_len);
        }
        /* sent at the end of the pass (worker_main) */
        if (n < ANCHOR_BATCH)
            break;
    }
}
