"""./scripts/demo (the README's first command) shows both programs working together:
a real ``twistd msmtpd`` with a command of ours (docs/examples/msmtpd_save.py), our
``msmtp`` sending to it, what the command received, and a clean stop (issue 13
item 1)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.servers.ports import free_port

pytestmark = pytest.mark.timeout(300)


def _run_demo(port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ROOT / "scripts" / "demo")], cwd=ROOT, capture_output=True,
                          text=True, timeout=240, stdin=subprocess.DEVNULL,
                          env={**os.environ, "DEMO_PORT": str(port)})


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _check_both_halves(out: str, port: int) -> None:
    listening = re.search(r"^== twistd msmtpd listens on 127\.0\.0\.1:(\d+) \(pid (\d+)\)$",
                          out, re.M)
    assert listening, out
    assert int(listening.group(1)) == port
    assert re.search(r"^   twistd -n msmtpd --port=tcp:\d+:interface=127\.0\.0\.1 "
                     r"'--command=\S+ docs/examples/msmtpd_save\.py \S+ -f %F --'$", out, re.M)
    # the client half: --pretend, then the real send, answered by msmtpd
    assert out.count("== msmtp exit code 0\n") == 2
    assert f"host = 127.0.0.1\nport = {port}\n" in out
    assert re.search(r"^host=127\.0\.0\.1 tls=off auth=off from=alice@example\.org "
                     r"recipients=bob@example\.net,carol@example\.com .*smtpstatus=250 "
                     r"smtpmsg='250 Ok, mail was piped' exitcode=EX_OK$", out, re.M), out
    # the daemon half: its log, its clean stop, what its command got
    assert "[msmtpd#info] mail was piped successfully" in out
    assert "[msmtpd#error]" not in out
    assert "== twistd msmtpd shut down on SIGTERM; its log:" in out
    assert "Server Shut Down." in out
    assert ("== msmtpd's command was run with -f alice@example.org -- "
            "bob@example.net carol@example.com\n") in out
    mail = out.split("== and received this mail on its standard input:\n", 1)[1]
    assert re.match(r"Received: from localhost \(localhost \[127\.0\.0\.1\]\)\n"
                    r"\tby localhost \[127\.0\.0\.1\] \(msmtpd\) with ESMTP;\n", mail), mail
    assert "From: Alice <alice@example.org>\n" in mail and "Message-ID: <" in mail
    assert "Bcc" not in mail  # removed by msmtp
    assert mail.endswith("\n.A line that starts with a dot.\n")  # unstuffed by msmtpd
    assert _gone(int(listening.group(2)))


def test_demo_runs_msmtp_against_twistd_msmtpd() -> None:
    port = free_port()
    proc = _run_demo(port)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "is taken" not in proc.stdout
    _check_both_halves(proc.stdout, port)
    # stopped: the port is free again
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


def test_demo_takes_another_port_when_its_own_is_taken() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _run_demo(port)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"== port {port} is taken: using another one\n" in proc.stdout
    other = re.search(r"listens on 127\.0\.0\.1:(\d+) ", proc.stdout)
    assert other and int(other.group(1)) != port
    _check_both_halves(proc.stdout, int(other.group(1)))


def test_msmtpd_save_keeps_the_mail_or_says_temporary_failure(tmp_path) -> None:
    """The demo's msmtpd command: the mail and its envelope saved; a directory it
    cannot write is a temporary failure (75: msmtpd answers 451, the client keeps
    the mail); wrong arguments are a usage error (64)."""
    script = str(ROOT / "docs" / "examples" / "msmtpd_save.py")
    mail = b"Subject: x\n\nbody\n"
    ok = subprocess.run([sys.executable, script, str(tmp_path / "in"), "-f", "", "--",
                         "a@example.org", "b@example.org"], input=mail, timeout=60)
    assert ok.returncode == 0
    assert (tmp_path / "in" / "1.eml").read_bytes() == mail
    assert (tmp_path / "in" / "1.envelope").read_text() == "\na@example.org\nb@example.org\n"
    (tmp_path / "file").write_text("")
    blocked = subprocess.run([sys.executable, script, str(tmp_path / "file" / "in"), "-f",
                              "x@example.org", "--", "a@example.org"], input=mail,
                             capture_output=True, timeout=60)
    assert blocked.returncode == 75
    assert blocked.stderr.startswith(b"msmtpd_save.py: cannot save the mail: ")
    usage = subprocess.run([sys.executable, script, str(tmp_path)], capture_output=True,
                           timeout=60)
    assert usage.returncode == 64
