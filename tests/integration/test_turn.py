#!/usr/bin/python3
"""tests/integration/test_turn.py: Parley's media relay (TURN, RFC 8656).

coturn's turnutils_uclient relays through Parley over UDP, TCP and TLS
with credentials from `parleyctl relay credentials` and computed from the
secret (-W); a small TURN client below checks the precise answers: 401 for
expired / wrong / unknown-secret credentials, 403 for refused peers, 438
for stale nonces, 486/508 for quotas, 437/441/442/443, SHA-256 integrity,
Send/Data indications and channels with their counters in `parleyctl relay
status --json` and in the allocation_ended log line, the bandwidth limit,
secret rotation without a reload, malformed input, and a start-up refusal.
PASSWORD-ALGORITHM SHA-256 (RFC 8489 §9.2.2) relays, a tampered
PASSWORD-ALGORITHMS echo is refused (bid-down), and under security.fips =
approved-only only the SHA-256 key is accepted: turnutils_uclient (MD5 key
only) is refused with the reason (TestTurnFips).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import select
import shutil
import socket
import ssl
import struct
import subprocess
import time
import unittest
import zlib

from harness import Parley, TIMEOUT_SCALE, free_port, free_ports, run_peer

MAGIC = 0x2112A442
MAGIC_BYTES = struct.pack("!I", MAGIC)

BINDING, ALLOCATE, REFRESH, SEND, DATA, CREATE_PERMISSION, CHANNEL_BIND = 1, 3, 4, 6, 7, 8, 9
REQUEST, INDICATION, SUCCESS, ERROR = 0, 1, 2, 3

A_MAPPED, A_USERNAME, A_MI, A_ERROR, A_UNKNOWN = 0x0001, 0x0006, 0x0008, 0x0009, 0x000A
A_CHANNEL, A_LIFETIME, A_PEER, A_DATA, A_REALM, A_NONCE = 0x000C, 0x000D, 0x0012, 0x0013, 0x0014, 0x0015
A_RELAYED, A_RAF, A_EVEN_PORT, A_TRANSPORT, A_DF = 0x0016, 0x0017, 0x0018, 0x0019, 0x001A
A_MI256, A_PA, A_USERHASH, A_XOR_MAPPED, A_TOKEN = 0x001C, 0x001D, 0x001E, 0x0020, 0x0022
A_PAS, A_SOFTWARE, A_FINGERPRINT = 0x8002, 0x8022, 0x8028

UDP_TRANSPORT = struct.pack("!I", 17 << 24)


def scaled(t: float) -> float:
    return t * TIMEOUT_SCALE


# ---------------------------------------------------------------------------
# STUN encoding
# ---------------------------------------------------------------------------


def msg_type(method: int, cls: int) -> int:
    return ((method & 0xF) | ((method & 0x70) << 1) | ((method & 0xF80) << 2) | ((cls & 1) << 4)
            | ((cls & 2) << 7))


def attr(t: int, v: bytes) -> bytes:
    return struct.pack("!HH", t, len(v)) + v + b"\0" * ((4 - len(v) % 4) % 4)


def xor_addr(host: str, port: int, tid: bytes) -> bytes:
    if ":" in host:
        ip = socket.inet_pton(socket.AF_INET6, host)
        mask = MAGIC_BYTES + tid
        return struct.pack("!BBH", 0, 2, port ^ 0x2112) + bytes(a ^ b for a, b in zip(ip, mask))
    ip = socket.inet_aton(host)
    return struct.pack("!BBH", 0, 1, port ^ 0x2112) + bytes(a ^ b for a, b in zip(ip, MAGIC_BYTES))


def encode(method: int, cls: int, tid: bytes, attrs: list, key: bytes | None = None,
           integrity: str = "sha1", fingerprint: bool = True) -> bytes:
    mt = msg_type(method, cls)
    body = b"".join(attr(t, v) for t, v in attrs)
    if key is not None:
        t, size, h = (A_MI, 20, hashlib.sha1) if integrity == "sha1" else (A_MI256, 32, hashlib.sha256)
        hdr = struct.pack("!HHI", mt, len(body) + 4 + size, MAGIC) + tid
        body += attr(t, hmac.new(key, hdr + body, h).digest())
    if fingerprint:
        hdr = struct.pack("!HHI", mt, len(body) + 8, MAGIC) + tid
        body += attr(A_FINGERPRINT, struct.pack("!I", (zlib.crc32(hdr + body) ^ 0x5354554E) & 0xFFFFFFFF))
    return struct.pack("!HHI", mt, len(body), MAGIC) + tid + body


class Msg:
    def __init__(self, data: bytes) -> None:
        self.raw = data
        t, length, cookie = struct.unpack("!HHI", data[:8])
        assert cookie == MAGIC and length + 20 == len(data), data[:20].hex()
        self.method = (t & 0xF) | ((t >> 1) & 0x70) | ((t >> 2) & 0xF80)
        self.cls = ((t >> 4) & 1) | ((t >> 7) & 2)
        self.tid = data[8:20]
        self.attrs: list[tuple[int, bytes, int]] = []
        off = 20
        while off < len(data):
            at, al = struct.unpack("!HH", data[off:off + 4])
            self.attrs.append((at, data[off + 4:off + 4 + al], off))
            off += 4 + al + (4 - al % 4) % 4

    def get(self, t: int) -> bytes | None:
        for at, v, _ in self.attrs:
            if at == t:
                return v
        return None

    @property
    def code(self) -> int | None:
        v = self.get(A_ERROR)
        return None if v is None else (v[2] & 7) * 100 + v[3]

    @property
    def reason(self) -> str:
        v = self.get(A_ERROR)
        return "" if v is None else v[4:].decode(errors="replace")

    def xaddr(self, t: int) -> tuple[str, int]:
        v = self.get(t)
        assert v is not None, f"no attribute {t:#x}"
        port = struct.unpack("!H", v[2:4])[0] ^ 0x2112
        if v[1] == 1:
            return socket.inet_ntoa(bytes(a ^ b for a, b in zip(v[4:8], MAGIC_BYTES))), port
        mask = MAGIC_BYTES + self.tid
        return socket.inet_ntop(socket.AF_INET6, bytes(a ^ b for a, b in zip(v[4:20], mask))), port

    def verify(self, key: bytes, integrity: str = "sha1") -> bool:
        t, h = (A_MI, hashlib.sha1) if integrity == "sha1" else (A_MI256, hashlib.sha256)
        for at, v, off in self.attrs:
            if at == t:
                hdr = bytearray(self.raw[:off])
                struct.pack_into("!H", hdr, 2, off + 4 + len(v) - 20)
                return hmac.compare_digest(hmac.new(key, bytes(hdr), h).digest()[:len(v)], v)
        return False

    def __repr__(self) -> str:
        return f"<Msg method={self.method} cls={self.cls} code={self.code} {self.reason!r}>"


def rest_password(secret: str, username: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()


# ---------------------------------------------------------------------------
# A small TURN client
# ---------------------------------------------------------------------------


class TurnClient:
    def __init__(self, host: str, port: int, transport: str = "udp", username: str = "",
                 password: str = "", cafile: str | None = None, server_hostname: str | None = None,
                 pwalg: int = 1, integrity: str = "sha1", rcvbuf: int = 0) -> None:
        self.server = (host, port)
        self.transport = transport
        self.username, self.password = username, password
        self.pwalg, self.integrity = pwalg, integrity
        self.realm: str | None = None
        self.nonce: bytes | None = None
        self.pas: bytes | None = None
        self.buf = b""
        self.pending: list[bytes] = []
        if transport == "udp":
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self.sock = socket.socket(family, socket.SOCK_DGRAM)
            self.sock.connect(self.server)
        else:
            raw = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                                socket.SOCK_STREAM)
            if rcvbuf:  # before connecting: a small window, a client that takes data slowly
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            raw.settimeout(scaled(5))
            raw.connect(self.server)
            if transport == "tls":
                ctx = ssl.create_default_context(cafile=cafile)
                raw = ctx.wrap_socket(raw, server_hostname=server_hostname)
            self.sock = raw

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "TurnClient":
        return self

    def __exit__(self, *a: object) -> None:
        self.close()

    @property
    def local(self) -> tuple[str, int]:
        return self.sock.getsockname()[:2]

    @property
    def key(self) -> bytes:
        text = f"{self.username}:{self.realm}:{self.password}".encode()
        return (hashlib.sha256 if self.pwalg == 2 else hashlib.md5)(text).digest()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data) if self.transport != "udp" else self.sock.send(data)

    def recv_frame(self, timeout: float) -> bytes | None:
        deadline = time.monotonic() + scaled(timeout)
        while True:
            if self.transport != "udp" and len(self.buf) >= 4:
                n = struct.unpack("!H", self.buf[2:4])[0]
                flen = 20 + n if self.buf[0] < 0x40 else 4 + n + (4 - n % 4) % 4
                if len(self.buf) >= flen:
                    frame, self.buf = self.buf[:flen], self.buf[flen:]
                    return frame
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if not (isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()):
                if not select.select([self.sock], [], [], left)[0]:
                    return None
            data = self.sock.recv(65536)
            if self.transport == "udp":
                return data
            if not data:
                raise ConnectionError("server closed the connection")
            self.buf += data

    def transact(self, method: int, attrs: list, auth: bool = True, tid: bytes | None = None,
                 fingerprint: bool = True, pa: int | None = None) -> Msg:
        """A request and its response. Attribute values may be functions of
        the transaction id (XOR addresses). A 401 to a request sent without
        credentials and a 438 are answered by retrying with the realm and
        nonce they carry; a 401 to credentials is returned."""
        stale = 0
        while True:
            t = tid or os.urandom(12)
            a = [(at, v(t) if callable(v) else v) for at, v in attrs]
            key = None
            sent_creds = auth and self.nonce is not None
            if sent_creds:
                a += [(A_USERNAME, self.username.encode()), (A_REALM, self.realm.encode()),
                      (A_NONCE, self.nonce)]
                if self.pwalg == 2:
                    # RFC 8489 §9.2.4: echo the offer, name the algorithm
                    # (pa: another number, to test the server's checks)
                    if self.pas is not None:
                        a.append((A_PAS, self.pas))
                    a.append((A_PA, struct.pack("!HH", pa or 2, 0)))
                key = self.key
            resp = self._exchange(encode(method, REQUEST, t, a, key, self.integrity, fingerprint), t)
            if resp.cls == ERROR and resp.code in (401, 438) and resp.get(A_NONCE):
                self.realm = resp.get(A_REALM).decode()
                self.nonce = resp.get(A_NONCE)
                self.pas = resp.get(A_PAS)
                if auth and ((resp.code == 401 and not sent_creds) or
                             (resp.code == 438 and stale < 2)):
                    stale += resp.code == 438
                    continue
            return resp

    def _exchange(self, data: bytes, tid: bytes) -> Msg:
        deadline = time.monotonic() + scaled(5)
        while time.monotonic() < deadline:
            self.send_raw(data)
            end = time.monotonic() + (scaled(0.5) if self.transport == "udp" else scaled(5))
            while time.monotonic() < end:
                f = self.recv_frame(max(0.01, end - time.monotonic()) / TIMEOUT_SCALE)
                if f is None:
                    break
                if f[0] < 0x40:
                    m = Msg(f)
                    if m.tid == tid and m.cls in (SUCCESS, ERROR):
                        return m
                    if m.cls == INDICATION:
                        self.pending.append(f)
                else:
                    self.pending.append(f)
            if self.transport != "udp":
                break
        raise TimeoutError(f"no answer to method {data[:2].hex()}")

    # TURN operations
    def allocate(self, **kw) -> Msg:
        attrs = [(A_TRANSPORT, UDP_TRANSPORT)] + kw.pop("attrs", [])
        return self.transact(ALLOCATE, attrs, **kw)

    def create_permission(self, *peers: tuple[str, int]) -> Msg:
        return self.transact(CREATE_PERMISSION,
                             [(A_PEER, lambda t, h=h, p=p: xor_addr(h, p, t)) for h, p in peers])

    def channel_bind(self, number: int, peer: tuple[str, int]) -> Msg:
        return self.transact(CHANNEL_BIND, [(A_CHANNEL, struct.pack("!HH", number, 0)),
                                            (A_PEER, lambda t: xor_addr(peer[0], peer[1], t))])

    def refresh(self, lifetime: int) -> Msg:
        return self.transact(REFRESH, [(A_LIFETIME, struct.pack("!I", lifetime))])

    def send_indication(self, peer: tuple[str, int], data: bytes) -> None:
        tid = os.urandom(12)
        self.send_raw(encode(SEND, INDICATION, tid, [(A_PEER, xor_addr(peer[0], peer[1], tid)),
                                                     (A_DATA, data)], fingerprint=False))

    def send_channel(self, number: int, data: bytes) -> None:
        pad = b"\0" * ((4 - len(data) % 4) % 4) if self.transport != "udp" else b""
        self.send_raw(struct.pack("!HH", number, len(data)) + data + pad)

    def recv_data(self, timeout: float = 3) -> tuple:
        """('data', (host, port), payload) or ('channel', number, payload)."""
        deadline = time.monotonic() + scaled(timeout)
        while True:
            f = self.pending.pop(0) if self.pending else self.recv_frame(
                max(0.01, deadline - time.monotonic()) / TIMEOUT_SCALE)
            if f is None:
                raise TimeoutError("no data from the relay")
            if f[0] >= 0x40:
                n, ln = struct.unpack("!HH", f[:4])
                return "channel", n, f[4:4 + ln]
            m = Msg(f)
            if m.cls == INDICATION and m.method == DATA:
                return "data", m.xaddr(A_PEER), m.get(A_DATA)


class Peer:
    """A UDP peer on loopback."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.addr = self.sock.getsockname()

    def recv(self, timeout: float = 3) -> tuple[bytes, tuple[str, int]] | None:
        if not select.select([self.sock], [], [], scaled(timeout))[0]:
            return None
        return self.sock.recvfrom(65536)

    def close(self) -> None:
        self.sock.close()


