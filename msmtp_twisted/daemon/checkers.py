"""Credential checkers for msmtpd's AUTH.

A checker has ``check(username: str, password: bytes)`` returning a bool or a
Deferred that fires with one.

- :class:`StaticChecker`: the single user of ``--auth=user[,passwordeval]``,
  compared in constant time (``hmac.compare_digest`` on both the name and the
  password, always both).
- :class:`LDAPChecker`: ``--auth-ldap=URL``, an LDAP simple bind with the
  client's name and password, either to a template DN or to the DN a search
  finds; ``ldaps://`` or StartTLS.  It runs ldap3 in Twisted's thread pool.

URL forms (RFC 4516 LDAP URLs, ``%u`` standing for the escaped user name)::

    ldap://HOST[:PORT]/uid=%u,ou=people,dc=example,dc=com      bind to this DN
    ldaps://HOST[:PORT]/uid=%u,ou=people,dc=example,dc=com     same, TLS from the start
    ldap://HOST/ou=people,dc=example,dc=com??sub?(uid=%u)      search, then bind
    ldap://HOST/uid=%u,ou=people,dc=example,dc=com????starttls StartTLS first

Extensions (the fifth field, comma separated, ``!`` allowed in front):
``starttls``; ``bindname=DN`` (search as this DN, with the password from the
environment variable ``MSMTPD_LDAP_BIND_PASSWORD``; else the search is
anonymous); ``x-cafile=PATH`` (trust these CAs instead of the system's).
Certificates are always verified: the chain against that trust store, the name
against the URL's host, by :mod:`msmtp_twisted.daemon.ldaptls` (not by ldap3,
whose check needs ``ssl.match_hostname``, gone from Python 3.12); a refusal is
an exception (a temporary failure) whose message says why.  An empty password
is refused before any LDAP traffic (an LDAP bind with an empty password is an
anonymous bind).
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["LDAPChecker", "LDAPConfig", "StaticChecker", "parse_ldap_url"]


class StaticChecker:
    def __init__(self, username: str, password: str) -> None:
        self._user = username.encode("utf-8", "surrogateescape")
        self._password = password.encode("utf-8", "surrogateescape")

    def check(self, username: str, password: bytes) -> bool:
        user_ok = hmac.compare_digest(username.encode("utf-8", "surrogateescape"), self._user)
        password_ok = hmac.compare_digest(password, self._password)
        return user_ok & password_ok


@dataclass(frozen=True)
class LDAPConfig:
    host: str
    port: int
    use_ssl: bool
    starttls: bool
    dn_template: str | None  # bind directly to this DN
    base: str | None  # search base (search-then-bind)
    scope: str  # base, one, sub
    filter: str | None
    bind_dn: str | None
    cafile: str | None


def parse_ldap_url(url: str) -> LDAPConfig:
    """Parse ``--auth-ldap``; raises ValueError with a message for the user."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("ldap", "ldaps"):
        raise ValueError(f"invalid LDAP URL {url!r}: the scheme must be ldap or ldaps")
    host = parts.hostname
    if not host:
        raise ValueError(f"invalid LDAP URL {url!r}: no host")
    try:
        port = parts.port or (636 if scheme == "ldaps" else 389)
    except ValueError:
        raise ValueError(f"invalid LDAP URL {url!r}: bad port") from None
    # urlsplit puts everything after the first '?' in .query
    fields = parts.query.split("?") if parts.query or "?" in url else []
    fields += [""] * (4 - len(fields))
    _attrs, scope, filt = (unquote(f) for f in fields[:3])
    raw_exts = fields[3]
    dn = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
    if not dn:
        raise ValueError(f"invalid LDAP URL {url!r}: no DN")
    starttls = False
    bind_dn = None
    cafile = None
    for ext in (unquote(e.strip()) for e in raw_exts.split(",") if e.strip()):
        ext = ext.lstrip("!")
        name, _, value = ext.partition("=")
        lname = name.lower()
        if lname == "starttls":
            starttls = True
        elif lname == "bindname":
            bind_dn = value
        elif lname == "x-cafile":
            cafile = value
        else:
            raise ValueError(f"invalid LDAP URL {url!r}: unknown extension {name!r}")
    if starttls and scheme == "ldaps":
        raise ValueError(f"invalid LDAP URL {url!r}: starttls with ldaps")
    scope = (scope or "sub").lower()
    if scope not in ("base", "one", "sub"):
        raise ValueError(f"invalid LDAP URL {url!r}: scope must be base, one or sub")
    if filt:
        if "%u" not in filt:
            raise ValueError(f"invalid LDAP URL {url!r}: the filter needs %u")
        return LDAPConfig(host, port, scheme == "ldaps", starttls, None, dn, scope, filt,
                          bind_dn, cafile)
    if "%u" not in dn:
        raise ValueError(f"invalid LDAP URL {url!r}: the DN needs %u (or give a filter)")
    return LDAPConfig(host, port, scheme == "ldaps", starttls, dn, None, scope, None,
                      bind_dn, cafile)


