#!/usr/bin/python3
"""What a stranger without credentials can make Parley spend (issue #12).

- A flood of INVITEs that are never acknowledged is answered 407 statelessly:
  parleyd's memory stays flat, and a registered user still calls.
- The ACKs of those 407s are absorbed by their To tag (no answer, no log
  line, a counter); a retransmitted INVITE gets the same 407; an ACK with a
  forged tag is dropped and counted.
- What stays stateful is bounded per connection, per source and in all:
  beyond, 503 with Retry-After.
- Password guessing is throttled per user and source: after a few failures
  even the right password is refused until the block ends, while the user
  registers from elsewhere at once.

Sources are loopback addresses of the test's own (127.0.0.x); ports come
from the harness.
"""
from __future__ import annotations

import os
import re
import select
import socket
import ssl
import threading
import time
import unittest

import sipclient
from harness import TIMEOUT_SCALE, Parley
from sipclient import SipMessage, make_sdp, new_branch, parse_challenges, build_authorization

DOMAIN = "example.test"
USERS = {"alice": "alice-secret", "bob": "bob-secret"}


def scaled(t: float) -> float:
    return t * TIMEOUT_SCALE


def small_quarantine_env() -> dict:
    # Under AddressSanitizer freed memory waits in a quarantine (256 MB by
    # default) before reuse, which would show as growth: keep it small so
    # what is measured is what the server holds.
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"),
                                                 "quarantine_size_mb=4"]))
    return env


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def status(p: Parley) -> dict:
    res = p.ctl("status", json=True)
    assert res.returncode == 0, res.stderr
    return res.stdout


def prime(c: sipclient.SipClient) -> None:
    """Get the server's 407 challenge into c's cache (a MESSAGE to a user
    that does not exist: challenged, then 404), so invite() can send
    credentials up front without waiting."""
    r = c.message(f"sip:nobody-prime@{DOMAIN}", "prime")
    if r.status != 404 or not any(k[0] for k in c.auth_cache):
        raise AssertionError(f"priming credentials failed: {r.summary()}")


def invite(c: sipclient.SipClient, uri: str) -> SipMessage:
    """An INVITE with credentials for the cached 407 challenge, sent without
    waiting for its answer."""
    req = c.build_request("INVITE", uri, body=make_sdp(c.conn.local_address[0]),
                          content_type="application/sdp")
    for ch in c.auth_cache.values():
        if ch.proxy:
            req.add_header("Proxy-Authorization", c.authorization_for(ch, "INVITE", req.uri or ""))
    c.send(req)
    return req


def invite_bytes(i: int, source: str, port: int) -> bytes:
    return (f"INVITE sip:alice@{DOMAIN} SIP/2.0\r\n"
            f"Via: SIP/2.0/TLS {source}:{port};branch=z9hG4bKflood{i}\r\n"
            f"Max-Forwards: 70\r\n"
            f"From: <sip:mallory{i % 7}@{DOMAIN}>;tag=f{i}\r\n"
            f"To: <sip:alice@{DOMAIN}>\r\n"
            f"Call-ID: flood-{source}-{i}\r\n"
            f"CSeq: 1 INVITE\r\n"
            f"Contact: <sip:mallory@{source}:{port};transport=tls>\r\n"
            f"Content-Length: 0\r\n\r\n").encode()


