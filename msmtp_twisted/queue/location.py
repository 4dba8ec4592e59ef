"""Where the queue lives: ``--q-dir``/``--queue-dir`` beats ``$MSMTP_QUEUE``
(upstream msmtpq's variable), which beats ``$XDG_STATE_HOME/msmtp/queue``
(``~/.local/state/msmtp/queue`` when the variable is unset or not absolute)."""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["ENV_LOG", "ENV_QUEUE", "default_log", "default_queue_dir"]

ENV_QUEUE = "MSMTP_QUEUE"
ENV_LOG = "MSMTP_LOG"


def _home(env: Mapping[str, str]) -> str:
    home = env.get("HOME")
    if home:
        return home
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:
        return "/"


def default_queue_dir(env: Mapping[str, str]) -> str:
    """``$MSMTP_QUEUE``, else ``$XDG_STATE_HOME/msmtp/queue`` (by default
    ``~/.local/state/msmtp/queue``)."""
    queue = env.get(ENV_QUEUE)
    if queue:
        return queue
    state = env.get("XDG_STATE_HOME", "")
    if not os.path.isabs(state):  # the XDG spec: relative values are ignored
        state = os.path.join(_home(env), ".local", "state")
    return os.path.join(state, "msmtp", "queue")


def default_log(queue_dir: str, env: Mapping[str, str]) -> str | None:
    """The queue log: ``$MSMTP_LOG`` (``none`` or empty: no log), else ``log``
    in the queue directory."""
    value = env.get(ENV_LOG)
    if value is not None:
        return None if value in ("", "none") else value
    return os.path.join(queue_dir, "log")
