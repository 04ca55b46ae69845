/*
 * TURN requests (RFC 8656) and their authentication (RFC 8489 §9.2, the
 * long-term credential mechanism with self-verifying nonces), allocations,
 * permissions and channels, and their expiry. Runs on the worker that owns
 * the client's 5-tuple.
 */
#include "relay/relay_priv.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "core/log.h"
#include "core/log_limit.h"
#include "core/random.h"
#include "crypto/encoding.h"
#include "crypto/mac.h"

/*
 * Nonces: the RFC 8489 §9.2 cookie, "obMatJos2" and the security feature
 * set with "password algorithms" on ("gAAA", stun_nonce_cookie), then
 * base64url of the issue time (monotonic ms, 8 bytes) and a tag,
 * HMAC-SHA256(nonce key, time) truncated to 12 bytes. The key is random per
 * start, so a nonce from an earlier run is refused (438: the client retries
 * with a fresh one). What PASSWORD-ALGORITHMS offers with it depends only
 * on the relay's mode, fixed for its life, so the echo is checked against
 * the offer of now.
 */
#define NONCE_PREFIX_LEN STUN_NONCE_COOKIE_LEN
#define NONCE_RAW_LEN    20
#define NONCE_LEN        (NONCE_PREFIX_LEN + BASE64_URL_LEN(NONCE_RAW_LEN))

/* Reasons of the refusals the restricted mode and RFC 8489 §9.2.4 make:
 * stable texts (logs, tests, the client's ERROR-CODE). */
#define WHY_MD5_FIPS      "MD5-derived key not allowed under FIPS: use PASSWORD-ALGORITHM SHA-256"
#define WHY_PWALG_PAIR    "PASSWORD-ALGORITHM and PASSWORD-ALGORITHMS must come together"
#define WHY_PWALG_CHANGED "PASSWORD-ALGORITHMS differs from the offer (downgrade)"
#define WHY_PWALG_UNKNOWN "PASSWORD-ALGORITHM not among those offered"

struct req {
    struct relay_worker *w;
    struct relay_udp *udp;
    struct relay_conn *conn;
    const struct netaddr *from;
    struct stun_msg m;
    struct relay_alloc *alloc;
    bool fp;
    /* set by req_auth */
    enum stun_integrity integ;
    uint8_t key[STUN_KEY_MAX];
    size_t keylen;
    uint16_t pwalg;
    struct strview username;
    char user[RELAY_CRED_USER_MAX + 1];
};

static const uint16_t known_attrs[] = {
    STUN_ATTR_MAPPED_ADDRESS,
    STUN_ATTR_USERNAME,
    STUN_ATTR_MESSAGE_INTEGRITY,
    STUN_ATTR_ERROR_CODE,
    TURN_ATTR_CHANNEL_NUMBER,
    TURN_ATTR_LIFETIME,
    TURN_ATTR_XOR_PEER_ADDRESS,
    TURN_ATTR_DATA,
    STUN_ATTR_REALM,
    STUN_ATTR_NONCE,
    TURN_ATTR_REQUESTED_ADDRESS_FAMILY,
    TURN_ATTR_EVEN_PORT,
    TURN_ATTR_REQUESTED_TRANSPORT,
    TURN_ATTR_DONT_FRAGMENT,
    STUN_ATTR_MESSAGE_INTEGRITY_SHA256,
    STUN_ATTR_PASSWORD_ALGORITHM,
    STUN_ATTR_USERHASH,
    STUN_ATTR_XOR_MAPPED_ADDRESS,
    TURN_ATTR_RESERVATION_TOKEN,
    STUN_ATTR_PRIORITY,
    STUN_ATTR_USE_CANDIDATE,
};

/* --- small helpers ---------------------------------------------------------------- */

static const char *transport_name(enum relay_transport t)
{
    return t == RELAY_UDP ? "udp" : t == RELAY_TCP ? "tcp" : "tls";
}

static void ip_key(const struct netaddr *a, uint8_t out[16])
{
    if (netaddr_family(a) == AF_INET) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &a->u.in4.sin_addr, 4);
    } else {
        memcpy(out, a->u.in6.sin6_addr.s6_addr, 16);
    }
}

struct five_key {
    const void *via;
    uint8_t ip[16];
    uint16_t port;
};

static uint64_t five_hash(const void *via, const struct netaddr *a)
{
    struct five_key k;
    memset(&k, 0, sizeof(k));
    k.via = via;
    ip_key(a, k.ip);
    k.port = netaddr_port(a);
    return hash_bytes(&k, sizeof(k));
}

struct relay_alloc *relay_alloc_find_udp(struct relay_worker *w, const struct relay_udp *udp,
                                         const struct netaddr *client)
{
    uint64_t h = five_hash(udp, client);
    for (struct hmap_node *n = hmap_first(&w->allocs, h); n; n = hmap_next(n, h)) {
        struct relay_alloc *a = container_of(n, struct relay_alloc, node);
        if (a->udp == udp && netaddr_equal(&a->client, client))
            return a;
    }
    return NULL;
}

static uint64_t perm_hash(const struct relay_alloc *a, const uint8_t ip[16])
{
    struct {
        const void *a;
        uint8_t ip[16];
    } k;
    memset(&k, 0, sizeof(k));
    k.a = a;
    memcpy(k.ip, ip, 16);
    return hash_bytes(&k, sizeof(k));
}

