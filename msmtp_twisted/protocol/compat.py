"""Drop-in replacements for ``twisted.mail.smtp``'s sender factories and ``sendmail``.

Code written for Twisted's mail client (Buildbot's MailNotifier, for one)
builds ``ESMTPSenderFactory(...)`` or ``SMTPSenderFactory(...)`` and hands it
to ``reactor.connectTCP``; switching the import to this module is enough::

    from msmtp_twisted.protocol.compat import ESMTPSenderFactory

What changes underneath: our sans-IO client (pipelining, DSN-capable, LMTP,
correct dot-stuffing and CRLF handling, EHLO capabilities kept), one attempt
instead of five retries, and a result Deferred that always fires, also when the
connection drops.  On success the Deferred fires as Twisted's does, with
``(number_of_accepted_recipients, [(address, code, response), ...])``; on
failure with :class:`~msmtp_twisted.smtp.client.SMTPFailure`.

TLS: ``ESMTPSenderFactory`` does STARTTLS when given a ``contextFactory`` or
``requireTransportSecurity=True`` (Twisted's default), and then never sends in
clear: a server without STARTTLS fails the Deferred (Twisted falls back to clear
text when TLS is optional; we do not).  ``contextFactory`` may be an
:class:`msmtp_twisted.tls.options.TLSOptions` (msmtp's checks and messages), the
result of Twisted's ``optionsForClientTLS(hostname)``, or an old-style context
factory.  Without one, the server certificate is verified against the system
trust store (Twisted's own factory verifies nothing); the host name is checked
too when it is known, which ``sendmail()`` knows and a bare factory does not
(pass ``TLSOptions(hostname=...)`` to have it checked).

Authentication arrives with the authentication issue; until then a factory that
would need it fails its Deferred with a clear SMTPFailure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO, Any

from twisted.internet import defer
from twisted.internet.protocol import ClientFactory

from msmtp_twisted import sysexits
from msmtp_twisted.smtp.client import (
    AuthRequest,
    Delivered,
    SendmailRequest,
    SMTPFailure,
    sendmail_session,
)

__all__ = ["ESMTPSenderFactory", "SMTPSenderFactory", "sendmail"]


class _FileBody:
    """A message from a file object, CRLF-converted and dot-stuffed, streamed."""

    def __init__(self, file: IO[bytes] | IO[str]) -> None:
        from msmtp_twisted.message.encoder import DataEncoder

        self._file = file
        self._encoder = DataEncoder(None)
        self._done = False

    @property
    def mailsize(self) -> int:
        return self._encoder.mailsize

    def next_chunk(self) -> bytes | None:
        if self._done:
            return None
        data = self._file.read(65536)
        if isinstance(data, str):
            data = data.encode("utf-8")
        if data:
            return self._encoder.feed(data) or b""
        self._done = True
        return self._encoder.finish() or None


def _as_list(addresses: str | bytes | Sequence[str | bytes]) -> list[str]:
    if isinstance(addresses, (str, bytes)):
        addresses = [addresses]
    return [a.decode() if isinstance(a, bytes) else str(a) for a in addresses]


class SMTPSenderFactory(ClientFactory):
    """Same constructor as ``twisted.mail.smtp.SMTPSenderFactory``."""

    def __init__(
        self,
        fromEmail: str | bytes,
        toEmail: str | bytes | Sequence[str | bytes],
        file: IO[bytes] | IO[str],
        deferred: defer.Deferred[Any],
        retries: int = 5,
        timeout: float | None = None,
    ) -> None:
        self.fromEmail = fromEmail.decode() if isinstance(fromEmail, bytes) else fromEmail
        self.toEmail = _as_list(toEmail)
        self.file = file
        self.result = deferred
        self.timeout = timeout
        self.domain = "localhost"
        self._clock: Any = None
        self._proto: Any = None
        #: the server's name, for the certificate check (set by ``sendmail()``)
        self._tls_hostname: str | None = None

    def _problem(self) -> str | None:
        return None

    def _auth(self, tls: bool) -> AuthRequest | None:
        return None

    def _tls(self) -> Any:
        """None (no TLS), or what to start TLS with: our AccountTLS or a
        foreign connection creator / context factory."""
        return None

    def buildProtocol(self, addr: Any) -> Any:
        from msmtp_twisted.protocol.session import SessionProtocol

        problem: Any = self._problem()
        tls: Any = None
        if problem is None:
            try:
                tls = self._tls()
            except SMTPFailure as failure:  # unreadable TLS files, bad priorities
                problem = failure
        request = SendmailRequest(
            envelope_from=self.fromEmail, recipients=tuple(self.toEmail), domain=self.domain,
            starttls=tls is not None, auth=self._auth(tls is not None),
        )
        clock = self._clock
        if clock is None:
            from twisted.internet import reactor as clock  # application default
        ours = tls is not None and hasattr(tls, "translate")
        if tls is None:
            start_tls = None
        elif ours:
            start_tls = tls.start_tls
        else:
            def start_tls(transport: Any) -> None:
                transport.startTLS(tls)
        proto = SessionProtocol(
            _refuse(problem) if problem else sendmail_session(request),
            clock=clock,
            timeout=self.timeout,
            body=_FileBody(self.file),
            start_tls=start_tls,
            channel_binding=tls.channel_binding if ours else None,
            on_lost=tls.connection_lost if ours else None,
        )
        if ours:
            tls.set_timeout(clock, self.timeout)
            proto.done.addErrback(tls.translate)
        proto.done.addCallbacks(self._delivered, self._failed)
        self._proto = proto
        return proto

    def _delivered(self, delivered: Delivered) -> None:
        reply = delivered.reply
        code = reply.code if reply is not None else 250
        text = reply.text.encode("utf-8", "surrogateescape") if reply is not None else b""
        if not self.result.called:
            self.result.callback((len(self.toEmail), [(a, code, text) for a in self.toEmail]))

    def _failed(self, failure: Any) -> None:
        if not self.result.called:
            self.result.errback(failure)

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        if not self.result.called:
            self.result.errback(reason)


class ESMTPSenderFactory(SMTPSenderFactory):
    """Same constructor as ``twisted.mail.smtp.ESMTPSenderFactory``."""

    def __init__(
        self,
        username: str | bytes | None,
        password: str | bytes | None,
        fromEmail: str | bytes,
        toEmail: str | bytes | Sequence[str | bytes],
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
        self.contextFactory = contextFactory
        self.heloFallback = heloFallback
        self.requireAuthentication = requireAuthentication
        self.requireTransportSecurity = requireTransportSecurity
        if hostname:
            self.domain = hostname.decode() if isinstance(hostname, bytes) else hostname

    def _auth(self, tls: bool) -> AuthRequest | None:
        """Like Twisted's ESMTPSender: authenticate when a user name is given (or
        required); unlike it, choose the mechanism as msmtp does, so a password
        never crosses an unencrypted connection except with SCRAM."""
        if not self.username and not self.requireAuthentication:
            return None

        def text(value: str | bytes | None) -> str | None:
            return value.decode("utf-8") if isinstance(value, bytes) else value

        return AuthRequest(
            user=text(self.username) or None, password=text(self.password),
            host=self._tls_hostname or "localhost", tls=tls,
            optional=not self.requireAuthentication,
        )

    def _tls(self) -> Any:
        if self.contextFactory is None and not self.requireTransportSecurity:
            return None
        from msmtp_twisted.tls.account import AccountTLS
        from msmtp_twisted.tls.options import TLSOptions

        factory = self.contextFactory
        if factory is None:
            return AccountTLS(TLSOptions(hostname=self._tls_hostname))
        if isinstance(factory, TLSOptions):
            return AccountTLS(factory)
        return factory


def _refuse(problem: str | SMTPFailure) -> Any:
    if isinstance(problem, SMTPFailure):
        raise problem
    raise SMTPFailure(sysexits.EX_UNAVAILABLE, problem)
    yield  # pragma: no cover - makes this a generator


def sendmail(
    smtphost: str | bytes,
    from_addr: str | bytes,
    to_addrs: str | bytes | Sequence[str | bytes],
    msg: bytes | str | IO[bytes],
    senderDomainName: str | None = None,
    port: int = 25,
    reactor: Any = None,
    username: str | bytes | None = None,
    password: str | bytes | None = None,
    requireAuthentication: bool = False,
    requireTransportSecurity: bool = False,
) -> defer.Deferred[Any]:
    """Same signature and result as ``twisted.mail.smtp.sendmail``."""
    import io

    if reactor is None:
        from twisted.internet import reactor  # application default, as Twisted does
    if isinstance(msg, str):
        msg = msg.encode("utf-8")
    file = io.BytesIO(msg) if isinstance(msg, bytes) else msg
    d: defer.Deferred[Any] = defer.Deferred()
    factory = ESMTPSenderFactory(
        username, password, from_addr, to_addrs, file, d,
        requireAuthentication=requireAuthentication,
        requireTransportSecurity=requireTransportSecurity,
        hostname=senderDomainName,
    )
    factory._clock = reactor
    host = smtphost.decode() if isinstance(smtphost, bytes) else smtphost
    factory._tls_hostname = host
    reactor.connectTCP(host, port, factory)
    return d
