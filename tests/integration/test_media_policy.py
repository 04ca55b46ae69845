#!/usr/bin/python3
"""The media encryption policy (issue #5) on calls through Parley, driven
with the test client (tests/lib/sipclient.py).

What is checked, per media.encryption_level:

- required (the default): SRTP offers and answers pass; a plain RTP offer
  gets 488 with a Warning saying why; an optional-SRTP offer (RTP/AVP with
  a=crypto, RFC 8643) passes and its answer must select SRTP; an answer
  that breaks the policy is never forwarded -- in a 2xx the answerer gets
  ACK and BYE with a Reason and the caller 488 (unless another forked
  branch still may answer), in a reliable 183 the branch is cancelled, in
  the ACK of a late offer both sides get a BYE.
- supported: unencrypted calls work and are logged as unencrypted.
- not_supported: offers that demand SRTP get 488; a=crypto is removed
  from optional-SRTP offers.
- whatever the level: SDES keys only over TLS (a=crypto arriving over the
  internal plain-TCP listener is refused; toward a device attached over
  TCP, required keys get 488 and optional ones are removed).
- visibility: the call log (`parleyctl calls --json`, media per section),
  `parleyctl status --json` (the level in force), reload changing the level.

Every test has its own parleyd, state directory and ports. Callers and
callees are separate SipClients on separate connections; a callee never
listens, so what reaches it came over the connection it registered on. The
caller's INVITEs are sent without blocking (send_authed) once its client
holds the server's 407 challenge (prime), so one thread plays every party.
"""
from __future__ import annotations

import base64
import re
import secrets
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

import sipclient
from harness import TIMEOUT_SCALE, Parley, free_port
from sipclient import Dialog, NameAddr, SipMessage, SipTimeout, make_sdp

DOMAIN = "example.test"
USERS = {"alice": "alice-secret", "bob": "bob-secret"}
BOB = f"sip:bob@{DOMAIN}"
SUITE = "AES_CM_128_HMAC_SHA1_80"

# The reasons media/policy.c gives (the Warning text, the BYE's Reason, the
# log and the call log all carry them).
W_OFFER_PLAIN = "media encryption required (SDES-SRTP or DTLS-SRTP): audio offers no encryption (RTP/AVP without a=crypto)"
W_ANSWER_PLAIN = "media encryption required (SDES-SRTP or DTLS-SRTP): audio answer carries no encryption (RTP/AVP without a=crypto)"
W_KEYS_IN = "SDES keys received over an unencrypted hop"
W_KEYS_OUT_SAVP = "SDES keys cannot be sent over an unencrypted hop (audio RTP/SAVP)"
W_NOT_SUPPORTED = "media encryption not supported (plain RTP only): audio offers SDES (RTP/SAVP)"

POOL = ThreadPoolExecutor(max_workers=4)


def scaled(t: float) -> float:
    return t * TIMEOUT_SCALE


def server(name: str, config: dict | None = None, **kw) -> Parley:
    return Parley(name=name, users=USERS, config=config or {}, **kw)


# --- SDP ---------------------------------------------------------------


def key(nbytes: int = 30) -> str:
    return base64.b64encode(secrets.token_bytes(nbytes)).decode()


def crypto(tag: int = 1, suite: str = SUITE, nbytes: int = 30) -> str:
    return f"{tag} {suite} inline:{key(nbytes)}"


def srtp_sdp(port: int = 40000, suite: str = SUITE, tag: int = 1, nbytes: int = 30) -> str:
    """RTP/SAVP with one a=crypto: SRTP demanded."""
    return make_sdp(port=port, crypto=crypto(tag, suite, nbytes))


def optional_sdp(port: int = 40000) -> str:
    """RTP/AVP with a=crypto: SRTP offered, plain RTP acceptable (RFC 8643)."""
    return make_sdp(port=port, crypto=False, extra=[f"a=crypto:{crypto()}"])


def plain_sdp(port: int = 40000) -> str:
    return make_sdp(port=port, crypto=False)


def sdp_profile(msg: SipMessage) -> list[str]:
    """The transport profile of each m= line of msg's body."""
    return re.findall(r"(?m)^m=\w+ \d+ (\S+)", msg.text)


def has_crypto(msg: SipMessage) -> bool:
    return re.search(r"(?m)^a=crypto:", msg.text) is not None


# --- SIP helpers (as in test_registrar_proxy.py) ------------------------


def register(p: Parley, user: str, **kw) -> sipclient.SipClient:
    c = p.client(user)
    r = c.register(expires=600)
    if r.status != 200:
        c.close()
        raise AssertionError(f"{user} could not register: {r.summary()}")
    return c


def tcp_client(p: Parley, user: str, port: int) -> sipclient.SipClient:
    conn = sipclient.SipConnection(p.address, port, transport="tcp", name=f"{user}-tcp")
    return sipclient.SipClient(conn, user=user, domain=p.domain, password=p.users[user])


def register_tcp(p: Parley, user: str, port: int) -> sipclient.SipClient:
    c = tcp_client(p, user, port)
    r = c.register(expires=600)
    if r.status != 200:
        c.close()
        raise AssertionError(f"{user} could not register over TCP: {r.summary()}")
    return c


def prime(c: sipclient.SipClient) -> None:
    """Get the server's 407 challenge into c's cache so that send_authed can
    send requests with credentials up front."""
    r = c.message(f"sip:nobody-prime@{DOMAIN}", "prime")
    if r.status != 404 or not any(k[0] for k in c.auth_cache):
        raise AssertionError(f"priming credentials failed: {r.summary()}")


def send_authed(c: sipclient.SipClient, method: str, uri: str, **build) -> SipMessage:
    req = c.build_request(method, uri, **build)
    for ch in c.auth_cache.values():
        if ch.proxy:
            req.add_header("Proxy-Authorization", c.authorization_for(ch, method, req.uri or ""))
    c.send(req)
    return req


def invite(c: sipclient.SipClient, body: str | None, uri: str = BOB, **build) -> SipMessage:
    """An INVITE with body as its offer (None: no SDP, a late offer)."""
    if body is not None:
        build["body"] = body
        build["content_type"] = "application/sdp"
    return send_authed(c, "INVITE", uri, **build)


def no_message(c: sipclient.SipClient, wait: float = 0.5) -> None:
    m = c.conn.try_recv(scaled(wait))
    if m is not None:
        raise AssertionError(f"unexpected message: {m.summary()}\n{m}")


def no_final_response(c: sipclient.SipClient, req: SipMessage, wait: float = 0.5) -> list[SipMessage]:
    """Nothing final to req for a while; returns the provisional responses seen."""
    seen: list[SipMessage] = []
    deadline = time.monotonic() + scaled(wait)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return seen
        try:
            r = c.wait_response(req, timeout=remaining, final=False)
        except SipTimeout:
            return seen
        if (r.status or 0) >= 200:
            raise AssertionError(f"unexpected final response: {r.summary()}\n{r}")
        seen.append(r)