struct relay_perm *relay_perm_find(struct relay_worker *w, const struct relay_alloc *a,
                                   const struct netaddr *peer)
{
    uint8_t ip[16];
    ip_key(peer, ip);
    uint64_t h = perm_hash(a, ip);
    for (struct hmap_node *n = hmap_first(&w->perms, h); n; n = hmap_next(n, h)) {
        struct relay_perm *p = container_of(n, struct relay_perm, node);
        if (p->a == a && memcmp(p->ip, ip, 16) == 0)
            return p;
    }
    return NULL;
}

struct relay_chan *relay_chan_by_peer(struct relay_worker *w, const struct relay_alloc *a,
                                      const struct netaddr *peer)
{
    uint64_t h = five_hash(a, peer);
    for (struct hmap_node *n = hmap_first(&w->chans, h); n; n = hmap_next(n, h)) {
        struct relay_chan *c = container_of(n, struct relay_chan, node);
        if (c->a == a && netaddr_equal(&c->peer, peer))
            return c;
    }
    return NULL;
}

static struct relay_perm *perm_touch(struct relay_worker *w, struct relay_alloc *a,
                                     const struct netaddr *peer, uint64_t expires)
{
    struct relay_perm *p = relay_perm_find(w, a, peer);
    if (!p) {
        if (atomic_load_explicit(&a->nperms, memory_order_relaxed) >= RELAY_PERMS_MAX)
            return NULL;
        p = calloc(1, sizeof(*p));
        if (!p)
            return NULL;
        p->a = a;
        ip_key(peer, p->ip);
        hmap_insert(&w->perms, &p->node, perm_hash(a, p->ip));
        p->next = a->perms;
        a->perms = p;
        atomic_fetch_add_explicit(&a->nperms, 1, memory_order_relaxed);
    }
    p->expires_ms = expires;
    return p;
}

static void chan_free(struct relay_worker *w, struct relay_chan *c)
{
    unsigned i = (unsigned)c->number - TURN_CHANNEL_MIN;
    hmap_remove(&w->chans, &c->node);
    c->a->chan_blocks[i >> 8][i & 0xFF] = NULL;
    atomic_fetch_sub_explicit(&c->a->nchans, 1, memory_order_relaxed);
    free(c);
}

/* --- nonces ------------------------------------------------------------------------- */

static void nonce_tag(const struct relay *r, const uint8_t when[8], uint8_t tag[12])
{
    unsigned char mac[MAC_MAX_SIZE];
    size_t len = 0;
    if (mac_hmac(MAC_HMAC_SHA256, r->nonce_key, sizeof(r->nonce_key), when, 8, mac, &len) != 0)
        memset(mac, 0, sizeof(mac)); /* checks then fail: every nonce is stale */
    memcpy(tag, mac, 12);
}

static void nonce_make(const struct relay *r, uint64_t now_ms, char out[NONCE_LEN + 1])
{
    uint8_t raw[NONCE_RAW_LEN];
    for (int i = 7; i >= 0; i--) {
        raw[i] = (uint8_t)now_ms;
        now_ms >>= 8;
    }
    nonce_tag(r, raw, raw + 8);
    stun_nonce_cookie(STUN_FEATURE_PASSWORD_ALGORITHMS, out);
    base64_encode(BASE64_URL, raw, sizeof(raw), out + NONCE_PREFIX_LEN,
                  NONCE_LEN + 1 - NONCE_PREFIX_LEN, NULL);
}

/* 0, or -ESTALE for a nonce that is not ours, was tampered with or is too old. */
static int nonce_check(const struct relay *r, const struct relay_params *p, struct strview n,
                       uint64_t now_ms)
{
    uint8_t raw[NONCE_RAW_LEN + 2], tag[12];
    size_t len = 0;

    uint32_t features = 0;
    if (n.n != NONCE_LEN || stun_nonce_features(n, &features) != 0 ||
        features != STUN_FEATURE_PASSWORD_ALGORITHMS)
        return -ESTALE;
    if (base64_decode(BASE64_URL, strview_make(n.p + NONCE_PREFIX_LEN, n.n - NONCE_PREFIX_LEN), raw,
                      sizeof(raw), &len) != 0 ||
        len != NONCE_RAW_LEN)
        return -ESTALE;
    nonce_tag(r, raw, tag);
    if (CRYPTO_memcmp(tag, raw + 8, sizeof(tag)) != 0)
        return -ESTALE;
    uint64_t when = 0;
    for (int i = 0; i < 8; i++)
        when = (when << 8) | raw[i];
    if (when > now_ms || now_ms - when > p->nonce_lifetime_ms)
        return -ESTALE;
    return 0;
}

/* --- replies ------------------------------------------------------------------------- */

static void reply_start(struct req *q, struct stun_builder *b, enum stun_class cls)
{
    stun_build_start(b, q->w->tx, sizeof(q->w->tx), q->m.method, cls, q->m.tid);
}

/* Refills a bucket for the time gone by and takes a token from it. */
static bool bucket_take(struct relay_unauth_slot *s, uint64_t now_ms, uint32_t rate, uint32_t burst)
{
    uint64_t refill = (now_ms - s->last_ms) * rate / 1000;
    if (refill) {
        s->tokens = refill >= burst - s->tokens ? burst : s->tokens + (uint32_t)refill;
        s->last_ms = now_ms;
    }
    if (!s->tokens)
        return false;
    s->tokens--;
    return true;
}

/* A token from the source's bucket; false when it is empty. A source new
 * to its slot (or taking it from another) first needs a token from the
 * worker's bucket: forged sources that keep evicting slots are bounded
 * there, while sources already known keep their own rate. */
