"""The key ring end to end: a real GNOME Keyring (``secret_service`` fixture) and
real servers.  msmtp finds a password stored the way the manual says
(``secret-tool store --label=msmtp host H service smtp user U``) — ours and
msmtp 1.8.23 alike — and one stored with the Python ``keyring`` package; msmtpd's
``--auth=USER`` falls back to the key ring item ``host localhost service smtp``."""

from __future__ import annotations

import base64
import os
import smtplib
import subprocess
import uuid

from tests.conftest import ours_command, ours_env
from tests.servers.mailservers import msmtprc, send
from tests.servers.msmtpd import converse
from tests.servers.secretservice import SecretServiceEnv


def _mail(token: str) -> bytes:
    return f"Subject: {token}\n\nkey ring test\n".encode()


def _env(secret_service: SecretServiceEnv, home) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": str(home),
            "DBUS_SESSION_BUS_ADDRESS": secret_service.bus_address,
            "XDG_RUNTIME_DIR": secret_service.get("XDG_RUNTIME_DIR", str(home))}


def _config(mailservers, tmp_path, **settings):
    values = {"auth": "on", "user": "testuser", **settings}
    return msmtprc(tmp_path, port=mailservers.submission_port, tls=True, tls_starttls=True,
                   tls_trust_file=mailservers.ca_file, **values)


def test_secret_tool_password_found_by_ours_and_real_msmtp(
        secret_service, mailservers, tmp_path, real_msmtp) -> None:
    secret_service.store("testpass", label="msmtp", host="127.0.0.1", service="smtp",
                         user="testuser")
    config = _config(mailservers, tmp_path)
    for command in (ours_command(), [real_msmtp]):
        token = uuid.uuid4().hex
        res = send(command, config, ["alice@example.com"], _mail(token),
                   env=_env(secret_service, tmp_path))
        assert (res.returncode, res.stderr) == (0, ""), command
        mailservers.wait_for_mail("alice", match=token.encode())


def test_keyring_package_password_found(secret_service, mailservers, tmp_path) -> None:
    secret_service.keyring_set("127.0.0.1", "testuser", "testpass")
    token = uuid.uuid4().hex
    res = send(ours_command(), _config(mailservers, tmp_path), ["alice@example.com"],
               _mail(token), env=_env(secret_service, tmp_path))
    assert (res.returncode, res.stderr) == (0, "")
    mailservers.wait_for_mail("alice", match=token.encode())


def test_config_password_wins_over_the_key_ring(secret_service, mailservers,
                                                tmp_path) -> None:
    secret_service.store("wrong", host="127.0.0.1", service="smtp", user="testuser")
    token = uuid.uuid4().hex
    res = send(ours_command(), _config(mailservers, tmp_path, password="testpass"),
               ["alice@example.com"], _mail(token), env=_env(secret_service, tmp_path))
    assert (res.returncode, res.stderr) == (0, "")


def test_key_ring_wins_over_netrc(secret_service, mailservers, tmp_path) -> None:
    secret_service.store("testpass", host="127.0.0.1", service="smtp", user="testuser")
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login testuser password wrong\n")
    netrc.chmod(0o600)
    res = send(ours_command(), _config(mailservers, tmp_path), ["alice@example.com"],
               _mail(uuid.uuid4().hex), env=_env(secret_service, tmp_path))
    assert (res.returncode, res.stderr) == (0, "")


def test_nothing_stored_and_no_terminal(secret_service, mailservers, tmp_path,
                                        real_msmtp) -> None:
    """Both clients, run without a controlling terminal: no prompt, no waiting,
    exit 69 with the same message."""
    config = _config(mailservers, tmp_path, auth="plain")
    results = []
    for command in (ours_command(), [real_msmtp]):
        env = _env(secret_service, tmp_path)
        proc = subprocess.run([*command, "-C", str(config), "alice@example.com"],
                              input=_mail("x"), capture_output=True, timeout=30,
                              env=ours_env(env), start_new_session=True)
        results.append((proc.returncode, proc.stderr.decode().replace(str(config), "FILE")))
    assert results[0] == results[1]
    assert results[0][0] == 69
    assert "authentication method PLAIN needs a password" in results[0][1]


def test_msmtpd_auth_password_from_the_key_ring(secret_service, msmtpd, recorder) -> None:
    secret_service.store("d-pass", label="msmtpd", host="localhost", service="smtp",
                         user="msmtpd-user")
    daemon = msmtpd([f"--command={recorder.command()}", "--auth=msmtpd-user"])
    token = base64.b64encode(b"\0msmtpd-user\0wrong") + b"\r\n"
    got = converse(daemon.port, [b"EHLO x\r\n", b"AUTH PLAIN " + token])
    assert got[-1] == b"535 Authentication failed\r\n"
    with smtplib.SMTP("127.0.0.1", daemon.port, timeout=15) as smtp:
        smtp.login("msmtpd-user", "d-pass")
        smtp.sendmail("a@b", ["c@d"], b"Subject: x\r\n\r\nkey ring\r\n")
    assert len(recorder.wait(1)) == 1
    assert os.environ.get("DBUS_SESSION_BUS_ADDRESS") == secret_service.bus_address
