#!/usr/bin/python3
"""Registrar and proxy with a real client (issue #3): baresip agents
register over TLS with digest authentication, exchange a MESSAGE, call each
other with SRTP audio flowing both ways, and a call to a user with two
devices is answered on one while the other is cancelled.

Debian's baresip answers only MD5 challenges (see
/work/shared/peers/baresip.md), so the server keeps its default
auth.algorithms = MD5 here. baresip has no certificate of its own, so every
request that reaches it came back over the connection it registered on.
"""
from __future__ import annotations

import re
import shutil
import socket
import time
import unittest

from harness import TIMEOUT_SCALE, Parley, free_port

DOMAIN = "example.test"
USERS = {"alice": "alice-secret", "bob": "bob-secret"}
BOB = f"sip:bob@{DOMAIN}"

# The running figures baresip prints during a call: " audio=TX/RX (bit/s)"
# (baresip's stream_print: transmit bit rate, then receive bit rate).
RATES = re.compile(r"audio=(\d+)/(\d+) \(bit/s\)")


def scaled(t: float) -> float:
    return t * TIMEOUT_SCALE


def registrations(p: Parley, user: str | None = None) -> list[dict]:
    res = p.ctl("registrations", json=True)
    if res.returncode != 0:
        raise AssertionError(f"parleyctl registrations failed: {res.stderr}")
    return [r for r in res.stdout["registrations"] if user is None or r["user"] == user]


def call_records(p: Parley, timeout: float = 5, count: int = 1) -> list[dict]:
    deadline = time.monotonic() + scaled(timeout)
    while True:
        res = p.ctl("calls", json=True)
        if res.returncode != 0:
            raise AssertionError(f"parleyctl calls failed: {res.stderr}")
        if len(res.stdout["calls"]) >= count or time.monotonic() > deadline:
            return res.stdout["calls"]
        time.sleep(0.1)


def wait_rates(agent, since: int, timeout: float = 20) -> tuple[int, int]:
    """Wait until the agent's latest audio figures show media both ways."""
    deadline = time.monotonic() + scaled(timeout)
    last = (0, 0)
    while time.monotonic() < deadline:
        figures = RATES.findall(agent.output[since:])
        if figures:
            last = tuple(int(x) for x in figures[-1])
            if last[0] > 0 and last[1] > 0:
                return last
        time.sleep(0.2)
    raise AssertionError(f"{agent.name}: no audio both ways within {timeout}s "
                         f"(last TX/RX figures {last[0]}/{last[1]} bit/s)\n{agent.tail(30)}")


class Console:
    """baresip's cons.so UI console over TCP: where its menu prints what a
    user would see (an incoming MESSAGE, for one)."""

    def __init__(self, port: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + scaled(timeout)
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", port), timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.buf = b""
        # any key shows the help: proof the console has taken us on
        self.sock.sendall(b"h")
        self.wait(rb"--- Help ---")

    def wait(self, pattern: bytes, timeout: float = 10) -> re.Match:
        deadline = time.monotonic() + scaled(timeout)
        while True:
            m = re.search(pattern, self.buf)
            if m:
                return m
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"console: no {pattern!r} within {timeout}s; got {self.buf[-500:]!r}")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise AssertionError(f"console closed; got {self.buf[-500:]!r}")
            self.buf += chunk

    def close(self) -> None:
        self.sock.close()


