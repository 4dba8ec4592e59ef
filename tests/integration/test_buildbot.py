"""Buildbot's MailNotifier sending through an msmtprc account (msmtp_twisted.buildbot).

With the real ``buildbot`` package from PyPI (the ``[buildbot]`` extra) and a real
master: ``buildbot create-master`` in a temporary directory, a master.cfg with a
LocalWorker (``buildbot-worker``, in the master's process), a builder whose one step
fails, a PBChangeSource, and one ``MsmtpMailNotifier`` per scenario, each with its
own msmtprc account and its own recording server on 127.0.0.1.  ``buildbot
sendchange`` (by "Dev One <dev@example.org>": the blamelist) starts one build; the
build's failure mail goes out through every notifier at once.  The master is run
once for the module (about 5 s); each test then reads what its server and the
master's twistd.log say.

Configuration errors are checked with ``buildbot checkconfig`` and in-process; the
docs/buildbot.md example is run through ``buildbot checkconfig``.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import re
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import ROOT, ours_env, require
from tests.servers.ports import free_port
from tests.servers.recording import HANG, RecordingServer
from tests.servers.tlspki import PKI

pytestmark = [pytest.mark.extras, pytest.mark.timeout(180)]

#: bound for each step of the master's life (start, build, mails, stop)
STEP_TIMEOUT = 60.0
BLAMED = "dev@example.org"
TEAM = "team@example.org"
SENDER = "buildbot@example.com"


def _require_buildbot() -> None:
    require(importlib.util.find_spec("buildbot") is not None
            and importlib.util.find_spec("buildbot_worker") is not None,
            "the [buildbot] extra and buildbot-worker: "
            "pip install -e '.[buildbot]' 'buildbot-worker>=4.2,<5' (./scripts/test does)")


def _env(home: Path) -> dict[str, str]:
    etc = home / "etc"  # no system msmtprc: MSMTP_SYSCONFDIR points at an empty directory
    etc.mkdir(exist_ok=True)
    return ours_env({"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
                     "MSMTP_SYSCONFDIR": str(etc)})


def _buildbot(args: list[str], *, cwd: Path, env: dict[str, str],
              timeout: float = STEP_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """The ``buildbot`` command of the Python running the tests."""
    return subprocess.run(
        [sys.executable, "-c", "from buildbot.scripts.runner import run; run()", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _write_rc(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    path.chmod(0o600)
    return path


# -- the master, once for the module ------------------------------------------------

#: master.cfg for the scenarios; {notifiers} is filled in per run
MASTER_CFG = """\
from buildbot.plugins import changes, schedulers, steps, util, worker
from msmtp_twisted.buildbot import MsmtpMailNotifier

c = BuildmasterConfig = {{}}
c['buildbotNetUsageData'] = None   # no usage report over the network
c['title'] = 'msmtp-twisted'  # longer titles warn, an error at reconfig in 4.2.0
c['buildbotURL'] = 'http://localhost:8010/'
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
c['protocols'] = {{'pb': {{'port': 'tcp:{pb_port}:interface=127.0.0.1'}}}}
c['workers'] = [worker.LocalWorker('local')]
c['change_source'] = [changes.PBChangeSource(user='change', passwd='changepw')]
c['schedulers'] = [schedulers.AnyBranchScheduler(
    name='on-change', treeStableTimer=None, builderNames=['trivial'])]
c['builders'] = [util.BuilderConfig(
    name='trivial', workernames=['local'],
    factory=util.BuildFactory([steps.ShellCommand(command=['false'])]))]
c['services'] = [
{notifiers}
]
"""


@dataclass
class MasterRun:
    basedir: Path
    servers: dict[str, RecordingServer]
    passwords: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)
    log: str = ""

    def outcome(self, account: str) -> str:
        """The notifier's one line about the mail sent through ``account``."""
        found = [line for line in _outcomes(self.log)
                 if re.search(rf" sent through msmtp account {account}: ", line)]
        assert len(found) == 1, f"{account}: {found}\n{self.log[-3000:]}"
        return found[0]


