"""api.account_from_config: msmtprc text in code is the same account as the file."""

from __future__ import annotations

import pytest

from msmtp_twisted.api import AccountNotFound, account_from_config, load_account
from msmtp_twisted.config.parser import ConfigError

TEXTS = [
    "host mail.example.com\nport 587\ntls on\ntls_trust_file system\nauth on\nuser me\n"
    "from me@example.com\n",
    "defaults\nport 2525\ntimeout 30\naccount work\nhost w.example\nfrom a@b.example\n"
    "auth plain\nuser u\npassword p\naccount home : work\nhost h.example\n",
    "host 127.0.0.1\nprotocol lmtp\nport 24\nfrom %U@example.com\ndsn_notify failure\n"
    "set_from_header on\nundisclosed_recipients on\n",
    "host ::1\ntls on\ntls_starttls off\ntls_certcheck off\nauth scram-sha-256\n"
    "user x\npasswordeval echo secret\n",
]


@pytest.mark.parametrize("text", TEXTS)
def test_same_account_as_the_file(tmp_path, monkeypatch, text) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    rc = tmp_path / "rc"
    rc.write_text(text)
    rc.chmod(0o600)
    names = [line.split()[1] for line in text.splitlines() if line.startswith("account ")]
    for name in names or ["default"]:
        ours = account_from_config(text, name)
        from_file = load_account(name, config_file=str(rc))
        assert ours.settings() == from_file.settings()
        assert ours.id == name


def test_indented_text_and_errors() -> None:
    account = account_from_config("""
        host 127.0.0.1
        auth plain
        user me
    """)
    assert (account.host, account.auth_mech, account.username) == ("127.0.0.1", "PLAIN", "me")
    with pytest.raises(ConfigError, match="^line 2: unknown command bogus$"):
        account_from_config("host x\nbogus 1\n")
    with pytest.raises(ConfigError, match="^line 2: invalid argument abc for command port$"):
        account_from_config("host x\nport abc\n")
    with pytest.raises(ConfigError, match="eval is not allowed"):
        account_from_config("eval echo host x\n")
    with pytest.raises(AccountNotFound):
        account_from_config("host x\n", "work")
