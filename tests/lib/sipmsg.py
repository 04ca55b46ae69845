"""SIP messages for Parley's integration tests: parsing, building, framing,
digest authentication. Standard library only (Python 3.11).

* ``SipMessage`` -- parse, inspect, edit and serialise one SIP message
  (ordered, multi-valued, case-insensitive headers; compact forms expanded).
* ``Framer`` -- cut a TCP/TLS byte stream into messages by Content-Length,
  skipping keep-alive CRLFs (RFC 5626).
* Digest (RFC 7616 / RFC 8760): ``parse_challenges``, ``digest_response``,
  ``build_authorization`` -- MD5, SHA-256, SHA-512-256 and their -sess
  forms, qop auth / auth-int / none.
* ``NameAddr``, ``SipUri``, ``Via``, ``CSeq`` and the ``SipError`` family.

Use it through ``sipclient``, which re-exports all of this.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from typing import Iterable, Mapping, NamedTuple, Sequence, Union

__all__ = [
    "COMPACT_FORMS", "REASONS", "DIGEST_HASHES", "BRANCH_MAGIC", "MAX_MESSAGE",
    "canonical_name", "split_header_list", "parse_params", "quote", "unquote",
    "NameAddr", "SipUri", "Via", "CSeq", "SipMessage", "Framer", "HeaderArg",
    "Challenge", "parse_challenges", "parse_authorization", "digest_hash",
    "digest_response", "build_authorization", "random_token", "new_branch",
    "SipError", "SipParseError", "SipTimeout", "ConnectionClosed", "AuthError",
    "UnexpectedResponse",
]

BRANCH_MAGIC = "z9hG4bK"
MAX_MESSAGE = 1 << 20

# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


class SipError(Exception):
    """Base class. ``history`` holds one-line summaries of the last messages
    sent and received on the connection, and is appended to the text."""

    def __init__(self, message: str, *, history: Sequence[str] = ()) -> None:
        self.message = message
        self.history = list(history)
        text = message
        if self.history:
            text += "\n  last messages (oldest first):\n    " + "\n    ".join(self.history)
        super().__init__(text)


class SipParseError(SipError, ValueError):
    """Bytes that are not a SIP message (or a header value we cannot parse)."""


class SipTimeout(SipError, TimeoutError):
    """Nothing suitable arrived in time."""


class ConnectionClosed(SipError, ConnectionError):
    """The peer closed the connection (or reset it, or sent a TLS alert).

    ``leftover`` is any partial message received before the close;
    ``cause`` the underlying exception, if any (e.g. an ``ssl.SSLError``
    carrying the alert a server sent after refusing a client certificate)."""

    def __init__(self, message: str, *, history: Sequence[str] = (), leftover: bytes = b"",
                 cause: BaseException | None = None) -> None:
        super().__init__(message, history=history)
        self.leftover = leftover
        self.cause = cause


class AuthError(SipError):
    """A challenge the client cannot answer (e.g. a forced algorithm that the
    server did not offer). ``response`` is the 401/407 concerned."""

    def __init__(self, message: str, *, response: "SipMessage | None" = None,
                 history: Sequence[str] = ()) -> None:
        super().__init__(message, history=history)
        self.response = response


class UnexpectedResponse(SipError):
    """A response with a status the caller did not expect."""

    def __init__(self, message: str, *, response: "SipMessage", history: Sequence[str] = ()) -> None:
        super().__init__(message, history=history)
        self.response = response


# ---------------------------------------------------------------------------
# Header names and values
# ---------------------------------------------------------------------------

#: RFC 3261 §7.3.3 and later RFCs: compact form -> full name.
COMPACT_FORMS: dict[str, str] = {
    "i": "Call-ID", "m": "Contact", "e": "Content-Encoding", "l": "Content-Length",
    "c": "Content-Type", "f": "From", "s": "Subject", "k": "Supported", "t": "To",
    "v": "Via", "o": "Event", "r": "Refer-To", "u": "Allow-Events", "b": "Referred-By",
    "x": "Session-Expires", "y": "Identity",
}

_CANONICAL: dict[str, str] = {n.lower(): n for n in (
    "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow",
    "Allow-Events", "Authentication-Info", "Authorization", "Call-ID", "Call-Info",
    "Contact", "Content-Disposition", "Content-Encoding", "Content-Language",
    "Content-Length", "Content-Type", "CSeq", "Date", "Error-Info", "Event", "Expires",
    "From", "Identity", "In-Reply-To", "Max-Forwards", "Min-Expires", "MIME-Version",
    "Organization", "Path", "Priority", "Proxy-Authenticate", "Proxy-Authorization",
    "Proxy-Require", "RAck", "Reason", "Record-Route", "Refer-To", "Referred-By",
    "Reply-To", "Require", "Retry-After", "Route", "RSeq", "Server", "Service-Route",
    "Session-Expires", "SIP-ETag", "SIP-If-Match", "Subject", "Subscription-State",
    "Supported", "Timestamp", "To", "Unsupported", "User-Agent", "Via", "Warning",
    "WWW-Authenticate",
)}


def canonical_name(name: str) -> str:
    """The full, conventionally capitalised form of a header name.

    >>> canonical_name("v"), canonical_name("call-id"), canonical_name("x-foo-bar")
    ('Via', 'Call-ID', 'X-Foo-Bar')
    """
    n = name.strip()
    low = n.lower()
    if low in COMPACT_FORMS:
        return COMPACT_FORMS[low]
    if low in _CANONICAL:
        return _CANONICAL[low]
    return "-".join(p[:1].upper() + p[1:].lower() for p in n.split("-"))


def _key(name: str) -> str:
    return canonical_name(name).lower()


def quote(value: str) -> str:
    """A quoted-string for ``value`` (backslash-escaping ``"`` and ``\\``)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unquote(value: str) -> str:
    """The content of a quoted-string (or ``value`` stripped if not quoted)."""
    v = value.strip()
    if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        return re.sub(r"\\(.)", r"\1", v[1:-1])
    return v


def _split_outside_quotes(text: str, sep: str, *, angle: bool = True) -> list[str]:
    """Split on ``sep`` outside quoted strings (and outside <...> if angle)."""
    parts: list[str] = []
    cur: list[str] = []
    in_quote = False
    depth = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if in_quote:
            cur.append(ch)
            if ch == "\\" and i + 1 < len(text):
                cur.append(text[i + 1])
                i += 1
            elif ch == '"':
                in_quote = False
        elif ch == '"':
            in_quote = True
            cur.append(ch)
        elif angle and ch == "<":
            depth += 1
            cur.append(ch)
        elif angle and ch == ">" and depth:
            depth -= 1
            cur.append(ch)
        elif ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def split_header_list(value: str) -> list[str]:
    """Split a comma-separated header value (``Contact: <a>, <b>``) into its
    elements, leaving commas inside quotes and <...> alone."""
    return [p.strip() for p in _split_outside_quotes(value, ",") if p.strip()]


def parse_params(text: str) -> dict[str, str | None]:
    """``;a=1;b;c="x;y"`` -> {'a': '1', 'b': None, 'c': 'x;y'} (names
    lower-cased, quotes removed). Leading separators are ignored."""
    out: dict[str, str | None] = {}
    for part in _split_outside_quotes(text, ";", angle=False):
        part = part.strip()
        if not part:
            continue
        if "=" in part:
            k, v = part.split("=", 1)
            out[k.strip().lower()] = unquote(v.strip())
        else:
            out[part.lower()] = None
    return out


def _format_params(params: Mapping[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


def random_token(nbytes: int = 8) -> str:
    """A random hex string (tags, Call-IDs, cnonces)."""
    return secrets.token_hex(nbytes)


def new_branch() -> str:
    """A fresh RFC 3261 branch (magic cookie + random)."""
    return BRANCH_MAGIC + secrets.token_hex(8)


@dataclass
class SipUri:
    """A sip:/sips: URI: ``scheme:user@host:port;params?headers``."""

    scheme: str = "sip"
    user: str | None = None
    host: str = ""
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: str = ""

    @classmethod
    def parse(cls, text: str) -> "SipUri":
        t = text.strip()
        if t.startswith("<") and t.endswith(">"):
            t = t[1:-1]
        m = re.match(r"(?i)(sips?|tel):(.*)$", t)
        if not m:
            raise SipParseError(f"not a SIP URI: {text!r}")
        scheme, rest = m.group(1).lower(), m.group(2)
        headers = ""
        if "?" in rest:
            rest, headers = rest.split("?", 1)
        user = None
        if "@" in rest:
            user, rest = rest.rsplit("@", 1)
        hostport, _, ptext = rest.partition(";")
        port = None
        if hostport.startswith("["):
            end = hostport.find("]")
            host = hostport[: end + 1]
            if hostport[end + 1:].startswith(":"):
                port = int(hostport[end + 2:])
        elif ":" in hostport:
            host, p = hostport.rsplit(":", 1)
            port = int(p)
        else:
            host = hostport
        return cls(scheme, user, host, port, parse_params(ptext), headers)

    def __str__(self) -> str:
        s = f"{self.scheme}:"
        if self.user is not None:
            s += f"{self.user}@"
        s += self.host
        if self.port is not None:
            s += f":{self.port}"
        s += _format_params(self.params)
        if self.headers:
            s += "?" + self.headers
        return s


@dataclass
class NameAddr:
    """``"Display" <uri>;param=value`` (From, To, Contact, Route...)."""

    uri: str
    display: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: str) -> "NameAddr":
        v = value.strip()
        display = None
        rest = v
        if v.startswith('"'):
            i = 1
            while i < len(v) and v[i] != '"':
                i += 2 if v[i] == "\\" else 1
            display = unquote(v[: i + 1])
            rest = v[i + 1:]
        lt = rest.find("<")
        if lt >= 0:
            gt = rest.find(">", lt)
            if gt < 0:
                raise SipParseError(f"unterminated <...> in {value!r}")
            if display is None:
                display = rest[:lt].strip() or None
            uri = rest[lt + 1: gt]
            params = parse_params(rest[gt + 1:])
        else:
            # addr-spec without brackets: parameters belong to the header.
            uri, _, ptext = rest.strip().partition(";")
            params = parse_params(ptext)
        return cls(uri.strip(), display, params)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def __str__(self) -> str:
        s = f"<{self.uri}>"
        if self.display:
            s = f"{quote(self.display)} {s}"
        return s + _format_params(self.params)


@dataclass
class Via:
    """One Via value: ``SIP/2.0/TLS host:port;branch=...``."""

    transport: str
    host: str
    port: int | None
    params: dict[str, str | None]

    @classmethod
    def parse(cls, value: str) -> "Via":
        m = re.match(r"\s*SIP\s*/\s*2\.0\s*/\s*(\S+)\s+([^;]+)(.*)$", value, re.I)
        if not m:
            raise SipParseError(f"bad Via: {value!r}")
        sent_by = m.group(2).strip()
        port = None
        if sent_by.startswith("["):
            end = sent_by.find("]")
            host = sent_by[: end + 1]
            if sent_by[end + 1:].startswith(":"):
                port = int(sent_by[end + 2:])
        elif ":" in sent_by:
            host, p = sent_by.rsplit(":", 1)
            port = int(p)
        else:
            host = sent_by
        return cls(m.group(1).upper(), host, port, parse_params(m.group(3)))

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    def __str__(self) -> str:
        hp = self.host if self.port is None else f"{self.host}:{self.port}"
        return f"SIP/2.0/{self.transport} {hp}{_format_params(self.params)}"


class CSeq(NamedTuple):
    number: int
    method: str


# ---------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------

REASONS: dict[int, str] = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 202: "Accepted", 204: "No Notification",
    301: "Moved Permanently", 302: "Moved Temporarily", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    407: "Proxy Authentication Required", 408: "Request Timeout", 415: "Unsupported Media Type",
    420: "Bad Extension", 423: "Interval Too Brief", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 483: "Too Many Hops", 486: "Busy Here",
    487: "Request Terminated", 488: "Not Acceptable Here", 489: "Bad Event",
    500: "Server Internal Error", 501: "Not Implemented", 503: "Service Unavailable",
    603: "Decline",
}

HeaderArg = Union[Mapping[str, object], Iterable[tuple[str, object]], None]


def _header_items(headers: HeaderArg) -> list[tuple[str, str]]:
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(str(k), str(v)) for k, v in items]