class Flooder(threading.Thread):
    """One TLS connection that sends `count` INVITEs as fast as the server
    reads them and counts what comes back, on one thread (an SSL socket
    must not be read and written by two threads at once)."""

    def __init__(self, p: Parley, source: str, count: int, first: int):
        super().__init__(daemon=True)
        self.conn = p.connect(source_address=source)
        self.sock = self.conn.sock
        self.sock.setblocking(False)
        self.source, self.count, self.first = source, count, first
        self.port = self.conn.local_address[1]
        self.responses = 0
        self.challenges = 0
        self.others: list[str] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as e:  # reported by the test
            self.error = e

    def _run(self) -> None:
        pending = b""
        received = b""
        next_i = self.first
        end = self.first + self.count
        deadline = time.monotonic() + scaled(120)
        while self.responses < self.count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.source}: {self.responses} of {self.count} answered")
            progressed = False
            if not pending and next_i < end:
                n = min(200, end - next_i)
                pending = b"".join(invite_bytes(i, self.source, self.port)
                                   for i in range(next_i, next_i + n))
                next_i += n
            if pending:
                try:
                    sent = self.sock.send(pending[:65536])
                    pending = pending[sent:]
                    progressed = True
                except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                    pass
            try:
                data = self.sock.recv(262144)
                if not data:
                    raise ConnectionError(f"{self.source}: closed by the server")
                received = self._count(received + data)
                progressed = True
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                pass
            if not progressed:
                select.select([self.sock], [self.sock] if pending else [], [], 0.05)

    def _count(self, data: bytes) -> bytes:
        """Counts the whole responses in data (heads only: every answer
        here has Content-Length 0); returns what is left."""
        at = 0
        while True:
            end = data.find(b"\r\n\r\n", at)
            if end < 0:
                return data[at:]
            status = data[at + 8:at + 11]
            self.responses += 1
            if status == b"407":
                self.challenges += 1
            else:
                self.others.append(status.decode(errors="replace"))
            at = end + 4

    def close(self) -> None:
        self.conn.abort()


class TestStatelessAnswers(unittest.TestCase):
    def test_invite_flood_costs_nothing(self):
        """100,000 INVITEs without credentials from twenty sources, never
        acknowledged: every one answered 407, memory flat, and a registered
        user's call goes through meanwhile."""
        with Parley(name="flood", users=USERS, env=small_quarantine_env()) as p:
            p.start()
            bob = p.client("bob")
            self.assertEqual(bob.register().status, 200)
            alice = p.client("alice")
            self.assertEqual(alice.register().status, 200)
            prime(alice)
            pid = p.proc.pid
            idle = rss_kb(pid)
            # the twenty connections are open before the flood starts: what
            # is measured is what the INVITEs cost
            per = int(os.environ.get("FLOOD_PER_CONN", "5000"))
            flooders = [Flooder(p, f"127.0.0.{2 + k}", per, k * per) for k in range(20)]
            time.sleep(0.2)
            before = rss_kb(pid)
            peak = [before]
            sampling = threading.Event()

            def sample():
                while not sampling.is_set():
                    peak[0] = max(peak[0], rss_kb(pid))
                    time.sleep(0.05)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            t0 = time.monotonic()
            for f in flooders:
                f.start()

            # a call while the flood runs: alice (127.0.0.1) to bob
            time.sleep(0.3)
            call_t0 = time.monotonic()
            inv = invite(alice, f"sip:bob@{DOMAIN}")
            ring = bob.wait_request("INVITE", timeout=scaled(20))
            bob.answer(ring, 200, body=make_sdp(port=40002))
            final = alice.wait_response(inv, timeout=scaled(20), final=True)
            call_s = time.monotonic() - call_t0
            during = rss_kb(pid)
            still_flooding = any(f.is_alive() for f in flooders)

            for f in flooders:
                f.join(timeout=scaled(180))
            flood_s = time.monotonic() - t0
            time.sleep(1)
            after = rss_kb(pid)
            sampling.set()
            sampler.join()
            for f in flooders:
                f.close()

            for f in flooders:
                self.assertIsNone(f.error, f.error)
            total = sum(f.responses for f in flooders)
            challenged = sum(f.challenges for f in flooders)
            others = [s for f in flooders for s in f.others]
            print(f"\nflood: {total} INVITEs answered in {flood_s:.1f} s, {challenged} with 407, "
                  f"others {sorted(set(others))}; RSS idle {idle} kB, with the connections "
                  f"{before} kB, during {during} kB, "
                  f"peak {peak[0]} kB, after {after} kB; the call was answered in {call_s:.2f} s "
                  f"({'during' if still_flooding else 'after'} the flood)")
            self.assertEqual(final.status, 200, final)
            alice.ack(inv, final)
            self.assertEqual(total, 100000)
            self.assertEqual(challenged, 100000, f"not all 407: {sorted(set(others))}")
            self.assertLess(peak[0] - before, 20 * 1024,
                            f"RSS grew by {(peak[0] - before) // 1024} MB during the flood")
            self.assertLess(after - before, 20 * 1024)
            st = status(p)["daemon"]["sip"]
            self.assertGreaterEqual(st["stateless_answers"], 100000, st)
            # alice's call is the only thing held (its INVITE transaction in
            # Accepted, at most)
            self.assertLessEqual(st["transactions"]["held"], 1, st)

    def test_acks_of_challenges_are_absorbed(self):
        """The ACK of a stateless 407 is recognised by its To tag and
        absorbed: no answer, no log line, a counter. A retransmitted INVITE
        gets the same 407; an ACK with a forged tag is dropped and counted."""
        with Parley(name="acks", users=USERS) as p:
            p.start()
            conn = p.connect()
            client = sipclient.SipClient(conn, user="mallory", domain=DOMAIN)
            inv = client.build_request("INVITE", f"sip:alice@{DOMAIN}")
            client.send(inv)
            first = client.wait_response(inv, timeout=scaled(5), final=True)
            self.assertEqual(first.status, 407)
            tag = first.to_addr.params.get("tag")
            self.assertTrue(tag)
            mark = p.log_mark()
            client.send(inv)  # the same bytes again
            again = client.wait_response(inv, timeout=scaled(5), final=True)
            self.assertEqual(again.status, 407)
            self.assertEqual(again.to_addr.params.get("tag"), tag, "another tag for the same INVITE")

            for _ in range(50):
                client.ack(inv, first)
            forged = first.copy()
            forged.set_header("To", f"<sip:alice@{DOMAIN}>;tag={'0' * len(tag)}")
            client.ack(inv, forged)
            # nothing comes back for any of them
            self.assertIsNone(conn.try_recv(timeout=1.0))
            st = status(p)["daemon"]["sip"]
            self.assertEqual(st["acks_absorbed"], 50, st)
            self.assertEqual(st["acks_dropped"], 1, st)
            self.assertEqual(st["transactions"]["held"], 0, st)
            lines = [l.raw for l in p.log_lines(mark) if "ACK" in l.raw]
            self.assertEqual(lines, [], "ACKs were logged")
            conn.close()


