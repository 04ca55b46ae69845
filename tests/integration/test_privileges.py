#!/usr/bin/python3
"""server.user and server.confine (the operations issue, parts 1 and 2).

Started as root with server.user = nobody, parleyd binds a port under 1024,
gives its state directory to nobody (files 0600, directories 0700), becomes
nobody with no capability left, confines itself (Landlock, seccomp) and
serves: TLS on the low port, REGISTER, a reload (SIGHUP). parleyctl run as
root acts as nobody, so the users, keys and secrets it writes stay readable
by the daemon. Refused: an unknown server.user, and a server.user that is
neither root nor the user parleyd runs as.

Needs root (skipped otherwise). Uses the system's `nobody` (and `daemon`
as "another user"); creates no user.
"""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import ssl
import stat
import subprocess
import tempfile
import unittest

from harness import Parley, free_port, parleyctl_path, parleyd_path, spawn_peer

USER = "nobody"


def low_port() -> int:
    """A free TCP port under 1024 on 127.0.0.1 (root binds it here)."""
    for port in range(980, 700, -1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise unittest.SkipTest("no free TCP port under 1024")


def status_fields(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


@unittest.skipUnless(os.geteuid() == 0, "needs root: parleyd drops from root to server.user")
class TestPrivileges(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pw = pwd.getpwnam(USER)
        cls.https = low_port()
        cls.p = Parley(name="privs", users={"alice": "alice-pw"}, user=USER,
                       config={"https.listen": f"127.0.0.1:{cls.https}"})
        cls.p.start()

    @classmethod
    def tearDownClass(cls):
        code = cls.p.stop()
        assert code == 0, f"parleyd exited {code}: {cls.p.log_tail()}"
        reports = cls.p.sanitizer_reports()
        cls.p.close()
        assert not reports, "\n".join(reports)

    def assert_state_owned(self):
        """Everything under the state directory is the user's, private
        (a certificate or request parleyctl writes later may be readable)."""
        for root, dirs, files in os.walk(self.p.state_dir):
            for name in [root] + [os.path.join(root, f) for f in files]:
                st = os.lstat(name)
                if stat.S_ISLNK(st.st_mode):
                    continue
                self.assertEqual((st.st_uid, st.st_gid), (self.pw.pw_uid, self.pw.pw_gid), name)
                if stat.S_ISDIR(st.st_mode):
                    self.assertEqual(stat.S_IMODE(st.st_mode), 0o700, name)
                elif stat.S_ISREG(st.st_mode):
                    public = name.endswith((".pem", ".csr"))
                    self.assertEqual(stat.S_IMODE(st.st_mode) & (0o022 if public else 0o077), 0,
                                     name)

    def test_runs_as_the_user_without_capabilities(self):
        f = status_fields(self.p.pid)
        uid, gid = str(self.pw.pw_uid), str(self.pw.pw_gid)
        self.assertEqual(f["Uid"].split(), [uid] * 4)
        self.assertEqual(f["Gid"].split(), [gid] * 4)
        self.assertEqual(f["Groups"].split(), [gid])
        for cap in ("CapInh", "CapPrm", "CapEff", "CapAmb", "CapBnd"):
            self.assertEqual(int(f[cap], 16), 0, cap)
        self.assertEqual(f["NoNewPrivs"], "1")
        self.assertEqual(f["Seccomp"], "2")  # filter mode
        # every thread too
        for tid in os.listdir(f"/proc/{self.p.pid}/task"):
            with open(f"/proc/{self.p.pid}/task/{tid}/status") as fh:
                t = dict(l.rstrip("\n").split(":\t", 1) for l in fh if ":\t" in l)
            self.assertEqual(t["Uid"].split(), [uid] * 4, tid)
            self.assertEqual(int(t["CapEff"], 16), 0, tid)
            self.assertEqual(t["Seccomp"], "2", tid)
        recs = self.p.find_log("server.privileges_dropped", since=0)
        self.assertEqual(len(recs), 1, self.p.log_tail())
        rec = recs[0]
        self.assertEqual((rec["user"], rec["uid"], rec["gid"]), (USER, uid, gid))
        recs = self.p.find_log("server.confined", since=0)
        self.assertEqual(len(recs), 1, self.p.log_tail())
        self.assertEqual(recs[0]["seccomp"], "execve denied")
        # before any other thread: each one started afterwards inherits Landlock
        self.assertEqual(recs[0]["threads"], "1")
        if recs[0]["landlock_abi"] == "0":  # a kernel without Landlock says so
            self.assertTrue(self.p.find_log("server.confine_degraded", since=0))

    def test_low_port_serves_tls(self):
        ctx = ssl.create_default_context(cafile=self.p.ca_file)
        with socket.create_connection(("127.0.0.1", self.https), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname=self.p.domain) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: " + self.p.domain.encode() +
                          b"\r\nConnection: close\r\n\r\n")
                self.assertTrue(s.recv(100).startswith(b"HTTP/1.1 "))

    def test_state_directory_is_the_users(self):
        self.assert_state_owned()

    def test_register(self):
        with self.p.client("alice") as c:
            self.assertEqual(c.register().status, 200)

    def test_ctl_as_root_writes_what_the_daemon_reads(self):
        res = self.p.ctl("user", "add", "bob", "--password-stdin", input="bob-pw\n")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.p.users["bob"] = "bob-pw"
        for args in (("https", "rotate-key"), ("relay", "rotate-secret"), ("cert", "request")):
            res = self.p.ctl(*args)
            self.assertEqual(res.returncode, 0, f"{args}: {res.stderr}")
        # config set stays root and keeps the file's owner and mode
        res = self.p.ctl("config", "set", "log.level", "info")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assert_state_owned()
        mark = self.p.reload()
        self.p.wait_log("config.reloaded", since=mark)
        self.p.assert_no_log("config.reload_failed", since=mark)
        self.p.wait_log("relay.secrets_loaded", since=mark)
        with self.p.client("bob") as c:
            self.assertEqual(c.register().status, 200)

    def test_reload_reads_certificates(self):
        mark = self.p.reload()
        self.p.wait_log("config.reloaded", since=mark)
        self.p.assert_no_log("config.reload_failed", since=mark)
        with self.p.client("alice") as c:
            self.assertEqual(c.options().status, 200)


@unittest.skipUnless(os.geteuid() == 0, "needs root to run parleyd as another user")
class TestRefusals(unittest.TestCase):
    def refused(self, p: Parley, user: int | None, *must_contain: str) -> None:
        kw = {}
        if user is not None:
            kw = {"user": user, "group": user, "extra_groups": []}
        res = subprocess.run([p.parleyd, "-c", p.conf], capture_output=True, timeout=30, **kw)
        err = res.stderr.decode()
        self.assertEqual(res.returncode, 1, err)
        lines = [l for l in err.splitlines() if "event=server.start_failed" in l]
        self.assertEqual(len(lines), 1, err)
        for text in must_contain:
            self.assertIn(text, lines[0])
        self.assertNotIn("event=server.ready", err)

    def test_unknown_user(self):
        with Parley(name="nouser", config={"server.user": "parley-no-such-user"}) as p:
            self.refused(p, None, 'server.user \\"parley-no-such-user\\": no such user')
            # nothing was given away or made
            self.assertEqual(os.stat(p.dir).st_uid, 0)
            self.assertFalse(os.path.exists(os.path.join(p.dir, "parleyd.lock")))

    def test_another_user_not_root(self):
        nobody = pwd.getpwnam(USER).pw_uid
        with Parley(name="otheruser", config={"server.user": "daemon"}) as p:
            for root, dirs, files in os.walk(p.dir):
                for n in [root] + [os.path.join(root, f) for f in files]:
                    os.chown(n, nobody, nobody)
            self.refused(p, nobody, 'server.user is \\"daemon\\"', "not root")

    def test_config_in_the_state_directory(self):
        """The configuration says what root does: never given to the user."""
        with Parley(name="confin", config={"server.user": USER}) as p:
            self.refused(p, None, "configuration file", "state directory")
            res = p.ctl("user", "list")
            self.assertNotEqual(res.returncode, 0)
            self.assertIn("configuration file", res.stderr)
            for n in (p.dir, p.conf):
                self.assertEqual(os.stat(n).st_uid, 0, n)

    def test_links_left_by_the_user(self):
        """The user owns the state directory: a link it leaves there makes
        root neither truncate (the lock file) nor give away (the walk) a
        file outside."""
        top = tempfile.mkdtemp(prefix="parley-victim-")
        victim = os.path.join(top, "shadow")
        with open(victim, "w") as f:
            f.write("precious\n")
        os.chmod(victim, 0o640)
        try:
            with Parley(name="links", user=USER) as p:
                lock = os.path.join(p.state_dir, "parleyd.lock")
                os.symlink(victim, lock)
                self.refused(p, None, "parleyd.lock", "symbolic link")
                os.unlink(lock)
                # a hard link (fs.protected_hardlinks = 0 lets the user make it)
                os.link(victim, os.path.join(p.state_dir, "pki", "x"))
                res = p.ctl("user", "list")
                self.assertNotEqual(res.returncode, 0)
                self.assertIn("hard link", res.stderr)
                self.refused(p, None, "hard link")
                os.unlink(os.path.join(p.state_dir, "pki", "x"))
                st = os.stat(victim)
                self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (0, 0o640))
                with open(victim) as f:
                    self.assertEqual(f.read(), "precious\n")
        finally:
            shutil.rmtree(top, ignore_errors=True)

    def test_certificate_read_as_the_user(self):
        """The certificate and key are read after the drop, as the user:
        links it left in its state directory to another identity that
        only root may read (its key 0600 in a 0700 directory of root's)
        refuse the start instead of handing that key to the process."""
        top = tempfile.mkdtemp(prefix="parley-other-")  # 0700, root's
        key, cert = os.path.join(top, "other.key"), os.path.join(top, "other.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=other"],
                       check=True, capture_output=True)
        os.chmod(key, 0o600)
        try:
            with Parley(name="keylink", user=USER) as p:
                pki = os.path.join(p.state_dir, "pki")
                for name, target in (("server.key", key), ("server.pem", cert)):
                    os.unlink(os.path.join(pki, name))
                    os.symlink(target, os.path.join(pki, name))
                self.refused(p, None, "server.key", "not readable by this user")
        finally:
            shutil.rmtree(top, ignore_errors=True)

    def test_already_the_user(self):
        """Started as server.user itself (systemd's User=), it just runs."""
        nobody = pwd.getpwnam(USER).pw_uid
        with Parley(name="sameuser", config={"server.user": USER}) as p:
            for root, dirs, files in os.walk(p.dir):
                for n in [root] + [os.path.join(root, f) for f in files]:
                    os.chown(n, nobody, nobody)
            proc = subprocess.Popen([p.parleyd, "-c", p.conf], stderr=subprocess.PIPE,
                                    user=nobody, group=nobody, extra_groups=[])
            try:
                out = b""
                while b"event=server.ready" not in out and b"start_failed" not in out:
                    line = proc.stderr.readline()
                    if not line:
                        break
                    out += line
                self.assertIn(b"event=server.ready", out, out.decode())
                self.assertIn(b"event=server.privileges_dropped user=nobody", out)
                f = status_fields(proc.pid)
                self.assertEqual(int(f["CapEff"], 16), 0)
            finally:
                proc.terminate()
                proc.communicate(timeout=20)


