/*
 * The proxy's test fixture (see fixture.h).
 *
 * Messages are built in fixed buffers with snprintf and read back as text:
 * the fixture's own bookkeeping allocates nothing, so under the
 * allocation-failure runner every allocation that fails is the proxy's (or
 * a parse of a message a user agent sends, which then just does not
 * arrive).
 */
#include "fixture.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "crypto/digest.h"
#include "sip/build.h"

/* --- text without allocation ---------------------------------------------- */

struct fx_buf {
    char *p;
    size_t cap, len;
    bool overflow;
};

static void fx_put(struct fx_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fx_put(struct fx_buf *b, const char *fmt, ...)
{
    if (b->overflow)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= b->cap - b->len) {
        b->overflow = true;
        return;
    }
    b->len += (size_t)n;
}

static void fx_putn(struct fx_buf *b, const char *s, size_t n)
{
    fx_put(b, "%.*s", (int)n, s);
}

/* The length of a message's head, up to and without its blank line. */
static size_t fx_head_len(const char *m, size_t len)
{
    for (size_t i = 0; i + 3 < len; i++)
        if (memcmp(m + i, "\r\n\r\n", 4) == 0)
            return i;
    return len;
}

/* Is the header line [line, line + n) one named `name`? Sets *value to
 * the trimmed value. */
static bool fx_line_is(const char *line, size_t n, const char *name, const char **value,
                       size_t *vlen)
{
    size_t nl = strlen(name);
    if (n <= nl || strncasecmp(line, name, nl) != 0)
        return false;
    size_t i = nl;
    while (i < n && (line[i] == ' ' || line[i] == '\t'))
        i++;
    if (i == n || line[i] != ':')
        return false;
    i++;
    while (i < n && (line[i] == ' ' || line[i] == '\t'))
        i++;
    size_t end = n;
    while (end > i && (line[end - 1] == ' ' || line[end - 1] == '\t'))
        end--;
    *value = line + i;
    *vlen = end - i;
    return true;
}

/* Calls fn for every header line of a message (not the start line). */
static void fx_each_line(const char *m, size_t len,
                         bool (*fn)(const char *line, size_t n, void *arg), void *arg)
{
    size_t head = fx_head_len(m, len);
    const char *p = memchr(m, '\n', head);
    while (p && (size_t)(p - m) < head) {
        const char *line = p + 1;
        const char *eol = memchr(line, '\r', head - (size_t)(line - m));
        size_t n = eol ? (size_t)(eol - line) : head - (size_t)(line - m);
        if (!fn(line, n, arg))
            return;
        p = memchr(line, '\n', head - (size_t)(line - m));
    }
}

/* --- the environment ------------------------------------------------------ */

static const struct {
    const char *name, *password;
} fx_users[] = {
    {"alice", "wonderland"},
    {"bob", "builder"},
    {"carol", "singer"},
};

const char *fx_password(const char *user)
{
    for (size_t i = 0; i < sizeof(fx_users) / sizeof(fx_users[0]); i++)
        if (strcmp(fx_users[i].name, user) == 0)
            return fx_users[i].password;
    return NULL;
}

static const struct conn_info *fx_env_conn_info(void *arg, uint64_t conn)
{
    struct fx *f = arg;
    if (conn == 0 || conn > FX_MAX_CONNS || !f->open[conn])
        return NULL;
    return &f->conns[conn];
}

static void fx_env_send(void *arg, uint64_t conn, struct strbuf *data)
{
    struct fx *f = arg;
    /* a buffer that failed on the way holds a truncated message, which a
     * real connection would not be given either */
    if (data->err || !data->len || f->nsent == FX_MAX_SENT) {
        strbuf_free(data);
        f->dropped++;
        return;
    }
    struct fx_sent *s = &f->sent[f->nsent++];
    s->conn = conn;
    s->data = strbuf_take(data, &s->len);
}

static bool fx_env_user_exists(void *arg, const char *user)
{
    (void)arg;
    return fx_password(user) != NULL;
}

static int fx_env_lookup(void *arg, const char *user, enum digest_alg alg, char ha1[DIGEST_HEX_BUF])
{
    (void)arg;
    const char *password = fx_password(user);
    if (!password)
        return -ENOENT;
    return digest_ha1(alg, user, FX_DOMAIN, password, ha1) == 0 ? 0 : -EIO;
}

