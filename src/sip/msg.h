/*
 * sip/msg — parsing, inspecting, editing and printing SIP messages (RFC 3261).
 *
 * sip_msg_parse() copies the input into a buffer the message owns and
 * records views into it; it never reads outside the input and never trusts
 * a length field. Line folding is unfolded and bare LF line ends are
 * accepted. Typed values (Via, From, To, CSeq, ...) are parsed on demand
 * by the helpers below from the header views; the ones the rest of Parley
 * relies on are also checked once while parsing (see sip_msg_parse).
 *
 * A message is edited in place through the sip_msg_hdr_* functions (the
 * proxy adds a Via, removes a Route, ...); new strings live in the
 * message's own arena (values the editing functions get are copied there
 * unless they already live in the message). sip_msg_print() writes the
 * result with a correct Content-Length.
 *
 * The struct is public for reading; change it only through the functions.
 */
#ifndef PARLEY_SIP_MSG_H
#define PARLEY_SIP_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/strbuf.h"
#include "core/strview.h"
#include "sip/uri.h"

enum sip_method {
    SIP_METHOD_UNKNOWN = 0, /* an extension method: see method_name */
    SIP_METHOD_INVITE,
    SIP_METHOD_ACK,
    SIP_METHOD_BYE,
    SIP_METHOD_CANCEL,
    SIP_METHOD_OPTIONS,
    SIP_METHOD_REGISTER,
    SIP_METHOD_MESSAGE,
    SIP_METHOD_SUBSCRIBE,
    SIP_METHOD_NOTIFY,
    SIP_METHOD_PUBLISH,
    SIP_METHOD_REFER,
    SIP_METHOD_INFO,
    SIP_METHOD_UPDATE,
    SIP_METHOD_PRACK,
    SIP_METHOD_SERVICE,
};

/* Case-sensitive, as RFC 3261 says methods are. */
enum sip_method sip_method_from_view(struct strview name);
const char *sip_method_name(enum sip_method m); /* "UNKNOWN" for extensions */

/* Headers Parley reads or writes by identity. Compact forms (RFC 3261
 * §7.3.3 and later RFCs: i m e l c f s k t v o r u b x y) map to these.
 * New ids are only ever added before SIP_HDR_COUNT_. */
enum sip_hdr_id {
    SIP_HDR_OTHER = 0,
    SIP_HDR_VIA,
    SIP_HDR_FROM,
    SIP_HDR_TO,
    SIP_HDR_CALL_ID,
    SIP_HDR_CSEQ,
    SIP_HDR_CONTACT,
    SIP_HDR_ROUTE,
    SIP_HDR_RECORD_ROUTE,
    SIP_HDR_MAX_FORWARDS,
    SIP_HDR_CONTENT_LENGTH,
    SIP_HDR_CONTENT_TYPE,
    SIP_HDR_CONTENT_ENCODING,
    SIP_HDR_EXPIRES,
    SIP_HDR_MIN_EXPIRES,
    SIP_HDR_AUTHORIZATION,
    SIP_HDR_PROXY_AUTHORIZATION,
    SIP_HDR_WWW_AUTHENTICATE,
    SIP_HDR_PROXY_AUTHENTICATE,
    SIP_HDR_AUTHENTICATION_INFO,
    SIP_HDR_EVENT,
    SIP_HDR_ALLOW_EVENTS,
    SIP_HDR_SUBSCRIPTION_STATE,
    SIP_HDR_SUPPORTED,
    SIP_HDR_REQUIRE,
    SIP_HDR_PROXY_REQUIRE,
    SIP_HDR_UNSUPPORTED,
    SIP_HDR_ALLOW,
    SIP_HDR_ACCEPT,
    SIP_HDR_USER_AGENT,
    SIP_HDR_SERVER,
    SIP_HDR_P_ASSERTED_IDENTITY,
    SIP_HDR_P_PREFERRED_IDENTITY,
    SIP_HDR_SIP_ETAG,
    SIP_HDR_SIP_IF_MATCH,
    SIP_HDR_REASON,
    SIP_HDR_WARNING,
    SIP_HDR_RSEQ,
    SIP_HDR_RACK,
    SIP_HDR_REFER_TO,
    SIP_HDR_REFERRED_BY,
    SIP_HDR_PATH,
    SIP_HDR_TIMESTAMP,
    SIP_HDR_SUBJECT,
    SIP_HDR_SESSION_EXPIRES,
    SIP_HDR_IDENTITY,
    SIP_HDR_DATE,
    SIP_HDR_COUNT_ /* not a header */
};

/* Canonical name ("Via", "Call-ID", ...); NULL for SIP_HDR_OTHER. */
const char *sip_hdr_name(enum sip_hdr_id id);
/* Maps a header name (any case, compact forms included) to its id. */
enum sip_hdr_id sip_hdr_id_from_name(struct strview name);