static bool unauth_reply_allowed(struct relay_worker *w, const struct netaddr *from)
{
    uint8_t key[16];
    netaddr_source_key(from, key);
    uint64_t h = hash_u64(hash_bytes(key, sizeof(key)) ^ w->unauth_seed);
    struct relay_unauth_slot *s = &w->unauth[h % RELAY_UNAUTH_SLOTS];
    bool ok;

    if (!w->unauth_all.used) {
        w->unauth_all.used = true;
        w->unauth_all.tokens = RELAY_UNAUTH_ALL_BURST;
        w->unauth_all.last_ms = w->now_ms;
    }
    if (s->used && memcmp(s->key, key, sizeof(key)) == 0) {
        ok = bucket_take(s, w->now_ms, RELAY_UNAUTH_RATE, RELAY_UNAUTH_BURST);
    } else {
        ok = bucket_take(&w->unauth_all, w->now_ms, RELAY_UNAUTH_ALL_RATE, RELAY_UNAUTH_ALL_BURST);
        if (ok) {
            memcpy(s->key, key, sizeof(key));
            s->used = true;
            s->tokens = RELAY_UNAUTH_BURST - 1; /* this answer */
            s->last_ms = w->now_ms;
        }
    }
    if (ok)
        return true;
    w->unauth_dropped++;
    if (w->now_ms - w->unauth_logged_ms >= 1000) { /* a line a second at most */
        char a[NETADDR_STRLEN];
        log_warn("relay.rate_limited", "source", netaddr_format_ip(from, a), "dropped",
                 LOG_INT(w->unauth_dropped), "reason", "answers to a source without allocation");
        w->unauth_dropped = 0;
        w->unauth_logged_ms = w->now_ms;
    }
    return false;
}

static void reply_send(struct req *q, struct stun_builder *b, bool integrity)
{
    size_t len = 0;
    if (!integrity && !q->conn && !q->alloc && !unauth_reply_allowed(q->w, q->from))
        return;
    if (integrity)
        stun_build_integrity(b, q->integ, q->key, q->keylen);
    if (q->fp)
        stun_build_fingerprint(b);
    if (stun_build_finish(b, &len) != 0)
        return;
    relay_send_to_client(q->w, q->udp, q->conn, q->from, b->buf, len);
}

static void reply_error(struct req *q, int code, const char *reason, bool integrity)
{
    struct stun_builder b;
    reply_start(q, &b, STUN_CLASS_ERROR);
    stun_build_error(&b, code, reason);
    reply_send(q, &b, integrity);
}

static size_t our_password_algs(const struct relay_worker *w, uint16_t algs[2])
{
    return stun_password_algs_offer(w->r->restricted, algs);
}

/* 401 or 438 with what a client needs to (re)try: realm, a fresh nonce,
 * the password algorithms. No integrity: the client proved nothing yet. */
static void reply_challenge(struct req *q, int code, const char *reason)
{
    struct stun_builder b;
    char nonce[NONCE_LEN + 1];
    uint16_t algs[2];
    size_t nalgs = our_password_algs(q->w, algs);

    nonce_make(q->w->r, q->w->now_ms, nonce);
    reply_start(q, &b, STUN_CLASS_ERROR);
    stun_build_error(&b, code, reason);
    stun_build_attr(&b, STUN_ATTR_REALM, q->w->params.realm, strlen(q->w->params.realm));
    stun_build_attr(&b, STUN_ATTR_NONCE, nonce, NONCE_LEN);
    stun_build_password_algs(&b, algs, nalgs);
    reply_send(q, &b, false);
}

/* --- authentication ------------------------------------------------------------------ */

/* A refusal a client can cause at will (a retrying client with an expired
 * credential, say): at most one line a second per source and reason, with
 * the count held back since. */
