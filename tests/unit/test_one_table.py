"""The one table (issue 13, item 6): msmtp's commands and options are the rows of
:data:`msmtp_twisted.config.commands.TABLE`, msmtpd's those of
:data:`msmtp_twisted.daemon.options.OPTIONS`.

Every row has a description (the manual and the man pages print it); adding a
setting is adding one row (checked by adding one, in a child process); the
orders msmtp shows (``--help``, ``--pretend``, getopt's ambiguity message) are
unchanged.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from msmtp_twisted import cli
from msmtp_twisted.config import commands
from msmtp_twisted.config.commands import (
    COMMANDS,
    GETOPT_ORDER,
    OPTIONS,
    PRETEND_ORDER,
    SECTIONS,
    SETTINGS,
    TABLE,
    Command,
    merge_order,
)
from msmtp_twisted.daemon.options import OPTIONS as MSMTPD_OPTIONS
from msmtp_twisted.modes.info import help_text
from tests.conftest import ROOT


def _row_id(row: Command) -> str:
    return row.name or row.usage


# --------------------------------------------------------------------------
# descriptions


def test_every_msmtp_command_and_option_has_a_description() -> None:
    missing = [_row_id(row) for row in TABLE if len(row.description.strip()) < 10]
    assert not missing, (
        "these rows of TABLE in msmtp_twisted/config/commands.py need a description= "
        f"(a sentence or two for the manual and msmtp(1)): {missing}"
    )


def test_every_msmtpd_option_has_a_description() -> None:
    missing = [f"--{o.name}" for o in MSMTPD_OPTIONS if len(o.description.strip()) < 10]
    assert not missing, (
        "these options in msmtp_twisted/daemon/options.py need a description= "
        f"(for the manual and msmtpd(8)): {missing}"
    )


def test_every_option_is_spelt_and_in_a_section() -> None:
    for row in OPTIONS:
        assert row.usage, f"{_row_id(row)}: usage= (how the option is written) is missing"
        assert row.section in SECTIONS, f"{_row_id(row)}: section {row.section!r}"
        for name in row.cli:
            assert f"--{name}" in row.usage or name in ("connect-timeout",), (
                f"--{name} is not in the usage {row.usage!r} of its row"
            )
        if row.short:
            assert f"-{row.short}" in row.usage, row


def test_the_rows_are_distinct() -> None:
    names = [n for c in COMMANDS for n in (c.name, *c.aliases)]
    assert len(names) == len(set(names))
    longs = [name for row in OPTIONS for name in row.cli]
    assert len(longs) == len(set(longs))
    shorts = [row.short for row in OPTIONS if row.short]
    assert len(shorts) == len(set(shorts))


# --------------------------------------------------------------------------
# settings: one row owns each field


def test_every_field_has_exactly_one_row_that_owns_it() -> None:
    owners: dict[str, list[str]] = {}
    for row in TABLE:
        if row.owns_field:
            assert row.field, f"{_row_id(row)} gives a default but sets no field"
            owners.setdefault(row.field, []).append(row.name)
    assert all(len(rows) == 1 for rows in owners.values()), owners
    for row in TABLE:
        if row.field:
            assert row.field in owners, (
                f"{row.name} sets {row.field}, which no row owns: give the main "
                "command of that field a default="
            )
    assert [s.field for s in SETTINGS] == list(merge_order(list(owners), PRETEND_ORDER))


def test_msmtps_orders_name_only_rows_that_exist() -> None:
    """PRETEND_ORDER and GETOPT_ORDER are history; a removed or renamed row must
    not leave a stale name there."""
    fields = {s.field for s in SETTINGS}
    assert [f for f in PRETEND_ORDER if f not in fields] == []
    longs = {name for row in OPTIONS for name in row.cli}
    assert [n for n in GETOPT_ORDER if n not in longs] == []
    # today every setting and option has its place in msmtp's own orders
    assert set(PRETEND_ORDER) == fields
    assert set(GETOPT_ORDER) == longs


def test_merge_order_places_a_new_name_after_its_table_predecessor() -> None:
    assert merge_order(["a", "b", "c"], ["c", "a", "b"]) == ["c", "a", "b"]
    assert merge_order(["a", "x", "b"], ["b", "a"]) == ["b", "a", "x"]
    assert merge_order(["x", "a"], ["a"]) == ["x", "a"]
    assert merge_order(["a", "x", "y"], ["a"]) == ["a", "x", "y"]


def test_sendmail_section_settings_are_the_mail_settings() -> None:
    from msmtp_twisted.protocol.kept import CONNECTION_FIELDS, MAIL_FIELDS

    assert CONNECTION_FIELDS[:3] == ("host", "port", "source_ip")
    assert "from_addr" in MAIL_FIELDS and "tls" in CONNECTION_FIELDS
    for setting in SETTINGS:
        assert setting.sendmail_only == (not setting.connection), setting


# --------------------------------------------------------------------------
# the orders msmtp shows are unchanged


#: ``msmtp --help`` as it was written by hand before the table generated it:
#: msmtp 1.8.23's, plus --set-to-header and -F, with our bug address.
HELP_BEFORE = """\
Usage:

