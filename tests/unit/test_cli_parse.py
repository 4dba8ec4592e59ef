"""msmtp's command line (msmtp_twisted.cli.parse_command_line and main's usage errors),
following msmtp_cmdline() in msmtp 1.8.23."""

from __future__ import annotations

import io

import pytest

from msmtp_twisted import cli, sysexits
from msmtp_twisted.cli import UsageError, parse_command_line
from msmtp_twisted.modes.invocation import CommandLine

SHA1 = ":".join(f"{i:02x}" for i in range(20))


def parse(*args: str, posix: bool = False) -> CommandLine:
    return parse_command_line(list(args), posixly_correct=posix)


def usage(*args: str) -> UsageError:
    with pytest.raises(UsageError) as e:
        parse(*args)
    assert str(e.value) == e.value.message
    return e.value


def setting(field: str, *args: str):
    acc = parse(*args).account
    assert field in acc.mask
    return getattr(acc, field)


# --------------------------------------------------------------------------
# defaults, operands, permutation


def test_defaults() -> None:
    conf = parse()
    assert conf.sendmail is True
    assert (conf.pretend, conf.debug, conf.print_conf, conf.read_recipients) == (
        False, False, False, False
    )
    assert (conf.print_version, conf.print_help, conf.serverinfo) == (False, False, False)
    assert (conf.configure, conf.rmqs, conf.account_id, conf.user_conffile) == (
        None, None, None, None
    )
    assert conf.recipients_args == []
    assert conf.account.mask == set()
    assert conf.host_given is False


def test_permutation_recipient_before_option() -> None:
    conf = parse("a@b", "-t", "c@d")
    assert conf.read_recipients is True
    assert conf.recipients_args == ["a@b", "c@d"]


def test_posixly_correct_stops_at_first_recipient() -> None:
    conf = parse("a@b", "-t", posix=True)
    assert conf.read_recipients is False
    assert conf.recipients_args == ["a@b", "-t"]


def test_double_dash_ends_options() -> None:
    conf = parse("-P", "--", "-t", "--pretend")
    assert (conf.pretend, conf.read_recipients) == (True, False)
    assert conf.recipients_args == ["-t", "--pretend"]


# --------------------------------------------------------------------------
# short options and sendmail compatibility


def test_cluster_tpi() -> None:
    conf = parse("-tPi", "x@y")
    assert (conf.read_recipients, conf.pretend, conf.print_conf) == (True, True, True)
    assert conf.recipients_args == ["x@y"]


@pytest.mark.parametrize("args", [["-Fname"], ["-F", "name"], ["-tFname"]])
def test_full_name(args: list[str]) -> None:
    conf = parse(*args)
    assert conf.account.from_full_name == "name"
    assert conf.recipients_args == []


def test_full_name_takes_the_next_word_even_if_it_looks_like_an_option() -> None:
    conf = parse("-F", "-t")
    assert conf.account.from_full_name == "-t"
    assert conf.read_recipients is False


@pytest.mark.parametrize(
    "args",
    [["-oi"], ["-o", "i"], ["-i"], ["-oem"], ["-m"], ["-n"], ["-G"], ["-Ac"], ["-B8BITMIME"],
     ["-h", "17"], ["-L", "tag"], ["-O", "opt=v"], ["-itm"]],
)
def test_ignored_sendmail_options(args: list[str]) -> None:
    conf = parse(*args, "x@y")
    assert conf.recipients_args == ["x@y"]
    assert conf.account.mask == set()
    assert conf.sendmail is True


def test_ignored_option_with_argument_swallows_next_word() -> None:
    assert parse("-o", "x@y").recipients_args == []


@pytest.mark.parametrize("args", [["-bm"], ["-b", "m"]])
def test_bm_is_fine(args: list[str]) -> None:
    assert parse(*args).sendmail is True


@pytest.mark.parametrize(("args", "mode"), [(["-bp"], "p"), (["-b", "s"], "s"),
                                            (["-bmm"], "mm"), (["-b", ""], "")])
def test_other_b_modes_are_unsupported(args: list[str], mode: str) -> None:
    e = usage(*args)
    assert e.message == f"unsupported operation mode b{mode}"
    assert e.from_getopt is False


def test_debug_levels() -> None:
    conf = parse("-d")
    assert (conf.debug, conf.print_conf, conf.print_version) == (True, True, False)
    conf = parse("-d0.1")
    assert (conf.debug, conf.print_conf, conf.print_version) == (True, True, True)
    conf = parse("--debug=0.1")
    assert conf.print_version is True
    conf = parse("-d7")
    assert (conf.debug, conf.print_version) == (True, False)
    conf = parse("-d", "0.1")  # the optional argument must be attached
    assert (conf.print_version, conf.recipients_args) == (False, ["0.1"])
    conf = parse("-v")
    assert (conf.debug, conf.print_conf) == (True, True)