def wait_until(pred, timeout: float, what: str):
    deadline = time.monotonic() + scaled(timeout)
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def calls(p: Parley) -> list[dict]:
    res = p.ctl("calls", json=True)
    if res.returncode != 0:
        raise AssertionError(f"parleyctl calls failed: {res.stderr}")
    return res.stdout["calls"]


def call_record(p: Parley, call_id: str, timeout: float = 5) -> dict:
    def find():
        return [c for c in calls(p) if c["call_id"] == call_id]
    return wait_until(find, timeout, f"call {call_id} in the call log")[0]


def media_row(p: Parley) -> dict:
    res = p.ctl("status", json=True)
    if res.returncode != 0:
        raise AssertionError(f"parleyctl status failed: {res.stderr}")
    rows = [r for r in res.stdout["protection"] if r["traffic"].startswith("audio, video")]
    if len(rows) != 1:
        raise AssertionError(f"no single media row in status: {res.stdout['protection']}")
    return rows[0]


class MediaTestCase(unittest.TestCase):
    def assertWarning(self, resp: SipMessage, text: str) -> None:
        """Warning: 399 example.test "text" (RFC 3261 §20.43)."""
        warnings = resp.headers("Warning")
        self.assertEqual(warnings, [f'399 {DOMAIN} "{text}"'], resp)

    def assertReason(self, bye: SipMessage, text: str) -> None:
        self.assertEqual(bye.header("Reason"), f'SIP;cause=488;text="{text}"', bye)

    def refused_offer(self, p: Parley, a: sipclient.SipClient, body: str | None,
                      warning: str, *callees: sipclient.SipClient) -> SipMessage:
        """a's INVITE with body is answered 488 with warning; no callee got it."""
        inv = invite(a, body)
        r = a.wait_response(inv)
        a.ack(inv, r)
        self.assertEqual(r.status, 488, r)
        self.assertEqual(r.reason, "Not Acceptable Here")
        self.assertWarning(r, warning)
        for c in callees:
            no_message(c, 0.3)
        rec = call_record(p, inv.call_id)
        self.assertEqual(rec["answered"], "-")
        self.assertEqual(rec["reason"], f"488 Not Acceptable Here: {warning}")
        p.wait_log("media.refused", call_id=inv.call_id, sdp="offer", reason=warning)
        return inv

    def call(self, a: sipclient.SipClient, b: sipclient.SipClient, offer: str | None,
             answer: str | None) -> tuple[SipMessage, SipMessage, SipMessage, Dialog, Dialog]:
        """a calls bob, b answers 200 with answer; returns (INVITE as sent,
        INVITE as bob got it, the 200 as alice got it, a's dialog, b's dialog)."""
        inv = invite(a, offer)
        i = b.wait_request("INVITE")
        db = b.answer(i, 200, body=answer or b"")
        resp = a.wait_response(inv)
        self.assertEqual(resp.status, 200, resp)
        a.ack(inv, resp)
        b.wait_request("ACK")
        return inv, i, resp, Dialog.from_uac(inv, resp), db

    def refused_2xx(self, a: sipclient.SipClient, b: sipclient.SipClient, inv: SipMessage,
                    warning: str) -> SipMessage:
        """After b's 2xx that broke the policy: b gets the ACK, then a BYE
        with the reason; a gets 488 with the warning (returned)."""
        b.wait_request("ACK")
        bye = b.wait_request("BYE")
        self.assertReason(bye, warning)
        b.respond(bye, 200)
        r = a.wait_response(inv)
        a.ack(inv, r)
        self.assertEqual(r.status, 488, r)
        self.assertWarning(r, warning)
        return r

    def hang_up(self, a: sipclient.SipClient, da: Dialog, b: sipclient.SipClient) -> None:
        fut = POOL.submit(a.bye, da)
        bye = b.wait_request("BYE")
        b.respond(bye, 200)
        self.assertEqual(fut.result(scaled(10)).status, 200)


# ---------------------------------------------------------------------------
# required (the default)
# ---------------------------------------------------------------------------


class TestRequired(MediaTestCase):
    def test_srtp_offer_and_answer_pass(self):
        with server("mp-req-srtp") as p:
            p.start()
            with register(p, "bob") as b, register(p, "alice") as a:
                prime(a)
                offer = srtp_sdp()
                inv, i, resp, da, db = self.call(a, b, offer, srtp_sdp(port=40002))
                # neither offer nor answer is touched
                self.assertEqual(i.text, offer)
                self.assertEqual(sdp_profile(resp), ["RTP/SAVP"])
                self.assertTrue(has_crypto(resp))
                self.hang_up(a, da, b)
                rec = call_record(p, inv.call_id)
                self.assertEqual(rec["reason"], "BYE from caller")
                self.assertEqual(rec.get("media"), f"audio SRTP {SUITE}", rec)

    def test_plain_offer_refused_with_warning(self):
        with server("mp-req-plain") as p:
            p.start()
            with register(p, "bob") as b, register(p, "alice") as a:
                prime(a)
                self.refused_offer(p, a, plain_sdp(), W_OFFER_PLAIN, b)
                self.assertEqual(p.ctl("status", json=True).stdout["daemon"]["dialogs"], 0)

    def test_optional_offer_passes_and_its_answer_must_select_srtp(self):
        with server("mp-req-osrtp") as p:
            p.start()
            with register(p, "bob") as b, register(p, "alice") as a:
                prime(a)
                offer = optional_sdp()
                inv, i, resp, da, db = self.call(a, b, offer, optional_sdp(port=40002))
                self.assertEqual(i.text, offer)  # passed unchanged
                self.assertEqual(sdp_profile(resp), ["RTP/AVP"])
                self.assertTrue(has_crypto(resp))
                self.hang_up(a, da, b)
                self.assertEqual(call_record(p, inv.call_id).get("media"), f"audio SRTP {SUITE}")

                # the same offer answered without keys: refused like any plain answer
                inv = invite(a, optional_sdp())
                i = b.wait_request("INVITE")
                b.answer(i, 200, body=plain_sdp(port=40002))
                self.refused_2xx(a, b, inv, W_ANSWER_PLAIN)

    def test_plain_reinvite_refused_and_the_call_goes_on(self):
        # a re-INVITE is an offer like any other; refusing it changes nothing
        # in the established call (RFC 3261 §14.1: the old session stays)
        with server("mp-req-reinvite") as p:
            p.start()
            with register(p, "bob") as b, register(p, "alice") as a:
                prime(a)
                inv, i, resp, da, db = self.call(a, b, srtp_sdp(), srtp_sdp(port=40002))
                r = a.request_in_dialog(da, "INVITE", body=plain_sdp(port=40006),
                                        content_type="application/sdp", contact=True)
                self.assertEqual(r.status, 488, r)
                self.assertWarning(r, W_OFFER_PLAIN)
                no_message(b)
                # an SRTP re-INVITE still goes through, then the call ends normally
                fut = POOL.submit(a.request_in_dialog, da, "INVITE", body=srtp_sdp(port=40006),
                                  content_type="application/sdp", contact=True)
                ri = b.wait_request("INVITE")
                b.respond(ri, 200, body=srtp_sdp(port=40008), content_type="application/sdp")
                self.assertEqual(fut.result(scaled(10)).status, 200)
                b.wait_request("ACK")
                self.hang_up(a, da, b)
                self.assertEqual(call_record(p, inv.call_id)["reason"], "BYE from caller")

    def test_null_and_unknown_suites_do_not_count(self):
        # media.srtp_suites: NULL cipher, NULL authentication and unknown
        # suites never count as encryption, nor does a suite left out
        with server("mp-req-suites",
                    {"media.srtp_suites": "AEAD_AES_256_GCM"}) as p:
            p.start()
            with register(p, "bob") as b, register(p, "alice") as a:
                prime(a)
                for body, why in [
                    (srtp_sdp(suite="NULL_HMAC_SHA1_80"),
                     "SRTP suite NULL_HMAC_SHA1_80 does not encrypt"),
                    (srtp_sdp(suite="FANCY_NEW_SUITE"), "unknown SRTP suite FANCY_NEW_SUITE"),
                    (srtp_sdp(), f"SRTP suite {SUITE} not allowed"),
                ]:
                    with self.subTest(why=why):
                        self.refused_offer(p, a, body,
                                           f"media encryption required (SDES-SRTP or DTLS-SRTP): audio offers SDES ({why})",
                                           b)
                # the allowed suite (AEAD_AES_256_GCM: 32-byte key, 12-byte salt)
                inv, i, resp, da, db = self.call(
                    a, b, srtp_sdp(suite="AEAD_AES_256_GCM", nbytes=44),
                    srtp_sdp(port=40002, suite="AEAD_AES_256_GCM", nbytes=44))
                self.hang_up(a, da, b)
                self.assertEqual(call_record(p, inv.call_id).get("media"),
                                 "audio SRTP AEAD_AES_256_GCM")