static void log_refused(struct req *q, const char *event, const char *reason)
{
    uint64_t suppressed = 0;
    if (!relay_log_allowed(q->w, q->from, event, reason, &suppressed))
        return;
    char c[NETADDR_STRLEN], user[RELAY_CRED_USERNAME_MAX + 1];
    strview_copy(q->username.n <= RELAY_CRED_USERNAME_MAX ? q->username : STRVIEW_EMPTY, user,
                 sizeof(user));
    for (char *s = user; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            *s = '?';
    log_info(event, "client", netaddr_format(q->from, c), "transport",
             transport_name(q->conn ? q->conn->transport : RELAY_UDP), "username", user, "reason",
             reason, "suppressed", LOG_INT(suppressed));
}

struct try_arg {
    struct req *q;
};

static int try_password(const char *password, size_t len, void *arg)
{
    struct try_arg *t = arg;
    struct req *q = t->q;
    uint8_t key[STUN_KEY_MAX];
    size_t keylen = 0;

    if (stun_long_term_key((enum stun_password_alg)q->pwalg, q->username,
                           strview_cstr(q->w->params.realm), strview_make(password, len), key,
                           &keylen) != 0)
        return -1;
    int rc = stun_msg_check_integrity(&q->m, q->integ, key, keylen);
    if (rc == 0) {
        memcpy(q->key, key, keylen);
        q->keylen = keylen;
    }
    OPENSSL_cleanse(key, sizeof(key));
    return rc == 0 ? 0 : -1;
}

/* Settles which password algorithm the request uses (RFC 8489 §9.2.4),
 * and refuses the MD5-derived key in the restricted mode: NULL, or the
 * reason to answer 400 with (and log). */
static const char *pick_password_alg(struct req *q)
{
    uint16_t algs[2], alg = 0;
    size_t nalgs = our_password_algs(q->w, algs);

    switch (stun_password_alg_select(&q->m, algs, nalgs, &alg)) {
    case 0:
        break;
    case -EPERM:
        return WHY_PWALG_CHANGED;
    case -ENOTSUP:
        return WHY_PWALG_UNKNOWN;
    default:
        return WHY_PWALG_PAIR;
    }
    /* A client that sends no PASSWORD-ALGORITHM uses MD5 whatever we offer:
     * under FIPS that key may not be used to authenticate anybody. */
    if (alg == STUN_PASSWORD_MD5 &&
        (q->w->r->restricted || !stun_password_alg_available(STUN_PASSWORD_MD5)))
        return WHY_MD5_FIPS;
    q->pwalg = alg;
    return NULL;
}

/* Authenticates a request. Returns true when it may proceed (q->key and
 * the names are set); otherwise the answer has been sent. */
static bool req_auth(struct req *q)
{
    struct relay_worker *w = q->w;
    const struct stun_attr *un, *realm, *nonce;
    int64_t now_wall = (int64_t)time(NULL), expiry = 0;
    struct strview user;

    if (q->m.integrity_sha256 >= 0)
        q->integ = STUN_INTEGRITY_SHA256;
    else if (q->m.integrity >= 0)
        q->integ = STUN_INTEGRITY_SHA1;
    else {
        reply_challenge(q, 401, NULL);
        return false;
    }
    un = stun_msg_find(&q->m, STUN_ATTR_USERNAME);
    realm = stun_msg_find(&q->m, STUN_ATTR_REALM);
    nonce = stun_msg_find(&q->m, STUN_ATTR_NONCE);
    if (!un || !realm || !nonce) {
        reply_error(q, 400,
                    un || !stun_msg_find(&q->m, STUN_ATTR_USERHASH)
                        ? "USERNAME, REALM and NONCE required"
                        : "USERHASH not supported: send USERNAME",
                    false);
        return false;
    }
    q->username = stun_attr_string(&q->m, un);
    if (nonce_check(w->r, &w->params, stun_attr_string(&q->m, nonce), w->now_ms) != 0) {
        reply_challenge(q, 438, NULL);
        return false;
    }
    const char *why = pick_password_alg(q);
    if (why) {
        log_refused(q, "relay.refused", why);
        reply_error(q, 400, why, false);
        return false;
    }
    if (!strview_eq(stun_attr_string(&q->m, realm), w->params.realm)) {
        log_refused(q, "relay.auth_failed", "wrong realm");
        reply_challenge(q, 401, "Wrong realm");
        return false;
    }
    if (relay_cred_parse_username(q->username, &expiry, &user) != 0 ||
        user.n > RELAY_CRED_USER_MAX) {
        log_refused(q, "relay.auth_failed", relay_cred_result_name(RELAY_CRED_MALFORMED));
        reply_challenge(q, 401, NULL);
        return false;
    }
    if (expiry < now_wall) {
        log_refused(q, "relay.auth_failed", relay_cred_result_name(RELAY_CRED_EXPIRED));
        reply_challenge(q, 401, "Credential expired");
        return false;
    }
    strview_copy(user, q->user, sizeof(q->user));

    /* The allocation's own username: its key is known, no secret needed. */
    struct relay_alloc *a = q->alloc;
    if (a && a->pwalg == q->pwalg && strview_eq(q->username, a->username) &&
        stun_msg_check_integrity(&q->m, q->integ, a->key, a->keylen) == 0) {
        memcpy(q->key, a->key, a->keylen);
        q->keylen = a->keylen;
        return true;
    }

    struct relay_secrets s;
    struct try_arg t = {q};
    enum relay_cred_result res = RELAY_CRED_INVALID;
    for (int round = 0; round < 2 && res == RELAY_CRED_INVALID; round++) {
        /* A rotation by parleyctl shows as a failure with the secrets we
         * have: look at the file again (rate-limited) before refusing. */
        relay_secrets_snapshot(w->r, round == 1, &s);
        res =
            relay_cred_check(&s, q->username, now_wall, w->params.grace_s, try_password, &t, NULL);
    }
    OPENSSL_cleanse(&s, sizeof(s));
    if (res != RELAY_CRED_OK) {
        log_refused(q, "relay.auth_failed", relay_cred_result_name(res));
        if (res == RELAY_CRED_ERROR)
            reply_error(q, 500, NULL, false);
        else
            reply_challenge(q, 401, NULL);
        return false;
    }
    return true;
}

/* --- allocations ---------------------------------------------------------------------- */

static void list_insert(struct relay_worker *w, struct relay_alloc *a)
{
    pthread_mutex_lock(&w->list_lock);
    a->next = w->list;
    if (w->list)
        w->list->prev = a;
    w->list = a;
    w->nallocs++;
    pthread_mutex_unlock(&w->list_lock);
}

static void list_remove(struct relay_worker *w, struct relay_alloc *a)
{
    pthread_mutex_lock(&w->list_lock);
    if (a->prev)
        a->prev->next = a->next;
    else
        w->list = a->next;
    if (a->next)
        a->next->prev = a->prev;
    w->nallocs--;
    w->ended_to_peer_bytes += atomic_load_explicit(&a->c.to_peer_bytes, memory_order_relaxed);
    w->ended_to_peer_packets += atomic_load_explicit(&a->c.to_peer_packets, memory_order_relaxed);
    w->ended_from_peer_bytes += atomic_load_explicit(&a->c.from_peer_bytes, memory_order_relaxed);
    w->ended_from_peer_packets +=
        atomic_load_explicit(&a->c.from_peer_packets, memory_order_relaxed);
    w->ended_dropped += atomic_load_explicit(&a->c.dropped_packets, memory_order_relaxed);
    pthread_mutex_unlock(&w->list_lock);
}

void relay_conn_idle(struct relay_conn *c)
{
    if (!c->dead)
        conn_set_idle_timeout(c->conn, c->alloc ? 0 : 120);
}

void relay_alloc_end(struct relay_alloc *a, const char *reason)
{
    struct relay_worker *w = a->w;
    char c[NETADDR_STRLEN], rl[NETADDR_STRLEN];

    if (a->dead)
        return;
    a->dead = true;
    /* Queued datagrams may name this allocation's socket: send them first. */
    relay_txq_flush(w);
    uint64_t now = relay_now_ms();
    log_info("relay.allocation_ended", "user", a->user, "client", netaddr_format(&a->client, c),
             "transport", transport_name(a->transport), "relayed", netaddr_format(&a->relayed, rl),
             "reason", reason, "duration_s", LOG_INT((now - a->created_ms) / 1000), "to_peer_bytes",
             LOG_INT(atomic_load(&a->c.to_peer_bytes)), "to_peer_packets",
             LOG_INT(atomic_load(&a->c.to_peer_packets)), "from_peer_bytes",
             LOG_INT(atomic_load(&a->c.from_peer_bytes)), "from_peer_packets",
             LOG_INT(atomic_load(&a->c.from_peer_packets)), "dropped_packets",
             LOG_INT(atomic_load(&a->c.dropped_packets)));
    if (a->conn) {
        a->conn->alloc = NULL;
        relay_conn_idle(a->conn);
    } else {
        hmap_remove(&w->allocs, &a->node);
    }
    while (a->chans) {
        struct relay_chan *ch = a->chans;
        a->chans = ch->next;
        chan_free(w, ch);
    }
    for (int i = 0; i < RELAY_CHAN_BLOCKS; i++)
        free(a->chan_blocks[i]);
    while (a->perms) {
        struct relay_perm *p = a->perms;
        a->perms = p->next;
        hmap_remove(&w->perms, &p->node);
        free(p);
    }
    if (a->ev)
        event_free(a->ev);
    relay_port_close(w->r, a->fd, &a->relayed);
    relay_quota_release(w->r, a->user);
    list_remove(w, a);
    OPENSSL_cleanse(a->key, sizeof(a->key));
    free(a);
}

static uint32_t lifetime_of(const struct req *q, bool allocate)
{
    const struct stun_attr *lt = stun_msg_find(&q->m, TURN_ATTR_LIFETIME);
    uint32_t req = RELAY_DEFAULT_LIFETIME_S, max = q->w->params.alloc_max_s;
    if (lt && stun_attr_u32(&q->m, lt, &req) != 0)
        req = RELAY_DEFAULT_LIFETIME_S;
    /* RFC 8656 §7.2: an Allocate gets at least the default (capped by our
     * maximum); a Refresh gets what it asks, up to the maximum. */
    if (allocate && req < RELAY_DEFAULT_LIFETIME_S)
        req = RELAY_DEFAULT_LIFETIME_S;
    return req < max ? req : max;
}

static int family_of(const struct stun_attr *a, const struct stun_msg *m)
{
    if (a->len != 4)
        return -1;
    uint8_t f = stun_attr_value(m, a)[0];
    return f == 0x01 ? AF_INET : f == 0x02 ? AF_INET6 : 0;
}

static void handle_allocate(struct req *q)
{
    struct relay_worker *w = q->w;
    struct relay *r = w->r;
    struct stun_builder b;
    char c[NETADDR_STRLEN], rl[NETADDR_STRLEN];

    if (!req_auth(q))
        return;
    if (q->alloc) {
        if (memcmp(q->alloc->alloc_tid, q->m.tid, STUN_TID_LEN) == 0 &&
            strview_eq(q->username, q->alloc->username)) {
            relay_send_to_client(w, q->udp, q->conn, q->from, q->alloc->alloc_resp,
                                 q->alloc->alloc_resp_len);
            return;
        }
        reply_error(q, 437, NULL, true);
        return;
    }
    const struct stun_attr *rt = stun_msg_find(&q->m, TURN_ATTR_REQUESTED_TRANSPORT);
    const struct stun_attr *ep = stun_msg_find(&q->m, TURN_ATTR_EVEN_PORT);
    const struct stun_attr *tok = stun_msg_find(&q->m, TURN_ATTR_RESERVATION_TOKEN);
    const struct stun_attr *raf = stun_msg_find(&q->m, TURN_ATTR_REQUESTED_ADDRESS_FAMILY);
    const struct stun_attr *aaf = stun_msg_find(&q->m, TURN_ATTR_ADDITIONAL_ADDRESS_FAMILY);
    uint32_t transport = 0;
    if (!rt || stun_attr_u32(&q->m, rt, &transport) != 0) {
        reply_error(q, 400, "REQUESTED-TRANSPORT required", true);
        return;
    }
    if ((transport >> 24) != IPPROTO_UDP) {
        reply_error(q, 442, NULL, true);
        return;
    }
    if ((tok && (ep || raf)) || (raf && aaf) || (ep && ep->len != 1) || (tok && tok->len != 8)) {
        reply_error(q, 400, "conflicting or malformed allocation attributes", true);
        return;
    }
    if (raf) {
        int fam = family_of(raf, &q->m);
        if (fam < 0) {
            reply_error(q, 400, "bad REQUESTED-ADDRESS-FAMILY", true);
            return;
        }
        if (fam != r->family) {
            reply_error(q, 440, NULL, true);
            return;
        }
    }
    bool v6_refused = false;
    if (aaf) {
        if (family_of(aaf, &q->m) != AF_INET6) {
            reply_error(q, 400, "ADDITIONAL-ADDRESS-FAMILY must be IPv6", true);
            return;
        }
        v6_refused = r->family != AF_INET6;
    }
    int quota = relay_quota_take(r, &w->params, q->user);
    if (quota) {
        log_refused(q, "relay.quota_refused",
                    quota == 486 ? "relay.max_allocations_per_user" : "relay.max_allocations");
        reply_error(q, quota, NULL, true);
        return;
    }
    struct relay_alloc *a = calloc(1, sizeof(*a));
    uint64_t token = 0;
    bool reserve = ep && (stun_attr_value(&q->m, ep)[0] & 0x80);
    int fd;
    if (!a) {
        relay_quota_release(r, q->user);
        reply_error(q, 508, NULL, true);
        return;
    }
    if (tok) {
        const uint8_t *v = stun_attr_value(&q->m, tok);
        uint64_t t = 0;
        for (int i = 0; i < 8; i++)
            t = (t << 8) | v[i];
        fd = relay_port_claim(r, t, &a->relayed);
    } else {
        fd = relay_port_open(r, ep != NULL, reserve, &token, &a->relayed);
    }
    if (fd < 0) {
        relay_quota_release(r, q->user);
        free(a);
        log_refused(q, "relay.allocate_failed", tok ? "unknown reservation token" : "no port free");
        reply_error(q, 508, NULL, true);
        return;
    }
    a->fd = fd;
    a->w = w;
    a->transport = q->conn ? q->conn->transport : RELAY_UDP;
    a->udp = q->udp;
    a->conn = q->conn;
    a->client = *q->from;
    strview_copy(q->username, a->username, sizeof(a->username));
    snprintf(a->user, sizeof(a->user), "%s", q->user);
    memcpy(a->key, q->key, q->keylen);
    a->keylen = q->keylen;
    a->pwalg = q->pwalg;
    memcpy(a->alloc_tid, q->m.tid, STUN_TID_LEN);
    a->created_ms = w->now_ms;
    a->created_wall = (int64_t)time(NULL);
    uint32_t lifetime = lifetime_of(q, true);
    atomic_store(&a->expires_ms, w->now_ms + (uint64_t)lifetime * 1000);
    /* Buckets start empty at time 0: the first packet fills them. */
    if (stun_msg_find(&q->m, TURN_ATTR_DONT_FRAGMENT)) {
        int pmtu = IP_PMTUDISC_DO;
        if (r->family == AF_INET)
            setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof(pmtu));
        else
            setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &pmtu, sizeof(pmtu));
    }
    a->ev = event_new(w->base, fd, EV_READ | EV_PERSIST, relay_on_peer, a);
    if (!a->ev || event_add(a->ev, NULL) != 0) {
        if (a->ev)
            event_free(a->ev);
        relay_port_close(r, fd, &a->relayed);
        relay_quota_release(r, q->user);
        free(a);
        reply_error(q, 508, NULL, true);
        return;
    }
    if (q->conn) {
        q->conn->alloc = a;
        q->conn->allocated = true;
        relay_conn_idle(q->conn);
    } else {
        hmap_insert(&w->allocs, &a->node, five_hash(q->udp, q->from));
    }
    list_insert(w, a);

    reply_start(q, &b, STUN_CLASS_SUCCESS);
    stun_build_xor_addr(&b, TURN_ATTR_XOR_RELAYED_ADDRESS, &a->relayed);
    stun_build_u32(&b, TURN_ATTR_LIFETIME, lifetime);
    if (reserve) {
        uint8_t t[8];
        for (int i = 7; i >= 0; i--) {
            t[i] = (uint8_t)token;
            token >>= 8;
        }
        stun_build_attr(&b, TURN_ATTR_RESERVATION_TOKEN, t, 8);
    }
    stun_build_xor_addr(&b, STUN_ATTR_XOR_MAPPED_ADDRESS, q->from);
    if (v6_refused) {
        static const char why[] = "Address Family not Supported";
        uint8_t v[4 + sizeof(why) - 1] = {0x02, 0, 4, 40};
        memcpy(v + 4, why, sizeof(why) - 1);
        stun_build_attr(&b, TURN_ATTR_ADDRESS_ERROR_CODE, v, sizeof(v));
    }
    stun_build_integrity(&b, q->integ, q->key, q->keylen);
    if (q->fp)
        stun_build_fingerprint(&b);
    size_t len = 0;
    if (stun_build_finish(&b, &len) == 0) {
        if (len <= sizeof(a->alloc_resp)) {
            memcpy(a->alloc_resp, b.buf, len);
            a->alloc_resp_len = len;
        }
        relay_send_to_client(w, q->udp, q->conn, q->from, b.buf, len);
    }
    log_info("relay.allocated", "user", a->user, "client", netaddr_format(&a->client, c),
             "transport", transport_name(a->transport), "relayed", netaddr_format(&a->relayed, rl),
             "lifetime_s", LOG_INT(lifetime));
}

