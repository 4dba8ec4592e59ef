"""The OpenSSL context for :class:`~msmtp_twisted.tls.options.TLSOptions`:
``tls_priorities`` applied, the client certificate and the trust anchors loaded.

:class:`TLSContext` is that context built once and shared by every connection
made with it: the files are read when it is built, never again (a certificate
or key replaced on disk afterwards is not seen until a new one is built).
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from OpenSSL import SSL

from msmtp_twisted import sysexits
from msmtp_twisted.errors import Cause, TLSFailure
from msmtp_twisted.tls.files import load_client_certificate, load_trust
from msmtp_twisted.tls.priorities import Priorities, PriorityError, parse_priorities

if TYPE_CHECKING:
    from msmtp_twisted.tls.options import TLSOptions
    from msmtp_twisted.tls.state import TLSState

__all__ = ["TLSContext", "apply_priorities", "build_context"]


class TLSContext:
    """The OpenSSL context of one :class:`~msmtp_twisted.tls.options.TLSOptions`,
    built once (files read, priorities applied) and shared by its connections.

    Building it reads the trust, CRL, certificate and key files, so it blocks:
    build it where blocking is fine (loading an account, a thread) and keep it.
    Raises :class:`~msmtp_twisted.errors.TLSFailure` as :func:`build_context`.
    ``context`` wraps an existing OpenSSL context instead.

    OpenSSL reports handshake events per context; :meth:`track` tells it which
    :class:`~msmtp_twisted.tls.state.TLSState` a connection fills in.
    """

    def __init__(self, options: TLSOptions, context: SSL.Context | None = None) -> None:
        self.options = options
        self.context = context if context is not None else build_context(options)
        self._states: weakref.WeakKeyDictionary[SSL.Connection, TLSState] = (
            weakref.WeakKeyDictionary())
        self.context.set_info_callback(self._info_callback)

    def track(self, conn: SSL.Connection, state: TLSState) -> None:
        self._states[conn] = state

    def state_of(self, conn: SSL.Connection) -> TLSState | None:
        return self._states.get(conn)

    def _info_callback(self, conn: SSL.Connection, where: int, ret: int) -> None:
        state = self._states.get(conn)
        if state is None:
            return
        try:
            if where & SSL.SSL_CB_ALERT and where & SSL.SSL_CB_READ and (ret >> 8) == 2:
                state.alert = ret & 0xFF
            if where & SSL.SSL_CB_HANDSHAKE_DONE:
                state._handshake_completed(conn)
        except BaseException:  # never let an exception escape into OpenSSL
            tls_protocol: Any = conn.get_app_data()
            if tls_protocol is not None:
                # imported here: building a context (msmtpq's first attempt, before
                # the reactor) loads no Twisted
                from twisted.python.failure import Failure

                tls_protocol.failVerification(Failure())


def build_context(options: TLSOptions) -> SSL.Context:
    """An OpenSSL context with these settings, files read now.

    Raises :class:`~msmtp_twisted.errors.TLSFailure` with msmtp's message and exit
    code, in msmtp's order: priorities (70), client certificate (66), trust file
    (66), CRL file (66).
    """
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_TICKET)
    try:
        prio = parse_priorities(options.priorities)
    except PriorityError as e:
        raise _priority_failure(str(e)) from None
    apply_priorities(ctx, prio)
    if options.cert_file is not None and options.key_file is not None:
        load_client_certificate(ctx, options)
    if options.uses_trust:
        load_trust(ctx, options)
    return ctx


def _priority_failure(reason: str) -> TLSFailure:
    return TLSFailure(sysexits.EX_SOFTWARE, f"cannot set priorities for TLS session: {reason}",
                      cause=Cause.LOCAL)


_OPENSSL_VERSIONS = {
    (1, 0): SSL.TLS1_VERSION, (1, 1): SSL.TLS1_1_VERSION,
    (1, 2): SSL.TLS1_2_VERSION, (1, 3): SSL.TLS1_3_VERSION,
}


def apply_priorities(ctx: SSL.Context, prio: Priorities) -> None:
    if prio.legacy and prio.ciphers is None:
        prio.ciphers = "DEFAULT:@SECLEVEL=0"
    elif prio.legacy and prio.ciphers is not None and "@SECLEVEL" not in prio.ciphers:
        prio.ciphers += ":@SECLEVEL=0"
    if prio.min_version is not None:
        ctx.set_min_proto_version(_OPENSSL_VERSIONS[prio.min_version])
    if prio.max_version is not None:
        ctx.set_max_proto_version(_OPENSSL_VERSIONS[prio.max_version])
    if prio.ciphers is not None:
        try:
            ctx.set_cipher_list(prio.ciphers.encode("ascii"))
        except (SSL.Error, UnicodeError):
            if prio.max_version is None or prio.max_version < (1, 3) or not prio.ciphersuites:
                raise _priority_failure("failed to set ciphers") from None
    if prio.ciphersuites is not None:
        try:
            ctx.set_tls13_ciphersuites(prio.ciphersuites.encode("ascii"))
        except (SSL.Error, UnicodeError):
            raise _priority_failure("failed to set ciphers") from None
    if prio.groups is not None:
        _set_groups(ctx, prio.groups)


def _set_groups(ctx: SSL.Context, groups: str) -> None:
    try:
        from OpenSSL._util import lib

        setter = lib.SSL_CTX_set1_curves_list
    except Exception:  # pragma: no cover - private bindings changed
        raise _priority_failure("key exchange groups cannot be set with this pyOpenSSL") from None
    if setter(ctx._context, groups.encode("ascii")) != 1:  # type: ignore[attr-defined]
        for name in groups.split(":"):
            if setter(ctx._context, name.encode("ascii")) != 1:  # type: ignore[attr-defined]
                raise _priority_failure(f"invalid ecdhe curve '{name}'")
        raise _priority_failure(f"invalid ecdhe curve '{groups}'")
