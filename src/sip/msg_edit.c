/*
 * The message's storage (one allocation plus arena chunks), edits and
 * printing.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sip/lex.h"
#include "sip/msg.h"
#include "sip/msg_priv.h"

#define ARENA_ALIGN    8
#define ARENA_MIN_NEXT 1024

struct msg_block {
    struct sip_msg msg;
    struct sip_msg_priv priv;
    struct sip_arena_chunk chunk;
};

static size_t align_up(size_t n)
{
    return (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
}

static char *chunk_data(struct sip_arena_chunk *c)
{
    return (char *)(c + 1);
}

struct sip_msg *sip_msg_new(const char *data, size_t len)
{
    /* Room for the header records of a typical message and a few edits
     * (a Via, a Record-Route), so most messages never allocate again. */
    size_t est = len / 40;
    if (est > SIP_MAX_HEADERS)
        est = SIP_MAX_HEADERS;
    size_t cap = align_up((est + 16) * sizeof(struct sip_hdr) + 512);
    if (len > SIZE_MAX - sizeof(struct msg_block) - cap)
        return NULL;
    struct msg_block *b = malloc(sizeof(*b) + cap + len);
    if (!b)
        return NULL;
    memset(b, 0, sizeof(*b));
    b->chunk.cap = cap;
    b->chunk.embedded = true;
    b->priv.chunks = &b->chunk;
    b->msg.arena_ = &b->priv;
    b->msg.buf_ = chunk_data(&b->chunk) + cap;
    b->msg.buf_len_ = len;
    memcpy(b->msg.buf_, data, len);
    return &b->msg;
}

void sip_msg_free(struct sip_msg *msg)
{
    if (!msg)
        return;
    struct sip_arena_chunk *c = sip_msg_priv(msg)->chunks;
    while (c) {
        struct sip_arena_chunk *next = c->next;
        if (!c->embedded)
            free(c);
        c = next;
    }
    /* The struct is the first member of its block. */
    free(msg);
}

void *sip_msg_alloc(struct sip_msg *msg, size_t n)
{
    struct sip_msg_priv *priv = sip_msg_priv(msg);
    struct sip_arena_chunk *c = priv->chunks;

    if (n > SIZE_MAX / 4)
        return NULL;
    n = align_up(n ? n : 1);
    if (c->cap - c->used < n) {
        size_t cap = c->cap * 2;
        if (cap < ARENA_MIN_NEXT)
            cap = ARENA_MIN_NEXT;
        if (cap < n)
            cap = n;
        struct sip_arena_chunk *nc = malloc(sizeof(*nc) + cap);
        if (!nc)
            return NULL;
        nc->next = c;
        nc->cap = cap;
        nc->used = 0;
        nc->embedded = false;
        priv->chunks = nc;
        c = nc;
    }
    void *p = chunk_data(c) + c->used;
    c->used += n;
    return p;
}

/* Whether [p, p+n) lies inside [base, base+size); integer arithmetic, as
 * pointers into different objects do not compare in C. */
static bool in_range(uintptr_t p, size_t n, uintptr_t base, size_t size)
{
    return p >= base && n <= size && p - base <= size - n;
}

bool sip_msg_owns(const struct sip_msg *msg, const void *p, size_t n)
{
    uintptr_t q = (uintptr_t)p;

    if (in_range(q, n, (uintptr_t)msg->buf_, msg->buf_len_))
        return true;
    for (struct sip_arena_chunk *c = sip_msg_priv(msg)->chunks; c; c = c->next)
        if (in_range(q, n, (uintptr_t)chunk_data(c), c->used))
            return true;
    return false;
}

struct strview sip_msg_strdup(struct sip_msg *msg, const char *data, size_t n)
{
    char *p = sip_msg_alloc(msg, n + 1);
    if (!p)
        return STRVIEW_EMPTY;
    if (n)
        memcpy(p, data, n);
    p[n] = '\0';
    return strview_make(p, n);
}

struct strview sip_msg_printf(struct sip_msg *msg, const char *fmt, ...)
{
    va_list ap;
    char small[128];

    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return STRVIEW_EMPTY;
    if ((size_t)n < sizeof(small))
        return sip_msg_strdup(msg, small, (size_t)n);
    char *p = sip_msg_alloc(msg, (size_t)n + 1);
    if (!p)
        return STRVIEW_EMPTY;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return strview_make(p, (size_t)n);
}

