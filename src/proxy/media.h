/*
 * proxy/media — the media encryption level on the calls Parley routes:
 * every offer and answer is checked (media/policy decides) and may be
 * rewritten in place. Decisions only: what a refusal leads to (488 to the
 * caller, ACK and BYE to an answerer) is for the caller of these
 * functions. Leaf of the folder.
 */
#ifndef PARLEY_PROXY_MEDIA_H
#define PARLEY_PROXY_MEDIA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/strbuf.h"
#include "sip/body.h"
#include "sip/msg.h"

struct proxy;

enum proxy_media_result {
    PROXY_MEDIA_OK,
    PROXY_MEDIA_REFUSED, /* 488: `warning` says why */
    PROXY_MEDIA_BAD,     /* malformed SDP: 400 */
};

/* media.encryption_level and media.srtp_suites in force. */
void proxy_media_configure(struct proxy *p, const char *level, const char *const *suites,
                           size_t nsuites);
void proxy_media_free(struct proxy *p);
/* Does m carry an SDP (or a body that cannot be read with certainty)? */
bool proxy_media_has_sdp(const struct sip_msg *m);
/* An offer in a message about to leave on out_conn, having come over
 * in_conn; may rewrite m's body. On success the SDP as sent goes to
 * `sent` (if not NULL). `anchored`: the media engine will rewrite it
 * toward out_conn with keys of its own (proxy/anchor decides and checks
 * that leg's protection against that hop), so only the incoming hop and
 * the level are checked here. */
enum proxy_media_result proxy_media_offer(struct proxy *p, struct sip_msg *m, uint64_t in_conn,
                                          uint64_t out_conn, bool anchored, struct strbuf *sent,
                                          char *warning, size_t cap);
/* An answer to `offer` in m (a response, an ACK or a PRACK) about to leave
 * on out_conn, having come over in_conn; may rewrite m's body. On success
 * `summary` says what each media section negotiated. */
enum proxy_media_result proxy_media_answer(struct proxy *p, struct strview offer, struct sip_msg *m,
                                           uint64_t in_conn, uint64_t out_conn, char *warning,
                                           size_t cap, char *summary, size_t summary_cap);
/* The SDP of m's body (the whole body, or its one application/sdp part):
 * 0 with found (found->sdp empty when there is none), or -EINVAL with the
 * reason when the body cannot be read with certainty. */
int proxy_media_find_sdp(const struct sip_msg *m, struct sip_body_sdp *found, char *warning,
                         size_t cap);
/* Puts sdp where found was (a multipart's other parts untouched). A
 * message whose rewrite fails must not go out with the old SDP (it may
 * hold keys): the caller refuses it. 0 or -ENOMEM. */
int proxy_media_replace_sdp(struct sip_msg *m, const struct sip_body_sdp *found,
                            const struct strbuf *sdp);
/* A Warning header line (CRLF-terminated) for a refusal. */
void proxy_media_warning_header(struct proxy *p, const char *warning, char *out, size_t cap);

#endif