class SipMessage:
    """One SIP request or response.

    ``header_fields`` is the ordered list of ``(name, value)`` as received or
    added (names keep their spelling, so compact forms survive a round trip);
    every lookup is case-insensitive and maps compact forms to full names.
    ``raw`` holds the exact bytes a parsed message came from.
    """

    def __init__(self, start_line: str, headers: HeaderArg = None, body: bytes | str = b"") -> None:
        self.start_line = start_line.strip()
        self.header_fields: list[tuple[str, str]] = _header_items(headers)
        self.body: bytes = body.encode() if isinstance(body, str) else bytes(body)
        self.raw: bytes | None = None
        #: For a response matched by SipClient: the request it answers.
        self.request: SipMessage | None = None
        #: For a final response returned by SipClient.request: the 1xx seen before it.
        self.provisional: list[SipMessage] = []
        parts = self.start_line.split(" ", 2)
        if len(parts) < 2:
            raise SipParseError(f"bad start line: {self.start_line!r}")
        if parts[0].upper().startswith("SIP/"):
            if not parts[1].isdigit() or len(parts[1]) != 3:
                raise SipParseError(f"bad status code in {self.start_line!r}")
            self._status: int | None = int(parts[1])
            self._reason = parts[2] if len(parts) > 2 else ""
            self._method: str | None = None
            self._uri: str | None = None
            self.version = parts[0]
        else:
            if len(parts) != 3:
                raise SipParseError(f"bad request line: {self.start_line!r}")
            self._method, self._uri, self.version = parts
            self._status, self._reason = None, None

    # -- construction ------------------------------------------------------

    @classmethod
    def request(cls, method: str, uri: str, headers: HeaderArg = None,
                body: bytes | str = b"") -> "SipMessage":
        return cls(f"{method} {uri} SIP/2.0", headers, body)

    @classmethod
    def response(cls, status: int, reason: str | None = None, headers: HeaderArg = None,
                 body: bytes | str = b"") -> "SipMessage":
        return cls(f"SIP/2.0 {status} {reason if reason is not None else REASONS.get(status, '')}",
                   headers, body)

    @classmethod
    def parse(cls, data: bytes | str) -> "SipMessage":
        """Parse one complete message. The body is what follows the blank
        line, cut to Content-Length when that header is present."""
        if isinstance(data, str):
            data = data.encode()
        end, sep_len = _find_header_end(data)
        if end < 0:
            raise SipParseError("no blank line after the headers")
        head = data[:end].decode("utf-8", errors="surrogateescape")
        lines = re.split(r"\r?\n", head)
        unfolded: list[str] = []
        for line in lines:
            if line[:1] in (" ", "\t") and unfolded:
                unfolded[-1] += " " + line.strip()
            else:
                unfolded.append(line)
        if not unfolded or not unfolded[0].strip():
            raise SipParseError("empty start line")
        headers: list[tuple[str, str]] = []
        for line in unfolded[1:]:
            name, colon, value = line.partition(":")
            if not colon or not name.strip() or " " in name.strip():
                raise SipParseError(f"bad header line: {line!r}")
            headers.append((name.strip(), value.strip()))
        body = data[end + sep_len:]
        msg = cls(unfolded[0], headers)
        cl = msg.header("Content-Length")
        if cl is not None:
            try:
                n = int(cl)
            except ValueError:
                raise SipParseError(f"bad Content-Length: {cl!r}") from None
            body = body[:n]
        msg.body = body
        msg.raw = data
        return msg

    def copy(self) -> "SipMessage":
        m = SipMessage(self.start_line, list(self.header_fields), self.body)
        return m

    # -- start line ---------------------------------------------------------

    @property
    def is_request(self) -> bool:
        return self._method is not None

    @property
    def is_response(self) -> bool:
        return self._status is not None

    @property
    def method(self) -> str | None:
        """Request method; for a response, the method from CSeq."""
        if self._method is not None:
            return self._method
        cs = self.cseq
        return cs.method if cs else None

    @property
    def uri(self) -> str | None:
        return self._uri

    @property
    def status(self) -> int | None:
        return self._status

    @property
    def reason(self) -> str | None:
        return self._reason

    # -- headers ------------------------------------------------------------

    def header(self, name: str, default: str | None = None) -> str | None:
        """Value of the first header called ``name`` (any case, compact or
        full form), or ``default``."""
        k = _key(name)
        for n, v in self.header_fields:
            if _key(n) == k:
                return v
        return default

    def headers(self, name: str, split: bool = False) -> list[str]:
        """Values of every header called ``name``, in order; with
        ``split=True`` comma-separated lists are split into elements."""
        k = _key(name)
        vals = [v for n, v in self.header_fields if _key(n) == k]
        if split:
            return [p for v in vals for p in split_header_list(v)]
        return vals

    def has_header(self, name: str) -> bool:
        return self.header(name) is not None

    def add_header(self, name: str, value: object, *, first: bool = False) -> "SipMessage":
        """Append (or with ``first`` prepend) a header. Returns self."""
        if first:
            self.header_fields.insert(0, (name, str(value)))
        else:
            self.header_fields.append((name, str(value)))
        return self

    def set_header(self, name: str, value: object) -> "SipMessage":
        """Replace every header called ``name`` by one, where the first was
        (appended if there was none). Returns self."""
        k = _key(name)
        out: list[tuple[str, str]] = []
        done = False
        for n, v in self.header_fields:
            if _key(n) == k:
                if not done:
                    out.append((name, str(value)))
                    done = True
            else:
                out.append((n, v))
        if not done:
            out.append((name, str(value)))
        self.header_fields = out
        return self

    def remove_header(self, name: str) -> int:
        """Remove every header called ``name``; returns how many."""
        k = _key(name)
        before = len(self.header_fields)
        self.header_fields = [(n, v) for n, v in self.header_fields if _key(n) != k]
        return before - len(self.header_fields)

    # -- common fields -----------------------------------------------------

    @property
    def call_id(self) -> str | None:
        return self.header("Call-ID")

    @property
    def cseq(self) -> CSeq | None:
        v = self.header("CSeq")
        if v is None:
            return None
        m = re.match(r"\s*(\d+)\s+(\S+)", v)
        if not m:
            raise SipParseError(f"bad CSeq: {v!r}")
        return CSeq(int(m.group(1)), m.group(2))

    @property
    def from_addr(self) -> NameAddr | None:
        v = self.header("From")
        return NameAddr.parse(v) if v is not None else None

    @property
    def to_addr(self) -> NameAddr | None:
        v = self.header("To")
        return NameAddr.parse(v) if v is not None else None

    @property
    def from_tag(self) -> str | None:
        a = self.from_addr
        return a.tag if a else None

    @property
    def to_tag(self) -> str | None:
        a = self.to_addr
        return a.tag if a else None

    @property
    def vias(self) -> list[Via]:
        return [Via.parse(v) for v in self.headers("Via", split=True)]

    @property
    def branch(self) -> str | None:
        """Branch of the top Via."""
        vs = self.headers("Via", split=True)
        return Via.parse(vs[0]).branch if vs else None

    @property
    def contacts(self) -> list[NameAddr]:
        return [NameAddr.parse(v) for v in self.headers("Contact", split=True) if v != "*"]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    # -- output ------------------------------------------------------------

    def to_bytes(self, *, update_content_length: bool = True) -> bytes:
        """Serialise. By default Content-Length is set to the body's length
        (replacing any, compact or not, in place)."""
        fields = list(self.header_fields)
        if update_content_length:
            n = str(len(self.body))
            found = False
            for i, (name, _) in enumerate(fields):
                if _key(name) == "content-length":
                    if found:
                        fields[i] = ("", "")
                    else:
                        fields[i] = (name, n)
                        found = True
            fields = [f for f in fields if f[0]]
            if not found:
                fields.append(("Content-Length", n))
        head = self.start_line + "\r\n" + "".join(f"{n}: {v}\r\n" for n, v in fields) + "\r\n"
        return head.encode("utf-8", errors="surrogateescape") + self.body

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    def __str__(self) -> str:
        return self.to_bytes().decode("utf-8", errors="replace")

    def summary(self) -> str:
        """One line: the start line and CSeq."""
        try:
            cs = self.cseq
        except SipParseError:
            cs = None
        return self.start_line + (f" (CSeq {cs.number} {cs.method})" if cs else "")

    def __repr__(self) -> str:
        return f"<SipMessage {self.summary()}>"


