"""A headless linphonec (Debian's linphone-cli 5.1) as a test peer.

    with Parley(users={"alice": "a-pw", "bob": "b-pw"}) as p:
        p.start()
        bob, alice = Linphone("bob", parley=p), Linphone("alice", parley=p)
        alice.wait_registered(); bob.wait_registered()
        alice.command("chat sip:bob@example.test hello")
        bob.wait_for(MESSAGE)                       # .group(2) == "hello"
        alice.command("call sip:bob@example.test")
        bob.wait_for(INCOMING); bob.command("answer")
        alice.wait_for(STREAMS); bob.wait_for(STREAMS)
        mark = bob.mark(); alice.command("terminate"); bob.wait_for(ENDED, since=mark)
        bob.stop()                                  # record.wav is complete
        assert tone_ratio(bob.record_path) > 0.9    # bob heard alice's 440 Hz

The recipe:

* Each agent has a directory of its own: ``linphonerc`` (``-c``; linphonec
  rewrites it on exit, so start() writes it afresh), ``home/`` (HOME:
  history, ZRTP cache, linphone.db), ``hosts``, ``play.wav`` (440 Hz unless
  ``play_file``), ``record.wav`` (what it hears), ``linphonec.log``.
* TLS only (``sip_port``/``sip_tcp_port`` 0, ``sip_tls_port`` a free port),
  proxy and outbound route by name ``sip:sip.DOMAIN:PORT;transport=tls``
  (without ``reg_route`` an out-of-dialog MESSAGE goes to DOMAIN:5061),
  the server checked with ``root_ca``, ``verify_server_certs``,
  ``verify_server_cn``; SRTP mandatory.
* mbedtls ignores IP addresses in certificates, so sip.DOMAIN must resolve:
  linphonec runs in a mount namespace of its own with DIR/hosts bound
  over /etc/hosts (``unshare --mount``, plus ``--map-root-user`` if not root).
* stdin/stdout are plain pipes, no terminal needed; readline echoes the
  commands it reads into the output.
* Audio: ``soundcard use files``, ``play FILE``, ``record FILE``, then
  ``register`` (reg_sendregister=0 in the file: nothing touches the network
  before the set-up commands are read).
* linphonec prints nothing on registration: wait_registered() polls
  ``status register``. If the server sends a TLS CertificateRequest,
  linphonec prints ``Password for (null) on (null):`` and its whole core
  stops until a line is typed (which it takes as the password): every wait
  and command here then fails.
"""

from __future__ import annotations

import array
import math
import os
import re
import shutil
import tempfile
import time
import wave
from pathlib import Path
from typing import Any, Mapping

from harness import TIMEOUT_SCALE, Peer, PeerError, free_port, free_ports

__all__ = ["Linphone", "LinphoneError", "REGISTERED", "INCOMING", "CONNECTED", "STREAMS",
           "ENDED", "CALL_ERROR", "MESSAGE", "PASSWORD_PROMPT", "make_tone", "tone_ratio"]

# What linphonec 5.1 prints (console/linphonec.c and commands.c).
REGISTERED = r"registered, identity=(\S+) duration=(\d+)"   # answer to "status register"
NOT_REGISTERED = r"registered=(-1|0)\b"                     # -1: trying/failed, 0: disabled
INCOMING = r"Receiving new incoming call from (.+), assigned id (\d+)"
CONNECTED = r"Call (\d+) with (.+) connected\."
STREAMS = r"Media streams established with (.+) for call (\d+) \((audio|video)\)\."
ENDED = r"Call (\d+) with (.+) ended \((.*)\)\."    # also when the BYE could not be sent
CALL_ERROR = r"Call (\d+) with (.+) error\."
MESSAGE = r"Message received from (\S+): (.*)"
PASSWORD_PROMPT = r"Password for (.*?) on (.*?): "


class LinphoneError(PeerError):
    pass


