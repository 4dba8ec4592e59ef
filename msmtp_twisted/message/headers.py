"""Streaming scanner for the header block of a mail.

It finds what msmtp needs from the headers without holding them: the
recipients in To/Cc/Bcc (or in the first block of Resent-To/-Cc/-Bcc), the
address in the first From, and whether Date and
Message-ID are present.  It is a byte-at-a-time state machine equivalent to
msmtp's ``msmtp_read_headers``: comments, quoted strings, angle brackets,
group syntax and folded lines are handled; CR bytes are ignored.

Feed it bytes; :meth:`HeaderScanner.feed` returns the offset just past the
blank line that ends the headers once it has been seen.
"""

from __future__ import annotations

import re
from enum import IntEnum, auto
from types import SimpleNamespace

from msmtp_twisted.limits import HEADER_ADDRESS, RECIPIENTS

__all__ = ["HeaderFacts", "HeaderScanner", "addresses_from_arguments", "quick_scan",
           "scan_headers"]


class S(IntEnum):
    LINESTART_FRESH = auto()
    LINESTART_AFTER_ADDRHDR = auto()
    OTHER_HDR = auto()
    RESENT = auto()
    MATCH = auto()  # matching a fixed header name (Date:, Message-ID:, From)
    TO = auto()
    CC = auto()
    BCC1 = auto()
    BCC2 = auto()
    ADDRHDR_ALMOST = auto()
    ADDRHDR_DEFAULT = auto()
    ADDRHDR_DQUOTE = auto()
    ADDRHDR_BRACKETS_START = auto()
    ADDRHDR_IN_BRACKETS = auto()
    ADDRHDR_PARENTH_START = auto()
    ADDRHDR_IN_PARENTH = auto()
    ADDRHDR_IN_ADDRESS = auto()
    ADDRHDR_BACKQUOTE = auto()
    HEADERS_END = auto()


# The states as plain attributes: looking a member up on an Enum class costs
# about ten times a plain attribute in Python 3.11, and _step does it for every
# byte it reads.
_S = SimpleNamespace(**S.__members__)

_RESENT = b"esent-"  # after the "r" that started the line
_NAMES = {"date": b"date:", "msgid": b"message-id:", "from": b"from", "resent_from": b"from"}
_ADDR_STATES = (_S.ADDRHDR_IN_ADDRESS, _S.ADDRHDR_IN_BRACKETS)
_NO_COLLECT_AFTER = (_S.ADDRHDR_PARENTH_START, _S.ADDRHDR_IN_PARENTH, _S.LINESTART_AFTER_ADDRHDR)


# bytes that keep these states as they are (CR is ignored everywhere)
_RUNS = {
    _S.ADDRHDR_IN_ADDRESS: re.compile(rb'[^\n\\"(<\t :,;]+'),
    _S.ADDRHDR_IN_BRACKETS: re.compile(rb"[^\n\\(>]+"),
    _S.ADDRHDR_DQUOTE: re.compile(rb'[^\n\\"]+'),
    _S.ADDRHDR_IN_PARENTH: re.compile(rb"[^\n\\()]+"),
}


def _sanitized(c: int) -> int:
    # control characters and white space inside an address become "_"
    if c < 32 or c == 127 or c in b" \t\n\v\f\r":
        return 0x5F
    return c


_SANITIZE = bytes(_sanitized(c) for c in range(256))


