"""The ``msmtpd`` command line, as msmtpd 1.8.23 has it, plus a few extensions.

msmtpd's options, defaults, messages and exit codes: ``--version``, ``--help``,
``--inetd``, ``--interface=ip`` (127.0.0.1), ``--port=number`` (25, read with
``atoi``), ``--log=none|syslog|FILE``, ``--command=cmd``,
``--auth=user[,passwordeval]``; glibc ``getopt_long`` messages prefixed with
argv[0]; an empty argument is ``option '--X' requires non-empty argument``;
start-up failures exit with 3 (LSB "not running").  ``--inetd`` runs one session
on standard input/output and exits 0, or 1 after a protocol error.

Extensions (documented in ``docs/msmtpd.md``): ``--auth-ldap=URL`` and the
limits ``--max-sessions``, ``--max-message-size``, ``--max-recipients``,
``--max-line-length``, ``--idle-timeout``, ``--session-timeout``,
``--command-timeout``.

Importing this module must stay cheap: no Twisted at module level (the twistd
plugin imports it to list its options).
"""

from __future__ import annotations

import ipaddress
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from msmtp_twisted import MSMTP_COMPAT_VERSION, __version__
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

#: Built-in defaults, as in msmtpd 1.8.23.
DEFAULT_INTERFACE = "127.0.0.1"
DEFAULT_PORT = 25

#: msmtpd follows the LSB init script convention: 3 means "program is not running".
EXIT_NOT_RUNNING = 3


def default_command() -> str:
    """Our msmtp: the ``msmtp`` script installed beside this Python, else
    ``python -m msmtp_twisted`` with this Python."""
    script = os.path.join(os.path.dirname(sys.executable), "msmtp")
    if os.path.isfile(script) and os.access(script, os.X_OK):
        return f"{shlex.quote(script)} -f %F --"
    return f"{shlex.quote(sys.executable)} -m msmtp_twisted -f %F --"


DEFAULT_COMMAND = default_command()

_LIMITS = {
    # option: (attribute, kind, default)
    "max-sessions": ("max_sessions", int, 16),
    "max-message-size": ("max_message_size", int, 256 * 1024 * 1024),
    "max-recipients": ("max_recipients", int, 1000),
    "max-line-length": ("max_line", int, 4096),
    "idle-timeout": ("idle_timeout", float, 300.0),
    "session-timeout": ("session_timeout", float, 3600.0),
    "command-timeout": ("command_timeout", float, 300.0),
}

_LONGOPTS = [
    LongOption("version", "none", "version"),
    LongOption("help", "none", "help"),
    LongOption("inetd", "none", "inetd"),
    LongOption("port", "required", "port"),
    LongOption("interface", "required", "interface"),
    LongOption("log", "required", "log"),
    LongOption("command", "required", "command"),
    LongOption("auth", "required", "auth"),
    LongOption("auth-ldap", "required", "auth-ldap"),
    *(LongOption(name, "required", name) for name in _LIMITS),
]


class SettingsError(Exception):
    """A start-up error; the message follows ``argv[0]: ``."""


@dataclass
class MsmtpdSettings:
    print_version: bool = False
    print_help: bool = False
    inetd: bool = False
    interface: str = DEFAULT_INTERFACE
    port: int = DEFAULT_PORT
    log: str = "none"
    command: str = ""
    user: str | None = None
    password: str | None = None
    auth_ldap: str | None = None
    limits: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.command:
            self.command = DEFAULT_COMMAND


def version_text() -> str:
    return (
        f"msmtpd version {MSMTP_COMPAT_VERSION} (msmtp-twisted {__version__})\n"
        "Copyright (C) 2026 the msmtp-twisted authors.\n"
        "This is free software.  You may redistribute copies of it under the terms of\n"
        "the GNU General Public License <http://www.gnu.org/licenses/gpl.html>.\n"
        "There is NO WARRANTY, to the extent permitted by law.\n"
    )


def help_text() -> str:
    return f"""\
Usage: msmtpd [option...]
Options:
  --version       print version
  --help          print help
  --inetd         start single SMTP session on stdin/stdout
  --interface=ip  listen on ip instead of {DEFAULT_INTERFACE}
  --port=number   listen on port number instead of {DEFAULT_PORT}
  --log=none|syslog|FILE  do not log anything (default)
                  or log to syslog or log to the given file
  --command=cmd   pipe mails to cmd instead of {DEFAULT_COMMAND}
  --auth=user[,passwordeval] require authentication with this user name;
                  the password will be retrieved from the given
                  passwordeval command or, if none is given, from
                  the key ring or, if that fails, from a prompt.
Extensions of msmtp-twisted:
  --auth-ldap=URL require authentication, checked by an LDAP bind
                  (ldap[s]://host/uid=%u,dc=example,dc=com, or
                  ldap://host/BASE??sub?(uid=%u) to search first)
  --max-sessions=N       concurrent sessions (default 16)
  --max-message-size=N   bytes, advertised as SIZE (default 268435456)
  --max-recipients=N     per mail (default 1000)
  --max-line-length=N    command line bytes (default 4096)
  --idle-timeout=S       seconds (default 300)
  --session-timeout=S    seconds (default 3600)
  --command-timeout=S    seconds for the pipe command (default 300)
"""


