"""The msmtprc parser (msmtp_twisted.config.parser) against msmtp 1.8.23's conf.c.

Every expectation here follows ``read_conffile``/``get_cmd``/``trim_string`` in
msmtp 1.8.23 (checked against /usr/bin/msmtp where the behaviour is visible).
"""

from __future__ import annotations

import pytest

from msmtp_twisted import sysexits
from msmtp_twisted.config.account import Account
from msmtp_twisted.config.parser import (
    ConfigError,
    EvalError,
    ParsedFile,
    iter_lines,
    parse_config,
    split_line,
    trim_argument,
)

CONFFILE = "/home/u/.msmtprc"


def parse(text: str | bytes, evaluate=None) -> ParsedFile:
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    return parse_config(data, CONFFILE, evaluate=evaluate)


def error(text: str | bytes, evaluate=None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(text, evaluate)
    return info.value


def only(text: str | bytes, evaluate=None) -> Account:
    """The single account a file defines."""
    accounts = parse(text, evaluate).accounts
    assert len(accounts) == 1, [a.id for a in accounts]
    return accounts[0]


def ids(text: str) -> list[str | None]:
    return [a.id for a in parse(text).accounts]


# --------------------------------------------------------------------------
# lexing: split_line, trim_argument, iter_lines


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("host h\n", ("host", "h")),
        ("host h", ("host", "h")),
        ("host h\r\n", ("host", "h")),
        ("  \thost \t h \t\n", ("host", "h")),
        ("host\th", ("host", "h")),
        ("host", ("host", "")),
        ("host   \n", ("host", "")),
        ("domain a  b\n", ("domain", "a  b")),
        ('password "a b"\n', ("password", "a b")),
        ('password  "  padded  "  \n', ("password", "  padded  ")),
        ('password "a b\n', ("password", '"a b')),
        ('password a b"\n', ("password", 'a b"')),
        ('password "\n', ("password", '"')),
        ('password ""\n', ("password", "")),
        ('password """\n', ("password", '"')),
        ('password "a" "b"\n', ("password", 'a" "b')),
        ('password a"b"\n', ("password", 'a"b"')),
        # no inline comments in msmtprc
        ("host h # not a comment\n", ("host", "h # not a comment")),
        ("host#x y\n", ("host#x", "y")),
        # a CR is only removed right before the newline
        ("host h\r", ("host", "h\r")),
        ("host h\r\r\n", ("host", "h\r")),
        ("host a\rb\n", ("host", "a\rb")),
    ],
)
def test_split_line(line: str, expected: tuple[str, str]) -> None:
    assert split_line(line) == expected


@pytest.mark.parametrize(
    "line", ["", "\n", "\r\n", "   \t \n", "# comment\n", "  \t# indented comment", "#host h\n"]
)
def test_split_line_blank_and_comment(line: str) -> None:
    assert split_line(line) is None


def test_split_line_only_looks_at_the_first_line() -> None:
    assert split_line("host a\nport 25\n") == ("host", "a")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  x  ", "x"),
        ('"x"', "x"),
        ('  "x"\t', "x"),
        ('"', '"'),
        ('""', ""),
        ("\"'x'\"", "'x'"),
        ("'x'", "'x'"),  # only double quotes
        (' " x " ', " x "),
        ("\vx\v", "\vx\v"),  # only spaces and tabs are blanks
    ],
)
def test_trim_argument(text: str, expected: str) -> None:
    assert trim_argument(text) == expected


def test_iter_lines_keeps_newlines_and_last_line_without_newline() -> None:
    assert list(iter_lines(b"a\nb\r\n\nc")) == ["a\n", "b\r\n", "\n", "c"]


def test_iter_lines_drops_text_after_nul() -> None:
    assert list(iter_lines(b"host h\0junk\nport 1\n")) == ["host h", "port 1\n"]


