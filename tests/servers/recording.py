"""``RecordingServer``: a scriptable SMTP/LMTP server that records every byte.

Written on plain sockets and threads (no asyncio, no aiosmtpd) so that every reply
byte is under the test's control::

    with RecordingServer(replies={"RCPT:bad@x": "550 5.1.1 no such user"}) as srv:
        run_client(host=srv.host, port=srv.port)
        srv.wait_idle()
        assert srv.message.rcpt_to == ["<ok@x>"]

Reply values (``greeting=``, ``replies={...}`` values) may be

* ``str`` -- one reply line; CRLF is appended unless it already ends with ``\\n``;
* ``list``/``tuple`` of ``str`` -- a multi-line reply, each line given in full
  (``["250-first", "250 last"]``);
* ``bytes`` -- sent verbatim (no CRLF added): invalid replies, lone LF, ...;
* ``CLOSE`` / ``Close(reply)`` -- send ``reply`` (if any) then close the connection;
* ``HANG`` / ``Hang(reply)`` -- send ``reply`` (if any), then never answer: keep
  reading (and recording) until the client gives up;
* a callable ``f(session, command) -> value | None`` (``None``: the default reply).

``replies`` keys: a verb (``"MAIL"``, ``"RCPT"``, ``"DATA"``, ``"EHLO"``, ``"HELO"``,
``"LHLO"``, ``"RSET"``, ``"NOOP"``, ``"QUIT"``, ``"STARTTLS"``, ``"ETRN"``, ``"AUTH"``,
any unknown verb), ``"VERB:argument"`` (for MAIL/RCPT the argument is the address
between ``<>``, compared case-insensitively; for other verbs the whole argument),
``"EOD"`` (reply after the final dot) and, for LMTP, ``"EOD:rcpt@x"`` (the reply for
that recipient after the final dot).
"""

from __future__ import annotations

import base64
import contextlib
import os
import select
import socket
import ssl
import struct
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.servers.base import (
    DEFAULT_IO_TIMEOUT,
    ConnectionClosed,
    ThreadedServer,
    send_chunked,
)
from tests.servers.spool import SPILL_THRESHOLD, Spool

DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "PIPELINING", "SIZE 10240000", "DSN", "8BITMIME", "ENHANCEDSTATUSCODES")

#: Commands that RFC 2920 allows anywhere in a pipelined group (not only last).
PIPELINABLE = frozenset({"MAIL", "RCPT", "RSET"})

#: A command line without LF longer than this makes the server reply 500 and close.
MAX_COMMAND_LINE = 1 << 20

RECV_SIZE = 65536

#: How long a draining close (``Close(drain=True)``) waits for the client's EOF.
DRAIN_TIMEOUT = 3.0


@dataclass(frozen=True)
class Close:
    """Reply value: send ``reply`` (if not ``None``) then close the connection.

    Default (``drain=True``): send a FIN, then read (and record) whatever the client
    still sends until it closes too (bounded) -- the client reliably sees a clean EOF.
    ``drain=False``: close at once; data the client still sends gets a TCP RST, so its
    writes fail (EPIPE).  ``reset=True``: close with a TCP RST right away."""

    reply: Any = None
    reset: bool = False
    drain: bool = True


@dataclass(frozen=True)
class Hang:
    """Reply value: send ``reply`` (if not ``None``), then never answer again: read
    (and record) until the client disconnects, the server stops or io_timeout."""

    reply: Any = None


CLOSE = Close()
HANG = Hang()


@dataclass
class Command:
    """What a reply callable gets: the parsed command."""

    verb: str  # upper case; "EOD" for the reply after the final dot
    arg: str  # everything after the verb (for MAIL/RCPT: after "FROM:"/"TO:")
    line: str  # the whole line without its line ending ("." for EOD)
    address: str | None = None  # MAIL/RCPT: the address between <>; LMTP EOD: the rcpt