class TestBounds(unittest.TestCase):
    def test_requests_beyond_the_bounds_get_503(self):
        """Forwarded requests are held; past limits.transactions_* they get
        503 with Retry-After, statelessly, logged with counts."""
        cfg = {"limits.transactions_per_connection": 2,
               "limits.transactions_per_source": 3,
               "limits.transactions_total": 4}
        with Parley(name="bounds", users=USERS, config=cfg) as p:
            p.start()
            bob = p.client("bob", source_address="127.0.0.9")
            self.assertEqual(bob.register().status, 200)

            def caller(source: str) -> sipclient.SipClient:
                c = p.client("alice", source_address=source)
                self.assertEqual(c.register().status, 200)
                prime(c)
                return c

            def ring(c: sipclient.SipClient) -> SipMessage:
                inv = invite(c, f"sip:bob@{DOMAIN}")
                bob.wait_request("INVITE", timeout=scaled(5))  # bob never answers
                return inv

            def refused(c: sipclient.SipClient) -> SipMessage:
                inv = invite(c, f"sip:bob@{DOMAIN}")
                r = c.wait_response(inv, timeout=scaled(5), final=True)
                self.assertEqual(r.status, 503, r)
                self.assertIsNotNone(r.header("Retry-After"), r)
                return r

            mark = p.log_mark()
            a1 = caller("127.0.0.2")
            ring(a1)
            ring(a1)
            refused(a1)  # per connection: 2
            rec = p.wait_log("sip.overload", since=mark)
            self.assertEqual(rec["bound"], "limits.transactions_per_connection")
            a2 = caller("127.0.0.2")  # same source, new connection
            ring(a2)
            refused(a2)  # per source: 3
            self.assertTrue(p.find_log("sip.overload", since=mark,
                                       bound="limits.transactions_per_source"))
            a3 = caller("127.0.0.3")
            ring(a3)
            refused(a3)  # in all: 4
            self.assertTrue(p.find_log("sip.overload", since=mark,
                                       bound="limits.transactions_total"))
            st = status(p)["daemon"]["sip"]
            self.assertEqual(st["transactions"]["held"], 4, st)
            self.assertEqual(st["overload_refused"], 3, st)
            # a request answered at once is not refused: it holds nothing
            self.assertEqual(a3.options().status, 200)
            # when the calls end, there is room again
            for c in (a1, a2, a3):
                c.close()
            deadline = time.monotonic() + scaled(10)
            while status(p)["daemon"]["sip"]["transactions"]["held"] and \
                    time.monotonic() < deadline:
                time.sleep(0.1)
            self.assertEqual(status(p)["daemon"]["sip"]["transactions"]["held"], 0)
            a4 = caller("127.0.0.4")
            ring(a4)
            a4.close()


