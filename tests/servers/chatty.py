"""``ChattyServer``: an SMTP server that talks out of turn, or slowly, at one chosen step.

For the client's hardening tests (issue 10, items 10 and 11): a server that sends replies
while the client sends the mail (a flood of ``250 x`` lines, or one early ``554``), and a
server whose multi-line replies arrive one line at a time, each line in time for a
per-read timeout but the whole reply not.

Steps are named after what the client sends: ``GREETING`` (no command), ``EHLO``,
``STARTTLS``, ``AUTH``, ``MAIL``, ``RCPT``, ``DATA``, ``BODY`` (while the client sends the
mail, right after the ``354``), ``EOD`` (the final dot) and ``QUIT``.

* ``replies={step: [lines]}`` -- the reply lines of a step (CRLF is added; an empty list
  sends nothing);
* ``gap={step: seconds}`` -- write that step's reply one line at a time, ``seconds`` apart;
* ``body_read=(size, seconds)`` -- read the mail ``size`` bytes at a time, ``seconds``
  apart (so that sending it takes a while);
* ``flood="STEP"`` -- after that step's reply, a second thread writes ``flood_line`` over
  and over (while the server keeps reading) until ``flood_bytes`` are written,
  ``flood_seconds`` have passed, the client stops reading for ``stall_seconds``, or the
  connection ends.  ``flood="BODY"`` floods while the client sends the mail.

Everything is bounded: the flood by bytes and time, every socket operation by
``io_timeout``.  The server records the command lines, how many mail bytes arrived,
whether the final dot and QUIT came, which replies were written in full (``replied``:
a client that gave up early makes the rest of a slow reply fail), and how many flood
bytes the client's side took.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from tests.servers.base import DEFAULT_IO_TIMEOUT, ThreadedServer

STEPS = ("GREETING", "EHLO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "BODY", "EOD", "QUIT")

DEFAULT_REPLIES: dict[str, list[str]] = {
    "GREETING": ["220 mx.test ESMTP chatty"],
    "EHLO": ["250-mx.test", "250-PIPELINING", "250 AUTH PLAIN"],
    "HELO": ["250 mx.test"],
    "STARTTLS": ["220 go ahead"],
    "AUTH": ["235 ok"],
    "MAIL": ["250 ok"],
    "RCPT": ["250 ok"],
    "DATA": ["354 go ahead"],
    "BODY": [],
    "EOD": ["250 queued"],
    "QUIT": ["221 bye"],
    "OTHER": ["502 what"],
}


class ChattyServer(ThreadedServer):
    """See the module docstring.  One client at a time is enough for these tests, but
    every connection gets its own state; the records are of the latest one."""

    thread_name = "chatty-server"

    def __init__(self, *, replies: Mapping[str, Sequence[str]] | None = None,
                 gap: Mapping[str, float] | None = None, flood: str | None = None,
                 flood_line: bytes = b"250 x\r\n", flood_bytes: int = 16 << 20,
                 flood_seconds: float = 5.0, stall_seconds: float = 3.0,
                 body_read: tuple[int, float] | None = None,
                 tls_context: ssl.SSLContext | None = None,
                 io_timeout: float = DEFAULT_IO_TIMEOUT, **kwargs: Any) -> None:
        super().__init__(io_timeout=io_timeout, **kwargs)
        unknown = ({*(replies or {}), *(gap or {})} - {*STEPS, "HELO", "OTHER"}) | (
            {flood} - {*STEPS, None})
        if unknown:
            raise ValueError(f"unknown steps {sorted(unknown)}; one of {STEPS}")
        self.replies = {**DEFAULT_REPLIES, **{k: list(v) for k, v in (replies or {}).items()}}
        if tls_context is not None and "EHLO" not in (replies or {}):
            self.replies["EHLO"] = ["250-mx.test", "250-PIPELINING", "250-STARTTLS",
                                    "250 AUTH PLAIN"]
        self.gap = dict(gap or {})
        self.flood = flood
        self.flood_line = flood_line
        self.flood_bytes = flood_bytes
        self.flood_seconds = flood_seconds
        self.stall_seconds = stall_seconds
        self.body_read = body_read
        self.tls_context = tls_context
        # records of the latest connection
        self.commands: list[str] = []
        self.body_bytes = 0
        self.eod_received = False
        self.quit_received = False
        self.flooded = 0
        self.flood_done = threading.Event()
        #: steps whose whole reply was written (the client was still there to take it)
        self.replied: list[str] = []

    # -- one connection ----------------------------------------------------------------

    def handle(self, conn: socket.socket) -> None:
        self.commands = []
        self.body_bytes = 0
        self.eod_received = self.quit_received = False
        self.flooded = 0
        self.flood_done = threading.Event()
        self.replied = []
        lock = threading.Lock()
        sock: Any = conn
        flooder: threading.Thread | None = None

        def reply(*steps: str) -> None:
            """Send the replies of ``steps``; a flood starts in the same write."""
            nonlocal flooder
            lines = [line.encode() + b"\r\n" for step in steps for line in self.replies[step]]
            gap = max(self.gap.get(step, 0.0) for step in steps)
            first = b""
            if self.flood in steps and flooder is None:
                # the flood's first lines go with the reply, so that a client reading it
                # finds them at once (what comes later depends on the scheduler)
                first = self.flood_line * max(1, 4096 // len(self.flood_line))
                first = first[: self.flood_bytes]
            with lock:
                if gap:
                    for i, line in enumerate(lines):
                        if i:
                            time.sleep(gap)
                        sock.sendall(line)
                    lines = []
                if lines or first:
                    sock.sendall(b"".join(lines) + first)
                    self.flooded += len(first)
            self.replied.extend(steps)
            if first:
                flooder = threading.Thread(target=self._flood, args=(sock, lock),
                                           name="chatty-flood", daemon=True)
                flooder.start()

        buf = b""
        try:
            reply("GREETING")
            in_body = False
            while not self.stopping:
                if in_body and self.body_read is not None:
                    size, pause = self.body_read
                    time.sleep(pause)  # a slow reader: the mail takes a while to send
                    data = sock.recv(size)
                else:
                    data = sock.recv(65536)
                if not data:
                    return
                buf += data
                if in_body:
                    end = buf.find(b"\r\n.\r\n")
                    if end < 0:
                        self.body_bytes += max(0, len(buf) - 4)
                        buf = buf[-4:]
                        continue
                    self.body_bytes += end + 2
                    buf = buf[end + 5:]
                    in_body = False
                    self.eod_received = True
                    reply("EOD")
                while not in_body and b"\n" in buf:
                    line, _, buf = buf.partition(b"\n")
                    text = line.decode("utf-8", "replace").rstrip("\r")
                    self.commands.append(text)
                    verb = text.split(" ", 1)[0].upper()
                    if verb == "QUIT":
                        self.quit_received = True
                        reply("QUIT")
                        return
                    if verb == "HELO":
                        reply("HELO")
                    elif verb == "STARTTLS" and self.tls_context is not None:
                        reply("STARTTLS")
                        sock = self.tls_context.wrap_socket(sock, server_side=True)
                        buf = b""
                    elif verb == "DATA" and self.replies["DATA"][-1:] != [] and \
                            self.replies["DATA"][-1].startswith("354"):
                        reply("DATA", "BODY")
                        in_body = True
                        self.body_bytes = -2
                        buf = b"\r\n" + buf  # the mail may end at once: ".\r\n"
                    elif verb in STEPS:
                        reply(verb)
                    else:
                        reply("OTHER")
        except (OSError, ssl.SSLError):
            return
        finally:
            if flooder is not None:
                flooder.join(self.flood_seconds + self.stall_seconds + 1)
            else:
                self.flood_done.set()

    def _flood(self, sock: socket.socket, lock: threading.Lock) -> None:
        """Write the flood line until a bound is reached; never block for long."""
        block = self.flood_line * max(1, 65536 // len(self.flood_line))
        deadline = time.monotonic() + self.flood_seconds
        stalled_since: float | None = None
        try:
            while self.flooded < self.flood_bytes and not self.stopping:
                now = time.monotonic()
                if now >= deadline:
                    return
                _, writable, _ = select.select([], [sock], [], 0.05)
                if not writable:
                    stalled_since = stalled_since or now
                    if now - stalled_since > self.stall_seconds:
                        return
                    continue
                stalled_since = None
                # continue where the last (maybe partial) send stopped, mid-line or not
                start = self.flooded % len(self.flood_line)
                chunk = block[start:][: self.flood_bytes - self.flooded]
                with lock:
                    # writable: send() takes what fits without waiting
                    sent = sock.send(chunk)
                self.flooded += sent
        except OSError:
            return
        finally:
            self.flood_done.set()


__all__ = ["DEFAULT_REPLIES", "STEPS", "ChattyServer"]
