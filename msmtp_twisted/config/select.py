"""Choosing the account (manual section 3.3) and completing it for use.

``choose_account`` is pure: it gets the merged accounts, the command-line
account and the environment, and returns the account plus the informational
lines ``--pretend`` prints.  ``complete_account`` fills in derived defaults and
the ``%`` substitutions; it may run ``passwordeval`` and read ``/etc/mailname``.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from msmtp_twisted.config.account import Account, AccountError
from msmtp_twisted.config.files import LoadedConfig, sysconfdir
from msmtp_twisted.config.parser import ConfigError
from msmtp_twisted.errors import SelectError
from msmtp_twisted.text import sanitize

__all__ = [
    "SelectError",
    "Selection",
    "choose_account",
    "complete_account",
    "find_account_by_envelope_from",
]


def _ascii_lower(text: str) -> str:
    # strcasecmp folds ASCII letters only; str.lower() would also fold "Ä" and "K"
    return text.translate(_ASCII_LOWER)


_ASCII_LOWER = {c: c + 32 for c in range(65, 91)}


def _is_pattern(text: str) -> bool:
    return any(c in text for c in "?*[")


_CLASSES = {
    "alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "upper": "A-Z", "lower": "a-z",
    "space": " \\t\\n\\r\\f\\v", "blank": " \\t", "punct": re.escape(string.punctuation),
    "xdigit": "0-9A-Fa-f", "cntrl": "\\x00-\\x1f\\x7f", "print": "\\x20-\\x7e",
    "graph": "\\x21-\\x7e",
}


class _Invalid(Exception):
    """glibc's fnmatch(3) matches nothing with this pattern."""


def _bracket(pattern: str, i: int) -> tuple[str, int] | None:
    """Parse a bracket expression whose ``[`` is at ``i - 1``.

    Returns (regex, index after ``]``), or None when the bracket never closes
    and the ``[`` stands for itself; raises :class:`_Invalid` where glibc gives up.
    """
    n = len(pattern)
    j = i
    negate = j < n and pattern[j] in "!^"
    if negate:
        j += 1
    items: list[str] = []
    first = True
    saw_class = False
    while j < n:
        ch = pattern[j]
        if ch == "]" and not first:
            if not items:  # only reversed ranges: matches nothing (or anything, negated)
                return ("(?s:.)" if negate else "(?!)"), j + 1
            return f"[{'^' if negate else ''}{''.join(items)}]", j + 1
        first = False
        if ch == "[" and pattern.startswith(".", j + 1):
            raise _Invalid  # collating symbols: not supported by us, rare in addresses
        if ch == "[" and pattern.startswith(":", j + 1):
            end = pattern.find(":]", j + 2)
            if end >= 0:
                name = pattern[j + 2 : end]
                if name not in _CLASSES:
                    raise _Invalid
                items.append(_CLASSES[name])
                saw_class = True
                j = end + 2
                continue
        if ch == "\\":
            if j + 1 >= n:
                raise _Invalid
            j += 1
            ch = pattern[j]
        if j + 1 < n and pattern[j + 1] == "-" and j + 2 < n and pattern[j + 2] != "]":
            hi = pattern[j + 2]
            if hi == "\\":
                if j + 3 >= n:
                    raise _Invalid
                hi = pattern[j + 3]
                j += 1
            if ord(hi) >= ord(ch):
                items.append(f"{re.escape(ch)}-{re.escape(hi)}")
            j += 3
            continue
        if j + 1 == n - 1 and pattern[j + 1] == "-":
            raise _Invalid  # "[a-" never closes: glibc gives up
        items.append(re.escape(ch))
        j += 1
    if saw_class:
        raise _Invalid
    return None


