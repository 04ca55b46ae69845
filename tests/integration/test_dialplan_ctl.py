#!/usr/bin/python3
"""The dial plan, routes, trunks and users' numbers through parleyctl, as an
administrator sets them up (issue 16's configuration; the server does not
route to trunks yet): what is stored survives, and what cannot work is
refused with a reason before it is stored.

- A number belongs to one user; a number that is not E.164 is refused.
- A rule whose pattern does not compile, or whose translation names a
  group the pattern lacks, is refused.
- A TCP trunk with SRTP is refused: SDES keys never cross an unencrypted
  hop. A TCP trunk is known by its address.
- A route to a trunk that does not exist is refused; a trunk a route uses
  is not removed.
"""
from __future__ import annotations

import unittest

from harness import Parley


class TestDialplanCtl(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.p = Parley(name="dialplan", users={"alice": "alice-secret", "bob": "bob-secret"})

    @classmethod
    def tearDownClass(cls):
        cls.p.__exit__(None, None, None)

    def ok(self, *args: str):
        res = self.p.ctl(*args, json=True)
        self.assertEqual(res.returncode, 0, res.stderr)
        return res.stdout

    def refused(self, *args: str, why: str) -> None:
        res = self.p.ctl(*args)
        self.assertEqual(res.returncode, 1, (res.stdout, res.stderr))
        self.assertIn(why, res.stderr)

    def test_numbers(self):
        self.ok("user", "set", "alice", "--number", "+14255550101")
        self.refused("user", "set", "bob", "--number", "+14255550101",
                     why="+14255550101 is alice's number")
        self.refused("user", "set", "bob", "--number", "4255550102", why="E.164")
        self.assertEqual(self.p.ctl("user", "set", "bob", "--outbound", "some").returncode, 2)
        got = self.ok("user", "set", "bob", "--number", "+14255550102", "--outbound", "national")
        self.assertEqual((got["number"], got["outbound"]), ("+14255550102", "national"))
        users = {u["user"]: u for u in self.ok("user", "list")["users"]}
        self.assertEqual(users["alice"]["number"], "+14255550101")
        self.assertEqual(users["alice"]["outbound"], "none")  # no calling out unless granted
        self.assertIn("+14255550102  outbound national", self.p.ctl("user", "list").stdout)

    def test_rules_in_order(self):
        self.ok("dialplan", "add", "national", r"^1?(\d{10})$", "+1$1")
        self.ok("dialplan", "add", "extension", r"^(\d{4})$", "+1425555$1")
        self.refused("dialplan", "add", "broken", r"^(\d{4}$", "+1$1",
                     why="missing closing parenthesis")
        self.refused("dialplan", "add", "wrong-group", r"^(\d{4})$", "+1$2",
                     why="uses $2, but the pattern has 1 group")
        self.refused("dialplan", "add", "extension", r"^(\d{5})$", "+1$1", why="exists")
        self.ok("dialplan", "national", r"^\+1\d{10}$")
        doc = self.ok("dialplan", "list")
        self.assertEqual([r["name"] for r in doc["rules"]], ["national", "extension"])
        self.assertEqual(doc["national"], r"^\+1\d{10}$")
        self.refused("dialplan", "national", "^(", why="missing closing parenthesis")

    def test_trunks_and_routes(self):
        self.refused("trunk", "add", "plain", "--gateway", "192.0.2.50:5068", "--transport", "tcp",
                     "--srtp-mode", "required", why="SDES keys never cross an unencrypted hop")
        self.assertEqual(self.p.ctl("trunk", "add", "named", "--gateway", "gw.example.net:5068",
                                    "--transport", "tcp", "--srtp-mode",
                                    "not_supported").returncode, 2)
        self.ok("trunk", "add", "gw1", "--gateway", "192.0.2.50:5068", "--transport", "tcp",
                "--srtp-mode", "not_supported")
        self.ok("trunk", "add", "gw2", "--gateway", "gw2.example.net:5061", "--transport", "tls",
                "--srtp-mode", "required")
        self.refused("route", "add", "world", r"^\+\d+$", "--trunks", "gw9", why="no trunk gw9")
        self.ok("route", "add", "north-america", r"^\+1\d{10}$", "--trunks", "gw1,gw2")
        self.refused("trunk", "remove", "gw2", why="route north-america uses trunk gw2")
        trunks = {t["name"]: t for t in self.ok("trunk", "list")["trunks"]}
        self.assertEqual(trunks["gw1"]["address"], "192.0.2.50")
        self.assertEqual(trunks["gw2"]["srtp_mode"], "required")
        self.assertEqual(self.ok("route", "list")["routes"][0]["trunks"], "gw1,gw2")
        self.ok("route", "remove", "north-america")
        self.ok("trunk", "remove", "gw2")
        self.assertEqual([t["name"] for t in self.ok("trunk", "list")["trunks"]], ["gw1"])


if __name__ == "__main__":
    unittest.main()
