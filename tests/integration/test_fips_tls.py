#!/usr/bin/python3
"""TLS under security.fips = approved-only (issue 18): the SIP TLS port
offers only TLS 1.2/1.3 AES-GCM suites over P-256/P-384 (testssl says so,
from its JSON), clients that offer only X25519 or only ChaCha20-Poly1305
are refused, the default configuration starts narrowed (status --json
shows it) and a configuration that names a forbidden suite or group
explicitly is refused at start with the key named."""
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from harness import Parley

FIPS = {"security.fips": "approved-only"}
APPROVED_SUITES = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                   "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
                   "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384"}


def s_client(port, *extra, timeout=10):
    """openssl s_client against the server; returns (status, output)."""
    proc = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *extra],
                          input=b"", capture_output=True, timeout=timeout)
    return proc.returncode, proc.stdout.decode(errors="replace") + \
        proc.stderr.decode(errors="replace")


def handshake_ok(out):
    return "Cipher is (NONE)" not in out and ("New, TLSv1" in out and "Cipher is" in out)


class TestFipsTls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.p = Parley(name="fipstls", config=FIPS)
        cls.p.__enter__()
        cls.p.start()

    @classmethod
    def tearDownClass(cls):
        cls.p.__exit__(None, None, None)

    def test_default_configuration_starts_narrowed(self):
        res = self.p.ctl("status", json=True)
        self.assertEqual(res.returncode, 0, res.stderr)
        tls = [l for l in res.stdout["listeners"] if l.get("transport") == "tls"]
        self.assertTrue(tls)
        for l in tls:
            self.assertEqual(l["tls_groups"], "P-256:P-384")
            suites = set(s.strip() for s in l["tls_suites"].split(","))
            self.assertTrue(suites, l)
            self.assertLessEqual(suites, APPROVED_SUITES, l["tls_suites"])
            self.assertNotIn("CHACHA", l["tls_suites"])
            self.assertIn("ecdsa_secp256r1_sha256", l["tls_sigalgs"])
        rows = [r for r in res.stdout["protection"] if "TLS" in r["protection"]]
        self.assertTrue(any("FIPS-approved suites and groups only" in r["enforced"]
                            for r in rows), rows)

    def test_default_client_gets_p256_gcm(self):
        rc, out = s_client(self.p.tls_port, "-CAfile", self.p.ca_file)
        self.assertTrue(handshake_ok(out), out)
        self.assertIn("prime256v1", out)
        self.assertIn("GCM", out)

    def test_x25519_only_client_refused(self):
        rc, out = s_client(self.p.tls_port, "-groups", "X25519", "-CAfile", self.p.ca_file)
        self.assertNotEqual(rc, 0, out)
        self.assertFalse(handshake_ok(out), out)

    def test_chacha20_only_clients_refused(self):
        for extra in (["-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"],
                      ["-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"]):
            rc, out = s_client(self.p.tls_port, *extra, "-CAfile", self.p.ca_file)
            self.assertNotEqual(rc, 0, (extra, out))
            self.assertFalse(handshake_ok(out), (extra, out))

    @unittest.skipUnless(shutil.which("testssl"), "testssl (Debian testssl.sh) is not installed")
    def test_testssl_sees_only_approved(self):
        """testssl's protocols (-p), every cipher (-e) and the forward-secrecy
        section (-f, which lists the curves): about 40 s on this machine.
        Its exit code says nothing: the JSON is read."""
        with tempfile.TemporaryDirectory() as tmp:
            report = os.path.join(tmp, "testssl.json")
            started = time.monotonic()
            subprocess.run(["testssl", "--jsonfile", report, "--quiet", "--color", "0",
                            "--warnings", "off", "-p", "-e", "-f",
                            f"127.0.0.1:{self.p.tls_port}"],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=240)
            print(f"testssl took {time.monotonic() - started:.0f} s")
            with open(report) as f:
                findings = {r["id"]: r["finding"] for r in json.load(f)}
        for proto in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
            self.assertEqual(findings.get(proto), "not offered", proto)
        self.assertTrue(findings.get("TLS1_2", "").startswith("offered"), findings)
        self.assertTrue(findings.get("TLS1_3", "").startswith("offered"), findings)
        # cipher_xNNNN rows: "x1302   TLS_AES_256_GCM_SHA384   ECDH 256 AESGCM 256 ..."
        ciphers = {v.split()[1] for k, v in findings.items() if k.startswith("cipher_x")}
        self.assertTrue(ciphers, findings)
        self.assertLessEqual(ciphers, APPROVED_SUITES)
        self.assertIn("TLS_AES_256_GCM_SHA384", ciphers)
        # the curves: PFS_ECDHE_curves (testssl 3.0) or FS_ECDHE_curves (3.1+)
        curves = findings.get("PFS_ECDHE_curves", findings.get("FS_ECDHE_curves"))
        self.assertIsNotNone(curves, findings)
        self.assertLessEqual(set(curves.split()), {"prime256v1", "secp384r1"}, curves)
        self.assertNotIn("X25519", curves)


class TestFipsTlsRefusals(unittest.TestCase):
    def refused(self, p, *must_contain):
        """Runs parleyd once; it must exit 1 with one start_failed line."""
        res = subprocess.run([p.parleyd, "-c", p.conf], capture_output=True, timeout=20)
        err = res.stderr.decode()
        self.assertEqual(res.returncode, 1, err)
        lines = [l for l in err.splitlines() if "event=server.start_failed" in l]
        self.assertEqual(len(lines), 1, err)
        for text in must_contain:
            self.assertIn(text, lines[0])
        self.assertNotIn("event=server.ready", err)
        return lines[0]

    def test_explicit_forbidden_items_refused_at_start(self):
        cases = [
            ("tls.groups", "X25519:P-256:P-384:X448", "tls.groups: X25519 is not FIPS-approved"),
            ("tls.ciphersuites", "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256",
             "tls.ciphersuites: TLS_CHACHA20_POLY1305_SHA256 is not FIPS-approved"),
            ("tls.ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-SHA256",
             "tls.ciphers: ECDHE-ECDSA-AES128-SHA256 is not FIPS-approved"),
        ]
        for key, value, want in cases:
            with self.subTest(key=key):
                with Parley(name="fipsrefuse", config={**FIPS, key: value}) as p:
                    self.refused(p, want, "security.fips = approved-only")

    def test_same_values_accepted_without_fips(self):
        with Parley(name="fipsoff", config={"security.fips": "off",
                                            "tls.groups": "X25519:P-256"}) as p:
            p.start()
            rc, out = s_client(p.tls_port, "-groups", "X25519", "-CAfile", p.ca_file)
            self.assertTrue(handshake_ok(out), out)

    def test_small_rsa_key_refused_at_start(self):
        with Parley(name="fipsrsa", config=FIPS) as p:
            pki = os.path.join(p.dir, "pki")
            key, cert = os.path.join(pki, "server.key"), os.path.join(pki, "server.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:1024", "-nodes",
                            "-keyout", key, "-out", cert, "-days", "2", "-subj",
                            "/CN=sip.example.test"], check=True, capture_output=True)
            os.chmod(key, 0o600)
            self.refused(p, "server.key: an RSA key of 1024 bits is not FIPS-approved")


if __name__ == "__main__":
    unittest.main()
