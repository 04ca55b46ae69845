#!/usr/bin/python3
"""The Debian package, installed (make deb-check runs this inside the
throwaway root of scripts/deb-check.sh, never on the machine itself):

- what the package and its postinst put in place: the binaries in
  /usr/sbin, the unit (enabled), the system user parley, /var/lib/parley
  0700 parley's, /etc/parley/parley.conf made by `parleyctl init` with
  server.user = parley and server.state_dir = /var/lib/parley;
- the unit: `systemd-analyze verify` says nothing, `systemd-analyze
  security --offline=true` stays under the threshold (the score is printed);
- parleyd started as root with that configuration, with the unit's
  capabilities only (setpriv), binds two ports below
  1024 that this test picks (sip.tls_listen, https.listen), then runs as
  parley (/proc/PID/status: Uid, Gid, no capability left), tells systemd's
  notify socket READY=1 after the drop, and baresip registers to it over
  TLS on the low port; SIGHUP reloads (the configuration and certificates
  stay readable to parley); the same started as parley with
  CAP_NET_BIND_SERVICE ambient (docs/OPERATIONS.md's alternative);
- reinstalling keeps the configuration; purge removes /etc/parley and
  /var/lib/parley and keeps the user;
- an ordinary (non-system) account named parley makes the installation
  fail instead of being adopted as the server's user.
"""
from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from harness import TIMEOUT_SCALE, Baresip, free_port, free_ports, parse_logfmt

CONF = "/etc/parley/parley.conf"
STATE = "/var/lib/parley"
UNIT = "/lib/systemd/system/parleyd.service"
PARLEYD = "/usr/sbin/parleyd"
PARLEYCTL = "/usr/sbin/parleyctl"
# systemd-analyze security's overall exposure, times ten (2.4 when written)
SECURITY_THRESHOLD = 30
USERS = {"alice": "alice-secret"}
# the unit's CapabilityBoundingSet=, in setpriv's words
UNIT_CAPS = "+net_bind_service,+setuid,+setgid,+chown,+dac_override"


def run(*args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run(list(args), input=input, capture_output=True, text=True, timeout=120)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {res.returncode}\n"
                             f"stdout: {res.stdout}\nstderr: {res.stderr}")
    return res


