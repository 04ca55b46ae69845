"""A small packet capture for tests: UDP on the loopback interface.

Standard library only. It reads every frame of the loopback interface
through an AF_PACKET raw socket (Linux; needs root or CAP_NET_RAW — the
tests run as root) in a background thread and keeps the UDP datagrams to or
from the ports it was given, IPv4 and IPv6. No tcpdump, no libpcap.

    from capture import Capture, rtp_payloads, appears_in

    with Capture([gw_media_port, user_media_port]) as cap:   # capturing
        ... the call ...
    flows = cap.flows()          # {(src port, dst port): [udp payload, ...]}
    gw = rtp_payloads(cap.payloads(port=gw_media_port))
    user = cap.payloads(port=user_media_port)
    assert informative_chunks(gw), "no G.711 audio to look for"
    assert not appears_in(gw, user), "plain audio of the gateway leg on the user leg"

``stop()`` (or leaving the ``with``) returns the flows too. Packets that
reached the socket before ``stop()`` are all read: the thread drains the
socket before it ends.

A classic BPF filter, attached before the socket is bound, makes the kernel
queue only UDP to or from those ports (and not the outgoing copy, below),
so other traffic on ``lo`` cannot fill the socket's buffer; the buffer is
8 MiB (SO_RCVBUFFORCE, as root). ``drops`` counts what the kernel still
had to drop (PACKET_STATISTICS): a test that counts packets should assert
it is 0.

If the raw socket cannot be opened (not root, not Linux, no ``lo``),
``Capture.start()`` raises ``CaptureUnavailable`` with the reason, so a
test can ``skipTest`` on it.

Each datagram on ``lo`` is seen twice by a raw socket, once going out and
once coming in; only the incoming copy is kept (PACKET_OUTGOING is
skipped), so every datagram counts once. Fragmented IPv4 datagrams and IPv6 with
extension headers before UDP are not captured (RTP never is either).
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import select
import socket
import struct
import threading
import time
from typing import Iterable, Sequence

__all__ = ["Capture", "CaptureUnavailable", "UdpPacket", "rtp_payloads", "rtp_packets",
           "informative_chunks", "appears_in"]

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
PACKET_OUTGOING = 4
IPPROTO_UDP = 17
SOL_PACKET = 263
PACKET_STATISTICS = 6
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33


class CaptureUnavailable(RuntimeError):
    """The raw socket could not be opened (permissions, platform)."""


@dataclasses.dataclass(frozen=True)
class UdpPacket:
    """One UDP datagram as captured."""

    time: float          # time.time() when read
    src: str             # source address
    sport: int
    dst: str
    dport: int
    payload: bytes


def _parse_frame(frame: bytes) -> tuple[str, int, str, int, bytes] | None:
    """(src, sport, dst, dport, payload) of a UDP datagram in an Ethernet
    frame (the loopback device has a zeroed Ethernet header), else None."""
    if len(frame) < 14:
        return None
    ethertype = struct.unpack_from("!H", frame, 12)[0]
    off = 14
    if ethertype == 0x8100 and len(frame) >= 18:  # VLAN tag, for other interfaces
        ethertype = struct.unpack_from("!H", frame, 16)[0]
        off = 18
    if ethertype == ETH_P_IP:
        if len(frame) < off + 20:
            return None
        vihl = frame[off]
        ihl = (vihl & 0x0F) * 4
        total = struct.unpack_from("!H", frame, off + 2)[0]
        frag = struct.unpack_from("!H", frame, off + 6)[0]
        if frame[off + 9] != IPPROTO_UDP or frag & 0x3FFF:  # not UDP, or a fragment
            return None
        src = socket.inet_ntop(socket.AF_INET, frame[off + 12:off + 16])
        dst = socket.inet_ntop(socket.AF_INET, frame[off + 16:off + 20])
        udp = off + ihl
        end = off + total
    elif ethertype == ETH_P_IPV6:
        if len(frame) < off + 40:
            return None
        if frame[off + 6] != IPPROTO_UDP:  # extension headers are not followed
            return None
        src = socket.inet_ntop(socket.AF_INET6, frame[off + 8:off + 24])
        dst = socket.inet_ntop(socket.AF_INET6, frame[off + 24:off + 40])
        udp = off + 40
        end = udp + struct.unpack_from("!H", frame, off + 4)[0]
    else:
        return None
    if len(frame) < udp + 8:
        return None
    sport, dport, ulen = struct.unpack_from("!HHH", frame, udp)
    end = min(end, udp + ulen, len(frame))
    return src, sport, dst, dport, bytes(frame[udp + 8:end])


def _bpf_program(ports: Sequence[int], snaplen: int) -> list[tuple[int, int, int, int]]:
    """A classic BPF program (as tcpdump would compile "udp and port P or
    port Q ...", plus "not outbound") so that the kernel queues only the
    datagrams we keep: a loopback carrying other tests' traffic cannot fill
    the socket's buffer and make us drop ours. IPv4 (non-fragments) and
    IPv6 (UDP as the first next header) on an Ethernet-framed device."""
    LD_W_ABS, LD_H_ABS, LD_B_ABS, LD_H_IND = 0x20, 0x28, 0x30, 0x48
    LDX_B_MSH, JEQ, JSET, RET = 0xB1, 0x15, 0x45, 0x06
    SKF_AD_PKTTYPE = (-0x1000 + 4) & 0xFFFFFFFF
    prog: list[tuple] = []  # (code, jt, jf, k), jt/jf: label names or 0

    def match_ports(load: int, off: int, last: str) -> None:
        prog.append((load, 0, 0, off))
        for i, p in enumerate(ports):
            prog.append((JEQ, "accept", last if i == len(ports) - 1 else 0, p))

    prog += [(LD_W_ABS, 0, 0, SKF_AD_PKTTYPE), (JEQ, "drop", 0, PACKET_OUTGOING),
             (LD_H_ABS, 0, 0, 12), (JEQ, 0, "ipv6", ETH_P_IP),
             (LD_B_ABS, 0, 0, 23), (JEQ, 0, "drop", IPPROTO_UDP),
             (LD_H_ABS, 0, 0, 20), (JSET, "drop", 0, 0x1FFF),
             (LDX_B_MSH, 0, 0, 14)]
    match_ports(LD_H_IND, 14, 0)
    match_ports(LD_H_IND, 16, "drop")
    prog += ["ipv6", (JEQ, 0, "drop", ETH_P_IPV6),
             (LD_B_ABS, 0, 0, 20), (JEQ, 0, "drop", IPPROTO_UDP)]
    match_ports(LD_H_ABS, 54, 0)
    match_ports(LD_H_ABS, 56, "drop")
    prog += ["drop", (RET, 0, 0, 0), "accept", (RET, 0, 0, snaplen)]

    labels, out, n = {}, [], 0
    for ins in prog:
        if isinstance(ins, str):
            labels[ins] = n
        else:
            n += 1
    n = 0
    for ins in prog:
        if isinstance(ins, str):
            continue
        code, jt, jf, k = ins
        rel = [labels[j] - n - 1 if isinstance(j, str) else j for j in (jt, jf)]
        if not all(0 <= r <= 255 for r in rel):
            raise ValueError("too many ports for one BPF program")
        out.append((code, rel[0], rel[1], k))
        n += 1
    return out


def _attach_filter(sock: socket.socket, prog: list[tuple[int, int, int, int]]) -> None:
    buf = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in prog))
    fprog = struct.pack("HL", len(prog), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


class Capture:
    """Capture UDP to or from ``ports`` on ``interface`` (default ``lo``).

    ``addresses``, if given, keeps only datagrams whose source or
    destination address is one of them. ``snaplen`` bounds what is read of
    each frame (RTP on loopback fits easily)."""

    def __init__(self, ports: Iterable[int], *, interface: str = "lo",
                 addresses: Iterable[str] | None = None, snaplen: int = 65535,
                 rcvbuf: int = 8 << 20) -> None:
        self.ports = frozenset(int(p) for p in ports)
        if not self.ports:
            raise ValueError("Capture needs at least one port")
        self.interface = interface
        self.addresses = frozenset(addresses) if addresses is not None else None
        self.snaplen = snaplen
        self.rcvbuf = rcvbuf
        self.packets: list[UdpPacket] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self.error: BaseException | None = None
        self.drops = 0   # frames the kernel dropped (socket buffer full)
        self.queued = 0  # frames that passed the kernel filter (PACKET_STATISTICS)

    # -- running ------------------------------------------------------------

    def start(self) -> "Capture":
        """Open the raw socket (capturing from now on) and start the reader."""
        if self._thread is not None:
            raise RuntimeError("capture already started")
        try:
            # protocol 0: nothing is queued before the filter is on and the
            # socket bound to the interface (ETH_P_ALL there)
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except (AttributeError, PermissionError, OSError) as e:
            raise CaptureUnavailable(f"cannot open an AF_PACKET raw socket: {e} "
                                     "(Linux and root or CAP_NET_RAW needed)") from e
        try:
            _attach_filter(s, _bpf_program(sorted(self.ports), self.snaplen))
            for opt in (SO_RCVBUFFORCE, socket.SO_RCVBUF):  # FORCE: beyond rmem_max, as root
                try:
                    s.setsockopt(socket.SOL_SOCKET, opt, self.rcvbuf)
                    break
                except OSError:
                    pass
            s.bind((self.interface, ETH_P_ALL))
        except OSError as e:
            s.close()
            raise CaptureUnavailable(f"cannot capture on {self.interface!r}: {e}") from e
        s.setblocking(False)
        self._sock = s
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"capture-{self.interface}",
                                        daemon=True)
        self._thread.start()
        return self

    def _handle(self, frame: bytes, addr: tuple) -> None:
        if len(addr) > 2 and addr[2] == PACKET_OUTGOING:
            return
        parsed = _parse_frame(frame)
        if parsed is None:
            return
        src, sport, dst, dport, payload = parsed
        if sport not in self.ports and dport not in self.ports:
            return
        if self.addresses is not None and src not in self.addresses and dst not in self.addresses:
            return
        pkt = UdpPacket(time.time(), src, sport, dst, dport, payload)
        with self._lock:
            self.packets.append(pkt)

    def _drain(self) -> None:
        assert self._sock is not None
        while True:
            try:
                frame, addr = self._sock.recvfrom(self.snaplen)
            except (BlockingIOError, InterruptedError):
                return
            self._handle(frame, addr)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                r, _, _ = select.select([self._sock], [], [], 0.05)
                if r:
                    self._drain()
            self._drain()  # what arrived before stop()
        except OSError as e:
            if e.errno != errno.EBADF:
                self.error = e

    def stop(self, settle: float = 0.05) -> dict[tuple[int, int], list[bytes]]:
        """Stop (after ``settle`` seconds, for datagrams still in flight) and
        return the flows (see ``flows``). Idempotent."""
        if self._thread is not None:
            if settle:
                time.sleep(settle)
            self._stop.set()
            self._thread.join(5)
            self._thread = None
        if self._sock is not None:
            self._read_stats()
            self._sock.close()
            self._sock = None
        if self.error is not None:
            raise RuntimeError(f"capture failed: {self.error}") from self.error
        return self.flows()

    def _read_stats(self) -> None:
        try:
            packets, drops = struct.unpack("II", self._sock.getsockopt(SOL_PACKET,
                                                                       PACKET_STATISTICS, 8))
            self.queued += packets  # reading resets the kernel's counters
            self.drops += drops
        except OSError:
            pass

    def __enter__(self) -> "Capture":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- results ------------------------------------------------------------

    def snapshot(self) -> list[UdpPacket]:
        """The packets so far (also while running)."""
        with self._lock:
            return list(self.packets)

    def flows(self) -> dict[tuple[int, int], list[bytes]]:
        """UDP payloads per (source port, destination port), in arrival order."""
        out: dict[tuple[int, int], list[bytes]] = {}
        for p in self.snapshot():
            out.setdefault((p.sport, p.dport), []).append(p.payload)
        return out

    def payloads(self, *, port: int | None = None, sport: int | None = None,
                 dport: int | None = None) -> list[bytes]:
        """Payloads from or to ``port`` (either side), or with the given
        source and/or destination port."""
        out = []
        for p in self.snapshot():
            if port is not None and port not in (p.sport, p.dport):
                continue
            if sport is not None and p.sport != sport:
                continue
            if dport is not None and p.dport != dport:
                continue
            out.append(p.payload)
        return out


# ---------------------------------------------------------------------------
# RTP
# ---------------------------------------------------------------------------


def _rtp_split(data: bytes) -> tuple[int, int, int, bytes] | None:
    """(payload type, sequence number, ssrc, payload) of an RTP packet
    (RFC 3550 5.1: 12-byte header, 4 bytes per CSRC, the header extension,
    padding), or None for anything else (RTCP, STUN, DTLS, too short)."""
    if len(data) < 12 or data[0] >> 6 != 2:
        return None
    pt = data[1] & 0x7F
    if 72 <= pt <= 76:  # RTCP SR/RR/SDES/BYE/APP (second byte 200-204)
        return None
    off = 12 + 4 * (data[0] & 0x0F)
    if data[0] & 0x10:  # extension: 16-bit profile, 16-bit length in words
        if len(data) < off + 4:
            return None
        off += 4 + 4 * struct.unpack_from("!H", data, off + 2)[0]
    end = len(data)
    if data[0] & 0x20:  # padding: the last byte counts the padding bytes
        end -= data[-1]
    if off > end:
        return None
    seq = struct.unpack_from("!H", data, 2)[0]
    ssrc = struct.unpack_from("!I", data, 8)[0]
    return pt, seq, ssrc, data[off:end]


def rtp_packets(packets: Iterable[bytes]) -> list[tuple[int, int, int, bytes]]:
    """(payload type, sequence number, SSRC, payload) of each RTP packet."""
    return [r for r in (_rtp_split(p) for p in packets) if r is not None]


def rtp_payloads(packets: Iterable[bytes],
                 payload_types: Sequence[int] | None = None) -> list[bytes]:
    """The media payloads of the RTP packets among ``packets`` (UDP
    payloads): the header, CSRCs, extension and padding stripped. Non-RTP
    datagrams are skipped; ``payload_types`` keeps only those types (e.g.
    ``(0, 8)`` for G.711, leaving telephone-event out)."""
    out = []
    for r in rtp_packets(packets):
        if payload_types is None or r[0] in payload_types:
            out.append(r[3])
    return out


# ---------------------------------------------------------------------------
# "These media bytes occur nowhere over there"
# ---------------------------------------------------------------------------


def informative_chunks(payloads: Iterable[bytes], size: int = 32,
                       min_distinct: int = 4) -> list[bytes]:
    """Non-overlapping ``size``-byte chunks of the payloads worth searching
    for: each has at least ``min_distinct`` distinct byte values.

    Why: G.711 silence is one byte value repeated (0xFF or 0x7F in mu-law,
    0xD5 or 0x55 in A-law) or nearly so, and a run of it occurs by chance
    in any long enough byte string, encrypted or not — it would "match"
    trivially and prove nothing. A chunk of 32 bytes with several distinct
    values occurs in unrelated (e.g. SRTP-encrypted) data with negligible
    probability. Deduplicated: the same chunk is returned once."""
    seen: set[bytes] = set()
    out: list[bytes] = []
    for p in payloads:
        for i in range(0, len(p) - size + 1, size):
            c = bytes(p[i:i + size])
            if c in seen or len(set(c)) < min_distinct:
                continue
            seen.add(c)
            out.append(c)
    return out


def appears_in(needle_payloads: Iterable[bytes], haystack: bytes | Iterable[bytes], *,
               size: int = 32, min_distinct: int = 4) -> list[bytes]:
    """The informative chunks (see ``informative_chunks``) of
    ``needle_payloads`` that occur in ``haystack`` (bytes, or a list of
    datagrams, each searched on its own). An empty list means none does:

        gw = rtp_payloads(cap.payloads(port=gw_port), payload_types=(0, 8))
        chunks = informative_chunks(gw)
        assert len(chunks) >= 20               # there was real audio to look for
        assert appears_in(gw, cap.payloads(port=user_port)) == []

    Check that there were chunks at all: with only silence on the needle
    side the answer is always "appears nowhere"."""
    chunks = informative_chunks(needle_payloads, size, min_distinct)
    if isinstance(haystack, (bytes, bytearray, memoryview)):
        hay: list[bytes] = [bytes(haystack)]
    else:
        hay = [bytes(h) for h in haystack]
    found = []
    for c in chunks:
        if any(c in h for h in hay):
            found.append(c)
    return found
