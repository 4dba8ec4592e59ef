"""The aliases file: ``local: addr, addr`` lines replacing local recipients.

A local recipient is one without ``@``.  An alias may name other aliases (up
to 16 levels deep); ``default`` matches any local name not listed.  Unlike
msmtp 1.8.23 we keep the order of multi-address aliases and look up every
recipient, also the one that follows a replaced alias (both were bugs there).
"""

from __future__ import annotations

from msmtp_twisted.limits import RECIPIENTS

__all__ = ["AliasesError", "expand_aliases", "expand_aliases_file", "parse_aliases"]

MAX_LINE = 512
MAX_DEPTH = 16
_SPACE = " \t\n\v\f\r"


class AliasesError(Exception):
    pass


def is_local(address: str) -> bool:
    return address != "" and "@" not in address


def parse_aliases(data: bytes) -> dict[str, list[str]]:
    """Parse an aliases file; raise :class:`AliasesError` with msmtp's messages."""
    table: dict[str, list[str]] = {}
    lineno = 0
    pos = 0
    while pos < len(data):
        nl = data.find(b"\n", pos, pos + MAX_LINE - 1)
        raw = data[pos : nl + 1] if nl >= 0 else data[pos : pos + MAX_LINE - 1]
        pos += len(raw)
        lineno += 1
        raw = raw.split(b"\0", 1)[0]
        if len(raw) == MAX_LINE - 1:
            raise AliasesError(f"line {lineno}: longer than {MAX_LINE - 1} characters")
        line = raw.decode("utf-8", "surrogateescape").split("#", 1)[0]
        parts = [p.strip(_SPACE) for p in line.split(":")]
        if len(parts) == 1 and parts[0] == "":
            continue
        if len(parts) != 2:
            raise AliasesError(f"line {lineno}: single ':' delimiter expected")
        name, targets = parts
        if not is_local(name):
            raise AliasesError(f"line {lineno}: invalid alias '{name}'")
        if name in table:
            raise AliasesError(f"line {lineno}: duplicate alias '{name}'")
        table[name] = [t.strip(_SPACE) for t in targets.split(",")]
    return table


def _expand_one(name: str, table: dict[str, list[str]], depth: int, out: list[str]) -> None:
    if depth > MAX_DEPTH:
        raise RecursionError(name)
    targets = table.get(name)
    if targets is None:
        targets = table.get("default")
    if targets is None:
        out.append(name)
        return
    for target in targets:
        if len(out) >= RECIPIENTS:
            # aliases naming aliases many times over multiply: bound what they make
            raise AliasesError(f"more than {RECIPIENTS} recipients after expanding aliases")
        if is_local(target):
            _expand_one(target, table, depth + 1, out)
        else:
            out.append(target)


def expand_aliases(recipients: list[str], table: dict[str, list[str]]) -> list[str]:
    result: list[str] = []
    for rcpt in recipients:
        if not is_local(rcpt):
            result.append(rcpt)
            continue
        try:
            _expand_one(rcpt, table, 0, result)
        except RecursionError:
            raise AliasesError(f"Too many redirects when expanding alias {rcpt}.") from None
    return result


def expand_aliases_file(path: str, recipients: list[str]) -> list[str]:
    """Read ``path`` (only when some recipient is local) and expand the recipients."""
    if not any(is_local(r) for r in recipients):
        return recipients
    from msmtp_twisted.limits import FILE_LIMIT, read_file_at_most

    try:
        data, more = read_file_at_most(path, FILE_LIMIT)
    except IsADirectoryError:
        raise AliasesError("input error") from None
    except OSError as e:
        raise AliasesError(e.strerror or str(e)) from None
    if more:
        # msmtp reads on (for ever, given /dev/zero): report an error it would find
        # in what we read, else that the file is too long
        tail = len(data) - (data.rfind(b"\n") + 1)
        parse_aliases(data[: len(data) - tail % (MAX_LINE - 1)])
        raise AliasesError(f"file is longer than {FILE_LIMIT} bytes")
    return expand_aliases(recipients, parse_aliases(data))
