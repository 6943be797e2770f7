"""Named CIDR groups and fast membership: ``NetworkSet`` and ``NamedNetworks``.

Owns the question "is this address in these ranges?". Ranges are turned, once, into sorted,
merged integer intervals per address family; membership is one ``bisect`` (O(log n)), so 10,000
ranges cost about as much as ten. IPv4-mapped IPv6 addresses (``::ffff:1.2.3.4``) are looked up
as their IPv4 address (``docs/decisions.md`` §1).
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_right
from collections.abc import Iterable, Mapping

from govgate.core.policy.model import IPAddress, IPNetwork, NetworkGroup


def _merged(intervals: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """Sort and merge overlapping or adjacent [start, end] intervals; return parallel start/end lists."""
    starts: list[int] = []
    ends: list[int] = []
    for start, end in sorted(intervals):
        if ends and start <= ends[-1] + 1:
            if end > ends[-1]:
                ends[-1] = end
        else:
            starts.append(start)
            ends.append(end)
    return starts, ends


def unmapped(ip: IPAddress) -> IPAddress:
    """The IPv4 address behind an IPv4-mapped IPv6 address; any other address unchanged."""
    if ip.version == 6:
        mapped = ip.ipv4_mapped
        if mapped is not None:
            return mapped
    return ip


class NetworkSet:
    """An immutable set of IPv4 and IPv6 ranges with O(log n) membership."""

    __slots__ = ("_count", "_v4_ends", "_v4_starts", "_v6_ends", "_v6_starts")

    def __init__(self, networks: Iterable[IPNetwork]) -> None:
        v4: list[tuple[int, int]] = []
        v6: list[tuple[int, int]] = []
        count = 0
        for net in networks:
            count += 1
            if net.version == 6:
                mapped = net.network_address.ipv4_mapped
                if mapped is not None and net.prefixlen >= 96:
                    # ::ffff:a.b.c.d/n is an IPv4 range: addresses are unmapped before lookup.
                    v4_net = ipaddress.IPv4Network((mapped, net.prefixlen - 96))
                    v4.append((int(v4_net.network_address), int(v4_net.broadcast_address)))
                    continue
                v6.append((int(net.network_address), int(net.broadcast_address)))
            else:
                v4.append((int(net.network_address), int(net.broadcast_address)))
        self._v4_starts, self._v4_ends = _merged(v4)
        self._v6_starts, self._v6_ends = _merged(v6)
        self._count = count

    def contains(self, ip: IPAddress) -> bool:
        if ip.version == 4:
            starts, ends = self._v4_starts, self._v4_ends
        else:
            mapped = ip.ipv4_mapped
            if mapped is not None:
                ip = mapped
                starts, ends = self._v4_starts, self._v4_ends
            else:
                starts, ends = self._v6_starts, self._v6_ends
        value = int(ip)
        i = bisect_right(starts, value) - 1
        return i >= 0 and value <= ends[i]

    __contains__ = contains

    def __len__(self) -> int:
        """Number of merged intervals (not the number of CIDRs given)."""
        return len(self._v4_starts) + len(self._v6_starts)

    def __bool__(self) -> bool:
        return bool(self._v4_starts or self._v6_starts)

    def __repr__(self) -> str:
        return f"NetworkSet({self._count} networks, {len(self)} intervals)"


EMPTY = NetworkSet(())


class NamedNetworks:
    """The policy's named network groups: "which groups contain ip", "is ip in X", "is ip in any"."""

    __slots__ = ("_any", "_cidrs", "_groups")

    def __init__(self, groups: Mapping[str, Iterable[IPNetwork]] | Iterable[NetworkGroup]) -> None:
        items: list[tuple[str, tuple[IPNetwork, ...]]]
        if isinstance(groups, Mapping):
            items = [(name, tuple(cidrs)) for name, cidrs in groups.items()]
        else:
            items = [(g.name, g.cidrs) for g in groups]
        self._cidrs: dict[str, tuple[IPNetwork, ...]] = dict(items)
        self._groups: dict[str, NetworkSet] = {name: NetworkSet(cidrs) for name, cidrs in items}
        self._any = NetworkSet(cidr for _, cidrs in items for cidr in cidrs)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._groups)

    def group(self, name: str) -> NetworkSet:
        """The ranges of one group; an unknown name is the empty set (admits nobody)."""
        return self._groups.get(name, EMPTY)

    def union(self, names: Iterable[str]) -> NetworkSet:
        """One set holding every range of the named groups (built at compile time, not per request)."""
        nets: list[IPNetwork] = []
        for name in names:
            nets.extend(self._cidrs_of(name))
        return NetworkSet(nets)

    def _cidrs_of(self, name: str) -> tuple[IPNetwork, ...]:
        return self._cidrs.get(name, ())

    def containing(self, ip: IPAddress) -> tuple[str, ...]:
        """Names of every group that contains ``ip``, in policy order."""
        return tuple(name for name, s in self._groups.items() if s.contains(ip))

    def in_group(self, ip: IPAddress, name: str) -> bool:
        s = self._groups.get(name)
        return s is not None and s.contains(ip)

    def in_any(self, ip: IPAddress) -> bool:
        return self._any.contains(ip)
