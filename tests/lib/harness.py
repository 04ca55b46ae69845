"""Starting and driving a Parley instance (and external peers) in a test.

Standard library only. The pieces:

* ``free_port()`` -- a port in 20000-32000 nobody is using (never 5061,
  3478, 5349), never handed out twice, reserved across test processes.
* ``Parley`` -- a fresh state directory, ``parleyctl init``, configuration,
  users, ``parleyd`` started and stopped, its logfmt log parsed and waited
  on. Use it as a context manager: the server is always stopped; the
  directory is removed on success and kept (path and log tail printed) on
  failure.
* ``run_peer()`` / ``spawn_peer()`` -- external programs (openssl s_client,
  turnutils_uclient, sipp...) with timeouts and captured output.
* ``Baresip`` -- a headless baresip user agent with its own config
  directory and ports, driven over ctrl_tcp.
* ``parse_logfmt()`` -- one logfmt line to a dict.

Every process started here is killed when the test process exits (atexit,
SIGTERM, and the kernel's parent-death signal if the test process dies
hard), so none outlives a test.

Environment:
  PARLEYD, PARLEYCTL     the binaries (default build/src/daemon/parleyd and
                         build/src/ctl/parleyctl under the repository root)
  PARLEY_TEST_TMP        where state directories go (default /tmp)
  PARLEY_KEEP_TMP=1      keep state directories even on success
  PARLEY_TEST_TIMEOUT_SCALE  multiply every default timeout (sanitizers)
  SIPCLIENT_LOG=1        print every SIP message the test client sends/receives
"""

from __future__ import annotations

import atexit
import ctypes
import json as jsonlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import sipclient

