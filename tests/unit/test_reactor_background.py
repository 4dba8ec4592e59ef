"""``run_until_done`` with the reactor already running in another thread (issue
12: msmtpq sends many mails in one process; a daemon's worker threads later):
the job runs there, failures come back as values, and the command's blocking
name resolver is not installed on a reactor others share.  In a child process:
the global reactor cannot be restarted."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

_CHILD = r'''
import threading
from twisted.internet import defer
from msmtp_twisted.protocol import reactor as r

thread = r.run_in_background()
from twisted.internet import reactor
assert reactor.running and not r.reactor_is_shared()
before = reactor.nameResolver
seen = []

def job(value):
    def start(reactor_):
        seen.append(threading.current_thread().name)
        return defer.succeed(value)
    return start

def failing(reactor_):
    return defer.fail(ValueError("as a value"))

assert [r.run_until_done(job(n)) for n in range(3)] == [0, 1, 2]
assert seen == ["reactor"] * 3
error = r.run_until_done(failing)
assert isinstance(error, ValueError) and str(error) == "as a value"
assert r.reactor_is_shared()

# the command's session start on a shared reactor keeps the reactor's resolver
from msmtp_twisted.config.account import Account
from msmtp_twisted.modes.common import run_account_session
from msmtp_twisted.errors import ConnectFailure
account = Account()
account.set("host", "127.0.0.1")
account.set("port", 9)
account.set("tls", False)
outcome = run_account_session(account, None)
assert isinstance(outcome, ConnectFailure), outcome
assert reactor.nameResolver is before, reactor.nameResolver
r.stop_background(thread)
assert not thread.is_alive()
print("ok")
'''


def test_jobs_run_on_a_reactor_in_another_thread() -> None:
    res = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True,
                         timeout=60, cwd=ROOT)
    assert res.stdout.strip() == "ok", res.stderr
