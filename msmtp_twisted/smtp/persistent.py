"""The SMTP/LMTP client conversation on a connection kept for many jobs, without I/O.

:func:`persistent_session` is a generator in the shape of
:mod:`msmtp_twisted.smtp.client`'s sessions (it yields the same actions:
``Send``, ``RECEIVE``, ``SEND_BODY``, ``START_TLS``, ``PASSWORD``,
``CHANNEL_BINDING``) plus two:

- :data:`NEXT_JOB`: the session is ready for the next job; the driver resumes it
  with a :class:`MailJob`, an :class:`EtrnJob`, or :data:`QUIT_JOB` (or None),
  which ends the session (the driver then sends QUIT, as after any session);
- :class:`JobDone`: the outcome of the job just run (a result or a failure that
  left the connection usable); the driver hands it on and resumes with None.

The greeting, EHLO/LHLO, STARTTLS and AUTH run once, before the first
:data:`NEXT_JOB`; a failure there ends the session (raised, as in the one-shot
sessions).  Per mail: MAIL, RCPT... and DATA (pipelined in one group when the
server offers PIPELINING, and every reply of a group is read before any is
judged, so the connection stays in step), the body, the final dot and its
reply (SMTP) or one reply per accepted recipient (LMTP).

A refusal of MAIL, RCPT or DATA is a :class:`JobDone` failure and the
connection stays usable: the next job starts with RSET (:attr:`ConnectionState.
transaction_open`).  What leaves the connection unusable is raised instead, and
ends the session: a ``421`` (the server is closing), a pipelined DATA the server
accepted although the mail is given up (the connection is closed without the
final dot, so nothing is delivered; QUIT would be read as mail data), a reply
during the body, a broken connection (the driver's failure), a refused RSET.
:class:`ConnectionState` says where the session is, for the driver: whether the
connection may be reused and whether the current mail's final dot has been sent
(before it, the server cannot have the mail).

DSN per mail (RFC 3461): ``NOTIFY`` on each RCPT, ``RET`` and ``ENVID`` (xtext
encoded) on MAIL; a server that does not offer DSN gets no mail with DSN
options (the job fails with :attr:`~msmtp_twisted.errors.Cause.UNSUPPORTED`,
as msmtp refuses), and the connection stays usable.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field

from msmtp_twisted import sysexits
from msmtp_twisted.errors import Cause, LMTPRecipientFailure, SMTPFailure
from msmtp_twisted.smtp.client import (
    NEXT_JOB,
    PIPELINE_LIMIT,
    RECEIVE,
    SEND_BODY,
    Action,
    AuthRequest,
    Capabilities,
    Delivered,
    JobDone,
    Send,
    _Marker,
    authenticate,
    command,
    early_reply_failure,
    open_session,
)
from msmtp_twisted.smtp.reply import Reply

__all__ = [
    "ConnectionState",
    "EtrnJob",
    "JobDone",
    "MailJob",
    "NEXT_JOB",
    "QUIT_JOB",
    "SessionSetup",
    "check_dsn",
    "persistent_session",
    "xtext",
]

#: the job that ends the session (QUIT)
QUIT_JOB = _Marker("QUIT_JOB")

#: RFC 3461: the ENVID is at most 100 characters
MAX_ENVID = 100
_NOTIFY = ("SUCCESS", "FAILURE", "DELAY")


@dataclass(frozen=True)
class SessionSetup:
    """What runs once per connection: hello, STARTTLS, AUTH."""

    protocol: str = "smtp"
    domain: str = "localhost"
    starttls: bool = False
    auth: AuthRequest | None = None


@dataclass(frozen=True)
class MailJob:
    """The envelope of one mail (the body comes from the driver, at ``SEND_BODY``).

    ``notify``: ``"NEVER"`` or a comma-separated list of SUCCESS, FAILURE, DELAY;
    ``ret``: ``"FULL"`` or ``"HDRS"``; ``envid``: the envelope identifier as given
    (printable ASCII; sent xtext-encoded).  ``partial_recipients``: send the mail
    to the accepted recipients when some are refused (the job fails only when none
    is accepted); off, the first refused recipient fails the job.
    """

    envelope_from: str
    recipients: tuple[str, ...]
    notify: str | None = None
    ret: str | None = None
    envid: str | None = None
    partial_recipients: bool = False


@dataclass(frozen=True)
class EtrnJob:
    """One ETRN request (RFC 1985); the result is the server's :class:`Reply`."""

    argument: str


@dataclass
class ConnectionState:
    """Where a :func:`persistent_session` is, for its driver."""

    capabilities: Capabilities = field(default_factory=Capabilities)
    greeting: Reply | None = None
    #: hello, STARTTLS and AUTH are done
    ready: bool = False
    #: jobs may still be run on this connection
    reusable: bool = True
    #: a refused command left a transaction open: RSET before the next job
    transaction_open: bool = False
    #: the current mail's final dot has been handed to the driver: from here on
    #: the server may have the mail (never send it again; a cancel cannot undo it)
    final_dot_sent: bool = False
    #: replies read for the current job (RSET's not counted)
    replies_read: int = 0


