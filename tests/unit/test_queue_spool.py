"""The queue's pure parts (msmtp_twisted/queue, issue 12): the metadata format,
the back-off, temporary vs permanent, and the spool's claims, commits and
clean-up on a real directory."""

from __future__ import annotations

import fcntl
import io
import json
import os
import stat
from pathlib import Path

import pytest

from msmtp_twisted import sysexits
from msmtp_twisted.errors import Cause, ConnectFailure, SMTPFailure, TLSFailure
from msmtp_twisted.queue.entry import BadEntry, Entry, new_id, valid_id
from msmtp_twisted.queue.flush import flush
from msmtp_twisted.queue.location import default_log, default_queue_dir
from msmtp_twisted.queue.outcome import Kind, Result, classify
from msmtp_twisted.queue.schedule import Schedule
from msmtp_twisted.queue.spool import Spool
from msmtp_twisted.smtp.reply import Reply


def test_ids() -> None:
    entry_id = new_id(0)
    assert entry_id.startswith("19700101-000000-") and valid_id(entry_id)
    assert new_id() != new_id()
    for bad in ("", "../x", "19700101-000000-ABCDEFABCDEF", "19700101-000000-abc",
                "19700101-000000-abcdefabcdef.json", "19700101-000000-abcdefabcdef\n"):
        assert not valid_id(bad)


def test_entry_round_trip_keeps_unknown_keys() -> None:
    entry = Entry(id=new_id(), argv=["-a", "x", "--", "b@x"], account="x", size=12,
                  created=1.5, recipients=["b@x"], last_error="a 'quoted'\nsecond")
    data = json.loads(entry.to_json())
    data["from_the_future"] = [1, 2]
    again = Entry.from_json(json.dumps(data).encode(), entry.id)
    assert again.extra == {"from_the_future": [1, 2]}
    again.extra = {}
    assert again == entry
    assert json.loads(Entry.from_json(json.dumps(data).encode()).to_json())["from_the_future"]


@pytest.mark.parametrize("raw", [
    b"", b"{", b"[]", b"\xff", b'{"version": 2}', b'{"version": 1}',
    b'{"version": 1, "id": "x", "argv": []}',
    b'{"version": 1, "id": "20260101-000000-abcdefabcdef", "argv": "not a list"}',
    b'{"version": 1, "id": "20260101-000000-abcdefabcdef", "argv": [], "attempts": "1"}',
    b'{"version": true}',
])
def test_bad_metadata_is_rejected(raw: bytes) -> None:
    with pytest.raises(BadEntry):
        Entry.from_json(raw)


def test_id_must_match_the_file() -> None:
    entry = Entry(id=new_id(), argv=[], created=1, next_attempt=1)
    with pytest.raises(BadEntry):
        Entry.from_json(entry.to_json(), "20000101-000000-000000000000")


