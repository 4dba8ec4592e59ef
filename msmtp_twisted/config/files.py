"""Where configuration files live, reading them, and merging system and user accounts."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from msmtp_twisted import sysexits
from msmtp_twisted.config.account import Account
from msmtp_twisted.config.commands import expand_tilde, home_dir
from msmtp_twisted.config.parser import (
    MAX_LINE,
    ConfigError,
    EvalError,
    ParsedFile,
    parse_config,
)
from msmtp_twisted.limits import FILE_LIMIT, read_at_most

if TYPE_CHECKING:
    import subprocess

__all__ = [
    "LoadedConfig",
    "SYSCONFDIR_ENV",
    "load_accounts",
    "read_config_file",
    "run_eval",
    "sysconfdir",
    "system_config_path",
    "user_config_path",
]

#: Environment variable that overrides SYSCONFDIR (default ``/etc``), e.g. for tests
#: or a system file kept elsewhere.
SYSCONFDIR_ENV = "MSMTP_SYSCONFDIR"
DEFAULT_SYSCONFDIR = "/etc"


def sysconfdir() -> str:
    return os.environ.get(SYSCONFDIR_ENV) or DEFAULT_SYSCONFDIR


def _join(directory: str, name: str) -> str:
    if not directory or not directory.endswith("/"):
        return f"{directory}/{name}"
    return directory + name


def system_config_path() -> str:
    return _join(sysconfdir(), "msmtprc")


def user_config_path() -> str:
    """``~/.msmtprc`` if it exists, else ``$XDG_CONFIG_HOME/msmtp/config`` if that exists.

    When neither exists the ``~/.msmtprc`` name is returned, as msmtp does.
    """
    path = _join(home_dir(), ".msmtprc")
    if os.path.exists(path):
        return path
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = xdg if xdg is not None else expand_tilde("~/.config")
    candidate = _join(_join(base, "msmtp"), "config")
    if os.path.exists(candidate):
        return candidate
    return path


def run_eval(command: str, *, check_status: bool = False) -> str:
    """Run ``command`` with /bin/sh (the user's own config asks for it) and return its
    first output line without the line ending, as msmtp's ``eval`` does.

    ``check_status`` (``passwordeval``): a command that exits non-zero or is killed is
    an error, even if it printed something (msmtp 1.8.23 would use that output), and
    the command reads from /dev/null, never the mail on our standard input.

    Reading is bounded: a first line longer than :data:`~msmtp_twisted.limits.EVAL_LINE`
    bytes is an error, and after the first line at most
    :data:`~msmtp_twisted.limits.EVAL_DRAIN` bytes are read; then our end of the pipe
    is closed, as msmtp's ``pclose()`` closes it, and the exit status of a command
    cut off that way (``yes``) does not count.
    """
    import subprocess  # only configs using eval/passwordeval pay for it

    from msmtp_twisted.limits import EVAL_DRAIN, EVAL_LINE

    try:
        # argv[0] "sh", as popen(3) names it: the shell's own errors read "sh: 1: ..."
        # restore_signals=False: the command inherits SIGPIPE ignored, as from msmtp
        # (so `yes` cut off says "yes: standard output: Broken pipe" there and here)
        proc = subprocess.Popen(
            ["sh", "-c", command], executable="/bin/sh", stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL if check_status else None, restore_signals=False,
        )
    except OSError as e:
        raise EvalError(f"cannot evaluate '{command}': {e.strerror}") from None
    assert proc.stdout is not None
    cut = False
    with proc:
        first = proc.stdout.readline(EVAL_LINE + 1)
        too_long = len(first) > EVAL_LINE
        if check_status and not too_long:
            cut = _drain_until_exit(proc, EVAL_DRAIN)
        proc.stdout.close()
    if too_long:
        raise EvalError(
            f"cannot evaluate '{command}': output line longer than {EVAL_LINE} bytes")
    if check_status and not cut and proc.returncode != 0:
        if proc.returncode < 0:
            raise EvalError(f"cannot evaluate '{command}': killed by signal {-proc.returncode}")
        raise EvalError(f"cannot evaluate '{command}': exit status {proc.returncode}")
    if not first:
        raise EvalError(f"cannot read output of '{command}'")
    text = first.decode("utf-8", "surrogateescape")
    if text.endswith("\n"):
        text = text[:-1]
        if text.endswith("\r"):
            text = text[:-1]
    return text


def _drain_until_exit(proc: subprocess.Popen[bytes], limit: int) -> bool:
    """Read what the command still writes until it exits, so that it is never
    stuck writing and its exit status counts; True if it wrote more than
    ``limit`` bytes (then we stop reading).  Only until the command itself
    exits, as msmtp's ``pclose()`` waits: a process it left in the background
    (``cmd &``) may hold the pipe open for as long as it likes."""
    import select

    # (what the buffered reader took beyond the first line is out of the pipe
    # already: it needs no draining)
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    drained = 0
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while drained <= limit:
        if not poller.poll(50):
            if proc.poll() is not None:
                return False
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return False
        drained += len(chunk)
    return True


def _insecure_reason(path: str) -> str | None:
    """msmtp's ``check_secure``: files holding passwords must be ours and mode 0600 or less.

    msmtp 1.8.23 skips this for root; we do not, so a root-owned world-readable
    file with a password is refused too.
    """
    try:
        st = os.stat(path)
    except OSError as e:
        raise ConfigError(e.strerror or str(e), sysexits.EX_IOERR) from None
    if st.st_uid != os.geteuid():
        return "contains secrets and therefore must be owned by you"
    if st.st_mode & 0o177:
        return (
            "contains secrets and therefore must have no more than user "
            "read/write permissions"
        )
    return None


def _whole_lines(data: bytes) -> bytes:
    """``data`` without a last line that the end of the read may have cut (a
    500-byte piece without newline is what msmtp's fgets() sees of a longer line)."""
    tail = len(data) - (data.rfind(b"\n") + 1)
    return data[: len(data) - tail % MAX_LINE]


class CannotOpen(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def read_config_file(path: str, *, securitycheck: bool) -> ParsedFile:
    """Read and parse one file.

    Raises :class:`CannotOpen` when the file cannot be opened (callers decide
    whether that matters) and :class:`ConfigError` (message without the file
    name) for everything else.
    """
    try:
        with open(path, "rb") as f:
            try:
                data, more = read_at_most(f, FILE_LIMIT)
            except OSError:
                raise ConfigError("input error", sysexits.EX_IOERR) from None
    except IsADirectoryError:
        # C's fopen() opens a directory and the first read fails.
        raise ConfigError("input error", sysexits.EX_IOERR) from None
    except OSError as e:
        raise CannotOpen(e.strerror or str(e)) from None
    if more:
        # msmtp reads on line by line (for ever, given /dev/zero): report what it
        # would find in what we read, else that the file is too long
        parse_config(_whole_lines(data), path, evaluate=run_eval)
        raise ConfigError(f"file is longer than {FILE_LIMIT} bytes")
    parsed = parse_config(data, path, evaluate=run_eval)
    if securitycheck and parsed.contains_secrets:
        reason = _insecure_reason(path)
        if reason:
            raise ConfigError(reason)
    return parsed


@dataclass
class LoadedConfig:
    accounts: list[Account] = field(default_factory=list)
    system_file: str | None = None
    user_file: str | None = None
    #: Lines ``--pretend``/``--debug`` print about which files were read.
    info: list[str] = field(default_factory=list)

    def find(self, name: str) -> Account | None:
        for acc in self.accounts:
            if acc.id == name:
                return acc
        return None


def _load(path: str, which: str, *, securitycheck: bool, required: bool,
          info: list[str]) -> ParsedFile | None:
    """One configuration file, or None if it cannot be opened and is not
    ``required``; errors name the file."""
    try:
        parsed = read_config_file(path, securitycheck=securitycheck)
    except CannotOpen as e:
        if required:
            raise ConfigError(f"{path}: {e.reason}", sysexits.EX_IOERR) from None
        info.append(f"ignoring {which} configuration file {path}: {e.reason}")
        return None
    except ConfigError as e:
        raise ConfigError(f"{path}: {e.message}", e.exitcode) from None
    info.append(f"loaded {which} configuration file {path}")
    return parsed


def load_accounts(user_file: str | None, info: list[str] | None = None) -> LoadedConfig:
    """Read the system file and the user file (``-C`` given or default) and merge them.

    User accounts come first and replace system accounts of the same name, so
    that ``--from`` picks the first matching account as msmtp does.  Raises
    :class:`ConfigError` with the file name in the message.  The lines
    ``--pretend`` prints about the files go to ``info`` (also when failing).
    """
    loaded = LoadedConfig(info=info if info is not None else [])
    system_path = system_config_path()
    system = _load(system_path, "system", securitycheck=False, required=False,
                   info=loaded.info)
    if system is not None:
        loaded.system_file = system_path
    user_path = user_file if user_file is not None else user_config_path()
    # A file named with -C must exist; the default user file need not.
    user = _load(user_path, "user", securitycheck=True, required=user_file is not None,
                 info=loaded.info)
    if user is not None:
        loaded.user_file = user_path
    system_accounts = system.accounts if system is not None else []
    user_accounts = user.accounts if user is not None else []

    user_names = {a.id for a in user_accounts}
    loaded.accounts = user_accounts + [a for a in system_accounts if a.id not in user_names]
    return loaded
