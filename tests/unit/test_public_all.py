"""``__all__`` of the public modules is complete and true, and msmtp_twisted.errors
is the one module of public exceptions (docs/twisted.md)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
import warnings
from types import ModuleType

import pytest

import msmtp_twisted.sending

#: the modules a library user imports (setup.cfg's [mypy] files checks the same)
PUBLIC = [
    "msmtp_twisted.api",
    "msmtp_twisted.errors",
    "msmtp_twisted.buildbot",
    "msmtp_twisted.config.account",
    "msmtp_twisted.config.account_fields",
    "msmtp_twisted.protocol.compat",
    "msmtp_twisted.protocol.compat_errors",
    "msmtp_twisted.smtp.client",
    "msmtp_twisted.smtp.reply",
    "msmtp_twisted.sending",
    *(f"msmtp_twisted.sending.{m.name}" for m in pkgutil.iter_modules(
        msmtp_twisted.sending.__path__)),
]


def _import(name: str) -> ModuleType:
    if name == "msmtp_twisted.buildbot":
        with warnings.catch_warnings():
            # Buildbot 4.3's own use of an API Twisted 26.10 deprecates
            warnings.simplefilter("ignore", DeprecationWarning)
            pytest.importorskip("buildbot.reporters.mail", reason="the [buildbot] extra")
    return importlib.import_module(name)


def _defined_here(module: ModuleType) -> list[str]:
    """The public names the module itself defines: classes, functions, and
    UPPER_CASE constants assigned in it (imported names are not its own)."""
    names = []
    for name, value in vars(module).items():
        if name.startswith("_") or isinstance(value, ModuleType):
            continue
        if inspect.isclass(value) or inspect.isfunction(value):
            if value.__module__ == module.__name__:
                names.append(name)
        elif name.isupper() and name in _assigned(module):
            names.append(name)
    return names


def _assigned(module: ModuleType) -> set[str]:
    import ast

    source = inspect.getsource(module)
    names: set[str] = set()
    for node in ast.parse(source).body:
        targets = (node.targets if isinstance(node, ast.Assign)
                   else [node.target] if isinstance(node, ast.AnnAssign) else [])
        for target in targets:
            if isinstance(target, ast.Name):
                names.add(target.id)
    return names


@pytest.mark.parametrize("name", PUBLIC)
def test_all_lists_every_public_name_and_only_existing_ones(name: str) -> None:
    module = _import(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert len(set(exported)) == len(exported), f"{name}.__all__ has duplicates"
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names what does not exist: {missing}"
    unlisted = [n for n in _defined_here(module) if n not in exported]
    assert not unlisted, f"{name} defines public names missing from __all__: {unlisted}"


def _exception_classes(module: ModuleType) -> list[type[BaseException]]:
    return [value for n in getattr(module, "__all__", ())
            if inspect.isclass(value := getattr(module, n)) and issubclass(value, BaseException)]


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_exception_is_in_errors(name: str) -> None:
    """An exception a public module exports is defined in, or re-exported by,
    msmtp_twisted.errors, under the same name."""
    import msmtp_twisted.errors as errors

    for cls in _exception_classes(_import(name)):
        assert getattr(errors, cls.__name__, None) is cls, (
            f"{name}.{cls.__name__} is not msmtp_twisted.errors.{cls.__name__}")
        assert cls.__name__ in errors.__all__


def test_the_exceptions_the_api_raises_are_in_errors() -> None:
    """What load_account and send_mail raise (their docstrings and the config
    modules they call) comes from msmtp_twisted.errors."""
    import msmtp_twisted.errors as errors
    from msmtp_twisted.config.parser import ConfigError
    from msmtp_twisted.config.select import SelectError
    from msmtp_twisted.net.socks import SOCKS5Error

    for cls in (ConfigError, SelectError, SOCKS5Error):
        assert getattr(errors, cls.__name__) is cls
    for cls in _exception_classes(errors):
        # each documented in the module docstring
        assert f":class:`{cls.__name__}`" in (errors.__doc__ or ""), cls


def test_errors_imports_no_twisted_until_a_compat_error_is_asked_for() -> None:
    code = (
        "import sys\n"
        "import msmtp_twisted.errors as e\n"
        "from msmtp_twisted.errors import ConfigError, SMTPFailure\n"
        "assert 'twisted' not in sys.modules, 'errors imported Twisted'\n"
        "from msmtp_twisted.errors import SMTPDeliveryError\n"
        "import twisted.mail.smtp as t\n"
        "assert issubclass(SMTPDeliveryError, t.SMTPDeliveryError)\n"
        "assert issubclass(SMTPDeliveryError, SMTPFailure)\n"
        "try:\n"
        "    e.NoSuchError\n"
        "except AttributeError:\n"
        "    pass\n"
        "else:\n"
        "    raise SystemExit('no AttributeError')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
