"""A connection you can keep: connect as an msmtprc account says, then send any
number of mails, ETRN, QUIT — each a Deferred.

::

    from msmtp_twisted.protocol.connection import connect

    conn = yield connect(reactor, account)              # TCP/unix/SOCKS, TLS, AUTH
    delivered = yield conn.send("me@example.com", ["you@example.org"], message)
    delivered = yield conn.send(None, ["a@x.org", "b@y.org"], other,
                                notify="FAILURE,DELAY", ret="HDRS", envid="job-17")
    yield conn.etrn("example.org")
    yield conn.quit()

This is the design's "ESMTPSender extended for LMTP, DSN and ETRN": the sans-IO
:func:`~msmtp_twisted.smtp.persistent.persistent_session` driven by
:class:`~msmtp_twisted.protocol.session.SessionProtocol` on an endpoint, with
TLS and AUTH from the delivery layer (:mod:`msmtp_twisted.sending`), as
``msmtp`` connects for the account.

- **One at a time, queued**: calls made while a job runs wait their turn (first
  come, first served); each returns its own Deferred.  Use
  :class:`~msmtp_twisted.protocol.pool.Sender` for several connections.
- **Mail preparation** is ``msmtp``'s (and :func:`~msmtp_twisted.api.send_mail`'s):
  Bcc removed, From/Date/Message-ID/To added as the account says.
- **Results**: :class:`~msmtp_twisted.smtp.client.Delivered` with every RCPT
  reply and, for LMTP, every reply after the final dot.  A refusal fails that
  send with :class:`~msmtp_twisted.errors.SMTPFailure`; the connection stays
  usable (RSET goes before the next mail) unless the failure says otherwise
  (:attr:`Connection.reusable`).
- **Cancellation**: ``d.cancel()`` on a send that has not started removes it
  from the queue; on a running one before the final dot it aborts the
  connection (the server never sees the end of the mail, so it delivers
  nothing; later queued calls fail with :attr:`~msmtp_twisted.errors.Cause.CLOSED`).
  From the final dot on, the server may have the mail: the connection is left
  alone, the Deferred fails with ``CancelledError`` (as every cancelled Deferred
  does) and the server's verdict is logged when it comes.
- **Time**: every read and write may wait ``timeout`` seconds (the account's
  ``timeout``, else :data:`DEFAULT_TIMEOUT`); ``send(..., timeout=T)`` also
  bounds that call as a whole (counted from the call, queueing included).  All
  time goes through the reactor given to :func:`connect`.
"""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from twisted.internet import defer
from twisted.internet.base import DelayedCall
from twisted.internet.protocol import Factory
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from msmtp_twisted import sysexits
from msmtp_twisted.config.account import Account
from msmtp_twisted.errors import Cause, MsmtpError, SMTPFailure
from msmtp_twisted.message.encoder import encode_part
from msmtp_twisted.message.headers import quick_scan
from msmtp_twisted.sending.events import observe_delivery
from msmtp_twisted.sending.mail import added_headers, build_body_parts, read_headers
from msmtp_twisted.smtp.client import Capabilities, Delivered
from msmtp_twisted.smtp.persistent import (
    QUIT_JOB,
    ConnectionState,
    EtrnJob,
    JobDone,
    MailJob,
    SessionSetup,
    check_dsn,
    persistent_session,
)
from msmtp_twisted.smtp.reply import Reply

if TYPE_CHECKING:
    from msmtp_twisted.protocol.session import SessionProtocol
    from msmtp_twisted.sending.mail import MailBody

__all__ = ["DEFAULT_TIMEOUT", "Connection", "PreparedMail", "connect", "observe_mail"]

#: Seconds a read or write may wait when neither the account (``timeout``) nor the
#: caller says: a silent server never holds a library call for ever.
DEFAULT_TIMEOUT = 60.0

_log = Logger()

#: Mails up to this size are encoded once, when prepared (larger ones are
#: streamed from the message for each attempt).
SMALL_MAIL = 64 * 1024


