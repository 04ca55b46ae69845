/*
 * xml — a small, strict XML reader for the documents Parley must
 * understand: PIDF and its extensions (presence), the relay credential
 * service's requests (proxy/service).
 *
 * Well-formedness only, with namespaces: elements, attributes, text,
 * comments, processing instructions, CDATA, the five predefined entities
 * and character references. A DOCTYPE is refused outright (no entity
 * expansion, no external anything), and sizes and depth are bounded.
 * The reader builds a small tree in one allocation arena, with names
 * resolved to (namespace URI, local name).
 */
#ifndef PARLEY_XML_XML_H
#define PARLEY_XML_XML_H

#include <stdbool.h>
#include <stddef.h>

#include "core/strview.h"

#define XML_MAX_DEPTH 32
#define XML_MAX_NODES 2048
#define XML_MAX_ATTRS 32

struct xml_attr {
    struct strview ns; /* namespace URI ("" for unprefixed attributes) */
    struct strview local;
    struct strview value; /* raw (entities not decoded) */
};

struct xml_node {
    struct strview ns;     /* namespace URI */
    struct strview local;  /* local name */
    struct strview prefix; /* as written, "" for the default namespace */
    struct xml_attr *attrs;
    size_t nattrs;
    struct strview text; /* the first run of character data inside (raw) */
    struct xml_node *parent, *first_child, *next;
};

struct xml_doc;

/* Parses len bytes. Returns 0 and *out, or -EINVAL with a short reason
 * (for a 400 reason phrase), or -ENOMEM. */
int xml_parse(const char *data, size_t len, struct xml_doc **out, char *err, size_t errlen);
void xml_free(struct xml_doc *doc);
struct xml_node *xml_root(const struct xml_doc *doc);

/* The first child with this namespace and local name (ns NULL: any). */
struct xml_node *xml_child(const struct xml_node *n, const char *ns, const char *local);
/* The next sibling with this namespace and local name. */
struct xml_node *xml_next(const struct xml_node *n, const char *ns, const char *local);
/* An attribute without namespace, or NULL. */
const struct xml_attr *xml_attr(const struct xml_node *n, const char *local);
/* Text content with surrounding white space trimmed. */
struct strview xml_text_trimmed(const struct xml_node *n);

#endif