/* The checks every request on an existing allocation shares: 437 without
 * one, 441 when another username made it. */
static bool req_on_alloc(struct req *q)
{
    if (!req_auth(q))
        return false;
    if (!q->alloc) {
        reply_error(q, 437, NULL, true);
        return false;
    }
    if (!strview_eq(q->username, q->alloc->username)) {
        reply_error(q, 441, NULL, true);
        return false;
    }
    return true;
}

static void handle_refresh(struct req *q)
{
    struct stun_builder b;

    if (!req_on_alloc(q))
        return;
    const struct stun_attr *raf = stun_msg_find(&q->m, TURN_ATTR_REQUESTED_ADDRESS_FAMILY);
    if (raf && family_of(raf, &q->m) != netaddr_family(&q->alloc->relayed)) {
        reply_error(q, 443, NULL, true);
        return;
    }
    uint32_t lifetime = lifetime_of(q, false);
    reply_start(q, &b, STUN_CLASS_SUCCESS);
    stun_build_u32(&b, TURN_ATTR_LIFETIME, lifetime);
    reply_send(q, &b, true);
    if (lifetime == 0)
        relay_alloc_end(q->alloc, "deleted by client");
    else
        atomic_store(&q->alloc->expires_ms, q->w->now_ms + (uint64_t)lifetime * 1000);
}

