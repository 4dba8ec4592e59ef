"""Handing a mail to the pipe command.

The mail is spooled while it arrives (:class:`Spool`: memory up to a threshold,
then an anonymous temporary file), and the command is started only once the
mail is complete, so a client that vanishes mid-DATA gets nothing delivered and
leaves no process behind.  The command's standard input is always a file that
holds the whole mail (the spool file, or for a small mail an anonymous memory
file): it can never read a partial mail, whatever happens to msmtpd (a pipe
written by the server would give it EOF after a part if the server stopped).
The command's standard output goes to /dev/null (it must never reach the SMTP
session); its standard error is collected (up to 4 KiB) for the log.

The command runs in a session and process group of its own: ``--command-timeout``
and the end of the shutdown grace period signal the whole group (TERM, then KILL
5 s later), so a wrapper's children, a background job or msmtp's
``passwordeval`` shell go too, and a Ctrl-C at msmtpd's terminal does not reach
it.  The command's exit status decides the reply: once it has exited, its
leftover descendants may hold its standard error open for
:data:`STDERR_GRACE` seconds, not longer.

:func:`start_delivery` returns a :class:`Delivery` whose ``result`` Deferred
fires with msmtpd's reply (:func:`msmtp_twisted.smtp.server.delivery_reply`),
never with a failure.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Sequence
from typing import IO, Any

from twisted.internet import defer, error, process
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

from msmtp_twisted.smtp.server import ServerReply, delivery_reply

__all__ = ["DEFAULT_SPOOL_THRESHOLD", "KILL_GRACE", "STDERR_GRACE", "Delivery", "Spool",
           "resolve_executable", "start_delivery"]

#: Mails up to this size stay in memory; bigger ones go to a temporary file.
DEFAULT_SPOOL_THRESHOLD = 1024 * 1024
#: Seconds the command's descendants may keep its standard error open after it exited.
STDERR_GRACE = 0.2
_STDERR_KEEP = 4096
KILL_GRACE = 5.0


def _anonymous_file(directory: str | None) -> IO[bytes]:
    """A memory file (memfd) where there is one, else a temporary file."""
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is not None:
        try:
            fd = memfd_create("msmtpd-mail", os.MFD_CLOEXEC)
        except OSError:
            pass
        else:
            return open(fd, "w+b")  # noqa: SIM115
    return tempfile.TemporaryFile(dir=directory)  # noqa: SIM115


class Spool:
    """Where a mail waits between DATA and the pipe command.

    The temporary file can fail (a full or read-only file system, no usable
    temporary directory): then :attr:`error` says why, what was stored is
    dropped, further data is only counted, and :meth:`finish` is False.  The
    mail must then be refused, never piped in part."""

    def __init__(self, threshold: int = DEFAULT_SPOOL_THRESHOLD,
                 directory: str | None = None) -> None:
        self.threshold = threshold
        self.directory = directory
        self.size = 0
        self.error: str | None = None
        self._mem = bytearray()
        self._file: IO[bytes] | None = None

    @property
    def on_disk(self) -> bool:
        return self._file is not None

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.error is not None:
            return
        try:
            if self._file is None:
                if len(self._mem) + len(data) <= self.threshold:
                    self._mem += data
                    return
                self._file = tempfile.TemporaryFile(dir=self.directory)  # noqa: SIM115
                self._file.write(self._mem)
                self._mem = bytearray()
            self._file.write(data)
        except OSError as e:
            self._fail(e)

    def finish(self) -> bool:
        """Flush what is buffered; True when the whole mail is stored."""
        if self.error is None and self._file is not None:
            try:
                self._file.flush()
            except OSError as e:
                self._fail(e)
        return self.error is None

    def _fail(self, e: OSError) -> None:
        where = self.directory
        if where is None:
            try:
                where = tempfile.gettempdir()
            except OSError:
                where = "$TMPDIR"
        self.error = f"cannot write mail to a temporary file in {where}: {e.strerror or e}"
        self.close()

    def memory(self) -> bytes:
        return bytes(self._mem)

    def fileno_rewound(self) -> int:
        """A file descriptor of the whole mail at offset 0, for the command's
        standard input: the spool file, or a memory file for a mail held in memory."""
        if self._file is None:
            self._file = _anonymous_file(self.directory)
            self._file.write(self._mem)
            self._mem = bytearray()
        self._file.flush()
        self._file.seek(0)
        return self._file.fileno()

    def close(self) -> None:
        self._mem = bytearray()
        if self._file is not None:
            file, self._file = self._file, None
            try:
                file.close()  # the descriptor is closed even when the flush fails
            except OSError:
                pass


def resolve_executable(name: str) -> tuple[str | None, int]:
    """``(path, 0)``, or ``(None, 127)`` when not found / ``(None, 126)`` when not
    executable: the codes ``sh`` reports, which msmtpd passes on."""
    if "/" in name:
        if not os.path.exists(name):
            return None, 127
        if os.path.isdir(name) or not os.access(name, os.X_OK):
            return None, 126
        return name, 0
    found = shutil.which(name)
    if found is None:
        return None, 127
    return found, 0


class _SessionProcess(process.Process):
    """Twisted's child process, started in a session of its own (``setsid``):
    its process group holds the command and whatever it starts."""

    def _trySpawnInsteadOfFork(self, path: Any, uid: Any, gid: Any, executable: Any,
                               args: Any, environment: Any, kwargs: Any) -> bool:
        # Twisted's posix_spawnp() path, plus setsid; its fork() path otherwise.
        list_fds = getattr(process, "_listOpenFDs", None)
        file_actions = getattr(process, "_getFileActions", None)
        spawn = getattr(os, "posix_spawnp", None)
        if (uid is not None or gid is not None or path is not None or list_fds is None
                or file_actions is None or spawn is None):
            return False
        fd_state = []
        for fd in list_fds():
            try:
                flags = fcntl.fcntl(fd, fcntl.F_GETFD)
            except OSError:
                continue
            fd_state.append((fd, bool(flags & fcntl.FD_CLOEXEC)))
        ignored = [n for n in range(1, signal.NSIG) if signal.getsignal(n) == signal.SIG_IGN]
        try:
            self.pid = spawn(executable, args, environment,
                             file_actions=file_actions(fd_state, kwargs["fdmap"],
                                                       doClose=os.POSIX_SPAWN_CLOSE,
                                                       doDup2=os.POSIX_SPAWN_DUP2),
                             setsigdef=ignored, setsid=True)
        except NotImplementedError:  # a libc without POSIX_SPAWN_SETSID
            return False
        self.status = -1
        return True

    def _setupChild(self, *args: Any, **kwargs: Any) -> None:
        os.setsid()
        super()._setupChild(*args, **kwargs)


class _PipeProtocol(ProcessProtocol):
    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery
        self.stderr = bytearray()

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD == 2 and len(self.stderr) < _STDERR_KEEP:
            self.stderr += data[: _STDERR_KEEP - len(self.stderr)]

    def processExited(self, reason: Failure) -> None:
        self.delivery._exited(reason.value)

    def processEnded(self, reason: Failure) -> None:
        self.delivery._finish()


class Delivery:
    """One run of the pipe command; ``result`` fires with the reply."""

    def __init__(self, reactor: Any, argv: Sequence[str], spool: Spool, *,
                 timeout: float | None, devnull: int,
                 log: Callable[[str, str], None] | None = None) -> None:
        self.reactor = reactor
        self.argv = list(argv)
        self.spool = spool
        self.timeout = timeout
        self.devnull = devnull
        self.log = log
        self.result: defer.Deferred[ServerReply] = defer.Deferred()
        self.pid: int | None = None  # also the process group
        self._proto = _PipeProtocol(self)
        self._transport: Any = None
        self._status: tuple[int | None, int | None] | None = None
        self._why: str | None = None  # "timeout" or "interrupted"
        self._timer: Any = None
        self._kill_timer: Any = None
        self._grace_timer: Any = None
        self._done = False

    @property
    def ended(self) -> tuple[int | None, int | None, str | None]:
        """``(exit code, signal, why)`` once the result is in: ``why`` is
        ``"timeout"``, ``"interrupted"`` or None; the exit code is 127/126 when
        the command could not be found/run, None when it never ran."""
        exit_code, sig = self._status or (None, None)
        return exit_code, sig, self._why

    @property
    def running(self) -> bool:
        """The command has been started and has not exited yet."""
        return self.pid is not None and self._status is None

    def start(self) -> Delivery:
        path, code = resolve_executable(self.argv[0])
        if path is None:
            self._log("error", f"cannot start pipe command {self.argv[0]}: "
                               f"{'not found' if code == 127 else 'permission denied'}")
            self._status = (code, None)
            return self._answer(delivery_reply(code))
        try:
            stdin = self.spool.fileno_rewound()
        except OSError as e:
            # As for a spool that cannot be written: the client keeps the mail.
            self._log("error", f"cannot write mail to a temporary file: {e.strerror or e}")
            return self._answer(ServerReply(452, ("Insufficient system storage",)))
        try:
            self._transport = _SessionProcess(
                self.reactor, path, self.argv, dict(os.environ), None, self._proto,
                childFDs={0: stdin, 1: self.devnull, 2: "r"})
        except OSError as e:
            self._log("error", f"cannot start pipe command {self.argv[0]}: "
                               f"{os.strerror(e.errno or 0)}")
            self._status = (127 if isinstance(e, FileNotFoundError) else 126, None)
            return self._answer(delivery_reply(127 if isinstance(e, FileNotFoundError) else 126))
        self.pid = self._transport.pid
        if self.timeout and self._status is None:
            self._timer = self.reactor.callLater(self.timeout, self._stop, "timeout")
        return self

    def interrupt(self) -> None:
        """Stop the command now (the server is shutting down): TERM to its
        process group, KILL 5 s later.  Unless it still exits with 0, the reply
        is a temporary failure, so that the client tries again later."""
        self._stop("interrupted")

    # -- internals ---------------------------------------------------------------

    def _log(self, level: str, message: str) -> None:
        if self.log is not None:
            self.log(level, message)

    def _signal_group(self, sig: int) -> None:
        if self.pid is None:
            return
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _stop(self, why: str) -> None:
        if not self.running:
            return
        if self._why is None:
            self._why = why
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._signal_group(signal.SIGTERM)
        if self._kill_timer is None:
            self._kill_timer = self.reactor.callLater(KILL_GRACE, self._signal_group,
                                                      signal.SIGKILL)

    def _exited(self, reason: BaseException) -> None:
        if isinstance(reason, error.ProcessTerminated):
            self._status = (reason.exitCode, reason.signal)
        elif isinstance(reason, error.ProcessDone):
            self._status = (0, None)
        else:  # pragma: no cover - Twisted reports only those two
            self._status = (None, None)
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        if not self._done:
            # Its exit status decides; descendants that keep its standard error
            # open (a background job, a wrapper's child) must not hold the reply.
            self._grace_timer = self.reactor.callLater(STDERR_GRACE, self._stop_reading)

    def _stop_reading(self) -> None:
        if self._transport is not None and not self._done:
            self._transport.closeChildFD(2)

    def _finish(self) -> None:
        if self._done:
            return
        if self._grace_timer is not None and self._grace_timer.active():
            self._grace_timer.cancel()
        for line in bytes(self._proto.stderr).decode("utf-8", "replace").splitlines():
            if line.strip():
                self._log("error", f"pipe command: {line}")
        exit_code, sig = self._status or (None, None)
        if self._why == "timeout":
            self._log("error", f"pipe command timed out after {self.timeout:g} seconds, killed")
            reply = delivery_reply(None, timed_out=True)
        elif self._why == "interrupted" and (exit_code != 0 or sig is not None):
            self._log("error", "pipe command stopped: server shutting down")
            reply = delivery_reply(None, interrupted=True)
        else:
            reply = delivery_reply(exit_code, sig)
        self._answer(reply)

    def _answer(self, reply: ServerReply) -> Delivery:
        self._done = True
        self.spool.close()
        self.result.callback(reply)
        return self


def start_delivery(
    reactor: Any,
    argv: Sequence[str],
    spool: Spool,
    *,
    timeout: float | None,
    devnull: int,
    log: Callable[[str, str], None] | None = None,
) -> Delivery:
    """Run ``argv`` with the spooled mail on its standard input.  The spool is
    closed when the command has ended; ``.result`` fires with the reply."""
    return Delivery(reactor, argv, spool, timeout=timeout, devnull=devnull, log=log).start()

