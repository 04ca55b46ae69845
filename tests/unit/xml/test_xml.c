/*
 * xml: what is well formed (elements, attributes, namespaces,
 * text, CDATA, comments, PIs, the BOM) is read into the tree; what is not
 * (DOCTYPE, unbalanced tags, bad references, undeclared prefixes,
 * attributes twice, depth and size beyond the limits) is refused with a
 * reason.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/strbuf.h"
#include "xml/xml.h"

#define NS_PIDF "urn:ietf:params:xml:ns:pidf"
#define NS_RPID "urn:ietf:params:xml:ns:pidf:rpid"
#define NS_XML  "http://www.w3.org/XML/1998/namespace"

static char err[256];

static struct xml_doc *parse_ok(const char *text)
{
    struct xml_doc *d = NULL;
    err[0] = '\0';
    int rc = xml_parse(text, strlen(text), &d, err, sizeof(err));
    if (rc != 0)
        fail_msg("refused (%d: %s):\n%s", rc, err, text);
    assert_non_null(d);
    assert_non_null(xml_root(d));
    return d;
}

/* Refused with -EINVAL and a reason; `want` (if given) is part of it. */
static void parse_bad_len(const char *text, size_t len, const char *want)
{
    struct xml_doc *d = NULL;
    strcpy(err, "untouched");
    int rc = xml_parse(text, len, &d, err, sizeof(err));
    if (rc != -EINVAL) {
        xml_free(d);
        fail_msg("accepted (rc %d) but must be refused:\n%.*s", rc, (int)len, text);
    }
    assert_null(d);
    assert_true(strlen(err) > 0);
    assert_string_not_equal(err, "untouched");
    if (want && !strstr(err, want))
        fail_msg("reason \"%s\" does not say \"%s\" for:\n%.*s", err, want, (int)len, text);
}

static void parse_bad(const char *text, const char *want)
{
    parse_bad_len(text, strlen(text), want);
}

static void assert_view(struct strview v, const char *s)
{
    if (!strview_eq(v, s))
        fail_msg("\"%.*s\" != \"%s\"", (int)v.n, v.p ? v.p : "", s);
}

/* --- well formed --------------------------------------------------------- */

static void test_tree_names_attributes_text(void **state)
{
    (void)state;
    struct xml_doc *d =
        parse_ok("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                 "<presence xmlns=\"" NS_PIDF "\" entity='sip:bob@example.test'>\n"
                 "  <tuple id=\"t1\"><status><basic> open </basic></status></tuple>\n"
                 "  <tuple id=\"t2\"/>\n"
                 "  <note>a &amp; b &lt;c&gt; &#65;&#x42;</note>\n"
                 "</presence >\n");
    struct xml_node *root = xml_root(d);
    assert_view(root->local, "presence");
    assert_view(root->ns, NS_PIDF);
    assert_view(root->prefix, "");
    assert_null(root->parent);
    const struct xml_attr *ent = xml_attr(root, "entity");
    assert_non_null(ent);
    assert_view(ent->value, "sip:bob@example.test");
    assert_view(ent->ns, "");
    assert_null(xml_attr(root, "xmlns")); /* declarations are not attributes */
    assert_null(xml_attr(root, "nope"));

    struct xml_node *t1 = xml_child(root, NS_PIDF, "tuple");
    assert_non_null(t1);
    assert_ptr_equal(t1->parent, root);
    assert_view(xml_attr(t1, "id")->value, "t1");
    struct xml_node *t2 = xml_next(t1, NS_PIDF, "tuple");
    assert_non_null(t2);
    assert_view(xml_attr(t2, "id")->value, "t2");
    assert_null(xml_next(t2, NS_PIDF, "tuple"));
    assert_null(t2->first_child);

    struct xml_node *basic = xml_child(xml_child(t1, NS_PIDF, "status"), NS_PIDF, "basic");
    assert_non_null(basic);
    assert_view(xml_text_trimmed(basic), "open");
    assert_view(basic->text, " open ");

    /* text stays raw: references are checked, not decoded */
    struct xml_node *note = xml_child(root, NULL, "note");
    assert_non_null(note);
    assert_view(xml_text_trimmed(note), "a &amp; b &lt;c&gt; &#65;&#x42;");
    /* a namespace filter that does not match */
    assert_null(xml_child(root, NS_RPID, "tuple"));
    xml_free(d);
}

