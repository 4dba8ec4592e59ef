"""The msmtpd server conversation, without I/O.

Bytes go in (:meth:`SMTPServer.receive`), events come out: :class:`ServerReply` (bytes
to write), :class:`Log` (a line for msmtpd's log), :class:`MessageBegin`,
:class:`MessageData` and :class:`MessageEnd` (the mail, already converted the way
msmtpd pipes it: LF line endings, dot-unstuffed), :class:`AuthAttempt`,
:class:`MessageAborted` and :class:`Close`.  No Twisted, no sockets, no clock.

Two events need an answer from the driver before the conversation can go on:

- :class:`AuthAttempt`: call :meth:`SMTPServer.auth_result` with the verdict;
- :class:`MessageEnd`: call :meth:`SMTPServer.delivery_result` with the exit
  status of the pipe command (:func:`delivery_reply` maps it to msmtpd's reply).

Until then the server is *waiting*: input keeps being accepted but is only
buffered, and it is processed, in order, once the answer arrives.  That is what
makes pipelining safe: replies go out in command order and none is ever lost.

Replies and rules are those of msmtpd 1.8.23 (greeting ``220 localhost ESMTP
msmtpd``, ``500 Expected ...`` for a command out of sequence, msmtpd's address
character set, ``MAIL FROM:<>`` becoming ``MAILER-DAEMON``, AUTH PLAIN's
``334 ``/``235``/``535``/``530``), with the improvements documented in
``docs/msmtpd.md``: the session survives an error reply; EHLO offers PIPELINING,
SIZE and 8BITMIME (and AUTH PLAIN LOGIN); NOOP, RSET, VRFY and HELP exist;
command lines, message size and recipient count are capped; a client that
vanishes mid-DATA gets nothing delivered.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass, field
from enum import Enum

__all__ = [
    "AuthAttempt",
    "Close",
    "DEFAULT_MAX_LINE",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_MAX_RECIPIENTS",
    "DataDecoder",
    "ENVELOPE_ITEM_OVERHEAD",
    "Log",
    "MessageAborted",
    "MessageBegin",
    "MessageData",
    "MessageEnd",
    "SMTPServer",
    "ServerLimits",
    "ServerReply",
    "State",
    "TEMPFAIL_EXIT_CODES",
    "delivery_reply",
    "envelope_cost",
    "parse_address",
    "printable",
    "received_header",
    "sanitize_helo_name",
]

#: A command line may be this long, CRLF included (msmtpd: 1023 bytes with LF).
DEFAULT_MAX_LINE = 4096
#: Largest mail accepted, advertised as ``SIZE``: 256 MiB.
DEFAULT_MAX_MESSAGE_SIZE = 256 * 1024 * 1024
#: Most recipients in one mail (RFC 5321 requires at least 100).
DEFAULT_MAX_RECIPIENTS = 1000
#: After this many failed AUTH attempts in one session the session is closed.
DEFAULT_MAX_AUTH_FAILURES = 3

#: Exit codes of the pipe command that msmtpd reports as temporary failures:
#: EX_NOHOST, EX_UNAVAILABLE, EX_OSERR, EX_TEMPFAIL.
TEMPFAIL_EXIT_CODES = frozenset({68, 69, 71, 75})

GREETING = "localhost ESMTP msmtpd"
_LOGIN_USER = "VXNlcm5hbWU6"  # base64("Username:")
_LOGIN_PASS = "UGFzc3dvcmQ6"  # base64("Password:")
_HELP = "Commands: EHLO HELO AUTH MAIL RCPT DATA RSET NOOP VRFY HELP QUIT"


# ---------------------------------------------------------------------------
# events


@dataclass(frozen=True)
class ServerReply:
    """A reply the server sends; ``lines`` without CRLF (a multi-line reply has
    several), each without its code (unlike the client's
    :class:`~msmtp_twisted.smtp.reply.Reply`, which keeps the lines as received)."""

    code: int
    lines: tuple[str, ...]
    #: for a 250 after the mail: what the log says (msmtpd's words by default;
    #: msmtpd --queue says where it stored the mail itself, so None)
    logged: str | None = "mail was piped successfully"

    def to_bytes(self) -> bytes:
        out = []
        last = len(self.lines) - 1
        for i, line in enumerate(self.lines):
            sep = " " if i == last else "-"
            out.append(f"{self.code}{sep}{line}\r\n" if line else f"{self.code}{sep}\r\n")
        return "".join(out).encode("ascii")

    @property
    def text(self) -> str:
        return " ".join(self.lines)


@dataclass(frozen=True)
class Log:
    """A line for msmtpd's log; ``level`` is ``info`` or ``error``."""

    level: str
    message: str


