"""AUTH against a real Exim 4.96: EXTERNAL (RFC 4422 appendix A, identity from the TLS
client certificate), PLAIN, LOGIN and CRAM-MD5 — our msmtp and msmtp 1.8.23 with the same
msmtprc.

Exim (``exim_server`` fixture, tests/servers/exim/) offers AUTH PLAIN LOGIN CRAM-MD5 and,
only once it has verified a client certificate signed by its CA, EXTERNAL; EXTERNAL
succeeds with an empty authorization identity or the certificate's CN ("testclient").
Every mail carries a unique token (Subject, Message-ID) to find it in the Maildir and its
reception line in Exim's mainlog, whose ``A=<authenticator>:<id>`` says which mechanism
the client really used.  The fixture is registered in tests/integration/conftest.py
(``from tests.servers.exim import exim_server``); elsewhere run with
``-p tests.servers.exim``.

Every run is bounded: msmtp's own ``timeout 3`` in the msmtprc, and a subprocess timeout
(ours: :data:`OURS_TIMEOUT`; a run that needs longer hung, which is a bug).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ours_command, ours_env
from tests.servers.exim import EximServer
from tests.servers.msmtp import MsmtpResult, new_token, run_msmtp, write_config

#: a normal run of ours takes ~0.3 s
OURS_TIMEOUT = 4.0
REAL_TIMEOUT = 10.0
TLS_MODES = [pytest.param(False, id="starttls"), pytest.param(True, id="smtps")]
#: Exim's authenticator names (they appear in the mainlog as A=<name>:<id>)
AUTHENTICATORS = {"PLAIN": "plain", "LOGIN": "login", "CRAM-MD5": "cram_md5",
                  "EXTERNAL": "external"}


def _message_id(token: str) -> str:
    return f"{token}@msmtp-test.example"


def _mail(token: str) -> bytes:
    return (f"Subject: {token}\nMessage-ID: <{_message_id(token)}>\n\n"
            f"body {token}\n").encode()


def _config(tmp_path: Path, exim: EximServer, *, implicit_tls: bool = False,
            cert: str | None = "client", **settings: object) -> Path:
    """One msmtprc (0600) for both clients: TLS (STARTTLS or implicit) trusting Exim's CA,
    with the client certificate ``cert`` ("client": trusted by Exim, "rogue": from an
    untrusted CA, None: none)."""
    cert_file, key_file = {
        "client": (exim.client_cert, exim.client_key),
        "rogue": (exim.rogue_client_cert, exim.rogue_client_key),
        None: (None, None),
    }[cert]
    return write_config(tmp_path, (exim.host, exim.port(implicit_tls)),
                        from_="sender@example.com", tls=True,
                        tls_starttls=not implicit_tls, tls_trust_file=exim.ca_file,
                        tls_cert_file=cert_file, tls_key_file=key_file, timeout=3,
                        **settings)


def _ours(cfg: Path, mail: bytes) -> MsmtpResult:
    return run_msmtp(ours_command(), cfg, ["rcpt@example.org"], input=mail, timeout=OURS_TIMEOUT,
                     env=ours_env({}), hang_ok=True)


def _real(real_msmtp: str, cfg: Path, mail: bytes) -> MsmtpResult:
    return run_msmtp([real_msmtp], cfg, ["rcpt@example.org"], input=mail, timeout=REAL_TIMEOUT,
                     hang_ok=True)


def _failure(cfg: Path, *lines: str) -> str:
    return "".join(f"msmtp: {line}\n" for line in lines) + (
        f"msmtp: could not send mail (account default from {cfg})\n")


def _outcome(res: MsmtpResult) -> tuple[int | None, str]:
    return res.returncode, res.stderr


# ------------------------------------------------------------------------- EXTERNAL
@pytest.mark.parametrize("implicit_tls", TLS_MODES)
def test_external_with_user_equal_to_the_cert_cn(exim_server, real_msmtp, tmp_path,
                                                 implicit_tls) -> None:
    exim = exim_server
    cfg = _config(tmp_path, exim, implicit_tls=implicit_tls, auth="external",
                  user=exim.client_cn)
    tokens = {"real": new_token(), "ours": new_token()}
    results = {"real": _outcome(_real(real_msmtp, cfg, _mail(tokens["real"]))),
               "ours": _outcome(_ours(cfg, _mail(tokens["ours"])))}
    assert results == {"real": (0, ""), "ours": (0, "")}
    for tok in tokens.values():
        exim.wait_for_mail(tok.encode())
        line = exim.received_line(_message_id(tok))
        assert f" A=external:{exim.client_cn} " in line, line
        assert " CV=yes " in line and " P=esmtpsa " in line, line


@pytest.mark.parametrize("implicit_tls", TLS_MODES)
def test_external_without_user_sends_the_empty_response(exim_server, real_msmtp, tmp_path,
                                                        implicit_tls) -> None:
    """No ``user``: the authorization identity is empty, i.e. "use the certificate's".

    Ours sends ``AUTH EXTERNAL``, gets ``334 `` and answers with the empty response (an
    empty line); Exim then authenticates the certificate's CN.

    msmtp 1.8.23 does not answer the ``334 `` at all: it sends ``MAIL FROM:<...>`` next,
    which Exim takes as the (invalid) SASL response: ``501 Invalid base64 data`` (mainlog:
    "external authenticator failed ... 501 Invalid base64 data").  msmtp reads that as
    the reply to MAIL and exits at once (no hang, ~0.06 s) with 65 (EX_DATAERR):
    "envelope from address sender@example.com not accepted by the server" / "server
    message: 501 Invalid base64 data".  It is run here for the record only.
    """
    exim = exim_server
    cfg = _config(tmp_path, exim, implicit_tls=implicit_tls, auth="external")
    since = exim.mainlog_size()
    tok = new_token()
    ours = _ours(cfg, _mail(tok))
    assert _outcome(ours) == (0, "")
    exim.wait_for_mail(tok.encode())
    line = exim.received_line(_message_id(tok))
    assert f" A=external:{exim.client_cn} " in line, line
    assert "authenticator failed" not in exim.mainlog(since)

    # afterwards (Exim logs its failure a little after msmtp has gone)
    real = _real(real_msmtp, cfg, _mail(new_token()))
    print(f"msmtp 1.8.23, auth external without user: exit {real.returncode},"
          f" {real.seconds:.2f} s, stderr {real.stderr!r}")


def test_external_with_a_user_other_than_the_cert_cn(exim_server, real_msmtp,
                                                     tmp_path) -> None:
    exim = exim_server
    cfg = _config(tmp_path, exim, auth="external", user="someoneelse")
    since = exim.mainlog_size()
    real = _real(real_msmtp, cfg, _mail(new_token()))
    ours = _ours(cfg, _mail(new_token()))
    expected = _failure(cfg, "authentication failed (method EXTERNAL)",
                        "server message: 535 Incorrect authentication data")
    assert {"real": _outcome(real), "ours": _outcome(ours)} == {
        "real": (77, expected), "ours": (77, expected)}
    failed = (r"external authenticator failed for .*: 535 Incorrect authentication data"
              rf" \(set_id={exim.client_cn}\)")
    exim.wait_for_log(failed + r"(?s:.*)" + failed, since)  # one per client


@pytest.mark.parametrize("cert", [pytest.param(None, id="no-cert"),
                                  pytest.param("rogue", id="untrusted-cert")])
def test_external_not_offered_without_a_verified_client_cert(exim_server, real_msmtp,
                                                             tmp_path, cert) -> None:
    """Exim offers EXTERNAL only after verifying a client certificate: without one, or
    with one from a CA it does not trust (same CN), both clients stop before AUTH."""
    exim = exim_server
    cfg = _config(tmp_path, exim, cert=cert, auth="external", user=exim.client_cn)
    real = _real(real_msmtp, cfg, _mail(new_token()))
    ours = _ours(cfg, _mail(new_token()))
    expected = _failure(cfg, "the server does not support authentication method EXTERNAL")
    assert {"real": _outcome(real), "ours": _outcome(ours)} == {
        "real": (69, expected), "ours": (69, expected)}


# ------------------------------------------------------------------ automatic choice
def test_auth_on_with_a_client_cert_picks_plain(exim_server, real_msmtp, tmp_path) -> None:
    """Exim offers PLAIN LOGIN CRAM-MD5 EXTERNAL; msmtp's order (SCRAM > PLAIN > CRAM-MD5
    ...) never picks EXTERNAL automatically: both use PLAIN with the password."""
    exim = exim_server
    cfg = _config(tmp_path, exim, auth="on", user="testuser", password="testpass")
    picked = {}
    for name in ("real", "ours"):
        tok = new_token()
        res = (_real(real_msmtp, cfg, _mail(tok)) if name == "real"
               else _ours(cfg, _mail(tok)))
        assert _outcome(res) == (0, ""), name
        exim.wait_for_mail(tok.encode())
        line = exim.received_line(_message_id(tok))
        assert " CV=yes " in line, line
        picked[name] = line.split(" A=", 1)[1].split(" ", 1)[0]
    assert picked == {"real": "plain:testuser", "ours": "plain:testuser"}


def test_auth_on_without_user_does_not_fall_back_to_external(exim_server, real_msmtp,
                                                              tmp_path) -> None:
    """Even with nothing but the client certificate to authenticate with, ``auth on``
    picks PLAIN and then lacks the user name (msmtp 1.8.23 does the same)."""
    exim = exim_server
    cfg = _config(tmp_path, exim, auth="on")
    since = exim.mainlog_size()
    real = _real(real_msmtp, cfg, _mail(new_token()))
    ours = _ours(cfg, _mail(new_token()))
    expected = _failure(cfg, "authentication method PLAIN needs a user name")
    assert {"real": _outcome(real), "ours": _outcome(ours)} == {
        "real": (69, expected), "ours": (69, expected)}
    assert "authenticator" not in exim.mainlog(since)


# --------------------------------------------------------- password mechanisms
@pytest.mark.parametrize("right", [pytest.param(True, id="right-password"),
                                   pytest.param(False, id="wrong-password")])
@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_password_mechanism(exim_server, real_msmtp, tmp_path, mechanism, right) -> None:
    exim = exim_server
    cfg = _config(tmp_path, exim, cert=None, auth=mechanism.lower(), user="testuser",
                  password="testpass" if right else "wrongpass")
    tokens = {"real": new_token(), "ours": new_token()}
    results = {"real": _outcome(_real(real_msmtp, cfg, _mail(tokens["real"]))),
               "ours": _outcome(_ours(cfg, _mail(tokens["ours"])))}
    if right:
        assert results == {"real": (0, ""), "ours": (0, "")}
        for tok in tokens.values():
            exim.wait_for_mail(tok.encode())
            line = exim.received_line(_message_id(tok))
            assert f" A={AUTHENTICATORS[mechanism]}:testuser " in line, line
    else:
        expected = _failure(cfg, f"authentication failed (method {mechanism})",
                            "server message: 535 Incorrect authentication data")
        assert results == {"real": (77, expected), "ours": (77, expected)}
        assert not exim.mail(tokens["real"].encode()) and not exim.mail(
            tokens["ours"].encode())