# ---------------------------------------------------------------------------
# Unacceptable answers (issue #5, item 3)
# ---------------------------------------------------------------------------


class TestUnacceptableAnswers(MediaTestCase):
    def test_2xx_answer_dropping_srtp(self):
        # bob's 200 answers the SRTP offer with plain RTP: it never reaches
        # alice; bob gets ACK and BYE with the Reason, alice 488
        with server("mp-ans-2xx") as p:
            p.start()
            with register(p, "bob") as b, register(p, "alice") as a:
                prime(a)
                inv = invite(a, srtp_sdp())
                i = b.wait_request("INVITE")
                b.respond(i, 180)
                ok = b.respond(i, 200, body=plain_sdp(port=40002), content_type="application/sdp")
                ack = b.wait_request("ACK")
                self.assertEqual(ack.call_id, inv.call_id)
                self.assertEqual(ack.cseq.number, i.cseq.number)
                self.assertEqual(ack.from_tag, inv.from_tag)
                self.assertEqual(ack.to_tag, ok.to_tag)
                self.assertEqual(ack.uri, b.contact_uri())
                bye = b.wait_request("BYE")
                self.assertEqual(bye.call_id, inv.call_id)
                self.assertEqual(bye.from_tag, inv.from_tag)
                self.assertEqual(bye.to_tag, ok.to_tag)
                self.assertGreater(bye.cseq.number, i.cseq.number)
                self.assertEqual(bye.uri, b.contact_uri())
                self.assertReason(bye, W_ANSWER_PLAIN)
                b.respond(bye, 200)

                r = a.wait_response(inv)
                a.ack(inv, r)
                self.assertEqual(r.status, 488, r)
                self.assertWarning(r, W_ANSWER_PLAIN)
                self.assertFalse([x for x in r.provisional if x.status == 200])
                no_message(a)  # no 200, no BYE: alice never had a dialog
                no_message(b, 0.2)

                p.wait_log("media.answer_refused", call_id=inv.call_id, reason=W_ANSWER_PLAIN)
                rec = call_record(p, inv.call_id)
                self.assertEqual(rec["answered"], "-")
                self.assertEqual(rec["reason"], f"488 Not Acceptable Here: {W_ANSWER_PLAIN}")
                self.assertEqual(p.ctl("status", json=True).stdout["daemon"]["dialogs"], 0)

    def test_reliable_provisional_with_plain_answer_cancels_the_branch(self):
        with server("mp-ans-100rel") as p:
            p.start()
            with register(p, "bob") as b, register(p, "alice") as a:
                prime(a)
                inv = invite(a, srtp_sdp(), headers={"Supported": "100rel"})
                i = b.wait_request("INVITE")
                b.respond(i, 183, headers={"Require": "100rel", "RSeq": "1"},
                          body=plain_sdp(port=40002), content_type="application/sdp")
                c = b.wait_request("CANCEL")
                self.assertEqual(c.branch, i.branch)
                self.assertRegex(c.header("Reason") or "", r"^SIP\s*;\s*cause=488\b", c)
                b.respond(c, 200)
                b.respond(i, 487)
                b.wait_request("ACK")

                r = a.wait_response(inv)
                a.ack(inv, r)
                # the refused 183 never reached alice
                self.assertEqual([x.status for x in r.provisional if x.status != 100], [], r)
                self.assertEqual(r.status, 488, f"the caller must get 488 (the only branch was "
                                                f"cancelled for its media), got:\n{r}")
                self.assertWarning(r, W_ANSWER_PLAIN)
                p.wait_log("media.refused", call_id=inv.call_id, sdp="answer", reason=W_ANSWER_PLAIN)
                rec = call_record(p, inv.call_id)
                self.assertEqual(rec["answered"], "-")
                self.assertEqual(rec["reason"], f"488 Not Acceptable Here: {W_ANSWER_PLAIN}")

    def test_reliable_provisional_refused_on_one_branch_of_two(self):
        # the other device still answers: the call is set up with it
        with server("mp-ans-100rel-fork") as p:
            p.start()
            with register(p, "bob") as b1, register(p, "bob") as b2, register(p, "alice") as a:
                prime(a)
                inv = invite(a, srtp_sdp(), headers={"Supported": "100rel"})
                i1 = b1.wait_request("INVITE")
                i2 = b2.wait_request("INVITE")
                b1.respond(i1, 183, headers={"Require": "100rel", "RSeq": "1"},
                           body=plain_sdp(port=40002), content_type="application/sdp")
                c1 = b1.wait_request("CANCEL")
                self.assertEqual(c1.branch, i1.branch)
                b1.respond(c1, 200)
                b1.respond(i1, 487)
                b1.wait_request("ACK")
                early = no_final_response(a, inv)
                d2 = b2.answer(i2, 200, body=srtp_sdp(port=40004))
                resp = a.wait_response(inv)
                self.assertEqual(resp.status, 200, resp)
                self.assertEqual(resp.to_tag, NameAddr.parse(d2.local_header).tag)
                # the refused 183 never reached alice
                self.assertNotIn(183, [x.status for x in early + resp.provisional])
                a.ack(inv, resp)
                b2.wait_request("ACK")
                self.hang_up(a, Dialog.from_uac(inv, resp), b2)
                self.assertEqual(call_record(p, inv.call_id).get("media"), f"audio SRTP {SUITE}")

    def test_late_offer_answered_plain_in_the_ack(self):
        # INVITE without SDP; bob's 200 offers SRTP; alice's ACK answers
        # with plain RTP: the dialog ends with a BYE to each side
        with server("mp-ans-late") as p:
            p.start()
            with register(p, "bob") as b, register(p, "alice") as a:
                prime(a)
                inv = invite(a, None)
                i = b.wait_request("INVITE")
                self.assertEqual(i.body, b"")
                ok = b.respond(i, 200, body=srtp_sdp(port=40002), content_type="application/sdp")
                resp = a.wait_response(inv)
                self.assertEqual(resp.status, 200, resp)
                self.assertEqual(sdp_profile(resp), ["RTP/SAVP"])
                da = Dialog.from_uac(inv, resp)
                ack = a.build_in_dialog(da, "ACK", cseq=inv.cseq.number, body=plain_sdp(),
                                        content_type="application/sdp")
                a.send(ack)

                got = b.wait_request("ACK")
                self.assertEqual(got.call_id, inv.call_id)
                self.assertEqual(got.body, b"", got)  # the refused answer is not passed on
                bye_b = b.wait_request("BYE")
                self.assertEqual((bye_b.from_tag, bye_b.to_tag), (inv.from_tag, ok.to_tag))
                self.assertEqual(bye_b.uri, b.contact_uri())
                self.assertReason(bye_b, W_ANSWER_PLAIN)
                b.respond(bye_b, 200)
                bye_a = a.wait_request("BYE")
                self.assertEqual(bye_a.call_id, inv.call_id)
                self.assertEqual((bye_a.from_tag, bye_a.to_tag), (ok.to_tag, inv.from_tag))
                self.assertEqual(bye_a.uri, a.contact_uri())
                self.assertReason(bye_a, W_ANSWER_PLAIN)
                a.respond(bye_a, 200)

                p.wait_log("media.refused", call_id=inv.call_id, sdp="answer", reason=W_ANSWER_PLAIN)
                rec = call_record(p, inv.call_id)
                self.assertNotEqual(rec["answered"], "-")
                self.assertEqual(rec["reason"], f"488 media refused in the ACK: {W_ANSWER_PLAIN}")
                self.assertEqual(p.ctl("status", json=True).stdout["daemon"]["dialogs"], 0)
                # the dialog is gone
                r = a.request_in_dialog(da, "INFO")
                self.assertEqual(r.status, 481, r)

    def test_late_offer_answered_srtp_in_the_ack(self):
        with server("mp-ans-late-ok") as p:
            p.start()
            with register(p, "bob") as b, register(p, "alice") as a:
                prime(a)
                inv = invite(a, None)
                i = b.wait_request("INVITE")
                db = b.answer(i, 200, body=srtp_sdp(port=40002))
                resp = a.wait_response(inv)
                self.assertEqual(resp.status, 200, resp)
                da = Dialog.from_uac(inv, resp)
                answer = srtp_sdp()
                a.send(a.build_in_dialog(da, "ACK", cseq=inv.cseq.number, body=answer,
                                         content_type="application/sdp"))
                got = b.wait_request("ACK")
                self.assertEqual(got.text, answer)
                no_message(a)
                no_message(b, 0.2)
                self.hang_up(a, da, b)
                rec = call_record(p, inv.call_id)
                self.assertEqual(rec["reason"], "BYE from caller")
                self.assertEqual(rec.get("media"), f"audio SRTP {SUITE}")

    def test_late_offer_plain_in_the_2xx(self):
        # the 2xx carries the offer: a plain one is refused like any offer
        with server("mp-ans-late-plain") as p:
            p.start()
            with register(p, "bob") as b, register(p, "alice") as a:
                prime(a)
                inv = invite(a, None)
                i = b.wait_request("INVITE")
                b.respond(i, 200, body=plain_sdp(port=40002), content_type="application/sdp")
                self.refused_2xx(a, b, inv, W_OFFER_PLAIN)

    def test_retransmitted_refused_2xx_is_not_forwarded(self):
        # bob's plain 200 is retransmitted (as a UAS does until the ACK
        # arrives): the copy must not reach alice either
        with server("mp-ans-2xx-rtx") as p:
            p.start()
            with register(p, "bob") as b, register(p, "alice") as a:
                prime(a)
                inv = invite(a, srtp_sdp())
                i = b.wait_request("INVITE")
                ok = b.respond(i, 200, body=plain_sdp(port=40002), content_type="application/sdp")
                b.wait_request("ACK")
                b.send(ok)  # the retransmission, byte for byte
                bye = b.wait_request("BYE")
                b.respond(bye, 200)
                # each retransmission of the 2xx is acknowledged again (RFC
                # 3261 §13.2.2.4); that is all bob gets
                again = b.wait_request("ACK", timeout=2)
                self.assertEqual(again.call_id, ok.call_id)
                r = a.wait_response(inv)
                a.ack(inv, r)
                self.assertEqual(r.status, 488, r)
                no_message(a, 1.0)
                no_message(b, 0.2)

    def test_retransmitted_refused_2xx_while_another_branch_rings(self):
        # the same, while bob's other device still rings: alice's INVITE is
        # still open, and the copy of the refused 2xx must not get through
        with server("mp-ans-2xx-rtx-fork") as p:
            p.start()
            with register(p, "bob") as b1, register(p, "bob") as b2, register(p, "alice") as a:
                prime(a)
                inv = invite(a, srtp_sdp())
                i1 = b1.wait_request("INVITE")
                i2 = b2.wait_request("INVITE")
                b2.respond(i2, 180)
                ok1 = b1.respond(i1, 200, body=plain_sdp(port=40002),
                                 content_type="application/sdp")
                b1.wait_request("ACK")
                b1.send(ok1)  # retransmitted
                b1.respond(b1.wait_request("BYE"), 200)
                try:
                    early = no_final_response(a, inv, 1.0)
                except AssertionError as e:
                    self.fail(f"the retransmission of the refused 2xx reached alice: {e}")
                self.assertNotIn(ok1.to_tag, [r.to_tag for r in early])
                d2 = b2.answer(i2, 200, body=srtp_sdp(port=40004))
                resp = a.wait_response(inv)
                self.assertEqual(resp.status, 200, resp)
                self.assertEqual(resp.to_tag, NameAddr.parse(d2.local_header).tag)
                a.ack(inv, resp)
                b2.wait_request("ACK")
                no_message(a)
                self.hang_up(a, Dialog.from_uac(inv, resp), b2)

    def test_unreliable_provisional_loses_its_plain_sdp(self):
        # a 183 without 100rel does not bind: it goes on without the SDP
        with server("mp-ans-183") as p:
            p.start()
            with register(p, "bob") as b, register(p, "alice") as a:
                prime(a)
                inv = invite(a, srtp_sdp())
                i = b.wait_request("INVITE")
                b.respond(i, 183, body=plain_sdp(port=40002), content_type="application/sdp")
                r183 = a.wait_response(inv, final=False)
                while r183.status == 100:
                    r183 = a.wait_response(inv, final=False)
                self.assertEqual(r183.status, 183, r183)
                self.assertEqual(r183.body, b"", r183)
                db = b.answer(i, 200, body=srtp_sdp(port=40002))
                resp = a.wait_response(inv)
                self.assertEqual(resp.status, 200, resp)
                a.ack(inv, resp)
                b.wait_request("ACK")
                self.hang_up(a, Dialog.from_uac(inv, resp), b)
                self.assertEqual(call_record(p, inv.call_id).get("media"), f"audio SRTP {SUITE}")

    def test_reinvite_answered_plain(self):
        # an established SRTP call; alice's re-INVITE offers SRTP again and
        # bob's 200 answers plain: not forwarded, bob gets ACK and BYE, alice
        # 488 -- and the call is over, for alice and the call log too
        with server("mp-ans-reinvite") as p:
            p.start()
            with register(p, "bob") as b, register(p, "alice") as a:
                prime(a)
                inv, i, resp, da, db = self.call(a, b, srtp_sdp(), srtp_sdp(port=40002))
                re_inv = a.build_in_dialog(da, "INVITE", body=srtp_sdp(port=40006),
                                           content_type="application/sdp", contact=True)
                a.send(re_inv)
                ri = b.wait_request("INVITE")
                b.respond(ri, 200, body=plain_sdp(port=40008), content_type="application/sdp")
                ack = b.wait_request("ACK")
                self.assertEqual(ack.cseq.number, ri.cseq.number)
                bye_b = b.wait_request("BYE")
                self.assertReason(bye_b, W_ANSWER_PLAIN)
                b.respond(bye_b, 200)
                r = a.wait_response(re_inv)
                self.assertEqual(r.status, 488, r)
                a.ack(re_inv, r)
                self.assertWarning(r, W_ANSWER_PLAIN)
                # bob's side of the call is gone: so must alice's be
                try:
                    bye_a = a.wait_request("BYE")
                except SipTimeout:
                    self.fail("Parley sent bob a BYE but left alice's side up: no BYE to alice; "
                              f"dialogs in Parley: {p.ctl('status', json=True).stdout['daemon']['dialogs']}, "
                              f"call log: {calls(p)}")
                self.assertReason(bye_a, W_ANSWER_PLAIN)
                a.respond(bye_a, 200)
                rec = call_record(p, inv.call_id)
                self.assertIn(W_ANSWER_PLAIN, rec["reason"])
                self.assertEqual(p.ctl("status", json=True).stdout["daemon"]["dialogs"], 0)

    def test_update_answered_plain_gets_no_ack(self):
        # UPDATE (RFC 3311) is not answered with an ACK: a refused answer in
        # its 2xx ends the call with BYE alone
        with server("mp-ans-update") as p:
            p.start()
            with register(p, "bob") as b, register(p, "alice") as a:
                prime(a)
                inv, i, resp, da, db = self.call(a, b, srtp_sdp(), srtp_sdp(port=40002))
                upd = a.build_in_dialog(da, "UPDATE", body=srtp_sdp(port=40006),
                                        content_type="application/sdp", contact=True)
                a.send(upd)
                u = b.wait_request("UPDATE")
                # (RFC 3311 §5.2: a 2xx to UPDATE carries a Contact)
                b.respond(u, 200, body=plain_sdp(port=40008), content_type="application/sdp",
                          contact=True)
                m = b.wait_request()
                self.assertEqual(m.method, "BYE", f"bob got {m.summary()} for his 200 to UPDATE")
                self.assertReason(m, W_ANSWER_PLAIN)
                b.respond(m, 200)
                r = a.wait_response(upd)
                self.assertEqual(r.status, 488, r)
                self.assertWarning(r, W_ANSWER_PLAIN)

    def test_reinvite_late_offer_answered_plain_in_the_ack(self):
        # every answer counts, the ACK of an in-dialog late offer too
        with server("mp-ans-re-late") as p:
            p.start()
            with register(p, "bob") as b, register(p, "alice") as a:
                prime(a)
                inv, i, resp, da, db = self.call(a, b, srtp_sdp(), srtp_sdp(port=40002))
                re_inv = a.build_in_dialog(da, "INVITE", contact=True)
                a.send(re_inv)
                ri = b.wait_request("INVITE")
                b.respond(ri, 200, body=srtp_sdp(port=40008), content_type="application/sdp")
                r = a.wait_response(re_inv)
                self.assertEqual(r.status, 200, r)
                a.send(a.build_in_dialog(da, "ACK", cseq=re_inv.cseq.number, body=plain_sdp(),
                                         content_type="application/sdp"))
                got = b.wait_request("ACK")
                self.assertEqual(got.body, b"", f"the plain answer in the ACK was passed on:\n{got}")
                bye_b = b.wait_request("BYE")
                self.assertReason(bye_b, W_ANSWER_PLAIN)
                b.respond(bye_b, 200)
                bye_a = a.wait_request("BYE")
                self.assertReason(bye_a, W_ANSWER_PLAIN)
                a.respond(bye_a, 200)
                rec = call_record(p, inv.call_id)
                self.assertEqual(rec["reason"], f"488 media refused in the ACK: {W_ANSWER_PLAIN}")

    def test_fork_one_device_answers_plain_the_other_srtp(self):
        with server("mp-ans-fork") as p:
            p.start()
            with register(p, "bob") as b1, register(p, "bob") as b2, register(p, "alice") as a:
                prime(a)
                inv = invite(a, srtp_sdp())
                i1 = b1.wait_request("INVITE")
                i2 = b2.wait_request("INVITE")
                ok1 = b1.respond(i1, 200, body=plain_sdp(port=40002),
                                 content_type="application/sdp")
                ack1 = b1.wait_request("ACK")
                self.assertEqual(ack1.to_tag, ok1.to_tag)
                bye1 = b1.wait_request("BYE")
                self.assertEqual(bye1.to_tag, ok1.to_tag)
                self.assertReason(bye1, W_ANSWER_PLAIN)
                b1.respond(bye1, 200)
                # bob's other device still may answer: alice waits
                no_final_response(a, inv)

                d2 = b2.answer(i2, 200, body=srtp_sdp(port=40004))
                resp = a.wait_response(inv)
                self.assertEqual(resp.status, 200, resp)
                self.assertEqual(resp.to_tag, NameAddr.parse(d2.local_header).tag)
                self.assertEqual(sdp_profile(resp), ["RTP/SAVP"])
                a.ack(inv, resp)
                b2.wait_request("ACK")
                no_message(a)
                no_message(b1, 0.2)
                p.wait_log("media.answer_refused", call_id=inv.call_id, reason=W_ANSWER_PLAIN)
                self.hang_up(a, Dialog.from_uac(inv, resp), b2)
                rec = call_record(p, inv.call_id)
                self.assertEqual(rec["reason"], "BYE from caller")
                self.assertNotEqual(rec["answered"], "-")
                self.assertEqual(rec.get("media"), f"audio SRTP {SUITE}")
                self.assertEqual(p.ctl("status", json=True).stdout["daemon"]["dialogs"], 0)

    def test_fork_both_devices_answer_plain(self):
        # the caller gets 488 once no branch may answer any more
        with server("mp-ans-fork-488") as p:
            p.start()
            with register(p, "bob") as b1, register(p, "bob") as b2, register(p, "alice") as a:
                prime(a)
                inv = invite(a, srtp_sdp())
                i1 = b1.wait_request("INVITE")
                i2 = b2.wait_request("INVITE")
                b1.respond(i1, 200, body=plain_sdp(port=40002), content_type="application/sdp")
                b1.wait_request("ACK")
                b1.respond(b1.wait_request("BYE"), 200)
                no_final_response(a, inv)
                b2.respond(i2, 200, body=plain_sdp(port=40004), content_type="application/sdp")
                b2.wait_request("ACK")
                b2.respond(b2.wait_request("BYE"), 200)
                r = a.wait_response(inv)
                a.ack(inv, r)
                self.assertEqual(r.status, 488, r)
                self.assertWarning(r, W_ANSWER_PLAIN)
                self.assertEqual(len(p.find_log("media.answer_refused", call_id=inv.call_id)), 2)
                rec = call_record(p, inv.call_id)
                self.assertEqual(rec["reason"], f"488 Not Acceptable Here: {W_ANSWER_PLAIN}")


