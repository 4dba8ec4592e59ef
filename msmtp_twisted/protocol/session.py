"""A Twisted protocol that drives one sans-IO session from msmtp_twisted.smtp.client.

It owns only I/O concerns: flushing queued commands when a reply is awaited
(which pipelines them), feeding received bytes to the reply parser, streaming
the mail body through the transport as a pull producer (so memory stays flat
whatever the mail size), timeouts on every wait, and the QUIT-or-close ending
that the session asks for.  ``done`` fires with the session's result or fails
with :class:`~msmtp_twisted.errors.SMTPFailure`, whose ``cause`` says why
(:class:`~msmtp_twisted.errors.Cause`: a reply, a timeout, a reset, a close by
the server, a protocol violation) and ``writing`` whether we were writing then.
``on_lost(reason)`` is told why the connection ended, before ``done`` fires (the
TLS layer reads the TLS errors there).

What the server sends is bounded at every step, as msmtp's blocking reads bound
it: bytes are parsed into a reply only when the session waits for one, a reply
is at most 50 lines of 1023 bytes, and while the session does not wait (a
password being looked up) reading stops once :data:`HIGH_WATER` bytes are
stored.  While the mail is being sent the server owes no reply: the first one
that arrives then ends the body (see ``sendmail_session``).  The timeout
applies to each read and each write, as msmtp's socket timeouts do, not to a
whole reply: data that keeps coming keeps the connection alive, and the reply
limits end a server that trickles for ever.

A session that runs many jobs (:func:`~msmtp_twisted.smtp.persistent.persistent_session`)
asks for each at ``NEXT_JOB``: ``next_job()`` gives ``(job, body)`` or None, and
then the protocol is :attr:`~SessionProtocol.idle` (no timer runs) until
:meth:`~SessionProtocol.run_job`; each ``JobDone`` goes to ``job_done(outcome)``.
With ``gather_body`` a small body (up to :data:`GATHER_LIMIT`) is written in one
piece with the commands around it, rather than one chunk per reactor turn.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, Protocol

from twisted.internet import defer, error
from twisted.internet.interfaces import IDelayedCall, IPullProducer, IReactorTime
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from msmtp_twisted import sysexits
from msmtp_twisted.errors import Cause, SMTPFailure
from msmtp_twisted.net.sendnow import write_now
from msmtp_twisted.smtp.client import (
    CHANNEL_BINDING,
    NEXT_JOB,
    PASSWORD,
    RECEIVE,
    SEND_BODY,
    START_TLS,
    JobDone,
    Send,
    quit_session,
)
from msmtp_twisted.smtp.reply import Reply, ReplyError, ReplyReader

__all__ = ["BodySource", "SessionProtocol"]

#: How long QUIT may take before the connection is simply closed.
QUIT_TIMEOUT = 10.0
#: How long a graceful close (after QUIT) may take before the connection is dropped.
CLOSE_TIMEOUT = 2.0
#: Unparsed bytes from the server we store while the session does not wait for a
#: reply before we stop reading the connection (the kernel's buffers hold the rest,
#: as they do for msmtp, which reads only when it wants a reply).
HIGH_WATER = 64 * 1024
#: More than this stored means stopping to read did not work: an error.
HARD_LIMIT = 1024 * 1024
#: With ``gather_body``, at most this much of the body is written at once; the
#: rest goes through the pull producer as the transport drains.
GATHER_LIMIT = 256 * 1024


class BodySource(Protocol):
    """The mail as it goes on the wire after DATA (CRLF, dot-stuffed)."""

    def next_chunk(self) -> bytes | None:
        """The next encoded bytes, or None at the end (without the final dot)."""

    @property
    def mailsize(self) -> int: ...


Trace = Callable[[str, bytes], None]


class SessionProtocol(TwistedProtocol):
    def __init__(
        self,
        session: Generator[Any, Any, Any],
        *,
        clock: IReactorTime,
        timeout: float | None = None,
        body: BodySource | None = None,
        trace: Trace | None = None,
        start_tls: Callable[[Any], None] | None = None,
        channel_binding: Callable[[], dict[str, bytes]] | None = None,
        password: Callable[[], Any] | None = None,
        on_lost: Callable[[Failure | None], None] | None = None,
        next_job: Callable[[], tuple[Any, BodySource | None] | None] | None = None,
        job_done: Callable[[JobDone], None] | None = None,
        gather_body: bool = False,
    ) -> None:
        self._session: Generator[Any, Any, Any] | None = session
        self._clock = clock
        self._timeout = timeout or None
        self._body = body
        self._trace = trace
        self._start_tls = start_tls
        self._channel_binding = channel_binding
        self._password = password
        self._on_lost = on_lost
        self._next_job = next_job
        self._job_done = job_done
        self._gather_body = gather_body
        #: the session waits for a job (``NEXT_JOB``): :meth:`run_job` resumes it
        self.idle = False
        self._reader = ReplyReader()
        self._reading_paused = False
        self._outgoing: list[Send] = []
        self._waiting = False
        self._timer: IDelayedCall | None = None
        self._on_timeout: Callable[[], None] | None = None
        self._producer: _BodyProducer | None = None
        self._outcome: tuple[Any, SMTPFailure | None] | None = None
        self._quitting = False
        self._finished = False
        self.done: defer.Deferred[Any] = defer.Deferred()

    # -- driving the session --------------------------------------------------

    def connectionMade(self) -> None:
        # We batch our writes ourselves; Nagle would hold the final dot (or a
        # pipelined group) until the server's delayed ACK, 40 ms at a time.
        set_nodelay = getattr(self.transport, "setTcpNoDelay", None)
        if set_nodelay is not None:
            try:
                set_nodelay(True)
            except OSError:
                pass
        self._advance(None)

    def _advance(self, value: Any) -> None:
        """Run the session until it needs a reply (or the body, or ends)."""
        session = self._session
        while session is not None:
            try:
                action = session.send(value)
            except StopIteration as stop:
                if self._quitting:
                    self._close()
                else:
                    self._session_ended(stop.value, None)
                return
            except SMTPFailure as failure:
                self._session_ended(None, failure)
                return
            value = None
            if isinstance(action, Send):
                self._outgoing.append(action)
            elif action is RECEIVE:
                self._flush()
                if self._reader.buffered:  # else no reply can be complete yet
                    try:
                        value = self._next_reply()
                    except SMTPFailure as failure:
                        self._fail(failure)
                        return
                    if value is not None:
                        continue
                self._waiting = True
                self._resume_reading()
                self._arm_timer(self._read_timed_out)
                return
            elif action is SEND_BODY:
                self._flush()
                self._send_body()
                return
            elif action is START_TLS:
                try:
                    self._begin_tls()
                except SMTPFailure as failure:
                    self._fail(failure)
                    return
            elif action is CHANNEL_BINDING:
                value = self._channel_binding() if self._channel_binding is not None else {}
            elif action is NEXT_JOB:
                got = self._next_job() if self._next_job is not None else None
                if got is None:
                    self._flush()
                    self.idle = True
                    self._resume_reading()
                    return
                value, self._body = got
                if self._reader.pending:
                    self._out_of_turn()
                    return
            elif isinstance(action, JobDone):
                if self._job_done is not None:
                    self._job_done(action)
            elif action is PASSWORD:
                value = self._ask_password()
                if isinstance(value, defer.Deferred):
                    value.addBoth(self._password_answered)
                    return
            else:  # pragma: no cover - a programming error in a session
                raise AssertionError(f"unknown action {action!r}")

    def run_job(self, job: Any, body: BodySource | None = None) -> None:
        """Resume an :attr:`idle` session with its next job."""
        if not self.idle or self._session is None:
            raise RuntimeError("the session is not waiting for a job")
        self.idle = False
        self._body = body
        if self._reader.pending:
            self._out_of_turn()
            return
        self._advance(job)

    def _out_of_turn(self) -> None:
        """The server sent something while no command was pending (between jobs):
        a ``421`` before it closes an idle connection, or a broken server.  Nothing
        of the next job has been sent; the connection is given up."""
        try:
            reply = self._next_reply()
        except SMTPFailure:
            reply = None
        if reply is not None and reply.code == 421:
            failure = SMTPFailure(sysexits.EX_UNAVAILABLE, "the server is closing the connection",
                                  reply, cause=Cause.CLOSED)
        else:
            failure = SMTPFailure(sysexits.EX_PROTOCOL, "the server sent data out of turn",
                                  reply, cause=Cause.PROTOCOL)
        self._fail(failure)

    def _ask_password(self) -> Any:
        """The password source may block (a prompt on the terminal, as msmtp does) or
        return a Deferred; while it runs no timer is armed."""
        if self._password is None:
            return None
        try:
            return self._password()
        except Exception:
            return None

    def _password_answered(self, result: Any) -> None:
        if self._finished or self._session is None:
            return
        self._advance(result if isinstance(result, str) else None)

    def _flush(self) -> None:
        if not self._outgoing:
            return
        sends, self._outgoing = self._outgoing, []
        data = sends[0].data if len(sends) == 1 else b"".join([send.data for send in sends])
        if self._trace:
            self._trace("-->", b"".join(
                send.data if send.shown is None else send.shown for send in sends))
        transport = self.transport
        if getattr(transport, "TLS", False):
            transport.write(data)  # through the TLS layer started on it
        else:
            write_now(transport, data)
        if self._gather_body:
            _flush_tls(self.transport)

    def dataReceived(self, data: bytes) -> None:
        if self._session is None:
            return  # after the end (e.g. the reply to a pipelined command we gave up on)
        self._reader.receive(data)
        # msmtp's timeout applies to each read, not to a whole reply: data that
        # leaves us waiting starts the wait again (a complete reply ends this
        # wait, and the session arms the timer for its next one)
        rearm = self._waiting
        try:
            if self._producer is not None:
                # the server owes no reply while the mail is being sent
                reply = self._next_reply()
                if reply is not None:
                    self._early_reply(reply)
                return
            while self._waiting:
                reply = self._next_reply()
                if reply is None:
                    if rearm:
                        self._arm_timer(self._read_timed_out)
                    break
                rearm = False
                self._waiting = False
                self._disarm_timer()
                self._advance(reply)
        except SMTPFailure as failure:
            self._fail(failure)
            return
        if self._session is not None and not self._waiting:
            self._limit_buffer()

    def _next_reply(self) -> Reply | None:
        """The next complete reply from what the server sent, traced; None if more
        bytes are needed.  Raises :class:`SMTPFailure` for an invalid reply."""
        try:
            reply = self._reader.next_reply()
        except ReplyError as e:
            raise SMTPFailure(sysexits.EX_PROTOCOL, str(e), cause=Cause.PROTOCOL) from None
        if reply is not None and self._trace:
            for line in reply.lines:
                self._trace("<--", line.encode("utf-8", "surrogateescape") + b"\r\n")
        return reply

    def _limit_buffer(self) -> None:
        """Stop reading while too many unparsed bytes wait for the session."""
        buffered = self._reader.buffered
        if buffered > HARD_LIMIT:
            self._fail(SMTPFailure(sysexits.EX_PROTOCOL, "the server sent more data than expected",
                                   cause=Cause.PROTOCOL), abort=True)
        elif buffered > HIGH_WATER and not self._reading_paused:
            pause = getattr(self.transport, "pauseProducing", None)
            if pause is not None:
                self._reading_paused = True
                pause()

    def _resume_reading(self) -> None:
        if self._reading_paused:
            self._reading_paused = False
            self.transport.resumeProducing()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.connected = False
        self._cancel_timer()
        if self._on_lost is not None:
            self._on_lost(reason)
        # Twisted keeps no errno.  A clean EOF means the server sent a FIN: a write
        # after it fails with EPIPE, a read sees the end of the stream.  Anything else
        # is a read/write error, in practice a TCP RST without a FIN first: ECONNRESET.
        clean = reason is None or reason.check(error.ConnectionDone) is not None
        if self._producer is not None:
            self._producer.stop()
            self._producer = None
            what = "Broken pipe" if clean else "Connection reset by peer"
            self._set_outcome(None, SMTPFailure(
                sysexits.EX_IOERR, f"network write error: {what}",
                cause=Cause.CLOSED if clean else Cause.RESET, writing=True))
        if self._session is not None and not self._quitting:
            # the server went away while we waited for it (or were about to)
            if clean:
                failure = SMTPFailure(sysexits.EX_PROTOCOL, str(self._reader.eof_error()),
                                      cause=Cause.CLOSED)
            else:
                failure = SMTPFailure(
                    sysexits.EX_IOERR, "network read error: Connection reset by peer",
                    cause=Cause.RESET,
                )
            self._set_outcome(None, failure)
        self._session = None
        self._finish()

    # -- the body -------------------------------------------------------------

    def _send_body(self) -> None:
        assert self._body is not None, "the session asked for a body but none was given"
        try:
            early = self._next_reply() if self._reader.buffered else None
        except SMTPFailure as failure:
            self._fail(failure)
            return
        if early is not None:
            # sent with (or after) the 354, before any of the mail
            self._advance(early)
            return
        if self._gather_body and self._write_small_body(self._body):
            return
        self._resume_reading()  # to see a reply the server sends while we write
        self._producer = _BodyProducer(self, self._body)
        self._arm_timer(self._write_timed_out)
        self.transport.registerProducer(self._producer, False)

    def _write_small_body(self, body: BodySource) -> bool:
        """Write the body at once if it ends within :data:`GATHER_LIMIT`; True if it
        did (the session goes on), False to stream it (what was read is written)."""
        parts: list[bytes] = []
        size = 0
        try:
            while size < GATHER_LIMIT:
                chunk = body.next_chunk()
                if chunk is None:
                    break
                parts.append(chunk)
                size += len(chunk)
            else:
                chunk = b""
        except OSError:
            self._fail(SMTPFailure(sysexits.EX_IOERR, "input error while reading the mail",
                                   cause=Cause.LOCAL))
            return True
        if chunk is None:
            # queued: it goes out with the final dot, in one write (one TLS record)
            if parts:
                self._outgoing.append(Send(b"".join(parts)))
            self._advance(body.mailsize)
            return True
        if parts:
            if self._trace:
                for part in parts:
                    self._trace("-->", part)
            self.transport.write(b"".join(parts))
        return False

    def _early_reply(self, reply: Reply) -> None:
        """The server replied before the end of the mail: stop sending it, and let
        the session judge the reply (it is no acceptance: the mail is incomplete)."""
        assert self._producer is not None
        self._producer.stop()
        self._producer = None
        self._disarm_timer()
        self.transport.unregisterProducer()
        self._advance(reply)

    def _body_progress(self) -> None:
        self._arm_timer(self._write_timed_out)

    def _body_done(self) -> None:
        assert self._body is not None
        self._disarm_timer()
        self.transport.unregisterProducer()
        self._producer = None
        self._advance(self._body.mailsize)

    def _body_failed(self, failure: SMTPFailure) -> None:
        self._disarm_timer()
        self.transport.unregisterProducer()
        self._producer = None
        self._fail(failure)

    # -- TLS --------------------------------------------------------------------

    def _begin_tls(self) -> None:
        if self._reader.pending:
            # bytes after the 220 would be read as if they had come over TLS
            raise SMTPFailure(sysexits.EX_PROTOCOL, "command STARTTLS failed",
                              cause=Cause.PROTOCOL)
        if self._start_tls is None:
            raise SMTPFailure(sysexits.EX_SOFTWARE, "support for TLS is not available",
                              cause=Cause.LOCAL)
        self._start_tls(self.transport)

    # -- timeouts ---------------------------------------------------------------

    def _arm_timer(self, callback: Callable[[], None]) -> None:
        self._on_timeout = callback
        if not self._timeout:
            return
        timer = self._timer
        if timer is not None and timer.active():
            # one call kept and moved, rather than a new one per read (twice a mail)
            timer.reset(self._timeout)
        else:
            self._timer = self._clock.callLater(self._timeout, self._timer_fired)

    def _disarm_timer(self) -> None:
        """Nothing waits now: the call stays scheduled and is ignored if it fires
        before the next :meth:`_arm_timer` moves it."""
        self._on_timeout = None

    def _cancel_timer(self) -> None:
        self._on_timeout = None
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _timer_fired(self) -> None:
        self._timer = None
        callback, self._on_timeout = self._on_timeout, None
        if callback is not None:
            callback()

    def _read_timed_out(self) -> None:
        self._fail(SMTPFailure(sysexits.EX_IOERR, "network read error: the operation timed out",
                               cause=Cause.TIMEOUT))

    def _write_timed_out(self) -> None:
        if self._producer is not None:
            self._producer.stop()
        # msmtp writes the mail line by line; when the server stops reading, the line
        # that fills the socket buffer goes out in part and send() returns short after
        # the timeout: msmtp then says just "network write error".  A graceful close
        # would wait for ever for our buffered data to go out, so drop it.
        self._fail(SMTPFailure(sysexits.EX_IOERR, "network write error", cause=Cause.TIMEOUT,
                               writing=True), abort=True)

    # -- ending -------------------------------------------------------------------

    def _set_outcome(self, result: Any, failure: SMTPFailure | None) -> None:
        if self._outcome is None:
            self._outcome = (result, failure)

    def _session_ended(self, result: Any, failure: SMTPFailure | None) -> None:
        self._session = None
        self._waiting = False
        self._cancel_timer()
        self._set_outcome(result, failure)
        if failure is None or failure.quit:
            # as msmtp: QUIT, wait for its reply (briefly), then close
            self._quitting = True
            self._timeout = min(self._timeout or QUIT_TIMEOUT, QUIT_TIMEOUT)
            self._session = quit_session()
            self._advance(None)
        else:
            self._close()

    def _fail(self, failure: SMTPFailure, *, abort: bool = False) -> None:
        self._set_outcome(None, failure)
        self._session = None
        self._waiting = False
        self._cancel_timer()
        self._close(abort=abort)

    def _close(self, *, abort: bool = False) -> None:
        self._session = None
        if self.transport is not None and self.connected:
            if abort or not self._quitting:
                # After an error msmtp just closes the socket.  A graceful close would
                # flush what is still queued and, under TLS, wait for the server's
                # close_notify, which some servers (Exim) never send.
                self.transport.abortConnection()
            else:
                self.transport.loseConnection()
                # after QUIT the server closes; one that does not (or never answers
                # our close_notify) must not keep us here
                self._cancel_timer()
                self._timer = self._clock.callLater(CLOSE_TIMEOUT, self._close_timed_out)
        else:
            self._finish()

    def _close_timed_out(self) -> None:
        self._timer = None
        if self.transport is not None and self.connected:
            self.transport.abortConnection()

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        result, failure = self._outcome or (
            None, SMTPFailure(sysexits.EX_SOFTWARE, "the session ended unexpectedly",
                              cause=Cause.LOCAL)
        )
        if failure is not None:
            self.done.errback(failure)
        else:
            self.done.callback(result)


def _flush_tls(transport: Any) -> None:
    """Twisted's TLS layer holds small writes until the next reactor turn to join
    them; ours are joined already (one write per round trip), so send at once."""
    # STARTTLS: the TCP transport passes writes to its TLS protocol; implicit TLS:
    # the transport is the TLS protocol
    holder = getattr(transport, "protocol", None) if getattr(transport, "TLS", False) \
        else transport
    aggregator = getattr(holder, "_aggregator", None)
    flush = getattr(aggregator, "flush", None)
    if flush is not None:
        flush()
        # and its call to flush at the next turn, which would cost a turn
        scheduled = getattr(aggregator, "_scheduled", None)
        if scheduled is not None and scheduled.active():
            scheduled.cancel()
            aggregator._scheduled = None


@implementer(IPullProducer)
class _BodyProducer:
    """Writes one encoded chunk each time the transport's buffer has drained."""

    def __init__(self, proto: SessionProtocol, body: BodySource) -> None:
        self._proto = proto
        self._body = body
        self._stopped = False

    def resumeProducing(self) -> None:
        if self._stopped:
            return
        try:
            chunk = self._body.next_chunk()
        except OSError:
            self._stopped = True
            self._proto._body_failed(SMTPFailure(
                sysexits.EX_IOERR, "input error while reading the mail", cause=Cause.LOCAL))
            return
        if chunk is None:
            self._stopped = True
            self._proto._body_done()
            return
        if self._proto._trace:
            self._proto._trace("-->", chunk)
        self._proto.transport.write(chunk)
        self._proto._body_progress()

    def stopProducing(self) -> None:
        self._stopped = True

    def stop(self) -> None:
        self._stopped = True
