/*
 * proxy/call — calls in progress and the call log (see call.h).
 */
#include "proxy/call.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/log.h"
#include "proxy/state.h"

static int64_t proxy_now(struct proxy *p)
{
    return clock_wall_s(timer_heap_clock(p->timers));
}

struct proxy_call *proxy_call_new(struct proxy *p, const struct sip_msg *invite, const char *caller,
                                  const char *callee)
{
    struct proxy_call *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->call_id = strview_dup(invite->call_id);
    if (!c->call_id) {
        free(c);
        return NULL;
    }
    snprintf(c->caller, sizeof(c->caller), "%s", caller);
    snprintf(c->callee, sizeof(c->callee), "%s", callee);
    c->started = proxy_now(p);
    c->refs = 1;
    c->next_live = p->live_calls;
    if (p->live_calls)
        p->live_calls->prev_live = c;
    p->live_calls = c;
    c->p = p;
    log_info("call.started", "call_id", c->call_id, "caller", c->caller, "callee", c->callee);
    return c;
}

static void proxy_call_unlist(struct proxy_call *c)
{
    if (!c->p)
        return;
    if (c->prev_live)
        c->prev_live->next_live = c->next_live;
    else
        c->p->live_calls = c->next_live;
    if (c->next_live)
        c->next_live->prev_live = c->prev_live;
    c->prev_live = c->next_live = NULL;
    c->p = NULL;
}

void proxy_call_finish(struct proxy *p, struct proxy_call *call, const char *reason)
{
    if (!call || call->logged)
        return;
    proxy_call_unlist(call);
    call->logged = true;
    call->ended = proxy_now(p);
    log_info("call.ended", "call_id", call->call_id, "caller", call->caller, "callee", call->callee,
             "answered", call->answered ? "yes" : "no", "duration_s",
             LOG_INT(call->answered ? call->ended - call->answered : 0), "reason", reason);
    struct proxy_call_record rec = {
        .media = call->media[0] ? call->media : NULL,
        .legs = call->legs,
        .call_id = call->call_id,
        .caller = call->caller,
        .callee = call->callee,
        .started = call->started,
        .answered = call->answered,
        .ended = call->ended,
        .reason = reason,
    };
    if (p->env.call_ended)
        p->env.call_ended(p->env.arg, &rec);
}

void proxy_call_answered(struct proxy *p, struct proxy_call *call)
{
    if (!call || call->answered)
        return;
    call->answered = proxy_now(p);
    log_info("call.answered", "call_id", call->call_id, "caller", call->caller, "callee",
             call->callee);
}

void proxy_call_release(struct proxy_call *call)
{
    if (!call || --call->refs > 0)
        return;
    proxy_call_unlist(call);
    free(call->call_id);
    free(call->legs);
    free(call);
}
