"""``msmtpq`` accepting a mail while the relay is down (issue 12, "no slower than
one msmtp send"): the attempt is a plain socket connect made before Twisted
loads (msmtp_twisted/net/probe.py); an unreachable relay means no reactor at
all, and a relay that answers gets that very connection (one connection, not
two).  What msmtpq prints and logs for the failed attempt is msmtp's, word for
word: each case runs our ``msmtp`` (the usual Twisted path) with the same
configuration and compares.  Real processes, real sockets on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.servers.msmtp import write_config
from tests.servers.ports import free_port
from tests.servers.recording import RecordingServer
from tests.servers.tlspki import PKI

MSMTP = [sys.executable, "-m", "msmtp_twisted"]
MAIL = b"From: a@example.com\nTo: bob@example.org\nSubject: accept\n\nbody\n"

#: runs msmtpq as ``python -m msmtp_twisted.msmtpq`` does and, at exit, writes the
#: names of the modules it loaded to the file named by $MODULES_OUT
_WATCHED = (
    "import atexit, os, runpy, sys\n"
    "def _dump():\n"
    "    with open(os.environ['MODULES_OUT'], 'w') as f:\n"
    "        f.write('\\n'.join(sorted(sys.modules)))\n"
    "atexit.register(_dump)\n"
    "sys.argv[0] = 'msmtpq'\n"
    "runpy.run_module('msmtp_twisted.msmtpq', run_name='__main__', alter_sys=True)\n"
)


class Run:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.queue = tmp / "queue"
        self.env = dict(os.environ, MSMTP_QUEUE=str(self.queue), PYTHONPATH=str(ROOT),
                        MODULES_OUT=str(tmp / "modules"))
        self.env.pop("EMAIL_QUEUE_QUIET", None)

    def msmtpq(self, rc: Path, *args: str, timeout: float = 60
               ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-c", _WATCHED, "-C", str(rc), *args,
                               "bob@example.org"], input=MAIL, capture_output=True,
                              env=self.env, timeout=timeout, cwd=self.tmp)

    def msmtp(self, rc: Path, *args: str, timeout: float = 60
              ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([*MSMTP, "-C", str(rc), *args, "bob@example.org"], input=MAIL,
                              capture_output=True, env=self.env, timeout=timeout, cwd=self.tmp)

    def twisted_loaded(self) -> list[str]:
        names = (self.tmp / "modules").read_text().split()
        return [n for n in names if n == "twisted" or n.startswith(("twisted.", "zope"))]

    def entries(self) -> list[dict[str, object]]:
        return [json.loads(p.read_text()) for p in sorted(self.queue.glob("*.json"))]


@pytest.fixture
def run(tmp_path: Path) -> Run:
    return Run(tmp_path)


@pytest.fixture
def unaccepting() -> Iterator[int]:
    """A port whose listen queue is full: connecting hangs (SYNs dropped) until
    the client's timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        yield port
    finally:
        filler.close()
        listener.close()


def _log_line(path: Path) -> str:
    """The log line without its time stamp."""
    line = path.read_text().splitlines()[-1]
    return line[line.index("host="):]


def _same_as_msmtp(run: Run, settings: dict[str, object], *, code: int,
                   no_twisted: bool = True, timeout: float = 60) -> str:
    """msmtpq queues; its messages, log line and exit code of the attempt are
    those of our msmtp with the same configuration.  Returns the error message."""
    log = run.tmp / "log"
    rc = write_config(run.tmp, settings.pop("server"), logfile=log, **settings)
    ours = run.msmtp(rc, timeout=timeout)
    assert ours.returncode == code, ours.stderr
    logged = _log_line(log)
    queued = run.msmtpq(rc, timeout=timeout)
    assert queued.returncode == 0, queued.stderr
    lines = queued.stderr.decode().splitlines()
    assert re.fullmatch(r"msmtpq: mail queued as \S+ in " + re.escape(str(run.queue)), lines[-1])
    expected = ours.stderr.decode().replace("msmtp: ", "msmtpq: ").splitlines()
    assert lines[:-1] == expected
    assert _log_line(log) == logged
    assert len(log.read_text().splitlines()) == 2
    [entry] = run.entries()
    assert entry["attempts"] == 1 and entry["last_exitcode"] == code
    assert entry["last_error"] == "\n".join(line[len("msmtp: "):] for line in
                                            ours.stderr.decode().splitlines())
    if no_twisted:
        assert run.twisted_loaded() == []
    return expected[0]


def test_refused_loads_no_twisted_and_says_what_msmtp_says(run: Run) -> None:
    port = free_port()
    first = _same_as_msmtp(run, {"server": ("127.0.0.1", port)}, code=75)
    assert first == f"msmtpq: cannot connect to 127.0.0.1, port {port}: Connection refused"