__all__ = [
    "REPO_ROOT", "TIMEOUT_SCALE", "parleyd_path", "parleyctl_path", "free_port", "free_ports",
    "release_ports", "parse_logfmt", "LogRecord", "Parley", "ParleyError", "LogTimeout",
    "CtlResult", "run_peer", "spawn_peer", "Peer", "PeerError", "Baresip", "BaresipError",
    "openssl", "make_key", "make_ca", "issue_cert", "make_crl",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_SCALE = sipclient.TIMEOUT_SCALE


def _scaled(t: float) -> float:
    return t * TIMEOUT_SCALE


def parleyd_path() -> str:
    return os.environ.get("PARLEYD") or str(REPO_ROOT / "build" / "src" / "daemon" / "parleyd")


def parleyctl_path() -> str:
    return os.environ.get("PARLEYCTL") or str(REPO_ROOT / "build" / "src" / "ctl" / "parleyctl")


def _tmp_root() -> str:
    return os.environ.get("PARLEY_TEST_TMP") or "/tmp"


class ParleyError(Exception):
    """The server (or parleyctl) did not do what the harness needed."""


class LogTimeout(AssertionError):
    """An expected log line did not appear in time."""


class PeerError(Exception):
    """An external peer failed to start, timed out, or misbehaved."""


# ---------------------------------------------------------------------------
# The command lines of the server contract -- one place each.
# ---------------------------------------------------------------------------


def cmd_init(ctl: str, directory: str, domain: str, address: str) -> list[str]:
    """Creates DIR/parley.conf and DIR/pki/{ca.pem,ca.key,crl.pem,server.pem,server.key}."""
    return [ctl, "init", "--dir", directory, "--domain", domain, "--address", address]


def cmd_config_set(ctl: str, conf: str, key: str, value: str) -> list[str]:
    return [ctl, "-c", conf, "config", "set", key, value]


def cmd_user_add(ctl: str, conf: str, name: str) -> list[str]:
    """The password goes to stdin."""
    return [ctl, "-c", conf, "user", "add", name, "--password-stdin"]


def cmd_ctl(ctl: str, conf: str, args: Sequence[str], json: bool) -> list[str]:
    return [ctl, "-c", conf] + (["--json"] if json else []) + list(args)


def cmd_daemon(parleyd: str, conf: str, debug: bool) -> list[str]:
    """Logs logfmt to stderr; ``event=server.ready`` once listening; exits 0 on SIGTERM."""
    return [parleyd, "-c", conf] + (["-d"] if debug else [])


CONF_NAME = "parley.conf"
LOG_NAME = "parleyd.log"
READY_EVENT = "server.ready"

# ---------------------------------------------------------------------------
# Process bookkeeping: nothing outlives the test process.
# ---------------------------------------------------------------------------

_live_procs: set[subprocess.Popen] = set()
_live_lock = threading.Lock()
_cleanups: list[Callable[[], None]] = []
_sigterm_installed = False

try:
    _libc: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover
    _libc = None
_PR_SET_PDEATHSIG = 1


def _child_setup() -> None:
    # Runs in the child between fork and exec: die with the test process even
    # if it is SIGKILLed (atexit would not run then). Note: the signal fires
    # when the *thread* that forked exits -- spawn from the main thread.
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (meson test's timeout). A KeyboardInterrupt, so that
    unittest stops the run instead of going on to the next test, while the
    context managers and atexit still stop the server and print its log."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated("terminated by SIGTERM (test timeout?)")


def _install_sigterm() -> None:
    global _sigterm_installed
    if _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
    _sigterm_installed = True


def _popen(args: Sequence[str], **kw: Any) -> subprocess.Popen:
    """Popen that registers the child for cleanup. Children stay in the test's
    process group, so meson's kill of that group on a timeout reaches them
    and whatever they started."""
    _install_sigterm()
    kw.setdefault("preexec_fn", _child_setup)
    try:
        proc = subprocess.Popen(list(args), **kw)
    except FileNotFoundError as e:
        raise PeerError(f"cannot run {args[0]!r}: {e}") from e
    with _live_lock:
        _live_procs.add(proc)
    return proc


def _forget(proc: subprocess.Popen) -> None:
    with _live_lock:
        _live_procs.discard(proc)


def _descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (from /proc), children first."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(entry))
    out: list[int] = []
    todo = [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _kill_tree(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """``sig`` to the child and everything it started."""
    for pid in [proc.pid] + _descendants(proc.pid):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _terminate(proc: subprocess.Popen, timeout: float, sig: int = signal.SIGTERM) -> int:
    """Send ``sig`` to the child, wait ``timeout``, SIGKILL it if needed,
    and SIGKILL whatever it left behind. Returns the exit code. (The child
    gets ``sig`` alone, so its own handling -- graceful shutdown -- is what
    is tested.)"""
    if proc.poll() is None:
        left = _descendants(proc.pid)  # before they are orphaned
        try:
            proc.send_signal(sig)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill_tree(proc)
        except ProcessLookupError:
            pass
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    _forget(proc)
    return proc.wait()


@atexit.register
def _kill_everything() -> None:
    for fn in list(reversed(_cleanups)):
        try:
            fn()
        except Exception:
            pass
    with _live_lock:
        procs = list(_live_procs)
    for p in procs:
        try:
            _kill_tree(p)
            p.wait(5)
        except Exception:
            pass
    release_ports()


# ---------------------------------------------------------------------------
# Ports
# ---------------------------------------------------------------------------

PORT_MIN, PORT_MAX = 20000, 32000
FORBIDDEN_PORTS = frozenset({5061, 3478, 5349})
_given_ports: set[int] = set()
_port_lock = threading.Lock()
_port_files: list[str] = []


_port_dir_path: str | None = None


def _port_dir() -> str:
    # Fixed at first use, so a test changing $PARLEY_TEST_TMP later does not
    # scatter the reservations.
    global _port_dir_path
    if _port_dir_path is None:
        _port_dir_path = os.path.join(_tmp_root(), "parley-test-ports")
        os.makedirs(_port_dir_path, exist_ok=True)
    return _port_dir_path


def _reserve_across_processes(port: int) -> bool:
    """A lock file per port so parallel test processes do not pick the same
    one between probing it and the server binding it. Stale files (their
    process is gone) are taken over."""
    path = os.path.join(_port_dir(), str(port))
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileNotFoundError:
            # someone cleaned the temporary directory under us: make it again
            os.makedirs(os.path.dirname(path), exist_ok=True)
            continue
        except FileExistsError:
            try:
                with open(path) as f:
                    pid = int(f.read().strip() or "0")
            except (OSError, ValueError):
                pid = 0
            alive = pid > 0
            if alive:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    alive = False
                except PermissionError:
                    pass
            if alive:
                return False
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        _port_files.append(path)
        return True
    return False


def _bindable(port: int, kind: str) -> bool:
    kinds = {"tcp": [socket.SOCK_STREAM], "udp": [socket.SOCK_DGRAM],
             "both": [socket.SOCK_STREAM, socket.SOCK_DGRAM]}[kind]
    for stype in kinds:
        s = socket.socket(socket.AF_INET, stype)
        try:
            # No SO_REUSEADDR: a port still in TIME_WAIT counts as taken.
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def free_ports(count: int = 1, kind: str = "tcp", *, consecutive: bool = False) -> list[int]:
    """``count`` ports in 20000-32000 that can be bound now (``kind`` 'tcp',
    'udp' or 'both'), never 5061/3478/5349, never returned before in this
    process, reserved against other test processes. ``consecutive`` gives a
    run of adjacent ports (baresip uses sip_listen and sip_listen + 1)."""
    if kind not in ("tcp", "udp", "both"):
        raise ValueError("kind must be 'tcp', 'udp' or 'both'")
    rng = random.SystemRandom()
    with _port_lock:
        for _ in range(2000):
            if consecutive:
                first = rng.randint(PORT_MIN, PORT_MAX - count + 1)
                cand = list(range(first, first + count))
            else:
                cand = []
                while len(cand) < count:
                    p = rng.randint(PORT_MIN, PORT_MAX)
                    if p not in cand:
                        cand.append(p)
            if any(p in FORBIDDEN_PORTS or p in _given_ports for p in cand):
                continue
            if not all(_bindable(p, kind) for p in cand):
                continue
            got: list[int] = []
            for p in cand:
                if not _reserve_across_processes(p):
                    break
                got.append(p)
            if len(got) < len(cand):
                _release(got)
                continue
            _given_ports.update(cand)
            return cand
    raise RuntimeError(f"no {count} free {kind} port(s) found in {PORT_MIN}-{PORT_MAX}")


def free_port(kind: str = "tcp") -> int:
    """One port; see free_ports."""
    return free_ports(1, kind)[0]


def _release(ports: Sequence[int]) -> None:
    for p in ports:
        path = os.path.join(_port_dir(), str(p))
        if path in _port_files:
            _port_files.remove(path)
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


def release_ports() -> None:
    """Drop this process's cross-process reservations (they stay 'given' in
    this process, so a test never gets the same port twice)."""
    for path in list(_port_files):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    _port_files.clear()


# ---------------------------------------------------------------------------
# logfmt
# ---------------------------------------------------------------------------


class LogRecord(dict):
    """One parsed log line (key -> value, all strings); ``raw`` is the line."""

    raw: str = ""

    @property
    def event(self) -> str | None:
        return self.get("event")


_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


def parse_logfmt(line: str) -> LogRecord:
    """Parse ``key=value key="quoted \\"value\\"" bare`` into a LogRecord.

    Quoted values understand ``\\" \\\\ \\n \\r \\t \\xHH``; an unterminated
    quote (a truncated line) takes the rest of the line; a key without
    ``=`` gets the value ``""``; text that is not key=value is skipped.
    """
    rec = LogRecord()
    rec.raw = line.rstrip("\n")
    s = rec.raw
    i, n = 0, len(s)
    while i < n:
        while i < n and s[i] in " \t":
            i += 1
        if i >= n:
            break
        start = i
        while i < n and s[i] not in " \t=":
            i += 1
        key = s[start:i]
        if i >= n or s[i] != "=":
            if key and not key.startswith('"'):
                rec.setdefault(key, "")
            continue
        i += 1  # '='
        if i < n and s[i] == '"':
            i += 1
            buf: list[str] = []
            while i < n and s[i] != '"':
                c = s[i]
                if c == "\\" and i + 1 < n:
                    nxt = s[i + 1]
                    if nxt == "x" and i + 3 < n and re.fullmatch(r"[0-9a-fA-F]{2}", s[i + 2:i + 4]):
                        buf.append(chr(int(s[i + 2:i + 4], 16)))
                        i += 4
                        continue
                    buf.append(_ESCAPES.get(nxt, nxt))
                    i += 2
                    continue
                buf.append(c)
                i += 1
            i += 1  # closing quote (or end of a truncated line)
            value = "".join(buf)
        else:
            vstart = i
            while i < n and s[i] not in " \t":
                i += 1
            value = s[vstart:i]
        if key:
            rec[key] = value
    return rec


def _matches(rec: Mapping[str, str], event: str | None, fields: Mapping[str, Any]) -> bool:
    if event is not None and rec.get("event") != event:
        return False
    for k, want in fields.items():
        have = rec.get(k)
        if have is None:
            return False
        if isinstance(want, re.Pattern):
            if not want.fullmatch(have):
                return False
        elif callable(want):
            if not want(have):
                return False
        elif have != str(want):
            return False
    return True


# ---------------------------------------------------------------------------
# External peers
# ---------------------------------------------------------------------------


def run_peer(args: Sequence[str], timeout: float = 30.0, input: str | bytes | None = None, *,
             env: Mapping[str, str] | None = None, cwd: str | None = None,
             check: bool = False) -> subprocess.CompletedProcess:
    """Run a short-lived peer (openssl s_client, turnutils_uclient, sipp...)
    to completion: stdin is ``input`` (or /dev/null), stdout and stderr are
    captured as text. Raises PeerError (with the output so far) if it runs
    longer than ``timeout`` -- it is killed -- or, with ``check``, exits
    non-zero."""
    timeout = _scaled(timeout)
    text_input = input.decode() if isinstance(input, bytes) else input
    proc = _popen(args, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                  env=dict(env) if env is not None else None, cwd=cwd)
    try:
        out, err = proc.communicate(text_input, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_tree(proc)
        try:
            out, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired as e:  # an orphan still holds the pipes
            out, err = _text(e.output), _text(e.stderr)
        _forget(proc)
        raise PeerError(f"{' '.join(args)} did not finish within {timeout:.0f}s\n"
                        f"--- stdout ---\n{out[-3000:]}\n--- stderr ---\n{err[-3000:]}") from None
    _forget(proc)
    res = subprocess.CompletedProcess(list(args), proc.returncode, out, err)
    if check and res.returncode != 0:
        raise PeerError(f"{' '.join(args)} exited {res.returncode}\n--- stdout ---\n"
                        f"{out[-3000:]}\n--- stderr ---\n{err[-3000:]}")
    return res


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data


class Peer:
    """A long-running external program; stdout (and stderr, merged) is read
    continuously into ``output`` by a background thread.

    Use as a context manager, or call stop(); in any case it is killed when
    the test process exits.
    """

    def __init__(self, args: Sequence[str], *, name: str | None = None,
                 env: Mapping[str, str] | None = None, cwd: str | None = None,
                 stdin: bool = False, merge_stderr: bool = True) -> None:
        self.args = list(args)
        self.name = name or os.path.basename(self.args[0])
        self._buf = bytearray()
        self._cond = threading.Condition()
        self.proc = _popen(self.args, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                           stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT if merge_stderr else subprocess.DEVNULL,
                           env=dict(env) if env is not None else None, cwd=cwd)
        self._reader = threading.Thread(target=self._read, name=f"peer-{self.name}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            with self._cond:
                if chunk:
                    self._buf += chunk
                self._cond.notify_all()
            if not chunk:
                return

    @property
    def output(self) -> str:
        with self._cond:
            return self._buf.decode("utf-8", errors="replace")

    def mark(self) -> int:
        """A position in the output, for wait_output(since=...)."""
        with self._cond:
            return len(self._buf)

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_output(self, pattern: str | re.Pattern, timeout: float = 10.0,
                    since: int = 0) -> re.Match:
        """Wait until ``pattern`` (a regex) matches the output from byte
        ``since`` on; returns the match. Raises PeerError on timeout or if
        the program exits first without producing it."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        timeout = _scaled(timeout)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                text = self._buf[since:].decode("utf-8", errors="replace")
                m = rx.search(text)
                if m:
                    return m
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PeerError(f"{self.name}: no output matching {rx.pattern!r} within "
                                    f"{timeout:.1f}s; output tail:\n{self.tail()}")
                if not self._reader.is_alive():
                    raise PeerError(f"{self.name} exited ({self.proc.poll()}) before output "
                                    f"matching {rx.pattern!r}; output tail:\n{self.tail()}")
                self._cond.wait(min(remaining, 0.5))

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self._buf.decode("utf-8", errors="replace").splitlines()[-lines:])

    def send_input(self, data: str | bytes) -> None:
        if self.proc.stdin is None:
            raise PeerError(f"{self.name} was started without stdin=True")
        self.proc.stdin.write(data.encode() if isinstance(data, str) else data)
        self.proc.stdin.flush()

    def wait(self, timeout: float = 10.0) -> int:
        """Wait for the program to exit by itself; returns its exit code."""
        try:
            rc = self.proc.wait(_scaled(timeout))
        except subprocess.TimeoutExpired:
            raise PeerError(f"{self.name} still running after {timeout:.0f}s; output tail:\n"
                            f"{self.tail()}") from None
        _forget(self.proc)
        self._close_pipes()
        return rc

    def _close_pipes(self) -> None:
        self._reader.join(2)
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass

    def stop(self, timeout: float = 5.0, sig: int = signal.SIGTERM) -> int:
        """Signal (SIGTERM), wait, SIGKILL if needed; returns the exit code."""
        rc = _terminate(self.proc, _scaled(timeout), sig)
        self._close_pipes()
        return rc

    def __enter__(self) -> "Peer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def spawn_peer(args: Sequence[str], **kw: Any) -> Peer:
    """Start a long-running peer; see Peer."""
    return Peer(args, **kw)


# ---------------------------------------------------------------------------
# Certificates (openssl CLI): test CAs, leaf certificates, CRLs
# ---------------------------------------------------------------------------


def openssl(*args: str, input: str | None = None, timeout: float = 30.0) -> str:
    """Run ``openssl ARGS...``; returns stdout, raises PeerError (with
    stderr) when it fails."""
    res = run_peer(["openssl", *args], timeout, input)
    if res.returncode != 0:
        raise PeerError(f"openssl {' '.join(args)} exited {res.returncode}: {res.stderr.strip()}")
    return res.stdout


def make_key(path: str) -> str:
    """A new P-256 private key (PEM, mode 0600) at ``path``."""
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)
    os.chmod(path, 0o600)
    return path


def make_ca(directory: str, cn: str, days: int = 3650) -> tuple[str, str]:
    """A self-signed CA (DIRECTORY/ca.pem, DIRECTORY/ca.key) named ``cn``."""
    os.makedirs(directory, exist_ok=True)
    cert, key = os.path.join(directory, "ca.pem"), os.path.join(directory, "ca.key")
    make_key(key)
    openssl("req", "-x509", "-new", "-key", key, "-out", cert, "-subj", f"/CN={cn}",
            "-days", str(days), "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-addext", "subjectKeyIdentifier=hash")
    return cert, key


def issue_cert(ca_cert: str, ca_key: str, out_cert: str, *, cn: str,
               dns: Sequence[str] = (), ips: Sequence[str] = (), uris: Sequence[str] = (),
               key: str | None = None, days: int = 365, serial: int | None = None,
               eku: str | None = "serverAuth,clientAuth") -> tuple[str, str]:
    """A leaf certificate for ``cn`` with those subjectAltNames, signed by
    the CA (a Parley state directory's pki/ca.pem + pki/ca.key, or one from
    make_ca). ``key``: an existing private key to certify (e.g. a node's
    pki/server.key); otherwise a new one is made next to ``out_cert``
    (same name, ``.key``). Returns (certificate path, key path)."""
    if key is None:
        key = make_key(os.path.splitext(out_cert)[0] + ".key")
    base = os.path.splitext(out_cert)[0]
    csr, ext = base + ".csr", base + ".ext"
    sans = [f"DNS:{d}" for d in dns] + [f"IP:{i}" for i in ips] + [f"URI:{u}" for u in uris]
    lines = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature",
             "subjectKeyIdentifier=hash", "authorityKeyIdentifier=keyid"]
    if eku:
        lines.append(f"extendedKeyUsage={eku}")
    if sans:
        lines.append("subjectAltName=" + ",".join(sans))
    Path(ext).write_text("\n".join(lines) + "\n")
    openssl("req", "-new", "-key", key, "-subj", f"/CN={cn}", "-out", csr)
    openssl("x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-out", out_cert,
            "-days", str(days), "-extfile", ext,
            "-set_serial", str(serial if serial is not None else random.getrandbits(62) + 1))
    return out_cert, key


def make_crl(ca_cert: str, ca_key: str, out: str, *, revoked: Sequence[int] = (),
             last_update: str | None = None, next_update: str | None = None) -> str:
    """A CRL signed by the CA (``openssl ca -gencrl``) listing ``revoked``
    serials; ``last_update``/``next_update`` as YYYYMMDDHHMMSSZ (defaults:
    now, now + 30 days) -- a ``next_update`` in the past makes a stale CRL."""
    work = tempfile.mkdtemp(prefix="crl-", dir=_tmp_root())
    try:
        index = os.path.join(work, "index.txt")
        # serials in hex with an even number of digits, as openssl ca wants
        rows = [f"R\t491231235959Z\t200101000000Z\t{s:0{2 * ((s.bit_length() + 7) // 8 or 1)}X}"
                f"\tunknown\t/CN=revoked-{s}\n" for s in revoked]
        Path(index).write_text("".join(rows))
        Path(index + ".attr").write_text("unique_subject = no\n")
        conf = os.path.join(work, "ca.cnf")
        Path(conf).write_text(
            "[ca]\ndefault_ca = test_ca\n[test_ca]\n"
            f"database = {index}\ncertificate = {ca_cert}\nprivate_key = {ca_key}\n"
            "default_md = sha256\ndefault_crl_days = 30\n")
        args = ["ca", "-config", conf, "-gencrl", "-out", out]
        if last_update:
            args += ["-crl_lastupdate", last_update]
        if next_update:
            args += ["-crl_nextupdate", next_update]
        openssl(*args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


# ---------------------------------------------------------------------------
# baresip
# ---------------------------------------------------------------------------


class BaresipError(PeerError):
    pass


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Dnsmasq:
    """dnsmasq on 127.0.0.1:PORT (UDP and TCP), authoritative for the
    domains given (default: .test): SRV and A records as given, NXDOMAIN for
    every other name in them. Started through ``owner.spawn_peer`` (stopped
    before the server)."""

    def __init__(self, owner: "Parley", srv: Sequence[tuple[str, str, int]] = (),
                 hosts: Sequence[tuple[str, str]] = (), domains: Sequence[str] = ("test",)) -> None:
        if shutil.which("dnsmasq") is None:
            raise RuntimeError("dnsmasq is not installed (Debian package dnsmasq-base)")
        self.port = free_port("both")
        args = ["dnsmasq", "--no-daemon", f"--port={self.port}", "--listen-address=127.0.0.1",
                "--bind-interfaces", "--no-resolv", "--no-hosts",
                "--log-queries", "--log-facility=-", "--pid-file="]
        args += [f"--local=/{d}/" for d in domains]
        args += [f"--srv-host={name},{target},{port}" for name, target, port in srv]
        args += [f"--host-record={name},{ip}" for name, ip in hosts]
        self.peer = owner.spawn_peer(args, name="dnsmasq")
        self.peer.wait_output(r"started, version", timeout=10)

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"


class Baresip:
    """One headless baresip agent (see /work/shared/peers/baresip.md).

    Creates DIR/{config,accounts,contacts} with its own sip_listen port
    (and +1, which baresip uses for TLS) and ctrl_tcp port, starts
    ``baresip -f DIR -t LIFETIME`` (``-s`` SIP trace by default, ``-v``
    optional), reads its output continuously, and talks JSON over ctrl_tcp
    (``command()``; events it pushes are collected in ``events``).

    Arguments: ``user``/``password``/``domain`` form the account
    ``<sip:user@domain>;auth_pass=...``; ``proxy`` = (address, port) of the
    server, used as ``outbound="sip:ADDR:PORT;transport=tls"``;
    ``mediaenc`` (srtp, srtp-mand, srtp-mandf or None), ``answermode``,
    ``regint`` (0: never register), ``pubint`` (None: never PUBLISH),
    ``account_params`` (more ;key=value on the account line), ``contacts``
    (lines for the contacts file, or (display, uri) pairs which get
    ;presence=p2p), ``cafile``, ``certfile`` (cert+key PEM: lets the agent
    accept TLS), ``config`` (extra/overriding config lines, key -> value),
    ``modules`` (extra ``module`` lines).
    """

    BINARY = "baresip"

    def __init__(self, user: str, password: str | None = None, *, domain: str = "example.test",
                 proxy: tuple[str, int] | None = None, transport: str = "tls",
                 mediaenc: str | None = "srtp-mand", answermode: str = "auto",
                 regint: int = 600, pubint: int | None = None,
                 account_params: Mapping[str, object] | None = None,
                 contacts: Sequence[str | tuple[str, str]] = (), cafile: str | None = None,
                 certfile: str | None = None, config: Mapping[str, object] | None = None,
                 modules: Sequence[str] = (), sip_trace: bool = True, verbose: bool = False,
                 lifetime: int = 600, base_dir: str | None = None, name: str | None = None,
                 start: bool = True, ready_timeout: float = 10.0) -> None:
        self.user, self.password, self.domain = user, password, domain
        self.name = name or f"baresip-{user}"
        self.aor = f"sip:{user}@{domain}"
        self._own_dir = base_dir is None
        self.dir = base_dir or tempfile.mkdtemp(prefix=f"{self.name}-", dir=_tmp_root())
        os.makedirs(self.dir, exist_ok=True)
        self.sip_port, self.tls_port = free_ports(2, "both", consecutive=True)
        self.ctrl_port = free_port("tcp")
        # What the agent hears is recorded by the sndfile module: each call
        # writes DIR/dump-<time>-dec.wav (heard) and -enc.wav (sent); Debian's
        # baresip 1.0 cannot play to aufile (see peers/baresip.md)
        self.snd_dir = os.path.join(self.dir, "snd")
        os.makedirs(self.snd_dir, exist_ok=True)
        self.args = [self.BINARY, "-f", self.dir, "-t", str(lifetime)]
        if sip_trace:
            self.args.append("-s")
        if verbose:
            self.args.append("-v")
        self.events: list[dict] = []
        self.peer: Peer | None = None
        self._ctrl: socket.socket | None = None
        self._ctrl_thread: threading.Thread | None = None
        self._ctrl_cond = threading.Condition()
        self._replies: dict[str, dict] = {}
        self._token = 0
        self._write_config(config or {}, modules, cafile, certfile)
        self._write_accounts(proxy, transport, mediaenc, answermode, regint, pubint,
                             account_params or {})
        self._write_contacts(contacts)
        if start:
            self.start(ready_timeout)

    # -- files -------------------------------------------------------------

    def _write_config(self, extra: Mapping[str, object], modules: Sequence[str],
                      cafile: str | None, certfile: str | None) -> None:
        conf: dict[str, str] = {
            "module_path": "/usr/lib/baresip/modules",
            "poll_method": "epoll",
            "sip_listen": f"127.0.0.1:{self.sip_port}",
            "audio_source": "ausine,440",
            "audio_player": "aufile,/dev/null",
            "snd_path": self.snd_dir,
            "audio_alert": "aufile,/dev/null",
            "ctrl_tcp_listen": f"127.0.0.1:{self.ctrl_port}",
        }
        if cafile:
            conf["sip_cafile"] = cafile
        if certfile:
            conf["sip_certificate"] = certfile
        conf.update({k: str(v) for k, v in extra.items()})
        mods = ["opus.so", "g711.so", "ausine.so", "aufile.so", "sndfile.so", "srtp.so"] + list(modules)
        lines = [f"{k:<20} {v}" for k, v in conf.items()]
        lines += [f"module               {m}" for m in mods]
        # Order matters: presence must load after the accounts (see baresip.md).
        lines += ["module_tmp           account.so", "module_app           menu.so",
                  "module_app           presence.so", "module_app           contact.so",
                  "module_app           ctrl_tcp.so"]
        Path(self.dir, "config").write_text("\n".join(lines) + "\n")

    def _write_accounts(self, proxy: tuple[str, int] | None, transport: str,
                        mediaenc: str | None, answermode: str, regint: int,
                        pubint: int | None, extra: Mapping[str, object]) -> None:
        line = f"<{self.aor}>"
        if self.password is not None:
            if any(c in self.password for c in ';"'):
                raise ValueError("baresip account passwords cannot contain ';' or '\"'")
            line += f";auth_pass={self.password}"
        if proxy is not None:
            host, port = proxy
            line += f';outbound="sip:{host}:{port};transport={transport}"'
        if mediaenc:
            line += f";mediaenc={mediaenc}"
        line += f";answermode={answermode};regint={regint}"
        if pubint is not None:
            line += f";pubint={pubint}"
        for k, v in extra.items():
            line += f";{k}" if v is None else f";{k}={v}"
        self.account_line = line
        Path(self.dir, "accounts").write_text(line + "\n")

    def _write_contacts(self, contacts: Sequence[str | tuple[str, str]]) -> None:
        lines = []
        for c in contacts:
            if isinstance(c, tuple):
                display, uri = c
                lines.append(f'"{display}" <{uri}>;presence=p2p')
            else:
                lines.append(c)
        Path(self.dir, "contacts").write_text("".join(l + "\n" for l in lines))

    # -- life cycle --------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        """Start baresip, wait for "baresip is ready." and connect ctrl_tcp."""
        if shutil.which(self.BINARY) is None:
            raise BaresipError("baresip is not installed (apt-get install baresip-core)")
        self.peer = Peer(self.args, name=self.name)
        deadline = time.monotonic() + _scaled(timeout)
        self.peer.wait_output(r"baresip is ready\.", timeout)
        last: OSError | None = None
        while time.monotonic() < deadline:
            try:
                self._ctrl = socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=2)
                break
            except OSError as e:
                last = e
                time.sleep(0.05)
        if self._ctrl is None:
            raise BaresipError(f"{self.name}: cannot connect to ctrl_tcp port {self.ctrl_port}: "
                               f"{last}\n{self.peer.tail()}")
        self._ctrl.settimeout(None)
        self._ctrl_thread = threading.Thread(target=self._ctrl_reader, name=f"{self.name}-ctrl",
                                             daemon=True)
        self._ctrl_thread.start()

    def _ctrl_reader(self) -> None:
        """Reads netstrings ``LEN:JSON,`` forever; replies go to _replies by
        token, events to ``events``."""
        assert self._ctrl is not None
        buf = b""
        while True:
            try:
                chunk = self._ctrl.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                with self._ctrl_cond:
                    self._ctrl_cond.notify_all()
                return
            buf += chunk
            while True:
                colon = buf.find(b":")
                if colon < 0:
                    break
                try:
                    length = int(buf[:colon])
                except ValueError:
                    buf = b""  # lost framing: drop and resynchronise on the next chunk
                    break
                if len(buf) < colon + 1 + length + 1:
                    break
                payload = buf[colon + 1: colon + 1 + length]
                buf = buf[colon + 1 + length + 1:]
                try:
                    obj = jsonlib.loads(payload)
                except ValueError:
                    continue
                with self._ctrl_cond:
                    if obj.get("response"):
                        self._replies[str(obj.get("token", ""))] = obj
                    elif obj.get("event"):
                        self.events.append(obj)
                    self._ctrl_cond.notify_all()

    def command(self, command: str, params: str = "", timeout: float = 5.0) -> dict:
        """Send a ctrl_tcp command; returns the reply (``ok``, ``data``...)."""
        if self._ctrl is None:
            raise BaresipError(f"{self.name} is not started")
        with self._ctrl_cond:
            self._token += 1
            token = f"t{self._token}"
        payload = jsonlib.dumps({"command": command, "params": params, "token": token}).encode()
        self._ctrl.sendall(str(len(payload)).encode() + b":" + payload + b",")
        deadline = time.monotonic() + _scaled(timeout)
        with self._ctrl_cond:
            while token not in self._replies:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BaresipError(f"{self.name}: no reply to {command!r} within {timeout}s; "
                                       f"output tail:\n{self.tail()}")
                if self._ctrl_thread is not None and not self._ctrl_thread.is_alive():
                    raise BaresipError(f"{self.name}: ctrl_tcp connection closed; output tail:\n"
                                       f"{self.tail()}")
                self._ctrl_cond.wait(min(remaining, 0.5))
            return self._replies.pop(token)

    def cmd(self, command: str, params: str = "", timeout: float = 5.0) -> str:
        """command() that returns the reply's text and raises if not ok."""
        r = self.command(command, params, timeout)
        if not r.get("ok"):
            raise BaresipError(f"{self.name}: {command} {params} failed: {r}")
        return _ANSI.sub("", str(r.get("data", "")))

    def wait_event(self, type: str, timeout: float = 10.0, since: int = 0,
                   **fields: str) -> dict:
        """Wait for a ctrl_tcp event (``REGISTER_OK``, ``CALL_ESTABLISHED``,
        ``CALL_CLOSED``...) with those fields, among events[since:]. Events
        are only seen once ctrl_tcp is connected (after start())."""
        deadline = time.monotonic() + _scaled(timeout)
        with self._ctrl_cond:
            while True:
                for ev in self.events[since:]:
                    if ev.get("type") == type and all(str(ev.get(k)) == v for k, v in fields.items()):
                        return ev
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [e.get("type") for e in self.events]
                    raise BaresipError(f"{self.name}: no {type} event within {timeout}s "
                                       f"(seen: {seen}); output tail:\n{self.tail()}")
                self._ctrl_cond.wait(min(remaining, 0.5))

    def wait_output(self, pattern: str | re.Pattern, timeout: float = 10.0,
                    since: int = 0) -> re.Match:
        """See Peer.wait_output (regex over baresip's output)."""
        assert self.peer is not None
        try:
            return self.peer.wait_output(pattern, timeout, since)
        except BaresipError:
            raise
        except PeerError as e:
            raise BaresipError(str(e)) from None

    def mark(self) -> int:
        assert self.peer is not None
        return self.peer.mark()

    @property
    def output(self) -> str:
        return self.peer.output if self.peer else ""

    def tail(self, lines: int = 40) -> str:
        return self.peer.tail(lines) if self.peer else ""

    @property
    def running(self) -> bool:
        return self.peer is not None and self.peer.running

    # -- conveniences --------------------------------------------------------

    def reginfo(self) -> str:
        return self.cmd("reginfo")

    def registration_status(self) -> str | None:
        """"OK", "ERR" (refused or failed) or None (not tried / in progress),
        from reginfo ("> sip:alice@example.test   OK   Expires 600s")."""
        m = re.search(r"^[> ] \S+\s+(OK|ERR)\b", self.reginfo(), re.M)
        return m.group(1) if m else None

    def is_registered(self) -> bool:
        return self.registration_status() == "OK"

    def wait_registered(self, timeout: float = 10.0, status: str = "OK") -> None:
        """Poll reginfo until the registration status is ``status`` ("OK",
        or "ERR" to wait for a refusal)."""
        deadline = time.monotonic() + _scaled(timeout)
        while time.monotonic() < deadline:
            if self.registration_status() == status:
                return
            time.sleep(0.1)
        raise BaresipError(f"{self.name}: registration not {status} within {timeout}s: "
                           f"{self.reginfo().strip()!r}\noutput tail:\n{self.tail()}")

    def dial(self, uri: str) -> str:
        return self.cmd("dial", uri)

    def hangup(self) -> str:
        return self.cmd("hangup")

    def accept(self) -> str:
        return self.cmd("accept")

    def listcalls(self) -> str:
        return self.cmd("listcalls")

    def callstat(self) -> str:
        return self.cmd("callstat")

    def heard(self) -> str | None:
        """The WAV of what the agent heard in its latest call (sndfile's
        -dec.wav), or None before any call."""
        files = sorted(Path(self.snd_dir).glob("dump-*-dec.wav"), key=lambda f: f.stat().st_mtime)
        return str(files[-1]) if files else None

    def stop(self, timeout: float = 5.0) -> int | None:
        """Ask baresip to quit (ctrl_tcp), then SIGTERM, then SIGKILL.
        Returns its exit code (None if it never started)."""
        if self.peer is None:
            return None
        if self.peer.running and self._ctrl is not None:
            try:
                self.command("quit", timeout=2)
            except (BaresipError, OSError):
                pass
            try:
                self.peer.proc.wait(_scaled(timeout))
            except subprocess.TimeoutExpired:
                pass
        rc = self.peer.stop(timeout)
        if self._ctrl is not None:
            try:
                self._ctrl.close()
            except OSError:
                pass
        if self._ctrl_thread is not None:
            self._ctrl_thread.join(2)
        return rc

    def cleanup(self, keep: bool = False) -> None:
        """stop() and remove the directory the agent created (unless keep)."""
        self.stop()
        if self._own_dir and not keep and not os.environ.get("PARLEY_KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "Baresip":
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None and self.peer is not None:
            sys.stderr.write(f"--- {self.name} output tail ({self.dir}) ---\n{self.tail(60)}\n")
        self.cleanup(keep=exc_type is not None)


# ---------------------------------------------------------------------------
# Parley
# ---------------------------------------------------------------------------


class CtlResult(NamedTuple):
    """parleyctl's result; unpacks as (returncode, stdout, stderr). With
    json=True, ``stdout`` is the parsed JSON document."""

    returncode: int
    stdout: Any
    stderr: str


def _config_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return ",".join(str(x) for x in v)
    return str(v)


def _hostport(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _require_binary(path: str, env: str) -> None:
    if not os.access(path, os.X_OK):
        raise ParleyError(f"{path} is missing or not executable: build first "
                          f"(meson setup build && ninja -C build) or set ${env}")


_SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                      "ThreadSanitizer:", "==ERROR:")


class Parley:
    """One Parley server under test, in its own state directory.

        with Parley(config={"registrar.min_expires": 10}) as p:
            p.add_user("alice", "secret")
            p.start()
            c = p.client("alice")
            assert c.register().status == 200

    The constructor creates the directory (under $PARLEY_TEST_TMP or /tmp),
    runs ``parleyctl init`` and sets ``sip.tls_listen`` to
    ``ADDRESS:tls_port`` (a fresh port) plus every ``config`` key given
    ("section.key" -> value; bools become true/false). Leaving the ``with``
    block stops the server; then, if the block failed, the server exited
    non-zero or its log shows a sanitizer report, the directory is kept
    and its path and log tail printed (and in the last two cases
    ParleyError is raised); otherwise it is removed.
    """

    def __init__(self, *, domain: str = "example.test", address: str = "127.0.0.1",
                 config: Mapping[str, object] | None = None,
                 users: Mapping[str, str] | None = None, debug: bool = False,
                 name: str = "test", tls_port: int | None = None,
                 env: Mapping[str, str] | None = None, keep: bool | None = None,
                 user: str | None = None) -> None:
        self.domain = domain
        self.address = address
        self.debug = debug
        self.env = dict(env) if env is not None else None
        self.keep = bool(os.environ.get("PARLEY_KEEP_TMP")) if keep is None else keep
        self.parleyd = parleyd_path()
        self.parleyctl = parleyctl_path()
        _require_binary(self.parleyctl, "PARLEYCTL")
        self.dir = tempfile.mkdtemp(prefix=f"parley-{name}-", dir=_tmp_root())
        self.conf = os.path.join(self.dir, CONF_NAME)
        self.log_path = os.path.join(self.dir, LOG_NAME)
        # user: server.user, the packaged layout (init --user --state-dir):
        # the state in DIR/state is the user's, the configuration root's
        self.state_dir = os.path.join(self.dir, "state") if user else self.dir
        self.ca_file = os.path.join(self.state_dir, "pki", "ca.pem")
        self.tls_port = tls_port or free_port("tcp")
        self.users: dict[str, str] = {}
        self.proc: subprocess.Popen | None = None
        self.exit_code: int | None = None
        self._log_file: Any = None
        self._run_start = 0  # log line index where the current run began
        self._children: list[Any] = []  # peers/agents stopped before the server
        self._dns: Dnsmasq | None = None
        self._closed = False
        _cleanups.append(self._atexit)
        try:
            init = cmd_init(self.parleyctl, self.dir, domain, address)
            if user:
                init += ["--state-dir", self.state_dir, "--user", user]
            self._run(init)
            if user:
                os.chmod(self.dir, 0o755)  # as /etc: the user passes through
            self.config_set("sip.tls_listen", _hostport(address, self.tls_port))
            # the server-to-server (mutual TLS) listener: a port of its own too
            self.mtls_port = free_port("tcp")
            self.config_set("sip.mtls_listen", _hostport(address, self.mtls_port))
            # the relay is on by default: give it ports of this test's own
            self.relay_port = free_port("both")
            self.relay_tls_port = free_port("tcp")
            self.config_set("relay.listen", _hostport(address, self.relay_port))
            self.config_set("relay.tls_listen", _hostport(address, self.relay_tls_port))
            # the HTTPS web services: a port of this test's own
            self.https_port = free_port("tcp")
            self.config_set("https.listen", _hostport(address, self.https_port))
            # the media engine's ports too (a test's relay.port_range comes
            # from the same pool, so the two never overlap)
            media = free_ports(16, "udp", consecutive=True)
            self.config_set("media.port_range", f"{media[0]}-{media[-1]}")
            for k, v in (config or {}).items():
                self.config_set(k, v)
            for u, pw in (users or {}).items():
                self.add_user(u, pw)
        except BaseException:
            self._closed = True
            _cleanups.remove(self._atexit)
            self._report("setting up failed")
            raise

    # -- parleyctl ---------------------------------------------------------

    def _run(self, args: Sequence[str], input: str | None = None, timeout: float = 30.0,
             check: bool = True) -> subprocess.CompletedProcess:
        try:
            res = run_peer(args, timeout, input, env=self.env)
        except PeerError as e:
            raise ParleyError(str(e)) from None
        if check and res.returncode != 0:
            raise ParleyError(f"{' '.join(args)} exited {res.returncode}\n"
                              f"stdout: {res.stdout.strip()}\nstderr: {res.stderr.strip()}")
        return res

    def config_set(self, key: str, value: object) -> None:
        """``parleyctl config set KEY VALUE`` (takes effect at start or reload)."""
        self._run(cmd_config_set(self.parleyctl, self.conf, key, _config_value(value)))

    def add_user(self, name: str, password: str) -> None:
        """``parleyctl user add NAME --password-stdin``; remembers the password
        for client()."""
        self._run(cmd_user_add(self.parleyctl, self.conf, name), input=password + "\n")
        self.users[name] = password

    def ctl(self, *args: str, input: str | None = None, json: bool = False,
            timeout: float = 30.0) -> CtlResult:
        """Run ``parleyctl -c CONF [--json] ARGS...``; returns (returncode,
        stdout, stderr), stdout parsed when ``json`` (ParleyError if it is
        not JSON)."""
        res = self._run(cmd_ctl(self.parleyctl, self.conf, args, json), input, timeout, check=False)
        out: Any = res.stdout
        if json:
            try:
                out = jsonlib.loads(res.stdout) if res.stdout.strip() else None
            except ValueError as e:
                raise ParleyError(f"parleyctl {' '.join(args)} --json printed non-JSON ({e}):\n"
                                  f"{res.stdout[:2000]}\nstderr: {res.stderr[:2000]}") from None
        return CtlResult(res.returncode, out, res.stderr)

    # -- the daemon ----------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, timeout: float = 15.0, wait_ready: bool = True) -> LogRecord | None:
        """Spawn ``parleyd -c CONF [-d]`` with stdout and stderr appended to
        DIR/parleyd.log, and wait for ``event=server.ready``; returns that
        line. ParleyError (with the log's tail) if it exits first or times out."""
        if self.running:
            raise ParleyError("parleyd is already running")
        _require_binary(self.parleyd, "PARLEYD")
        self._run_start = len(self.log_lines(since=0))
        self._log_file = open(self.log_path, "ab")
        self.exit_code = None
        self.proc = _popen(cmd_daemon(self.parleyd, self.conf, self.debug),
                           stdin=subprocess.DEVNULL, stdout=self._log_file,
                           stderr=subprocess.STDOUT, env=self.env, cwd=self.dir)
        if not wait_ready:
            return None
        try:
            return self.wait_log(READY_EVENT, timeout=timeout)
        except LogTimeout as e:
            rc = self.proc.poll()
            if rc is not None:
                raise ParleyError(f"parleyd exited with {rc} before {READY_EVENT}; log tail:\n"
                                  f"{self.log_tail()}") from None
            raise ParleyError(str(e)) from None

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait (SIGKILL after ``timeout``); returns the exit code
        (negative: killed by that signal)."""
        if self.proc is None:
            raise ParleyError("parleyd was never started")
        self.exit_code = _terminate(self.proc, _scaled(timeout))
        self._close_log()
        return self.exit_code

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def kill(self, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` (default SIGKILL) and wait; returns the exit code."""
        if self.proc is None:
            raise ParleyError("parleyd was never started")
        self.exit_code = _terminate(self.proc, _scaled(10.0), sig)
        self._close_log()
        return self.exit_code

    def reload(self) -> int:
        """SIGHUP; returns a log mark to wait_log(since=...) from."""
        if not self.running:
            raise ParleyError("parleyd is not running")
        mark = self.log_mark()
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)
        return mark

    # -- the log ----------------------------------------------------------

    def log_text(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_lines(self, since: int | None = None) -> list[LogRecord]:
        """Parsed log lines from index ``since`` (default: the start of the
        current run; 0: the whole file, every run). A final line without
        its newline yet is left out."""
        text = self.log_text()
        lines = text.split("\n")[:-1]  # the last element is "" or a partial line
        start = self._run_start if since is None else since
        return [parse_logfmt(l) for l in lines[start:]]

    def log_mark(self) -> int:
        """An index into the log (for since=) -- everything so far."""
        return self._run_start + len(self.log_lines())

    def find_log(self, event: str | None = None, *, since: int | None = None,
                 fields: Mapping[str, Any] | None = None, **kw: Any) -> list[LogRecord]:
        """Lines with that event and fields (values: string, compiled regex
        matched in full, or predicate). ``fields`` takes names that are not
        Python identifiers (``{"tls.version": "TLSv1.3"}``)."""
        want = dict(fields or {}, **kw)
        return [r for r in self.log_lines(since) if _matches(r, event, want)]

    def wait_log(self, event: str | None = None, timeout: float = 10.0, *,
                 since: int | None = None, fields: Mapping[str, Any] | None = None,
                 **kw: Any) -> LogRecord:
        """Wait for a line with ``event=EVENT`` and those ``key=value``
        fields (see find_log), from ``since`` (default: this run's start).
        Raises LogTimeout with the log's tail; fails fast if parleyd exits."""
        want = dict(fields or {}, **kw)
        timeout = _scaled(timeout)
        deadline = time.monotonic() + timeout
        start = self._run_start if since is None else since
        while True:
            for r in self.log_lines(start):
                if _matches(r, event, want):
                    return r
            exited = self.proc is not None and self.proc.poll() is not None
            if exited or time.monotonic() >= deadline:
                if exited:
                    # one last look: the line may have been written just before exiting
                    for r in self.log_lines(start):
                        if _matches(r, event, want):
                            return r
                desc = " ".join([f"event={event}"] if event else []) + "".join(
                    f" {k}={v!r}" for k, v in want.items())
                why = (f"parleyd exited ({self.proc.returncode})" if exited and self.proc
                       else f"{timeout:.1f}s passed")
                raise LogTimeout(f"no log line with {desc.strip()} ({why}); log tail:\n"
                                 f"{self.log_tail()}")
            time.sleep(0.05)

    def assert_no_log(self, event: str | None = None, *, since: int | None = None,
                      fields: Mapping[str, Any] | None = None, **kw: Any) -> None:
        found = self.find_log(event, since=since, fields=fields, **kw)
        if found:
            raise AssertionError(f"unexpected log line: {found[0].raw}")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:]) or "(log is empty)"

    def sanitizer_reports(self) -> list[str]:
        """Log lines that look like an ASan/UBSan/LSan/TSan report."""
        return [l for l in self.log_text().splitlines() if any(m in l for m in _SANITIZER_MARKERS)]

    # -- clients and peers ------------------------------------------------

    def connect(self, **kw: Any) -> sipclient.SipConnection:
        """A SipConnection to the TLS listener, verifying the server with
        ca_file and the name ``domain`` (override with server_hostname=,
        verify=False...)."""
        kw.setdefault("cafile", self.ca_file)
        kw.setdefault("server_hostname", self.domain)
        return sipclient.SipConnection(self.address, self.tls_port, **kw)

    def connect_mtls(self, **kw: Any) -> sipclient.SipConnection:
        """The same to the server-to-server (mutual TLS) listener, as a
        partner's server connects; give it certfile/keyfile."""
        kw.setdefault("cafile", self.ca_file)
        kw.setdefault("server_hostname", self.domain)
        return sipclient.SipConnection(self.address, self.mtls_port, **kw)

    def client(self, user: str | None = None, password: str | None = None, *,
               algorithm: str | None = None, **kw: Any) -> sipclient.SipClient:
        """A SipClient for ``user`` (password from add_user unless given),
        connected to the TLS listener (see connect)."""
        if password is None and user is not None:
            password = self.users.get(user)
        kw.setdefault("name", user or "")
        conn = self.connect(**kw)
        return sipclient.SipClient(conn, user=user, domain=self.domain, password=password,
                                   algorithm=algorithm)

    def dns(self) -> Dnsmasq:
        """A DNS server (dnsmasq) for this deployment's names, started on
        first use: sip.DOMAIN and DOMAIN resolve to the server's address, as
        a site's DNS would, so clients can follow the Record-Route and
        Contact URIs Parley writes with its name (sip.advertised_name)."""
        if self._dns is None:
            self._dns = Dnsmasq(self, hosts=[(f"sip.{self.domain}", self.address),
                                             (self.domain, self.address)],
                                domains=[self.domain])
        return self._dns

    def baresip(self, user: str, password: str | None = None, **kw: Any) -> Baresip:
        """A baresip agent for ``user`` with this server as outbound proxy
        and its DNS (see dns()); stopped before the server when the Parley
        block ends."""
        if password is None:
            password = self.users.get(user)
        kw.setdefault("domain", self.domain)
        kw.setdefault("proxy", (self.address, self.tls_port))
        kw.setdefault("cafile", self.ca_file)
        config = dict(kw.get("config") or {})
        config.setdefault("dns_server", self.dns().nameserver)
        kw["config"] = config
        agent = Baresip(user, password, **kw)
        self._children.append(agent)
        return agent

    def spawn_peer(self, args: Sequence[str], **kw: Any) -> Peer:
        """spawn_peer(), stopped before the server when the block ends."""
        peer = Peer(args, **kw)
        self._children.append(peer)
        return peer

    # -- teardown -----------------------------------------------------------

    def _stop_children(self, failed: bool) -> None:
        for child in reversed(self._children):
            try:
                if isinstance(child, Baresip):
                    if failed:
                        sys.stderr.write(f"--- {child.name} output tail ({child.dir}) ---\n"
                                         f"{child.tail(60)}\n")
                    child.cleanup(keep=failed)
                else:
                    child.stop()
            except Exception as e:  # keep tearing down the rest
                sys.stderr.write(f"harness: stopping {child!r} failed: {e}\n")
        self._children.clear()

    def _report(self, why: str) -> None:
        sys.stderr.write(f"=== Parley state directory kept: {self.dir} ({why})\n"
                         f"=== parleyd log tail:\n{self.log_tail(60)}\n")

    def close(self, failed: bool = False) -> None:
        """Stop peers and the server; remove the directory unless the test
        failed (or keep is set). Raises ParleyError if the server exited
        non-zero or a sanitizer reported something, when not already failing."""
        if self._closed:
            return
        self._closed = True
        if self._atexit in _cleanups:
            _cleanups.remove(self._atexit)
        self._stop_children(failed)
        problems = []
        if self.running:
            rc = self.stop()
            if rc != 0:
                problems.append(f"parleyd exited with {rc} on SIGTERM")
        elif self.proc is not None and self.exit_code is None:
            problems.append(f"parleyd died during the test (exit {self.proc.returncode})")
            _forget(self.proc)
        self._close_log()
        reports = self.sanitizer_reports()
        if reports:
            problems.append("sanitizer report in the log: " + reports[0])
        if failed or problems:
            self._report("; ".join(problems) or "test failed")
        elif not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        if problems and not failed:
            raise ParleyError("; ".join(problems) + f" (state kept in {self.dir})")

    def _atexit(self) -> None:
        if not self._closed:
            try:
                self.close(failed=True)
            except Exception:
                pass

    def __enter__(self) -> "Parley":
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close(failed=exc_type is not None)

    def __repr__(self) -> str:
        return f"<Parley {self.domain} {_hostport(self.address, self.tls_port)} dir={self.dir}>"
