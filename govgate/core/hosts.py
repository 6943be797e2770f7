"""One reading of a host name: the canonical form every host comparison in the gateway uses.

Owns turning a host, or a ``Host`` header / authority ``host[:port]``, into one spelling. It exists
because hosts are compared in several places that must agree: a rule's ``hosts:`` against the
request's Host (Art. 19 decisions), ``gateway.public_hosts`` against the Host (HTTPS redirects,
leave-link origins), the outbound-link classifier against link hosts (Art. 15), and the policy
validator that stores what the others compare with. When each read hosts its own way, a rule
written ``hosts: ["[::1]"]`` missed a request sent with ``Host: [0:0:0:0:0:0:0:1]``.

The canonical form, as a browser's URL parser (WHATWG, here ``ada_url``) would serialise the host:

- a domain: IDNA (UTS 46) to lower-case ASCII, ``例子.政务`` → ``xn--fsqu00a.xn--zfr164b``, with one
  trailing dot (the root) removed: ``Portal.Example.gov.cn.`` → ``portal.example.gov.cn``;
- an IPv4 address: dotted decimal, also for the spellings browsers accept (``127.1``,
  ``0x7f.0.0.1``) → ``127.0.0.1``;
- an IPv6 address: parsed by ``ipaddress`` and always in brackets, compressed in lower-case hex
  (RFC 5952), ``[0:0:0:0:0:0:0:1]``, ``[0::01]``, ``[::0001]`` → ``[::1]``. An IPv4-mapped address
  stays an IPv6 literal written in hex, ``[::FFFF:127.0.0.1]`` → ``[::ffff:7f00:1]``, as WHATWG
  serialises it and the policy stores it; it is a different URL host from ``127.0.0.1``, so it does
  not match a rule written for that.

What is not a host (``None`` from ``parse_host`` and ``split_host_port``, ``""`` from ``host_of``):
an empty text; whitespace, control characters, ``%`` or a URL delimiter (``/ \\ ? # @``) in it;
brackets that do not hold exactly one IPv6 address (zone ids such as ``%eth0`` included); a name the
WHATWG host parser rejects (IDNA errors, forbidden code points, a last label that is a number but no
IPv4 address: ``999.1.1.1``, ``foo.1``); a name ending in more than one dot; a port that is not one
to five ASCII digits up to 65535. Callers decide what "not a host" means for them, and fail closed:
the request context answers 400, the policy validator reports a problem, rule matching and the
outbound classifier see ``""``, which no rule names and which counts as external.

Pure functions, no I/O.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

import ada_url

# Characters that would change how ``http://{name}/`` is split (or are dropped or decoded by the URL
# parser, giving a second spelling): none of them can be part of a host name as written.
_NOT_IN_NAME = re.compile(r"[\x00-\x20\x7f#%/:?@\[\\\]]")


def parse_host(text: str) -> str | None:
    """``text`` as a bare host (no port) in canonical form; None when it is not one.

    An IPv6 address may come with or without brackets (``::1`` as in ``public_hosts: ["::1"]``).
    """
    name = text.strip()
    if name.startswith("[") and name.endswith("]"):
        return _ipv6(name[1:-1])
    if ":" in name:
        return _ipv6(name)
    return _name(name)


# Memoised (pure functions of a string): every request reads its Host several times (context, the decisions,
# the outbound links), and a portal is reached under a handful of names; the bound keeps a flood of made-up
# names from growing memory (docs/performance.md).
@lru_cache(maxsize=1024)
def split_host_port(text: str) -> tuple[str, int | None] | None:
    """A ``Host`` header or authority ``host[:port]``: (canonical host, port), or None when invalid.

    IPv6 needs brackets here (``[::1]:8443``). An empty port (``host:``, allowed by RFC 3986) is no port.
    """
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        host = _ipv6(text[1:end])
        rest = text[end + 1:]
    else:
        name, sep, port_text = text.partition(":")
        host = _name(name)
        rest = sep + port_text
    if host is None:
        return None
    if not rest or rest == ":":
        return host, None
    port_text = rest[1:]
    if rest[0] != ":" or len(port_text) > 5 or not (port_text.isascii() and port_text.isdigit()):
        return None
    port = int(port_text)
    return (host, port) if port <= 65535 else None


@lru_cache(maxsize=4096)
def host_of(text: str) -> str:
    """The canonical host of a ``host[:port]``, or ``""`` when ``text`` is not one (no rule names ``""``).

    Memoised (a pure function of ``text``; bounded, least recently used dropped first): a gateway sees the
    same few Host headers and link hosts over and over, and the URL parser behind them costs microseconds.
    """
    parsed = split_host_port(text)
    return parsed[0] if parsed is not None else ""


@lru_cache(maxsize=4096)
def _name(name: str) -> str | None:
    """A domain or IPv4 address, read by the WHATWG host parser; one trailing dot removed."""
    if not name or _NOT_IN_NAME.search(name):
        return None
    try:
        host = str(ada_url.URL(f"http://{name}/").hostname)
    except ValueError:
        return None
    if host.endswith("."):
        host = host[:-1]
    if not host or host.endswith("."):
        return None  # "." alone, or a name ending in an empty label ("a.."): no host a browser reaches
    return host


def _ipv6(text: str) -> str | None:
    """``[address]`` in RFC 5952 form (the WHATWG serialisation); None unless ``text`` is one IPv6 address."""
    if "%" in text:
        return None  # a zone id names an interface of one machine, not a host
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError:
        return None
    mapped = address.ipv4_mapped
    if mapped is not None:
        # Written out here: how ``str()`` shows IPv4-mapped addresses differs between Python versions.
        high, low = divmod(int(mapped), 0x10000)
        return f"[::ffff:{high:x}:{low:x}]"
    return f"[{address.compressed}]"
