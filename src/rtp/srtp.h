/*
 * rtp/srtp — SRTP and SRTCP (RFC 3711) on OpenSSL 3, for the media engine's
 * packet path: AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32 (RFC 4568)
 * and AEAD_AES_128_GCM, AEAD_AES_256_GCM (RFC 7714), without MKI.
 *
 * Two objects:
 *   struct rtp_srtp_crypto  the algorithms, fetched once from an OpenSSL
 *                           library context and property query (OpenSSL 3's
 *                           implicit fetches are slow; the FIPS mode hands
 *                           in the FIPS provider's context). One per worker
 *                           thread; it must outlive the sessions made on it.
 *   struct rtp_srtp         one direction of one leg: one master key and
 *                           salt, the session keys for SRTP and SRTCP derived
 *                           once at creation (RFC 3711 §4.3, key derivation
 *                           rate 0, AES-CM PRF), cipher and MAC contexts
 *                           keyed once (SRTCP's at its first packet: most
 *                           streams send little or no RTCP, and the contexts
 *                           are most of a session's memory), and the state
 *                           of up to RTP_SRTP_MAX_SSRC sources: ROC, highest
 *                           sequence number and replay window for SRTP, sent
 *                           index or replay window for SRTCP (each window a
 *                           ring of the power of two of bits that holds it).
 * A session is used by one thread at a time. The same session may protect
 * or unprotect; a leg uses one session per direction, each with its own
 * master key, so that a key never encrypts in both directions.
 *
 * The packet functions work in place on the caller's buffer, allocate
 * nothing (but SRTCP's contexts, once per session, at its first SRTCP
 * packet), never log, and return 0 or a negative errno:
 *   -EINVAL     malformed (too short, not version 2, header past the end,
 *               larger than RTP_SRTP_MAX_PACKET)
 *   -ENOSPC     no room for the trailer in the buffer, or a new SSRC when
 *               RTP_SRTP_MAX_SSRC are already tracked
 *   -EALREADY   replayed, or older than the replay window (§3.3.2); the
 *               sender refuses the same way to protect an index twice,
 *               which would reuse keystream
 *   -EBADMSG    authentication failed
 *   -EPROTO     an SRTCP packet sent unencrypted (E flag clear) where
 *               that was not negotiated (rtp_srtp_allow_unencrypted_srtcp)
 *   -EOVERFLOW  the key's lifetime is over for this source (2^48 SRTP
 *               packets, 2^31 SRTCP packets): rekey
 *   -EIO        OpenSSL failed (not expected once the session exists;
 *               SRTCP's contexts not made at its first packet: that
 *               session then takes and sends no SRTCP)
 * Nothing in a session changes unless a packet is accepted: the index is
 * estimated and checked against the replay window first, the tag verified,
 * and only then are ROC, highest index and window updated. A refused
 * packet's bytes after its header may have been altered (an AES-GCM
 * decryption that fails its tag leaves them zeroed); drop it.
 *
 * Keys live only inside these structs and are cleansed when they are
 * freed; nothing here logs or prints a key.
 */
#ifndef PARLEY_RTP_SRTP_H
#define PARLEY_RTP_SRTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#include "core/strview.h"

enum rtp_srtp_suite {
    RTP_SRTP_AES_CM_128_HMAC_SHA1_80,
    RTP_SRTP_AES_CM_128_HMAC_SHA1_32,
    RTP_SRTP_AEAD_AES_128_GCM,
    RTP_SRTP_AEAD_AES_256_GCM,
    RTP_SRTP_SUITE_COUNT,
};

#define RTP_SRTP_MAX_KEY  32
#define RTP_SRTP_MAX_SALT 14
/* Octets protect appends at most: SRTP a tag, SRTCP the E flag and index
 * word and a tag. */
#define RTP_SRTP_MAX_TRAILER  16
#define RTP_SRTCP_MAX_TRAILER 20
/* Largest packet accepted (a UDP datagram's payload at most). */
#define RTP_SRTP_MAX_PACKET 65535
/* Sources tracked per session and direction; more are refused. */
#define RTP_SRTP_MAX_SSRC 8
/* Replay window (media.replay_window): RFC 3711 §3.3.2 asks for at least
 * 64; 0 given to rtp_srtp_new means the default. */
#define RTP_SRTP_REPLAY_DEFAULT 128
#define RTP_SRTP_REPLAY_MIN     64
#define RTP_SRTP_REPLAY_MAX     1024
/* Key lifetimes (RFC 3711 §9.2): indices are 48 bits for SRTP, 31 for
 * SRTCP. */
