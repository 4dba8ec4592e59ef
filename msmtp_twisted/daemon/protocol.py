"""msmtpd on Twisted: a thin Protocol around :class:`~msmtp_twisted.smtp.server.SMTPServer`.

:class:`MsmtpdFactory` holds what sessions share: the configuration, the log,
the count of active sessions (at most ``max_sessions``; one more client gets
``421`` and is disconnected), the time of the last AUTH failure (AUTH answers
are delayed by ``auth_delay`` seconds for ``auth_delay_expiration`` seconds
after any failure, in every session; always in ``--inetd`` mode), the AUTH
answers already scheduled per client address (while the delay holds, the
answers to one address go out one ``auth_delay`` apart, however many sessions
it opens) and a small cache of reverse look-ups.

:class:`MsmtpdProtocol` feeds received bytes to the state machine and carries
out its events: replies are written, the mail is spooled and piped to the
command (:mod:`msmtp_twisted.daemon.delivery`), credentials go to the checker.
While the machine waits for a delivery or an AUTH verdict the transport is
paused, so a pipelining client is answered in order and never floods memory.
Idle and total session timeouts, and a command line or mail arriving slower
than the minimum data rate, close the connection with ``421``; a client that
does not read that reply either is cut off :data:`CLOSE_GRACE` seconds later.

:meth:`MsmtpdFactory.shutdown` ends every session gracefully (see
:class:`~msmtp_twisted.daemon.service.MsmtpdService`).
"""

from __future__ import annotations

