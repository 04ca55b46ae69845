/*
 * presence/pidf: which published documents are accepted (and what state
 * they say), which are refused and why, how states rank, and that what
 * Parley writes itself is plain PIDF that pidf_check (and simple clients,
 * reading by text) understand.
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
#include "presence/pidf.h"
#include "xml/xml.h"

#define AOR "bob@example.test"
#define HEAD                                                                                       \
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"                                                 \
    "<presence xmlns=\"" PIDF_NS "\" xmlns:dm=\"" PIDF_NS_DM "\" xmlns:rpid=\"" PIDF_NS_RPID       \
    "\" entity=\"sip:" AOR "\">\n"
#define TUPLE_OPEN   "<tuple id=\"t1\"><status><basic>open</basic></status></tuple>\n"
#define TUPLE_CLOSED "<tuple id=\"t1\"><status><basic>closed</basic></status></tuple>\n"
#define TAIL         "</presence>\n"

static char err[200];

static struct pidf_state check_ok_aor(const char *doc, const char *aor)
{
    struct pidf_state st;
    memset(&st, 0x5a, sizeof(st)); /* every field must be written */
    err[0] = '\0';
    int rc = pidf_check(doc, strlen(doc), aor, &st, err, sizeof(err));
    if (rc != 0)
        fail_msg("refused (%d: %s):\n%s", rc, err, doc);
    assert_non_null(memchr(st.activity, '\0', sizeof(st.activity)));
    return st;
}

static struct pidf_state check_ok(const char *doc)
{
    return check_ok_aor(doc, AOR);
}

static void check_bad_aor(const char *doc, const char *aor, const char *want)
{
    struct pidf_state st;
    strcpy(err, "untouched");
    int rc = pidf_check(doc, strlen(doc), aor, &st, err, sizeof(err));
    if (rc != -EINVAL)
        fail_msg("rc %d (%s) but must be refused with -EINVAL:\n%s", rc, err, doc);
    assert_string_not_equal(err, "untouched");
    assert_true(strlen(err) > 0);
    if (want && !strstr(err, want))
        fail_msg("reason \"%s\" does not say \"%s\" for:\n%s", err, want, doc);
}

static void check_bad(const char *doc, const char *want)
{
    check_bad_aor(doc, AOR, want);
}

/* --- accepted ------------------------------------------------------------ */

static void test_open_and_closed(void **state)
{
    (void)state;
    struct pidf_state st = check_ok(HEAD TUPLE_OPEN TAIL);
    assert_true(st.open);
    assert_string_equal(st.activity, "");
    st = check_ok(HEAD TUPLE_CLOSED TAIL);
    assert_false(st.open);
    assert_string_equal(st.activity, "");
    /* white space around the value, as some clients pretty-print */
    st = check_ok(HEAD "<tuple id=\"t\"><status><basic>\n   open\n</basic></status></tuple>" TAIL);
    assert_true(st.open);
}

static void test_any_open_tuple_makes_open(void **state)
{
    (void)state;
    struct pidf_state st =
        check_ok(HEAD "<tuple id=\"a\"><status><basic>closed</basic></status></tuple>"
                      "<tuple id=\"b\"><status><basic>open</basic></status></tuple>"
                      "<tuple id=\"c\"><status><basic>closed</basic></status></tuple>" TAIL);
    assert_true(st.open);
    /* no tuple at all (a person-only document): closed */
    st = check_ok(HEAD "<dm:person id=\"p\"/>" TAIL);
    assert_false(st.open);
    /* a status without <basic> is allowed and says nothing */
    st = check_ok(HEAD "<tuple id=\"a\"><status/></tuple>" TAIL);
    assert_false(st.open);
}

static void test_entity_forms(void **state)
{
    (void)state;
    static const char *ok[] = {"sip:bob@example.test", "sips:bob@example.test",
                               "pres:bob@example.test", "SIP:bob@example.test",
                               "sip:BOB@EXAMPLE.TEST"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char doc[512];
        snprintf(doc, sizeof(doc), "<presence xmlns=\"" PIDF_NS "\" entity=\"%s\">" TUPLE_OPEN TAIL,
                 ok[i]);
        assert_true(check_ok(doc).open);
    }
}

