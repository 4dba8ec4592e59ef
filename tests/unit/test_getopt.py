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


# --------------------------------------------------------------------------
# differential test against the C library's getopt_long (glibc), when a C
# compiler is available: random argument lists, same options, same errors.

_HARNESS = r"""
#include <getopt.h>
#include <stdio.h>

static void hex(const char *s) {
    for (; *s; s++) printf("%02x", (unsigned char)*s);
}

int main(int argc, char **argv) {
    static struct option opts[] = {
@TABLE@
        {0, 0, 0, 0}
    };
    int c;
    while ((c = getopt_long(argc, argv, "@SHORT@", opts, NULL)) != -1) {
        if (c == '?' || c == ':') {
            printf("E\n");
            return 0;
        }
        printf("O %d ", c);
        if (optarg) hex(optarg); else printf("-");
        printf("\n");
    }
    for (int i = optind; i < argc; i++) {
        printf("A ");
        hex(argv[i]);
        printf("\n");
    }
    return 0;
}
"""

_HAS_ARG = {
    "none": "no_argument",
    "required": "required_argument",
    "optional": "optional_argument",
}


class CGetopt:
    """A compiled getopt_long with the same tables as our emulation."""

    def __init__(self, directory, name: str, short: str, long: list[LongOption]) -> None:
        import subprocess

        self.path = str(directory / name)
        vals: dict[str, int] = {c: ord(c) for c in short if c != ":"}
        for opt in long:
            if opt.key not in vals:
                vals[opt.key] = ord(opt.key) if len(opt.key) == 1 else 256 + len(vals)
        self.keys = {v: k for k, v in vals.items()}
        table = "\n".join(
            f'        {{"{o.name}", {_HAS_ARG[o.has_arg]}, 0, {vals[o.key]}}},' for o in long
        )
        src = directory / f"{name}.c"
        src.write_text(_HARNESS.replace("@TABLE@", table).replace("@SHORT@", short))
        subprocess.run(
            ["cc", "-o", self.path, str(src)], check=True, capture_output=True
        )

    def __call__(self, args: list[str], posix: bool) -> tuple[list, str | None]:
        import subprocess

        env = {"LC_ALL": "C"}
        if posix:
            env["POSIXLY_CORRECT"] = "1"
        proc = subprocess.run([self.path, *args], capture_output=True, env=env, check=True)
        seen: list = []
        operands: list[str] = []
        for line in proc.stdout.decode().splitlines():
            kind, _, rest = line.partition(" ")
            if kind == "E":
                prefix = self.path + ": "
                message = proc.stderr.decode().rstrip("\n")
                assert message.startswith(prefix)
                return seen, message[len(prefix) :]
            if kind == "O":
                val, _, arg = rest.partition(" ")
                value = None if arg == "-" else bytes.fromhex(arg).decode()
                seen.append((self.keys[int(val)], value))
            else:
                operands.append(bytes.fromhex(rest).decode())
        seen.append((None, operands))
        return seen, None


def ours(args: list[str], short: str, long, posix: bool) -> tuple[list, str | None]:
    seen: list = []
    try:
        for item in getopt_long(args, short, long, posixly_correct=posix):
            seen.append(item)
    except GetoptError as e:
        return seen, e.message
    return seen, None


@pytest.fixture(scope="module")
def c_getopt(tmp_path_factory) -> dict[str, CGetopt]:
    import platform
    import shutil

    from tests.conftest import require

    require(shutil.which("cc") is not None and platform.libc_ver()[0] == "glibc",
            "a C compiler and glibc for the differential getopt test (apt-get install gcc)")
    from msmtp_twisted import cli

    directory = tmp_path_factory.mktemp("cgetopt")
    return {
        "small": CGetopt(directory, "small", SHORT, LONG),
        "msmtp": CGetopt(directory, "msmtp", cli.SHORTOPTS, list(cli.LONG_OPTIONS)),
    }


def _words(short: str, long):
    from hypothesis import strategies as st

    names = [o.name for o in long]
    text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=6)
    prefix = st.sampled_from(names).flatmap(
        lambda n: st.integers(1, len(n)).map(lambda k: n[:k])
    )
    long_word = st.tuples(prefix, st.one_of(st.none(), text)).map(
        lambda t: "--" + t[0] + ("" if t[1] is None else "=" + t[1])
    )
    letters = sorted(set(short.replace(":", ""))) + ["z", "-", ":", "W"]
    cluster = st.lists(st.sampled_from(letters), min_size=1, max_size=4).map(
        lambda cs: "-" + "".join(cs)
    )
    return st.one_of(
        long_word,
        cluster,
        st.tuples(cluster, text).map("".join),
        st.sampled_from(["--", "-", ""]),
        text,
    )


def _differential(harness: CGetopt, short: str, long) -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=150, deadline=None, database=None)
    @given(st.lists(_words(short, long), max_size=6), st.booleans())
    def check(args: list[str], posix: bool) -> None:
        expected = harness(args, posix)
        assert ours(args, short, long, posix) == expected

    check()


def test_differential_small_table(c_getopt) -> None:
    _differential(c_getopt["small"], SHORT, LONG)


def test_differential_msmtp_table(c_getopt) -> None:
    from msmtp_twisted import cli

    _differential(c_getopt["msmtp"], cli.SHORTOPTS, list(cli.LONG_OPTIONS))


def test_harness_sees_the_known_differences(c_getopt) -> None:
    # glibc really treats the empty name before '=' as a prefix of everything
    assert c_getopt["small"](["--=x"], False)[1].startswith("option '--=x' is ambiguous")
