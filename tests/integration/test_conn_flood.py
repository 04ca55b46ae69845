#!/usr/bin/python3
"""A connection table filled by idle strangers does not lock users out
(issue 19, item 5): with limits.connections_total reached, a newcomer takes
the place of the oldest connection that has not authenticated, never one
that holds a registration.

The flood: 398 TLS connections from 127.0.0.2-127.0.0.200 (two each), each
sending an OPTIONS, which needs no authentication, against a table of 300.
Then alice, from 127.0.0.1, connects, registers and calls bob, whose
registration from before the flood must still stand. Without the eviction
her connection would be closed at accept ("limits.connections_total
reached"), which is what this test would then see.
"""
from __future__ import annotations

import socket
import ssl
import threading
import time
import unittest
import uuid

from harness import Parley
from sipclient import make_sdp

TOTAL = 300


def options(source_ip: str) -> bytes:
    tag = uuid.uuid4().hex[:12]
    return (f"OPTIONS sip:example.test SIP/2.0\r\n"
            f"Via: SIP/2.0/TLS {source_ip}:5061;branch=z9hG4bK{tag}\r\n"
            f"Max-Forwards: 70\r\n"
            f"From: <sip:stranger@{source_ip}>;tag={tag}\r\n"
            f"To: <sip:example.test>\r\n"
            f"Call-ID: {tag}@{source_ip}\r\n"
            f"CSeq: 1 OPTIONS\r\n"
            f"Content-Length: 0\r\n\r\n").encode()


class TestConnFlood(unittest.TestCase):
    def test_flood_does_not_lock_out_registered_users(self):
        with Parley(name="flood", users={"alice": "alice-pw", "bob": "bob-pw"},
                    config={"limits.connections_total": TOTAL}) as p:
            p.start()
            bob = p.client("bob")
            self.assertEqual(bob.register(expires=600).status, 200)

            ctx = ssl.create_default_context(cafile=p.ca_file)
            ctx.check_hostname = False
            flood = []
            for i in range(2, 201):
                ip = f"127.0.0.{i}"
                for _ in range(2):
                    raw = socket.socket()
                    raw.settimeout(5)
                    raw.bind((ip, 0))
                    try:
                        raw.connect(("127.0.0.1", p.tls_port))
                        s = ctx.wrap_socket(raw)
                        s.sendall(options(ip))
                        flood.append(s)
                    except (OSError, ssl.SSLError):
                        raw.close()  # evicted before its handshake ended: fine
            self.assertGreater(len(flood), TOTAL)

            t0 = time.monotonic()
            alice = p.client("alice")
            self.assertEqual(alice.register(expires=600).status, 200)
            got = {}
            call = threading.Thread(target=lambda: got.setdefault("r", alice.request_with_auth(
                "INVITE", "sip:bob@example.test", body=make_sdp(),
                content_type="application/sdp")))
            call.start()
            invite = bob.wait_request("INVITE", timeout=10)
            took = time.monotonic() - t0
            bob.respond(invite, 486)
            call.join(15)
            self.assertEqual(got["r"].status, 486, got.get("r"))
            print(f"alice connected, registered and reached bob in {took:.3f} s", flush=True)

            rec = p.wait_log("conn.evicted")
            self.assertIn("had not authenticated", rec.get("reason", ""))
            doc = p.ctl("status", json=True).stdout
            self.assertGreaterEqual(doc["daemon"]["connections_evicted"], len(flood) + 2 - TOTAL)
            regs = {r["user"] for r in p.ctl("registrations", json=True).stdout["registrations"]}
            self.assertEqual(regs, {"alice", "bob"})
            for s in flood:
                s.close()
            alice.close()
            bob.close()


if __name__ == "__main__":
    unittest.main()