class TestPasswordGuessing(unittest.TestCase):
    def test_guessing_is_throttled(self):
        cfg = {"auth.max_failures": 5, "auth.block_time": 2, "auth.max_block_time": 4}
        with Parley(name="guess", users=USERS, config=cfg) as p:
            p.start()
            conn = p.connect(source_address="127.0.0.2")
            guesser = sipclient.SipClient(conn, user="alice", domain=DOMAIN,
                                          password="wrong-0")
            r = guesser.register()
            self.assertEqual(r.status, 403)
            # An attacker's cheapest way: a burst of unauthenticated
            # REGISTERs for fresh nonces (each nonce serves one guess), then
            # a burst of guesses, each with its own nonce, on one connection.
            uri = f"sip:{DOMAIN}"
            asks = [guesser.build_request("REGISTER", uri, expires=60) for _ in range(999)]
            t0 = time.monotonic()
            conn.send(b"".join(r.to_bytes() for r in asks))
            nonces = []
            for req in asks:
                resp = guesser.wait_response(req, timeout=scaled(10), final=True)
                self.assertEqual(resp.status, 401, resp)
                nonces.append(guesser.choose_challenge(resp))
            reqs = []
            for i, ch in enumerate(nonces):
                req = guesser.build_request("REGISTER", uri, expires=60)
                req.add_header("Authorization", build_authorization(
                    ch, username="alice", password=f"wrong-{i}", method="REGISTER", uri=uri,
                    nc=1))
                reqs.append(req)
            conn.send(b"".join(r.to_bytes() for r in reqs))
            statuses = {}
            throttled = 0
            for req in reqs:
                resp = guesser.wait_response(req, timeout=scaled(10), final=True)
                statuses[resp.status] = statuses.get(resp.status, 0) + 1
                if resp.status == 503:
                    self.assertIn("too many failed attempts", resp.reason)
                    self.assertIsNotNone(resp.header("Retry-After"))
                    throttled += 1
            guess_s = time.monotonic() - t0
            print(f"\n1000 wrong passwords in {guess_s:.2f} s: {statuses}, {throttled} refused "
                  f"unchecked")
            # a few checked and refused (403), the rest refused unchecked (503)
            self.assertEqual(sorted(statuses), [403, 503], statuses)
            self.assertEqual(sum(statuses.values()), 999)
            self.assertGreaterEqual(throttled, 990, "guesses were checked, not throttled")

            def right_password() -> SipMessage:
                ask = guesser.build_request("REGISTER", uri, expires=60)
                guesser.send(ask)
                ch = guesser.choose_challenge(guesser.wait_response(ask, timeout=scaled(5)))
                req = guesser.build_request("REGISTER", uri, expires=60)
                req.add_header("Authorization", build_authorization(
                    ch, username="alice", password=USERS["alice"], method="REGISTER", uri=uri,
                    nc=1))
                guesser.send(req)
                return guesser.wait_response(req, timeout=scaled(5), final=True)

            # the right password from the same source is refused too
            resp = right_password()
            self.assertEqual(resp.status, 503, "the right password got through a block")
            self.assertIn("too many failed attempts", resp.reason)
            retry = int(resp.header("Retry-After"))

            # alice from another source: at once
            t1 = time.monotonic()
            elsewhere = p.client("alice", source_address="127.0.0.3")
            self.assertEqual(elsewhere.register().status, 200)
            self.assertLess(time.monotonic() - t1, scaled(2))

            # the administrator sees it
            res = p.ctl("user", "list", json=True)
            alice_row = [u for u in res.stdout["users"] if u["user"] == "alice"][0]
            self.assertTrue(any(t["source"] == "127.0.0.2" and t["blocked_s"] > 0
                                for t in alice_row["throttled"]), alice_row)
            text = p.ctl("user", "list").stdout
            self.assertRegex(text, r"sip:alice@example.test  \(password guessing: .*127\.0\.0\.2: "
                                   r"5 failures, blocked for \d+ s")
            st = status(p)["daemon"]["authentication"]
            self.assertEqual(st["pairs_blocked"], 1, st)
            self.assertGreaterEqual(st["throttled_refusals"], 990, st)

            # logging stayed bounded: a few lines with counts, not 1000
            # (refusals beyond a line a second are summed in the next line)
            p.wait_log("auth.throttled", timeout=scaled(5), refused=lambda v: int(v) > 1)
            refusals = p.find_log("auth.throttled")
            self.assertLess(len(refusals), 10, [r.raw for r in refusals])
            self.assertEqual(sum(int(r["refused"]) for r in refusals), throttled + 1,
                             [r.raw for r in refusals])
            self.assertTrue(p.find_log("auth.blocked", user="alice", source="127.0.0.2"))

            # after the back-off the right password works from there too
            time.sleep(retry + 0.2)
            resp = right_password()
            self.assertEqual(resp.status, 200, resp)
            conn.close()
            elsewhere.close()

    def test_unblock(self):
        cfg = {"auth.max_failures": 2, "auth.block_time": 600}
        with Parley(name="unblock", users=USERS, config=cfg) as p:
            p.start()
            c = p.client("bob", password="nope", source_address="127.0.0.4")
            for _ in range(2):
                c.forget_credentials()
                self.assertEqual(c.register().status, 403)
            c.password = USERS["bob"]
            c.forget_credentials()
            r = c.register()
            self.assertEqual(r.status, 503)
            self.assertIn("too many failed attempts", r.reason)
            res = p.ctl("user", "unblock", "bob", "--source", "127.0.0.9", json=True)
            self.assertEqual(res.returncode, 0)
            self.assertEqual(res.stdout["removed"], 0)
            res = p.ctl("user", "unblock", "bob", "--source", "127.0.0.4")
            self.assertEqual(res.returncode, 0, res.stderr)
            self.assertIn("unblocked bob from 127.0.0.4", res.stdout)
            self.assertNotIn("still blocked", res.stdout)
            c.forget_credentials()
            self.assertEqual(c.register().status, 200)
            bad = p.ctl("user", "unblock", "bob", "--source", "not-an-address")
            self.assertEqual(bad.returncode, 2)
            c.close()