def ctl(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return run(PARLEYCTL, "-c", CONF, *args, input=input)


def low_ports(count: int) -> list[int]:
    """Ports below 1024 that nothing holds now (TCP, 127.0.0.1)."""
    rng = random.SystemRandom()
    got: list[int] = []
    for _ in range(500):
        p = rng.randint(600, 1000)
        if p in got:
            continue
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            s.close()
        got.append(p)
        if len(got) == count:
            return got
    raise AssertionError("no free ports below 1024")


def read(path: str) -> str:
    with open(path, errors="replace") as f:
        return f.read()


def proc_status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class TestInstalled(unittest.TestCase):
    """In order (the names sort): what is installed, the unit, the server,
    reinstall, purge."""

    def test_1_installed(self):
        for path in (PARLEYD, PARLEYCTL):
            self.assertTrue(os.access(path, os.X_OK), path)
        self.assertTrue(os.path.isfile(UNIT))
        self.assertTrue(os.path.islink("/etc/systemd/system/multi-user.target.wants/"
                                       "parleyd.service"), "the unit is not enabled")
        pw = pwd.getpwnam("parley")
        self.assertLess(pw.pw_uid, 1000, "not a system user")
        self.assertEqual(grp.getgrgid(pw.pw_gid).gr_name, "parley")
        st = os.stat(STATE)
        self.assertEqual((st.st_uid, st.st_mode & 0o7777), (pw.pw_uid, 0o700))
        self.assertTrue(os.path.isfile(CONF))
        with self.subTest("server.user and server.state_dir set"):
            self.assertEqual(ctl("config", "get", "server.user").stdout.strip(), "parley")
            self.assertEqual(ctl("config", "get", "server.state_dir").stdout.strip(), STATE)
        # the configuration is root's, readable by parley's group (a reload
        # reads it again as parley); the state, PKI included, is parley's
        conf = os.stat(CONF)
        self.assertEqual((conf.st_uid, conf.st_gid, conf.st_mode & 0o7777),
                         (0, pw.pw_gid, 0o640))
        with self.subTest("the state is parley's"):
            for top, dirs, files in os.walk(STATE):
                for name in dirs + files:
                    st = os.lstat(os.path.join(top, name))
                    self.assertEqual(st.st_uid, pw.pw_uid, os.path.join(top, name))
                    self.assertEqual(st.st_mode & 0o077, 0, os.path.join(top, name))
        mans = [m for m in ("/usr/share/man/man8/parleyd.8.gz", "/usr/share/man/man8/parleyctl.8.gz",
                            "/usr/share/man/man5/parley.conf.5.gz") if os.path.exists(m)]
        print(f"\n  man pages installed: {len(mans)} of 3 {mans}")

    def test_2_unit(self):
        with open(UNIT) as f:
            text = f.read()
        caps = re.search(r"^CapabilityBoundingSet=(.*)$", text, re.M).group(1).split()
        # only the state is writable: the configuration root runs stays read-only
        self.assertEqual(re.findall(r"^ReadWritePaths=(.*)$", text, re.M), [STATE])
        self.assertEqual(sorted(c.lower().replace("cap_", "+") for c in caps),
                         sorted(UNIT_CAPS.split(",")), "the test no longer starts parleyd as the unit")
        # `man:` references are checked only once the man pages are installed
        man = "yes" if os.path.exists("/usr/share/man/man8/parleyd.8.gz") and shutil.which("man") \
            else "no"
        res = run("systemd-analyze", "verify", f"--man={man}", UNIT, check=False)
        self.assertEqual((res.returncode, res.stderr.strip()), (0, ""), res.stdout)
        res = run("systemd-analyze", "security", "--offline=true",
                  f"--threshold={SECURITY_THRESHOLD}", UNIT, check=False)
        score = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", res.stdout)
        self.assertIsNotNone(score, res.stdout + res.stderr)
        print(f"\n  systemd-analyze security: {score.group(1)} {score.group(2)}")
        self.assertEqual(res.returncode, 0, res.stdout[-3000:] + res.stderr)

    def test_3_server_drops_to_parley(self):
        """The package's unit: root with CapabilityBoundingSet= only, then
        server.user."""
        self.configure()
        self.serve(["setpriv", f"--bounding-set=-all,{UNIT_CAPS}", "--inh-caps=-all",
                    "--no-new-privs"])

    def test_3b_server_started_as_parley(self):
        """docs/OPERATIONS.md's alternative: User=parley with
        AmbientCapabilities=CAP_NET_BIND_SERVICE; parleyd drops that too."""
        self.configure()
        self.serve(["setpriv", "--reuid=parley", "--regid=parley", "--init-groups",
                    "--bounding-set=-all,+net_bind_service", "--inh-caps=-all,+net_bind_service",
                    "--ambient-caps=-all,+net_bind_service", "--no-new-privs"])

    configured = False

    def configure(self) -> None:
        if TestInstalled.configured:
            return
        TestInstalled.configured = True
        sip_low, https_low = low_ports(2)
        TestInstalled.sip_low, TestInstalled.https_low = sip_low, https_low
        ctl("config", "set", "sip.tls_listen", f"127.0.0.1:{sip_low}")
        ctl("config", "set", "https.listen", f"127.0.0.1:{https_low}")
        # every other port this test's own (never the defaults 5061/3478/5349)
        ctl("config", "set", "sip.mtls_listen", f"127.0.0.1:{free_port('tcp')}")
        ctl("config", "set", "relay.listen", f"127.0.0.1:{free_port('both')}")
        ctl("config", "set", "relay.tls_listen", f"127.0.0.1:{free_port('tcp')}")
        media = free_ports(16, "udp", consecutive=True)
        ctl("config", "set", "media.port_range", f"{media[0]}-{media[-1]}")
        for user, password in USERS.items():
            ctl("user", "add", user, "--password-stdin", input=password + "\n")

    def serve(self, how: list[str]) -> None:
        """parleyd started by `how` (a setpriv command line) on the
        installed configuration: ends as parley without capabilities,
        serves on the low ports, baresip registers, reload, stop."""
        pw = pwd.getpwnam("parley")
        sip_low, https_low = self.sip_low, self.https_low
        tmp = tempfile.mkdtemp(prefix="parley-deb-")
        notify_path = os.path.join(tmp, "notify")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(notify_path)
        # as systemd's own: anyone may send; systemd checks the sender's pid
        os.chmod(tmp, 0o755)
        os.chmod(notify_path, 0o777)
        log_path = os.path.join(tmp, "parleyd.log")
        log = open(log_path, "wb")
        proc = subprocess.Popen(how + [PARLEYD, "-c", CONF], stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT,
                                env=dict(os.environ, NOTIFY_SOCKET=notify_path))
        agent = None
        try:
            notify.settimeout(20 * TIMEOUT_SCALE)
            try:
                msg = notify.recv(4096).decode()
            except socket.timeout:
                raise AssertionError("no READY=1 from parleyd; log:\n" + read(log_path))
            self.assertIn("READY=1", msg.split("\n"))

            st = proc_status(proc.pid)
            print(f"\n  parleyd pid {proc.pid}: Uid {st['Uid']!r}, listening on "
                  f"127.0.0.1:{sip_low} (SIP TLS) and 127.0.0.1:{https_low} (HTTPS)")
            # (subtests: what follows is checked whatever these find)
            with self.subTest("runs as parley, without capabilities"):
                self.assertEqual(st["Uid"].split(), [str(pw.pw_uid)] * 4, st["Uid"])
                self.assertEqual(st["Gid"].split(), [str(pw.pw_gid)] * 4, st["Gid"])
                self.assertEqual(int(st["CapEff"], 16), 0, st["CapEff"])
                self.assertEqual(int(st["CapPrm"], 16), 0, st["CapPrm"])
            with self.subTest("the state directory is parley's"):
                for path in os.listdir(STATE):
                    self.assertEqual(os.stat(os.path.join(STATE, path)).st_uid, pw.pw_uid, path)
                self.assertTrue(os.path.exists(os.path.join(STATE, "parley.db")))
            self.assertIn("server.privileges_dropped",
                          [parse_logfmt(line).get("event") for line in read(log_path).splitlines()])
            # the low ports are parleyd's, and serve
            for port in (sip_low, https_low):
                socket.create_connection(("127.0.0.1", port), timeout=5).close()

            # the domain the postinst chose (the machine's name)
            domain = ctl("config", "get", "server.domain").stdout.strip()
            agent = Baresip("alice", USERS["alice"], domain=domain, proxy=("127.0.0.1", sip_low))
            agent.wait_registered(timeout=20)
            regs = json.loads(ctl("--json", "registrations").stdout)["registrations"]
            self.assertEqual([r["user"] for r in regs], ["alice"], regs)

            # SIGHUP as parley: the configuration and certificates are read again
            proc.send_signal(signal.SIGHUP)
            self.assertIn("RELOADING=1", notify.recv(4096).decode().split("\n"))
            self.assertIn("READY=1", notify.recv(4096).decode().split("\n"))
            events = [parse_logfmt(line).get("event") for line in read(log_path).splitlines()]
            self.assertIn("config.reloaded", events, read(log_path)[-3000:])

            agent.stop()
            agent = None
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(20 * TIMEOUT_SCALE), 0, read(log_path)[-3000:])
            self.assertIn("STOPPING=1", notify.recv(4096).decode().split("\n"))
        except BaseException:
            print("--- parleyd log ---\n" + read(log_path)[-5000:])
            raise
        finally:
            if agent is not None:
                agent.cleanup()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
            notify.close()
            shutil.rmtree(tmp, ignore_errors=True)

    def test_4_reinstall_keeps_configuration(self):
        before = sha256(CONF)
        run("dpkg", "-i", os.environ["PARLEY_DEB"])
        self.assertEqual(sha256(CONF), before)

    def test_5_purge(self):
        run("dpkg", "--purge", "parley")
        for path in ("/etc/parley", STATE, PARLEYD, UNIT):
            self.assertFalse(os.path.exists(path), path)
        pwd.getpwnam("parley")  # kept: see debian/parley.postrm

    def test_6_refuses_a_person_named_parley(self):
        """An ordinary account called parley (a person's, with a login
        shell) is not adopted as the server's user: the installation fails
        rather than hand it the state and the running server."""
        run("deluser", "--quiet", "parley")  # the system user purge kept
        if any(g.gr_name == "parley" for g in grp.getgrall()):
            run("delgroup", "--quiet", "parley")
        run("adduser", "--quiet", "--disabled-password", "--gecos", "", "parley")
        self.assertGreaterEqual(pwd.getpwnam("parley").pw_uid, 1000)
        try:
            res = run("dpkg", "-i", os.environ["PARLEY_DEB"], check=False)
            self.assertNotEqual(res.returncode, 0, res.stdout)
            self.assertIn("not a system user", res.stdout + res.stderr)
            self.assertFalse(os.path.exists(CONF), "configured for the person's account")
        finally:
            run("dpkg", "--purge", "parley", check=False)


if __name__ == "__main__":
    unittest.main()
