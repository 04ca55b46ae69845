#!/usr/bin/python3
"""The media encryption policy (issue #5) with a real client: baresip
agents call each other through Parley over TLS.

- required (default): srtp-mand -> srtp-mand and srtp-mand -> srtp
  (optional SRTP at the callee) are set up and both agents report
  "SRTP is Enabled (cryptosuite=...)"; a caller without media encryption
  gets 488 and bob's phone never rings.
- supported: two agents without media encryption talk; the call log says
  the media was unencrypted and why that was allowed.
- not_supported: an srtp-mand caller gets 488.

Calls are not held for audio figures (test_baresip_calls.py does that):
what is checked is what each agent negotiated and what Parley logged, so
the whole file runs in well under a minute.
"""
from __future__ import annotations

import re
import shutil
import time
import unittest

from harness import TIMEOUT_SCALE, Parley

DOMAIN = "example.test"
USERS = {"alice": "alice-secret", "bob": "bob-secret"}
BOB = f"sip:bob@{DOMAIN}"
ALICE_AOR, BOB_AOR = f"alice@{DOMAIN}", f"bob@{DOMAIN}"
SRTP_ENABLED = re.compile(r"SRTP is Enabled \(cryptosuite=(\w+)\)")
W_PLAIN = "media encryption required (SDES-SRTP or DTLS-SRTP): audio offers no encryption (RTP/AVP without a=crypto)"
W_NOT_SUPPORTED = "media encryption not supported (plain RTP only): audio offers SDES (RTP/SAVP)"
# baresip's running figures: " audio=TX/RX (bit/s)"
RATES = re.compile(r"audio=(\d+)/(\d+) \(bit/s\)")


def scaled(t: float) -> float:
    return t * TIMEOUT_SCALE


def calls(p: Parley, count: int = 1, timeout: float = 5) -> list[dict]:
    deadline = time.monotonic() + scaled(timeout)
    while True:
        res = p.ctl("calls", json=True)
        if res.returncode != 0:
            raise AssertionError(f"parleyctl calls failed: {res.stderr}")
        if len(res.stdout["calls"]) >= count or time.monotonic() > deadline:
            return res.stdout["calls"]
        time.sleep(0.1)


def wait_rates(agent, since: int, timeout: float = 15) -> tuple[int, int]:
    """Until the agent's latest audio figures show media both ways: SRTP
    that both ends decrypt proves the keys crossed Parley intact."""
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
                         f"(last TX/RX {last[0]}/{last[1]} bit/s)\n{agent.tail(30)}")


