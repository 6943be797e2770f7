"""CSRF tokens for the gate's forms: a per-browser random cookie, and a MAC of it per form.

The token is ``base64url(HMAC(key_csrf, browser_id || form))``: a page from another site can
neither read the cookie nor compute the MAC, and a token for one form is not valid for another.
"""

from __future__ import annotations

import base64
import hmac
import re
import secrets

from govgate.core.keys import GatewayKeys, Purpose

# A browser id as ``new_browser_id`` makes them (43 characters of base64url), with room either side. Anything else
# in the cookie (too short or long, other characters, bytes that are not UTF-8) is no browser id: a new one is set.
_BROWSER_ID = re.compile(r"[A-Za-z0-9_-]{20,64}")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,128}")


def new_browser_id() -> str:
    return secrets.token_urlsafe(32)


def is_browser_id(value: str) -> bool:
    """Whether ``value`` (the CSRF cookie) can be a browser id the gate gave out."""
    return _BROWSER_ID.fullmatch(value) is not None


def csrf_token(keys: GatewayKeys, browser_id: str, form: str) -> str:
    tag = keys.mac(Purpose.CSRF, f"{browser_id}\x00{form}".encode())
    return base64.urlsafe_b64encode(tag).rstrip(b"=").decode()


def csrf_valid(keys: GatewayKeys, browser_id: str | None, form: str, token: str | None) -> bool:
    """Whether ``token`` is the form's token for this browser (compared in constant time). A browser id or a token
    that is not of their form is refused before any MAC is made: never an error on what a client sent."""
    if browser_id is None or not is_browser_id(browser_id) or token is None or _TOKEN.fullmatch(token) is None:
        return False
    return hmac.compare_digest(csrf_token(keys, browser_id, form).encode(), token.encode())
