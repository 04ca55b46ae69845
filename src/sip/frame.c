/*
 * Stream framing: one forward scan for the end of the head, then one over
 * the head's lines for Content-Length. Nothing past `avail` is read.
 */
#include "sip/frame.h"

#include <stdbool.h>
#include <string.h>

#include "sip/lex.h"

static const char ping[4] = {'\r', '\n', '\r', '\n'};

static enum sip_frame_result scan_keepalive(const char *data, size_t avail, struct sip_frame *out)
{
    size_t n = 0;

    if (avail >= 4 && memcmp(data, ping, 4) == 0) {
        out->len = 4;
        out->ping = 1;
        return SIP_FRAME_KEEPALIVE;
    }
    /* A ping may arrive split; wait for the rest of it. */
    if (avail < 4 && memcmp(data, ping, avail) == 0)
        return SIP_FRAME_NEED_MORE;
    while (n < avail && (data[n] == '\r' || data[n] == '\n')) {
        /* Stop in front of a ping so the next call answers it. */
        if (n > 0 && avail - n >= 4 && memcmp(data + n, ping, 4) == 0)
            break;
        n++;
    }
    out->len = n;
    return SIP_FRAME_KEEPALIVE;
}

/* Skips SP/HTAB and line folds (CRLF or LF followed by SP/HTAB). */
static size_t skip_lws(const char *d, size_t i, size_t end)
{
    for (;;) {
        while (i < end && (d[i] == ' ' || d[i] == '\t'))
            i++;
        size_t j = i;
        if (j < end && d[j] == '\r')
            j++;
        if (j < end && d[j] == '\n' && j + 1 < end && (d[j + 1] == ' ' || d[j + 1] == '\t')) {
            i = j + 1;
            continue;
        }
        return i;
    }
}

enum cl_state { CL_OK, CL_BAD, CL_HUGE };

/* The Content-Length value after the colon at i; values above max come
 * back as CL_HUGE so no arithmetic can overflow. */
static enum cl_state cl_value(const char *d, size_t i, size_t end, size_t max, size_t *out)
{
    size_t v = 0, ds;
    bool huge = false;

    i = skip_lws(d, i, end);
    ds = i;
    while (i < end && d[i] >= '0' && d[i] <= '9') {
        size_t digit = (size_t)(d[i] - '0');
        if (!huge && (v > max / 10 || (v == max / 10 && digit > max % 10)))
            huge = true;
        if (!huge)
            v = v * 10 + digit;
        i++;
    }
    if (i == ds)
        return CL_BAD;
    i = skip_lws(d, i, end);
    if (i >= end || (d[i] != '\r' && d[i] != '\n'))
        return CL_BAD;
    *out = v;
    return huge ? CL_HUGE : CL_OK;
}

static bool is_cl_name(const char *d, size_t n)
{
    return (n == 1 && (d[0] | 0x20) == 'l') ||
           (n == 14 && sip_lex_eq_nocase(d, "content-length", 14));
}

enum sip_frame_result sip_frame_scan(const char *data, size_t avail, size_t max_size,
                                     struct sip_frame *out)
{
    size_t limit = avail < max_size ? avail : max_size;
    size_t head = 0, i = 0;

    out->len = 0;
    out->ping = 0;
    out->reason = NULL;
    if (avail == 0)
        return SIP_FRAME_NEED_MORE;
    if (data[0] == '\r' || data[0] == '\n')
        return scan_keepalive(data, avail, out);

    /* The head ends at the first empty line: "\n\n" or "\n\r\n". */
    while (i < limit) {
        const char *nl = memchr(data + i, '\n', limit - i);
        if (!nl)
            break;
        size_t k = (size_t)(nl - data);
        if (k + 1 < limit && data[k + 1] == '\n') {
            head = k + 2;
            break;
        }
        if (k + 2 < limit && data[k + 1] == '\r' && data[k + 2] == '\n') {
            head = k + 3;
            break;
        }
        i = k + 1;
    }
    if (head == 0) {
        if (avail >= max_size) {
            out->reason = "no end of headers within the size limit";
            return SIP_FRAME_TOO_LARGE;
        }
        return SIP_FRAME_NEED_MORE;
    }

    /* Content-Length, in full or compact form, skipping the start line
     * and continuation lines. */
    size_t cl = 0;
    bool have_cl = false, huge = false;
    const char *first_nl = memchr(data, '\n', head);
    for (size_t ls = (size_t)(first_nl - data) + 1; ls < head;) {
        const char *nl = memchr(data + ls, '\n', head - ls);
        size_t le = (size_t)(nl - data);
        char c = (char)(data[ls] | 0x20);
        if (c == 'c' || c == 'l') {
            size_t ne = ls;
            while (ne < le && sip_lex_is((unsigned char)data[ne], SIP_C_TOKEN))
                ne++;
            size_t colon = ne;
            while (colon < le && (data[colon] == ' ' || data[colon] == '\t'))
                colon++;
            if (colon < le && data[colon] == ':' && is_cl_name(data + ls, ne - ls)) {
                size_t v = 0;
                enum cl_state st = cl_value(data, colon + 1, head, max_size, &v);
                if (st == CL_BAD) {
                    out->reason = "malformed Content-Length";
                    return SIP_FRAME_BAD;
                }
                bool h = st == CL_HUGE;
                if (have_cl && (h != huge || v != cl)) {
                    out->reason = "conflicting Content-Length headers";
                    return SIP_FRAME_BAD;
                }
                have_cl = true;
                huge = h;
                cl = v;
            }
        }
        ls = le + 1;
    }
    if (!have_cl) {
        out->reason = "missing Content-Length";
        return SIP_FRAME_BAD;
    }
    if (huge || cl > max_size - head) {
        out->reason = "message larger than the size limit";
        return SIP_FRAME_TOO_LARGE;
    }
    if (avail < head + cl)
        return SIP_FRAME_NEED_MORE;
    out->len = head + cl;
    return SIP_FRAME_MESSAGE;
}
