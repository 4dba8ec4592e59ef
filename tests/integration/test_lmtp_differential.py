"""LMTP beside msmtp 1.8.23: per-recipient replies after the final dot (some or
all refused, 4xx and 5xx, multi-line), refusals at RCPT and LHLO.  Exit code,
messages, the commands the server saw, the mail and the log line must be the
same."""

from __future__ import annotations

import pytest

from tests.conftest import ours_command, ours_env
from tests.integration.test_differential_sendmail import _masked

MAIL = b"Subject: l\nMessage-ID: <m@x>\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n\nbody\n"
CASES = [
    ("all-ok", ["a@x", "b@x"], {}),
    ("one-4xx-after-dot", ["a@x", "b@x"], {"EOD:b@x": "452 4.2.2 full"}),
    ("one-5xx-after-dot", ["a@x", "b@x"], {"EOD:a@x": "550 5.1.1 gone"}),
    ("all-refused-after-dot", ["a@x", "b@x"],
     {"EOD:a@x": "550 5.1.1 gone", "EOD:b@x": "452 4.2.2 full"}),
    ("rcpt-refused-one", ["a@x", "bad@x"], {"RCPT:bad@x": "550 5.1.1 no"}),
    ("rcpt-refused-all", ["bad@x"], {"RCPT:bad@x": "550 5.1.1 no"}),
    ("lhlo-refused", ["a@x"], {"LHLO": "500 no"}),
    ("three-one-bad", ["a@x", "b@x", "c@x"], {"EOD:b@x": "451 4.3.0 later"}),
    ("multiline-after-dot", ["a@x", "b@x"],
     {"EOD:b@x": ["452-4.2.2 full", "452 4.2.2 really"]}),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_lmtp_like_msmtp(case, server_factory, msmtp_runner, real_msmtp, tmp_path) -> None:
    from tests.servers.recording import RecordingServer

    _, args, replies = case
    res = []
    for command, env in (([real_msmtp], {}), (ours_command(), ours_env({}))):
        server = server_factory(RecordingServer, replies=replies, protocol="lmtp")
        log = tmp_path / f"{len(res)}.log"
        r = msmtp_runner(command, env=env)(server, args, input=MAIL, protocol="lmtp",
                                           logfile=str(log), logfile_time_format="T")
        server.wait_idle()
        res.append((r.returncode, r.stderr, list(server.commands),
                    [_masked(m.data_bytes()) for m in server.messages],
                    log.read_text().replace("127.0.0.1", "H") if log.exists() else None))
    assert res[1] == res[0]
