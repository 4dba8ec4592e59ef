"""Streaming encoder for the SMTP DATA phase, equivalent to msmtp's
``smtp_send_mail()``.

Per line of input (a line ends at LF):

* the line end becomes CRLF: LF gives CRLF, CRLF stays CRLF (never CR CR LF), a
  CR not followed by LF stays as it is; a last line without LF gets CRLF;
* a leading ``.`` is doubled;
* while in the header block (up to the first empty line) From/To/Cc/Bcc headers
  (names case-insensitive) and their folded continuation lines are dropped as a
  :class:`~msmtp_twisted.message.rewrite.HeaderPolicy` says;
* ``mailsize`` grows by the line's length without the stuffing dot, the line
  end counting as one (CRLF and LF alike); dropped lines do not count.

All other bytes (8-bit, invalid UTF-8, NUL) pass unchanged.  Output and
``mailsize`` do not depend on how the input is cut into chunks.  Memory is
bounded: body bytes are passed on as they come; only up to 5 bytes of a header
line's start are held back until the header name is known.

msmtp reads lines into a 1024-byte buffer; a longer line is handled in pieces
and a piece that continues a line is not a line start (no dot-stuffing, no
header matching).  Treating each line as a whole gives the same result, except
for two msmtp bugs not copied: a CR that falls on the last byte of a 1023-byte
piece is deleted even when no LF follows it, and a last line without LF whose
length is a multiple of 1023 gets no CRLF (the final ``.`` is then glued to it).
msmtp also ends header filtering at a line starting with a NUL byte (it checks
``buffer[0] == '\\0'``), so later Bcc headers would leak; here only an empty
line ends the header block.

msmtp calls ``smtp_send_mail`` three times, each with fresh line state: the
prepended headers (keep all), the header block read from stdin (with the
policy), the rest of stdin (keep all).  Reproduce that with one encoder and
:meth:`DataEncoder.new_part` between the parts (``mailsize`` accumulates), or
use :func:`encode_mail`.  Append :data:`END_OF_DATA` after the last part.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator

from msmtp_twisted.message.rewrite import HeaderPolicy

__all__ = ["END_OF_DATA", "DataEncoder", "encode_mail", "encode_part"]

END_OF_DATA = b".\r\n"

_CR = 0x0D
_DOT = 0x2E
_PREFIX_LEN = 11  # len(b"resent-bcc:"), the longest name we may drop
_EMPTY_LINES = (b"\n", b"\r\n")
_BLANK = (0x20, 0x09)


class DataEncoder:
    """Turns mail bytes into DATA-phase wire bytes; see the module docstring.

    ``policy`` None keeps every header.  Feed bytes with :meth:`feed`, end the
    part with :meth:`finish` (or :meth:`new_part` to start another one).
    """

    def __init__(self, policy: HeaderPolicy | None = None) -> None:
        self.mailsize = 0
        self._reset(policy)

    def _reset(self, policy: HeaderPolicy | None) -> None:
        self._names = _drop_names(policy)
        self._in_header = bool(self._names)  # header filtering active
        self._at_line_start = True
        self._last_cr = False  # the last byte passed on in this line was CR
        self._dropping = False  # the rest of the current line is dropped
        self._prev_dropped = False  # the last non-folded header line was dropped
        self._prefix = bytearray()  # held start of a header line
        self._finished = False

    def feed(self, data: bytes) -> bytes:
        """Encode the next chunk of this part; returns bytes to send now."""
        if self._finished:
            raise ValueError("feed() after finish(); call new_part() first")
        out: list[bytes] = []
        i, n = 0, len(data)
        while i < n:
            if self._at_line_start:
                if self._in_header:
                    i = self._collect_prefix(data, i, out)
                    continue
                if data[i] == _DOT:
                    out.append(b".")
                self._at_line_start = False
            i = self._line_rest(data, i, out)
        return b"".join(out)

    def finish(self) -> bytes:
        """End this part: a held header start is decided, a line without LF gets
        CRLF.  Empty input gives nothing.  Calling it again returns b""."""
        if self._finished:
            return b""
        out: list[bytes] = []
        if self._prefix:
            self._decide(out)
        if not self._at_line_start and not self._dropping:
            out.append(b"\r\n")
            self.mailsize += 1
        self._finished = True
        return b"".join(out)

    def new_part(self, policy: HeaderPolicy | None = None) -> bytes:
        """Finish the current part (returning its last bytes) and start a new
        one with fresh line state and ``policy``; ``mailsize`` goes on counting."""
        tail = self.finish()
        self._reset(policy)
        return tail

    # -- internals ---------------------------------------------------------

    def _line_rest(self, data: bytes, i: int, out: list[bytes]) -> int:
        """Pass on (or drop) data[i:] up to and including the next LF."""
        j = data.find(b"\n", i)
        if self._dropping:
            if j < 0:
                return len(data)
            self._dropping = False
            self._at_line_start = True
            return j + 1
        end = len(data) if j < 0 else j
        if end > i:
            out.append(data[i:end])
            self.mailsize += end - i
            self._last_cr = data[end - 1] == _CR
        if j < 0:
            return end
        if self._last_cr:  # CRLF stays CRLF; the CR was counted already
            out.append(b"\n")
        else:
            out.append(b"\r\n")
            self.mailsize += 1
        self._last_cr = False
        self._at_line_start = True
        return j + 1

    def _collect_prefix(self, data: bytes, i: int, out: list[bytes]) -> int:
        """Hold a header line's first bytes until a decision is possible."""
        stop = min(len(data), i + _PREFIX_LEN - len(self._prefix))
        j = data.find(b"\n", i, stop)
        if j >= 0:
            stop = j + 1
        self._prefix += data[i:stop]
        if j >= 0 or len(self._prefix) >= _PREFIX_LEN:
            self._decide(out)
        return stop

    def _decide(self, out: list[bytes]) -> None:
        """Keep or drop the line whose start is held in _prefix."""
        start = bytes(self._prefix)
        self._prefix.clear()
        if start in _EMPTY_LINES:
            self._in_header = False
            dropped = False
        elif start[0] in _BLANK:
            dropped = self._prev_dropped
        else:
            dropped = start[:_PREFIX_LEN].lower().startswith(self._names)
            self._prev_dropped = dropped
        if dropped:
            complete = start.endswith(b"\n")
            self._at_line_start = complete
            self._dropping = not complete
            return
        self._at_line_start = False
        if start[0] == _DOT:
            out.append(b".")
        self._line_rest(start, 0, out)