struct sip_hdr {
    enum sip_hdr_id id;
    struct strview name;  /* as received, or canonical for added headers */
    struct strview value; /* trimmed; folding replaced by single spaces */
    struct sip_hdr *next;
    bool removed; /* removed by an edit; skipped by iteration and print */
};

struct sip_msg {
    bool is_request;

    /* request line */
    enum sip_method method;
    struct strview method_name; /* always set for requests */
    struct strview request_uri; /* text; parsed form below */
    struct sip_uri ruri;

    /* status line */
    int status; /* 100..699 */
    struct strview reason;

    /* headers in order (see sip_msg_hdr_first / next) */
    struct sip_hdr *hdrs;

    /* frequently used values, filled at parse time; views into the message.
     * Edits keep them up to date only where a setter says so
     * (sip_msg_set_max_forwards, sip_msg_set_body, sip_msg_set_request_uri). */
    struct strview call_id;
    uint32_t cseq_num;
    enum sip_method cseq_method;
    struct strview cseq_method_name;
    int max_forwards;            /* -1 when absent */
    long long expires;           /* Expires header; -1 when absent */
    struct strview content_type; /* media type without parameters, e.g. "application/sdp" */

    struct strview body;

    /* private: owned storage */
    char *buf_;
    size_t buf_len_;
    void *arena_;
};

/* Limits a parser enforces regardless of the caller's size limit. A
 * header line counts as its name plus its unfolded value; Content-Length
 * headers do not count toward SIP_MAX_HEADERS (sip_msg_print writes
 * exactly one, whether the message had it or not). */
#define SIP_MAX_HEADERS     256
#define SIP_MAX_HEADER_LINE 8192

struct sip_parse_error {
    /* The response the peer should get: 400 (malformed), 416 (Request-URI
     * of a scheme other than sip, sips, tel), 505 (version), 513 (too
     * large); 0 when no response can be formed and the message should
     * just be dropped (the input is a response, or no start line). */
    int status;
    /* A reason phrase naming the fault, usable as is in the response and
     * in the log: "Bad Request (missing Call-ID)". */
    char reason[128];
};

/*
 * Parses exactly one complete message (start line, headers, blank line,
 * and a body of len minus the head's length; CR/LFs before the start line
 * are skipped). Requires From, To, Call-ID, CSeq, Via (and Max-Forwards is
 * optional) per RFC 3261 §8.1.1; a Content-Length, when present, must equal
 * the body's length. Checked as they are met: every Via value, From, To
 * and every Contact value (as sip_via_parse / sip_addr_parse), Call-ID
 * syntax, CSeq (32-bit number; a request's CSeq method must equal its
 * method), Max-Forwards 0..255, Expires 0..2^32-1, Content-Type syntax,
 * Date (rfc1123 in GMT), no Request-URI headers, no empty top Via branch
 * cookie, and no repeated From, To, Call-ID, CSeq, Max-Forwards or
 * Content-Length with a different value. err may be NULL.
 * Returns 0 and *out, or -EINVAL (err filled) / -ENOMEM.
 */
int sip_msg_parse(const char *data, size_t len, struct sip_msg **out, struct sip_parse_error *err);
void sip_msg_free(struct sip_msg *msg);

/* Iteration over headers that are not removed. Every header is in the
 * msg->hdrs list (check h->removed when walking it directly). */
struct sip_hdr *sip_msg_hdr_first(const struct sip_msg *msg, enum sip_hdr_id id);
struct sip_hdr *sip_msg_hdr_next(const struct sip_hdr *h, enum sip_hdr_id id);
/* Headers of another name, by name (case-insensitive). */
struct sip_hdr *sip_msg_hdr_find_name(const struct sip_msg *msg, const char *name);
size_t sip_msg_hdr_count(const struct sip_msg *msg, enum sip_hdr_id id);

/*
 * Comma-separated values of one header kind, across all its header lines,
 * in order (Via, Route, Record-Route, Contact, Supported, Allow, ...).
 * Commas inside quoted strings (parameter values included) and <...> are
 * respected; empty elements are skipped; values come trimmed.
 * Iterate with:
 *   struct sip_value_iter it; struct strview v;
 *   sip_value_iter_init(&it, msg, SIP_HDR_VIA);
 *   while (sip_value_iter_next(&it, &v)) ...
 */
struct sip_value_iter {
    const struct sip_hdr *hdr;
    enum sip_hdr_id id;
    size_t pos;
};
void sip_value_iter_init(struct sip_value_iter *it, const struct sip_msg *msg, enum sip_hdr_id id);
bool sip_value_iter_next(struct sip_value_iter *it, struct strview *value);

/* Splits one header value at top-level commas; same rules as above. Calls
 * fn for each element; stops early when fn returns false. */
void sip_split_commas(struct strview value, bool (*fn)(struct strview elem, void *arg), void *arg);