@dataclass(frozen=True)
class MessageBegin:
    """DATA was accepted: a mail from ``sender`` to ``recipients`` starts.

    ``helo_name`` is the EHLO/HELO argument sanitised as msmtpd does for its
    ``Received:`` header (see :func:`sanitize_helo_name`)."""

    sender: str
    recipients: tuple[str, ...]
    helo_name: str
    esmtp: bool


@dataclass(frozen=True)
class MessageData:
    """A piece of the mail: LF line endings, dot-unstuffed, 8-bit as sent."""

    data: bytes


@dataclass(frozen=True)
class MessageEnd:
    """The mail is complete (``size`` bytes of :class:`MessageData`).

    The server now waits for :meth:`SMTPServer.delivery_result`."""

    sender: str
    recipients: tuple[str, ...]
    size: int


@dataclass(frozen=True)
class MessageAborted:
    """The mail begun with :class:`MessageBegin` must be thrown away
    (the client vanished, or the mail was too big)."""

    reason: str


@dataclass(frozen=True)
class AuthAttempt:
    """The client authenticates with these credentials; answer with
    :meth:`SMTPServer.auth_result`.  (The client's side of AUTH is
    :class:`~msmtp_twisted.smtp.client.AuthRequest`.)"""

    mechanism: str
    username: str
    password: bytes = field(repr=False)
    #: The client's answer could not be decoded: refuse it (after the usual delay).
    malformed: bool = False


@dataclass(frozen=True)
class Close:
    """Close the connection once the replies before this event are written."""

    reason: str


Event = (ServerReply | Log | MessageBegin | MessageData | MessageEnd | MessageAborted
         | AuthAttempt | Close)


# ---------------------------------------------------------------------------
# pure helpers


def _addr_char_ok(c: int, first: bool) -> bool:
    return (
        0x61 <= c <= 0x7A  # a-z
        or 0x41 <= c <= 0x5A  # A-Z
        or 0x30 <= c <= 0x39  # 0-9
        or (c == 0x2D and not first)  # '-', never first
        or c in b".@_+/="
    )


def parse_address(text: str, allow_empty: bool) -> tuple[str, str] | None:
    """msmtpd's ``get_addr()`` plus ESMTP parameters.

    ``text`` is what follows ``MAIL FROM:`` or ``RCPT TO:``.  Spaces are skipped,
    then ``<address>`` must follow, then nothing or a space and parameters.  The
    address may hold only ``A-Za-z0-9 . @ _ + / = -``, and no ``-`` first.  An
    empty address becomes ``MAILER-DAEMON`` when ``allow_empty``.  Returns
    ``(address, parameters)`` or None when invalid.
    """
    s = text.lstrip(" ")
    if not s.startswith("<"):
        return None
    end = s.find(">")
    if end < 0:
        return None
    addr = s[1:end]
    rest = s[end + 1 :]
    if rest and not rest.startswith(" "):
        return None
    raw = addr.encode("latin-1", "replace")
    for i, c in enumerate(raw):
        if not _addr_char_ok(c, i == 0):
            return None
    if not addr:
        if not allow_empty:
            return None
        addr = "MAILER-DAEMON"
    return addr, rest.strip(" ")


