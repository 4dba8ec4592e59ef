"""Servers that misbehave on purpose.

``HostileServer(mode)`` is a ``RecordingServer`` preconfigured for one kind of
misbehaviour, so a test also sees what the client sent before it gave up (e.g.
whether it still said QUIT).  ``HOSTILE_MODES`` lists every mode with a one-line
description; ``CLIENT_MUST_FAIL`` is the subset a correct client must fail on (the
others -- lone LF, trickled replies -- are valid and must succeed).

Which reply carries the misbehaviour: modes that break "a reply" (``garbage``,
``huge_reply``, ``invalid_code``, ...) put it in the greeting unless ``at=`` names a
command verb (``"EHLO"``, ``"MAIL"``, ``"RCPT"``, ``"DATA"``, ``"EOD"``, ...).

Drop modes close the connection *after* a step, i.e. the server completed the step
(sent its reply) and then closes instead of answering what comes next:

==================  ==============================================================
drop_on_connect     accept, close at once (no greeting)
drop_after_greeting greeting, then close when EHLO arrives
drop_after_ehlo     EHLO answered, close when MAIL arrives
drop_after_mail     MAIL answered, close when RCPT arrives
drop_after_rcpt     RCPT answered, close when DATA arrives
drop_after_data     354 sent, then close
drop_mid_data       close after ``data_bytes`` (default 1000) bytes of mail data
drop_after_eod      final dot received, close without a reply
drop_on_quit        QUIT received, close without the 221
==================  ==============================================================

A drop sends a FIN and then drains what the client still sends until it closes (so
the client reliably sees EOF), except ``drop_after_data`` and ``drop_mid_data``, which
close at once so that the client's further writes fail.  Add ``reset=True`` to any
drop mode to close with a TCP RST instead.
"""

from __future__ import annotations

from typing import Any

from tests.servers.recording import CLOSE, HANG, Close, Hang, RecordingServer

TEN_MB = 10 * 1024 * 1024

HOSTILE_MODES: dict[str, str] = {
    "garbage": "binary garbage line instead of a reply (greeting by default)",
    "huge_reply": "one 10 MB reply line",
    "silent": "accepts, never sends a byte",
    "silent_after_greeting": "greets, then never answers",
    "invalid_code": "'25O ok' (letter O in the status code)",
    "no_separator": "'220ok': no space or '-' after the code",
    "empty_line": "an empty line (CRLF only) as the reply",
    "no_crlf_then_close": "'220 ok' without line ending, then close",
    "no_crlf_then_hang": "'220 ok' without line ending, then silence",
    "long_line": "a syntactically valid 1100-byte reply line (msmtp reads 1023 bytes)",
    "too_many_lines": "EHLO reply with 1001 continuation lines",
    "too_many_lines_greeting": "greeting with 1001 continuation lines",
    "lone_lf": "every reply ends with LF only (valid for msmtp)",
    "trickle": "replies written 1 byte per TCP write (valid)",
    "drop_on_connect": "accepts and closes at once",
    "drop_after_greeting": "greeting, then close",
    "drop_after_ehlo": "EHLO answered, then close",
    "drop_after_mail": "MAIL answered, then close",
    "drop_after_rcpt": "RCPT answered, then close",
    "drop_after_data": "354 sent, then close",
    "drop_mid_data": "close in the middle of the mail data",
    "drop_after_eod": "final dot received, close without replying",
    "drop_on_quit": "QUIT received, close without replying",
}

#: Modes that a correct client must treat as a failed delivery.
CLIENT_MUST_FAIL = frozenset(HOSTILE_MODES) - {"lone_lf", "trickle", "drop_on_quit"}