def io_timeout(account: Account, timeout: float | None = None) -> float:
    """The per-read/write timeout: ``timeout``, else the account's, else the default."""
    if timeout is not None:
        return timeout
    return float(account.timeout) if account.timeout else DEFAULT_TIMEOUT


class PreparedMail:
    """One mail, prepared as ``msmtp`` prepares it (headers read and the added ones
    generated once), whose body can be produced again for another attempt.

    ``message`` is the whole mail as bytes, or a binary file open for reading
    and seekable (a big mail is then streamed from it, never held in memory, and
    read again from where it stood for another attempt; the caller keeps it open
    until the send's Deferred has fired, and closes it).
    """

    def __init__(self, account: Account, envelope_from: str | None,
                 recipients: Sequence[str], message: bytes | BinaryIO, *,
                 notify: str | None = None, ret: str | None = None,
                 envid: str | None = None, partial_recipients: bool = False) -> None:
        if isinstance(recipients, (str, bytes)):
            raise TypeError("recipients must be a sequence of addresses, not one string")
        if not recipients:
            raise ValueError("no recipients")
        self._file: BinaryIO | None = None
        if not isinstance(message, bytes):
            if not (callable(getattr(message, "read", None))
                    and callable(getattr(message, "seekable", None)) and message.seekable()):
                raise TypeError("message must be bytes or a seekable binary file")
            self._file, self._start = message, message.tell()
            message = b""
        if notify is None:
            notify = account.dsn_notify
        if ret is None:
            ret = account.dsn_return
        if notify is not None or ret is not None or envid is not None:
            check_dsn(notify, ret, envid)
        sender = envelope_from if envelope_from is not None else (account.from_addr or "")
        self.message = message
        self.job = MailJob(sender, tuple(recipients), notify=notify, ret=ret, envid=envid,
                           partial_recipients=partial_recipients)
        self._first: tuple[Any, BinaryIO] | None = None
        self._encoded: _Encoded | None = None
        if self._file is not None:
            headers = read_headers(self._file, want_recipients=False)
            self._prepend, self._policy = build_body_parts(account, headers, recipients, sender)
            self._first = (headers, self._file)
        elif len(message) <= SMALL_MAIL:
            # encoded once, here, as MailBody would (the same three parts): each
            # attempt sends the same bytes
            facts = quick_scan(message)
            if facts is not None:
                self._prepend, self._policy = added_headers(
                    account, recipients, sender, have_from=facts.have_from,
                    have_date=facts.have_date, have_msgid=facts.have_msgid)
                head, rest = message[:facts.end], message[facts.end:]
            else:
                stream = io.BytesIO(message)
                headers = read_headers(stream, want_recipients=False)
                self._prepend, self._policy = build_body_parts(account, headers, recipients,
                                                               sender)
                head, rest = headers.head, headers.rest + stream.read()
            added, added_size = encode_part(self._prepend) if self._prepend else (b"", 0)
            # msmtp's header reader drops every CR of the header block
            own, own_size = encode_part(head.replace(b"\r", b""), self._policy)
            body, body_size = encode_part(rest)
            self._encoded = _Encoded(added + own + body, added_size + own_size + body_size)
        else:
            stream = io.BytesIO(message)
            headers = read_headers(stream, want_recipients=False)
            self._prepend, self._policy = build_body_parts(account, headers, recipients, sender)
            self._first = (headers, stream)

    def body(self) -> MailBody | _Encoded | _Unreadable:
        """The encoded mail, as a pull source (a fresh one for each attempt)."""
        from msmtp_twisted.sending.mail import MailBody, read_headers

        if self._encoded is not None:
            return _Encoded(self._encoded.whole, self._encoded.mailsize)
        if self._first is not None:
            headers, stream = self._first
            self._first = None
        elif self._file is not None:
            try:
                self._file.seek(self._start)
                stream = self._file
                headers = read_headers(stream, want_recipients=False)
            except (OSError, ValueError) as e:
                # the session reports it as msmtp reports an unreadable mail
                return _Unreadable(e)
        else:
            stream = io.BytesIO(self.message)
            headers = read_headers(stream, want_recipients=False)
        return MailBody(self._prepend, headers.iter_head(), headers.rest, stream, self._policy)