static void test_namespaces_and_scope(void **state)
{
    (void)state;
    struct xml_doc *d =
        parse_ok("<p:presence xmlns:p=\"" NS_PIDF "\" xmlns:r=\"" NS_RPID "\">"
                 "<p:tuple id=\"a\" xml:lang=\"en\" r:class=\"x\"/>"
                 /* the prefix r is bound to another URI inside this element only */
                 "<other xmlns=\"urn:example:other\" xmlns:r=\"urn:example:r2\"><r:x/><y/></other>"
                 "<r:activities><r:away/></r:activities>"
                 "<plain/>"
                 "</p:presence>");
    struct xml_node *root = xml_root(d);
    assert_view(root->ns, NS_PIDF);
    assert_view(root->prefix, "p");
    assert_view(root->local, "presence");
    struct xml_node *tuple = xml_child(root, NS_PIDF, "tuple");
    assert_non_null(tuple);
    assert_int_equal(tuple->nattrs, 3);
    bool lang = false, cls = false;
    for (size_t i = 0; i < tuple->nattrs; i++) {
        if (strview_eq(tuple->attrs[i].local, "lang")) {
            assert_view(tuple->attrs[i].ns, NS_XML);
            lang = true;
        }
        if (strview_eq(tuple->attrs[i].local, "class")) {
            assert_view(tuple->attrs[i].ns, NS_RPID);
            cls = true;
        }
    }
    assert_true(lang && cls);
    /* xml_attr finds only attributes without a namespace */
    assert_null(xml_attr(tuple, "class"));
    assert_non_null(xml_attr(tuple, "id"));

    struct xml_node *other = xml_child(root, "urn:example:other", "other");
    assert_non_null(other);
    assert_non_null(xml_child(other, "urn:example:r2", "x"));
    assert_non_null(xml_child(other, "urn:example:other", "y"));
    /* after </other> r is the RPID namespace again, and the default is none */
    struct xml_node *acts = xml_child(root, NS_RPID, "activities");
    assert_non_null(acts);
    assert_non_null(xml_child(acts, NS_RPID, "away"));
    struct xml_node *plain = xml_child(root, NULL, "plain");
    assert_non_null(plain);
    assert_view(plain->ns, "");
    xml_free(d);
}

static void test_default_namespace_undeclared(void **state)
{
    (void)state;
    struct xml_doc *d = parse_ok("<a xmlns=\"urn:x\"><b xmlns=\"\"><c/></b></a>");
    struct xml_node *b = xml_child(xml_root(d), NULL, "b");
    assert_non_null(b);
    assert_view(b->ns, "");
    assert_view(b->first_child->ns, "");
    xml_free(d);
}

static void test_misc_around_root(void **state)
{
    (void)state;
    struct xml_doc *d = parse_ok("\r\n\t <?xml version=\"1.0\"?><!-- before -->\n<?pi data?>"
                                 "<a><!-- inside --><?pi inside?>x<b/>y</a>\n<!-- after -->\n"
                                 "<?after?>\n");
    struct xml_node *a = xml_root(d);
    assert_view(a->local, "a");
    assert_view(a->text, "x"); /* the first run of text */
    assert_non_null(xml_child(a, NULL, "b"));
    xml_free(d);
}

static void test_cdata(void **state)
{
    (void)state;
    struct xml_doc *d = parse_ok("<a><![CDATA[1 < 2 && <b>not markup</b>]]></a>");
    assert_view(xml_root(d)->text, "1 < 2 && <b>not markup</b>");
    assert_null(xml_root(d)->first_child);
    xml_free(d);
    d = parse_ok("<a><![CDATA[]]></a>");
    xml_free(d);
    parse_bad("<a><![CDATA[never closed</a>", "CDATA");
}