int sip_msg_media_type(struct sip_msg *msg, struct strview v, struct strview *type)
{
    struct strview t, sub, params;

    if (sip_lex_media_type(v, &t, &sub, &params))
        return -EINVAL;
    if (sub.p == t.p + t.n + 1) {
        *type = strview_make(t.p, t.n + 1 + sub.n);
        return 0;
    }
    /* "text / plain": keep the canonical spelling. */
    *type = sip_msg_printf(msg, "%.*s/%.*s", (int)t.n, t.p, (int)sub.n, sub.p);
    return type->p ? 0 : -ENOMEM;
}

/* --- editing --------------------------------------------------------------- */

/* A value to store in the message: trimmed, never able to end the line,
 * and copied unless the message already owns it. */
static int own_value(struct sip_msg *msg, struct strview in, struct strview *out)
{
    struct strview v = strview_trim(in);

    if (v.n == 0) {
        *out = strview_make("", 0);
        return 0;
    }
    if (memchr(v.p, '\r', v.n) || memchr(v.p, '\n', v.n))
        return -EINVAL;
    if (sip_msg_owns(msg, v.p, v.n)) {
        *out = v;
        return 0;
    }
    *out = sip_msg_strdup(msg, v.p, v.n);
    return out->p ? 0 : -ENOMEM;
}

static struct sip_hdr *new_hdr(struct sip_msg *msg, enum sip_hdr_id id, const char *name,
                               struct strview value, int *rc)
{
    struct strview n, v;

    if (name) {
        n = strview_cstr(name);
        if (!sip_lex_is_token(n)) {
            *rc = -EINVAL;
            return NULL;
        }
        if (id == SIP_HDR_OTHER)
            id = sip_hdr_id_from_name(n);
        n = sip_msg_strdup(msg, n.p, n.n);
        if (!n.p) {
            *rc = -ENOMEM;
            return NULL;
        }
    } else {
        if ((unsigned)id >= SIP_HDR_COUNT_ || id == SIP_HDR_OTHER) {
            *rc = -EINVAL;
            return NULL;
        }
        n = strview_cstr(sip_hdr_name(id));
    }
    if ((*rc = own_value(msg, value, &v)))
        return NULL;
    struct sip_hdr *h = sip_msg_alloc(msg, sizeof(*h));
    if (!h) {
        *rc = -ENOMEM;
        return NULL;
    }
    h->id = id;
    h->name = n;
    h->value = v;
    h->next = NULL;
    h->removed = false;
    return h;
}

int sip_msg_hdr_prepend(struct sip_msg *msg, enum sip_hdr_id id, const char *name,
                        struct strview value)
{
    int rc;
    struct sip_hdr *h = new_hdr(msg, id, name, value, &rc);

    if (!h)
        return rc;
    h->next = msg->hdrs;
    msg->hdrs = h;
    if (!sip_msg_priv(msg)->tail)
        sip_msg_priv(msg)->tail = h;
    return 0;
}

int sip_msg_hdr_append(struct sip_msg *msg, enum sip_hdr_id id, const char *name,
                       struct strview value)
{
    int rc;
    struct sip_hdr *h = new_hdr(msg, id, name, value, &rc);
    struct sip_msg_priv *priv = sip_msg_priv(msg);

    if (!h)
        return rc;
    if (priv->tail)
        priv->tail->next = h;
    else
        msg->hdrs = h;
    priv->tail = h;
    return 0;
}

void sip_msg_hdr_remove(struct sip_msg *msg, struct sip_hdr *h)
{
    (void)msg;
    if (h)
        h->removed = true;
}

size_t sip_msg_hdr_remove_all(struct sip_msg *msg, enum sip_hdr_id id)
{
    size_t n = 0;
    for (struct sip_hdr *h = sip_msg_hdr_first(msg, id); h; h = sip_msg_hdr_next(h, id)) {
        h->removed = true;
        n++;
    }
    return n;
}

int sip_msg_hdr_remove_first_value(struct sip_msg *msg, enum sip_hdr_id id)
{
    for (struct sip_hdr *h = sip_msg_hdr_first(msg, id); h; h = sip_msg_hdr_next(h, id)) {
        size_t pos = 0;
        struct strview elem;
        bool found = false;

        while (sip_lex_split_next(h->value, &pos, &elem)) {
            if (elem.n) {
                found = true;
                break;
            }
        }
        if (!found) {
            /* Nothing but empty elements: the header was no value at all. */
            h->removed = true;
            continue;
        }
        /* The remaining elements stay where they are in the value. */
        while (pos < h->value.n && (h->value.p[pos] == ',' || sip_lex_is_wsp(h->value.p[pos])))
            pos++;
        if (pos >= h->value.n)
            h->removed = true;
        else
            h->value = strview_make(h->value.p + pos, h->value.n - pos);
        return 0;
    }
    return -ENOENT;
}

