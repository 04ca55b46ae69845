/*
 * stun — STUN messages (RFC 8489) with the TURN methods and
 * attributes (RFC 8656): parsing with bounds checks, attribute access,
 * building, and the three integrity mechanisms (MESSAGE-INTEGRITY,
 * MESSAGE-INTEGRITY-SHA256, FINGERPRINT).
 *
 * Parsing never copies: a struct stun_msg indexes the attributes of a
 * buffer the caller keeps alive. It refuses anything RFC 8489 calls
 * malformed (see stun_msg_parse) and applies the ordering rules: what
 * follows MESSAGE-INTEGRITY is ignored except MESSAGE-INTEGRITY-SHA256 and
 * FINGERPRINT, what follows MESSAGE-INTEGRITY-SHA256 is ignored except
 * FINGERPRINT, and FINGERPRINT must be last.
 *
 * Long-term credential keys (RFC 8489 §9.2.2) are MD5 or SHA-256 of
 * "username:realm:password"; the digests are fetched once through EVP
 * (stun_crypto_init, or on first use), the HMACs come from crypto/mac.
 * Under a FIPS provider MD5 is not available: stun_password_alg_available
 * says so and stun_long_term_key returns -ENOTSUP, so a caller can offer
 * SHA-256 only and refuse MD5 clients with a clear reason. Usernames,
 * realms and passwords are used as the bytes given (no OpaqueString or
 * SASLprep processing: Parley's credentials are ASCII).
 *
 * Everything here is safe to call from any thread once initialised.
 * Parsing, attribute access, building and FINGERPRINT allocate nothing;
 * the HMAC and digest computations use short-lived OpenSSL contexts (they
 * serve requests, not the packet path), and integrity over a message
 * larger than STUN_INTEGRITY_STACK bytes copies it to the heap.
 */
#ifndef PARLEY_STUN_STUN_H
#define PARLEY_STUN_STUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#include "core/netaddr.h"
#include "core/strview.h"

#define STUN_HEADER_LEN   20
#define STUN_MAGIC_COOKIE 0x2112A442u
#define STUN_TID_LEN      12
/* The length field counts 4-byte units of attributes. */
#define STUN_MAX_MESSAGE (STUN_HEADER_LEN + 65532)
/* Attributes indexed per message; a message with more is refused. */
#define STUN_MAX_ATTRS       64
#define STUN_FINGERPRINT_XOR 0x5354554Eu
/* Integrity over messages up to this size is computed without allocating. */
#define STUN_INTEGRITY_STACK 2048

enum stun_class {
    STUN_CLASS_REQUEST = 0,
    STUN_CLASS_INDICATION = 1,
    STUN_CLASS_SUCCESS = 2,
    STUN_CLASS_ERROR = 3,
};

enum stun_method {
    STUN_METHOD_BINDING = 0x001,
    TURN_METHOD_ALLOCATE = 0x003,
    TURN_METHOD_REFRESH = 0x004,
    TURN_METHOD_SEND = 0x006,
    TURN_METHOD_DATA = 0x007,
    TURN_METHOD_CREATE_PERMISSION = 0x008,
    TURN_METHOD_CHANNEL_BIND = 0x009,
};

/* Attribute types (RFC 8489 §18.3, RFC 8656 §18). Below 0x8000 they are
 * comprehension-required. */
