"""Names say one thing each (issue 11, item 1): the server's events are not named
like the client's values, and the password helpers take (host, user) alike."""

from __future__ import annotations

import inspect

import pytest


def test_server_events_are_not_named_like_client_values() -> None:
    from msmtp_twisted.smtp import client, reply, server

    assert not hasattr(server, "Reply") and not hasattr(server, "AuthRequest")
    assert {"ServerReply", "AuthAttempt"} <= set(server.__all__)
    assert "Reply" in reply.__all__ and "AuthRequest" in client.__all__
    # what each one is
    assert server.ServerReply(250, ("Ok",)).to_bytes() == b"250 Ok\r\n"
    assert server.AuthAttempt("PLAIN", "bob", b"pw").username == "bob"


@pytest.mark.parametrize("function", [
    "msmtp_twisted.auth.password:prompt_password",
    "msmtp_twisted.daemon.password:prompt_password",
    "msmtp_twisted.daemon.password:keyring_password",
    "msmtp_twisted.auth.keyring:keyring_lookup",
    "msmtp_twisted.auth.password:lookup_password",
    "msmtp_twisted.auth.password:netrc_password",
])
def test_password_helpers_take_host_then_user(function: str) -> None:
    import importlib

    module, _, name = function.partition(":")
    params = list(inspect.signature(getattr(importlib.import_module(module), name)).parameters)
    assert params[:2] == ["host", "user"]


def test_daemon_prompt_asks_for_the_user_at_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    from msmtp_twisted.auth import password as client_password
    from msmtp_twisted.daemon import password as daemon_password

    asked = []
    monkeypatch.setattr(client_password, "prompt_password",
                        lambda host, user: asked.append((host, user)) or "pw")
    assert daemon_password.prompt_password("localhost", "bob") == "pw"
    assert asked == [("localhost", "bob")]