def test_iter_lines_non_utf8_round_trips() -> None:
    (line,) = iter_lines(b"host \xff\xfe\n")
    assert line.encode("utf-8", "surrogateescape") == b"host \xff\xfe\n"


# --------------------------------------------------------------------------
# whole files: comments, blank lines, line ends, quoting


def test_empty_file_has_no_accounts() -> None:
    result = parse(b"")
    assert result.accounts == []
    assert result.contains_secrets is False


def test_comments_and_blank_lines_only() -> None:
    assert parse("# a comment\n\n   \n\t# another\n\r\n").accounts == []


def test_crlf_line_ends() -> None:
    acc = only("account a\r\nhost smtp.example\r\nport 587\r\nuser \"u v\"\r\n")
    assert (acc.id, acc.host, acc.port, acc.username) == ("a", "smtp.example", 587, "u v")


def test_tabs_as_blanks() -> None:
    acc = only("\taccount\ta\n\thost\t\tsmtp.example\t\n")
    assert acc.host == "smtp.example"


def test_quoted_password_keeps_inner_blanks() -> None:
    assert only('password "a b"\n').password == "a b"
    assert only('password " a b "\n').password == " a b "


def test_unbalanced_quote_is_kept() -> None:
    assert only('password "a b\n').password == '"a b'
    assert only('password a b"\n').password == 'a b"'


def test_quoted_empty_argument_is_empty() -> None:
    assert only('user ""\n').username is None
    assert error('host ""\n').message == "line 1: command host needs an argument"


def test_last_line_without_newline() -> None:
    assert only("host h\nport 2525").port == 2525


def test_cr_without_newline_stays_in_the_argument() -> None:
    # get_cmd only removes a CR that precedes the newline
    assert only(b"host h\r").host == "h\r"


def test_nul_hides_the_rest_of_the_line() -> None:
    acc = only(b"host h\0port 1\nport 2\n")
    assert (acc.host, acc.port) == ("h", 2)


def test_nul_at_line_start_makes_an_empty_line() -> None:
    assert parse(b"\0host h\n").accounts == []


def test_non_utf8_bytes_survive() -> None:
    acc = only(b"host h\xff\n")
    assert acc.host.encode("utf-8", "surrogateescape") == b"h\xff"


def test_line_numbers_count_comments_and_blank_lines() -> None:
    assert error("# c\n\nhost h\n\tbogus x\n").message == "line 4: unknown command bogus"


def test_first_error_wins() -> None:
    assert error("port 0\nbogus\n").message == "line 1: invalid argument 0 for command port"


def test_conffile_and_mask() -> None:
    acc = only("account a\nhost h\nport 25\n")
    assert acc.conffile == CONFFILE
    assert acc.mask == {"host", "port"}


# --------------------------------------------------------------------------
# the 500-byte line limit (msmtp reads lines with fgets into a 501-byte buffer)


def test_line_of_500_bytes_with_newline_is_fine() -> None:
    line = "host " + "a" * 494 + "\n"
    assert len(line) == 500
    assert only(line).host == "a" * 494


def test_last_line_of_499_bytes_without_newline_is_fine() -> None:
    assert only("host " + "a" * 494).host == "a" * 494


@pytest.mark.parametrize(
    "data",
    [
        b"host " + b"a" * 495 + b"\n",  # 501 bytes with the newline
        b"host " + b"a" * 495,  # 500 bytes, no newline, at end of file
        b"# " + b"x" * 600 + b"\n",  # comments count too
        b"host h\n" + b"a" * 1000 + b"\n",
    ],
)
def test_long_line_is_an_error(data: bytes) -> None:
    e = error(data)
    assert e.message.startswith("line longer than ")
    assert e.exitcode == sysexits.EX_CONFIG


def test_long_line_message_matches_msmtp() -> None:
    # msmtp 1.8.23: LINEBUFSIZE 501, message "line longer than %d characters", LINEBUFSIZE - 1
    assert error(b"host " + b"a" * 495 + b"\n").message == "line longer than 500 characters"


