"""pytest fixtures for the test servers.

Load them with ``pytest_plugins = ["tests.servers.fixtures"]`` (in the top-level
``tests/conftest.py``, or in a test module), then::

    def test_x(recording_server, run_real_msmtp):
        res = run_real_msmtp(recording_server, ["rcpt@example.org"])
        recording_server.wait_idle()
        assert recording_server.message.recipients == ["rcpt@example.org"]

Every server a fixture starts is stopped (threads joined, sockets closed) at teardown.

For msmtpd (:mod:`tests.servers.msmtpd`)::

    def test_y(msmtpd, recorder):
        d = msmtpd([f"--command={recorder.command()}", "--idle-timeout=8"])  # or "twistd"...
        assert converse(d.port, [b"EHLO x\r\n"])[-1][:3] == b"250"
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.servers.base import ThreadedServer
from tests.servers.hostile import HostileServer
from tests.servers.msmtp import DEFAULT_MAIL, REAL_MSMTP, MsmtpResult, run_msmtp, write_config
from tests.servers.msmtpd import MsmtpdProcess, Recorder, require_debian_msmtpd
from tests.servers.proxy import DelayProxy
from tests.servers.recording import RecordingServer
from tests.servers.secretservice import secret_service  # noqa: F401  (a fixture)
from tests.servers.slapd import slapd  # noqa: F401  (a fixture)


@pytest.fixture
def server_factory() -> Iterator[Callable[..., Any]]:
    """``make(cls=RecordingServer, **kwargs)``: start a server, stopped at teardown."""
    started: list[ThreadedServer] = []

    def make(cls: type[ThreadedServer] = RecordingServer, /, *args: Any,
             **kwargs: Any) -> Any:
        server = cls(*args, **kwargs)
        server.start()
        started.append(server)
        return server

    yield make
    for server in reversed(started):
        server.stop()
    for server in started:
        server.raise_errors()  # a bug in a server thread fails the test (as an error)


@pytest.fixture
def recording_server(server_factory: Callable[..., Any]) -> RecordingServer:
    """A default SMTP RecordingServer on 127.0.0.1."""
    return server_factory(RecordingServer)


@pytest.fixture
def lmtp_server(server_factory: Callable[..., Any]) -> RecordingServer:
    """A default LMTP RecordingServer on 127.0.0.1."""
    return server_factory(RecordingServer, protocol="lmtp")


@pytest.fixture
def hostile_server(server_factory: Callable[..., Any]) -> Callable[..., HostileServer]:
    """``make(mode, **options)``: a started HostileServer."""
    return lambda mode, **kwargs: server_factory(HostileServer, mode, **kwargs)


@pytest.fixture
def delay_proxy(server_factory: Callable[..., Any]) -> Callable[..., DelayProxy]:
    """``make(target, delay=0.05, ...)``: a started DelayProxy in front of ``target``."""
    return lambda target, **kwargs: server_factory(DelayProxy, target, **kwargs)


@pytest.fixture
def msmtp_config(tmp_path: Path) -> Callable[..., Path]:
    """``make(server, **settings)``: write an msmtp config (0600) in tmp_path."""
    counter = iter(range(1_000_000))
    return lambda server, **settings: write_config(
        tmp_path, server, name=f"msmtprc-{next(counter)}", **settings)


def _runner(command: Sequence[str], tmp_path: Path,
            env: Mapping[str, str] | None = None) -> Callable[..., MsmtpResult]:
    counter = iter(range(1_000_000))

    def run(server: Any, args: Sequence[str] = ("rcpt@example.org",), *,
            input: bytes = DEFAULT_MAIL, run_timeout: float = 15.0,
            **settings: Any) -> MsmtpResult:
        config = write_config(tmp_path, server, name=f"msmtprc-{next(counter)}", **settings)
        return run_msmtp(command, config, args, input=input, timeout=run_timeout, env=env)

    return run


@pytest.fixture
def run_real_msmtp(real_msmtp: str, tmp_path: Path) -> Callable[..., MsmtpResult]:
    """``run(server, args=("rcpt@example.org",), input=..., run_timeout=15, **settings)``
    with /usr/bin/msmtp (needs the ``real_msmtp`` fixture of tests/conftest.py);
    ``settings`` are msmtp config settings (``timeout=2`` is msmtp's own timeout)."""
    return _runner([real_msmtp], tmp_path)


@pytest.fixture
def msmtp_runner(tmp_path: Path) -> Callable[..., Callable[..., MsmtpResult]]:
    """``msmtp_runner(command, env=None)`` -> ``run(server, args, **settings)`` for any
    binary, e.g. ``msmtp_runner(ours_command(), env=ours_env({}))``."""
    return lambda command, env=None: _runner(command, tmp_path, env)


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[Recorder]:
    """The recording pipe command for msmtpd; what its runs left running is killed
    (by pid) at teardown."""
    rec = Recorder(tmp_path)
    yield rec
    rec.cleanup()


@pytest.fixture
def msmtpd(tmp_path: Path) -> Iterator[Callable[..., MsmtpdProcess]]:
    """``start(args, program="ours", **options)``: a started
    :class:`~tests.servers.msmtpd.MsmtpdProcess` (``program``: ``"ours"``,
    ``"msmtpd"``, ``"twistd"``, ``"debian"`` or an argv), stopped at teardown."""
    started: list[MsmtpdProcess] = []

    def start(args: Sequence[str], program: str | Sequence[str] = "ours",
              **options: Any) -> MsmtpdProcess:
        d = MsmtpdProcess(program, args, tmp_path, **options)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()


@pytest.fixture
def ours(msmtpd: Callable[..., MsmtpdProcess], recorder: Recorder) -> MsmtpdProcess:
    """Our msmtpd with the recorder as its command, default options otherwise."""
    return msmtpd([f"--command={recorder.command()}"])


@pytest.fixture(scope="session")
def debian_msmtpd() -> str:
    """The path of Debian's msmtpd 1.8.23 (marks the test ``reference``)."""
    return require_debian_msmtpd()


__all__ = ["REAL_MSMTP", "debian_msmtpd", "delay_proxy", "hostile_server", "lmtp_server",
           "msmtp_config", "msmtp_runner", "msmtpd", "ours", "recorder", "recording_server",
           "run_real_msmtp", "server_factory", "slapd"]
