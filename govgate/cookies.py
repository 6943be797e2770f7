"""The gate's own cookies: their names, the ``Set-Cookie`` values that set and clear them, and reading them back.

Four cookies, set only by the gate and never passed to the portal:

- ``govgate-session``: the staff session id (Art. 30), after password and TOTP;
- ``govgate-pending``: the login half done, between the password and the TOTP step (5 minutes);
- ``govgate-csrf``: the random browser id the gate's CSRF tokens are bound to;
- ``govgate-device``: an enrolled device's token (Art. 19, Art. 30: allowlisted devices).

Over TLS each carries the ``__Host-`` prefix (Art. 29: only this origin, Secure, ``Path=/``, so a sibling host
cannot set or read it); plain-HTTP trial mode (``insecure: true``) uses the bare names, as ``__Host-``
cookies must be Secure. All are ``HttpOnly`` and ``SameSite=Lax``. Values are secrets: never log them.

Requests: ``parse_cookie_headers`` reads a request's cookies (split at every ``;``, as browsers write them and
portals read them); ``read_cookie`` finds one of them;
``is_gate_cookie`` says which cookies the portal must not see.
Responses: ``sets_gate_cookie`` says which of the portal's ``Set-Cookie`` headers would set one of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

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


def read_cookie(pairs: Iterable[tuple[str, str]], cookie: GateCookie, *, insecure: bool) -> str | None:
    """``cookie``'s value among a request's cookies (``parse_cookie_headers``' pairs, in order): the first of its
    name; None when absent or empty."""
    name = cookie_name(cookie, insecure=insecure)
    for key, value in pairs:
        if key == name:
            return value if value else None
    return None


def is_gate_cookie(name: str) -> bool:
    """A request cookie of the gate's (session id, device token, CSRF id, pending login): the portal never sees it."""
    return name.startswith(_REQUEST_PREFIXES)


def sets_gate_cookie(set_cookie_value: str) -> bool:
    """A ``Set-Cookie`` value that would set one of the gate's cookies: only the gate sets those (Art. 30)."""
    return set_cookie_value.split("=", 1)[0].strip().lower().startswith(_RESPONSE_PREFIXES)


def cookie_parts(values: Iterable[str]) -> list[str]:
    """The parts of a request's ``Cookie`` header values, in order: the text between semicolons, spaces and tabs
    around it removed, empty parts left out.

    This is how browsers write the header (RFC 6265 §4.2.1: ``name=value`` pairs joined by ``"; "``) and how most
    servers read it. A double quote means nothing here: RFC 6265 gives a ``Cookie`` header no quoting, and a browser
    sends a quote as a character of a value. A reader that honours quotes (mitmproxy's) can be made to read
    ``a="x; __Host-govgate-session=ID; b=1`` as one cookie ``a`` while the portal reads three, the gate's session
    among them: the gate would neither see nor strip it."""
    parts: list[str] = []
    for value in values:
        for part in value.split(";"):
            part = part.strip(" \t")
            if part:
                parts.append(part)
    return parts


def cookie_part_name(part: str) -> str:
    """The name of a ``Cookie`` header part (``cookie_parts``): up to its first ``=``, or all of it."""
    return part.partition("=")[0].rstrip(" \t")


def parse_cookie_headers(values: Iterable[str]) -> list[tuple[str, str]]:
    """The (name, value) pairs of a request's ``Cookie`` header values, in order (``cookie_parts``): a part's name
    up to its first ``=`` and its value after it, spaces and tabs around both removed; a part without ``=`` is a
    name with an empty value."""
    pairs: list[tuple[str, str]] = []
    for part in cookie_parts(values):
        name, _, text = part.partition("=")
        pairs.append((name.rstrip(" \t"), text.lstrip(" \t")))
    return pairs
