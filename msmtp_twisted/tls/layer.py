"""The TLS layer of our connections: Twisted's, with fewer calls per round trip.

Twisted's :class:`~twisted.protocols.tls.TLSMemoryBIOProtocol` is written for
any protocol; for ours it does more than it needs on every exchange, and that is
most of what TLS costs a kept connection sending small mails (docs/performance.md):

* ``BufferingTLSTransport`` holds each write until the next reactor turn to join
  small writes; a session joins its writes already (one per round trip), so the
  hold only costs a timer and a turn.
* Every read ends with a ``recv`` and every flush with a ``bio_read`` that fail
  with ``WantReadError``: a Python exception raised and caught per call.  OpenSSL
  can say up front whether anything is left (decrypted bytes pending, bytes in
  the memory BIOs), so the layer asks instead of trying.
* pyOpenSSL allocates a buffer and runs its error checks around every call; the
  hot calls here go to OpenSSL through the same binding with one buffer per
  connection, and only a call that fails goes through pyOpenSSL's error mapping
  (so every error is the exception pyOpenSSL would raise).

The handshake, shutdown, producers and every error path stay Twisted's.  The
shortcuts need pyOpenSSL's memory-BIO connection internals (``_ssl``,
``_into_ssl``, ``_from_ssl``, ``_raise_ssl_error``); a pyOpenSSL without them
gets Twisted's code unchanged (:func:`usable`).
"""

from __future__ import annotations

from typing import Any

from OpenSSL import SSL
from twisted.protocols.policies import ProtocolWrapper
from twisted.protocols.tls import BufferingTLSTransport, TLSMemoryBIOProtocol
from twisted.python.failure import Failure

from msmtp_twisted.net.sendnow import write_now

try:
    from twisted.internet._newtls import _BypassTLS
except ImportError:  # pragma: no cover - another Twisted
    _BypassTLS = None

try:
    from OpenSSL._util import ffi as _ffi
    from OpenSSL._util import lib as _lib

    _READ, _WRITE = _lib.SSL_read, _lib.SSL_write
    _BIO_READ, _BIO_WRITE = _lib.BIO_read, _lib.BIO_write
    # for a memory BIO, BIO_get_mem_data returns how many bytes it holds
    _BIO_PENDING, _SSL_PENDING = _lib.BIO_get_mem_data, _lib.SSL_pending
    _NULL = _ffi.NULL
    _alloc = _ffi.new_allocator(should_clear_after_alloc=False)
    _BINDING = True
except (ImportError, AttributeError):  # pragma: no cover - another pyOpenSSL
    _BINDING = False

__all__ = ["LeanTLSProtocol", "lighten", "usable"]

#: a TLS record carries at most 16 KiB of plaintext
_RECORD = 2**14
_READ_SIZE = 2**15


def usable(connection: Any) -> bool:
    """Whether the shortcuts apply to this pyOpenSSL ``Connection``."""
    return _BINDING and all(
        hasattr(connection, name)
        for name in ("_ssl", "_into_ssl", "_from_ssl", "_raise_ssl_error"))


