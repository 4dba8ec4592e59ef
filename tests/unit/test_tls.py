"""The pure parts of msmtp_twisted.tls: priorities, msmtp's verification
messages, fingerprints, names, certificate information, file errors, and how
connection failures become msmtp's TLS errors.

Expected texts come from msmtp 1.8.23 (GnuTLS) runs; see
tests/integration/test_tls.py for the side-by-side comparisons.
"""

from __future__ import annotations

import datetime
import hashlib
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet import error
from twisted.python.failure import Failure

from msmtp_twisted import sysexits
from msmtp_twisted.errors import Cause, SMTPFailure, TLSFailure
from msmtp_twisted.smtp.reply import Reply
from msmtp_twisted.tls.account import AccountTLS
from msmtp_twisted.tls.options import TLSOptions
from msmtp_twisted.tls.priorities import PriorityError, parse_priorities
from msmtp_twisted.tls.reasons import handshake_error_text
from msmtp_twisted.tls.state import TLSState
from msmtp_twisted.tls.text import (
    TLSInfo,
    fingerprint_matches,
    format_dn,
    session_description,
    status_from_openssl,
    verification_message,
)
from tests.servers.tlspki import PKI

#: failures as the session protocol makes them
RESET = SMTPFailure(74, "network read error: Connection reset by peer", cause=Cause.RESET)
CLOSED = SMTPFailure(76, "the server sent an empty reply", cause=Cause.CLOSED)
READ_X = SMTPFailure(74, "network read error: x", cause=Cause.RESET)

PREFIX = "TLS certificate verification failed: The certificate is NOT trusted. "


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    pki = PKI(tmp_path_factory.mktemp("pki"))
    pki.root = pki.ca()
    pki.good = pki.leaf(pki.root)
    pki.client = pki.leaf(pki.root, "client", client=True)
    return pki


