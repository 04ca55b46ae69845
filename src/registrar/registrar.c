#include "registrar/registrar.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hmap.h"
#include "core/log.h"

struct reg_user;

struct reg_binding {
    struct binding pub;
    struct reg_binding *prev, *next;
    struct reg_user *user;
    struct registrar *r;
    struct timer timer;
    char *call_id;
    uint32_t cseq;
    char *contact;
    char *instance;
    char *user_agent;
};

struct reg_user {
    struct hmap_node node;
    char *name;
    struct reg_binding *first; /* most recent first */
    size_t count;
};

struct registrar {
    struct timer_heap *timers;
    struct registrar_config cfg;
    char *domain;
    struct hmap users;
    size_t total;
    registrar_removed_fn on_removed;
    void *on_removed_arg;
    registrar_added_fn on_added;
    void *on_added_arg;
};

struct registrar *registrar_new(struct timer_heap *timers, const struct registrar_config *cfg)
{
    struct registrar *r = calloc(1, sizeof(*r));
    if (!r || hmap_init(&r->users, 256) != 0) {
        free(r);
        return NULL;
    }
    r->timers = timers;
    registrar_set_config(r, cfg);
    if (!r->domain) {
        registrar_free(r);
        return NULL;
    }
    return r;
}

void registrar_set_config(struct registrar *r, const struct registrar_config *cfg)
{
    char *d = strdup(cfg->domain);
    if (!d)
        return;
    free(r->domain);
    r->domain = d;
    r->cfg = *cfg;
    r->cfg.domain = r->domain;
}

void registrar_on_removed(struct registrar *r, registrar_removed_fn fn, void *arg)
{
    r->on_removed = fn;
    r->on_removed_arg = arg;
}

void registrar_on_added(struct registrar *r, registrar_added_fn fn, void *arg)
{
    r->on_added = fn;
    r->on_added_arg = arg;
}

static struct reg_user *reg_user_find(struct registrar *r, const char *name)
{
    uint64_t h = hash_bytes(name, strlen(name));
    for (struct hmap_node *n = hmap_first(&r->users, h); n; n = hmap_next(n, h)) {
        struct reg_user *u = container_of(n, struct reg_user, node);
        if (strcmp(u->name, name) == 0)
            return u;
    }
    return NULL;
}

static struct reg_user *reg_user_get(struct registrar *r, const char *name)
{
    struct reg_user *u = reg_user_find(r, name);
    if (u)
        return u;
    u = calloc(1, sizeof(*u));
    if (!u || !(u->name = strdup(name))) {
        free(u);
        return NULL;
    }
    hmap_insert(&r->users, &u->node, hash_bytes(name, strlen(name)));
    return u;
}

static void reg_user_drop_if_empty(struct registrar *r, struct reg_user *u)
{
    if (u->first)
        return;
    hmap_remove(&r->users, &u->node);
    free(u->name);
    free(u);
}

static void reg_binding_free(struct reg_binding *b)
{
    free(b->call_id);
    free(b->contact);
    free(b->instance);
    free(b->user_agent);
    free(b);
}

static void reg_binding_remove(struct reg_binding *b, const char *reason)
{
    struct registrar *r = b->r;
    struct reg_user *u = b->user;
    char src[NETADDR_STRLEN];

    timer_stop(r->timers, &b->timer);
    if (b->prev)
        b->prev->next = b->next;
    else
        u->first = b->next;
    if (b->next)
        b->next->prev = b->prev;
    u->count--;
    r->total--;
    log_info("registrar.unbound", "user", u->name, "contact", b->contact, "source",
             netaddr_format(&b->pub.source, src), "reason", reason);
    if (r->on_removed)
        r->on_removed(r->on_removed_arg, &b->pub, reason);
    reg_binding_free(b);
    reg_user_drop_if_empty(r, u);
}

static void reg_binding_expired(struct timer *t, void *arg)
{
    (void)t;
    reg_binding_remove(arg, "expired");
}

