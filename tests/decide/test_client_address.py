"""Client address (``docs/decisions.md`` §1): only trusted proxies' X-Forwarded-For is believed."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from govgate.core.client_address import client_address, forwarded_chain, parse_hop
from govgate.core.networks import NetworkSet
from tests.policies import nets

TRUSTED = nets("127.0.0.0/8", "10.0.0.0/8", "fd00::/8")
ip = ipaddress.ip_address


def test_untrusted_peer_is_the_client_whatever_its_header_says() -> None:
    assert client_address(ip("203.0.113.9"), ["6.6.6.6"], TRUSTED) == ip("203.0.113.9")


def test_trusted_peer_hands_over_to_the_last_hop() -> None:
    assert client_address(ip("127.0.0.1"), ["81.2.69.142"], TRUSTED) == ip("81.2.69.142")


def test_trusted_hops_are_skipped_from_the_right() -> None:
    assert client_address(ip("127.0.0.1"), ["6.6.6.6, 81.2.69.142, 10.0.0.7"], TRUSTED) == ip("81.2.69.142")


def test_spoofed_hop_left_of_the_client_is_not_believed() -> None:
    assert client_address(ip("127.0.0.1"), ["10.1.1.1, 81.2.69.142"], TRUSTED) == ip("81.2.69.142")


def test_several_header_lines_are_one_list() -> None:
    assert client_address(ip("127.0.0.1"), ["81.2.69.142", "10.0.0.7"], TRUSTED) == ip("81.2.69.142")


def test_all_hops_trusted_means_the_leftmost_hop() -> None:
    assert client_address(ip("127.0.0.1"), ["10.0.0.1, 10.0.0.2"], TRUSTED) == ip("10.0.0.1")


def test_no_header_from_a_trusted_peer_means_the_peer() -> None:
    assert client_address(ip("127.0.0.1"), [], TRUSTED) == ip("127.0.0.1")


def test_garbage_stops_the_walk_at_the_last_good_hop() -> None:
    assert client_address(ip("127.0.0.1"), ["81.2.69.142, unknown, 10.0.0.7"], TRUSTED) == ip("10.0.0.7")
    assert client_address(ip("127.0.0.1"), ["not-an-ip, , ::::, 999.1.1.1"], TRUSTED) == ip("127.0.0.1")
    assert client_address(ip("127.0.0.1"), [""], TRUSTED) == ip("127.0.0.1")


def test_hops_with_ports_and_brackets_are_understood() -> None:
    assert parse_hop("1.2.3.4:5678") == ip("1.2.3.4")
    assert parse_hop("[2001:db8::1]:443") == ip("2001:db8::1")
    assert parse_hop("[2001:db8::1]") == ip("2001:db8::1")
    assert parse_hop(" 2001:db8::1 ") == ip("2001:db8::1")
    assert parse_hop('"1.2.3.4"') == ip("1.2.3.4")


def test_malformed_hops_are_none_not_errors() -> None:
    for raw in ("unknown", "", "1.2.3.4:port", "[2001:db8::1", "[::1]x", "fe80::1%eth0", "1.2.3", "x" * 200,
                "1.2.3.4:5678:9", "_hidden"):
        assert parse_hop(raw) is None, raw


def test_ipv4_mapped_ipv6_counts_as_ipv4() -> None:
    assert client_address(ip("::ffff:127.0.0.1"), ["::ffff:81.2.69.142"], TRUSTED) == ip("81.2.69.142")
    assert client_address(ip("::ffff:203.0.113.9"), [], TRUSTED) == ip("203.0.113.9")


def test_trusted_set_may_be_a_network_set() -> None:
    assert client_address(ip("10.0.0.1"), ["81.2.69.142"], NetworkSet(TRUSTED)) == ip("81.2.69.142")


def test_no_trusted_proxies_means_no_header_is_believed() -> None:
    assert client_address(ip("127.0.0.1"), ["81.2.69.142"], ()) == ip("127.0.0.1")


def test_forwarded_chain_ends_with_the_client_and_drops_unverified_entries() -> None:
    assert forwarded_chain(ip("127.0.0.1"), ["6.6.6.6, 81.2.69.142, 10.0.0.7"], TRUSTED) == (ip("81.2.69.142"),)
    assert forwarded_chain(ip("203.0.113.9"), ["6.6.6.6"], TRUSTED) == (ip("203.0.113.9"),)


def test_very_long_header_is_cut_not_a_crash() -> None:
    header = ", ".join(["10.0.0.1"] * 10_000)
    assert client_address(ip("127.0.0.1"), [header], TRUSTED) == ip("10.0.0.1")


header_items = st.one_of(
    st.ip_addresses().map(str),
    st.text(max_size=20),
    st.sampled_from(["unknown", "", "[::1]:80", "1.2.3.4:99", "::ffff:10.0.0.1"]),
)


@settings(max_examples=200, deadline=None)
@given(peer=st.ip_addresses(), headers=st.lists(st.lists(header_items, max_size=5).map(", ".join), max_size=3))
def test_untrusted_peers_forwarded_for_never_sets_the_address(
        peer: ipaddress.IPv4Address | ipaddress.IPv6Address, headers: list[str]) -> None:
    trusted = NetworkSet(TRUSTED)
    if trusted.contains(peer):
        return
    result = client_address(peer, headers, TRUSTED)
    expected = peer.ipv4_mapped if peer.version == 6 and peer.ipv4_mapped else peer
    assert result == expected
    assert forwarded_chain(peer, headers, TRUSTED) == (expected,)


@settings(max_examples=200, deadline=None)
@given(peer=st.sampled_from([ip("127.0.0.1"), ip("10.0.0.9")]),
       headers=st.lists(st.lists(header_items, max_size=6).map(", ".join), max_size=3))
def test_client_address_never_raises_and_is_a_believed_address(
        peer: ipaddress.IPv4Address, headers: list[str]) -> None:
    result = client_address(peer, headers, TRUSTED)
    hops = {parse_hop(h) for h in ",".join(headers).split(",")}
    assert result == peer or result in hops
