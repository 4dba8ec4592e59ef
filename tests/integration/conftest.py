"""Fixtures for the integration tests."""

# session-scoped: real Postfix + Dovecot on loopback (see tests/servers/mailservers/)
from tests.servers.mailservers import mailservers  # noqa: F401
