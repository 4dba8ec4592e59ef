"""Property-based tests (hypothesis): nothing but the documented errors escapes the
parsers, the command line or main(), and the pieces that emulate C agree with C.

Where /usr/bin/msmtp (1.8.23) is installed, some properties also compare with it:
the same configuration files are refused with the same message, the same command
lines are refused with the same message, and ``msmtp -P ...`` prints the same.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import io
import os

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from msmtp_twisted import cli
from msmtp_twisted.config.commands import COMMANDS, get_pos_int
from msmtp_twisted.config.parser import (
    ConfigError,
    EvalError,
    ParsedFile,
    iter_lines,
    parse_config,
    split_line,
)
from msmtp_twisted.getopt import GetoptError, _find_long
from msmtp_twisted.message.headers import HeaderScanner

EXIT_CODES = {0} | set(range(64, 79))

# --------------------------------------------------------------------------
# strategies

COMMAND_NAMES = sorted({c.name for c in COMMANDS} | {a for c in COMMANDS for a in c.aliases})
#: commands that run programs are never generated
UNSAFE_COMMANDS = {"eval", "passwordeval"}
#: commands msmtp 1.8.23 does not know (documented differences)
NEW_COMMANDS = {"from_full_name", "set_to_header"}
SAFE_COMMANDS = [c for c in COMMAND_NAMES if c not in UNSAFE_COMMANDS | NEW_COMMANDS]

ARG_POOL = [
    "", "on", "off", "auto", "0", "1", "25", "0x19", "031", "65535", "65536", "-1", "x",
    "smtp", "lmtp", "never", "failure", "failure,delay", "success,delay,failure", "headers",
    "full", "hdrs", "LOG_MAIL", "LOG_LOCAL7", "plain", "PLAIN", "login", "a b", '"a b"',
    '"unbalanced', "~/file", "a@b", "h.example", "undisclosed_recipients",
    ":".join(["ab"] * 20), " ".join(["CD"] * 16), ":".join(["00"] * 32),
]

safe_text = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126, blacklist_characters="%"),
    max_size=12,
)
arg_text = st.one_of(st.sampled_from(ARG_POOL), safe_text)
blank = st.sampled_from(["", " ", "\t", "  ", " \t "])
eol = st.sampled_from(["\n", "\r\n", "\n", "\n", ""])


@st.composite
def config_line(draw, commands=tuple(COMMAND_NAMES + ["eval", "account", "defaults"])) -> str:
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.sampled_from(["", "# comment", "   ", "#x y"]))
    if kind == 1:
        name = draw(st.sampled_from(["a", "b", "default", "", "a,b", "a:b", '"q"']))
        parents = draw(st.sampled_from(["", " : a", ": b, a", ":", " : x", ": a,"]))
        return f"account {name}{parents}"
    if kind == 2:
        return draw(st.sampled_from(["defaults", "defaults x"]))
    if kind == 3:
        return draw(safe_text)
    cmd = draw(st.sampled_from(commands))
    return f"{draw(blank)}{cmd}{draw(blank)}{draw(arg_text)}{draw(blank)}"


def config_file(commands=None) -> st.SearchStrategy[bytes]:
    line = config_line() if commands is None else config_line(commands=commands)
    text_file = st.lists(st.tuples(line, eol), max_size=12).map(
        lambda ls: "".join(a + e for a, e in ls).encode()
    )
    return st.one_of(
        text_file,
        st.binary(max_size=300),
        # long lines around the 500-byte limit, NULs and quotes mixed in
        st.tuples(
            st.sampled_from([b"host ", b"# ", b"", b"password \"", b"host x\0"]),
            st.integers(480, 520),
            st.sampled_from([b"a", b"\0", b'"', b" "]),
            st.sampled_from([b"\n", b"", b"\nhost h\n"]),
        ).map(lambda t: t[0] + t[2] * t[1] + t[3]),
        st.tuples(text_file, st.binary(max_size=40), text_file).map(b"".join),
    )


# --------------------------------------------------------------------------
# (a) parse_config on arbitrary bytes


def _evaluator(outputs: list[str | None]):
    it = iter(outputs * 50)

    def evaluate(command: str) -> str:
        out = next(it, None)
        if out is None:
            raise EvalError(f"cannot read output of '{command}'")
        return out

    return evaluate


@settings(max_examples=300, deadline=None)
@given(
    config_file(),
    st.one_of(
        st.none(),
        st.lists(
            st.one_of(st.none(), config_line(commands=tuple(SAFE_COMMANDS)), safe_text),
            min_size=1, max_size=4,
        ),
    ),
)
def test_parse_config_only_raises_config_error(data: bytes, outputs) -> None:
    evaluate = None if outputs is None else _evaluator(outputs)
    try:
        result = parse_config(data, "/tmp/rc", evaluate=evaluate)
    except ConfigError as e:
        assert isinstance(e.message, str) and e.message
        assert e.exitcode in (74, 78)  # EX_IOERR (eval), EX_CONFIG
        return
    assert isinstance(result, ParsedFile)
    names = [a.id for a in result.accounts]
    assert len(names) == len(set(names))
    for acc in result.accounts:
        assert acc.conffile == "/tmp/rc"
        assert acc.id and ":" not in acc.id and "," not in acc.id


@settings(max_examples=200, deadline=None)
@given(config_file())
def test_iter_lines_never_loses_bytes_before_nul(data: bytes) -> None:
    try:
        lines = list(iter_lines(data))
    except ConfigError:
        return
    joined = "".join(lines).encode("utf-8", "surrogateescape")
    assert joined == b"".join(
        chunk.split(b"\0", 1)[0] for chunk in _fgets_chunks(data)
    )
    for line in lines:
        split_line(line)


def _fgets_chunks(data: bytes, size: int = 500):
    pos = 0
    while pos < len(data):
        nl = data.find(b"\n", pos, pos + size)
        end = nl + 1 if nl >= 0 else min(pos + size, len(data))
        yield data[pos:end]
        pos = end


# --------------------------------------------------------------------------
# (b) parse_command_line


OPTION_NAMES = [o.name for o in cli.LONG_OPTIONS]
SAFE_OPTION_NAMES = [n for n in OPTION_NAMES if n not in ("configure", "passwordeval")]


def _resolves_to_unsafe(word: str) -> bool:
    if not word.startswith("--") or word == "--":
        return False
    name, _, _ = word[2:].partition("=")
    try:
        option = _find_long(name, word[2:], cli.LONG_OPTIONS)
    except GetoptError:
        return False
    return option.key in ("configure", "cmd:passwordeval")


@st.composite
def long_option(draw, names=tuple(SAFE_OPTION_NAMES)) -> str:
    name = draw(st.sampled_from(names))
    if draw(st.booleans()):
        name = name[: draw(st.integers(1, len(name)))]
    value = draw(st.one_of(st.none(), arg_text))
    word = "--" + name + ("" if value is None else "=" + value)
    assume(not _resolves_to_unsafe(word))
    return word


SHORT_LETTERS = sorted(set(cli.SHORTOPTS.replace(":", ""))) + ["z", "-", ":"]
short_cluster = st.tuples(
    st.lists(st.sampled_from(SHORT_LETTERS), min_size=1, max_size=3).map("".join),
    st.one_of(st.just(""), arg_text),
).map(lambda t: "-" + t[0] + t[1])
operand = st.one_of(
    st.sampled_from(["a@b", "x@y", "root", "Joe <j@x>, k@y", "--", "-", "", "0.1", "m"]),
    safe_text.filter(lambda s: not s.startswith("-")),
    arg_text.filter(lambda s: not s.startswith("-")),
)
argument_word = st.one_of(long_option(), short_cluster, operand)
argument_list = st.lists(argument_word, max_size=8)


@settings(max_examples=300, deadline=None)
@given(argument_list, st.booleans())
def test_parse_command_line_only_raises_usage_error(args: list[str], posix: bool) -> None:
    try:
        conf = cli.parse_command_line(args, posixly_correct=posix)
    except cli.UsageError as e:
        assert e.message
        return
    assert isinstance(conf, cli.CommandLine)
    assert all(isinstance(a, str) for a in conf.recipients_args)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=10), max_size=6))
def test_parse_command_line_arbitrary_text(args: list[str]) -> None:
    try:
        cli.parse_command_line(args)
    except cli.UsageError:
        pass


# --------------------------------------------------------------------------
# (c) main() never raises, and exits with a sysexits code


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> dict[str, str]:
    """A HOME, an empty SYSCONFDIR and a few configuration files for -C."""
    root = tmp_path_factory.mktemp("main")
    home = root / "home"
    etc = root / "etc"
    home.mkdir()
    etc.mkdir()
    files = {
        "good": "defaults\nport 2525\naccount a\nhost a.example\nfrom a@example.com\n"
                "account b : a\nfrom b@example.com\naccount default : a\n",
        "tls": "account default\nhost h\ntls on\ntls_starttls off\ntls_trust_file /ca\n"
               "auth plain\nuser u\npassword p\nfrom f@x\n",
        "broken": "account a\nport 0\n",
        "aliases": "account default\nhost h\nfrom f@x\naliases ~/aliases\n",
        "lmtp": "account default\nprotocol lmtp\nsocket /nonexistent\nfrom f@x\n",
        "empty": "",
    }
    paths = {}
    for name, text in files.items():
        path = root / f"{name}.rc"
        path.write_text(text)
        path.chmod(0o600)
        paths[name] = str(path)
    (home / "aliases").write_text("root: admin@x\ndefault: d@x\n")
    (home / ".msmtprc").write_text(files["good"])
    (home / ".msmtprc").chmod(0o600)
    return {"home": str(home), "etc": str(etc), "root": str(root), **paths}


@contextlib.contextmanager
def environment(env: dict[str, str]):
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def config_option(sandbox, names=("good", "tls", "broken", "aliases", "lmtp", "empty")):
    return st.one_of(
        st.just([]),
        st.sampled_from(names).map(lambda n: ["-C", sandbox[n]]),
        st.sampled_from([["-C", "/nonexistent/rc"], ["-C", sandbox["root"]]]),
    )


def run_main(argv: list[str], stdin: bytes, env: dict[str, str]) -> tuple[int, bytes, bytes]:
    out, err = io.BytesIO(), io.BytesIO()
    with environment(env):
        code = cli.main(argv, stdin=io.BytesIO(stdin), stdout=out, stderr=err, env=dict(env))
    return code, out.getvalue(), err.getvalue()


def test_main_property(sandbox) -> None:
    env = {"HOME": sandbox["home"], "MSMTP_SYSCONFDIR": sandbox["etc"], "PATH": "/usr/bin:/bin"}

    @settings(max_examples=300, deadline=None)
    @given(
        # always --pretend: without it main() would really try to send
        st.sampled_from([["-P"], ["-P", "-t"], ["-P", "--read-envelope-from"], ["-d", "-P"]]),
        config_option(sandbox),
        argument_list,
        st.one_of(st.binary(max_size=200),
                  st.sampled_from([b"To: a@b\nFrom: f@x\n\nbody", b"From: \n\n", b""])),
    )
    def check(mode: list[str], conf: list[str], args: list[str], stdin: bytes) -> None:
        code, out, err = run_main(["msmtp", *mode, *conf, *args], stdin, env)
        assert isinstance(code, int)
        assert code in EXIT_CODES
        if code != 0:
            assert err, "a failing exit status comes with a message"

    check()


# --------------------------------------------------------------------------
# (d) the header scanner on arbitrary bytes


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.booleans(), st.booleans(), st.booleans())
def test_header_scanner_never_raises(data: bytes, rc: bool, fr: bool, dm: bool) -> None:
    s = HeaderScanner(want_recipients=rc, want_from=fr, want_date_msgid=dm)
    end = s.feed(data)
    assert end is None or 0 < end <= len(data)
    s.finish()
    assert s.done
    assert all(isinstance(r, str) and r for r in s.recipients)
    assert s.from_address is None or isinstance(s.from_address, str)
    if not rc:
        assert s.recipients == []
    if not fr:
        assert s.from_address is None
    if not dm:
        assert (s.have_date, s.have_msgid) == (False, False)


# --------------------------------------------------------------------------
# (e) get_pos_int is strtol(s, &end, 0) as msmtp uses it

LONG_MAX = 2**63 - 1
LONG_MIN = -(2**63)
INT_MAX = 2**31 - 1
C_SPACE = " \t\n\v\f\r"


def strtol0(s: str) -> tuple[int, int, bool]:
    """C's strtol(s, &end, 0): (value, index of end, ERANGE)."""
    i = 0
    n = len(s)
    while i < n and s[i] in C_SPACE:
        i += 1
    negative = False
    if i < n and s[i] in "+-":
        negative = s[i] == "-"
        i += 1
    base = 10
    if s[i : i + 1] == "0":
        if s[i + 1 : i + 2] in ("x", "X") and s[i + 2 : i + 3] and (
            s[i + 2] in "0123456789abcdefABCDEF"
        ):
            base = 16
            i += 2
        else:
            base = 8
    digits = "0123456789abcdef"[:base]
    start = i
    value = 0
    while i < n and s[i].lower() in digits:
        value = value * base + digits.index(s[i].lower())
        i += 1
    if i == start:
        return 0, 0, False  # no conversion: end = s
    if negative:
        value = -value
    if value > LONG_MAX:
        return LONG_MAX, i, True
    if value < LONG_MIN:
        return LONG_MIN, i, True
    return value, i, False