def sanitize_helo_name(name: str) -> str:
    """The EHLO/HELO argument as msmtpd puts it in ``Received:``: ``unknown`` when
    empty, ``invalid`` when it holds anything but ``A-Za-z0-9.:-`` (with ``[`` first
    and ``]`` last allowed)."""
    if name == "":
        return "unknown"
    last = len(name) - 1
    for i, ch in enumerate(name):
        if (
            (i == 0 and ch == "[")
            or (i == last and ch == "]")
            or ("a" <= ch <= "z")
            or ("A" <= ch <= "Z")
            or ("0" <= ch <= "9")
            or ch in ".:-"
        ):
            continue
        return "invalid"
    return name


def received_header(
    helo_name: str,
    remote_ip: str,
    remote_name: str,
    local_ip: str,
    local_name: str,
    date: str,
) -> bytes:
    """The ``Received:`` header exactly as msmtpd 1.8.23 writes it to the pipe
    (with CRLF line endings, although the mail that follows has LF ones).

    Names are left out when empty (no reverse look-up result), the IPs are
    written as given (empty when the connection is not a socket)."""
    out = f"Received: from {helo_name} ("
    if remote_name:
        out += f"{remote_name} "
    out += f"[{remote_ip}])\r\n\tby "
    if local_name:
        out += f"{local_name} "
    out += f"[{local_ip}] (msmtpd) with ESMTP;\r\n\t{date}\r\n"
    return out.encode("latin-1", "replace")


def delivery_reply(exit_code: int | None, signal: int | None = None,
                   timed_out: bool = False, interrupted: bool = False) -> ServerReply:
    """msmtpd's reply for the pipe command's end.

    0 → ``250 Ok, mail was piped``; EX_NOHOST, EX_UNAVAILABLE, EX_OSERR and
    EX_TEMPFAIL → ``451 Pipe command reported error N``; any other code →
    ``554 Pipe command reported error N``.  A command killed by a signal shows
    as 128+N, as the shell msmtpd runs the command with reports it.  A command
    that ran too long (ours only: msmtpd waits forever) → ``451 Pipe command
    timed out``: temporary, because whether the mail got through is not known
    and a client that tries again loses nothing (a bounce would, if it had not).
    A command stopped because the server is shutting down (ours only) →
    ``451 Pipe command stopped at server shutdown, try again later``."""
    if timed_out:
        return ServerReply(451, ("Pipe command timed out",))
    if interrupted:
        return ServerReply(451, ("Pipe command stopped at server shutdown, try again later",))
    if signal is not None:
        exit_code = 128 + signal
    if exit_code is None:
        return ServerReply(554, ("Pipe command failed to execute",))
    if exit_code == 0:
        return ServerReply(250, ("Ok, mail was piped",))
    code = 451 if exit_code in TEMPFAIL_EXIT_CODES else 554
    return ServerReply(code, (f"Pipe command reported error {exit_code}",))


class DataDecoder:
    """Streaming DATA decoder with msmtpd's ``smtp_pipe()`` semantics.

    A line ends at LF, with one CR before it dropped; every line is written with
    LF; a leading dot is removed; a line that is just ``.`` ends the mail.  Lone
    CRs and 8-bit bytes pass unchanged.  Works on chunks of any size with bulk
    byte operations, holding back at most three bytes between chunks.
    """

    def __init__(self) -> None:
        # Held-back input.  It starts with a LF that stands for "at the start of a
        # line" and is never output (``_skip``).
        self._held = b"\n"
        self._skip = 1
        self.done = False

    def feed(self, chunk: bytes) -> tuple[bytes, bytes | None]:
        """Decode ``chunk``; return ``(output, rest)``: ``rest`` is None while the
        mail goes on, else the bytes after the end-of-data line."""
        buf = self._held + chunk
        ends = [i for i in (buf.find(b"\n.\n"), buf.find(b"\n.\r\n")) if i >= 0]
        if ends:
            end = min(ends)
            term = 3 if buf.startswith(b"\n.\n", end) else 4
            out = self._convert(buf[: end + 1])
            self._held = b""
            self.done = True
            return out, buf[end + term :]
        # Hold back what could still become an end marker, a stuffed dot or CRLF.
        cut = len(buf)
        nl = buf.rfind(b"\n")
        if nl >= 0 and len(buf) - nl <= 3:
            cut = nl
        elif buf.endswith(b"\r"):
            cut = len(buf) - 1
        if cut > 0 and buf[cut - 1 : cut] == b"\r":
            cut -= 1
        self._held = buf[cut:]
        return self._convert(buf[:cut]), None

    def _convert(self, segment: bytes) -> bytes:
        if not segment:
            return b""
        out = segment.replace(b"\r\n", b"\n").replace(b"\n.", b"\n")
        if self._skip:
            out = out[1:]
            self._skip = 0
        return out