def _find_header_end(data: bytes) -> tuple[int, int]:
    """Index of the blank line ending the headers and its length (CRLFCRLF,
    or a bare LFLF from a sloppy peer), or (-1, 0)."""
    a = data.find(b"\r\n\r\n")
    b = data.find(b"\n\n")
    if b >= 0 and (a < 0 or b < a):
        return b, 2
    if a >= 0:
        return a, 4
    return -1, 0


_CL_RE = re.compile(rb"(?im)^(?:content-length|l)[ \t]*:[ \t]*(\S*)[ \t]*\r?$")


class Framer:
    """Cuts a stream into SIP messages by Content-Length.

    CR/LF bytes between messages are keep-alives (RFC 5626): they are
    counted (``crlf_count``; ``pings`` counts double-CRLF pings) and skipped.
    A message without Content-Length is taken to have an empty body.
    """

    def __init__(self, max_message: int = MAX_MESSAGE) -> None:
        self.buf = bytearray()
        self.max_message = max_message
        self.crlf_count = 0
        self.pings = 0
        self._run = 0  # consecutive CRLFs seen between messages
        self.new_pings = 0  # pings not yet answered (SipConnection's auto-pong)

    def feed(self, data: bytes) -> None:
        self.buf += data

    def _skip_keepalives(self) -> None:
        i = 0
        while i < len(self.buf):
            if self.buf[i:i + 2] == b"\r\n":
                i += 2
            elif self.buf[i] == 0x0A:
                i += 1
            elif self.buf[i] == 0x0D and i + 1 == len(self.buf):
                break  # half a CRLF: wait for the rest
            else:
                break
            self.crlf_count += 1
            self._run += 1
            if self._run == 2:
                self.pings += 1
                self.new_pings += 1
                self._run = 0
        if i:
            del self.buf[:i]
        if self.buf and self.buf[0] not in (0x0D, 0x0A):
            self._run = 0

    def next_message(self) -> SipMessage | None:
        """The next complete message, or None if more bytes are needed.
        Raises SipParseError on a stream that cannot be framed."""
        self._skip_keepalives()
        if not self.buf or self.buf == b"\r":
            return None
        end, sep_len = _find_header_end(bytes(self.buf[: self.max_message + 4]))
        if end < 0:
            if len(self.buf) > self.max_message:
                raise SipParseError(f"no end of headers within {self.max_message} bytes")
            return None
        head = bytes(self.buf[:end])
        m = _CL_RE.search(head)
        length = 0
        if m:
            try:
                length = int(m.group(1))
            except ValueError:
                raise SipParseError(f"bad Content-Length {m.group(1)!r}") from None
            if length < 0 or length > self.max_message:
                raise SipParseError(f"Content-Length {length} out of range")
        total = end + sep_len + length
        if len(self.buf) < total:
            return None
        data = bytes(self.buf[:total])
        del self.buf[:total]
        return SipMessage.parse(data)

    @property
    def pending(self) -> bytes:
        """Bytes received but not yet part of a complete message."""
        return bytes(self.buf)


