"""NetworkSet and NamedNetworks: fast membership that agrees with a naive ``ipaddress`` loop."""

from __future__ import annotations

import ipaddress
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from govgate.core.networks import NamedNetworks, NetworkSet
from tests.policies import nets

ip = ipaddress.ip_address


def test_membership_for_ipv4_and_ipv6() -> None:
    s = NetworkSet(nets("10.0.0.0/8", "192.168.1.0/24", "2001:db8::/32"))
    assert ip("10.255.255.255") in s
    assert ip("192.168.1.77") in s
    assert ip("192.168.2.1") not in s
    assert ip("2001:db8:1::1") in s
    assert ip("2001:db9::1") not in s
    assert ip("::a00:1") not in s  # IPv4-compatible, not mapped: an IPv6 address


def test_ipv4_mapped_addresses_are_looked_up_as_ipv4() -> None:
    s = NetworkSet(nets("10.0.0.0/8"))
    assert ip("::ffff:10.1.2.3") in s


def test_ipv4_mapped_ranges_hold_their_ipv4_addresses() -> None:
    s = NetworkSet(nets("::ffff:10.0.0.0/104"))
    assert ip("10.1.2.3") in s


def test_overlapping_and_adjacent_ranges_are_merged() -> None:
    s = NetworkSet(nets("10.0.0.0/25", "10.0.0.128/25", "10.0.0.0/24", "10.0.1.0/24"))
    assert len(s) == 1
    assert ip("10.0.1.255") in s
    assert ip("10.0.2.0") not in s


def test_empty_set_contains_nothing() -> None:
    s = NetworkSet(())
    assert not s
    assert ip("10.0.0.1") not in s
    assert ip("::1") not in s


def test_named_networks_answer_which_groups_hold_an_address() -> None:
    n = NamedNetworks({"office": nets("10.0.0.0/8"), "lab": nets("10.1.0.0/16"), "v6": nets("2001:db8::/32")})
    assert n.containing(ip("10.1.2.3")) == ("office", "lab")
    assert n.containing(ip("10.2.0.1")) == ("office",)
    assert n.in_group(ip("10.1.2.3"), "lab")
    assert not n.in_group(ip("10.1.2.3"), "v6")
    assert not n.in_group(ip("10.1.2.3"), "no-such-group")
    assert n.in_any(ip("2001:db8::1"))
    assert not n.in_any(ip("81.2.69.142"))
    assert ip("10.1.0.1") in n.union(["lab"])
    assert ip("10.2.0.1") not in n.union(["lab"])


def test_ten_thousand_ranges_hold_exactly_their_addresses() -> None:
    # Speed is measured by scripts/bench_decide.py; here, correctness at that size.
    rnd = random.Random(7)
    cidrs = [ipaddress.IPv4Network((rnd.getrandbits(32), rnd.randint(16, 30)), strict=False) for _ in range(10_000)]
    s = NetworkSet(cidrs)
    for net in rnd.sample(cidrs, 200):
        assert net.network_address in s
        assert net.broadcast_address in s
    intervals = sorted((int(n.network_address), int(n.broadcast_address)) for n in cidrs)
    for _ in range(200):
        probe = rnd.getrandbits(32)
        naive = any(lo <= probe <= hi for lo, hi in intervals)
        assert s.contains(ipaddress.IPv4Address(probe)) == naive


v4net = st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 32)).map(
    lambda t: ipaddress.IPv4Network(t, strict=False))
v6net = st.tuples(st.integers(0, 2**128 - 1), st.integers(0, 128)).map(
    lambda t: ipaddress.IPv6Network(t, strict=False))


@settings(max_examples=200, deadline=None)
@given(networks=st.lists(st.one_of(v4net, v6net), max_size=20),
       probes=st.lists(st.ip_addresses(), min_size=1, max_size=20))
def test_network_set_agrees_with_a_naive_ipaddress_loop(
        networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
        probes: list[ipaddress.IPv4Address | ipaddress.IPv6Address]) -> None:
    s = NetworkSet(networks)
    for network in networks:  # probe the edges too
        probes.extend([network.network_address, network.broadcast_address])
    for probe in probes:
        if probe.version == 6 and probe.ipv4_mapped is not None:
            continue  # mapped addresses are looked up as IPv4 (tested above)
        naive = any(probe.version == n.version and probe in n for n in networks
                    if not (n.version == 6 and n.network_address.ipv4_mapped is not None and n.prefixlen >= 96))
        assert s.contains(probe) == naive, (probe, networks)
