"""Fixtures for the integration tests."""

# session-scoped: real Postfix + Dovecot on loopback (see tests/servers/mailservers/)
from tests.servers.mailservers import mailservers  # noqa: F401
# session-scoped: Exim 4.96 with AUTH EXTERNAL (see tests/servers/exim/)
from tests.servers.exim import exim_server  # noqa: F401, E402