def test_debug_level_ends_the_cluster() -> None:
    conf = parse("-d0.1t")
    assert (conf.print_version, conf.read_recipients) == (False, False)


def test_config_file_and_account() -> None:
    conf = parse("-C", "rc", "-a", "acc")
    assert (conf.user_conffile, conf.account_id) == ("rc", "acc")
    conf = parse("--file=rc2", "--account", "b", "-Crc3")
    assert (conf.user_conffile, conf.account_id) == ("rc3", "b")


# --------------------------------------------------------------------------
# modes


def test_version_help_configure_leave_sendmail_mode() -> None:
    assert parse("--version").print_version is True
    assert parse("--version").sendmail is False
    assert parse("--help").print_help is True
    assert parse("--help").sendmail is False
    conf = parse("--configure", "a@b")
    assert (conf.configure, conf.sendmail) == ("a@b", False)


def test_serverinfo_and_rmqs() -> None:
    conf = parse("-S")
    assert (conf.serverinfo, conf.sendmail) == (True, False)
    conf = parse("--serverinfo")
    assert (conf.serverinfo, conf.sendmail) == (True, False)
    conf = parse("--rmqs=@example.org")
    assert (conf.rmqs, conf.sendmail, conf.serverinfo) == ("@example.org", False, False)
    assert parse("--rmqs", "").rmqs == ""


@pytest.mark.parametrize(
    "args", [["-S", "--rmqs=x"], ["--rmqs", "x", "-S"], ["--rmqs=", "--serverinfo"]]
)
def test_serverinfo_rmqs_conflict(args: list[str]) -> None:
    e = usage(*args)
    assert e.message == "cannot use both --serverinfo and --rmqs"
    assert e.from_getopt is False


def test_read_envelope_from() -> None:
    conf = parse("--read-envelope-from")
    assert conf.read_envelope_from is True
    assert conf.account.from_addr is None
    assert "from_addr" in conf.account.mask


@pytest.mark.parametrize(
    "args",
    [
        ["-f", "a@b", "--read-envelope-from"],
        ["--read-envelope-from", "-f", "a@b"],
        ["--read-envelope-from", "--from=a@b"],
        ["-f", "", "--read-envelope-from"],
        ["-f", "<>", "--read-e"],
    ],
)
def test_from_and_read_envelope_from_conflict(args: list[str]) -> None:
    assert usage(*args).message == "cannot use both --from and --read-envelope-from"


@pytest.mark.parametrize(
    "args",
    [
        ["--host=h", "-a", "x"],
        ["-a", "x", "--host", "h"],
        ["--host=", "-a", "x"],  # an empty host is still a host
        ["-a", "", "--host=h"],
        ["--account=x", "--ho=h"],
    ],
)
def test_host_and_account_conflict(args: list[str]) -> None:
    e = usage(*args)
    assert e.message == "cannot use both --host and --account"
    assert e.from_getopt is False


def test_host() -> None:
    conf = parse("--host=smtp.example")
    assert conf.account.host == "smtp.example"
    assert conf.host_given is True
    assert parse("--host=").account.host == ""


# --------------------------------------------------------------------------
# -f


def test_from() -> None:
    assert setting("from_addr", "-f", "a@b") == "a@b"
    assert setting("from_addr", "-fa@b") == "a@b"
    assert setting("from_addr", "--from=a@b") == "a@b"
    assert setting("from_addr", "--fr", "a@b") == "a@b"
    assert setting("from_addr", "-f", "") == ""


def test_from_null_sender() -> None:
    assert setting("from_addr", "-f", "<>") == ""
    assert setting("from_addr", "--from=<>") == ""
    assert setting("from_addr", "-f", "<x>") == "<x>"


# --------------------------------------------------------------------------
# account settings: accepted values


