#!/usr/bin/python3
"""Registrar, digest authentication, asserted identity and the stateful
proxy (issue #3), driven with the test client (tests/lib/sipclient.py).

Every test starts its own parleyd in its own state directory on its own
ports. Callers and callees are separate SipClients on separate TLS
connections; a callee never listens for connections, so every request that
reaches it proves the server sent it back over the connection the callee
registered on.

The caller's requests are sent without blocking (send_authed) once its
client holds the server's 407 challenge (prime), so one thread can play the
caller and every callee in turn.
"""
from __future__ import annotations

import re
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

import sipclient
from harness import TIMEOUT_SCALE, Parley
from sipclient import Dialog, NameAddr, SipMessage, make_sdp, parse_challenges

DOMAIN = "example.test"
USERS = {"alice": "alice-secret", "bob": "bob-secret", "carol": "carol-secret"}
BOB = f"sip:bob@{DOMAIN}"
ALICE = f"sip:alice@{DOMAIN}"

# For the client calls that block until the far side answers (in-dialog
# requests, BYE): they run here while the main thread plays the far side.
POOL = ThreadPoolExecutor(max_workers=4)


def bg(fn, *args, **kw):
    return POOL.submit(fn, *args, **kw)


def scaled(t: float) -> float:
    return t * TIMEOUT_SCALE


def server(name: str, config: dict | None = None, **kw) -> Parley:
    return Parley(name=name, users=USERS, config=config or {}, **kw)


def registrations(p: Parley, user: str | None = None) -> list[dict]:
    res = p.ctl("registrations", json=True)
    if res.returncode != 0:
        raise AssertionError(f"parleyctl registrations failed: {res.stderr}")
    return [r for r in res.stdout["registrations"] if user is None or r["user"] == user]


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


def challenges(resp: SipMessage) -> list[sipclient.Challenge]:
    proxy = resp.status == 407
    name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
    return [c for v in resp.headers(name) for c in parse_challenges(v, proxy=proxy)]


def challenge_params_in_order(resp: SipMessage) -> list[list[str]]:
    """The parameter names of each challenge, in the order they were sent."""
    name = "Proxy-Authenticate" if resp.status == 407 else "WWW-Authenticate"
    return [re.findall(r"([A-Za-z-]+)=", v) for v in resp.headers(name)]


def register(p: Parley, user: str, **kw) -> sipclient.SipClient:
    """A client for user, registered (200) on its own connection."""
    c = p.client(user)
    r = c.register(expires=kw.pop("expires", 600), **kw)
    if r.status != 200:
        c.close()
        raise AssertionError(f"{user} could not register: {r.summary()}")
    return c


def prime(c: sipclient.SipClient) -> None:
    """Get the server's 407 challenge into c's cache (a MESSAGE to a user
    that does not exist: challenged, then 404), so send_authed can send
    requests with credentials up front."""
    r = c.message(f"sip:nobody-prime@{DOMAIN}", "prime")
    if r.status != 404 or not any(k[0] for k in c.auth_cache):
        raise AssertionError(f"priming credentials failed: {r.summary()}")


def send_authed(c: sipclient.SipClient, method: str, uri: str, **build) -> SipMessage:
    """Build and send an out-of-dialog request with Proxy-Authorization for
    the cached 407 challenge (nc + 1); returns it without waiting."""
    req = c.build_request(method, uri, **build)
    for ch in c.auth_cache.values():
        if ch.proxy:
            req.add_header("Proxy-Authorization", c.authorization_for(ch, method, req.uri or ""))
    c.send(req)
    return req


def invite(c: sipclient.SipClient, uri: str, **build) -> SipMessage:
    build.setdefault("body", make_sdp(c.conn.local_address[0]))
    build.setdefault("content_type", "application/sdp")
    return send_authed(c, "INVITE", uri, **build)


def establish(a: sipclient.SipClient, b: sipclient.SipClient):
    """a calls bob, b (bob's only device) answers: (INVITE, a's dialog, b's dialog)."""
    prime(a)
    inv = invite(a, BOB)
    i = b.wait_request("INVITE")
    db = b.answer(i, 200, body=make_sdp(port=40002))
    resp = a.wait_response(inv)
    if resp.status != 200:
        raise AssertionError(f"the call was not answered: {resp.summary()}")
    a.ack(inv, resp)
    b.wait_request("ACK")
    return inv, Dialog.from_uac(inv, resp), db


def no_message(c: sipclient.SipClient, wait: float = 0.5) -> None:
    m = c.conn.try_recv(scaled(wait))
    if m is not None:
        raise AssertionError(f"unexpected message: {m.summary()}\n{m}")


def contact_uris(resp: SipMessage) -> list[str]:
    return [c.uri for c in resp.contacts]


def contact_expires(resp: SipMessage, uri: str) -> int:
    for c in resp.contacts:
        if c.uri == uri:
            return int(c.params["expires"] or "-1")
    raise AssertionError(f"{uri} not among the Contacts of {resp.summary()}:\n{resp}")


# ---------------------------------------------------------------------------
# Registration and digest authentication
# ---------------------------------------------------------------------------