/* Decodes and vets a peer address: 0, or the error code to answer. */
static int peer_check(struct req *q, const struct stun_attr *pa, struct netaddr *peer)
{
    char c[NETADDR_STRLEN], p[NETADDR_STRLEN];
    if (stun_attr_xor_addr(&q->m, pa, peer) != 0)
        return 400;
    if (netaddr_family(peer) != netaddr_family(&q->alloc->relayed))
        return 443;
    if (!relay_peer_allowed(q->w->r, &q->w->params, peer)) {
        log_info("relay.peer_refused", "user", q->alloc->user, "client", netaddr_format(q->from, c),
                 "peer", netaddr_format(peer, p));
        return 403;
    }
    return 0;
}

static void handle_create_permission(struct req *q)
{
    struct netaddr peers[16];
    size_t n = 0;
    struct stun_builder b;

    if (!req_on_alloc(q))
        return;
    for (size_t i = 0; i < q->m.nattrs; i++) {
        if (q->m.attrs[i].type != TURN_ATTR_XOR_PEER_ADDRESS)
            continue;
        if (n == sizeof(peers) / sizeof(peers[0])) {
            reply_error(q, 400, "too many XOR-PEER-ADDRESS", true);
            return;
        }
        int code = peer_check(q, &q->m.attrs[i], &peers[n]);
        if (code) {
            reply_error(q, code, NULL, true);
            return;
        }
        n++;
    }
    if (n == 0) {
        reply_error(q, 400, "XOR-PEER-ADDRESS required", true);
        return;
    }
    uint64_t expires = q->w->now_ms + RELAY_PERMISSION_S * 1000;
    for (size_t i = 0; i < n; i++) {
        if (!perm_touch(q->w, q->alloc, &peers[i], expires)) {
            reply_error(q, 508, NULL, true);
            return;
        }
    }
    reply_start(q, &b, STUN_CLASS_SUCCESS);
    reply_send(q, &b, true);
}