static void test_entity_mismatch_refused(void **state)
{
    (void)state;
    static const char *bad[] = {
        "sip:alice@example.test",
        "sip:bo@example.test",
        "sip:bobby@example.test",
        "sip:bob@example.test.evil.org",
        "sip:bob@other.test",
        "bob@example.test",
        "tel:+15551234",
        "",
        "sip:bob@example.test;x=y",
        "sip:bob@example.tes",
        "im:bob@example.test",
        "sip: bob@example.test",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char doc[512];
        snprintf(doc, sizeof(doc), "<presence xmlns=\"" PIDF_NS "\" entity=\"%s\">" TUPLE_OPEN TAIL,
                 bad[i]);
        check_bad(doc, "entity");
    }
    /* the same document is fine for the user it names */
    check_ok_aor("<presence xmlns=\"" PIDF_NS
                 "\" entity=\"sip:alice@example.test\">" TUPLE_OPEN TAIL,
                 "alice@example.test");
    check_bad("<presence xmlns=\"" PIDF_NS "\">" TUPLE_OPEN TAIL, "entity");
    /* an entity attribute in another namespace is not the entity */
    check_bad("<presence xmlns=\"" PIDF_NS "\" xmlns:x=\"urn:x\" x:entity=\"sip:" AOR
              "\">" TUPLE_OPEN TAIL,
              "entity");
}

static void test_rpid_activities(void **state)
{
    (void)state;
    struct pidf_state st;
    /* the usual form: dm:person with rpid:activities */
    st = check_ok(
        HEAD TUPLE_OPEN
        "<dm:person id=\"p\"><rpid:activities><rpid:away/></rpid:activities></dm:person>" TAIL);
    assert_true(st.open);
    assert_string_equal(st.activity, "away");
    /* any prefix for the RPID namespace */
    st = check_ok("<presence xmlns=\"" PIDF_NS "\" xmlns:r=\"" PIDF_NS_RPID
                  "\" xmlns:d=\"" PIDF_NS_DM "\" entity=\"sip:" AOR "\">" TUPLE_OPEN
                  "<d:person id=\"p\"><r:activities><r:busy/></r:activities></d:person>" TAIL);
    assert_string_equal(st.activity, "busy");
    /* RPID as the default namespace of the element */
    st = check_ok(HEAD TUPLE_OPEN "<dm:person id=\"p\"><activities xmlns=\"" PIDF_NS_RPID
                                  "\"><on-the-phone/></activities></dm:person>" TAIL);
    assert_string_equal(st.activity, "on-the-phone");
    /* inside a tuple's status (older clients) */
    st = check_ok(HEAD "<tuple id=\"t\"><status><basic>open</basic><rpid:activities><rpid:meeting/>"
                       "</rpid:activities></status></tuple>" TAIL);
    assert_string_equal(st.activity, "meeting");
    /* notes and foreign elements in the activities are skipped */
    st = check_ok(HEAD TUPLE_OPEN
                  "<dm:person id=\"p\"><rpid:activities><rpid:note>lunch</rpid:note>"
                  "<x:eating xmlns:x=\"urn:x\"/><rpid:lunch/></rpid:activities></dm:person>" TAIL);
    assert_string_equal(st.activity, "lunch");
    /* empty activities (what baresip sends): none */
    st = check_ok(HEAD "<dm:person id=\"p\"><rpid:activities/></dm:person>" TUPLE_OPEN TAIL);
    assert_string_equal(st.activity, "");
    /* an "activities" element of another namespace is not RPID */
    st = check_ok(HEAD TUPLE_OPEN "<x:activities xmlns:x=\"urn:x\"><x:away/></x:activities>" TAIL);
    assert_string_equal(st.activity, "");
    /* the prefix text "rpid:" alone means nothing without the namespace */
    st = check_ok("<presence xmlns=\"" PIDF_NS "\" xmlns:rpid=\"urn:not-rpid\" entity=\"sip:" AOR
                  "\">" TUPLE_OPEN "<rpid:activities><rpid:away/></rpid:activities>" TAIL);
    assert_string_equal(st.activity, "");
    /* the first activity in document order counts */
    st = check_ok(HEAD TUPLE_OPEN "<dm:person id=\"p\"><rpid:activities><rpid:busy/><rpid:away/>"
                                  "</rpid:activities></dm:person>" TAIL);
    assert_string_equal(st.activity, "busy");
}

static void test_long_activity_name_bounded(void **state)
{
    (void)state;
    struct pidf_state st =
        check_ok(HEAD TUPLE_OPEN "<dm:person id=\"p\"><rpid:activities>"
                                 "<rpid:an-activity-name-much-longer-than-the-buffer-holds/>"
                                 "</rpid:activities></dm:person>" TAIL);
    assert_true(strlen(st.activity) < sizeof(st.activity));
    assert_true(strncmp(st.activity, "an-activity", 11) == 0);
}

