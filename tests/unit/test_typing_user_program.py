"""A user's program type-checks against the installed package (docs/twisted.md).

``mypy --strict`` runs, as a user would run it, outside the repository on
typecheck/user_program.py (load_account, send_mail, Account(...), the errors,
the drop-in) and the examples of docs/typing.md, which must pass, and on
typecheck/typo_program.py, whose mistakes must each be found.  The package is
found where it is installed (PEP 561), not in the checkout.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent / "typecheck"
ROOT = Path(__file__).parents[2]

#: (line, error code, text in the message) of each mistake in typo_program.py
EXPECTED_TYPOS = {
    (9, "attr-defined", '"Account" has no attribute "hots"'),
    (10, "call-arg", 'Unexpected keyword argument "hots" for "Account"'),
    (11, "arg-type", 'Argument "port" to "Account" has incompatible type "str"; expected "int"'),
    (12, "arg-type", 'Argument "auth_mech" to "Account" has incompatible type'),
    (13, "assignment", "variable has type \"Literal['smtp', 'lmtp']\""),
}

_ERROR = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): error: (?P<text>.*)  \[(?P<code>[a-z-]+)\]$")


def _doc_examples() -> dict[str, str]:
    """The ```python blocks of docs/typing.md, as doc_example_N.py."""
    text = (ROOT / "docs" / "typing.md").read_text()
    blocks = re.findall(r"^```python\n(.*?)^```$", text, flags=re.S | re.M)
    assert len(blocks) >= 2
    return {f"doc_example_{i}.py": block for i, block in enumerate(blocks)}


def _mypy(tmp_path: Path, *programs: str) -> tuple[int, list[str]]:
    config = tmp_path / "mypy.ini"
    config.write_text(f"[mypy]\nstrict = True\ncache_dir = {tmp_path / 'cache'}\n")
    work = tmp_path / "user"
    work.mkdir()
    examples = _doc_examples()
    for name in programs:
        if name in examples:
            (work / name).write_text(examples[name])
        else:
            shutil.copy(HERE / name, work / name)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(config), "--no-error-summary",
         *programs],
        cwd=work, capture_output=True, text=True, timeout=300,
    )
    assert not result.stderr.strip(), result.stderr
    return result.returncode, result.stdout.splitlines()


def test_mypy_strict_accepts_the_user_program_and_finds_each_typo(tmp_path: Path) -> None:
    status, lines = _mypy(tmp_path, "user_program.py", "typo_program.py", *_doc_examples())
    errors = [m for m in map(_ERROR.match, lines) if m]
    # the package itself reports nothing to its user, and the good program is clean
    assert all(m["file"] == "typo_program.py" for m in errors), "\n".join(lines)
    found = {(int(m["line"]), m["code"], m["text"]) for m in errors}
    for line, code, text in EXPECTED_TYPOS:
        assert any((fl, fc) == (line, code) and text in ft for fl, fc, ft in found), (
            line, code, text, lines)
    assert len(found) == len(EXPECTED_TYPOS), "\n".join(lines)
    assert status == 1


def test_py_typed_is_installed_with_the_package(tmp_path: Path) -> None:
    """PEP 561: without py.typed an installed package is ``Any`` to mypy."""
    copy = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "dropin.cache")
    shutil.copytree(ROOT / "msmtp_twisted", copy / "msmtp_twisted", ignore=ignore)
    shutil.copytree(ROOT / "twisted", copy / "twisted", ignore=ignore)
    for name in ("setup.py", "setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, copy / name)
    subprocess.run([sys.executable, "setup.py", "-q", "build_py", "-d", str(tmp_path / "lib")],
                   cwd=copy, check=True, capture_output=True, timeout=300)
    built = tmp_path / "lib" / "msmtp_twisted"
    assert (built / "py.typed").is_file()
    assert (built / "config" / "account_fields.py").is_file()


def test_the_doc_examples_run(tmp_path: Path) -> None:
    for name, code in _doc_examples().items():
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                cwd=tmp_path, timeout=60)
        assert result.returncode == 0, (name, result.stderr)
