#!/usr/bin/python3
"""Self-test of the integration-test library (sipclient.py, harness.py).

The SIP client is tested against a tiny in-process TLS SIP server written
here, whose checks (digest answers in particular) are computed
independently of sipclient. The harness is tested against fake
parleyctl/parleyd scripts that follow the same command-line contract as
the real ones, and its baresip helper against the real baresip (skipped
if it is not installed).

Run: python3 tests/lib/test_selftest.py [-v] [TestClass.test_name]
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import warnings
from pathlib import Path
from typing import Callable

LIB_DIR = os.path.dirname(os.path.abspath(__file__))
if LIB_DIR not in sys.path:
    sys.path.insert(0, LIB_DIR)

import harness  # noqa: E402
import sipclient  # noqa: E402
from harness import LogTimeout, Parley, ParleyError, PeerError, free_port, free_ports, parse_logfmt  # noqa: E402
from sipclient import (AuthError, ConnectionClosed, Framer, SipClient, SipConnection,  # noqa: E402
                       SipMessage, SipParseError, SipTimeout)

# ---------------------------------------------------------------------------
# Throw-away certificates
# ---------------------------------------------------------------------------

_CERT_DIR = tempfile.mkdtemp(prefix="parley-selftest-pki-")
atexit.register(shutil.rmtree, _CERT_DIR, True)  # also when only imported


def make_cert(name: str, cn: str = "localhost", san: str = "DNS:localhost,IP:127.0.0.1") -> tuple[str, str]:
    """A self-signed P-256 certificate (valid one day) and its key."""
    cert = os.path.join(_CERT_DIR, f"{name}.pem")
    key = os.path.join(_CERT_DIR, f"{name}.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={cn}", "-days", "1",
                    "-addext", f"subjectAltName={san}", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return cert, key


SERVER_CERT, SERVER_KEY = make_cert("server")
CLIENT_CERT, CLIENT_KEY = make_cert("client", cn="alice", san="DNS:alice.example.test")


def tearDownModule() -> None:
    shutil.rmtree(_CERT_DIR, ignore_errors=True)


# ---------------------------------------------------------------------------
# Independent digest computation (hashlib directly, not sipclient)
# ---------------------------------------------------------------------------

_HASH = {"MD5": "md5", "SHA-256": "sha256"}


def H(alg: str, s: str) -> str:
    return hashlib.new(_HASH[alg], s.encode()).hexdigest()


def expected_digest(alg: str, user: str, realm: str, password: str, method: str, uri: str,
                    nonce: str, nc: str | None = None, cnonce: str | None = None,
                    qop: str | None = None) -> str:
    ha1 = H(alg, f"{user}:{realm}:{password}")
    ha2 = H(alg, f"{method}:{uri}")
    if qop:
        return H(alg, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return H(alg, f"{ha1}:{nonce}:{ha2}")


def auth_params(value: str) -> dict[str, str]:
    """Parameters of an Authorization header, by a regex of our own."""
    assert value.startswith("Digest "), value
    return {k: (q if q else t) for k, q, t in
            re.findall(r'(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]+))', value[7:])}


# ---------------------------------------------------------------------------
# A tiny in-process SIP server
# ---------------------------------------------------------------------------


class ServerConn:
    """The server's side of one accepted connection."""

    def __init__(self, sock: socket.socket, addr: tuple) -> None:
        self.sock = sock
        self.peer = addr
        self.framer = Framer()

    def send(self, data: bytes | SipMessage) -> None:
        self.sock.sendall(data.to_bytes() if isinstance(data, SipMessage) else data)

    def recv_raw(self, timeout: float = 5.0) -> bytes:
        self.sock.settimeout(timeout)
        return self.sock.recv(65536)

    def hold(self, timeout: float = 10.0) -> None:
        """Keep the connection open until the client closes it (or timeout)."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self.sock.settimeout(max(0.01, deadline - time.monotonic()))
                if not self.sock.recv(65536):
                    return
        except (OSError, ssl.SSLError):
            return

    def close_notify(self) -> None:
        """Send a TLS close_notify without waiting for the client's reply."""
        self.sock.settimeout(0.0)
        try:
            self.sock.unwrap()
        except (OSError, ValueError):
            pass

    def recv(self, timeout: float = 5.0) -> SipMessage:
        deadline = time.monotonic() + timeout
        while True:
            m = self.framer.next_message()
            if m is not None:
                return m
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionClosed("client closed")
            self.framer.feed(data)


def respond(req: SipMessage, status: int, reason: str = "", *, to_tag: str | None = "srv",
            extra: list[tuple[str, str]] = (), body: bytes = b"") -> SipMessage:
    """A server response built field by field (not with SipClient)."""
    fields = [("Via", v) for v in req.headers("Via")]
    to = req.header("To") or ""
    if to_tag and ";tag=" not in to:
        to += f";tag={to_tag}"
    fields += [("From", req.header("From")), ("To", to), ("Call-ID", req.call_id),
               ("CSeq", req.header("CSeq"))]
    fields += list(extra)
    return SipMessage(f"SIP/2.0 {status} {reason or sipclient.REASONS.get(status, 'X')}", fields, body)


class TinySipServer:
    """Accepts TLS (or TCP) connections on a fresh port and runs
    ``handler(ServerConn)`` for each in a thread. Exceptions in handlers are
    kept in ``errors`` and re-raised by ``close()``."""

    def __init__(self, handler: Callable[[ServerConn], None], *, tls: bool = True,
                 client_ca: str | None = None, min_version: ssl.TLSVersion | None = None,
                 max_version: ssl.TLSVersion | None = None, ciphers: str | None = None,
                 host: str = "127.0.0.1") -> None:
        self.handler = handler
        self.port = free_port()
        self.host = host
        self.lsock = socket.create_server((host, self.port))
        self.ctx: ssl.SSLContext | None = None
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(SERVER_CERT, SERVER_KEY)
            if client_ca:
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(client_ca)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                if min_version:
                    ctx.minimum_version = min_version
                if max_version:
                    ctx.maximum_version = max_version
            if ciphers:
                ctx.set_ciphers(ciphers)
            self.ctx = ctx
        self.errors: list[BaseException] = []
        self.handshake_errors: list[BaseException] = []
        self.conns: list[ServerConn] = []
        self.threads: list[threading.Thread] = []
        self._stopping = False
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        while not self._stopping:
            try:
                sock, addr = self.lsock.accept()
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(sock, addr), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, sock: socket.socket, addr: tuple) -> None:
        try:
            if self.ctx is not None:
                sock.settimeout(5)
                try:
                    sock = self.ctx.wrap_socket(sock, server_side=True)
                except (ssl.SSLError, OSError) as e:
                    self.handshake_errors.append(e)
                    sock.close()
                    return
            conn = ServerConn(sock, addr)
            self.conns.append(conn)
            self.handler(conn)
        except BaseException as e:  # reported by close()
            self.errors.append(e)
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def join(self, timeout: float = 5.0) -> None:
        for t in list(self.threads):
            t.join(timeout)

    def close(self) -> None:
        self._stopping = True
        self.lsock.close()
        self.join()
        if self.errors:
            raise AssertionError(f"server handler failed: {self.errors[0]!r}") from self.errors[0]


class ServerTestCase(unittest.TestCase):
    """Starts a TinySipServer per test with ``self.serve(handler, ...)``."""

    def setUp(self) -> None:
        self.servers: list[TinySipServer] = []
        self.clients: list[SipConnection | SipClient] = []

    def tearDown(self) -> None:
        for c in self.clients:
            c.close()
        for s in self.servers:
            s.close()

    def serve(self, handler: Callable[[ServerConn], None], **kw: object) -> TinySipServer:
        s = TinySipServer(handler, **kw)  # type: ignore[arg-type]
        self.servers.append(s)
        return s

    def connect(self, server: TinySipServer, **kw: object) -> SipConnection:
        kw.setdefault("cafile", SERVER_CERT)
        kw.setdefault("timeout", 5.0)
        kw.setdefault("transport", "tls" if server.ctx else "tcp")
        c = SipConnection(server.host, server.port, **kw)  # type: ignore[arg-type]
        self.clients.append(c)
        return c

    def client(self, server: TinySipServer, user: str = "alice", password: str = "secret",
               **kw: object) -> SipClient:
        algorithm = kw.pop("algorithm", None)
        c = SipClient(self.connect(server, **kw), user=user, domain="example.test",
                      password=password, algorithm=algorithm)  # type: ignore[arg-type]
        self.clients.append(c)
        return c


def wait_for(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


SAMPLE = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS 127.0.0.1:5000;branch=z9hG4bKabc\r\n"
          b"From: <sip:alice@example.test>;tag=1\r\nTo: <sip:alice@example.test>;tag=2\r\n"
          b"Call-ID: c1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 5\r\n\r\nhello")

# ---------------------------------------------------------------------------
# SipMessage and Framer (no network)
# ---------------------------------------------------------------------------