static void test_bom(void **state)
{
    (void)state;
    struct xml_doc *d = parse_ok("\xef\xbb\xbf<?xml version=\"1.0\"?><a/>");
    assert_view(xml_root(d)->local, "a");
    xml_free(d);
    /* a BOM anywhere else is text, not allowed outside the root */
    parse_bad("<a/>\xef\xbb\xbf", NULL);
    /* half a BOM */
    parse_bad("\xef\xbb<a/>", NULL);
}

static void test_utf8_names_and_quotes(void **state)
{
    (void)state;
    struct xml_doc *d =
        parse_ok("<caf\xc3\xa9 na\xc3\xafve='1' b = \"2\"  >t\xc3\xa9</caf\xc3\xa9>");
    assert_view(xml_root(d)->local, "caf\xc3\xa9");
    assert_view(xml_attr(xml_root(d), "na\xc3\xafve")->value, "1");
    assert_view(xml_attr(xml_root(d), "b")->value, "2");
    xml_free(d);
}

static void test_references_well_formed(void **state)
{
    (void)state;
    struct xml_doc *d = parse_ok("<a v=\"&quot;&apos;&lt;&gt;&amp;&#9;&#x1F600;\">&#10;&#xa;</a>");
    xml_free(d);
}

static void test_depth_limit(void **state)
{
    (void)state;
    struct strbuf b = STRBUF_INIT;
    for (int i = 0; i < XML_MAX_DEPTH; i++)
        strbuf_puts(&b, "<e>");
    for (int i = 0; i < XML_MAX_DEPTH; i++)
        strbuf_puts(&b, "</e>");
    struct xml_doc *d = parse_ok(strbuf_cstr(&b));
    int depth = 0;
    for (struct xml_node *n = xml_root(d); n; n = n->first_child)
        depth++;
    assert_int_equal(depth, XML_MAX_DEPTH);
    xml_free(d);

    strbuf_reset(&b);
    for (int i = 0; i < XML_MAX_DEPTH + 1; i++)
        strbuf_puts(&b, "<e>");
    for (int i = 0; i < XML_MAX_DEPTH + 1; i++)
        strbuf_puts(&b, "</e>");
    parse_bad(strbuf_cstr(&b), "deeper");

    /* far deeper, and never closed: refused without recursing far */
    strbuf_reset(&b);
    for (int i = 0; i < 100000; i++)
        strbuf_puts(&b, "<e>");
    parse_bad(strbuf_cstr(&b), "deeper");
    strbuf_free(&b);
}

static void test_element_count_limit(void **state)
{
    (void)state;
    struct strbuf b = STRBUF_INIT;
    strbuf_puts(&b, "<r>");
    for (int i = 0; i < XML_MAX_NODES - 1; i++)
        strbuf_puts(&b, "<e/>");
    strbuf_puts(&b, "</r>");
    struct xml_doc *d = parse_ok(strbuf_cstr(&b));
    size_t n = 0;
    for (struct xml_node *c = xml_root(d)->first_child; c; c = c->next)
        n++;
    assert_int_equal(n, XML_MAX_NODES - 1);
    xml_free(d);

    strbuf_reset(&b);
    strbuf_puts(&b, "<r>");
    for (int i = 0; i < XML_MAX_NODES; i++)
        strbuf_puts(&b, "<e/>");
    strbuf_puts(&b, "</r>");
    parse_bad(strbuf_cstr(&b), "elements");
    /* padding with white space does not buy more */
    strbuf_reset(&b);
    strbuf_puts(&b, "<r>");
    for (int i = 0; i < XML_MAX_NODES; i++)
        strbuf_puts(&b, "<e />          ");
    strbuf_puts(&b, "</r>");
    parse_bad(strbuf_cstr(&b), "elements");
    strbuf_free(&b);
}

