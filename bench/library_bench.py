"""The library side by side with smtplib and aiosmtplib, and the command line's start-up.

    python bench/library_bench.py [--mails 1000] [--rounds 3] [--startup-runs 20]
                                  [--only REGEX] [--sections plain,starttls,startup]
                                  [--json FILE]

Throughput: each contender sends ``--mails`` small mails to one local sink
(bench/sink.py, in its own process) in a process of its own, so that its peak
RSS (``wait4``) is its own.  Contenders run one after the other, round-robin,
``--rounds`` times; the table shows the median mails/s.  The timed part of a run
starts before the first connection and ends when the last mail is accepted and
the connection closed; interpreter start-up and imports are not in it.  The
sink counts what it accepted, and a run whose count differs is an error.
``raw`` is a trivial client (one write and one read per mail, pipelined): it
shows what the sink can take, and "sink CPU" shows how busy the sink was during
each run, so the sink is known not to be the bottleneck.

Sections: ``plain`` (no TLS), ``starttls`` (STARTTLS with a certificate from
tests/servers/tlspki.py, then AUTH PLAIN; the sink checks both) and ``startup``:
``msmtp`` sending one small mail (``python -m msmtp_twisted`` and the installed
``msmtp`` script next to this Python) against the bare
``python -c "from twisted.internet import reactor"`` (and ``, ssl`` for
STARTTLS), and ``/usr/bin/msmtp`` for reference.  The commands take turns,
``--startup-runs`` times each; the table shows medians and ratios to the
floor.  Timings on a shared machine are noisy: compare the ratios, which come
from one run.

Adding a contender is one function registered with ``@contender`` (see
``ours_sender`` for our pooled sender).  docs/performance.md ("Library") shows
the figures of one run.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import os
import re
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FROM = "a@example.com"
TO = "b@example.org"
USER = "bench"
PASSWORD = "bench-secret"
TIMEOUT = 30  # seconds per network step, in every client


def message(i: int) -> bytes:
    """A small mail that nobody rewrites: Date and Message-ID are there already."""
    return (f"From: {FROM}\r\nTo: {TO}\r\nSubject: bench {i}\r\n"
            f"Date: Thu, 26 Nov 2026 12:00:00 +0000\r\n"
            f"Message-ID: <{i}.bench@example.com>\r\n\r\nhello {i}\r\n").encode()


@dataclass
class Target:
    """Where and how to send: the sink's port, TLS (STARTTLS + AUTH PLAIN) or not."""

    port: int
    tls: bool
    ca: str | None  # PEM trust file for the sink's certificate
    rc: str  # an msmtprc with one account "default" for this sink
    host: str = "127.0.0.1"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca)


class Skip(Exception):
    """A contender that cannot run here (package missing, API not there yet)."""


@dataclass
class Session:
    """One contender's way to send: ``send(mail)`` (blocking, awaitable or Deferred
    as its kind says) and ``close()`` (the same)."""

    send: Callable[[bytes], Any]
    close: Callable[[], Any]


@dataclass
class Contender:
    name: str
    label: str
    kind: str  # "sync", "asyncio" or "twisted"
    open: Callable[..., Any]  # (target) or (reactor, target) -> Session
    concurrency: int = 1  # sends in flight at once
    imports: tuple[str, ...] = ()  # imported before the clock starts; missing: skipped


CONTENDERS: dict[str, Contender] = {}


def contender(name: str, label: str, kind: str, *, concurrency: int = 1,
              imports: Sequence[str] = ()) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        CONTENDERS[name] = Contender(name, label, kind, fn, concurrency, tuple(imports))
        return fn
    return register


# --- contenders -------------------------------------------------------------------------