class TestSipMessage(unittest.TestCase):
    def test_parse_request(self) -> None:
        m = SipMessage.parse(
            b"INVITE sip:bob@example.test SIP/2.0\r\n"
            b"Via: SIP/2.0/TLS 10.0.0.1:5061;branch=z9hG4bK1, SIP/2.0/TLS 10.0.0.2;branch=z9hG4bK2\r\n"
            b"Via: SIP/2.0/TLS 10.0.0.3:5061;branch=z9hG4bK3;received=1.2.3.4\r\n"
            b'From: "Alice, A." <sip:alice@example.test>;tag=aaa\r\n'
            b"To: sip:bob@example.test\r\n"
            b"Call-ID: xyz@host\r\nCSeq: 42 INVITE\r\n"
            b"Contact: <sip:a@1.2.3.4;transport=tls>, \"B,\" <sip:b@5.6.7.8>\r\n"
            b"Subject: two\r\n  lines\r\n"
            b"Content-Type: application/sdp\r\nContent-Length: 3\r\n\r\nv=0EXTRA")
        self.assertTrue(m.is_request)
        self.assertFalse(m.is_response)
        self.assertEqual((m.method, m.uri, m.version), ("INVITE", "sip:bob@example.test", "SIP/2.0"))
        self.assertIsNone(m.status)
        self.assertEqual(m.body, b"v=0")  # cut to Content-Length
        self.assertEqual(m.call_id, "xyz@host")
        self.assertEqual(m.cseq, (42, "INVITE"))
        self.assertEqual(m.cseq.method, "INVITE")
        self.assertEqual(m.from_tag, "aaa")
        self.assertIsNone(m.to_tag)
        self.assertEqual(m.from_addr.display, "Alice, A.")
        self.assertEqual(m.to_addr.uri, "sip:bob@example.test")
        self.assertEqual(len(m.headers("via")), 2)
        self.assertEqual(len(m.headers("VIA", split=True)), 3)
        self.assertEqual(m.branch, "z9hG4bK1")
        self.assertEqual([v.host for v in m.vias], ["10.0.0.1", "10.0.0.2", "10.0.0.3"])
        self.assertEqual(m.vias[2].params["received"], "1.2.3.4")
        self.assertEqual(m.headers("Contact", split=True),
                         ["<sip:a@1.2.3.4;transport=tls>", '"B," <sip:b@5.6.7.8>'])
        self.assertEqual([c.uri for c in m.contacts], ["sip:a@1.2.3.4;transport=tls", "sip:b@5.6.7.8"])
        self.assertEqual(m.header("subject"), "two lines")  # unfolded
        self.assertIsNone(m.header("X-Missing"))
        self.assertEqual(m.header("X-Missing", "d"), "d")

    def test_parse_response(self) -> None:
        m = SipMessage.parse(SAMPLE)
        self.assertTrue(m.is_response)
        self.assertEqual((m.status, m.reason), (200, "OK"))
        self.assertEqual(m.method, "OPTIONS")  # from CSeq
        self.assertEqual(m.to_tag, "2")
        self.assertEqual(m.body, b"hello")
        self.assertEqual(m.raw, SAMPLE)
        m2 = SipMessage.parse(b"SIP/2.0 404 Not Found Here\r\nCSeq: 1 X\r\n\r\n")
        self.assertEqual(m2.reason, "Not Found Here")

    def test_compact_forms(self) -> None:
        compact = {"i": "Call-ID", "m": "Contact", "e": "Content-Encoding", "l": "Content-Length",
                   "c": "Content-Type", "f": "From", "s": "Subject", "k": "Supported", "t": "To",
                   "v": "Via", "o": "Event", "r": "Refer-To", "u": "Allow-Events",
                   "b": "Referred-By", "x": "Session-Expires", "y": "Identity"}
        self.assertEqual(sipclient.COMPACT_FORMS, compact)
        lines = [f"{k}: value-{k}" for k in compact if k != "l"]
        raw = ("NOTIFY sip:a@b SIP/2.0\r\n" + "\r\n".join(lines) + "\r\nl: 2\r\n\r\nok").encode()
        m = SipMessage.parse(raw)
        for k, full in compact.items():
            if k == "l":
                continue
            self.assertEqual(m.header(full), f"value-{k}", full)
            self.assertEqual(m.header(full.upper()), f"value-{k}", full)
            self.assertEqual(m.header(k.upper()), f"value-{k}", k)  # compact asked, compact found
        self.assertEqual(m.body, b"ok")
        self.assertEqual(sipclient.canonical_name("i"), "Call-ID")
        self.assertEqual(sipclient.canonical_name("www-authenticate"), "WWW-Authenticate")

    def test_header_editing_and_serialisation(self) -> None:
        m = SipMessage.request("MESSAGE", "sip:bob@example.test",
                               [("Via", "SIP/2.0/TLS h;branch=z9hG4bKx"), ("l", "999"),
                                ("CSeq", "1 MESSAGE")], body="hi")
        m.add_header("X-A", "1").add_header("X-A", "2").add_header("Route", "<sip:p;lr>", first=True)
        self.assertEqual(m.headers("x-a"), ["1", "2"])
        m.set_header("X-A", "3")
        self.assertEqual(m.headers("X-A"), ["3"])
        self.assertEqual(m.remove_header("x-a"), 1)
        data = m.to_bytes()
        self.assertTrue(data.startswith(b"MESSAGE sip:bob@example.test SIP/2.0\r\nRoute: <sip:p;lr>\r\n"))
        self.assertIn(b"\r\nl: 2\r\n", data)  # compact Content-Length kept, value fixed
        self.assertNotIn(b"999", data)
        self.assertTrue(data.endswith(b"\r\n\r\nhi"))
        self.assertIn(b"l: 999", m.to_bytes(update_content_length=False))
        again = SipMessage.parse(data)
        self.assertEqual(again.header_fields, m.header_fields[:1] + [("Via", "SIP/2.0/TLS h;branch=z9hG4bKx"),
                                                                    ("l", "2"), ("CSeq", "1 MESSAGE")])
        r = SipMessage.response(486)
        self.assertEqual(r.start_line, "SIP/2.0 486 Busy Here")
        self.assertIn(b"Content-Length: 0\r\n\r\n", r.to_bytes())

    def test_malformed(self) -> None:
        for bad in (b"\r\n\r\n", b"HELLO\r\n\r\n", b"SIP/2.0 abc OK\r\n\r\n",
                    b"INVITE sip:x SIP/2.0\r\nNoColonHere\r\n\r\n", b"INVITE sip:x SIP/2.0\r\n"):
            with self.assertRaises(SipParseError, msg=bad):
                SipMessage.parse(bad)
        m = SipMessage.parse(b"OPTIONS sip:x SIP/2.0\r\nCSeq: nonsense\r\n\r\n")
        with self.assertRaises(SipParseError):
            m.cseq

    def test_name_addr_uri_via(self) -> None:
        na = sipclient.NameAddr.parse('"A \\"q\\" <x>" <sip:a@b;transport=tls>;tag=9;expires=60')
        self.assertEqual((na.display, na.uri, na.tag, na.params["expires"]),
                         ('A "q" <x>', "sip:a@b;transport=tls", "9", "60"))
        bare = sipclient.NameAddr.parse("sip:a@b;tag=5")
        self.assertEqual((bare.uri, bare.tag), ("sip:a@b", "5"))
        u = sipclient.SipUri.parse("sips:bob@[::1]:5061;transport=tls;lr?subject=x")
        self.assertEqual((u.scheme, u.user, u.host, u.port), ("sips", "bob", "[::1]", 5061))
        self.assertIn("lr", u.params)
        self.assertEqual(str(u), "sips:bob@[::1]:5061;transport=tls;lr?subject=x")
        v = sipclient.Via.parse("SIP/2.0/tls 10.1.1.1:5061;branch=z9hG4bKq;rport=1234")
        self.assertEqual((v.transport, v.host, v.port, v.branch, v.params["rport"]),
                         ("TLS", "10.1.1.1", 5061, "z9hG4bKq", "1234"))


class TestFramer(unittest.TestCase):
    def test_two_messages_in_one_chunk(self) -> None:
        f = Framer()
        f.feed(SAMPLE + SAMPLE.replace(b"hello", b"world"))
        self.assertEqual(f.next_message().body, b"hello")
        self.assertEqual(f.next_message().body, b"world")
        self.assertIsNone(f.next_message())

    def test_byte_by_byte(self) -> None:
        f = Framer()
        got = []
        for b in SAMPLE + b"\r\n\r\n" + SAMPLE:
            f.feed(bytes([b]))
            m = f.next_message()
            if m:
                got.append(m)
        self.assertEqual([m.body for m in got], [b"hello", b"hello"])
        self.assertEqual(f.pings, 1)

    def test_keepalives(self) -> None:
        f = Framer()
        f.feed(b"\r\n\r\n\r\n" + SAMPLE + b"\r\n")
        self.assertEqual(f.next_message().body, b"hello")
        self.assertIsNone(f.next_message())
        self.assertEqual(f.crlf_count, 4)
        self.assertEqual(f.pings, 1)
        self.assertEqual(f.pending, b"")

    def test_compact_length_and_missing_length(self) -> None:
        f = Framer()
        f.feed(b"MESSAGE sip:a SIP/2.0\r\nl:3\r\n\r\nabcOPTIONS sip:a SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n")
        self.assertEqual(f.next_message().body, b"abc")
        m = f.next_message()
        self.assertEqual((m.method, m.body), ("OPTIONS", b""))

    def test_bad_length(self) -> None:
        f = Framer()
        f.feed(b"MESSAGE sip:a SIP/2.0\r\nContent-Length: abc\r\n\r\n")
        with self.assertRaises(SipParseError):
            f.next_message()
        f = Framer(max_message=100)
        f.feed(b"MESSAGE sip:a SIP/2.0\r\nX: " + b"a" * 200)
        with self.assertRaises(SipParseError):
            f.next_message()


