#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/strbuf.h"
#include "media/sdp.h"
#include "sdp_samples.h"

static struct sdp *parse_ok(const char *text)
{
    struct sdp *s = NULL;
    char err[160] = "";
    int rc = sdp_parse(strview_cstr(text), &s, err, sizeof(err));
    if (rc != 0)
        fail_msg("sdp_parse: %d %s\n---\n%s", rc, err, text);
    assert_non_null(s);
    return s;
}

static void assert_view(struct strview v, const char *s)
{
    if (!strview_eq(v, s))
        fail_msg("view \"%.*s\" != \"%s\"", (int)v.n, v.p ? v.p : "", s);
}

static char *write_str(const struct sdp *s)
{
    struct strbuf b = STRBUF_INIT;
    assert_int_equal(sdp_write(s, &b), 0);
    char *p = strbuf_take(&b, NULL);
    return p ? p : strdup("");
}

/* --- real-world offers --------------------------------------------------- */

static void test_baresip_srtp_mand(void **state)
{
    (void)state;
    struct sdp *s = parse_ok(SDP_BARESIP_SRTP_MAND);

    assert_view(s->origin_user, "-");
    assert_view(s->origin_sess_id, "1294817283");
    assert_view(s->origin_address, "192.168.1.33");
    assert_view(s->session_name, "-");
    assert_true(s->session.conn.present);
    assert_view(s->session.conn.address, "192.168.1.33");
    assert_int_equal(s->session.nattrs, 1);
    assert_int_equal(s->nmedia, 1);

    const struct sdp_media *m = &s->media[0];
    assert_view(m->media, "audio");
    assert_int_equal(m->port, 10090);
    assert_int_equal(m->nports, 1);
    assert_int_equal(m->proto, SDP_PROTO_RTP_SAVP);
    assert_true(sdp_proto_is_sdes(m->proto));
    assert_false(sdp_proto_is_plain_rtp(m->proto));
    assert_int_equal(m->nformats, 4);
    assert_view(m->formats[0], "96");
    assert_view(m->formats[3], "101");
    assert_false(m->lv.conn.present);
    const struct sdp_conn *c = sdp_media_conn(s, m);
    assert_ptr_equal(c, &s->session.conn);
    assert_view(c->addrtype, "IP4");
    assert_int_equal(sdp_media_direction(s, m), SDP_DIR_SENDRECV);
    assert_int_equal(m->lv.direction, SDP_DIR_SENDRECV);
    assert_false(m->lv.rtcp_mux);
    assert_int_equal(m->lv.nattrs, 15);

    assert_int_equal(m->lv.ncrypto, 4);
    const struct sdp_crypto *k = sdp_level_crypto(s, &m->lv, 0);
    assert_int_equal(k->tag, 1);
    assert_view(k->suite, "AES_CM_128_HMAC_SHA1_32");
    assert_int_equal(k->nkeys, 1);
    assert_view(k->keys[0].method, "inline");
    assert_view(k->keys[0].key_salt, KEY30_A);
    assert_false(k->keys[0].has_lifetime);
    assert_false(k->keys[0].has_mki);
    assert_true(strview_is_empty(k->session_params));
    k = sdp_level_crypto(s, &m->lv, 1);
    assert_int_equal(k->tag, 2);
    assert_view(k->suite, "AES_CM_128_HMAC_SHA1_80");
    assert_view(k->keys[0].key_salt, KEY30_B);
    k = sdp_level_crypto(s, &m->lv, 2);
    assert_view(k->suite, "AEAD_AES_256_GCM");
    assert_view(k->keys[0].key_salt, KEY44);
    k = sdp_level_crypto(s, &m->lv, 3);
    assert_view(k->suite, "AEAD_AES_128_GCM");
    assert_view(k->keys[0].key_salt, KEY28);
    assert_null(sdp_level_crypto(s, &m->lv, 4));
    assert_view(s->lines[k->line].value, "crypto:4 AEAD_AES_128_GCM inline:" KEY28);
    assert_true(s->lines[k->line].key);

    const struct sdp_attr *a = sdp_level_attr_find(s, &m->lv, "rtpmap");
    assert_non_null(a);
    assert_view(a->value, "96 opus/48000/2");
    assert_true(a->has_value);
    a = sdp_level_attr_find(s, &m->lv, "rtcp-rsize");
    assert_non_null(a);
    assert_false(a->has_value);
    assert_null(sdp_level_attr_find(s, &m->lv, "fingerprint"));
    assert_null(sdp_media_fingerprint(s, m));
    assert_true(sdp_has_keys(s));
    sdp_free(s);
}

static void test_baresip_srtp_optional(void **state)
{
    (void)state;
    struct sdp *s = parse_ok(SDP_BARESIP_SRTP_OPT);
    const struct sdp_media *m = &s->media[0];
    assert_int_equal(m->proto, SDP_PROTO_RTP_AVP);
    assert_true(sdp_proto_is_plain_rtp(m->proto));
    assert_int_equal(m->lv.ncrypto, 2);
    assert_view(sdp_level_crypto(s, &m->lv, 1)->suite, "AES_CM_128_HMAC_SHA1_80");
    sdp_free(s);
}

