"""msmtpd's log: nothing, syslog, or a file, with msmtpd's line format.

A log file line is ``YYYY-MM-DD HH:MM:SS msmtpd[PID] info|error: message``
(``strftime("%F %T")`` in local time), as msmtpd 1.8.23 writes it.  Syslog gets
ident ``msmtpd``, ``LOG_PID``, facility ``LOG_MAIL`` and priority ``LOG_INFO`` or
``LOG_ERR``.  A log file that cannot be opened falls back to syslog with the
error ``cannot open log file, using syslog instead``, as msmtpd does.

An optional second sink receives every line too: twistd's log, when running
under ``twistd``.

A message is always one line: unprintable characters (a line break in a user
name or in the command's standard error) are written as Python escapes.  A
message longer than :data:`MAX_LOG_MESSAGE` characters (a command line with a
thousand long recipients is megabytes) is cut, and ends with
``[... N more characters]`` instead.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import IO

__all__ = ["MAX_LOG_MESSAGE", "MsmtpdLog", "cap_message", "format_file_line"]

#: The most characters one log message holds, the truncation marker included.
MAX_LOG_MESSAGE = 8192


def _escaped(c: str) -> str:
    return c if c.isprintable() else repr(c)[1:-1]


def cap_message(message: str, limit: int = MAX_LOG_MESSAGE) -> str:
    """``message`` as one printable line, or its start and ``[... N more
    characters]`` within ``limit``."""
    if len(message) <= limit and message.isprintable():
        return message
    keep = max(0, limit - 40)  # the marker is at most 40 characters
    out: list[str] = []
    size = 0
    for i, c in enumerate(message):
        piece = _escaped(c)
        if size + len(piece) > keep:
            rest = message[i:]
            if len(rest) <= limit - size:
                tail = "".join(_escaped(r) for r in rest)
                if size + len(tail) <= limit:
                    return "".join(out) + tail
            return "".join(out) + f" [... {len(rest)} more characters]"
        out.append(piece)
        size += len(piece)
    return "".join(out)


def format_file_line(level: str, message: str, *, now: float | None = None,
                     pid: int | None = None) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
    return f"{stamp} msmtpd[{os.getpid() if pid is None else pid}] {level}: {message}\n"


class MsmtpdLog:
    """``target`` is ``none``, ``syslog`` or a file name (``--log``)."""

    def __init__(self, target: str = "none",
                 extra: Callable[[str, str], None] | None = None) -> None:
        self.target = target
        self._file: IO[str] | None = None
        self._syslog = False
        self._extra = extra
        if target == "none":
            pass
        elif target == "syslog":
            self._open_syslog()
        else:
            try:
                self._file = open(target, "a", encoding="utf-8", errors="replace")  # noqa: SIM115
            except OSError:
                self._open_syslog()
                self._syslog_write("error", "cannot open log file, using syslog instead")

    @property
    def enabled(self) -> bool:
        return self._file is not None or self._syslog or self._extra is not None

    def _open_syslog(self) -> None:
        import syslog

        syslog.openlog("msmtpd", syslog.LOG_PID, syslog.LOG_MAIL)
        self._syslog = True

    def _syslog_write(self, level: str, message: str) -> None:
        import syslog

        syslog.syslog(syslog.LOG_ERR if level == "error" else syslog.LOG_INFO, message)

    def __call__(self, level: str, message: str) -> None:
        self.log(level, message)

    def log(self, level: str, message: str) -> None:
        message = cap_message(message)
        if self._file is not None:
            try:
                self._file.write(format_file_line(level, message))
                self._file.flush()
            except (OSError, ValueError):
                pass
        elif self._syslog:
            self._syslog_write(level, message)
        if self._extra is not None:
            self._extra(level, message)

    def info(self, message: str) -> None:
        self.log("info", message)

    def error(self, message: str) -> None:
        self.log("error", message)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._syslog:
            import syslog

            syslog.closelog()
            self._syslog = False
