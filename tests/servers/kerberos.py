"""A real MIT Kerberos realm and real SMTP servers that offer AUTH GSSAPI and NTLM.

Everything runs on 127.0.0.1 under one temporary folder, as root, with private
configurations (``KRB5_CONFIG``/``KRB5_KDC_PROFILE``/``KRB5CCNAME`` point into the folder;
``/etc/krb5.conf`` is never read or written):

- an MIT KDC (``krb5kdc``) for the realm ``MSMTP.TEST``, principals ``testuser`` (password
  ``testpass``) and ``smtp/127.0.0.1`` (random key, in a keytab for the servers);
- Postfix with Cyrus SASL (``smtpd_sasl_type = cyrus``, sasldb): ``AUTH NTLM GSSAPI``.
  Cyrus's NTLM checks NTLMv1 and NTLMv2 answers; its GSSAPI accepts any ``smtp/*`` key in
  the keytab (``ignore_acceptor_hostname``).  Mail is accepted and discarded; the log
  line ``client=..., sasl_method=GSSAPI, sasl_username=...`` tells who authenticated;
- Dovecot's submission server (``dovecot-submissiond``) with ``auth_mechanisms = gssapi``
  (``dovecot-gssapi``), relaying to a :class:`~tests.servers.recording.RecordingServer`
  (``sink``): a second, independent GSSAPI acceptor.  Debian's Dovecot 2.3 has no built-in
  NTLM (only winbind's), hence Postfix + Cyrus for NTLM.

The session fixture ``kerberos_servers`` starts all that once (about 1 s) and yields a
:class:`KerberosServers`; a ticket for ``testuser`` is in :attr:`KerberosServers.ccache`
(``kinit``), :attr:`KerberosServers.empty_ccache` has none.  Register it with
``from tests.servers.kerberos import kerberos_servers  # noqa: F401``.

Debian 12 packages: krb5-kdc krb5-admin-server (kadmin.local) krb5-user (kinit), postfix
sasl2-bin (saslpasswd2) libsasl2-modules (NTLM) libsasl2-modules-gssapi-mit, dovecot-core
dovecot-submissiond dovecot-gssapi.  Without them (or without root) the fixture skips on a
developer box and fails when ``CI=true``.

Ports: ``$MSMTP_TEST_KERBEROS_PORT`` .. +2 (KDC on TCP and UDP, Postfix, Dovecot) when set,
else the first free block from 22088 on.  ``MSMTP_TEST_KEEP_KERBEROS=1`` keeps the folder
(configurations, logs) after the session and prints its path.
"""

from __future__ import annotations

import contextlib
import glob
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import require
from tests.servers.ports import choose_port_block
from tests.servers.recording import RecordingServer

PORT_ENV = "MSMTP_TEST_KERBEROS_PORT"
KEEP_ENV = "MSMTP_TEST_KEEP_KERBEROS"
DEFAULT_BASE_PORT = 22088
PORT_BLOCK = 3

REALM = "MSMTP.TEST"
USER = "testuser"
PASSWORD = "testpass"
#: the SASL domain of the sasldb user (Postfix's smtpd_sasl_local_domain)
SASL_DOMAIN = "msmtp.test"
SERVICE_HOST = "127.0.0.1"

#: what the fixture needs, and the Debian package providing each
_PROGRAMS = {
    "/usr/sbin/krb5kdc": "krb5-kdc",
    "/usr/sbin/kdb5_util": "krb5-kdc",
    "/usr/sbin/kadmin.local": "krb5-admin-server",
    "/usr/bin/kinit": "krb5-user",
    "/usr/sbin/postfix": "postfix",
    "/usr/sbin/saslpasswd2": "sasl2-bin",
    "/usr/sbin/dovecot": "dovecot-core",
    "/usr/lib/dovecot/submission": "dovecot-submissiond",
    "/usr/lib/dovecot/submission-login": "dovecot-submissiond",
    "/usr/lib/dovecot/modules/auth/libmech_gssapi.so": "dovecot-gssapi",
}
#: Cyrus SASL plugins (in the multiarch folder /usr/lib/<triplet>/sasl2/)
_SASL_PLUGINS = {
    "libntlm.so": "libsasl2-modules",
    "libgssapiv2.so": "libsasl2-modules-gssapi-mit",
    "libsasldb.so": "libsasl2-modules-db",
}

