/*
 * presence/pidf — PIDF documents (RFC 3863) with the RPID extensions
 * (RFC 4480) simple clients use: checking what users publish, reading its
 * availability, and writing the documents Parley composes itself.
 */
#ifndef PARLEY_PRESENCE_PIDF_H
#define PARLEY_PRESENCE_PIDF_H

#include <stdbool.h>
#include <stddef.h>

#include "core/strbuf.h"

#define PIDF_NS      "urn:ietf:params:xml:ns:pidf"
#define PIDF_NS_RPID "urn:ietf:params:xml:ns:pidf:rpid"
#define PIDF_NS_DM   "urn:ietf:params:xml:ns:pidf:data-model"

struct pidf_state {
    bool open;         /* some tuple's <basic> is open */
    char activity[32]; /* the first RPID activity ("away", "busy", "on-the-phone"...) or "" */
};

/*
 * Checks a published document: well-formed XML, root <presence> in the PIDF
 * namespace with an entity naming `aor` (user@domain; as pres:, sip: or
 * sips:), every <tuple> with an id and a <status>, <basic> (where given)
 * open or closed. Extensions are allowed. Returns 0 with *out filled, or
 * -EINVAL with the fault in err (for a 400 reason phrase).
 */
int pidf_check(const char *body, size_t len, const char *aor, struct pidf_state *out, char *err,
               size_t errlen);

/* How available a state is (higher is more available): open and free >
 * open and busy > open and away > closed. */
int pidf_rank(const struct pidf_state *st);

/* A plain document for `aor`: <basic>open</basic> or closed, and the
 * activity (if any) under the rpid: prefix, which simple clients read by
 * text. */
void pidf_write(const char *aor, const struct pidf_state *st, struct strbuf *out);

#endif