static void handle_channel_bind(struct req *q)
{
    struct relay_worker *w = q->w;
    struct relay_alloc *a;
    struct stun_builder b;
    struct netaddr peer;
    uint32_t v = 0;

    if (!req_on_alloc(q))
        return;
    a = q->alloc;
    const struct stun_attr *cn = stun_msg_find(&q->m, TURN_ATTR_CHANNEL_NUMBER);
    const struct stun_attr *pa = stun_msg_find(&q->m, TURN_ATTR_XOR_PEER_ADDRESS);
    if (!cn || !pa || stun_attr_u32(&q->m, cn, &v) != 0) {
        reply_error(q, 400, "CHANNEL-NUMBER and XOR-PEER-ADDRESS required", true);
        return;
    }
    uint16_t number = (uint16_t)(v >> 16);
    if (number < TURN_CHANNEL_MIN || number > TURN_CHANNEL_MAX) {
        reply_error(q, 400, "channel number out of range", true);
        return;
    }
    int code = peer_check(q, pa, &peer);
    if (code) {
        reply_error(q, code, NULL, true);
        return;
    }
    struct relay_chan *ch = relay_chan_by_number(a, number);
    struct relay_chan *other = relay_chan_by_peer(w, a, &peer);
    if ((ch && !netaddr_equal(&ch->peer, &peer)) || (other && other != ch)) {
        reply_error(q, 400, "channel or peer already bound otherwise", true);
        return;
    }
    uint64_t now = w->now_ms;
    if (!perm_touch(w, a, &peer, now + RELAY_PERMISSION_S * 1000)) {
        reply_error(q, 508, NULL, true);
        return;
    }
    if (!ch && atomic_load_explicit(&a->nchans, memory_order_relaxed) >= RELAY_CHANS_MAX) {
        reply_error(q, 508, "too many channels", true);
        return;
    }
    if (!ch) {
        unsigned i = (unsigned)number - TURN_CHANNEL_MIN;
        if (!a->chan_blocks[i >> 8])
            a->chan_blocks[i >> 8] = calloc(256, sizeof(struct relay_chan *));
        ch = a->chan_blocks[i >> 8] ? calloc(1, sizeof(*ch)) : NULL;
        if (!ch) {
            reply_error(q, 508, NULL, true);
            return;
        }
        ch->a = a;
        ch->number = number;
        ch->peer = peer;
        a->chan_blocks[i >> 8][i & 0xFF] = ch;
        hmap_insert(&w->chans, &ch->node, five_hash(a, &peer));
        ch->next = a->chans;
        a->chans = ch;
        atomic_fetch_add_explicit(&a->nchans, 1, memory_order_relaxed);
    }
    ch->expires_ms = now + RELAY_CHANNEL_S * 1000;
    reply_start(q, &b, STUN_CLASS_SUCCESS);
    reply_send(q, &b, true);
}

static void handle_binding(struct req *q)
{
    struct stun_builder b;
    reply_start(q, &b, STUN_CLASS_SUCCESS);
    stun_build_xor_addr(&b, STUN_ATTR_XOR_MAPPED_ADDRESS, q->from);
    reply_send(q, &b, false);
}