# ---------------------------------------------------------------------------
# supported / not_supported, reload, status
# ---------------------------------------------------------------------------


class TestLevels(MediaTestCase):
    def test_supported_allows_unencrypted_and_logs_it(self):
        with server("mp-sup", {"media.encryption_level": "supported"}) as p:
            p.start()
            with register(p, "bob") as b, register(p, "alice") as a:
                prime(a)
                offer = plain_sdp()
                inv, i, resp, da, db = self.call(a, b, offer, plain_sdp(port=40002))
                self.assertEqual(i.text, offer)
                self.hang_up(a, da, b)
                rec = call_record(p, inv.call_id)
                self.assertEqual(rec.get("media"), "audio unencrypted (level supported)")
                self.assertIn("unencrypted (level supported)", p.ctl("calls").stdout)

                # an optional-SRTP offer passes unchanged; SRTP when answered so
                offer = optional_sdp()
                inv, i, resp, da, db = self.call(a, b, offer, optional_sdp(port=40002))
                self.assertEqual(i.text, offer)
                self.hang_up(a, da, b)
                self.assertEqual(call_record(p, inv.call_id).get("media"), f"audio SRTP {SUITE}")

    def test_not_supported(self):
        with server("mp-notsup", {"media.encryption_level": "not_supported"}) as p:
            p.start()
            with register(p, "bob") as b, register(p, "alice") as a:
                prime(a)
                self.refused_offer(p, a, srtp_sdp(), W_NOT_SUPPORTED, b)
                # optional SRTP: offered on as plain RTP, without its keys
                inv, i, resp, da, db = self.call(a, b, optional_sdp(), plain_sdp(port=40002))
                self.assertEqual(sdp_profile(i), ["RTP/AVP"])
                self.assertFalse(has_crypto(i), i)
                self.hang_up(a, da, b)
                self.assertEqual(call_record(p, inv.call_id).get("media"),
                                 "audio unencrypted (level not_supported)")

    def test_reload_changes_the_level_for_new_calls(self):
        with server("mp-reload") as p:
            p.start()
            self.assertEqual(media_row(p)["level"], "required")
            with register(p, "bob") as b, register(p, "alice") as a:
                prime(a)
                self.refused_offer(p, a, plain_sdp(), W_OFFER_PLAIN, b)

                res = p.ctl("config", "set", "media.encryption_level", "supported")
                self.assertEqual(res.returncode, 0, res.stderr)
                # stored, not yet in force
                self.assertEqual(media_row(p)["level"], "required")
                self.refused_offer(p, a, plain_sdp(), W_OFFER_PLAIN, b)

                mark = p.log_mark()
                res = p.ctl("reload")
                self.assertEqual(res.returncode, 0, res.stderr)
                p.wait_log("config.reloaded", since=mark)
                row = media_row(p)
                self.assertEqual(row["level"], "supported")
                self.assertIn("media.encryption_level supported", row["enforced"])

                inv, i, resp, da, db = self.call(a, b, plain_sdp(), plain_sdp(port=40002))
                self.hang_up(a, da, b)
                self.assertEqual(call_record(p, inv.call_id).get("media"),
                                 "audio unencrypted (level supported)")

    def test_status_protection_row(self):
        with server("mp-status", {"media.encryption_level": "not_supported"}) as p:
            # the configured view, daemon not running
            self.assertEqual(media_row(p)["level"], "not_supported")
            p.start()
            row = media_row(p)
            self.assertEqual(row["protection"], "SRTP")
            self.assertEqual(row["level"], "not_supported")
            self.assertIn("media.encryption_level not_supported", row["enforced"])
            self.assertIn(SUITE, row["enforced"])
            text = p.ctl("status").stdout
            self.assertIn("media.encryption_level not_supported", text)

    def test_calls_json_media_per_section(self):
        # two sections: audio SRTP, video disabled by the answerer
        with server("mp-calls-json") as p:
            p.start()
            with register(p, "bob") as b, register(p, "alice") as a:
                prime(a)
                video = ["m=video 40010 RTP/SAVP 96", "a=rtpmap:96 VP8/90000",
                         f"a=crypto:1 {SUITE} inline:{key()}"]
                offer = make_sdp(crypto=crypto(), extra=video)
                answer = make_sdp(port=40002, crypto=crypto(),
                                  extra=["m=video 0 RTP/SAVP 96"])
                inv, i, resp, da, db = self.call(a, b, offer, answer)
                self.hang_up(a, da, b)
                rec = call_record(p, inv.call_id)
                self.assertEqual(rec.get("media"), f"audio SRTP {SUITE}; video disabled", rec)
                text = p.ctl("calls").stdout
                self.assertIn(f"media: audio SRTP {SUITE}; video disabled", text)

                # DTLS-SRTP (RFC 5763: UDP/TLS/RTP/SAVP with a fingerprint)
                fp = "a=fingerprint:sha-256 " + ":".join(f"{b:02X}" for b in secrets.token_bytes(32))
                dtls = lambda port, setup: make_sdp(port=port, crypto=False, extra=[
                    fp, f"a=setup:{setup}"]).replace("RTP/AVP", "UDP/TLS/RTP/SAVP")
                inv, i, resp, da, db = self.call(a, b, dtls(40000, "actpass"),
                                                 dtls(40002, "active"))
                self.hang_up(a, da, b)
                self.assertEqual(call_record(p, inv.call_id).get("media"), "audio DTLS-SRTP")


