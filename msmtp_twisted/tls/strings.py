"""Endpoint strings for implicit TLS with msmtp's checks: ``msmtp-tls:host:port:...``.

:class:`TLSEndpointParser` is the ``clientFromString`` plugin (registered in
``twisted/plugins/msmtp_twisted_plugins.py``); :func:`tls_client_endpoint`
parses a string directly; :func:`tls_options_from_fields` turns msmtp-style
names into :class:`~msmtp_twisted.tls.options.TLSOptions`.
"""

from __future__ import annotations

from typing import Any

from msmtp_twisted.net.description import endpoint_fields, split_description
from msmtp_twisted.tls.endpoint import TLSWrapperEndpoint
from msmtp_twisted.tls.options import TLSOptions

__all__ = ["TLSEndpointParser", "tls_client_endpoint", "tls_options_from_fields"]


def _onoff(value: str) -> bool:
    if value.lower() in ("on", "yes", "true", "1", ""):
        return True
    if value.lower() in ("off", "no", "false", "0"):
        return False
    raise ValueError(f"invalid on/off value {value!r}")


def tls_options_from_fields(host: str, fields: dict[str, str]) -> TLSOptions:
    """:class:`TLSOptions` from msmtp-style names (``trust_file``, ``crl_file``,
    ``fingerprint``, ``certcheck``, ``cert_file``, ``key_file``, ``key_password``,
    ``priorities``, ``host_override``); the ``tls_`` prefix is optional."""
    from msmtp_twisted.config.commands import parse_fingerprint

    values = {k[4:] if k.startswith("tls_") else k: v for k, v in fields.items()}
    known = {"trust_file", "crl_file", "fingerprint", "certcheck", "cert_file", "key_file",
             "key_password", "priorities", "host_override"}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown TLS option(s): {', '.join(sorted(unknown))}")
    fingerprint = None
    if values.get("fingerprint"):
        text = values["fingerprint"]
        if ":" not in text and " " not in text:  # plain hex: colons need escaping here
            text = ":".join(text[i:i + 2] for i in range(0, len(text), 2))
        fingerprint = parse_fingerprint(text)
        if fingerprint is None:
            raise ValueError(f"invalid fingerprint {values['fingerprint']!r}")
    trust = values.get("trust_file", "system")
    return TLSOptions(
        hostname=values.get("host_override") or host,
        trust_file=trust or None,
        crl_file=values.get("crl_file") or None,
        fingerprint=fingerprint,
        certcheck=_onoff(values.get("certcheck", "on")),
        cert_file=values.get("cert_file") or None,
        key_file=values.get("key_file") or None,
        key_password=values.get("key_password") or None,
        priorities=values.get("priorities") or None,
    )


def tls_client_endpoint(reactor: Any, description: str) -> TLSWrapperEndpoint:
    """An implicit-TLS client endpoint from a string, with msmtp's checks::

        msmtp-tls:mail.example.org:465:trust_file=/etc/ssl/my-ca.pem
        msmtp-tls:host=127.0.0.1:port=465:fingerprint=AB01...(hex, no colons)
        tls:mail.example.org:465:certcheck=off

    Fields: host and port (positional or by name), ``timeout``, ``bindAddress``,
    and the :func:`tls_options_from_fields` names.  The prefix is not checked.
    """
    args, kwargs = split_description(description)
    if args and args[0] in ("tls", "msmtp-tls"):
        args = args[1:]
    return TLSEndpointParser().parseStreamClient(reactor, *args, **kwargs)


class TLSEndpointParser:
    """``IStreamClientEndpointStringParserWithReactor`` for ``msmtp-tls:`` strings
    (register it from a ``twisted/plugins`` module to use it with
    ``clientFromString``; Twisted's own ``tls:`` prefix is taken)."""

    prefix = "msmtp-tls"

    def parseStreamClient(self, reactor: Any, *args: str, **kwargs: str) -> TLSWrapperEndpoint:
        from msmtp_twisted.net.connect import SequentialTCPEndpoint

        host, port, timeout, bind = endpoint_fields(args, kwargs, 465)
        options = tls_options_from_fields(host, kwargs)
        wrapped = SequentialTCPEndpoint(reactor, host, port, timeout=timeout, source_ip=bind)
        return TLSWrapperEndpoint(options.creator(), wrapped)