void registrar_free(struct registrar *r)
{
    if (!r)
        return;
    size_t bucket;
    struct hmap_node *n = r->users.buckets ? hmap_iter_first(&r->users, &bucket) : NULL;
    while (n) {
        struct hmap_node *next = hmap_iter_next(&r->users, n, &bucket);
        struct reg_user *u = container_of(n, struct reg_user, node);
        struct reg_binding *b = u->first;
        while (b) {
            struct reg_binding *bn = b->next;
            timer_stop(r->timers, &b->timer);
            reg_binding_free(b);
            b = bn;
        }
        free(u->name);
        free(u);
        n = next;
    }
    hmap_destroy(&r->users);
    free(r->domain);
    free(r);
}

/* One Contact of a REGISTER, understood. */
struct reg_contact {
    struct sip_addr addr;
    long long expires;
    struct strview instance;
};

static struct reg_binding *reg_find_binding(struct reg_user *u, const struct reg_contact *c)
{
    for (struct reg_binding *b = u->first; b; b = b->next) {
        if (c->instance.n && b->instance[0]) {
            /* both name their device: the instance decides (RFC 5626) */
            if (strview_eq(c->instance, b->instance))
                return b;
            continue;
        }
        struct sip_uri bu;
        if (sip_uri_parse(strview_cstr(b->contact), &bu) == 0 && sip_uri_equal(&bu, &c->addr.uri))
            return b;
    }
    return NULL;
}

static void reg_list_contacts(struct registrar *r, struct reg_user *u, struct strbuf *headers,
                              int64_t now)
{
    if (!u)
        return;
    for (struct reg_binding *b = u->first; b; b = b->next) {
        long long left = b->pub.expires_at - now;
        /* a device that named itself gets its name back (RFC 5626 §6); the
         * value is as the parser accepted it: a token or quoted string */
        strbuf_printf(headers, "Contact: <%s>;expires=%lld%s%s\r\n", b->contact,
                      left > 0 ? left : 0, b->instance && b->instance[0] ? ";+sip.instance=" : "",
                      b->instance && b->instance[0] ? b->instance : "");
    }
    (void)r;
}

#define REG_MAX_CONTACTS 16

void registrar_register(struct registrar *r, const char *user, const struct sip_msg *req,
                        const struct registrar_flow *flow, int *status, const char **reason,
                        struct strbuf *headers)
{
    struct reg_contact contacts[REG_MAX_CONTACTS];
    size_t n = 0;
    bool wildcard = false;
    int64_t now = clock_wall_s(timer_heap_clock(r->timers));
    struct sip_value_iter it;
    struct strview v;

    *status = 200;
    *reason = NULL;

    sip_value_iter_init(&it, req, SIP_HDR_CONTACT);
    while (sip_value_iter_next(&it, &v)) {
        if (n == REG_MAX_CONTACTS) {
            *status = 403;
            *reason = "Forbidden (too many Contacts in one REGISTER)";
            return;
        }
        struct reg_contact *c = &contacts[n];
        if (sip_addr_parse(v, &c->addr) != 0) {
            *status = 400;
            *reason = "Bad Request (malformed Contact)";
            return;
        }
        if (c->addr.wildcard) {
            wildcard = true;
            continue;
        }
        struct strview ev;
        c->expires = req->expires >= 0 ? req->expires : (long long)r->cfg.default_expires;
        if (sip_param_find(c->addr.params, "expires", &ev)) {
            unsigned long long x;
            if (strview_to_u64(ev, 0xffffffffULL, &x) != 0) {
                *status = 400;
                *reason = "Bad Request (malformed Contact expires)";
                return;
            }
            c->expires = (long long)x;
        }
        c->instance = STRVIEW_EMPTY;
        sip_param_find(c->addr.params, "+sip.instance", &c->instance);
        if (c->addr.uri.scheme == SIP_URI_TEL) {
            *status = 400;
            *reason = "Bad Request (a Contact must be a SIP URI)";
            return;
        }
        n++;
    }

    struct reg_user *u = reg_user_find(r, user);

    /* "Contact: *" removes every binding, and must stand alone with Expires 0 */
    if (wildcard) {
        if (n != 0 || req->expires != 0) {
            *status = 400;
            *reason = "Bad Request (Contact: * needs Expires: 0 and no other Contact)";
            return;
        }
        while (u && u->first) {
            struct reg_binding *b = u->first;
            bool last = b->next == NULL;
            reg_binding_remove(b, "un-registered");
            if (last)
                break; /* the user entry went with its last binding */
        }
        return;
    }