def observe_mail(d: defer.Deferred[Any], account: Account, mail: PreparedMail) -> None:
    """The ``delivered``/``failed`` log events for the send whose result ``d`` is
    (:func:`~msmtp_twisted.sending.events.observe_delivery` reads only the envelope)."""
    observe_delivery(d, account, cast(Any, mail.job))


class _Unreadable:
    """The body of a mail whose file could not be read again."""

    mailsize = 0

    def __init__(self, error: Exception) -> None:
        self._error = error

    def next_chunk(self) -> bytes | None:
        raise OSError(str(self._error))


class _Encoded:
    """A small mail, encoded already (a ``BodySource``)."""

    def __init__(self, data: bytes, mailsize: int) -> None:
        self.whole = data
        self.data: bytes | None = data
        self.mailsize = mailsize

    def next_chunk(self) -> bytes | None:
        data, self.data = self.data, None
        return data or None


class _Job:
    """One call waiting for or running on the connection."""

    def __init__(self, conn: Connection, request: Any,
                 body: Callable[[], MailBody | _Encoded | _Unreadable] | None) -> None:
        self.request = request
        self.body = body
        self.deferred: defer.Deferred[Any] = defer.Deferred(lambda d: conn._cancel(self))
        self.timer: DelayedCall | None = None
        #: the job reached the connection (its commands may have gone out)
        self.started = False
        #: the final dot was sent: the server may have the mail
        self.final_dot_sent = False
        #: the result no longer goes to the Deferred (cancelled or timed out)
        self.abandoned = False


def _failure(error: BaseException) -> Failure:
    return Failure(error)


def _closed_failure(message: str = "the connection is closed") -> SMTPFailure:
    return SMTPFailure(sysexits.EX_UNAVAILABLE, message, cause=Cause.CLOSED)


