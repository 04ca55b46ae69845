#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/strview.h"
#include "crypto/digest.h"

#define SV(s) strview_cstr(s)

/* RFC 7616 §3.9.1. */
#define R7616_USER   "Mufasa"
#define R7616_PASS   "Circle of Life"
#define R7616_REALM  "http-auth@example.org"
#define R7616_NONCE  "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
#define R7616_CNONCE "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
#define R7616_OPAQUE "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
#define R7616_URI    "/dir/index.html"

/* RFC 2617 §3.5. */
#define R2617_USER   "Mufasa"
#define R2617_PASS   "Circle Of Life"
#define R2617_REALM  "testrealm@host.com"
#define R2617_NONCE  "dcd98b7102dd2f0e8b11d0f600bfb0c093"
#define R2617_CNONCE "0a4f113b"
#define R2617_URI    "/dir/index.html"

static int setup(void **state)
{
    (void)state;
    return digest_init(NULL, NULL) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    digest_cleanup();
    return 0;
}

static void test_alg_names(void **state)
{
    (void)state;
    enum digest_alg a;

    assert_int_equal(digest_alg_parse(SV("MD5"), &a), 0);
    assert_int_equal(a, DIGEST_ALG_MD5);
    assert_int_equal(digest_alg_parse(SV("md5"), &a), 0);
    assert_int_equal(a, DIGEST_ALG_MD5);
    assert_int_equal(digest_alg_parse(SV("SHA-256"), &a), 0);
    assert_int_equal(a, DIGEST_ALG_SHA256);
    assert_int_equal(digest_alg_parse(SV("sha-256"), &a), 0);
    assert_int_equal(a, DIGEST_ALG_SHA256);
    assert_int_equal(digest_alg_parse(SV("MD5-sess"), &a), -EINVAL);
    assert_int_equal(digest_alg_parse(SV("SHA-256-sess"), &a), -EINVAL);
    assert_int_equal(digest_alg_parse(SV("SHA256"), &a), -EINVAL);
    assert_int_equal(digest_alg_parse(SV("SHA-512-256"), &a), -EINVAL);
    assert_int_equal(digest_alg_parse(SV("MD"), &a), -EINVAL);
    assert_int_equal(digest_alg_parse(STRVIEW_EMPTY, &a), -EINVAL);

    assert_string_equal(digest_alg_name(DIGEST_ALG_MD5), "MD5");
    assert_string_equal(digest_alg_name(DIGEST_ALG_SHA256), "SHA-256");
    assert_string_equal(digest_alg_name((enum digest_alg)7), "?");
    assert_int_equal(digest_alg_hex_len(DIGEST_ALG_MD5), 32);
    assert_int_equal(digest_alg_hex_len(DIGEST_ALG_SHA256), 64);
    assert_int_equal(digest_alg_hex_len((enum digest_alg)7), 0);
    assert_true(digest_alg_available(DIGEST_ALG_MD5));
    assert_true(digest_alg_available(DIGEST_ALG_SHA256));
    assert_false(digest_alg_available((enum digest_alg)7));
}

static void test_rfc7616_md5(void **state)
{
    (void)state;
    char ha1[DIGEST_HEX_BUF], resp[DIGEST_HEX_BUF];

    assert_int_equal(digest_ha1(DIGEST_ALG_MD5, R7616_USER, R7616_REALM, R7616_PASS, ha1), 0);
    assert_string_equal(ha1, "3d78807defe7de2157e2b0b6573a855f");
    assert_int_equal(digest_response(DIGEST_ALG_MD5, ha1, SV(R7616_NONCE), SV("00000001"),
                                     SV(R7616_CNONCE), SV("auth"), SV("GET"), SV(R7616_URI), resp),
                     0);
    assert_string_equal(resp, "8ca523f5e9506fed4657c9700eebdbec");
}

