#!/usr/bin/python3
"""Federation with real clients (issue #7): alice@a.test (baresip, through
a.test on 127.0.0.2) and bob@b.test (baresip, through b.test on 127.0.0.3)
exchange MESSAGEs, see each other's presence once each has allowed the
other (`parleyctl presence allow`), and hold an SRTP call with audio both
ways. The two servers trust each other's CA and know each other as
partners (see test_federation.py for the set-up and the refusals).

Debian's baresip answers only MD5 challenges and has no certificate of its
own (see /work/shared/peers/baresip.md): every request reaches it over the
connection it registered on.
"""
from __future__ import annotations

import re
import shutil
import time
import unittest

from harness import TIMEOUT_SCALE
from test_federation import A_DOMAIN, ALICE, B_DOMAIN, BOB, Pair, ok

# The running figures baresip prints during a call: " audio=TX/RX (bit/s)".
RATES = re.compile(r"audio=(\d+)/(\d+) \(bit/s\)")


def wait_rates(agent, since: int, timeout: float = 20) -> tuple[int, int]:
    """Wait until the agent's latest audio figures show media both ways."""
    deadline = time.monotonic() + timeout * TIMEOUT_SCALE
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


def contact_state(agent, display: str) -> str | None:
    """The presence baresip shows for a contact ("Online", "Offline",
    "Unknown", "Busy"...), from the `contacts` command."""
    m = re.search(rf"^\W*(\w+)\s+{re.escape(display)} <", agent.cmd("contacts"), re.M)
    return m.group(1) if m else None


def wait_contact_state(agent, display: str, want: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout * TIMEOUT_SCALE
    state = None
    while time.monotonic() < deadline:
        state = contact_state(agent, display)
        if state == want:
            return
        time.sleep(0.2)
    said = "\n".join(l for l in agent.output.splitlines() if l.startswith("presence:"))
    raise AssertionError(f"{agent.name} shows {display} as {state!r}, not {want!r}, after "
                         f"{timeout}s; baresip said:\n{said}")


@unittest.skipIf(shutil.which("baresip") is None, "baresip is not installed")
class TestFederationBaresip(unittest.TestCase):
    def test_message_both_ways(self):
        with Pair("bs-fed-im") as pr:
            pr.start()
            A, B = pr.A, pr.B
            a = A.baresip("alice", contacts=[f'"Bob" <{BOB}>'])
            b = B.baresip("bob", contacts=[f'"Alice" <{ALICE}>'])
            a.wait_registered(timeout=15)
            b.wait_registered(timeout=15)

            mb = b.mark()
            a.cmd("message", "Hello Bob, from alice at a.test")
            b.wait_output(r"\nHello Bob, from alice at a\.test", since=mb)
            got = b.output[mb:]
            self.assertRegex(got, r"From: <sip:alice@a\.test>")
            self.assertRegex(got, r"P-Asserted-Identity: <sip:alice@a\.test>")
            a.wait_output(r"SIP/2.0 200 OK[^#]*CSeq: \d+ MESSAGE")

            ma = a.mark()
            b.cmd("message", "Hello Alice, from bob at b.test")
            a.wait_output(r"\nHello Alice, from bob at b\.test", since=ma)
            self.assertRegex(a.output[ma:], r"From: <sip:bob@b\.test>")
            b.wait_output(r"SIP/2.0 200 OK[^#]*CSeq: \d+ MESSAGE", since=mb)

            # the server-to-server hops were mutual TLS, each way
            A.wait_log("federation.connected", partner=B_DOMAIN, subject=f"CN=sip.{B_DOMAIN}")
            B.wait_log("federation.connected", partner=A_DOMAIN, subject=f"CN=sip.{A_DOMAIN}")
            B.wait_log("conn.open", peer=re.compile(r"127\.0\.0\.2:\d+"), client_cert="verified")

    def test_presence_once_allowed(self):
        """Each watches the other (presence=p2p contacts, PUBLISH every 60
        s). Across domains nothing is shown until each has allowed the
        other; then both are Online."""
        with Pair("bs-fed-presence", a_config={"presence.min_notify_interval": 0},
                  b_config={"presence.min_notify_interval": 0}) as pr:
            pr.start()
            A, B = pr.A, pr.B
            a = A.baresip("alice", contacts=[("Bob", BOB)], pubint=60)
            b = B.baresip("bob", contacts=[("Alice", ALICE)], pubint=60)
            a.wait_registered(timeout=15)
            b.wait_registered(timeout=15)
            B.wait_log("presence.subscribed", presentity="bob", watcher=f"alice@{A_DOMAIN}",
                       state="pending")
            A.wait_log("presence.subscribed", presentity="alice", watcher=f"bob@{B_DOMAIN}",
                       state="pending")
            time.sleep(1)
            self.assertNotEqual(contact_state(a, "Bob"), "Online")
            self.assertNotEqual(contact_state(b, "Alice"), "Online")

            ok(B.ctl("presence", "allow", "bob", f"alice@{A_DOMAIN}"))
            ok(A.ctl("presence", "allow", "alice", f"bob@{B_DOMAIN}"))
            wait_contact_state(a, "Bob", "Online")
            wait_contact_state(b, "Alice", "Online")

    def test_srtp_call_audio_both_ways(self):
        with Pair("bs-fed-call") as pr:
            pr.start()
            A, B = pr.A, pr.B
            a = A.baresip("alice")
            b = B.baresip("bob", answermode="auto")
            a.wait_registered(timeout=15)
            b.wait_registered(timeout=15)
            ma, mb = a.mark(), b.mark()
            a.dial(BOB)
            a.wait_event("CALL_ESTABLISHED", timeout=15)
            b.wait_event("CALL_ESTABLISHED", timeout=15)
            for agent, m in ((a, ma), (b, mb)):
                agent.wait_output(r"SRTP is Enabled", since=m)
            # the SDES key reached bob, over TLS hops only
            self.assertRegex(b.output[mb:], r"a=crypto:\d+ AES_CM_128_HMAC_SHA1_80 inline:")
            wait_rates(a, ma)
            wait_rates(b, mb)
            ev = len(b.events)
            a.hangup()
            b.wait_event("CALL_CLOSED", timeout=10, since=ev)
            for p in (A, B):
                rec = p.wait_log("call.ended", caller=f"alice@{A_DOMAIN}",
                                 callee=f"bob@{B_DOMAIN}")
                self.assertEqual(rec["answered"], "yes")
                self.assertEqual(rec["reason"], "BYE from caller")
            B.wait_log("conn.open", peer=re.compile(r"127\.0\.0\.2:\d+"), client_cert="verified")


if __name__ == "__main__":
    unittest.main(verbosity=2)