def relay_ports(n: int = 64) -> str:
    ports = free_ports(n, "udp", consecutive=True)
    return f"{ports[0]}-{ports[-1]}"


# ---------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------


class TurnTestBase(unittest.TestCase):
    p: Parley

    def creds(self, user: str, lifetime: int | None = None) -> tuple[str, str]:
        args = ["relay", "credentials", user] + (["--lifetime", str(lifetime)] if lifetime else [])
        rc, out, err = self.p.ctl(*args, json=True)
        self.assertEqual(rc, 0, (out, err))
        return out["username"], out["password"]

    def secret(self) -> str:
        rc, out, err = self.p.ctl("relay", "secret", json=True)
        self.assertEqual(rc, 0, (out, err))
        return out["secret"]

    def client(self, user: str = "carol", transport: str = "udp", **kw) -> TurnClient:
        username, password = kw.pop("creds", None) or self.creds(user)
        port = self.p.relay_tls_port if transport == "tls" else self.p.relay_port
        return TurnClient("127.0.0.1", port, transport, username, password, cafile=self.p.ca_file,
                          server_hostname=self.p.domain, **kw)

    def status(self) -> dict:
        rc, out, err = self.p.ctl("relay", "status", json=True)
        self.assertEqual(rc, 0, err)
        self.assertTrue(out["ok"])
        return out

    def relay_round_trip(self, c: TurnClient, channel: int = 0x4005) -> None:
        """Allocates, sends to a loopback peer through the relay with a Send
        indication and on a channel, and gets the peer's answers back."""
        peer = Peer()
        try:
            r = c.allocate()
            self.assertEqual(r.cls, SUCCESS, r)
            self.assertTrue(r.verify(c.key, c.integrity), "the success response is not signed")
            relayed = r.xaddr(A_RELAYED)
            self.assertEqual(c.create_permission(peer.addr).cls, SUCCESS)
            c.send_indication(peer.addr, b"ping" * 25)
            data, src = peer.recv()
            self.assertEqual((data, src), (b"ping" * 25, relayed))
            peer.sock.sendto(b"pong" * 25, relayed)
            self.assertEqual(c.recv_data(), ("data", peer.addr, b"pong" * 25))
            self.assertEqual(c.channel_bind(channel, peer.addr).cls, SUCCESS)
            c.send_channel(channel, b"over a channel")
            data, src = peer.recv()
            self.assertEqual((data, src), (b"over a channel", relayed))
            peer.sock.sendto(b"and back", relayed)
            self.assertEqual(c.recv_data(), ("channel", channel, b"and back"))
            self.assertEqual(c.refresh(0).cls, SUCCESS)
        finally:
            peer.close()

    def allocation(self, client: TurnClient) -> dict:
        host, port = client.local
        want = f"{host}:{port}"
        for a in self.status()["allocations"]:
            if a["client"] == want:
                return a
        self.fail(f"no allocation for {want} in relay status")