def test_nul_inside_a_long_line_splits_it_like_fgets() -> None:
    # fgets returns 500 bytes; strlen stops at the NUL so no error; the rest of
    # the physical line is read as the next line (line 2).
    data = b"host h\0" + b"x" * 600 + b"\n"
    e = error(data)
    assert e.message == "line 2: unknown command " + "x" * 107


# --------------------------------------------------------------------------
# accounts, defaults, inheritance


def test_commands_before_any_account_go_to_implicit_default() -> None:
    result = parse("host h\naccount a\nport 26\n")
    assert [a.id for a in result.accounts] == ["default", "a"]
    default, a = result.accounts
    assert (default.host, default.port) == ("h", 0)
    assert (a.host, a.port) == (None, 26)
    assert default.conffile == CONFFILE


def test_defaults_does_not_create_an_implicit_account() -> None:
    assert parse("defaults\nhost h\n").accounts == []


def test_implicit_default_clashes_with_explicit_default() -> None:
    assert error("host h\naccount default\n").message == (
        "line 2: account default was already defined"
    )


def test_ignored_command_still_creates_implicit_default() -> None:
    acc = only("tls_force_sslv3 on\n")
    assert acc.id == "default"
    assert acc.mask == set()


def test_defaults_apply_to_later_accounts_only() -> None:
    result = parse(
        "account a\nhost ha\n"
        "defaults\nport 26\ntls on\n"
        "account b\n"
        "defaults\nport 27\n"
        "account c\nport 28\n"
    )
    a, b, c = result.accounts
    assert (a.port, a.tls, a.host) == (0, False, "ha")
    assert (b.port, b.tls) == (26, True)
    assert (c.port, c.tls) == (28, True)
    # settings taken from defaults are not "set" in the account itself
    assert b.mask == set()
    assert c.mask == {"port"}


def test_defaults_after_implicit_default() -> None:
    result = parse("host h\ndefaults\nport 26\naccount a\n")
    default, a = result.accounts
    assert default.port == 0
    assert (a.port, a.host) == (26, None)


def test_commands_after_defaults_do_not_touch_previous_account() -> None:
    result = parse("account a\nhost ha\ndefaults\nhost hd\naccount b\n")
    assert [(x.id, x.host) for x in result.accounts] == [("a", "ha"), ("b", "hd")]


def test_defaults_takes_no_argument() -> None:
    e = error("defaults x\n")
    assert e.message == "line 1: command defaults does not take an argument"
    assert e.exitcode == sysexits.EX_CONFIG


def test_account_names_are_case_sensitive() -> None:
    assert ids("account a\naccount A\n") == ["a", "A"]


def test_quoted_account_name() -> None:
    assert ids('account "my acc"\n') == ["my acc"]


def test_inheritance_single_parent() -> None:
    result = parse("account a\nhost ha\nport 1\naccount b : a\nport 2\n")
    a, b = result.accounts
    assert (b.host, b.port) == ("ha", 2)
    assert b.mask == {"host", "port"}
    assert (a.host, a.port) == ("ha", 1)


def test_inheritance_multiple_parents_later_wins() -> None:
    text = (
        "account a\nhost ha\nport 1\n"
        "account b\nhost hb\nuser ub\n"
        'account c : a, "b"\n'
        "account d:b,a\n"
    )
    a, b, c, d = parse(text).accounts
    assert (c.host, c.port, c.username) == ("hb", 1, "ub")
    assert (d.host, d.port, d.username) == ("ha", 1, "ub")


def test_inheritance_is_transitive_through_mask() -> None:
    a, b, c = parse("account a\nhost ha\naccount b : a\nport 2\naccount c : b\n").accounts
    assert (c.host, c.port) == ("ha", 2)