class TestRegistration(unittest.TestCase):
    def test_md5_registration_and_listing(self):
        with server("reg-md5") as p:
            p.start()
            with p.client("alice") as a:
                r = a.request("REGISTER", expires=600)
                self.assertEqual(r.status, 401, r)
                chs = challenges(r)
                self.assertEqual(len(chs), 1, r)
                self.assertEqual(chs[0].scheme, "Digest")
                self.assertEqual(chs[0].algorithm, "MD5")
                self.assertEqual(chs[0].realm, DOMAIN)
                self.assertEqual(chs[0].qop_options, ["auth"])
                self.assertFalse(chs[0].stale)
                p.assert_no_log("registrar.bound")

                r = a.register(expires=600)
                self.assertEqual(r.status, 200, r)
                self.assertIn("algorithm=MD5", r.request.header("Authorization"))
                self.assertEqual(contact_uris(r), [a.contact_uri()])
                self.assertEqual(contact_expires(r, a.contact_uri()), 600)
                p.wait_log("registrar.bound", user="alice", transport="TLS")

                regs = registrations(p)
                self.assertEqual(len(regs), 1, regs)
                reg = regs[0]
                self.assertEqual(reg["user"], "alice")
                self.assertEqual(reg["contact"], a.contact_uri())
                self.assertEqual(reg["transport"], "TLS")
                self.assertEqual(reg["source"], "%s:%d" % a.conn.local_address[:2])
                self.assertEqual(reg["tls_version"], a.conn.tls_version)
                self.assertEqual(reg["user_agent"], "parley-test-client")
                self.assertTrue(590 <= reg["expires_in_s"] <= 600, reg)

                res = p.ctl("registrations")
                self.assertEqual(res.returncode, 0, res.stderr)
                line = [l for l in res.stdout.splitlines() if l.startswith("alice")]
                self.assertEqual(len(line), 1, res.stdout)
                for want in ("TLS", reg["source"], a.conn.tls_version, a.contact_uri()):
                    self.assertIn(want, line[0])
                self.assertRegex(line[0], r"\b(59\d|600)s\b")

                # a refresh keeps one binding
                r = a.register(expires=900)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(len(registrations(p, "alice")), 1)
            # bindings live in the running server: without it, a clear failure
            self.assertEqual(p.stop(), 0)
            res = p.ctl("registrations", json=True)
            self.assertEqual(res.returncode, 1, res)
            self.assertIs(res.stdout["ok"], False)

    def test_sha256_only(self):
        with server("reg-sha256", {"auth.algorithms": "SHA-256"}) as p:
            p.start()
            with p.client("alice") as a:
                r = a.request("REGISTER", expires=600)
                self.assertEqual(r.status, 401, r)
                self.assertEqual([c.algorithm for c in challenges(r)], ["SHA-256"], r)
                r = a.register(expires=600)
                self.assertEqual(r.status, 200, r)
                self.assertIn("algorithm=SHA-256", r.request.header("Authorization"))
                self.assertEqual(len(registrations(p, "alice")), 1)
            # a client that can only answer MD5 finds nothing to answer
            with p.client("bob", algorithm="MD5") as b:
                with self.assertRaises(sipclient.AuthError):
                    b.register(expires=600)
            # MD5 credentials to the SHA-256 challenge are refused
            with p.client("bob") as b:
                r = b.request("REGISTER", expires=600)
                ch = challenges(r)[0]
                req = b.build_request("REGISTER", expires=600)
                req.add_header("Authorization", sipclient.build_authorization(
                    ch, username="bob", password=USERS["bob"], method="REGISTER",
                    uri=req.uri, algorithm="MD5"))
                b.send(req)
                r = b.wait_response(req)
                self.assertEqual(r.status, 403, r)
                self.assertEqual(registrations(p, "bob"), [])

    def test_sha256_then_md5_offered_in_order(self):
        with server("reg-both", {"auth.algorithms": "SHA-256, MD5"}) as p:
            p.start()
            with p.client("alice") as a:
                r = a.request("REGISTER", expires=600)
                self.assertEqual(r.status, 401, r)
                self.assertEqual(len(r.headers("WWW-Authenticate")), 2, r)
                chs = challenges(r)
                self.assertEqual([c.algorithm for c in chs], ["SHA-256", "MD5"], r)
                self.assertNotEqual(chs[0].nonce, chs[1].nonce)
                r = a.register(expires=600)
                self.assertEqual(r.status, 200, r)
                self.assertIn("algorithm=SHA-256", r.request.header("Authorization"))
            with p.client("bob", algorithm="MD5") as b:
                r = b.register(expires=600)
                self.assertEqual(r.status, 200, r)
                self.assertIn("algorithm=MD5", r.request.header("Authorization"))
                self.assertEqual(len(registrations(p)), 1)  # alice's went with her connection

    def test_wrong_password_refused_without_binding(self):
        with server("reg-wrongpw") as p:
            p.start()
            with p.client("alice", password="not-the-password") as a:
                mark = p.log_mark()
                r = a.register(expires=600)
                self.assertEqual(r.status, 403, r)
                self.assertTrue(r.request.has_header("Authorization"))
                self.assertEqual(registrations(p), [])
                rec = p.wait_log("sip.rejected", since=mark, method="REGISTER", status="403")
                self.assertEqual(rec["reason"], "authentication failed")
                p.assert_no_log("registrar.bound")
                # the right password on the same connection still works
                a.password = USERS["alice"]
                a.forget_credentials()
                self.assertEqual(a.register(expires=600).status, 200)
                self.assertEqual(len(registrations(p, "alice")), 1)

    def test_unknown_user_answered_like_wrong_password(self):
        with server("reg-unknown") as p:
            p.start()
            with p.client("alice", password="wrong") as known, \
                    p.client("mallory", password="whatever") as unknown:
                c_known = known.request("REGISTER", expires=600)
                c_unknown = unknown.request("REGISTER", expires=600)
                for r in (c_known, c_unknown):
                    self.assertEqual(r.status, 401, r)
                self.assertEqual(c_known.reason, c_unknown.reason)
                self.assertEqual([n.lower() for n, _ in c_known.header_fields],
                                 [n.lower() for n, _ in c_unknown.header_fields])
                self.assertEqual(challenge_params_in_order(c_known),
                                 challenge_params_in_order(c_unknown))
                k, u = challenges(c_known)[0], challenges(c_unknown)[0]
                for attr in ("realm", "algorithm", "qop_options", "stale"):
                    self.assertEqual(getattr(k, attr), getattr(u, attr), attr)
                self.assertEqual(len(k.nonce), len(u.nonce))

                f_known = known.register(expires=600)
                f_unknown = unknown.register(expires=600)
                self.assertEqual(f_known.status, 403, f_known)
                self.assertEqual(f_unknown.status, 403, f_unknown)
                self.assertEqual(f_known.reason, f_unknown.reason)
                self.assertEqual([n.lower() for n, _ in f_known.header_fields],
                                 [n.lower() for n, _ in f_unknown.header_fields])
                self.assertEqual(f_known.body, f_unknown.body)
                self.assertEqual(registrations(p), [])
                # the proxy's 407 then 403 are the same too
                m_known = known.message(f"sip:carol@{DOMAIN}", "hi")
                m_unknown = unknown.message(f"sip:carol@{DOMAIN}", "hi")
                self.assertEqual((m_known.status, m_unknown.status), (403, 403))
                self.assertEqual(m_known.reason, m_unknown.reason)

    def test_expired_nonce_is_stale(self):
        with server("reg-stale", {"auth.nonce_lifetime": 2}) as p:
            p.start()
            with p.client("alice") as a:
                self.assertEqual(a.register(expires=600).status, 200)
                old = a.auth_cache[(False, DOMAIN)]
                time.sleep(3.2)
                req = a.build_request("REGISTER", expires=600)
                req.add_header("Authorization", a.authorization_for(old, "REGISTER", req.uri))
                a.send(req)
                r = a.wait_response(req)
                self.assertEqual(r.status, 401, r)
                chs = challenges(r)
                self.assertEqual(len(chs), 1, r)
                self.assertTrue(chs[0].stale, r)
                self.assertNotEqual(chs[0].nonce, old.nonce)
                # the fresh nonce is accepted
                req = a.build_request("REGISTER", expires=600)
                req.add_header("Authorization", a.authorization_for(chs[0], "REGISTER", req.uri))
                a.send(req)
                self.assertEqual(a.wait_response(req).status, 200)
                # a nonce that is not ours is answered stale too (retry at once)
                forged = sipclient.Challenge("Digest", dict(old.params, nonce="A" * len(old.nonce)))
                req = a.build_request("REGISTER", expires=600)
                req.add_header("Authorization", a.authorization_for(forged, "REGISTER", req.uri))
                a.send(req)
                r = a.wait_response(req)
                self.assertEqual(r.status, 401, r)
                self.assertTrue(challenges(r)[0].stale, r)

    def test_nonce_count_replay_refused(self):
        with server("reg-nc") as p:
            p.start()
            with p.client("alice") as a:
                r = a.register(expires=600)
                self.assertEqual(r.status, 200, r)
                self.assertIn("nc=00000001", r.request.header("Authorization"))
                ch = a.auth_cache[(False, DOMAIN)]

                def send(nc):
                    req = a.build_request("REGISTER", expires=600)
                    req.add_header("Authorization",
                                   a.authorization_for(ch, "REGISTER", req.uri, nc=nc))
                    a.send(req)
                    return a.wait_response(req)

                mark = p.log_mark()
                r = send(1)
                self.assertEqual(r.status, 403, r)
                p.wait_log("sip.rejected", since=mark, status="403", reason="nonce count replayed")
                self.assertEqual(send(2).status, 200)
                self.assertEqual(send(2).status, 403)
                self.assertEqual(send(1).status, 403)
                self.assertEqual(send(5).status, 200)
                self.assertEqual(send(4).status, 403)

    def test_interval_too_brief(self):
        with server("reg-423", {"registrar.min_expires": 120}) as p:
            p.start()
            with p.client("alice") as a:
                r = a.register(expires=30)
                self.assertEqual(r.status, 423, r)
                self.assertEqual(r.header("Min-Expires"), "120", r)
                self.assertEqual(registrations(p), [])
                # the Contact's own expires counts too
                r = a.register(expires=600, contact=f"<{a.contact_uri()}>;expires=30")
                self.assertEqual(r.status, 423, r)
                self.assertEqual(r.header("Min-Expires"), "120", r)
                self.assertEqual(registrations(p), [])
                r = a.register(expires=120)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(contact_expires(r, a.contact_uri()), 120)

    def test_max_expires_caps_and_default_applies(self):
        cfg = {"registrar.max_expires": 300, "registrar.default_expires": 200}
        with server("reg-max", cfg) as p:
            p.start()
            with p.client("alice") as a:
                r = a.register(expires=3600)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(contact_expires(r, a.contact_uri()), 300)
                reg = registrations(p, "alice")[0]
                self.assertTrue(290 <= reg["expires_in_s"] <= 300, reg)
                # no Expires header and no expires parameter: the default
                r = a.register(expires=None)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(contact_expires(r, a.contact_uri()), 200)
                reg = registrations(p, "alice")[0]
                self.assertTrue(190 <= reg["expires_in_s"] <= 200, reg)

    def test_several_devices_and_the_device_limit(self):
        with server("reg-devices", {"registrar.max_devices_per_user": 2}) as p:
            p.start()
            with register(p, "alice") as a1, p.client("alice") as a2, p.client("alice") as a3:
                r = a2.register(expires=600)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(sorted(contact_uris(r)), sorted([a1.contact_uri(), a2.contact_uri()]))
                regs = registrations(p, "alice")
                self.assertEqual(sorted(x["source"] for x in regs),
                                 sorted("%s:%d" % c.conn.local_address[:2] for c in (a1, a2)))
                r = a3.register(expires=600)
                self.assertEqual(r.status, 403, r)
                self.assertEqual(len(registrations(p, "alice")), 2)
                # a refresh of a device already bound is no new device
                self.assertEqual(a1.register(expires=600).status, 200)
                self.assertEqual(len(registrations(p, "alice")), 2)
                # removing one binding makes room for another in the same REGISTER
                r = a3.request_with_auth(
                    "REGISTER", None, expires=600,
                    contact=f"<{a1.contact_uri()}>;expires=0, <{a3.contact_uri()}>")
                self.assertEqual(r.status, 200, r)
                self.assertEqual(sorted(x["contact"] for x in registrations(p, "alice")),
                                 sorted([a2.contact_uri(), a3.contact_uri()]))

    def test_unregister_with_expires_zero_and_wildcard(self):
        with server("reg-unreg") as p:
            p.start()
            with register(p, "alice") as a1, register(p, "alice") as a2:
                self.assertEqual(len(registrations(p, "alice")), 2)
                mark = p.log_mark()
                r = a1.unregister()
                self.assertEqual(r.status, 200, r)
                self.assertEqual(contact_uris(r), [a2.contact_uri()])
                self.assertEqual([x["contact"] for x in registrations(p, "alice")],
                                 [a2.contact_uri()])
                p.wait_log("registrar.unbound", since=mark, user="alice",
                           contact=a1.contact_uri(), reason="un-registered")

                self.assertEqual(a1.register(expires=600).status, 200)
                self.assertEqual(len(registrations(p, "alice")), 2)
                # "Contact: *" without Expires: 0 is malformed
                r = a2.request_with_auth("REGISTER", None, expires=600, contact="*")
                self.assertEqual(r.status, 400, r)
                self.assertEqual(len(registrations(p, "alice")), 2)
                r = a2.unregister(all_contacts=True)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.contacts, [])
                self.assertEqual(registrations(p, "alice"), [])
                # the connections stay usable
                self.assertEqual(a1.register(expires=600).status, 200)

    def test_binding_ends_with_its_connection(self):
        with server("reg-close") as p:
            p.start()
            a = register(p, "alice")
            b = register(p, "bob")
            with register(p, "alice") as a2:
                self.assertEqual(len(registrations(p, "alice")), 2)
                mark = p.log_mark()
                a.close()  # close_notify and FIN
                wait_until(lambda: [x["contact"] for x in registrations(p, "alice")]
                           == [a2.contact_uri()], 5, "alice's first binding to go")
                p.wait_log("registrar.unbound", since=mark, user="alice",
                           contact=a.contact_uri(), reason="connection closed")
                b.conn.abort()  # RST
                wait_until(lambda: registrations(p, "bob") == [], 5, "bob's binding to go")
                # the other device of alice is still reachable
                with p.client("carol") as c:
                    prime(c)
                    req = send_authed(c, "MESSAGE", ALICE, body="still there?",
                                      content_type="text/plain", contact=False)
                    m = a2.wait_request("MESSAGE")
                    a2.respond(m, 200)
                    self.assertEqual(c.wait_response(req).status, 200)

    def test_register_for_another_user_forbidden(self):
        with server("reg-other") as p:
            p.start()
            with p.client("alice") as a:
                r = a.request_with_auth("REGISTER", None, to=f"<{BOB}>", expires=600)
                self.assertEqual(r.status, 403, r)
                self.assertEqual(registrations(p), [])

    def test_binding_expires(self):
        with server("reg-expiry", {"registrar.min_expires": 1}) as p:
            p.start()
            with register(p, "bob", expires=2) as b, p.client("alice") as a:
                self.assertEqual(len(registrations(p, "bob")), 1)
                p.wait_log("registrar.unbound", timeout=6, user="bob", reason="expired")
                self.assertEqual(registrations(p, "bob"), [])
                self.assertEqual(a.message(BOB, "gone?").status, 480)
                no_message(b)
                # the connection outlives the binding and can register again
                self.assertEqual(b.register(expires=600).status, 200)

    def test_reregistration_from_a_new_connection_moves_the_binding(self):
        with server("reg-move") as p:
            p.start()
            contact = "sip:bob@192.0.2.7:5070;transport=tls"
            old = register(p, "bob", contact=f"<{contact}>")
            with register(p, "bob", contact=f"<{contact}>") as new, p.client("alice") as a:
                regs = registrations(p, "bob")
                self.assertEqual(len(regs), 1, regs)
                self.assertEqual(regs[0]["source"], "%s:%d" % new.conn.local_address[:2])
                old.close()
                time.sleep(scaled(0.5))
                self.assertEqual(len(registrations(p, "bob")), 1,
                                 "closing the old connection must not end the moved binding")
                prime(a)
                req = send_authed(a, "MESSAGE", BOB, body="to the new connection",
                                  content_type="text/plain", contact=False)
                m = new.wait_request("MESSAGE")
                new.respond(m, 200)
                self.assertEqual(a.wait_response(req).status, 200)

    def test_register_out_of_order_cseq(self):
        with server("reg-cseq") as p:
            p.start()
            with p.client("alice") as a:
                ok = a.register(expires=600)
                self.assertEqual(ok.status, 200)
                last = ok.request.cseq.number
                # same Call-ID, an older CSeq (the credentials are fresh: nc + 1)
                r = a.register(expires=600, cseq=last - 1)
                self.assertEqual(r.status, 500, r)
                self.assertIsNotNone(r.header("Retry-After"), r)
                self.assertEqual(len(registrations(p, "alice")), 1)

    def test_requests_use_the_registered_connection(self):
        with server("reg-flow") as p:
            p.start()
            # a Contact nobody listens on: only the connection can reach bob
            contact = "sip:bob@192.0.2.1:5999;transport=tls"
            with register(p, "bob", contact=f"<{contact}>") as b, p.client("alice") as a:
                self.assertEqual(registrations(p, "bob")[0]["contact"], contact)
                prime(a)
                req = send_authed(a, "MESSAGE", BOB, body="over your connection",
                                  content_type="text/plain", contact=False)
                m = b.wait_request("MESSAGE")
                self.assertEqual(m.uri, contact)
                self.assertEqual(m.text, "over your connection")
                b.respond(m, 200)
                self.assertEqual(a.wait_response(req).status, 200)


