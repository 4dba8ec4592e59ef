"""Authentication (SASL) against a real Postfix 3.7 + Dovecot 2.3, compared with msmtp 1.8.23.

Postfix (``mailservers`` fixture, tests/servers/mailservers/) asks Dovecot to check
logins; Dovecot offers PLAIN LOGIN CRAM-MD5 DIGEST-MD5 SCRAM-SHA-1 SCRAM-SHA-256 for the
users testuser / "testpass" and alice / "alice secret".  Each case runs the real
msmtp and ours with the same configuration and the same mail (at the same time, except
on a terminal), and compares exit codes, messages, log files and what Postfix logged:
Postfix writes ``client=..., sasl_method=X, sasl_username=U`` for each mail sent after
a login, so the tests see which method each client really used.

Each run connects from its own loopback address (``source_ip 127.57.x.y``, the only
line in which the two configurations differ): Dovecot slows down every login from an
address that just failed (2, 4, 8, then 15 s; past 10 s Postfix gives up with "454
Temporary authentication failure"), and it keeps that penalty per address.  With one
address per run a wrong password costs only Dovecot's 2 s failure delay, and no test
(here or elsewhere in the session, all of which use 127.0.0.1) pays for another's
failures.  The wrong-password cases all run at once in one module fixture.

Every run is in a new session (``start_new_session=True``): no controlling terminal,
so a missing password can never turn into a prompt on the developer's terminal.  The
terminal tests give the client a pseudo-terminal of their own instead.

Deliberate differences (docs/differences.md, docs/auth.md) that the tests assert as
such: ``auth on`` with TLS (ours SCRAM-SHA-256, msmtp 1.8.23 PLAIN); ``-d`` shows
``[hidden]`` for the client's AUTH messages; a ``passwordeval`` command that exits
non-zero is an error for us.
"""

from __future__ import annotations

import base64
import concurrent.futures
import fcntl
import hashlib
import hmac
import itertools
import os
import pty
import re
import select
import subprocess
import termios
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ours_command, ours_env
from tests.servers.mailservers import MailServers, header, msmtprc, split_mail
from tests.servers.msmtp import MsmtpResult, new_token, run_msmtp

pytestmark = pytest.mark.timeout(120)

REAL = ["/usr/bin/msmtp"]
PASSWORDS = {"testuser": "testpass", "alice": "alice secret"}
#: wrong, but close (alice's keeps a space)
WRONG_PASSWORDS = {"testuser": "testpasss", "alice": "alice  secret"}
METHODS = ("plain", "login", "cram-md5", "digest-md5", "scram-sha-1", "scram-sha-256")
RUN_TIMEOUT = 30.0
#: a client that waits for a password that cannot come must not hang the test
NO_TTY_TIMEOUT = 20.0
FAILED = "msmtp: could not send mail (account default from CFG)"
REFUSED_535 = "msmtp: server message: 535 5.7.8 Error: authentication failed: (reason unavailable)"


# ------------------------------------------------------------------------ running
_ADDRESSES = itertools.count()


def _source_ip() -> str:
    """A loopback address no other run of this session has used."""
    n = next(_ADDRESSES)
    return f"127.57.{n // 250}.{n % 250 + 1}"


@dataclass
class Run(MsmtpResult):
    """One client run: exit code, output (config path -> CFG, its folder -> DIR,
    source address -> IP), the log file it wrote (if any) and its source address."""

    log: str = ""
    ip: str = ""


def _clean(text: str, cfg: Path, directory: Path, ip: str) -> str:
    return text.replace(str(cfg), "CFG").replace(str(directory), "DIR").replace(ip, "IP")


def _run(command: Sequence[str], directory: Path, args: Sequence[str] = (),
         mail: bytes = b"", *, env: Mapping[str, str] | None = None,
         home: Path | None = None, timeout: float = RUN_TIMEOUT, **settings: object) -> Run:
    """Run ``command -C DIR/msmtprc args...`` with ``mail`` on stdin, without a
    controlling terminal.  ``{dir}`` in ``args`` becomes ``directory``; a file
    ``DIR/log`` (``--logfile={dir}/log``) is read back into ``Run.log``."""
    directory.mkdir(parents=True, exist_ok=True)
    ip = _source_ip()
    cfg = msmtprc(directory, source_ip=ip, **settings)
    res = run_msmtp(command, cfg, [a.format(dir=directory) for a in args], input=mail,
                    timeout=timeout, env=ours_env(dict(env or {})), home=home or directory,
                    new_session=True)
    log_path = directory / "log"
    log = log_path.read_text() if log_path.exists() else ""
    return Run(res.returncode, _clean(res.stdout, cfg, directory, ip),
               _clean(res.stderr, cfg, directory, ip), res.seconds,
               log=_clean(log, cfg, directory, ip), ip=ip)


def _pair(tmp_path: Path, args: Sequence[str], mail: bytes = b"",
          **kwargs: object) -> tuple[Run, Run]:
    """The real msmtp and ours, at the same time, with the same settings."""
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        real = pool.submit(_run, REAL, tmp_path / "real", args, mail, **kwargs)
        ours = pool.submit(_run, ours_command(), tmp_path / "ours", args, mail, **kwargs)
        return real.result(), ours.result()