@unittest.skipIf(shutil.which("baresip") is None, "baresip is not installed")
class TestMediaBaresip(unittest.TestCase):
    def agents(self, p: Parley, alice_enc: str | None, bob_enc: str | None):
        a = p.baresip("alice", mediaenc=alice_enc)
        b = p.baresip("bob", mediaenc=bob_enc, answermode="auto")
        a.wait_registered(timeout=15)
        b.wait_registered(timeout=15)
        return a, b

    def established(self, p: Parley, a, b) -> tuple[int, int]:
        marks = a.mark(), b.mark()
        a.dial(BOB)
        a.wait_event("CALL_ESTABLISHED", timeout=15)
        b.wait_event("CALL_ESTABLISHED", timeout=15)
        return marks

    def hang_up(self, p: Parley, a, b) -> dict:
        ev = len(b.events)
        a.hangup()
        b.wait_event("CALL_CLOSED", timeout=10, since=ev)
        rec = p.wait_log("call.ended", caller=ALICE_AOR, callee=BOB_AOR)
        self.assertEqual(rec["answered"], "yes")
        self.assertEqual(rec["reason"], "BYE from caller")
        recs = calls(p)
        self.assertEqual(len(recs), 1, recs)
        return recs[0]

    def both_srtp(self, a, b) -> list[str]:
        suites = []
        for agent in (a, b):
            m = agent.wait_output(SRTP_ENABLED, timeout=10)
            suites.append(m.group(1))
        return suites

    def refused(self, p: Parley, a, b, warning: str) -> None:
        a.dial(BOB)
        a.wait_output(r"SIP/2.0 488 Not Acceptable Here", timeout=10)
        a.wait_event("CALL_CLOSED", timeout=10)
        # the Warning reached the caller
        a.wait_output(re.escape(f'Warning: 399 {DOMAIN} "{warning}"'), timeout=5)
        self.assertFalse([e for e in a.events if e.get("type") == "CALL_ESTABLISHED"])
        # bob's phone never rang: no INVITE reached it
        self.assertNotRegex(b.output, r"INVITE sip:bob@")
        self.assertFalse([e for e in b.events if e.get("type") == "CALL_INCOMING"])
        rec = p.wait_log("call.ended", caller=ALICE_AOR, callee=BOB_AOR)
        self.assertEqual(rec["answered"], "no")
        self.assertEqual(rec["reason"], f"488 Not Acceptable Here: {warning}")
        p.wait_log("media.refused", sdp="offer", reason=warning)
        recs = calls(p)
        self.assertEqual(len(recs), 1, recs)
        self.assertEqual(recs[0]["answered"], "-")
        self.assertEqual(p.ctl("status", json=True).stdout["daemon"]["dialogs"], 0)

    # -- required ------------------------------------------------------------

    def test_required_srtp_mand_to_srtp_mand(self):
        with Parley(name="mb-mand-mand", users=USERS) as p:
            p.start()
            a, b = self.agents(p, "srtp-mand", "srtp-mand")
            self.established(p, a, b)
            sa, sb = self.both_srtp(a, b)
            self.assertEqual(sa, sb)
            rec = self.hang_up(p, a, b)
            self.assertEqual(rec.get("media"), f"audio SRTP {sa}", rec)

    def test_required_srtp_mand_to_optional_srtp(self):
        with Parley(name="mb-mand-opt", users=USERS) as p:
            p.start()
            a, b = self.agents(p, "srtp-mand", "srtp")
            ma, mb = self.established(p, a, b)
            sa, sb = self.both_srtp(a, b)
            self.assertEqual(sa, sb)
            wait_rates(a, ma)
            wait_rates(b, mb)
            rec = self.hang_up(p, a, b)
            self.assertEqual(rec.get("media"), f"audio SRTP {sa}", rec)

    def test_required_caller_without_encryption_refused(self):
        with Parley(name="mb-none-488", users=USERS) as p:
            p.start()
            a, b = self.agents(p, None, "srtp-mand")
            self.refused(p, a, b, W_PLAIN)
            self.assertNotRegex(a.output, SRTP_ENABLED)

    # -- supported / not_supported ----------------------------------------------

    def test_supported_unencrypted_call(self):
        with Parley(name="mb-sup-plain", users=USERS,
                    config={"media.encryption_level": "supported"}) as p:
            p.start()
            a, b = self.agents(p, None, None)
            self.established(p, a, b)
            rec = self.hang_up(p, a, b)
            self.assertEqual(rec.get("media"), "audio unencrypted (level supported)", rec)
            for agent in (a, b):
                self.assertNotRegex(agent.output, SRTP_ENABLED)

    def test_supported_srtp_stays_srtp(self):
        with Parley(name="mb-sup-srtp", users=USERS,
                    config={"media.encryption_level": "supported"}) as p:
            p.start()
            a, b = self.agents(p, "srtp", "srtp")
            self.established(p, a, b)
            sa, sb = self.both_srtp(a, b)
            self.assertEqual(sa, sb)
            rec = self.hang_up(p, a, b)
            self.assertEqual(rec.get("media"), f"audio SRTP {sa}", rec)

    def test_not_supported_optional_srtp_caller_loses_its_keys(self):
        # baresip's optional SRTP (RTP/AVP + a=crypto) reaches bob without
        # the keys; the call is set up unencrypted
        with Parley(name="mb-notsup-opt", users=USERS,
                    config={"media.encryption_level": "not_supported"}) as p:
            p.start()
            a, b = self.agents(p, "srtp", None)
            self.established(p, a, b)
            self.assertRegex(a.output, r"(?m)^a=crypto:")
            invite = b.output[b.output.index("INVITE sip:bob"):]
            self.assertRegex(invite, r"(?m)^m=audio \d+ RTP/AVP ")
            self.assertNotRegex(invite, r"(?m)^a=crypto:")
            rec = self.hang_up(p, a, b)
            self.assertEqual(rec.get("media"), "audio unencrypted (level not_supported)", rec)
            for agent in (a, b):
                self.assertNotRegex(agent.output, SRTP_ENABLED)

    def test_not_supported_srtp_mand_caller_refused(self):
        with Parley(name="mb-notsup-488", users=USERS,
                    config={"media.encryption_level": "not_supported"}) as p:
            p.start()
            a, b = self.agents(p, "srtp-mand", None)
            self.refused(p, a, b, W_NOT_SUPPORTED)


if __name__ == "__main__":
    unittest.main(verbosity=2)
