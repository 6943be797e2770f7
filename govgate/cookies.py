"""The gate's own cookies: their names, the ``Set-Cookie`` values that set and clear them, and reading them back.

Four cookies, set only by the gate and never passed to the portal:

- ``govgate-session``: the staff session id (Art. 30), after password and TOTP;
- ``govgate-pending``: the login half done, between the password and the TOTP step (5 minutes);
- ``govgate-csrf``: the random browser id the gate's CSRF tokens are bound to;
- ``govgate-device``: an enrolled device's token (Art. 19, Art. 30: allowlisted devices).

Over TLS each carries the ``__Host-`` prefix (Art. 29: only this origin, Secure, ``Path=/``, so a sibling host
cannot set or read it); plain-HTTP trial mode (``insecure: true``) uses the bare names, as ``__Host-``
cookies must be Secure. All are ``HttpOnly`` and ``SameSite=Lax``. Values are secrets: never log them.

Requests: ``parse_cookie_headers`` reads a request's cookies (mitmproxy's parser); ``read_cookie`` finds one of them;
``is_gate_cookie`` says which cookies the portal must not see.
Responses: ``sets_gate_cookie`` says which of the portal's ``Set-Cookie`` headers would set one of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum

from mitmproxy.net.http import cookies as mitmproxy_cookies

HOST_PREFIX = "__Host-"


class GateCookie(StrEnum):
    """A cookie of the gate's, by its bare name."""

    SESSION = "govgate-session"
    PENDING = "govgate-pending"
    CSRF = "govgate-csrf"
    DEVICE = "govgate-device"


BASE = "govgate-"  # every gate cookie's bare name starts so
# A request's cookies the portal never gets: the bare names and the __Host- ones, as browsers send them.
_REQUEST_PREFIXES = (BASE, HOST_PREFIX + BASE)
# A portal's Set-Cookie the client never gets: the names with or without the prefixes browsers give meaning to,
# in any case (a browser matches the prefixes case-insensitively).
_RESPONSE_PREFIXES = (BASE, HOST_PREFIX.lower() + BASE, "__secure-" + BASE)


def cookie_name(cookie: GateCookie, *, insecure: bool) -> str:
    """The name on the wire: ``__Host-`` over TLS, the bare name over plain HTTP."""
    return cookie.value if insecure else HOST_PREFIX + cookie.value


def set_cookie(cookie: GateCookie, value: str, *, insecure: bool, max_age: int | None = None) -> str:
    """The ``Set-Cookie`` value that sets ``cookie`` to ``value`` (for the browser session unless ``max_age``)."""
    parts = [f"{cookie_name(cookie, insecure=insecure)}={value}", "Path=/", "HttpOnly", "SameSite=Lax"]
    if not insecure:
        parts.append("Secure")
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    return "; ".join(parts)


def clear_cookie(cookie: GateCookie, *, insecure: bool) -> str:
    """The ``Set-Cookie`` value that removes ``cookie`` from the browser."""
    return set_cookie(cookie, "", insecure=insecure, max_age=0)


def read_cookie(cookies: Mapping[str, str], cookie: GateCookie, *, insecure: bool) -> str | None:
    """``cookie``'s value among a request's ``cookies`` (name → value); None when absent or empty."""
    value = cookies.get(cookie_name(cookie, insecure=insecure))
    return value if value else None


def is_gate_cookie(name: str) -> bool:
    """A request cookie of the gate's (session id, device token, CSRF id, pending login): the portal never sees it."""
    return name.startswith(_REQUEST_PREFIXES)


def sets_gate_cookie(set_cookie_value: str) -> bool:
    """A ``Set-Cookie`` value that would set one of the gate's cookies: only the gate sets those (Art. 30)."""
    return set_cookie_value.split("=", 1)[0].strip().lower().startswith(_RESPONSE_PREFIXES)


def parse_cookie_headers(values: Iterable[str]) -> list[tuple[str, str]]:
    """The (name, value) pairs of a request's ``Cookie`` header values, in order: what mitmproxy's parser reads
    (``mitmproxy.net.http.cookies.parse_cookie_headers``, as its ``Request.cookies`` view reads them).

    A value without a double quote is read with ``str.split`` instead of that parser's character-by-character
    loop, with the same result: pairs split at ``;``, a name up to the first ``=`` with leading whitespace removed,
    the value the rest as it is, and a part with neither name nor value left out. A quote may start a quoted value,
    which only the parser reads."""
    pairs: list[tuple[str, str]] = []
    for value in values:
        if '"' in value:
            parsed: list[list[str]] = mitmproxy_cookies.parse_cookie_header(value)  # type: ignore[no-untyped-call]
            pairs.extend((name, text) for name, text in parsed)
            continue
        for part in value.split(";"):
            name, _, text = part.partition("=")
            name = name.lstrip()
            if name or text:
                pairs.append((name, text))
    return pairs
