/*
 * web_book — the address book as the store holds it: every user of the
 * domain and every distribution group, one card each, read again only
 * when something was written to the store since (PRAGMA data_version), so
 * a client that asks whether anything changed costs no store read.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "crypto/mac.h"
#include "web/web_priv.h"

void web_book_uuid(const char *uid, char out[37])
{
    /* 32 hex digits as 8-4-4-4-12 */
    static const int cuts[] = {8, 12, 16, 20};
    size_t o = 0, ci = 0;
    for (size_t i = 0; uid[i] && i < 32; i++) {
        if (ci < 4 && (int)i == cuts[ci]) {
            out[o++] = '-';
            ci++;
        }
        out[o++] = uid[i];
    }
    out[o] = '\0';
}

/* What a card says, hashed: its ETag changes exactly when it does. */
static void card_etag(struct web_card *c)
{
    struct strbuf b = STRBUF_INIT;
    strbuf_printf(&b, "%d\n%s\n%s\n%s\n%s\n%s\n", (int)c->kind, c->name, c->uuid, c->display_name,
                  c->email, c->number);
    for (size_t i = 0; i < c->nmembers; i++)
        strbuf_printf(&b, "%s\n", c->members[i]);
    unsigned char mac[MAC_MAX_SIZE];
    size_t maclen = 0;
    memset(mac, 0, sizeof(mac));
    if (!b.err)
        mac_hmac(MAC_HMAC_SHA256, "parley-card", 11, b.p, b.len, mac, &maclen);
    strbuf_free(&b);
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    c->etag[o++] = '"';
    for (size_t i = 0; i < 10; i++) {
        c->etag[o++] = hex[mac[i] >> 4];
        c->etag[o++] = hex[mac[i] & 15];
    }
    c->etag[o++] = '"';
    c->etag[o] = '\0';
}

struct book_build {
    struct web_book *b;
    size_t cap;
    struct store *st;
};

static struct web_card *book_push(struct book_build *bb)
{
    if (bb->b->n == bb->cap) {
        size_t cap = bb->cap ? bb->cap * 2 : 64;
        struct web_card *v = realloc(bb->b->cards, cap * sizeof(*v));
        if (!v)
            return NULL;
        bb->b->cards = v;
        bb->cap = cap;
    }
    struct web_card *c = &bb->b->cards[bb->b->n++];
    memset(c, 0, sizeof(*c));
    return c;
}

static int book_add_user(const struct store_user *u, void *arg)
{
    struct web_card *c = book_push(arg);
    if (!c)
        return -ENOMEM;
    c->kind = STORE_CARD_USER;
    snprintf(c->name, sizeof(c->name), "%s", u->name);
    web_book_uuid(u->uid, c->uuid);
    snprintf(c->display_name, sizeof(c->display_name), "%s", u->display_name);
    snprintf(c->email, sizeof(c->email), "%s", u->email);
    snprintf(c->number, sizeof(c->number), "%s", u->number);
    return 0;
}

static int book_add_group(const struct store_group *g, void *arg)
{
    struct web_card *c = book_push(arg);
    if (!c)
        return -ENOMEM;
    c->kind = STORE_CARD_GROUP;
    snprintf(c->name, sizeof(c->name), "%s", g->name);
    web_book_uuid(g->uid, c->uuid);
    snprintf(c->display_name, sizeof(c->display_name), "%s", g->display_name);
    return 0;
}

static int card_cmp(const void *a, const void *b)
{
    return strcmp(((const struct web_card *)a)->uuid, ((const struct web_card *)b)->uuid);
}

struct member_walk {
    struct web_book *b;
    struct web_card *group;
    size_t cap;
};

static const struct web_card *book_find_name(const struct web_book *b, enum store_card_kind kind,
                                             const char *name)
{
    for (size_t i = 0; i < b->n; i++)
        if (b->cards[i].kind == kind && strcmp(b->cards[i].name, name) == 0)
            return &b->cards[i];
    return NULL;
}

static int book_add_member(enum store_member_kind kind, const char *name, void *arg)
{
    struct member_walk *mw = arg;
    const struct web_card *m = book_find_name(
        mw->b, kind == STORE_MEMBER_GROUP ? STORE_CARD_GROUP : STORE_CARD_USER, name);
    if (!m)
        return 0; /* written while we read: the next rebuild has it */
    struct web_card *g = mw->group;
    if (g->nmembers == mw->cap) {
        size_t cap = mw->cap ? mw->cap * 2 : 8;
        char **v = realloc(g->members, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        g->members = v;
        mw->cap = cap;
    }
    g->members[g->nmembers] = strdup(m->uuid);
    if (!g->members[g->nmembers])
        return -ENOMEM;
    g->nmembers++;
    return 0;
}

static struct web_book *book_read(struct store *st)
{
    struct web_book *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    struct book_build bb = {b, 0, st};
    int64_t seq = 0;
    /* the sequence first: a change made while we read is then newer than
     * the token we hand out, and the client gets it again next time */
    int rc = store_card_seq(st, &seq);
    if (rc == 0)
        rc = store_user_list(st, book_add_user, &bb);
    if (rc == 0)
        rc = store_group_list(st, book_add_group, &bb);
    size_t nusers_groups = b->n;
    for (size_t i = 0; rc == 0 && i < nusers_groups; i++) {
        if (b->cards[i].kind != STORE_CARD_GROUP)
            continue;
        struct member_walk mw = {b, &b->cards[i], 0};
        rc = store_group_members(st, b->cards[i].name, book_add_member, &mw);
    }
    if (rc != 0) {
        log_error("http.store_failed", "what", "address book", "reason", store_errmsg(st));
        web_book_free(b);
        return NULL;
    }
    for (size_t i = 0; i < b->n; i++)
        card_etag(&b->cards[i]);
    if (b->n)
        qsort(b->cards, b->n, sizeof(*b->cards), card_cmp);
    b->seq = seq;
    return b;
}

struct web_book *web_book_get(struct web *w)
{
    if (w->book && w->book->seq >= 0)
        return w->book;
    struct web_book *b = book_read(w->env.store);
    if (!b)
        return NULL;
    web_book_free(w->book);
    w->book = b;
    return b;
}

void web_book_free(struct web_book *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++) {
        for (size_t j = 0; j < b->cards[i].nmembers; j++)
            free(b->cards[i].members[j]);
        free(b->cards[i].members);
    }
    free(b->cards);
    free(b);
}

const struct web_card *web_book_find(const struct web_book *b, const char *uuid)
{
    struct web_card key;
    snprintf(key.uuid, sizeof(key.uuid), "%s", uuid);
    if (!b->n)
        return NULL;
    return bsearch(&key, b->cards, b->n, sizeof(*b->cards), card_cmp);
}