# ---------------------------------------------------------------------------
# Authenticated identity
# ---------------------------------------------------------------------------


class TestIdentity(unittest.TestCase):
    def test_digest_uri_mismatch_named_in_the_400(self):
        # credentials computed for another Request-URI: the 400 says which
        # check failed (a fixed text, nothing of the request echoed)
        with server("px-digest-uri") as p:
            p.start()
            with register(p, "alice") as a:
                prime(a)
                req = a.build_request("MESSAGE", BOB, body="hi", content_type="text/plain")
                for ch in a.auth_cache.values():
                    if ch.proxy:
                        req.add_header("Proxy-Authorization",
                                       a.authorization_for(ch, "MESSAGE", f"sip:carol@{DOMAIN}"))
                a.send(req)
                r = a.wait_response(req)
                self.assertEqual((r.status, r.reason), (400, "Bad Request (digest-uri mismatch)"), r)

    def test_requests_outside_dialogs_are_challenged(self):
        with server("id-407") as p:
            p.start()
            with register(p, "bob") as b, register(p, "alice") as a:
                for method, uri in [("INVITE", BOB), ("MESSAGE", BOB), ("OPTIONS", BOB),
                                    ("SUBSCRIBE", BOB), ("MESSAGE", f"sip:nobody@{DOMAIN}"),
                                    ("INVITE", f"sip:nobody@{DOMAIN}")]:
                    extra = {"headers": {"Event": "presence"}} if method == "SUBSCRIBE" else {}
                    body = make_sdp() if method == "INVITE" else ""
                    r = a.request(method, uri, body=body, **extra)
                    self.assertEqual(r.status, 407, f"{method} {uri}: {r.summary()}")
                    chs = challenges(r)
                    self.assertEqual([c.algorithm for c in chs], ["MD5"], r)
                    self.assertEqual(chs[0].realm, DOMAIN)
                no_message(b)
                # and from a connection that never registered
                with p.client("carol") as c:
                    self.assertEqual(c.request("MESSAGE", BOB, body="hi").status, 407)

    def test_from_must_match_the_authenticated_user(self):
        with server("id-from") as p:
            p.start()
            with register(p, "bob") as b, p.client("alice") as a:
                mark = p.log_mark()
                r = a.message(BOB, "I am bob", from_=f"<{BOB}>;tag=spoof1")
                self.assertEqual(r.status, 403, r)
                self.assertTrue(r.request.has_header("Proxy-Authorization"))
                p.wait_log("sip.rejected", since=mark, status="403", method="MESSAGE")
                r = a.message(BOB, "other domain", from_="<sip:alice@evil.test>;tag=spoof2")
                self.assertEqual(r.status, 403, r)
                r = a.request_with_auth("INVITE", BOB, from_=f'"Bob" <{BOB}>;tag=spoof3',
                                        body=make_sdp(), content_type="application/sdp")
                self.assertEqual(r.status, 403, r)
                no_message(b)

    def test_p_asserted_identity_set_by_the_server(self):
        with server("id-pai") as p:
            p.start()
            with register(p, "bob") as b, p.client("alice") as a:
                prime(a)
                req = send_authed(a, "MESSAGE", BOB, body="who am I?", content_type="text/plain",
                                  contact=False,
                                  headers=[("P-Asserted-Identity", "<sip:ceo@example.test>"),
                                           ("P-Asserted-Identity", "<tel:+15550100>"),
                                           ("P-Preferred-Identity", "<sip:ceo@example.test>")])
                m = b.wait_request("MESSAGE")
                pai = m.headers("P-Asserted-Identity", split=True)
                self.assertEqual(len(pai), 1, m)
                self.assertEqual(NameAddr.parse(pai[0]).uri, ALICE)
                self.assertEqual(m.headers("P-Preferred-Identity"), [], m)
                b.respond(m, 200)
                self.assertEqual(a.wait_response(req).status, 200)

    def test_p_asserted_identity_in_dialog_not_trusted(self):
        # A client is no more trusted inside a dialog than outside: a PAI it
        # sends (RFC 3325: only the trust domain asserts) must not reach the
        # other side, or bob could make alice's phone show "the CEO".
        with server("id-pai-dialog") as p:
            p.start()
            with register(p, "bob") as b, register(p, "alice") as a:
                inv, da, db = establish(a, b)
                fut = bg(b.request_in_dialog, db, "UPDATE",
                         headers=[("P-Asserted-Identity", "<sip:ceo@example.test>"),
                                  ("P-Preferred-Identity", "<sip:ceo@example.test>")])
                up = a.wait_request("UPDATE")
                a.respond(up, 200)
                self.assertEqual(fut.result(scaled(10)).status, 200)
                for h in ("P-Asserted-Identity", "P-Preferred-Identity"):
                    self.assertNotIn("sip:ceo@", " ".join(up.headers(h)), f"{h} passed through:\n{up}")

    def test_p_asserted_identity_in_responses_not_trusted(self):
        # The callee's answer may claim a connected identity too (RFC 3325
        # §5: the proxy removes a PAI that comes from outside the trust
        # domain, in responses as well).
        with server("id-pai-resp") as p:
            p.start()
            with register(p, "bob") as b, p.client("alice") as a:
                prime(a)
                inv = invite(a, BOB)
                i = b.wait_request("INVITE")
                b.answer(i, 200, body=make_sdp(port=40002),
                         headers={"P-Asserted-Identity": "<sip:ceo@example.test>"})
                r = a.wait_response(inv)
                self.assertEqual(r.status, 200, r)
                a.ack(inv, r)
                self.assertNotIn("sip:ceo@", " ".join(r.headers("P-Asserted-Identity")),
                                 f"the callee's PAI passed through:\n{r}")

    def test_ack_and_cancel_are_not_challenged(self):
        with server("id-ackcancel") as p:
            p.start()
            with p.client("alice") as a:
                # a CANCEL for nothing: 481, not 407
                fake = a.build_request("INVITE", BOB, body=make_sdp(),
                                       content_type="application/sdp")
                r = a.cancel(fake)
                self.assertEqual(r.status, 481, r)
                # a stray ACK: silently dropped, never challenged
                ack = a.build_request("ACK", BOB, to=f"<{BOB}>;tag=nothing", contact=False)
                a.send(ack)
                no_message(a, 1.0)
                # the connection still works
                self.assertEqual(a.options().status, 200)


