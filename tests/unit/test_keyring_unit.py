"""msmtp_twisted.auth.keyring without a Secret Service: bus addresses, time bounds,
the Python keyring step, lazy imports."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from msmtp_twisted.auth import keyring as kr
from msmtp_twisted.auth.keyring import (
    keyring_backend,
    keyring_lookup,
    keyring_lookup_verbose,
    session_bus_socket,
)

ROOT = Path(__file__).resolve().parents[2]
HOST = "mail.example.com"
USER = "alice"

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def no_session_bus(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No D-Bus and no keyring configuration of the machine's user."""
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)


# ------------------------------------------------------------------ bus addresses
@pytest.mark.parametrize(("address", "expected"), [
    ("unix:path=/run/user/1000/bus", "/run/user/1000/bus"),
    ("unix:path=/tmp/a%20b%2cc,guid=0123", "/tmp/a b,c"),
    ("unix:abstract=/tmp/dbus-XYZ,guid=0123", "\0/tmp/dbus-XYZ"),
    ("tcp:host=127.0.0.1,port=1;unix:path=/second", "/second"),
    ("autolaunch:", None),
    ("tcp:host=127.0.0.1,port=1", None),
    ("unix:tmpdir=/tmp", None),
    ("garbage", None),
])
def test_session_bus_socket_from_address(address: str, expected: str | None) -> None:
    assert session_bus_socket({"DBUS_SESSION_BUS_ADDRESS": address}) == expected


def test_session_bus_socket_falls_back_to_runtime_dir(tmp_path: Path) -> None:
    assert session_bus_socket({}) is None
    assert session_bus_socket({"XDG_RUNTIME_DIR": str(tmp_path)}) is None
    (tmp_path / "bus").write_text("not a socket")
    assert session_bus_socket({"XDG_RUNTIME_DIR": str(tmp_path)}) is None
    (tmp_path / "bus").unlink()
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(tmp_path / "bus"))
        env = {"XDG_RUNTIME_DIR": str(tmp_path)}
        assert session_bus_socket(env) == str(tmp_path / "bus")
        # an address, even an empty-handed one, wins over the fallback (as libdbus)
        env["DBUS_SESSION_BUS_ADDRESS"] = "unix:path=/nonexistent/bus"
        assert session_bus_socket(env) == "/nonexistent/bus"
        env["DBUS_SESSION_BUS_ADDRESS"] = ""
        assert session_bus_socket(env) == str(tmp_path / "bus")


