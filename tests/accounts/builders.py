"""Shared builders for the accounts tests: real hashes, real encrypted secrets, temp files."""

from __future__ import annotations

from datetime import UTC, date, datetime

from govgate.core import totp
from govgate.core.accounts import Account
from govgate.core.keys import GatewayKeys
from govgate.core.passwords import hash_password

KEYS = GatewayKeys.from_bytes(bytes(range(32)))
CREATED = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)
PASSWORD = "Correct-horse-battery-9"
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
_HASH = hash_password(PASSWORD)


def make_account(name: str, *, groups: tuple[str, ...] = ("staff",), expires: date | None = None,
                 disabled: bool = False) -> Account:
    return Account(name=name, password_hash=_HASH, totp_secret=totp.encrypt_secret(KEYS, name, SECRET),
                   groups=groups, expires=expires, disabled=disabled, created=CREATED)
