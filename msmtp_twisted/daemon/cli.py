"""The ``msmtpd`` command line.

msmtpd itself (the SMTP server that pipes each mail to a command) is not
implemented yet: ``--version`` and ``--help`` work, every other valid command
line says so and exits with ``EX_UNAVAILABLE`` (69).

Importing this module must stay cheap: no Twisted at module level.
"""

from __future__ import annotations

import getopt
import sys
from collections.abc import Sequence

from msmtp_twisted import MSMTP_COMPAT_VERSION, __version__
from msmtp_twisted.sysexits import EX_OK, EX_UNAVAILABLE

__all__ = [
    "DEFAULT_COMMAND",
    "DEFAULT_INTERFACE",
    "DEFAULT_PORT",
    "EXIT_NOT_RUNNING",
    "console_main",
    "help_text",
    "main",
    "version_text",
]

#: Built-in defaults, as in msmtpd 1.8.23.
DEFAULT_INTERFACE = "127.0.0.1"
DEFAULT_PORT = 25
DEFAULT_COMMAND = "msmtp -f %F --"

#: msmtpd follows the LSB init script convention: 3 means "program is not running",
#: which is what it returns for a command line it cannot use.
EXIT_NOT_RUNNING = 3

_LONG_OPTIONS = [
    "version",
    "help",
    "inetd",
    "interface=",
    "port=",
    "log=",
    "command=",
    "auth=",
]


def version_text() -> str:
    return (
        f"msmtpd version {__version__} (msmtp-twisted)\n"
        f"Behaves like msmtpd {MSMTP_COMPAT_VERSION}.\n"
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
"""


def main(argv: Sequence[str]) -> int:
    """Run msmtpd with ``argv`` (``argv[0]`` is the program name); return the exit status."""
    prog = "msmtpd"
    try:
        opts, args = getopt.getopt(list(argv[1:]), "", _LONG_OPTIONS)
    except getopt.GetoptError as error:
        sys.stderr.write(f"{prog}: {error}\n")
        return EXIT_NOT_RUNNING
    for name, value in opts:
        if f"{name[2:]}=" in _LONG_OPTIONS and not value:
            sys.stderr.write(f"{prog}: option '{name}' requires non-empty argument\n")
            return EXIT_NOT_RUNNING
    if args:
        sys.stderr.write(f"{prog}: too many arguments\n")
        return EXIT_NOT_RUNNING
    names = {name for name, _ in opts}
    if "--version" in names:
        sys.stdout.write(version_text())
        return EX_OK
    if "--help" in names:
        sys.stdout.write(help_text())
        return EX_OK
    sys.stderr.write(f"{prog}: not yet implemented\n")
    return EX_UNAVAILABLE


def console_main() -> None:
    """Entry point of the ``msmtpd`` console script."""
    sys.exit(main(sys.argv))
