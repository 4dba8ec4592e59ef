"""Drop-in replacements for ``twisted.mail.smtp``'s sender factories and ``sendmail``.

Code written for Twisted's mail client (Buildbot's ``MailNotifier``, for one)
builds ``ESMTPSenderFactory(...)`` or ``SMTPSenderFactory(...)`` and hands it
to ``reactor.connectTCP`` (or ``connectSSL``), or calls ``sendmail(...)``;
switching the import is enough::

    from msmtp_twisted.protocol.compat import ESMTPSenderFactory, sendmail

Same constructors, same attributes (``domain``, ``currentProtocol``,
``sendFinished``, ``retries``, ...), same results, same decisions as Twisted
26.10 (see ``docs/twisted.md`` for the whole table):

- ``hostname=`` is the name the server certificate is checked against, exactly
  as in Twisted: without a ``contextFactory``, STARTTLS uses Twisted's own
  ``optionsForClientTLS(hostname)`` (the system trust store and
  ``service_identity``'s name check).  A factory with neither ``contextFactory``
  nor ``hostname`` has nothing to start TLS with: with
  ``requireTransportSecurity=True`` (the default) it fails with
  :class:`TLSRequiredError` before any password or mail is sent, as Twisted's
  does; without it, it sends in clear, as Twisted's does.  ``contextFactory`` may
  also be our :class:`msmtp_twisted.tls.options.TLSOptions` (msmtp's checks).  The
  EHLO/HELO name is ``factory.domain`` (Twisted's default: the host's FQDN).
- AUTH runs when a password is given and the server offers AUTH; the method is
  chosen as ``msmtp`` chooses it (SCRAM, ..., PLAIN and LOGIN only over TLS), so
  unlike Twisted's a password never crosses a connection without TLS in clear.
- Every recipient is tried; the mail goes to those the server accepts; the
  Deferred fires with ``(number_accepted, [(address, code, response), ...])``
  for every recipient, refused ones included, and fails with
  :class:`SMTPDeliveryError` only when no recipient (or the sender, the data,
  the mail) was accepted.
- Failures are subclasses of Twisted's (``SMTPClientError`` family, see
  :mod:`msmtp_twisted.protocol.compat_errors`) that also carry ``exitcode`` and
  ``message`` as the ``msmtp`` command reports them.
- ``timeout`` is Twisted's: seconds the server may stay silent (reset by each
  reply and each piece of the mail sent), None for ever.  ``sendmail()`` has no
  such argument in Twisted; ours takes ``timeout=`` and defaults to
  :data:`DEFAULT_TIMEOUT`.
- ``retries`` counts reconnections as in Twisted (after a connection failure, a
  lost connection, a timeout, a 4xx to the greeting, STARTTLS or AUTH), but a
  mail is never sent twice: only while the server cannot have the mail, i.e.
  before the final dot; after it a failure is reported as it is.  Refusals of
  the sender, the recipients or the mail are not retried (nor are they by
  Twisted).
- ``d.cancel()`` (on ``sendmail()``'s Deferred or on the one given to a factory)
  before the final dot closes the connection (or stops connecting) at once and
  the server has no mail.  After the final dot the server has the whole mail and
  its verdict stands: the connection is not cut, the Deferred fails with
  ``CancelledError`` (a Deferred must), and the verdict is logged when it comes.

Underneath: our sans-IO client (pipelining, correct dot-stuffing and CRLF
handling; the conversation is :mod:`~msmtp_twisted.protocol.compat_session`)
driven by a :class:`~msmtp_twisted.protocol.session.SessionProtocol` wired to
TLS by the delivery layer (:func:`~msmtp_twisted.sending.connection.tls_wiring`).
Importing this module imports ``twisted.mail.smtp`` (for its exceptions), which
installs the default reactor, as importing Twisted's module does.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Generator, Iterable
from typing import IO, Any

from twisted.internet import defer, error
from twisted.internet import reactor as _global_reactor
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import ClientFactory, connectionDone
from twisted.logger import Logger
from twisted.mail import smtp as _twisted
from twisted.mail.smtp import ESMTPClientError, SMTPClientError, SMTPError
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from twisted.python.util import LineLog

from msmtp_twisted import sysexits
from msmtp_twisted.errors import Cause, SMTPFailure, TLSFailure
from msmtp_twisted.protocol.compat_errors import (
    AUTHDeclinedError,
    AuthenticationError,
    AUTHRequiredError,
    EHLORequiredError,
    SMTPConnectError,
    SMTPDeliveryError,
    SMTPProtocolError,
    SMTPTimeoutError,
    SMTPTLSError,
    TLSError,
    TLSRequiredError,
    _CompatError,
)
from msmtp_twisted.protocol.compat_session import (
    SenderSettings,
    SenderState,
    sender_session,
)
from msmtp_twisted.protocol.session import SessionProtocol
from msmtp_twisted.sending.connection import tls_wiring
from msmtp_twisted.smtp.reply import Reply
from msmtp_twisted.tls.options import TLSOptions

__all__ = [
    "AUTHDeclinedError",
    "AUTHRequiredError",
    "AuthenticationError",
    "DEFAULT_TIMEOUT",
    "EHLORequiredError",
    "ESMTPClientError",
    "ESMTPSenderFactory",
    "SMTPClientError",
    "SMTPConnectError",
    "SMTPDeliveryError",
    "SMTPError",
    "SMTPProtocolError",
    "SMTPSenderFactory",
    "SMTPTLSError",
    "SMTPTimeoutError",
    "SenderProtocol",
    "TLSError",
    "TLSRequiredError",
    "sendmail",
]

#: ``sendmail()``'s ``timeout``: how long the server may stay silent.  RFC 5321
#: (4.5.3.2) lets a server take up to 10 minutes to answer the final dot.
DEFAULT_TIMEOUT = 600.0

_log = Logger()
_SUCCESS = range(200, 300)


class _FileBody:
    """The factory's file, CRLF-converted and dot-stuffed, read as it is sent.

    One read ahead, so the chunk that reaches the end of the file finishes the
    mail: the final dot follows it at once, as it does with Twisted's FileSender.
    Each chunk resets the protocol's timeout, as Twisted's ``transformChunk`` does.
    """

    CHUNK = 65536

    def __init__(self, file: IO[bytes] | IO[str], progress: Any) -> None:
        from msmtp_twisted.message.encoder import DataEncoder

        self._file = file
        self._progress = progress
        self._encoder = DataEncoder(None)
        self._ahead: bytes | None = None
        self._done = False

    @property
    def mailsize(self) -> int:
        return self._encoder.mailsize

    def _read(self) -> bytes:
        data = self._file.read(self.CHUNK)
        if isinstance(data, str):
            data = data.encode("utf-8")
        return data or b""

    def next_chunk(self) -> bytes | None:
        self._progress()
        out = b""
        while not out and not self._done:
            data = self._ahead if self._ahead is not None else self._read()
            self._ahead = self._read() if data else b""
            out = self._encoder.feed(data) if data else b""
            if not self._ahead:
                self._done = True
                out += self._encoder.finish()
        return out or None


class _ProtocolClock:
    """The clock SessionProtocol arms its timers on: the protocol's ``callLater``,
    which tests replace with a ``task.Clock``'s (as with Twisted's TimeoutMixin)."""

    def __init__(self, proto: SenderProtocol) -> None:
        self._proto = proto

    def callLater(self, delay: float, f: Any, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs:
            return self._proto.callLater(delay, lambda: f(*args, **kwargs))
        return self._proto.callLater(delay, f)


class SenderProtocol(SessionProtocol, TimeoutMixin):
    """The protocol the factories build: one mail, Twisted's rules, our session.

    Twisted's ``SenderMixin`` hooks are here too: :meth:`sentMail` (the outcome of
    the mail transaction) and :meth:`sendError` (anything else); ``log`` is the
    last lines of the conversation (AUTH exchanges masked, the mail left out)."""

    #: as on Twisted's ``ESMTPClient``; ``ESMTPSenderFactory.buildProtocol`` sets them
    heloFallback = False
    requireAuthentication = False
    requireTransportSecurity = False

    def __init__(self, factory: SMTPSenderFactory) -> None:
        self.factory = factory
        self.log = LineLog(factory.nEmails * 2 + 2)
        self.state = SenderState()
        self._failureReason: Failure | None = None
        self._reported = False
        self._cancelled_late = False
        self._msmtp: tuple[int, str, Reply | None] | None = None
        self._final: tuple[int, bytes] | None = None  # the reply to the final dot
        tls, self._tls_problem = factory._tls_starter()
        self._tls = tls
        clock = _ProtocolClock(self)
        # the session/TLS wiring of every sender (our AccountTLS, or startTLS with
        # a foreign context); no timeouts there: TimeoutMixin's, as Twisted's
        wiring, finish = tls_wiring(tls, clock=clock, timeout=None, trace=self._trace_line)
        super().__init__(
            self._conversation(), clock=clock,  # type: ignore[arg-type]
            timeout=None, body=_FileBody(factory.file, self.resetTimeout), **wiring)
        finish(self)
        self.done.addBoth(self._session_done)

    # -- the conversation ---------------------------------------------------------

    def _conversation(self) -> Generator[Any, Any, None]:
        """The conversation; a failure is reported the moment it is known (before
        QUIT), as Twisted's ``sendError`` reports it."""
        try:
            if self._tls_problem is not None:
                raise self._tls_problem
            settings = self.factory._settings(self, self._tls is not None)
            yield from sender_session(settings, self.state, self._sent_mail)
        except SMTPFailure as failure:
            if not isinstance(failure, _CompatError):
                failure = SMTPProtocolError(-1, failure.message.encode(), self.log.str(),
                                            exitcode=failure.exitcode, message=failure.message,
                                            cause=failure.cause)
            elif failure.log is None:
                failure.log = self.log.str()
            self._report(failure)
            raise failure from None

    def connectionMade(self) -> None:
        self.state.tls = ISSLTransport.providedBy(self.transport)
        self.setTimeout(self.factory.timeout)
        self.factory._log_connect(self)
        super().connectionMade()

    def dataReceived(self, data: bytes) -> None:
        self.resetTimeout()
        super().dataReceived(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._failureReason = reason
        self.setTimeout(None)
        super().connectionLost(reason)

    def _trace_line(self, direction: str, data: bytes) -> None:
        if direction == "-->":
            if self.state.in_body:
                return
            for line in data.split(b"\r\n")[:-1]:
                self.log.append(b">>> " + line)
        else:
            self.log.append(b"<<< " + data.rstrip(b"\r\n"))

    def _abort(self) -> None:
        transport: Any = self.transport
        if transport is None:
            return
        abort = getattr(transport, "abortConnection", None)
        (abort or transport.loseConnection)()

    # -- outcomes ------------------------------------------------------------------

    def _sent_mail(self, code: int, resp: bytes, num_ok: int,
                   addresses: list[tuple[bytes, int, bytes]],
                   msmtp: tuple[int, str, Reply | None] | None = None) -> None:
        self._msmtp = msmtp
        self.sentMail(code, resp, num_ok, addresses, self.log)

    def sentMail(self, code: int, resp: bytes, numOk: int, addresses: Any, log: Any) -> None:
        """Twisted's ``SenderMixin.sentMail``: the result of the mail transaction."""
        self._reported = True
        self._final = (code, resp)
        if code in _SUCCESS:
            self.factory._succeeded((numOk, addresses), self)
            return
        errlog = [addr + b": " + b"%03d" % acode + b" " + aresp
                  for addr, acode, aresp in addresses if acode not in _SUCCESS]
        errlog.append(log.str())
        exitcode, message, reply = self._msmtp or (
            sysexits.EX_UNAVAILABLE if 400 <= code < 500 else sysexits.EX_DATAERR,
            "the server did not accept the mail", None)
        self.factory._failed(SMTPDeliveryError(
            code, resp, b"\n".join(errlog), addresses, exitcode=exitcode, message=message,
            reply=reply, cause=Cause.REPLY), self)

    def sendError(self, exc: _twisted.SMTPClientError) -> None:
        """Twisted's ``sendError``: report ``exc`` and drop the connection."""
        self._report(exc)
        self._abort()

    def _report(self, exc: Any) -> None:
        if self._reported:
            return
        self._reported = True
        retryable = (exc.retry or 400 <= exc.code < 500) and not self.state.final_dot_sent
        self.factory._attempt_failed(exc, retryable, self)

    def timeoutConnection(self) -> None:
        self.sendError(SMTPTimeoutError(
            -1, b"Timeout waiting for SMTP server response", self.log.str(),
            exitcode=sysexits.EX_IOERR, message="network read error: the operation timed out",
            cause=Cause.TIMEOUT))

    def _session_done(self, result: Any) -> None:
        """The session ended; a failure not reported yet came from the connection
        (its ``cause`` says how), or from our TLS layer."""
        if not isinstance(result, Failure) or self._reported:
            return
        value = result.value
        reason = self._failureReason
        exitcode = getattr(value, "exitcode", sysexits.EX_IOERR)
        message = getattr(value, "message", str(value))
        cause = getattr(value, "cause", Cause.LOCAL)
        if cause in (Cause.PROTOCOL, Cause.LOCAL):
            # what the server sent is not SMTP (or too much), or the mail's file failed
            self._report(SMTPProtocolError(-1, message.encode(), self.log.str(),
                                           exitcode=exitcode, message=message, cause=cause))
            return
        if cause is Cause.TIMEOUT:
            self._report(SMTPTimeoutError(-1, b"Timeout waiting for SMTP server response",
                                          self.log.str(), exitcode=exitcode, message=message,
                                          cause=cause))
            return
        if isinstance(value, TLSFailure) or reason is None:
            text = message
        else:
            text = str(reason.value)
            tls = _foreign_tls_failure(reason.value)
            if tls is not None:
                exitcode, message, cause = tls
        # the connection ended before the verdict; Twisted's words for it are
        # SMTPSenderFactory._processConnectionError's
        exn = SMTPConnectError(-1, "Unable to connect to SMTP server: " + text,
                               exitcode=exitcode, message=message, cause=cause)
        exn.__cause__ = reason.value if reason is not None else value
        self._report(exn)

    # -- cancellation -----------------------------------------------------------------

    def _cancel(self) -> None:
        if self._reported:
            return
        if self.state.final_dot_sent:
            # the server has the whole mail: cutting the connection now would not
            # take it back, only hide its verdict
            self._cancelled_late = True
            if self.timeOut is None:
                self.setTimeout(DEFAULT_TIMEOUT)
            _log.info("SMTP send cancelled after the final dot: waiting for the "
                      "server's verdict")
            return
        self.setTimeout(None)
        self._abort()


def _foreign_tls_failure(value: BaseException | None) -> tuple[int, str, Cause] | None:
    """msmtp's exit code, message and cause for a TLS failure of a context not ours
    (Twisted's ``optionsForClientTLS``, an OpenSSL context factory): a name check
    that failed (``service_identity``) or an OpenSSL handshake error; by type."""
    identity = sys.modules.get("service_identity")
    if identity is not None and isinstance(value, identity.VerificationError):
        return (sysexits.EX_UNAVAILABLE, f"TLS certificate verification failed: {value}",
                Cause.TLS_CERTIFICATE)
    openssl = sys.modules.get("OpenSSL.SSL")
    if openssl is not None and isinstance(value, openssl.Error):
        reasons = [str(part[2]) for part in (value.args[0] if value.args else ())
                   if isinstance(part, tuple) and len(part) == 3]
        if "certificate verify failed" in reasons:
            return (sysexits.EX_UNAVAILABLE,
                    "TLS certificate verification failed: certificate verify failed",
                    Cause.TLS_CERTIFICATE)
        return (sysexits.EX_PROTOCOL, "TLS handshake failed: " + (", ".join(reasons)
                                                                   or str(value)),
                Cause.TLS_HANDSHAKE)
    return None


def _text(value: str | bytes | None) -> str | None:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _recipients(toEmail: str | bytes | Iterable[str | bytes]) -> list[bytes]:
    """Twisted's conversion: one address or several, each as ASCII bytes."""
    if isinstance(toEmail, str):
        return [toEmail.encode("ascii")]
    if isinstance(toEmail, bytes):
        return [toEmail]
    return [a if isinstance(a, bytes) else a.encode("ascii") for a in toEmail]


def _wire(address: str | bytes) -> str:
    """The address between ``<>``, as Twisted's ``quoteaddr`` finds it."""
    quoted: str = _twisted.quoteaddr(address)[1:-1].decode("ascii")
    if any(c in quoted for c in "\r\n\0"):
        raise ValueError(f"invalid mail address {address!r}")
    return quoted


class SMTPSenderFactory(ClientFactory):
    """``twisted.mail.smtp.SMTPSenderFactory``: HELO, no TLS, no AUTH."""

    #: the HELO/EHLO name (Twisted's default: this host's fully qualified name)
    domain: bytes | str = _twisted.DNSNAME
    protocol = SenderProtocol
    #: no "Starting factory" lines for each mail
    noisy = False

    def __init__(
        self,
        fromEmail: str | bytes,
        toEmail: str | bytes | Iterable[str | bytes],
        file: IO[bytes] | IO[str],
        deferred: defer.Deferred[Any],
        retries: int = 5,
        timeout: float | None = None,
    ) -> None:
        assert isinstance(retries, int)
        self.toEmail = _recipients(toEmail)
        self.fromEmail = _twisted.Address(fromEmail)
        self.nEmails = len(self.toEmail)
        self._wire_to = tuple(_wire(a) for a in self.toEmail)
        self._wire_from = _wire(str(self.fromEmail))
        self.file = file
        self.result = deferred
        self.sendFinished = False
        self.currentProtocol: SenderProtocol | None = None
        #: reconnections left, counted up to 0 as Twisted counts them
        self.retries = -retries
        self.timeout = timeout
        self._connector: Any = None
        #: the reactor sendmail() was given: its clock for the timeouts
        self._reactor: Any = None
        self._verdict: tuple[Any, bool] | None = None
        self._late_protocol: SenderProtocol | None = None
        deferred.addErrback(self._watch_cancel)

    # -- what the protocol asks ---------------------------------------------------------

    def _identity(self) -> str:
        domain = self.domain
        name = domain.decode("utf-8") if isinstance(domain, bytes) else str(domain)
        if any(c in name for c in "\r\n\0 "):
            raise ValueError(f"invalid domain {domain!r}")
        return name

    def _settings(self, proto: SenderProtocol, can_tls: bool) -> SenderSettings:
        return SenderSettings(
            identity=self._identity(), sender=self._wire_from,
            recipients=tuple(zip(self.toEmail, self._wire_to, strict=True)),
            esmtp=False,
        )

    def _tls_starter(self) -> tuple[Any, SMTPFailure | None]:
        return None, None

    def buildProtocol(self, addr: Any) -> SenderProtocol:
        self._identity()  # a bad domain fails here, as Twisted's SMTPClient fails on it
        p = self.protocol(self)
        p.factory = self
        call_later = getattr(self._reactor, "callLater", None)
        if call_later is not None:
            p.callLater = call_later  # type: ignore[method-assign]
        self.currentProtocol = p
        return p

    def startedConnecting(self, connector: Any) -> None:
        self._connector = connector

    # -- outcomes -------------------------------------------------------------------------

    def _succeeded(self, result: Any, proto: SenderProtocol) -> None:
        if self.sendFinished:
            self._late(proto, f"accepted by the server: {result!r}")
            return
        self.sendFinished = True
        self._log_outcome(proto, result=result)
        self.result.callback(result)

    def _failed(self, exc: Any, proto: SenderProtocol | None = None) -> None:
        if self.sendFinished:
            self._late(proto, f"refused: {exc}")
            return
        self.sendFinished = True
        self._log_outcome(proto, failure=exc)
        self.result.errback(Failure(exc))

    # -- log events (msmtp_twisted.sending.events; never the password or the mail) ---------

    def _server_name(self) -> str | None:
        name = getattr(self, "_hostname", None) or getattr(self._connector, "host", None)
        if isinstance(name, bytes):
            return name.decode("utf-8", "replace")
        return name if isinstance(name, str) else None

    def _log_connect(self, proto: SenderProtocol) -> None:
        from msmtp_twisted.sending.events import log_connect

        transport: Any = proto.transport
        peer = transport.getPeer() if transport is not None else None
        address = getattr(peer, "host", None)
        tls = "tls" if proto.state.tls else ("starttls" if proto._tls is not None else "off")
        log_connect(account=None, host=self._server_name() or address,
                    port=getattr(peer, "port", None),
                    address=address if isinstance(address, str) else None, tls=tls)

    def _log_outcome(self, proto: SenderProtocol | None, *, result: Any = None,
                     failure: BaseException | None = None) -> None:
        from msmtp_twisted.sending.events import log_delivered, log_failed

        common: dict[str, Any] = {"account": None, "host": self._server_name(),
                                  "sender": self._wire_from, "recipients": list(self._wire_to)}
        if failure is not None:
            log_failed(failure=failure, **common)
            return
        final = getattr(proto, "_final", None)
        log_delivered(size=None, reply_code=final[0] if final else None,
                      reply=final[1].decode("utf-8", "replace") if final else None,
                      replies=[[address.decode("utf-8", "replace") if isinstance(address, bytes)
                                else str(address), code] for address, code, _ in result[1]],
                      **common)

    def _late(self, proto: SenderProtocol | None, what: str) -> None:
        if proto is not None and proto._cancelled_late:
            _log.info("SMTP send cancelled after the final dot, then {what}", what=what)

    def _attempt_failed(self, exc: Any, retryable: bool, proto: SenderProtocol) -> None:
        """A failed attempt: try again on a new connection (once this one is gone)
        when the server cannot have the mail and retries are left, else fail."""
        if self.sendFinished:
            self._late(proto, f"failed: {exc}")
            return
        if retryable and self.retries < 0:
            self._verdict = (exc, True)
            return
        self._failed(exc, proto)

    def _rewind(self) -> bool:
        try:
            self.file.seek(0, 0)
        except (AttributeError, OSError, ValueError):
            return False
        return True

    def clientConnectionFailed(self, connector: Any, err: Failure) -> None:
        self._connection_ended(connector, err)

    def clientConnectionLost(self, connector: Any, err: Failure) -> None:
        self._connection_ended(connector, err)

    def _connection_ended(self, connector: Any, err: Failure) -> None:
        self.currentProtocol = None
        if self.sendFinished:
            return
        verdict, self._verdict = self._verdict, None
        if (verdict is None or verdict[1]) and self.retries < 0 and self._rewind():
            _log.info("SMTP client retrying server. Retry: {retry}", retry=-self.retries)
            self.retries += 1
            connector.connect()
            return
        self._failed(verdict[0] if verdict is not None else _connect_error(err))

    # -- cancellation -----------------------------------------------------------------------

    def _watch_cancel(self, failure: Failure) -> Failure:
        """The Deferred given to the factory was cancelled (it fired with
        CancelledError before we fired it): stop."""
        if failure.check(defer.CancelledError) and not self.sendFinished:
            self._cancel()
        return failure

    def _cancel(self) -> None:
        if self.sendFinished:
            return
        self.sendFinished = True
        proto = self.currentProtocol
        if proto is not None and proto.transport is not None and proto.connected:
            proto._cancel()
        elif self._connector is not None:
            self._connector.disconnect()


def _connect_error(err: Failure) -> SMTPConnectError:
    value = err.value
    dns = isinstance(value, error.DNSLookupError)
    if dns:
        cause = Cause.DNS
    elif isinstance(value, error.ConnectionRefusedError):
        cause = Cause.REFUSED
    elif isinstance(value, (error.TimeoutError, error.TCPTimedOutError)):
        cause = Cause.TIMEOUT
    else:
        cause = Cause.UNREACHABLE
    exn = SMTPConnectError(
        -1, "Unable to connect to SMTP server: " + str(value),
        exitcode=sysexits.EX_NOHOST if dns else sysexits.EX_TEMPFAIL,
        message=f"cannot connect to the server: {value}", cause=cause,
    )
    exn.__cause__ = value
    return exn


class ESMTPSenderFactory(SMTPSenderFactory):
    """``twisted.mail.smtp.ESMTPSenderFactory``: EHLO, STARTTLS, AUTH."""

    def __init__(
        self,
        username: str | bytes | None,
        password: str | bytes | None,
        fromEmail: str | bytes,
        toEmail: str | bytes | Iterable[str | bytes],
        file: IO[bytes] | IO[str],
        deferred: defer.Deferred[Any],
        retries: int = 5,
        timeout: float | None = None,
        contextFactory: Any = None,
        heloFallback: bool = False,
        requireAuthentication: bool = True,
        requireTransportSecurity: bool = True,
        hostname: str | bytes | None = None,
    ) -> None:
        super().__init__(fromEmail, toEmail, file, deferred, retries, timeout)
        self.username = username
        self.password = password
        self._contextFactory = contextFactory
        self._heloFallback = heloFallback
        self._requireAuthentication = requireAuthentication
        self._requireTransportSecurity = requireTransportSecurity
        self._hostname = hostname
        self._context: Any = None
        self._tls_context: Any = None  # a TLSOptions' files, read once per factory

    def buildProtocol(self, addr: Any) -> SenderProtocol:
        p = super().buildProtocol(addr)
        p.heloFallback = self._heloFallback
        p.requireAuthentication = self._requireAuthentication
        p.requireTransportSecurity = self._requireTransportSecurity
        return p

    def _settings(self, proto: SenderProtocol, can_tls: bool) -> SenderSettings:
        return SenderSettings(
            identity=self._identity(), sender=self._wire_from,
            recipients=tuple(zip(self.toEmail, self._wire_to, strict=True)),
            esmtp=True, helo_fallback=bool(proto.heloFallback),
            require_authentication=bool(proto.requireAuthentication),
            require_transport_security=bool(proto.requireTransportSecurity),
            can_tls=can_tls, username=_text(self.username), password=_text(self.password),
            auth_host=_text(self._hostname) or "localhost",
        )

    def _tls_starter(self) -> tuple[Any, SMTPFailure | None]:
        """What STARTTLS starts TLS with, as Twisted's ``ESMTPSender`` chooses it:
        the ``contextFactory``, else ``optionsForClientTLS(hostname)``, else none.
        Made once per factory (the system trust store is read once)."""
        if self._context is None:
            context = self._contextFactory
            if context is None and self._hostname is not None:
                from twisted.internet.ssl import optionsForClientTLS

                context = optionsForClientTLS(_tls_name(self._hostname))
            self._context = context
        if self._context is None:
            return None, None
        if isinstance(self._context, TLSOptions):
            from msmtp_twisted.tls.account import AccountTLS
            from msmtp_twisted.tls.context import TLSContext

            try:
                if self._tls_context is None:
                    self._tls_context = TLSContext(self._context)
                # a new one per connection: it keeps the connection's TLS state
                return AccountTLS(self._context, context=self._tls_context), None
            except SMTPFailure as failure:  # unreadable files, bad priorities
                return None, SMTPTLSError(-1, failure.message.encode(), isFatal=True,
                                          exitcode=failure.exitcode, message=failure.message,
                                          cause=failure.cause)
        return self._context, None


def _tls_name(hostname: str | bytes) -> str:
    if isinstance(hostname, str):
        return hostname
    try:
        from twisted.internet._idna import _idnaText

        return _idnaText(hostname)
    except ImportError:  # pragma: no cover - Twisted moved it
        return hostname.decode("idna")


def sendmail(
    smtphost: str | bytes,
    from_addr: str | bytes,
    to_addrs: str | bytes | Iterable[str | bytes],
    msg: Any,
    senderDomainName: str | bytes | None = None,
    port: int = 25,
    reactor: Any = _global_reactor,
    username: str | bytes | None = None,
    password: str | bytes | None = None,
    requireAuthentication: bool = False,
    requireTransportSecurity: bool = False,
    *,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> defer.Deferred[Any]:
    """``twisted.mail.smtp.sendmail``: same arguments, same result.

    ``msg`` is a file (read from where it is) or anything ``bytes()`` takes (a
    ``str`` is encoded as UTF-8).  STARTTLS is used when the server offers it,
    checked against ``smtphost``; required with ``requireTransportSecurity``.
    The Deferred fires with ``(number_accepted, [(address, code, response), ...])``
    and can be cancelled (see the module docstring for what that means after the
    final dot).  ``timeout`` (ours; Twisted's ``sendmail`` has none): seconds the
    server may stay silent, None for ever.
    """
    if not hasattr(msg, "read"):
        msg = io.BytesIO(msg.encode("utf-8") if isinstance(msg, str) else bytes(msg))

    def cancel(d: defer.Deferred[Any]) -> None:
        factory._cancel()

    d: defer.Deferred[Any] = defer.Deferred(cancel)
    if isinstance(username, str):
        username = username.encode("utf-8")
    if isinstance(password, str):
        password = password.encode("utf-8")
    factory = ESMTPSenderFactory(
        username, password, from_addr, to_addrs, msg, d, timeout=timeout,
        heloFallback=True, requireAuthentication=requireAuthentication,
        requireTransportSecurity=requireTransportSecurity, hostname=_tls_name(smtphost),
    )
    if senderDomainName is not None:
        factory.domain = (senderDomainName if isinstance(senderDomainName, bytes)
                          else senderDomainName.encode("utf-8"))
    factory._reactor = reactor
    connector = reactor.connectTCP(smtphost, port, factory)
    factory._connector = connector
    return d
