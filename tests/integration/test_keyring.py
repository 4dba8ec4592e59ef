"""msmtp's "password method 1", the key ring, against a real Secret Service.

GNOME Keyring runs on a private D-Bus bus (``tests/servers/secretservice.py``); items
are stored the ways users store them: ``secret-tool store`` (msmtp's documented way and
libgnome-keyring's old attributes) and the Python ``keyring`` package.  The real msmtp
1.8.23 checks that our attributes are the ones it looks up.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from msmtp_twisted.auth.keyring import keyring_backend, keyring_lookup, keyring_lookup_verbose
from tests.servers.recording import RecordingServer
from tests.servers.secretservice import SecretServiceEnv, running_bus, secret_service

pytestmark = pytest.mark.timeout(60)

_ = secret_service  # the fixture, used by name below

HOST = "mail.example.com"
USER = "alice@example.com"


def store_msmtp(ss: SecretServiceEnv, password: str, host: str = HOST, user: str = USER,
                service: str = "smtp") -> None:
    """What msmtp's documentation says: ``secret-tool store --label=msmtp host H
    service smtp user U``."""
    ss.store(password, label="msmtp", host=host, service=service, user=user)


def store_compat(ss: SecretServiceEnv, password: str, host: str = HOST,
                 user: str = USER, service: str = "smtp") -> None:
    """libgnome-keyring's network password attributes."""
    ss.store(password, label="x", user=user, protocol=service, server=host)


def test_secret_tool_item_is_found(secret_service: SecretServiceEnv) -> None:
    store_msmtp(secret_service, "hunter2")
    password, notes = keyring_lookup_verbose(HOST, USER)
    assert password == "hunter2"
    assert any("found the msmtp item" in n for n in notes), notes
    assert not any("hunter2" in n for n in notes)
    assert keyring_backend() == "Secret Service"


def test_compat_item_is_found(secret_service: SecretServiceEnv) -> None:
    store_compat(secret_service, "old-gnome")
    password, notes = keyring_lookup_verbose(HOST, USER)
    assert password == "old-gnome"
    assert any("found the libgnome-keyring item" in n for n in notes), notes


@pytest.mark.parametrize("service_name", [HOST, f"smtp://{HOST}"])
def test_keyring_package_item_is_found(secret_service: SecretServiceEnv,
                                       service_name: str) -> None:
    secret_service.keyring_set(service_name, USER, "from-keyring")
    password, notes = keyring_lookup_verbose(HOST, USER)
    assert password == "from-keyring"
    assert any(f"found the Python keyring, service {service_name!r}" in n
               for n in notes), notes


def test_keyring_package_host_name_before_url(secret_service: SecretServiceEnv) -> None:
    secret_service.keyring_set(f"smtp://{HOST}", USER, "url")
    secret_service.keyring_set(HOST, USER, "host")
    assert keyring_lookup(HOST, USER) == "host"


def test_wrong_host_user_or_service_is_not_found(secret_service: SecretServiceEnv) -> None:
    store_msmtp(secret_service, "p1")
    store_compat(secret_service, "p2", host="compat.example.com")
    secret_service.keyring_set("smtp://keyring.example.com", USER, "p3")
    assert keyring_lookup(HOST, USER) == "p1"
    assert keyring_lookup("compat.example.com", USER) == "p2"
    assert keyring_lookup("keyring.example.com", USER) == "p3"
    start = time.monotonic()
    for host in (HOST, "compat.example.com", "keyring.example.com"):
        assert keyring_lookup("other.example.com", USER) is None
        assert keyring_lookup(host, "bob@example.com") is None
        assert keyring_lookup(host, USER, "pop3") is None
        assert keyring_lookup(host.upper(), USER) is None  # attributes match exactly
    assert keyring_lookup("", "") is None
    assert time.monotonic() - start < 5


def test_keyring_package_host_name_is_for_every_service(
        secret_service: SecretServiceEnv) -> None:
    """keyring's service name ``HOST`` does not say which protocol: it matches all."""
    secret_service.keyring_set(HOST, USER, "any")
    assert keyring_lookup(HOST, USER, "pop3") == "any"
    assert keyring_lookup(HOST, "bob@example.com", "pop3") is None


