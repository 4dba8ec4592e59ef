"""``msmtp-queue -r`` sends over one kept connection per account (issue 12): what
each mail gets is what ``msmtp`` alone gives it (delivered, refused, deferred,
with msmtp's messages), and the connection carries on after a refusal (RSET).
Real processes, a real SMTP server on 127.0.0.1 (tests/servers/recording.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.integration.test_msmtpq import Setup, mail, message_ids
from tests.servers.msmtp import write_config
from tests.servers.recording import Close, RecordingServer

REFUSED = "refused@example.org"
LATER = "later@example.org"
REPLIES = {f"RCPT:{REFUSED}": "550 5.1.1 no such user", f"RCPT:{LATER}": "451 4.3.0 try later"}


@pytest.fixture
def q(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


def queue(q: Setup, n: int, *recipients: str) -> str:
    before = set(q.entries())
    res = q.msmtpq("--q-only", "-C", str(q.rc), *recipients, input=mail(n))
    assert res.returncode == 0, res.stderr
    [entry_id] = set(q.entries()) - before
    return entry_id


def test_mixed_outcomes_over_one_connection(q: Setup, tmp_path: Path) -> None:
    order = ["bob@example.org", REFUSED, "carol@example.org", LATER, "dave@example.org"]
    ids = {queue(q, n, rcpt): rcpt for n, rcpt in enumerate(order)}
    with RecordingServer(replies=REPLIES) as server:
        q.up(server)
        res = q.manage("-r")
        server.wait_idle()
        assert res.returncode == 0, res.stderr
        assert server.connections_accepted == 1, res.stdout
        [session] = server.sessions
        # the three accepted mails, once each
        assert message_ids(server) == Counter({"<m0@queue.test>": 1, "<m2@queue.test>": 1,
                                               "<m4@queue.test>": 1})
        # a refused RCPT leaves a transaction open: RSET before the next mail
        commands = [c.split(":")[0] for c in session.commands]
        assert commands.count("RSET") == 2, session.commands
        assert session.commands[-1] == "QUIT"
        # what msmtp alone prints for the same mails, against the same server
        alone = {}
        for rcpt in (REFUSED, LATER):
            run = subprocess.run([sys.executable, "-m", "msmtp_twisted", "-C", str(q.rc), rcpt],
                                 input=mail(9), capture_output=True, timeout=60)
            alone[rcpt] = (run.returncode, run.stderr.decode().replace("msmtp: ", ""))
    by_rcpt = {rcpt: entry_id for entry_id, rcpt in ids.items()}
    # permanent: failed/, with msmtp's messages and exit code
    assert q.entries(q.queue / "failed") == [by_rcpt[REFUSED]]
    failed = json.loads((q.queue / "failed" / f"{by_rcpt[REFUSED]}.json").read_text())
    assert (failed["last_exitcode"], failed["last_error"] + "\n") == alone[REFUSED]
    assert "recipient address refused@example.org not accepted" in failed["last_error"]
    # temporary: still queued, attempt counted, msmtp's messages
    assert q.entries() == [by_rcpt[LATER]]
    later = q.metadata(by_rcpt[LATER])
    assert later["attempts"] == 1
    assert (later["last_exitcode"], later["last_error"] + "\n") == alone[LATER]


def test_accounts_with_other_servers_get_their_own_connection(q: Setup,
                                                              tmp_path: Path) -> None:
    with RecordingServer() as one, RecordingServer() as two:
        q.up(one)
        first = [queue(q, n, "bob@example.org") for n in range(3)]
        other_dir = tmp_path / "other"
        other_dir.mkdir()
        other_rc = write_config(other_dir, two, timeout=10)
        for n in range(3, 5):
            res = q.msmtpq("--q-only", "-C", str(other_rc), "bob@example.org", input=mail(n))
            assert res.returncode == 0, res.stderr
        res = q.manage("-r")
        one.wait_idle()
        two.wait_idle()
        assert res.returncode == 0, res.stderr
        assert (one.connections_accepted, two.connections_accepted) == (1, 1)
        assert message_ids(one) == Counter({f"<m{n}@queue.test>": 1 for n in range(3)})
        assert message_ids(two) == Counter({f"<m{n}@queue.test>": 1 for n in range(3, 5)})
    assert q.entries() == [] and len(first) == 3


def test_a_connection_the_server_drops_is_opened_again(q: Setup) -> None:
    """The server closes the connection right after accepting each mail: every
    mail still arrives exactly once, each over a new connection (the kept one is
    found closed, and nothing of the next mail can have reached the server)."""
    for n in range(4):
        queue(q, n, "bob@example.org")
    with RecordingServer(replies={"EOD": Close("250 2.0.0 Ok: queued")}) as server:
        q.up(server)
        res = q.manage("-r")
        server.wait_idle()
    assert res.returncode == 0, res.stderr
    assert server.connections_accepted == 4
    assert message_ids(server) == Counter({f"<m{n}@queue.test>": 1 for n in range(4)})
    assert q.entries() == [] and q.entries(q.queue / "failed") == []


def test_lmtp_mails_over_one_connection(q: Setup, tmp_path: Path) -> None:
    """LMTP (a reply per recipient after the final dot): the mail refused for one
    recipient is not sent again to the others (it goes to failed/, as msmtp's
    exit code says); the rest arrive once, all over one connection."""
    with RecordingServer(protocol="lmtp",
                         replies={f"EOD:{REFUSED}": "550 5.1.1 no such mailbox"}) as server:
        q.rc = write_config(q.dir, server, timeout=10, protocol="lmtp")
        ids = [queue(q, 0, "bob@example.org"), queue(q, 1, "bob@example.org", REFUSED),
               queue(q, 2, "carol@example.org")]
        res = q.manage("-r")
        server.wait_idle()
        assert res.returncode == 0, res.stderr
        assert server.connections_accepted == 1
        assert message_ids(server) == Counter({f"<m{n}@queue.test>": 1 for n in range(3)})
    assert q.entries() == [] and q.entries(q.queue / "failed") == [ids[1]]
    failed = json.loads((q.queue / "failed" / f"{ids[1]}.json").read_text())
    assert failed["last_exitcode"] == 69
    assert REFUSED in failed["last_error"]


def test_a_header_block_past_the_spool_limit_goes_over_the_kept_connection(q: Setup) -> None:
    """A header block larger than what is kept in memory (msmtp spools it to a
    temporary file): the mail arrives whole over the kept connection."""
    from msmtp_twisted.limits import HEADER_SPOOL

    filler = b"".join(b"X-Filler-%06d: %s\n" % (n, b"y" * 100)
                      for n in range(HEADER_SPOOL // 100 + 100))
    message = b"Message-ID: <big@queue.test>\n" + filler + b"Subject: big\n\nbody\n"
    res = q.msmtpq("--q-only", "-C", str(q.rc), "bob@example.org", input=message)
    assert res.returncode == 0, res.stderr
    with RecordingServer() as server:
        q.up(server)
        res = q.manage("-r")
        server.wait_idle()
        assert res.returncode == 0, res.stderr
        assert b": delivered" in res.stdout, res.stdout
        [got] = [m.data_bytes() for m in server.messages]
    assert q.entries() == [] and q.entries(q.queue / "failed") == []
    assert got.replace(b"\r\n", b"\n").endswith(filler + b"Subject: big\n\nbody\n")