# ---------------------------------------------------------------------------
# Digest
# ---------------------------------------------------------------------------

# RFC 7616 §3.9.1. The nonce is the RFC's "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
# the one quoted in our brief ("...URrFyFgcMtP7sv6p6vhqNxZo") does not produce
# the RFC's responses (checked below).
RFC = dict(username="Mufasa", password="Circle of Life", realm="http-auth@example.org",
           method="GET", uri="/dir/index.html", nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
           cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", nc="00000001", qop="auth")
RFC_MD5 = "8ca523f5e9506fed4657c9700eebdbec"
RFC_SHA256 = "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"


class TestDigest(unittest.TestCase):
    def test_rfc7616_vectors(self) -> None:
        for alg, want in (("MD5", RFC_MD5), ("SHA-256", RFC_SHA256)):
            self.assertEqual(sipclient.digest_response(algorithm=alg, **RFC), want, alg)
            # and the independent computation agrees
            self.assertEqual(expected_digest(alg, RFC["username"], RFC["realm"], RFC["password"],
                                             RFC["method"], RFC["uri"], RFC["nonce"], RFC["nc"],
                                             RFC["cnonce"], RFC["qop"]), want, alg)
        wrong_nonce = dict(RFC, nonce="7ypf/xlj9XXwfDPEoM4URrFyFgcMtP7sv6p6vhqNxZo")
        self.assertNotEqual(sipclient.digest_response(algorithm="MD5", **wrong_nonce), RFC_MD5)

    def test_rfc7616_authorization_header(self) -> None:
        ch = sipclient.parse_challenges(
            'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, '
            'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
            'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS", '
            'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=MD5, '
            'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
            'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"')
        self.assertEqual([c.algorithm for c in ch], ["SHA-256", "MD5"])
        self.assertEqual(ch[0].qop_options, ["auth", "auth-int"])
        for c, want in zip(ch, (RFC_SHA256, RFC_MD5)):
            hdr = sipclient.build_authorization(c, username="Mufasa", password="Circle of Life",
                                                method="GET", uri="/dir/index.html", nc=1,
                                                cnonce=RFC["cnonce"])
            p = auth_params(hdr)
            self.assertEqual(p["response"], want)
            self.assertEqual((p["nc"], p["qop"], p["algorithm"], p["opaque"]),
                             ("00000001", "auth", c.algorithm, "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"))

    def test_rfc2617_vector_and_no_qop(self) -> None:
        # RFC 2617 §3.5 (qop=auth, MD5).
        r = sipclient.digest_response(username="Mufasa", password="Circle Of Life",
                                      realm="testrealm@host.com", method="GET", uri="/dir/index.html",
                                      nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", qop="auth", nc=1,
                                      cnonce="0a4f113b")
        self.assertEqual(r, "6629fae49393a05397450978507c4ef1")
        ch = sipclient.parse_challenges('Digest realm="r", nonce="n"')[0]
        hdr = sipclient.build_authorization(ch, username="u", password="p", method="REGISTER",
                                            uri="sip:r")
        p = auth_params(hdr)
        self.assertNotIn("qop", p)
        self.assertNotIn("nc", p)
        self.assertEqual(p["response"], expected_digest("MD5", "u", "r", "p", "REGISTER", "sip:r", "n"))

    def test_sess_and_sha512_256(self) -> None:
        ha1 = hashlib.sha256(b"u:r:p").hexdigest()
        ha1s = hashlib.sha256(f"{ha1}:n:c".encode()).hexdigest()
        ha2 = hashlib.sha256(b"GET:/").hexdigest()
        want = hashlib.sha256(f"{ha1s}:n:00000002:c:auth:{ha2}".encode()).hexdigest()
        got = sipclient.digest_response(algorithm="SHA-256-sess", username="u", password="p", realm="r",
                                        method="GET", uri="/", nonce="n", qop="auth", nc=2, cnonce="c")
        self.assertEqual(got, want)
        self.assertEqual(sipclient.digest_hash("SHA-512-256", "abc"),
                         "53048e2681941ef99b2e29b76b4c7dabe4c2d0c634fc6d46e0e2f13107e7af23")
        with self.assertRaises(AuthError):
            sipclient.digest_hash("SHA-1", "x")

    def test_stale_flag_and_params(self) -> None:
        c = sipclient.parse_challenges('Digest realm="a b", nonce="x,y", stale=TRUE, algorithm=md5',
                                       proxy=True)[0]
        self.assertTrue(c.stale and c.proxy)
        self.assertEqual((c.realm, c.nonce, c.algorithm), ("a b", "x,y", "MD5"))


# ---------------------------------------------------------------------------
# The client against the tiny server
# ---------------------------------------------------------------------------


class TestTransport(ServerTestCase):
    def test_two_messages_in_one_segment(self) -> None:
        def handler(c: ServerConn) -> None:
            c.send(SAMPLE + SAMPLE.replace(b"hello", b"world"))
            c.hold()
        conn = self.connect(self.serve(handler))
        self.assertEqual(conn.recv().body, b"hello")
        self.assertEqual(conn.recv(timeout=0.5).body, b"world")
        self.assertIsNone(conn.try_recv(0.2))

    def test_one_message_split_across_segments(self) -> None:
        def handler(c: ServerConn) -> None:
            c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(len(SAMPLE)):
                c.send(SAMPLE[i:i + 1])  # one TLS record each
                time.sleep(0.001)
            c.hold()
        conn = self.connect(self.serve(handler))
        m = conn.recv()
        self.assertEqual((m.status, m.body, m.raw), (200, b"hello", SAMPLE))

    def test_keepalive_crlfs_and_pong(self) -> None:
        got: list[bytes] = []

        def handler(c: ServerConn) -> None:
            c.send(b"\r\n\r\n")
            got.append(c.recv_raw())  # the client's pong
            c.send(b"\r\n" + SAMPLE + b"\r\n\r\n\r\n" + SAMPLE)
            c.hold()
        conn = self.connect(self.serve(handler))
        self.assertEqual(conn.recv().body, b"hello")
        self.assertEqual(conn.recv().body, b"hello")
        self.assertEqual(got, [b"\r\n"])
        self.assertGreaterEqual(conn.framer.pings, 2)

    def test_client_ping_gets_pong(self) -> None:
        def handler(c: ServerConn) -> None:
            self.assertEqual(c.recv_raw(), b"\r\n\r\n")
            c.send(b"\r\n")
            c.hold()
        conn = self.connect(self.serve(handler))
        conn.send_keepalive()
        self.assertEqual(conn.wait_keepalive(2), 1)

    def test_timeout(self) -> None:
        def handler(c: ServerConn) -> None:
            c.send(SAMPLE[:40])  # an incomplete message never completes
            c.hold()
        conn = self.connect(self.serve(handler))
        t0 = time.monotonic()
        with self.assertRaises(SipTimeout) as cm:
            conn.recv(timeout=0.3)
        self.assertLess(time.monotonic() - t0, 2.0)
        self.assertGreaterEqual(time.monotonic() - t0, 0.29)
        self.assertIn("no message within 0.3s", str(cm.exception))
        self.assertIsInstance(cm.exception, TimeoutError)
        self.assertIsNone(conn.try_recv(0.1))
        self.assertTrue(conn.is_open())

    def test_peer_close_with_close_notify(self) -> None:
        def handler(c: ServerConn) -> None:
            c.send(SAMPLE)
            c.close_notify()
        conn = self.connect(self.serve(handler))
        self.assertEqual(conn.recv().status, 200)
        with self.assertRaises(ConnectionClosed):
            conn.recv(timeout=2)
        self.assertFalse(conn.is_open())
        with self.assertRaises(ConnectionClosed):
            conn.recv(timeout=2)  # stays closed, no hang

    def test_peer_close_abruptly_mid_message(self) -> None:
        def handler(c: ServerConn) -> None:
            c.send(SAMPLE[:60])
            c.sock.close()  # no close_notify
        conn = self.connect(self.serve(handler))
        with self.assertRaises(ConnectionClosed) as cm:
            conn.recv(timeout=2)
        self.assertEqual(cm.exception.leftover, SAMPLE[:60])
        self.assertIsInstance(cm.exception, ConnectionError)

    def test_expect_closed(self) -> None:
        def handler(c: ServerConn) -> None:
            c.recv()
            c.send(SAMPLE)
            c.close_notify()
        conn = self.connect(self.serve(handler))
        conn.send(b"GARBAGE sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n")
        before = conn.expect_closed(timeout=3)
        self.assertEqual([m.status for m in before], [200])

        def silent(c: ServerConn) -> None:
            c.hold()
        conn2 = self.connect(self.serve(silent))
        with self.assertRaises(SipTimeout):
            conn2.expect_closed(timeout=0.3)

    def test_raw_bytes_sent_unmodified(self) -> None:
        received = bytearray()
        RAW = b"INVITE \x00\xff bad\r\nl: -1\r\n\r\n"

        def handler(c: ServerConn) -> None:
            while len(received) < len(RAW):
                received.extend(c.recv_raw())
        conn = self.connect(self.serve(handler))
        conn.send(RAW)
        self.servers[0].join()
        self.assertEqual(bytes(received), RAW)

    def test_tls_verification(self) -> None:
        server = self.serve(lambda c: c.hold())
        self.assertEqual(self.connect(server, server_hostname="localhost").tls_version in
                         ("TLSv1.2", "TLSv1.3"), True)
        with self.assertRaises(ssl.SSLCertVerificationError):
            self.connect(server, server_hostname="wrong.example.test")
        with self.assertRaises(ssl.SSLCertVerificationError):
            self.connect(server, cafile=CLIENT_CERT)  # not the server's issuer
        conn = self.connect(server, verify=False, server_hostname="anything")
        self.assertIsNotNone(conn.peer_certificate(binary=True))

    def test_tls_versions(self) -> None:
        server = self.serve(lambda c: c.hold(), max_version=ssl.TLSVersion.TLSv1_2)
        self.assertEqual(self.connect(server).tls_version, "TLSv1.2")
        with self.assertRaises(ssl.SSLError):
            self.connect(server, min_version="1.3")
        server13 = self.serve(lambda c: c.hold())
        self.assertEqual(self.connect(server13, max_version="TLSv1.2").tls_version, "TLSv1.2")
        self.assertEqual(self.connect(server13, min_version=ssl.TLSVersion.TLSv1_3).tls_version, "TLSv1.3")

    def test_tls10_with_seclevel0(self) -> None:
        server = self.serve(lambda c: c.hold(), min_version=ssl.TLSVersion.TLSv1,
                            max_version=ssl.TLSVersion.TLSv1, ciphers="DEFAULT:@SECLEVEL=0")
        with self.assertRaises(ssl.SSLError):
            self.connect(server)  # default minimum refuses TLS 1.0
        conn = self.connect(server, min_version="1.0", max_version="1.0", ciphers="DEFAULT:@SECLEVEL=0")
        self.assertEqual(conn.tls_version, "TLSv1")
        self.assertIsNotNone(conn.cipher)

    def test_client_certificate(self) -> None:
        subjects: list[object] = []

        def handler(c: ServerConn) -> None:
            subjects.append(c.sock.getpeercert()["subject"])
            c.send(SAMPLE)
            c.hold()
        server = self.serve(handler, client_ca=CLIENT_CERT)
        conn = self.connect(server, certfile=CLIENT_CERT, keyfile=CLIENT_KEY)
        self.assertEqual(conn.recv().status, 200)
        self.assertIn(((("commonName", "alice"),)), subjects[0])
        # Without a certificate: refused at the handshake (TLS 1.2) or at the
        # first read (TLS 1.3, where the client finishes first).
        for maxv in ("1.2", "1.3"):
            try:
                c2 = self.connect(server, max_version=maxv)
            except ssl.SSLError:
                continue
            with self.assertRaises(ConnectionClosed) as cm:
                c2.recv(timeout=3)
            self.assertIsNotNone(cm.exception.cause)
        wait_for(lambda: len(server.handshake_errors) == 2)

    def test_source_address(self) -> None:
        peers: list[tuple] = []

        def handler(c: ServerConn) -> None:
            peers.append(c.peer)
            c.hold()
        server = self.serve(handler, host="0.0.0.0")
        server.host = "127.0.0.1"
        conn = self.connect(server, source_address="127.0.0.5")
        wait_for(lambda: bool(peers))
        self.assertEqual(peers[0][0], "127.0.0.5")
        self.assertEqual(conn.local_address[0], "127.0.0.5")

    def test_plain_tcp(self) -> None:
        def handler(c: ServerConn) -> None:
            req = c.recv()
            c.send(respond(req, 200))
            c.hold()
        client = self.client(self.serve(handler, tls=False))
        self.assertIsNone(client.conn.tls_version)
        r = client.options()
        self.assertEqual(r.status, 200)
        self.assertIn(";transport=tcp", r.request.header("Contact"))
        self.assertTrue(r.request.header("Via").startswith("SIP/2.0/TCP "))

    def test_logging_to_stderr(self) -> None:
        def handler(c: ServerConn) -> None:
            c.send(respond(c.recv(), 200))
            c.hold()
        server = self.serve(handler)
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            client = self.client(server, log=True)
            client.options()
        text = err.getvalue()
        self.assertIn("sent OPTIONS sip:example.test SIP/2.0", text)
        self.assertIn("received SIP/2.0 200 OK", text)
        self.assertIn("Max-Forwards: 70", text)


# -- digest-checking server side --------------------------------------------


class DigestServer:
    """Handler state for a registrar that challenges and checks answers with
    the independent functions above."""

    def __init__(self, algorithms: list[str], *, qop: bool = True, proxy: bool = False,
                 password: str = "secret", stale_after: int | None = None,
                 realm: str = "example.test") -> None:
        self.algorithms = algorithms
        self.qop = qop
        self.proxy = proxy
        self.password = password
        self.stale_after = stale_after  # mark the nonce stale after N good answers
        self.realm = realm
        self.nonces: dict[str, str] = {}  # nonce -> algorithm
        self.seen: list[dict[str, str]] = []
        self.good = 0
        self.requests: list[SipMessage] = []

    def challenge(self, req: SipMessage, stale: bool = False) -> SipMessage:
        name = "Proxy-Authenticate" if self.proxy else "WWW-Authenticate"
        extra = []
        for alg in self.algorithms:
            nonce = os.urandom(12).hex()
            self.nonces[nonce] = alg
            v = f'Digest realm="{self.realm}", nonce="{nonce}", algorithm={alg}'
            if self.qop:
                v += ', qop="auth"'
            if stale:
                v += ", stale=true"
            extra.append((name, v))
        return respond(req, 407 if self.proxy else 401, extra=extra)

    def check(self, req: SipMessage) -> bool:
        hdr = req.header("Proxy-Authorization" if self.proxy else "Authorization")
        if hdr is None:
            return False
        p = auth_params(hdr)
        self.seen.append(p)
        alg = self.nonces.get(p["nonce"])
        if alg is None or p.get("algorithm", "MD5") != alg or p["uri"] != req.uri:
            return False
        want = expected_digest(alg, p["username"], self.realm, self.password, req.method or "",
                               req.uri or "", p["nonce"], p.get("nc"), p.get("cnonce"), p.get("qop"))
        return want == p["response"]

    def __call__(self, c: ServerConn) -> None:
        while True:
            try:
                req = c.recv(timeout=10)
            except (ConnectionClosed, OSError):
                return
            self.requests.append(req)
            if req.method == "ACK":
                continue
            if not self.check(req):
                c.send(self.challenge(req))
                continue
            if self.stale_after is not None and self.good >= self.stale_after:
                self.stale_after = None
                self.nonces.clear()
                c.send(self.challenge(req, stale=True))
                continue
            self.good += 1
            c.send(respond(req, 200, extra=[("Contact", req.header("Contact") or "*"),
                                            ("Expires", req.header("Expires") or "0")]))


class TestClientRequests(ServerTestCase):
    def test_register_md5(self) -> None:
        d = DigestServer(["MD5"])
        client = self.client(self.serve(d))
        r = client.register(expires=600)
        self.assertEqual(r.status, 200)
        first, second = d.requests[0], d.requests[1]
        self.assertIsNone(first.header("Authorization"))
        self.assertEqual(first.method, "REGISTER")
        self.assertEqual(first.uri, "sip:example.test")
        self.assertEqual(first.header("To"), "<sip:alice@example.test>")
        self.assertEqual(first.header("Max-Forwards"), "70")
        self.assertEqual(first.header("Expires"), "600")
        self.assertRegex(first.header("Contact"), r"^<sip:alice@127\.0\.0\.1:\d+;transport=tls>$")
        self.assertTrue(first.branch.startswith("z9hG4bK"))
        self.assertEqual(first.call_id, second.call_id)
        self.assertEqual(second.cseq.number, first.cseq.number + 1)
        self.assertNotEqual(first.branch, second.branch)
        self.assertEqual(first.from_tag, second.from_tag)
        self.assertEqual(d.seen[0]["nc"], "00000001")
        self.assertEqual(d.seen[0]["qop"], "auth")
        self.assertEqual(d.seen[0]["algorithm"], "MD5")
        self.assertEqual(r.request.cseq, second.cseq)  # the request that got the 200
        # Re-registering reuses the nonce pre-emptively: nc goes up, no new 401.
        r2 = client.register(expires=600)
        self.assertEqual(r2.status, 200)
        self.assertEqual(len(d.requests), 3)
        self.assertEqual(d.seen[-1]["nc"], "00000002")
        self.assertEqual(d.seen[-1]["nonce"], d.seen[0]["nonce"])
        self.assertNotEqual(d.seen[-1]["cnonce"], d.seen[0]["cnonce"])
        self.assertEqual(d.requests[2].call_id, first.call_id)
        self.assertEqual(d.requests[2].cseq.number, second.cseq.number + 1)

    def test_register_sha256(self) -> None:
        d = DigestServer(["SHA-256"])
        client = self.client(self.serve(d))
        self.assertEqual(client.register().status, 200)
        self.assertEqual(d.seen[0]["algorithm"], "SHA-256")
        self.assertEqual(len(d.seen[0]["response"]), 64)

    def test_algorithm_choice(self) -> None:
        d = DigestServer(["SHA-256", "MD5"])
        server = self.serve(d)
        self.assertEqual(self.client(server).register().status, 200)
        self.assertEqual(d.seen[-1]["algorithm"], "SHA-256")  # the first offered we support
        self.assertEqual(self.client(server, algorithm="MD5").register().status, 200)
        self.assertEqual(d.seen[-1]["algorithm"], "MD5")  # forced
        c = self.client(server)
        c.supported_algorithms = ["MD5"]
        self.assertEqual(c.register().status, 200)
        self.assertEqual(d.seen[-1]["algorithm"], "MD5")  # what an MD5-only client picks
        d_sha = DigestServer(["SHA-256"])
        c2 = self.client(self.serve(d_sha))
        with self.assertRaises(AuthError) as cm:
            c2.register(algorithm="MD5")
        self.assertEqual(cm.exception.response.status, 401)
        self.assertIn("offered: SHA-256", str(cm.exception))

    def test_proxy_auth_407(self) -> None:
        d = DigestServer(["MD5"], proxy=True)
        client = self.client(self.serve(d))
        r = client.message("sip:bob@example.test", "hello bob")
        self.assertEqual(r.status, 200)
        self.assertEqual([q.method for q in d.requests], ["MESSAGE", "MESSAGE"])
        self.assertIsNotNone(d.requests[1].header("Proxy-Authorization"))
        self.assertIsNone(d.requests[1].header("Authorization"))
        self.assertEqual(d.requests[1].body, b"hello bob")
        self.assertEqual(d.requests[1].header("Content-Type"), "text/plain")

    def test_no_qop(self) -> None:
        d = DigestServer(["MD5"], qop=False)
        client = self.client(self.serve(d))
        self.assertEqual(client.register().status, 200)
        self.assertNotIn("qop", d.seen[0])
        self.assertNotIn("nc", d.seen[0])

    def test_stale_nonce_retry(self) -> None:
        d = DigestServer(["SHA-256"], stale_after=1)
        client = self.client(self.serve(d))
        self.assertEqual(client.register().status, 200)  # 401, 200
        self.assertEqual(client.register().status, 200)  # pre-emptive -> 401 stale -> 200
        self.assertEqual(len(d.requests), 4)
        self.assertNotEqual(d.seen[-1]["nonce"], d.seen[0]["nonce"])
        self.assertEqual(d.seen[-1]["nc"], "00000001")  # a new nonce counts from 1
        self.assertEqual([q.cseq.number for q in d.requests], [1, 2, 3, 4])

    def test_stale_within_one_request(self) -> None:
        d = DigestServer(["MD5"], stale_after=0)
        client = self.client(self.serve(d))
        self.assertEqual(client.register().status, 200)  # 401, 401 stale, 200
        self.assertEqual(len(d.requests), 3)

    def test_wrong_password(self) -> None:
        d = DigestServer(["MD5"], password="other")
        client = self.client(self.serve(d))
        r = client.register()
        self.assertEqual(r.status, 401)  # answered once, then given up
        self.assertEqual(len(d.requests), 2)

    def test_pending_requests_while_waiting(self) -> None:
        def handler(c: ServerConn) -> None:
            reg = c.recv()
            c.send(b"OPTIONS sip:alice@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TLS srv;branch=z9hG4bKs1\r\n"
                   b"From: <sip:example.test>;tag=s\r\nTo: <sip:alice@example.test>\r\n"
                   b"Call-ID: srv1\r\nCSeq: 7 OPTIONS\r\nContent-Length: 0\r\n\r\n")
            c.send(respond(reg, 100, to_tag=None))
            c.send(respond(reg, 200))
            resp = c.recv()
            assert resp.status == 200 and resp.cseq == (7, "OPTIONS"), resp
        client = self.client(self.serve(handler))
        r = client.register()
        self.assertEqual(r.status, 200)
        self.assertEqual([p.status for p in r.provisional], [100])
        opt = client.wait_request("OPTIONS", timeout=0.1)  # already pending
        client.respond(opt, 200)
        self.servers[0].join()

    def test_respond_to_server_request(self) -> None:
        got: list[SipMessage] = []

        def handler(c: ServerConn) -> None:
            c.send(b"MESSAGE sip:alice@127.0.0.1 SIP/2.0\r\n"
                   b"Via: SIP/2.0/TLS proxy.example.test;branch=z9hG4bKp1\r\n"
                   b"v: SIP/2.0/TLS bob.example.test;branch=z9hG4bKb1;received=10.0.0.9\r\n"
                   b"Record-Route: <sip:proxy.example.test;lr>\r\n"
                   b'f: "Bob" <sip:bob@example.test>;tag=bobtag\r\nt: <sip:alice@example.test>\r\n'
                   b"i: m1@bob\r\nCSeq: 3 MESSAGE\r\nc: text/plain\r\nl: 2\r\n\r\nhi")
            got.append(c.recv())
            got.append(c.recv())
        client = self.client(self.serve(handler))
        req = client.wait_request()
        self.assertEqual((req.method, req.text, req.header("Content-Type")), ("MESSAGE", "hi", "text/plain"))
        client.respond(req, 180)
        client.respond(req, 200)
        self.servers[0].join()
        r180, r200 = got
        self.assertEqual(r200.start_line, "SIP/2.0 200 OK")
        self.assertEqual(r200.headers("Via"), ["SIP/2.0/TLS proxy.example.test;branch=z9hG4bKp1",
                                               "SIP/2.0/TLS bob.example.test;branch=z9hG4bKb1;received=10.0.0.9"])
        self.assertEqual(r200.header("From"), '"Bob" <sip:bob@example.test>;tag=bobtag')
        self.assertEqual((r200.call_id, r200.cseq), ("m1@bob", (3, "MESSAGE")))
        self.assertIsNotNone(r200.to_tag)
        self.assertEqual(r180.to_tag, r200.to_tag)  # same tag for every response
        self.assertIsNone(r200.header("Record-Route"))  # MESSAGE does not create a dialog

    def test_invite_ack_bye_with_route_set(self) -> None:
        seen: list[SipMessage] = []
        contact = "<sip:bob@10.0.0.2:5061;transport=tls>"

        def handler(c: ServerConn) -> None:
            inv = c.recv()
            seen.append(inv)
            rr = [("Record-Route", "<sip:p1.example.test;lr>"), ("Record-Route", "<sip:p2.example.test;lr>")]
            c.send(respond(inv, 180, extra=rr))
            c.send(respond(inv, 200, extra=rr + [("Contact", contact), ("Content-Type", "application/sdp")],
                           body=sipclient.make_sdp("10.0.0.2").encode()))
            ack = c.recv()
            seen.append(ack)
            bye = c.recv()
            seen.append(bye)
            c.send(respond(bye, 200))
        client = self.client(self.serve(handler))
        resp, dlg = client.invite("sip:bob@example.test")
        self.assertEqual(resp.status, 200)
        self.assertEqual([p.status for p in resp.provisional], [180])
        self.assertIsNotNone(dlg)
        self.assertEqual(dlg.remote_target, "sip:bob@10.0.0.2:5061;transport=tls")
        self.assertEqual(dlg.route_set, ["<sip:p2.example.test;lr>", "<sip:p1.example.test;lr>"])
        self.assertEqual(client.bye(dlg).status, 200)
        self.servers[0].join()
        inv, ack, bye = seen
        self.assertEqual(inv.header("Content-Type"), "application/sdp")
        self.assertIn(b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:", inv.body)
        self.assertIn(b"m=audio 40000 RTP/SAVP 0", inv.body)
        for req in (ack, bye):
            self.assertEqual(req.uri, "sip:bob@10.0.0.2:5061;transport=tls")
            self.assertEqual(req.headers("Route"), ["<sip:p2.example.test;lr>", "<sip:p1.example.test;lr>"])
            self.assertEqual(req.call_id, inv.call_id)
            self.assertEqual(req.from_tag, inv.from_tag)
            self.assertEqual(req.to_tag, "srv")
            self.assertNotEqual(req.branch, inv.branch)
            self.assertEqual(req.header("Max-Forwards"), "70")
        self.assertEqual(ack.cseq, (inv.cseq.number, "ACK"))
        self.assertEqual(bye.cseq, (inv.cseq.number + 1, "BYE"))

    def test_invite_rejected_is_acked_in_transaction(self) -> None:
        seen: list[SipMessage] = []

        def handler(c: ServerConn) -> None:
            inv = c.recv()
            c.send(respond(inv, 486, to_tag="busy"))
            seen.extend([inv, c.recv()])
            c.hold()
        client = self.client(self.serve(handler))
        route = ["<sip:edge.example.test;lr>"]
        resp, dlg = client.invite("sip:bob@example.test", route=route)
        self.assertEqual(resp.status, 486)
        self.assertIsNone(dlg)
        wait_for(lambda: len(seen) == 2)
        inv, ack = seen
        self.assertEqual((ack.method, ack.uri), ("ACK", inv.uri))
        self.assertEqual(ack.branch, inv.branch)
        self.assertEqual(ack.headers("Via"), inv.headers("Via"))
        self.assertEqual(ack.headers("Route"), route)
        self.assertEqual(ack.to_tag, "busy")
        self.assertEqual(ack.cseq, (inv.cseq.number, "ACK"))
        self.assertEqual(ack.header("From"), inv.header("From"))

    def test_invite_with_auth_acks_the_407(self) -> None:
        d = DigestServer(["MD5"], proxy=True)
        client = self.client(self.serve(d))
        resp, dlg = client.invite("sip:bob@example.test", contact=True)
        self.assertEqual(resp.status, 200)
        self.assertIsNotNone(dlg)
        wait_for(lambda: len(d.requests) == 4)
        self.assertEqual([(q.method, q.cseq.number) for q in d.requests],
                         [("INVITE", 1), ("ACK", 1), ("INVITE", 2), ("ACK", 2)])
        self.assertEqual(d.requests[1].branch, d.requests[0].branch)  # ACK of 407: same transaction
        self.assertNotEqual(d.requests[3].branch, d.requests[2].branch)  # ACK of 2xx: new one

    def test_cancel(self) -> None:
        seen: list[SipMessage] = []

        def handler(c: ServerConn) -> None:
            inv = c.recv()
            c.send(respond(inv, 180, to_tag="r1"))
            cancel = c.recv()
            c.send(respond(cancel, 200, to_tag="r1"))
            c.send(respond(inv, 487, to_tag="r1"))
            seen.extend([inv, cancel, c.recv()])
            c.hold()
        client = self.client(self.serve(handler))
        inv = client.send_request(client.build_request("INVITE", "sip:bob@example.test",
                                                       body=sipclient.make_sdp(crypto=False),
                                                       content_type="application/sdp"))
        ringing = client.wait_response(inv, final=False)
        self.assertEqual(ringing.status, 180)
        cancel_resp, final = client.cancel_invite(inv)
        self.assertEqual((cancel_resp.status, cancel_resp.method), (200, "CANCEL"))
        self.assertEqual((final.status, final.method), (487, "INVITE"))
        wait_for(lambda: len(seen) == 3)
        inv_s, cancel, ack = seen
        self.assertIn(b"RTP/AVP", inv_s.body)
        self.assertEqual((cancel.method, cancel.uri, cancel.branch), ("CANCEL", inv_s.uri, inv_s.branch))
        self.assertEqual(cancel.cseq, (inv_s.cseq.number, "CANCEL"))
        self.assertEqual(cancel.header("To"), inv_s.header("To"))
        self.assertEqual((ack.method, ack.branch, ack.to_tag), ("ACK", inv_s.branch, "r1"))

    def test_answer_incoming_invite_and_bye(self) -> None:
        seen: list[SipMessage] = []

        def handler(c: ServerConn) -> None:
            c.send(b"INVITE sip:alice@127.0.0.1 SIP/2.0\r\n"
                   b"Via: SIP/2.0/TLS proxy.example.test;branch=z9hG4bKp2\r\n"
                   b"Record-Route: <sip:proxy.example.test;lr>\r\n"
                   b"From: <sip:bob@example.test>;tag=b2\r\nTo: <sip:alice@example.test>\r\n"
                   b"Call-ID: call2\r\nCSeq: 10 INVITE\r\nContact: <sip:bob@10.9.9.9;transport=tls>\r\n"
                   b"Content-Length: 0\r\n\r\n")
            seen.append(c.recv())   # 200
            bye = c.recv()
            seen.append(bye)
            c.send(respond(bye, 200, to_tag=None))
        client = self.client(self.serve(handler))
        inv = client.wait_request("INVITE")
        dlg = client.answer(inv, 200, sipclient.make_sdp())
        self.assertFalse(dlg.is_uac)
        self.assertEqual(client.bye(dlg).status, 200)
        self.servers[0].join()
        ok, bye = seen
        self.assertEqual(ok.header("Record-Route"), "<sip:proxy.example.test;lr>")
        self.assertEqual(ok.header("Content-Type"), "application/sdp")
        self.assertIn(";transport=tls>", ok.header("Contact"))
        self.assertEqual(bye.uri, "sip:bob@10.9.9.9;transport=tls")
        self.assertEqual(bye.headers("Route"), ["<sip:proxy.example.test;lr>"])
        self.assertEqual(bye.from_tag, ok.to_tag)
        self.assertEqual(bye.to_tag, "b2")
        self.assertEqual(bye.cseq.method, "BYE")

    def test_timeout_error_names_the_request(self) -> None:
        def handler(c: ServerConn) -> None:
            c.recv()
            c.hold()
        client = self.client(self.serve(handler))
        with self.assertRaises(SipTimeout) as cm:
            client.options(timeout=0.3)
        text = str(cm.exception)
        self.assertIn("no response to OPTIONS sip:example.test SIP/2.0", text)
        self.assertIn("last messages", text)
        self.assertIn("sent OPTIONS", text)

    def test_build_request_overrides(self) -> None:
        client = self.client(self.serve(lambda c: c.hold()))
        m = client.build_request("OPTIONS", "sip:x@example.test",
                                 headers=[("Max-Forwards", "0"), ("X-Test", "1"), ("X-Test", "2")],
                                 contact=False)
        self.assertEqual(m.headers("Max-Forwards"), ["0"])
        self.assertEqual(m.headers("X-Test"), ["1", "2"])
        self.assertIsNone(m.header("Contact"))
        n1 = client.build_request("OPTIONS", "sip:x@example.test").cseq.number
        n2 = client.build_request("OPTIONS", "sip:x@example.test").cseq.number
        self.assertEqual(n2, n1 + 1)


# ---------------------------------------------------------------------------
# logfmt, ports, peers
# ---------------------------------------------------------------------------


class TestLogfmt(unittest.TestCase):
    def test_parse(self) -> None:
        line = ('ts=2026-11-28T17:26:39.123Z level=warn event=tls.refused peer=127.0.0.2:40211 '
                'reason="certificate untrusted" empty="" q="a \\"b\\" c\\\\d" nl="x\\ny\\rz" '
                'ctl="\\x01\\x7f" eq="k=v" bare utf="é"\n')
        r = parse_logfmt(line)
        self.assertEqual(r.event, "tls.refused")
        self.assertEqual(r["peer"], "127.0.0.2:40211")
        self.assertEqual(r["reason"], "certificate untrusted")
        self.assertEqual(r["empty"], "")
        self.assertEqual(r["q"], 'a "b" c\\d')
        self.assertEqual(r["nl"], "x\ny\rz")
        self.assertEqual(r["ctl"], "\x01\x7f")
        self.assertEqual(r["eq"], "k=v")
        self.assertEqual(r["bare"], "")
        self.assertEqual(r["utf"], "é")
        self.assertEqual(r.raw, line.rstrip("\n"))

    def test_truncated_and_junk(self) -> None:
        r = parse_logfmt('event=x msg="cut off here truncated=yes')
        self.assertEqual(r["msg"], "cut off here truncated=yes")
        r = parse_logfmt("AddressSanitizer: heap-use-after-free on address 0x1")
        self.assertIsNone(r.event)
        self.assertEqual(parse_logfmt(""), {})

    def test_matches_c_logger_escapes(self) -> None:
        # What src/core/log.c writes for a value with every special character.
        value = 'a b"c\\d\ne\rf\x02g=h'
        encoded = '"a b\\"c\\\\d\\ne\\rf\\x02g=h"'
        self.assertEqual(parse_logfmt(f"event=e v={encoded} w=1")["v"], value)


class TestPorts(unittest.TestCase):
    def test_free_ports(self) -> None:
        seen = set()
        for kind in ("tcp", "udp", "both"):
            for _ in range(20):
                p = free_port(kind)
                self.assertTrue(20000 <= p <= 32000)
                self.assertNotIn(p, (5061, 3478, 5349))
                self.assertNotIn(p, seen)
                seen.add(p)
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if kind != "udp" else socket.SOCK_DGRAM)
                s.bind(("127.0.0.1", p))  # really free
                s.close()
        a, b = free_ports(2, "both", consecutive=True)
        self.assertEqual(b, a + 1)
        self.assertFalse(seen & {a, b})

    def test_busy_port_not_returned(self) -> None:
        busy = []
        for p in range(20000, 20050):
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", p))
                s.listen()
                busy.append(s)
            except OSError:
                s.close()
        orig = harness.PORT_MIN, harness.PORT_MAX
        try:
            harness.PORT_MIN, harness.PORT_MAX = 20000, 20049
            with self.assertRaises(RuntimeError):
                free_port()
        finally:
            harness.PORT_MIN, harness.PORT_MAX = orig
            for s in busy:
                s.close()

    def test_cross_process_reservation(self) -> None:
        p = free_port()
        path = os.path.join(harness._port_dir(), str(p))
        with open(path) as f:
            self.assertEqual(int(f.read()), os.getpid())


class TestPeers(unittest.TestCase):
    def test_run_peer(self) -> None:
        r = harness.run_peer(["sh", "-c", "read x; echo got $x; echo err >&2; exit 3"], 5, input="hi\n")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (3, "got hi\n", "err\n"))
        with self.assertRaises(PeerError):
            harness.run_peer(["false"], 5, check=True)
        t0 = time.monotonic()
        with self.assertRaises(PeerError) as cm:
            harness.run_peer(["sh", "-c", "echo started; sleep 30"], 0.5)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertIn("started", str(cm.exception))
        with self.assertRaises(PeerError):
            harness.run_peer(["/nonexistent/program"], 1)

    def test_openssl_s_client_against_tiny_server(self) -> None:
        server = TinySipServer(lambda c: c.send(SAMPLE))
        try:
            r = harness.run_peer(["openssl", "s_client", "-connect", f"127.0.0.1:{server.port}",
                                  "-CAfile", SERVER_CERT, "-verify_return_error", "-quiet"], 10)
            self.assertIn("SIP/2.0 200 OK", r.stdout)
        finally:
            server.close()

    def test_spawn_peer(self) -> None:
        with harness.spawn_peer(["sh", "-c", "echo ready; while read l; do echo \"echo:$l\"; done"],
                                stdin=True) as p:
            p.wait_output("ready", 5)
            mark = p.mark()
            p.send_input("one\n")
            m = p.wait_output(r"echo:(\w+)", 5, since=mark)
            self.assertEqual(m.group(1), "one")
            with self.assertRaises(PeerError):
                p.wait_output("never", 0.2)
            pid = p.pid
        self.assertFalse(p.running)
        with self.assertRaises(ProcessLookupError):
            os.kill(pid, 0)
        q = harness.spawn_peer(["sh", "-c", "echo bye; exit 4"])
        self.assertEqual(q.wait(5), 4)
        with self.assertRaises(PeerError):
            q.wait_output("not there", 1)


