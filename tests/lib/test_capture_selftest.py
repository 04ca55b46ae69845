#!/usr/bin/python3
"""Self-test of tests/lib/capture.py: UDP datagrams sent on the loopback
interface are captured once each, per (source port, destination port),
other ports are left out, and the RTP helpers take the payloads apart.

Needs root or CAP_NET_RAW (an AF_PACKET raw socket); skipped otherwise.

Run: python3 tests/lib/test_capture_selftest.py [-v] [TestClass.test_name]
"""

from __future__ import annotations

import os
import random
import socket
import struct
import sys
import time
import unittest

LIB_DIR = os.path.dirname(os.path.abspath(__file__))
if LIB_DIR not in sys.path:
    sys.path.insert(0, LIB_DIR)

from capture import (Capture, CaptureUnavailable, appears_in, informative_chunks,  # noqa: E402
                     rtp_packets, rtp_payloads)
from harness import free_port  # noqa: E402


def rtp(pt: int, seq: int, payload: bytes, *, ssrc: int = 0x11223344, csrcs: int = 0,
        ext: bytes | None = None, pad: int = 0, marker: bool = False) -> bytes:
    b0 = 0x80 | csrcs | (0x10 if ext is not None else 0) | (0x20 if pad else 0)
    h = struct.pack("!BBHII", b0, pt | (0x80 if marker else 0), seq, seq * 160, ssrc)
    h += b"".join(struct.pack("!I", 1000 + i) for i in range(csrcs))
    if ext is not None:
        assert len(ext) % 4 == 0
        h += struct.pack("!HH", 0xBEDE, len(ext) // 4) + ext
    tail = (b"\0" * (pad - 1) + bytes([pad])) if pad else b""
    return h + payload + tail


def _available() -> str | None:
    try:
        Capture([9]).start().stop(settle=0)
    except CaptureUnavailable as e:
        return str(e)
    return None


_WHY = _available()


@unittest.skipIf(_WHY is not None, f"no packet capture here: {_WHY}")
class TestCapture(unittest.TestCase):
    def udp_pair(self, family=socket.AF_INET, host="127.0.0.1"):
        a = socket.socket(family, socket.SOCK_DGRAM)
        b = socket.socket(family, socket.SOCK_DGRAM)
        a.bind((host, free_port("udp")))
        b.bind((host, free_port("udp")))
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        return a, b

    def test_datagrams_captured_once_per_direction(self):
        a, b = self.udp_pair()
        other_a, other_b = self.udp_pair()
        pa, pb = a.getsockname()[1], b.getsockname()[1]
        with Capture([pa]) as cap:
            for i in range(5):
                a.sendto(b"a->b %d" % i, b.getsockname())
            b.sendto(b"b->a", a.getsockname())
            other_a.sendto(b"not ours", other_b.getsockname())  # neither port watched
            # the receivers read them: capture does not take them away
            self.assertEqual(b.recvfrom(100)[0], b"a->b 0")
        flows = cap.flows()
        self.assertEqual(flows[(pa, pb)], [b"a->b %d" % i for i in range(5)])
        self.assertEqual(flows[(pb, pa)], [b"b->a"])
        self.assertEqual(set(flows), {(pa, pb), (pb, pa)}, flows)
        self.assertEqual(cap.payloads(sport=pb), [b"b->a"])
        self.assertEqual(len(cap.payloads(port=pa)), 6)
        pkt = cap.packets[0]
        self.assertEqual((pkt.src, pkt.sport, pkt.dst, pkt.dport), ("127.0.0.1", pa, "127.0.0.1", pb))
        self.assertLessEqual(abs(pkt.time - time.time()), 10)

    def test_other_loopback_addresses_and_filter(self):
        a, b = self.udp_pair()
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.bind(("127.0.0.5", 0))
        self.addCleanup(c.close)
        pb = b.getsockname()[1]
        with Capture([pb], addresses=["127.0.0.5"]) as cap:
            a.sendto(b"from .1", b.getsockname())
            c.sendto(b"from .5", b.getsockname())
        self.assertEqual(cap.payloads(dport=pb), [b"from .5"])

    def test_ipv6(self):
        try:
            a, b = self.udp_pair(socket.AF_INET6, "::1")
        except OSError as e:
            self.skipTest(f"no IPv6 loopback: {e}")
        pa, pb = a.getsockname()[1], b.getsockname()[1]
        with Capture([pb]) as cap:
            a.sendto(b"six", b.getsockname()[:2])
        self.assertEqual(cap.flows(), {(pa, pb): [b"six"]})
        self.assertEqual(cap.packets[0].src, "::1")

    def test_many_datagrams_none_lost_at_stop(self):
        # everything sent before stop() is read, also what is still queued
        a, b = self.udp_pair()
        pb = b.getsockname()[1]
        b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        cap = Capture([pb]).start()
        for i in range(500):
            a.sendto(rtp(0, i, bytes([i % 256]) * 160), b.getsockname())
        flows = cap.stop(settle=0)
        got = rtp_packets(flows[(a.getsockname()[1], pb)])
        self.assertEqual([g[1] for g in got], list(range(500)))
        self.assertEqual(cap.drops, 0)

    def test_filter_in_the_kernel(self):
        # traffic on other ports is not even queued: the kernel's count of
        # what reached the socket (PACKET_STATISTICS) stays at our datagrams
        a, b = self.udp_pair()
        other_a, other_b = self.udp_pair()
        pb = b.getsockname()[1]
        cap = Capture([pb]).start()
        for i in range(200):
            other_a.sendto(b"x" * 1000, other_b.getsockname())
        a.sendto(b"ours", b.getsockname())
        flows = cap.stop()
        self.assertEqual(flows, {(a.getsockname()[1], pb): [b"ours"]})
        self.assertEqual(cap.drops, 0)
        self.assertEqual(cap.queued, 1)  # neither the 200 others nor the outgoing copy

    def test_rtp_media_through_the_capture(self):
        a, b = self.udp_pair()
        pa, pb = a.getsockname()[1], b.getsockname()[1]
        audio = bytes((i * 37 + 11) % 256 for i in range(160))
        with Capture([pa, pb]) as cap:
            a.sendto(rtp(0, 1, audio), b.getsockname())
            a.sendto(rtp(101, 2, b"\x01\x8a\x03\x20"), b.getsockname())  # RFC 4733 event
            a.sendto(b"\x81\xc8" + b"\0" * 26, b.getsockname())          # RTCP SR: skipped
        self.assertEqual(rtp_payloads(cap.payloads(sport=pa)), [audio, b"\x01\x8a\x03\x20"])
        self.assertEqual(rtp_payloads(cap.payloads(sport=pa), payload_types=(0, 8)), [audio])


class TestRtpHelpers(unittest.TestCase):
    """No capture needed: the parsing of RTP and the chunk search."""

    def test_header_variants(self):
        p = bytes(range(40))
        self.assertEqual(rtp_payloads([rtp(8, 1, p)]), [p])
        self.assertEqual(rtp_payloads([rtp(8, 1, p, csrcs=3)]), [p])
        self.assertEqual(rtp_payloads([rtp(8, 1, p, ext=b"\x10\x01\x02\x03" * 2)]), [p])
        self.assertEqual(rtp_payloads([rtp(8, 1, p, pad=4, csrcs=1, ext=b"abcd")]), [p])
        self.assertEqual(rtp_packets([rtp(8, 7, p, ssrc=99, marker=True)]), [(8, 7, 99, p)])
        # not RTP: too short, version 0 (STUN), RTCP
        self.assertEqual(rtp_payloads([b"\x80\x00", b"\x00\x01\x00\x00" + b"\0" * 16,
                                       b"\x80\xc9" + b"\0" * 30]), [])
        # a length that lies is dropped, not an exception
        self.assertEqual(rtp_payloads([b"\x8f\x00" + b"\0" * 10]), [])

    def test_silence_never_counts(self):
        silence_mu = b"\xff" * 160
        silence_a = b"\xd5" * 160
        near_silence = (b"\xd5\xd4" * 80)  # two values: below min_distinct
        self.assertEqual(informative_chunks([silence_mu, silence_a, near_silence]), [])
        # ... so it "appears nowhere" even in a haystack full of it: the
        # caller must check that there were chunks to look for
        self.assertEqual(appears_in([silence_mu], silence_mu * 10), [])

    def test_appears_in(self):
        rnd = random.Random(16)
        audio = [bytes(rnd.randrange(256) for _ in range(160)) for _ in range(5)]
        chunks = informative_chunks(audio)
        self.assertEqual(len(chunks), 5 * 5)  # 160 bytes = 5 chunks of 32
        self.assertEqual(appears_in(audio, os.urandom(20000)), [])
        # one packet relayed in the clear inside other bytes
        hay = [os.urandom(300), b"xx" + audio[3] + b"yy"]
        self.assertEqual(appears_in(audio, hay), informative_chunks([audio[3]]))
        # a chunk spread over two datagrams is not a match; in one bytes it is
        self.assertEqual(appears_in([audio[0][:32]], [audio[0][:16], audio[0][16:32]]), [])
        self.assertEqual(appears_in([audio[0][:32]], audio[0][:16] + audio[0][16:32]),
                         [audio[0][:32]])


if __name__ == "__main__":
    unittest.main(verbosity=2)
