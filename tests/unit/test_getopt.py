"""getopt_long emulation (msmtp_twisted.getopt) against glibc's semantics and messages."""

from __future__ import annotations

import pytest

from msmtp_twisted.getopt import GetoptError, LongOption, getopt_long

SHORT = "ab:c::"
LONG = [
    LongOption("verbose", "none", "verbose"),
    LongOption("value", "required", "value"),
    LongOption("color", "optional", "color"),
    LongOption("colour", "optional", "color"),  # same key and kind: an alias
    LongOption("tls", "optional", "tls"),
    LongOption("tls-starttls", "optional", "tls-starttls"),
    LongOption("tls-trust-file", "required", "tls-trust-file"),
    LongOption("file", "required", "b"),  # a long spelling of -b
]


def run(args: list[str], *, posix: bool = False, short: str = SHORT, long=LONG) -> list:
    return list(getopt_long(args, short, long, posixly_correct=posix))


def fails(args: list[str], **kw) -> str:
    with pytest.raises(GetoptError) as e:
        run(args, **kw)
    assert str(e.value) == e.value.message
    return e.value.message


def partial(args: list[str]) -> tuple[list, str]:
    """Options yielded before the error, and the error."""
    seen = []
    with pytest.raises(GetoptError) as e:
        for item in getopt_long(args, SHORT, LONG):
            seen.append(item)
    return seen, e.value.message


# --------------------------------------------------------------------------
# operands, permutation, "--"


def test_no_arguments() -> None:
    assert run([]) == [(None, [])]


def test_operands_only() -> None:
    assert run(["x", "y"]) == [(None, ["x", "y"])]


def test_permutation_options_after_operands() -> None:
    assert run(["x", "-a", "y", "--verbose", "z"]) == [
        ("a", None),
        ("verbose", None),
        (None, ["x", "y", "z"]),
    ]


def test_posixly_correct_stops_at_first_operand() -> None:
    assert run(["-a", "x", "-a", "--verbose"], posix=True) == [
        ("a", None),
        (None, ["x", "-a", "--verbose"]),
    ]


def test_double_dash_ends_options() -> None:
    assert run(["-a", "--", "-a", "--verbose", "--"]) == [
        ("a", None),
        (None, ["-a", "--verbose", "--"]),
    ]


def test_double_dash_after_operand_keeps_order() -> None:
    assert run(["x", "--", "-a"]) == [(None, ["x", "-a"])]


def test_single_dash_is_an_operand() -> None:
    assert run(["-", "-a"]) == [("a", None), (None, ["-"])]


def test_empty_string_is_an_operand() -> None:
    assert run(["", "-a"]) == [("a", None), (None, [""])]


# --------------------------------------------------------------------------
# short options


def test_cluster() -> None:
    assert run(["-aa"]) == [("a", None), ("a", None), (None, [])]


def test_required_argument_attached() -> None:
    assert run(["-bvalue"]) == [("b", "value"), (None, [])]


def test_required_argument_next_word() -> None:
    assert run(["-b", "value", "x"]) == [("b", "value"), (None, ["x"])]


def test_required_argument_next_word_even_if_it_looks_like_an_option() -> None:
    assert run(["-b", "-a"]) == [("b", "-a"), (None, [])]
    assert run(["-b", "--"]) == [("b", "--"), (None, [])]
    assert run(["-b", ""]) == [("b", ""), (None, [])]


def test_required_argument_ends_a_cluster() -> None:
    assert run(["-aba"]) == [("a", None), ("b", "a"), (None, [])]
    assert run(["-ab", "x"]) == [("a", None), ("b", "x"), (None, [])]


def test_optional_argument_only_attached() -> None:
    assert run(["-cfoo"]) == [("c", "foo"), (None, [])]
    assert run(["-c", "foo"]) == [("c", None), (None, ["foo"])]
    assert run(["-ac"]) == [("a", None), ("c", None), (None, [])]
    assert run(["-aca"]) == [("a", None), ("c", "a"), (None, [])]


def test_missing_required_short_argument() -> None:
    assert fails(["-b"]) == "option requires an argument -- 'b'"
    assert fails(["x", "-ab"]) == "option requires an argument -- 'b'"


@pytest.mark.parametrize("arg", ["-z", "-az", "-:", "-a-"])
def test_invalid_short_option(arg: str) -> None:
    assert fails([arg]) == f"invalid option -- '{arg[-1]}'"


def test_options_before_an_error_are_yielded() -> None:
    seen, message = partial(["-a", "x", "-az", "-a"])
    assert seen == [("a", None), ("a", None)]
    assert message == "invalid option -- 'z'"


# --------------------------------------------------------------------------
# long options


def test_long_no_argument() -> None:
    assert run(["--verbose"]) == [("verbose", None), (None, [])]


def test_long_no_argument_refuses_one() -> None:
    assert fails(["--verbose=1"]) == "option '--verbose' doesn't allow an argument"
    assert fails(["--verbose="]) == "option '--verbose' doesn't allow an argument"
    # the message names the full option, also when abbreviated
    assert fails(["--verb=1"]) == "option '--verbose' doesn't allow an argument"