static void fx_env_call_ended(void *arg, const struct proxy_call_record *rec)
{
    struct fx *f = arg;
    if (f->nrecords == FX_MAX_RECORDS)
        return;
    struct fx_record *r = &f->records[f->nrecords++];
    snprintf(r->call_id, sizeof(r->call_id), "%s", rec->call_id ? rec->call_id : "");
    snprintf(r->caller, sizeof(r->caller), "%s", rec->caller ? rec->caller : "");
    snprintf(r->callee, sizeof(r->callee), "%s", rec->callee ? rec->callee : "");
    snprintf(r->reason, sizeof(r->reason), "%s", rec->reason ? rec->reason : "");
    snprintf(r->media, sizeof(r->media), "%s", rec->media ? rec->media : "");
    snprintf(r->legs, sizeof(r->legs), "%s", rec->legs ? rec->legs : "");
    r->started = rec->started;
    r->answered = rec->answered;
    r->ended = rec->ended;
}

/* A partner's server: the connection is reserved and never opens unless
 * the test says so (fx_open_reserved). */
static uint64_t fx_env_connect(void *arg, const struct netaddr *addr, const char *sni,
                               const char *verify_host)
{
    (void)sni;
    (void)verify_host;
    struct fx *f = arg;
    if (f->nconns == FX_MAX_CONNS)
        return 0;
    uint64_t id = ++f->nconns;
    struct conn_info *ci = &f->conns[id];
    memset(ci, 0, sizeof(*ci));
    ci->id = id;
    ci->tls = true;
    ci->outgoing = true;
    ci->listener = -1;
    ci->peer = *addr;
    ci->local = f->listener;
    f->connects++;
    return id;
}

/* A TCP trunk's gateway: reserved like a partner's server, plain. */
static uint64_t fx_env_connect_tcp(void *arg, const struct netaddr *addr)
{
    struct fx *f = arg;
    uint64_t id = fx_env_connect(arg, addr, NULL, NULL);
    if (id)
        f->conns[id].tls = false;
    return id;
}

static bool fx_env_conn_on_trunk_listener(void *arg, uint64_t conn)
{
    struct fx *f = arg;
    return conn > 0 && conn <= FX_MAX_CONNS && f->open[conn] && f->trunk_listener[conn];
}

static void fx_env_disconnect(void *arg, uint64_t conn, const char *reason)
{
    (void)reason;
    struct fx *f = arg;
    f->disconnects++;
    if (conn > 0 && conn <= FX_MAX_CONNS)
        f->open[conn] = false;
}

static const struct {
    const char *user, *number;
} fx_numbers[] = {
    {"alice", FX_NUMBER_ALICE},
    {"bob", FX_NUMBER_BOB},
};

static int fx_env_number_owner(void *arg, const char *number, char *user, size_t cap)
{
    (void)arg;
    for (size_t i = 0; i < sizeof(fx_numbers) / sizeof(fx_numbers[0]); i++)
        if (strcmp(fx_numbers[i].number, number) == 0)
            return snprintf(user, cap, "%s", fx_numbers[i].user) < (int)cap ? 0 : -ENOSPC;
    return -ENOENT;
}

static int fx_env_user_number(void *arg, const char *user, char *out, size_t cap)
{
    (void)arg;
    if (cap)
        out[0] = '\0';
    for (size_t i = 0; i < sizeof(fx_numbers) / sizeof(fx_numbers[0]); i++)
        if (strcmp(fx_numbers[i].user, user) == 0)
            return snprintf(out, cap, "%s", fx_numbers[i].number) < (int)cap ? 0 : -ENOSPC;
    return fx_password(user) ? 0 : -ENOENT;
}

static int fx_env_user_outbound(void *arg, const char *user, enum dialplan_outbound *out)
{
    struct fx *f = arg;
    if (!fx_password(user))
        return -ENOENT;
    *out = f->outbound;
    return 0;
}

/* --- life ----------------------------------------------------------------- */

static int fx_init_env(struct fx *f, struct anchor *anchor, bool mediation);

int fx_init(struct fx *f)
{
    return fx_init_env(f, NULL, false);
}

void fx_engine_config(struct config *cfg, char *port_range, long long max_streams)
{
    cfg->media.anchor = "always";
    cfg->media.workers = 1;
    cfg->media.port_range = port_range;
    cfg->media.address = "127.0.0.1";
    cfg->media.public_address = "";
    cfg->media.timeout = 60;
    cfg->media.consent_timeout = 30;
    cfg->media.replay_window = 128;
    cfg->media.latch_plain = "sdp";
    cfg->media.max_streams = max_streams;
    cfg->media.max_streams_per_user = max_streams;
}

