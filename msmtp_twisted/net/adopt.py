"""A TCP connection made before the reactor (:mod:`msmtp_twisted.net.probe`),
handed to Twisted as if ``connectTCP`` had made it."""

from __future__ import annotations

from typing import Any

from twisted.internet import tcp

from msmtp_twisted.net.probe import Connected

__all__ = ["AdoptingConnector"]


class AdoptingConnector(tcp.Connector):
    """``reactor.connectTCP`` for a socket connected already: the client transport
    Twisted makes (so STARTTLS is the client side, as on any connection) gets
    that socket instead of a new one; its connect() finds it connected
    (EISCONN) and goes on as after any connect.  Server-side adoption
    (``adoptStreamConnection``) would make a server transport."""

    def __init__(self, connected: Connected, port: int, factory: Any, timeout: float,
                 reactor: Any) -> None:
        super().__init__(connected.address, port, factory, timeout, None, reactor)
        self._adopted: Connected | None = connected

    def _makeTransport(self) -> tcp.Client:
        adopted, self._adopted = self._adopted, None
        if adopted is None:  # a second connect() of this connector: a new socket
            return super()._makeTransport()
        return _AdoptedClient(adopted.sock, self.host, self.port, self, self.reactor)


class _AdoptedClient(tcp.Client):
    def __init__(self, sock: Any, host: str, port: int, connector: Any, reactor: Any) -> None:
        self._adopted_socket = sock
        super().__init__(host, port, None, connector, reactor)

    def createInternetSocket(self) -> Any:
        sock = self._adopted_socket
        sock.setblocking(False)
        return sock
