/*
 * media/sdp — parsing and regenerating session descriptions (RFC 8866),
 * with typed access to what the media policy reads: media sections and
 * their transport protocol, connection data, and the security attributes
 * a=crypto (RFC 4568, RFC 7714 suites), a=fingerprint and a=setup (RFC
 * 8122, RFC 4145), a=rtcp-mux and the direction attributes.
 *
 * sdp_parse() records views into the caller's text, which must outlive the
 * parsed description; it copies nothing and never reads outside the text.
 * Every line is kept (unknown line types and attributes included), so
 * sdp_write() regenerates the input byte for byte, minus the lines removed
 * with sdp_line_remove() and friends, with the text sdp_line_set() and
 * sdp_line_add_after() give. Both change only what sdp_write() emits, not
 * the typed views.
 *
 * What is refused (-EINVAL, with a reason naming the fault and, where
 * there is one, the line): text over SDP_MAX_SIZE; a NUL byte or a CR not
 * followed by LF; an empty line other than trailing ones; a line that is
 * not "<letter>=<value>"; a first line other than v=0; o= or s= missing or
 * repeated (o= must have its six fields); v=, o=, s=, t= inside a media
 * section; a bad m= line (fewer than four fields, a non-numeric or
 * out-of-range port or port count); a bad c= line; an active media section
 * (port != 0) without c= when there is no session c=; an attribute without
 * a name; more than SDP_MAX_MEDIA media sections, SDP_MAX_ATTRS attributes
 * in one section (the session level counts as one), SDP_MAX_FORMATS formats
 * on one m= line; and malformed a=crypto (tag, suite, inline key syntax,
 * lifetime, MKI, duplicate tag), a=fingerprint, a=setup, conflicting
 * direction attributes. Line ends are LF or CRLF (both accepted, also mixed;
 * nothing else); the last line may lack one.
 *
 * The struct is public for reading; change it only through the functions.
 */
#ifndef PARLEY_MEDIA_SDP_H
#define PARLEY_MEDIA_SDP_H

#include <stdbool.h>
#include <stddef.h>

#include "core/strbuf.h"
#include "core/strview.h"

#define SDP_MAX_SIZE        65536 /* bytes of SDP text */
#define SDP_MAX_MEDIA       64    /* m= sections */
#define SDP_MAX_ATTRS       256   /* a= lines per section (session level included) */
#define SDP_MAX_FORMATS     64    /* formats on one m= line */
#define SDP_MAX_CRYPTO_KEYS 16    /* inline keys in one a=crypto */

enum sdp_proto {
    SDP_PROTO_OTHER = 0,          /* anything else: udptl, TCP/MSRP, ... (see proto_text) */
    SDP_PROTO_RTP_AVP,            /* RTP/AVP */
    SDP_PROTO_RTP_AVPF,           /* RTP/AVPF */
    SDP_PROTO_RTP_SAVP,           /* RTP/SAVP */
    SDP_PROTO_RTP_SAVPF,          /* RTP/SAVPF */
    SDP_PROTO_UDP_TLS_RTP_SAVP,   /* UDP/TLS/RTP/SAVP (RFC 5764) */
    SDP_PROTO_UDP_TLS_RTP_SAVPF,  /* UDP/TLS/RTP/SAVPF (RFC 5764) */
    SDP_PROTO_TCP_DTLS_RTP_SAVP,  /* TCP/DTLS/RTP/SAVP (RFC 7850) */
    SDP_PROTO_TCP_DTLS_RTP_SAVPF, /* TCP/DTLS/RTP/SAVPF (RFC 7850) */
    SDP_PROTO_DTLS_SCTP,          /* UDP/DTLS/SCTP, TCP/DTLS/SCTP (RFC 8841) */
};

