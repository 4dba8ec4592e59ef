"""Handing a mail to the pipe command.

The mail is spooled while it arrives (:class:`Spool`: memory up to a threshold,
then an anonymous temporary file), and the command is started only once the
mail is complete, so a client that vanishes mid-DATA gets nothing delivered and
leaves no process behind.  A spooled file is given to the command as its
standard input directly (no copy through this process); a small mail is written
to a pipe.  The command's standard output goes to /dev/null (it must never reach
the SMTP session); its standard error is collected (up to 4 KiB) for the log.

:func:`deliver` returns a Deferred firing with msmtpd's reply
(:func:`msmtp_twisted.smtp.server.delivery_reply`), never with a failure.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from typing import IO, Any

from twisted.internet import defer, error
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

from msmtp_twisted.smtp.server import Reply, delivery_reply

__all__ = ["DEFAULT_SPOOL_THRESHOLD", "Spool", "deliver", "resolve_executable"]

#: Mails up to this size stay in memory; bigger ones go to a temporary file.
DEFAULT_SPOOL_THRESHOLD = 1024 * 1024
_STDERR_KEEP = 4096
_KILL_GRACE = 5.0


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
        assert self._file is not None
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


class _PipeProtocol(ProcessProtocol):
    def __init__(self, done: defer.Deferred[tuple[int | None, int | None]],
                 stdin_data: bytes | None) -> None:
        self.done = done
        self.stdin_data = stdin_data
        self.stderr = bytearray()

    def connectionMade(self) -> None:
        if self.stdin_data is not None:
            self.transport.write(self.stdin_data)  # type: ignore[union-attr]
            self.stdin_data = None
            self.transport.closeStdin()  # type: ignore[union-attr]

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD == 2 and len(self.stderr) < _STDERR_KEEP:
            self.stderr += data[: _STDERR_KEEP - len(self.stderr)]

    def processEnded(self, reason: Failure) -> None:
        value = reason.value
        if isinstance(value, error.ProcessDone):
            self.done.callback((0, None))
        elif isinstance(value, error.ProcessTerminated):
            self.done.callback((value.exitCode, value.signal))
        else:  # pragma: no cover - Twisted reports only those two
            self.done.callback((None, None))


def deliver(
    reactor: Any,
    argv: Sequence[str],
    spool: Spool,
    *,
    timeout: float | None,
    devnull: int,
    log: Callable[[str, str], None] | None = None,
) -> defer.Deferred[Reply]:
    """Run ``argv`` with the spooled mail on its standard input; fire with the
    reply.  The spool is closed when the command has ended."""
    result: defer.Deferred[Reply] = defer.Deferred()
    path, code = resolve_executable(argv[0])
    if path is None:
        if log:
            log("error", f"cannot start pipe command {argv[0]}: "
                         f"{'not found' if code == 127 else 'permission denied'}")
        spool.close()
        result.callback(delivery_reply(code))
        return result

    ended: defer.Deferred[tuple[int | None, int | None]] = defer.Deferred()
    if spool.on_disk:
        stdin: int | str = spool.fileno_rewound()
        proto = _PipeProtocol(ended, None)
    else:
        stdin = "w"
        proto = _PipeProtocol(ended, spool.memory())
    try:
        transport = reactor.spawnProcess(
            proto, path, list(argv), env=None,
            childFDs={0: stdin, 1: devnull, 2: "r"},
        )
    except OSError as e:
        if log:
            log("error", f"cannot start pipe command {argv[0]}: {os.strerror(e.errno or 0)}")
        spool.close()
        result.callback(delivery_reply(127 if isinstance(e, FileNotFoundError) else 126))
        return result

    timed_out = []
    timers: list[Any] = []

    def kill(sig: str) -> None:
        try:
            transport.signalProcess(sig)
        except error.ProcessExitedAlready:
            return
        if sig == "TERM":
            timed_out.append(True)
            timers.append(reactor.callLater(_KILL_GRACE, kill, "KILL"))

    if timeout:
        timers.append(reactor.callLater(timeout, kill, "TERM"))

    def finished(status: tuple[int | None, int | None]) -> None:
        for t in timers:
            if t.active():
                t.cancel()
        spool.close()
        exit_code, signal = status
        if log and proto.stderr:
            for line in bytes(proto.stderr).decode("utf-8", "replace").splitlines():
                if line.strip():
                    log("error", f"pipe command: {line}")
        if timed_out:
            if log:
                log("error", f"pipe command timed out after {timeout:g} seconds, killed")
            result.callback(delivery_reply(None, timed_out=True))
        else:
            result.callback(delivery_reply(exit_code, signal))

    ended.addCallback(finished)
    return result
