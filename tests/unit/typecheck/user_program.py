"""A small program as a Twisted programmer writes it with msmtp-twisted.

``mypy --strict`` must accept it (tests/unit/test_typing_user_program.py):
everything it touches is typed, nothing is ``Any`` by accident.
"""

from __future__ import annotations

import io

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from msmtp_twisted.api import load_account, send_mail
from msmtp_twisted.config.account import Account
from msmtp_twisted.errors import (
    Cause,
    ConfigError,
    ConnectFailure,
    MsmtpError,
    SelectError,
    SMTPDeliveryError,
    SMTPFailure,
)
from msmtp_twisted.protocol.compat import ESMTPSenderFactory, sendmail
from msmtp_twisted.smtp.client import Delivered
from msmtp_twisted.smtp.reply import Reply


def relay() -> Account:
    account = Account(
        id="relay", host="127.0.0.1", port=2525, auth_mech="PLAIN", username="u",
        password="secret", tls=True, tls_starttls=True, tls_trust_file="/etc/ca.pem",
        from_addr="me@example.com", timeout=30, protocol="smtp", set_from_header="auto",
        dsn_return="HDRS",
    )
    account.timeout = 2.5
    port: int = account.port
    host: str | None = account.host
    fingerprint: bytes | None = account.tls_fingerprint
    assert port and host is not None and fingerprint is None
    return account


def configured(name: str) -> Account | None:
    try:
        return load_account(name, config_file="/etc/msmtprc")
    except (ConfigError, SelectError) as e:
        print(e.message, e.exitcode)
        return None


def send(reactor: IReactorTime, account: Account) -> Deferred[str]:
    d = send_mail(reactor, account, None, ["you@example.org"],
                  b"Subject: hi\r\n\r\nhello\r\n")

    def delivered(result: Delivered) -> str:
        reply: Reply | None = result.reply
        accepted = [address for address, rcpt in result.recipients if rcpt.code == 250]
        return f"{reply.code if reply else '-'} {len(accepted)} {result.mailsize}"

    def failed(failure: Failure) -> str:
        error = failure.value
        if isinstance(error, SMTPFailure) and error.reply is not None:
            return f"refused: {error.reply.code} {error.reply.text}"
        if isinstance(error, ConnectFailure) or (
                isinstance(error, MsmtpError) and error.cause is Cause.TIMEOUT):
            return f"try later: {error}"
        failure.raiseException()
        raise AssertionError("unreachable")

    return d.addCallbacks(delivered, failed)


def drop_in(reactor: IReactorTime) -> Deferred[object]:
    factory = ESMTPSenderFactory(b"u", b"p", "me@example.com", ["you@example.org"],
                                 io.BytesIO(b"hi\r\n"), Deferred(),
                                 hostname="mail.example.com")
    assert factory.domain
    d = sendmail("127.0.0.1", "me@example.com", ["you@example.org"], b"hi\r\n",
                 port=2525, reactor=reactor)

    def refused(failure: Failure) -> object:
        # (Twisted's Failure.trap is untyped: --strict refuses calling it)
        if isinstance(failure.value, SMTPDeliveryError):
            return failure.value.code
        return failure

    return d.addErrback(refused)
