"""msmtp's log line, log file and syslog output.

The log line is built exactly as msmtp 1.8.23's ``msmtp_get_log_info()`` does::

    host=H tls=on auth=on user=U from=F recipients=a,b mailsize=N \
smtpstatus=250 smtpmsg='...' errormsg='...' exitcode=EX_OK

Log files get ``strftime(logfile_time_format)`` and a space in front of the line
(``msmtp_log_to_file()``); the special format ``none`` (msmtp >= 1.8.28) writes
the bare line.  The file is opened for appending and write-locked with an
``fcntl`` record lock, retried for up to 10 seconds, as msmtp's ``lock_file()``
does, so our processes and the C msmtp can share one log file.

Imports stay cheap: no Twisted here, and ``syslog`` is imported only when used.
"""

from __future__ import annotations

import errno as _errno
import os
import sys
import time

from msmtp_twisted.sysexits import EX_OK, exitcode_name
from msmtp_twisted.text import sanitize

__all__ = [
    "DEFAULT_TIME_FORMAT",
    "SYSLOG_FACILITIES",
    "format_log_line",
    "log_failure_messages",
    "log_to_file",
    "log_to_syslog",
    "syslog_facility",
]

DEFAULT_TIME_FORMAT = "%b %d %H:%M:%S"
LOCK_TIMEOUT = 10  # seconds, as msmtp's call lock_file(f, TOOLS_LOCK_WRITE, 10)
_TIME_BUFSIZE = 128  # msmtp's char time_str[128]: strftime() must fit, NUL included

# Facility names msmtp's "syslog" command accepts, and their <syslog.h> values
# (LOG_USER = 1<<3, LOG_MAIL = 2<<3, LOG_LOCALn = (16+n)<<3), so the mapping needs
# no import of the syslog module.
SYSLOG_FACILITIES: dict[str, int] = {
    "LOG_USER": 1 << 3,
    "LOG_MAIL": 2 << 3,
    **{f"LOG_LOCAL{n}": (16 + n) << 3 for n in range(8)},
}


