"""The aliases file (msmtp_twisted.message.aliases): parsing, expanding, errors.  The
same cases against the real msmtp 1.8.23: tests/integration/test_aliases_reference.py.

Deliberate differences (docs/differences.md): multi-address aliases keep their
order (1.8.23 reverses them), every recipient is looked up (1.8.23 skips the one
after a replaced alias), and an alias may list more than 32 addresses.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msmtp_twisted.message.aliases import (
    AliasesError,
    expand_aliases,
    expand_aliases_file,
    is_local,
    parse_aliases,
)


def parse_error(data: bytes) -> str:
    with pytest.raises(AliasesError) as e:
        parse_aliases(data)
    return str(e.value)


def expand(text: str, recipients: list[str]) -> list[str]:
    return expand_aliases(recipients, parse_aliases(text.encode()))


# --------------------------------------------------------------------------
# parsing


def test_parse_simple() -> None:
    table = parse_aliases(
        b"# comment\n\nroot: admin@example.org\n"
        b"team :  a@x , b@y  # trailing comment\n"
        b"\tdefault:\tfallback@z\t\n"
    )
    assert table == {
        "root": ["admin@example.org"],
        "team": ["a@x", "b@y"],
        "default": ["fallback@z"],
    }


def test_parse_crlf_and_other_white_space() -> None:
    assert parse_aliases(b"a: b@c\r\n\x0bd\x0c:\x0be@f\r\n") == {"a": ["b@c"], "d": ["e@f"]}


def test_parse_empty_entries_are_kept() -> None:
    assert parse_aliases(b"a: b@c,,d@e,\n") == {"a": ["b@c", "", "d@e", ""]}
    assert parse_aliases(b"a:\n") == {"a": [""]}


def test_parse_text_after_nul_is_ignored() -> None:
    assert parse_aliases(b"a: b@c\0, x@y\nd: e@f\n") == {"a": ["b@c"], "d": ["e@f"]}


def test_parse_more_than_32_addresses() -> None:
    targets = [f"u{i}@x" for i in range(40)]
    assert parse_aliases(("a: " + ",".join(targets) + "\n").encode()) == {"a": targets}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"a b@c\n", "line 1: single ':' delimiter expected"),
        (b"a: b: c\n", "line 1: single ':' delimiter expected"),
        (b"a: b@c\n\n# x\nnocolon\n", "line 4: single ':' delimiter expected"),
        (b": b@c\n", "line 1: invalid alias ''"),
        (b"  : b@c\n", "line 1: invalid alias ''"),
        (b"a@b: c@d\n", "line 1: invalid alias 'a@b'"),
        (b"a: x@y\nb: z@w\na: q@r\n", "line 3: duplicate alias 'a'"),
        (b"a: x@y\n a : q@r\n", "line 2: duplicate alias 'a'"),
        (b"a#: x\n", "line 1: single ':' delimiter expected"),  # the comment hides ':'
    ],
)
def test_parse_errors(data: bytes, message: str) -> None:
    assert parse_error(data) == message


def test_line_length_limit() -> None:
    # fgets with a 512-byte buffer: 511 bytes read, newline included, is too long
    ok = b"a: " + b"x" * 506 + b"\n"
    assert len(ok) == 510
    assert parse_aliases(ok) == {"a": ["x" * 506]}
    too_long = b"a: " + b"x" * 507 + b"\n"
    assert len(too_long) == 511
    assert parse_error(too_long) == "line 1: longer than 511 characters"
    assert parse_error(b"a: b@c\n" + b"#" * 600) == "line 2: longer than 511 characters"


def test_is_local() -> None:
    assert is_local("root")
    assert not is_local("root@example.org")
    assert not is_local("")
    assert not is_local("@")


# --------------------------------------------------------------------------
# expanding


def test_non_local_recipients_are_untouched() -> None:
    assert expand("default: catchall@x\n", ["a@b", "user@example.org", ""]) == [
        "a@b", "user@example.org", ""
    ]


def test_simple_alias() -> None:
    assert expand("root: admin@x\n", ["root"]) == ["admin@x"]


def test_unknown_local_without_default_is_kept() -> None:
    assert expand("root: admin@x\n", ["bob"]) == ["bob"]


def test_default_alias() -> None:
    text = "root: admin@x\ndefault: catchall@x\n"
    assert expand(text, ["bob", "root", "c@d"]) == ["catchall@x", "admin@x", "c@d"]


def test_alias_names_are_case_sensitive() -> None:
    assert expand("root: admin@x\n", ["Root"]) == ["Root"]


def test_order_is_preserved() -> None:
    # msmtp 1.8.23 would give z@3, y@2, x@1
    assert expand("a: x@1, y@2, z@3\n", ["a"]) == ["x@1", "y@2", "z@3"]


def test_nested_order_is_preserved() -> None:
    text = "a: b, z@3\nb: x@1, y@2\n"
    assert expand(text, ["a"]) == ["x@1", "y@2", "z@3"]


def test_every_recipient_is_looked_up() -> None:
    # msmtp 1.8.23 skips "b" because it follows a replaced alias
    text = "a: x@1, y@2\nb: z@3\n"
    assert expand(text, ["a", "b", "c@d", "a"]) == ["x@1", "y@2", "z@3", "c@d", "x@1", "y@2"]


def test_recursion() -> None:
    assert expand("a: b\nb: c\nc: d@x\n", ["a"]) == ["d@x"]


def test_local_target_not_in_table_is_kept() -> None:
    assert expand("a: b, c@x\n", ["a"]) == ["b", "c@x"]


def test_local_target_goes_through_default() -> None:
    assert expand("a: b\ndefault: d@x\n", ["a"]) == ["d@x"]


def test_empty_target_is_passed_through() -> None:
    assert expand("a: b@c,,d@e\n", ["a"]) == ["b@c", "", "d@e"]


def test_duplicates_are_kept() -> None:
    assert expand("a: x@1, x@1\n", ["a", "x@1"]) == ["x@1", "x@1", "x@1"]


def chain(n: int, last: str) -> str:
    """a0: a1, a1: a2, ..., a{n-1}: a{n}, a{n}: last"""
    return "".join(f"a{i}: a{i + 1}\n" for i in range(n)) + f"a{n}: {last}\n"


def test_depth_limit() -> None:
    # expand_alias(depth) fails when depth > 16; a{n} is expanded at depth n
    assert expand(chain(16, "end@x"), ["a0"]) == ["end@x"]
    with pytest.raises(AliasesError) as e:
        expand(chain(17, "end@x"), ["a0"])
    assert str(e.value) == "Too many redirects when expanding alias a0."
    # a local target that is not an alias is looked up once more, one level deeper
    assert expand(chain(15, "end"), ["a0"]) == ["end"]
    with pytest.raises(AliasesError):
        expand(chain(16, "end"), ["a0"])


@pytest.mark.parametrize(
    ("text", "rcpt"),
    [
        ("a: a\n", "a"),
        ("a: b\nb: a\n", "a"),
        ("a: x@y, b\nb: c\nc: a\n", "a"),
        ("default: y\n", "bob"),  # y is local, not listed: default again, forever
    ],
)
def test_loops(text: str, rcpt: str) -> None:
    with pytest.raises(AliasesError) as e:
        expand(text, ["ok@x", rcpt])
    assert str(e.value) == f"Too many redirects when expanding alias {rcpt}."


# --------------------------------------------------------------------------
# reading the file


def test_file_is_not_read_without_local_recipients(tmp_path) -> None:
    missing = str(tmp_path / "missing")
    assert expand_aliases_file(missing, ["a@b", ""]) == ["a@b", ""]
    assert expand_aliases_file(missing, []) == []


def test_file_read_and_expanded(tmp_path) -> None:
    path = tmp_path / "aliases"
    path.write_bytes(b"root: admin@x\n")
    assert expand_aliases_file(str(path), ["root", "a@b"]) == ["admin@x", "a@b"]


def test_missing_file(tmp_path) -> None:
    with pytest.raises(AliasesError) as e:
        expand_aliases_file(str(tmp_path / "missing"), ["root"])
    assert str(e.value) == "No such file or directory"


def test_directory(tmp_path) -> None:
    with pytest.raises(AliasesError) as e:
        expand_aliases_file(str(tmp_path), ["root"])
    assert str(e.value) == "input error"


def test_file_parse_error(tmp_path) -> None:
    path = tmp_path / "aliases"
    path.write_bytes(b"root admin@x\n")
    with pytest.raises(AliasesError) as e:
        expand_aliases_file(str(path), ["root"])
    assert str(e.value) == "line 1: single ':' delimiter expected"


# --------------------------------------------------------------------------
# properties


NAMES = st.sampled_from(["a", "b", "c", "default", "x@y", "z@w", "", " ", "root"])
LINE = st.one_of(
    st.tuples(NAMES, st.lists(NAMES, max_size=4)).map(
        lambda t: f"{t[0]}: {', '.join(t[1])}"
    ),
    st.sampled_from(["", "# c", "a b", "a: b: c", "#: x"]),
    st.text(alphabet="ab:,# @\t", max_size=12),
)
ALIAS_FILES = st.lists(LINE, max_size=8).map(lambda ls: "".join(x + "\n" for x in ls).encode())


@settings(max_examples=300, deadline=None)
@given(st.one_of(ALIAS_FILES, st.binary(max_size=600)), st.lists(NAMES, max_size=4))
def test_parse_and_expand_never_crash(data: bytes, recipients: list[str]) -> None:
    try:
        table = parse_aliases(data)
    except AliasesError as e:
        assert str(e).startswith("line ")
        return
    try:
        result = expand_aliases(recipients, table)
    except AliasesError as e:
        assert str(e).startswith("Too many redirects when expanding alias ")
        return
    # every non-local recipient survives; a local one only when nothing matched it
    for r in recipients:
        if not is_local(r):
            assert result.count(r) >= recipients.count(r)
    assert all(not is_local(r) or (r not in table and "default" not in table) for r in result)
