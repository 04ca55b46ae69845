/*
 * sip/session_timer — session timers (RFC 4028) for a dialog Parley is a
 * party of (the back-to-back user agent toward a gateway): the headers of
 * an offer, the answer to 422, the outcome of a 2xx, and when to refresh
 * or give up. Pure: no clock, no timers; the caller schedules.
 *
 *   offer       Session-Expires: 1800;refresher=uac, Min-SE: 90,
 *               Supported: timer
 *   422         retry with Session-Expires = Min-SE = the 422's Min-SE
 *               (only ever upward; bounded by SIP_SESSION_TIMER_MAX)
 *   2xx         with Session-Expires: the interval and who refreshes;
 *               without: no session timer on this dialog (§7.2)
 *   refresher   refreshes at half the interval
 *   the other   ends the dialog (BYE) when no refresh came by
 *               interval - min(32, interval / 3) (§10)
 */
#ifndef PARLEY_SIP_SESSION_TIMER_H
#define PARLEY_SIP_SESSION_TIMER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/strbuf.h"
#include "sip/msg.h"

#define SIP_SESSION_TIMER_MIN 90    /* Min-SE's floor (RFC 4028 §4) */
#define SIP_SESSION_TIMER_MAX 86400 /* Parley never agrees to more than a day */

struct sip_session_timer {
    bool active;       /* the dialog runs a session timer */
    bool we_refresh;   /* Parley sends the refreshes (else: the peer must) */
    uint32_t interval; /* seconds */
    uint32_t min_se;   /* seconds */
};

/* The header lines of a request that asks for interval (Parley as UAC
 * and refresher), each ending in CRLF. */
void sip_session_timer_offer(struct strbuf *out, uint32_t interval, uint32_t min_se);

/* A 422 to the request that asked for *interval, *min_se: both raised to
 * its Min-SE. 0, or -EINVAL when the 422 carries no usable Min-SE or one
 * no larger than what was asked (retrying would loop) or above
 * SIP_SESSION_TIMER_MAX. */
int sip_session_timer_on_422(const struct sip_msg *resp, uint32_t *interval, uint32_t *min_se);

/* The 2xx to Parley's request (Parley the UAC). 0 with *t filled (t->active
 * false when the 2xx has no Session-Expires), or -EINVAL for a
 * Session-Expires Parley cannot take (not a number, below min_se, a
 * refresher that is neither uac nor uas). */
int sip_session_timer_on_2xx(const struct sip_msg *resp, uint32_t min_se,
                             struct sip_session_timer *t);

/* Seconds after a refresh (or the 2xx) when Parley refreshes (we_refresh)
 * or, if none came, gives up on the dialog. */
uint32_t sip_session_timer_due(const struct sip_session_timer *t);

#endif