# ---------------------------------------------------------------------------
# SDES keys only over TLS (issue #5, item 4)
# ---------------------------------------------------------------------------


class TestKeysOnlyOverTls(MediaTestCase):
    def tcp_server(self, name: str, level: str = "required"):
        port = free_port("tcp")
        p = server(name, {"media.encryption_level": level,
                          "sip.tcp_listen": f"127.0.0.1:{port}",
                          "sip.internal_networks": "127.0.0.0/8"})
        return p, port

    def test_keys_over_the_tcp_listener_refused(self):
        p, port = self.tcp_server("mp-keys-in", "supported")
        with p:
            p.start()
            with register(p, "bob") as b, register_tcp(p, "alice", port) as a:
                prime(a)
                for what, body in (("RTP/SAVP", srtp_sdp()), ("optional", optional_sdp())):
                    with self.subTest(offer=what):
                        self.refused_offer(p, a, body, W_KEYS_IN, b)
                # without keys the same hop carries a call (level supported)
                inv, i, resp, da, db = self.call(a, b, plain_sdp(), plain_sdp(port=40002))
                self.hang_up(a, da, b)

    def test_keys_over_the_tcp_listener_refused_in_an_answer(self):
        # bob on plain TCP answers with a=crypto: refused, even though the
        # caller (TLS) offered SRTP
        p, port = self.tcp_server("mp-keys-in-ans", "supported")
        with p:
            p.start()
            with register_tcp(p, "bob", port) as b, register(p, "alice") as a:
                prime(a)
                inv = invite(a, optional_sdp())
                i = b.wait_request("INVITE")
                self.assertFalse(has_crypto(i))
                b.respond(i, 200, body=optional_sdp(port=40002), content_type="application/sdp")
                self.refused_2xx(a, b, inv, W_KEYS_IN)

    def test_optional_offer_toward_a_tcp_device_loses_its_keys(self):
        p, port = self.tcp_server("mp-keys-out", "supported")
        with p:
            p.start()
            with register_tcp(p, "bob", port) as b, register(p, "alice") as a:
                prime(a)
                inv, i, resp, da, db = self.call(a, b, optional_sdp(), plain_sdp(port=40002))
                self.assertEqual(sdp_profile(i), ["RTP/AVP"])
                self.assertFalse(has_crypto(i), i)
                self.assertNotIn("inline:", i.text)
                self.hang_up(a, da, b)
                self.assertEqual(call_record(p, inv.call_id).get("media"),
                                 "audio unencrypted (level supported)")
                # required keys (RTP/SAVP) cannot go there at all
                self.refused_offer(p, a, srtp_sdp(), W_KEYS_OUT_SAVP, b)

    def test_late_offer_toward_a_tcp_caller_loses_its_keys(self):
        # the offer in bob's 2xx goes to alice over plain TCP: optional keys
        # are removed there too, and the plain answer in her ACK is fine
        p, port = self.tcp_server("mp-keys-late", "supported")
        with p:
            p.start()
            with register(p, "bob") as b, register_tcp(p, "alice", port) as a:
                prime(a)
                inv = invite(a, None)
                i = b.wait_request("INVITE")
                b.respond(i, 200, body=optional_sdp(port=40002), content_type="application/sdp")
                resp = a.wait_response(inv)
                self.assertEqual(resp.status, 200, resp)
                self.assertEqual(sdp_profile(resp), ["RTP/AVP"])
                self.assertFalse(has_crypto(resp), resp)
                da = Dialog.from_uac(inv, resp)
                a.send(a.build_in_dialog(da, "ACK", cseq=inv.cseq.number, body=plain_sdp(),
                                         content_type="application/sdp"))
                got = b.wait_request("ACK")
                self.assertEqual(sdp_profile(got), ["RTP/AVP"])
                no_message(a)
                self.hang_up(a, da, b)
                self.assertEqual(call_record(p, inv.call_id).get("media"),
                                 "audio unencrypted (level supported)")

    def test_tcp_device_under_required(self):
        p, port = self.tcp_server("mp-keys-out-req", "required")
        with p:
            p.start()
            with register_tcp(p, "bob", port) as b, register(p, "alice") as a:
                prime(a)
                self.refused_offer(p, a, srtp_sdp(), W_KEYS_OUT_SAVP, b)
                self.refused_offer(
                    p, a, optional_sdp(),
                    "media encryption required: audio cannot be encrypted toward an unencrypted hop",
                    b)


