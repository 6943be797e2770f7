"""The files a policy names whose contents must be right before it is used: the TLS certificate, the
device CA and the GeoIP database.

The validator cannot look at them (the core reads no files): it records each as a ``NamedFile`` with
the line and key path a problem will point at, and the files layer (``govgate.files``) reads them.
This module says what each must hold, and judges the contents that can be judged from their bytes
alone (the PEM files); whether a GeoIP database opens is for the files layer, which opens it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path


class FileKind(StrEnum):
    TLS_CERT = "tls-cert"  # Art. 29: the gateway's private key and certificate chain
    CLIENT_CA = "client-ca"  # Art. 30: the CA that device certificates chain to
    GEOIP_DATABASE = "geoip-database"  # Art. 19: the country of every address


_EXPECTED = {
    FileKind.TLS_CERT: "a PEM file with the private key and certificate",
    FileKind.CLIENT_CA: "a PEM file with CA certificates",
    FileKind.GEOIP_DATABASE: "a MaxMind DB (.mmdb) file",
}


@dataclass(frozen=True, slots=True)
class NamedFile:
    """A file the policy names at ``line`` / ``key_path``, to be read and checked before the policy is used."""

    path: Path
    kind: FileKind
    line: int
    key_path: str

    @property
    def expected(self) -> str:
        """What the file must be, as a message says it: ``a MaxMind DB (.mmdb) file``."""
        return _EXPECTED[self.kind]


def content_problem(named: NamedFile, data: bytes) -> str | None:
    """What is wrong with ``data``, the contents of ``named``, as far as bytes tell; None if nothing is."""
    if named.kind is FileKind.TLS_CERT and (b"PRIVATE KEY-----" not in data or b"CERTIFICATE-----" not in data):
        lacks = "the private key" if b"PRIVATE KEY-----" not in data else "a certificate"
        return f"expected one PEM file holding the private key and the certificate chain; {named.path} lacks {lacks}"
    if named.kind is FileKind.CLIENT_CA and b"CERTIFICATE-----" not in data:
        return f"expected PEM CA certificate(s); {named.path} has none"
    return None
