/*
 * server/mediation — what the SIP core needs of the mediation role from
 * the store: the dial plan (rules, routes, the national pattern) built
 * into the proxy's struct dialplan at start, on reload and when parleyctl
 * changes it, and the lookups of numbers and outbound rights.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "dialplan/dialplan.h"
#include "proxy/proxy.h"
#include "server/runtime.h"
#include "store/store.h"

/* Where `parleyctl dialplan national` keeps the national pattern. */
#define MEDIATION_NATIONAL_KEY "dialplan.national"

struct mediation_rows {
    struct store_dialplan_rule *rules;
    size_t nrules, rules_cap;
    struct store_route *routes;
    size_t nroutes, routes_cap;
};

static int mediation_rule_row(const struct store_dialplan_rule *r, void *arg)
{
    struct mediation_rows *m = arg;
    if (m->nrules == m->rules_cap) {
        size_t cap = m->rules_cap ? m->rules_cap * 2 : 16;
        void *v = realloc(m->rules, cap * sizeof(*m->rules));
        if (!v)
            return -ENOMEM;
        m->rules = v;
        m->rules_cap = cap;
    }
    m->rules[m->nrules++] = *r;
    return 0;
}

static int mediation_route_row(const struct store_route *r, void *arg)
{
    struct mediation_rows *m = arg;
    if (m->nroutes == m->routes_cap) {
        size_t cap = m->routes_cap ? m->routes_cap * 2 : 16;
        void *v = realloc(m->routes, cap * sizeof(*m->routes));
        if (!v)
            return -ENOMEM;
        m->routes = v;
        m->routes_cap = cap;
    }
    m->routes[m->nroutes++] = *r;
    return 0;
}

struct mediation_trunks {
    struct store_trunk *v;
    size_t n, cap;
};

static int mediation_trunk_row(const struct store_trunk *t, void *arg)
{
    struct mediation_trunks *m = arg;
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 8;
        void *v = realloc(m->v, cap * sizeof(*m->v));
        if (!v)
            return -ENOMEM;
        m->v = v;
        m->cap = cap;
    }
    m->v[m->n++] = *t;
    return 0;
}

/* The trunks from the store into the proxy; a table that fails to build
 * leaves the one in force, logged. */
static int mediation_load_trunks(struct runtime *rt)
{
    struct mediation_trunks m = {0};
    struct proxy_trunk_def *defs = NULL;
    char err[400] = "";
    int rc = store_trunk_list(rt->store, mediation_trunk_row, &m);
    if (rc != 0) {
        snprintf(err, sizeof(err), "%s", store_errmsg(rt->store));
        goto out;
    }
    defs = calloc(m.n ? m.n : 1, sizeof(*defs));
    if (!defs) {
        rc = -ENOMEM;
        snprintf(err, sizeof(err), "out of memory");
        goto out;
    }
    for (size_t i = 0; i < m.n; i++)
        defs[i] = (struct proxy_trunk_def){m.v[i].name, m.v[i].gateway, m.v[i].transport,
                                           m.v[i].srtp_mode, m.v[i].address};
    rc = proxy_set_trunks(rt->proxy, defs, m.n, err, sizeof(err));
    if (rc == 0)
        log_info("trunks.loaded", "trunks", LOG_INT(m.n));
out:
    if (rc != 0)
        log_error("trunks.load_failed", "reason", err, "action",
                  "the trunks in force are unchanged");
    free(defs);
    free(m.v);
    return rc;
}

int mediation_load_dialplan(struct runtime *rt)
{
    struct mediation_rows m = {0};
    struct dialplan_rule *rules = NULL;
    struct dialplan_route_def *routes = NULL;
    struct dialplan *dp = NULL;
    char national[STORE_DIALPLAN_PATTERN_MAX + 1] = "", err[400] = "";
    int rc = store_dialplan_list(rt->store, mediation_rule_row, &m);
    if (rc == 0)
        rc = store_route_list(rt->store, mediation_route_row, &m);
    if (rc == 0) {
        rc = store_setting_get(rt->store, MEDIATION_NATIONAL_KEY, national, sizeof(national));
        if (rc == -ENOENT)
            rc = 0;
    }
    if (rc != 0) {
        snprintf(err, sizeof(err), "%s", store_errmsg(rt->store));
        goto out;
    }
    rules = calloc(m.nrules ? m.nrules : 1, sizeof(*rules));
    routes = calloc(m.nroutes ? m.nroutes : 1, sizeof(*routes));
    if (!rules || !routes) {
        rc = -ENOMEM;
        snprintf(err, sizeof(err), "out of memory");
        goto out;
    }
    for (size_t i = 0; i < m.nrules; i++)
        rules[i] =
            (struct dialplan_rule){m.rules[i].name, m.rules[i].pattern, m.rules[i].translation};
    for (size_t i = 0; i < m.nroutes; i++)
        routes[i] =
            (struct dialplan_route_def){m.routes[i].name, m.routes[i].pattern, m.routes[i].trunks};
    rc = dialplan_new(rules, m.nrules, routes, m.nroutes, national, &dp, err, sizeof(err));
    if (rc != 0)
        goto out;
    /* the proxy reads the plan only on this thread: swap, then free */
    proxy_set_dialplan(rt->proxy, dp);
    dialplan_free(rt->dialplan);
    rt->dialplan = dp;
    log_info("dialplan.loaded", "rules", LOG_INT(m.nrules), "routes", LOG_INT(m.nroutes),
             "national", national);
out:
    if (rc != 0)
        log_error("dialplan.load_failed", "reason", err, "action",
                  "the dial plan in force is unchanged");
    free(rules);
    free(routes);
    free(m.rules);
    free(m.routes);
    /* the trunks load on their own: a dial plan that fails leaves them be */
    int trc = rt->proxy ? mediation_load_trunks(rt) : 0;
    return rc ? rc : trc;
}

int mediation_number_owner(void *arg, const char *number, char *user, size_t cap)
{
    struct runtime *rt = arg;
    struct store_user u;
    int rc = store_user_by_number(rt->store, number, &u);
    if (rc == 0 && strlen(u.name) >= cap)
        rc = -ENOSPC;
    if (rc == 0)
        memcpy(user, u.name, strlen(u.name) + 1);
    return rc;
}

int mediation_user_outbound(void *arg, const char *user, enum dialplan_outbound *out)
{
    struct runtime *rt = arg;
    struct store_user u;
    int rc = store_user_get(rt->store, user, &u);
    if (rc == 0)
        rc = dialplan_outbound_parse(u.outbound, out);
    return rc;
}

int mediation_user_number(void *arg, const char *user, char *out, size_t cap)
{
    struct runtime *rt = arg;
    struct store_user u;
    int rc = store_user_get(rt->store, user, &u);
    if (rc == 0 && strlen(u.number) >= cap)
        rc = -ENOSPC;
    if (rc == 0)
        memcpy(out, u.number, strlen(u.number) + 1);
    else if (cap)
        out[0] = '\0';
    return rc;
}

void mediation_stop(struct runtime *rt)
{
    if (rt->proxy)
        proxy_set_dialplan(rt->proxy, NULL);
    dialplan_free(rt->dialplan);
    rt->dialplan = NULL;
}