def test_inheritance_starts_from_current_defaults() -> None:
    # a's port came from the defaults of its time, not from a itself, so it is
    # not inherited; b gets the defaults of its own time.
    text = "defaults\nport 26\naccount a\nhost ha\ndefaults\nport 27\naccount b : a\n"
    a, b = parse(text).accounts
    assert (a.port, b.port, b.host) == (26, 27, "ha")


def test_inherited_values_can_be_unset() -> None:
    a, b = parse("account a\nuser ua\naccount b : a\nuser\n").accounts
    assert (a.username, b.username) == ("ua", None)


def test_inheritance_copies_parents_conffile() -> None:
    a, b = parse("account a\naccount b : a\n").accounts
    assert b.conffile == CONFFILE


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("account\n", "line 1: missing account name"),
        ('account ""\n', "line 1: missing account name"),
        ("account a\naccount : a\n", "line 2: missing account name"),
        ("account a\naccount b :\n", "line 2: missing account name"),
        ("account a\naccount b : a,\n", "line 2: missing account name"),
        ("account a\naccount b : a, ,a\n", "line 2: missing account name"),
        ("account a\naccount b : ,a\n", "line 2: missing account name"),
        # the parents are looked up before the new name is checked
        ("account : x\n", "line 1: account x not (yet) defined"),
        ("account b : x\n", "line 1: account x not (yet) defined"),
        ("account b : b\n", "line 1: account b not (yet) defined"),
        ("account a\naccount b : a, c\n", "line 2: account c not (yet) defined"),
        ("account a\naccount b : a : c\n", "line 2: account a : c not (yet) defined"),
        ("account a,b\n", "line 1: an account name must not contain colons or commas"),
        ("account a\naccount b,c : a\n",
         "line 2: an account name must not contain colons or commas"),
        ("account a\naccount a\n", "line 2: account a was already defined"),
        ("account a\naccount a : a\n", "line 2: account a was already defined"),
        ("account a\n account  a \n", "line 2: account a was already defined"),
    ],
)
def test_account_errors(text: str, message: str) -> None:
    e = error(text)
    assert e.message == message
    assert e.exitcode == sysexits.EX_CONFIG


# --------------------------------------------------------------------------
# every kind of argument


def value(command: str, arg: str, field: str):
    line = f"{command} {arg}\n" if arg else f"{command}\n"
    acc = only(line)
    assert field in acc.mask
    return getattr(acc, field)


def invalid(command: str, arg: str) -> None:
    e = error(f"{command} {arg}\n")
    assert e.message == f"line 1: invalid argument {arg} for command {command}"
    assert e.exitcode == sysexits.EX_CONFIG


def needs_argument(command: str) -> None:
    e = error(f"{command}\n")
    assert e.message == f"line 1: command {command} needs an argument"
    assert e.exitcode == sysexits.EX_CONFIG


ONOFF = [
    ("tls", "tls", False),
    ("tls_starttls", "tls_starttls", False),
    ("tls_certcheck", "tls_certcheck", False),
    ("remove_bcc_headers", "remove_bcc_headers", False),
    ("auto_from", "auto_from", False),
    ("keepbcc", "remove_bcc_headers", True),
]


@pytest.mark.parametrize(("command", "field", "inverted"), ONOFF)
def test_onoff_commands(command: str, field: str, inverted: bool) -> None:
    assert value(command, "on", field) is (not inverted)
    assert value(command, "", field) is (not inverted)
    assert value(command, "off", field) is inverted
    assert value(command, '"on"', field) is (not inverted)
    for bad in ("ON", "Off", "yes", "1", "true", "on on", "onoff"):
        invalid(command, bad)


def test_allow_from_override_on_off() -> None:
    assert value("allow_from_override", "on", "allow_from_override") is True
    assert value("allow_from_override", "off", "allow_from_override") is False
    invalid("allow_from_override", "yes")