@dataclass
class Message:
    """One mail transaction (started by an accepted MAIL command)."""

    session: int  # index into RecordingServer.sessions
    mail_from: str | None  # argument of MAIL FROM: incl. parameters, e.g. "<a@x> RET=HDRS"
    rcpt_to: list[str] = field(default_factory=list)  # accepted RCPT TO: arguments
    rejected_rcpt_to: list[str] = field(default_factory=list)  # refused RCPT arguments
    raw: Spool = field(default_factory=Spool)  # DATA as on the wire (still dot-stuffed)
    data: Spool = field(default_factory=Spool)  # DATA after dot-unstuffing
    complete: bool = False  # the final "." was received
    eod_replies: list[str] = field(default_factory=list)  # reply line(s) sent after "."

    @property
    def sender(self) -> str | None:
        """The MAIL FROM address without <> and parameters."""
        return None if self.mail_from is None else _address(self.mail_from)

    @property
    def recipients(self) -> list[str]:
        """The accepted RCPT TO addresses without <> and parameters."""
        return [_address(a) for a in self.rcpt_to]

    def raw_bytes(self) -> bytes:
        return self.raw.getvalue()

    def data_bytes(self) -> bytes:
        return self.data.getvalue()

    @property
    def raw_path(self) -> Path | None:
        """Temp file with the raw DATA once it exceeded the spill threshold, else None."""
        return self.raw.path

    @property
    def data_path(self) -> Path | None:
        return self.data.path


@dataclass
class Session:
    """Everything one client connection did."""

    index: int
    transcript: Spool  # every byte received, exactly
    sent: Spool  # every byte sent
    commands: list[str] = field(default_factory=list)  # command lines, no line ending
    bursts: list[list[str]] = field(default_factory=list)  # commands between reply flushes
    transactions: list[Message] = field(default_factory=list)
    helo: str | None = None  # the EHLO/HELO/LHLO command line
    quit_received: bool = False
    closed_by: str | None = None  # "client", "server" or "stopped"
    tls: bool = False
    auth: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    current: Message | None = None  # the open transaction

    @property
    def messages(self) -> list[Message]:
        return [m for m in self.transactions if m.complete]


ReplyValue = Any  # str | Sequence[str] | bytes | Close | Hang | Callable | None


