"""An account's TLS context (its files read once) is kept with the account object."""

from __future__ import annotations

import gc
import weakref

from msmtp_twisted.config.account import Account
from msmtp_twisted.sending import endpoint
from msmtp_twisted.sending.endpoint import account_tls, account_tls_context
from tests.servers.tlspki import PKI


def _account(trust: str) -> Account:
    account = Account("a")
    account.host, account.port = "localhost", 25
    account.tls, account.tls_trust_file = True, trust
    return account


def test_context_is_built_once_per_account_and_settings(tmp_path) -> None:
    root = PKI(tmp_path).ca()
    account = _account(str(root.cert))
    first = account_tls_context(account)
    assert first is not None
    assert account_tls_context(account) is first
    one, two = account_tls(account), account_tls(account)
    assert one is not None and two is not None and one is not two  # per connection
    assert one.creator.tls_context is first and two.creator.tls_context is first
    other = _account(str(root.cert))
    assert account_tls_context(other) is not first  # another account reads its files
    account.tls_certcheck = False  # other settings: built again
    assert account_tls_context(account) is not first


def test_kept_context_goes_with_the_account(tmp_path) -> None:
    root = PKI(tmp_path).ca()
    account = _account(str(root.cert))
    weakref.ref(account)  # the typed Account must stay weak-referenceable for this
    account_tls_context(account)
    key = id(account)
    assert key in endpoint._contexts._kept
    del account
    gc.collect()
    assert key not in endpoint._contexts._kept
