/*
 * web_dav — the global address book over CardDAV (RFC 6352), read-only.
 *
 * Resources:
 *   /.well-known/carddav             301 to /dav/ (RFC 6764)
 *   /dav/                            the root: who you are (current-user-principal)
 *   /dav/principals/USER/            a principal: where its address books are
 *   /dav/addressbooks/               the address-book home
 *   /dav/addressbooks/global/        the one address book: every user and group
 *   /dav/addressbooks/global/ID.vcf  a card (ID: its UID, which never changes)
 *
 * Methods: OPTIONS, PROPFIND (Depth 0 or 1), REPORT addressbook-multiget,
 * addressbook-query and sync-collection (RFC 6578: the delta download),
 * GET/HEAD of a card (ETag, If-None-Match, gzip). PUT, DELETE and other
 * writes get 403: the address book is the directory, managed with
 * parleyctl. WebDAV locking and ACLs are not offered.
 *
 * A sync token names the store's address-book change sequence; a client
 * that sends the token of its last sync gets each card changed since, once,
 * in its latest state (a removed one as a 404 response).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "http/response.h"
#include "web/web_priv.h"
#include "xml/xml.h"

#define NS_DAV  "DAV:"
#define NS_CARD "urn:ietf:params:xml:ns:carddav"
#define NS_CS   "http://calendarserver.org/ns/"

#define DAV_ROOT_PATH  "/dav/"
#define DAV_PRINCIPALS "/dav/principals/"
#define DAV_HOME       "/dav/addressbooks/"
#define DAV_BOOK       "/dav/addressbooks/global/"
#define DAV_MAX_PROPS  64
#define DAV_MAX_HREFS  1000 /* hrefs in one multiget */

enum dav_kind { DAV_RES_ROOT, DAV_RES_PRINCIPAL, DAV_RES_HOME, DAV_RES_BOOK, DAV_RES_CARD };

struct dav_res {
    enum dav_kind kind;
    const struct web_card *card; /* DAV_RES_CARD */
};

struct dav_prop {
    struct strview ns, local;
    const struct xml_node *node;
};

/* What a PROPFIND or REPORT asks for: named properties, or all. */
struct dav_props {
    bool all;
    size_t n;
    struct dav_prop v[DAV_MAX_PROPS];
    int card_version; /* address-data: 3 or 4 */
};

struct dav_ctx {
    struct web_req *r;
    struct web_book *book;
    struct strbuf body;
};

/* --- XML output ------------------------------------------------------------ */

static void xml_escape(struct strbuf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        switch (s[i]) {
        case '&':
            strbuf_puts(b, "&amp;");
            break;
        case '<':
            strbuf_puts(b, "&lt;");
            break;
        case '>':
            strbuf_puts(b, "&gt;");
            break;
        case '"':
            strbuf_puts(b, "&quot;");
            break;
        case '\r':
            strbuf_puts(b, "&#13;");
            break;
        default:
            strbuf_putc(b, s[i]);
        }
    }
}

static void ms_begin(struct strbuf *b)
{
    strbuf_puts(b, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
                   "<D:multistatus xmlns:D=\"DAV:\" xmlns:C=\"" NS_CARD "\" xmlns:CS=\"" NS_CS
                   "\">\n");
}

static void dav_href(const struct dav_ctx *d, const struct dav_res *res, char *out, size_t cap)
{
    switch (res->kind) {
    case DAV_RES_ROOT:
        snprintf(out, cap, "%s", DAV_ROOT_PATH);
        break;
    case DAV_RES_PRINCIPAL:
        snprintf(out, cap, "%s%s/", DAV_PRINCIPALS, d->r->user);
        break;
    case DAV_RES_HOME:
        snprintf(out, cap, "%s", DAV_HOME);
        break;
    case DAV_RES_BOOK:
        snprintf(out, cap, "%s", DAV_BOOK);
        break;
    case DAV_RES_CARD:
        snprintf(out, cap, "%s%s.vcf", DAV_BOOK, res->card->uuid);
        break;
    }
}

static void sync_token(const struct dav_ctx *d, struct strbuf *b)
{
    strbuf_printf(b, "https://%s/dav/sync/%lld", d->r->w->domain, (long long)d->book->seq);
}

/* Writes the value of one property of res into b (element included), or
 * returns false when res has no such property. */
