"""msmtp's password sources after ``password``/``passwordeval``: key ring, ~/.netrc,
SYSCONFDIR/netrc, then the terminal (auth/password.py)."""

from __future__ import annotations

import os
import pty
import threading
import time

import pytest

from msmtp_twisted.auth import password as pw


@pytest.fixture
def homes(tmp_path, monkeypatch):
    home = tmp_path / "home"
    etc = tmp_path / "etc"
    home.mkdir()
    etc.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("MSMTP_SYSCONFDIR", str(etc))
    return home, etc


def no_keyring(host, user, service):
    return None


def test_order_keyring_then_user_netrc_then_system_netrc(homes):
    home, etc = homes
    (etc / "netrc").write_text("machine mail.x login joe password fromsystem\n")
    look = dict(netrc=True, prompt=False)
    assert pw.lookup_password("mail.x", "joe", keyring=no_keyring, **look) == "fromsystem"
    (home / ".netrc").write_text("machine mail.x login joe password fromuser\n")
    assert pw.lookup_password("mail.x", "joe", keyring=no_keyring, **look) == "fromuser"
    assert pw.lookup_password("mail.x", "joe", keyring=lambda h, u, s: "fromring",
                              **look) == "fromring"
    # another user or host is not used
    assert pw.lookup_password("mail.x", "ann", keyring=no_keyring, **look) is None
    assert pw.lookup_password("mail.y", "joe", keyring=no_keyring, **look) is None


def test_keyring_is_asked_with_msmtp_attributes(homes):
    seen = []

    def ring(host, user, service):
        seen.append((host, user, service))
        return None
    pw.lookup_password("mail.x", "joe", keyring=ring, prompt=False)
    assert seen == [("mail.x", "joe", "smtp")]


def test_no_terminal_means_no_prompt(tmp_path):
    assert pw.prompt_password("h", "u", tty=str(tmp_path / "no-such-tty")) is None


def _prompt_on_pty(typed: bytes):
    controller, terminal = pty.openpty()
    name = os.ttyname(terminal)
    result = {}
    thread = threading.Thread(
        target=lambda: result.setdefault("pw", pw.prompt_password("mail.x", "joe", tty=name)))
    thread.start()
    seen = b""
    deadline = time.monotonic() + 10
    while b": " not in seen and time.monotonic() < deadline:
        seen += os.read(controller, 1024)
    os.write(controller, typed)
    thread.join(10)
    assert not thread.is_alive()
    os.set_blocking(controller, False)
    try:
        while True:
            chunk = os.read(controller, 1024)
            if not chunk:
                break
            seen += chunk
    except (BlockingIOError, OSError):
        pass
    os.close(controller)
    os.close(terminal)
    return seen, result["pw"]


def test_prompt_on_terminal_without_echo():
    seen, got = _prompt_on_pty(b"s3cret word\n")
    assert got == "s3cret word"
    assert seen.startswith(b"password for joe at mail.x: ")
    assert b"s3cret" not in seen  # echo was off


def test_prompt_end_of_file_is_an_empty_password():
    seen, got = _prompt_on_pty(b"\x04")  # ^D on an empty line: getpass(3) gives ""
    assert got == ""
    assert seen == b"password for joe at mail.x: "  # no newline echoed
