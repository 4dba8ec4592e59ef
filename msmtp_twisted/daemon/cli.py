"""The ``msmtpd`` command line, as msmtpd 1.8.23 has it, plus a few extensions.

msmtpd's options, defaults, messages and exit codes: ``--version``, ``--help``,
``--inetd``, ``--interface=ip`` (127.0.0.1), ``--port=number`` (25, read with
``atoi``), ``--log=none|syslog|FILE``, ``--command=cmd``,
``--auth=user[,passwordeval]``; glibc ``getopt_long`` messages prefixed with
argv[0]; an empty argument is ``option '--X' requires non-empty argument``;
start-up failures exit with 3 (LSB "not running").  ``--inetd`` runs one session
on standard input/output and exits 0, or 1 after a protocol error.

The options (msmtpd's and our extensions, documented in ``docs/msmtpd.md``) come
from the one table in :mod:`msmtp_twisted.daemon.options`, which ``twistd
msmtpd`` uses too; the daemon runs the same
:class:`~msmtp_twisted.daemon.service.MsmtpdService` that ``twistd msmtpd`` runs,
stopped the same way on SIGTERM/SIGINT.

Importing this module must stay cheap: no Twisted at module level (the twistd
plugin imports it to list its options).
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Sequence
from typing import Any

from msmtp_twisted import MSMTP_COMPAT_VERSION, __version__
from msmtp_twisted.daemon.options import (
    DEFAULT_COMMAND,
    DEFAULT_INTERFACE,
    DEFAULT_PORT,
    FLAG,
    OPTIONS,
    MsmtpdSettings,
    SettingsError,
    apply_option,
    build_config,
    default_command,
)
from msmtp_twisted.getopt import GetoptError, LongOption, getopt_long
from msmtp_twisted.sysexits import EX_OK

__all__ = [
    "DEFAULT_COMMAND",
    "DEFAULT_INTERFACE",
    "DEFAULT_PORT",
    "EXIT_NOT_RUNNING",
    "MsmtpdSettings",
    "SettingsError",
    "build_config",
    "console_main",
    "default_command",
    "help_text",
    "main",
    "parse_args",
    "version_text",
]

#: msmtpd follows the LSB init script convention: 3 means "program is not running".
EXIT_NOT_RUNNING = 3

_LONGOPTS = [LongOption(o.name, "none" if o.kind == FLAG else "required", o.name)
             for o in OPTIONS if o.console]


def version_text() -> str:
    return (
        f"msmtpd version {MSMTP_COMPAT_VERSION} (msmtp-twisted {__version__})\n"
        "Copyright (C) 2026 the msmtp-twisted authors.\n"
        "This is free software.  You may redistribute copies of it under the terms of\n"
        "the GNU General Public License <http://www.gnu.org/licenses/gpl.html>.\n"
        "There is NO WARRANTY, to the extent permitted by law.\n"
    )


def help_text() -> str:
    """msmtpd 1.8.23's help text, then our extensions."""
    text = "Usage: msmtpd [option...]\nOptions:\n"
    text += "".join(o.help_lines() for o in OPTIONS if o.console and o.msmtpd)
    text += "Extensions of msmtp-twisted:\n"
    text += "".join(o.help_lines() for o in OPTIONS if o.console and not o.msmtpd)
    return text


def parse_args(argv: Sequence[str], *, get_password: Any = None) -> MsmtpdSettings:
    """Parse msmtpd's command line; raises :class:`SettingsError` with msmtpd's
    message.  ``--auth`` fetches the password while parsing, as msmtpd does."""
    settings = MsmtpdSettings()
    try:
        for key, value in getopt_long(list(argv[1:]), "", _LONGOPTS):
            if key is None:
                if value:
                    raise SettingsError("too many arguments")
                break
            assert value is None or isinstance(value, str)
            apply_option(settings, key, value, get_password=get_password)
    except GetoptError as e:
        raise SettingsError(e.message) from None
    return settings


