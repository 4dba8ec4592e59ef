"""getopt_long emulation (msmtp_twisted.getopt) against the C library's own getopt_long
(glibc), compiled into a small harness: random argument lists, same options, same errors.
Needs a C compiler (marked ``cc``); the pure tests are in tests/unit/test_getopt.py."""

from __future__ import annotations

import pytest

from msmtp_twisted.getopt import GetoptError, LongOption, getopt_long
from tests.unit.test_getopt import LONG, SHORT

pytestmark = pytest.mark.cc

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