static void test_rfc7616_sha256(void **state)
{
    (void)state;
    char ha1[DIGEST_HEX_BUF], resp[DIGEST_HEX_BUF];

    assert_int_equal(digest_ha1(DIGEST_ALG_SHA256, R7616_USER, R7616_REALM, R7616_PASS, ha1), 0);
    assert_int_equal(strlen(ha1), 64);
    assert_int_equal(digest_response(DIGEST_ALG_SHA256, ha1, SV(R7616_NONCE), SV("00000001"),
                                     SV(R7616_CNONCE), SV("auth"), SV("GET"), SV(R7616_URI), resp),
                     0);
    assert_string_equal(resp, "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
}

static void test_rfc2617(void **state)
{
    (void)state;
    char ha1[DIGEST_HEX_BUF], resp[DIGEST_HEX_BUF];

    assert_int_equal(digest_ha1(DIGEST_ALG_MD5, R2617_USER, R2617_REALM, R2617_PASS, ha1), 0);
    /* HA1 computed independently with Python's hashlib. */
    assert_string_equal(ha1, "939e7578ed9e3c518a452acee763bce9");
    assert_int_equal(digest_response(DIGEST_ALG_MD5, ha1, SV(R2617_NONCE), SV("00000001"),
                                     SV(R2617_CNONCE), SV("auth"), SV("GET"), SV(R2617_URI), resp),
                     0);
    assert_string_equal(resp, "6629fae49393a05397450978507c4ef1");
    /* qop is a token compared case-insensitively; it is hashed as sent. */
    assert_int_equal(digest_response(DIGEST_ALG_MD5, ha1, SV(R2617_NONCE), SV("00000001"),
                                     SV(R2617_CNONCE), SV("AUTH"), SV("GET"), SV(R2617_URI), resp),
                     0);
    assert_string_not_equal(resp, "6629fae49393a05397450978507c4ef1");
}

/* RFC 2069 form (no qop): expected values computed independently with
 * Python's hashlib as H(HA1:nonce:H(method:uri)). */
static void test_no_qop(void **state)
{
    (void)state;
    char ha1[DIGEST_HEX_BUF], resp[DIGEST_HEX_BUF];

    assert_int_equal(digest_ha1(DIGEST_ALG_MD5, R2617_USER, R2617_REALM, R2617_PASS, ha1), 0);
    assert_int_equal(digest_response(DIGEST_ALG_MD5, ha1, SV(R2617_NONCE), STRVIEW_EMPTY,
                                     STRVIEW_EMPTY, STRVIEW_EMPTY, SV("GET"), SV(R2617_URI), resp),
                     0);
    assert_string_equal(resp, "670fd8c2df070c60b045671b8b24ff02");
    /* nc and cnonce are ignored without qop */
    assert_int_equal(digest_response(DIGEST_ALG_MD5, ha1, SV(R2617_NONCE), SV("00000001"), SV("x"),
                                     STRVIEW_EMPTY, SV("GET"), SV(R2617_URI), resp),
                     0);
    assert_string_equal(resp, "670fd8c2df070c60b045671b8b24ff02");

    assert_int_equal(digest_ha1(DIGEST_ALG_SHA256, R7616_USER, R7616_REALM, R7616_PASS, ha1), 0);
    assert_int_equal(digest_response(DIGEST_ALG_SHA256, ha1, SV(R7616_NONCE), STRVIEW_EMPTY,
                                     STRVIEW_EMPTY, STRVIEW_EMPTY, SV("GET"), SV(R7616_URI), resp),
                     0);
    assert_string_equal(resp, "a1306b0595a6c7fe96c448631fb5cfbd5107bd1fe1da729d978dd7446b812363");
}

static void test_response_refusals(void **state)
{
    (void)state;
    char ha1[DIGEST_HEX_BUF], resp[DIGEST_HEX_BUF];
    const char *upper = "3D78807DEFE7DE2157E2B0B6573A855F";

    assert_int_equal(digest_ha1(DIGEST_ALG_MD5, R7616_USER, R7616_REALM, R7616_PASS, ha1), 0);
#define RESP(alg, h, qop, nc, cnonce, nonce, method, uri)                                          \
    digest_response(alg, h, SV(nonce), SV(nc), SV(cnonce), SV(qop), SV(method), SV(uri), resp)
    assert_int_equal(RESP(DIGEST_ALG_MD5, ha1, "auth-int", "00000001", "c", "n", "GET", "/"),
                     -ENOTSUP);
    assert_int_equal(RESP(DIGEST_ALG_MD5, ha1, "auth", "", "c", "n", "GET", "/"), -EINVAL);
    assert_int_equal(RESP(DIGEST_ALG_MD5, ha1, "auth", "00000001", "", "n", "GET", "/"), -EINVAL);
    assert_int_equal(RESP(DIGEST_ALG_MD5, ha1, "auth", "00000001", "c", "", "GET", "/"), -EINVAL);
    assert_int_equal(RESP(DIGEST_ALG_MD5, ha1, "auth", "00000001", "c", "n", "", "/"), -EINVAL);
    assert_int_equal(RESP(DIGEST_ALG_MD5, ha1, "auth", "00000001", "c", "n", "GET", ""), -EINVAL);
    /* HA1 of the wrong algorithm's length, uppercase, non-hex, NULL */
    assert_int_equal(RESP(DIGEST_ALG_SHA256, ha1, "auth", "00000001", "c", "n", "GET", "/"),
                     -EINVAL);
    assert_int_equal(RESP(DIGEST_ALG_MD5, upper, "auth", "00000001", "c", "n", "GET", "/"),
                     -EINVAL);
    assert_int_equal(RESP(DIGEST_ALG_MD5, "3d78807defe7de2157e2b0b6573a855g", "auth", "00000001",
                          "c", "n", "GET", "/"),
                     -EINVAL);
    assert_int_equal(RESP(DIGEST_ALG_MD5, NULL, "auth", "00000001", "c", "n", "GET", "/"), -EINVAL);
    assert_int_equal(RESP((enum digest_alg)9, ha1, "auth", "00000001", "c", "n", "GET", "/"),
                     -EINVAL);
    assert_int_equal(RESP(DIGEST_ALG_MD5, ha1, "auth", "00000001", "c", "n", "GET", "/"), 0);
#undef RESP
    assert_int_equal(digest_ha1(DIGEST_ALG_MD5, NULL, "r", "p", ha1), -EINVAL);
    assert_int_equal(digest_ha1((enum digest_alg)9, "u", "r", "p", ha1), -EINVAL);
}

static void test_unavailable(void **state)
{
    (void)state;
    char ha1[DIGEST_HEX_BUF];

    digest_cleanup();
    assert_false(digest_alg_available(DIGEST_ALG_MD5));
    assert_false(digest_alg_available(DIGEST_ALG_SHA256));
    assert_int_equal(digest_ha1(DIGEST_ALG_MD5, "u", "r", "p", ha1), -ENOTSUP);
    assert_int_equal(digest_ha1(DIGEST_ALG_SHA256, "u", "r", "p", ha1), -ENOTSUP);

    /* A property query no provider satisfies: every fetch fails, as MD5's
     * does under the FIPS provider. */
    assert_int_equal(digest_init(NULL, "provider=no-such-provider"), -ENOTSUP);
    assert_false(digest_alg_available(DIGEST_ALG_MD5));
    assert_false(digest_alg_available(DIGEST_ALG_SHA256));
    assert_int_equal(digest_ha1(DIGEST_ALG_MD5, "u", "r", "p", ha1), -ENOTSUP);

    /* "fips=yes" finds nothing unless the FIPS provider is loaded; when it
     * is, MD5 alone is missing. */
    int rc = digest_init(NULL, "fips=yes");
    if (rc == 0)
        assert_false(digest_alg_available(DIGEST_ALG_MD5));
    else
        assert_int_equal(rc, -ENOTSUP);

    assert_int_equal(digest_init(NULL, "provider=default"), 0);
    assert_true(digest_alg_available(DIGEST_ALG_MD5));
    assert_int_equal(digest_ha1(DIGEST_ALG_MD5, R7616_USER, R7616_REALM, R7616_PASS, ha1), 0);
    assert_string_equal(ha1, "3d78807defe7de2157e2b0b6573a855f");
    assert_int_equal(digest_init(NULL, NULL), 0);
}

static void test_hex_equal(void **state)
{
    (void)state;
    const char *md5 = "8ca523f5e9506fed4657c9700eebdbec";
    const char *sha = "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1";

    assert_true(digest_hex_equal(md5, SV("8ca523f5e9506fed4657c9700eebdbec")));
    assert_true(digest_hex_equal(md5, SV("8CA523F5E9506FED4657C9700EEBDBEC")));
    assert_true(digest_hex_equal(sha, SV(sha)));
    assert_false(digest_hex_equal(md5, SV("8ca523f5e9506fed4657c9700eebdbed")));  /* last */
    assert_false(digest_hex_equal(md5, SV("9ca523f5e9506fed4657c9700eebdbec")));  /* first */
    assert_false(digest_hex_equal(md5, SV("8ca523f5e9506fed4657c9700eebdbe")));   /* shorter */
    assert_false(digest_hex_equal(md5, SV("8ca523f5e9506fed4657c9700eebdbec0"))); /* longer */
    assert_false(digest_hex_equal(md5, strview_make("8ca523f5e9506fed4657c9700eebdbec\0", 33)));
    assert_false(digest_hex_equal(md5, STRVIEW_EMPTY));
    assert_false(digest_hex_equal(md5, SV(sha)));
    assert_false(digest_hex_equal(sha, SV(md5)));
    /* a prefix of the right answer padded past the buffer size */
    char longer[200];
    memset(longer, 'a', sizeof(longer));
    memcpy(longer, sha, 64);
    assert_false(digest_hex_equal(sha, strview_make(longer, sizeof(longer))));
    /* case folding is for letters only: '@' is not '`' */
    assert_false(digest_hex_equal("a@", SV("a`")));
    assert_false(digest_hex_equal(NULL, SV(md5)));
    assert_true(digest_hex_equal("", STRVIEW_EMPTY));
    memset(longer, 'a', sizeof(longer));
    longer[65] = '\0';
    assert_false(digest_hex_equal(longer, strview_make(longer, 65))); /* overlong expected */
}

static const char rfc7616_auth[] =
    "Digest username=\"Mufasa\", "
    "realm=\"http-auth@example.org\", uri=\"/dir/index.html\", algorithm=MD5, "
    "nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", nc=00000001, "
    "cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\", qop=auth, "
    "response=\"8ca523f5e9506fed4657c9700eebdbec\", "
    "opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";

static int parse(const char *s, struct digest_credentials *cr)
{
    return digest_credentials_parse(SV(s), cr);
}

static void test_parse_rfc_and_verify(void **state)
{
    (void)state;
    struct digest_credentials cr;
    char user[64], realm[64], ha1[DIGEST_HEX_BUF], resp[DIGEST_HEX_BUF];
    enum digest_alg alg;
    char hdr[sizeof(rfc7616_auth)];

    memcpy(hdr, rfc7616_auth, sizeof(hdr));
    assert_int_equal(parse(hdr, &cr), 0);
    assert_true(strview_eq(cr.username, "Mufasa"));
    assert_true(strview_eq(cr.realm, R7616_REALM));
    assert_true(strview_eq(cr.uri, R7616_URI));
    assert_true(strview_eq(cr.algorithm, "MD5"));
    assert_true(strview_eq(cr.nonce, R7616_NONCE));
    assert_true(strview_eq(cr.nc, "00000001"));
    assert_true(strview_eq(cr.cnonce, R7616_CNONCE));
    assert_true(strview_eq(cr.qop, "auth"));
    assert_true(strview_eq(cr.response, "8ca523f5e9506fed4657c9700eebdbec"));
    assert_true(strview_eq(cr.opaque, R7616_OPAQUE));
    /* views point into the input */
    assert_true(cr.username.p > hdr && cr.username.p < hdr + sizeof(hdr));

    /* end to end: what a registrar does with it */
    assert_int_equal(digest_alg_parse(cr.algorithm, &alg), 0);
    assert_int_equal(digest_unescape(cr.username, user, sizeof(user)), 0);
    assert_int_equal(digest_unescape(cr.realm, realm, sizeof(realm)), 0);
    assert_int_equal(digest_ha1(alg, user, realm, R7616_PASS, ha1), 0);
    assert_int_equal(
        digest_response(alg, ha1, cr.nonce, cr.nc, cr.cnonce, cr.qop, SV("GET"), cr.uri, resp), 0);
    assert_true(digest_hex_equal(resp, cr.response));
    assert_int_equal(digest_ha1(alg, user, realm, "circle of life", ha1), 0);
    assert_int_equal(
        digest_response(alg, ha1, cr.nonce, cr.nc, cr.cnonce, cr.qop, SV("GET"), cr.uri, resp), 0);
    assert_false(digest_hex_equal(resp, cr.response));
}

static void test_parse_variants(void **state)
{
    (void)state;
    struct digest_credentials cr;

    /* SIP style (baresip), no qop, no algorithm; odd spacing; case */
    assert_int_equal(parse("  dIgEsT   USERNAME = \"alice\" ,Realm=\"example.org\",nonce=\"abc\","
                           "uri=\"sip:example.org;transport=tls\",response=\"0123\"  ",
                           &cr),
                     0);
    assert_true(strview_eq(cr.username, "alice"));
    assert_true(strview_eq(cr.uri, "sip:example.org;transport=tls"));
    assert_true(strview_eq(cr.response, "0123"));
    assert_true(strview_is_empty(cr.algorithm));
    assert_true(strview_is_empty(cr.qop));
    assert_true(strview_is_empty(cr.nc));
    assert_true(strview_is_empty(cr.opaque));

    /* unknown parameters ignored, commas and escapes inside quotes */
    assert_int_equal(parse("Digest x-foo=\"a, b=\\\"c\\\"\", username=\"bob\", realm=\"r\", "
                           "nonce=\"n\", uri=\"/\", response=\"00\", userhash=false, "
                           "qop=\"auth\", cnonce=\"c\", nc=0000000A, stale=true",
                           &cr),
                     0);
    assert_true(strview_eq(cr.username, "bob"));
    assert_true(strview_eq(cr.qop, "auth"));
    assert_true(strview_eq(cr.nc, "0000000A"));

    /* empty optional quoted value */
    assert_int_equal(parse("Digest username=\"u\",realm=\"r\",nonce=\"n\",uri=\"/\","
                           "response=\"0\",opaque=\"\"",
                           &cr),
                     0);
    assert_true(strview_is_empty(cr.opaque));
}

static void test_parse_escapes(void **state)
{
    (void)state;
    struct digest_credentials cr;
    char buf[32];

    assert_int_equal(parse("Digest username=\"Mu\\\"fa\\\\sa\", realm=\"a\\,b\", nonce=\"n\", "
                           "uri=\"/\", response=\"00\"",
                           &cr),
                     0);
    /* the view keeps the escapes ... */
    assert_true(strview_eq(cr.username, "Mu\\\"fa\\\\sa"));
    /* ... the helper removes them */
    assert_int_equal(digest_unescape(cr.username, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "Mu\"fa\\sa");
    assert_int_equal(digest_unescape(cr.realm, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "a,b");

    /* unescape bounds */
    assert_int_equal(digest_unescape(SV("abc"), buf, 4), 0);
    assert_string_equal(buf, "abc");
    assert_int_equal(digest_unescape(SV("abcd"), buf, 4), -ENOSPC);
    assert_int_equal(digest_unescape(SV("a\\bc"), buf, 3), -ENOSPC);
    assert_string_equal(buf, "ab");
    assert_int_equal(digest_unescape(SV("a\\bc"), buf, 4), 0);
    assert_string_equal(buf, "abc");
    assert_int_equal(digest_unescape(SV("abc\\"), buf, sizeof(buf)), -EINVAL);
    assert_int_equal(digest_unescape(strview_make("a\0b", 3), buf, sizeof(buf)), -EINVAL);
    assert_int_equal(digest_unescape(strview_make("a\\\0b", 4), buf, sizeof(buf)), -EINVAL);
    assert_int_equal(digest_unescape(SV("x"), buf, 0), -ENOSPC);
    assert_int_equal(digest_unescape(STRVIEW_EMPTY, buf, 1), 0);
    assert_string_equal(buf, "");
}

#define BASE "realm=\"r\", nonce=\"n\", uri=\"/\", response=\"00\""

static void test_parse_missing(void **state)
{
    (void)state;
    struct digest_credentials cr;

    assert_int_equal(parse("Digest username=\"u\", " BASE, &cr), 0);
    assert_int_equal(parse("Digest " BASE, &cr), -EINVAL);
    assert_true(strview_is_empty(cr.realm)); /* zeroed on failure */
    assert_int_equal(parse("Digest username=\"\", " BASE, &cr), -EINVAL);
    assert_int_equal(parse("Digest username=\"u\", nonce=\"n\", uri=\"/\", response=\"0\"", &cr),
                     -EINVAL);
    assert_int_equal(parse("Digest username=\"u\", realm=\"r\", uri=\"/\", response=\"0\"", &cr),
                     -EINVAL);
    assert_int_equal(parse("Digest username=\"u\", realm=\"r\", nonce=\"n\", response=\"0\"", &cr),
                     -EINVAL);
    assert_int_equal(parse("Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"/\"", &cr),
                     -EINVAL);
    /* qop requires cnonce and an 8-hex-digit nc */
    assert_int_equal(parse("Digest username=u, " BASE ", qop=auth, cnonce=\"c\", nc=00000001", &cr),
                     0);
    assert_int_equal(parse("Digest username=u, " BASE ", qop=auth, nc=00000001", &cr), -EINVAL);
    assert_int_equal(parse("Digest username=u, " BASE ", qop=auth, cnonce=\"c\"", &cr), -EINVAL);
    assert_int_equal(parse("Digest username=u, " BASE ", qop=auth, cnonce=\"c\", nc=0000001", &cr),
                     -EINVAL);
    assert_int_equal(
        parse("Digest username=u, " BASE ", qop=auth, cnonce=\"c\", nc=000000001", &cr), -EINVAL);
    assert_int_equal(parse("Digest username=u, " BASE ", qop=auth, cnonce=\"c\", nc=0000000g", &cr),
                     -EINVAL);
}

static void test_parse_duplicates(void **state)
{
    (void)state;
    struct digest_credentials cr;

    assert_int_equal(parse("Digest username=\"u\", username=\"v\", " BASE, &cr), -EINVAL);
    assert_int_equal(parse("Digest username=\"u\", USERNAME=\"u\", " BASE, &cr), -EINVAL);
    assert_int_equal(parse("Digest username=\"u\", " BASE ", response=\"00\"", &cr), -EINVAL);
    assert_int_equal(parse("Digest username=\"u\", x=1, " BASE ", X=2", &cr), -EINVAL);
    assert_int_equal(parse("Digest username=\"u\", algorithm=MD5, algorithm=SHA-256, " BASE, &cr),
                     -EINVAL);
}

static void test_parse_garbage(void **state)
{
    (void)state;
    struct digest_credentials cr;
    static const char *const bad[] = {
        "",
        " ",
        "Digest",
        "Digest ",
        "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
        "Digestusername=\"u\", " BASE,
        "Digest, username=\"u\", " BASE,
        "Digest username=\"u\", " BASE ",",
        "Digest username=\"u\",, " BASE,
        "Digest username=\"u\"; " BASE,
        "Digest username \"u\", " BASE,
        "Digest username=, " BASE,
        "Digest username=\"u\" x, " BASE,
        "Digest username=\"u, " BASE,
        "Digest " BASE ", username=\"u",
        "Digest " BASE ", username=\"u\\",
        "Digest " BASE ", username=\"u\\\"",
        "Digest username=\"u\tv\x01\", " BASE,
        "Digest username=\"u\\\x01\", " BASE,
        "Digest username=\"u\x7f\", " BASE,
        "Digest username=\"u\", " BASE ", algorithm=MD 5",
        "Digest username=\"u\", " BASE ", =x",
        "Digest username=\"u\", " BASE ", x=\"a\"\"b\"",
        "Digest username=\"u\", " BASE ", \"x\"=1",
        "Digest username=\"u\", " BASE ", uri2=</>",
        "Digest username=\"u\"\r\n, " BASE,
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse(bad[i], &cr) != -EINVAL)
            fail_msg("accepted: %s", bad[i]);
    }
    assert_int_equal(digest_credentials_parse(strview_make(NULL, 5), &cr), -EINVAL);
    assert_int_equal(digest_credentials_parse(STRVIEW_EMPTY, &cr), -EINVAL);
    assert_int_equal(digest_credentials_parse(SV("Digest username=u, " BASE), NULL), -EINVAL);
    /* an embedded NUL is not a token character */
    static const char nul[] = "Digest username=u\0x, " BASE;
    assert_int_equal(digest_credentials_parse(strview_make(nul, sizeof(nul) - 1), &cr), -EINVAL);
}

static void test_parse_bounds(void **state)
{
    (void)state;
    struct digest_credentials cr;
    static char buf[DIGEST_CRED_HEADER_MAX + 64];
    static char val[DIGEST_CRED_VALUE_MAX + 2];

    /* a value of exactly the maximum passes, one more fails */
    memset(val, 'n', DIGEST_CRED_VALUE_MAX);
    val[DIGEST_CRED_VALUE_MAX] = '\0';
    snprintf(buf, DIGEST_CRED_HEADER_MAX + 64,
             "Digest username=u, realm=r, uri=\"/\", response=0, nonce=\"%s\"", val);
    assert_int_equal(parse(buf, &cr), 0);
    assert_int_equal(cr.nonce.n, DIGEST_CRED_VALUE_MAX);
    val[DIGEST_CRED_VALUE_MAX] = 'n';
    val[DIGEST_CRED_VALUE_MAX + 1] = '\0';
    snprintf(buf, DIGEST_CRED_HEADER_MAX + 64,
             "Digest username=u, realm=r, uri=\"/\", response=0, nonce=\"%s\"", val);
    assert_int_equal(parse(buf, &cr), -EINVAL);
    snprintf(buf, DIGEST_CRED_HEADER_MAX + 64,
             "Digest username=u, realm=r, uri=\"/\", response=0, nonce=%s", val);
    assert_int_equal(parse(buf, &cr), -EINVAL);

    /* overlong header made of short, valid parameters */
    int n = snprintf(buf, DIGEST_CRED_HEADER_MAX + 64, "Digest username=u, " BASE);
    while ((size_t)n <= DIGEST_CRED_HEADER_MAX)
        n += snprintf(buf + n, DIGEST_CRED_HEADER_MAX + 64 - (size_t)n, ",a=b");
    assert_int_equal(parse(buf, &cr), -EINVAL);

    /* parameter count */
    n = snprintf(buf, DIGEST_CRED_HEADER_MAX + 64, "Digest username=u, " BASE);
    for (int i = 5; i < DIGEST_CRED_PARAMS_MAX; i++)
        n += snprintf(buf + n, DIGEST_CRED_HEADER_MAX + 64 - (size_t)n, ",p%d=1", i);
    assert_int_equal(parse(buf, &cr), 0);
    snprintf(buf + n, DIGEST_CRED_HEADER_MAX + 64 - (size_t)n, ",last=1");
    assert_int_equal(parse(buf, &cr), -EINVAL);
}

/* Every prefix and every one-byte change of a valid header, each in a
 * buffer of exactly its size, so a sanitizer build catches any read past
 * the end. None may crash; a prefix is accepted only when it ends after
 * a complete response parameter (all required ones are there by then). */
static void test_parse_no_overread(void **state)
{
    (void)state;
    struct digest_credentials cr;
    size_t len = strlen(rfc7616_auth);
    static const char subst[] = {'"', '\\', ',', '=', ' ', '\0', 'x', '\x80'};
    const char *r = strstr(rfc7616_auth, "response=\"8ca523f5e9506fed4657c9700eebdbec\"");
    assert_non_null(r);
    size_t r_end = (size_t)(r - rfc7616_auth) + strlen("response=\"\"") + 32;

    for (size_t n = 0; n <= len; n++) {
        char *p = malloc(n ? n : 1);
        assert_non_null(p);
        memcpy(p, rfc7616_auth, n);
        int rc = digest_credentials_parse(strview_make(p, n), &cr);
        if (n == len || n == r_end)
            assert_int_equal(rc, 0);
        else
            assert_int_equal(rc, -EINVAL);
        free(p);
    }
    for (size_t i = 0; i < len; i++) {
        for (size_t k = 0; k < sizeof(subst); k++) {
            char *p = malloc(len);
            assert_non_null(p);
            memcpy(p, rfc7616_auth, len);
            p[i] = subst[k];
            (void)digest_credentials_parse(strview_make(p, len), &cr);
            free(p);
        }
    }
}

/* After digest_init() the module is used from several threads at once. */
static void *hash_worker(void *arg)
{
    (void)arg;
    char ha1[DIGEST_HEX_BUF], resp[DIGEST_HEX_BUF];
    for (int i = 0; i < 500; i++) {
        enum digest_alg alg = (i & 1) ? DIGEST_ALG_SHA256 : DIGEST_ALG_MD5;
        if (digest_ha1(alg, R7616_USER, R7616_REALM, R7616_PASS, ha1) != 0 ||
            digest_response(alg, ha1, SV(R7616_NONCE), SV("00000001"), SV(R7616_CNONCE), SV("auth"),
                            SV("GET"), SV(R7616_URI), resp) != 0)
            return (void *)1;
        const char *want = (i & 1)
                               ? "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
                               : "8ca523f5e9506fed4657c9700eebdbec";
        if (!digest_hex_equal(want, SV(resp)))
            return (void *)1;
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hash_worker, NULL), 0);
    for (int i = 0; i < 4; i++) {
        void *ret = (void *)1;
        assert_int_equal(pthread_join(t[i], &ret), 0);
        assert_null(ret);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alg_names),
        cmocka_unit_test(test_rfc7616_md5),
        cmocka_unit_test(test_rfc7616_sha256),
        cmocka_unit_test(test_rfc2617),
        cmocka_unit_test(test_no_qop),
        cmocka_unit_test(test_response_refusals),
        cmocka_unit_test(test_unavailable),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_hex_equal),
        cmocka_unit_test(test_parse_rfc_and_verify),
        cmocka_unit_test(test_parse_variants),
        cmocka_unit_test(test_parse_escapes),
        cmocka_unit_test(test_parse_missing),
        cmocka_unit_test(test_parse_duplicates),
        cmocka_unit_test(test_parse_garbage),
        cmocka_unit_test(test_parse_bounds),
        cmocka_unit_test(test_parse_no_overread),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