def reference_get_pos_int(s: str) -> int:
    """msmtp's get_pos_int() on top of the strtol model."""
    x, end, erange = strtol0(s)
    if end == 0 or x <= 0 or (x == LONG_MAX and erange) or x > INT_MAX:
        return -1
    if end != len(s):
        return -1
    return x


INT_TEXT = st.one_of(
    st.text(alphabet="0123456789+-xX abcdefABCDEF\t\n\v\f\r8", max_size=14),
    st.tuples(
        st.sampled_from(["", " ", "\t", "  "]),
        st.sampled_from(["", "+", "-", "+-", "--"]),
        st.sampled_from(["", "0", "0x", "0X", "00", "0x0"]),
        st.text(alphabet="0123456789abcdefg", max_size=12),
        st.sampled_from(["", " ", "x", "\n"]),
    ).map("".join),
    st.integers(-(2**70), 2**70).map(str),
    st.integers(0, 2**40).map(hex),
    st.integers(0, 2**40).map(lambda v: "0" + oct(v)[2:]),
)


@settings(max_examples=500, deadline=None)
@given(INT_TEXT)
def test_get_pos_int_matches_strtol_model(text: str) -> None:
    assert get_pos_int(text) == reference_get_pos_int(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("25", 25), ("0x19", 25), ("0X19", 25), ("031", 25), ("+25", 25), (" 25", 25),
        ("\t\n25", 25), ("25 ", -1), ("0", -1), ("-25", -1), ("", -1), (" ", -1), ("0x", -1),
        ("08", -1), ("0x1g", -1), ("2147483647", 2147483647), ("2147483648", -1),
        ("0x7fffffff", 2147483647), ("017777777777", 2147483647), ("+-1", -1),
        ("99999999999999999999", -1), ("00025", 21), ("0x0019", 25),
    ],
)
def test_get_pos_int_examples(text: str, expected: int) -> None:
    assert get_pos_int(text) == expected
    assert reference_get_pos_int(text) == expected


def _libc_strtol():
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name, use_errno=True)
    fn = libc.strtol
    fn.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int]
    fn.restype = ctypes.c_long
    if ctypes.sizeof(ctypes.c_long) != 8:
        return None
    return fn


@settings(max_examples=500, deadline=None)
@given(INT_TEXT)
def test_strtol_model_matches_libc(text: str) -> None:
    strtol = _libc_strtol()
    if strtol is None:
        pytest.skip("no 64-bit libc strtol via ctypes")
    raw = text.encode("ascii")
    buf = ctypes.create_string_buffer(raw)
    end = ctypes.c_char_p()
    ctypes.set_errno(0)
    value = strtol(buf, ctypes.byref(end), 0)
    erange = ctypes.get_errno() == 34
    end_index = ctypes.cast(end, ctypes.c_void_p).value - ctypes.addressof(buf)
    model = strtol0(text)
    assert (model[0], model[1]) == (value, end_index)
    if model[1]:
        assert model[2] == erange