class _Raw:
    """The least a client can do: blocking socket, no parsing beyond counting replies.

    It sends MAIL, RCPT, DATA and the mail in one write, without waiting for 354:
    only a sink that reads DATA's bytes in order (this one) takes that."""

    def __init__(self, target: Target) -> None:
        self.sock = socket.create_connection((target.host, target.port), timeout=TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.replies(1)
        self.sock.sendall(b"EHLO bench\r\n")
        self.replies(1)
        if target.tls:
            self.sock.sendall(b"STARTTLS\r\n")
            self.replies(1)
            self.sock = target.ssl_context().wrap_socket(self.sock, server_hostname=target.host)
            import base64

            plain = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode())
            self.sock.sendall(b"EHLO bench\r\nAUTH PLAIN " + plain + b"\r\n")
            codes = self.replies(2)
            if codes[-1] != b"235":
                raise RuntimeError(f"raw: AUTH refused: {codes}")

    def replies(self, count: int) -> list[bytes]:
        codes: list[bytes] = []
        while len(codes) < count:
            nl = self.buf.find(b"\n")
            if nl < 0:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise RuntimeError("raw: connection closed")
                self.buf += chunk
                continue
            line, self.buf = self.buf[:nl + 1], self.buf[nl + 1:]
            if line[3:4] != b"-":
                codes.append(line[:3])
        return codes

    def send(self, mail: bytes) -> None:
        self.sock.sendall(b"MAIL FROM:<" + FROM.encode() + b">\r\nRCPT TO:<" + TO.encode()
                          + b">\r\nDATA\r\n" + mail + b".\r\n")
        codes = self.replies(4)
        if codes != [b"250", b"250", b"354", b"250"]:
            raise RuntimeError(f"raw: {codes}")

    def close(self) -> None:
        self.sock.sendall(b"QUIT\r\n")
        self.replies(1)
        self.sock.close()


@contender("raw", "raw socket, pipelined (sink capacity)", "sync")
def raw(target: Target) -> Session:
    client = _Raw(target)
    return Session(client.send, client.close)


@contender("smtplib", "smtplib, 1 connection", "sync", imports=["smtplib"])
def smtplib_one(target: Target) -> Session:
    import smtplib

    smtp = smtplib.SMTP(target.host, target.port, timeout=TIMEOUT)
    if target.tls:
        smtp.starttls(context=target.ssl_context())
        smtp.login(USER, PASSWORD)

    def send(mail: bytes) -> None:
        smtp.sendmail(FROM, [TO], mail)

    return Session(send, smtp.quit)


@contender("aiosmtplib", "aiosmtplib, 1 connection", "asyncio", imports=["aiosmtplib"])
async def aiosmtplib_one(target: Target) -> Session:
    import aiosmtplib

    smtp = aiosmtplib.SMTP(hostname=target.host, port=target.port, timeout=TIMEOUT,
                           start_tls=False)
    await smtp.connect()
    if target.tls:
        await smtp.starttls(tls_context=target.ssl_context())
        await smtp.login(USER, PASSWORD)

    async def send(mail: bytes) -> None:
        await smtp.sendmail(FROM, [TO], mail)

    return Session(send, smtp.quit)


def _ours_send_mail(reactor: Any, target: Target) -> Session:
    from msmtp_twisted.api import load_account, send_mail

    account = load_account("default", config_file=target.rc)
    return Session(lambda mail: send_mail(reactor, account, FROM, [TO], mail), lambda: None)


contender("ours-send_mail", "ours: api.send_mail, one at a time", "twisted",
          imports=["msmtp_twisted.api"])(_ours_send_mail)
contender("ours-send_mail-x4", "ours: api.send_mail, 4 at a time", "twisted", concurrency=4,
          imports=["msmtp_twisted.api"])(_ours_send_mail)


def _our_sender_class() -> Any:
    """Our sender that keeps connections (``msmtp_twisted.api.Sender``)."""
    from msmtp_twisted import api

    sender = getattr(api, "Sender", None)
    if sender is None:  # an older checkout
        raise Skip("msmtp_twisted.api has no Sender")
    return sender


def ours_sender(reactor: Any, target: Target, connections: int) -> Session:
    from msmtp_twisted.api import load_account

    account = load_account("default", config_file=target.rc)
    sender = _our_sender_class()(reactor, account, connections=connections)
    return Session(lambda mail: sender.send(FROM, [TO], mail), sender.close)


