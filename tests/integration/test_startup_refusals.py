#!/usr/bin/python3
"""parleyd refuses to start, with one log line naming the file and the
fault, on each thing that would make it unsafe or useless."""
import os
import socket
import subprocess
import unittest

from harness import Parley


def openssl(*args):
    res = subprocess.run(["openssl", *args], capture_output=True, timeout=30)
    if res.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)}: {res.stderr.decode()}")
    return res.stdout


class TestStartupRefusals(unittest.TestCase):
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

    def test_missing_key(self):
        with Parley(name="nokey") as p:
            os.unlink(os.path.join(p.dir, "pki", "server.key"))
            self.refused(p, "server.key")

    def test_key_readable_by_others(self):
        with Parley(name="keymode") as p:
            os.chmod(os.path.join(p.dir, "pki", "server.key"), 0o644)
            self.refused(p, "server.key", "readable by others", "chmod 600")

    def test_certificate_not_matching_key(self):
        with Parley(name="mismatch") as p:
            key = os.path.join(p.dir, "pki", "server.key")
            os.unlink(key)
            openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-out", key)
            os.chmod(key, 0o600)
            line = self.refused(p)
            self.assertTrue("server.pem" in line or "server.key" in line, line)
            self.assertTrue("match" in line or "not for this key" in line, line)

    def test_expired_certificate(self):
        with Parley(name="expired") as p:
            pki = os.path.join(p.dir, "pki")
            ca_dir = os.path.join(p.dir, "ca")
            os.mkdir(ca_dir)
            open(os.path.join(ca_dir, "index.txt"), "w").close()
            with open(os.path.join(ca_dir, "ca.cnf"), "w") as f:
                f.write(f"""[ca]
default_ca = dev
[dev]
database = {ca_dir}/index.txt
new_certs_dir = {ca_dir}
serial = {ca_dir}/serial
default_md = sha256
policy = any
copy_extensions = none
[any]
commonName = supplied
[ext]
subjectAltName = DNS:sip.example.test
""")
            with open(os.path.join(ca_dir, "serial"), "w") as f:
                f.write("1000\n")
            key = os.path.join(pki, "server.key")
            csr = os.path.join(p.dir, "old.csr")
            openssl("req", "-new", "-key", key, "-subj", "/CN=sip.example.test", "-out", csr)
            openssl("ca", "-batch", "-config", os.path.join(ca_dir, "ca.cnf"), "-cert",
                    os.path.join(pki, "ca.pem"), "-keyfile", os.path.join(pki, "ca.key"),
                    "-startdate", "20200101000000Z", "-enddate", "20200201000000Z",
                    "-extensions", "ext", "-in", csr, "-out", os.path.join(pki, "server.pem"))
            self.refused(p, "server.pem", "expired")

    def test_listener_address_in_use(self):
        with Parley(name="inuse") as p:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", p.tls_port))
            s.listen(1)
            try:
                self.refused(p, f"127.0.0.1:{p.tls_port}", "Address already in use",
                             "sip.tls_listen")
            finally:
                s.close()

    def test_invalid_configuration(self):
        with Parley(name="badconf") as p:
            with open(p.conf, "a") as f:
                f.write("\n[sip]\nidle_timeout = soon\n")
            self.refused(p, "parley.conf:", "sip.idle_timeout", "invalid value")
        with Parley(name="badconf2") as p:
            with open(p.conf, "a") as f:
                f.write("\n[tls]\nmystery = 1\n")
            self.refused(p, "parley.conf:", "unknown key tls.mystery")

    def test_missing_configuration_and_store(self):
        with Parley(name="nostore") as p:
            os.unlink(os.path.join(p.dir, "parley.db"))
            self.refused(p, "parley.db")
        res = subprocess.run([p.parleyd, "-c", "/nonexistent/parley.conf"], capture_output=True,
                             timeout=20)
        self.assertEqual(res.returncode, 1)
        self.assertIn("/nonexistent/parley.conf", res.stderr.decode())
        res = subprocess.run([p.parleyd], capture_output=True, timeout=20)
        self.assertEqual(res.returncode, 2, "no -c is a usage error")


if __name__ == "__main__":
    unittest.main(verbosity=2)