# -- tls_priorities ----------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    (None, {}),
    ("", {}),
    ("NORMAL", {}),
    ("PFS:%COMPAT", {}),
    ("@SYSTEM", {}),
    ("NORMAL:-VERS-TLS1.3", {"min_version": (1, 2), "max_version": (1, 2)}),
    ("NORMAL:-VERS-ALL:+VERS-TLS1.3", {"min_version": (1, 3), "max_version": (1, 3)}),
    ("NORMAL:-VERS-TLS-ALL:+VERS-TLS1.2", {"min_version": (1, 2), "max_version": (1, 2)}),
    ("NORMAL:-VERS-TLS1.0:-VERS-TLS1.1", {}),
    ("NORMAL:+VERS-TLS1.0", {"min_version": (1, 0), "max_version": (1, 3), "legacy": True}),
    ("NORMAL:+VERS-TLS1.1:-VERS-TLS1.3",
     {"min_version": (1, 1), "max_version": (1, 2), "legacy": True}),
    ("LEGACY", {"min_version": (1, 0), "max_version": (1, 3), "legacy": True}),
    ("NORMAL:-VERS-TLS1.2:-VERS-TLS1.3",
     {"min_version": (1, 0), "max_version": (1, 1), "legacy": True}),
    ("NORMAL:-VERS-SSL3.0:-ARCFOUR-128:-3DES-CBC:-MD5:%SERVER_PRECEDENCE", {}),
    ("SECURE128:+SIGN-ALL:+COMP-NULL:+CTYPE-X509:+ECDHE-RSA:+AEAD", {}),
    ("NORMAL:-CIPHER-ALL:+AES-128-GCM",
     {"ciphers": "AESGCM+AES128:!aNULL:!eNULL", "ciphersuites": "TLS_AES_128_GCM_SHA256"}),
    ("NORMAL:-AES-128-CBC:-AES-256-CBC:-AES-128-CCM:-AES-256-CCM", {
        "ciphers": "AESGCM+AES256:CHACHA20:AESGCM+AES128:!aNULL:!eNULL",
        "ciphersuites": "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:"
                        "TLS_AES_128_GCM_SHA256"}),
    ("NORMAL:-GROUP-ALL:+GROUP-SECP384R1:+GROUP-X25519", {"groups": "P-384:X25519"}),
    ("NORMAL:-CURVE-ALL:+CURVE-SECP256R1", {"groups": "P-256"}),
    ("NORMAL:-GROUP-FFDHE2048", {
        "groups": "X25519:P-256:X448:P-521:P-384:ffdhe3072:ffdhe4096:ffdhe6144:ffdhe8192"}),
    ("NONE:+VERS-TLS1.3:+CHACHA20-POLY1305:+GROUP-X25519:+SIGN-ALL:+AEAD", {
        "min_version": (1, 3), "max_version": (1, 3), "ciphers": "CHACHA20:!aNULL:!eNULL",
        "ciphersuites": "TLS_CHACHA20_POLY1305_SHA256", "groups": "X25519"}),
    # libtls, as the manual documents it
    ("PROTOCOLS=TLSv1.3", {"min_version": (1, 3), "max_version": (1, 3)}),
    ("PROTOCOLS=TLSv1.3 CIPHERS=ECDHE-RSA-AES128-SHA256 ECDHECURVES=P-384", {
        "min_version": (1, 3), "max_version": (1, 3), "ciphers": "ECDHE-RSA-AES128-SHA256",
        "groups": "P-384"}),
    ("PROTOCOLS=tlsv1.2,tlsv1.3", {"min_version": (1, 2), "max_version": (1, 3)}),
    ("PROTOCOLS=secure", {"min_version": (1, 2), "max_version": (1, 3)}),
    ("PROTOCOLS=all:!tlsv1.0", {"min_version": (1, 1), "max_version": (1, 3), "legacy": True}),
    ("PROTOCOLS=legacy", {"min_version": (1, 0), "max_version": (1, 3), "legacy": True}),
    ("ECDHECURVES=X25519,P-256", {"groups": "X25519:P-256"}),
    ("ECDHECURVES=default", {}),
    ("CIPHERS=secure", {"ciphers": "HIGH:!aNULL:!eNULL:!kRSA:!SHA1"}),
    ("CIPHERS=TLS_AES_128_GCM_SHA256:ECDHE-ECDSA-AES128-GCM-SHA256", {
        "ciphers": "ECDHE-ECDSA-AES128-GCM-SHA256", "ciphersuites": "TLS_AES_128_GCM_SHA256"}),
    ("whatever PROTOCOLS=TLSv1.2 is ignored", {"min_version": (1, 2), "max_version": (1, 2)}),
])
def test_priorities(text, expected) -> None:
    prio = parse_priorities(text)
    got = {k: v for k, v in vars(prio).items() if v not in (None, False)}
    assert got == expected


@pytest.mark.parametrize(("text", "message"), [
    # GnuTLS: "error in priority string at position N" (1-based start of the element)
    ("NORMAL:+FOO", "error in priority string at position 8"),
    ("FOO", "error in priority string at position 1"),
    ("NORMAL:-VERS-TLS1.3:+VERS-TLS9.9", "error in priority string at position 21"),
    ("NORMAL::+AES-128-GCM", "error in priority string at position 8"),
    ("NORMAL:+ARCFOUR-128", "error in priority string at position 8"),
    ("NORMAL:+VERS-SSL3.0", "error in priority string at position 8"),
    ("NORMAL:-VERS-TLS1.1:+VERS-TLS1.0",
     "the enabled protocol versions are not a contiguous range"),
    ("NORMAL:-VERS-ALL", "no protocol version is enabled"),
    ("NORMAL:-CIPHER-ALL", "no cipher is enabled"),
    ("NORMAL:-GROUP-ALL", "no key exchange group is enabled"),
    # libtls (msmtp's libtls build: "could not parse protocols")
    ("PROTOCOLS=TLSv9", "could not parse protocols"),
    ("PROTOCOLS=tlsv1.0,tlsv1.3", "could not parse protocols"),
    ("PROTOCOLS=!all", "could not parse protocols"),
    ("ECDHECURVES=", "invalid ecdhe curve ''"),
])
def test_priority_errors(text, message) -> None:
    with pytest.raises(PriorityError) as info:
        parse_priorities(text)
    assert str(info.value) == message


def test_priority_errors_are_exit_70_before_anything_else(tmp_path) -> None:
    options = TLSOptions("localhost", trust_file=str(tmp_path / "missing"),
                         priorities="NORMAL:+FOO")
    with pytest.raises(TLSFailure) as info:
        options.context()
    assert info.value.exitcode == sysexits.EX_SOFTWARE == 70
    assert info.value.message == (
        "cannot set priorities for TLS session: error in priority string at position 8")