def test_allow_from_override_needs_on_or_off() -> None:
    assert error("allow_from_override\n").message == (
        "line 1: invalid argument  for command allow_from_override"
    )


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("25", 25),
        ("1", 1),
        ("65535", 65535),
        ("0x19", 25),
        ("0X19", 25),
        ("031", 25),
        ("+25", 25),
        ("0xffff", 65535),
    ],
)
def test_port_valid(arg: str, expected: int) -> None:
    assert value("port", arg, "port") == expected


@pytest.mark.parametrize(
    "arg",
    ["0", "65536", "-25", "25x", "x25", "abc", "08", "0x", "0x1g", "2 5", "1e3", "25.0", "00",
     "99999999999999999999", "0x10000"],
)
def test_port_invalid(arg: str) -> None:
    invalid("port", arg)


def test_port_needs_argument() -> None:
    needs_argument("port")


def test_proxy_port() -> None:
    assert value("proxy_port", "", "proxy_port") == 0
    assert value("proxy_port", "1080", "proxy_port") == 1080
    assert value("proxy_port", "0x438", "proxy_port") == 1080
    for bad in ("0", "65536", "x", "-1"):
        invalid("proxy_port", bad)


def test_timeout() -> None:
    assert value("timeout", "off", "timeout") == 0
    assert value("timeout", "30", "timeout") == 30
    assert value("timeout", "010", "timeout") == 8
    assert value("timeout", "2147483647", "timeout") == 2**31 - 1
    for bad in ("0", "-1", "on", "OFF", "30s", "2147483648"):
        invalid("timeout", bad)
    needs_argument("timeout")


def test_connect_timeout_is_an_alias_of_timeout() -> None:
    assert value("connect_timeout", "12", "timeout") == 12
    assert value("connect_timeout", "off", "timeout") == 0
    invalid("connect_timeout", "0")
    needs_argument("connect_timeout")


def test_protocol() -> None:
    assert value("protocol", "smtp", "protocol") == "smtp"
    assert value("protocol", "lmtp", "protocol") == "lmtp"
    for bad in ("SMTP", "esmtp", "on"):
        invalid("protocol", bad)
    needs_argument("protocol")


def test_host_needs_argument() -> None:
    needs_argument("host")
    assert value("host", "smtp.example.org", "host") == "smtp.example.org"


@pytest.mark.parametrize("method", ["plain", "scram-sha-1", "scram-sha-256", "cram-md5",
                                    "digest-md5", "gssapi", "external", "login", "ntlm",
                                    "oauthbearer", "xoauth2"])
def test_auth_methods_are_upper_cased(method: str) -> None:
    assert value("auth", method, "auth_mech") == method.upper()


def test_auth_on_off_empty() -> None:
    assert value("auth", "", "auth_mech") == ""
    assert value("auth", "on", "auth_mech") == ""
    assert value("auth", "off", "auth_mech") is None
    for bad in ("PLAIN", "Login", "md5", "yes", "plain login"):
        invalid("auth", bad)


SHA256 = ":".join(f"{i:02x}" for i in range(32))
SHA1 = " ".join(f"{i:02X}" for i in range(20))
MD5 = ":".join(f"{255 - i:02x}" for i in range(16))


def test_fingerprints() -> None:
    assert value("tls_fingerprint", SHA256, "tls_fingerprint") == bytes(range(32))
    assert value("tls_fingerprint", SHA1, "tls_fingerprint") == bytes(range(20))
    assert value("tls_fingerprint", MD5, "tls_fingerprint") == bytes(255 - i for i in range(16))
    mixed = "AB:cd ef" + ":00" * 17
    assert value("tls_fingerprint", mixed, "tls_fingerprint") == b"\xab\xcd\xef" + bytes(17)
    assert value("tls_fingerprint", "", "tls_fingerprint") is None