class HeaderScanner:
    """Incremental header scanner; see the module docstring."""

    def __init__(
        self,
        *,
        want_recipients: bool = True,
        want_from: bool = True,
        want_date_msgid: bool = True,
    ) -> None:
        self.want_recipients = want_recipients
        self.want_from = want_from
        self.want_date_msgid = want_date_msgid
        self.state = _S.LINESTART_FRESH
        self.done = False
        self.have_date = False
        self.have_msgid = False
        self.from_hdr = -1  # -1 before, 0 inside, 1 after the first From:
        self.from_address: str | None = None
        # Resent-From before any From (manual: --read-envelope-from and %F use it)
        self._rfrom_hdr = -1
        self.resent_from_address: str | None = None
        self._resent_for_rcpt = False
        self._resent_index = -1
        self._resent_block = -1  # -1 before, 0 inside, 1 after the first Resent- block
        self._match_name = b""
        self._match_pos = 0
        self._match_what = ""
        self._paren_depth = 0
        self._paren_save = _S.LINESTART_FRESH
        self._backquote_save = _S.LINESTART_FRESH
        self._folded_save = _S.LINESTART_FRESH
        self._current: bytearray | None = None
        self._normal: list[str] = []
        self._resent: list[str] = []
        self._overflow: set[int] = set()  # ids of the lists that hit RECIPIENTS

    # -- results ----------------------------------------------------------

    @property
    def sender_address(self) -> str | None:
        """The address ``--read-envelope-from`` and ``%F`` use: a Resent-From that
        comes before any From, else the From address (msmtp >= 1.8.26, the manual)."""
        if self.resent_from_address is not None:
            return self.resent_from_address
        return self.from_address

    @property
    def recipients(self) -> list[str]:
        """Recipients from the header: those of the first Resent- block if there was one."""
        return list(self._resent if self._resent_block >= 0 else self._normal)

    @property
    def too_many_recipients(self) -> bool:
        """More than :data:`~msmtp_twisted.limits.RECIPIENTS` recipients were found
        (:attr:`recipients` holds the first ones)."""
        return id(self._resent if self._resent_block >= 0 else self._normal) in self._overflow

    # -- driving ----------------------------------------------------------

    def feed(self, data: bytes) -> int | None:
        """Scan ``data``; return the index just after the end of the headers, if reached."""
        if self.done:
            return 0
        i, n = 0, len(data)
        step = self._step
        while i < n:
            state = self.state
            if state == _S.OTHER_HDR:
                # nothing in a header we do not read matters until its line ends:
                # skip to it (a mail without a blank line is all header block)
                j = data.find(b"\n", i)
                if j != i:
                    self._leave_resent_block()
                if j < 0:
                    return None
                # the line feed (what _step does with it here): the next line starts
                self._leave_resent_block()
                self.state = _S.LINESTART_FRESH
                i = j + 1
                continue
            elif state in _RUNS:
                # a run of bytes that leave the state as it is: at once, not byte by byte
                match = _RUNS[state].match(data, i)
                if match is not None:
                    i = match.end()
                    if state in _ADDR_STATES:
                        if self._current is None:
                            self._current = bytearray()
                        current = self._current
                        room = HEADER_ADDRESS - len(current)
                        if room > 0:
                            current += match.group()[:room].replace(b"\r", b"").translate(
                                _SANITIZE)
                    if i == n:
                        return None
            elif state == _S.MATCH:
                # the rest of a header name being matched, at once when it is all
                # there (its last byte goes through the machine, which decides)
                name = self._match_name
                pos = self._match_pos
                end = i + len(name) - pos - 1
                if end > i and end < n and data[i:end].lower() == name[pos:-1]:
                    self._match_pos = len(name) - 1
                    i = end
            c = data[i]
            if c != 13:  # CR
                step(c)
                if self.done:
                    return i + 1
            i += 1
        return None

    def finish(self) -> None:
        """End of input: close the address being read."""
        if self.done:
            return
        if self._current is not None:
            self._finish_current()
        self.done = True
        self.state = _S.HEADERS_END
        if self.from_hdr == 0:
            self.from_address = ""
        if self._rfrom_hdr == 0:
            self.resent_from_address = ""

    # -- the machine --------------------------------------------------------

    def _start_match(self, what: str, c: int) -> S:
        self._match_what = what
        self._match_name = _NAMES[what]
        self._match_pos = 1
        return _S.MATCH

    def _line_start(self, c: int, *, fresh: bool = True) -> S:
        lc = c | 0x20 if 65 <= c <= 90 else c
        if fresh:
            self._paren_depth = 0
        self._resent_index = -1
        if self.want_date_msgid and lc == ord("d"):
            return self._start_match("date", c)
        if self.want_date_msgid and lc == ord("m"):
            return self._start_match("msgid", c)
        if self.want_from and self.from_hdr < 0 and lc == ord("f"):
            return self._start_match("from", c)
        if self.want_recipients:
            if lc == ord("t"):
                return _S.TO
            if lc == ord("c"):
                return _S.CC
            if lc == ord("b"):
                return _S.BCC1
        if lc == ord("r"):
            self._resent_for_rcpt = self.want_recipients and self._resent_block <= 0
            if self._resent_for_rcpt or self._want_resent_from():
                self._resent_index = 0
                return _S.RESENT
        if c == 10:
            return _S.HEADERS_END
        return _S.OTHER_HDR

    def _want_resent_from(self) -> bool:
        return self.want_from and self.from_hdr < 0 and self._rfrom_hdr < 0

    def _leave_resent_block(self) -> None:
        if self._resent_block == 0 and self._resent_index != 6:
            self._resent_block = 1

    def _step(self, c: int) -> None:  # noqa: C901 - one state table, kept in one place
        old = self.state
        st = old
        lc = c | 0x20 if 65 <= c <= 90 else c
        forget = finish = False

        if st == _S.LINESTART_FRESH:
            st = self._line_start(c)
        elif st == _S.LINESTART_AFTER_ADDRHDR:
            self._resent_index = -1
            if c not in (32, 9):
                if self._current is not None:
                    finish = True
                elif self.from_hdr == 0:
                    self.from_hdr = -1  # the From: header was empty
                elif self._rfrom_hdr == 0:
                    self._rfrom_hdr = -1
            elif self._rfrom_hdr == 0 and self._resent_block == 0:
                # msmtp reads Resent-From as an unknown header, whose folded
                # continuation line ends the Resent- block
                self._resent_block = 1
            if c in (32, 9):
                st = self._folded_save
            else:
                st = self._line_start(c, fresh=False)
        elif st == _S.OTHER_HDR:
            self._leave_resent_block()
            if c == 10:
                st = _S.LINESTART_FRESH
        elif st == _S.RESENT:
            idx = self._resent_index
            rcpt = self._resent_for_rcpt
            if idx < 6 and lc == _RESENT[idx]:
                if idx == 5 and rcpt and self._resent_block == -1:
                    self._resent_block = 0
                self._resent_index += 1
            elif idx == 6 and rcpt and lc == ord("t"):
                st = _S.TO
            elif idx == 6 and rcpt and lc == ord("c"):
                st = _S.CC
            elif idx == 6 and rcpt and lc == ord("b"):
                st = _S.BCC1
            elif idx == 6 and lc == ord("f") and self._want_resent_from():
                st = self._start_match("resent_from", c)
            elif c == 10:
                st = _S.LINESTART_FRESH
            else:
                st = _S.OTHER_HDR
        elif st == _S.MATCH:
            name = self._match_name
            if self._match_what == "from":
                self._leave_resent_block()
            if lc == name[self._match_pos]:
                self._match_pos += 1
                if self._match_pos == len(name):
                    if self._match_what == "date":
                        self.have_date = True
                        st = _S.OTHER_HDR
                    elif self._match_what == "msgid":
                        self.have_msgid = True
                        st = _S.OTHER_HDR
                    elif self._match_what == "resent_from":
                        self._rfrom_hdr = 0
                        st = _S.ADDRHDR_ALMOST
                    else:
                        self.from_hdr = 0
                        st = _S.ADDRHDR_ALMOST
            elif c == 10:
                st = _S.LINESTART_FRESH
            else:
                st = _S.OTHER_HDR
        elif st in (_S.TO, _S.CC, _S.BCC2):
            if st != _S.BCC2:
                self._leave_resent_block()
            want = ord("o") if st == _S.TO else ord("c")
            if lc == want:
                st = _S.ADDRHDR_ALMOST
            elif c == 10:
                st = _S.LINESTART_FRESH
            else:
                st = _S.OTHER_HDR
        elif st == _S.BCC1:
            self._leave_resent_block()
            if lc == ord("c"):
                st = _S.BCC2
            elif c == 10:
                st = _S.LINESTART_FRESH
            else:
                st = _S.OTHER_HDR
        elif st == _S.ADDRHDR_ALMOST:
            if self.from_hdr == 0 and c != 58:
                self.from_hdr = -1
            if self._rfrom_hdr == 0 and c != 58:
                self._rfrom_hdr = -1
            if c == 58:  # ':'
                st = _S.ADDRHDR_DEFAULT
            elif c == 10:
                st = _S.LINESTART_FRESH
            else:
                st = _S.OTHER_HDR
        elif st == _S.ADDRHDR_DEFAULT:
            if c == 10:
                if self._current is not None:
                    finish = True
                self._folded_save = st
                st = _S.LINESTART_AFTER_ADDRHDR
            elif c == 92:  # backslash
                self._backquote_save = st
                st = _S.ADDRHDR_BACKQUOTE
            elif c == 40:  # (
                self._paren_save = st
                st = _S.ADDRHDR_PARENTH_START
            elif c == 34:  # "
                forget = self._current is not None
                st = _S.ADDRHDR_DQUOTE
            elif c == 60:  # <
                forget = self._current is not None
                st = _S.ADDRHDR_BRACKETS_START
            elif c in (32, 9):
                pass
            elif c == 58:  # ':' ends a group name
                forget = self._current is not None
            elif c in (59, 44):  # ; ,
                finish = self._current is not None
            else:
                forget = self._current is not None
                st = _S.ADDRHDR_IN_ADDRESS
        elif st == _S.ADDRHDR_DQUOTE:
            if c == 10:
                self._folded_save = st
                st = _S.LINESTART_AFTER_ADDRHDR
            elif c == 92:
                self._backquote_save = st
                st = _S.ADDRHDR_BACKQUOTE
            elif c == 34:
                st = _S.ADDRHDR_DEFAULT
        elif st == _S.ADDRHDR_BRACKETS_START:
            if c == 10:
                self._folded_save = st
                st = _S.LINESTART_AFTER_ADDRHDR
            elif c == 40:
                self._paren_save = st
                st = _S.ADDRHDR_PARENTH_START
            elif c == 62:  # >
                st = _S.ADDRHDR_DEFAULT
            else:
                st = _S.ADDRHDR_IN_BRACKETS
        elif st == _S.ADDRHDR_IN_BRACKETS:
            if c == 10:
                self._folded_save = st
                st = _S.LINESTART_AFTER_ADDRHDR
            elif c == 92:
                self._backquote_save = st
                st = _S.ADDRHDR_BACKQUOTE
            elif c == 40:
                self._paren_save = st
                st = _S.ADDRHDR_PARENTH_START
            elif c == 62:
                finish = True
                st = _S.ADDRHDR_DEFAULT
        elif st == _S.ADDRHDR_PARENTH_START:
            if c == 10:
                self._folded_save = st
                st = _S.LINESTART_AFTER_ADDRHDR
            elif c == 41:  # )
                st = self._paren_save
            else:
                self._paren_depth += 1
                st = _S.ADDRHDR_IN_PARENTH
        elif st == _S.ADDRHDR_IN_PARENTH:
            if c == 10:
                self._folded_save = st
                st = _S.LINESTART_AFTER_ADDRHDR
            elif c == 92:
                self._backquote_save = st
                st = _S.ADDRHDR_BACKQUOTE
            elif c == 40:
                st = _S.ADDRHDR_PARENTH_START
            elif c == 41:
                self._paren_depth -= 1
                if self._paren_depth == 0:
                    st = self._paren_save
        elif st == _S.ADDRHDR_IN_ADDRESS:
            if c == 10:
                self._folded_save = _S.ADDRHDR_DEFAULT
                st = _S.LINESTART_AFTER_ADDRHDR
            elif c == 92:
                self._backquote_save = st
                st = _S.ADDRHDR_BACKQUOTE
            elif c == 34:
                forget = True
                st = _S.ADDRHDR_DQUOTE
            elif c == 40:
                self._paren_save = st
                st = _S.ADDRHDR_PARENTH_START
            elif c == 60:
                forget = True
                st = _S.ADDRHDR_BRACKETS_START
            elif c in (32, 9):
                st = _S.ADDRHDR_DEFAULT
            elif c == 58:
                forget = True
                st = _S.ADDRHDR_DEFAULT
            elif c in (44, 59):
                finish = True
                st = _S.ADDRHDR_DEFAULT
        elif st == _S.ADDRHDR_BACKQUOTE:
            if c == 10:
                self._folded_save = _S.ADDRHDR_DEFAULT
                st = _S.LINESTART_AFTER_ADDRHDR
            else:
                st = self._backquote_save

        self.state = st
        if forget:
            self._current = None
        if finish:
            self._finish_current()
        if st in _ADDR_STATES and old not in _NO_COLLECT_AFTER:
            if self._current is None:
                self._current = bytearray()
            if len(self._current) < HEADER_ADDRESS:
                # a longer address could never be sent: the rest is not kept
                self._current.append(_sanitized(c))
        if st == _S.HEADERS_END:
            self.done = True
            if self.from_hdr == 0:
                self.from_address = ""
            if self._rfrom_hdr == 0:
                self.resent_from_address = ""

    def _finish_current(self) -> None:
        if self._current is None:
            # msmtp would finish an empty buffer only through finish(); nothing to add
            return
        address = bytes(self._current).decode("utf-8", "surrogateescape")
        self._current = None
        if self.from_hdr == 0:
            self.from_address = address
            self.from_hdr = 1
        elif self._rfrom_hdr == 0:
            self.resent_from_address = address
            self._rfrom_hdr = 1
        elif self.want_recipients:
            found = self._resent if self._resent_block == 0 else self._normal
            if len(found) < RECIPIENTS:
                found.append(address)
            else:
                self._overflow.add(id(found))