class TestThrottleScopes(unittest.TestCase):
    def test_spraying_one_source_and_a_registered_device(self):
        """One source failing for many names is refused for every name; a
        connection that carries a user's registration is never refused for
        that user, even from the blocked source."""
        cfg = {"auth.max_failures": 50, "auth.max_source_failures": 10, "auth.block_time": 600}
        with Parley(name="spray", users=USERS, config=cfg) as p:
            p.start()
            # bob's phone, registered from 127.0.0.6 before the attack
            phone = p.client("bob", source_address="127.0.0.6")
            self.assertEqual(phone.register().status, 200)
            sprayer = p.client("x", password="password1", source_address="127.0.0.6")
            for i in range(10):
                sprayer.forget_credentials()
                self.assertEqual(sprayer.register(user=f"name{i}").status, 403)
            sprayer.forget_credentials()
            r = sprayer.register(user="alice", password=USERS["alice"])
            self.assertEqual(r.status, 503, r)
            self.assertTrue(p.find_log("auth.blocked", scope="all names", source="127.0.0.6"))
            # the phone re-registers on its connection: not refused
            phone.forget_credentials()
            self.assertEqual(phone.register().status, 200)
            # another source is untouched
            other = p.client("alice", source_address="127.0.0.7")
            self.assertEqual(other.register().status, 200)
            st = status(p)["daemon"]["authentication"]
            self.assertEqual(st["sources_blocked"], 1, st)
            for c in (phone, sprayer, other):
                c.close()