def test_keyring_backend(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert keyring_backend() is None
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={tmp_path}/missing")
    assert keyring_backend() is None
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:abstract=/tmp/dbus-x")
    assert keyring_backend() == "Secret Service"
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS")
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    assert keyring_backend() is None
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    assert keyring_backend() == "Python keyring"


def test_nothing_heavy_imported() -> None:
    """Importing the module and keyring_backend() import neither secretstorage, jeepney,
    keyring nor cryptography (start-up time)."""
    code = ("import sys, os; os.environ['DBUS_SESSION_BUS_ADDRESS'] = 'unix:abstract=x';"
            "import msmtp_twisted.auth.keyring as k; assert k.keyring_backend();"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in"
            " ('secretstorage', 'jeepney', 'keyring', 'cryptography')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# -------------------------------------------------------------------- time bounds
def test_no_bus_at_all_is_quick() -> None:
    keyring_lookup(HOST, USER)  # warm up: the first call imports keyring
    start = time.monotonic()
    password, notes = keyring_lookup_verbose(HOST, USER)
    assert password is None
    assert time.monotonic() - start < 0.5
    assert any("no D-Bus session bus" in n for n in notes), notes


def test_bus_socket_missing_is_quick(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={tmp_path}/no-such-socket")
    keyring_lookup(HOST, USER)
    start = time.monotonic()
    password, notes = keyring_lookup_verbose(HOST, USER, timeout=5)
    assert password is None
    assert time.monotonic() - start < 0.5
    assert any("FileNotFoundError" in n for n in notes), notes


def test_first_call_without_bus_in_a_fresh_process_is_quick(tmp_path: Path) -> None:
    """Cold: python start-up, imports and keyring's backend choice included."""
    code = ("import time; t = time.monotonic();"
            "from msmtp_twisted.auth.keyring import keyring_lookup;"
            "assert keyring_lookup('h', 'u') is None; print(time.monotonic() - t)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                                           "HOME": str(tmp_path),
                                           "DBUS_SESSION_BUS_ADDRESS":
                                           f"unix:path={tmp_path}/none"})
    assert proc.returncode == 0, proc.stderr
    # a missing bus must not cost D-Bus's 25 s timeout; 1 s was exceeded once on
    # a machine loaded by three test runs, hence the margin
    assert float(proc.stdout) < 2.5


class SilentListener:
    """A unix socket that listens (connections complete) but never says a word."""

    def __init__(self, path: Path, *, accept: bool) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(str(path))
        self.sock.listen(8)
        self.conns: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        if accept:
            self.sock.settimeout(0.05)
            self.thread = threading.Thread(target=self._accept, daemon=True)
            self.thread.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(conn)

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(5)
        for conn in self.conns:
            conn.close()
        self.sock.close()


@pytest.fixture(params=["accepts", "never-accepts"])
def silent_bus(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
               tmp_path: Path) -> Iterator[SilentListener]:
    path = tmp_path / "bus"
    listener = SilentListener(path, accept=request.param == "accepts")
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={path}")
    yield listener
    listener.close()


def test_silent_bus_peer_is_bounded(silent_bus: SilentListener) -> None:
    keyring_lookup(HOST, USER, timeout=0.01)  # warm up imports
    start = time.monotonic()
    password, notes = keyring_lookup_verbose(HOST, USER, timeout=0.7)
    elapsed = time.monotonic() - start
    assert password is None
    assert 0.6 < elapsed < 1.2, elapsed
    assert any("no answer in time" in n for n in notes), notes


def test_zero_timeout_returns_at_once(silent_bus: SilentListener) -> None:
    start = time.monotonic()
    assert keyring_lookup(HOST, USER, timeout=0) is None
    assert time.monotonic() - start < 0.2


def test_peer_that_hangs_up(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "bus"
    with socket.socket(socket.AF_UNIX) as lsock:
        lsock.bind(str(path))
        lsock.listen(1)

        def hang_up() -> None:
            conn, _ = lsock.accept()
            conn.close()

        t = threading.Thread(target=hang_up, daemon=True)
        t.start()
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={path}")
        start = time.monotonic()
        assert keyring_lookup(HOST, USER, timeout=5) is None
        assert time.monotonic() - start < 1
        t.join(5)


# ---------------------------------------------------------- the Python keyring step
keyring = pytest.importorskip("keyring")
from keyring.backend import KeyringBackend  # noqa: E402


class MemoryKeyring(KeyringBackend):
    """An in-memory keyring backend (like keyrings.alt's, without a file).

    keyring registers every subclass of KeyringBackend as a candidate for its automatic
    choice: a priority below the fail backend's (0) keeps these test backends out of it
    (they are used only through ``keyring.set_keyring``)."""

    priority = -1  # type: ignore[assignment]

    def __init__(self, entries: dict[tuple[str, str], str] | None = None) -> None:
        super().__init__()
        self.entries = dict(entries or {})
        self.asked: list[tuple[str, str]] = []

    def get_password(self, service: str, username: str) -> str | None:
        self.asked.append((service, username))
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[service, username] = password

    def delete_password(self, service: str, username: str) -> None:
        del self.entries[service, username]


class BrokenKeyring(MemoryKeyring):
    def get_password(self, service: str, username: str) -> str | None:
        raise RuntimeError("backend exploded")


class HangingKeyring(MemoryKeyring):
    release = threading.Event()

    def get_password(self, service: str, username: str) -> str | None:
        self.release.wait(10)
        return "too late"


@pytest.fixture
def use_keyring() -> Iterator[object]:
    """``use_keyring(backend)``: make it keyring's backend for the test."""
    previous = keyring.get_keyring()
    yield keyring.set_keyring
    keyring.set_keyring(previous)


def test_keyring_host_then_url(use_keyring: object) -> None:
    backend = MemoryKeyring({(HOST, USER): "by-host", (f"smtp://{HOST}", USER): "by-url"})
    keyring.set_keyring(backend)
    password, notes = keyring_lookup_verbose(HOST, USER)
    assert password == "by-host"
    assert backend.asked == [(HOST, USER)]
    assert "by-host" not in " ".join(notes)
    backend.entries.pop((HOST, USER))
    assert keyring_lookup(HOST, USER) == "by-url"
    assert keyring_lookup(HOST, USER, "pop3") is None
    assert backend.asked[-2:] == [(HOST, USER), (f"pop3://{HOST}", USER)]
    assert keyring_lookup(HOST, "bob") is None


def test_keyring_unicode_password(use_keyring: object) -> None:
    keyring.set_keyring(MemoryKeyring({(HOST, USER): " pässwörd 🔑 "}))
    assert keyring_lookup(HOST, USER) == " pässwörd 🔑 "


def test_keyring_broken_backend(use_keyring: object) -> None:
    keyring.set_keyring(BrokenKeyring())
    password, notes = keyring_lookup_verbose(HOST, USER)
    assert password is None
    assert any("backend exploded" in n for n in notes), notes


def test_keyring_hanging_backend_is_bounded(use_keyring: object) -> None:
    keyring.set_keyring(HangingKeyring())
    try:
        start = time.monotonic()
        password, notes = keyring_lookup_verbose(HOST, USER, timeout=0.5)
        elapsed = time.monotonic() - start
    finally:
        HangingKeyring.release.set()
    assert password is None
    assert 0.4 < elapsed < 1.0, elapsed
    assert "Python keyring: no answer in time" in notes


def test_keyring_skipped_backends(use_keyring: object) -> None:
    from keyring.backends import SecretService, fail

    for backend in (fail.Keyring(), SecretService.Keyring()):
        keyring.set_keyring(backend)
        password, notes = keyring_lookup_verbose(HOST, USER)
        assert password is None
        assert any("skipping" in n for n in notes), notes


def test_keyring_chainer_members(use_keyring: object) -> None:
    from keyring.backends import chainer, fail

    class Chain(chainer.ChainerBackend):
        priority = -1  # type: ignore[assignment]  # never chosen by keyring itself
        backends = [fail.Keyring(), MemoryKeyring(),  # type: ignore[assignment]
                    MemoryKeyring({(HOST, USER): "second"})]

    keyring.set_keyring(Chain())
    password, notes = keyring_lookup_verbose(HOST, USER)
    assert password == "second"
    assert any("skipping keyring.backends.fail.Keyring" in n for n in notes), notes


def test_skip_reasons() -> None:
    assert kr._skip_reason("keyring.backends.fail.Keyring")
    assert kr._skip_reason("keyring.backends.kwallet.DBusKeyring")
    assert kr._skip_reason("keyrings.alt.file.EncryptedKeyring")
    assert kr._skip_reason("keyrings.alt.file.PlaintextKeyring") is None
    assert kr._skip_reason("keyring.backends.failure.Keyring") is None
