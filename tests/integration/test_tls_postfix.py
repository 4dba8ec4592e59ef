"""TLS against a real Postfix 3.7 on loopback, compared with msmtp 1.8.23.

Postfix (``mailservers`` fixture, tests/servers/mailservers/) offers STARTTLS on its
main port, implicit TLS (with AUTH required) on another and asks for client
certificates on two more; its certificates come from its own test CA
(``mailservers.ca_file``).  Postfix writes the TLS details of each session into the
``Received:`` header (``smtpd_tls_received_header``): that is how the tests see which
protocol was used and that Postfix verified our client certificate.
"""

from __future__ import annotations

import hashlib
import re

import pytest

from tests.conftest import ours_command
from tests.servers.mailservers import MailServers, header, msmtprc, send
from tests.servers.msmtp import new_token
from tests.servers.tlspki import PKI

pytestmark = pytest.mark.timeout(120)

REAL = ["/usr/bin/msmtp"]
FAILED = "msmtp: could not send mail (account default from {})"


def _mail(token: str) -> bytes:
    return f"Subject: {token}\nTo: alice@example.com\n\ntls body\n".encode()


def _received(mail: bytes) -> str:
    return b" ".join(header(mail, "Received")).decode()


def _server_fingerprint(servers: MailServers, algorithm: str = "sha256") -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate((servers.dir / "certs" / "server.crt").read_bytes())
    digest = hashlib.new(algorithm, cert.public_bytes(serialization.Encoding.DER)).digest()
    return ":".join(f"{b:02X}" for b in digest)


def _both(servers: MailServers, tmp_path, port: int, args: list[str], mail: bytes | None,
          **settings):
    """Run real and ours (one after the other) with the same settings."""
    out = {}
    for label, command in (("real", REAL), ("ours", ours_command())):
        directory = tmp_path / label
        directory.mkdir(exist_ok=True)
        cfg = msmtprc(directory, port=port, tls=True, **settings)
        res = send(command, cfg, args, mail if mail is not None else b"")
        out[label] = (res.returncode, res.stdout.replace(str(cfg), "CFG"),
                      res.stderr.replace(str(cfg), "CFG"))
    return out["real"], out["ours"]


def _mask(text: str) -> str:
    # GnuTLS 3.7 offers SECP256R1 first, OpenSSL X25519
    return re.sub(r"\(ECDHE-[A-Z0-9]+\)", "(ECDHE-GROUP)", text)


def test_starttls_delivers_verified(mailservers, tmp_path) -> None:
    token = new_token()
    real, ours = _both(mailservers, tmp_path, mailservers.smtp_port, ["alice@example.com"],
                       _mail(token), tls_trust_file=mailservers.ca_file)
    assert ours == real == (0, "", "")
    mails = mailservers.wait_for_mail("alice", match=token.encode(), count=2)
    for mail in mails:
        assert re.search(r"\(using TLSv1\.3 with cipher \S+", _received(mail))


def test_starttls_tls1_2(mailservers, tmp_path) -> None:
    token = new_token()
    real, ours = _both(mailservers, tmp_path, mailservers.smtp_port, ["alice@example.com"],
                       _mail(token), tls_trust_file=mailservers.ca_file,
                       tls_priorities="NORMAL:-VERS-TLS1.3")
    assert ours == real == (0, "", "")
    for mail in mailservers.wait_for_mail("alice", match=token.encode(), count=2):
        assert "(using TLSv1.2 with cipher" in _received(mail)


@pytest.mark.parametrize("algorithm", ["sha256", "sha1", "md5"])
def test_fingerprint_instead_of_trust(mailservers, tmp_path, algorithm) -> None:
    token = new_token()
    real, ours = _both(mailservers, tmp_path, mailservers.smtp_port, ["alice@example.com"],
                       _mail(token),
                       tls_fingerprint=_server_fingerprint(mailservers, algorithm))
    assert ours == real == (0, "", "")
    mailservers.wait_for_mail("alice", match=token.encode(), count=2)


@pytest.mark.parametrize("case", ["unknown-ca", "wrong-name", "wrong-fingerprint"])
def test_verification_failures_send_nothing(mailservers, tmp_path, case) -> None:
    other_ca = PKI(tmp_path / "pki").ca("Not Postfix's CA")
    settings = {
        "unknown-ca": {"tls_trust_file": other_ca.cert},
        "wrong-name": {"tls_trust_file": mailservers.ca_file,
                       "tls_host_override": "mail.example.org"},
        "wrong-fingerprint": {"tls_fingerprint": "AB:" * 31 + "CD"},
    }[case]
    token = new_token()
    since = mailservers.postfix_log_size()
    real, ours = _both(mailservers, tmp_path, mailservers.smtp_port, ["alice@example.com"],
                       _mail(token), **settings)
    assert ours == real
    assert ours[0] == 69
    assert ours[2].startswith("msmtp: TLS certificate verification failed: ")
    # Postfix saw the handshake and nothing after it (no MAIL, no queue file)
    log = mailservers.postfix_log(since)
    assert "MAIL FROM" not in log and "from=<" not in log
    assert mailservers.mail("alice", match=token.encode()) == []


