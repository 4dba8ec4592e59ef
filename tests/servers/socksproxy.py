"""``SocksProxy``: a scriptable (and, on request, hostile) SOCKS5 proxy on 127.0.0.1.

::

    with SocksProxy() as proxy:                       # a working proxy: relays
        run_client(proxy_host=proxy.host, proxy_port=proxy.port, host=..., port=...)
        [conn] = proxy.connections
        assert conn.request_host == b"mail.example.org" and conn.atyp == 3

    with SocksProxy(connect=reply(5)) as proxy:       # refuses every CONNECT
        ...

Each connection goes: the client's greeting (``05 <n> <methods>``) is read, the
``method`` step answers it; unless that step ends the connection the CONNECT request
(``05 01 00 <atyp> <address> <port>``) is read and the ``connect`` step answers it.
A step is a :class:`Step` -- bytes to send (optionally in ``chunk``-byte pieces
``gap`` seconds apart) and what to do next: ``"continue"``, ``"close"`` (FIN, after
draining what the client still sends), ``"reset"`` (RST) or ``"hang"`` (say nothing
more until the client goes away or the proxy stops) -- or plain bytes (``method``:
continue after them; ``connect``: close after them).  The default ``connect`` step is
:data:`RELAY`: connect to the requested target (names looked up in ``names`` first,
then with ``getaddrinfo``), answer ``05 00 00 01 127.0.0.1 <port>`` (or a failure
status: 5 refused, 4 unreachable or unknown name, 1 anything else) and relay bytes
both ways until either side closes.  ``relay_reply`` replaces the success reply
(e.g. with an ATYP 3 or 4 bound address, or split with ``chunk``/``gap``).

Every socket operation is bounded by ``io_timeout``; ``stop()`` closes everything.
What each connection did is in :attr:`SocksProxy.connections`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import select
import socket
import struct
import time
from dataclasses import dataclass, field

from tests.servers.base import DEFAULT_IO_TIMEOUT, ThreadedServer, _hard_close, send_chunked

__all__ = ["CONTINUE", "RELAY", "SocksConnection", "SocksProxy", "Step", "reply"]


@dataclass(frozen=True)
class Step:
    data: bytes = b""
    then: str = "continue"  # continue | close | reset | hang
    chunk: int | None = None
    gap: float = 0.0

    def __post_init__(self) -> None:
        if self.then not in ("continue", "close", "reset", "hang"):
            raise ValueError(f"unknown step ending {self.then!r}")


class _Relay:
    def __repr__(self) -> str:
        return "RELAY"


#: the ``connect`` step of a working proxy
RELAY = _Relay()
#: the usual answer to the greeting: version 5, no authentication
CONTINUE = Step(b"\x05\x00")


def reply(status: int, atyp: int = 1, address: str | bytes = "0.0.0.0", port: int = 0,
          *, version: int = 5, reserved: int = 0) -> bytes:
    """A CONNECT reply: ``version status reserved atyp address port``."""
    if atyp == 1:
        addr = ipaddress.IPv4Address(address).packed if isinstance(address, str) else address
    elif atyp == 4:
        addr = ipaddress.IPv6Address(address).packed if isinstance(address, str) else address
    else:
        name = address.encode() if isinstance(address, str) else address
        addr = bytes([len(name)]) + name
    return bytes([version, status, reserved, atyp]) + addr + port.to_bytes(2, "big")


@dataclass
class SocksConnection:
    """What one client did on the proxy."""

    #: the greeting as received (``05 01 00`` from msmtp)
    greeting: bytes = b""
    #: the CONNECT request as received, whole
    request: bytes = b""
    atyp: int | None = None
    request_host: bytes | None = None
    request_port: int | None = None
    #: bytes relayed client->target and target->client
    bytes_up: int = 0
    bytes_down: int = 0
    #: how the connection ended: "client closed", "proxy closed", "target closed", ...
    ended: str = ""
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None


class _Gone(Exception):
    pass


class SocksProxy(ThreadedServer):
    thread_name = "socks-proxy"

    def __init__(self, *, method: Step | bytes = CONTINUE,
                 connect: Step | bytes | _Relay = RELAY,
                 relay_reply: Step | bytes | None = None,
                 names: dict[str, tuple[str, int] | str] | None = None,
                 io_timeout: float = DEFAULT_IO_TIMEOUT) -> None:
        super().__init__(io_timeout=io_timeout)
        self.method = method if isinstance(method, Step) else Step(method, "continue")
        self.connect = connect if isinstance(connect, (Step, _Relay)) else Step(connect, "close")
        self.relay_reply = (relay_reply if isinstance(relay_reply, Step) or relay_reply is None
                            else Step(relay_reply))
        #: name (as the client sent it) -> "address" or ("address", port)
        self.names = dict(names or {})
        self.connections: list[SocksConnection] = []

    @property
    def connection(self) -> SocksConnection:
        assert self.connections, "nobody connected"
        return self.connections[-1]

    # -- one connection ------------------------------------------------------------

    def handle(self, conn: socket.socket) -> None:
        record = SocksConnection()
        with self._lock:
            self.connections.append(record)
        try:
            record.ended = self._converse(conn, record)
        except _Gone:
            record.ended = "client closed"
        except TimeoutError:
            record.ended = "proxy timed out"
        finally:
            record.finished = time.monotonic()

    def _converse(self, conn: socket.socket, record: SocksConnection) -> str:
        head = self._read(conn, 2)
        methods = self._read(conn, head[1]) if head[1] else b""
        record.greeting = head + methods
        ended = self._play(conn, self.method)
        if ended:
            return ended
        header = self._read(conn, 4)
        if header[3] == 1:
            address = self._read(conn, 4)
        elif header[3] == 4:
            address = self._read(conn, 16)
        elif header[3] == 3:
            size = self._read(conn, 1)
            address = size + self._read(conn, size[0])
        else:
            return "bad request"
        port = self._read(conn, 2)
        record.request = header + address + port
        record.atyp = header[3]
        record.request_port = int.from_bytes(port, "big")
        if header[3] == 3:
            record.request_host = address[1:]
        else:
            record.request_host = str(ipaddress.ip_address(address)).encode()
        if isinstance(self.connect, _Relay):
            return self._relay(conn, record)
        return self._play(conn, self.connect) or "proxy closed"

    def _read(self, conn: socket.socket, n: int) -> bytes:
        data = b""
        deadline = time.monotonic() + self.io_timeout
        while len(data) < n:
            if self.stopping or time.monotonic() > deadline:
                raise TimeoutError
            readable, _, _ = select.select([conn], [], [], 0.05)
            if not readable:
                continue
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise _Gone
            data += chunk
        return data

    def _play(self, conn: socket.socket, step: Step) -> str:
        """Send the step's bytes; "" to go on, else how the connection ended."""
        if step.data:
            send_chunked(conn, step.data, step.chunk, step.gap)
        if step.then == "continue":
            return ""
        if step.then == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            return "proxy reset"
        if step.then == "close":
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_WR)
            self._drain(conn)
            return "proxy closed"
        self._drain(conn)  # hang: read and ignore until the client goes away
        return "client closed while the proxy hung"

    def _drain(self, conn: socket.socket) -> None:
        deadline = time.monotonic() + self.io_timeout
        while not self.stopping and time.monotonic() < deadline:
            readable, _, _ = select.select([conn], [], [], 0.05)
            if readable:
                try:
                    if not conn.recv(65536):
                        return
                except OSError:
                    return

    # -- relaying ---------------------------------------------------------------------

    def _target(self, record: SocksConnection) -> tuple[str, int]:
        assert record.request_host is not None and record.request_port is not None
        name = record.request_host.decode("utf-8", "surrogateescape")
        mapped = self.names.get(name)
        if isinstance(mapped, tuple):
            return mapped
        return (mapped or name, record.request_port)

    def _relay(self, conn: socket.socket, record: SocksConnection) -> str:
        host, port = self._target(record)
        try:
            infos = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            infos = []
        if not infos:
            send_chunked(conn, reply(4))
            return "unknown target"
        upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.register_socket(upstream)
        try:
            upstream.settimeout(self.io_timeout)
            try:
                upstream.connect(infos[0][4])
            except ConnectionRefusedError:
                send_chunked(conn, reply(5))
                return "target refused"
            except OSError:
                send_chunked(conn, reply(1))
                return "target failed"
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            bound = upstream.getsockname()
            step = self.relay_reply or Step(reply(0, 1, bound[0], bound[1]))
            ended = self._play(conn, step)
            if ended:
                return ended
            return self._pump(conn, upstream, record)
        finally:
            _hard_close(upstream)
            self.unregister_socket(upstream)

    def _pump(self, client: socket.socket, upstream: socket.socket,
              record: SocksConnection) -> str:
        idle_since = time.monotonic()
        while not self.stopping:
            readable, _, _ = select.select([client, upstream], [], [], 0.05)
            if not readable:
                if time.monotonic() - idle_since > self.io_timeout:
                    return "idle"
                continue
            idle_since = time.monotonic()
            for src in readable:
                dst = upstream if src is client else client
                try:
                    data = src.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    return "client closed" if src is client else "target closed"
                dst.sendall(data)
                if src is client:
                    record.bytes_up += len(data)
                else:
                    record.bytes_down += len(data)
        return "proxy stopped"
