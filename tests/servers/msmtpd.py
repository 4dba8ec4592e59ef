"""Run an msmtpd (ours, ``twistd -n msmtpd``, or Debian's) on 127.0.0.1 and talk SMTP to it.

::

    rec = Recorder(tmp_path)
    d = MsmtpdProcess("ours", [f"--command={rec.command()}"], tmp_path)
    assert converse(d.port, [b"EHLO x\\r\\n"])[-1].startswith(b"250")
    with smtplib.SMTP("127.0.0.1", d.port) as smtp:
        smtp.sendmail("a@b", ["c@d"], b"x\\r\\n")
    assert rec.wait(1)[0]["argv"] == ["-f", "a@b", "--", "c@d"]
    d.stop()

The fixtures ``recorder``, ``msmtpd`` (start any number, stopped at teardown), ``ours``
(ours with the recorder as its command) and ``debian_msmtpd`` are in
:mod:`tests.servers.fixtures`.

For unit tests, :func:`fake_factory` and :func:`fake_connect` run msmtpd's protocol in
memory instead, on a fake clock.

The pipe command is :class:`Recorder`, a small script that stores its argv and what
it read on standard input as JSON, so that a test can check exactly what reached the
command.  Recipients steer it (a list in :data:`RECORDER`), so that one command line
serves every session of a daemon; every process it starts is noted by pid, and
:meth:`Recorder.cleanup` ends those (and only those) that are left.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport

from msmtp_twisted.daemon.command import PipeCommand
from msmtp_twisted.daemon.protocol import DaemonConfig, MsmtpdFactory
from tests.conftest import ours_env, require
from tests.servers.ports import free_port

__all__ = ["DEBIAN_MSMTPD", "OURS", "RECORDER", "FakeLookupFactory", "MsmtpdProcess",
           "Recorder", "alive", "begin_mail", "body_of", "fake_connect", "fake_factory",
           "converse", "msmtpd_program", "open_session", "read_all", "read_reply",
           "require_debian_msmtpd", "run_msmtpd", "start_mail", "twistd_program"]

#: Debian's msmtpd 1.8.23 (msmtp-mta conflicts with postfix, so it is unpacked:
#: ``apt-get download msmtp-mta && dpkg-deb -x msmtp-mta_*.deb /opt/msmtpd-root``)
DEBIAN_MSMTPD = "/opt/msmtpd-root/usr/bin/msmtpd"
#: ours, as a module of this checkout
OURS = [sys.executable, "-m", "msmtp_twisted.daemon"]
_BIN = Path(sys.executable).parent


def msmtpd_program() -> list[str]:
    """Our console script ``msmtpd`` (the module where it is not installed)."""
    exe = _BIN / "msmtpd"
    return [str(exe)] if exe.exists() else list(OURS)


def twistd_program() -> list[str]:
    exe = _BIN / "twistd"
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


def require_debian_msmtpd() -> str:
    """Debian's msmtpd 1.8.23 (skip, or fail under CI, without it)."""
    require(os.access(DEBIAN_MSMTPD, os.X_OK),
            f"Debian's msmtpd 1.8.23 at {DEBIAN_MSMTPD} (apt-get download msmtp-mta; "
            "dpkg-deb -x msmtp-mta_*.deb /opt/msmtpd-root)")
    out = subprocess.run([DEBIAN_MSMTPD, "--version"], capture_output=True, text=True,
                         timeout=30).stdout
    require(out.startswith("msmtpd version 1.8.23"), f"msmtpd 1.8.23, found {out[:40]!r}")
    return DEBIAN_MSMTPD


def _program(program: str | Sequence[str]) -> list[str]:
    if not isinstance(program, str):
        return list(program)
    if program == "debian":
        return [require_debian_msmtpd()]
    return {"ours": OURS, "msmtpd": msmtpd_program(), "twistd": twistd_program()}[program]


