"""The enrolled-browser device cookie: ``<token>.<signature>`` (Art. 30, account–device binding).

The token is 256 random bits (``secrets.token_urlsafe(32)``); the device registry keeps only its SHA-256.
The signature, ``base64url(HMAC(device-cookie key, token))``, binds the cookie to this gateway's key: a
cookie made up elsewhere, or copied from another deployment, is refused before any registry lookup, and
rotating ``gateway.key_file`` retires every enrolled cookie at once. Tokens written by hand in policy.yaml
(``devices[].token``, base64url characters only, so never a ``.``) are presented as they are.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass

from govgate.core.keys import GatewayKeys, Purpose

TOKEN_BYTES = 32
MAX_COOKIE = 200


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def _signature(keys: GatewayKeys, token: str) -> str:
    tag = keys.mac(Purpose.DEVICE_COOKIE, token.encode("utf-8", "surrogatepass"))
    return base64.urlsafe_b64encode(tag).rstrip(b"=").decode()


def cookie_value(keys: GatewayKeys, token: str) -> str:
    return f"{token}.{_signature(keys, token)}"


@dataclass(frozen=True, slots=True)
class PresentedToken:
    token: str
    signed: bool  # True: an enrolled browser's cookie, signed by this gateway; False: a hand-written token


def token_of(keys: GatewayKeys, value: str) -> PresentedToken | None:
    """The token a device cookie carries: a signed cookie's token when its signature holds, a hand-written
    token as it is; None for a signed cookie whose signature does not hold, or anything overlong. Enrolled
    browsers are recognised only by signed cookies, hand-written tokens only unsigned
    (``govgate.core.devices.DeviceIndex.by_token``)."""
    if not value or len(value) > MAX_COOKIE:
        return None
    token, dot, signature = value.partition(".")
    if not dot:
        return PresentedToken(value, signed=False)
    expected = _signature(keys, token)
    if not token or not secrets.compare_digest(expected.encode(), signature.encode("utf-8", "surrogatepass")):
        return None
    return PresentedToken(token, signed=True)