/* RTP/AVP, RTP/AVPF: plain RTP (SRTP only through the optional-SRTP shape). */
bool sdp_proto_is_plain_rtp(enum sdp_proto p);
/* RTP/SAVP, RTP/SAVPF: SRTP keyed by SDES. */
bool sdp_proto_is_sdes(enum sdp_proto p);
/* UDP/TLS/RTP/SAVP[F], TCP/DTLS/RTP/SAVP[F]: SRTP keyed by DTLS. */
bool sdp_proto_is_dtls_srtp(enum sdp_proto p);
/* The name Parley writes for the protocol ("RTP/SAVP"); "other" for OTHER. */
const char *sdp_proto_name(enum sdp_proto p);

enum sdp_setup {
    SDP_SETUP_NONE = 0, /* no a=setup */
    SDP_SETUP_ACTPASS,
    SDP_SETUP_ACTIVE,
    SDP_SETUP_PASSIVE,
    SDP_SETUP_HOLDCONN,
};

enum sdp_direction {
    SDP_DIR_NONE = 0, /* no direction attribute at this level */
    SDP_DIR_SENDRECV,
    SDP_DIR_SENDONLY,
    SDP_DIR_RECVONLY,
    SDP_DIR_INACTIVE,
};

/* One line of the text, in order. */
struct sdp_line {
    char type;            /* 'v', 'o', 'a', ... (any ASCII letter) */
    struct strview value; /* after "x=", without the line end */
    struct strview raw;   /* the whole line with its line end */
    bool key;             /* carries SDES key material (see sdp_remove_keys) */
    bool removed;         /* sdp_write() skips it */
};

/* a=name or a=name:value */
struct sdp_attr {
    struct strview name;
    struct strview value; /* empty for property attributes */
    bool has_value;       /* there was a ':' */
    size_t line;          /* index into sdp->lines */
};

struct sdp_conn {
    bool present;
    struct strview nettype;  /* "IN" */
    struct strview addrtype; /* "IP4" | "IP6" | ... */
    struct strview address;  /* as written, with any /ttl/count */
    size_t line;
};

/* One key-param of an a=crypto line (RFC 4568 §9.2). For a key method
 * other than "inline", only method and info are set. */
struct sdp_crypto_key {
    struct strview method;   /* "inline" */
    struct strview info;     /* everything after "method:" */
    struct strview key_salt; /* inline: the base64 key || salt. A SECRET: never log it */
    bool has_lifetime;
    bool lifetime_pow2; /* written as "2^N": lifetime is N */
    unsigned long long lifetime;
    bool has_mki;
    unsigned long long mki_value;
    unsigned mki_len; /* bytes, 1..128 */
};

struct sdp_crypto {
    unsigned long tag;         /* 1..999999999 */
    struct strview suite;      /* as written */
    struct strview key_params; /* the whole key-params field */
    struct sdp_crypto_key keys[SDP_MAX_CRYPTO_KEYS];
    size_t nkeys;                  /* >= 1 */
    struct strview session_params; /* the rest of the line, possibly empty */
    bool unencrypted_srtp;         /* UNENCRYPTED_SRTP */
    bool unencrypted_srtcp;        /* UNENCRYPTED_SRTCP */
    bool unauthenticated_srtp;     /* UNAUTHENTICATED_SRTP */
    bool has_kdr;
    unsigned kdr; /* KDR=n, 0..24 */
    size_t line;  /* index into sdp->lines */
};

struct sdp_fingerprint {
    bool present;
    struct strview hash;  /* "sha-256" (as written; compare case-insensitively) */
    struct strview value; /* "AB:CD:..." */
};

/* A level: the session (before the first m=) or one media section. */
struct sdp_level {
    size_t line_first, line_end;        /* its lines: [line_first, line_end) */
    size_t attr_first, nattrs;          /* into sdp->attrs */
    size_t crypto_first, ncrypto;       /* into sdp->cryptos */
    struct sdp_conn conn;               /* the first c= of the level */
    struct sdp_fingerprint fingerprint; /* the first a=fingerprint */
    size_t nfingerprints;
    enum sdp_setup setup;
    enum sdp_direction direction;
    bool rtcp_mux;
    size_t nkey_lines; /* k= lines and a=acap lines carrying crypto (RFC 5939) */
};