@pytest.mark.parametrize(
    "arg",
    [
        SHA256[:-3],  # 31 bytes
        SHA256 + ":00",  # 33 bytes
        SHA1.replace(" ", "-"),  # bad separator
        SHA1.replace(" ", "\t"),
        MD5.replace("ff", "fg"),  # bad hex digit
        MD5.replace(":", ""),  # no separators
        "on",
    ],
)
def test_fingerprint_invalid(arg: str) -> None:
    invalid("tls_fingerprint", arg)


def test_tls_min_dh_prime_bits() -> None:
    assert value("tls_min_dh_prime_bits", "", "tls_min_dh_prime_bits") == -1
    assert value("tls_min_dh_prime_bits", "1024", "tls_min_dh_prime_bits") == 1024
    invalid("tls_min_dh_prime_bits", "0")
    invalid("tls_min_dh_prime_bits", "x")


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("off", None),
        ("never", "NEVER"),
        ("failure", "FAILURE"),
        ("delay", "DELAY"),
        ("success", "SUCCESS"),
        ("failure,delay", "FAILURE,DELAY"),
        ("delay,failure", "DELAY,FAILURE"),
        ("success,failure", "SUCCESS,FAILURE"),
        ("failure,delay,success", "FAILURE,DELAY,SUCCESS"),
        ("success,delay,failure", "SUCCESS,DELAY,FAILURE"),
    ],
)
def test_dsn_notify_valid(arg: str, expected: str | None) -> None:
    assert value("dsn_notify", arg, "dsn_notify") == expected


@pytest.mark.parametrize(
    "arg",
    ["FAILURE", "Never", "on", "failure,", ",failure", "failure,,delay", "failure delay",
     "failure,failure", "never,failure", "failure;delay", "failures", "x"],
)
def test_dsn_notify_invalid(arg: str) -> None:
    invalid("dsn_notify", arg)


@pytest.mark.parametrize(
    ("arg", "expected"),
    [("failuredelay,", "FAILUREDELAY,"), (",failure,delaysuccess", ",FAILURE,DELAYSUCCESS")],
)
def test_dsn_notify_rejects_what_msmtp_wrongly_accepts(arg: str, expected: str) -> None:
    # msmtp 1.8.23 only counts words and commas, so it would send NOTIFY=FAILUREDELAY,
    # to the server; we reject the setting (docs/differences.md).
    invalid("dsn_notify", arg)


def test_dsn_notify_needs_argument() -> None:
    needs_argument("dsn_notify")


def test_dsn_return() -> None:
    assert value("dsn_return", "headers", "dsn_return") == "HDRS"
    assert value("dsn_return", "full", "dsn_return") == "FULL"
    assert value("dsn_return", "off", "dsn_return") is None
    for bad in ("hdrs", "HEADERS", "on", "FULL"):  # "hdrs" only on the command line
        invalid("dsn_return", bad)
    needs_argument("dsn_return")


@pytest.mark.parametrize(
    "facility", ["LOG_USER", "LOG_MAIL"] + [f"LOG_LOCAL{i}" for i in range(8)]
)
def test_syslog_facilities(facility: str) -> None:
    assert value("syslog", facility, "syslog") == facility


def test_syslog_on_off() -> None:
    assert value("syslog", "", "syslog") == "LOG_USER"
    assert value("syslog", "on", "syslog") == "LOG_USER"
    assert value("syslog", "off", "syslog") is None
    for bad in ("LOG_LOCAL8", "LOG_LOCAL", "LOG_LOCAL00", "log_mail", "LOG_DAEMON", "user"):
        invalid("syslog", bad)


def test_set_from_header() -> None:
    for arg, expected in (("", "auto"), ("auto", "auto"), ("on", "on"), ("off", "off")):
        assert value("set_from_header", arg, "set_from_header") == expected
    invalid("set_from_header", "yes")


@pytest.mark.parametrize("command", ["set_date_header", "set_msgid_header"])
def test_set_auto_off_headers(command: str) -> None:
    assert value(command, "", command) == "auto"
    assert value(command, "auto", command) == "auto"
    assert value(command, "off", command) == "off"
    invalid(command, "on")
    invalid(command, "AUTO")


