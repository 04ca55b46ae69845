#!/usr/bin/python3
"""Federation over mutual TLS (issue #7), driven with the test client.

Two deployments: a.test on 127.0.0.2 and b.test on 127.0.0.3, each with the
CA `parleyctl init` made for it, each trusting the other's CA (`parleyctl
trust add OTHER/pki/ca.pem`) and naming the other as a partner (`parleyctl
partner add DOMAIN --server sip.DOMAIN:PORT --address IP`), unless a test
says otherwise. alice@a.test and bob@b.test are test clients registered
with their own server.

What is proven here:
  * IM both ways; one connection per partner, reused, leaving from the
    node's own address, re-made after the partner restarts or after it was
    closed for idleness; partners found through DNS SRV (dnsmasq), or named
    by host (resolved through DNS) or by IP address; the partner's
    certificate in `status`.
  * Call signalling (INVITE/ACK/BYE with an SDES offer) and presence
    (pending until `parleyctl presence allow`, then state, refresh and end
    of the subscription) across the two deployments, also after the
    connection they started on has gone.
  * Parley presents its certificate with SNI and checks the partner's chain
    and name (a stand-in partner written in Python sees what Parley sends).
  * Refusals, each logged and with nothing delivered: a certificate from an
    untrusted CA, one for another host, a revoked one, a stale CRL, a missing
    CRL under tls.require_crl, no client certificate (also for an
    in-dialog request), identities (From, P-Asserted-Identity) outside the
    partner's domain, a partner's request for a third domain, a request
    for a domain that is neither ours nor a partner's.
  * Each decision logged with the certificate's subject and the reason.
  * What proves a partner's domain: dNSName or sip:DOMAIN URI
    subjectAltName, or the configured server host; nothing else.
  * parleyctl partner / trust / cert request|install|revoke, and the
    cert.expiring warning at start-up.

The baresip parts (MESSAGE, presence and an SRTP call between the two
deployments) are in test_federation_baresip.py.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import ssl
import threading
import time
import unittest
from pathlib import Path
from typing import Any, Callable

from harness import (TIMEOUT_SCALE, CtlResult, Dnsmasq, Parley, free_port, issue_cert, make_ca, make_crl,
                     openssl, run_peer)
import sipclient
from sipclient import (Framer, NameAddr, SipClient, SipMessage, SipTimeout,
                       random_token)

A_DOMAIN, B_DOMAIN = "a.test", "b.test"
A_ADDR, B_ADDR = "127.0.0.2", "127.0.0.3"
ALICE, BOB = f"sip:alice@{A_DOMAIN}", f"sip:bob@{B_DOMAIN}"
USERS_A = {"alice": "alice-secret"}
USERS_B = {"bob": "bob-secret"}
DEV_CA_A = f"CN=Parley development CA for {A_DOMAIN}"
DEV_CA_B = f"CN=Parley development CA for {B_DOMAIN}"


def T(seconds: float) -> float:
    """A timeout for something the server should do, scaled for slow builds."""
    return seconds * TIMEOUT_SCALE


def ok(res: CtlResult) -> CtlResult:
    if res.returncode != 0:
        raise AssertionError(f"parleyctl failed ({res.returncode}): {res.stdout} {res.stderr}")
    return res


def add_partner(p: Parley, other: Parley, *, server: str | None = None,
                address: str | None = None, srv: bool = False) -> CtlResult:
    """p names other's domain a partner: by default at sip.DOMAIN:PORT with
    --address (no DNS needed); srv=True leaves it to DNS SRV."""
    if srv:
        return ok(p.ctl("partner", "add", other.domain))
    host = server or f"sip.{other.domain}"
    return ok(p.ctl("partner", "add", other.domain, "--server", f"{host}:{other.mtls_port}",
                    "--address", address or other.address))


class Pair:
    """a.test (A) and b.test (B) as two Parley instances, made but not
    started. By default they trust each other's CA and are each other's
    partners by named server; the with-block stops both."""

    def __init__(self, name: str, *, a_trusts_b: bool = True, b_trusts_a: bool = True,
                 a_partner: bool = True, b_partner: bool = True,
                 a_config: dict | None = None, b_config: dict | None = None,
                 debug: bool = True) -> None:
        self.stack = contextlib.ExitStack()
        try:
            self.A = self.stack.enter_context(Parley(
                domain=A_DOMAIN, address=A_ADDR, name=f"{name}-a", users=USERS_A,
                config=a_config, debug=debug))
            self.B = self.stack.enter_context(Parley(
                domain=B_DOMAIN, address=B_ADDR, name=f"{name}-b", users=USERS_B,
                config=b_config, debug=debug))
            if a_trusts_b:
                ok(self.A.ctl("trust", "add", self.B.ca_file))
            if b_trusts_a:
                ok(self.B.ctl("trust", "add", self.A.ca_file))
            if a_partner:
                add_partner(self.A, self.B)
            if b_partner:
                add_partner(self.B, self.A)
        except BaseException:
            self.stack.close()
            raise

    def start(self) -> "Pair":
        self.A.start()
        self.B.start()
        return self

    def __enter__(self) -> "Pair":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stack.__exit__(*exc)


def user(p: Parley, name: str, **kw: Any) -> SipClient:
    """A registered test client of p's user."""
    c = p.client(name, **kw)
    r = c.register(expires=600)
    if r.status != 200:
        c.close()
        raise AssertionError(f"REGISTER of {name}@{p.domain} got {r.summary()}")
    return c


def exchange(send: Callable[[], SipMessage], receiver: SipClient, *, timeout: float = 10.0,
             grace: float = 1.0, method: str = "MESSAGE"
             ) -> tuple[SipMessage | None, SipMessage | None]:
    """Runs send() (a request and its final response) in a thread while
    receiver listens; a request of ``method`` that reaches the receiver is
    answered 200. Returns (the sender's final response, the request
    delivered or None). After the sender has its answer the receiver is
    watched ``grace`` seconds more: nothing may arrive late."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["resp"] = send()
        except BaseException as e:  # reported below
            box["err"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    got = None
    end = time.monotonic() + T(timeout)
    while got is None and time.monotonic() < end:
        try:
            got = receiver.wait_request(method, timeout=0.1)
        except SipTimeout:
            if not t.is_alive():
                try:
                    got = receiver.wait_request(method, timeout=grace)
                except SipTimeout:
                    pass
                break
    if got is not None:
        receiver.respond(got, 200)
    t.join(T(timeout))
    if "err" in box:
        raise box["err"]
    return box.get("resp"), got


def im(sender: SipClient, uri: str, text: str, receiver: SipClient,
       **kw: Any) -> tuple[SipMessage | None, SipMessage | None]:
    """A user's MESSAGE through its own server (digest answered)."""
    return exchange(lambda: sender.message(uri, text, timeout=T(15)), receiver, **kw)


def delivered(test: unittest.TestCase, sender: SipClient, uri: str, text: str,
              receiver: SipClient) -> SipMessage:
    resp, got = im(sender, uri, text, receiver)
    test.assertIsNotNone(got, f"MESSAGE {text!r} not delivered; sender got "
                              f"{resp.summary() if resp else None}")
    test.assertEqual(got.body, text.encode())
    test.assertIsNotNone(resp)
    test.assertEqual(resp.status, 200, resp)
    return got