def _on_terminal(command: Sequence[str], directory: Path, args: Sequence[str], mail: bytes,
                 answer: bytes, **settings: object) -> tuple[Run, bytes]:
    """Run the client in a new session whose controlling terminal is a fresh
    pseudo-terminal; the mail comes through a pipe on stdin.  When the terminal shows
    something ending in ": " (the prompt), type ``answer``.  Returns the run and all
    the terminal showed."""
    directory.mkdir(parents=True, exist_ok=True)
    ip = _source_ip()
    cfg = msmtprc(directory, source_ip=ip, **settings)
    env = ours_env({"PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": str(directory)})
    master, slave = pty.openpty()
    mail_r, mail_w = os.pipe()
    os.write(mail_w, mail)  # small: fits into the pipe
    os.close(mail_w)

    def controlling_terminal() -> None:  # in the child, after setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    start = time.monotonic()
    try:
        proc = subprocess.Popen([*command, "-C", str(cfg), *args], stdin=mail_r,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                start_new_session=True, preexec_fn=controlling_terminal,
                                pass_fds=(slave,))
    finally:
        os.close(slave)
        os.close(mail_r)
    shown = bytearray()
    try:
        answered = False
        deadline = start + NO_TTY_TIMEOUT
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: nobody holds the terminal open any more
                    chunk = b""
                if not chunk:
                    break
                shown += chunk
                if not answered and shown.endswith(b": "):
                    os.write(master, answer)
                    answered = True
            elif proc.poll() is not None:
                break
        stdout, stderr = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        os.close(master)
    run = Run(proc.returncode, _clean(stdout.decode(errors="replace"), cfg, directory, ip),
              _clean(stderr.decode(errors="replace"), cfg, directory, ip),
              time.monotonic() - start, log="", ip=ip)
    return run, bytes(shown)


# ------------------------------------------------------------------------ Postfix
_SMTPD_LINE = re.compile(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ postfix/smtpd\[\d+\]: (.*)$",
                         re.MULTILINE)
_QUEUE_ID = re.compile(r"\b[0-9A-F]{6,}:")


def _session(servers: MailServers, since: int, ip: str, timeout: float = 10.0) -> list[str]:
    """What smtpd logged about the connection from ``ip``, once it ended: the client
    as ``CLIENT``, queue ids as ``QID:``, without the TLS line (its key exchange
    group differs between GnuTLS and OpenSSL)."""
    tag = f"[{ip}]"
    client = re.compile(r"[A-Za-z0-9.-]+\[" + re.escape(ip) + r"\]")
    deadline = time.monotonic() + timeout
    while True:
        lines = [m.group(1) for m in _SMTPD_LINE.finditer(servers.postfix_log(since))
                 if tag in m.group(1)]
        if any(line.startswith("disconnect from ") for line in lines):
            return [_QUEUE_ID.sub("QID:", client.sub("CLIENT", line)) for line in lines
                    if "TLS connection established" not in line]
        if time.monotonic() >= deadline:
            raise AssertionError(f"no finished session from {ip} in postfix.log after"
                                 f" {timeout} s:\n{servers.postfix_log(since)[-3000:]}")
        time.sleep(0.05)


def _connected(servers: MailServers, since: int, ip: str) -> bool:
    return f"[{ip}]" in servers.postfix_log(since)


def _sasl(session: list[str]) -> tuple[str, str] | None:
    """(method, user) of the login Postfix logged with the first mail, if any."""
    for line in session:
        found = re.search(r"client=CLIENT, sasl_method=(\S+), sasl_username=(\S+)$", line)
        if found:
            return found.group(1), found.group(2)
    return None


def _mail(token: str) -> bytes:
    return f"Subject: {token}\nTo: alice@example.com\n\nauth body {token}\n".encode()


def _delivered(servers: MailServers, token: str, count: int = 2) -> list[bytes]:
    mails = servers.wait_for_mail("alice", match=token.encode(), count=count)
    assert len(mails) == count, mails
    for mail in mails:
        assert split_mail(mail)[1] == f"auth body {token}\n".encode()
        assert header(mail, "Subject") == [token.encode()]
    return mails


def _tls(servers: MailServers, port: int | None = None) -> dict[str, object]:
    """Settings for STARTTLS to the submission port (STARTTLS and AUTH required)."""
    return {"port": port or servers.submission_port, "tls": True,
            "tls_trust_file": servers.ca_file}


def _log_line(log: str) -> str:
    """The log file's one line without its time stamp, message size (Message-ID
    formats differ on purpose) and queue id."""
    lines = log.splitlines()
    assert len(lines) == 1, log
    text = lines[0].split(" ", 3)[3]  # "Nov 26 19:41:32 host=..."
    text = re.sub(r" mailsize=\d+", " mailsize=N", text)
    return re.sub(r"queued as [0-9A-F]+", "queued as QID", text)


# ------------------------------------------------------------------------ secrets
def _b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def _exchange(debug: str, *, mask: bool = True) -> list[str]:
    """The AUTH exchange of a ``-d`` transcript: from ``--> AUTH`` to the server's
    final reply.  Server challenges become ``CHALLENGE``; with ``mask`` every
    non-empty client message becomes ``[hidden]``, as ours shows them."""
    lines = debug.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("--> AUTH ")]
    assert starts, debug[-2000:]
    out = []
    for line in lines[starts[0]:]:
        if line.startswith("<-- "):
            if line.startswith("<-- 334 ") and line != "<-- 334 ":
                out.append("<-- 334 CHALLENGE")
                continue
            out.append(line)
            if not line.startswith("<-- 334"):
                break
        elif mask and line.startswith("--> AUTH "):
            words = line.split(" ")
            out.append(" ".join(words[:3]) + (" [hidden]" if len(words) > 3 else ""))
        elif mask and line.startswith("--> ") and line != "--> ":
            out.append("--> [hidden]")
        else:
            out.append(line)
    return out


