"""Reading configuration files: the permission check on files holding a password,
file discovery and merging of system and user accounts."""

from __future__ import annotations

import pytest

from msmtp_twisted import sysexits
from msmtp_twisted.config.files import (
    CannotOpen,
    load_accounts,
    read_config_file,
    user_config_path,
)
from msmtp_twisted.config.parser import ConfigError

SECRET = b"account default\nhost h\nfrom f@x\npassword s3cret\n"


def _write(path, data: bytes, mode: int) -> str:
    path.write_bytes(data)
    path.chmod(mode)
    return str(path)


def test_secret_file_must_not_be_readable_by_others(tmp_path) -> None:
    path = _write(tmp_path / "rc", SECRET, 0o644)
    with pytest.raises(ConfigError) as e:
        read_config_file(path, securitycheck=True)
    assert e.value.message == (
        "contains secrets and therefore must have no more than user read/write permissions"
    )
    assert e.value.exitcode == sysexits.EX_CONFIG


def test_secret_file_user_executable_bit_is_refused(tmp_path) -> None:
    path = _write(tmp_path / "rc", SECRET, 0o700)
    with pytest.raises(ConfigError):
        read_config_file(path, securitycheck=True)


def test_secret_file_0600_is_fine(tmp_path) -> None:
    path = _write(tmp_path / "rc", SECRET, 0o600)
    parsed = read_config_file(path, securitycheck=True)
    assert parsed.accounts[0].password == "s3cret"


def test_no_secret_no_check(tmp_path) -> None:
    path = _write(tmp_path / "rc", b"account default\nhost h\n", 0o666)
    assert read_config_file(path, securitycheck=True).accounts[0].host == "h"


def test_password_from_eval_is_not_a_stored_secret(tmp_path) -> None:
    path = _write(tmp_path / "rc", b"account default\neval echo password x\n", 0o644)
    assert read_config_file(path, securitycheck=True).accounts[0].password == "x"


def test_missing_file_cannot_open(tmp_path) -> None:
    with pytest.raises(CannotOpen) as e:
        read_config_file(str(tmp_path / "nope"), securitycheck=True)
    assert e.value.reason == "No such file or directory"


def test_user_config_path_prefers_msmtprc_then_xdg(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert user_config_path() == f"{tmp_path}/.msmtprc"
    (tmp_path / "xdg" / "msmtp").mkdir(parents=True)
    (tmp_path / "xdg" / "msmtp" / "config").write_text("")
    assert user_config_path() == f"{tmp_path}/xdg/msmtp/config"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    (tmp_path / ".config" / "msmtp").mkdir(parents=True)
    (tmp_path / ".config" / "msmtp" / "config").write_text("")
    assert user_config_path() == f"{tmp_path}/.config/msmtp/config"
    (tmp_path / ".msmtprc").write_text("")
    assert user_config_path() == f"{tmp_path}/.msmtprc"


def test_user_accounts_override_system_accounts(tmp_path, monkeypatch) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "msmtprc").write_text("account a\nhost sys-a\naccount b\nhost sys-b\n")
    monkeypatch.setenv("MSMTP_SYSCONFDIR", str(etc))
    user = _write(tmp_path / "rc", b"account b\nhost user-b\naccount c\nhost user-c\n", 0o600)
    info: list[str] = []
    loaded = load_accounts(user, info)
    assert [(a.id, a.host) for a in loaded.accounts] == [
        ("b", "user-b"), ("c", "user-c"), ("a", "sys-a")
    ]
    assert info == [
        f"loaded system configuration file {etc}/msmtprc",
        f"loaded user configuration file {user}",
    ]


def test_explicit_missing_user_file_is_an_io_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MSMTP_SYSCONFDIR", str(tmp_path))
    with pytest.raises(ConfigError) as e:
        load_accounts(str(tmp_path / "missing"))
    assert e.value.exitcode == sysexits.EX_IOERR
    assert e.value.message == f"{tmp_path}/missing: No such file or directory"
