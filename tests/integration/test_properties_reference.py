"""Property-based comparisons with the real msmtp 1.8.23 (/usr/bin/msmtp, or
$MSMTP_REFERENCE): the same configuration files are refused with the same message, and
``msmtp -P ...`` prints the same for the same command lines.  The strategies and the
properties of our code alone are in tests/unit/test_properties.py."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from msmtp_twisted import cli
from msmtp_twisted.config.parser import ConfigError, iter_lines, parse_config, split_line
from tests.conftest import require
from tests.servers.msmtp import etc_lock
from tests.unit.test_properties import (  # noqa: F401  (sandbox: a fixture)
    NEW_COMMANDS,
    SAFE_COMMANDS,
    UNSAFE_COMMANDS,
    argument_list,
    config_file,
    config_option,
    run_main,
    sandbox,
)

pytestmark = pytest.mark.reference  # also: the module-scoped fixture "reference"


#: the reference msmtp 1.8.23 (not our console script, which may be on PATH too)
MSMTP = os.environ.get("MSMTP_REFERENCE", "/usr/bin/msmtp")


def _reference_version() -> str:
    try:
        proc = subprocess.run([MSMTP, "--version"], capture_output=True, timeout=30)
    except OSError:
        return ""
    return proc.stdout.decode(errors="replace").partition("\n")[0]


@contextlib.contextmanager
def without_system_rc():
    """No /etc/msmtprc while we hold the lock (test_differential_config.py writes one)."""
    with etc_lock():
        if os.path.exists("/etc/msmtprc"):
            pytest.skip("an /etc/msmtprc exists on this machine; msmtp would read it")
        yield


@pytest.fixture(scope="module")
def reference() -> str:
    # skips on a developer box, fails under CI=true
    require(_reference_version().startswith("msmtp version 1.8.23"),
            f"msmtp 1.8.23 at {MSMTP} (apt-get install msmtp)")
    return MSMTP


def _c_dsn_notify_ok(arg: str) -> bool:
    """msmtp 1.8.23's check_dsn_notify_arg (plus "off")."""
    if arg in ("off", "never"):
        return True
    count = length = 0
    for word in ("failure", "delay", "success"):
        if word in arg:
            count += 1
            length += len(word)
    if count == 0 or len(arg) != length + count - 1:
        return False
    if count == 2 and "," not in arg:
        return False
    if count == 3 and arg.count(",") < 2:
        return False
    return True


def _known_config_difference(data: bytes) -> bool:
    """Lines where we differ from 1.8.23 on purpose (docs/differences.md)."""
    try:
        lines = list(iter_lines(data))
    except ConfigError:
        return False
    for line in lines:
        parts = split_line(line)
        if parts is None:
            continue
        cmd, arg = parts
        if cmd in NEW_COMMANDS or cmd in UNSAFE_COMMANDS:
            return True
        if cmd == "auth" and arg.endswith("-plus"):
            return True
        if cmd == "dsn_notify" and _c_dsn_notify_ok(arg):
            return True  # we refuse e.g. "failuredelay," (docs/differences.md)
    return False


def _sanitize(text: str) -> str:
    """msmtp's sanitize_string in the C locale: control characters become '?'."""
    return "".join("?" if ord(c) < 32 or ord(c) == 127 else c for c in text)


@pytest.fixture(scope="module")
def rc_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("rc")


@settings(max_examples=200, deadline=None)
@given(config_file(commands=tuple(SAFE_COMMANDS + ["account", "defaults"])))
def test_config_errors_match_msmtp(reference, rc_dir, data: bytes) -> None:
    assume(b"eval" not in data)
    assume(not _known_config_difference(data))
    directory = rc_dir
    path = directory / "rc"
    path.write_bytes(data)
    path.chmod(0o600)
    with without_system_rc():
        proc = subprocess.run(
            [reference, "-C", str(path), "-P", "--", "x@y"],
            capture_output=True, env={"HOME": str(directory), "LC_ALL": "C"},
            stdin=subprocess.DEVNULL, timeout=30,
        )
    prefix = f"msmtp: {path}: ".encode()
    c_error = None
    if proc.stderr.startswith(prefix) and proc.returncode in (74, 78):
        c_error = proc.stderr[len(prefix):].rstrip(b"\n").decode("utf-8", "surrogateescape")
    try:
        parse_config(data, str(path))
        ours = None
    except ConfigError as e:
        ours = _sanitize(e.message)
        assert e.exitcode == proc.returncode
    assert ours == c_error, proc.stderr


# --------------------------------------------------------------------------
# (c') msmtp -P ... prints exactly what msmtp 1.8.23 prints


def _known_cli_difference(args: list[str]) -> bool:
    """Options whose output differs on purpose (docs/differences.md)."""
    options = [a for a in args[: args.index("--")] if a.startswith("--")] if "--" in args else [
        a for a in args if a.startswith("--")]
    if any(len(a.split("=")[0]) > 6 and "--set-to-header".startswith(a.split("=")[0])
           for a in options):
        return True  # 1.8.23 does not know --set-to-header (newer than it)
    try:
        conf = cli.parse_command_line(args)
    except cli.UsageError as e:
        if "--set-to-header" in e.message:
            return True  # newer than 1.8.23 (docs/differences.md)
        prefix, suffix = "invalid argument ", " for --dsn-notify"
        if e.message.startswith(prefix) and e.message.endswith(suffix):
            # we refuse e.g. "failuredelay," (docs/differences.md)
            return _c_dsn_notify_ok(e.message[len(prefix) : -len(suffix)])
        return False
    acc = conf.account
    return bool(
        conf.print_version
        or conf.print_help
        or {"from_full_name", "set_to_header", "set_msgid_header"} & acc.mask
        or (acc.auth_mech or "").endswith("-PLUS")
    )


def test_pretend_matches_msmtp(reference, sandbox) -> None:  # noqa: F811
    env = {"HOME": sandbox["home"], "LC_ALL": "C", "PATH": "/usr/bin:/bin"}

    @settings(max_examples=200, deadline=None)
    @given(
        st.sampled_from([["-P"], ["-P", "-t"], ["-P", "--read-envelope-from"]]),
        # not "lmtp": an LMTP socket account needs no port here (docs/differences.md)
        config_option(sandbox, ("good", "tls", "broken", "aliases", "empty")),
        argument_list,
        st.sampled_from([b"To: a@b, root\nFrom: F <f@x>\n\nbody", b"From: \n\n", b"",
                         b"Resent-To: r@x\nTo: t@x\n\n"]),
    )
    def check(mode: list[str], conf: list[str], args: list[str], stdin: bytes) -> None:
        argv = [*mode, *conf, *args]
        assume(not _known_cli_difference(argv))
        with without_system_rc():  # both read /etc/msmtprc
            proc = subprocess.run(
                ["msmtp", *argv], executable=reference, input=stdin, capture_output=True,
                env=env, timeout=30,
            )
            ours = run_main(["msmtp", *argv], stdin, env)
        assert ours == (proc.returncode, proc.stdout, proc.stderr)

    check()