static void test_linphone_dtls(void **state)
{
    (void)state;
    struct sdp *s = parse_ok(SDP_LINPHONE_DTLS);
    assert_int_equal(s->nmedia, 2);
    assert_true(s->session.fingerprint.present);
    assert_view(s->session.fingerprint.hash, "SHA-256");
    assert_view(s->session.fingerprint.value, FP_A);
    for (size_t i = 0; i < 2; i++) {
        const struct sdp_media *m = &s->media[i];
        assert_int_equal(m->proto, SDP_PROTO_UDP_TLS_RTP_SAVP);
        assert_true(sdp_proto_is_dtls_srtp(m->proto));
        assert_false(m->lv.fingerprint.present);
        assert_ptr_equal(sdp_media_fingerprint(s, m), &s->session.fingerprint);
        assert_int_equal(sdp_media_setup(s, m), SDP_SETUP_ACTPASS);
        assert_int_equal(m->lv.ncrypto, 0);
    }
    assert_view(s->media[1].media, "video");
    assert_int_equal(sdp_media_direction(s, &s->media[0]), SDP_DIR_SENDRECV);
    assert_int_equal(s->media[0].lv.direction, SDP_DIR_NONE);
    assert_int_equal(sdp_media_direction(s, &s->media[1]), SDP_DIR_RECVONLY);
    assert_false(sdp_has_keys(s));
    sdp_free(s);
}

static void test_webrtc(void **state)
{
    (void)state;
    struct sdp *s = parse_ok(SDP_WEBRTC);
    assert_int_equal(s->nmedia, 3);
    assert_false(s->session.conn.present);
    assert_int_equal(s->media[0].proto, SDP_PROTO_UDP_TLS_RTP_SAVPF);
    assert_int_equal(s->media[1].proto, SDP_PROTO_UDP_TLS_RTP_SAVPF);
    assert_int_equal(s->media[2].proto, SDP_PROTO_DTLS_SCTP);
    assert_view(s->media[2].formats[0], "webrtc-datachannel");
    for (size_t i = 0; i < 3; i++) {
        assert_true(s->media[i].lv.fingerprint.present);
        assert_view(s->media[i].lv.fingerprint.hash, "sha-256");
        assert_int_equal(s->media[i].lv.setup, SDP_SETUP_ACTPASS);
        assert_ptr_equal(sdp_media_conn(s, &s->media[i]), &s->media[i].lv.conn);
        assert_view(s->media[i].lv.conn.address, "0.0.0.0");
    }
    assert_true(s->media[0].lv.rtcp_mux);
    assert_true(s->media[1].lv.rtcp_mux);
    assert_false(s->media[2].lv.rtcp_mux);
    assert_int_equal(s->media[1].lv.direction, SDP_DIR_SENDONLY);
    /* "a=msid-semantic: WMS stream0": name, then a value with a space */
    const struct sdp_attr *a = sdp_level_attr_find(s, &s->session, "msid-semantic");
    assert_non_null(a);
    assert_view(a->value, " WMS stream0");
    sdp_free(s);
}

static void test_osrtp_and_sections(void **state)
{
    (void)state;
    /* Optional SRTP on audio (AVPF too), a refused video, a disabled
     * section without c=, a section with its own c= and a port count. */
    const char *text = "v=0\r\n"
                       "o=bob 1 1 IN IP6 2001:db8::1\r\n"
                       "s= \r\n"
                       "c=IN IP6 2001:db8::1\r\n"
                       "t=0 0\r\n"
                       "m=audio 4000 RTP/AVP 0\r\n"
                       "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" KEY30_A "\r\n"
                       "m=video 0 RTP/AVP 31\r\n"
                       "m=video 4002/2 RTP/AVPF 96\r\n"
                       "c=IN IP4 192.0.2.9/127\r\n"
                       "a=crypto:7 AES_CM_128_HMAC_SHA1_80 inline:" KEY30_B "\r\n"
                       "a=rtcp-fb:96 nack\r\n"
                       "m=image 0 udptl t38\r\n";
    struct sdp *s = parse_ok(text);
    assert_int_equal(s->nmedia, 4);
    assert_view(s->session_name, " ");
    assert_int_equal(s->media[0].port, 4000);
    assert_true(sdp_media_active(&s->media[0]));
    assert_false(sdp_media_active(&s->media[1]));
    assert_int_equal(s->media[1].lv.ncrypto, 0);
    assert_int_equal(s->media[2].nports, 2);
    assert_int_equal(s->media[2].proto, SDP_PROTO_RTP_AVPF);
    assert_view(sdp_media_conn(s, &s->media[2])->address, "192.0.2.9/127");
    assert_view(sdp_media_conn(s, &s->media[0])->address, "2001:db8::1");
    assert_int_equal(sdp_level_crypto(s, &s->media[2].lv, 0)->tag, 7);
    assert_int_equal(s->media[3].proto, SDP_PROTO_OTHER);
    assert_string_equal(sdp_proto_name(s->media[3].proto), "other");
    assert_string_equal(sdp_proto_name(SDP_PROTO_RTP_SAVPF), "RTP/SAVPF");
    /* the m= line opens the section's lines */
    assert_int_equal(s->lines[s->media[2].lv.line_first].type, 'm');
    assert_int_equal(s->media[2].lv.line_end, s->media[3].lv.line_first);
    assert_int_equal(s->media[3].lv.line_end, s->nlines);
    assert_int_equal(s->session.line_end, s->media[0].lv.line_first);
    sdp_free(s);

    /* No session c=: a disabled section needs none, an active one does. */
    s = parse_ok("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n"
                 "m=audio 5 RTP/AVP 0\r\nc=IN IP4 192.0.2.1\r\n");
    assert_false(s->session.conn.present);
    assert_null(sdp_media_conn(s, &s->media[0]));
    sdp_free(s);
}