@contender("ours-sender-1", "ours: Sender, 1 connection", "twisted",
           imports=["msmtp_twisted.api"])
def ours_sender_one(reactor: Any, target: Target) -> Session:
    return ours_sender(reactor, target, 1)


@contender("ours-sender-4", "ours: Sender, 4 connections, 4 at a time", "twisted",
           concurrency=4, imports=["msmtp_twisted.api"])
def ours_sender_four(reactor: Any, target: Target) -> Session:
    return ours_sender(reactor, target, 4)


# --- the worker: one contender in one process -------------------------------------------

def _rss_kib(field: str = "VmRSS") -> int:
    """This process's resident memory now, or its peak with ``VmHWM`` (``wait4``'s
    ru_maxrss would count the parent's pages from before the exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class _Progress:
    """Counts mails and samples RSS after the first tenth and at the end."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.started = 0
        self.done = 0
        self.rss_tenth = 0
        self.rss_end = 0

    def take(self) -> int | None:
        if self.started >= self.total:
            return None
        self.started += 1
        return self.started - 1

    def sent(self) -> None:
        self.done += 1
        if self.done == max(1, self.total // 10):
            self.rss_tenth = _rss_kib()
        if self.done == self.total:
            self.rss_end = _rss_kib()


def _run_sync(c: Contender, target: Target, mails: list[bytes], p: _Progress) -> None:
    if c.concurrency != 1:
        raise Skip("a sync contender sends one at a time")
    session = c.open(target)
    while (i := p.take()) is not None:
        session.send(mails[i])
        p.sent()
    session.close()


def _run_asyncio(c: Contender, target: Target, mails: list[bytes], p: _Progress) -> None:
    import asyncio

    async def main() -> None:
        session = await c.open(target)

        async def worker() -> None:
            while (i := p.take()) is not None:
                await session.send(mails[i])
                p.sent()

        await asyncio.gather(*(worker() for _ in range(c.concurrency)))
        await session.close()

    asyncio.run(main())


def _run_twisted(c: Contender, target: Target, mails: list[bytes], p: _Progress) -> None:
    from twisted.internet import defer, reactor
    from twisted.python.failure import Failure

    failures: list[BaseException] = []

    async def main() -> None:
        session = c.open(reactor, target)

        async def worker() -> None:
            while (i := p.take()) is not None:
                await session.send(mails[i])
                p.sent()

        await defer.gatherResults([defer.ensureDeferred(worker())
                                   for _ in range(c.concurrency)], consumeErrors=True)
        await defer.maybeDeferred(session.close)

    def done(result: Any) -> None:
        if isinstance(result, Failure):
            error = result.value
            if isinstance(error, defer.FirstError):
                error = error.subFailure.value
            failures.append(error)
        reactor.callLater(0, reactor.stop)

    reactor.callWhenRunning(lambda: defer.ensureDeferred(main()).addBoth(done))
    reactor.run()
    if failures:
        raise failures[0]


def worker_main(name: str, target: Target, count: int) -> dict[str, Any]:
    c = CONTENDERS[name]
    for module in c.imports:
        try:
            importlib.import_module(module)
        except ImportError as e:
            return {"skipped": f"{module} is not installed ({e})"}
    mails = [message(i) for i in range(count)]
    p = _Progress(count)
    run = {"sync": _run_sync, "asyncio": _run_asyncio, "twisted": _run_twisted}[c.kind]
    start = time.perf_counter()
    try:
        run(c, target, mails, p)
    except Skip as e:
        return {"skipped": str(e)}
    except Exception as e:
        return {"error": f"{type(e).__name__}: {e}", "sent": p.done}
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "sent": p.done, "rss_tenth_kib": p.rss_tenth,
            "rss_end_kib": p.rss_end, "peak_rss_kib": _rss_kib("VmHWM")}