def test_refused_with_source_ip(run: Run) -> None:
    _same_as_msmtp(run, {"server": ("127.0.0.1", free_port()), "source_ip": "127.0.0.1"},
                   code=75)


def test_unknown_host_loads_no_twisted(run: Run) -> None:
    first = _same_as_msmtp(run, {"server": ("nonexistent.invalid", 25)}, code=68)
    assert first.startswith("msmtpq: cannot locate host nonexistent.invalid: ")


def test_connect_timeout_loads_no_twisted(run: Run, unaccepting: int) -> None:
    start = time.monotonic()
    first = _same_as_msmtp(run, {"server": ("127.0.0.1", unaccepting), "timeout": 1},
                           code=75, timeout=30)
    assert first.endswith("Connection timed out")
    assert time.monotonic() - start < 25


def test_tls_account_relay_down(run: Run, tmp_path: Path) -> None:
    pki = PKI(tmp_path / "pki")
    ca = pki.ca("Accept CA")
    _same_as_msmtp(run, {"server": ("127.0.0.1", free_port()), "tls": True,
                         "tls_trust_file": ca.cert}, code=75)


def test_tls_files_unusable_are_reported_first(run: Run) -> None:
    """A missing trust file is a permanent failure reported before connecting, as
    msmtp does, even though the relay is down: nothing queued."""
    rc = write_config(run.tmp, ("127.0.0.1", free_port()), tls=True,
                      tls_trust_file="/nonexistent/ca.pem")
    ours = run.msmtp(rc)
    res = run.msmtpq(rc)
    assert res.returncode == ours.returncode != 0
    assert res.stderr.decode() == ours.stderr.decode().replace("msmtp: ", "msmtpq: ")
    assert run.entries() == []


def test_proxy_goes_the_usual_way(run: Run) -> None:
    """A SOCKS proxy: not tried before Twisted (the proxy's failure is msmtp's)."""
    _same_as_msmtp(run, {"server": ("127.0.0.1", 25), "proxy_host": "127.0.0.1",
                         "proxy_port": free_port()}, code=75, no_twisted=False)


def test_unbindable_source_ip_goes_the_usual_way(run: Run) -> None:
    rc = write_config(run.tmp, ("127.0.0.1", free_port()), source_ip="192.0.2.55")
    ours = run.msmtp(rc)
    res = run.msmtpq(rc)
    assert ours.returncode == 71, ours.stderr  # EX_OSERR: cannot bind, a local problem
    assert res.returncode == 71
    assert res.stderr.decode() == ours.stderr.decode().replace("msmtp: ", "msmtpq: ")
    assert run.entries() == []


def test_relay_up_one_connection(run: Run) -> None:
    with RecordingServer() as server:
        rc = write_config(run.tmp, server, timeout=10)
        res = run.msmtpq(rc)
        assert res.returncode == 0, res.stderr
        assert res.stderr == b""
        server.wait_idle(timeout=10, connections=1)
        assert server.connections_accepted == 1
        assert len(server.messages) == 1
        assert server.messages[0].rcpt_to == ["<bob@example.org>"]
    assert run.entries() == []


def test_relay_up_starttls_over_the_adopted_connection(run: Run, tmp_path: Path) -> None:
    """The adopted socket is a client transport: STARTTLS runs as the client."""
    pki = PKI(tmp_path / "pki")
    ca = pki.ca("Accept CA")
    leaf = pki.leaf(ca, "localhost")
    with RecordingServer(tls_context=leaf.server_context()) as server:
        rc = write_config(run.tmp, server, timeout=10, tls=True, tls_trust_file=ca.cert,
                          tls_host_override="localhost")
        res = run.msmtpq(rc)
        assert res.returncode == 0, res.stderr
        server.wait_idle(timeout=10, connections=1)
        assert server.connections_accepted == 1
        assert len(server.messages) == 1
    assert run.entries() == []


def test_accepting_costs_less_than_a_send(run: Run) -> None:
    """The figure itself, with a wide margin (the bench gives about 0.35): paired
    rounds, msmtpq with the relay down against our msmtp sending to a live server."""
    down = write_config(run.tmp, ("127.0.0.1", free_port()), name="down.rc")
    ratios = []
    with RecordingServer() as server:
        up = write_config(run.tmp, server, name="up.rc", timeout=10)
        for _ in range(7):
            start = time.perf_counter()
            assert run.msmtpq(down).returncode == 0
            queued = time.perf_counter() - start
            start = time.perf_counter()
            assert run.msmtp(up).returncode == 0
            sent = time.perf_counter() - start
            ratios.append(queued / sent)
    assert statistics.median(ratios) < 0.9, ratios
