"""What sendmail, server information and queue starting modes share: running one
account session on the reactor (through :mod:`msmtp_twisted.sending`) and
printing a failure the way msmtp prints it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from msmtp_twisted.config.account import Account
from msmtp_twisted.text import sanitize

if TYPE_CHECKING:
    from msmtp_twisted.errors import SMTPFailure
    from msmtp_twisted.modes.invocation import Output

__all__ = [
    "first_attempt",
    "print_failure",
    "print_outcome_failure",
    "report_failure",
    "run_account_session",
    "tls_printer",
    "tls_warnings",
    "tracer",
]


def report_failure(out: Output, account: Account, what: str | None) -> None:
    tail = what or "could not send mail"
    if account.id and account.conffile:
        out.err(f"{tail} (account {account.id} from {account.conffile})")
    else:
        out.err(tail)


def print_failure(out: Output, account: Account, failure: SMTPFailure) -> None:
    if failure.lmtp_failures:
        for item in failure.lmtp_failures:
            out.err(sanitize(item.message))
            for line in item.reply.lines:
                out.err(f"LMTP server message: {sanitize(line)}")
        report_failure(out, account, "could not send mail to all recipients")
        return
    out.err(sanitize(failure.message))
    if failure.reply is not None:
        for line in failure.reply.lines:
            out.err(f"server message: {sanitize(line)}")
    for line in failure.details:
        out.err(sanitize(line))
    report_failure(out, account, None)


def tracer(out: Output) -> Any:
    def trace(direction: str, data: bytes) -> None:
        for line in data.splitlines(keepends=True):
            out.stdout.write(direction.encode() + b" " + line)
    return trace


def tls_printer(out: Output) -> Any:
    """For ``-d``: print the TLS session and certificate the way msmtp's
    mtls_print_info() does, once the certificate is verified."""
    def print_info(info: Any) -> None:
        for line in info.lines():
            out.out(line)
    return print_info


def tls_warnings(out: Output, account: Account) -> None:
    """Warnings about deprecated TLS settings (only when TLS is on)."""
    from msmtp_twisted.sending.endpoint import tls_warnings as warnings

    for warning in warnings(account):
        out.err(warning)


def first_attempt(account: Account) -> Any:
    """The account's connection tried before Twisted loads (``msmtpq``:
    :mod:`msmtp_twisted.net.probe`): the ConnectFailure the send would end with,
    the connection to hand to :func:`run_account_session`, or None (go the
    usual way).  Unusable TLS files are reported before connecting, as always:
    they are checked first (and then kept with the account for the send)."""
    if account.tls:
        from msmtp_twisted.errors import TLSFailure
        from msmtp_twisted.sending.endpoint import account_tls_context

        try:
            account_tls_context(account)
        except TLSFailure:
            return None
    from msmtp_twisted.net.probe import connect_first

    return connect_first(account)


def run_account_session(account: Account, session: Any, *, body: Any = None,
                        trace: Any = None, tls_info: Any = None,
                        tls_first: bool = True, connected: Any = None) -> Any:
    """Connect as the account says and run ``session`` on the reactor; returns its
    result or the failure (SMTPFailure, ConnectFailure, TLSFailure) as a value.

    With TLS on: ``tls_info(info)`` is called once the server certificate has been
    verified (msmtp prints it there with ``-d``); ``tls_first`` says whether a
    problem with the TLS files is reported before connecting (sendmail mode) or
    only once the connection stands (``--serverinfo``, ``--rmqs``), as msmtp does.
    ``connected``: a connection made already (:func:`first_attempt`).
    """
    from msmtp_twisted.protocol.reactor import (
        defer_unused_modules,
        run_until_done,
        without_tls,
        without_twisted_ssl,
    )

    defer_unused_modules()
    tls: Any = None
    tls_problem: Any = None
    if not account.tls:
        without_tls()
    else:
        from msmtp_twisted.errors import TLSFailure
        from msmtp_twisted.sending.endpoint import account_tls

        try:
            tls = account_tls(account, on_established=tls_info)
        except TLSFailure as e:
            if tls_first:
                if connected is not None:
                    connected.close()
                return e
            tls_problem = e
        without_twisted_ssl()

    def start(reactor: Any) -> Any:
        from msmtp_twisted.net.resolve import GetaddrinfoResolver
        from msmtp_twisted.protocol.reactor import reactor_is_shared
        from msmtp_twisted.sending.connection import (
            fail_after_connecting,
            start_account_session,
        )

        # the command waits for nothing else: look names up in this thread, as
        # msmtp does, rather than start a thread pool (start-up time); not on a
        # reactor others share (msmtpq's flush now, a daemon's later)
        if not reactor_is_shared():
            reactor.installNameResolver(GetaddrinfoResolver(reactor, blocking=True))

        if tls_problem is not None:
            return fail_after_connecting(reactor, account, tls_problem)
        return start_account_session(reactor, account, session, body=body, trace=trace,
                                     tls=tls, connected=connected)

    return run_until_done(start)


def print_outcome_failure(out: Output, account: Account, outcome: Any) -> int:
    """Print a failed outcome (SMTPFailure or ConnectFailure); returns its exit code."""
    from msmtp_twisted.errors import SMTPFailure

    if isinstance(outcome, SMTPFailure):
        print_failure(out, account, outcome)
    else:
        out.err(sanitize(outcome.message))
        report_failure(out, account, None)
    return outcome.exitcode
