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
- A scripted SRTP client (the test's own SIP client and libsrtp2 through
  pylibsrtp, an implementation independent of Parley's): a forged packet
  from another source, and a copy of a genuine one, are dropped, counted,
  and never reach the other party; a party whose source port changes (NAT
  rebinding) is followed only once a packet from there authenticates.
"""
from __future__ import annotations

import base64
import os
import re
import secrets
import shutil
import signal
import socket
import struct
import threading
import time
import unittest

from harness import TIMEOUT_SCALE, Parley, free_ports
from linphone import tone_ratio
from sipclient import make_sdp

try:
    from pylibsrtp import Policy, Session
except ImportError:  # python3-pylibsrtp (scripts/deps.sh installs it)
    Policy = Session = None

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
    def establish(self, p: Parley, alice_enc: str | None, bob_enc: str | None):
        """alice (a 1000 Hz tone) calls bob (440 Hz), who answers: returns
        both agents and the streams once media flows both ways."""
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
        return a, b, streams

    def call(self, p: Parley, alice_enc: str | None, bob_enc: str | None, seconds: float = 4):
        a, b, streams = self.establish(p, alice_enc, bob_enc)
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
                self.assertGreater(l["out"]["packets"], 10, l)  # from its first packet on
                self.assertEqual(l["auth_failures"], 0, l)
            # the engine's ports are what each agent talked to
            engine = {l["local"].rsplit(":", 1)[1] for l in legs}
            self.assertEqual(len(engine), 2)
            # the BYE released the stream and its ports
            wait_streams(p, lambda s: not s, 5, "the stream to end")
            ended = p.find_log("media.stream_ended")
            self.assertEqual(len(ended), 2, ended)
            # the call log keeps what the engine saw on each leg
            deadline = time.monotonic() + scaled(5)
            while not (logged := [c for c in p.ctl("calls", json=True).stdout["calls"]
                                  if "legs" in c]) and time.monotonic() < deadline:
                time.sleep(0.2)
            self.assertEqual(len(logged), 1, logged)
            [section] = logged[0]["legs"]
            self.assertEqual(section["section"], 0)
            for leg, live in zip(section["legs"], legs):
                self.assertEqual(leg["local"], live["local"])
                self.assertEqual(leg["protection"], "SRTP")
                self.assertGreaterEqual(leg["in"]["packets"], live["in"]["packets"])
                # baresip sends its last RTCP (BYE "Adjo", SDES) in the clear
                # as it hangs up: dropped, and counted as what it is
                self.assertLessEqual(leg["auth_failures"], 1, section)
            self.assertIn("section 0 leg 1", p.ctl("calls").stdout)
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

    def test_hold_and_resume_keep_the_call_anchored(self):
        """A re-INVITE putting the call on hold, and one resuming it, pass
        through the engine like the first offer: the same ports and keys of
        Parley's, the parties' own keys kept from each other, audio flowing
        again after the resume."""
        with Parley(name="anchor-hold", users=USERS,
                    config={"media.anchor": "always", "media.port_range": media_ports()}) as p:
            p.start()
            a, b, streams = self.establish(p, "srtp-mand", "srtp-mand")
            first = streams[0]
            mark = a.mark()
            a.cmd("hold")
            a.wait_output(r"SIP/2.0 200 OK", timeout=10, since=mark)
            calls = p.ctl("calls", "--active", json=True).stdout["active"]
            self.assertEqual(calls[0]["state"], "on hold", calls)
            time.sleep(1)
            mark = a.mark()
            a.cmd("resume")
            a.wait_output(r"SIP/2.0 200 OK", timeout=10, since=mark)
            before = {i: l["in"]["packets"] for i, l in enumerate(media_status(p)["streams"][0]["legs"])}
            streams = wait_streams(
                p, lambda s: s and all(l["in"]["packets"] > before[i] + 50
                                       for i, l in enumerate(s[0]["legs"])),
                15, "media both ways after the resume")
            # still the one stream, on the same ports
            self.assertEqual(len(streams), 1)
            self.assertEqual([l["local"] for l in streams[0]["legs"]],
                             [l["local"] for l in first["legs"]])
            ev = len(b.events)
            a.hangup()
            b.wait_event("CALL_CLOSED", timeout=10, since=ev)
            keys_a, keys_b = set(CRYPTO.findall(a.output)), set(CRYPTO.findall(b.output))
            self.assertEqual(keys_a & keys_b, set(), "a key crossed from one leg to the other")

    def test_silent_call_ended_after_media_timeout(self):
        """Both parties go silent without hanging up (frozen, their TLS
        connections still open): after media.timeout the call is ended
        with a BYE to each, Reason cause 408."""
        with Parley(name="anchor-timeout", users=USERS,
                    config={"media.anchor": "always", "media.port_range": media_ports(),
                            "media.timeout": 5}) as p:
            p.start()
            a = p.baresip("alice", mediaenc="srtp-mand")
            b = p.baresip("bob", mediaenc="srtp-mand", answermode="auto")
            a.wait_registered(timeout=15)
            b.wait_registered(timeout=15)
            a.dial(BOB)
            a.wait_event("CALL_ESTABLISHED", timeout=15)
            wait_streams(p, lambda s: s and all(l["in"]["packets"] > 20 for l in s[0]["legs"]),
                         15, "media both ways")
            mark = p.log_mark()
            for agent in (a, b):
                os.kill(agent.peer.pid, signal.SIGSTOP)
            try:
                p.wait_log("media.timeout", since=mark, timeout=15)
                rec = p.wait_log("call.ended", since=mark, reason="media timeout", timeout=5)
                self.assertEqual(rec["answered"], "yes")
            finally:
                for agent in (a, b):
                    os.kill(agent.peer.pid, signal.SIGCONT)
            # each got its BYE with the reason
            for agent in (a, b):
                agent.wait_output(r'Reason: SIP;cause=408;text="media timeout"', timeout=10)
            wait_streams(p, lambda s: not s, 5, "the stream to end")

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

    def test_srtp_caller_plain_callee_over_tcp_under_supported(self):
        """The other way: alice (SRTP, TLS) calls bob, whose baresip is on
        plain TCP with plain RTP. Bob's leg gets plain RTP and no key at
        all (SDES keys never cross an unencrypted hop); alice's leg stays
        SRTP; each hears the other."""
        tcp_port = free_ports(1)[0]
        with Parley(name="anchor-tcp", users=USERS,
                    config={"media.anchor": "always", "media.port_range": media_ports(),
                            "media.encryption_level": "supported",
                            "media.latch_plain": "first",
                            "sip.tcp_listen": f"127.0.0.1:{tcp_port}"}) as p:
            p.start()
            a = p.baresip("alice", mediaenc="srtp-mand", config={"audio_source": "ausine,1000"})
            b = p.baresip("bob", mediaenc=None, answermode="auto", transport="tcp",
                          proxy=(p.address, tcp_port), config={"audio_source": "ausine,440"})
            a.wait_registered(timeout=15)
            b.wait_registered(timeout=15)
            a.dial(BOB)
            a.wait_event("CALL_ESTABLISHED", timeout=15)
            b.wait_event("CALL_ESTABLISHED", timeout=15)
            streams = wait_streams(
                p, lambda s: s and all(l["in"]["packets"] > 20 for l in s[0]["legs"]), 15,
                "media through the engine both ways")
            legs = streams[0]["legs"]
            self.assertEqual([l["protection"] for l in legs], ["SRTP", "RTP"], legs)
            self.assertEqual(CRYPTO.findall(b.output), [], "a key reached the plain TCP hop")
            time.sleep(1)
            a.hangup()
            b.wait_event("CALL_CLOSED", timeout=10)
            a.stop()
            b.stop()
            self.assertGreater(tone_ratio(b.heard(), 1000.0), 0.5)
            self.assertGreater(tone_ratio(a.heard(), 440.0), 0.5)


class SrtpParty:
    """One side of a scripted call: a UDP socket, a key of its own (libsrtp2
    protects with it), and Parley's key and port for its leg once learnt
    from the SDP Parley sent it."""

    def __init__(self, ssrc: int, ip: str = "127.0.0.1"):
        self.sock = self.bind(ip)
        self.key = secrets.token_bytes(30)
        self.tx = Session(policy=Policy(key=self.key, ssrc_type=Policy.SSRC_ANY_OUTBOUND,
                                        srtp_profile=Policy.SRTP_PROFILE_AES128_CM_SHA1_80))
        self.rx = None
        self.engine: tuple[str, int] | None = None
        self.ssrc, self.seq = ssrc, 0

    @staticmethod
    def bind(ip: str = "127.0.0.1") -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((ip, 0))
        return s

    def sdp(self) -> str:
        key = base64.b64encode(self.key).decode()
        return make_sdp(port=self.sock.getsockname()[1],
                        crypto=f"1 AES_CM_128_HMAC_SHA1_80 inline:{key}")

    def learn(self, sdp: str) -> None:
        """Parley's address, port and key for this party's leg."""
        addr = re.search(r"(?m)^c=IN IP4 (\S+)", sdp).group(1)
        port = int(re.search(r"(?m)^m=audio (\d+) ", sdp).group(1))
        key = base64.b64decode(CRYPTO.search(sdp).group(1))
        self.engine = (addr, port)
        self.rx = Session(policy=Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND,
                                        srtp_profile=Policy.SRTP_PROFILE_AES128_CM_SHA1_80))

    def packet(self, fill: int) -> bytes:
        """An RTP packet of 172 bytes (PCMU, 20 ms), protected with the party's key."""
        self.seq += 1
        rtp = struct.pack("!BBHII", 0x80, 0, self.seq, self.seq * 160, self.ssrc) + bytes([fill]) * 160
        return self.tx.protect(rtp)

    def send(self, fill: int, sock: socket.socket | None = None) -> bytes:
        data = self.packet(fill)
        (sock or self.sock).sendto(data, self.engine)
        return data

    def received(self, wait: float, sock: socket.socket | None = None) -> list[int]:
        """The fill bytes of what arrived within `wait` seconds, each
        unprotected with Parley's key for this leg (anything else fails)."""
        sock = sock or self.sock
        got, deadline = [], time.monotonic() + scaled(wait)
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data = sock.recv(2048)
            except socket.timeout:
                break
            got.append(self.rx.unprotect(data)[12])
        return got


@unittest.skipIf(Session is None, "python3-pylibsrtp is not installed")
class TestScriptedSrtp(unittest.TestCase):
    """One Parley for the scripted calls: each test makes its own call."""

    @classmethod
    def setUpClass(cls):
        cls.p = Parley(name="anchor-scripted", users=USERS,
                       config={"media.anchor": "always", "media.port_range": media_ports()})
        cls.p.start()

    @classmethod
    def tearDownClass(cls):
        cls.p.__exit__(None, None, None)

    def call(self) -> tuple[SrtpParty, SrtpParty, str]:
        """alice calls bob over SIP with offers of the parties' own; each
        learns Parley's key and port for its leg; each sends one packet, so
        that the engine knows where it is. Returns alice, bob, Call-ID."""
        alice, bob = SrtpParty(0xA11CE), SrtpParty(0xB0B)
        self.addCleanup(alice.sock.close)
        self.addCleanup(bob.sock.close)
        ca, cb = self.p.client("alice"), self.p.client("bob")
        self.addCleanup(ca.close)
        self.addCleanup(cb.close)
        self.assertEqual(cb.register(expires=600).status, 200)
        result = []
        t = threading.Thread(target=lambda: result.append(ca.invite(BOB, alice.sdp())))
        t.start()
        inv = cb.wait_request("INVITE", timeout=scaled(10))
        bob.learn(inv.text)
        cb.answer(inv, 200, body=bob.sdp())
        t.join(scaled(10))
        resp, _ = result[0]
        self.assertEqual(resp.status, 200, resp)
        alice.learn(resp.text)
        cb.wait_request("ACK")
        self.assertNotEqual(alice.engine, bob.engine)
        for party, leg in ((alice, 0), (bob, 1)):
            party.send(0)
            wait_streams(self.p, lambda s: s and s[-1]["legs"][leg]["latched"], 5,
                         f"leg {leg} to latch")
        alice.received(0.2)  # bob's hello
        return alice, bob, inv.call_id

    def leg(self, call_id: str, leg: int) -> dict:
        for s in media_status(self.p)["streams"]:
            if s["call_id"] == call_id:
                return s["legs"][leg]
        raise AssertionError(f"no stream for {call_id}")

    def test_forged_and_copied_packets_never_reach_the_other_side(self):
        alice, bob, call_id = self.call()
        alice.send(1)
        self.assertEqual(bob.received(0.5), [1])
        # alice's SSRC, a key of its own, and another address than the one
        # alice's SDP and signalling came from
        stranger = SrtpParty(0xA11CE, ip="127.0.0.2")
        self.addCleanup(stranger.sock.close)
        stranger.engine = alice.engine
        stranger.send(2)
        self.assertEqual(bob.received(0.5), [], "a forged packet reached bob")
        self.assertEqual(self.leg(call_id, 0)["foreign_dropped"], 1)
        # a copy of one of alice's packets, from elsewhere, after the original
        genuine = alice.packet(3)
        alice.sock.sendto(genuine, alice.engine)
        self.assertEqual(bob.received(0.5), [3])
        stranger.sock.sendto(genuine, alice.engine)
        alice.sock.sendto(genuine, alice.engine)  # and alice's own replay
        self.assertEqual(bob.received(0.5), [], "a copy reached bob twice")
        leg = self.leg(call_id, 0)
        self.assertEqual(leg["foreign_dropped"], 2, leg)
        self.assertEqual(leg["replays"], 1, leg)
        # a copy raced ahead of the original (an attacker on the path) is
        # alice's media, delivered once; but it does not take alice's leg
        # while alice is still heard where she is
        alice.send(4)  # alice is sending: her media every 20 ms
        time.sleep(0.02)
        genuine = alice.packet(5)
        stranger.sock.sendto(genuine, alice.engine)
        alice.sock.sendto(genuine, alice.engine)
        self.assertEqual(bob.received(0.5), [4, 5])
        bob.send(6)
        self.assertEqual(alice.received(0.5), [6], "bob's media went to the stranger")
        stranger.sock.settimeout(scaled(0.1))
        with self.assertRaises(socket.timeout, msg="the stranger got bob's media"):
            stranger.sock.recv(2048)
        self.assertTrue(self.leg(call_id, 0)["latched"])
        self.assertEqual(self.leg(call_id, 0)["remote"].split(":")[0], "127.0.0.1")
        # after a silence (hold, DTX) a raced copy may take the leg, but
        # alice's next packet from where her signalling came from takes it
        # back at once
        time.sleep(0.6)
        mark = self.p.log_mark()
        genuine = alice.packet(7)
        stranger.sock.sendto(genuine, alice.engine)
        alice.sock.sendto(genuine, alice.engine)
        alice.send(8)
        self.assertEqual(bob.received(0.5), [7, 8])
        bob.send(9)
        self.assertEqual(alice.received(0.5), [9], "bob's media stayed with the stranger")
        took = self.p.wait_log("media.moved", since=mark, call_id=call_id, leg="0",
                               reason="authenticated, moved")
        self.assertTrue(took["to"].startswith("127.0.0.2:"), took)
        # (the move back is within the same second: its log line is held
        # back by the limiter; bob's packet reaching alice shows it)
        self.assertEqual(self.leg(call_id, 0)["remote"].split(":")[0], "127.0.0.1")

    def test_rebinding_followed_only_after_authentication(self):
        alice, bob, call_id = self.call()
        moved = SrtpParty.bind()  # alice's new port behind her NAT
        self.addCleanup(moved.close)

        # a packet under the wrong key from the new port is not followed
        forger = SrtpParty(0xA11CE)
        self.addCleanup(forger.sock.close)
        forger.engine = alice.engine
        forger.send(4, sock=moved)
        bob.send(5)
        self.assertEqual(alice.received(0.5), [5], "bob's media left alice's old port")
        self.assertEqual(alice.received(0.1, sock=moved), [])
        # one that authenticates is, once the old port has fallen silent
        # (ANCHOR_REBIND_QUIET_MS): bob's media goes there from now on
        time.sleep(0.6)
        mark = self.p.log_mark()
        alice.send(6, sock=moved)
        self.assertEqual(bob.received(0.5), [6])
        self.p.wait_log("media.moved", since=mark, call_id=call_id, leg="0",
                        reason="authenticated")
        bob.send(7)
        self.assertEqual(alice.received(0.5, sock=moved), [7])
        self.assertEqual(alice.received(0.1), [])


if __name__ == "__main__":
    unittest.main()
