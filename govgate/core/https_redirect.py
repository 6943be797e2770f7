"""Where a plain-HTTP request is sent (Art. 29, 第二十九条: access must use secure connections).

One rule for both places plain HTTP arrives — the TLS port itself and the optional ``redirect_listen``
(port 80): the 308 goes to ``https://`` on a name the portal is known by (``public_hosts``: the client's
Host when it is one of them, else the first), never to whatever Host the client made up (no open
redirect, no cache poisoning), with the same path and query.
"""

from __future__ import annotations


def https_location(client_host: str, target: str, public_hosts: tuple[str, ...], port: int | None) -> str | None:
    """The HTTPS URL for a request to ``client_host`` (normalised, no port) with ``target`` (origin form).

    ``port``: the HTTPS port to name (None or 443: none). None when the policy names no host to send it to.
    """
    host = client_host if client_host in public_hosts else (public_hosts[0] if public_hosts else "")
    if not host:
        return None
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    suffix = f":{port}" if port is not None and port != 443 else ""
    return f"https://{host}{suffix}{target}"