@pytest.mark.parametrize(
    ("command", "field"),
    [
        ("user", "username"),
        ("password", "password"),
        ("passwordeval", "passwordeval"),
        ("ntlmdomain", "ntlmdomain"),
        ("tls_priorities", "tls_priorities"),
        ("tls_host_override", "tls_host_override"),
        ("source_ip", "source_ip"),
        ("socket", "socket"),
        ("proxy_host", "proxy_host"),
        ("logfile_time_format", "logfile_time_format"),
    ],
)
def test_optional_strings_empty_unsets(command: str, field: str) -> None:
    assert value(command, "some value", field) == "some value"
    assert value(command, "", field) is None


@pytest.mark.parametrize(
    ("command", "field"),
    [("domain", "domain"), ("from", "from_addr"), ("maildomain", "maildomain")],
)
def test_plain_strings_empty_stays_empty(command: str, field: str) -> None:
    assert value(command, "x@y", field) == "x@y"
    assert value(command, "", field) == ""


@pytest.mark.parametrize(
    "command", ["tls_trust_file", "tls_crl_file", "tls_key_file", "tls_cert_file", "logfile",
                "aliases"]
)
def test_files_expand_tilde(command: str, monkeypatch) -> None:
    monkeypatch.setenv("HOME", "/home/tester")
    assert value(command, "~/f", command) == "/home/tester/f"
    assert value(command, "~other/f", command) == "/home/testerother/f"  # textual, like msmtp
    assert value(command, "/abs/~/f", command) == "/abs/~/f"
    assert value(command, "", command) is None


# --------------------------------------------------------------------------
# obsolete commands


def test_add_missing_headers() -> None:
    assert value("add_missing_from_header", "", "set_from_header") == "auto"
    assert value("add_missing_from_header", "on", "set_from_header") == "auto"
    assert value("add_missing_from_header", "off", "set_from_header") == "off"
    assert value("add_missing_date_header", "on", "set_date_header") == "auto"
    assert value("add_missing_date_header", "off", "set_date_header") == "off"
    invalid("add_missing_from_header", "auto")
    invalid("add_missing_date_header", "x")


def test_undisclosed_recipients() -> None:
    assert value("undisclosed_recipients", "", "set_to_header") == "undisclosed_recipients"
    assert value("undisclosed_recipients", "on", "set_to_header") == "undisclosed_recipients"
    assert value("undisclosed_recipients", "off", "set_to_header") == "off"
    invalid("undisclosed_recipients", "x")


def test_auto_from_and_maildomain() -> None:
    acc = only("auto_from on\nmaildomain example.org\n")
    assert (acc.auto_from, acc.maildomain) == (True, "example.org")


@pytest.mark.parametrize(
    ("command", "field"), [("tls_nocertcheck", "tls_certcheck"), ("tls_nostarttls", "tls_starttls")]
)
def test_no_argument_commands(command: str, field: str) -> None:
    assert value(command, "", field) is False
    for arg in ("on", "off", "x"):
        e = error(f"{command} {arg}\n")
        assert e.message == f"line 1: command {command} does not take an argument"
        assert e.exitcode == sysexits.EX_CONFIG


@pytest.mark.parametrize("arg", ["", "on", "off", "anything at all"])
def test_tls_force_sslv3_is_ignored(arg: str) -> None:
    acc = only(f"tls on\ntls_force_sslv3 {arg}\n")
    assert acc.mask == {"tls"}
    assert acc.settings() == {**Account().settings(), "tls": True}


