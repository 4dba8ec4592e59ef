"""docs/commands.md is generated from the command table and must stay in step."""

from pathlib import Path

from msmtp_twisted.config.commands import COMMANDS
from msmtp_twisted.config.reference import render_reference

DOC = Path(__file__).resolve().parents[2] / "docs" / "commands.md"


def test_committed_reference_is_current() -> None:
    assert DOC.read_text() == render_reference(), (
        "regenerate: python -m msmtp_twisted.config.reference --write"
    )


def test_every_command_is_documented() -> None:
    text = render_reference()
    for cmd in COMMANDS:
        assert f"`{cmd.name}`" in text