def _outcomes(log: str) -> list[str]:
    """The notifiers' lines about each mail (sent or not)."""
    return re.findall(r"^.*MsmtpMailNotifier: mail to .* sent through msmtp account .*$",
                      log, re.MULTILINE)


class Master:
    """A real Buildbot master in ``home/master`` (see MASTER_CFG), run with twistd."""

    def __init__(self, home: Path, notifiers: str) -> None:
        self.home = home
        self.env = _env(home)
        self.basedir = home / "master"
        self.logfile = self.basedir / "twistd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        created = _buildbot(["create-master", "-q", str(self.basedir)], cwd=home, env=self.env)
        assert created.returncode == 0, created.stdout + created.stderr
        self.pb_port = free_port()
        (self.basedir / "master.cfg").write_text(
            MASTER_CFG.format(pb_port=self.pb_port, notifiers=notifiers))

    @property
    def log(self) -> str:
        return self.logfile.read_text() if self.logfile.exists() else ""

    def wait_for(self, predicate, what: str, timeout: float = STEP_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert self.proc is not None
            if self.proc.poll() is not None:
                pytest.fail(f"the master exited ({self.proc.returncode}) before {what}:\n"
                            + self.log[-4000:])
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} within {timeout} s:\n" + self.log[-4000:])
            time.sleep(0.1)

    @contextlib.contextmanager
    def running(self) -> Iterator[Master]:
        with open(self.basedir / "stdout.log", "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
                 "--nodaemon", "--no_save", "--pidfile=", "-y", "buildbot.tac"],
                cwd=self.basedir, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        try:
            self.wait_for(lambda: "BuildMaster is running" in self.log,
                          "'BuildMaster is running'")
            yield self
        finally:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)

    def sendchange(self, revision: str, who: str = f"Dev One <{BLAMED}>") -> None:
        """A change by ``who``: one build, whose blamelist is ``who``."""
        sent = _buildbot(["sendchange", "--master", f"127.0.0.1:{self.pb_port}",
                          "--auth", "change:changepw", "--who", who,
                          "--branch", "main", "--revision", revision,
                          "--comments", "a change", "file.c"], cwd=self.home, env=self.env)
        assert sent.returncode == 0, sent.stdout + sent.stderr

    def wait_for_outcomes(self, count: int) -> None:
        self.wait_for(lambda: len(_outcomes(self.log)) >= count,
                      f"{count} outcome line(s) from the notifiers")

    def reconfig(self) -> str:
        """What `buildbot reconfig` does (SIGHUP); returns how the update ended."""
        assert self.proc is not None
        ended = re.compile(r"^.*configuration update (complete|aborted.*) \(took",
                           re.MULTILINE)
        before = len(ended.findall(self.log))
        self.proc.send_signal(signal.SIGHUP)
        self.wait_for(lambda: len(ended.findall(self.log)) > before, "end of the reconfig")
        return ended.findall(self.log)[before]


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> PKI:
    maker = PKI(tmp_path_factory.mktemp("pki"))
    maker.root = maker.ca()
    maker.good = maker.leaf(maker.root)  # localhost and 127.0.0.1
    maker.wrong_name = maker.leaf(maker.root, "wrong.example", dns=["wrong.example"], ips=[])
    return maker