class TestTurnRelay(TurnTestBase):
    """One server with loopback peers allowed (as the tests need) and two
    relay workers: clients land on either, and a reservation made on one
    (uclient's EVEN-PORT probe) is claimed on the other."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.p = Parley(name="turn", config={"relay.allowed_peers": "127.0.0.0/8",
                                            "relay.port_range": relay_ports(),
                                            "relay.workers": 2})
        try:
            cls.p.start()
        except BaseException:
            cls.p.close(failed=True)
            raise
        cls.failed = False

    @classmethod
    def tearDownClass(cls) -> None:
        cls.p.close(failed=cls.failed)

    def run(self, result=None):
        res = super().run(result)
        if result is not None and (result.failures or result.errors):
            type(self).failed = True
        return res

    # -- coturn's client --------------------------------------------------

    def uclient(self, *args: str, n: int = 30, port: int | None = None, exact: bool = True) -> str:
        """turnutils_uclient through the relay to turnutils_peer; with exact,
        every packet it sent must come back by its own count. Over TLS it
        takes each TLS record for one message, so two ChannelData messages
        that the relay wrote together count as one (see
        test_tls_relay_frames_every_message): there the relay's own counters
        decide."""
        peer_ports = free_ports(2, "udp", consecutive=True)
        peer = self.p.spawn_peer(["turnutils_peer", "-L", "127.0.0.1", "-p", str(peer_ports[0])])
        try:
            time.sleep(0.3)
            res = run_peer(["turnutils_uclient", *args, "-p", str(port or self.p.relay_port), "-e",
                            "127.0.0.1", "-r", str(peer_ports[0]), "-n", str(n), "127.0.0.1"],
                           timeout=90)
        finally:
            peer.stop()
        out = res.stdout + res.stderr
        self.assertEqual(res.returncode, 0, out[-3000:])
        lost = re.search(r"Total lost packets (\d+)", out)
        sent = re.findall(r"tot_send_msgs=(\d+), tot_recv_msgs=(\d+)", out)
        self.assertIsNotNone(lost, out[-3000:])
        self.assertTrue(sent, out[-3000:])
        total_sent, total_recv = map(int, sent[-1])
        clients = 1 if "-c" in args else 2  # RTP and RTCP unless -c
        self.assertEqual(total_sent, clients * n, out[-3000:])
        if exact:
            self.assertEqual(lost.group(1), "0", out[-3000:])
            self.assertEqual(total_recv, total_sent, out[-3000:])
        return out

    def test_uclient_udp_with_parleyctl_credentials(self) -> None:
        username, password = self.creds("alice", lifetime=3600)
        mark = self.p.log_mark()
        self.uclient("-u", username, "-w", password)
        # every relayed packet is counted, and logged when the allocation ends
        ended = self.p.wait_log("relay.allocation_ended", since=mark, user="alice",
                                transport="udp", to_peer_packets="30")
        self.assertEqual(ended["from_peer_packets"], "30")
        self.assertEqual(ended["to_peer_bytes"], ended["from_peer_bytes"])
        self.assertGreaterEqual(int(ended["to_peer_bytes"]), 30 * 100)

    def test_uclient_tcp_with_secret(self) -> None:
        mark = self.p.log_mark()
        self.uclient("-t", "-u", "bob", "-W", self.secret())
        self.p.wait_log("relay.allocation_ended", since=mark, user="bob", transport="tcp",
                        to_peer_packets="30", from_peer_packets="30")

    def test_uclient_tls_with_secret(self) -> None:
        mark = self.p.log_mark()
        self.uclient("-t", "-S", "-u", "dora", "-W", self.secret(), port=self.p.relay_tls_port, exact=False)
        self.p.wait_log("relay.allocation_ended", since=mark, user="dora", transport="tls",
                        to_peer_packets="30", from_peer_packets="30")

    def test_tls_relay_frames_every_message(self) -> None:
        """The shape of `turnutils_uclient -y -t -S -m 4 -n 200 -l 172`:
        four pairs of TLS clients send each other 200 ChannelData messages
        of 172 bytes through their allocations. Over TLS, as over TCP, the
        relay may put several messages into one TLS record when they wait
        for the same client (one write instead of several); a client that
        frames the stream by ChannelData length, as RFC 8656 §12.5 asks,
        gets every message, in order. (turnutils_uclient takes each TLS
        record for one message, so it counts the second of two as lost.)
        Each client writes its messages four at a time, so that they reach
        the relay, and leave it, together."""
        n, size, pairs = 200, 172, 4
        clients: list[TurnClient] = []
        try:
            for i in range(2 * pairs):
                c = self.client(f"tls{i}", transport="tls")
                clients.append(c)
                r = c.allocate()
                self.assertEqual(r.cls, SUCCESS, r)
                c.relayed = r.xaddr(A_RELAYED)
            for i in range(0, 2 * pairs, 2):
                a, b = clients[i], clients[i + 1]
                for x, y in ((a, b), (b, a)):
                    self.assertEqual(x.channel_bind(0x4000, y.relayed).cls, SUCCESS)
            got = {id(c): [] for c in clients}

            by_sock = {c.sock: c for c in clients}
            reads_with = []  # messages completed by each read

            def drain(c: TurnClient) -> None:
                got[id(c)].extend(c.pending)
                c.pending.clear()
                while c.sock.pending() or select.select([c.sock], [], [], 0)[0]:
                    data = c.sock.recv(65536)
                    if not data:
                        raise ConnectionError("the relay closed a client's connection")
                    c.buf += data
                    k = 0
                    while (f := c.recv_frame(0)) is not None:
                        got[id(c)].append(f)
                        k += 1
                    reads_with.append(k)

            burst = 4  # messages a client writes at once: they leave in one record
            for first in range(0, n, burst):
                for i, c in enumerate(clients):
                    c.send_raw(b"".join(struct.pack("!HHII", 0x4000, size, i, seq) + bytes(size - 8)
                                        for seq in range(first, first + burst)))
                for s in select.select(list(by_sock), [], [], 0)[0]:
                    drain(by_sock[s])
                time.sleep(0.002)
            deadline = time.monotonic() + scaled(10)
            while time.monotonic() < deadline and any(len(v) < n for v in got.values()):
                for s in select.select(list(by_sock), [], [], 0.1)[0]:
                    drain(by_sock[s])
            for i, c in enumerate(clients):
                sender = i ^ 1
                frames = got[id(c)]
                self.assertEqual(len(frames), n, f"client {i} got {len(frames)} of {n}")
                for seq, f in enumerate(frames):
                    number, length = struct.unpack("!HH", f[:4])
                    self.assertEqual((number, length), (0x4000, size))
                    self.assertEqual(struct.unpack("!II", f[4:12]), (sender, seq))
            # how often several messages shared a read (one TLS record, or
            # more read at once): informative, the shape turnutils_uclient
            # miscounts
            print(f"\n  reads that completed several messages: "
                  f"{sum(1 for k in reads_with if k > 1)} of {len(reads_with)}")
        finally:
            for c in clients:
                c.close()

    def test_uclient_bare_expiry_username(self) -> None:
        # -W without -u: the username is a bare EXPIRY
        self.uclient("-W", self.secret(), "-c", n=10)

    # -- authentication -----------------------------------------------------

    def test_challenge(self) -> None:
        with self.client() as c:
            r = c.allocate(auth=False)
            self.assertEqual(r.code, 401, r)
            self.assertEqual(r.get(A_REALM), self.p.domain.encode())
            self.assertTrue(r.get(A_NONCE).startswith(b"obMatJos2"), r.get(A_NONCE))
            algs = r.get(A_PAS)
            self.assertIn(struct.pack("!HH", 2, 0), algs)  # SHA-256 offered
            self.assertIsNone(r.get(A_MI))

    def assert_refused(self, username: str, password: str, code: int = 401) -> None:
        with self.client(creds=(username, password)) as c:
            r = c.allocate()
            self.assertEqual(r.cls, ERROR, r)
            self.assertEqual(r.code, code, r)

    def test_expired_credential(self) -> None:
        secret = self.secret()
        username = f"{int(time.time()) - 10}:alice"
        mark = self.p.log_mark()
        self.assert_refused(username, rest_password(secret, username))
        self.p.wait_log("relay.auth_failed", since=mark, username=username,
                        reason="credential expired")
        # one valid for two more seconds is accepted, and refused once it
        # has expired, also on the allocation it made (whose key is known)
        username = f"{int(time.time()) + 2}:alice"
        with self.client(creds=(username, rest_password(secret, username))) as c:
            self.assertEqual(c.allocate().cls, SUCCESS)
            time.sleep(3.5)
            mark = self.p.log_mark()
            r = c.refresh(600)
            self.assertEqual(r.code, 401, r)
            self.p.wait_log("relay.auth_failed", since=mark, username=username,
                            reason="credential expired")
            c.username, c.password = self.creds("alice")
            self.assertEqual(c.refresh(0).code, 441)  # another username than the allocation's

    def test_wrong_password(self) -> None:
        username, password = self.creds("alice")
        self.assert_refused(username, password[:-2] + ("A=" if password[-2] != "A" else "B="))
        self.assert_refused(username, "")
        # a password for another username
        self.assert_refused(username.replace("alice", "mallory"), password)

    def test_auth_failures_logged_bounded(self) -> None:
        """A client retrying with a bad credential as fast as it can: 500
        refusals make a handful of log lines (one a second per source and
        reason), and the next line counts the ones held back."""
        username, password = self.creds("alice")
        mark = self.p.log_mark()
        t0 = time.monotonic()
        with self.client(transport="tcp", creds=(username, "wrong")) as c:
            for _ in range(500):
                c.nonce = None  # each attempt from scratch: challenge, then refusal
                r = c.allocate()
                self.assertEqual(r.code, 401, r)
            burst_s = time.monotonic() - t0
            time.sleep(1.1)
            c.nonce = None
            self.assertEqual(c.allocate().code, 401)
        lines = self.p.find_log("relay.auth_failed", since=mark)
        held = sum(int(l["suppressed"]) for l in lines)
        print(f"\n500 failed relay authentications in {burst_s:.2f} s: {len(lines)} lines, "
              f"{held} held back and counted")
        self.assertLessEqual(len(lines), int(burst_s) + 3, [l.raw for l in lines])
        self.assertEqual(len(lines) + held, 501, [l.raw for l in lines])

    def test_unknown_secret(self) -> None:
        username = f"{int(time.time()) + 600}:alice"
        self.assert_refused(username, rest_password("not-our-secret-at-all", username))

    def test_malformed_username(self) -> None:
        self.assert_refused("alice", rest_password(self.secret(), "alice"))

    # -- relaying, counters, status -------------------------------------------

    def test_indications_channels_and_status(self) -> None:
        peer = Peer()
        try:
            with self.client("carol") as c:
                r = c.allocate()
                self.assertEqual(r.cls, SUCCESS, r)
                self.assertTrue(r.verify(c.key), "the success response is not signed")
                relayed = r.xaddr(A_RELAYED)
                self.assertEqual(r.xaddr(A_XOR_MAPPED), c.local)
                lifetime = struct.unpack("!I", r.get(A_LIFETIME))[0]
                self.assertEqual(lifetime, 600)
                # no permission yet: nothing reaches the peer
                c.send_indication(peer.addr, b"x" * 10)
                self.assertIsNone(peer.recv(0.5))
                self.assertEqual(c.create_permission(peer.addr).cls, SUCCESS)
                for i in range(3):
                    c.send_indication(peer.addr, bytes([i]) * 100)
                for i in range(3):
                    data, src = peer.recv()
                    self.assertEqual(src, relayed)
                    self.assertEqual(data, bytes([i]) * 100)
                for i in range(2):
                    peer.sock.sendto(b"back%d" % i + b"." * 45, relayed)
                for i in range(2):
                    kind, frm, data = c.recv_data()
                    self.assertEqual((kind, frm), ("data", peer.addr))
                    self.assertEqual(data, b"back%d" % i + b"." * 45)
                # a channel
                self.assertEqual(c.channel_bind(0x4001, peer.addr).cls, SUCCESS)
                for i in range(2):
                    c.send_channel(0x4001, b"ch%d" % i + b"-" * 7)
                for i in range(2):
                    data, src = peer.recv()
                    self.assertEqual(data, b"ch%d" % i + b"-" * 7)
                peer.sock.sendto(b"z" * 13, relayed)
                self.assertEqual(c.recv_data(), ("channel", 0x4001, b"z" * 13))
                # an unbound channel is dropped
                c.send_channel(0x4002, b"nope")
                self.assertIsNone(peer.recv(0.5))
                # the same peer on another channel, or the channel to another peer: 400
                self.assertEqual(c.channel_bind(0x4002, peer.addr).code, 400)
                self.assertEqual(c.channel_bind(0x4001, ("127.0.0.1", peer.addr[1] + 1)).code, 400)
                # refreshing the binding is fine
                self.assertEqual(c.channel_bind(0x4001, peer.addr).cls, SUCCESS)

                a = self.allocation(c)
                self.assertEqual(a["user"], "carol")
                self.assertEqual(a["transport"], "udp")
                self.assertEqual(a["relayed"], f"{relayed[0]}:{relayed[1]}")
                self.assertEqual(a["to_peer"], {"bytes": 320, "packets": 5})
                self.assertEqual(a["from_peer"], {"bytes": 113, "packets": 3})
                self.assertEqual(a["permissions"], 1)
                self.assertEqual(a["channels"], 1)
                self.assertEqual(a["dropped_packets"], 0)
                self.assertGreater(a["expires_in_s"], 500)

                rc, text, _ = self.p.ctl("relay", "status")
                self.assertEqual(rc, 0)
                self.assertIn("carol", text)
                self.assertIn(f"{relayed[0]}:{relayed[1]}", text)

                mark = self.p.log_mark()
                r = c.refresh(0)
                self.assertEqual(r.cls, SUCCESS, r)
                ended = self.p.wait_log("relay.allocation_ended", since=mark, user="carol")
                self.assertEqual(ended["reason"], "deleted by client")
                for k, v in (("to_peer_bytes", "320"), ("to_peer_packets", "5"),
                             ("from_peer_bytes", "113"), ("from_peer_packets", "3")):
                    self.assertEqual(ended[k], v, ended.raw)
                # gone: a refresh now is 437, and the relayed port is closed to the peer
                self.assertEqual(c.refresh(600).code, 437)
                self.assertNotIn(f"{c.local[0]}:{c.local[1]}",
                                 [x["client"] for x in self.status()["allocations"]])
        finally:
            peer.close()

    def test_tcp_allocation_ends_with_connection(self) -> None:
        peer = Peer()
        try:
            c = self.client("erin", transport="tcp")
            r = c.allocate()
            self.assertEqual(r.cls, SUCCESS, r)
            relayed = r.xaddr(A_RELAYED)
            self.assertEqual(c.channel_bind(0x4abc, peer.addr).cls, SUCCESS)
            c.send_channel(0x4abc, b"odd")  # padded over TCP
            self.assertEqual(peer.recv()[0], b"odd")
            peer.sock.sendto(b"hello", relayed)
            self.assertEqual(c.recv_data(), ("channel", 0x4abc, b"hello"))
            mark = self.p.log_mark()
            c.close()
            ended = self.p.wait_log("relay.allocation_ended", since=mark, user="erin")
            self.assertEqual(ended["reason"], "connection closed")
            self.assertEqual(ended["to_peer_packets"], "1")
            self.assertEqual(ended["from_peer_packets"], "1")
        finally:
            peer.close()

    def test_sha256_integrity(self) -> None:
        with self.client("frank", pwalg=2, integrity="sha256") as c:
            r = c.allocate()
            self.assertEqual(r.cls, SUCCESS, r)
            self.assertIsNotNone(r.get(A_MI256))
            self.assertIsNone(r.get(A_MI))
            self.assertTrue(r.verify(c.key, "sha256"))
            self.assertEqual(c.refresh(0).cls, SUCCESS)
        # PASSWORD-ALGORITHMS must echo what the server offered
        with self.client("frank", pwalg=2, integrity="sha256") as c:
            c.allocate(auth=False)
            c.pas = struct.pack("!HH", 2, 0)  # MD5 stripped: a bid-down attempt
            r = c.allocate()
            self.assertEqual(r.code, 400, r)

    def test_password_algorithm_sha256_relays(self) -> None:
        """PASSWORD-ALGORITHM SHA-256 (RFC 8489 §9.2.2) with either integrity
        attribute, over UDP and TCP: allocation and relaying both ways."""
        self.assertEqual(self.status()["password_algorithms"], ["SHA-256", "MD5"])
        for transport, integrity in (("udp", "sha256"), ("udp", "sha1"), ("tcp", "sha256")):
            with self.subTest(transport=transport, integrity=integrity):
                with self.client("frank", transport, pwalg=2, integrity=integrity) as c:
                    self.relay_round_trip(c)
                    self.assertEqual(hashlib.sha256(
                        f"{c.username}:{c.realm}:{c.password}".encode()).digest(), c.key)

    def test_md5_key_still_relays(self) -> None:
        """Without FIPS, a client of RFC 5389 (no PASSWORD-ALGORITHM: the MD5
        key) is served as before."""
        with self.client("mona") as c:
            self.relay_round_trip(c)

    def test_tampered_password_algorithms_refused(self) -> None:
        """The PASSWORD-ALGORITHMS a client echoes must be the offer, byte for
        byte (RFC 8489 §9.2.4: bid-down protection); each refusal is a 400
        with the reason, and a bounded relay.refused line."""
        sha, md5 = struct.pack("!HH", 2, 0), struct.pack("!HH", 1, 0)
        cases = [
            (sha, 1, "PASSWORD-ALGORITHMS differs from the offer (downgrade)"),  # MD5 stripped
            (md5 + sha, 1, "PASSWORD-ALGORITHMS differs from the offer (downgrade)"),  # reordered
            (md5, 1, "PASSWORD-ALGORITHMS differs from the offer (downgrade)"),
            (sha + md5, 3, "PASSWORD-ALGORITHM not among those offered"),
        ]
        logged = set()  # one line a second per source and reason: look for the first
        # an earlier test's refusal for the same reason must not hold this
        # one's line back (the bound is one a second per source and reason)
        time.sleep(1.1)
        for pas, alg, reason in cases:
            with self.subTest(pas=pas.hex(), alg=alg):
                with self.client("tess", pwalg=2) as c:
                    c.allocate(auth=False)
                    self.assertEqual(c.pas, sha + md5)  # the offer
                    mark = self.p.log_mark()
                    c.pas = pas
                    r = c.transact(ALLOCATE, [(A_TRANSPORT, UDP_TRANSPORT)], pa=alg)
                    self.assertEqual((r.code, r.reason), (400, reason), r)
                    if reason not in logged:
                        self.p.wait_log("relay.refused", since=mark, reason=reason)
                        logged.add(reason)
        # PASSWORD-ALGORITHM without PASSWORD-ALGORITHMS
        with self.client("tess", pwalg=2) as c:
            c.allocate(auth=False)
            c.pas = None
            r = c.allocate()
            self.assertEqual(r.code, 400, r)
            self.assertIn("must come together", r.reason)

    def test_binding_without_auth(self) -> None:
        for transport in ("udp", "tcp", "tls"):
            with self.client(transport=transport) as c:
                r = c.transact(BINDING, [], auth=False)
                self.assertEqual(r.cls, SUCCESS, (transport, r))
                self.assertEqual(r.xaddr(A_XOR_MAPPED), c.local)
                self.assertIsNotNone(r.get(A_FINGERPRINT))

    def test_turn_error_codes(self) -> None:
        with self.client("gina") as c:
            # no allocation yet
            self.assertEqual(c.refresh(600).code, 437)
            # TCP relaying is not offered
            r = c.transact(ALLOCATE, [(A_TRANSPORT, struct.pack("!I", 6 << 24))])
            self.assertEqual(r.code, 442, r)
            # IPv6 relayed addresses are not offered here
            r = c.allocate(attrs=[(A_RAF, b"\x02\0\0\0")])
            self.assertEqual(r.code, 440, r)
            r = c.allocate()
            self.assertEqual(r.cls, SUCCESS, r)
            # a second Allocate on the same 5-tuple (not a retransmission)
            self.assertEqual(c.allocate().code, 437)
            # an IPv6 peer for an IPv4 allocation
            self.assertEqual(c.create_permission(("::1", 5000)).code, 443)
            # another user's credentials on this allocation
            own = c.username, c.password
            c.username, c.password = self.creds("mallory")
            self.assertEqual(c.refresh(600).code, 441)
            c.username, c.password = own
            # an unknown comprehension-required attribute
            r = c.transact(REFRESH, [(0x0031, b"????")])
            self.assertEqual(r.code, 420, r)
            self.assertEqual(r.get(A_UNKNOWN), b"\x00\x31")
            self.assertEqual(c.refresh(0).cls, SUCCESS)

    def test_answers_to_a_source_without_allocation_are_rate_limited(self) -> None:
        # a forged source cannot make the relay a reflector: 300 Binding
        # requests at once from one address get the burst (100) and what
        # refills meanwhile (50/s); another source is answered as before
        mark = self.p.log_mark()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.2", 0))
        got = 0
        try:
            for _ in range(300):
                s.sendto(encode(BINDING, REQUEST, os.urandom(12), []),
                         ("127.0.0.1", self.p.relay_port))
            s.settimeout(scaled(0.5))
            try:
                while True:
                    s.recvfrom(2048)
                    got += 1
            except socket.timeout:
                pass
        finally:
            s.close()
        self.assertGreaterEqual(got, 100)
        self.assertLess(got, 200)
        self.p.wait_log("relay.rate_limited", since=mark, source="127.0.0.2")
        with self.client() as c:
            self.assertEqual(c.transact(BINDING, [], auth=False).cls, SUCCESS)

    def _closed_after(self, port: int, chunks: list[bytes], tls: bool = False) -> float | None:
        """Sends a chunk every 2 s on a new connection to port; the seconds
        after which the relay closed it, or None if it stayed open."""
        s = socket.create_connection(("127.0.0.1", port), timeout=scaled(5))
        start = time.monotonic()
        try:
            for chunk in chunks:
                if time.monotonic() - start > scaled(25):
                    return None
                try:
                    s.send(chunk)
                    s.settimeout(2)
                    if s.recv(1) == b"":
                        return time.monotonic() - start
                except socket.timeout:
                    continue
                except OSError:
                    return time.monotonic() - start
            return None
        finally:
            s.close()

    def test_trickled_handshake_closed_at_the_deadline(self) -> None:
        # a byte every 2 s restarts the read timeout each time; the deadline
        # counted from accept (10 s) closes the connection all the same
        mark = self.p.log_mark()
        hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(32)
        closed = self._closed_after(self.p.relay_tls_port, [bytes([b]) for b in hello])
        self.assertIsNotNone(closed, "a trickled handshake kept its connection open")
        self.assertGreaterEqual(closed, 9.0)
        self.p.wait_log("relay.conn_deadline", since=mark, transport="tls")

    def test_empty_frames_do_not_hold_a_connection(self) -> None:
        # whole frames (empty ChannelData) every 2 s: still no allocation
        # within 10 s, so the connection goes
        mark = self.p.log_mark()
        closed = self._closed_after(self.p.relay_port, [b"\x40\x00\x00\x00"] * 20)
        self.assertIsNotNone(closed, "empty frames kept a connection without allocation open")
        self.assertGreaterEqual(closed, 9.0)
        self.p.wait_log("relay.conn_deadline", since=mark, transport="tcp")

    def test_retransmitted_allocate(self) -> None:
        with self.client("hank") as c:
            c.allocate(auth=False)  # the challenge, to have a nonce
            tid = os.urandom(12)
            first = c.transact(ALLOCATE, [(A_TRANSPORT, UDP_TRANSPORT)], tid=tid)
            again = c.transact(ALLOCATE, [(A_TRANSPORT, UDP_TRANSPORT)], tid=tid)
            self.assertEqual(first.cls, SUCCESS, first)
            self.assertEqual(again.raw, first.raw)
            self.assertEqual(c.refresh(0).cls, SUCCESS)

    def test_refused_peers(self) -> None:
        refused = ["0.0.0.1", "10.1.2.3", "172.16.5.4", "192.168.1.1", "100.64.0.1", "169.254.9.9",
                   "224.0.0.1", "239.255.255.250", "255.255.255.255"]
        with self.client("ivan") as c:
            self.assertEqual(c.allocate().cls, SUCCESS)
            mark = self.p.log_mark()
            for host in refused:
                r = c.create_permission((host, 4000))
                self.assertEqual(r.code, 403, (host, r))
                self.assertEqual(c.channel_bind(0x4100, (host, 4000)).code, 403, host)
            self.p.wait_log("relay.peer_refused", since=mark, peer="10.1.2.3:4000", user="ivan")
            # the relay's own listeners, even inside allowed_peers
            self.assertEqual(c.create_permission(("127.0.0.1", self.p.relay_port)).code, 403)
            self.assertEqual(c.create_permission(("127.0.0.1", self.p.relay_tls_port)).code, 403)
            # a public address is fine (nothing is sent)
            self.assertEqual(c.create_permission(("192.0.2.10", 4000)).cls, SUCCESS)
            # all or nothing: one refused peer refuses the request
            r = c.create_permission(("192.0.2.11", 1), ("10.0.0.1", 1))
            self.assertEqual(r.code, 403)
            self.assertEqual(self.allocation(c)["permissions"], 1)
            self.assertEqual(c.refresh(0).cls, SUCCESS)

    def test_malformed_input(self) -> None:
        with self.client() as c:
            garbage = [b"", b"\x00", b"\x00\x01\x00", os.urandom(19), b"\xff" * 40,
                       b"\x00\x01\x00\x04" + MAGIC_BYTES + os.urandom(12) + b"\x00\x06\x00\xff",
                       b"\x40\x00\xff\xff", b"\x00\x01\x00\x00" + b"\0" * 16]
            for g in garbage:
                c.sock.send(g)
            # a request with a valid header and a broken attribute is answered 400
            # (as was the broken request among the garbage above)
            tid = os.urandom(12)
            c.sock.send(struct.pack("!HHI", 1, 8, MAGIC) + tid + b"\x80\x22\x01\x00abcd")
            answers = {}
            while (f := c.recv_frame(1)) is not None:
                m = Msg(f)
                answers[m.tid] = m.code
            self.assertEqual(answers.get(tid), 400, answers)
            self.assertEqual(sorted(answers.values()), [400, 400], answers)
            # a wrong FINGERPRINT: not STUN, dropped
            bad = bytearray(encode(BINDING, REQUEST, os.urandom(12), []))
            bad[-1] ^= 1
            c.sock.send(bytes(bad))
            self.assertIsNone(c.recv_frame(0.5))
            self.assertEqual(c.transact(BINDING, [], auth=False).cls, SUCCESS)
        # a stream that is neither STUN nor ChannelData is closed
        s = socket.create_connection(("127.0.0.1", self.p.relay_port), timeout=scaled(5))
        s.sendall(b"\xff\xff\xff\xff not TURN\r\n")
        self.assertEqual(s.recv(100), b"")
        s.close()
        with self.client(transport="tcp") as c:
            self.assertEqual(c.transact(BINDING, [], auth=False).cls, SUCCESS)

    def test_connections_per_source_bounded(self) -> None:
        # Idle TCP connections from one address cannot take the relay's
        # descriptors: past 64 per worker (two workers here) they are
        # closed at once, and room comes back when they go.
        mark = self.p.log_mark()
        socks = []
        try:
            for _ in range(140):
                socks.append(socket.create_connection(("127.0.0.1", self.p.relay_port),
                                                      timeout=scaled(5)))
            self.p.wait_log("relay.conn_refused", since=mark,
                            reason="too many connections from this source")
            # a stranger opening connections at will writes a few lines, not
            # one per connection: 140 - 128 = 12 refused, one line a second
            time.sleep(scaled(0.5))
            lines = self.p.find_log("relay.conn_refused", since=mark)
            self.assertLessEqual(len(lines), 4, lines)
        finally:
            for s in socks:
                s.close()
        deadline = time.monotonic() + scaled(5)
        while True:
            try:
                with self.client(transport="tcp") as c:
                    self.assertEqual(c.transact(BINDING, [], auth=False).cls, SUCCESS)
                break
            except (OSError, AssertionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def test_rotation_without_reload(self) -> None:
        old_user, old_pw = self.creds("judy")
        old_secret = self.secret()
        rc, out, err = self.p.ctl("relay", "rotate-secret", json=True)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out["grace_s"], 28800)
        new_secret = self.secret()
        self.assertNotEqual(new_secret, old_secret)
        # a credential from the new secret works at once, without a reload:
        # the relay looks at the file again when a credential fails
        username = f"{int(time.time()) + 600}:judy"
        with self.client(creds=(username, rest_password(new_secret, username))) as c:
            self.assertEqual(c.allocate().cls, SUCCESS)
            self.assertEqual(c.refresh(0).cls, SUCCESS)
        # one from the old secret still does, during the grace period
        with self.client(creds=(old_user, old_pw)) as c:
            self.assertEqual(c.allocate().cls, SUCCESS)
            self.assertEqual(c.refresh(0).cls, SUCCESS)
        # and the relay notices a change by itself (each second)
        mark = self.p.log_mark()
        rc, out, err = self.p.ctl("relay", "rotate-secret", json=True)
        self.assertEqual(rc, 0, err)
        self.p.wait_log("relay.secrets_loaded", since=mark, why="file changed", secrets="3",
                        timeout=5)
        # a reload re-reads them too
        mark = self.p.reload()
        self.p.wait_log("relay.secrets_loaded", since=mark, why="reload")
        self.assertEqual(self.status()["secrets"]["count"], 3)


class TestTurnIPv6Peers(TurnTestBase):
    """An IPv6 relay: the IPv6 special ranges are refused, and so is every
    IPv6 form that carries an IPv4 address a gateway would reach for the
    relay (IPv4-mapped and -compatible, NAT64, 6to4, Teredo)."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.p = Parley(name="turn6", address="::1", config={"relay.port_range": relay_ports()})
        try:
            cls.p.start()
        except BaseException:
            cls.p.close(failed=True)
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        cls.p.close()

    def client(self, user: str = "carol", transport: str = "udp", **kw) -> TurnClient:
        username, password = self.creds(user)
        return TurnClient("::1", self.p.relay_port, transport, username, password)

    def test_refused_ipv6_peers(self) -> None:
        refused = ["::", "::1", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1",
                   "::ffff:10.0.0.1", "::ffff:127.0.0.1", "::10.0.0.1", "64:ff9b::a00:1",
                   "64:ff9b:1::a00:1", "2002:a00:1::1", "2001:0:a00:1::1"]
        with self.client("ivan") as c:
            self.assertEqual(c.allocate().cls, SUCCESS)
            for host in refused:
                self.assertEqual(c.create_permission((host, 4000)).code, 403, host)
            # a global address is fine (nothing is sent); 2001:db8:: is not
            # Teredo's 2001:0::/32
            self.assertEqual(c.create_permission(("2001:db8::10", 4000)).cls, SUCCESS)
            self.assertEqual(c.refresh(0).cls, SUCCESS)


