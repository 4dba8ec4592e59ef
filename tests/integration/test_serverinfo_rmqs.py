"""--serverinfo and --rmqs against a recording server: output, errors and exit
codes identical to msmtp 1.8.23."""

from __future__ import annotations

import pytest

from tests.conftest import ours_command, ours_env
from tests.servers.msmtp import REAL_MSMTP, run_msmtp
from tests.servers.recording import RecordingServer

FULL = ["PIPELINING", "SIZE 52428800", "ETRN", "DSN", "STARTTLS",
        "AUTH PLAIN LOGIN SCRAM-SHA-1-PLUS CRAM-MD5 XOAUTH2", "8BITMIME"]

SCENARIOS = {
    "defaults": {},
    "everything": {"capabilities": FULL},
    "nothing-special": {"capabilities": ["8BITMIME"]},
    "size-zero": {"capabilities": ["SIZE 0"]},
    "size-kib": {"capabilities": ["SIZE 20000"]},
    "size-invalid": {"capabilities": ["SIZE", "AUTH=LOGIN"]},
    "multiline-greeting": {"greeting": ["220-first line", "220 second line"]},
    "greeting-refused": {"greeting": "554 no service"},
    "etrn-refused": {"capabilities": ["ETRN"], "replies": {"ETRN": "459 not allowed"}},
    "etrn-syntax": {"capabilities": ["ETRN"], "replies": {"ETRN": "501 bad"}},
    "etrn-odd": {"capabilities": ["ETRN"], "replies": {"ETRN": "421 closing"}},
    "etrn-ok": {"capabilities": ["ETRN"], "replies": {"ETRN": "251 nothing waiting"}},
    "lmtp": {"protocol": "lmtp", "capabilities": ["PIPELINING"]},
}


def _run(command, env, options, args, tmp_path, label):
    with RecordingServer(**options) as server:
        rc = tmp_path / f"rc-{label}"
        extra = "protocol lmtp\n" if options.get("protocol") == "lmtp" else ""
        rc.write_text(f"account default\nhost 127.0.0.1\nport {server.port}\n{extra}")
        rc.chmod(0o600)
        proc = run_msmtp(command, rc, args, input=b"", timeout=30, env=env, home=tmp_path)
        server.wait_idle()
        commands = list(server.commands)
    def norm(text: str) -> str:
        return text.replace(str(server.port), "PORT").replace(str(rc), "RC")
    return proc.returncode, norm(proc.stdout), norm(proc.stderr), commands


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("args", [["--serverinfo"], ["--rmqs=@example.net"], ["-d", "-S"]],
                         ids=["serverinfo", "rmqs", "debug-serverinfo"])
def test_same_as_msmtp(scenario, args, tmp_path, real_msmtp) -> None:
    options = SCENARIOS[scenario]
    real = _run([REAL_MSMTP], {}, options, args, tmp_path, "real")
    ours = _run(ours_command(), ours_env({}), options, args, tmp_path, "ours")
    assert ours == real


def test_serverinfo_output_shape(tmp_path) -> None:
    code, out, err, commands = _run(ours_command(), ours_env({}), {"capabilities": FULL},
                                    ["--serverinfo"], tmp_path, "shape")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("SMTP server at 127.0.0.1 (")
    assert "        Maximum message size is 52428800 bytes = 50.00 MiB" in lines
    assert "        PLAIN SCRAM-SHA-1 CRAM-MD5 LOGIN XOAUTH2 " in lines
    assert commands[-1] == "QUIT"