@pytest.mark.parametrize(
    ("args", "field", "expected"),
    [
        (["--port=25"], "port", 25),
        (["--port", "0x19"], "port", 25),
        (["--port=031"], "port", 25),
        (["--timeout=off"], "timeout", 0),
        (["--timeout=10"], "timeout", 10),
        (["--connect-timeout=10"], "timeout", 10),
        (["--protocol=lmtp"], "protocol", "lmtp"),
        (["--domain="], "domain", ""),
        (["--domain=d"], "domain", "d"),
        (["--auth"], "auth_mech", ""),
        (["--auth="], "auth_mech", ""),  # "choose a method"
        (["--auth=on"], "auth_mech", ""),
        (["--auth=off"], "auth_mech", None),
        (["--auth=plain"], "auth_mech", "PLAIN"),
        (["--auth=scram-sha-256"], "auth_mech", "SCRAM-SHA-256"),
        (["--user="], "username", None),
        (["--user=u"], "username", "u"),
        (["--tls"], "tls", True),
        (["--tls=on"], "tls", True),
        (["--tls=off"], "tls", False),
        (["--tls-starttls=off"], "tls_starttls", False),
        (["--tls-starttls"], "tls_starttls", True),
        (["--tls-certcheck=off"], "tls_certcheck", False),
        (["--tls-certcheck"], "tls_certcheck", True),
        (["--tls-trust-file="], "tls_trust_file", None),
        (["--tls-crl-file=/c"], "tls_crl_file", "/c"),
        (["--tls-fingerprint=" + SHA1], "tls_fingerprint", bytes(range(20))),
        (["--tls-fingerprint="], "tls_fingerprint", None),
        (["--tls-key-file=k"], "tls_key_file", "k"),
        (["--tls-cert-file="], "tls_cert_file", None),
        (["--tls-min-dh-prime-bits="], "tls_min_dh_prime_bits", -1),
        (["--tls-min-dh-prime-bits=2048"], "tls_min_dh_prime_bits", 2048),
        (["--tls-priorities="], "tls_priorities", None),
        (["--tls-host-override=h"], "tls_host_override", "h"),
        (["-N", "never"], "dsn_notify", "NEVER"),
        (["-Nfailure,delay"], "dsn_notify", "FAILURE,DELAY"),
        (["--dsn-notify=off"], "dsn_notify", None),
        (["-R", "hdrs"], "dsn_return", "HDRS"),
        (["-R", "headers"], "dsn_return", "HDRS"),
        (["-Rfull"], "dsn_return", "FULL"),
        (["--dsn-return=off"], "dsn_return", None),
        (["-X", ""], "logfile", None),
        (["-X", "-"], "logfile", "-"),
        (["--logfile-time-format="], "logfile_time_format", None),
        (["--syslog"], "syslog", "LOG_USER"),
        (["--syslog=on"], "syslog", "LOG_USER"),
        (["--syslog=off"], "syslog", None),
        (["--syslog=LOG_MAIL"], "syslog", "LOG_MAIL"),
        (["--aliases="], "aliases", None),
        (["--proxy-host=p"], "proxy_host", "p"),
        (["--proxy-port="], "proxy_port", 0),
        (["--proxy-port=1080"], "proxy_port", 1080),
        (["--set-from-header"], "set_from_header", "auto"),
        (["--set-from-header=on"], "set_from_header", "on"),
        (["--set-from-header=off"], "set_from_header", "off"),
        (["--set-date-header"], "set_date_header", "auto"),
        (["--set-date-header=off"], "set_date_header", "off"),
        (["--set-msgid-header=off"], "set_msgid_header", "off"),
        (["--remove-bcc-headers=off"], "remove_bcc_headers", False),
        (["--remove-bcc-headers"], "remove_bcc_headers", True),
        (["--source-ip="], "source_ip", None),
        (["--socket=/s"], "socket", "/s"),
        (["--auto-from"], "auto_from", True),
        (["--auto-from=off"], "auto_from", False),
        (["--maildomain=x"], "maildomain", "x"),
        (["--maildomain="], "maildomain", None),  # unsets, unlike the msmtprc command
        (["--add-missing-from-header"], "set_from_header", "auto"),
        (["--add-missing-from-header=off"], "set_from_header", "off"),
        (["--add-missing-date-header=off"], "set_date_header", "off"),
        (["--undisclosed-recipients"], "set_to_header", "undisclosed_recipients"),
        (["--undisclosed-recipients=off"], "set_to_header", "off"),
        (["--keepbcc"], "remove_bcc_headers", False),
        (["--keepbcc=off"], "remove_bcc_headers", True),
        (["--tls=off", "--tls"], "tls", True),  # the last one wins
    ],
)
def test_setting_values(args: list[str], field: str, expected) -> None:
    assert setting(field, *args) == expected


def test_file_options_expand_tilde(monkeypatch) -> None:
    monkeypatch.setenv("HOME", "/home/t")
    assert setting("tls_trust_file", "--tls-trust-file=~/ca") == "/home/t/ca"
    assert setting("logfile", "-X", "~/log") == "/home/t/log"
    assert setting("aliases", "--aliases=~/a") == "/home/t/a"


