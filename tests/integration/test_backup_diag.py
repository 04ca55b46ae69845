#!/usr/bin/python3
"""parleyctl diag, backup and restore (the operations issue, parts 7 and 8).

- diag passes on a healthy deployment (exit 0; a partner reached over
  mutual TLS with parleyd's own context), and fails (exit 1, the check
  named) for a server certificate made expired, a private key made 0644,
  and a trunk whose gateway does not answer; --json prints the array.
- A backup taken while a thread keeps registering restores into a new
  directory whose parleyd (new ports) serves the same users (REGISTER with
  an existing password succeeds, a wrong one does not) and the same meeting
  file (byte-identical download); the archive is 0600.
- restore refuses a tampered archive (one byte flipped: a digest mismatch,
  nothing left behind) and a directory that is not empty.
- Stores of every earlier schema (tests/fixtures/store) put in a
  deployment: diag warns of the older schema, `parleyctl user list`
  migrates and lists the users, and parleyd lets them REGISTER with the
  passwords they were given by the old parleyctl.
"""
from __future__ import annotations

import datetime
import os
import shutil
import stat
import subprocess
import tempfile
import threading
import time
import unittest

import sipclient
from harness import (READY_EVENT, Parley, Peer, cmd_daemon, free_port, free_ports,
                     parleyctl_path, parleyd_path)


def ctl(*args: str, conf: str | None = None, input: str | None = None
        ) -> subprocess.CompletedProcess:
    cmd = [parleyctl_path()] + (["-c", conf] if conf else []) + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=120)


