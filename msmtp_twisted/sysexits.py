"""Exit codes from sysexits.h, as msmtp uses them for its exit status and log lines."""

from __future__ import annotations

EX_OK = 0
EX_USAGE = 64
EX_DATAERR = 65
EX_NOINPUT = 66
EX_NOUSER = 67
EX_NOHOST = 68
EX_UNAVAILABLE = 69
EX_SOFTWARE = 70
EX_OSERR = 71
EX_OSFILE = 72
EX_CANTCREAT = 73
EX_IOERR = 74
EX_TEMPFAIL = 75
EX_PROTOCOL = 76
EX_NOPERM = 77
EX_CONFIG = 78

_NAMES = {value: name for name, value in globals().items() if name.startswith("EX_")}


def exitcode_name(code: int) -> str:
    """The symbolic name msmtp writes in its log line (``exitcode=EX_...``)."""
    return _NAMES.get(code, "EX_UNKNOWN")