class TestTurnSlowClient(TurnTestBase):
    """Without a bandwidth limit, what a TCP client does not take piles up
    at the relay: it must cost packets, never the allocation."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.p = Parley(name="turnslow", config={"relay.allowed_peers": "127.0.0.0/8",
                                                "relay.port_range": relay_ports(8),
                                                "relay.max_bandwidth": 0})
        try:
            cls.p.start()
        except BaseException:
            cls.p.close(failed=True)
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        cls.p.close()

    def test_tcp_client_that_does_not_read_loses_packets_not_its_allocation(self) -> None:
        """A peer's burst toward a TCP client that takes nothing costs that
        client packets (dropped and counted), never its allocation, and its
        own media keeps reaching the peer meanwhile."""
        peer = Peer()
        c = self.client("quinn", transport="tcp", rcvbuf=4096)
        try:
            r = c.allocate()
            self.assertEqual(r.cls, SUCCESS, r)
            relayed = r.xaddr(A_RELAYED)
            self.assertEqual(c.channel_bind(0x4abd, peer.addr).cls, SUCCESS)
            mark = self.p.log_mark()
            payload = b"m" * 1000
            for _ in range(100):  # 5 MB, paced so the relay takes it all in
                for _ in range(50):
                    peer.sock.sendto(payload, relayed)
                time.sleep(0.002)
            c.send_channel(0x4abd, b"own media")
            got = peer.recv(timeout=5)
            self.assertIsNotNone(got, "the client's own media stopped while it did not read")
            self.assertEqual(got[0], b"own media")
            a = self.allocation(c)
            self.assertGreater(int(a["dropped_packets"]), 0, a)
            self.assertEqual(self.p.find_log("relay.allocation_ended", since=mark, user="quinn"), [])
            self.assertEqual(self.p.find_log("conn.overflow", since=mark), [])
        finally:
            c.close()
            peer.close()


class TestTurnLimits(TurnTestBase):
    """Nonce lifetime, bandwidth and the default peer refusal, on a server
    that allows no loopback peer but 127.0.0.2."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.p = Parley(name="turnlim", config={
            "relay.allowed_peers": "127.0.0.2/32", "relay.port_range": relay_ports(),
            "relay.nonce_lifetime": 2, "relay.max_bandwidth": 8})
        try:
            cls.p.start()
        except BaseException:
            cls.p.close(failed=True)
            raise
        cls.failed = False

    @classmethod
    def tearDownClass(cls) -> None:
        cls.p.close(failed=cls.failed)

    def run(self, result=None):
        res = super().run(result)
        if result is not None and (result.failures or result.errors):
            type(self).failed = True
        return res

    def test_stale_nonce(self) -> None:
        with self.client("nina") as c:
            self.assertEqual(c.allocate().cls, SUCCESS)
            old = c.nonce
            time.sleep(3)
            # by hand with the old nonce, then what the client does with the 438
            tid = os.urandom(12)
            req = encode(REFRESH, REQUEST, tid, [(A_LIFETIME, struct.pack("!I", 600)),
                                                 (A_USERNAME, c.username.encode()),
                                                 (A_REALM, c.realm.encode()), (A_NONCE, old)], c.key)
            r = c._exchange(req, tid)
            self.assertEqual(r.code, 438, r)
            self.assertNotEqual(r.get(A_NONCE), old)
            self.assertEqual(r.get(A_REALM), self.p.domain.encode())
            r = c.refresh(600)  # retries with the fresh nonce
            self.assertEqual(r.cls, SUCCESS, r)
            self.assertEqual(c.refresh(0).cls, SUCCESS)

    def test_loopback_peer_refused_by_default(self) -> None:
        with self.client("olga") as c:
            self.assertEqual(c.allocate().cls, SUCCESS)
            self.assertEqual(c.create_permission(("127.0.0.1", 4000)).code, 403)
            self.assertEqual(c.create_permission(("127.0.0.2", 4000)).cls, SUCCESS)  # allowed
            self.assertEqual(c.refresh(0).cls, SUCCESS)
        # coturn's client, told to relay to a loopback peer, is refused too
        peer_port = free_port("udp")
        res = run_peer(["turnutils_uclient", "-W", self.secret(), "-u", "olga", "-c", "-p",
                        str(self.p.relay_port), "-e", "127.0.0.1", "-r", str(peer_port), "-n", "3",
                        "127.0.0.1"], timeout=60)
        out = res.stdout + res.stderr
        self.assertRegex(out, r"error 403", out[-2000:])

    def test_bandwidth_limit(self) -> None:
        peer = Peer("127.0.0.2")
        try:
            with self.client("pete") as c:
                self.assertEqual(c.allocate().cls, SUCCESS)
                self.assertEqual(c.create_permission(peer.addr).cls, SUCCESS)
                # 8 kbit/s = 1000 bytes/s, bursts of at most 4096 bytes
                for i in range(20):
                    c.send_indication(peer.addr, bytes([i]) * 500)
                got = 0
                while peer.recv(0.5) is not None:
                    got += 1
                self.assertGreater(got, 0)
                self.assertLessEqual(got, 10)
                a = self.allocation(c)
                self.assertEqual(a["to_peer"]["packets"], got)
                self.assertEqual(a["dropped_packets"], 20 - got)
                mark = self.p.log_mark()
                self.assertEqual(c.refresh(0).cls, SUCCESS)
                ended = self.p.wait_log("relay.allocation_ended", since=mark, user="pete")
                self.assertEqual(ended["dropped_packets"], str(20 - got))
        finally:
            peer.close()