# ---------------------------------------------------------------------------
# The harness against fake parleyctl / parleyd
# ---------------------------------------------------------------------------

FAKE_CTL = r'''#!/usr/bin/python3
# Fake parleyctl: the command-line contract the harness relies on.
import json, os, subprocess, sys
args = sys.argv[1:]
conf = None
if args[:1] == ["-c"]:
    conf, args = args[1], args[2:]
as_json = args[:1] == ["--json"]
if as_json:
    args = args[1:]
if args[:1] == ["init"]:
    opts = dict(zip(args[1::2], args[2::2]))
    d, dom, addr = opts["--dir"], opts["--domain"], opts["--address"]
    os.makedirs(os.path.join(d, "pki"), exist_ok=True)
    pki = os.path.join(d, "pki")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-subj", "/CN=" + dom, "-days", "1", "-addext",
                    "subjectAltName=DNS:%s,IP:%s" % (dom, addr), "-keyout", os.path.join(pki, "server.key"),
                    "-out", os.path.join(pki, "server.pem")], check=True, capture_output=True)
    with open(os.path.join(pki, "server.pem")) as f, open(os.path.join(pki, "ca.pem"), "w") as g:
        g.write(f.read())
    for n in ("ca.key", "crl.pem"):
        open(os.path.join(pki, n), "w").close()
    with open(os.path.join(d, "parley.conf"), "w") as f:
        f.write("# fake\n")
    sys.exit(0)
if conf is None:
    print("usage: parleyctl -c CONF ...", file=sys.stderr)
    sys.exit(2)
state = os.path.dirname(os.path.abspath(conf))
if args[:2] == ["config", "set"] and len(args) == 4:
    with open(conf, "a") as f:
        f.write("%s=%s\n" % (args[2], args[3]))
    sys.exit(0)
if args[:2] == ["user", "add"] and "--password-stdin" in args:
    pw = sys.stdin.readline().rstrip("\n")
    if not pw:
        print("empty password", file=sys.stderr)
        sys.exit(1)
    with open(os.path.join(state, "users"), "a") as f:
        f.write(args[2] + "\n")
    sys.exit(0)
if args == ["status"]:
    users = open(os.path.join(state, "users")).read().split() if os.path.exists(os.path.join(state, "users")) else []
    print(json.dumps({"status": "ok", "users": users}) if as_json else "status: ok")
    sys.exit(0)
print("unknown command", file=sys.stderr)
sys.exit(2)
'''