static void test_crypto_details(void **state)
{
    (void)state;
    const char *text = SDP_HEAD
        "m=audio 4000 RTP/SAVP 0\r\n"
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" KEY30_A "|2^31\r\n"
        "a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:" KEY30_B "|1:4\r\n"
        "a=crypto:3 AES_CM_128_HMAC_SHA1_32 inline:" KEY30_A "|2^20|1:4;inline:" KEY30_C
        "|2^20|2:4\r\n"
        "a=crypto:4 AES_CM_128_HMAC_SHA1_80 inline:" KEY30_C "|1048576 UNENCRYPTED_SRTP\r\n"
        "a=crypto:5 AES_CM_128_HMAC_SHA1_80 inline:" KEY30_C " UNAUTHENTICATED_SRTP  KDR=20\t"
        "UNENCRYPTED_SRTCP FEC_ORDER=FEC_SRTP WSH=128\r\n"
        "a=crypto:999999999 NULL_HMAC_SHA1_80 inline:" KEY30_A "|255:1\r\n"
        "a=crypto:6 AES_CM_128_HMAC_SHA1_80 mikey:opaque+stuff=\r\n"
        "a=crypto:8 AES_CM_128_HMAC_SHA1_80 inline:" KEY30_A "|18446744073709551615:8\r\n";
    struct sdp *s = parse_ok(text);
    const struct sdp_level *lv = &s->media[0].lv;
    assert_int_equal(lv->ncrypto, 8);

    const struct sdp_crypto *c = sdp_level_crypto(s, lv, 0);
    assert_true(c->keys[0].has_lifetime);
    assert_true(c->keys[0].lifetime_pow2);
    assert_int_equal(c->keys[0].lifetime, 31);
    assert_false(c->keys[0].has_mki);
    assert_view(c->keys[0].key_salt, KEY30_A);

    c = sdp_level_crypto(s, lv, 1);
    assert_false(c->keys[0].has_lifetime);
    assert_true(c->keys[0].has_mki);
    assert_int_equal(c->keys[0].mki_value, 1);
    assert_int_equal(c->keys[0].mki_len, 4);
    assert_view(c->keys[0].key_salt, KEY30_B);

    c = sdp_level_crypto(s, lv, 2);
    assert_int_equal(c->nkeys, 2);
    assert_view(c->keys[0].key_salt, KEY30_A);
    assert_view(c->keys[1].key_salt, KEY30_C);
    assert_int_equal(c->keys[1].lifetime, 20);
    assert_int_equal(c->keys[1].mki_value, 2);
    assert_int_equal(c->keys[1].mki_len, 4);
    assert_view(c->key_params, "inline:" KEY30_A "|2^20|1:4;inline:" KEY30_C "|2^20|2:4");

    c = sdp_level_crypto(s, lv, 3);
    assert_false(c->keys[0].lifetime_pow2);
    assert_int_equal(c->keys[0].lifetime, 1048576);
    assert_true(c->unencrypted_srtp);
    assert_false(c->unauthenticated_srtp);
    assert_view(c->session_params, "UNENCRYPTED_SRTP");

    c = sdp_level_crypto(s, lv, 4);
    assert_true(c->unauthenticated_srtp);
    assert_true(c->unencrypted_srtcp);
    assert_false(c->unencrypted_srtp);
    assert_true(c->has_kdr);
    assert_int_equal(c->kdr, 20);
    assert_view(c->session_params,
                "UNAUTHENTICATED_SRTP  KDR=20\tUNENCRYPTED_SRTCP FEC_ORDER=FEC_SRTP WSH=128");

    c = sdp_level_crypto(s, lv, 5);
    assert_int_equal(c->tag, 999999999);
    assert_view(c->suite, "NULL_HMAC_SHA1_80");
    assert_int_equal(c->keys[0].mki_value, 255);
    assert_int_equal(c->keys[0].mki_len, 1);

    c = sdp_level_crypto(s, lv, 6);
    assert_view(c->keys[0].method, "mikey");
    assert_view(c->keys[0].info, "opaque+stuff=");
    assert_true(strview_is_empty(c->keys[0].key_salt));

    c = sdp_level_crypto(s, lv, 7);
    assert_int_equal(c->keys[0].mki_value, 18446744073709551615ULL);
    assert_int_equal(c->keys[0].mki_len, 8);
    sdp_free(s);
}

static void test_line_ends(void **state)
{
    (void)state;
    /* LF only, mixed, trailing blank lines, no final line end. */
    const char *lf = "v=0\no=- 1 1 IN IP4 h\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\n"
                     "m=audio 4 RTP/AVP 0\na=sendrecv\n";
    struct sdp *s = parse_ok(lf);
    assert_int_equal(s->nlines, 7);
    assert_view(s->lines[6].value, "sendrecv");
    assert_view(s->lines[6].raw, "a=sendrecv\n");
    sdp_free(s);

    s = parse_ok("v=0\r\no=- 1 1 IN IP4 h\ns=-\r\nc=IN IP4 192.0.2.1\nt=0 0\r\n\r\n\n");
    assert_int_equal(s->nlines, 5);
    assert_view(s->lines[2].raw, "s=-\r\n");
    assert_view(s->tail, "\r\n\n");
    char *w = write_str(s);
    assert_string_equal(w, "v=0\r\no=- 1 1 IN IP4 h\ns=-\r\nc=IN IP4 192.0.2.1\nt=0 0\r\n\r\n\n");
    free(w);
    sdp_free(s);

    s = parse_ok("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nx=unknown type\r\nZ=upper\r\nt=0 0");
    assert_int_equal(s->nlines, 6);
    assert_int_equal(s->lines[3].type, 'x');
    assert_int_equal(s->lines[4].type, 'Z');
    assert_view(s->lines[5].raw, "t=0 0");
    sdp_free(s);
}