struct sdp_media {
    struct sdp_level lv;  /* lv.line_first is the m= line */
    struct strview media; /* "audio" */
    unsigned port;
    unsigned nports;           /* 1 unless "port/count" */
    struct strview proto_text; /* as written */
    enum sdp_proto proto;
    struct strview formats[SDP_MAX_FORMATS];
    size_t nformats; /* >= 1 */
};

/* Text sdp_line_set and sdp_line_add_after gave a line (owned). */
struct sdp_owned {
    struct sdp_owned *next;
    char text[];
};

struct sdp {
    struct strview text;
    struct sdp_owned *owned;
    struct sdp_line *lines;
    size_t nlines;
    struct strview tail; /* trailing empty lines, kept for sdp_write */
    struct sdp_attr *attrs;
    size_t nattrs;
    struct sdp_crypto *cryptos;
    size_t ncryptos;

    struct strview origin_user, origin_sess_id, origin_sess_version, origin_nettype,
        origin_addrtype, origin_address;
    struct strview session_name;
    struct sdp_level session;

    struct sdp_media *media; /* nmedia entries */
    size_t nmedia;
};

/* Parses text. On success *out is a new description (sdp_free it); on
 * -EINVAL, err (errlen bytes) names the fault, e.g. "line 5: m= line has a
 * non-numeric port". -ENOMEM also possible. */
int sdp_parse(struct strview text, struct sdp **out, char *err, size_t errlen);
void sdp_free(struct sdp *sdp);

/* Writes the text back, skipping removed lines. 0 or -ENOMEM. */
int sdp_write(const struct sdp *sdp, struct strbuf *out);

/* Marks line i removed (out of range: no-op). */
void sdp_line_remove(struct sdp *sdp, size_t i);
/* What sdp_write emits for line i: text instead (sdp_line_set), or the
 * line followed by text (sdp_line_add_after; a removed line stays
 * removed, and only text goes out in its place). text is one or more whole
 * lines, each "<letter>=value" ending in CRLF, without control characters
 * (-EINVAL otherwise; also for i out of range); it is copied. The typed
 * views keep describing the parsed text. 0, -EINVAL or -ENOMEM. */
int sdp_line_set(struct sdp *sdp, size_t i, struct strview text);
int sdp_line_add_after(struct sdp *sdp, size_t i, struct strview text);
/* Removes the a=crypto lines of a level (the session or a section). */
void sdp_level_remove_crypto(struct sdp *sdp, const struct sdp_level *lv);
/* Removes every line carrying SDES key material: a=crypto at any level,
 * k= lines, and a=acap lines whose capability is a crypto attribute. */
void sdp_remove_keys(struct sdp *sdp);

/* Typed access. */
static inline bool sdp_media_active(const struct sdp_media *m)
{
    return m->port != 0;
}
const struct sdp_crypto *sdp_level_crypto(const struct sdp *sdp, const struct sdp_level *lv,
                                          size_t i);
const struct sdp_attr *sdp_level_attr(const struct sdp *sdp, const struct sdp_level *lv, size_t i);
/* The first attribute of the level named name (case-insensitive), or NULL. */
const struct sdp_attr *sdp_level_attr_find(const struct sdp *sdp, const struct sdp_level *lv,
                                           const char *name);
/* The section's c= or else the session's (NULL if neither). */
const struct sdp_conn *sdp_media_conn(const struct sdp *sdp, const struct sdp_media *m);
/* The section's a=fingerprint or else the session's (NULL if neither). */
const struct sdp_fingerprint *sdp_media_fingerprint(const struct sdp *sdp,
                                                    const struct sdp_media *m);
/* The section's a=setup or else the session's. */
enum sdp_setup sdp_media_setup(const struct sdp *sdp, const struct sdp_media *m);
/* The section's direction, else the session's, else sendrecv. */
enum sdp_direction sdp_media_direction(const struct sdp *sdp, const struct sdp_media *m);
/* Whether the description carries SDES key material anywhere (what
 * sdp_remove_keys removes), counting removed lines out. */
bool sdp_has_keys(const struct sdp *sdp);

#endif
