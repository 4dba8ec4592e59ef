"""The ``msmtpq`` and ``msmtp-queue`` command lines.

``msmtpq [--q-only] [--q-dir=DIR] [--q-log=FILE] MSMTP-ARGS < mail``
    send like msmtp, queue on a temporary failure (:mod:`.send`).  msmtpq's own
    options start with ``--q-`` (as upstream's ``--q-mgmt``), a prefix no msmtp
    option has; they may come anywhere before a ``--``.
``msmtpq --q-mgmt OPTIONS`` and ``msmtp-queue OPTIONS``
    manage the queue (:mod:`.manage`), with upstream's letters.
"""

from __future__ import annotations

import errno
import os
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any, BinaryIO

from msmtp_twisted import sysexits
from msmtp_twisted.queue.location import default_log, default_queue_dir

__all__ = ["console_main", "main", "manage_main", "queue_console_main"]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)\Z")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``2h``, ``5d``."""
    import argparse

    match = _DURATION.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _split_own_options(args: list[str]) -> tuple[dict[str, str | bool], list[str]] | str:
    own: dict[str, str | bool] = {}
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg.startswith("--q-"):
            name, eq, value = arg[4:].partition("=")
            if name == "only" and not eq:
                own["only"] = True
            elif name in ("dir", "log"):
                if not eq:
                    if i + 1 >= len(args):
                        return f"option --q-{name} requires an argument"
                    i += 1
                    value = args[i]
                own[name] = value
            else:
                return f"unknown msmtpq option {arg}"
        else:
            rest.append(arg)
        i += 1
    return own, rest


def main(argv: Sequence[str], *, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None,
         stderr: BinaryIO | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run ``msmtpq`` with ``argv``; return the exit status."""
    from msmtp_twisted.msmtpq.send import send_or_queue

    prog = os.path.basename(argv[0]) if argv else "msmtpq"
    environ = dict(os.environ) if env is None else dict(env)
    stdout = stdout or sys.stdout.buffer
    stderr = stderr or sys.stderr.buffer
    args = list(argv[1:])
    if args and args[0] == "--q-mgmt":
        return manage_main([f"{prog} --q-mgmt", *args[1:]], env=environ)
    split = _split_own_options(args)
    if isinstance(split, str):
        stderr.write(f"{prog}: {split}\n".encode())
        return sysexits.EX_USAGE
    own, rest = split
    queue_dir = str(own.get("dir") or default_queue_dir(environ))
    log = own.get("log")
    logfile = (None if log in ("", "none") else str(log)) if isinstance(log, str) \
        else default_log(queue_dir, environ)
    return send_or_queue(
        prog, rest, queue_dir=queue_dir, queue_only=bool(own.get("only")), log=logfile,
        quiet=bool(environ.get("EMAIL_QUEUE_QUIET")),
        stdin=stdin or sys.stdin.buffer, stdout=stdout, stderr=stderr, env=environ)


def _parser(prog: str) -> Any:
    import argparse  # only here: msmtpq's sending path stays quick to start

    parser = argparse.ArgumentParser(
        prog=prog, description="Manage the msmtpq queue (docs/queue.md).")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("-r", "--run", action="store_true",
                        help="send every mail that is due")
    action.add_argument("-R", "--run-id", metavar="ID", action="append",
                        help="send this mail now, due or not (repeatable)")
    action.add_argument("-d", "--list", action="store_true", help="list the queue")
    action.add_argument("-p", "--drop", metavar="ID", action="append",
                        help="remove this mail from the queue (repeatable)")
    action.add_argument("-a", "--drop-all", action="store_true",
                        help="remove every mail (asks unless --yes)")
    action.add_argument("--retry", metavar="ID", action="append",
                        help="make this mail due now (repeatable)")
    parser.add_argument("-y", "--yes", action="store_true", help="do not ask")
    parser.add_argument("--queue-dir", metavar="DIR",
                        help="the queue (default: $MSMTP_QUEUE, else "
                             "$XDG_STATE_HOME/msmtp/queue)")
    parser.add_argument("--log", metavar="FILE",
                        help="the queue log (default: $MSMTP_LOG, else DIR/log; none: no log)")
    parser.add_argument("--backoff", metavar="DURATION", type=duration, default=60.0,
                        help="wait after the second failed attempt, doubled after each "
                             "further one (default 60s)")
    parser.add_argument("--backoff-max", metavar="DURATION", type=duration, default=3600.0,
                        help="the longest wait between attempts (default 1h)")
    parser.add_argument("--max-age", metavar="DURATION", type=duration, default=5 * 86400.0,
                        help="give up (move to failed/) when an attempt fails after this "
                             "(default 5d)")
    return parser


def manage_main(argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> int:
    # imported here: msmtpq's sending path needs neither
    from msmtp_twisted.msmtpq import manage
    from msmtp_twisted.queue.schedule import Schedule
    from msmtp_twisted.queue.spool import Spool

    prog = argv[0] if argv else "msmtp-queue"
    environ = dict(os.environ) if env is None else dict(env)
    parser = _parser(prog)
    try:
        options = parser.parse_args(list(argv[1:]))
    except SystemExit as e:
        return sysexits.EX_OK if e.code == 0 else sysexits.EX_USAGE

    def out(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def err(line: str) -> None:
        sys.stderr.write(f"{os.path.basename(prog.split()[0])}: {line}\n")
        sys.stderr.flush()

    queue_dir = options.queue_dir or default_queue_dir(environ)
    if options.log is not None:
        log = None if options.log in ("", "none") else options.log
    else:
        log = default_log(queue_dir, environ)
    spool = Spool(queue_dir)
    try:
        spool.ensure(create=False)
    except OSError as e:
        if e.errno == errno.ENOENT and (options.list or options.run):
            out(f"no mails in the queue {queue_dir}")
            return sysexits.EX_OK
        err(f"cannot use the queue {queue_dir}: {e.strerror}")
        return sysexits.EX_NOINPUT
    schedule = Schedule(base=options.backoff, cap=options.backoff_max, max_age=options.max_age)
    if options.list:
        return manage.list_queue(spool, out, err)
    if options.drop:
        return manage.drop(spool, options.drop, out, err, log)
    if options.drop_all:
        tty = None
        if not options.yes:
            try:
                tty = open("/dev/tty", "r+")  # noqa: SIM115 - closed at exit
            except OSError:
                tty = None
        return manage.drop_all(spool, out, err, log, yes=options.yes, tty=tty)
    if options.retry:
        return manage.retry(spool, options.retry, out, err, log)
    if options.run_id:
        bad = [i for i in options.run_id if spool.read(i) is None]
        for entry_id in bad:
            err(f"no mail {entry_id} in the queue {queue_dir}")
        report = manage.run(spool, out, log, schedule=schedule,
                            only=[i for i in options.run_id if i not in bad])
        if bad:
            return sysexits.EX_NOINPUT
        return report.exitcode
    report = manage.run(spool, out, log, schedule=schedule)
    # a flush that ran is a success, whatever is still queued (cron runs it
    # again); the lines above say what happened to each mail
    del report
    return sysexits.EX_OK


def console_main() -> None:
    """Entry point of the ``msmtpq`` console script."""
    from msmtp_twisted.console import run_console

    run_console(lambda: main(sys.argv))


def queue_console_main() -> None:
    """Entry point of the ``msmtp-queue`` console script."""
    from msmtp_twisted.console import run_console

    run_console(lambda: manage_main(sys.argv))