static bool prop_write(struct dav_ctx *d, const struct dav_res *res, struct strview ns,
                       struct strview local, int card_version, struct strbuf *b)
{
    bool dav = strview_eq(ns, NS_DAV), card = strview_eq(ns, NS_CARD), cs = strview_eq(ns, NS_CS);
    bool collection = res->kind != DAV_RES_CARD;
    char href[256];

    if (dav && strview_eq(local, "resourcetype")) {
        strbuf_puts(b, "<D:resourcetype>");
        if (collection)
            strbuf_puts(b, "<D:collection/>");
        if (res->kind == DAV_RES_BOOK)
            strbuf_puts(b, "<C:addressbook/>");
        if (res->kind == DAV_RES_PRINCIPAL)
            strbuf_puts(b, "<D:principal/>");
        strbuf_puts(b, "</D:resourcetype>");
        return true;
    }
    if (dav && strview_eq(local, "displayname")) {
        const char *name =
            res->kind == DAV_RES_BOOK        ? "Global address book"
            : res->kind == DAV_RES_PRINCIPAL ? d->r->user
            : res->kind == DAV_RES_CARD
                ? (res->card->display_name[0] ? res->card->display_name : res->card->name)
                : NULL;
        if (!name)
            return false;
        strbuf_puts(b, "<D:displayname>");
        xml_escape(b, name, strlen(name));
        strbuf_puts(b, "</D:displayname>");
        return true;
    }
    if (dav && strview_eq(local, "current-user-principal")) {
        strbuf_printf(b,
                      "<D:current-user-principal><D:href>%s%s/</D:href>"
                      "</D:current-user-principal>",
                      DAV_PRINCIPALS, d->r->user);
        return true;
    }
    if (dav && strview_eq(local, "principal-URL") && res->kind == DAV_RES_PRINCIPAL) {
        dav_href(d, res, href, sizeof(href));
        strbuf_printf(b, "<D:principal-URL><D:href>%s</D:href></D:principal-URL>", href);
        return true;
    }
    if (card && strview_eq(local, "addressbook-home-set") && res->kind == DAV_RES_PRINCIPAL) {
        strbuf_puts(b, "<C:addressbook-home-set><D:href>" DAV_HOME
                       "</D:href></C:addressbook-home-set>");
        return true;
    }
    if (dav && strview_eq(local, "current-user-privilege-set")) {
        strbuf_puts(b, "<D:current-user-privilege-set><D:privilege><D:read/></D:privilege>"
                       "</D:current-user-privilege-set>");
        return true;
    }
    if (res->kind == DAV_RES_BOOK) {
        if (dav && strview_eq(local, "sync-token")) {
            strbuf_puts(b, "<D:sync-token>");
            sync_token(d, b);
            strbuf_puts(b, "</D:sync-token>");
            return true;
        }
        if (cs && strview_eq(local, "getctag")) {
            strbuf_printf(b, "<CS:getctag>%lld</CS:getctag>", (long long)d->book->seq);
            return true;
        }
        if (dav && strview_eq(local, "supported-report-set")) {
            strbuf_puts(b, "<D:supported-report-set>"
                           "<D:supported-report><D:report><C:addressbook-query/></D:report>"
                           "</D:supported-report>"
                           "<D:supported-report><D:report><C:addressbook-multiget/></D:report>"
                           "</D:supported-report>"
                           "<D:supported-report><D:report><D:sync-collection/></D:report>"
                           "</D:supported-report></D:supported-report-set>");
            return true;
        }
        if (card && strview_eq(local, "supported-address-data")) {
            strbuf_puts(b, "<C:supported-address-data>"
                           "<C:address-data-type content-type=\"text/vcard\" version=\"3.0\"/>"
                           "<C:address-data-type content-type=\"text/vcard\" version=\"4.0\"/>"
                           "</C:supported-address-data>");
            return true;
        }
        if (card && strview_eq(local, "addressbook-description")) {
            strbuf_printf(b, "<C:addressbook-description>The users and groups of ");
            xml_escape(b, d->r->w->domain, strlen(d->r->w->domain));
            strbuf_puts(b, "</C:addressbook-description>");
            return true;
        }
        if (card && strview_eq(local, "max-resource-size")) {
            strbuf_puts(b, "<C:max-resource-size>0</C:max-resource-size>");
            return true;
        }
    }
    if (res->kind == DAV_RES_CARD) {
        if (dav && strview_eq(local, "getetag")) {
            strbuf_puts(b, "<D:getetag>");
            xml_escape(b, res->card->etag, strlen(res->card->etag));
            strbuf_puts(b, "</D:getetag>");
            return true;
        }
        if (dav && strview_eq(local, "getcontenttype")) {
            strbuf_printf(b, "<D:getcontenttype>text/vcard; charset=utf-8%s</D:getcontenttype>",
                          card_version == 4 ? "; version=4.0" : "");
            return true;
        }
        if (card && strview_eq(local, "address-data")) {
            struct strbuf v = STRBUF_INIT;
            web_vcard_write(&v, res->card, card_version, d->r->w->domain);
            strbuf_puts(b, "<C:address-data>");
            xml_escape(b, v.p ? v.p : "", v.len);
            strbuf_puts(b, "</C:address-data>");
            strbuf_free(&v);
            return true;
        }
    }
    if (dav && strview_eq(local, "getcontenttype") && collection)
        return false;
    return false;
}

