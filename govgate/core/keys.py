"""The gateway key (``gateway.key_file``) and the purpose-bound keys derived from it.

One 256-bit master key, kept hex-encoded in a file of mode 0600 that is created on first use.
Every use gets its own key through HKDF-SHA256 with a purpose label, so a MAC made for one
purpose (say, a leave-page ``sig``) can never be replayed as another (say, a session cookie).
The master key and derived keys are never logged or printed.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from govgate.errors import KeyFileError

KEY_BYTES = 32


class Purpose(StrEnum):
    """What a derived key is for. The value is the HKDF ``info`` label; never change one."""

    COOKIE = "govgate/v1/cookie"  # signs session-independent cookies (pre-MFA state, device cookie)
    CSRF = "govgate/v1/csrf"  # CSRF tokens bound to a browser
    LEAVE_LINK = "govgate/v1/leave-link"  # Art. 15 warning-page `sig`
    TOTP_SECRET = "govgate/v1/totp-secret"  # noqa: S105 (a label, not a secret) — AES-GCM key for TOTP secrets in the accounts file
    AUDIT_MAC = "govgate/v1/audit-mac"  # Art. 20: MAC of each audit record
    AUDIT_SIGNING = "govgate/v1/audit-signing"  # Art. 20: Ed25519 seed signing the audit head anchor and daily seals
    IDENTIFIER_HASH = "govgate/v1/identifier-hash"  # keyed hash of identifiers put in logs


@dataclass(frozen=True, slots=True)
class GatewayKeys:
    """The master key and a cache of derived keys. ``repr`` never shows key material."""

    _master: bytes = field(repr=False)
    _derived: dict[Purpose, bytes] = field(default_factory=dict, repr=False, compare=False)

    def derive(self, purpose: Purpose) -> bytes:
        key = self._derived.get(purpose)
        if key is None:
            key = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=purpose.value.encode()).derive(
                self._master
            )
            self._derived[purpose] = key
        return key

    def mac(self, purpose: Purpose, message: bytes) -> bytes:
        """HMAC-SHA256 of ``message`` under the key for ``purpose``."""
        return hmac.new(self.derive(purpose), message, hashlib.sha256).digest()

    def verify_mac(self, purpose: Purpose, message: bytes, tag: bytes) -> bool:
        """Constant-time check of a tag made by ``mac``."""
        return hmac.compare_digest(self.mac(purpose, message), tag)

    @property
    def fingerprint(self) -> str:
        """A short, non-secret identifier of the key (for `health` and audit records)."""
        return hashlib.sha256(b"govgate/v1/fingerprint" + self._master).hexdigest()[:16]

    @classmethod
    def from_bytes(cls, master: bytes) -> GatewayKeys:
        if len(master) != KEY_BYTES:
            raise KeyFileError(f"the gateway key must be {KEY_BYTES} bytes, got {len(master)}")
        return cls(master)


def load_key_file(path: Path, *, create: bool = True) -> GatewayKeys:
    """Read the key file, creating it (mode 0600, never overwriting) if absent and ``create`` is set."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        if not create:
            raise KeyFileError(f"{path}: key file does not exist") from None
        return _create_key_file(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{path}: cannot read key file: {exc}") from None
    try:
        master = bytes.fromhex(text)
    except ValueError:
        raise KeyFileError(f"{path}: key file must hold {KEY_BYTES} bytes as hex") from None
    if len(master) != KEY_BYTES:
        raise KeyFileError(f"{path}: key file must hold {KEY_BYTES} bytes as hex, found {len(master)} bytes")
    return GatewayKeys(master)


def _create_key_file(path: Path) -> GatewayKeys:
    master = secrets.token_bytes(KEY_BYTES)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process created it between our read and our create: use theirs.
        return load_key_file(path, create=False)
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot create key file: {exc}") from None
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(master.hex() + "\n")
        f.flush()
        os.fsync(f.fileno())
    return GatewayKeys(master)
