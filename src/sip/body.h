/*
 * Message bodies that may carry a session description: a body is either
 * application/sdp itself, or a multipart body (RFC 2046, RFC 5621) whose
 * parts are searched, nested at most SIP_BODY_MAX_DEPTH deep.
 *
 * The media policy must see every SDP a user agent may act on, so a body
 * Parley cannot read with certainty is an error, never "no SDP": a body
 * without Content-Type, a malformed multipart, two session descriptions,
 * an SDP part under a transfer or content encoding.
 */
#ifndef PARLEY_SIP_BODY_H
#define PARLEY_SIP_BODY_H

#include <stdbool.h>
#include <stddef.h>

#include "core/strview.h"

#define SIP_BODY_MAX_DEPTH 3  /* multipart inside multipart inside multipart */
#define SIP_BODY_MAX_PARTS 16 /* parts in one multipart */

/* Where the session description of a body is. */
struct sip_body_sdp {
    struct strview sdp; /* empty when the body carries none */
    size_t offset;      /* where sdp starts within the body */
    bool whole;         /* the body is application/sdp itself */
};

/* content_type: the whole Content-Type header value, parameters (the
 * boundary) included; empty when the message has none. Returns 0 with
 * *out filled (out->sdp empty when the body carries no SDP), or -EINVAL
 * with the reason in err. */
int sip_body_find_sdp(struct strview content_type, struct strview body, struct sip_body_sdp *out,
                      char *err, size_t cap);

#endif