def scan_headers(data: bytes, **kwargs: bool) -> HeaderScanner:
    """Scan a complete header block (or whole mail) at once."""
    scanner = HeaderScanner(**kwargs)
    if scanner.feed(data) is None:
        scanner.finish()
    return scanner


class HeaderFacts:
    """What :func:`quick_scan` found: the offset just past the header block, and
    whether the block has a From with an address, a Date and a Message-ID (as
    :class:`HeaderScanner` with ``want_recipients=False`` decides them)."""

    __slots__ = ("end", "have_date", "have_from", "have_msgid")

    def __init__(self, end: int, have_from: bool, have_date: bool, have_msgid: bool) -> None:
        self.end = end
        self.have_from = have_from
        self.have_date = have_date
        self.have_msgid = have_msgid


# A plain header line: a field name (printable, no colon) and a colon, or a
# folded continuation.  Anything else sends the mail through the scanner.
_PLAIN_BLOCK = re.compile(rb"(?:(?:[!-9;-~]+:|[ \t])[^\n]*\n)*")
_ATOM = rb"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.@-]+"
_ANGLE = rb"<[^<>()\\\"\x00-\x20\x7f,;:]+>"
# From values for which the scanner surely keeps an address: a bare address,
# or <address> after a display name of plain words or one quoted string
_PLAIN_FROM = re.compile(
    rb"[ \t]*(?:" + _ATOM + rb"|(?:(?:" + _ATOM + rb"[ \t]+)*" + _ATOM + rb"[ \t]*"
    + rb'|"[^"\\\n]*"[ \t]*)?' + _ANGLE + rb")[ \t]*\n")