class RecordingServer(ThreadedServer):
    """Scriptable SMTP/LMTP server on 127.0.0.1 (or a unix socket) that records all.

    Parameters (all keyword-only):

    protocol: ``"smtp"`` or ``"lmtp"``.
    greeting: the greeting reply value (default ``220 <hostname> ESMTP ...``).
    capabilities: EHLO/LHLO keyword lines after the hostname line
        (default ``DEFAULT_CAPABILITIES``; ``STARTTLS``/``AUTH`` are added when
        ``tls_context``/``auth`` are given).
    ehlo_refused: EHLO gets ``502 5.5.2 ...`` (or this string) so clients fall back
        to HELO.
    replies: per-command overrides, see the module docstring.
    delay: seconds to sleep before each reply batch (greeting included).
    pipeline_hold: when > 0 and the last command of a batch is MAIL/RCPT/RSET, wait
        up to this long for more commands before replying -- makes ``bursts``
        deterministic for pipelining clients (a non-pipelining client just pays the
        hold per command).
    write_chunk, write_gap: send replies in writes of ``write_chunk`` bytes, ``write_gap``
        seconds apart (TCP_NODELAY is on).
    data_close_after: close the connection (at once, no drain) once this many DATA
        bytes were received; ``data_close_reset``: with a TCP RST.
    lenient_eod: also accept ``.\\n`` (bare LF) as end of data.
    require_helo: MAIL before EHLO/HELO/LHLO gets 503.
    tls_context: a server ``ssl.SSLContext``; enables STARTTLS (or, with
        ``implicit_tls``, TLS right after accept).
    auth: ``{user: password}``; enables ``AUTH PLAIN LOGIN``; attempts are recorded in
        ``Session.auth`` as ``(mechanism, user, password)``.
    unix_path: listen on this unix socket path instead of TCP.
    spill_threshold: DATA/transcript bytes kept in memory before spilling to a file.
    io_timeout: bound for every blocking socket operation of a connection.
    """

    thread_name = "recording-server"

    def __init__(self, *, protocol: str = "smtp", greeting: ReplyValue = None,
                 hostname: str = "mx.test",
                 capabilities: Sequence[str] | None = None, ehlo_refused: bool | str = False,
                 replies: Mapping[str, ReplyValue] | None = None, delay: float = 0.0,
                 pipeline_hold: float = 0.0, write_chunk: int | None = None,
                 write_gap: float = 0.0, data_close_after: int | None = None,
                 data_close_reset: bool = False,
                 lenient_eod: bool = False, require_helo: bool = True,
                 tls_context: ssl.SSLContext | None = None, implicit_tls: bool = False,
                 auth: Mapping[str, str] | None = None,
                 unix_path: str | os.PathLike[str] | None = None,
                 spill_threshold: int = SPILL_THRESHOLD,
                 io_timeout: float = DEFAULT_IO_TIMEOUT) -> None:
        super().__init__(unix_path=unix_path, io_timeout=io_timeout)
        if protocol not in ("smtp", "lmtp"):
            raise ValueError(f"protocol must be 'smtp' or 'lmtp', not {protocol!r}")
        self.protocol = protocol
        self.hostname = hostname
        kind = "LMTP" if protocol == "lmtp" else "ESMTP"
        self.greeting = greeting if greeting is not None else \
            f"220 {hostname} {kind} msmtp-twisted test server"
        self.capabilities = list(DEFAULT_CAPABILITIES if capabilities is None else capabilities)
        self.ehlo_refused = ehlo_refused
        self.replies: dict[str, ReplyValue] = {}
        for key, value in (replies or {}).items():
            verb, sep, arg = key.partition(":")
            self.replies[verb.upper() + sep + arg.strip().strip("<>").lower()] = value
        self.delay = delay
        self.pipeline_hold = pipeline_hold
        self.write_chunk = write_chunk
        self.write_gap = write_gap
        self.data_close_after = data_close_after
        self.data_close_reset = data_close_reset
        self.lenient_eod = lenient_eod
        self.require_helo = require_helo
        self.tls_context = tls_context
        self.implicit_tls = implicit_tls
        self.auth = dict(auth) if auth is not None else None
        self.spill_threshold = spill_threshold
        self._tmpdir = tempfile.TemporaryDirectory(prefix="recording-server-")
        self.sessions: list[Session] = []
        self._queue_id = 0

    # -- public record accessors --------------------------------------------------

    @property
    def session(self) -> Session:
        """The most recent session."""
        assert self.sessions, "no client connected"
        return self.sessions[-1]

    @property
    def commands(self) -> list[str]:
        """All command lines of all sessions, in order."""
        return [c for s in list(self.sessions) for c in s.commands]

    @property
    def transactions(self) -> list[Message]:
        return [m for s in list(self.sessions) for m in s.transactions]

    @property
    def messages(self) -> list[Message]:
        """All messages whose DATA was completed (final dot received)."""
        return [m for m in self.transactions if m.complete]

    @property
    def message(self) -> Message:
        """The one completed message (asserts there is exactly one)."""
        msgs = self.messages
        assert len(msgs) == 1, f"expected exactly one message, got {len(msgs)}"
        return msgs[0]

    @property
    def transcript(self) -> bytes:
        """Every byte received, all sessions concatenated."""
        return b"".join(s.transcript.getvalue() for s in list(self.sessions))

    @property
    def quit_received(self) -> bool:
        """Whether the most recent session sent QUIT."""
        return bool(self.sessions) and self.session.quit_received

    @property
    def bursts(self) -> list[list[str]]:
        """The most recent session's commands grouped by reply flush."""
        return self.session.bursts

    @property
    def spool_dir(self) -> Path:
        return Path(self._tmpdir.name)

    # -- connection handling --------------------------------------------------------

    def handle(self, conn: socket.socket) -> None:
        with self._lock:
            sess = Session(
                index=len(self.sessions),
                transcript=Spool(self.spill_threshold, self._tmpdir.name, "transcript-"),
                sent=Spool(self.spill_threshold, self._tmpdir.name, "sent-"))
            self.sessions.append(sess)
        _Conn(self, sess, conn).run()

    def _next_queue_id(self) -> str:
        with self._lock:
            self._queue_id += 1
            return f"TEST{self._queue_id:04d}"

    def lookup(self, verb: str, address: str | None, arg: str) -> ReplyValue:
        """The override for a command, or None."""
        keys = []
        if address is not None:
            keys.append(f"{verb}:{address.lower()}")
        elif arg:
            keys.append(f"{verb}:{arg.strip().lower()}")
        keys.append(verb)
        for key in keys:
            if key in self.replies:
                return self.replies[key]
        return None


