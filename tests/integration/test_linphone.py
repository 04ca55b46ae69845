#!/usr/bin/python3
"""Parley with Linphone as well as baresip (issue #13).

Linphone's console client (Debian linphone-cli, linphonec 5.1, TLS through
mbedtls) registers, sends a message and makes an SRTP call, verifying the
server's certificate by its name. What used to stop it: a CertificateRequest
on the client listener (it stalled at a password prompt) and URIs naming the
server by IP address (its TLS library ignores IP addresses in
certificates). With the test client: the names Parley writes for itself,
the instance echoed in REGISTER responses, calls in progress in `parleyctl
calls`.
"""
from __future__ import annotations

import shutil
import time
import unittest

import sipclient
from harness import TIMEOUT_SCALE, Parley
from linphone import (ENDED, INCOMING, MESSAGE, PASSWORD_PROMPT, STREAMS, Linphone, make_tone,
                      tone_ratio)
from sipclient import Dialog, make_sdp

DOMAIN = "example.test"
USERS = {"alice": "alice-secret", "bob": "bob-secret"}


def scaled(t: float) -> float:
    return t * TIMEOUT_SCALE


def active_calls(p: Parley) -> list[dict]:
    res = p.ctl("calls", "--active", json=True)
    assert res.returncode == 0, res.stderr
    return res.stdout["active"]


def wait_until(pred, timeout: float, what: str):
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@unittest.skipIf(shutil.which("linphonec") is None, "linphonec (linphone-cli) is not installed")
class TestLinphone(unittest.TestCase):
    def test_register_message_and_srtp_call(self):
        with Parley(name="linphone", users=USERS) as p:
            p.start()
            t0 = time.monotonic()
            bob = Linphone("bob", parley=p)
            alice = Linphone("alice", parley=p,
                             play_file=make_tone(f"{p.dir}/alice-1000.wav", freq=1000.0))
            bob.wait_registered(timeout=5)
            alice.wait_registered(timeout=5)
            registered_s = time.monotonic() - t0
            print(f"\nlinphonec: both registered {registered_s:.2f} s after start")
            self.assertFalse(alice.prompted or bob.prompted, "linphonec asked for a password")
            self.assertLess(registered_s, scaled(2.0))
            # they verified the server by name: verify_server_cn=1 with the
            # proxy given as sip.example.test; the connections are TLS
            regs = p.ctl("registrations", json=True).stdout["registrations"]
            self.assertEqual(sorted(r["user"] for r in regs), ["alice", "bob"])
            self.assertTrue(all(r["transport"] == "TLS" for r in regs), regs)

            alice.command(f"chat sip:bob@{DOMAIN} hello bob, from linphone")
            m = bob.wait_for(MESSAGE, timeout=5)
            self.assertEqual(m.group(2), "hello bob, from linphone")
            self.assertIn("alice", m.group(1))

            alice.command(f"call sip:bob@{DOMAIN}")
            bob.wait_for(INCOMING, timeout=10)
            bob.command("answer")
            alice.wait_for(STREAMS, timeout=10)
            bob.wait_for(STREAMS, timeout=10)
            # while it lasts, the administrator sees it and how it is protected
            calls = wait_until(lambda: [c for c in active_calls(p) if c["state"] == "answered"],
                               5, "the call in parleyctl calls --active")
            self.assertEqual((calls[0]["caller"], calls[0]["callee"]),
                             (f"alice@{DOMAIN}", f"bob@{DOMAIN}"))
            self.assertIn("audio SRTP", calls[0]["media"])
            text = p.ctl("calls", "--active").stdout
            self.assertIn(f"alice@{DOMAIN} -> bob@{DOMAIN}  answered", text)
            time.sleep(3)  # audio both ways
            mark = bob.mark()
            alice.command("terminate")
            bob.wait_for(ENDED, timeout=10, since=mark)
            p.wait_log("call.ended", reason="BYE from caller")
            self.assertEqual(active_calls(p), [])
            alice.stop()
            bob.stop()
            heard_by_bob = tone_ratio(bob.record_path, 1000.0)
            own_at_bob = tone_ratio(bob.record_path, 440.0)
            heard_by_alice = tone_ratio(alice.record_path, 440.0)
            own_at_alice = tone_ratio(alice.record_path, 1000.0)
            print(f"tones: bob heard 1000 Hz {heard_by_bob:.2f} (440 Hz {own_at_bob:.2f}), "
                  f"alice heard 440 Hz {heard_by_alice:.2f} (1000 Hz {own_at_alice:.2f})")
            self.assertGreater(heard_by_bob, 0.5)
            self.assertGreater(heard_by_alice, 0.5)
            self.assertLess(own_at_bob, 0.1)
            self.assertLess(own_at_alice, 0.1)
            rec = p.find_log("call.ended", reason="BYE from caller")[0]
            self.assertEqual(rec["answered"], "yes")


    def test_asked_for_a_certificate_it_stalls(self):
        """Why the client listeners ask for none: with
        sip.client_certificates = request linphonec stops at a password
        prompt and never registers (the behaviour the default avoids)."""
        with Parley(name="linphone-ask", users=USERS,
                    config={"sip.client_certificates": "request"}) as p:
            p.start()
            alice = Linphone("alice", parley=p)
            alice.wait_for(PASSWORD_PROMPT, timeout=5)
            self.assertTrue(alice.prompted)
            time.sleep(1)
            self.assertFalse(p.find_log("registrar.bound", user="alice"))


