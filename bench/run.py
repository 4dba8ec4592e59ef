"""Side-by-side benchmark: our msmtp against /usr/bin/msmtp, same sink, one run.

    python bench/run.py [--quick]

Prints ratios (ours / reference) measured in the same run, since timings on a
shared machine are noisy: one small mail (median of 20), 200 mails in a row,
one 100 MB mail (time and peak RSS), and 100 recipients with 50 ms of latency
per reply (pipelining), plus the bare ``from twisted.internet import reactor,
ssl`` start-up as the floor for a Python program.  The figures go into
docs/performance.md.  Start-up over STARTTLS + AUTH against ``from
twisted.internet import reactor, ssl`` (and before/after with
``--startup-baseline``) is ``python bench/library_bench.py --sections startup``.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SMALL = b"From: a@example.com\nTo: b@example.org\nSubject: bench\n\nhello\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sink(delay_ms: float = 0) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "sink.py"), str(port),
                             "--delay-ms", str(delay_ms)])
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("sink did not start")


def run(cmd: list[str], stdin_path: str, env: dict[str, str]) -> tuple[float, int, int]:
    """(seconds, peak RSS in KiB, exit code) of one run."""
    with open(stdin_path, "rb") as stdin:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
    return elapsed, usage.ru_maxrss, os.waitstatus_to_exitcode(status)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, 20 MB mail")
    args = parser.parse_args()
    repeat = 5 if args.quick else 20
    in_a_row = 40 if args.quick else 200
    big_mb = 20 if args.quick else 100

    tmp = Path(tempfile.mkdtemp(prefix="msmtp-bench-"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(ROOT)
    env["HOME"] = str(tmp)
    ours = [sys.executable, "-m", "msmtp_twisted"]
    real = ["/usr/bin/msmtp"]
    sink, port = start_sink()
    slow_sink, slow_port = start_sink(delay_ms=50)
    try:
        for name, p in (("rc", port), ("rc-slow", slow_port)):
            rc = tmp / name
            rc.write_text(f"account default\nhost 127.0.0.1\nport {p}\nfrom a@example.com\n")
            rc.chmod(0o600)
        small = tmp / "small.eml"
        small.write_bytes(SMALL)
        big = tmp / "big.eml"
        line = b"x" * 76 + b"\n"
        with open(big, "wb") as f:
            f.write(b"From: a@example.com\nSubject: big\n\n")
            block = line * 13797  # ~1 MiB
            for _ in range(big_mb):
                f.write(block)
        empty = tmp / "empty"
        empty.write_bytes(b"")
        # warm caches (bytecode, page cache) once
        run(ours + ["-C", str(tmp / "rc"), "b@example.org"], str(small), env)

        results: dict[str, float] = {}

        def median(cmd: list[str], stdin: Path) -> float:
            return statistics.median(run(cmd, str(stdin), env)[0] for _ in range(repeat))

        floor = median([sys.executable, "-c", "from twisted.internet import reactor, ssl"], empty)
        results["floor"] = floor
        for label, cmd in (("ours", ours), ("real", real)):
            results[f"small_{label}"] = median(cmd + ["-C", str(tmp / "rc"), "b@example.org"],
                                               small)
            start = time.perf_counter()
            for _ in range(in_a_row):
                code = run(cmd + ["-C", str(tmp / "rc"), "b@example.org"], str(small), env)[2]
                assert code == 0, f"{label} failed with {code}"
            results[f"row_{label}"] = time.perf_counter() - start
            elapsed, rss, code = run(cmd + ["-C", str(tmp / "rc"), "b@example.org"], str(big),
                                     env)
            assert code == 0, f"{label} big mail failed with {code}"
            results[f"big_{label}"] = elapsed
            results[f"bigrss_{label}"] = rss / 1024
            rcpts = [f"r{i}@example.org" for i in range(100)]
            elapsed, _, code = run(cmd + ["-C", str(tmp / "rc-slow"), *rcpts], str(small), env)
            assert code == 0, f"{label} 100 recipients failed with {code}"
            results[f"rcpt100_{label}"] = elapsed
    finally:
        sink.terminate()
        slow_sink.terminate()

    r = results
    print(f"one small mail (median of {repeat}):  ours {r['small_ours']*1000:.0f} ms, "
          f"msmtp {r['small_real']*1000:.0f} ms, python+reactor floor {r['floor']*1000:.0f} ms; "
          f"ours/floor = {r['small_ours']/r['floor']:.2f}")
    print(f"{in_a_row} mails in a row:  ours {r['row_ours']:.2f} s, msmtp {r['row_real']:.2f} s; "
          f"ratio {r['row_ours']/r['row_real']:.2f}")
    print(f"{big_mb} MB mail:  ours {r['big_ours']:.2f} s ({r['bigrss_ours']:.0f} MiB peak RSS), "
          f"msmtp {r['big_real']:.2f} s ({r['bigrss_real']:.0f} MiB); throughput ours/msmtp = "
          f"{r['big_real']/r['big_ours']:.2f}")
    print(f"100 recipients, 50 ms per reply:  ours {r['rcpt100_ours']:.2f} s, "
          f"msmtp {r['rcpt100_real']:.2f} s; ratio {r['rcpt100_ours']/r['rcpt100_real']:.2f}")


if __name__ == "__main__":
    main()