class TestBoundsSpareTheEnd(unittest.TestCase):
    def test_bye_passes_a_full_bound_and_users_are_bounded(self):
        cfg = {"limits.transactions_per_connection": 2, "limits.transactions_per_user": 3}
        with Parley(name="byebound", users=USERS, config=cfg) as p:
            p.start()
            bob = p.client("bob", source_address="127.0.0.9")
            self.assertEqual(bob.register().status, 200)
            alice = p.client("alice", source_address="127.0.0.2")
            self.assertEqual(alice.register().status, 200)
            prime(alice)
            inv = invite(alice, f"sip:bob@{DOMAIN}")
            ring = bob.wait_request("INVITE", timeout=scaled(5))
            bob_dialog = bob.answer(ring, 200, body=make_sdp(port=40002))
            ok = alice.wait_response(inv, timeout=scaled(5), final=True)
            self.assertEqual(ok.status, 200)
            alice.ack(inv, ok)
            dialog = sipclient.Dialog.from_uac(inv, ok)
            # MESSAGEs bob never answers fill alice's connection (the
            # answered INVITE no longer counts: its work is done)
            def message() -> SipMessage:
                m = alice.build_request("MESSAGE", f"sip:bob@{DOMAIN}", body=b"hi",
                                        content_type="text/plain")
                for ch in alice.auth_cache.values():
                    if ch.proxy:
                        m.add_header("Proxy-Authorization",
                                     alice.authorization_for(ch, "MESSAGE", m.uri or ""))
                alice.send(m)
                return m

            for _ in range(2):
                message()
                bob.wait_request("MESSAGE", timeout=scaled(5))
            m3 = message()
            r = alice.wait_response(m3, timeout=scaled(5), final=True)
            self.assertEqual(r.status, 503, r)
            # the BYE still goes through, and ends the call
            bye = alice.build_in_dialog(dialog, "BYE")
            alice.send(bye)
            got = bob.wait_request("BYE", timeout=scaled(5))
            bob.respond(got, 200)
            self.assertEqual(alice.wait_response(bye, timeout=scaled(5), final=True).status, 200)
            p.wait_log("call.ended", reason="BYE from caller")
            # alice from a second connection: the user's bound (3) counts her
            # requests on both
            alice2 = p.client("alice", source_address="127.0.0.3")
            self.assertEqual(alice2.register().status, 200)
            prime(alice2)
            invite(alice2, f"sip:bob@{DOMAIN}")
            bob.wait_request("INVITE", timeout=scaled(5))
            inv3 = invite(alice2, f"sip:bob@{DOMAIN}")
            r = alice2.wait_response(inv3, timeout=scaled(5), final=True)
            self.assertEqual(r.status, 503, r)
            self.assertTrue(p.find_log("sip.overload", bound="limits.transactions_per_user"))
            for c in (alice, alice2, bob):
                c.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
