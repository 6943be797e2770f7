"""Plain parsers of single policy values from their text, without line numbers or a reader: a host
as the policy may name it, ``HOST:PORT``, and what is wrong (an empty string: nothing) with an
upstream URL, a Redis URL, a syslog URL or a path glob. The section checks put their answers into
messages with the value's place.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from govgate.core.hosts import parse_host
from govgate.core.policy.model import HostPort
from govgate.core.sentinel_url import is_sentinel_url, parse_sentinel_url

_ASCII_HOST = re.compile(r"^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$")
_GLOB_FORBIDDEN = set("?#\\ \t\r\n")


def policy_host(text: str) -> str | None:
    """A host as the policy may name it, in the canonical form of ``govgate.core.hosts``; None if it is not one.

    Beyond what ``parse_host`` reads, a name must be letters, digits, ``-`` and ``_`` in non-empty
    dot-separated labels once in ASCII (no ``*``, quotes or other characters a URL parser lets by).
    """
    host = parse_host(text)
    if host is None or (not host.startswith("[") and not _ASCII_HOST.fullmatch(host)):
        return None
    return host


def parse_hostport(text: str) -> HostPort | str:
    """``HOST:PORT`` or ``[v6]:PORT`` (port 0 picks a free port); a string saying what is wrong otherwise."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or not text[end + 1:].startswith(":"):
            return "expected [IPv6]:PORT"
        host, port_text = text[1:end], text[end + 2:]
        try:
            host = ipaddress.IPv6Address(host).compressed
        except ValueError:
            return f"{host!r} is not an IPv6 address"
    else:
        if text.count(":") != 1:
            return "an IPv6 address needs brackets, like [::1]:8443" if text.count(":") > 1 else "no port"
        host, port_text = text.split(":", 1)
        if not host:
            return "no host; use 0.0.0.0 for every interface"
        if not re.fullmatch(r"[A-Za-z0-9.-]+", host):
            return f"{host!r} is not a host name or IPv4 address"
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        return f"port {port_text!r} is not a number from 0 to 65535"
    return HostPort(host.lower(), int(port_text))


def upstream_problem(text: str) -> str:
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        return str(exc)
    if parts.scheme.lower() not in ("http", "https"):
        return f"scheme {parts.scheme!r}" if parts.scheme else "no scheme"
    if not parts.hostname:
        return "no host"
    if parts.username is not None or parts.password is not None:
        return "credentials in the URL"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return "a path, query or fragment"
    if port == 0:
        return "port 0"
    return ""


def redis_url_problem(url: str) -> str:
    if is_sentinel_url(url):
        try:
            parse_sentinel_url(url)
        except ValueError as exc:
            return f"{url!r} ({exc})"
        return ""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        return f"{url!r} ({exc})"
    scheme = parts.scheme.lower()
    if scheme == "unix":
        return "" if parts.path else "unix:// without a socket path"
    if scheme not in ("redis", "rediss", "redis+sentinel"):
        return f"the scheme {parts.scheme!r}" if parts.scheme else f"{url!r}, which has no scheme"
    if not parts.hostname:
        return f"{url!r}, which has no host"
    return ""


def syslog_problem(url: str) -> str:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return str(exc)
    if parts.scheme not in ("udp", "tcp"):
        return f"scheme {parts.scheme!r}" if parts.scheme else "no scheme"
    if not parts.hostname:
        return "no host"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return "a path"
    if port == 0:
        return "port 0"
    return ""


def glob_problem(text: str) -> str:
    if not text.startswith("/"):
        return "it does not start with '/'"
    if any(c in _GLOB_FORBIDDEN or ord(c) < 0x20 for c in text):
        return "spaces, '?', '#' or '\\' are not part of a path"
    for segment in text.split("/"):
        if "**" in segment and segment != "**":
            return "'**' must be a whole segment, like /oa/**"
    return ""
