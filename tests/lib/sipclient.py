"""A scriptable SIP client for Parley's integration tests.

Standard library only (Python 3.11). Built on ``sipmsg`` (messages, framing,
digest), whose names it re-exports, so tests need only ``import sipclient``:

* ``SipConnection`` -- one TLS or TCP connection: send anything (raw bytes
  are sent unmodified, so tests can send malformed input), receive messages
  (requests and responses) with timeouts, detect the peer closing.
* ``SipClient`` -- a user agent on a connection: builds requests (Via,
  branch, CSeq, tags, Contact), matches responses to requests, answers
  digest challenges (RFC 7616 / RFC 8760), sends ACK, CANCEL and in-dialog
  requests, and responds to requests the server sends it.
* ``Dialog``, ``make_tls_context``, ``make_sdp``.

Every wait takes an explicit timeout (default: the connection's
``timeout``, 5 s times $PARLEY_TEST_TIMEOUT_SCALE); failures raise
``SipError`` subclasses whose text includes the last messages seen on the
connection. Set ``SIPCLIENT_LOG=1`` (or pass ``log=True``) to print every
message sent and received to stderr.

Example::

    with SipClient.connect("127.0.0.1", 25061, cafile=ca, server_hostname="example.test",
                           user="alice", domain="example.test", password="secret") as c:
        assert c.register().status == 200
        assert c.options().status == 200
"""

from __future__ import annotations

import base64
import collections
import os
import re
import secrets
import socket
import ssl
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import sipmsg
from sipmsg import *  # noqa: F401,F403  (re-exported: tests import sipclient only)
from sipmsg import (AuthError, Challenge, ConnectionClosed, HeaderArg, NameAddr, SipMessage,
                    SipParseError, SipTimeout, SipUri, UnexpectedResponse, Via, _header_items,
                    _key, build_authorization, new_branch, parse_challenges, random_token)

__all__ = sipmsg.__all__ + [
    "TIMEOUT_SCALE", "DEFAULT_TIMEOUT", "SipConnection", "SipClient", "Dialog",
    "make_tls_context", "make_sdp",
]

# The default timeout is scaled for slow set-ups (sanitizers, valgrind).
TIMEOUT_SCALE = float(os.environ.get("PARLEY_TEST_TIMEOUT_SCALE", "1") or "1")
DEFAULT_TIMEOUT = 5.0 * TIMEOUT_SCALE

# ---------------------------------------------------------------------------
# Transport
# ---------------------------------------------------------------------------

_TLS_VERSIONS = {
    "1": ssl.TLSVersion.TLSv1, "1.0": ssl.TLSVersion.TLSv1, "1.1": ssl.TLSVersion.TLSv1_1,
    "1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3,
}


def _tls_version(v: "str | ssl.TLSVersion | None") -> ssl.TLSVersion | None:
    if v is None or isinstance(v, ssl.TLSVersion):
        return v
    key = str(v).upper().replace("TLSV", "").replace("TLS", "").replace("_", ".").strip()
    if key not in _TLS_VERSIONS:
        raise ValueError(f"unknown TLS version {v!r} (use '1.0'..'1.3' or ssl.TLSVersion)")
    return _TLS_VERSIONS[key]