class Connection:
    """One SMTP/LMTP connection kept open for many jobs; made by :func:`connect`."""

    def __init__(self, reactor: Any, account: Account, *, timeout: float | None = None,
                 password: Callable[[], Any] | None = None) -> None:
        self._reactor = reactor
        self._account = account
        self._timeout = io_timeout(account, timeout)
        self._password = password
        self._state = ConnectionState()
        self._queue: deque[_Job] = deque()
        self._current: _Job | None = None
        self._proto: SessionProtocol | None = None
        self._connected = False
        self._cancelled = False
        self._ended = False
        self._ready: defer.Deferred[Connection] = defer.Deferred(self._cancel_connect)
        self._connecting: defer.Deferred[Any] | None = None
        self._closed_waiters: list[defer.Deferred[None]] = []
        #: how many jobs this connection has finished (the pool reuses the count)
        self.jobs_done = 0

    # -- public -------------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        """What the server offered (after STARTTLS, the second EHLO/LHLO)."""
        return self._state.capabilities

    @property
    def greeting(self) -> Reply | None:
        return self._state.greeting

    @property
    def reusable(self) -> bool:
        """More jobs can run here (open, and no failure ended the session)."""
        return not self._ended and self._state.reusable and self._state.ready

    @property
    def idle(self) -> bool:
        """Open and waiting for a job, nothing queued."""
        return (self.reusable and self._current is None and not self._queue
                and self._proto is not None and self._proto.idle)

    def send(self, envelope_from: str | None, recipients: Sequence[str],
             message: bytes | BinaryIO, *,
             notify: str | None = None, ret: str | None = None, envid: str | None = None,
             partial_recipients: bool = False, timeout: float | None = None
             ) -> defer.Deferred[Delivered]:
        """Send ``message`` (a whole mail, LF or CRLF line ends; bytes, or a seekable
        binary file streamed as :class:`PreparedMail` says) to ``recipients``.

        ``envelope_from`` None: the account's ``from``.  ``notify``/``ret`` (DSN;
        default: the account's ``dsn_notify``/``dsn_return``) and ``envid``: see
        :class:`~msmtp_twisted.smtp.persistent.MailJob`; a server without DSN
        refuses them.  ``partial_recipients``: deliver to the accepted recipients
        when others are refused (see :attr:`Delivered.refused`).  Invalid
        arguments fail the Deferred with ValueError/TypeError.
        """
        try:
            mail = PreparedMail(self._account, envelope_from, recipients, message,
                                notify=notify, ret=ret, envid=envid,
                                partial_recipients=partial_recipients)
        except (ValueError, TypeError, OSError, MsmtpError) as e:
            return defer.fail(e)
        return self.send_prepared(mail, timeout=timeout)

    def send_prepared(self, mail: PreparedMail, *, timeout: float | None = None
                      ) -> defer.Deferred[Delivered]:
        """Send a :class:`PreparedMail` (which may be sent again elsewhere)."""
        return self.submit_mail(mail, timeout=timeout).deferred

    def submit_mail(self, mail: PreparedMail, *, timeout: float | None = None,
                    log: bool = True) -> _Job:
        """:meth:`send_prepared`, returning the job: its ``deferred``, and after it
        fired whether it ``started`` and whether its ``final_dot_sent`` (for a
        caller that decides whether another attempt is safe).  ``log``: the
        ``delivered``/``failed`` events (off for a caller that logs the outcome of
        the whole send itself)."""
        job = _Job(self, mail.job, mail.body)
        self._submit(job, timeout)
        if log:
            observe_mail(job.deferred, self._account, mail)
        return job

    def etrn(self, argument: str, *, timeout: float | None = None) -> defer.Deferred[Reply]:
        """Ask the server to start its queue for ``argument`` (RFC 1985: a domain,
        ``@domain`` or ``#queue``); fires with the server's reply."""
        return self._submit(_Job(self, EtrnJob(argument), None), timeout)

    def quit(self) -> defer.Deferred[None]:
        """QUIT after the queued jobs, then close; fires once the connection is closed
        (a failing QUIT is no error)."""
        if self._ended:
            return defer.succeed(None)
        d = self._submit(_Job(self, QUIT_JOB, None), None)
        def closed(failure: Failure) -> Failure | None:
            return None if isinstance(failure.value, MsmtpError) else failure
        d.addErrback(closed)
        return d

    def abort(self) -> None:
        """Close the connection at once; jobs not finished fail (nothing of a mail
        whose final dot was not sent is delivered)."""
        if self._proto is not None and self._proto.transport is not None and self._connected:
            self._proto.transport.abortConnection()
        elif self._connecting is not None:
            self._cancel_connect(self._ready)

    def when_closed(self) -> defer.Deferred[None]:
        """A Deferred that fires (with None) when the connection has ended."""
        if self._ended:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self._closed_waiters.append(d)
        return d

    # -- opening ------------------------------------------------------------------------

    def _open(self, endpoint: Any, tls: Any) -> None:
        from msmtp_twisted.protocol.session import SessionProtocol
        from msmtp_twisted.sending.connection import tls_wiring
        from msmtp_twisted.sending.credentials import auth_request

        account = self._account
        setup = SessionSetup(protocol=account.protocol, domain=account.domain,
                             starttls=bool(account.tls and account.tls_starttls),
                             auth=auth_request(account))
        wiring, finish = tls_wiring(tls, clock=self._reactor, timeout=self._timeout, trace=None)
        proto = SessionProtocol(
            persistent_session(setup, self._state), clock=self._reactor,
            timeout=self._timeout, password=self._password, next_job=self._next_job,
            job_done=self._job_done, gather_body=True, **wiring)
        finish(proto)
        self._proto = proto
        proto.done.addBoth(self._session_ended)

        conn = self

        class _Factory(Factory):
            noisy = False

            def buildProtocol(self, addr: Any) -> Any:
                if conn._cancelled:
                    return _Aborter()
                conn._connected = True
                return proto

        d = endpoint.connect(_Factory())
        self._connecting = d

        def failed(failure: Failure) -> None:
            self._connecting = None
            if not self._connected:
                self._ended = True
                self._fire_closed()
                if not self._ready.called:
                    self._ready.errback(failure)

        def connected(_: Any) -> None:
            self._connecting = None

        d.addCallbacks(connected, failed)

    def _cancel_connect(self, d: defer.Deferred[Connection]) -> None:
        self._cancelled = True
        if self._connected:
            self.abort()
        elif self._connecting is not None:
            self._connecting.cancel()

    # -- jobs -----------------------------------------------------------------------------

    def _submit(self, job: _Job, timeout: float | None) -> defer.Deferred[Any]:
        if self._ended or not self._state.reusable or self._cancelled:
            job.abandoned = True
            job.deferred.errback(_closed_failure())
            return job.deferred
        if timeout is not None:
            job.timer = self._reactor.callLater(timeout, self._expire, job)
        self._queue.append(job)
        proto = self._proto
        if proto is not None and proto.idle and self._current is None and self._ready.called:
            popped = self._next_job()
            if popped is not None:
                proto.run_job(*popped)
        return job.deferred

    def _next_job(self) -> tuple[Any, Any] | None:
        """The session asks for its next job (``NEXT_JOB``)."""
        if not self._ready.called:
            # hello, STARTTLS, AUTH done: the connection is ready (jobs queued by the
            # callbacks are picked up just below)
            self._ready.callback(self)
        while self._queue:
            job = self._queue.popleft()
            if job.deferred.called:
                continue
            job.started = True
            self._current = job
            # the session resets these when it takes the job; a job that fails
            # before (the server spoke out of turn) must not see the last one's
            self._state.final_dot_sent = False
            self._state.replies_read = 0
            if job.request is QUIT_JOB:
                return QUIT_JOB, None
            return job.request, job.body() if job.body is not None else None
        return None

    def _job_done(self, outcome: JobDone) -> None:
        job, self._current = self._current, None
        assert job is not None
        self.jobs_done += 1
        job.final_dot_sent = self._state.final_dot_sent
        if outcome.failure is not None:
            self._finish(job, _failure(outcome.failure))
        else:
            self._finish(job, outcome.result)

    def _finish(self, job: _Job, result: Any) -> None:
        if job.timer is not None and job.timer.active():
            job.timer.cancel()
        job.timer = None
        if job.abandoned or job.deferred.called:
            if job.final_dot_sent and isinstance(job.request, MailJob):
                self._log_late(job, result)
            return
        job.abandoned = True
        if isinstance(result, Failure):
            job.deferred.errback(result)
        else:
            job.deferred.callback(result)

    def _log_late(self, job: _Job, result: Any) -> None:
        if isinstance(result, Failure):
            _log.warn("mail from {sender} (cancelled after the final dot) failed: {why}",
                      sender=job.request.envelope_from, why=result.getErrorMessage())
        elif isinstance(result, Delivered):
            _log.info("mail from {sender} (cancelled after the final dot) was accepted: "
                      "{reply}", sender=job.request.envelope_from,
                      reply=result.reply.text if result.reply is not None else "LMTP")

    def _cancel(self, job: _Job) -> None:
        """``job.deferred.cancel()``: the Deferred fails with CancelledError after this."""
        if job.abandoned:
            return
        if job.timer is not None and job.timer.active():
            job.timer.cancel()
        if not job.started:
            job.abandoned = True
            try:
                self._queue.remove(job)
            except ValueError:
                pass
            return
        if job is self._current and not self._state.final_dot_sent:
            job.abandoned = True
            self.abort()
        elif job is self._current:
            job.final_dot_sent = True
            job.abandoned = True  # the verdict is logged (_finish)
            _log.info("send cancelled after the final dot: the server may deliver the mail; "
                      "its verdict will be logged")

    def _expire(self, job: _Job) -> None:
        job.timer = None
        if job.abandoned or job.deferred.called:
            return
        if not job.started:
            self._queue.remove(job)
            self._finish(job, _failure(SMTPFailure(
                sysexits.EX_TEMPFAIL, "the send timed out before it could start",
                cause=Cause.TIMEOUT)))
            return
        dot = self._state.final_dot_sent and job is self._current
        job.final_dot_sent = dot
        message = ("the server did not answer the end of the mail in time (the mail may "
                   "have been delivered)" if dot else "the send timed out")
        self._finish(job, _failure(SMTPFailure(sysexits.EX_TEMPFAIL, message,
                                              cause=Cause.TIMEOUT)))
        self.abort()

    # -- ending ---------------------------------------------------------------------------

    def _session_ended(self, result: Any) -> None:
        self._ended = True
        failure = result if isinstance(result, Failure) else None
        if not self._ready.called:
            self._ready.errback(failure if failure is not None else
                                _failure(_closed_failure("the server closed the connection")))
        job, self._current = self._current, None
        if job is not None:
            job.final_dot_sent = job.final_dot_sent or self._state.final_dot_sent
            if job.request is QUIT_JOB:
                self._finish(job, None)
            else:
                self._finish(job, failure if failure is not None else
                             _failure(_closed_failure()))
        while self._queue:
            waiting = self._queue.popleft()
            self._finish(waiting, None if waiting.request is QUIT_JOB else
                         _failure(_closed_failure()))
        self._fire_closed()

    def _fire_closed(self) -> None:
        waiters, self._closed_waiters = self._closed_waiters, []
        for d in waiters:
            d.callback(None)