/* --- refusals -------------------------------------------------------------- */

#define MIN_HEAD "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
#define AUDIO    "m=audio 4000 RTP/SAVP 0\r\n"
#define CRYPTO   "a=crypto:1 AES_CM_128_HMAC_SHA1_80 "

static const struct {
    const char *text;
    const char *fault;
} bad[] = {
    {"", "empty SDP"},
    {"o=- 1 1 IN IP4 h\r\ns=-\r\n", "line 1: missing v=0"},
    {"v=1\r\no=- 1 1 IN IP4 h\r\ns=-\r\n", "line 1: unsupported SDP version"},
    {"v=0\r\ns=-\r\nt=0 0\r\n", "missing o= line"},
    {"v=0\r\no=- 1 1 IN IP4 h\r\nt=0 0\r\n", "missing s= line"},
    {"v=0\r\no=- 1 1 IN IP4\r\ns=-\r\n", "line 2: bad o= line"},
    {"v=0\r\no=- 1 1 IN IP4 h extra\r\ns=-\r\n", "line 2: bad o= line"},
    {MIN_HEAD "o=- 1 1 IN IP4 h\r\n", "line 6: o= repeated"},
    {MIN_HEAD "s=again\r\n", "line 6: s= repeated"},
    {MIN_HEAD "v=0\r\n", "line 6: v= repeated"},
    {MIN_HEAD AUDIO "t=0 0\r\n", "line 7: t= inside a media section"},
    {MIN_HEAD AUDIO "o=- 1 1 IN IP4 h\r\n", "line 7: o= inside a media section"},
    {MIN_HEAD AUDIO "s=x\r\n", "line 7: s= inside a media section"},
    {MIN_HEAD "m=audio 4000 RTP/AVP\r\n", "line 6: bad m= line (no formats)"},
    {MIN_HEAD "m=audio 4000\r\n", "line 6: bad m= line"},
    {MIN_HEAD "m=\r\n", "line 6: bad m= line"},
    {MIN_HEAD "m=audio x4000 RTP/AVP 0\r\n", "line 6: m= line has a non-numeric port"},
    {MIN_HEAD "m=audio -1 RTP/AVP 0\r\n", "non-numeric port"},
    {MIN_HEAD "m=audio /2 RTP/AVP 0\r\n", "non-numeric port"},
    {MIN_HEAD "m=audio 65536 RTP/AVP 0\r\n", "port out of range"},
    {MIN_HEAD "m=audio 4000/0 RTP/AVP 0\r\n", "bad port count"},
    {MIN_HEAD "m=audio 4000/x RTP/AVP 0\r\n", "bad port count"},
    {MIN_HEAD "m=audio 4000 RTP/AVP\"x 0\r\n", "bad transport protocol"},
    {MIN_HEAD "m=au\"dio 4000 RTP/AVP 0\r\n", "bad media type"},
    {"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",
     "media section 1 (audio) has no c= line and there is no session c="},
    {"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n"
     "m=video 4000 RTP/AVP 0\r\n",
     "media section 2 (video) has no c= line"},
    {MIN_HEAD "c=IN IP4\r\n", "line 6: bad c= line"},
    {MIN_HEAD AUDIO "c=IN IP4 a b\r\n", "line 7: bad c= line"},
    {MIN_HEAD "hello\r\n", "line 6: not a <type>=<value> line"},
    {MIN_HEAD "a\r\n", "line 6: not a <type>=<value> line"},
    {MIN_HEAD "1=one\r\n", "line 6: not a <type>=<value> line"},
    {MIN_HEAD " a=x\r\n", "line 6: not a <type>=<value> line"},
    {MIN_HEAD "a:rtcp-mux\r\n", "line 6: not a <type>=<value> line"},
    {MIN_HEAD "a=x\rb=y\r\n", "line 6: CR not followed by LF"},
    {MIN_HEAD "a=x\r", "line 6: CR not followed by LF"},
    {MIN_HEAD "a=x\r\r\n", "line 6: CR not followed by LF"},
    {MIN_HEAD "\r\na=x\r\n", "line 6: empty line"},
    {"\r\n" MIN_HEAD, "line 1: empty line"},
    {MIN_HEAD "a=\r\n", "line 6: attribute without a name"},
    {MIN_HEAD "a=:x\r\n", "line 6: attribute without a name"},
    {MIN_HEAD "a=fo o\r\n", "line 6: bad attribute name"},
    {MIN_HEAD AUDIO "a=sendrecv\r\na=recvonly\r\n", "line 8: conflicting direction attributes"},
    {MIN_HEAD AUDIO "a=setup:sometimes\r\n", "line 7: bad a=setup"},
    {MIN_HEAD AUDIO "a=fingerprint:sha-256\r\n", "line 7: bad a=fingerprint"},
    {MIN_HEAD AUDIO "a=fingerprint:sha-256 AB:CD:E\r\n", "bad a=fingerprint"},
    {MIN_HEAD AUDIO "a=fingerprint:sha-256 AB:CD:EG\r\n", "bad a=fingerprint"},
    {MIN_HEAD AUDIO "a=fingerprint:sha-256 AB-CD\r\n", "bad a=fingerprint"},
    {MIN_HEAD AUDIO "a=crypto:\r\n", "line 7: bad a=crypto tag"},
    {MIN_HEAD AUDIO "a=crypto:x AES_CM_128_HMAC_SHA1_80 inline:" KEY30_A "\r\n",
     "bad a=crypto tag"},
    {MIN_HEAD AUDIO "a=crypto:1234567890 AES_CM_128_HMAC_SHA1_80 inline:" KEY30_A "\r\n",
     "bad a=crypto tag"},
    {MIN_HEAD AUDIO "a=crypto:1\r\n", "bad a=crypto (no crypto suite)"},
    {MIN_HEAD AUDIO "a=crypto:1 AES-CM inline:" KEY30_A "\r\n", "bad a=crypto suite"},
    {MIN_HEAD AUDIO CRYPTO "\r\n", "bad a=crypto (no key parameters)"},
    {MIN_HEAD AUDIO CRYPTO KEY30_A "\r\n", "key parameter without method"},
    {MIN_HEAD AUDIO CRYPTO ":" KEY30_A "\r\n", "key parameter without method"},
    {MIN_HEAD AUDIO CRYPTO "in-line:" KEY30_A "\r\n", "bad key method"},
    {MIN_HEAD AUDIO CRYPTO "inline:\r\n", "empty inline key"},
    {MIN_HEAD AUDIO CRYPTO "inline:|2^20\r\n", "empty inline key"},
    {MIN_HEAD AUDIO CRYPTO "inline:abc!def\r\n", "inline key is not base64"},
    {MIN_HEAD AUDIO CRYPTO "inline:" KEY30_A ";\r\n", "empty key parameter"},
    {MIN_HEAD AUDIO CRYPTO "inline:" KEY30_A ";;inline:" KEY30_B "\r\n", "empty key parameter"},
    {MIN_HEAD AUDIO CRYPTO "inline:" KEY30_A "|2^x\r\n", "bad a=crypto lifetime"},
    {MIN_HEAD AUDIO CRYPTO "inline:" KEY30_A "|2^65\r\n", "bad a=crypto lifetime"},
    {MIN_HEAD AUDIO CRYPTO "inline:" KEY30_A "|2^\r\n", "bad a=crypto lifetime"},
    {MIN_HEAD AUDIO CRYPTO "inline:" KEY30_A "|\r\n", "bad a=crypto lifetime"},
    {MIN_HEAD AUDIO CRYPTO "inline:" KEY30_A "|99999999999999999999\r\n", "bad a=crypto lifetime"},
    {MIN_HEAD AUDIO CRYPTO "inline:" KEY30_A "|1:4|2^20\r\n", "bad a=crypto lifetime"},
    {MIN_HEAD AUDIO CRYPTO "inline:" KEY30_A "|2^20|2^20\r\n", "bad a=crypto lifetime"},
    {MIN_HEAD AUDIO CRYPTO "inline:" KEY30_A "|1:4|2:4\r\n", "bad a=crypto MKI"},
    {MIN_HEAD AUDIO CRYPTO "inline:" KEY30_A "|1:0\r\n", "MKI length out of range"},
    {MIN_HEAD AUDIO CRYPTO "inline:" KEY30_A "|1:129\r\n", "MKI length out of range"},
    {MIN_HEAD AUDIO CRYPTO "inline:" KEY30_A "|1:0004\r\n", "MKI length out of range"},
    {MIN_HEAD AUDIO CRYPTO "inline:" KEY30_A "|1:\r\n", "MKI length out of range"},
    {MIN_HEAD AUDIO CRYPTO "inline:" KEY30_A "|1:-4\r\n", "MKI length out of range"},
    {MIN_HEAD AUDIO CRYPTO "inline:" KEY30_A "|:4\r\n", "bad a=crypto MKI"},
    {MIN_HEAD AUDIO CRYPTO "inline:" KEY30_A "|x:4\r\n", "bad a=crypto MKI"},
    {MIN_HEAD AUDIO CRYPTO "inline:" KEY30_A "|1:4:4\r\n", "MKI length out of range"},
    {MIN_HEAD AUDIO CRYPTO "inline:" KEY30_A "|256:1\r\n", "MKI value does not fit its length"},
    {MIN_HEAD AUDIO CRYPTO "inline:" KEY30_A "|65536:2\r\n", "MKI value does not fit"},
    {MIN_HEAD AUDIO CRYPTO "inline:" KEY30_A "|18446744073709551616:128\r\n",
     "MKI value too large"},
    {MIN_HEAD AUDIO CRYPTO "inline:" KEY30_A "|2^20|1:4|x\r\n", "too many '|' fields"},
    {MIN_HEAD AUDIO CRYPTO "inline:" KEY30_A " KDR=25\r\n", "bad a=crypto KDR"},
    {MIN_HEAD AUDIO CRYPTO "inline:" KEY30_A " KDR=x\r\n", "bad a=crypto KDR"},
    {MIN_HEAD AUDIO CRYPTO "inline:" KEY30_A "\r\n" CRYPTO "inline:" KEY30_B "\r\n",
     "line 8: duplicate a=crypto tag 1"},
    {MIN_HEAD AUDIO CRYPTO "inline:a|1:1;inline:a|2:1;inline:a|3:1;inline:a|4:1;inline:a|5:1;"
                           "inline:a|6:1;inline:a|7:1;inline:a|8:1;inline:a|9:1;inline:a|10:1;"
                           "inline:a|11:1;inline:a|12:1;inline:a|13:1;inline:a|14:1;"
                           "inline:a|15:1;inline:a|16:1;inline:a|17:1\r\n",
     "a=crypto has more than 16 keys"},
};

