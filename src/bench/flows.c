/*
 * The SIP side of parley-bench: requests of each scenario, digest
 * credentials, the callers' response handling and the callees' answers.
 * Messages are parsed by sip/msg, callee responses built by sip/build,
 * credentials computed by crypto/digest: the generator exercises Parley's
 * own stack as a client.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench/engine_priv.h"
#include "core/random.h"
#include "sip/build.h"

void engine_conn_pinged(struct bconn *c);

/* RFC 4568's example key: the media never flows, the offer must only look
 * like an SRTP offer to an encryption policy. */
#define SDP_CRYPTO                                                                                 \
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n"

/* --- small utilities ------------------------------------------------------ */

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int bench_parse_double(const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= min && v <= max))
        return -EINVAL;
    *out = v;
    return 0;
}

void bench_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int bench_expand(const char *tmpl, unsigned i, char *out, size_t cap)
{
    const char *at = strstr(tmpl, "{i}");
    int n;
    if (!at)
        n = snprintf(out, cap, "%s", tmpl);
    else
        n = snprintf(out, cap, "%.*s%u%s", (int)(at - tmpl), tmpl, i, at + 3);
    return n < 0 || (size_t)n >= cap ? -ENOSPC : 0;
}

void bench_stats_add_latency(struct bench_stats *s, uint64_t ns)
{
    if (s->nlat == s->caplat) {
        size_t cap = s->caplat ? s->caplat * 2 : 65536;
        uint32_t *p = realloc(s->lat_us, cap * sizeof(*p));
        if (!p)
            return;
        s->lat_us = p;
        s->caplat = cap;
    }
    uint64_t us = ns / 1000;
    s->lat_us[s->nlat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

void bench_stats_merge(struct bench_stats *into, const struct bench_stats *from)
{
    into->started += from->started;
    into->ok += from->ok;
    into->failed += from->failed;
    into->timeouts += from->timeouts;
    into->conn_errors += from->conn_errors;
    into->late_starts += from->late_starts;
    into->max_backlog += from->max_backlog;
    for (size_t i = 0; i < 700; i++)
        into->by_status[i] += from->by_status[i];
    into->callee_requests += from->callee_requests;
    into->handshakes += from->handshakes;
    into->resumed += from->resumed;
    into->setup_conns += from->setup_conns;
    into->setup_failures += from->setup_failures;
    if (!into->conn_error[0])
        memcpy(into->conn_error, from->conn_error, sizeof(into->conn_error));
    if (!into->tls_negotiated[0])
        memcpy(into->tls_negotiated, from->tls_negotiated, sizeof(into->tls_negotiated));
    if (!into->setup_error[0])
        memcpy(into->setup_error, from->setup_error, sizeof(into->setup_error));
    for (size_t i = 0; i < from->nlat; i++)
        bench_stats_add_latency(into, (uint64_t)from->lat_us[i] * 1000);
}

void bench_stats_free(struct bench_stats *s)
{
    free(s->lat_us);
    s->lat_us = NULL;
    s->nlat = s->caplat = 0;
}

const char *bench_scenario_name(enum bench_scenario s)
{
    switch (s) {
    case BENCH_REGISTER:
        return "register";
    case BENCH_REGISTER_NEWCONN:
        return "register-newconn";
    case BENCH_MESSAGE:
        return "message";
    case BENCH_CALL:
        return "call";
    case BENCH_HANDSHAKE:
        return "handshake";
    case BENCH_IDLE:
        return "idle";
    }
    return "?";
}

void flow_user_init(struct buser *u)
{
    char rnd[13];
    random_token(rnd, 12);
    snprintf(u->reg_call_id, sizeof(u->reg_call_id), "pb%u-r%s", u->local, rnd);
    u->reg_cseq = 0;
}

/* A new identity for an operation outside any dialog. */
static void new_call(struct buser *u)
{
    char rnd[17];
    random_token(rnd, 16);
    snprintf(u->call_id, sizeof(u->call_id), "pb%u-%s", u->local, rnd);
    random_token(u->from_tag, 10);
    u->cseq = 0;
    u->to_tag[0] = u->target[0] = u->route[0] = '\0';
}

static void new_branch(struct buser *u)
{
    char rnd[17];
    random_token(rnd, 16);
    snprintf(u->branch, sizeof(u->branch), "z9hG4bKpb%s", rnd);
}

/* --- digest ------------------------------------------------------------------ */

/* Parses one `Digest realm=".."...` challenge. Returns true when it is a
 * digest challenge with a realm and a nonce. */
static bool parse_challenge(struct strview v, struct bchal *out)
{
    memset(out, 0, sizeof(*out));
    out->alg = DIGEST_ALG_MD5;
    size_t i = 0;
    while (i < v.n && (v.p[i] == ' ' || v.p[i] == '\t'))
        i++;
    if (v.n - i < 7 || strncasecmp(v.p + i, "Digest", 6) != 0 ||
        (v.p[i + 6] != ' ' && v.p[i + 6] != '\t'))
        return false;
    i += 6;
    bool have_realm = false, have_nonce = false;
    while (i < v.n) {
        while (i < v.n && (v.p[i] == ' ' || v.p[i] == '\t' || v.p[i] == ','))
            i++;
        size_t ns = i;
        while (i < v.n && v.p[i] != '=' && v.p[i] != ' ' && v.p[i] != ',')
            i++;
        struct strview name = strview_make(v.p + ns, i - ns);
        while (i < v.n && v.p[i] == ' ')
            i++;
        if (i >= v.n || v.p[i] != '=')
            return false;
        i++;
        while (i < v.n && v.p[i] == ' ')
            i++;
        struct strview val;
        if (i < v.n && v.p[i] == '"') {
            size_t vs = ++i;
            while (i < v.n && v.p[i] != '"')
                i += v.p[i] == '\\' ? 2 : 1;
            if (i > v.n)
                return false;
            val = strview_make(v.p + vs, i - vs);
            i++;
        } else {
            size_t vs = i;
            while (i < v.n && v.p[i] != ',' && v.p[i] != ' ')
                i++;
            val = strview_make(v.p + vs, i - vs);
        }
        if (strview_eq_nocase(name, "realm")) {
            have_realm = digest_unescape(val, out->realm, sizeof(out->realm)) == 0;
        } else if (strview_eq_nocase(name, "nonce")) {
            have_nonce = digest_unescape(val, out->nonce, sizeof(out->nonce)) == 0;
        } else if (strview_eq_nocase(name, "opaque")) {
            if (digest_unescape(val, out->opaque, sizeof(out->opaque)) != 0)
                return false;
        } else if (strview_eq_nocase(name, "algorithm")) {
            if (digest_alg_parse(val, &out->alg) != 0)
                return false;
        } else if (strview_eq_nocase(name, "stale")) {
            out->stale = strview_eq_nocase(val, "true");
        } else if (strview_eq_nocase(name, "qop")) {
            /* a list such as "auth,auth-int" */
            size_t k = 0;
            while (k < val.n) {
                while (k < val.n && (val.p[k] == ' ' || val.p[k] == ','))
                    k++;
                size_t s = k;
                while (k < val.n && val.p[k] != ',' && val.p[k] != ' ')
                    k++;
                if (strview_eq_nocase(strview_make(val.p + s, k - s), "auth"))
                    out->qop = true;
            }
        }
    }
    return have_realm && have_nonce;
}

/* The challenge of a 401/407 with our algorithm. */
static bool pick_challenge(const struct buser *u, const struct sip_msg *m, struct bchal *out)
{
    bool proxy = m->status == 407;
    enum sip_hdr_id id = proxy ? SIP_HDR_PROXY_AUTHENTICATE : SIP_HDR_WWW_AUTHENTICATE;
    for (struct sip_hdr *h = sip_msg_hdr_first(m, id); h; h = sip_msg_hdr_next(h, id)) {
        struct bchal ch;
        if (parse_challenge(h->value, &ch) && ch.alg == u->e->o->algorithm) {
            ch.proxy = proxy;
            ch.have = true;
            *out = ch;
            return true;
        }
    }
    return false;
}

/* Appends an (Proxy-)Authorization line answering the user's challenge. */
static int put_credentials(struct strbuf *b, struct buser *u, const char *method, const char *uri)
{
    struct bchal *ch = &u->chal;
    if (!u->have_ha1 || u->ha1_alg != ch->alg || strcmp(u->ha1_realm, ch->realm) != 0) {
        if (digest_ha1(ch->alg, u->name, ch->realm, u->password, u->ha1) != 0)
            return -EINVAL;
        snprintf(u->ha1_realm, sizeof(u->ha1_realm), "%s", ch->realm);
        u->ha1_alg = ch->alg;
        u->have_ha1 = true;
    }
    ch->nc++;
    char nc[9], cnonce[17], resp[DIGEST_HEX_BUF];
    snprintf(nc, sizeof(nc), "%08x", ch->nc);
    random_token(cnonce, 16);
    struct strview qop = ch->qop ? strview_cstr("auth") : STRVIEW_EMPTY;
    if (digest_response(ch->alg, u->ha1, strview_cstr(ch->nonce),
                        ch->qop ? strview_cstr(nc) : STRVIEW_EMPTY,
                        ch->qop ? strview_cstr(cnonce) : STRVIEW_EMPTY, qop, strview_cstr(method),
                        strview_cstr(uri), resp) != 0)
        return -EINVAL;
    strbuf_printf(b,
                  "%s: Digest username=\"%s\", realm=\"%s\", nonce=\"%s\", uri=\"%s\", "
                  "response=\"%s\", algorithm=%s",
                  ch->proxy ? "Proxy-Authorization" : "Authorization", u->name, ch->realm,
                  ch->nonce, uri, resp, digest_alg_name(ch->alg));
    if (ch->qop)
        strbuf_printf(b, ", qop=auth, nc=%s, cnonce=\"%s\"", nc, cnonce);
    if (ch->opaque[0])
        strbuf_printf(b, ", opaque=\"%s\"", ch->opaque);
    strbuf_puts(b, "\r\n");
    return 0;
}

/* --- requests ------------------------------------------------------------------ */

static void send_or_fail(struct buser *u, struct strbuf *b)
{
    int rc = engine_send(u->conn, b);
    strbuf_free(b);
    if (rc != 0)
        engine_op_done(u, -ECONNRESET);
}

/* Credentials go on this request: a challenge of this operation, or the
 * cached one under --auth reuse (set-up registrations never reuse). */
static bool want_credentials(struct buser *u, bool proxy)
{
    if (u->auth_tries > 0)
        return true;
    return u->e->o->auth == BENCH_AUTH_REUSE && !u->setup_op && u->chal.have &&
           u->chal.proxy == proxy;
}

static void send_register(struct buser *u)
{
    const struct bench_opts *o = u->e->o;
    struct strbuf b = STRBUF_INIT;
    char ruri[300];
    snprintf(ruri, sizeof(ruri), "sip:%s", o->domain);
    u->cseq = ++u->reg_cseq;
    snprintf(u->call_id, sizeof(u->call_id), "%s", u->reg_call_id);
    random_token(u->from_tag, 10);
    new_branch(u);
    strbuf_printf(&b,
                  "REGISTER %s SIP/2.0\r\n"
                  "Via: SIP/2.0/TLS %s;branch=%s\r\n"
                  "Max-Forwards: 70\r\n"
                  "From: <sip:%s@%s>;tag=%s\r\n"
                  "To: <sip:%s@%s>\r\n"
                  "Call-ID: %s\r\n"
                  "CSeq: %u REGISTER\r\n"
                  "Contact: <sip:%s@%s;transport=tls>\r\n"
                  "Expires: %u\r\n"
                  "User-Agent: parley-bench\r\n",
                  ruri, u->conn->local, u->branch, u->name, o->domain, u->from_tag, u->name,
                  o->domain, u->call_id, u->cseq, u->name, u->conn->local, o->expires);
    if (want_credentials(u, false) && put_credentials(&b, u, "REGISTER", ruri) != 0) {
        strbuf_free(&b);
        engine_op_done(u, 401);
        return;
    }
    strbuf_puts(&b, "Content-Length: 0\r\n\r\n");
    u->st = OP_REGISTER;
    send_or_fail(u, &b);
}

static void send_message(struct buser *u)
{
    const struct bench_opts *o = u->e->o;
    struct strbuf b = STRBUF_INIT;
    char ruri[300];
    snprintf(ruri, sizeof(ruri), "sip:%s@%s", u->peer->name, o->domain);
    u->cseq++;
    new_branch(u);
    strbuf_printf(&b,
                  "MESSAGE %s SIP/2.0\r\n"
                  "Via: SIP/2.0/TLS %s;branch=%s\r\n"
                  "Max-Forwards: 70\r\n"
                  "From: <sip:%s@%s>;tag=%s\r\n"
                  "To: <%s>\r\n"
                  "Call-ID: %s\r\n"
                  "CSeq: %u MESSAGE\r\n"
                  "User-Agent: parley-bench\r\n"
                  "Content-Type: text/plain\r\n",
                  ruri, u->conn->local, u->branch, u->name, o->domain, u->from_tag, ruri,
                  u->call_id, u->cseq);
    if (want_credentials(u, true) && put_credentials(&b, u, "MESSAGE", ruri) != 0) {
        strbuf_free(&b);
        engine_op_done(u, 407);
        return;
    }
    strbuf_printf(&b, "Content-Length: %u\r\n\r\n", o->body_size);
    for (unsigned i = 0; i < o->body_size; i++)
        strbuf_putc(&b, (char)('a' + i % 26));
    u->st = OP_MESSAGE;
    send_or_fail(u, &b);
}

static void put_sdp(struct strbuf *b, const char *body_ip, unsigned port)
{
    char sdp[512];
    int n = snprintf(sdp, sizeof(sdp),
                     "v=0\r\n"
                     "o=- %u 1 IN IP4 %s\r\n"
                     "s=-\r\n"
                     "c=IN IP4 %s\r\n"
                     "t=0 0\r\n"
                     "m=audio %u RTP/SAVP 0 8 101\r\n"
                     "a=rtpmap:0 PCMU/8000\r\n"
                     "a=rtpmap:8 PCMA/8000\r\n"
                     "a=rtpmap:101 telephone-event/8000\r\n" SDP_CRYPTO "a=sendrecv\r\n",
                     port, body_ip, body_ip, port);
    strbuf_printf(b, "Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s", n, sdp);
}

static void send_invite(struct buser *u)
{
    const struct bench_opts *o = u->e->o;
    struct strbuf b = STRBUF_INIT;
    char ruri[300];
    snprintf(ruri, sizeof(ruri), "sip:%s@%s", u->peer->name, o->domain);
    u->cseq++;
    new_branch(u);
    strbuf_printf(&b,
                  "INVITE %s SIP/2.0\r\n"
                  "Via: SIP/2.0/TLS %s;branch=%s\r\n"
                  "Max-Forwards: 70\r\n"
                  "From: <sip:%s@%s>;tag=%s\r\n"
                  "To: <%s>\r\n"
                  "Call-ID: %s\r\n"
                  "CSeq: %u INVITE\r\n"
                  "Contact: <sip:%s@%s;transport=tls>\r\n"
                  "User-Agent: parley-bench\r\n",
                  ruri, u->conn->local, u->branch, u->name, o->domain, u->from_tag, ruri,
                  u->call_id, u->cseq, u->name, u->conn->local);
    if (want_credentials(u, true) && put_credentials(&b, u, "INVITE", ruri) != 0) {
        strbuf_free(&b);
        engine_op_done(u, 407);
        return;
    }
    put_sdp(&b, "127.0.0.1", 40000 + (u->local % 10000) * 2);
    u->st = OP_INVITE;
    send_or_fail(u, &b);
}

/* ACK of a non-2xx final response: hop by hop, the INVITE's branch. */
static void send_ack_non2xx(struct buser *u, const struct sip_msg *resp)
{
    const struct bench_opts *o = u->e->o;
    struct sip_hdr *to = sip_msg_hdr_first(resp, SIP_HDR_TO);
    struct strbuf b = STRBUF_INIT;
    strbuf_printf(&b,
                  "ACK sip:%s@%s SIP/2.0\r\n"
                  "Via: SIP/2.0/TLS %s;branch=%s\r\n"
                  "Max-Forwards: 70\r\n"
                  "From: <sip:%s@%s>;tag=%s\r\n"
                  "To: %.*s\r\n"
                  "Call-ID: %s\r\n"
                  "CSeq: %u ACK\r\n"
                  "Content-Length: 0\r\n\r\n",
                  u->peer->name, o->domain, u->conn->local, u->branch, u->name, o->domain,
                  u->from_tag, to ? (int)to->value.n : 0, to ? to->value.p : "", u->call_id,
                  u->cseq);
    engine_send(u->conn, &b);
    strbuf_free(&b);
}

/* An in-dialog request of the caller (ACK of the 2xx, BYE). */
static void put_in_dialog(struct strbuf *b, struct buser *u, const char *method, uint32_t cseq)
{
    const struct bench_opts *o = u->e->o;
    new_branch(u);
    strbuf_printf(b,
                  "%s %s SIP/2.0\r\n"
                  "Via: SIP/2.0/TLS %s;branch=%s\r\n"
                  "Max-Forwards: 70\r\n",
                  method, u->target, u->conn->local, u->branch);
    if (u->route[0])
        strbuf_printf(b, "Route: %s\r\n", u->route);
    strbuf_printf(b,
                  "From: <sip:%s@%s>;tag=%s\r\n"
                  "To: <sip:%s@%s>;tag=%s\r\n"
                  "Call-ID: %s\r\n"
                  "CSeq: %u %s\r\n"
                  "Content-Length: 0\r\n\r\n",
                  u->name, o->domain, u->from_tag, u->peer->name, o->domain, u->to_tag, u->call_id,
                  cseq, method);
}

/* The 2xx of our INVITE: remember the dialog, ACK it, hang up at once. */
static void call_answered(struct buser *u, const struct sip_msg *m)
{
    struct sip_addr to, contact;
    if (sip_msg_to(m, &to) != 0 || !to.tag.n ||
        strview_copy(to.tag, u->to_tag, sizeof(u->to_tag)) != 0) {
        engine_op_done(u, 600 + 99);
        return;
    }
    struct sip_value_iter it;
    struct strview v;
    sip_value_iter_init(&it, m, SIP_HDR_CONTACT);
    if (!sip_value_iter_next(&it, &v) || sip_addr_parse(v, &contact) != 0 ||
        strview_copy(contact.uri_text, u->target, sizeof(u->target)) != 0) {
        engine_op_done(u, 699);
        return;
    }
    /* route set: the Record-Route values in reverse order */
    struct strview rr[16];
    size_t n = 0;
    sip_value_iter_init(&it, m, SIP_HDR_RECORD_ROUTE);
    while (n < 16 && sip_value_iter_next(&it, &v))
        rr[n++] = v;
    struct strbuf route = STRBUF_INIT;
    while (n-- > 0) {
        if (route.len)
            strbuf_puts(&route, ", ");
        strbuf_putview(&route, rr[n]);
    }
    if (route.len &&
        strview_copy(strview_make(route.p, route.len), u->route, sizeof(u->route)) != 0) {
        strbuf_free(&route);
        engine_op_done(u, 699);
        return;
    }
    strbuf_free(&route);
    struct strbuf b = STRBUF_INIT;
    uint32_t invite_cseq = u->cseq;
    put_in_dialog(&b, u, "ACK", invite_cseq);
    u->cseq = invite_cseq + 1;
    put_in_dialog(&b, u, "BYE", u->cseq);
    u->st = OP_BYE;
    send_or_fail(u, &b);
}

void flow_start(struct buser *u)
{
    if (!u->conn || u->conn->state != BC_OPEN) {
        engine_op_done(u, -ECONNRESET);
        return;
    }
    enum bench_scenario s = u->e->o->scenario;
    if (u->e->o->auth == BENCH_AUTH_FRESH)
        u->chal.have = false;
    if (u->setup_op || s == BENCH_REGISTER || s == BENCH_REGISTER_NEWCONN) {
        send_register(u);
        return;
    }
    new_call(u);
    if (s == BENCH_MESSAGE)
        send_message(u);
    else if (s == BENCH_CALL)
        send_invite(u);
    else
        engine_op_done(u, 0);
}

void flow_conn_open(struct bconn *c)
{
    struct buser *u = c->owner;
    if (!u || !u->busy || u->conn != c) {
        engine_close(c, "operation gone");
        return;
    }
    if (u->e->o->scenario == BENCH_HANDSHAKE)
        engine_op_done(u, 0);
    else
        flow_start(u);
}

void flow_send_options(struct bconn *c)
{
    const struct bench_opts *o = c->e->o;
    char rnd[17], tag[11], br[17];
    random_token(rnd, 16);
    random_token(tag, 10);
    random_token(br, 16);
    struct strbuf b = STRBUF_INIT;
    strbuf_printf(&b,
                  "OPTIONS sip:%s SIP/2.0\r\n"
                  "Via: SIP/2.0/TLS %s;branch=z9hG4bKpb%s\r\n"
                  "Max-Forwards: 70\r\n"
                  "From: <sip:bench@%s>;tag=%s\r\n"
                  "To: <sip:%s>\r\n"
                  "Call-ID: po-%s\r\n"
                  "CSeq: 1 OPTIONS\r\n"
                  "User-Agent: parley-bench\r\n"
                  "Content-Length: 0\r\n\r\n",
                  o->domain, c->local, br, o->domain, tag, o->domain, rnd);
    engine_send(c, &b);
    strbuf_free(&b);
}

/* --- what arrives ------------------------------------------------------------------ */

/* A callee answers whatever the server forwards to it (200; an INVITE
 * gets an SRTP answer and our Contact). */
static void callee_answer(struct bconn *c, const struct sip_msg *req)
{
    struct engine *e = c->e;
    e->st.callee_requests++;
    if (req->method == SIP_METHOD_ACK)
        return;
    char tag[11];
    random_token(tag, 10);
    struct strbuf extra = STRBUF_INIT, out = STRBUF_INIT, body = STRBUF_INIT;
    const char *ctype = NULL;
    if (req->method == SIP_METHOD_INVITE) {
        char user[64] = "callee";
        if (req->ruri.user.n)
            strview_copy(req->ruri.user, user, sizeof(user));
        strbuf_printf(&extra, "Contact: <sip:%s@%s;transport=tls>\r\n", user, c->local);
        for (struct sip_hdr *h = sip_msg_hdr_first(req, SIP_HDR_RECORD_ROUTE); h;
             h = sip_msg_hdr_next(h, SIP_HDR_RECORD_ROUTE))
            strbuf_printf(&extra, "Record-Route: %.*s\r\n", (int)h->value.n, h->value.p);
        struct strbuf sdp = STRBUF_INIT;
        put_sdp(&sdp, "127.0.0.1", 42000);
        /* put_sdp writes headers too: keep only the body */
        const char *blank = strstr(strbuf_cstr(&sdp), "\r\n\r\n");
        if (blank)
            strbuf_puts(&body, blank + 4);
        strbuf_free(&sdp);
        ctype = "application/sdp";
    }
    if (sip_build_response(req, 200, NULL, tag, extra.len ? strbuf_cstr(&extra) : NULL, ctype,
                           strview_make(body.p, body.len), &out) == 0)
        engine_send(c, &out);
    strbuf_free(&extra);
    strbuf_free(&out);
    strbuf_free(&body);
}

/* The user whose operation a response belongs to, from our Call-ID. */
static struct buser *response_owner(struct bconn *c, const struct sip_msg *m)
{
    struct engine *e = c->e;
    if (m->call_id.n < 4 || m->call_id.p[0] != 'p' || m->call_id.p[1] != 'b')
        return NULL;
    unsigned long idx = 0;
    size_t i = 2;
    for (; i < m->call_id.n && m->call_id.p[i] >= '0' && m->call_id.p[i] <= '9'; i++)
        idx = idx * 10 + (unsigned long)(m->call_id.p[i] - '0');
    if (i == 2 || i >= m->call_id.n || m->call_id.p[i] != '-' || idx >= e->nusers)
        return NULL;
    struct buser *u = &e->users[idx];
    if (!u->busy || u->conn != c || !strview_eq(m->call_id, u->call_id) || m->cseq_num != u->cseq)
        return NULL;
    return u;
}

/* A 401/407: answer it once (again when stale, or when reused credentials
 * were refused). Returns true when a retry went out. */
static bool retry_with_credentials(struct buser *u, const struct sip_msg *m)
{
    struct bchal ch;
    bool fresh_creds = u->auth_tries > 0; /* our last request answered a challenge of this op */
    if (u->auth_tries >= 3 || !pick_challenge(u, m, &ch))
        return false;
    if (fresh_creds && !ch.stale)
        return false; /* the password is wrong */
    u->chal = ch;
    u->auth_tries++;
    return true;
}

static void caller_response(struct buser *u, const struct sip_msg *m)
{
    int st = m->status;
    if (st < 200)
        return;
    switch (u->st) {
    case OP_REGISTER:
        if (st == 401 || st == 407) {
            if (retry_with_credentials(u, m))
                send_register(u);
            else
                engine_op_done(u, st);
            return;
        }
        engine_op_done(u, st < 300 ? 0 : st);
        return;
    case OP_MESSAGE:
        if (st == 401 || st == 407) {
            if (retry_with_credentials(u, m))
                send_message(u);
            else
                engine_op_done(u, st);
            return;
        }
        engine_op_done(u, st < 300 ? 0 : st);
        return;
    case OP_INVITE:
        if (m->cseq_method != SIP_METHOD_INVITE)
            return;
        if (st >= 300) {
            send_ack_non2xx(u, m);
            if ((st == 401 || st == 407) && retry_with_credentials(u, m))
                send_invite(u);
            else
                engine_op_done(u, st);
            return;
        }
        call_answered(u, m);
        return;
    case OP_BYE:
        if (m->cseq_method != SIP_METHOD_BYE)
            return;
        engine_op_done(u, st < 300 ? 0 : st);
        return;
    default:
        return;
    }
}

void flow_on_message(struct bconn *c, struct sip_msg *m)
{
    if (m->is_request) {
        callee_answer(c, m);
    } else if (m->call_id.n > 3 && memcmp(m->call_id.p, "po-", 3) == 0) {
        if (m->status >= 200) {
            if (m->status >= 300) {
                char why[80];
                snprintf(why, sizeof(why), "OPTIONS answered %d", m->status);
                engine_conn_error(c->e, why);
            }
            engine_conn_pinged(c);
        }
    } else {
        struct buser *u = response_owner(c, m);
        if (u)
            caller_response(u, m);
    }
    sip_msg_free(m);
}
