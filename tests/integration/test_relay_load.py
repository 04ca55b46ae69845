#!/usr/bin/python3
"""parley-bench --scenario relay (src/bench/relay_load.c) against one
Parley relay: at a low rate it counts as coturn's turnutils_uclient -y
does (4 allocations, 200 packets each of 172 octets: none lost, the same
packets sent and received), and what it counts is what the relay counted
(the relay.allocation_ended lines of its allocations: to-peer packets =
sent, from-peer = received in pairs mode, none from the peer in loop
mode). A credential computed from the secret and PASSWORD-ALGORITHM
SHA-256 work too. Refused credentials, a refused Allocate (the quota per
user) and a server that does not answer end in a clear error and a
non-zero exit, not a hang, with nothing left allocated."""
from __future__ import annotations

import json
import os
import re
import shutil
import time
import unittest

from harness import TIMEOUT_SCALE, Parley, free_port, free_ports, run_peer

ALLOCATIONS, PACKETS, SIZE = 4, 200, 172


def bench_path() -> str:
    return os.environ.get("PARLEY_BENCH", "build/src/bench/parley-bench")


def relay_ports(n: int = 64) -> str:
    ports = free_ports(n, "udp", consecutive=True)
    return f"{ports[0]}-{ports[-1]}"


class RelayLoad(unittest.TestCase):
    p: Parley

    @classmethod
    def setUpClass(cls) -> None:
        cls.p = Parley(name="relayload", config={"relay.allowed_peers": "127.0.0.0/8",
                                                 "relay.port_range": relay_ports()})
        try:
            cls.p.start()
        except BaseException:
            cls.p.close(failed=True)
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        cls.p.close()

    def creds(self, user: str) -> tuple[str, str]:
        rc, out, err = self.p.ctl("relay", "credentials", user, "--lifetime", "3600", json=True)
        self.assertEqual(rc, 0, (out, err))
        return out["username"], out["password"]

    def bench(self, *args: str, timeout: float = 60) -> tuple[int, dict, str]:
        cmd = [bench_path(), "--scenario", "relay", "--json", "--quiet", *args]
        r = run_peer(cmd, timeout=timeout)
        try:
            out = json.loads(r.stdout)
        except json.JSONDecodeError:
            self.fail(f"no JSON from {' '.join(cmd)}: rc={r.returncode}\n{r.stdout}\n{r.stderr}")
        return r.returncode, out, r.stderr

    def ended(self, user: str, count: int, since: int) -> list:
        """The relay.allocation_ended lines of user's allocations, once
        there are count of them."""
        deadline = time.monotonic() + 10 * TIMEOUT_SCALE
        while True:
            lines = self.p.find_log("relay.allocation_ended", since=since, user=user)
            if len(lines) >= count or time.monotonic() > deadline:
                self.assertEqual(len(lines), count, [l.raw for l in lines])
                return lines
            time.sleep(0.1)

    def uclient(self) -> tuple[int, int]:
        """turnutils_uclient -y (client to client through the relay):
        (sent, received), with nothing lost."""
        username, password = self.creds("uclient")
        res = run_peer(["turnutils_uclient", "-y", "-m", str(ALLOCATIONS), "-n", str(PACKETS),
                        "-l", str(SIZE), "-u", username, "-w", password, "-p",
                        str(self.p.relay_port), "-e", "127.0.0.1", "127.0.0.1"], timeout=90)
        out = res.stdout + res.stderr
        self.assertEqual(res.returncode, 0, out[-3000:])
        lost = re.search(r"Total lost packets (\d+)", out)
        totals = re.findall(r"tot_send_msgs=(\d+), tot_recv_msgs=(\d+)", out)
        self.assertIsNotNone(lost, out[-3000:])
        self.assertEqual(lost.group(1), "0", out[-3000:])
        self.assertTrue(totals, out[-3000:])
        sent, received = map(int, totals[-1])
        return sent, received

    def assert_clean(self, rc: int, out: dict, err: str) -> None:
        self.assertEqual(rc, 0, (json.dumps(out, indent=1), err))
        self.assertIsNone(out["error"])
        self.assertEqual(out["sent"], ALLOCATIONS * PACKETS, out)
        self.assertEqual(out["received"], out["sent"], out)
        self.assertEqual(out["lost"], 0, out)
        self.assertEqual(out["duplicates"], 0, out)
        self.assertEqual(out["setup"]["released"], ALLOCATIONS, out)
        self.assertFalse(out["generator_limited"], out)
        lat = out["latency_us"]
        self.assertEqual(lat["samples"], out["received"])
        self.assertLessEqual(lat["p50"], lat["p99"])

    @unittest.skipUnless(shutil.which("turnutils_uclient"), "coturn's turnutils_uclient")
    def test_counts_as_uclient_and_as_the_relay(self) -> None:
        uc_sent, uc_received = self.uclient()
        username, password = self.creds("bench")
        mark = self.p.log_mark()
        # 50 packets/s per allocation, as uclient sends
        rc, out, err = self.bench("--server", f"127.0.0.1:{self.p.relay_port}", "--username",
                                  username, "--password", password, "--allocations",
                                  str(ALLOCATIONS), "--packets", str(PACKETS), "--rate",
                                  str(50 * ALLOCATIONS), "--size", str(SIZE))
        self.assert_clean(rc, out, err)
        self.assertEqual(out["peer_mode"], "pairs")
        self.assertEqual((out["sent"], out["received"]), (uc_sent, uc_received))
        self.assertEqual(out["relay_traversals"], 2 * out["received"])
        # the relay counted the same: each packet once toward the peer (the
        # other allocation's relayed address), once from it
        lines = self.ended("bench", ALLOCATIONS, mark)
        self.assertEqual(sum(int(l["to_peer_packets"]) for l in lines), out["sent"])
        self.assertEqual(sum(int(l["from_peer_packets"]) for l in lines), out["received"])
        self.assertEqual(sum(int(l["to_peer_bytes"]) for l in lines), out["sent"] * SIZE)
        for l in lines:
            self.assertEqual(l["reason"], "deleted by client", l.raw)

    def test_loop_mode_secret_and_sha256(self) -> None:
        rc, sec, err = self.p.ctl("relay", "secret", json=True)
        self.assertEqual(rc, 0, err)
        mark = self.p.log_mark()
        rc, out, err = self.bench("--server", f"127.0.0.1:{self.p.relay_port}", "--secret",
                                  sec["secret"], "--user", "looper", "--algorithm", "SHA-256",
                                  "--peer-mode", "loop", "--allocations", str(ALLOCATIONS),
                                  "--packets", str(PACKETS), "--rate", "400", "--size",
                                  str(SIZE))
        self.assert_clean(rc, out, err)
        self.assertEqual(out["algorithm"], "SHA-256")
        self.assertEqual(out["relay_traversals"], out["received"])
        lines = self.ended("looper", ALLOCATIONS, mark)
        self.assertEqual(sum(int(l["to_peer_packets"]) for l in lines), out["sent"])
        self.assertEqual(sum(int(l["from_peer_packets"]) for l in lines), 0)

    def test_wrong_password(self) -> None:
        username, _ = self.creds("mallory")
        t0 = time.monotonic()
        rc, out, err = self.bench("--server", f"127.0.0.1:{self.p.relay_port}", "--username",
                                  username, "--password", "bm90IHRoZSBwYXNzd29yZA==",
                                  "--allocations", "2", "--duration", "1")
        self.assertEqual(rc, 1, out)
        self.assertIn("refused the credentials (401", out["error"])
        self.assertIn("refused the credentials", err)
        self.assertEqual(out["sent"], 0)
        self.assertLess(time.monotonic() - t0, 10 * TIMEOUT_SCALE)
        # and nothing was left allocated
        rc, status, _ = self.p.ctl("relay", "status", json=True)
        self.assertEqual(rc, 0)
        self.assertNotIn("mallory", [a.get("user") for a in status["allocations"]])

    def test_quota_refusal_leaves_nothing_allocated(self) -> None:
        """More allocations than relay.max_allocations_per_user (10): the
        486 is the error, and the ten the relay granted are deleted."""
        username, password = self.creds("greedy")
        mark = self.p.log_mark()
        rc, out, err = self.bench("--server", f"127.0.0.1:{self.p.relay_port}", "--username",
                                  username, "--password", password, "--allocations", "12")
        self.assertEqual(rc, 1, out)
        self.assertIn("Allocate refused: 486", out["error"])
        self.assertIn("relay.max_allocations_per_user", out["error"])
        self.assertEqual(out["sent"], 0)
        lines = self.ended("greedy", 10, mark)
        self.assertEqual({l["reason"] for l in lines}, {"deleted by client"})
        rc, status, _ = self.p.ctl("relay", "status", json=True)
        self.assertEqual(rc, 0)
        self.assertNotIn("greedy", [a.get("user") for a in status["allocations"]])

    def test_server_not_answering(self) -> None:
        port = free_port("udp")
        rc, out, err = self.bench("--server", f"127.0.0.1:{port}", "--secret", "x", "--user",
                                  "nobody", "--allocations", "2", "--timeout", "1")
        self.assertEqual(rc, 1, out)
        self.assertTrue(out["error"].startswith("timeout: no answer from"), out["error"])
        self.assertIn("timeout", err)
        self.assertGreater(out["setup"]["retransmissions"], 0)

    def test_usage(self) -> None:
        r = run_peer([bench_path(), "--scenario", "relay", "--help"])
        self.assertEqual(r.returncode, 0)
        self.assertIn("--peer-mode", r.stdout)
        # pairs need an even count; credentials are needed
        for bad in (["--server", "127.0.0.1:1", "--secret", "s", "--user", "u",
                     "--allocations", "3"],
                    ["--server", "127.0.0.1:1"],
                    ["--server", "127.0.0.1:1", "--username", "u"]):
            r = run_peer([bench_path(), "--scenario", "relay", *bad])
            self.assertEqual(r.returncode, 2, (bad, r.stderr))


if __name__ == "__main__":
    unittest.main()
