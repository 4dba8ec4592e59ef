"""Test servers started by the tests themselves (127.0.0.1, random port, or a unix
socket), each in background threads with bounded timeouts.

* ``recording.RecordingServer`` -- scriptable SMTP/LMTP server recording every byte;
* ``hostile`` -- servers misbehaving on purpose (garbage, silence, drops, huge replies);
* ``proxy.DelayProxy`` -- TCP proxy adding latency and counting round trips;
* ``fixtures`` -- pytest fixtures (``pytest_plugins = ["tests.servers.fixtures"]``);
* ``msmtp`` -- write an msmtp config for a server and run an msmtp binary against it;
* ``msmtpd`` -- run msmtpd (ours, ``twistd -n msmtpd``, Debian's) with a recording pipe
  command and talk SMTP to it, or run its protocol in memory on a fake clock;
* ``slapd`` -- a real slapd with one user, for ``--auth-ldap``.

See ``MSMTP_OBSERVED.md`` for what the real msmtp 1.8.23 does against each of them.
"""

from tests.servers.recording import (
    CLOSE,
    DEFAULT_CAPABILITIES,
    HANG,
    Close,
    Command,
    Hang,
    Message,
    RecordingServer,
    Session,
)

__all__ = [
    "CLOSE", "Close", "Command", "DEFAULT_CAPABILITIES", "HANG", "Hang", "Message",
    "RecordingServer", "Session",
]
