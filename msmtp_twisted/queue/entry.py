"""One queued mail's metadata (``ID.json`` next to the message ``ID.eml``).

The JSON object, version 1::

    {"version": 1, "id": "20261203-162745-4f3a9c0d12ab",
     "argv": ["-a", "work", "--", "bob@example.org"],   # msmtp's arguments, as given
     "cwd": "/home/alice",                               # where they were given
     "account": "work", "config": "/home/alice/.msmtprc",  # the account's, if known
     "from": "alice@example.org",                        # null when not known
     "recipients": ["bob@example.org"], "size": 1234,
     "created": 1796314065.2, "first_attempt": 1796314065.2,
     "last_attempt": 1796314065.9, "attempts": 1, "next_attempt": 1796314065.9,
     "last_error": "cannot connect to ...", "last_exitcode": 75}

``remaining`` (only present when set): the envelope recipients the mail is
still to go to, after an LMTP delivery that reached the others; a send then
uses it instead of the recipients ``argv`` (and, with ``-t``, the headers)
give, which still shape the headers.

Times are seconds since the epoch.  Anything that does not parse as this is
reported (:class:`BadEntry`) and left alone; unknown keys of a newer version
are kept when the entry is rewritten.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["VERSION", "BadEntry", "Entry", "new_id", "valid_id"]

VERSION = 1
#: the largest metadata file read: anything bigger is not ours
MAX_METADATA = 1024 * 1024

_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{12}\Z")


def new_id(now: float | None = None) -> str:
    """A new entry name: UTC time (sorts by age) and 48 random bits."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if now is None else now))
    return f"{stamp}-{os.urandom(6).hex()}"


def valid_id(text: str) -> bool:
    """Whether ``text`` names an entry (and so is safe as a file name)."""
    return bool(_ID.match(text))


class BadEntry(ValueError):
    """A metadata file that is not a version-1 entry."""


def _number(data: dict[str, Any], key: str, *, optional: bool = False) -> float | None:
    value = data.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadEntry(f"{key}: not a number")
    return float(value)


def _text(data: dict[str, Any], key: str, *, optional: bool = True) -> str | None:
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise BadEntry(f"{key}: not a string")
    return value


def _texts(data: dict[str, Any], key: str) -> list[str]:
    value = data.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadEntry(f"{key}: not a list of strings")
    return list(value)


def _remaining(data: dict[str, Any]) -> list[str] | None:
    if data.get("remaining") is None:
        return None
    remaining = _texts(data, "remaining")
    if not remaining:
        raise BadEntry("remaining: no recipient")
    return remaining


@dataclass
class Entry:
    id: str
    argv: list[str]
    cwd: str | None = None
    account: str | None = None
    #: the configuration file the account was read from (None: not known)
    config: str | None = None
    envelope_from: str | None = None
    recipients: list[str] = field(default_factory=list)
    size: int = 0
    created: float = 0.0
    first_attempt: float | None = None
    last_attempt: float | None = None
    attempts: int = 0
    next_attempt: float = 0.0
    last_error: str | None = None
    last_exitcode: int | None = None
    #: the envelope recipients still to send to (None: all those of argv and
    #: the headers); set after an LMTP delivery that reached the others
    remaining: list[str] | None = None
    #: keys this version does not know, kept as they were
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        data: dict[str, Any] = dict(self.extra)
        data.update({
            "version": VERSION,
            "id": self.id,
            "argv": self.argv,
            "cwd": self.cwd,
            "account": self.account,
            "config": self.config,
            "from": self.envelope_from,
            "recipients": self.recipients,
            "size": self.size,
            "created": self.created,
            "first_attempt": self.first_attempt,
            "last_attempt": self.last_attempt,
            "attempts": self.attempts,
            "next_attempt": self.next_attempt,
            "last_error": self.last_error,
            "last_exitcode": self.last_exitcode,
        })
        if self.remaining is not None:
            data["remaining"] = self.remaining
        return (json.dumps(data, ensure_ascii=True, indent=1) + "\n").encode("ascii")

    @classmethod
    def from_json(cls, raw: bytes, expected_id: str | None = None) -> Entry:
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise BadEntry(f"not JSON ({e})") from None
        if not isinstance(data, dict):
            raise BadEntry("not a JSON object")
        if data.get("version") != VERSION:
            raise BadEntry(f"unknown version {data.get('version')!r}")
        entry_id = _text(data, "id", optional=False)
        assert entry_id is not None
        if not valid_id(entry_id) or (expected_id is not None and entry_id != expected_id):
            raise BadEntry("id does not match the file name")
        attempts = _number(data, "attempts")
        size = _number(data, "size")
        exitcode = _number(data, "last_exitcode", optional=True)
        known = {"version", "id", "argv", "cwd", "account", "config", "from", "recipients", "size",
                 "created", "first_attempt", "last_attempt", "attempts", "next_attempt",
                 "last_error", "last_exitcode", "remaining"}
        return cls(
            id=entry_id,
            argv=_texts(data, "argv"),
            cwd=_text(data, "cwd"),
            account=_text(data, "account"),
            config=_text(data, "config"),
            envelope_from=_text(data, "from"),
            recipients=_texts(data, "recipients"),
            size=int(size or 0),
            created=_number(data, "created") or 0.0,
            first_attempt=_number(data, "first_attempt", optional=True),
            last_attempt=_number(data, "last_attempt", optional=True),
            attempts=int(attempts or 0),
            next_attempt=_number(data, "next_attempt") or 0.0,
            last_error=_text(data, "last_error"),
            last_exitcode=None if exitcode is None else int(exitcode),
            remaining=_remaining(data),
            extra={k: v for k, v in data.items() if k not in known},
        )