def call(alice: SipClient, uri: str, bob: SipClient) -> tuple[SipMessage, sipclient.Dialog,
                                                                sipclient.Dialog]:
    """alice INVITEs uri (an SRTP offer), bob answers 200 with an SRTP
    answer, alice ACKs and the ACK reaches bob. Returns (the INVITE as bob
    got it, alice's dialog, bob's dialog)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["r"] = alice.invite(uri, timeout=T(10))
        except BaseException as e:
            box["err"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        inv = bob.wait_request("INVITE", timeout=T(10))
    except SipTimeout:
        t.join(T(15))
        raise AssertionError(f"the INVITE did not reach {bob.aor}; caller got "
                             f"{box.get('r', (None,))[0]!r} {box.get('err', '')}") from None
    bob_dlg = bob.answer(inv, 200, body=sipclient.make_sdp(bob.conn.local_address[0], 41000))
    t.join(T(15))
    if "err" in box:
        raise box["err"]
    resp, alice_dlg = box["r"]
    if resp.status != 200 or alice_dlg is None:
        raise AssertionError(f"INVITE got {resp.summary()}")
    bob.wait_request("ACK", timeout=T(5))
    return inv, alice_dlg, bob_dlg


PIDF = "application/pidf+xml"


def pidf(aor: str, basic: str = "open", note: str = "") -> str:
    n = f"<note>{note}</note>" if note else ""
    return ('<?xml version="1.0" encoding="UTF-8"?>\r\n'
            f'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="{aor}">\r\n'
            f'<tuple id="t1"><status><basic>{basic}</basic></status>{n}</tuple>\r\n'
            '</presence>\r\n')


def basic_of(body: bytes) -> str | None:
    m = re.search(rb"<(?:\w+:)?basic>\s*(open|closed)\s*</", body)
    return m.group(1).decode() if m else None


_etags: dict[int, str] = {}


def publish(c: SipClient, basic: str, note: str = "") -> SipMessage:
    """PUBLISH (the client's one publication, modified in place with
    SIP-If-Match after the first)."""
    h = {"Event": "presence"}
    if id(c) in _etags:
        h["SIP-If-Match"] = _etags[id(c)]
    r = c.request_with_auth("PUBLISH", c.aor, expires=600, headers=h,
                            body=pidf(c.aor, basic, note), content_type=PIDF, contact=False)
    if r.status != 200:
        raise AssertionError(f"PUBLISH of {c.aor} got {r.summary()}")
    _etags[id(c)] = r.header("SIP-ETag") or ""
    return r


def notify(c: SipClient, call_id: str, timeout: float = 5.0) -> SipMessage:
    """The next NOTIFY of that subscription, answered 200."""
    n = c._wait(lambda m: m.is_request and m.method == "NOTIFY" and m.call_id == call_id,
                T(timeout), f"NOTIFY for {call_id}")
    c.respond(n, 200)
    return n


def fake_partner(target: Parley, cert: str | None, key: str | None, *, user: str = "alice",
                 domain: str = A_DOMAIN, source: str = A_ADDR,
                 listener: str = "mtls") -> SipClient:
    """A test client that connects to target like a partner's server would
    (from `source`, presenting cert/key, or no certificate at all) and sends
    requests as user@domain, without digest. listener "mtls" is the
    server-to-server listener; "tls" the client one (which asks for no
    certificate)."""
    connect = target.connect_mtls if listener == "mtls" else target.connect
    conn = connect(certfile=cert, keyfile=key, source_address=source, name="partner")
    return SipClient(conn, user=user, domain=domain)


def partner_message(c: SipClient, uri: str, text: str, *, from_: str | None = None,
                    headers: dict | None = None) -> SipMessage:
    h = {"P-Asserted-Identity": f"<{c.aor}>"}
    h.update(headers or {})
    h = {k: v for k, v in h.items() if v is not None}
    return c.request("MESSAGE", uri, body=text, content_type="text/plain", contact=False,
                     from_=from_, headers=h, timeout=T(10))


def pem_subject(path: str) -> str:
    return openssl("x509", "-in", path, "-noout", "-subject", "-nameopt", "RFC2253").split("=", 1)[1].strip()


def partner_status(p: Parley, domain: str) -> dict:
    r = ok(p.ctl("status", json=True))
    for pt in r.stdout.get("partners") or []:
        if pt["domain"] == domain:
            return pt
    raise AssertionError(f"{domain} not among the partners in status: {r.stdout.get('partners')}")


def reissue_server_cert(p: Parley, name: str, *, dns: list[str], ips: list[str] = (),
                        uris: list[str] = (), days: int = 365, cn: str | None = None) -> str:
    """A new certificate for p's own key, from p's own CA, installed with
    `parleyctl cert install` (p reloads it when running)."""
    out = os.path.join(p.dir, f"{name}.pem")
    issue_cert(os.path.join(p.dir, "pki", "ca.pem"), os.path.join(p.dir, "pki", "ca.key"), out,
               cn=cn or dns[0], dns=dns, ips=ips, uris=uris, days=days,
               key=os.path.join(p.dir, "pki", "server.key"))
    ok(p.ctl("cert", "install", out))
    return out


class StandInPartner:
    """A partner server written in Python (b.test's certificate, requiring a
    client certificate from trusted CAs): records the SNI and the client
    certificate of each connection and answers every request 200."""

    def __init__(self, address: str, cert: str, key: str, cafile: str,
                 notify_first: int = 0) -> None:
        # notify_first: a SUBSCRIBE gets that many NOTIFYs before its 200, as
        # a notifier may (RFC 6665 §4.1.2.4: a NOTIFY creates the dialog); the
        # first carries the 200's tag, the others a fresh tag each
        self.notify_first = notify_first
        self.responses: list[SipMessage] = []
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.ctx.load_verify_locations(cafile)
        self.ctx.sni_callback = self._on_sni
        self.sni: list[str | None] = []
        self.peers: list[tuple[tuple, dict]] = []  # (address, certificate) per connection
        self.requests: list[SipMessage] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.port = free_port("tcp")
        self.sock.bind((address, self.port))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _on_sni(self, sslobj: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        with self.lock:
            self.sni.append(name)

    def _serve(self) -> None:
        while not self.stopping:
            try:
                raw, addr = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._conn, args=(raw, addr), daemon=True).start()

    def _conn(self, raw: socket.socket, addr: tuple) -> None:
        raw.settimeout(T(10))
        try:
            s = self.ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as e:
            with self.lock:
                self.errors.append(f"handshake: {e}")
            raw.close()
            return
        with self.lock:
            self.peers.append((addr, s.getpeercert() or {}))
        framer = Framer()
        try:
            while not self.stopping:
                try:
                    data = s.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    return
                framer.feed(data)
                while (m := framer.next_message()) is not None:
                    if not m.is_request:
                        with self.lock:
                            self.responses.append(m)
                        continue
                    with self.lock:
                        self.requests.append(m)
                    answer = self._answer(m)
                    for i in range(self.notify_first if m.method == "SUBSCRIBE" else 0):
                        s.sendall(self._notify(m, answer, fresh_tag=i > 0).to_bytes())
                    if m.method != "ACK":
                        s.sendall(answer.to_bytes())
        except (ssl.SSLError, OSError) as e:
            with self.lock:
                self.errors.append(f"connection: {e}")
        finally:
            s.close()

    @staticmethod
    def _answer(req: SipMessage) -> SipMessage:
        fields = [("Via", v) for v in req.headers("Via")]
        to = req.header("To") or ""
        if ";tag=" not in to:
            to += f";tag={random_token(6)}"
        fields += [("From", req.header("From") or ""), ("To", to),
                   ("Call-ID", req.call_id or ""), ("CSeq", req.header("CSeq") or "")]
        return SipMessage.response(200, "OK", fields)

    @staticmethod
    def _notify(sub: SipMessage, answer: SipMessage, fresh_tag: bool = False) -> SipMessage:
        """The first NOTIFY of the subscription `answer` accepts (or, with
        fresh_tag, of another one the same SUBSCRIBE would have forked)."""
        frm = answer.header("To") or ""
        if fresh_tag:
            frm = re.sub(r";tag=[^;]*", f";tag={random_token(6)}", frm)
        contact = NameAddr.parse(sub.header("Contact") or "").uri
        fields = [("Via", f"SIP/2.0/TLS {B_ADDR};branch=z9hG4bK{random_token(10)}"),
                  ("Max-Forwards", "70")]
        fields += [("Route", r) for r in sub.headers("Record-Route", split=True)]
        fields += [("From", frm), ("To", sub.header("From") or ""),
                   ("Call-ID", sub.call_id or ""), ("CSeq", "1 NOTIFY"),
                   ("Contact", f"<sip:bob@sip.{B_DOMAIN};transport=tls>"), ("Event", "presence"),
                   ("Subscription-State", "active;expires=600")]
        return SipMessage.request("NOTIFY", contact, fields)

    def wait_responses(self, n: int) -> list[SipMessage]:
        """The responses received, once there are n (or after a while)."""
        deadline = time.monotonic() + T(5)
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.responses) >= n:
                    break
            time.sleep(0.05)
        with self.lock:
            return list(self.responses)

    def close(self) -> None:
        self.stopping = True
        self.sock.close()
        self.thread.join(2)


def subscribe_to_bob(alice: SipClient) -> SipMessage:
    """alice's presence SUBSCRIBE to the partner's bob; the final response."""
    return alice.request_with_auth("SUBSCRIBE", BOB, expires=600,
                                   headers={"Event": "presence", "Accept": "application/pidf+xml"})


def stand_in_partner(A: Parley, B: Parley, **kw: Any) -> StandInPartner:
    """A stand-in b.test with B's certificate (B itself never runs), named
    a partner of A and trusted by it. The caller closes it."""
    srv = StandInPartner(B_ADDR, os.path.join(B.dir, "pki", "server.pem"),
                         os.path.join(B.dir, "pki", "server.key"), A.ca_file, **kw)
    try:
        ok(A.ctl("trust", "add", B.ca_file))
        ok(A.ctl("partner", "add", B_DOMAIN, "--server", f"sip.{B_DOMAIN}:{srv.port}",
                 "--address", B_ADDR))
    except BaseException:
        srv.close()
        raise
    return srv


# ---------------------------------------------------------------------------
# Working federation
# ---------------------------------------------------------------------------


class TestFederation(unittest.TestCase):
    def test_message_both_ways(self):
        """alice@a.test and bob@b.test exchange MESSAGEs; each server
        asserts its own user's identity; the partner connection shows in
        the log with the certificate it presented."""
        with Pair("fed-im") as pr:
            pr.start()
            A, B = pr.A, pr.B
            with user(A, "alice") as alice, user(B, "bob") as bob:
                got = delivered(self, alice, BOB, "Hello Bob, from a.test", bob)
                self.assertEqual(sipclient.NameAddr.parse(got.header("From")).uri, ALICE)
                self.assertEqual(got.headers("P-Asserted-Identity"), [f"<{ALICE}>"])

                got = delivered(self, bob, ALICE, "Hello Alice, from b.test", alice)
                self.assertEqual(sipclient.NameAddr.parse(got.header("From")).uri, BOB)
                self.assertEqual(got.headers("P-Asserted-Identity"), [f"<{BOB}>"])

            rec = A.wait_log("federation.connected", partner=B_DOMAIN)
            self.assertEqual(rec["subject"], f"CN=sip.{B_DOMAIN}")
            self.assertEqual(rec["issuer"], DEV_CA_B)
            self.assertEqual(rec["host"], f"sip.{B_DOMAIN}")
            rec = B.wait_log("federation.connected", partner=A_DOMAIN)
            self.assertEqual(rec["subject"], f"CN=sip.{A_DOMAIN}")
            self.assertEqual(rec["issuer"], DEV_CA_A)
            # B accepted A's requests on the strength of A's certificate
            B.wait_log("federation.accepted", domain=A_DOMAIN)
            A.wait_log("federation.accepted", domain=B_DOMAIN)
            for p in (A, B):
                p.assert_no_log("federation.refused")
                p.assert_no_log("cert.expiring")

    def test_each_side_routed_to_the_listener_it_can_use(self):
        """A federated call crosses each server from a client listener to the
        server-to-server one (or back): each server record-routes twice
        (RFC 5658), so each user's device is routed to the client listener
        and each partner to the mutual-TLS one, both by name."""
        with Pair("fed-rr") as pr:
            pr.start()
            A, B = pr.A, pr.B
            with user(A, "alice") as alice, user(B, "bob") as bob:
                inv, adlg, bdlg = call(alice, BOB, bob)
                self.assertEqual(inv.headers("Record-Route", split=True), [
                    f"<sip:sip.{B_DOMAIN}:{B.tls_port};transport=tls;lr>",
                    f"<sip:sip.{B_DOMAIN}:{B.mtls_port};transport=tls;lr>",
                    f"<sip:sip.{A_DOMAIN}:{A.mtls_port};transport=tls;lr>",
                    f"<sip:sip.{A_DOMAIN}:{A.tls_port};transport=tls;lr>"])
                # bob's device goes to B's client port; alice's to A's
                self.assertEqual(bdlg.route_set[0],
                                 f"<sip:sip.{B_DOMAIN}:{B.tls_port};transport=tls;lr>")
                self.assertEqual(adlg.route_set[0],
                                 f"<sip:sip.{A_DOMAIN}:{A.tls_port};transport=tls;lr>")
                # and in-dialog requests still pass every hop both ways
                resp, got = exchange(lambda: alice.bye(adlg, timeout=T(10)), bob, method="BYE")
                self.assertIsNotNone(got)
                self.assertEqual(resp.status, 200, resp)

    def test_credentials_stay_in_their_domain(self):
        """alice's Proxy-Authorization (realm a.test) is consumed by a.test
        (RFC 3261 22.3): her digest response must not travel to another
        organisation."""
        with Pair("fed-creds") as pr:
            pr.start()
            with user(pr.A, "alice") as alice, user(pr.B, "bob") as bob:
                got = delivered(self, alice, BOB, "no credentials attached", bob)
                leaked = [v for v in got.headers("Proxy-Authorization")
                          if re.search(r'realm="?a\.test"?', v)]
                self.assertEqual(leaked, [], f"a.test's credentials reached b.test's user:\n{got}")

    def test_one_connection_reused_from_own_address(self):
        """Five MESSAGEs sent at once before any connection exists wait for
        one connection; later ones reuse it. It leaves from A's own listen
        address (127.0.0.2), not from 127.0.0.1."""
        with Pair("fed-reuse") as pr:
            pr.start()
            A, B = pr.A, pr.B
            with user(A, "alice") as alice, user(B, "bob") as bob:
                texts = [f"burst {i}" for i in range(5)]
                reqs = []
                for t in texts:
                    req = alice.build_request("MESSAGE", BOB, body=t, content_type="text/plain",
                                              contact=False)
                    reqs.append(req)
                # one authenticated MESSAGE first would open the connection:
                # instead answer the challenge of each before the link exists
                first = alice.message(f"sip:nobody@{A_DOMAIN}", "prime credentials")
                self.assertEqual(first.status, 404, first)
                for req in reqs:
                    alice._add_credentials(req, alice.auth_cache.values(), None, None)
                    alice.send(req)
                got = []
                for _ in texts:
                    m = bob.wait_request("MESSAGE", timeout=T(10))
                    bob.respond(m, 200)
                    got.append(m.body.decode())
                self.assertEqual(sorted(got), sorted(texts))
                for req in reqs:
                    self.assertEqual(alice.wait_response(req, timeout=T(10)).status, 200)
                for i in range(3):
                    delivered(self, alice, BOB, f"later {i}", bob)

            self.assertEqual(len(A.find_log("federation.connecting", partner=B_DOMAIN)), 1,
                             A.find_log("federation.connecting"))
            from_a = [r for r in B.find_log("conn.accepted")
                      if r.get("peer", "").startswith(A_ADDR + ":")]
            self.assertEqual(len(from_a), 1, [r.raw for r in B.find_log("conn.accepted")])
            self.assertEqual(len(B.find_log("conn.accepted", peer=re.compile(r"127\.0\.0\.1:\d+"))),
                             1, "only bob's own client comes from 127.0.0.1")

    def test_status_shows_partner_state_and_certificate(self):
        with Pair("fed-status") as pr:
            pr.start()
            A, B = pr.A, pr.B
            st = partner_status(A, B_DOMAIN)
            self.assertEqual(st["state"], "idle", st)
            self.assertEqual(st["server"], f"sip.{B_DOMAIN}")
            self.assertEqual(st["port"], B.mtls_port)
            self.assertNotIn("certificate", st)
            with user(A, "alice") as alice, user(B, "bob") as bob:
                delivered(self, alice, BOB, "status please", bob)
            st = partner_status(A, B_DOMAIN)
            self.assertEqual(st["state"], "up", st)
            self.assertEqual(st["last_error"], "")
            cert = st["certificate"]
            self.assertEqual(cert["subject"], f"CN=sip.{B_DOMAIN}")
            self.assertEqual(cert["issuer"], DEV_CA_B)
            self.assertIn(f"DNS:{B_DOMAIN}", cert["names"])
            # the expiry is B's certificate's notAfter
            end = openssl("x509", "-in", os.path.join(B.dir, "pki", "server.pem"), "-noout",
                          "-enddate", "-dateopt", "iso_8601").split("=", 1)[1].strip()
            self.assertEqual(cert["not_after"].replace("T", " ")[:19], end.replace("T", " ")[:19])
            text = ok(A.ctl("status")).stdout
            self.assertRegex(text, rf"(?m)^\s+{re.escape(B_DOMAIN)}\s+up\s+sip\.b\.test:{B.mtls_port}"
                                   rf"\s+cert CN=sip\.b\.test \(issuer {re.escape(DEV_CA_B)}, until ")

    def test_partner_restart_reconnects(self):
        """After b.test restarts, the next MESSAGE opens a new connection
        and is delivered, without anyone doing anything."""
        with Pair("fed-restart") as pr:
            pr.start()
            A, B = pr.A, pr.B
            with user(A, "alice") as alice:
                with user(B, "bob") as bob:
                    delivered(self, alice, BOB, "before the restart", bob)
                self.assertEqual(B.stop(), 0)
                A.wait_log("federation.disconnected", partner=B_DOMAIN)
                B.start()
                with user(B, "bob") as bob:
                    delivered(self, alice, BOB, "after the restart", bob)
                    delivered(self, bob, ALICE, "and back", alice)
                self.assertEqual(partner_status(A, B_DOMAIN)["state"], "up")
            self.assertEqual(len(A.find_log("federation.connected", partner=B_DOMAIN)), 2)

    def test_partner_killed_reconnects(self):
        """The same after b.test dies hard (SIGKILL) and comes back."""
        with Pair("fed-kill") as pr:
            pr.start()
            A, B = pr.A, pr.B
            with user(A, "alice") as alice:
                with user(B, "bob") as bob:
                    delivered(self, alice, BOB, "before the crash", bob)
                B.kill()
                B.start()
                with user(B, "bob") as bob:
                    delivered(self, alice, BOB, "after the crash", bob)

    def test_foreign_domain_refused_and_never_sent(self):
        """A request for a domain that is neither ours nor a partner's gets
        403 and goes nowhere: no connection, no DNS, nothing at b.test."""
        with Pair("fed-foreign") as pr:
            pr.start()
            A, B = pr.A, pr.B
            markB = B.log_mark()
            with user(A, "alice") as alice:
                r = alice.message("sip:carol@c.test", "to nobody we know")
                self.assertEqual(r.status, 403, r)
                r = alice.request_with_auth("INVITE", "sip:carol@c.test",
                                            body=sipclient.make_sdp(), content_type="application/sdp")
                self.assertEqual(r.status, 403, r)
            rec = A.wait_log("sip.rejected", method="MESSAGE", status="403")
            self.assertEqual(rec["reason"], "request for a foreign domain")
            A.assert_no_log("federation.connecting")
            A.assert_no_log("conn.connect_failed")
            self.assertEqual([r.raw for r in B.log_lines(markB)
                              if r.get("event", "").startswith(("conn.", "federation.", "sip."))],
                             [], "b.test heard something")

    def test_partner_add_remove_live(self):
        """`partner remove` on a running A stops federation at once (403
        both ways: A will not send, and refuses b.test's requests);
        `partner add` brings it back."""
        with Pair("fed-live") as pr:
            pr.start()
            A, B = pr.A, pr.B
            with user(A, "alice") as alice, user(B, "bob") as bob:
                delivered(self, alice, BOB, "while partners", bob)
                r = ok(A.ctl("partner", "remove", B_DOMAIN, json=True))
                self.assertEqual(r.stdout["removed"], B_DOMAIN)
                A.wait_log("federation.partners", count="0")
                resp, got = im(alice, BOB, "after removal", bob)
                self.assertIsNone(got)
                self.assertEqual(resp.status, 403, resp)
                resp, got = im(bob, ALICE, "to a server that dropped us", alice)
                self.assertIsNone(got)
                self.assertEqual(resp.status, 403, resp)
                rec = A.wait_log("federation.refused", domain=B_DOMAIN)
                self.assertEqual(rec["reason"], "not a partner domain")

                r = add_partner(A, B)
                self.assertIn("applied by the running server", r.stdout)
                A.wait_log("federation.partners", count="1", since=A.log_mark() - 5)
                delivered(self, alice, BOB, "partners again", bob)
                delivered(self, bob, ALICE, "partners again, back", alice)

    def test_call_signalling_across_deployments(self):
        """An SRTP INVITE from alice@a.test to bob@b.test, its ACK and the
        BYE travel through both servers (Record-Route of each); the SDES
        key arrives intact; both call logs have the call."""
        with Pair("fed-call") as pr:
            pr.start()
            A, B = pr.A, pr.B
            with user(A, "alice") as alice, user(B, "bob") as bob:
                inv, adlg, bdlg = call(alice, BOB, bob)
                self.assertRegex(inv.body.decode(), r"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:")
                # each server twice: its client side and its server-to-server side
                self.assertEqual(len(inv.headers("Record-Route", split=True)), 4,
                                 inv.headers("Record-Route"))
                resp, got = exchange(lambda: bob.bye(bdlg, timeout=T(10)), alice, method="BYE")
                self.assertIsNotNone(got, "bob's BYE did not reach alice")
                self.assertEqual(resp.status, 200, resp)
            for p in (A, B):
                rec = p.wait_log("call.ended", caller=f"alice@{A_DOMAIN}", callee=f"bob@{B_DOMAIN}")
                self.assertEqual(rec["answered"], "yes")
                self.assertEqual(rec["reason"], "BYE from callee")

    def test_presence_subscription_across_deployments(self):
        """alice@a.test watches bob@b.test: pending (and told nothing) until
        `parleyctl presence allow bob alice@a.test` on b.test, then bob's
        state and its changes reach her; she refreshes and ends the
        subscription inside its dialog, through a.test."""
        with Pair("fed-presence", b_config={"presence.min_notify_interval": 0,
                                            "presence.min_expires": 1}) as pr:
            pr.start()
            A, B = pr.A, pr.B
            with user(A, "alice") as alice, user(B, "bob") as bob:
                publish(bob, "open", "at my desk")
                r = alice.request_with_auth("SUBSCRIBE", BOB, expires=600,
                                            headers={"Event": "presence", "Accept": PIDF})
                self.assertEqual(r.status, 200, r)
                cid = r.request.call_id
                n = notify(alice, cid)
                self.assertTrue((n.header("Subscription-State") or "").startswith("pending"), n)
                self.assertIsNone(basic_of(n.body), "a pending watcher learnt bob's state")
                B.wait_log("presence.subscribed", presentity="bob", watcher=f"alice@{A_DOMAIN}",
                           state="pending")

                ok(B.ctl("presence", "allow", "bob", f"alice@{A_DOMAIN}"))
                n = notify(alice, cid)
                self.assertTrue((n.header("Subscription-State") or "").startswith("active"), n)
                self.assertEqual(basic_of(n.body), "open")
                self.assertEqual(NameAddr.parse(n.header("From")).uri, BOB)

                publish(bob, "closed", "gone home")
                n = notify(alice, cid)
                self.assertEqual(basic_of(n.body), "closed")

                # the subscription's own dialog: refresh, then end it
                dlg = sipclient.Dialog.from_uac(r.request, r)
                ref = alice.request_in_dialog(dlg, "SUBSCRIBE", contact=True, timeout=T(5),
                                              headers={"Event": "presence", "Expires": "600",
                                                       "Accept": PIDF})
                self.assertEqual(ref.status, 200, f"refresh of a federated subscription: {ref}")
                n = notify(alice, cid)
                self.assertEqual(basic_of(n.body), "closed")
                end = alice.request_in_dialog(dlg, "SUBSCRIBE", contact=True, timeout=T(5),
                                              headers={"Event": "presence", "Expires": "0",
                                                       "Accept": PIDF})
                self.assertEqual(end.status, 200, end)
                n = notify(alice, cid)
                self.assertTrue((n.header("Subscription-State") or "").startswith("terminated"), n)
                B.wait_log("presence.subscription_ended", presentity="bob",
                           watcher=f"alice@{A_DOMAIN}")
                # RFC 6665 4.1.2.1: the 2xx of a SUBSCRIBE carries a Contact
                # (clients such as baresip drop a subscription without one)
                self.assertTrue(r.contacts, f"the 200 to the SUBSCRIBE has no Contact:\n{r}")

    def test_presence_survives_idle_partner_connection(self):
        """The connection a SUBSCRIBE came in on may close (idle timeout,
        restart): bob's next change must still reach alice, over b.test's
        own connection to a.test."""
        with Pair("fed-presence-idle",
                  a_config={"sip.idle_timeout": 2},
                  b_config={"sip.idle_timeout": 2, "presence.min_notify_interval": 0}) as pr:
            ok(pr.B.ctl("presence", "allow", "bob", f"alice@{A_DOMAIN}"))
            pr.start()
            A, B = pr.A, pr.B
            with user(A, "alice") as alice, user(B, "bob") as bob:
                publish(bob, "open")
                r = alice.request_with_auth("SUBSCRIBE", BOB, expires=600,
                                            headers={"Event": "presence", "Accept": PIDF})
                self.assertEqual(r.status, 200, r)
                cid = r.request.call_id
                self.assertEqual(basic_of(notify(alice, cid).body), "open")
                A.wait_log("federation.disconnected", partner=B_DOMAIN, timeout=10)
                publish(bob, "closed")
                n = notify(alice, cid, timeout=10)
                self.assertEqual(basic_of(n.body), "closed")

    def test_call_survives_idle_partner_connection(self):
        """A federated call outlives the partner connection it was set up
        on (closed by sip.idle_timeout here, as a long call with no
        signalling would see with the default 300 s): bob's BYE still
        reaches alice."""
        with Pair("fed-call-idle", a_config={"sip.idle_timeout": 2},
                  b_config={"sip.idle_timeout": 2}) as pr:
            pr.start()
            A, B = pr.A, pr.B
            with user(A, "alice") as alice, user(B, "bob") as bob:
                inv, adlg, bdlg = call(alice, BOB, bob)
                A.wait_log("federation.disconnected", partner=B_DOMAIN, timeout=10)
                resp, got = exchange(lambda: bob.bye(bdlg, timeout=T(10)), alice, method="BYE")
                self.assertIsNotNone(got, f"bob's BYE did not reach alice; bob got "
                                          f"{resp.summary() if resp else None}")
                self.assertEqual(resp.status, 200, resp)

    def test_idle_partner_connection_reopened(self):
        """A partner connection closed for idleness (sip.idle_timeout) is
        opened again by the next request."""
        with Pair("fed-idle", a_config={"sip.idle_timeout": 2},
                  b_config={"sip.idle_timeout": 2}) as pr:
            pr.start()
            A, B = pr.A, pr.B
            with user(A, "alice") as alice, user(B, "bob") as bob:
                delivered(self, alice, BOB, "before idling", bob)
                A.wait_log("federation.disconnected", partner=B_DOMAIN, timeout=10)
                delivered(self, alice, BOB, "after idling", bob)
            self.assertEqual(len(A.find_log("federation.connected", partner=B_DOMAIN)), 2)

    def test_srv_partner(self):
        """A partner without a named server is found through
        _sipfederationtls._tcp.DOMAIN (dnsmasq, dns.nameservers); a named
        server without --address is resolved through DNS. An SRV target
        whose certificate does not prove the domain is refused; a domain
        without the record is unreachable."""
        with Pair("fed-srv", a_partner=False, b_partner=False) as pr:
            A, B = pr.A, pr.B
            dns = Dnsmasq(A, srv=[(f"_sipfederationtls._tcp.{B_DOMAIN}", f"sip.{B_DOMAIN}", B.mtls_port),
                                  (f"_sipfederationtls._tcp.{A_DOMAIN}", f"sip.{A_DOMAIN}", A.mtls_port),
                                  # c.test's record points at b.test's server
                                  ("_sipfederationtls._tcp.c.test", f"sip.{B_DOMAIN}", B.mtls_port)],
                          hosts=[(f"sip.{A_DOMAIN}", A_ADDR), (f"sip.{B_DOMAIN}", B_ADDR)])
            for p in (A, B):
                p.config_set("dns.nameservers", dns.nameserver)
            r = add_partner(A, B, srv=True)
            self.assertIn("DNS SRV", r.stdout)
            # B names a.test's server but not its address: resolved through DNS
            ok(B.ctl("partner", "add", A_DOMAIN, "--server", f"sip.{A_DOMAIN}:{A.mtls_port}"))
            ok(A.ctl("partner", "add", "c.test"))
            ok(A.ctl("partner", "add", "d.test"))
            pr.start()
            with user(A, "alice") as alice, user(B, "bob") as bob:
                delivered(self, alice, BOB, "found you through SRV", bob)
                delivered(self, bob, ALICE, "and I found you", alice)
                st = partner_status(A, B_DOMAIN)
                self.assertEqual((st["server"], st["state"]), ("(DNS SRV)", "up"), st)
                self.assertEqual(st["certificate"]["subject"], f"CN=sip.{B_DOMAIN}")
                rec = A.wait_log("federation.connecting", partner=B_DOMAIN)
                self.assertEqual(rec["host"], f"sip.{B_DOMAIN}")
                self.assertEqual(rec["address"], f"{B_ADDR}:{B.mtls_port}")

                # c.test's SRV target is b.test's server: its certificate
                # does not prove c.test
                markB = B.log_mark()
                r = alice.message("sip:carol@c.test", "to an impostor")
                self.assertGreaterEqual(r.status, 400, r)
                rec = A.wait_log("federation.refused", partner="c.test")
                self.assertEqual(rec["direction"], "outgoing")
                self.assertEqual(rec["subject"], f"CN=sip.{B_DOMAIN}")
                self.assertEqual(rec["reason"], "certificate does not prove the partner's domain")
                self.assertIsNone(bob.conn.try_recv(0.5))
                B.assert_no_log("federation.accepted", since=markB)

                r = alice.message("sip:dave@d.test", "to a domain without SRV")
                self.assertEqual(r.status // 100, 5, r)
                rec = A.wait_log("federation.unreachable", partner="d.test")
                self.assertIn("no _sipfederationtls._tcp.d.test SRV record", rec["reason"])
                st = partner_status(A, "d.test")
                self.assertIn("SRV", st["last_error"])
            out = dns.peer.output
            self.assertIn(f"query[SRV] _sipfederationtls._tcp.{B_DOMAIN}", out)
            self.assertIn(f"query[A] sip.{A_DOMAIN}", out)
            self.assertNotIn(f"query[SRV] _sipfederationtls._tcp.{A_DOMAIN}", out)

    def test_partner_server_named_by_ip_address(self):
        """--server may be an IP address: the certificate must then carry
        it as an iPAddress subjectAltName (init puts --address there)."""
        with Pair("fed-ip", a_partner=False, b_partner=False) as pr:
            A, B = pr.A, pr.B
            ok(A.ctl("partner", "add", B_DOMAIN, "--server", f"{B_ADDR}:{B.mtls_port}"))
            ok(B.ctl("partner", "add", A_DOMAIN, "--server", f"{A_ADDR}:{A.mtls_port}"))
            pr.start()
            with user(A, "alice") as alice, user(B, "bob") as bob:
                delivered(self, alice, BOB, "to an address", bob)
                delivered(self, bob, ALICE, "from an address", alice)
            A.wait_log("federation.connected", partner=B_DOMAIN, host=B_ADDR)

    def test_notify_before_the_subscribes_2xx(self):
        """The partner's first NOTIFY overtakes the 200 of alice's
        SUBSCRIBE: it creates the dialog and reaches her (it used to get
        481), and the 200 that follows joins the same dialog."""
        with Parley(domain=A_DOMAIN, address=A_ADDR, name="fed-notify-a", users=USERS_A) as A, \
                Parley(domain=B_DOMAIN, address=B_ADDR, name="fed-notify-b") as B:
            srv = stand_in_partner(A, B, notify_first=1)
            try:
                A.start()
                with user(A, "alice") as alice:
                    r = subscribe_to_bob(alice)
                    self.assertEqual(r.status, 200, r)
                    n = alice.wait_request("NOTIFY")
                    self.assertEqual(n.call_id, r.call_id)
                    alice.respond(n, 200)
                    self.assertEqual([x.status for x in srv.wait_responses(1)], [200])
                self.assertEqual(srv.errors, [])
            finally:
                srv.close()

    def test_notifies_of_fresh_tags_cannot_grow_the_dialog_table(self):
        """36 NOTIFYs of 36 tags before the 200: the first 32 (the bound per
        request) make dialogs and reach alice, the others get 481
        (dialog.refused)."""
        with Parley(domain=A_DOMAIN, address=A_ADDR, name="fed-notify10-a", users=USERS_A) as A, \
                Parley(domain=B_DOMAIN, address=B_ADDR, name="fed-notify10-b") as B:
            srv = stand_in_partner(A, B, notify_first=36)
            try:
                A.start()
                with user(A, "alice") as alice:
                    r = subscribe_to_bob(alice)
                    self.assertEqual(r.status, 200, r)
                    for _ in range(32):
                        alice.respond(alice.wait_request("NOTIFY"), 200)
                    self.assertEqual(sorted(x.status for x in srv.wait_responses(36)),
                                     [200] * 32 + [481] * 4)
                    with self.assertRaises(SipTimeout):
                        alice.wait_request("NOTIFY", timeout=0.3)
                A.wait_log("dialog.refused", reason="too many dialogs for one call")
            finally:
                srv.close()

    def test_outgoing_presents_certificate_with_sni(self):
        """A stand-in b.test (Python, requiring a client certificate) sees
        what Parley sends: SNI = the partner's server name, A's certificate,
        a connection from 127.0.0.2."""
        with Parley(domain=A_DOMAIN, address=A_ADDR, name="fed-sni-a", users=USERS_A,
                    debug=True) as A, \
                Parley(domain=B_DOMAIN, address=B_ADDR, name="fed-sni-b") as B:
            srv = stand_in_partner(A, B)
            try:
                A.start()
                with user(A, "alice") as alice:
                    r = alice.message(BOB, "to the stand-in")
                    self.assertEqual(r.status, 200, r)
                self.assertEqual(srv.errors, [])
                self.assertEqual(srv.sni, [f"sip.{B_DOMAIN}"])
                self.assertEqual(len(srv.peers), 1)
                addr, cert = srv.peers[0]
                self.assertEqual(addr[0], A_ADDR)
                self.assertEqual(dict(x[0] for x in cert["subject"])["commonName"], f"sip.{A_DOMAIN}")
                self.assertEqual(srv.requests[0].method, "MESSAGE")
                self.assertEqual(srv.requests[0].body, b"to the stand-in")
            finally:
                srv.close()


# ---------------------------------------------------------------------------
# Refusals
# ---------------------------------------------------------------------------


class TestRefusals(unittest.TestCase):
    def test_untrusted_ca_refused_both_ways(self):
        """A does not trust b.test's CA (added, then removed with `trust
        remove`): A's connection to B fails verification; B's connection to
        A is refused by A. Nothing is delivered either way."""
        with Pair("ref-untrusted", a_trusts_b=False) as pr:
            A, B = pr.A, pr.B
            ok(A.ctl("trust", "add", B.ca_file))
            ok(A.ctl("trust", "remove", B.ca_file))
            pr.start()
            with user(A, "alice") as alice, user(B, "bob") as bob:
                resp, got = im(alice, BOB, "to an untrusted partner", bob)
                self.assertIsNone(got, "delivered over an unverified link")
                self.assertEqual(resp.status // 100, 5, resp)
                rec = A.wait_log("tls.connect_failed", peer=f"{B_ADDR}:{B.mtls_port}")
                # (B sends its CA along: "self-signed certificate in certificate chain")
                self.assertRegex(rec["reason"], r"certificate verify failed: (unable to get local "
                                                r"issuer certificate|self-signed certificate in "
                                                r"certificate chain)")
                rec = A.wait_log("federation.unreachable", partner=B_DOMAIN)
                st = partner_status(A, B_DOMAIN)
                self.assertNotEqual(st["state"], "up")
                self.assertIn("certificate verify failed", st["last_error"])

                resp, got = im(bob, ALICE, "from an untrusted partner", alice)
                self.assertIsNone(got, "delivered from an unverified partner")
                self.assertGreaterEqual(resp.status, 400, resp)
                rec = A.wait_log("tls.refused", peer=re.compile(re.escape(B_ADDR) + r":\d+"))
                self.assertRegex(rec["reason"], r"certificate verify failed")
            A.assert_no_log("federation.accepted")
            B.assert_no_log("federation.accepted")

    def test_decisions_logged_with_subject(self):
        """Issue #7: each decision is logged with the peer's certificate
        subject and the reason -- also when the handshake itself refuses
        the certificate (b.test's CA untrusted by a.test, both directions),
        and when a partner's request is accepted."""
        with Pair("ref-subject", a_trusts_b=False) as pr:
            A, B = pr.A, pr.B
            pr.start()
            with user(A, "alice") as alice, user(B, "bob") as bob:
                im(alice, BOB, "out", bob)
                im(bob, ALICE, "in", alice)
                with fake_partner(B, os.path.join(A.dir, "pki", "server.pem"),
                                  os.path.join(A.dir, "pki", "server.key")) as fake:
                    resp, got = exchange(lambda: partner_message(fake, BOB, "accepted"), bob)
                    self.assertIsNotNone(got)
            checks = [
                ("outgoing handshake refused", A.wait_log("tls.connect_failed",
                                                          peer=f"{B_ADDR}:{B.mtls_port}"),
                 f"CN=sip.{B_DOMAIN}"),
                ("incoming handshake refused", A.wait_log(
                    "tls.refused", peer=re.compile(re.escape(B_ADDR) + r":\d+")),
                 f"CN=sip.{B_DOMAIN}"),
                ("incoming request accepted", B.wait_log("federation.accepted", domain=A_DOMAIN),
                 f"CN=sip.{A_DOMAIN}"),
            ]
            for what, rec, subject in checks:
                with self.subTest(what):
                    self.assertEqual(rec.get("subject"), subject,
                                     f"{what}: the log line does not name the certificate: {rec.raw}")

    def test_certificate_for_another_host_refused(self):
        """a.test serves a certificate (from its own, trusted CA) for
        sip.elsewhere.test: B's connection to sip.a.test fails the host
        check; A's requests into B fail the domain proof (403, connection
        closed). Nothing is delivered."""
        with Pair("ref-host") as pr:
            A, B = pr.A, pr.B
            reissue_server_cert(A, "elsewhere", dns=["sip.elsewhere.test"])
            pr.start()
            with user(A, "alice", server_hostname="sip.elsewhere.test") as alice, \
                    user(B, "bob") as bob:
                resp, got = im(bob, ALICE, "to the wrong host", alice)
                self.assertIsNone(got)
                self.assertEqual(resp.status // 100, 5, resp)
                rec = B.wait_log("tls.connect_failed", peer=f"{A_ADDR}:{A.mtls_port}")
                self.assertIn("hostname mismatch", rec["reason"])
                B.wait_log("federation.unreachable", partner=A_DOMAIN)

                resp, got = im(alice, BOB, "from the wrong host", bob)
                self.assertIsNone(got)
                self.assertEqual(resp.status, 403, resp)
                rec = B.wait_log("federation.refused", domain=A_DOMAIN)
                self.assertEqual(rec["subject"], "CN=sip.elsewhere.test")
                self.assertEqual(rec["reason"], "certificate does not prove the domain")
                self.assertEqual(rec["peer"].split(":")[0], A_ADDR)
                # and B closed that connection
                A.wait_log("federation.disconnected", partner=B_DOMAIN)
            B.assert_no_log("federation.accepted")

    def test_revoked_certificate_refused(self):
        """`parleyctl cert revoke` on A revokes A's server certificate and
        rewrites A's CRL; B loads that CRL: A is refused both ways."""
        with Pair("ref-revoked") as pr:
            A, B = pr.A, pr.B
            serial = openssl("x509", "-in", os.path.join(A.dir, "pki", "server.pem"), "-noout",
                             "-serial").split("=", 1)[1].strip()
            r = ok(A.ctl("cert", "revoke", os.path.join(A.dir, "pki", "server.pem"), json=True))
            a_crl = os.path.join(A.dir, "pki", "crl.pem")
            self.assertEqual(r.stdout["crl"], a_crl)
            crl_text = openssl("crl", "-in", a_crl, "-noout", "-text")
            self.assertRegex(crl_text, rf"Serial Number: {serial}")
            B.config_set("tls.crl_files", f"pki/crl.pem, {a_crl}")
            pr.start()
            with user(A, "alice") as alice, user(B, "bob") as bob:
                resp, got = im(alice, BOB, "with a revoked certificate", bob)
                self.assertIsNone(got, "delivered from a revoked partner")
                self.assertGreaterEqual(resp.status, 400, resp)
                rec = B.wait_log("tls.refused", peer=re.compile(re.escape(A_ADDR) + r":\d+"))
                self.assertIn("certificate revoked", rec["reason"])

                resp, got = im(bob, ALICE, "to a revoked partner", alice)
                self.assertIsNone(got, "sent to a revoked partner")
                self.assertEqual(resp.status // 100, 5, resp)
                rec = B.wait_log("tls.connect_failed", peer=f"{A_ADDR}:{A.mtls_port}")
                self.assertIn("certificate revoked", rec["reason"])
            B.assert_no_log("federation.accepted")
            A.assert_no_log("federation.accepted")

    def test_revocation_applies_to_live_partner_connections(self):
        """A revocation loaded by reload (tls.crl_files + SIGHUP) applies to
        the partner connection that is already up: b.test must not go on
        accepting a.test's requests over it."""
        with Pair("ref-revoked-live") as pr:
            A, B = pr.A, pr.B
            pr.start()
            with user(A, "alice") as alice, user(B, "bob") as bob:
                delivered(self, alice, BOB, "before the revocation", bob)
                ok(A.ctl("cert", "revoke", os.path.join(A.dir, "pki", "server.pem")))
                B.config_set("tls.crl_files", f"pki/crl.pem, {A.dir}/pki/crl.pem")
                mark = B.reload()
                B.wait_log("config.reloaded", since=mark)
                resp, got = im(alice, BOB, "after the revocation", bob)
                self.assertIsNone(got, "b.test still accepts a.test's revoked certificate on the "
                                       "connection made before the revocation")

    def test_stale_crl_refuses_every_certificate_of_its_issuer(self):
        """A CRL of b.test's CA past its next update, loaded in A: b.test's
        (unrevoked) certificate is refused while it is stale."""
        with Pair("ref-stale") as pr:
            A, B = pr.A, pr.B
            stale = make_crl(os.path.join(B.dir, "pki", "ca.pem"), os.path.join(B.dir, "pki", "ca.key"),
                             os.path.join(A.dir, "b-stale-crl.pem"),
                             last_update="20200101000000Z", next_update="20200201000000Z")
            A.config_set("tls.crl_files", f"pki/crl.pem, {stale}")
            pr.start()
            with user(A, "alice") as alice, user(B, "bob") as bob:
                resp, got = im(alice, BOB, "under a stale CRL", bob)
                self.assertIsNone(got)
                self.assertEqual(resp.status // 100, 5, resp)
                rec = A.wait_log("tls.connect_failed", peer=f"{B_ADDR}:{B.mtls_port}")
                self.assertIn("CRL has expired", rec["reason"])

    def test_missing_crl_warned_or_required(self):
        """An issuer without a CRL is accepted with a warning
        (tls.crl_missing); with tls.require_crl = true it is refused until
        its CRL is loaded."""
        with Pair("ref-requirecrl") as pr:
            A, B = pr.A, pr.B
            pr.start()
            with user(A, "alice") as alice, user(B, "bob") as bob:
                delivered(self, alice, BOB, "no CRL for b.test's CA: warned", bob)
                rec = A.wait_log("tls.crl_missing", peer=f"{B_ADDR}:{B.mtls_port}")
                self.assertIn("no CRL", rec["reason"])

                # require CRLs: new connections to b.test need its CRL
                A.config_set("tls.require_crl", True)
                mark = A.reload()
                A.wait_log("config.reloaded", since=mark)
                # the link that is up keeps its context; make A reconnect
                B.stop()
                B.start()
                with user(B, "bob") as bob2:
                    resp, got = im(alice, BOB, "CRL required, none loaded", bob2)
                    self.assertIsNone(got)
                    self.assertEqual(resp.status // 100, 5, resp)
                    rec = A.wait_log("tls.connect_failed", since=mark,
                                     peer=f"{B_ADDR}:{B.mtls_port}")
                    self.assertIn("unable to get certificate CRL", rec["reason"])

                    A.config_set("tls.crl_files", f"pki/crl.pem, {B.dir}/pki/crl.pem")
                    mark = A.reload()
                    A.wait_log("config.reloaded", since=mark)
                    delivered(self, alice, BOB, "CRL required and loaded", bob2)
                    A.assert_no_log("tls.crl_missing", since=mark)

    def test_partner_without_client_certificate_refused(self):
        """On the client listener (no certificate asked for), a request from
        a partner domain without a certificate: 403, connection closed,
        logged."""
        with Pair("ref-nocert") as pr:
            B = pr.B
            pr.start()
            with user(B, "bob") as bob, fake_partner(B, None, None, listener="tls") as fake:
                resp, got = exchange(lambda: partner_message(fake, BOB, "no certificate"), bob)
                self.assertIsNone(got)
                self.assertEqual(resp.status, 403, resp)
                fake.conn.expect_closed(T(5))
                rec = B.wait_log("federation.refused", domain=A_DOMAIN)
                self.assertEqual(rec["reason"], "no verified client certificate")
                self.assertEqual(rec["subject"], "")
            B.assert_no_log("federation.accepted")

    def test_in_dialog_request_without_certificate_refused(self):
        """In-dialog requests are partner traffic too: a connection without
        a client certificate that sends a BYE for alice's federated call
        (From alice@a.test, the right tags) is refused and closed; bob's
        call goes on, and alice's own BYE, through a.test, still ends it."""
        with Pair("ref-indialog") as pr:
            A, B = pr.A, pr.B
            pr.start()
            with user(A, "alice") as alice, user(B, "bob") as bob:
                inv, adlg, bdlg = call(alice, BOB, bob)
                with fake_partner(B, None, None, listener="tls") as fake:
                    bye = fake.build_request(
                        "BYE", adlg.remote_target, contact=False,
                        from_=adlg.local_header, to=adlg.remote_header, call_id=adlg.call_id,
                        cseq=adlg.local_cseq + 1)
                    resp, got = exchange(lambda: fake.send_request(bye) and
                                         fake.wait_response(bye, timeout=T(5)),
                                         bob, method="BYE")
                    self.assertIsNone(got, "a BYE from a connection without a certificate "
                                           "ended bob's federated call")
                    self.assertEqual(resp.status, 403, resp)
                    fake.conn.expect_closed(T(5))
                    B.wait_log("federation.refused", domain=A_DOMAIN,
                               reason="no verified client certificate")
                resp, got = exchange(lambda: alice.bye(adlg, timeout=T(10)), bob, method="BYE")
                self.assertIsNotNone(got, "alice's BYE did not reach bob")
                self.assertEqual(resp.status, 200, resp)

    def test_no_certificate_refused_on_the_mtls_listener(self):
        """The server-to-server listener refuses a peer without a certificate
        in the handshake: nothing is read from it, nothing delivered."""
        with Pair("ref-mtls-nocert") as pr:
            B = pr.B
            pr.start()
            with user(B, "bob") as bob:
                try:
                    with fake_partner(B, None, None) as fake:
                        resp, got = exchange(lambda: partner_message(fake, BOB, "no cert"), bob)
                        self.fail(f"a peer without a certificate got an answer: {resp}")
                except (ssl.SSLError, ConnectionError, SipTimeout):
                    pass
                self.assertIsNone(bob.conn.try_recv(0.5))
                rec = B.wait_log("tls.refused", peer=re.compile(re.escape(A_ADDR) + r":\d+"))
                self.assertIn("certificate", rec["reason"])
            B.assert_no_log("federation.accepted")
            st = ok(B.ctl("status", json=True)).stdout
            mtls = [l for l in st["listeners"] if l["transport"] == "mtls"]
            self.assertEqual([l["client_cert_policy"] for l in mtls], ["require"])
            self.assertEqual([l["address"] for l in mtls], [f"{B.address}:{B.mtls_port}"])
            row = [r for r in st["protection"] if r["traffic"] == "server <-> server"][0]
            self.assertIn(f"sip.mtls_listen ({B.address}:{B.mtls_port})", row["enforced"])

    def test_client_certificate_from_untrusted_ca_refused(self):
        """A client certificate naming a.test from a CA b.test does not
        trust: the handshake is refused."""
        with Pair("ref-rogue") as pr:
            A, B = pr.A, pr.B
            ca, cakey = make_ca(os.path.join(A.dir, "rogue"), "Rogue CA")
            cert, key = issue_cert(ca, cakey, os.path.join(A.dir, "rogue", "a.pem"),
                                   cn=f"sip.{A_DOMAIN}", dns=[f"sip.{A_DOMAIN}", A_DOMAIN])
            pr.start()
            with user(B, "bob") as bob:
                try:
                    with fake_partner(B, cert, key) as fake:
                        resp, got = exchange(lambda: partner_message(fake, BOB, "rogue"), bob)
                        self.assertIsNone(got)
                        self.fail(f"the rogue partner got an answer: {resp}")
                except (ssl.SSLError, ConnectionError, SipTimeout):
                    pass
                self.assertIsNone(bob.conn.try_recv(0.5))
                rec = B.wait_log("tls.refused", peer=re.compile(re.escape(A_ADDR) + r":\d+"))
                self.assertIn("certificate verify failed", rec["reason"])
            B.assert_no_log("federation.accepted")

    def test_identities_outside_the_partner_domain_refused(self):
        """Over a connection with a.test's own certificate: a request whose
        From or P-Asserted-Identity is not of a.test is refused with 403 and
        not delivered; a proper one from the same connection is."""
        with Pair("ref-identity") as pr:
            A, B = pr.A, pr.B
            ok(B.ctl("partner", "add", "c.test", "--server", "sip.c.test:5999",
                     "--address", "127.0.0.9"))
            pr.start()
            cert = os.path.join(A.dir, "pki", "server.pem")
            key = os.path.join(A.dir, "pki", "server.key")
            with user(B, "bob") as bob:
                with fake_partner(B, cert, key) as fake:
                    # the control: a proper request is delivered
                    resp, got = exchange(lambda: partner_message(fake, BOB, "proper"), bob)
                    self.assertIsNotNone(got)
                    self.assertEqual(resp.status, 200, resp)

                    # P-Asserted-Identity of another domain
                    resp, got = exchange(lambda: partner_message(
                        fake, BOB, "pai elsewhere",
                        headers={"P-Asserted-Identity": "<sip:mallory@c.test>"}), bob)
                    self.assertIsNone(got)
                    self.assertEqual(resp.status, 403, resp)
                    rec = B.wait_log("federation.refused", domain=A_DOMAIN)
                    self.assertEqual(rec["reason"], "P-Asserted-Identity outside the partner's domain")
                    self.assertEqual(rec["subject"], f"CN=sip.{A_DOMAIN}")

                    # From in a domain that is not a partner at all
                    resp, got = exchange(lambda: partner_message(
                        fake, BOB, "from x.test", from_="<sip:eve@x.test>;tag=x1",
                        headers={"P-Asserted-Identity": None}), bob)
                    self.assertIsNone(got)
                    self.assertEqual(resp.status, 403, resp)
                    B.wait_log("federation.refused", domain="x.test", reason="not a partner domain")

                    # a partner may reach only b.test's own users: no relaying
                    resp, got = exchange(lambda: partner_message(fake, "sip:carol@c.test",
                                                                 "relay me"), bob)
                    self.assertIsNone(got)
                    self.assertEqual(resp.status, 403, resp)
                    B.wait_log("sip.rejected", reason="partner request for another domain")

                    # From in b.test itself, i.e. one of B's own users
                    resp, got = exchange(lambda: partner_message(
                        fake, BOB, "from b.test", from_=f"<sip:carl@{B_DOMAIN}>;tag=b1",
                        headers={"P-Asserted-Identity": None}), bob)
                    self.assertIsNone(got)
                    self.assertIn(resp.status, (403, 407), resp)

                with fake_partner(B, cert, key) as fake:
                    # From in another partner's domain, which a.test's
                    # certificate does not prove: refused, connection closed
                    resp, got = exchange(lambda: partner_message(
                        fake, BOB, "from c.test", from_="<sip:eve@c.test>;tag=c1",
                        headers={"P-Asserted-Identity": "<sip:eve@c.test>"}), bob)
                    self.assertIsNone(got)
                    self.assertEqual(resp.status, 403, resp)
                    rec = B.wait_log("federation.refused", domain="c.test")
                    self.assertEqual(rec["reason"], "certificate does not prove the domain")
                    self.assertEqual(rec["subject"], f"CN=sip.{A_DOMAIN}")
                    fake.conn.expect_closed(T(5))
            # the proper request and the relay attempt passed the identity checks
            self.assertEqual(len(B.find_log("federation.accepted")), 2)

    def test_what_proves_a_domain(self):
        """A partner certificate proves DOMAIN by a dNSName or a sip:DOMAIN
        URI subjectAltName (RFC 5922: no wildcard, no user part, not the CN
        alone), or by naming the server host configured for the partner
        (RFC 6125 rules, where a wildcard may match that host). Tried with
        b.test naming a.test's server sip.a.test, then with a.test as an
        SRV partner (no configured host)."""
        names = {
            "dns-domain": dict(dns=[A_DOMAIN]),
            "uri-domain": dict(uris=[f"sip:{A_DOMAIN}"]),
            "configured-host": dict(dns=[f"sip.{A_DOMAIN}"]),
            "wildcard": dict(dns=[f"*.{A_DOMAIN}"]),
            "user-uri": dict(uris=[f"sip:alice@{A_DOMAIN}"]),
            "uri-with-params": dict(uris=[f"sip:{A_DOMAIN};transport=tls"]),
            "cn-only": dict(),
            "other-names": dict(dns=["a.test.example", f"x{A_DOMAIN}"], uris=["sip:b.test"]),
        }
        want_named = {"dns-domain": True, "uri-domain": True, "configured-host": True,
                      "wildcard": True, "user-uri": False, "uri-with-params": False,
                      "cn-only": False, "other-names": False}
        want_srv = dict(want_named, **{"configured-host": False, "wildcard": False})
        with Pair("ref-proof") as pr:
            A, B = pr.A, pr.B
            ca, cakey = os.path.join(A.dir, "pki", "ca.pem"), os.path.join(A.dir, "pki", "ca.key")
            certs = {name: issue_cert(ca, cakey, os.path.join(A.dir, f"{name}.pem"),
                                      cn=A_DOMAIN, **kw)
                     for name, kw in names.items()}
            pr.start()

            def attempt() -> dict:
                results = {}
                for name in names:
                    cert, key = certs[name]
                    with fake_partner(B, cert, key) as fake:
                        resp, got = exchange(lambda: partner_message(fake, BOB, name), bob,
                                             grace=0.3)
                        results[name] = got is not None and resp is not None and resp.status == 200
                return results

            with user(B, "bob") as bob:
                self.assertEqual(attempt(), want_named, "a.test's server named sip.a.test")
                ok(B.ctl("partner", "remove", A_DOMAIN))
                ok(B.ctl("partner", "add", A_DOMAIN))
                self.assertEqual(attempt(), want_srv, "a.test found through SRV")


# ---------------------------------------------------------------------------
# parleyctl: partner, trust, cert
# ---------------------------------------------------------------------------


class TestCtl(unittest.TestCase):
    def test_partner_commands(self):
        with Parley(domain=A_DOMAIN, address=A_ADDR, name="ctl-partner") as A:
            r = ok(A.ctl("partner", "list"))
            self.assertIn("no partners", r.stdout)
            r = ok(A.ctl("partner", "add", B_DOMAIN, "--server", "sip.b.test:5071",
                         "--address", B_ADDR))
            self.assertIn("partner b.test at sip.b.test:5071 (address 127.0.0.3)", r.stdout)
            self.assertNotIn("applied by the running server", r.stdout)
            ok(A.ctl("partner", "add", "C.Test"))
            ok(A.ctl("partner", "add", "d.test", "--server", "edge.d.test"))
            r = ok(A.ctl("partner", "list", json=True))
            got = {p["domain"]: p for p in r.stdout["partners"]}
            self.assertEqual(set(got), {B_DOMAIN, "c.test", "d.test"})
            self.assertEqual(got[B_DOMAIN], {"domain": B_DOMAIN, "server": "sip.b.test",
                                             "port": 5071, "address": B_ADDR})
            self.assertEqual(got["c.test"]["server"], "")
            self.assertEqual(got["d.test"]["server"], "edge.d.test")
            text = ok(A.ctl("partner", "list")).stdout
            self.assertRegex(text, r"(?m)^b\.test\s+sip\.b\.test:5071 at 127\.0\.0\.3$")
            self.assertRegex(text, r"(?m)^c\.test\s+\(DNS SRV\)$")
            self.assertRegex(text, r"(?m)^d\.test\s+edge\.d\.test:5061$")

            # refusals: duplicates, our own domain, bad names and options
            self.assertEqual(A.ctl("partner", "add", B_DOMAIN).returncode, 1)
            self.assertEqual(A.ctl("partner", "add", A_DOMAIN).returncode, 1)
            for bad in (["partner", "add", "not a domain"],
                        ["partner", "add", "e.test", "--address", "127.0.0.5"],
                        ["partner", "add", "e.test", "--server", "h.e.test", "--address", "nope"],
                        ["partner", "add", "e.test", "--server", "h.e.test:0"],
                        ["partner", "add", "e.test", "--server", "h.e.test:70000"],
                        ["partner", "add"],
                        ["partner", "frobnicate"]):
                r = A.ctl(*bad)
                self.assertEqual(r.returncode, 2, (bad, r))
            self.assertEqual(len(ok(A.ctl("partner", "list", json=True)).stdout["partners"]), 3)

            r = ok(A.ctl("partner", "remove", "c.test"))
            self.assertIn("removed partner c.test", r.stdout)
            self.assertEqual(A.ctl("partner", "remove", "c.test").returncode, 1)
            r = ok(A.ctl("partner", "list", json=True))
            self.assertEqual({p["domain"] for p in r.stdout["partners"]}, {B_DOMAIN, "d.test"})

            # the running server hears of changes at once
            A.start()
            self.assertEqual({p["domain"] for p in ok(A.ctl("status", json=True)).stdout["partners"]},
                             {B_DOMAIN, "d.test"})
            r = ok(A.ctl("partner", "add", "f.test", json=True))
            self.assertTrue(r.stdout["applied_live"])
            self.assertEqual({p["domain"] for p in ok(A.ctl("status", json=True)).stdout["partners"]},
                             {B_DOMAIN, "d.test", "f.test"})
            ok(A.ctl("partner", "remove", "d.test"))
            self.assertEqual({p["domain"] for p in ok(A.ctl("status", json=True)).stdout["partners"]},
                             {B_DOMAIN, "f.test"})

    def test_trust_commands(self):
        with Parley(domain=A_DOMAIN, address=A_ADDR, name="ctl-trust-a") as A, \
                Parley(domain=B_DOMAIN, address=B_ADDR, name="ctl-trust-b") as B:
            r = ok(A.ctl("trust", "list", json=True))
            self.assertEqual([(t["subject"], t["source"]) for t in r.stdout["trusted"]],
                             [(DEV_CA_A, "tls.ca_files")])
            fp = openssl("x509", "-in", B.ca_file, "-noout", "-fingerprint", "-sha256")
            fp = fp.split("=", 1)[1].strip().replace(":", "").lower()
            r = ok(A.ctl("trust", "add", B.ca_file, json=True))
            self.assertEqual(r.stdout["subject"], DEV_CA_B)
            self.assertEqual(r.stdout["fingerprint"], fp)
            r = ok(A.ctl("trust", "list", json=True))
            entries = {t["subject"]: t for t in r.stdout["trusted"]}
            self.assertEqual(entries[DEV_CA_B]["source"], "trust add")
            self.assertEqual(entries[DEV_CA_B]["fingerprint"], fp)
            self.assertIn(fp, ok(A.ctl("trust", "list")).stdout)

            # not a CA, not a certificate, missing: refused
            self.assertEqual(A.ctl("trust", "add", os.path.join(B.dir, "pki", "server.pem")).returncode, 1)
            self.assertEqual(A.ctl("trust", "add", os.path.join(B.dir, "pki", "server.key")).returncode, 1)
            self.assertEqual(A.ctl("trust", "add", "/nonexistent/ca.pem").returncode, 1)
            # removal by fingerprint (16 hex digits) and by file
            self.assertEqual(A.ctl("trust", "remove", fp[:8]).returncode, 2)
            ok(A.ctl("trust", "remove", fp[:16]))
            self.assertEqual(A.ctl("trust", "remove", fp[:16]).returncode, 1)
            ok(A.ctl("trust", "add", B.ca_file))
            ok(A.ctl("trust", "remove", B.ca_file))
            r = ok(A.ctl("trust", "list", json=True))
            self.assertEqual([t["subject"] for t in r.stdout["trusted"]], [DEV_CA_A])
            # the CA of tls.ca_files is not removed this way
            self.assertEqual(A.ctl("trust", "remove", A.ca_file).returncode, 1)
            self.assertEqual(A.ctl("trust", "frobnicate").returncode, 2)

    def test_cert_request_and_install(self):
        with Parley(domain=A_DOMAIN, address=A_ADDR, name="ctl-cert") as A:
            pki = os.path.join(A.dir, "pki")
            server_pem = os.path.join(pki, "server.pem")
            original = Path(server_pem).read_bytes()
            r = ok(A.ctl("cert", "request", json=True))
            csr = r.stdout["csr"]
            self.assertEqual(csr, os.path.join(pki, "server.csr"))
            out = openssl("req", "-in", csr, "-verify", "-noout", "-text")
            self.assertIn(f"CN = sip.{A_DOMAIN}", out)
            self.assertRegex(out, r"DNS:sip\.a\.test, DNS:a\.test")
            # the request is for the node's key
            self.assertEqual(openssl("req", "-in", csr, "-noout", "-pubkey"),
                             openssl("pkey", "-in", os.path.join(pki, "server.key"), "-pubout"))

            # a certificate from a CA A does not trust: refused, nothing changed
            rca, rkey = make_ca(os.path.join(A.dir, "rogue"), "Rogue CA")
            rogue = os.path.join(A.dir, "rogue.pem")
            openssl("x509", "-req", "-in", csr, "-CA", rca, "-CAkey", rkey, "-days", "90",
                    "-set_serial", "7", "-out", rogue)
            r = A.ctl("cert", "install", rogue)
            self.assertEqual(r.returncode, 1, r)
            self.assertIn("does not chain to a trusted CA", r.stderr + r.stdout)
            self.assertEqual(Path(server_pem).read_bytes(), original)

            # a certificate for another key: refused, nothing changed
            other, _ = issue_cert(os.path.join(pki, "ca.pem"), os.path.join(pki, "ca.key"),
                                  os.path.join(A.dir, "other.pem"), cn=f"sip.{A_DOMAIN}",
                                  dns=[f"sip.{A_DOMAIN}"])
            r = A.ctl("cert", "install", other)
            self.assertEqual(r.returncode, 1, r)
            self.assertRegex(r.stderr + r.stdout, r"(?i)key")
            self.assertEqual(Path(server_pem).read_bytes(), original)
            self.assertEqual(A.ctl("cert", "install", "/nonexistent.pem").returncode, 1)

            # the CSR signed by A's CA: installed and served
            ext = os.path.join(A.dir, "signed.ext")
            Path(ext).write_text("basicConstraints=critical,CA:FALSE\n"
                                 "extendedKeyUsage=serverAuth,clientAuth\n"
                                 f"subjectAltName=DNS:sip.{A_DOMAIN},DNS:{A_DOMAIN},"
                                 "DNS:installed.a.test\n")
            signed = os.path.join(A.dir, "signed.pem")
            openssl("x509", "-req", "-in", csr, "-CA", os.path.join(pki, "ca.pem"), "-CAkey",
                    os.path.join(pki, "ca.key"), "-days", "200", "-set_serial", "4242",
                    "-extfile", ext, "-out", signed)
            r = ok(A.ctl("cert", "install", signed, json=True))
            self.assertEqual(r.stdout["subject"], f"CN=sip.{A_DOMAIN}")
            self.assertEqual(r.stdout["issuer"], DEV_CA_A)
            self.assertEqual(Path(server_pem).read_bytes(), Path(signed).read_bytes())
            A.start()
            with A.connect() as conn:
                der = conn.peer_certificate(binary=True)
            self.assertEqual(ssl.DER_cert_to_PEM_cert(der).strip(),
                             Path(signed).read_text().strip())

    def test_cert_revoke(self):
        with Parley(domain=A_DOMAIN, address=A_ADDR, name="ctl-revoke") as A:
            pki = os.path.join(A.dir, "pki")
            ca, cakey, crl = (os.path.join(pki, f) for f in ("ca.pem", "ca.key", "crl.pem"))
            c1, _ = issue_cert(ca, cakey, os.path.join(A.dir, "one.pem"), cn="one", serial=0x1234AB)
            c2, _ = issue_cert(ca, cakey, os.path.join(A.dir, "two.pem"), cn="two", serial=0x77)
            r = ok(A.ctl("cert", "revoke", "1234AB", json=True))
            self.assertEqual(r.stdout["crl"], crl)
            ok(A.ctl("cert", "revoke", c2))
            text = openssl("crl", "-in", crl, "-noout", "-text")
            self.assertIn("Serial Number: 1234AB", text)
            self.assertIn("Serial Number: 77", text)
            # the CRL is signed by A's CA and current
            res = openssl("crl", "-in", crl, "-noout", "-CAfile", ca, "-verify")
            self.assertNotIn("failure", res.lower())
            self.assertEqual(A.ctl("cert", "revoke", "/nonexistent.pem").returncode, 1)
            # a certificate from another CA is not A's to revoke
            rca, rkey = make_ca(os.path.join(A.dir, "rogue"), "Rogue CA")
            c3, _ = issue_cert(rca, rkey, os.path.join(A.dir, "three.pem"), cn="three", serial=0x99)
            self.assertEqual(A.ctl("cert", "revoke", c3).returncode, 1)
            self.assertNotIn("Serial Number: 99", openssl("crl", "-in", crl, "-noout", "-text"))
            # openssl verify with the CRL calls the first one revoked
            res = run_peer(["openssl", "verify", "-crl_check", "-CAfile", ca, "-CRLfile", crl, c1])
            self.assertNotEqual(res.returncode, 0)
            self.assertIn("certificate revoked", res.stdout + res.stderr)

    def test_expiring_certificates_warned_at_start(self):
        """Our certificate expiring in 10 days and a trusted CA expiring in
        20: event=cert.expiring for each at start-up; the rest (60 days) is
        not mentioned."""
        with Parley(domain=A_DOMAIN, address=A_ADDR, name="ctl-expiring") as A:
            reissue_server_cert(A, "short", dns=[f"sip.{A_DOMAIN}", A_DOMAIN], days=10)
            short_ca, _ = make_ca(os.path.join(A.dir, "shortca"), "Short-lived CA", days=20)
            long_ca, _ = make_ca(os.path.join(A.dir, "longca"), "Long-lived CA", days=60)
            ok(A.ctl("trust", "add", short_ca))
            ok(A.ctl("trust", "add", long_ca))
            A.start()
            rec = A.wait_log("cert.expiring", certificate="server")
            self.assertEqual(rec["subject"], f"CN=sip.{A_DOMAIN}")
            self.assertIn(rec["days_left"], ("9", "10"))
            self.assertEqual(rec["level"], "warn")
            rec = A.wait_log("cert.expiring", certificate="trusted CA")
            self.assertEqual(rec["subject"], "CN=Short-lived CA")
            self.assertIn(rec["days_left"], ("19", "20"))
            self.assertEqual([r["subject"] for r in A.find_log("cert.expiring")],
                             [f"CN=sip.{A_DOMAIN}", "CN=Short-lived CA"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
