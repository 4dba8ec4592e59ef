"""SMTP replies: parsing the server's bytes into :class:`Reply` objects.

Pure code.  The rules are msmtp's (``smtp_get_msg``): every line must be at
least four bytes, start with three digits and a space or dash, and end in a
line feed (CRLF or bare LF); lines of 1023 bytes or more, and replies of more
than 50 lines, are rejected.  A violation is a protocol error, exit code 76.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MAX_LINE", "MAX_LINES", "Reply", "ReplyError", "ReplyReader"]

#: msmtp reads reply lines into a 1024-byte buffer (with the terminating NUL).
MAX_LINE = 1023
#: msmtp refuses replies of more than this many lines.
MAX_LINES = 50


@dataclass(frozen=True)
class Reply:
    """One complete (possibly multi-line) reply; ``lines`` are without CRLF."""

    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        """The lines joined, as msmtp's log line shows them."""
        return "\n".join(self.lines)

    def is_positive(self) -> bool:
        return 200 <= self.code < 400

    def is_transient(self) -> bool:
        return 400 <= self.code < 500


class ReplyError(Exception):
    """The server's bytes are not a valid reply (msmtp's SMTP_EPROTO)."""


def _valid(line: bytes) -> bool:
    return (
        len(line) >= 4
        and line[0:3].isdigit()
        and line[3:4] in (b" ", b"-")
    )


class ReplyReader:
    """Accumulates bytes; :meth:`feed` returns the replies completed so far.

    Memory is bounded: an unterminated line longer than :data:`MAX_LINE` is an
    error as soon as it is seen, whatever the server sends after it.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._lines: list[str] = []

    @property
    def pending(self) -> bool:
        """True while a reply has started but not ended."""
        return bool(self._buf) or bool(self._lines)

    def feed(self, data: bytes) -> list[Reply]:
        self._buf += data
        replies: list[Reply] = []
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) >= MAX_LINE:
                    raise ReplyError("the server sent an invalid reply")
                return replies
            raw = bytes(self._buf[: nl + 1])
            del self._buf[: nl + 1]
            if len(raw) > MAX_LINE:
                raise ReplyError("the server sent an invalid reply")
            line = raw[:-1]
            if line.endswith(b"\r"):
                line = line[:-1]
            if not _valid(raw):
                raise ReplyError("the server sent an invalid reply")
            self._lines.append(line.decode("utf-8", "surrogateescape"))
            if len(self._lines) > MAX_LINES:  # msmtp counts the final line too
                raise ReplyError(
                    f"Rejecting server reply that is longer than {MAX_LINES} lines. "
                    "Increase SMTP_MAXLINES."
                )
            if raw[3:4] == b" ":
                # msmtp takes the status from the first line of the reply
                replies.append(Reply(int(self._lines[0][:3]), tuple(self._lines)))
                self._lines = []

    def eof_error(self) -> ReplyError:
        """The error for a connection that ended while a reply was awaited."""
        if not self._lines and not self._buf:
            return ReplyError("the server sent an empty reply")
        return ReplyError("the server sent an invalid reply")
