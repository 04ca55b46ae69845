#!/usr/bin/python3
"""Prometheus metrics (the operations issue, part 6): GET /metrics on the
HTTPS listener and `parleyctl metrics`, judged by Prometheus's own promtool.

- Three ways in: an address in https.metrics_networks (curl bound to
  127.0.0.2), the metrics token of `parleyctl https metrics-token`, and an
  administrator's web ticket (`user set NAME --admin`).
- Each answer is the Prometheus text format 0.0.4 that `promtool check
  metrics` accepts (its lint included), with every family docs/METRICS.md
  lists, and the registration gauge counts the one device registered.
- Refusals: no credentials (401, Bearer challenge), a non-administrator's
  ticket (403), a wrong, replaced or revoked token (401), an address
  outside the networks without credentials (401); wrong tokens count as
  failed logins (429 once the throttle blocks that source).
- `parleyctl metrics` prints the same families.
One server serves every case.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import unittest

from harness import Parley

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC = os.path.join(ROOT, "docs", "METRICS.md")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MAX_FAILURES = 3


def documented_families() -> list[str]:
    """The metric names of docs/METRICS.md's table."""
    with open(DOC, encoding="utf-8") as f:
        return re.findall(r"^\| `([a-z_]+)` \|", f.read(), re.M)


def families(text: str) -> dict[str, str]:
    """name -> type, from the # TYPE lines."""
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))


def promtool_check(text: str) -> tuple[int, str, str]:
    res = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                         capture_output=True, timeout=60)
    return res.returncode, res.stdout.decode(), res.stderr.decode()


