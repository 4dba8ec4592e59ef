"""SOCKS5 the way msmtp uses it (``proxy_host``/``proxy_port``): no proxy
authentication, CONNECT with the target's host *name* (address type 3), so the
proxy resolves it.

Two layers, in the repository's style:

- :class:`SOCKS5Negotiator`: the client side of the handshake without I/O.
  Bytes from the proxy go in, bytes for the proxy and events come out; a
  failure is a :class:`SOCKS5Error` carrying msmtp's message and exit code.
  Importing this module does not import Twisted.
- :class:`SOCKS5ClientEndpoint`: an ``IStreamClientEndpoint`` that connects
  through any inner endpoint to the proxy, negotiates, and then hands the
  connection to the caller's protocol.  It fails with
  :class:`~msmtp_twisted.errors.ConnectFailure`, as the other endpoints of
  :mod:`msmtp_twisted.net.connect` do, so TLS can wrap it (implicit TLS) and
  STARTTLS works on the connection it gives.

What msmtp 1.8.23 does (``net_socks5_connect`` in its ``net.c``), and this module
with it:

- a target name longer than 255 bytes fails with ``proxy failure: host name too
  long`` once the proxy connection stands, before a byte is sent;
- it sends ``05 01 00`` and wants ``05 00`` back, else ``proxy failure:
  unexpected reply``;
- it sends ``05 01 00 03 <len> <name> <port>`` and reads the reply: version 5,
  reserved byte 0 and address type 1, 3 or 4 or ``proxy failure: unexpected
  reply``; the whole bound address is read *before* the status is looked at;
- status 0 is success, 1 to 8 have their RFC 1928 texts, anything else is
  ``unknown error``; all of these exit with EX_UNAVAILABLE (69);
- the proxy closing the connection early is ``network read error`` (EX_IOERR, 74),
  a reset ``network read error: Connection reset by peer``, and a proxy that
  stays silent past ``timeout`` ``network read error: the operation timed out``.

One difference on purpose: msmtp reads each part with a single ``recv()``, so a
proxy that sends a reply in several pieces with pauses in between makes it fail
with ``network read error``.  This client waits for the rest (each wait bounded by
the timeout), as RFC 1928 allows the proxy to split its replies.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from msmtp_twisted import sysexits
from msmtp_twisted.errors import Cause, SOCKS5Error

__all__ = [
    "BoundAddress",
    "Established",
    "SOCKS5ClientEndpoint",
    "SOCKS5Error",
    "SOCKS5Negotiator",
    "STATUS_TEXTS",
    "connect_request",
    "socks5_client_endpoint",
]

DEFAULT_PORT = 1080

#: msmtp's words for the reply codes of RFC 1928 (section 6)
STATUS_TEXTS = {
    0x01: "general server failure",
    0x02: "connection not allowed",
    0x03: "network unreachable",
    0x04: "host unreachable",
    0x05: "connection refused",
    0x06: "time-to-live expired",
    0x07: "command not supported",
    0x08: "address type not supported",
}
UNKNOWN_STATUS = "unknown error"

GREETING = b"\x05\x01\x00"  # SOCKS5, one method: no authentication

READ_ERROR = "network read error"
RESET = "network read error: Connection reset by peer"
TIMED_OUT = "network read error: the operation timed out"


def proxy_failure(reason: str) -> SOCKS5Error:
    return SOCKS5Error(sysexits.EX_UNAVAILABLE, f"proxy failure: {reason}")


def read_error(message: str = READ_ERROR, cause: Cause = Cause.CLOSED) -> SOCKS5Error:
    return SOCKS5Error(sysexits.EX_IOERR, message, cause=cause)


def _host_bytes(host: str | bytes) -> bytes:
    if isinstance(host, bytes):
        return host
    # msmtp sends the name as the configuration spelled it (no IDN conversion)
    return host.encode("utf-8", "surrogateescape")


def connect_request(host: str | bytes, port: int) -> bytes:
    """The CONNECT request msmtp sends: ``05 01 00 03 <len> <name> <port>``."""
    name = _host_bytes(host)
    if len(name) > 0xFF:
        raise proxy_failure("host name too long")
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"port out of range: {port}")
    return b"\x05\x01\x00\x03" + bytes([len(name)]) + name + port.to_bytes(2, "big")


@dataclass(frozen=True)
class BoundAddress:
    """The address the proxy reports for its side of the connection (``BND.ADDR``,
    ``BND.PORT``): ``atyp`` 1 (IPv4), 3 (a name) or 4 (IPv6)."""

    atyp: int
    host: str
    port: int


@dataclass(frozen=True)
class Established:
    """The proxy connected to the target.  ``data``: bytes that followed the reply
    (from the target already, e.g. the start of its greeting)."""

    bound: BoundAddress
    data: bytes


# negotiation states
_START, _METHOD, _REPLY, _DONE, _FAILED = range(5)


class SOCKS5Negotiator:
    """The client side of msmtp's SOCKS5 handshake, without I/O.

    ::

        negotiator = SOCKS5Negotiator("mail.example.org", 25)
        transport.write(negotiator.initiate())          # may raise SOCKS5Error
        ...
        out, event = negotiator.receive(data)           # may raise SOCKS5Error
        transport.write(out)
        if event is not None:  # Established: the target is connected
            ...
        # the proxy closed the connection before the end:
        raise negotiator.connection_lost(clean=True)

    Replies may arrive in pieces of any size; bytes after the CONNECT reply are
    handed back in :attr:`Established.data`.  After a failure, or once
    established, further input is refused with ``RuntimeError``.
    """

    def __init__(self, host: str | bytes, port: int) -> None:
        self.host = _host_bytes(host)
        self.port = port
        self._state = _START
        self._buffer = bytearray()

    @property
    def done(self) -> bool:
        return self._state == _DONE

    @property
    def failed(self) -> bool:
        return self._state == _FAILED

    def initiate(self) -> bytes:
        """The greeting to send first (after checking the host name)."""
        if self._state != _START:
            raise RuntimeError("initiate() called twice")
        if len(self.host) > 0xFF:
            self._state = _FAILED
            raise proxy_failure("host name too long")
        self._state = _METHOD
        return GREETING

    def receive(self, data: bytes) -> tuple[bytes, Established | None]:
        """Feed bytes from the proxy: what to send to it now, and the
        :class:`Established` event once the CONNECT reply is complete and positive."""
        if self._state in (_START, _DONE, _FAILED):
            raise RuntimeError(f"receive() in state {self._state}")
        self._buffer += data
        try:
            return self._advance()
        except SOCKS5Error:
            self._state = _FAILED
            self._buffer.clear()
            raise

    def _advance(self) -> tuple[bytes, Established | None]:
        out = b""
        if self._state == _METHOD:
            if len(self._buffer) < 2:
                return out, None
            version, method = self._buffer[0], self._buffer[1]
            del self._buffer[:2]
            if version != 0x05 or method != 0x00:
                raise proxy_failure("unexpected reply")
            out = connect_request(self.host, self.port)
            self._state = _REPLY
        if self._state == _REPLY:
            event = self._parse_reply()
            if event is not None:
                self._state = _DONE
            return out, event
        return out, None  # pragma: no cover - unreachable

    def _parse_reply(self) -> Established | None:
        buf = self._buffer
        if len(buf) < 5:
            return None
        # msmtp checks the header before it reads the address, and the status last
        if buf[0] != 0x05 or buf[2] != 0x00 or buf[3] not in (0x01, 0x03, 0x04):
            raise proxy_failure("unexpected reply")
        atyp = buf[3]
        if atyp == 0x01:
            total = 4 + 4 + 2
        elif atyp == 0x04:
            total = 4 + 16 + 2
        else:
            total = 5 + buf[4] + 2
        if len(buf) < total:
            return None
        status = buf[1]
        if status != 0x00:
            raise proxy_failure(STATUS_TEXTS.get(status, UNKNOWN_STATUS))
        if atyp == 0x01:
            host = str(ipaddress.IPv4Address(bytes(buf[4:8])))
        elif atyp == 0x04:
            host = str(ipaddress.IPv6Address(bytes(buf[4:20])))
        else:
            host = bytes(buf[5:5 + buf[4]]).decode("utf-8", "surrogateescape")
        port = int.from_bytes(buf[total - 2:total], "big")
        rest = bytes(buf[total:])
        buf.clear()
        return Established(BoundAddress(atyp, host, port), rest)

    def connection_lost(self, *, clean: bool) -> SOCKS5Error:
        """The error for a proxy connection that ended before the negotiation did:
        a clean close reads as a short read, anything else as a reset."""
        self._state = _FAILED
        if clean:
            return read_error(READ_ERROR, Cause.CLOSED)
        return read_error(RESET, Cause.RESET)

    def timed_out(self) -> SOCKS5Error:
        """The error for a proxy that stayed silent past the timeout."""
        self._state = _FAILED
        return read_error(TIMED_OUT, Cause.TIMEOUT)


# ---------------------------------------------------------------------------
# Twisted: everything below imports Twisted only when used, so that the
# negotiator above stays importable without it.


def _declare(cls: type, interface_path: str) -> None:
    """``zope.interface.classImplements`` on first use (``module:Name``)."""
    import importlib

    from zope.interface import classImplements

    module, _, name = interface_path.partition(":")
    interface = getattr(importlib.import_module(module), name)
    if not interface.implementedBy(cls):
        classImplements(cls, interface)


class _NegotiatingProtocol:
    """The protocol on the proxy connection: runs the negotiation, then builds the
    caller's protocol on the same transport and passes everything through to it.

    (An ``IProtocol`` without subclassing Twisted's ``Protocol``, so that this
    module can be imported without Twisted.)"""

    def __init__(self, endpoint: SOCKS5ClientEndpoint, factory: Any, deferred: Any) -> None:
        self._endpoint = endpoint
        self._factory = factory
        self._deferred = deferred
        self._negotiator = SOCKS5Negotiator(endpoint.host, endpoint.port)
        self._timer: Any = None
        self.transport: Any = None
        self.wrapped: Any = None
        self.connected = False

    # -- IProtocol ------------------------------------------------------------

    def makeConnection(self, transport: Any) -> None:
        self.connected = True
        self.transport = transport
        self.connectionMade()

    def connectionMade(self) -> None:
        try:
            greeting = self._negotiator.initiate()
        except SOCKS5Error as e:
            self._fail(e)
            return
        self.transport.write(greeting)
        self._arm_timer()

    def dataReceived(self, data: bytes) -> None:
        if self.wrapped is not None:
            self.wrapped.dataReceived(data)
            return
        if self._negotiator.failed or self._negotiator.done:
            return  # dropped: the connection is being aborted
        try:
            out, event = self._negotiator.receive(data)
        except SOCKS5Error as e:
            self._fail(e)
            return
        if out:
            self.transport.write(out)
        if event is None:
            self._arm_timer()  # msmtp's timeout applies to each read
            return
        self._cancel_timer()
        self._established(event)

    def connectionLost(self, reason: Any = None) -> None:
        self.connected = False
        self._cancel_timer()
        if self.wrapped is not None:
            self.wrapped.connectionLost(reason)
            return
        if not self._negotiator.failed:
            from twisted.internet import error

            clean = reason is None or reason.check(error.ConnectionDone) is not None
            self._errback(self._negotiator.connection_lost(clean=clean))

    def logPrefix(self) -> str:
        if self.wrapped is not None and hasattr(self.wrapped, "logPrefix"):
            return str(self.wrapped.logPrefix())
        return "SOCKS5"

    # -- internals -----------------------------------------------------------

    def _established(self, event: Established) -> None:
        from twisted.internet.address import HostnameAddress

        address = HostnameAddress(self._negotiator.host, self._negotiator.port)
        try:
            protocol = self._factory.buildProtocol(address)
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            self.transport.abortConnection()
            self._errback(e)
            return
        if protocol is None:
            from twisted.internet import error

            self.transport.abortConnection()
            self._errback(error.ConnectError(string="connection refused by the factory"))
            return
        self.wrapped = protocol
        protocol.makeConnection(self.transport)
        if not self._deferred.called:
            self._deferred.callback(protocol)
        if event.data and self.connected:
            protocol.dataReceived(event.data)

    def _fail(self, error: SOCKS5Error) -> None:
        self._cancel_timer()
        self._errback(error)
        self.transport.abortConnection()

    def _errback(self, failure: BaseException) -> None:
        if self._deferred.called:
            return
        if isinstance(failure, SOCKS5Error):
            from msmtp_twisted.errors import ConnectFailure

            failure = ConnectFailure(failure.exitcode, failure.message, cause=failure.cause)
        self._deferred.errback(failure)

    def _arm_timer(self) -> None:
        self._cancel_timer()
        if self._endpoint.timeout:
            self._timer = self._endpoint.clock().callLater(self._endpoint.timeout,
                                                           self._timed_out)

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        if self.wrapped is None and not self._negotiator.failed:
            self._fail(self._negotiator.timed_out())

    def cancel(self) -> None:
        """The caller gave up (Deferred cancelled): drop the proxy connection."""
        self._cancel_timer()
        if self.wrapped is None and self.transport is not None:
            self.transport.abortConnection()


class _NegotiatingFactory:
    """Builds the one :class:`_NegotiatingProtocol` of a connection attempt."""

    def __init__(self, endpoint: SOCKS5ClientEndpoint, factory: Any, deferred: Any) -> None:
        self._endpoint = endpoint
        self._factory = factory
        self._deferred = deferred
        self.protocol: _NegotiatingProtocol | None = None

    def doStart(self) -> None:
        pass

    def doStop(self) -> None:
        pass

    def buildProtocol(self, addr: Any) -> _NegotiatingProtocol:
        self.protocol = _NegotiatingProtocol(self._endpoint, self._factory, self._deferred)
        return self.protocol


class SOCKS5ClientEndpoint:
    """Connect to ``host``:``port`` through the SOCKS5 proxy that ``proxy_endpoint``
    reaches, as msmtp does (no proxy authentication; the proxy resolves ``host``).

    ``timeout`` (seconds, None or 0: none) bounds each wait for the proxy during the
    negotiation, as msmtp's socket timeout does; ``clock`` schedules it (default: the
    global reactor).  Failures of the negotiation are
    :class:`~msmtp_twisted.errors.ConnectFailure` with msmtp's message and exit
    code; failures of ``proxy_endpoint`` pass through as they are (with
    :class:`~msmtp_twisted.net.connect.SequentialTCPEndpoint`: msmtp's messages,
    naming the proxy).  The protocol built by ``protocolFactory`` gets the proxy
    connection's transport once the proxy has connected to the target, and
    ``HostnameAddress(host, port)`` as the address.
    """

    def __init__(self, proxy_endpoint: Any, host: str | bytes, port: int,
                 timeout: float | None = None, *, clock: Any = None) -> None:
        _declare(SOCKS5ClientEndpoint, "twisted.internet.interfaces:IStreamClientEndpoint")
        _declare(_NegotiatingProtocol, "twisted.internet.interfaces:IProtocol")
        _declare(_NegotiatingFactory, "twisted.internet.interfaces:IProtocolFactory")
        self.proxy_endpoint = proxy_endpoint
        self.host = host
        self.port = port
        self.timeout = timeout or None
        self._clock = clock

    def clock(self) -> Any:
        if self._clock is None:
            from twisted.internet import reactor

            self._clock = reactor
        return self._clock

    def connect(self, protocolFactory: Any) -> Any:
        from twisted.internet import defer

        inner: list[Any] = []
        factory: _NegotiatingFactory

        def cancel(d: Any) -> None:
            if inner and not inner[0].called:
                inner[0].cancel()
            elif factory.protocol is not None:
                factory.protocol.cancel()

        d: defer.Deferred[Any] = defer.Deferred(cancel)
        factory = _NegotiatingFactory(self, protocolFactory, d)
        connecting = defer.maybeDeferred(self.proxy_endpoint.connect, factory)
        inner.append(connecting)

        def failed(failure: Any) -> None:
            if not d.called:
                d.errback(failure)

        connecting.addCallbacks(lambda _: None, failed)
        return d

    def __repr__(self) -> str:
        return (f"<SOCKS5ClientEndpoint {self.host!r}:{self.port} "
                f"via {self.proxy_endpoint!r}>")


# ---------------------------------------------------------------------------
# endpoint strings


class SOCKS5EndpointParser:
    """``IStreamClientEndpointStringParserWithReactor`` for ``msmtp-socks5:``::

        msmtp-socks5:mail.example.org:25:proxy_host=127.0.0.1:proxy_port=1080
        msmtp-socks5:host=mail.example.org:port=587:proxy_host=tor.lan:timeout=30

    Fields: ``host`` and ``port`` of the target (positional or by name; port 25 by
    default), ``proxy_host`` (required), ``proxy_port`` (default 1080), ``timeout``
    and ``bindAddress`` (source address of the connection to the proxy).  Wrap the
    result in ``TLSWrapperEndpoint`` for implicit TLS."""

    prefix = "msmtp-socks5"

    def parseStreamClient(self, reactor: Any, *args: str, **kwargs: str) -> SOCKS5ClientEndpoint:
        from msmtp_twisted.net.connect import SequentialTCPEndpoint
        from msmtp_twisted.net.description import endpoint_fields

        host, port, timeout, bind = endpoint_fields(args, kwargs, 25)
        proxy_host = kwargs.pop("proxy_host", None)
        if not proxy_host:
            raise ValueError("no proxy_host given")
        proxy_port = int(kwargs.pop("proxy_port", None) or DEFAULT_PORT)
        if kwargs:
            raise ValueError(f"unknown SOCKS5 option(s): {', '.join(sorted(kwargs))}")
        proxy = SequentialTCPEndpoint(reactor, proxy_host, proxy_port, timeout=timeout,
                                      source_ip=bind)
        return SOCKS5ClientEndpoint(proxy, host, port, timeout, clock=reactor)


def socks5_client_endpoint(reactor: Any, description: str) -> SOCKS5ClientEndpoint:
    """A SOCKS5 client endpoint from a string (see :class:`SOCKS5EndpointParser`);
    works without the plugin being installed.  The prefix is optional."""
    from msmtp_twisted.net.description import split_description

    args, kwargs = split_description(description)
    if args and args[0] in ("socks5", "msmtp-socks5"):
        args = args[1:]
    return SOCKS5EndpointParser().parseStreamClient(reactor, *args, **kwargs)