class TestTurnQuota(TurnTestBase):
    """Allocation quotas, on a server of their own (nothing else allocates)."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.p = Parley(name="turnquota", config={
            "relay.port_range": relay_ports(16), "relay.max_allocations_per_user": 2,
            "relay.max_allocations": 3})
        try:
            cls.p.start()
        except BaseException:
            cls.p.close(failed=True)
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        cls.p.close()

    def test_quotas(self) -> None:
        clients = []
        try:
            for _ in range(2):
                c = self.client("kate")
                clients.append(c)
                self.assertEqual(c.allocate().cls, SUCCESS)
            c = self.client("kate")
            clients.append(c)
            mark = self.p.log_mark()
            r = c.allocate()
            self.assertEqual(r.code, 486, r)
            self.p.wait_log("relay.quota_refused", since=mark,
                            reason="relay.max_allocations_per_user")
            other = self.client("liam")
            clients.append(other)
            self.assertEqual(other.allocate().cls, SUCCESS)  # the third in all
            more = self.client("mona")
            clients.append(more)
            self.assertEqual(more.allocate().code, 508)      # over relay.max_allocations
            # one ends: room again
            self.assertEqual(clients[0].refresh(0).cls, SUCCESS)
            self.assertEqual(more.allocate().cls, SUCCESS)
        finally:
            for c in clients:
                try:
                    c.refresh(0)
                except Exception:
                    pass
                c.close()


@unittest.skipUnless(shutil.which("baresip"), "baresip is not installed")
class TestTurnBaresipCall(unittest.TestCase):
    """Two baresip agents call each other with medianat=turn and mandatory
    SRTP, with credentials from `parleyctl relay credentials`: the media
    goes relay to relay (each sends to the other's relayed address, which
    the relay allows although no peer range is opened), and the relay's own
    counters show it carried what it cannot decrypt."""

    def test_srtp_call_through_the_relay(self) -> None:
        with Parley(name="turncall", config={"relay.port_range": relay_ports(32),
                                             "auth.algorithms": "MD5"}) as p:
            p.add_user("alice", "alice-pw")
            p.add_user("bob", "bob-pw")
            p.start()
            agents = {}
            for user in ("alice", "bob"):
                rc, cred, err = p.ctl("relay", "credentials", user, "--lifetime", "600", json=True)
                self.assertEqual(rc, 0, err)
                agents[user] = p.baresip(user, mediaenc="srtp-mand", modules=["turn.so"],
                                         account_params={
                                             "medianat": "turn",
                                             "stunserver": f'"turn:127.0.0.1:{p.relay_port}"',
                                             "stunuser": f'"{cred["username"]}"',
                                             "stunpass": f'"{cred["password"]}"'})
            alice, bob = agents["alice"], agents["bob"]
            alice.wait_registered()
            bob.wait_registered()
            alice.dial("sip:bob@example.test")
            alice.wait_output(r"Call established", timeout=15)
            self.assertRegex(alice.output, r"SRTP is Enabled")
            # the relay's counters: both RTP allocations carry media both ways
            deadline = time.monotonic() + scaled(15)
            while True:
                rc, st, err = p.ctl("relay", "status", json=True)
                self.assertEqual(rc, 0, err)
                busy = {}
                for a in st["allocations"]:
                    if a["to_peer"]["packets"] >= 100 and a["from_peer"]["packets"] >= 100:
                        busy[a["user"]] = a
                if len(busy) == 2 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            self.assertEqual(sorted(busy), ["alice", "bob"], st["allocations"])
            for a in busy.values():
                self.assertEqual(a["permissions"], 1)
                self.assertEqual(a["dropped_packets"], 0)
                # each sends to the other's relayed address
                other = busy["bob" if a["user"] == "alice" else "alice"]
                self.assertNotEqual(a["relayed"], other["relayed"])
            self.assertEqual(p.find_log("relay.peer_refused"), [])


MD5_FIPS = "MD5-derived key not allowed under FIPS: use PASSWORD-ALGORITHM SHA-256"


class TestTurnFips(TurnTestBase):
    """security.fips = approved-only (issue 18): the long-term key must come
    from PASSWORD-ALGORITHM SHA-256. Challenges offer SHA-256 alone; a client
    that can only use the MD5-derived key (turnutils_uclient, an RFC 5389
    client) is refused with 400 and the reason; this suite's client relays
    with SHA-256, with MESSAGE-INTEGRITY (HMAC-SHA1, an approved MAC) or
    MESSAGE-INTEGRITY-SHA256."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.p = Parley(name="turnfips", config={"security.fips": "approved-only",
                                                "auth.algorithms": "SHA-256",
                                                "relay.allowed_peers": "127.0.0.0/8",
                                                "relay.port_range": relay_ports()})
        try:
            cls.p.start()
        except BaseException:
            cls.p.close(failed=True)
            raise
        cls.failed = False

    @classmethod
    def tearDownClass(cls) -> None:
        cls.p.close(failed=cls.failed)

    def run(self, result=None):
        res = super().run(result)
        if result is not None and (result.failures or result.errors):
            type(self).failed = True
        return res

    def test_challenge_offers_sha256_only(self) -> None:
        self.p.wait_log("relay.started", password_algorithms=re.compile(r"SHA-256 \(FIPS.*"))
        self.assertEqual(self.status()["password_algorithms"], ["SHA-256"])
        with self.client() as c:
            r = c.allocate(auth=False)
            self.assertEqual(r.code, 401, r)
            self.assertTrue(r.get(A_NONCE).startswith(b"obMatJos2gAAA"), r.get(A_NONCE))
            self.assertEqual(r.get(A_PAS), struct.pack("!HH", 2, 0))

    def test_sha256_client_relays(self) -> None:
        for transport, integrity in (("udp", "sha256"), ("udp", "sha1"), ("tcp", "sha1"),
                                     ("tls", "sha256")):
            with self.subTest(transport=transport, integrity=integrity):
                mark = self.p.log_mark()
                with self.client("frank", transport, pwalg=2, integrity=integrity) as c:
                    self.relay_round_trip(c)
                self.p.wait_log("relay.allocation_ended", since=mark, user="frank",
                                transport=transport, to_peer_packets="2", from_peer_packets="2")

    def test_md5_key_refused(self) -> None:
        """The suite's client without PASSWORD-ALGORITHM (the MD5 key), and
        one that asks for MD5 although only SHA-256 was offered."""
        time.sleep(1.1)  # the refusal line is bounded per source and reason: a fresh second
        with self.client("mallory") as c:
            mark = self.p.log_mark()
            r = c.allocate()
            self.assertEqual((r.cls, r.code, r.reason), (ERROR, 400, MD5_FIPS), r)
            self.assertIsNone(r.get(A_MI))
            self.p.wait_log("relay.refused", since=mark, username=c.username, reason=MD5_FIPS)
        with self.client("mallory", pwalg=2) as c:
            c.allocate(auth=False)
            r = c.transact(ALLOCATE, [(A_TRANSPORT, UDP_TRANSPORT)], pa=1)
            self.assertEqual(r.code, 400, r)
            self.assertEqual(r.reason, "PASSWORD-ALGORITHM not among those offered")
        # MD5 added back to the echo: a bid-up is no better than a bid-down
        with self.client("mallory", pwalg=2) as c:
            c.allocate(auth=False)
            c.pas = struct.pack("!HHHH", 2, 0, 1, 0)
            r = c.transact(ALLOCATE, [(A_TRANSPORT, UDP_TRANSPORT)], pa=1)
            self.assertEqual(r.code, 400, r)
            self.assertIn("downgrade", r.reason)

    def test_uclient_refused_with_the_reason(self) -> None:
        """coturn's turnutils_uclient derives only the MD5 key: refused, the
        reason in its output and in the server's log."""
        username, password = self.creds("alice")
        peer_port = free_ports(2, "udp", consecutive=True)[0]
        time.sleep(1.1)  # past another test's line for this source and reason (bounded log)
        time.sleep(1.1)  # the refusal line is bounded per source and reason: a fresh second
        mark = self.p.log_mark()
        res = run_peer(["turnutils_uclient", "-u", username, "-w", password, "-p",
                        str(self.p.relay_port), "-e", "127.0.0.1", "-r", str(peer_port), "-n",
                        "1", "-c", "127.0.0.1"], timeout=60)
        out = res.stdout + res.stderr
        self.assertNotEqual(res.returncode, 0, out[-3000:])
        self.assertIn("MD5-derived key not allowed under FIPS", out, out[-3000:])
        self.p.wait_log("relay.refused", since=mark, username=username, reason=MD5_FIPS)
        self.assertEqual(self.status()["allocations"], [])