import ipaddress
import os
import shlex
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from twisted.internet import defer
from twisted.internet.error import ConnectionAborted
from twisted.internet.interfaces import (
    IHalfCloseableProtocol,
    IHandshakeListener,
    IPushProducer,
    ISSLTransport,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from msmtp_twisted.daemon.command import PipeCommand
from msmtp_twisted.daemon.delivery import (
    DEFAULT_SPOOL_THRESHOLD,
    KILL_GRACE,
    STDERR_GRACE,
    Delivery,
    Spool,
    start_delivery,
)
from msmtp_twisted.daemon.log import MsmtpdLog
from msmtp_twisted.daemon.options import DEFAULTS
from msmtp_twisted.message.msgid import rfc2822_date
from msmtp_twisted.smtp.server import (
    AuthAttempt,
    Close,
    Log,
    MessageAborted,
    MessageBegin,
    MessageData,
    MessageEnd,
    ServerLimits,
    ServerReply,
    SMTPServer,
    State,
    received_header,
)

__all__ = ["ConnectionInfo", "DaemonConfig", "MsmtpdFactory", "MsmtpdProtocol",
           "connection_info_from_fd"]

AUTH_DELAY_SECONDS = 1.0
AUTH_DELAY_EXPIRATION_SECONDS = 60.0
_NAME_CACHE_TTL = 60.0
_NAME_CACHE_MAX = 1024
#: Seconds a closing connection may take to write its last replies; a client
#: that reads nothing (its buffers full) is then cut off.
CLOSE_GRACE = 5.0


@dataclass
class DaemonConfig:
    """Everything a session needs to know; the defaults are those of the option
    table (:mod:`msmtp_twisted.daemon.options`)."""

    command: PipeCommand
    checker: Any = None  # StaticChecker, LDAPChecker or None (no AUTH)
    limits: ServerLimits = field(default_factory=ServerLimits)
    max_sessions: int = DEFAULTS["max_sessions"]
    idle_timeout: float = DEFAULTS["idle_timeout"]
    session_timeout: float = DEFAULTS["session_timeout"]
    request_timeout: float = DEFAULTS["request_timeout"]
    min_data_rate: int = DEFAULTS["min_data_rate"]
    command_timeout: float = DEFAULTS["command_timeout"]
    shutdown_timeout: float = DEFAULTS["shutdown_timeout"]
    auth_delay: float = AUTH_DELAY_SECONDS
    auth_delay_expiration: float = AUTH_DELAY_EXPIRATION_SECONDS
    always_delay_auth: bool = False  # --inetd: no memory of failures between sessions
    spool_threshold: int = DEFAULT_SPOOL_THRESHOLD
    spool_dir: str | None = None
    #: --queue: mails are stored there and delivered in the background
    queue_dir: str | None = None
    queue_interval: float = DEFAULTS["queue_interval"]
    queue_backoff: float = DEFAULTS["queue_backoff"]
    queue_backoff_max: float = DEFAULTS["queue_backoff_max"]
    queue_max_age: float = DEFAULTS["queue_max_age"]


@dataclass(frozen=True)
class ConnectionInfo:
    local_ip: str = ""
    local_name: str = ""
    remote_ip: str = ""
    remote_name: str = ""


def _address_ip(address: Any) -> str:
    host = getattr(address, "host", None)
    return host if isinstance(host, str) else ""


def client_key(ip: str) -> str:
    """Whom the AUTH delay is counted for: the IPv4 address, or the /64 of an
    IPv6 address (one host commonly holds a whole /64)."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


def _reverse(ip: str) -> str:
    """getnameinfo(..., NI_NAMEREQD), as msmtpd; '' when there is no name."""
    if not ip:
        return ""
    try:
        return socket.getnameinfo((ip, 0), socket.NI_NAMEREQD)[0]
    except (OSError, UnicodeError):
        return ""


def connection_info_from_fd(fd: int) -> tuple[str, str]:
    """(local IP, remote IP) of a socket file descriptor (``--inetd``); empty
    strings when it is not an IP socket."""
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        return "", ""
    try:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return "", ""
        local = remote = ""
        try:
            local = sock.getsockname()[0]
        except OSError:
            pass
        try:
            remote = sock.getpeername()[0]
        except OSError:
            pass
        return local, remote
    finally:
        sock.close()


class MsmtpdFactory(Factory):
    def __init__(self, config: DaemonConfig, log: MsmtpdLog | None = None,
                 reactor: Any = None, *, inetd: bool = False) -> None:
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        self.config = config
        self.log = log or MsmtpdLog("none")
        self.reactor = reactor
        self.inetd = inetd
        self.active = 0
        self.refused = 0
        self.last_auth_failure: float | None = None
        # client_key -> when its last scheduled AUTH answer goes out; only future
        # times are kept, so at most one entry per AUTH answer being delayed.
        self._auth_slots: dict[str, float] = {}
        limits = config.limits
        if limits.max_envelope is None and limits.max_address is None:
            envelope, address = config.command.envelope_limits()
            limits = replace(limits, max_envelope=envelope, max_address=address)
        #: The limits sessions run with: the configured ones, plus what fits in
        #: the command's argument list.
        self.server_limits = limits
        self._names: dict[str, tuple[str, float]] = {}
        self._devnull: int | None = None
        self.sessions: set[MsmtpdProtocol] = set()
        self.on_session_end: Callable[[MsmtpdProtocol], None] | None = None
        self.shutting_down = False
        self._drained: defer.Deferred[None] | None = None
        self._shutdown_timers: list[Any] = []
        self._reactor_handlers: dict[int, Any] = {}
        #: --queue: where mails go instead of straight to the command
        self.queue: Any = None
        if config.queue_dir is not None and not inetd:
            from msmtp_twisted.daemon.queue import DaemonQueue

            self.queue = DaemonQueue(config, self.log, reactor, lambda: self.devnull)

    @property
    def devnull(self) -> int:
        if self._devnull is None:
            self._devnull = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        return self._devnull

    def close(self) -> None:
        if self._devnull is not None:
            os.close(self._devnull)
            self._devnull = None

    def buildProtocol(self, addr: Any) -> Protocol:
        if self.shutting_down:
            proto: Protocol = _ShuttingDown()
        elif self.active >= self.config.max_sessions:
            self.refused += 1
            proto = _TooBusy()
        else:
            proto = MsmtpdProtocol()
        proto.factory = self
        return proto

    # -- shutdown -----------------------------------------------------------------

    def shutdown(self, timeout: float | None = None) -> defer.Deferred[None]:
        """End every session gracefully; fires when none is left.

        A mail being piped is finished and answered, then the session gets
        ``421``; every other session gets ``421`` at once (a mail not yet
        complete is discarded).  After ``timeout`` seconds (default
        ``config.shutdown_timeout``; 0: at once) the commands still running
        are stopped (TERM to their process groups, KILL 5 s later; their
        clients get ``451``) and the connections still open are cut off.

        A further SIGTERM or SIGINT ends the wait at once (where the reactor
        handles those signals): the reactor is stopping already, and an
        operator who signals again wants it over."""
        if self._drained is not None:
            return _chain(self._drained)
        if timeout is None:
            timeout = self.config.shutdown_timeout
        self.shutting_down = True
        self._hurry_on_signal()
        self._drained = defer.Deferred()
        busy = sum(1 for s in self.sessions if s.delivery is not None)
        self.log.info(f"shutting down (sessions: {len(self.sessions)}, "
                      f"pipe commands running: {busy})")
        for session in list(self.sessions):
            session.shutdown()
        self._shutdown_timers.append(self.reactor.callLater(timeout, self._shutdown_expired))
        # A last bound, whatever happens: the KILLs have been sent by then.
        self._shutdown_timers.append(self.reactor.callLater(
            timeout + KILL_GRACE + STDERR_GRACE + CLOSE_GRACE, self._drain_done))
        self._check_drained()
        return _chain(self._drained)

    def _hurry_on_signal(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(number: int, frame: Any) -> None:
            self.reactor.callFromThread(self.hurry, signal.Signals(number).name)

        for sig in (signal.SIGINT, signal.SIGTERM):
            current = signal.getsignal(sig)
            if getattr(current, "__self__", None) is self.reactor:
                self._reactor_handlers[sig] = current
                signal.signal(sig, handler)

    def _restore_signal_handlers(self) -> None:
        # A program that only stopped the service still stops on SIGTERM.
        for sig, previous in self._reactor_handlers.items():
            if threading.current_thread() is threading.main_thread():
                signal.signal(sig, previous)
        self._reactor_handlers = {}

    def hurry(self, why: str = "") -> None:
        """Stop waiting for the sessions now: as when the shutdown grace period ends."""
        if self._drained is None or self._drained.called:
            return
        self.log.info(f"{why + ' again: ' if why else ''}not waiting any longer")
        self._shutdown_expired()

    def _shutdown_expired(self) -> None:
        if self.sessions:
            self.log.error(f"shutdown grace period over, stopping what is left "
                           f"(sessions: {len(self.sessions)})")
        for session in list(self.sessions):
            session.interrupt()

    def _check_drained(self) -> None:
        if self._drained is not None and not self.sessions:
            self._drain_done()

    def _drain_done(self) -> None:
        for timer in self._shutdown_timers:
            if timer.active():
                timer.cancel()
        self._shutdown_timers = []
        for session in list(self.sessions):  # after the last bound only
            session.forget()
        self._restore_signal_handlers()
        d = self._drained
        if d is not None and not d.called:
            self.log.info("shut down")
            d.callback(None)

    def reopen(self) -> None:
        """Accept sessions again after a finished :meth:`shutdown` (a service
        started again)."""
        if self._drained is not None and self._drained.called:
            self._drained = None
            self.shutting_down = False

    # -- AUTH brute force protection ------------------------------------------

    def auth_delay_due(self) -> bool:
        if self.config.always_delay_auth or self.inetd:
            return True
        if self.last_auth_failure is None:
            return False
        elapsed = self.reactor.seconds() - self.last_auth_failure
        return elapsed <= self.config.auth_delay_expiration

    def auth_failed(self) -> None:
        self.last_auth_failure = self.reactor.seconds()

    def auth_answer_delay(self, key: str) -> float:
        """Seconds until an AUTH answer (due to be delayed) to client ``key`` may
        go out: ``auth_delay`` after the later of now and the previous answer
        scheduled for the same client, so parallel sessions from one address
        get one answer per ``auth_delay`` between them, not one each."""
        delay = self.config.auth_delay
        if delay <= 0:
            return 0.0
        now = self.reactor.seconds()
        slots = self._auth_slots
        for past in [k for k, at in slots.items() if at <= now]:
            del slots[past]
        at = max(now, slots.get(key, now)) + delay
        slots[key] = at
        return at - now

    # -- reverse look-ups -------------------------------------------------------

    def lookup(self, ip: str) -> defer.Deferred[str]:
        """The host name of ``ip`` (cached for a minute), looked up in a thread."""
        now = time.monotonic()
        hit = self._names.get(ip)
        if hit is not None and now - hit[1] < _NAME_CACHE_TTL:
            return defer.succeed(hit[0])
        if not ip:
            return defer.succeed("")
        from twisted.internet.threads import deferToThreadPool

        d = deferToThreadPool(self.reactor, self.reactor.getThreadPool(), _reverse, ip)

        def store(name: str) -> str:
            if len(self._names) >= _NAME_CACHE_MAX:
                self._names.clear()
            self._names[ip] = (name, time.monotonic())
            return name

        d.addCallback(store)
        return d


def _chain(d: defer.Deferred[None]) -> defer.Deferred[None]:
    """A new Deferred that fires when ``d`` has (without consuming its result)."""
    out: defer.Deferred[None] = defer.Deferred()

    def passed(result: Any) -> Any:
        out.callback(None)
        return result

    d.addBoth(passed)
    return out


class _ShuttingDown(Protocol):
    """A connection accepted while the listening socket was being closed."""

    def connectionMade(self) -> None:
        self.transport.write(b"421 Server shutting down, closing connection\r\n")  # type: ignore[union-attr]
        self.transport.loseConnection()  # type: ignore[union-attr]


class _TooBusy(Protocol):
    factory: MsmtpdFactory

    def connectionMade(self) -> None:
        peer = _address_ip(self.transport.getPeer())  # type: ignore[union-attr]
        self.factory.log.error(
            f"connection from {peer} refused: active sessions {self.factory.active} "
            f"(max {self.factory.config.max_sessions})")
        self.transport.write(b"421 Too many concurrent SMTP sessions, try again later\r\n")  # type: ignore[union-attr]
        self.transport.loseConnection()  # type: ignore[union-attr]


@implementer(IPushProducer)
class _ReadThrottle:
    """Registered with the transport: while the client does not read our replies
    and the transport's write buffer is full, we stop reading its commands, so
    memory stays bounded."""

    def __init__(self, proto: MsmtpdProtocol) -> None:
        self.proto = proto
        self.paused = False

    def pauseProducing(self) -> None:
        if not self.paused:
            self.paused = True
            self.proto._pause()

    def resumeProducing(self) -> None:
        if self.paused:
            self.paused = False
            self.proto._resume()

    def stopProducing(self) -> None:
        pass


@implementer(IHalfCloseableProtocol, IHandshakeListener)
class MsmtpdProtocol(Protocol):
    """One SMTP session.

    Half-closeable: a client (or ``--inetd``'s standard input) that shuts its
    side after the last command still gets every reply, after the mail it sent
    has been piped."""

    factory: MsmtpdFactory

    def __init__(self) -> None:
        self.server: SMTPServer | None = None
        self.info = ConnectionInfo()
        self.spool: Spool | None = None
        #: The pipe command running for this session's mail.
        self.delivery: Delivery | None = None
        self._paused = 0
        self._idle: Any = None
        self._session_timer: Any = None
        self._close_timer: Any = None
        self._rate_timer: Any = None
        self._rate_start: float | None = None
        self._rate_bytes = 0
        self._connected = False
        self._busy = False
        self._counted = False
        self._throttle: _ReadThrottle | None = None
        self._client = ""  # client_key() of the remote address
        self.done: defer.Deferred[MsmtpdProtocol] = defer.Deferred()

    # -- helpers ------------------------------------------------------------

    @property
    def reactor(self) -> Any:
        return self.factory.reactor

    def _log(self, level: str, message: str) -> None:
        self.factory.log.log(level, message)

    def _pause(self) -> None:
        if self._paused == 0 and self._connected:
            self.transport.pauseProducing()  # type: ignore[union-attr]
        self._paused += 1

    def _resume(self) -> None:
        self._paused -= 1
        if self._paused == 0 and self._connected:
            self.transport.resumeProducing()  # type: ignore[union-attr]

    def _lose(self) -> None:
        """Close once the replies are written (the throttle must go first, or a
        transport that paused it would wait for it forever)."""
        if not self._connected:
            return
        if self._throttle is not None:
            self._throttle = None
            self.transport.unregisterProducer()  # type: ignore[union-attr]
        self.transport.loseConnection()  # type: ignore[union-attr]
        if self._close_timer is None:
            self._close_timer = self.reactor.callLater(CLOSE_GRACE, self._abort)

    def _abort(self) -> None:
        """Cut the connection off, written or not (a client that reads nothing
        would keep a closing connection forever)."""
        if not self._connected:
            return
        abort = getattr(self.transport, "abortConnection", None)
        if abort is not None:
            abort()
        else:  # --inetd's standard input/output
            self.transport.connectionLost(Failure(ConnectionAborted()))  # type: ignore[union-attr]

    # -- shutdown -------------------------------------------------------------

    def shutdown(self) -> None:
        """The server is going down: see :meth:`MsmtpdFactory.shutdown`."""
        if self.server is None:
            return
        self._handle(self.server.shutdown())
        self._check_rate()

    def interrupt(self) -> None:
        """The shutdown grace period is over: stop the command (its answer
        then ends the session), or cut the connection off."""
        if self.delivery is not None:
            self.delivery.interrupt()
            return
        self._busy = False  # an AUTH verdict still pending is not waited for
        self._abort()
        self._maybe_done()

    def forget(self) -> None:
        """The shutdown's last bound has passed: this session no longer counts."""
        self._abort()
        self.factory.sessions.discard(self)

    # -- connection ---------------------------------------------------------

    def connectionMade(self) -> None:
        factory = self.factory
        config = factory.config
        self._connected = True
        factory.active += 1
        self._counted = True
        factory.sessions.add(self)
        self.server = SMTPServer(auth=config.checker is not None, limits=factory.server_limits)
        if not ISSLTransport.providedBy(self.transport):
            self._start_throttle()
        if factory.inetd:
            local_ip, remote_ip = connection_info_from_fd(0)
        else:
            local_ip = _address_ip(self.transport.getHost())  # type: ignore[union-attr]
            remote_ip = _address_ip(self.transport.getPeer())  # type: ignore[union-attr]
            self._log("info", f"connection from {remote_ip}, active sessions {factory.active} "
                              f"(max {config.max_sessions}), "
                              f"auth_delay={'yes' if factory.auth_delay_due() else 'no'}")
        self._client = client_key(remote_ip)
        if config.session_timeout:
            self._session_timer = self.reactor.callLater(config.session_timeout, self._timeout,
                                                         "session time limit reached")
        self._reset_idle()
        # The names for the Received: header; input waits until they are known.
        self._pause()
        d = defer.gatherResults([factory.lookup(remote_ip), factory.lookup(local_ip)])

        def ready(names: list[str]) -> None:
            self.info = ConnectionInfo(local_ip, names[1], remote_ip, names[0])
            self._resume()

        d.addCallbacks(ready, lambda _failure: ready(["", ""]))
        self._handle(self.server.start())

    def _start_throttle(self) -> None:
        if self._connected and self._throttle is None:
            self._throttle = _ReadThrottle(self)
            self.transport.registerProducer(self._throttle, True)  # type: ignore[union-attr]

    def handshakeCompleted(self) -> None:
        # TLS buffers (and pauses the producer for) writes made before the
        # handshake; pausing reads then would stall the handshake itself.
        self._start_throttle()

    def dataReceived(self, data: bytes) -> None:
        assert self.server is not None
        self._reset_idle()
        self._handle(self.server.receive(data))
        self._check_rate(len(data))

    def readConnectionLost(self) -> None:
        assert self.server is not None
        self._handle(self.server.receive_eof())
        self._close_if_finished()

    def writeConnectionLost(self) -> None:
        self._lose()

    def _close_if_finished(self) -> None:
        server = self.server
        if server is not None and server.state is State.CLOSED and not server.waiting:
            self._lose()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._connected = False
        for timer in (self._idle, self._session_timer, self._close_timer, self._rate_timer):
            if timer is not None and timer.active():
                timer.cancel()
        if self.server is not None:
            self._handle(self.server.receive_eof())
        if not self.factory.inetd:
            self._log("info", "connection closed")
        self._maybe_done()

    def _maybe_done(self) -> None:
        if self._connected or self._busy or not self._counted:
            return
        self._counted = False
        self.factory.active -= 1
        self.factory.sessions.discard(self)
        if self.spool is not None:
            self.spool.close()
            self.spool = None
        if self.factory.on_session_end is not None:
            self.factory.on_session_end(self)
        self.done.callback(self)
        self.factory._check_drained()

    def _reset_idle(self) -> None:
        timeout = self.factory.config.idle_timeout
        if not timeout:
            return
        if self._idle is not None and self._idle.active():
            self._idle.reset(timeout)
        else:
            self._idle = self.reactor.callLater(timeout, self._timeout, "idle timeout")

    def _check_rate(self, received: int = 0) -> None:
        """While a command line or a mail is arriving it must be complete within
        ``request_timeout`` seconds plus one second per ``min_data_rate`` bytes
        received (a slowloris client is cut off; a slow but steady one is not)."""
        config = self.factory.config
        server = self.server
        if (not config.request_timeout or not config.min_data_rate or not self._connected
                or server is None or not server.receiving):
            self._rate_start = None
            if self._rate_timer is not None and self._rate_timer.active():
                self._rate_timer.cancel()
            return
        now = self.reactor.seconds()
        if self._rate_start is None:
            self._rate_start = now
            self._rate_bytes = 0
        self._rate_bytes += received
        delay = (self._rate_start + config.request_timeout
                 + self._rate_bytes / config.min_data_rate - now)
        if self._rate_timer is not None and self._rate_timer.active():
            self._rate_timer.reset(delay)
        else:
            self._rate_timer = self.reactor.callLater(delay, self._too_slow)

    def _too_slow(self) -> None:
        start = self._rate_start if self._rate_start is not None else self.reactor.seconds()
        elapsed = self.reactor.seconds() - start
        self._timeout(f"client too slow ({self._rate_bytes} bytes in {elapsed:.0f} seconds, "
                      f"minimum {self.factory.config.min_data_rate} per second)")

    def _timeout(self, why: str) -> None:
        assert self.server is not None
        if self.server.waiting and why == "idle timeout":
            self._reset_idle()  # the command or the checker is working; not the client's fault
            return
        if not self._connected:
            return
        self._log("error", f"{why}, session aborted")
        self.transport.write(b"421 Timeout, closing connection\r\n")  # type: ignore[union-attr]
        self.server.had_error = True
        self._lose()

    # -- events ---------------------------------------------------------------

    def _handle(self, events: list[Any]) -> None:
        for event in events:
            if isinstance(event, ServerReply):
                if self._connected:
                    self.transport.write(event.to_bytes())  # type: ignore[union-attr]
            elif isinstance(event, MessageData):
                self._spool_write(event.data)
            elif isinstance(event, Log):
                self._log(event.level, event.message)
            elif isinstance(event, MessageBegin):
                self._begin(event)
            elif isinstance(event, MessageEnd):
                self._end(event)
            elif isinstance(event, MessageAborted):
                if self.spool is not None:
                    self.spool.close()
                    self.spool = None
            elif isinstance(event, AuthAttempt):
                self._auth(event)
            elif isinstance(event, Close):
                self._lose()

    def _begin(self, event: MessageBegin) -> None:
        config = self.factory.config
        argv = config.command.argv(event.sender, event.recipients)
        self._log("info", f"pipe command is {shlex.join(argv)}")
        self.spool = Spool(config.spool_threshold, config.spool_dir)
        self._spool_write(received_header(
            event.helo_name, self.info.remote_ip, self.info.remote_name,
            self.info.local_ip, self.info.local_name, rfc2822_date(time.time())))

    def _spool_write(self, data: bytes) -> None:
        spool = self.spool
        if spool is None:
            return
        failed = spool.error is not None
        spool.write(data)
        if not failed and spool.error is not None:
            self._log("error", spool.error)

    def _end(self, event: MessageEnd) -> None:
        spool, self.spool = self.spool, None
        assert spool is not None
        config = self.factory.config
        argv = config.command.argv(event.sender, event.recipients)
        self._pause()
        self._busy = True
        failed = spool.error is not None
        if spool.finish():
            if self.factory.queue is not None:
                # --queue: 250 once the mail is on disk, the command runs later
                d = self.factory.queue.accept(spool, event.sender, event.recipients)
            else:
                self.delivery = start_delivery(self.reactor, argv, spool,
                                               timeout=config.command_timeout,
                                               devnull=self.factory.devnull, log=self._log)
                d = self.delivery.result
        else:
            # Part of the mail is lost: refuse it (RFC 5321's reply for a full
            # disk), the client keeps it and retries.  The command never runs.
            if not failed:
                self._log("error", spool.error or "cannot spool mail")
            spool.close()
            d = defer.succeed(ServerReply(452, ("Insufficient system storage",)))

        def delivered(reply: ServerReply) -> None:
            self._busy = False
            self.delivery = None
            self._log("info" if reply.code == 250 else "error",
                      f"mail from={event.sender} recipients={','.join(event.recipients)} "
                      f"size={event.size} reply={reply.code} {reply.text}")
            assert self.server is not None
            self._answered(self.server.delivery_result(reply))

        d.addCallback(delivered)
        d.addErrback(self._internal_error)

    def _auth(self, event: AuthAttempt) -> None:
        factory = self.factory
        checker = factory.config.checker
        delay_due = factory.auth_delay_due()
        self._pause()
        self._busy = True  # keeps the session counted until the answer is in
        if event.malformed:
            d: defer.Deferred[Any] = defer.succeed(False)
        else:
            d = defer.maybeDeferred(checker.check, event.username, event.password)

        def verdict(ok: Any) -> tuple[bool, bool]:
            return bool(ok), False

        def trouble(failure: Failure) -> tuple[bool, bool]:
            self._log("error", f"cannot check credentials: {failure.getErrorMessage()}")
            return False, True

        d.addCallbacks(verdict, trouble)

        def later(result: tuple[bool, bool]) -> Any:
            if not result[0] and not result[1]:
                factory.auth_failed()
            delay = factory.auth_answer_delay(self._client) if delay_due else 0.0
            if delay:
                from twisted.internet.task import deferLater

                return deferLater(self.reactor, delay, lambda: result)
            return result

        d.addCallback(later)

        def answer(result: tuple[bool, bool]) -> None:
            self._busy = False
            assert self.server is not None
            self._answered(self.server.auth_result(result[0], temporary=result[1]))

        d.addCallback(answer)
        d.addErrback(self._internal_error)

    def _answered(self, events: list[Any]) -> None:
        """The answer the session waited for (delivery, AUTH verdict) is in: read
        again, act on the events it gave, and close if that ended the session."""
        self._resume()
        self._handle(events)
        self._check_rate()
        self._close_if_finished()
        self._maybe_done()

    def _internal_error(self, failure: Failure) -> None:
        self._log("error", f"internal error: {failure.getErrorMessage()}")
        self._busy = False
        self.delivery = None
        if self._connected:
            self.transport.write(b"421 Internal error, closing connection\r\n")  # type: ignore[union-attr]
            self._lose()
        self._maybe_done()