static void test_malformed(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct sdp *s = (struct sdp *)1;
        char err[160] = "";
        int rc = sdp_parse(strview_cstr(bad[i].text), &s, err, sizeof(err));
        if (rc != -EINVAL || s != NULL || !strstr(err, bad[i].fault))
            fail_msg("case %zu: rc=%d err=\"%s\", wanted \"%s\"\n---\n%s", i, rc, err, bad[i].fault,
                     bad[i].text);
    }
}

static void test_nul_byte(void **state)
{
    (void)state;
    static const char text[] = MIN_HEAD "a=x\0y\r\n";
    struct sdp *s = NULL;
    char err[160];
    assert_int_equal(sdp_parse(strview_make(text, sizeof(text) - 1), &s, err, sizeof(err)),
                     -EINVAL);
    assert_null(s);
    assert_string_equal(err, "line 6: NUL byte");
    /* the parser reads only the given length: the same text cut before the
     * NUL parses */
    assert_int_equal(sdp_parse(strview_make(text, sizeof(MIN_HEAD) - 1), &s, err, sizeof(err)), 0);
    sdp_free(s);
    /* a tiny error buffer is fine */
    s = NULL;
    assert_int_equal(sdp_parse(strview_cstr("x"), &s, err, 4), -EINVAL);
    assert_string_equal(err, "lin");
    assert_int_equal(sdp_parse(strview_cstr("x"), &s, NULL, 0), -EINVAL);
}

