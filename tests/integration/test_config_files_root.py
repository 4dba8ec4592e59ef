"""The permission check on a configuration file holding a password also applies to
root (needs root to give a file away: marked ``root``); the other cases are in
tests/unit/test_config_files.py."""

from __future__ import annotations

import os

import pytest

from msmtp_twisted.config.files import read_config_file
from msmtp_twisted.config.parser import ConfigError
from tests.conftest import require
from tests.unit.test_config_files import SECRET, _write

pytestmark = pytest.mark.root


def test_secret_file_must_be_owned_by_us_even_as_root(tmp_path) -> None:
    # msmtp 1.8.23 skips the check for root; we do not (docs/differences.md).
    require(os.geteuid() == 0, "root, to give the file away")
    path = _write(tmp_path / "rc", SECRET, 0o600)
    os.chown(path, 65534, 65534)
    with pytest.raises(ConfigError) as e:
        read_config_file(path, securitycheck=True)
    assert e.value.message == "contains secrets and therefore must be owned by you"
