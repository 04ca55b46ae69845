/*
 * sip/session_timer — RFC 4028 session timers (see session_timer.h).
 */
#include "sip/session_timer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A delta-seconds value at the start of v (up to ';' or the end), then
 * the rest (parameters) in *params. */
static int session_timer_seconds(struct strview v, uint32_t *out, struct strview *params)
{
    size_t i = 0;
    uint64_t n = 0;
    while (i < v.n && v.p[i] >= '0' && v.p[i] <= '9') {
        n = n * 10 + (uint64_t)(v.p[i] - '0');
        if (n > UINT32_MAX)
            return -EINVAL;
        i++;
    }
    if (i == 0)
        return -EINVAL;
    size_t j = i;
    while (j < v.n && (v.p[j] == ' ' || v.p[j] == '\t'))
        j++;
    if (j < v.n && v.p[j] != ';')
        return -EINVAL;
    *out = (uint32_t)n;
    if (params)
        *params = strview_make(v.p + j, v.n - j);
    return 0;
}

/* The value of ;refresher= in params ("" when absent). */
static struct strview session_timer_refresher(struct strview params)
{
    static const char key[] = "refresher=";
    for (size_t i = 0; i < params.n; i++) {
        if (params.p[i] != ';')
            continue;
        size_t j = i + 1;
        while (j < params.n && params.p[j] == ' ')
            j++;
        if (params.n - j >= sizeof(key) - 1 &&
            strncasecmp(params.p + j, key, sizeof(key) - 1) == 0) {
            j += sizeof(key) - 1;
            size_t k = j;
            while (k < params.n && params.p[k] != ';' && params.p[k] != ' ')
                k++;
            return strview_make(params.p + j, k - j);
        }
    }
    return strview_make("", 0);
}

void sip_session_timer_offer(struct strbuf *out, uint32_t interval, uint32_t min_se)
{
    strbuf_printf(out,
                  "Session-Expires: %u;refresher=uac\r\n"
                  "Min-SE: %u\r\n"
                  "Supported: timer\r\n",
                  interval, min_se);
}

int sip_session_timer_on_422(const struct sip_msg *resp, uint32_t *interval, uint32_t *min_se)
{
    const struct sip_hdr *h = sip_msg_hdr_find_name(resp, "Min-SE");
    uint32_t want;
    if (!h || session_timer_seconds(h->value, &want, NULL) != 0 || want <= *interval ||
        want > SIP_SESSION_TIMER_MAX)
        return -EINVAL;
    *interval = want;
    *min_se = want;
    return 0;
}

int sip_session_timer_on_2xx(const struct sip_msg *resp, uint32_t min_se,
                             struct sip_session_timer *t)
{
    memset(t, 0, sizeof(*t));
    t->min_se = min_se;
    const struct sip_hdr *h = sip_msg_hdr_first(resp, SIP_HDR_SESSION_EXPIRES);
    if (!h)
        return 0; /* §7.2: no Session-Expires, no session timer */
    struct strview params;
    uint32_t interval;
    if (session_timer_seconds(h->value, &interval, &params) != 0 || interval < min_se ||
        interval < SIP_SESSION_TIMER_MIN || interval > SIP_SESSION_TIMER_MAX)
        return -EINVAL;
    struct strview who = session_timer_refresher(params);
    if (strview_eq_nocase(who, "uas"))
        t->we_refresh = false;
    else if (strview_eq_nocase(who, "uac") || who.n == 0)
        t->we_refresh = true; /* §7.2: absent, the UAC chooses: Parley does */
    else
        return -EINVAL;
    t->active = true;
    t->interval = interval;
    return 0;
}

uint32_t sip_session_timer_due(const struct sip_session_timer *t)
{
    if (t->we_refresh)
        return t->interval / 2;
    uint32_t margin = t->interval / 3 < 32 ? t->interval / 3 : 32;
    return t->interval - margin;
}