int fx_init_anchored(struct fx *f, struct anchor *anchor)
{
    return fx_init_env(f, anchor, false);
}

int fx_init_mediation(struct fx *f, struct anchor *anchor)
{
    return fx_init_env(f, anchor, true);
}

static int fx_init_env(struct fx *f, struct anchor *anchor, bool mediation)
{
    static const char *const suites[] = {FX_SUITE_80, FX_SUITE_32};

    memset(f, 0, sizeof(*f));
    clock_fake_init(&f->clock, 10000000, 1700000000);
    if (netaddr_parse(FX_SELF, &f->listener) != 0)
        return -EINVAL;
    f->timers = timer_heap_new(&f->clock.base);
    if (!f->timers)
        goto fail;
    struct registrar_config rc = {
        .domain = FX_DOMAIN,
        .min_expires = 60,
        .max_expires = 3600,
        .default_expires = 600,
        .max_per_user = 8,
        .max_total = 100,
    };
    f->registrar = registrar_new(f->timers, &rc);
    if (!f->registrar)
        goto fail;
    struct auth_config ac = {
        .realm = FX_DOMAIN,
        .algorithms = {DIGEST_ALG_SHA256, DIGEST_ALG_MD5},
        .nalgorithms = 2,
    };
    f->auth = auth_new(&f->clock.base, &ac);
    if (!f->auth)
        goto fail;
    struct proxy_env env = {
        .arg = f,
        .conn_info = fx_env_conn_info,
        .send = fx_env_send,
        .user_exists = fx_env_user_exists,
        .lookup = fx_env_lookup,
        .call_ended = fx_env_call_ended,
        .connect = fx_env_connect,
        .listeners = &f->listener,
        .nlisteners = 1,
        .anchor = anchor,
    };
    if (mediation) {
        f->outbound = DIALPLAN_OUTBOUND_ALL;
        env.number_owner = fx_env_number_owner;
        env.user_number = fx_env_user_number;
        env.user_outbound = fx_env_user_outbound;
        env.connect_tcp = fx_env_connect_tcp;
        env.conn_on_trunk_listener = fx_env_conn_on_trunk_listener;
        env.disconnect = fx_env_disconnect;
    }
    struct proxy_config pc = {
        .domain = FX_DOMAIN,
        .max_im_body = 1300,
        .media_level = "required",
        .media_suites = suites,
        .media_nsuites = 2,
        .anchor_media = anchor != NULL,
    };
    f->proxy = proxy_new(f->timers, &env, &pc, f->registrar, f->auth);
    if (!f->proxy)
        goto fail;
    return 0;
fail:
    fx_cleanup(f);
    return -ENOMEM;
}

void fx_cleanup(struct fx *f)
{
    if (f->timers)
        fx_run(f);
    proxy_free(f->proxy);
    f->proxy = NULL;
    registrar_free(f->registrar);
    f->registrar = NULL;
    auth_free(f->auth);
    f->auth = NULL;
    timer_heap_free(f->timers);
    f->timers = NULL;
    fx_clear(f);
}

void fx_run(struct fx *f)
{
    /* what runs may start timers that are due at once (the reaper) */
    for (int i = 0; i < 64 && timer_heap_run(f->timers); i++)
        ;
}

void fx_advance(struct fx *f, uint64_t ms)
{
    while (ms) {
        uint64_t step = ms < 1000 ? ms : 1000;
        clock_fake_advance(&f->clock, step);
        fx_run(f);
        ms -= step;
    }
}

/* --- connections ---------------------------------------------------------- */

uint64_t fx_open(struct fx *f)
{
    if (f->nconns == FX_MAX_CONNS)
        return 0;
    uint64_t id = ++f->nconns;
    struct conn_info *ci = &f->conns[id];
    char peer[NETADDR_STRLEN];
    memset(ci, 0, sizeof(*ci));
    snprintf(peer, sizeof(peer), "192.0.2.%u:%u", (unsigned)(10 + id), (unsigned)(50000 + id));
    ci->id = id;
    ci->tls = true;
    ci->listener = 0;
    if (netaddr_parse(peer, &ci->peer) != 0)
        return 0;
    ci->local = f->listener;
    snprintf(ci->tls_version, sizeof(ci->tls_version), "TLSv1.3");
    snprintf(ci->tls_cipher, sizeof(ci->tls_cipher), "TLS_AES_128_GCM_SHA256");
    f->open[id] = true;
    proxy_conn_opened(f->proxy, id, ci);
    return id;
}