@pytest.fixture(scope="module")
def master_run(pki, tmp_path_factory) -> Iterator[MasterRun]:
    """One master, one build, one mail per scenario (see the module docstring)."""
    _require_buildbot()
    home = tmp_path_factory.mktemp("buildbot-home")
    passwords = {name: f"pw-{name}-{uuid.uuid4().hex}"
                 for name in ("tlsauth", "refusing", "wrongname")}
    users = {name: {"bb": pw} for name, pw in passwords.items()}
    with contextlib.ExitStack() as stack:
        servers = {
            # STARTTLS with AUTH: the mail arrives
            "tlsauth": RecordingServer(tls_context=pki.good.server_context(),
                                       auth=users["tlsauth"]),
            # the blamelist's one address is refused; the extra recipient is not
            "refusing": RecordingServer(tls_context=pki.good.server_context(),
                                        auth=users["refusing"],
                                        replies={f"RCPT:{BLAMED}": "550 5.1.1 no such user"}),
            # a certificate issued for another name: nothing may be sent
            "wrongname": RecordingServer(tls_context=pki.wrong_name.server_context(),
                                         auth=users["wrongname"]),
            # never greets: the notifier's timeout= ends the attempt
            "silent": RecordingServer(greeting=HANG, io_timeout=30),
        }
        for server in servers.values():
            stack.enter_context(server)
        run = MasterRun(home / "master", servers, passwords)
        rc_lines = []
        for name, server in servers.items():
            rc_lines.append(f"account {name}\nhost 127.0.0.1\nport {server.port}\n")
            if name != "silent":
                rc_lines.append(f"tls on\ntls_starttls on\ntls_trust_file {pki.root.cert}\n"
                                f"auth on\nuser bb\n")
            if name == "refusing":  # run at configuration time, like msmtp does
                rc_lines.append(f"passwordeval printf %s {passwords[name]}\n")
            elif name in passwords:
                rc_lines.append(f"password {passwords[name]}\n")
        rc = _write_rc(home / "msmtprc", "\n".join(rc_lines))

        started = time.monotonic()
        notifiers = "\n".join(
            f"    MsmtpMailNotifier(fromaddr={SENDER!r}, account={name!r}, msmtprc={str(rc)!r},"
            f" name={'notify-' + name!r}, extraRecipients=[{TEAM!r}]"
            + (", timeout=3" if name == "silent" else "") + "),"
            for name in servers)
        master = Master(home, notifiers)
        run.timings["create-master"] = time.monotonic() - started
        mark = time.monotonic()
        with master.running():
            run.timings["master start"] = time.monotonic() - mark
            mark = time.monotonic()
            master.sendchange("abc123")
            run.timings["sendchange"] = time.monotonic() - mark
            mark = time.monotonic()
            master.wait_for_outcomes(len(servers))
            run.timings["build and mails"] = time.monotonic() - mark
            mark = time.monotonic()
        run.timings["master stop"] = time.monotonic() - mark
        run.timings["total"] = time.monotonic() - started
        for server in servers.values():
            server.wait_idle(timeout=STEP_TIMEOUT)
        run.log = master.log
        print("buildbot master run timings (s):",
              {k: round(v, 2) for k, v in run.timings.items()})
        yield run


def _assert_never_sent(run: MasterRun, name: str) -> None:
    """``name``'s password is nowhere: not on the wire in any encoding, not in the log."""
    password = run.passwords[name]
    wire = run.servers[name].transcript
    for form in (password.encode(), base64.b64encode(password.encode()),
                 base64.b64encode(b"\0bb\0" + password.encode())):
        assert form not in wire
    assert password not in run.log


# -- build-result mails at real servers ----------------------------------------------


def test_build_failure_mail_over_starttls_with_auth(master_run: MasterRun) -> None:
    server = master_run.servers["tlsauth"]
    session = server.sessions[0]
    assert len(server.sessions) == 1
    assert session.tls
    assert session.auth == [("PLAIN", "bb", master_run.passwords["tlsauth"])]
    assert server.commands[:3] == ["EHLO localhost", "STARTTLS", "EHLO localhost"]
    message = server.message
    assert message.sender == SENDER
    assert sorted(message.recipients) == [BLAMED, TEAM]
    data = message.data_bytes().decode()
    head = data.split("\r\n\r\n", 1)[0] + "\r\n"
    assert f"\r\nFrom: {SENDER}\r\n" in head
    assert '\r\nTo: "=?utf-8?q?Dev_One?=" <dev@example.org>\r\n' in head
    assert f"\r\nCC: {TEAM}\r\n" in head
    assert "failed" in re.search(r"^Subject: (.*)$", head, re.MULTILINE)[1].lower()
    assert "Message-ID: <" in head  # added by msmtp's header handling, as for msmtp
    assert "A failed build has been detected on builder" in data
    assert "Blamelist: Dev One &lt;dev@example.org&gt;" in data \
        or "Blamelist: Dev One <dev@example.org>" in data
    line = master_run.outcome("tlsauth")
    assert " sent through msmtp account tlsauth: 250 " in line
    assert master_run.passwords["tlsauth"] not in master_run.log


