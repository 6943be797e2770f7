"""Where the gate may send a browser: only a path on this site (``docs/pages.md``). ``safe_next`` after login;
``back_path`` for the warning page's "Back" link, from the Referer.

``next`` comes from the query string, so an attacker chooses it. A browser resolves it with the
WHATWG URL parser, which turns ``/\\evil``, ``/\\t/evil`` and ``//evil`` into another host; so we
resolve it the same way (ada-url) against a placeholder origin and accept it only if the origin is
unchanged. Anything else, and any path into the gate's own pages, becomes ``/``.
"""

from __future__ import annotations

import ada_url

from govgate.core.hosts import parse_host

_ORIGIN = "https://govgate.invalid"


def safe_next(raw: str | None, prefix: str) -> str:
    """Return a local path (with query) that is safe to put in ``Location``, or ``/``."""
    if not raw or len(raw) > 2048:
        return "/"
    # A relative reference must start with one "/" and contain nothing a browser strips or turns into
    # "/" (controls, spaces, backslashes): refuse rather than guess.
    if not raw.startswith("/") or raw.startswith("//"):
        return "/"
    if any(ord(c) < 0x21 or c in "\\\x7f" for c in raw):
        return "/"
    try:
        url = ada_url.URL(raw, _ORIGIN + "/")
    except ValueError:
        return "/"
    if url.origin != _ORIGIN or url.username or url.password:
        return "/"
    path = url.pathname
    if path == prefix or path.startswith(prefix + "/"):
        return "/"
    result = path + url.search
    # The serialised path must itself still be a single-slash local path.
    if not result.startswith("/") or result.startswith("//"):
        return "/"
    return result


def back_path(referer: str | None, public_hosts: tuple[str, ...], prefix: str) -> str:
    """The path (with query) of the page a link was followed from, when the ``Referer`` names one of this site's
    origins — an http(s) URL on one of ``public_hosts`` (any port: the path is used on the origin the browser
    is on) — else ``/``. Art. 15: the warning page's "Back" returns where the user was; it is never a way to
    send a browser to another site, so only the path is kept, and only as ``safe_next`` would keep it (a
    path into the gate's own pages under ``prefix`` is no page to go back to either).
    """
    if not referer or len(referer) > 4096:
        return "/"
    try:
        url = ada_url.URL(referer.strip())
    except ValueError:
        return "/"
    if url.protocol not in ("http:", "https:") or url.username or url.password:
        return "/"
    if parse_host(url.hostname) not in public_hosts:
        return "/"
    return safe_next(url.pathname + url.search, prefix)