def test_unknown_curve_is_refused_when_applied() -> None:
    with pytest.raises(TLSFailure) as info:
        TLSOptions("localhost", trust_file=None, certcheck=False,
                   priorities="ECDHECURVES=X25519,P-999").context()
    assert info.value.message == (
        "cannot set priorities for TLS session: invalid ecdhe curve 'P-999'")


def test_priorities_reach_the_context() -> None:
    ctx = TLSOptions("localhost", trust_file=None, certcheck=False,
                     priorities="NORMAL:-VERS-TLS1.3:-CIPHER-ALL:+AES-256-GCM").context()
    conn = SSL.Connection(ctx, None)
    ciphers = conn.get_cipher_list()
    assert ciphers and all("AES256-GCM" in c or c.startswith("TLS_AES_256") for c in ciphers)


# -- verification messages ------------------------------------------------------------


@pytest.mark.parametrize(("errors", "name_ok", "text"), [
    ([10], True, "The certificate chain uses expired certificate. "),
    ([9], True, "The certificate chain uses not yet valid certificate. "),
    ([], False, "The name in the certificate does not match the expected. "),
    ([23], True, "The certificate chain is revoked. "),
    ([20], True, "The certificate issuer is unknown. "),
    ([18], True, "The certificate issuer is unknown. "),
    ([20, 10], True,
     "The certificate issuer is unknown. The certificate chain uses expired certificate. "),
    ([10], False, "The certificate chain uses expired certificate. "
                  "The name in the certificate does not match the expected. "),
    ([20], False, "The certificate issuer is unknown. "
                  "The name in the certificate does not match the expected. "),
    # GnuTLS looks at the CRL only for an otherwise good chain
    ([10, 23], True, "The certificate chain uses expired certificate. "),
    ([23], False, "The certificate chain is revoked. "
                  "The name in the certificate does not match the expected. "),
    # problems with CRLs themselves do not fail the check (GnuTLS ignores them)
    ([3, 11, 12], False, "The name in the certificate does not match the expected. "),
    ([26], True, "The certificate chain does not match the intended purpose. "),
    ([24], True, "The certificate issuer is not a CA. "),
    ([7], True, "The signature in the certificate is invalid. "),
])
def test_verification_messages(errors, name_ok, text) -> None:
    status = status_from_openssl(errors)
    if not name_ok:
        status.add("unexpected-owner")
    assert verification_message(status) == PREFIX + text


def test_unknown_openssl_errors_keep_openssl_words() -> None:
    message = verification_message(status_from_openssl([1000]))
    assert message.startswith(PREFIX)
    assert message.endswith(". ")


def test_crl_problems_alone_are_no_failure() -> None:
    assert status_from_openssl([3, 8, 11, 12, 33]) == set()


# -- fingerprints ------------------------------------------------------------------------


def test_fingerprints_of_each_length(pki) -> None:
    der = pki.good.der()
    for algorithm in ("sha256", "sha1", "md5"):
        digest = hashlib.new(algorithm, der).digest()
        assert fingerprint_matches(der, digest)
        assert not fingerprint_matches(der, bytes(len(digest)))
    assert not fingerprint_matches(der, b"\x00" * 12)


def _check(options, cert, errors=()):
    return options.check(cert, list(errors))


def test_fingerprint_replaces_every_other_check(pki) -> None:
    expired = pki.leaf(pki.ca("elsewhere"), "other.example", days=(-9, -2))
    fp = hashlib.sha256(expired.der()).digest()
    options = TLSOptions("localhost", trust_file="system", fingerprint=fp)
    assert not options.uses_trust
    assert _check(options, expired.certificate, [20, 10]) is None
    failure = _check(TLSOptions("localhost", fingerprint=bytes(32)), expired.certificate)
    assert failure.exitcode == 69
    assert failure.message == ("TLS certificate verification failed: "
                               "the certificate fingerprint does not match")


def test_certcheck_off_accepts_anything(pki) -> None:
    options = TLSOptions("elsewhere", fingerprint=bytes(32), certcheck=False)
    assert not options.uses_trust
    assert _check(options, pki.good.certificate, [20, 10]) is None


