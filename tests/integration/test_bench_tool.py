#!/usr/bin/python3
"""parley-bench itself: every scenario against a real parleyd at a low rate
(zero failures, operations counted, latencies present), TLS 1.2 and a
client certificate, and the failures it must report: a wrong password
(counted by status) and a port nobody listens on (connection errors,
non-zero exit)."""
import json
import os
import subprocess
import unittest

from harness import Parley, free_port, run_peer

USERS = 6


def bench_path():
    return os.environ.get("PARLEY_BENCH", "build/src/bench/parley-bench")


class BenchTool(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.p = Parley(config={"limits.connections_per_source": 1000})
        cls.p.__enter__()
        for i in range(USERS):
            cls.p.add_user(f"user{i}", f"pw{i}")
        cls.p.start()

    @classmethod
    def tearDownClass(cls):
        cls.p.__exit__(None, None, None)

    def bench(self, *args, timeout=60):
        p = self.p
        cmd = [bench_path(), "--server", f"{p.address}:{p.tls_port}", "--domain", p.domain,
               "--cafile", p.ca_file, "--json", "--quiet", *args]
        r = run_peer(cmd, timeout=timeout)
        try:
            out = json.loads(r.stdout)
        except json.JSONDecodeError:
            self.fail(f"no JSON from {' '.join(cmd)}: rc={r.returncode}\n{r.stdout}\n{r.stderr}")
        return r.returncode, out

    def assert_clean(self, rc, out, scenario):
        ops = out["operations"]
        self.assertEqual(out["scenario"], scenario)
        self.assertEqual(rc, 0, json.dumps(out, indent=1))
        self.assertGreater(ops["ok"], 0, out)
        self.assertEqual(ops["failed"], 0, out)
        self.assertEqual(ops["started"], ops["ok"], out)
        self.assertEqual(out["failures_by_status"], {}, out)
        lat = out["latency_ms"]
        self.assertIsNotNone(lat, out)
        for k in ("p50", "p90", "p99", "max", "mean"):
            self.assertGreater(lat[k], 0, out)
        self.assertLessEqual(lat["p50"], lat["p99"])
        self.assertLessEqual(lat["p99"], lat["max"])
        cpu = out["generator_cpu"]
        self.assertGreaterEqual(cpu["user_s"] + cpu["sys_s"], 0)
        self.assertIn("percent_of_one_core", cpu)

    def test_register(self):
        rc, out = self.bench("--scenario", "register", "--users", str(USERS), "--connections", "2",
                             "--rate", "20", "--duration", "2")
        self.assert_clean(rc, out, "register")
        # 20/s for 2 s, give or take the edges
        self.assertGreaterEqual(out["operations"]["ok"], 30)
        self.assertLessEqual(out["operations"]["ok"], 50)
        self.assertEqual(out["auth"], "fresh")
        self.assertEqual(out["handshakes"], 2)

    def test_register_newconn(self):
        rc, out = self.bench("--scenario", "register-newconn", "--users", str(USERS),
                             "--rate", "10", "--duration", "2")
        self.assert_clean(rc, out, "register-newconn")
        self.assertEqual(out["handshakes"], out["operations"]["ok"])
        self.assertGreater(out["resumed"], 0, "sessions are resumed unless --no-resumption")

    def test_message(self):
        rc, out = self.bench("--scenario", "message", "--users", str(USERS), "--connections", "1",
                             "--rate", "20", "--duration", "2")
        self.assert_clean(rc, out, "message")
        # every MESSAGE reached a callee, which answered it
        self.assertEqual(out["callee_requests"], out["operations"]["ok"])

    def test_message_fresh_challenge(self):
        rc, out = self.bench("--scenario", "message", "--users", "4", "--rate", "10",
                             "--duration", "1", "--auth", "fresh")
        self.assert_clean(rc, out, "message")

    def test_call(self):
        rc, out = self.bench("--scenario", "call", "--users", str(USERS), "--connections", "1",
                             "--rate", "5", "--duration", "2", "--timeout", "10")
        self.assert_clean(rc, out, "call")
        # INVITE, ACK and BYE reached the callee for every call
        self.assertEqual(out["callee_requests"], 3 * out["operations"]["ok"])

    def test_handshake_tls12_no_resumption(self):
        rc, out = self.bench("--scenario", "handshake", "--tls", "1.2", "--no-resumption",
                             "--rate", "20", "--duration", "1")
        self.assert_clean(rc, out, "handshake")
        self.assertEqual(out["resumed"], 0)
        self.assertEqual(out["tls"], "1.2")

    def test_handshake_client_certificate(self):
        d = self.p.dir
        key, csr, crt = (os.path.join(d, f"bench-client.{x}") for x in ("key", "csr", "pem"))
        for args in (["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                      "-out", key],
                     ["req", "-new", "-key", key, "-subj", "/CN=bench-client", "-out", csr],
                     ["x509", "-req", "-in", csr, "-CA", os.path.join(d, "pki/ca.pem"),
                      "-CAkey", os.path.join(d, "pki/ca.key"), "-days", "2", "-out", crt]):
            subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)
        rc, out = self.bench("--scenario", "handshake", "--tls", "1.3", "--no-resumption",
                             "--cert", crt, "--key", key, "--rate", "20", "--duration", "1")
        self.assert_clean(rc, out, "handshake")
        self.assertTrue(out["client_certificate"])

    def test_idle_connections(self):
        rc, out = self.bench("--scenario", "idle", "--connections", "20", "--duration", "1")
        self.assertEqual(rc, 0, out)
        self.assertEqual(out["setup"]["connections"], 20)
        self.assertEqual(out["operations"]["failed"], 0)

    def test_wrong_password_counted_by_status(self):
        rc, out = self.bench("--scenario", "register", "--users", "3",
                             "--password-template", "wrong{i}", "--rate", "10", "--duration", "1")
        self.assertEqual(rc, 1, out)
        ops = out["operations"]
        self.assertEqual(ops["ok"], 0, out)
        self.assertGreater(ops["failed"], 0, out)
        self.assertEqual(ops["failed"], ops["started"], out)
        codes = out["failures_by_status"]
        # 403 while guesses are checked, 503 once the source is throttled
        self.assertTrue(set(codes) <= {"401", "403", "503"} and codes, codes)
        self.assertEqual(sum(codes.values()), ops["failed"])
        self.assertIsNone(out["latency_ms"])

    def test_wrong_port_is_a_connection_error(self):
        port = free_port()
        r = run_peer([bench_path(), "--server", f"127.0.0.1:{port}", "--domain", self.p.domain,
                      "--cafile", self.p.ca_file, "--json", "--quiet", "--scenario", "register",
                      "--users", "2", "--duration", "1"], timeout=60)
        self.assertNotEqual(r.returncode, 0)
        out = json.loads(r.stdout)
        self.assertTrue(out["setup"]["aborted"], out)
        self.assertGreater(out["setup"]["failures"], 0, out)
        self.assertIn("refused", (out["connection_error"] or "").lower(), out)
        # the table says so too
        r = run_peer([bench_path(), "--server", f"127.0.0.1:{port}", "--domain", self.p.domain,
                      "--insecure", "--scenario", "handshake", "--duration", "1"], timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("Connection refused", r.stdout)

    def test_untrusted_server_is_a_tls_error(self):
        # the system store does not know the development CA
        r = run_peer([bench_path(), "--server", f"{self.p.address}:{self.p.tls_port}",
                      "--domain", self.p.domain, "--json", "--quiet", "--scenario", "register",
                      "--users", "1", "--duration", "1"], timeout=60)
        self.assertEqual(r.returncode, 1)
        out = json.loads(r.stdout)
        self.assertIn("certificate verify failed", out["connection_error"] or "", out)

    def test_usage_errors(self):
        for args in ([], ["--server", "127.0.0.1:1"], ["--server", "x", "--domain", "d"],
                     ["--server", "127.0.0.1:1", "--domain", "d", "--scenario", "nope"],
                     ["--server", "127.0.0.1:1", "--domain", "d", "--rate", "-1"],
                     ["--server", "127.0.0.1:1", "--domain", "d", "--scenario", "message",
                      "--users", "1"]):
            r = run_peer([bench_path(), *args], timeout=30)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            self.assertIn("usage", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