FAKE_DAEMON = r'''#!/usr/bin/python3
# Fake parleyd: logfmt on stderr, event=server.ready, SIGHUP, SIGTERM -> exit.
import os, signal, socket, ssl, sys, threading, time
sys.path.insert(0, @LIBDIR@)
from sipclient import Framer, SipMessage
conf = sys.argv[sys.argv.index("-c") + 1]
debug = "-d" in sys.argv
state = os.path.dirname(os.path.abspath(conf))
cfg = dict(l.split("=", 1) for l in open(conf).read().splitlines() if "=" in l and not l.startswith("#"))

def q(v):
    v = str(v)
    if v and not any(c in v for c in ' "=\\') :
        return v
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'

def log(event, **kv):
    sys.stderr.write("ts=%s level=info event=%s%s\n" % (time.strftime("%Y-%m-%dT%H:%M:%SZ"), event,
                     "".join(" %s=%s" % (k, q(v)) for k, v in kv.items())))
    sys.stderr.flush()

log("server.starting", debug="yes" if debug else "no")
if cfg.get("fake.crash_before_ready"):
    log("server.failed", reason="told to crash")
    sys.exit(3)
if cfg.get("fake.hang"):
    time.sleep(60)
host, port = cfg["sip.tls_listen"].rsplit(":", 1)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(os.path.join(state, "pki", "server.pem"), os.path.join(state, "pki", "server.key"))
lsock = socket.create_server((host, int(port)))
signal.signal(signal.SIGTERM, lambda *a: (log("server.stopping"), os._exit(int(cfg.get("fake.exit_code", "0")))))
signal.signal(signal.SIGHUP, lambda *a: log("config.reloaded", note='with "quotes" and spaces'))
if cfg.get("fake.asan"):
    sys.stderr.write("==123==ERROR: AddressSanitizer: heap-use-after-free on address 0x1\n")
log("server.ready", listen=cfg["sip.tls_listen"], domain=cfg.get("test.domain", ""))

def serve(sock, addr):
    try:
        s = ctx.wrap_socket(sock, server_side=True)
        fr = Framer()
        while True:
            m = fr.next_message()
            if m is None:
                data = s.recv(65536)
                if not data:
                    return
                fr.feed(data)
                continue
            log("sip.request", method=m.method, peer="%s:%d" % addr)
            r = SipMessage.response(200, "OK", [(n, m.header(n)) for n in ("Via", "From", "To", "Call-ID", "CSeq")])
            s.sendall(r.to_bytes())
    except Exception as e:
        log("conn.error", error=str(e))

while True:
    c, a = lsock.accept()
    threading.Thread(target=serve, args=(c, a), daemon=True).start()
'''


