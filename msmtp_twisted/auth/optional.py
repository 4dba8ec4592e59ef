"""SASL client mechanisms that need an optional Python package: GSSAPI and NTLM.

msmtp 1.8.23 gets both from GNU SASL; here they come from

- ``GSSAPI`` (RFC 4752, Kerberos V5): the package ``gssapi`` (python-gssapi, a binding of the
  system's GSS-API library, MIT Kerberos on Debian), extra ``msmtp-twisted[gssapi]``;
- ``NTLM``: the package ``pyspnego`` (module ``spnego``; pure Python), extra
  ``msmtp-twisted[ntlm]``.

They follow the step protocol of :mod:`msmtp_twisted.auth.mechanisms` (``initial_response()``,
``respond(challenge)``, ``finish()``) and raise its :class:`SASLError` classes.  The packages
are imported only when a mechanism is built; :func:`availability` tells, without importing
anything, which of the two this installation can run (for ``--version`` and for the set of
supported mechanisms), and :func:`create_optional` builds one the way msmtp sets GNU SASL up:
service ``smtp``, host name = the account's ``host``, NTLM domain = ``ntlmdomain``, and no
authorization identity.

Like GNU SASL, both compute their first message before ``AUTH`` is sent (it goes out after the
server's empty 334): an initiator that cannot start -- no Kerberos ticket -- fails before
anything reaches the server, exit 70 as msmtp.  GSS-API calls block while the Kerberos library
talks to the KDC (a service ticket request when the server's ticket is not cached yet).
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from typing import Any

from msmtp_twisted.auth.mechanisms import (
    Mechanism,
    SASLAuthError,
    SASLError,
    SASLProtocolError,
    _authfail,
    _invalid,
    _software,
    _utf8,
    require_credentials,
)
from msmtp_twisted.sysexits import EX_SOFTWARE

__all__ = [
    "OPTIONAL_MECHANISMS",
    "PACKAGES",
    "GSSAPI",
    "NTLM",
    "availability",
    "create_optional",
]

#: The optional mechanisms, each with (import name, distribution name) of what it needs.
PACKAGES: dict[str, tuple[str, str]] = {
    "GSSAPI": ("gssapi", "gssapi"),
    "NTLM": ("spnego", "pyspnego"),
}
OPTIONAL_MECHANISMS = tuple(PACKAGES)

# RFC 4752 §3.3: security layer bit masks; we only ever choose "no security layer".
_LAYER_NONE = 0x01


def _missing(mech: str) -> str:
    return f"needs the Python package {PACKAGES[mech][1]}"


def availability() -> dict[str, str | None]:
    """``{"GSSAPI": None | why, "NTLM": None | why}``: None when the mechanism's package is
    installed, else why not ("needs the Python package gssapi").

    Cheap: looks the packages up (``importlib.util.find_spec``) without importing them.  A
    package that is there but cannot be loaded (say, its C library is missing) counts as
    available here; building the mechanism then fails with a clear error.
    """
    result: dict[str, str | None] = {}
    for mech, (module, _dist) in PACKAGES.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        result[mech] = None if found else _missing(mech)
    return result


def _not_available(mech: str, why: str) -> SASLError:
    # choose.py says "authentication method X is not available" (exit 70) for a mechanism
    # missing from the supported set; msmtp 1.8.23: "GNU SASL: authentication method X not
    # supported", also 70.
    return SASLError(
        f"authentication method {mech} is not available ({why})",
        mechanism=mech,
        exitcode=EX_SOFTWARE,
    )


def _load(mech: str) -> ModuleType:
    module, dist = PACKAGES[mech]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is not None and e.name.partition(".")[0] == module:
            raise _not_available(mech, _missing(mech)) from None
        raise _not_available(mech, f"cannot load the Python package {dist}: {e}") from None
    except Exception as e:  # a broken install: missing C library, ...
        raise _not_available(mech, f"cannot load the Python package {dist}: {e}") from None


# ---------------------------------------------------------------------------------------------
# GSSAPI (RFC 4752)


def _gss_text(err: Exception) -> str:
    """The most useful words of a python-gssapi error: the mechanism's (minor) message,
    e.g. "No Kerberos credentials available (default cache: FILE:/tmp/krb5cc_0)"."""
    texts: list[str] = []
    statuses = getattr(err, "get_all_statuses", None)
    for code_attr, is_major in (("min_code", False), ("maj_code", True)):
        code = getattr(err, code_attr, 0)
        if texts or not code or statuses is None:
            continue
        try:
            texts = [t for t in statuses(code, is_major) if t and t.strip()]
        except Exception:
            texts = []
    return "; ".join(t.strip() for t in texts) or str(err) or type(err).__name__


class GSSAPI(Mechanism):
    """RFC 4752 GSSAPI with Kerberos V5, choosing no security layer.

    ``host`` and ``service`` name the server (``service@host``, a host-based service name:
    principal ``smtp/host@REALM``).  ``user`` is the authorization identity; None (msmtp's
    choice: GNU SASL gets none) sends an empty one, so that the server uses the ticket's
    principal.  The client credentials are the default ones: the ticket cache
    (``KRB5CCNAME``) filled by ``kinit``.

    Exchange over SMTP: ``AUTH GSSAPI``, ``334`` → the first context token (computed when the
    object is built); ``334 <token>`` → the next ones, and the empty response once the context
    is established; ``334 <wrapped 4 bytes>`` (the server's security layers and buffer size)
    → ``wrap(0x01 0 0 0 + authzid)``.  ``finish()`` insists that the context was established,
    that is, that the server proved who it is (mutual authentication).
    """

    name = "GSSAPI"

    def __init__(self, host: str, service: str = "smtp", user: str | None = None) -> None:
        super().__init__()
        gssapi = _load(self.name)
        self._gssapi: Any = gssapi
        self._authzid = _utf8(user, "user name", self.name) if user else b""
        target = f"{service}@{host}"
        flags = gssapi.RequirementFlag
        try:
            name = gssapi.Name(target, gssapi.NameType.hostbased_service)
            self._ctx = gssapi.SecurityContext(
                name=name,
                usage="initiate",
                mech=gssapi.MechType.kerberos,
                flags=[flags.mutual_authentication, flags.integrity],
            )
            first = self._ctx.step()
        except gssapi.exceptions.GSSError as e:
            # msmtp: "GNU SASL: GSSAPI error in client while negotiating security context in
            # gss_init_sec_context() in SASL library. ..." (70), before AUTH is sent.
            raise _software(self.name, _gss_text(e)) from None
        self._first = first or b""
        self._done = False  # the security layer answer was sent

    def initial_response(self) -> bytes | None:
        # Like GNU SASL (and msmtp's AUTH loop), the token waits for the server's first 334.
        return None

    def respond(self, challenge: bytes) -> bytes:
        if not self._initial_sent:
            self._initial_sent = True
            if challenge:
                raise _invalid(self.name, "unexpected server challenge")
            return self._first
        if self._done:
            raise _invalid(self.name, "unexpected server challenge")
        if self._ctx.complete:
            # the context is up: this is the server's security layer offer
            return self._layers(challenge)
        try:
            token = self._ctx.step(challenge)
        except self._gssapi.exceptions.GSSError as e:
            # a bad AP-REP: the server could not prove it holds the service key
            raise _authfail(self.name, _gss_text(e)) from None
        # once the context is established, the empty response asks for the layer offer
        return token or b""

    def _layers(self, challenge: bytes) -> bytes:
        try:
            offer = self._ctx.unwrap(challenge).message
        except self._gssapi.exceptions.GSSError:
            raise _invalid(self.name) from None
        if len(offer) != 4:
            raise _invalid(self.name)
        if not offer[0] & _LAYER_NONE:
            raise SASLProtocolError(
                f"authentication method {self.name}: the server requires a security layer",
                mechanism=self.name,
            )
        # RFC 4752 §3.1: no security layer, maximum buffer size 0, then the authzid
        answer = bytes([_LAYER_NONE, 0, 0, 0]) + self._authzid
        try:
            wrapped = self._ctx.wrap(answer, False).message
        except self._gssapi.exceptions.GSSError as e:
            raise _software(self.name, _gss_text(e)) from None
        self._done = True
        return wrapped

    def finish(self, success_data: bytes | None = None) -> None:
        super().finish(success_data)
        if not self._ctx.complete:
            raise SASLAuthError(
                f"authentication failed: the server did not prove its identity (method "
                f"{self.name})",
                mechanism=self.name,
            )


# ---------------------------------------------------------------------------------------------
# NTLM


class NTLM(Mechanism):
    """NTLM (the NTLMSSP messages over SASL, as Microsoft's servers speak it), from pyspnego's
    own implementation (no system library).

    ``domain`` (msmtp's ``ntlmdomain``) goes into the AUTHENTICATE message; without it,
    ``user`` may carry one as ``DOMAIN\\user``.  pyspnego sends NTLMv2 responses (its
    ``LM_COMPAT_LEVEL`` environment variable, default 3, can change that); GNU SASL's
    libntlm sends NTLMv1.

    Exchange over SMTP: ``AUTH NTLM``, ``334`` → NEGOTIATE (computed when the object is
    built); ``334 <CHALLENGE>`` → AUTHENTICATE; then ``235``.
    """

    name = "NTLM"

    def __init__(self, user: str, password: str, domain: str | None = None) -> None:
        super().__init__()
        spnego = _load(self.name)
        self._spnego: Any = spnego
        for value, what in ((user, "user name"), (password, "password"), (domain, "domain")):
            if value is not None:
                _utf8(value, what, self.name)
        username = f"{domain}\\{user}" if domain else user
        try:
            self._ctx = spnego.client(
                username,
                password,
                protocol="ntlm",
                # pyspnego's own NTLM, never a system GSS-API NTLM module (gss-ntlmssp)
                options=spnego.NegotiateOptions.use_ntlm,
            )
            negotiate = self._ctx.step()
        except Exception as e:
            raise _software(self.name, str(e)) from None
        self._negotiate = negotiate or b""
        self._step = 0

    def initial_response(self) -> bytes | None:
        return None

    def respond(self, challenge: bytes) -> bytes:
        if self._step == 0:
            self._step = 1
            self._initial_sent = True
            if challenge:
                raise _invalid(self.name, "unexpected server challenge")
            return self._negotiate
        if self._step == 1:
            if not challenge.startswith(b"NTLMSSP\x00"):
                raise _invalid(self.name)
            try:
                authenticate = self._ctx.step(challenge)
            except Exception:
                raise _invalid(self.name) from None
            if not authenticate:
                raise _invalid(self.name)
            self._step = 2
            return authenticate
        raise _invalid(self.name, "unexpected server challenge")

    def finish(self, success_data: bytes | None = None) -> None:
        super().finish(success_data)
        if self._step < 2:
            raise _invalid(self.name, "server accepted before receiving the response")


# ---------------------------------------------------------------------------------------------
# factory


def create_optional(
    name: str,
    *,
    user: str | None,
    password: str | None,
    host: str | None,
    ntlmdomain: str | None = None,
) -> Mechanism:
    """Build GSSAPI or NTLM as msmtp sets GNU SASL up for them (service ``smtp``, host name
    ``host``, NTLM realm ``ntlmdomain``; GSSAPI gets no authorization identity and needs no
    password).  Raises :class:`SASLError`:

    - package missing: "authentication method GSSAPI is not available (needs the Python
      package gssapi)" (exit 70);
    - NTLM without user or password: "authentication method NTLM needs a user name" /
      "... needs a password" (69), as :func:`msmtp_twisted.auth.mechanisms.create`;
    - GSSAPI without a usable ticket: "authentication method GSSAPI: <Kerberos message>" (70);
    - any other name: "authentication method X not supported" (70).
    """
    mech = name.upper()
    if mech not in PACKAGES:
        raise SASLError(
            f"authentication method {mech} not supported", mechanism=mech, exitcode=EX_SOFTWARE
        )
    why = availability()[mech]
    if why is not None:
        raise _not_available(mech, why)
    if mech == "GSSAPI":
        return GSSAPI(host or "localhost")
    user, password = require_credentials(mech, user, password)
    return NTLM(user, password, ntlmdomain)