def _lf_only(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode() + b"\n"
    return [v + "\n" for v in value]


class HostileServer(RecordingServer):
    """A RecordingServer misbehaving in ``mode`` (see ``HOSTILE_MODES``).

    Options: ``at`` (which reply is broken: ``"greeting"`` or a verb), ``size`` (bytes
    of ``huge_reply``), ``lines`` (count for ``too_many_lines*``), ``data_bytes``
    (``drop_mid_data``), ``reset`` (drop with RST), ``chunk``/``gap`` (``trickle``);
    anything else is passed to ``RecordingServer``.
    """

    thread_name = "hostile-server"

    def __init__(self, mode: str, *, at: str = "greeting", size: int = TEN_MB,
                 lines: int = 1001, data_bytes: int = 1000, reset: bool = False,
                 chunk: int = 1, gap: float = 0.0005, **kwargs: Any) -> None:
        if mode not in HOSTILE_MODES:
            raise ValueError(f"unknown hostile mode {mode!r}; one of {sorted(HOSTILE_MODES)}")
        self.mode = mode
        replies: dict[str, Any] = dict(kwargs.pop("replies", None) or {})
        drop = Close(reset=reset) if reset else CLOSE
        bad: Any = None
        if mode == "garbage":
            bad = b"\x00\xff\xfe GARBAGE \x1b[31m not SMTP\r\n"
        elif mode == "huge_reply":
            bad = b"220 " + b"x" * size + b"\r\n"
        elif mode == "silent":
            kwargs["greeting"] = HANG
        elif mode == "silent_after_greeting":
            for verb in ("EHLO", "HELO", "LHLO"):
                replies[verb] = HANG
        elif mode == "invalid_code":
            bad = b"25O ok\r\n"
        elif mode == "no_separator":
            bad = b"220ok\r\n"
        elif mode == "empty_line":
            bad = b"\r\n"
        elif mode == "no_crlf_then_close":
            bad = Close(b"220 ok")
        elif mode == "no_crlf_then_hang":
            bad = Hang(b"220 ok")
        elif mode == "long_line":
            bad = b"220 " + b"y" * 1094 + b"\r\n"
        elif mode == "too_many_lines":
            at = "EHLO" if at == "greeting" else at
            bad = [f"250-line {i}" for i in range(lines)] + ["250 end"]
        elif mode == "too_many_lines_greeting":
            bad = [f"220-line {i}" for i in range(lines)] + ["220 end"]
        elif mode == "lone_lf":
            kwargs["greeting"] = _lf_only("220 mx.test ESMTP lone LF")
            replies.update({
                "EHLO": _lf_only(["250-mx.test", "250-PIPELINING", "250 8BITMIME"]),
                "HELO": _lf_only("250 mx.test"),
                "MAIL": _lf_only("250 ok"), "RCPT": _lf_only("250 ok"),
                "DATA": _lf_only("354 go"), "EOD": _lf_only("250 queued"),
                "QUIT": _lf_only("221 bye"), "RSET": _lf_only("250 ok"),
            })
        elif mode == "trickle":
            kwargs.setdefault("write_chunk", chunk)
            kwargs.setdefault("write_gap", gap)
        elif mode == "drop_on_connect":
            kwargs["greeting"] = drop
        elif mode == "drop_after_greeting":
            for verb in ("EHLO", "HELO", "LHLO"):
                replies[verb] = drop
        elif mode == "drop_after_ehlo":
            replies["MAIL"] = drop
        elif mode == "drop_after_mail":
            replies["RCPT"] = drop
        elif mode == "drop_after_rcpt":
            replies["DATA"] = drop
        elif mode == "drop_after_data":
            replies["DATA"] = Close("354 End data with <CR><LF>.<CR><LF>", reset=reset,
                                    drain=False)
        elif mode == "drop_mid_data":
            kwargs["data_close_after"] = data_bytes
            kwargs["data_close_reset"] = reset
        elif mode == "drop_after_eod":
            replies["EOD"] = drop
        elif mode == "drop_on_quit":
            replies["QUIT"] = drop
        if bad is not None:
            if at == "greeting":
                kwargs["greeting"] = bad
            else:
                replies[at] = bad
        super().__init__(replies=replies, **kwargs)


__all__ = ["CLIENT_MUST_FAIL", "HOSTILE_MODES", "TEN_MB", "HostileServer"]
