"""``govgate.core.device_certs``: the device CA, issued client certificates, PKCS#12 bundles, and the once-per-
connection examination of a presented certificate (Art. 19, Art. 30)."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from govgate.core import device_certs
from tests.pki import TestCA

NOW = datetime(2026, 12, 5, 2, 0, tzinfo=UTC)


def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    k = key()
    return k, device_certs.new_ca(k, "GovGate device CA (test)", NOW)


def issued(ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], device_id: str = "zs-laptop", *,
           days: int = 365, now: datetime = NOW) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    k = key()
    return k, device_certs.issue(ca[0], ca[1], k, device_id, "zhangsan", now, days=days)


def test_the_ca_may_sign_certificates_only_one_level_deep(ca: tuple[ec.EllipticCurvePrivateKey,
                                                                    x509.Certificate]) -> None:
    cert = ca[1]
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert (constraints.value.ca, constraints.value.path_length) == (True, 0)
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign
    assert not usage.digital_signature
    assert cert.issuer == cert.subject


def test_an_issued_certificate_is_a_v3_client_certificate_for_the_device(ca: tuple[ec.EllipticCurvePrivateKey,
                                                                                     x509.Certificate]) -> None:
    _, cert = issued(ca, days=30)
    assert cert.version is x509.Version.v3
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "zs-laptop"
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).critical
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.UniformResourceIdentifier) == ["urn:govgate:device:zs-laptop"]
    assert cert.not_valid_after_utc - NOW == timedelta(days=30)
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)


def test_a_certificate_from_the_ca_is_chained_and_usable_within_its_validity(
        ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    _, cert = issued(ca, days=30)
    seen = device_certs.examine([cert], [ca[1]], NOW)
    assert seen.chained is True
    assert seen.sha256 == device_certs.fingerprint(cert)
    assert seen.usable(NOW + timedelta(days=29))
    assert not seen.usable(NOW + timedelta(days=31))  # expired: no longer the device, on the same connection
    assert not seen.usable(NOW - timedelta(days=1))  # not yet valid


def test_an_expired_certificate_does_not_chain(ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    _, cert = issued(ca, days=1, now=NOW - timedelta(days=10))
    seen = device_certs.examine([cert], [ca[1]], NOW)
    assert seen.chained is False
    assert not seen.usable(NOW)


@pytest.mark.parametrize("kind", ["other CA", "forged copy", "self-signed look-alike", "server certificate"])
def test_certificates_the_ca_did_not_issue_for_clients_do_not_chain(
        ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], kind: str) -> None:
    _, genuine = issued(ca)
    if kind == "other CA":
        other = TestCA().issue("zs-laptop", client=True)
        cert = other.cert
    elif kind == "forged copy":  # the genuine subject, issuer name and serial, signed with another key
        impostor = key()
        cert = (x509.CertificateBuilder().subject_name(genuine.subject).issuer_name(genuine.issuer)
                .public_key(impostor.public_key()).serial_number(genuine.serial_number)
                .not_valid_before(genuine.not_valid_before_utc).not_valid_after(genuine.not_valid_after_utc)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .sign(impostor, hashes.SHA256()))
    elif kind == "self-signed look-alike":
        k = key()
        cert = device_certs.new_ca(k, ca[1].subject.rfc4514_string(), NOW)
    else:
        cert = TestCA().server("zs-laptop.example").cert
    seen = device_certs.examine([cert], [ca[1]], NOW)
    assert seen.chained is False
    assert seen.problem
    assert not seen.usable(NOW)
    assert seen.sha256 != device_certs.fingerprint(genuine)


def test_a_server_certificate_from_the_right_ca_is_not_a_client_certificate() -> None:
    test_ca = TestCA()
    server = test_ca.server("zs-laptop.example")
    assert device_certs.examine([server.cert], [test_ca.cert], NOW).chained is False
    client = test_ca.issue("zs-laptop", client=True)  # no subjectAltName: accepted from an operator's own PKI
    assert device_certs.examine([client.cert], [test_ca.cert], datetime.now(UTC)).chained is True


def test_without_a_ca_in_use_a_certificate_is_judged_by_its_validity_only() -> None:
    cert = TestCA().issue("laptop", client=True).cert
    now = datetime.now(UTC)
    seen = device_certs.examine([cert], [], now)
    assert seen.chained is None
    assert seen.problem is None
    assert seen.usable(now)
    assert not seen.usable(cert.not_valid_after_utc + timedelta(seconds=1))


@pytest.mark.parametrize("legacy", [False, True], ids=["modern", "legacy"])
def test_the_pkcs12_bundle_opens_with_its_password_in_cryptography_and_openssl(
        ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], tmp_path: Path, legacy: bool) -> None:
    k, cert = issued(ca)
    data = device_certs.pkcs12_bundle("zs-laptop", k, cert, ca[1], b"Correct-horse-9", legacy=legacy)
    loaded = pkcs12.load_pkcs12(data, b"Correct-horse-9")
    assert loaded.cert is not None
    assert loaded.cert.certificate == cert
    assert loaded.key is not None
    assert loaded.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()) == k.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    assert [c.certificate for c in loaded.additional_certs] == [ca[1]]
    with pytest.raises(ValueError):  # noqa: PT011 (cryptography says only ValueError)
        pkcs12.load_pkcs12(data, b"wrong password")
    path = tmp_path / "zs-laptop.p12"
    path.write_bytes(data)
    args = ["openssl", "pkcs12", "-in", str(path), "-passin", "pass:Correct-horse-9", "-nokeys", "-clcerts"]
    if legacy:
        args.append("-legacy")
    out = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "CN=zs-laptop" in out.stdout.replace(" = ", "=")


def test_fingerprints_read_like_a_browsers() -> None:
    assert device_certs.fingerprint_text(bytes(range(4))) == "00:01:02:03"