static void test_limits(void **state)
{
    (void)state;
    struct strbuf b = STRBUF_INIT;
    struct sdp *s = NULL;
    char err[160];

    /* 64 media sections pass, 65 do not */
    strbuf_puts(&b, MIN_HEAD);
    for (int i = 0; i < SDP_MAX_MEDIA; i++)
        strbuf_printf(&b, "m=audio %d RTP/AVP 0\r\n", 4000 + 2 * i);
    assert_int_equal(sdp_parse(strview_make(b.p, b.len), &s, err, sizeof(err)), 0);
    assert_int_equal(s->nmedia, SDP_MAX_MEDIA);
    assert_int_equal(s->media[63].port, 4126);
    sdp_free(s);
    strbuf_puts(&b, "m=audio 9 RTP/AVP 0\r\n");
    assert_int_equal(sdp_parse(strview_make(b.p, b.len), &s, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "more than 64 media sections"));
    strbuf_reset(&b);

    /* 256 attributes in a section pass, 257 do not; the session has its own */
    strbuf_puts(&b, MIN_HEAD);
    for (int i = 0; i < SDP_MAX_ATTRS; i++)
        strbuf_printf(&b, "a=s%d\r\n", i);
    strbuf_puts(&b, AUDIO);
    for (int i = 0; i < SDP_MAX_ATTRS; i++)
        strbuf_printf(&b, "a=x%d:%d\r\n", i, i);
    assert_int_equal(sdp_parse(strview_make(b.p, b.len), &s, err, sizeof(err)), 0);
    assert_int_equal(s->media[0].lv.nattrs, SDP_MAX_ATTRS);
    assert_int_equal(s->session.nattrs, SDP_MAX_ATTRS);
    assert_view(sdp_level_attr(s, &s->media[0].lv, 255)->name, "x255");
    assert_null(sdp_level_attr(s, &s->media[0].lv, 256));
    sdp_free(s);
    strbuf_puts(&b, "a=one-too-many\r\n");
    assert_int_equal(sdp_parse(strview_make(b.p, b.len), &s, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "more than 256 attributes at media section 1"));
    strbuf_reset(&b);
    strbuf_puts(&b, MIN_HEAD);
    for (int i = 0; i <= SDP_MAX_ATTRS; i++)
        strbuf_printf(&b, "a=s%d\r\n", i);
    assert_int_equal(sdp_parse(strview_make(b.p, b.len), &s, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "more than 256 attributes at the session level"));
    strbuf_reset(&b);

    /* 64 formats pass, 65 do not */
    strbuf_puts(&b, MIN_HEAD "m=audio 4000 RTP/AVP");
    for (int i = 0; i < SDP_MAX_FORMATS; i++)
        strbuf_printf(&b, " %d", i);
    size_t at = b.len;
    strbuf_puts(&b, "\r\n");
    assert_int_equal(sdp_parse(strview_make(b.p, b.len), &s, err, sizeof(err)), 0);
    assert_int_equal(s->media[0].nformats, SDP_MAX_FORMATS);
    assert_view(s->media[0].formats[63], "63");
    sdp_free(s);
    b.len = at;
    strbuf_puts(&b, " 64\r\n");
    assert_int_equal(sdp_parse(strview_make(b.p, b.len), &s, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "more than 64 formats"));
    strbuf_reset(&b);

    /* exactly SDP_MAX_SIZE bytes pass, one more does not */
    strbuf_puts(&b, MIN_HEAD "a=pad:");
    while (b.len < SDP_MAX_SIZE - 2)
        strbuf_putc(&b, 'x');
    strbuf_puts(&b, "\r\n");
    assert_int_equal(b.len, SDP_MAX_SIZE);
    assert_int_equal(sdp_parse(strview_make(b.p, b.len), &s, err, sizeof(err)), 0);
    sdp_free(s);
    strbuf_putc(&b, '\n');
    assert_int_equal(sdp_parse(strview_make(b.p, b.len), &s, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "SDP larger than 65536 bytes");
    strbuf_free(&b);
}

/* --- writer ---------------------------------------------------------------- */

/* Same structure: every view equal by content, every count equal. */
static void assert_same_structure(const struct sdp *a, const struct sdp *b)
{
    assert_int_equal(a->nlines, b->nlines);
    for (size_t i = 0; i < a->nlines; i++) {
        assert_int_equal(a->lines[i].type, b->lines[i].type);
        assert_true(strview_eq_view(a->lines[i].value, b->lines[i].value));
    }
    assert_int_equal(a->nattrs, b->nattrs);
    for (size_t i = 0; i < a->nattrs; i++) {
        assert_true(strview_eq_view(a->attrs[i].name, b->attrs[i].name));
        assert_true(strview_eq_view(a->attrs[i].value, b->attrs[i].value));
        assert_int_equal(a->attrs[i].line, b->attrs[i].line);
    }
    assert_int_equal(a->ncryptos, b->ncryptos);
    for (size_t i = 0; i < a->ncryptos; i++) {
        const struct sdp_crypto *x = &a->cryptos[i], *y = &b->cryptos[i];
        assert_int_equal(x->tag, y->tag);
        assert_true(strview_eq_view(x->suite, y->suite));
        assert_true(strview_eq_view(x->key_params, y->key_params));
        assert_true(strview_eq_view(x->session_params, y->session_params));
        assert_int_equal(x->nkeys, y->nkeys);
        for (size_t k = 0; k < x->nkeys; k++) {
            assert_true(strview_eq_view(x->keys[k].key_salt, y->keys[k].key_salt));
            assert_int_equal(x->keys[k].lifetime, y->keys[k].lifetime);
            assert_int_equal(x->keys[k].mki_value, y->keys[k].mki_value);
            assert_int_equal(x->keys[k].mki_len, y->keys[k].mki_len);
        }
    }
    assert_true(strview_eq_view(a->origin_sess_version, b->origin_sess_version));
    assert_int_equal(a->nmedia, b->nmedia);
    for (size_t i = 0; i < a->nmedia; i++) {
        const struct sdp_media *x = &a->media[i], *y = &b->media[i];
        assert_true(strview_eq_view(x->media, y->media));
        assert_int_equal(x->port, y->port);
        assert_int_equal(x->nports, y->nports);
        assert_int_equal(x->proto, y->proto);
        assert_int_equal(x->nformats, y->nformats);
        assert_int_equal(x->lv.nattrs, y->lv.nattrs);
        assert_int_equal(x->lv.ncrypto, y->lv.ncrypto);
        assert_int_equal(x->lv.conn.present, y->lv.conn.present);
        assert_true(strview_eq_view(x->lv.conn.address, y->lv.conn.address));
        assert_int_equal(x->lv.fingerprint.present, y->lv.fingerprint.present);
        assert_true(strview_eq_view(x->lv.fingerprint.value, y->lv.fingerprint.value));
        assert_int_equal(x->lv.setup, y->lv.setup);
        assert_int_equal(x->lv.direction, y->lv.direction);
        assert_int_equal(x->lv.rtcp_mux, y->lv.rtcp_mux);
    }
}

static void test_round_trip(void **state)
{
    (void)state;
    const char *samples[] = {SDP_BARESIP_SRTP_MAND, SDP_BARESIP_SRTP_OPT, SDP_LINPHONE_DTLS,
                             SDP_WEBRTC, "v=0\no=- 1 1 IN IP4 h\ns=-\nq=odd\nt=0 0"};
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        struct sdp *a = parse_ok(samples[i]);
        char *w = write_str(a);
        assert_string_equal(w, samples[i]);
        struct sdp *b = parse_ok(w);
        assert_same_structure(a, b);
        sdp_free(a);
        sdp_free(b);
        free(w);
    }
}