/* The names allprop gives, per resource kind. */
static const char *const allprop_names[][2] = {
    {NS_DAV, "resourcetype"},
    {NS_DAV, "displayname"},
    {NS_DAV, "getetag"},
    {NS_DAV, "getcontenttype"},
    {NS_DAV, "sync-token"},
    {NS_CS, "getctag"},
    {NS_DAV, "current-user-principal"},
    {NS_CARD, "addressbook-home-set"},
    {NS_DAV, "supported-report-set"},
    {NS_CARD, "supported-address-data"},
};

static void response_write(struct dav_ctx *d, const struct dav_res *res,
                           const struct dav_props *props)
{
    struct strbuf *b = &d->body;
    char href[256];
    dav_href(d, res, href, sizeof(href));
    strbuf_printf(b, "<D:response><D:href>%s</D:href>", href);
    struct strbuf found = STRBUF_INIT, missing = STRBUF_INIT;
    if (props->all) {
        for (size_t i = 0; i < sizeof(allprop_names) / sizeof(allprop_names[0]); i++)
            prop_write(d, res, strview_cstr(allprop_names[i][0]), strview_cstr(allprop_names[i][1]),
                       props->card_version, &found);
    } else {
        for (size_t i = 0; i < props->n; i++) {
            const struct dav_prop *p = &props->v[i];
            if (prop_write(d, res, p->ns, p->local, props->card_version, &found))
                continue;
            /* each missing property in its own namespace declaration */
            strbuf_puts(&missing, "<X:");
            strbuf_putview(&missing, p->local);
            strbuf_puts(&missing, " xmlns:X=\"");
            xml_escape(&missing, p->ns.p, p->ns.n);
            strbuf_puts(&missing, "\"/>");
        }
    }
    if (found.len)
        strbuf_printf(b,
                      "<D:propstat><D:prop>%s</D:prop><D:status>HTTP/1.1 200 OK</D:status>"
                      "</D:propstat>",
                      strbuf_cstr(&found));
    if (missing.len)
        strbuf_printf(b,
                      "<D:propstat><D:prop>%s</D:prop><D:status>HTTP/1.1 404 Not Found"
                      "</D:status></D:propstat>",
                      strbuf_cstr(&missing));
    strbuf_puts(b, "</D:response>\n");
    strbuf_free(&found);
    strbuf_free(&missing);
}

static void response_not_found(struct dav_ctx *d, const char *href)
{
    strbuf_puts(&d->body, "<D:response><D:href>");
    xml_escape(&d->body, href, strlen(href));
    strbuf_puts(&d->body, "</D:href><D:status>HTTP/1.1 404 Not Found</D:status></D:response>\n");
}

static void ms_send(struct dav_ctx *d)
{
    struct strbuf *b = &d->body;
    if (b->err) {
        web_reply_text(d->r, 500, "out of memory");
        return;
    }
    web_reply_begin(d->r, 207);
    web_reply_end_maybe_gzip(d->r, "application/xml; charset=utf-8", b->p, b->len);
}

static void dav_error(struct web_req *r, int status, const char *ns, const char *condition)
{
    struct strbuf b = STRBUF_INIT;
    strbuf_printf(&b,
                  "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
                  "<D:error xmlns:D=\"DAV:\" xmlns:X=\"%s\"><X:%s/></D:error>\n",
                  ns, condition);
    web_reply_begin(r, status);
    web_reply_end(r, "application/xml; charset=utf-8", b.p, b.len);
    strbuf_free(&b);
}

