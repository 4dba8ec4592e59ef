"""msmtpd's process lifecycle, against real ``msmtpd`` and ``twistd -n msmtpd``
processes over real sockets: graceful shutdown on SIGTERM/SIGINT, the pipe
command's process group (``--command-timeout``, leftover descendants), and
clients that never read or send a byte at a time.

The pipe command is the recorder of :mod:`tests.servers.msmtpd`: it notes its
start, reads the mail (after a delay for ``sleep-N@x``), records the size and
SHA-256 of the mail body it got, and for ``leave-child-N@x``, ``wait-child-N@x`` and
``hang-N@x`` leaves a ``sleep`` behind or hangs; every pid it starts is written
down, so the test can check and end exactly those processes.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ours_env
from tests.servers.msmtpd import (
    Recorder,
    alive,
    msmtpd_program,
    read_all,
    read_reply,
    start_mail,
)
from tests.servers.ports import free_port


@pytest.fixture
def server(msmtpd: Any) -> Any:
    """``server(kind, args)``: ``msmtpd`` (the console script), ``twistd`` or ``debian``."""
    return lambda kind, args: msmtpd(args, kind, start_timeout=20)


def mail_of(size: int) -> bytes:
    line = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxy\r\n"
    return b"Subject: big\r\n\r\n" + line * (size // len(line))


def send_mail(port: int, mail: bytes, rcpt: str = "r@example.org") -> socket.socket:
    sock = start_mail(port, rcpt)
    sock.sendall(mail + b".\r\n")
    return sock


RUNNERS = ["msmtpd", "twistd"]
#: the timeouts of a session (idle, request, data rate) live in the protocol that both
#: runners share (MsmtpdService); that both build the same configuration from the same
#: options is test_msmtpd_lifecycle_unit's test_console_and_twistd_build_the_same_config.
#: So each of these tests runs under one runner, the two runners taking turns; signals,
#: which each runner handles itself, are tested under both.
SHUTDOWN_421 = b"421 Server shutting down, closing connection\r\n"


# --- item 2: graceful shutdown ------------------------------------------------------------


@pytest.mark.parametrize(("runner", "sig", "size"), [
    ("msmtpd", signal.SIGTERM, 512_000),
    ("msmtpd", signal.SIGINT, 512_000),
    ("msmtpd", signal.SIGTERM, 3_000_000),
    ("twistd", signal.SIGTERM, 512_000),
    ("twistd", signal.SIGINT, 512_000),
    ("twistd", signal.SIGTERM, 3_000_000),
])
def test_signal_during_delivery_finishes_and_answers(runner: str, sig: int, size: int,
                                                     server: Any, recorder: Recorder) -> None:
    """The command gets the whole mail, the client its 250 (then 421), and the
    server exits once the delivery is done, well within the grace period."""
    srv = server(runner, [f"--command={recorder.command()}"])  # grace: 30 s
    mail = mail_of(size)
    with send_mail(srv.port, mail, "sleep-2@x") as sock:
        assert recorder.wait(kind="started", timeout=15), "the command did not start"
        sent = srv.signal(sig)
        assert read_reply(sock, timeout=20) == b"250 Ok, mail was piped\r\n"
        assert read_all(sock, 10) == SHUTDOWN_421
    code = srv.wait(20)
    took = time.monotonic() - sent
    assert code is not None, "the server did not exit"
    assert code in (0, -sig), srv.output()
    assert took < 15, took
    [record] = recorder.wait(timeout=15)
    piped = mail.replace(b"\r\n", b"\n")
    assert record["body_size"] == len(piped)
    assert record["body_sha256"] == hashlib.sha256(piped).hexdigest()
    assert "Traceback" not in srv.output()


@pytest.mark.parametrize("runner", RUNNERS)
def test_signal_before_the_dot_gives_421_and_delivers_nothing(runner: str, server: Any,
                                                              recorder: Recorder) -> None:
    srv = server(runner, [f"--command={recorder.command()}"])
    in_data = start_mail(srv.port)
    in_data.sendall(mail_of(600_000))  # no final dot
    idle = socket.create_connection(("127.0.0.1", srv.port))
    try:
        assert read_reply(idle).startswith(b"220 ")
        idle.sendall(b"EHLO x\r\n")
        assert read_reply(idle).startswith(b"250")
        time.sleep(0.5)
        sent = srv.signal(signal.SIGTERM)
        assert read_all(idle, 10) == SHUTDOWN_421
        assert read_all(in_data, 10) == SHUTDOWN_421
    finally:
        idle.close()
        in_data.close()
    assert srv.wait(15) is not None
    assert time.monotonic() - sent < 10
    time.sleep(0.3)
    assert recorder.records("started") == []


@pytest.mark.parametrize("runner", RUNNERS)
def test_delivery_longer_than_the_grace_is_stopped_with_its_group(runner: str, server: Any,
                                                                  recorder: Recorder) -> None:
    """After --shutdown-timeout the command and what it started are killed, the
    client is told to try again later (451), and the server exits."""
    srv = server(runner, [f"--command={recorder.command()}", "--shutdown-timeout=2"])
    with send_mail(srv.port, mail_of(10_000), "hang-60@x") as sock:
        [started] = recorder.wait(kind="started", timeout=15)
        assert recorder.wait(kind="child", timeout=15)
        sent = srv.signal(signal.SIGTERM)
        reply = read_reply(sock, timeout=20)
        took = time.monotonic() - sent
        assert reply == b"451 Pipe command stopped at server shutdown, try again later\r\n"
        assert 1.5 < took < 8, took
        assert read_all(sock, 10) == SHUTDOWN_421
    assert srv.wait(15) is not None
    assert time.monotonic() - sent < 12
    time.sleep(0.3)
    assert [pid for pid in recorder.pids() if alive(pid)] == []
    assert started["sid"] == started["pid"]  # a session (and process group) of its own


@pytest.mark.parametrize("runner", RUNNERS)
def test_second_signal_ends_the_grace_period(runner: str, server: Any,
                                             recorder: Recorder) -> None:
    srv = server(runner, [f"--command={recorder.command()}", "--shutdown-timeout=60"])
    with send_mail(srv.port, mail_of(10_000), "hang-60@x") as sock:
        assert recorder.wait(kind="child", timeout=15)
        srv.signal(signal.SIGTERM)
        srv.wait_closed()  # the shutdown has begun
        sent = srv.signal(signal.SIGINT)
        reply = read_reply(sock, timeout=20)
        assert reply == b"451 Pipe command stopped at server shutdown, try again later\r\n"
        assert time.monotonic() - sent < 5
    assert srv.wait(15) is not None
    assert "Traceback" not in srv.output()
    time.sleep(0.3)
    assert [pid for pid in recorder.pids() if alive(pid)] == []


def test_inetd_signal_during_delivery(recorder: Recorder, tmp_path: Path) -> None:
    """--inetd: the mail being piped is finished and answered, then 421, exit 1."""
    mail = mail_of(512_000)
    wire = (b"EHLO x\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<sleep-2@x>\r\nDATA\r\n"
            + mail + b".\r\nQUIT\r\n")
    wire_file = tmp_path / "wire"
    wire_file.write_bytes(wire)
    with open(wire_file, "rb") as stdin:
        proc = subprocess.Popen([*msmtpd_program(), "--inetd",
                                 f"--command={recorder.command()}"],
                                stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=ours_env(dict(os.environ)), cwd=tmp_path,
                                start_new_session=True)
    try:
        assert recorder.wait(kind="started", timeout=15), "the command did not start"
        os.kill(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert out.endswith(b"354 Send data\r\n250 Ok, mail was piped\r\n" + SHUTDOWN_421), out
    assert proc.returncode == 1, err
    [record] = recorder.wait(timeout=15)
    piped = mail.replace(b"\r\n", b"\n")
    assert record["body_sha256"] == hashlib.sha256(piped).hexdigest()


# --- item 1: the command's process group ----------------------------------------------------


@pytest.mark.parametrize("kind", ["msmtpd", "twistd",
                                  pytest.param("debian", marks=pytest.mark.reference)])
def test_leftover_child_does_not_hold_the_reply(kind: str, server: Any,
                                                recorder: Recorder) -> None:
    """The command saved the mail and exited 0, leaving ``sleep`` behind with its
    standard error: its exit status decides, at once (as Debian's msmtpd does)."""
    srv = server(kind, [f"--command={recorder.command()}"])
    with send_mail(srv.port, mail_of(1000), "leave-child-30@x") as sock:
        start = time.monotonic()
        reply = read_reply(sock, timeout=10)
        took = time.monotonic() - start
        answered_at = time.time()
    assert reply == b"250 Ok, mail was piped\r\n"
    [record] = recorder.wait(timeout=15)
    assert answered_at - record["exited_at"] < 1.5  # ours: 0.2 s for stderr, then done
    assert took < 5, took  # the command's start included
    [child] = recorder.records("child")
    assert alive(child["pid"])  # a finished command's leftovers are not ours to kill


def test_leftover_children_do_not_lock_anyone_out(server: Any, recorder: Recorder) -> None:
    """17 sessions in a row, each leaving a child behind: none keeps its slot."""
    srv = server("msmtpd", [f"--command={recorder.command()}",
                            "--max-sessions=16"])
    start = time.monotonic()
    for n in range(17):
        with send_mail(srv.port, b"Subject: n\r\n\r\nx\r\n", "leave-child-30@x") as sock:
            assert read_reply(sock, timeout=5) == b"250 Ok, mail was piped\r\n", n
            sock.sendall(b"QUIT\r\n")
            assert read_all(sock, 5) == b"221 Bye\r\n"
    assert time.monotonic() - start < 40
    with socket.create_connection(("127.0.0.1", srv.port)) as sock:
        assert read_reply(sock).startswith(b"220 ")
    assert len(recorder.records("child")) == 17


@pytest.mark.parametrize("runner", RUNNERS)
def test_command_timeout_kills_the_whole_group(runner: str, server: Any,
                                               recorder: Recorder) -> None:
    srv = server(runner, [f"--command={recorder.command()}",
                          "--command-timeout=1"])
    with send_mail(srv.port, mail_of(1000), "wait-child-30@x") as sock:
        start = time.monotonic()
        reply = read_reply(sock, timeout=15)
        took = time.monotonic() - start
        assert reply == b"451 Pipe command timed out\r\n"
        assert took < 5, took
        sock.sendall(b"NOOP\r\n")
        assert read_reply(sock) == b"250 Ok\r\n"
    time.sleep(0.3)
    assert recorder.pids() and [pid for pid in recorder.pids() if alive(pid)] == []


# --- item 3: clients that never read, or send a byte at a time ------------------------------


@pytest.mark.parametrize("runner", ["twistd"])  # one runner: see RUNNERS
def test_client_that_never_reads_is_dropped_after_the_idle_timeout(runner: str, server: Any,
                                                                   recorder: Recorder) -> None:
    """It pipelines NOOPs until the socket buffers are full and reads nothing:
    after the idle timeout (2 s) and the 5 s the 421 may take, it is cut off and
    its session slot (the only one) is free again."""
    srv = server(runner, [f"--command={recorder.command()}", "--idle-timeout=2",
                          "--max-sessions=1"])
    hog = socket.create_connection(("127.0.0.1", srv.port))
    try:
        hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        hog.settimeout(2)
        block = b"NOOP\r\n" * 10000
        sent = 0
        with pytest.raises(TimeoutError):
            while sent < 200 * len(block):
                hog.sendall(block)
                sent += len(block)
        blocked = time.monotonic()
        with socket.create_connection(("127.0.0.1", srv.port)) as other:
            assert read_reply(other).startswith(b"421 Too many")  # the hog holds the slot
        deadline = blocked + 2 + 5 + 10
        greeting = b""
        while time.monotonic() < deadline:
            with socket.create_connection(("127.0.0.1", srv.port)) as other:
                greeting = read_reply(other)
            if greeting.startswith(b"220 "):
                break
            time.sleep(0.5)
        assert greeting.startswith(b"220 "), greeting
        assert time.monotonic() - blocked > 1.5
    finally:
        hog.close()


@pytest.mark.parametrize("runner", ["msmtpd"])  # one runner: see RUNNERS
def test_slowloris_command_line_is_dropped(runner: str, server: Any, recorder: Recorder) -> None:
    srv = server(runner, [f"--command={recorder.command()}", "--request-timeout=2",
                          "--min-data-rate=500", "--idle-timeout=60"])
    with socket.create_connection(("127.0.0.1", srv.port)) as sock:
        assert read_reply(sock).startswith(b"220 ")
        sock.settimeout(0.5)
        start = time.monotonic()
        got = b""
        for byte in b"EHLO " + b"x" * 100:  # one byte every 0.25 s
            try:
                sock.sendall(bytes([byte]))
                got += sock.recv(1000)
            except TimeoutError:
                continue
            except OSError:
                break
            if got.endswith(b"\r\n") or not got:
                break
            if time.monotonic() - start > 15:
                break
        took = time.monotonic() - start
    assert got == b"421 Timeout, closing connection\r\n", got
    assert 1.5 < took < 6, took


@pytest.mark.parametrize("runner", ["twistd"])  # one runner: see RUNNERS
def test_slowloris_mail_is_dropped_and_not_delivered(runner: str, server: Any,
                                                     recorder: Recorder) -> None:
    srv = server(runner, [f"--command={recorder.command()}", "--request-timeout=2",
                          "--min-data-rate=500"])
    with start_mail(srv.port) as sock:
        start = time.monotonic()
        sock.settimeout(0.25)
        got = b""
        while time.monotonic() - start < 15 and not got:
            try:
                sock.sendall(b"x")
                got = sock.recv(1000)
            except TimeoutError:
                continue
            except OSError:
                break
        took = time.monotonic() - start
    assert got == b"421 Timeout, closing connection\r\n", got
    assert 1.5 < took < 6, took
    time.sleep(0.3)
    assert recorder.records("started") == []


def test_slow_but_steady_mail_goes_through(server: Any, recorder: Recorder) -> None:
    """2 KB a second for 5 s: slower than the request timeout alone, faster
    than the minimum rate, so it is not cut off."""
    srv = server("msmtpd", [f"--command={recorder.command()}", "--request-timeout=2",
                            "--min-data-rate=500"])
    line = b"x" * 198 + b"\r\n"
    with start_mail(srv.port) as sock:
        for _ in range(50):
            sock.sendall(line)
            time.sleep(0.1)
        sock.sendall(b".\r\n")
        assert read_reply(sock, timeout=10) == b"250 Ok, mail was piped\r\n"
    [record] = recorder.wait(timeout=15)
    assert record["body_size"] == 50 * 199


# --- item 15: one daemon, one option table ------------------------------------------------


def test_port_wraps_like_msmtpd(recorder: Recorder, tmp_path: Path) -> None:
    """msmtpd hands atoi()'s int to htons(): --port=N+65536 listens on N (before:
    an OverflowError traceback)."""
    port = free_port()
    proc = subprocess.Popen([*msmtpd_program(), f"--port={port + 65536}",
                             f"--command={recorder.command()}"],
                            env=ours_env(dict(os.environ)), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 15
        greeting = b""
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                    greeting = read_reply(sock)
                break
            except OSError:
                time.sleep(0.1)
        assert greeting.startswith(b"220 "), proc.poll()
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert err == b""


@pytest.mark.parametrize("path", ["posix_spawn", "fork"])
def test_command_runs_in_a_session_of_its_own(path: str, recorder: Recorder,
                                              tmp_path: Path) -> None:
    """Both ways Twisted starts a process (posix_spawnp, or fork where that
    cannot be used) give the command its own session; the mail is whole."""
    script = f"""
import sys
from twisted.internet import process, reactor
from msmtp_twisted.daemon.command import PipeCommand
from msmtp_twisted.daemon.delivery import Spool, start_delivery
if {path == "fork"!r}:
    process._getFileActions = None
spool = Spool()
spool.write(b"Received: x\\r\\n\\tby y;\\r\\n\\tdate\\r\\nbody\\n")
argv = PipeCommand.parse({recorder.command()!r}).argv("a@b", ["c@d"])
d = start_delivery(reactor, argv, spool, timeout=10, devnull=1).result
d.addCallback(lambda r: print(r.code))
d.addBoth(lambda _: reactor.stop())
reactor.run()
"""
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=ours_env(dict(os.environ)), cwd=tmp_path, timeout=60)
    assert res.stdout.strip() == "250", res.stderr
    [started] = recorder.records("started")
    assert started["sid"] == started["pid"] == started["pgid"]
    [mail] = recorder.records("mail")
    assert mail["body_size"] == len(b"body\n")