class LeanTLSProtocol(TLSMemoryBIOProtocol):
    """:class:`TLSMemoryBIOProtocol` without write aggregation and with cheaper
    reads and flushes (see the module docstring).  Behaviour is Twisted's."""

    _buffer: Any = None
    _lean: bool | None = None

    def _is_lean(self) -> bool:
        lean = self._lean
        if lean is None:
            connection = self._tlsConnection
            lean = self._lean = connection is not None and usable(connection)
            if lean:
                self._buffer = _alloc("char[]", _READ_SIZE)
        return lean

    def _raw_transport(self) -> Any:
        # STARTTLS: Twisted gives its TLS layer a stand-in for the TCP connection
        # whose writes skip the layer; our writes go to that connection's socket
        transport = self.transport
        if _BypassTLS is not None and isinstance(transport, _BypassTLS):
            return transport._connection
        return transport

    def _flushSendBIO(self) -> None:
        connection = self._tlsConnection
        if connection is None or not self._is_lean():
            return super()._flushSendBIO()
        out = connection._from_ssl
        size = _BIO_PENDING(out, _NULL)
        if size > 0:
            data = _alloc("char[]", size)
            read = _BIO_READ(out, data, size)
            if read > 0:
                write_now(self._raw_transport(), _ffi.buffer(data, read)[:])
        return None

    def _write(self, data: bytes) -> None:
        if self._lostTLSConnection:
            return
        connection = self._tlsConnection
        if type(data) is not bytes or connection is None or not self._is_lean():
            return super()._write(data)
        ssl = connection._ssl
        done, size = 0, len(data)
        while done < size:
            chunk = data[done:done + _RECORD]
            sent = _WRITE(ssl, chunk, len(chunk))
            if sent <= 0:
                try:
                    connection._raise_ssl_error(ssl, sent)
                except SSL.WantReadError:
                    self._bufferedWrite(data[done:])
                except SSL.Error:
                    self._tlsShutdownFinished(Failure())
                return None
            done += sent
            self._flushSendBIO()
        return None

    def dataReceived(self, data: bytes) -> None:
        connection = self._tlsConnection
        if (not self._handshakeDone or self._appSendBuffer or connection is None
                or type(data) is not bytes or not self._is_lean()):
            return super().dataReceived(data)
        into = connection._into_ssl
        if _BIO_WRITE(into, data, len(data)) != len(data):
            # cannot happen with a memory BIO; pyOpenSSL's call reports why
            return super().dataReceived(data)
        ssl, buffer = connection._ssl, self._buffer
        while not self._lostTLSConnection:
            read = _READ(ssl, buffer, _READ_SIZE)
            if read <= 0:
                try:
                    connection._raise_ssl_error(ssl, read)
                except SSL.WantReadError:
                    break
                except SSL.ZeroReturnError:
                    self._shutdownTLS()
                    self._tlsShutdownFinished(None)
                except SSL.Error:
                    self._tlsShutdownFinished(Failure())
                continue
            if not self._aborted:
                ProtocolWrapper.dataReceived(self, _ffi.buffer(buffer, read)[:])
            # Stop when OpenSSL holds nothing more: no decrypted bytes and no
            # received bytes left in the BIO (read-ahead is off, so OpenSSL reads
            # whole records from the BIO and keeps no raw bytes of its own after a
            # successful read).  Another SSL_read would only raise WantReadError.
            if _SSL_PENDING(ssl) <= 0 and _BIO_PENDING(into, _NULL) <= 0:
                break
        self._flushSendBIO()
        return None


def lighten(transport: Any) -> None:
    """Give a transport that just started STARTTLS our lighter TLS layer.

    ``transport.startTLS`` builds Twisted's ``BufferingTLSTransport`` around the
    protocol and offers no way to choose another class; ours only adds methods
    (no state of its own that ``__init__`` would have set, besides ``write``,
    which the buffering class put on the instance), so the protocol object can
    take our class.  Anything else (another reactor's TLS, a future Twisted) is
    left as it is.
    """
    protocol = getattr(transport, "protocol", None)
    if type(protocol) is not BufferingTLSTransport:
        return
    aggregator = getattr(protocol, "_aggregator", None)
    if aggregator is None or getattr(aggregator, "_buffer", None):
        return
    protocol.__class__ = _LeanFromBuffering
    # the instance's write was the aggregator's; the class's writes at once
    vars(protocol).pop("write", None)


class _LeanFromBuffering(LeanTLSProtocol, BufferingTLSTransport):
    """What :func:`lighten` turns a ``BufferingTLSTransport`` into: our methods
    first; its ``loseConnection``/``connectionLost`` still close the (empty)
    aggregator as it expects."""

    def writeSequence(self, sequence: Any) -> None:
        self.write(b"".join(sequence))
