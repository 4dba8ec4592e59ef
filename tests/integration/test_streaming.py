"""A 100 MB mail streams through our msmtp with flat memory (peak RSS < 80 MiB),
and arrives complete at a real SMTP server on 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

from tests.conftest import ROOT, ours_env
from tests.servers.ports import free_port


def _start_sink(tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "sink.py"), str(port)])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("sink did not start")


def test_100_mb_mail_peak_rss_under_80_mib(tmp_path) -> None:
    sink, port = _start_sink(tmp_path)
    try:
        rc = tmp_path / "rc"
        rc.write_text(f"account default\nhost 127.0.0.1\nport {port}\nfrom a@example.com\n"
                      f"timeout 30\nlogfile {tmp_path}/log\nlogfile_time_format none\n")
        rc.chmod(0o600)
        mail = tmp_path / "big.eml"
        line = b"0123456789" * 7 + b"ab\n"  # 73 bytes
        with open(mail, "wb") as f:
            f.write(b"Subject: big\n\n")
            block = line * 14364  # ~1 MiB
            for _ in range(100):
                f.write(block)
        size = mail.stat().st_size
        # Measured from a small wrapper process: a child forked straight from pytest
        # would count pytest's own pages in its peak RSS.
        measure = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
                   "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
                   "sys.exit(rc)")
        with open(mail, "rb") as stdin:
            proc = subprocess.run(
                [sys.executable, "-c", measure, sys.executable, "-m", "msmtp_twisted",
                 "-C", str(rc), "b@example.org"],
                stdin=stdin, capture_output=True, timeout=120,
                env=ours_env({"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}), cwd=ROOT)
        assert proc.returncode == 0, proc.stderr
        peak_mib = int(proc.stdout.split()[-1]) / 1024
        assert peak_mib < 80, f"peak RSS {peak_mib:.0f} MiB"
        log = (tmp_path / "log").read_text()
        # mailsize counts CRLF as one byte, like msmtp: the input size plus our headers
        mailsize = int(log.split("mailsize=")[1].split()[0])
        assert size < mailsize < size + 200
        assert "exitcode=EX_OK" in log
    finally:
        sink.terminate()
        sink.wait(timeout=10)