# --------------------------------------------------------------------------
# error messages


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bogus\n", "line 1: unknown command bogus"),
        ("Host h\n", "line 1: unknown command Host"),  # commands are case-sensitive
        ("host=h\n", "line 1: unknown command host=h"),
        ("account a\nport\n", "line 2: command port needs an argument"),
        ("account a\n\nhost\n", "line 3: command host needs an argument"),
        ("port 99999\n", "line 1: invalid argument 99999 for command port"),
        ('port "1 2"\n', "line 1: invalid argument 1 2 for command port"),
        ("defaults x\n", "line 1: command defaults does not take an argument"),
        ("eval\n", "line 1: command eval needs an argument"),
    ],
)
def test_error_messages(text: str, message: str) -> None:
    e = error(text, evaluate=lambda cmd: "")
    assert e.message == message
    assert str(e) == message
    assert e.exitcode == sysexits.EX_CONFIG


# --------------------------------------------------------------------------
# eval


class FakeEval:
    def __init__(self, outputs: dict[str, str]) -> None:
        self.outputs = outputs
        self.calls: list[str] = []

    def __call__(self, command: str) -> str:
        self.calls.append(command)
        out = self.outputs[command]
        if isinstance(out, Exception):
            raise out
        return out


def test_eval_replaces_the_line() -> None:
    ev = FakeEval({"echo host h": "host h", "get port": "  port\t2525  "})
    acc = only('account a\neval echo host h\neval "get port"\n', ev)
    assert (acc.host, acc.port) == ("h", 2525)
    assert ev.calls == ["echo host h", "get port"]


def test_eval_output_comment_or_blank_is_skipped() -> None:
    ev = FakeEval({"c": "# host x", "b": "", "w": " \t"})
    assert parse("eval c\neval b\neval w\n", ev).accounts == []


def test_eval_before_account_creates_implicit_default() -> None:
    acc = only("eval x\n", FakeEval({"x": "host h"}))
    assert (acc.id, acc.host) == ("default", "h")


def test_eval_can_produce_account_and_defaults() -> None:
    ev = FakeEval({"a": "account a", "d": "defaults", "p": "port 26"})
    result = parse("eval d\neval p\neval a\n", ev)
    assert [(x.id, x.port) for x in result.accounts] == [("a", 26)]


def test_eval_password_is_not_a_stored_secret() -> None:
    result = parse("account a\neval x\n", FakeEval({"x": "password s3cret"}))
    assert result.accounts[0].password == "s3cret"
    assert result.contains_secrets is False


def test_plain_password_is_a_secret() -> None:
    assert parse("account a\npassword s3cret\n").contains_secrets is True
    assert parse('account a\npassword ""\n').contains_secrets is True
    assert parse("account a\npasswordeval pass show x\n").contains_secrets is False


def test_eval_error_is_an_io_error() -> None:
    ev = FakeEval({"false": EvalError("cannot read output of 'false'")})
    e = error("account a\neval false\n", ev)
    assert e.message == "cannot read output of 'false'"
    assert e.exitcode == sysexits.EX_IOERR


def test_eval_output_errors_carry_the_eval_line_number() -> None:
    ev = FakeEval({"x": "port 0", "y": "bogus"})
    assert error("\n\neval x\n", ev).message == "line 3: invalid argument 0 for command port"
    assert error("eval y\n", ev).message == "line 1: unknown command bogus"


def test_eval_output_cannot_eval_again() -> None:
    e = error("eval x\n", FakeEval({"x": "eval y"}))
    assert e.message == "line 1: unknown command eval"


def test_eval_without_evaluator_is_refused() -> None:
    e = error("eval echo host h\n")
    assert e.message == "line 1: eval is not allowed here"


@pytest.mark.parametrize("line", ["eval\n", 'eval ""\n', "eval   \t\n"])
def test_eval_needs_an_argument(line: str) -> None:
    ev = FakeEval({})
    assert error(line, ev).message == "line 1: command eval needs an argument"
    assert ev.calls == []


def test_parsed_file_find() -> None:
    result = parse("account a\naccount b\n")
    assert result.find("b") is result.accounts[1]
    assert result.find("c") is None