def test_schedule() -> None:
    s = Schedule(base=60, cap=3600, max_age=86400)
    assert [s.delay(n) for n in range(1, 10)] == [0, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert s.delay(10**6) == 3600
    assert s.next_attempt(created=0, failures=5, now=100) == 100 + 480
    assert s.next_attempt(created=0, failures=9, now=86000) == 86400  # the last try on time
    assert not s.expired(0, 86399) and s.expired(0, 86400)


def test_location() -> None:
    assert default_queue_dir({"MSMTP_QUEUE": "/q"}) == "/q"
    assert default_queue_dir({"XDG_STATE_HOME": "/s", "HOME": "/h"}) == "/s/msmtp/queue"
    assert default_queue_dir({"XDG_STATE_HOME": "rel", "HOME": "/h"}) == \
        "/h/.local/state/msmtp/queue"
    assert default_log("/q", {}) == "/q/log"
    assert default_log("/q", {"MSMTP_LOG": "none"}) is None
    assert default_log("/q", {"MSMTP_LOG": "/l"}) == "/l"


def _reply(code: int) -> Reply:
    return Reply(code, [f"{code} text"])


@pytest.mark.parametrize(("code", "outcome", "kind"), [
    (0, None, Kind.DELIVERED),
    (78, None, Kind.PERMANENT),
    (69, SMTPFailure(69, "x", _reply(451)), Kind.TEMPORARY),
    (69, SMTPFailure(69, "x", _reply(421)), Kind.TEMPORARY),
    (65, SMTPFailure(65, "x", _reply(550)), Kind.PERMANENT),
    (69, SMTPFailure(69, "x", _reply(554)), Kind.PERMANENT),
    (77, SMTPFailure(77, "x", _reply(535)), Kind.PERMANENT),
    (77, SMTPFailure(77, "x", _reply(454)), Kind.TEMPORARY),
    (75, ConnectFailure(75, "x", cause=Cause.REFUSED), Kind.TEMPORARY),
    (68, ConnectFailure(68, "x", cause=Cause.DNS), Kind.TEMPORARY),
    (75, ConnectFailure(75, "x", cause=Cause.UNREACHABLE), Kind.TEMPORARY),
    (74, SMTPFailure(74, "x", cause=Cause.TIMEOUT), Kind.TEMPORARY),
    (74, SMTPFailure(74, "x", cause=Cause.RESET), Kind.TEMPORARY),
    (76, SMTPFailure(76, "x", cause=Cause.CLOSED), Kind.TEMPORARY),
    (76, SMTPFailure(76, "x", cause=Cause.PROTOCOL), Kind.PERMANENT),
    (69, SMTPFailure(69, "x", cause=Cause.UNSUPPORTED), Kind.PERMANENT),
    (69, TLSFailure(69, "x", cause=Cause.TLS_CERTIFICATE), Kind.PERMANENT),
    (66, TLSFailure(66, "x", cause=Cause.LOCAL), Kind.PERMANENT),
    (70, RuntimeError("a bug of ours"), Kind.TEMPORARY),
])
def test_classify(code: int, outcome: object, kind: Kind) -> None:
    assert classify(code, outcome) is kind


def _queued(spool: Spool, data: bytes = b"Subject: x\n\nbody\n", **fields: object) -> Entry:
    incoming = spool.incoming()
    incoming.write_from(io.BytesIO(data), chunk=4)
    entry = Entry(id=incoming.id, argv=["b@x"], size=incoming.size, created=1.0,
                  next_attempt=0.0, **fields)  # type: ignore[arg-type]
    spool.commit(incoming, entry)
    return entry


def test_commit_claim_remove(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path / "q"))
    spool.ensure()
    assert stat.S_IMODE(os.stat(spool.path).st_mode) == 0o700
    entry = _queued(spool)
    assert os.listdir(spool.tmp) == []
    assert sorted(os.listdir(spool.path)) == sorted(
        [".lock", "tmp", "failed", entry.id + ".eml", entry.id + ".json"])
    assert spool.scan().entries == [entry]
    claim = spool.claim(entry.id)
    assert claim is not None and claim.entry == entry
    assert spool.claim(entry.id) is None  # held (a second open file, same process too)
    with claim.message() as f:
        assert f.read() == b"Subject: x\n\nbody\n"
    spool.remove(claim)
    assert spool.claim(entry.id) is None and spool.scan().entries == []


def test_a_claim_dies_with_its_holder(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path / "q"))
    spool.ensure()
    entry = _queued(spool)
    pid = os.fork()
    if pid == 0:  # the child claims and dies without releasing
        spool.claim(entry.id)
        os._exit(0)
    os.waitpid(pid, 0)
    claim = spool.claim(entry.id)
    assert claim is not None
    claim.release()


def test_clean_removes_what_crashes_leave_but_not_live_files(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path / "q"))
    spool.ensure()
    live = spool.incoming()  # being received right now (flock()ed)
    live.write_from(io.BytesIO(b"partial"))
    dead = Path(spool.tmp, new_id() + ".eml")
    dead.write_bytes(b"half")
    orphan = Path(spool.path, new_id() + ".eml")
    orphan.write_bytes(b"no metadata")
    foreign = Path(spool.path, "notes.txt")
    foreign.write_text("mine")
    done = spool.clean()
    assert len(done) == 2
    assert Path(live.path).exists() and not dead.exists() and not orphan.exists()
    assert foreign.exists()
    live.discard()
    # while another process changes the queue (shared lock), nothing is cleaned
    dead.write_bytes(b"half")
    fd = os.open(spool.lockfile, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)
    try:
        assert spool.clean() == [] and dead.exists()
    finally:
        os.close(fd)


def test_an_interrupted_move_to_failed_is_finished(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path / "q"))
    spool.ensure()
    entry = _queued(spool)
    os.rename(os.path.join(spool.path, entry.id + ".eml"),
              os.path.join(spool.failed, entry.id + ".eml"))  # the crash came here
    scan = spool.scan()
    assert scan.entries == [] and "without its message" in scan.problems[0]
    spool.clean()
    assert sorted(os.listdir(spool.failed)) == [entry.id + ".eml", entry.id + ".json"]
    assert spool.scan().problems == []