def test_trust_check_adds_the_name(pki) -> None:
    failure = _check(TLSOptions("mail.example.org"), pki.good.certificate, [10])
    assert failure.exitcode == sysexits.EX_UNAVAILABLE
    assert failure.message == PREFIX + (
        "The certificate chain uses expired certificate. "
        "The name in the certificate does not match the expected. ")
    assert _check(TLSOptions("localhost"), pki.good.certificate) is None


# -- names ----------------------------------------------------------------------------------


def _cert(pki, subject_cn, sans=None):
    key = pki._key()
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1))
               .not_valid_after(now + datetime.timedelta(days=1)))
    if sans is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256())


@pytest.mark.parametrize(("host", "cn", "sans", "ok"), [
    ("localhost", "x", [x509.DNSName("localhost")], True),
    ("LOCALHOST", "x", [x509.DNSName("localhost")], True),
    ("a.example.test", "x", [x509.DNSName("*.example.test")], True),
    ("a.b.example.test", "x", [x509.DNSName("*.example.test")], False),
    ("example.test", "x", [x509.DNSName("*.example.test")], False),
    ("localhost.", "x", [x509.DNSName("localhost")], False),  # as msmtp 1.8.23
    ("127.0.0.1", "x", [x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))], True),
    ("127.0.0.2", "x", [x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))], False),
    ("::1", "x", [x509.IPAddress(__import__("ipaddress").ip_address("::1"))], True),
    ("127.0.0.1", "x", [x509.DNSName("127.0.0.1")], False),
    # GnuTLS: the common name counts when there is no DNS name ...
    ("localhost", "localhost", None, True),
    ("localhost", "LocalHost", [x509.IPAddress(__import__("ipaddress").ip_address("::1"))], True),
    # ... but not when there is one, and never for IP addresses
    ("localhost", "localhost", [x509.DNSName("other.example")], False),
    ("127.0.0.1", "127.0.0.1", None, False),
    # internationalised names: U-labels match the A-labels in certificates
    ("bücher.example", "x", [x509.DNSName("xn--bcher-kva.example")], True),
    ("BÜCHER.Example", "x", [x509.DNSName("xn--bcher-kva.example")], True),
    ("xn--bcher-kva.example", "x", [x509.DNSName("xn--bcher-kva.example")], True),
])
def test_name_check(pki, host, cn, sans, ok) -> None:
    assert TLSOptions(host).name_matches(_cert(pki, cn, sans)) is ok


@pytest.mark.parametrize(("host", "sni"), [
    ("mail.example.org", b"mail.example.org"),
    ("bücher.example", b"xn--bcher-kva.example"),
    ("127.0.0.1", None),
    ("::1", None),
    ("", None),
    (None, None),
])
def test_server_name_indication(host, sni) -> None:
    assert TLSOptions(host).server_name_indication() == sni


def test_no_hostname_means_no_name_check(pki) -> None:
    assert TLSOptions(None).name_matches(pki.good.certificate)


# -- certificate and session information ------------------------------------------------


