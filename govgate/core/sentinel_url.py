"""Redis Sentinel URLs (``state.redis: redis+sentinel://host1:26379,host2:26379/master-name[/db]``), parsed.

One parser for the policy validator (``govgate.core.policy.parsers``) and the store (``govgate.store.redis``),
so that ``govgate check`` accepts exactly the URLs the store can use: several sentinels separated by commas
(which ``urllib`` cannot read as one host and port), IPv6 in brackets, the master name and database as the path,
``rediss+sentinel`` for TLS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote

SENTINEL_PORT: Final = 26379


@dataclass(frozen=True, slots=True)
class SentinelURL:
    """A parsed ``redis+sentinel://`` URL."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int
    username: str | None
    password: str | None
    ssl: bool


SENTINEL_SCHEMES: Final = ("redis+sentinel", "rediss+sentinel")


def is_sentinel_url(url: str) -> bool:
    return url.partition("://")[0].lower() in SENTINEL_SCHEMES


def parse_sentinel_url(url: str) -> SentinelURL:
    """``redis+sentinel://[user:pw@]h1:26379,[::1]:26380/mymaster/0`` → its parts. ``ValueError`` if malformed."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in SENTINEL_SCHEMES:
        raise ValueError(f"not a Redis Sentinel URL (expected {SENTINEL_SCHEMES[0]}://…): {scheme}://")
    if "?" in rest or "#" in rest:
        raise ValueError("Redis Sentinel URL: query strings and fragments are not supported")
    netloc, _, path = rest.partition("/")
    username: str | None = None
    password: str | None = None
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        user, has_password, pw = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(pw) if has_password else None
    sentinels = tuple(_parse_host_port(part) for part in netloc.split(","))
    parts = [p for p in path.split("/") if p]
    if not parts:
        raise ValueError("Redis Sentinel URL needs the master name as its path: …/mymaster[/db]")
    if len(parts) > 2:
        raise ValueError(f"Redis Sentinel URL path must be /master-name[/db], got /{path}")
    master = unquote(parts[0])
    db = 0
    if len(parts) == 2:
        if not parts[1].isdigit():
            raise ValueError(f"Redis Sentinel URL: database must be a number, got {parts[1]!r}")
        db = int(parts[1])
    return SentinelURL(sentinels, master, db, username, password, scheme.lower() == "rediss+sentinel")


def _parse_host_port(text: str) -> tuple[str, int]:
    if not text:
        raise ValueError("Redis Sentinel URL: empty sentinel address")
    if text.startswith("["):
        host, bracket, tail = text[1:].partition("]")
        if not bracket or not host or (tail and not tail.startswith(":")):
            raise ValueError(f"Redis Sentinel URL: bad address {text!r}")
        port_text = tail[1:] if tail else ""
    else:
        host, _, port_text = text.partition(":")
        if not host or ":" in port_text:
            raise ValueError(f"Redis Sentinel URL: bad address {text!r} (write IPv6 as [addr]:port)")
    if not port_text:
        return host, SENTINEL_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"Redis Sentinel URL: bad port in {text!r}")
    return host, int(port_text)


