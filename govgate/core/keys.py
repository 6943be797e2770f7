"""The gateway key (``gateway.key_file``) and the purpose-bound keys derived from it.

One 256-bit master key, kept hex-encoded in a file of mode 0600 that is created on first use (the
file itself is read and written by ``govgate.files``; this module parses and makes its text).
Every use gets its own key through HKDF-SHA256 with a purpose label, so a MAC made for one
purpose (say, a leave-page ``sig``) can never be replayed as another (say, a session cookie).
The master key and derived keys are never logged or printed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from enum import StrEnum

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from govgate.errors import KeyFileError

KEY_BYTES = 32


class Purpose(StrEnum):
    """What a derived key is for. The value is the HKDF ``info`` label; never change one."""

    # Unused: the session and pre-MFA cookies carry random ids looked up in the store, the CSRF cookie a
    # random browser id (the CSRF purpose MACs the form token). Kept so that its label is never given to
    # another use.
    COOKIE = "govgate/v1/cookie"
    DEVICE_COOKIE = "govgate/v1/device-cookie"  # Art. 30: the enrolled-browser cookie's signature
    CSRF = "govgate/v1/csrf"  # CSRF tokens bound to a browser
    LEAVE_LINK = "govgate/v1/leave-link"  # Art. 15 warning-page `sig`
    LEAVE_FORM = "govgate/v1/leave-form"  # Art. 15 warning page for a form's target: the signed target's `sig`
    TOTP_SECRET = "govgate/v1/totp-secret"  # noqa: S105 (a label, not a secret) — AES-GCM key for TOTP secrets in the accounts file
    AUDIT_MAC = "govgate/v1/audit-mac"  # Art. 20: MAC of each audit record
    AUDIT_SIGNING = "govgate/v1/audit-signing"  # Art. 20: Ed25519 seed signing the audit head anchor and daily seals
    IDENTIFIER_HASH = "govgate/v1/identifier-hash"  # keyed hash of identifiers put in logs


@dataclass(frozen=True, slots=True)
class GatewayKeys:
    """The master key and a cache of derived keys. ``repr`` never shows key material."""

    _master: bytes = field(repr=False)
    _derived: dict[Purpose, bytes] = field(default_factory=dict, repr=False, compare=False)

    def __hash__(self) -> int:
        # The same as the dataclass's (equal keys are equal masters) without building a tuple each time. (The leave
        # links' memo is keyed by the derived key's bytes instead: ``leave_link._link_key``.)
        return hash(self._master)

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


def parse_key_text(text: str, source: str) -> GatewayKeys:
    """The keys held in a key file's text: the master key as hex, white space around it ignored. ``source``
    names the file in a ``KeyFileError``."""
    try:
        master = bytes.fromhex(text.strip())
    except ValueError:
        raise KeyFileError(f"{source}: key file must hold {KEY_BYTES} bytes as hex") from None
    if len(master) != KEY_BYTES:
        raise KeyFileError(f"{source}: key file must hold {KEY_BYTES} bytes as hex, found {len(master)} bytes")
    return GatewayKeys(master)


def new_key_text() -> str:
    """The text of a new key file: a fresh random master key, as hex."""
    return secrets.token_bytes(KEY_BYTES).hex() + "\n"
