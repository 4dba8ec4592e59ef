"""The conversation of Twisted's ``SMTPSender``/``ESMTPSender``, as a sans-IO session.

A generator in the style of :mod:`msmtp_twisted.smtp.client` (it yields the same
actions, so :class:`~msmtp_twisted.protocol.session.SessionProtocol` drives it),
built from that module's pieces (AUTH, the pipelined envelope, the body) but
deciding as Twisted 26.10's ``SMTPClient``/``ESMTPClient`` decide:

- greeting ``220``, else :class:`SMTPConnectError` (fatal: the connection is closed);
- ``HELO`` only for ``SMTPSenderFactory``; ``EHLO`` for ``ESMTPSenderFactory``,
  falling back to ``HELO`` only with ``heloFallback`` and neither authentication
  nor (on a connection not yet secure) TLS required, else
  :class:`EHLORequiredError`;
- STARTTLS when there is something to start TLS with (a ``contextFactory``, or
  one made for ``hostname``) and the server offers it; without either,
  :class:`TLSRequiredError` if TLS is required, clear text otherwise; never on a
  connection that is TLS already (``connectSSL``, a TLS endpoint);
- AUTH when there is a password and the server offers AUTH (the method chosen
  as ``msmtp`` chooses it: no password in clear without TLS);
  :class:`AUTHRequiredError` when it is required and cannot be done;
- every recipient tried; the mail goes to the accepted ones; the outcome (the
  reply to the final dot, or the refusal of the sender, of every recipient, of
  DATA) goes to ``sent_mail`` with every RCPT reply, then RSET and QUIT.

Twisted's error classes are raised here (they are
:class:`~msmtp_twisted.errors.SMTPFailure` too, with a ``cause``); the protocol
reports them.  No Twisted I/O is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass

from msmtp_twisted import sysexits
from msmtp_twisted.errors import Cause, SMTPFailure
from msmtp_twisted.protocol.compat_errors import (
    AUTHDeclinedError,
    AuthenticationError,
    AUTHRequiredError,
    EHLORequiredError,
    SMTPConnectError,
    SMTPProtocolError,
    SMTPTLSError,
    TLSRequiredError,
)
from msmtp_twisted.smtp.client import (
    RECEIVE,
    SEND_BODY,
    START_TLS,
    Action,
    AuthRequest,
    Capabilities,
    Send,
    SendmailRequest,
    authenticate,
    command,
    envelope,
    parse_capabilities,
)
from msmtp_twisted.smtp.reply import Reply

__all__ = ["SenderSettings", "SenderState", "sender_session"]

#: the addresses list of Twisted's results: ``(address as given, code, response)``
Addresses = list[tuple[bytes, int, bytes]]
#: what the ``msmtp`` command would say about a refused mail: exit code, message, reply
Msmtp = tuple[int, str, Reply | None]
#: ``sent_mail(code, resp, number_accepted, addresses, msmtp)``: SenderMixin.sentMail
SentMail = Callable[[int, bytes, int, Addresses, Msmtp | None], None]


@dataclass(frozen=True)
class SenderSettings:
    """What the factory asked for.  ``recipients`` pairs each address as given
    (returned in the results) with the address sent in ``RCPT TO:<...>``."""

    identity: str
    sender: str
    recipients: tuple[tuple[bytes, str], ...]
    esmtp: bool = True
    helo_fallback: bool = False
    require_authentication: bool = False
    require_transport_security: bool = False
    #: a context to start TLS with is at hand
    can_tls: bool = False
    username: str | None = None
    password: str | None = None
    #: the server's name for DIGEST-MD5 and OAUTHBEARER
    auth_host: str = "localhost"
    port: int = 25


@dataclass
class SenderState:
    """Where the session is, for the protocol (timeouts, retries, cancellation)."""

    #: the connection is TLS (from the start, or after STARTTLS)
    tls: bool = False
    #: the mail is being streamed
    in_body: bool = False
    #: the final dot has been handed to the transport: from here on the server may
    #: have the mail, so it is never sent again and a cancel no longer aborts
    final_dot_sent: bool = False


def _resp(reply: Reply) -> bytes:
    """Twisted's ``resp``: the text of each line, joined by LF."""
    return b"\n".join(line[4:].encode("utf-8", "surrogateescape") for line in reply.lines)


def _receive() -> Generator[Action, object, Reply]:
    reply = yield RECEIVE
    assert isinstance(reply, Reply), reply
    return reply


def sender_session(
    settings: SenderSettings, state: SenderState, sent_mail: SentMail
) -> Generator[Action, object, None]:
    greeting = yield from _receive()
    if greeting.code != 220:
        raise SMTPConnectError(
            greeting.code, _resp(greeting), exitcode=sysexits.EX_PROTOCOL,
            message="cannot get initial OK message from server", reply=greeting,
        )
    if not settings.esmtp:
        yield from _helo(settings)
        caps = Capabilities()
    else:
        extended = yield from _ehlo(settings, state)
        if extended is None:
            caps = Capabilities()
        else:
            caps = extended
            if not state.tls and settings.can_tls and caps.starttls:
                yield command("STARTTLS")
                reply = yield from _receive()
                if reply.code != 220:
                    raise SMTPTLSError(
                        reply.code, b"Could not complete the SSL/TLS handshake",
                        exitcode=sysexits.EX_PROTOCOL, message="command STARTTLS failed",
                        reply=reply,
                    )
                yield START_TLS
                state.tls = True
                extended = yield from _ehlo(settings, state)
                caps = extended if extended is not None else Capabilities()
            elif not state.tls and settings.require_transport_security:
                raise TLSRequiredError(
                    502, b"Server does not support secure communication via TLS / SSL",
                    message="the server does not support TLS via the STARTTLS command"
                    if settings.can_tls else
                    "TLS is required, but the factory has no contextFactory and no hostname",
                    cause=Cause.UNSUPPORTED if settings.can_tls else Cause.LOCAL,
                )
            if extended is not None:
                yield from _authenticate(settings, state, caps)
    yield from _transaction(settings, state, caps, sent_mail)