/* --- request bodies ---------------------------------------------------------- */

/* The body as an XML document; NULL for an empty body (*bad false) or a
 * malformed one (*bad true, answered 400). */
static struct xml_doc *body_xml(struct web_req *r, bool *bad)
{
    *bad = false;
    if (r->http->body_len == 0)
        return NULL;
    struct xml_doc *doc = NULL;
    char err[128];
    if (xml_parse((const char *)r->http->body, r->http->body_len, &doc, err, sizeof(err)) != 0) {
        *bad = true;
        char text[200];
        snprintf(text, sizeof(text), "malformed XML body: %s", err);
        web_reply_text(r, 400, text);
        return NULL;
    }
    return doc;
}

/* <D:prop> children, or allprop. */
static void props_read(const struct xml_node *parent, struct dav_props *out)
{
    memset(out, 0, sizeof(*out));
    out->card_version = 3;
    const struct xml_node *prop = parent ? xml_child(parent, NS_DAV, "prop") : NULL;
    if (!prop) {
        out->all = true;
        return;
    }
    for (const struct xml_node *c = prop->first_child; c && out->n < DAV_MAX_PROPS; c = c->next) {
        out->v[out->n].ns = c->ns;
        out->v[out->n].local = c->local;
        out->v[out->n].node = c;
        out->n++;
        if (strview_eq(c->ns, NS_CARD) && strview_eq(c->local, "address-data")) {
            const struct xml_attr *ver = xml_attr(c, "version");
            if (ver && strview_eq(ver->value, "4.0"))
                out->card_version = 4;
        }
    }
}

/* --- where a path points --------------------------------------------------- */

/* 0 with res set, or -ENOENT. */
static int dav_resolve(struct dav_ctx *d, const char *path, struct dav_res *res)
{
    memset(res, 0, sizeof(*res));
    if (strcmp(path, DAV_ROOT_PATH) == 0) {
        res->kind = DAV_RES_ROOT;
        return 0;
    }
    if (strcmp(path, DAV_HOME) == 0 || strcmp(path, "/dav/addressbooks") == 0) {
        res->kind = DAV_RES_HOME;
        return 0;
    }
    if (strcmp(path, DAV_BOOK) == 0 || strcmp(path, "/dav/addressbooks/global") == 0) {
        res->kind = DAV_RES_BOOK;
        return 0;
    }
    size_t np = strlen(DAV_PRINCIPALS);
    if (strncmp(path, DAV_PRINCIPALS, np) == 0) {
        const char *u = path + np;
        size_t ul = strcspn(u, "/");
        /* only one's own principal */
        if (ul == strlen(d->r->user) && strncmp(u, d->r->user, ul) == 0 &&
            (u[ul] == '\0' || strcmp(u + ul, "/") == 0)) {
            res->kind = DAV_RES_PRINCIPAL;
            return 0;
        }
        return -ENOENT;
    }
    size_t nb = strlen(DAV_BOOK);
    if (strncmp(path, DAV_BOOK, nb) == 0) {
        const char *id = path + nb;
        size_t il = strlen(id);
        if (il == 36 + 4 && strcmp(id + 36, ".vcf") == 0) {
            char uuid[37];
            memcpy(uuid, id, 36);
            uuid[36] = '\0';
            res->card = web_book_find(d->book, uuid);
            if (res->card) {
                res->kind = DAV_RES_CARD;
                return 0;
            }
        }
    }
    return -ENOENT;
}

/* A multiget href (a path or an absolute URL) to a path. */
static const char *href_path(struct strview h, char *buf, size_t cap)
{
    h = strview_trim(h);
    if (h.n > 8 && (strncasecmp(h.p, "https://", 8) == 0 || strncasecmp(h.p, "http://", 7) == 0)) {
        const char *p = memchr(h.p + 8, '/', h.n - 8);
        if (!p)
            return NULL;
        h = strview_make(p, h.n - (size_t)(p - h.p));
    }
    if (strview_copy(h, buf, cap) != 0)
        return NULL;
    return buf;
}

/* --- methods ------------------------------------------------------------------ */

