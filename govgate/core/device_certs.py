"""Device certificates (Art. 19, Art. 30): the gateway's device CA, the client certificates it issues, and the
check that a certificate a browser presents identifies a device.

# Art. 19 (第十九条): staff functions only from allowed IP ranges or devices.
# Art. 30 (第三十条): bind accounts to terminals; electronic certificates are encouraged.

A presented certificate identifies a device only while it is within its validity period, is not revoked
(the registry's business, ``govgate.core.devices``), and — when a CA is in use (``gateway.tls.client_ca``, or
the gateway's own device CA once ``govgate device ca init`` made it) — chains to that CA for client
authentication (``cryptography.x509.verification``: signatures, validity of every link, CA constraints,
extended key usage clientAuth). ``examine`` runs once per TLS connection; ``DeviceCertificate.usable`` is the
per-request question (is it still valid now?).

Issued certificates: X.509 v3, ECDSA P-256 keys, SHA-256 signatures, ``CA:FALSE`` (critical), key usage
digitalSignature (critical), extended key usage clientAuth, key identifiers, the device id as the common
name and as a URI name (``urn:govgate:device:ID``). The device CA: a self-signed ECDSA P-256 root with
``CA:TRUE, pathlen:0``, allowed to sign certificates only. Keys are made by the caller and passed in; so is
``now``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
DEVICE_URI_PREFIX = "urn:govgate:device:"
ORGANIZATION = "GovGate device"


def fingerprint(cert: x509.Certificate) -> bytes:
    """SHA-256 of the DER encoding: the ``cert_sha256`` a device is known by."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()


def fingerprint_text(digest: bytes) -> str:
    """``AB:CD:…`` as browsers and certificate viewers show a SHA-256 fingerprint."""
    return ":".join(f"{b:02X}" for b in digest)


def _name(common_name: str, unit: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION)]
    if unit:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def new_ca(key: ec.EllipticCurvePrivateKey, common_name: str, now: datetime, *,
           days: int = CA_DAYS) -> x509.Certificate:
    """The self-signed device CA."""
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(_name(common_name)).issuer_name(_name(common_name))
        .public_key(public).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def issue(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, device_key: ec.EllipticCurvePrivateKey,
          device_id: str, account: str, now: datetime, *, days: int) -> x509.Certificate:
    """A client certificate for ``device_id`` of ``account``, valid from now for ``days`` days (never past the CA)."""
    public = device_key.public_key()
    not_after = min(now + timedelta(days=days), ca_cert.not_valid_after_utc)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(device_id, unit=account)).issuer_name(ca_cert.subject)
        .public_key(public).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(DEVICE_URI_PREFIX + device_id)]),
                       critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def pkcs12_bundle(device_id: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate, ca_cert: x509.Certificate,
                  password: bytes, *, legacy: bool = False) -> bytes:
    """A password-protected PKCS#12 file (key, certificate, CA) that browsers and operating systems import.

    Default: AES-256-CBC under PBKDF2-SHA256 and a SHA-256 MAC, which Windows 10 (1709 and later), macOS and iOS
    (recent releases), Android, Firefox and Chrome import. ``legacy``: 3DES and a SHA-1 MAC, for older systems
    that refuse the modern form (weaker protection of the file: hand it over on a trusted channel).
    """
    if legacy:
        algorithm = (serialization.PrivateFormat.PKCS12.encryption_builder().kdf_rounds(50_000)
                     .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
                     .hmac_hash(hashes.SHA1())  # noqa: S303 (asked for by --legacy, for old systems only)
                     .build(password))
    else:
        algorithm = (serialization.PrivateFormat.PKCS12.encryption_builder().kdf_rounds(200_000)
                     .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC).hmac_hash(hashes.SHA256())
                     .build(password))
    return pkcs12.serialize_key_and_certificates(device_id.encode(), key, cert, [ca_cert], algorithm)


@dataclass(frozen=True, slots=True)
class DeviceCertificate:
    """What one TLS connection's client certificate is, checked once when the connection is set up."""

    sha256: bytes
    not_before: datetime
    not_after: datetime
    chained: bool | None  # to a CA in use: True / False; None: no CA in use (a listed fingerprint is enough)
    problem: str | None  # why it does not chain (for the operator's log), None when it does or no CA is in use

    def usable(self, now: datetime) -> bool:
        """Identifies a device now: within its validity period and, when a CA is in use, chained to it."""
        return self.chained is not False and self.not_before <= now <= self.not_after


def _verifier(cas: Sequence[x509.Certificate], now: datetime) -> verification.ClientVerifier:
    # Client certificates from an operator's own PKI need not carry a subjectAltName; the rest of the Web PKI
    # profile (signatures, validity, constraints, clientAuth usage) applies.
    ee = verification.ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.SubjectAlternativeName, verification.Criticality.AGNOSTIC, None)
    return (verification.PolicyBuilder().store(verification.Store(list(cas))).time(now)
            .extension_policies(ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee)
            .build_client_verifier())


def examine(chain: Sequence[x509.Certificate], cas: Sequence[x509.Certificate], now: datetime) -> DeviceCertificate:
    """The presented ``chain`` (leaf first) judged against the CAs in use (none: ``cas`` empty) at ``now``."""
    leaf = chain[0]
    chained: bool | None = None
    problem = None
    if cas:
        try:
            _verifier(cas, now).verify(leaf, list(chain[1:]))
        except verification.VerificationError as exc:
            chained, problem = False, str(exc)[:300]
        else:
            chained = True
    return DeviceCertificate(sha256=fingerprint(leaf), not_before=leaf.not_valid_before_utc,
                             not_after=leaf.not_valid_after_utc, chained=chained, problem=problem)