class TestNames(unittest.TestCase):
    """The names Parley writes for itself, with the test client."""

    def test_record_route_via_and_contact_carry_the_name(self):
        with Parley(name="names", users=USERS) as p:
            p.start()
            p.wait_log("sip.advertised_name", name=f"sip.{DOMAIN}", fields={"from": "certificate"})
            bob = p.client("bob")
            r = bob.register(contact=(f"<{bob.contact_uri()}>;+sip.instance="
                                      f"\"<urn:uuid:00000000-0000-0000-0000-0000000000b0>\""))
            self.assertEqual(r.status, 200, r)
            # RFC 5626 §6: the binding comes back with its instance
            self.assertIn('+sip.instance="<urn:uuid:00000000-0000-0000-0000-0000000000b0>"',
                          r.header("Contact"))
            alice = p.client("alice")
            self.assertEqual(alice.register().status, 200)
            calls = []
            import threading

            def call():
                calls.append(alice.invite(f"sip:bob@{DOMAIN}", make_sdp()))

            t = threading.Thread(target=call)
            t.start()
            inv = bob.wait_request("INVITE", timeout=scaled(5))
            self.assertEqual(inv.headers("Record-Route"),
                             [f"<sip:sip.{DOMAIN}:{p.tls_port};transport=tls;lr>"])
            self.assertTrue(inv.headers("Via")[0].startswith(
                f"SIP/2.0/TLS sip.{DOMAIN}:{p.tls_port};branch="), inv.headers("Via"))
            self.assertNotIn("127.0.0.1", inv.header("Record-Route"))
            # ringing: listed as such
            [c] = wait_until(lambda: active_calls(p), 5, "the ringing call")
            self.assertEqual(c["state"], "ringing")
            bdlg = bob.answer(inv, 200, body=make_sdp(port=40002))
            t.join(scaled(10))
            resp, adlg = calls[0]
            self.assertEqual(resp.status, 200, resp)
            # the route set names the server: in-dialog requests go by name
            self.assertEqual(adlg.route_set, [f"<sip:sip.{DOMAIN}:{p.tls_port};transport=tls;lr>"])
            # a re-INVITE that holds the call shows as on hold, and resumes
            held = make_sdp().replace("a=sendrecv", "a=sendonly")
            hold = alice.build_in_dialog(adlg, "INVITE", body=held, content_type="application/sdp")
            alice.send(hold)
            got = bob.wait_request("INVITE", timeout=scaled(5))
            bob.respond(got, 200, body=make_sdp(port=40002).replace("a=sendrecv", "a=recvonly"),
                        content_type="application/sdp")
            ok = alice.wait_response(hold, timeout=scaled(5), final=True)
            alice.ack(hold, ok)
            self.assertEqual(active_calls(p)[0]["state"], "on hold")
            # a refused re-offer (plain RTP under 'required') changes nothing
            bad = alice.build_in_dialog(adlg, "INVITE", body=make_sdp(crypto=False),
                                        content_type="application/sdp")
            alice.send(bad)
            r = alice.wait_response(bad, timeout=scaled(5), final=True)
            self.assertEqual(r.status, 488, r)
            self.assertEqual(active_calls(p)[0]["state"], "on hold")
            resume = alice.build_in_dialog(adlg, "INVITE", body=make_sdp(),
                                           content_type="application/sdp")
            alice.send(resume)
            got = bob.wait_request("INVITE", timeout=scaled(5))
            bob.respond(got, 200, body=make_sdp(port=40002), content_type="application/sdp")
            ok = alice.wait_response(resume, timeout=scaled(5), final=True)
            alice.ack(resume, ok)
            self.assertEqual(active_calls(p)[0]["state"], "answered")
            bye = alice.build_in_dialog(adlg, "BYE")
            alice.send(bye)
            bob.respond(bob.wait_request("BYE", timeout=scaled(5)), 200)
            self.assertEqual(alice.wait_response(bye, timeout=scaled(5)).status, 200)
            self.assertEqual(active_calls(p), [])
            alice.close()
            bob.close()

    def test_an_address_only_when_configured(self):
        with Parley(name="names-ip", users=USERS,
                    config={"sip.advertised_name": "127.0.0.1"}) as p:
            for bad in ("0.0.0.0", "::", "a..b", "-x.test", "x_y.test"):
                res = p.ctl("config", "set", "sip.advertised_name", bad)
                self.assertNotEqual(res.returncode, 0, bad)
            p.start()
            p.wait_log("sip.advertised_name", name="127.0.0.1")
            p.assert_no_log("sip.advertised_name", reason=lambda v: "does not carry" in v)
            bob, alice = p.client("bob"), p.client("alice")
            self.assertEqual(bob.register().status, 200)
            self.assertEqual(alice.register().status, 200)
            inv_thread_result = []
            import threading
            t = threading.Thread(target=lambda: inv_thread_result.append(
                alice.invite(f"sip:bob@{DOMAIN}", make_sdp())))
            t.start()
            inv = bob.wait_request("INVITE", timeout=scaled(5))
            self.assertEqual(inv.headers("Record-Route"),
                             [f"<sip:127.0.0.1:{p.tls_port};transport=tls;lr>"])
            bob.respond(inv, 486)
            t.join(scaled(10))
            # a name the certificate does not carry: said on reload
            p.config_set("sip.advertised_name", "elsewhere.test")
            mark = p.reload()
            p.wait_log("sip.advertised_name", since=mark, name="elsewhere.test",
                       reason=lambda v: "does not carry" in v)
            alice.close()
            bob.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
