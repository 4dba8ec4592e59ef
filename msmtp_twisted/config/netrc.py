"""``~/.netrc`` and ``SYSCONFDIR/netrc``: the last password source before a prompt.

The grammar is ftp(1)'s as msmtp reads it: whitespace-separated tokens
(``machine``, ``login``/``user``, ``password``/``passwd``, ``account``,
``macdef``, ``default``), single or double quotes grouping a token, ``#``
starting a comment, a ``macdef`` body running to the next empty line.  Entries
without a login are dropped, and ``default`` entries never match, as in msmtp.
Parsing never fails: what cannot be understood is skipped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from msmtp_twisted.limits import FILE_LIMIT, read_file_at_most

__all__ = ["NetrcEntry", "find_password", "parse_netrc", "search_netrc"]

_SPACE = " \t\n\v\f\r"


@dataclass(frozen=True)
class NetrcEntry:
    host: str | None
    login: str
    password: str | None


def _tokens(line: str) -> list[str]:
    tokens: list[str] = []
    i, n = 0, len(line)
    while i < n:
        while i < n and line[i] in _SPACE:
            i += 1
        if i >= n or line[i] == "#":
            break
        tok: list[str] = []
        quote = ""
        while i < n and (quote or line[i] not in _SPACE):
            c = line[i]
            if quote:
                if c == quote:
                    quote = ""
                else:
                    tok.append(c)
            elif c in "\"'":
                quote = c
            else:
                tok.append(c)
            i += 1
        tokens.append("".join(tok))
    return tokens


def parse_netrc(text: str) -> list[NetrcEntry]:
    entries: list[NetrcEntry] = []
    current: dict[str, str | None] | None = None
    expect: str | None = None  # the keyword whose value comes next
    in_macdef = False

    def close() -> None:
        if current is not None and current.get("login") is not None:
            entries.append(
                NetrcEntry(current.get("host"), current["login"] or "", current.get("password"))
            )

    for raw in text.splitlines():
        line = raw.rstrip(_SPACE)
        if not line:
            if in_macdef:
                in_macdef = False
            continue
        if in_macdef:
            continue
        for tok in _tokens(line):
            if expect is not None:
                if expect == "machine":
                    close()
                    current = {"host": tok, "login": None, "password": None}
                elif expect in ("login", "password") and current is not None:
                    current[expect] = tok
                elif expect == "macdef":
                    in_macdef = True
                expect = None
                if in_macdef:
                    break
                continue
            if tok == "default":
                close()
                current = {"host": None, "login": None, "password": None}
            elif tok in ("login", "user"):
                expect = "login"
            elif tok in ("password", "passwd"):
                expect = "password"
            elif tok in ("machine", "macdef", "account"):
                expect = tok
    close()
    return entries


def search_netrc(entries: list[NetrcEntry], host: str, login: str) -> NetrcEntry | None:
    for entry in entries:
        if entry.host is not None and entry.host == host and entry.login == login:
            return entry
    return None


def find_password(host: str, login: str, sysconfdir: str, home: str) -> str | None:
    """The password for ``login`` at ``host`` from ``~/.netrc``, then ``SYSCONFDIR/netrc``."""
    for path in (os.path.join(home, ".netrc"), os.path.join(sysconfdir, "netrc")):
        try:
            data, more = read_file_at_most(path, FILE_LIMIT)
        except OSError:
            continue
        if more:
            # msmtp reads on (for ever, given /dev/zero); we use the whole lines of
            # the first FILE_LIMIT bytes, never a password the limit cut short
            data = data[: data.rfind(b"\n") + 1]
        text = data.decode("utf-8", "surrogateescape")
        entry = search_netrc(parse_netrc(text), host, login)
        if entry is not None and entry.password is not None:
            return entry.password
    return None
