"""Fixtures for the integration tests."""

# session-scoped servers on loopback: Exim 4.96 with AUTH EXTERNAL (tests/servers/exim/),
# real Postfix + Dovecot (tests/servers/mailservers/)
from tests.servers.exim import exim_server  # noqa: F401
from tests.servers.mailservers import mailservers  # noqa: F401