@pytest.mark.parametrize("arg", ["", "on", "off", "whatever"])
def test_tls_force_sslv3_is_ignored(arg: str) -> None:
    assert parse(f"--tls-force-sslv3={arg}").account.mask == set()
    assert parse("--tls-force-sslv3").account.mask == set()


def test_options_set_only_their_fields() -> None:
    acc = parse("--port=25", "--tls", "-f", "a@b").account
    assert acc.mask == {"port", "tls", "from_addr"}


# --------------------------------------------------------------------------
# invalid arguments


@pytest.mark.parametrize(
    ("args", "shown", "option"),
    [
        (["--port=0"], "0", "port"),
        (["--port", "65536"], "65536", "port"),
        (["--port="], "", "port"),
        (["--port=25x"], "25x", "port"),
        (["--timeout=0"], "0", "timeout"),
        (["--timeout="], "", "timeout"),
        (["--connect-timeout=x"], "x", "timeout"),
        (["--protocol=esmtp"], "esmtp", "protocol"),
        (["--protocol="], "", "protocol"),
        (["--auth=foo"], "foo", "auth"),
        (["--auth=PLAIN"], "PLAIN", "auth"),
        (["--tls="], "", "tls"),
        (["--tls=yes"], "yes", "tls"),
        (["--tls-starttls="], "", "tls-starttls"),
        (["--tls-starttls=no"], "no", "tls-starttls"),
        (["--tls-certcheck=x"], "x", "tls-certcheck"),
        (["--tls-certcheck="], "", "tls-certcheck"),
        (["--tls-fingerprint=00:11"], "00:11", "tls-fingerprint"),
        (["--tls-min-dh-prime-bits=0"], "0", "tls-min-dh-prime-bits"),
        (["-N", "x"], "x", "dsn-notify"),
        (["-N", ""], "", "dsn-notify"),
        (["--dsn-notify=FAILURE"], "FAILURE", "dsn-notify"),
        (["-R", "x"], "x", "dsn-return"),
        (["-R", ""], "", "dsn-return"),
        (["--dsn-return=HDRS"], "HDRS", "dsn-return"),
        (["--syslog="], "", "syslog"),
        (["--syslog=LOG_FOO"], "LOG_FOO", "syslog"),
        (["--proxy-port=0"], "0", "proxy-port"),
        (["--proxy-port=70000"], "70000", "proxy-port"),
        (["--set-from-header="], "", "set-from-header"),
        (["--set-from-header=yes"], "yes", "set-from-header"),
        (["--set-date-header=on"], "on", "set-date-header"),
        (["--set-date-header="], "", "set-date-header"),
        (["--set-msgid-header=on"], "on", "set-msgid-header"),
        (["--remove-bcc-headers="], "", "remove-bcc-headers"),
        (["--remove-bcc-headers=x"], "x", "remove-bcc-headers"),
        (["--auto-from="], "", "auto-from"),
        (["--auto-from=x"], "x", "auto-from"),
        (["--add-missing-from-header="], "", "add-missing-from-header"),
        (["--add-missing-date-header=auto"], "auto", "add-missing-date-header"),
        (["--undisclosed-recipients="], "", "undisclosed-recipients"),
        (["--keepbcc=x"], "x", "keepbcc"),
        (["--keepbcc="], "", "keepbcc"),
    ],
)
def test_invalid_arguments(args: list[str], shown: str, option: str) -> None:
    e = usage(*args)
    assert e.message == f"invalid argument {shown} for --{option}"
    assert e.from_getopt is False


def test_abbreviated_option_error_names_the_full_option() -> None:
    assert usage("--prot=x").message == "invalid argument x for --protocol"


def test_required_argument_takes_the_next_word() -> None:
    # as msmtp does: "--port a@b" makes a@b the port argument
    assert usage("--port", "a@b").message == "invalid argument a@b for --port"


def test_first_error_wins() -> None:
    assert usage("--port=0", "--tls=x").message == "invalid argument 0 for --port"
    assert usage("--tls=x", "--bogus").message == "invalid argument x for --tls"
    assert usage("--bogus", "--tls=x").message == "unrecognized option '--bogus'"