/* Deletes every line of text that starts with prefix. */
static char *drop_lines(const char *text, const char *prefix)
{
    struct strbuf b = STRBUF_INIT;
    const char *p = text;
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) + 1 : strlen(p);
        if (strncmp(p, prefix, strlen(prefix)) != 0)
            strbuf_append(&b, p, n);
        p += n;
    }
    char *r = strbuf_take(&b, NULL);
    return r ? r : strdup("");
}

static void test_remove_crypto(void **state)
{
    (void)state;
    const char *src = SDP_HEAD "a=crypto:9 AES_CM_128_HMAC_SHA1_80 inline:" KEY30_A "\r\n"
                               "k=clear:secret\r\n"
                               "m=audio 10092 RTP/AVP 96 0 101\r\n"
                               "a=rtpmap:96 opus/48000/2\r\n"
                               "a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:" KEY30_A "\r\n"
                               "a=CRYPTO:2 AES_CM_128_HMAC_SHA1_80 inline:" KEY30_B "\r\n"
                               "a=ptime:20\r\n"
                               "m=video 4002 RTP/SAVP 96\r\n"
                               "a=acap:1 crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" KEY30_C "\r\n"
                               "a=acap:2 rtcp-fb:* nack\r\n"
                               "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" KEY30_C "\n"
                               "a=rtpmap:96 H264/90000";
    struct sdp *s = parse_ok(src);
    assert_int_equal(s->session.ncrypto, 1);
    assert_int_equal(s->session.nkey_lines, 1);
    assert_int_equal(s->media[0].lv.ncrypto, 2);
    assert_int_equal(s->media[1].lv.nkey_lines, 1);
    assert_true(sdp_has_keys(s));

    /* the audio section's a=crypto only: everything else byte-identical */
    sdp_level_remove_crypto(s, &s->media[0].lv);
    char *w = write_str(s);
    char *want = drop_lines(src, "a=crypto:1 AES_CM_128_HMAC_SHA1_32");
    char *want2 = drop_lines(want, "a=CRYPTO:2");
    assert_string_equal(w, want2);
    struct sdp *r = parse_ok(w);
    assert_int_equal(r->media[0].lv.ncrypto, 0);
    assert_int_equal(r->media[0].lv.nattrs, 2);
    assert_int_equal(r->media[1].lv.ncrypto, 1);
    assert_int_equal(r->session.ncrypto, 1);
    assert_int_equal(r->nmedia, 2);
    assert_int_equal(r->media[0].proto, SDP_PROTO_RTP_AVP);
    sdp_free(r);
    free(w);
    free(want);
    free(want2);

    /* every key: session a=crypto, k=, the acap capability, a=crypto */
    assert_true(sdp_has_keys(s));
    sdp_remove_keys(s);
    assert_false(sdp_has_keys(s));
    w = write_str(s);
    assert_null(strstr(w, "inline:"));
    assert_null(strstr(w, "k=clear"));
    assert_non_null(strstr(w, "a=acap:2 rtcp-fb:* nack\r\n"));
    assert_non_null(strstr(w, "m=video 4002 RTP/SAVP 96\r\na=acap:2"));
    assert_non_null(strstr(w, "a=acap:2 rtcp-fb:* nack\r\na=rtpmap:96 H264/90000"));
    r = parse_ok(w);
    assert_false(sdp_has_keys(r));
    assert_int_equal(r->ncryptos, 0);
    assert_int_equal(r->nmedia, 2);
    sdp_free(r);
    free(w);

    /* out-of-range removal is a no-op */
    sdp_line_remove(s, s->nlines);
    sdp_free(s);
}