#: bound for every command and every wait here
COMMAND_TIMEOUT = 20.0
READY_TIMEOUT = 10.0


@dataclass
class KerberosServers:
    """The running realm and servers: ports, paths, and helpers to read their logs."""

    dir: Path
    realm: str
    kdc_port: int
    #: Postfix + Cyrus SASL: AUTH NTLM GSSAPI; mail is accepted and discarded
    postfix_port: int
    #: Dovecot submission: AUTH GSSAPI; relays to ``sink``
    dovecot_port: int
    sink: RecordingServer
    krb5_config: Path
    #: a ticket cache holding testuser's TGT (``FILE:...``)
    ccache: str
    #: a ticket cache that does not exist: no ticket
    empty_ccache: str
    keytab: Path
    postfix_log_path: Path
    dovecot_log_path: Path
    kdc_log_path: Path
    user: str = USER
    password: str = PASSWORD
    host: str = SERVICE_HOST
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)

    @property
    def principal(self) -> str:
        return f"{self.user}@{self.realm}"

    def env(self, *, ticket: bool = True) -> dict[str, str]:
        """Environment for a Kerberos client: the private krb5.conf and a ticket cache."""
        return {"KRB5_CONFIG": str(self.krb5_config),
                "KRB5CCNAME": self.ccache if ticket else self.empty_ccache}

    # ---------------------------------------------------------------------- logs
    def postfix_log(self, since: int = 0) -> str:
        return _read_from(self.postfix_log_path, since)

    def postfix_log_size(self) -> int:
        return _size(self.postfix_log_path)

    def dovecot_log(self, since: int = 0) -> str:
        return _read_from(self.dovecot_log_path, since)

    def dovecot_log_size(self) -> int:
        return _size(self.dovecot_log_path)

    def wait_for_log(self, which: str, pattern: str, since: int = 0,
                     timeout: float = 10.0) -> re.Match[str]:
        """Wait until a line matching ``pattern`` shows up in the ``"postfix"`` or
        ``"dovecot"`` log after offset ``since``; return the match."""
        read = self.postfix_log if which == "postfix" else self.dovecot_log
        regex = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + timeout
        while True:
            text = read(since)
            m = regex.search(text)
            if m:
                return m
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"no line matching {pattern!r} in the {which} log after {timeout} s;"
                    f" tail:\n{text[-3000:]}")
            time.sleep(0.05)

    def postfix_auth(self, message_id: str, since: int = 0,
                     timeout: float = 10.0) -> tuple[str, str]:
        """``(sasl_method, sasl_username)`` of the session that submitted the mail with
        this Message-ID (without <>), from Postfix's log."""
        m = self.wait_for_log(
            "postfix", rf"postfix/cleanup\[\d+\]: (\w+): message-id=<{re.escape(message_id)}>",
            since, timeout)
        queue_id = m.group(1)
        m = self.wait_for_log(
            "postfix", rf"{queue_id}: client=\S+, sasl_method=(\S+), sasl_username=(\S+)$",
            since, timeout)
        return m.group(1).rstrip(","), m.group(2)


def _read_from(path: Path, since: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(since)
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


# -------------------------------------------------------------------------- ports

def choose_base_port() -> int:
    # the KDC listens on UDP too; it binds without SO_REUSEADDR
    return choose_port_block(PORT_ENV, DEFAULT_BASE_PORT, PORT_BLOCK, attempts=100,
                             reuse=False, udp=True)


def _wait_tcp(port: int, what: str, procs: list[subprocess.Popen[bytes]] = (),
              log: Path | None = None) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"{what} exited ({p.returncode}); log:\n{_tail(log)}")
        if time.monotonic() >= deadline:
            raise RuntimeError(f"{what}: nothing listens on 127.0.0.1:{port}; log:\n{_tail(log)}")
        time.sleep(0.05)


def _tail(path: Path | None) -> str:
    return _read_from(path, 0)[-3000:] if path is not None else ""


# ----------------------------------------------------------------------- requirements

