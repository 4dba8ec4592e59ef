"""What sendmail, server information and queue starting modes share: the
endpoint for an account, running one session on the reactor, and printing a
failure the way msmtp prints it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from msmtp_twisted.config.account import Account
from msmtp_twisted.text import sanitize

if TYPE_CHECKING:
    from msmtp_twisted.cli import Output
    from msmtp_twisted.smtp.client import SMTPFailure

__all__ = [
    "endpoint_for",
    "print_failure",
    "report_failure",
    "run_account_session",
    "tracer",
    "unsupported",
]


def endpoint_for(reactor: Any, account: Account, **tcp_options: Any) -> Any:
    """The client endpoint for the account: its unix socket, or TCP to host/port."""
    from msmtp_twisted.net.connect import SequentialTCPEndpoint, UNIXEndpoint

    timeout = account.timeout or None
    if account.socket is not None:
        return UNIXEndpoint(reactor, account.socket, timeout=timeout)
    assert account.host is not None
    return SequentialTCPEndpoint(
        reactor, account.host, account.port, timeout=timeout, source_ip=account.source_ip,
        **tcp_options,
    )


def unsupported(account: Account) -> str | None:
    """Features whose issues have not landed yet: refuse clearly, never send in clear."""
    if account.tls:
        return "TLS is not implemented yet in this version"
    if account.auth_mech is not None:
        return "authentication is not implemented yet in this version"
    if account.proxy_host is not None and account.socket is None:
        return "SOCKS proxies are not implemented yet in this version"
    return None


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
    report_failure(out, account, None)


def tracer(out: Output) -> Any:
    def trace(direction: str, data: bytes) -> None:
        for line in data.splitlines(keepends=True):
            out.stdout.write(direction.encode() + b" " + line)
    return trace


def run_account_session(account: Account, session: Any, *, body: Any = None,
                        trace: Any = None) -> Any:
    """Connect as the account says and run ``session``; returns its result or the
    failure (SMTPFailure, ConnectFailure) as a value."""
    from msmtp_twisted.protocol.reactor import run_until_done, without_tls
    from msmtp_twisted.protocol.session import SessionProtocol

    if not account.tls:
        without_tls()

    def start(reactor: Any) -> Any:
        from twisted.internet.protocol import Factory

        proto = SessionProtocol(
            session, clock=reactor, timeout=account.timeout or None, body=body, trace=trace
        )
        d = endpoint_for(reactor, account).connect(Factory.forProtocol(lambda: proto))
        d.addCallback(lambda _: proto.done)
        return d

    return run_until_done(start)


def print_outcome_failure(out: Output, account: Account, outcome: Any) -> int:
    """Print a failed outcome (SMTPFailure or ConnectFailure); returns its exit code."""
    from msmtp_twisted.smtp.client import SMTPFailure

    if isinstance(outcome, SMTPFailure):
        print_failure(out, account, outcome)
    else:
        out.err(sanitize(outcome.message))
        report_failure(out, account, None)
    return outcome.exitcode
