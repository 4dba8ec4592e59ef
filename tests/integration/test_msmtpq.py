"""``msmtpq`` and ``msmtp-queue`` (issue 12): real processes of ours, real SMTP
servers on 127.0.0.1 (tests/servers/recording.py).  "Relay down" is an account
pointing at a port nobody listens on; "relay up" rewrites the account to a
running server, which counts the Message-IDs it received.  Every loop is
bounded in count and time.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import stat
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.servers.msmtp import write_config
from tests.servers.ports import free_port
from tests.servers.recording import RecordingServer
from tests.servers.tmpfs import tmpfs

MSMTPQ = [sys.executable, "-m", "msmtp_twisted.msmtpq"]
QUEUE = [*MSMTPQ, "--q-mgmt"]
_MSGID = re.compile(rb"^Message-ID: (<[^>]+>)", re.M | re.I)


def mail(n: int | str, body: bytes = b"body\n") -> bytes:
    return f"Message-ID: <m{n}@queue.test>\nSubject: mail {n}\n\n".encode() + body


def _msgid(message: Any) -> str:
    found = _MSGID.search(message.data_bytes())
    return found.group(1).decode() if found else "?"


def message_ids(server: RecordingServer) -> Counter[str]:
    return Counter(_msgid(message) for message in server.messages)


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path
        self.queue = tmp_path / "queue"
        self.down()
        self.env = dict(os.environ, MSMTP_QUEUE=str(self.queue), PYTHONPATH=str(ROOT))
        self.env.pop("EMAIL_QUEUE_QUIET", None)

    def down(self) -> None:
        self.rc = write_config(self.dir, ("127.0.0.1", free_port()), timeout=10)

    def up(self, server: RecordingServer) -> None:
        self.rc = write_config(self.dir, server, timeout=10)

    def msmtpq(self, *args: str, input: bytes | None = b"", timeout: float = 60,
               ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([*MSMTPQ, *args], input=input, capture_output=True,
                              env=self.env, timeout=timeout, cwd=self.dir)

    def send(self, n: int | str, *extra: str, body: bytes = b"body\n"
             ) -> subprocess.CompletedProcess[bytes]:
        return self.msmtpq(*extra, "-C", str(self.rc), "bob@example.org", input=mail(n, body))

    def send_all(self, ns: Sequence[int], *extra: str, q_only_from: int | None = None,
                 ) -> list[subprocess.CompletedProcess[bytes]]:
        """``send(n, *extra)`` for each n, four msmtpq processes at a time (many
        mails are queued faster; concurrent msmtpq runs are the normal case), and
        with ``--q-only`` too from the index ``q_only_from`` on."""
        def one(i_n: tuple[int, int]) -> subprocess.CompletedProcess[bytes]:
            i, n = i_n
            q_only = q_only_from is not None and i >= q_only_from
            return self.send(n, *extra, *(("--q-only",) if q_only else ()))
        with ThreadPoolExecutor(4) as pool:
            return list(pool.map(one, enumerate(ns)))

    def manage(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([*QUEUE, *args], capture_output=True, env=self.env,
                              timeout=timeout, cwd=self.dir, stdin=subprocess.DEVNULL)

    def entries(self, where: Path | None = None) -> list[str]:
        where = where or self.queue
        return sorted(p.stem for p in where.glob("*.json"))

    def metadata(self, entry_id: str) -> dict[str, Any]:
        return json.loads((self.queue / f"{entry_id}.json").read_text())


@pytest.fixture
def q(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


def test_relay_down_queues_and_run_delivers_each_mail_once(q: Setup) -> None:
    count, tried = 100, 30  # the first 30 try the relay first, the rest --q-only (faster)
    for n, res in enumerate(q.send_all(range(count), q_only_from=tried)):
        assert res.returncode == 0, res.stderr
        if n < tried:
            assert b"Connection refused" in res.stderr  # msmtp's own message comes first
        assert b"mail queued as " in res.stderr
    ids = q.entries()
    assert len(ids) == count
    # the mail is kept exactly as it came in
    assert sorted((q.queue / f"{i}.eml").read_bytes() for i in ids) == \
        sorted(mail(n) for n in range(count))
    assert stat.S_IMODE(q.queue.stat().st_mode) == 0o700
    for entry_id in ids:
        for suffix in (".eml", ".json"):
            assert stat.S_IMODE((q.queue / (entry_id + suffix)).stat().st_mode) == 0o600
        meta = q.metadata(entry_id)
        assert meta["version"] == 1
        assert meta["argv"][-3:] == ["-C", str(q.rc), "bob@example.org"]
        assert meta["recipients"] == ["bob@example.org"]
        if meta["attempts"]:
            assert meta["account"] == "default"
            assert "Connection refused" in meta["last_error"] and meta["last_exitcode"] == 75
    assert sum(q.metadata(i)["attempts"] for i in ids) == tried
    assert list((q.queue / "tmp").iterdir()) == []
    listing = q.manage("-d")
    assert listing.returncode == 0 and listing.stdout.count(b"bob@example.org") == count

    with RecordingServer() as server:
        q.up(server)
        res = q.manage("-r")
        assert res.returncode == 0, res.stderr
        server.wait_idle()
        assert message_ids(server) == Counter({f"<m{n}@queue.test>": 1 for n in range(count)})
        assert server.connections_accepted == 1  # one kept connection for all
    assert q.entries() == [] and q.entries(q.queue / "failed") == []
    log = (q.queue / "log").read_text()
    assert log.count("event=queued") == count and log.count("event=delivered") == count


def test_accepted_at_once_leaves_nothing(q: Setup) -> None:
    with RecordingServer() as server:
        q.up(server)
        res = q.send(1)
        assert res.returncode == 0 and res.stderr == b""
        server.wait_idle()
        assert message_ids(server) == Counter({"<m1@queue.test>": 1})
    assert q.entries() == [] and list((q.queue / "tmp").iterdir()) == []


@pytest.mark.parametrize("replies", [{"RCPT": "550 5.1.1 no such user"},
                                     {"MAIL": "553 sender refused"},
                                     {"EOD": "554 5.7.1 spam"}])
def test_permanent_failure_is_msmtps_and_queues_nothing(q: Setup, real_msmtp: str,
                                                          replies: dict[str, str]) -> None:
    with RecordingServer(replies=replies) as server:
        q.up(server)
        res = q.send(1)
        real = subprocess.run([real_msmtp, "-C", str(q.rc), "bob@example.org"], input=mail(1),
                              capture_output=True, timeout=60)
    assert res.returncode == real.returncode != 0
    assert res.stderr.replace(b"msmtpq: ", b"msmtp: ") == real.stderr
    assert q.entries() == [] and list((q.queue / "tmp").iterdir()) == []


@pytest.mark.parametrize("replies", [{"RCPT": "450 4.2.0 try later"},
                                     {"EOD": "452 4.3.1 full"},
                                     {"MAIL": "451 4.3.0 later"}])
def test_4xx_is_temporary(q: Setup, replies: dict[str, str]) -> None:
    with RecordingServer(replies=replies) as server:
        q.up(server)
        res = q.send(1)
    assert res.returncode == 0, res.stderr
    [entry_id] = q.entries()
    assert q.metadata(entry_id)["last_exitcode"] == 69  # msmtp's code for a 4xx


def test_configuration_error_queues_nothing(q: Setup) -> None:
    res = q.msmtpq("-C", str(q.dir / "missing"), "bob@example.org", input=mail(1))
    assert res.returncode != 0 and q.entries() == []


def test_queue_only_and_management(q: Setup) -> None:
    for n in range(3):
        res = q.send(n, "--q-only")
        assert res.returncode == 0, res.stderr
    # ids sort by the second they were made in, then at random: find each by its mail
    by_mail = {(q.queue / f"{i}.eml").read_bytes(): i for i in q.entries()}
    first, second, third = (by_mail[mail(n)] for n in range(3))
    assert q.metadata(first)["attempts"] == 0
    # -p drops one, --retry makes one due, -R sends one now
    assert q.manage("-p", first).returncode == 0
    assert q.manage("-p", first).returncode == 66  # gone
    assert q.manage("-p", "../../etc/passwd").returncode == 64
    assert q.manage("--retry", second).returncode == 0
    with RecordingServer() as server:
        q.up(server)
        res = q.manage("-R", third)
        assert res.returncode == 0, res.stderr
        server.wait_idle()
        assert message_ids(server) == Counter({"<m2@queue.test>": 1})
    assert q.entries() == [second]
    # -a without a terminal and without --yes refuses
    res = q.manage("-a")
    assert res.returncode == 64 and b"--yes" in res.stderr
    assert q.entries() == [second]
    assert q.manage("-a", "--yes").returncode == 0
    assert q.entries() == []


def test_back_off_and_failed(q: Setup) -> None:
    assert q.send(1).returncode == 0
    [entry_id] = q.entries()
    assert q.metadata(entry_id)["next_attempt"] <= time.time()  # the first retry is due
    res = q.manage("-r", "--backoff", "1h")
    assert res.returncode == 0 and b"deferred" in res.stdout
    meta = q.metadata(entry_id)
    assert meta["attempts"] == 2 and meta["next_attempt"] > time.time() + 3000
    res = q.manage("-r")
    assert b"deferred" not in res.stdout and q.entries() == [entry_id]  # not due
    assert q.manage("--retry", entry_id).returncode == 0
    assert q.metadata(entry_id)["next_attempt"] <= time.time()
    res = q.manage("-r")
    assert b"deferred" in res.stdout and q.metadata(entry_id)["attempts"] == 3
    # past the maximum age, a failed attempt gives up
    res = q.manage("-R", entry_id, "--max-age", "0")
    assert res.returncode != 0 and b"expired" in res.stdout
    assert q.entries() == [] and q.entries(q.queue / "failed") == [entry_id]
    assert "event=expired" in (q.queue / "log").read_text()
    # a permanent failure during a flush goes to failed/ too
    assert q.send(2, "--q-only").returncode == 0
    with RecordingServer(replies={"RCPT": "550 no"}) as server:
        q.up(server)
        res = q.manage("-r")
    assert b"failed" in res.stdout and q.entries() == []
    assert len(q.entries(q.queue / "failed")) == 2


def test_garbage_in_the_queue_is_reported_and_skipped(q: Setup) -> None:
    assert q.send("good", "--q-only").returncode == 0
    [good] = q.entries()
    junk = {
        "README": b"not ours",
        "20261203-120000-aaaaaaaaaaaa.json": b'{"version": 1, "id": "20261203-1200',  # truncated
        "20261203-120001-bbbbbbbbbbbb.json": b'{"version": 99}',
        "20261203-120002-cccccccccccc.json": b"\xff\xfe garbage",
        "20261203-120003-dddddddddddd.json": b"[]",
        "20261203-120004-eeeeeeeeeeee.json": json.dumps(
            {**q.metadata(good), "id": "20261203-120004-eeeeeeeeeeee"}).encode(),  # no .eml
    }
    for name, data in junk.items():
        for suffix in ("aaaa.json", "bbbb.json", "cccc.json", "dddd.json"):
            if name.endswith(suffix):
                (q.queue / name.replace(".json", ".eml")).write_bytes(mail("junk"))
        (q.queue / name).write_bytes(data)
    (q.queue / "subdir").mkdir()
    os.symlink("/etc/passwd", q.queue / "20261203-120005-ffffffffffff.json")
    (q.queue / "20261203-120005-ffffffffffff.eml").write_bytes(mail("link"))
    (q.queue / "tmp" / "20261203-120006-abcabcabcabc.eml").write_bytes(b"half a mail")
    orphan = q.queue / "20261203-120007-abcdefabcdef.eml"
    orphan.write_bytes(mail("orphan"))

    listing = q.manage("-d")
    assert listing.returncode == 0 and good.encode() in listing.stdout
    assert b"Traceback" not in listing.stderr
    for name in ("README", "subdir", "aaaa", "bbbb", "cccc", "dddd", "eeee", "ffff"):
        assert name.encode() in listing.stderr, name
    with RecordingServer() as server:
        q.up(server)
        res = q.manage("-r")
        assert res.returncode == 0, res.stderr
        assert b"Traceback" not in res.stderr
        server.wait_idle()
        assert message_ids(server) == Counter({"<mgood@queue.test>": 1})
    # the crashed run's leftovers are cleaned, foreign files left alone
    assert list((q.queue / "tmp").iterdir()) == [] and not orphan.exists()
    assert (q.queue / "README").exists()
    assert b"removed a temporary file" in res.stdout


@pytest.mark.root
@pytest.mark.parametrize("only", [True, False])
def test_full_disk_fails_and_leaves_no_entry(q: Setup, only: bool) -> None:
    with tmpfs(q.dir / "small", "1m") as small:
        q.env["MSMTP_QUEUE"] = str(small / "queue")
        q.queue = small / "queue"
        big = b"x" * 99 + b"\n"
        res = q.send(1, *(["--q-only"] if only else []), body=big * 20_000)  # 2 MB
        assert res.returncode == 75, res.stderr
        assert b"No space left on device" in res.stderr
        assert q.entries() == [] and list((q.queue / "tmp").iterdir()) == []
        assert list(q.queue.glob("*.eml")) == []
        # a mail that fits is still queued afterwards
        assert q.send(2, "--q-only").returncode == 0 and len(q.entries()) == 1


def test_concurrent_runs_never_send_a_mail_twice(q: Setup) -> None:
    count = 24
    assert all(res.returncode == 0 for res in q.send_all(range(count), "--q-only"))

    def slow(session: Any, command: Any) -> str:
        time.sleep(0.1)
        return "250 2.0.0 ok"

    with RecordingServer(replies={"EOD": slow}) as server:
        q.up(server)
        runs = [subprocess.Popen([*QUEUE, "-r"], env=q.env, cwd=q.dir, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE) for _ in range(3)]
        outputs = [run.communicate(timeout=240) for run in runs]
        assert all(run.returncode == 0 for run in runs), outputs
        server.wait_idle()
        assert message_ids(server) == Counter({f"<m{n}@queue.test>": 1 for n in range(count)})
    assert sum(out.count(b": delivered") for out, _ in outputs) == count
    assert q.entries() == []


def _fill(q: Setup, numbers: range) -> None:
    """Queue these mails as ``msmtpq --q-only`` does, without a process each."""
    import io

    from msmtp_twisted.queue.entry import Entry
    from msmtp_twisted.queue.spool import Spool

    spool = Spool(q.queue)
    spool.ensure()
    for n in numbers:
        incoming = spool.incoming()
        incoming.write_from(io.BytesIO(mail(n)))
        now = time.time()
        spool.commit(incoming, Entry(id=incoming.id, argv=["-C", str(q.rc), "bob@example.org"],
                                     cwd=str(q.dir), size=incoming.size, created=now,
                                     next_attempt=now, recipients=["bob@example.org"]))


def test_kill_9_while_flushing_loses_nothing(q: Setup) -> None:
    """50 flushes (bounded: 240 s), each killed at a random moment if it has not
    finished; the queue is topped up so that every run has mails to send."""
    count = 4
    assert all(res.returncode == 0 for res in q.send_all(range(count), "--q-only"))
    rng = random.Random(12)

    def slow(session: Any, command: Any) -> str:
        time.sleep(rng.uniform(0.0, 0.15))
        return "250 2.0.0 ok"

    kills = 0
    deadline = time.monotonic() + 240
    with RecordingServer(replies={"EOD": slow}) as server:
        q.up(server)
        for _ in range(50):
            if time.monotonic() > deadline:
                break
            if len(q.entries()) < 3:
                _fill(q, range(count, count + 3))
                count += 3
            run = subprocess.Popen([*QUEUE, "-r"], env=q.env, cwd=q.dir,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.3, 1.0))
            if run.poll() is None:
                run.send_signal(signal.SIGKILL)
                kills += 1
            run.wait(timeout=30)
        res = q.manage("-r")
        assert res.returncode == 0, res.stderr
        server.wait_idle()
        received = message_ids(server)
    assert kills >= 10  # the loop did kill flushes in the middle
    assert set(received) == {f"<m{n}@queue.test>" for n in range(count)}  # none lost
    duplicates = sum(received.values()) - count
    # the window: the server has the whole mail (final dot) but the entry is not
    # removed yet -- the kill may land before the reply to the dot was read or
    # after QUIT, before the removal.  Each kill opens that window for at most
    # the one mail in flight, so there are no more extra copies than kills.
    extra = received - Counter(received.keys())
    assert sum(extra.values()) <= kills, (extra, kills)
    assert duplicates <= kills
    assert q.entries() == [] and q.entries(q.queue / "failed") == []
    assert list((q.queue / "tmp").iterdir()) == []


_CAPPED = """
import resource, subprocess, sys
cap = 400 << 20
def limit():
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
with open(sys.argv[1], "rb") as mail:
    proc = subprocess.run(sys.argv[2:], stdin=mail, preexec_fn=limit, capture_output=True)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
