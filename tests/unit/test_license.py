"""The licence a user is told about is the one shipped: ``msmtp --version`` names
the GNU GPL, the package metadata says GPL-3.0-or-later, and LICENSE is its text."""

from __future__ import annotations

import io
import tomllib

from msmtp_twisted.modes.info import print_version
from msmtp_twisted.modes.invocation import Output
from tests.conftest import ROOT


def test_license_file_metadata_and_version_agree() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.split()[:6] == ["GNU", "GENERAL", "PUBLIC", "LICENSE", "Version", "3,"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "GPL-3.0-or-later"
    assert project["license-files"] == ["LICENSE"]
    out = io.BytesIO()
    print_version(Output("msmtp", out, io.BytesIO()))
    assert b"the GNU General Public License" in out.getvalue()
