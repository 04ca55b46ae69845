#!/usr/bin/python3
"""SIP and HTTP digest under security.fips = approved-only (issue 18):
auth.algorithms left at its default narrows to SHA-256, an explicit MD5 is
refused at start with the key and the reason, the suite's SIP client
registers with SHA-256 while MD5 credentials are refused 403 with a reason
that names FIPS, Debian's baresip (MD5 only) cannot register, users get
only a SHA-256 digest, and `parleyctl user list` shows who lacks one."""
import os
import re
import shutil
import sqlite3
import subprocess
import unittest

import sipclient
from harness import Parley

USERS = {"alice": "alice-secret-1", "bob": "bob-secret-22"}
FIPS = {"security.fips": "approved-only"}
# what `parleyctl init --fips` writes (the key explicitly)
FIPS_INIT = dict(FIPS, **{"auth.algorithms": "SHA-256"})
MD5_FIPS = "algorithm not allowed: MD5 is not FIPS approved"


def challenges(resp):
    return [c for v in resp.headers("WWW-Authenticate") for c in sipclient.parse_challenges(v)]


class TestDigestFips(unittest.TestCase):
    def test_default_narrows_and_sha256_registers(self):
        with Parley(name="fips-digest", config=FIPS, users=USERS) as p:
            # auth.algorithms left at its default (init does not write it
            # out unless under FIPS): it narrows by itself
            with open(p.conf) as f:
                self.assertIsNone(re.search(r"(?m)^algorithms = ", f.read()))
            p.start()
            p.wait_log("auth.fips", value="SHA-256")
            with p.client("alice") as a:
                r = a.request("REGISTER", expires=600)
                self.assertEqual(r.status, 401, r)
                self.assertEqual([c.algorithm for c in challenges(r)], ["SHA-256"], r)
                r = a.register(expires=600)
                self.assertEqual(r.status, 200, r)
                self.assertIn("algorithm=SHA-256", r.request.header("Authorization"))
            # MD5 credentials (or none named: MD5) are refused, the reason names FIPS
            with p.client("bob") as b:
                for alg in ("MD5", None):
                    mark = p.log_mark()
                    r = b.request("REGISTER", expires=600)
                    ch = challenges(r)[0]
                    req = b.build_request("REGISTER", expires=600)
                    auth = sipclient.build_authorization(
                        ch, username="bob", password=USERS["bob"], method="REGISTER",
                        uri=req.uri, algorithm="MD5")
                    if alg is None:
                        auth = auth.replace(", algorithm=MD5", "")
                    req.add_header("Authorization", auth)
                    b.send(req)
                    r = b.wait_response(req)
                    self.assertEqual(r.status, 403, r)
                    if alg:  # (one line a second per source and reason: the first)
                        p.wait_log("sip.rejected", since=mark, method="REGISTER", status="403",
                                   reason=MD5_FIPS)
            # users added under FIPS have a SHA-256 digest only
            db = sqlite3.connect(os.path.join(p.dir, "parley.db"))
            md5, sha = db.execute("SELECT ha1_md5, ha1_sha256 FROM users WHERE name='alice'").fetchone()
            self.assertEqual((md5, len(sha)), ("", 64))
            # one made before FIPS, with MD5 only: found by user list
            db.execute("UPDATE users SET ha1_sha256 = '' , ha1_md5 = ? WHERE name = 'bob'",
                       ("0" * 32,))
            db.commit()
            db.close()
            res = p.ctl("user", "list", json=True)
            rows = {u["user"]: u for u in res.stdout["users"]}
            self.assertEqual(rows["alice"]["digests"], ["sha-256"])
            self.assertEqual(rows["bob"]["digests"], ["md5"])
            self.assertTrue(rows["bob"]["needs_passwd"])
            self.assertTrue(res.stdout["fips_restricted"])
            self.assertEqual(res.stdout["without_sha256"], 1)
            text = p.ctl("user", "list").stdout
            self.assertIn("sip:alice@example.test  digests: sha-256\n", text)
            self.assertIn("digests: md5 (no SHA-256 digest, cannot authenticate under FIPS: "
                          "run `parleyctl user passwd bob`)", text)
            r = p.ctl("user", "passwd", "bob", "--password-stdin", input=USERS["bob"] + "\n")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("SHA-256 digest only (security.fips)", r.stdout)
            rows = {u["user"]: u for u in p.ctl("user", "list", json=True).stdout["users"]}
            self.assertEqual(rows["bob"]["digests"], ["sha-256"])
            with p.client("bob") as b:
                self.assertEqual(b.register(expires=600).status, 200)

    def test_explicit_md5_refused_at_start(self):
        for value in ("MD5", "SHA-256, MD5"):
            with self.subTest(value=value):
                with Parley(name="fips-md5", config=dict(FIPS, **{"auth.algorithms": value})) as p:
                    res = subprocess.run([p.parleyd, "-c", p.conf], capture_output=True,
                                         timeout=20)
                    err = res.stderr.decode()
                    self.assertEqual(res.returncode, 1, err)
                    lines = [l for l in err.splitlines() if "event=server.start_failed" in l]
                    self.assertEqual(len(lines), 1, err)
                    self.assertIn(f"auth.algorithms = {value}: MD5 is not a FIPS approved digest",
                                  lines[0])
                    self.assertNotIn("event=server.ready", err)

    def test_without_fips_unchanged(self):
        with Parley(name="nofips-digest", users=USERS) as p:
            p.start()
            p.assert_no_log("auth.fips")
            with p.client("alice", algorithm="MD5") as a:
                self.assertEqual(a.register(expires=600).status, 200)
            rows = {u["user"]: u for u in p.ctl("user", "list", json=True).stdout["users"]}
            self.assertEqual(rows["alice"]["digests"], ["md5", "sha-256"])

    @unittest.skipIf(shutil.which("baresip") is None, "baresip is not installed")
    def test_baresip_md5_only_cannot_register(self):
        """Debian's baresip answers only MD5: it gives up on the SHA-256
        challenge (it sends no credentials: the server says at start why)."""
        with Parley(name="fips-baresip", config=FIPS_INIT, users=USERS) as p:
            p.start()
            start = p.wait_log("auth.fips")
            self.assertIn("baresip", start["reason"])
            mark = p.log_mark()
            a = p.baresip("alice")
            a.wait_registered(timeout=15, status="ERR")
            self.assertRegex(a.output, r"401 Unauthorized")
            p.assert_no_log("registrar.bound", since=mark)


if __name__ == "__main__":
    unittest.main(verbosity=2)
