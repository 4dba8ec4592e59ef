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
    "auth_request",
    "endpoint_for",
    "print_failure",
    "report_failure",
    "run_account_session",
    "tls_printer",
    "tls_warnings",
    "tracer",
]


def endpoint_for(reactor: Any, account: Account, **tcp_options: Any) -> Any:
    """The client endpoint for the account: its unix socket, or TCP to host/port
    (through the SOCKS5 proxy ``proxy_host`` when set)."""
    from msmtp_twisted.net.connect import SequentialTCPEndpoint, UNIXEndpoint

    timeout = account.timeout or None
    if account.socket is not None:
        return UNIXEndpoint(reactor, account.socket, timeout=timeout)
    assert account.host is not None
    if account.proxy_host is not None:
        from msmtp_twisted.net.socks import DEFAULT_PORT, SOCKS5ClientEndpoint

        proxy = SequentialTCPEndpoint(
            reactor, account.proxy_host, account.proxy_port or DEFAULT_PORT, timeout=timeout,
            source_ip=account.source_ip, **tcp_options,
        )
        return SOCKS5ClientEndpoint(proxy, account.host, account.port, timeout, clock=reactor)
    return SequentialTCPEndpoint(
        reactor, account.host, account.port, timeout=timeout, source_ip=account.source_ip,
        **tcp_options,
    )


def _auth_host(account: Account) -> str:
    """The server name AUTH uses (DIGEST-MD5's digest-uri, OAUTHBEARER, the key ring,
    netrc, the prompt): msmtp names a unix socket's path there."""
    return account.host if account.host is not None else (account.socket or "localhost")


def auth_request(account: Account) -> Any:
    """The AUTH step's settings for the account, or None without ``auth``."""
    if account.auth_mech is None:
        return None
    from msmtp_twisted.smtp.client import AuthRequest

    return AuthRequest(
        mechanism=account.auth_mech or "",
        user=account.username,
        password=account.password,
        host=_auth_host(account),
        port=account.effective_port(),
        tls=bool(account.tls),
        ntlmdomain=account.ntlmdomain,
    )


def password_source(account: Account, *, prompt: bool = True) -> Any:
    """For the session's PASSWORD action: key ring, netrc, then (``prompt``) the terminal."""
    def lookup() -> str | None:
        from msmtp_twisted.auth.password import lookup_password

        if account.username is None:
            return None
        return lookup_password(_auth_host(account), account.username, prompt=prompt)
    return lookup


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
    if not account.tls:
        return
    from msmtp_twisted.tls.options import TLSOptions

    for warning in TLSOptions.from_account(account).warnings():
        out.err(warning)


def run_account_session(account: Account, session: Any, *, body: Any = None,
                        trace: Any = None, tls_info: Any = None,
                        tls_first: bool = True) -> Any:
    """Connect as the account says and run ``session``; returns its result or the
    failure (SMTPFailure, ConnectFailure, TLSFailure) as a value.

    With TLS on: ``tls_info(info)`` is called once the server certificate has been
    verified (msmtp prints it there with ``-d``); ``tls_first`` says whether a
    problem with the TLS files is reported before connecting (sendmail mode) or
    only once the connection stands (``--serverinfo``, ``--rmqs``), as msmtp does.
    """
    from msmtp_twisted.protocol.reactor import run_until_done, without_tls

    tls: Any = None
    tls_problem: Any = None
    if not account.tls:
        without_tls()
    else:
        from msmtp_twisted.errors import TLSFailure
        from msmtp_twisted.tls.account import AccountTLS

        try:
            tls = AccountTLS.from_account(account, on_established=tls_info)
        except TLSFailure as e:
            if tls_first:
                return e
            tls_problem = e

    def start(reactor: Any) -> Any:
        from twisted.internet.protocol import Factory, Protocol

        if tls_problem is not None:
            # msmtp connects, then fails to set up TLS: a connection error wins
            d = endpoint_for(reactor, account).connect(Factory.forProtocol(Protocol))

            def connected(probe: Any) -> Any:
                probe.transport.loseConnection()
                return tls_problem
            d.addCallback(connected)
            return d

        return start_account_session(reactor, account, session, body=body, trace=trace,
                                     tls=tls)

    return run_until_done(start)


def start_account_session(reactor: Any, account: Account, session: Any, *, body: Any = None,
                          trace: Any = None, tls: Any = None, password: Any = None) -> Any:
    """Connect for ``account`` on ``reactor`` and run ``session``: a Deferred that
    fires with the session's result or fails with SMTPFailure/ConnectFailure/TLSFailure.
    ``tls`` is an :class:`~msmtp_twisted.tls.account.AccountTLS` when the account uses TLS;
    ``password()`` is asked when AUTH needs a password the account lacks (default: key
    ring, netrc, terminal, blocking as msmtp does)."""
    from twisted.internet.protocol import Factory

    from msmtp_twisted.protocol.session import SessionProtocol

    proto = SessionProtocol(
        session, clock=reactor, timeout=account.timeout or None, body=body,
        trace=tls.trace(trace) if tls is not None else trace,
        start_tls=tls.start_tls if tls is not None else None,
        channel_binding=tls.channel_binding if tls is not None else None,
        password=password if password is not None else password_source(account),
        on_lost=tls.connection_lost if tls is not None else None,
    )
    endpoint = endpoint_for(reactor, account)
    if tls is not None:
        tls.set_timeout(reactor, account.timeout or None)
        if not account.tls_starttls:
            endpoint = tls.wrap_endpoint(endpoint)
    d = endpoint.connect(Factory.forProtocol(lambda: proto))
    d.addCallback(lambda _: proto.done)
    if tls is not None:
        d.addErrback(tls.translate)
    return d


def print_outcome_failure(out: Output, account: Account, outcome: Any) -> int:
    """Print a failed outcome (SMTPFailure or ConnectFailure); returns its exit code."""
    from msmtp_twisted.smtp.client import SMTPFailure

    if isinstance(outcome, SMTPFailure):
        print_failure(out, account, outcome)
    else:
        out.err(sanitize(outcome.message))
        report_failure(out, account, None)
    return outcome.exitcode
