/*
 * presence — the presence server (RFC 3856, RFC 3903, RFC 6665) for the
 * users of our domain: PUBLISH of PIDF documents, SUBSCRIBE / NOTIFY for
 * the `presence` event package, authorization by policy and per-user
 * rules, and a composed state across each user's devices.
 *
 * State published over a connection belongs to the device registered on
 * it: when that device's binding ends or its connection closes, what it
 * published goes at once. A user with no registered device is offline.
 * Subscriptions and publications live in memory, bounded per user and in
 * total; after a restart clients re-publish and re-subscribe when their
 * refresh fails (481/412), or at once when they reconnect.
 *
 * Belongs to the SIP core thread; NOTIFYs go out as client transactions
 * on the transaction layer it is given, over the watcher's connection.
 */
#ifndef PARLEY_PRESENCE_PRESENCE_H
#define PARLEY_PRESENCE_PRESENCE_H

#include <stdbool.h>
#include <stdint.h>

#include "net/conn.h"
#include "core/timer.h"
#include "registrar/registrar.h"
#include "sip/txn.h"

enum presence_policy {
    PRESENCE_POLICY_DOMAIN = 0, /* users of our domain see each other */
    PRESENCE_POLICY_CONTACTS,   /* only watchers on the presentity's allow list */
};

enum presence_rule {
    PRESENCE_RULE_NONE = 0,
    PRESENCE_RULE_ALLOW,
    PRESENCE_RULE_BLOCK,
};

struct presence_env {
    void *arg;
    const struct conn_info *(*conn_info)(void *arg, uint64_t conn);
    /* The connection to a partner domain's server if it is up (else it is
     * being made: ask again later), for watchers of other domains whose
     * connection closed; NULL when there is no federation. */
    uint64_t (*partner_conn)(void *arg, const char *domain);
    /* The rule `user` set for `watcher` ("name@domain"). */
    enum presence_rule (*rule)(void *arg, const char *user, const char *watcher);
    /* How Parley names itself toward conn, as a URI's host and port
     * ("sip.example.test:5061"): the advertised name (sip.advertised_name,
     * a name its certificate carries, so a client that opens a connection
     * to it can check the certificate) and the port of the listener conn
     * came in on, or of the server-to-server listener for a connection
     * Parley opened. NULL function: the connection's local address. */
    void (*self_address)(void *arg, uint64_t conn, char *out, size_t cap);
};

struct presence_config {
    const char *domain;
    enum presence_policy policy;
    uint64_t min_notify_interval_ms;
    uint32_t min_expires, max_expires;
    size_t max_subscriptions; /* in total; also bounds publications in total */
    size_t max_per_user;      /* subscriptions to one presentity, and publications of one user */
    size_t max_per_watcher;   /* subscriptions held by one watcher */
};

struct presence;

struct presence *presence_new(struct timer_heap *timers, struct sip_txn_layer *txn,
                              struct registrar *registrar, const struct presence_env *env,
                              const struct presence_config *cfg);
/* Applies a new configuration and re-checks every subscription's
 * authorization (a watcher who lost it gets terminated;reason=rejected). */
void presence_set_config(struct presence *ps, const struct presence_config *cfg);
void presence_free(struct presence *ps);

/* Is this the presence event package ("presence")? */
bool presence_handles_event(const struct sip_msg *req);

/* An authenticated, out-of-dialog SUBSCRIBE from `watcher` (user@domain)
 * for the local user `presentity`; answers it and sends the first NOTIFY. */
void presence_subscribe(struct presence *ps, struct sip_server_txn *st, const char *watcher,
                        const char *presentity);
/* A SUBSCRIBE inside one of our subscription dialogs (refresh or
 * unsubscribe). Returns false when it is not ours. */
bool presence_subscribe_in_dialog(struct presence *ps, struct sip_server_txn *st);
/* An authenticated PUBLISH by `user` of its own presence. */
void presence_publish(struct presence *ps, struct sip_server_txn *st, const char *user);

/* Rules of `user` changed (parleyctl presence allow|block): re-check the
 * authorization of its watchers. NULL: every user. */
void presence_rules_changed(struct presence *ps, const char *user);

/* The registrar's news: a device came or went. */
void presence_binding_added(struct presence *ps, const struct binding *b);
void presence_binding_removed(struct presence *ps, const struct binding *b);
void presence_conn_closed(struct presence *ps, uint64_t conn);

size_t presence_subscription_count(const struct presence *ps);
size_t presence_publication_count(const struct presence *ps);

#endif