class TestTurnStartup(unittest.TestCase):
    def test_port_in_use_refused(self) -> None:
        with Parley(name="turnbusy") as p:
            busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            busy.bind(("127.0.0.1", p.relay_port))
            try:
                res = subprocess.run([p.parleyd, "-c", p.conf], capture_output=True, timeout=20)
            finally:
                busy.close()
            err = res.stderr.decode()
            self.assertEqual(res.returncode, 1, err)
            self.assertIn(f"relay.listen 127.0.0.1:{p.relay_port}: Address already in use", err)
            self.assertNotIn("event=server.ready", err)

    def test_secrets_readable_by_others_refused(self) -> None:
        with Parley(name="turnmode") as p:
            path = os.path.join(p.dir, "relay.secrets")
            os.chmod(path, 0o644)
            res = subprocess.run([p.parleyd, "-c", p.conf], capture_output=True, timeout=20)
            err = res.stderr.decode()
            self.assertEqual(res.returncode, 1, err)
            self.assertIn(f"{path}: readable or writable by others", err)
            with open(path) as f:
                self.assertNotIn(f.read().split()[-1], err)  # the secret is not logged
            # a missing file is created (0600) at start
            os.unlink(path)
            p.start()
            self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
            p.wait_log("relay.secret_created")

    def test_second_server_refused_with_workers(self) -> None:
        # several workers share a port with SO_REUSEPORT; a second server
        # must still be refused rather than silently join the group
        with Parley(name="turnfirst", config={"relay.workers": 2}) as first:
            first.start()
            with Parley(name="turnsecond", config={"relay.workers": 2}) as second:
                second.config_set("relay.listen", f"127.0.0.1:{first.relay_port}")
                res = subprocess.run([second.parleyd, "-c", second.conf], capture_output=True,
                                     timeout=20)
                err = res.stderr.decode()
                self.assertEqual(res.returncode, 1, err)
                self.assertIn(f"relay.listen 127.0.0.1:{first.relay_port}: Address already in use",
                              err)
            # the first one still answers
            with TurnClient("127.0.0.1", first.relay_port) as c:
                self.assertEqual(c.transact(BINDING, [], auth=False).cls, SUCCESS)

    def test_disabled_and_no_daemon(self) -> None:
        with Parley(name="turnoff", config={"relay.enabled": False}) as p:
            rc, out, err = p.ctl("relay", "status", json=True)
            self.assertEqual(rc, 1)
            self.assertFalse(out["ok"])
            # credentials need no daemon: the secrets file was made by init
            self.assertEqual(oct(os.stat(os.path.join(p.dir, "relay.secrets")).st_mode & 0o777),
                             "0o600")
            rc, out, err = p.ctl("relay", "credentials", "alice", "--lifetime", "60", json=True)
            self.assertEqual(rc, 0, err)
            self.assertRegex(out["username"], r"^\d+:alice$")
            self.assertEqual(out["lifetime_s"], 60)
            rc, _, _ = p.ctl("relay", "credentials", "alice", "--lifetime", "soon")
            self.assertEqual(rc, 2)
            p.start()
            rc, out, err = p.ctl("relay", "status", json=True)
            self.assertEqual(rc, 0, err)
            self.assertFalse(out["enabled"])
            # the relay's port is not bound
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", p.relay_port))
            s.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
