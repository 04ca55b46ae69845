#!/usr/bin/python3
"""Presence with real clients (issue #4, "Done when"): headless baresip
agents with the presence module. alice has bob in her contacts
(`;presence=p2p`, so her baresip SUBSCRIBEs through Parley); bob's account
has `;pubint=` (so his baresip PUBLISHes). alice sees bob online once he
registers and publishes, offline after his `presence_offline` and after his
client exits; under presence.policy=contacts carol, not on bob's allow
list, sees nothing of bob's state.

What a watcher sees is read from its `contacts` command ("Online",
"Offline", "Busy", "Unknown"), which baresip updates from each NOTIFY:
<basic>open</basic> is Online, closed is Offline, a NOTIFY without a body
(a pending subscription) is Unknown.
"""
import re
import signal
import time
import unittest

from harness import Parley
import sipclient

DOMAIN = "example.test"
BOB = f"sip:bob@{DOMAIN}"
SCALE = sipclient.TIMEOUT_SCALE
USERS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}
CONFIG = {"presence.min_notify_interval": 0, "presence.min_expires": 1}


def contact_status(agent, uri: str = BOB) -> str | None:
    """The status baresip shows for a contact ("Online", "Offline",
    "Busy", "Unknown"), from `contacts` ("> Online Bob <sip:bob@...>")."""
    text = agent.cmd("contacts")
    for line in text.splitlines():
        if f"<{uri}>" in line:
            m = re.match(r"^\s*>?\s*(\w+)\s", line)
            return m.group(1) if m else None
    return None


def wait_status(agent, want: str, uri: str = BOB, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout * SCALE
    seen = None
    while time.monotonic() < deadline:
        seen = contact_status(agent, uri)
        if seen == want:
            return
        time.sleep(0.2)
    raise AssertionError(f"{agent.name} shows {uri} as {seen!r}, not {want!r}, after "
                         f"{timeout}s; its output ends:\n{agent.tail(60)}")


def notifies_received(agent) -> list[str]:
    """The NOTIFY requests in an agent's SIP trace (-s), as text."""
    out = re.sub(r"\x1b\[[0-9;]*m", "", agent.output)
    return [m.group(0) for m in re.finditer(r"NOTIFY sip:\S+ SIP/2\.0\r?\n.*?(?=\n#|\Z)", out, re.S)]


def watcher(p: Parley, user: str):
    agent = p.baresip(user, contacts=[("Bob", BOB)])
    agent.wait_registered()
    # baresip subscribes to its contacts a second after it starts
    p.wait_log("presence.subscribed", presentity="bob", watcher=f"{user}@{DOMAIN}", timeout=10)
    return agent


def publisher(p: Parley, pubint: int = 30):
    bob = p.baresip("bob", pubint=pubint)
    bob.wait_registered()
    return bob


class TestBaresipPresence(unittest.TestCase):
    def test_alice_sees_bob_online_then_offline_by_command(self):
        with Parley(name="bs-online", config=CONFIG, users=USERS) as p:
            p.start()
            alice = watcher(p, "alice")
            wait_status(alice, "Offline")  # bob has no registered device yet
            bob = publisher(p)
            p.wait_log("presence.published", user="bob", basic="open")
            wait_status(alice, "Online")

            mark = p.log_mark()
            bob.cmd("presence_offline")
            p.wait_log("presence.published", user="bob", basic="closed", since=mark)
            wait_status(alice, "Offline")

            bob.cmd("presence_online")
            wait_status(alice, "Online")
            # every NOTIFY alice got was plain PIDF she could read
            for n in notifies_received(alice):
                self.assertRegex(n, r"(?m)^Content-Type: application/pidf\+xml\r?$")

    def test_alice_sees_bob_offline_after_his_client_exits(self):
        with Parley(name="bs-exit", config=CONFIG, users=USERS) as p:
            p.start()
            alice = watcher(p, "alice")
            bob = publisher(p)
            wait_status(alice, "Online")
            bob.stop()
            wait_status(alice, "Offline")

    def test_alice_sees_bob_offline_after_his_client_dies(self):
        """No un-PUBLISH, no un-REGISTER: the connection closing is enough."""
        with Parley(name="bs-kill", config=CONFIG, users=USERS) as p:
            p.start()
            alice = watcher(p, "alice")
            bob = publisher(p)
            wait_status(alice, "Online")
            bob.peer.stop(sig=signal.SIGKILL)
            p.wait_log("presence.unpublished", user="bob")
            wait_status(alice, "Offline")

    def test_contacts_policy_carol_sees_nothing(self):
        with Parley(name="bs-contacts", config=dict(CONFIG, **{"presence.policy": "contacts"}),
                    users=USERS) as p:
            r = p.ctl("presence", "allow", "bob", "alice")
            self.assertEqual(r.returncode, 0, r)
            p.start()
            alice = watcher(p, "alice")
            carol = watcher(p, "carol")
            p.wait_log("presence.subscribed", presentity="bob", watcher=f"carol@{DOMAIN}",
                       state="pending")
            bob = publisher(p)
            wait_status(alice, "Online")  # the allowed watcher sees him
            bob.cmd("presence_offline")
            wait_status(alice, "Offline")
            bob.cmd("presence_online")
            wait_status(alice, "Online")

            self.assertEqual(contact_status(carol), "Unknown")
            for n in notifies_received(carol):
                self.assertNotIn("<basic>", n, "carol got bob's state")
                self.assertRegex(n, r"(?m)^Subscription-State: (pending|terminated)")
            bob.stop()
            wait_status(alice, "Offline")
            self.assertEqual(contact_status(carol), "Unknown")


if __name__ == "__main__":
    unittest.main(verbosity=2)
