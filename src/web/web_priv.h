/*
 * web_priv.h — what the files of src/web share: the service object, one
 * request being answered, and the address book as last read from the
 * store.
 */
#ifndef PARLEY_WEB_WEB_PRIV_H
#define PARLEY_WEB_WEB_PRIV_H

#include <stdatomic.h>

#include "core/log_limit.h"
#include "store/sealed.h"
#include "store/store.h"
#include "web/ticket.h"
#include "web/web.h"

/* Nested groups are followed this deep (group expansion, content access). */
#define WEB_GROUP_DEPTH 16

/* One card of the address book: a user or a distribution group. */
struct web_card {
    enum store_card_kind kind;
    char name[STORE_USER_NAME_MAX + 1];
    char uuid[37]; /* the store's uid written 8-4-4-4-12: UID and href */
    char display_name[STORE_DISPLAY_NAME_MAX + 1];
    char email[STORE_EMAIL_MAX + 1];
    char number[STORE_NUMBER_MAX + 1];
    char etag[24];   /* "\"" 20 hex "\"": of what the card says */
    char **members;  /* groups: the direct members' uuids */
    size_t nmembers; /* (members that are cards of this book) */
};

/* The address book, rebuilt when the store changed (PRAGMA data_version). */
struct web_book {
    struct web_card *cards; /* sorted by uuid */
    size_t n;
    int64_t seq; /* store_card_seq when read: the sync token's number */
};

/* What the workers need to judge an upload's head (web_body_limit): made
 * whole on the core thread, published with one atomic store, never changed,
 * and kept until web_free (a reload makes a new one; they are few). */
struct web_gate {
    struct web_gate *older; /* the views it replaced, freed by web_free */
    struct ticket_keys *keys;
    char *domain;
    int64_t grace_s;
    size_t max_body_size;
    size_t content_max_file;
};

struct web {
    struct web_env env;
    char *state_dir;
    char *domain;
    char *realm;
    struct web_config cfg; /* strings point at the copies above */
    /* read by web_body_limit on the workers */
    struct web_gate *_Atomic gate;

    struct ticket_keys *keys; /* the current gate's */
    struct ticket_cache *tickets;
    struct sealed_master *master;
    struct web_book *book;
    struct log_limit *auth_log; /* failed logins, bounded per source */

    uint64_t requests, tickets_issued, logins_failed, tokens_refused;
    uint64_t answered[6];          /* by status class (web_http_counts) */
    struct cidr *metrics_networks; /* the config's, copied */
};

/* One request being answered. */
struct web_req {
    struct web *w;
    const struct web_peer *peer;
    const struct http_request *http;
    struct strbuf *out;
    bool close;
    bool head;                          /* HEAD: the headers of GET, no body */
    char user[STORE_USER_NAME_MAX + 1]; /* once authenticated */
    int status;
    size_t bytes; /* body bytes sent */
};

/* web.c: answers. begin, then headers, then end (which counts the body). */
void web_reply_begin(struct web_req *r, int status);
void web_reply_end(struct web_req *r, const char *content_type, const void *body, size_t len);
/* A short text/plain answer. */
void web_reply_text(struct web_req *r, int status, const char *text);
/* A JSON answer (takes the reference). */
void web_reply_json(struct web_req *r, int status, json_t *doc);
/* The body of r, gzipped when the client accepts it and it is worth it. */
void web_reply_end_maybe_gzip(struct web_req *r, const char *content_type, const void *body,
                              size_t len);

/* web_auth.c */
#define WEB_AUTH_BASIC  0x1
#define WEB_AUTH_BEARER 0x2
#define WEB_AUTH_DIGEST 0x4
/* Authenticates r with one of the allowed schemes: 0 with r->user set, or
 * -EACCES after answering (401 with the challenges, 429 when throttled). */
int web_auth_request(struct web_req *r, unsigned schemes);
/* POST /auth/ticket */
void web_auth_ticket(struct web_req *r);
/* GET /metrics: 0 when r may read the metrics (an address in
 * https.metrics_networks, the metrics token, an administrator's web
 * ticket), else -EACCES after answering: 401 with a Bearer challenge
 * (none, or a wrong token or ticket: those count as failed logins), 403
 * (a ticket of a user who is no administrator), 429 (the token, from a
 * source the throttle blocks; tickets are not held back). */
int web_auth_metrics(struct web_req *r);
/* A change in the store (a user removed, say) ends what was cached. */
void web_auth_forget(struct web *w);

/* web_book.c: the address book from the store; NULL on a read failure
 * (logged). Rebuilt only when the store changed since the last call. */
struct web_book *web_book_get(struct web *w);
void web_book_free(struct web_book *b);
const struct web_card *web_book_find(const struct web_book *b, const char *uuid);
/* "8-4-4-4-12" from the store's 32 hex digits. */
void web_book_uuid(const char *uid, char out[37]);

/* web_vcard.c: one card as vCard 3.0 (version 3) or 4.0 (version 4). */
void web_vcard_write(struct strbuf *out, const struct web_card *card, int version,
                     const char *domain);

/* web_dav.c: everything under /dav/ and /.well-known/carddav. */
void web_dav_handle(struct web_req *r, const char *path);

/* web_content.c: /content/... */
void web_content_handle(struct web_req *r, const char *path);

#endif
