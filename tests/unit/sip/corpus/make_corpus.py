#!/usr/bin/env python3
"""Writes the SIP parser corpus: valid/*.sip and invalid/*.sip.

The messages follow the categories of RFC 4475 (SIP torture tests) and
RFC 5118 (IPv6), written for Parley rather than copied byte for byte.
Line ends are CRLF unless a message says otherwise; {CL} is replaced by
the body's length so valid messages stay consistent when edited.
invalid/expected.txt gives the status sip_msg_parse must report for each
invalid file (0: drop without answer).

Run from this folder: python3 make_corpus.py
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))

SDP = (
    "v=0\n"
    "o=mhandley 29739 7272939 IN IP4 192.0.2.3\n"
    "s=-\n"
    "c=IN IP4 192.0.2.4\n"
    "t=0 0\n"
    "m=audio 49217 RTP/AVP 0 12\n"
    "m=video 3227 RTP/AVP 31\n"
    "a=rtpmap:31 LPC\n"
)

BEL, NUL, DEL = "\x07", "\x00", "\x7f"


def msg(text, lf_only=False, raw_body=None):
    """text: head and body with \\n line ends; raw_body: bytes appended."""
    head, sep, body = text.partition("\n\n")
    eol = "\n" if lf_only else "\r\n"
    head_b = head.replace("\n", eol).encode("utf-8")
    body_b = body.replace("\n", eol).encode("utf-8") if sep else b""
    if raw_body is not None:
        body_b += raw_body
    head_b = head_b.replace(b"{CL}", str(len(body_b)).encode())
    return head_b + (eol * 2).encode() + body_b


valid = {}
invalid = {}
expected = {}

# --- valid: RFC 4475 §3.1.1 -------------------------------------------------

valid["wsinv"] = msg(
    "INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0\n"
    "TO :\n"
    " sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n\n"
    'from   : "J Rosenberg \\\\\\""       <sip:jdrosen@example.com>\n'
    "  ;\n"
    "  tag = 98asjd8\n"
    "MaX-fOrWaRdS: 0068\n"
    "Call-ID: wsinv.ndaksdj@192.0.2.1\n"
    "Content-Length   : {CL}\n"
    "cseq: 0009\n"
    "  INVITE\n"
    "Via  : SIP  /   2.0\n"
    " /UDP\n"
    "    192.0.2.2;branch=390skdjuw\n"
    "s :\n"
    "NewFangledHeader:   newfangled value\n"
    " continued newfangled value\n"
    "UnknownHeaderWithUnusualValue: ;;,,;;,;\n"
    "Content-Type: application/sdp\n"
    "Route:\n"
    " <sip:services.example.com;lr;unknownwith=value;unknown-no-value>\n"
    "v:  SIP  / 2.0  / TCP     spindle.example.com   ;\n"
    "  branch  =   z9hG4bK9ikj8  ,\n"
    " SIP  /    2.0   / UDP  192.168.255.111   ; branch=\n"
    " z9hG4bK30239\n"
    'm:"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam =\n'
    "      newvalue ;\n"
    "  secondparam ; q = 0.33\n"
    "\n" + SDP)

valid["intmeth"] = msg(
    "!interesting-Method0123456789_*+`.%indeed'~ sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com SIP/2.0\n"
    "Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~\n"
    f'To: "BEL:\\{BEL} NUL:\\{NUL} DEL:\\{DEL}" <sip:1_unusual.URI~(to-be!sure)&isn\'t+it$/crazy?,/;;*@example.com>\n'
    "From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%=\"\u0440\u0430\u0431\u043e\u0442\u0430\u044e\u0449\u0438\u0439\";tag=_token~1'+`*%!-.\n"
    "Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{\n"
    "CSeq: 139122385 !interesting-Method0123456789_*+`.%indeed'~\n"
    "Max-Forwards: 255\n"
    "extensionHeader-!.%*+_`'~:\ufeff\u5927\u505c\u96fb\n"
    "Content-Length: {CL}\n"
    "\n")

valid["esc01"] = msg(
    "INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0\n"
    "To: sip:%75se%72@example.com\n"
    "From: <sip:I%20have%20spaces@example.net>;tag=938\n"
    "Max-Forwards: 87\n"
    "i: esc01.239409asdfakjkn23onasd0-3234\n"
    "CSeq: 234234 INVITE\n"
    "Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw\n"
    "C: application/sdp\n"
    "Contact:\n"
    "  <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>\n"
    "Content-Length: {CL}\n"
    "\n" + SDP)

valid["escnull"] = msg(
    "REGISTER sip:example.com SIP/2.0\n"
    "To: sip:null-%00-null@example.com\n"
    "From: sip:null-%00-null@example.com;tag=839923423\n"
    "Max-Forwards: 70\n"
    "Call-ID: escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd\n"
    "CSeq: 14398234 REGISTER\n"
    "Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw\n"
    "Contact: <sip:%00@host5.example.com>\n"
    "Contact: <sip:%00%00@host5.example.com>\n"
    "L:{CL}\n"
    "\n")

valid["esc02"] = msg(
    "RE%47IST%45R sip:registrar.example.com SIP/2.0\n"
    'To: "%Z%45" <sip:resource@example.com>\n'
    'From: "%Z%45" <sip:resource@example.com>;tag=f232jadfj23\n'
    "Call-ID: esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf\n"
    "Via: SIP/2.0/TCP host.example.com;rport;branch=z9hG4bK209%fzsnel234\n"
    "CSeq: 29344 RE%47IST%45R\n"
    "Max-Forwards: 70\n"
    "Contact: <sip:alias1@host1.example.com>\n"
    "C%6Fntact: <sip:alias2@host2.example.com>\n"
    "Contact: <sip:alias3@host3.example.com>\n"
    "l: {CL}\n"
    "\n")

valid["lwsdisp"] = msg(
    "OPTIONS sip:user@example.com SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: caller<sip:caller@example.com>;tag=323\n"
    "Max-Forwards: 70\n"
    "Call-ID: lwsdisp.1234abcd@funky.example.com\n"
    "CSeq: 60 OPTIONS\n"
    "Via: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw\n"
    "l: {CL}\n"
    "\n")

long_name = "unknownheaderwithahugevaluethatisverylongandhasnomeaning" * 3
long_display = "I have a user name of " + "extreme " * 30 + "proportion"
long_branch = "z9hG4bK" + "longvalue" * 40
long_callid = "longreq.one" + "really" * 40 + "longcallid"
received = ";received=192.0.2.16" * 40
contacts = ",\n ".join(f"<sip:amazinglylongcallername{i}@host5.example.net>" for i in range(30))
valid["longreq"] = msg(
    "INVITE sip:user@example.com SIP/2.0\n"
    f'To: "{long_display}" <sip:user@example.com>;tag=1918181833n\n'
    f"From: sip:amazinglylongcallernameamazinglylongcallernameamazinglylongcallername@example.net;tag=12982982{'9' * 30};unknownheaderparamname=unknowheaderparamvalue;unknownValuelessparamname\n"
    f"Call-ID: {long_callid}\n"
    "CSeq: 3882340 INVITE\n"
    f"{long_name}: {'v' * 1000}\n"
    f"Via: SIP/2.0/TCP sip33.example.com;branch={long_branch}\n"
    f"Via: SIP/2.0/TCP sip32.example.com{received}\n"
    "Via: SIP/2.0/TCP sip31.example.com;branch=z9hG4bK0000\n"
    "Max-Forwards: 70\n"
    f"Contact: {contacts}\n"
    "Content-Type: application/sdp\n"
    "l: {CL}\n"
    "\n" + SDP)

# Two messages back to back: on a stream the second is a message of its
# own (on UDP it would be trailing octets to ignore).
valid["dblreq"] = msg(
    "REGISTER sip:example.com SIP/2.0\n"
    "To: sip:j.user@example.com\n"
    "From: sip:j.user@example.com;tag=43251j3j324\n"
    "Max-Forwards: 8\n"
    "I: dblreq.0ha0isndaksdj99sdfafnl3lk233412\n"
    "Contact: sip:j.user@host.example.com\n"
    "CSeq: 8 REGISTER\n"
    "Via: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492\n"
    "Content-Length: 0\n"
    "\n") + msg(
    "INVITE sip:joe@example.com SIP/2.0\n"
    "t: sip:joe@example.com\n"
    "From: sip:caller@example.net;tag=141334\n"
    "Max-Forwards: 8\n"
    "Call-ID: dblreq.0ha0isnda977644900765@192.0.2.15\n"
    "CSeq: 8 INVITE\n"
    "Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw380234\n"
    "Content-Type: application/sdp\n"
    "Content-Length: {CL}\n"
    "\n" + SDP)

valid["semiuri"] = msg(
    "OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0\n"
    "To: sip:j_user@example.com\n"
    "From: sip:caller@example.org;tag=33242\n"
    "Max-Forwards: 3\n"
    "Call-ID: semiuri.0ha0isndaksdj\n"
    "CSeq: 8 OPTIONS\n"
    "Accept: application/sdp, application/pkcs7-mime,\n"
    "        multipart/mixed, multipart/signed,\n"
    "        message/sip, message/sipfrag\n"
    "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw\n"
    "l: {CL}\n"
    "\n")

valid["transports"] = msg(
    "OPTIONS sip:user@example.com SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: <sip:caller@example.com>;tag=323\n"
    "Max-Forwards: 70\n"
    "Call-ID:  transports.kijh4akdnaqjkwendsasfdj\n"
    "Accept: application/sdp\n"
    "CSeq: 60 OPTIONS\n"
    "Via: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw\n"
    "Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf\n"
    "Via: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj\n"
    "Via: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en\n"
    "Via: SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee\n"
    "l: {CL}\n"
    "\n")

mpart_binary = (b"--7a9cbec02ceef655\r\nContent-Type: text/plain\r\n"
                b"Content-Transfer-Encoding: binary\r\n\r\nHello\r\n"
                b"--7a9cbec02ceef655\r\nContent-Type: application/octet-stream\r\n"
                b"Content-Transfer-Encoding: binary\r\n\r\n"
                b"\x30\x82\x01\x52\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02\xa0"
                b"\x00\x00\r\r\n\n\x00\xff\xfe\r\n\r\n\x01\x02"
                b"\r\n--7a9cbec02ceef655--\r\n")
valid["mpart01"] = msg(
    "MESSAGE sip:kumiko@example.org SIP/2.0\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-;rport\n"
    "Max-Forwards: 70\n"
    "Route: <sip:127.0.0.1:5080>\n"
    "Identity: r5mwreLuyDRYBi/0TiPwEsY3rEVsk/G2WxhgTV1PF7hHuLIK0YWVKZhKv9Mj8UeXqkMVbnVq37CD+813gvYjcBUaZngQmXc9WNZSDNGCzA+fWl9MEUHWIZo1CeJebdY/XlgKeTa0Olvq0rt70Q5jiSfbqMJmQFteeivUhkMWYUA=\n"
    "Contact: <sip:fluffy@127.0.0.1:5070>\n"
    "To: <sip:kumiko@example.org>\n"
    "From: <sip:fluffy@example.com>;tag=2fb0dcc9\n"
    "Call-ID: 3d9485ad0c49859b@Zmx1ZmZ5LW1hYy0xNi5sb2NhbA..\n"
    "CSeq: 1 MESSAGE\n"
    "Content-Transfer-Encoding: binary\n"
    "Content-Type: multipart/mixed;boundary=7a9cbec02ceef655\n"
    "Date: Sat, 15 Oct 2005 04:44:56 GMT\n"
    "User-Agent: SIPimp.org/0.2.5 (curses)\n"
    "Content-Length: {CL}\n"
    "\n", raw_body=mpart_binary)

valid["unreason"] = msg(
    "SIP/2.0 200 = 2**3 * 5**2 \u043d\u043e \u0441\u0442\u043e \u0434\u0435\u0432\u044f\u043d\u043e\u0441\u0442\u043e \u0434\u0435\u0432\u044f\u0442\u044c - \u043f\u0440\u043e\u0441\u0442\u043e\u0435\n"
    "Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923\n"
    "Call-ID: unreason.1234ksdfak3j2erwedfsASdf\n"
    "CSeq: 35 INVITE\n"
    "From: sip:user@example.com;tag=11141343\n"
    "To: sip:user@example.edu;tag=2229\n"
    "Content-Length: {CL}\n"
    "Content-Type: application/sdp\n"
    "Contact: <sip:user@host198.example.com>\n"
    "\n" + SDP)

valid["noreason"] = msg(
    "SIP/2.0 100 \n"
    "Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\n"
    "Call-ID: noreason.asndj203insdf99223ndf\n"
    "CSeq: 35 INVITE\n"
    "From: <sip:user@example.com>;tag=39ansfi3\n"
    "To: <sip:user@example.edu>;tag=902jndnke3\n"
    "Content-Length: {CL}\n"
    "Contact: <sip:user@host105.example.com>\n"
    "\n")

# --- valid: RFC 4475 §3.3 (well-formed, odd for the application) ----------

valid["unksm2"] = msg(
    "REGISTER sip:example.com SIP/2.0\n"
    "To: isbn:2983792873\n"
    "From: <http://www.example.com>;tag=3234233\n"
    "Call-ID: unksm2.daksdj@hyphenated-host.example.com\n"
    "CSeq: 234902 REGISTER\n"
    "Max-Forwards: 70\n"
    "Via: SIP/2.0/UDP 192.0.2.21:5060;branch=z9hG4bKkdjuw\n"
    "Contact: <name:John_Smith>\n"
    "l: {CL}\n"
    "\n")

valid["bext01"] = msg(
    "OPTIONS sip:user@example.com SIP/2.0\n"
    "To: sip:j_user@example.com\n"
    "From: sip:caller@example.net;tag=242etr\n"
    "Max-Forwards: 6\n"
    "Call-ID: bext01.0ha0isndaksdj\n"
    "Require: nothingSupportsThis, nothingSupportsThisEither\n"
    "Proxy-Require: noProxiesSupportThis, norDoAnyProxiesSupportThis\n"
    "CSeq: 8 OPTIONS\n"
    "Via: SIP/2.0/TLS fold-and-staple.example.com;branch=z9hG4bKkdjuw\n"
    "Content-Length: {CL}\n"
    "\n")

valid["invut"] = msg(
    "INVITE sip:user@example.com SIP/2.0\n"
    "Contact: <sip:caller@host5.example.net>\n"
    "To: sip:j.user@example.com\n"
    "From: sip:caller@example.net;tag=8392034\n"
    "Max-Forwards: 70\n"
    "Call-ID: invut.0ha0isndaksdjadsfij34n23d\n"
    "CSeq: 235448 INVITE\n"
    "Via: SIP/2.0/UDP somehost.example.com;branch=z9hG4bKkdjuw\n"
    "Content-Type: application/unknownformat\n"
    "Content-Length: {CL}\n"
    "\n"
    "<audio>\n <pcmu port=\"443\"/>\n</audio>\n")

valid["regaut01"] = msg(
    "REGISTER sip:example.com SIP/2.0\n"
    "To: sip:j.user@example.com\n"
    "From: sip:j.user@example.com;tag=87321hj23128\n"
    "Max-Forwards: 8\n"
    "Call-ID: regaut01.0ha0isndaksdj\n"
    "CSeq: 9338 REGISTER\n"
    "Via: SIP/2.0/TCP 192.0.2.253;branch=z9hG4bKkdjuw\n"
    "Authorization: NoOneKnowsThisScheme opaque-data=here\n"
    "Content-Length: {CL}\n"
    "\n")

valid["bcast"] = msg(
    "SIP/2.0 200 OK\n"
    "Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923\n"
    "Via: SIP/2.0/UDP 255.255.255.255;branch=z9hG4bK1saber23\n"
    "Call-ID: bcast.0384840201234ksdfak3j2erwedfsASdf\n"
    "CSeq: 35 INVITE\n"
    "From: sip:user@example.com;tag=11141343\n"
    "To: sip:user@example.edu;tag=2229\n"
    "Content-Length: {CL}\n"
    "Content-Type: application/sdp\n"
    "Contact: <sip:user@host28.example.com>\n"
    "\n" + SDP)

valid["zeromf"] = msg(
    "OPTIONS sip:user@example.com SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: sip:caller@example.net;tag=3ghsd41\n"
    "Call-ID: zeromf.jfasdlfnm2o2l43r5u0asdfas\n"
    "CSeq: 39234321 OPTIONS\n"
    "Via: SIP/2.0/UDP host1.example.com;branch=z9hG4bKkdjuw2349i\n"
    "Max-Forwards: 0\n"
    "Content-Length: {CL}\n"
    "\n")

valid["cparam01"] = msg(
    "REGISTER sip:example.com SIP/2.0\n"
    "Via: SIP/2.0/UDP saturn.example.com:5060;branch=z9hG4bKkdjuw\n"
    "Max-Forwards: 70\n"
    "From: sip:watson@example.com;tag=DkfVgjkrtMwaerKKpe\n"
    "To: sip:watson@example.com\n"
    "Call-ID: cparam01.70710@saturn.example.com\n"
    "CSeq: 2 REGISTER\n"
    "Contact: sip:+19725552222@gw1.example.net;unknownparam\n"
    "l: {CL}\n"
    "\n")

valid["cparam02"] = msg(
    "REGISTER sip:example.com SIP/2.0\n"
    "Via: SIP/2.0/UDP saturn.example.com:5060;branch=z9hG4bKkdjuw\n"
    "Max-Forwards: 70\n"
    "From: sip:watson@example.com;tag=838293\n"
    "To: sip:watson@example.com\n"
    "Call-ID: cparam02.70710@saturn.example.com\n"
    "CSeq: 3 REGISTER\n"
    "Contact: <sip:+19725552222@gw1.example.net;unknownparam>\n"
    "l: {CL}\n"
    "\n")

valid["regescrt"] = msg(
    "REGISTER sip:example.com SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: sip:user@example.com;tag=8\n"
    "Max-Forwards: 70\n"
    "Call-ID: regescrt.k345asrl3fdbv@192.0.2.1\n"
    "CSeq: 14398234 REGISTER\n"
    "Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw\n"
    "M: <sip:user@example.com?Route=%3Csip:sip.example.com%3E>\n"
    "L:{CL}\n"
    "\n")

valid["sdp01"] = msg(
    "INVITE sip:user@example.com SIP/2.0\n"
    "To: sip:j_user@example.com\n"
    "Contact: <sip:caller@host15.example.net>\n"
    "From: sip:caller@example.net;tag=234\n"
    "Max-Forwards: 5\n"
    "Call-ID: sdp01.ndaksdj9342dasdd\n"
    "Accept: text/nobodyKnowsThis\n"
    "CSeq: 8 INVITE\n"
    "Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw\n"
    "Content-Length: {CL}\n"
    "Content-Type: application/sdp\n"
    "\n" + SDP)

valid["inv2543"] = msg(
    "INVITE sip:UserB@example.com SIP/2.0\n"
    "Via: SIP/2.0/UDP iftgw.example.com\n"
    "From: <sip:+13035551111@ift.client.example.net;user=phone>\n"
    "Record-Route: <sip:UserB@example.com;maddr=ss1.example.com>\n"
    "To: sip:+16505552222@ss1.example.net;user=phone\n"
    "Call-ID: inv2543.1717@ift.client.example.com\n"
    "CSeq: 56 INVITE\n"
    "Content-Type: application/sdp\n"
    "Content-Length: {CL}\n"
    "\n" + SDP)

# --- valid: RFC 5118 (IPv6), TEL, bare LF ------------------------------------

valid["ipv6-good"] = msg(
    "REGISTER sip:[2001:db8::10] SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: sip:user@example.com;tag=81x2\n"
    "Via: SIP/2.0/UDP [2001:db8::9:1]:5070;branch=z9hG4bKas3-111;received=2001:db8::9:255\n"
    "Call-ID: SSG9559905523997077@hlau_4100\n"
    "Max-Forwards: 70\n"
    "Contact: \"Caller\" <sip:caller@[2001:db8::1]:5061;transport=tls>\n"
    "CSeq: 98176 REGISTER\n"
    "Content-Length: {CL}\n"
    "\n")

valid["telruri"] = msg(
    "INVITE tel:+1-201-555-0123;phone-context=example.com SIP/2.0\n"
    "Via: SIP/2.0/TLS pc33.example.com:5061;branch=z9hG4bK776asdhds\n"
    "Max-Forwards: 70\n"
    "To: <tel:+1-201-555-0123>\n"
    "From: Alice <sips:alice@example.com>;tag=1928301774\n"
    "Call-ID: a84b4c76e66710@pc33.example.com\n"
    "CSeq: 314159 INVITE\n"
    "Contact: <sips:alice@pc33.example.com;transport=tls>\n"
    "Content-Type: application/sdp\n"
    "Content-Length: {CL}\n"
    "\n" + SDP)

valid["lfonly"] = msg(
    "MESSAGE sip:bob@example.com SIP/2.0\n"
    "Via: SIP/2.0/TLS alice.example.com:5061;branch=z9hG4bK776sgdkse\n"
    "Max-Forwards: 70\n"
    "From: sip:alice@example.com;tag=49583\n"
    "To: sip:bob@example.com\n"
    "Call-ID: asd88asd77a@1.2.3.4\n"
    "CSeq: 1 MESSAGE\n"
    "Subject: folded\n"
    "\tacross lines\n"
    "Content-Type: text/plain\n"
    "Content-Length: {CL}\n"
    "\n"
    "Watson, come here.", lf_only=True)

valid["multivia"] = msg(
    "SIP/2.0 180 Ringing\n"
    "v: SIP/2.0/TLS proxy.example.com:5061;branch=z9hG4bK2d4790.1;received=192.0.2.3,\n"
    "   SIP/2.0/TLS [2001:db8::5];branch=z9hG4bKnashds8;rport=5061\n"
    "Via: SIP/2.0/TCP client.example.com;branch=z9hG4bK74bf9\n"
    "f: \"Bob, \\\"the\\\" <builder>\" <sip:bob@example.com>;tag=a6c85cf\n"
    "t: <sip:carol@example.com>;tag=314159\n"
    "i: a84b4c76e66710\n"
    "CSeq: 314159 INVITE\n"
    "Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr;x=\"a,b\">\n"
    "l: {CL}\n"
    "\n")

# --- invalid: RFC 4475 §3.1.2 ---------------------------------------------

invalid["badinv01"] = (400, msg(
    "INVITE sip:user@example.com SIP/2.0\n"
    "To: sip:j.user@example.com\n"
    "From: sip:caller@example.net;tag=134161461246\n"
    "Max-Forwards: 7\n"
    "Call-ID: badinv01.0ha0isndaksdjasdf3234nas\n"
    "CSeq: 8 INVITE\n"
    "Via: SIP/2.0/UDP 192.0.2.15;;,;,,\n"
    "Contact: \"Joe\" <sip:joe@example.org>;;;;\n"
    "Content-Length: {CL}\n"
    "Content-Type: application/sdp\n"
    "\n" + SDP))

invalid["clerr"] = (400, msg(
    "INVITE sip:user@example.com SIP/2.0\n"
    "Max-Forwards: 80\n"
    "To: sip:j.user@example.com\n"
    "From: sip:caller@example.net;tag=93942939o2\n"
    "Contact: <sip:caller@hungry.example.net>\n"
    "Call-ID: clerr.0ha0isndaksdjweiafasdk3\n"
    "CSeq: 8 INVITE\n"
    "Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bK-39234-23523\n"
    "Content-Type: application/sdp\n"
    "Content-Length: 9999\n"
    "\n" + SDP))

invalid["scalarlg"] = (400, msg(
    "REGISTER sip:example.com SIP/2.0\n"
    "Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3\n"
    "To: <sip:user@example.com>\n"
    "From: <sip:user@example.com>;tag=239232jh3\n"
    "CSeq: 36893488147419103232 REGISTER\n"
    "Call-ID: scalarlg.23o0pd9vanlq3wnrlnewofjas9ui32\n"
    "Max-Forwards: 300\n"
    "Expires: 1000000000000000000000000000000000000000000\n"
    "Contact: <sip:user@host129.example.com>\n"
    "  ;expires=280297596632815\n"
    "Content-Length: 0\n"
    "\n"))

invalid["expireslg"] = (400, msg(
    "REGISTER sip:example.com SIP/2.0\n"
    "Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3\n"
    "To: <sip:user@example.com>\n"
    "From: <sip:user@example.com>;tag=239232jh3\n"
    "CSeq: 123 REGISTER\n"
    "Call-ID: expireslg.23o0pd9vanlq3wnrlnewofjas9ui32\n"
    "Max-Forwards: 70\n"
    "Expires: 10000000000000000000\n"
    "Contact: <sip:user@host129.example.com>\n"
    "Content-Length: 0\n"
    "\n"))

invalid["maxfwd300"] = (400, msg(
    "OPTIONS sip:user@example.com SIP/2.0\n"
    "Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3\n"
    "To: <sip:user@example.com>\n"
    "From: <sip:user@example.com>;tag=239232jh3\n"
    "CSeq: 123 OPTIONS\n"
    "Call-ID: maxfwd300.23o0pd9vanlq3wnrlnewofjas9ui32\n"
    "Max-Forwards: 300\n"
    "Content-Length: 0\n"
    "\n"))

invalid["scalar02"] = (400, msg(
    "INVITE sip:user@example.com SIP/2.0\n"
    "Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bK-39234-23523\n"
    "To: sip:j.user@example.com\n"
    "From: sip:caller@example.net;tag=93942939o2\n"
    "Call-ID: scalar02.0ha0isndaksdjweiafasdk3\n"
    "CSeq: 8 INVITE\n"
    "Max-Forwards: 70\n"
    "Content-Length: -999\n"
    "\n"))

invalid["quotbal"] = (400, msg(
    "INVITE sip:user@example.com SIP/2.0\n"
    "To: \"Mr. J. User <sip:j.user@example.com>\n"
    "From: sip:caller@example.net;tag=93334\n"
    "Max-Forwards: 10\n"
    "Call-ID: quotbal.aksdj\n"
    "Contact: <sip:caller@host59.example.net>\n"
    "CSeq: 8 INVITE\n"
    "Via: SIP/2.0/UDP 192.0.2.59:5050;branch=z9hG4bKkdjuw39234\n"
    "Content-Type: application/sdp\n"
    "Content-Length: {CL}\n"
    "\n" + SDP))

invalid["ltgtruri"] = (400, msg(
    "INVITE <sip:user@example.com> SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: sip:caller@example.net;tag=39291\n"
    "Max-Forwards: 23\n"
    "Call-ID: ltgtruri.1@192.0.2.5\n"
    "CSeq: 1 INVITE\n"
    "Via: SIP/2.0/UDP 192.0.2.5\n"
    "Content-Type: application/sdp\n"
    "Content-Length: {CL}\n"
    "\n" + SDP))

invalid["lwsruri"] = (400, msg(
    "INVITE sip:user@example.com; lr SIP/2.0\n"
    "To: sip:user@example.com;tag=3xfe-9921883-z9f\n"
    "From: sip:caller@example.net;tag=231413434\n"
    "Max-Forwards: 5\n"
    "Call-ID: lwsruri.asdfasdoeoi2323-asdfwrn23-asd834rk423\n"
    "CSeq: 2130706432 INVITE\n"
    "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKkdjuw2395\n"
    "Contact: <sip:caller@host1.example.net>\n"
    "Content-Type: application/sdp\n"
    "Content-Length: {CL}\n"
    "\n" + SDP))

invalid["lwsstart"] = (400, msg(
    "INVITE  sip:user@example.com  SIP/2.0\n"
    "Max-Forwards: 8\n"
    "To: sip:user@example.com\n"
    "From: sip:caller@example.net;tag=8814\n"
    "Call-ID: lwsstart.dfknq234oi243099adsdfnawe3@example.com\n"
    "CSeq: 1893884 INVITE\n"
    "Via: SIP/2.0/UDP host1.example.com;branch=z9hG4bKkdjuw3923\n"
    "Contact: <sip:caller@host1.example.net>\n"
    "Content-Type: application/sdp\n"
    "Content-Length: {CL}\n"
    "\n" + SDP))

invalid["trws"] = (400, msg(
    "OPTIONS sip:remote-target@example.com SIP/2.0  \n"
    "Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK299342093\n"
    "To: <sip:remote-target@example.com>\n"
    "From: <sip:local-resource@example.com>;tag=329429089\n"
    "Call-ID: trws.oicu34958239neffasdhr2345r\n"
    "Accept: application/sdp\n"
    "CSeq: 238923 OPTIONS\n"
    "Max-Forwards: 70\n"
    "Content-Length: 0\n"
    "\n"))

invalid["escruri"] = (400, msg(
    "INVITE sip:user@example.com?Route=%3Csip:example.com%3E SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: sip:caller@example.net;tag=341518\n"
    "Max-Forwards: 7\n"
    "Contact: <sip:caller@host39923.example.net>\n"
    "Call-ID: escruri.23940-asdfhj-aje3br-234q098w-fawerh2q-h4n5\n"
    "CSeq: 149209342 INVITE\n"
    "Via: SIP/2.0/UDP host-of-the-hour.example.com;branch=z9hG4bKkdjuw\n"
    "Content-Type: application/sdp\n"
    "Content-Length: {CL}\n"
    "\n" + SDP))

invalid["baddate"] = (400, msg(
    "INVITE sip:user@example.com SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: sip:caller@example.net;tag=2234923\n"
    "Max-Forwards: 70\n"
    "Call-ID: baddate.239423mnsadf3j23lj42--sedfnm234\n"
    "CSeq: 1392934 INVITE\n"
    "Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw\n"
    "Date: Fri, 01 Jan 2010 16:00:00 EST\n"
    "Contact: <sip:caller@host5.example.net>\n"
    "Content-Type: application/sdp\n"
    "Content-Length: {CL}\n"
    "\n" + SDP))

invalid["regbadct"] = (400, msg(
    "REGISTER sip:example.com SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: sip:user@example.com;tag=998332\n"
    "Max-Forwards: 70\n"
    "Call-ID: regbadct.k345asrl3fdbv@10.0.0.1\n"
    "CSeq: 1 REGISTER\n"
    "Via: SIP/2.0/UDP 135.180.130.133:5060;branch=z9hG4bKkdjuw\n"
    "Contact: sip:user@example.com?Route=%3Csip:sip.example.com%3E\n"
    "l: 0\n"
    "\n"))

invalid["badaspec"] = (400, msg(
    "OPTIONS sip:user@example.org SIP/2.0\n"
    "Via: SIP/2.0/UDP host4.example.com:5060;branch=z9hG4bKkdju43234\n"
    "Max-Forwards: 70\n"
    "From: \"Bell, Alexander\" <sip:a.g.bell@example.com>;tag=433423\n"
    "To: \"Watson, Thomas\" < sip:t.watson@example.org >\n"
    "Call-ID: badaspec.sdf0234n2nds0a099u23h3hnnw009cdkne3\n"
    "Accept: application/sdp\n"
    "CSeq: 3923239 OPTIONS\n"
    "l: 0\n"
    "\n"))

invalid["baddn"] = (400, msg(
    "OPTIONS sip:t.watson@example.org SIP/2.0\n"
    "Via:     SIP/2.0/UDP c.example.com:5060;branch=z9hG4bKkdjuw\n"
    "Max-Forwards:      70\n"
    "From:    Bell, Alexander <sip:a.g.bell@example.com>;tag=43\n"
    "To:      Watson, Thomas <sip:t.watson@example.org>\n"
    "Call-ID: baddn.31415@c.example.com\n"
    "Accept: application/sdp\n"
    "CSeq:    3923239 OPTIONS\n"
    "l: 0\n"
    "\n"))

invalid["badvers"] = (505, msg(
    "OPTIONS sip:t.watson@example.org SIP/7.0\n"
    "Via:     SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw\n"
    "Max-Forwards:     70\n"
    "From:    A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe\n"
    "To:      T. Watson <sip:t.watson@example.org>\n"
    "Call-ID: badvers.31417@c.example.com\n"
    "CSeq:    1 OPTIONS\n"
    "l: 0\n"
    "\n"))

invalid["mismatch01"] = (400, msg(
    "OPTIONS sip:user@example.com SIP/2.0\n"
    "To: sip:j.user@example.com\n"
    "From: sip:caller@example.net;tag=34525\n"
    "Max-Forwards: 6\n"
    "Call-ID: mismatch01.dj0234sxdfl3\n"
    "CSeq: 8 INVITE\n"
    "Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw\n"
    "l: 0\n"
    "\n"))

invalid["mismatch02"] = (400, msg(
    "NEWMETHOD sip:user@example.com SIP/2.0\n"
    "To: sip:j.user@example.com\n"
    "From: sip:caller@example.net;tag=34525\n"
    "Max-Forwards: 6\n"
    "Call-ID: mismatch02.dj0234sxdfl3\n"
    "CSeq: 8 INVITE\n"
    "Contact: <sip:caller@host.example.net>\n"
    "Via: SIP/2.0/UDP host.example.net;branch=z9hG4bKkdjuw\n"
    "Content-Type: application/sdp\n"
    "l: {CL}\n"
    "\n" + SDP))

invalid["bigcode"] = (0, msg(
    "SIP/2.0 4294967301 better not break the receiver\n"
    "Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\n"
    "Call-ID: bigcode.asdof3uj203asdnf3429uasdhfas3ehjasdfas9i\n"
    "CSeq: 353494 INVITE\n"
    "From: <sip:user@example.com>;tag=39ansfi3\n"
    "To: <sip:user@example.edu>;tag=902jndnke3\n"
    "Content-Length: 0\n"
    "Contact: <sip:user@host105.example.com>\n"
    "\n"))

invalid["code700"] = (0, msg(
    "SIP/2.0 700 Beyond\n"
    "Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\n"
    "Call-ID: code700.asdof3uj203asdnf\n"
    "CSeq: 353494 INVITE\n"
    "From: <sip:user@example.com>;tag=39ansfi3\n"
    "To: <sip:user@example.edu>;tag=902jndnke3\n"
    "Content-Length: 0\n"
    "\n"))

invalid["respvers"] = (0, msg(
    "SIP/3.0 200 OK\n"
    "Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\n"
    "Call-ID: respvers.asdof3uj203asdnf\n"
    "CSeq: 353494 INVITE\n"
    "From: <sip:user@example.com>;tag=39ansfi3\n"
    "To: <sip:user@example.edu>;tag=902jndnke3\n"
    "Content-Length: 0\n"
    "\n"))

# --- invalid: RFC 4475 §3.2, §3.3 ---------------------------------------------

invalid["badbranch"] = (400, msg(
    "OPTIONS sip:user@example.com SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: sip:caller@example.org;tag=33242\n"
    "Max-Forwards: 3\n"
    "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK\n"
    "Accept: application/sdp\n"
    "Call-ID: badbranch.sadonfo23i420jv0as0derf3j3n\n"
    "CSeq: 8 OPTIONS\n"
    "l: 0\n"
    "\n"))

invalid["insuf"] = (400, msg(
    "INVITE sip:user@example.com SIP/2.0\n"
    "CSeq: 193942 INVITE\n"
    "Via: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf\n"
    "Content-Type: application/sdp\n"
    "l: {CL}\n"
    "\n" + SDP))

invalid["unkscm"] = (416, msg(
    "OPTIONS nobodyKnowsThisScheme:totallyopaquecontent SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: sip:caller@example.net;tag=384\n"
    "Max-Forwards: 3\n"
    "Call-ID: unkscm.nasdfasser0q239nwsdfasdkl34\n"
    "CSeq: 3923423 OPTIONS\n"
    "Via: SIP/2.0/TCP host9.example.com;branch=z9hG4bKkdjuw39234\n"
    "Content-Length: 0\n"
    "\n"))

invalid["novelsc"] = (416, msg(
    "OPTIONS soap.beep://192.0.2.103:3002 SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: sip:caller@example.net;tag=384\n"
    "Max-Forwards: 3\n"
    "Call-ID: novelsc.asdfasser0q239nwsdfasdkl34\n"
    "CSeq: 3923423 OPTIONS\n"
    "Via: SIP/2.0/TCP host9.example.com;branch=z9hG4bKkdjuw39234\n"
    "Content-Length: 0\n"
    "\n"))

invalid["multi01"] = (400, msg(
    "INVITE sip:user@company.com SIP/2.0\n"
    "Contact: <sip:caller@host25.example.net>\n"
    "Via: SIP/2.0/UDP 192.0.2.25;branch=z9hG4bKkdjuw\n"
    "Max-Forwards: 70\n"
    "CSeq: 5 INVITE\n"
    "Call-ID: multi01.98asdh@192.0.2.1\n"
    "CSeq: 59 INVITE\n"
    "Call-ID: multi01.98asdh@192.0.2.2\n"
    "From: sip:caller@example.com;tag=3413415\n"
    "To: sip:user@example.com\n"
    "To: sip:other@example.net\n"
    "From: sip:caller@example.net;tag=2923420123\n"
    "Content-Type: application/sdp\n"
    "l: {CL}\n"
    "Call-ID: multi01.98asdh@192.0.2.3\n"
    "Max-Forwards: 5\n"
    "\n" + SDP))

invalid["mcl01"] = (400, msg(
    "OPTIONS sip:user@example.com SIP/2.0\n"
    "Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bK293423\n"
    "To: sip:user@example.com\n"
    "From: sip:other@example.net;tag=3923942\n"
    "Call-ID: mcl01.fhn2323orihawfdoa3o4r52o3irsdf\n"
    "CSeq: 15932 OPTIONS\n"
    "Content-Length: 13\n"
    "Max-Forwards: 60\n"
    "Content-Length: 5\n"
    "Content-Type: text/plain\n"
    "\n"
    "There's no way to know how many octets are supposed to be here.\n"))

invalid["ipv6-bad"] = (400, msg(
    "REGISTER sip:2001:db8::10 SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: sip:user@example.com;tag=81x2\n"
    "Via: SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111\n"
    "Call-ID: SSG9559905523997077@hlau_4100\n"
    "Max-Forwards: 70\n"
    "CSeq: 98176 REGISTER\n"
    "Content-Length: 0\n"
    "\n"))

invalid["ipv6-unbal"] = (400, msg(
    "OPTIONS sip:user@example.com SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: sip:user@example.com;tag=81x2\n"
    "Via: SIP/2.0/UDP [2001:db8::9:1;branch=z9hG4bKas3-111\n"
    "Call-ID: SSG9559905523997077@hlau_4100\n"
    "Max-Forwards: 70\n"
    "CSeq: 98176 OPTIONS\n"
    "Content-Length: 0\n"
    "\n"))

invalid["escbad"] = (400, msg(
    "OPTIONS sip:user@example.com SIP/2.0\n"
    "To: <sip:us%zzer@example.com>\n"
    "From: sip:user@example.com;tag=81x2\n"
    "Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKas3-111\n"
    "Call-ID: escbad.9559905523997077\n"
    "Max-Forwards: 70\n"
    "CSeq: 98176 OPTIONS\n"
    "Content-Length: 0\n"
    "\n"))

invalid["wildmix"] = (400, msg(
    "REGISTER sip:example.com SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: sip:user@example.com;tag=81x2\n"
    "Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKas3-111\n"
    "Call-ID: wildmix.9559905523997077\n"
    "Max-Forwards: 70\n"
    "CSeq: 98176 REGISTER\n"
    "Contact: *, <sip:user@host.example.com>\n"
    "Expires: 0\n"
    "Content-Length: 0\n"
    "\n"))

invalid["foldfirst"] = (400, msg(
    "OPTIONS sip:user@example.com SIP/2.0\n"
    " To: sip:user@example.com\n"
    "From: sip:user@example.com;tag=81x2\n"
    "Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKas3-111\n"
    "Call-ID: foldfirst.9559905523997077\n"
    "CSeq: 98176 OPTIONS\n"
    "Content-Length: 0\n"
    "\n"))

invalid["barecr"] = (400, msg(
    "OPTIONS sip:user@example.com SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: sip:user@example.com;tag=81x2\n"
    "Subject: a\rb\n"
    "Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKas3-111\n"
    "Call-ID: barecr.9559905523997077\n"
    "CSeq: 98176 OPTIONS\n"
    "Content-Length: 0\n"
    "\n"))

invalid["noblank"] = (400,
    b"OPTIONS sip:user@example.com SIP/2.0\r\n"
    b"To: sip:user@example.com\r\n"
    b"From: sip:user@example.com;tag=81x2\r\n"
    b"Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKas3-111\r\n"
    b"Call-ID: noblank.9559905523997077\r\n"
    b"CSeq: 98176 OPTIONS\r\n")

many = "".join(f"X-Filler-{i}: {i}\n" for i in range(300))
invalid["manyhdrs"] = (513, msg(
    "OPTIONS sip:user@example.com SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: sip:user@example.com;tag=81x2\n"
    "Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKas3-111\n"
    "Call-ID: manyhdrs.9559905523997077\n"
    "CSeq: 98176 OPTIONS\n" + many +
    "Content-Length: 0\n"
    "\n"))

invalid["longhdr"] = (513, msg(
    "OPTIONS sip:user@example.com SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: sip:user@example.com;tag=81x2\n"
    "Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKas3-111\n"
    "Call-ID: longhdr.9559905523997077\n"
    "CSeq: 98176 OPTIONS\n"
    "X-Long: " + "a" * 9000 + "\n"
    "Content-Length: 0\n"
    "\n"))

# The fault each invalid message must be rejected for (a part of the reason).
FAULTS = {
    'badaspec': 'malformed To',
    'badbranch': 'empty Via branch',
    'baddate': 'malformed Date',
    'baddn': 'malformed From',
    'badinv01': 'malformed Via',
    'badvers': 'SIP version',
    'barecr': 'bare CR',
    'bigcode': 'malformed status code',
    'clerr': 'Content-Length does not match body',
    'code700': 'status code out of range',
    'escbad': 'malformed To',
    'escruri': 'headers in Request-URI',
    'expireslg': 'malformed Expires',
    'foldfirst': 'continuation line',
    'insuf': 'missing',
    'ipv6-bad': 'malformed Request-URI',
    'ipv6-unbal': 'malformed Via',
    'longhdr': 'header too long',
    'ltgtruri': 'malformed Request-URI',
    'lwsruri': 'malformed Request-URI',
    'lwsstart': 'malformed Request-URI',
    'manyhdrs': 'too many headers',
    'maxfwd300': 'Max-Forwards',
    'mcl01': 'conflicting Content-Length',
    'mismatch01': 'CSeq method does not match',
    'mismatch02': 'CSeq method does not match',
    'multi01': 'conflicting',
    'noblank': 'no empty line',
    'novelsc': 'Request-URI scheme',
    'quotbal': 'malformed To',
    'regbadct': 'malformed Contact',
    'respvers': 'SIP version',
    'scalar02': 'malformed Content-Length',
    'scalarlg': 'CSeq number out of range',
    'trws': 'malformed request line',
    'unkscm': 'Request-URI scheme',
    'wildmix': 'malformed Contact',
}


def write(folder, name, data):
    path = os.path.join(HERE, folder, name + ".sip")
    with open(path, "wb") as f:
        f.write(data)


def main():
    for folder in ("valid", "invalid"):
        os.makedirs(os.path.join(HERE, folder), exist_ok=True)
        for old in os.listdir(os.path.join(HERE, folder)):
            if old.endswith(".sip"):
                os.remove(os.path.join(HERE, folder, old))
    for name, data in valid.items():
        write("valid", name, data)
    lines = []
    for name, (status, data) in sorted(invalid.items()):
        write("invalid", name, data)
        lines.append(f"{name} {status} {FAULTS[name]}\n")
    with open(os.path.join(HERE, "invalid", "expected.txt"), "w") as f:
        f.write("# file status fault: what sip_msg_parse reports (status 0: drop, no\n"
                "# answer; fault: part of the reason phrase). Written by make_corpus.py.\n")
        f.writelines(lines)


if __name__ == "__main__":
    main()