    /* Two Contacts for one device (same URI, same instance, or one binding)
     * would be applied one after the other, each changing what the next
     * one finds: the count checked below could not be trusted. */
    for (size_t i = 0; i < n; i++) {
        struct reg_binding *bi = u ? reg_find_binding(u, &contacts[i]) : NULL;
        for (size_t j = i + 1; j < n; j++) {
            bool same_instance = contacts[i].instance.n &&
                                 strview_eq_view(contacts[i].instance, contacts[j].instance);
            if (same_instance || sip_uri_equal(&contacts[i].addr.uri, &contacts[j].addr.uri) ||
                (bi && reg_find_binding(u, &contacts[j]) == bi)) {
                *status = 400;
                *reason = "Bad Request (two Contacts name the same device)";
                return;
            }
        }
    }

    /* check everything before changing anything; removals in the same
     * REGISTER make room (a device that changes address swaps its contact) */
    size_t adding = 0, removing = 0;
    for (size_t i = 0; i < n; i++) {
        if (contacts[i].expires != 0 && contacts[i].expires < (long long)r->cfg.min_expires) {
            *status = 423;
            *reason = "Interval Too Brief";
            strbuf_printf(headers, "Min-Expires: %u\r\n", r->cfg.min_expires);
            return;
        }
        struct reg_binding *b = u ? reg_find_binding(u, &contacts[i]) : NULL;
        if (b && strview_eq(req->call_id, b->call_id) && req->cseq_num <= b->cseq) {
            *status = 500;
            *reason = "Server Internal Error (REGISTER out of order)";
            strbuf_puts(headers, "Retry-After: 1\r\n");
            return;
        }
        if (!b && contacts[i].expires != 0)
            adding++;
        if (b && contacts[i].expires == 0)
            removing++;
    }
    size_t count = u ? u->count : 0;
    if (adding && (count - removing + adding > r->cfg.max_per_user ||
                   r->total - removing + adding > r->cfg.max_total)) {
        *status = 403;
        *reason = "Forbidden (too many registered devices)";
        return;
    }

    for (size_t i = 0; i < n; i++) {
        struct reg_contact *c = &contacts[i];
        struct reg_binding *b = u ? reg_find_binding(u, c) : NULL;
        if (c->expires == 0) {
            if (b) {
                bool last = u->count == 1;
                reg_binding_remove(b, "un-registered");
                if (last)
                    u = NULL;
            }
            continue;
        }
        long long expires =
            c->expires > (long long)r->cfg.max_expires ? r->cfg.max_expires : c->expires;
        if (!u && !(u = reg_user_get(r, user))) {
            *status = 500;
            *reason = "Server Internal Error (out of memory)";
            return;
        }
        bool created = false;
        if (!b) {
            b = calloc(1, sizeof(*b));
            if (!b || !(b->contact = strview_dup(c->addr.uri_text))) {
                free(b);
                reg_user_drop_if_empty(r, u);
                *status = 500;
                *reason = "Server Internal Error (out of memory)";
                return;
            }
            b->r = r;
            b->user = u;
            b->next = u->first;
            if (u->first)
                u->first->prev = b;
            u->first = b;
            u->count++;
            r->total++;
            b->pub.registered_at = now;
            created = true;
        }
        if (!created && !strview_eq(c->addr.uri_text, b->contact)) {
            /* same device (by instance), new address */
            char *uri = strview_dup(c->addr.uri_text);
            if (uri) {
                free(b->contact);
                b->contact = uri;
            }
        }
        free(b->call_id);
        free(b->instance);
        free(b->user_agent);
        b->call_id = strview_dup(req->call_id);
        b->instance = strview_dup(c->instance);
        struct sip_hdr *ua = sip_msg_hdr_first(req, SIP_HDR_USER_AGENT);
        b->user_agent = strview_dup(ua ? ua->value : STRVIEW_EMPTY);
        b->cseq = req->cseq_num;
        b->pub.user = u->name;
        b->pub.contact = b->contact;
        b->pub.instance = b->instance ? b->instance : "";
        b->pub.user_agent = b->user_agent ? b->user_agent : "";
        b->pub.conn = flow->conn;
        b->pub.source = flow->source;
        snprintf(b->pub.transport, sizeof(b->pub.transport), "%s", flow->transport);
        snprintf(b->pub.tls_version, sizeof(b->pub.tls_version), "%s", flow->tls_version);
        b->pub.expires_at = now + expires;
        timer_start(r->timers, &b->timer, (uint64_t)expires * 1000, reg_binding_expired, b);
        if (created) {
            char src[NETADDR_STRLEN];
            log_info("registrar.bound", "user", u->name, "contact", b->contact, "source",
                     netaddr_format(&flow->source, src), "transport", flow->transport, "expires",
                     LOG_INT(expires));
            if (r->on_added)
                r->on_added(r->on_added_arg, &b->pub);
        }
    }
    reg_list_contacts(r, u, headers, now);
}

