"""msmtpd --queue: what an attempt's end means, and the option's checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from msmtp_twisted.daemon import options
from msmtp_twisted.daemon.command import PipeCommand
from msmtp_twisted.queue.outcome import Kind


def test_attempt_kind() -> None:
    from msmtp_twisted.daemon.queue import attempt_kind

    assert attempt_kind(0, None, None) is Kind.DELIVERED
    assert attempt_kind(0, None, "interrupted") is Kind.DELIVERED
    for code in (68, 69, 71, 74, 75, 76):
        assert attempt_kind(code, None, None) is Kind.TEMPORARY, code
    for code in (1, 64, 65, 77, 78, 126, 127):
        assert attempt_kind(code, None, None) is Kind.PERMANENT, code
    assert attempt_kind(None, 9, None) is Kind.TEMPORARY  # killed
    assert attempt_kind(None, 15, "timeout") is Kind.TEMPORARY
    assert attempt_kind(1, None, "interrupted") is Kind.TEMPORARY
    assert attempt_kind(None, None, None) is Kind.TEMPORARY  # never ran (no stdin)


def test_default_command_entries_hold_msmtps_arguments() -> None:
    from msmtp_twisted.daemon.queue import msmtp_prefix

    default = PipeCommand.parse(options.DEFAULT_COMMAND)
    prefix, is_default = msmtp_prefix(default)
    assert is_default
    argv = default.argv("a@x", ["b@y", "-oops"])
    assert argv[:len(prefix)] == prefix
    assert argv[len(prefix):] == ["-f", "a@x", "--", "b@y", "-oops"]
    assert msmtp_prefix(PipeCommand.parse("/bin/cat"))[1] is False


def test_queue_option(tmp_path: Path) -> None:
    settings = options.MsmtpdSettings()
    options.apply_option(settings, "queue", str(tmp_path / "q"))
    options.apply_option(settings, "queue-interval", "2.5")
    config = options.build_config(settings, inetd=False)
    assert config.queue_dir == str(tmp_path / "q")
    assert config.queue_interval == 2.5
    assert (tmp_path / "q" / "tmp").is_dir()
    with pytest.raises(options.SettingsError, match="--inetd"):
        options.build_config(settings, inetd=True)
    assert options.build_config(options.MsmtpdSettings(), inetd=False).queue_dir is None