void fx_open_reserved(struct fx *f, uint64_t conn)
{
    if (conn == 0 || conn > f->nconns || f->open[conn])
        return;
    f->open[conn] = true;
    if (f->conns[conn].tls)
        snprintf(f->conns[conn].tls_version, sizeof(f->conns[conn].tls_version), "TLSv1.3");
    proxy_conn_opened(f->proxy, conn, &f->conns[conn]);
}

void fx_fail_reserved(struct fx *f, uint64_t conn)
{
    if (conn == 0 || conn > f->nconns || f->open[conn])
        return;
    proxy_conn_closed(f->proxy, conn, "connection refused (the test)");
}

uint64_t fx_open_from(struct fx *f, const char *peer, bool tls, bool trunk_listener)
{
    if (f->nconns == FX_MAX_CONNS)
        return 0;
    uint64_t id = f->nconns + 1;
    struct conn_info *ci = &f->conns[id];
    memset(ci, 0, sizeof(*ci));
    if (netaddr_parse(peer, &ci->peer) != 0)
        return 0;
    f->nconns = id;
    ci->id = id;
    ci->tls = tls;
    ci->listener = trunk_listener ? 1 : 0;
    ci->local = f->listener;
    if (tls)
        snprintf(ci->tls_version, sizeof(ci->tls_version), "TLSv1.3");
    f->trunk_listener[id] = trunk_listener;
    f->open[id] = true;
    proxy_conn_opened(f->proxy, id, ci);
    return id;
}

void fx_close(struct fx *f, uint64_t conn)
{
    if (conn == 0 || conn > FX_MAX_CONNS || !f->open[conn])
        return;
    f->open[conn] = false;
    proxy_conn_closed(f->proxy, conn, "closed by the test");
}

static void fx_peer(const struct fx *f, uint64_t conn, char out[NETADDR_STRLEN])
{
    if (conn == 0 || conn > FX_MAX_CONNS)
        snprintf(out, NETADDR_STRLEN, "192.0.2.1:1");
    else
        netaddr_format(&f->conns[conn].peer, out);
}

void fx_contact(const struct fx *f, uint64_t conn, const char *user, char *out, size_t cap)
{
    char peer[NETADDR_STRLEN];
    fx_peer(f, conn, peer);
    snprintf(out, cap, "sip:%s@%s;transport=tls", user, peer);
}

/* --- what the proxy sent -------------------------------------------------- */

size_t fx_count_on(const struct fx *f, uint64_t conn)
{
    size_t n = 0;
    for (size_t i = 0; i < f->nsent; i++)
        if (f->sent[i].conn == conn)
            n++;
    return n;
}

int fx_nth_on(const struct fx *f, uint64_t conn, size_t n)
{
    for (size_t i = 0; i < f->nsent; i++)
        if (f->sent[i].conn == conn && n-- == 0)
            return (int)i;
    return -1;
}

int fx_last_on(const struct fx *f, uint64_t conn)
{
    for (size_t i = f->nsent; i-- > 0;)
        if (f->sent[i].conn == conn)
            return (int)i;
    return -1;
}

static const struct fx_sent *fx_get(const struct fx *f, int i)
{
    return i >= 0 && (size_t)i < f->nsent ? &f->sent[i] : NULL;
}

int fx_sent_status(const struct fx *f, int i)
{
    const struct fx_sent *s = fx_get(f, i);
    if (!s || s->len < 12 || memcmp(s->data, "SIP/2.0 ", 8) != 0)
        return 0;
    return atoi(s->data + 8);
}

bool fx_sent_is(const struct fx *f, int i, const char *method)
{
    const struct fx_sent *s = fx_get(f, i);
    size_t n = strlen(method);
    return s && s->len > n && memcmp(s->data, method, n) == 0 && s->data[n] == ' ';
}

struct fx_find {
    const char *name;
    char *out;
    size_t cap;
    int rc;
    size_t count;
};

static bool fx_find_line(const char *line, size_t n, void *arg)
{
    struct fx_find *q = arg;
    const char *v;
    size_t vl;
    if (!fx_line_is(line, n, q->name, &v, &vl))
        return true;
    q->count++;
    if (!q->out)
        return true;
    if (vl >= q->cap) {
        q->rc = -ENOSPC;
        return false;
    }
    memcpy(q->out, v, vl);
    q->out[vl] = '\0';
    q->rc = 0;
    return false;
}