def check_dsn(notify: str | None, ret: str | None, envid: str | None) -> None:
    """Raises ValueError for DSN options RFC 3461 does not allow."""
    if notify is not None:
        words = [w.strip().upper() for w in notify.split(",")]
        if words != ["NEVER"] and (not words or any(w not in _NOTIFY for w in words)
                                   or len(set(words)) != len(words)):
            raise ValueError(f"invalid DSN notify {notify!r}: NEVER, or a list of "
                             "SUCCESS, FAILURE, DELAY")
    if ret is not None and ret.upper() not in ("FULL", "HDRS"):
        raise ValueError(f"invalid DSN ret {ret!r}: FULL or HDRS")
    if envid is not None:
        if not envid or len(envid) > MAX_ENVID:
            raise ValueError(f"the ENVID must be 1 to {MAX_ENVID} characters")
        if any(not 32 <= ord(c) <= 126 for c in envid):
            raise ValueError("the ENVID must be printable ASCII")


def xtext(text: str) -> str:
    """RFC 3461 xtext: ``+``, ``=``, and characters outside ``!``..``~`` as ``+XX``."""
    return "".join(
        c if 33 <= ord(c) <= 126 and c not in "+=" else f"+{ord(c):02X}" for c in text
    )


def _reply(value: object) -> Reply:
    assert isinstance(value, Reply), value
    return value


def _refused(status: int) -> int:
    return sysexits.EX_UNAVAILABLE if 400 <= status <= 499 else sysexits.EX_DATAERR


def _accepted(reply: Reply) -> bool:
    return reply.code in (250, 251)


