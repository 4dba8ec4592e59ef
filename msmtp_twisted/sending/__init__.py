"""The delivery layer: everything that sends mail stands on it.

``msmtp``'s sendmail mode, ``--serverinfo`` and ``--rmqs``, :mod:`msmtp_twisted.api`
and :mod:`msmtp_twisted.protocol.compat` all go the same way, one step per module:

=================  ==========================================================
``endpoint``       account → endpoint: TCP (msmtp's address order,
                   ``source_ip``), unix socket, SOCKS5 proxy, implicit TLS
                   around any of them; the account's :class:`AccountTLS`
                   (its TLS files read once per account)
``credentials``    account → AUTH settings; password sources (key ring,
                   netrc, prompt; or in a thread, for a running reactor)
``mail``           mail preparation: header block read and scanned,
                   generated headers, body streamed through the DATA
                   encoder, envelope (:class:`SendmailRequest`)
``events``         ``twisted.logger`` events: connect, delivered, failed
                   (never a password or the mail)
``connection``     endpoint + sans-IO session → :class:`SessionProtocol`
                   with STARTTLS, the TLS trace, timeouts and msmtp's TLS
                   errors, wired once; its Deferred is the delivery result
=================  ==========================================================

A send, as :func:`msmtp_twisted.api.send_mail` does it::

    tls = yield account_tls_in_thread(reactor, account)  # files read once, in a thread
    headers = read_headers(stream, want_recipients=False)
    request, body = prepare_mail(account, sender, recipients, headers, stream)
    d = start_account_session(reactor, account, sendmail_session(request),
                              body=body, tls=tls,
                              password=password_in_thread(reactor, account))

The result is :class:`~msmtp_twisted.smtp.client.Delivered`, or a failure of
the :class:`~msmtp_twisted.errors.MsmtpError` family with msmtp's message, exit
code and a :class:`~msmtp_twisted.errors.Cause`.

Nothing here imports :mod:`msmtp_twisted.modes` or :mod:`msmtp_twisted.cli`
(``tests/unit/test_layers.py`` keeps it so); nothing here prints.  Importing
this package loads nothing: the names below are imported when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from msmtp_twisted.lazy import lazy_exports

if TYPE_CHECKING:
    from msmtp_twisted.sending.connection import (
        connect_session,
        fail_after_connecting,
        session_protocol,
        start_account_session,
    )
    from msmtp_twisted.sending.credentials import (
        auth_host,
        auth_request,
        password_in_thread,
        password_source,
    )
    from msmtp_twisted.sending.endpoint import (
        account_tls,
        account_tls_context,
        account_tls_in_thread,
        endpoint_for,
        peer_names,
        tls_warnings,
    )
    from msmtp_twisted.sending.events import log_connected, observe_delivery
    from msmtp_twisted.sending.mail import (
        MailBody,
        ReadHeaders,
        build_body_parts,
        prepare_mail,
        read_headers,
        sendmail_request,
    )

_WHERE = {
    "connect_session": "connection",
    "fail_after_connecting": "connection",
    "session_protocol": "connection",
    "start_account_session": "connection",
    "auth_host": "credentials",
    "auth_request": "credentials",
    "password_in_thread": "credentials",
    "password_source": "credentials",
    "account_tls": "endpoint",
    "account_tls_context": "endpoint",
    "account_tls_in_thread": "endpoint",
    "endpoint_for": "endpoint",
    "peer_names": "endpoint",
    "tls_warnings": "endpoint",
    "log_connected": "events",
    "observe_delivery": "events",
    "MailBody": "mail",
    "ReadHeaders": "mail",
    "build_body_parts": "mail",
    "prepare_mail": "mail",
    "read_headers": "mail",
    "sendmail_request": "mail",
}

__all__ = [
    "MailBody",
    "ReadHeaders",
    "account_tls",
    "account_tls_context",
    "account_tls_in_thread",
    "auth_host",
    "auth_request",
    "build_body_parts",
    "connect_session",
    "endpoint_for",
    "fail_after_connecting",
    "log_connected",
    "observe_delivery",
    "password_in_thread",
    "password_source",
    "peer_names",
    "prepare_mail",
    "read_headers",
    "sendmail_request",
    "session_protocol",
    "start_account_session",
    "tls_warnings",
]


__getattr__, __dir__ = lazy_exports(__name__, _WHERE, __all__)