# ---------------------------------------------------------------------------
# bodies: SDP inside a multipart, bodies Parley cannot read
# ---------------------------------------------------------------------------


ISUP_PART = "Content-Type: application/isup;version=itu-t92+\r\n\r\n\x01\x10\x00\r\n"


def multipart(sdp: str, boundary: str = "unique-b1") -> tuple[str, str]:
    """(body, Content-Type): the SDP and an ISUP part, as SIP-I gateways send."""
    body = (f"--{boundary}\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n"
            f"--{boundary}\r\n{ISUP_PART}--{boundary}--\r\n")
    return body, f"multipart/mixed;boundary={boundary}"


def invite_typed(c: sipclient.SipClient, body: str, content_type: str | None) -> SipMessage:
    build = {"body": body}
    if content_type is not None:
        build["content_type"] = content_type
    return send_authed(c, "INVITE", BOB, **build)


class TestBodies(MediaTestCase):
    def refused_body(self, p: Parley, a: sipclient.SipClient, b: sipclient.SipClient, body: str,
                     content_type: str | None, status: int, warning: str) -> None:
        inv = invite_typed(a, body, content_type)
        r = a.wait_response(inv)
        a.ack(inv, r)
        self.assertEqual(r.status, status, r)
        self.assertWarning(r, warning)
        no_message(b, 0.3)

    def test_sdp_in_a_multipart_is_inspected(self):
        with server("mp-multipart") as p:
            p.start()
            with register(p, "bob") as b, register(p, "alice") as a:
                prime(a)
                # a plain offer hidden in a multipart is refused like any other
                body, ct = multipart(plain_sdp())
                self.refused_body(p, a, b, body, ct, 488, W_OFFER_PLAIN)
                # an SRTP one passes, the body untouched
                body, ct = multipart(srtp_sdp())
                inv = invite_typed(a, body, ct)
                i = b.wait_request("INVITE")
                self.assertEqual(i.header("Content-Type"), ct)
                self.assertEqual(i.text, body)
                # and its answer is checked against the SDP inside
                b.answer(i, 200, body=plain_sdp(port=40002))
                self.refused_2xx(a, b, inv, W_ANSWER_PLAIN)

    def test_keys_removed_inside_a_multipart(self):
        port = free_port("tcp")
        with server("mp-multipart-tcp", {"media.encryption_level": "supported",
                                         "sip.tcp_listen": f"127.0.0.1:{port}",
                                         "sip.internal_networks": "127.0.0.0/8"}) as p:
            p.start()
            with register_tcp(p, "bob", port) as b, register(p, "alice") as a:
                prime(a)
                body, ct = multipart(optional_sdp())
                invite_typed(a, body, ct)
                i = b.wait_request("INVITE")
                self.assertEqual(i.header("Content-Type"), ct)
                self.assertNotIn("a=crypto", i.text)
                self.assertNotIn("inline:", i.text)
                self.assertIn("m=audio 40000 RTP/AVP", i.text)
                self.assertTrue(i.text.endswith(f"--unique-b1\r\n{ISUP_PART}--unique-b1--\r\n"), i.text)
                b.respond(i, 486)

    def test_bodies_parley_cannot_read_are_refused(self):
        with server("mp-bodies") as p:
            p.start()
            with register(p, "bob") as b, register(p, "alice") as a:
                prime(a)
                self.refused_body(p, a, b, plain_sdp(), None, 400,
                                  "message body without Content-Type")
                # a boundary after a bare LF: a lenient reader would find
                # the plain SDP part that a strict one does not
                hidden = ("--b\r\nContent-Type: text/plain\r\n\r\nhello\n"
                          f"--b\r\nContent-Type: application/sdp\r\n\r\n{plain_sdp()}\r\n--b--\r\n")
                self.refused_body(p, a, b, hidden, "multipart/mixed;boundary=b", 400,
                                  "multipart boundary inside a part")
                two = (f"--b\r\nContent-Type: application/sdp\r\n\r\n{srtp_sdp()}\r\n"
                       f"--b\r\nContent-Type: application/sdp\r\n\r\n{plain_sdp()}\r\n--b--\r\n")
                self.refused_body(p, a, b, two, "multipart/mixed;boundary=b", 400,
                                  "more than one session description in the body")
                # two Content-Type headers: readers differ on which counts
                req = a.build_request("INVITE", BOB, body=plain_sdp(), content_type="text/plain")
                req.add_header("Content-Type", "application/sdp")
                for ch in a.auth_cache.values():
                    if ch.proxy:
                        req.add_header("Proxy-Authorization",
                                       a.authorization_for(ch, "INVITE", req.uri or ""))
                a.send(req)
                r = a.wait_response(req)
                a.ack(req, r)
                self.assertEqual(r.status, 400, r)
                self.assertWarning(r, "two Content-Type or Content-Encoding headers")
                no_message(b, 0.3)
                # a body Parley reads and that holds no SDP is no offer
                inv = invite_typed(a, "hello", "text/plain")
                i = b.wait_request("INVITE")
                self.assertEqual(i.text, "hello")
                b.respond(i, 486)
                self.assertEqual(a.wait_response(inv).status, 486)


    def test_plain_answer_in_a_prack_refused(self):
        # the offer came in a reliable 183 (late offer); the answer rides
        # the PRACK, which is checked like any offer or answer
        with server("mp-prack") as p:
            p.start()
            with register(p, "bob") as b, register(p, "alice") as a:
                prime(a)
                inv = invite(a, None, headers={"Supported": "100rel"})
                i = b.wait_request("INVITE")
                b.respond(i, 183, headers={"Require": "100rel", "RSeq": "1"},
                          body=srtp_sdp(port=40002), content_type="application/sdp")
                r183 = a.wait_response(inv, final=False)
                while r183.status == 100:
                    r183 = a.wait_response(inv, final=False)
                self.assertEqual(r183.status, 183, r183)
                early = Dialog.from_uac(inv, r183)
                rack = {"RAck": f"1 {inv.cseq.number} INVITE"}
                r = a.request_in_dialog(early, "PRACK", headers=rack, body=plain_sdp(),
                                        content_type="application/sdp")
                self.assertEqual(r.status, 488, r)
                self.assertWarning(r, W_ANSWER_PLAIN)  # checked against the 183's offer
                no_message(b, 0.3)
                # an answer that does not match the offer's sections
                two = (srtp_sdp() + "m=video 40010 RTP/SAVP 96\r\na=rtpmap:96 H264/90000\r\n"
                       f"a=crypto:{crypto(tag=2)}\r\n")
                r = a.request_in_dialog(early, "PRACK", headers=rack, body=two,
                                        content_type="application/sdp")
                self.assertEqual(r.status, 400, r)
                self.assertWarning(r, "malformed SDP: answer has 2 media sections, offer 1")
                no_message(b, 0.3)
                # an encrypted answer goes through
                fut = POOL.submit(a.request_in_dialog, early, "PRACK", headers=rack,
                                  body=srtp_sdp(), content_type="application/sdp")
                prack = b.wait_request("PRACK")
                self.assertIn("RTP/SAVP", prack.text)
                b.respond(prack, 200)
                self.assertEqual(fut.result(scaled(10)).status, 200)
                b.respond(i, 486)
                r = a.wait_response(inv)
                a.ack(inv, r)
                self.assertEqual(r.status, 486, r)


    def test_sdp_in_an_ack_that_answers_nothing_is_removed(self):
        with server("mp-ack-sdp") as p:
            p.start()
            with register(p, "bob") as b, register(p, "alice") as a:
                prime(a)
                inv = invite(a, srtp_sdp())
                i = b.wait_request("INVITE")
                b.answer(i, 200, body=srtp_sdp(port=40002))
                resp = a.wait_response(inv)
                self.assertEqual(resp.status, 200, resp)
                da = Dialog.from_uac(inv, resp)
                a.send(a.build_in_dialog(da, "ACK", cseq=inv.cseq.number, body=plain_sdp(),
                                         content_type="application/sdp"))
                got = b.wait_request("ACK")
                self.assertEqual(got.text, "", got)
                self.assertIsNone(got.header("Content-Type"), got)
                p.wait_log("media.ack_sdp_removed", call_id=inv.call_id)
                self.hang_up(a, da, b)


if __name__ == "__main__":
    unittest.main(verbosity=2)