def _glob_regex(pattern: str) -> str | None:
    """Translate an fnmatch(3) pattern (flags 0) to a regular expression, or None
    when glibc would match nothing with it.

    Unlike Python's fnmatch: ``\\`` escapes the next character, ``[^...]`` negates
    like ``[!...]``, POSIX classes such as ``[[:lower:]]`` work, and a ``[``
    that never closes matches itself, as in glibc.
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    try:
        while i < n:
            c = pattern[i]
            i += 1
            if c == "*":
                out.append("(?s:.*)")
            elif c == "?":
                out.append("(?s:.)")
            elif c == "\\":
                if i >= n:
                    return None
                out.append(re.escape(pattern[i]))
                i += 1
            elif c == "[":
                parsed = _bracket(pattern, i)
                if parsed is None:
                    out.append(re.escape("["))
                else:
                    regex, i = parsed
                    out.append(regex)
            else:
                out.append(re.escape(c))
    except _Invalid:
        return None
    return "".join(out) + r"\Z"


def _glob_match(pattern: str, text: str) -> bool:
    regex = _glob_regex(pattern)
    if regex is None:
        return False
    try:
        return re.match(regex, text) is not None
    except re.error:  # a pattern we cannot translate matches nothing
        return False


def find_account_by_envelope_from(accounts: Sequence[Account], address: str) -> Account | None:
    """The first account whose ``from`` matches ``address``.

    ``user+tag@dom`` matches an account for ``user@dom`` (case-insensitive); a
    ``from`` containing ``?``, ``*`` or ``[`` is a shell pattern; otherwise the
    comparison ignores case.  Mirrors msmtp's ``find_account_by_envelope_from``.
    """
    plus = address.find("+")
    at = address.find("@")
    for acc in accounts:
        acc_from = acc.from_addr
        if acc_from is None:
            continue
        if plus >= 0 and at >= 0 and "+" not in acc_from:
            acc_at = acc_from.find("@")
            if (
                acc_at >= 0
                and acc_at == plus
                and _ascii_lower(address[:plus]) == _ascii_lower(acc_from[:plus])
                and _ascii_lower(address[at:]) == _ascii_lower(acc_from[acc_at:])
            ):
                return acc
        elif _is_pattern(acc_from):
            if _glob_match(acc_from, address):
                return acc
        elif _ascii_lower(address) == _ascii_lower(acc_from):
            return acc
    return None


@dataclass
class Selection:
    account: Account
    info: list[str] = field(default_factory=list)


def choose_account(
    *,
    cmdline: Account,
    account_id: str | None,
    loaded: LoadedConfig | None,
    sendmail: bool,
    env: Mapping[str, str],
) -> Selection:
    """Pick the account as msmtp does and apply the command-line settings to it.

    ``loaded`` is None when ``--host`` was given (configuration files unused).
    """
    if loaded is None:
        return Selection(cmdline.copy(), ["using account specified on command line"])

    info: list[str] = []
    account: Account | None = None
    allow_env = False
    wanted = account_id
    if wanted is None:
        if cmdline.from_addr is not None:
            found = find_account_by_envelope_from(loaded.accounts, cmdline.from_addr)
            if found is not None:
                account = found.copy()
                info.append(
                    f"account chosen by envelope from address {cmdline.from_addr}: {account.id}"
                )
        if account is None:
            wanted = "default"
            info.append("falling back to default account")
            allow_env = True
    if account is None:
        assert wanted is not None
        found = loaded.find(wanted)
        if found is not None:
            account = found.copy()
    if account is None:
        email = env.get("EMAIL")
        server = env.get("SMTPSERVER")
        if allow_env and server is not None and (
            not sendmail or cmdline.from_addr is not None or email is not None
        ):
            fallback = cmdline.copy()
            if sendmail and cmdline.from_addr is None:
                fallback.from_addr = email
            fallback.host = server
            info.append("using environment variables EMAIL and SMTPSERVER")
            return Selection(fallback, info)
        files = [f for f in (loaded.system_file, loaded.user_file) if f]
        if len(files) == 2:
            where = f"in {files[0]} and {files[1]}"
        elif files:
            where = f"in {files[0]}"
        else:
            where = ": no configuration file available"
        sep = "" if where.startswith(":") else " "
        raise SelectError(f"account {wanted} not found{sep}{where}", info=info)

    overrides = cmdline
    if not account.allow_from_override and "from_addr" in cmdline.mask:
        overrides = cmdline.copy()
        overrides.mask.discard("from_addr")
    account.override(overrides)
    return Selection(account, info)


# --------------------------------------------------------------------------
# completing the chosen account


def username() -> str:
    for var in ("USER", "LOGNAME"):
        value = os.environ.get(var)
        if value is not None:
            return value
    try:
        return os.getlogin()
    except OSError:
        pass
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (KeyError, ImportError):
        return "unknown"


def hostname() -> str:
    value = os.environ.get("HOSTNAME")
    if value is not None:
        return value
    try:
        return os.uname().nodename or "localhost"
    except OSError:
        return "localhost"


def canonical_hostname(host: str) -> str:
    import socket

    try:
        infos = socket.getaddrinfo(host, None, 0, 0, 0, socket.AI_CANONNAME)
    except (OSError, UnicodeError):
        return host
    for info in infos:
        if info[3]:
            return info[3]
    return host


def _mailname() -> str:
    path = f"{sysconfdir().rstrip('/')}/mailname"
    try:
        with open(path, "rb") as f:
            line = f.readline(255)
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror}") from None
    text = line.decode("utf-8", "surrogateescape")
    if text.endswith("\n"):
        text = text[:-1]
    if text.endswith("\r"):
        text = text[:-1]
    if not text:
        raise ConfigError(f"{path}: Invalid argument")
    return sanitize(text)


def expand_patterns(text: str, *, expand_user: bool, header_from: str | None = None) -> str:
    """Substitute ``%M``, ``%U`` (when ``expand_user``), ``%H``, ``%C`` and ``%F``."""
    if "%M" in text:
        text = text.replace("%M", _mailname())
    if expand_user and "%U" in text:
        text = text.replace("%U", sanitize(username()))
    if "%H" in text or "%C" in text:
        host = sanitize(hostname())
        if "%C" in text:
            text = text.replace("%C", sanitize(canonical_hostname(host)))
        text = text.replace("%H", host)
    if header_from is not None and "%F" in text:
        text = text.replace("%F", sanitize(header_from))
    return text


def complete_account(
    account: Account,
    *,
    sendmail: bool,
    pretend: bool,
    header_from: str | None = None,
    evaluate: Callable[[str], str] | None = None,
) -> None:
    """Fill in defaults and substitutions, then check the account (msmtp's order).

    Raises :class:`SelectError` with msmtp's message and exit code.
    """
    if account.auth_mech is not None and account.password is None and account.passwordeval:
        from msmtp_twisted.config.parser import EvalError

        try:
            if evaluate is None:
                from msmtp_twisted.config.files import run_eval

                account.password = run_eval(account.passwordeval, check_status=True)
            else:
                account.password = evaluate(account.passwordeval)
        except EvalError as e:
            raise SelectError(str(e)) from None
    if account.port == 0:
        account.port = account.effective_port()
    if account.tls_trust_file is None and "tls_trust_file" not in account.mask:
        account.tls_trust_file = "system"
    if account.proxy_host and account.proxy_port == 0:
        account.proxy_port = 1080
    try:
        account.domain = expand_patterns(account.domain, expand_user=False)
        if sendmail and account.from_addr is not None:
            account.from_addr = expand_patterns(
                account.from_addr, expand_user=True, header_from=header_from
            )
    except ConfigError as e:
        raise SelectError(e.message) from None
    if sendmail and account.auto_from:
        local = username()
        account.from_addr = f"{local}@{account.maildomain}" if account.maildomain else local
    try:
        account.check(sendmail_mode=sendmail and not pretend)
    except AccountError as e:
        if account.id and account.conffile:
            raise SelectError(f"account {account.id} from {account.conffile}: {e}") from None
        raise SelectError(str(e)) from None