# ---------------------------------------------------------------------------
# Digest authentication (RFC 7616, RFC 8760)
# ---------------------------------------------------------------------------

#: Digest algorithm name -> hashlib name.
DIGEST_HASHES: dict[str, str] = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}


def _base_algorithm(algorithm: str) -> tuple[str, bool]:
    a = algorithm.upper()
    sess = a.endswith("-SESS")
    base = a[:-5] if sess else a
    if base not in DIGEST_HASHES:
        raise AuthError(f"unsupported digest algorithm {algorithm!r}")
    return base, sess


def digest_hash(algorithm: str, data: str | bytes) -> str:
    """H(data) in lower-case hex, for a digest algorithm name (MD5, SHA-256...)."""
    base, _ = _base_algorithm(algorithm)
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.new(DIGEST_HASHES[base], data).hexdigest()


def digest_response(*, algorithm: str = "MD5", username: str, password: str, realm: str,
                    nonce: str, method: str, uri: str, qop: str | None = None,
                    nc: int | str = 1, cnonce: str | None = None, body: bytes = b"") -> str:
    """The ``response`` value of RFC 7616 §3.4.1 (RFC 2617 form when qop is None).

    ``username`` is the one hashed into A1 (the plain user name even when
    userhash is used). ``nc`` may be an int or the 8-hex-digit string.
    """
    base, sess = _base_algorithm(algorithm)
    ha1 = digest_hash(base, f"{username}:{realm}:{password}")
    if sess:
        ha1 = digest_hash(base, f"{ha1}:{nonce}:{cnonce}")
    if qop == "auth-int":
        ha2 = digest_hash(base, f"{method}:{uri}:{digest_hash(base, body)}")
    else:
        ha2 = digest_hash(base, f"{method}:{uri}")
    if qop:
        ncs = nc if isinstance(nc, str) else f"{nc:08x}"
        return digest_hash(base, f"{ha1}:{nonce}:{ncs}:{cnonce}:{qop}:{ha2}")
    return digest_hash(base, f"{ha1}:{nonce}:{ha2}")