static void test_attribute_count_limit(void **state)
{
    (void)state;
    struct strbuf b = STRBUF_INIT;
    strbuf_puts(&b, "<a");
    for (int i = 0; i < XML_MAX_ATTRS; i++)
        strbuf_printf(&b, " a%d=\"%d\"", i, i);
    strbuf_puts(&b, "/>");
    struct xml_doc *d = parse_ok(strbuf_cstr(&b));
    assert_int_equal(xml_root(d)->nattrs, XML_MAX_ATTRS);
    xml_free(d);
    strbuf_reset(&b);
    strbuf_puts(&b, "<a");
    for (int i = 0; i < XML_MAX_ATTRS + 1; i++)
        strbuf_printf(&b, " a%d=\"%d\"", i, i);
    strbuf_puts(&b, "/>");
    parse_bad(strbuf_cstr(&b), "attributes");
    strbuf_free(&b);
}

/* Many attributes on many elements fill the attribute arena: refused
 * cleanly, never written past. */
static void test_attribute_arena(void **state)
{
    (void)state;
    struct strbuf b = STRBUF_INIT;
    strbuf_puts(&b, "<r>");
    for (int i = 0; i < 400; i++) {
        strbuf_puts(&b, "<e");
        for (int k = 0; k < XML_MAX_ATTRS; k++)
            strbuf_printf(&b, " a%d=''", k);
        strbuf_puts(&b, "/>");
    }
    strbuf_puts(&b, "</r>");
    struct xml_doc *d = NULL;
    int rc = xml_parse(b.p, b.len, &d, err, sizeof(err));
    if (rc == 0) {
        size_t total = 0;
        for (struct xml_node *c = xml_root(d)->first_child; c; c = c->next) {
            assert_int_equal(c->nattrs, XML_MAX_ATTRS);
            total += c->nattrs;
        }
        assert_int_equal(total, 400 * XML_MAX_ATTRS);
        xml_free(d);
    } else {
        assert_int_equal(rc, -EINVAL);
    }
    strbuf_free(&b);
}

/* --- refused -------------------------------------------------------------- */

static void test_doctype_refused(void **state)
{
    (void)state;
    parse_bad("<!DOCTYPE a><a/>", "DOCTYPE");
    parse_bad("<?xml version=\"1.0\"?>\n<!DOCTYPE presence [<!ENTITY x \"y\">]><presence/>",
              "DOCTYPE");
    parse_bad("<!-- c --><!DOCTYPE a SYSTEM \"file:///etc/passwd\"><a>&xxe;</a>", "DOCTYPE");
    parse_bad("<a><!DOCTYPE a></a>", "DOCTYPE");
    parse_bad("<a/><!DOCTYPE a>", "DOCTYPE");
    parse_bad("<!ENTITY x \"y\"><a/>", NULL);
    /* billion laughs never gets as far as an expansion */
    parse_bad("<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">"
              "<!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">]>"
              "<lolz>&lol1;</lolz>",
              "DOCTYPE");
}

static void test_unbalanced_refused(void **state)
{
    (void)state;
    parse_bad("<a>", "not closed");
    parse_bad("<a><b></a></b>", NULL);
    parse_bad("<a></b>", NULL);
    parse_bad("<a><b></b>", NULL);
    parse_bad("</a>", NULL);
    parse_bad("<a></a></a>", NULL);
    parse_bad("<a/><b/>", "after the root");
    parse_bad("<a/>trailing", "after the root");
    parse_bad("text<a/>", NULL);
    parse_bad("", "no root");
    parse_bad("   \r\n", "no root");
    parse_bad("<!-- only a comment -->", "no root");
    parse_bad("<a></a", NULL);
    parse_bad("<a></", NULL);
    parse_bad("<a></ a>", NULL);
    parse_bad("<a", "unterminated");
    parse_bad("<a b=\"1\"", "unterminated");
    parse_bad("<a b=\"1", "unterminated");
    parse_bad("<", NULL);
    parse_bad("<>", NULL);
    parse_bad("<1a/>", NULL);
    parse_bad("<a><!-- never closed</a>", "comment");
    parse_bad("<a><?pi never closed</a>", "processing");
}