#define RTP_SRTP_INDEX_LIMIT  (UINT64_C(1) << 48)
#define RTP_SRTCP_INDEX_LIMIT (UINT64_C(1) << 31)
/* Characters of the longest SDES inline key-salt, and its NUL. */
#define RTP_SRTP_INLINE_MAX 61

/* RFC 3711 §4.3.1 key derivation labels. */
enum rtp_srtp_label {
    RTP_SRTP_LABEL_RTP_ENCRYPTION = 0,
    RTP_SRTP_LABEL_RTP_AUTH = 1,
    RTP_SRTP_LABEL_RTP_SALT = 2,
    RTP_SRTP_LABEL_RTCP_ENCRYPTION = 3,
    RTP_SRTP_LABEL_RTCP_AUTH = 4,
    RTP_SRTP_LABEL_RTCP_SALT = 5,
};

struct rtp_srtp_crypto;
struct rtp_srtp;

/* --- suites --------------------------------------------------------------- */

/* The suite of an SDES crypto-suite name (RFC 4568 §6.2, RFC 7714 §14.1),
 * compared case-sensitively as registered. Returns 0, -ENOTSUP for a suite
 * crypto/policy knows but this module does not implement (AES-192/256-CM,
 * F8, NULL), -EINVAL for anything else. */
int rtp_srtp_suite_parse(struct strview sdes_name, enum rtp_srtp_suite *out);
/* "AES_CM_128_HMAC_SHA1_80", ...; "?" for an invalid value. */
const char *rtp_srtp_suite_name(enum rtp_srtp_suite suite);
/* Master key and salt octets: 16/14, 16/14, 16/12, 32/12 (0 if invalid). */
size_t rtp_srtp_suite_key_len(enum rtp_srtp_suite suite);
size_t rtp_srtp_suite_salt_len(enum rtp_srtp_suite suite);
/* SRTP tag octets: 10, 4, 16, 16. */
size_t rtp_srtp_suite_tag_len(enum rtp_srtp_suite suite);
/* SRTCP tag octets: 10, 10 (RFC 3711 §5.2, RFC 4568 §6.2.1: the _32 suite
 * keeps an 80-bit tag on SRTCP), 16, 16. */
size_t rtp_srtcp_suite_tag_len(enum rtp_srtp_suite suite);

/* --- algorithms, once per thread ------------------------------------------ */

/* Fetches AES-128/256-CTR, AES-128/256-GCM and HMAC from libctx (NULL: the
 * default context) with propq (may be NULL). Returns 0, -ENOMEM, or
 * -ENOTSUP when not one suite can work there. A suite whose algorithms
 * could not be fetched is reported by rtp_srtp_crypto_has_suite. */
int rtp_srtp_crypto_new(OSSL_LIB_CTX *libctx, const char *propq, struct rtp_srtp_crypto **out);
void rtp_srtp_crypto_free(struct rtp_srtp_crypto *c);
bool rtp_srtp_crypto_has_suite(const struct rtp_srtp_crypto *c, enum rtp_srtp_suite suite);

/* --- sessions --------------------------------------------------------------- */

/* A session for suite keyed with master_key and master_salt (the suite's
 * lengths), with a replay window of replay_window packets (0: the default;
 * otherwise RTP_SRTP_REPLAY_MIN..RTP_SRTP_REPLAY_MAX). Returns 0, -EINVAL,
 * -ENOTSUP (suite not available in c), -ENOMEM or -EIO. */
int rtp_srtp_new(struct rtp_srtp_crypto *c, enum rtp_srtp_suite suite, const uint8_t *master_key,
                 const uint8_t *master_salt, unsigned replay_window, struct rtp_srtp **out);
void rtp_srtp_free(struct rtp_srtp *s);
enum rtp_srtp_suite rtp_srtp_suite(const struct rtp_srtp *s);

/* Protects the RTP packet pkt[0..len) in place: encrypts its payload and
 * appends the tag, so cap must leave rtp_srtp_suite_tag_len octets after
 * len. *out_len gets the SRTP length. */
int rtp_srtp_protect(struct rtp_srtp *s, uint8_t *pkt, size_t len, size_t cap, size_t *out_len);
/* Verifies and decrypts the SRTP packet pkt[0..len) in place; *out_len
 * gets the RTP length (the tag removed). ROC estimation as RFC 3711
 * Appendix A, except that a stream still in ROC 0 never guesses ROC -1
 * (libsrtp reads such a packet with ROC 0 too). */
int rtp_srtp_unprotect(struct rtp_srtp *s, uint8_t *pkt, size_t len, size_t *out_len);

/* Protects the compound RTCP packet pkt[0..len) in place: encrypts all
 * but its first 8 octets (E flag always set), appends the E/index word and
 * the tag (cap must leave RTP_SRTCP_MAX_TRAILER octets, or exactly 4 plus
 * rtp_srtcp_suite_tag_len). The index is kept per sender SSRC, from 0. */
