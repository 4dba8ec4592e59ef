"""Pure SASL client mechanisms: small step objects with no I/O.

Every mechanism has:

- ``name``: the SASL name (``"SCRAM-SHA-256-PLUS"``);
- ``initial_response() -> bytes | None``: the initial response to send with ``AUTH <name>``,
  or None when the mechanism has none. ``b""`` is an *empty* initial response, which goes on the
  wire as ``=`` (RFC 4954); use :func:`encode_initial_response`. Calling it marks the
  initial response as sent;
- ``respond(challenge: bytes) -> bytes``: the answer to one server challenge (the base64-decoded
  text of a 334 reply; :func:`decode_challenge` decodes it). Raises :class:`SASLError` on a
  malformed or unexpected challenge, or when the server fails to prove itself;
- ``finish(success_data: bytes | None = None) -> None``: called when the server accepted (235).
  Mechanisms that authenticate the server (SCRAM, DIGEST-MD5) raise :class:`SASLError` if the
  server never proved itself;
- ``server_error: str | None``: what the server reported in-band about a failure (the OAuth JSON
  ``status``, a SCRAM ``e=`` value), for the caller to add to its message after a 5xx.

Nothing here imports Twisted or touches the network.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import stringprep
import unicodedata
from collections.abc import Callable

from msmtp_twisted.sysexits import EX_NOPERM, EX_PROTOCOL, EX_SOFTWARE, EX_UNAVAILABLE

__all__ = [
    "MECHANISMS",
    "CHANNEL_BINDING_TYPES",
    "SASLError",
    "SASLProtocolError",
    "SASLAuthError",
    "Mechanism",
    "Plain",
    "Login",
    "CramMD5",
    "DigestMD5",
    "Scram",
    "OAuthBearer",
    "XOAuth2",
    "External",
    "create",
    "require_credentials",
    "saslprep",
    "decode_challenge",
    "encode_initial_response",
    "encode_response",
]

CHANNEL_BINDING_TYPES = ("tls-exporter", "tls-unique")

#: Largest SCRAM iteration count accepted (a hostile server could otherwise stall the client).
MAX_SCRAM_ITERATIONS = 10_000_000


class SASLError(Exception):
    """A SASL exchange cannot go on.

    ``str(err)`` is the complete message in msmtp's words; ``exitcode`` is the sysexits code
    msmtp would exit with; ``mechanism`` the SASL name; ``server_error`` what the server said
    in-band, if anything.
    """

    exitcode = EX_NOPERM

    def __init__(
        self,
        message: str,
        *,
        mechanism: str | None = None,
        exitcode: int | None = None,
        server_error: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.mechanism = mechanism
        self.server_error = server_error
        if exitcode is not None:
            self.exitcode = exitcode


class SASLProtocolError(SASLError):
    """The server sent a malformed or unexpected challenge (msmtp: SMTP_EPROTO, exit 76)."""

    exitcode = EX_PROTOCOL


class SASLAuthError(SASLError):
    """Authentication failed in-band: bad server signature, server-reported error (exit 77)."""

    exitcode = EX_NOPERM


def _invalid(mech: str, detail: str = "server sent invalid challenge") -> SASLProtocolError:
    # msmtp: "authentication method CRAM-MD5: server sent invalid challenge"
    return SASLProtocolError(f"authentication method {mech}: {detail}", mechanism=mech)


def _software(mech: str, detail: str) -> SASLError:
    # msmtp: "authentication method PLAIN: ..." with EX_SOFTWARE, before or during AUTH
    return SASLError(f"authentication method {mech}: {detail}", mechanism=mech,
                     exitcode=EX_SOFTWARE)


def _authfail(mech: str, detail: str, server_error: str | None = None) -> SASLAuthError:
    # msmtp: "authentication failed: %s (method %s)"
    return SASLAuthError(
        f"authentication failed: {detail} (method {mech})",
        mechanism=mech,
        server_error=server_error,
    )


# ---------------------------------------------------------------------------------------------
# wire helpers


def decode_challenge(text: str | bytes, mechanism: str = "SASL") -> bytes:
    """Decode the base64 text of a 334 reply (after ``334 ``); strict, raises SASLProtocolError."""
    if isinstance(text, str):
        try:
            text = text.encode("ascii")
        except UnicodeEncodeError:
            raise _invalid(mechanism) from None
    text = text.strip()
    if text == b"=":
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _invalid(mechanism) from None


def encode_initial_response(data: bytes) -> str:
    """Initial response for ``AUTH <mech> <this>``: the empty one is ``=`` (RFC 4954 §4)."""
    if data == b"":
        return "="
    return base64.b64encode(data).decode("ascii")


def encode_response(data: bytes) -> str:
    """A response to a 334 challenge: base64, the empty response is an empty line."""
    return base64.b64encode(data).decode("ascii")


# ---------------------------------------------------------------------------------------------
# SASLprep (RFC 4013) via stringprep (RFC 3454)

_PROHIBITED: tuple[Callable[[str], bool], ...] = (
    stringprep.in_table_c12,
    stringprep.in_table_c21,
    stringprep.in_table_c22,
    stringprep.in_table_c3,
    stringprep.in_table_c4,
    stringprep.in_table_c5,
    stringprep.in_table_c6,
    stringprep.in_table_c7,
    stringprep.in_table_c8,
    stringprep.in_table_c9,
)


def saslprep(text: str, *, allow_unassigned: bool = True) -> str:
    """Prepare a user name or password per RFC 4013; raises ValueError on prohibited input.

    ``allow_unassigned`` is True for "queries" (what a client sends), as RFC 4013 §2.5 allows.
    """
    mapped = []
    for ch in text:
        if stringprep.in_table_b1(ch):
            continue
        if stringprep.in_table_c12(ch):
            ch = " "
        mapped.append(ch)
    normalized = unicodedata.ucd_3_2_0.normalize("NFKC", "".join(mapped))
    if not normalized:
        return normalized
    for ch in normalized:
        if any(table(ch) for table in _PROHIBITED):
            raise ValueError(f"prohibited character U+{ord(ch):04X}")
        if not allow_unassigned and stringprep.in_table_a1(ch):
            raise ValueError(f"unassigned code point U+{ord(ch):04X}")
    ral = [stringprep.in_table_d1(ch) for ch in normalized]
    if any(ral):
        if any(stringprep.in_table_d2(ch) for ch in normalized):
            raise ValueError("mixed bidirectional text")
        if not (ral[0] and ral[-1]):
            raise ValueError("bidirectional text must start and end with RandALCat")
    return normalized


def _saslname(name: str) -> str:
    # RFC 5802 §5.1: "=" -> "=3D", "," -> "=2C"
    return name.replace("=", "=3D").replace(",", "=2C")


# ---------------------------------------------------------------------------------------------
# base


class Mechanism:
    """Base class; see the module docstring for the protocol."""

    name = ""

    def __init__(self) -> None:
        self.server_error: str | None = None
        self._initial_sent = False

    def initial_response(self) -> bytes | None:
        return None

    def respond(self, challenge: bytes) -> bytes:  # pragma: no cover - overridden
        raise _invalid(self.name, "unexpected server challenge")

    def finish(self, success_data: bytes | None = None) -> None:
        if success_data:
            raise _invalid(self.name, "unexpected data with success reply")

    def __repr__(self) -> str:  # never show secrets
        return f"<{type(self).__name__} {self.name}>"


class _SingleMessage(Mechanism):
    """A mechanism whose whole client side is one message (PLAIN, EXTERNAL)."""

    def _message(self) -> bytes:
        raise NotImplementedError

    def initial_response(self) -> bytes | None:
        self._initial_sent = True
        return self._message()

    def respond(self, challenge: bytes) -> bytes:
        # A server that did not get (or ignored) the initial response asks with an empty 334.
        if challenge == b"" and not self._initial_sent:
            self._initial_sent = True
            return self._message()
        raise _invalid(self.name, "unexpected server challenge")


def _utf8(value: str, what: str, mech: str) -> bytes:
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise _software(mech, f"{what} is not valid UTF-8") from None


# ---------------------------------------------------------------------------------------------
# PLAIN, LOGIN, EXTERNAL, CRAM-MD5


class Plain(_SingleMessage):
    """RFC 4616 with an empty authzid: ``\\0user\\0password``."""

    name = "PLAIN"

    def __init__(self, user: str, password: str) -> None:
        super().__init__()
        self._user = _utf8(user, "user name", self.name)
        self._password = _utf8(password, "password", self.name)

    def _message(self) -> bytes:
        return b"\0" + self._user + b"\0" + self._password


class External(_SingleMessage):
    """RFC 4422 Appendix A: the authzid (the user, or empty for the certificate's identity).

    An empty authzid is the empty initial response ``=`` — never "no response".
    """

    name = "EXTERNAL"

    def __init__(self, user: str | None = None) -> None:
        super().__init__()
        self._authzid = _utf8(user or "", "user name", self.name)

    def _message(self) -> bytes:
        return self._authzid


class Login(Mechanism):
    """The non-standard LOGIN: answer the first prompt with the user, the second with the password.

    Like msmtp, the prompt texts (normally ``Username:`` and ``Password:``) are not checked.
    """

    name = "LOGIN"

    def __init__(self, user: str, password: str) -> None:
        super().__init__()
        self._answers = [
            _utf8(user, "user name", self.name),
            _utf8(password, "password", self.name),
        ]
        self._step = 0

    def respond(self, challenge: bytes) -> bytes:
        if self._step >= len(self._answers):
            raise _invalid(self.name, "unexpected server challenge")
        answer = self._answers[self._step]
        self._step += 1
        return answer

    def finish(self, success_data: bytes | None = None) -> None:
        super().finish(success_data)
        if self._step < len(self._answers):
            raise _invalid(self.name, "server accepted before receiving the password")


class CramMD5(Mechanism):
    """RFC 2195: ``user SP hex(HMAC-MD5(password, challenge))``."""

    name = "CRAM-MD5"

    def __init__(self, user: str, password: str) -> None:
        super().__init__()
        self._user = _utf8(user, "user name", self.name)
        self._password = _utf8(password, "password", self.name)
        self._done = False

    def respond(self, challenge: bytes) -> bytes:
        if self._done:
            raise _invalid(self.name, "unexpected server challenge")
        if not challenge:
            raise _invalid(self.name)
        self._done = True
        digest = hmac.new(self._password, challenge, hashlib.md5).hexdigest()
        return self._user + b" " + digest.encode("ascii")


# ---------------------------------------------------------------------------------------------
# DIGEST-MD5 (RFC 2831)


def _parse_digest_challenge(data: bytes, mech: str) -> dict[str, list[str]]:
    """Parse ``key=value, key="quoted"`` pairs. Raises SASLProtocolError."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid(mech) from None
    result: dict[str, list[str]] = {}
    i, n = 0, len(text)
    ws = " \t\r\n"
    while True:
        while i < n and (text[i] in ws or text[i] == ","):
            i += 1
        if i >= n:
            break
        start = i
        while i < n and text[i] not in "=," + ws:
            i += 1
        key = text[start:i].lower()
        while i < n and text[i] in ws:
            i += 1
        if not key or i >= n or text[i] != "=":
            raise _invalid(mech)
        i += 1
        while i < n and text[i] in ws:
            i += 1
        if i < n and text[i] == '"':
            i += 1
            chars = []
            while True:
                if i >= n:
                    raise _invalid(mech)
                c = text[i]
                if c == "\\":
                    if i + 1 >= n:
                        raise _invalid(mech)
                    chars.append(text[i + 1])
                    i += 2
                    continue
                if c == '"':
                    i += 1
                    break
                chars.append(c)
                i += 1
            value = "".join(chars)
        else:
            start = i
            while i < n and text[i] not in "," + ws:
                i += 1
            value = text[start:i]
        while i < n and text[i] in ws:
            i += 1
        if i < n and text[i] != ",":
            raise _invalid(mech)
        result.setdefault(key, []).append(value)
    return result


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class DigestMD5(Mechanism):
    """RFC 2831 client, qop=auth only, verifying the server's ``rspauth``.

    ``realm``: use this realm; by default the first realm the server offers, or none.
    ``host`` and ``service`` make the digest-uri ``service/host``.
    """

    name = "DIGEST-MD5"

    def __init__(
        self,
        user: str,
        password: str,
        host: str,
        *,
        service: str = "smtp",
        realm: str | None = None,
        authzid: str | None = None,
        cnonce: str | None = None,
    ) -> None:
        super().__init__()
        for value, what in ((user, "user name"), (password, "password"), (host, "host name")):
            _utf8(value, what, self.name)
        for value, what in ((realm, "realm"), (authzid, "authzid")):
            if value is not None:
                _utf8(value, what, self.name)
        self._user = user
        self._password = password
        self._host = host
        self._service = service
        self._realm = realm
        self._authzid = authzid
        self._cnonce = cnonce or base64.b64encode(os.urandom(18)).decode("ascii")
        self._step = 0
        self._rspauth: str | None = None
        self.verified = False

    def _encode(self, value: str, utf8: bool) -> bytes:
        # RFC 2831 §2.1.2.1: with charset=utf-8, strings representable in ISO 8859-1 are
        # converted to it; otherwise UTF-8.
        try:
            return value.encode("iso-8859-1")
        except UnicodeEncodeError:
            if utf8:
                return value.encode("utf-8", "surrogatepass")
            raise _software(self.name, "user name or password not in ISO 8859-1") from None

    def _first(self, challenge: bytes) -> bytes:
        mech = self.name
        fields = _parse_digest_challenge(challenge, mech)
        for key, values in fields.items():
            if key != "realm" and len(values) > 1:
                raise _invalid(mech, f"duplicate directive {key} in challenge")
        nonce = fields.get("nonce", [None])[0]
        if not nonce:
            raise _invalid(mech, "challenge has no nonce")
        algorithm = fields.get("algorithm", [None])[0]
        if algorithm is None or algorithm.lower() != "md5-sess":
            raise _invalid(mech, "challenge has no algorithm=md5-sess")
        qops = [q.strip().lower() for q in fields.get("qop", ["auth"])[0].split(",")]
        if "auth" not in qops:
            raise _invalid(mech, "server does not offer qop=auth")
        charset = fields.get("charset", [None])[0]
        if charset is not None and charset.lower() != "utf-8":
            raise _invalid(mech, "invalid charset in challenge")
        utf8 = charset is not None
        if self._realm is not None:
            realm: str | None = self._realm
        else:
            offered = fields.get("realm")
            realm = offered[0] if offered else None

        digest_uri = f"{self._service}/{self._host}"
        nc = "00000001"
        user_b = self._encode(self._user, utf8)
        realm_b = self._encode(realm or "", utf8)
        pass_b = self._encode(self._password, utf8)
        nonce_b = nonce.encode("utf-8")
        cnonce_b = self._cnonce.encode("utf-8")
        a1 = hashlib.md5(user_b + b":" + realm_b + b":" + pass_b).digest()
        a1 += b":" + nonce_b + b":" + cnonce_b
        if self._authzid:
            a1 += b":" + self._authzid.encode("utf-8")
        ha1 = hashlib.md5(a1).hexdigest()

        def kd(a2: str) -> str:
            ha2 = hashlib.md5(a2.encode("utf-8")).hexdigest()
            return hashlib.md5(f"{ha1}:{nonce}:{nc}:{self._cnonce}:auth:{ha2}".encode()).hexdigest()

        response = kd("AUTHENTICATE:" + digest_uri)
        self._rspauth = kd(":" + digest_uri)

        parts = []
        if utf8:
            parts.append("charset=utf-8")
        parts.append("username=" + _quote(self._user))
        if realm is not None:
            parts.append("realm=" + _quote(realm))
        parts.append("nonce=" + _quote(nonce))
        parts.append("nc=" + nc)
        parts.append("cnonce=" + _quote(self._cnonce))
        parts.append("digest-uri=" + _quote(digest_uri))
        parts.append("response=" + response)
        parts.append("qop=auth")
        if self._authzid:
            parts.append("authzid=" + _quote(self._authzid))
        try:
            return ",".join(parts).encode("utf-8" if utf8 else "iso-8859-1")
        except UnicodeEncodeError:
            raise _invalid(mech, "challenge needs charset=utf-8") from None

    def respond(self, challenge: bytes) -> bytes:
        self._step += 1
        if self._step == 1:
            return self._first(challenge)
        if self._step == 2:
            fields = _parse_digest_challenge(challenge, self.name)
            got = fields.get("rspauth")
            if not got or len(got) != 1:
                raise _invalid(self.name, "server sent no rspauth")
            assert self._rspauth is not None
            if not hmac.compare_digest(got[0].lower().encode(), self._rspauth.encode()):
                raise _authfail(self.name, "server response mismatch (rspauth)")
            self.verified = True
            return b""
        raise _invalid(self.name, "unexpected server challenge")

    def finish(self, success_data: bytes | None = None) -> None:
        if not self.verified:
            if success_data and self._step == 1:
                self.respond(success_data)
                return
            raise _authfail(self.name, "server did not prove it knows the password")
        super().finish(success_data)


# ---------------------------------------------------------------------------------------------
# SCRAM (RFC 5802, 7677, 5929, 9266)


def _scram_attrs(data: bytes, mech: str) -> list[tuple[str, str]]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid(mech) from None
    attrs = []
    for part in text.split(","):
        if len(part) < 2 or part[1] != "=" or not part[0].isascii() or not part[0].isalpha():
            raise _invalid(mech)
        attrs.append((part[0], part[2:]))
    return attrs


def _b64(value: str, mech: str) -> bytes:
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise _invalid(mech) from None


class Scram(Mechanism):
    """SCRAM-SHA-1 / SCRAM-SHA-256 and their -PLUS variants.

    ``channel_binding`` is ``(type, data)``, type ``"tls-exporter"`` (RFC 9266, TLS 1.3) or
    ``"tls-unique"`` (RFC 5929); required for -PLUS. For a non-PLUS mechanism, passing it (or
    ``client_supports_binding=True``) sends the ``y`` flag ("I could bind, but you don't offer
    -PLUS"), which lets a server detect a -PLUS downgrade; otherwise the flag is ``n``.
    ``nonce`` injects the client nonce (tests); by default 18 random bytes, base64.
    """

    def __init__(
        self,
        user: str,
        password: str,
        *,
        hash_name: str = "sha256",
        plus: bool = False,
        channel_binding: tuple[str, bytes] | None = None,
        client_supports_binding: bool = False,
        authzid: str | None = None,
        nonce: str | None = None,
    ) -> None:
        super().__init__()
        if hash_name not in ("sha1", "sha256"):
            raise ValueError(hash_name)
        self.hash_name = hash_name
        self.plus = plus
        self.name = ("SCRAM-SHA-1" if hash_name == "sha1" else "SCRAM-SHA-256") + (
            "-PLUS" if plus else ""
        )
        if channel_binding is not None:
            cb_type, cb_data = channel_binding
            if cb_type not in CHANNEL_BINDING_TYPES:
                raise _software(self.name, f"unsupported channel binding type {cb_type}")
            if not isinstance(cb_data, bytes | bytearray):
                raise TypeError("channel binding data must be bytes")
        if plus and channel_binding is None:
            raise SASLError(
                f"authentication method {self.name} needs TLS channel binding information",
                mechanism=self.name,
                exitcode=EX_UNAVAILABLE,
            )
        try:
            user_p = saslprep(user)
            self._password = saslprep(password).encode("utf-8")
            authzid_p = saslprep(authzid) if authzid else ""
        except ValueError as e:
            raise _software(self.name, f"SASLprep failed: {e}") from None
        self._nonce = nonce or base64.b64encode(os.urandom(18)).decode("ascii")
        if not self._nonce or any(c == "," or not (0x21 <= ord(c) <= 0x7E) for c in self._nonce):
            raise ValueError("invalid client nonce")
        if plus:
            assert channel_binding is not None
            flag = f"p={channel_binding[0]}"
            cb_data = bytes(channel_binding[1])
        else:
            flag = "y" if (channel_binding is not None or client_supports_binding) else "n"
            cb_data = b""
        authz = f"a={_saslname(authzid_p)}" if authzid_p else ""
        self._gs2_header = f"{flag},{authz},".encode()
        self._cbind_input = self._gs2_header + cb_data
        self._client_first_bare = f"n={_saslname(user_p)},r={self._nonce}".encode()
        self._step = 0
        self._auth_message = b""
        self._server_signature = b""
        self.verified = False

    # -- primitives
    def _hmac(self, key: bytes, msg: bytes) -> bytes:
        return hmac.new(key, msg, self.hash_name).digest()

    def _h(self, data: bytes) -> bytes:
        return hashlib.new(self.hash_name, data).digest()

    # -- steps
    def initial_response(self) -> bytes | None:
        self._initial_sent = True
        self._step = max(self._step, 1)
        return self._gs2_header + self._client_first_bare

    def respond(self, challenge: bytes) -> bytes:
        if self._step == 0:
            # The server asked for the client-first message with an empty challenge.
            if challenge:
                raise _invalid(self.name, "unexpected server challenge")
            out = self.initial_response()
            assert out is not None
            return out
        if self._step == 1:
            self._step = 2
            return self._client_final(challenge)
        if self._step == 2:
            self._step = 3
            self._verify(challenge)
            return b""
        raise _invalid(self.name, "unexpected server challenge")

    def _client_final(self, server_first: bytes) -> bytes:
        mech = self.name
        attrs = _scram_attrs(server_first, mech)
        if attrs and attrs[0][0] == "e":
            self.server_error = attrs[0][1]
            raise _authfail(mech, f"server reported error: {attrs[0][1]}", attrs[0][1])
        if attrs and attrs[0][0] == "m":
            raise _invalid(mech, "server requires an unsupported extension")
        if len(attrs) < 3 or [k for k, _ in attrs[:3]] != ["r", "s", "i"]:
            raise _invalid(mech)
        nonce, salt_b64, iter_text = (v for _, v in attrs[:3])
        if (
            not nonce.startswith(self._nonce)
            or len(nonce) <= len(self._nonce)
            or any(c == "," or not (0x21 <= ord(c) <= 0x7E) for c in nonce)
        ):
            raise _invalid(mech, "server sent invalid nonce")
        salt = _b64(salt_b64, mech)
        if not salt:
            raise _invalid(mech, "server sent empty salt")
        if not iter_text.isascii() or not iter_text.isdigit() or iter_text.startswith("0"):
            raise _invalid(mech, "server sent invalid iteration count")
        iterations = int(iter_text)
        if iterations > MAX_SCRAM_ITERATIONS:
            raise _invalid(mech, "server sent excessive iteration count")

        salted = hashlib.pbkdf2_hmac(self.hash_name, self._password, salt, iterations)
        client_key = self._hmac(salted, b"Client Key")
        stored_key = self._h(client_key)
        server_key = self._hmac(salted, b"Server Key")
        without_proof = b"c=" + base64.b64encode(self._cbind_input) + b",r=" + nonce.encode("ascii")
        self._auth_message = self._client_first_bare + b"," + server_first + b"," + without_proof
        client_signature = self._hmac(stored_key, self._auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, client_signature, strict=True))
        self._server_signature = self._hmac(server_key, self._auth_message)
        return without_proof + b",p=" + base64.b64encode(proof)

    def _verify(self, server_final: bytes) -> None:
        mech = self.name
        attrs = _scram_attrs(server_final, mech)
        if not attrs:
            raise _invalid(mech)
        key, value = attrs[0]
        if key == "e":
            self.server_error = value
            raise _authfail(mech, f"server reported error: {value}", value)
        if key != "v":
            raise _invalid(mech)
        signature = _b64(value, mech)
        if not hmac.compare_digest(signature, self._server_signature):
            raise _authfail(mech, "server signature mismatch")
        self.verified = True

    def finish(self, success_data: bytes | None = None) -> None:
        if not self.verified:
            if success_data and self._step == 2:
                # Protocols that carry server-final in the success reply.
                self._step = 3
                self._verify(success_data)
                return
            raise _authfail(self.name, "server did not prove it knows the password")
        super().finish(success_data)


