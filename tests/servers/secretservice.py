"""A real freedesktop Secret Service for tests: GNOME Keyring on a private D-Bus bus.

The fixture :func:`secret_service` starts, under the test's own temporary folder,

* a D-Bus session bus (``dbus-daemon``) with a minimal configuration: no service
  activation, so nothing from ``/usr/share/dbus-1/services`` (not even a second
  gnome-keyring-daemon, nor a GUI prompter) is ever started on it;
* ``gnome-keyring-daemon --foreground --unlock --components=secrets`` on that bus,
  with ``HOME``, ``XDG_RUNTIME_DIR``, ``XDG_DATA_HOME``, ``XDG_CONFIG_HOME`` and
  ``XDG_CACHE_HOME`` in the folder: it creates a ``login`` key ring there (password
  :data:`KEYRING_PASSWORD`), unlocked, the default collection; the real user's key
  ring is never touched.

It waits (bounded) until ``org.freedesktop.secrets`` is on the bus, sets the variables
in ``os.environ`` for the test (restored afterwards, like ``monkeypatch``; ``DISPLAY``,
``WAYLAND_DISPLAY`` and ``PYTHON_KEYRING_BACKEND`` are removed) and yields a
:class:`SecretServiceEnv`: the environment for subprocesses (a ``dict``) with a few
helpers::

    def test_x(secret_service):
        secret_service.store("s3cret", host="mail.example.com", service="smtp", user="me")
        subprocess.run([...], env=secret_service, timeout=10)

At teardown both daemons are stopped by pid (SIGTERM, then SIGKILL, bounded waits).

It needs the Debian packages ``dbus-daemon`` (from ``dbus``), ``gnome-keyring`` and
``libsecret-tools`` (``secret-tool``): without them the test skips on a developer box and
fails when ``CI=true`` (see ``tests.conftest.require``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require

DBUS_DAEMON = "dbus-daemon"
GNOME_KEYRING_DAEMON = "gnome-keyring-daemon"
SECRET_TOOL = "secret-tool"
#: the Debian package of each program
PACKAGES = {DBUS_DAEMON: "dbus (dbus-daemon)", GNOME_KEYRING_DAEMON: "gnome-keyring",
            SECRET_TOOL: "libsecret-tools"}

#: the password of the ``login`` key ring gnome-keyring-daemon creates
KEYRING_PASSWORD = b"test"
SECRETS_NAME = "org.freedesktop.secrets"
SERVICE_PATH = "/org/freedesktop/secrets"
SERVICE_IFACE = "org.freedesktop.Secret.Service"
#: bound for starting (each daemon) and for each helper command
START_TIMEOUT = 10.0
COMMAND_TIMEOUT = 10.0

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""

#: removed from the environment: a GUI to prompt on, or a keyring choice of the user
_UNSET = ("DISPLAY", "WAYLAND_DISPLAY", "PYTHON_KEYRING_BACKEND", "GNOME_KEYRING_CONTROL",
          "SSH_AUTH_SOCK", "DBUS_SYSTEM_BUS_ADDRESS")


class SecretServiceEnv(dict[str, str]):
    """The environment (``os.environ`` plus the bus and folders) for subprocesses."""

    def __init__(self, env: dict[str, str], *, dir: Path, bus_address: str,
                 keyring_pid: int) -> None:
        super().__init__(env)
        #: the folder with HOME, XDG_DATA_HOME (the key rings), logs
        self.dir = dir
        self.bus_address = bus_address
        self.keyring_pid = keyring_pid

    def secret_tool(self, *args: str, input: bytes | None = None,
                    check: bool = True) -> subprocess.CompletedProcess[bytes]:
        """Run ``secret-tool ARGS`` with this environment (bounded)."""
        proc = subprocess.run([SECRET_TOOL, *args], input=input, capture_output=True,
                              env=dict(self), timeout=COMMAND_TIMEOUT)
        if check and proc.returncode != 0:
            raise AssertionError(f"secret-tool {' '.join(args)}: exit {proc.returncode}:"
                                 f" {proc.stderr.decode(errors='replace')}")
        return proc

    def store(self, password: str, *, label: str = "msmtp", **attributes: str) -> None:
        """``secret-tool store --label=LABEL attr value ...`` (password on stdin)."""
        args = [f"--label={label}"]
        for key, value in attributes.items():
            args += [key, value]
        self.secret_tool("store", *args, input=password.encode("utf-8"))

    def lookup(self, **attributes: str) -> str | None:
        """``secret-tool lookup attr value ...``: the secret, or None."""
        args = [a for kv in attributes.items() for a in kv]
        proc = self.secret_tool("lookup", *args, check=False)
        return proc.stdout.decode("utf-8") if proc.returncode == 0 else None

    def keyring_set(self, service: str, user: str, password: str) -> None:
        """Store a password with the Python ``keyring`` package's Secret Service backend,
        in a subprocess (``keyring.set_password``)."""
        env = dict(self)
        env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.SecretService.Keyring"
        code = ("import sys, keyring; keyring.set_password(sys.argv[1], sys.argv[2],"
                " sys.stdin.read())")
        proc = subprocess.run([sys.executable, "-c", code, service, user],
                              input=password.encode("utf-8"), capture_output=True, env=env,
                              timeout=COMMAND_TIMEOUT)
        if proc.returncode != 0:
            raise AssertionError(f"keyring.set_password: exit {proc.returncode}:"
                                 f" {proc.stderr.decode(errors='replace')}")

    def _call(self, path: str, interface: str, method: str, signature: str = "",
              *args: object) -> tuple[object, ...]:
        """One bounded method call to the Secret Service; the reply's body."""
        from jeepney import DBusAddress, new_method_call
        from jeepney.io.blocking import open_dbus_connection

        with contextlib.closing(open_dbus_connection(self.bus_address)) as conn:
            address = DBusAddress(path, SECRETS_NAME, interface)
            reply = conn.send_and_get_reply(new_method_call(address, method, signature, args),
                                            timeout=COMMAND_TIMEOUT)
            if reply.header.message_type.name == "error":
                raise AssertionError(f"{interface}.{method}: {reply.body}")
            return tuple(reply.body)

    def default_collection(self) -> str:
        """The object path of the default collection (the ``login`` key ring)."""
        (path,) = self._call(SERVICE_PATH, SERVICE_IFACE, "ReadAlias", "s", "default")
        assert isinstance(path, str) and path != "/", path
        return path

    def lock(self, collection: str | None = None) -> None:
        """Lock a collection (default: the default one), as ``secret-tool lock`` does.

        Over D-Bus: gnome-keyring locks without a prompt."""
        path = collection or self.default_collection()
        locked, prompt = self._call(SERVICE_PATH, SERVICE_IFACE, "Lock", "ao", [path])
        assert prompt == "/" and locked == [path], (locked, prompt)


