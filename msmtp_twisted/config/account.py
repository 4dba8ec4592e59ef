"""An account: one set of settings, as read from msmtprc and/or the command line.

Built in code, it is a typed object::

    from msmtp_twisted.config.account import Account

    account = Account(id="relay", host="127.0.0.1", port=2525, auth_mech="PLAIN",
                      username="u", password="secret", timeout=30)

The attributes and keyword arguments are those of
:class:`~msmtp_twisted.config.account_fields.AccountFields`, generated from the
msmtprc command table (field names, not msmtprc spellings: ``username`` for
``user``, ``auth_mech`` for ``auth``, ``from_addr`` for ``from``); values are
what the msmtprc parser produces (``auth_mech`` upper case, ``""`` for "choose").
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from msmtp_twisted.config.account_fields import AccountFields
from msmtp_twisted.config.commands import SETTING_DEFAULTS
from msmtp_twisted.errors import AccountError

if TYPE_CHECKING:
    from typing import Unpack

    from msmtp_twisted.config.account_fields import AccountSettings

__all__ = ["Account", "AccountError"]


class Account(AccountFields):
    """Settings of one account.

    Every field of :data:`~msmtp_twisted.config.commands.SETTINGS` is an attribute
    (typed in :class:`~msmtp_twisted.config.account_fields.AccountFields`), and a
    keyword argument: ``Account(id="x", host="mail.example.com", tls=True)``.
    ``mask`` holds the fields that were set explicitly in this account's own
    definition (or on the command line, or as keyword arguments here); only those
    override another account.
    """

    id: str | None
    conffile: str | None
    mask: set[str]

    def __init__(
        self,
        id: str | None = None,
        conffile: str | None = None,
        **settings: Unpack[AccountSettings],
    ) -> None:
        self.id = id
        self.conffile = conffile
        self.mask = set(settings)
        vars(self).update(SETTING_DEFAULTS)
        if settings:
            for name in settings:
                if name not in SETTING_DEFAULTS:
                    raise TypeError(f"Account() got an unexpected keyword argument {name!r}")
            vars(self).update(settings)

    def copy(self) -> Account:
        new = copy.copy(self)
        new.mask = set(self.mask)
        return new

    def set(self, field: str, value: Any) -> None:
        setattr(self, field, value)
        self.mask.add(field)

    def settings(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in SETTING_DEFAULTS}

    def override(self, other: Account) -> None:
        """Take every field that ``other`` set explicitly (msmtp's ``override_account``).

        Used both for ``account a : b`` inheritance and for command-line options.
        For inheritance this follows msmtp >= 1.8.24 (and the manual): ``from``
        and ``allow_from_override`` are inherited like everything else; 1.8.23
        never inherited ``allow_from_override`` and skipped ``from`` when the
        new account had ``allow_from_override off`` from its defaults.
        """
        if other.conffile:
            self.conffile = other.conffile
        for name in other.mask:
            setattr(self, name, getattr(other, name))
        self.mask |= other.mask

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.settings().items() if k != "password"}
        return f"Account(id={self.id!r}, conffile={self.conffile!r}, {shown!r})"

    # -- completion and checks, done once the account is chosen -------------

    def effective_port(self) -> int:
        if self.port:
            return self.port
        if self.protocol == "smtp":
            return 465 if (self.tls and not self.tls_starttls) else 25
        return 0  # LMTP has no default port

    def check(self, *, sendmail_mode: bool) -> None:
        """Raise :class:`AccountError` with msmtp's message if the account is unusable.

        Unlike msmtp 1.8.23, an LMTP account that connects through ``socket``
        needs no ``port``: the port is never used there.
        """
        if self.host is None and self.socket is None:
            raise AccountError("host not set")
        if self.port == 0 and self.socket is None:
            raise AccountError("port not set")
        if sendmail_mode and self.from_addr is None:
            raise AccountError("envelope-from address is missing")
        if self.tls and self.host is None and self.tls_host_override is None:
            raise AccountError("host not set")
        if self.tls_key_file is not None and self.tls_cert_file is None:
            raise AccountError("tls_key_file requires tls_cert_file")
        if self.tls_cert_file is not None and self.tls_key_file is None:
            raise AccountError("tls_cert_file requires tls_key_file")
        if (
            self.tls
            and self.tls_trust_file is None
            and self.tls_fingerprint is None
            and self.tls_certcheck
        ):
            raise AccountError(
                "tls requires either tls_trust_file (highly recommended) "
                "or tls_fingerprint or a disabled tls_certcheck"
            )
        if self.tls_crl_file is not None and self.tls_trust_file is None:
            raise AccountError("tls_crl_file requires tls_trust_file")
