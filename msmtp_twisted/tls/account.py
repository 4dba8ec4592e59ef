"""TLS for one connection of an account: :class:`AccountTLS`, as every sender uses it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import error
from twisted.python.failure import Failure

from msmtp_twisted import sysexits
from msmtp_twisted.errors import Cause, SMTPFailure, TLSFailure
from msmtp_twisted.tls.context import TLSContext
from msmtp_twisted.tls.creator import ClientTLS
from msmtp_twisted.tls.endpoint import TLSWrapperEndpoint
from msmtp_twisted.tls.options import TLSOptions
from msmtp_twisted.tls.reasons import closed_text, handshake_error_text, openssl_reasons
from msmtp_twisted.tls.state import TLSState
from msmtp_twisted.tls.text import TLSInfo

__all__ = ["AccountTLS"]


class AccountTLS:
    """TLS for one connection of an account, as the msmtp commands use it.

    Build it before connecting (it reads the files and may raise
    :class:`TLSFailure`); then ``start_tls`` is the STARTTLS callable for
    :class:`~msmtp_twisted.protocol.session.SessionProtocol`,
    :meth:`wrap_endpoint` gives implicit TLS, :meth:`trace` holds the protocol
    trace while the handshake runs (msmtp prints the TLS information before the
    second EHLO), :meth:`connection_lost` (the session protocol's ``on_lost``)
    records why the connection ended and :meth:`translate` turns a failed session
    into msmtp's TLS error.
    ``on_established(info)`` is called after a successful verification.
    ``context``: the account's :class:`~msmtp_twisted.tls.context.TLSContext`
    (files read once, shared by its connections); without it the files are read
    now.
    """

    def __init__(self, options: TLSOptions, *,
                 on_established: Callable[[TLSInfo], None] | None = None,
                 context: TLSContext | None = None) -> None:
        self.options = options
        self.creator = ClientTLS(options, context=context, on_connection=self._connection)
        self.state: TLSState | None = None
        self.started = False
        self.lost_reason: Failure | None = None
        self._on_established = on_established
        self._held: list[tuple[str, bytes]] | None = None
        self._trace: Callable[[str, bytes], None] | None = None
        self._clock: Any = None
        self._timeout: float | None = None
        self._timer: Any = None
        self.timed_out = False

    @classmethod
    def from_account(cls, account: Any, **kwargs: Any) -> AccountTLS:
        return cls(TLSOptions.from_account(account), **kwargs)

    # -- wiring ---------------------------------------------------------------------

    def _connection(self, state: TLSState) -> None:
        self.state = state
        state.on_established(self._established)
        state.on_verification_failed(lambda _state: self._drop_held())

    def set_timeout(self, clock: Any, timeout: float | None) -> None:
        """Give up on a STARTTLS handshake after ``timeout`` seconds.

        Closing a connection gracefully waits for the handshake to finish (the
        second EHLO is already queued in the TLS layer), so a silent server
        would hold it open: this aborts it instead.
        """
        self._clock, self._timeout = clock, timeout

    def start_tls(self, transport: Any) -> None:
        self.started = True
        if self._trace is not None:
            self._held = []
        transport.startTLS(self.creator)
        from msmtp_twisted.tls.layer import lighten

        lighten(transport)
        if self._clock is not None and self._timeout:
            self._timer = self._clock.callLater(self._timeout, self._handshake_timed_out,
                                                transport)

    def _handshake_timed_out(self, transport: Any) -> None:
        self._timer = None
        if self.state is None or not self.state.handshake_done:
            self.timed_out = True
            transport.abortConnection()

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def channel_binding(self) -> dict[str, bytes]:
        """The established connection's channel binding data (SCRAM -PLUS)."""
        state = self.state
        if state is None or not state.handshake_done or state.failure is not None:
            return {}
        return dict(state.channel_binding)

    def wrap_endpoint(self, endpoint: Any) -> TLSWrapperEndpoint:
        self.started = True
        return TLSWrapperEndpoint(self.creator, endpoint)

    def trace(self, trace: Callable[[str, bytes], None] | None
              ) -> Callable[[str, bytes], None] | None:
        if trace is None:
            return None
        self._trace = trace

        def held_trace(direction: str, data: bytes) -> None:
            if self._held is not None:
                self._held.append((direction, data))
            else:
                trace(direction, data)
        return held_trace

    def connection_lost(self, reason: Failure | None = None) -> None:
        """The session protocol's ``on_lost`` observer: why the connection ended."""
        self._cancel_timer()
        if self.lost_reason is None:
            self.lost_reason = reason

    def _established(self, state: TLSState) -> None:
        self._cancel_timer()
        if self._on_established is not None and state.info is not None:
            self._on_established(state.info)
        held, self._held = self._held, None
        if held and self._trace is not None:
            for direction, data in held:
                self._trace(direction, data)

    def _drop_held(self) -> None:
        self._held = None

    # -- outcome -----------------------------------------------------------------------

    def translate(self, failure: Failure) -> Any:
        """Errback: a session failure as msmtp reports TLS trouble."""
        tls = self.failure_for(failure.value)
        if tls is not None:
            return Failure(tls)
        return failure

    def failure_for(self, value: BaseException) -> SMTPFailure | None:
        """msmtp's TLS error for a failed session, or None to keep ``value``.

        Decided on the failure's :class:`~msmtp_twisted.errors.Cause` and on what
        the TLS connection saw (alerts, OpenSSL's reasons, how the connection under
        it ended), never on the failure's text.
        """
        state = self.state
        if state is not None and state.failure is not None:
            return state.failure
        if not self.started:
            return None
        if not isinstance(value, SMTPFailure) or value.reply is not None:
            return None  # server replies are what they are, with or without TLS
        if state is None or not state.handshake_done:
            if self.timed_out or (value.cause is Cause.TIMEOUT and not value.writing):
                # (msmtp 1.8.23 retries the GnuTLS handshake past its timeout)
                return TLSFailure(sysexits.EX_PROTOCOL,
                                  "TLS handshake failed: the operation timed out",
                                  cause=Cause.TIMEOUT)
            alert = state.alert if state is not None else None
            transport_reason = state.transport_reason if state is not None else None
            alerted = alert is not None or "alert" in " ".join(
                openssl_reasons(self.lost_reason)).lower()
            return TLSFailure(sysexits.EX_PROTOCOL, "TLS handshake failed: "
                              + handshake_error_text(self.lost_reason, alert, transport_reason),
                              cause=Cause.TLS_ALERT if alerted else Cause.TLS_HANDSHAKE)
        if state.alert is not None or "alert" in " ".join(
                openssl_reasons(self.lost_reason)).lower():
            what = "write to" if value.writing else "read from"
            return SMTPFailure(sysexits.EX_IOERR, f"cannot {what} TLS connection: "
                               "A TLS fatal alert has been received.", cause=Cause.TLS_ALERT,
                               writing=value.writing)
        if value.cause is Cause.RESET and not value.writing:
            closed = (state.transport_reason is not None
                      and state.transport_reason.check(error.ConnectionDone) is not None)
            return SMTPFailure(sysexits.EX_IOERR, "cannot read from TLS connection: "
                               + closed_text(state.transport_reason),
                               cause=Cause.CLOSED if closed else Cause.RESET)
        if value.writing and value.cause in (Cause.CLOSED, Cause.RESET):
            return SMTPFailure(sysexits.EX_IOERR,
                               "cannot write to TLS connection: Error in the push function.",
                               cause=value.cause, writing=True)
        return None
