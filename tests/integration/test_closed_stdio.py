"""Started without a standard descriptor (``<&-``, ``>&-``, ``2>&-``, as cron,
mail clients and init systems sometimes do): no traceback, msmtp 1.8.23's exit
codes, a closed standard input read as an empty mail (what 1.8.23 does), and
no file the program opens later lands on descriptor 0, 1 or 2."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, ours_command, ours_env
from tests.servers.msmtp import write_config

MAIL = b"Subject: closed\n\nbody\n"
MSMTPQ = [sys.executable, "-m", "msmtp_twisted.msmtpq"]
MSMTPD = [sys.executable, "-m", "msmtp_twisted.daemon"]


def _closing(*fds: int) -> Callable[[], None]:
    def close() -> None:  # in the child, after subprocess has set 0, 1 and 2 up
        for fd in fds:
            os.close(fd)
    return close


def _run(command: list[str], args: list[str], closed: tuple[int, ...], tmp: Path,
         env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*command, *args], input=None if 0 in closed else MAIL,
                          stdin=subprocess.DEVNULL if 0 in closed else None,
                          capture_output=True, timeout=60, cwd=tmp,
                          env={"HOME": str(tmp), "PATH": "/usr/bin:/bin", **env},
                          preexec_fn=_closing(*closed))


def _rc(tmp: Path, port: int, **settings: Any) -> str:
    return str(write_config(tmp, ("127.0.0.1", port), from_="a@example.org", timeout=10,
                            **settings))


CASES = [
    ("stdin closed", (0,), ["x@example.org"]),
    ("stdout closed", (1,), ["x@example.org"]),
    ("stderr closed", (2,), ["x@example.org"]),
    ("all closed", (0, 1, 2), ["x@example.org"]),
    ("stdout closed, --pretend", (1,), ["--pretend", "x@example.org"]),
    ("stdout and stderr closed, --version", (1, 2), ["--version"]),
]


@pytest.mark.parametrize(("name", "closed", "args"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("refused", [False, True], ids=["delivered", "refused"])
def test_like_msmtp(name: str, closed: tuple[int, ...], args: list[str], refused: bool,
                    real_msmtp: str, server_factory: Any, tmp_path: Path) -> None:
    from tests.servers.recording import RecordingServer

    results = []
    for who, command, env in (("real", [real_msmtp], {}),
                              ("ours", ours_command(), ours_env({}))):
        server = server_factory(RecordingServer,
                                replies={"RCPT": "550 5.1.1 no"} if refused else {})
        tmp = tmp_path / who
        tmp.mkdir()
        proc = _run(command, ["-C", _rc(tmp, server.port), *args], closed, tmp, env)
        server.wait_idle()
        data = [m.data_bytes().split(b"\r\n")[0] for m in server.messages]
        err = proc.stderr.replace(real_msmtp.encode(), b"msmtp").replace(bytes(tmp), b"TMP")
        results.append((proc.returncode, data, err))
    (real_code, real_data, real_err), (code, data, err) = results
    assert b"Traceback" not in err
    assert code == real_code
    assert len(data) == len(real_data)
    if 0 in closed and data:
        assert data[0].startswith(b"From: a@example.org")  # an empty mail, headers added
    if 2 not in closed:
        assert err == real_err


@pytest.mark.parametrize("closed", [(0,), (1,), (2,), (0, 1, 2)])
def test_msmtpq_queues_with_a_closed_descriptor(closed: tuple[int, ...],
                                                tmp_path: Path) -> None:
    # nothing listens on port 1: the mail is queued, exit 0
    proc = _run(MSMTPQ, ["-C", _rc(tmp_path, 1), "x@example.org"], closed, tmp_path,
                ours_env({"MSMTP_QUEUE": str(tmp_path / "q")}))
    assert proc.returncode == 0, proc.stderr
    assert b"Traceback" not in proc.stderr
    assert len(list((tmp_path / "q").glob("*.json"))) == 1


def test_a_child_never_writes_into_a_file_that_took_a_free_descriptor(
        server_factory: Any, tmp_path: Path) -> None:
    """With descriptor 2 closed, the next file opened (the log, the server's
    socket) would take it, and passwordeval's standard error would go there;
    now 2 is /dev/null."""
    from tests.servers.recording import RecordingServer

    server = server_factory(RecordingServer, auth={"u": "secret"})
    log = tmp_path / "log"
    rc = _rc(tmp_path, server.port, logfile=log, auth="plain", user="u",
             passwordeval="echo NOISE >&2; echo secret")
    proc = _run(ours_command(), ["-C", rc, "x@example.org"], (2,), tmp_path, ours_env({}))
    server.wait_idle()
    assert proc.returncode == 0
    assert not any("NOISE" in c for c in server.commands)
    assert b"NOISE" not in log.read_bytes()


def test_msmtpd_starts_without_standard_descriptors(tmp_path: Path) -> None:
    proc = subprocess.run([*MSMTPD, "--version"], capture_output=True, timeout=60,
                          env=ours_env({"PATH": "/usr/bin:/bin"}), cwd=ROOT,
                          preexec_fn=_closing(0, 1))
    assert proc.returncode == 0
    assert b"Traceback" not in proc.stderr
