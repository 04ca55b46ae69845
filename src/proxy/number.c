/*
 * proxy/number — requests for phone numbers (see number.h).
 */
#include "proxy/number.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "dialplan/dialplan.h"
#include "proxy/b2bua.h"
#include "proxy/hop.h"
#include "proxy/reject.h"
#include "proxy/state.h"

/* Does the user part look dialled: digits, a leading '+', and RFC 3966
 * visual separators, with at least one digit? */
static bool number_looks_dialled(struct strview u)
{
    bool digit = false;
    for (size_t i = 0; i < u.n; i++) {
        char c = u.p[i];
        if (c >= '0' && c <= '9')
            digit = true;
        else if (!(c == '+' || c == '-' || c == '.' || c == '(' || c == ')'))
            return false;
    }
    return digit;
}

/* Is req for a number? A tel: URI always; a sip: URI of ours when it says
 * user=phone, or when its user part is dialled digits and names no user
 * (a user named "1234" keeps their calls). */
static bool number_requested(struct proxy *p, const struct sip_uri *uri)
{
    if (uri->scheme == SIP_URI_TEL)
        return uri->user.n > 0;
    if (!uri->user.n || !proxy_hop_uri_is_us(p, uri))
        return false;
    struct strview v;
    if (sip_uri_param(uri, "user", &v) && strview_eq_nocase(v, "phone"))
        return true;
    if (!number_looks_dialled(uri->user))
        return false;
    char name[PROXY_USER_MAX];
    return strview_copy(uri->user, name, sizeof(name)) != 0 ||
           !p->env.user_exists(p->env.arg, name);
}

int proxy_number_route(struct proxy *p, struct sip_server_txn *st, const struct sip_msg *req,
                       const char *caller_user, char *callee, size_t cap)
{
    if (!p->env.number_owner || !number_requested(p, &req->ruri))
        return 0;
    char digits[DIALPLAN_DIGITS_MAX + 1], number[DIALPLAN_DIGITS_MAX + 1], reason[200];
    const char *rule = NULL;
    if (dialplan_digits(req->ruri.user, digits) != 0 ||
        dialplan_normalise(p->dialplan, digits, number, &rule) != 0) {
        proxy_reject(p, st, 484, "Address Incomplete (not a phone number)",
                     "a number that is no number");
        return -1;
    }
    int rc = p->env.number_owner(p->env.arg, number, callee, cap);
    if (rc == 0)
        return 1;
    if (rc != -ENOENT) {
        proxy_reject(p, st, 500, NULL, "number lookup failed");
        return -1;
    }
    const char *route;
    const char *const *trunks;
    size_t ntrunks;
    if (!caller_user || dialplan_route(p->dialplan, number, &route, &trunks, &ntrunks) != 0) {
        snprintf(reason, sizeof(reason), "Not Found (no user has %s and no route takes it)",
                 number);
        proxy_reject(p, st, 404, reason, "number with no user and no route");
        return -1;
    }
    enum dialplan_outbound rights = DIALPLAN_OUTBOUND_NONE;
    if (p->env.user_outbound)
        (void)p->env.user_outbound(p->env.arg, caller_user, &rights);
    if (!dialplan_may_call(p->dialplan, rights, number)) {
        snprintf(reason, sizeof(reason), "Forbidden (%s may not call %s: outbound calls %s)",
                 caller_user, number, dialplan_outbound_name(rights));
        proxy_reject(p, st, 403, reason, "outbound call not allowed");
        return -1;
    }
    proxy_b2bua_to_trunks(p, st, req, caller_user, number, route, trunks, ntrunks);
    return -1;
}