class State(Enum):
    NEED_HELO = "need-helo"
    READY = "ready"  # after HELO/EHLO, no mail transaction
    MAIL = "mail"  # after MAIL, no recipient yet
    RCPT = "rcpt"  # at least one recipient
    DATA = "data"  # receiving the mail
    AUTH_PLAIN = "auth-plain"  # waiting for the PLAIN response
    AUTH_LOGIN_USER = "auth-login-user"
    AUTH_LOGIN_PASS = "auth-login-pass"
    CLOSED = "closed"


@dataclass(frozen=True)
class ServerLimits:
    max_line: int = DEFAULT_MAX_LINE
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    max_recipients: int = DEFAULT_MAX_RECIPIENTS
    max_auth_failures: int = DEFAULT_MAX_AUTH_FAILURES
    #: What the envelope may take of the pipe command's argument list, in bytes:
    #: the sum of :func:`envelope_cost` over the sender and the recipients.  A
    #: recipient that would exceed it gets ``452 Too many recipients`` (the client
    #: sends it in another transaction), a sender ``501 Path too long``.  None:
    #: no limit.  The daemon derives it from ARG_MAX and the command.
    max_envelope: int | None = None
    #: The longest address that fits in one argument (``501 Path too long``).
    max_address: int | None = None


#: Bytes an address costs in an argument list beyond its characters: its NUL
#: and its pointer (8 bytes on 64-bit systems), rounded up.
ENVELOPE_ITEM_OVERHEAD = 16


def envelope_cost(address: str) -> int:
    """What ``address`` takes of :attr:`ServerLimits.max_envelope` (addresses are
    ASCII: msmtpd's character set)."""
    return len(address) + ENVELOPE_ITEM_OVERHEAD


def _r(code: int, text: str) -> ServerReply:
    return ServerReply(code, (text,))


#: msmtpd's reply (and log line) for a command that does not fit the state.
_EXPECT = {
    State.NEED_HELO: ("Expected EHLO or HELO", "client did not start with EHLO or HELO"),
    State.READY: ("Expected MAIL FROM:<addr> or QUIT", "client did not send MAIL FROM or QUIT"),
    State.MAIL: ("Expected RCPT TO:<addr>", "client did not send RCPT TO"),
    State.RCPT: ("Expected RCPT TO:<addr> or DATA", "client did not send RCPT TO or DATA"),
}


