#!/usr/bin/python3
"""security.fips (crypto/fips): mode on without OpenSSL's fips provider
(Debian ships none) and auto over a kernel that says FIPS are refused at
start with one line naming the missing provider; auto over a kernel that
does not, and approved-only, start, say their mode once in the log with
the known-answer self-tests, and in status. The kernel's switch is
simulated with security.fips_enabled_file."""
import os
import subprocess
import unittest

from harness import Parley


class TestFips(unittest.TestCase):
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
        self.assertNotIn("event=crypto.selftest", err)
        return lines[0]

    def kernel_says(self, p, value):
        path = os.path.join(p.dir, "fips_enabled")
        if value is not None:
            with open(path, "w") as f:
                f.write(f"{value}\n")
        p.config_set("security.fips_enabled_file", path)

    def one(self, p, event):
        """The one log line of event."""
        lines = p.find_log(event)
        self.assertEqual(len(lines), 1, p.log_tail())
        return lines[0]

    def status(self, p):
        res = p.ctl("status", json=True)
        self.assertEqual(res[0], 0, res[2])
        return res[1]

    def test_on_without_provider_refused(self):
        with Parley(name="fips-on") as p:
            p.config_set("security.fips", "on")
            line = self.refused(p, "fips provider", "fips.so", "OPENSSL_MODULES",
                                "openssl fipsinstall", "approved-only")
            self.assertIn("security.fips = on", line)

    def test_auto_kernel_fips_refused(self):
        with Parley(name="fips-auto1") as p:
            self.kernel_says(p, 1)
            self.refused(p, "fips provider", "fips.so",
                         "auto: the kernel runs in FIPS mode")

    def test_auto_kernel_off_starts(self):
        with Parley(name="fips-auto0") as p:
            self.kernel_says(p, 0)
            p.start()
            mode = self.one(p, "crypto.mode")
            self.assertEqual(mode["mode"], "off")
            self.assertIn("auto", mode["why"])
            st = self.status(p)
            self.assertEqual(st["fips"]["mode"], "off")
            self.assertEqual(st["fips"]["description"], "off")
            self.assertFalse(st["fips"]["validated_module"])
            self.assertEqual(st["fips"]["self_test"], "passed")
            # off: the MD5 known answer runs too
            st_line = self.one(p, "crypto.selftest")
            self.assertEqual(st_line["result"], "passed")
            self.assertEqual(int(st_line["tests"]), 8)

    def test_auto_missing_file_is_off(self):
        with Parley(name="fips-auto-missing") as p:
            self.kernel_says(p, None)
            p.start()
            self.assertEqual(self.one(p, "crypto.mode")["mode"], "off")

    def test_approved_only_starts(self):
        with Parley(name="fips-approved") as p:
            p.config_set("security.fips", "approved-only")
            p.start()
            mode = self.one(p, "crypto.mode")
            self.assertEqual(mode["mode"], "approved-only")
            self.assertEqual(mode["description"], "approved-only (no validated module)")
            selftest = self.one(p, "crypto.selftest")
            self.assertEqual(selftest["result"], "passed")
            self.assertEqual(int(selftest["tests"]), 7)  # no MD5 under a restricted mode
            st = self.status(p)
            self.assertEqual(st["fips"]["mode"], "approved-only")
            self.assertEqual(st["fips"]["description"], "approved-only (no validated module)")
            self.assertFalse(st["fips"]["validated_module"])
            rows = [r for r in st["protection"] if r["traffic"] == "FIPS 140"]
            self.assertEqual(len(rows), 1, st["protection"])
            self.assertEqual(rows[0]["protection"], "FIPS-approved algorithms only")
            self.assertIn("approved-only (no validated module)", rows[0]["enforced"])
            text = p.ctl("status")[1]
            self.assertIn("fips: approved-only (no validated module)", text)

    def test_parleyctl_follows_the_setting(self):
        with Parley(name="fips-ctl") as p:
            p.config_set("security.fips", "on")
            res = subprocess.run([p.parleyctl, "-c", p.conf, "relay", "credentials", "alice"],
                                 capture_output=True, timeout=20)
            self.assertEqual(res.returncode, 1)
            self.assertIn("fips provider", res.stderr.decode())
            # status still answers, saying what the configuration asks for
            res = subprocess.run([p.parleyctl, "-c", p.conf, "status"], capture_output=True,
                                 timeout=20)
            self.assertIn("fips: on (as configured", res.stdout.decode())

    def test_init_writes_the_setting(self):
        with Parley(name="fips-init") as p:
            d = os.path.join(p.dir, "again")
            res = subprocess.run([p.parleyctl, "init", "--dir", d, "--domain", "example.test",
                                  "--fips", "approved-only"], capture_output=True, timeout=60)
            self.assertEqual(res.returncode, 0, res.stderr.decode())
            with open(os.path.join(d, "parley.conf")) as f:
                self.assertIn("fips = approved-only", f.read())
            res = subprocess.run([p.parleyctl, "init", "--dir", os.path.join(p.dir, "on"),
                                  "--domain", "example.test", "--fips", "on"],
                                 capture_output=True, timeout=60)
            self.assertEqual(res.returncode, 1)
            self.assertIn("fips provider", res.stderr.decode())
            self.assertFalse(os.path.exists(os.path.join(p.dir, "on")))
            res = subprocess.run([p.parleyctl, "init", "--dir", os.path.join(p.dir, "bad"),
                                  "--domain", "example.test", "--fips", "maybe"],
                                 capture_output=True, timeout=60)
            self.assertEqual(res.returncode, 2)


if __name__ == "__main__":
    unittest.main()
