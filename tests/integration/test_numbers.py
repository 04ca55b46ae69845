#!/usr/bin/python3
"""Calls to phone numbers (issue 16, before trunks): what a user dials goes
through the dial plan; a number a user owns reaches that user.

- baresip (a real client) dials the 4-digit extension "0101": the dial
  plan makes it +14255550101, alice's number, and alice's baresip rings
  and answers.
- The test's SIP client calls sip:+14255550101@DOMAIN;user=phone and
  tel:+14255550101: alice gets the INVITE.
- A number nobody owns and no route takes: 404, saying so.
- A number a route takes, from a caller without outbound rights: 403
  naming the rights; with them, the call goes to the route's trunk (whose
  gateway here listens nowhere: 503 naming the trunk; calls that reach a
  gateway are test_trunks.py's).
- A change with parleyctl reaches the running server at once.
"""
from __future__ import annotations

import shutil
import unittest
from concurrent.futures import ThreadPoolExecutor

from harness import TIMEOUT_SCALE, Parley, free_port

DOMAIN = "example.test"
USERS = {"alice": "alice-secret", "bob": "bob-secret"}
ALICE_NUMBER = "+14255550101"


def scaled(t: float) -> float:
    return t * TIMEOUT_SCALE


class TestNumbers(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.p = p = Parley(name="numbers", users=USERS)
        for args in (("user", "set", "alice", "--number", ALICE_NUMBER),
                     ("dialplan", "add", "extension", r"^(\d{4})$", "+1425555$1"),
                     ("dialplan", "add", "national", r"^1?(\d{10})$", "+1$1"),
                     ("dialplan", "national", r"^\+1\d{10}$"),
                     # a port nothing listens on: the connection is refused at once
                     ("trunk", "add", "gw1", "--gateway", f"127.0.0.1:{free_port('tcp')}",
                      "--transport", "tcp", "--srtp-mode", "not_supported"),
                     ("route", "add", "north-america", r"^\+1\d{10}$", "--trunks", "gw1")):
            res = p.ctl(*args)
            assert res.returncode == 0, res.stderr
        p.start()

    @classmethod
    def tearDownClass(cls):
        cls.p.__exit__(None, None, None)

    def call(self, uri: str, expect: int):
        """bob's INVITE to uri; its final answer must be `expect`."""
        with self.p.client("bob") as b:
            resp, _ = b.invite(uri, timeout=scaled(10))
            self.assertEqual(resp.status, expect, resp)
            return resp

    def test_owned_number_reaches_its_user(self):
        with self.p.client("alice") as a:
            self.assertEqual(a.register(expires=600).status, 200)
            for uri in (f"sip:{ALICE_NUMBER}@{DOMAIN};user=phone", f"tel:{ALICE_NUMBER}",
                        f"sip:4255550101@{DOMAIN}"):
                with self.p.client("bob") as b, ThreadPoolExecutor(1) as pool:
                    fut = pool.submit(b.invite, uri)
                    inv = a.wait_request("INVITE", timeout=scaled(10))
                    a.respond(inv, 486)
                    resp, _ = fut.result(scaled(10))
                    self.assertEqual(resp.status, 486, (uri, resp))
                    a.wait_request("ACK")

    def test_unowned_number_without_route_is_404(self):
        # +44 is no user's, and only test_outbound_rights adds a route for it
        # (and removes it again)
        r = self.call(f"sip:+442079460000@{DOMAIN};user=phone", 404)
        self.assertIn("no user has +442079460000 and no route takes it", r.reason)

    def test_outbound_rights(self):
        r = self.call(f"sip:{'14255550199'}@{DOMAIN}", 403)
        self.assertIn("bob may not call +14255550199: outbound calls none", r.reason)
        res = self.p.ctl("user", "set", "bob", "--outbound", "national")
        self.assertEqual(res.returncode, 0, res.stderr)
        r = self.call("tel:+14255550199", 503)
        self.assertIn("trunk gw1", r.reason)
        # national rights do not reach a number outside the national pattern
        res = self.p.ctl("route", "add", "world", r"^\+\d+$", "--trunks", "gw1")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("applied by the running server", res.stdout)
        try:
            r = self.call("tel:+442079460000", 403)
            self.assertIn("outbound calls national", r.reason)
        finally:
            self.p.ctl("route", "remove", "world")

    @unittest.skipIf(shutil.which("baresip") is None, "baresip is not installed")
    def test_baresip_dials_an_extension(self):
        a = self.p.baresip("alice", mediaenc="srtp-mand", answermode="auto")
        b = self.p.baresip("bob", mediaenc="srtp-mand")
        a.wait_registered(timeout=15)
        b.wait_registered(timeout=15)
        b.dial("0101")
        a.wait_event("CALL_ESTABLISHED", timeout=15)
        b.wait_event("CALL_ESTABLISHED", timeout=15)
        b.hangup()
        self.p.wait_log("call.ended", callee=f"alice@{DOMAIN}", timeout=10)
        # their registrations go with their connections: the other tests'
        # alice is the test's own client
        for agent in (a, b):
            agent.stop()
        self.p.wait_log("registrar.unbound", user="alice", timeout=10)


if __name__ == "__main__":
    unittest.main()
