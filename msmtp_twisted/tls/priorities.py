"""``tls_priorities``: the libtls and GnuTLS priority strings, mapped onto OpenSSL.

Pure parsing: :func:`parse_priorities` gives a :class:`Priorities` that
:mod:`msmtp_twisted.tls.context` applies to an OpenSSL context.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["VERSIONS", "Priorities", "PriorityError", "parse_priorities"]


# ---------------------------------------------------------------------------
# tls_priorities


class PriorityError(ValueError):
    """An unusable priority string; the text follows msmtp's
    ``cannot set priorities for TLS session: ``."""


#: Protocol versions as (major, minor) tuples.
VERSIONS = ((1, 0), (1, 1), (1, 2), (1, 3))
_VERSION_NAMES = {(1, 0): "TLS1.0", (1, 1): "TLS1.1", (1, 2): "TLS1.2", (1, 3): "TLS1.3"}


@dataclass
class Priorities:
    """What a ``tls_priorities`` string asks of OpenSSL; None means OpenSSL's default.

    ``ciphers`` is an OpenSSL cipher list for TLS 1.2 and below,
    ``ciphersuites`` the TLS 1.3 suites, ``groups`` a key exchange group list
    (``X25519:P-256``), ``legacy`` lowers OpenSSL's security level so that
    TLS 1.0/1.1 can be negotiated at all.
    """

    min_version: tuple[int, int] | None = None
    max_version: tuple[int, int] | None = None
    ciphers: str | None = None
    ciphersuites: str | None = None
    groups: str | None = None
    legacy: bool = False


#: GnuTLS cipher names -> (TLS 1.3 suite or None, OpenSSL TLS 1.2 cipher string)
_GNUTLS_CIPHERS: dict[str, tuple[str | None, str]] = {
    "AES-256-GCM": ("TLS_AES_256_GCM_SHA384", "AESGCM+AES256"),
    "CHACHA20-POLY1305": ("TLS_CHACHA20_POLY1305_SHA256", "CHACHA20"),
    "AES-256-CCM": (None, "AESCCM+AES256"),
    "AES-256-CBC": (None, "AES256+SHA1:AES256+SHA256:AES256+SHA384"),
    "AES-128-GCM": ("TLS_AES_128_GCM_SHA256", "AESGCM+AES128"),
    "AES-128-CCM": ("TLS_AES_128_CCM_SHA256", "AESCCM+AES128"),
    "AES-128-CBC": (None, "AES128+SHA1:AES128+SHA256"),
}
#: GnuTLS's NORMAL cipher order
_NORMAL_CIPHERS = list(_GNUTLS_CIPHERS)
_SECURE256_CIPHERS = ["AES-256-GCM", "CHACHA20-POLY1305", "AES-256-CCM", "AES-256-CBC"]
#: ciphers OpenSSL does not offer any more: removing them changes nothing
_GNUTLS_OBSOLETE_CIPHERS = {
    "ARCFOUR-128", "ARCFOUR-40", "ARCFOUR", "3DES-CBC", "DES-CBC", "RC2-40", "NULL",
    "CAMELLIA-128-CBC", "CAMELLIA-256-CBC", "CAMELLIA-128-GCM", "CAMELLIA-256-GCM",
    "AES-128-CCM-8", "AES-256-CCM-8", "GOST28147-TC26Z-CNT", "MAGMA-CTR-ACPKM",
    "KUZNYECHIK-CTR-ACPKM", "AES-128-SIV", "AES-256-SIV", "AES-128-SIV-GCM",
    "AES-256-SIV-GCM",
}
#: GnuTLS group names -> OpenSSL group names, in GnuTLS's NORMAL order
_GNUTLS_GROUPS: dict[str, str] = {
    "X25519": "X25519",
    "SECP256R1": "P-256",
    "X448": "X448",
    "SECP521R1": "P-521",
    "SECP384R1": "P-384",
    "FFDHE2048": "ffdhe2048",
    "FFDHE3072": "ffdhe3072",
    "FFDHE4096": "ffdhe4096",
    "FFDHE6144": "ffdhe6144",
    "FFDHE8192": "ffdhe8192",
}
_SECURE192_GROUPS = ["X448", "SECP521R1", "SECP384R1", "FFDHE8192"]
#: priority keywords (the string's first element)
_GNUTLS_KEYWORDS = {
    "NORMAL", "PFS", "SECURE128", "SECURE192", "SECURE256", "SUITEB128", "SUITEB192",
    "PERFORMANCE", "LEGACY", "NONE", "@SYSTEM",
}
#: elements accepted and left to OpenSSL: key exchange, MAC, signature, compression
_GNUTLS_NOOP_EXACT = {
    "RSA", "DHE-RSA", "DHE-DSS", "ECDHE-RSA", "ECDHE-ECDSA", "ECDHE-PSK", "DHE-PSK",
    "RSA-PSK", "PSK", "ANON-DH", "ANON-ECDH", "SRP", "SRP-RSA", "SRP-DSS", "VKO-GOST-12",
    "KX-ALL", "SHA1", "SHA256", "SHA384", "SHA512", "MD5", "AEAD", "MAC-ALL", "UMAC-96",
    "UMAC-128", "GOST28147-TC26Z-IMIT", "GOSTR341194", "STREEBOG-256", "STREEBOG-512",
}
_GNUTLS_NOOP_PREFIXES = ("SIGN-", "COMP-", "CTYPE-")


def _libtls_protocols(value: str) -> tuple[tuple[int, int], tuple[int, int], bool]:
    """libtls's tls_config_parse_protocols() syntax -> (min, max, legacy)."""
    enabled: set[tuple[int, int]] = set()
    names = {"tlsv1.0": [(1, 0)], "tlsv1.1": [(1, 1)], "tlsv1.2": [(1, 2)],
             "tlsv1.3": [(1, 3)], "tlsv1": [(1, 0), (1, 1), (1, 2), (1, 3)],
             "all": list(VERSIONS), "legacy": list(VERSIONS),
             "secure": [(1, 2), (1, 3)], "default": [(1, 2), (1, 3)]}
    for word in value.replace(":", ",").split(","):
        word = word.strip().lower()
        if not word:
            continue
        negate = word[0] in "!-"
        if negate:
            word = word[1:]
        if word not in names:
            raise PriorityError("could not parse protocols")
        if negate:
            enabled -= set(names[word])
        else:
            enabled |= set(names[word])
    if not enabled:
        raise PriorityError("could not parse protocols")
    return _version_range(enabled, "could not parse protocols")