def make_tls_context(*, cafile: str | None = None, verify: bool = True,
                     certfile: str | None = None, keyfile: str | None = None,
                     min_version: "str | ssl.TLSVersion | None" = None,
                     max_version: "str | ssl.TLSVersion | None" = None,
                     ciphers: str | None = None, check_hostname: bool | None = None
                     ) -> ssl.SSLContext:
    """A client SSLContext. ``verify=False`` accepts any server certificate;
    otherwise ``cafile`` (or the system store) must vouch for it and, unless
    ``check_hostname=False``, its name must match ``server_hostname``.
    ``ciphers`` is an OpenSSL cipher string for TLS <= 1.2 (TLS 1.0/1.1 need
    e.g. ``"DEFAULT:@SECLEVEL=0"`` with OpenSSL 3)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.check_hostname = True if check_hostname is None else check_hostname
        if cafile:
            ctx.load_verify_locations(cafile=cafile)
        else:
            ctx.load_default_certs()
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if certfile:
        ctx.load_cert_chain(certfile, keyfile)
    if ciphers:
        ctx.set_ciphers(ciphers)
    with warnings.catch_warnings():
        # Python warns that TLS 1.0/1.1 are deprecated; tests use them on purpose.
        warnings.simplefilter("ignore", DeprecationWarning)
        lo, hi = _tls_version(min_version), _tls_version(max_version)
        if lo is not None:
            ctx.minimum_version = lo
        if hi is not None:
            ctx.maximum_version = hi
    return ctx


def _fmt_addr(addr: tuple) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _env_log() -> bool:
    return os.environ.get("SIPCLIENT_LOG", "") not in ("", "0", "no", "false")


class SipConnection:
    """One stream connection (TLS by default, or plain TCP) to a SIP server.

    Connects in the constructor. Arguments:
      transport: "tls" or "tcp".
      cafile / verify / check_hostname / server_hostname: how the server is
        checked (server_hostname also sets SNI; defaults to ``host``).
      certfile / keyfile: a client certificate.
      min_version / max_version: "1.0".."1.3" or ssl.TLSVersion.
      ciphers: OpenSSL cipher string (TLS <= 1.2).
      ssl_context: use this context instead of building one.
      source_address: local IP (or (ip, port)) to bind, e.g. "127.0.0.5".
      timeout: default for every wait, including connect and handshake.
      log: print every message to stderr (default: $SIPCLIENT_LOG).
      auto_pong: answer a CRLFCRLF keep-alive ping with CRLF (RFC 5626).

    Connection and handshake failures raise ``OSError`` / ``ssl.SSLError``
    as the socket layer reports them. With TLS 1.3 a server that refuses
    the client's certificate does so after the client's handshake completes:
    it shows on the first ``recv`` as ``ConnectionClosed`` (``cause`` holds
    the alert).
    """

    def __init__(self, host: str, port: int, *, transport: str = "tls",
                 cafile: str | None = None, verify: bool = True,
                 check_hostname: bool | None = None, server_hostname: str | None = None,
                 certfile: str | None = None, keyfile: str | None = None,
                 min_version: "str | ssl.TLSVersion | None" = None,
                 max_version: "str | ssl.TLSVersion | None" = None,
                 ciphers: str | None = None, ssl_context: ssl.SSLContext | None = None,
                 source_address: "str | tuple[str, int] | None" = None,
                 timeout: float = DEFAULT_TIMEOUT, log: bool | None = None,
                 name: str | None = None, auto_pong: bool = True,
                 history_size: int = 12) -> None:
        self.host, self.port = host, port
        self.transport = transport.upper()
        if self.transport not in ("TLS", "TCP"):
            raise ValueError(f"transport must be 'tls' or 'tcp', not {transport!r}")
        self.timeout = timeout
        self.log = _env_log() if log is None else log
        self.name = name or ""
        self.auto_pong = auto_pong
        self.framer = Framer()
        #: Messages received but not yet returned (see SipClient's waits).
        self.pending: collections.deque[SipMessage] = collections.deque()
        self.history: collections.deque[str] = collections.deque(maxlen=history_size)
        self.closed = False
        self.peer_closed = False
        if isinstance(source_address, str):
            source_address = (source_address, 0)
        raw = socket.create_connection((host, port), timeout=timeout,
                                       source_address=source_address)
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # Taken before the handshake: a server refusing us under TLS 1.3 may
            # reset the connection before we could ask afterwards.
            self.local_address: tuple = raw.getsockname()
            self.peer_address: tuple = raw.getpeername()
            if self.transport == "TLS":
                ctx = ssl_context or make_tls_context(
                    cafile=cafile, verify=verify, certfile=certfile, keyfile=keyfile,
                    min_version=min_version, max_version=max_version, ciphers=ciphers,
                    check_hostname=check_hostname)
                sni = server_hostname if server_hostname is not None else host
                self.sock: socket.socket = ctx.wrap_socket(raw, server_hostname=sni)
            else:
                self.sock = raw
        except BaseException:
            raw.close()
            raise
        self._note("connected", f"{self.transport} {_fmt_addr(self.local_address)} -> "
                   f"{_fmt_addr(self.peer_address)}" + (f" {self.tls_version}" if self.tls_version else ""))

    # -- TLS details -------------------------------------------------------

    @property
    def tls_version(self) -> str | None:
        return self.sock.version() if isinstance(self.sock, ssl.SSLSocket) else None

    @property
    def cipher(self) -> tuple | None:
        return self.sock.cipher() if isinstance(self.sock, ssl.SSLSocket) else None

    def peer_certificate(self, binary: bool = False) -> "dict | bytes | None":
        """The server's certificate (dict when verified, DER with binary=True)."""
        if not isinstance(self.sock, ssl.SSLSocket):
            return None
        return self.sock.getpeercert(binary_form=binary)

    # -- logging -----------------------------------------------------------

    def _note(self, direction: str, text: str, full: str | None = None) -> None:
        self.history.append(f"{time.strftime('%H:%M:%S')} {direction} {text}")
        if self.log:
            stamp = time.strftime("%H:%M:%S") + f".{int(time.time() * 1000) % 1000:03d}"
            who = f" {self.name}" if self.name else ""
            sys.stderr.write(f"--- {stamp}{who} {direction} {text}\n")
            if full is not None:
                sys.stderr.write(full.rstrip("\r\n").replace("\r\n", "\n") + "\n")
            sys.stderr.flush()

    def history_lines(self) -> list[str]:
        return list(self.history)

    # -- sending -----------------------------------------------------------

    def send(self, data: "bytes | bytearray | str | SipMessage") -> None:
        """Send a message, or raw bytes / text exactly as given."""
        if isinstance(data, SipMessage):
            raw = data.to_bytes()
            self._note("sent", data.summary(), raw.decode("utf-8", "replace"))
        else:
            raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else bytes(data)
            first = raw.split(b"\n", 1)[0].strip()[:100].decode("utf-8", "replace")
            self._note("sent", f"raw {len(raw)} bytes: {first!r}", raw.decode("utf-8", "replace"))
        self._sendall(raw)

    def send_segments(self, chunks: Iterable[bytes], delay: float = 0.01) -> None:
        """Send each chunk in its own write (one TLS record / TCP segment
        each, thanks to TCP_NODELAY), pausing ``delay`` seconds between."""
        for i, chunk in enumerate(chunks):
            if i and delay:
                time.sleep(delay)
            self._sendall(bytes(chunk))
        self._note("sent", "segments")

    def send_keepalive(self) -> None:
        """Send an RFC 5626 ping (CRLFCRLF)."""
        self._sendall(b"\r\n\r\n")
        self._note("sent", "keep-alive ping CRLFCRLF")

    def _sendall(self, raw: bytes) -> None:
        if self.closed:
            raise ConnectionClosed("send on a closed connection", history=self.history_lines())
        self.sock.settimeout(self.timeout)
        try:
            self.sock.sendall(raw)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError) as e:
            self.peer_closed = True
            raise ConnectionClosed(f"peer closed the connection while sending: {e}",
                                   history=self.history_lines(), cause=e) from e

    # -- receiving ---------------------------------------------------------

    def _read_some(self, deadline: float) -> None:
        """One read into the framer; raises SipTimeout or ConnectionClosed."""
        if self.peer_closed:
            raise ConnectionClosed("connection already closed by the peer",
                                   history=self.history_lines(), leftover=self.framer.pending)
        if self.closed:
            raise ConnectionClosed("connection closed locally", history=self.history_lines())
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise SipTimeout("timed out", history=self.history_lines())
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, ssl.SSLWantReadError):
            raise SipTimeout("timed out", history=self.history_lines()) from None
        except (ConnectionResetError, ssl.SSLError, OSError) as e:
            self.peer_closed = True
            self._note("closed", f"by peer: {e}")
            raise ConnectionClosed(f"connection closed by the peer: {e}",
                                   history=self.history_lines(),
                                   leftover=self.framer.pending, cause=e) from e
        if not data:
            self.peer_closed = True
            self._note("closed", "by peer (EOF)")
            raise ConnectionClosed("connection closed by the peer", history=self.history_lines(),
                                   leftover=self.framer.pending)
        self.framer.feed(data)

    def _next_framed(self) -> SipMessage | None:
        try:
            msg = self.framer.next_message()
        except SipParseError as e:
            raise SipParseError(f"cannot frame what the peer sent: {e.message}; buffered: "
                                f"{self.framer.pending[:200]!r}",
                                history=self.history_lines()) from None
        if self.framer.new_pings:
            n, self.framer.new_pings = self.framer.new_pings, 0
            self._note("received", f"{n} keep-alive ping(s)")
            if self.auto_pong and not self.peer_closed:
                try:
                    self._sendall(b"\r\n" * n)
                except ConnectionClosed:
                    pass
        if msg is not None:
            self._note("received", msg.summary(), (msg.raw or b"").decode("utf-8", "replace"))
        return msg

    def recv(self, timeout: float | None = None) -> SipMessage:
        """The next message (``pending`` ones first). Raises SipTimeout after
        ``timeout`` seconds (default: the connection's), ConnectionClosed if
        the peer closes."""
        if self.pending:
            return self.pending.popleft()
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            msg = self._next_framed()
            if msg is not None:
                return msg
            try:
                self._read_some(deadline)
            except SipTimeout:
                t = self.timeout if timeout is None else timeout
                raise SipTimeout(f"no message within {t:.1f}s", history=self.history_lines()) from None

    def try_recv(self, timeout: float | None = None) -> SipMessage | None:
        """Like recv, but None on timeout (to assert that nothing arrives)."""
        try:
            return self.recv(timeout)
        except SipTimeout:
            return None

    def wait_keepalive(self, timeout: float | None = None) -> int:
        """Wait until at least one more CRLF keep-alive arrives (a pong, or a
        ping); returns the total count. Messages arriving meanwhile are kept
        in ``pending``."""
        t = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + t
        start = self.framer.crlf_count
        while True:
            msg = self._next_framed()
            if msg is not None:
                self.pending.append(msg)
            if self.framer.crlf_count > start:
                return self.framer.crlf_count
            try:
                self._read_some(deadline)
            except SipTimeout:
                raise SipTimeout(f"no keep-alive CRLF within {t:.1f}s",
                                 history=self.history_lines()) from None

    def expect_closed(self, timeout: float | None = None) -> list[SipMessage]:
        """Wait for the peer to close; returns the messages that arrived
        before the close. Raises SipTimeout if it stays open."""
        t = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + t
        got: list[SipMessage] = list(self.pending)
        self.pending.clear()
        while True:
            try:
                msg = self._next_framed()
            except SipParseError:
                msg = None
                self.framer.buf.clear()  # garbage before a close is still a close
            if msg is not None:
                got.append(msg)
                continue
            try:
                self._read_some(deadline)
            except ConnectionClosed:
                return got
            except SipTimeout:
                raise SipTimeout(f"the peer did not close the connection within {t:.1f}s",
                                 history=self.history_lines()) from None

    def is_open(self, wait: float = 0.0) -> bool:
        """False if the peer has closed (checked by reading for ``wait``
        seconds; anything that arrives is kept for recv)."""
        if self.peer_closed or self.closed:
            return False
        try:
            self._read_some(time.monotonic() + max(wait, 0.001))
        except SipTimeout:
            return True
        except ConnectionClosed:
            return False
        return True

    # -- closing -----------------------------------------------------------

    def close(self, notify: bool = True) -> None:
        """Close; over TLS send close_notify first (also in reply to the
        peer's) unless ``notify`` is False. The peer's close_notify is not
        waited for (libevent never sends one)."""
        if self.closed:
            return
        self.closed = True
        try:
            if notify and isinstance(self.sock, ssl.SSLSocket):
                # Non-blocking: the first SSL_shutdown writes our close_notify,
                # the second would wait for the peer's and fails at once instead.
                self.sock.settimeout(0.0)
                try:
                    self.sock.unwrap()
                except (OSError, ValueError):
                    pass
            self.sock.close()
        finally:
            self._note("closed", "locally")

    def abort(self) -> None:
        """Close abruptly: no close_notify, and a TCP RST (SO_LINGER 0)."""
        if self.closed:
            return
        self.closed = True
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
        self.sock.close()
        self._note("closed", "aborted (RST)")

    def __enter__(self) -> "SipConnection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------
