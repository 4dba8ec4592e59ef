"""A sender that keeps up to N connections to one account.

::

    sender = Sender(reactor, account, connections=2)
    d = sender.send("me@example.com", ["you@example.org"], message)   # any number
    ...
    yield sender.close()      # waits for the sends in flight, then QUIT

Modelled on ``twisted.web.client.HTTPConnectionPool``: a cap on connections, idle
connections kept for ``idle_timeout`` seconds and reused, and one safe retry.

- At most ``connections`` connections are open (or opening) at once; sends
  beyond what they can take wait in a queue, first come, first served.  A
  connection runs one send at a time.
- An idle connection is reused (the most recently used first); after
  ``idle_timeout`` seconds without work it is closed with QUIT.  A connection the
  server closed (or answered ``421``) is dropped, and the next send opens a new
  one.
- **One mail is never sent twice on our own.**  A send is retried once, on a new
  connection, only when the failure proves that the server cannot have the mail:
  the connection was an idle one being reused (or the send never reached it),
  the final dot had not been sent, and the connection was found closed or reset,
  or the server said ``421``.  A failure on a fresh connection, a refusal, a
  timeout, and anything after the final dot are reported as they are.
- ``send(..., timeout=T)`` bounds the call from the moment it is made, queueing
  included; each read and write on a connection may wait the connection's
  ``timeout`` (the account's, else 60 s).
- Cancelling a send's Deferred: waiting, it leaves the queue; running, see
  :class:`~msmtp_twisted.protocol.connection.Connection` (before the final dot
  the connection is aborted and nothing is delivered).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, BinaryIO

from twisted.internet import defer
from twisted.internet.base import DelayedCall
from twisted.python.failure import Failure

from msmtp_twisted import sysexits
from msmtp_twisted.config.account import Account
from msmtp_twisted.errors import Cause, MsmtpError, SMTPFailure
from msmtp_twisted.protocol.connection import (
    Connection,
    PreparedMail,
    _Job,
    connect,
    observe_mail,
)
from msmtp_twisted.smtp.client import Delivered

__all__ = ["DEFAULT_CONNECTIONS", "DEFAULT_IDLE_TIMEOUT", "Sender"]

#: Connections a :class:`Sender` keeps by default: few, as relays limit them.
DEFAULT_CONNECTIONS = 2
#: Seconds an idle connection is kept.
DEFAULT_IDLE_TIMEOUT = 30.0


class _Send:
    def __init__(self, sender: Sender, mail: PreparedMail, deadline: float | None) -> None:
        self.mail = mail
        self.deadline = deadline
        self.deferred: defer.Deferred[Delivered] = defer.Deferred(
            lambda d: sender._cancel(self))
        self.job: _Job | None = None
        self.timer: DelayedCall | None = None
        self.retried = False


class Sender:
    """Sends mail through up to ``connections`` kept connections to ``account``."""

    def __init__(self, reactor: Any, account: Account, *,
                 connections: int = DEFAULT_CONNECTIONS,
                 idle_timeout: float = DEFAULT_IDLE_TIMEOUT, timeout: float | None = None,
                 password: Callable[[], Any] | None = None, endpoint: Any = None) -> None:
        if connections < 1:
            raise ValueError("connections must be at least 1")
        self._reactor = reactor
        self._account = account
        self._max = connections
        self._idle_timeout = idle_timeout
        self._timeout = timeout
        self._password = password
        self._endpoint = endpoint
        self._waiting: deque[_Send] = deque()
        self._idle: list[Connection] = []
        self._idle_timers: dict[Connection, DelayedCall] = {}
        self._idle_since: dict[Connection, float] = {}
        self._busy: set[Connection] = set()
        self._all: set[Connection] = set()
        self._opening = 0
        self._closing = False
        self._close_waiters: list[defer.Deferred[None]] = []
        #: connections opened so far (for tests and statistics)
        self.connections_opened = 0

    def send(self, envelope_from: str | None, recipients: Sequence[str],
             message: bytes | BinaryIO, *,
             notify: str | None = None, ret: str | None = None, envid: str | None = None,
             partial_recipients: bool = False, timeout: float | None = None
             ) -> defer.Deferred[Delivered]:
        """As :meth:`Connection.send <msmtp_twisted.protocol.connection.Connection.send>`,
        on one of the sender's connections."""
        if self._closing:
            return defer.fail(SMTPFailure(sysexits.EX_SOFTWARE, "the sender is closed",
                                          cause=Cause.LOCAL))
        try:
            mail = PreparedMail(self._account, envelope_from, recipients, message,
                                notify=notify, ret=ret, envid=envid,
                                partial_recipients=partial_recipients)
        except (ValueError, TypeError, OSError, MsmtpError) as e:
            return defer.fail(e)
        return self.send_prepared(mail, timeout=timeout)

    def send_prepared(self, mail: PreparedMail, *, timeout: float | None = None
                      ) -> defer.Deferred[Delivered]:
        """Send a :class:`~msmtp_twisted.protocol.connection.PreparedMail` (or
        anything with its ``job`` and ``body()``; one whose ``retryable`` is
        false is never tried a second time)."""
        if self._closing:
            return defer.fail(SMTPFailure(sysexits.EX_SOFTWARE, "the sender is closed",
                                          cause=Cause.LOCAL))
        deadline = self._reactor.seconds() + timeout if timeout is not None else None
        send = _Send(self, mail, deadline)
        if timeout is not None:
            send.timer = self._reactor.callLater(timeout, self._expire, send)
        # one delivered/failed event per send, whatever the attempts and connections
        observe_mail(send.deferred, self._account, mail)
        self._waiting.append(send)
        self._dispatch()
        return send.deferred

    def close(self) -> defer.Deferred[None]:
        """Take no more sends; let the queued and running ones finish, then QUIT every
        connection.  Fires when all are closed."""
        self._closing = True
        d: defer.Deferred[None] = defer.Deferred()
        self._close_waiters.append(d)
        self._maybe_closed()
        return d

    # -- dispatching ----------------------------------------------------------------------

    def _dispatch(self) -> None:
        while self._waiting:
            conn = self._take_idle()
            if conn is not None:
                self._run(self._waiting.popleft(), conn, reused=True)
                continue
            if len(self._all) + self._opening < self._max:
                self._open()
                continue
            break

    def _take_idle(self) -> Connection | None:
        # the idle timer is left running: it checks when it fires (one timer per
        # idle period, not one per mail)
        while self._idle:
            conn = self._idle.pop()
            if conn.reusable:
                return conn
        return None

    def _open(self) -> None:
        self._opening += 1
        self.connections_opened += 1
        d = connect(self._reactor, self._account, timeout=self._timeout,
                    password=self._password, endpoint=self._endpoint)
        d.addCallbacks(self._opened, self._open_failed)

    def _opened(self, conn: Connection) -> None:
        self._opening -= 1
        self._all.add(conn)
        conn.when_closed().addCallback(lambda _: self._closed(conn))
        if self._waiting:
            self._run(self._waiting.popleft(), conn, reused=False)
        else:
            self._make_idle(conn)
        self._dispatch()
        self._maybe_closed()

    def _open_failed(self, failure: Failure) -> None:
        self._opening -= 1
        # the oldest waiting send gets the failure (each connect serves one send)
        if self._waiting:
            send = self._waiting.popleft()
            self._fire(send, failure)
            self._dispatch()
        self._maybe_closed()

    def _run(self, send: _Send, conn: Connection, *, reused: bool) -> None:
        remaining = None
        if send.deadline is not None:
            remaining = max(send.deadline - self._reactor.seconds(), 0.0)
        self._busy.add(conn)
        job = conn.submit_mail(send.mail, timeout=remaining, log=False)
        send.job = job
        job.deferred.addBoth(self._ran, send, conn, reused)

    def _ran(self, result: Any, send: _Send, conn: Connection, reused: bool) -> None:
        job, send.job = send.job, None
        self._busy.discard(conn)
        if conn.reusable and conn in self._all:
            self._make_idle(conn)
        if isinstance(result, Failure) and job is not None and \
                self._may_retry(result, send, job, reused):
            send.retried = True
            self._waiting.appendleft(send)
        else:
            self._fire(send, result)
        self._dispatch()
        self._maybe_closed()

    def _may_retry(self, failure: Failure, send: _Send, job: _Job, reused: bool) -> bool:
        """The rule of the module docstring: nothing of the mail can be at the server."""
        if send.retried or send.deferred.called or job.final_dot_sent \
                or not getattr(send.mail, "retryable", True):
            return False
        error = failure.value
        if not isinstance(error, SMTPFailure):
            return False
        if not job.started:
            return error.cause is Cause.CLOSED  # never reached the connection
        if not reused:
            return False
        return error.cause in (Cause.CLOSED, Cause.RESET) or (
            error.reply is not None and error.reply.code == 421)

    def _fire(self, send: _Send, result: Any) -> None:
        if send.timer is not None and send.timer.active():
            send.timer.cancel()
        send.timer = None
        if send.deferred.called:
            return  # cancelled: the Deferred has its CancelledError
        if isinstance(result, Failure):
            send.deferred.errback(result)
        else:
            send.deferred.callback(result)

    def _cancel(self, send: _Send) -> None:
        if send.timer is not None and send.timer.active():
            send.timer.cancel()
        if send.job is not None:
            send.job.deferred.cancel()
        elif send in self._waiting:
            self._waiting.remove(send)
            self._maybe_closed()

    def _expire(self, send: _Send) -> None:
        send.timer = None
        if send in self._waiting:
            self._waiting.remove(send)
            self._fire(send, Failure(SMTPFailure(
                sysexits.EX_TEMPFAIL, "the send timed out before a connection was free",
                cause=Cause.TIMEOUT)))
            self._maybe_closed()
        # a running send is bounded by its connection job's own timeout

    # -- idle connections and closing -------------------------------------------------------

    def _make_idle(self, conn: Connection) -> None:
        if conn in self._idle:
            return
        self._idle.append(conn)
        self._idle_since[conn] = self._reactor.seconds()
        if not self._closing and conn not in self._idle_timers:
            self._idle_timers[conn] = self._reactor.callLater(
                self._idle_timeout, self._idle_check, conn)

    def _idle_check(self, conn: Connection) -> None:
        self._idle_timers.pop(conn, None)
        if conn not in self._idle:
            return  # busy (a new timer starts when it is idle again) or gone
        idle_for = self._reactor.seconds() - self._idle_since.get(conn, 0.0)
        if idle_for < self._idle_timeout:
            self._idle_timers[conn] = self._reactor.callLater(
                self._idle_timeout - idle_for, self._idle_check, conn)
            return
        self._idle.remove(conn)
        conn.quit()

    def _closed(self, conn: Connection) -> None:
        self._all.discard(conn)
        self._busy.discard(conn)
        self._idle_since.pop(conn, None)
        if conn in self._idle:
            self._idle.remove(conn)
        timer = self._idle_timers.pop(conn, None)
        if timer is not None and timer.active():
            timer.cancel()
        self._dispatch()
        self._maybe_closed()

    def _maybe_closed(self) -> None:
        if not self._closing or self._waiting or self._busy or self._opening:
            return
        for conn in list(self._idle):
            self._idle.remove(conn)
            timer = self._idle_timers.pop(conn, None)
            if timer is not None and timer.active():
                timer.cancel()
            conn.quit()
        if self._all:
            return  # _closed() comes back here as each one ends
        waiters, self._close_waiters = self._close_waiters, []
        for d in waiters:
            d.callback(None)