class SMTPServer:
    """One msmtpd SMTP session as a state machine.

    ``auth`` turns on authentication: EHLO offers ``AUTH PLAIN LOGIN`` and every
    command but EHLO, HELO, AUTH, NOOP, RSET, HELP and QUIT is refused with
    ``530 Authentication required`` until it succeeded.
    """

    def __init__(self, *, auth: bool = False, limits: ServerLimits | None = None) -> None:
        self.auth_enabled = auth
        self.limits = limits or ServerLimits()
        self.state = State.NEED_HELO
        self.authenticated = False
        self.helo_name = ""
        self.esmtp = False
        self.sender: str | None = None
        self.recipients: list[str] = []
        self._envelope = 0  # envelope_cost() of sender and recipients
        self.had_error = False
        self.quit = False
        self.mails_delivered = 0
        self.auth_failures = 0
        self._buf = bytearray()
        self._discarding = False  # dropping an over-long command line
        self._waiting: str | None = None  # "auth" or "delivery"
        self._decoder: DataDecoder | None = None
        self._size = 0
        self._oversize = False
        self._login_user = ""
        self._eof = False
        self._eof_clean = False
        self._shutting_down = False

    # -- driver API -----------------------------------------------------------

    def start(self) -> list[Event]:
        """The events of a new connection: the greeting."""
        return [Log("info", "starting SMTP session"), _r(220, GREETING)]

    @property
    def waiting(self) -> bool:
        """True while an :class:`AuthAttempt` or :class:`MessageEnd` is unanswered."""
        return self._waiting is not None

    @property
    def in_data(self) -> bool:
        return self.state is State.DATA

    @property
    def receiving(self) -> bool:
        """True while it is the client's turn and a command line or a mail has
        begun to arrive but is not complete (for a minimum data rate)."""
        if self._waiting is not None or self.state is State.CLOSED or self._eof:
            return False
        return self.state is State.DATA or bool(self._buf) or self._discarding

    def shutdown(self) -> list[Event]:
        """The server is going down: ``421`` and :class:`Close` (a mail not yet
        complete is aborted).  While an :class:`AuthAttempt` or
        :class:`MessageEnd` waits for its answer, nothing happens now: the
        answer is given, then the ``421``, and input after it is ignored."""
        if self.state is State.CLOSED:
            return []
        if self._waiting is not None:
            self._shutting_down = True
            return []
        return self._shutdown_events()

    def _shutdown_events(self) -> list[Event]:
        events: list[Event] = []
        if self.state is State.DATA:
            events += self._discard_mail("server shutting down",
                                         "server shutting down, unfinished mail discarded")
        events.append(_r(421, "Server shutting down, closing connection"))
        events.append(Log("info", "server shutting down, session closed"))
        events.append(self._close("server shutting down"))
        return events

    def _discard_mail(self, reason: str, log: str) -> list[Event]:
        """The mail being received will never be complete."""
        events: list[Event] = []
        if not self._oversize:  # else aborted already, once is the contract
            events.append(MessageAborted(reason))
        events.append(Log("error", log))
        return events

    @property
    def clean(self) -> bool:
        """msmtpd's ``--inetd`` exit status 0: no error reply, and the session was
        ended by QUIT or by EOF after a delivered mail outside a transaction."""
        if self.had_error:
            return False
        if self.quit:
            return True
        return self._eof_clean

    def receive(self, data: bytes) -> list[Event]:
        """Feed bytes from the client."""
        if self.state is State.CLOSED or self._eof:
            return []
        self._buf += data
        return self._process()

    def receive_eof(self) -> list[Event]:
        """The client closed its side (or vanished).  Commands it sent before are
        still answered; a mail it did not finish is thrown away."""
        if self.state is State.CLOSED or self._eof:
            return []
        self._eof = True
        if self._waiting is not None:
            return []  # finished in _resume() once the answer is in
        return self._finish_eof()

    def _finish_eof(self) -> list[Event]:
        events: list[Event] = []
        if self.state is State.DATA:
            events += self._discard_mail("client disconnected during DATA",
                                         "client disconnected during DATA, mail discarded")
        elif self.state is State.READY and self.mails_delivered:
            self._eof_clean = True
            events.append(Log("info", "client ended session without sending QUIT"))
        else:
            events.append(Log("error", "client ended session unexpectedly"))
        self.state = State.CLOSED
        return events

    def auth_result(self, ok: bool, temporary: bool = False) -> list[Event]:
        """The verdict on the last :class:`AuthAttempt`; ``temporary`` when the
        credentials could not be checked (e.g. the LDAP server is down)."""
        assert self._waiting == "auth"
        self._waiting = None
        events: list[Event] = []
        if temporary:
            events.append(self._error(454, "Temporary authentication failure"))
            events.append(Log("error", "cannot check credentials"))
        elif ok:
            self.authenticated = True
            events.append(_r(235, "Authentication successful"))
            events.append(Log("info", f"authenticated user {printable(self._login_user)}"))
        else:
            self.auth_failures += 1
            events.append(self._error(535, "Authentication failed"))
            events.append(Log("error", "authentication failed"))
            if self.auth_failures >= self.limits.max_auth_failures:
                events.append(_r(421, "Too many authentication failures"))
                events.append(Log("error", "too many authentication failures, session aborted"))
                events.append(self._close("too many authentication failures"))
                return events
        self._login_user = ""
        if self._shutting_down:
            return events + self._shutdown_events()
        return events + self._resume()

    def delivery_result(self, reply: ServerReply) -> list[Event]:
        """The reply for the mail of the last :class:`MessageEnd` (see
        :func:`delivery_reply`)."""
        assert self._waiting == "delivery"
        self._waiting = None
        events: list[Event] = []
        if reply.code == 250:
            self.mails_delivered += 1
            events.append(reply)
            if reply.logged:
                events.append(Log("info", reply.logged))
        else:
            events.append(self._error(reply.code, reply.text))
            # msmtpd's wording: the reply text with a lower-case first letter
            # ("pipe command reported error N"), without its ", session aborted".
            events.append(Log("error", reply.text[:1].lower() + reply.text[1:]))
        self._reset()
        if self._shutting_down:
            return events + self._shutdown_events()
        return events + self._resume()

    # -- internals ------------------------------------------------------------

    def _resume(self) -> list[Event]:
        events = self._process()
        if self._eof and self._waiting is None and self.state is not State.CLOSED:
            events += self._finish_eof()
        return events

    def _close(self, reason: str) -> Close:
        self.state = State.CLOSED
        self._buf.clear()
        return Close(reason)

    def _error(self, code: int, text: str) -> ServerReply:
        self.had_error = True
        return _r(code, text)

    def _reset(self) -> None:
        self.sender = None
        self.recipients = []
        self._envelope = 0
        self._decoder = None
        self._size = 0
        self._oversize = False
        if self.state not in (State.NEED_HELO, State.CLOSED):
            self.state = State.READY

    def _process(self) -> list[Event]:
        events: list[Event] = []
        while self._waiting is None and self.state is not State.CLOSED and self._buf:
            if self.state is State.DATA:
                self._data(events)
                continue
            nl = self._buf.find(b"\n")
            if self._discarding:
                if nl < 0:
                    self._buf.clear()
                    break
                del self._buf[: nl + 1]
                self._discarding = False
                events += self._line_too_long()
                continue
            if nl < 0:
                if len(self._buf) >= self.limits.max_line:
                    self._buf.clear()
                    self._discarding = True
                break
            if nl + 1 > self.limits.max_line:
                del self._buf[: nl + 1]
                events += self._line_too_long()
                continue
            line = bytes(self._buf[:nl])
            del self._buf[: nl + 1]
            if line.endswith(b"\r"):
                line = line[:-1]
            events += self._command(line.decode("latin-1"))
        return events

    def _line_too_long(self) -> list[Event]:
        if self.state in (State.AUTH_PLAIN, State.AUTH_LOGIN_USER, State.AUTH_LOGIN_PASS):
            # RFC 4954's answer.  The exchange ends here: otherwise the next command
            # would be taken for the credentials and count as a failure.
            self.state = State.READY
            self._login_user = ""
            return [self._error(500, "Authentication exchange line is too long"),
                    Log("error", "authentication exchange line too long, "
                                 "authentication cancelled")]
        return [self._error(500, "Line too long"), Log("error", "command line too long")]

    def _data(self, events: list[Event]) -> None:
        assert self._decoder is not None
        chunk = bytes(self._buf)
        self._buf.clear()
        out, rest = self._decoder.feed(chunk)
        if out and not self._oversize:
            self._size += len(out)
            if self._size > self.limits.max_message_size:
                self._oversize = True
                events.append(MessageAborted("message too big"))
            else:
                events.append(MessageData(out))
        if rest is None:
            return
        self._buf[:0] = rest
        if self._oversize:
            events.append(self._error(552, "Message size exceeds fixed maximum message size"))
            events.append(Log("error", "message size exceeds maximum, mail discarded"))
            self._reset()
            return
        assert self.sender is not None
        events.append(MessageEnd(self.sender, tuple(self.recipients), self._size))
        self._waiting = "delivery"

    def _command(self, line: str) -> list[Event]:
        state = self.state
        if state in (State.AUTH_PLAIN, State.AUTH_LOGIN_USER, State.AUTH_LOGIN_PASS):
            return self._auth_continue(line)
        upper = line.upper()
        verb = upper.split(" ", 1)[0]
        if upper.startswith(("EHLO ", "HELO ")):
            return self._helo(line)
        if upper == "QUIT":
            self.quit = True
            return [_r(221, "Bye"), Log("info", "client ended session"),
                    self._close("client ended session")]
        if verb == "NOOP":
            return [_r(250, "Ok")]
        if upper == "RSET":
            self._reset()
            return [_r(250, "Ok")]
        if verb == "HELP":
            return [_r(214, _HELP)]
        if state is State.NEED_HELO:
            return self._unexpected()
        if verb == "AUTH" and self.auth_enabled:
            return self._auth(line)
        if self.auth_enabled and not self.authenticated:
            return [self._error(530, "Authentication required"),
                    Log("info", "client did not authenticate")]
        if verb == "VRFY":
            return [_r(252, "Cannot VRFY user, but will accept message and attempt delivery")]
        if state is State.READY and upper.startswith("MAIL FROM:"):
            return self._mail(line[10:])
        if state in (State.MAIL, State.RCPT) and upper.startswith("RCPT TO:"):
            return self._rcpt(line[8:])
        if state is State.RCPT and upper == "DATA":
            return self._start_data()
        return self._unexpected()

    def _unexpected(self) -> list[Event]:
        reply, log = _EXPECT[self.state]
        return [self._error(500, reply), Log("error", log)]

    def _helo(self, line: str) -> list[Event]:
        esmtp = line[:4].upper() == "EHLO"
        self._reset()
        self.state = State.READY
        self.helo_name = sanitize_helo_name(line[5:])
        self.esmtp = esmtp
        if not esmtp:
            return [_r(250, "localhost")]
        lines = ["localhost", "PIPELINING", f"SIZE {self.limits.max_message_size}", "8BITMIME"]
        if self.auth_enabled:
            lines.append("AUTH PLAIN LOGIN")
        return [ServerReply(250, tuple(lines))]

    def _mail(self, arg: str) -> list[Event]:
        parsed = parse_address(arg, allow_empty=True)
        if parsed is None:
            return [self._error(501, "Invalid address"),
                    Log("error", "invalid address in MAIL FROM")]
        addr, params = parsed
        if not self._fits_one_argument(addr):
            return [self._error(501, "Path too long"),
                    Log("error", "address in MAIL FROM too long for the pipe command")]
        for param in params.split():
            key, _, value = param.partition("=")
            key = key.upper()
            if key == "SIZE":
                if not value.isdigit() or not value.isascii():
                    return [self._error(501, "Invalid SIZE parameter")]
                if _exceeds(value, self.limits.max_message_size):
                    return [self._error(552, "Message size exceeds fixed maximum message size"),
                            Log("error", "declared message size exceeds maximum")]
            elif key == "BODY":
                if value.upper() not in ("7BIT", "8BITMIME"):
                    return [self._error(501, "Invalid BODY parameter")]
            elif key == "AUTH":
                pass  # RFC 4954 AUTH=<mailbox>: accepted and ignored
            else:
                return [self._error(555, "Unsupported parameter"),
                        Log("error", "unsupported MAIL FROM parameter")]
        self.sender = addr
        self.recipients = []
        self._envelope = envelope_cost(addr)
        self.state = State.MAIL
        return [_r(250, "Ok")]

    def _rcpt(self, arg: str) -> list[Event]:
        parsed = parse_address(arg, allow_empty=False)
        if parsed is None:
            return [self._error(501, "Invalid address"),
                    Log("error", "invalid address in RCPT TO")]
        addr, params = parsed
        if params:
            return [self._error(555, "Unsupported parameter"),
                    Log("error", "unsupported RCPT TO parameter")]
        if not self._fits_one_argument(addr):
            return [self._error(501, "Path too long"),
                    Log("error", "address in RCPT TO too long for the pipe command")]
        if len(self.recipients) >= self.limits.max_recipients:
            return [self._error(452, "Too many recipients"), Log("error", "too many recipients")]
        cost = envelope_cost(addr)
        budget = self.limits.max_envelope
        if budget is not None and self._envelope + cost > budget:
            # Refused before anything runs: execve() would fail with E2BIG.
            return [self._error(452, "Too many recipients"),
                    Log("error", "too many recipients for the pipe command's argument list")]
        self._envelope += cost
        self.recipients.append(addr)
        self.state = State.RCPT
        return [_r(250, "Ok")]

    def _fits_one_argument(self, addr: str) -> bool:
        limits = self.limits
        if limits.max_address is not None and len(addr) > limits.max_address:
            return False
        return limits.max_envelope is None or envelope_cost(addr) <= limits.max_envelope

    def _start_data(self) -> list[Event]:
        assert self.sender is not None
        self.state = State.DATA
        self._decoder = DataDecoder()
        self._size = 0
        self._oversize = False
        return [
            MessageBegin(self.sender, tuple(self.recipients), self.helo_name, self.esmtp),
            _r(354, "Send data"),
        ]

    # -- AUTH -----------------------------------------------------------------

    def _auth(self, line: str) -> list[Event]:
        if self.authenticated:
            return [self._error(503, "Already authenticated")]
        if self.state is not State.READY:
            return [self._error(503, "AUTH not permitted during a mail transaction")]
        parts = line.split(" ")
        mech = parts[1].upper() if len(parts) > 1 else ""
        initial = parts[2] if len(parts) > 2 else None
        if len(parts) > 3 or mech not in ("PLAIN", "LOGIN"):
            return [self._error(504, "Unrecognized authentication mechanism")]
        if mech == "PLAIN":
            if initial is None:
                self.state = State.AUTH_PLAIN
                return [_r(334, "")]
            return self._auth_plain(initial)
        if initial is None:
            self.state = State.AUTH_LOGIN_USER
            return [_r(334, _LOGIN_USER)]
        return self._auth_login_user(initial)

    def _auth_continue(self, line: str) -> list[Event]:
        state = self.state
        self.state = State.READY
        if line == "*":
            return [self._error(501, "Authentication cancelled")]
        if state is State.AUTH_PLAIN:
            return self._auth_plain(line)
        if state is State.AUTH_LOGIN_USER:
            return self._auth_login_user(line)
        user = self._login_user
        password = _b64decode(line)
        if password is None:
            return self._auth_bad("LOGIN")
        return self._auth_request("LOGIN", user, password)

    def _auth_login_user(self, b64: str) -> list[Event]:
        user = _b64decode(b64)
        if user is None:
            return self._auth_bad("LOGIN")
        self._login_user = user.decode("utf-8", "replace")
        self.state = State.AUTH_LOGIN_PASS
        return [_r(334, _LOGIN_PASS)]

    def _auth_plain(self, b64: str) -> list[Event]:
        decoded = b"" if b64 == "=" else _b64decode(b64)
        if decoded is None:
            return self._auth_bad("PLAIN")
        parts = decoded.split(b"\0")
        if len(parts) != 3 or (parts[0] and parts[0] != parts[1]):
            return self._auth_bad("PLAIN")
        return self._auth_request("PLAIN", parts[1].decode("utf-8", "replace"), parts[2])

    def _auth_bad(self, mech: str) -> list[Event]:
        # Malformed credentials fail like wrong ones (and are delayed alike).
        self._login_user = ""
        self._waiting = "auth"
        return [AuthAttempt(mech, "", b"", malformed=True)]

    def _auth_request(self, mech: str, user: str, password: bytes) -> list[Event]:
        self._login_user = user
        self._waiting = "auth"
        return [AuthAttempt(mech, user, password)]


def printable(text: str) -> str:
    """``text`` for one log line: control and other unprintable characters as
    Python escapes (a user name ``a\nb`` must not forge a second line)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _exceeds(digits: str, limit: int) -> bool:
    """Whether the decimal ``digits`` are more than ``limit``, without int() on a
    string of any length (Python refuses more than 4300 digits)."""
    digits = digits.lstrip("0") or "0"
    bound = str(limit)
    if len(digits) != len(bound):
        return len(digits) > len(bound)
    return digits > bound


def _b64decode(text: str) -> bytes | None:
    try:
        return binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None