# Dialogs
# ---------------------------------------------------------------------------


@dataclass
class Dialog:
    """What RFC 3261 §12 keeps for a dialog, from this UA's side."""

    call_id: str
    local_header: str   # our From (UAC) / To (UAS) value, with our tag
    remote_header: str  # their To (UAC) / From (UAS) value, with their tag
    remote_target: str  # the peer's Contact URI
    route_set: list[str]
    local_cseq: int
    remote_cseq: int | None = None
    is_uac: bool = True
    invite: SipMessage | None = None  # the request that created it

    @property
    def local_tag(self) -> str | None:
        return NameAddr.parse(self.local_header).tag

    @property
    def remote_tag(self) -> str | None:
        return NameAddr.parse(self.remote_header).tag

    @classmethod
    def from_uac(cls, request: SipMessage, response: SipMessage) -> "Dialog":
        """The dialog a 2xx/1xx-with-tag ``response`` to our ``request`` creates."""
        contacts = response.contacts
        rr = response.headers("Record-Route", split=True)
        return cls(call_id=request.call_id or "", local_header=request.header("From") or "",
                   remote_header=response.header("To") or "",
                   remote_target=contacts[0].uri if contacts else (request.uri or ""),
                   route_set=list(reversed(rr)), local_cseq=request.cseq.number if request.cseq else 1,
                   is_uac=True, invite=request)

    @classmethod
    def from_uas(cls, request: SipMessage, local_tag: str) -> "Dialog":
        """The dialog we create by answering ``request`` with To tag ``local_tag``."""
        contacts = request.contacts
        to = NameAddr.parse(request.header("To") or "")
        to.params.setdefault("tag", local_tag)
        return cls(call_id=request.call_id or "", local_header=str(to),
                   remote_header=request.header("From") or "",
                   remote_target=contacts[0].uri if contacts else "",
                   route_set=request.headers("Record-Route", split=True), local_cseq=0,
                   remote_cseq=request.cseq.number if request.cseq else None,
                   is_uac=False, invite=request)


