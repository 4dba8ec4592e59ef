"""Which AUTH mechanism is chosen, or why none, beside msmtp 1.8.23: 12 server
lists (one or two mechanisms, unknown ones, an empty list) x ``auth`` on,
plain, login, cram-md5 and external, without TLS (where msmtp refuses to send
a password in clear with ``auth on``).  The server refuses every AUTH with 535,
so the exchange ends at the first try either way: exit code, messages and the
commands the server saw must be the same."""

from __future__ import annotations

import pytest

from tests.conftest import ours_command, ours_env

LISTS = ["AUTH CRAM-MD5", "AUTH GSSAPI", "AUTH NTLM", "AUTH XOAUTH2", "AUTH X-FOO",
         "AUTH LOGIN", "AUTH PLAIN LOGIN", "AUTH", "AUTH EXTERNAL", "AUTH SCRAM-SHA-256",
         "AUTH DIGEST-MD5 LOGIN", "AUTH OAUTHBEARER"]
METHODS = ["on", "plain", "login", "cram-md5", "external"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("caps", LISTS)
def test_auth_choice_like_msmtp(caps, method, server_factory, msmtp_runner, real_msmtp,
                               tmp_path) -> None:
    from tests.servers.recording import RecordingServer

    res = []
    for command, env in (([real_msmtp], {}), (ours_command(), ours_env({}))):
        server = server_factory(RecordingServer, capabilities=(caps,),
                                replies={"AUTH": "535 5.7.8 no"})
        r = msmtp_runner(command, env=env)(server, ["a@x.org"],
                                           input=b"Subject: s\n\nb\n",
                                           auth=method, user="u", password="p")
        server.wait_idle()
        res.append((r.returncode, r.stderr, [c.split()[:2] for c in server.commands]))
    assert res[1] == res[0]
