"""The name check's fast path (no service_identity, no idna: start-up time) gives
the same verdicts as the full path, and the SNI name the same bytes as idna."""

from __future__ import annotations

import pytest

from msmtp_twisted.tls import verify
from tests.servers.tlspki import PKI

CASES = [
    # (subjectAltName DNS names, IP addresses, host)
    (["localhost"], ["127.0.0.1"], "localhost"),
    (["localhost"], ["127.0.0.1"], "LocalHost"),
    (["localhost"], ["127.0.0.1"], "127.0.0.1"),
    (["localhost"], ["127.0.0.1"], "127.0.0.2"),
    (["localhost"], ["::1"], "[::1]"),
    (["mail.example.com"], [], "mail.example.com"),
    (["mail.example.com"], [], "other.example.com"),
    (["*.example.com"], [], "mail.example.com"),
    (["*.example.com"], [], "a.b.example.com"),
    (["*.example.com"], [], "example.com"),
    (["*.example.com"], [], "xn--bcher-kva.example.com"),
    (["*.com"], [], "example.com"),            # too few labels: service_identity refuses
    (["f*.example.com"], [], "foo.example.com"),
    (["mail.example.com", "a.*.example.com"], [], "mail.example.com"),  # invalid pattern
    (["mail.example.com", "12345"], [], "mail.example.com"),  # IP-like DNS name
    (["mail.example.com"], [], "12345"),
    (["under_score.example.com"], [], "under_score.example.com"),
    (["mail.example.com"], [], "mail.example.com."),
    (["xn--bcher-kva.example"], [], "bücher.example"),
    ([], ["127.0.0.1"], "localhost"),           # no DNS names: the common name counts
]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return PKI(tmp_path_factory.mktemp("pki"))


def _cert(pki, dns, ips):
    from cryptography import x509

    ca = pki.ca("fast path CA") if not hasattr(pki, "_fast_ca") else pki._fast_ca
    pki._fast_ca = ca
    try:
        leaf = pki.leaf(ca, "localhost", dns=dns, ips=ips)
    except Exception as e:  # a name the certificate builder refuses
        pytest.skip(f"cannot issue {dns}: {e}")
    return x509.load_pem_x509_certificate(leaf.cert.read_bytes())


@pytest.mark.parametrize(("dns", "ips", "host"), CASES)
def test_fast_path_agrees_with_service_identity(pki, monkeypatch, dns, ips, host) -> None:
    cert = _cert(pki, dns, ips)
    fast = verify.name_matches(cert, host)
    monkeypatch.setattr(verify, "_san_names", lambda cert, host: False)
    full = verify.name_matches(cert, host)
    assert fast == full


@pytest.mark.parametrize("host", [
    "smtp.gmail.com", "SMTP.Example.COM", "mail.example.com.", "a-b.c", "ab--c.de",
    "xn--bcher-kva.example", "a" * 63 + ".com", "a" * 64 + ".com", "-a.com", "a_b.com",
    "bücher.example", "localhost", "1.2.3", "a..b",
])
def test_sni_fast_path_agrees_with_idna(host) -> None:
    import idna

    try:
        expected: bytes | None = idna.encode(host.rstrip("."), uts46=True)
    except Exception:
        try:
            expected = host.encode("ascii")
        except UnicodeError:
            expected = None
    assert verify.server_name_indication(host) == expected


def test_fast_path_decides_the_common_cases(pki) -> None:
    cert = _cert(pki, ["localhost", "*.example.com"], ["127.0.0.1"])
    for host in ("localhost", "127.0.0.1", "mail.example.com"):
        assert verify._san_names(cert, host)