def test_wrong_name_certificate_refused_nothing_sent(master_run: MasterRun) -> None:
    server = master_run.servers["wrongname"]
    assert server.commands == ["EHLO localhost", "STARTTLS"]
    assert server.transactions == []
    assert [s.auth for s in server.sessions] == [[]]
    _assert_never_sent(master_run, "wrongname")
    line = master_run.outcome("wrongname")
    assert line.endswith("NOT sent through msmtp account wrongname: TLS certificate "
                         "verification failed: The certificate is NOT trusted. The name in "
                         "the certificate does not match the expected. "), line


def test_refused_blamelist_recipient_others_still_get_the_mail(
        master_run: MasterRun) -> None:
    server = master_run.servers["refusing"]
    assert server.sessions[0].auth == [("PLAIN", "bb", master_run.passwords["refusing"])]
    assert [m.rejected_rcpt_to for m in server.transactions][:1] == [[f"<{BLAMED}>"]]
    assert [m.recipients for m in server.messages] == [[TEAM]]
    line = master_run.outcome("refusing")
    assert " sent through msmtp account refusing: 250 " in line, line


def test_refused_recipient_is_logged_in_one_line(master_run: MasterRun) -> None:
    """The mail went to the others; the refused address is named in the same line."""
    line = master_run.outcome("refusing")
    assert " sent through msmtp account refusing: 250 " in line, line
    assert "(refused: dev@example.org: 550 5.1.1 no such user)" in line, line


def test_silent_server_bounded_by_timeout(master_run: MasterRun) -> None:
    server = master_run.servers["silent"]
    assert server.transactions == []
    line = master_run.outcome("silent")
    assert "NOT sent through msmtp account silent:" in line, line
    assert "timed out" in line or "timeout" in line, line


def test_master_log_has_no_traceback_and_no_password(master_run: MasterRun) -> None:
    assert "Traceback" not in master_run.log, master_run.log[-4000:]
    for password in master_run.passwords.values():
        assert password not in master_run.log


def test_reconfig_reads_the_edited_msmtprc(tmp_path: Path) -> None:
    """`buildbot reconfig` with master.cfg unchanged: a broken msmtprc is a config
    error there (the running notifier keeps its account); a fixed one that points
    elsewhere is used for the next mail."""
    _require_buildbot()
    rc = tmp_path / "msmtprc"
    with RecordingServer() as first, RecordingServer() as second:
        _write_rc(rc, f"account ci\nhost 127.0.0.1\nport {first.port}\n")
        master = Master(tmp_path, f"    MsmtpMailNotifier({SENDER!r}, account='ci', "
                                  f"msmtprc={str(rc)!r}),")
        with master.running():
            master.sendchange("rev1")
            master.wait_for_outcomes(1)
            _write_rc(rc, "account other\nhost 127.0.0.1\n")
            assert master.reconfig().startswith("aborted without making any changes")
            assert f"MsmtpMailNotifier: msmtprc account 'ci' not found in {rc}" in master.log
            _write_rc(rc, f"account ci\nhost 127.0.0.1\nport {second.port}\n")
            assert master.reconfig() == "complete"
            master.sendchange("rev2")
            master.wait_for_outcomes(2)
        first.wait_idle(timeout=STEP_TIMEOUT)
        second.wait_idle(timeout=STEP_TIMEOUT)
        assert [sorted(m.recipients) for m in first.messages] == \
            [[BLAMED]]
        assert [sorted(m.recipients) for m in second.messages] == [[BLAMED]]
    assert "Traceback" not in master.log


