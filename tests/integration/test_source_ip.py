"""``source_ip``: the connection comes from the given local address, and a
source address that cannot be bound fails as msmtp fails (exit 71)."""

from __future__ import annotations

import socket
import threading

import pytest

from tests.conftest import ours_command, ours_env
from tests.servers.msmtp import REAL_MSMTP, run_msmtp


def _peer_of_one_connection(listener: socket.socket, peers: list[str]) -> None:
    listener.settimeout(10)
    try:
        conn, peer = listener.accept()
    except OSError:
        return
    peers.append(peer[0])
    conn.close()  # the client then fails with "the server sent an empty reply"


def _run(command, env, rc, tmp_path):
    return run_msmtp(command, rc, ["a@example.org"], input=b"Subject: s\n\nb\n", timeout=30,
                     env=env, home=tmp_path)


@pytest.mark.parametrize("who", ["real", "ours"])
def test_connection_comes_from_source_ip(who, tmp_path, real_msmtp) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    peers: list[str] = []
    thread = threading.Thread(target=_peer_of_one_connection, args=(listener, peers))
    thread.start()
    rc = tmp_path / "rc"
    rc.write_text(f"account default\nhost 127.0.0.1\nport {listener.getsockname()[1]}\n"
                  "from a@example.com\nsource_ip 127.0.0.2\ntimeout 5\n")
    rc.chmod(0o600)
    command, env = ([REAL_MSMTP], {}) if who == "real" else (ours_command(), ours_env({}))
    proc = _run(command, env, rc, tmp_path)
    thread.join(timeout=15)
    listener.close()
    assert peers == ["127.0.0.2"]
    assert proc.returncode == 76
    assert "the server sent an empty reply" in proc.stderr


def test_unbindable_source_ip_same_as_msmtp(tmp_path, real_msmtp) -> None:
    # 192.0.2.1 (TEST-NET-1) is not an address of this machine: bind() fails
    # locally, so no packet is ever sent anywhere.
    rc = tmp_path / "rc"
    rc.write_text("account default\nhost 127.0.0.1\nport 9\nfrom a@example.com\n"
                  "source_ip 192.0.2.1\n")
    rc.chmod(0o600)
    real = _run([REAL_MSMTP], {}, rc, tmp_path)
    ours = _run(ours_command(), ours_env({}), rc, tmp_path)
    assert real.returncode == 71
    assert (ours.returncode, ours.stderr) == (real.returncode, real.stderr)


@pytest.mark.parametrize("source_ip", [
    "localhost",          # a name: msmtp takes only addresses
    "1.2.3",              # inet_aton's short form: not for inet_pton
    "0x7f000001",
    "::1",                # IPv6 on the IPv4 socket: EAFNOSUPPORT (was a traceback)
    "::ffff:127.0.0.1",
])
@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_source_ip_that_is_no_address_of_the_family(source_ip, host, tmp_path,
                                                    real_msmtp) -> None:
    """Nothing listens (port 9): every case ends before or at the bind, or in
    the same refused connection, with msmtp's words and exit code."""
    rc = tmp_path / "rc"
    rc.write_text(f"account default\nhost {host}\nport 9\nfrom a@example.com\n"
                  f"source_ip {source_ip}\n")
    rc.chmod(0o600)
    real = _run([REAL_MSMTP], {}, rc, tmp_path)
    ours = _run(ours_command(), ours_env({}), rc, tmp_path)
    assert (ours.returncode, ours.stderr) == (real.returncode, real.stderr)
    assert "Traceback" not in ours.stderr
