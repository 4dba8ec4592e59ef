"""The msmtprc command reference, rendered from the command table.

``python -m msmtp_twisted.config.reference > docs/commands.md`` regenerates the
documentation page; a test keeps the committed page in step with the table.
"""

from __future__ import annotations

from msmtp_twisted.config.commands import COMMANDS, SETTINGS, format_fingerprint

__all__ = ["render_reference"]


def _default(field: str | None) -> str:
    for setting in SETTINGS:
        if setting.field == field:
            value = setting.default
            if value is None:
                return "(not set)"
            if isinstance(value, bool):
                return "on" if value else "off"
            if isinstance(value, bytes):
                return format_fingerprint(value)
            return str(value)
    return ""


def _doc(field: str | None) -> str:
    for setting in SETTINGS:
        if setting.field == field:
            return setting.doc
    return "ignored"


def render_reference() -> str:
    lines = [
        "# msmtprc commands",
        "",
        "Generated from `msmtp_twisted/config/commands.py` by",
        "`python -m msmtp_twisted.config.reference`; do not edit by hand.",
        "",
        "An empty argument counts as `on` wherever `on` is accepted. Obsolete commands",
        "are still read and map onto the newer setting named in the last column.",
        "",
        "| command | argument | default | command-line option | sets |",
        "| --- | --- | --- | --- | --- |",
    ]
    for cmd in COMMANDS:
        options = [f"`--{name}`" for name in cmd.cli]
        if cmd.short:
            options.insert(0, f"`-{cmd.short}`")
        name = f"`{cmd.name}`" + "".join(f", `{a}`" for a in cmd.aliases)
        if cmd.obsolete:
            name += " (obsolete)"
        argument = cmd.kind.name.replace("|", "\\|") or "(none)"
        if cmd.kind.required:
            argument += " (required)"
        sets = f"{cmd.field}: {_doc(cmd.field)}" if cmd.field else "ignored"
        lines.append(
            f"| {name} | {argument} | {_default(cmd.field)} | {', '.join(options) or '-'} "
            f"| {sets} |"
        )
    lines += [
        "",
        "Commands with special syntax: `defaults` (no argument; may appear several",
        "times), `account NAME [: PARENT[,PARENT...]]`, and `eval COMMAND` (the line is",
        "replaced by the first line of the command's output).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_reference(), end="")