size_t registrar_lookup(struct registrar *r, const char *user, const struct binding **out,
                        size_t max)
{
    struct reg_user *u = reg_user_find(r, user);
    size_t i = 0;
    if (!u)
        return 0;
    for (struct reg_binding *b = u->first; b; b = b->next, i++)
        if (i < max)
            out[i] = &b->pub;
    return i;
}

const struct binding *registrar_find_contact(struct registrar *r, const struct sip_uri *uri)
{
    size_t bucket;
    for (struct hmap_node *n = hmap_iter_first(&r->users, &bucket); n;
         n = hmap_iter_next(&r->users, n, &bucket)) {
        struct reg_user *u = container_of(n, struct reg_user, node);
        for (struct reg_binding *b = u->first; b; b = b->next) {
            struct sip_uri bu;
            if (sip_uri_parse(strview_cstr(b->contact), &bu) == 0 && sip_uri_equal(&bu, uri))
                return &b->pub;
        }
    }
    return NULL;
}

const struct binding *registrar_find_flow(struct registrar *r, const char *user, uint64_t conn)
{
    struct reg_user *u = reg_user_find(r, user);
    for (struct reg_binding *b = u ? u->first : NULL; b; b = b->next)
        if (b->pub.conn == conn)
            return &b->pub;
    return NULL;
}

bool registrar_conn_in_use(struct registrar *r, uint64_t conn)
{
    size_t bucket;
    for (struct hmap_node *n = hmap_iter_first(&r->users, &bucket); n;
         n = hmap_iter_next(&r->users, n, &bucket)) {
        struct reg_user *u = container_of(n, struct reg_user, node);
        for (struct reg_binding *b = u->first; b; b = b->next)
            if (b->pub.conn == conn)
                return true;
    }
    return false;
}

void registrar_conn_closed(struct registrar *r, uint64_t conn)
{
    size_t bucket;
    struct hmap_node *n = r->users.count ? hmap_iter_first(&r->users, &bucket) : NULL;
    while (n) {
        struct hmap_node *next = hmap_iter_next(&r->users, n, &bucket);
        struct reg_user *u = container_of(n, struct reg_user, node);
        struct reg_binding *b = u->first;
        while (b) {
            struct reg_binding *bn = b->next;
            bool last = u->count == 1;
            if (b->pub.conn == conn) {
                reg_binding_remove(b, "connection closed");
                if (last)
                    break; /* u is gone */
            }
            b = bn;
        }
        n = next;
    }
}

void registrar_foreach(struct registrar *r, bool (*fn)(const struct binding *b, void *arg),
                       void *arg)
{
    size_t bucket;
    for (struct hmap_node *n = hmap_iter_first(&r->users, &bucket); n;
         n = hmap_iter_next(&r->users, n, &bucket)) {
        struct reg_user *u = container_of(n, struct reg_user, node);
        for (struct reg_binding *b = u->first; b; b = b->next)
            if (!fn(&b->pub, arg))
                return;
    }
}

size_t registrar_count(const struct registrar *r)
{
    return r->total;
}