def _require_programs() -> dict[str, str]:
    found = {}
    for program, package in PACKAGES.items():
        path = shutil.which(program)
        require(path is not None,
                f"{program} for a real Secret Service; apt-get install {package}")
        assert path is not None
        found[program] = path
    return found


def _name_has_owner(bus_address: str, name: str, timeout: float) -> bool:
    from jeepney import DBusAddress, new_method_call
    from jeepney.io.blocking import open_dbus_connection

    dbus = DBusAddress("/org/freedesktop/DBus", "org.freedesktop.DBus",
                       "org.freedesktop.DBus")
    with contextlib.closing(open_dbus_connection(bus_address,
                                                 auth_timeout=timeout)) as conn:
        reply = conn.send_and_get_reply(new_method_call(dbus, "NameHasOwner", "s", (name,)),
                                        timeout=timeout)
        return bool(reply.body[0])


def _stop(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout)


def _log_tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-2000:]
    except OSError:
        return ""


def _prepare(base: Path) -> tuple[dict[str, str], Path, Path]:
    """Folders under ``base`` (the runtime folder, with the bus socket, is a short
    path in the temporary folder: AF_UNIX paths are limited to 107 bytes); returns
    the environment, the runtime folder and the home folder."""
    base.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="ss-"))
    os.chmod(run_dir, 0o700)
    home = base / "home"
    folders = {"HOME": home, "XDG_RUNTIME_DIR": run_dir, "XDG_DATA_HOME": base / "data",
               "XDG_CONFIG_HOME": base / "config", "XDG_CACHE_HOME": base / "cache"}
    for folder in folders.values():
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in _UNSET}
    env.update({k: str(v) for k, v in folders.items()})
    return env, run_dir, home


