"""msmtpd side by side: messages per second from 50 concurrent smtplib clients.

    python bench/msmtpd_bench.py [--seconds 10] [--clients 50]

Runs Debian's msmtpd 1.8.23 (``/opt/msmtpd-root/usr/bin/msmtpd``, see
docs/msmtpd.md for how to unpack it) and ours, one after the other in the same
run, with the same trivial pipe command, ``/bin/sh -c 'cat >/dev/null' sh``
(msmtpd wraps it in one more ``/bin/sh -c``; it must read the mail, since msmtpd
reports a command that does not as ``554 Cannot pipe mail to command``).

Each client loops for the given time: connect, one small mail (smtplib's
``sendmail``), QUIT.  The clients are 5 processes of 10 threads.  msmtpd serves
16 sessions at a time and keeps the other connections waiting in the listen
queue; ours answers ``421`` beyond its cap, and the client then retries after
10 ms (counted as a refusal).  Ours is also run with ``--max-sessions=50``.

Memory: the peak of the summed RSS of the server's process tree (msmtpd forks a
process per session, ours is one process plus the commands), sampled every
50 ms, and our server's own RSS after the first and the last second, to show
that it does not grow with the number of messages.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import smtplib
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEBIAN = "/opt/msmtpd-root/usr/bin/msmtpd"
COMMAND = "/bin/sh -c 'cat >/dev/null' sh"
MAIL = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: bench\r\n\r\nhello\r\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree(pid: int) -> list[int]:
    out = [pid]
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                out += tree(int(child))
    except OSError:
        pass
    return out


def client_process(port: int, threads: int, seconds: float, queue: multiprocessing.Queue) -> None:
    sent = [0] * threads
    refused = [0] * threads
    errors = [0] * threads
    deadline = time.monotonic() + seconds

    def loop(i: int) -> None:
        while time.monotonic() < deadline:
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
                    smtp.sendmail("a@example.org", ["b@example.org"], MAIL)
                sent[i] += 1
            except smtplib.SMTPConnectError as e:
                if e.smtp_code == 421:
                    refused[i] += 1
                    time.sleep(0.01)
                else:
                    errors[i] += 1
            except (OSError, smtplib.SMTPException):
                errors[i] += 1

    ts = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    queue.put((sum(sent), sum(refused), sum(errors)))


def measure(name: str, argv: list[str], clients: int, seconds: float) -> dict[str, float]:
    port = free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.Popen([*argv, f"--port={port}", f"--command={COMMAND}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    time.sleep(0.3)
    peak = 0
    samples: list[tuple[float, int]] = []
    stop = threading.Event()

    def sampler() -> None:
        nonlocal peak
        while not stop.is_set():
            total = sum(rss_kib(p) for p in tree(proc.pid))
            peak = max(peak, total)
            samples.append((time.monotonic(), rss_kib(proc.pid)))
            time.sleep(0.05)

    threading.Thread(target=sampler, daemon=True).start()
    nproc = 5
    queue: multiprocessing.Queue = multiprocessing.Queue()
    start = time.monotonic()
    procs = [multiprocessing.Process(target=client_process,
                                     args=(port, clients // nproc, seconds, queue))
             for _ in range(nproc)]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    elapsed = time.monotonic() - start
    stop.set()
    time.sleep(0.1)
    proc.terminate()
    proc.wait(timeout=10)
    sent = sum(r[0] for r in results)
    first = [rss for t, rss in samples if t - start <= 1.0]
    last = [rss for t, rss in samples if t >= start + elapsed - 1.0]
    return {
        "name": name, "sent": sent, "refused": sum(r[1] for r in results),
        "errors": sum(r[2] for r in results), "rate": sent / elapsed,
        "peak_tree_mib": peak / 1024,
        "rss_first_mib": (first[-1] if first else 0) / 1024,
        "rss_last_mib": (last[-1] if last else 0) / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args()
    ours = [sys.executable, "-m", "msmtp_twisted.daemon", "--interface=127.0.0.1"]
    runs = []
    if os.access(DEBIAN, os.X_OK):
        runs.append(measure("Debian msmtpd 1.8.23", [DEBIAN, "--interface=127.0.0.1"],
                            args.clients, args.seconds))
    else:
        print(f"{DEBIAN} missing: only ours is measured", file=sys.stderr)
    runs.append(measure("ours (16 sessions)", ours, args.clients, args.seconds))
    runs.append(measure("ours (--max-sessions=50)", [*ours, "--max-sessions=50"],
                        args.clients, args.seconds))
    print(f"{args.clients} clients, {args.seconds:g} s each, command: {COMMAND}")
    print(f"{'server':28} {'mails':>6} {'mails/s':>8} {'421s':>6} {'errors':>6} "
          f"{'peak tree RSS':>14} {'server RSS 1st s -> last s':>28}")
    for r in runs:
        print(f"{r['name']:28} {r['sent']:6d} {r['rate']:8.1f} {r['refused']:6d} "
              f"{r['errors']:6d} {r['peak_tree_mib']:11.1f} MiB "
              f"{r['rss_first_mib']:12.1f} -> {r['rss_last_mib']:.1f} MiB")
    if runs[0]["name"].startswith("Debian"):
        for r in runs[1:]:
            print(f"ratio {r['name']} / Debian: {r['rate'] / runs[0]['rate']:.2f}")


if __name__ == "__main__":
    main()