sys.stdout.write(f"{proc.returncode} {usage.ru_maxrss}\\n")
sys.stderr.buffer.write(proc.stderr)
"""


def _capped(q: Setup, mail_path: Path, command: Sequence[str]) -> tuple[int, int]:
    res = subprocess.run([sys.executable, "-c", _CAPPED, str(mail_path), *command],
                         capture_output=True, env=q.env, cwd=q.dir, timeout=300)
    code, rss = res.stdout.split()
    assert int(code) == 0, res.stderr
    return int(code), int(rss)


def test_a_50_mb_mail_is_queued_and_flushed_in_bounded_memory(q: Setup) -> None:
    path = q.dir / "big.eml"
    line = b"y" * 76 + b"\n"
    with path.open("wb") as f:
        f.write(b"Message-ID: <big@queue.test>\nSubject: big\n\n")
        for _ in range(50 * 1024 * 1024 // len(line)):
            f.write(line)
    _, rss = _capped(q, path, [*MSMTPQ, "-C", str(q.rc), "bob@example.org"])
    assert rss < 150 * 1024  # KiB
    [entry_id] = q.entries()
    assert q.metadata(entry_id)["size"] == path.stat().st_size
    with RecordingServer() as server:
        q.up(server)
        (q.dir / "empty").touch()
        _, rss = _capped(q, q.dir / "empty", [*QUEUE, "-r"])
        server.wait_idle()
        assert message_ids(server) == Counter({"<big@queue.test>": 1})
    assert rss < 150 * 1024
    assert q.entries() == []


def test_an_unreachable_server_costs_one_attempt_per_run(q: Setup) -> None:
    for n in range(4):
        assert q.send(n, "--q-only").returncode == 0
    res = q.manage("-r")
    assert res.returncode == 0
    assert res.stdout.count(b": deferred") == 1
    assert res.stdout.count(b"not tried (its server could not be reached)") == 3
    assert sorted(q.metadata(i)["attempts"] for i in q.entries()) == [0, 0, 0, 1]


def test_a_temporary_authentication_failure_is_queued(q: Setup, real_msmtp: str) -> None:
    with RecordingServer(auth={"u": "p"}, replies={"AUTH": "454 4.7.0 try later"}) as server:
        q.rc = write_config(q.dir, server, timeout=10, auth="plain", user="u", password="p")
        real = subprocess.run([real_msmtp, "-C", str(q.rc), "bob@example.org"], input=mail(1),
                              capture_output=True, timeout=60)
        res = q.send(1)
    assert real.returncode == 77 and res.returncode == 0
    [entry_id] = q.entries()
    assert q.metadata(entry_id)["last_exitcode"] == 77
    assert q.metadata(entry_id)["config"] == str(q.rc)


def test_a_log_that_cannot_be_written_does_not_stop_the_queue(q: Setup) -> None:
    q.env["MSMTP_LOG"] = str(q.dir / "no-such-dir" / "log")
    res = q.send(1)
    assert res.returncode == 0 and b"cannot log to" in res.stderr
    assert len(q.entries()) == 1
    with RecordingServer() as server:
        q.up(server)
        res = q.manage("-r")
    assert res.returncode == 0 and b"delivered" in res.stdout and b"cannot log to" in res.stdout
    assert q.entries() == []


def test_what_is_not_a_mail_is_msmtps(q: Setup) -> None:
    # stdin is left alone: with it open and silent, these still end at once
    for args, code in ((["--version"], 0), (["--bogus"], 64), (["-S", "-C", str(q.rc)], 75)):
        proc = subprocess.Popen([*MSMTPQ, *args], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=q.env)
        try:
            assert proc.wait(timeout=60) == code, args
        finally:
            proc.kill()
            proc.wait()
            assert proc.stdin is not None
            proc.stdin.close()
    # --pretend reads the headers, as msmtp's does, and sends nothing
    res = q.msmtpq("-P", "-C", str(q.rc), "b@x", input=mail(1))
    assert res.returncode == 0 and b"host = 127.0.0.1" in res.stdout
    assert not q.queue.exists()


def test_queue_only_lists_the_header_recipients(q: Setup) -> None:
    res = q.msmtpq("--q-only", "-t", "--read-envelope-from", "-C", str(q.rc),
                   input=b"From: Alice <alice@example.org>\nTo: bob@example.org\n"
                         b"Cc: carol@example.org\n\nhi\n")
    assert res.returncode == 0, res.stderr
    [entry_id] = q.entries()
    meta = q.metadata(entry_id)
    assert meta["recipients"] == ["bob@example.org", "carol@example.org"]
    assert meta["from"] == "alice@example.org"
    with RecordingServer() as server:
        q.up(server)
        assert q.manage("-r").returncode == 0
        server.wait_idle()
        assert server.message.rcpt_to == ["<bob@example.org>", "<carol@example.org>"]