static void dav_propfind(struct dav_ctx *d, const char *path)
{
    struct web_req *r = d->r;
    const char *depth = http_request_header(r->http, "Depth");
    int level = 1; /* RFC 4918: absent means infinity; answered as 1 level below */
    if (depth && strcmp(depth, "0") == 0)
        level = 0;
    else if (depth && strcmp(depth, "1") != 0 && strcasecmp(depth, "infinity") != 0) {
        web_reply_text(r, 400, "Depth must be 0, 1 or infinity");
        return;
    } else if (depth && strcasecmp(depth, "infinity") == 0) {
        dav_error(r, 403, NS_DAV, "propfind-finite-depth");
        return;
    }
    struct dav_res res;
    if (dav_resolve(d, path, &res) != 0) {
        web_reply_text(r, 404, "not found");
        return;
    }
    bool bad;
    struct xml_doc *doc = body_xml(r, &bad);
    if (bad)
        return;
    const struct xml_node *root = doc ? xml_root(doc) : NULL;
    if (root && !(strview_eq(root->ns, NS_DAV) && strview_eq(root->local, "propfind"))) {
        xml_free(doc);
        web_reply_text(r, 400, "the body is not a DAV:propfind");
        return;
    }
    struct dav_props props;
    props_read(root, &props);

    ms_begin(&d->body);
    response_write(d, &res, &props);
    if (level == 1) {
        struct dav_res child = {0};
        if (res.kind == DAV_RES_ROOT) {
            child.kind = DAV_RES_PRINCIPAL;
            response_write(d, &child, &props);
            child.kind = DAV_RES_HOME;
            response_write(d, &child, &props);
        } else if (res.kind == DAV_RES_HOME) {
            child.kind = DAV_RES_BOOK;
            response_write(d, &child, &props);
        } else if (res.kind == DAV_RES_BOOK) {
            child.kind = DAV_RES_CARD;
            for (size_t i = 0; i < d->book->n; i++) {
                child.card = &d->book->cards[i];
                response_write(d, &child, &props);
            }
        }
    }
    strbuf_puts(&d->body, "</D:multistatus>\n");
    xml_free(doc);
    ms_send(d);
}

static void report_multiget(struct dav_ctx *d, const struct xml_node *root)
{
    struct dav_props props;
    props_read(root, &props);
    ms_begin(&d->body);
    size_t n = 0;
    for (const struct xml_node *h = xml_child(root, NS_DAV, "href"); h;
         h = xml_next(h, NS_DAV, "href")) {
        if (++n > DAV_MAX_HREFS) {
            strbuf_free(&d->body);
            web_reply_text(d->r, 413, "too many hrefs in one addressbook-multiget");
            return;
        }
        char buf[512];
        const char *path = href_path(xml_text_trimmed(h), buf, sizeof(buf));
        struct dav_res res;
        if (path && dav_resolve(d, path, &res) == 0 && res.kind == DAV_RES_CARD)
            response_write(d, &res, &props);
        else
            response_not_found(d, path ? path : "");
    }
    strbuf_puts(&d->body, "</D:multistatus>\n");
    ms_send(d);
}

/* --- addressbook-query filters (RFC 6352 §10.5) ------------------------------ */

/* The values a card has for a property name, for text-match. */
static size_t card_values(const struct dav_ctx *d, const struct web_card *c, struct strview name,
                          const char *out[4], char *sip, size_t sipcap)
{
    size_t n = 0;
    const char *fn = c->display_name[0] ? c->display_name : c->name;
    if (strview_eq_nocase(name, "FN") || strview_eq_nocase(name, "N"))
        out[n++] = fn;
    else if (strview_eq_nocase(name, "NICKNAME") && c->kind == STORE_CARD_USER)
        out[n++] = c->name;
    else if (strview_eq_nocase(name, "EMAIL") && c->email[0])
        out[n++] = c->email;
    else if (strview_eq_nocase(name, "TEL") && c->number[0])
        out[n++] = c->number;
    else if (strview_eq_nocase(name, "UID"))
        out[n++] = c->uuid;
    else if ((strview_eq_nocase(name, "IMPP") || strview_eq_nocase(name, "X-SIP")) &&
             c->kind == STORE_CARD_USER) {
        snprintf(sip, sipcap, "sip:%s@%s", c->name, d->r->w->domain);
        out[n++] = sip;
    } else if (strview_eq_nocase(name, "KIND") ||
               strview_eq_nocase(name, "X-ADDRESSBOOKSERVER-KIND"))
        out[n++] = c->kind == STORE_CARD_GROUP ? "group" : "individual";
    return n;
}