@dataclass
class Challenge:
    """One challenge from WWW-Authenticate / Proxy-Authenticate."""

    scheme: str
    params: dict[str, str]
    proxy: bool = False  # came from Proxy-Authenticate (answer with Proxy-Authorization)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def nonce(self) -> str:
        return self.params.get("nonce", "")

    @property
    def algorithm(self) -> str:
        """As offered (absent means MD5), upper-cased."""
        return self.params.get("algorithm", "MD5").upper()

    @property
    def qop_options(self) -> list[str]:
        q = self.params.get("qop")
        return [x.strip().lower() for x in q.split(",") if x.strip()] if q else []

    @property
    def stale(self) -> bool:
        return self.params.get("stale", "").lower() == "true"

    @property
    def opaque(self) -> str | None:
        return self.params.get("opaque")

    @property
    def userhash(self) -> bool:
        return self.params.get("userhash", "").lower() == "true"


_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"


def parse_challenges(value: str, *, proxy: bool = False) -> list[Challenge]:
    """Parse a WWW-Authenticate / Proxy-Authenticate value, which may hold
    several challenges separated by commas (``Digest a=1, b=2, Digest ...``)."""
    out: list[Challenge] = []
    pos = 0
    n = len(value)
    cur: Challenge | None = None
    param_re = re.compile(r"\s*(" + _TOKEN + r")\s*=\s*(\"(?:[^\"\\]|\\.)*\"|[^\s,]*)\s*")
    scheme_re = re.compile(r"\s*(" + _TOKEN + r")(?:\s+|$)")
    while pos < n:
        while pos < n and value[pos] in ", \t":
            pos += 1
        if pos >= n:
            break
        pm = param_re.match(value, pos)
        if pm and cur is not None:
            cur.params[pm.group(1).lower()] = unquote(pm.group(2))
            pos = pm.end()
            continue
        sm = scheme_re.match(value, pos)
        if not sm:
            raise SipParseError(f"cannot parse challenge {value!r} at {pos}")
        cur = Challenge(sm.group(1), {}, proxy)
        out.append(cur)
        pos = sm.end()
    return out