def check_requirements() -> None:
    """Skip (developer box) or fail (CI) when something the fixture needs is missing."""
    require(os.geteuid() == 0, "root (Postfix and Dovecot masters, users postfix/dovecot)")
    for path, package in _PROGRAMS.items():
        require(os.path.exists(path), f"{path} (Debian package {package})")
    for plugin, package in _SASL_PLUGINS.items():
        require(bool(glob.glob(f"/usr/lib/*/sasl2/{plugin}")),
                f"Cyrus SASL plugin {plugin} (Debian package {package})")
    for user in ("postfix", "dovecot", "dovenull", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            require(False, f"system user {user}")


# ---------------------------------------------------------------------------- start

def _run(args: list[str], env: dict[str, str], *, input: bytes | None = None) -> str:
    proc = subprocess.run(args, input=input, capture_output=True, env=env,
                          timeout=COMMAND_TIMEOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n"
                           f"{proc.stdout.decode(errors='replace')}"
                           f"{proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode(errors="replace")


def _chown(path: Path, group: str, mode: int) -> None:
    os.chown(path, 0, grp.getgrnam(group).gr_gid)
    path.chmod(mode)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def start_realm(d: Path, kdc_port: int) -> tuple[dict[str, str], subprocess.Popen[bytes]]:
    """Create the realm's database, principals and keytab; start krb5kdc; kinit."""
    krb = d / "krb5"
    krb.mkdir()
    _write(krb / "krb5.conf", f"""\
[libdefaults]
  default_realm = {REALM}
  dns_lookup_kdc = false
  dns_lookup_realm = false
  dns_canonicalize_hostname = false
  rdns = false
  # the servers accept any smtp/* key of the keytab (Cyrus asks for smtp/<myhostname>)
  ignore_acceptor_hostname = true
  udp_preference_limit = 1
  forwardable = false
[realms]
  {REALM} = {{
    kdc = 127.0.0.1:{kdc_port}
  }}
""")
    _write(krb / "kdc.conf", f"""\
[kdcdefaults]
  kdc_listen = 127.0.0.1:{kdc_port}
  kdc_tcp_listen = 127.0.0.1:{kdc_port}
[realms]
  {REALM} = {{
    database_name = {krb}/principal
    acl_file = {krb}/kadm5.acl
    key_stash_file = {krb}/stash
    kdc_listen = 127.0.0.1:{kdc_port}
    kdc_tcp_listen = 127.0.0.1:{kdc_port}
  }}
[logging]
  kdc = FILE:{krb}/kdc.log
""")
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C",
           "KRB5_CONFIG": str(krb / "krb5.conf"), "KRB5_KDC_PROFILE": str(krb / "kdc.conf"),
           "KRB5CCNAME": f"FILE:{krb}/ccache"}
    _run(["kdb5_util", "create", "-s", "-r", REALM, "-P", "master-password-for-tests"], env)
    for query in (f"addprinc -pw {PASSWORD} {USER}",
                  f"addprinc -randkey smtp/{SERVICE_HOST}",
                  f"ktadd -k {krb}/smtp.keytab smtp/{SERVICE_HOST}"):
        _run(["kadmin.local", "-r", REALM, "-q", query], env)
    kdc = subprocess.Popen(["krb5kdc", "-n", "-r", REALM, "-P", str(krb / "kdc.pid")],
                           stdin=subprocess.DEVNULL, stdout=open(krb / "kdc.out", "wb"),
                           stderr=subprocess.STDOUT, env=env, start_new_session=True)
    _wait_tcp(kdc_port, "krb5kdc", [kdc], krb / "kdc.log")
    # MIT kinit reads the password from standard input when it is no terminal
    _run(["kinit", USER], env, input=f"{PASSWORD}\n".encode())
    return env, kdc


def start_postfix(d: Path, port: int, krb_env: dict[str, str], keytab: Path) -> Path:
    """Postfix with Cyrus SASL (NTLM, GSSAPI); returns its config directory."""
    pf = d / "postfix"
    etc, spool, data, sasl = pf / "etc", pf / "spool", pf / "data", pf / "sasl"
    for p in (etc, spool, data, sasl, etc / "sasl"):
        p.mkdir(parents=True)
    shutil.chown(data, "postfix", "postfix")
    # the sasldb and the keytab: read by smtpd (user postfix)
    _run(["saslpasswd2", "-p", "-c", "-f", str(sasl / "sasldb2"), "-u", SASL_DOMAIN, USER],
         krb_env, input=PASSWORD.encode())
    _chown(sasl / "sasldb2", "postfix", 0o640)
    shutil.copy(keytab, sasl / "smtp.keytab")
    _chown(sasl / "smtp.keytab", "postfix", 0o640)
    # Debian's Postfix reads Cyrus's smtpd.conf from <config_directory>/sasl only
    # (debian/patches/07_sasl_config.diff); cyrus_sasl_config_path is for other builds.
    smtpd_conf = f"""\
pwcheck_method: auxprop
auxprop_plugin: sasldb
sasldb_path: {sasl}/sasldb2
mech_list: NTLM GSSAPI
"""
    _write(etc / "sasl" / "smtpd.conf", smtpd_conf)
    _write(sasl / "smtpd.conf", smtpd_conf)
    _write(etc / "main.cf", f"""\
compatibility_level = 3.6
queue_directory = {spool}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
maillog_file_prefixes = {pf}
maillog_file = {pf}/postfix.log
myhostname = mail.msmtp.test
mydomain = msmtp.test
mydestination =
mynetworks =
inet_interfaces = loopback-only
inet_protocols = ipv4
smtpd_peername_lookup = no
biff = no
alias_maps =
alias_database =
local_recipient_maps =
default_transport = discard:accepted by the Kerberos/NTLM test server
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
cyrus_sasl_config_path = {sasl}
smtpd_sasl_local_domain = {SASL_DOMAIN}
smtpd_sasl_security_options = noanonymous
smtpd_tls_security_level = none
import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C \
 KRB5_CONFIG={krb_env["KRB5_CONFIG"]} KRB5_KTNAME=FILE:{sasl}/smtp.keytab
""")
    _write(etc / "master.cf", f"""\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
""")
    # Postfix distrusts configuration files younger than a few seconds (it waits ~2 s)
    old = time.time() - 60
    for p in (etc / "main.cf", etc / "master.cf"):
        os.utime(p, (old, old))
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
    proc = subprocess.run(["postfix", "-c", str(etc), "start"], stdin=subprocess.DEVNULL,
                          capture_output=True, env=env, timeout=COMMAND_TIMEOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"postfix start failed:\n{proc.stderr.decode(errors='replace')}"
                           f"{_tail(pf / 'postfix.log')}")
    _wait_tcp(port, "postfix", log=pf / "postfix.log")
    return etc


def start_dovecot(d: Path, port: int, relay_port: int, krb_env: dict[str, str],
                  keytab: Path) -> Path:
    """Dovecot submission with GSSAPI; returns its master's pid file."""
    dv = d / "dovecot"
    for p in (dv / "run", dv / "state", dv / "home"):
        p.mkdir(parents=True)
    nobody = pwd.getpwnam("nobody")
    os.chown(dv / "home", nobody.pw_uid, nobody.pw_gid)
    shutil.copy(keytab, dv / "smtp.keytab")
    _chown(dv / "smtp.keytab", "dovecot", 0o640)
    users = _write(dv / "users",
                   f"{USER}:{{PLAIN}}{PASSWORD}:{nobody.pw_uid}:{nobody.pw_gid}::{dv}/home::\n")
    _chown(users, "dovecot", 0o640)
    conf = _write(dv / "dovecot.conf", f"""\
instance_name = msmtp-test-kerberos-{port}
base_dir = {dv}/run
state_dir = {dv}/state
log_path = {dv}/dovecot.log
info_log_path = {dv}/dovecot.log
debug_log_path = {dv}/dovecot.log
protocols = submission
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = 1
last_valid_uid = 0
import_environment = TZ KRB5_CONFIG={krb_env["KRB5_CONFIG"]}
auth_mechanisms = gssapi
# any principal of the keytab (the submission service would ask for submission@<hostname>)
auth_gssapi_hostname = "$ALL"
auth_krb5_keytab = {dv}/smtp.keytab
auth_verbose = yes
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%n {dv}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%n {dv}/users
}}
mail_location = maildir:~/Maildir
hostname = mail.msmtp.test
submission_relay_host = 127.0.0.1
submission_relay_port = {relay_port}
submission_relay_trusted = yes
service submission-login {{
  inet_listener submission {{
    port = {port}
  }}
}}
""")
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
    # stdin/stdout/stderr redirected: Dovecot keeps the caller's stderr open once it forks
    with open(dv / "startup.err", "wb") as err:
        proc = subprocess.run(["dovecot", "-c", str(conf)], stdin=subprocess.DEVNULL,
                              stdout=err, stderr=subprocess.STDOUT, env=env,
                              timeout=COMMAND_TIMEOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"dovecot failed to start:\n{_tail(dv / 'startup.err')}"
                           f"{_tail(dv / 'dovecot.log')}")
    _wait_tcp(port, "dovecot", log=dv / "dovecot.log")
    return dv / "run" / "master.pid"


# ----------------------------------------------------------------------------- stop

def _alive(pid: int) -> bool:
    # a zombie (PID 1 of some containers does not reap) counts as gone
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _pid_from(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def stop_pids(pids: list[int], timeout: float = 5.0) -> list[int]:
    """SIGTERM these processes (only these), wait; SIGKILL what is left. Returns the
    pids that were still alive after the SIGTERM wait."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    stuck = [p for p in pids if _alive(p)]
    for pid in stuck:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return stuck


# --------------------------------------------------------------------------- fixture

@contextlib.contextmanager
def running_servers() -> Iterator[KerberosServers]:
    check_requirements()
    base = choose_base_port()
    kdc_port, postfix_port, dovecot_port = base, base + 1, base + 2
    d = Path(tempfile.mkdtemp(prefix="msmtp-kerberos-"))
    d.chmod(0o755)  # the users postfix, dovecot and nobody walk through it
    sink = RecordingServer(hostname="sink.msmtp.test")
    pids: list[int] = []
    procs: list[subprocess.Popen[bytes]] = []
    try:
        krb_env, kdc = start_realm(d, kdc_port)
        procs.append(kdc)
        pids.append(kdc.pid)
        keytab = d / "krb5" / "smtp.keytab"
        start_postfix(d, postfix_port, krb_env, keytab)
        pf_pid = _pid_from(d / "postfix" / "spool" / "pid" / "master.pid")
        if pf_pid:
            pids.append(pf_pid)
        sink.start()
        assert sink.port is not None
        dv_pidfile = start_dovecot(d, dovecot_port, sink.port, krb_env, keytab)
        dv_pid = _pid_from(dv_pidfile)
        if dv_pid:
            pids.append(dv_pid)
        yield KerberosServers(
            dir=d, realm=REALM, kdc_port=kdc_port, postfix_port=postfix_port,
            dovecot_port=dovecot_port, sink=sink, krb5_config=d / "krb5" / "krb5.conf",
            ccache=krb_env["KRB5CCNAME"], empty_ccache=f"FILE:{d}/krb5/no-such-ccache",
            keytab=keytab, postfix_log_path=d / "postfix" / "postfix.log",
            dovecot_log_path=d / "dovecot" / "dovecot.log",
            kdc_log_path=d / "krb5" / "kdc.log", _procs=procs)
    finally:
        # the masters stop their children; Postfix and Dovecot wrote pid files
        for pidfile in (d / "postfix" / "spool" / "pid" / "master.pid",
                        d / "dovecot" / "run" / "master.pid"):
            pid = _pid_from(pidfile)
            if pid and pid not in pids:
                pids.append(pid)
        stuck = stop_pids(pids)
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=2)
        sink.stop()
        if os.environ.get(KEEP_ENV):
            print(f"\nKerberos test servers' folder kept: {d}", file=sys.stderr)
        else:
            shutil.rmtree(d, ignore_errors=True)
        if stuck:
            raise RuntimeError(f"processes {stuck} ignored SIGTERM (killed)")


@pytest.fixture(scope="session")
def kerberos_servers() -> Iterator[KerberosServers]:
    with running_servers() as servers:
        yield servers


__all__ = ["KerberosServers", "PASSWORD", "REALM", "USER", "check_requirements",
           "kerberos_servers", "running_servers"]
