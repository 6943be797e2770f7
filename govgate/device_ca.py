"""The gateway's device CA on disk: ``device-ca/ca.pem`` and ``device-ca/ca.key`` beside the devices file.

Art. 30 (第三十条): electronic certificates as device identity. ``govgate device ca init`` makes the CA once
(the key mode 0600 in a folder of mode 0700, created exclusively: never over an existing CA); ``govgate
device issue`` signs client certificates with it; the gateway reads only the certificate — to name the CA in
its TLS CertificateRequest and to verify presented certificates (``govgate.core.device_certs``). Once the CA
exists, "the gateway's own device CA is in use": a client certificate identifies a device only if it chains
to it (or to ``gateway.tls.client_ca``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from govgate.core import device_certs
from govgate.core.policy.model import Policy
from govgate.errors import DeviceError
from govgate.regular_file import read_regular


@dataclass(frozen=True, slots=True)
class CaFiles:
    folder: Path
    cert: Path
    key: Path


def ca_files(policy: Policy) -> CaFiles:
    folder = policy.devices_file.parent / "device-ca"
    return CaFiles(folder, folder / "ca.pem", folder / "ca.key")


def load_ca_cert(policy: Policy) -> x509.Certificate | None:
    """The device CA's certificate, or None while ``govgate device ca init`` has not been run."""
    path = ca_files(policy).cert
    try:
        data = read_regular(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DeviceError(f"{path}: cannot read the device CA certificate: {exc.strerror}") from None
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise DeviceError(f"{path}: not a PEM certificate") from None


def load_ca(policy: Policy) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """The CA key and certificate, to issue with."""
    files = ca_files(policy)
    cert = load_ca_cert(policy)
    if cert is None:
        raise DeviceError("there is no device CA yet: run `govgate device ca init` first")
    try:
        key = serialization.load_pem_private_key(read_regular(files.key), password=None)
    except OSError as exc:
        raise DeviceError(f"{files.key}: cannot read the device CA key: {exc.strerror}") from None
    except ValueError:
        raise DeviceError(f"{files.key}: not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise DeviceError(f"{files.key}: expected an EC private key")
    return key, cert


def create_ca(policy: Policy, name: str, now: datetime) -> tuple[CaFiles, x509.Certificate]:
    """Make the CA; refuses (``DeviceError``) if any of its files exists already."""
    files = ca_files(policy)
    files.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if files.key.exists() or files.cert.exists():
        raise DeviceError(f"a device CA exists already in {files.folder}; it is never replaced (certificates it "
                          "issued would stop counting). Move it away first if you really mean to start over")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = device_certs.new_ca(key, name, now)
    _write_new(files.key, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()), 0o600)
    _write_new(files.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return files, cert


def write_new_file(path: Path, data: bytes, mode: int) -> None:
    """Write a file that must not exist yet (``DeviceError`` if it does), with ``mode`` from the start."""
    _write_new(path, data, mode)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise DeviceError(f"{path} exists already; it is never overwritten") from None
    except OSError as exc:
        raise DeviceError(f"{path}: cannot create: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