int sip_msg_hdr_set_value(struct sip_msg *msg, struct sip_hdr *h, struct strview value)
{
    struct strview v;
    int rc = own_value(msg, value, &v);

    if (rc)
        return rc;
    h->value = v;
    return 0;
}

int sip_msg_set_request_uri(struct sip_msg *msg, struct strview uri)
{
    struct strview v;
    struct sip_uri parsed;
    int rc;

    if (!msg->is_request)
        return -EINVAL;
    if ((rc = own_value(msg, uri, &v)))
        return rc;
    if (sip_uri_parse(v, &parsed) || parsed.headers.n)
        return -EINVAL;
    msg->request_uri = v;
    msg->ruri = parsed;
    return 0;
}

int sip_msg_set_body(struct sip_msg *msg, struct strview content_type, struct strview body)
{
    struct strview ct, b = body, type = strview_make("", 0);
    int rc;

    if ((rc = own_value(msg, content_type, &ct)))
        return rc;
    if (ct.n && (rc = sip_msg_media_type(msg, ct, &type)))
        return rc;
    if (b.n && !sip_msg_owns(msg, b.p, b.n)) {
        b = sip_msg_strdup(msg, body.p, body.n);
        if (!b.p)
            return -ENOMEM;
    }
    struct sip_hdr *h = sip_msg_hdr_first(msg, SIP_HDR_CONTENT_TYPE);
    if (ct.n == 0) {
        sip_msg_hdr_remove_all(msg, SIP_HDR_CONTENT_TYPE);
    } else if (h) {
        h->value = ct;
        for (struct sip_hdr *o = sip_msg_hdr_next(h, SIP_HDR_CONTENT_TYPE); o;
             o = sip_msg_hdr_next(o, SIP_HDR_CONTENT_TYPE))
            o->removed = true;
    } else if ((rc = sip_msg_hdr_append(msg, SIP_HDR_CONTENT_TYPE, NULL, ct))) {
        return rc;
    }
    msg->content_type = type;
    msg->body = b.n ? b : strview_make("", 0);
    return 0;
}

int sip_msg_set_max_forwards(struct sip_msg *msg, int value)
{
    if (value < 0 || value > 255)
        return -EINVAL;
    struct strview v = sip_msg_printf(msg, "%d", value);
    if (!v.p)
        return -ENOMEM;
    struct sip_hdr *h = sip_msg_hdr_first(msg, SIP_HDR_MAX_FORWARDS);
    if (h) {
        h->value = v;
        for (struct sip_hdr *o = sip_msg_hdr_next(h, SIP_HDR_MAX_FORWARDS); o;
             o = sip_msg_hdr_next(o, SIP_HDR_MAX_FORWARDS))
            o->removed = true;
    } else {
        int rc = sip_msg_hdr_append(msg, SIP_HDR_MAX_FORWARDS, NULL, v);
        if (rc)
            return rc;
    }
    msg->max_forwards = value;
    return 0;
}

/* --- printing -------------------------------------------------------------- */

int sip_msg_print(const struct sip_msg *msg, struct strbuf *out)
{
    bool have_cl = false;

    if (msg->is_request) {
        strbuf_putview(out, msg->method_name);
        strbuf_putc(out, ' ');
        strbuf_putview(out, msg->request_uri);
        strbuf_puts(out, " SIP/2.0\r\n");
    } else {
        strbuf_printf(out, "SIP/2.0 %03d ", msg->status);
        strbuf_putview(out, msg->reason);
        strbuf_puts(out, "\r\n");
    }
    for (const struct sip_hdr *h = msg->hdrs; h; h = h->next) {
        if (h->removed)
            continue;
        if (h->id == SIP_HDR_CONTENT_LENGTH) {
            /* The body decides; repeats of the header print once. */
            if (have_cl)
                continue;
            have_cl = true;
            strbuf_putview(out, h->name);
            strbuf_printf(out, ": %zu\r\n", msg->body.n);
            continue;
        }
        strbuf_putview(out, h->name);
        strbuf_putc(out, ':');
        if (h->value.n) {
            strbuf_putc(out, ' ');
            strbuf_putview(out, h->value);
        }
        strbuf_puts(out, "\r\n");
    }
    if (!have_cl)
        strbuf_printf(out, "Content-Length: %zu\r\n", msg->body.n);
    strbuf_puts(out, "\r\n");
    strbuf_putview(out, msg->body);
    return out->err;
}
