/*
 * sip/lex — character classes and small scanners shared by the SIP parser
 * files. Private to src/sip: other modules use msg.h and uri.h.
 */
#ifndef PARLEY_SIP_LEX_H
#define PARLEY_SIP_LEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/strview.h"

/* RFC 3261 §25.1 character classes, one bit each. */
#define SIP_C_TOKEN      (1u << 0) /* token */
#define SIP_C_WSP        (1u << 1) /* SP HTAB */
#define SIP_C_DIGIT      (1u << 2)
#define SIP_C_ALPHA      (1u << 3)
#define SIP_C_HEX        (1u << 4)
#define SIP_C_UNRESERVED (1u << 5)  /* alphanum mark */
#define SIP_C_USER       (1u << 6)  /* unreserved user-unreserved */
#define SIP_C_PASS       (1u << 7)  /* unreserved & = + $ , */
#define SIP_C_PARAM      (1u << 8)  /* unreserved param-unreserved */
#define SIP_C_HNV        (1u << 9)  /* unreserved hnv-unreserved */
#define SIP_C_HOST       (1u << 10) /* hostname characters (and '_', seen in the wild) */
#define SIP_C_WORD       (1u << 11) /* Call-ID word */
#define SIP_C_SCHEME     (1u << 12) /* scheme characters after the first */
#define SIP_C_VSTOP      (1u << 13) /* stops the header-value fast loop: CTL but HTAB, and '\' */
#define SIP_C_PVALUE     (1u << 14) /* unquoted header parameter value (liberal) */

extern uint16_t sip_lex_class[256];

static inline bool sip_lex_is(unsigned char c, unsigned cls)
{
    return (sip_lex_class[c] & cls) != 0;
}

static inline bool sip_lex_is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

static inline size_t sip_lex_skip_wsp(struct strview s, size_t i)
{
    while (i < s.n && sip_lex_is_wsp(s.p[i]))
        i++;
    return i;
}

/* Index after the run of characters of class cls starting at i. */
static inline size_t sip_lex_span(struct strview s, size_t i, unsigned cls)
{
    while (i < s.n && sip_lex_is((unsigned char)s.p[i], cls))
        i++;
    return i;
}

/* True when the view is a non-empty token. */
bool sip_lex_is_token(struct strview s);

/* s.p[i] is '"': returns the index after the closing quote, or s.n + 1
 * when the string is not terminated. Honours quoted-pairs. */
size_t sip_lex_quoted_end(struct strview s, size_t i);

/* Next top-level comma element of s from *pos (trimmed; may be empty).
 * Returns false when s is exhausted. Quoted strings (with quoted-pairs)
 * and <...> hide commas. */
bool sip_lex_split_next(struct strview s, size_t *pos, struct strview *elem);

/* One ";name[=value]" of a header parameter list, with optional LWS around
 * ';' and '='. Returns 1 with name/value, 0 at the end, -EINVAL when the
 * list is malformed (empty name, empty value, stray characters). */
int sip_lex_param_next(struct strview s, size_t *pos, struct strview *name, struct strview *value);

/* Looks a parameter up in a ";a=b;c" list, leniently (LWS allowed, quoted
 * values kept with their quotes). *value is empty for a flag. */
bool sip_lex_param_find(struct strview params, const char *name, struct strview *value);

/* A media type "type/subtype;params" (RFC 3261 §20.15; LWS allowed around
 * '/'): returns 0 with its parts, -EINVAL when malformed (the parameter
 * list included). */
int sip_lex_media_type(struct strview v, struct strview *type, struct strview *subtype,
                       struct strview *params);

/* Case-insensitive ASCII comparison of two views of the same length. */
bool sip_lex_eq_nocase(const char *a, const char *b, size_t n);

#endif