int rtp_srtcp_protect(struct rtp_srtp *s, uint8_t *pkt, size_t len, size_t cap, size_t *out_len);
/* Verifies and decrypts an SRTCP packet in place; *out_len gets the RTCP
 * length. A packet sent with the E flag clear (authenticated, not
 * encrypted; RFC 3711 §3.4) is refused with -EPROTO unless the session
 * allows it. */
int rtp_srtcp_unprotect(struct rtp_srtp *s, uint8_t *pkt, size_t len, size_t *out_len);
/* UNENCRYPTED_SRTCP was negotiated (RFC 4568 §6.3.2): accept SRTCP sent
 * with the E flag clear. Parley never offers it; off by default. */
void rtp_srtp_allow_unencrypted_srtcp(struct rtp_srtp *s, bool allow);

/* --- keys for SDES ------------------------------------------------------------ */

/* Fresh master key and salt for suite from the private DRBG of libctx
 * (RAND_priv_bytes_ex). key and salt must hold the suite's lengths.
 * Returns 0, -EINVAL or -EIO. */
int rtp_srtp_generate_master(OSSL_LIB_CTX *libctx, enum rtp_srtp_suite suite, uint8_t *key,
                             uint8_t *salt);
/* The SDES inline key-salt (RFC 4568 §6.1: base64 of key || salt, with
 * '=' padding) into out (cap >= RTP_SRTP_INLINE_MAX is always enough).
 * Returns 0, -EINVAL or -ENOSPC. */
int rtp_srtp_inline_encode(enum rtp_srtp_suite suite, const uint8_t *key, const uint8_t *salt,
                           char *out, size_t cap);
/* Decodes an inline key-salt (only the base64: the caller splits off any
 * "|lifetime|MKI"). Padding may be present or left out (some SDES
 * implementations drop it); the decoded length must be the suite's key
 * plus salt length exactly. Returns 0 or -EINVAL; key and salt are
 * written only on success. */
int rtp_srtp_inline_decode(struct strview b64, enum rtp_srtp_suite suite, uint8_t *key,
                           uint8_t *salt);

/* --- known-answer tests and test hooks -------------------------------------- */

/* The RFC 3711 §4.3 key derivation with key_derivation_rate 0: out_len
 * octets of the AES-CM PRF (§4.3.3) keyed with master_key (16 or 32
 * octets), from the IV (master_salt XOR label at octet 7) * 2^16. A
 * master salt shorter than 14 octets (the 12 of AEAD suites) is taken as
 * its first octets, the rest zero, as libsrtp does. Exposed so that tests
 * can check RFC 3711 B.2 and B.3 byte for byte. Returns 0, -EINVAL,
 * -ENOTSUP or -EIO. */
int rtp_srtp_kdf(const struct rtp_srtp_crypto *c, const uint8_t *master_key, size_t key_len,
                 const uint8_t *master_salt, size_t salt_len, enum rtp_srtp_label label,
                 uint8_t *out, size_t out_len);

/* Session keys given directly instead of derived: the RFC 7714 test
 * vectors are stated that way. Lengths are the suite's key and salt
 * lengths (session salt: 14 octets for AES-CM, 12 for AEAD) and 20 octets
 * of HMAC key (ignored for AEAD suites). For tests only. */
struct rtp_srtp_session_keys {
    uint8_t rtp_key[RTP_SRTP_MAX_KEY], rtp_salt[RTP_SRTP_MAX_SALT], rtp_auth[20];
    uint8_t rtcp_key[RTP_SRTP_MAX_KEY], rtcp_salt[RTP_SRTP_MAX_SALT], rtcp_auth[20];
};
int rtp_srtp_new_with_session_keys(struct rtp_srtp_crypto *c, enum rtp_srtp_suite suite,
                                   const struct rtp_srtp_session_keys *keys, unsigned replay_window,
                                   struct rtp_srtp **out);

/* Sets the state of source ssrc (tracking it if new) as if index had been
 * the last SRTP (48-bit: ROC << 16 | SEQ) or SRTCP (31-bit) packet seen or
 * sent, its replay window otherwise empty. For tests (the key lifetime,
 * the RFC 7714 SRTCP vectors' index); also what a stream resumed with a
 * known ROC needs. Returns 0, -EINVAL (index out of range) or -ENOSPC. */
int rtp_srtp_set_index(struct rtp_srtp *s, uint32_t ssrc, uint64_t index);
int rtp_srtcp_set_index(struct rtp_srtp *s, uint32_t ssrc, uint32_t index);

#endif
