"""msmtpq with a real Postfix as the relay (issue 12): mails queued while the
relay is down are delivered to the mailbox by ``msmtp-queue -r``, each once."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT
from tests.servers.mailservers import MailServers, msmtprc
from tests.servers.msmtp import new_token
from tests.servers.ports import free_port


def test_queued_mails_reach_the_mailbox_through_postfix(mailservers: MailServers,
                                                        tmp_path) -> None:
    tok = new_token()
    env = dict(os.environ, MSMTP_QUEUE=str(tmp_path / "queue"), PYTHONPATH=str(ROOT))
    down = msmtprc(tmp_path, port=free_port())
    for n in range(5):
        res = subprocess.run([sys.executable, "-m", "msmtp_twisted.msmtpq", "-C", str(down),
                              "alice@example.com"],
                             input=f"Subject: {tok} {n}\n\nqueued {n}\n".encode(),
                             capture_output=True, env=env, timeout=60)
        assert res.returncode == 0 and b"mail queued as" in res.stderr, res.stderr
    msmtprc(tmp_path, port=mailservers.smtp_port)  # the relay is back (same file)
    res = subprocess.run([sys.executable, "-m", "msmtp_twisted.msmtpq", "--q-mgmt", "-r"],
                         capture_output=True, env=env, timeout=120)
    assert res.returncode == 0 and res.stdout.count(b": delivered") == 5, res
    mails = mailservers.wait_for_mail("alice", match=tok.encode(), count=5, timeout=30)
    subjects = sorted(line for mail in mails for line in mail.splitlines()
                      if line.startswith(b"Subject: "))
    assert subjects == [f"Subject: {tok} {n}".encode() for n in range(5)]
    assert not list((tmp_path / "queue").glob("*.json"))
