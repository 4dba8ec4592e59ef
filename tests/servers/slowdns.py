"""``SlowDNSServer``: a tiny DNS server on UDP that answers every query late.

It answers ``A`` queries for the names in ``records`` with their address,
``AAAA`` (and anything else) for them with an empty NOERROR answer, and every
other name with NXDOMAIN; each answer goes out ``delay`` seconds after its
query (answers are scheduled independently, so glibc's parallel A/AAAA queries
both come back after ``delay``).  Plain sockets and threads, bounded: every
receive has a timeout, and the server stops at ``stop()``.

glibc always asks port 53, so the server binds ``host``:53 (root needed); the
tests point a child process at it with a ``resolv.conf`` bind-mounted in a
private mount namespace (``unshare -m``), never touching the system's files.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Mapping

__all__ = ["SlowDNSServer"]


def _qname(packet: bytes, offset: int) -> tuple[str, int]:
    labels = []
    while offset < len(packet):
        length = packet[offset]
        offset += 1
        if length == 0:
            break
        labels.append(packet[offset:offset + length].decode("ascii", "replace"))
        offset += length
    return ".".join(labels).lower(), offset


class SlowDNSServer:
    def __init__(self, records: Mapping[str, str], *, host: str = "127.53.0.1",
                 delay: float = 1.0) -> None:
        self.records = {name.lower().rstrip("."): address for name, address in records.items()}
        self.host = host
        self.delay = delay
        self.queries: list[tuple[str, int]] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((host, 53))
        self._sock.settimeout(0.2)
        self._stopping = threading.Event()
        self._timers: list[threading.Timer] = []
        self._thread = threading.Thread(target=self._serve, name="slow-dns", daemon=True)

    def start(self) -> SlowDNSServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(5)
        for timer in self._timers:
            timer.cancel()
        self._sock.close()

    def __enter__(self) -> SlowDNSServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                packet, peer = self._sock.recvfrom(512)
            except TimeoutError:
                continue
            except OSError:
                return
            answer = self._answer(packet)
            if answer is None or len(self._timers) > 1000:
                continue
            timer = threading.Timer(self.delay, self._send, (answer, peer))
            timer.daemon = True
            self._timers.append(timer)
            timer.start()

    def _send(self, answer: bytes, peer: tuple[str, int]) -> None:
        if not self._stopping.is_set():
            try:
                self._sock.sendto(answer, peer)
            except OSError:
                pass

    def _answer(self, packet: bytes) -> bytes | None:
        if len(packet) < 12:
            return None
        ident, _flags, qdcount = struct.unpack("!HHH", packet[:6])
        if qdcount != 1:
            return None
        name, end = _qname(packet, 12)
        if end + 4 > len(packet):
            return None
        qtype, _qclass = struct.unpack("!HH", packet[end:end + 4])
        question = packet[12:end + 4]
        self.queries.append((name, qtype))
        address = self.records.get(name)
        if address is None:
            return struct.pack("!HHHHHH", ident, 0x8183, 1, 0, 0, 0) + question
        if qtype != 1:  # only A records here
            return struct.pack("!HHHHHH", ident, 0x8180, 1, 0, 0, 0) + question
        record = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(address)
        return struct.pack("!HHHHHH", ident, 0x8180, 1, 1, 0, 0) + question + record