def test_order_msmtp_then_compat_then_keyring(secret_service: SecretServiceEnv) -> None:
    secret_service.keyring_set(HOST, USER, "keyring")
    assert keyring_lookup(HOST, USER) == "keyring"
    store_compat(secret_service, "compat")
    assert keyring_lookup(HOST, USER) == "compat"
    store_msmtp(secret_service, "msmtp")
    assert keyring_lookup(HOST, USER) == "msmtp"


def test_other_service_name(secret_service: SecretServiceEnv) -> None:
    store_msmtp(secret_service, "smtp-pw")
    store_msmtp(secret_service, "pop3-pw", service="pop3")
    assert keyring_lookup(HOST, USER) == "smtp-pw"
    assert keyring_lookup(HOST, USER, "pop3") == "pop3-pw"


def test_schema_name_is_not_matched(secret_service: SecretServiceEnv) -> None:
    """SECRET_SCHEMA_DONT_MATCH_NAME: an item made by another program with msmtp's
    attributes (and more) is found whatever its xdg:schema."""
    secret_service.store("other-schema", label="other", **{"xdg:schema": "org.example.Other"},
                         host=HOST, service="smtp", user=USER, extra="x")
    assert keyring_lookup(HOST, USER) == "other-schema"


@pytest.mark.parametrize("password", [
    "with spaces  and\ttab ",
    "ünïcödé €uro 密码 🔑",
    "x" * 500,
    "\"quotes' and \\ backslash;$(echo no)",
])
def test_password_round_trips(secret_service: SecretServiceEnv, password: str) -> None:
    store_msmtp(secret_service, password)
    assert keyring_lookup(HOST, USER) == password
    secret_service.keyring_set("kr.example.com", USER, password)
    assert keyring_lookup("kr.example.com", USER) == password


def test_locked_collection_needs_a_prompt_so_not_found(
        secret_service: SecretServiceEnv) -> None:
    store_msmtp(secret_service, "locked-away")
    assert keyring_lookup(HOST, USER) == "locked-away"
    secret_service.lock()
    start = time.monotonic()
    password, notes = keyring_lookup_verbose(HOST, USER, timeout=3)
    assert password is None
    assert time.monotonic() - start < 2, "no prompt, no wait"
    assert any("locked and unlocking it needs a prompt" in n for n in notes), notes
    # the prompt was dismissed, not left waiting: the service still answers, and the
    # item is still there for a later unlocked session
    assert keyring_lookup("other.example.com", USER, timeout=3) is None


def test_item_in_unlocked_collection_wins_over_locked(
        secret_service: SecretServiceEnv) -> None:
    """The session collection (in memory, never locked) next to a locked login key
    ring: the item one can read is used."""
    store_msmtp(secret_service, "in-login")
    secret_service.lock()
    # secret-tool stores in the default collection only: use secretstorage
    _store_in_session_collection(secret_service, "in-session")
    assert keyring_lookup(HOST, USER) == "in-session"


def _store_in_session_collection(ss: SecretServiceEnv, password: str) -> None:
    import secretstorage
    from jeepney.io.blocking import open_dbus_connection

    with contextlib.closing(open_dbus_connection(ss.bus_address)) as conn:
        collection = secretstorage.Collection(conn, "/org/freedesktop/secrets/collection/session")
        collection.create_item("msmtp", {"host": HOST, "service": "smtp", "user": USER},
                               password.encode())


def test_subprocess_sees_the_same_service(secret_service: SecretServiceEnv) -> None:
    """The yielded env works for subprocesses (and is the one set in os.environ)."""
    import subprocess
    import sys

    store_msmtp(secret_service, "sub")
    code = ("from msmtp_twisted.auth.keyring import keyring_lookup as k;"
            f" print(k({HOST!r}, {USER!r}) == 'sub')")
    env = dict(secret_service)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=30)
    assert proc.stdout.strip() == "True", proc.stderr


