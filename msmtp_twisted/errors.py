"""The failures msmtp-twisted reports, for programs and for people.

Every failure is a :class:`MsmtpError`: ``message`` is msmtp's text (what the
``msmtp`` command prints), ``exitcode`` the sysexits code msmtp exits with, and
``cause`` a :class:`Cause` that says what happened in terms a program can act
on (retry later, reconnect, give up) without reading the message::

    from msmtp_twisted.errors import Cause, MsmtpError, SMTPFailure

    def failed(failure):
        error = failure.trap(MsmtpError) and failure.value
        if error.cause in (Cause.CLOSED, Cause.RESET, Cause.TIMEOUT):
            ...  # the connection broke: worth another try
        elif isinstance(error, SMTPFailure) and error.reply is not None:
            ...  # the server said no: error.reply.code, error.reply.lines

The cause is set where the failure is created (the session, the endpoint, the
TLS layer), never recognised afterwards from the text.

This is THE module of public exceptions: every exception a program using
:mod:`msmtp_twisted.api`, :mod:`msmtp_twisted.protocol.compat`,
:mod:`msmtp_twisted.buildbot` or :mod:`msmtp_twisted.config.account` can catch
is defined here or re-exported from here (the modules that raise them
re-export them too, under the same name).

Sending (:func:`msmtp_twisted.api.send_mail`, the ``msmtp_twisted.sending``
layer):

- :class:`MsmtpError`: the base of all below but :class:`AccountError`.
- :class:`ConnectFailure`: no connection (name lookup, refused, unreachable,
  unix socket).
- :class:`SOCKS5Error`: the SOCKS5 proxy refused or broke its protocol.
- :class:`SMTPFailure`: the SMTP/LMTP session failed (a refusal with the
  server's ``reply``, a missing capability, a broken connection, a protocol
  violation, AUTH).  ``lmtp_failures`` lists :class:`LMTPRecipientFailure`.
- :class:`TLSFailure`: TLS could not be set up or the certificate was
  refused (a kind of :class:`SMTPFailure`, as it ends the session).
- :class:`ReplyError`: bytes that are not an SMTP reply, from
  :class:`~msmtp_twisted.smtp.reply.ReplyReader` used on its own (a session
  reports them as an :class:`SMTPFailure`).

Configuration (:func:`msmtp_twisted.api.load_account`, ``MsmtpMailNotifier``):

- :class:`ConfigError`: a configuration file could not be read or parsed.
- :class:`SelectError`: no usable account (incomplete, failing ``passwordeval``).
- :class:`AccountNotFound`: no account of that name.
- :class:`AccountError`: :meth:`Account.check
  <msmtp_twisted.config.account.Account.check>` found the account unusable (a
  ``ValueError``, with msmtp's text; :func:`~msmtp_twisted.api.load_account`
  turns it into a :class:`SelectError`).

The ``twisted.mail.smtp`` drop-in (:mod:`msmtp_twisted.protocol.compat`):
:class:`SMTPDeliveryError`, :class:`SMTPConnectError`,
:class:`SMTPTimeoutError`, :class:`SMTPProtocolError`, :class:`SMTPTLSError`
(also as :data:`TLSError`), :class:`EHLORequiredError`,
:class:`AUTHRequiredError`, :class:`TLSRequiredError`,
:class:`AUTHDeclinedError`, :class:`AuthenticationError`: each subclasses
Twisted's class of the same name *and* :class:`SMTPFailure`; Twisted's own bases
:class:`SMTPClientError`, :class:`ESMTPClientError` and :class:`SMTPError` are
re-exported as they are (``twisted.mail.smtp``'s classes), for errbacks that
trap those.  They are defined in :mod:`msmtp_twisted.protocol.compat_errors`
(they need Twisted) and loaded from there the first time one is asked for here,
so importing this module still imports no Twisted.

Pure: no Twisted, nothing loaded at import time.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from msmtp_twisted import sysexits

if TYPE_CHECKING:
    # re-exported (``__all__``), loaded at run time by __getattr__ below
    from msmtp_twisted.protocol.compat_errors import (
        AUTHDeclinedError,
        AuthenticationError,
        AUTHRequiredError,
        EHLORequiredError,
        ESMTPClientError,
        SMTPClientError,
        SMTPConnectError,
        SMTPDeliveryError,
        SMTPError,
        SMTPProtocolError,
        SMTPTimeoutError,
        SMTPTLSError,
        TLSError,
        TLSRequiredError,
    )
    from msmtp_twisted.smtp.reply import Reply

__all__ = [
    "AUTHDeclinedError",
    "AUTHRequiredError",
    "AccountError",
    "AccountNotFound",
    "AuthenticationError",
    "Cause",
    "ConfigError",
    "ConnectFailure",
    "EHLORequiredError",
    "ESMTPClientError",
    "LMTPRecipientFailure",
    "MsmtpError",
    "ReplyError",
    "SMTPClientError",
    "SMTPConnectError",
    "SMTPDeliveryError",
    "SMTPError",
    "SMTPFailure",
    "SMTPProtocolError",
    "SMTPTLSError",
    "SMTPTimeoutError",
    "SOCKS5Error",
    "SelectError",
    "TLSError",
    "TLSFailure",
    "TLSRequiredError",
]

#: the classes of the ``twisted.mail.smtp`` drop-in, loaded on first use
_COMPAT_ERRORS = frozenset({
    "AUTHDeclinedError", "AUTHRequiredError", "AuthenticationError", "EHLORequiredError",
    "ESMTPClientError", "SMTPClientError", "SMTPConnectError", "SMTPDeliveryError",
    "SMTPError", "SMTPProtocolError", "SMTPTLSError", "SMTPTimeoutError", "TLSError",
    "TLSRequiredError",
})


if not TYPE_CHECKING:
    # hidden from type checkers: a module __getattr__ would make every name exist

    def __getattr__(name: str) -> object:
        # PEP 562: the drop-in's classes need Twisted; load them only when asked for
        if name in _COMPAT_ERRORS:
            from msmtp_twisted.protocol import compat_errors

            return getattr(compat_errors, name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Cause(enum.Enum):
    """What made a send (or a connection) fail."""

    #: the server refused with a reply (:attr:`SMTPFailure.reply`)
    REPLY = "reply"
    #: the server lacks something the account needs: STARTTLS, DSN, AUTH, ETRN
    UNSUPPORTED = "unsupported"
    #: authentication could not be run: no user name or password, no usable
    #: mechanism, a SASL exchange that broke, a server that did not prove itself
    AUTH = "auth"
    #: the server (or the proxy) stayed silent, or stopped reading, past the timeout
    TIMEOUT = "timeout"
    #: the connection was reset (or broke in some other way)
    RESET = "reset"
    #: the server closed the connection
    CLOSED = "closed"
    #: the server broke the protocol: an invalid or unexpected reply, too much data
    PROTOCOL = "protocol"
    #: the TLS handshake failed (not TLS, no common version or cipher, ...)
    TLS_HANDSHAKE = "tls-handshake"
    #: the server sent a fatal TLS alert
    TLS_ALERT = "tls-alert"
    #: the server's certificate was not accepted
    TLS_CERTIFICATE = "tls-certificate"
    #: the server refused the connection
    REFUSED = "refused"
    #: the host name could not be resolved
    DNS = "dns"
    #: the server could not be reached (no route, network down, ...)
    UNREACHABLE = "unreachable"
    #: the SOCKS proxy refused the connection or broke its protocol
    PROXY = "proxy"
    #: a problem on this side: a TLS or key file, a setting, the mail's input,
    #: a command msmtp would not send, a missing feature
    LOCAL = "local"
    #: the configuration (files, account choice)
    CONFIG = "config"


class MsmtpError(Exception):
    """A failure with msmtp's ``message``, its ``exitcode`` and a typed ``cause``."""

    def __init__(self, exitcode: int, message: str, *, cause: Cause) -> None:
        super().__init__(message)
        self.exitcode = exitcode
        self.message = message
        self.cause = cause


