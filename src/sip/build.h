/*
 * sip/build — composing responses and new requests.
 */
#ifndef PARLEY_SIP_BUILD_H
#define PARLEY_SIP_BUILD_H

#include "core/strbuf.h"
#include "sip/msg.h"

/* The standard reason phrase for a status code ("OK", "Not Found"). */
const char *sip_reason_phrase(int status);

/*
 * Builds a response to req (RFC 3261 §8.2.6): copies every Via, From,
 * Call-ID, CSeq and To, adding `to_tag` to To when the To has no tag and
 * status > 100. reason NULL means the standard phrase; CR/LF and other
 * control characters in reason are replaced. extra_headers, when not
 * NULL, is inserted verbatim before Content-Length: complete lines, each
 * ending in CRLF (anything else, or an empty line, is -EINVAL).
 * content_type may be NULL; body may be empty. Adds "Server: Parley" and
 * always Content-Length. to_tag (NULL or "" for none) must be a token. Appends to out (nothing
 * on failure). Returns 0, -EINVAL (req not a request, status outside
 * 100..699, a required header missing) or -ENOMEM.
 */
int sip_build_response(const struct sip_msg *req, int status, const char *reason,
                       const char *to_tag, const char *extra_headers, const char *content_type,
                       struct strview body, struct strbuf *out);

/*
 * Best-effort 400 for input that did not parse: if the raw bytes look like
 * a request and Via, From, To, Call-ID and CSeq lines can be found, builds a
 * response from them (every Via in order, folds unfolded, control
 * characters blanked; a To without a tag gets one derived from Call-ID and
 * From, stable across retransmissions); returns -EINVAL when no response
 * can be formed (the caller then just closes). Never reads past len.
 * Appends to out (nothing on failure).
 */
int sip_build_error_from_raw(const char *data, size_t len, int status, const char *reason,
                             struct strbuf *out);

#endif