# --------------------------------------------------------------------------
# getopt errors through the real option table


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "unrecognized option '--bogus'"),
        (["--bogus=1"], "unrecognized option '--bogus=1'"),
        (["-y"], "invalid option -- 'y'"),
        (["-tPy"], "invalid option -- 'y'"),
        (["-C"], "option requires an argument -- 'C'"),
        (["-b"], "option requires an argument -- 'b'"),
        (["x@y", "-f"], "option requires an argument -- 'f'"),
        (["--port"], "option '--port' requires an argument"),
        (["--por"], "option '--port' requires an argument"),
        (["--version=1"], "option '--version' doesn't allow an argument"),
        (["--pretend="], "option '--pretend' doesn't allow an argument"),
        (["--read-r=x"], "option '--read-recipients' doesn't allow an argument"),
        (
            ["--tls-c"],
            "option '--tls-c' is ambiguous; possibilities: "
            "'--tls-crl-file' '--tls-cert-file' '--tls-certcheck'",
        ),
        (
            ["--tls-c=on"],
            "option '--tls-c=on' is ambiguous; possibilities: "
            "'--tls-crl-file' '--tls-cert-file' '--tls-certcheck'",
        ),
        (
            ["--con"],
            "option '--con' is ambiguous; possibilities: '--configure' '--connect-timeout'",
        ),
        (
            ["--d=0.1"],
            "option '--d=0.1' is ambiguous; possibilities: "
            "'--debug' '--dsn-notify' '--dsn-return' '--domain'",
        ),
        (
            ["--read"],
            "option '--read' is ambiguous; possibilities: "
            "'--read-recipients' '--read-envelope-from'",
        ),
        (
            ["--t"],
            "option '--t' is ambiguous; possibilities: '--timeout' '--tls' '--tls-starttls' "
            "'--tls-trust-file' '--tls-crl-file' '--tls-fingerprint' '--tls-key-file' "
            "'--tls-cert-file' '--tls-certcheck' '--tls-force-sslv3' '--tls-min-dh-prime-bits' "
            "'--tls-priorities' '--tls-host-override'",
        ),
    ],
)
def test_getopt_errors(args: list[str], message: str) -> None:
    e = usage(*args)
    assert e.message == message
    assert e.from_getopt is True


@pytest.mark.parametrize(
    ("word", "check"),
    [
        ("--pre", lambda c: c.pretend),
        ("--ver", lambda c: c.print_version),
        ("--he", lambda c: c.print_help),
        ("--read-r", lambda c: c.read_recipients),
        ("--read-e", lambda c: c.read_envelope_from),
        ("--se=x", None),
        ("--serv", lambda c: c.serverinfo),
        ("--tls", lambda c: c.account.tls),  # exact match beats tls-starttls etc.
        ("--logfile=l", lambda c: c.account.logfile == "l"),  # vs logfile-time-format
        ("--from=a", lambda c: c.account.from_addr == "a"),
        ("--debug", lambda c: c.debug),
    ],
)
def test_abbreviations_and_exact_matches(word: str, check) -> None:
    if check is None:
        assert usage(word).message.startswith(f"option '{word}' is ambiguous")
    else:
        assert check(parse(word))


def test_empty_long_name_is_ambiguous() -> None:
    names = " ".join(f"'--{o.name}'" for o in cli.LONG_OPTIONS)
    assert usage("--=x").message == f"option '--=x' is ambiguous; possibilities: {names}"


# --------------------------------------------------------------------------
# main(): how usage errors are printed


def run_main(argv: list[str]) -> tuple[int, bytes, bytes]:
    out, err = io.BytesIO(), io.BytesIO()
    code = cli.main(argv, stdin=io.BytesIO(b""), stdout=out, stderr=err, env={})
    return code, out.getvalue(), err.getvalue()


def test_main_getopt_error_uses_argv0_as_given() -> None:
    code, out, err = run_main(["/usr/bin/msmtp", "--bogus"])
    assert (code, out) == (sysexits.EX_USAGE, b"")
    assert err == b"/usr/bin/msmtp: unrecognized option '--bogus'\n"


def test_main_msmtp_error_uses_basename() -> None:
    code, out, err = run_main(["/usr/bin/msmtp", "--port=0"])
    assert (code, out) == (sysexits.EX_USAGE, b"")
    assert err == b"msmtp: invalid argument 0 for --port\n"


def test_main_too_many_arguments_for_serverinfo() -> None:
    code, out, err = run_main(["msmtp", "-S", "x@y"])
    assert code == sysexits.EX_USAGE
    assert err == b"msmtp: too many arguments\n"


def test_main_version_exits_zero() -> None:
    code, out, err = run_main(["msmtp", "--version"])
    assert code == sysexits.EX_OK
    assert out
    assert err == b""