int fx_sent_header(const struct fx *f, int i, const char *name, char *out, size_t cap)
{
    const struct fx_sent *s = fx_get(f, i);
    struct fx_find q = {.name = name, .out = out, .cap = cap, .rc = -ENOENT};
    if (cap)
        out[0] = '\0';
    if (!s || !cap)
        return -ENOENT;
    fx_each_line(s->data, s->len, fx_find_line, &q);
    return q.rc;
}

size_t fx_sent_header_count(const struct fx *f, int i, const char *name)
{
    const struct fx_sent *s = fx_get(f, i);
    struct fx_find q = {.name = name};
    if (!s)
        return 0;
    fx_each_line(s->data, s->len, fx_find_line, &q);
    return q.count;
}

struct sip_msg *fx_sent_parse(const struct fx *f, int i)
{
    const struct fx_sent *s = fx_get(f, i);
    struct sip_msg *m = NULL;
    if (!s || sip_msg_parse(s->data, s->len, &m, NULL) != 0)
        return NULL;
    return m;
}

void fx_clear(struct fx *f)
{
    for (size_t i = 0; i < f->nsent; i++)
        free(f->sent[i].data);
    f->nsent = 0;
}

void fx_tag_of(const char *value, char *out, size_t cap)
{
    /* the tag is a header parameter: after the closing '>' when there is one */
    const char *gt = strrchr(value, '>');
    const char *t = strstr(gt ? gt : value, ";tag=");
    size_t n = 0;
    if (t) {
        t += 5;
        n = strcspn(t, ";, \t");
    }
    snprintf(out, cap, "%.*s", (int)n, t ? t : "");
}

/* --- user agents ------------------------------------------------------------ */

int fx_build_request(struct fx *f, uint64_t conn, const struct fx_req *r, char *out, size_t cap)
{
    struct fx_buf b = {out, cap, 0, false};
    char peer[NETADDR_STRLEN], branch[64], contact[160];

    fx_peer(f, conn, peer);
    if (r->branch)
        snprintf(branch, sizeof(branch), "%s", r->branch);
    else
        snprintf(branch, sizeof(branch), "z9hG4bKfx%u", ++f->seq);
    snprintf(f->last_branch, sizeof(f->last_branch), "%s", branch);
    if (r->ruri)
        fx_put(&b, "%s %s SIP/2.0\r\n", r->method, r->ruri);
    else
        fx_put(&b, "%s sip:%s@" FX_DOMAIN " SIP/2.0\r\n", r->method, r->to);
    fx_put(&b, "Via: SIP/2.0/TLS %s;branch=%s\r\n", peer, branch);
    if (r->route)
        fx_put(&b, "Route: %s\r\n", r->route);
    fx_put(&b, "Max-Forwards: 70\r\n");
    if (r->from_tag)
        fx_put(&b, "From: <sip:%s@" FX_DOMAIN ">;tag=%s\r\n", r->from, r->from_tag);
    else
        fx_put(&b, "From: <sip:%s@" FX_DOMAIN ">;tag=t-%s\r\n", r->from, r->from);
    if (r->to_tag)
        fx_put(&b, "To: <sip:%s@" FX_DOMAIN ">;tag=%s\r\n", r->to, r->to_tag);
    else
        fx_put(&b, "To: <sip:%s@" FX_DOMAIN ">\r\n", r->to);
    fx_put(&b, "Call-ID: %s\r\n", r->call_id);
    fx_put(&b, "CSeq: %u %s\r\n", r->cseq, r->method);
    if (r->contact) {
        fx_contact(f, conn, r->contact, contact, sizeof(contact));
        fx_put(&b, "Contact: <%s>\r\n", contact);
    }
    if (r->headers)
        fx_put(&b, "%s", r->headers);
    if (r->sdp)
        fx_put(&b, "Content-Type: application/sdp\r\n");
    fx_put(&b, "Content-Length: %zu\r\n\r\n%s", r->sdp ? strlen(r->sdp) : 0, r->sdp ? r->sdp : "");
    return b.overflow ? -ENOSPC : 0;
}

