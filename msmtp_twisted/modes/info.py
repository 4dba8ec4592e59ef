"""``--version`` and ``--help``, laid out as msmtp lays them out."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from msmtp_twisted import MSMTP_COMPAT_VERSION, __version__

if TYPE_CHECKING:
    from msmtp_twisted.modes.invocation import Output

__all__ = ["help_text", "print_help", "print_version"]


def _tls_library() -> str:
    from importlib import metadata

    try:
        return f"OpenSSL (pyOpenSSL {metadata.version('pyOpenSSL')})"
    except metadata.PackageNotFoundError:
        return "none"


def print_version(out: Output) -> None:
    from msmtp_twisted import auth
    from msmtp_twisted.config.files import system_config_path, user_config_path

    machine = os.uname().machine if hasattr(os, "uname") else "unknown"
    out.out(f"msmtp version {MSMTP_COMPAT_VERSION} (msmtp-twisted {__version__})")
    out.out(f"Platform: {machine}-{sys.platform} (Python {sys.version.split()[0]})")
    out.out(f"TLS/SSL library: {_tls_library()}")
    out.out("Authentication library: built-in")
    out.out("Supported authentication methods:")
    out.out("".join(f"{m} " for m in auth.METHODS))
    if auth.UNAVAILABLE:
        out.out("Unavailable authentication methods: "
                + ", ".join(f"{m} ({why})" for m, why in auth.UNAVAILABLE.items()))
    out.out("IDN support: enabled")
    out.out("NLS: disabled")
    out.out(f"Keyring support: {auth.keyring_support()}")
    out.out(f"System configuration file name: {system_config_path()}")
    out.out(f"User configuration file name: {user_config_path()}")
    out.out("")
    out.out("Copyright (C) 2026 the msmtp-twisted authors.")
    out.out("This is free software.  You may redistribute copies of it under the terms of")
    out.out("the GNU General Public License <http://www.gnu.org/licenses/gpl.html>.")
    out.out("There is NO WARRANTY, to the extent permitted by law.")


_USAGE = """\
Usage:

Sendmail mode (default):
  {prog} [option...] [--] recipient...
  {prog} [option...] -t [--] [recipient...]
  Read a mail from standard input and transmit it to an SMTP or LMTP server.
Configuration mode:
  {prog} --configure=mailadress
  Generate and print configuration for address.
Server information mode:
  {prog} [option...] --serverinfo
  Print information about a server.
Remote Message Queue Starting mode:
  {prog} [option...] --rmqs=host|@domain|#queue
  Send a Remote Message Queue Starting request to a server.

"""


def help_text(prog: str = "msmtp") -> str:
    """``msmtp --help``: msmtp 1.8.23's layout, the option lines from the table's
    ``usage`` and ``help`` (:data:`~msmtp_twisted.config.commands.TABLE`)."""
    from msmtp_twisted.config.commands import IGNORED, OPTIONS, SECTIONS

    lines = [_USAGE.format(prog=prog)]
    for section in SECTIONS:
        if section == IGNORED:
            ignored = [row.usage for row in OPTIONS if row.section == IGNORED]
            lines.append(f"{IGNORED}: {', '.join(ignored)}\n")
            continue
        lines.append(f"{section}:\n")
        for row in OPTIONS:
            if row.section == section and row.help:
                first, *rest = row.help.split("\n")
                lines.append(f"  {row.usage:<28} {first}\n")
                lines += [f"{'':31}{line}\n" for line in rest]
    lines.append("\nReport bugs to the msmtp-twisted issue tracker.\n")
    return "".join(lines)


def print_help(out: Output) -> None:
    out.out(help_text().rstrip("\n"))
