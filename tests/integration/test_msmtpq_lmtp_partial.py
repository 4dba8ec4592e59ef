"""An LMTP server that takes a queued mail for some recipients and refuses it
for others after the final dot (issue 12: "never lost, never twice"): the
entry stays queued for exactly the recipients refused with a 4xx, the next
flush sends to those only, the 5xx ones are reported as failed and never tried
again, and the recipients that got the mail never get it again.  A real LMTP
server (tests/servers/recording.py) answering per recipient, real processes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.servers.msmtp import write_config
from tests.servers.recording import RecordingServer

MSMTPQ = [sys.executable, "-m", "msmtp_twisted.msmtpq"]
QUEUE = [*MSMTPQ, "--q-mgmt"]
A, B, C = "a@example.org", "b@example.org", "c@example.org"
FULL = "452 4.2.2 Mailbox full"
GONE = "550 5.1.1 No such user"


class Q:
    def __init__(self, tmp: Path, server: RecordingServer) -> None:
        self.tmp = tmp
        self.queue = tmp / "queue"
        self.log = tmp / "queue.log"
        self.env = dict(os.environ, MSMTP_QUEUE=str(self.queue), PYTHONPATH=str(ROOT),
                        MSMTP_LOG=str(self.log))
        self.env.pop("EMAIL_QUEUE_QUIET", None)
        self.rc = write_config(tmp, server, protocol="lmtp", timeout=10)
        self.server = server

    def msmtpq(self, mail: bytes, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([*MSMTPQ, "-C", str(self.rc), *args], input=mail,
                              capture_output=True, env=self.env, timeout=60, cwd=self.tmp)

    def flush(self) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([*QUEUE, "-r"], capture_output=True, env=self.env, timeout=120,
                              cwd=self.tmp, stdin=subprocess.DEVNULL)

    def entries(self, where: Path | None = None) -> list[dict[str, object]]:
        return [json.loads(p.read_text()) for p in sorted((where or self.queue).glob("*.json"))]

    def deliveries(self) -> Counter[str]:
        """Per recipient, how many times the server said 250 after the final dot."""
        self.server.wait_idle(timeout=10)
        got: Counter[str] = Counter()
        for message in self.server.messages:
            for rcpt, reply in zip(message.rcpt_to, message.eod_replies, strict=True):
                if reply.startswith("250"):
                    got[rcpt.strip("<>")] += 1
        return got


def mail(tag: str, headers: str = f"To: {A}, {B}\n") -> bytes:
    return f"From: s@example.com\n{headers}Message-ID: <{tag}@lmtp.test>\n" \
           f"Subject: {tag}\n\nbody\n".encode()


@pytest.fixture
def lmtp() -> RecordingServer:
    with RecordingServer(protocol="lmtp") as server:
        yield server


def test_4xx_recipient_stays_queued_alone(tmp_path: Path, lmtp: RecordingServer) -> None:
    q = Q(tmp_path, lmtp)
    queued = q.msmtpq(mail("m1"), "--q-only", A, B)
    assert queued.returncode == 0, queued.stderr
    lmtp.replies[f"EOD:{B}"] = FULL
    first = q.flush()
    assert first.returncode == 0, first.stderr
    [entry] = q.entries()
    assert entry["remaining"] == [B] and entry["recipients"] == [B]
    assert entry["attempts"] == 1
    assert q.deliveries() == Counter({A: 1})
    listing = subprocess.run([*QUEUE, "-d"], capture_output=True, env=q.env, timeout=60)
    assert f"to: {B}" in listing.stdout.decode()

    del lmtp.replies[f"EOD:{B}"]  # the mailbox has room again
    second = q.flush()
    assert second.returncode == 0, second.stderr
    assert q.entries() == []
    assert q.deliveries() == Counter({A: 1, B: 1})
    last = lmtp.messages[-1]
    assert last.rcpt_to == [f"<{B}>"]
    # the headers are those of the original invocation (both recipients in To:)
    assert f"To: {A}, {B}".encode() in last.data_bytes()
    assert q.flush().returncode == 0
    assert q.deliveries() == Counter({A: 1, B: 1})


def test_mixed_4xx_and_5xx(tmp_path: Path, lmtp: RecordingServer) -> None:
    q = Q(tmp_path, lmtp)
    assert q.msmtpq(mail("m2", f"To: {A}, {B}, {C}\n"), "--q-only", A, B, C).returncode == 0
    lmtp.replies[f"EOD:{B}"] = FULL
    lmtp.replies[f"EOD:{C}"] = GONE
    first = q.flush()
    assert first.returncode == 0, first.stderr
    out = first.stdout.decode()
    assert f"failed for {C} (not tried again)" in out
    [entry] = q.entries()
    assert entry["remaining"] == [B]
    log = q.log.read_text()
    assert re.search(rf"event=failed account=default from=\S* recipients={C} ", log)
    assert re.search(rf"event=deferred account=default from=\S* recipients={B} ", log)
    assert q.deliveries() == Counter({A: 1})

    lmtp.replies.clear()
    assert q.flush().returncode == 0
    assert q.entries() == [] and q.entries(q.queue / "failed") == []
    assert q.deliveries() == Counter({A: 1, B: 1})
    assert lmtp.messages[-1].rcpt_to == [f"<{B}>"]


def test_only_5xx_fails_naming_those(tmp_path: Path, lmtp: RecordingServer) -> None:
    q = Q(tmp_path, lmtp)
    assert q.msmtpq(mail("m3"), "--q-only", A, B).returncode == 0
    lmtp.replies[f"EOD:{B}"] = GONE
    assert q.flush().returncode == 0
    assert q.entries() == []
    [failed] = q.entries(q.queue / "failed")
    # moved back by hand, it would go to b only
    assert failed["remaining"] == [B]
    assert q.deliveries() == Counter({A: 1})


def test_read_recipients_and_bcc(tmp_path: Path, lmtp: RecordingServer) -> None:
    """``-t``: the recipients come from the headers, Bcc included; the retry
    goes to the Bcc recipient alone, with the headers msmtp builds for the
    original mail (Bcc removed, To kept)."""
    q = Q(tmp_path, lmtp)
    assert q.msmtpq(mail("m4", f"To: {A}\nBcc: {B}\n"), "--q-only", "-t").returncode == 0
    lmtp.replies[f"EOD:{B}"] = FULL
    assert q.flush().returncode == 0
    [entry] = q.entries()
    assert entry["remaining"] == [B]
    lmtp.replies.clear()
    assert q.flush().returncode == 0
    assert q.entries() == []
    assert q.deliveries() == Counter({A: 1, B: 1})
    for message in lmtp.messages:
        data = message.data_bytes()
        assert b"Bcc:" not in data and f"To: {A}".encode() in data
    assert lmtp.messages[-1].rcpt_to == [f"<{B}>"]


def test_first_attempt_partial(tmp_path: Path, lmtp: RecordingServer) -> None:
    """msmtpq's own attempt: msmtp's messages, then the mail is queued for the
    4xx recipient only (exit 0: the caller must not send it again)."""
    q = Q(tmp_path, lmtp)
    lmtp.replies[f"EOD:{B}"] = FULL
    res = q.msmtpq(mail("m5"), A, B)
    assert res.returncode == 0, res.stderr
    err = res.stderr.decode()
    assert f"msmtpq: the server refuses to send the mail to {B}" in err
    assert "mail queued as" in err
    [entry] = q.entries()
    assert entry["remaining"] == [B] and entry["attempts"] == 1
    lmtp.replies.clear()
    assert q.flush().returncode == 0
    assert q.entries() == []
    assert q.deliveries() == Counter({A: 1, B: 1})


def test_first_attempt_partial_5xx_only_is_msmtps_failure(tmp_path: Path,
                                                          lmtp: RecordingServer) -> None:
    q = Q(tmp_path, lmtp)
    lmtp.replies[f"EOD:{B}"] = GONE
    res = q.msmtpq(mail("m6"), A, B)
    assert res.returncode == 69, res.stderr
    assert q.entries() == []
    assert q.deliveries() == Counter({A: 1})