def _version_range(enabled: set[tuple[int, int]], problem: str
                   ) -> tuple[tuple[int, int], tuple[int, int], bool]:
    ordered = sorted(enabled)
    low, high = ordered[0], ordered[-1]
    if [v for v in VERSIONS if low <= v <= high] != ordered:
        raise PriorityError(problem)  # OpenSSL can only do a range of versions
    return low, high, low < (1, 2)


def _libtls_ciphers(value: str) -> tuple[str | None, str | None, bool]:
    """libtls's cipher keywords or an OpenSSL cipher list -> (ciphers, suites, legacy)."""
    keyword = value.lower()
    if keyword in ("secure", "default"):
        return "HIGH:!aNULL:!eNULL:!kRSA:!SHA1", None, False
    if keyword == "compat":
        return "HIGH:!aNULL:!eNULL", None, False
    if keyword in ("legacy", "insecure", "all"):
        return "ALL:!aNULL:!eNULL:@SECLEVEL=0", None, True
    tls12 = [c for c in value.replace(",", ":").split(":") if c and not c.startswith("TLS_")]
    tls13 = [c for c in value.replace(",", ":").split(":") if c.startswith("TLS_")]
    return (":".join(tls12) or None), (":".join(tls13) or None), False


def _parse_libtls(text: str) -> Priorities:
    """``PROTOCOLS=... CIPHERS=... ECDHECURVES=...``: each value runs to the next
    space, as msmtp's libtls code reads it; anything else is ignored."""
    result = Priorities()
    values = {}
    for key in ("PROTOCOLS=", "CIPHERS=", "ECDHECURVES="):
        at = text.find(key)
        if at >= 0:
            values[key] = text[at + len(key):].split(" ", 1)[0]
    if "ECDHECURVES=" in values:
        curves = values["ECDHECURVES="]
        if curves.lower() != "default":
            names = [c for c in curves.replace(",", ":").split(":") if c]
            if not names:
                raise PriorityError(f"invalid ecdhe curve '{curves}'")
            result.groups = ":".join(names)
    if "CIPHERS=" in values:
        result.ciphers, result.ciphersuites, legacy = _libtls_ciphers(values["CIPHERS="])
        result.legacy |= legacy
    if "PROTOCOLS=" in values:
        low, high, legacy = _libtls_protocols(values["PROTOCOLS="])
        result.min_version, result.max_version = low, high
        result.legacy |= legacy
    return result


