"""msmtp and msmtpq signalled while they wait for a server: they end as msmtp
1.8.23 ends (killed by the signal, so a shell loop or ``make`` running them
stops too), print no traceback, and deliver nothing."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ours_command, ours_env
from tests.servers.msmtp import write_config

MSMTPQ = [sys.executable, "-m", "msmtp_twisted.msmtpq"]


@pytest.fixture
def silent_server() -> Iterator[socket.socket]:
    """A listening socket that never accepts: a server that never says a word."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(50)
        yield s


def _signalled(command: list[str], env: dict[str, str], server: socket.socket, sig: int,
               tmp: Path) -> subprocess.CompletedProcess[bytes]:
    port = server.getsockname()[1]
    tmp.mkdir()
    rc = write_config(tmp, ("127.0.0.1", port), from_="a@b.example", timeout=30)
    proc = subprocess.Popen([*command, "-C", str(rc), "x@y.example"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={"HOME": str(tmp), "PATH": "/usr/bin:/bin",
                                 "MSMTP_QUEUE": str(tmp / "q"), **env})
    assert proc.stdin is not None
    proc.stdin.write(b"Subject: s\n\nbody\n")
    proc.stdin.close()
    proc.stdin = None  # communicate() below must not flush it
    # connected (the connection waits in the backlog), so waiting for the greeting
    assert select.select([server], [], [], 20)[0], "the client never connected"
    conn, _ = server.accept()
    time.sleep(0.2)
    assert proc.poll() is None
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=20)
    conn.close()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                         ids=["INT", "TERM", "HUP"])
def test_msmtp_dies_of_the_signal_like_msmtp(sig: int, real_msmtp: str,
                                             silent_server: socket.socket,
                                             tmp_path: Path) -> None:
    real = _signalled([real_msmtp], {}, silent_server, sig, tmp_path / "real")
    ours = _signalled(ours_command(), ours_env({}), silent_server, sig, tmp_path / "ours")
    assert real.returncode == -sig
    assert ours.returncode == real.returncode
    assert (ours.stdout, ours.stderr) == (real.stdout, real.stderr) == (b"", b"")


def test_msmtpq_interrupted_dies_of_sigint(silent_server: socket.socket,
                                           tmp_path: Path) -> None:
    proc = _signalled(MSMTPQ, ours_env({}), silent_server, signal.SIGINT, tmp_path / "q")
    assert proc.returncode == -signal.SIGINT
    assert b"Traceback" not in proc.stderr


def _at_the_prompt(command: list[str], env: dict[str, str], port: int, tmp: Path,
                   then: bytes | int) -> tuple[int, int, int]:
    """Run until the password prompt, then type ``then`` or send that signal:
    (exit status, local modes at the prompt, local modes afterwards)."""
    tmp.mkdir()
    rc = write_config(tmp, ("127.0.0.1", port), from_="a@b.example", auth="plain", user="u",
                      timeout=30)
    master, slave = pty.openpty()

    def controlling_terminal() -> None:  # in the child, after setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    try:
        proc = subprocess.Popen([*command, "-C", str(rc), "x@y.example"],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=controlling_terminal, pass_fds=(slave,),
                                env={"HOME": str(tmp), "PATH": "/usr/bin:/bin", **env})
    finally:
        os.close(slave)
    try:
        assert proc.stdin is not None
        proc.stdin.write(b"Subject: s\n\nbody\n")
        proc.stdin.close()
        proc.stdin = None
        shown = b""
        deadline = time.monotonic() + 20
        while b"password for" not in shown and time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                shown += os.read(master, 4096)
        assert b"password for" in shown
        time.sleep(0.3)  # the prompt may be written before the modes change
        at_prompt = termios.tcgetattr(master)[3]
        if isinstance(then, bytes):
            os.write(master, then)
        else:
            proc.send_signal(then)
        status = proc.wait(timeout=20)
        after = termios.tcgetattr(master)[3]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return status, at_prompt, after


MODES = termios.ECHO | termios.ISIG


def test_password_prompt_like_msmtp(real_msmtp: str, server_factory: Any,
                                    tmp_path: Path) -> None:
    """No echo and no signals from the keyboard while the password is typed
    (glibc's getpass, which msmtp uses: Ctrl-C is a character there); both back
    afterwards; the password typed is used."""
    from tests.servers.recording import RecordingServer

    server = server_factory(RecordingServer, auth={"u": "p"})
    real = _at_the_prompt([real_msmtp], {}, server.port, tmp_path / "real", b"p\n")
    ours = _at_the_prompt(ours_command(), ours_env({}), server.port, tmp_path / "ours",
                          b"p\n")
    assert real[0] == ours[0] == 0
    assert real[1] & MODES == ours[1] & MODES == 0
    assert real[2] & MODES == ours[2] & MODES == MODES
    server.wait_idle()
    assert len(server.messages) == 2


def test_sigint_at_the_password_prompt(real_msmtp: str, server_factory: Any,
                                       tmp_path: Path) -> None:
    """A SIGINT from elsewhere kills both; ours turns the echo back on first
    (msmtp leaves the terminal without echo)."""
    from tests.servers.recording import RecordingServer

    server = server_factory(RecordingServer, auth={"u": "p"})
    real = _at_the_prompt([real_msmtp], {}, server.port, tmp_path / "real", signal.SIGINT)
    ours = _at_the_prompt(ours_command(), ours_env({}), server.port, tmp_path / "ours",
                          signal.SIGINT)
    assert real[0] == ours[0] == -signal.SIGINT
    assert ours[2] & MODES == MODES
    server.wait_idle()
    assert server.messages == []
