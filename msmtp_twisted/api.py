"""Sending mail from a Twisted program with msmtprc accounts.

::

    from msmtp_twisted.api import load_account, send_mail

    account = load_account("work")                     # ~/.msmtprc, as msmtp reads it
    d = send_mail(reactor, account, "me@example.com", ["you@example.org"], message_bytes)
    d.addCallback(lambda delivered: print(delivered.reply.text))

``send_mail`` returns a Deferred that fires with
:class:`~msmtp_twisted.smtp.client.Delivered` once the server accepted the mail
for every recipient, and fails with
:class:`~msmtp_twisted.errors.SMTPFailure` or
:class:`~msmtp_twisted.errors.ConnectFailure` otherwise; both carry
msmtp's message and exit code, and a :class:`~msmtp_twisted.errors.Cause`.
The message goes through the same header handling as ``msmtp`` (Bcc removed,
From/Date/Message-ID added as the account says).  The reactor is a parameter;
nothing here touches a global one.

Accounts with ``auth`` authenticate as ``msmtp`` does (same mechanism choice);
``passwordeval`` runs in :func:`load_account`, and a password missing from the
account is looked up in the key ring and netrc in a thread — never by prompting.

For more than one mail, keep connections: :class:`Sender` (up to N connections
to one account, reused, with a queue) or :func:`connect` (one
:class:`Connection`: ``send``, ``etrn``, ``quit``).  docs/library.md describes
them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, BinaryIO

from twisted.internet import defer
from twisted.python.failure import Failure

from msmtp_twisted import sysexits
from msmtp_twisted.config.account import Account
from msmtp_twisted.config.files import load_accounts
from msmtp_twisted.config.select import complete_account
from msmtp_twisted.errors import AccountNotFound, Cause, MsmtpError
from msmtp_twisted.protocol.connection import (
    DEFAULT_TIMEOUT,
    Connection,
    PreparedMail,
    connect,
    observe_mail,
)
from msmtp_twisted.protocol.pool import Sender
from msmtp_twisted.smtp.client import Delivered

__all__ = ["DEFAULT_TIMEOUT", "AccountNotFound", "Connection", "Delivered", "Sender",
           "account_from_config", "connect", "load_account", "send_mail"]


def load_account(name: str = "default", *, config_file: str | None = None) -> Account:
    """Account ``name`` from the system and user configuration files, completed
    (default port, ``%`` substitutions, checks) as msmtp completes it.

    Raises :class:`~msmtp_twisted.config.parser.ConfigError`,
    :class:`AccountNotFound` or :class:`~msmtp_twisted.config.select.SelectError`.
    """
    loaded = load_accounts(config_file)
    found = loaded.find(name)
    if found is None:
        raise AccountNotFound(f"account {name} not found")
    account = found.copy()
    complete_account(account, sendmail=True, pretend=True)
    return account


def account_from_config(text: str, name: str = "default") -> Account:
    """Account ``name`` from msmtprc text written in code, completed as
    :func:`load_account` completes it.

    The commands, their spellings and values, and the error messages are those
    of a configuration file (the text is parsed by the same parser), so an
    account built here cannot differ from one in ``~/.msmtprc``::

        account = account_from_config('''
            host mail.example.com
            port 587
            tls on
            tls_trust_file system
            auth on
            user me
            passwordeval pass show mail
            from me@example.com
        ''')

    Commands before any ``account`` line form the account ``default``; with
    ``defaults`` and ``account`` lines the text may hold several accounts and
    ``name`` chooses one.  ``eval`` is refused (it would run a command while
    parsing); ``passwordeval`` runs here, as in :func:`load_account`.  Raises
    :class:`~msmtp_twisted.config.parser.ConfigError` (with the line number),
    :class:`AccountNotFound` or :class:`~msmtp_twisted.config.select.SelectError`.
    Building :class:`~msmtp_twisted.config.account.Account` directly takes the
    settings as typed values and field names instead (``auth_mech``, ``username``).
    """
    from msmtp_twisted.config.parser import parse_config

    parsed = parse_config(text.encode("utf-8", "surrogateescape"), "<config text>")
    found = parsed.find(name)
    if found is None:
        raise AccountNotFound(f"account {name} not found")
    account = found.copy()
    complete_account(account, sendmail=True, pretend=True)
    return account


def send_mail(
    reactor: Any,
    account: Account,
    envelope_from: str | None,
    recipients: Sequence[str],
    message: bytes | BinaryIO,
    *,
    notify: str | None = None,
    ret: str | None = None,
    envid: str | None = None,
    partial_recipients: bool = False,
    timeout: float | None = None,
) -> defer.Deferred[Delivered]:
    """Send ``message`` (a complete mail, LF or CRLF line ends; bytes, or a seekable
    binary file, streamed: see :class:`~msmtp_twisted.protocol.connection.PreparedMail`)
    to ``recipients`` on a connection of its own: connect, send, QUIT.

    ``envelope_from`` None means the account's ``from``.  TLS (STARTTLS or
    implicit) is used as the account says, with msmtp's verification rules; the
    account's TLS files are read once, in a thread, on its first connection (see
    :func:`msmtp_twisted.sending.endpoint.account_tls_context`).  Host names are
    resolved off the reactor thread (:mod:`msmtp_twisted.net.resolve`).  DSN
    (``notify``, ``ret``, ``envid``) and ``partial_recipients`` as for
    :meth:`Connection.send`.  Each read and write may wait the account's
    ``timeout``, else :data:`DEFAULT_TIMEOUT` seconds; ``timeout`` bounds the
    whole call.  ``d.cancel()`` before the final dot closes the connection and
    nothing is delivered; after it the server's verdict stands (the Deferred
    fails with ``CancelledError``, the verdict is logged).
    """
    from msmtp_twisted.errors import SMTPFailure

    try:
        mail = PreparedMail(account, envelope_from, recipients, message, notify=notify,
                            ret=ret, envid=envid, partial_recipients=partial_recipients)
    except (ValueError, TypeError, OSError, MsmtpError) as e:
        return defer.fail(e)
    deadline = reactor.seconds() + timeout if timeout is not None else None
    state: dict[str, Any] = {}

    def cancel(d: defer.Deferred[Delivered]) -> None:
        inner = state.get("inner")
        if inner is not None:
            inner.cancel()

    result: defer.Deferred[Delivered] = defer.Deferred(cancel)
    timer = None
    if timeout is not None:
        def expired() -> None:
            # still connecting (a sending connection has its own deadline)
            inner = state.get("inner")
            if "conn" not in state and inner is not None and not result.called:
                result.errback(SMTPFailure(sysexits.EX_TEMPFAIL, "the send timed out",
                                           cause=Cause.TIMEOUT))
                inner.cancel()
        timer = reactor.callLater(timeout, expired)

    def connected(conn: Connection) -> defer.Deferred[Delivered]:
        state["conn"] = conn
        remaining = None if deadline is None else max(deadline - reactor.seconds(), 0.0)
        d = conn.submit_mail(mail, timeout=remaining, log=False).deferred
        state["inner"] = d

        def quit(outcome: Any) -> Any:
            # as msmtp: the call ends once QUIT is answered (bounded) and the
            # connection closed
            if conn.reusable:
                return conn.quit().addBoth(lambda _: outcome)
            conn.abort()
            return outcome
        return d.addBoth(quit)

    def finished(outcome: Any) -> None:
        if timer is not None and timer.active():
            timer.cancel()
        if result.called:
            return None
        if isinstance(outcome, Failure):
            result.errback(outcome)
        else:
            result.callback(outcome)
        return None

    d = connect(reactor, account)
    state["inner"] = d
    d.addCallback(connected).addBoth(finished)
    observe_mail(result, account, mail)  # "delivered"/"failed": connecting included
    return result