enum stun_attr_type {
    STUN_ATTR_MAPPED_ADDRESS = 0x0001,
    STUN_ATTR_USERNAME = 0x0006,
    STUN_ATTR_MESSAGE_INTEGRITY = 0x0008,
    STUN_ATTR_ERROR_CODE = 0x0009,
    STUN_ATTR_UNKNOWN_ATTRIBUTES = 0x000A,
    TURN_ATTR_CHANNEL_NUMBER = 0x000C,
    TURN_ATTR_LIFETIME = 0x000D,
    TURN_ATTR_XOR_PEER_ADDRESS = 0x0012,
    TURN_ATTR_DATA = 0x0013,
    STUN_ATTR_REALM = 0x0014,
    STUN_ATTR_NONCE = 0x0015,
    TURN_ATTR_XOR_RELAYED_ADDRESS = 0x0016,
    TURN_ATTR_REQUESTED_ADDRESS_FAMILY = 0x0017,
    TURN_ATTR_EVEN_PORT = 0x0018,
    TURN_ATTR_REQUESTED_TRANSPORT = 0x0019,
    TURN_ATTR_DONT_FRAGMENT = 0x001A,
    STUN_ATTR_MESSAGE_INTEGRITY_SHA256 = 0x001C,
    STUN_ATTR_PASSWORD_ALGORITHM = 0x001D,
    STUN_ATTR_USERHASH = 0x001E,
    STUN_ATTR_XOR_MAPPED_ADDRESS = 0x0020,
    TURN_ATTR_RESERVATION_TOKEN = 0x0022,
    STUN_ATTR_PRIORITY = 0x0024,
    STUN_ATTR_USE_CANDIDATE = 0x0025,
    TURN_ATTR_ADDITIONAL_ADDRESS_FAMILY = 0x8000,
    TURN_ATTR_ADDRESS_ERROR_CODE = 0x8001,
    STUN_ATTR_PASSWORD_ALGORITHMS = 0x8002,
    STUN_ATTR_ALTERNATE_DOMAIN = 0x8003,
    TURN_ATTR_ICMP = 0x8004,
    STUN_ATTR_SOFTWARE = 0x8022,
    STUN_ATTR_ALTERNATE_SERVER = 0x8023,
    STUN_ATTR_FINGERPRINT = 0x8028,
    STUN_ATTR_ICE_CONTROLLED = 0x8029,
    STUN_ATTR_ICE_CONTROLLING = 0x802A,
};

#define STUN_ATTR_COMPREHENSION_REQUIRED(t) ((t) < 0x8000)

/* PASSWORD-ALGORITHM values (RFC 8489 §18.5). */
enum stun_password_alg {
    STUN_PASSWORD_MD5 = 0x0001,
    STUN_PASSWORD_SHA256 = 0x0002,
};

enum stun_integrity {
    STUN_INTEGRITY_SHA1,   /* MESSAGE-INTEGRITY: HMAC-SHA1, 20 bytes */
    STUN_INTEGRITY_SHA256, /* MESSAGE-INTEGRITY-SHA256: HMAC-SHA256, 32 bytes */
};

#define STUN_KEY_MAX 32 /* a long-term key: MD5 (16) or SHA-256 (32) */

/* TURN channels: RFC 8656 allows 0x4000-0x4FFF; RFC 5766 allowed up to
 * 0x7FFF and clients still use it (coturn's uclient does), so the codec
 * accepts the wider range. */
#define TURN_CHANNEL_MIN        0x4000
#define TURN_CHANNEL_MAX        0x7FFF
#define TURN_CHANNEL_HEADER_LEN 4

/* One attribute of a parsed message: the value is buf[off .. off + len). */
struct stun_attr {
    uint16_t type;
    uint16_t len;
    uint32_t off;
};

/* A parsed message. buf is the caller's; nothing is copied. */
struct stun_msg {
    const uint8_t *buf;
    size_t len;
    uint16_t method;
    enum stun_class cls;
    const uint8_t *tid; /* STUN_TID_LEN bytes inside buf */
    size_t nattrs;
    struct stun_attr attrs[STUN_MAX_ATTRS];
    /* Index into attrs of the integrity attributes and FINGERPRINT, or -1. */
    int integrity;
    int integrity_sha256;
    int fingerprint;
    size_t ignored; /* attributes after MESSAGE-INTEGRITY that were skipped */
};

/* Fetches MD5 and SHA-256 (libctx NULL: the default context; propq NULL or
 * "fips=yes"). Calling it again replaces the fetches. Returns 0 when
 * SHA-256 is available (MD5 may not be), -ENOTSUP otherwise. Without a
 * call, the defaults are fetched on first use. Not concurrent with other
 * calls into this module. */
int stun_crypto_init(OSSL_LIB_CTX *libctx, const char *propq);
void stun_crypto_cleanup(void);
bool stun_password_alg_available(enum stun_password_alg alg);

/* The password algorithms a server offers in PASSWORD-ALGORITHMS, in order
 * of preference: SHA-256, then MD5 unless restricted (FIPS: the MD5-derived
 * key is not an approved use) or unavailable. Returns the count (0 when
 * SHA-256 is unavailable too). */
size_t stun_password_algs_offer(bool restricted, uint16_t out[2]);