def encode_part(data: bytes, policy: HeaderPolicy | None = None) -> tuple[bytes, int]:
    """A whole part at once: what ``DataEncoder(policy)`` gives for ``feed(data)``
    then ``finish()``, and its ``mailsize``.

    For a small mail in memory (a library send): with bytes operations instead of
    a line at a time whenever no line can be dropped, i.e. none of the names the
    policy drops occurs anywhere in ``data``.
    """
    names = _drop_names(policy)
    if names:
        low = data.lower()
        if any(name in low for name in names):
            enc = DataEncoder(policy)
            out = enc.feed(data) + enc.finish()
            return out, enc.mailsize
    if not data:
        return b"", 0
    # CRLF and LF are one line end (a lone CR is data); count the line ends as one
    lines = data.replace(b"\r\n", b"\n")
    if not lines.endswith(b"\n"):
        lines += b"\n"
    size = len(lines)
    if lines.startswith(b"."):
        lines = b"." + lines
    return lines.replace(b"\n.", b"\n..").replace(b"\n", b"\r\n"), size


@functools.lru_cache(maxsize=32)  # 16 policies from header_policy; every send asks
def _drop_names(policy: HeaderPolicy | None) -> tuple[bytes, ...]:
    if policy is None:
        return ()
    names = (
        (policy.keep_from, b"from:"),
        (policy.keep_to, b"to:"),
        (policy.keep_cc, b"cc:"),
        (policy.keep_bcc, b"bcc:"),
        # msmtp 1.8.23 leaves Resent-Bcc in the mail, leaking the blind copies
        (policy.keep_bcc, b"resent-bcc:"),
    )
    return tuple(name for keep, name in names if not keep)


def encode_mail(prepend: bytes, head: bytes, body_chunks: Iterable[bytes],
                policy: HeaderPolicy | None, *,
                encoder: DataEncoder | None = None) -> Iterator[bytes]:
    """The DATA-phase bytes for a whole mail, without :data:`END_OF_DATA`.

    ``prepend`` are the added header lines
    (:func:`~msmtp_twisted.message.rewrite.prepended_headers`), ``head`` the
    mail's header block as read from stdin (through the empty line, or all of
    the input if there is none), ``body_chunks`` the rest of stdin.  As in msmtp,
    whose header reader drops every CR, CR bytes in ``head`` are removed.
    Pass ``encoder`` (a fresh one) to read ``mailsize`` afterwards.
    """
    enc = DataEncoder() if encoder is None else encoder
    return (piece for piece in _pieces(enc, prepend, head, body_chunks, policy) if piece)


def _pieces(enc: DataEncoder, prepend: bytes, head: bytes, body_chunks: Iterable[bytes],
            policy: HeaderPolicy | None) -> Iterator[bytes]:
    yield enc.feed(prepend)
    yield enc.new_part(policy)
    yield enc.feed(head.replace(b"\r", b""))
    yield enc.new_part(None)
    for chunk in body_chunks:
        yield enc.feed(chunk)
    yield enc.finish()