class TestHarness(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = tempfile.mkdtemp(prefix="parley-selftest-harness-")
        cls.bin = os.path.join(cls.tmp, "bin")
        os.makedirs(cls.bin)
        cls.ctl = os.path.join(cls.bin, "parleyctl")
        cls.daemon = os.path.join(cls.bin, "parleyd")
        with open(cls.ctl, "w") as f:
            f.write(FAKE_CTL)
        with open(cls.daemon, "w") as f:
            f.write(FAKE_DAEMON.replace("@LIBDIR@", repr(LIB_DIR)))
        os.chmod(cls.ctl, 0o755)
        os.chmod(cls.daemon, 0o755)
        cls.saved = {k: os.environ.get(k) for k in ("PARLEYD", "PARLEYCTL", "PARLEY_TEST_TMP", "PARLEY_KEEP_TMP")}
        os.environ.update(PARLEYD=cls.daemon, PARLEYCTL=cls.ctl)
        os.environ.pop("PARLEY_KEEP_TMP", None)
        os.environ["PARLEY_TEST_TMP"] = cls.tmp

    @classmethod
    def tearDownClass(cls) -> None:
        for k, v in cls.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_paths(self) -> None:
        self.assertEqual(harness.parleyd_path(), self.daemon)
        saved = os.environ.pop("PARLEYD")
        try:
            self.assertEqual(harness.parleyd_path(), str(harness.REPO_ROOT / "build/src/daemon/parleyd"))
            self.assertTrue((harness.REPO_ROOT / "tests" / "lib" / "harness.py").exists())
        finally:
            os.environ["PARLEYD"] = saved
        saved = os.environ.pop("PARLEYCTL")
        try:
            self.assertEqual(harness.parleyctl_path(), str(harness.REPO_ROOT / "build/src/ctl/parleyctl"))
        finally:
            os.environ["PARLEYCTL"] = saved

    def test_lifecycle(self) -> None:
        with Parley(config={"registrar.min_expires": 10, "sip.tcp_enable": False, "test.domain": "example.test"},
                    users={"bob": "pw-bob"}) as p:
            d = p.dir
            self.assertTrue(d.startswith(self.tmp))
            conf = Path(p.conf).read_text()
            self.assertIn(f"sip.tls_listen=127.0.0.1:{p.tls_port}\n", conf)
            self.assertIn("registrar.min_expires=10\n", conf)
            self.assertIn("sip.tcp_enable=false\n", conf)
            self.assertTrue(os.path.exists(p.ca_file))
            p.add_user("alice", "pw-alice")
            self.assertEqual(p.users, {"bob": "pw-bob", "alice": "pw-alice"})
            ready = p.start()
            self.assertEqual(ready["listen"], f"127.0.0.1:{p.tls_port}")
            self.assertEqual(ready.event, "server.ready")
            self.assertTrue(p.running)
            # A verified TLS connection and a request through the harness's client.
            c = p.client("alice")
            self.assertEqual(c.password, "pw-alice")
            self.assertEqual(c.options().status, 200)
            rec = p.wait_log("sip.request", method="OPTIONS")
            self.assertTrue(rec["peer"].startswith("127.0.0.1:"))
            self.assertEqual(p.find_log("sip.request", method=re.compile("OPT.*")), [rec])
            self.assertEqual(p.find_log(fields={"event": "sip.request", "method": lambda v: v == "OPTIONS"}), [rec])
            with self.assertRaises(LogTimeout) as cm:
                p.wait_log("sip.request", method="INVITE", timeout=0.3)
            self.assertIn("event=server.ready", str(cm.exception))  # log tail included
            p.assert_no_log("sip.request", method="INVITE")
            with self.assertRaises(AssertionError):
                p.assert_no_log("server.ready")
            c.close()
            # reload
            mark = p.reload()
            r = p.wait_log("config.reloaded", since=mark, note='with "quotes" and spaces')
            self.assertEqual(r["note"], 'with "quotes" and spaces')
            # parleyctl
            rc, out, err = p.ctl("status", json=True)
            self.assertEqual((rc, out), (0, {"status": "ok", "users": ["bob", "alice"]}))
            res = p.ctl("status")
            self.assertEqual((res.returncode, res.stdout.strip()), (0, "status: ok"))
            self.assertEqual(p.ctl("bogus").returncode, 2)
            # stop and restart: wait_log looks at the current run by default
            pid = p.pid
            self.assertEqual(p.stop(), 0)
            with self.assertRaises(ProcessLookupError):
                os.kill(pid, 0)
            self.assertTrue(p.find_log("server.stopping"))
            p.start()
            self.assertEqual(len(p.find_log("server.ready")), 1)
            self.assertEqual(len(p.find_log("server.ready", since=0)), 2)
            self.assertEqual(p.find_log("sip.request"), [])
            pid = p.pid
        with self.assertRaises(ProcessLookupError):
            os.kill(pid, 0)
        self.assertFalse(os.path.exists(d))  # removed on success

    def test_kept_on_failure(self) -> None:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            with self.assertRaises(RuntimeError):
                with Parley() as p:
                    p.start()
                    pid = p.pid
                    raise RuntimeError("test failed")
        self.assertTrue(os.path.isdir(p.dir))
        self.assertIn(f"state directory kept: {p.dir}", err.getvalue())
        self.assertIn("event=server.ready", err.getvalue())
        with self.assertRaises(ProcessLookupError):
            os.kill(pid, 0)
        shutil.rmtree(p.dir)

    def test_exit_before_ready(self) -> None:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            with self.assertRaises(ParleyError) as cm:
                with Parley(config={"fake.crash_before_ready": 1}) as p:
                    p.start(timeout=10)
        self.assertIn("exited with 3 before server.ready", str(cm.exception))
        self.assertIn('reason="told to crash"', str(cm.exception))
        shutil.rmtree(p.dir)

    def test_ready_timeout_kills(self) -> None:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            with self.assertRaises(ParleyError) as cm:
                with Parley(config={"fake.hang": 1}) as p:
                    p.start(timeout=0.5)
        self.assertIn("no log line with event=server.ready", str(cm.exception))
        self.assertFalse(p.running)
        shutil.rmtree(p.dir)

    def test_bad_exit_code_and_sanitizer_fail_the_test(self) -> None:
        for cfg, text in (({"fake.exit_code": 1}, "parleyd exited with 1 on SIGTERM"),
                          ({"fake.asan": 1}, "sanitizer report in the log")):
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                with self.assertRaises(ParleyError) as cm:
                    with Parley(config=cfg) as p:
                        p.start()
            self.assertIn(text, str(cm.exception))
            self.assertTrue(os.path.isdir(p.dir))
            shutil.rmtree(p.dir)

    def test_setup_failure_reports(self) -> None:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            with self.assertRaises(ParleyError) as cm:
                Parley(users={"carol": ""})  # the fake refuses an empty password
        self.assertIn("empty password", str(cm.exception))
        self.assertIn("setting up failed", err.getvalue())

    def test_missing_binary(self) -> None:
        saved = os.environ["PARLEYCTL"]
        os.environ["PARLEYCTL"] = os.path.join(self.tmp, "no-such-parleyctl")
        try:
            with self.assertRaises(ParleyError) as cm:
                Parley()
            self.assertIn("missing or not executable", str(cm.exception))
            self.assertIn("$PARLEYCTL", str(cm.exception))
        finally:
            os.environ["PARLEYCTL"] = saved

    def test_peers_stopped_with_the_server(self) -> None:
        with Parley() as p:
            p.start()
            peer = p.spawn_peer(["sleep", "30"])
            self.assertTrue(peer.running)
        self.assertFalse(peer.running)


# ---------------------------------------------------------------------------
# baresip helper (real baresip)
# ---------------------------------------------------------------------------


@unittest.skipUnless(shutil.which("baresip"), "baresip is not installed (apt-get install baresip-core)")
class TestBaresip(ServerTestCase):
    def test_start_ctrl_and_stop(self) -> None:
        with harness.Baresip("alice", "secret", proxy=("127.0.0.1", free_port()), regint=0,
                             contacts=[("Bob", "sip:bob@example.test")]) as b:
            b2 = harness.Baresip("bob", "pw", regint=0, mediaenc=None, start=False)
            self.assertGreaterEqual(abs(b2.sip_port - b.sip_port), 2)
            self.assertEqual(b.tls_port, b.sip_port + 1)
            b2.cleanup()
            config = Path(b.dir, "config").read_text()
            self.assertIn(f"ctrl_tcp_listen      127.0.0.1:{b.ctrl_port}", config)
            self.assertIn(f"sip_listen           127.0.0.1:{b.sip_port}", config)
            self.assertIn('"Bob" <sip:bob@example.test>;presence=p2p',
                          Path(b.dir, "contacts").read_text())
            self.assertIn(";mediaenc=srtp-mand;answermode=auto;regint=0", b.account_line)
            info = b.reginfo()
            self.assertIn("sip:alice@example.test", info)
            self.assertIsNone(b.registration_status())  # regint=0: never tried
            self.assertIn("Active calls (0)", b.listcalls())
            r = b.command("no-such-command")
            self.assertIn("ok", r)
            pid = b.peer.pid
            self.assertEqual(b.stop(), 0)
            with self.assertRaises(ProcessLookupError):
                os.kill(pid, 0)
        self.assertFalse(os.path.exists(b.dir))

    def test_registers_with_md5_over_tls(self) -> None:
        d = DigestServer(["MD5"], password="secret")
        server = self.serve(d)
        with harness.Baresip("alice", "secret", proxy=("127.0.0.1", server.port), regint=600,
                             cafile=SERVER_CERT) as b:
            b.wait_registered(10)
            self.assertTrue(b.is_registered())
            b.wait_output(r"REGISTER sip:example\.test", 5)  # the -s SIP trace
        regs = [q for q in d.requests if q.method == "REGISTER"]
        self.assertGreaterEqual(len(regs), 2)
        self.assertEqual(auth_params(regs[1].header("Authorization"))["username"], "alice")
        self.assertGreaterEqual(d.good, 1)

    def test_registration_refused(self) -> None:
        server = self.serve(DigestServer(["MD5"], password="not-the-agents"))
        with harness.Baresip("alice", "secret", proxy=("127.0.0.1", server.port)) as b:
            b.wait_registered(10, status="ERR")
            self.assertFalse(b.is_registered())
            with self.assertRaises(harness.BaresipError):
                b.wait_registered(0.3)


if __name__ == "__main__":
    unittest.main(verbosity=2)