# ---------------------------------------------------------------------------
# Proxying
# ---------------------------------------------------------------------------


class TestProxy(unittest.TestCase):
    def test_max_forwards(self):
        with server("px-maxfwd") as p:
            p.start()
            with register(p, "bob") as b, p.client("alice") as a:
                r = a.message(BOB, "loop?", headers={"Max-Forwards": 0})
                self.assertEqual(r.status, 483, r)
                no_message(b)
                # Max-Forwards 1 still reaches bob, with 0 left
                prime(a)
                req = send_authed(a, "MESSAGE", BOB, body="last hop", content_type="text/plain",
                                  contact=False, headers={"Max-Forwards": 1})
                m = b.wait_request("MESSAGE")
                self.assertEqual(m.header("Max-Forwards"), "0")
                b.respond(m, 200)
                self.assertEqual(a.wait_response(req).status, 200)
                # the server answers OPTIONS for itself even at 0 (RFC 3261 §11)
                r = a.request("OPTIONS", f"sip:{DOMAIN}", headers={"Max-Forwards": 0})
                self.assertEqual(r.status, 200, r)

    def test_no_binding_480_and_unknown_user_404(self):
        with server("px-480-404") as p:
            p.start()
            with p.client("alice") as a:
                r = a.message(BOB, "are you there?")
                self.assertEqual(r.status, 480, r)
                r = a.message(f"sip:nobody@{DOMAIN}", "hello?")
                self.assertEqual(r.status, 404, r)
                resp, _ = a.invite(BOB)
                self.assertEqual(resp.status, 480, resp)
                rec = call_record(p, resp.request.call_id)
                self.assertEqual(rec["reason"], "480 Temporarily Unavailable")
                self.assertEqual(rec["answered"], "-")

    def test_message_size_limit(self):
        with server("px-413", {"im.max_body_size": 1000}) as p:
            p.start()
            with register(p, "bob") as b, p.client("alice") as a:
                r = a.message(BOB, "x" * 1001)
                self.assertEqual(r.status, 413, r)
                no_message(b)
                req = send_authed(a, "MESSAGE", BOB, body="y" * 1000, content_type="text/plain",
                                  contact=False)
                m = b.wait_request("MESSAGE")
                self.assertEqual(len(m.body), 1000)
                b.respond(m, 200)
                self.assertEqual(a.wait_response(req).status, 200)

    def test_message_any_content_type_passes_through(self):
        with server("px-ctype") as p:
            p.start()
            with register(p, "bob") as b, p.client("alice") as a:
                prime(a)
                ctype = 'application/vnd.parley-test+octets; charset="x-odd"; v=1'
                body = bytes(range(256)) + b"\r\n\r\nSIP/2.0 200 OK\r\n"
                req = send_authed(a, "MESSAGE", BOB, body=body, content_type=ctype, contact=False)
                m = b.wait_request("MESSAGE")
                self.assertEqual(m.header("Content-Type"), ctype)
                self.assertEqual(m.body, body)
                b.respond(m, 200)
                self.assertEqual(a.wait_response(req).status, 200)

    def test_message_reaches_every_device(self):
        with server("px-msgfork") as p:
            p.start()
            with register(p, "bob") as b1, register(p, "bob") as b2, p.client("alice") as a:
                prime(a)
                req = send_authed(a, "MESSAGE", BOB, body="to all of you",
                                  content_type="text/plain", contact=False)
                m1 = b1.wait_request("MESSAGE")
                m2 = b2.wait_request("MESSAGE")
                self.assertEqual((m1.text, m2.text), ("to all of you",) * 2)
                self.assertEqual(m1.uri, b1.contact_uri())
                self.assertEqual(m2.uri, b2.contact_uri())
                b1.respond(m1, 200)
                b2.respond(m2, 200)
                r = a.wait_response(req)
                self.assertEqual(r.status, 200, r)
                no_message(a)  # exactly one final response

    def test_invite_forks_and_the_answer_cancels_the_rest(self):
        with server("px-fork") as p:
            p.start()
            with register(p, "bob") as b1, register(p, "bob") as b2, register(p, "alice") as a:
                prime(a)
                inv = invite(a, BOB)
                i1 = b1.wait_request("INVITE")
                i2 = b2.wait_request("INVITE")
                for i, b in ((i1, b1), (i2, b2)):
                    self.assertEqual(i.uri, b.contact_uri())
                    self.assertEqual(i.header("Max-Forwards"), "69")
                    self.assertEqual(len(i.vias), 2)
                    rr = i.headers("Record-Route", split=True)
                    self.assertEqual(len(rr), 1, i)
                    self.assertIn(";lr", rr[0])
                    self.assertEqual(i.body, inv.body)
                b1.respond(i1, 180)
                b2.respond(i2, 180)
                # both rang (an early dialog each) before one answers
                ringing = set()
                while len(ringing) < 2:
                    r = a.wait_response(inv, final=False)
                    self.assertLess(r.status, 200, r)
                    if r.status == 180:
                        ringing.add(r.to_tag)
                d1 = b1.answer(i1, 200, body=make_sdp(port=40002))
                c2 = b2.wait_request("CANCEL")
                self.assertEqual(c2.branch, i2.branch)
                self.assertEqual(c2.cseq.number, i2.cseq.number)
                reason = c2.header("Reason") or ""
                self.assertRegex(reason, r"^SIP\s*;\s*cause=200\b", c2)
                b2.respond(c2, 200)
                b2.respond(i2, 487)
                ack487 = b2.wait_request("ACK")
                self.assertEqual(ack487.branch, i2.branch)

                resp = a.wait_response(inv)
                self.assertEqual(resp.status, 200, resp)
                self.assertEqual(resp.to_tag, NameAddr.parse(d1.local_header).tag)
                a.ack(inv, resp)
                ack = b1.wait_request("ACK")
                self.assertEqual(ack.call_id, inv.call_id)
                no_message(a)  # the 487 of the cancelled branch stays with the proxy
                no_message(b2, 0.2)

                dlg = Dialog.from_uac(inv, resp)
                fut = bg(a.bye, dlg)
                bye = b1.wait_request("BYE")
                b1.respond(bye, 200)
                self.assertEqual(fut.result(scaled(10)).status, 200)
                rec = call_record(p, inv.call_id)
                self.assertEqual(rec["caller"], f"alice@{DOMAIN}")
                self.assertEqual(rec["callee"], f"bob@{DOMAIN}")
                self.assertEqual(rec["reason"], "BYE from caller")
                self.assertNotEqual(rec["answered"], "-")
                # the cancelled branch's early dialog (from its 180) ended with
                # its 487: nothing of the call is left
                self.assertEqual(p.ctl("status", json=True).stdout["daemon"]["dialogs"], 0)

    def test_both_devices_answer(self):
        # Both of bob's devices answer before the proxy can cancel either:
        # both 2xx reach alice (RFC 3261 §16.7 step 5), each ACK and BYE
        # reaches the device that sent it, and the call is logged once.
        with server("px-two-2xx") as p:
            p.start()
            with register(p, "bob") as b1, register(p, "bob") as b2, register(p, "alice") as a:
                prime(a)
                inv = invite(a, BOB)
                i1 = b1.wait_request("INVITE")
                i2 = b2.wait_request("INVITE")
                d1 = b1.answer(i1, 200, body=make_sdp(port=40002))
                d2 = b2.answer(i2, 200, body=make_sdp(port=40004))
                r1 = a.wait_response(inv)
                r2 = a.wait_response(inv)
                self.assertEqual((r1.status, r2.status), (200, 200))
                tags = {r1.to_tag, r2.to_tag}
                self.assertEqual(tags, {NameAddr.parse(d1.local_header).tag,
                                        NameAddr.parse(d2.local_header).tag})
                for r in (r1, r2):
                    a.ack(inv, r)
                self.assertEqual(b1.wait_request("ACK").to_tag, NameAddr.parse(d1.local_header).tag)
                self.assertEqual(b2.wait_request("ACK").to_tag, NameAddr.parse(d2.local_header).tag)
                # alice keeps the first answer and hangs up the other
                device = {NameAddr.parse(d1.local_header).tag: b1,
                          NameAddr.parse(d2.local_header).tag: b2}
                first, second = r1, r2
                keep_dev, drop_dev = device[first.to_tag], device[second.to_tag]
                fut = bg(a.bye, Dialog.from_uac(inv, second))
                bye = drop_dev.wait_request("BYE")
                drop_dev.respond(bye, 200)
                self.assertEqual(fut.result(scaled(10)).status, 200)
                fut = bg(a.bye, Dialog.from_uac(inv, first))
                bye = keep_dev.wait_request("BYE")
                keep_dev.respond(bye, 200)
                self.assertEqual(fut.result(scaled(10)).status, 200)
                self.assertEqual(len(p.find_log("call.ended", call_id=inv.call_id)), 1)
                call_record(p, inv.call_id)  # the store's writer thread has written it
                self.assertEqual(len([c for c in calls(p) if c["call_id"] == inv.call_id]), 1)
                self.assertEqual(p.ctl("status", json=True).stdout["daemon"]["dialogs"], 0)

    def test_subscribe_dialog(self):
        # an event package Parley does not serve itself (presence it does)
        # goes to the user's device and makes a dialog NOTIFYs follow
        with server("px-subscribe") as p:
            p.start()
            with register(p, "bob") as b, register(p, "alice") as a:
                prime(a)
                sub = send_authed(a, "SUBSCRIBE", BOB, headers={"Event": "dialog", "Expires": 600})
                s = b.wait_request("SUBSCRIBE")
                self.assertEqual(len(s.headers("Record-Route", split=True)), 1, s)
                ds = b.answer(s, 200, headers={"Expires": 600})
                r = a.wait_response(sub)
                self.assertEqual(r.status, 200, r)
                da = Dialog.from_uac(sub, r)
                n = self._in_dialog(b, ds, a, "NOTIFY",
                                    headers={"Event": "dialog",
                                             "Subscription-State": "active;expires=600"},
                                    body="<dialog-info/>", content_type="application/dialog-info+xml")
                self.assertEqual(n.text, "<dialog-info/>")
                self._in_dialog(a, da, b, "SUBSCRIBE", headers={"Event": "dialog", "Expires": 0})

    def test_busy_and_decline_relayed(self):
        with server("px-486-603") as p:
            p.start()
            with register(p, "bob") as b1, p.client("alice") as a:
                prime(a)
                inv = invite(a, BOB)
                i = b1.wait_request("INVITE")
                b1.respond(i, 486)
                ack = b1.wait_request("ACK")
                self.assertEqual(ack.branch, i.branch)
                r = a.wait_response(inv)
                self.assertEqual(r.status, 486, r)
                a.ack(inv, r)
                rec = call_record(p, inv.call_id)
                self.assertEqual(rec["reason"], "486 Busy Here")
                self.assertEqual(rec["answered"], "-")

                # a 503 is not passed on (RFC 3261 §16.7 step 6): 500 instead
                inv = invite(a, BOB)
                i = b1.wait_request("INVITE")
                b1.respond(i, 503, headers={"Retry-After": "30"})
                b1.wait_request("ACK")
                r = a.wait_response(inv)
                self.assertEqual(r.status, 500, r)
                a.ack(inv, r)

                # 603 from one of two devices ends the other branch too
                with register(p, "bob") as b2:
                    inv = invite(a, BOB)
                    i1 = b1.wait_request("INVITE")
                    i2 = b2.wait_request("INVITE")
                    b2.respond(i2, 180)
                    b1.respond(i1, 603)
                    b1.wait_request("ACK")
                    c2 = b2.wait_request("CANCEL")
                    self.assertEqual(c2.branch, i2.branch)
                    b2.respond(c2, 200)
                    b2.respond(i2, 487)
                    b2.wait_request("ACK")
                    r = a.wait_response(inv)
                    self.assertEqual(r.status, 603, r)
                    a.ack(inv, r)
                    rec = call_record(p, inv.call_id)
                    self.assertEqual(rec["reason"], "603 Decline")

    def test_caller_cancel(self):
        with server("px-cancel") as p:
            p.start()
            with register(p, "bob") as b, p.client("alice") as a:
                prime(a)
                inv = invite(a, BOB)
                i = b.wait_request("INVITE")
                b.respond(i, 180)
                ringing = a.wait_response(inv, final=False)
                while ringing.status == 100:
                    ringing = a.wait_response(inv, final=False)
                self.assertEqual(ringing.status, 180)
                # a CANCEL carries no credentials: it must not be challenged
                cancel = SipMessage.request("CANCEL", inv.uri, [
                    ("Via", inv.headers("Via")[0]), ("Max-Forwards", "70"),
                    ("From", inv.header("From")), ("To", inv.header("To")),
                    ("Call-ID", inv.call_id), ("CSeq", f"{inv.cseq.number} CANCEL"),
                    ("Reason", 'SIP;cause=487;text="test hang-up"')])
                a.send(cancel)
                self.assertEqual(a.wait_response(cancel).status, 200)
                c = b.wait_request("CANCEL")
                self.assertEqual(c.branch, i.branch)
                self.assertIn("cause=487", c.header("Reason") or "", c)
                b.respond(c, 200)
                b.respond(i, 487)
                b.wait_request("ACK")
                r = a.wait_response(inv)
                self.assertEqual(r.status, 487, r)
                a.ack(inv, r)
                rec = call_record(p, inv.call_id)
                self.assertEqual(rec["answered"], "-")
                self.assertRegex(rec["reason"], r"(?i)cancel")
                self.assertEqual(p.ctl("status", json=True).stdout["daemon"]["dialogs"], 0)

    def _in_dialog(self, sender, dlg, receiver, method, status=200, **kw):
        fut = bg(sender.request_in_dialog, dlg, method, **kw)
        req = receiver.wait_request(method)
        self.assertEqual(req.call_id, dlg.call_id)
        self.assertEqual(len(req.vias), 2, req)  # the sender's and the proxy's
        self.assertEqual(req.header("Max-Forwards"), "69", req)
        body = make_sdp(port=40004) if method == "INVITE" else b""
        receiver.respond(req, status, body=body,
                         content_type="application/sdp" if body else None)
        resp = fut.result(scaled(10))
        self.assertEqual(resp.status, status, resp)
        return req

    def test_in_dialog_requests_both_ways(self):
        with server("px-dialog") as p:
            p.start()
            with register(p, "bob") as b, register(p, "alice") as a:
                inv, da, db = establish(a, b)
                self._in_dialog(a, da, b, "INVITE", body=make_sdp(port=40006),
                                content_type="application/sdp")
                b.wait_request("ACK")
                self._in_dialog(b, db, a, "INFO", headers={"Info-Package": "dtmf"},
                                body="Signal=5\r\n", content_type="application/dtmf-relay")
                self._in_dialog(a, da, b, "UPDATE")
                self._in_dialog(a, da, b, "REFER", status=202,
                                headers={"Refer-To": f"<sip:carol@{DOMAIN}>"})
                self._in_dialog(b, db, a, "NOTIFY",
                                headers={"Event": "refer", "Subscription-State": "terminated"},
                                body="SIP/2.0 200 OK\r\n", content_type="message/sipfrag")
                self._in_dialog(b, db, a, "INVITE", body=make_sdp(port=40008),
                                content_type="application/sdp")
                a.wait_request("ACK")
                self._in_dialog(b, db, a, "BYE")
                rec = call_record(p, inv.call_id)
                self.assertEqual(rec["reason"], "BYE from callee")
                p.wait_log("call.ended", call_id=inv.call_id, reason="BYE from callee")
                # the dialog is gone: a late request in it gets 481
                r = a.request_in_dialog(da, "INFO")
                self.assertEqual(r.status, 481, r)

    def test_prack_in_the_early_dialog(self):
        with server("px-prack") as p:
            p.start()
            with register(p, "bob") as b, register(p, "alice") as a:
                prime(a)
                inv = invite(a, BOB, headers={"Supported": "100rel"})
                i = b.wait_request("INVITE")
                b.respond(i, 183, headers={"Require": "100rel", "RSeq": "1"},
                          body=make_sdp(port=40002), content_type="application/sdp")
                r183 = a.wait_response(inv, final=False)
                while r183.status == 100:
                    r183 = a.wait_response(inv, final=False)
                self.assertEqual(r183.status, 183, r183)
                self.assertEqual(r183.header("RSeq"), "1")
                early = Dialog.from_uac(inv, r183)
                prack = self._in_dialog(a, early, b, "PRACK",
                                        headers={"RAck": f"1 {inv.cseq.number} INVITE"})
                self.assertEqual(prack.header("RAck"), f"1 {inv.cseq.number} INVITE")
                db = b.answer(i, 200, body=make_sdp(port=40002))
                resp = a.wait_response(inv)
                self.assertEqual(resp.status, 200, resp)
                a.ack(inv, resp)
                b.wait_request("ACK")
                self._in_dialog(b, db, a, "BYE")
                self.assertEqual(call_record(p, inv.call_id)["reason"], "BYE from callee")

    def test_caller_vanishes_while_ringing(self):
        with server("px-caller-gone") as p:
            p.start()
            with register(p, "bob") as b:
                a = register(p, "alice")
                prime(a)
                inv = invite(a, BOB)
                i = b.wait_request("INVITE")
                b.respond(i, 180)
                a.conn.abort()
                c = b.wait_request("CANCEL")
                self.assertEqual(c.branch, i.branch)
                b.respond(c, 200)
                b.respond(i, 487)
                b.wait_request("ACK")
                rec = call_record(p, inv.call_id)
                self.assertEqual(rec["answered"], "-")
                self.assertEqual(rec["reason"], "caller connection closed")

    def test_callee_vanishes_while_ringing(self):
        with server("px-callee-gone") as p:
            p.start()
            with p.client("alice") as a:
                b = register(p, "bob")
                prime(a)
                inv = invite(a, BOB)
                i = b.wait_request("INVITE")
                b.respond(i, 180)
                b.conn.abort()
                r = a.wait_response(inv)
                self.assertEqual(r.status, 480, r)
                a.ack(inv, r)
                rec = call_record(p, inv.call_id)
                self.assertEqual(rec["reason"], "480 Temporarily Unavailable")

    def test_bye_after_the_other_side_vanished_ends_the_call(self):
        # alice's connection drops mid-call; bob hangs up. His BYE cannot
        # be delivered, but the call is over: the call log must say so now,
        # not when bob's connection closes or the dialog times out (24 h).
        with server("px-bye-gone") as p:
            p.start()
            with register(p, "bob") as b:
                a = register(p, "alice")
                inv, da, db = establish(a, b)
                a.conn.abort()
                wait_until(lambda: registrations(p, "alice") == [], 5, "alice's binding to go")
                r = b.bye(db)
                self.assertIn(r.status, (408, 480, 481), r)
                rec = call_record(p, inv.call_id)
                self.assertNotEqual(rec["answered"], "-")
                self.assertEqual(p.ctl("status", json=True).stdout["daemon"]["dialogs"], 0)

    def test_in_dialog_requests_stay_in_their_dialog(self):
        # In-dialog requests are not authenticated; what lets them through
        # is the dialog. So they may only go to the dialog's other side:
        # bob must not use his call with alice to reach carol's device
        # (without credentials, with any From he likes).
        with server("px-dialog-target") as p:
            p.start()
            with register(p, "bob") as b, register(p, "alice") as a, \
                    register(p, "carol") as c:
                inv, da, db = establish(a, b)
                req = b.build_in_dialog(db, "MESSAGE", body="hi, it's your CEO",
                                        content_type="text/plain")
                req.start_line = f"MESSAGE {c.contact_uri()} SIP/2.0"
                from_ = NameAddr.parse(req.header("From"))
                req.set_header("From", f'"CEO" <sip:ceo@{DOMAIN}>;tag={from_.tag}')
                b.send(req)
                got = c.conn.try_recv(scaled(1.0))
                self.assertIsNone(got, f"carol got a request from bob's dialog with alice:\n{got}")
                # (it may go to alice, or be refused; it must not go elsewhere)
                m = a.conn.try_recv(scaled(0.5))
                if m is not None and m.is_request:
                    a.respond(m, 200)

    def test_in_dialog_requests_only_from_the_dialogs_parties(self):
        # A dialog's Call-ID and tags are no credential: carol, who learnt
        # them (dialog-event NOTIFYs, Replaces...), gets 403 for a re-INVITE
        # or a BYE from her own connection, authenticated or not, and bob
        # receives nothing. The ACK of a 2xx is dropped the same way.
        with server("px-dialog-party") as p:
            p.start()
            with register(p, "bob") as b, register(p, "alice") as a, \
                    register(p, "carol") as m, p.client() as anon:
                inv, da, db = establish(a, b)
                for who in (m, anon):
                    for method in ("INVITE", "BYE"):
                        req = a.build_in_dialog(da, method,
                                                body=make_sdp(port=40066) if method == "INVITE"
                                                else "",
                                                content_type="application/sdp"
                                                if method == "INVITE" else None)
                        who.send(req)
                        r = who.wait_response(req)
                        self.assertEqual(r.status, 403, r)
                        if method == "INVITE":
                            who.ack(req, r)
                    ack = a.build_in_dialog(da, "ACK")
                    who.send(ack)
                no_message(b, 1.0)
                # alice, the caller, still reaches bob
                self._in_dialog(a, da, b, "BYE")

    def test_credentials_never_reach_the_callee(self):
        # The caller's digest response for our realm is for Parley alone: with
        # it, the callee could test password guesses offline. Not in the
        # INVITE, the ACK, or an in-dialog BYE (clients repeat it there).
        with server("px-no-creds") as p:
            p.start()
            with register(p, "bob") as b, register(p, "alice") as a:
                prime(a)
                inv = invite(a, BOB, headers={"Remote-Party-ID":
                                              f'"The CEO" <sip:ceo@{DOMAIN}>;party=calling'})
                i = b.wait_request("INVITE")
                self.assertIsNone(i.header("Proxy-Authorization"), i)
                self.assertIsNone(i.header("Authorization"), i)
                self.assertIsNone(i.header("Remote-Party-ID"), i)
                db = b.answer(i, 200, body=make_sdp(port=40002))
                resp = a.wait_response(inv)
                self.assertEqual(resp.status, 200, resp)
                da = Dialog.from_uac(inv, resp)
                creds = inv.header("Proxy-Authorization")
                self.assertTrue(creds)
                ack = a.build_in_dialog(da, "ACK")
                ack.start_line = ack.start_line  # the 2xx ACK repeats the INVITE's credentials
                ack.add_header("Proxy-Authorization", creds)
                a.send(ack)
                got = b.wait_request("ACK")
                self.assertIsNone(got.header("Proxy-Authorization"), got)
                bye = a.build_in_dialog(da, "BYE")
                bye.add_header("Proxy-Authorization", creds)
                bye.add_header("Authorization", creds.replace("Digest", "Digest", 1))
                a.send(bye)
                got = b.wait_request("BYE")
                self.assertIsNone(got.header("Proxy-Authorization"), got)
                self.assertIsNone(got.header("Authorization"), got)
                b.respond(got, 200)
                a.wait_response(bye)

    def test_a_callee_cannot_grow_the_dialog_table(self):
        """Every early response with a new To tag is an early dialog the
        proxy tracks; a callee answering one INVITE with endless new tags
        gets a few, then is refused (logged), and all go with the call."""
        with server("px-dialog-cap") as p:
            p.start()
            with register(p, "bob") as b, register(p, "alice") as a:
                prime(a)
                inv = invite(a, BOB)
                i = b.wait_request("INVITE")
                for n in range(40):
                    b.respond(i, 183, to_tag=f"fork{n}")
                    b._uas_tags.clear()
                p.wait_log("dialog.refused", reason="too many dialogs for one call")
                seen = 0
                while seen < 40:
                    r = a.wait_response(inv, final=False)
                    if r.status == 183:
                        seen += 1
                self.assertEqual(p.ctl("status", json=True).stdout["daemon"]["dialogs"], 32)
                b.respond(i, 486, to_tag="fork0")
                self.assertEqual(a.wait_response(inv).status, 486)
                self.assertEqual(p.ctl("status", json=True).stdout["daemon"]["dialogs"], 0)

    def test_request_in_an_unknown_dialog_gets_481(self):
        with server("px-481") as p:
            p.start()
            with register(p, "bob") as b, p.client("alice") as a:
                for method in ("BYE", "INFO", "INVITE"):
                    body = make_sdp() if method == "INVITE" else ""
                    r = a.request(method, BOB, to=f"<{BOB}>;tag=no-such-dialog", body=body,
                                  content_type="application/sdp" if body else None)
                    self.assertEqual(r.status, 481, f"{method}: {r.summary()}")
                no_message(b)

    def test_call_log(self):
        with server("px-calllog") as p:
            p.start()
            with register(p, "bob") as b, register(p, "alice") as a:
                inv1, da, db = establish(a, b)
                time.sleep(1.1)
                self._in_dialog(a, da, b, "BYE")
                inv2 = invite(a, BOB)
                i = b.wait_request("INVITE")
                b.respond(i, 486)
                r = a.wait_response(inv2)
                self.assertEqual(r.status, 486)
                a.ack(inv2, r)

                rec1 = call_record(p, inv1.call_id)
                rec2 = call_record(p, inv2.call_id)
                self.assertEqual((rec1["caller"], rec1["callee"]),
                                 (f"alice@{DOMAIN}", f"bob@{DOMAIN}"))
                self.assertEqual(rec1["reason"], "BYE from caller")
                self.assertNotEqual(rec1["answered"], "-")
                self.assertLessEqual(rec1["started"], rec1["answered"])
                self.assertLess(rec1["answered"], rec1["ended"])
                self.assertEqual(rec2["reason"], "486 Busy Here")
                self.assertEqual(rec2["answered"], "-")
                self.assertNotEqual(rec2["ended"], "-")
                ended = p.find_log("call.ended", call_id=inv1.call_id)
                self.assertEqual(len(ended), 1, ended)
                self.assertEqual(ended[0]["answered"], "yes")
                self.assertEqual(len(p.find_log("call.ended", call_id=inv2.call_id)), 1)
                text = p.ctl("calls").stdout
                self.assertIn("BYE from caller", text)
                self.assertIn("486 Busy Here", text)
                # one record per call: the prime MESSAGE made none
                self.assertEqual(len(calls(p)), 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