def quick_scan(data: bytes) -> HeaderFacts | None:
    """The scanner's verdict for a whole small mail held in memory, with bytes
    operations instead of a byte at a time, when its header block is plain:
    every line a ``Name:`` line or a folded one, CR only before LF, a first From
    of a plain form on one line, and no Resent- header.  None when it is not
    (or there is no blank line): scan it with :class:`HeaderScanner` then.

    A library send prepares every mail; this keeps that cheap.  The property
    test holds it to the scanner."""
    lf = data.find(b"\n\n")
    crlf = data.find(b"\n\r\n")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        last, end = crlf, crlf + 3
    elif lf >= 0:
        last, end = lf, lf + 2
    else:
        return None
    head = data[:last + 1]  # through the last header line's LF
    if b"\r" in head:
        if head.count(b"\r") != head.count(b"\r\n"):
            return None
        head = head.replace(b"\r\n", b"\n")
    if not head or head[0] in b" \t\n" or _PLAIN_BLOCK.fullmatch(head) is None:
        return None
    size = len(head)
    low = b"\n" + head.lower()
    if b"\nresent-" in low:
        return None
    have_from = False
    start = low.find(b"\nfrom:")
    if start >= 0:
        # low is one byte longer: "from:" is head[start:start + 5], and the LF
        # that low finds at j is head[j - 1]
        value = start + 5
        if _PLAIN_FROM.fullmatch(head, value, low.find(b"\n", start + 1)) is None:
            return None
        line_end = head.find(b"\n", value) + 1
        if line_end < size and head[line_end] in b" \t":
            return None  # folded: left to the scanner
        have_from = True
    return HeaderFacts(end, have_from, b"\ndate:" in low, b"\nmessage-id:" in low)


def addresses_from_arguments(args: list[str]) -> list[str]:
    """Recipients from command-line arguments, parsed as msmtp does: each argument
    becomes a ``To:`` line, so ``"Joe <j@x>, k@y"`` gives ``j@x`` and ``k@y``."""
    if not args:
        return []
    text = "".join(f"To: {a}\n" for a in args) + "\n"
    scanner = HeaderScanner(want_from=False, want_date_msgid=False)
    scanner.feed(text.encode("utf-8", "surrogateescape"))
    scanner.finish()
    return scanner.recipients
