"""``--configure``: SRV look-ups against a real DNS server on 127.0.0.1 (a small
UDP responder built on twisted.names' message codec), and the invalid-address
case compared with the real msmtp."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading

import pytest
from twisted.names import dns

from tests.conftest import ROOT, ours_env

RECORDS = {
    b"_submissions._tcp.implicit.test": [(10, 0, 465, b"smtp.implicit.test")],
    b"_submission._tcp.starttls.test": [(10, 0, 587, b"mail.starttls.test")],
    b"_submissions._tcp.elsewhere.test": [
        (20, 0, 465, b"backup.provider.example"),
        (10, 5, 465, b"smtp.provider.example"),
    ],
}


@pytest.fixture(scope="module")
def dns_server():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(4096)
            except OSError:
                continue
            query = dns.Message()
            query.fromStr(data)
            answer = dns.Message(id=query.id, answer=True, recDes=query.recDes, recAv=True)
            answer.queries = query.queries
            name = query.queries[0].name.name
            for prio, weight, port, target in RECORDS.get(name, []):
                answer.answers.append(
                    dns.RRHeader(name, dns.SRV, dns.IN, 60,
                                 dns.Record_SRV(prio, weight, port, target))
                )
            if not answer.answers:
                answer.rCode = dns.ENAME
            sock.sendto(answer.toStr(), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sock.getsockname()[1]
    stop.set()
    thread.join(timeout=5)
    sock.close()


def _configure(address: str, port: int, tmp_path) -> subprocess.CompletedProcess:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(f"nameserver 127.0.0.1#{port}\n")
    env = ours_env({"HOME": str(tmp_path), "PATH": "/usr/bin:/bin",
                    "MSMTP_RESOLV_CONF": str(resolv)})
    return subprocess.run([sys.executable, "-m", "msmtp_twisted", f"--configure={address}"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=30)


def test_implicit_tls_record(dns_server, tmp_path) -> None:
    proc = _configure("joe@implicit.test", dns_server, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        f"# - copy this to your configuration file {tmp_path}/.msmtprc",
        "# - add your password to the key ring:",
        "#   secret-tool store --label=msmtp host smtp.implicit.test service smtp user joe",
        "account joe@implicit.test",
        "host smtp.implicit.test",
        "port 465",
        "tls on",
        "tls_starttls off",
        "auth on",
        "user joe",
        "from joe@implicit.test",
    ]


def test_starttls_record_when_no_implicit_one(dns_server, tmp_path) -> None:
    proc = _configure("ann@starttls.test", dns_server, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "port 587" in proc.stdout.splitlines()
    assert "tls_starttls on" in proc.stdout.splitlines()


def test_lowest_priority_wins_and_foreign_host_warns(dns_server, tmp_path) -> None:
    proc = _configure("bob@elsewhere.test", dns_server, tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "host smtp.provider.example" in lines
    assert "# - warning: the host does not match the mail domain; please check" in lines


def test_no_records(dns_server, tmp_path) -> None:
    proc = _configure("x@nothing.test", dns_server, tmp_path)
    assert proc.returncode == 68
    assert proc.stderr == (
        "msmtp: automatic configuration based on SRV records failed: no SRV records for "
        "_submissions._tcp.nothing.test or _submission._tcp.nothing.test\n"
    )


@pytest.mark.parametrize("address", ["joe", "@example.com", "joe@"])
def test_invalid_address_same_as_msmtp(address, tmp_path, real_msmtp) -> None:
    real = subprocess.run(["msmtp", f"--configure={address}"], capture_output=True, text=True,
                          env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}, timeout=30)
    ours = subprocess.run([sys.executable, "-m", "msmtp_twisted", f"--configure={address}"],
                          capture_output=True, text=True, cwd=ROOT, timeout=30,
                          env=ours_env({"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}))
    assert (ours.returncode, ours.stdout, ours.stderr) == (
        real.returncode, real.stdout, real.stderr)