def test_build_mail_through_postfix_submission(mailservers, tmp_path: Path) -> None:
    """A real MTA: Postfix's submission port (STARTTLS and AUTH required, SASL by
    Dovecot) delivers the build mail to the blamelist and the extra recipient."""
    _require_buildbot()
    token = uuid.uuid4().hex
    rc = _write_rc(tmp_path / "msmtprc", f"""\
        account submission
        host 127.0.0.1
        port {mailservers.submission_port}
        tls on
        tls_starttls on
        tls_trust_file {mailservers.ca_file}
        auth on
        user testuser
        password testpass
        from sender@example.com
        """)
    master = Master(tmp_path, f"    MsmtpMailNotifier(account='submission', "
                              f"msmtprc={str(rc)!r}, extraRecipients=['bob@example.com'], "
                              f"extraHeaders={{'X-Test-Token': {token!r}}}),")
    since = mailservers.postfix_log_size()
    with master.running():
        master.sendchange("rev1", who="Alice <alice@example.com>")
        master.wait_for_outcomes(1)
    line = _outcomes(master.log)[0]
    assert " sent through msmtp account submission: 250 2.0.0 Ok: queued as " in line, line
    for user in ("alice", "bob"):
        [mail] = mailservers.wait_for_mail(user, match=token.encode(), timeout=STEP_TIMEOUT)
        head = mail.split(b"\n\n", 1)[0] + b"\n"
        assert b"\nFrom: sender@example.com\n" in head  # fromaddr left out: the account's
        assert b"Return-Path: <sender@example.com>" in head
        assert b'To: "=?utf-8?q?Alice?=" <alice@example.com>\n' in head
        assert b"\nCC: bob@example.com\n" in head
        assert b"(using TLS" in head  # Postfix's Received: line notes TLS
    # Postfix logs the login that came with the mail
    mailservers.wait_for_postfix_log(r"sasl_method=\S+, sasl_username=testuser$", since,
                                     timeout=STEP_TIMEOUT)
    assert "testpass" not in master.log


# -- configuration errors: at `buildbot checkconfig`, not when a mail is due ----------

CHECK_CFG = """\
from buildbot.plugins import schedulers, steps, util, worker
from msmtp_twisted.buildbot import MsmtpMailNotifier

c = BuildmasterConfig = {{}}
c['buildbotNetUsageData'] = None
c['workers'] = [worker.Worker('w', 'pw')]
c['protocols'] = {{'pb': {{'port': 'tcp:0:interface=127.0.0.1'}}}}
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['b'])]
c['builders'] = [util.BuilderConfig(name='b', workernames=['w'],
                                    factory=util.BuildFactory([steps.ShellCommand(command='true')]))]
c['services'] = []
{services}
"""


def _checkconfig(tmp_path: Path, services: str,
                 name: str = "master") -> subprocess.CompletedProcess[str]:
    basedir = tmp_path / name
    basedir.mkdir()
    (basedir / "master.cfg").write_text(CHECK_CFG.format(services=services))
    return _buildbot(["checkconfig", str(basedir)], cwd=tmp_path, env=_env(tmp_path))


def test_checkconfig_reports_account_errors(tmp_path: Path) -> None:
    _require_buildbot()
    rc = _write_rc(tmp_path / "msmtprc", """\
        account noauth
        host 127.0.0.1
        account evalfails
        host 127.0.0.1
        auth on
        user bb
        passwordeval exit 3
        account nofrom
        host 127.0.0.1
        """)
    result = _checkconfig(tmp_path, textwrap.dedent(f"""\
        rc = {str(rc)!r}
        c['services'] += [
            MsmtpMailNotifier('a@example.com', account='missing', msmtprc=rc, name='n1'),
            MsmtpMailNotifier('a@example.com', account='evalfails', msmtprc=rc, name='n2'),
            MsmtpMailNotifier(account='nofrom', msmtprc=rc, name='n3'),
            MsmtpMailNotifier('a@example.com', account='noauth', msmtprc=rc, name='n4',
                              relayhost='smtp.example.com', useTls=True,
                              smtpUser='u', smtpPassword='p'),
            MsmtpMailNotifier('a@example.com', account='noauth',
                              msmtprc={str(tmp_path / 'nonexistent')!r}, name='n5'),
        ]
        """))
    out = result.stdout + result.stderr
    print(out)
    assert result.returncode != 0, out
    assert "Config file is good" not in out
    expected = [
        f"MsmtpMailNotifier: msmtprc account 'missing' not found in {rc}",
        "MsmtpMailNotifier: msmtprc account 'evalfails': cannot evaluate 'exit 3'",
        "MsmtpMailNotifier: no fromaddr= and msmtprc account 'nofrom' has no 'from'",
        "MsmtpMailNotifier: relayhost= is not used: msmtprc account 'noauth' says how "
        "to send (msmtprc: host); remove relayhost= from master.cfg",
        "MsmtpMailNotifier: useTls= is not used",
        "MsmtpMailNotifier: smtpUser= is not used",
        "MsmtpMailNotifier: smtpPassword= is not used",
        f"MsmtpMailNotifier: msmtprc account 'noauth': {tmp_path / 'nonexistent'}: "
        "No such file or directory",
    ]
    for text in expected:
        assert text in out, out
    assert "Traceback" not in out, out
    assert "'p'" not in out  # not even the refused password is echoed


