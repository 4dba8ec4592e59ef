"""``msmtpd --queue=DIR`` against real ``msmtpd`` and ``twistd -n msmtpd``
processes over real sockets on 127.0.0.1: 250 once the mail is on disk,
background delivery by the pipe command with back-off, ``failed/`` for a
permanent failure, entries left from before delivered after a restart, a full
disk refused with 452, and a bounded load while the command fails every other
time.

The pipe command is a small ``sh`` script: it exits 75 (EX_TEMPFAIL) while a
flag file exists (or, in the load test, for every other process id), 65 for a
recipient ``perm@...``, and otherwise stores the mail it reads in ``out/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers.msmtpd import begin_mail, read_reply, start_mail
from tests.servers.tmpfs import tmpfs

SCRIPT = """#!/bin/sh
D='{dir}'
if [ -e "$D/slow" ]; then touch "$D/started"; sleep 60; fi
if [ -e "$D/flag" ]; then echo "relay down" >&2; exit 75; fi
if [ -e "$D/alternate" ] && [ $(( $$ % 2 )) = 1 ]; then echo "relay flaky" >&2; exit 75; fi
case "$*" in *perm@*) echo "no such user" >&2; exit 65;; esac
f=$(mktemp "$D/out/mail.XXXXXX") && cat > "$f"
"""


class Relay:
    """The command and what it delivered."""

    def __init__(self, base: Path) -> None:
        self.dir = base / "relay"
        (self.dir / "out").mkdir(parents=True)
        self.script = self.dir / "cmd.sh"
        self.script.write_text(SCRIPT.format(dir=self.dir))
        self.script.chmod(0o755)
        self.flag = self.dir / "flag"

    def command(self) -> str:
        return f"--command={self.script} -f %F --"

    def down(self) -> None:
        self.flag.touch()

    def up(self) -> None:
        self.flag.unlink(missing_ok=True)

    def mails(self) -> list[bytes]:
        out = []
        for p in (self.dir / "out").iterdir():
            with contextlib.suppress(FileNotFoundError):
                out.append(p.read_bytes())
        return out

    def message_ids(self) -> Counter[str]:
        ids: Counter[str] = Counter()
        for mail in self.mails():
            m = re.search(rb"^Message-ID: <([^>]*)>", mail, re.M | re.I)
            if m:
                ids[m.group(1).decode()] += 1
        return ids


@pytest.fixture
def relay(tmp_path: Path) -> Relay:
    return Relay(tmp_path)


def entries(queue: Path, sub: str = "") -> list[dict[str, Any]]:
    d = queue / sub if sub else queue
    if not d.is_dir():
        return []
    out = []
    for p in sorted(d.glob("*.json")):
        with contextlib.suppress(FileNotFoundError, ValueError):
            out.append(json.loads(p.read_text()))
    return out


def wait_for(what: Callable[[], Any], timeout: float, message: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out: {message}")


def mail(n: int | str, rcpt: str = "r@example.org") -> bytes:
    return (f"Message-ID: <{n}@test>\r\nSubject: queued {n}\r\nTo: {rcpt}\r\n\r\n"
            f"body of mail {n}\r\n.\r\n").encode()


def send(port: int, n: int | str, rcpt: str = "r@example.org") -> bytes:
    with start_mail(port, rcpt) as sock:
        sock.sendall(mail(n, rcpt))
        return read_reply(sock, timeout=20)


def queue_args(queue: Path, relay: Relay, *extra: str) -> list[str]:
    return [f"--queue={queue}", relay.command(), "--queue-interval=0.3",
            "--queue-backoff=0.3", "--queue-backoff-max=1", *extra]


@pytest.mark.parametrize("runner", ["msmtpd", "twistd"])
def test_temporary_failure_answers_250_then_delivers_once(runner: str, msmtpd: Any,
                                                          relay: Relay, tmp_path: Path) -> None:
    queue = tmp_path / "queue"
    relay.down()
    srv = msmtpd(queue_args(queue, relay), runner, start_timeout=20)
    started = time.monotonic()
    reply = send(srv.port, 1)
    assert reply.startswith(b"250 Ok, mail queued as "), reply
    assert time.monotonic() - started < 10
    entry_id = reply.split()[-1].decode()
    # on disk when the client has its 250: both files, the metadata naming the command
    assert (queue / f"{entry_id}.eml").read_bytes().endswith(b"body of mail 1\n")
    meta = json.loads((queue / f"{entry_id}.json").read_text())
    assert meta["recipients"] == ["r@example.org"]
    assert meta["command"][0] == str(relay.script)
    assert meta["command"][-2:] == ["--", "r@example.org"]
    # the background flush tries, fails temporarily, backs off
    wait_for(lambda: any(e["attempts"] >= 2 for e in entries(queue)), 20, "no retry")
    assert relay.mails() == []
    assert (os.stat(queue).st_mode & 0o777) == 0o700
    relay.up()
    wait_for(lambda: not entries(queue), 20, "not delivered")
    time.sleep(1.5)  # several more flushes: nothing sent twice
    assert relay.message_ids() == {"1@test": 1}
    assert "event=deferred" in (queue / "log").read_text()
    assert f"id={entry_id} event=delivered" in (queue / "log").read_text()


def test_permanent_failure_goes_to_failed_with_a_log_line(msmtpd: Any, relay: Relay,
                                                          tmp_path: Path) -> None:
    queue = tmp_path / "queue"
    log = tmp_path / "msmtpd.log"
    srv = msmtpd([*queue_args(queue, relay), f"--log={log}"])
    reply = send(srv.port, 2, "perm@example.org")
    assert reply.startswith(b"250 "), reply
    entry_id = reply.split()[-1].decode()
    wait_for(lambda: (queue / "failed" / f"{entry_id}.json").exists(), 20, "not failed")
    assert not (queue / f"{entry_id}.json").exists()
    assert (queue / "failed" / f"{entry_id}.eml").exists()
    failed = json.loads((queue / "failed" / f"{entry_id}.json").read_text())
    assert failed["last_exitcode"] == 65
    assert "no such user" in failed["last_error"]
    assert re.search(rf"id={entry_id} event=failed .*errormsg='no such user.*exitcode=EX_DATAERR",
                     (queue / "log").read_text())
    wait_for(lambda: f"queue: {entry_id}: failed, moved to" in log.read_text(), 10,
             "no msmtpd log line")
    assert relay.mails() == []
    # the 250 was for storing the mail, and the log says so (nothing was piped then)
    assert f"mail queued as {entry_id} in {queue}" in log.read_text()
    assert "piped successfully" not in log.read_text()


def test_restart_delivers_what_was_left(msmtpd: Any, relay: Relay, tmp_path: Path) -> None:
    queue = tmp_path / "queue"
    relay.down()
    # --queue-interval=0: only the start-up flush and the one after each mail
    args = [f"--queue={queue}", relay.command(), "--queue-interval=0"]
    first = msmtpd(args)
    for n in range(3):
        assert send(first.port, n).startswith(b"250 ")
    wait_for(lambda: len(entries(queue)) == 3 and all(e["attempts"] >= 1
                                                      for e in entries(queue)),
             20, "not tried")
    first.stop()
    assert len(entries(queue)) == 3
    assert relay.mails() == []
    relay.up()
    msmtpd(args)
    wait_for(lambda: not entries(queue), 20, "left entries not delivered")
    assert relay.message_ids() == {"0@test": 1, "1@test": 1, "2@test": 1}


def test_unusable_queue_does_not_start(tmp_path: Path, relay: Relay) -> None:
    from tests.servers.msmtpd import run_msmtpd

    queue = tmp_path / "queue"
    queue.mkdir(mode=0o777)
    queue.chmod(0o777)
    r = run_msmtpd("msmtpd", f"--queue={queue}", relay.command(), "--port=1")
    assert r.returncode == 3
    assert b"cannot use queue" in r.stderr and b"unsafe" in r.stderr


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "small", "256k") as where:
        yield where


def test_full_disk_is_452_never_250(msmtpd: Any, relay: Relay, small_disk: Path) -> None:
    queue = small_disk / "queue"
    relay.down()
    srv = msmtpd(queue_args(queue, relay))
    big = b"x" * 998 + b"\r\n"
    with start_mail(srv.port) as sock:
        sock.sendall(b"Message-ID: <big@test>\r\n\r\n" + big * 400 + b".\r\n")
        reply = read_reply(sock, timeout=20)
    assert reply.startswith(b"452 "), reply
    assert entries(queue) == []
    assert list((queue / "tmp").iterdir()) == []
    assert not list(queue.glob("*.eml"))
    # a small mail still fits
    assert send(srv.port, "small").startswith(b"250 ")


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_load_every_mail_delivered_exactly_once(msmtpd: Any, relay: Relay,
                                                tmp_path: Path) -> None:
    """1,000 mails from 20 concurrent clients while the command fails every other
    time (the relay going down and up): each delivered exactly once, the daemon's
    memory flat."""
    clients, per_client, rounds = 20, 25, 2
    queue = tmp_path / "queue"
    (relay.dir / "alternate").touch()
    srv = msmtpd(queue_args(queue, relay, "--queue-backoff=0.2", "--queue-backoff-max=0.5"))
    deadline = time.monotonic() + 150
    replies: list[bytes] = []
    lock = threading.Lock()

    def client(c: int) -> None:
        # msmtpd serves 16 sessions at once (msmtpd's limit) and answers 421 beyond
        # that: a client comes back later, as an MTA would
        while True:
            sock = socket.create_connection(("127.0.0.1", srv.port), timeout=20)
            greeting = read_reply(sock)
            if greeting.startswith(b"220 "):
                break
            sock.close()
            assert greeting.startswith(b"421 "), greeting
            if time.monotonic() > deadline:
                return
            time.sleep(0.1)
        try:
            sock.sendall(b"EHLO x\r\n")
            assert read_reply(sock)[:3] == b"250"
            for k in range(per_client):
                if time.monotonic() > deadline:
                    return
                begin_mail(sock)
                sock.sendall(mail(f"{c}-{k}"))
                reply = read_reply(sock, timeout=20)
                with lock:
                    replies.append(reply)
            sock.sendall(b"QUIT\r\n")
        finally:
            sock.close()

    # warm up, then measure: the same load again must not grow the daemon
    rss = []
    for rnd in range(rounds):
        threads = [threading.Thread(target=client, args=(c + 100 * rnd,))
                   for c in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=max(1, deadline - time.monotonic()))
        rss.append(_rss_kib(srv.pid))
    assert all(r.startswith(b"250 ") for r in replies), Counter(r[:3] for r in replies)
    assert len(replies) == clients * per_client * rounds
    wait_for(lambda: not entries(queue), max(5, deadline - time.monotonic()),
             f"still queued: {len(entries(queue))}")
    ids = relay.message_ids()
    assert len(ids) == clients * per_client * rounds
    assert set(ids.values()) == {1}, [k for k, v in ids.items() if v != 1]
    assert "event=deferred" in (queue / "log").read_text()  # the failures did happen
    rss.append(_rss_kib(srv.pid))
    print("RSS KiB after each round and at the end:", rss)
    assert rss[-1] - rss[0] < 20_000, rss  # KiB: flat, not growing with the mails
    assert list((queue / "failed").iterdir()) == []


def test_without_queue_nothing_changes(msmtpd: Any, relay: Relay, tmp_path: Path) -> None:
    relay.down()
    srv = msmtpd([relay.command()])
    assert send(srv.port, 9).startswith(b"451 Pipe command reported error 75")
    srv.signal(signal.SIGTERM)
    assert srv.wait(20) == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()


def test_msmtp_queue_lists_but_leaves_the_daemons_command_entries(msmtpd: Any, relay: Relay,
                                                                  tmp_path: Path) -> None:
    """An entry with its own command is msmtpd's: ``msmtp-queue -d`` lists it,
    ``-r`` does not run msmtp with the command's arguments."""
    import sys

    from tests.conftest import ours_env

    queue = tmp_path / "queue"
    relay.down()
    srv = msmtpd([f"--queue={queue}", relay.command(), "--queue-interval=0"])
    reply = send(srv.port, 5)
    entry_id = reply.split()[-1].decode()
    wait_for(lambda: entries(queue) and entries(queue)[0]["attempts"] >= 1, 20, "not tried")
    srv.stop()
    before = entries(queue)
    manage = [sys.executable, "-m", "msmtp_twisted.msmtpq", "--q-mgmt", "--queue-dir",
              str(queue), "--log", "none"]
    env = ours_env(dict(os.environ))
    listed = subprocess.run([*manage, "-d"], capture_output=True, timeout=60, env=env,
                            stdin=subprocess.DEVNULL)
    assert entry_id in listed.stdout.decode(), listed
    run = subprocess.run([*manage, "-r"], capture_output=True, timeout=60, env=env,
                         stdin=subprocess.DEVNULL)
    assert f"{entry_id}: not tried" in run.stdout.decode(), run
    assert entries(queue) == before
    assert relay.mails() == []


def test_stop_during_a_background_delivery_keeps_the_mail(msmtpd: Any, relay: Relay,
                                                          tmp_path: Path) -> None:
    """SIGTERM while the command runs: it gets --shutdown-timeout, is stopped
    with its process group, and the mail stays queued as it was; the next start
    delivers it once."""
    queue = tmp_path / "queue"
    (relay.dir / "slow").touch()
    args = [f"--queue={queue}", relay.command(), "--queue-interval=0"]
    srv = msmtpd([*args, "--shutdown-timeout=1"])
    assert send(srv.port, 7).startswith(b"250 ")
    wait_for(lambda: (relay.dir / "started").exists(), 20, "the command did not start")
    sent = srv.signal(signal.SIGTERM)
    assert srv.wait(30) == 0
    assert time.monotonic() - sent < 20
    [entry] = entries(queue)
    assert entry["attempts"] == 0
    (relay.dir / "slow").unlink()
    msmtpd(args)
    wait_for(lambda: not entries(queue), 20, "not delivered after the restart")
    assert relay.message_ids() == {"7@test": 1}
