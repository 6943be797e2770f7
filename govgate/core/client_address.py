"""The client address of a request (``docs/decisions.md`` §1) and the ``X-Forwarded-For`` chain the gate believes.

The client is the TCP peer, unless the peer is a trusted proxy (``gateway.trusted_proxies``): then
``X-Forwarded-For`` is walked from the right, trusted hops are skipped, and the first untrusted hop
is the client. Nobody else's ``X-Forwarded-For`` is believed: an untrusted peer's header never sets
the address. Garbage in the header (``unknown``, ``not-an-ip``, ``999.1.1.1``, empty items) stops
the walk: the last good hop (or the peer) is the client. Nothing here raises on header content.

Hops may carry a port (``1.2.3.4:5678``, ``[2001:db8::1]:443``) or brackets (``[2001:db8::1]``):
the port is dropped. IPv4-mapped IPv6 addresses count as their IPv4 address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import lru_cache

from govgate.core.networks import NetworkSet, unmapped
from govgate.core.policy.model import IPAddress, IPNetwork

MAX_HOPS = 64  # a longer header is cut from the left: nobody proxies through 64 trusted hops


def parse_hop(raw: str) -> IPAddress | None:
    """One X-Forwarded-For item as an address, or None when it is not one (never raises)."""
    item = raw.strip().strip('"')
    if not item or len(item) > 64:
        return None
    if item.startswith("["):
        end = item.find("]")
        if end < 0:
            return None
        rest = item[end + 1 :]
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            return None
        item = item[1:end]
    elif item.count(":") == 1:
        host, _, port = item.partition(":")
        if not port.isdigit():
            return None
        item = host
    if "%" in item:  # zone ids belong to link-local addresses of the sender, not ours
        return None
    try:
        return unmapped(ipaddress.ip_address(item))
    except ValueError:
        return None


@lru_cache(maxsize=16)
def _as_set(trusted: tuple[IPNetwork, ...]) -> NetworkSet:
    return NetworkSet(trusted)


def _trusted_set(trusted: NetworkSet | tuple[IPNetwork, ...]) -> NetworkSet:
    return trusted if isinstance(trusted, NetworkSet) else _as_set(tuple(trusted))


def _hops(forwarded_for: Sequence[str]) -> list[str]:
    items = ",".join(forwarded_for).split(",")
    return items[-MAX_HOPS:]


def _walk(peer: IPAddress, forwarded_for: Sequence[str], trusted: NetworkSet) -> list[IPAddress]:
    """Believed hops from the peer leftwards, ending with the client."""
    peer = unmapped(peer)
    walked = [peer]
    if not trusted.contains(peer):
        return walked
    for raw in reversed(_hops(forwarded_for)):
        hop = parse_hop(raw)
        if hop is None:
            break  # garbage: the last good hop stands
        walked.append(hop)
        if not trusted.contains(hop):
            break  # the first untrusted hop is the client
    return walked


def client_address(peer: IPAddress, forwarded_for: Sequence[str],
                   trusted: NetworkSet | tuple[IPNetwork, ...]) -> IPAddress:
    """Contract §4.1: the TCP peer, or the last untrusted hop of X-Forwarded-For from a trusted proxy."""
    return _walk(peer, forwarded_for, _trusted_set(trusted))[-1]


def forwarded_chain(peer: IPAddress, forwarded_for: Sequence[str],
                    trusted: NetworkSet | tuple[IPNetwork, ...]) -> tuple[IPAddress, ...]:
    """The X-Forwarded-For the gate sends upstream (``docs/decisions.md`` §1): what it believes, ending with the client.

    Only the client is sent: every entry left of it was written by the client and is unverified,
    and the trusted hops right of it are our own infrastructure. So the chain is ``(client,)``.
    """
    return (client_address(peer, forwarded_for, trusted),)