# ---------------------------------------------------------------------------------------------
# OAUTHBEARER (RFC 7628), XOAUTH2


def _json_status(data: bytes) -> tuple[str, dict[str, object]] | None:
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    status = obj.get("status")
    if isinstance(status, str):
        text = status
    else:  # no (string) status: show what the server sent
        text = json.dumps(obj if status is None else status)
    return text, obj


class _OAuth(Mechanism):
    _error_response = b""

    def __init__(self) -> None:
        super().__init__()
        self.server_error_json: dict[str, object] | None = None
        self._errored = False

    def _message(self) -> bytes:
        raise NotImplementedError

    def initial_response(self) -> bytes | None:
        self._initial_sent = True
        return self._message()

    def respond(self, challenge: bytes) -> bytes:
        if not self._initial_sent and challenge == b"":
            self._initial_sent = True
            return self._message()
        if self._errored:
            raise _invalid(self.name, "unexpected server challenge")
        parsed = _json_status(challenge)
        if parsed is None:
            raise _invalid(self.name)
        self._errored = True
        self.server_error, self.server_error_json = parsed
        return self._error_response


class OAuthBearer(_OAuth):
    """RFC 7628: ``n,a=USER,^A[host=H^Aport=P^A]auth=Bearer TOKEN^A^A``.

    msmtp adds ``host`` and ``port``; pass them to do the same. On an error challenge (JSON)
    the response is ``^A`` and the JSON ``status`` lands in ``server_error``.
    """

    name = "OAUTHBEARER"
    _error_response = b"\x01"

    def __init__(
        self, user: str, token: str, *, host: str | None = None, port: int | None = None
    ) -> None:
        super().__init__()
        self._user = _utf8(_saslname(user), "user name", self.name)
        self._token = _utf8(token, "token", self.name)
        self._host = _utf8(host, "host name", self.name) if host is not None else None
        self._port = port

    def _message(self) -> bytes:
        out = b"n,a=" + self._user + b",\x01"
        if self._host is not None:
            out += b"host=" + self._host + b"\x01"
        if self._port is not None:
            out += b"port=%d\x01" % self._port
        return out + b"auth=Bearer " + self._token + b"\x01\x01"


