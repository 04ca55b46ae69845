#!/usr/bin/python3
"""The media relay authentication service: a SERVICE request in Lync's MRAS
shape, from an authenticated user over TLS, gets relay credentials that
coturn's turnutils_uclient can use; over plain TCP or unauthenticated there
are none."""
import re
import time
import unittest
import xml.etree.ElementTree as ET

from harness import Parley, free_port, free_ports, run_peer
import sipclient

MRAS_NS = "http://schemas.microsoft.com/2006/09/sip/mrasp"
MRAS_TYPE = "application/msrtc-media-relay-auth+xml"


def mras_request(identity: str, minutes: int = 480) -> str:
    return (f'<?xml version="1.0" encoding="utf-8"?>'
            f'<request requestID="1234" version="1.0" to="sip:MRAS@example.test" '
            f'from="{identity}" xmlns="{MRAS_NS}">'
            f'<credentialsRequest credentialsRequestID="7">'
            f'<identity>{identity}</identity><location>internet</location>'
            f'<duration>{minutes}</duration></credentialsRequest></request>')


def parse_grant(body: bytes) -> dict:
    root = ET.fromstring(body)
    ns = {"m": MRAS_NS}
    cr = root.find("m:credentialsResponse", ns)
    assert cr is not None, body
    creds = cr.find("m:credentials", ns)
    relay = cr.find("m:mediaRelayList/m:mediaRelay", ns)
    return {
        "request_id": root.get("requestID"),
        "cred_id": cr.get("credentialsRequestID"),
        "username": creds.findtext("m:username", namespaces=ns),
        "password": creds.findtext("m:password", namespaces=ns),
        "duration": int(creds.findtext("m:duration", namespaces=ns)),
        "host": relay.findtext("m:hostName", namespaces=ns),
        "udp": int(relay.findtext("m:udpPort", namespaces=ns)),
        "tcp": int(relay.findtext("m:tcpPort", namespaces=ns)),
    }


class TestRelayCredentialService(unittest.TestCase):
    def test_service_credentials_work_with_turnutils(self):
        tcp = free_port()
        ports = free_ports(32, "udp", consecutive=True)
        with Parley(name="mras", users={"alice": "pa"},
                    config={"relay.allowed_peers": "127.0.0.0/8",
                            "relay.port_range": f"{ports[0]}-{ports[-1]}",
                            "relay.max_lifetime": 3600,
                            "sip.tcp_listen": f"127.0.0.1:{tcp}"}) as p:
            p.start()
            alice = p.client("alice")
            r = alice.request_with_auth("SERVICE", "sip:MRAS@example.test",
                                        body=mras_request("sip:alice@example.test", 480),
                                        content_type=MRAS_TYPE)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.header("Content-Type"), MRAS_TYPE)
            g = parse_grant(r.body)
            self.assertEqual(g["request_id"], "1234")
            self.assertEqual(g["cred_id"], "7")
            # 480 minutes asked, relay.max_lifetime (one hour) granted
            self.assertEqual(g["duration"], 60)
            self.assertRegex(g["username"], r"^\d+:alice$")
            expiry = int(g["username"].split(":")[0])
            self.assertAlmostEqual(expiry - time.time(), 3600, delta=30)
            self.assertEqual((g["host"], g["udp"]), ("127.0.0.1", p.relay_port))
            p.wait_log("relay.credentials_issued", user="alice")
            self.assertNotIn(g["password"], p.log_text(), "the password reached the log")

            # the credentials work with an independent TURN client
            peer_port = free_ports(2, "udp", consecutive=True)[0]
            peer = p.spawn_peer(["turnutils_peer", "-L", "127.0.0.1", "-p", str(peer_port)])
            try:
                time.sleep(0.3)
                res = run_peer(["turnutils_uclient", "-u", g["username"], "-w", g["password"],
                                "-p", str(g["udp"]), "-e", "127.0.0.1", "-r", str(peer_port),
                                "-n", "20", "-c", g["host"]], timeout=60)
            finally:
                peer.stop()
            out = res.stdout + res.stderr
            self.assertEqual(res.returncode, 0, out[-2000:])
            self.assertRegex(out, r"Total lost packets 0", out[-2000:])

            # someone else's identity: refused
            r = alice.request_with_auth("SERVICE", "sip:MRAS@example.test",
                                        body=mras_request("sip:bob@example.test"),
                                        content_type=MRAS_TYPE)
            self.assertEqual(r.status, 403, r)
            # another body type: not this service
            r = alice.request_with_auth("SERVICE", "sip:MRAS@example.test", body="hello",
                                        content_type="text/plain")
            self.assertEqual(r.status, 415, r)
            alice.close()

            # unauthenticated: a challenge, never credentials
            anon = sipclient.SipClient(p.connect(), user="alice", domain=p.domain)
            r = anon.request("SERVICE", "sip:MRAS@example.test",
                             body=mras_request("sip:alice@example.test"), content_type=MRAS_TYPE)
            self.assertEqual(r.status, 407, r)
            self.assertNotIn(b"password", r.body or b"")
            anon.close()

            # over the plain TCP listener (internal network, authenticated): refused
            tcp_client = sipclient.SipClient(
                sipclient.SipConnection("127.0.0.1", tcp, transport="tcp"), user="alice",
                domain=p.domain, password="pa")
            r = tcp_client.request_with_auth("SERVICE", "sip:MRAS@example.test",
                                             body=mras_request("sip:alice@example.test"),
                                             content_type=MRAS_TYPE)
            self.assertEqual(r.status, 403, r)
            self.assertIn("TLS", r.reason)
            self.assertNotIn(b"password", r.body or b"")
            tcp_client.close()

    def test_no_relay_no_credentials(self):
        with Parley(name="mras-off", users={"alice": "pa"}, config={"relay.enabled": False}) as p:
            p.start()
            alice = p.client("alice")
            r = alice.request_with_auth("SERVICE", "sip:MRAS@example.test",
                                        body=mras_request("sip:alice@example.test"),
                                        content_type=MRAS_TYPE)
            self.assertEqual(r.status, 503, r)
            alice.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
