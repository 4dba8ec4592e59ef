"""The queue side by side with msmtp 1.8.23 (issue 12), in one run.

1. Flush: N mails queued (``msmtpq --q-only``, not timed), then ``msmtp-queue -r``
   delivers them (one process, one kept connection) vs a loop of N
   ``/usr/bin/msmtp`` processes sending the same mails.  Both to the same sink
   (bench/sink.py), which counts what arrived; a mail missing is an error.
2. Accepting while the relay is down: ``msmtpq`` trying once (connection
   refused), then spooling the mail and exiting 0, vs one ``msmtp`` (ours, the
   installed script) and one ``/usr/bin/msmtp`` sending a mail to a running sink,
   and our ``msmtp`` failing against the same down relay.  Each round runs every
   command once (in a rotating order); the ratios are paired per round, median
   and spread.

    python bench/queue_bench.py [--mails 200] [--rounds 3] [--accept-runs 15] [--accept-only]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from library_bench import ROOT, Sink, child_env, free_port, run_process  # noqa: E402

REAL_MSMTP = "/usr/bin/msmtp"
RCPT = "bob@example.org"


def mail(n: int) -> bytes:
    return (f"From: a@example.com\nTo: {RCPT}\nSubject: queued {n}\n"
            f"Message-ID: <{n}.queue-bench@example.com>\n\nhello {n}\n").encode()


def write_rc(path: Path, port: int) -> Path:
    path.write_text(f"account default\nhost 127.0.0.1\nport {port}\nfrom a@example.com\n"
                    "timeout 30\n")
    path.chmod(0o600)
    return path


def script(name: str) -> list[str]:
    installed = Path(sys.executable).with_name(name)
    if installed.exists():
        return [str(installed)]
    module = {"msmtp": "msmtp_twisted", "msmtpq": "msmtp_twisted.msmtpq"}.get(name)
    if module is None:  # msmtp-queue
        return [sys.executable, "-m", "msmtp_twisted.msmtpq", "--q-mgmt"]
    return [sys.executable, "-m", module]


def check(code: int, err: bytes, what: str) -> None:
    if code != 0:
        raise RuntimeError(f"{what} exited {code}: {err.decode(errors='replace')[-500:]}")


def flush_round(tmp: Path, sink: Sink, count: int, env: dict[str, str]) -> dict[str, float]:
    queue = tmp / "queue"
    shutil.rmtree(queue, ignore_errors=True)
    env = dict(env, MSMTP_QUEUE=str(queue))
    rc = write_rc(tmp / "rc", sink.port)
    mails = []
    for n in range(count):
        path = tmp / f"mail{n}.eml"
        path.write_bytes(mail(n))
        mails.append(path)
        _, _, code, _, err = run_process([*script("msmtpq"), "--q-only", "-C", str(rc), RCPT],
                                         env, 60, stdin=path)
        check(code, err, "msmtpq --q-only")
    before = sink.mails()
    seconds, rss, code, _, err = run_process([*script("msmtp-queue"), "-r"], env, 600)
    check(code, err, "msmtp-queue -r")
    if sink.mails() - before != count or any(queue.glob("*.json")):
        raise RuntimeError("msmtp-queue -r did not deliver every mail")
    before = sink.mails()
    start = time.perf_counter()
    for path in mails:
        _, _, code, _, err = run_process([REAL_MSMTP, "-C", str(rc), RCPT], env, 60, stdin=path)
        check(code, err, REAL_MSMTP)
    loop = time.perf_counter() - start
    if sink.mails() - before != count:
        raise RuntimeError("the msmtp loop did not deliver every mail")
    return {"flush_s": seconds, "flush_rss_kib": rss, "loop_s": loop}


#: the accepting commands, in the order each round runs them
DOWN = "msmtpq, relay down (queued)"
UP = "msmtp (ours), relay up (sent)"
OURS_DOWN = "msmtp (ours), relay down (exit 75)"
REAL_UP = "/usr/bin/msmtp 1.8.23, relay up (sent)"


def accept_rounds(tmp: Path, sink: Sink, runs: int, env: dict[str, str]) -> dict[str, list[float]]:
    queue = tmp / "accept-queue"
    env = dict(env, MSMTP_QUEUE=str(queue))
    down = write_rc(tmp / "rc-down", free_port())
    up = write_rc(tmp / "rc-up", sink.port)
    small = tmp / "small.eml"
    small.write_bytes(mail(0))
    commands = {
        DOWN: ([*script("msmtpq"), "-C", str(down), RCPT], 0),
        UP: ([*script("msmtp"), "-C", str(up), RCPT], 0),
        OURS_DOWN: ([*script("msmtp"), "-C", str(down), RCPT], 75),
        REAL_UP: ([REAL_MSMTP, "-C", str(up), RCPT], 0),
    }
    times: dict[str, list[float]] = {label: [] for label in commands}
    for n in range(runs):
        # each round in another order, so that no command always follows the same one
        order = list(commands.items())
        order = order[n % len(order):] + order[:n % len(order)]
        for label, (cmd, expected) in order:
            seconds, _, code, _, err = run_process(cmd, env, 60, stdin=small)
            if code != expected:
                check(code or 1, err, label)
            times[label].append(seconds)
    if len(list(queue.glob("*.json"))) != runs:
        raise RuntimeError("msmtpq did not queue every mail")
    return times


def paired(accept: dict[str, list[float]], label: str, against: str) -> str:
    """Median and range of the per-round ratios (each round's two runs side by side)."""
    ratios = sorted(a / b for a, b in zip(accept[label], accept[against], strict=True))
    quart = statistics.quantiles(ratios, n=4) if len(ratios) >= 2 else [ratios[0]] * 3
    return (f"{statistics.median(ratios):.2f} (quartiles {quart[0]:.2f}–{quart[2]:.2f}, "
            f"range {ratios[0]:.2f}–{ratios[-1]:.2f})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mails", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--accept-runs", type=int, default=15)
    parser.add_argument("--accept-only", action="store_true",
                        help="only the accepting comparison (no flush rounds)")
    args = parser.parse_args()
    if not os.access(REAL_MSMTP, os.X_OK):
        print(f"{REAL_MSMTP} (msmtp 1.8.23) is needed: apt-get install msmtp", file=sys.stderr)
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="msmtp-queue-bench-"))
    env = child_env(tmp)
    sink = Sink()
    try:
        load = os.getloadavg()
        rounds = [] if args.accept_only else \
            [flush_round(tmp, sink, args.mails, env) for _ in range(args.rounds)]
        accept = accept_rounds(tmp, sink, args.accept_runs, env)
    finally:
        sink.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, load average "
          f"{load[0]:.1f} before, {os.getloadavg()[0]:.1f} after; {ROOT}")
    if rounds:
        print(f"\nFlush of {args.mails} queued mails (each round: one flush, then the loop):\n")
        print("| round | `msmtp-queue -r` | loop of `/usr/bin/msmtp` | loop ÷ flush "
              "| flush peak RSS |")
        print("| --- | --- | --- | --- | --- |")
        for i, r in enumerate(rounds, 1):
            print(f"| {i} | {r['flush_s']:.2f} s | {r['loop_s']:.2f} s | "
                  f"**{r['loop_s'] / r['flush_s']:.1f}×** | {r['flush_rss_kib'] / 1024:.0f} MiB |")
    print(f"\nOne mail, {args.accept_runs} rounds (each round runs every command once, "
          "in turn):\n")
    print("| command | median | ÷ msmtp (ours) relay up, paired per round |")
    print("| --- | --- | --- |")
    for label, values in accept.items():
        print(f"| {label} | {statistics.median(values) * 1000:.0f} ms | "
              f"{paired(accept, label, UP)} |")
    print(f"\nmsmtpq relay down ÷ msmtp (ours) relay down, paired: "
          f"{paired(accept, DOWN, OURS_DOWN)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