def _valid_interface(interface: str) -> bool:
    try:
        ipaddress.ip_address(interface)
    except ValueError:
        return False
    return "%" not in interface


def main(argv: Sequence[str]) -> int:
    """Run msmtpd with ``argv`` (``argv[0]`` is the program name); return the exit status."""
    prog = argv[0] if argv else "msmtpd"
    try:
        settings = parse_args(argv)
        if settings.print_version:
            sys.stdout.write(version_text())
            return EX_OK
        if settings.print_help:
            sys.stdout.write(help_text())
            return EX_OK
        config = build_config(settings)
    except SettingsError as e:
        sys.stderr.write(f"{prog}: {e}\n")
        return EXIT_NOT_RUNNING
    if settings.inetd:
        return _run_inetd(settings, config)
    if not _valid_interface(settings.interface):
        sys.stderr.write(f"{prog}: invalid interface\n")
        return EXIT_NOT_RUNNING
    return _run_daemon(prog, settings, config)


def _run_inetd(settings: MsmtpdSettings, config: Any) -> int:
    from twisted.internet import reactor
    from twisted.internet.stdio import StandardIO

    from msmtp_twisted.daemon.log import MsmtpdLog
    from msmtp_twisted.daemon.protocol import MsmtpdFactory

    log = MsmtpdLog(settings.log)
    factory = MsmtpdFactory(config, log, reactor, inetd=True)
    proto = factory.buildProtocol(None)
    stopping: list[bool] = []

    def shutdown() -> Any:
        # SIGTERM/SIGINT (or the session's end): as the daemon, let a delivery
        # in progress finish and answer it, then 421.
        stopping.append(True)
        return factory.shutdown() if factory.sessions else None

    def session_over() -> None:
        if not stopping:
            reactor.stop()  # type: ignore[attr-defined]

    proto.done.addBoth(lambda _: reactor.callWhenRunning(session_over))  # type: ignore[attr-defined]
    reactor.addSystemEventTrigger("before", "shutdown", shutdown)  # type: ignore[attr-defined]
    StandardIO(proto, reactor=reactor)
    reactor.run(installSignalHandlers=True)  # type: ignore[attr-defined]
    factory.close()
    log.close()
    server = proto.server  # type: ignore[attr-defined]
    return 0 if server is not None and server.clean else 1


def _run_daemon(prog: str, settings: MsmtpdSettings, config: Any) -> int:
    """The service ``twistd msmtpd`` runs, on msmtpd's TCP socket, stopped by
    SIGTERM/SIGINT as twistd stops it."""
    import signal

    from twisted.internet import reactor
    from twisted.internet.endpoints import TCP4ServerEndpoint
    from twisted.internet.error import CannotListenError

    from msmtp_twisted.daemon.log import MsmtpdLog
    from msmtp_twisted.daemon.service import MsmtpdService

    log = MsmtpdLog(settings.log)
    # msmtpd passes atoi()'s int to htons(): the port wraps around as a uint16.
    endpoint = TCP4ServerEndpoint(reactor, settings.port & 0xFFFF, backlog=128,
                                  interface=settings.interface)
    service = MsmtpdService(endpoint, config, log, reactor)
    try:
        service.startService()
    except CannotListenError as e:
        err = e.socketError
        reason = os.strerror(err.errno) if isinstance(err, OSError) and err.errno else str(err)
        sys.stderr.write(f"{prog}: cannot bind to {settings.interface}:{settings.port}: "
                         f"{reason}\n")
        log.close()
        return EXIT_NOT_RUNNING
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)  # type: ignore[attr-defined]
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # reloading makes no sense for us
    reactor.run()  # type: ignore[attr-defined]
    log.close()
    return EX_OK


def console_main() -> None:
    """Entry point of the ``msmtpd`` console script."""
    from msmtp_twisted.stdio import ensure_standard_streams

    ensure_standard_streams()
    sys.exit(main(sys.argv))


if __name__ == "__main__":  # pragma: no cover
    console_main()
