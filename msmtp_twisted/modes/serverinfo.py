"""``--serverinfo`` and ``--rmqs``: talk to the server without sending mail.

Both print and fail like msmtp: server information goes to stdout in msmtp's
layout (capabilities in its order, AUTH methods in its order), errors go to
stderr with the server's reply lines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from msmtp_twisted import sysexits
from msmtp_twisted.config.account import Account
from msmtp_twisted.text import sanitize

if TYPE_CHECKING:
    from msmtp_twisted.modes.invocation import CommandLine, Output

__all__ = ["format_serverinfo", "run_rmqs", "run_serverinfo"]

#: The order in which msmtp lists AUTH methods.
AUTH_ORDER = ("PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256", "EXTERNAL", "GSSAPI", "CRAM-MD5",
              "DIGEST-MD5", "LOGIN", "NTLM", "OAUTHBEARER", "XOAUTH2")


def _size_text(size: int) -> str:
    if size == 0:
        return "unlimited"
    text = f"{size} bytes"
    if size > 1024 * 1024:
        text += f" = {size / (1024 * 1024):.2f} MiB"
    elif size > 1024:
        text += f" = {size / 1024:.2f} KiB"
    return text


def format_serverinfo(account: Account, start: Any, names: tuple[str | None, str | None],
                      tls_info: Any = None) -> list[str]:
    caps = start.capabilities
    kind = "LMTP" if account.protocol == "lmtp" else "SMTP"
    where = account.host if account.host is not None else account.socket
    name, address = names
    if name and address:
        head = f"{kind} server at {where} ({name} [{address}]), port {account.port}:"
    elif name:
        head = f"{kind} server at {where} ({name}), port {account.port}:"
    elif address:
        head = f"{kind} server at {where} ([{address}]), port {account.port}:"
    else:
        head = f"{kind} server at {where}, port {account.port}:"
    lines = [head]
    greeting = start.greeting.lines[0][4:]
    if greeting:
        lines.append(f"    {sanitize(greeting)}")
    if tls_info is not None:
        lines += tls_info.lines()
    starttls_used = account.tls and account.tls_starttls
    flags = (caps.size is not None or caps.pipelining or caps.etrn or caps.dsn
             or caps.starttls or caps.auth)
    if not flags and not starttls_used:
        lines.append("No special capabilities.")
        return lines
    lines.append("Capabilities:")
    if caps.size is not None:
        lines.append(f"    SIZE {caps.size}:")
        lines.append(f"        Maximum message size is {_size_text(caps.size)}")
    if caps.pipelining:
        lines += ["    PIPELINING:", "        Support for command grouping for faster "
                  "transmission"]
    if caps.etrn:
        lines += ["    ETRN:", "        Support for RMQS (Remote Message Queue Starting)"]
    if caps.dsn:
        lines += ["    DSN:", "        Support for Delivery Status Notifications"]
    if starttls_used or caps.starttls:
        lines += ["    STARTTLS:", "        Support for TLS encryption via the STARTTLS "
                  "command"]
    if caps.auth:
        methods = "".join(f"{m} " for m in AUTH_ORDER if caps.auth_offers(m))
        lines += ["    AUTH:", "        Supported authentication methods:",
                  f"        {methods}"]
    if caps.starttls and not account.tls:
        lines.append("This server might advertise more or other capabilities when TLS "
                     "is active.")
    return lines


def _print_error(out: Output, outcome: Any) -> int:
    """Error lines as msmtp prints them in these modes (no "could not send mail")."""
    out.err(sanitize(outcome.message))
    reply = getattr(outcome, "reply", None)
    if reply is not None:
        for line in reply.lines:
            out.err(f"server message: {sanitize(line)}")
    for line in getattr(outcome, "details", ()):
        out.err(sanitize(line))
    return outcome.exitcode


def run_serverinfo(conf: CommandLine, account: Account, out: Output) -> int:
    from msmtp_twisted.modes.common import run_account_session, tls_warnings, tracer
    from msmtp_twisted.smtp.client import SessionStart, serverinfo_session

    tls_warnings(out, account)
    trace = tracer(out) if conf.debug else None
    session = serverinfo_session(account.protocol, account.domain,
                                 account.tls and account.tls_starttls)
    tls_info: list[Any] = []
    outcome = run_account_session(account, session, trace=trace, tls_info=tls_info.append,
                                  tls_first=False)
    if not isinstance(outcome, SessionStart):
        return _print_error(out, outcome)
    from msmtp_twisted.sending.endpoint import peer_names

    lines = format_serverinfo(account, outcome, peer_names(account),
                              tls_info[0] if tls_info else None)
    for line in lines:
        out.out(line)
    return sysexits.EX_OK


def run_rmqs(conf: CommandLine, account: Account, out: Output) -> int:
    from msmtp_twisted.modes.common import (
        run_account_session,
        tls_printer,
        tls_warnings,
        tracer,
    )
    from msmtp_twisted.sending.credentials import auth_request
    from msmtp_twisted.smtp.client import Delivered, etrn_session

    tls_warnings(out, account)
    trace = tracer(out) if conf.debug else None
    session = etrn_session(account.protocol, account.domain, conf.rmqs or "",
                           account.tls and account.tls_starttls, auth_request(account))
    outcome = run_account_session(account, session, trace=trace, tls_first=False,
                                  tls_info=tls_printer(out) if conf.debug else None)
    if not isinstance(outcome, Delivered):
        return _print_error(out, outcome)
    return sysexits.EX_OK