class _Aborter(TwistedProtocol):
    """Built for a connection that completes after its connect was cancelled."""

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.abortConnection()


def connect(reactor: Any, account: Account, *, timeout: float | None = None,
            password: Callable[[], Any] | None = None, endpoint: Any = None
            ) -> defer.Deferred[Connection]:
    """Connect as ``account`` says (unix socket, TCP, SOCKS5; TLS, STARTTLS; AUTH)
    and wait until the server is ready for mail.

    Fires with a :class:`Connection`, or fails with a
    :class:`~msmtp_twisted.errors.MsmtpError` (``ConnectFailure``, ``TLSFailure``,
    ``SMTPFailure``).  ``timeout``: seconds each read and write may wait (default:
    the account's ``timeout``, else :data:`DEFAULT_TIMEOUT`).  ``password()``
    supplies a password the account lacks (default: key ring and netrc, in a
    thread).  ``endpoint``: connect through this instead of the account's
    host/port (the account's TLS settings still apply).  Cancelling the Deferred
    stops connecting, or closes the connection if it is open.
    """
    from msmtp_twisted.sending.credentials import password_in_thread
    from msmtp_twisted.sending.endpoint import account_tls_in_thread, endpoint_for

    if password is None:
        password = password_in_thread(reactor, account)
    conn = Connection(reactor, account, timeout=timeout, password=password)

    def open_with(tls: Any) -> None:
        if conn._cancelled or conn._ready.called:
            conn._ended = True
            return  # cancelled while the TLS files were read
        chosen = endpoint
        if chosen is None:
            chosen = endpoint_for(reactor, account, tls=tls)
        elif tls is not None and not account.tls_starttls:
            chosen = tls.wrap_endpoint(chosen)
        conn._open(chosen, tls)

    def no_tls(failure: Failure) -> None:
        conn._ended = True
        if not conn._ready.called:
            conn._ready.errback(failure)

    # the account's TLS files are read once, in a thread (TLSFailure if unusable)
    account_tls_in_thread(reactor, account).addCallbacks(open_with, no_tls)
    return conn._ready