class ConnectFailure(MsmtpError):
    """Connecting failed (before the session began)."""

    def __init__(self, exitcode: int, message: str, *, cause: Cause = Cause.UNREACHABLE
                 ) -> None:
        super().__init__(exitcode, message, cause=cause)


@dataclass(frozen=True)
class LMTPRecipientFailure:
    """An LMTP server refused the mail for one recipient (after DATA)."""

    recipient: str
    reply: Reply

    @property
    def message(self) -> str:
        return f"the server refuses to send the mail to {self.recipient}"


class SMTPFailure(MsmtpError):
    """The session failed.

    ``reply``: the server's reply that made it fail, if one did (the cause is
    then :attr:`Cause.REPLY` unless given); ``quit``: whether msmtp would still
    send QUIT; ``lmtp_failures``: the refused recipients of an LMTP delivery;
    ``details``: more lines for the user, printed after the server's reply;
    ``writing``: whether the connection broke while we were writing to it (as
    opposed to waiting for the server); ``recipients``: the RCPT replies read
    before the failure, ``(address, reply)`` in order (with
    ``SendmailRequest.partial_recipients``); ``lmtp_replies``: for LMTP, every
    reply after the final dot, ``(address, reply)``, delivered ones included, so
    a partly failed delivery says who got the mail.
    """

    def __init__(
        self,
        exitcode: int,
        message: str,
        reply: Reply | None = None,
        *,
        quit: bool = False,
        lmtp_failures: Sequence[LMTPRecipientFailure] = (),
        details: Sequence[str] = (),
        cause: Cause | None = None,
        writing: bool = False,
        recipients: Sequence[tuple[str, Reply]] = (),
        lmtp_replies: Sequence[tuple[str, Reply]] = (),
    ) -> None:
        if cause is None:
            cause = Cause.REPLY if reply is not None or lmtp_failures else Cause.PROTOCOL
        super().__init__(exitcode, message, cause=cause)
        self.reply = reply
        self.quit = quit
        self.lmtp_failures = list(lmtp_failures)
        self.details = list(details)
        self.writing = writing
        self.recipients = list(recipients)
        self.lmtp_replies = list(lmtp_replies)