static void test_extensions_allowed(void **state)
{
    (void)state;
    struct pidf_state st = check_ok(
        "<?xml version='1.0' encoding='UTF-8'?>"
        "<presence xmlns='" PIDF_NS "' xmlns:dm='" PIDF_NS_DM "' xmlns:rpid='" PIDF_NS_RPID "'"
        " xmlns:caps='urn:ietf:params:xml:ns:pidf:caps'"
        " xmlns:cipid='urn:ietf:params:xml:ns:pidf:cipid'"
        " xmlns:lt='urn:ietf:params:xml:ns:location-type'"
        " xmlns:x='urn:example:vendor' entity='pres:" AOR "'>"
        "<tuple id='sg89ae'><status><basic>open</basic><x:extra>1</x:extra></status>"
        "<caps:servcaps><caps:audio>true</caps:audio><caps:video>false</caps:video></caps:servcaps>"
        "<dm:deviceID>urn:uuid:3ca5</dm:deviceID><contact priority='0.8'>sip:bob@10.0.0.1</contact>"
        "<note xml:lang='en'>Don't "
        "disturb</note><timestamp>2025-01-01T00:00:00Z</timestamp></tuple>"
        "<dm:person id='p1'><rpid:activities><rpid:busy/></rpid:activities>"
        "<rpid:mood><rpid:happy/></rpid:mood><rpid:place-type><lt:office/></rpid:place-type>"
        "<cipid:display-name>Bob</cipid:display-name><dm:note>in the office</dm:note></dm:person>"
        "<dm:device id='d1'><dm:deviceID>urn:uuid:3ca5</dm:deviceID></dm:device>"
        "<x:anything><x:nested a='b'/></x:anything>"
        "<note>free &amp; easy</note>"
        "</presence>");
    assert_true(st.open);
    assert_string_equal(st.activity, "busy");
}

/* --- refused -------------------------------------------------------------- */

static void test_malformed_xml_refused(void **state)
{
    (void)state;
    check_bad("not xml", "malformed PIDF");
    check_bad(HEAD TUPLE_OPEN, "malformed PIDF");
    check_bad("<!DOCTYPE presence>" HEAD TUPLE_OPEN TAIL, "DOCTYPE");
    check_bad(HEAD "<tuple id=\"t\"><status><basic>open</status></basic></tuple>" TAIL, NULL);
    check_bad(HEAD TUPLE_OPEN "<rpid2:x/>" TAIL, "undeclared");
    check_bad("", NULL);
}

static void test_root_refused(void **state)
{
    (void)state;
    /* not <presence>, or not in the PIDF namespace */
    check_bad("<presence entity=\"sip:" AOR "\">" TUPLE_OPEN TAIL, "root");
    check_bad("<presence xmlns=\"urn:ietf:params:xml:ns:cpim-pidf\" entity=\"sip:" AOR
              "\">" TUPLE_OPEN TAIL,
              "root");
    check_bad("<p:pres xmlns:p=\"" PIDF_NS "\" entity=\"sip:" AOR "\"/>", "root");
    check_bad("<tuple xmlns=\"" PIDF_NS "\" id=\"x\"/>", "root");
}

static void test_tuple_checks(void **state)
{
    (void)state;
    check_bad(HEAD "<tuple><status><basic>open</basic></status></tuple>" TAIL, "id");
    check_bad(HEAD "<tuple ID=\"t\"><status><basic>open</basic></status></tuple>" TAIL, "id");
    check_bad(HEAD "<tuple id=\"t\"/>" TAIL, "status");
    check_bad(HEAD "<tuple id=\"t\"><contact>sip:x@y</contact></tuple>" TAIL, "status");
    /* a status of another namespace is not the PIDF status */
    check_bad(HEAD "<tuple id=\"t\"><x:status xmlns:x=\"urn:x\"/></tuple>" TAIL, "status");
    /* the second tuple is checked as well as the first */
    check_bad(HEAD TUPLE_OPEN "<tuple id=\"t2\"/>" TAIL, "status");
    check_bad(HEAD TUPLE_OPEN "<tuple><status/></tuple>" TAIL, "id");
}

static void test_basic_values(void **state)
{
    (void)state;
    static const char *bad[] = {"maybe", "Open", "CLOSED", "", "open closed", "opened", "1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char doc[1024];
        snprintf(doc, sizeof(doc),
                 HEAD "<tuple id=\"t\"><status><basic>%s</basic></status></tuple>" TAIL, bad[i]);
        check_bad(doc, "basic");
    }
}

static void test_error_buffer_bounded(void **state)
{
    (void)state;
    char small[10];
    struct pidf_state st;
    const char *doc = "<presence xmlns=\"" PIDF_NS "\" entity=\"sip:x@y\">" TUPLE_OPEN TAIL;
    assert_int_equal(pidf_check(doc, strlen(doc), AOR, &st, small, sizeof(small)), -EINVAL);
    assert_non_null(memchr(small, '\0', sizeof(small)));
}

/* --- rank ----------------------------------------------------------------- */