static void test_bad_references_refused(void **state)
{
    (void)state;
    parse_bad("<a>&bogus;</a>", "entity");
    parse_bad("<a>&amp</a>", "entity");
    parse_bad("<a>fish & chips</a>", "entity");
    parse_bad("<a>&;</a>", NULL);
    parse_bad("<a>&#;</a>", NULL);
    parse_bad("<a>&#x;</a>", "reference");
    parse_bad("<a>&#12a;</a>", "reference");
    parse_bad("<a>&#xZZ;</a>", "reference");
    parse_bad("<a>&#-1;</a>", "reference");
    parse_bad("<a>&averyveryverylongentityname;</a>", NULL);
    parse_bad("<a b=\"&bogus;\"/>", "entity");
    parse_bad("<a b=\"x & y\"/>", "entity");
    parse_bad("<a b=\"&lt\"/>", "entity");
    /* upper-case hex marker is not XML */
    parse_bad("<a>&#X41;</a>", NULL);
}

/* A character reference must name a character XML allows (WFC: Legal
 * Character): not NUL, not a C0 control other than tab, CR, LF, not a
 * surrogate, not beyond U+10FFFF. */
static void test_character_reference_to_illegal_character_refused(void **state)
{
    (void)state;
    parse_bad("<a>&#0;</a>", NULL);
    parse_bad("<a>&#x0;</a>", NULL);
    parse_bad("<a>&#1;</a>", NULL);
    parse_bad("<a>&#xD800;</a>", NULL);
    parse_bad("<a>&#x110000;</a>", NULL);
    parse_bad("<a>&#99999999;</a>", NULL);
}

static void test_undeclared_prefixes_refused(void **state)
{
    (void)state;
    parse_bad("<rpid:activities/>", "undeclared");
    parse_bad("<a><rpid:away/></a>", "undeclared");
    parse_bad("<a rpid:x=\"1\"/>", "undeclared");
    /* a declaration ends with its element */
    parse_bad("<a><b xmlns:r=\"urn:r\"/><r:c/></a>", "undeclared");
    /* nor does a declaration on a later sibling count */
    parse_bad("<a><r:c/><b xmlns:r=\"urn:r\"/></a>", "undeclared");
    /* the prefix xmlns is not an element prefix */
    parse_bad("<xmlns:a/>", NULL);
}

static void test_attribute_twice_refused(void **state)
{
    (void)state;
    parse_bad("<a x=\"1\" x=\"2\"/>", "twice");
    parse_bad("<a x='1' y='2' x='1'/>", "twice");
    parse_bad("<a xmlns:p='urn:p' p:x='1' p:x='2'/>", "twice");
}

/* XML 1.0 "Unique Att Spec" covers namespace declarations too. */
static void test_namespace_declaration_twice_refused(void **state)
{
    (void)state;
    parse_bad("<a xmlns:p='urn:p' xmlns:p='urn:q'><p:b/></a>", NULL);
    parse_bad("<a xmlns='urn:p' xmlns='urn:q'/>", NULL);
}

/* Namespaces in XML 1.0 §6.3: no two attributes with the same expanded
 * name (different prefixes bound to one URI). */
static void test_same_expanded_attribute_twice_refused(void **state)
{
    (void)state;
    parse_bad("<a xmlns:p='urn:x' xmlns:q='urn:x' p:id='1' q:id='2'/>", NULL);
}

static void test_attribute_syntax_refused(void **state)
{
    (void)state;
    parse_bad("<a x=\"1\"y=\"2\"/>", "white space");
    parse_bad("<a x/>", "=");
    parse_bad("<a x=1/>", "quoted");
    parse_bad("<a x=\"1'/>", "unterminated");
    parse_bad("<a x=\"<\"/>", "'<'");
    parse_bad("<a =\"1\"/>", NULL);
}

