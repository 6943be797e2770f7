"""The device allowlist (Art. 19, Art. 30): which allowlisted device a request comes from.

# Art. 19 (第十九条): staff functions only from allowed IP ranges or devices.
# Art. 30 (第三十条): bind accounts to terminals; electronic certificates are encouraged.

A device is recognised by its client certificate (SHA-256 of the DER encoding, as ``cert_sha256``
in the policy) or by its enrolment token (carried by the enrolled-device cookie). Tokens are
secrets: they are found through their SHA-256 and then confirmed with ``hmac.compare_digest``.
A browser enrolled at ``{prefix}/enroll`` (the registry keeps only its token's hash) is recognised only
by a cookie this gateway signed; a token written by hand in policy.yaml only as it was written
(``govgate.core.device_cookie``).
A device past its ``expires`` date (inclusive: it works through that day, on ``now``'s calendar)
never matches.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from datetime import datetime

from govgate.core.policy.model import Device, Policy


def cert_fingerprint(der: bytes) -> bytes:
    """SHA-256 of a DER certificate: the ``cert_sha256`` a device is listed with."""
    return hashlib.sha256(der).digest()


def device_expired(device: Device, now: datetime) -> bool:
    return device.expires is not None and now.date() > device.expires


class DeviceIndex:
    """Allowlisted devices by id, certificate fingerprint and (hashed) token; built once per policy."""

    __slots__ = ("_by_account", "_by_cert", "_by_id", "_by_token_hash")

    def __init__(self, devices: Iterable[Device]) -> None:
        self._by_id: dict[str, Device] = {}
        self._by_cert: dict[bytes, Device] = {}
        self._by_token_hash: dict[bytes, Device] = {}
        for device in devices:
            self._by_id.setdefault(device.id, device)
            if device.cert_sha256 is not None:
                self._by_cert.setdefault(bytes(device.cert_sha256), device)
            if device.token:
                self._by_token_hash.setdefault(_token_hash(device.token), device)
            elif device.token_sha256 is not None:  # an enrolled browser of the registry: only the hash is kept
                self._by_token_hash.setdefault(bytes(device.token_sha256), device)
        owned: dict[str, set[str]] = {}
        for device in self._by_id.values():
            owned.setdefault(device.account, set()).add(device.id)
        self._by_account = {account: frozenset(ids) for account, ids in owned.items()}

    def by_id(self, device_id: str) -> Device | None:
        return self._by_id.get(device_id)

    def by_cert_sha256(self, fingerprint: bytes) -> Device | None:
        return self._by_cert.get(bytes(fingerprint))

    def by_token(self, token: str, *, signed: bool = False) -> Device | None:
        """The device of a presented token: a hand-written one unsigned, an enrolled browser's signed."""
        digest = _token_hash(token)
        device = self._by_token_hash.get(digest)
        if device is None:
            return None
        if device.token is not None:
            if signed:
                return None
            return device if hmac.compare_digest(device.token.encode("utf-8"), token.encode("utf-8")) else None
        if signed and device.token_sha256 is not None and hmac.compare_digest(bytes(device.token_sha256), digest):
            return device
        return None

    def owned_by(self, account: str) -> frozenset[str]:
        return self._by_account.get(account, frozenset())

    def __len__(self) -> int:
        return len(self._by_id)


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def _index(policy_or_index: Policy | DeviceIndex) -> DeviceIndex:
    return policy_or_index if isinstance(policy_or_index, DeviceIndex) else DeviceIndex(policy_or_index.devices)


def _live(device: Device | None, now: datetime) -> Device | None:
    return None if device is None or device_expired(device, now) else device


def device_for_cert_sha256(policy_or_index: Policy | DeviceIndex, fingerprint: bytes, now: datetime) -> Device | None:
    """The allowlisted, unexpired device with this certificate fingerprint, or None."""
    return _live(_index(policy_or_index).by_cert_sha256(fingerprint), now)


def device_for_cert(policy_or_index: Policy | DeviceIndex, der: bytes, now: datetime) -> Device | None:
    """The allowlisted, unexpired device presenting this DER certificate, or None."""
    return device_for_cert_sha256(policy_or_index, cert_fingerprint(der), now)


def device_for_token(policy_or_index: Policy | DeviceIndex, token: str, now: datetime, *,
                     signed: bool = False) -> Device | None:
    """The allowlisted, unexpired device enrolled with this token (constant-time confirmation), or None.
    ``signed``: the token came in a cookie this gateway signed (an enrolled browser's)."""
    if not token:
        return None
    return _live(_index(policy_or_index).by_token(token, signed=signed), now)
