"""The SMTP/LMTP client conversation, without I/O.

Each session is a generator that yields *actions* and receives their results:

- ``Send(data)``: queue a command line; nothing is awaited.
- ``RECEIVE``: the driver flushes what was queued, then resumes the generator
  with the next :class:`~msmtp_twisted.smtp.reply.Reply`.  Queuing several
  ``Send`` before the first ``RECEIVE`` is how pipelining happens.
- ``SEND_BODY``: the driver streams the encoded mail and resumes with the mail
  size; the core never sees the body, so it can be any size.  If the server
  replies before the mail is sent (it owes no reply then), the driver stops
  sending and resumes with that :class:`~msmtp_twisted.smtp.reply.Reply` instead.
- ``START_TLS``: the driver starts TLS on the connection, then resumes.

A session ends by returning a :class:`Delivered` result or by raising
:class:`~msmtp_twisted.errors.SMTPFailure`, which carries msmtp's message, the
server's reply lines, the exit code and the cause.  After either,
``quit_session()`` is run if the result says so, exactly where msmtp sends QUIT
(and where it just closes).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field

from msmtp_twisted import sysexits
from msmtp_twisted.errors import Cause, LMTPRecipientFailure, SMTPFailure
from msmtp_twisted.smtp.reply import Reply

__all__ = [
    "AuthRequest",
    "CHANNEL_BINDING",
    "Capabilities",
    "Delivered",
    "INLINE",
    "JobDone",
    "MAX_COMMAND",
    "NEXT_JOB",
    "PASSWORD",
    "PIPELINE_LIMIT",
    "RECEIVE",
    "SEND_BODY",
    "START_TLS",
    "Send",
    "SendmailRequest",
    "SessionStart",
    "authenticate",
    "command",
    "early_reply_failure",
    "envelope",
    "etrn_session",
    "greeting",
    "hello",
    "open_session",
    "parse_capabilities",
    "quit_session",
    "sendmail_session",
    "serverinfo_session",
]

#: msmtp sends at most this many commands before reading their replies.
PIPELINE_LIMIT = 100
#: msmtp refuses to send longer command lines.
MAX_COMMAND = 4094


@dataclass(frozen=True)
class Send:
    data: bytes
    #: what a protocol trace shows instead of ``data`` (AUTH exchanges are masked)
    shown: bytes | None = field(default=None, repr=False)


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


RECEIVE = _Marker("RECEIVE")
SEND_BODY = _Marker("SEND_BODY")
START_TLS = _Marker("START_TLS")
#: the driver resumes with the TLS channel binding data: ``{"tls-exporter": b"..."}`` or
#: ``{"tls-unique": b"..."}``, or ``{}`` without TLS
CHANNEL_BINDING = _Marker("CHANNEL_BINDING")
#: the driver resumes with a password from the account's other sources (key ring, netrc,
#: a prompt), or None; the action carries no data: :attr:`AuthRequest.user`/``host`` say whose
PASSWORD = _Marker("PASSWORD")

#: a session that runs many jobs waits for the next one (:mod:`msmtp_twisted.smtp.persistent`)
NEXT_JOB = _Marker("NEXT_JOB")


@dataclass(frozen=True)
class JobDone:
    """The outcome of one job of a session that runs many: ``result``
    (:class:`Delivered` for a mail, the :class:`Reply` for ETRN), or ``failure``
    (the connection stays usable)."""

    result: object = None
    failure: SMTPFailure | None = None


Action = Send | _Marker | JobDone
Session = Generator[Action, object, "Delivered"]


@dataclass(frozen=True)
class Delivered:
    """A mail the server accepted (for some recipients, with partial_recipients)."""

    reply: Reply | None  # the reply to the final dot (SMTP); None for LMTP
    mailsize: int
    #: every RCPT reply, ``(address, reply)`` in the order sent (refused ones too
    #: with :attr:`SendmailRequest.partial_recipients`)
    recipients: tuple[tuple[str, Reply], ...] = ()
    #: LMTP: the reply after the final dot for each recipient whose RCPT was
    #: accepted, ``(address, reply)`` in order (refused deliveries too, when some
    #: succeeded and partial recipients were asked for); empty for SMTP
    lmtp_replies: tuple[tuple[str, Reply], ...] = ()

    @property
    def accepted(self) -> tuple[str, ...]:
        """The recipients the mail went to: RCPT accepted and, for LMTP, delivered."""
        if self.lmtp_replies:
            return tuple(r for r, reply in self.lmtp_replies if reply.code == 250)
        return tuple(r for r, reply in self.recipients if reply.code in (250, 251))

    @property
    def refused(self) -> tuple[tuple[str, Reply], ...]:
        """The recipients the mail did not go to, each with the server's reply (to
        RCPT, or for LMTP after the final dot)."""
        out = [(r, reply) for r, reply in self.recipients if reply.code not in (250, 251)]
        out += [(r, reply) for r, reply in self.lmtp_replies if reply.code != 250]
        return tuple(out)


@dataclass
class Capabilities:
    """What the EHLO/LHLO reply offered, read the way msmtp reads it."""

    starttls: bool = False
    dsn: bool = False
    pipelining: bool = False
    size: int | None = None
    auth: bool = False
    auth_mechanisms: list[str] = field(default_factory=list)
    etrn: bool = False
    smtputf8: bool = False
    lines: tuple[str, ...] = ()
    auth_lines: list[str] = field(default_factory=list)

    def auth_offers(self, mechanism: str) -> bool:
        """msmtp's test: the name appears anywhere in an AUTH line (so "SCRAM-SHA-1"
        is found in "SCRAM-SHA-1-PLUS" too)."""
        return any(mechanism in line for line in self.auth_lines)


_LONG_MAX = 2**63 - 1


def _strtol(text: str) -> int | None:
    """C's ``strtol(text, &end, 10)`` as msmtp checks it: leading white space and
    a sign allowed, nothing after the digits, no overflow; else None."""
    i, n = 0, len(text)
    while i < n and text[i] in " \t\n\v\f\r":
        i += 1
    sign = 1
    if i < n and text[i] in "+-":
        sign = -1 if text[i] == "-" else 1
        i += 1
    digits = text[i:]
    if not digits or not digits.isascii() or not digits.isdigit():
        return None
    value = sign * int(digits)
    if not -_LONG_MAX - 1 <= value <= _LONG_MAX:
        return None
    return value


def parse_capabilities(reply: Reply) -> Capabilities:
    caps = Capabilities(lines=reply.lines)
    for line in reply.lines:
        s = line[4:].upper()
        if s.startswith("STARTTLS"):
            caps.starttls = True
        elif s.startswith("DSN"):
            caps.dsn = True
        elif s.startswith("PIPELINING"):
            caps.pipelining = True
        elif s.startswith("SIZE"):
            # "SIZE" without a valid number tells nothing (RFC 1870); 0 = no limit
            size = _strtol(s[4:])
            if size is not None and size >= 0:
                caps.size = size
        elif s.startswith(("AUTH ", "AUTH=")):  # "AUTH=" from broken old servers
            caps.auth = True
            caps.auth_lines.append(s[5:])
            for mech in s[5:].split():
                if mech not in caps.auth_mechanisms:
                    caps.auth_mechanisms.append(mech)
        elif s.startswith("ETRN"):
            caps.etrn = True
        elif s.startswith("SMTPUTF8"):
            caps.smtputf8 = True
    return caps


def command(text: str) -> Send:
    """A command line; raises :class:`SMTPFailure` for one msmtp would refuse,
    and for one with a line break in it (an address such as ``a@b>\\r\\nRCPT
    TO:<c@d`` would send a second command; msmtp 1.8.23 sends it)."""
    if len(text) > MAX_COMMAND:
        raise SMTPFailure(
            sysexits.EX_DATAERR,
            f"Cannot send command because it is longer than {MAX_COMMAND} characters. "
            "Increase SMTP_MAXCMDLEN.",
            cause=Cause.LOCAL,
        )
    if "\r" in text or "\n" in text:
        raise SMTPFailure(
            sysexits.EX_DATAERR,
            "Cannot send command because it contains a line break (CR or LF).",
            cause=Cause.LOCAL,
        )
    return Send(text.encode("utf-8", "surrogateescape") + b"\r\n")


def _reply(value: object) -> Reply:
    assert isinstance(value, Reply), value
    return value


def greeting() -> Generator[Action, object, Reply]:
    reply = _reply((yield RECEIVE))
    if reply.code != 220:
        raise SMTPFailure(
            sysexits.EX_PROTOCOL, "cannot get initial OK message from server", reply
        )
    return reply


def hello(protocol: str, domain: str) -> Generator[Action, object, Capabilities]:
    """EHLO (falling back to HELO) or LHLO; returns the capabilities."""
    if protocol == "lmtp":
        yield command(f"LHLO {domain}")
        reply = _reply((yield RECEIVE))
        if reply.code != 250:
            raise SMTPFailure(sysexits.EX_PROTOCOL, "command LHLO failed", reply)
        return parse_capabilities(reply)
    yield command(f"EHLO {domain}")
    reply = _reply((yield RECEIVE))
    if reply.code == 250:
        return parse_capabilities(reply)
    yield command(f"HELO {domain}")
    reply = _reply((yield RECEIVE))
    if reply.code != 250:
        raise SMTPFailure(
            sysexits.EX_PROTOCOL, "SMTP server does not accept EHLO or HELO commands", reply
        )
    return Capabilities()


@dataclass(frozen=True)
class AuthRequest:
    """What AUTH needs from the account.

    ``mechanism``: ``""`` for msmtp's automatic choice, else a SASL name.  ``host`` and
    ``port`` go into DIGEST-MD5's digest-uri and OAUTHBEARER's message (msmtp passes
    the socket name as host for unix sockets).  ``tls``: whether TLS is active when AUTH
    runs.  ``supported``: the mechanisms this client can run (None: all built-in ones).
    Without ``password`` the session asks the driver with :data:`PASSWORD`, only when the
    chosen mechanism needs one, as msmtp does.
    """

    mechanism: str = ""
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    host: str = "localhost"
    port: int = 25
    tls: bool = False
    supported: tuple[str, ...] | None = None
    #: skip AUTH when the server does not offer it (Twisted's requireAuthentication=False)
    optional: bool = False
    ntlmdomain: str | None = None


#: Mechanisms whose first message goes with the AUTH command, as msmtp sends them
#: (GNU SASL's other mechanisms wait for the server's first 334).
INLINE = ("PLAIN", "OAUTHBEARER")

_HIDDEN = b"[hidden]"


def _secret(line: str, shown: bytes) -> Send:
    send = command(line)
    return Send(send.data, shown=shown + b"\r\n")


def _supported(builtin: tuple[str, ...]) -> tuple[str, ...]:
    from msmtp_twisted.auth.optional import availability

    return builtin + tuple(m for m, why in availability().items() if why is None)


def authenticate(caps: Capabilities, auth: AuthRequest) -> Generator[Action, object, str]:
    """AUTH with the mechanism msmtp would choose; returns the mechanism's name
    (``""`` when an optional AUTH was skipped).

    Failures are msmtp's: the server offers no AUTH (69, with QUIT), no usable or
    offered mechanism (69/70), no user name or password (69), a refusal (77 with the
    server's reply), a challenge that cannot be answered or a server that cannot
    prove it knows the password (76/77; the connection is closed without a reply).
    """
    # imported here: mails without AUTH should not pay for hashlib, stringprep, ...
    from msmtp_twisted.auth.choose import AuthChoiceError, choose_mechanism
    from msmtp_twisted.auth.mechanisms import (
        MECHANISMS,
        SASLError,
        create,
        decode_challenge,
        encode_initial_response,
        encode_response,
    )

    if not caps.auth:
        if auth.optional:
            return ""
        raise SMTPFailure(
            sysexits.EX_UNAVAILABLE, "the server does not support authentication", quit=True,
            cause=Cause.UNSUPPORTED,
        )
    want = auth.mechanism.upper()
    if want == "ON":
        want = ""
    binding: dict[str, bytes] = {}
    if auth.tls and (not want or want.endswith("-PLUS")):
        got = yield CHANNEL_BINDING
        if isinstance(got, dict):
            binding = got
    try:
        name = choose_mechanism(
            caps.auth_mechanisms, tls=auth.tls, channel_binding=bool(binding),
            requested=want,
            supported=_supported(MECHANISMS) if auth.supported is None else auth.supported,
        )
    except AuthChoiceError as e:
        message = e.message
        if e.exitcode == sysexits.EX_SOFTWARE:  # a method this installation lacks
            from msmtp_twisted.auth.optional import availability

            why = availability().get(want)
            if why:
                message += f" ({why})"
        raise SMTPFailure(e.exitcode, message, cause=Cause.AUTH) from None
    user, password = auth.user, auth.password
    if name != "EXTERNAL":
        if user is None:
            raise SMTPFailure(
                sysexits.EX_UNAVAILABLE, f"authentication method {name} needs a user name",
                cause=Cause.AUTH,
            )
        if name != "GSSAPI" and password is None:
            got = yield PASSWORD
            if not isinstance(got, str):
                raise SMTPFailure(
                    sysexits.EX_UNAVAILABLE, f"authentication method {name} needs a password",
                    cause=Cause.AUTH,
                )
            password = got
    cb = None
    if name.endswith("-PLUS"):
        cb_type = "tls-exporter" if "tls-exporter" in binding else "tls-unique"
        cb = (cb_type, binding[cb_type])
    try:
        mech = create(name, user=user, password=password, host=auth.host, port=auth.port,
                      channel_binding=cb, ntlmdomain=auth.ntlmdomain)
        initial = mech.initial_response() if name in INLINE else None
    except SASLError as e:
        raise SMTPFailure(e.exitcode, e.message, cause=Cause.AUTH) from None
    if initial is None:
        yield command(f"AUTH {name}")
    else:
        yield _secret(f"AUTH {name} {encode_initial_response(initial)}",
                      f"AUTH {name} ".encode() + _HIDDEN)
    while True:
        reply = _reply((yield RECEIVE))
        try:
            if reply.code == 235:
                mech.finish()
                return name
            if reply.code != 334:
                details = []
                json_error = getattr(mech, "server_error_json", None)
                if json_error is not None:
                    import json

                    details.append("server error: " + json.dumps(json_error))
                raise SMTPFailure(
                    sysexits.EX_NOPERM, f"authentication failed (method {name})", reply,
                    details=details,
                )
            response = mech.respond(decode_challenge(reply.lines[0][4:], name))
        except SASLError as e:
            raise SMTPFailure(e.exitcode, e.message, cause=Cause.AUTH) from None
        encoded = encode_response(response)
        # an empty response tells nothing: show it as it is
        yield _secret(encoded, _HIDDEN if encoded else b"")


def _refused(status: int) -> int:
    return sysexits.EX_UNAVAILABLE if 400 <= status <= 499 else sysexits.EX_DATAERR


@dataclass(frozen=True)
class SendmailRequest:
    envelope_from: str
    recipients: tuple[str, ...]
    protocol: str = "smtp"
    domain: str = "localhost"
    dsn_notify: str | None = None
    dsn_return: str | None = None
    starttls: bool = False
    auth: AuthRequest | None = None
    #: go on when a recipient is refused and send the mail to the accepted ones, as
    #: Twisted's sender factories do; the session fails only if none is accepted.
    #: Off (msmtp): the first refused recipient ends the session.
    partial_recipients: bool = False


def _accepted(reply: Reply) -> bool:
    return reply.code in (250, 251)


def envelope(
    request: SendmailRequest, caps: Capabilities
) -> Generator[Action, object, list[tuple[str, Reply]]]:
    """MAIL, RCPT... and DATA, pipelined in groups of up to 100 when offered;
    returns every RCPT reply as ``(address, reply)``.

    Like msmtp, a refused command ends the session at once (no QUIT), even with
    replies to later pipelined commands still unread.

    With :attr:`SendmailRequest.partial_recipients` a refused RCPT is recorded and
    the transaction goes on; every reply of a pipelined group is read before any is
    judged, so the server is left between commands and a failure asks for QUIT.
    Without pipelining DATA is not sent when no recipient was accepted; pipelined,
    DATA went out with the RCPTs, and if the server accepts it all the same it gets
    a lone dot (RFC 2920, 3.1) before the session fails.
    """
    partial = request.partial_recipients
    sender = "" if request.envelope_from.upper() == "MAILER-DAEMON" else request.envelope_from
    mail = f"MAIL FROM:<{sender}>"
    if request.dsn_return:
        mail += f" RET={request.dsn_return}"
    commands: list[tuple[str, str | None, Send]] = [("MAIL", None, command(mail))]
    rcpt: str | None
    for rcpt in request.recipients:
        text = f"RCPT TO:<{rcpt}>"
        if request.dsn_notify:
            text += f" NOTIFY={request.dsn_notify}"
        commands.append(("RCPT", rcpt, command(text)))
    commands.append(("DATA", None, command("DATA")))
    limit = PIPELINE_LIMIT if caps.pipelining else 1
    replies: list[tuple[str, Reply]] = []

    def no_recipient() -> SMTPFailure:
        first, reply = next((r, rep) for r, rep in replies if not _accepted(rep))
        return SMTPFailure(
            _refused(reply.code), f"recipient address {first} not accepted by the server",
            reply, quit=True, recipients=replies,
        )

    for start in range(0, len(commands), limit):
        group = commands[start : start + limit]
        if partial and group[0][0] == "DATA" and not any(_accepted(r) for _, r in replies):
            raise no_recipient()
        for _, _, send in group:
            yield send
        got = []
        for kind, rcpt, _ in group:
            reply = _reply((yield RECEIVE))
            if partial:
                got.append((kind, rcpt, reply))
                continue
            if kind == "RCPT":
                assert rcpt is not None
                replies.append((rcpt, reply))
            _judge(request, kind, rcpt, reply, replies, quit=False)
        for kind, rcpt, reply in got:
            if kind == "RCPT":
                assert rcpt is not None
                replies.append((rcpt, reply))
            elif kind == "DATA" and not any(_accepted(r) for _, r in replies):
                if reply.code == 354:
                    yield Send(b".\r\n")
                    yield RECEIVE
                raise no_recipient()
            else:
                _judge(request, kind, rcpt, reply, replies, quit=True)
    return replies


def _judge(request: SendmailRequest, kind: str, rcpt: str | None, reply: Reply,
           replies: list[tuple[str, Reply]], *, quit: bool) -> None:
    """Raises the failure for a refused MAIL, RCPT (without partial_recipients) or DATA."""
    if kind == "MAIL" and reply.code != 250:
        raise SMTPFailure(
            _refused(reply.code),
            f"envelope from address {request.envelope_from} not accepted by the server",
            reply, quit=quit, recipients=replies,
        )
    if kind == "RCPT" and not _accepted(reply):
        raise SMTPFailure(
            _refused(reply.code), f"recipient address {rcpt} not accepted by the server",
            reply, quit=quit, recipients=replies,
        )
    if kind == "DATA" and reply.code != 354:
        raise SMTPFailure(
            _refused(reply.code), "the server does not accept mail data", reply,
            quit=quit, recipients=replies,
        )


@dataclass(frozen=True)
class SessionStart:
    greeting: Reply
    capabilities: Capabilities


def open_session(
    protocol: str, domain: str, starttls: bool
) -> Generator[Action, object, SessionStart]:
    """Greeting, EHLO/LHLO and, when asked, STARTTLS and a second EHLO/LHLO.

    Everything the server said before TLS is forgotten: only the capabilities
    from the second hello count.
    """
    welcome = yield from greeting()
    caps = yield from hello(protocol, domain)
    if starttls:
        if not caps.starttls:
            raise SMTPFailure(
                sysexits.EX_UNAVAILABLE,
                "the server does not support TLS via the STARTTLS command",
                quit=True,
                cause=Cause.UNSUPPORTED,
            )
        yield command("STARTTLS")
        reply = _reply((yield RECEIVE))
        if reply.code != 220:
            raise SMTPFailure(sysexits.EX_PROTOCOL, "command STARTTLS failed", reply)
        yield START_TLS
        caps = yield from hello(protocol, domain)
    return SessionStart(welcome, caps)


def sendmail_session(request: SendmailRequest) -> Session:
    """One mail, from the greeting to the reply(s) after the final dot."""
    start = yield from open_session(request.protocol, request.domain, request.starttls)
    caps = start.capabilities
    if (request.dsn_notify or request.dsn_return) and not caps.dsn:
        raise SMTPFailure(
            sysexits.EX_UNAVAILABLE, "the server does not support DSN", quit=True,
            cause=Cause.UNSUPPORTED,
        )
    if request.auth is not None:
        yield from authenticate(caps, request.auth)
    replies = yield from envelope(request, caps)
    mailsize = yield SEND_BODY
    if isinstance(mailsize, Reply):
        raise early_reply_failure(mailsize)
    assert isinstance(mailsize, int)
    yield Send(b".\r\n")
    if request.protocol != "lmtp":
        reply = _reply((yield RECEIVE))
        if reply.code != 250:
            raise SMTPFailure(
                sysexits.EX_UNAVAILABLE, "the server did not accept the mail", reply,
                recipients=replies,
            )
        return Delivered(reply, mailsize, tuple(replies))
    failures = []
    delivered = []
    # LMTP replies once per accepted recipient (all of them without partial_recipients)
    for rcpt in [r for r, reply in replies if _accepted(reply)]:
        reply = _reply((yield RECEIVE))
        delivered.append((rcpt, reply))
        if reply.code != 250:
            failures.append(LMTPRecipientFailure(rcpt, reply))
    if failures:
        raise SMTPFailure(
            sysexits.EX_UNAVAILABLE,
            "delivery to one or more recipients failed",
            lmtp_failures=failures,
            recipients=replies,
            lmtp_replies=delivered,
        )
    return Delivered(None, mailsize, tuple(replies), tuple(delivered))


def early_reply_failure(reply: Reply) -> SMTPFailure:
    """The failure for a reply that came while the mail was still being sent.

    msmtp reads nothing until it has sent the final dot and then takes the first
    reply as the answer to it; so a server that refuses early (a 552 or 554 as the
    mail grows too big) gets msmtp's refusal, which we report at once.  But a
    positive reply then is no acceptance: the server has not seen the whole mail
    (msmtp 1.8.23 exits 0 here, e.g. for a server flooding ``250`` lines), so it is
    a protocol error.
    """
    if reply.code >= 400:
        return SMTPFailure(sysexits.EX_UNAVAILABLE, "the server did not accept the mail", reply)
    return SMTPFailure(
        sysexits.EX_PROTOCOL, "the server replied before the end of the mail", reply,
        cause=Cause.PROTOCOL,
    )


def etrn_session(protocol: str, domain: str, argument: str, starttls: bool = False,
                 auth: AuthRequest | None = None) -> Session:
    """``--rmqs``: one ETRN request (RFC 1985)."""
    caps = (yield from open_session(protocol, domain, starttls)).capabilities
    if not caps.etrn:
        raise SMTPFailure(
            sysexits.EX_UNAVAILABLE,
            "the server does not support Remote Message Queue Starting",
            quit=True,
            cause=Cause.UNSUPPORTED,
        )
    if auth is not None:
        yield from authenticate(caps, auth)
    yield command(f"ETRN {argument}")
    reply = _reply((yield RECEIVE))
    if reply.code in (250, 251, 252, 253):
        return Delivered(reply, 0)
    if reply.code in (458, 459):
        raise SMTPFailure(
            sysexits.EX_UNAVAILABLE, "the server is unable to fulfill the request", reply
        )
    if reply.code in (500, 501):
        raise SMTPFailure(
            sysexits.EX_DATAERR, "invalid argument for Remote Message Queue Starting", reply
        )
    raise SMTPFailure(sysexits.EX_PROTOCOL, "command ETRN failed", reply)


def serverinfo_session(protocol: str, domain: str, starttls: bool = False) -> Session:
    """``--serverinfo``: what the server says about itself."""
    start = yield from open_session(protocol, domain, starttls)
    return start  # type: ignore[return-value]


def quit_session() -> Generator[Action, object, None]:
    """QUIT and its reply; the caller ignores any error, as msmtp does."""
    yield command("QUIT")
    yield RECEIVE