def test_commit_failure_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = Spool(str(tmp_path / "q"))
    spool.ensure()
    incoming = spool.incoming()
    incoming.write_from(io.BytesIO(b"mail"))
    entry = Entry(id=incoming.id, argv=[], created=1, next_attempt=1)
    real_rename = os.rename

    def rename(src: str, dst: str) -> None:
        if dst.endswith(".json"):
            raise OSError(28, "No space left on device")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError):
        spool.commit(incoming, entry)
    monkeypatch.undo()
    assert sorted(os.listdir(spool.path)) == [".lock", "failed", "tmp"]
    assert os.listdir(spool.tmp) == []


def test_flush_records_each_result(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path / "q"))
    spool.ensure()
    ok, later, never = (_queued(spool, account=name) for name in ("a", "b", "c"))
    kinds = {ok.id: Kind.DELIVERED, later.id: Kind.TEMPORARY, never.id: Kind.PERMANENT}
    seen: list[tuple[str | None, int]] = []

    def deliver(account, claims):  # type: ignore[no-untyped-def]
        seen.append((account, len(claims)))
        for claim in claims:
            yield claim, Result(kinds[claim.entry.id], sysexits.EX_TEMPFAIL, ["no"])

    log = tmp_path / "log"
    report = flush(spool, deliver, log=str(log), clock=lambda: 1000.0,
                   schedule=Schedule(base=10))
    assert sorted(seen) == [("a", 1), ("b", 1), ("c", 1)]
    assert (report.delivered, report.deferred, report.failed) == ([ok.id], [later.id],
                                                                   [never.id])
    [kept] = spool.scan().entries
    assert kept.id == later.id and kept.attempts == 1 and kept.next_attempt == 1000.0
    assert kept.last_error == "no"
    assert sorted(os.listdir(spool.failed)) == [never.id + ".eml", never.id + ".json"]
    text = log.read_text()
    assert "event=delivered" in text and "event=deferred" in text and "event=failed" in text
    # the next failure waits: not due, not handed to the sender
    seen.clear()
    report = flush(spool, deliver, clock=lambda: 1000.0, schedule=Schedule(base=10))
    assert seen == [("b", 1)]
    report = flush(spool, deliver, clock=lambda: 1001.0, schedule=Schedule(base=10))
    assert report.waiting == [later.id]


def test_a_queue_others_can_write_is_refused(tmp_path: Path) -> None:
    # an entry's arguments can run commands (--passwordeval): nobody else may add one
    from msmtp_twisted.queue.spool import SpoolError

    spool = Spool(str(tmp_path / "q"))
    spool.ensure()
    os.chmod(spool.path, 0o777)
    with pytest.raises(SpoolError, match="unsafe"):
        spool.ensure()
    os.chmod(spool.path, 0o700)
    os.chmod(spool.tmp, 0o770)
    with pytest.raises(SpoolError, match="unsafe"):
        spool.ensure()
    os.chmod(spool.tmp, 0o700)
    if os.geteuid() == 0:  # giving a directory away takes root
        os.chown(spool.failed, 12345, -1)
        with pytest.raises(SpoolError, match="unsafe"):
            spool.ensure(create=False)
        os.chown(spool.failed, os.geteuid(), -1)
    spool.ensure()
    os.symlink(spool.path, tmp_path / "link")  # a link the user made to the queue is fine
    Spool(str(tmp_path / "link")).ensure()


def test_an_account_the_sender_gives_up_on_waits_whole(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path / "q"))
    spool.ensure()
    entries = [_queued(spool, account="a") for _ in range(5)]
    other = _queued(spool, account="b")
    handed: list[int] = []

    def deliver(account, claims):  # type: ignore[no-untyped-def]
        handed.append(len(claims))
        claim = claims[0]
        yield claim, Result(Kind.TEMPORARY, sysexits.EX_TEMPFAIL, ["refused"], connected=False)
        if account == "b":
            return

    report = flush(spool, deliver, clock=lambda: 1000.0, batch=2)
    # one attempt for account a (its first batch), none of its later batches
    assert handed == [2, 1] or handed == [1, 2]
    assert len(report.deferred) == 2 and len(report.left) == 4
    assert {e.id for e in entries} | {other.id} == set(report.deferred) | set(report.left)
    assert sorted(e.attempts for e in spool.scan().entries) == [0, 0, 0, 0, 1, 1]
