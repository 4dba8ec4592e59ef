"""An account built in code (``Account(host=..., port=...)``, docs/typing.md)
sends through ``send_mail`` as the same account read from msmtprc does.

Runs in a child process: a reactor runs once per process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.conftest import ROOT, ours_env


def test_send_mail_with_an_account_built_in_code(recording_server, tmp_path) -> None:
    script = f"""
        import json
        from twisted.internet import task
        from msmtp_twisted.api import send_mail
        from msmtp_twisted.config.account import Account

        def main(reactor):
            account = Account(id="code", host="127.0.0.1", port={recording_server.port},
                              from_addr="me@example.com", domain="client.example",
                              timeout=30)
            d = send_mail(reactor, account, None, ["you@example.org"],
                          b"Subject: typed\\nBcc: hidden@x\\n\\nbody\\n")
            d.addCallback(lambda r: print(json.dumps({{"code": r.reply.code}})))
            return d
        task.react(main)
    """
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True,
                          text=True, timeout=60, cwd=ROOT,
                          env=ours_env({"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"code": 250}
    recording_server.wait_idle()
    message = recording_server.message
    assert message.sender == "me@example.com"
    assert message.recipients == ["you@example.org"]
    data = message.data_bytes()
    assert b"Bcc" not in data and b"From: me@example.com\r\n" in data
    assert recording_server.sessions[message.session].helo == "EHLO client.example"