static void test_control_and_nul_refused(void **state)
{
    (void)state;
    static const char nul[] = "<a>x\0y</a>";
    parse_bad_len(nul, sizeof(nul) - 1, "NUL");
    static const char nul_after[] = "<a/>\0";
    parse_bad_len(nul_after, sizeof(nul_after) - 1, "NUL");
    parse_bad("<a>\x01</a>", "control");
    parse_bad("<a>\x1b[31m</a>", "control");
    parse_bad("<a b=\"\x07\"/>", "control");
    /* tab, CR and LF are fine */
    struct xml_doc *d = parse_ok("<a b=\"\t\r\n\">\t\r\n</a>");
    xml_free(d);
}

static void test_comment_rules(void **state)
{
    (void)state;
    struct xml_doc *d = parse_ok("<a><!----><!-- - --></a>");
    xml_free(d);
    /* "<!-->" opens a comment, it does not close one */
    parse_bad("<a><!--></a>", NULL);
    /* "--" must not occur inside a comment */
    parse_bad("<a><!-- a -- b --></a>", NULL);
    parse_bad("<a><!-- a ---></a>", NULL);
}

/* "]]>" may not appear in character data. */
static void test_cdata_end_in_text_refused(void **state)
{
    (void)state;
    parse_bad("<a>x ]]> y</a>", NULL);
}

/* The document is only `len` bytes: nothing past it is read (ASan). */
static void test_no_read_past_len(void **state)
{
    (void)state;
    static const char *docs[] = {
        "<a>",    "<a b='", "<a><!--",  "<a><![CDATA[", "<a>&amp",
        "<a></a", "<?xml",  "\xef\xbb", "<a><b/></a>",
    };
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        size_t n = strlen(docs[i]);
        for (size_t cut = 0; cut < n; cut++) {
            char *copy = malloc(cut ? cut : 1);
            assert_non_null(copy);
            memcpy(copy, docs[i], cut);
            struct xml_doc *d = NULL;
            int rc = xml_parse(copy, cut, &d, err, sizeof(err));
            assert_int_equal(rc, -EINVAL); /* every proper prefix is incomplete */
            assert_null(d);
            free(copy);
        }
    }
}

static void test_short_error_buffer(void **state)
{
    (void)state;
    char small[8];
    memset(small, 'x', sizeof(small));
    struct xml_doc *d = NULL;
    const char *doc = "<a><undeclared:prefix-that-is-long/></a>";
    assert_int_equal(xml_parse(doc, strlen(doc), &d, small, sizeof(small)), -EINVAL);
    assert_non_null(memchr(small, '\0', sizeof(small)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tree_names_attributes_text),
        cmocka_unit_test(test_namespaces_and_scope),
        cmocka_unit_test(test_default_namespace_undeclared),
        cmocka_unit_test(test_misc_around_root),
        cmocka_unit_test(test_cdata),
        cmocka_unit_test(test_bom),
        cmocka_unit_test(test_utf8_names_and_quotes),
        cmocka_unit_test(test_references_well_formed),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_element_count_limit),
        cmocka_unit_test(test_attribute_count_limit),
        cmocka_unit_test(test_attribute_arena),
        cmocka_unit_test(test_doctype_refused),
        cmocka_unit_test(test_unbalanced_refused),
        cmocka_unit_test(test_bad_references_refused),
        cmocka_unit_test(test_character_reference_to_illegal_character_refused),
        cmocka_unit_test(test_undeclared_prefixes_refused),
        cmocka_unit_test(test_attribute_twice_refused),
        cmocka_unit_test(test_namespace_declaration_twice_refused),
        cmocka_unit_test(test_same_expanded_attribute_twice_refused),
        cmocka_unit_test(test_attribute_syntax_refused),
        cmocka_unit_test(test_control_and_nul_refused),
        cmocka_unit_test(test_comment_rules),
        cmocka_unit_test(test_cdata_end_in_text_refused),
        cmocka_unit_test(test_no_read_past_len),
        cmocka_unit_test(test_short_error_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