int fx_send_text(struct fx *f, uint64_t conn, const char *text, size_t len)
{
    struct sip_msg *m = NULL;
    int rc = sip_msg_parse(text, len, &m, NULL);
    if (rc)
        return rc;
    proxy_on_message(f->proxy, conn, m);
    return 0;
}

int fx_request(struct fx *f, uint64_t conn, const struct fx_req *r)
{
    char text[FX_MSG_MAX];
    int rc = fx_build_request(f, conn, r, text, sizeof(text));
    return rc ? rc : fx_send_text(f, conn, text, strlen(text));
}

struct fx_reply {
    struct fx_buf *b;
    const char *to_tag;
};

static bool fx_copy_line(const char *line, size_t n, void *arg)
{
    static const char *const copied[] = {"Via", "Record-Route", "From", "Call-ID", "CSeq"};
    struct fx_reply *q = arg;
    const char *v;
    size_t vl;
    for (size_t k = 0; k < sizeof(copied) / sizeof(copied[0]); k++) {
        if (fx_line_is(line, n, copied[k], &v, &vl)) {
            fx_putn(q->b, line, n);
            fx_put(q->b, "\r\n");
            return true;
        }
    }
    if (fx_line_is(line, n, "To", &v, &vl)) {
        char value[512], tag[128];
        snprintf(value, sizeof(value), "%.*s", (int)vl, v);
        fx_tag_of(value, tag, sizeof(tag));
        if (!tag[0] && q->to_tag)
            fx_put(q->b, "To: %s;tag=%s\r\n", value, q->to_tag);
        else
            fx_put(q->b, "To: %s\r\n", value);
    }
    return true;
}

int fx_respond(struct fx *f, uint64_t conn, int i, int status, const char *to_tag,
               const char *headers, const char *sdp)
{
    const struct fx_sent *s = fx_get(f, i);
    char text[FX_MSG_MAX];
    struct fx_buf b = {text, sizeof(text), 0, false};
    if (!s || fx_sent_status(f, i) != 0)
        return -EINVAL;
    fx_put(&b, "SIP/2.0 %d %s\r\n", status, sip_reason_phrase(status));
    struct fx_reply q = {&b, status > 100 ? to_tag : NULL};
    fx_each_line(s->data, s->len, fx_copy_line, &q);
    if (status > 100 && status < 300) {
        char to[256], user[64] = "", contact[160];
        struct sip_addr a;
        if (fx_sent_header(f, i, "To", to, sizeof(to)) == 0 &&
            sip_addr_parse(strview_cstr(to), &a) == 0)
            strview_copy(a.uri.user, user, sizeof(user));
        fx_contact(f, conn, user, contact, sizeof(contact));
        fx_put(&b, "Contact: <%s>\r\n", contact);
    }
    if (headers)
        fx_put(&b, "%s", headers);
    if (sdp)
        fx_put(&b, "Content-Type: application/sdp\r\n");
    fx_put(&b, "Content-Length: %zu\r\n\r\n%s", sdp ? strlen(sdp) : 0, sdp ? sdp : "");
    if (b.overflow)
        return -ENOSPC;
    return fx_send_text(f, conn, text, b.len);
}

/* The value of a parameter of a challenge (name="value" or name=value). */
static void fx_param(const char *challenge, const char *name, char *out, size_t cap)
{
    char want[40];
    snprintf(want, sizeof(want), "%s=", name);
    out[0] = '\0';
    for (const char *p = challenge; (p = strstr(p, want)) != NULL; p++) {
        if (p != challenge && p[-1] != ' ' && p[-1] != ',')
            continue; /* "nonce=" inside "cnonce=" */
        p += strlen(want);
        size_t n;
        if (*p == '"') {
            p++;
            n = strcspn(p, "\"");
        } else {
            n = strcspn(p, ", ");
        }
        snprintf(out, cap, "%.*s", (int)n, p);
        return;
    }
}