@unittest.skipUnless(shutil.which("promtool"), "promtool (Debian prometheus) not installed")
@unittest.skipUnless(shutil.which("curl"), "curl not installed")
class TestMetrics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="parley-metrics-peers-")
        cls.p = Parley(name="metrics", users={"alice": "alice-pw", "bob": "bob-pw"},
                       config={"https.metrics_networks": "127.0.0.2/32",
                               "auth.max_failures": MAX_FAILURES,
                               "auth.max_source_failures": 1000,
                               "auth.max_user_failures": 1000})
        p = cls.p
        res = p.ctl("user", "set", "alice", "--admin", json=True)
        assert res.returncode == 0 and res.stdout["admin"] is True, res
        cls.token = cls.new_token()
        p.start()
        cls.base = f"https://127.0.0.1:{p.https_port}"
        cls.admin_ticket = cls.get_ticket("alice", "alice-pw")
        cls.user_ticket = cls.get_ticket("bob", "bob-pw")
        # one device registered (bob over TLS), kept for the whole file
        cls.sip = p.client("bob")
        r = cls.sip.register(expires=600)
        assert r.status == 200, r.summary()

    @classmethod
    def tearDownClass(cls):
        cls.sip.close()
        cls.p.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def new_token(cls) -> str:
        res = cls.p.ctl("https", "metrics-token", json=True)
        assert res.returncode == 0, res
        token = res.stdout["token"]
        assert re.fullmatch(r"pmt_[A-Za-z0-9_-]{43}", token), token
        return token

    @classmethod
    def curl(cls, path: str = "/metrics", *, token: str | None = None,
             source: str | None = None, user: str | None = None,
             method: str | None = None) -> tuple[int, dict[str, list[str]], str]:
        fd, body_path = tempfile.mkstemp(dir=cls.tmp)
        os.close(fd)
        cmd = ["curl", "-sS", "--cacert", cls.p.ca_file, "-o", body_path, "-D", "-",
               "-w", "\n%{http_code}"]
        if token is not None:
            cmd += ["-H", f"Authorization: Bearer {token}"]
        if source:
            cmd += ["--interface", source]
        if user:
            cmd += ["-u", user]
        if method:
            cmd += ["-X", method]
        cmd.append(cls.base + path)
        res = subprocess.run(cmd, capture_output=True, timeout=60)
        if res.returncode != 0:
            raise AssertionError(f"curl failed ({res.returncode}): {res.stderr.decode()}")
        head, _, code = res.stdout.decode(errors="replace").rpartition("\n")
        hdrs: dict[str, list[str]] = {}
        for line in head.splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                hdrs.setdefault(k.strip().lower(), []).append(v.strip())
        with open(body_path, encoding="utf-8", errors="replace") as f:
            body = f.read()
        os.unlink(body_path)
        return int(code), hdrs, body

    @classmethod
    def get_ticket(cls, user: str, password: str) -> str:
        status, _, body = cls.curl("/auth/ticket", method="POST", user=f"{user}:{password}")
        assert status == 200, (status, body)
        return json.loads(body)["ticket"]

    def assert_metrics(self, status: int, hdrs: dict[str, list[str]], text: str) -> None:
        self.assertEqual(status, 200, text[:500])
        self.assertEqual(hdrs.get("content-type"), [CONTENT_TYPE])
        rc, out, err = promtool_check(text)
        self.assertEqual(rc, 0, f"promtool: {out}{err}")
        self.assertEqual(err.strip(), "", f"promtool complained: {err}")
        self.assertEqual(out.strip(), "", f"promtool linted: {out}")
        fams = families(text)
        doc = documented_families()
        self.assertGreater(len(doc), 20)
        for name in doc:
            self.assertIn(name, fams, f"{name} is documented but not served")
        for name in fams:
            self.assertIn(name, doc, f"{name} is served but not documented")
        # every family says what it is
        for name in fams:
            self.assertRegex(text, rf"(?m)^# HELP {re.escape(name)} \S")
        # the registration gauge counts bob's device
        self.assertRegex(text, r"(?m)^parley_registrations 1$")
        self.assertRegex(text, r'(?m)^parley_build_info\{version="[^"]+",openssl="[^"]+"\} 1$')
        # the TLS connections of this very file are counted, with their version
        self.assertRegex(text, r'(?m)^parley_connections\{transport="tls",tls_version="TLSv1\.[23]"\} [1-9]')
        self.assertRegex(text, r'(?m)^parley_sip_requests_received_total\{method="REGISTER"\} [1-9]')
        self.assertRegex(text, r'(?m)^parley_sip_responses_total\{direction="sent",method="REGISTER",'
                               r'class="2xx"\} [1-9]')
        self.assertRegex(text, r'(?m)^parley_store_write_duration_seconds_bucket\{le="\+Inf"\} \d+$')

    # -- the three ways in ---------------------------------------------------

    def test_address_in_metrics_networks(self):
        self.assert_metrics(*self.curl(source="127.0.0.2"))

    def test_metrics_networks_reloaded(self):
        self.assertEqual(self.curl(source="127.0.0.6")[0], 401)
        self.p.config_set("https.metrics_networks", "127.0.0.2/32, 127.0.0.6")
        try:
            self.assertEqual(self.p.ctl("reload").returncode, 0)
            status, hdrs, text = self.curl(source="127.0.0.6")
            self.assertEqual(status, 200, text[:300])
            self.assertEqual(hdrs.get("content-type"), [CONTENT_TYPE])
        finally:
            self.p.config_set("https.metrics_networks", "127.0.0.2/32")
            self.assertEqual(self.p.ctl("reload").returncode, 0)
        self.assertEqual(self.curl(source="127.0.0.6")[0], 401)
        self.assertEqual(self.curl(source="127.0.0.2")[0], 200)

    def test_metrics_token(self):
        self.assert_metrics(*self.curl(token=self.token))

    def test_admin_ticket(self):
        self.assert_metrics(*self.curl(token=self.admin_ticket))

    def test_http_answers_counted_by_class(self):
        self.curl("/no/such/path", token=self.admin_ticket)
        _, _, text = self.curl(token=self.token)
        self.assertRegex(text, r'(?m)^parley_http_requests_total\{class="4xx"\} [1-9]')
        self.assertRegex(text, r'(?m)^parley_http_requests_total\{class="2xx"\} [1-9]')

    def test_refused_handshakes_counted_by_reason(self):
        def count(text: str, reason: str) -> int:
            m = re.search(rf'(?m)^parley_tls_handshake_failures_total\{{reason="{reason}"\}} (\d+)$',
                          text)
            assert m, text
            return int(m.group(1))

        before = self.curl(token=self.token)[2]
        # plain HTTP to the HTTPS port: not TLS
        with socket.create_connection(("127.0.0.1", self.p.https_port), timeout=5) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                self.assertFalse(s.recv(4096).startswith(b"HTTP"))  # no HTTP answer
            except ConnectionResetError:
                pass
        # a TLS 1.1 client: refused with an alert (TLS 1.2+ only)
        subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{self.p.https_port}",
                        "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"], input=b"",
                       capture_output=True, timeout=30)
        after = self.curl(token=self.token)[2]
        self.assertEqual(count(after, "protocol"), count(before, "protocol") + 1, after)
        self.assertGreaterEqual(count(after, "alert") + count(after, "protocol"),
                                count(before, "alert") + count(before, "protocol") + 2)

    # -- refusals ------------------------------------------------------------

    def test_no_credentials_is_401_with_bearer_challenge(self):
        status, hdrs, body = self.curl()
        self.assertEqual(status, 401)
        self.assertTrue(any(v.startswith("Bearer ") for v in hdrs.get("www-authenticate", [])),
                        hdrs)
        self.assertNotIn("parley_", body)

    def test_outside_metrics_networks_is_401(self):
        # 127.0.0.1 is not 127.0.0.2/32
        status, _, body = self.curl(source="127.0.0.1")
        self.assertEqual(status, 401)
        self.assertNotIn("parley_", body)

    def test_non_admin_ticket_is_403(self):
        status, _, body = self.curl(token=self.user_ticket)
        self.assertEqual(status, 403)
        self.assertNotIn("parley_", body)
        # and the same user's ticket reads what it may (the ticket is good)
        status, _, _ = self.curl("/turn/credentials", token=self.user_ticket)
        self.assertEqual(status, 200)

    def test_wrong_and_garbage_tokens_are_401(self):
        wrong = "pmt_" + "A" * 43
        for token in (wrong, self.token[:-1], "not-a-ticket"):
            status, hdrs, _ = self.curl(token=token, source="127.0.0.4")
            self.assertEqual(status, 401, token)
            self.assertTrue(any("invalid_token" in v for v in hdrs.get("www-authenticate", [])))

    def test_replaced_and_revoked_tokens_are_401(self):
        cls = type(self)
        old = cls.token
        new = cls.new_token()
        try:
            self.assertEqual(self.curl(token=old, source="127.0.0.5")[0], 401)
            self.assertEqual(self.curl(token=new, source="127.0.0.5")[0], 200)
            res = self.p.ctl("https", "metrics-token", "--revoke", json=True)
            self.assertEqual(res.returncode, 0, res)
            self.assertTrue(res.stdout["revoked"])
            self.assertEqual(self.curl(token=new, source="127.0.0.5")[0], 401)
        finally:
            cls.token = cls.new_token()
        self.assertEqual(self.curl(token=cls.token)[0], 200)

    def test_wrong_tokens_are_throttled_like_logins(self):
        src = "127.0.0.3"
        for _ in range(MAX_FAILURES):
            self.assertEqual(self.curl(token="pmt_" + "B" * 43, source=src)[0], 401)
        # blocked now: even the right token is refused from there, unchecked
        status, hdrs, _ = self.curl(token=self.token, source=src)
        self.assertEqual(status, 429)
        self.assertIn("retry-after", hdrs)
        # other sources are not affected
        self.assertEqual(self.curl(token=self.token)[0], 200)

    def test_no_token_or_ticket_in_the_log(self):
        wrong = "pmt_" + "C" * 43
        self.assertEqual(self.curl(token=wrong, source="127.0.0.7")[0], 401)
        self.assertEqual(self.curl(token=self.token)[0], 200)
        self.assertEqual(self.curl(token=self.admin_ticket)[0], 200)
        self.assertEqual(self.curl(token=self.user_ticket)[0], 403)
        with open(self.p.log_path, encoding="utf-8", errors="replace") as f:
            log = f.read()
        self.assertIn("http.request", log)  # requests are logged, credentials are not
        for secret in (wrong, self.token, self.admin_ticket, self.user_ticket, "pmt_"):
            self.assertNotIn(secret, log)

    # -- parleyctl -----------------------------------------------------------

    def test_parleyctl_metrics_same_families(self):
        _, _, http_text = self.curl(token=self.token)
        res = self.p.ctl("metrics")
        self.assertEqual(res.returncode, 0, res)
        self.assertEqual(families(res.stdout), families(http_text))
        rc, out, err = promtool_check(res.stdout)
        self.assertEqual((rc, out.strip(), err.strip()), (0, "", ""))
        self.assertRegex(res.stdout, r"(?m)^parley_registrations 1$")
        js = self.p.ctl("metrics", json=True)
        self.assertEqual(js.returncode, 0, js)
        self.assertEqual(families(js.stdout["text"]), families(http_text))

    def test_user_list_shows_admin(self):
        res = self.p.ctl("user", "list", json=True)
        self.assertEqual(res.returncode, 0, res)
        admins = {u["user"]: u["admin"] for u in res.stdout["users"]}
        self.assertEqual(admins, {"alice": True, "bob": False})
        res = self.p.ctl("user", "list")
        self.assertRegex(res.stdout, r"sip:alice@\S+.*\(administrator\)")
        self.assertNotIn("administrator", [l for l in res.stdout.splitlines() if "bob" in l][0])


if __name__ == "__main__":
    unittest.main()