class TestBackupDiag(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="parley-backup-test-")
        cls.p = Parley(name="backup", users={"alice": "alice-pw", "bob": "bob-pw"},
                       config={"https.content_max_file": 300000})
        p = cls.p
        assert p.ctl("conference", "create", "m1", "--organizer", "alice",
                     "--allow", "bob").returncode == 0
        # a partner: this server itself on its mutual-TLS port, under another
        # domain name; its certificate names 127.0.0.1, as --server says
        assert p.ctl("partner", "add", "partner.test", "--server",
                     f"127.0.0.1:{p.mtls_port}").returncode == 0
        p.start()
        cls.content = os.urandom(100000) + b"meeting notes"
        path = os.path.join(cls.tmp, "notes.bin")
        with open(path, "wb") as f:
            f.write(cls.content)
        # an upload larger than https.max_body_size needs a web ticket
        out = os.path.join(cls.tmp, "ticket.json")
        code = cls.curl(p.https_port, p.ca_file, "/auth/ticket", "alice:alice-pw", "-X", "POST",
                        out=out)
        assert code == "200", code
        import json
        with open(out) as f:
            ticket = cls.ticket = json.load(f)["ticket"]
        code = cls.curl(p.https_port, p.ca_file, "/content/m1/notes.bin", None, "-H",
                        f"Authorization: Bearer {ticket}", "-T", path)
        assert code in ("200", "201", "204"), code

    @classmethod
    def tearDownClass(cls):
        cls.p.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @staticmethod
    def curl(port: int, ca: str, path: str, user: str | None, *args: str,
             out: str = "/dev/null") -> str:
        res = subprocess.run(["curl", "-sS", "--cacert", ca, *(["-u", user] if user else []),
                              "-o", out,
                              "-w", "%{http_code}", *args, f"https://127.0.0.1:{port}{path}"],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        return res.stdout

    def diag(self, conf: str | None = None) -> tuple[int, list[dict]]:
        res = ctl("--json", "diag", conf=conf or self.p.conf)
        import json
        return res.returncode, json.loads(res.stdout)

    def failed(self, checks: list[dict]) -> list[dict]:
        return [c for c in checks if c["status"] == "fail"]

    # -- diag ----------------------------------------------------------------

    def test_diag_healthy(self):
        rc, checks = self.diag()
        self.assertEqual(self.failed(checks), [])
        self.assertEqual(rc, 0)
        by = {}
        for c in checks:
            self.assertEqual(set(c), {"check", "status", "detail", "hint"})
            self.assertIn(c["status"], ("ok", "warn", "fail"))
            by.setdefault(c["check"], []).append(c)
        for name in ("parleyd", "store", "certificate", "certificate expiry", "permissions",
                     "state directory", "clock", "partner partner.test"):
            self.assertIn(name, by)
            self.assertTrue(all(c["status"] in ("ok", "warn") for c in by[name]), by[name])
        self.assertEqual(by["partner partner.test"][0]["status"], "ok")
        self.assertIn("integrity ok", by["store"][0]["detail"])
        # the text form: one line per check, and the summary
        res = ctl("diag", conf=self.p.conf)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertRegex(res.stdout, r"(?m)^ok +store ")
        self.assertRegex(res.stdout, r"\d+ checks, 0 failed")

    def test_diag_key_readable_by_others(self):
        key = os.path.join(self.p.dir, "pki", "server.key")
        os.chmod(key, 0o644)
        try:
            rc, checks = self.diag()
        finally:
            os.chmod(key, 0o600)
        self.assertEqual(rc, 1)
        bad = [c for c in self.failed(checks) if c["check"] == "permissions"]
        self.assertTrue(bad, checks)
        self.assertIn(key, bad[0]["detail"])
        self.assertIn("0644", bad[0]["detail"])
        self.assertIn("chmod 600", bad[0]["hint"])
        rc, _ = self.diag()
        self.assertEqual(rc, 0)

    def test_diag_expired_certificate(self):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        pki = os.path.join(self.p.dir, "pki")
        cert_path = os.path.join(pki, "server.pem")
        with open(cert_path, "rb") as f:
            original = f.read()
        with open(os.path.join(pki, "ca.pem"), "rb") as f:
            ca = x509.load_pem_x509_certificate(f.read())
        with open(os.path.join(pki, "ca.key"), "rb") as f:
            ca_key = serialization.load_pem_private_key(f.read(), None)
        with open(os.path.join(pki, "server.key"), "rb") as f:
            key = serialization.load_pem_private_key(f.read(), None)
        now = datetime.datetime.now(datetime.timezone.utc)
        old = x509.load_pem_x509_certificate(original)
        expired = (x509.CertificateBuilder()
                   .subject_name(old.subject).issuer_name(ca.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=60))
                   .not_valid_after(now - datetime.timedelta(days=1))
                   .add_extension(old.extensions.get_extension_for_class(
                       x509.SubjectAlternativeName).value, critical=False)
                   .sign(ca_key, hashes.SHA256()))
        with open(cert_path, "wb") as f:
            f.write(expired.public_bytes(serialization.Encoding.PEM))
        try:
            rc, checks = self.diag()
        finally:
            with open(cert_path, "wb") as f:
                f.write(original)
        self.assertEqual(rc, 1)
        bad = [c for c in self.failed(checks) if c["check"] == "certificate expiry"]
        self.assertTrue(bad, checks)
        self.assertIn("expired", bad[0]["detail"])
        self.assertIn("cert request", bad[0]["hint"])
        rc, _ = self.diag()
        self.assertEqual(rc, 0)

    def test_diag_unreachable_trunk(self):
        port = free_port("tcp")  # nothing listens there
        self.assertEqual(self.p.ctl("trunk", "add", "deadgw", "--gateway", f"127.0.0.1:{port}",
                                    "--transport", "tls", "--srtp-mode",
                                    "required").returncode, 0)
        try:
            rc, checks = self.diag()
        finally:
            self.p.ctl("trunk", "remove", "deadgw")
        self.assertEqual(rc, 1)
        bad = [c for c in self.failed(checks) if c["check"] == "trunk deadgw"]
        self.assertTrue(bad, checks)
        self.assertIn("connect", bad[0]["detail"])

    def test_diag_trickling_trunk_bounded(self):
        # a gateway that sends a byte now and then must not hold diag past
        # its deadline (a timeout per read let it)
        import socket
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(4)
        stop = threading.Event()

        def trickle():
            while not stop.is_set():
                srv.settimeout(0.5)
                try:
                    c, _ = srv.accept()
                except OSError:
                    continue
                try:
                    c.recv(4096)
                    c.sendall(b"\x16\x03\x03\x40\x00")
                    while not stop.wait(0.5):
                        c.sendall(b"\x02")
                except OSError:
                    pass
                finally:
                    c.close()

        t = threading.Thread(target=trickle, daemon=True)
        t.start()
        port = srv.getsockname()[1]
        self.assertEqual(self.p.ctl("trunk", "add", "slowgw", "--gateway", f"127.0.0.1:{port}",
                                    "--transport", "tls", "--srtp-mode",
                                    "required").returncode, 0)
        try:
            start = time.monotonic()
            res = subprocess.run([parleyctl_path(), "-c", self.p.conf, "--json", "diag"],
                                 capture_output=True, text=True, timeout=60)
            took = time.monotonic() - start
        finally:
            self.p.ctl("trunk", "remove", "slowgw")
            stop.set()
            t.join(5)
            srv.close()
        import json
        bad = [c for c in json.loads(res.stdout) if c["check"] == "trunk slowgw"]
        self.assertEqual(bad[0]["status"], "fail", bad)
        self.assertLess(took, 40)

    def test_diag_keeps_rows_with_non_utf8_paths(self):
        # a path that is not UTF-8 made json_pack fail and its row vanish,
        # the failing "parleyd" one among them (exit 1, no failure shown)
        exe = os.fsencode(parleyctl_path())
        state = os.path.join(os.fsencode(self.tmp), b"state\xff")
        res = subprocess.run([exe, b"init", b"--dir", state, b"--domain", b"example.test"],
                             capture_output=True, timeout=120)
        self.assertEqual(res.returncode, 0, res.stderr)
        res = subprocess.run([exe, b"-c", os.path.join(state, b"parley.conf"), b"--json",
                              b"diag"], capture_output=True, timeout=120)
        import json
        checks = {c["check"]: c for c in json.loads(res.stdout)}
        for name in ("parleyd", "store", "permissions", "state directory", "certificate"):
            self.assertIn(name, checks)
        self.assertEqual(res.returncode, 1)
        self.assertEqual(checks["parleyd"]["status"], "fail")
        self.assertIn("state?", checks["store"]["detail"])

    # -- backup and restore ----------------------------------------------------

    def register_loop(self, stop: threading.Event, counts: list[int]) -> None:
        c = self.p.client("alice")
        try:
            while not stop.is_set():
                r = c.register(expires=300)
                counts[0 if r.status == 200 else 1] += 1
        finally:
            c.close()

    def take_backup(self) -> str:
        archive = os.path.join(self.tmp, f"backup-{time.monotonic_ns()}.tar")
        stop, counts = threading.Event(), [0, 0]
        t = threading.Thread(target=self.register_loop, args=(stop, counts))
        t.start()
        try:
            time.sleep(0.5)
            res = ctl("backup", archive, conf=self.p.conf)
            time.sleep(0.3)
        finally:
            stop.set()
            t.join(30)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertGreater(counts[0], 0)
        self.assertEqual(counts[1], 0)
        self.assertEqual(stat.S_IMODE(os.stat(archive).st_mode), 0o600)
        return archive

    def test_backup_restore_serves_same_users_and_files(self):
        archive = self.take_backup()
        dest = os.path.join(self.tmp, "restored")
        res = ctl("restore", archive, "--dir", dest)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertEqual(stat.S_IMODE(os.stat(dest).st_mode), 0o700)
        for name in ("parley.db", "relay.secrets", "pki/server.key", "pki/ca.key",
                     "https-ticket.keys", "content.key"):
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(dest, name)).st_mode), 0o600,
                             name)
        for name in ("parleyd.lock", "parleyd.sock", "parley.db-wal"):
            self.assertFalse(os.path.exists(os.path.join(dest, name)), name)

        conf = os.path.join(dest, "parley.conf")
        tls_port, mtls_port, relay_tls, https_port = (free_port("tcp") for _ in range(4))
        relay_port = free_port("both")
        media = free_ports(16, "udp", consecutive=True)
        for k, v in (("sip.tls_listen", f"127.0.0.1:{tls_port}"),
                     ("sip.mtls_listen", f"127.0.0.1:{mtls_port}"),
                     ("relay.listen", f"127.0.0.1:{relay_port}"),
                     ("relay.tls_listen", f"127.0.0.1:{relay_tls}"),
                     ("https.listen", f"127.0.0.1:{https_port}"),
                     ("media.port_range", f"{media[0]}-{media[-1]}")):
            r = ctl("config", "set", k, v, conf=conf)
            self.assertEqual(r.returncode, 0, r.stderr)
        d = Peer(cmd_daemon(parleyd_path(), conf, False), name="restored")
        try:
            d.wait_output(READY_EVENT, timeout=20)
            ca = os.path.join(dest, "pki", "ca.pem")
            for user, pw in (("alice", "alice-pw"), ("bob", "bob-pw")):
                conn = sipclient.SipConnection("127.0.0.1", tls_port, cafile=ca,
                                               server_hostname=self.p.domain)
                c = sipclient.SipClient(conn, user=user, domain=self.p.domain, password=pw)
                try:
                    self.assertEqual(c.register(expires=300).status, 200, user)
                    self.assertNotEqual(c.register(password="wrong", expires=300).status, 200)
                finally:
                    c.close()
            got = os.path.join(self.tmp, "got.bin")
            # alice's ticket from the first server: the restored ticket keys verify it
            code = self.curl(https_port, ca, "/content/m1/notes.bin", None, "-H",
                             f"Authorization: Bearer {self.ticket}", out=got)
            self.assertEqual(code, "200")
            with open(got, "rb") as f:
                self.assertEqual(f.read(), self.content)
            # and diag sees a sound restored store
            rc, checks = self.diag(conf)
            store = [c for c in checks if c["check"] == "store"]
            self.assertEqual(store[0]["status"], "ok", store)
        finally:
            self.assertEqual(d.stop(), 0, d.tail())
        for marker in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
            self.assertNotIn(marker, d.output)

    def test_restore_refuses_tampered_archive(self):
        archive = self.take_backup()
        bad = archive + ".bad"
        with open(archive, "rb") as f:
            data = bytearray(f.read())
        # the first member is the store: header, then its pages
        self.assertEqual(data[:9], b"parley.db")
        data[512 + 3000] ^= 0x01
        with open(bad, "wb") as f:
            f.write(data)
        dest = os.path.join(self.tmp, "tampered")
        res = ctl("restore", bad, "--dir", dest)
        self.assertEqual(res.returncode, 1)
        self.assertIn("parley.db: SHA-256 mismatch", res.stderr)
        self.assertFalse(os.path.exists(dest))
        # cut short
        with open(bad, "wb") as f:
            f.write(data[:len(data) // 2])
        res = ctl("restore", bad, "--dir", dest)
        self.assertEqual(res.returncode, 1)
        self.assertFalse(os.path.exists(dest))

    def test_restore_refuses_non_empty_directory(self):
        archive = self.take_backup()
        dest = os.path.join(self.tmp, "occupied")
        os.mkdir(dest)
        with open(os.path.join(dest, "keep.txt"), "w") as f:
            f.write("mine")
        res = ctl("restore", archive, "--dir", dest)
        self.assertEqual(res.returncode, 1)
        self.assertIn("not empty", res.stderr)
        self.assertEqual(os.listdir(dest), ["keep.txt"])

    def test_restore_refuses_members_outside_dir_and_links(self):
        import io
        import tarfile

        def archive(name: str, members: list[tarfile.TarInfo]) -> str:
            path = os.path.join(self.tmp, name)
            with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as t:
                for m in members:
                    t.addfile(m, io.BytesIO(b"x" * m.size) if m.isfile() else None)
            return path

        def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
            m = tarfile.TarInfo(name)
            m.type, m.linkname, m.size = kind, link, 1 if kind == tarfile.REGTYPE else 0
            return m

        outside = os.path.join(self.tmp, "escaped")
        for name, members, why in (
                ("up.tar", [member("../escaped")], "outside DIR"),
                ("abs.tar", [member(outside)], "outside DIR"),
                ("link.tar", [member("pki", tarfile.SYMTYPE, "/etc")], "type '2'"),
                ("nomanifest.tar", [member("parley.conf")], "not a Parley backup")):
            dest = os.path.join(self.tmp, "evil-" + name)
            res = ctl("restore", archive(name, members), "--dir", dest)
            self.assertEqual(res.returncode, 1, name)
            self.assertIn(why, res.stderr, name)
            self.assertFalse(os.path.exists(dest), name)
            self.assertFalse(os.path.exists(outside), name)

    def test_backup_of_odd_names_restores(self):
        # a name JSON cannot hold went into the archive but not the manifest,
        # so that no restore of it could ever pass
        odd = [os.path.join(os.fsencode(self.p.dir), n) for n in (b"log\xff", b"a\x1b[2Jb")]
        for n in odd:
            with open(n, "wb") as f:
                f.write(b"x")
        try:
            archive = self.take_backup()
        finally:
            for n in odd:
                os.unlink(n)
        res = ctl("restore", archive, "--dir", os.path.join(self.tmp, "odd"))
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)

    def test_backup_refuses_a_directory_others_write(self):
        # others could swap their file in for the temporary one before the rename
        shared = os.path.join(self.tmp, "shared")
        os.mkdir(shared)
        os.chmod(shared, 0o777)
        res = ctl("backup", os.path.join(shared, "b.tar"), conf=self.p.conf)
        self.assertEqual(res.returncode, 1, res.stdout)
        self.assertIn("others may write", res.stderr)
        self.assertEqual(os.listdir(shared), [])
        os.chmod(shared, 0o1777)  # as /tmp: the sticky bit keeps our files ours
        res = ctl("backup", os.path.join(shared, "b.tar"), conf=self.p.conf)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(os.listdir(shared), ["b.tar"])

    def test_backup_never_replaces(self):
        path = os.path.join(self.tmp, "exists.tar")
        with open(path, "w") as f:
            f.write("x")
        res = ctl("backup", path, conf=self.p.conf)
        self.assertEqual(res.returncode, 1)
        with open(path) as f:
            self.assertEqual(f.read(), "x")


# -- archives made by hand: what a hostile archive may hold -------------------

def _header(name: bytes, typ: bytes, size: int) -> bytes:
    h = bytearray(512)
    h[0:len(name[:100])] = name[:100]
    h[100:108] = b"0000600\0"
    h[108:124] = b"0000000\0" * 2
    h[124:136] = b"%011o\0" % size
    h[136:148] = b"00000000000\0"
    h[148:156] = b" " * 8
    h[156:157] = typ
    h[257:265] = b"ustar\x0000"
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def _member(name: bytes, data: bytes = b"", typ: bytes = b"0") -> bytes:
    return _header(name, typ, len(data)) + data + b"\0" * (-len(data) % 512)


def _manifest(files: list[tuple[str, bytes | None]], **extra) -> bytes:
    import hashlib
    import json
    out = [{"path": p, "type": "dir", "mode": "0700"} if d is None else
           {"path": p, "type": "file", "mode": "0600", "size": len(d),
            "sha256": hashlib.sha256(d).hexdigest()} for p, d in files]
    doc = {"format": "parley-backup 1", "created": "2026-12-08T00:00:00Z", "source": "/x",
           "domain": "example.test", "schema_version": 7, "files": out}
    doc.update(extra)
    return _member(b"parley-backup.manifest", json.dumps(doc).encode())


class TestHostileArchives(unittest.TestCase):
    """Archives an attacker could hand an administrator; no server needed.
    Each has a manifest that matches it, as a forger would make it."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="parley-hostile-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def restore(self, data: bytes, dest: str | None = None) -> subprocess.CompletedProcess:
        path = os.path.join(self.tmp, f"a-{time.monotonic_ns()}.tar")
        with open(path, "wb") as f:
            f.write(data + b"\0" * 1024)
        return ctl("restore", path, "--dir", dest or os.path.join(self.tmp, "dest"))

    def test_forged_manifest_restores(self):
        # the manifest detects damage, not a forger: a consistent archive passes
        files = [("parley.conf", b"[server]\ndomain = evil.test\n")]
        res = self.restore(_member(b"parley.conf", files[0][1]) + _manifest(files))
        self.assertEqual(res.returncode, 0, res.stderr)

    def test_directory_member_with_data(self):
        # GNU tar skips a directory's data; parleyctl read it as members
        hidden = _member(b"hidden.key", b"planted")
        files = [("d", None), ("hidden.key", b"planted")]
        data = _header(b"d/", b"5", len(hidden)) + hidden + _manifest(files)
        res = self.restore(data)
        self.assertEqual(res.returncode, 1, res.stdout)
        self.assertIn("directory member with data", res.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "dest")))

    def test_pax_lengths(self):
        for rec in (b"-1 path=x\n", b" 12 path=ab\n", b"+12 path=ab\n",
                    b"11 path=ab\n" + b"18446744073709551615 path=x\n"):
            data = _member(b"PaxHeader", rec, b"x") + _member(b"f", b"1") + \
                _manifest([("f", b"1")])
            res = self.restore(data)
            self.assertEqual(res.returncode, 1, rec)
            self.assertIn("damaged pax header", res.stderr, rec)

    def test_pax_keys_that_change_the_data(self):
        # tar takes a pax size over the header's: restore took the header's
        hidden = _member(b"hidden.key", b"planted")
        files = [("f", hidden), ("hidden.key", b"planted")]
        for rec in (b"9 size=0\n", b"20 GNU.sparse.size=1\n", b"8 noequ\n"):
            data = _member(b"PaxHeader", rec, b"x") + _member(b"f", hidden) + hidden + \
                _manifest(files)
            res = self.restore(data)
            self.assertEqual(res.returncode, 1, rec)
            self.assertRegex(res.stderr, r"pax record|damaged pax header", rec)
        # what only describes a member is let through
        data = _member(b"PaxHeader", b"20 mtime=1700000000\n", b"x") + _member(b"f", b"1") + \
            _manifest([("f", b"1")])
        self.assertEqual(self.restore(data).returncode, 0)

    def test_control_characters_not_printed(self):
        name = "x\x1b]0;pwned\x07\x1b[2J"
        files = [(name, b"1")]
        res = self.restore(_member(name.encode(), b"1") + _manifest(files))
        self.assertEqual(res.returncode, 1)
        self.assertNotIn("\x1b", res.stderr)
        self.assertIn("\\x1b", res.stderr)
        files = [("parley.conf", b"1")]
        res = self.restore(_member(b"parley.conf", b"1") +
                           _manifest(files, source="\x1b[2J/x", domain="\u009b2Jd"))
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertNotIn("\x1b", res.stdout)
        self.assertNotIn("\u009b", res.stdout)

    def test_long_name_of_c1_controls(self):
        # escaping one of these takes 8 bytes: the message buffer must not
        # overflow (the ASan build would abort)
        name = b"a" + b"\xc2\x9b" * 1500
        rec = b" path=" + name + b"\n"
        rec = str(len(rec) + 4).encode() + rec
        res = self.restore(_member(b"PaxHeader", rec, b"x") + _member(b"f", b"1"))
        self.assertEqual(res.returncode, 1, res.stdout)
        self.assertIn("control characters", res.stderr)
        self.assertNotIn("Sanitizer", res.stderr)

    def test_directory_of_another_user(self):
        # its owner could swap in a link while restore writes
        dest = os.path.join(self.tmp, "theirs")
        os.mkdir(dest, 0o777)
        os.chmod(dest, 0o777)
        if os.geteuid() == 0:
            os.chown(dest, 65534, 65534)
        else:
            self.skipTest("needs root to make a directory of another user")
        files = [("parley.conf", b"1")]
        res = self.restore(_member(b"parley.conf", b"1") + _manifest(files), dest)
        self.assertEqual(res.returncode, 1, res.stdout)
        self.assertIn("not to the user restoring", res.stderr)
        self.assertEqual(os.listdir(dest), [])
        self.assertEqual(stat.S_IMODE(os.stat(dest).st_mode), 0o777)

    def test_non_empty_directory_keeps_its_mode(self):
        dest = os.path.join(self.tmp, "mine")
        os.mkdir(dest)
        os.chmod(dest, 0o755)
        open(os.path.join(dest, "keep"), "w").close()
        files = [("parley.conf", b"1")]
        res = self.restore(_member(b"parley.conf", b"1") + _manifest(files), dest)
        self.assertEqual(res.returncode, 1)
        self.assertIn("not empty", res.stderr)
        self.assertEqual(stat.S_IMODE(os.stat(dest).st_mode), 0o755)


FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "store")


class TestOldStores(unittest.TestCase):
    def test_every_schema_migrates_and_authenticates(self):
        import json
        versions = sorted(int(n[len("schema-"):-len(".db")]) for n in os.listdir(FIXTURES)
                          if n.startswith("schema-") and n.endswith(".db"))
        self.assertEqual(versions[:6], [1, 2, 3, 4, 5, 6])
        for v in versions:
            with self.subTest(schema=v), Parley(name=f"schema{v}") as p:
                db = os.path.join(p.dir, "parley.db")
                for suffix in ("", "-wal", "-shm"):
                    if os.path.exists(db + suffix):
                        os.unlink(db + suffix)
                shutil.copyfile(os.path.join(FIXTURES, f"schema-{v}.db"), db)
                os.chmod(db, 0o600)
                res = ctl("--json", "diag", conf=p.conf)
                store = [c for c in json.loads(res.stdout) if c["check"] == "store"][0]
                self.assertIn(f"schema {v}", store["detail"])
                older = "this build's is" in store["detail"]
                self.assertEqual(store["status"], "warn" if older else "ok", store)
                res = ctl("user", "list", conf=p.conf)
                self.assertEqual(res.returncode, 0, res.stderr)
                self.assertIn("sip:alice@example.test", res.stdout)
                self.assertIn("sip:bob@example.test", res.stdout)
                res = ctl("--json", "diag", conf=p.conf)
                store = [c for c in json.loads(res.stdout) if c["check"] == "store"][0]
                self.assertEqual(store["status"], "ok", store)
                p.start()
                for user, pw in (("alice", "alice-secret-1"), ("bob", "bob-secret-2")):
                    c = p.client(user, pw)
                    try:
                        self.assertEqual(c.register(expires=300).status, 200, (v, user))
                    finally:
                        c.close()


if __name__ == "__main__":
    unittest.main()