def _atoi(text: str) -> int:
    """C's atoi(): leading white space, an optional sign, then digits; 0 if none."""
    s = text.lstrip(" \t\n\v\f\r")
    sign = 1
    if s[:1] in ("+", "-"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    digits = ""
    for c in s:
        if not ("0" <= c <= "9"):
            break
        digits += c
    return sign * int(digits) if digits else 0


def _exitcode_str(code: int) -> str:
    name = exitcode_name(code)
    # msmtp's exitcode_to_string() answers "BUG:UNKNOWN" for a code not in sysexits.h.
    return "BUG:UNKNOWN" if name == "EX_UNKNOWN" else name


def format_log_line(
    *,
    host: str | None,
    socket: str | None,
    tls: bool,
    auth: bool,
    user: str | None,
    envelope_from: str | None,
    recipients: list[str],
    mailsize: int | None,
    smtp_reply: list[str] | None,
    errormsg: str | None,
    exitcode: int,
) -> str:
    """The log line msmtp writes for one mail.

    - ``host=H`` when a host is set, else ``socket=S``;
    - ``tls=on|off``, ``auth=on|off``; ``user=U`` only with auth and a user name;
    - ``from=F recipients=a,b`` (no recipients: the ``=`` becomes a space, as in msmtp);
    - ``mailsize=N`` only when ``exitcode`` is EX_OK (``None`` counts as 0);
    - ``smtpstatus=NNN smtpmsg='...'`` whenever a server reply is known (``smtp_reply``
      holds its lines without CRLF, e.g. ``["550-5.1.1 no", "550 5.1.1 such user"]``):
      the status is atoi() of the first line, the lines are joined by the two
      characters backslash and ``n``, control characters and ``'`` become ``?``;
    - ``errormsg='...'`` only when ``exitcode`` is not EX_OK and ``errormsg`` is
      non-empty, with the same replacements;
    - ``exitcode=EX_...``.

    Values other than the two messages are written as given, like msmtp does.
    """
    parts = [f"host={host}" if host is not None else f"socket={socket or ''}"]
    parts.append("tls=on" if tls else "tls=off")
    parts.append("auth=on" if auth else "auth=off")
    if auth and user is not None:
        parts.append(f"user={user}")
    parts.append(f"from={envelope_from or ''}")
    if recipients:
        parts.append("recipients=" + ",".join(recipients))
    else:
        # msmtp overwrites the last character written (the ',' after the last
        # recipient) with a space; without recipients that is the '='.
        parts.append("recipients")
    if exitcode == EX_OK:
        parts.append(f"mailsize={mailsize if mailsize is not None else 0}")
    if smtp_reply:
        status = _atoi(smtp_reply[0])
        text = "\\n".join(sanitize(line).replace("'", "?") for line in smtp_reply)
        parts.append(f"smtpstatus={status}")
        parts.append(f"smtpmsg='{text}'")
    if exitcode != EX_OK and errormsg:
        parts.append("errormsg='" + sanitize(errormsg.replace("'", "?")) + "'")
    parts.append(f"exitcode={_exitcode_str(exitcode)}")
    return " ".join(parts)


def _time_prefix(time_format: str | None, now: float | time.struct_time | None) -> str | None:
    """The time stamp for a log file line; '' for ``none``; None if strftime fails."""
    if time_format == "none":
        return ""
    fmt = time_format or DEFAULT_TIME_FORMAT  # msmtp stores an empty format as "unset"
    if now is None:
        tm = time.localtime()
    elif isinstance(now, time.struct_time):
        tm = now
    else:
        tm = time.localtime(now)
    try:
        stamp = time.strftime(fmt, tm)
    except (ValueError, UnicodeError):
        return None
    # C's strftime() returns 0 (an error for msmtp) for an empty result or one that
    # does not fit the 128-byte buffer.
    if not stamp or len(stamp.encode("utf-8", "surrogateescape")) >= _TIME_BUFSIZE:
        return None
    return stamp


def _lock(fd: int, timeout: float) -> tuple[int, int]:
    """msmtp's lock_file(): F_SETLK a whole-file write lock, retrying every tenth
    of a second while it is held elsewhere.  Returns (0, 0) on success, else
    (1, errno) after the timeout or (2, errno) for any other error."""
    import fcntl

    tenths = 0
    while True:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fcntl(F_SETLK, F_WRLCK, 0, 0)
            return 0, 0
        except OSError as e:
            err = e.errno or 0
            if err not in (_errno.EACCES, _errno.EAGAIN):
                return 2, err
            if tenths / 10 >= timeout:
                return 1, err
        time.sleep(0.1)
        tenths += 1


def _write_stdout(data: bytes) -> str | None:
    try:
        sys.stdout.flush()
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is not None:
            buffer.write(data)
            buffer.flush()
        else:
            sys.stdout.write(data.decode("utf-8", "surrogateescape"))
            sys.stdout.flush()
    except (OSError, ValueError):
        return "output error"
    return None


def log_to_file(
    path: str,
    time_format: str | None,
    line: str,
    *,
    now: float | time.struct_time | None = None,
    lock_timeout: float = LOCK_TIMEOUT,
) -> str | None:
    """Append ``TIME line`` (or just ``line`` for the format ``none``) and a newline
    to ``path``; ``-`` is standard output.  ``now`` fixes the time (seconds since
    the epoch, or a struct_time in local time).

    Returns None on success, else the reason msmtp gives, for
    :func:`log_failure_messages`: ``invalid logfile_time_format``,
    ``cannot open: <strerror>``, ``cannot lock (tried for 10 seconds): <strerror>``,
    ``cannot lock: <strerror>``, ``output error`` or a bare strerror (failed close).
    """
    stamp = _time_prefix(time_format, now)
    if stamp is None:
        return "invalid logfile_time_format"
    text = f"{stamp} {line}\n" if stamp else f"{line}\n"
    data = text.encode("utf-8", "surrogateescape")
    if path == "-":
        return _write_stdout(data)
    try:
        # fopen(path, "a")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o666)
    except OSError as e:
        return f"cannot open: {os.strerror(e.errno or 0)}"
    reason = _write_locked(fd, data, lock_timeout)
    try:
        os.close(fd)  # fclose(); also releases the lock
    except OSError as e:
        if reason is None:
            reason = os.strerror(e.errno or 0)
    return reason


def _write_locked(fd: int, data: bytes, lock_timeout: float) -> str | None:
    result, err = _lock(fd, lock_timeout)
    if result == 1:
        return f"cannot lock (tried for {lock_timeout:g} seconds): {os.strerror(err)}"
    if result == 2:
        return f"cannot lock: {os.strerror(err)}"
    try:
        blksize = os.fstat(fd).st_blksize or 4096
    except OSError:
        blksize = 4096
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except OSError as e:
        # msmtp writes through a stdio buffer: a line that fits the buffer only
        # reaches the file in fclose(), whose failure is reported as strerror();
        # a longer one makes fputs() fail first ("output error").
        if len(data) > blksize:
            return "output error"
        return os.strerror(e.errno or 0)
    return None


def log_failure_messages(path: str, reason: str, line: str, prgname: str = "msmtp") -> list[str]:
    """The two lines msmtp prints to stderr (without newlines) when logging to a
    file fails; ``prgname`` is the basename of argv[0], as in msmtp."""
    return [f"{prgname}: cannot log to {path}: {reason}", f"{prgname}: log info was: {line}"]


def syslog_facility(name: str) -> int:
    """The <syslog.h> facility for LOG_USER, LOG_MAIL or LOG_LOCAL0..7."""
    try:
        return SYSLOG_FACILITIES[name]
    except KeyError:
        raise ValueError(f"invalid syslog facility {name!r}") from None


def log_to_syslog(facility: str, line: str, failed: bool) -> None:
    """Send the log line to syslog as msmtp does: ident ``msmtp``, no options, the
    given facility, priority LOG_ERR for a failure and LOG_INFO otherwise."""
    import syslog

    fac = syslog_facility(facility)
    syslog.openlog("msmtp", 0, fac)
    syslog.syslog(syslog.LOG_ERR if failed else syslog.LOG_INFO, line)