# ---------------------------------------------------------------------------
# User agent
# ---------------------------------------------------------------------------


def make_sdp(address: str = "127.0.0.1", port: int = 40000, *, crypto: bool | str = True,
             codecs: Sequence[tuple[int, str]] = ((0, "PCMU/8000"),),
             session_id: int | None = None, extra: Sequence[str] = ()) -> str:
    """A minimal audio offer/answer. ``crypto=True`` offers SDES SRTP
    (RTP/SAVP with an a=crypto line and a random key); a string is used as
    the a=crypto value; False gives plain RTP/AVP."""
    sid = session_id if session_id is not None else int(time.time())
    ip = "IP6" if ":" in address else "IP4"
    proto = "RTP/SAVP" if crypto else "RTP/AVP"
    lines = ["v=0", f"o=- {sid} {sid} IN {ip} {address}", "s=-", f"c=IN {ip} {address}", "t=0 0",
             f"m=audio {port} {proto} " + " ".join(str(pt) for pt, _ in codecs)]
    lines += [f"a=rtpmap:{pt} {name}" for pt, name in codecs]
    if crypto:
        if isinstance(crypto, str):
            lines.append(f"a=crypto:{crypto}")
        else:
            key = base64.b64encode(secrets.token_bytes(30)).decode()
            lines.append(f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}")
    lines += list(extra)
    lines.append("a=sendrecv")
    return "\r\n".join(lines) + "\r\n"


