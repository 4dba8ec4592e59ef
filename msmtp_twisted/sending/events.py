"""What the delivery layer tells a Twisted program's log: ``twisted.logger`` events.

Every event is in the namespace ``msmtp_twisted`` (:data:`NAMESPACE`) and has an
``msmtp_event`` key saying which it is; its text (``formatEvent``) is one line:

``connect`` (info), once the connection stands (to the server, or to the SOCKS
proxy for it)::

    connected to mail.example.org port 587 (192.0.2.25), TLS starttls

    account, host, port, address, socket, proxy, tls ("starttls", "tls" for TLS
    from the first byte, "off"), where (the text between "to" and ",")

``delivered`` (info), once the server accepted the mail::

    delivered mail from me@example.org to you@example.net (1234 bytes): 250 2.0.0 Ok

    account, host, sender, recipients (list), size (bytes of the mail as
    sent), reply_code and reply (the reply to the final dot, or for LMTP the
    per-recipient replies), replies (every RCPT reply: [address, code])

``failed`` (warn), when a send failed (or was cancelled)::

    sending mail from me@example.org to you@example.net failed: recipient
    address you@example.net not accepted by the server (exit code 65, reply);
    server message: 550 5.1.1 no such user

    account, host, sender, recipients, message (msmtp's), exitcode,
    cause (an errors.Cause value, "cancelled", or None), reply_code and reply
    (the server's reply, when there was one)

Never in an event: a password or anything of the AUTH exchange, the message's
headers or body, the account object (only its name).  Server replies are
sanitized (control characters become ``?``) as msmtp prints them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from twisted.logger import Logger

from msmtp_twisted.config.account import Account
from msmtp_twisted.text import sanitize

if TYPE_CHECKING:
    from twisted.internet import defer
    from twisted.python.failure import Failure

    from msmtp_twisted.smtp.client import SendmailRequest
    from msmtp_twisted.smtp.reply import Reply

__all__ = ["NAMESPACE", "log", "log_connect", "log_connected", "log_delivered", "log_failed",
           "observe_delivery", "tls_mode"]

NAMESPACE = "msmtp_twisted"
log = Logger(namespace=NAMESPACE)

_T = TypeVar("_T")


def tls_mode(account: Account) -> str:
    """``"starttls"``, ``"tls"`` (TLS from the first byte) or ``"off"``."""
    if not account.tls:
        return "off"
    return "starttls" if account.tls_starttls else "tls"


def log_connected(account: Account, address: str | None) -> None:
    """The ``connect`` event: the connection for ``account`` stands (``address``:
    the numeric address connected to, for TCP)."""
    proxy = (f"{account.proxy_host}:{account.proxy_port or 1080}"
             if account.proxy_host is not None and account.socket is None else None)
    log_connect(account=account.id, host=account.host, port=account.port,
                socket=account.socket, address=address, proxy=proxy, tls=tls_mode(account))


def log_connect(*, account: str | None, host: str | None, port: int | None,
                address: str | None, tls: str, socket: str | None = None,
                proxy: str | None = None) -> None:
    """The ``connect`` event, for a sender without an account (the drop-in)."""
    if socket is not None:
        where = socket
    else:
        where = f"{host} port {port}"
        if proxy is not None:
            where += f" through SOCKS proxy {proxy}"
        if address is not None and address != host:
            where += f" ({address})"
    log.info("connected to {where}, TLS {tls}", msmtp_event="connect", account=account,
             host=host, port=port, socket=socket, address=address, proxy=proxy, tls=tls,
             where=where)


def _reply_text(reply: Reply | None) -> str | None:
    if reply is None:
        return None
    return sanitize(" ".join(reply.lines))


def log_delivered(*, account: str | None, host: str | None, sender: str,
                  recipients: list[str], size: int | None, reply_code: int | None,
                  reply: str | None, replies: list[list[Any]]) -> None:
    """The ``delivered`` event (``reply``: the server's text, sanitized here)."""
    text = sanitize(reply) if reply is not None else None
    if text is None and replies:
        text = "; ".join(f"{address}: {code}" for address, code in replies)
    log.info("delivered mail from {sender} to {shown} ({size} bytes): {reply}",
             msmtp_event="delivered", account=account, host=host, sender=sender,
             recipients=recipients, shown=", ".join(recipients), size=size,
             reply_code=reply_code, reply=text, replies=replies)


def log_failed(*, account: str | None, host: str | None, sender: str,
               recipients: list[str], failure: BaseException) -> None:
    """The ``failed`` event for ``failure`` (an :class:`~msmtp_twisted.errors.MsmtpError`,
    a ``CancelledError``, or anything else)."""
    from twisted.internet.defer import CancelledError

    cause = getattr(failure, "cause", None)
    cause_text: str | None
    if isinstance(failure, CancelledError):
        message, cause_text = "cancelled", "cancelled"
    else:
        given = getattr(failure, "message", None)
        message = sanitize(given if isinstance(given, str) and given else str(failure))
        cause_text = getattr(cause, "value", None)
    reply = getattr(failure, "reply", None)
    text = _reply_text(reply)
    log.warn("sending mail from {sender} to {shown} failed: {message} "
             "(exit code {exitcode}, {cause}){server}", msmtp_event="failed",
             account=account, host=host, sender=sender, recipients=recipients,
             shown=", ".join(recipients), message=message,
             exitcode=getattr(failure, "exitcode", None), cause=cause_text,
             reply_code=getattr(reply, "code", None), reply=text,
             server=f"; server message: {text}" if text else "")


def observe_delivery(d: defer.Deferred[_T], account: Account,
                     request: SendmailRequest) -> defer.Deferred[_T]:
    """Log ``delivered`` or ``failed`` for the send whose result ``d`` is; the
    result passes through unchanged.  (Never give the request's ``auth`` to a log:
    only its envelope is used here.)"""
    d.addCallbacks(_delivered, _failed, callbackArgs=(account, request),
                   errbackArgs=(account, request))
    return d


def _common(account: Account, request: SendmailRequest) -> dict[str, Any]:
    return {"account": account.id, "host": account.host or account.socket,
            "sender": request.envelope_from, "recipients": list(request.recipients)}


def _delivered(result: _T, account: Account, request: SendmailRequest) -> _T:
    reply = getattr(result, "reply", None)
    log_delivered(size=getattr(result, "mailsize", None),
                  reply_code=reply.code if reply is not None else None,
                  reply=" ".join(reply.lines) if reply is not None else None,
                  replies=[[address, each.code]
                           for address, each in getattr(result, "recipients", ())],
                  **_common(account, request))
    return result


def _failed(failure: Failure, account: Account, request: SendmailRequest) -> Failure:
    log_failed(failure=failure.value or Exception("unknown failure"),
               **_common(account, request))
    return failure