class XOAuth2(_OAuth):
    """Google/Microsoft XOAUTH2: ``user=U^Aauth=Bearer T^A^A``; on a JSON error, an empty reply."""

    name = "XOAUTH2"
    _error_response = b""

    def __init__(self, user: str, token: str) -> None:
        super().__init__()
        self._user = _utf8(user, "user name", self.name)
        self._token = _utf8(token, "token", self.name)

    def _message(self) -> bytes:
        return b"user=" + self._user + b"\x01auth=Bearer " + self._token + b"\x01\x01"


# ---------------------------------------------------------------------------------------------
# factory

#: Mechanisms implemented here, in msmtp's preference order.
MECHANISMS = (
    "SCRAM-SHA-256-PLUS",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-256",
    "SCRAM-SHA-1",
    "PLAIN",
    "EXTERNAL",
    "OAUTHBEARER",
    "CRAM-MD5",
    "DIGEST-MD5",
    "LOGIN",
    "XOAUTH2",
)


def require_credentials(mech: str, user: str | None,
                        password: str | None) -> tuple[str, str]:
    """``(user, password)``, or msmtp's "authentication method X needs a user name" /
    "... needs a password" (exit 69)."""
    for value, what in ((user, "a user name"), (password, "a password")):
        if value is None:
            raise SASLError(f"authentication method {mech} needs {what}",
                            mechanism=mech, exitcode=EX_UNAVAILABLE)
    assert user is not None and password is not None
    return user, password


