"""Packaging a user can trust (issue 13 item 5): the wheel's metadata says what
pyproject.toml says, ships the twistd plugin and ``py.typed``; the optional features
([keyring], [ldap]) fail with a clear message when their extra is missing; tox covers
every Python version the metadata declares; the lint tools are pinned."""

from __future__ import annotations

import configparser
import email
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.timeout(300)

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel ``pip wheel`` builds from a copy of the sources (so that the build's
    own build/ and egg-info never land in the checkout other tests run from)."""
    src = tmp_path_factory.mktemp("src")
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                            "--exclude-standard"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if not (ROOT / name).is_file():
            continue  # deleted in the work tree
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                           "--no-build-isolation", "--quiet", "-w", str(out), str(src)],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    (built,) = out.glob("msmtp_twisted-*.whl")
    return built


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as z:
        (name,) = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(z.read(name))


def test_wheel_metadata(wheel: Path) -> None:
    from msmtp_twisted import __version__

    meta = _metadata(wheel)
    assert meta["Name"] == "msmtp-twisted"
    assert meta["Version"] == __version__
    assert meta["License-Expression"] == "GPL-3.0-or-later"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert meta["Requires-Python"] == ">=3.11"
    requires = meta.get_all("Requires-Dist")
    plain = {re.split(r"[<>=!;\[ ]", r)[0].lower() for r in requires if "extra ==" not in r}
    # cryptography is imported directly (msmtp_twisted/tls/): declared, not borrowed
    # from pyOpenSSL's own requirements
    assert plain == {"twisted", "service-identity", "pyopenssl", "cryptography", "idna"}
    assert set(meta.get_all("Provides-Extra")) >= {
        "keyring", "ldap", "gssapi", "ntlm", "bench", "buildbot", "docs", "test"}
    for requirement, extra in (("keyring", "keyring"), ("ldap3", "ldap"),
                               ("sphinx", "docs"), ("myst-parser", "docs"),
                               ("pyspnego", "ntlm"), ("ruff==", "test"), ("mypy==", "test")):
        assert any(r.lower().startswith(requirement) and f'extra == "{extra}"' in r
                   for r in requires), (requirement, extra, requires)
    classifiers = meta.get_all("Classifier")
    assert "Framework :: Twisted" in classifiers


def test_wheel_contents(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        entry_points = next(z.read(n).decode() for n in names
                            if n.endswith(".dist-info/entry_points.txt"))
    assert "twisted/plugins/msmtp_twisted_plugins.py" in names
    # installed, either would overwrite Twisted's own
    assert "twisted/__init__.py" not in names and "twisted/plugins/__init__.py" not in names
    assert "msmtp_twisted/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any(n.startswith("tests/") for n in names)
    for script in ("msmtp =", "msmtpd =", "msmtpq =", "msmtp-queue ="):
        assert script in entry_points


def test_metadata_is_in_pyproject_only() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert not {"metadata", "options", "options.extras_require",
                "options.entry_points"} & set(cfg.sections())
    assert {"tool:pytest", "mypy"} <= set(cfg.sections())
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "msmtp_twisted.__version__"}


def test_tox_covers_the_declared_python_versions() -> None:
    declared = sorted(c.rsplit(" ", 1)[1] for c in PROJECT["classifiers"]
                      if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c))
    assert declared[0] == PROJECT["requires-python"].removeprefix(">=")
    tox = configparser.ConfigParser()
    tox.read(ROOT / "tox.ini")
    envlist = tox["tox"]["envlist"]
    braces = re.search(r"py\{([\d,]+)\}", envlist)
    assert braces is not None, envlist
    assert sorted(braces.group(1).split(",")) == [v.replace(".", "") for v in declared]
    assert "docs" in envlist and "sphinx-build -W" in tox["testenv:docs"]["commands"]


def test_lint_tools_are_pinned_alike() -> None:
    test_extra = PROJECT["optional-dependencies"]["test"]
    pins = {r.split("==")[0]: r for r in test_extra if "==" in r}
    assert set(pins) >= {"ruff", "mypy"}
    tox = configparser.ConfigParser()
    tox.read(ROOT / "tox.ini")
    assert pins["ruff"] in tox["testenv:lint"]["deps"].split()


def _without(modules: tuple[str, ...], code: str, tmp_path: Path,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a child Python where ``modules`` cannot be imported (as in a
    plain install without the extra), with no terminal and no D-Bus session."""
    prelude = ("import sys\n"
               f"for name in {modules!r}:\n"
               "    sys.modules[name] = None  # import fails; find_spec says None\n")
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("DBUS")}
    child_env.update({"HOME": str(tmp_path), "PYTHONPATH": str(ROOT),
                      "DBUS_SESSION_BUS_ADDRESS": f"unix:path={tmp_path}/no-bus",
                      **(env or {})})
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True,
                          text=True, timeout=60, env=child_env, cwd=tmp_path,
                          stdin=subprocess.DEVNULL, start_new_session=True)


KEYRING_MODULES = ("keyring", "secretstorage", "jeepney")


def test_version_says_no_key_ring_without_the_extra(tmp_path: Path) -> None:
    proc = _without(KEYRING_MODULES, "sys.argv = ['msmtp', '--version']\n"
                    "from msmtp_twisted.cli import console_main\nconsole_main()", tmp_path,
                    env={"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"})
    assert proc.returncode == 0, proc.stderr
    assert "Keyring support: none\n" in proc.stdout


def test_msmtpd_auth_without_the_keyring_extra_says_so(tmp_path: Path) -> None:
    proc = _without(KEYRING_MODULES, "sys.argv = ['msmtpd', '--auth=bob', '--port=1']\n"
                    "from msmtp_twisted.daemon.cli import console_main\nconsole_main()",
                    tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.endswith(
        ": cannot get password for (localhost, smtp, bob): no key ring support installed "
        "(pip install 'msmtp-twisted[keyring]'), and no terminal to ask on\n"), proc.stderr
    assert "Traceback" not in proc.stderr


def test_msmtpd_auth_ldap_without_the_ldap_extra_says_so(tmp_path: Path) -> None:
    proc = _without(("ldap3",), "sys.argv = ['msmtpd', '--port=1', "
                    "'--auth-ldap=ldap://127.0.0.1/uid=%u,dc=example,dc=org']\n"
                    "from msmtp_twisted.daemon.cli import console_main\nconsole_main()",
                    tmp_path)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert proc.stderr.endswith(
        "LDAP authentication needs the ldap3 package, which is not installed: "
        "pip install 'msmtp-twisted[ldap]'\n"), proc.stderr