def _parse_gnutls(text: str) -> Priorities:
    """The GnuTLS priority syntax, for the parts that map onto OpenSSL."""
    def fail(at: int) -> PriorityError:
        return PriorityError(f"error in priority string at position {at + 1}")

    # GnuTLS's keywords enable TLS 1.0 to 1.3; OpenSSL only goes below 1.2 when a
    # lower version is asked for by name
    versions: set[tuple[int, int]] = set(VERSIONS)
    explicit: set[tuple[int, int]] = set()
    ciphers: list[str] | None = None
    groups: list[str] | None = None
    offset = 0
    for index, element in enumerate(text.split(":")):
        at = offset
        offset += len(element) + 1
        if index == 0:
            keyword = element.split(",")[0] if element.startswith("@") else element
            if keyword not in _GNUTLS_KEYWORDS:
                raise fail(at)
            if keyword == "NONE":
                versions, ciphers, groups = set(), [], []
            elif keyword == "LEGACY":
                explicit = set(VERSIONS)
            elif keyword in ("SECURE192", "SECURE256", "SUITEB192"):
                ciphers, groups = list(_SECURE256_CIPHERS), list(_SECURE192_GROUPS)
            continue
        if not element:
            raise fail(at)
        if element.startswith("%"):
            continue  # %COMPAT, %SERVER_PRECEDENCE...: nothing to do for a client here
        sign, name = element[0], element[1:]
        if sign not in "+-!" or not name:
            raise fail(at)
        add = sign == "+"
        if name.startswith("VERS-"):
            which = name[5:]
            if which in ("ALL", "TLS-ALL"):
                chosen = set(VERSIONS)
            elif which.startswith("TLS1.") and which[5:] in ("0", "1", "2", "3"):
                chosen = {(1, int(which[5:]))}
            elif which in ("SSL3.0", "DTLS0.9", "DTLS1.0", "DTLS1.2", "DTLS-ALL") and not add:
                continue  # never enabled anyway
            else:
                raise fail(at)
            if add:
                versions |= chosen
                explicit |= chosen
            else:
                versions -= chosen
                explicit -= chosen
        elif name.startswith(("GROUP-", "CURVE-")):
            which = name.split("-", 1)[1]
            if groups is None:
                groups = list(_GNUTLS_GROUPS)
            if which == "ALL":
                groups = list(_GNUTLS_GROUPS) if add else []
            elif which in _GNUTLS_GROUPS:
                groups = [g for g in groups if g != which]
                if add:
                    groups.append(which)
            elif not add:
                continue
            else:
                raise fail(at)
        elif name == "CIPHER-ALL" or name in _GNUTLS_CIPHERS:
            if ciphers is None:
                ciphers = list(_NORMAL_CIPHERS)
            if name == "CIPHER-ALL":
                ciphers = list(_NORMAL_CIPHERS) if add else []
            else:
                ciphers = [c for c in ciphers if c != name]
                if add:
                    ciphers.append(name)
        elif name in _GNUTLS_OBSOLETE_CIPHERS:
            if add:
                raise fail(at)
        elif name in _GNUTLS_NOOP_EXACT or name.startswith(_GNUTLS_NOOP_PREFIXES):
            continue
        else:
            raise fail(at)
    result = Priorities()
    if not versions:
        raise PriorityError("no protocol version is enabled")
    if any(v >= (1, 2) for v in versions):
        asked = [v for v in versions & explicit if v < (1, 2)]
        floor = min(asked) if asked else (1, 2)
        versions = {v for v in versions if v >= floor}
    if versions != {(1, 2), (1, 3)}:
        low, high, legacy = _version_range(versions, "the enabled protocol versions "
                                           "are not a contiguous range")
        result.min_version, result.max_version, result.legacy = low, high, legacy
    if ciphers is not None:
        if not ciphers:
            raise PriorityError("no cipher is enabled")
        suites = [_GNUTLS_CIPHERS[c][0] for c in ciphers]
        result.ciphersuites = ":".join(s for s in suites if s)
        result.ciphers = ":".join(_GNUTLS_CIPHERS[c][1] for c in ciphers) + ":!aNULL:!eNULL"
    if groups is not None:
        if not groups:
            raise PriorityError("no key exchange group is enabled")
        result.groups = ":".join(_GNUTLS_GROUPS[g] for g in groups)
    return result


