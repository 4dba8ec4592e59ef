"""--serverinfo beside msmtp 1.8.23 for odd EHLO replies and greetings: SIZE
values as C's strtol reads them (sign, blanks, overflow, trailing text), AUTH
lists, duplicates, lower case, nothing, everything; multi-line, 8-bit and long
greetings; EHLO refused."""

from __future__ import annotations

import pytest

from tests.conftest import ours_command, ours_env
from tests.integration.test_differential_sendmail import _normalized_trace

SIZES = ["SIZE 0", "SIZE", "SIZE -5", "SIZE -0", "SIZE +100", "SIZE  100", "SIZE\t100",
         "SIZE100", "SIZE 00100", "SIZE 100 ", "SIZE 100 extra", "SIZE 0x10", "SIZE=100",
         "SIZEX 100", "SIZE 1", "SIZE 1048576", "SIZE 2147483648",
         "SIZE 9223372036854775807", "SIZE 9223372036854775808",
         "SIZE 99999999999999999999"]

CASES = [(v, {"capabilities": (v,)}) for v in SIZES] + [
    ("auth-many", {"capabilities": ("AUTH PLAIN LOGIN CRAM-MD5 DIGEST-MD5 SCRAM-SHA-1 "
                                    "SCRAM-SHA-256 GSSAPI NTLM XOAUTH2 OAUTHBEARER EXTERNAL "
                                    "X-UNKNOWN",)}),
    ("auth-equals", {"capabilities": ("AUTH=PLAIN LOGIN",)}),
    ("duplicates", {"capabilities": ("PIPELINING", "PIPELINING", "DSN")}),
    ("lower-case", {"capabilities": ("pipelining", "size 100", "dsn", "starttls", "etrn",
                                     "auth plain")}),
    ("nothing", {"capabilities": ()}),
    ("everything", {"capabilities": ("PIPELINING", "SIZE 1000", "DSN", "ETRN", "STARTTLS",
                                     "AUTH PLAIN", "8BITMIME", "SMTPUTF8",
                                     "ENHANCEDSTATUSCODES", "CHUNKING", "DELIVERBY 100",
                                     "VRFY")}),
    ("greeting-multi-line", {"greeting": ["220-first", "220-second", "220 third"]}),
    ("greeting-8-bit", {"greeting": "220 h\xe4llo"}),
    ("greeting-long", {"greeting": "220 " + "g" * 900}),
    ("ehlo-refused", {"replies": {"EHLO": "502 no"}}),
    ("ehlo-421", {"replies": {"EHLO": "421 bye"}}),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_serverinfo_like_msmtp(case, server_factory, msmtp_runner, real_msmtp,
                               tmp_path) -> None:
    from tests.servers.recording import RecordingServer

    _, server_options = case
    results = []
    for command, env in (([real_msmtp], {}), (ours_command(), ours_env({}))):
        server = server_factory(RecordingServer, **server_options)
        run = msmtp_runner(command, env=env)(server, ["--serverinfo"], input=b"")
        server.wait_idle()
        results.append((run.returncode, run.stderr, _normalized_trace(run.stdout)))
    assert results[1] == results[0]