def test_docs_master_cfg_example(tmp_path: Path) -> None:
    """The master.cfg lines of docs/buildbot.md, run by `buildbot checkconfig` with
    an account 'work' in ~/.msmtprc: the account is found and loaded."""
    _require_buildbot()
    doc = (ROOT / "docs" / "buildbot.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, re.DOTALL)
    example = next(b for b in blocks if "MsmtpMailNotifier(" in b)
    _write_rc(tmp_path / ".msmtprc", """\
        account work
        host smtp.example.com
        port 587
        tls on
        tls_starttls on
        auth on
        user buildbot
        passwordeval printf %s secret
        from buildbot@example.com
        """)
    result = _checkconfig(tmp_path, example)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Config file is good!" in result.stdout

    # the same lines without that account: the error names it
    _write_rc(tmp_path / ".msmtprc", "account other\nhost 127.0.0.1\n")
    result = _checkconfig(tmp_path, example, name="master2")
    assert result.returncode != 0
    assert "msmtprc account 'work' not found" in result.stdout + result.stderr


# -- in-process: options and their precedence ------------------------------------------


@pytest.fixture
def buildbot_config():
    _require_buildbot()
    from buildbot import config

    return config


def test_account_loaded_at_construction(buildbot_config, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from msmtp_twisted.buildbot import MsmtpMailNotifier

    monkeypatch.setenv("MSMTP_SYSCONFDIR", str(tmp_path))
    rc = _write_rc(tmp_path / "rc", "account ci\nhost 127.0.0.1\nfrom ci@example.com\n")
    notifier = MsmtpMailNotifier(account="ci", msmtprc=str(rc))
    assert notifier._loaded.host == "127.0.0.1"
    assert notifier._loaded.from_addr == "ci@example.com"
    with pytest.raises(buildbot_config.ConfigErrors) as raised:
        MsmtpMailNotifier("a@example.com", account="nope", msmtprc=str(rc))
    assert raised.value.errors == [
        f"MsmtpMailNotifier: msmtprc account 'nope' not found in {rc}"]
    with pytest.raises(buildbot_config.ConfigErrors) as raised:
        MsmtpMailNotifier("a@example.com", account="ci", msmtprc=str(rc), timeout=0)
    assert raised.value.errors == ["MsmtpMailNotifier: timeout must be a positive "
                                   "number of seconds"]
    with pytest.raises(TypeError):  # MailNotifier's own options are still checked
        MsmtpMailNotifier("a@example.com", account="ci", msmtprc=str(rc), nonsense=1)


def test_timeout_precedence(buildbot_config) -> None:
    from msmtp_twisted.buildbot import DEFAULT_TIMEOUT, _with_timeout
    from msmtp_twisted.config.account import Account

    account = Account("x")
    assert _with_timeout(account, None).timeout == DEFAULT_TIMEOUT  # msmtp's "off"
    assert account.timeout == 0  # the loaded account itself is left alone
    account.timeout = 20
    assert _with_timeout(account, None).timeout == 20
    assert _with_timeout(account, 5).timeout == 5
