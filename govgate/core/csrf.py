"""CSRF tokens for the gate's forms: a per-browser random cookie, and a MAC of it per form.

The token is ``base64url(HMAC(key_csrf, browser_id || form))``: a page from another site can
neither read the cookie nor compute the MAC, and a token for one form is not valid for another.
"""

from __future__ import annotations

import base64
import hmac
import secrets

from govgate.core.keys import GatewayKeys, Purpose


def new_browser_id() -> str:
    return secrets.token_urlsafe(32)


def csrf_token(keys: GatewayKeys, browser_id: str, form: str) -> str:
    tag = keys.mac(Purpose.CSRF, f"{browser_id}\x00{form}".encode())
    return base64.urlsafe_b64encode(tag).rstrip(b"=").decode()


def csrf_valid(keys: GatewayKeys, browser_id: str | None, form: str, token: str | None) -> bool:
    if not browser_id or not token or len(token) > 128 or len(browser_id) > 128:
        return False
    return hmac.compare_digest(csrf_token(keys, browser_id, form).encode(), token.encode())