def test_implicit_tls_serverinfo(mailservers, tmp_path) -> None:
    real, ours = _both(mailservers, tmp_path, mailservers.smtps_port, ["--serverinfo"], None,
                       tls_trust_file=mailservers.ca_file, tls_starttls=False)
    assert ours[0] == real[0] == 0
    assert (_mask(ours[1]), ours[2]) == (_mask(real[1]), real[2])
    assert "TLS certificate information:" in ours[1]
    assert "        CN=localhost" in ours[1].splitlines()
    assert f"        SHA256: {_server_fingerprint(mailservers)}" in ours[1].splitlines()


def test_implicit_tls_without_auth_is_refused_like_msmtp(mailservers, tmp_path) -> None:
    """The SMTPS port wants AUTH (not there yet): same refusal as msmtp, over TLS."""
    real, ours = _both(mailservers, tmp_path, mailservers.smtps_port, ["alice@example.com"],
                       _mail(new_token()), tls_trust_file=mailservers.ca_file, tls_starttls=False)
    assert ours == real
    assert ours[0] != 0


def test_implicit_tls_unknown_ca(mailservers, tmp_path) -> None:
    other_ca = PKI(tmp_path / "pki").ca("Not Postfix's CA")
    real, ours = _both(mailservers, tmp_path, mailservers.smtps_port, ["alice@example.com"],
                       _mail(new_token()), tls_trust_file=other_ca.cert, tls_starttls=False)
    assert ours == real
    assert ours[0] == 69


def test_client_certificate_verified_by_postfix(mailservers, tmp_path) -> None:
    token = new_token()
    real, ours = _both(mailservers, tmp_path, mailservers.ccert_required_port,
                       ["alice@example.com"], _mail(token), tls_trust_file=mailservers.ca_file,
                       tls_cert_file=mailservers.client_cert, tls_key_file=mailservers.client_key)
    assert ours == real == (0, "", "")
    for mail in mailservers.wait_for_mail("alice", match=token.encode(), count=2):
        received = _received(mail)
        # Postfix names the client certificate it verified
        assert re.search(r'Client CN "testclient", Issuer "msmtp-test CA" \(verified OK\)',
                         received), received


@pytest.mark.parametrize("which", ["none", "rogue"])
def test_client_certificate_refused(mailservers, tmp_path, which) -> None:
    settings = {"tls_trust_file": mailservers.ca_file}
    if which == "rogue":
        settings.update(tls_cert_file=mailservers.rogue_client_cert,
                        tls_key_file=mailservers.rogue_client_key)
    token = new_token()
    real, ours = _both(mailservers, tmp_path, mailservers.ccert_required_port,
                       ["alice@example.com"], _mail(token), **settings)
    assert ours == real
    assert ours[0] == 76  # Postfix ends the session after the handshake
    assert mailservers.mail("alice", match=token.encode()) == []


@pytest.mark.parametrize("with_cert", [True, False], ids=["cert", "no-cert"])
def test_optional_client_certificate(mailservers, tmp_path, with_cert) -> None:
    settings = {"tls_trust_file": mailservers.ca_file}
    if with_cert:
        settings.update(tls_cert_file=mailservers.client_cert,
                        tls_key_file=mailservers.client_key)
    token = new_token()
    # a domain Postfix relays only for trusted clients
    real, ours = _both(mailservers, tmp_path, mailservers.ccert_optional_port,
                       ["someone@relay.invalid"], _mail(token), **settings)
    assert ours == real
    assert ours[0] == 65
    if with_cert:
        # Postfix trusted our certificate (permit_tls_all_clientcerts): the relay check
        # passed and the next restriction answers
        assert "outbound mail disabled in test server" in ours[2]
    else:
        assert "Relay access denied" in ours[2]


def test_debug_output_like_msmtp(mailservers, tmp_path) -> None:
    real, ours = _both(mailservers, tmp_path, mailservers.smtp_port, ["-d", "--serverinfo"],
                       None, tls_trust_file=mailservers.ca_file)
    assert ours[0] == real[0] == 0
    assert _mask(ours[1]) == _mask(real[1])