def test_dn_as_gnutls_prints_it() -> None:
    A = x509.NameAttribute
    name = x509.Name([
        A(NameOID.COUNTRY_NAME, "DE"), A(NameOID.STATE_OR_PROVINCE_NAME, "NRW"),
        A(NameOID.LOCALITY_NAME, "Köln"), A(NameOID.ORGANIZATION_NAME, "Foo, Inc.+x"),
        A(NameOID.ORGANIZATIONAL_UNIT_NAME, 'Mail="q"'), A(NameOID.COMMON_NAME, "localhost"),
        A(NameOID.EMAIL_ADDRESS, "a@b.c"), A(NameOID.DOMAIN_COMPONENT, "example"),
        A(NameOID.SERIAL_NUMBER, "1234"), A(NameOID.USER_ID, "uid1"),
        A(NameOID.GIVEN_NAME, "G"), A(NameOID.SURNAME, "S"), A(NameOID.TITLE, "T"),
        A(NameOID.STREET_ADDRESS, "Street 1"), A(NameOID.POSTAL_CODE, "12345"),
        A(NameOID.BUSINESS_CATEGORY, "Private"), A(NameOID.PSEUDONYM, "P"),
        A(NameOID.INITIALS, "I"), A(NameOID.GENERATION_QUALIFIER, "III"),
        A(NameOID.DN_QUALIFIER, "dnq"), A(x509.ObjectIdentifier("1.2.3.4"), "odd"),
        A(NameOID.JURISDICTION_COUNTRY_NAME, "DE"), A(NameOID.ORGANIZATION_IDENTIFIER, "OID1"),
        A(NameOID.UNSTRUCTURED_NAME, "un"), A(NameOID.X500_UNIQUE_IDENTIFIER, "xu"),
        A(NameOID.INN, "inn"),
    ])
    # what msmtp 1.8.23 printed for this subject
    assert format_dn(name) == (
        'C=DE,ST=NRW,L=Köln,O=Foo\\, Inc.\\+x,OU=Mail=\\"q\\",CN=localhost,EMAIL=a@b.c,'
        "DC=example,serialNumber=1234,UID=uid1,givenName=G,surName=S,title=T,street=Street 1,"
        "postalCode=12345,businessCategory=Private,pseudonym=P,initials=I,"
        "generationQualifier=III,dnQualifier=dnq,1.2.3.4=#0c036f6464,"
        "jurisdictionOfIncorporationCountryName=DE,2.5.4.97=#0c044f494431,"
        "1.2.840.113549.1.9.2=#0c02756e,2.5.4.45=#0c027875,INN=#0c03696e6e")


def test_multi_valued_rdn() -> None:
    name = x509.Name([x509.RelativeDistinguishedName([
        x509.NameAttribute(NameOID.COMMON_NAME, "a"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "b")])])
    assert format_dn(name) in ("CN=a+OU=b", "OU=b+CN=a")


@pytest.mark.parametrize(("args", "text"), [
    (("TLSv1.3", "TLS_AES_256_GCM_SHA384", "SECP256R1", "ECDSA-SECP256R1-SHA256"),
     "(TLS1.3)-(ECDHE-SECP256R1)-(ECDSA-SECP256R1-SHA256)-(AES-256-GCM)"),
    (("TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256", "FFDHE2048", "RSA-PSS-RSAE-SHA256"),
     "(TLS1.3)-(DHE-FFDHE2048)-(RSA-PSS-RSAE-SHA256)-(CHACHA20-POLY1305)"),
    (("TLSv1.2", "ECDHE-ECDSA-AES256-GCM-SHA384", "X25519", "ECDSA-SHA256"),
     "(TLS1.2)-(ECDHE-X25519)-(ECDSA-SHA256)-(AES-256-GCM)"),
    (("TLSv1.2", "ECDHE-RSA-AES128-SHA256", "X25519", "RSA-PSS-RSAE-SHA256"),
     "(TLS1.2)-(ECDHE-X25519)-(RSA-PSS-RSAE-SHA256)-(AES-128-CBC)-(SHA256)"),
    (("TLSv1.2", "AES128-GCM-SHA256", None, None), "(TLS1.2)-(RSA)-(AES-128-GCM)"),
    (("TLSv1", "ECDHE-RSA-AES256-SHA", "X25519", None),
     "(TLS1.0)-(ECDHE-X25519)-(AES-256-CBC)-(SHA1)"),
])
def test_session_description(args, text) -> None:
    # the forms msmtp 1.8.23 printed for the same sessions
    assert session_description(*args) == text


def test_info_lines(pki) -> None:
    cert = pki.good.certificate
    info = TLSInfo.from_certificate(cert, "(TLS1.3)-(X)")
    start = cert.not_valid_before_utc.timestamp()
    lines = info.lines()
    assert lines[:7] == [
        "TLS session parameters:", "    (TLS1.3)-(X)", "TLS certificate information:",
        "    Subject:", "        O=msmtp-twisted tests,CN=localhost",
        "    Issuer:", "        O=msmtp-twisted tests,CN=msmtp-twisted Test Root CA"]
    assert lines[7:10] == ["    Validity:",
                           f"        Activation time: {time.strftime('%c', time.localtime(start))}",
                           lines[9]]
    assert lines[9].startswith("        Expiration time: ")
    assert lines[10:] == [
        "    Fingerprints:", f"        SHA256: {pki.good.fingerprint('sha256')}",
        f"        SHA1 (deprecated): {pki.good.fingerprint('sha1')}"]
    assert TLSInfo.from_certificate(cert).lines()[1] == "    not available"