@unittest.skipUnless(os.geteuid() == 0, "needs root: init --user gives the state away")
class TestSeparateState(unittest.TestCase):
    """parleyctl init --dir CONF --state-dir STATE --user nobody: the
    packaged layout (/etc/parley and /var/lib/parley)."""

    def test_init_state_apart(self):
        pw = pwd.getpwnam(USER)
        top = tempfile.mkdtemp(prefix="parley-apart-")
        os.chmod(top, 0o755)  # as /etc and /var/lib: the user passes through
        conf_dir, state = os.path.join(top, "etc"), os.path.join(top, "lib")
        conf = os.path.join(conf_dir, "parley.conf")
        ctl = parleyctl_path()

        def run(*args, input=None):
            res = subprocess.run([ctl, *args], capture_output=True, text=True, input=input,
                                 timeout=60)
            self.assertEqual(res.returncode, 0, f"{args}: {res.stderr}")
            return res.stdout

        try:
            # the state directory, given to the user, may not hold the configuration
            res = subprocess.run([ctl, "init", "--dir", conf_dir, "--user", USER, "--domain",
                                  "example.test"], capture_output=True, text=True, timeout=60)
            self.assertEqual(res.returncode, 2, res.stderr)
            self.assertIn("--state-dir", res.stderr)
            self.assertFalse(os.path.exists(conf_dir))
            run("init", "--dir", conf_dir, "--state-dir", state, "--user", USER, "--domain",
                "example.test")
            for key in ("sip.tls_listen", "sip.mtls_listen", "relay.tls_listen", "https.listen"):
                run("-c", conf, "config", "set", key, f"127.0.0.1:{free_port()}")
            relay = free_port("both")
            run("-c", conf, "config", "set", "relay.listen", f"127.0.0.1:{relay}")
            run("-c", conf, "user", "add", "carol", "--password-stdin", input="carol-pw\n")
            self.assertEqual(run("-c", conf, "config", "get", "server.state_dir").strip(), state)
            # the configuration stays root's, readable by the user's group
            st = os.stat(conf)
            self.assertEqual((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)),
                             (0, pw.pw_gid, 0o640))
            self.assertFalse(os.path.exists(os.path.join(conf_dir, "parley.db")))
            with spawn_peer([parleyd_path(), "-c", conf], name="parleyd-apart") as d:
                d.wait_output("event=server.ready", timeout=30)
                self.assertIn(f"state_dir={state}", d.output)
                for root, dirs, files in os.walk(state):
                    for n in [root] + [os.path.join(root, f) for f in files]:
                        self.assertEqual(os.lstat(n).st_uid, pw.pw_uid, n)
                self.assertTrue(os.path.exists(os.path.join(state, "parleyd.sock")))
                rec = run("-c", conf, "--json", "status")
                self.assertIn("example.test", rec)
        finally:
            shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
