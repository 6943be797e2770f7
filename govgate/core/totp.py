"""TOTP (RFC 6238) codes for the second login factor, and the encryption of TOTP secrets at rest.

Art. 30 (第三十条): strong identity authentication (password + one-time code) for staff logins.

Authenticator-app compatible: SHA-1, 6 digits, 30-second steps, base32 secrets of 160 bits. A code
is accepted for the current step and one step either side (clock drift). This module only says
*which* step a code matches; accepting each code once only is the state store's job
(``Store.use_totp_step``), called with the step returned here.

Secrets are kept in the accounts file encrypted with AES-256-GCM under the gateway key's
``Purpose.TOTP_SECRET`` key, with the account name as associated data: a blob copied to another
account, or edited, does not decrypt. Blob format: ``v1:`` + base64url(12-byte nonce ‖ ciphertext ‖ tag).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import re
from datetime import datetime

import pyotp
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from govgate.core.keys import GatewayKeys, Purpose
from govgate.errors import AccountError

STEP_SECONDS = 30
DIGITS = 6
TOLERANCE_STEPS = 1  # codes of the previous and next step are accepted too
SECRET_CHARS = 32  # base32 characters: 160 bits, RFC 4226's recommended length

_BLOB_PREFIX = "v1:"
_NONCE_BYTES = 12
_AAD_LABEL = b"govgate/v1/totp-secret\x00"
_CODE = re.compile(rf"[0-9]{{{DIGITS}}}")
_SECRET = re.compile(r"[A-Z2-7]{16,128}")


def new_totp_secret() -> str:
    """A fresh random base32 secret of 160 bits."""
    return pyotp.random_base32(length=SECRET_CHARS)


def is_valid_secret(secret: str) -> bool:
    return _SECRET.fullmatch(secret) is not None


def provisioning_uri(secret: str, account: str, issuer: str = "GovGate") -> str:
    """The ``otpauth://totp/…`` URI an authenticator app scans (shown once, at add/reset time)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=account, issuer_name=issuer
    )


def time_step(now: datetime) -> int:
    """The RFC 6238 time step (counter) that ``now`` falls in. ``now`` must be aware."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    return int(now.timestamp()) // STEP_SECONDS


def code_for_step(secret: str, step: int) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).generate_otp(step)


def normalise_code(code: str) -> str | None:
    """The code as typed, with spaces removed (``123 456``); None unless it is exactly 6 ASCII digits."""
    cleaned = code.replace(" ", "").replace("\u3000", "").strip()
    return cleaned if _CODE.fullmatch(cleaned) else None


def matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step within ±1 of ``now`` whose code equals ``code``; None if none does, or the code
    (or secret) is malformed.

    All three candidate codes are computed and compared with ``hmac.compare_digest`` whatever the
    outcome, so the answer's timing does not depend on which step (if any) matched. If codes of two
    steps happen to be equal, the latest step is returned (it is the one still usable once only).
    """
    typed = normalise_code(code)
    if typed is None or not is_valid_secret(secret):
        return None
    current = time_step(now)
    found: int | None = None
    for step in range(max(0, current - TOLERANCE_STEPS), current + TOLERANCE_STEPS + 1):
        if hmac.compare_digest(code_for_step(secret, step).encode(), typed.encode()):
            found = step
    return found


def _aead(keys: GatewayKeys) -> AESGCM:
    return AESGCM(keys.derive(Purpose.TOTP_SECRET))


def _aad(account: str) -> bytes:
    return _AAD_LABEL + account.encode("utf-8")


def encrypt_secret(keys: GatewayKeys, account: str, secret: str) -> str:
    """Encrypt ``secret`` for storage in ``account``'s entry of the accounts file."""
    if not is_valid_secret(secret):
        raise AccountError("a TOTP secret must be base32 (A-Z, 2-7), 16 to 128 characters")
    nonce = os.urandom(_NONCE_BYTES)
    sealed = _aead(keys).encrypt(nonce, secret.encode("ascii"), _aad(account))
    return _BLOB_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii").rstrip("=")


def is_secret_blob(blob: str) -> bool:
    """True if ``blob`` has the shape ``encrypt_secret`` produces (for the accounts-file parser)."""
    return _decode_blob(blob) is not None


def _decode_blob(blob: str) -> bytes | None:
    if not blob.startswith(_BLOB_PREFIX):
        return None
    body = blob[len(_BLOB_PREFIX):]
    if not re.fullmatch(r"[A-Za-z0-9_-]+", body):
        return None
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) < _NONCE_BYTES + 16 + 16:  # nonce, at least 16 secret bytes, tag
        return None
    return raw


def decrypt_secret(keys: GatewayKeys, account: str, blob: str) -> str:
    """The secret ``encrypt_secret`` sealed for ``account``.

    Raises ``AccountError`` (without any key or secret material in the message) when the blob is
    malformed, was made for another account, was edited, or was made under another gateway key.
    """
    raw = _decode_blob(blob)
    if raw is None:
        raise AccountError(f"account {account!r}: the stored TOTP secret is malformed")
    try:
        plain = _aead(keys).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _aad(account))
    except InvalidTag:
        raise AccountError(
            f"account {account!r}: the stored TOTP secret does not decrypt "
            "(edited, copied from another account, or made under another gateway key)"
        ) from None
    secret = plain.decode("ascii", errors="replace")
    if not is_valid_secret(secret):
        raise AccountError(f"account {account!r}: the stored TOTP secret is malformed")
    return secret
