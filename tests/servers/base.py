"""Threaded listening-socket plumbing shared by the test servers.

Every server listens on 127.0.0.1 (port 0: the kernel picks a free port) or on a unix
socket path, accepts connections in a background thread and hands each one to
``handle(conn)`` in its own daemon thread.  Every socket has a timeout, ``stop()``
closes the listener and all live connections and joins every thread with a bound, so a
test can never hang on a server.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from pathlib import Path
from typing import Self

#: Upper bound for any single blocking socket operation in a server thread.
DEFAULT_IO_TIMEOUT = 10.0


class ServerError(AssertionError):
    """A server thread failed in a way the test should hear about."""


class ThreadedServer:
    """Listen on 127.0.0.1 or a unix socket; one daemon thread per connection.

    Subclasses implement ``handle(conn)``.  Use as a context manager or call
    ``start()``/``stop()``.  ``host``/``port`` (TCP) or ``path`` (unix) tell the
    client where to connect.
    """

    thread_name = "test-server"

    def __init__(self, *, unix_path: str | os.PathLike[str] | None = None,
                 io_timeout: float = DEFAULT_IO_TIMEOUT, host: str = "127.0.0.1") -> None:
        self.unix_path = Path(unix_path) if unix_path is not None else None
        self.io_timeout = io_timeout
        self.host = host
        self.port: int | None = None
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._accept_thread: threading.Thread | None = None
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        self._conns: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._active = 0
        #: number of connections accepted so far
        self.connections_accepted = 0
        #: exceptions raised by ``handle`` (other than ordinary socket errors)
        self.errors: list[BaseException] = []

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Self:
        if self._listener is not None:
            return self
        if self.unix_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.unix_path.unlink()
            lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            lsock.bind(str(self.unix_path))
        else:
            lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            lsock.bind((self.host, 0))
            self.port = lsock.getsockname()[1]
        lsock.listen(64)
        lsock.settimeout(0.05)
        self._listener = lsock
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"{self.thread_name}-accept", daemon=True)
        self._accept_thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Close everything and join all threads (each join bounded by ``timeout``)."""
        self._stop.set()
        if self._accept_thread is not None:
            self._accept_thread.join(timeout)
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
        with self._lock:
            conns = list(self._conns)
            threads = list(self._threads)
        for conn in conns:
            _hard_close(conn)
        deadline = time.monotonic() + timeout
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        if self.unix_path is not None:
            with contextlib.suppress(OSError):
                self.unix_path.unlink()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def address(self) -> tuple[str, int] | str:
        """``(host, port)`` or the unix socket path."""
        if self.unix_path is not None:
            return str(self.unix_path)
        assert self.port is not None, "server not started"
        return (self.host, self.port)

    def wait_idle(self, timeout: float = 5.0, connections: int | None = None) -> None:
        """Wait until no connection is being handled (and, if given, until at least
        ``connections`` have been accepted).  Raises ``TimeoutError`` past ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._active or (connections is not None
                                   and self.connections_accepted < connections):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{type(self).__name__}: {self._active} connection(s) still active, "
                        f"{self.connections_accepted} accepted")
                self._idle.wait(min(left, 0.05))

    def raise_errors(self) -> None:
        """Re-raise the first unexpected exception a handler thread hit."""
        if self.errors:
            raise ServerError(f"{type(self).__name__} handler failed") from self.errors[0]

    # -- internals -------------------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(self.io_timeout)
            if conn.family == socket.AF_INET:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            t = threading.Thread(target=self._run_handler, args=(conn,),
                                 name=f"{self.thread_name}-conn", daemon=True)
            with self._lock:
                if self._stop.is_set():
                    _hard_close(conn)
                    return
                self._conns.add(conn)
                self._threads.append(t)
                self._active += 1
                self.connections_accepted += 1
            t.start()

    def _run_handler(self, conn: socket.socket) -> None:
        try:
            self.handle(conn)
        except (OSError, ConnectionClosed):
            pass  # the peer went away or the server is stopping: nothing to report
        except BaseException as exc:  # surfaced via raise_errors()
            self.errors.append(exc)
        finally:
            with contextlib.suppress(OSError):
                conn.close()
            with self._idle:
                self._conns.discard(conn)
                self._active -= 1
                self._idle.notify_all()

    def register_socket(self, sock: socket.socket) -> None:
        """Have ``stop()`` close an extra socket (e.g. a proxy's upstream)."""
        with self._lock:
            self._conns.add(sock)

    def unregister_socket(self, sock: socket.socket) -> None:
        with self._lock:
            self._conns.discard(sock)

    def handle(self, conn: socket.socket) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class ConnectionClosed(Exception):
    """The peer closed the connection (EOF) or the handler decided to drop it."""


def _hard_close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


def send_chunked(sock: socket.socket, data: bytes, chunk: int | None = None,
                 gap: float = 0.0) -> None:
    """``sendall`` -- or, with ``chunk``, many tiny writes ``gap`` seconds apart."""
    if not chunk:
        sock.sendall(data)
        return
    for i in range(0, len(data), chunk):
        sock.sendall(data[i:i + chunk])
        if gap:
            time.sleep(gap)