# -- files --------------------------------------------------------------------------------


def _failure(options) -> TLSFailure:
    with pytest.raises(TLSFailure) as info:
        options.context()
    return info.value


def test_missing_trust_file(tmp_path) -> None:
    failure = _failure(TLSOptions("h", trust_file=str(tmp_path / "nope")))
    assert failure.exitcode == sysexits.EX_NOINPUT
    assert failure.message == (f"cannot set X509 trust file {tmp_path / 'nope'} for TLS session: "
                               "Error while reading file.")


def test_trust_file_without_certificates(tmp_path) -> None:
    empty = tmp_path / "empty.pem"
    empty.write_text("nothing here\n")
    # GnuTLS found 0 certificates, and msmtp prints the text of 0
    assert _failure(TLSOptions("h", trust_file=str(empty))).message == (
        f"cannot set X509 trust file {empty} for TLS session: Success.")


def test_crl_files(pki, tmp_path) -> None:
    trust = str(pki.root.cert)
    missing = _failure(TLSOptions("h", trust_file=trust, crl_file=str(tmp_path / "nope")))
    assert (missing.exitcode, missing.message) == (66, (
        f"cannot set X509 CRL file {tmp_path / 'nope'} for TLS session: Error while reading file."))
    garbage = _failure(TLSOptions("h", trust_file=trust, crl_file=str(pki.root.key)))
    assert garbage.message.endswith("for TLS session: Base64 decoding error.")
    TLSOptions("h", trust_file=trust, crl_file=str(pki.crl(pki.root))).context()  # fine


def test_trust_and_crl_files_are_not_read_when_unused(tmp_path) -> None:
    nope = str(tmp_path / "nope")
    TLSOptions("h", trust_file=nope, crl_file=nope, fingerprint=bytes(32)).context()
    TLSOptions("h", trust_file=nope, crl_file=nope, certcheck=False).context()


def _key_failure(pki, cert, key, password=None) -> str:
    return _failure(TLSOptions("h", trust_file=str(pki.root.cert), cert_file=str(cert),
                               key_file=str(key), key_password=password)).message


def test_client_certificate_errors(pki, tmp_path) -> None:
    client = pki.client
    prefix = "cannot set X509 key file {} and/or X509 cert file {} for TLS session: "
    nope = tmp_path / "nope"
    assert _key_failure(pki, client.cert, nope) == (
        prefix.format(nope, client.cert) + "Error while reading file.")
    assert _key_failure(pki, nope, client.key) == (
        prefix.format(client.key, nope) + "Error while reading file.")
    assert _key_failure(pki, client.cert, pki.good.key) == (
        prefix.format(pki.good.key, client.cert)
        + "The certificate and the given key do not match.")
    encrypted = pki.encrypted_key(client, "sekrit")
    for password in (None, "", "wrong"):
        assert _key_failure(pki, client.cert, encrypted, password) == (
            prefix.format(encrypted, client.cert) + "Decryption has failed.")
    assert _failure(TLSOptions("h", trust_file=str(pki.root.cert), cert_file="pkcs11:object=c",
                               key_file="pkcs11:object=k")).message == (
        prefix.format("pkcs11:object=k", "pkcs11:object=c")
        + "PKCS #11 URIs are not supported with OpenSSL")


def test_client_certificate_loads(pki) -> None:
    client = pki.client
    encrypted = pki.encrypted_key(client, "sekrit")
    base = {"trust_file": str(pki.root.cert), "cert_file": str(client.cert)}
    TLSOptions("h", key_file=str(client.key), **base).context()
    TLSOptions("h", key_file=str(client.key), key_password="unused", **base).context()
    TLSOptions("h", key_file=str(encrypted), key_password="sekrit", **base).context()
    TLSOptions("h", key_file=str(encrypted), key_password=lambda: "sekrit", **base).context()