# --- the parent: sinks, runs, tables ----------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sink:
    """bench/sink.py in its own process."""

    def __init__(self, extra: Sequence[str] = ()) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "sink.py"),
                                      str(self.port), *extra])
        deadline = time.monotonic() + 20
        while True:
            try:
                self.mails()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError("the sink did not start") from None
                time.sleep(0.05)

    def mails(self) -> int:
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            f = s.makefile("rb")
            f.readline()
            s.sendall(b"XSTAT\r\nQUIT\r\n")
            stat = f.readline()
            f.readline()
        found = re.match(rb"250 mails=(\d+)", stat)
        if not found:
            raise RuntimeError(f"the sink answered XSTAT with {stat!r}")
        return int(found.group(1))

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def child_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
    env["PYTHONPATH"] = str(ROOT)  # this checkout, also for the installed script
    env["HOME"] = str(home)  # no ~/.msmtprc or ~/.netrc of the user's
    return env


def run_process(cmd: Sequence[str], env: dict[str, str], timeout: float, *,
                stdin: Path | None = None) -> tuple[float, int, int, bytes, bytes]:
    """(wall seconds, peak RSS KiB, exit code, stdout, stderr) of one process, killed
    after ``timeout`` seconds."""
    with contextlib.ExitStack() as stack:
        fin = stack.enter_context(open(stdin, "rb")) if stdin else subprocess.DEVNULL
        err = stack.enter_context(tempfile.TemporaryFile())
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=fin, stdout=subprocess.PIPE, stderr=err, env=env)
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            out = proc.stdout.read() if proc.stdout else b""
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.stdout:
            proc.stdout.close()
        err.seek(0)
        return elapsed, usage.ru_maxrss, proc.returncode, out, err.read()