Sendmail mode (default):
  msmtp [option...] [--] recipient...
  msmtp [option...] -t [--] [recipient...]
  Read a mail from standard input and transmit it to an SMTP or LMTP server.
Configuration mode:
  msmtp --configure=mailadress
  Generate and print configuration for address.
Server information mode:
  msmtp [option...] --serverinfo
  Print information about a server.
Remote Message Queue Starting mode:
  msmtp [option...] --rmqs=host|@domain|#queue
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


def test_help_generated_from_the_table_is_unchanged() -> None:
    assert help_text() == HELP_BEFORE


def test_getopt_tables_are_unchanged() -> None:
    def letters(optstring: str) -> dict[str, int]:
        out: dict[str, int] = {}
        i = 0
        while i < len(optstring):
            letter, i = optstring[i], i + 1
            colons = len(optstring[i:]) - len(optstring[i:].lstrip(":"))
            out[letter], i = colons, i + colons
        return out

    # the order of the short options means nothing to getopt; their arguments do
    assert letters(cli.SHORTOPTS) == letters("Pd::SC:a:f:N:R:X:tA:B:b:F:Gh:iL:mnO:o:v")
    assert [o.name for o in cli.LONG_OPTIONS] == GETOPT_ORDER


def test_pretend_order_is_unchanged() -> None:
    assert [s.field for s in SETTINGS] == PRETEND_ORDER
    assert [s.label for s in SETTINGS][:8] == [
        "host", "port", "source ip", "proxy host", "proxy port", "socket", "timeout",
        "protocol"]


def test_the_docstring_says_what_is_true() -> None:
    doc = commands.__doc__ or ""
    assert "one row" in doc and "nothing else" not in doc
    assert not hasattr(cli, "_LONG_ORDER") and not hasattr(cli, "_MODE_OPTIONS")


# --------------------------------------------------------------------------
# adding a setting is adding a row


NEW_ROW = '''
    Command(
        "tls_x_test", "tls_x_test", K["optional_string"], ("tls-x-test",), default=None,
        doc="a setting added by a test", usage="--tls-x-test=[x]",
        help="set/unset a test setting", description="Added by the one-table test.",
    ),
'''

ADD_A_ROW = textwrap.dedent('''
    import importlib.util, sys
    from pathlib import Path

    import msmtp_twisted.config
    path = Path(msmtp_twisted.config.__file__).parent / "commands.py"
    source = path.read_text()
    anchor = "    # ----------------------------------------------------------- sendmail mode"
    assert source.count(anchor) == 1
    source = source.replace(anchor, NEW_ROW + anchor)
    spec = importlib.util.spec_from_loader("msmtp_twisted.config.commands", loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(path)
    sys.modules["msmtp_twisted.config.commands"] = module
    exec(compile(source, str(path), "exec"), module.__dict__)

    from msmtp_twisted import cli
    from msmtp_twisted.config.commands import command_by_name, SETTINGS
    from msmtp_twisted.config.fieldgen import render_account_fields
    from msmtp_twisted.config.parser import parse_config
    from msmtp_twisted.config.reference import render_man_page, render_reference
    from msmtp_twisted.modes.info import help_text
    from msmtp_twisted.modes.pretend import format_settings
    from msmtp_twisted.protocol.kept import CONNECTION_FIELDS

    assert command_by_name("tls_x_test") is not None
    account = parse_config(b"account a\\nhost h\\ntls_x_test from-rc\\n", "rc").find("a")
    assert account.tls_x_test == "from-rc", vars(account)
    conf = cli.parse_command_line(["--host=h", "--tls-x-t=from-cli", "-P"])
    assert conf.account.tls_x_test == "from-cli"
    lines = format_settings(conf.account, conf)
    # where msmtp's orders do not know it: after the row before it in the table
    at = lines.index("tls_x_test = from-cli")
    assert lines[at - 1].startswith("tls_min_dh_prime_bits = "), lines
    names = [o.name for o in cli.LONG_OPTIONS]
    assert names[names.index("tls-min-dh-prime-bits") + 1] == "tls-x-test", names
    help = help_text()
    assert "  --tls-x-test=[x]             set/unset a test setting\\n" in help
    assert help.index("--tls-x-test") < help.index("Options specific to sendmail mode")
    assert "tls_x_test" in CONNECTION_FIELDS
    assert "tls_x_test: str | None" in render_account_fields()
    assert "Added by the one-table test." in render_reference()
    assert "tls\\\\-x\\\\-test" in render_man_page("msmtp")
    print("ok")
''')


def test_adding_a_setting_is_adding_one_row() -> None:
    """A new row is an msmtprc command, an option (getopt, --help), an account
    field (--pretend, the typed attributes) and a reference entry, with nothing
    else to edit."""
    result = subprocess.run(
        [sys.executable, "-c", f"NEW_ROW = {NEW_ROW!r}\n{ADD_A_ROW}"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert result.returncode == 0 and result.stdout == "ok\n", result.stderr[-3000:]


@pytest.mark.parametrize("row", [r for r in TABLE if r.name], ids=_row_id)
def test_every_command_is_in_the_reference(row: Command) -> None:
    from msmtp_twisted.config.reference import render_reference

    assert f"### `{row.name}" in render_reference()
