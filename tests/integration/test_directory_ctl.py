#!/usr/bin/python3
"""The directory through parleyctl, as an administrator sets it up (no
daemon: these change the store, which the web services read live).

- A user's profile: display name and e-mail, "" clears; what is not a
  display name or a plain address is refused with a reason.
- Groups nest, cycles included; `group show` flattens them to each user
  once. Users and groups share one namespace, either way round.
- Conferences: an organizer who is a user and cannot be removed while
  organizing; allow entries for users and groups; removing a conference
  removes its content directory (STATE_DIR/content/UID) too.
- Removing a user takes them out of groups and conferences.
- Bad names are refused with exit 1 and a clear message; usage errors exit 2.
"""
from __future__ import annotations

import os
import unittest

from harness import Parley


class TestDirectoryCtl(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.p = Parley(name="directory", users={u: f"{u}-secret" for u in
                                                ("alice", "bob", "carol", "dave", "erin")})

    @classmethod
    def tearDownClass(cls):
        cls.p.__exit__(None, None, None)

    def ok(self, *args: str):
        res = self.p.ctl(*args, json=True)
        self.assertEqual(res.returncode, 0, (res.stdout, res.stderr))
        self.assertIs(res.stdout["ok"], True)
        return res.stdout

    def text(self, *args: str) -> str:
        res = self.p.ctl(*args)
        self.assertEqual(res.returncode, 0, res.stderr)
        return res.stdout

    def refused(self, *args: str, why: str) -> None:
        res = self.p.ctl(*args)
        self.assertEqual(res.returncode, 1, (res.stdout, res.stderr))
        self.assertIn(why, res.stderr)
        # --json says the same, as {"ok": false, "error": ...}
        res = self.p.ctl(*args, json=True)
        self.assertEqual(res.returncode, 1, (res.stdout, res.stderr))
        self.assertIs(res.stdout["ok"], False)
        self.assertIn(why, res.stdout["error"])

    def usage(self, *args: str) -> None:
        self.assertEqual(self.p.ctl(*args).returncode, 2, args)

    def users(self) -> dict:
        return {u["user"]: u for u in self.ok("user", "list")["users"]}

    def test_profiles(self):
        got = self.ok("user", "set", "alice", "--name", "Alice Liddell", "--email",
                      "alice@example.test")
        self.assertEqual((got["display_name"], got["email"]),
                         ("Alice Liddell", "alice@example.test"))
        self.assertEqual(len(got["uid"]), 32)
        self.ok("user", "set", "alice", "--number", "+14255550111")  # the profile stays
        alice = self.users()["alice"]
        self.assertEqual((alice["display_name"], alice["email"], alice["number"]),
                         ("Alice Liddell", "alice@example.test", "+14255550111"))
        self.assertIn('"Alice Liddell"  <alice@example.test>', self.text("user", "list"))
        self.ok("user", "set", "alice", "--email", "")  # "" clears
        self.assertEqual(self.users()["alice"]["email"], "")
        self.assertEqual(self.users()["alice"]["display_name"], "Alice Liddell")
        self.refused("user", "set", "bob", "--name", "Bob\nEvil: header", why="display name")
        self.refused("user", "set", "bob", "--name", "x" * 129, why="at most 128 bytes")
        for bad in ("bob", "bob@@example.test", "Bob <bob@example.test>", "bob@example.test,eve@x",
                    "bob @example.test"):
            self.refused("user", "set", "bob", "--email", bad, why="e-mail")
        self.refused("user", "set", "nobody", "--name", "N", why="no user nobody")
        self.usage("user", "set", "bob", "--name")
        self.usage("user", "set", "bob")

    def test_groups_nest_and_flatten(self):
        self.ok("group", "add", "all-staff", "--name", "All staff")
        self.ok("group", "add", "eng")
        self.ok("group", "add", "backend")
        for group, member in (("all-staff", "eng"), ("all-staff", "carol"), ("eng", "backend"),
                              ("eng", "dave"), ("backend", "eng"),  # a cycle
                              ("backend", "carol"), ("backend", "erin")):
            got = self.ok("group", "member", "add", group, member)
            self.assertEqual((got["group"], got["member"]), (group, member))
        self.refused("group", "member", "add", "eng", "dave", why="dave is a member of eng already")
        self.refused("group", "member", "add", "eng", "eng", why="member of itself")
        self.refused("group", "member", "add", "eng", "mallory", why="no user or group mallory")
        self.refused("group", "member", "add", "nogroup", "dave", why="no group nogroup")
        self.refused("group", "member", "remove", "eng", "erin", why="erin is not a member of eng")

        show = self.ok("group", "show", "all-staff")
        self.assertEqual(show["display_name"], "All staff")
        self.assertEqual(len(show["uid"]), 32)
        self.assertEqual(show["members"], [{"name": "carol", "kind": "user"},
                                           {"name": "eng", "kind": "group"}])
        self.assertEqual(show["users"], ["carol", "dave", "erin"])  # each once
        self.assertIs(show["truncated"], False)
        self.assertEqual(self.ok("group", "show", "backend")["users"], ["carol", "dave", "erin"])
        text = self.text("group", "show", "all-staff")
        self.assertIn("group  eng", text)
        self.assertIn("carol dave erin", text)

        self.ok("group", "set", "eng", "--name", "Engineering")
        groups = {g["name"]: g for g in self.ok("group", "list")["groups"]}
        self.assertEqual(groups["eng"]["display_name"], "Engineering")
        self.assertIn('"Engineering"', self.text("group", "list"))
        self.ok("group", "member", "remove", "backend", "erin")
        self.assertEqual(self.ok("group", "show", "all-staff")["users"], ["carol", "dave"])
        self.usage("group", "set", "eng")
        self.usage("group", "member", "add", "eng")
        self.usage("group", "frobnicate")

    def test_one_namespace_and_bad_names(self):
        self.ok("group", "add", "support")
        self.refused("group", "add", "support", why="group support exists")
        self.refused("group", "add", "bob", why="user bob exists (users and groups share one "
                                                "namespace)")
        res = self.p.ctl("user", "add", "support", "--password-stdin", input="pw\n")
        self.assertEqual(res.returncode, 1, (res.stdout, res.stderr))
        for bad in ("Support", "-x", "a/b", "a b", "x" * 65, "../etc"):
            self.refused("group", "add", bad, why="invalid group name")
            self.refused("conference", "create", bad, "--organizer", "alice",
                         why="invalid conference name")
        self.refused("group", "add", "fine", "--name", "tab\there", why="display name")
        self.refused("group", "show", "nothing", why="no group nothing")
        self.refused("group", "remove", "nothing", why="no group nothing")
        self.ok("group", "remove", "support")
        self.assertNotIn("support", [g["name"] for g in self.ok("group", "list")["groups"]])

    def test_conferences(self):
        self.ok("group", "add", "readers")
        self.ok("group", "member", "add", "readers", "dave")
        got = self.ok("conference", "create", "weekly", "--organizer", "bob", "--allow", "readers",
                      "--allow", "erin")
        self.assertEqual((got["name"], got["organizer"], got["allowed"]),
                         ("weekly", "bob", ["readers", "erin"]))
        uid = got["uid"]
        self.assertEqual(len(uid), 32)
        self.refused("conference", "create", "weekly", "--organizer", "bob",
                     why="conference weekly exists")
        self.refused("conference", "create", "other", "--organizer", "mallory",
                     why="no user mallory")
        self.refused("conference", "create", "other", "--organizer", "readers",
                     why="no user readers")
        # an allow entry that cannot be made: the conference is not made either
        self.refused("conference", "create", "other", "--organizer", "bob", "--allow", "mallory",
                     why="no user or group mallory")
        self.assertEqual([c["name"] for c in self.ok("conference", "list")["conferences"]],
                         ["weekly"])
        self.usage("conference", "create", "x")

        self.ok("conference", "allow", "weekly", "carol")
        self.refused("conference", "allow", "weekly", "carol", why="carol is allowed in weekly")
        self.refused("conference", "allow", "nothing", "carol", why="no conference nothing")
        self.ok("conference", "disallow", "weekly", "erin")
        self.refused("conference", "disallow", "weekly", "erin", why="erin is not allowed")
        show = self.ok("conference", "show", "weekly")
        self.assertEqual(show["organizer"], "bob")
        self.assertEqual(show["uid"], uid)
        self.assertEqual(show["allowed"], [{"name": "carol", "kind": "user"},
                                           {"name": "readers", "kind": "group"}])
        content = os.path.join(self.p.dir, "content", uid)
        self.assertEqual(os.path.realpath(show["content"]), os.path.realpath(content))

        # the organizer stays while organizing; others go with their entries
        self.refused("user", "remove", "bob", why="organizes conference weekly")
        self.assertIn("bob", self.users())

        # content the web side stored goes with the conference, links
        # removed as links, never followed
        outside = os.path.join(self.p.dir, "outside.txt")
        with open(outside, "w") as f:
            f.write("keep me\n")
        os.makedirs(os.path.join(content, "slides", "img"))
        for rel in ("agenda.txt", "slides/one.pdf", "slides/img/a.png"):
            with open(os.path.join(content, rel), "w") as f:
                f.write("x")
        os.symlink(outside, os.path.join(content, "slides", "link"))
        os.symlink(self.p.dir, os.path.join(content, "dirlink"))
        got = self.ok("conference", "remove", "weekly")
        self.assertEqual((got["removed"], got["uid"]), ("weekly", uid))
        self.assertFalse(os.path.lexists(content))
        self.assertTrue(os.path.exists(outside))
        self.assertTrue(os.path.exists(self.p.conf))
        self.refused("conference", "show", "weekly", why="no conference weekly")
        self.refused("conference", "remove", "weekly", why="no conference weekly")
        # a conference that never had content is removed all the same
        self.ok("conference", "create", "adhoc", "--organizer", "bob")
        self.assertIn("removed conference adhoc", self.text("conference", "remove", "adhoc"))

    def test_user_remove_cascades(self):
        self.p.add_user("frank", "frank-secret")
        self.ok("group", "add", "frankly")
        self.ok("group", "member", "add", "frankly", "frank")
        self.ok("group", "member", "add", "frankly", "alice")
        self.ok("conference", "create", "retro", "--organizer", "alice", "--allow", "frank",
                "--allow", "frankly")
        self.ok("user", "remove", "frank")
        self.assertEqual(self.ok("group", "show", "frankly")["members"],
                         [{"name": "alice", "kind": "user"}])
        self.assertEqual(self.ok("conference", "show", "retro")["allowed"],
                         [{"name": "frankly", "kind": "group"}])
        # a group that goes leaves no allow entry behind
        self.ok("group", "remove", "frankly")
        self.assertEqual(self.ok("conference", "show", "retro")["allowed"], [])
        self.ok("conference", "remove", "retro")


if __name__ == "__main__":
    unittest.main()