@dataclass
class Result:
    label: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    skipped: str | None = None
    error: str | None = None

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"label": self.label}
        if self.skipped:
            out["skipped"] = self.skipped
        if self.error:
            out["error"] = self.error
        if self.runs:
            mid = sorted(self.runs, key=lambda r: r["mails_per_s"])[(len(self.runs) - 1) // 2]
            out.update(mails_per_s=round(mid["mails_per_s"], 1),
                       runs_mails_per_s=[round(r["mails_per_s"], 1) for r in self.runs],
                       peak_rss_mib=round(max(r["peak_rss_kib"] for r in self.runs) / 1024, 1),
                       rss_tenth_mib=round(mid["rss_tenth_kib"] / 1024, 1),
                       rss_end_mib=round(mid["rss_end_kib"] / 1024, 1),
                       sink_cpu_pct=round(mid["sink_cpu_pct"]))
        return out


def throughput(section: str, target: Target, sink: Sink, names: list[str], args: Any,
               env: dict[str, str]) -> dict[str, Result]:
    results = {n: Result(CONTENDERS[n].label) for n in names}
    target_json = json.dumps(asdict(target))
    for _ in range(args.rounds):
        for name in names:
            r = results[name]
            if r.skipped or r.error:
                continue
            before, cpu_before = sink.mails(), sink.cpu_seconds()
            cmd = [sys.executable, __file__, "--worker", name, "--target", target_json,
                   "--mails", str(args.mails)]
            _, _, code, out, err = run_process(cmd, env, args.timeout)
            cpu = sink.cpu_seconds() - cpu_before
            arrived = sink.mails() - before
            try:
                report = json.loads(out.decode().strip().splitlines()[-1])
            except (ValueError, IndexError):
                tail = err.decode(errors="replace").strip().splitlines()[-3:]
                r.error = f"exit {code}: {' | '.join(tail) or 'no output'}"
            else:
                r.skipped, r.error = _judge(report, arrived, args.mails, cpu, r.runs)
            status = r.skipped or r.error or f"{r.runs[-1]['mails_per_s']:.0f} mails/s"
            print(f"  {section} {name}: {status}", file=sys.stderr)
    return results


def _judge(report: dict[str, Any], arrived: int, mails: int, cpu: float,
           runs: list[dict[str, Any]]) -> tuple[str | None, str | None]:
    """(skipped, error) of one worker's report; a good run is appended to ``runs``."""
    if "skipped" in report:
        return report["skipped"], None
    if "error" in report:
        return None, report["error"]
    if arrived != mails or report["sent"] != mails:
        return None, f"{report['sent']} mails sent, {arrived} arrived, {mails} expected"
    seconds = report["seconds"]
    runs.append({"mails_per_s": mails / seconds, "seconds": seconds,
                 "peak_rss_kib": report["peak_rss_kib"],
                 "rss_tenth_kib": report["rss_tenth_kib"], "rss_end_kib": report["rss_end_kib"],
                 "sink_cpu_pct": 100 * cpu / seconds})
    return None, None


def startup(targets: dict[str, Target], small: Path, args: Any,
            env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Medians of one small mail sent by each command, taking turns."""
    script = Path(args.msmtp_script) if args.msmtp_script else Path(sys.executable).with_name(
        "msmtp")
    real = "/usr/bin/msmtp"
    floors = {"plain": "from twisted.internet import reactor",
              "starttls": "from twisted.internet import reactor, ssl"}
    commands: dict[str, tuple[str, list[str] | None, str | None]] = {}
    for section, target in targets.items():
        tail = ["-C", target.rc, TO]
        commands[f"{section}:floor"] = (f'python -c "{floors[section]}"',
                                        [sys.executable, "-c", floors[section]], None)
        commands[f"{section}:module"] = ("python -m msmtp_twisted",
                                         [sys.executable, "-m", "msmtp_twisted", *tail], None)
        commands[f"{section}:script"] = (
            f"{script} (installed script)", [str(script), *tail] if script.exists() else None,
            None if script.exists() else f"{script} does not exist (pip install -e .)")
        commands[f"{section}:real"] = (
            f"{real} 1.8.23", [real, *tail] if os.path.exists(real) else None,
            None if os.path.exists(real) else f"{real} is not installed")
    times: dict[str, list[float]] = {k: [] for k, (_, cmd, _) in commands.items() if cmd}
    errors: dict[str, str] = {}
    for turn in range(args.startup_runs + 1):  # the first turn warms caches, not counted
        for key in list(times):
            elapsed, _, code, _, err = run_process(commands[key][1] or [], env, 60,
                                                   stdin=small)
            if code != 0:
                errors[key] = f"exit {code}: {err.decode(errors='replace').strip()[-200:]}"
                del times[key]
            elif turn:
                times[key].append(elapsed)
    out: dict[str, dict[str, Any]] = {}
    for section in targets:
        rows: dict[str, Any] = {}
        floor_key = f"{section}:floor"
        floor = statistics.median(times[floor_key]) if times.get(floor_key) else None
        for key, (label, _, skipped) in commands.items():
            if not key.startswith(section + ":"):
                continue
            row: dict[str, Any] = {"label": label}
            if skipped or key in errors:
                row["skipped" if skipped else "error"] = skipped or errors[key]
            else:
                med = statistics.median(times[key])
                row["median_ms"] = round(med * 1000, 1)
                if floor:
                    row["ratio_to_floor"] = round(med / floor, 2)
            rows[key.split(":", 1)[1]] = row
        out[section] = rows
    return out


def print_tables(report: dict[str, Any]) -> None:
    meta = report["meta"]
    print(f"\n{meta['mails']} small mails per run, median of {meta['rounds']} round(s); "
          f"{meta['nproc']} CPUs, load average {meta['loadavg_before'][0]:.2f} before, "
          f"{meta['loadavg_after'][0]:.2f} after")
    for section, rows in report.get("throughput", {}).items():
        libs = [rows[n]["mails_per_s"] for n in ("smtplib", "aiosmtplib")
                if n in rows and "mails_per_s" in rows[n]]
        best = max(libs) if libs else None
        print(f"\n{section}:")
        print(f"  {'contender':42} {'mails/s':>8} {'÷ faster lib':>12} {'peak RSS':>9} "
              f"{'RSS 10%→end':>13} {'sink CPU':>8}")
        for row in rows.values():
            if "mails_per_s" in row:
                ratio = f"{row['mails_per_s'] / best:.2f}" if best else "-"
                print(f"  {row['label']:42} {row['mails_per_s']:8.0f} {ratio:>12} "
                      f"{row['peak_rss_mib']:6.1f} MiB {row['rss_tenth_mib']:5.1f}→"
                      f"{row['rss_end_mib']:5.1f} MiB {row['sink_cpu_pct']:7d}%")
            else:
                why = row.get("skipped") or row.get("error")
                print(f"  {row['label']:42} {'skipped' if 'skipped' in row else 'ERROR'}: {why}")
    for section, rows in report.get("startup", {}).items():
        print(f"\nstart-up, one small mail, {section} (median of {meta['startup_runs']} runs, "
              "taking turns):")
        for row in rows.values():
            if "median_ms" in row:
                ratio = row.get("ratio_to_floor")
                print(f"  {row['label']:58} {row['median_ms']:7.1f} ms  "
                      f"{'' if ratio is None else f'{ratio:.2f} × floor'}")
            else:
                why = row.get("skipped") or row.get("error")
                print(f"  {row['label']:58} {'skipped' if 'skipped' in row else 'ERROR'}: {why}")


def markdown(report: dict[str, Any]) -> str:
    """The tables of docs/performance.md ("Library")."""
    meta = report["meta"]
    lines: list[str] = []
    titles = {"plain": "plain SMTP", "starttls": "STARTTLS + AUTH PLAIN"}
    for section, rows in report.get("throughput", {}).items():
        libs = [rows[n]["mails_per_s"] for n in ("smtplib", "aiosmtplib")
                if n in rows and "mails_per_s" in rows[n]]
        best = max(libs) if libs else None
        lines += ["", f"{meta['mails']} small mails, {titles[section]} (median of "
                  f"{meta['rounds']} runs):", "",
                  "| contender | mails/s | ÷ faster of smtplib, aiosmtplib | peak RSS | "
                  "RSS after 10 % → end | sink CPU |", "| --- | --- | --- | --- | --- | --- |"]
        for row in rows.values():
            if "mails_per_s" in row:
                ratio = f"{row['mails_per_s'] / best:.2f}" if best else "-"
                lines.append(f"| {row['label']} | {row['mails_per_s']:.0f} | {ratio} | "
                             f"{row['peak_rss_mib']:.1f} MiB | {row['rss_tenth_mib']:.1f} → "
                             f"{row['rss_end_mib']:.1f} MiB | {row['sink_cpu_pct']} % |")
            else:
                why = row.get("skipped") or f"ERROR: {row.get('error')}"
                lines.append(f"| {row['label']} | – | {why} | | | |")
    startup = report.get("startup", {})
    if startup:
        lines += ["", f"Start-up, one small mail (median of {meta['startup_runs']} runs each, "
                  "the commands taking turns):", "",
                  "| command | plain | ÷ floor | STARTTLS + AUTH | ÷ floor |",
                  "| --- | --- | --- | --- | --- |"]
        plain, tls = startup.get("plain", {}), startup.get("starttls", {})
        for key in ("floor", "module", "script", "real"):
            cells = []
            for rows in (plain, tls):
                row = rows.get(key, {})
                if "median_ms" in row:
                    ratio = row.get("ratio_to_floor")
                    cells += [f"{row['median_ms']:.0f} ms",
                              "-" if ratio is None else f"{ratio:.2f}"]
                else:
                    cells += [row.get("skipped") or row.get("error") or "–", ""]
            label = plain.get(key, tls.get(key, {})).get("label", key)
            if key == "floor":
                label = ('`python -c "from twisted.internet import reactor"` '
                         '(STARTTLS: `reactor, ssl`)')
            elif key == "script":
                label = "installed `msmtp` script"
            else:
                label = f"`{label}`"
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", f"{meta['date']}, {meta['nproc']} CPUs, load average "
              f"{meta['loadavg_before'][0]:.1f} before and {meta['loadavg_after'][0]:.1f} after; "
              + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + "."]
    return "\n".join(lines[1:]) + "\n"


def versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for dist in ("twisted", "aiosmtplib", "msmtp-twisted"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def write_rc(path: Path, target_port: int, ca: str | None) -> None:
    lines = ["account default", "host 127.0.0.1", f"port {target_port}", f"from {FROM}",
             f"timeout {TIMEOUT}"]
    if ca:
        lines += ["tls on", "tls_starttls on", f"tls_trust_file {ca}", "auth plain",
                  f"user {USER}", f"password {PASSWORD}"]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mails", type=int, default=1000, help="mails per run (1000)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per contender (3)")
    parser.add_argument("--startup-runs", type=int, default=20, help="runs per command (20)")
    parser.add_argument("--only", help="contenders whose name matches this regex "
                        f"({', '.join(CONTENDERS)})")
    parser.add_argument("--sections", default="plain,starttls,startup")
    parser.add_argument("--msmtp-script", help="the installed msmtp script "
                        "(default: msmtp next to this Python)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per run (300)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--markdown", action="store_true",
                        help="print the tables as docs/performance.md shows them")
    parser.add_argument("--from-json", metavar="FILE",
                        help="measure nothing: print the tables of an earlier --json FILE")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker_main(args.worker, Target(**json.loads(args.target)),
                                     args.mails)))
        return 0
    if args.from_json:
        report = json.loads(Path(args.from_json).read_text())
        if args.markdown:
            print(markdown(report), end="")
        else:
            print_tables(report)
        return 0
    if args.mails < 1 or args.rounds < 1 or args.startup_runs < 1:
        parser.error("--mails, --rounds and --startup-runs must be at least 1")
    sections = [s for s in args.sections.split(",") if s]
    names = [n for n in CONTENDERS if not args.only or re.search(args.only, n)]
    report: dict[str, Any] = {"meta": {
        "date": time.strftime("%Y-%m-%d %H:%M"), "mails": args.mails, "rounds": args.rounds,
        "startup_runs": args.startup_runs, "nproc": os.cpu_count(),
        "loadavg_before": os.getloadavg(), "versions": versions()}}
    tmp = Path(tempfile.mkdtemp(prefix="msmtp-library-bench-"))
    env = child_env(tmp)
    sinks: list[Sink] = []
    try:
        targets: dict[str, Target] = {}
        plain = Sink()
        sinks.append(plain)
        write_rc(tmp / "rc-plain", plain.port, None)
        targets["plain"] = Target(plain.port, False, None, str(tmp / "rc-plain"))
        if "starttls" in sections or "startup" in sections:
            sys.path.insert(0, str(ROOT))
            from tests.servers.tlspki import PKI

            pki = PKI(tmp / "pki")
            ca = pki.ca("bench CA")
            leaf = pki.leaf(ca, "localhost")
            tls = Sink(["--tls-cert", str(leaf.chain), "--tls-key", str(leaf.key),
                        "--auth", f"{USER}:{PASSWORD}"])
            sinks.append(tls)
            write_rc(tmp / "rc-tls", tls.port, str(ca.cert))
            targets["starttls"] = Target(tls.port, True, str(ca.cert), str(tmp / "rc-tls"))
        sink_of = {"plain": plain, "starttls": sinks[-1]}
        report["throughput"] = {}
        for section in ("plain", "starttls"):
            if section in sections:
                results = throughput(section, targets[section], sink_of[section], names,
                                     args, env)
                report["throughput"][section] = {n: r.summary() for n, r in results.items()}
        if "startup" in sections:
            small = tmp / "small.eml"
            small.write_bytes(message(0))
            report["startup"] = startup(targets, small, args, env)
    finally:
        for sink in sinks:
            sink.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    report["meta"]["loadavg_after"] = os.getloadavg()
    if args.markdown:
        print(markdown(report), end="")
    else:
        print_tables(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    failed = [f"{s}/{n}" for s, rows in report["throughput"].items()
              for n, row in rows.items() if "error" in row]
    failed += [f"startup/{s}/{n}" for s, rows in report.get("startup", {}).items()
               for n, row in rows.items() if "error" in row]
    if failed:
        print(f"\nERRORS: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
