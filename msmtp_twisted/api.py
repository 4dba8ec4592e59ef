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
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from twisted.internet import defer

from msmtp_twisted.config.account import Account
from msmtp_twisted.config.files import load_accounts
from msmtp_twisted.config.select import complete_account
from msmtp_twisted.errors import AccountNotFound
from msmtp_twisted.smtp.client import Delivered, sendmail_session

__all__ = ["AccountNotFound", "Delivered", "load_account", "send_mail"]


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


def send_mail(
    reactor: Any,
    account: Account,
    envelope_from: str | None,
    recipients: Sequence[str],
    message: bytes,
) -> defer.Deferred[Delivered]:
    """Send ``message`` (a complete mail, LF or CRLF line ends) to ``recipients``.

    ``envelope_from`` None means the account's ``from``.  TLS (STARTTLS or
    implicit) is used as the account says, with msmtp's verification rules; the
    account's TLS files are read once, in a thread, on its first send (see
    :func:`msmtp_twisted.sending.endpoint.account_tls_context`).
    Host names are resolved off the reactor thread, through the reactor's name
    resolver (:mod:`msmtp_twisted.net.resolve`).
    """
    from msmtp_twisted.sending.connection import start_account_session
    from msmtp_twisted.sending.credentials import password_in_thread
    from msmtp_twisted.sending.endpoint import account_tls_in_thread
    from msmtp_twisted.sending.events import observe_delivery
    from msmtp_twisted.sending.mail import prepare_mail, read_headers

    sender = envelope_from if envelope_from is not None else (account.from_addr or "")
    stream = io.BytesIO(message)
    headers = read_headers(stream, want_recipients=False)
    request, body = prepare_mail(account, sender, list(recipients), headers, stream)
    # the account's TLS files are read once, in a thread (TLSFailure as before)
    d: defer.Deferred[Delivered] = account_tls_in_thread(reactor, account).addCallback(
        lambda tls: start_account_session(
            reactor, account, sendmail_session(request), body=body, tls=tls,
            password=password_in_thread(reactor, account)))
    return observe_delivery(d, account, request)  # "delivered"/"failed" log events