def parse_priorities(text: str | None) -> Priorities:
    """Map a ``tls_priorities`` string onto OpenSSL settings.

    Two syntaxes are understood:

    libtls (what the msmtp manual documents): space-separated
    ``PROTOCOLS=``, ``CIPHERS=`` and ``ECDHECURVES=`` parts; anything else in
    the string is ignored, as msmtp's libtls code ignores it.

    - ``PROTOCOLS=``: ``tlsv1.0``, ``tlsv1.1``, ``tlsv1.2``, ``tlsv1.3``,
      ``all``/``legacy`` (1.0-1.3), ``secure``/``default`` (1.2-1.3), separated by
      ``,`` or ``:``, a ``!``/``-`` prefix removes; case does not matter.  They
      become OpenSSL's minimum and maximum version (so they must be a range).
    - ``CIPHERS=``: ``secure``/``default``, ``compat``, ``legacy``/``insecure``/``all``
      or an OpenSSL cipher list; ``TLS_*`` names in it are TLS 1.3 suites.
    - ``ECDHECURVES=``: ``default`` or a list of OpenSSL group names
      (``X25519,P-256,P-384``).

    GnuTLS (what msmtp's GnuTLS build takes), for the parts that map cleanly:
    a keyword first (``NORMAL``, ``PFS``, ``SECURE128``, ``PERFORMANCE``,
    ``@SYSTEM`` mean OpenSSL's defaults; ``SECURE192``/``SECURE256`` keep the
    256-bit ciphers and 192-bit groups; ``LEGACY`` enables TLS 1.0/1.1; ``NONE``
    enables nothing), then ``:``-separated ``+``/``-`` elements:

    - ``VERS-TLS1.0`` ... ``VERS-TLS1.3``, ``VERS-ALL``, ``VERS-TLS-ALL``: the
      enabled versions, which must form a range.  As in GnuTLS the keywords
      enable 1.0 to 1.3, but 1.0 and 1.1 are only used when named with ``+``
      (``NORMAL:+VERS-TLS1.0``), by ``+VERS-ALL`` or ``LEGACY``, or when nothing
      newer is left (``NORMAL:-VERS-TLS1.2:-VERS-TLS1.3``);
    - ``AES-128-GCM``, ``AES-256-GCM``, ``CHACHA20-POLY1305``, ``AES-128-CCM``,
      ``AES-256-CCM``, ``AES-128-CBC``, ``AES-256-CBC``, ``CIPHER-ALL``: ciphers
      (for TLS 1.3 and below);
    - ``GROUP-X25519``, ``GROUP-SECP256R1`` ... ``GROUP-FFDHE8192``,
      ``GROUP-ALL`` (or ``CURVE-...``): key exchange groups;
    - removing obsolete ciphers (``-ARCFOUR-128``, ``-3DES-CBC``...) or versions
      (``-VERS-SSL3.0``) is accepted and changes nothing;
    - key exchange, MAC, ``SIGN-*``, ``COMP-*``, ``CTYPE-*`` elements and ``%``
      flags are accepted and left to OpenSSL.

    Anything else is an error, reported like GnuTLS does
    (``error in priority string at position N``).  TLS 1.0 and 1.1 are off
    unless asked for (OpenSSL refuses them at its default security level;
    asking for them lowers it).
    """
    if text is None or not text.strip():
        return Priorities()
    if any(key in text for key in ("PROTOCOLS=", "CIPHERS=", "ECDHECURVES=")):
        return _parse_libtls(text)
    return _parse_gnutls(text)