/* i;unicode-casemap is approximated by ASCII case folding. */
static bool text_matches(const char *value, struct strview want, struct strview type)
{
    size_t vl = strlen(value);
    if (strview_is_empty(type) || strview_eq(type, "contains")) {
        if (want.n == 0)
            return true;
        for (size_t i = 0; i + want.n <= vl; i++)
            if (strncasecmp(value + i, want.p, want.n) == 0)
                return true;
        return false;
    }
    if (strview_eq(type, "equals"))
        return vl == want.n && strncasecmp(value, want.p, want.n) == 0;
    if (strview_eq(type, "starts-with"))
        return vl >= want.n && strncasecmp(value, want.p, want.n) == 0;
    if (strview_eq(type, "ends-with"))
        return vl >= want.n && strncasecmp(value + vl - want.n, want.p, want.n) == 0;
    return false;
}

/* -1: a filter this server does not support (answered 403). */
static int prop_filter_match(const struct dav_ctx *d, const struct web_card *c,
                             const struct xml_node *pf)
{
    const struct xml_attr *name = xml_attr(pf, "name");
    const struct xml_attr *test = xml_attr(pf, "test");
    if (!name)
        return -1;
    bool allof = test && strview_eq(test->value, "allof");
    const char *vals[4] = {NULL, NULL, NULL, NULL};
    char sip[400];
    size_t nv = card_values(d, c, name->value, vals, sip, sizeof(sip));
    const struct xml_node *child = pf->first_child;
    if (!child)
        return nv > 0; /* defined */
    bool any = false, all = true;
    for (; child; child = child->next) {
        bool m;
        if (strview_eq(child->ns, NS_CARD) && strview_eq(child->local, "is-not-defined")) {
            m = nv == 0;
        } else if (strview_eq(child->ns, NS_CARD) && strview_eq(child->local, "text-match")) {
            const struct xml_attr *mt = xml_attr(child, "match-type");
            const struct xml_attr *neg = xml_attr(child, "negate-condition");
            const struct xml_attr *coll = xml_attr(child, "collation");
            if (coll && !strview_eq(coll->value, "i;unicode-casemap") &&
                !strview_eq(coll->value, "i;ascii-casemap"))
                return -1;
            struct strview want = xml_text_trimmed(child);
            if (memchr(want.p, '&', want.n))
                return -1; /* entities in the text: not decoded here */
            m = false;
            for (size_t i = 0; i < nv; i++)
                m = m || text_matches(vals[i], want, mt ? mt->value : strview_make("", 0));
            if (neg && strview_eq(neg->value, "yes"))
                m = !m;
        } else {
            return -1; /* param-filter and the like */
        }
        any = any || m;
        all = all && m;
    }
    return allof ? all : any;
}

static void report_query(struct dav_ctx *d, const struct xml_node *root)
{
    struct dav_props props;
    props_read(root, &props);
    const struct xml_node *filter = xml_child(root, NS_CARD, "filter");
    const struct xml_attr *test = filter ? xml_attr(filter, "test") : NULL;
    bool allof = test && strview_eq(test->value, "allof");
    unsigned long long limit = 0;
    const struct xml_node *lim = xml_child(root, NS_CARD, "limit");
    const struct xml_node *nres = lim ? xml_child(lim, NS_CARD, "nresults") : NULL;
    if (nres && strview_to_u64(xml_text_trimmed(nres), 100000, &limit) != 0) {
        web_reply_text(d->r, 400, "bad nresults");
        return;
    }
    ms_begin(&d->body);
    size_t sent = 0;
    for (size_t i = 0; i < d->book->n; i++) {
        const struct web_card *c = &d->book->cards[i];
        bool any = false, all = true;
        for (const struct xml_node *pf = filter ? xml_child(filter, NS_CARD, "prop-filter") : NULL;
             pf; pf = xml_next(pf, NS_CARD, "prop-filter")) {
            int m = prop_filter_match(d, c, pf);
            if (m < 0) {
                strbuf_free(&d->body);
                dav_error(d->r, 403, NS_CARD, "supported-filter");
                return;
            }
            any = any || m;
            all = all && m;
        }
        bool has_filters = filter && xml_child(filter, NS_CARD, "prop-filter");
        if (has_filters && !(allof ? all : any))
            continue;
        if (limit && sent == limit)
            break;
        struct dav_res res = {DAV_RES_CARD, c};
        response_write(d, &res, &props);
        sent++;
    }
    strbuf_puts(&d->body, "</D:multistatus>\n");
    ms_send(d);
}