def create(
    name: str,
    *,
    user: str | None = None,
    password: str | None = None,
    host: str | None = None,
    port: int | None = None,
    service: str = "smtp",
    channel_binding: tuple[str, bytes] | None = None,
    ntlmdomain: str | None = None,
) -> Mechanism:
    """Build the mechanism ``name`` (case-insensitive). ``password`` is the OAuth token for
    OAUTHBEARER/XOAUTH2. Raises SASLError with msmtp's messages:

    - unknown name: "authentication method X not supported" (exit 70);
    - no user: "authentication method X needs a user name" (69);
    - no password: "authentication method X needs a password" (69);
    - -PLUS without binding: "authentication method X needs TLS channel binding information" (69).
    """
    mech = name.upper()
    if mech in ("GSSAPI", "NTLM"):
        from msmtp_twisted.auth.optional import create_optional

        return create_optional(mech, user=user, password=password, host=host,
                               ntlmdomain=ntlmdomain)
    if mech not in MECHANISMS:
        raise SASLError(
            f"authentication method {mech} not supported", mechanism=mech, exitcode=EX_SOFTWARE
        )
    if mech == "EXTERNAL":
        return External(user)
    user, password = require_credentials(mech, user, password)
    if mech.startswith("SCRAM-"):
        return Scram(
            user,
            password,
            hash_name="sha1" if mech.startswith("SCRAM-SHA-1") else "sha256",
            plus=mech.endswith("-PLUS"),
            # Only -PLUS gets the binding: with it, a non-PLUS exchange would send the "y" flag,
            # which a server offering -PLUS must reject (explicit "auth scram-sha-256").
            channel_binding=channel_binding if mech.endswith("-PLUS") else None,
        )
    if mech == "PLAIN":
        return Plain(user, password)
    if mech == "LOGIN":
        return Login(user, password)
    if mech == "CRAM-MD5":
        return CramMD5(user, password)
    if mech == "DIGEST-MD5":
        return DigestMD5(user, password, host or "localhost", service=service)
    if mech == "OAUTHBEARER":
        return OAuthBearer(user, password, host=host, port=port)
    return XOAuth2(user, password)