static void handle_send(struct req *q)
{
    const struct stun_attr *pa = stun_msg_find(&q->m, TURN_ATTR_XOR_PEER_ADDRESS);
    const struct stun_attr *data = stun_msg_find(&q->m, TURN_ATTR_DATA);
    struct netaddr peer;

    if (!q->alloc || !pa || !data || stun_attr_xor_addr(&q->m, pa, &peer) != 0 ||
        netaddr_family(&peer) != netaddr_family(&q->alloc->relayed))
        return;
    relay_forward_to_peer(q->w, q->alloc, &peer, stun_attr_value(&q->m, data), data->len);
}

void relay_handle_stun(struct relay_worker *w, struct relay_udp *udp, struct relay_conn *conn,
                       const struct netaddr *from, const uint8_t *buf, size_t len)
{
    struct req q;
    uint16_t unknown[8];

    memset(&q, 0, sizeof(q));
    q.w = w;
    q.udp = udp;
    q.conn = conn;
    q.from = from;
    int rc = stun_msg_parse(buf, len, &q.m);
    q.fp = rc == 0 && q.m.fingerprint >= 0;
    if (rc == -EINVAL)
        return;
    if (rc) {
        if (q.m.cls == STUN_CLASS_REQUEST)
            reply_error(&q, 400, "malformed attributes", false);
        return;
    }
    /* A wrong FINGERPRINT means it is not STUN (RFC 8489 §7.3): drop. */
    if (q.fp && stun_msg_check_fingerprint(&q.m) != 0)
        return;
    q.alloc = conn ? conn->alloc : relay_alloc_find_udp(w, udp, from);
    size_t nunknown =
        stun_msg_unknown_required(&q.m, known_attrs, sizeof(known_attrs) / sizeof(known_attrs[0]),
                                  unknown, sizeof(unknown) / sizeof(unknown[0]));
    if (q.m.cls == STUN_CLASS_INDICATION) {
        if (q.m.method == TURN_METHOD_SEND && nunknown == 0)
            handle_send(&q);
        return;
    }
    if (q.m.cls != STUN_CLASS_REQUEST)
        return;
    if (nunknown) {
        struct stun_builder b;
        reply_start(&q, &b, STUN_CLASS_ERROR);
        stun_build_error(&b, 420, NULL);
        stun_build_unknown_attrs(&b, unknown, nunknown);
        reply_send(&q, &b, false);
        return;
    }
    switch (q.m.method) {
    case STUN_METHOD_BINDING:
        handle_binding(&q);
        break;
    case TURN_METHOD_ALLOCATE:
        handle_allocate(&q);
        break;
    case TURN_METHOD_REFRESH:
        handle_refresh(&q);
        break;
    case TURN_METHOD_CREATE_PERMISSION:
        handle_create_permission(&q);
        break;
    case TURN_METHOD_CHANNEL_BIND:
        handle_channel_bind(&q);
        break;
    default:
        reply_error(&q, 400, "unknown method", false);
        break;
    }
    OPENSSL_cleanse(q.key, sizeof(q.key));
}

/* --- expiry and status --------------------------------------------------------------- */

void relay_worker_expire(struct relay_worker *w)
{
    uint64_t now = w->now_ms;
    struct relay_alloc *a = w->list, *next;

    for (; a; a = next) {
        next = a->next;
        if (atomic_load_explicit(&a->expires_ms, memory_order_relaxed) <= now) {
            relay_alloc_end(a, "expired");
            continue;
        }
        for (struct relay_chan **pc = &a->chans; *pc;) {
            struct relay_chan *ch = *pc;
            if (ch->expires_ms <= now) {
                *pc = ch->next;
                chan_free(w, ch);
            } else {
                pc = &ch->next;
            }
        }
        for (struct relay_perm **pp = &a->perms; *pp;) {
            struct relay_perm *p = *pp;
            if (p->expires_ms <= now) {
                *pp = p->next;
                hmap_remove(&w->perms, &p->node);
                atomic_fetch_sub_explicit(&a->nperms, 1, memory_order_relaxed);
                free(p);
            } else {
                pp = &p->next;
            }
        }
    }
}

void relay_alloc_status(const struct relay_alloc *a, uint64_t now_ms, int64_t now_wall, json_t *arr)
{
    char c[NETADDR_STRLEN], rl[NETADDR_STRLEN];
    uint64_t exp = atomic_load_explicit(&a->expires_ms, memory_order_relaxed);
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:{s:I, s:I}, s:{s:I, s:I}, s:I, s:i}",
        "user", a->user, "username", a->username, "transport", transport_name(a->transport),
        "client", netaddr_format(&a->client, c), "relayed", netaddr_format(&a->relayed, rl),
        "age_s", (json_int_t)(now_wall - a->created_wall), "expires_in_s",
        (json_int_t)(exp > now_ms ? (exp - now_ms) / 1000 : 0), "permissions",
        (json_int_t)atomic_load_explicit(&a->nperms, memory_order_relaxed), "channels",
        (json_int_t)atomic_load_explicit(&a->nchans, memory_order_relaxed), "to_peer", "bytes",
        (json_int_t)atomic_load_explicit(&a->c.to_peer_bytes, memory_order_relaxed), "packets",
        (json_int_t)atomic_load_explicit(&a->c.to_peer_packets, memory_order_relaxed), "from_peer",
        "bytes", (json_int_t)atomic_load_explicit(&a->c.from_peer_bytes, memory_order_relaxed),
        "packets", (json_int_t)atomic_load_explicit(&a->c.from_peer_packets, memory_order_relaxed),
        "dropped_packets",
        (json_int_t)atomic_load_explicit(&a->c.dropped_packets, memory_order_relaxed), "worker",
        (int)a->w->index);
    if (o)
        json_array_append_new(arr, o);
}