@contextlib.contextmanager
def running_bus(base: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A private D-Bus session bus (no service activation) under ``base``: yields its
    address and the environment to use it (``DBUS_SESSION_BUS_ADDRESS``, ``HOME``,
    ``XDG_*`` in ``base``); stopped on exit.  Needs only dbus-daemon."""
    path = shutil.which(DBUS_DAEMON)
    require(path is not None, f"{DBUS_DAEMON} for a private D-Bus session bus;"
            f" apt-get install {PACKAGES[DBUS_DAEMON]}")
    assert path is not None
    env, run_dir, _home = _prepare(base)
    bus_socket = run_dir / "bus"
    bus_address = f"unix:path={bus_socket}"
    env["DBUS_SESSION_BUS_ADDRESS"] = bus_address
    config = base / "bus.conf"
    config.write_text(BUS_CONFIG.format(socket=bus_socket))
    log_path = base / "dbus-daemon.log"
    with log_path.open("wb") as log:
        dbus = subprocess.Popen(
            [path, f"--config-file={config}", "--nofork", "--nopidfile", "--nosyslog"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
            start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if dbus.poll() is not None:
                pytest.fail(f"dbus-daemon exited ({dbus.returncode}): {_log_tail(log_path)}")
            if bus_socket.exists():
                try:
                    _name_has_owner(bus_address, "org.freedesktop.DBus", 2.0)
                    break
                except OSError:
                    pass
            if time.monotonic() > deadline:
                pytest.fail(f"dbus-daemon: no bus after {START_TIMEOUT} s:"
                            f" {_log_tail(log_path)}")
            time.sleep(0.01)
        yield bus_address, env
    finally:
        _stop(dbus)
        shutil.rmtree(run_dir, ignore_errors=True)


@contextlib.contextmanager
def running_secret_service(base: Path) -> Iterator[SecretServiceEnv]:
    """Start dbus-daemon and gnome-keyring-daemon under ``base``; stop them on exit.

    Does not touch ``os.environ`` (the fixture does)."""
    programs = _require_programs()
    with running_bus(base) as (bus_address, env):
        home = Path(env["HOME"])
        log_path = base / "gnome-keyring-daemon.log"
        with log_path.open("wb") as log:
            keyring = subprocess.Popen(
                [programs[GNOME_KEYRING_DAEMON], "--foreground", "--unlock",
                 "--components=secrets"],
                stdin=subprocess.PIPE, stdout=log, stderr=log, env=env, cwd=home,
                start_new_session=True)
        try:
            assert keyring.stdin is not None
            keyring.stdin.write(KEYRING_PASSWORD + b"\n")
            keyring.stdin.close()
            deadline = time.monotonic() + START_TIMEOUT
            while not _name_has_owner(bus_address, SECRETS_NAME, 2.0):
                if keyring.poll() is not None:
                    pytest.fail(f"gnome-keyring-daemon exited ({keyring.returncode}):"
                                f" {_log_tail(log_path)}")
                if time.monotonic() > deadline:
                    pytest.fail(f"gnome-keyring-daemon: {SECRETS_NAME} not on the bus"
                                f" after {START_TIMEOUT} s: {_log_tail(log_path)}")
                time.sleep(0.01)
            yield SecretServiceEnv(env, dir=base, bus_address=bus_address,
                                   keyring_pid=keyring.pid)
        finally:
            _stop(keyring)


@pytest.fixture
def secret_service(tmp_path: Path,
                   monkeypatch: pytest.MonkeyPatch) -> Iterator[SecretServiceEnv]:
    """A running GNOME Keyring on a private session bus; its environment is set in
    ``os.environ`` for the test and yielded (a :class:`SecretServiceEnv`, a ``dict``)
    for subprocesses."""
    with running_secret_service(tmp_path / "secret-service") as env:
        for name in _UNSET:
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            if os.environ.get(name) != value:
                monkeypatch.setenv(name, value)
        yield env
        monkeypatch.undo()


__all__ = ["KEYRING_PASSWORD", "SecretServiceEnv", "running_bus", "running_secret_service",
           "secret_service"]