/* --- sync-collection (RFC 6578) ---------------------------------------------- */

struct sync_walk {
    struct dav_ctx *d;
    const struct dav_props *props;
};

static int sync_change(const struct store_card_change *c, void *arg)
{
    struct sync_walk *sw = arg;
    struct dav_ctx *d = sw->d;
    if (c->seq > d->book->seq)
        return 0; /* newer than the book we serve: the next sync has it */
    char uuid[37], href[256];
    web_book_uuid(c->uid, uuid);
    const struct web_card *card = c->removed ? NULL : web_book_find(d->book, uuid);
    if (!card) {
        snprintf(href, sizeof(href), "%s%s.vcf", DAV_BOOK, uuid);
        response_not_found(d, href);
        return 0;
    }
    struct dav_res res = {DAV_RES_CARD, card};
    response_write(d, &res, sw->props);
    return 0;
}

static void report_sync(struct dav_ctx *d, const struct xml_node *root)
{
    struct web_req *r = d->r;
    const struct xml_node *tok = xml_child(root, NS_DAV, "sync-token");
    const struct xml_node *lvl = xml_child(root, NS_DAV, "sync-level");
    if (lvl && !strview_eq(xml_text_trimmed(lvl), "1")) {
        dav_error(r, 403, NS_DAV, "sync-traversal-supported");
        return;
    }
    struct dav_props props;
    props_read(root, &props);
    struct strview t = tok ? xml_text_trimmed(tok) : strview_make("", 0);
    int64_t since = 0;
    if (t.n) {
        char prefix[300];
        int pl = snprintf(prefix, sizeof(prefix), "https://%s/dav/sync/", r->w->domain);
        unsigned long long v;
        if (pl <= 0 || t.n <= (size_t)pl || strncmp(t.p, prefix, (size_t)pl) != 0 ||
            strview_to_u64(strview_make(t.p + pl, t.n - (size_t)pl), INT64_MAX, &v) != 0 ||
            (int64_t)v > d->book->seq) {
            dav_error(r, 403, NS_DAV, "valid-sync-token");
            return;
        }
        since = (int64_t)v;
    }
    ms_begin(&d->body);
    if (!t.n) {
        /* the first sync: every card */
        struct dav_res res = {DAV_RES_CARD, NULL};
        for (size_t i = 0; i < d->book->n; i++) {
            res.card = &d->book->cards[i];
            response_write(d, &res, &props);
        }
    } else if (since < d->book->seq) {
        struct sync_walk sw = {d, &props};
        int rc = store_card_changes(r->w->env.store, since, sync_change, &sw);
        if (rc == -EINVAL) {
            strbuf_free(&d->body);
            dav_error(r, 403, NS_DAV, "valid-sync-token");
            return;
        }
        if (rc != 0) {
            strbuf_free(&d->body);
            log_error("http.store_failed", "what", "sync-collection", "reason",
                      store_errmsg(r->w->env.store));
            web_reply_text(r, 500, "the store could not be read");
            return;
        }
    }
    strbuf_puts(&d->body, "<D:sync-token>");
    sync_token(d, &d->body);
    strbuf_puts(&d->body, "</D:sync-token>\n</D:multistatus>\n");
    ms_send(d);
}

static void dav_report(struct dav_ctx *d, const char *path)
{
    struct web_req *r = d->r;
    struct dav_res res;
    if (dav_resolve(d, path, &res) != 0) {
        web_reply_text(r, 404, "not found");
        return;
    }
    bool bad;
    struct xml_doc *doc = body_xml(r, &bad);
    if (bad)
        return;
    const struct xml_node *root = doc ? xml_root(doc) : NULL;
    if (!root) {
        web_reply_text(r, 400, "REPORT needs a body");
    } else if (res.kind != DAV_RES_BOOK) {
        dav_error(r, 403, NS_DAV, "supported-report");
    } else if (strview_eq(root->ns, NS_CARD) && strview_eq(root->local, "addressbook-multiget")) {
        report_multiget(d, root);
    } else if (strview_eq(root->ns, NS_CARD) && strview_eq(root->local, "addressbook-query")) {
        report_query(d, root);
    } else if (strview_eq(root->ns, NS_DAV) && strview_eq(root->local, "sync-collection")) {
        report_sync(d, root);
    } else {
        dav_error(r, 403, NS_DAV, "supported-report");
    }
    xml_free(doc);
}

