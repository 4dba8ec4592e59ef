"""Connections kept across the mails of several accounts, for a program that sends
them one after another (``msmtpq --run``): one :class:`~msmtp_twisted.protocol.pool.Sender`
with one connection per set of connection settings.

::

    kept = KeptConnections(reactor)
    d = kept.send_prepared(account, mail)      # a PreparedMail, or a StreamedMail
    ...
    yield kept.close()                         # QUIT on every kept connection

Two accounts share a connection exactly when everything that shapes it is the
same (:data:`CONNECTION_FIELDS`: server, port, socket, proxy, TLS, AUTH,
credentials, timeout, EHLO domain, protocol); what only shapes a mail (envelope
From, added headers, DSN, log file, aliases) may differ from mail to mail.  The
:class:`~msmtp_twisted.protocol.pool.Sender` rules apply: a mail is tried a
second time only when nothing of it can have reached the server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet import defer

from msmtp_twisted.config.account import Account
from msmtp_twisted.config.commands import SETTINGS
from msmtp_twisted.protocol.pool import Sender
from msmtp_twisted.smtp.client import Delivered
from msmtp_twisted.smtp.persistent import MailJob

if TYPE_CHECKING:
    from msmtp_twisted.protocol.session import BodySource

__all__ = ["CONNECTION_FIELDS", "MAIL_FIELDS", "KeptConnections", "StreamedMail"]

#: The account settings that make a connection what it is: those of the
#: command table outside its sendmail-mode section (see
#: :attr:`Setting.connection <msmtp_twisted.config.commands.Setting.connection>`).
CONNECTION_FIELDS = tuple(s.field for s in SETTINGS if s.connection)
#: The settings that only shape a mail.
MAIL_FIELDS = tuple(s.field for s in SETTINGS if not s.connection)


class StreamedMail:
    """A mail whose body is produced by ``bodies()`` (e.g. streamed from a file),
    for :meth:`Sender.send_prepared <msmtp_twisted.protocol.pool.Sender.send_prepared>`.

    ``bodies`` is called for each attempt; ``retryable`` False when it can give
    only one body (a pipe): such a mail is never tried twice."""

    def __init__(self, job: MailJob, bodies: Callable[[], BodySource], *,
                 retryable: bool = True) -> None:
        self.job = job
        self._bodies = bodies
        self.retryable = retryable

    def body(self) -> BodySource:
        return self._bodies()


class KeptConnections:
    """One kept connection per set of :data:`CONNECTION_FIELDS`."""

    def __init__(self, reactor: Any, *, idle_timeout: float = 30.0,
                 password: Callable[[Account], Callable[[], Any] | None] | None = None
                 ) -> None:
        self._reactor = reactor
        self._idle_timeout = idle_timeout
        self._password = password
        self._senders: dict[tuple[Any, ...], Sender] = {}

    @staticmethod
    def key(account: Account) -> tuple[Any, ...]:
        return tuple(getattr(account, name) for name in CONNECTION_FIELDS)

    def sender(self, account: Account) -> Sender:
        """The sender (one connection) for ``account``'s connection settings."""
        key = self.key(account)
        sender = self._senders.get(key)
        if sender is None:
            password = self._password(account) if self._password is not None else None
            sender = Sender(self._reactor, account, connections=1,
                            idle_timeout=self._idle_timeout, password=password)
            self._senders[key] = sender
        return sender

    def send_prepared(self, account: Account, mail: Any, *, timeout: float | None = None
                      ) -> defer.Deferred[Delivered]:
        return self.sender(account).send_prepared(mail, timeout=timeout)

    def close(self) -> defer.Deferred[None]:
        """QUIT on every kept connection (after the sends in flight)."""
        senders, self._senders = list(self._senders.values()), {}
        d = defer.gatherResults([s.close() for s in senders], consumeErrors=True)
        return d.addCallback(lambda _: None)