/* Lines given new text, or text added after them; a line removed for the
 * key it carries never comes back with text added after it. */
static void test_line_set_and_add(void **state)
{
    (void)state;
    const char *text = "v=0\r\n"
                       "o=- 1 1 IN IP4 192.0.2.1\r\n"
                       "s=-\r\n"
                       "c=IN IP4 192.0.2.1\r\n"
                       "t=0 0\r\n"
                       "m=audio 4000 RTP/SAVP 0\r\n"
                       "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"
                       "WE8Z/tc8igwnw+dHkqi5+yJVOdGNhzgG49W82gOb\r\n";
    struct sdp *s = parse_ok(text);
    const struct sdp_media *m = &s->media[0];
    assert_int_equal(sdp_line_set(s, m->lv.line_first, strview_cstr("m=audio 5000 RTP/SAVP 0\r\n")),
                     0);
    assert_int_equal(
        sdp_line_set(s, s->session.conn.line, strview_cstr("c=IN IP4 203.0.113.9\r\n")), 0);
    size_t last = m->lv.line_end - 1; /* the a=crypto line */
    sdp_level_remove_crypto(s, &m->lv);
    assert_int_equal(sdp_line_add_after(s, last,
                                        strview_cstr("a=crypto:1 AES_CM_128_HMAC_SHA1_80 "
                                                     "inline:NEWKEY\r\n")),
                     0);
    struct strbuf out = STRBUF_INIT;
    assert_int_equal(sdp_write(s, &out), 0);
    assert_null(strstr(strbuf_cstr(&out), "WE8Z"));
    assert_non_null(strstr(strbuf_cstr(&out), "inline:NEWKEY\r\n"));
    assert_non_null(strstr(strbuf_cstr(&out), "m=audio 5000 "));
    assert_non_null(strstr(strbuf_cstr(&out), "c=IN IP4 203.0.113.9\r\n"));
    /* text added after a line that stays keeps it */
    assert_int_equal(sdp_line_add_after(s, 2, strview_cstr("a=tool:x\r\n")), 0);
    strbuf_reset(&out);
    assert_int_equal(sdp_write(s, &out), 0);
    assert_non_null(strstr(strbuf_cstr(&out), "s=-\r\na=tool:x\r\n"));
    /* what is not whole lines is refused */
    assert_int_equal(sdp_line_set(s, 2, strview_cstr("s=x")), -EINVAL);
    assert_int_equal(sdp_line_set(s, 2, strview_cstr("s=x\r\n\r\n")), -EINVAL);
    assert_int_equal(sdp_line_set(s, 2, strview_cstr("=x\r\n")), -EINVAL);
    assert_int_equal(sdp_line_set(s, 2, strview_cstr("s=x\ny=1\r\n")), -EINVAL);
    assert_int_equal(sdp_line_set(s, 99, strview_cstr("s=x\r\n")), -EINVAL);
    strbuf_free(&out);
    sdp_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_set_and_add),
        cmocka_unit_test(test_baresip_srtp_mand),
        cmocka_unit_test(test_baresip_srtp_optional),
        cmocka_unit_test(test_linphone_dtls),
        cmocka_unit_test(test_webrtc),
        cmocka_unit_test(test_osrtp_and_sections),
        cmocka_unit_test(test_crypto_details),
        cmocka_unit_test(test_line_ends),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_nul_byte),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_remove_crypto),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