/*
 * The server's side of RFC 8489 §9.2.4: which password algorithm a request
 * uses, given what the server offered with the nonce (offered[0..n)).
 * Neither PASSWORD-ALGORITHM nor PASSWORD-ALGORITHMS: MD5 (a client of
 * RFC 5389). Otherwise both must be there, PASSWORD-ALGORITHMS must equal
 * the offer exactly (same algorithms, same order, no parameters: anything
 * else is a downgrade attempt) and PASSWORD-ALGORITHM one of them. Returns
 * 0 with *alg, or (each answered 400) -EINVAL (one of the two missing, or
 * malformed), -EPERM (PASSWORD-ALGORITHMS differs from the offer),
 * -ENOTSUP (PASSWORD-ALGORITHM not among those offered).
 */
int stun_password_alg_select(const struct stun_msg *m, const uint16_t *offered, size_t n,
                             uint16_t *alg);

/*
 * Nonce cookie (RFC 8489 §9.2): a nonce that starts with "obMatJos2" and
 * four base64 characters of the 24-bit security feature set announces the
 * features the server supports; bit 0 (the most significant) is password
 * algorithms, bit 1 username anonymity.
 */
#define STUN_NONCE_COOKIE                "obMatJos2"
#define STUN_NONCE_COOKIE_LEN            13 /* with the feature set */
#define STUN_FEATURE_PASSWORD_ALGORITHMS 0x800000u
#define STUN_FEATURE_USERNAME_ANONYMITY  0x400000u
/* Writes the cookie and features (24 bits) as STUN_NONCE_COOKIE_LEN
 * characters and a NUL. */
void stun_nonce_cookie(uint32_t features, char out[STUN_NONCE_COOKIE_LEN + 1]);
/* The feature set of a nonce that starts with the cookie: 0, or -EINVAL
 * (no cookie, or the four characters are not base64). */
int stun_nonce_features(struct strview nonce, uint32_t *features);

/* A message type from method and class, and back. */
uint16_t stun_type(uint16_t method, enum stun_class cls);

/*
 * Parses one STUN message that fills buf[0..len) exactly. Returns:
 *   0        a well-formed message;
 *   -EINVAL  not STUN at all: shorter than a header, first two bits set,
 *            wrong magic cookie, length not a multiple of 4 or not equal
 *            to len - 20 (nothing may be answered: drop it);
 *   -EBADMSG the header is valid (method, class, transaction id are set
 *            in out) but the attributes are not: one overruns the
 *            message, MESSAGE-INTEGRITY is not 20 bytes,
 *            MESSAGE-INTEGRITY-SHA256 is not 16-32 bytes in steps of 4,
 *            FINGERPRINT is not 4 bytes or not last, an integrity
 *            attribute or FINGERPRINT repeats;
 *   -E2BIG   more than STUN_MAX_ATTRS attributes (header set as above).
 */
int stun_msg_parse(const void *buf, size_t len, struct stun_msg *out);

/* The first attribute of that type, or NULL. */
const struct stun_attr *stun_msg_find(const struct stun_msg *m, uint16_t type);
static inline const uint8_t *stun_attr_value(const struct stun_msg *m, const struct stun_attr *a)
{
    return m->buf + a->off;
}
static inline struct strview stun_attr_string(const struct stun_msg *m, const struct stun_attr *a)
{
    return strview_make((const char *)m->buf + a->off, a->len);
}

/* XOR-MAPPED-ADDRESS, XOR-PEER-ADDRESS, XOR-RELAYED-ADDRESS. Returns 0 or
 * -EINVAL (length or family wrong). */
int stun_attr_xor_addr(const struct stun_msg *m, const struct stun_attr *a, struct netaddr *out);
/* MAPPED-ADDRESS (no XOR). */
int stun_attr_addr(const struct stun_msg *m, const struct stun_attr *a, struct netaddr *out);
/* A 4-byte value (LIFETIME, REQUESTED-TRANSPORT...). */
int stun_attr_u32(const struct stun_msg *m, const struct stun_attr *a, uint32_t *out);
/* ERROR-CODE: code 300-699 and the reason phrase. */
int stun_attr_error_code(const struct stun_msg *m, const struct stun_attr *a, int *code,
                         struct strview *reason);
/* PASSWORD-ALGORITHM: the algorithm number (parameters skipped). */
int stun_attr_password_alg(const struct stun_msg *m, const struct stun_attr *a, uint16_t *alg);
/* PASSWORD-ALGORITHMS: up to cap algorithm numbers in order. Returns the
 * count, or -EINVAL when an entry overruns the value. */
int stun_attr_password_algs(const struct stun_msg *m, const struct stun_attr *a, uint16_t *out,
                            size_t cap);