class _Fatal(Exception):
    """A failure after which the connection cannot be used."""

    def __init__(self, failure: SMTPFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


def persistent_session(setup: SessionSetup, state: ConnectionState
                       ) -> Generator[Action, object, None]:
    """Hello, STARTTLS, AUTH; then jobs until :data:`QUIT_JOB` (see the module)."""
    start = yield from open_session(setup.protocol, setup.domain, setup.starttls)
    state.greeting = start.greeting
    state.capabilities = start.capabilities
    if setup.auth is not None:
        yield from authenticate(start.capabilities, setup.auth)
    state.ready = True
    while True:
        job = yield NEXT_JOB
        if job is None or job is QUIT_JOB:
            return
        state.final_dot_sent = False
        state.replies_read = 0
        result: object
        try:
            if isinstance(job, MailJob):
                result = yield from _mail(setup, state, job)
            elif isinstance(job, EtrnJob):
                result = yield from _etrn(state, job)
            else:  # pragma: no cover - a programming error in the driver
                raise AssertionError(f"unknown job {job!r}")
        except _Fatal as fatal:
            state.reusable = False
            raise fatal.failure from None
        except SMTPFailure as failure:
            yield JobDone(failure=failure)
        else:
            yield JobDone(result=result)
            if not state.reusable:  # an LMTP server said 421 for some recipients
                return


def _closing(reply: Reply) -> bool:
    return reply.code == 421


def _reset(state: ConnectionState) -> Generator[Action, object, None]:
    yield command("RSET")
    reply = _reply((yield RECEIVE))
    if reply.code != 250:
        raise _Fatal(SMTPFailure(sysexits.EX_PROTOCOL, "command RSET failed", reply,
                                 quit=not _closing(reply)))
    state.transaction_open = False


def _etrn(state: ConnectionState, job: EtrnJob) -> Generator[Action, object, Reply]:
    if not state.capabilities.etrn:
        raise SMTPFailure(sysexits.EX_UNAVAILABLE,
                          "the server does not support Remote Message Queue Starting",
                          cause=Cause.UNSUPPORTED)
    send = command(f"ETRN {job.argument}")
    if state.transaction_open:
        yield from _reset(state)
    yield send
    reply = _reply((yield RECEIVE))
    state.replies_read += 1
    if reply.code in (250, 251, 252, 253):
        return reply
    if _closing(reply):
        raise _Fatal(SMTPFailure(sysexits.EX_UNAVAILABLE, "command ETRN failed", reply))
    if reply.code in (458, 459):
        raise SMTPFailure(sysexits.EX_UNAVAILABLE, "the server is unable to fulfill the request",
                          reply)
    if reply.code in (500, 501):
        raise SMTPFailure(sysexits.EX_DATAERR,
                          "invalid argument for Remote Message Queue Starting", reply)
    raise SMTPFailure(sysexits.EX_PROTOCOL, "command ETRN failed", reply)


def _mail(setup: SessionSetup, state: ConnectionState, job: MailJob
          ) -> Generator[Action, object, Delivered]:
    caps = state.capabilities
    if (job.notify or job.ret or job.envid) and not caps.dsn:
        raise SMTPFailure(sysexits.EX_UNAVAILABLE, "the server does not support DSN",
                          cause=Cause.UNSUPPORTED)
    # every command line is built (and checked) before anything is sent
    sender = "" if job.envelope_from.upper() == "MAILER-DAEMON" else job.envelope_from
    mail = f"MAIL FROM:<{sender}>"
    if job.ret:
        mail += f" RET={job.ret.upper()}"
    if job.envid:
        mail += f" ENVID={xtext(job.envid)}"
    commands: list[tuple[str, str | None, Send]] = [("MAIL", None, command(mail))]
    notify = job.notify.upper().replace(" ", "") if job.notify else None
    for address in job.recipients:
        text = f"RCPT TO:<{address}>"
        if notify:
            text += f" NOTIFY={notify}"
        commands.append(("RCPT", address, command(text)))
    commands.append(("DATA", None, command("DATA")))
    if state.transaction_open:
        yield from _reset(state)

    replies: list[tuple[str, Reply]] = []
    limit = PIPELINE_LIMIT if caps.pipelining else 1
    # from MAIL's reply on, a failure leaves a transaction that RSET must end
    for start in range(0, len(commands), limit):
        group = commands[start:start + limit]
        if group[0][0] == "DATA" and not any(_accepted(r) for _, r in replies):
            # without pipelining, DATA alone: not sent when no recipient was accepted
            state.transaction_open = True
            raise _no_recipient(replies)
        for _, _, send in group:
            yield send
        got: list[tuple[str, str | None, Reply]] = []
        for kind, rcpt, _ in group:
            got.append((kind, rcpt, _reply((yield RECEIVE))))
            state.replies_read += 1
        # DATA, when in this group, is its last command
        data_open = got[-1][0] == "DATA" and got[-1][2].code == 354
        failure: SMTPFailure | None = None
        fatal = False
        for kind, rcpt, reply in got:
            if kind == "RCPT":
                assert rcpt is not None
                replies.append((rcpt, reply))
            if _closing(reply):
                fatal = True
            if failure is not None:
                continue
            if kind == "MAIL" and reply.code != 250:
                failure = SMTPFailure(
                    _refused(reply.code),
                    f"envelope from address {job.envelope_from} not accepted by the server",
                    reply, quit=True)
            elif kind == "RCPT" and not _accepted(reply) and not job.partial_recipients:
                failure = SMTPFailure(
                    _refused(reply.code), f"recipient address {rcpt} not accepted by the server",
                    reply, quit=True)
            elif kind == "DATA":
                if not any(_accepted(r) for _, r in replies):
                    failure = _no_recipient(replies)
                elif reply.code != 354:
                    failure = SMTPFailure(_refused(reply.code),
                                          "the server does not accept mail data", reply,
                                          quit=True)
        if failure is not None:
            failure.recipients = list(replies)
            state.transaction_open = True
            if data_open or fatal:
                # the server waits for mail data: only closing gives up the mail
                # (a lone dot would deliver an empty one, QUIT would be data)
                failure.quit = not data_open and not _closing(failure.reply or _OK)
                raise _Fatal(failure)
            raise failure
        if fatal:
            raise _Fatal(SMTPFailure(sysexits.EX_UNAVAILABLE, "the server is closing the "
                                     "connection", next(r for _, _, r in got if _closing(r))))
    mailsize = yield SEND_BODY
    if isinstance(mailsize, Reply):
        failure = early_reply_failure(mailsize)
        failure.recipients = list(replies)
        raise _Fatal(failure)
    assert isinstance(mailsize, int)
    state.final_dot_sent = True
    yield Send(b".\r\n")
    if setup.protocol != "lmtp":
        reply = _reply((yield RECEIVE))
        state.replies_read += 1
        if reply.code != 250:
            failure = SMTPFailure(sysexits.EX_UNAVAILABLE, "the server did not accept the mail",
                                  reply, quit=True, recipients=replies)
            if _closing(reply):
                failure.quit = False
                raise _Fatal(failure)
            raise failure
        return Delivered(reply, mailsize, tuple(replies))
    delivered: list[tuple[str, Reply]] = []
    for rcpt in [r for r, reply in replies if _accepted(reply)]:
        reply = _reply((yield RECEIVE))
        state.replies_read += 1
        delivered.append((rcpt, reply))
    failures = [LMTPRecipientFailure(r, reply) for r, reply in delivered if reply.code != 250]
    closing = any(_closing(reply) for _, reply in delivered)
    if failures and not (job.partial_recipients and len(failures) < len(delivered)):
        failure = SMTPFailure(sysexits.EX_UNAVAILABLE, "delivery to one or more recipients failed",
                              lmtp_failures=failures, recipients=replies, lmtp_replies=delivered,
                              quit=not closing)
        if closing:
            raise _Fatal(failure)
        raise failure
    if closing:
        state.reusable = False
    return Delivered(None, mailsize, tuple(replies), tuple(delivered))


_OK = Reply(250, ("250 ok",))


def _no_recipient(replies: list[tuple[str, Reply]]) -> SMTPFailure:
    refused = [(r, rep) for r, rep in replies if not _accepted(rep)]
    if not refused:  # pragma: no cover - a mail without recipients is refused earlier
        return SMTPFailure(sysexits.EX_DATAERR, "no recipients", cause=Cause.LOCAL)
    first, reply = refused[0]
    return SMTPFailure(_refused(reply.code),
                       f"recipient address {first} not accepted by the server",
                       reply, quit=True, recipients=replies)
