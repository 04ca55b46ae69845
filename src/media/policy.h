/*
 * media/policy — the media encryption level, enforced on every offer and
 * answer Parley routes (BRIEF.md: "SRTP ... enforced on every offer and
 * answer; SDES keys only ever travel over TLS hops").
 *
 * A pure decision module: it reads SDP (media/sdp.h), the level in force,
 * the allowed SDES suites and whether the hop the SDP arrived on and the
 * hop it leaves on are TLS, and says pass / pass with a rewritten SDP /
 * refuse with 488 and a Warning. The proxy applies the decision (and ends
 * dialogs whose answers are refused).
 *
 * A media section (m= line with port != 0) is *encrypted* when it
 * negotiates SDES with an allowed suite (RTP/SAVP, RTP/SAVPF, or the
 * optional-SRTP shape RFC 8643: RTP/AVP[F] carrying a=crypto) or DTLS-SRTP
 * (UDP/TLS/RTP/SAVP[F] with a=fingerprint). NULL ciphers, NULL
 * authentication and unknown suites never count as encrypted.
 *
 * In detail (media/policy.c): an a=crypto counts when its suite is in
 * `suites`, known to crypto/policy.h and encrypts and authenticates; it
 * has none of UNENCRYPTED_SRTP, UNENCRYPTED_SRTCP, UNAUTHENTICATED_SRTP;
 * every key is "inline" and decodes to the suite's key + salt length (a
 * wrong length is logged as event=media.crypto_key_length, never the key);
 * several keys carry MKIs of one length and distinct values. An answer
 * counts when it carries exactly one a=crypto whose tag and suite the offer
 * section offered. TCP/DTLS/RTP/SAVP[F] counts as DTLS-SRTP; a DTLS data
 * channel (UDP/DTLS/SCTP, TCP/DTLS/SCTP with a=fingerprint) counts as
 * encrypted and is not SRTP for `not_supported`; any other transport
 * (udptl, MSRP, ...) is unencrypted. Port 0 sections are "disabled".
 *
 * SDES key material, for the keys-only-over-TLS rules, is any a=crypto
 * (session level and disabled sections included), k= lines, and RFC 5939
 * a=acap capabilities that are crypto attributes.
 */
#ifndef PARLEY_MEDIA_POLICY_H
#define PARLEY_MEDIA_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "core/strbuf.h"
#include "core/strview.h"

/* Longest refusal text (a Warning header's quoted string). */
#define MEDIA_WARNING_MAX 256

enum media_level {
    MEDIA_LEVEL_REQUIRED = 0, /* the default */
    MEDIA_LEVEL_SUPPORTED,
    MEDIA_LEVEL_NOT_SUPPORTED,
};

/* "required" | "supported" | "not_supported"; 0 or -EINVAL. */
int media_level_parse(const char *text, enum media_level *out);
const char *media_level_name(enum media_level level);

struct media_policy {
    enum media_level level;
    /* Allowed SDES suites (RFC 4568 / RFC 7714 names); from
     * crypto/policy so FIPS mode can narrow it. */
    const char *const *suites;
    size_t nsuites;
};

/* Where the SDP travels: the hop it arrived on and the hop it leaves on. */
struct media_hops {
    bool in_tls;
    bool out_tls;
};

enum media_verdict {
    MEDIA_PASS,    /* forward unchanged */
    MEDIA_REWRITE, /* forward `sdp` instead (a=crypto removed) */
    MEDIA_REFUSE,  /* 488 Not Acceptable Here with `warning` */
};

/* What was decided, and what each media section negotiates (for the call
 * log): one line per m= section, e.g. "audio SRTP AES_CM_128_HMAC_SHA1_80",
 * "video DTLS-SRTP", "audio unencrypted (level supported)", "audio
 * disabled"; also "audio SRTP AES_CM_128_HMAC_SHA1_80 (optional)" for an
 * optional-SRTP offer passed on with its keys, and "application DTLS" for
 * a data channel. The summary is filled in for refusals too. */
struct media_decision {
    enum media_verdict verdict;
    char warning[MEDIA_WARNING_MAX]; /* for Warning: 399 HOST "..." and the log */
    struct strbuf sdp;               /* MEDIA_REWRITE: the SDP to forward */
    struct strbuf summary;           /* lines as above, separated by "; " */
};

void media_decision_init(struct media_decision *d);
void media_decision_free(struct media_decision *d);

/*
 * An offer (in an INVITE, UPDATE, re-INVITE, or a 2xx for a late offer).
 *  - required: every active section must be encrypted or be an
 *    optional-SRTP offer (then its answer must select SRTP); plain RTP/AVP
 *    without a=crypto → REFUSE "media encryption required".
 *  - supported: PASS (optional SRTP passes unchanged).
 *  - not_supported: a section that demands SRTP (SAVP/SAVPF, DTLS) →
 *    REFUSE; a=crypto removed from optional-SRTP sections → REWRITE.
 *  - Keys only over TLS: a=crypto arriving over a non-TLS hop → REFUSE
 *    "SDES keys received over an unencrypted hop" (whatever the level).
 *    Leaving toward a non-TLS hop: a section whose keys are required
 *    (SAVP/SAVPF with a=crypto) → REFUSE; under `supported`, an
 *    optional-SRTP section loses its a=crypto (REWRITE, profile stays
 *    RTP/AVP); under `required` an optional-SRTP section toward a non-TLS
 *    hop cannot become encrypted → REFUSE.
 * Malformed SDP → REFUSE is not used: returns -EINVAL with `warning`
 * naming the fault (the caller answers 400).
 */
int media_policy_offer(const struct media_policy *pol, struct strview sdp,
                       const struct media_hops *hops, struct media_decision *out);

/*
 * An answer to `offer` (both as they were forwarded). Under `required`
 * every active section of the answer must be encrypted (for an
 * optional-SRTP offer: the answer must have selected SRTP, i.e. carry
 * a=crypto with an allowed suite, or use SAVP); a section the answerer
 * rejected (port 0) is fine. Under `not_supported` an answer that selects
 * SRTP is refused. The keys-only-over-TLS rules apply as for offers.
 * REFUSE means: the dialog must not be set up (the proxy ends it).
 * Toward a non-TLS hop an answer whose active RTP section carries a=crypto
 * is refused rather than rewritten (removing the key the answerer selected
 * would not undo its choice of SRTP); key material elsewhere (disabled
 * sections, session level, a DTLS section) is removed (REWRITE). An answer
 * with another number of m= sections than the offer: -EINVAL.
 */
int media_policy_answer(const struct media_policy *pol, struct strview offer, struct strview answer,
                        const struct media_hops *hops, struct media_decision *out);

/* Is the description a hold (RFC 6337 §5.3): every active media section
 * sendonly or inactive, or aimed at 0.0.0.0? false for an unreadable one. */
bool media_sdp_is_hold(struct strview sdp);

#endif
