"""Generate :mod:`msmtp_twisted.config.account_fields` from the command table.

``python -m msmtp_twisted.config.fieldgen > msmtp_twisted/config/account_fields.py``
regenerates the module; tests/unit/test_account_fields.py fails when the
committed module and the table differ, so the typed :class:`Account` attributes
cannot drift from msmtprc.

A field's type is the union of the ``type`` of every :class:`Kind` that sets it
(its msmtprc commands and their command-line spellings) and of its default;
``Literal`` choices are merged.  Only used at development time: nothing imports
this module at run time.
"""

from __future__ import annotations

import ast
import sys

from msmtp_twisted.config.commands import COMMANDS, SETTINGS, Command, Kind

__all__ = ["field_type", "fits", "render_account_fields"]


def _atoms(type_text: str) -> list[str]:
    return [atom.strip() for atom in type_text.split(" | ")]


def _literal_values(atom: str) -> list[str] | None:
    if not atom.startswith("Literal[") or not atom.endswith("]"):
        return None
    values = ast.literal_eval("(" + atom[len("Literal[") : -1] + ",)")
    return [str(v) for v in values]


def fits(value: object, type_text: str) -> bool:
    """Whether ``value`` is of the type ``type_text`` (the few forms the table uses:
    ``str``, ``int``, ``float``, ``bool``, ``bytes``, ``None``, ``Literal[...]``
    and unions of them)."""
    for atom in _atoms(type_text):
        literal = _literal_values(atom)
        if literal is not None:
            if isinstance(value, str) and value in literal:
                return True
        elif atom == "None":
            if value is None:
                return True
        elif atom == "bool":
            if isinstance(value, bool):
                return True
        elif atom in ("int", "float"):
            # PEP 484's numeric tower: an int is a float; a bool is not a number here
            allowed = (int,) if atom == "int" else (int, float)
            if isinstance(value, allowed) and not isinstance(value, bool):
                return True
        elif atom in ("str", "bytes"):
            if type(value).__name__ == atom:
                return True
        else:
            raise ValueError(f"type {atom!r} is not one fieldgen understands")
    return False


def _kinds_of(field: str) -> list[tuple[Command, Kind]]:
    kinds: list[tuple[Command, Kind]] = []
    for command in COMMANDS:
        if command.field == field:
            kinds.append((command, command.kind))
            if command.cli_kind is not None:
                kinds.append((command, command.cli_kind))
    return kinds


def field_type(field: str) -> str:
    """The type of an account field, as Python source text."""
    kinds = _kinds_of(field)
    if not kinds:
        raise ValueError(f"no command sets the account field {field}")
    literal: list[str] = []
    others: list[str] = []
    for command, kind in kinds:
        if not kind.type:
            raise ValueError(f"the kind {kind.name!r} of command {command.name} has no type")
        for atom in _atoms(kind.type):
            values = _literal_values(atom)
            if values is not None:
                literal += [v for v in values if v not in literal]
            elif atom not in others:
                others.append(atom)
    atoms = ([f"Literal[{', '.join(repr(v).replace(chr(39), chr(34)) for v in literal)}]"]
             if literal else [])
    atoms += [a for a in others if a != "None"]
    if "None" in others:
        atoms.append("None")
    text = " | ".join(atoms)
    default = next(s.default for s in SETTINGS if s.field == field)
    if not fits(default, text):
        if default is None:
            text += " | None"
        else:
            raise ValueError(f"the default {default!r} of {field} is not of its type {text}")
    return text


def _commands_of(field: str) -> str:
    names = [c.name for c in COMMANDS if c.field == field and not c.obsolete]
    names = names or [c.name for c in COMMANDS if c.field == field]
    return ", ".join(names)


HEADER = '''\
"""The typed settings of an account: one attribute per msmtprc setting.

GENERATED from the command table (:data:`~msmtp_twisted.config.commands.SETTINGS`
and :data:`~msmtp_twisted.config.commands.COMMANDS`) by
``python -m msmtp_twisted.config.fieldgen > msmtp_twisted/config/account_fields.py``:
do not edit by hand.  tests/unit/test_account_fields.py fails when this module
and the table differ.

:class:`AccountFields` declares the attributes of
:class:`~msmtp_twisted.config.account.Account` (the values are set by its
``__init__``, from the table's defaults); ``AccountSettings`` types its keyword
arguments, for type checkers only (``if TYPE_CHECKING:``): building a TypedDict
at run time would cost msmtp's start-up a millisecond for nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

__all__ = ["AccountFields"]
'''


def render_account_fields() -> str:
    declarations: list[str] = []
    for setting in SETTINGS:
        doc = setting.doc or setting.field
        declarations += [
            f"    #: {doc} (msmtprc: {_commands_of(setting.field)}; default {setting.default!r})",
            f"    {setting.field}: {field_type(setting.field)}",
        ]
    out = [
        HEADER,
        "if TYPE_CHECKING:",
        "    from typing import TypedDict",
        "",
        "    class AccountSettings(TypedDict, total=False):",
        '        """The keyword arguments of ``Account(...)``: any of the settings."""',
        "",
        *("    " + line for line in declarations),
        "",
        "",
        "class AccountFields:",
        '    """The settings of an account, as attributes (msmtp\'s defaults unless set)."""',
        "",
        *declarations,
        "",
    ]
    text = "\n".join(out)
    # lines over ruff's limit: wrap the long Literal unions (auth, syslog)
    return "\n".join(_wrap(line) for line in text.split("\n"))


def _wrap(line: str, width: int = 100) -> str:
    if len(line) <= width:
        return line
    if line.lstrip().startswith("#:"):
        indent = line[: len(line) - len(line.lstrip())] + "#: "
        words = line.strip()[3:].split(" ")
        lines: list[str] = []
        current = ""
        for word in words:
            if current and len(indent) + len(current) + 1 + len(word) > width:
                lines.append(indent + current)
                current = word
            else:
                current = f"{current} {word}" if current else word
        lines.append(indent + current)
        return "\n".join(lines)
    indent = line[: len(line) - len(line.lstrip())]
    name, _, type_text = line.partition(": ")
    items = type_text.split(", ")
    inner = name + ": (\n"
    start = indent + "    "
    current = start
    for i, item in enumerate(items):
        piece = item + ("," if i < len(items) - 1 else "")
        if len(current) + len(piece) + 1 > width and current.strip():
            inner += current.rstrip() + "\n"
            current = start
        current += piece + " "
    inner += current.rstrip() + "\n" + indent + ")"
    return inner


if __name__ == "__main__":
    sys.stdout.write(render_account_fields())