class _Conn:
    """State machine of one connection."""

    def __init__(self, server: RecordingServer, sess: Session, sock: socket.socket) -> None:
        self.srv = server
        self.sess = sess
        self.sock = sock
        self.buf = bytearray()
        self.pending: list[bytes] = []
        self.in_data = False
        self.at_line_start = True
        self.continuation: Callable[[str], ReplyValue] | None = None
        self.burst_open = False
        self.hold_deadline: float | None = None

    # -- I/O ---------------------------------------------------------------------

    def run(self) -> None:
        try:
            if self.srv.implicit_tls:
                self._start_tls()
            self._emit(self.srv.greeting, None, Command("GREETING", "", ""))
            self._flush()
            while True:
                if not self.pending or not self._should_hold():
                    self._flush()
                if not self._recv():
                    self.sess.closed_by = "client"
                    return
                self._process()
        except ConnectionClosed:
            if self.sess.closed_by is None:
                self.sess.closed_by = "server"
        except OSError:
            if self.sess.closed_by is None:
                self.sess.closed_by = "stopped" if self.srv.stopping else "client"
            raise
        finally:
            cur = self.sess.current
            if cur is not None:
                cur.raw.close()
                cur.data.close()
            self.sess.transcript.close()
            self.sess.sent.close()

    def _recv(self) -> bool:
        data = self.sock.recv(RECV_SIZE)
        if not data:
            return False
        self.sess.transcript.write(data)
        self.buf += data
        return True

    def _should_hold(self) -> bool:
        """Pipeline hold: wait for more commands before flushing (bounded)."""
        if self.hold_deadline is None:
            return False
        left = self.hold_deadline - time.monotonic()
        if left <= 0:
            return False
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return True
        readable, _, _ = select.select([self.sock], [], [], left)
        return bool(readable)

    def _flush(self) -> None:
        self.hold_deadline = None
        if not self.pending:
            return
        data = b"".join(self.pending)
        self.pending.clear()
        if self.srv.delay:
            time.sleep(self.srv.delay)
        self.sess.sent.write(data)
        send_chunked(self.sock, data, self.srv.write_chunk, self.srv.write_gap)
        self.burst_open = False

    def _emit(self, value: ReplyValue, default: ReplyValue, cmd: Command) -> bytes | None:
        """Queue the reply for ``cmd``; returns the bytes queued (None: none queued).

        Close/Hang are carried out here (they flush what is pending first)."""
        if callable(value):
            value = value(self.sess, cmd)
        if value is None:
            value = default
        if isinstance(value, Close):
            if value.reply is not None:
                self.pending.append(_render(value.reply))
            self._flush()
            with contextlib.suppress(OSError):
                if value.reset:
                    self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                         struct.pack("ii", 1, 0))
                    self.sock.close()
                elif value.drain:
                    self.sock.shutdown(socket.SHUT_WR)
                    self._drain()
                else:  # FIN first: the client's writes then fail with EPIPE, not ECONNRESET
                    self.sock.shutdown(socket.SHUT_RDWR)
                    self.sock.close()
            raise ConnectionClosed
        if isinstance(value, Hang):
            if value.reply is not None:
                self.pending.append(_render(value.reply))
            self._flush()
            self._hang()
        data = _render(value)
        self.pending.append(data)
        return data

    def _drain(self) -> None:
        """After our FIN: record what the client still sends until its EOF (bounded)."""
        deadline = time.monotonic() + min(self.srv.io_timeout, DRAIN_TIMEOUT)
        while not self.srv.stopping and time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, min(0.1, deadline - time.monotonic())))
            try:
                if not self._recv():
                    return
            except TimeoutError:
                continue

    def _hang(self) -> None:
        """Never answer: record whatever arrives until EOF, stop or io_timeout."""
        while not self.srv.stopping:
            try:
                if not self._recv():
                    self.sess.closed_by = "client"
                    break
            except TimeoutError:
                break
        raise ConnectionClosed

    # -- parsing ------------------------------------------------------------------

    def _process(self) -> None:
        while True:
            if self.in_data:
                if not self._consume_data():
                    return
                self._end_of_data()
                continue
            idx = self.buf.find(b"\n")
            if idx < 0:
                if len(self.buf) > MAX_COMMAND_LINE:
                    self._emit(Close("500 5.5.2 Error: line too long"), None,
                               Command("", "", ""))
                return
            raw = bytes(self.buf[:idx + 1])
            del self.buf[:idx + 1]
            line = raw.decode("utf-8", "surrogateescape").rstrip("\r\n")
            if self.continuation is not None:
                handler, self.continuation = self.continuation, None
                self._emit(handler(line), None, Command("AUTH", line, line))
                continue
            self.sess.commands.append(line)
            if not self.burst_open:
                self.sess.bursts.append([])
                self.burst_open = True
            self.sess.bursts[-1].append(line)
            self._command(line)

    def _consume_data(self) -> bool:
        """Stream DATA bytes from the buffer into the message; True at the final dot."""
        msg = self.sess.current
        assert msg is not None
        buf = self.buf
        n = len(buf)
        pos = 0
        done = False
        while pos < n:
            if self.at_line_start and buf[pos] == 0x2E:  # "."
                rest = bytes(buf[pos:pos + 3])
                if rest == b".\r\n" or (self.srv.lenient_eod and rest[:2] == b".\n"):
                    pos += 3 if rest == b".\r\n" else 2
                    done = True
                    break
                if b".\r\n".startswith(rest) or (self.srv.lenient_eod and rest == b"."):
                    break  # cannot decide yet: wait for more bytes
                msg.raw.write(b".")  # dot-stuffing: the data loses it
                pos += 1
                self.at_line_start = False
                continue
            j = buf.find(b"\n.", pos)
            end = n if j < 0 else j + 1
            chunk = memoryview(buf)[pos:end]
            msg.raw.write(chunk)
            msg.data.write(chunk)
            chunk.release()
            self.at_line_start = buf[end - 1] == 0x0A
            pos = end
        del buf[:pos]
        limit = self.srv.data_close_after
        if limit is not None and msg.raw.size >= limit and not done:
            self._emit(Close(drain=False, reset=self.srv.data_close_reset), None,
                       Command("DATA", "", ""))
        return done

    # -- commands -----------------------------------------------------------------

    def _command(self, line: str) -> None:
        verb, _, arg = line.partition(" ")
        verb = verb.upper()
        arg = arg.strip()
        address = None
        if verb in ("MAIL", "RCPT"):
            prefix = "FROM:" if verb == "MAIL" else "TO:"
            if arg.upper().startswith(prefix):
                arg = arg[len(prefix):].strip()
                address = _address(arg)
        cmd = Command(verb, arg, line, address)
        override = self.srv.lookup(verb, address, arg)
        handler = getattr(self, f"_cmd_{verb.lower()}", None)
        if handler is None:
            self._emit(override, "500 5.5.2 Error: command not recognized", cmd)
        else:
            handler(cmd, override)
        if verb in PIPELINABLE and self.srv.pipeline_hold > 0:
            if self.hold_deadline is None:
                self.hold_deadline = time.monotonic() + self.srv.pipeline_hold
        else:
            self.hold_deadline = None

    def _reset(self) -> None:
        self.sess.current = None

    def _hello(self, cmd: Command, override: ReplyValue, extended: bool) -> None:
        ok = _is_positive(self._emit(override, self._ehlo_reply(extended), cmd))
        if ok:
            self.sess.helo = cmd.line
            self._reset()

    def _ehlo_reply(self, extended: bool) -> ReplyValue:
        if not extended:
            return f"250 {self.srv.hostname}"
        caps = list(self.srv.capabilities)
        tls = self.srv.tls_context is not None and not self.sess.tls
        if tls and not self.srv.implicit_tls and "STARTTLS" not in caps:
            caps.append("STARTTLS")
        if self.srv.auth is not None and not any(c.startswith("AUTH") for c in caps):
            caps.append("AUTH PLAIN LOGIN")
        lines = [self.srv.hostname, *caps]
        return [f"250-{x}" for x in lines[:-1]] + [f"250 {lines[-1]}"]

    def _cmd_ehlo(self, cmd: Command, override: ReplyValue) -> None:
        if self.srv.protocol == "lmtp":
            self._emit(override, "500 5.5.1 Error: this is LMTP, use LHLO", cmd)
            return
        if self.srv.ehlo_refused and override is None:
            refused = self.srv.ehlo_refused
            override = refused if isinstance(refused, str) else \
                "502 5.5.2 Error: command not recognized"
        self._hello(cmd, override, True)

    def _cmd_helo(self, cmd: Command, override: ReplyValue) -> None:
        if self.srv.protocol == "lmtp":
            self._emit(override, "500 5.5.1 Error: this is LMTP, use LHLO", cmd)
            return
        self._hello(cmd, override, False)

    def _cmd_lhlo(self, cmd: Command, override: ReplyValue) -> None:
        if self.srv.protocol != "lmtp":
            self._emit(override, "500 5.5.2 Error: command not recognized", cmd)
            return
        self._hello(cmd, override, True)

    def _cmd_mail(self, cmd: Command, override: ReplyValue) -> None:
        if cmd.address is None:
            default = "501 5.5.4 Syntax: MAIL FROM:<address>"
        elif self.srv.require_helo and self.sess.helo is None:
            default = "503 5.5.1 Error: send HELO/EHLO first"
        elif self.sess.current is not None:
            default = "503 5.5.1 Error: nested MAIL command"
        else:
            default = "250 2.1.0 Ok"
        if _is_positive(self._emit(override, default, cmd)):
            msg = self._new_message(cmd.arg)
            self.sess.current = msg

    def _new_message(self, mail_from: str | None) -> Message:
        d = self.srv.spool_dir
        t = self.srv.spill_threshold
        msg = Message(session=self.sess.index, mail_from=mail_from,
                      raw=Spool(t, d, "raw-"), data=Spool(t, d, "data-"))
        self.sess.transactions.append(msg)
        return msg

    def _cmd_rcpt(self, cmd: Command, override: ReplyValue) -> None:
        if cmd.address is None:
            default = "501 5.5.4 Syntax: RCPT TO:<address>"
        elif self.sess.current is None:
            default = "503 5.5.1 Error: need MAIL command"
        else:
            default = "250 2.1.5 Ok"
        ok = _is_positive(self._emit(override, default, cmd))
        msg = self.sess.current
        if msg is None and ok:
            msg = self.sess.current = self._new_message(None)
        if msg is not None:
            (msg.rcpt_to if ok else msg.rejected_rcpt_to).append(cmd.arg)

    def _cmd_data(self, cmd: Command, override: ReplyValue) -> None:
        msg = self.sess.current
        if cmd.arg:
            default = "501 5.5.4 Syntax: DATA"
        elif msg is None:
            default = "503 5.5.1 Error: need RCPT command"
        elif not msg.rcpt_to:
            default = "554 5.5.1 Error: no valid recipients"
        else:
            default = "354 End data with <CR><LF>.<CR><LF>"
        sent = self._emit(override, default, cmd)
        if sent is not None and sent.startswith(b"354"):
            if msg is None:
                self.sess.current = self._new_message(None)
            self.in_data = True
            self.at_line_start = True
            self.hold_deadline = None
            self._flush()  # the client waits for 354 before sending data

    def _end_of_data(self) -> None:
        self.in_data = False
        msg = self.sess.current
        assert msg is not None
        msg.complete = True
        msg.raw.close()
        msg.data.close()
        self._reset()
        if self.srv.protocol == "lmtp":
            targets = [(a, _address(a)) for a in msg.rcpt_to]
        else:
            targets = [(None, None)]
        for arg, addr in targets:
            cmd = Command("EOD", arg or "", ".", addr)
            override = self.srv.lookup("EOD", addr, "")
            default = f"250 2.0.0 Ok: queued as {self.srv._next_queue_id()}"
            if addr is not None:
                default = f"250 2.1.5 <{addr}> Ok"
            sent = self._emit(override, default, cmd)
            msg.eod_replies.append((sent or b"").decode("utf-8", "replace").rstrip("\r\n"))

    def _cmd_rset(self, cmd: Command, override: ReplyValue) -> None:
        self._emit(override, "250 2.0.0 Ok", cmd)
        self._reset()

    def _cmd_noop(self, cmd: Command, override: ReplyValue) -> None:
        self._emit(override, "250 2.0.0 Ok", cmd)

    def _cmd_quit(self, cmd: Command, override: ReplyValue) -> None:
        self.sess.quit_received = True
        self.sess.closed_by = "server"
        value = override if override is not None else "221 2.0.0 Bye"
        if callable(value):
            value = value(self.sess, cmd) or "221 2.0.0 Bye"
        self._emit(value if isinstance(value, (Close, Hang)) else Close(value), None, cmd)

    def _cmd_etrn(self, cmd: Command, override: ReplyValue) -> None:
        self._emit(override, "250 Queuing started", cmd)

    def _cmd_starttls(self, cmd: Command, override: ReplyValue) -> None:
        available = self.srv.tls_context is not None and not self.sess.tls
        default = "220 2.0.0 Ready to start TLS" if available else \
            "454 4.7.0 TLS not available"
        sent = self._emit(override, default, cmd)
        if available and sent is not None and sent.startswith(b"220"):
            self._flush()
            self.buf.clear()  # RFC 3207: discard anything pipelined after STARTTLS
            self._start_tls()
            self.sess.helo = None
            self._reset()

    def _start_tls(self) -> None:
        assert self.srv.tls_context is not None
        self.sock = self.srv.tls_context.wrap_socket(self.sock, server_side=True)
        self.sock.settimeout(self.srv.io_timeout)
        self.srv.register_socket(self.sock)
        self.sess.tls = True

    def _cmd_auth(self, cmd: Command, override: ReplyValue) -> None:
        if override is not None or self.srv.auth is None:
            self._emit(override, "502 5.5.1 Error: authentication not enabled", cmd)
            return
        mech, _, initial = cmd.arg.partition(" ")
        mech = mech.upper()
        if mech == "PLAIN":
            if initial:
                self._emit(self._auth_plain(initial), None, cmd)
            else:
                self.continuation = self._auth_plain
                self._emit("334 ", None, cmd)
        elif mech == "LOGIN":
            def password(user_b64: str) -> ReplyValue:
                user = _b64(user_b64)

                def check(pass_b64: str) -> ReplyValue:
                    return self._auth_result("LOGIN", user, _b64(pass_b64))
                self.continuation = check
                return "334 UGFzc3dvcmQ6"
            if initial:
                self._emit(password(initial), None, cmd)
            else:
                self.continuation = password
                self._emit("334 VXNlcm5hbWU6", None, cmd)
        else:
            self._emit("504 5.5.4 Unrecognized authentication type", None, cmd)

    def _auth_plain(self, b64: str) -> ReplyValue:
        if b64 == "*":
            return "501 5.7.0 Authentication aborted"
        parts = (_b64(b64) or "").split("\0")
        user, password = (parts[1], parts[2]) if len(parts) == 3 else (None, None)
        return self._auth_result("PLAIN", user, password)

    def _auth_result(self, mech: str, user: str | None, password: str | None) -> str:
        self.sess.auth.append((mech, user, password))
        assert self.srv.auth is not None
        if user is not None and self.srv.auth.get(user) == password:
            return "235 2.7.0 Authentication successful"
        return "535 5.7.8 Error: authentication failed"


def _render(value: ReplyValue) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8") + (b"" if value.endswith("\n") else b"\r\n")
    if isinstance(value, Sequence):
        return b"".join(_render(x) for x in value)
    raise TypeError(f"not a reply value: {value!r}")


def _is_positive(sent: bytes | None) -> bool:
    return sent is not None and sent[:1] == b"2"


def _address(arg: str) -> str:
    """``<a@x> SIZE=1`` -> ``a@x``; ``a@x`` -> ``a@x``."""
    arg = arg.strip()
    if arg.startswith("<"):
        end = arg.find(">")
        return arg[1:end] if end >= 0 else arg[1:]
    return arg.split(" ", 1)[0]


def _b64(text: str) -> str | None:
    try:
        return base64.b64decode(text, validate=True).decode("utf-8", "surrogateescape")
    except (ValueError, UnicodeError):
        return None


def lines(reply: bytes) -> list[str]:
    """Split a sent reply into lines (helper for assertions)."""
    return reply.decode("utf-8", "replace").splitlines()


__all__ = [
    "CLOSE", "Close", "Command", "DEFAULT_CAPABILITIES", "HANG", "Hang", "Message",
    "RecordingServer", "Session", "lines",
]
