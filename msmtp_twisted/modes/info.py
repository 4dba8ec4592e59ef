"""``--version`` and ``--help``, laid out as msmtp lays them out."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from msmtp_twisted import MSMTP_COMPAT_VERSION, __version__

if TYPE_CHECKING:
    from msmtp_twisted.modes.invocation import Output

__all__ = ["print_help", "print_version"]


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


HELP = """\
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

General options:
  --version                    print version
  --help                       print help
  -P, --pretend                print configuration info and exit
  -d, --debug                  print debugging information
Changing the mode of operation:
  --configure=mailaddress      generate and print configuration for address
  -S, --serverinfo             print information about the server
  --rmqs=host|@domain|#queue   send a Remote Message Queue Starting request
Configuration options:
  -C, --file=filename          set configuration file
  -a, --account=id             use the given account instead of the account
                               named "default"; its settings may be changed
                               with command-line options
  --host=hostname              set the server, use only command-line settings;
                               do not use any configuration file data
  --port=number                set port number
  --source-ip=[IP]             set/unset source ip address to bind the socket to
  --proxy-host=[IP|hostname]   set/unset proxy
  --proxy-port=[number]        set/unset proxy port
  --socket=[socketname]        set/unset local socket to connect to
  --timeout=(off|seconds)      set/unset network timeout in seconds
  --protocol=(smtp|lmtp)       use the given sub protocol
  --domain=string              set the argument of EHLO or LHLO command
  --auth[=(on|off|method)]     enable/disable authentication and optionally
                               choose the method
  --user=[username]            set/unset user name for authentication
  --passwordeval=[eval]        evaluate password for authentication
  --tls[=(on|off)]             enable/disable TLS encryption
  --tls-starttls[=(on|off)]    enable/disable STARTTLS for TLS
  --tls-trust-file=[file]      set/unset trust file for TLS
  --tls-crl-file=[file]        set/unset revocation file for TLS
  --tls-fingerprint=[f]        set/unset trusted certificate fingerprint for TLS
  --tls-certcheck[=(on|off)]   enable/disable server certificate checks for TLS
  --tls-key-file=[file]        set/unset private key file for TLS
  --tls-cert-file=[file]       set/unset private cert file for TLS
  --tls-priorities=[prios]     set/unset TLS priorities.
  --tls-host-override=[host]   set/unset override for TLS host verification.
  --tls-min-dh-prime-bits=[b]  set/unset minimum bit size of DH prime
Options specific to sendmail mode:
  --auto-from[=(on|off)]       enable/disable automatic envelope-from addresses
  -f, --from=address           set envelope from address
  --maildomain=[domain]        set the domain for automatic envelope from
                               addresses
  -N, --dsn-notify=(off|cond)  set/unset DSN conditions
  -R, --dsn-return=(off|ret)   set/unset DSN amount
  -X, --logfile=[file]         set/unset log file
  --logfile-time-format=[fmt]  set/unset log file time format for strftime()
  --syslog[=(on|off|facility)] enable/disable/configure syslog logging
  -t, --read-recipients        read additional recipients from the mail
  --read-envelope-from         read envelope from address from the mail
  --aliases=[file]             set/unset aliases file
  --set-from-header[=(auto|on|off)] set From header handling
  --set-date-header[=(auto|off)] set Date header handling
  --set-msgid-header[=(auto|off)] set Message-ID header handling
  --set-to-header[=(on|off|undisclosed_recipients)] set To header handling
  --remove-bcc-headers[=(on|off)] enable/disable removal of Bcc headers
  --undisclosed-recipients[=(on|off)] enable/disable replacement of To/Cc/Bcc
                               with To: undisclosed-recipients:;
  -F name                      set the full name for a generated From header
  --                           end of options
Accepted but ignored: -A, -B, -bm, -G, -h, -i, -L, -m, -n, -O, -o, -v

Report bugs to the msmtp-twisted issue tracker.
"""


def print_help(out: Output) -> None:
    out.out(HELP.format(prog="msmtp").rstrip("\n"))