def build_authorization(challenge: Challenge, *, username: str, password: str, method: str,
                        uri: str, nc: int = 1, cnonce: str | None = None,
                        qop: str | None = None, body: bytes = b"",
                        algorithm: str | None = None) -> str:
    """An Authorization / Proxy-Authorization value answering ``challenge``.

    qop: ``None`` picks ``auth`` when offered (else ``auth-int`` when that is
    the only one offered, else the no-qop RFC 2617 form); pass ``""`` to force
    the no-qop form. ``algorithm`` overrides the challenge's (to send a
    deliberately wrong answer).
    """
    alg = algorithm or challenge.algorithm
    offered = challenge.qop_options
    if qop is None:
        qop = "auth" if "auth" in offered else ("auth-int" if "auth-int" in offered else "")
    cnonce = cnonce or secrets.token_hex(12)
    resp = digest_response(algorithm=alg, username=username, password=password,
                           realm=challenge.realm, nonce=challenge.nonce, method=method, uri=uri,
                           qop=qop or None, nc=nc, cnonce=cnonce, body=body)
    user_field = username
    if challenge.userhash:
        user_field = digest_hash(alg, f"{username}:{challenge.realm}")
    parts = [f"username={quote(user_field)}", f"realm={quote(challenge.realm)}",
             f"nonce={quote(challenge.nonce)}", f"uri={quote(uri)}", f"response={quote(resp)}",
             f"algorithm={alg}"]
    if qop:
        parts += [f"cnonce={quote(cnonce)}", f"qop={qop}", f"nc={nc:08x}"]
    if challenge.opaque is not None:
        parts.append(f"opaque={quote(challenge.opaque)}")
    if challenge.userhash:
        parts.append("userhash=true")
    return "Digest " + ", ".join(parts)


def parse_authorization(value: str) -> dict[str, str]:
    """Parameters of an Authorization value (for servers written in tests)."""
    chs = parse_challenges(value)
    if not chs:
        raise SipParseError(f"empty Authorization: {value!r}")
    return dict(chs[0].params, scheme=chs[0].scheme)