class SipClient:
    """A SIP user agent over one SipConnection.

    Identity: ``user`` @ ``domain`` (From, Contact, REGISTER's To);
    ``password`` (and ``auth_user``, default ``user``) answer challenges.
    ``algorithm`` forces one digest algorithm; otherwise the first offered
    challenge whose algorithm is in ``supported_algorithms`` is answered.

    Messages that arrive while the client waits for something else (a
    NOTIFY during a SUBSCRIBE, a request for us while we wait for a
    response) are kept in ``pending`` and returned by the next recv /
    wait_request / wait_response that wants them.
    """

    def __init__(self, conn: SipConnection, *, user: str | None = None,
                 domain: str = "example.test", password: str | None = None,
                 auth_user: str | None = None, display_name: str | None = None,
                 algorithm: str | None = None,
                 supported_algorithms: Sequence[str] = ("MD5", "MD5-SESS", "SHA-256",
                                                        "SHA-256-SESS", "SHA-512-256",
                                                        "SHA-512-256-SESS"),
                 user_agent: str | None = "parley-test-client",
                 contact_params: str = "") -> None:
        self.conn = conn
        self.user = user
        self.domain = domain
        self.password = password
        self.auth_user = auth_user
        self.display_name = display_name
        self.algorithm = algorithm
        self.supported_algorithms = [a.upper() for a in supported_algorithms]
        self.user_agent = user_agent
        self.contact_params = contact_params
        self.timeout = conn.timeout
        self.local_tag = random_token(6)   # From tag for out-of-dialog requests
        self._cseq = 0
        self.register_call_id = f"{random_token(10)}@parley-test"
        #: Cached challenges by (proxy?, realm), for pre-emptive credentials.
        self.auth_cache: dict[tuple[bool, str], Challenge] = {}
        #: nonce -> last nc used with it.
        self.nonce_counts: dict[str, int] = {}
        self._uas_tags: dict[tuple[str, str | None], str] = {}
        self.last_request: SipMessage | None = None

    @classmethod
    def connect(cls, host: str, port: int, *, user: str | None = None,
                domain: str = "example.test", password: str | None = None,
                auth_user: str | None = None, display_name: str | None = None,
                algorithm: str | None = None, **conn_kwargs: object) -> "SipClient":
        """Open a SipConnection (``conn_kwargs`` go to it) and wrap it."""
        conn_kwargs.setdefault("name", user or "")
        conn = SipConnection(host, port, **conn_kwargs)  # type: ignore[arg-type]
        return cls(conn, user=user, domain=domain, password=password, auth_user=auth_user,
                   display_name=display_name, algorithm=algorithm)

    def close(self) -> None:
        self.conn.close()

    @property
    def pending(self) -> "collections.deque[SipMessage]":
        """Messages received but not yet claimed by a wait (the connection's)."""
        return self.conn.pending

    def __enter__(self) -> "SipClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- identity ----------------------------------------------------------

    @property
    def aor(self) -> str:
        return f"sip:{self.user}@{self.domain}" if self.user else f"sip:{self.domain}"

    @property
    def transport_param(self) -> str:
        return self.conn.transport.lower()

    def contact_uri(self) -> str:
        host, port = self.conn.local_address[0], self.conn.local_address[1]
        if ":" in host:
            host = f"[{host}]"
        user = f"{self.user}@" if self.user else ""
        return f"sip:{user}{host}:{port};transport={self.transport_param}"

    def contact(self) -> str:
        return f"<{self.contact_uri()}>{self.contact_params}"

    def from_header(self, tag: str | None = None) -> str:
        na = NameAddr(self.aor, self.display_name, {"tag": tag or self.local_tag})
        return str(na)

    def next_cseq(self) -> int:
        self._cseq += 1
        return self._cseq

    def via(self, branch: str | None = None) -> str:
        host, port = self.conn.local_address[0], self.conn.local_address[1]
        if ":" in host:
            host = f"[{host}]"
        return f"SIP/2.0/{self.conn.transport} {host}:{port};branch={branch or new_branch()};rport"

    # -- building ----------------------------------------------------------

    def build_request(self, method: str, uri: str | None = None, *, to: str | None = None,
                      from_: str | None = None, call_id: str | None = None,
                      cseq: int | None = None, branch: str | None = None,
                      route: Sequence[str] | None = None, contact: "bool | str" = True,
                      max_forwards: int | None = 70, expires: int | None = None,
                      headers: HeaderArg = None, body: "bytes | str" = b"",
                      content_type: str | None = None) -> SipMessage:
        """A new out-of-dialog request (not sent).

        Defaults: Request-URI ``sip:DOMAIN`` for REGISTER, else ``to``;
        To = our AOR for REGISTER, else ``<uri>``; From = our AOR with our
        tag; a fresh Call-ID (REGISTER: the client's registration Call-ID);
        the next CSeq; a Via with a fresh branch; Max-Forwards 70; Contact
        ``<sip:user@LOCAL:PORT;transport=tls>`` (``contact=False`` omits it,
        a string replaces it). ``headers`` are added after these; one with
        the same name as a default header replaces it (all instances).
        """
        method = method.upper()
        if uri is None:
            if method == "REGISTER":
                uri = f"sip:{self.domain}"
            elif to is not None:
                uri = NameAddr.parse(to).uri
            else:
                raise ValueError("build_request needs a uri or a to")
        if to is None:
            to = f"<{self.aor}>" if method == "REGISTER" else f"<{uri}>"
        elif "<" not in to and not to.startswith('"'):
            to = f"<{to}>"
        if call_id is None:
            call_id = self.register_call_id if method == "REGISTER" else f"{random_token(10)}@parley-test"
        fields: list[tuple[str, str]] = [("Via", self.via(branch))]
        if max_forwards is not None:
            fields.append(("Max-Forwards", str(max_forwards)))
        for r in route or ():
            fields.append(("Route", r))
        fields += [("From", from_ or self.from_header()), ("To", to), ("Call-ID", call_id),
                   ("CSeq", f"{cseq if cseq is not None else self.next_cseq()} {method}")]
        if contact:
            fields.append(("Contact", contact if isinstance(contact, str) else self.contact()))
        if expires is not None:
            fields.append(("Expires", str(expires)))
        if self.user_agent:
            fields.append(("User-Agent", self.user_agent))
        msg = SipMessage.request(method, uri, fields, body)
        if content_type:
            msg.set_header("Content-Type", content_type)
        _apply_extra(msg, headers)
        return msg

    def build_response(self, request: SipMessage, status: int, reason: str | None = None, *,
                       to_tag: str | None = None, headers: HeaderArg = None,
                       body: "bytes | str" = b"", content_type: str | None = None,
                       contact: "bool | str | None" = None) -> SipMessage:
        """A response to ``request`` (not sent): Via, From, To, Call-ID and
        CSeq copied; a To tag added (except for 100), the same one for every
        response to the same request; Record-Route copied and Contact added
        for responses that can create a dialog (1xx-2xx to INVITE/SUBSCRIBE/
        REFER/NOTIFY)."""
        fields: list[tuple[str, str]] = [("Via", v) for v in request.headers("Via")]
        fields.append(("From", request.header("From") or ""))
        to = request.header("To") or ""
        if status != 100 and request.to_tag is None:
            key = (request.call_id or "", request.from_tag)
            tag = to_tag or self._uas_tags.get(key) or random_token(6)
            self._uas_tags[key] = tag
            to = f"{to};tag={tag}"
        fields += [("To", to), ("Call-ID", request.call_id or ""), ("CSeq", request.header("CSeq") or "")]
        dialog_forming = request.method in ("INVITE", "SUBSCRIBE", "REFER", "NOTIFY") and 100 < status < 300
        if dialog_forming:
            fields += [("Record-Route", v) for v in request.headers("Record-Route")]
        if contact is None:
            contact = dialog_forming
        if contact:
            fields.append(("Contact", contact if isinstance(contact, str) else self.contact()))
        if self.user_agent:
            fields.append(("Server", self.user_agent))
        msg = SipMessage.response(status, reason, fields, body)
        if content_type:
            msg.set_header("Content-Type", content_type)
        _apply_extra(msg, headers)
        return msg

    # -- sending / receiving ----------------------------------------------

    def send(self, msg: "SipMessage | bytes | str") -> None:
        """Send a message or raw bytes (unmodified)."""
        if isinstance(msg, SipMessage) and msg.is_request:
            self.last_request = msg
        self.conn.send(msg)

    def _wait(self, want: Callable[[SipMessage], bool], timeout: float | None, what: str,
              deadline: float | None = None) -> SipMessage:
        for i, m in enumerate(self.pending):
            if want(m):
                del self.pending[i]
                return m
        t = self.timeout if timeout is None else timeout
        if deadline is None:
            deadline = time.monotonic() + t
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise SipTimeout("")
                m = self._recv_new(remaining)
            except SipTimeout:
                raise SipTimeout(f"no {what} within {t:.1f}s"
                                 + (f"; {len(self.pending)} other message(s) pending" if self.pending else ""),
                                 history=self.conn.history_lines()) from None
            if want(m):
                return m
            self.pending.append(m)

    def _recv_new(self, timeout: float) -> SipMessage:
        """A message from the wire, never from pending."""
        saved = list(self.conn.pending)
        self.conn.pending.clear()
        try:
            return self.conn.recv(timeout)
        finally:
            self.conn.pending.extendleft(reversed(saved))

    def recv(self, timeout: float | None = None) -> SipMessage:
        """The next message of any kind (pending ones first)."""
        return self._wait(lambda m: True, timeout, "message")

    def wait_request(self, method: str | None = None, timeout: float | None = None) -> SipMessage:
        """The next request (of ``method`` if given); others are kept pending."""
        meth = method.upper() if method else None
        return self._wait(lambda m: m.is_request and (meth is None or m.method == meth), timeout,
                          f"{meth or ''} request".strip())

    def wait_response(self, request: SipMessage, timeout: float | None = None,
                      final: bool = True) -> SipMessage:
        """The next response to ``request`` (matched by top-Via branch and
        CSeq method); with ``final`` the 1xx are collected into the result's
        ``provisional`` list. Sets ``response.request``."""
        branch, meth = request.branch, request.method
        prov: list[SipMessage] = []
        t = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + t

        def match(m: SipMessage) -> bool:
            return bool(m.is_response and m.branch == branch and m.cseq and m.cseq.method == meth)

        while True:
            r = self._wait(match, t, f"response to {request.summary()}", deadline)
            r.request = request
            if not final or (r.status or 0) >= 200:
                r.provisional = prov
                return r
            prov.append(r)

    def send_request(self, msg: SipMessage) -> SipMessage:
        """Send a built request; returns it (for wait_response)."""
        self.send(msg)
        return msg

    def request(self, method: str, uri: str | None = None, *, timeout: float | None = None,
                ack_2xx: bool = True, **build: object) -> SipMessage:
        """Build, send and wait for the final response (no authentication).
        An INVITE's non-2xx is ACKed (as the transaction layer must); its
        2xx too unless ``ack_2xx`` is False."""
        req = self.build_request(method, uri, **build)  # type: ignore[arg-type]
        return self._transact(req, timeout, ack_2xx)

    def _transact(self, req: SipMessage, timeout: float | None, ack_2xx: bool) -> SipMessage:
        self.send(req)
        resp = self.wait_response(req, timeout)
        if req.method == "INVITE":
            st = resp.status or 0
            if st >= 300 or (200 <= st < 300 and ack_2xx):
                self.ack(req, resp)
        return resp

    # -- authentication -----------------------------------------------------

    def choose_challenge(self, response: SipMessage, algorithm: str | None = None) -> Challenge:
        """The challenge of a 401/407 to answer: the first Digest one whose
        algorithm we support, or the one with ``algorithm`` (forced).
        Raises AuthError if there is none."""
        proxy = response.status == 407
        hname = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        chs = [c for v in response.headers(hname) for c in parse_challenges(v, proxy=proxy)]
        digests = [c for c in chs if c.scheme.lower() == "digest"]
        forced = (algorithm or self.algorithm or "").upper() or None
        for c in digests:
            if forced and c.algorithm == forced:
                return c
            if not forced and c.algorithm in self.supported_algorithms:
                return c
        offered = ", ".join(c.algorithm for c in digests) or "none"
        want = forced or "/".join(self.supported_algorithms)
        raise AuthError(f"{response.status}: no Digest challenge with algorithm {want} "
                        f"(offered: {offered})", response=response, history=self.conn.history_lines())

    def authorization_for(self, challenge: Challenge, method: str, uri: str, *,
                          username: str | None = None, password: str | None = None,
                          body: bytes = b"", nc: int | None = None, cnonce: str | None = None,
                          qop: str | None = None) -> str:
        """An Authorization value for ``challenge``; nc counts per nonce
        (1 for a new nonce, +1 each time it is reused) unless given."""
        if nc is None:
            nc = self.nonce_counts.get(challenge.nonce, 0) + 1
        self.nonce_counts[challenge.nonce] = max(nc, self.nonce_counts.get(challenge.nonce, 0))
        user = username or self.auth_user or self.user
        pw = password if password is not None else self.password
        if user is None or pw is None:
            raise AuthError("a challenge arrived but the client has no user/password",
                            history=self.conn.history_lines())
        return build_authorization(challenge, username=user, password=pw, method=method, uri=uri,
                                   nc=nc, cnonce=cnonce, qop=qop, body=body)

    def _add_credentials(self, req: SipMessage, challenges: Iterable[Challenge],
                         username: str | None, password: str | None) -> None:
        req.remove_header("Authorization")
        req.remove_header("Proxy-Authorization")
        for ch in challenges:
            value = self.authorization_for(ch, req.method or "", req.uri or "",
                                           username=username, password=password, body=req.body)
            req.add_header("Proxy-Authorization" if ch.proxy else "Authorization", value)

    def forget_credentials(self) -> None:
        """Drop cached challenges: the next request starts unauthenticated."""
        self.auth_cache.clear()

    def request_with_auth(self, method: str, uri: str | None = None, *,
                          password: str | None = None, username: str | None = None,
                          algorithm: str | None = None, timeout: float | None = None,
                          max_stale: int = 3, preemptive: bool = True, ack_2xx: bool = True,
                          request: SipMessage | None = None, **build: object) -> SipMessage:
        """Send a request, answering 401/407 challenges, and return the final
        response (which is a 401/407/403 if the credentials are refused).

        Retries with the same Call-ID, CSeq + 1 and a fresh branch. A
        challenge answered once is answered again only if it says
        ``stale=true`` (at most ``max_stale`` times). With ``preemptive``
        the challenges cached from earlier exchanges are answered up front
        (reusing their nonce with nc + 1). ``request`` sends a pre-built
        request instead of building one from ``build``. Raises AuthError
        when no offered challenge can be answered (e.g. ``algorithm`` forced
        to one the server does not offer).
        """
        req = request or self.build_request(method, uri, **build)  # type: ignore[arg-type]
        used_cached = False
        if preemptive and self.auth_cache:
            self._add_credentials(req, self.auth_cache.values(), username, password)
            used_cached = True
        answered: set[tuple[bool, str]] = set()
        stale_left = max_stale
        while True:
            resp = self._transact(req, timeout, ack_2xx)
            if resp.status not in (401, 407):
                return resp
            ch = self.choose_challenge(resp, algorithm)
            key = (ch.proxy, ch.realm)
            if key in answered:
                if ch.stale and stale_left > 0:
                    stale_left -= 1
                else:
                    return resp
            elif used_cached and ch.stale and stale_left > 0:
                stale_left -= 1
            answered.add(key)
            used_cached = False
            # A cached challenge for the other header kind stays valid.
            self.auth_cache = {k: v for k, v in self.auth_cache.items() if k[0] != ch.proxy}
            self.auth_cache[key] = ch
            req = req.copy()
            cs = req.cseq
            assert cs is not None
            req.set_header("CSeq", f"{cs.number + 1} {cs.method}")
            self._cseq = max(self._cseq, cs.number + 1)
            vias = req.headers("Via")
            req.remove_header("Via")
            top = Via.parse(vias[0])
            top.params["branch"] = new_branch()
            req.add_header("Via", str(top), first=True)
            self._add_credentials(req, self.auth_cache.values(), username, password)

    # -- high-level helpers -------------------------------------------------

    def register(self, user: str | None = None, password: str | None = None, *,
                 expires: int | None = 3600, algorithm: str | None = None,
                 contact: "bool | str" = True, timeout: float | None = None,
                 headers: HeaderArg = None, **kw: object) -> SipMessage:
        """REGISTER our Contact (``expires`` in the Expires header); returns
        the final response. ``user``/``password`` update the client's."""
        if user is not None:
            self.user = user
        if password is not None:
            self.password = password
        return self.request_with_auth("REGISTER", None, expires=expires, contact=contact,
                                      algorithm=algorithm, timeout=timeout, headers=headers, **kw)

    def unregister(self, *, all_contacts: bool = False, timeout: float | None = None) -> SipMessage:
        """Remove our binding (or ``Contact: *`` with ``all_contacts``)."""
        return self.request_with_auth("REGISTER", None, expires=0, timeout=timeout,
                                      contact="*" if all_contacts else True)

    def options(self, uri: str | None = None, **kw: object) -> SipMessage:
        """OPTIONS (default: to the server's domain) with authentication."""
        return self.request_with_auth("OPTIONS", uri or f"sip:{self.domain}", **kw)

    def message(self, uri: str, text: str, content_type: str = "text/plain", **kw: object) -> SipMessage:
        """A page-mode MESSAGE; returns the final response."""
        return self.request_with_auth("MESSAGE", uri, body=text, content_type=content_type,
                                      contact=False, **kw)

    def invite(self, uri: str, body: "bytes | str | None" = None, *,
               content_type: str = "application/sdp", timeout: float | None = None,
               ack_2xx: bool = True, **kw: object) -> tuple[SipMessage, Dialog | None]:
        """INVITE (answering challenges); returns (final response, dialog or
        None). The 2xx is ACKed unless ``ack_2xx`` is False. ``body`` None
        sends a default SRTP offer (make_sdp)."""
        if body is None:
            body = make_sdp(self.conn.local_address[0])
        resp = self.request_with_auth("INVITE", uri, body=body, content_type=content_type,
                                      timeout=timeout, ack_2xx=ack_2xx, **kw)
        dlg = None
        if resp.status and 200 <= resp.status < 300 and resp.request is not None:
            dlg = Dialog.from_uac(resp.request, resp)
        return resp, dlg

    def respond(self, request: SipMessage, status: int, reason: str | None = None,
                **kw: object) -> SipMessage:
        """Build (see build_response) and send a response; returns it."""
        resp = self.build_response(request, status, reason, **kw)  # type: ignore[arg-type]
        self.send(resp)
        return resp

    def answer(self, request: SipMessage, status: int = 200, body: "bytes | str" = b"", *,
               content_type: str | None = None, **kw: object) -> Dialog:
        """Respond (2xx by default) to a dialog-creating request and return
        the resulting UAS dialog. For an INVITE with a body and no
        ``content_type``, application/sdp is assumed."""
        if body and content_type is None and request.method == "INVITE":
            content_type = "application/sdp"
        resp = self.respond(request, status, body=body, content_type=content_type, **kw)
        return Dialog.from_uas(request, resp.to_tag or "")

    def ack(self, invite: SipMessage, response: SipMessage) -> SipMessage:
        """Send the ACK for ``response`` to ``invite``: for a non-2xx, the
        same transaction (same branch, To from the response, same Route);
        for a 2xx, a new transaction in the dialog (remote target from
        Contact, route set from Record-Route)."""
        cs = invite.cseq
        assert cs is not None
        st = response.status or 0
        if 200 <= st < 300:
            dlg = Dialog.from_uac(invite, response)
            ack = self.build_in_dialog(dlg, "ACK", cseq=cs.number)
        else:
            fields: list[tuple[str, str]] = [("Via", invite.headers("Via")[0]),
                                             ("Max-Forwards", "70")]
            fields += [("Route", r) for r in invite.headers("Route")]
            fields += [("From", invite.header("From") or ""), ("To", response.header("To") or ""),
                       ("Call-ID", invite.call_id or ""), ("CSeq", f"{cs.number} ACK")]
            ack = SipMessage.request("ACK", invite.uri or "", fields)
        self.send(ack)
        return ack

    def cancel(self, invite: SipMessage, timeout: float | None = None) -> SipMessage:
        """Send CANCEL for a pending ``invite`` (same Request-URI, Call-ID,
        From, To, CSeq number, top Via and Route) and return the CANCEL's
        final response. The INVITE's own final response (487 normally)
        arrives separately: ``r = wait_response(invite); ack(invite, r)``,
        or use cancel_invite()."""
        cs = invite.cseq
        assert cs is not None
        fields: list[tuple[str, str]] = [("Via", invite.headers("Via")[0]), ("Max-Forwards", "70")]
        fields += [("Route", r) for r in invite.headers("Route")]
        fields += [("From", invite.header("From") or ""), ("To", invite.header("To") or ""),
                   ("Call-ID", invite.call_id or ""), ("CSeq", f"{cs.number} CANCEL")]
        cancel = SipMessage.request("CANCEL", invite.uri or "", fields)
        self.send(cancel)
        return self.wait_response(cancel, timeout)

    def cancel_invite(self, invite: SipMessage, timeout: float | None = None
                      ) -> tuple[SipMessage, SipMessage]:
        """CANCEL ``invite``, then wait for the INVITE's final response and
        ACK it. Returns (CANCEL's response, INVITE's final response)."""
        cancel_resp = self.cancel(invite, timeout)
        invite_resp = self.wait_response(invite, timeout)
        self.ack(invite, invite_resp)
        return cancel_resp, invite_resp

    def build_in_dialog(self, dialog: Dialog, method: str, *, cseq: int | None = None,
                        headers: HeaderArg = None, body: "bytes | str" = b"",
                        content_type: str | None = None, contact: bool = False) -> SipMessage:
        """A request within ``dialog``: Request-URI = remote target and Route
        = route set (loose routing; a strict first route becomes the
        Request-URI per RFC 3261 §12.2.1.1); CSeq = dialog's next (ACK takes
        ``cseq``)."""
        method = method.upper()
        if cseq is None:
            dialog.local_cseq += 1
            cseq = dialog.local_cseq
        routes = list(dialog.route_set)
        ruri = dialog.remote_target
        if routes and "lr" not in NameAddr.parse(routes[0]).params and \
                "lr" not in SipUri.parse(NameAddr.parse(routes[0]).uri).params:
            ruri = NameAddr.parse(routes[0]).uri
            routes = routes[1:] + [f"<{dialog.remote_target}>"]
        fields: list[tuple[str, str]] = [("Via", self.via()), ("Max-Forwards", "70")]
        fields += [("Route", r) for r in routes]
        fields += [("From", dialog.local_header), ("To", dialog.remote_header),
                   ("Call-ID", dialog.call_id), ("CSeq", f"{cseq} {method}")]
        if contact:
            fields.append(("Contact", self.contact()))
        msg = SipMessage.request(method, ruri, fields, body)
        if content_type:
            msg.set_header("Content-Type", content_type)
        _apply_extra(msg, headers)
        return msg

    def request_in_dialog(self, dialog: Dialog, method: str, *, timeout: float | None = None,
                          auth: bool = True, **kw: object) -> SipMessage:
        """Send a request within ``dialog`` and return its final response
        (answering a 401/407 if ``auth``)."""
        req = self.build_in_dialog(dialog, method, **kw)  # type: ignore[arg-type]
        if auth:
            resp = self.request_with_auth(method, request=req, timeout=timeout, preemptive=False)
            if resp.request is not None and resp.request.cseq:
                dialog.local_cseq = max(dialog.local_cseq, resp.request.cseq.number)
            return resp
        return self._transact(req, timeout, True)

    def bye(self, dialog: Dialog, timeout: float | None = None) -> SipMessage:
        """BYE within ``dialog``; returns the final response."""
        return self.request_in_dialog(dialog, "BYE", timeout=timeout)

    def expect(self, response: SipMessage, *statuses: int) -> SipMessage:
        """Return ``response`` if its status is one of ``statuses``, else
        raise UnexpectedResponse (with the message history)."""
        if response.status not in statuses:
            raise UnexpectedResponse(f"expected {'/'.join(map(str, statuses))}, got "
                                     f"{response.summary()}", response=response,
                                     history=self.conn.history_lines())
        return response


def _apply_extra(msg: SipMessage, headers: HeaderArg) -> None:
    """Add ``headers`` to ``msg``: a name already present is replaced (all
    instances) by the first extra one, further extras with that name append."""
    replaced: set[str] = set()
    for name, value in _header_items(headers):
        k = _key(name)
        if k not in replaced and msg.has_header(name):
            msg.set_header(name, value)
        else:
            msg.add_header(name, value)
        replaced.add(k)