# ------------------------------------------------------------- buses without answers
@pytest.fixture
def private_bus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A private session bus without any Secret Service, set in os.environ."""
    with running_bus(tmp_path / "bus") as (address, env):
        for name in ("DBUS_SESSION_BUS_ADDRESS", "HOME", "XDG_RUNTIME_DIR"):
            monkeypatch.setenv(name, env[name])
        monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
        yield address
        monkeypatch.undo()


def test_bus_without_secret_service(private_bus: str) -> None:
    start = time.monotonic()
    password, notes = keyring_lookup_verbose(HOST, USER, timeout=3)
    assert password is None
    assert time.monotonic() - start < 1
    assert any("not available" in n for n in notes), notes


class SilentService:
    """Owns org.freedesktop.secrets on the bus and never answers anything."""

    def __init__(self, address: str) -> None:
        from jeepney import DBusAddress, new_method_call
        from jeepney.io.blocking import open_dbus_connection

        self.conn = open_dbus_connection(address)
        dbus = DBusAddress("/org/freedesktop/DBus", "org.freedesktop.DBus",
                           "org.freedesktop.DBus")
        reply = self.conn.send_and_get_reply(
            new_method_call(dbus, "RequestName", "su", ("org.freedesktop.secrets", 4)),
            timeout=5)
        assert reply.body == (1,), reply.body  # primary owner

    def close(self) -> None:
        self.conn.close()


def test_secret_service_that_never_answers(private_bus: str) -> None:
    silent = SilentService(private_bus)
    try:
        start = time.monotonic()
        password, notes = keyring_lookup_verbose(HOST, USER, timeout=1.0)
        elapsed = time.monotonic() - start
    finally:
        silent.close()
    assert password is None
    assert 0.9 < elapsed < 2.0, elapsed
    assert any("no answer in time" in n for n in notes), notes


# --------------------------------------------------------- the real msmtp agrees
@pytest.fixture
def msmtp_with_keyring(real_msmtp: str, secret_service: SecretServiceEnv,
                       server_factory: Callable[..., Any],
                       msmtp_runner: Callable[..., Any]) -> Callable[[str], Any]:
    """``send(password)``: /usr/bin/msmtp, ``auth plain`` with ``user`` but no password,
    against a RecordingServer on 127.0.0.1 that accepts ``password``; returns
    (result, server)."""
    env = {k: secret_service[k] for k in ("DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR")}
    run = msmtp_runner([real_msmtp], env=env)

    def send(password: str) -> Any:
        server = server_factory(RecordingServer, auth={USER: password})
        res = run(server, auth="plain", user=USER, timeout=5, run_timeout=20)
        server.wait_idle()
        return res, server

    return send


COMPAT_SCHEMA = {"xdg:schema": "org.gnome.keyring.NetworkPassword"}


@pytest.mark.parametrize("how", ["msmtp", "compat"])
def test_real_msmtp_finds_the_same_items(secret_service: SecretServiceEnv,
                                         msmtp_with_keyring: Callable[[str], Any],
                                         how: str) -> None:
    if how == "msmtp":
        store_msmtp(secret_service, "shared ü pw", host="127.0.0.1")
    else:  # as libgnome-keyring made them: msmtp matches the schema name here
        secret_service.store("shared ü pw", label="x", **COMPAT_SCHEMA, user=USER,
                             protocol="smtp", server="127.0.0.1")
    assert keyring_lookup("127.0.0.1", USER) == "shared ü pw"
    res, server = msmtp_with_keyring("shared ü pw")
    assert res.returncode == 0, res.stderr
    assert server.session.auth == [("PLAIN", USER, "shared ü pw")]


@pytest.mark.parametrize("how", ["compat-without-schema", "keyring"])
def test_items_only_we_find(secret_service: SecretServiceEnv,
                            msmtp_with_keyring: Callable[[str], Any], how: str) -> None:
    """Our deliberate supersets: libgnome-keyring's attributes without its schema name
    (msmtp's SECRET_SCHEMA_COMPAT_NETWORK look-up matches xdg:schema), and the Python
    keyring package's items."""
    if how == "keyring":
        secret_service.keyring_set("127.0.0.1", USER, "pw")
    else:
        store_compat(secret_service, "pw", host="127.0.0.1")
    assert keyring_lookup("127.0.0.1", USER) == "pw"
    res, server = msmtp_with_keyring("pw")
    assert res.returncode != 0
    assert "needs a password" in res.stderr
    assert not any(s.auth for s in server.sessions)
