"""SMTP replies: parsing the server's bytes into :class:`Reply` objects.

Pure code.  The rules are msmtp's (``smtp_get_msg``): every line must be at
least four bytes, start with three digits and a space or dash, and end in a
line feed (CRLF or bare LF); lines of 1023 bytes or more, and replies of more
than 50 lines, are rejected.  A violation is a protocol error, exit code 76.
"""

from __future__ import annotations

from dataclasses import dataclass

from msmtp_twisted.errors import ReplyError

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


_SEPARATORS = b" -"


class ReplyReader:
    """Accumulates bytes and cuts them into replies.

    Two ways to use it: :meth:`feed` parses everything at once and returns the
    replies completed so far; :meth:`receive` only stores the bytes and
    :meth:`next_reply` parses one reply at a time, as msmtp reads one reply
    when it needs one (so a driver can keep unread bytes raw and stop reading
    the connection when too many pile up: see :attr:`buffered`).

    Memory is bounded by what is parsed: an unterminated line of :data:`MAX_LINE`
    bytes or more, or a reply of more than :data:`MAX_LINES` lines, is an error as
    soon as it is seen.  Bytes stored with :meth:`receive` and not yet parsed are
    the caller's to bound.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._lines: list[str] = []

    @property
    def pending(self) -> bool:
        """True while bytes are stored that are not yet part of a returned reply."""
        return bool(self._buf) or bool(self._lines)

    @property
    def buffered(self) -> int:
        """Bytes received and not yet parsed (plus the partial line being read)."""
        return len(self._buf)

    @property
    def lines_pending(self) -> int:
        """Lines of the reply being read that are complete."""
        return len(self._lines)

    def receive(self, data: bytes) -> None:
        """Store ``data`` without parsing it."""
        self._buf += data

    def next_reply(self) -> Reply | None:
        """The next complete reply from the stored bytes, or None (more are needed).

        Raises :class:`ReplyError` for an invalid reply (and keeps raising it).
        """
        buf = self._buf
        if not buf:
            return None
        lines = self._lines
        start = 0  # lines before it are taken: deleted once, on the way out
        try:
            while True:
                nl = buf.find(b"\n", start, start + MAX_LINE)
                if nl < 0:
                    if len(buf) - start >= MAX_LINE:
                        raise ReplyError("the server sent an invalid reply")
                    return None
                # at least four bytes with the LF: three digits, then space or dash
                if nl - start < 3 or not buf[start:start + 3].isdigit() \
                        or buf[start + 3] not in _SEPARATORS:
                    raise ReplyError("the server sent an invalid reply")
                if len(lines) >= MAX_LINES:  # msmtp counts the final line too
                    raise ReplyError(
                        f"Rejecting server reply that is longer than {MAX_LINES} lines. "
                        "Increase SMTP_MAXLINES."
                    )
                end = nl - 1 if nl > start and buf[nl - 1] == 13 else nl  # CRLF or LF
                lines.append(buf[start:end].decode("utf-8", "surrogateescape"))
                last = buf[start + 3] == 32
                start = nl + 1
                if last:
                    # msmtp takes the status from the first line of the reply
                    self._lines = []
                    return Reply(int(lines[0][:3]), tuple(lines))
        finally:
            if start:
                del buf[:start]

    def feed(self, data: bytes) -> list[Reply]:
        """Store ``data`` and return every reply completed so far."""
        self.receive(data)
        replies: list[Reply] = []
        while (reply := self.next_reply()) is not None:
            replies.append(reply)
        return replies

    def eof_error(self) -> ReplyError:
        """The error for a connection that ended while a reply was awaited."""
        if not self._lines and not self._buf:
            return ReplyError("the server sent an empty reply")
        return ReplyError("the server sent an invalid reply")
