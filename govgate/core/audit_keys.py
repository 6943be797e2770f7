"""Who can check the audit log, and who can write it (Art. 20): the signing key and the key to hand over.

Art. 20 (第二十条): the integrity of access logs is assured. An auditor must be able to check that
integrity without being given the gateway key (``gateway.key_file``), which also signs cookies and
leave links and decrypts every TOTP secret.

- The gateway signs with an Ed25519 key whose 32-byte seed is derived from the gateway key with HKDF
  under its own purpose label (``Purpose.AUDIT_SIGNING``): no new secret file, and no other derived
  key (cookies, CSRF, leave links, TOTP secrets, the record MAC) can be computed from it or from its
  public half.
- It signs the head anchor (after every append) and each daily seal. Every record names the hash of
  the line before it (``prev``), so one signature vouches for every line before it: the seal for its
  day and every day before, the head anchor for the whole log up to the newest record.
- ``AuditVerifyKey`` is the public half, exported by ``govgate audit export-key`` as a small JSON
  document (``export_document``/``parse_document``). It verifies signatures and hashes; it cannot
  compute a record MAC or a signature, so it cannot produce records that verify.

Pure: no files, no clock (the caller passes ``created``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from govgate.core.keys import GatewayKeys, Purpose
from govgate.errors import KeyFileError

KEY_FORMAT = "govgate-audit-verify-key"
KEY_FORMAT_VERSION = 1
# Every signed message starts with this label, so an audit signature is never valid for anything else.
SIGNED_CONTEXT = b"govgate/v1/audit-signature\n"


def key_id(public: Ed25519PublicKey) -> str:
    """A short, non-secret name of a signing key (the first 16 hex digits of SHA-256 of its raw public key)."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class AuditSigner:
    """The gateway's audit signing key (private), derived from the gateway key."""

    _private: Ed25519PrivateKey = field(repr=False)
    public: Ed25519PublicKey = field(repr=False)
    key_id: str

    @classmethod
    def from_keys(cls, keys: GatewayKeys) -> AuditSigner:
        private = Ed25519PrivateKey.from_private_bytes(keys.derive(Purpose.AUDIT_SIGNING))
        public = private.public_key()
        return cls(private, public, key_id(public))

    def sign(self, message: bytes) -> str:
        """The signature of ``message`` (hex)."""
        return self._private.sign(SIGNED_CONTEXT + message).hex()

    def verify_key(self) -> AuditVerifyKey:
        return AuditVerifyKey(self.public, self.key_id)


@dataclass(frozen=True, slots=True)
class AuditVerifyKey:
    """The public key that checks the log's signatures (safe to hand to an auditor)."""

    public: Ed25519PublicKey = field(repr=False)
    key_id: str
    timezone: str | None = None  # the gateway's timezone when exported, for times given without an offset

    def verify(self, message: bytes, signature: object) -> bool:
        """Whether ``signature`` (hex) is the signing key's over ``message``; never raises."""
        if not isinstance(signature, str) or len(signature) != 128:
            return False
        try:
            self.public.verify(bytes.fromhex(signature), SIGNED_CONTEXT + message)
        except (ValueError, InvalidSignature):
            return False
        return True


type AuditKey = GatewayKeys | AuditVerifyKey  # the gateway key checks MACs and signatures; the exported one signatures


def verify_key_of(key: AuditKey) -> AuditVerifyKey:
    """The public key that checks signatures made under ``key``."""
    if isinstance(key, AuditVerifyKey):
        return key
    return AuditSigner.from_keys(key).verify_key()


def export_document(keys: GatewayKeys, *, timezone: str, created: datetime) -> bytes:
    """What ``govgate audit export-key`` writes: the public key and what verify needs, nothing secret."""
    signer = AuditSigner.from_keys(keys)
    pem = signer.public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    doc = {
        "format": KEY_FORMAT,
        "version": KEY_FORMAT_VERSION,
        "algorithm": "ed25519",
        "key_id": signer.key_id,
        "public_key": pem.decode("ascii"),
        "timezone": timezone,
        "created": created.isoformat(timespec="seconds"),
        "note": "GovGate audit verification key (public): checks the audit log's signatures with "
                "`govgate audit verify --key-file THIS --dir DIR`; it cannot sign cookies or links, decrypt TOTP "
                "secrets, or write records that verify.",
    }
    return (json.dumps(doc, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def parse_document(data: bytes, source: str) -> AuditVerifyKey:
    """The key in an exported document; ``KeyFileError`` naming ``source`` when it is not one."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):
        raise KeyFileError(f"{source}: not an exported audit key (expected JSON)") from None
    if not isinstance(doc, dict) or doc.get("format") != KEY_FORMAT:
        raise KeyFileError(f"{source}: not an exported audit key (format is not {KEY_FORMAT!r})")
    if doc.get("version") != KEY_FORMAT_VERSION or doc.get("algorithm") != "ed25519":
        raise KeyFileError(f"{source}: unsupported audit key version or algorithm")
    pem = doc.get("public_key")
    try:
        public = serialization.load_pem_public_key(pem.encode("ascii") if isinstance(pem, str) else b"")
    except (ValueError, UnicodeEncodeError, TypeError):
        raise KeyFileError(f"{source}: the public key is not a PEM Ed25519 public key") from None
    if not isinstance(public, Ed25519PublicKey):
        raise KeyFileError(f"{source}: the public key is not an Ed25519 key")
    kid = key_id(public)
    if doc.get("key_id") not in (None, kid):
        raise KeyFileError(f"{source}: key_id {doc.get('key_id')!r} does not match the public key ({kid})")
    tz = doc.get("timezone")
    return AuditVerifyKey(public, kid, tz if isinstance(tz, str) else None)
