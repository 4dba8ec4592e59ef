"""The log line end to end: our msmtp and msmtp 1.8.23 send the same mail to
the same kind of server with ``logfile`` set, and write the same line (the
time stamp a literal, the server's address masked), with the same exit code
and messages.  test_log_differential.py holds format_log_line itself to
msmtp's lines; this holds what the command line puts into it."""

from __future__ import annotations

import re

import pytest

from tests.conftest import ours_command, ours_env

# Date and Message-ID given, so that nothing differs in size (our Message-ID
# follows the manual's form, docs/differences.md)
MAIL = (b"To: b@x.org\nMessage-ID: <fixed@x>\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"
        b"Subject: log\n\nbody\n")
CASES = [
    ("ok", ["a@x.org"], {}, {}),
    ("refused-rcpt", ["a@x.org", "bad@x.org"], {"RCPT:bad@x.org": "550 5.1.1 no"}, {}),
    ("refused-all", ["bad@x.org"], {"RCPT:bad@x.org": "550 5.1.1 no"}, {}),
    ("data-refused", ["a@x.org"], {"DATA": "554 no data"}, {}),
    ("eod-refused", ["a@x.org"], {"EOD": "452 full"}, {}),
    ("eod-multiline", ["a@x.org"], {"EOD": ["550-first line", "550 second 'quoted' line"]}, {}),
    ("mail-refused", ["a@x.org"], {"MAIL": "553 bad sender"}, {}),
    ("greeting-554", ["a@x.org"], {}, {"greeting": "554 go away"}),
    ("starttls-missing", ["a@x.org"], {}, {"tls": "on"}),
    ("auth-missing", ["a@x.org"], {}, {"auth": "plain", "user": "u", "password": "p"}),
    ("lmtp-partial", ["a@x.org", "b@x.org"], {"EOD:b@x.org": "452 4.2.2 full"},
     {"protocol": "lmtp"}),
    ("dsn-missing", ["-N", "failure", "a@x.org"], {}, {}),
    ("many-rcpts", [f"r{i}@x.org" for i in range(30)], {}, {}),
    ("t-mode", ["-t"], {}, {}),
    ("quote-in-sender", ["a@x.org"], {}, {"from": "weird'quote@x.org"}),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_same_log_line_as_msmtp(case, server_factory, msmtp_runner, real_msmtp,
                               tmp_path) -> None:
    from tests.servers.recording import RecordingServer

    name, args, replies, settings = case
    settings = dict(settings)
    greeting = settings.pop("greeting", None)
    caps = ("PIPELINING",) if name == "dsn-missing" else None
    logs = []
    for who, command, env in (("real", [real_msmtp], {}),
                              ("ours", ours_command(), ours_env({}))):
        kw = {"replies": replies, "protocol": settings.get("protocol", "smtp")}
        if greeting:
            kw["greeting"] = greeting
        if caps:
            kw["capabilities"] = caps
        server = server_factory(RecordingServer, **kw)
        log = tmp_path / f"{who}.log"
        s = dict(settings, logfile=str(log), logfile_time_format="STAMP")
        r = msmtp_runner(command, env=env)(server, args, input=MAIL, **s)
        server.wait_idle()
        text = log.read_text() if log.exists() else "<none>"
        text = re.sub(r"host=127\.0\.0\.1", "host=H", text)
        logs.append((r.returncode, text, r.stderr))
    assert logs[1] == logs[0]
