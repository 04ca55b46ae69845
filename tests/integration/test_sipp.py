#!/usr/bin/python3
"""sipp (Debian's sip-tester) against Parley's plain TCP listener.

Debian's sipp has no TLS, so every run here goes to sip.tcp_listen, which
only sources inside sip.internal_networks may use. The scenarios live in
tests/integration/sipp/:

- register.xml      REGISTER, 401, REGISTER with digest credentials, 200,
                    then a pause of -d ms (a binding over TCP lives as long
                    as its connection, so the pause keeps it listed)
- message_uac.xml   MESSAGE, 407, MESSAGE with credentials, 200
- message_uas.xml   the out-of-call scenario (-oocsf) of a registered sipp:
                    answers a MESSAGE with 200, logs it, ends the run (97)
- invite_sdes.xml   an INVITE with a=crypto over TCP, answered 488 with the
                    Warning checked by the scenario itself

Every sipp run gets its own directory inside the server's state directory
(kept when a test fails) with its message, error and <log> traces, and its
own ports: -p (SIP, also its TCP source port), -mp (media) and -cp
(control), so that tests run in parallel.
"""
from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import time
import unittest

from harness import TIMEOUT_SCALE, Parley, Peer, free_port, free_ports, run_peer

SIPP = os.environ.get("SIPP") or shutil.which("sipp") or "/usr/bin/sipp"
SCENARIOS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sipp")
DOMAIN = "example.test"
USERS = {"alice": "alice-secret", "bob": "bob-secret"}
KEYS_OVER_TCP = "SDES keys received over an unencrypted hop"

# sipp's exit codes (sipp -h)
SIPP_ALL_CALLS_OK = 0
SIPP_SOME_CALL_FAILED = 1
SIPP_INTERNAL_COMMAND = 97  # message_uas.xml's <exec int_cmd="stop_now"/>


def scaled(t: float) -> float:
    return t * TIMEOUT_SCALE


def tcp_server(name: str, networks: str = "127.0.0.0/8") -> tuple[Parley, int]:
    """A server with the plain TCP listener on a port of its own."""
    port = free_port("tcp")
    p = Parley(name=name, users=USERS,
               config={"sip.tcp_listen": f"127.0.0.1:{port}",
                       "sip.internal_networks": networks})
    return p, port


def registrations(p: Parley, user: str | None = None) -> list[dict]:
    res = p.ctl("registrations", json=True)
    if res.returncode != 0:
        raise AssertionError(f"parleyctl registrations failed: {res.stderr}")
    return [r for r in res.stdout["registrations"] if user is None or r["user"] == user]