def _atoi(text: str) -> int:
    s = text.lstrip(" \t\n\v\f\r")
    sign = -1 if s[:1] == "-" else 1
    if s[:1] in "+-" and s:
        s = s[1:]
    digits = ""
    for c in s:
        if not c.isdigit() or not c.isascii():
            break
        digits += c
    return sign * int(digits) if digits else 0


def parse_args(argv: Sequence[str], *, get_password: Any = None) -> MsmtpdSettings:
    """Parse msmtpd's command line; raises :class:`SettingsError` with msmtpd's
    message.  ``--auth`` fetches the password while parsing, as msmtpd does."""
    if get_password is None:
        from msmtp_twisted.daemon.password import get_password
    settings = MsmtpdSettings()
    try:
        for key, value in getopt_long(list(argv[1:]), "", _LONGOPTS):
            if key is None:
                if value:
                    raise SettingsError("too many arguments")
                break
            if isinstance(value, str) and value == "":
                raise SettingsError(f"option '--{key}' requires non-empty argument")
            assert value is None or isinstance(value, str)
            if key == "version":
                settings.print_version = True
            elif key == "help":
                settings.print_help = True
            elif key == "inetd":
                settings.inetd = True
            elif key == "port":
                settings.port = _atoi(value or "")
            elif key == "interface":
                settings.interface = value or ""
            elif key == "log":
                settings.log = value or "none"
            elif key == "command":
                settings.command = value or ""
            elif key == "auth":
                from msmtp_twisted.daemon.password import PasswordError

                try:
                    settings.user, settings.password = get_password(value)
                except PasswordError as e:
                    raise SettingsError(str(e)) from None
            elif key == "auth-ldap":
                settings.auth_ldap = value
            elif key in _LIMITS:
                attr, kind, _ = _LIMITS[key]
                try:
                    number = kind(value)
                except ValueError:
                    raise SettingsError(f"invalid argument for option '--{key}'") from None
                if number < 0 or (kind is int and number == 0 and key != "max-sessions"):
                    raise SettingsError(f"invalid argument for option '--{key}'")
                settings.limits[attr] = number
    except GetoptError as e:
        raise SettingsError(e.message) from None
    return settings


def build_config(settings: MsmtpdSettings, *, inetd: bool | None = None) -> Any:
    """The :class:`~msmtp_twisted.daemon.protocol.DaemonConfig` for ``settings``;
    raises :class:`SettingsError` for a command or LDAP URL we cannot use."""
    from msmtp_twisted.daemon.checkers import LDAPChecker, StaticChecker
    from msmtp_twisted.daemon.command import CommandError, PipeCommand
    from msmtp_twisted.daemon.protocol import DaemonConfig
    from msmtp_twisted.smtp.server import ServerLimits

    try:
        command = PipeCommand.parse(settings.command)
    except CommandError as e:
        raise SettingsError(f"cannot use command '{settings.command}': {e}") from None
    checker: Any = None
    if settings.auth_ldap is not None:
        try:
            checker = LDAPChecker(settings.auth_ldap)
        except ValueError as e:
            raise SettingsError(str(e)) from None
    elif settings.user is not None:
        checker = StaticChecker(settings.user, settings.password or "")
    limits = dict(settings.limits)
    server_limits = ServerLimits(**{k: limits.pop(k) for k in
                                    ("max_line", "max_message_size", "max_recipients")
                                    if k in limits})
    if "max_sessions" in limits and limits["max_sessions"] == 0:
        raise SettingsError("invalid argument for option '--max-sessions'")
    return DaemonConfig(command=command, checker=checker, limits=server_limits,
                        always_delay_auth=bool(settings.inetd if inetd is None else inetd),
                        **limits)


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
    except SettingsError as e:
        sys.stderr.write(f"{prog}: {e}\n")
        return EXIT_NOT_RUNNING
    if settings.print_version:
        sys.stdout.write(version_text())
        return EX_OK
    if settings.print_help:
        sys.stdout.write(help_text())
        return EX_OK
    try:
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
    proto.done.addBoth(lambda _: reactor.callWhenRunning(reactor.stop))  # type: ignore[attr-defined]
    StandardIO(proto, reactor=reactor)
    reactor.run(installSignalHandlers=True)  # type: ignore[attr-defined]
    factory.close()
    log.close()
    server = proto.server  # type: ignore[attr-defined]
    return 0 if server is not None and server.clean else 1


def _run_daemon(prog: str, settings: MsmtpdSettings, config: Any) -> int:
    import signal

    from twisted.internet import reactor
    from twisted.internet.error import CannotListenError

    from msmtp_twisted.daemon.log import MsmtpdLog
    from msmtp_twisted.daemon.protocol import MsmtpdFactory

    log = MsmtpdLog(settings.log)
    factory = MsmtpdFactory(config, log, reactor)
    try:
        reactor.listenTCP(settings.port, factory, backlog=128,  # type: ignore[attr-defined]
                          interface=settings.interface)
    except CannotListenError as e:
        err = e.socketError
        reason = os.strerror(err.errno) if isinstance(err, OSError) and err.errno else str(err)
        sys.stderr.write(f"{prog}: cannot bind to {settings.interface}:{settings.port}: "
                         f"{reason}\n")
        return EXIT_NOT_RUNNING
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # reloading makes no sense for us
    reactor.run()  # type: ignore[attr-defined]
    factory.close()
    log.close()
    return EX_OK


def console_main() -> None:
    """Entry point of the ``msmtpd`` console script."""
    sys.exit(main(sys.argv))


if __name__ == "__main__":  # pragma: no cover
    console_main()