/* Comprehension-required attribute types present in m but not listed in
 * known[0..nknown), each once, up to cap of them. Returns the count. */
size_t stun_msg_unknown_required(const struct stun_msg *m, const uint16_t *known, size_t nknown,
                                 uint16_t *out, size_t cap);

/* Checks MESSAGE-INTEGRITY (which = SHA1) or MESSAGE-INTEGRITY-SHA256
 * with the key (compared in constant time; a truncated SHA-256 value is
 * compared over its length). Returns 0, -ENOENT (the attribute is absent),
 * -EBADMSG (it does not match), -ENOTSUP (HMAC unavailable), -ENOMEM. */
int stun_msg_check_integrity(const struct stun_msg *m, enum stun_integrity which,
                             const uint8_t *key, size_t keylen);
/* Checks FINGERPRINT: 0, -ENOENT or -EBADMSG. */
int stun_msg_check_fingerprint(const struct stun_msg *m);

/* CRC-32 (ISO-HDLC, the one zlib and FINGERPRINT use). */
uint32_t stun_crc32(const void *data, size_t len);

/* The long-term credential key (RFC 8489 §9.2.2): MD5 or SHA-256 of
 * "username:realm:password". *keylen gets 16 or 32. Returns 0, -EINVAL,
 * -ENOTSUP (the digest is unavailable: MD5 under FIPS) or -EIO. */
int stun_long_term_key(enum stun_password_alg alg, struct strview username, struct strview realm,
                       struct strview password, uint8_t key[STUN_KEY_MAX], size_t *keylen);
/* USERHASH (RFC 8489 §14.4): SHA-256 of "username:realm". */
int stun_userhash(struct strview username, struct strview realm, uint8_t out[32]);

/*
 * Building. The builder writes into the caller's buffer and keeps the
 * header's length current; the first failure (no room) is sticky and
 * reported by stun_build_finish. Attribute values are padded with zeros.
 * Integrity and FINGERPRINT are computed over what was built so far, so
 * add them last (integrity before FINGERPRINT).
 */
struct stun_builder {
    uint8_t *buf;
    size_t cap;
    size_t len;
    int err;
};

void stun_build_start(struct stun_builder *b, void *buf, size_t cap, uint16_t method,
                      enum stun_class cls, const uint8_t tid[STUN_TID_LEN]);
void stun_build_attr(struct stun_builder *b, uint16_t type, const void *value, size_t len);
void stun_build_u32(struct stun_builder *b, uint16_t type, uint32_t value);
void stun_build_xor_addr(struct stun_builder *b, uint16_t type, const struct netaddr *addr);
void stun_build_addr(struct stun_builder *b, uint16_t type, const struct netaddr *addr);
/* ERROR-CODE with a reason phrase (NULL: the standard one for the code). */
void stun_build_error(struct stun_builder *b, int code, const char *reason);
void stun_build_unknown_attrs(struct stun_builder *b, const uint16_t *types, size_t n);
/* PASSWORD-ALGORITHMS with the given algorithms (no parameters). */
void stun_build_password_algs(struct stun_builder *b, const uint16_t *algs, size_t n);
void stun_build_integrity(struct stun_builder *b, enum stun_integrity which, const uint8_t *key,
                          size_t keylen);
void stun_build_fingerprint(struct stun_builder *b);
/* Returns 0 and the message length, or the sticky error (-ENOSPC, -EIO,
 * -ENOTSUP). */
int stun_build_finish(struct stun_builder *b, size_t *len);

/* The standard reason phrase for an error code ("Unauthenticated"...). */
const char *stun_error_reason(int code);

/*
 * Stream framing (TURN over TCP/TLS, RFC 8656 §12.5): the length of the
 * frame that starts at p, given avail bytes (at least 4 needed). A STUN
 * message is 20 + its length; ChannelData is 4 + its length padded to 4
 * (over streams the padding is sent). Returns the frame length (possibly
 * more than avail: wait for more), 0 when fewer than 4 bytes are there,
 * or -EINVAL when the first byte starts neither (the stream cannot be
 * resynchronised).
 */
long stun_frame_length(const uint8_t *p, size_t avail);

/* What a datagram or frame starts with: 0-3 in the first byte's top two
 * bits is STUN, 0x40-0x7F ChannelData. */
static inline bool stun_is_channel_data(const uint8_t *p, size_t n)
{
    return n >= TURN_CHANNEL_HEADER_LEN && (p[0] & 0xC0) == 0x40;
}

#endif
