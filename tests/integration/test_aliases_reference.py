"""The aliases file (msmtp_twisted.message.aliases) against the real msmtp 1.8.23 on the
same files and recipients: the recipients msmtp sends (``RCPT TO`` at a recording server
from tests/servers/) or its error (``msmtp: FILE: message``, exit 78).

msmtp 1.8.23 has two bugs we deliberately do not copy (docs/differences.md,
msmtp-behaviour.md): a multi-address alias comes out in reverse order, and the recipient
after a replaced one is never looked up.  So for a single recipient our expected value is
msmtp's list reversed; test_the_two_bugs_we_do_not_copy records both bugs as msmtp shows
them next to our values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msmtp_twisted.message.aliases import (
    AliasesError,
    expand_aliases,
    is_local,
    parse_aliases,
)
from tests.conftest import ours_command, ours_env
from tests.servers.msmtp import run_msmtp, write_config
from tests.servers.recording import RecordingServer
from tests.unit.test_aliases import ALIAS_FILES, chain

pytestmark = pytest.mark.reference

Outcome = tuple[str, "list[str] | str"]


@pytest.fixture(scope="module")
def c_aliases(real_msmtp: str, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[Callable[[bytes, Sequence[str]], Outcome]]:
    """``c_aliases(file content, recipients)``: ("ok", recipients msmtp sent) or
    ("error", message)."""
    directory = tmp_path_factory.mktemp("aliases")
    path = directory / "aliases"
    with RecordingServer() as server:
        config = write_config(directory, server, aliases=str(path))

        def run(data: bytes, recipients: Sequence[str]) -> Outcome:
            path.write_bytes(data)
            before = len(server.sessions)
            res = run_msmtp([real_msmtp], config, ["--", *recipients], timeout=30)
            server.wait_idle()
            prefix = f"msmtp: {path}: "
            if res.returncode == 78 and res.stderr.startswith(prefix):
                return ("error", res.stderr[len(prefix):].rstrip("\n"))
            assert res.returncode == 0, res
            return ("ok", [c[len("RCPT TO:<"):-1] for c in server.sessions[before].commands
                           if c.startswith("RCPT TO:<")])

        yield run


def _sanitize(text: str) -> str:
    """What msmtp (and our msmtp, see test_aliases_cli_sanitizes) prints of an error
    message: control characters become '?' (sanitize_string in the C locale)."""
    return "".join("?" if ord(c) < 32 or ord(c) == 127 else c for c in text)


def ours(data: bytes, rcpt: str) -> Outcome:
    """Our result as msmtp prints it."""
    try:
        if not is_local(rcpt):
            return ("ok", [rcpt])  # the file is not even read
        return ("ok", expand_aliases([rcpt], parse_aliases(data)))
    except AliasesError as e:
        return ("error", _sanitize(str(e)))


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ALIAS_FILES, st.sampled_from(["a", "b", "c", "root", "x@y"]))
def test_same_as_msmtp_aliases(c_aliases, data: bytes, rcpt: str) -> None:
    kind, expected = c_aliases(data, [rcpt])
    got_kind, got = ours(data, rcpt)
    assert got_kind == kind
    if kind == "error":
        assert got == expected
    else:
        assert got == list(reversed(expected))  # 1.8.23 reverses, we keep the order


def test_the_observation_works(c_aliases) -> None:
    assert c_aliases(b"a: x@1, y@2\n", ["a"]) == ("ok", ["y@2", "x@1"])
    assert c_aliases(b"a b\n", ["a"]) == ("error", "line 1: single ':' delimiter expected")
    assert c_aliases(b"@\t@:\n", ["a"]) == ("error", "line 1: invalid alias '@?@'")


def test_aliases_cli_sanitizes(tmp_path) -> None:
    """Our msmtp prints an aliases error as msmtp does, control characters as '?'."""
    aliases = tmp_path / "aliases"
    aliases.write_bytes(b"@\t@:\n")
    config = write_config(tmp_path, ("127.0.0.1", 9), aliases=str(aliases))
    res = run_msmtp(ours_command(), config, ["a"], env=ours_env({}))
    assert (res.returncode, res.stderr) == (
        78, f"msmtp: {aliases}: line 1: invalid alias '@?@'\n")


def test_the_two_bugs_we_do_not_copy(c_aliases) -> None:
    text = b"a: x@1, y@2\nb: z@3\n"
    recipients = ["a", "b", "c@d", "a"]
    # 1.8.23: each expansion reversed, and "b" (right after the replaced "a") kept as is
    assert c_aliases(text, recipients) == ("ok", ["y@2", "x@1", "b", "c@d", "y@2", "x@1"])
    assert expand_aliases(recipients, parse_aliases(text)) == [
        "x@1", "y@2", "z@3", "c@d", "x@1", "y@2"]
    # nested: the whole expansion comes out reversed
    nested = b"a: b, z@3\nb: x@1, y@2\n"
    assert c_aliases(nested, ["a"]) == ("ok", ["z@3", "y@2", "x@1"])
    assert expand_aliases(["a"], parse_aliases(nested)) == ["x@1", "y@2", "z@3"]


@pytest.mark.parametrize(("text", "rcpt"), [
    ("a: a\n", "a"), ("a: b\nb: a\n", "a"), ("default: y\n", "bob")])
def test_loops_as_msmtp(c_aliases, text: str, rcpt: str) -> None:
    assert c_aliases(text.encode(), [rcpt]) == ours(text.encode(), rcpt)


@pytest.mark.parametrize(("data", "rcpt"), [
    (b"a b@c\n", "a"),
    (b"a: b: c\n", "a"),
    (b"a: b@c\n\n# x\nnocolon\n", "a"),
    (b": b@c\n", "a"),
    (b"a@b: c@d\n", "a"),
    (b"a: x@y\nb: z@w\na: q@r\n", "a"),
    (b"a#: x\n", "a"),
    (b"a: " + b"x" * 506 + b"\n", "a"),  # 510 bytes: the longest line msmtp reads
    (b"a: " + b"x" * 507 + b"\n", "a"),
    (b"a: b@c\n" + b"#" * 600, "a"),
    (b"a: b@c\0, x@y\nd: e@f\n", "a"),
    (b"a: b@c,,d@e,\n", "a"),
    (b"a: b\ndefault: d@x\n", "a"),
    (chain(16, "end@x").encode(), "a0"),
    (chain(17, "end@x").encode(), "a0"),
    (chain(15, "end").encode(), "a0"),
    (chain(16, "end").encode(), "a0"),
], ids=lambda value: repr(value)[:40])
def test_unit_cases_as_msmtp(c_aliases, data: bytes, rcpt: str) -> None:
    kind, expected = c_aliases(data, [rcpt])
    assert ours(data, rcpt) == (kind, expected if kind == "error" else expected[::-1])