def test_long_required_argument() -> None:
    assert run(["--value=1"]) == [("value", "1"), (None, [])]
    assert run(["--value=", "x"]) == [("value", ""), (None, ["x"])]
    assert run(["--value", "1"]) == [("value", "1"), (None, [])]
    assert run(["--value", "--verbose"]) == [("value", "--verbose"), (None, [])]
    assert run(["--value=a=b"]) == [("value", "a=b"), (None, [])]


def test_long_required_argument_missing() -> None:
    assert fails(["--value"]) == "option '--value' requires an argument"
    assert fails(["--valu"]) == "option '--value' requires an argument"


def test_long_optional_argument_only_with_equals() -> None:
    assert run(["--color"]) == [("color", None), (None, [])]
    assert run(["--color=red"]) == [("color", "red"), (None, [])]
    assert run(["--color="]) == [("color", ""), (None, [])]
    assert run(["--color", "red"]) == [("color", None), (None, ["red"])]


def test_long_option_with_short_key() -> None:
    assert run(["--file", "f", "-bg"]) == [("b", "f"), ("b", "g"), (None, [])]


def test_unrecognized_long_option() -> None:
    assert fails(["--bogus"]) == "unrecognized option '--bogus'"
    # the whole word is quoted, argument included
    assert fails(["--bogus=1"]) == "unrecognized option '--bogus=1'"
    assert fails(["--verbosee"]) == "unrecognized option '--verbosee'"


# --------------------------------------------------------------------------
# abbreviations


def test_unique_prefix() -> None:
    assert run(["--verb"]) == [("verbose", None), (None, [])]
    assert run(["--val=3"]) == [("value", "3"), (None, [])]
    assert run(["--fi", "x"]) == [("b", "x"), (None, [])]
    assert run(["--tls-s=off"]) == [("tls-starttls", "off"), (None, [])]


def test_exact_match_beats_prefix() -> None:
    # "tls" is also a prefix of "tls-starttls" and "tls-trust-file"
    assert run(["--tls"]) == [("tls", None), (None, [])]
    assert run(["--tls=off"]) == [("tls", "off"), (None, [])]
    assert run(["--color"]) == [("color", None), (None, [])]


def test_prefix_of_aliases_with_same_key_is_not_ambiguous() -> None:
    # "col" matches color and colour, which glibc does not count as ambiguous
    assert run(["--col=x"]) == [("color", "x"), (None, [])]


def test_ambiguous_prefix_message_and_order() -> None:
    assert fails(["--v"]) == "option '--v' is ambiguous; possibilities: '--verbose' '--value'"
    assert fails(["--tls-"]) == (
        "option '--tls-' is ambiguous; possibilities: '--tls-starttls' '--tls-trust-file'"
    )
    # the whole word is quoted, argument included
    assert fails(["--v=1"]) == "option '--v=1' is ambiguous; possibilities: '--verbose' '--value'"


def test_ambiguity_is_checked_before_argument_handling() -> None:
    assert fails(["--v"], posix=True) == (
        "option '--v' is ambiguous; possibilities: '--verbose' '--value'"
    )


def test_ambiguous_list_follows_table_order() -> None:
    reordered = [LONG[1], LONG[0], *LONG[2:]]
    assert fails(["--v"], long=reordered) == (
        "option '--v' is ambiguous; possibilities: '--value' '--verbose'"
    )


def test_ambiguous_list_keeps_aliases_different_from_the_first_match() -> None:
    table = [
        LongOption("cc", "none", "cc"),
        LongOption("color", "optional", "color"),
        LongOption("colour", "optional", "color"),
    ]
    assert fails(["--c"], long=table) == (
        "option '--c' is ambiguous; possibilities: '--cc' '--color' '--colour'"
    )


def test_ambiguous_list_leaves_out_aliases_of_the_first_match() -> None:
    table = [
        LongOption("color", "optional", "color"),
        LongOption("colour", "optional", "color"),
        LongOption("cc", "none", "cc"),
    ]
    # glibc 2.36: option '--c' is ambiguous; possibilities: '--color' '--cc'
    assert fails(["--c"], long=table) == (
        "option '--c' is ambiguous; possibilities: '--color' '--cc'"
    )


def test_empty_name_with_equals_is_ambiguous() -> None:
    assert fails(["--=x"]) == (
        "option '--=x' is ambiguous; possibilities: '--verbose' '--value' '--color' "
        "'--colour' '--tls' '--tls-starttls' '--tls-trust-file' '--file'"
    )


def test_options_before_a_long_error_are_yielded() -> None:
    seen, message = partial(["--verbose", "x", "--value=1", "--nope"])
    assert seen == [("verbose", None), ("value", "1")]
    assert message == "unrecognized option '--nope'"


def test_error_stops_scanning() -> None:
    # a later "--" or bad option does not matter once the first error is found
    assert fails(["--nope", "-z"]) == "unrecognized option '--nope'"