def make_tone(path: str, freq: float = 440.0, seconds: float = 30.0, rate: int = 8000) -> str:
    """A mono 16-bit WAV sine at ``freq`` Hz, half full scale."""
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(array.array("h", (int(16000 * math.sin(2 * math.pi * freq * i / rate))
                                        for i in range(int(rate * seconds)))).tobytes())
    return path


def tone_ratio(path: str, freq: float = 440.0, block: float = 0.1,
               tail: float | None = None) -> float:
    """Share (0..1) of the energy of a 16-bit WAV that is at ``freq`` (Goertzel
    per ``block`` seconds, so that jitter-buffer phase jumps do not matter),
    over the whole file or its last ``tail`` seconds.
    About 1 for a clean tone, about 0 for another tone or noise, 0 for silence."""
    with wave.open(path, "rb") as w:
        rate, width, chans = w.getframerate(), w.getsampwidth(), w.getnchannels()
        frames = w.readframes(w.getnframes())
    if width != 2:
        raise ValueError(f"{path}: {8 * width}-bit samples, expected 16")
    samples = array.array("h", frames)[::chans]
    if tail is not None:
        samples = samples[-int(rate * tail):]
    n = max(1, int(rate * block))
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    tone = total = 0.0
    for i in range(0, len(samples) - n + 1, n):
        s1 = s2 = 0.0
        for x in samples[i:i + n]:
            s1, s2 = x + coeff * s1 - s2, s1
        tone += (s1 * s1 + s2 * s2 - coeff * s1 * s2) * 2 / n
        total += sum(x * x for x in samples[i:i + n])
    return min(1.0, tone / total) if total else 0.0


