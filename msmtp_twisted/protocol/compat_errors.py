"""The failures of :mod:`msmtp_twisted.protocol.compat`: Twisted's classes, and ours.

Each class here subclasses the ``twisted.mail.smtp`` class of the same name, so
an errback written for Twisted's sender factories (``f.trap(SMTPDeliveryError)``,
``except SMTPClientError``) matches unchanged, with Twisted's ``code``, ``resp``,
``log``, ``addresses``, ``isFatal`` and ``retry``, and ``str()`` as Twisted
formats it.  Each is also an :class:`~msmtp_twisted.errors.SMTPFailure`
and carries what the ``msmtp`` command would report: ``exitcode`` (sysexits),
``message``, ``cause`` (:class:`~msmtp_twisted.errors.Cause`) and ``reply`` (the
server's :class:`~msmtp_twisted.smtp.reply.Reply`, when there is one).

Which class for which situation follows Twisted 26.10's ``SMTPClient``,
``ESMTPClient`` and ``SenderMixin``; see ``docs/twisted.md``.
"""

from __future__ import annotations

from typing import Any, ClassVar, cast

from twisted.mail import smtp as _twisted

# Twisted's bases, re-exported as they are: an errback may trap them
from twisted.mail.smtp import ESMTPClientError, SMTPClientError, SMTPError

from msmtp_twisted import sysexits
from msmtp_twisted.errors import Cause, SMTPFailure
from msmtp_twisted.smtp.reply import Reply

__all__ = [
    "AUTHDeclinedError",
    "AUTHRequiredError",
    "AuthenticationError",
    "EHLORequiredError",
    "ESMTPClientError",
    "SMTPClientError",
    "SMTPConnectError",
    "SMTPDeliveryError",
    "SMTPError",
    "SMTPProtocolError",
    "SMTPTLSError",
    "SMTPTimeoutError",
    "TLSError",
    "TLSRequiredError",
]


class _CompatError(SMTPFailure):
    """Both a Twisted ``SMTPClientError`` (first base of each subclass) and an
    :class:`SMTPFailure`.  ``isFatal``/``retry`` left as None take the Twisted
    class's defaults; a fatal error closes the connection, another one sends QUIT
    first, as Twisted's ``SMTPClient.sendError`` does."""

    _twisted: ClassVar[type[_twisted.SMTPClientError]]
    code: int
    resp: bytes
    log: bytes | None
    addresses: Any
    isFatal: bool
    retry: bool

    def __init__(
        self,
        code: int,
        resp: bytes | str,
        log: bytes | str | None = None,
        addresses: Any = None,
        isFatal: bool | None = None,
        retry: bool | None = None,
        *,
        exitcode: int = sysexits.EX_UNAVAILABLE,
        message: str | None = None,
        reply: Reply | None = None,
        cause: Cause | None = None,
    ) -> None:
        flags: dict[str, bool] = {}
        if isFatal is not None:
            flags["isFatal"] = isFatal
        if retry is not None:
            flags["retry"] = retry
        self._twisted.__init__(self, code, resp, log, addresses, **flags)  # type: ignore[arg-type]
        if message is None:
            text = self.resp if isinstance(self.resp, bytes) else str(self.resp).encode()
            message = text.decode("utf-8", "replace")
        # not SMTPFailure.__init__: its super().__init__ would reach Twisted's class
        # again through the MRO; args stay Twisted's (code, resp, ...)
        self.exitcode = exitcode
        self.message = message
        self.cause = cause or (Cause.REPLY if reply is not None else Cause.PROTOCOL)
        self.reply = reply
        self.quit = not self.isFatal
        self.lmtp_failures = []
        self.details = []
        self.writing = False
        self.recipients = []

    def __str__(self) -> str:
        # every concrete subclass is also a Twisted SMTPClientError
        return self._twisted.__str__(cast(_twisted.SMTPClientError, self))


class EHLORequiredError(_CompatError, _twisted.EHLORequiredError):
    """EHLO was refused and HELO would not do (authentication or TLS required)."""

    _twisted = _twisted.EHLORequiredError


class AUTHRequiredError(_CompatError, _twisted.AUTHRequiredError):
    """``requireAuthentication`` and no way to authenticate (no password, the
    server offers no AUTH, or no method both sides accept)."""

    _twisted = _twisted.AUTHRequiredError


class TLSRequiredError(_CompatError, _twisted.TLSRequiredError):
    """``requireTransportSecurity`` and no STARTTLS (the server offers none, or
    the factory has neither ``contextFactory`` nor ``hostname`` to start it with)."""

    _twisted = _twisted.TLSRequiredError


class AUTHDeclinedError(_CompatError, _twisted.AUTHDeclinedError):
    """The server refused the credentials."""

    _twisted = _twisted.AUTHDeclinedError


class AuthenticationError(_CompatError, _twisted.AuthenticationError):
    """Authentication broke off: a challenge that cannot be answered, a server
    that cannot prove it knows the password."""

    _twisted = _twisted.AuthenticationError


class SMTPTLSError(_CompatError, _twisted.TLSError):
    """The server refused STARTTLS."""

    _twisted = _twisted.TLSError


#: ``twisted.mail.smtp`` calls its ``SMTPTLSError`` ``TLSError``.
TLSError = SMTPTLSError


class SMTPConnectError(_CompatError, _twisted.SMTPConnectError):
    """No connection, a refusing greeting, or a connection that ended before the
    server's verdict on the mail (a failed TLS handshake or certificate check too)."""

    _twisted = _twisted.SMTPConnectError


class SMTPTimeoutError(_CompatError, _twisted.SMTPTimeoutError):
    """The server did not answer within the factory's ``timeout``."""

    _twisted = _twisted.SMTPTimeoutError


class SMTPProtocolError(_CompatError, _twisted.SMTPProtocolError):
    """The server's bytes are not SMTP."""

    _twisted = _twisted.SMTPProtocolError


class SMTPDeliveryError(_CompatError, _twisted.SMTPDeliveryError):
    """The server refused the sender, every recipient, the data or the mail."""

    _twisted = _twisted.SMTPDeliveryError
