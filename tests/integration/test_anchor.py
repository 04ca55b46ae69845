#!/usr/bin/python3
"""Anchored media (media.anchor = always) with real clients: baresip agents
call each other through Parley's media engine.

- Each agent hears the other's tone (1000 Hz from alice, 440 Hz from bob,
  recorded by baresip's sndfile module) and not its own: media crossed the
  engine both ways, each leg re-protected with Parley's key for it.
- The a=crypto keys one agent sent or received (its SIP trace) appear
  nowhere in the other's: no key crosses from one leg to the other.
- parleyctl media status lists the stream while the call lasts, each leg
  SRTP with packets in and out; the BYE releases it.
- Under encryption level "supported", a plain-RTP caller reaching an SRTP
  callee gets a plain leg and an SRTP leg.
"""
from __future__ import annotations

import re
import shutil
import time
import unittest

from harness import TIMEOUT_SCALE, Parley, free_ports
from linphone import tone_ratio

DOMAIN = "example.test"
USERS = {"alice": "alice-secret", "bob": "bob-secret"}
BOB = f"sip:bob@{DOMAIN}"
CRYPTO = re.compile(r"a=crypto:\d+ \S+ inline:([A-Za-z0-9+/=]+)")


def scaled(t: float) -> float:
    return t * TIMEOUT_SCALE


def media_ports() -> str:
    ports = free_ports(32, "udp", consecutive=True)
    return f"{ports[0]}-{ports[-1]}"


def media_status(p: Parley) -> dict:
    res = p.ctl("media", "status", json=True)
    assert res.returncode == 0, res.stderr
    return res.stdout


def wait_streams(p: Parley, pred, timeout: float, what: str) -> list[dict]:
    deadline = time.monotonic() + scaled(timeout)
    while True:
        streams = media_status(p)["streams"]
        if pred(streams):
            return streams
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {streams}")
        time.sleep(0.2)


@unittest.skipIf(shutil.which("baresip") is None, "baresip is not installed")
class TestAnchoredCall(unittest.TestCase):
    def call(self, p: Parley, alice_enc: str | None, bob_enc: str | None, seconds: float = 4):
        a = p.baresip("alice", mediaenc=alice_enc, config={"audio_source": "ausine,1000"})
        b = p.baresip("bob", mediaenc=bob_enc, answermode="auto",
                      config={"audio_source": "ausine,440"})
        a.wait_registered(timeout=15)
        b.wait_registered(timeout=15)
        a.dial(BOB)
        a.wait_event("CALL_ESTABLISHED", timeout=15)
        b.wait_event("CALL_ESTABLISHED", timeout=15)
        streams = wait_streams(
            p, lambda s: s and all(l["in"]["packets"] > 20 for l in s[0]["legs"]), 15,
            "media through the engine both ways")
        time.sleep(seconds)
        ev = len(b.events)
        a.hangup()
        b.wait_event("CALL_CLOSED", timeout=10, since=ev)
        p.wait_log("call.ended", reason="BYE from caller")
        return a, b, streams

    def test_srtp_both_ways_with_keys_of_parleys_own(self):
        with Parley(name="anchor", users=USERS,
                    config={"media.anchor": "always", "media.port_range": media_ports()}) as p:
            p.start()
            a, b, streams = self.call(p, "srtp-mand", "srtp-mand")
            legs = streams[0]["legs"]
            self.assertEqual([l["protection"] for l in legs], ["SRTP", "SRTP"], legs)
            for l in legs:
                self.assertGreater(l["out"]["packets"], 20, l)
                self.assertEqual(l["auth_failures"], 0, l)
            # the engine's ports are what each agent talked to
            engine = {l["local"].rsplit(":", 1)[1] for l in legs}
            self.assertEqual(len(engine), 2)
            # the BYE released the stream and its ports
            wait_streams(p, lambda s: not s, 5, "the stream to end")
            ended = p.find_log("media.stream_ended")
            self.assertEqual(len(ended), 2, ended)
            a.stop()
            b.stop()
            # what each heard: the other's tone, not its own
            heard_a, heard_b = a.heard(), b.heard()
            self.assertIsNotNone(heard_a, "alice recorded nothing")
            self.assertIsNotNone(heard_b, "bob recorded nothing")
            bob_hears_alice, bob_hears_self = tone_ratio(heard_b, 1000.0), tone_ratio(heard_b, 440.0)
            alice_hears_bob, alice_hears_self = tone_ratio(heard_a, 440.0), tone_ratio(heard_a, 1000.0)
            print(f"\ntones: bob heard 1000 Hz {bob_hears_alice:.2f} (440 Hz {bob_hears_self:.2f}), "
                  f"alice heard 440 Hz {alice_hears_bob:.2f} (1000 Hz {alice_hears_self:.2f})")
            self.assertGreater(bob_hears_alice, 0.5)
            self.assertGreater(alice_hears_bob, 0.5)
            self.assertLess(bob_hears_self, 0.1)
            self.assertLess(alice_hears_self, 0.1)
            # no key crosses from one leg to the other
            keys_a, keys_b = set(CRYPTO.findall(a.output)), set(CRYPTO.findall(b.output))
            self.assertGreaterEqual(len(keys_a), 2, "alice's trace shows no keys both ways")
            self.assertGreaterEqual(len(keys_b), 2, "bob's trace shows no keys both ways")
            self.assertEqual(keys_a & keys_b, set(), "a key crossed from one leg to the other")

    def test_plain_caller_srtp_callee_under_supported(self):
        with Parley(name="anchor-sup", users=USERS,
                    config={"media.anchor": "always", "media.port_range": media_ports(),
                            "media.encryption_level": "supported",
                            # baresip announces an address it does not send
                            # from (192.0.2.2 here): a plain leg can only follow
                            # its first source
                            "media.latch_plain": "first"}) as p:
            p.start()
            a, b, streams = self.call(p, None, "srtp-mand", seconds=1)
            legs = streams[0]["legs"]
            self.assertEqual([l["protection"] for l in legs], ["RTP", "SRTP"], legs)
            self.assertEqual(CRYPTO.findall(a.output), [], "the plain caller got a key")
            p.wait_log("media.latched", leg="0", reason="first source")
            a.stop()
            b.stop()
            self.assertGreater(tone_ratio(b.heard(), 1000.0), 0.5)
            self.assertGreater(tone_ratio(a.heard(), 440.0), 0.5)


if __name__ == "__main__":
    unittest.main()