def test_from_account_and_warnings() -> None:
    from msmtp_twisted.config.account import Account

    account = Account("a")
    account.host = "mail.example.org"
    account.tls_trust_file = "system"
    account.password = "pw"
    options = TLSOptions.from_account(account)
    assert (options.hostname, options.trust_file, options.key_password) == (
        "mail.example.org", "system", "pw")
    assert options.warnings() == []
    account.tls_host_override = "other.example"
    account.tls_min_dh_prime_bits = 512
    options = TLSOptions.from_account(account)
    assert options.hostname == "other.example"
    assert options.warnings() == ["warning: tls_min_dh_prime_bits is deprecated and ignored "
                                  "with OpenSSL; use tls_priorities"]


# -- connection failures in msmtp's words ---------------------------------------------


def _ssl_failure(*reasons: str) -> Failure:
    try:
        raise SSL.Error([("SSL routines", "", r) for r in reasons])
    except SSL.Error:
        return Failure()


@pytest.mark.parametrize(("reason", "alert", "text"), [
    (None, None, "Error in the pull function."),
    (Failure(error.ConnectionDone()), None, "Error in the pull function."),
    (Failure(error.ConnectionLost()), None, "Error in the pull function."),
    (Failure(error.ConnectionLost()), "closed", "The TLS connection was non-properly terminated."),
    (Failure(error.ConnectionLost()), "reset", "Error in the pull function."),
    (_ssl_failure("unexpected eof while reading"), None, "Error in the pull function."),
    (_ssl_failure("wrong version number"), None, "An unexpected TLS packet was received."),
    (_ssl_failure("packet length too long"), None, "An unexpected TLS packet was received."),
    (_ssl_failure("tlsv1 alert protocol version"), 70, "A TLS fatal alert has been received."),
    (_ssl_failure("sslv3 alert handshake failure"), None, "A TLS fatal alert has been received."),
    (None, 40, "A TLS fatal alert has been received."),
    (_ssl_failure("unsupported protocol"), None,
     "A packet with illegal or unsupported version was received."),
    (_ssl_failure("no ciphers available"), None, "Could not negotiate a supported cipher suite."),
    (_ssl_failure("something new"), None, "something new"),
])
def test_handshake_error_text(reason, alert, text) -> None:
    # "closed"/"reset": how the connection under TLS ended (no alert then)
    below = {"closed": Failure(error.ConnectionDone()), "reset": Failure(error.ConnectionLost())}
    if alert in below:
        assert handshake_error_text(reason, None, below[alert]) == text
    else:
        assert handshake_error_text(reason, alert) == text


def _account_tls(pki) -> AccountTLS:
    return AccountTLS(TLSOptions("localhost", trust_file=str(pki.root.cert)))


def test_failures_before_tls_are_left_alone(pki) -> None:
    tls = _account_tls(pki)
    failure = SMTPFailure(69, "the server does not support TLS via the STARTTLS command",
                          cause=Cause.UNSUPPORTED)
    assert tls.failure_for(failure) is None


def test_broken_handshake_becomes_exit_76(pki) -> None:
    tls = _account_tls(pki)
    tls.started = True
    tls.lost_reason = _ssl_failure("wrong version number")
    got = tls.failure_for(RESET)
    assert (got.exitcode, got.message) == (
        76, "TLS handshake failed: An unexpected TLS packet was received.")
    # a timeout during the handshake (msmtp 1.8.23 waits on past its timeout there)
    tls.lost_reason = None
    got = tls.failure_for(SMTPFailure(74, "network read error: the operation timed out",
                                      cause=Cause.TIMEOUT))
    assert (got.exitcode, got.message) == (76, "TLS handshake failed: the operation timed out")
    # the server closed: GnuTLS's pull function failed
    got = tls.failure_for(CLOSED)
    assert (got.exitcode, got.message) == (76, "TLS handshake failed: Error in the pull function.")


def test_verification_failure_wins(pki) -> None:
    tls = _account_tls(pki)
    tls.started = True
    state = TLSState(tls.options)
    state.handshake_done = True
    state.failure = TLSFailure(69, "TLS certificate verification failed: x",
                               cause=Cause.TLS_CERTIFICATE)
    tls.state = state
    assert tls.failure_for(READ_X) is state.failure