/* --- typed values --------------------------------------------------- */

/* Generic ";name=value;flag" parameter lists (header or URI parameters).
 * Looks name up case-insensitively; *value is empty for a flag; a quoted
 * value keeps its quotes. value may be NULL. */
bool sip_param_find(struct strview params, const char *name, struct strview *value);

struct sip_via {
    struct strview protocol;  /* "SIP/2.0" (as received for other protocols) */
    struct strview transport; /* "TLS", "TCP", "UDP", "WSS", ... */
    struct strview host;      /* without brackets for IPv6 */
    uint16_t port;            /* 0 when absent */
    struct strview params;    /* ";branch=...;received=..." */
    struct strview branch;    /* p is NULL when there is no branch */
};
/* One Via value (a single element, not a comma list). Returns 0 or -EINVAL. */
int sip_via_parse(struct strview value, struct sip_via *out);

/* name-addr / addr-spec with header parameters: From, To, Contact, Route,
 * Record-Route, P-Asserted-Identity, Refer-To. */
struct sip_addr {
    struct strview display; /* without quotes; may contain escapes */
    struct strview uri_text;
    struct sip_uri uri;    /* scheme 0 (and only uri_text) for other schemes */
    struct strview params; /* header parameters after the address */
    struct strview tag;    /* p is NULL when there is no tag */
    bool wildcard;         /* Contact: * */
};
/* One element (not a comma list). A URI of a scheme other than sip, sips
 * and tel is accepted as text (RFC 3261 allows any absoluteURI); an
 * addr-spec whose URI holds '?' or ',' is refused (it needs <>).
 * Returns 0 or -EINVAL. */
int sip_addr_parse(struct strview value, struct sip_addr *out);

/* From and To of a message, parsed. Returns 0 or -EINVAL. */
int sip_msg_from(const struct sip_msg *msg, struct sip_addr *out);
int sip_msg_to(const struct sip_msg *msg, struct sip_addr *out);
/* The top-most Via value. */
int sip_msg_top_via(const struct sip_msg *msg, struct sip_via *out);

/* --- editing -------------------------------------------------------- */

/* Copies bytes into the message's arena (lives as long as the message;
 * NUL-terminated for convenience). On allocation failure the view's p is
 * NULL. */
struct strview sip_msg_strdup(struct sip_msg *msg, const char *data, size_t n);
struct strview sip_msg_printf(struct sip_msg *msg, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Adds a header before all others (Via, Record-Route are added this way).
 * name NULL means id's canonical name; a name with id SIP_HDR_OTHER gets
 * the id the name maps to. The value is trimmed; one holding CR or LF is
 * refused. Returns 0, -EINVAL or -ENOMEM (same for append). */
int sip_msg_hdr_prepend(struct sip_msg *msg, enum sip_hdr_id id, const char *name,
                        struct strview value);
/* Adds a header after all others. */
int sip_msg_hdr_append(struct sip_msg *msg, enum sip_hdr_id id, const char *name,
                       struct strview value);
/* Marks a header removed. */
void sip_msg_hdr_remove(struct sip_msg *msg, struct sip_hdr *h);
/* Removes every header with this id. Returns how many. */
size_t sip_msg_hdr_remove_all(struct sip_msg *msg, enum sip_hdr_id id);
/* Removes the first value of the first header with this id: the whole
 * header when it has one value, else its first comma element (a proxy
 * popping its own Via or a Route). Returns 0 or -ENOENT. */
int sip_msg_hdr_remove_first_value(struct sip_msg *msg, enum sip_hdr_id id);
/* Replaces a header's value (trimmed; CR or LF refused). Returns 0,
 * -EINVAL or -ENOMEM. */
int sip_msg_hdr_set_value(struct sip_msg *msg, struct sip_hdr *h, struct strview value);
/* Replaces a request's Request-URI, which must parse as a sip, sips or tel
 * URI without headers; msg->ruri follows. Returns 0, -EINVAL or -ENOMEM. */
int sip_msg_set_request_uri(struct sip_msg *msg, struct strview uri);
/* Replaces the body and Content-Type (a media type with parameters; an
 * empty content_type removes the header); msg->body and msg->content_type
 * follow. Returns 0, -EINVAL or -ENOMEM. */
int sip_msg_set_body(struct sip_msg *msg, struct strview content_type, struct strview body);
/* Max-Forwards: rewritten (or added) with this value. */
int sip_msg_set_max_forwards(struct sip_msg *msg, int value);

/* Appends the message to out: start line, headers in order, each on one
 * line as "Name: value" (Content-Length rewritten to match the body and
 * printed once, added at the end when missing), blank line, body. What
 * sip_msg_parse accepted prints as a message it accepts again with the
 * same values. Returns 0 or out's error. */
int sip_msg_print(const struct sip_msg *msg, struct strbuf *out);

#endif