class Sipp:
    """One sipp run over TCP (-t t1) against PORT of server p: its command
    line, its ports and its trace files.

    ``user`` is sipp's [service] and the digest user (-s, -au); ``auth_uri``
    is the digest uri without "sip:" (sipp's default is remote_ip:port,
    which Parley rightly refuses: it must be the Request-URI); ``keys`` are
    the scenario's own [keywords] (-key); ``hold_ms`` is -d, the length of a
    <pause/>."""

    def __init__(self, p: Parley, port: int, scenario: str, user: str, *,
                 name: str, password: str | None = None, source: str = "127.0.0.1",
                 auth_uri: str = DOMAIN, keys: dict[str, str] | None = None,
                 calls: int = 1, rate: int = 10, hold_ms: int = 0,
                 ooc: str | None = None) -> None:
        self.p = p
        self.name = name
        self.user = user
        self.source = source
        self.dir = os.path.join(p.dir, f"sipp-{name}")
        os.makedirs(self.dir)
        self.sip_port = free_port("tcp")
        media = free_ports(3, "udp", consecutive=True)[0]  # sipp binds -mp and -mp + 2
        self.files = {k: os.path.join(self.dir, f"{k}.log") for k in ("messages", "errors", "logs")}
        pw = USERS[user] if password is None else password
        self.args = [
            SIPP, f"{p.address}:{port}", "-sf", os.path.join(SCENARIOS, scenario),
            "-t", "t1", "-m", str(calls), "-r", str(rate),
            "-i", source, "-p", str(self.sip_port), "-mi", source, "-mp", str(media),
            "-cp", str(free_port("udp")),
            "-s", user, "-au", user, "-ap", pw, "-auth_uri", auth_uri,
            "-key", "domain", DOMAIN,
            "-d", str(hold_ms),
            "-recv_timeout", str(int(scaled(5000))),
            # an unexpected response ends a call; no BYE for a REGISTER
            "-default_behaviors", "all,-bye",
            "-nostdin",
            "-trace_msg", "-message_file", self.files["messages"],
            "-trace_err", "-error_file", self.files["errors"],
            "-trace_logs", "-log_file", self.files["logs"],
            "-trace_error_codes",  # <scenario>_<pid>_error_codes.csv in the cwd
        ]
        for k, v in (keys or {}).items():
            self.args += ["-key", k, v]
        if ooc:
            self.args += ["-oocsf", os.path.join(SCENARIOS, ooc)]
        self.peer: Peer | None = None
        self.result: subprocess.CompletedProcess | None = None

    @property
    def contact(self) -> str:
        """The Contact of the scenarios: sipp writes [transport] as "TCP"."""
        return f"sip:{self.user}@{self.source}:{self.sip_port};transport=TCP"

    def run(self, timeout: float = 30) -> int:
        """Run to the end; returns the exit code."""
        self.result = run_peer(self.args, timeout=timeout, cwd=self.dir)
        return self.result.returncode

    def spawn(self) -> Peer:
        """Start in the background; stopped before the server at the end."""
        self.peer = self.p.spawn_peer(self.args, name=f"sipp-{self.name}", cwd=self.dir)
        return self.peer

    def wait(self, timeout: float = 30) -> int:
        assert self.peer is not None
        return self.peer.wait(timeout)

    @property
    def running(self) -> bool:
        return self.peer is not None and self.peer.running

    def output(self) -> str:
        if self.result is not None:
            return self.result.stdout + self.result.stderr
        return self.peer.output if self.peer else ""

    def read(self, kind: str) -> str:
        try:
            with open(self.files[kind], errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def error_codes(self) -> list[int]:
        """The status codes of the unexpected responses (-trace_error_codes)."""
        codes: list[int] = []
        for path in glob.glob(os.path.join(self.dir, "*_error_codes.csv")):
            with open(path) as f:
                for line in f:
                    codes += [int(c) for c in line.rstrip().split(";")[-1].split(",") if c]
        return codes

    def calls(self, which: str) -> int:
        """'Successful call' / 'Failed call' from the last statistics screen."""
        found = re.findall(rf"{which}\s*\|\s*\d+\s*\|\s*(\d+)", self.output())
        if not found:
            raise AssertionError(f"no '{which}' in sipp's output:\n{self.report()}")
        return int(found[-1])

    def report(self) -> str:
        """For assertion messages: the command, the last screens, the errors."""
        out = "\n".join(self.output().splitlines()[-45:])
        return (f"\n--- sipp {self.name} ({self.dir}) ---\n{' '.join(self.args)}\n"
                f"--- output tail ---\n{out}\n--- errors.log ---\n{self.read('errors')[:3000]}")


def wait_until(pred, timeout: float, what: str):
    deadline = time.monotonic() + scaled(timeout)
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def wait_registered(case: unittest.TestCase, p: Parley, s: Sipp, user: str) -> dict:
    """The binding of ``user`` that s made, listed while s is still running
    (it holds its connection: see register.xml's pause)."""
    def find():
        if not s.running:
            case.fail(f"sipp exited ({s.peer.proc.returncode if s.peer else '?'}) before "
                      f"{user}'s binding was listed{s.report()}")
        return registrations(p, user)
    regs = wait_until(find, 10, f"{user} in parleyctl registrations")
    case.assertEqual(len(regs), 1, regs)
    return regs[0]


@unittest.skipUnless(os.access(SIPP, os.X_OK), "sipp (sip-tester) is not installed")
class TestSipp(unittest.TestCase):
    def test_twenty_registrations_with_digest(self):
        p, port = tcp_server("sipp-reg")
        with p:
            p.start()
            s = Sipp(p, port, "register.xml", "alice", name="alice", calls=20, rate=10,
                     hold_ms=int(scaled(3000)))
            s.spawn()
            reg = wait_registered(self, p, s, "alice")
            self.assertEqual(reg["transport"], "TCP", reg)
            self.assertEqual(reg["source"], f"127.0.0.1:{s.sip_port}", reg)
            self.assertEqual(reg["contact"], s.contact, reg)
            self.assertEqual(reg["user_agent"], "sipp", reg)
            self.assertTrue(590 <= reg["expires_in_s"] <= 600, reg)

            rc = s.wait(timeout=30)
            self.assertEqual(rc, SIPP_ALL_CALLS_OK, s.report())
            self.assertEqual(s.calls("Successful call"), 20, s.report())
            self.assertEqual(s.calls("Failed call"), 0, s.report())
            self.assertEqual(s.error_codes(), [], s.report())
            # each registration was challenged and answered on its own
            msgs = s.read("messages")
            self.assertEqual(len(re.findall(r"^SIP/2\.0 401 ", msgs, re.M)), 20, s.report())
            self.assertEqual(len(re.findall(r"^SIP/2\.0 200 ", msgs, re.M)), 20, s.report())
            self.assertEqual(len(re.findall(r"^Authorization: Digest .*algorithm=MD5", msgs,
                                            re.M)), 20, s.report())
            # twenty refreshes of one contact: one binding, bound once; it
            # goes with the connection
            self.assertEqual(len(p.find_log("registrar.bound", user="alice", transport="TCP")), 1)
            p.wait_log("registrar.unbound", user="alice", reason="connection closed")
            self.assertEqual(registrations(p, "alice"), [])

    def test_wrong_password_is_a_failure(self):
        p, port = tcp_server("sipp-reg-403")
        with p:
            p.start()
            s = Sipp(p, port, "register.xml", "alice", name="alice-wrong", password="not-hers",
                     calls=3, rate=10)
            rc = s.run(timeout=30)
            self.assertEqual(rc, SIPP_SOME_CALL_FAILED, s.report())
            self.assertEqual(s.calls("Failed call"), 3, s.report())
            self.assertEqual(s.calls("Successful call"), 0, s.report())
            # what failed them: 403 where the scenario wanted 200
            self.assertEqual(s.error_codes(), [403, 403, 403], s.report())
            # logged at most once a second per source and reason: the three
            # failures of this burst make one line (the rest are counted)
            recs = p.find_log("sip.rejected", method="REGISTER", status="403")
            self.assertTrue(1 <= len(recs) <= 3, p.log_tail())
            self.assertEqual({r["reason"] for r in recs}, {"authentication failed"})
            p.assert_no_log("registrar.bound")
            self.assertEqual(registrations(p), [])

    def test_message_from_sipp_to_sipp(self):
        p, port = tcp_server("sipp-msg")
        with p:
            p.start()
            # bob: registered over TCP, holding the connection, with an
            # out-of-call scenario for the MESSAGE Parley will send over it
            bob = Sipp(p, port, "register.xml", "bob", name="bob", ooc="message_uas.xml",
                       hold_ms=int(scaled(30000)))
            bob.spawn()
            reg = wait_registered(self, p, bob, "bob")
            self.assertEqual(reg["transport"], "TCP", reg)

            text = "hello bob, from sipp"
            alice = Sipp(p, port, "message_uac.xml", "alice", name="alice",
                         auth_uri=f"bob@{DOMAIN}", keys={"to_user": "bob", "text": text})
            rc = alice.run(timeout=30)
            self.assertEqual(rc, SIPP_ALL_CALLS_OK, alice.report() + bob.report())
            self.assertRegex(alice.read("messages"), r"(?m)^Proxy-Authorization: Digest ")

            # bob's sipp answered and stopped itself (97) after sending 200
            rc = bob.wait(timeout=15)
            self.assertEqual(rc, SIPP_INTERNAL_COMMAND, bob.report())
            self.assertEqual(bob.read("logs").strip(),
                             f"received MESSAGE from <sip:alice@{DOMAIN}> text {text}",
                             bob.report())
            # it came to bob's contact over bob's connection, from Parley
            got = bob.read("messages")
            self.assertIn(f"MESSAGE {bob.contact} SIP/2.0", got, bob.report())
            self.assertRegex(got, rf"(?m)^P-Asserted-Identity: <sip:alice@{DOMAIN}>", got)

    def test_message_to_an_unregistered_user_fails(self):
        # the MESSAGE scenario can fail: nobody is registered as bob
        p, port = tcp_server("sipp-msg-480")
        with p:
            p.start()
            alice = Sipp(p, port, "message_uac.xml", "alice", name="alice",
                         auth_uri=f"bob@{DOMAIN}", keys={"to_user": "bob", "text": "anyone?"})
            rc = alice.run(timeout=30)
            self.assertEqual(rc, SIPP_SOME_CALL_FAILED, alice.report())
            self.assertEqual(alice.error_codes(), [480], alice.report())

    def test_only_internal_networks(self):
        p, port = tcp_server("sipp-nets", networks="127.0.0.5/32")
        with p:
            p.start()
            outside = Sipp(p, port, "register.xml", "alice", name="outside", source="127.0.0.1")
            rc = outside.run(timeout=30)
            # accepted by the kernel, closed by Parley before a byte is read:
            # sipp's REGISTER meets a closed socket, a fatal error (-1)
            self.assertNotEqual(rc, SIPP_ALL_CALLS_OK, outside.report())
            self.assertRegex(outside.output() + outside.read("errors"),
                             r"remote peer probably closed the socket", outside.report())
            self.assertEqual(outside.calls("Successful call"), 0, outside.report())
            rec = p.wait_log("conn.refused", peer=f"127.0.0.1:{outside.sip_port}")
            self.assertEqual(rec["transport"], "tcp", rec.raw)
            self.assertIn("internal_networks", rec["reason"], rec.raw)
            self.assertNotRegex(outside.read("messages"), r"(?m)^SIP/2\.0 ", outside.report())
            self.assertEqual(registrations(p), [])

            inside = Sipp(p, port, "register.xml", "alice", name="inside", source="127.0.0.5",
                          hold_ms=int(scaled(2000)))
            inside.spawn()
            reg = wait_registered(self, p, inside, "alice")
            self.assertEqual(reg["transport"], "TCP", reg)
            self.assertEqual(reg["source"], f"127.0.0.5:{inside.sip_port}", reg)
            rc = inside.wait(timeout=30)
            self.assertEqual(rc, SIPP_ALL_CALLS_OK, inside.report())
            self.assertEqual(len(p.find_log("conn.refused")), 1, p.log_tail())

    def test_keys_only_over_tls(self):
        p, port = tcp_server("sipp-sdes")
        with p:
            p.start()
            # bob over TLS: the offer is checked on the branch toward him
            with p.client("bob") as b:
                r = b.register(expires=600)
                self.assertEqual(r.status, 200, r)
                alice = Sipp(p, port, "invite_sdes.xml", "alice", name="alice",
                             auth_uri=f"bob@{DOMAIN}", keys={"to_user": "bob"})
                rc = alice.run(timeout=30)
                # the scenario wants 488 with the Warning (ereg check_it)
                self.assertEqual(rc, SIPP_ALL_CALLS_OK, alice.report())
                self.assertEqual(alice.read("logs").strip(),
                                 f'488 Warning: 399 {DOMAIN} "{KEYS_OVER_TCP}"', alice.report())
                sent = alice.read("messages")
                self.assertRegex(sent, r"(?m)^a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:")
                self.assertRegex(sent, r"(?m)^Proxy-Authorization: Digest ")
                rec = p.wait_log("media.refused", sdp="offer")
                self.assertEqual(rec["reason"], KEYS_OVER_TCP, rec.raw)
                # nothing reached bob
                m = b.conn.try_recv(scaled(0.5))
                self.assertIsNone(m, m and m.summary())

    def test_keys_in_a_multipart_body_refused(self):
        # the same offer as the application/sdp part of a multipart body, next
        # to an ISUP part (as SIP-I gateways send it): inspected and refused
        p, port = tcp_server("sipp-sdes-mp")
        with p:
            p.start()
            with p.client("bob") as b:
                r = b.register(expires=600)
                self.assertEqual(r.status, 200, r)
                with open(os.path.join(SCENARIOS, "invite_sdes.xml")) as f:
                    text = f.read()
                text = text.replace("Content-Type: application/sdp",
                                    "Content-Type: multipart/mixed;boundary=unique-b1")
                text = text.replace("      v=0\n",
                                    "      --unique-b1\n      Content-Type: application/sdp\n\n"
                                    "      v=0\n")
                text = re.sub(r"(      a=crypto:1 [^\n]*\n)",
                              r"\1      --unique-b1\n"
                              r"      Content-Type: application/isup;version=itu-t92+\n\n"
                              r"      isup\n      --unique-b1--\n", text)
                scenario = os.path.join(p.dir, "invite_sdes_multipart.xml")
                with open(scenario, "w") as f:
                    f.write(text)
                alice = Sipp(p, port, scenario, "alice", name="alice",
                             auth_uri=f"bob@{DOMAIN}", keys={"to_user": "bob"})
                rc = alice.run(timeout=30)
                self.assertEqual(rc, SIPP_ALL_CALLS_OK, alice.report())
                self.assertEqual(alice.read("logs").strip(),
                                 f'488 Warning: 399 {DOMAIN} "{KEYS_OVER_TCP}"', alice.report())
                sent = alice.read("messages")
                self.assertIn("Content-Type: multipart/mixed;boundary=unique-b1", sent)
                self.assertRegex(sent, r"(?m)^--unique-b1--")
                m = b.conn.try_recv(scaled(0.5))
                self.assertIsNone(m, m and m.summary())


if __name__ == "__main__":
    unittest.main(verbosity=2)
