"""``msmtpd --queue=DIR``: answer 250 once the mail is safely in the queue, run
the pipe command in the background, retry after a temporary failure.

The queue is msmtpq's (:mod:`msmtp_twisted.queue`, docs/queue.md): the same
crash-safe commit (temporary name, fsync, rename, fsync of the directory), the
same claims, back-off, maximum age, ``failed/`` and log lines.  The file work
runs in the reactor's thread pool, never in the reactor thread: the mail is
already complete in the session's spool (memory, memfd or temporary file) and
is copied from there.

Each entry records the command to run as an argument list: with msmtpd's
default command, msmtp's arguments (``-f SENDER -- RCPT...``, as an ``msmtpq``
entry has them); with another ``--command``, the whole argument list under the
key ``command`` as well.  The command is run exactly as
:mod:`msmtp_twisted.daemon.delivery` runs it (a session and process group of
its own, ``--command-timeout``), with the queued message on its standard input.

Its end decides (:func:`attempt_kind`): exit 0 → the entry is removed; one of
msmtp's codes for a failure that may pass (EX_TEMPFAIL 75, EX_NOHOST 68,
EX_UNAVAILABLE 69, EX_OSERR 71, EX_IOERR 74, EX_PROTOCOL 76), a timeout, a
signal → back-off; any other code → ``failed/`` and a log line.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet import defer, threads
from twisted.python.failure import Failure

from msmtp_twisted import sysexits
from msmtp_twisted.daemon.command import PipeCommand
from msmtp_twisted.daemon.delivery import Delivery, start_delivery
from msmtp_twisted.daemon.log import MsmtpdLog
from msmtp_twisted.daemon.options import default_command
from msmtp_twisted.queue import journal
from msmtp_twisted.queue.entry import Entry
from msmtp_twisted.queue.flush import FlushReport, apply_result
from msmtp_twisted.queue.outcome import Kind, Result
from msmtp_twisted.queue.schedule import Schedule
from msmtp_twisted.queue.spool import Claim, Spool
from msmtp_twisted.smtp.server import ServerReply

__all__ = ["TEMPORARY_EXIT_CODES", "DaemonQueue", "attempt_kind", "msmtp_prefix"]

#: exit codes after which the mail is tried again: msmtpd's 451 codes (the
#: command says "later"), plus msmtp's codes for a connection that broke or a
#: server that is busy (EX_IOERR, EX_PROTOCOL: a 421 greeting gives 76)
TEMPORARY_EXIT_CODES = frozenset({
    sysexits.EX_NOHOST, sysexits.EX_UNAVAILABLE, sysexits.EX_OSERR, sysexits.EX_TEMPFAIL,
    sysexits.EX_IOERR, sysexits.EX_PROTOCOL,
})

#: background commands running at once
CONCURRENCY = 4
_CHUNK = 64 * 1024


def attempt_kind(exit_code: int | None, sig: int | None, why: str | None) -> Kind:
    """What one run of the command means for its queued mail."""
    if exit_code == 0 and sig is None:
        return Kind.DELIVERED
    if why is not None or sig is not None or exit_code is None:
        # timed out, stopped at shutdown, killed, never ran: the mail may pass later
        return Kind.TEMPORARY
    return Kind.TEMPORARY if exit_code in TEMPORARY_EXIT_CODES else Kind.PERMANENT


def msmtp_prefix(command: PipeCommand | None = None) -> tuple[list[str], bool]:
    """The words that run our msmtp (the default command up to its ``-f``), and
    whether ``command`` is that default command."""
    default = PipeCommand.parse(default_command())
    cut = default.words.index("-f")
    return list(default.words[:cut]), command is None or command.words == default.words


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class _QueuedMail:
    """The claimed message as the command's standard input (the interface of
    :class:`~msmtp_twisted.daemon.delivery.Spool` that a Delivery uses)."""

    def __init__(self, claim: Claim) -> None:
        self._file = claim.message()

    def fileno_rewound(self) -> int:
        self._file.seek(0)
        return self._file.fileno()

    def close(self) -> None:
        self._file.close()


class DaemonQueue:
    """The queue of one msmtpd: :meth:`accept` stores a mail, background
    attempts deliver it; :meth:`start` and :meth:`stop` follow the service."""

    def __init__(self, config: Any, log: MsmtpdLog, reactor: Any,
                 devnull: Callable[[], int], concurrency: int = CONCURRENCY) -> None:
        self.spool = Spool(config.queue_dir)
        self.journal = os.path.join(self.spool.path, "log")
        self.schedule = Schedule(config.queue_backoff, config.queue_backoff_max,
                                 config.queue_max_age)
        self.interval: float = config.queue_interval
        self.timeout: float | None = config.command_timeout or None
        self.command: PipeCommand = config.command
        self.prefix, self.default = msmtp_prefix(self.command)
        self.log = log
        self.reactor = reactor
        self.devnull = devnull
        self.concurrency = concurrency
        self.running = False
        #: entries to try, in order (a dict as an ordered set)
        self.pending: dict[str, None] = {}
        #: entries being tried, with their command once it runs
        self.active: dict[str, Delivery | None] = {}
        self._timer: Any = None
        self._scanning = False
        self._reported: set[str] = set()
        self._stopped: defer.Deferred[None] | None = None
        self._stop_timer: Any = None

    def _thread(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> defer.Deferred[Any]:
        return threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), f,
                                         *args, **kwargs)

    # -- accepting --------------------------------------------------------------

    def accept(self, mail: Any, sender: str, recipients: Sequence[str]) -> defer.Deferred[
            ServerReply]:
        """Store ``mail`` (a complete :class:`~msmtp_twisted.daemon.delivery.Spool`,
        closed here) as a queue entry; fires with 250 once it is on disk, 452
        when it cannot be stored (the client keeps the mail)."""
        argv = self.command.argv(sender, list(recipients))
        entry = Entry(id="", argv=argv[len(self.prefix):] if self.default else argv[1:],
                      cwd=os.getcwd(), envelope_from=sender, recipients=list(recipients))
        if not self.default:
            entry.extra["command"] = argv
        try:
            fd = mail.fileno_rewound()
        except OSError as e:
            mail.close()
            return defer.succeed(self._refuse(e))
        d = self._thread(self._store, fd, entry)

        def stored(stored_entry: Entry) -> ServerReply:
            self.log.info(f"mail queued as {stored_entry.id} in {self.spool.path}")
            self._enqueue(stored_entry.id)
            # logged above: "piped successfully" would say more than is true yet
            return ServerReply(250, (f"Ok, mail queued as {stored_entry.id}",), logged=None)

        def trouble(failure: Failure) -> ServerReply:
            if failure.check(OSError):
                return self._refuse(failure.value)
            self.log.error(f"cannot write the mail to the queue {self.spool.path}: "
                           f"{failure.getErrorMessage()}")
            return ServerReply(451, ("Local error in processing",))

        def closed(result: Any) -> Any:
            mail.close()
            return result

        return d.addBoth(closed).addCallbacks(stored, trouble)

    def _refuse(self, e: Any) -> ServerReply:
        self.log.error(f"cannot write the mail to the queue {self.spool.path}: "
                       f"{getattr(e, 'strerror', None) or e}")
        # RFC 5321's reply for a full disk: the client keeps the mail
        return ServerReply(452, ("Insufficient system storage",))

    def _store(self, fd: int, entry: Entry) -> Entry:
        """In a thread: copy the mail into the queue and commit the entry."""
        incoming = self.spool.incoming()
        try:
            offset = 0
            while True:
                chunk = os.pread(fd, _CHUNK, offset)
                if not chunk:
                    break
                _write_all(incoming.fd, chunk)
                offset += len(chunk)
            now = time.time()
            entry.id = incoming.id
            entry.size = offset
            entry.created = now
            entry.next_attempt = now
            self.spool.commit(incoming, entry)
        finally:
            incoming.discard()
        journal.write(self.journal, journal.format_line("queued", entry))
        return entry

    # -- running ----------------------------------------------------------------

    def start(self) -> None:
        """Deliver what is due, now (entries left from before) and every
        ``queue_interval`` seconds."""
        if self.running:
            return
        self.running = True
        self._stopped = None
        self._tick()

    def stop(self, timeout: float) -> defer.Deferred[None]:
        """Start nothing new; fires once the commands running have ended (after
        ``timeout`` seconds they are stopped, and their mails stay as they were)."""
        self.running = False
        self.pending.clear()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if not self.active:
            return defer.succeed(None)
        if self._stopped is None:
            self._stopped = defer.Deferred()
            self.log.info(f"queue: waiting for {len(self.active)} background deliveries")
            self._stop_timer = self.reactor.callLater(timeout, self._interrupt)
        d: defer.Deferred[None] = defer.Deferred()

        def done(result: Any) -> Any:
            d.callback(None)
            return result

        self._stopped.addBoth(done)
        return d

    def _interrupt(self) -> None:
        for delivery in self.active.values():
            if delivery is not None:
                delivery.interrupt()

    def _check_stopped(self) -> None:
        if not self.running and not self.active and self._stopped is not None \
                and not self._stopped.called:
            if self._stop_timer is not None and self._stop_timer.active():
                self._stop_timer.cancel()
            self._stopped.callback(None)

    def _tick(self) -> None:
        self._timer = None
        if not self.running:
            return
        if not self._scanning:
            self._scanning = True
            d = self._thread(self._scan)
            d.addCallbacks(self._scanned, self._scan_failed)
        if self.interval > 0:
            self._timer = self.reactor.callLater(self.interval, self._tick)

    def _scan(self) -> tuple[list[str], list[str]]:
        lines = self.spool.clean()
        for line in lines:
            journal.write(self.journal, journal.format_line("problem", None, text=line))
        scan = self.spool.scan()
        now = time.time()
        return lines + scan.problems, [e.id for e in scan.entries if e.next_attempt <= now]

    def _scanned(self, result: tuple[list[str], list[str]]) -> None:
        self._scanning = False
        problems, due = result
        for line in problems:
            if line not in self._reported:  # once, not at every run
                self._reported.add(line)
                self.log.error(f"queue: {line}")
        for entry_id in due:
            self._enqueue(entry_id)

    def _scan_failed(self, failure: Failure) -> None:
        self._scanning = False
        self.log.error(f"queue: cannot read {self.spool.path}: {failure.getErrorMessage()}")

    def _enqueue(self, entry_id: str) -> None:
        if self.running and entry_id not in self.active:
            self.pending[entry_id] = None
            self._pump()

    def _pump(self) -> None:
        while self.running and self.pending and len(self.active) < self.concurrency:
            entry_id = next(iter(self.pending))
            del self.pending[entry_id]
            self.active[entry_id] = None
            d = self._attempt(entry_id)
            d.addErrback(self._trouble, entry_id)
            d.addBoth(self._attempted, entry_id)

    def _trouble(self, failure: Failure, entry_id: str) -> None:
        self.log.error(f"queue: {entry_id}: internal error: {failure.getErrorMessage()}")

    def _attempted(self, _: Any, entry_id: str) -> None:
        self.active.pop(entry_id, None)
        self._pump()
        self._check_stopped()

    @defer.inlineCallbacks
    def _attempt(self, entry_id: str) -> Any:
        claim: Claim | None = yield self._thread(self.spool.claim, entry_id)
        if claim is None:  # another process has it, or it is gone
            return
        try:
            entry = claim.entry
            if not self.running or entry.next_attempt > time.time():
                return
            command = entry.extra.get("command")
            if isinstance(command, list) and command and all(isinstance(w, str)
                                                             for w in command):
                argv = list(command)
            else:
                argv = [*self.prefix, *entry.argv]
            try:
                mail = _QueuedMail(claim)
            except OSError as e:
                self.log.error(f"queue: {entry_id}: cannot read the queued mail: {e.strerror}")
                return
            errors: list[str] = []

            def note(level: str, message: str) -> None:
                if message.startswith("pipe command: "):
                    errors.append(message[len("pipe command: "):])
                self.log.log(level, f"queue: {entry_id}: {message}")

            delivery = start_delivery(self.reactor, argv, mail,  # type: ignore[arg-type]
                                      timeout=self.timeout,
                                      devnull=self.devnull(), log=note)
            self.active[entry_id] = delivery
            reply: ServerReply = yield delivery.result
            exit_code, sig, why = delivery.ended
            kind = attempt_kind(exit_code, sig, why)
            if why == "interrupted" and kind is not Kind.DELIVERED:
                self.log.info(f"queue: {entry_id}: stopped at shutdown, stays queued")
                return
            code = exit_code if exit_code is not None else (
                128 + sig if sig is not None else sysexits.EX_SOFTWARE)
            result = Result(kind, code, [*errors[-5:], reply.text])
            said: list[str] = []
            try:
                yield self._thread(apply_result, self.spool, claim, result,
                                   schedule=self.schedule, now=time.time(), log=self.journal,
                                   report=FlushReport(), say=said.append)
            except OSError as e:
                self.log.error(f"queue: {entry_id}: cannot update the queue: "
                               f"{e.strerror or errno.errorcode.get(e.errno or 0, e)}")
                return
            for line in said:
                self.log.log("info" if kind is Kind.DELIVERED else "error", f"queue: {line}")
        finally:
            claim.release()
