"""Choosing an account by envelope-from address (msmtp_twisted.config.select) against
msmtp 1.8.23's find_account_by_envelope_from() in conf.c."""

from __future__ import annotations

import ctypes
import ctypes.util

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msmtp_twisted.config.account import Account
from msmtp_twisted.config.select import find_account_by_envelope_from


def accounts(*froms: str | None) -> list[Account]:
    result = []
    for i, from_addr in enumerate(froms):
        acc = Account(id=f"acc{i}", conffile="rc")
        acc.from_addr = from_addr
        result.append(acc)
    return result


def chosen(address: str, *froms: str | None) -> str | None:
    acc = find_account_by_envelope_from(accounts(*froms), address)
    return None if acc is None else acc.id


def test_simple_match_ignores_case() -> None:
    assert chosen("Joe@Example.ORG", "x@y", "joe@example.org") == "acc1"


def test_no_match() -> None:
    assert chosen("joe@example.org", "x@y", None) is None
    assert chosen("joe@example.org") is None


def test_accounts_without_from_are_skipped() -> None:
    assert chosen("joe@example.org", None, "joe@example.org") == "acc1"


def test_first_match_wins() -> None:
    assert chosen("joe@example.org", "*@example.org", "joe@example.org") == "acc0"


def test_empty_address() -> None:
    assert chosen("", "", "x@y") == "acc0"
    assert chosen("", "x@y") is None


def test_subaddress_matches_plain_account() -> None:
    assert chosen("joe+lists@example.org", "x@y", "JOE@example.org") == "acc1"
    assert chosen("joe+@Example.org", "joe@example.org") == "acc0"


def test_subaddress_needs_same_user_and_domain() -> None:
    assert chosen("joe+x@example.org", "jo@example.org", "joe@example.com") is None
    assert chosen("joe+x@example.org", "joey@example.org") is None


def test_subaddress_does_not_fall_back_to_patterns_or_exact_match() -> None:
    # with '+' and '@' in the address, an account without '+' is only compared
    # by user and domain; an exact or pattern match is not tried (else-if chain)
    assert chosen("joe+x@example.org", "*@example.org") is None
    assert chosen("joe+x@example.org", "joe+x@example.org") == "acc0"  # '+' in account
    assert chosen("joe+x@example.org", "joe+*@example.org") == "acc0"


def test_address_with_plus_but_without_at_is_compared_normally() -> None:
    assert chosen("joe+x", "JOE+X") == "acc0"
    assert chosen("joe+x", "joe") is None


def test_patterns_are_case_sensitive() -> None:
    assert chosen("joe@example.org", "*@example.org") == "acc0"
    assert chosen("joe@EXAMPLE.org", "*@example.org") is None
    assert chosen("joe@example.org", "j?e@*") == "acc0"
    assert chosen("joe@example.org", "[jk]oe@*") == "acc0"
    assert chosen("joe@example.org", "[!j]oe@*") is None


def test_slash_and_leading_dot_are_not_special() -> None:
    assert chosen("a/b@x", "a*@x") == "acc0"
    assert chosen(".a@x", "*a@x") == "acc0"


def test_unterminated_bracket_is_no_error() -> None:
    assert chosen("a@x", "[a@x") is None
    assert chosen("[a@x", "[a@x") == "acc0"


def test_caret_negates_a_bracket() -> None:
    assert chosen("bob@example.com", "[^a]*@example.com") == "acc0"
    assert chosen("abc@example.com", "[^a]*@example.com") is None


def test_character_classes() -> None:
    assert chosen("bob@example.com", "[[:lower:]]*@example.com") == "acc0"


def test_backslash_escapes_in_patterns() -> None:
    assert chosen("x*@example.com", "x\\*@example.com") == "acc0"


@pytest.mark.parametrize(
    ("address", "from_addr"),
    [
        ("\u00c4@example.com", "\u00e4@example.com"),
        ("\u212a@example.com", "k@example.com"),
        ("\u212a+x@example.com", "k@example.com"),
    ],
)
def test_case_folding_is_ascii_only(address: str, from_addr: str) -> None:
    assert chosen(address, from_addr) is None


@pytest.mark.parametrize(
    ("pattern", "address", "matches"),
    [("[b-a]@x", "c@x", False), ("[b-a]@x", "?@x", False), ("[!b-a]@x", "c@x", True)],
)
def test_reversed_range_matches_nothing(pattern: str, address: str, matches: bool) -> None:
    assert (chosen(address, pattern) == "acc0") is matches


@pytest.mark.parametrize(
    ("pattern", "address"), [("*@x\\", "a@x\\"), ("a@[b-", "a@[b-"), ("a@[[.", "a@[[.")]
)
def test_malformed_patterns_match_nothing(pattern: str, address: str) -> None:
    assert chosen(address, pattern) is None


# --------------------------------------------------------------------------
# well-formed patterns behave as the C library's fnmatch(3)


def _libc_fnmatch():
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name)
    fn = getattr(libc, "fnmatch", None)
    if fn is None:
        return None
    fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def c_find(froms: list[str], address: str) -> int | None:
    """msmtp's find_account_by_envelope_from for ASCII input, with the C fnmatch."""
    fnmatch = _libc_fnmatch()
    plus, at = address.find("+"), address.find("@")
    for i, acc_from in enumerate(froms):
        if plus >= 0 and at >= 0 and "+" not in acc_from:
            acc_at = acc_from.find("@")
            if (
                acc_at == plus
                and address[:plus].lower() == acc_from[:plus].lower()
                and address[at:].lower() == acc_from[acc_at:].lower()
            ):
                return i
        elif any(c in acc_from for c in "?*["):
            if fnmatch(acc_from.encode(), address.encode(), 0) == 0:
                return i
        elif address.lower() == acc_from.lower():
            return i
    return None


# no lone "-": it would glue neighbours into ranges such as "a-B" (reversed)
BRACKET_ITEMS = list("abB.@+") + [
    "a-b", "b-a", "[:lower:]", "[:upper:]", "[:alpha:]", "[:punct:]", "\\]", "\\-",
]
BRACKET = st.tuples(
    st.sampled_from(["", "!", "^"]),
    st.lists(st.sampled_from(BRACKET_ITEMS), min_size=1, max_size=3),
).filter(
    # a bracket holding only reversed ranges is pinned by test_reversed_range_matches_nothing
    lambda t: any(item != "b-a" for item in t[1])
).map(lambda t: "[" + t[0] + "".join(t[1]) + "]")
ATOM = st.one_of(
    st.sampled_from(list("abAB.@+-!]^") + ["*", "?", "\\*", "\\?", "\\[", "\\\\", "\\a"]),
    BRACKET,
)
PATTERN = st.lists(ATOM, max_size=6).map("".join)
ADDRESS = st.text(alphabet="abAB.@+-!]*?[^\\", max_size=8)


@settings(max_examples=300, deadline=None)
@given(st.lists(PATTERN, min_size=1, max_size=3), ADDRESS)
def test_same_choice_as_msmtp_for_well_formed_patterns(froms: list[str], address: str) -> None:
    if _libc_fnmatch() is None:
        pytest.skip("no fnmatch in the C library")
    got = find_account_by_envelope_from(accounts(*froms), address)
    expected = c_find(froms, address)
    assert (None if got is None else int(got.id[3:])) == expected