int fx_credentials(const char *hdr_name, const char *challenge, const char *user,
                   const char *password, const char *method, const char *uri, char *out, size_t cap)
{
    char nonce[256], alg_name[32], ha1[DIGEST_HEX_BUF], resp[DIGEST_HEX_BUF];
    enum digest_alg alg = DIGEST_ALG_MD5;
    static const char nc[] = "00000001", cnonce[] = "c0ffee42";

    fx_param(challenge, "nonce", nonce, sizeof(nonce));
    fx_param(challenge, "algorithm", alg_name, sizeof(alg_name));
    if (!nonce[0] || (alg_name[0] && digest_alg_parse(strview_cstr(alg_name), &alg) != 0))
        return -EINVAL;
    int rc = digest_ha1(alg, user, FX_DOMAIN, password, ha1);
    if (rc == 0)
        rc = digest_response(alg, ha1, strview_cstr(nonce), strview_cstr(nc), strview_cstr(cnonce),
                             strview_cstr("auth"), strview_cstr(method), strview_cstr(uri), resp);
    if (rc)
        return rc;
    int n = snprintf(out, cap,
                     "%s: Digest username=\"%s\", realm=\"" FX_DOMAIN "\", nonce=\"%s\", "
                     "uri=\"%s\", response=\"%s\", algorithm=%s, qop=auth, nc=%s, "
                     "cnonce=\"%s\"\r\n",
                     hdr_name, user, nonce, uri, resp, digest_alg_name(alg), nc, cnonce);
    return n > 0 && (size_t)n < cap ? 0 : -ENOSPC;
}

int fx_register(struct fx *f, uint64_t conn, const char *user, const char *password)
{
    char call_id[64], challenge[512], headers[1024];
    snprintf(call_id, sizeof(call_id), "reg-%s-%llu", user, (unsigned long long)conn);
    struct fx_req r = {
        .method = "REGISTER",
        .ruri = "sip:" FX_DOMAIN,
        .from = user,
        .to = user,
        .call_id = call_id,
        .cseq = 1,
        .contact = user,
        .headers = "Expires: 600\r\n",
    };
    size_t before = f->nsent;
    int rc = fx_request(f, conn, &r);
    if (rc)
        return rc;
    int i = fx_last_on(f, conn);
    if (i < (int)before || fx_sent_status(f, i) != 401)
        return -EPROTO;
    if (fx_sent_header(f, i, "WWW-Authenticate", challenge, sizeof(challenge)) != 0)
        return -EPROTO;
    int n = snprintf(headers, sizeof(headers), "Expires: 600\r\n");
    rc = fx_credentials("Authorization", challenge, user, password, "REGISTER", r.ruri, headers + n,
                        sizeof(headers) - (size_t)n);
    if (rc)
        return rc;
    r.cseq = 2;
    r.headers = headers;
    before = f->nsent;
    rc = fx_request(f, conn, &r);
    if (rc)
        return rc;
    i = fx_last_on(f, conn);
    if (i < (int)before)
        return -EPROTO;
    return fx_sent_status(f, i);
}

int fx_invite(struct fx *f, uint64_t conn, const struct fx_req *r, const char *password)
{
    char challenge[512], to[256], tag[128], headers[2048], ruri[256];
    size_t before = f->nsent;
    int rc = fx_request(f, conn, r);
    if (rc)
        return rc;
    char first_branch[64];
    snprintf(first_branch, sizeof(first_branch), "%s", f->last_branch);
    int i = fx_last_on(f, conn);
    if (i < (int)before)
        return -EPROTO;
    if (fx_sent_status(f, i) != 407)
        return fx_sent_status(f, i) ? fx_sent_status(f, i) : -EPROTO;
    if (fx_sent_header(f, i, "Proxy-Authenticate", challenge, sizeof(challenge)) != 0 ||
        fx_sent_header(f, i, "To", to, sizeof(to)) != 0)
        return -EPROTO;

    /* the 407's ACK: the same branch and CSeq, the 407's To tag */
    fx_tag_of(to, tag, sizeof(tag));
    struct fx_req ack = *r;
    ack.method = "ACK";
    ack.branch = first_branch;
    ack.to_tag = tag;
    ack.contact = NULL;
    ack.headers = NULL;
    ack.sdp = NULL;
    rc = fx_request(f, conn, &ack);
    if (rc)
        return rc;

    if (r->ruri)
        snprintf(ruri, sizeof(ruri), "%s", r->ruri);
    else
        snprintf(ruri, sizeof(ruri), "sip:%s@" FX_DOMAIN, r->to);
    int n = snprintf(headers, sizeof(headers), "%s", r->headers ? r->headers : "");
    rc = fx_credentials("Proxy-Authorization", challenge, r->from, password, r->method, ruri,
                        headers + n, sizeof(headers) - (size_t)n);
    if (rc)
        return rc;
    struct fx_req again = *r;
    again.cseq = r->cseq + 1;
    again.branch = NULL;
    again.headers = headers;
    return fx_request(f, conn, &again);
}
