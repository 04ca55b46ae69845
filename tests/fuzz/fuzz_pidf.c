/*
 * libFuzzer target: arbitrary bytes through xml_parse and pidf_check, the
 * code that reads what any registered user PUBLISHes.
 *
 * Besides the sanitizers' findings it checks what must hold for every
 * input: the tree's names and values point into the input, the nesting
 * stays within XML_MAX_DEPTH, a refusal leaves an error text, and a state
 * pidf_check accepted, written by pidf_write, is accepted again with the
 * same availability (what Parley sends is what it would accept).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/strbuf.h"
#include "presence/pidf.h"
#include "xml/xml.h"

#define AOR "bob@example.test"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_view(struct strview v, const uint8_t *data, size_t size)
{
    if (v.n == 0)
        return;
    const char *lo = (const char *)data, *hi = lo + size;
    /* namespace URIs of the predefined xml prefix are the one exception */
    if (strview_eq(v, "http://www.w3.org/XML/1998/namespace"))
        return;
    if (v.p < lo || v.p + v.n > hi)
        abort();
}

static void walk(const struct xml_node *n, const uint8_t *data, size_t size, unsigned depth)
{
    for (; n; n = n->next) {
        if (depth > XML_MAX_DEPTH)
            abort();
        check_view(n->local, data, size);
        check_view(n->prefix, data, size);
        check_view(n->ns, data, size);
        check_view(n->text, data, size);
        if (n->local.n == 0 && n->prefix.n == 0)
            abort(); /* an element without a name */
        if (n->nattrs > XML_MAX_ATTRS)
            abort();
        for (size_t i = 0; i < n->nattrs; i++) {
            check_view(n->attrs[i].local, data, size);
            check_view(n->attrs[i].ns, data, size);
            check_view(n->attrs[i].value, data, size);
        }
        (void)xml_text_trimmed(n);
        walk(n->first_child, data, size, depth + 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[128];
    struct xml_doc *doc = NULL;
    err[0] = '\0';
    int rc = xml_parse((const char *)data, size, &doc, err, sizeof(err));
    if (rc == 0) {
        walk(xml_root(doc), data, size, 1);
        xml_free(doc);
    } else if (doc || !err[0] || !memchr(err, '\0', sizeof(err))) {
        abort();
    }

    struct pidf_state st;
    err[0] = '\0';
    rc = pidf_check((const char *)data, size, AOR, &st, err, sizeof(err));
    if (rc != 0) {
        if (!err[0])
            abort();
        return 0;
    }
    if (!memchr(st.activity, '\0', sizeof(st.activity)))
        abort();
    int rank = pidf_rank(&st);
    if (rank < 0 || rank > 3 || (!st.open && rank != 0))
        abort();

    struct strbuf out = STRBUF_INIT;
    pidf_write(AOR, &st, &out);
    if (out.err) {
        strbuf_free(&out);
        return 0;
    }
    struct pidf_state again;
    if (pidf_check(out.p, out.len, AOR, &again, err, sizeof(err)) != 0)
        abort(); /* Parley wrote what it would refuse */
    if (again.open != st.open || strcmp(again.activity, st.activity) != 0)
        abort();
    strbuf_free(&out);
    return 0;
}
