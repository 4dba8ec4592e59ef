"""The package's layers (issue 11, item 1), read from the source with ``ast``:
every ``import`` counts, at module level, inside functions and under
``TYPE_CHECKING`` alike, so the structure cannot regress quietly.

- Nothing below the command line (the delivery layer, ``api``, ``protocol/``,
  ``net/``, ``tls/``, ``smtp/``, ``daemon/``, ...) imports ``modes/`` or ``cli.py``.
- ``modes/`` does not import ``cli.py`` (``cli.py`` imports the modes).
- ``net/`` and ``tls/`` do not depend on the SMTP client (``smtp/client.py``).
- ``smtp/`` (the sans-IO core) and ``errors.py`` import no Twisted, pyOpenSSL or
  zope; the pure TLS modules none at module level either.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "msmtp_twisted"

#: what the command line is made of: ``cli.py``, ``__main__`` and ``modes/``, and
#: ``msmtpq/``, which stands on msmtp's command line as a program of its own
COMMAND_LINE = ("msmtp_twisted.cli", "msmtp_twisted.__main__", "msmtp_twisted.modes",
                "msmtp_twisted.msmtpq")

TWISTED = ("twisted", "OpenSSL", "zope")


def _name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    return {_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _within(name: str, prefixes: tuple[str, ...] | str) -> bool:
    if isinstance(prefixes, str):
        prefixes = (prefixes,)
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@cache
def imports(module: str, *, top_level_only: bool = False) -> frozenset[str]:
    """Every module ``module`` imports (``from a import b`` counts as ``a`` and, when
    ``a.b`` is a module of ours, as ``a.b`` too)."""
    path = modules()[module]
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    nodes: list[ast.AST] = list(ast.walk(tree))
    if top_level_only:
        # module level, including ``if``/``try`` blocks there (not TYPE_CHECKING)
        nodes = []
        pending = list(tree.body)
        while pending:
            node = pending.pop()
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                pending.extend(node.orelse)
                continue
            nodes.append(node)
            if isinstance(node, (ast.If, ast.Try)):
                pending.extend(node.body + node.orelse + getattr(node, "finalbody", []))
                for handler in getattr(node, "handlers", []):
                    pending.extend(handler.body)
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            found.add(source)
            for alias in node.names:
                if f"{source}.{alias.name}" in modules():
                    found.add(f"{source}.{alias.name}")
    return frozenset(found)


def _offenders(importers: list[str], forbidden: tuple[str, ...],
               *, top_level_only: bool = False) -> list[str]:
    return sorted(
        f"{module} imports {target}"
        for module in importers
        for target in imports(module, top_level_only=top_level_only)
        if _within(target, forbidden)
    )


def test_the_walk_sees_the_package() -> None:
    # guards against a walk that finds nothing and so forbids nothing
    assert len(modules()) > 60
    assert "msmtp_twisted.modes.prepare" in imports("msmtp_twisted.cli")
    assert "msmtp_twisted.smtp.reply" in imports("msmtp_twisted.smtp.client")
    assert "twisted.internet" in imports("msmtp_twisted.protocol.session")


def test_nothing_below_the_command_line_imports_it() -> None:
    below = [m for m in modules() if not _within(m, COMMAND_LINE)]
    assert "msmtp_twisted.api" in below and "msmtp_twisted.sending.connection" in below
    assert _offenders(below, ("msmtp_twisted.modes", "msmtp_twisted.cli")) == []


def test_modes_do_not_import_the_command_line() -> None:
    modes = [m for m in modules() if _within(m, "msmtp_twisted.modes")]
    assert _offenders(modes, ("msmtp_twisted.cli",)) == []


@pytest.mark.parametrize("layer", ["msmtp_twisted.net", "msmtp_twisted.tls"])
def test_net_and_tls_do_not_depend_on_the_smtp_client(layer: str) -> None:
    inside = [m for m in modules() if _within(m, layer)]
    assert inside
    assert _offenders(inside, ("msmtp_twisted.smtp.client",)) == []


def test_sans_io_core_imports_no_twisted() -> None:
    pure = [m for m in modules() if _within(m, ("msmtp_twisted.smtp", "msmtp_twisted.errors"))]
    assert "msmtp_twisted.smtp.server" in pure
    assert _offenders(pure, TWISTED) == []


@pytest.mark.parametrize("module", [
    "msmtp_twisted.tls",
    "msmtp_twisted.tls.options",
    "msmtp_twisted.tls.priorities",
    "msmtp_twisted.tls.text",
    "msmtp_twisted.sending",
    "msmtp_twisted.sending.mail",
    "msmtp_twisted.modes.invocation",
    "msmtp_twisted.net.description",
])
def test_light_modules_load_no_twisted_when_imported(module: str) -> None:
    assert _offenders([module], TWISTED, top_level_only=True) == []


def test_the_queue_is_pure_and_below_msmtpq() -> None:
    # msmtp_twisted.queue is called from the command line and, in a thread,
    # from the daemon: blocking file I/O, no Twisted, nothing from above
    queue = [m for m in modules() if _within(m, "msmtp_twisted.queue")]
    assert "msmtp_twisted.queue.spool" in queue
    assert _offenders(queue, TWISTED) == []
    assert _offenders(queue, ("msmtp_twisted.msmtpq",)) == []