static struct pidf_state state_of(bool open, const char *activity)
{
    struct pidf_state st;
    memset(&st, 0, sizeof(st));
    st.open = open;
    snprintf(st.activity, sizeof(st.activity), "%s", activity);
    return st;
}

static int rank(bool open, const char *activity)
{
    struct pidf_state st = state_of(open, activity);
    return pidf_rank(&st);
}

static void test_rank_order(void **state)
{
    (void)state;
    /* open and free > open and busy > open and away > closed */
    assert_true(rank(true, "") > rank(true, "busy"));
    assert_true(rank(true, "busy") > rank(true, "away"));
    assert_true(rank(true, "away") > rank(false, ""));
    /* what counts as free, busy and away */
    assert_int_equal(rank(true, "unknown"), rank(true, ""));
    assert_int_equal(rank(true, "on-the-phone"), rank(true, "busy"));
    assert_int_equal(rank(true, "meeting"), rank(true, "busy"));
    assert_int_equal(rank(true, "vacation"), rank(true, "away"));
    assert_int_equal(rank(true, "sleeping"), rank(true, "away"));
    assert_int_equal(rank(true, "permanent-absence"), rank(true, "away"));
    /* closed is closed whatever the activity says */
    assert_int_equal(rank(false, "busy"), rank(false, ""));
    assert_int_equal(rank(false, "away"), rank(false, ""));
    assert_true(rank(true, "away") > rank(false, "busy"));
}

/* --- writing ---------------------------------------------------------------- */

static void roundtrip(bool open, const char *activity)
{
    struct pidf_state in = state_of(open, activity);
    struct strbuf b = STRBUF_INIT;
    pidf_write(AOR, &in, &b);
    assert_int_equal(b.err, 0);
    const char *doc = strbuf_cstr(&b);

    struct pidf_state out = check_ok(doc);
    assert_int_equal(out.open, open);
    assert_string_equal(out.activity, activity);

    /* simple clients read by text: <basic>open</basic> / closed, rpid: prefix */
    assert_non_null(strstr(doc, open ? "<basic>open</basic>" : "<basic>closed</basic>"));
    if (activity[0]) {
        char want[64];
        snprintf(want, sizeof(want), "<rpid:%s/>", activity);
        assert_non_null(strstr(doc, want));
    } else {
        assert_null(strstr(doc, "<rpid:activities"));
    }
    assert_non_null(strstr(doc, "entity=\"pres:" AOR "\""));

    /* and it is PIDF for this user only */
    struct pidf_state other;
    assert_int_equal(pidf_check(doc, strlen(doc), "alice@example.test", &other, err, sizeof(err)),
                     -EINVAL);

    /* a tree a generic reader walks: presence/tuple/status/basic */
    struct xml_doc *x = NULL;
    assert_int_equal(xml_parse(doc, b.len, &x, err, sizeof(err)), 0);
    struct xml_node *t = xml_child(xml_root(x), PIDF_NS, "tuple");
    assert_non_null(t);
    assert_non_null(xml_attr(t, "id"));
    xml_free(x);
    strbuf_free(&b);
}

static void test_write_roundtrip(void **state)
{
    (void)state;
    roundtrip(true, "");
    roundtrip(false, "");
    roundtrip(true, "away");
    roundtrip(true, "busy");
    roundtrip(true, "on-the-phone");
    roundtrip(false, "away");
}

static void test_write_rank_preserved(void **state)
{
    (void)state;
    static const struct {
        bool open;
        const char *activity;
    } v[] = {{true, ""}, {true, "busy"}, {true, "away"}, {false, ""}, {true, "vacation"}};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        struct pidf_state in = state_of(v[i].open, v[i].activity);
        struct strbuf b = STRBUF_INIT;
        pidf_write(AOR, &in, &b);
        struct pidf_state out = check_ok(strbuf_cstr(&b));
        assert_int_equal(pidf_rank(&out), pidf_rank(&in));
        strbuf_free(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_and_closed),
        cmocka_unit_test(test_any_open_tuple_makes_open),
        cmocka_unit_test(test_entity_forms),
        cmocka_unit_test(test_entity_mismatch_refused),
        cmocka_unit_test(test_rpid_activities),
        cmocka_unit_test(test_long_activity_name_bounded),
        cmocka_unit_test(test_extensions_allowed),
        cmocka_unit_test(test_malformed_xml_refused),
        cmocka_unit_test(test_root_refused),
        cmocka_unit_test(test_tuple_checks),
        cmocka_unit_test(test_basic_values),
        cmocka_unit_test(test_error_buffer_bounded),
        cmocka_unit_test(test_rank_order),
        cmocka_unit_test(test_write_roundtrip),
        cmocka_unit_test(test_write_rank_preserved),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
