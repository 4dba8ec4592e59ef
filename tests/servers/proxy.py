"""``DelayProxy``: a TCP proxy adding latency and counting round trips.

::

    with RecordingServer() as srv, DelayProxy(srv, delay=0.05) as proxy:
        run_client(host=proxy.host, port=proxy.port)
        proxy.wait_idle()
        print(proxy.round_trips)   # client->server bursts, each ended by a server reply

Every chunk read from one side is written to the other ``delay`` seconds after it was
read (per direction, chunks keep their order; the delay is latency, not a throughput
limit).  A *round trip* is a maximal run of client->server chunks with no
server->client chunk in between, as observed by the proxy: a client that pipelines
MAIL/RCPT/DATA needs one round trip for them, a client that does not needs one each.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import socket
import threading
import time
from dataclasses import dataclass, field

from tests.servers.base import DEFAULT_IO_TIMEOUT, ThreadedServer, _hard_close

#: Bytes of each client burst kept for inspection.
BURST_KEEP = 65536


@dataclass
class ProxyConnection:
    """What went through one proxied connection."""

    #: (seconds since the connection started, "C" (client->server) or "S", byte count)
    events: list[tuple[float, str, int]] = field(default_factory=list)
    #: the client->server bytes of each burst (first BURST_KEEP bytes of each)
    bursts: list[bytes] = field(default_factory=list)
    bytes_up: int = 0
    bytes_down: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def round_trips(self) -> int:
        return len(self.bursts)


class DelayProxy(ThreadedServer):
    """Forward 127.0.0.1:<port> (or ``unix_path``) to ``target`` with added latency.

    target: ``(host, port)``, a unix socket path, or a started server object (its
        ``address`` is used).
    delay: seconds added to every chunk in both directions; ``up_delay`` /
        ``down_delay`` override it for client->server / server->client.
    """

    thread_name = "delay-proxy"

    def __init__(self, target: tuple[str, int] | str | os.PathLike[str] | ThreadedServer, *,
                 delay: float = 0.0, up_delay: float | None = None,
                 down_delay: float | None = None,
                 unix_path: str | os.PathLike[str] | None = None,
                 io_timeout: float = DEFAULT_IO_TIMEOUT) -> None:
        super().__init__(unix_path=unix_path, io_timeout=io_timeout)
        self.target = target
        self.up_delay = delay if up_delay is None else up_delay
        self.down_delay = delay if down_delay is None else down_delay
        self.connections: list[ProxyConnection] = []

    @property
    def round_trips(self) -> int:
        """Round trips of all connections."""
        return sum(c.round_trips for c in list(self.connections))

    @property
    def connection(self) -> ProxyConnection:
        assert self.connections, "nobody connected"
        return self.connections[-1]

    def _target_address(self) -> tuple[str, int] | str:
        target = self.target
        if isinstance(target, ThreadedServer):
            return target.address
        if isinstance(target, tuple):
            return target
        return os.fspath(target)

    def handle(self, client: socket.socket) -> None:
        record = ProxyConnection()
        with self._lock:
            self.connections.append(record)
        address = self._target_address()
        family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
        upstream = socket.socket(family, socket.SOCK_STREAM)
        self.register_socket(upstream)
        try:
            upstream.settimeout(self.io_timeout)
            upstream.connect(address)
            if family == socket.AF_INET:
                upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            lock = threading.Lock()
            threads = [
                *self._pipe(client, upstream, "C", self.up_delay, record, lock),
                *self._pipe(upstream, client, "S", self.down_delay, record, lock),
            ]
            with self._lock:
                self._threads.extend(threads)  # so that stop() joins them too
            for t in threads:
                t.start()
            for t in threads:
                while t.is_alive() and not self.stopping:
                    t.join(0.1)
        finally:
            _hard_close(upstream)
            self.unregister_socket(upstream)

    def _pipe(self, src: socket.socket, dst: socket.socket, direction: str, delay: float,
              record: ProxyConnection, lock: threading.Lock) -> list[threading.Thread]:
        q: queue.Queue[tuple[float, bytes] | None] = queue.Queue()

        def reader() -> None:
            try:
                while not self.stopping:
                    readable, _, _ = select.select([src], [], [], 0.1)
                    if not readable:
                        continue
                    data = src.recv(65536)
                    if not data:
                        break
                    now = time.monotonic()
                    with lock:
                        record.events.append((now - record.started, direction, len(data)))
                        if direction == "C":
                            record.bytes_up += len(data)
                            last = record.events[-2][1] if len(record.events) > 1 else "S"
                            if last != "C" or not record.bursts:
                                record.bursts.append(data[:BURST_KEEP])
                            elif len(record.bursts[-1]) < BURST_KEEP:
                                keep = BURST_KEEP - len(record.bursts[-1])
                                record.bursts[-1] += data[:keep]
                        else:
                            record.bytes_down += len(data)
                    q.put((now + delay, data))
            except OSError:
                pass
            finally:
                q.put(None)

        def writer() -> None:
            try:
                while True:
                    try:
                        item = q.get(timeout=0.1)
                    except queue.Empty:
                        if self.stopping:
                            return
                        continue
                    if item is None:
                        with contextlib.suppress(OSError):
                            dst.shutdown(socket.SHUT_WR)
                        return
                    due, data = item
                    wait = due - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    dst.sendall(data)
            except OSError:
                _hard_close(src)  # the other side is gone: stop reading too

        name = f"{self.thread_name}-{direction}"
        return [threading.Thread(target=reader, name=name + "-r", daemon=True),
                threading.Thread(target=writer, name=name + "-w", daemon=True)]


__all__ = ["DelayProxy", "ProxyConnection"]