class TLSFailure(SMTPFailure):
    """TLS could not be used: unreadable TLS files or settings (:attr:`Cause.LOCAL`),
    a failed handshake, a refused certificate."""

    def __init__(self, exitcode: int, message: str, *, cause: Cause) -> None:
        super().__init__(exitcode, message, cause=cause)


class SOCKS5Error(MsmtpError):
    """The SOCKS5 negotiation failed; ``message`` and ``exitcode`` are msmtp's."""

    def __init__(self, exitcode: int, message: str, *, cause: Cause = Cause.PROXY) -> None:
        super().__init__(exitcode, message, cause=cause)


class ConfigError(MsmtpError):
    """A configuration file could not be read; ``exitcode`` is what msmtp exits with."""

    def __init__(self, message: str, exitcode: int = sysexits.EX_CONFIG) -> None:
        super().__init__(exitcode, message, cause=Cause.CONFIG)


class SelectError(MsmtpError):
    """No usable account: none chosen, or the chosen one is incomplete."""

    def __init__(
        self, message: str, exitcode: int = sysexits.EX_CONFIG, info: Sequence[str] = ()
    ) -> None:
        super().__init__(exitcode, message, cause=Cause.CONFIG)
        #: informational lines msmtp prints (with -P/-d) before failing
        self.info = list(info)


class AccountError(ValueError):
    """The account is incomplete or inconsistent (msmtp's ``check_account``)."""


class ReplyError(Exception):
    """The server's bytes are not a valid reply (msmtp's SMTP_EPROTO).

    Raised by :class:`~msmtp_twisted.smtp.reply.ReplyReader`; a session turns it
    into an :class:`SMTPFailure` (:attr:`Cause.PROTOCOL`)."""


class AccountNotFound(MsmtpError, LookupError):
    """No account of that name in the configuration files."""

    def __init__(self, message: str, exitcode: int = sysexits.EX_CONFIG) -> None:
        super().__init__(exitcode, message, cause=Cause.CONFIG)