def _challenges(debug: str) -> list[bytes]:
    """The server's (decoded) AUTH challenges in a ``-d`` transcript."""
    return [base64.b64decode(line[8:]) for line in debug.splitlines()
            if line.startswith("<-- 334 ") and len(line) > 8]


def _scram_secrets(debug: str, method: str, user: str, password: str) -> list[str]:
    """Rebuild a successful SCRAM exchange from the server's messages in a ``-d``
    transcript (the client nonce is the part of the combined nonce for which the
    server's signature checks out) and return what must never be shown: the client
    proof, the client's final message and the client key, base64-encoded."""
    name = {"scram-sha-1": "sha1", "scram-sha-256": "sha256"}[method]
    challenges = _challenges(debug)
    [server_first] = [c for c in challenges if c.startswith(b"r=")]
    [server_final] = [c for c in challenges if c.startswith(b"v=")]
    attrs = dict(a.split(b"=", 1) for a in server_first.split(b","))
    nonce, salt, iterations = attrs[b"r"], base64.b64decode(attrs[b"s"]), int(attrs[b"i"])
    salted = hashlib.pbkdf2_hmac(name, password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", name).digest()
    stored_key = hashlib.new(name, client_key).digest()
    server_key = hmac.new(salted, b"Server Key", name).digest()
    signature = base64.b64decode(server_final[2:])
    for gs2 in (b"n,,", b"y,,"):
        without_proof = b"c=" + base64.b64encode(gs2) + b",r=" + nonce
        for split in range(1, len(nonce)):
            first_bare = b"n=" + user.encode() + b",r=" + nonce[:split]
            message = first_bare + b"," + server_first + b"," + without_proof
            if hmac.new(server_key, message, name).digest() != signature:
                continue
            client_signature = hmac.new(stored_key, message, name).digest()
            proof = bytes(a ^ b for a, b in zip(client_key, client_signature, strict=True))
            final = without_proof + b",p=" + base64.b64encode(proof)
            return [_b64(proof), _b64(final), _b64(client_key), _b64(salted)]
    raise AssertionError(f"cannot rebuild the {method} exchange from:\n{debug[-3000:]}")


def _cram_secrets(debug: str, user: str, password: str) -> list[str]:
    [challenge] = _challenges(debug)
    digest = hmac.new(password.encode(), challenge, "md5").hexdigest()
    return [digest, _b64(f"{user} {digest}")]


def _secrets(method: str, user: str, password: str, debug: str | None = None) -> list[str]:
    """Strings that would give the password away (for a successful exchange shown in
    ``debug``, also what the method derives from it)."""
    found = [password, _b64(password).rstrip("="), _b64(f"\0{user}\0{password}"),
             _b64(f"{user}\0{password}").rstrip("=")]
    if debug is not None and method.startswith("scram"):
        found += _scram_secrets(debug, method, user, password)
    if debug is not None and method == "cram-md5":
        found += _cram_secrets(debug, user, password)
    return found


def _assert_hidden(run: Run, secrets: Sequence[str]) -> None:
    for secret in secrets:
        for where, text in (("stdout", run.stdout), ("stderr", run.stderr), ("log", run.log)):
            assert secret not in text, f"{secret!r} shown on {where}"


# ========================================================== 1. each method, both users
@pytest.mark.parametrize("user", PASSWORDS)
@pytest.mark.parametrize("method", METHODS)
def test_method_with_right_password(mailservers, real_msmtp, tmp_path, method, user) -> None:
    token = new_token()
    since = mailservers.postfix_log_size()
    real, ours = _pair(tmp_path, ["alice@example.com"], _mail(token), auth=method, user=user,
                       password=PASSWORDS[user], **_tls(mailservers))
    assert real.result == (0, "", "")
    assert ours.result == real.result
    _delivered(mailservers, token)
    sessions = [_session(mailservers, since, run.ip) for run in (real, ours)]
    assert _sasl(sessions[0]) == (method.upper(), user)
    assert sessions[1] == sessions[0]
    assert sessions[0][-1] == ("disconnect from CLIENT ehlo=2 starttls=1 auth=1 mail=1 rcpt=1"
                               " data=1 quit=1 commands=8")


@pytest.fixture(scope="module")
def wrong_password_runs(mailservers, real_msmtp, tmp_path_factory):
    """All wrong-password cases at once (each waits ~2 s for Dovecot's failure
    delay), with ``-d`` and a log file: {(case, "real"|"ours"): Run}."""
    base = tmp_path_factory.mktemp("wrong-password")
    token = new_token()
    since = mailservers.postfix_log_size()
    cases: dict[str, tuple[list[str], dict[str, object]]] = {}
    for method in METHODS:
        for user in PASSWORDS:
            cases[f"{method}-{user}"] = (
                ["-d", "--logfile={dir}/log", "alice@example.com"],
                {"auth": method, "user": user, "password": WRONG_PASSWORDS[user]})
    cases["unknown-user"] = (["alice@example.com"],
                             {"auth": "plain", "user": "nosuchuser", "password": "testpass"})
    cases["rmqs"] = (["--rmqs=example.net"],
                     {"auth": "plain", "user": "testuser", "password": WRONG_PASSWORDS["testuser"]})
    cases["implicit-tls"] = (
        ["alice@example.com"],
        {"auth": "scram-sha-256", "user": "alice", "password": WRONG_PASSWORDS["alice"],
         **_tls(mailservers, mailservers.smtps_port), "tls_starttls": False})
    jobs = {}
    with concurrent.futures.ThreadPoolExecutor(2 * len(cases)) as pool:
        for case, (args, settings) in cases.items():
            settings = {**_tls(mailservers), **settings}
            for label, command in (("real", REAL), ("ours", ours_command())):
                jobs[case, label] = pool.submit(_run, command, base / case / label, args,
                                                _mail(token), **settings)
        runs = {key: job.result() for key, job in jobs.items()}
    return since, token, runs


@pytest.mark.parametrize("user", PASSWORDS)
@pytest.mark.parametrize("method", METHODS)
def test_method_with_wrong_password(wrong_password_runs, mailservers, method, user) -> None:
    since, token, runs = wrong_password_runs
    real, ours = runs[f"{method}-{user}", "real"], runs[f"{method}-{user}", "ours"]
    name = method.upper()
    assert (real.returncode, real.stderr.splitlines()) == (
        77, [f"msmtp: authentication failed (method {name})", REFUSED_535, FAILED])
    assert (ours.returncode, ours.stderr) == (real.returncode, real.stderr)
    assert _log_line(ours.log) == _log_line(real.log)
    assert "exitcode=EX_NOPERM" in _log_line(real.log)
    sessions = [_session(mailservers, since, run.ip) for run in (real, ours)]
    assert sessions[1] == sessions[0]
    assert (f"warning: CLIENT: SASL {name} authentication failed: (reason unavailable),"
            f" sasl_username={user}") in sessions[0]
    assert sessions[0][-1] == "disconnect from CLIENT ehlo=2 starttls=1 auth=0/1 commands=3/4"
    # -d: the same exchange, ours with the client's messages hidden
    assert _exchange(ours.stdout) == _exchange(real.stdout)
    assert _exchange(ours.stdout, mask=False) == _exchange(ours.stdout)
    _assert_hidden(ours, _secrets(method, user, WRONG_PASSWORDS[user]))
    assert mailservers.mail("alice", match=token.encode()) == []


def test_unknown_user(wrong_password_runs, mailservers) -> None:
    since, _, runs = wrong_password_runs
    real, ours = runs["unknown-user", "real"], runs["unknown-user", "ours"]
    assert (real.returncode, real.stderr.splitlines()) == (
        77, ["msmtp: authentication failed (method PLAIN)", REFUSED_535, FAILED])
    assert ours.result == real.result
    sessions = [_session(mailservers, since, run.ip) for run in (real, ours)]
    assert sessions[1] == sessions[0]


def test_rmqs_with_wrong_password(wrong_password_runs, mailservers) -> None:
    since, _, runs = wrong_password_runs
    real, ours = runs["rmqs", "real"], runs["rmqs", "ours"]
    # no "could not send mail" line: nothing was being sent
    assert (real.returncode, real.stderr.splitlines()) == (
        77, ["msmtp: authentication failed (method PLAIN)", REFUSED_535])
    assert ours.result == real.result
    sessions = [_session(mailservers, since, run.ip) for run in (real, ours)]
    assert sessions[1] == sessions[0]
    assert "etrn" not in sessions[0][-1]


def test_implicit_tls_with_wrong_password(wrong_password_runs, mailservers) -> None:
    since, token, runs = wrong_password_runs
    real, ours = runs["implicit-tls", "real"], runs["implicit-tls", "ours"]
    assert (real.returncode, real.stderr.splitlines()) == (
        77, ["msmtp: authentication failed (method SCRAM-SHA-256)", REFUSED_535, FAILED])
    assert ours.result == real.result
    sessions = [_session(mailservers, since, run.ip) for run in (real, ours)]
    assert sessions[1] == sessions[0]
    assert sessions[0][-1] == "disconnect from CLIENT ehlo=1 auth=0/1 commands=1/2"


def test_quoted_password_with_space(mailservers, real_msmtp, tmp_path) -> None:
    token = new_token()
    since = mailservers.postfix_log_size()
    real, ours = _pair(tmp_path, ["alice@example.com"], _mail(token), auth="scram-sha-1",
                       user="alice", password='"alice secret"', **_tls(mailservers))
    assert ours.result == real.result == (0, "", "")
    _delivered(mailservers, token)
    for run in (real, ours):
        assert _sasl(_session(mailservers, since, run.ip)) == ("SCRAM-SHA-1", "alice")


# ========================================================== 2. the automatic choice
@pytest.mark.parametrize("user", PASSWORDS)
def test_auth_on_with_tls_ours_scram_msmtp_plain(mailservers, real_msmtp, tmp_path,
                                                 user) -> None:
    """Documented difference: the manual's order puts SCRAM before PLAIN, 1.8.23
    takes PLAIN."""
    token = new_token()
    since = mailservers.postfix_log_size()
    real, ours = _pair(tmp_path, ["alice@example.com"], _mail(token), auth="on", user=user,
                       password=PASSWORDS[user], **_tls(mailservers))
    assert ours.result == real.result == (0, "", "")
    _delivered(mailservers, token)
    assert _sasl(_session(mailservers, since, real.ip)) == ("PLAIN", user)
    assert _sasl(_session(mailservers, since, ours.ip)) == ("SCRAM-SHA-256", user)


@pytest.mark.parametrize("user", PASSWORDS)
def test_auth_on_without_tls_both_scram(mailservers, real_msmtp, tmp_path, user) -> None:
    token = new_token()
    since = mailservers.postfix_log_size()
    real, ours = _pair(tmp_path, ["alice@example.com"], _mail(token), auth="on", user=user,
                       password=PASSWORDS[user], port=mailservers.smtp_notls_port)
    assert ours.result == real.result == (0, "", "")
    _delivered(mailservers, token)
    sessions = [_session(mailservers, since, run.ip) for run in (real, ours)]
    assert sessions[1] == sessions[0]
    assert _sasl(sessions[0]) == ("SCRAM-SHA-256", user)


@pytest.mark.parametrize("method", ["plain", "login"])
def test_explicit_clear_text_method_without_tls(mailservers, real_msmtp, tmp_path,
                                                method) -> None:
    """An explicit ``auth plain`` is used without TLS too (only ``auth on`` refuses
    to reveal the password)."""
    token = new_token()
    since = mailservers.postfix_log_size()
    real, ours = _pair(tmp_path, ["alice@example.com"], _mail(token), auth=method,
                       user="alice", password=PASSWORDS["alice"],
                       port=mailservers.smtp_notls_port)
    assert ours.result == real.result == (0, "", "")
    _delivered(mailservers, token)
    sessions = [_session(mailservers, since, run.ip) for run in (real, ours)]
    assert sessions[1] == sessions[0]
    assert _sasl(sessions[0]) == (method.upper(), "alice")
    assert sessions[0][-1] == ("disconnect from CLIENT ehlo=1 auth=1 mail=1 rcpt=1 data=1"
                               " quit=1 commands=6")


# ========================================================== 3. no AUTH, unknown method
@pytest.mark.parametrize("method", ["on", "plain", "scram-sha-256"])
def test_server_without_auth(mailservers, real_msmtp, tmp_path, method) -> None:
    """The main port offers AUTH only after STARTTLS: without TLS there is none."""
    token = new_token()
    since = mailservers.postfix_log_size()
    real, ours = _pair(tmp_path, ["alice@example.com"], _mail(token), auth=method,
                       user="testuser", password="testpass", port=mailservers.smtp_port)
    assert real.result == (69, "", "msmtp: the server does not support authentication\n"
                           + FAILED + "\n")
    assert ours.result == real.result
    sessions = [_session(mailservers, since, run.ip) for run in (real, ours)]
    assert sessions[1] == sessions[0]
    assert sessions[0] == ["connect from CLIENT",
                           "disconnect from CLIENT ehlo=1 quit=1 commands=2"]
    assert mailservers.mail("alice", match=token.encode()) == []


@pytest.mark.parametrize("method", ["ntlm", "external", "oauthbearer", "xoauth2", "gssapi"])
def test_method_not_offered(mailservers, real_msmtp, tmp_path, method) -> None:
    since = mailservers.postfix_log_size()
    real, ours = _pair(tmp_path, ["alice@example.com"], _mail(new_token()), auth=method,
                       user="testuser", password="testpass", **_tls(mailservers))
    assert real.result == (69, "", "msmtp: the server does not support authentication"
                           f" method {method.upper()}\n{FAILED}\n")
    assert ours.result == real.result
    sessions = [_session(mailservers, since, run.ip) for run in (real, ours)]
    assert sessions[1] == sessions[0]
    assert "auth=" not in sessions[0][-1] and "mail=" not in sessions[0][-1]


def test_no_user(mailservers, real_msmtp, tmp_path) -> None:
    real, ours = _pair(tmp_path, ["alice@example.com"], _mail(new_token()), auth="plain",
                       password="testpass", **_tls(mailservers))
    assert real.result == (69, "", "msmtp: authentication method PLAIN needs a user name\n"
                           + FAILED + "\n")
    assert ours.result == real.result


# ========================================================== 4. where the password comes from
@pytest.mark.parametrize("user", PASSWORDS)
def test_passwordeval(mailservers, real_msmtp, tmp_path, user) -> None:
    token = new_token()
    since = mailservers.postfix_log_size()
    real, ours = _pair(tmp_path, ["alice@example.com"], _mail(token), auth="plain", user=user,
                       passwordeval=f"echo {PASSWORDS[user]}", **_tls(mailservers))
    assert ours.result == real.result == (0, "", "")
    _delivered(mailservers, token)
    for run in (real, ours):
        assert _sasl(_session(mailservers, since, run.ip)) == ("PLAIN", user)


@pytest.mark.parametrize("command", [
    "printf testpass",                 # no line end
    r"printf 'testpass\r\n'",          # CRLF
    r"printf 'testpass\n\n'",          # an empty line after it
    r"printf 'testpass\nsecond line\n'",
], ids=["no-newline", "crlf", "empty-line-after", "two-lines"])
def test_passwordeval_output_forms(mailservers, real_msmtp, tmp_path, command) -> None:
    token = new_token()
    since = mailservers.postfix_log_size()
    real, ours = _pair(tmp_path, ["alice@example.com"], _mail(token), auth="plain",
                       user="testuser", passwordeval=command, **_tls(mailservers))
    assert ours.result == real.result == (0, "", "")
    _delivered(mailservers, token)
    for run in (real, ours):
        assert _sasl(_session(mailservers, since, run.ip)) == ("PLAIN", "testuser")


@pytest.mark.parametrize("order", ["password-first", "passwordeval-first"])
def test_password_beats_passwordeval(mailservers, real_msmtp, tmp_path, order) -> None:
    settings: dict[str, object] = {"password": "testpass", "passwordeval": "echo wrong"}
    if order == "passwordeval-first":
        settings = dict(reversed(settings.items()))
    token = new_token()
    real, ours = _pair(tmp_path, ["alice@example.com"], _mail(token), auth="plain",
                       user="testuser", **settings, **_tls(mailservers))
    assert ours.result == real.result == (0, "", "")
    _delivered(mailservers, token)


def test_passwordeval_without_output(mailservers, real_msmtp, tmp_path) -> None:
    since = mailservers.postfix_log_size()
    real, ours = _pair(tmp_path, ["alice@example.com"], _mail(new_token()), auth="plain",
                       user="testuser", passwordeval="true", **_tls(mailservers))
    assert real.result == (78, "", "msmtp: cannot read output of 'true'\n")
    assert ours.result == real.result
    # decided before connecting
    assert not _connected(mailservers, since, real.ip)
    assert not _connected(mailservers, since, ours.ip)


def test_passwordeval_failing_command(mailservers, real_msmtp, tmp_path) -> None:
    """Documented difference: a command that exits non-zero is an error for us;
    msmtp 1.8.23 only looks at what it printed."""
    since = mailservers.postfix_log_size()
    real, ours = _pair(tmp_path, ["alice@example.com"], _mail(new_token()), auth="plain",
                       user="testuser", passwordeval="false", **_tls(mailservers))
    assert real.result == (78, "", "msmtp: cannot read output of 'false'\n")
    assert ours.result == (78, "", "msmtp: cannot evaluate 'false': exit status 1\n")
    assert not _connected(mailservers, since, ours.ip)

    token = new_token()
    real, ours = _pair(tmp_path / "with-output", ["alice@example.com"], _mail(token),
                       auth="plain", user="testuser", passwordeval='"echo testpass; exit 3"',
                       **_tls(mailservers))
    assert real.result == (0, "", "")
    assert ours.result == (78, "", "msmtp: cannot evaluate 'echo testpass; exit 3':"
                           " exit status 3\n")
    _delivered(mailservers, token, count=1)


def test_passwordeval_shell_error(mailservers, real_msmtp, tmp_path) -> None:
    """The shell's own complaint reaches stderr as msmtp's popen(3) shows it (the
    shell is called "sh"); our own line then differs as documented."""
    real, ours = _pair(tmp_path, ["alice@example.com"], _mail(new_token()), auth="plain",
                       user="testuser", passwordeval="no-such-command-3141",
                       **_tls(mailservers))
    assert real.result == (78, "", "sh: 1: no-such-command-3141: not found\n"
                           "msmtp: cannot read output of 'no-such-command-3141'\n")
    assert ours.returncode == 78
    assert ours.stderr.splitlines()[1:] == [
        "msmtp: cannot evaluate 'no-such-command-3141': exit status 127"]
    assert ours.stderr.splitlines()[0] == real.stderr.splitlines()[0]


@pytest.mark.parametrize("user", PASSWORDS)
def test_command_line_auth_options(mailservers, real_msmtp, tmp_path, user) -> None:
    """``--auth``, ``--user`` and ``--passwordeval`` with an account that has no
    authentication settings."""
    token = new_token()
    since = mailservers.postfix_log_size()
    args = ["--auth=scram-sha-1", f"--user={user}", f"--passwordeval=echo {PASSWORDS[user]}",
            "alice@example.com"]
    real, ours = _pair(tmp_path, args, _mail(token), **_tls(mailservers))
    assert ours.result == real.result == (0, "", "")
    _delivered(mailservers, token)
    for run in (real, ours):
        assert _sasl(_session(mailservers, since, run.ip)) == ("SCRAM-SHA-1", user)


@pytest.mark.parametrize("args, expected", [
    (["--auth=off"], "msmtp: recipient address alice@example.com not accepted by the server\n"
     "msmtp: server message: 554 5.7.1 <alice@example.com>: Recipient address rejected:"
     " Access denied\n"),
    (["--user="], "msmtp: authentication method PLAIN needs a user name\n"),
    (["--passwordeval="], "msmtp: authentication method PLAIN needs a password\n"),
], ids=["auth-off", "no-user", "no-passwordeval"])
def test_command_line_overrides(mailservers, real_msmtp, tmp_path, args, expected) -> None:
    """Command-line options override (and empty ones unset) the account's."""
    real, ours = _pair(tmp_path, [*args, "alice@example.com"], _mail(new_token()), auth="plain",
                       user="testuser", passwordeval="echo testpass", **_tls(mailservers))
    assert real.result == (65 if args == ["--auth=off"] else 69, "", expected + FAILED + "\n")
    assert ours.result == real.result


def _netrc(directory: Path, text: str, name: str = ".netrc") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    path.chmod(0o600)
    return directory


@pytest.mark.parametrize("user, netrc", [
    ("testuser", "machine 127.0.0.1 login testuser password testpass\n"),
    ("alice", 'machine 127.0.0.1 login alice password "alice secret"\n'),
    ("testuser", "machine 127.0.0.1\n  login alice\n  password wrong\n"
                 "machine localhost login testuser password wrong\n"
                 "machine 127.0.0.1 login testuser password testpass\n"),
], ids=["plain", "quoted-with-space", "several-entries"])
def test_netrc_in_home(mailservers, real_msmtp, tmp_path, user, netrc) -> None:
    token = new_token()
    since = mailservers.postfix_log_size()
    home = _netrc(tmp_path / "home", netrc)
    real, ours = _pair(tmp_path, ["alice@example.com"], _mail(token), home=home,
                       auth="plain", user=user, **_tls(mailservers))
    assert ours.result == real.result == (0, "", "")
    _delivered(mailservers, token)
    for run in (real, ours):
        assert _sasl(_session(mailservers, since, run.ip)) == ("PLAIN", user)


@pytest.mark.parametrize("netrc", [
    "machine localhost login testuser password testpass\n",
    "machine 127.0.0.1 login alice password testpass\n",
    "default login testuser password testpass\n",
], ids=["other-host", "other-user", "default-entry"])
def test_netrc_entry_not_used(mailservers, real_msmtp, tmp_path, netrc) -> None:
    since = mailservers.postfix_log_size()
    home = _netrc(tmp_path / "home", netrc)
    real, ours = _pair(tmp_path, ["alice@example.com"], _mail(new_token()), home=home,
                       timeout=NO_TTY_TIMEOUT, auth="plain", user="testuser",
                       **_tls(mailservers))
    assert real.result == (69, "", "msmtp: authentication method PLAIN needs a password\n"
                           + FAILED + "\n")
    assert ours.result == real.result
    sessions = [_session(mailservers, since, run.ip) for run in (real, ours)]
    assert sessions[1] == sessions[0]
    assert "auth=" not in sessions[0][-1]


def test_sysconfdir_netrc_ours(mailservers, tmp_path) -> None:
    """SYSCONFDIR/netrc, SYSCONFDIR being $MSMTP_SYSCONFDIR (msmtp 1.8.23 would read
    /etc/netrc, which the tests leave alone), after ~/.netrc."""
    sysconf = _netrc(tmp_path / "etc", "machine 127.0.0.1 login testuser password testpass\n",
                     name="netrc")
    token = new_token()
    since = mailservers.postfix_log_size()
    ours = _run(ours_command(), tmp_path / "ours", ["alice@example.com"], _mail(token),
                env={"MSMTP_SYSCONFDIR": str(sysconf)}, auth="plain", user="testuser",
                **_tls(mailservers))
    assert ours.result == (0, "", "")
    _delivered(mailservers, token, count=1)
    assert _sasl(_session(mailservers, since, ours.ip)) == ("PLAIN", "testuser")

    # ~/.netrc comes first: with the right password there, a wrong one in
    # SYSCONFDIR/netrc does not matter
    _netrc(tmp_path / "etc", "machine 127.0.0.1 login testuser password wrong\n", name="netrc")
    home = _netrc(tmp_path / "home", "machine 127.0.0.1 login testuser password testpass\n")
    token = new_token()
    ours = _run(ours_command(), tmp_path / "ours2", ["alice@example.com"], _mail(token),
                env={"MSMTP_SYSCONFDIR": str(sysconf)}, home=home, auth="plain",
                user="testuser", **_tls(mailservers))
    assert ours.result == (0, "", "")
    _delivered(mailservers, token, count=1)


@pytest.mark.parametrize("method", ["plain", "scram-sha-256"])
def test_no_password_without_terminal(mailservers, real_msmtp, tmp_path, method) -> None:
    """No password anywhere and no terminal: fail at once, never wait for input."""
    since = mailservers.postfix_log_size()
    real, ours = _pair(tmp_path, ["alice@example.com"], _mail(new_token()),
                       timeout=NO_TTY_TIMEOUT, auth=method, user="testuser",
                       **_tls(mailservers))
    assert real.result == (69, "", f"msmtp: authentication method {method.upper()} needs a"
                           f" password\n{FAILED}\n")
    assert ours.result == real.result
    assert ours.seconds < real.seconds + 5  # no waiting for input
    sessions = [_session(mailservers, since, run.ip) for run in (real, ours)]
    assert sessions[1] == sessions[0]


@pytest.mark.parametrize("user", PASSWORDS)
def test_prompt_on_terminal(mailservers, real_msmtp, tmp_path, user) -> None:
    """The prompt goes to /dev/tty (a pseudo-terminal here), the typed password is
    not echoed, and the mail still comes from stdin, a pipe."""
    token = new_token()
    since = mailservers.postfix_log_size()
    runs = {}
    for label, command in (("real", REAL), ("ours", ours_command())):
        runs[label] = _on_terminal(command, tmp_path / label, ["alice@example.com"],
                                   _mail(token), f"{PASSWORDS[user]}\n".encode(),
                                   auth="plain", user=user, **_tls(mailservers))
    (real, real_tty), (ours, ours_tty) = runs["real"], runs["ours"]
    assert real.result == (0, "", "")
    assert real_tty == f"password for {user} at 127.0.0.1: \r\n".encode()
    assert (ours.result, ours_tty) == (real.result, real_tty)
    assert PASSWORDS[user].encode() not in ours_tty
    _delivered(mailservers, token)
    for run in (real, ours):
        assert _sasl(_session(mailservers, since, run.ip)) == ("PLAIN", user)


@pytest.mark.parametrize("answer", [b"\n", b"\x04"], ids=["empty-line", "end-of-file"])
def test_prompt_answered_with_nothing(mailservers, real_msmtp, tmp_path, answer) -> None:
    """An empty answer (Return, or Ctrl-D) is an empty password for msmtp 1.8.23
    (observed): it sends it, and the server refuses.  After Ctrl-D it prints no
    line end on the terminal."""
    since = mailservers.postfix_log_size()
    runs = {}
    for label, command in (("real", REAL), ("ours", ours_command())):
        runs[label] = _on_terminal(command, tmp_path / label, ["alice@example.com"],
                                   _mail(new_token()), answer, auth="plain", user="testuser",
                                   **_tls(mailservers))
    (real, real_tty), (ours, ours_tty) = runs["real"], runs["ours"]
    assert real.result == (77, "", "msmtp: authentication failed (method PLAIN)\n"
                           f"{REFUSED_535}\n{FAILED}\n")
    assert (ours.result, ours_tty) == (real.result, real_tty)
    sessions = [_session(mailservers, since, run.ip) for run in (real, ours)]
    assert sessions[1] == sessions[0]


# ========================================================== 5. secrets stay secret
@pytest.mark.parametrize("method", METHODS)
def test_debug_and_log_hide_secrets(mailservers, real_msmtp, tmp_path, method) -> None:
    """``-d`` shows the same exchange as msmtp but with ``[hidden]`` for every
    client message (msmtp 1.8.23 shows them: not asserted); neither the transcript,
    stderr nor the log file give the password away."""
    user = "alice" if method in ("plain", "scram-sha-256") else "testuser"
    token = new_token()
    real, ours = _pair(tmp_path, ["-d", "--logfile={dir}/log", "alice@example.com"],
                       _mail(token), auth=method, user=user, password=PASSWORDS[user],
                       **_tls(mailservers))
    assert (real.returncode, real.stderr) == (0, "")
    assert (ours.returncode, ours.stderr) == (0, "")
    _delivered(mailservers, token)
    assert _exchange(ours.stdout) == _exchange(real.stdout)
    assert _exchange(ours.stdout, mask=False) == _exchange(ours.stdout)
    assert f"--> AUTH {method.upper()}" in _exchange(ours.stdout)[0]
    assert _exchange(ours.stdout)[-1].startswith("<-- 235 ")
    _assert_hidden(ours, _secrets(method, user, PASSWORDS[user], debug=ours.stdout))
    assert _log_line(ours.log) == _log_line(real.log)
    assert f" auth=on user={user} " in _log_line(ours.log)


@pytest.mark.parametrize("source", ["password", "passwordeval"])
def test_pretend_shows_a_star(mailservers, real_msmtp, tmp_path, source) -> None:
    since = mailservers.postfix_log_size()
    setting = {"password": "testpass"} if source == "password" else {
        "passwordeval": "echo testpass"}
    real, ours = _pair(tmp_path, ["-P", "alice@example.com"], auth="plain", user="testuser",
                       **setting, **_tls(mailservers))
    assert real.returncode == 0
    assert ours.result == real.result
    assert "password = *" in ours.stdout.splitlines()
    assert "testpass" not in ours.stdout.replace("passwordeval = echo testpass", "")
    assert not _connected(mailservers, since, ours.ip)


# ========================================================== 6. --rmqs
@pytest.mark.parametrize("method", ["plain", "scram-sha-256"])
def test_rmqs_authenticates(mailservers, real_msmtp, tmp_path, method) -> None:
    since = mailservers.postfix_log_size()
    real, ours = _pair(tmp_path, ["--rmqs=example.net"], auth=method, user="alice",
                       password=PASSWORDS["alice"], **_tls(mailservers))
    assert real.returncode == 0
    assert ours.result == real.result
    sessions = [_session(mailservers, since, run.ip) for run in (real, ours)]
    assert sessions[1] == sessions[0]
    assert sessions[0][-1] == ("disconnect from CLIENT ehlo=2 starttls=1 auth=1 etrn=1 quit=1"
                               " commands=6")


# ========================================================== 7. implicit TLS
@pytest.mark.parametrize("method", ["plain", "cram-md5", "scram-sha-256", "on"])
def test_implicit_tls_with_auth(mailservers, real_msmtp, tmp_path, method) -> None:
    token = new_token()
    since = mailservers.postfix_log_size()
    real, ours = _pair(tmp_path, ["alice@example.com"], _mail(token), auth=method,
                       user="testuser", password="testpass", tls_starttls=False,
                       **_tls(mailservers, mailservers.smtps_port))
    assert ours.result == real.result == (0, "", "")
    _delivered(mailservers, token)
    real_method = "PLAIN" if method == "on" else method.upper()
    ours_method = "SCRAM-SHA-256" if method == "on" else method.upper()  # documented
    assert _sasl(_session(mailservers, since, real.ip)) == (real_method, "testuser")
    assert _sasl(_session(mailservers, since, ours.ip)) == (ours_method, "testuser")


def test_implicit_tls_without_auth(mailservers, real_msmtp, tmp_path) -> None:
    token = new_token()
    since = mailservers.postfix_log_size()
    real, ours = _pair(tmp_path, ["alice@example.com"], _mail(token), tls_starttls=False,
                       **_tls(mailservers, mailservers.smtps_port))
    assert real.result == (65, "", "msmtp: recipient address alice@example.com not accepted"
                           " by the server\nmsmtp: server message: 554 5.7.1"
                           " <alice@example.com>: Recipient address rejected: Access denied\n"
                           + FAILED + "\n")
    assert ours.result == real.result
    sessions = [_session(mailservers, since, run.ip) for run in (real, ours)]
    assert sessions[1] == sessions[0]
    assert mailservers.mail("alice", match=token.encode()) == []


# ========================================================== 8. --serverinfo
def _mask_group(text: str) -> str:
    # GnuTLS 3.7 offers SECP256R1 first, OpenSSL X25519
    return re.sub(r"\(ECDHE-[A-Z0-9]+\)", "(ECDHE-GROUP)", text)


@pytest.mark.parametrize("port", ["submission", "no-tls"])
@pytest.mark.parametrize("password", [True, False], ids=["password", "no-password"])
def test_serverinfo_does_not_authenticate(mailservers, real_msmtp, tmp_path, port,
                                          password) -> None:
    settings = _tls(mailservers) if port == "submission" else {
        "port": mailservers.smtp_notls_port}
    if password:
        settings["password"] = "testpass"
    since = mailservers.postfix_log_size()
    real, ours = _pair(tmp_path, ["--serverinfo"], auth="plain", user="testuser",
                       timeout=NO_TTY_TIMEOUT, **settings)
    assert real.returncode == 0
    assert (ours.returncode, _mask_group(ours.stdout), ours.stderr) == (
        real.returncode, _mask_group(real.stdout), real.stderr)
    assert "Supported authentication methods:" in ours.stdout
    sessions = [_session(mailservers, since, run.ip) for run in (real, ours)]
    assert sessions[1] == sessions[0]
    assert not any("auth" in line or "sasl" in line for line in sessions[0]), sessions[0]