/* Does the client ask for vCard 4.0 (Accept: text/vcard; version=4.0)? */
static int accept_version(const struct web_req *r)
{
    const char *a = http_request_header(r->http, "Accept");
    return a && strstr(a, "version=4.0") ? 4 : 3;
}

static bool etag_matches(const char *header, const char *etag)
{
    if (!header)
        return false;
    if (strcmp(header, "*") == 0)
        return true;
    /* etags are quoted hex: one found in the list is that element */
    return strstr(header, etag) != NULL;
}

static void dav_get(struct dav_ctx *d, const char *path)
{
    struct web_req *r = d->r;
    struct dav_res res;
    if (dav_resolve(d, path, &res) != 0) {
        web_reply_text(r, 404, "not found");
        return;
    }
    if (res.kind != DAV_RES_CARD) {
        web_reply_text(r, 200,
                       "This is Parley's CardDAV address book: point a CardDAV "
                       "client at /dav/addressbooks/global/");
        return;
    }
    if (etag_matches(http_request_header(r->http, "If-None-Match"), res.card->etag)) {
        web_reply_begin(r, 304);
        http_response_header(r->out, "ETag", res.card->etag);
        http_response_end(r->out, NULL, 0, true, r->close);
        return;
    }
    int version = accept_version(r);
    struct strbuf v = STRBUF_INIT;
    web_vcard_write(&v, res.card, version, r->w->domain);
    if (v.err) {
        strbuf_free(&v);
        web_reply_text(r, 500, "out of memory");
        return;
    }
    web_reply_begin(r, 200);
    http_response_header(r->out, "ETag", res.card->etag);
    http_response_header(r->out, "Cache-Control", "private, no-cache");
    web_reply_end_maybe_gzip(
        r, version == 4 ? "text/vcard; charset=utf-8; version=4.0" : "text/vcard; charset=utf-8",
        v.p, v.len);
    strbuf_free(&v);
}

void web_dav_handle(struct web_req *r, const char *path)
{
    enum http_method m = r->http->method;
    if (strcmp(path, "/.well-known/carddav") == 0 || strcmp(path, "/dav") == 0) {
        web_reply_begin(r, 301);
        http_response_header(r->out, "Location", DAV_ROOT_PATH);
        web_reply_end(r, NULL, NULL, 0);
        return;
    }
    if (m == HTTP_M_OPTIONS) {
        web_reply_begin(r, 200);
        http_response_header(r->out, "DAV", "1, 3, addressbook");
        http_response_header(r->out, "Allow", "OPTIONS, GET, HEAD, PROPFIND, REPORT");
        web_reply_end(r, NULL, NULL, 0);
        return;
    }
    if (web_auth_request(r, WEB_AUTH_BASIC | WEB_AUTH_DIGEST | WEB_AUTH_BEARER) != 0)
        return;
    struct dav_ctx d = {.r = r, .book = web_book_get(r->w), .body = STRBUF_INIT};
    if (!d.book) {
        web_reply_text(r, 500, "the store could not be read");
        return;
    }
    switch (m) {
    case HTTP_M_PROPFIND:
        dav_propfind(&d, path);
        break;
    case HTTP_M_REPORT:
        dav_report(&d, path);
        break;
    case HTTP_M_GET:
    case HTTP_M_HEAD:
        dav_get(&d, path);
        break;
    case HTTP_M_PUT:
    case HTTP_M_DELETE:
    case HTTP_M_POST:
        web_reply_text(r, 403,
                       "the address book is read-only: users and groups are managed "
                       "with parleyctl");
        break;
    default:
        if (strcmp(r->http->method_name, "PROPPATCH") == 0 ||
            strcmp(r->http->method_name, "MKCOL") == 0 ||
            strcmp(r->http->method_name, "MOVE") == 0 || strcmp(r->http->method_name, "COPY") == 0)
            web_reply_text(r, 403, "the address book is read-only");
        else {
            web_reply_begin(r, 405);
            http_response_header(r->out, "Allow", "OPTIONS, GET, HEAD, PROPFIND, REPORT");
            web_reply_end(r, "text/plain; charset=utf-8", "method not allowed\n", 19);
        }
    }
    strbuf_free(&d.body);
}
