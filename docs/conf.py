"""Sphinx configuration of the msmtp-twisted manual.

Build: ``sphinx-build -W --keep-going -b html docs build/html`` (the ``[docs]`` extra;
``./scripts/test`` and tests/integration/test_docs_build.py run it with warnings as
errors).  The pages are Markdown (MyST).  The msmtprc command reference and the
msmtp/msmtpd option references are written into ``docs/_generated/`` at every build,
from the renderers of :mod:`msmtp_twisted.config.reference`: they are never edited
by hand, and never stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# the checkout's own package, also when it is not installed
sys.path.insert(0, str(HERE.parent))

from msmtp_twisted import __version__  # noqa: E402

project = "msmtp-twisted"
author = "the msmtp-twisted authors"
copyright = "the msmtp-twisted authors; GNU GPL version 3 or later"
version = release = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
]
source_suffix = {".md": "markdown"}
root_doc = "index"
# commands.md: the committed copy of _generated/commands.md, for reading on the
# forge; examples/: files the pages link to, not pages
exclude_patterns = ["_build", "commands.md", "examples", "README.md"]

# GitHub-style anchors (#every-difference-from-debians-msmtpd-1823) for the
# headings the pages link to
myst_heading_anchors = 4
myst_enable_extensions = ["colon_fence"]

html_theme = "alabaster"
html_title = f"msmtp-twisted {__version__}"
html_static_path: list[str] = []

# Autodoc imports the public modules.  Importing them must not install a reactor:
# twisted.mail.smtp (imported by the drop-in, protocol.compat) and Buildbot do,
# so the reactor module is stood in for while autodoc imports, and the build
# fails if a real one got installed anyway (_no_reactor).  Buildbot is an
# optional extra: its classes are stood in for, so the page builds without it.
autodoc_mock_imports = ["buildbot", "twisted.internet.reactor"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"show-inheritance": True}


def _generated_pages() -> dict[str, str]:
    from msmtp_twisted.config import reference

    pages = {"commands.md": reference.render_reference()}
    for name, title in (
        ("render_msmtp_options", "msmtp options"),
        ("render_msmtpd_options", "msmtpd options"),
    ):
        pages[f"{title.replace(' ', '-')}.md"] = getattr(reference, name)()
    return pages


def _write_generated(app: object, config: object) -> None:
    """Write docs/_generated/ (only the files whose text changed, so that an
    unchanged build stays incremental)."""
    out = HERE / "_generated"
    out.mkdir(exist_ok=True)
    for name, text in _generated_pages().items():
        path = out / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)


def _no_reactor(app: object, exception: BaseException | None) -> None:
    from sphinx.util import logging

    reactor = sys.modules.get("twisted.internet.reactor")
    if reactor is not None and type(reactor).__module__ != "sphinx.ext.autodoc.mock":
        logging.getLogger(__name__).warning(
            "importing the documented modules installed a reactor: %r", reactor)


def _msmtprc_lexer() -> type:
    """Highlighting for ```msmtprc blocks: a command, then its argument."""
    from pygments.lexer import RegexLexer, bygroups
    from pygments.token import Comment, Keyword, String, Whitespace

    class MsmtprcLexer(RegexLexer):
        name = "msmtprc"
        aliases = ["msmtprc"]
        tokens = {
            "root": [
                (r"[ \t]*#.*\n", Comment.Single),
                (r"([ \t]*)(\S+)", bygroups(Whitespace, Keyword), "argument"),
                (r"\s+", Whitespace),
            ],
            "argument": [
                (r"\n", Whitespace, "#pop"),
                (r"[^\n]+", String),
            ],
        }

    return MsmtprcLexer


def setup(app: object) -> None:
    app.add_lexer("msmtprc", _msmtprc_lexer())  # type: ignore[attr-defined]
    app.connect("config-inited", _write_generated)  # type: ignore[attr-defined]
    app.connect("build-finished", _no_reactor)  # type: ignore[attr-defined]