def test_errors_after_the_handshake(pki) -> None:
    tls = _account_tls(pki)
    tls.started = True
    tls.state = TLSState(tls.options)
    tls.state.handshake_done = True
    tls.state.alert = 116  # certificate required: the server wanted a client certificate
    got = tls.failure_for(RESET)
    assert (got.exitcode, got.message) == (
        74, "cannot read from TLS connection: A TLS fatal alert has been received.")
    tls.state.alert = None
    tls.state.transport_reason = Failure(error.ConnectionDone())  # the server closed
    got = tls.failure_for(RESET)
    assert got.message == ("cannot read from TLS connection: "
                           "The TLS connection was non-properly terminated.")
    tls.state.transport_reason = Failure(error.ConnectionLost())  # a reset
    got = tls.failure_for(RESET)
    assert got.message == "cannot read from TLS connection: Error in the pull function."
    got = tls.failure_for(SMTPFailure(74, "network write error: Broken pipe", cause=Cause.CLOSED,
                                      writing=True))
    assert got.message == "cannot write to TLS connection: Error in the push function."
    # server replies and protocol errors stay what they are
    reply = Reply(554, ("554 no",))
    refused = SMTPFailure(69, "envelope from address a@b not accepted by the server", reply)
    assert tls.failure_for(refused) is None
    assert tls.failure_for(CLOSED) is None


def test_trace_is_held_during_the_handshake(pki) -> None:
    seen = []
    infos = []
    tls = AccountTLS(TLSOptions("localhost", trust_file=str(pki.root.cert)),
                     on_established=infos.append)
    trace = tls.trace(lambda d, data: seen.append((d, data)))
    trace("<--", b"220 go\r\n")

    class Transport:
        def startTLS(self, creator):
            self.creator = creator
    tls.start_tls(Transport())
    trace("-->", b"EHLO x\r\n")
    assert seen == [("<--", b"220 go\r\n")]
    state = TLSState(tls.options)
    tls._connection(state)
    state.info = "INFO"
    tls._established(state)
    assert infos == ["INFO"]
    assert seen == [("<--", b"220 go\r\n"), ("-->", b"EHLO x\r\n")]
    assert tls.trace(None) is None


def test_der_export_helper(pki) -> None:
    # the PKI helper and cryptography agree on the DER (fingerprints are of it)
    assert pki.good.der() == pki.good.certificate.public_bytes(serialization.Encoding.DER)


# -- endpoint strings ------------------------------------------------------------------


def test_endpoint_string_fields(pki) -> None:
    from msmtp_twisted.net.description import split_description as _split_description
    from msmtp_twisted.tls.strings import tls_options_from_fields

    args, kwargs = _split_description(
        "msmtp-tls:mail.example.org:465:fingerprint=AB\\:CD:certcheck=off")
    assert args == ["msmtp-tls", "mail.example.org", "465"]
    assert kwargs == {"fingerprint": "AB:CD", "certcheck": "off"}
    fp = pki.good.fingerprint("sha1")
    options = tls_options_from_fields("h", {"fingerprint": fp.replace(":", ""),
                                            "tls_priorities": "NORMAL", "trust_file": ""})
    assert options.fingerprint == bytes.fromhex(fp.replace(":", ""))
    assert (options.hostname, options.trust_file, options.priorities) == ("h", None, "NORMAL")
    assert tls_options_from_fields("h", {"host_override": "o"}).hostname == "o"
    assert tls_options_from_fields("h", {}).trust_file == "system"
    with pytest.raises(ValueError):
        tls_options_from_fields("h", {"bogus": "1"})
    with pytest.raises(ValueError):
        tls_options_from_fields("h", {"fingerprint": "XYZ"})
    with pytest.raises(ValueError):
        tls_options_from_fields("h", {"certcheck": "maybe"})


def test_endpoint_from_string(pki) -> None:
    from twisted.internet.testing import MemoryReactorClock

    from msmtp_twisted.tls.endpoint import TLSWrapperEndpoint
    from msmtp_twisted.tls.strings import tls_client_endpoint

    endpoint = tls_client_endpoint(
        MemoryReactorClock(), f"msmtp-tls:host=localhost:port=4465:trust_file={pki.root.cert}")
    assert isinstance(endpoint, TLSWrapperEndpoint)
    assert endpoint._wrapped._port == 4465
    assert endpoint._creator.options.trust_file == str(pki.root.cert)
