"""Every example in the manual and the README is checked (issue 13 item 2).

The fenced blocks of docs/**/*.md and README.md, by language tag:

- ``msmtprc``: parsed with our configuration parser; no error.
- ``python``: compiled; its imports run; then the whole block runs in a child
  Python with ``reactor``, ``account`` (an account pointed at a local recording
  server) and ``message_bytes`` defined.  A block that needs more context (a
  ``NameError``) is a fragment: compiled and imports checked only.  A block that
  leaves a Deferred in ``d`` runs until it fires: the send_mail example really
  sends to the local server.
- ``sh``/``console``: every command line that runs one of our programs (``msmtp``,
  ``msmtpd``, ``twistd ... msmtpd``) is parsed by that program's option parser; an
  unknown or malformed option fails.
- ``json``: parsed (a queue entry through :class:`msmtp_twisted.queue.entry.Entry`).
- ``text``: output samples, not code.

A block that cannot be checked is preceded by ``<!-- not-tested: reason -->`` (or,
for a python block that must not run, ``<!-- not-run: reason -->``); they are
counted and listed, and kept few.  The runnable programs of docs/examples/ are run
by the tests that name them (checked here too).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import IN_CI, ROOT
from tests.servers.recording import RecordingServer

pytestmark = pytest.mark.timeout(300)

KNOWN_TAGS = {"msmtprc", "python", "sh", "console", "json", "text"}
MARKER = re.compile(r"<!--\s*(not-tested|not-run):\s*(.+?)\s*-->")
#: at most this many blocks may go unchecked (not-tested) or unrun (not-run)
MAX_MARKED = 5


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    tag: str
    body: str
    marker: tuple[str, str] | None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def _pages() -> list[Path]:
    pages = sorted(p for p in (ROOT / "docs").rglob("*.md") if "_generated" not in p.parts)
    return [*pages, ROOT / "README.md"]


def collect_blocks() -> list[Block]:
    blocks = []
    for path in _pages():
        lines = path.read_text().splitlines()
        i = 0
        while i < len(lines):
            m = re.match(r"^(\s*)(`{3,}|~{3,})\s*(\S*)", lines[i])
            if not m:
                i += 1
                continue
            indent, fence, tag = m.groups()
            end = i + 1
            while end < len(lines) and not lines[end].strip().startswith(fence):
                end += 1
            before = i - 1
            while before >= 0 and not lines[before].strip():
                before -= 1
            marker = MARKER.search(lines[before]) if before >= 0 else None
            body = "\n".join(line[len(indent):] if line.startswith(indent) else line
                             for line in lines[i + 1:end]) + "\n"
            blocks.append(Block(path, i + 1, tag, body,
                                marker.groups() if marker else None))  # type: ignore[arg-type]
            i = end + 1
    return blocks


BLOCKS = collect_blocks()


def _of(*tags: str) -> list[Block]:
    return [b for b in BLOCKS if b.tag in tags]


def test_every_block_has_a_known_tag() -> None:
    bad = [f"{b.where}: {b.tag or '(no tag)'}" for b in BLOCKS
           if b.tag not in KNOWN_TAGS and not b.tag.startswith("{")]
    assert not bad, "tag these blocks (msmtprc, python, sh, json, text): " + ", ".join(bad)
    assert len(_of("msmtprc")) >= 3 and len(_of("python")) >= 10 and len(_of("sh")) >= 8


def test_unchecked_blocks_are_few_and_listed() -> None:
    marked = [f"{b.where}: {b.marker[0]}: {b.marker[1]}" for b in BLOCKS if b.marker]
    print("\nblocks not tested or not run:", *marked, sep="\n  ")
    assert len(marked) <= MAX_MARKED, marked


# ------------------------------------------------------------------------- msmtprc
@pytest.mark.parametrize("block", _of("msmtprc"), ids=lambda b: b.where)
def test_msmtprc_block_parses(block: Block) -> None:
    from msmtp_twisted.config.parser import parse_config

    parsed = parse_config(block.body.encode(), block.where)
    assert parsed.accounts or "defaults" in block.body


def test_example_msmtprc_parses() -> None:
    from msmtp_twisted.config.parser import parse_config

    parsed = parse_config((ROOT / "docs/examples/msmtprc").read_bytes(), "msmtprc")
    assert {a.id for a in parsed.accounts} == {"personal", "work", "default"}


# -------------------------------------------------------------------------- python
_CHILD = r'''
import ast, json, sys, traceback

block = sys.stdin.read()
tree = ast.parse(block)
imports = ast.Module([n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))], [])
result = {}
try:
    exec(compile(imports, "<imports>", "exec"), {})
except ModuleNotFoundError as e:
    print(json.dumps({"missing": e.name}))
    sys.exit(0)

from twisted.internet import reactor
from msmtp_twisted.config.account import Account
from twisted.internet.defer import Deferred

port = int(sys.argv[1])
namespace = {
    "__name__": "__doc_example__",
    "reactor": reactor,
    "account": Account(id="work", host="127.0.0.1", port=port, from_addr="me@example.com",
                       timeout=30),
    "message_bytes": b"Subject: from the manual\r\n\r\nhello\r\n",
}
try:
    exec(compile(tree, "<block>", "exec"), namespace)
except NameError as e:
    print(json.dumps({"fragment": str(e)}))
    sys.exit(0)
d = namespace.get("d")
if isinstance(d, Deferred):
    outcome = []
    d.addBoth(outcome.append)
    d.addBoth(lambda _: reactor.stop())
    reactor.callLater(30, reactor.stop)
    if not outcome:
        reactor.run()
    if not outcome or hasattr(outcome[0], "getTraceback"):
        print(json.dumps({"error": outcome[0].getTraceback() if outcome else "timeout"}))
        sys.exit(0)
    result["deferred"] = repr(outcome[0])
print(json.dumps({"ran": True, **result}))
'''


def _compile(block: Block) -> ast.Module:
    try:
        tree = ast.parse(block.body, block.where)
        compile(tree, block.where, "exec")  # 'yield' outside a function: only here
        return tree
    except SyntaxError as e:
        if "outside function" not in str(e):
            raise
    # a fragment of an inlineCallbacks function: top-level yield
    wrapped = "def _example():\n" + textwrap.indent(block.body, "    ")
    return ast.parse(wrapped, block.where)


@pytest.fixture(scope="module")
def server():
    with RecordingServer() as srv:
        yield srv


@pytest.mark.parametrize("block", _of("python"), ids=lambda b: b.where)
def test_python_block(block: Block, server: RecordingServer, tmp_path: Path) -> None:
    tree = _compile(block)
    compile(tree, block.where, "exec")
    wrapped = isinstance(tree.body[0], ast.FunctionDef) and tree.body[0].name == "_example"
    if wrapped or (block.marker and block.marker[0] in ("not-run", "not-tested")):
        # imports only
        source = "\n".join(ast.unparse(n) for n in ast.walk(tree)
                           if isinstance(n, (ast.Import, ast.ImportFrom))) + "\n"
    else:
        source = block.body
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-W", "ignore::DeprecationWarning", "-c", _CHILD,
                           str(server.port)], input=source, capture_output=True,
                          text=True, timeout=90, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if "missing" in result:
        # an optional extra (Buildbot): ./scripts/test installs it
        message = f"{block.where} imports {result['missing']}, not installed"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    assert "error" not in result, result["error"]
    assert "fragment" in result or result.get("ran"), result


def test_send_mail_example_sends_to_the_local_server(tmp_path: Path) -> None:
    (block,) = [b for b in _of("python") if b.path.name == "library.md"
                and "d = send_mail(reactor, account" in b.body]
    with RecordingServer() as srv:
        proc = subprocess.run([sys.executable, "-c", _CHILD, str(srv.port)],
                              input=block.body, capture_output=True, text=True, timeout=90,
                              cwd=tmp_path, env={**os.environ, "HOME": str(tmp_path),
                                                 "PYTHONPATH": str(ROOT)})
        srv.wait_idle()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "2.0.0 Ok: queued as TEST0001" or \
        "Ok: queued" in proc.stdout, proc.stdout
    assert json.loads(proc.stdout.splitlines()[-1])["ran"]
    assert srv.message.recipients == ["you@example.org"]
    assert b"Subject: from the manual" in srv.message.data_bytes()


def test_every_example_program_is_run_by_a_test() -> None:
    tests = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py")
                      if p.name != Path(__file__).name)
    for example in sorted((ROOT / "docs" / "examples").glob("*.py")):
        assert example.name in tests, f"no test runs docs/examples/{example.name}"


# ---------------------------------------------------------------------- sh/console
_CUT = {"|", "||", "&&", ";", "<", ">", ">>", "2>", "2>&1", "&"}


def _commands(block: Block) -> list[list[str]]:
    """The command lines of a shell block, as argument lists (continuations
    joined, comments and prompts dropped, cut at a pipe or redirection)."""
    text = block.body.replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if block.tag == "console":
            if not line.startswith(("$ ", "# ")):
                continue  # output
            line = line[2:]
        words = shlex.split(line, comments=True)
        args: list[str] = []
        for word in words:
            if word in _CUT or word.startswith((">", "<", "2>")):
                break
            args.append(word)
        while args and (re.match(r"^[A-Z_]+=", args[0]) or args[0] in ("sudo", "exec")):
            args.pop(0)
        if args:
            out.append(args)
    return out


def _ours(args: list[str]) -> str | None:
    name = os.path.basename(args[0])
    if name in ("msmtp", "msmtpd"):
        return name
    if name == "twistd" and "msmtpd" in args:
        return "twistd"
    return None


def _check_msmtp(args: list[str]) -> None:
    from msmtp_twisted.cli import UsageError, parse_command_line

    try:
        parse_command_line(args[1:])
    except UsageError as e:
        pytest.fail(f"{shlex.join(args)}: {e.message}")


def _check_msmtpd(args: list[str]) -> None:
    from msmtp_twisted.daemon.cli import parse_args
    from msmtp_twisted.daemon.command import CommandError, PipeCommand
    from msmtp_twisted.daemon.options import SettingsError

    try:
        settings = parse_args(args, get_password=lambda spec: (spec.partition(",")[0], "x"))
    except SettingsError as e:
        pytest.fail(f"{shlex.join(args)}: {e}")
    try:
        PipeCommand.parse(settings.command)
    except CommandError as e:
        pytest.fail(f"{shlex.join(args)}: --command: {e}")


def _check_twistd(args: list[str], tmp_path: Path) -> None:
    # twistd's own options, then the plugin's, as twistd parses them (in a child:
    # twistd's option parsing may touch the global reactor)
    code = ("import sys\nfrom twisted.python.usage import UsageError\n"
            "from twisted.scripts.twistd import ServerOptions\n"
            "options = ServerOptions()\n"
            "try:\n    options.parseOptions(sys.argv[1:])\n"
            "except (UsageError, SystemExit) as e:\n    sys.exit(f'error: {e}')\n"
            "assert options.subCommand == 'msmtpd', options.subCommand\n")
    proc = subprocess.run([sys.executable, "-c", code, *args[1:]], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, f"{shlex.join(args)}: {proc.stderr.strip()}"


@pytest.mark.parametrize("block", _of("sh", "console"), ids=lambda b: b.where)
def test_shell_block_uses_our_options(block: Block, tmp_path: Path) -> None:
    for args in _commands(block):
        program = _ours(args)
        if program == "msmtp":
            _check_msmtp(args)
        elif program == "msmtpd":
            _check_msmtpd(args)
        elif program == "twistd":
            _check_twistd(args, tmp_path)


def test_shell_checks_catch_unknown_options(tmp_path: Path) -> None:
    """The checks above are real: each parser refuses an option it does not know."""
    for args, check in ((["msmtp", "--no-such-option"], _check_msmtp),
                        (["msmtpd", "--no-such-option"], _check_msmtpd)):
        with pytest.raises(pytest.fail.Exception):
            check(args)
    with pytest.raises(AssertionError):
        _check_twistd(["twistd", "-n", "msmtpd", "--no-such-option"], tmp_path)


def test_our_commands_appear_in_the_shell_blocks() -> None:
    programs = {_ours(args) for b in _of("sh", "console") for args in _commands(b)}
    assert {"msmtp", "msmtpd", "twistd"} <= programs


# ---------------------------------------------------------------------------- json
@pytest.mark.parametrize("block", _of("json"), ids=lambda b: b.where)
def test_json_block(block: Block) -> None:
    data = json.loads(block.body)
    if isinstance(data, dict) and "version" in data and "argv" in data:
        from msmtp_twisted.queue.entry import Entry

        entry = Entry.from_json(block.body.encode(), data["id"])
        assert entry.id == data["id"]