def run_msmtpd(program: str | Sequence[str], *args: str, input: bytes | None = None,
               env: dict[str, str] | None = None, timeout: float = 30,
               cwd: str | os.PathLike[str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """One run to its end (``--inetd`` with ``input``, ``--help``, a start-up error):
    ``program`` as for :class:`MsmtpdProcess`, in a session of its own (no terminal);
    stdin is /dev/null without ``input``; ``env`` (default: ours) gets this checkout
    on ``PYTHONPATH``."""
    return subprocess.run([*_program(program), *args], input=input, capture_output=True,
                          timeout=timeout, cwd=cwd, start_new_session=True,
                          env=ours_env(dict(os.environ) if env is None else env),
                          stdin=subprocess.DEVNULL if input is None else None)


# --- the recording pipe command ----------------------------------------------------------

#: The pipe command.  Recipients steer it (the others are just recorded):
#:
#: * ``sleep-N@x``: sleep N seconds before reading the mail;
#: * ``exit-N@x``: exit with N; ``kill@x``: read the mail, then SIGKILL itself (no record);
#: * ``stdout@x`` / ``stderr@x``: write to its standard output / error;
#: * ``hash@x``: record only the size and SHA-256 of a (big) mail, not its bytes;
#: * ``leave-child-N@x``: leave ``sleep N`` running, holding its standard error;
#:   ``wait-child-N@x``: the same, and wait for it; ``hang-N@x``: the same, then sleep N.
#:
#: Records (JSON, in :attr:`Recorder.dir`): ``started`` (``pid``, ``pgid``, ``sid``) when
#: it starts, ``child`` (``pid``) for each ``sleep``, ``mail`` when it ends: ``argv``,
#: ``pid``, ``size`` and ``sha256`` of standard input, ``body_size`` and ``body_sha256``
#: of the part after msmtpd's Received: header, ``exited_at`` (``time.time()``) and
#: ``data`` (the bytes, unless ``hash@x``).
RECORDER = r'''
import base64, hashlib, json, os, signal, subprocess, sys, time
out, argv = sys.argv[1], sys.argv[2:]
pid = os.getpid()


def note(name, record):
    path = os.path.join(out, name)
    with open(path + ".tmp", "w") as f:
        json.dump(record, f)
    os.rename(path + ".tmp", path + ".json")


def number(arg, prefix):
    return arg[len(prefix):].split("@")[0]


note("started-%d" % pid, {"pid": pid, "pgid": os.getpgid(0), "sid": os.getsid(0)})
code = 0
children = []
for a in argv:
    if a.startswith("sleep-"):  # before reading: the whole mail must be there anyway
        time.sleep(float(number(a, "sleep-")))
    if a.startswith("exit-"):
        code = int(number(a, "exit-"))
    if a == "stdout@x":
        sys.stdout.write("250 Ok fake reply from the command\r\n" * 100)
        sys.stdout.flush()
    if a == "stderr@x":
        sys.stderr.write("trouble on stderr\n")
    if a == "kill@x":
        sys.stdin.buffer.read()
        os.kill(pid, signal.SIGKILL)
    for kind in ("leave-child-", "wait-child-", "hang-"):
        if a.startswith(kind):
            children.append((kind, number(a, kind)))
keep = "hash@x" not in argv
whole, body = hashlib.sha256(), hashlib.sha256()
size = body_size = 0
data = []
header = None  # msmtpd's three-line Received: header opens the first chunk
while True:
    chunk = sys.stdin.buffer.read(1 << 20)
    if not chunk:
        break
    whole.update(chunk)
    size += len(chunk)
    if keep:
        data.append(chunk)
    if header is None:
        parts = chunk.split(b"\r\n", 3)
        header = chunk.startswith(b"Received: ") and len(parts) == 4
        chunk = parts[3] if header else b""
    elif not header:
        chunk = b""
    body.update(chunk)
    body_size += len(chunk)
record = {"argv": argv, "pid": pid, "size": size, "sha256": whole.hexdigest(),
          "body_size": body_size, "body_sha256": body.hexdigest()}
if keep:
    record["data"] = base64.b64encode(b"".join(data)).decode()
for kind, seconds in children:
    # A background job that inherits (and holds) our standard error.
    child = subprocess.Popen(["sleep", seconds], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL)
    note("child-%d" % child.pid, {"pid": child.pid})
    if kind == "wait-child-":
        child.wait()
    if kind == "hang-":
        time.sleep(float(seconds))
record["exited_at"] = time.time()
note("mail-%.6f-%d" % (time.time(), pid), record)
sys.exit(code)
'''


class Recorder:
    """The recording pipe command (:data:`RECORDER`, written to ``directory``) and
    what its runs left in ``directory/mails``."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory / "mails"
        self.dir.mkdir()
        self.script = directory / "recorder.py"
        self.script.write_text(RECORDER)

    def command(self, args: str = "-f %F --") -> str:
        """The ``--command`` for msmtpd."""
        return f"{sys.executable} {self.script} {self.dir} {args}"

    def records(self, kind: str = "mail") -> list[dict[str, Any]]:
        """``mail`` records in the order the runs ended (``data`` as bytes), or
        ``started`` / ``child`` records."""
        out = []
        for p in sorted(self.dir.glob(f"{kind}-*.json")):
            rec = json.loads(p.read_text())
            if "data" in rec:
                rec["data"] = base64.b64decode(rec["data"])
            out.append(rec)
        return out

    def mails(self) -> list[dict[str, Any]]:
        return self.records("mail")

    def wait(self, n: int = 1, timeout: float = 10.0, kind: str = "mail") -> list[dict[str, Any]]:
        """At least ``n`` records of ``kind``, or what there is after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.records(kind)
            if len(found) >= n:
                return found
            time.sleep(0.02)
        return self.records(kind)

    def pids(self) -> list[int]:
        """Every process it started: the commands and their ``sleep`` children."""
        return [r["pid"] for kind in ("started", "child") for r in self.records(kind)]

    def cleanup(self) -> None:
        """End the processes it started (by their pids) that are still there."""
        for pid in self.pids():
            if alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def body_of(mail: dict[str, Any]) -> bytes:
    """The piped bytes after msmtpd's three-line Received: header."""
    data = mail["data"]
    assert data.startswith(b"Received: from ")
    return data.split(b"\r\n", 3)[3]


# --- the daemon -------------------------------------------------------------------------------


class MsmtpdProcess:
    """An msmtpd listening on 127.0.0.1 at a free port, started in a session of its own
    (so that only it gets the signals a test sends, and never a terminal), its output in
    files in ``cwd``; ready once it has greeted a session.

    ``program``: ``"ours"`` (:data:`OURS`), ``"msmtpd"`` (our console script),
    ``"twistd"`` (``twistd -n msmtpd``), ``"debian"`` (Debian's msmtpd; skips without
    it) or an argv.  ``endpoint``: twistd's ``--port`` instead of TCP on 127.0.0.1,
    ``{port}`` in it replaced by :attr:`port` (then it is not waited for: the test
    connects itself).
    """

    def __init__(self, program: str | Sequence[str], args: Sequence[str], cwd: Path, *,
                 endpoint: str | None = None, start_timeout: float = 15.0) -> None:
        self.port = free_port()
        argv = _program(program)
        if program == "twistd":
            listen = (endpoint or "tcp:{port}:interface=127.0.0.1").format(port=self.port)
            self.argv = [*argv, "-n", "--pidfile=", "msmtpd", f"--port={listen}", *args]
        else:
            self.argv = [*argv, f"--port={self.port}", "--interface=127.0.0.1", *args]
        name = program if isinstance(program, str) else "msmtpd"
        self._out = cwd / f"{name}-{self.port}.out"
        self._err = cwd / f"{name}-{self.port}.err"
        with open(self._out, "wb") as out, open(self._err, "wb") as err:
            self.proc = subprocess.Popen(self.argv, cwd=cwd, env=ours_env(dict(os.environ)),
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         start_new_session=True)
        if endpoint is None:
            self._wait_ready(start_timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    s.settimeout(5)
                    if not s.recv(100).startswith(b"220 "):  # the session is up
                        raise ConnectionError("no greeting")
                    s.sendall(b"QUIT\r\n")
                    read_all(s, 5)
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{self.argv[0]} did not start: {self.output()}") from None
                time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def peak_rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise AssertionError("no VmHWM")

    def children(self) -> list[int]:
        kids: list[int] = []
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            kids += [int(k) for k in (task / "children").read_text().split()]
        return kids

    def signal(self, sig: int) -> float:
        """Send ``sig``; when (``time.monotonic()``)."""
        os.kill(self.pid, sig)
        return time.monotonic()

    def wait_closed(self, timeout: float = 15) -> None:
        """Until the listening socket is closed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=2).close()
            except OSError:
                return
            time.sleep(0.05)
        raise AssertionError("still listening")

    def wait(self, timeout: float) -> int | None:
        """Its exit status, or None if it is still running after ``timeout``."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def output(self) -> str:
        """Standard output, then standard error, so far."""
        return "".join(p.read_text(errors="replace") for p in (self._out, self._err))

    def stop(self, timeout: float = 10) -> tuple[str, str]:
        """SIGTERM, SIGKILL after ``timeout``; its standard output and error.

        Debian's msmtpd forks a process per session, which may still write its last
        log lines after the reply: those (its children in its own process group, not
        the pipe commands) are waited for as well, as long again, then killed."""
        if self.proc.poll() is None:
            sessions = [k for k in self.children() if _pgid(k) == self.pid]
            self.proc.terminate()
            if self.wait(timeout) is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
            deadline = time.monotonic() + timeout
            while any(alive(k) for k in sessions) and time.monotonic() < deadline:
                time.sleep(0.02)
            for k in sessions:
                if alive(k):
                    with contextlib.suppress(OSError):
                        os.kill(k, signal.SIGKILL)
        return (self._out.read_text(errors="replace"), self._err.read_text(errors="replace"))


# --- SMTP conversations ----------------------------------------------------------------------


def read_reply(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """One complete (multi-line) reply, or b'' at EOF/timeout.  Reads with MSG_PEEK
    first, so the bytes of later replies stay in the socket."""
    sock.settimeout(timeout)
    seen = 0
    while True:
        try:
            buf = sock.recv(1 << 20, socket.MSG_PEEK)
        except (TimeoutError, ConnectionResetError):
            return b""
        if not buf:
            return b""
        lines = buf.split(b"\r\n")
        for i, line in enumerate(lines[:-1]):
            if len(line) >= 4 and line[3:4] == b" ":
                size = len(b"\r\n".join(lines[: i + 1])) + 2
                return sock.recv(size)
        if len(buf) == seen:
            time.sleep(0.01)
        seen = len(buf)


def read_all(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything until EOF (or a reset, or ``timeout`` seconds without data)."""
    sock.settimeout(timeout)
    buf = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            return buf
        if not chunk:
            return buf
        buf += chunk


def converse(port: int, steps: Sequence[bytes], timeout: float = 10.0) -> list[bytes]:
    """Lockstep: the greeting, then one reply per step (b'' once the server hung up)."""
    out = []
    with socket.create_connection(("127.0.0.1", port)) as sock:
        out.append(read_reply(sock, timeout))
        for step in steps:
            try:
                sock.sendall(step)
            except OSError:
                out.append(b"")
                continue
            out.append(read_reply(sock, timeout))
    return out


def open_session(port: int) -> socket.socket:
    """A session after the greeting (220) and ``EHLO x`` (250)."""
    sock = socket.create_connection(("127.0.0.1", port))
    greeting = read_reply(sock)
    assert greeting.startswith(b"220 "), greeting
    sock.sendall(b"EHLO x\r\n")
    ehlo = read_reply(sock)
    assert ehlo[:3] == b"250", ehlo
    return sock


def begin_mail(sock: socket.socket, rcpt: str = "r@example.org",
               sender: str = "s@example.org") -> None:
    """MAIL, RCPT and DATA in lockstep (msmtpd 1.8.23 loses pipelined replies),
    up to ``354``."""
    replies = []
    for step in (f"MAIL FROM:<{sender}>\r\n".encode(), f"RCPT TO:<{rcpt}>\r\n".encode(),
                 b"DATA\r\n"):
        sock.sendall(step)
        replies.append(read_reply(sock))
    assert [r[:3] for r in replies] == [b"250", b"250", b"354"], replies


def start_mail(port: int, rcpt: str = "r@example.org",
               sender: str = "s@example.org") -> socket.socket:
    """A new session up to ``354``."""
    sock = open_session(port)
    begin_mail(sock, rcpt, sender)
    return sock


# --- in memory: msmtpd's protocol on a fake clock, for unit tests -------------------------------


class FakeLookupFactory(MsmtpdFactory):
    """msmtpd's factory with the client's name looked up at once and without DNS:
    ``name`` for any IP address."""

    def __init__(self, config: DaemonConfig, reactor: Any, name: str = "") -> None:
        super().__init__(config, reactor=reactor)
        self.name = name

    def lookup(self, ip: str) -> defer.Deferred[str]:
        return defer.succeed(self.name if ip else "")


def fake_factory(name: str = "", **config: Any) -> tuple[FakeLookupFactory, MemoryReactorClock]:
    """A :class:`FakeLookupFactory` on a ``MemoryReactorClock``, and the clock;
    ``config``: :class:`DaemonConfig` fields (``command`` defaults to ``true``)."""
    clock = MemoryReactorClock()
    config.setdefault("command", PipeCommand.parse("true"))
    return FakeLookupFactory(DaemonConfig(**config), clock, name), clock


def fake_connect(factory: MsmtpdFactory,
                 peer: Any = None) -> tuple[Any, StringTransport]:
    """A session of ``factory`` over a ``StringTransport`` from ``peer`` (default
    127.0.0.1:1234) to 127.0.0.1:25: the protocol and the transport."""
    if peer is None:
        peer = IPv4Address("TCP", "127.0.0.1", 1234)
    proto = factory.buildProtocol(peer)
    tr = StringTransport(hostAddress=IPv4Address("TCP", "127.0.0.1", 25), peerAddress=peer)
    proto.makeConnection(tr)
    return proto, tr