class Linphone:
    """One linphonec agent for ``user``.

    Either ``parley=`` (domain, CA file, TLS port, address and the user's
    password come from it; the directory is PARLEY_DIR/linphone-USER, kept
    or removed with the server's; stop() is called before the server
    stops) or the facts: ``domain``, ``cafile``, ``port`` (the server's TLS
    port), ``password``, ``address`` (what sip.DOMAIN resolves to, default
    127.0.0.1), ``directory`` (default: a fresh one under $PARLEY_TEST_TMP).
    ``register=False``: no REGISTER (requests still go through the proxy,
    answering 407s). ``auto_answer``: ``-a``. ``config`` adds or overrides
    linphonerc keys, {"section": {"key": value}}. ``log_level`` 1-6: ``-d N
    -l DIR/linphonec.log`` (6 shows every SIP message and TLS check).
    """

    BINARY = "linphonec"

    def __init__(self, user: str, password: str | None = None, *, parley: Any = None,
                 domain: str | None = None, cafile: str | None = None, port: int | None = None,
                 address: str | None = None, directory: str | None = None,
                 register: bool = True, auto_answer: bool = False, play_file: str | None = None,
                 config: Mapping[str, Mapping[str, object]] | None = None, log_level: int = 0,
                 name: str | None = None, start: bool = True, ready_timeout: float = 10.0) -> None:
        if parley is not None:
            password = parley.users.get(user) if password is None else password
            domain, cafile = domain or parley.domain, cafile or parley.ca_file
            port, address = port or parley.tls_port, address or parley.address
            directory = directory or os.path.join(parley.dir, f"linphone-{user}")
        if not (domain and cafile and port):
            raise ValueError("Linphone needs parley=, or domain=, cafile= and port=")
        self.user, self.password, self.domain = user, password, domain
        self.name = name or f"linphone-{user}"
        self.aor = f"sip:{user}@{domain}"
        self.server_name = f"sip.{domain}"
        self._own_dir = directory is None
        self.dir = directory or tempfile.mkdtemp(
            prefix=f"{self.name}-", dir=os.environ.get("PARLEY_TEST_TMP") or "/tmp")
        self.home = os.path.join(self.dir, "home")
        os.makedirs(os.path.join(self.home, ".local", "share", "linphone"), exist_ok=True)
        self.conf = os.path.join(self.dir, "linphonerc")
        self.hosts = os.path.join(self.dir, "hosts")
        self.log_path = os.path.join(self.dir, "linphonec.log")
        self.record_path = os.path.join(self.dir, "record.wav")
        self.play_path = play_file or make_tone(os.path.join(self.dir, "play.wav"))
        self.sip_port = free_port("tcp")
        self.rtp_port = free_ports(2, "udp", consecutive=True)[0]  # RTP and RTCP
        self.register, self.auto_answer, self.log_level = register, auto_answer, log_level
        self.ready_timeout = ready_timeout
        Path(self.hosts).write_text(f"127.0.0.1 localhost\n"
                                    f"{address or '127.0.0.1'} {self.server_name} {domain}\n")
        proxy = f"sip:{self.server_name}:{port};transport=tls"
        self.settings: dict[str, dict[str, object]] = {
            "sip": {"sip_port": 0, "sip_tcp_port": 0, "sip_tls_port": self.sip_port,
                    "use_ipv6": 0, "root_ca": cafile, "verify_server_certs": 1,
                    "verify_server_cn": 1, "media_encryption": "srtp",
                    "media_encryption_mandatory": 1, "default_proxy": 0,
                    "register_only_when_network_is_up": 0, "inc_timeout": 60},
            "proxy_0": {"reg_proxy": f"<{proxy}>", "reg_route": f"<{proxy};lr>",
                        "reg_identity": f"<{self.aor}>", "reg_expires": 600,
                        "reg_sendregister": 0, "publish": 0},    # start() sends "register"
            "auth_info_0": {"username": user, "passwd": password or "", "realm": domain,
                            "domain": domain},
            "rtp": {"audio_rtp_port": self.rtp_port, "video_rtp_port": 0, "text_rtp_port": 0},
            "video": {"capture": 0, "display": 0},
            "sound": {"echocancellation": 0},
        }
        for section, keys in (config or {}).items():
            self.settings.setdefault(section, {}).update(keys)
        self.peer: Peer | None = None
        self._prompt_from = 0  # prompts before this output position were answered
        if parley is not None:
            parley._children.append(self)  # Parley.close() calls stop() before the server's
        if start:
            self.start(ready_timeout)

    # -- life cycle --------------------------------------------------------

    def write_config(self) -> None:
        Path(self.conf).write_text("".join(
            f"[{section}]\n" + "".join(f"{k}={v}\n" for k, v in keys.items()) + "\n"
            for section, keys in self.settings.items()))

    def args(self) -> list[str]:
        cmd = [self.BINARY, "-c", self.conf] + (["-a"] if self.auto_answer else [])
        if self.log_level:
            cmd += ["-d", str(self.log_level), "-l", self.log_path]
        ns = ["unshare", "--mount"] + ([] if os.geteuid() == 0 else ["--map-root-user"])
        return ns + ["sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', self.hosts] + cmd

    def start(self, timeout: float | None = None) -> None:
        """Write linphonerc, start linphonec, switch it to sound files, then
        (``register``) send ``register``."""
        if shutil.which(self.BINARY) is None:
            raise LinphoneError("linphonec is not installed (apt-get install linphone-cli)")
        self.write_config()
        self._prompt_from = 0
        env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "DISPLAY"))}
        env.update(HOME=self.home, LANG="C.UTF-8")
        self.peer = Peer(self.args(), name=self.name, env=env, cwd=self.dir, stdin=True)
        self.wait_for(r"linphonec> ", timeout or self.ready_timeout)
        mark = self.command("soundcard use files")
        self.wait_for(r"Using wav files instead of soundcard\.", 5, since=mark)
        self.command(f"play {self.play_path}")
        self.command(f"record {self.record_path}")
        if self.register:
            self.command("register")

    def stop(self, timeout: float = 5.0) -> int | None:
        """``quit`` (unregisters), then SIGTERM, then SIGKILL; the exit code."""
        if self.peer is None:
            return None
        if self.peer.running:
            try:
                self.command("quit")
                self.peer.proc.wait(timeout * TIMEOUT_SCALE)
            except Exception:  # stuck at a prompt, or slow: signals follow
                pass
        return self.peer.stop(timeout)

    def cleanup(self, keep: bool = False) -> None:
        """stop(), and remove a directory the agent created (unless keep)."""
        self.stop()
        if self._own_dir and not keep and not os.environ.get("PARLEY_KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "Linphone":
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None and self.peer is not None:
            print(f"--- {self.name} output tail ({self.dir}) ---\n{self.tail(60)}")
        self.cleanup(keep=exc_type is not None)

    # -- driving -------------------------------------------------------------

    def command(self, text: str, answer_prompt: bool = False) -> int:
        """Send one console line; returns the output mark before it. A line
        sent while a ``Password for`` prompt is pending is taken as the
        password: LinphoneError instead, unless ``answer_prompt`` (later
        waits then accept the prompts seen so far)."""
        if self.peer is None or not self.peer.running:
            raise LinphoneError(f"{self.name} is not running; output tail:\n{self.tail()}")
        if not answer_prompt:
            self._check_prompt(f"sending {text!r}")
        mark = self.mark()
        self.peer.send_input(text.rstrip("\n") + "\n")
        if answer_prompt:
            self._prompt_from = self.mark()
        return mark

    def _check_prompt(self, doing: str) -> None:
        p = re.search(PASSWORD_PROMPT, self.output[self._prompt_from:])
        if p:
            raise LinphoneError(f"{self.name} is stuck at the prompt {p.group(0)!r} ({doing});"
                                f" output tail:\n{self.tail()}")

    def wait_for(self, pattern: str | re.Pattern, timeout: float = 10.0, since: int = 0,
                 allow_prompt: bool = False) -> re.Match:
        """Wait until ``pattern`` matches the output from ``since`` (a mark)
        on; returns the match. LinphoneError on timeout, on exit, and --
        unless ``allow_prompt`` -- on a ``Password for`` prompt anywhere in
        the output (linphonec does nothing more until a line is typed)."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout * TIMEOUT_SCALE
        while True:
            m = rx.search(self.output, since)
            if m:
                return m
            if not allow_prompt:
                self._check_prompt(f"waiting for {rx.pattern!r}")
            if self.peer is None or not self.peer.running:
                raise LinphoneError(f"{self.name} exited before output matching {rx.pattern!r};"
                                    f" output tail:\n{self.tail()}")
            if time.monotonic() >= deadline:
                raise LinphoneError(f"{self.name}: no output matching {rx.pattern!r} within "
                                    f"{timeout * TIMEOUT_SCALE:.1f}s; output tail:\n{self.tail()}")
            time.sleep(0.05)

    def wait_registered(self, timeout: float = 10.0) -> re.Match:
        """Poll ``status register`` until it says registered; the match."""
        deadline = time.monotonic() + timeout * TIMEOUT_SCALE
        while True:
            m = self.wait_for(f"{REGISTERED}|{NOT_REGISTERED}", 5,
                              since=self.command("status register"))
            if m.group(1):
                return m
            if time.monotonic() >= deadline:
                raise LinphoneError(f"{self.name}: not registered within "
                                    f"{timeout * TIMEOUT_SCALE:.1f}s; output tail:\n{self.tail()}")
            time.sleep(0.1)

    # -- output --------------------------------------------------------------

    @property
    def output(self) -> str:
        return self.peer.output if self.peer else ""

    def mark(self) -> int:
        """A position in the output, for wait_for(since=...)."""
        return len(self.output)

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output.splitlines()[-lines:])

    @property
    def running(self) -> bool:
        return self.peer is not None and self.peer.running

    @property
    def prompted(self) -> bool:
        """Has linphonec asked for a password (and so stopped working)?"""
        return re.search(PASSWORD_PROMPT, self.output) is not None