def _helo(settings: SenderSettings) -> Generator[Action, object, None]:
    yield command(f"HELO {settings.identity}")
    reply = yield from _receive()
    if not 200 <= reply.code < 300:
        raise SMTPConnectError(
            reply.code, _resp(reply), exitcode=sysexits.EX_PROTOCOL,
            message="SMTP server does not accept EHLO or HELO commands", reply=reply,
        )


def _ehlo(
    settings: SenderSettings, state: SenderState
) -> Generator[Action, object, Capabilities | None]:
    """EHLO; None after a fallback to HELO (no TLS, no AUTH then, as in Twisted)."""
    yield command(f"EHLO {settings.identity}")
    reply = yield from _receive()
    if 200 <= reply.code < 300:
        return parse_capabilities(reply)
    need_tls = settings.require_transport_security and not state.tls
    if settings.helo_fallback and not settings.require_authentication and not need_tls:
        yield from _helo(settings)
        return None
    raise EHLORequiredError(
        502, b"Server does not support ESMTP Authentication", exitcode=sysexits.EX_PROTOCOL,
        message="the server does not accept EHLO", reply=reply,
    )


def _authenticate(
    settings: SenderSettings, state: SenderState, caps: Capabilities
) -> Generator[Action, object, None]:
    """Twisted authenticates when it has a secret and the server offers AUTH."""
    if not settings.password or not caps.auth:
        if settings.require_authentication:
            if not settings.password:
                raise _auth_required("authentication is required, but no password was given")
            raise _auth_required("the server does not support authentication",
                                 cause=Cause.UNSUPPORTED)
        return
    request = AuthRequest(
        user=settings.username, password=settings.password, host=settings.auth_host,
        port=settings.port, tls=state.tls,
    )
    sent = False
    session = authenticate(caps, request)
    value: object = None
    while True:
        try:
            action = session.send(value)
        except StopIteration:
            return
        except SMTPFailure as failure:
            if failure.reply is not None:
                reply = failure.reply
                raise AUTHDeclinedError(
                    reply.code, _resp(reply), exitcode=failure.exitcode,
                    message=failure.message, reply=reply,
                ) from None
            if sent:
                raise AuthenticationError(
                    501, failure.message.encode(), exitcode=failure.exitcode,
                    message=failure.message, cause=failure.cause,
                ) from None
            if settings.require_authentication:
                raise _auth_required(failure.message, failure.exitcode, failure.cause) from None
            # no method both sides accept: Twisted goes on without AUTH, and so do we
            # (msmtp's choice never sends a password in clear without TLS)
            return
        if isinstance(action, Send):
            sent = True
        value = yield action


def _auth_required(why: str, exitcode: int = sysexits.EX_UNAVAILABLE,
                   cause: Cause = Cause.AUTH) -> AUTHRequiredError:
    return AUTHRequiredError(
        502, b"Server does not support Client Authentication schemes", exitcode=exitcode,
        message=why, cause=cause,
    )


def _transaction(
    settings: SenderSettings, state: SenderState, caps: Capabilities, sent_mail: SentMail
) -> Generator[Action, object, None]:
    request = SendmailRequest(
        envelope_from=settings.sender, recipients=tuple(w for _, w in settings.recipients),
        partial_recipients=True,
    )

    def addresses(replies: list[tuple[str, Reply]]) -> Addresses:
        # envelope() returns the replies in the order of the recipients
        return [(original, reply.code, _resp(reply))
                for (original, _), (_, reply) in zip(settings.recipients, replies,
                                                     strict=False)]

    def accepted(result: Addresses) -> int:
        return sum(1 for _, code, _ in result if 200 <= code < 300)

    try:
        replies = yield from envelope(request, caps)
    except SMTPFailure as failure:
        result = addresses(failure.recipients)
        msmtp = (failure.exitcode, failure.message, failure.reply)
        if failure.recipients and not accepted(result):
            # as Twisted: the last RCPT reply's code, and this text
            sent_mail(result[-1][1], b"No recipients accepted", 0, result, msmtp)
        elif failure.reply is not None:
            sent_mail(failure.reply.code, _resp(failure.reply), accepted(result), result, msmtp)
        else:  # pragma: no cover - envelope() failures always carry a reply
            raise
        yield from _reset()
        return
    result = addresses(replies)
    state.in_body = True
    mailsize = yield SEND_BODY
    state.in_body = False
    if isinstance(mailsize, Reply):
        # the server answered before the end of the mail: it cannot have it
        if mailsize.code >= 400:
            sent_mail(mailsize.code, _resp(mailsize), accepted(result), result,
                      (sysexits.EX_UNAVAILABLE, "the server did not accept the mail", mailsize))
        raise SMTPProtocolError(
            mailsize.code, _resp(mailsize), exitcode=sysexits.EX_PROTOCOL,
            message="the server replied before the end of the mail", reply=mailsize,
            cause=Cause.PROTOCOL,
        )
    state.final_dot_sent = True
    yield command(".")
    reply = yield from _receive()
    sent_mail(reply.code, _resp(reply), accepted(result), result,
              None if 200 <= reply.code < 300 else
              (sysexits.EX_UNAVAILABLE, "the server did not accept the mail", reply))
    yield from _reset()


def _reset() -> Generator[Action, object, None]:
    """Twisted's sender ends a transaction with RSET (then QUIT)."""
    yield command("RSET")
    yield RECEIVE