def _ldap3_installed() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("ldap3") is not None
    except (ImportError, ValueError):
        return False


class LDAPChecker:
    """Check a name and password with an LDAP simple bind (see the module doc)."""

    def __init__(self, url: str, *, timeout: float = 10.0, reactor: Any = None,
                 bind_password: str | None = None) -> None:
        self.config = parse_ldap_url(url)
        if not _ldap3_installed():
            # refused at start-up, not at the first AUTH (where it would be a 454)
            raise ValueError("LDAP authentication needs the ldap3 package, which is not "
                             "installed: pip install 'msmtp-twisted[ldap]'")
        self.timeout = timeout
        self._reactor = reactor
        if bind_password is None:
            bind_password = os.environ.get("MSMTPD_LDAP_BIND_PASSWORD")
        self._bind_password = bind_password

    def check(self, username: str, password: bytes) -> Any:
        from twisted.internet.threads import deferToThreadPool

        if self._reactor is None:
            from twisted.internet import reactor as _reactor

            self._reactor = _reactor
        return deferToThreadPool(self._reactor, self._reactor.getThreadPool(),
                                 self.check_sync, username, password)

    def _server(self) -> Any:
        from ldap3 import Server

        c = self.config
        tls = None
        if c.use_ssl or c.starttls:
            # our chain and name checks, not ldap3's (ssl.match_hostname is gone
            # from Python 3.12): see msmtp_twisted.daemon.ldaptls
            from msmtp_twisted.daemon.ldaptls import CheckedTls

            tls = CheckedTls(c.host, c.cafile)
        return Server(c.host, port=c.port, use_ssl=c.use_ssl, tls=tls,
                      connect_timeout=max(1, int(self.timeout)), get_info="NO_INFO")

    def _connection(self, server: Any, user: str | None, password: str | None) -> Any:
        from ldap3 import Connection

        conn = Connection(server, user=user, password=password, auto_bind="NONE",
                          receive_timeout=max(1, int(self.timeout)), raise_exceptions=False,
                          read_only=True)
        conn.open()
        if self.config.starttls and not conn.start_tls():
            conn.unbind()
            raise OSError("StartTLS failed")
        return conn

    def find_dn(self, server: Any, username: str) -> str | None:
        from ldap3 import BASE, LEVEL, SUBTREE
        from ldap3.utils.conv import escape_filter_chars

        c = self.config
        if c.dn_template is not None:
            from ldap3.utils.dn import escape_rdn

            return c.dn_template.replace("%u", escape_rdn(username))
        assert c.filter is not None and c.base is not None
        conn = self._connection(server, c.bind_dn, self._bind_password if c.bind_dn else None)
        try:
            if c.bind_dn and not conn.bind():
                raise OSError(f"LDAP bind as {c.bind_dn} failed")
            scope = {"base": BASE, "one": LEVEL, "sub": SUBTREE}[c.scope]
            filt = c.filter.replace("%u", escape_filter_chars(username))
            conn.search(c.base, filt, search_scope=scope, attributes=[], size_limit=2)
            entries = [e for e in conn.response or [] if e.get("type") == "searchResEntry"]
            if len(entries) != 1:
                return None
            return str(entries[0]["dn"])
        finally:
            conn.unbind()

    def check_sync(self, username: str, password: bytes) -> bool:
        """Blocking check (runs in a thread).  False for wrong credentials; an
        exception when the directory cannot be asked (a temporary failure)."""
        if not username or not password:
            return False
        try:
            secret = password.decode("utf-8")
        except UnicodeDecodeError:
            return False
        server = self._server()
        try:
            dn = self.find_dn(server, username)
            if dn is None:
                return False
            conn = self._connection(server, dn, secret)
            try:
                return bool(conn.bind())
            finally:
                conn.unbind()
        except Exception:
            # ldap3 buries a refused certificate in its own exceptions ("unable to
            # open socket", with the whole certificate): log our reason instead
            failure = getattr(server.tls, "failure", None)
            if failure is not None:
                raise failure from None
            raise