@unittest.skipIf(shutil.which("baresip") is None, "baresip is not installed")
class TestBaresip(unittest.TestCase):
    def test_register_over_tls_with_digest(self):
        with Parley(name="bs-register", users=USERS) as p:
            p.start()
            a = p.baresip("alice")
            b = p.baresip("bob")
            a.wait_registered(timeout=15)
            b.wait_registered(timeout=15)
            for user in ("alice", "bob"):
                regs = registrations(p, user)
                self.assertEqual(len(regs), 1, regs)
                self.assertEqual(regs[0]["transport"], "TLS")
                self.assertIn(regs[0]["tls_version"], ("TLSv1.2", "TLSv1.3"))
                self.assertIn("baresip", regs[0]["user_agent"])
                self.assertTrue(0 < regs[0]["expires_in_s"] <= 600, regs[0])
                p.wait_log("registrar.bound", user=user, transport="TLS")
            # baresip answered a digest challenge (it sends nothing unasked)
            self.assertRegex(a.output, r"SIP/2.0 401 Unauthorized")
            self.assertRegex(a.output, r'Authorization: Digest username="alice"')
            text = p.ctl("registrations").stdout
            self.assertRegex(text, r"(?m)^alice\s+TLS\s+127\.0\.0\.1:\d+\s+TLSv1\.[23]\s+\d+s\s+sip:alice")

    def test_wrong_password_refused(self):
        with Parley(name="bs-wrongpw", users=USERS) as p:
            p.start()
            mark = p.log_mark()
            a = p.baresip("alice", "not-alices-password")
            a.wait_registered(timeout=15, status="ERR")
            self.assertRegex(a.output, r"SIP/2.0 403 ")
            rec = p.wait_log("sip.rejected", since=mark, method="REGISTER", status="403")
            self.assertEqual(rec["reason"], "authentication failed")
            self.assertEqual(registrations(p), [])
            p.assert_no_log("registrar.bound")

    def test_message_reaches_bobs_client(self):
        with Parley(name="bs-message", users=USERS) as p:
            p.start()
            console = free_port("both")
            a = p.baresip("alice", contacts=[f'"Bob" <{BOB}>'])
            b = p.baresip("bob", modules=["cons.so"], config={"cons_listen": f"127.0.0.1:{console}"})
            a.wait_registered(timeout=15)
            b.wait_registered(timeout=15)
            con = Console(console)
            try:
                a.cmd("message", "Hello Bob, from Alice")
                con.wait(rb'sip:alice@example\.test: "Hello Bob, from Alice"')
            finally:
                con.close()
            # alice's client was told it arrived
            a.wait_output(r"SIP/2.0 200 OK[^#]*CSeq: \d+ MESSAGE")

    def test_call_with_audio_both_ways(self):
        with Parley(name="bs-call", users=USERS) as p:
            p.start()
            a = p.baresip("alice")
            b = p.baresip("bob", answermode="auto")
            a.wait_registered(timeout=15)
            b.wait_registered(timeout=15)
            ma, mb = a.mark(), b.mark()
            a.dial(BOB)
            a.wait_event("CALL_ESTABLISHED", timeout=15)
            b.wait_event("CALL_ESTABLISHED", timeout=15)
            for agent in (a, b):
                agent.wait_output(r"SRTP is Enabled", since=0)
            tx_a, rx_a = wait_rates(a, ma)
            tx_b, rx_b = wait_rates(b, mb)
            self.assertGreater(rx_a, 0)
            self.assertGreater(rx_b, 0)
            ev_mark = len(b.events)
            a.hangup()
            b.wait_event("CALL_CLOSED", timeout=10, since=ev_mark)
            b.wait_output(r"Call with sip:alice@example\.test terminated", since=mb)
            rec = p.wait_log("call.ended", caller=f"alice@{DOMAIN}", callee=f"bob@{DOMAIN}")
            self.assertEqual(rec["answered"], "yes")
            self.assertEqual(rec["reason"], "BYE from caller")
            calls = call_records(p)
            self.assertEqual(len(calls), 1, calls)
            self.assertEqual(calls[0]["caller"], f"alice@{DOMAIN}")
            self.assertEqual(calls[0]["callee"], f"bob@{DOMAIN}")
            self.assertEqual(calls[0]["reason"], "BYE from caller")
            self.assertNotEqual(calls[0]["answered"], "-")
            self.assertNotEqual(calls[0]["ended"], "-")
            self.assertEqual(p.ctl("status", json=True).stdout["daemon"]["dialogs"], 0)

    def test_two_devices_one_answers_the_other_is_cancelled(self):
        with Parley(name="bs-fork", users=USERS) as p:
            p.start()
            a = p.baresip("alice")
            b1 = p.baresip("bob", answermode="manual", name="baresip-bob-desk")
            b2 = p.baresip("bob", answermode="manual", name="baresip-bob-phone")
            for agent in (a, b1, b2):
                agent.wait_registered(timeout=15)
            self.assertEqual(len(registrations(p, "bob")), 2)
            a.dial(BOB)
            b1.wait_event("CALL_INCOMING", timeout=10)
            b2.wait_event("CALL_INCOMING", timeout=10)
            m2 = b2.mark()
            b1.accept()
            a.wait_event("CALL_ESTABLISHED", timeout=10)
            b1.wait_event("CALL_ESTABLISHED", timeout=10)
            b2.wait_event("CALL_CLOSED", timeout=10)
            # the other device was cancelled, and told why
            b2.wait_output(r'CANCEL sip:bob[^#]*Reason: SIP;cause=200;text="Call completed elsewhere"',
                           since=m2)
            b2.wait_output(r"SIP/2.0 487 Request Terminated", since=m2)
            self.assertFalse([e for e in b2.events if e.get("type") == "CALL_ESTABLISHED"])
            ev_mark = len(b1.events)
            a.hangup()
            b1.wait_event("CALL_CLOSED", timeout=10, since=ev_mark)
            calls = call_records(p)
            self.assertEqual(len(calls), 1, calls)
            self.assertEqual(calls[0]["reason"], "BYE from caller")
            self.assertNotEqual(calls[0]["answered"], "-")


if __name__ == "__main__":
    unittest.main(verbosity=2)
